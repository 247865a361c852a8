//! `ofproto/trace` output, checked byte for byte against Open vSwitch 3.1.
//!
//! Every expected output below was printed by `ovs-appctl ofproto/trace brx
//! FLOW` of an `ovs-vswitchd` 3.1 (Debian 3.1.0-2+deb12u1) running a
//! `datapath_type=netdev` bridge `brx` with ports `odpr1`, `odpr2`, `odpr3`
//! (OpenFlow ports 1–3, datapath ports 2–4) and its LOCAL port (datapath
//! port 1), after `ovs-ofctl add-flows` of the rules each test installs
//! here (written as `ovs-ofctl dump-flows` printed them back). The only
//! edit to OVS's text is the continuation id of controller actions
//! (`recirc_id=N`, allocated per translation by OVS; fvs has none: 0).
//!
//! Where fvs's translation decides differently from OVS's (not how it
//! prints), the test gives fvs's line next to OVS's. Mostly that is the
//! megaflow: OVS's always matches the Ethertype and, for IP, the fragment
//! bits, and the fields its header rewrites set; fvs's matches only what
//! the pipeline looked at (megaflows as wide as the rules, see
//! tests/smoke.rs), so `check_megaflow` gives fvs's megaflow separately.

use std::sync::Arc;

use fvs_ofproto::bridge::VlanConfig;
use fvs_ofproto::flow_mod::FlowModCommand;
use fvs_ofproto::syntax::{parse_flow_mods, PortMap};
use fvs_ofproto::trace::{parse_trace_flow, trace};
use fvs_ofproto::{Ofproto, PortConfig};

/// Bridge `brx` as the OVS reference had it, with `flows` installed.
fn bridge(flows: &[&str]) -> Arc<Ofproto> {
    let of = Ofproto::new();
    of.add_bridge("brx").expect("bridge");
    let port = |name: &str, odp_port, ofport_request| PortConfig {
        name: name.to_string(),
        odp_port,
        ofport_request,
        ..Default::default()
    };
    of.add_port("brx", port("brx", 1, None)).expect("LOCAL");
    for i in 1..=3u16 {
        let name = format!("odpr{i}");
        let ofport = of
            .add_port("brx", port(&name, u32::from(i) + 1, Some(i)))
            .expect("port");
        assert_eq!(ofport, i);
    }
    let names: PortMap = of
        .port_names("brx")
        .expect("ports")
        .into_iter()
        .map(|(n, name)| (name, n))
        .collect();
    let fms =
        parse_flow_mods(&flows.join("\n"), FlowModCommand::Add, Some(&names)).expect("flows parse");
    of.flow_mods("brx", &fms).expect("flows install");
    of
}

/// fvs's trace of `flow` is OVS's, `ovs`.
#[track_caller]
fn check(of: &Ofproto, flow: &str, ovs: &str) {
    check_deviating(of, flow, ovs, &[]);
}

/// fvs's trace of `flow` is OVS's, `ovs`, with fvs's own `megaflow`.
#[track_caller]
fn check_megaflow(of: &Ofproto, flow: &str, ovs: &str, megaflow: &str) {
    let ovs_line = ovs
        .lines()
        .find(|l| l.starts_with("Megaflow: "))
        .expect("a Megaflow line");
    check_deviating(
        of,
        flow,
        ovs,
        &[(ovs_line, &format!("Megaflow: {megaflow}"))],
    );
}

/// fvs's trace of `flow` is OVS's, `ovs`, but for whole lines where fvs's
/// translation decides otherwise: `(OVS's line, fvs's line)`.
#[track_caller]
fn check_deviating(of: &Ofproto, flow: &str, ovs: &str, deviations: &[(&str, &str)]) {
    let mut want = ovs.to_string();
    for (ovs_line, fvs_line) in deviations {
        assert!(
            want.contains(&format!("{ovs_line}\n")),
            "not in OVS's output: {ovs_line}"
        );
        want = want.replacen(&format!("{ovs_line}\n"), &format!("{fvs_line}\n"), 1);
    }
    let got = trace(of, "brx", flow).unwrap_or_else(|e| panic!("trace {flow}: {e}"));
    if got != want {
        let first = got
            .lines()
            .zip(want.lines())
            .position(|(g, w)| g != w)
            .unwrap_or(got.lines().count().min(want.lines().count()));
        panic!(
            "trace {flow}: first difference at line {}\n  fvs: {:?}\n want: {:?}\n--- fvs ---\n{got}--- want ---\n{want}",
            first + 1,
            got.lines().nth(first),
            want.lines().nth(first),
        );
    }
}

#[test]
fn output() {
    let of = bridge(&["in_port=1 actions=output:2"]);
    check_megaflow(
        &of,
        "in_port=1,tcp,tp_dst=80",
        r#"Flow: tcp,in_port=1,vlan_tci=0x0000,dl_src=00:00:00:00:00:00,dl_dst=00:00:00:00:00:00,nw_src=0.0.0.0,nw_dst=0.0.0.0,nw_tos=0,nw_ecn=0,nw_ttl=0,nw_frag=no,tp_src=0,tp_dst=80,tcp_flags=0

bridge("brx")
-------------
 0. in_port=1, priority 32768
    output:2

Final flow: unchanged
Megaflow: recirc_id=0,eth,ip,in_port=1,nw_frag=no
Datapath actions: 3
"#,
        "recirc_id=0,eth,in_port=1",
    );
    check_megaflow(
        &of,
        "in_port=1,udp,nw_src=10.0.0.1,nw_dst=10.0.0.2,udp_src=5,udp_dst=53",
        r#"Flow: udp,in_port=1,vlan_tci=0x0000,dl_src=00:00:00:00:00:00,dl_dst=00:00:00:00:00:00,nw_src=10.0.0.1,nw_dst=10.0.0.2,nw_tos=0,nw_ecn=0,nw_ttl=0,nw_frag=no,tp_src=5,tp_dst=53

bridge("brx")
-------------
 0. in_port=1, priority 32768
    output:2

Final flow: unchanged
Megaflow: recirc_id=0,eth,ip,in_port=1,nw_frag=no
Datapath actions: 3
"#,
        "recirc_id=0,eth,in_port=1",
    );
    check_megaflow(
        &of,
        "in_port=1,icmp,icmp_type=8",
        r#"Flow: icmp,in_port=1,vlan_tci=0x0000,dl_src=00:00:00:00:00:00,dl_dst=00:00:00:00:00:00,nw_src=0.0.0.0,nw_dst=0.0.0.0,nw_tos=0,nw_ecn=0,nw_ttl=0,nw_frag=no,icmp_type=8,icmp_code=0

bridge("brx")
-------------
 0. in_port=1, priority 32768
    output:2

Final flow: unchanged
Megaflow: recirc_id=0,eth,ip,in_port=1,nw_frag=no
Datapath actions: 3
"#,
        "recirc_id=0,eth,in_port=1",
    );
    check_megaflow(
        &of,
        "in_port=1,arp,arp_op=1,arp_spa=10.0.0.1,arp_tpa=10.0.0.2",
        r#"Flow: arp,in_port=1,vlan_tci=0x0000,dl_src=00:00:00:00:00:00,dl_dst=00:00:00:00:00:00,arp_spa=10.0.0.1,arp_tpa=10.0.0.2,arp_op=1,arp_sha=00:00:00:00:00:00,arp_tha=00:00:00:00:00:00

bridge("brx")
-------------
 0. in_port=1, priority 32768
    output:2

Final flow: unchanged
Megaflow: recirc_id=0,eth,arp,in_port=1
Datapath actions: 3
"#,
        "recirc_id=0,eth,in_port=1",
    );
    check_megaflow(
        &of,
        "in_port=1,ipv6,ipv6_src=2001:db8::1,ipv6_dst=2001:db8::2",
        r#"Flow: ipv6,in_port=1,vlan_tci=0x0000,dl_src=00:00:00:00:00:00,dl_dst=00:00:00:00:00:00,ipv6_src=2001:db8::1,ipv6_dst=2001:db8::2,ipv6_label=0x00000,nw_proto=0,nw_tos=0,nw_ecn=0,nw_ttl=0,nw_frag=no

bridge("brx")
-------------
 0. in_port=1, priority 32768
    output:2

Final flow: unchanged
Megaflow: recirc_id=0,eth,ipv6,in_port=1,nw_frag=no
Datapath actions: 3
"#,
        "recirc_id=0,eth,in_port=1",
    );
    check_megaflow(
        &of,
        "in_port=1,icmp6,icmpv6_type=135,nd_target=fe80::1,nd_sll=02:00:00:00:00:01",
        r#"Flow: icmp6,in_port=1,vlan_tci=0x0000,dl_src=00:00:00:00:00:00,dl_dst=00:00:00:00:00:00,ipv6_src=::,ipv6_dst=::,ipv6_label=0x00000,nw_tos=0,nw_ecn=0,nw_ttl=0,nw_frag=no,icmp_type=135,icmp_code=0,nd_target=fe80::1,nd_sll=02:00:00:00:00:01,nd_tll=00:00:00:00:00:00

bridge("brx")
-------------
 0. in_port=1, priority 32768
    output:2

Final flow: unchanged
Megaflow: recirc_id=0,eth,ipv6,in_port=1,nw_frag=no
Datapath actions: 3
"#,
        "recirc_id=0,eth,in_port=1",
    );
    check_megaflow(
        &of,
        "in_port=1,icmp6,icmpv6_type=136,nd_target=fe80::1,nd_tll=02:00:00:00:00:01",
        r#"Flow: icmp6,in_port=1,vlan_tci=0x0000,dl_src=00:00:00:00:00:00,dl_dst=00:00:00:00:00:00,ipv6_src=::,ipv6_dst=::,ipv6_label=0x00000,nw_tos=0,nw_ecn=0,nw_ttl=0,nw_frag=no,icmp_type=136,icmp_code=0,nd_target=fe80::1,nd_sll=00:00:00:00:00:00,nd_tll=02:00:00:00:00:01

bridge("brx")
-------------
 0. in_port=1, priority 32768
    output:2

Final flow: unchanged
Megaflow: recirc_id=0,eth,ipv6,in_port=1,nw_frag=no
Datapath actions: 3
"#,
        "recirc_id=0,eth,in_port=1",
    );
    check_megaflow(
        &of,
        "in_port=1,dl_vlan=10,dl_vlan_pcp=3,ip",
        r#"Flow: ip,in_port=1,dl_vlan=10,dl_vlan_pcp=3,vlan_tci1=0x0000,dl_src=00:00:00:00:00:00,dl_dst=00:00:00:00:00:00,nw_src=0.0.0.0,nw_dst=0.0.0.0,nw_proto=0,nw_tos=0,nw_ecn=0,nw_ttl=0,nw_frag=no

bridge("brx")
-------------
 0. in_port=1, priority 32768
    output:2

Final flow: unchanged
Megaflow: recirc_id=0,eth,ip,in_port=1,nw_frag=no
Datapath actions: 3
"#,
        "recirc_id=0,eth,in_port=1",
    );
    check_megaflow(
        &of,
        "in_port=2",
        r#"Flow: in_port=2,vlan_tci=0x0000,dl_src=00:00:00:00:00:00,dl_dst=00:00:00:00:00:00,dl_type=0x0000

bridge("brx")
-------------
 0. No match.
    drop

Final flow: unchanged
Megaflow: recirc_id=0,eth,in_port=2,dl_type=0x0000
Datapath actions: drop
"#,
        "recirc_id=0,eth,in_port=2",
    );
    check_megaflow(
        &of,
        "in_port=1,tcp6,tp_src=1,tp_dst=2",
        r#"Flow: tcp6,in_port=1,vlan_tci=0x0000,dl_src=00:00:00:00:00:00,dl_dst=00:00:00:00:00:00,ipv6_src=::,ipv6_dst=::,ipv6_label=0x00000,nw_tos=0,nw_ecn=0,nw_ttl=0,nw_frag=no,tp_src=1,tp_dst=2,tcp_flags=0

bridge("brx")
-------------
 0. in_port=1, priority 32768
    output:2

Final flow: unchanged
Megaflow: recirc_id=0,eth,ipv6,in_port=1,nw_frag=no
Datapath actions: 3
"#,
        "recirc_id=0,eth,in_port=1",
    );
    check_megaflow(
        &of,
        "in_port=1,ip,nw_frag=first",
        r#"Flow: ip,in_port=1,vlan_tci=0x0000,dl_src=00:00:00:00:00:00,dl_dst=00:00:00:00:00:00,nw_src=0.0.0.0,nw_dst=0.0.0.0,nw_proto=0,nw_tos=0,nw_ecn=0,nw_ttl=0,nw_frag=first

bridge("brx")
-------------
 0. in_port=1, priority 32768
    output:2

Final flow: unchanged
Megaflow: recirc_id=0,eth,ip,in_port=1,nw_frag=first
Datapath actions: 3
"#,
        "recirc_id=0,eth,in_port=1",
    );
    check_megaflow(
        &of,
        "in_port=1,ip,nw_frag=later",
        r#"Flow: ip,in_port=1,vlan_tci=0x0000,dl_src=00:00:00:00:00:00,dl_dst=00:00:00:00:00:00,nw_src=0.0.0.0,nw_dst=0.0.0.0,nw_proto=0,nw_tos=0,nw_ecn=0,nw_ttl=0,nw_frag=later

bridge("brx")
-------------
 0. in_port=1, priority 32768
    output:2

Final flow: unchanged
Megaflow: recirc_id=0,eth,ip,in_port=1,nw_frag=later
Datapath actions: 3
"#,
        "recirc_id=0,eth,in_port=1",
    );
    check_megaflow(
        &of,
        "in_port=1,tcp,tcp_flags=0x012",
        r#"Flow: tcp,in_port=1,vlan_tci=0x0000,dl_src=00:00:00:00:00:00,dl_dst=00:00:00:00:00:00,nw_src=0.0.0.0,nw_dst=0.0.0.0,nw_tos=0,nw_ecn=0,nw_ttl=0,nw_frag=no,tp_src=0,tp_dst=0,tcp_flags=syn|ack

bridge("brx")
-------------
 0. in_port=1, priority 32768
    output:2

Final flow: unchanged
Megaflow: recirc_id=0,eth,ip,in_port=1,nw_frag=no
Datapath actions: 3
"#,
        "recirc_id=0,eth,in_port=1",
    );
}

