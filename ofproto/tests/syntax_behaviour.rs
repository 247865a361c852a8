//! What parsed flows mean and how they print, case by case, as OVS 3.1
//! does (the expected strings were taken from `ovs-ofctl` and a real
//! `ovs-vswitchd`).

use fvs_ofproto::actions::{port, OfAction, PopVlanSyntax, SetFieldSyntax};
use fvs_ofproto::fields::FieldId;
use fvs_ofproto::flow::Match;
use fvs_ofproto::flow_mod::{FlowModCommand::*, FlowModFlags, FlowStats};
use fvs_ofproto::syntax::*;

fn canon_match(s: &str) -> String {
    let (m, p) = parse_match(s, None).unwrap_or_else(|e| panic!("{s}: {e}"));
    format_match(&m, p.unwrap_or(0x8000))
}

fn canon_actions(s: &str) -> String {
    format_actions(&parse_actions(s, None).unwrap_or_else(|e| panic!("{s}: {e}")))
}

#[test]
fn prerequisites_are_normalized_away_like_ovs_ofctl() {
    for (input, printed) in [
        ("nw_src=1.2.3.4", ""),
        ("tp_src=80", ""),
        ("ip,tp_src=80", "ip"),
        ("ipv6,nw_src=1.2.3.4", "ipv6"),
        ("arp_op=1", ""),
        ("icmp_type=3", ""),
        ("nw_tos=4", ""),
        ("icmp6,nd_target=::1", "icmp6"),
        (
            "icmp6,icmp_type=136,nd_sll=00:11:22:33:44:55",
            "icmp6,icmp_type=136",
        ),
        (
            "icmp6,icmp_type=135,icmp_code=1,nd_target=::1",
            "icmp6,icmp_type=135,icmp_code=1",
        ),
        ("tcp,tcp_flags=+syn,nw_proto=17", "udp"),
        ("ip,nw_frag=yes,arp", "arp"),
        ("ip,ipv6_src=::1", "ip"),
        // Shared slots: the name follows the protocol, wherever it was written.
        ("arp,nw_src=1.2.3.4", "arp,arp_spa=1.2.3.4"),
        ("arp,nw_dst=1.2.3.4/16", "arp,arp_tpa=1.2.0.0/16"),
        ("ip,arp_spa=1.2.3.4", "ip,nw_src=1.2.3.4"),
        ("arp,nw_proto=1", "arp,arp_op=1"),
        ("udp,tcp_src=80", "udp,tp_src=80"),
        ("tcp,tp_src=5,udp", "udp,tp_src=5"),
        ("icmp,tp_src=5", "icmp,icmp_type=5"),
        ("ip,nw_proto=6,tp_src=5", "tcp,tp_src=5"),
        ("dl_type=0x800,nw_proto=1", "icmp"),
        ("dl_type=0x0806", "arp"),
        ("eth_type=0x1234", "dl_type=0x1234"),
        ("tcp,ipv6", "tcp6"),
        ("ip4,ip_proto=132", "sctp"),
        ("ip6,nw_proto=58", "icmp6"),
        ("eth,ip", "ip"),
    ] {
        assert_eq!(canon_match(input), printed, "{input}");
    }
}

#[test]
fn vlan_matches() {
    for (input, printed) in [
        ("dl_vlan=0xffff", "vlan_tci=0x0000"),
        ("dl_vlan=5", "dl_vlan=5"),
        ("dl_vlan_pcp=3,dl_vlan=5", "dl_vlan=5,dl_vlan_pcp=3"),
        ("vlan_pcp=3", "dl_vlan_pcp=3"),
        ("dl_vlan=0xffff,dl_vlan_pcp=3", "dl_vlan=0,dl_vlan_pcp=3"),
        ("dl_vlan_pcp=3,dl_vlan=0xffff", "vlan_tci=0x0000"),
        ("vlan_tci=0xf123", "dl_vlan=291,dl_vlan_pcp=7"),
        ("vlan_tci=0x1123/0x1fff", "dl_vlan=291"),
        ("vlan_tci=0x5000/0xf000", "dl_vlan_pcp=2"),
        ("vlan_tci=0x5000/0xe000", "vlan_tci=0x4000/0xe000"),
        ("vlan_tci=0/0xfff", "vlan_tci=0x0000/0x0fff"),
        ("vlan_tci=0x0123", "vlan_tci=0x0123"),
        ("vlan_vid=5", "vlan_tci=0x0005/0x1fff"),
        ("vlan_vid=0x1005", "dl_vlan=5"),
        ("vlan_vid=0x1000/0x1000", "vlan_tci=0x1000/0x1000"),
        ("vlan_tci=0x1005,dl_vlan=7", "dl_vlan=7,dl_vlan_pcp=0"),
        ("dl_vlan=5,dl_vlan=6", "dl_vlan=6"),
        ("dl_vlan=5,dl_vlan=*", ""),
    ] {
        assert_eq!(canon_match(input), printed, "{input}");
    }
}

