//! Translation: runs a packet's flow through a bridge's OpenFlow pipeline
//! and produces datapath actions, the wildcards of the decision (every
//! packet bit it depended on), and its dependencies (rules hit, tables
//! consulted, MACs looked up) for revalidation and statistics.
//!
//! Like OVS, translation keeps two copies of the flow: `flow`, as the
//! pipeline sees it, and `base`, as the datapath packet is after the actions
//! emitted so far. Header rewrites are emitted ("committed") as masked set
//! actions only before the packet leaves (output, controller).

use std::sync::Arc;
use std::time::Instant;

use fvs_datapath::actions::{ArpSet, DpAction, EthSet, Ipv4Set, Ipv6Set, L4Set, NdSet, SlowPath};
use fvs_datapath::key::{self, FlowKey, VLAN_CFI};

use crate::actions::{port, OfAction, PacketInReason, SubField};
use crate::bridge::Bridge;
use crate::fdb::Learned;
use crate::fields::{FieldId, Prereq};
use crate::flow::{ofs, OfFlow, OF_LEN};
use crate::ofproto::{Change, Ofproto};
use crate::rule::{Rule, RuleStats};
use crate::syntax;

#[path = "xlate_tunnel.rs"]
mod tunnel;

#[path = "xlate_group.rs"]
mod group;
pub use group::EXPLICIT_MISS;

/// Nested resubmits to the same or an earlier table allowed (OVS's `MAX_DEPTH`).
pub const MAX_DEPTH: u32 = 64;
/// Resubmits allowed in one translation (OVS's `MAX_RESUBMITS`).
pub const MAX_RESUBMITS: u32 = 4096;
/// Nested resubmits of any kind allowed (translation recurses on the
/// stack; forward resubmits alone cannot nest deeper than the tables).
const MAX_NESTING: u32 = 256;

/// A table lookup a translation made.
#[derive(Debug, Clone)]
pub struct TableDep {
    pub table: u8,
    /// Priority of the rule found, if any.
    pub hit_priority: Option<u16>,
    /// The flow as the lookup saw it and the bits the pipeline had set, when
    /// it differed from the packet as it arrived (else `None`).
    pub state: Option<Box<(OfFlow, OfFlow)>>,
}

/// What a megaflow's decision depended on.
#[derive(Debug, Default)]
pub struct XlateDeps {
    pub bridge: u32,
    /// OpenFlow port the packet arrived on.
    pub in_ofport: u16,
    pub rules: Vec<(u64, Arc<RuleStats>)>,
    pub tables: Vec<TableDep>,
    /// (VLAN, MAC) looked up in the MAC learning table.
    pub macs: Vec<(u16, [u8; 6])>,
    /// (VLAN, MAC, port) learned: refreshed while traffic flows.
    pub learned: Option<(u16, [u8; 6], u16)>,
    /// What it took from the tunnel state.
    pub tnl: crate::tunnel::TnlDeps,
}

/// One step of an `ofproto/trace`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TraceEvent {
    /// A lookup in `table` found `rule` (or nothing), at resubmit `depth`.
    Lookup {
        depth: u32,
        table: u8,
        rule: Option<Arc<Rule>>,
    },
    /// A note from an action (NORMAL decisions, drops), in OVS's words.
    Note {
        depth: u32,
        kind: NoteKind,
        text: String,
    },
    /// The rule found by the last lookup at `depth` executes `action`.
    Action { depth: u32, action: OfAction },
    /// Translation goes on in bridge `name` (the underlay of a tunnel):
    /// the next lookup, at `depth + 1`, is its first.
    Bridge { depth: u32, name: String },
}

/// How much a trace note matters (OVS's `OFT_DETAIL`, `OFT_WARN`, `OFT_ERROR`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoteKind {
    /// What an action decided.
    Detail,
    /// Why an action did nothing.
    Warn,
    /// Why the packet is dropped.
    Error,
}

impl PartialEq for Rule {
    fn eq(&self, other: &Rule) -> bool {
        self.id == other.id
    }
}
impl Eq for Rule {}

