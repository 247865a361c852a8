//! `ovs-appctl ofproto/trace BRIDGE FLOW`, byte for byte as Open vSwitch
//! 3.1 prints it (ofproto/ofproto-dpif-trace.c):
//!
//! ```text
//! Flow: tcp,in_port=1,vlan_tci=0x0000,…,tp_dst=80,tcp_flags=0
//!
//! bridge("br0")
//! -------------
//!  0. in_port=1, priority 32768
//!     resubmit(,1)
//!  1. priority 0
//!     NORMAL
//!      -> no learned MAC for destination, flooding
//!
//! Final flow: unchanged
//! Megaflow: recirc_id=0,eth,ip,in_port=1,nw_frag=no
//! Datapath actions: 2,3
//! ```
//!
//! The flow is parsed as OVS's `parse_ofp_exact_flow()` reads it (every
//! field exact, unnamed fields zero, `in_port` ANY when absent), and the
//! trace is printed from the translation's events as OVS's tree of trace
//! nodes: a table lookup nests under the action that caused it, and a node
//! is indented one step further when anything follows it in its list.

use std::fmt::Write as _;

use fvs_datapath::key::{
    self, FlowKey, ETH_TYPE_ARP, ETH_TYPE_IP, ETH_TYPE_IPV6, ETH_TYPE_RARP, FRAG_ANY, FRAG_LATER,
    VLAN_CFI,
};
use fvs_datapath::odp::{self, ActionFormat};

use crate::actions::{port, OfAction, SetFieldSyntax};
use crate::fields::{FieldFormat, FieldId};
use crate::flow::{ofs, Match, OfFlow};
use crate::flow_mod::DEFAULT_PRIORITY;
use crate::ofproto::Ofproto;
use crate::syntax::{self, ParseError, PortMap};
use crate::xlate::{NoteKind, TraceEvent, XlateError, XlateOut};

// ---- parsing the flow to trace ----

/// The attributes of OVS's datapath flow syntax: a flow starting with one of
/// them is a datapath flow, which fvs does not trace.
const DATAPATH_ATTRS: &[&str] = &[
    "skb_priority",
    "skb_mark",
    "ct_state",
    "ct_zone",
    "ct_mark",
    "ct_label",
    "recirc_id",
    "dp_hash",
    "tunnel",
    "in_port",
    "packet_type",
    "eth",
    "eth_type",
    "vlan",
    "encap",
    "ipv4",
    "ipv6",
    "tcp",
    "udp",
    "sctp",
    "icmp",
    "icmpv6",
    "arp",
    "nd",
    "tcp_flags",
    "mpls",
];

/// Whether OVS would take `text` for a datapath flow (`in_port(1),…`, or
/// nothing at all), which it traces only when given a datapath name.
fn is_datapath_flow(text: &str) -> bool {
    let t = text.trim_start_matches([' ', '\t', '\r', '\n', ',']);
    if t.is_empty() {
        return true;
    }
    let name_len = t
        .bytes()
        .position(|b| !(b.is_ascii_alphanumeric() || b == b'_'))
        .unwrap_or(t.len());
    t[name_len..].starts_with('(') && DATAPATH_ATTRS.contains(&&t[..name_len])
}

/// Parses the flow of `ofproto/trace BRIDGE FLOW`: OpenFlow flow syntax
/// with exact values only (`in_port=1,tcp,nw_dst=10.0.0.1,tp_dst=80`,
/// ports by number or by name). Returns the flow as a datapath key and the
/// OpenFlow input port (`ANY`, 0xffff, when the flow names none); the
/// key's `in_port` is the datapath port of that OpenFlow port, if any.
/// Registers and metadata, which a datapath key has not, are dropped: see
/// [`parse_trace_of_flow`]. Errors are the one line OVS replies with.
pub fn parse_trace_flow(
    ofproto: &Ofproto,
    bridge: &str,
    text: &str,
) -> Result<(FlowKey, u16), String> {
    let flow = parse_trace_of_flow(ofproto, bridge, text)?;
    let ofport = flow.in_port() as u16;
    let odp_port = ofproto
        .with_bridge(bridge, |b| b.port(ofport).map(|p| p.odp_port))
        .ok()
        .flatten()
        .unwrap_or(0);
    let mut key = flow.key_part();
    key.set_in_port(odp_port);
    Ok((key, ofport))
}