#[test]
fn values_masks_and_formats() {
    for (input, printed) in [
        ("ip,nw_src=10.0.0.1/255.255.255.0", "ip,nw_src=10.0.0.0/24"),
        ("ip,nw_src=1.2.3.4/0.255.0.0", "ip,nw_src=0.2.0.0/0.255.0.0"),
        ("ip,nw_src=1.2.3.4/0", "ip"),
        ("ip,nw_src=01.02.03.04", "ip,nw_src=1.2.3.4"),
        ("ip,nw_src=*", "ip"),
        ("dl_src=0:1:2:3:4:5", "dl_src=00:01:02:03:04:05"),
        (
            "dl_src=AA:BB:CC:DD:EE:FF/ff:ff:ff:00:00:00",
            "dl_src=aa:bb:cc:00:00:00/ff:ff:ff:00:00:00",
        ),
        (
            "ipv6,ipv6_src=2001:0db8:0:0:0:0:0:1",
            "ipv6,ipv6_src=2001:db8::1",
        ),
        (
            "ipv6,ipv6_src=2001:db8::1/ffff:ffff::",
            "ipv6,ipv6_src=2001:db8::/32",
        ),
        (
            "ipv6,ipv6_src=2001:db8::1/ffff:0:ffff::",
            "ipv6,ipv6_src=2001::/ffff:0:ffff::",
        ),
        ("ipv6,ipv6_label=5/5", "ipv6,ipv6_label=0x00005/0x00005"),
        ("tcp,tp_src=010", "tcp,tp_src=8"),
        ("tcp,tp_src=0x0050", "tcp,tp_src=80"),
        ("tcp,tp_src=+80", "tcp,tp_src=80"),
        ("tcp,tcp_src=5/0xff00", "tcp,tp_src=0x0/0xff00"),
        ("ip,nw_ttl=0x10", "ip,nw_ttl=16"),
        ("ip,ip_dscp=63", "ip,nw_tos=252"),
        ("ip,ip_dscp=1,nw_ecn=2", "ip,nw_tos=4,nw_ecn=2"),
        ("ip,ip_frag=first", "ip,nw_frag=first"),
        ("tcp,tcp_flags=0x12", "tcp,tcp_flags=syn|ack"),
        ("tcp,tcp_flags=0x12/0x12", "tcp,tcp_flags=+syn+ack"),
        ("tcp,tcp_flags=0x012/0xfff", "tcp,tcp_flags=syn|ack"),
        (
            "tcp,tcp_flags=0x800/0xf00",
            "tcp,tcp_flags=-ns-[200]-[400]+[800]",
        ),
        ("tcp,tcp_flags=[800]|syn", "tcp,tcp_flags=syn|[800]"),
        ("tcp,tcp_flags=0x2|ack", "tcp,tcp_flags=syn|ack"),
        ("tcp,tcp_flags=0/0", "tcp"),
        ("metadata=16", "metadata=0x10"),
        ("reg0=0x00000000ff", "reg0=0xff"),
        ("tunnel_id=5", "tun_id=0x5"),
        ("tun_tos=4,tun_ttl=64", "tun_tos=4,tun_ttl=64"),
        ("reg0[0..3]=5,reg0[8]=1", "reg0=0x105/0x10f"),
        ("in_port=LOCAL", "in_port=LOCAL"),
        ("in_port=local", "in_port=LOCAL"),
        ("in_port=NONE", "in_port=ANY"),
        ("in_port=4294967295", "in_port=ANY"),
        ("in_port=65280", "in_port=65280"),
        ("priority=010,ip", "priority=8,ip"),
        ("priority=32768,ip", "ip"),
    ] {
        assert_eq!(canon_match(input), printed, "{input}");
    }
}

