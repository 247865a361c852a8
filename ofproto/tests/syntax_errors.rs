//! Malformed input: each line is rejected with a specific message that
//! names the offending token and says why.

use fvs_ofproto::flow_mod::FlowModCommand::{self, *};
use fvs_ofproto::syntax::{parse_flow_filter, parse_flow_mod, parse_flow_mods, PortMap};

fn error(command: FlowModCommand, line: &str) -> String {
    match parse_flow_mod(line, command, None) {
        Ok(fm) => panic!("{line:?} was accepted: {fm:?}"),
        Err(e) => e.to_string(),
    }
}

/// (line, expected message) for `add-flow`.
const ADD: &[(&str, &str)] = &[
    ("ip,nw_dst=10.0.0.300,actions=1", "nw_dst: 10.0.0.300: invalid IP address"),
    ("ip,nw_src=1.2.3,actions=1", "nw_src: 1.2.3: invalid IP address"),
    ("foo=1,actions=1", "unknown field foo"),
    ("reg16=1,actions=1", "unknown field reg16"),
    ("tcp,tp_src=70000,actions=1", "tp_src: 70000: value out of range for 16-bit field tcp_src"),
    ("tcp,tp_src=abc,actions=1", "tp_src: abc: bad syntax for tcp_src value"),
    ("tcp,tp_src=0x,actions=1", "tp_src: 0x: bad syntax for tcp_src value"),
    ("reg0=0x100000000,actions=1", "reg0: 0x100000000: value out of range for 32-bit field reg0"),
    ("in_port=foo,actions=1", "in_port: foo: invalid or unknown port"),
    ("in_port=70000,actions=1", "in_port: 70000: invalid or unknown port"),
    ("ip,nw_src=1.2.3.4/33,actions=1", "nw_src: 1.2.3.4/33: IPv4 network prefix bits not between 0 and 32, inclusive"),
    ("ipv6,ipv6_src=::g,actions=1", "ipv6_src: ::g: invalid IPv6 address"),
    ("ipv6,ipv6_dst=::1/129,actions=1", "ipv6_dst: ::1/129: IPv6 network prefix bits not between 0 and 128, inclusive"),
    ("dl_src=00:11:22:33:44,actions=1", "dl_src: 00:11:22:33:44: invalid Ethernet address"),
    (
        "ip,nw_frag=maybe,actions=1",
        r#"nw_frag: maybe: unknown fragment type (valid types are "no", "yes", "first", "later", "not_later")"#,
    ),
    ("tcp,tcp_flags=+syn-syn,actions=1", "tcp_flags: +syn-syn: each TCP flag can be specified only once (syn)"),
    ("tcp,tcp_flags=+foo,actions=1", "tcp_flags: +foo: unknown TCP flag(s)"),
    ("tcp,tcp_flags=0x1000,actions=1", "tcp_flags: 0x1000: unknown TCP flag(s)"),
    ("icmp,icmp_type=3/0xf,actions=1", "icmp_type: 3/0xf: invalid mask for field icmp_type"),
    ("dl_vlan=5/0xfff,actions=1", "dl_vlan: 5/0xfff: invalid mask for field dl_vlan"),
    ("dl_vlan=4096,actions=1", "dl_vlan: 4096: value out of range for 12-bit field dl_vlan"),
    ("dl_vlan_pcp=8,actions=1", "dl_vlan_pcp: 8: value out of range for 3-bit field vlan_pcp"),
    ("ip,nw_tos=5,actions=1", "nw_tos: 5: not a valid value for field nw_tos"),
    ("ip,ip_dscp=64,actions=1", "ip_dscp: 64: value out of range for 6-bit field ip_dscp"),
    ("priority=70000,actions=1", "priority: 70000: invalid priority"),
    ("priority=-1,actions=1", "priority: -1: invalid priority"),
    ("priority,actions=1", "field priority missing value"),
    ("idle_timeout=65536,actions=1", "idle_timeout: 65536: invalid idle_timeout"),
    ("table=256,actions=1", "table: 256: unknown table (valid tables are 0 through 255)"),
    ("cookie=xyz,actions=1", "cookie: xyz: invalid numeric format"),
    ("cookie=1/2,actions=1", "flow additions cannot use a cookie mask"),
    ("out_port=1,actions=1", "out_port: not allowed in add flow-mods"),
    ("tcp,tp_dst=80", "must specify an action"),
    ("actions=foo", "unknown action foo"),
    ("actions=learn(table=1)", "learn: not supported by fvs"),
    ("actions=output:foo", "output: foo: output to unknown port"),
    ("actions=1,drop", "\"drop\" must not be accompanied by any other action or instruction"),
    ("actions=apply_actions(1)", "apply_actions is the default instruction"),
    (
        "actions=goto_table:3,1",
        "invalid instruction ordering: apply_actions must appear before goto_table, for OpenFlow 1.1+ compatibility",
    ),
    (
        "actions=goto_table:2,write_metadata:1",
        "invalid instruction ordering: write_metadata must appear before goto_table, for OpenFlow 1.1+ compatibility",
    ),
    ("actions=goto_table:1,goto_table:2", "duplicate goto_table instruction not allowed, for OpenFlow 1.1+ compatibility"),
    ("actions=goto_table:256", "goto_table: 256: unknown table"),
    (
        "table=3,actions=goto_table:2",
        "goto_table:2: goto_table must name a table after this rule's table 3 (OFPBIC_BAD_TABLE_ID) \
         (actions are invalid with specified match)",
    ),
    (
        "actions=set_field:1.2.3.4->ip_src",
        "set_field:1.2.3.4->ip_src: ip_src lacks correct prerequisites (OFPBAC_MATCH_INCONSISTENT) \
         (actions are invalid with specified match)",
    ),
    (
        "actions=set_field:5->vlan_vid",
        "set_field:5->vlan_vid: vlan_vid lacks correct prerequisites (OFPBAC_MATCH_INCONSISTENT) \
         (actions are invalid with specified match)",
    ),
    (
        "actions=move:NXM_OF_IP_SRC[]->NXM_NX_REG0[]",
        "move:NXM_OF_IP_SRC[]->NXM_NX_REG0[]: source field ip_src lacks correct prerequisites \
         (OFPBAC_MATCH_INCONSISTENT) (actions are invalid with specified match)",
    ),
    (
        "actions=mod_nw_ttl:5",
        "mod_nw_ttl:5: requires an IPv4 or IPv6 match (OFPBAC_MATCH_INCONSISTENT) (actions are invalid with specified match)",
    ),
    ("actions=ANY", "ANY: invalid output port (OFPBAC_BAD_OUT_PORT) (actions are invalid with specified match)"),
    ("actions=set_field:1->tcp_flags", "set_field: 1->tcp_flags: tcp_flags is read-only"),
    ("actions=set_field:1->foo", "set_field: 1->foo: foo is not a valid OXM field name"),
    ("actions=set_field:1", "set_field: 1: missing `->'"),
    ("ip,actions=set_field:64->ip_dscp", "ip_dscp: 64: value out of range for 6-bit field ip_dscp"),
    ("actions=load:0x1234->NXM_NX_REG0[0..7]", "load: 0x1234->NXM_NX_REG0[0..7]: value 0x1234 does not fit into 8 bits"),
    ("actions=load:x->reg0", "load: x->reg0: cannot parse integer value"),
    ("actions=load:1->foo", "load: 1->foo: unknown field `foo'"),
    (
        "actions=load:1->reg0[40]",
        "load: 1->reg0[40]: reg0[40]: starting bit 40 is not valid because field is only 32 bits wide",
    ),
    (
        "actions=load:1->reg0[3..1]",
        "load: 1->reg0[3..1]: reg0[3..1]: starting bit 3 is after ending bit 1",
    ),
    (
        "actions=load:1->reg0[a]",
        "load: 1->reg0[a]: reg0[a]: syntax error expecting [] or [<bit>] or [<start>..<end>]",
    ),
    ("actions=load:1->NXM_OF_ETH_TYPE[]", "load: 1->NXM_OF_ETH_TYPE[]: destination field eth_type is not writable"),
    (
        "actions=move:NXM_NX_REG0[0..15]->NXM_NX_REG1[0..7]",
        "move: NXM_NX_REG0[0..15]->NXM_NX_REG1[0..7]: source field is 16 bits wide but destination is 8 bits wide",
    ),
    ("actions=move:reg0", "move: reg0: missing `->' following source"),
    ("actions=note:xyz", "note: xyz: bad hex digit in `note' argument"),
    ("actions=resubmit(,)", "resubmit: ,: at least one \"in_port\" or \"table\" must be specified on resubmit"),
    ("actions=resubmit(1,2,3)", "resubmit: 1,2,3: unknown parameter"),
    ("actions=resubmit:foo", "resubmit: foo: resubmit to unknown port"),
    ("actions=mod_vlan_vid:5000", "mod_vlan_vid: 5000: not a valid VLAN VID"),
    ("actions=mod_vlan_pcp:8", "mod_vlan_pcp: 8: not a valid VLAN PCP"),
    ("actions=push_vlan:0x1234", "push_vlan: 0x1234: not a valid VLAN ethertype"),
    ("ip,actions=mod_nw_tos:1", "mod_nw_tos: 1: not a valid TOS"),
    ("ip,actions=mod_nw_ttl:300", "mod_nw_ttl: 300: invalid TTL"),
    ("actions=mod_dl_src:1", "mod_dl_src: 1: invalid mac address"),
    ("ip,actions=mod_nw_src:1.2.3", "mod_nw_src: 1.2.3: could not convert to IP address"),
    ("actions=controller(reason=foo)", "controller: foo: unknown reason"),
    ("actions=controller(max_len=70000)", "controller: 70000: invalid max_len"),
    ("actions=set_tunnel:xyz", "set_tunnel: xyz: invalid numeric format"),
    ("actions=set_tunnel", "set_tunnel: : missing required numeric argument"),
    ("actions=write_metadata:x", "write_metadata: x: invalid numeric format"),
    ("actions=dec_ttl(x)", "dec_ttl: x: invalid controller id"),
];