/// [`parse_trace_flow`] into the OpenFlow view of the packet: the
/// OpenFlow input port in `in_port`, and the registers and metadata the
/// flow sets.
pub fn parse_trace_of_flow(ofproto: &Ofproto, bridge: &str, text: &str) -> Result<OfFlow, String> {
    if is_datapath_flow(text) {
        return Err("Cannot find the datapath".to_string());
    }
    let ports = ofproto
        .port_names(bridge)
        .map_err(|_| format!("{bridge}: unknown bridge"))?;
    let names: PortMap = ports.iter().map(|(n, name)| (name.as_str(), *n)).collect();
    parse_exact_flow(text, &names).map_err(|e| format!("Bad openflow flow syntax: {text}: {e}"))
}

/// OVS's `parse_ofp_exact_flow()`: protocol names and `field=value` items,
/// each field given once, after its prerequisites, without a mask.
fn parse_exact_flow(text: &str, ports: &PortMap) -> Result<OfFlow, String> {
    let mut flow = OfFlow::ZERO;
    for (name, value) in syntax::key_values(text) {
        if let Some((dl_type, proto)) = syntax::protocol(name) {
            if flow.dl_type() != 0 {
                return Err("Ethernet type set multiple times".to_string());
            }
            flow.set(FieldId::EthType, u128::from(dl_type));
            if let Some(p) = proto {
                if flow.nw_proto() != 0 {
                    return Err("network protocol set multiple times".to_string());
                }
                flow.set(FieldId::IpProto, u128::from(p));
            }
            continue;
        }
        let id = syntax::field_by_name(name).ok_or_else(|| format!("unknown field {name}"))?;
        if !syntax::prereq_met(id.def().prereq, &flow) {
            return Err(format!("prerequisites not met for setting {name}"));
        }
        if flow.get(id) != 0 {
            return Err(format!("field {name} set multiple times"));
        }
        let v = exact_value(id, name, value, ports)
            .map_err(|why| format!("bad value for {name} ({value}: {why})"))?;
        set_flow_value(&mut flow, id, v);
    }
    if flow.in_port() == 0 {
        flow.set_in_port(u32::from(port::NONE));
    }
    Ok(flow)
}

/// The value of one `field=value` item, which must not be masked; the error
/// is OVS's reason.
fn exact_value(id: FieldId, name: &str, value: &str, ports: &PortMap) -> Result<u128, String> {
    if id == FieldId::IpFrag {
        // Only the fragment types that pin down both bits are exact.
        return match value {
            "no" => Ok(0),
            "first" => Ok(u128::from(FRAG_ANY)),
            "later" => Ok(u128::from(FRAG_ANY | FRAG_LATER)),
            "yes" | "not_later" => Err("wildcards not allowed here".to_string()),
            _ => Err(r#"unknown fragment type (valid types are "no", "yes", "first", "later", "not_later")"#
                .to_string()),
        };
    }
    let (v, m) = syntax::parse_value(id, name, value, Some(ports)).map_err(|e| match e {
        ParseError::BadValue { reason, .. } => ovs_reason(id, value, reason),
        other => other.to_string(),
    })?;
    let exact = m == id.def().value_mask() || (id == FieldId::DlVlan && v == 0xffff);
    if !exact {
        return Err("wildcards not allowed here".to_string());
    }
    Ok(v)
}