#[test]
fn field_order_is_match_format_order() {
    let (m, p) = parse_match(
        "nd_tll=00:00:00:00:00:02,icmp6,icmp_type=136,ipv6_dst=::2,in_port=3,dl_vlan=4,reg2=1,tun_id=9,\
         metadata=7,dl_dst=00:00:00:00:00:01,ipv6_label=1,nw_ttl=9,nw_ecn=1,nw_tos=8,nw_frag=no,priority=1",
        None,
    )
    .unwrap();
    assert_eq!(
        format_match(&m, p.unwrap()),
        "priority=1,icmp6,reg2=0x1,tun_id=0x9,metadata=0x7,in_port=3,dl_vlan=4,dl_dst=00:00:00:00:00:01,\
         ipv6_dst=::2,ipv6_label=0x00001,nw_tos=8,nw_ecn=1,nw_ttl=9,nw_frag=no,icmp_type=136,nd_tll=00:00:00:00:00:02"
    );
}

#[test]
fn actions_print_as_ovs_prints_them() {
    for (input, printed) in [
        ("", "drop"),
        ("drop", "drop"),
        ("2", "output:2"),
        ("output(1)", "output:1"),
        ("in_port,IN_PORT,output:in_port", "IN_PORT,IN_PORT,IN_PORT"),
        ("normal,Normal,output:NORMAL", "NORMAL,NORMAL,NORMAL"),
        ("controller,controller:100,controller(),output:controller", "CONTROLLER:65535,CONTROLLER:100,CONTROLLER:65535,CONTROLLER:65535"),
        ("controller(reason=action,max_len=65535,id=0)", "CONTROLLER:65535"),
        ("controller(id=5)", "controller(id=5)"),
        ("controller(reason=no_match,id=3,max_len=100)", "controller(reason=no_match,max_len=100,id=3)"),
        ("output:65534,65528", "LOCAL,IN_PORT"),
        ("STRIP_VLAN,pop_vlan", "strip_vlan,pop_vlan"),
        ("push_vlan:33024", "push_vlan:0x8100"),
        ("Mod_Vlan_Vid:010", "mod_vlan_vid:8"),
        ("set_tunnel:5,set_tunnel64:5,set_tunnel:0x100000000,set_tunnel:0", "set_tunnel:0x5,set_tunnel64:0x5,set_tunnel64:0x100000000,set_tunnel:0"),
        ("resubmit(1),resubmit(in_port,1),resubmit(LOCAL,255),resubmit(LOCAL,3)", "resubmit:1,resubmit(,1),resubmit:LOCAL,resubmit(LOCAL,3)"),
        ("note:,note:0102030405,note:0102030405060708,NOTE:AB", "note:00.00.00.00.00.00,note:01.02.03.04.05.00,note:01.02.03.04.05.06.07.08.00.00.00.00.00.00,note:ab.00.00.00.00.00"),
        ("dec_ttl,dec_ttl(0),dec_ttl(1 2),dec_ttl(0,0)", "dec_ttl,dec_ttl,dec_ttl(1,2),dec_ttl(0,0)"),
        ("write_metadata:1/3", "write_metadata:0x1/0x3"),
        ("write_metadata:0x1/0xffffffffffffffff", "write_metadata:0x1"),
        ("write_metadata:0/0", "write_metadata:0/0"),
        ("load:1->reg0,LOAD:0x0->reg1,load:5->NXM_NX_REG2[5..7],load:1->reg3[5..5]", "load:0x1->NXM_NX_REG0[],load:0->NXM_NX_REG1[],load:0x5->NXM_NX_REG2[5..7],load:0x1->NXM_NX_REG3[5]"),
        ("load:1->in_port", "load:0x1->NXM_OF_IN_PORT[]"),
        ("load:0x0102030405060708090a0b0c0d0e0f10->NXM_NX_TUN_IPV6_SRC[]", "load:0x90a0b0c0d0e0f10->NXM_NX_TUN_IPV6_SRC[0..63],load:0x102030405060708->NXM_NX_TUN_IPV6_SRC[64..127]"),
        ("move:reg0->reg1,move:tun_id[0..31]->reg1[]", "move:NXM_NX_REG0[]->NXM_NX_REG1[],move:NXM_NX_TUN_ID[0..31]->NXM_NX_REG1[]"),
        ("set_field:0x1/0x3->reg0,set_field:0->reg0,set_field:LOCAL->in_port", "set_field:0x1/0x3->reg0,set_field:0->reg0,set_field:LOCAL->in_port"),
        ("set_field:80->tp_src,set_field:00:11:22:33:44:55->dl_dst", "set_field:80->tcp_src,set_field:00:11:22:33:44:55->eth_dst"),
        ("set_field:1.2.3.4/24->nw_dst,set_field:0x1005->vlan_tci", "set_field:1.2.3.0/24->ip_dst,set_field:0x1005->vlan_tci"),
        ("set_field:80/0xff->tcp_src,set_field:5->dl_vlan_pcp", "set_field:80/0xff->tcp_src,set_field:5->vlan_pcp"),
        ("set_nw_ttl:3,mod_nw_tos:010", "mod_nw_ttl:3,mod_nw_tos:8"),
        ("1 2,,3", "output:1,output:2,output:3"),
    ] {
        assert_eq!(canon_actions(input), printed, "{input}");
    }
}