#[test]
fn multiout() {
    let of = bridge(&[
        "in_port=1 actions=output:2,output:3",
        "in_port=2 actions=output:1,output:2",
        "in_port=3 actions=drop",
    ]);
    check_megaflow(
        &of,
        "in_port=1,tcp",
        r#"Flow: tcp,in_port=1,vlan_tci=0x0000,dl_src=00:00:00:00:00:00,dl_dst=00:00:00:00:00:00,nw_src=0.0.0.0,nw_dst=0.0.0.0,nw_tos=0,nw_ecn=0,nw_ttl=0,nw_frag=no,tp_src=0,tp_dst=0,tcp_flags=0

bridge("brx")
-------------
 0. in_port=1, priority 32768
    output:2
    output:3

Final flow: unchanged
Megaflow: recirc_id=0,eth,ip,in_port=1,nw_frag=no
Datapath actions: 3,4
"#,
        "recirc_id=0,eth,in_port=1",
    );
    check_megaflow(
        &of,
        "in_port=2,tcp",
        r#"Flow: tcp,in_port=2,vlan_tci=0x0000,dl_src=00:00:00:00:00:00,dl_dst=00:00:00:00:00:00,nw_src=0.0.0.0,nw_dst=0.0.0.0,nw_tos=0,nw_ecn=0,nw_ttl=0,nw_frag=no,tp_src=0,tp_dst=0,tcp_flags=0

bridge("brx")
-------------
 0. in_port=2, priority 32768
    output:1
    output:2
     >> skipping output to input port

Final flow: unchanged
Megaflow: recirc_id=0,eth,ip,in_port=2,nw_frag=no
Datapath actions: 2
"#,
        "recirc_id=0,eth,in_port=2",
    );
    check_megaflow(
        &of,
        "in_port=3,tcp",
        r#"Flow: tcp,in_port=3,vlan_tci=0x0000,dl_src=00:00:00:00:00:00,dl_dst=00:00:00:00:00:00,nw_src=0.0.0.0,nw_dst=0.0.0.0,nw_tos=0,nw_ecn=0,nw_ttl=0,nw_frag=no,tp_src=0,tp_dst=0,tcp_flags=0

bridge("brx")
-------------
 0. in_port=3, priority 32768
    drop

Final flow: unchanged
Megaflow: recirc_id=0,eth,ip,in_port=3,nw_frag=no
Datapath actions: drop
"#,
        "recirc_id=0,eth,in_port=3",
    );
    check_megaflow(
        &of,
        "in_port=4,tcp",
        r#"Flow: tcp,in_port=4,vlan_tci=0x0000,dl_src=00:00:00:00:00:00,dl_dst=00:00:00:00:00:00,nw_src=0.0.0.0,nw_dst=0.0.0.0,nw_tos=0,nw_ecn=0,nw_ttl=0,nw_frag=no,tp_src=0,tp_dst=0,tcp_flags=0

bridge("brx")
-------------
 0. No match.
    drop

Final flow: unchanged
Megaflow: recirc_id=0,eth,ip,in_port=4,nw_frag=no
Datapath actions: drop
"#,
        "recirc_id=0,eth,in_port=4",
    );
}

#[test]
fn nomatch() {
    let of = bridge(&["priority=10,tcp,in_port=1 actions=output:2"]);
    check_megaflow(
        &of,
        "in_port=1,udp",
        r#"Flow: udp,in_port=1,vlan_tci=0x0000,dl_src=00:00:00:00:00:00,dl_dst=00:00:00:00:00:00,nw_src=0.0.0.0,nw_dst=0.0.0.0,nw_tos=0,nw_ecn=0,nw_ttl=0,nw_frag=no,tp_src=0,tp_dst=0

bridge("brx")
-------------
 0. No match.
    drop

Final flow: unchanged
Megaflow: recirc_id=0,eth,udp,in_port=1,nw_frag=no
Datapath actions: drop
"#,
        "recirc_id=0,eth,udp,in_port=1",
    );
    check_megaflow(
        &of,
        "in_port=1,tcp",
        r#"Flow: tcp,in_port=1,vlan_tci=0x0000,dl_src=00:00:00:00:00:00,dl_dst=00:00:00:00:00:00,nw_src=0.0.0.0,nw_dst=0.0.0.0,nw_tos=0,nw_ecn=0,nw_ttl=0,nw_frag=no,tp_src=0,tp_dst=0,tcp_flags=0

bridge("brx")
-------------
 0. tcp,in_port=1, priority 10
    output:2

Final flow: unchanged
Megaflow: recirc_id=0,eth,tcp,in_port=1,nw_frag=no
Datapath actions: 3
"#,
        "recirc_id=0,eth,tcp,in_port=1",
    );
}

#[test]
fn resubmit() {
    let of = bridge(&[
        "in_port=1 actions=resubmit(,1)",
        "in_port=2 actions=resubmit:3",
        "in_port=3 actions=output:1",
        "table=1, priority=5,ip actions=resubmit(,2),output:3",
        "table=2, ip,nw_dst=10.0.0.2 actions=output:2",
    ]);
    check_megaflow(
        &of,
        "in_port=1,ip,nw_dst=10.0.0.2",
        r#"Flow: ip,in_port=1,vlan_tci=0x0000,dl_src=00:00:00:00:00:00,dl_dst=00:00:00:00:00:00,nw_src=0.0.0.0,nw_dst=10.0.0.2,nw_proto=0,nw_tos=0,nw_ecn=0,nw_ttl=0,nw_frag=no

bridge("brx")
-------------
 0. in_port=1, priority 32768
    resubmit(,1)
 1. ip, priority 5
    resubmit(,2)
     2. ip,nw_dst=10.0.0.2, priority 32768
            output:2
    output:3

Final flow: unchanged
Megaflow: recirc_id=0,eth,ip,in_port=1,nw_dst=10.0.0.2,nw_frag=no
Datapath actions: 3,4
"#,
        "recirc_id=0,eth,ip,in_port=1,nw_dst=10.0.0.2",
    );
    check_megaflow(
        &of,
        "in_port=1,ip,nw_dst=10.0.0.3",
        r#"Flow: ip,in_port=1,vlan_tci=0x0000,dl_src=00:00:00:00:00:00,dl_dst=00:00:00:00:00:00,nw_src=0.0.0.0,nw_dst=10.0.0.3,nw_proto=0,nw_tos=0,nw_ecn=0,nw_ttl=0,nw_frag=no

bridge("brx")
-------------
 0. in_port=1, priority 32768
    resubmit(,1)
 1. ip, priority 5
    resubmit(,2)
     2. No match.
            drop
    output:3

Final flow: unchanged
Megaflow: recirc_id=0,eth,ip,in_port=1,nw_dst=10.0.0.3,nw_frag=no
Datapath actions: 4
"#,
        "recirc_id=0,eth,ip,in_port=1,nw_dst=10.0.0.3",
    );
    check(
        &of,
        "in_port=1,arp",
        r#"Flow: arp,in_port=1,vlan_tci=0x0000,dl_src=00:00:00:00:00:00,dl_dst=00:00:00:00:00:00,arp_spa=0.0.0.0,arp_tpa=0.0.0.0,arp_op=0,arp_sha=00:00:00:00:00:00,arp_tha=00:00:00:00:00:00

bridge("brx")
-------------
 0. in_port=1, priority 32768
    resubmit(,1)
 1. No match.
    drop

Final flow: unchanged
Megaflow: recirc_id=0,eth,arp,in_port=1
Datapath actions: drop
"#,
    );
    check_megaflow(
        &of,
        "in_port=2,tcp",
        r#"Flow: tcp,in_port=2,vlan_tci=0x0000,dl_src=00:00:00:00:00:00,dl_dst=00:00:00:00:00:00,nw_src=0.0.0.0,nw_dst=0.0.0.0,nw_tos=0,nw_ecn=0,nw_ttl=0,nw_frag=no,tp_src=0,tp_dst=0,tcp_flags=0

bridge("brx")
-------------
 0. in_port=2, priority 32768
    resubmit:3
 0. in_port=3, priority 32768
    output:1

Final flow: unchanged
Megaflow: recirc_id=0,eth,ip,in_port=2,nw_frag=no
Datapath actions: 2
"#,
        "recirc_id=0,eth,in_port=2",
    );
}

#[test]
fn goto() {
    let of = bridge(&[
        "in_port=1 actions=write_metadata:0x5,goto_table:1",
        "table=1, tcp,metadata=0x5 actions=set_field:0x7->reg0,goto_table:2",
        "table=1, priority=0 actions=drop",
        "table=2, reg0=0x7 actions=output:2",
    ]);
    check_megaflow(
        &of,
        "in_port=1,tcp",
        r#"Flow: tcp,in_port=1,vlan_tci=0x0000,dl_src=00:00:00:00:00:00,dl_dst=00:00:00:00:00:00,nw_src=0.0.0.0,nw_dst=0.0.0.0,nw_tos=0,nw_ecn=0,nw_ttl=0,nw_frag=no,tp_src=0,tp_dst=0,tcp_flags=0

bridge("brx")
-------------
 0. in_port=1, priority 32768
    write_metadata:0x5
    goto_table:1
 1. tcp,metadata=0x5, priority 32768
    set_field:0x7->reg0
    goto_table:2
 2. reg0=0x7, priority 32768
    output:2

Final flow: tcp,reg0=0x7,metadata=0x5,in_port=1,vlan_tci=0x0000,dl_src=00:00:00:00:00:00,dl_dst=00:00:00:00:00:00,nw_src=0.0.0.0,nw_dst=0.0.0.0,nw_tos=0,nw_ecn=0,nw_ttl=0,nw_frag=no,tp_src=0,tp_dst=0,tcp_flags=0
Megaflow: recirc_id=0,eth,tcp,in_port=1,nw_frag=no
Datapath actions: 3
"#,
        "recirc_id=0,eth,tcp,in_port=1",
    );
    check_megaflow(
        &of,
        "in_port=1,udp",
        r#"Flow: udp,in_port=1,vlan_tci=0x0000,dl_src=00:00:00:00:00:00,dl_dst=00:00:00:00:00:00,nw_src=0.0.0.0,nw_dst=0.0.0.0,nw_tos=0,nw_ecn=0,nw_ttl=0,nw_frag=no,tp_src=0,tp_dst=0

bridge("brx")
-------------
 0. in_port=1, priority 32768
    write_metadata:0x5
    goto_table:1
 1. priority 0
    drop

Final flow: udp,metadata=0x5,in_port=1,vlan_tci=0x0000,dl_src=00:00:00:00:00:00,dl_dst=00:00:00:00:00:00,nw_src=0.0.0.0,nw_dst=0.0.0.0,nw_tos=0,nw_ecn=0,nw_ttl=0,nw_frag=no,tp_src=0,tp_dst=0
Megaflow: recirc_id=0,eth,udp,in_port=1,nw_frag=no
Datapath actions: drop
"#,
        "recirc_id=0,eth,udp,in_port=1",
    );
    check_megaflow(
        &of,
        "in_port=2,udp",
        r#"Flow: udp,in_port=2,vlan_tci=0x0000,dl_src=00:00:00:00:00:00,dl_dst=00:00:00:00:00:00,nw_src=0.0.0.0,nw_dst=0.0.0.0,nw_tos=0,nw_ecn=0,nw_ttl=0,nw_frag=no,tp_src=0,tp_dst=0

bridge("brx")
-------------
 0. No match.
    drop

Final flow: unchanged
Megaflow: recirc_id=0,eth,ip,in_port=2,nw_frag=no
Datapath actions: drop
"#,
        "recirc_id=0,eth,in_port=2",
    );
}

