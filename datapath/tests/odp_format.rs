//! `dpctl/dump-flows` lines, checked byte for byte against Open vSwitch 3.1.
//!
//! Every expected line below was printed by `ovs-appctl dpctl/dump-flows`
//! of an `ovs-vswitchd` 3.1 (Debian 3.1.0-2+deb12u1) with a
//! `datapath_type=netdev` bridge whose OpenFlow ports 1, 2, 3 are datapath
//! ports 2, 3, 4 (veths in network namespaces) and whose LOCAL port is
//! datapath port 1. The frames are the exact bytes sent into the veths; the
//! OpenFlow rules that produced each megaflow are in the comments. Here the
//! key comes from fvs's own extraction of those bytes, the mask is the one
//! OVS printed, and the actions are the fvs actions of the same effect.

use std::sync::OnceLock;

use fvs_datapath::actions::{ArpSet, DpAction, EthSet, Ipv4Set, Ipv6Set, L4Set, NdSet, SlowPath};
use fvs_datapath::dpcls::FlowCounters;
use fvs_datapath::extract::{extract, ExtractStats};
use fvs_datapath::key::{ofs, FlowKey, FRAG_ANY, FRAG_LATER};
use fvs_datapath::odp::{
    format_actions, format_actions_with, format_flow_dump_line, format_megaflow, ActionFormat,
};
use fvs_datapath::packet::{PacketPool, TunnelMeta};

fn pool() -> &'static PacketPool {
    static POOL: OnceLock<PacketPool> = OnceLock::new();
    POOL.get_or_init(|| PacketPool::new(64, false).expect("packet pool"))
}

/// The key fvs extracts from `frame_hex` arriving on datapath port `in_port`.
fn key_of(frame_hex: &str, in_port: u32) -> FlowKey {
    let frame: Vec<u8> = (0..frame_hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&frame_hex[i..i + 2], 16).expect("hex"))
        .collect();
    let mut p = pool().packet_from(&frame).expect("buffer");
    p.meta_mut().in_port = in_port;
    let mut key = FlowKey::ZERO;
    extract(&mut p, &mut key, &mut ExtractStats::default());
    key
}

/// Builds a megaflow mask: every megaflow matches its input port and
/// recirculation id exactly (as fvs's datapath makes them).
struct Mask(FlowKey);

impl Mask {
    fn new() -> Mask {
        let mut m = FlowKey::ZERO;
        m.set_bytes(ofs::IN_PORT, &[0xff; 8]);
        Mask(m)
    }
    fn bytes(mut self, at: usize, v: &[u8]) -> Mask {
        self.0.set_bytes(at, v);
        self
    }
    fn exact(self, at: usize, len: usize) -> Mask {
        self.bytes(at, &vec![0xff; len])
    }
    fn dl_type(self) -> Mask {
        self.exact(ofs::DL_TYPE, 2)
    }
    /// `dl_type` and the fragment bits: what OVS matches for any IP packet.
    fn ip(self) -> Mask {
        self.dl_type().bytes(ofs::NW_FRAG, &[FRAG_ANY | FRAG_LATER])
    }
    fn proto(self) -> Mask {
        self.exact(ofs::NW_PROTO, 1)
    }
    fn eth(self) -> Mask {
        self.exact(ofs::DL_SRC, 6).exact(ofs::DL_DST, 6)
    }
    fn done(self) -> FlowKey {
        self.0
    }
}

const NOW_MS: u64 = 1_000_000;

/// Counters of a flow: `used_ago_ms` 0 means never used.
fn counters(packets: u64, bytes: u64, used_ago_ms: u64, tcp_flags: u16) -> FlowCounters {
    FlowCounters {
        packets,
        bytes,
        used_ms: if used_ago_ms == 0 {
            0
        } else {
            NOW_MS - used_ago_ms
        },
        tcp_flags,
    }
}

#[track_caller]
fn check(key: &FlowKey, mask: &FlowKey, actions: &[DpAction], c: FlowCounters, want: &str) {
    assert_eq!(format_flow_dump_line(key, mask, actions, &c, NOW_MS), want);
}

fn out(p: u32) -> DpAction {
    DpAction::Output(p)
}

// Frames as sent (h1 = 02:00:00:00:00:01 on datapath port 2, h2 = …:02 on 3).
const TCP_SYN: &str = "02000000000202000000000108004500002800010000400666cd0a0000010a00000204d2005000000001000000005002200000000000000000000000";
const UDP_53: &str = "02000000000202000000000108004500002000010000401166ca0a0000010a00000203e80035000c0000787878780000000000000000000000000000";

#[test]
fn output_only() {
    // in_port=1,actions=output:2
    let k = key_of(TCP_SYN, 2);
    check(
        &k,
        &Mask::new().ip().done(),
        &[out(3)],
        counters(1, 60, 473, 0x002),
        "recirc_id(0),in_port(2),packet_type(ns=0,id=0),eth_type(0x0800),ipv4(frag=no), packets:1, bytes:60, used:0.473s, flags:S, actions:3",
    );
}

