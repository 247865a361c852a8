//! Flow-table modification semantics as OVS applies them.

mod common;

use common::*;
use fvs_datapath::pmd::PmdConfig;
use fvs_ofproto::flow_mod::FlowModCommand;
use fvs_ofproto::ofproto::{FlowModError, OfprotoError};
use fvs_ofproto::syntax::{format_flow_stats, parse_flow_filter, parse_flow_mod};

fn fm(
    sw: &TestSwitch,
    cmd: FlowModCommand,
    line: &str,
) -> Result<fvs_ofproto::ofproto::FlowModOutcome, OfprotoError> {
    sw.flow_mod(&parse_flow_mod(line, cmd, None).unwrap())
}

fn dump(sw: &TestSwitch) -> Vec<String> {
    sw.of
        .dump_flows("br0", None)
        .unwrap()
        .iter()
        .map(|f| format_flow_stats(f, false))
        .collect()
}

fn counts(sw: &mut TestSwitch) -> Vec<u64> {
    sw.pmd.sync_stats();
    sw.of
        .dump_flows("br0", None)
        .unwrap()
        .iter()
        .map(|f| f.packet_count)
        .collect()
}

use FlowModCommand::*;

#[test]
fn add_replaces_same_match_and_priority_and_resets_counters() {
    let mut sw = TestSwitch::new(3, PmdConfig::default());
    fm(&sw, Add, "priority=10,in_port=1,actions=output:2").unwrap();
    let f = udp4(mac(1), mac(2), [10, 0, 0, 1], [10, 0, 0, 2], 1, 2);
    sw.send(1, &vec![f.clone(); 3]);
    assert_eq!(counts(&mut sw), vec![3]);
    fm(&sw, Add, "priority=10,in_port=1,actions=output:3").unwrap();
    assert_eq!(dump(&sw), vec![" priority=10,in_port=1 actions=output:3"]);
    assert_eq!(
        counts(&mut sw),
        vec![0],
        "an add that replaces starts afresh"
    );
    assert_eq!(
        sw.send1(1, &f),
        vec![(3, f.clone())],
        "the replacement is in effect at once"
    );
    fm(&sw, Add, "priority=11,in_port=1,actions=output:2").unwrap();
    assert_eq!(dump(&sw).len(), 2, "another priority is another rule");
}

#[test]
fn modify_keeps_counters_and_cookie_unless_told() {
    let mut sw = TestSwitch::new(3, PmdConfig::default());
    fm(
        &sw,
        Add,
        "cookie=0x5,priority=10,in_port=1,actions=output:2",
    )
    .unwrap();
    fm(
        &sw,
        Add,
        "cookie=0x6,priority=10,in_port=2,actions=output:1",
    )
    .unwrap();
    let f = udp4(mac(1), mac(2), [10, 0, 0, 1], [10, 0, 0, 2], 1, 2);
    sw.send(1, &vec![f.clone(); 4]);
    let out = fm(&sw, Modify, "in_port=1,actions=output:3").unwrap();
    assert_eq!(out.modified, 1);
    assert_eq!(sw.send1(1, &f), vec![(3, f.clone())]);
    assert_eq!(counts(&mut sw), vec![5, 0], "modify keeps the counters");
    assert_eq!(
        dump(&sw),
        vec![
            " cookie=0x5, priority=10,in_port=1 actions=output:3",
            " cookie=0x6, priority=10,in_port=2 actions=output:1"
        ]
    );
    // reset_counts, and a new cookie.
    fm(
        &sw,
        Modify,
        "cookie=0x7,in_port=1,reset_counts,actions=output:2",
    )
    .unwrap();
    assert_eq!(counts(&mut sw), vec![0, 0]);
    assert!(dump(&sw)[0].starts_with(" cookie=0x7,"));
    // Cookie masks select.
    let out = fm(&sw, Modify, "cookie=0x6/0xf,actions=drop").unwrap();
    assert_eq!(out.modified, 1);
    assert!(sw.send1(2, &f).is_empty());
}

#[test]
fn modify_matching_nothing_adds_only_with_a_new_cookie() {
    let sw = TestSwitch::new(2, PmdConfig::default());
    assert_eq!(
        fm(&sw, Modify, "in_port=1,actions=output:2").unwrap().added,
        0
    );
    assert!(dump(&sw).is_empty());
    assert_eq!(
        fm(&sw, Modify, "cookie=0x9,in_port=1,actions=output:2")
            .unwrap()
            .added,
        1
    );
    assert_eq!(dump(&sw), vec![" cookie=0x9, in_port=1 actions=output:2"]);
}