/// The outcome of a translation.
#[derive(Debug)]
pub struct XlateOut {
    pub actions: Vec<DpAction>,
    /// Packet bits the decision depended on, in OpenFlow-flow layout.
    pub wc: OfFlow,
    pub deps: XlateDeps,
    /// The flow at the end of the pipeline.
    pub flow: OfFlow,
    pub trace: Vec<TraceEvent>,
    /// Set when translation was cut short (the packet is dropped).
    pub error: Option<XlateError>,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum XlateError {
    #[error("over {MAX_DEPTH} nested resubmits")]
    TooDeep,
    #[error("over {MAX_RESUBMITS} resubmits")]
    TooManyResubmits,
}

pub(crate) struct Xlate<'a> {
    of: &'a Ofproto,
    br: &'a Bridge,
    now: Instant,
    flow: OfFlow,
    base: OfFlow,
    /// The flow as the packet arrived.
    orig: OfFlow,
    wc: OfFlow,
    /// Bits the pipeline set itself (their values do not depend on the packet).
    known: OfFlow,
    /// Bits written since the last commit.
    dirty: OfFlow,
    actions: Vec<DpAction>,
    deps: XlateDeps,
    depth: u32,
    /// Nested resubmits to the same or an earlier table: those that can
    /// loop, which OVS limits to `MAX_DEPTH`.
    recursion: u32,
    resubmits: u32,
    table_id: u8,
    cookie: u64,
    /// Ethertype of the outermost tag a later commit pushes, if `push_vlan`
    /// named one.
    push_tpid: Option<u16>,
    /// Stop executing the current action list (dec_ttl on an expired TTL).
    stop_list: bool,
    error: Option<XlateError>,
    trace: Option<Vec<TraceEvent>>,
    /// Every bridge, for translation that crosses into another (tunnels).
    bridges: Option<&'a std::collections::BTreeMap<u32, Bridge>>,
    /// Whether translation may change state (learn MACs and neighbours,
    /// send neighbour requests): not for traces and underlay bridges.
    side_effects: bool,
    /// The action set `write_actions` builds (executed when the pipeline ends).
    action_set: Vec<OfAction>,
    /// Translating a packet-out's actions (`output:TABLE` runs the pipeline).
    packet_out: bool,
    /// The rule executing is a table-miss rule (priority 0, matches all).
    rule_is_miss: bool,
}

fn field_bits(field: FieldId, mask: u128) -> OfFlow {
    let mut b = OfFlow::ZERO;
    b.set_masked(field, u128::MAX, mask);
    b
}

fn is_multicast(mac: &[u8]) -> bool {
    mac[0] & 1 != 0
}