#[test]
fn actions_parse_into_the_shared_types() {
    let acts = parse_actions(
        "pop_vlan,output:CONTROLLER,load:5->NXM_NX_REG2[4..7],goto_table:3",
        None,
    )
    .unwrap();
    assert_eq!(
        acts[0],
        OfAction::PopVlan {
            syntax: PopVlanSyntax::PopVlan
        }
    );
    assert!(matches!(
        acts[1],
        OfAction::Controller { max_len: 65535, .. }
    ));
    assert_eq!(
        acts[2],
        OfAction::SetField {
            field: FieldId::Reg2,
            value: 0x50,
            mask: 0xf0,
            syntax: SetFieldSyntax::Load
        }
    );
    assert_eq!(acts[3], OfAction::GotoTable(3));
}

#[test]
fn legacy_actions_need_no_prerequisites_but_set_field_does() {
    // As with ovs-ofctl and OpenFlow 1.0: these do nothing to non-IP packets.
    for a in [
        "mod_nw_src:1.2.3.4",
        "mod_tp_src:1",
        "dec_ttl",
        "mod_nw_tos:4",
        "strip_vlan",
    ] {
        assert!(
            parse_flow_mod(&format!("actions={a}"), Add, None).is_ok(),
            "{a}"
        );
    }
    for a in [
        "mod_nw_ecn:1",
        "mod_nw_ttl:1",
        "set_field:1->nw_ttl",
        "load:1->NXM_OF_IP_SRC[]",
    ] {
        assert!(
            parse_flow_mod(&format!("actions={a}"), Add, None).is_err(),
            "{a}"
        );
        assert!(
            parse_flow_mod(&format!("ip,actions={a}"), Add, None).is_ok(),
            "{a}"
        );
    }
    // A pushed tag satisfies a later vlan_vid set; a popped one no longer does.
    assert!(parse_flow_mod(
        "actions=push_vlan:0x8100,set_field:4101->vlan_vid",
        Add,
        None
    )
    .is_ok());
    assert!(parse_flow_mod("dl_vlan=1,actions=set_field:4101->vlan_vid", Add, None).is_ok());
    assert!(parse_flow_mod(
        "dl_vlan=1,actions=pop_vlan,set_field:4101->vlan_vid",
        Add,
        None
    )
    .is_err());
    assert!(parse_flow_mod("table=3,actions=goto_table:4", Add, None).is_ok());
    assert!(parse_flow_mod("actions=goto_table:0", Add, None).is_err());
}

#[test]
fn flow_files_take_command_keywords() {
    let text = "add priority=5,actions=1\nmodify priority=5,actions=2\ndelete in_port=5\n\
                delete_strict priority=5\nmodify_strict priority=5,actions=1\na priority=6,actions=1\n\
                d in_port=6\ndel out_port=2\nm actions=3\n# comment\n   \npriority=1, in_port=1, actions=drop\n\
                  priority=2 actions=1 # trailing\nmodify_s priority=3,actions=4\ndelete_s priority=3\n";
    let fms = parse_flow_mods(text, Add, None).unwrap();
    let printed: Vec<String> = fms.iter().map(format_flow_mod).collect();
    // What ovs-ofctl add-flows sent to ovs-vswitchd for the same file.
    assert_eq!(
        printed,
        [
            "ADD priority=5 actions=output:1",
            "MOD priority=5 actions=output:2",
            "DEL in_port=5 actions=drop",
            "DEL_STRICT priority=5 actions=drop",
            "MOD_STRICT priority=5 actions=output:1",
            "ADD priority=6 actions=output:1",
            "DEL in_port=6 actions=drop",
            "DEL out_port:2 actions=drop",
            "MOD actions=output:3",
            "ADD priority=1,in_port=1 actions=drop",
            "ADD priority=2 actions=output:1",
            "MOD_STRICT priority=3 actions=output:4",
            "DEL_STRICT priority=3 actions=drop",
        ]
    );
    for fm in &fms {
        let line = format_flow_mod_line(fm);
        assert_eq!(
            parse_flow_mod_line(&line, Add, None).unwrap().as_ref(),
            Some(fm),
            "{line}"
        );
    }
    assert_eq!(
        parse_flow_mod_line("  # only a comment", Add, None),
        Ok(None)
    );
    // Other commands read plain flows: a keyword is just an unknown field.
    assert!(parse_flow_mod_line("modify in_port=1,actions=1", Modify, None).is_err());
    assert_eq!(
        parse_flow_mod_line("in_port=1,actions=1", Modify, None)
            .unwrap()
            .unwrap()
            .command,
        Modify
    );
}

