//! The main correctness test of the datapath core: random rule sets over
//! several tables, random packets and random flow-mods interleaved; every
//! packet's output (ports and resulting headers) from EMC → megaflow →
//! upcall must equal that of a naive reference that scans each table's
//! rules, highest priority first, and applies the actions to a copy of the
//! packet's fields.
//!
//! `FVS_PROPTEST_CASES` sets the number of cases (default 10,000).

mod common;

use common::*;
use etherparse::{IpFragOffset, IpHeaders, IpNumber, Ipv4Dscp, Ipv4Header, PacketBuilder};
use fvs_datapath::extract::{extract, ExtractStats};
use fvs_datapath::key::{self, ofs, FlowKey, FRAG_LATER, VLAN_CFI};
use fvs_datapath::packet::PacketPool;
use fvs_datapath::pmd::PmdConfig;
use fvs_ofproto::actions::{
    port, OfAction, PacketInReason, PopVlanSyntax, SetFieldSyntax, SubField,
};
use fvs_ofproto::fields::FieldId;
use fvs_ofproto::flow::{Match, OfFlow};
use fvs_ofproto::flow_mod::{FlowMod, FlowModCommand};
use proptest::prelude::*;

const N_PORTS: u16 = 3;
const N_TABLES: u8 = 4;

// ---------- the reference switch ----------

#[derive(Clone, Debug)]
struct RefRule {
    table: u8,
    priority: u16,
    m: Match,
    actions: Vec<OfAction>,
}

#[derive(Default)]
struct Reference {
    rules: Vec<RefRule>,
}

#[derive(Default, Debug)]
struct RefOut {
    outputs: Vec<(u16, FlowKey)>,
    controller: usize,
}

fn covers(wide: &Match, narrow: &Match) -> bool {
    (0..wide.mask.b.len()).all(|i| {
        let wm = wide.mask.b[i];
        narrow.mask.b[i] & wm == wm && narrow.flow.b[i] & wm == wide.flow.b[i]
    })
}

impl Reference {
    fn lookup(&self, table: u8, flow: &OfFlow) -> Option<&RefRule> {
        self.rules
            .iter()
            .filter(|r| r.table == table && r.m.matches(flow))
            .max_by_key(|r| r.priority)
    }

    fn flow_mod(&mut self, fm: &FlowMod) {
        let sel = |r: &RefRule| {
            fm.table_id.is_none_or(|t| t == r.table)
                && if fm.command.is_strict() {
                    r.m == fm.match_ && r.priority == fm.priority
                } else {
                    covers(&fm.match_, &r.m)
                }
        };
        match fm.command {
            FlowModCommand::Add => {
                let t = fm.table_id.unwrap_or(0);
                self.rules
                    .retain(|r| !(r.table == t && r.m == fm.match_ && r.priority == fm.priority));
                self.rules.push(RefRule {
                    table: t,
                    priority: fm.priority,
                    m: fm.match_,
                    actions: fm.actions.clone(),
                });
            }
            FlowModCommand::Modify | FlowModCommand::ModifyStrict => {
                for r in self.rules.iter_mut().filter(|r| sel(r)) {
                    r.actions = fm.actions.clone();
                }
            }
            FlowModCommand::Delete | FlowModCommand::DeleteStrict => self.rules.retain(|r| !sel(r)),
        }
    }

    fn process(&self, key: &FlowKey, in_port: u16) -> RefOut {
        let mut flow = OfFlow::from_key(key, in_port as u32);
        let mut out = RefOut::default();
        self.pipeline(0, &mut flow, &mut out, 0);
        out
    }

    fn pipeline(&self, mut table: u8, flow: &mut OfFlow, out: &mut RefOut, depth: u32) {
        loop {
            let Some(rule) = self.lookup(table, flow) else {
                return;
            };
            match self.actions(&rule.actions.clone(), flow, out, depth) {
                Some(t) => table = t,
                None => return,
            }
        }
    }