/// OVS's wording where it differs from the flow-mod syntax's.
fn ovs_reason(id: FieldId, value: &str, reason: String) -> String {
    let f = id.def();
    let mf_name = syntax::mf_name(id);
    match f.format {
        FieldFormat::OfpPort => format!("invalid or unknown port for {mf_name}"),
        FieldFormat::Decimal | FieldFormat::Hex => {
            let number = value.split_once('/').map_or(value, |(v, _)| v);
            let too_wide = match syntax::parse_field_int(number) {
                Ok(v) => f.len < 16 && v >> (f.len * 8) != 0,
                Err(e) => e == syntax::NumErr::Range,
            };
            if too_wide {
                format!("value too large for {}-byte field {mf_name}", f.len)
            } else {
                reason
            }
        }
        _ => reason,
    }
}

/// OVS's `mf_set_flow_value()`: the OpenFlow 1.0 VLAN fields also mark the
/// tag present (and `dl_vlan=0xffff` removes it).
fn set_flow_value(flow: &mut OfFlow, id: FieldId, v: u128) {
    let cfi = u128::from(VLAN_CFI);
    let tci = flow.get(FieldId::VlanTci);
    match id {
        FieldId::DlVlan if v == 0xffff => flow.set(FieldId::VlanTci, 0),
        FieldId::DlVlan => flow.set(FieldId::VlanTci, (tci & !0x0fff) | (v & 0x0fff) | cfi),
        FieldId::VlanVid => flow.set(FieldId::VlanTci, (tci & !0x1fff) | (v & 0x1fff)),
        FieldId::DlVlanPcp => flow.set(FieldId::VlanTci, (tci & !0xe000) | (v << 13) | cfi),
        _ => flow.set(id, v),
    }
}

// ---- printing flows ----

/// OVS's `match_format()` of the VLAN tag `suffix` ("" outer, "1" inner).
fn vlan_items(tci: u16, mask: u16, suffix: &str) -> Vec<String> {
    let (vid_m, pcp_m) = (mask & 0x0fff, mask & 0xe000);
    if mask & VLAN_CFI != 0
        && tci & VLAN_CFI != 0
        && (vid_m == 0 || vid_m == 0x0fff)
        && (pcp_m == 0 || pcp_m == 0xe000)
        && (vid_m | pcp_m) != 0
    {
        let mut items = Vec::new();
        if vid_m != 0 {
            items.push(format!("dl_vlan{suffix}={}", tci & 0x0fff));
        }
        if pcp_m != 0 {
            items.push(format!("dl_vlan_pcp{suffix}={}", tci >> 13));
        }
        items
    } else if mask == 0xffff {
        vec![format!("vlan_tci{suffix}=0x{tci:04x}")]
    } else {
        vec![format!("vlan_tci{suffix}=0x{tci:04x}/0x{mask:04x}")]
    }
}

fn be16_at(f: &OfFlow, at: usize) -> u16 {
    u16::from_be_bytes([f.b[at], f.b[at + 1]])
}

/// `m` as `match_format()` prints it, including the inner VLAN tag (which
/// the flow syntax has no field for) after the outer one.
fn format_with_inner_vlan(m: &Match) -> String {
    let s = syntax::format_match(m, DEFAULT_PRIORITY);
    let inner_mask = be16_at(&m.mask, ofs::VLAN2_TCI);
    if inner_mask == 0 || be16_at(&m.mask, ofs::VLAN_TCI) == 0 {
        return s;
    }
    let mut items: Vec<String> = s.split(',').map(str::to_string).collect();
    let outer_end = items
        .iter()
        .rposition(|i| {
            i.starts_with("dl_vlan=") || i.starts_with("dl_vlan_pcp=") || i.starts_with("vlan_tci=")
        })
        .map_or(items.len(), |i| i + 1);
    let inner = vlan_items(be16_at(&m.flow, ofs::VLAN2_TCI), inner_mask, "1");
    items.splice(outer_end..outer_end, inner);
    items.join(",")
}

fn mask_field(mask: &mut OfFlow, id: FieldId) {
    mask.set_masked(id, u128::MAX, u128::MAX);
}

fn mask_bytes(mask: &mut OfFlow, at: usize, len: usize) {
    mask.b[at..at + len].fill(0xff);
}