#[test]
fn setfield() {
    let of = bridge(&[
        "ip,in_port=1 actions=mod_dl_src:02:00:00:00:00:aa,mod_nw_dst:10.0.0.9,output:2",
        "ip,in_port=3 actions=mod_dl_dst:02:00:00:00:00:bb,mod_nw_src:1.2.3.4,load:0x9->NXM_NX_IP_TTL[],output:1,mod_nw_src:5.6.7.8,output:2",
        "ipv6,in_port=4 actions=load:0x9->NXM_NX_IPV6_DST[0..63],load:0x20010db800000000->NXM_NX_IPV6_DST[64..127],output:1",
        "tcp,in_port=2 actions=mod_tp_dst:8080,mod_nw_tos:16,dec_ttl,output:1",
    ]);
    // fvs rewrites headers whether or not the packet already has the new
    // value, so its megaflow does not match the rewritten fields (OVS's does).
    check_deviating(
        &of,
        "in_port=1,tcp,nw_src=10.0.0.1,nw_dst=10.0.0.2,nw_ttl=64",
        r#"Flow: tcp,in_port=1,vlan_tci=0x0000,dl_src=00:00:00:00:00:00,dl_dst=00:00:00:00:00:00,nw_src=10.0.0.1,nw_dst=10.0.0.2,nw_tos=0,nw_ecn=0,nw_ttl=64,nw_frag=no,tp_src=0,tp_dst=0,tcp_flags=0

bridge("brx")
-------------
 0. ip,in_port=1, priority 32768
    mod_dl_src:02:00:00:00:00:aa
    mod_nw_dst:10.0.0.9
    output:2

Final flow: tcp,in_port=1,vlan_tci=0x0000,dl_src=02:00:00:00:00:aa,dl_dst=00:00:00:00:00:00,nw_src=10.0.0.1,nw_dst=10.0.0.9,nw_tos=0,nw_ecn=0,nw_ttl=64,nw_frag=no,tp_src=0,tp_dst=0,tcp_flags=0
Megaflow: recirc_id=0,eth,tcp,in_port=1,dl_src=00:00:00:00:00:00,nw_dst=10.0.0.2,nw_frag=no
Datapath actions: set(eth(src=02:00:00:00:00:aa)),set(ipv4(dst=10.0.0.9)),3
"#,
        &[
            (
                "Megaflow: recirc_id=0,eth,tcp,in_port=1,dl_src=00:00:00:00:00:00,nw_dst=10.0.0.2,nw_frag=no",
                "Megaflow: recirc_id=0,eth,ip,in_port=1",
            ),
        ],
    );
    // fvs rewrites headers whether or not the packet already has the new
    // value, so its megaflow does not match the rewritten fields (OVS's does).
    check_deviating(
        &of,
        "in_port=2,tcp,nw_ttl=64,tp_dst=80",
        r#"Flow: tcp,in_port=2,vlan_tci=0x0000,dl_src=00:00:00:00:00:00,dl_dst=00:00:00:00:00:00,nw_src=0.0.0.0,nw_dst=0.0.0.0,nw_tos=0,nw_ecn=0,nw_ttl=64,nw_frag=no,tp_src=0,tp_dst=80,tcp_flags=0

bridge("brx")
-------------
 0. tcp,in_port=2, priority 32768
    mod_tp_dst:8080
    mod_nw_tos:16
    dec_ttl
    output:1

Final flow: tcp,in_port=2,vlan_tci=0x0000,dl_src=00:00:00:00:00:00,dl_dst=00:00:00:00:00:00,nw_src=0.0.0.0,nw_dst=0.0.0.0,nw_tos=16,nw_ecn=0,nw_ttl=63,nw_frag=no,tp_src=0,tp_dst=8080,tcp_flags=0
Megaflow: recirc_id=0,eth,tcp,in_port=2,nw_tos=0,nw_ttl=64,nw_frag=no,tp_dst=80
Datapath actions: set(ipv4(tos=0x10/0xfc,ttl=63)),set(tcp(dst=8080)),2
"#,
        &[(
            "Megaflow: recirc_id=0,eth,tcp,in_port=2,nw_tos=0,nw_ttl=64,nw_frag=no,tp_dst=80",
            "Megaflow: recirc_id=0,eth,tcp,in_port=2,nw_ttl=64,nw_frag=not_later",
        )],
    );
    // fvs rewrites headers whether or not the packet already has the new
    // value, so its megaflow does not match the rewritten fields (OVS's does).
    check_deviating(
        &of,
        "in_port=2,tcp,nw_ttl=1,tp_dst=80",
        r#"Flow: tcp,in_port=2,vlan_tci=0x0000,dl_src=00:00:00:00:00:00,dl_dst=00:00:00:00:00:00,nw_src=0.0.0.0,nw_dst=0.0.0.0,nw_tos=0,nw_ecn=0,nw_ttl=1,nw_frag=no,tp_src=0,tp_dst=80,tcp_flags=0

bridge("brx")
-------------
 0. tcp,in_port=2, priority 32768
    mod_tp_dst:8080
    mod_nw_tos:16
    dec_ttl
     >> IPv4 decrement TTL exception

Final flow: tcp,in_port=2,vlan_tci=0x0000,dl_src=00:00:00:00:00:00,dl_dst=00:00:00:00:00:00,nw_src=0.0.0.0,nw_dst=0.0.0.0,nw_tos=16,nw_ecn=0,nw_ttl=1,nw_frag=no,tp_src=0,tp_dst=8080,tcp_flags=0
Megaflow: recirc_id=0,eth,tcp,in_port=2,nw_tos=0,nw_ttl=1,nw_frag=no,tp_dst=80
Datapath actions: set(ipv4(tos=0x10/0xfc)),set(tcp(dst=8080)),userspace(pid=0,controller(reason=2,dont_send=1,continuation=0,recirc_id=0,rule_cookie=0,controller_id=0,max_len=65535))
"#,
        &[(
            "Megaflow: recirc_id=0,eth,tcp,in_port=2,nw_tos=0,nw_ttl=1,nw_frag=no,tp_dst=80",
            "Megaflow: recirc_id=0,eth,tcp,in_port=2,nw_ttl=1,nw_frag=not_later",
        )],
    );
    // fvs rewrites headers whether or not the packet already has the new
    // value, so its megaflow does not match the rewritten fields (OVS's does).
    check_deviating(
        &of,
        "in_port=3,udp,nw_ttl=64",
        r#"Flow: udp,in_port=3,vlan_tci=0x0000,dl_src=00:00:00:00:00:00,dl_dst=00:00:00:00:00:00,nw_src=0.0.0.0,nw_dst=0.0.0.0,nw_tos=0,nw_ecn=0,nw_ttl=64,nw_frag=no,tp_src=0,tp_dst=0

bridge("brx")
-------------
 0. ip,in_port=3, priority 32768
    mod_dl_dst:02:00:00:00:00:bb
    mod_nw_src:1.2.3.4
    load:0x9->NXM_NX_IP_TTL[]
    output:1
    mod_nw_src:5.6.7.8
    output:2

Final flow: udp,in_port=3,vlan_tci=0x0000,dl_src=00:00:00:00:00:00,dl_dst=02:00:00:00:00:bb,nw_src=5.6.7.8,nw_dst=0.0.0.0,nw_tos=0,nw_ecn=0,nw_ttl=9,nw_frag=no,tp_src=0,tp_dst=0
Megaflow: recirc_id=0,eth,udp,in_port=3,dl_dst=00:00:00:00:00:00,nw_src=0.0.0.0,nw_ttl=64,nw_frag=no
Datapath actions: set(eth(dst=02:00:00:00:00:bb)),set(ipv4(src=1.2.3.4,ttl=9)),2,set(ipv4(src=5.6.7.8)),3
"#,
        &[
            (
                "Megaflow: recirc_id=0,eth,udp,in_port=3,dl_dst=00:00:00:00:00:00,nw_src=0.0.0.0,nw_ttl=64,nw_frag=no",
                "Megaflow: recirc_id=0,eth,ip,in_port=3",
            ),
        ],
    );
    // fvs rewrites headers whether or not the packet already has the new
    // value, so its megaflow does not match the rewritten fields (OVS's does).
    // OVS takes an IP packet of protocol 0 for one without an IP header and
    // leaves its addresses and TTL alone (matching nw_proto for that); fvs
    // rewrites them.
    check_deviating(
        &of,
        "in_port=4,ipv6,ipv6_dst=2001:db8::2",
        r#"Flow: ipv6,in_port=4,vlan_tci=0x0000,dl_src=00:00:00:00:00:00,dl_dst=00:00:00:00:00:00,ipv6_src=::,ipv6_dst=2001:db8::2,ipv6_label=0x00000,nw_proto=0,nw_tos=0,nw_ecn=0,nw_ttl=0,nw_frag=no

bridge("brx")
-------------
 0. ipv6,in_port=4, priority 32768
    load:0x9->NXM_NX_IPV6_DST[0..63]
    load:0x20010db800000000->NXM_NX_IPV6_DST[64..127]
    output:1

Final flow: ipv6,in_port=4,vlan_tci=0x0000,dl_src=00:00:00:00:00:00,dl_dst=00:00:00:00:00:00,ipv6_src=::,ipv6_dst=2001:db8::9,ipv6_label=0x00000,nw_proto=0,nw_tos=0,nw_ecn=0,nw_ttl=0,nw_frag=no
Megaflow: recirc_id=0,eth,ipv6,in_port=4,ipv6_dst=2001:db8::2,nw_proto=0,nw_frag=no
Datapath actions: 2
"#,
        &[
            (
                "Megaflow: recirc_id=0,eth,ipv6,in_port=4,ipv6_dst=2001:db8::2,nw_proto=0,nw_frag=no",
                "Megaflow: recirc_id=0,eth,ipv6,in_port=4",
            ),
            (
                "Datapath actions: 2",
                "Datapath actions: set(ipv6(dst=2001:db8::9)),2",
            ),
        ],
    );
}

#[test]
fn controller() {
    let of = bridge(&[
        "in_port=1 actions=CONTROLLER:65535",
        "in_port=2 actions=CONTROLLER:64,output:1",
        "cookie=0x1234, in_port=3 actions=controller(reason=no_match,max_len=100,id=3)",
    ]);
    check_megaflow(
        &of,
        "in_port=1,tcp",
        r#"Flow: tcp,in_port=1,vlan_tci=0x0000,dl_src=00:00:00:00:00:00,dl_dst=00:00:00:00:00:00,nw_src=0.0.0.0,nw_dst=0.0.0.0,nw_tos=0,nw_ecn=0,nw_ttl=0,nw_frag=no,tp_src=0,tp_dst=0,tcp_flags=0

bridge("brx")
-------------
 0. in_port=1, priority 32768
    CONTROLLER:65535

Final flow: unchanged
Megaflow: recirc_id=0,eth,ip,in_port=1,nw_frag=no
Datapath actions: userspace(pid=0,controller(reason=1,dont_send=1,continuation=0,recirc_id=0,rule_cookie=0,controller_id=0,max_len=65535))
"#,
        "recirc_id=0,eth,in_port=1",
    );
    check_megaflow(
        &of,
        "in_port=2,tcp",
        r#"Flow: tcp,in_port=2,vlan_tci=0x0000,dl_src=00:00:00:00:00:00,dl_dst=00:00:00:00:00:00,nw_src=0.0.0.0,nw_dst=0.0.0.0,nw_tos=0,nw_ecn=0,nw_ttl=0,nw_frag=no,tp_src=0,tp_dst=0,tcp_flags=0

bridge("brx")
-------------
 0. in_port=2, priority 32768
    CONTROLLER:64
    output:1

Final flow: unchanged
Megaflow: recirc_id=0,eth,ip,in_port=2,nw_frag=no
Datapath actions: userspace(pid=0,controller(reason=1,dont_send=1,continuation=0,recirc_id=0,rule_cookie=0,controller_id=0,max_len=64)),2
"#,
        "recirc_id=0,eth,in_port=2",
    );
    check_megaflow(
        &of,
        "in_port=3,tcp",
        r#"Flow: tcp,in_port=3,vlan_tci=0x0000,dl_src=00:00:00:00:00:00,dl_dst=00:00:00:00:00:00,nw_src=0.0.0.0,nw_dst=0.0.0.0,nw_tos=0,nw_ecn=0,nw_ttl=0,nw_frag=no,tp_src=0,tp_dst=0,tcp_flags=0

bridge("brx")
-------------
 0. in_port=3, priority 32768, cookie 0x1234
    controller(reason=no_match,max_len=100,id=3)

Final flow: unchanged
Megaflow: recirc_id=0,eth,ip,in_port=3,nw_frag=no
Datapath actions: userspace(pid=0,controller(reason=0,dont_send=1,continuation=0,recirc_id=0,rule_cookie=0x1234,controller_id=3,max_len=100))
"#,
        "recirc_id=0,eth,in_port=3",
    );
}