impl<'a> Xlate<'a> {
    pub(crate) fn new(
        of: &'a Ofproto,
        br: &'a Bridge,
        key: &FlowKey,
        ofport: u16,
        trace: bool,
    ) -> Xlate<'a> {
        let flow = OfFlow::from_key(key, ofport as u32);
        let mut known = OfFlow::ZERO;
        // Registers start at zero for every packet; in_port is always matched exactly.
        known.b[ofs::METADATA..OF_LEN].fill(0xff);
        known.b[ofs::IN_PORT..ofs::IN_PORT + 8].fill(0xff);
        Xlate {
            of,
            br,
            now: Instant::now(),
            flow,
            base: flow,
            orig: flow,
            wc: OfFlow::ZERO,
            known,
            dirty: OfFlow::ZERO,
            actions: Vec::new(),
            deps: XlateDeps {
                bridge: br.id,
                in_ofport: ofport,
                ..Default::default()
            },
            depth: 0,
            recursion: 0,
            resubmits: 0,
            table_id: 0,
            cookie: 0,
            push_tpid: None,
            stop_list: false,
            error: None,
            trace: trace.then(Vec::new),
            bridges: None,
            side_effects: !trace,
            action_set: Vec::new(),
            packet_out: false,
            rule_is_miss: false,
        }
    }

    /// Starts the pipeline with the registers and metadata of `flow`
    /// rather than zeros.
    pub(crate) fn with_registers(mut self, flow: &OfFlow) -> Xlate<'a> {
        for f in [&mut self.flow, &mut self.base, &mut self.orig] {
            f.b[ofs::METADATA..].copy_from_slice(&flow.b[ofs::METADATA..]);
        }
        self
    }

    /// Runs the pipeline from `table`.
    pub(crate) fn run(mut self, table: u8) -> XlateOut {
        if self.br.fail_open && table == 0 && self.trace.is_none() {
            // Fail-open: the learning switch decides, whatever the tables say.
            return self.run_normal();
        }
        self.pipeline(table);
        self.run_action_set();
        XlateOut {
            actions: self.actions,
            wc: self.wc,
            deps: self.deps,
            flow: self.flow,
            trace: self.trace.unwrap_or_default(),
            error: self.error,
        }
    }

    fn note(&mut self, kind: NoteKind, text: impl FnOnce() -> String) {
        if let Some(t) = &mut self.trace {
            t.push(TraceEvent::Note {
                depth: self.depth,
                kind,
                text: text(),
            });
        }
    }

    // ---- reading and writing fields, with wildcard bookkeeping ----

    /// Reads `field` (the bits in `mask`), unwildcarding the packet bits it depends on.
    fn read(&mut self, field: FieldId, mask: u128) -> u128 {
        let bits = field_bits(field, mask);
        for i in 0..OF_LEN {
            self.wc.b[i] |= bits.b[i] & !self.known.b[i];
        }
        self.flow.get(field) & mask
    }

    fn write(&mut self, field: FieldId, value: u128, mask: u128) {
        self.flow.set_masked(field, value, mask);
        let bits = field_bits(field, mask);
        self.known.or_assign(&bits);
        self.dirty.or_assign(&bits);
    }

    fn prereq(&mut self, p: Prereq) -> bool {
        let dl_type = |x: &mut Self| x.read(FieldId::EthType, 0xffff) as u16;
        let ipv4 = |x: &mut Self| dl_type(x) == key::ETH_TYPE_IP;
        let ipv6 = |x: &mut Self| dl_type(x) == key::ETH_TYPE_IPV6;
        let ip_any = |x: &mut Self| matches!(dl_type(x), key::ETH_TYPE_IP | key::ETH_TYPE_IPV6);
        let proto = |x: &mut Self| x.read(FieldId::IpProto, 0xff) as u8;
        match p {
            Prereq::None => true,
            Prereq::Vlan => self.read(FieldId::VlanTci, VLAN_CFI as u128) != 0,
            Prereq::Arp => matches!(dl_type(self), key::ETH_TYPE_ARP | key::ETH_TYPE_RARP),
            Prereq::Ipv4 => ipv4(self),
            Prereq::Ipv6 => ipv6(self),
            Prereq::IpAny => ip_any(self),
            Prereq::Tcp => ip_any(self) && proto(self) == key::IPPROTO_TCP,
            Prereq::Udp => ip_any(self) && proto(self) == key::IPPROTO_UDP,
            Prereq::Sctp => ip_any(self) && proto(self) == key::IPPROTO_SCTP,
            Prereq::Icmpv4 => ipv4(self) && proto(self) == key::IPPROTO_ICMP,
            Prereq::Icmpv6 => ipv6(self) && proto(self) == key::IPPROTO_ICMPV6,
            Prereq::Nd | Prereq::NdSolicit | Prereq::NdAdvert => {
                if !(ipv6(self) && proto(self) == key::IPPROTO_ICMPV6) {
                    return false;
                }
                let t = self.read(FieldId::Icmpv6Type, 0xff) as u8;
                let c = self.read(FieldId::Icmpv6Code, 0xff) as u8;
                c == 0
                    && match p {
                        Prereq::NdSolicit => t == 135,
                        Prereq::NdAdvert => t == 136,
                        _ => t == 135 || t == 136,
                    }
            }
        }
    }

    // ---- the pipeline ----

    fn lookup(&mut self, table: u8) -> Option<Arc<Rule>> {
        let cls = self.br.tables.get(table as usize)?;
        let rule = cls.lookup(&self.flow, &mut self.wc, &self.known).cloned();
        let pristine = self.flow.b[..ofs::METADATA] == self.orig.b[..ofs::METADATA]
            && self.flow.b[ofs::METADATA..].iter().all(|&b| b == 0);
        let state = (!pristine).then(|| Box::new((self.flow, self.known)));
        self.deps.tables.push(TableDep {
            table,
            hit_priority: rule.as_ref().map(|r| r.priority),
            state,
        });
        if let Some(r) = &rule {
            self.deps.rules.push((r.id, r.stats.clone()));
        }
        if let Some(t) = &mut self.trace {
            t.push(TraceEvent::Lookup {
                depth: self.depth,
                table,
                rule: rule.clone(),
            });
        }
        rule
    }

    fn pipeline(&mut self, mut table: u8) {
        loop {
            self.table_id = table;
            let Some(rule) = self.lookup(table) else {
                self.table_miss();
                return;
            };
            self.rule_is_miss = rule.priority == 0 && rule.match_.is_catchall();
            let saved_cookie = std::mem::replace(&mut self.cookie, rule.cookie);
            let next = self.do_actions(&rule.actions);
            self.cookie = saved_cookie;
            match next {
                Some(t) if self.error.is_none() => table = t,
                _ => return,
            }
        }
    }

    /// Executes one action list; returns the `goto_table` target, if any.
    fn do_actions(&mut self, acts: &[OfAction]) -> Option<u8> {
        for a in acts {
            if self.error.is_some() {
                return None;
            }
            if let Some(t) = &mut self.trace {
                t.push(TraceEvent::Action {
                    depth: self.depth,
                    action: a.clone(),
                });
            }
            match a {
                OfAction::Output { port, max_len } => self.output(*port, *max_len),
                OfAction::Controller {
                    max_len,
                    reason,
                    controller_id,
                } => self.controller(*max_len, *reason, *controller_id),
                OfAction::SetVlanVid { vid } => self.set_vlan(0x0fff, *vid),
                OfAction::SetVlanPcp { pcp } => self.set_vlan(0xe000, (*pcp as u16) << 13),
                OfAction::PopVlan { .. } => self.pop_vlan(),
                OfAction::PushVlan { ethertype } => self.push_vlan(*ethertype),
                OfAction::SetEthSrc(m) => self.write(FieldId::EthSrc, mac_u128(m), u128::MAX),
                OfAction::SetEthDst(m) => self.write(FieldId::EthDst, mac_u128(m), u128::MAX),
                OfAction::SetIpv4Src(a) => self.set_if(
                    Prereq::Ipv4,
                    FieldId::Ipv4Src,
                    u32::from_be_bytes(*a) as u128,
                ),
                OfAction::SetIpv4Dst(a) => self.set_if(
                    Prereq::Ipv4,
                    FieldId::Ipv4Dst,
                    u32::from_be_bytes(*a) as u128,
                ),
                OfAction::SetIpDscp(t) => self.set_if(Prereq::IpAny, FieldId::IpTos, *t as u128),
                OfAction::SetIpEcn(e) => self.set_if(Prereq::IpAny, FieldId::IpEcn, *e as u128),
                OfAction::SetIpTtl(t) => self.set_if(Prereq::IpAny, FieldId::IpTtl, *t as u128),
                OfAction::SetL4SrcPort(p) => self.set_l4(FieldId::TcpSrc, *p),
                OfAction::SetL4DstPort(p) => self.set_l4(FieldId::TcpDst, *p),
                OfAction::SetField {
                    field, value, mask, ..
                } => self.set_field(*field, *value, *mask),
                OfAction::Move { src, dst } => self.move_field(src, dst),
                OfAction::DecTtl { controller_ids } => self.dec_ttl(controller_ids),
                OfAction::SetTunnel { tun_id, .. } => {
                    self.write(FieldId::TunId, *tun_id as u128, u128::MAX)
                }
                OfAction::Resubmit { port, table } => self.resubmit(*port, *table),
                OfAction::Note(_) => {}
                OfAction::GotoTable(t) => return Some(*t),
                OfAction::Group(g) => self.group(*g),
                OfAction::ClearActions => self.action_set.clear(),
                OfAction::WriteActions(list) => self.write_actions(list),
                OfAction::WriteMetadata { value, mask } => {
                    self.write(FieldId::Metadata, *value as u128, *mask as u128)
                }
            }
            if self.stop_list {
                self.stop_list = false;
                return None;
            }
        }
        None
    }

    fn resubmit(&mut self, in_port: Option<u16>, table: Option<u8>) {
        if self.recursion >= MAX_DEPTH || self.depth >= MAX_NESTING {
            self.note(NoteKind::Error, || {
                format!("over max translation depth {MAX_DEPTH}")
            });
            self.error = Some(XlateError::TooDeep);
            return;
        }
        if self.resubmits >= MAX_RESUBMITS {
            self.note(NoteKind::Error, || {
                format!("over {MAX_RESUBMITS} resubmit actions")
            });
            self.error = Some(XlateError::TooManyResubmits);
            return;
        }
        self.resubmits += 1;
        let saved_in = self.flow.in_port();
        let saved_table = self.table_id;
        if let Some(p) = in_port {
            self.flow.set_in_port(p as u32);
        }
        let table = table.unwrap_or(saved_table);
        let loops = u32::from(table <= saved_table);
        self.depth += 1;
        self.recursion += loops;
        self.pipeline(table);
        self.recursion -= loops;
        self.depth -= 1;
        self.flow.set_in_port(saved_in);
        self.table_id = saved_table;
    }

    fn set_if(&mut self, p: Prereq, field: FieldId, v: u128) {
        if self.prereq(p) {
            self.write(field, v, u128::MAX);
        }
    }

    fn set_l4(&mut self, field: FieldId, port: u16) {
        if !self.prereq(Prereq::IpAny) {
            return;
        }
        let proto = self.read(FieldId::IpProto, 0xff) as u8;
        let later = self.read(FieldId::IpFrag, key::FRAG_LATER as u128) != 0;
        if !later
            && matches!(
                proto,
                key::IPPROTO_TCP | key::IPPROTO_UDP | key::IPPROTO_SCTP
            )
        {
            self.write(field, port as u128, u128::MAX);
        }
    }

    fn set_field(&mut self, field: FieldId, value: u128, mask: u128) {
        if !self.prereq(field.def().prereq) {
            return;
        }
        match field {
            // These exist only in a tagged packet.
            FieldId::VlanVid | FieldId::DlVlan | FieldId::DlVlanPcp => {
                if self.read(FieldId::VlanTci, VLAN_CFI as u128) == 0 {
                    return;
                }
                let m = if field == FieldId::VlanVid {
                    mask & 0x0fff
                } else {
                    mask
                };
                self.write(field, value, m);
            }
            FieldId::IpTos | FieldId::IpDscp | FieldId::IpEcn | FieldId::IpTtl => {
                self.write(field, value, mask);
            }
            _ => self.write(field, value, mask),
        }
    }

    fn move_field(&mut self, src: &SubField, dst: &SubField) {
        if !self.prereq(src.field.def().prereq) || !self.prereq(dst.field.def().prereq) {
            return;
        }
        let n = src.n_bits.min(dst.n_bits);
        let ones = if n >= 128 {
            u128::MAX
        } else {
            (1u128 << n) - 1
        };
        let v = (self.read(src.field, ones << src.ofs) >> src.ofs) & ones;
        self.write(dst.field, v << dst.ofs, ones << dst.ofs);
        if self.trace.is_some() {
            // OVS shows what the destination holds now: a whole field in its
            // own format, a part of one as a number.
            let dst = *dst;
            let whole = self.flow.get(dst.field);
            self.note(NoteKind::Detail, || {
                let now = if dst.ofs == 0 && dst.n_bits >= dst.field.def().n_bits {
                    syntax::fmt_value(dst.field, whole, dst.field.def().value_mask(), None)
                } else {
                    syntax::hex((whole >> dst.ofs) & (dst.mask() >> dst.ofs))
                };
                format!("{} is now {now}", syntax::fmt_subfield(&dst))
            });
        }
    }

    fn dec_ttl(&mut self, ids: &[u16]) {
        if !self.prereq(Prereq::IpAny) {
            return;
        }
        let ttl = self.read(FieldId::IpTtl, 0xff);
        if ttl > 1 {
            self.write(FieldId::IpTtl, ttl - 1, 0xff);
            return;
        }
        let ip = if self.flow.dl_type() == key::ETH_TYPE_IPV6 {
            "IPv6"
        } else {
            "IPv4"
        };
        self.note(NoteKind::Warn, || format!("{ip} decrement TTL exception"));
        let ids = if ids.is_empty() { &[0u16][..] } else { ids };
        for &id in ids {
            self.controller(u16::MAX, PacketInReason::InvalidTtl, id);
        }
        self.stop_list = true;
    }

    // ---- VLAN actions ----

    fn tci(&self) -> u16 {
        self.flow.get(FieldId::VlanTci) as u16
    }

    /// Sets both tags. Not marked as pipeline-set: the new tags may carry
    /// bits of the packet's own (PCP, an inner tag), so later reads still
    /// unwildcard the packet's tags.
    fn set_tci(&mut self, outer: u16, inner: u16) {
        self.flow.b[ofs::VLAN_TCI..ofs::VLAN_TCI + 2].copy_from_slice(&outer.to_be_bytes());
        self.flow.b[ofs::VLAN2_TCI..ofs::VLAN2_TCI + 2].copy_from_slice(&inner.to_be_bytes());
        self.dirty.b[ofs::VLAN_TCI..ofs::VLAN_TCI + 4].fill(0xff);
    }

    fn inner_tci(&self) -> u16 {
        u16::from_be_bytes([self.flow.b[ofs::VLAN2_TCI], self.flow.b[ofs::VLAN2_TCI + 1]])
    }

    /// `mod_vlan_vid` / `mod_vlan_pcp`: pushes a tag first if there is none.
    fn set_vlan(&mut self, bits: u16, value: u16) {
        let present = self.read(FieldId::VlanTci, (VLAN_CFI | bits) as u128) as u16 & VLAN_CFI != 0;
        let inner = self.inner_tci();
        let tci = if present { self.tci() } else { VLAN_CFI };
        self.set_tci((tci & !bits) | (value & bits), inner);
    }

    /// Unwildcards both tags of the packet: a pop or push moves a tag from
    /// one slot to the other, so later reads of a slot depend on the other.
    fn unwildcard_vlans(&mut self) {
        for i in ofs::VLAN_TCI..ofs::VLAN_TCI + 4 {
            self.wc.b[i] |= !self.known.b[i];
        }
    }

    fn pop_vlan(&mut self) {
        self.unwildcard_vlans();
        if self.flow.get(FieldId::VlanTci) as u16 & VLAN_CFI == 0 {
            return;
        }
        let inner = self.inner_tci();
        self.set_tci(inner, 0);
    }

    fn push_vlan(&mut self, tpid: u16) {
        self.unwildcard_vlans();
        let outer = self.tci();
        self.push_tpid = Some(tpid);
        self.set_tci(VLAN_CFI, outer);
    }

    // ---- output ----

    fn output(&mut self, p: u16, max_len: u16) {
        let in_port = self.flow.in_port() as u16;
        match p {
            port::IN_PORT => self.output_to(in_port, true),
            port::NORMAL => self.normal(),
            port::FLOOD => self.flood(false),
            port::ALL => self.flood(true),
            port::CONTROLLER => self.controller(max_len, PacketInReason::Action, 0),
            port::TABLE if self.packet_out && self.depth == 0 => self.resubmit(None, Some(0)),
            port::TABLE | port::NONE => {}
            p => self.output_to(p, false),
        }
    }

    fn output_to(&mut self, ofport: u16, allow_in_port: bool) {
        if ofport == self.flow.in_port() as u16 && !allow_in_port {
            self.note(NoteKind::Warn, || "skipping output to input port".into());
            return;
        }
        let Some(odp) = self.br.ports.get(&ofport).map(|p| p.odp_port) else {
            self.note(NoteKind::Warn, || "Nonexistent output port".into());
            return;
        };
        if self.tunnel_hook(ofport) {
            return;
        }
        self.commit();
        self.actions.push(DpAction::Output(odp));
    }

    fn flood(&mut self, all: bool) {
        let in_port = self.flow.in_port() as u16;
        let ports = flood_order(
            self.br
                .ports
                .values()
                .filter(|p| p.ofport != in_port && (all || !p.no_flood))
                .filter(|p| !self.split_horizon(in_port, p.ofport)),
        );
        for p in ports {
            self.output_to(p, false);
        }
    }

    fn controller(&mut self, max_len: u16, reason: PacketInReason, controller_id: u16) {
        self.commit();
        let reason = match reason {
            PacketInReason::NoMatch => 0,
            // From a table-miss rule: OpenFlow 1.3 calls it "no match".
            PacketInReason::Action if self.rule_is_miss => group::EXPLICIT_MISS,
            PacketInReason::Action => 1,
            PacketInReason::InvalidTtl => 2,
        };
        self.actions.push(DpAction::Userspace(SlowPath::Controller {
            bridge: self.br.id,
            in_port: self.flow.in_port() as u16,
            reason,
            max_len,
            controller_id,
            table_id: self.table_id,
            cookie: self.cookie,
        }));
    }

    // ---- NORMAL: a VLAN-aware MAC learning switch ----

    fn normal(&mut self) {
        let in_port = self.flow.in_port() as u16;
        // Like OVS, the decision depends on the addresses and the VLAN
        // whatever it turns out to be (also a drop).
        self.read(FieldId::EthSrc, u128::MAX);
        self.read(FieldId::EthDst, u128::MAX);
        self.read(FieldId::VlanTci, (VLAN_CFI | 0x0fff) as u128);
        // Traffic a controller sources (in_port NONE or CONTROLLER) comes
        // from nowhere: OVS takes it as from a trunk port that learns nothing.
        let sourced = in_port == port::NONE || in_port == port::CONTROLLER;
        let trunk = crate::bridge::VlanConfig::default();
        let (in_vlans, in_name) = match self.br.ports.get(&in_port) {
            Some(p) => (&p.vlan, p.name.as_str()),
            None if sourced => (&trunk, "OFPP_NONE"),
            None => {
                self.note(NoteKind::Error, || {
                    format!("received packet on unknown port {in_port}")
                });
                self.note(NoteKind::Warn, || "no input bundle, dropping".into());
                return;
            }
        };
        let dst = mac_bytes(self.read(FieldId::EthDst, u128::MAX));
        if dst[..5] == [0x01, 0x80, 0xc2, 0x00, 0x00] && dst[5] <= 0x0f && !self.br.forward_bpdu {
            self.note(NoteKind::Detail, || {
                "packet has reserved destination MAC, dropping".into()
            });
            return;
        }
        let tci = self.read(FieldId::VlanTci, (VLAN_CFI | 0x0fff) as u128) as u16;
        let vid = if tci & VLAN_CFI != 0 { tci & 0x0fff } else { 0 };
        let Some(vlan) = in_vlans.input_vlan(vid) else {
            let access_vlan = in_vlans.tag.unwrap_or(0);
            let access = in_vlans.effective_mode() == crate::bridge::VlanMode::Access;
            self.note(NoteKind::Error, || {
                if access {
                    format!(
                        "dropping VLAN {vid} tagged packet received on port {in_name} \
                         configured as VLAN {access_vlan} access port"
                    )
                } else {
                    format!(
                        "dropping VLAN {vid} packet received on port {in_name} \
                         not configured for trunking VLAN {vid}"
                    )
                }
            });
            self.note(NoteKind::Warn, || {
                "disallowed VLAN VID for this input port, dropping".into()
            });
            return;
        };
        let src = mac_bytes(self.read(FieldId::EthSrc, u128::MAX));
        // A trace only looks (as OVS's, which learns only from real packets).
        if !is_multicast(&src) && self.side_effects && !sourced {
            self.learn(vlan, src, in_port);
        }
        if is_multicast(&dst) {
            // Multicast addresses are never learned: OVS looks them up anyway.
            self.note(NoteKind::Detail, || {
                "no learned MAC for destination, flooding".into()
            });
            self.flood_vlan(vlan, in_port);
            return;
        }
        self.deps.macs.push((vlan, dst));
        let out = self
            .br
            .fdb
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .lookup(vlan, dst, self.now);
        match out {
            Some(p) if p == in_port => self.note(NoteKind::Detail, || {
                "learned port is input port, dropping".into()
            }),
            Some(p) if self.split_horizon(in_port, p) => self.note(NoteKind::Detail, || {
                "learned port is a tunnel of the input port's split-horizon group, dropping".into()
            }),
            Some(p) => {
                self.note(NoteKind::Detail, || "forwarding to learned port".into());
                self.output_vlan(p, vlan);
            }
            None => {
                self.note(NoteKind::Detail, || {
                    "no learned MAC for destination, flooding".into()
                });
                self.flood_vlan(vlan, in_port);
            }
        }
    }

    fn learn(&mut self, vlan: u16, mac: [u8; 6], port: u16) {
        self.deps.learned = Some((vlan, mac, port));
        self.deps.macs.push((vlan, mac));
        self.of.learn(self.br, vlan, mac, port, self.now);
    }

    fn flood_vlan(&mut self, vlan: u16, in_port: u16) {
        let ports = flood_order(
            self.br
                .ports
                .values()
                .filter(|p| p.ofport != in_port && !p.no_flood && p.vlan.output(vlan).is_some())
                .filter(|p| !self.split_horizon(in_port, p.ofport)),
        );
        for p in ports {
            self.output_vlan(p, vlan);
        }
    }

    /// Outputs with the tagging `port` wants for `vlan`, restoring the flow's VLAN after.
    fn output_vlan(&mut self, port: u16, vlan: u16) {
        let Some(tagged) = self.br.ports.get(&port).and_then(|p| p.vlan.output(vlan)) else {
            return;
        };
        let (outer, inner) = (self.tci(), self.inner_tci());
        let has_tag = outer & VLAN_CFI != 0;
        let (new_outer, new_inner) = if tagged {
            (
                VLAN_CFI | if has_tag { outer & 0xe000 } else { 0 } | vlan,
                inner,
            )
        } else if has_tag {
            (inner, 0)
        } else {
            (outer, inner)
        };
        let changed = (new_outer, new_inner) != (outer, inner);
        if changed {
            self.set_tci(new_outer, new_inner);
        }
        self.output_to(port, false);
        if changed {
            self.set_tci(outer, inner);
        }
    }

    // ---- committing header changes as datapath actions ----

    fn dirty_in(&self, ofs: usize, len: usize) -> bool {
        self.dirty.b[ofs..ofs + len].iter().any(|&b| b != 0)
    }

    fn bytes<const N: usize>(f: &OfFlow, at: usize) -> [u8; N] {
        let mut out = [0u8; N];
        out.copy_from_slice(&f.b[at..at + N]);
        out
    }

    /// Emits the actions that bring the datapath packet (`base`) to `flow`.
    fn commit(&mut self) {
        let vlan_dirty = self.dirty_in(ofs::VLAN_TCI, 4);
        if vlan_dirty
            || self.base.b[ofs::VLAN_TCI..ofs::VLAN_TCI + 4]
                != self.flow.b[ofs::VLAN_TCI..ofs::VLAN_TCI + 4]
        {
            self.commit_vlan();
        }
        if self.dirty.is_zero() {
            return;
        }
        let (f, d) = (&self.flow, &self.dirty);
        let mut out = Vec::new();
        if self.dirty_in(ofs::DL_DST, 6) || self.dirty_in(ofs::DL_SRC, 6) {
            out.push(DpAction::SetEth {
                value: EthSet {
                    src: Self::bytes(f, ofs::DL_SRC),
                    dst: Self::bytes(f, ofs::DL_DST),
                },
                mask: EthSet {
                    src: Self::bytes(d, ofs::DL_SRC),
                    dst: Self::bytes(d, ofs::DL_DST),
                },
            });
        }
        let dl_type = self.base.dl_type();
        let l3_dirty = self.dirty_in(ofs::NW_PROTO, 4) || self.dirty_in(ofs::NW_SRC, 8);
        match dl_type {
            key::ETH_TYPE_IP if l3_dirty => {
                let v = |x: &OfFlow| Ipv4Set {
                    src: Self::bytes(x, ofs::NW_SRC),
                    dst: Self::bytes(x, ofs::NW_DST),
                    tos: x.b[ofs::NW_TOS],
                    ttl: x.b[ofs::NW_TTL],
                };
                out.push(DpAction::SetIpv4 {
                    value: v(f),
                    mask: v(d),
                });
            }
            key::ETH_TYPE_IPV6
                if l3_dirty
                    || self.dirty_in(ofs::IPV6_SRC, 32)
                    || self.dirty_in(ofs::IPV6_LABEL, 4) =>
            {
                let v = |x: &OfFlow| Ipv6Set {
                    src: Self::bytes(x, ofs::IPV6_SRC),
                    dst: Self::bytes(x, ofs::IPV6_DST),
                    tc: x.b[ofs::NW_TOS],
                    hlimit: x.b[ofs::NW_TTL],
                    label: u32::from_be_bytes(Self::bytes(x, ofs::IPV6_LABEL)),
                };
                out.push(DpAction::SetIpv6 {
                    value: v(f),
                    mask: v(d),
                });
            }
            _ => {}
        }
        let nd_dirty = self.dirty_in(ofs::ND_TARGET, 16)
            || self.dirty_in(ofs::ARP_SHA, 6)
            || self.dirty_in(ofs::ARP_THA, 6);
        match dl_type {
            key::ETH_TYPE_IPV6 if nd_dirty => {
                let v = |x: &OfFlow| NdSet {
                    target: Self::bytes(x, ofs::ND_TARGET),
                    sll: Self::bytes(x, ofs::ARP_SHA),
                    tll: Self::bytes(x, ofs::ARP_THA),
                };
                out.push(DpAction::SetNd {
                    value: v(f),
                    mask: v(d),
                });
            }
            key::ETH_TYPE_ARP | key::ETH_TYPE_RARP
                if l3_dirty || self.dirty_in(ofs::ARP_SHA, 6) || self.dirty_in(ofs::ARP_THA, 6) =>
            {
                let v = |x: &OfFlow| ArpSet {
                    op: x.b[ofs::NW_PROTO] as u16,
                    sha: Self::bytes(x, ofs::ARP_SHA),
                    spa: Self::bytes(x, ofs::NW_SRC),
                    tha: Self::bytes(x, ofs::ARP_THA),
                    tpa: Self::bytes(x, ofs::NW_DST),
                };
                out.push(DpAction::SetArp {
                    value: v(f),
                    mask: v(d),
                });
            }
            _ => {}
        }
        if self.dirty_in(ofs::TP_SRC, 4) && matches!(dl_type, key::ETH_TYPE_IP | key::ETH_TYPE_IPV6)
        {
            let v = |x: &OfFlow| L4Set {
                src: u16::from_be_bytes(Self::bytes(x, ofs::TP_SRC)),
                dst: u16::from_be_bytes(Self::bytes(x, ofs::TP_DST)),
            };
            out.push(DpAction::SetL4 {
                value: v(f),
                mask: v(d),
            });
        }
        self.actions.extend(out);
        // Header bytes now match; registers and tunnel metadata are not packet bytes.
        self.base.b[..ofs::METADATA].copy_from_slice(&self.flow.b[..ofs::METADATA]);
        self.dirty = OfFlow::ZERO;
    }

    fn commit_vlan(&mut self) {
        // The tags we pop, and what we push back, depend on the packet's tags.
        self.unwildcard_vlans();
        let get = |f: &OfFlow, at: usize| u16::from_be_bytes([f.b[at], f.b[at + 1]]);
        let (b1, b2) = (
            get(&self.base, ofs::VLAN_TCI),
            get(&self.base, ofs::VLAN2_TCI),
        );
        let (f1, f2) = (
            get(&self.flow, ofs::VLAN_TCI),
            get(&self.flow, ofs::VLAN2_TCI),
        );
        if (b1, b2) != (f1, f2) {
            // The tags, outermost first. Like OVS, keep the inner tags the
            // packet and the flow have in common, pop the others and push the
            // flow's; but the key holds no TPIDs, so a change of the outer
            // tag alone is made in place, keeping the packet's TPID.
            let present = |t: &u16| t & VLAN_CFI != 0;
            let base: Vec<u16> = [b1, b2].into_iter().filter(present).collect();
            let flow: Vec<u16> = [f1, f2].into_iter().filter(present).collect();
            let common = base
                .iter()
                .rev()
                .zip(flow.iter().rev())
                .take_while(|(b, f)| b == f)
                .count();
            if base.len() == flow.len() && common + 1 == base.len() {
                self.actions.push(DpAction::SetVlanTci(flow[0]));
            } else {
                for _ in common..base.len() {
                    self.actions.push(DpAction::PopVlan);
                }
                for i in (0..flow.len() - common).rev() {
                    let tpid = match (i, self.push_tpid) {
                        (0, Some(t)) => t,
                        (0, None) if flow.len() > 1 => key::ETH_TYPE_VLAN_8021AD,
                        _ => key::ETH_TYPE_VLAN,
                    };
                    self.actions.push(DpAction::PushVlan { tpid, tci: flow[i] });
                }
            }
        }
        self.push_tpid = None;
        self.base.b[ofs::VLAN_TCI..ofs::VLAN_TCI + 4]
            .copy_from_slice(&self.flow.b[ofs::VLAN_TCI..ofs::VLAN_TCI + 4]);
        self.dirty.b[ofs::VLAN_TCI..ofs::VLAN_TCI + 4].fill(0);
    }
}