    fn actions(
        &self,
        acts: &[OfAction],
        f: &mut OfFlow,
        out: &mut RefOut,
        depth: u32,
    ) -> Option<u8> {
        let dl_type = |f: &OfFlow| f.dl_type();
        let is_ip = |f: &OfFlow| matches!(f.dl_type(), key::ETH_TYPE_IP | key::ETH_TYPE_IPV6);
        for a in acts {
            match a {
                OfAction::Output { port: p, .. } => {
                    let inp = f.in_port() as u16;
                    let emit = |p: u16, out: &mut RefOut| {
                        if (1..=N_PORTS).contains(&p) {
                            out.outputs.push((p, f.key_part()));
                        }
                    };
                    match *p {
                        port::IN_PORT => emit(inp, out),
                        port::FLOOD | port::ALL => {
                            for q in 1..=N_PORTS {
                                if q != inp {
                                    emit(q, out);
                                }
                            }
                        }
                        port::CONTROLLER => out.controller += 1,
                        q if q == inp => {}
                        q => emit(q, out),
                    }
                }
                OfAction::Controller { .. } => out.controller += 1,
                OfAction::SetEthDst(m) => f.b[ofs::DL_DST..ofs::DL_DST + 6].copy_from_slice(m),
                OfAction::SetIpv4Dst(a) => {
                    if dl_type(f) == key::ETH_TYPE_IP {
                        f.b[ofs::NW_DST..ofs::NW_DST + 4].copy_from_slice(a);
                    }
                }
                OfAction::SetL4DstPort(p) => {
                    let proto = f.nw_proto();
                    if is_ip(f)
                        && f.b[ofs::NW_FRAG] & FRAG_LATER == 0
                        && matches!(
                            proto,
                            key::IPPROTO_TCP | key::IPPROTO_UDP | key::IPPROTO_SCTP
                        )
                    {
                        f.b[ofs::TP_DST..ofs::TP_DST + 2].copy_from_slice(&p.to_be_bytes());
                    }
                }
                OfAction::SetIpDscp(t) => {
                    if is_ip(f) {
                        f.b[ofs::NW_TOS] = (f.b[ofs::NW_TOS] & 3) | (t & 0xfc);
                    }
                }
                OfAction::SetIpTtl(t) => {
                    if is_ip(f) {
                        f.b[ofs::NW_TTL] = *t;
                    }
                }
                OfAction::DecTtl { .. } => {
                    if is_ip(f) {
                        if f.b[ofs::NW_TTL] > 1 {
                            f.b[ofs::NW_TTL] -= 1;
                        } else {
                            out.controller += 1;
                            return None;
                        }
                    }
                }
                OfAction::SetField {
                    field, value, mask, ..
                } => match field {
                    FieldId::Reg0 | FieldId::Reg1 | FieldId::Metadata => {
                        f.set_masked(*field, *value, *mask)
                    }
                    FieldId::Ipv4Src => {
                        if dl_type(f) == key::ETH_TYPE_IP {
                            f.set_masked(*field, *value, *mask);
                        }
                    }
                    other => panic!("reference does not model set_field {other:?}"),
                },
                OfAction::Move { src, dst } => {
                    // Only moves from/to registers and nw_src are generated.
                    let ok = |fid: FieldId, f: &OfFlow| {
                        fid != FieldId::Ipv4Src || f.dl_type() == key::ETH_TYPE_IP
                    };
                    if ok(src.field, f) && ok(dst.field, f) {
                        let ones = (1u128 << src.n_bits) - 1;
                        let v = (f.get(src.field) >> src.ofs) & ones;
                        f.set_masked(dst.field, v << dst.ofs, ones << dst.ofs);
                    }
                }
                OfAction::WriteMetadata { value, mask } => {
                    f.set_masked(FieldId::Metadata, *value as u128, *mask as u128)
                }
                OfAction::PushVlan { .. } => {
                    let outer = [f.b[ofs::VLAN_TCI], f.b[ofs::VLAN_TCI + 1]];
                    f.b[ofs::VLAN2_TCI..ofs::VLAN2_TCI + 2].copy_from_slice(&outer);
                    f.b[ofs::VLAN_TCI..ofs::VLAN_TCI + 2].copy_from_slice(&VLAN_CFI.to_be_bytes());
                }
                OfAction::SetVlanVid { vid } => {
                    let tci = f.get(FieldId::VlanTci) as u16;
                    let tci = if tci & VLAN_CFI != 0 {
                        (tci & 0xf000) | vid
                    } else {
                        VLAN_CFI | vid
                    };
                    f.set(FieldId::VlanTci, tci as u128);
                }
                OfAction::PopVlan { .. } => {
                    if f.get(FieldId::VlanTci) as u16 & VLAN_CFI != 0 {
                        let inner = [f.b[ofs::VLAN2_TCI], f.b[ofs::VLAN2_TCI + 1]];
                        f.b[ofs::VLAN_TCI..ofs::VLAN_TCI + 2].copy_from_slice(&inner);
                        f.b[ofs::VLAN2_TCI..ofs::VLAN2_TCI + 2].fill(0);
                    }
                }
                OfAction::Resubmit { port: p, table } => {
                    let saved = f.in_port();
                    if let Some(p) = p {
                        f.set_in_port(*p as u32);
                    }
                    self.pipeline(table.expect("generated with a table"), f, out, depth + 1);
                    f.set_in_port(saved);
                }
                OfAction::GotoTable(t) => return Some(*t),
                OfAction::Note(_) => {}
                other => panic!("reference does not model {other:?}"),
            }
        }
        None
    }
}