#[test]
fn vlan() {
    let of = bridge(&[
        "in_port=1 actions=push_vlan:0x8100,set_field:4106->vlan_vid,output:2",
        "in_port=3 actions=push_vlan:0x88a8,set_field:4116->vlan_vid,output:1,pop_vlan,output:2",
        "in_port=4 actions=push_vlan:0x8100,set_field:5->vlan_pcp,output:1",
        "in_port=2,dl_vlan=10 actions=pop_vlan,output:1",
    ]);
    check_megaflow(
        &of,
        "in_port=1,ip",
        r#"Flow: ip,in_port=1,vlan_tci=0x0000,dl_src=00:00:00:00:00:00,dl_dst=00:00:00:00:00:00,nw_src=0.0.0.0,nw_dst=0.0.0.0,nw_proto=0,nw_tos=0,nw_ecn=0,nw_ttl=0,nw_frag=no

bridge("brx")
-------------
 0. in_port=1, priority 32768
    push_vlan:0x8100
    set_field:4106->vlan_vid
    output:2

Final flow: ip,in_port=1,dl_vlan=10,dl_vlan_pcp=0,vlan_tci1=0x0000,dl_src=00:00:00:00:00:00,dl_dst=00:00:00:00:00:00,nw_src=0.0.0.0,nw_dst=0.0.0.0,nw_proto=0,nw_tos=0,nw_ecn=0,nw_ttl=0,nw_frag=no
Megaflow: recirc_id=0,eth,ip,in_port=1,nw_frag=no
Datapath actions: push_vlan(vid=10,pcp=0),3
"#,
        "recirc_id=0,eth,in_port=1",
    );
    check_megaflow(
        &of,
        "in_port=1,dl_vlan=5,ip",
        r#"Flow: ip,in_port=1,dl_vlan=5,dl_vlan_pcp=0,vlan_tci1=0x0000,dl_src=00:00:00:00:00:00,dl_dst=00:00:00:00:00:00,nw_src=0.0.0.0,nw_dst=0.0.0.0,nw_proto=0,nw_tos=0,nw_ecn=0,nw_ttl=0,nw_frag=no

bridge("brx")
-------------
 0. in_port=1, priority 32768
    push_vlan:0x8100
    set_field:4106->vlan_vid
    output:2

Final flow: ip,in_port=1,dl_vlan=10,dl_vlan_pcp=0,dl_vlan1=5,dl_vlan_pcp1=0,dl_src=00:00:00:00:00:00,dl_dst=00:00:00:00:00:00,nw_src=0.0.0.0,nw_dst=0.0.0.0,nw_proto=0,nw_tos=0,nw_ecn=0,nw_ttl=0,nw_frag=no
Megaflow: recirc_id=0,eth,ip,in_port=1,dl_vlan=5,dl_vlan_pcp=0,nw_frag=no
Datapath actions: push_vlan(vid=10,pcp=0),3
"#,
        "recirc_id=0,eth,in_port=1,dl_vlan=5,dl_vlan_pcp=0",
    );
    check_megaflow(
        &of,
        "in_port=2,dl_vlan=10,ip",
        r#"Flow: ip,in_port=2,dl_vlan=10,dl_vlan_pcp=0,vlan_tci1=0x0000,dl_src=00:00:00:00:00:00,dl_dst=00:00:00:00:00:00,nw_src=0.0.0.0,nw_dst=0.0.0.0,nw_proto=0,nw_tos=0,nw_ecn=0,nw_ttl=0,nw_frag=no

bridge("brx")
-------------
 0. in_port=2,dl_vlan=10, priority 32768
    pop_vlan
    output:1

Final flow: ip,in_port=2,vlan_tci=0x0000,dl_src=00:00:00:00:00:00,dl_dst=00:00:00:00:00:00,nw_src=0.0.0.0,nw_dst=0.0.0.0,nw_proto=0,nw_tos=0,nw_ecn=0,nw_ttl=0,nw_frag=no
Megaflow: recirc_id=0,eth,ip,in_port=2,dl_vlan=10,dl_vlan_pcp=0,nw_frag=no
Datapath actions: pop_vlan,2
"#,
        "recirc_id=0,eth,in_port=2,dl_vlan=10,dl_vlan_pcp=0",
    );
    check_megaflow(
        &of,
        "in_port=2,dl_vlan=11,ip",
        r#"Flow: ip,in_port=2,dl_vlan=11,dl_vlan_pcp=0,vlan_tci1=0x0000,dl_src=00:00:00:00:00:00,dl_dst=00:00:00:00:00:00,nw_src=0.0.0.0,nw_dst=0.0.0.0,nw_proto=0,nw_tos=0,nw_ecn=0,nw_ttl=0,nw_frag=no

bridge("brx")
-------------
 0. No match.
    drop

Final flow: unchanged
Megaflow: recirc_id=0,eth,ip,in_port=2,dl_vlan=11,nw_frag=no
Datapath actions: drop
"#,
        "recirc_id=0,eth,in_port=2,dl_vlan=11",
    );
    check_megaflow(
        &of,
        "in_port=3,tcp",
        r#"Flow: tcp,in_port=3,vlan_tci=0x0000,dl_src=00:00:00:00:00:00,dl_dst=00:00:00:00:00:00,nw_src=0.0.0.0,nw_dst=0.0.0.0,nw_tos=0,nw_ecn=0,nw_ttl=0,nw_frag=no,tp_src=0,tp_dst=0,tcp_flags=0

bridge("brx")
-------------
 0. in_port=3, priority 32768
    push_vlan:0x88a8
    set_field:4116->vlan_vid
    output:1
    pop_vlan
    output:2

Final flow: unchanged
Megaflow: recirc_id=0,eth,ip,in_port=3,nw_frag=no
Datapath actions: push_vlan(tpid=0x88a8,vid=20,pcp=0),2,pop_vlan,3
"#,
        "recirc_id=0,eth,in_port=3",
    );
    check_megaflow(
        &of,
        "in_port=4,tcp",
        r#"Flow: tcp,in_port=4,vlan_tci=0x0000,dl_src=00:00:00:00:00:00,dl_dst=00:00:00:00:00:00,nw_src=0.0.0.0,nw_dst=0.0.0.0,nw_tos=0,nw_ecn=0,nw_ttl=0,nw_frag=no,tp_src=0,tp_dst=0,tcp_flags=0

bridge("brx")
-------------
 0. in_port=4, priority 32768
    push_vlan:0x8100
    set_field:5->vlan_pcp
    output:1

Final flow: tcp,in_port=4,dl_vlan=0,dl_vlan_pcp=5,vlan_tci1=0x0000,dl_src=00:00:00:00:00:00,dl_dst=00:00:00:00:00:00,nw_src=0.0.0.0,nw_dst=0.0.0.0,nw_tos=0,nw_ecn=0,nw_ttl=0,nw_frag=no,tp_src=0,tp_dst=0,tcp_flags=0
Megaflow: recirc_id=0,eth,ip,in_port=4,nw_frag=no
Datapath actions: push_vlan(vid=0,pcp=5),2
"#,
        "recirc_id=0,eth,in_port=4",
    );
}

#[test]
fn vlan10() {
    let of = bridge(&[
        "in_port=1 actions=mod_vlan_vid:10,output:2",
        "in_port=4 actions=mod_vlan_pcp:5,output:1",
        "in_port=3 actions=mod_vlan_vid:7,mod_vlan_pcp:2,output:2,strip_vlan,output:4",
        "in_port=2,dl_vlan=10 actions=strip_vlan,output:1",
    ]);
    check_megaflow(
        &of,
        "in_port=1,ip",
        r#"Flow: ip,in_port=1,vlan_tci=0x0000,dl_src=00:00:00:00:00:00,dl_dst=00:00:00:00:00:00,nw_src=0.0.0.0,nw_dst=0.0.0.0,nw_proto=0,nw_tos=0,nw_ecn=0,nw_ttl=0,nw_frag=no

bridge("brx")
-------------
 0. in_port=1, priority 32768
    mod_vlan_vid:10
    output:2

Final flow: ip,in_port=1,dl_vlan=10,dl_vlan_pcp=0,vlan_tci1=0x0000,dl_src=00:00:00:00:00:00,dl_dst=00:00:00:00:00:00,nw_src=0.0.0.0,nw_dst=0.0.0.0,nw_proto=0,nw_tos=0,nw_ecn=0,nw_ttl=0,nw_frag=no
Megaflow: recirc_id=0,eth,ip,in_port=1,nw_frag=no
Datapath actions: push_vlan(vid=10,pcp=0),3
"#,
        "recirc_id=0,eth,in_port=1",
    );
    check_megaflow(
        &of,
        "in_port=1,dl_vlan=5,ip",
        r#"Flow: ip,in_port=1,dl_vlan=5,dl_vlan_pcp=0,vlan_tci1=0x0000,dl_src=00:00:00:00:00:00,dl_dst=00:00:00:00:00:00,nw_src=0.0.0.0,nw_dst=0.0.0.0,nw_proto=0,nw_tos=0,nw_ecn=0,nw_ttl=0,nw_frag=no

bridge("brx")
-------------
 0. in_port=1, priority 32768
    mod_vlan_vid:10
    output:2

Final flow: ip,in_port=1,dl_vlan=10,dl_vlan_pcp=0,vlan_tci1=0x0000,dl_src=00:00:00:00:00:00,dl_dst=00:00:00:00:00:00,nw_src=0.0.0.0,nw_dst=0.0.0.0,nw_proto=0,nw_tos=0,nw_ecn=0,nw_ttl=0,nw_frag=no
Megaflow: recirc_id=0,eth,ip,in_port=1,dl_vlan=5,dl_vlan_pcp=0,nw_frag=no
Datapath actions: pop_vlan,push_vlan(vid=10,pcp=0),3
"#,
        "recirc_id=0,eth,in_port=1,dl_vlan=5,dl_vlan_pcp=0",
    );
    check_megaflow(
        &of,
        "in_port=2,dl_vlan=10,ip",
        r#"Flow: ip,in_port=2,dl_vlan=10,dl_vlan_pcp=0,vlan_tci1=0x0000,dl_src=00:00:00:00:00:00,dl_dst=00:00:00:00:00:00,nw_src=0.0.0.0,nw_dst=0.0.0.0,nw_proto=0,nw_tos=0,nw_ecn=0,nw_ttl=0,nw_frag=no

bridge("brx")
-------------
 0. in_port=2,dl_vlan=10, priority 32768
    strip_vlan
    output:1

Final flow: ip,in_port=2,vlan_tci=0x0000,dl_src=00:00:00:00:00:00,dl_dst=00:00:00:00:00:00,nw_src=0.0.0.0,nw_dst=0.0.0.0,nw_proto=0,nw_tos=0,nw_ecn=0,nw_ttl=0,nw_frag=no
Megaflow: recirc_id=0,eth,ip,in_port=2,dl_vlan=10,dl_vlan_pcp=0,nw_frag=no
Datapath actions: pop_vlan,2
"#,
        "recirc_id=0,eth,in_port=2,dl_vlan=10,dl_vlan_pcp=0",
    );
    check_megaflow(
        &of,
        "in_port=4,tcp",
        r#"Flow: tcp,in_port=4,vlan_tci=0x0000,dl_src=00:00:00:00:00:00,dl_dst=00:00:00:00:00:00,nw_src=0.0.0.0,nw_dst=0.0.0.0,nw_tos=0,nw_ecn=0,nw_ttl=0,nw_frag=no,tp_src=0,tp_dst=0,tcp_flags=0

bridge("brx")
-------------
 0. in_port=4, priority 32768
    mod_vlan_pcp:5
    output:1

Final flow: tcp,in_port=4,dl_vlan=0,dl_vlan_pcp=5,vlan_tci1=0x0000,dl_src=00:00:00:00:00:00,dl_dst=00:00:00:00:00:00,nw_src=0.0.0.0,nw_dst=0.0.0.0,nw_tos=0,nw_ecn=0,nw_ttl=0,nw_frag=no,tp_src=0,tp_dst=0,tcp_flags=0
Megaflow: recirc_id=0,eth,ip,in_port=4,nw_frag=no
Datapath actions: push_vlan(vid=0,pcp=5),2
"#,
        "recirc_id=0,eth,in_port=4",
    );
    check_megaflow(
        &of,
        "in_port=4,dl_vlan=9,dl_vlan_pcp=1,tcp",
        r#"Flow: tcp,in_port=4,dl_vlan=9,dl_vlan_pcp=1,vlan_tci1=0x0000,dl_src=00:00:00:00:00:00,dl_dst=00:00:00:00:00:00,nw_src=0.0.0.0,nw_dst=0.0.0.0,nw_tos=0,nw_ecn=0,nw_ttl=0,nw_frag=no,tp_src=0,tp_dst=0,tcp_flags=0

bridge("brx")
-------------
 0. in_port=4, priority 32768
    mod_vlan_pcp:5
    output:1

Final flow: tcp,in_port=4,dl_vlan=9,dl_vlan_pcp=5,vlan_tci1=0x0000,dl_src=00:00:00:00:00:00,dl_dst=00:00:00:00:00:00,nw_src=0.0.0.0,nw_dst=0.0.0.0,nw_tos=0,nw_ecn=0,nw_ttl=0,nw_frag=no,tp_src=0,tp_dst=0,tcp_flags=0
Megaflow: recirc_id=0,eth,ip,in_port=4,dl_vlan=9,dl_vlan_pcp=1,nw_frag=no
Datapath actions: pop_vlan,push_vlan(vid=9,pcp=5),2
"#,
        "recirc_id=0,eth,in_port=4,dl_vlan=9,dl_vlan_pcp=1",
    );
    check_megaflow(
        &of,
        "in_port=3,udp",
        r#"Flow: udp,in_port=3,vlan_tci=0x0000,dl_src=00:00:00:00:00:00,dl_dst=00:00:00:00:00:00,nw_src=0.0.0.0,nw_dst=0.0.0.0,nw_tos=0,nw_ecn=0,nw_ttl=0,nw_frag=no,tp_src=0,tp_dst=0

bridge("brx")
-------------
 0. in_port=3, priority 32768
    mod_vlan_vid:7
    mod_vlan_pcp:2
    output:2
    strip_vlan
    output:4
     >> Nonexistent output port

Final flow: unchanged
Megaflow: recirc_id=0,eth,ip,in_port=3,nw_frag=no
Datapath actions: push_vlan(vid=7,pcp=2),3
"#,
        "recirc_id=0,eth,in_port=3",
    );
}

#[test]
fn drop() {
    let of = bridge(&[
        "in_port=1 actions=drop",
        "in_port=2 actions=drop",
        "priority=0 actions=NORMAL",
    ]);
    check_megaflow(
        &of,
        "in_port=1,tcp",
        r#"Flow: tcp,in_port=1,vlan_tci=0x0000,dl_src=00:00:00:00:00:00,dl_dst=00:00:00:00:00:00,nw_src=0.0.0.0,nw_dst=0.0.0.0,nw_tos=0,nw_ecn=0,nw_ttl=0,nw_frag=no,tp_src=0,tp_dst=0,tcp_flags=0

bridge("brx")
-------------
 0. in_port=1, priority 32768
    drop

Final flow: unchanged
Megaflow: recirc_id=0,eth,ip,in_port=1,nw_frag=no
Datapath actions: drop
"#,
        "recirc_id=0,eth,in_port=1",
    );
    check_megaflow(
        &of,
        "in_port=2,tcp",
        r#"Flow: tcp,in_port=2,vlan_tci=0x0000,dl_src=00:00:00:00:00:00,dl_dst=00:00:00:00:00:00,nw_src=0.0.0.0,nw_dst=0.0.0.0,nw_tos=0,nw_ecn=0,nw_ttl=0,nw_frag=no,tp_src=0,tp_dst=0,tcp_flags=0

bridge("brx")
-------------
 0. in_port=2, priority 32768
    drop

Final flow: unchanged
Megaflow: recirc_id=0,eth,ip,in_port=2,nw_frag=no
Datapath actions: drop
"#,
        "recirc_id=0,eth,in_port=2",
    );
    check_megaflow(
        &of,
        "in_port=3,tcp",
        r#"Flow: tcp,in_port=3,vlan_tci=0x0000,dl_src=00:00:00:00:00:00,dl_dst=00:00:00:00:00:00,nw_src=0.0.0.0,nw_dst=0.0.0.0,nw_tos=0,nw_ecn=0,nw_ttl=0,nw_frag=no,tp_src=0,tp_dst=0,tcp_flags=0

bridge("brx")
-------------
 0. priority 0
    NORMAL
     -> no learned MAC for destination, flooding

Final flow: unchanged
Megaflow: recirc_id=0,eth,ip,in_port=3,dl_src=00:00:00:00:00:00,dl_dst=00:00:00:00:00:00,nw_frag=no
Datapath actions: 1,2,3
"#,
        "recirc_id=0,eth,in_port=3,dl_src=00:00:00:00:00:00,dl_dst=00:00:00:00:00:00",
    );
}