/// A whole flow as OVS's `flow_format()` prints it: every field the packet
/// has (by its Ethertype and protocol), the pipeline's registers, metadata
/// and tunnel fields only when nonzero.
pub fn format_flow(f: &OfFlow) -> String {
    use FieldId::*;
    let mut m = OfFlow::ZERO;
    let nonzero = |id: FieldId| f.get(id) != 0;
    for id in (0..16)
        .filter_map(FieldId::reg)
        .chain([Metadata, TunId, InPort])
    {
        if nonzero(id) {
            mask_field(&mut m, id);
        }
    }
    if nonzero(TunDst) {
        for id in [TunSrc, TunDst, TunTos, TunTtl] {
            mask_field(&mut m, id);
        }
    } else if nonzero(TunIpv6Dst) {
        for id in [TunIpv6Src, TunIpv6Dst, TunTos, TunTtl] {
            mask_field(&mut m, id);
        }
    }
    for id in [EthSrc, EthDst, EthType, VlanTci] {
        mask_field(&mut m, id);
    }
    // The inner tag shows when there is an outer one.
    if f.get(VlanTci) != 0 {
        mask_bytes(&mut m, ofs::VLAN2_TCI, 2);
    }
    let dl_type = f.dl_type();
    match dl_type {
        ETH_TYPE_IP => {
            mask_field(&mut m, Ipv4Src);
            mask_field(&mut m, Ipv4Dst);
        }
        ETH_TYPE_IPV6 => {
            for id in [Ipv6Src, Ipv6Dst, Ipv6Label] {
                mask_field(&mut m, id);
            }
        }
        ETH_TYPE_ARP | ETH_TYPE_RARP => {
            for id in [ArpSpa, ArpTpa, ArpOp, ArpSha, ArpTha] {
                mask_field(&mut m, id);
            }
        }
        _ => {}
    }
    if f.is_ip_any() {
        for at in [ofs::NW_PROTO, ofs::NW_TOS, ofs::NW_TTL] {
            mask_bytes(&mut m, at, 1);
        }
        mask_field(&mut m, IpFrag);
        let proto = f.nw_proto();
        let later = f.b[ofs::NW_FRAG] & FRAG_LATER != 0;
        let has_ports = matches!(
            proto,
            key::IPPROTO_ICMP
                | key::IPPROTO_ICMPV6
                | key::IPPROTO_TCP
                | key::IPPROTO_UDP
                | key::IPPROTO_SCTP
        );
        if has_ports && !later {
            mask_bytes(&mut m, ofs::TP_SRC, 4);
            match proto {
                key::IPPROTO_TCP => mask_field(&mut m, TcpFlags),
                key::IPPROTO_ICMPV6 => {
                    for id in [NdTarget, NdSll, NdTll] {
                        mask_field(&mut m, id);
                    }
                }
                _ => {}
            }
        }
    }
    format_with_inner_vlan(&Match {
        flow: f.and(&m),
        mask: m,
    })
}

/// The megaflow of a translation as OVS's trace prints it: the wildcards
/// over the flow as it arrived, with what every datapath flow matches
/// (recirculation id, packet type, input port). As OVS, the tags of an
/// untagged packet are not shown (the datapath key has no VLAN to match),
/// nor the ports of a later fragment (it has no L4 header).
pub fn format_megaflow(initial: &OfFlow, wc: &OfFlow) -> String {
    let mut wc = *wc;
    mask_field(&mut wc, FieldId::InPort);
    for at in [ofs::VLAN_TCI, ofs::VLAN2_TCI] {
        let tagged = be16_at(initial, at) & VLAN_CFI != 0;
        let outer_tagged = be16_at(initial, ofs::VLAN_TCI) & VLAN_CFI != 0;
        let mask = be16_at(&wc, at);
        let shown = if !tagged || !outer_tagged {
            0
        } else if mask != 0 {
            // A matched tag always matches its "present" bit.
            mask | VLAN_CFI
        } else {
            0
        };
        wc.b[at..at + 2].copy_from_slice(&shown.to_be_bytes());
    }
    if initial.b[ofs::NW_FRAG] & FRAG_LATER != 0 {
        wc.b[ofs::TP_SRC..ofs::TP_SRC + 4].fill(0);
    }
    let rest = format_with_inner_vlan(&Match {
        flow: initial.and(&wc),
        mask: wc,
    });
    if rest.is_empty() {
        "recirc_id=0,eth".to_string()
    } else {
        format!("recirc_id=0,eth,{rest}")
    }
}