#[test]
fn add_flow_errors() {
    assert!(ADD.len() >= 25);
    let mut failures = Vec::new();
    for (line, want) in ADD {
        let got = error(Add, line);
        if got != *want {
            failures.push(format!("  {line:?}\n    want: {want}\n    got:  {got}"));
        }
    }
    assert!(
        failures.is_empty(),
        "unexpected messages:\n{}",
        failures.join("\n")
    );
}

#[test]
fn keywords_a_command_does_not_take() {
    assert_eq!(
        error(Delete, "priority=5"),
        "priority: not allowed in non-strict delete flow-mods"
    );
    assert_eq!(
        error(Delete, "in_port=1,actions=1"),
        "actions: not allowed in non-strict delete flow-mods"
    );
    assert_eq!(
        error(Delete, "idle_timeout=5"),
        "idle_timeout: not allowed in non-strict delete flow-mods"
    );
    assert_eq!(
        error(Delete, "send_flow_rem"),
        "send_flow_rem: not allowed in non-strict delete flow-mods"
    );
    assert_eq!(
        error(Delete, "cookie=5"),
        "cannot set cookie (to match on a cookie, specify a mask, e.g. cookie=5/-1)"
    );
    assert_eq!(
        error(DeleteStrict, "out_port=foo"),
        "out_port: foo: not a valid OpenFlow port"
    );
    assert_eq!(
        error(Modify, "importance=5,actions=1"),
        "importance: not allowed in modify flow-mods"
    );
    assert_eq!(
        error(Modify, "out_port=5,actions=1"),
        "out_port: not allowed in modify flow-mods"
    );
    assert_eq!(
        error(Modify, "cookie=1/0xff,cookie=2,actions=1"),
        "cookie: 0x2: cannot both select rules by a cookie mask and set a new cookie"
    );
    assert_eq!(
        error(Delete, "out_group=1"),
        "out_group: not supported by fvs"
    );
    // add-flow takes no command keyword; only flow files do.
    assert_eq!(error(Add, "delete in_port=1"), "must specify an action");
    assert_eq!(
        error(Add, "delete in_port=1,actions=1"),
        "unknown field delete"
    );
}