#[test]
fn misc() {
    let of = bridge(&[
        "in_port=1 actions=output:9",
        "in_port=2 actions=resubmit(,1)",
        "in_port=3 actions=note:01.02.00.00.00.00,output:1,IN_PORT",
        "in_port=4 actions=FLOOD",
        "in_port=5 actions=ALL",
        "in_port=6 actions=LOCAL",
        "in_port=LOCAL actions=output:1",
        "table=1, actions=resubmit(,1)",
    ]);
    check_megaflow(
        &of,
        "in_port=1,tcp",
        r#"Flow: tcp,in_port=1,vlan_tci=0x0000,dl_src=00:00:00:00:00:00,dl_dst=00:00:00:00:00:00,nw_src=0.0.0.0,nw_dst=0.0.0.0,nw_tos=0,nw_ecn=0,nw_ttl=0,nw_frag=no,tp_src=0,tp_dst=0,tcp_flags=0

bridge("brx")
-------------
 0. in_port=1, priority 32768
    output:9
     >> Nonexistent output port

Final flow: unchanged
Megaflow: recirc_id=0,eth,ip,in_port=1,nw_frag=no
Datapath actions: drop
"#,
        "recirc_id=0,eth,in_port=1",
    );
    check_megaflow(
        &of,
        "in_port=2,tcp",
        r#"Flow: tcp,in_port=2,vlan_tci=0x0000,dl_src=00:00:00:00:00:00,dl_dst=00:00:00:00:00:00,nw_src=0.0.0.0,nw_dst=0.0.0.0,nw_tos=0,nw_ecn=0,nw_ttl=0,nw_frag=no,tp_src=0,tp_dst=0,tcp_flags=0

bridge("brx")
-------------
 0. in_port=2, priority 32768
    resubmit(,1)
 1. priority 32768
    resubmit(,1)
 1. priority 32768
    resubmit(,1)
 1. priority 32768
    resubmit(,1)
 1. priority 32768
    resubmit(,1)
 1. priority 32768
    resubmit(,1)
 1. priority 32768
    resubmit(,1)
 1. priority 32768
    resubmit(,1)
 1. priority 32768
    resubmit(,1)
 1. priority 32768
    resubmit(,1)
 1. priority 32768
    resubmit(,1)
 1. priority 32768
    resubmit(,1)
 1. priority 32768
    resubmit(,1)
 1. priority 32768
    resubmit(,1)
 1. priority 32768
    resubmit(,1)
 1. priority 32768
    resubmit(,1)
 1. priority 32768
    resubmit(,1)
 1. priority 32768
    resubmit(,1)
 1. priority 32768
    resubmit(,1)
 1. priority 32768
    resubmit(,1)
 1. priority 32768
    resubmit(,1)
 1. priority 32768
    resubmit(,1)
 1. priority 32768
    resubmit(,1)
 1. priority 32768
    resubmit(,1)
 1. priority 32768
    resubmit(,1)
 1. priority 32768
    resubmit(,1)
 1. priority 32768
    resubmit(,1)
 1. priority 32768
    resubmit(,1)
 1. priority 32768
    resubmit(,1)
 1. priority 32768
    resubmit(,1)
 1. priority 32768
    resubmit(,1)
 1. priority 32768
    resubmit(,1)
 1. priority 32768
    resubmit(,1)
 1. priority 32768
    resubmit(,1)
 1. priority 32768
    resubmit(,1)
 1. priority 32768
    resubmit(,1)
 1. priority 32768
    resubmit(,1)
 1. priority 32768
    resubmit(,1)
 1. priority 32768
    resubmit(,1)
 1. priority 32768
    resubmit(,1)
 1. priority 32768
    resubmit(,1)
 1. priority 32768
    resubmit(,1)
 1. priority 32768
    resubmit(,1)
 1. priority 32768
    resubmit(,1)
 1. priority 32768
    resubmit(,1)
 1. priority 32768
    resubmit(,1)
 1. priority 32768
    resubmit(,1)
 1. priority 32768
    resubmit(,1)
 1. priority 32768
    resubmit(,1)
 1. priority 32768
    resubmit(,1)
 1. priority 32768
    resubmit(,1)
 1. priority 32768
    resubmit(,1)
 1. priority 32768
    resubmit(,1)
 1. priority 32768
    resubmit(,1)
 1. priority 32768
    resubmit(,1)
 1. priority 32768
    resubmit(,1)
 1. priority 32768
    resubmit(,1)
 1. priority 32768
    resubmit(,1)
 1. priority 32768
    resubmit(,1)
 1. priority 32768
    resubmit(,1)
 1. priority 32768
    resubmit(,1)
 1. priority 32768
    resubmit(,1)
 1. priority 32768
    resubmit(,1)
 1. priority 32768
    resubmit(,1)
 1. priority 32768
    resubmit(,1)
 1. priority 32768
    resubmit(,1)
     >>>> over max translation depth 64 <<<<

Final flow: unchanged
Megaflow: recirc_id=0,eth,ip,in_port=2,nw_frag=no
Datapath actions: drop
Translation failed (Recursion too deep), packet is dropped.
"#,
        "recirc_id=0,eth,in_port=2",
    );
    check_megaflow(
        &of,
        "in_port=3,tcp",
        r#"Flow: tcp,in_port=3,vlan_tci=0x0000,dl_src=00:00:00:00:00:00,dl_dst=00:00:00:00:00:00,nw_src=0.0.0.0,nw_dst=0.0.0.0,nw_tos=0,nw_ecn=0,nw_ttl=0,nw_frag=no,tp_src=0,tp_dst=0,tcp_flags=0

bridge("brx")
-------------
 0. in_port=3, priority 32768
    note:01.02.00.00.00.00
    output:1
    IN_PORT

Final flow: unchanged
Megaflow: recirc_id=0,eth,ip,in_port=3,nw_frag=no
Datapath actions: 2,4
"#,
        "recirc_id=0,eth,in_port=3",
    );
    check_megaflow(
        &of,
        "in_port=4,tcp",
        r#"Flow: tcp,in_port=4,vlan_tci=0x0000,dl_src=00:00:00:00:00:00,dl_dst=00:00:00:00:00:00,nw_src=0.0.0.0,nw_dst=0.0.0.0,nw_tos=0,nw_ecn=0,nw_ttl=0,nw_frag=no,tp_src=0,tp_dst=0,tcp_flags=0

bridge("brx")
-------------
 0. in_port=4, priority 32768
    FLOOD

Final flow: unchanged
Megaflow: recirc_id=0,eth,ip,in_port=4,nw_frag=no
Datapath actions: 1,2,3,4
"#,
        "recirc_id=0,eth,in_port=4",
    );
    check_megaflow(
        &of,
        "in_port=LOCAL,tcp",
        r#"Flow: tcp,in_port=LOCAL,vlan_tci=0x0000,dl_src=00:00:00:00:00:00,dl_dst=00:00:00:00:00:00,nw_src=0.0.0.0,nw_dst=0.0.0.0,nw_tos=0,nw_ecn=0,nw_ttl=0,nw_frag=no,tp_src=0,tp_dst=0,tcp_flags=0

bridge("brx")
-------------
 0. in_port=LOCAL, priority 32768
    output:1

Final flow: unchanged
Megaflow: recirc_id=0,eth,ip,in_port=LOCAL,nw_frag=no
Datapath actions: 2
"#,
        "recirc_id=0,eth,in_port=LOCAL",
    );
}

#[test]
fn dec() {
    let of = bridge(&[
        "ip actions=dec_ttl,output:2",
        "ipv6 actions=dec_ttl(3,4),output:2",
        "arp actions=dec_ttl,output:2",
    ]);
    // OVS takes an IP packet of protocol 0 for one without an IP header and
    // leaves its addresses and TTL alone (matching nw_proto for that); fvs
    // rewrites them.
    check_deviating(
        &of,
        "in_port=1,ip,nw_ttl=5",
        r#"Flow: ip,in_port=1,vlan_tci=0x0000,dl_src=00:00:00:00:00:00,dl_dst=00:00:00:00:00:00,nw_src=0.0.0.0,nw_dst=0.0.0.0,nw_proto=0,nw_tos=0,nw_ecn=0,nw_ttl=5,nw_frag=no

bridge("brx")
-------------
 0. ip, priority 32768
    dec_ttl
    output:2

Final flow: ip,in_port=1,vlan_tci=0x0000,dl_src=00:00:00:00:00:00,dl_dst=00:00:00:00:00:00,nw_src=0.0.0.0,nw_dst=0.0.0.0,nw_proto=0,nw_tos=0,nw_ecn=0,nw_ttl=4,nw_frag=no
Megaflow: recirc_id=0,eth,ip,in_port=1,nw_proto=0,nw_ttl=5,nw_frag=no
Datapath actions: 3
"#,
        &[
            (
                "Megaflow: recirc_id=0,eth,ip,in_port=1,nw_proto=0,nw_ttl=5,nw_frag=no",
                "Megaflow: recirc_id=0,eth,ip,in_port=1,nw_ttl=5",
            ),
            (
                "Datapath actions: 3",
                "Datapath actions: set(ipv4(ttl=4)),3",
            ),
        ],
    );
    // OVS takes an IP packet of protocol 0 for one without an IP header and
    // leaves its addresses and TTL alone (matching nw_proto for that); fvs
    // rewrites them.
    check_deviating(
        &of,
        "in_port=1,ip,nw_ttl=0",
        r#"Flow: ip,in_port=1,vlan_tci=0x0000,dl_src=00:00:00:00:00:00,dl_dst=00:00:00:00:00:00,nw_src=0.0.0.0,nw_dst=0.0.0.0,nw_proto=0,nw_tos=0,nw_ecn=0,nw_ttl=0,nw_frag=no

bridge("brx")
-------------
 0. ip, priority 32768
    dec_ttl
     >> IPv4 decrement TTL exception

Final flow: unchanged
Megaflow: recirc_id=0,eth,ip,in_port=1,nw_proto=0,nw_ttl=0,nw_frag=no
Datapath actions: userspace(pid=0,controller(reason=2,dont_send=1,continuation=0,recirc_id=0,rule_cookie=0,controller_id=0,max_len=65535))
"#,
        &[(
            "Megaflow: recirc_id=0,eth,ip,in_port=1,nw_proto=0,nw_ttl=0,nw_frag=no",
            "Megaflow: recirc_id=0,eth,ip,in_port=1,nw_ttl=0",
        )],
    );
    // OVS takes an IP packet of protocol 0 for one without an IP header and
    // leaves its addresses and TTL alone (matching nw_proto for that); fvs
    // rewrites them.
    check_deviating(
        &of,
        "in_port=1,ipv6,nw_ttl=1",
        r#"Flow: ipv6,in_port=1,vlan_tci=0x0000,dl_src=00:00:00:00:00:00,dl_dst=00:00:00:00:00:00,ipv6_src=::,ipv6_dst=::,ipv6_label=0x00000,nw_proto=0,nw_tos=0,nw_ecn=0,nw_ttl=1,nw_frag=no

bridge("brx")
-------------
 0. ipv6, priority 32768
    dec_ttl(3,4)
     >> IPv6 decrement TTL exception

Final flow: unchanged
Megaflow: recirc_id=0,eth,ipv6,in_port=1,nw_proto=0,nw_ttl=1,nw_frag=no
Datapath actions: userspace(pid=0,controller(reason=2,dont_send=1,continuation=0,recirc_id=0,rule_cookie=0,controller_id=3,max_len=65535)),userspace(pid=0,controller(reason=2,dont_send=1,continuation=0,recirc_id=0,rule_cookie=0,controller_id=4,max_len=65535))
"#,
        &[(
            "Megaflow: recirc_id=0,eth,ipv6,in_port=1,nw_proto=0,nw_ttl=1,nw_frag=no",
            "Megaflow: recirc_id=0,eth,ipv6,in_port=1,nw_ttl=1",
        )],
    );
    // OVS's dec_ttl looks at nw_proto (the ARP opcode) and nw_ttl of any
    // packet; fvs's only at an IP packet's TTL.
    check_deviating(
        &of,
        "in_port=1,arp",
        r#"Flow: arp,in_port=1,vlan_tci=0x0000,dl_src=00:00:00:00:00:00,dl_dst=00:00:00:00:00:00,arp_spa=0.0.0.0,arp_tpa=0.0.0.0,arp_op=0,arp_sha=00:00:00:00:00:00,arp_tha=00:00:00:00:00:00

bridge("brx")
-------------
 0. arp, priority 32768
    dec_ttl
    output:2

Final flow: unchanged
Megaflow: recirc_id=0,eth,arp,in_port=1,arp_op=0,nw_ttl=0
Datapath actions: 3
"#,
        &[(
            "Megaflow: recirc_id=0,eth,arp,in_port=1,arp_op=0,nw_ttl=0",
            "Megaflow: recirc_id=0,eth,arp,in_port=1",
        )],
    );
}