// ---- the tree of trace nodes ----

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum NodeKind {
    Bridge,
    Table,
    Action,
    Note(NoteKind),
}

struct Node {
    kind: NodeKind,
    text: String,
    subs: Vec<usize>,
}

/// OVS's trace nodes, built from the translation's events.
struct Tree {
    nodes: Vec<Node>,
    /// The table node whose actions run at each resubmit depth.
    tables: Vec<Option<usize>>,
}

const BRIDGE: usize = 0;

impl Tree {
    fn new(bridge: &str) -> Tree {
        Tree {
            nodes: vec![Node {
                kind: NodeKind::Bridge,
                text: format!("bridge(\"{bridge}\")"),
                subs: Vec::new(),
            }],
            tables: Vec::new(),
        }
    }

    fn add(&mut self, parent: usize, kind: NodeKind, text: String) -> usize {
        let id = self.nodes.len();
        self.nodes.push(Node {
            kind,
            text,
            subs: Vec::new(),
        });
        self.nodes[parent].subs.push(id);
        id
    }

    /// The table node running actions at `depth` (the bridge if none).
    fn table_at(&self, depth: usize) -> usize {
        self.tables.get(depth).copied().flatten().unwrap_or(BRIDGE)
    }

    fn build(&mut self, events: &[TraceEvent]) {
        // A lookup right after `goto_table` continues the same pipeline:
        // OVS nests it under the table that went to it.
        let mut after_goto: Option<usize> = None;
        // A lookup in another bridge (a tunnel's underlay) nests under
        // that bridge's node: (its depth, the node).
        let mut in_bridge: Option<(usize, usize)> = None;
        for ev in events {
            let goto = after_goto.take();
            match ev {
                TraceEvent::Lookup { depth, table, rule } => {
                    let depth = *depth as usize;
                    let parent = match (goto, in_bridge.take()) {
                        (_, Some((d, node))) if d == depth => node,
                        (Some(d), _) if d == depth => self.table_at(depth),
                        _ if depth == 0 && self.tables.is_empty() => BRIDGE,
                        _ => self.table_at(depth.saturating_sub(1)),
                    };
                    let text = match rule {
                        None => format!("{table:2}. No match."),
                        Some(r) => {
                            let m = syntax::format_match(&r.match_, DEFAULT_PRIORITY);
                            let mut s = format!("{table:2}. {m}");
                            if !m.is_empty() {
                                s.push_str(", ");
                            }
                            let _ = write!(s, "priority {}", r.priority);
                            if r.cookie != 0 {
                                let _ = write!(s, ", cookie {:#x}", r.cookie);
                            }
                            s
                        }
                    };
                    let id = self.add(parent, NodeKind::Table, text);
                    if rule.as_ref().is_none_or(|r| r.actions.is_empty()) {
                        self.add(id, NodeKind::Action, "drop".to_string());
                    }
                    self.tables.resize(depth + 1, None);
                    self.tables[depth] = Some(id);
                }
                TraceEvent::Action { depth, action } => {
                    let parent = self.table_at(*depth as usize);
                    for line in action_lines(action) {
                        self.add(parent, NodeKind::Action, line);
                    }
                    if matches!(action, OfAction::GotoTable(_)) {
                        after_goto = Some(*depth as usize);
                    }
                }
                TraceEvent::Note { depth, kind, text } => {
                    let parent = self.table_at(*depth as usize);
                    self.add(parent, NodeKind::Note(*kind), text.clone());
                }
                TraceEvent::Bridge { depth, name } => {
                    let parent = self.table_at(*depth as usize);
                    let id = self.add(parent, NodeKind::Bridge, format!("bridge(\"{name}\")"));
                    in_bridge = Some((*depth as usize + 1, id));
                }
            }
        }
    }