#[test]
fn normal_flood_and_learned() {
    // priority=0,actions=NORMAL
    let bcast = "ffffffffffff02000000000208004500002000010000401166ca0a0000010a00000203e80035000c0000787878780000000000000000000000000000";
    check(
        &key_of(bcast, 3),
        &Mask::new().ip().eth().done(),
        &[out(1), out(2), out(4)],
        counters(0, 0, 0, 0),
        "recirc_id(0),in_port(3),packet_type(ns=0,id=0),eth(src=02:00:00:00:00:02,dst=ff:ff:ff:ff:ff:ff),eth_type(0x0800),ipv4(frag=no), packets:0, bytes:0, used:never, actions:1,2,4",
    );
    let psh_ack = "02000000000202000000000108004500002800010000400666cd0a0000010a00000204d2005000000001000000005018200000000000000000000000";
    check(
        &key_of(psh_ack, 2),
        &Mask::new().ip().eth().done(),
        &[out(3)],
        counters(2, 120, 470, 0x018),
        "recirc_id(0),in_port(2),packet_type(ns=0,id=0),eth(src=02:00:00:00:00:01,dst=02:00:00:00:00:02),eth_type(0x0800),ipv4(frag=no), packets:2, bytes:120, used:0.470s, flags:P., actions:3",
    );
}

#[test]
fn partially_masked_fields_print_the_key_with_the_mask() {
    // priority=10,ip,nw_src=10.1.0.0/16,actions=output:3
    // priority=5,tcp,tp_dst=80,actions=output:2
    let from_10_1 = "02000000000202000000000108004500002800010000400664ca0a0102030a00000204d2005000000001000000005012200000000000000000000000";
    check(
        &key_of(from_10_1, 2),
        &Mask::new().ip().bytes(ofs::NW_SRC, &[255, 255, 0, 0]).done(),
        &[out(4)],
        counters(1, 60, 672, 0x012),
        "recirc_id(0),in_port(2),packet_type(ns=0,id=0),eth_type(0x0800),ipv4(src=10.1.2.3/255.255.0.0,frag=no), packets:1, bytes:60, used:0.672s, flags:S., actions:4",
    );
    let to_80 = "02000000000202000000000108004500002800010000400664c90a0202030a00000204d2005000000001000000005011200000000000000000000000";
    let mask = Mask::new()
        .ip()
        .proto()
        .bytes(ofs::NW_SRC, &[255, 254, 0, 0])
        .exact(ofs::TP_DST, 2)
        .done();
    check(
        &key_of(to_80, 2),
        &mask,
        &[out(3)],
        counters(1, 60, 575, 0x011),
        "recirc_id(0),in_port(2),packet_type(ns=0,id=0),eth_type(0x0800),ipv4(src=10.2.2.3/255.254.0.0,proto=6,frag=no),tcp(dst=80), packets:1, bytes:60, used:0.575s, flags:F., actions:3",
    );
    let to_81 = "02000000000202000000000108004500002800010000400664c90a0202030a00000204d2005100000001000000005004200000000000000000000000";
    check(
        &key_of(to_81, 2),
        &mask,
        &[],
        counters(1, 60, 474, 0x004),
        "recirc_id(0),in_port(2),packet_type(ns=0,id=0),eth_type(0x0800),ipv4(src=10.2.2.3/255.254.0.0,proto=6,frag=no),tcp(dst=81), packets:1, bytes:60, used:0.474s, flags:R, actions:drop",
    );
}

#[test]
fn masked_set_actions() {
    // in_port=1,ip,actions=mod_dl_src:02:00:00:00:00:aa,mod_nw_dst:10.0.0.9,output:2
    let set_eth = DpAction::SetEth {
        value: EthSet {
            src: [2, 0, 0, 0, 0, 0xaa],
            dst: [0; 6],
        },
        mask: EthSet {
            src: [0xff; 6],
            dst: [0; 6],
        },
    };
    let set_ip = DpAction::SetIpv4 {
        value: Ipv4Set {
            dst: [10, 0, 0, 9],
            ..Default::default()
        },
        mask: Ipv4Set {
            dst: [0xff; 4],
            ..Default::default()
        },
    };
    check(
        &key_of(TCP_SYN, 2),
        &Mask::new()
            .ip()
            .proto()
            .exact(ofs::DL_SRC, 6)
            .exact(ofs::NW_DST, 4)
            .done(),
        &[set_eth, set_ip, out(3)],
        counters(1, 60, 476, 0x002),
        "recirc_id(0),in_port(2),packet_type(ns=0,id=0),eth(src=02:00:00:00:00:01),eth_type(0x0800),ipv4(dst=10.0.0.2,proto=6,frag=no), packets:1, bytes:60, used:0.476s, flags:S, actions:set(eth(src=02:00:00:00:00:aa)),set(ipv4(dst=10.0.0.9)),3",
    );

    // in_port=1,tcp,actions=mod_tp_dst:8080,mod_nw_tos:16,dec_ttl,output:2
    let tcp_mask = Mask::new()
        .ip()
        .proto()
        .bytes(ofs::NW_TOS, &[0xfc])
        .exact(ofs::NW_TTL, 1)
        .exact(ofs::TP_DST, 2)
        .done();
    let actions = [
        DpAction::SetIpv4 {
            value: Ipv4Set {
                tos: 0x10,
                ttl: 63,
                ..Default::default()
            },
            mask: Ipv4Set {
                tos: 0xfc,
                ttl: 0xff,
                ..Default::default()
            },
        },
        DpAction::SetL4 {
            value: L4Set { src: 0, dst: 8080 },
            mask: L4Set {
                src: 0,
                dst: 0xffff,
            },
        },
        out(3),
    ];
    check(
        &key_of(TCP_SYN, 2),
        &tcp_mask,
        &actions,
        counters(1, 60, 565, 0x002),
        "recirc_id(0),in_port(2),packet_type(ns=0,id=0),eth_type(0x0800),ipv4(proto=6,tos=0/0xfc,ttl=64,frag=no),tcp(dst=80), packets:1, bytes:60, used:0.565s, flags:S, actions:set(ipv4(tos=0x10/0xfc,ttl=63)),set(tcp(dst=8080)),3",
    );

    // in_port=1,udp,actions=mod_tp_src:7,mod_nw_ecn:1,output:3
    let udp_mask = Mask::new()
        .ip()
        .proto()
        .bytes(ofs::NW_TOS, &[0x03])
        .exact(ofs::TP_SRC, 2)
        .done();
    let actions = [
        DpAction::SetIpv4 {
            value: Ipv4Set {
                tos: 0x01,
                ..Default::default()
            },
            mask: Ipv4Set {
                tos: 0x03,
                ..Default::default()
            },
        },
        DpAction::SetL4 {
            value: L4Set { src: 7, dst: 0 },
            mask: L4Set {
                src: 0xffff,
                dst: 0,
            },
        },
        out(4),
    ];
    check(
        &key_of(UDP_53, 2),
        &udp_mask,
        &actions,
        counters(1, 60, 471, 0),
        "recirc_id(0),in_port(2),packet_type(ns=0,id=0),eth_type(0x0800),ipv4(proto=17,tos=0/0x3,frag=no),udp(src=1000), packets:1, bytes:60, used:0.471s, actions:set(ipv4(tos=0x1/0x3)),set(udp(src=7)),4",
    );
}