#[test]
fn modify_and_delete_print_like_ovs() {
    let p = |s, c| format_flow_mod(&parse_flow_mod(s, c, None).unwrap());
    assert_eq!(
        p("table=1,cookie=0x5/0xff,out_port=3,tcp", Delete),
        "DEL table:1 tcp cookie:0x5/0xff out_port:3 actions=drop"
    );
    assert_eq!(
        p("priority=5,tcp", DeleteStrict),
        "DEL_STRICT priority=5,tcp actions=drop"
    );
    assert_eq!(
        p("cookie=0x5,tcp,idle_timeout=5,actions=1", Modify),
        "MOD tcp cookie:0x5 idle:5 actions=output:1"
    );
    assert_eq!(
        p("cookie=0x5/0xf,priority=7,tcp,actions=1", ModifyStrict),
        "MOD_STRICT priority=7,tcp cookie:0x5/0xf actions=output:1"
    );
    assert_eq!(
        p("table=1,priority=5,out_port=LOCAL", DeleteStrict),
        "DEL_STRICT table:1 priority=5 out_port:LOCAL actions=drop"
    );
    assert_eq!(
        p("send_flow_rem,actions=1", Modify),
        "MOD send_flow_rem actions=output:1"
    );
    assert_eq!(
        p("cookie=5/-1,actions=1", Modify),
        "MOD cookie:0x5/0xffffffffffffffff actions=output:1"
    );
    assert_eq!(p("", Delete), "DEL actions=drop");
}

#[test]
fn cookies_and_tables_by_command() {
    let add = parse_flow_mod("cookie=0x12,table=255,actions=1", Add, None).unwrap();
    assert_eq!(
        (add.cookie, add.cookie_mask, add.modify_cookie, add.table_id),
        (0x12, 0, false, None)
    );
    let m = parse_flow_mod("cookie=0x12,actions=1", Modify, None).unwrap();
    assert_eq!((m.cookie, m.cookie_mask, m.modify_cookie), (0x12, 0, true));
    let m = parse_flow_mod("cookie=0x12/0xf0,actions=1", Modify, None).unwrap();
    assert_eq!(
        (m.cookie, m.cookie_mask, m.modify_cookie),
        (0x10, 0xf0, false)
    );
    let d = parse_flow_mod("cookie=0x12/-1,table=0", Delete, None).unwrap();
    assert_eq!(
        (d.cookie, d.cookie_mask, d.table_id),
        (0x12, u64::MAX, Some(0))
    );
    // dump-flows output fed back in, as OVS allows.
    let fm = parse_flow_mod(
        " cookie=0x1, duration=1.5s, n_packets=3, n_bytes=4, idle_age=5, hard_age=6, actions=1",
        Add,
        None,
    )
    .unwrap();
    assert_eq!((fm.cookie, fm.actions.len()), (1, 1));
}

#[test]
fn dump_filters() {
    let f = parse_flow_filter("table=1,tcp,out_port=LOCAL,cookie=0x10/0xf0", None).unwrap();
    assert_eq!(
        (f.table_id, f.out_port, f.cookie, f.cookie_mask),
        (Some(1), port::LOCAL, 0x10, 0xf0)
    );
    assert_eq!(format_match(&f.match_, 0x8000), "tcp");
    let all = parse_flow_filter("", None).unwrap();
    assert_eq!(
        (all.table_id, all.out_port, all.match_),
        (None, port::NONE, Match::catchall())
    );
}