    /// OVS's `oftrace_node_print_details()`.
    fn print(&self, list: &[usize], level: usize, out: &mut String) {
        for (i, &id) in list.iter().enumerate() {
            let node = &self.nodes[id];
            let terminal = matches!(node.kind, NodeKind::Action | NodeKind::Note(_));
            let more = usize::from(i + 1 < list.len() || terminal);
            let indent = " ".repeat((level + more) * 4);
            match node.kind {
                NodeKind::Bridge => {
                    let _ = write!(
                        out,
                        "\n{indent}{}\n{indent}{}\n",
                        node.text,
                        "-".repeat(node.text.len())
                    );
                }
                NodeKind::Note(NoteKind::Detail) => {
                    let _ = writeln!(out, "{indent} -> {}", node.text);
                }
                NodeKind::Note(NoteKind::Warn) => {
                    let _ = writeln!(out, "{indent} >> {}", node.text);
                }
                NodeKind::Note(NoteKind::Error) => {
                    let _ = writeln!(out, "{indent} >>>> {} <<<<", node.text);
                }
                NodeKind::Table | NodeKind::Action => {
                    let _ = writeln!(out, "{indent}{}", node.text);
                }
            }
            self.print(&node.subs, level + 2 * more, out);
        }
    }
}

/// An action as OVS lists it in a trace; a masked `load` is one line per
/// `load` OVS stores it as.
fn action_lines(a: &OfAction) -> Vec<String> {
    let text = syntax::format_actions(std::slice::from_ref(a));
    match a {
        OfAction::SetField {
            syntax: SetFieldSyntax::Load,
            ..
        } => text.split(',').map(str::to_string).collect(),
        _ => vec![text],
    }
}

/// OVS's `xlate_strerror()`.
fn xlate_error_text(e: &XlateError) -> &'static str {
    match e {
        XlateError::TooDeep => "Recursion too deep",
        XlateError::TooManyResubmits => "Too many resubmits",
    }
}

/// The output of `ofproto/trace` for the translation `out` of the packet
/// `initial` (its OpenFlow view as the pipeline starts, e.g.
/// `OfFlow::from_key(&key, ofport)`) on `bridge`, exactly as `ovs-appctl`
/// prints it (ending in a newline).
pub fn format_trace(bridge: &str, initial: &OfFlow, out: &XlateOut) -> String {
    let initial = *initial;
    let mut s = format!("Flow: {}\n", format_flow(&initial));

    let mut tree = Tree::new(bridge);
    tree.build(&out.trace);
    tree.print(&[BRIDGE], 0, &mut s);

    s.push_str("\nFinal flow: ");
    if out.flow == initial {
        s.push_str("unchanged");
    } else {
        s.push_str(&format_flow(&out.flow));
    }
    let _ = writeln!(s, "\nMegaflow: {}", format_megaflow(&initial, &out.wc));

    s.push_str("Datapath actions: ");
    match &out.error {
        // A failed translation installs nothing and drops the packet.
        Some(e) => {
            let _ = write!(
                s,
                "drop\nTranslation failed ({}), packet is dropped.\n",
                xlate_error_text(e)
            );
        }
        None => {
            let how = ActionFormat {
                ip_proto: initial.is_ip_any().then(|| initial.nw_proto()),
                trace: true,
            };
            s.push_str(&odp::format_actions_with(&out.actions, &how));
            s.push('\n');
        }
    }
    s
}

/// `ofproto/trace BRIDGE FLOW` from end to end: parses `flow`, translates
/// it without side effects and prints the trace; or the one-line error OVS
/// replies with.
pub fn trace(ofproto: &Ofproto, bridge: &str, flow: &str) -> Result<String, String> {
    let flow = parse_trace_of_flow(ofproto, bridge, flow)?;
    let out = ofproto
        .trace_flow(bridge, &flow)
        .map_err(|_| format!("{bridge}: unknown bridge"))?;
    Ok(format_trace(bridge, &flow, &out))
}