/// The OpenFlow ports of `ports` in the order a flood outputs to them: by
/// datapath port, which is the order OVS floods in (it keeps its ports in
/// the order they were added, and numbers datapath ports that way too).
fn flood_order<'p>(ports: impl Iterator<Item = &'p crate::bridge::BridgePort>) -> Vec<u16> {
    let mut ports: Vec<(u32, u16)> = ports.map(|p| (p.odp_port, p.ofport)).collect();
    ports.sort_unstable();
    ports.into_iter().map(|(_, ofport)| ofport).collect()
}

pub(crate) fn mac_u128(m: &[u8; 6]) -> u128 {
    m.iter().fold(0u128, |a, &b| (a << 8) | b as u128)
}

pub(crate) fn mac_bytes(v: u128) -> [u8; 6] {
    let b = (v as u64).to_be_bytes();
    [b[2], b[3], b[4], b[5], b[6], b[7]]
}

impl Ofproto {
    /// Learns `mac` on `port`, logging a change if the table changed.
    pub(crate) fn learn(&self, br: &Bridge, vlan: u16, mac: [u8; 6], port: u16, now: Instant) {
        let (learned, evicted) = br
            .fdb
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .learn(vlan, mac, port, now);
        let mut changes = Vec::new();
        if learned == Learned::Changed {
            changes.push(Change::Fdb {
                bridge: br.id,
                vlan,
                mac,
            });
        }
        if let Some((v, m)) = evicted {
            changes.push(Change::Fdb {
                bridge: br.id,
                vlan: v,
                mac: m,
            });
        }
        if !changes.is_empty() {
            self.log_changes(changes);
        }
    }
}