#[test]
fn strict_and_loose_delete_and_out_port() {
    let mut sw = TestSwitch::new(3, PmdConfig::default());
    for l in [
        "priority=10,ip,nw_dst=10.0.0.0/8,actions=output:2",
        "priority=20,ip,nw_dst=10.1.0.0/16,actions=output:3",
        "priority=30,ip,nw_dst=10.1.2.0/24,actions=output:2",
        "priority=40,arp,actions=output:3",
    ] {
        fm(&sw, Add, l).unwrap();
    }
    // Strict: exact match and priority only.
    assert_eq!(
        fm(&sw, DeleteStrict, "priority=20,ip,nw_dst=10.1.0.0/24")
            .unwrap()
            .deleted,
        0
    );
    assert_eq!(
        fm(&sw, DeleteStrict, "priority=20,ip,nw_dst=10.1.0.0/16")
            .unwrap()
            .deleted,
        1
    );
    // Loose: every rule at least as specific; out_port narrows it.
    assert_eq!(
        fm(&sw, Delete, "ip,nw_dst=10.0.0.0/8,out_port=3")
            .unwrap()
            .deleted,
        0
    );
    assert_eq!(
        fm(&sw, Delete, "ip,nw_dst=10.0.0.0/8,out_port=2")
            .unwrap()
            .deleted,
        2
    );
    assert_eq!(dump(&sw), vec![" priority=40,arp actions=output:3"]);
    let f = udp4(mac(1), mac(2), [10, 0, 0, 1], [10, 1, 2, 3], 1, 2);
    assert!(sw.send1(1, &f).is_empty());
    assert_eq!(
        fm(&sw, Delete, "").unwrap().deleted,
        1,
        "an empty match deletes everything"
    );
    assert!(counts(&mut sw).is_empty());
}

#[test]
fn dump_filters_select_like_a_loose_delete() {
    let sw = TestSwitch::new(2, PmdConfig::default());
    fm(
        &sw,
        Add,
        "table=0,priority=5,tcp,tp_dst=80,actions=output:1",
    )
    .unwrap();
    fm(
        &sw,
        Add,
        "table=1,priority=5,tcp,tp_dst=22,actions=output:2",
    )
    .unwrap();
    fm(
        &sw,
        Add,
        "table=1,cookie=0x10,priority=6,udp,actions=output:2",
    )
    .unwrap();
    let f = |s: &str| {
        let filter = parse_flow_filter(s, None).unwrap();
        sw.of
            .dump_flows("br0", Some(&filter.to_flow_mod()))
            .unwrap()
            .len()
    };
    assert_eq!(f(""), 3);
    assert_eq!(f("table=1"), 2);
    assert_eq!(f("tcp"), 2);
    assert_eq!(f("cookie=0x10/-1"), 1);
    assert_eq!(f("table=0,udp"), 0);
}

#[test]
fn bad_flow_mods_are_refused_and_change_nothing() {
    let sw = TestSwitch::new(2, PmdConfig::default());
    fm(&sw, Add, "priority=10,in_port=1,actions=output:2").unwrap();
    // The syntax already refuses this; a flow-mod from elsewhere (the wire)
    // meets the same check in the table.
    let mut back = parse_flow_mod("table=3,actions=drop", Add, None).unwrap();
    back.actions
        .push(fvs_ofproto::actions::OfAction::GotoTable(2));
    let err = sw.flow_mod(&back).unwrap_err();
    assert!(
        matches!(
            err,
            OfprotoError::FlowMod {
                error: FlowModError::BadGoto { table: 3, goto: 2 },
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        "br0: goto_table:2 in table 3: the target must be a later table"
    );
    let err = fm(&sw, Add, "priority=10,ip,check_overlap,actions=drop").unwrap_err();
    assert_eq!(
        err.to_string(),
        "br0: the flow overlaps an existing flow of priority 10 (check_overlap)"
    );
    assert_eq!(dump(&sw), vec![" priority=10,in_port=1 actions=output:2"]);
    assert!(
        fm(&sw, Add, "priority=11,ip,check_overlap,actions=drop").is_ok(),
        "other priorities do not overlap"
    );
    let err = sw
        .of
        .flow_mod("nope", &parse_flow_mod("actions=drop", Add, None).unwrap())
        .unwrap_err();
    assert_eq!(err.to_string(), "no bridge named nope");
}