#[test]
fn filter_errors() {
    let err = |s| parse_flow_filter(s, None).unwrap_err().to_string();
    assert_eq!(err("priority=5"), "priority: not allowed in flow filters");
    assert_eq!(err("actions=1"), "actions: not allowed in flow filters");
    assert_eq!(
        err("cookie=5"),
        "cannot set cookie (to match on a cookie, specify a mask, e.g. cookie=5/-1)"
    );
    assert_eq!(
        err("table=x"),
        "table: x: unknown table (valid tables are 0 through 255)"
    );
}

#[test]
fn file_errors_name_the_line() {
    let text = "# flows\nin_port=1,actions=2\n\nip,nw_src=1.2.3.4.5,actions=3\n";
    let err = parse_flow_mods(text, Add, None).unwrap_err();
    assert_eq!(
        err.to_string(),
        "line 4: nw_src: 1.2.3.4.5: invalid IP address"
    );
}

#[test]
fn port_names_only_resolve_with_a_map() {
    assert_eq!(
        error(Add, "in_port=eth0,actions=1"),
        "in_port: eth0: invalid or unknown port"
    );
    let ports: PortMap = [("eth0", 3)].into_iter().collect();
    assert!(parse_flow_mod("in_port=eth0,actions=eth0", Add, Some(&ports)).is_ok());
    assert_eq!(
        parse_flow_mod("in_port=eth1,actions=1", Add, Some(&ports))
            .unwrap_err()
            .to_string(),
        "in_port: eth1: invalid or unknown port"
    );
}

#[test]
fn messages_are_one_line() {
    for (line, _) in ADD {
        assert!(!error(Add, line).contains('\n'), "{line}");
    }
}