#[test]
fn sctp_port_rewrite() {
    // sctp,tp_dst=99,actions=mod_tp_dst:100,output:2
    let frame = "02000000000202000000000108004500003000010000408466470a0000010a00000200050063000000000000000000000000000000000000000000000000";
    let set = DpAction::SetL4 {
        value: L4Set { src: 0, dst: 100 },
        mask: L4Set {
            src: 0,
            dst: 0xffff,
        },
    };
    check(
        &key_of(frame, 2),
        &Mask::new().ip().proto().exact(ofs::TP_DST, 2).done(),
        &[set, out(3)],
        counters(1, 62, 486, 0),
        "recirc_id(0),in_port(2),packet_type(ns=0,id=0),eth_type(0x0800),ipv4(proto=132,frag=no),sctp(dst=99), packets:1, bytes:62, used:0.486s, actions:set(sctp(dst=100)),3",
    );
}

#[test]
fn vlan_tags_nest_in_encap() {
    // in_port=1,dl_vlan=10,actions=strip_vlan,output:2
    let tagged_10 = "0200000000020200000000018100600a08004500002800010000400666cd0a0000010a00000204d20050000000010000000050022000000000000000";
    check(
        &key_of(tagged_10, 2),
        &Mask::new().ip().exact(ofs::VLAN_TCI, 2).done(),
        &[DpAction::PopVlan, out(3)],
        counters(1, 60, 575, 0x002),
        "recirc_id(0),in_port(2),packet_type(ns=0,id=0),eth_type(0x8100),vlan(vid=10,pcp=3),encap(eth_type(0x0800),ipv4(frag=no)), packets:1, bytes:60, used:0.575s, flags:S, actions:pop_vlan,3",
    );
    // in_port=1,dl_vlan=11,actions=mod_vlan_pcp:5,output:3 (fvs rewrites
    // the tag in place; OVS pops and pushes it, and so prints fvs).
    let tagged_11 = "0200000000020200000000018100000b08004500002000010000401166ca0a0000010a00000203e80035000c00007878787800000000000000000000";
    check(
        &key_of(tagged_11, 2),
        &Mask::new().ip().exact(ofs::VLAN_TCI, 2).done(),
        &[DpAction::SetVlanTci((5 << 13) | 11), out(4)],
        counters(1, 60, 481, 0),
        "recirc_id(0),in_port(2),packet_type(ns=0,id=0),eth_type(0x8100),vlan(vid=11,pcp=0),encap(eth_type(0x0800),ipv4(frag=no)), packets:1, bytes:60, used:0.481s, actions:pop_vlan,push_vlan(vid=11,pcp=5),4",
    );
    // priority=0,actions=NORMAL: the VID is matched, the PCP is not.
    let tagged_7 = "0200000000030200000000018100600708004500002800010000400666cd0a0000010a00000204d20050000000010000000050022000000000000000";
    check(
        &key_of(tagged_7, 2),
        &Mask::new().ip().eth().bytes(ofs::VLAN_TCI, &[0x1f, 0xff]).done(),
        &[out(1), out(3), out(4)],
        counters(1, 60, 877, 0x002),
        "recirc_id(0),in_port(2),packet_type(ns=0,id=0),eth(src=02:00:00:00:00:01,dst=02:00:00:00:00:03),eth_type(0x8100),vlan(vid=7,pcp=3/0x0),encap(eth_type(0x0800),ipv4(frag=no)), packets:1, bytes:60, used:0.877s, flags:S, actions:1,3,4",
    );
}