// ---------- generators ----------

fn addr() -> impl Strategy<Value = [u8; 4]> {
    prop_oneof![
        Just([10, 0, 0, 1]),
        Just([10, 0, 0, 2]),
        Just([10, 0, 1, 1]),
        Just([192, 168, 0, 9])
    ]
}

fn l4port() -> impl Strategy<Value = u16> {
    prop_oneof![Just(80u16), Just(443), Just(53), Just(8080)]
}

#[derive(Clone, Debug)]
enum L3 {
    Tcp {
        sip: [u8; 4],
        dip: [u8; 4],
        sport: u16,
        dport: u16,
        ttl: u8,
        tos: u8,
    },
    Udp {
        sip: [u8; 4],
        dip: [u8; 4],
        sport: u16,
        dport: u16,
        ttl: u8,
    },
    Icmp {
        sip: [u8; 4],
        dip: [u8; 4],
        ttl: u8,
    },
    LaterFragment {
        sip: [u8; 4],
        dip: [u8; 4],
    },
    Arp {
        op: u16,
        spa: [u8; 4],
        tpa: [u8; 4],
    },
    Udp6 {
        sport: u16,
        dport: u16,
        hlim: u8,
    },
}

#[derive(Clone, Debug)]
struct PacketSpec {
    src: u8,
    dst: u8,
    vlans: Vec<u16>,
    l3: L3,
}

fn ttl() -> impl Strategy<Value = u8> {
    prop_oneof![Just(1u8), Just(2), Just(64)]
}

fn packet_spec() -> impl Strategy<Value = PacketSpec> {
    let l3 = prop_oneof![
        4 => (addr(), addr(), l4port(), l4port(), ttl(), prop_oneof![Just(0u8), Just(0x22)])
            .prop_map(|(sip, dip, sport, dport, ttl, tos)| L3::Tcp { sip, dip, sport, dport, ttl, tos }),
        3 => (addr(), addr(), l4port(), l4port(), ttl()).prop_map(|(sip, dip, sport, dport, ttl)| L3::Udp { sip, dip, sport, dport, ttl }),
        1 => (addr(), addr(), ttl()).prop_map(|(sip, dip, ttl)| L3::Icmp { sip, dip, ttl }),
        1 => (addr(), addr()).prop_map(|(sip, dip)| L3::LaterFragment { sip, dip }),
        1 => (1u16..=2, addr(), addr()).prop_map(|(op, spa, tpa)| L3::Arp { op, spa, tpa }),
        1 => (l4port(), l4port(), ttl()).prop_map(|(sport, dport, hlim)| L3::Udp6 { sport, dport, hlim }),
    ];
    let vlans = prop_oneof![4 => Just(vec![]), 2 => Just(vec![10]), 1 => Just(vec![20]), 1 => Just(vec![10, 20])];
    (1u8..=3, 1u8..=3, vlans, l3).prop_map(|(src, dst, vlans, l3)| PacketSpec {
        src,
        dst,
        vlans,
        l3,
    })
}