#[test]
fn regs() {
    let of = bridge(&[
        "in_port=1 actions=load:0x5->NXM_NX_REG1[0..3],move:NXM_OF_IN_PORT[]->NXM_NX_REG2[0..15],resubmit(,1)",
        "in_port=3 actions=resubmit(1,2),output:4",
        "ip,in_port=2 actions=move:NXM_OF_IP_SRC[]->NXM_OF_IP_DST[],output:3",
        "table=1, reg1=0x5 actions=load:0x7->NXM_NX_REG3[],output:2",
        "table=2, in_port=1 actions=output:2",
    ]);
    check_megaflow(
        &of,
        "in_port=1,tcp",
        r#"Flow: tcp,in_port=1,vlan_tci=0x0000,dl_src=00:00:00:00:00:00,dl_dst=00:00:00:00:00:00,nw_src=0.0.0.0,nw_dst=0.0.0.0,nw_tos=0,nw_ecn=0,nw_ttl=0,nw_frag=no,tp_src=0,tp_dst=0,tcp_flags=0

bridge("brx")
-------------
 0. in_port=1, priority 32768
    load:0x5->NXM_NX_REG1[0..3]
    move:NXM_OF_IN_PORT[]->NXM_NX_REG2[0..15]
     -> NXM_NX_REG2[0..15] is now 0x1
    resubmit(,1)
 1. reg1=0x5, priority 32768
    load:0x7->NXM_NX_REG3[]
    output:2

Final flow: tcp,reg1=0x5,reg2=0x1,reg3=0x7,in_port=1,vlan_tci=0x0000,dl_src=00:00:00:00:00:00,dl_dst=00:00:00:00:00:00,nw_src=0.0.0.0,nw_dst=0.0.0.0,nw_tos=0,nw_ecn=0,nw_ttl=0,nw_frag=no,tp_src=0,tp_dst=0,tcp_flags=0
Megaflow: recirc_id=0,eth,ip,in_port=1,nw_frag=no
Datapath actions: 3
"#,
        "recirc_id=0,eth,in_port=1",
    );
    // OVS takes an IP packet of protocol 0 for one without an IP header and
    // leaves its addresses and TTL alone (matching nw_proto for that); fvs
    // rewrites them.
    // OVS also matches the destination of a move.
    check_deviating(
        &of,
        "in_port=2,ip,nw_src=1.1.1.1,nw_dst=2.2.2.2",
        r#"Flow: ip,in_port=2,vlan_tci=0x0000,dl_src=00:00:00:00:00:00,dl_dst=00:00:00:00:00:00,nw_src=1.1.1.1,nw_dst=2.2.2.2,nw_proto=0,nw_tos=0,nw_ecn=0,nw_ttl=0,nw_frag=no

bridge("brx")
-------------
 0. ip,in_port=2, priority 32768
    move:NXM_OF_IP_SRC[]->NXM_OF_IP_DST[]
     -> NXM_OF_IP_DST[] is now 1.1.1.1
    output:3

Final flow: ip,in_port=2,vlan_tci=0x0000,dl_src=00:00:00:00:00:00,dl_dst=00:00:00:00:00:00,nw_src=1.1.1.1,nw_dst=1.1.1.1,nw_proto=0,nw_tos=0,nw_ecn=0,nw_ttl=0,nw_frag=no
Megaflow: recirc_id=0,eth,ip,in_port=2,nw_src=1.1.1.1,nw_dst=2.2.2.2,nw_frag=no
Datapath actions: 4
"#,
        &[
            (
                "Megaflow: recirc_id=0,eth,ip,in_port=2,nw_src=1.1.1.1,nw_dst=2.2.2.2,nw_frag=no",
                "Megaflow: recirc_id=0,eth,ip,in_port=2,nw_src=1.1.1.1",
            ),
            (
                "Datapath actions: 4",
                "Datapath actions: set(ipv4(dst=1.1.1.1)),4",
            ),
        ],
    );
    check_megaflow(
        &of,
        "in_port=3,tcp",
        r#"Flow: tcp,in_port=3,vlan_tci=0x0000,dl_src=00:00:00:00:00:00,dl_dst=00:00:00:00:00:00,nw_src=0.0.0.0,nw_dst=0.0.0.0,nw_tos=0,nw_ecn=0,nw_ttl=0,nw_frag=no,tp_src=0,tp_dst=0,tcp_flags=0

bridge("brx")
-------------
 0. in_port=3, priority 32768
    resubmit(1,2)
     2. in_port=1, priority 32768
            output:2
    output:4
     >> Nonexistent output port

Final flow: unchanged
Megaflow: recirc_id=0,eth,ip,in_port=3,nw_frag=no
Datapath actions: 3
"#,
        "recirc_id=0,eth,in_port=3",
    );
}

#[test]
fn cookie() {
    let of = bridge(&[
        "cookie=0xff, priority=100,tcp,in_port=1,tp_dst=80 actions=output:2",
        "priority=1 actions=resubmit(,10)",
        "table=10, priority=7 actions=output:3",
    ]);
    check_megaflow(
        &of,
        "in_port=1,tcp,tp_dst=80",
        r#"Flow: tcp,in_port=1,vlan_tci=0x0000,dl_src=00:00:00:00:00:00,dl_dst=00:00:00:00:00:00,nw_src=0.0.0.0,nw_dst=0.0.0.0,nw_tos=0,nw_ecn=0,nw_ttl=0,nw_frag=no,tp_src=0,tp_dst=80,tcp_flags=0

bridge("brx")
-------------
 0. tcp,in_port=1,tp_dst=80, priority 100, cookie 0xff
    output:2

Final flow: unchanged
Megaflow: recirc_id=0,eth,tcp,in_port=1,nw_frag=no,tp_dst=80
Datapath actions: 3
"#,
        "recirc_id=0,eth,tcp,in_port=1,tp_dst=80",
    );
    check_megaflow(
        &of,
        "in_port=1,tcp,tp_dst=81",
        r#"Flow: tcp,in_port=1,vlan_tci=0x0000,dl_src=00:00:00:00:00:00,dl_dst=00:00:00:00:00:00,nw_src=0.0.0.0,nw_dst=0.0.0.0,nw_tos=0,nw_ecn=0,nw_ttl=0,nw_frag=no,tp_src=0,tp_dst=81,tcp_flags=0

bridge("brx")
-------------
 0. priority 1
    resubmit(,10)
10. priority 7
    output:3

Final flow: unchanged
Megaflow: recirc_id=0,eth,tcp,in_port=1,nw_frag=no,tp_dst=81
Datapath actions: 4
"#,
        "recirc_id=0,eth,tcp,in_port=1,tp_dst=81",
    );
}

/// A frame from `odpr2` (MAC 02:00:00:00:00:02): what OVS learned from.
const FROM_ODPR2: &str = "ffffffffffff02000000000208004500002000010000401166ca0a0000010a00000203e80035000c0000787878780000000000000000000000000000";

/// Translates a real packet (which, unlike a trace, learns its source MAC).
fn receive(of: &Ofproto, frame_hex: &str, odp_port: u32) {
    use fvs_datapath::extract::{extract, ExtractStats};
    use fvs_datapath::key::FlowKey;
    use fvs_datapath::packet::PacketPool;
    use fvs_datapath::upcall::Upcall;
    let frame: Vec<u8> = (0..frame_hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&frame_hex[i..i + 2], 16).expect("hex"))
        .collect();
    let pool = PacketPool::new(4, false).expect("pool");
    let mut pkt = pool.packet_from(&frame).expect("buffer");
    pkt.meta_mut().in_port = odp_port;
    let mut key = FlowKey::ZERO;
    extract(&mut pkt, &mut key, &mut ExtractStats::default());
    of.translate(&key, &pkt).expect("translation");
}

#[test]
fn normal_learning_switch() {
    let of = bridge(&["priority=0 actions=NORMAL"]);
    receive(&of, FROM_ODPR2, 3);
    check_megaflow(
        &of,
        "in_port=1,dl_src=02:00:00:00:00:01,dl_dst=02:00:00:00:00:02,tcp",
        r#"Flow: tcp,in_port=1,vlan_tci=0x0000,dl_src=02:00:00:00:00:01,dl_dst=02:00:00:00:00:02,nw_src=0.0.0.0,nw_dst=0.0.0.0,nw_tos=0,nw_ecn=0,nw_ttl=0,nw_frag=no,tp_src=0,tp_dst=0,tcp_flags=0

bridge("brx")
-------------
 0. priority 0
    NORMAL
     -> forwarding to learned port

Final flow: unchanged
Megaflow: recirc_id=0,eth,ip,in_port=1,dl_src=02:00:00:00:00:01,dl_dst=02:00:00:00:00:02,nw_frag=no
Datapath actions: 3
"#,
        "recirc_id=0,eth,in_port=1,dl_src=02:00:00:00:00:01,dl_dst=02:00:00:00:00:02",
    );
    check_megaflow(
        &of,
        "in_port=2,dl_src=02:00:00:00:00:01,dl_dst=02:00:00:00:00:02,tcp",
        r#"Flow: tcp,in_port=2,vlan_tci=0x0000,dl_src=02:00:00:00:00:01,dl_dst=02:00:00:00:00:02,nw_src=0.0.0.0,nw_dst=0.0.0.0,nw_tos=0,nw_ecn=0,nw_ttl=0,nw_frag=no,tp_src=0,tp_dst=0,tcp_flags=0

bridge("brx")
-------------
 0. priority 0
    NORMAL
     -> learned port is input port, dropping

Final flow: unchanged
Megaflow: recirc_id=0,eth,ip,in_port=2,dl_src=02:00:00:00:00:01,dl_dst=02:00:00:00:00:02,nw_frag=no
Datapath actions: drop
"#,
        "recirc_id=0,eth,in_port=2,dl_src=02:00:00:00:00:01,dl_dst=02:00:00:00:00:02",
    );
    // OVS's NORMAL also looks at the ARP opcode (for gratuitous ARPs).
    check_deviating(
        &of,
        "in_port=1,dl_src=02:00:00:00:00:01,dl_dst=ff:ff:ff:ff:ff:ff,arp",
        r#"Flow: arp,in_port=1,vlan_tci=0x0000,dl_src=02:00:00:00:00:01,dl_dst=ff:ff:ff:ff:ff:ff,arp_spa=0.0.0.0,arp_tpa=0.0.0.0,arp_op=0,arp_sha=00:00:00:00:00:00,arp_tha=00:00:00:00:00:00

bridge("brx")
-------------
 0. priority 0
    NORMAL
     -> no learned MAC for destination, flooding

Final flow: unchanged
Megaflow: recirc_id=0,eth,arp,in_port=1,dl_src=02:00:00:00:00:01,dl_dst=ff:ff:ff:ff:ff:ff,arp_op=0
Datapath actions: 1,3,4
"#,
        &[
            (
                "Megaflow: recirc_id=0,eth,arp,in_port=1,dl_src=02:00:00:00:00:01,dl_dst=ff:ff:ff:ff:ff:ff,arp_op=0",
                "Megaflow: recirc_id=0,eth,in_port=1,dl_src=02:00:00:00:00:01,dl_dst=ff:ff:ff:ff:ff:ff",
            ),
        ],
    );
    check_megaflow(
        &of,
        "in_port=1,dl_src=02:00:00:00:00:01,dl_dst=01:00:5e:00:00:01,udp",
        r#"Flow: udp,in_port=1,vlan_tci=0x0000,dl_src=02:00:00:00:00:01,dl_dst=01:00:5e:00:00:01,nw_src=0.0.0.0,nw_dst=0.0.0.0,nw_tos=0,nw_ecn=0,nw_ttl=0,nw_frag=no,tp_src=0,tp_dst=0

bridge("brx")
-------------
 0. priority 0
    NORMAL
     -> no learned MAC for destination, flooding

Final flow: unchanged
Megaflow: recirc_id=0,eth,ip,in_port=1,dl_src=02:00:00:00:00:01,dl_dst=01:00:5e:00:00:01,nw_frag=no
Datapath actions: 1,3,4
"#,
        "recirc_id=0,eth,in_port=1,dl_src=02:00:00:00:00:01,dl_dst=01:00:5e:00:00:01",
    );
    check_megaflow(
        &of,
        "in_port=1,dl_src=02:00:00:00:00:01,dl_dst=01:80:c2:00:00:00",
        r#"Flow: in_port=1,vlan_tci=0x0000,dl_src=02:00:00:00:00:01,dl_dst=01:80:c2:00:00:00,dl_type=0x0000

bridge("brx")
-------------
 0. priority 0
    NORMAL
     -> packet has reserved destination MAC, dropping

Final flow: unchanged
Megaflow: recirc_id=0,eth,in_port=1,dl_src=02:00:00:00:00:01,dl_dst=01:80:c2:00:00:00,dl_type=0x0000
Datapath actions: drop
"#,
        "recirc_id=0,eth,in_port=1,dl_src=02:00:00:00:00:01,dl_dst=01:80:c2:00:00:00",
    );
    check_megaflow(
        &of,
        "in_port=1,dl_src=01:00:00:00:00:01,dl_dst=02:00:00:00:00:09",
        r#"Flow: in_port=1,vlan_tci=0x0000,dl_src=01:00:00:00:00:01,dl_dst=02:00:00:00:00:09,dl_type=0x0000

bridge("brx")
-------------
 0. priority 0
    NORMAL
     -> no learned MAC for destination, flooding

Final flow: unchanged
Megaflow: recirc_id=0,eth,in_port=1,dl_src=01:00:00:00:00:01,dl_dst=02:00:00:00:00:09,dl_type=0x0000
Datapath actions: 1,3,4
"#,
        "recirc_id=0,eth,in_port=1,dl_src=01:00:00:00:00:01,dl_dst=02:00:00:00:00:09",
    );
    check_megaflow(
        &of,
        "in_port=1,dl_vlan=7,dl_src=02:00:00:00:00:01,dl_dst=02:00:00:00:00:02,ip",
        r#"Flow: ip,in_port=1,dl_vlan=7,dl_vlan_pcp=0,vlan_tci1=0x0000,dl_src=02:00:00:00:00:01,dl_dst=02:00:00:00:00:02,nw_src=0.0.0.0,nw_dst=0.0.0.0,nw_proto=0,nw_tos=0,nw_ecn=0,nw_ttl=0,nw_frag=no

bridge("brx")
-------------
 0. priority 0
    NORMAL
     -> no learned MAC for destination, flooding

Final flow: unchanged
Megaflow: recirc_id=0,eth,ip,in_port=1,dl_vlan=7,dl_src=02:00:00:00:00:01,dl_dst=02:00:00:00:00:02,nw_frag=no
Datapath actions: 1,3,4
"#,
        "recirc_id=0,eth,in_port=1,dl_vlan=7,dl_src=02:00:00:00:00:01,dl_dst=02:00:00:00:00:02",
    );
}