#[test]
fn double_tagged() {
    // other_config:vlan-limit=2; in_port=1,actions=output:2 and
    // in_port=2,actions=NORMAL. The inner tag is not matched.
    let qinq = "02000000000202000000000188a800648100400a08004500002800010000400666cd0a0000010a00000204d2005000000001000000005002200000000000";
    let mask = Mask::new().ip().bytes(ofs::VLAN_TCI, &[0x1f, 0xff]);
    check(
        &key_of(qinq, 2),
        &mask.done(),
        &[out(3)],
        counters(1, 62, 998, 0x002),
        "recirc_id(0),in_port(2),packet_type(ns=0,id=0),eth_type(0x88a8),vlan(vid=100),encap(eth_type(0x8100),encap(eth_type(0x0800),ipv4(frag=no))), packets:1, bytes:62, used:0.998s, flags:S, actions:3",
    );
    let qinq2 = "02000000000302000000000288a800648100000a08004500002000010000401166ca0a0000010a00000203e80035000c000078787878000000000000";
    let mask = Mask::new().ip().eth().bytes(ofs::VLAN_TCI, &[0x1f, 0xff]);
    check(
        &key_of(qinq2, 3),
        &mask.done(),
        &[out(1), out(2), out(4)],
        counters(1, 60, 885, 0),
        "recirc_id(0),in_port(3),packet_type(ns=0,id=0),eth(src=02:00:00:00:00:02,dst=02:00:00:00:00:03),eth_type(0x88a8),vlan(vid=100),encap(eth_type(0x8100),encap(eth_type(0x0800),ipv4(frag=no))), packets:1, bytes:60, used:0.885s, actions:1,2,4",
    );
}

#[test]
fn vlan_push() {
    // in_port=1,tcp,actions=mod_vlan_vid:20,output:2
    // in_port=1,udp,actions=mod_vlan_vid:30,mod_vlan_pcp:4,output:3
    let push = |tci| DpAction::PushVlan { tpid: 0x8100, tci };
    check(
        &key_of(TCP_SYN, 2),
        &Mask::new().ip().proto().done(),
        &[push(20), out(3)],
        counters(1, 60, 978, 0x002),
        "recirc_id(0),in_port(2),packet_type(ns=0,id=0),eth_type(0x0800),ipv4(proto=6,frag=no), packets:1, bytes:60, used:0.978s, flags:S, actions:push_vlan(vid=20,pcp=0),3",
    );
    check(
        &key_of(UDP_53, 2),
        &Mask::new().ip().proto().done(),
        &[push((4 << 13) | 30), out(4)],
        counters(1, 60, 876, 0),
        "recirc_id(0),in_port(2),packet_type(ns=0,id=0),eth_type(0x0800),ipv4(proto=17,frag=no), packets:1, bytes:60, used:0.876s, actions:push_vlan(vid=30,pcp=4),4",
    );
    // From ofproto/trace: push_vlan:0x88a8,set_field:4116->vlan_vid,… and
    // mod_vlan_pcp:5 on an untagged packet.
    assert_eq!(
        format_actions(&[
            DpAction::PushVlan {
                tpid: 0x88a8,
                tci: 20
            },
            out(2),
            DpAction::PopVlan,
            out(3)
        ]),
        "push_vlan(tpid=0x88a8,vid=20,pcp=0),2,pop_vlan,3"
    );
    assert_eq!(
        format_actions(&[push(5 << 13), out(2)]),
        "push_vlan(vid=0,pcp=5),2"
    );
}

#[test]
fn arp() {
    // priority=0,actions=NORMAL
    let request = "ffffffffffff020000000001080600010800060400010200000000010a0000010000000000000a000002000000000000000000000000000000000000";
    check(
        &key_of(request, 2),
        &Mask::new()
            .dl_type()
            .eth()
            .exact(ofs::NW_SRC, 8)
            .proto()
            .done(),
        &[out(1), out(3), out(4)],
        counters(1, 60, 476, 0),
        "recirc_id(0),in_port(2),packet_type(ns=0,id=0),eth(src=02:00:00:00:00:01,dst=ff:ff:ff:ff:ff:ff),eth_type(0x0806),arp(sip=10.0.0.1,tip=10.0.0.2,op=1), packets:1, bytes:60, used:0.476s, actions:1,3,4",
    );
    // arp,arp_tpa=10.0.0.2,arp_op=1,actions=…; arp,arp_op=2,arp_sha=02:00:00:00:00:01,actions=output:3
    let reply = "020000000002020000000001080600010800060400020200000000010a0000010200000000020a000002000000000000000000000000000000000000";
    check(
        &key_of(reply, 2),
        &Mask::new()
            .dl_type()
            .exact(ofs::NW_DST, 4)
            .proto()
            .exact(ofs::ARP_SHA, 6)
            .done(),
        &[out(4)],
        counters(1, 60, 474, 0),
        "recirc_id(0),in_port(2),packet_type(ns=0,id=0),eth_type(0x0806),arp(tip=10.0.0.2,op=2,sha=02:00:00:00:00:01), packets:1, bytes:60, used:0.474s, actions:4",
    );
    // set_field:10.0.0.99->arp_tpa (OVS's SET_MASKED form).
    let set = DpAction::SetArp {
        value: ArpSet {
            tpa: [10, 0, 0, 99],
            ..Default::default()
        },
        mask: ArpSet {
            tpa: [0xff; 4],
            ..Default::default()
        },
    };
    assert_eq!(format_actions(&[set, out(3)]), "set(arp(tip=10.0.0.99)),3");
    let set_op = DpAction::SetArp {
        value: ArpSet {
            op: 2,
            ..Default::default()
        },
        mask: ArpSet {
            op: 0xff,
            ..Default::default()
        },
    };
    assert_eq!(format_actions(&[set_op]), "set(arp(op=2))");
}