fn build(p: &PacketSpec) -> Vec<u8> {
    let payload = [0x5au8; 10];
    let mut l3 = Vec::new();
    let ethertype = match &p.l3 {
        L3::Tcp {
            sip,
            dip,
            sport,
            dport,
            ttl,
            tos,
        } => {
            let mut ip = Ipv4Header::new(0, *ttl, IpNumber::TCP, *sip, *dip).unwrap();
            ip.dscp = Ipv4Dscp::try_new(tos >> 2).unwrap();
            PacketBuilder::ip(IpHeaders::Ipv4(ip, Default::default()))
                .tcp(*sport, *dport, 7, 512)
                .write(&mut l3, &payload)
                .unwrap();
            key::ETH_TYPE_IP
        }
        L3::Udp {
            sip,
            dip,
            sport,
            dport,
            ttl,
        } => {
            PacketBuilder::ipv4(*sip, *dip, *ttl)
                .udp(*sport, *dport)
                .write(&mut l3, &payload)
                .unwrap();
            key::ETH_TYPE_IP
        }
        L3::Icmp { sip, dip, ttl } => {
            PacketBuilder::ipv4(*sip, *dip, *ttl)
                .icmpv4_echo_request(1, 2)
                .write(&mut l3, &payload)
                .unwrap();
            key::ETH_TYPE_IP
        }
        L3::Udp6 { sport, dport, hlim } => {
            let s = [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
            let d = [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];
            PacketBuilder::ipv6(s, d, *hlim)
                .udp(*sport, *dport)
                .write(&mut l3, &payload)
                .unwrap();
            key::ETH_TYPE_IPV6
        }
        L3::LaterFragment { sip, dip } => {
            let mut ip =
                Ipv4Header::new(payload.len() as u16, 64, IpNumber::UDP, *sip, *dip).unwrap();
            ip.fragment_offset = IpFragOffset::try_new(100).unwrap();
            ip.header_checksum = ip.calc_header_checksum();
            ip.write(&mut l3).unwrap();
            l3.extend_from_slice(&payload);
            key::ETH_TYPE_IP
        }
        L3::Arp { op, spa, tpa } => {
            l3.extend_from_slice(&[0, 1, 8, 0, 6, 4]);
            l3.extend_from_slice(&op.to_be_bytes());
            l3.extend_from_slice(&mac(p.src));
            l3.extend_from_slice(spa);
            l3.extend_from_slice(&[0; 6]);
            l3.extend_from_slice(tpa);
            key::ETH_TYPE_ARP
        }
    };
    let mut v = Vec::new();
    v.extend_from_slice(&mac(p.dst));
    v.extend_from_slice(&mac(p.src));
    let n = p.vlans.len();
    for (i, vid) in p.vlans.iter().enumerate() {
        let tpid = if n == 2 && i == 0 {
            key::ETH_TYPE_VLAN_8021AD
        } else {
            key::ETH_TYPE_VLAN
        };
        v.extend_from_slice(&tpid.to_be_bytes());
        v.extend_from_slice(&vid.to_be_bytes());
    }
    v.extend_from_slice(&ethertype.to_be_bytes());
    v.extend_from_slice(&l3);
    v
}

fn mac_value(m: [u8; 6]) -> u128 {
    m.iter().fold(0u128, |a, &b| (a << 8) | b as u128)
}

fn prefix_mask(bits: u32) -> u128 {
    if bits == 0 {
        0
    } else {
        (u32::MAX << (32 - bits)) as u128
    }
}

fn match_strategy(table: u8) -> impl Strategy<Value = Match> {
    let in_port = prop::option::weighted(0.4, 1u16..=3);
    let dl = prop_oneof![3 => Just(None), 4 => Just(Some(key::ETH_TYPE_IP)), 1 => Just(Some(key::ETH_TYPE_ARP)), 1 => Just(Some(key::ETH_TYPE_IPV6))];
    let dst = prop_oneof![4 => Just(None), 2 => (1u8..=3).prop_map(|m| Some((m, u128::MAX))), 1 => Just(Some((1, 0x0100_0000_0000u128)))];
    let vlan = prop_oneof![6 => Just(None), 1 => Just(Some((VLAN_CFI | 10, 0x1fffu16))), 1 => Just(Some((0, 0x1000)))];
    let ip = (
        prop::option::weighted(
            0.4,
            prop_oneof![
                Just(key::IPPROTO_TCP),
                Just(key::IPPROTO_UDP),
                Just(key::IPPROTO_ICMP)
            ],
        ),
        prop::option::weighted(
            0.4,
            (
                addr(),
                prop_oneof![Just(8u32), Just(16), Just(24), Just(32)],
            ),
        ),
        prop::option::weighted(
            0.4,
            (
                addr(),
                prop_oneof![Just(16u32), Just(24), Just(31), Just(32)],
            ),
        ),
        prop::option::weighted(0.2, ttl()),
        prop::option::weighted(0.5, (l4port(), prop_oneof![Just(0xffffu16), Just(0xff00)])),
    );
    let regs = (
        prop::option::weighted(0.3, 0u32..3),
        prop::option::weighted(0.2, 0u64..3),
    );
    // Fields beyond the key's hot words: IPv6 source, ARP sender MAC.
    let cold = prop::option::weighted(0.4, 1u8..=3);
    (in_port, dl, dst, vlan, ip, (regs, cold)).prop_map(
        move |(in_port, dl, dst, vlan, (proto, src, dstip, ttl, tp), ((reg0, md), cold))| {
            let mut m = Match::catchall();
            if let Some(p) = in_port {
                m.set_exact(FieldId::InPort, p as u128);
            }
            if let Some((d, mask)) = dst {
                m.set_masked(FieldId::EthDst, mac_value(mac(d)), mask);
            }
            if let Some((tci, mask)) = vlan {
                m.set_masked(FieldId::VlanTci, tci as u128, mask as u128);
            }
            if let Some(t) = dl {
                m.set_exact(FieldId::EthType, t as u128);
                if t == key::ETH_TYPE_IP {
                    if let Some((a, bits)) = src {
                        m.set_masked(
                            FieldId::Ipv4Src,
                            u32::from_be_bytes(a) as u128,
                            prefix_mask(bits),
                        );
                    }
                    if let Some((a, bits)) = dstip {
                        m.set_masked(
                            FieldId::Ipv4Dst,
                            u32::from_be_bytes(a) as u128,
                            prefix_mask(bits),
                        );
                    }
                    if let Some(t) = ttl {
                        m.set_exact(FieldId::IpTtl, t as u128);
                    }
                    if let Some(p) = proto {
                        m.set_exact(FieldId::IpProto, p as u128);
                        if let (Some((v, mask)), true) = (tp, p != key::IPPROTO_ICMP) {
                            m.set_masked(FieldId::TcpDst, v as u128, mask as u128);
                        }
                    }
                } else if t == key::ETH_TYPE_ARP {
                    if let Some((a, bits)) = dstip {
                        m.set_masked(
                            FieldId::ArpTpa,
                            u32::from_be_bytes(a) as u128,
                            prefix_mask(bits),
                        );
                    }
                    if let Some(c) = cold {
                        m.set_exact(FieldId::ArpSha, mac_value(mac(c)));
                    }
                } else if t == key::ETH_TYPE_IPV6 {
                    if let Some(c) = cold {
                        // The generated IPv6 packets come from fd00::1.
                        m.set_exact(FieldId::Ipv6Src, (0xfd00u128 << 112) | (c as u128 % 2));
                    }
                }
            }
            if table > 0 {
                if let Some(r) = reg0 {
                    m.set_exact(FieldId::Reg0, r as u128);
                }
                if let Some(md) = md {
                    m.set_masked(FieldId::Metadata, md as u128, 0x3);
                }
            }
            m
        },
    )
}

fn action_strategy(table: u8) -> impl Strategy<Value = OfAction> {
    let later = (table + 1).min(N_TABLES - 1);
    let resubmit_ok = table + 1 < N_TABLES;
    prop_oneof![
        6 => (1u16..=4).prop_map(|p| OfAction::Output { port: p, max_len: 0 }),
        1 => Just(OfAction::Output { port: port::IN_PORT, max_len: 0 }),
        1 => Just(OfAction::Output { port: port::FLOOD, max_len: 0 }),
        1 => Just(OfAction::Controller { max_len: 128, reason: PacketInReason::Action, controller_id: 0 }),
        1 => Just(OfAction::SetEthDst(mac(7))),
        1 => Just(OfAction::SetIpv4Dst([192, 168, 0, 9])),
        1 => Just(OfAction::SetL4DstPort(8080)),
        1 => Just(OfAction::SetIpDscp(0x28)),
        1 => Just(OfAction::SetIpTtl(9)),
        2 => Just(OfAction::DecTtl { controller_ids: vec![] }),
        1 => (0u128..3).prop_map(|v| OfAction::SetField { field: FieldId::Reg0, value: v, mask: u128::MAX, syntax: SetFieldSyntax::SetField }),
        1 => (0u128..3).prop_map(|v| OfAction::SetField { field: FieldId::Reg1, value: v << 4, mask: 0xf0, syntax: SetFieldSyntax::Load }),
        1 => Just(OfAction::Move {
            src: SubField { field: FieldId::Ipv4Src, ofs: 0, n_bits: 2 },
            dst: SubField { field: FieldId::Reg0, ofs: 0, n_bits: 2 },
        }),
        1 => Just(OfAction::Move {
            src: SubField { field: FieldId::Reg1, ofs: 4, n_bits: 8 },
            dst: SubField { field: FieldId::Ipv4Src, ofs: 0, n_bits: 8 },
        }),
        1 => (0u64..3).prop_map(|v| OfAction::WriteMetadata { value: v, mask: 0x3 }),
        1 => Just(OfAction::PushVlan { ethertype: key::ETH_TYPE_VLAN }),
        1 => Just(OfAction::SetVlanVid { vid: 30 }),
        1 => Just(OfAction::PopVlan { syntax: PopVlanSyntax::StripVlan }),
        2 => (prop::option::of(1u16..=3), later..N_TABLES).prop_map(move |(p, t)| if resubmit_ok {
                OfAction::Resubmit { port: p, table: Some(t) }
            } else {
                OfAction::Note(vec![1])
            }),
    ]
}

fn actions_strategy(table: u8) -> impl Strategy<Value = Vec<OfAction>> {
    let goto = if table + 1 < N_TABLES {
        prop::option::weighted(0.3, (table + 1)..N_TABLES).boxed()
    } else {
        Just(None).boxed()
    };
    (prop::collection::vec(action_strategy(table), 0..4), goto).prop_map(|(mut a, g)| {
        if let Some(t) = g {
            a.push(OfAction::GotoTable(t));
        }
        a
    })
}

fn rule_strategy() -> impl Strategy<Value = (u8, Match, Vec<OfAction>)> {
    (0..N_TABLES).prop_flat_map(|t| (Just(t), match_strategy(t), actions_strategy(t)))
}

#[derive(Clone, Debug)]
enum Step {
    Packets {
        in_port: u16,
        pkts: Vec<PacketSpec>,
    },
    Add {
        table: u8,
        m: Match,
        actions: Vec<OfAction>,
    },
    /// Modify or delete: strict ones address an existing rule by index.
    Change {
        delete: bool,
        strict: bool,
        which: usize,
        m: Match,
        table: Option<u8>,
        actions: Vec<OfAction>,
    },
}

fn step_strategy() -> impl Strategy<Value = Step> {
    prop_oneof![
        8 => (1u16..=3, prop::collection::vec(packet_spec(), 1..6)).prop_map(|(in_port, pkts)| Step::Packets { in_port, pkts }),
        1 => rule_strategy().prop_map(|(table, m, actions)| Step::Add { table, m, actions }),
        1 => (any::<bool>(), any::<bool>(), any::<usize>(), match_strategy(0), prop::option::of(0..N_TABLES), actions_strategy(N_TABLES - 1))
            .prop_map(|(delete, strict, which, m, table, actions)| Step::Change { delete, strict, which, m, table, actions }),
    ]
}

#[derive(Clone, Debug)]
struct Case {
    emc_inv_prob: u32,
    rules: Vec<(u8, Match, Vec<OfAction>)>,
    steps: Vec<Step>,
}

fn case_strategy() -> impl Strategy<Value = Case> {
    (
        prop_oneof![Just(1u32), Just(0), Just(3)],
        prop::collection::vec(rule_strategy(), 0..24),
        prop::collection::vec(step_strategy(), 1..24),
    )
        .prop_map(|(emc_inv_prob, rules, steps)| Case {
            emc_inv_prob,
            rules,
            steps,
        })
}

// ---------- running a case ----------

fn key_of(frame: &[u8], pool: &PacketPool) -> FlowKey {
    let mut p = pool.packet_from(frame).unwrap();
    let mut k = FlowKey::ZERO;
    extract(&mut p, &mut k, &mut ExtractStats::default());
    k
}

/// The fields an output is compared on (everything but in_port/recirc_id).
fn fields(k: &FlowKey) -> Vec<u8> {
    k.b[8..].to_vec()
}

fn check_ipv4_checksums(frame: &[u8]) -> Result<(), TestCaseError> {
    if let Ok(p) = etherparse::SlicedPacket::from_ethernet(frame) {
        if let Some(etherparse::NetSlice::Ipv4(ip)) = &p.net {
            let h = ip.header();
            prop_assert_eq!(
                h.to_header().calc_header_checksum(),
                h.header_checksum(),
                "IPv4 header checksum"
            );
            if h.fragments_offset().value() == 0 && !h.more_fragments() {
                let hdr = h.to_header();
                match &p.transport {
                    Some(etherparse::TransportSlice::Tcp(t)) => {
                        let want = t.to_header().calc_checksum_ipv4(&hdr, t.payload()).unwrap();
                        prop_assert_eq!(want, t.checksum(), "TCP checksum");
                    }
                    Some(etherparse::TransportSlice::Udp(u)) if u.checksum() != 0 => {
                        let want = u.to_header().calc_checksum_ipv4(&hdr, u.payload()).unwrap();
                        prop_assert_eq!(want, u.checksum(), "UDP checksum");
                    }
                    _ => {}
                }
            }
        }
    }
    Ok(())
}

fn flow_mod(
    command: FlowModCommand,
    table: Option<u8>,
    priority: u16,
    m: Match,
    actions: Vec<OfAction>,
) -> FlowMod {
    let mut fm = FlowMod::new(command);
    fm.table_id = table;
    fm.priority = priority;
    fm.match_ = m;
    fm.actions = actions;
    fm
}

fn run_case(case: &Case) -> Result<(), TestCaseError> {
    let config = PmdConfig {
        emc_entries: 64,
        emc_insert_inv_prob: case.emc_inv_prob,
        ..Default::default()
    };
    let mut sw = TestSwitch::with_pool(N_PORTS as usize, config, 512);
    let mut reference = Reference::default();
    let mut next_prio = 1000u16;
    let history = std::cell::RefCell::new(Vec::<String>::new());
    let apply = |sw: &TestSwitch, reference: &mut Reference, fm: FlowMod| {
        let out = sw.flow_mod(&fm).unwrap();
        history.borrow_mut().push(format!(
            "{:?} t{:?} p{} {:?} {:?} => {:?}",
            fm.command, fm.table_id, fm.priority, fm.match_, fm.actions, out
        ));
        reference.flow_mod(&fm);
    };
    for (t, m, a) in &case.rules {
        next_prio -= 7;
        apply(
            &sw,
            &mut reference,
            flow_mod(FlowModCommand::Add, Some(*t), next_prio, *m, a.clone()),
        );
    }
    for step in &case.steps {
        match step {
            Step::Add { table, m, actions } => {
                next_prio -= 7;
                apply(
                    &sw,
                    &mut reference,
                    flow_mod(
                        FlowModCommand::Add,
                        Some(*table),
                        next_prio,
                        *m,
                        actions.clone(),
                    ),
                );
            }
            Step::Change {
                delete,
                strict,
                which,
                m,
                table,
                actions,
            } => {
                let command = match (delete, strict) {
                    (true, true) => FlowModCommand::DeleteStrict,
                    (true, false) => FlowModCommand::Delete,
                    (false, true) => FlowModCommand::ModifyStrict,
                    (false, false) => FlowModCommand::Modify,
                };
                // Strict ones address a rule that exists. The new actions come
                // from the last table's generator: no goto or resubmit, so
                // they are legal in any table.
                let (table, prio, m) = if *strict && !reference.rules.is_empty() {
                    let r = &reference.rules[which % reference.rules.len()];
                    (Some(r.table), r.priority, r.m)
                } else {
                    (*table, 0, *m)
                };
                let acts = if *delete { vec![] } else { actions.clone() };
                apply(&sw, &mut reference, flow_mod(command, table, prio, m, acts));
            }
            Step::Packets { in_port, pkts } => {
                history
                    .borrow_mut()
                    .push(format!("packets on {in_port}: {}", pkts.len()));
                let frames: Vec<Vec<u8>> = pkts.iter().map(build).collect();
                let ctrl_before = sw.pmd.counters().slow_path;
                let got = sw.send(*in_port, &frames);
                let ctrl = (sw.pmd.counters().slow_path - ctrl_before) as usize;
                let mut want_ctrl = 0;
                let mut want: Vec<(u16, Vec<u8>)> = Vec::new();
                for f in &frames {
                    let r = reference.process(&key_of(f, &sw.pool), *in_port);
                    want_ctrl += r.controller;
                    want.extend(r.outputs.iter().map(|(p, k)| (*p, fields(k))));
                }
                let mut got_fields: Vec<(u16, Vec<u8>)> = Vec::new();
                for (p, frame) in &got {
                    check_ipv4_checksums(frame)?;
                    got_fields.push((*p, fields(&key_of(frame, &sw.pool))));
                }
                want.sort();
                got_fields.sort();
                if got_fields.len() != want.len() || got_fields != want {
                    let mut why = String::new();
                    for f in &frames {
                        let mut k = key_of(f, &sw.pool);
                        k.set_in_port(*in_port as u32 + ODP_OFFSET);
                        let t = sw.of.trace("br0", &k, *in_port).unwrap();
                        why += &format!("\n  packet {:?}\n    translation {:?}", k, t.actions);
                    }
                    for d in sw.pmd.dump_flows() {
                        why += &format!("\n  megaflow {:?}/{:?} -> {:?}", d.key, d.mask, d.actions);
                    }
                    why += &format!("\n  got {got_fields:?}\n  want {want:?}");
                    for h in history.borrow().iter() {
                        why += &format!("\n  mod {h}");
                    }
                    prop_assert!(false, "outputs differ on port {}:{}", in_port, why);
                }
                for (g, w) in got_fields.iter().zip(want.iter()) {
                    prop_assert_eq!(g, w, "output differs for {:?}", pkts);
                }
                prop_assert_eq!(ctrl, want_ctrl, "packets to the controller");
            }
        }
    }
    let c = sw.pmd.counters();
    prop_assert_eq!(c.upcalls_failed, 0);
    prop_assert_eq!(
        c.packets,
        c.simple_hits + c.emc_hits + c.megaflow_hits + c.upcalls_ok
    );
    Ok(())
}

fn cases() -> u32 {
    std::env::var("FVS_PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), max_shrink_iters: 2000, ..ProptestConfig::default() })]

    #[test]
    fn caches_agree_with_a_naive_reference(case in case_strategy()) {
        run_case(&case)?;
    }
}