#[test]
fn port_names() {
    let ports: PortMap = [("eth0", 1), ("br0", port::LOCAL), ("my.port", 7), ("2x", 8)]
        .into_iter()
        .collect();
    let fm = parse_flow_mod(
        r#"in_port=eth0,actions=output:"my.port",resubmit("2x",1),br0"#,
        Add,
        Some(&ports),
    )
    .unwrap();
    assert_eq!(format_match(&fm.match_, fm.priority), "in_port=1");
    assert_eq!(
        format_match_with(&fm.match_, fm.priority, Some(&ports)),
        "in_port=eth0"
    );
    assert_eq!(format_actions(&fm.actions), "output:7,resubmit(8,1),LOCAL");
    assert_eq!(
        format_actions_with(&fm.actions, Some(&ports)),
        r#"output:"my.port",resubmit("2x",1),LOCAL"#
    );
    // As in OVS, quoting does not protect separators: a name with a space
    // cannot be written in a flow.
    assert!(parse_actions(
        r#"output:"a b""#,
        Some(&[("a b", 3)].into_iter().collect::<PortMap>())
    )
    .is_err());
    // Numbers and reserved names win over names.
    let odd: PortMap = [("5", 9), ("local", 10)].into_iter().collect();
    assert_eq!(
        format_actions(&parse_actions("5,local", Some(&odd)).unwrap()),
        "output:5,LOCAL"
    );
}

fn stats() -> FlowStats {
    FlowStats {
        table_id: 0,
        duration_sec: 1,
        duration_nsec: 234_000_000,
        priority: 100,
        idle_timeout: 0,
        hard_timeout: 0,
        flags: FlowModFlags::default(),
        importance: 0,
        cookie: 0,
        packet_count: 3,
        byte_count: 294,
        idle_age: 0,
        hard_age: 1,
        match_: parse_match("ip,nw_dst=10.0.0.0/24", None).unwrap().0,
        actions: vec![OfAction::Output {
            port: 2,
            max_len: 0,
        }],
    }
}

#[test]
fn dump_flows_lines() {
    let mut fs = stats();
    assert_eq!(
        format_flow_stats(&fs, true),
        " cookie=0x0, duration=1.234s, table=0, n_packets=3, n_bytes=294, idle_age=0, priority=100,ip,nw_dst=10.0.0.0/24 actions=output:2"
    );
    assert_eq!(
        format_flow_stats(&fs, false),
        " priority=100,ip,nw_dst=10.0.0.0/24 actions=output:2"
    );
    fs.cookie = 0x1234;
    fs.table_id = 1;
    fs.idle_timeout = 60;
    fs.hard_timeout = 120;
    fs.flags = FlowModFlags {
        send_flow_rem: true,
        check_overlap: true,
        reset_counts: true,
        ..Default::default()
    };
    fs.importance = 7;
    fs.hard_age = 0;
    fs.match_ = Match::catchall();
    fs.priority = 0x8000;
    fs.actions.clear();
    assert_eq!(
        format_flow_stats(&fs, true),
        " cookie=0x1234, duration=1.234s, table=1, n_packets=3, n_bytes=294, idle_timeout=60, hard_timeout=120, \
         send_flow_rem check_overlap reset_counts importance=7, idle_age=0, hard_age=0, actions=drop"
    );
    assert_eq!(
        format_flow_stats(&fs, false),
        " cookie=0x1234, table=1, idle_timeout=60, hard_timeout=120, send_flow_rem check_overlap reset_counts importance=7, actions=drop"
    );
    assert_eq!(
        parse_flow_stats(&format_flow_stats(&fs, true), None).unwrap(),
        fs
    );
}

#[test]
fn durations() {
    for ((sec, nsec), s) in [
        ((0, 0), "0s"),
        ((10, 0), "10s"),
        ((1, 234_000_000), "1.234s"),
        ((5, 500_000_000), "5.500s"),
        ((0, 1_000), "0.000001s"),
        ((3, 123_456_789), "3.123456789s"),
        ((3, 120_000_001), "3.120000001s"),
    ] {
        assert_eq!(format_duration(sec, nsec), s);
    }
}

#[test]
fn normalization_is_reported() {
    let mut m = Match::catchall();
    m.set_exact(FieldId::Ipv4Src, 0x01020304);
    assert_eq!(normalize_match(&m), Match::catchall());
}