#[test]
fn normal_access_port() {
    let of = bridge(&["priority=0 actions=NORMAL"]);
    of.set_port_config("brx", "odpr3", VlanConfig::access(10), false)
        .expect("tag=10");
    check_megaflow(
        &of,
        "in_port=3,dl_src=02:00:00:00:00:03,dl_dst=02:00:00:00:00:09,tcp",
        r#"Flow: tcp,in_port=3,vlan_tci=0x0000,dl_src=02:00:00:00:00:03,dl_dst=02:00:00:00:00:09,nw_src=0.0.0.0,nw_dst=0.0.0.0,nw_tos=0,nw_ecn=0,nw_ttl=0,nw_frag=no,tp_src=0,tp_dst=0,tcp_flags=0

bridge("brx")
-------------
 0. priority 0
    NORMAL
     -> no learned MAC for destination, flooding

Final flow: unchanged
Megaflow: recirc_id=0,eth,ip,in_port=3,dl_src=02:00:00:00:00:03,dl_dst=02:00:00:00:00:09,nw_frag=no
Datapath actions: push_vlan(vid=10,pcp=0),1,2,3
"#,
        "recirc_id=0,eth,in_port=3,dl_src=02:00:00:00:00:03,dl_dst=02:00:00:00:00:09",
    );
    check_megaflow(
        &of,
        "in_port=3,dl_vlan=5,dl_src=02:00:00:00:00:03,dl_dst=02:00:00:00:00:09,tcp",
        r#"Flow: tcp,in_port=3,dl_vlan=5,dl_vlan_pcp=0,vlan_tci1=0x0000,dl_src=02:00:00:00:00:03,dl_dst=02:00:00:00:00:09,nw_src=0.0.0.0,nw_dst=0.0.0.0,nw_tos=0,nw_ecn=0,nw_ttl=0,nw_frag=no,tp_src=0,tp_dst=0,tcp_flags=0

bridge("brx")
-------------
 0. priority 0
    NORMAL
     >>>> dropping VLAN 5 tagged packet received on port odpr3 configured as VLAN 10 access port <<<<
     >> disallowed VLAN VID for this input port, dropping

Final flow: unchanged
Megaflow: recirc_id=0,eth,ip,in_port=3,dl_vlan=5,dl_src=02:00:00:00:00:03,dl_dst=02:00:00:00:00:09,nw_frag=no
Datapath actions: drop
"#,
        "recirc_id=0,eth,in_port=3,dl_vlan=5,dl_src=02:00:00:00:00:03,dl_dst=02:00:00:00:00:09",
    );
    check_megaflow(
        &of,
        "in_port=1,dl_vlan=10,dl_src=02:00:00:00:00:01,dl_dst=02:00:00:00:00:09,tcp",
        r#"Flow: tcp,in_port=1,dl_vlan=10,dl_vlan_pcp=0,vlan_tci1=0x0000,dl_src=02:00:00:00:00:01,dl_dst=02:00:00:00:00:09,nw_src=0.0.0.0,nw_dst=0.0.0.0,nw_tos=0,nw_ecn=0,nw_ttl=0,nw_frag=no,tp_src=0,tp_dst=0,tcp_flags=0

bridge("brx")
-------------
 0. priority 0
    NORMAL
     -> no learned MAC for destination, flooding

Final flow: unchanged
Megaflow: recirc_id=0,eth,ip,in_port=1,dl_vlan=10,dl_vlan_pcp=0,dl_src=02:00:00:00:00:01,dl_dst=02:00:00:00:00:09,nw_frag=no
Datapath actions: 1,3,pop_vlan,4
"#,
        "recirc_id=0,eth,in_port=1,dl_vlan=10,dl_vlan_pcp=0,dl_src=02:00:00:00:00:01,dl_dst=02:00:00:00:00:09",
    );
    check_megaflow(
        &of,
        "in_port=1,dl_vlan=10,dl_vlan_pcp=3,dl_src=02:00:00:00:00:01,dl_dst=ff:ff:ff:ff:ff:ff,tcp",
        r#"Flow: tcp,in_port=1,dl_vlan=10,dl_vlan_pcp=3,vlan_tci1=0x0000,dl_src=02:00:00:00:00:01,dl_dst=ff:ff:ff:ff:ff:ff,nw_src=0.0.0.0,nw_dst=0.0.0.0,nw_tos=0,nw_ecn=0,nw_ttl=0,nw_frag=no,tp_src=0,tp_dst=0,tcp_flags=0

bridge("brx")
-------------
 0. priority 0
    NORMAL
     -> no learned MAC for destination, flooding

Final flow: unchanged
Megaflow: recirc_id=0,eth,ip,in_port=1,dl_vlan=10,dl_vlan_pcp=3,dl_src=02:00:00:00:00:01,dl_dst=ff:ff:ff:ff:ff:ff,nw_frag=no
Datapath actions: 1,3,pop_vlan,4
"#,
        "recirc_id=0,eth,in_port=1,dl_vlan=10,dl_vlan_pcp=3,dl_src=02:00:00:00:00:01,dl_dst=ff:ff:ff:ff:ff:ff",
    );
    check_megaflow(
        &of,
        "in_port=9,tcp",
        r#"Flow: tcp,in_port=9,vlan_tci=0x0000,dl_src=00:00:00:00:00:00,dl_dst=00:00:00:00:00:00,nw_src=0.0.0.0,nw_dst=0.0.0.0,nw_tos=0,nw_ecn=0,nw_ttl=0,nw_frag=no,tp_src=0,tp_dst=0,tcp_flags=0

bridge("brx")
-------------
 0. priority 0
    NORMAL
     >>>> received packet on unknown port 9 <<<<
     >> no input bundle, dropping

Final flow: unchanged
Megaflow: recirc_id=0,eth,ip,in_port=9,dl_src=00:00:00:00:00:00,dl_dst=00:00:00:00:00:00,nw_frag=no
Datapath actions: drop
"#,
        "recirc_id=0,eth,in_port=9,dl_src=00:00:00:00:00:00,dl_dst=00:00:00:00:00:00",
    );
}

#[test]
fn normal_trunk_port() {
    let of = bridge(&["priority=0 actions=NORMAL"]);
    let trunk = VlanConfig {
        trunks: vec![20],
        ..Default::default()
    };
    of.set_port_config("brx", "odpr3", trunk, false)
        .expect("trunks=20");
    check_megaflow(
        &of,
        "in_port=3,dl_vlan=5,dl_src=02:00:00:00:00:03,dl_dst=02:00:00:00:00:09,tcp",
        r#"Flow: tcp,in_port=3,dl_vlan=5,dl_vlan_pcp=0,vlan_tci1=0x0000,dl_src=02:00:00:00:00:03,dl_dst=02:00:00:00:00:09,nw_src=0.0.0.0,nw_dst=0.0.0.0,nw_tos=0,nw_ecn=0,nw_ttl=0,nw_frag=no,tp_src=0,tp_dst=0,tcp_flags=0

bridge("brx")
-------------
 0. priority 0
    NORMAL
     >>>> dropping VLAN 5 packet received on port odpr3 not configured for trunking VLAN 5 <<<<
     >> disallowed VLAN VID for this input port, dropping

Final flow: unchanged
Megaflow: recirc_id=0,eth,ip,in_port=3,dl_vlan=5,dl_src=02:00:00:00:00:03,dl_dst=02:00:00:00:00:09,nw_frag=no
Datapath actions: drop
"#,
        "recirc_id=0,eth,in_port=3,dl_vlan=5,dl_src=02:00:00:00:00:03,dl_dst=02:00:00:00:00:09",
    );
    check_megaflow(
        &of,
        "in_port=3,dl_src=02:00:00:00:00:03,dl_dst=02:00:00:00:00:09,tcp",
        r#"Flow: tcp,in_port=3,vlan_tci=0x0000,dl_src=02:00:00:00:00:03,dl_dst=02:00:00:00:00:09,nw_src=0.0.0.0,nw_dst=0.0.0.0,nw_tos=0,nw_ecn=0,nw_ttl=0,nw_frag=no,tp_src=0,tp_dst=0,tcp_flags=0

bridge("brx")
-------------
 0. priority 0
    NORMAL
     >>>> dropping VLAN 0 packet received on port odpr3 not configured for trunking VLAN 0 <<<<
     >> disallowed VLAN VID for this input port, dropping

Final flow: unchanged
Megaflow: recirc_id=0,eth,ip,in_port=3,dl_src=02:00:00:00:00:03,dl_dst=02:00:00:00:00:09,nw_frag=no
Datapath actions: drop
"#,
        "recirc_id=0,eth,in_port=3,dl_src=02:00:00:00:00:03,dl_dst=02:00:00:00:00:09",
    );
}

#[test]
fn controller_sourced_and_unknown_input_ports() {
    let of = bridge(&["in_port=1 actions=output:2", "priority=0 actions=NORMAL"]);
    // No in_port: OVS traces from ANY, which NORMAL floods to every port.
    check_megaflow(
        &of,
        "tcp",
        r#"Flow: tcp,in_port=ANY,vlan_tci=0x0000,dl_src=00:00:00:00:00:00,dl_dst=00:00:00:00:00:00,nw_src=0.0.0.0,nw_dst=0.0.0.0,nw_tos=0,nw_ecn=0,nw_ttl=0,nw_frag=no,tp_src=0,tp_dst=0,tcp_flags=0

bridge("brx")
-------------
 0. priority 0
    NORMAL
     -> no learned MAC for destination, flooding

Final flow: unchanged
Megaflow: recirc_id=0,eth,ip,in_port=ANY,dl_src=00:00:00:00:00:00,dl_dst=00:00:00:00:00:00,nw_frag=no
Datapath actions: 1,2,3,4
"#,
        "recirc_id=0,eth,in_port=ANY,dl_src=00:00:00:00:00:00,dl_dst=00:00:00:00:00:00",
    );
    check_megaflow(
        &of,
        "in_port=LOCAL",
        r#"Flow: in_port=LOCAL,vlan_tci=0x0000,dl_src=00:00:00:00:00:00,dl_dst=00:00:00:00:00:00,dl_type=0x0000

bridge("brx")
-------------
 0. priority 0
    NORMAL
     -> no learned MAC for destination, flooding

Final flow: unchanged
Megaflow: recirc_id=0,eth,in_port=LOCAL,dl_src=00:00:00:00:00:00,dl_dst=00:00:00:00:00:00,dl_type=0x0000
Datapath actions: 2,3,4
"#,
        "recirc_id=0,eth,in_port=LOCAL,dl_src=00:00:00:00:00:00,dl_dst=00:00:00:00:00:00",
    );
    check_megaflow(
        &of,
        "in_port=9",
        r#"Flow: in_port=9,vlan_tci=0x0000,dl_src=00:00:00:00:00:00,dl_dst=00:00:00:00:00:00,dl_type=0x0000

bridge("brx")
-------------
 0. priority 0
    NORMAL
     >>>> received packet on unknown port 9 <<<<
     >> no input bundle, dropping

Final flow: unchanged
Megaflow: recirc_id=0,eth,in_port=9,dl_src=00:00:00:00:00:00,dl_dst=00:00:00:00:00:00,dl_type=0x0000
Datapath actions: drop
"#,
        "recirc_id=0,eth,in_port=9,dl_src=00:00:00:00:00:00,dl_dst=00:00:00:00:00:00",
    );
    check_megaflow(
        &of,
        "in_port=1,dl_vlan=5",
        r#"Flow: in_port=1,dl_vlan=5,dl_vlan_pcp=0,vlan_tci1=0x0000,dl_src=00:00:00:00:00:00,dl_dst=00:00:00:00:00:00,dl_type=0x0000

bridge("brx")
-------------
 0. in_port=1, priority 32768
    output:2

Final flow: unchanged
Megaflow: recirc_id=0,eth,in_port=1,dl_type=0x0000
Datapath actions: 3
"#,
        "recirc_id=0,eth,in_port=1",
    );
    check_megaflow(
        &of,
        "in_port=2,tcp,tp_dst=80",
        r#"Flow: tcp,in_port=2,vlan_tci=0x0000,dl_src=00:00:00:00:00:00,dl_dst=00:00:00:00:00:00,nw_src=0.0.0.0,nw_dst=0.0.0.0,nw_tos=0,nw_ecn=0,nw_ttl=0,nw_frag=no,tp_src=0,tp_dst=80,tcp_flags=0

bridge("brx")
-------------
 0. priority 0
    NORMAL
     -> no learned MAC for destination, flooding

Final flow: unchanged
Megaflow: recirc_id=0,eth,ip,in_port=2,dl_src=00:00:00:00:00:00,dl_dst=00:00:00:00:00:00,nw_frag=no
Datapath actions: 1,2,4
"#,
        "recirc_id=0,eth,in_port=2,dl_src=00:00:00:00:00:00,dl_dst=00:00:00:00:00:00",
    );
}

#[test]
fn a_trace_does_not_learn() {
    let of = bridge(&["priority=0 actions=NORMAL"]);
    trace(
        &of,
        "brx",
        "in_port=1,dl_src=02:00:00:00:00:01,dl_dst=02:00:00:00:00:02",
    )
    .expect("trace");
    assert!(of.fdb_entries("brx").expect("fdb").is_empty());
}

/// The first line of the trace of `flow`: how the flow was read.
fn flow_line(of: &Ofproto, flow: &str) -> String {
    let out = trace(of, "brx", flow).unwrap_or_else(|e| panic!("trace {flow}: {e}"));
    out.lines().next().unwrap_or_default().to_string()
}