#[test]
fn ipv6() {
    // ipv6,ipv6_src=2001:db8::/32,actions=output:2
    // ipv6,ipv6_dst=2001:db9::2,actions=set_field:2001:db8::9->ipv6_dst,output:3
    let tcp6 = "02000000000202000000000186dd600123450014064020010db800000000000000000000000120010db80000000000000000000000020001000200000001000000005002200000000000";
    let prefix32 = [0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    check(
        &key_of(tcp6, 2),
        &Mask::new().ip().bytes(ofs::IPV6_SRC, &prefix32).done(),
        &[out(3)],
        counters(1, 74, 585, 0x002),
        "recirc_id(0),in_port(2),packet_type(ns=0,id=0),eth_type(0x86dd),ipv6(src=2001:db8::1/ffff:ffff::,frag=no), packets:1, bytes:74, used:0.585s, flags:S, actions:3",
    );
    let udp6 = "02000000000202000000000186dd62000000000c11092001dead00000000000000000000000120010db900000000000000000000000200050006000c000078787878";
    let mut target = [0u8; 16];
    target[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
    target[15] = 9;
    let set = DpAction::SetIpv6 {
        value: Ipv6Set {
            dst: target,
            ..Default::default()
        },
        mask: Ipv6Set {
            dst: [0xff; 16],
            ..Default::default()
        },
    };
    check(
        &key_of(udp6, 2),
        &Mask::new()
            .ip()
            .proto()
            .bytes(ofs::IPV6_SRC, &prefix32)
            .exact(ofs::IPV6_DST, 16)
            .done(),
        &[set, out(4)],
        counters(1, 66, 479, 0),
        "recirc_id(0),in_port(2),packet_type(ns=0,id=0),eth_type(0x86dd),ipv6(src=2001:dead::1/ffff:ffff::,dst=2001:db9::2,proto=17,frag=no), packets:1, bytes:66, used:0.479s, actions:set(ipv6(dst=2001:db8::9)),4",
    );
}

#[test]
fn ipv6_label_and_hop_limit() {
    // ipv6,ipv6_label=0x12345,actions=set_field:0x54321->ipv6_label,mod_nw_ttl:7,output:2
    let udp6 = "02000000000202000000000186dd60012345000c114020010db800000000000000000000000120010db800000000000000000000000200050006000c000078787878";
    let set = DpAction::SetIpv6 {
        value: Ipv6Set {
            label: 0x54321,
            hlimit: 7,
            ..Default::default()
        },
        mask: Ipv6Set {
            label: 0xfffff,
            hlimit: 0xff,
            ..Default::default()
        },
    };
    check(
        &key_of(udp6, 2),
        &Mask::new()
            .ip()
            .proto()
            .bytes(ofs::IPV6_LABEL, &[0, 0x0f, 0xff, 0xff])
            .exact(ofs::NW_TTL, 1)
            .done(),
        &[set, out(3)],
        counters(1, 66, 479, 0),
        "recirc_id(0),in_port(2),packet_type(ns=0,id=0),eth_type(0x86dd),ipv6(label=0x12345,proto=17,hlimit=64,frag=no), packets:1, bytes:66, used:0.479s, actions:set(ipv6(label=0x54321,hlimit=7)),3",
    );
}

const ND_SOLICIT: &str = "3333ff00000102000000000186dd6000000000203afffe800000000000000000000000000002ff0200000000000000000001ff0000018700000000000000fe8000000000000000000000000000010101020000000001";

#[test]
fn icmpv6_and_neighbour_discovery() {
    // icmp6,icmp_type=135,nd_target=fe80::1,actions=output:2 — the code is
    // not matched, so OVS does not show the ND fields.
    let type_only = Mask::new()
        .ip()
        .proto()
        .exact(ofs::TP_SRC + 1, 1)
        .exact(ofs::ND_TARGET, 16)
        .done();
    check(
        &key_of(ND_SOLICIT, 2),
        &type_only,
        &[out(3)],
        counters(1, 86, 726, 0x001),
        "recirc_id(0),in_port(2),packet_type(ns=0,id=0),eth_type(0x86dd),ipv6(proto=58,frag=no),icmpv6(type=135), packets:1, bytes:86, used:0.726s, flags:F, actions:3",
    );
    let advert = "02000000000202000000000186dd6000000000203afffe800000000000000000000000000001fe8000000000000000000000000000028800000060000000fe8000000000000000000000000000010201020000000001";
    check(
        &key_of(advert, 2),
        &Mask::new()
            .ip()
            .proto()
            .exact(ofs::TP_SRC + 1, 1)
            .exact(ofs::ARP_THA, 6)
            .done(),
        &[out(4)],
        counters(1, 86, 599, 0x002),
        "recirc_id(0),in_port(2),packet_type(ns=0,id=0),eth_type(0x86dd),ipv6(proto=58,frag=no),icmpv6(type=136), packets:1, bytes:86, used:0.599s, flags:S, actions:4",
    );
    let echo = "02000000000202000000000186dd60000000000c3a40fe800000000000000000000000000001fe800000000000000000000000000002800000000000000070696e67";
    check(
        &key_of(echo, 2),
        &Mask::new().ip().proto().exact(ofs::TP_SRC + 1, 1).done(),
        &[out(4)],
        counters(1, 66, 474, 0),
        "recirc_id(0),in_port(2),packet_type(ns=0,id=0),eth_type(0x86dd),ipv6(proto=58,frag=no),icmpv6(type=128), packets:1, bytes:66, used:0.474s, actions:4",
    );
    // icmp6,icmp_type=135,nd_sll=02:00:00:00:00:01,actions=set_field:fe80::99->nd_target,…
    // matches type and code exactly, so the ND attribute shows.
    let exact = Mask::new()
        .ip()
        .proto()
        .exact(ofs::TP_SRC + 1, 1)
        .exact(ofs::TP_DST + 1, 1)
        .exact(ofs::ND_TARGET, 16)
        .exact(ofs::ARP_SHA, 6)
        .done();
    assert_eq!(
        format_megaflow(&key_of(ND_SOLICIT, 2), &exact),
        "recirc_id(0),in_port(2),packet_type(ns=0,id=0),eth_type(0x86dd),ipv6(proto=58,frag=no),icmpv6(type=135,code=0),nd(target=fe80::1,sll=02:00:00:00:00:01)"
    );
    let mut t = [0u8; 16];
    t[..2].copy_from_slice(&[0xfe, 0x80]);
    t[15] = 0x99;
    let set = DpAction::SetNd {
        value: NdSet {
            target: t,
            ..Default::default()
        },
        mask: NdSet {
            target: [0xff; 16],
            ..Default::default()
        },
    };
    assert_eq!(format_actions(&[set]), "set(nd(target=fe80::99))");
}

#[test]
fn icmp() {
    // icmp,icmp_type=8,actions=output:2; icmp,icmp_type=0,icmp_code=0,actions=output:3
    let echo = "02000000000202000000000108004500002000010000400166da0a0000010a000002080000000000000070696e670000000000000000000000000000";
    check(
        &key_of(echo, 2),
        &Mask::new().ip().proto().exact(ofs::TP_SRC + 1, 1).done(),
        &[out(3)],
        counters(1, 60, 572, 0),
        "recirc_id(0),in_port(2),packet_type(ns=0,id=0),eth_type(0x0800),ipv4(proto=1,frag=no),icmp(type=8), packets:1, bytes:60, used:0.572s, actions:3",
    );
    let reply = "02000000000202000000000108004500002000010000400166da0a0000010a000002000000000000000070696e670000000000000000000000000000";
    check(
        &key_of(reply, 2),
        &Mask::new()
            .ip()
            .proto()
            .exact(ofs::TP_SRC + 1, 1)
            .exact(ofs::TP_DST + 1, 1)
            .done(),
        &[out(4)],
        counters(1, 60, 475, 0),
        "recirc_id(0),in_port(2),packet_type(ns=0,id=0),eth_type(0x0800),ipv4(proto=1,frag=no),icmp(type=0,code=0), packets:1, bytes:60, used:0.475s, actions:4",
    );
}

#[test]
fn fragments() {
    // ip,nw_frag=first,actions=output:2; ip,nw_frag=later,actions=output:3;
    // udp,tp_dst=53,actions=drop
    let first = "02000000000202000000000108004500002c00012000401146be0a0000010a00000203e8003500180000787878787878787878787878787878780000";
    check(
        &key_of(first, 2),
        &Mask::new().ip().done(),
        &[out(3)],
        counters(1, 60, 701, 0),
        "recirc_id(0),in_port(2),packet_type(ns=0,id=0),eth_type(0x0800),ipv4(frag=first), packets:1, bytes:60, used:0.701s, actions:3",
    );
    let later = "02000000000202000000000108004500002400010003401166c30a0000010a0000027979797979797979797979797979797900000000000000000000";
    check(
        &key_of(later, 2),
        &Mask::new().ip().done(),
        &[out(4)],
        counters(1, 60, 593, 0),
        "recirc_id(0),in_port(2),packet_type(ns=0,id=0),eth_type(0x0800),ipv4(frag=later), packets:1, bytes:60, used:0.593s, actions:4",
    );
    check(
        &key_of(UDP_53, 2),
        &Mask::new().ip().proto().exact(ofs::TP_DST, 2).done(),
        &[],
        counters(1, 60, 482, 0),
        "recirc_id(0),in_port(2),packet_type(ns=0,id=0),eth_type(0x0800),ipv4(proto=17,frag=no),udp(dst=53), packets:1, bytes:60, used:0.482s, actions:drop",
    );
}

#[test]
fn tcp_flags() {
    // priority=10,tcp,tcp_flags=+syn-ack,actions=output:2
    // priority=5,tcp,tcp_flags=0x012,actions=output:3
    // priority=1,tcp,actions=drop
    let syn_ack = "02000000000202000000000108004500002800010000400666cd0a0000010a00000204d2005000000001000000005012200000000000000000000000";
    let ack = "02000000000202000000000108004500002800010000400666cd0a0000010a00000204d2005000000001000000005010200000000000000000000000";
    let partial = Mask::new()
        .ip()
        .proto()
        .bytes(ofs::TCP_FLAGS, &[0x00, 0x12])
        .done();
    let whole = Mask::new()
        .ip()
        .proto()
        .bytes(ofs::TCP_FLAGS, &[0x0f, 0xff])
        .done();
    check(
        &key_of(TCP_SYN, 2),
        &partial,
        &[out(3)],
        counters(1, 60, 678, 0x002),
        "recirc_id(0),in_port(2),packet_type(ns=0,id=0),eth_type(0x0800),ipv4(proto=6,frag=no),tcp_flags(+syn-ack), packets:1, bytes:60, used:0.678s, flags:S, actions:3",
    );
    check(
        &key_of(syn_ack, 2),
        &whole,
        &[out(4)],
        counters(1, 60, 575, 0x012),
        "recirc_id(0),in_port(2),packet_type(ns=0,id=0),eth_type(0x0800),ipv4(proto=6,frag=no),tcp_flags(syn|ack), packets:1, bytes:60, used:0.575s, flags:S., actions:4",
    );
    check(
        &key_of(ack, 2),
        &whole,
        &[],
        counters(1, 60, 473, 0x010),
        "recirc_id(0),in_port(2),packet_type(ns=0,id=0),eth_type(0x0800),ipv4(proto=6,frag=no),tcp_flags(ack), packets:1, bytes:60, used:0.473s, flags:., actions:drop",
    );
}

#[test]
fn tos_and_ttl() {
    // ip,nw_tos=16,nw_ttl=64,actions=output:2; ip,nw_ecn=1,actions=output:3
    let tos16 = "02000000000202000000000108004510002800010000400666bd0a0000010a00000204d2005000000001000000005002200000000000000000000000";
    check(
        &key_of(tos16, 2),
        &Mask::new()
            .ip()
            .bytes(ofs::NW_TOS, &[0xfc])
            .exact(ofs::NW_TTL, 1)
            .done(),
        &[out(3)],
        counters(1, 60, 596, 0x002),
        "recirc_id(0),in_port(2),packet_type(ns=0,id=0),eth_type(0x0800),ipv4(tos=0x10/0xfc,ttl=64,frag=no), packets:1, bytes:60, used:0.596s, flags:S, actions:3",
    );
    let ecn1 = "02000000000202000000000108004501002000010000401166c90a0000010a00000203e80035000c0000787878780000000000000000000000000000";
    check(
        &key_of(ecn1, 2),
        &Mask::new()
            .ip()
            .exact(ofs::NW_TOS, 1)
            .exact(ofs::NW_TTL, 1)
            .done(),
        &[out(4)],
        counters(1, 60, 485, 0),
        "recirc_id(0),in_port(2),packet_type(ns=0,id=0),eth_type(0x0800),ipv4(tos=0x1,ttl=64,frag=no), packets:1, bytes:60, used:0.485s, actions:4",
    );
}

#[test]
fn masked_ethernet_addresses() {
    // dl_src=02:00:00:00:00:00/ff:ff:ff:00:00:00,actions=output:2
    let mask = Mask::new()
        .ip()
        .bytes(ofs::DL_SRC, &[0xff, 0xff, 0xff, 0, 0, 0])
        .done();
    check(
        &key_of(TCP_SYN, 2),
        &mask,
        &[out(3)],
        counters(1, 60, 579, 0x002),
        "recirc_id(0),in_port(2),packet_type(ns=0,id=0),eth(src=02:00:00:00:00:01/ff:ff:ff:00:00:00),eth_type(0x0800),ipv4(frag=no), packets:1, bytes:60, used:0.579s, flags:S, actions:3",
    );
}

#[test]
fn non_ip_and_802_3_frames() {
    // in_port=1,actions=output:2
    let lldp = "02000000000202000000000188cc02020202020202020202020202020202020202020000000000000000000000000000000000000000000000000000";
    check(
        &key_of(lldp, 2),
        &Mask::new().dl_type().done(),
        &[out(3)],
        counters(1, 60, 580, 0),
        "recirc_id(0),in_port(2),packet_type(ns=0,id=0),eth_type(0x88cc), packets:1, bytes:60, used:0.580s, actions:3",
    );
    let llc = "020000000002020000000001001e42420300000000000000000000000000000000000000000000000000000000000000000000000000000000000000";
    check(
        &key_of(llc, 2),
        &Mask::new().dl_type().done(),
        &[out(3)],
        counters(1, 60, 482, 0),
        "recirc_id(0),in_port(2),packet_type(ns=0,id=0),eth_type(0/0xffff), packets:1, bytes:60, used:0.482s, actions:3",
    );
}

// ---- actions OVS printed in `ofproto/trace` ("Datapath actions:") ----

#[test]
fn controller_actions() {
    let ctl = |reason, max_len, controller_id, cookie| {
        DpAction::Userspace(SlowPath::Controller {
            bridge: 1,
            in_port: 1,
            reason,
            max_len,
            controller_id,
            table_id: 0,
            cookie,
        })
    };
    let trace = ActionFormat {
        ip_proto: None,
        trace: true,
    };
    // in_port=1,actions=controller (OVS allocates a continuation id that
    // fvs does not have: recirc_id=10 there, 0 here).
    assert_eq!(
        format_actions_with(&[ctl(1, 65535, 0, 0)], &trace),
        "userspace(pid=0,controller(reason=1,dont_send=1,continuation=0,recirc_id=0,rule_cookie=0,controller_id=0,max_len=65535))"
    );
    // cookie=0x1234,in_port=3,actions=controller(reason=no_match,id=3,max_len=100)
    assert_eq!(
        format_actions_with(&[ctl(0, 100, 3, 0x1234), out(2)], &trace),
        "userspace(pid=0,controller(reason=0,dont_send=1,continuation=0,recirc_id=0,rule_cookie=0x1234,controller_id=3,max_len=100)),2"
    );
    // Outside a trace the packet is sent.
    assert_eq!(
        format_actions(&[ctl(2, 65535, 0, 0)]),
        "userspace(pid=0,controller(reason=2,dont_send=0,continuation=0,recirc_id=0,rule_cookie=0,controller_id=0,max_len=65535))"
    );
}

#[test]
fn set_actions_from_traces() {
    // mod_dl_dst:…bb,mod_nw_src:1.2.3.4,load:0x9->NXM_NX_IP_TTL[],output:1,mod_nw_src:5.6.7.8,output:2
    let eth = DpAction::SetEth {
        value: EthSet {
            src: [0; 6],
            dst: [2, 0, 0, 0, 0, 0xbb],
        },
        mask: EthSet {
            src: [0; 6],
            dst: [0xff; 6],
        },
    };
    let ip = |src, ttl_m| DpAction::SetIpv4 {
        value: Ipv4Set {
            src,
            ttl: 9,
            ..Default::default()
        },
        mask: Ipv4Set {
            src: [0xff; 4],
            ttl: ttl_m,
            ..Default::default()
        },
    };
    assert_eq!(
        format_actions(&[
            eth,
            ip([1, 2, 3, 4], 0xff),
            out(2),
            ip([5, 6, 7, 8], 0),
            out(3)
        ]),
        "set(eth(dst=02:00:00:00:00:bb)),set(ipv4(src=1.2.3.4,ttl=9)),2,set(ipv4(src=5.6.7.8)),3"
    );
    let udp = ActionFormat {
        ip_proto: Some(17),
        trace: false,
    };
    let ports = DpAction::SetL4 {
        value: L4Set { src: 5, dst: 6 },
        mask: L4Set {
            src: 0xffff,
            dst: 0xff00,
        },
    };
    assert_eq!(
        format_actions_with(&[ports], &udp),
        "set(udp(src=5,dst=6/0xff00))"
    );
    assert_eq!(format_actions(&[]), "drop");
}

#[test]
fn tunnel_metadata() {
    let t = TunnelMeta {
        tun_id: 0x2a,
        ipv4_src: [172, 16, 1, 1],
        ipv4_dst: [172, 16, 1, 2],
        ttl: 64,
        tp_dst: 4789,
        ..Default::default()
    };
    assert_eq!(
        format_actions(&[DpAction::SetTunnel(t), out(5)]),
        "set(tunnel(tun_id=0x2a,src=172.16.1.1,dst=172.16.1.2,ttl=64,tp_dst=4789,flags(key))),5"
    );
    let mut key = key_of(TCP_SYN, 6);
    key.set_bytes(ofs::TUN_ID, &0x2au64.to_be_bytes());
    key.set_bytes(ofs::TUN_SRC, &[172, 16, 1, 1]);
    key.set_bytes(ofs::TUN_DST, &[172, 16, 1, 2]);
    key.set_bytes(ofs::TUN_TTL, &[64]);
    let mask = Mask::new().ip().exact(ofs::TUN_ID, 16).done();
    assert_eq!(
        format_megaflow(&key, &mask),
        "tunnel(tun_id=0x2a,src=172.16.1.1,dst=172.16.1.2,flags(+key)),recirc_id(0),in_port(6),packet_type(ns=0,id=0),eth_type(0x0800),ipv4(frag=no)"
    );
}

#[test]
fn wildcarded_and_partial_metadata() {
    let k = key_of(TCP_SYN, 2);
    assert_eq!(
        format_megaflow(&k, &FlowKey::ZERO),
        "packet_type(ns=0,id=0)"
    );
    let mut m = FlowKey::ZERO;
    m.set_in_port(0xff);
    m.set_recirc_id(0x0f);
    assert_eq!(
        format_megaflow(&k, &m),
        "recirc_id(0/0xf),in_port(2/0xff),packet_type(ns=0,id=0)"
    );
}

mod robustness {
    use super::*;
    use proptest::prelude::*;

    fn any_key() -> impl Strategy<Value = FlowKey> {
        proptest::collection::vec(any::<u8>(), fvs_datapath::key::KEY_LEN).prop_map(|b| {
            let mut k = FlowKey::ZERO;
            k.set_bytes(0, &b);
            k
        })
    }

    proptest! {
        /// Any key and mask print (the shapes that matter: random bytes with
        /// a real Ethertype and protocol, tags or not) without panicking.
        #[test]
        fn any_megaflow(
            mut key in any_key(),
            mask in any_key(),
            dl_type in prop::sample::select(vec![0x0800u16, 0x86dd, 0x0806, 0x8035, 0x05ff, 0x88cc]),
            proto in prop::sample::select(vec![1u8, 6, 17, 58, 132, 0, 255]),
            counters in (any::<u64>(), any::<u64>(), any::<u64>(), any::<u16>()),
            now in any::<u64>(),
        ) {
            key.set_be16(ofs::DL_TYPE, dl_type);
            key.set_bytes(ofs::NW_PROTO, &[proto]);
            let c = FlowCounters {
                packets: counters.0,
                bytes: counters.1,
                used_ms: counters.2,
                tcp_flags: counters.3,
            };
            let line = format_flow_dump_line(&key, &mask, &[DpAction::PopVlan], &c, now);
            prop_assert!(line.contains(", actions:pop_vlan"));
            prop_assert!(!line.contains('\n'));
        }
    }
}