#[test]
fn flows_as_ovs_reads_them() {
    let of = bridge(&["priority=0 actions=drop"]);
    for (flow, line) in [
        ("in_port=1,ip,nw_frag=no", "Flow: ip,in_port=1,vlan_tci=0x0000,dl_src=00:00:00:00:00:00,dl_dst=00:00:00:00:00:00,nw_src=0.0.0.0,nw_dst=0.0.0.0,nw_proto=0,nw_tos=0,nw_ecn=0,nw_ttl=0,nw_frag=no"),
        ("in_port=1,dl_vlan=0xffff", "Flow: in_port=1,vlan_tci=0x0000,dl_src=00:00:00:00:00:00,dl_dst=00:00:00:00:00:00,dl_type=0x0000"),
        ("in_port=1,vlan_tci=0x1005", "Flow: in_port=1,dl_vlan=5,dl_vlan_pcp=0,vlan_tci1=0x0000,dl_src=00:00:00:00:00:00,dl_dst=00:00:00:00:00:00,dl_type=0x0000"),
        ("in_port=1,vlan_vid=0x1007", "Flow: in_port=1,dl_vlan=7,dl_vlan_pcp=0,vlan_tci1=0x0000,dl_src=00:00:00:00:00:00,dl_dst=00:00:00:00:00:00,dl_type=0x0000"),
        ("in_port=1,vlan_tci=0x0005", "Flow: in_port=1,vlan_tci=0x0005,vlan_tci1=0x0000,dl_src=00:00:00:00:00:00,dl_dst=00:00:00:00:00:00,dl_type=0x0000"),
        ("in_port=1,tcp,tp_dst=0,tp_dst=81", "Flow: tcp,in_port=1,vlan_tci=0x0000,dl_src=00:00:00:00:00:00,dl_dst=00:00:00:00:00:00,nw_src=0.0.0.0,nw_dst=0.0.0.0,nw_tos=0,nw_ecn=0,nw_ttl=0,nw_frag=no,tp_src=0,tp_dst=81,tcp_flags=0"),
        ("in_port=1,tcp,tcp_flags=syn", "Flow: tcp,in_port=1,vlan_tci=0x0000,dl_src=00:00:00:00:00:00,dl_dst=00:00:00:00:00:00,nw_src=0.0.0.0,nw_dst=0.0.0.0,nw_tos=0,nw_ecn=0,nw_ttl=0,nw_frag=no,tp_src=0,tp_dst=0,tcp_flags=syn"),
        ("in_port=1,dl_type=0x0800,nw_proto=6,tp_dst=80", "Flow: tcp,in_port=1,vlan_tci=0x0000,dl_src=00:00:00:00:00:00,dl_dst=00:00:00:00:00:00,nw_src=0.0.0.0,nw_dst=0.0.0.0,nw_tos=0,nw_ecn=0,nw_ttl=0,nw_frag=no,tp_src=0,tp_dst=80,tcp_flags=0"),
        ("in_port=0", "Flow: in_port=ANY,vlan_tci=0x0000,dl_src=00:00:00:00:00:00,dl_dst=00:00:00:00:00:00,dl_type=0x0000"),
        ("in_port=1,tun_id=5", "Flow: tun_id=0x5,in_port=1,vlan_tci=0x0000,dl_src=00:00:00:00:00:00,dl_dst=00:00:00:00:00:00,dl_type=0x0000"),
        ("in_port=1,tcp,nw_src=1.2.3.4,nw_dst=5.6.7.8,tp_src=1", "Flow: tcp,in_port=1,vlan_tci=0x0000,dl_src=00:00:00:00:00:00,dl_dst=00:00:00:00:00:00,nw_src=1.2.3.4,nw_dst=5.6.7.8,nw_tos=0,nw_ecn=0,nw_ttl=0,nw_frag=no,tp_src=1,tp_dst=0,tcp_flags=0"),
        ("in_port=odpr2,ip", "Flow: ip,in_port=2,vlan_tci=0x0000,dl_src=00:00:00:00:00:00,dl_dst=00:00:00:00:00:00,nw_src=0.0.0.0,nw_dst=0.0.0.0,nw_proto=0,nw_tos=0,nw_ecn=0,nw_ttl=0,nw_frag=no"),
        ("in_port=\"odpr2\",ip", "Flow: ip,in_port=2,vlan_tci=0x0000,dl_src=00:00:00:00:00:00,dl_dst=00:00:00:00:00:00,nw_src=0.0.0.0,nw_dst=0.0.0.0,nw_proto=0,nw_tos=0,nw_ecn=0,nw_ttl=0,nw_frag=no"),
        ("in_port=1 tcp", "Flow: tcp,in_port=1,vlan_tci=0x0000,dl_src=00:00:00:00:00:00,dl_dst=00:00:00:00:00:00,nw_src=0.0.0.0,nw_dst=0.0.0.0,nw_tos=0,nw_ecn=0,nw_ttl=0,nw_frag=no,tp_src=0,tp_dst=0,tcp_flags=0"),
        ("in_port=1,metadata=5,reg0=3,tcp", "Flow: tcp,reg0=0x3,metadata=0x5,in_port=1,vlan_tci=0x0000,dl_src=00:00:00:00:00:00,dl_dst=00:00:00:00:00:00,nw_src=0.0.0.0,nw_dst=0.0.0.0,nw_tos=0,nw_ecn=0,nw_ttl=0,nw_frag=no,tp_src=0,tp_dst=0,tcp_flags=0"),
    ] {
        assert_eq!(flow_line(&of, flow), line, "{flow}");
    }
}

#[test]
fn errors_as_ovs_replies_them() {
    let of = bridge(&["priority=0 actions=drop"]);
    for (flow, error) in [
        ("foo=1", "Bad openflow flow syntax: foo=1: unknown field foo"),
        ("eth,in_port=1", "Bad openflow flow syntax: eth,in_port=1: unknown field eth"),
        ("in_port=1,actions=drop", "Bad openflow flow syntax: in_port=1,actions=drop: unknown field actions"),
        ("priority=3,in_port=1", "Bad openflow flow syntax: priority=3,in_port=1: unknown field priority"),
        ("in_port=1,NXM_OF_IN_PORT=1", "Bad openflow flow syntax: in_port=1,NXM_OF_IN_PORT=1: unknown field NXM_OF_IN_PORT"),
        ("in_port=1,nw_src=1.2.3.4", "Bad openflow flow syntax: in_port=1,nw_src=1.2.3.4: prerequisites not met for setting nw_src"),
        ("in_port=1,vlan_pcp=3", "Bad openflow flow syntax: in_port=1,vlan_pcp=3: prerequisites not met for setting vlan_pcp"),
        ("in_port=odpr3,udp,tp_dst=53", "Bad openflow flow syntax: in_port=odpr3,udp,tp_dst=53: prerequisites not met for setting tp_dst"),
        ("in_port=1,ip,nw_src=1.2.3.4/24", "Bad openflow flow syntax: in_port=1,ip,nw_src=1.2.3.4/24: bad value for nw_src (1.2.3.4/24: wildcards not allowed here)"),
        ("in_port=1,metadata=0x5/0xff", "Bad openflow flow syntax: in_port=1,metadata=0x5/0xff: bad value for metadata (0x5/0xff: wildcards not allowed here)"),
        ("in_port=1,ip,nw_frag=yes", "Bad openflow flow syntax: in_port=1,ip,nw_frag=yes: bad value for nw_frag (yes: wildcards not allowed here)"),
        ("in_port=1,ip,nw_frag=not_later", "Bad openflow flow syntax: in_port=1,ip,nw_frag=not_later: bad value for nw_frag (not_later: wildcards not allowed here)"),
        ("in_port=p9", "Bad openflow flow syntax: in_port=p9: bad value for in_port (p9: invalid or unknown port for in_port)"),
        ("in_port=99999", "Bad openflow flow syntax: in_port=99999: bad value for in_port (99999: invalid or unknown port for in_port)"),
        ("in_port=1,tcp,tp_dst=99999", "Bad openflow flow syntax: in_port=1,tcp,tp_dst=99999: bad value for tp_dst (99999: value too large for 2-byte field tcp_dst)"),
        ("in_port=1,reg0=0x100000000", "Bad openflow flow syntax: in_port=1,reg0=0x100000000: bad value for reg0 (0x100000000: value too large for 4-byte field reg0)"),
        ("in_port=1,icmp,icmp_type=300", "Bad openflow flow syntax: in_port=1,icmp,icmp_type=300: bad value for icmp_type (300: value too large for 1-byte field icmp_type)"),
        ("in_port=1,tcp,tp_dst", "Bad openflow flow syntax: in_port=1,tcp,tp_dst: bad value for tp_dst (: bad syntax for tcp_dst value)"),
        ("in_port=1,tcp,tp_dst=abc", "Bad openflow flow syntax: in_port=1,tcp,tp_dst=abc: bad value for tp_dst (abc: bad syntax for tcp_dst value)"),
        ("in_port=1,ip,nw_dst", "Bad openflow flow syntax: in_port=1,ip,nw_dst: bad value for nw_dst (: invalid IP address)"),
        ("in_port=1,ip,nw_dst=1.2.3", "Bad openflow flow syntax: in_port=1,ip,nw_dst=1.2.3: bad value for nw_dst (1.2.3: invalid IP address)"),
        ("in_port=1,dl_src=zz", "Bad openflow flow syntax: in_port=1,dl_src=zz: bad value for dl_src (zz: invalid Ethernet address)"),
        ("in_port=1,tcp,tcp_flags=0x1000", "Bad openflow flow syntax: in_port=1,tcp,tcp_flags=0x1000: bad value for tcp_flags (0x1000: unknown TCP flag(s))"),
        ("in_port=1,tcp,tp_dst=80,tp_dst=81", "Bad openflow flow syntax: in_port=1,tcp,tp_dst=80,tp_dst=81: field tp_dst set multiple times"),
        ("in_port=1,tcp,udp", "Bad openflow flow syntax: in_port=1,tcp,udp: Ethernet type set multiple times"),
        ("tcp,ip", "Bad openflow flow syntax: tcp,ip: Ethernet type set multiple times"),
        ("", "Cannot find the datapath"),
        ("recirc_id(0),in_port(2),eth_type(0x0800)", "Cannot find the datapath"),
    ] {
        assert_eq!(trace(&of, "brx", flow), Err(error.to_string()), "{flow}");
    }
    assert_eq!(
        trace(&of, "bry", "in_port=1"),
        Err("bry: unknown bridge".to_string())
    );
    // Values OVS silently truncates (nw_tos=5 is 4 to it, arp_op=300 is 44,
    // ipv6_label=0x123456 is 0x23456) are refused, as everywhere in fvs.
    for (flow, why) in [
        ("in_port=1,ip,nw_tos=5", "bad value for nw_tos (5: "),
        ("in_port=1,arp,arp_op=300", "bad value for arp_op (300: "),
        (
            "in_port=1,ipv6,ipv6_label=0x123456",
            "bad value for ipv6_label (0x123456: ",
        ),
    ] {
        let e = trace(&of, "brx", flow).expect_err(flow);
        assert!(
            e.starts_with(&format!("Bad openflow flow syntax: {flow}: {why}")),
            "{e}"
        );
    }
}

#[test]
fn parsed_flow_is_a_datapath_key() {
    let of = bridge(&[]);
    let (key, ofport) = parse_trace_flow(&of, "brx", "in_port=odpr3,udp,udp_dst=53").expect("flow");
    assert_eq!(ofport, 3);
    assert_eq!(key.in_port(), 4, "datapath port of odpr3");
    assert_eq!(key.nw_proto(), 17);
    let (key, ofport) = parse_trace_flow(&of, "brx", "arp").expect("flow");
    assert_eq!(ofport, 0xffff, "ANY");
    assert_eq!(key.in_port(), 0);
}

mod robustness {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Any text is a trace or a one-line error; nothing panics.
        #[test]
        fn any_text(text in "[a-z_0-9=,:./()\" *+-]{0,60}") {
            let of = bridge(&["priority=0 actions=NORMAL", "table=1,tcp actions=resubmit(,1)"]);
            match trace(&of, "brx", &text) {
                Ok(out) => prop_assert!(out.starts_with("Flow: ") && out.ends_with('\n')),
                Err(e) => prop_assert!(!e.contains('\n')),
            }
        }

        /// Flows built from real fields and odd values never panic either.
        #[test]
        fn field_soup(items in proptest::collection::vec(
            (prop::sample::select(vec![
                "in_port", "dl_vlan", "vlan_tci", "vlan_pcp", "dl_src", "nw_src", "tp_dst",
                "ipv6_src", "nd_target", "tcp_flags", "nw_frag", "reg3", "metadata", "tun_id",
                "ip", "tcp", "icmp6", "arp", "arp_op", "icmp_type",
            ]),
            prop::sample::select(vec![
                "", "0", "1", "0xffff", "65535", "4096", "-1", "1.2.3.4", "::1", "02:00:00:00:00:01",
                "first", "+syn", "0x1/0x1", "LOCAL", "odpr1", "\"", "*",
            ])),
            0..8,
        )) {
            let of = bridge(&["priority=0 actions=NORMAL"]);
            let text = items
                .iter()
                .map(|(k, v)| if v.is_empty() { (*k).to_string() } else { format!("{k}={v}") })
                .collect::<Vec<_>>()
                .join(",");
            let _ = trace(&of, "brx", &text);
        }
    }
}

#[test]
fn goto_table_inside_a_resubmit() {
    // Installed with ovs-ofctl -O OpenFlow13 (goto_table).
    let of = bridge(&[
        "in_port=1 actions=resubmit(,1),output:3",
        "table=1, actions=goto_table:2",
        "table=2, actions=output:2",
    ]);
    check_megaflow(
        &of,
        "in_port=1,tcp",
        r#"Flow: tcp,in_port=1,vlan_tci=0x0000,dl_src=00:00:00:00:00:00,dl_dst=00:00:00:00:00:00,nw_src=0.0.0.0,nw_dst=0.0.0.0,nw_tos=0,nw_ecn=0,nw_ttl=0,nw_frag=no,tp_src=0,tp_dst=0,tcp_flags=0

bridge("brx")
-------------
 0. in_port=1, priority 32768
    resubmit(,1)
     1. priority 32768
            goto_table:2
         2. priority 32768
            output:2
    output:3

Final flow: unchanged
Megaflow: recirc_id=0,eth,ip,in_port=1,nw_frag=no
Datapath actions: 3,4
"#,
        "recirc_id=0,eth,in_port=1",
    );
}
