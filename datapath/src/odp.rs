//! Datapath flows and actions as `ovs-appctl dpctl/dump-flows` prints them,
//! byte for byte as Open vSwitch 3.1 does for its userspace (netdev)
//! datapath: `odp_flow_format()` without `-m`, `format_odp_actions()` and
//! `dpif_flow_stats_format()` (lib/odp-util.c, lib/dpif.c).
//!
//! OVS prints a megaflow as the list of datapath key attributes of its key,
//! each with the bits of the mask: an attribute whose mask is all zero is
//! left out, a field whose mask is zero is left out of its attribute, and a
//! partially masked field is printed `value/mask`, the value being the key
//! as given. (OVS dumps the unmasked key of the packet that created the
//! flow, `src=10.1.2.3/255.255.0.0`; fvs's datapath keeps the masked key,
//! which shows as `src=10.1.0.0/255.255.0.0`.)
//!
//! What the fvs key does not hold is printed as OVS prints the usual case:
//! the packet type is always Ethernet, an outer VLAN tag has TPID 0x8100
//! unless an inner tag follows (then 0x88a8), and a controller action has no
//! continuation (`recirc_id=0`).

use std::fmt::Write as _;

use crate::actions::{ArpSet, DpAction, EthSet, Ipv4Set, Ipv6Set, L4Set, NdSet, SlowPath};
use crate::dpcls::FlowCounters;
use crate::key::{
    self, ofs, FlowKey, DL_TYPE_NONE, ETH_TYPE_ARP, ETH_TYPE_IP, ETH_TYPE_IPV6, ETH_TYPE_RARP,
    ETH_TYPE_VLAN, ETH_TYPE_VLAN_8021AD, FRAG_ANY, FRAG_LATER, IPPROTO_ICMP, IPPROTO_ICMPV6,
    IPPROTO_SCTP, IPPROTO_TCP, IPPROTO_UDP, VLAN_CFI,
};
use crate::packet::TunnelMeta;
use crate::tunnel::{self, TnlPush, TUN_FLAGS_PUBLIC};

/// The TCP flag names of OVS's `packet_tcp_flag_to_string()`, bit 0 first.
const TCP_FLAG_NAMES: [&str; 12] = [
    "fin", "syn", "rst", "psh", "ack", "urg", "ece", "cwr", "ns", "[200]", "[400]", "[800]",
];
/// The 12 bits of `tcp_flags`.
const TCP_FLAGS_MASK: u16 = 0x0fff;
/// The 20 bits of an IPv6 flow label.
const IPV6_LABEL_MASK: u32 = 0x000f_ffff;
const ND_NEIGHBOR_SOLICIT: u8 = 135;
const ND_NEIGHBOR_ADVERT: u8 = 136;

// ---- number and address formats, as C's printf and inet_ntop write them ----

/// C's `%#x`: `0` for zero (no prefix), `0x…` otherwise.
fn alt_hex(v: impl Into<u128>) -> String {
    match v.into() {
        0 => "0".to_string(),
        v => format!("{v:#x}"),
    }
}

fn mac(b: &[u8]) -> String {
    let mut s = String::with_capacity(17);
    for (i, byte) in b.iter().enumerate() {
        if i > 0 {
            s.push(':');
        }
        let _ = write!(s, "{byte:02x}");
    }
    s
}

fn ipv4(b: &[u8]) -> String {
    match b {
        [a, b, c, d] => format!("{a}.{b}.{c}.{d}"),
        _ => String::new(),
    }
}

/// An IPv6 address as glibc's `inet_ntop()` writes it: the longest run of
/// two or more zero groups (the first of equals) becomes `::`, and an
/// IPv4-compatible (`::a.b.c.d`) or IPv4-mapped (`::ffff:a.b.c.d`) address
/// ends in dotted quad.
pub fn format_ipv6(b: &[u8; 16]) -> String {
    let groups: [u16; 8] = std::array::from_fn(|i| u16::from_be_bytes([b[2 * i], b[2 * i + 1]]));
    // Longest run of zero groups.
    let (mut best_at, mut best_len) = (0, 0);
    let mut i = 0;
    while i < 8 {
        if groups[i] == 0 {
            let start = i;
            while i < 8 && groups[i] == 0 {
                i += 1;
            }
            if i - start > best_len {
                (best_at, best_len) = (start, i - start);
            }
        } else {
            i += 1;
        }
    }
    if best_len < 2 {
        best_len = 0;
    }
    let mut s = String::new();
    let mut i = 0;
    while i < 8 {
        if best_len > 0 && i == best_at {
            s.push_str(if i == 0 { "::" } else { ":" });
            i += best_len;
            continue;
        }
        let dotted_tail =
            i == 6 && best_at == 0 && (best_len == 6 || (best_len == 5 && groups[5] == 0xffff));
        if dotted_tail {
            s.push_str(&ipv4(&b[12..16]));
            break;
        }
        let _ = write!(s, "{:x}", groups[i]);
        i += 1;
        if i < 8 {
            s.push(':');
        }
    }
    s
}

// ---- reading the key ----

fn arr<const N: usize>(k: &FlowKey, at: usize) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(k.bytes(at, N));
    out
}

fn is_zero(b: &[u8]) -> bool {
    b.iter().all(|&x| x == 0)
}

// ---- one attribute's fields, OVS's format_*() helpers (non-verbose) ----

/// The `name=value` fields of one attribute. A field whose mask is zero is
/// left out; with no mask (an unmasked `set` action) every field is printed.
struct Fields {
    out: Vec<String>,
}

impl Fields {
    fn new() -> Fields {
        Fields { out: Vec::new() }
    }

    fn put(&mut self, s: String) {
        self.out.push(s);
    }

    /// `format_eth()`.
    fn eth(&mut self, name: &str, v: &[u8], m: Option<&[u8]>) {
        match m {
            Some(m) if is_zero(m) => {}
            Some(m) if m.iter().any(|&b| b != 0xff) => {
                self.put(format!("{name}={}/{}", mac(v), mac(m)))
            }
            _ => self.put(format!("{name}={}", mac(v))),
        }
    }

    /// `format_ipv4()`.
    fn ipv4(&mut self, name: &str, v: &[u8], m: Option<&[u8]>) {
        match m {
            Some(m) if is_zero(m) => {}
            Some(m) if m.iter().any(|&b| b != 0xff) => {
                self.put(format!("{name}={}/{}", ipv4(v), ipv4(m)))
            }
            _ => self.put(format!("{name}={}", ipv4(v))),
        }
    }

    /// `format_in6_addr()`.
    fn ipv6(&mut self, name: &str, v: &[u8; 16], m: Option<&[u8; 16]>) {
        match m {
            Some(m) if is_zero(m) => {}
            Some(m) if m.iter().any(|&b| b != 0xff) => {
                self.put(format!("{name}={}/{}", format_ipv6(v), format_ipv6(m)))
            }
            _ => self.put(format!("{name}={}", format_ipv6(v))),
        }
    }

    /// `format_u8u()`: decimal value, hex mask.
    fn u8u(&mut self, name: &str, v: u8, m: Option<u8>) {
        match m {
            Some(0) => {}
            Some(m) if m != u8::MAX => self.put(format!("{name}={v}/{}", alt_hex(m))),
            _ => self.put(format!("{name}={v}")),
        }
    }

    /// `format_u8x()`: hex value and mask.
    fn u8x(&mut self, name: &str, v: u8, m: Option<u8>) {
        match m {
            Some(0) => {}
            Some(m) if m != u8::MAX => self.put(format!("{name}={}/{}", alt_hex(v), alt_hex(m))),
            _ => self.put(format!("{name}={}", alt_hex(v))),
        }
    }

    /// `format_be16()`: decimal value, hex mask.
    fn be16(&mut self, name: &str, v: u16, m: Option<u16>) {
        match m {
            Some(0) => {}
            Some(m) if m != u16::MAX => self.put(format!("{name}={v}/{}", alt_hex(m))),
            _ => self.put(format!("{name}={v}")),
        }
    }

    /// `format_be64()` (`tun_id`): always `0x`-prefixed value.
    fn be64(&mut self, name: &str, v: u64, m: Option<u64>) {
        match m {
            Some(0) => {}
            Some(m) if m != u64::MAX => self.put(format!("{name}={v:#x}/{}", alt_hex(m))),
            _ => self.put(format!("{name}={v:#x}")),
        }
    }

    /// `format_ipv6_label()`.
    fn label(&mut self, v: u32, m: Option<u32>) {
        match m {
            Some(0) => {}
            Some(m) if m & IPV6_LABEL_MASK != IPV6_LABEL_MASK => {
                self.put(format!("label={}/{}", alt_hex(v), alt_hex(m)))
            }
            _ => self.put(format!("label={}", alt_hex(v))),
        }
    }

    /// `format_frag()`: the datapath's fragment type, only whole.
    fn frag(&mut self, nw_frag: u8, m: Option<u8>) {
        if m == Some(0) {
            return;
        }
        let t = if nw_frag & FRAG_ANY == 0 {
            "no"
        } else if nw_frag & FRAG_LATER != 0 {
            "later"
        } else {
            "first"
        };
        self.put(format!("frag={t}"));
    }

    fn join(&self) -> String {
        self.out.join(",")
    }

    fn is_empty(&self) -> bool {
        self.out.is_empty()
    }
}

/// `format_vlan_tci()` of a tag (`tci` carries the CFI "present" bit);
/// its masks are always `0x`-prefixed.
fn vlan_tci(tci: u16, mask: u16) -> String {
    let (vid, vid_m) = (tci & 0x0fff, mask & 0x0fff);
    let (pcp, pcp_m) = (tci >> 13, mask >> 13);
    let mut f = Vec::new();
    if vid != 0 || vid_m != 0 {
        let mut s = format!("vid={vid}");
        if vid_m != 0x0fff {
            let _ = write!(s, "/0x{vid_m:x}");
        }
        f.push(s);
    }
    if pcp != 0 || pcp_m != 0 {
        let mut s = format!("pcp={pcp}");
        if pcp_m != 7 {
            let _ = write!(s, "/0x{pcp_m:x}");
        }
        f.push(s);
    }
    if tci & VLAN_CFI == 0 {
        f.push("cfi=0".to_string());
    }
    f.join(",")
}

/// OVS's `format_flags()` with `|` (a flag set printed whole).
fn flags_exact(v: u16, names: &[&str]) -> String {
    if v == 0 {
        return "0".to_string();
    }
    let mut parts = Vec::new();
    let mut unknown = 0u16;
    for bit in 0..16 {
        if v & (1 << bit) != 0 {
            match names.get(bit) {
                Some(n) => parts.push((*n).to_string()),
                None => unknown |= 1 << bit,
            }
        }
    }
    if unknown != 0 {
        parts.push(format!("{unknown:#x}"));
    }
    parts.join("|")
}

/// OVS's `format_flags_masked()` without a name: `+flag` / `-flag` per mask bit.
fn flags_masked(v: u16, m: u16, full: u16, names: &[&str]) -> String {
    if m == full {
        return flags_exact(v, names);
    }
    if m == 0 {
        return "0/0".to_string();
    }
    let mut s = String::new();
    for bit in 0..16 {
        if m & (1 << bit) != 0 {
            s.push(if v & (1 << bit) != 0 { '+' } else { '-' });
            s.push_str(names.get(bit).copied().unwrap_or("[Unknown]"));
        }
    }
    s
}

// ---- megaflows ----

/// A megaflow (key and mask) as `dpctl/dump-flows` prints it, e.g.
/// `recirc_id(0),in_port(2),packet_type(ns=0,id=0),eth(src=…,dst=…),eth_type(0x0800),ipv4(src=10.0.0.1,frag=no),tcp(dst=80)`.
pub fn format_megaflow(key: &FlowKey, mask: &FlowKey) -> String {
    let mut attrs: Vec<String> = Vec::new();
    if let Some(t) = tunnel_attr(key, mask) {
        attrs.push(t);
    }
    let recirc_m = mask.recirc_id();
    if recirc_m != 0 {
        let mut s = format!("recirc_id({}", alt_hex(key.recirc_id()));
        if recirc_m != u32::MAX {
            s.push('/');
            s.push_str(&alt_hex(recirc_m));
        }
        attrs.push(s + ")");
    }
    let port_m = mask.in_port();
    if port_m == u32::MAX {
        attrs.push(format!("in_port({})", key.in_port()));
    } else if port_m != 0 {
        attrs.push(format!("in_port({}/{})", key.in_port(), alt_hex(port_m)));
    }
    // fvs switches Ethernet frames only; its megaflows always match the type.
    attrs.push("packet_type(ns=0,id=0)".to_string());
    let mut eth = Fields::new();
    eth.eth(
        "src",
        key.bytes(ofs::DL_SRC, 6),
        Some(mask.bytes(ofs::DL_SRC, 6)),
    );
    eth.eth(
        "dst",
        key.bytes(ofs::DL_DST, 6),
        Some(mask.bytes(ofs::DL_DST, 6)),
    );
    if !eth.is_empty() {
        attrs.push(format!("eth({})", eth.join()));
    }
    attrs.push(after_ethernet(key, mask, 0));
    attrs.retain(|a| !a.is_empty());
    attrs.join(",")
}

/// The attributes after `eth()`: VLAN tags as nested `encap()`s (from tag
/// `depth`: 0 the outer one, 1 the inner one), then L3 and L4.
fn after_ethernet(key: &FlowKey, mask: &FlowKey, depth: usize) -> String {
    let slots = [ofs::VLAN_TCI, ofs::VLAN2_TCI];
    let tagged = |d: usize| {
        slots
            .get(d)
            .is_some_and(|&at| key.be16_at(at) & VLAN_CFI != 0)
            && (d == 0 || key.be16_at(ofs::VLAN_TCI) & VLAN_CFI != 0)
    };
    if tagged(depth) {
        let at = slots[depth];
        let tpid = if depth == 0 && tagged(1) {
            ETH_TYPE_VLAN_8021AD
        } else {
            ETH_TYPE_VLAN
        };
        // OVS matches the TPID of a tag exactly, whatever the flow's mask.
        let mut attrs = vec![format!("eth_type({tpid:#06x})")];
        let tci_m = mask.be16_at(at);
        if tci_m != 0 {
            attrs.push(format!("vlan({})", vlan_tci(key.be16_at(at), tci_m)));
        }
        attrs.push(format!("encap({})", after_ethernet(key, mask, depth + 1)));
        return attrs.join(",");
    }
    let mut attrs = Vec::new();
    let dl_type = key.dl_type();
    let dl_type_m = mask.dl_type();
    if dl_type == DL_TYPE_NONE {
        // An 802.3 frame has no Ethertype attribute in its key; OVS appends
        // the mask alone.
        if dl_type_m != 0 {
            attrs.push(format!("eth_type(0/{dl_type_m:#06x})"));
        }
        return attrs.join(",");
    }
    if dl_type_m == u16::MAX {
        attrs.push(format!("eth_type({dl_type:#06x})"));
    } else if dl_type_m != 0 {
        attrs.push(format!("eth_type({dl_type:#06x}/{dl_type_m:#06x})"));
    }
    match dl_type {
        ETH_TYPE_IP => push_attr(&mut attrs, "ipv4", ipv4_fields(key, mask)),
        ETH_TYPE_IPV6 => push_attr(&mut attrs, "ipv6", ipv6_fields(key, mask)),
        ETH_TYPE_ARP | ETH_TYPE_RARP => push_attr(&mut attrs, "arp", arp_fields(key, mask)),
        _ => {}
    }
    let ip = matches!(dl_type, ETH_TYPE_IP | ETH_TYPE_IPV6);
    if ip && key.u8_at(ofs::NW_FRAG) & FRAG_LATER == 0 {
        l4_attrs(key, mask, &mut attrs);
    }
    attrs.join(",")
}

fn push_attr(attrs: &mut Vec<String>, name: &str, fields: Fields) {
    if !fields.is_empty() {
        attrs.push(format!("{name}({})", fields.join()));
    }
}

/// The datapath's fragment-type mask: all or nothing, on the "is a fragment" bit.
fn frag_mask(mask: &FlowKey) -> u8 {
    if mask.u8_at(ofs::NW_FRAG) & FRAG_ANY != 0 {
        u8::MAX
    } else {
        0
    }
}

fn ipv4_fields(k: &FlowKey, m: &FlowKey) -> Fields {
    let mut f = Fields::new();
    f.ipv4(
        "src",
        k.bytes(ofs::NW_SRC, 4),
        Some(m.bytes(ofs::NW_SRC, 4)),
    );
    f.ipv4(
        "dst",
        k.bytes(ofs::NW_DST, 4),
        Some(m.bytes(ofs::NW_DST, 4)),
    );
    f.u8u(
        "proto",
        k.u8_at(ofs::NW_PROTO),
        Some(m.u8_at(ofs::NW_PROTO)),
    );
    f.u8x("tos", k.u8_at(ofs::NW_TOS), Some(m.u8_at(ofs::NW_TOS)));
    f.u8u("ttl", k.u8_at(ofs::NW_TTL), Some(m.u8_at(ofs::NW_TTL)));
    f.frag(k.u8_at(ofs::NW_FRAG), Some(frag_mask(m)));
    f
}

fn ipv6_fields(k: &FlowKey, m: &FlowKey) -> Fields {
    let mut f = Fields::new();
    f.ipv6("src", &arr(k, ofs::IPV6_SRC), Some(&arr(m, ofs::IPV6_SRC)));
    f.ipv6("dst", &arr(k, ofs::IPV6_DST), Some(&arr(m, ofs::IPV6_DST)));
    f.label(k.be32_at(ofs::IPV6_LABEL), Some(m.be32_at(ofs::IPV6_LABEL)));
    f.u8u(
        "proto",
        k.u8_at(ofs::NW_PROTO),
        Some(m.u8_at(ofs::NW_PROTO)),
    );
    f.u8x("tclass", k.u8_at(ofs::NW_TOS), Some(m.u8_at(ofs::NW_TOS)));
    f.u8u("hlimit", k.u8_at(ofs::NW_TTL), Some(m.u8_at(ofs::NW_TTL)));
    f.frag(k.u8_at(ofs::NW_FRAG), Some(frag_mask(m)));
    f
}

/// OVS keeps the ARP opcode in its 8-bit `nw_proto` and widens it to the
/// datapath's 16 bits, an exact 8-bit mask becoming an exact 16-bit one.
fn arp_op_mask(m: u8) -> u16 {
    if m == u8::MAX {
        u16::MAX
    } else {
        u16::from(m)
    }
}

fn arp_fields(k: &FlowKey, m: &FlowKey) -> Fields {
    let mut f = Fields::new();
    f.ipv4(
        "sip",
        k.bytes(ofs::NW_SRC, 4),
        Some(m.bytes(ofs::NW_SRC, 4)),
    );
    f.ipv4(
        "tip",
        k.bytes(ofs::NW_DST, 4),
        Some(m.bytes(ofs::NW_DST, 4)),
    );
    f.be16(
        "op",
        u16::from(k.u8_at(ofs::NW_PROTO)),
        Some(arp_op_mask(m.u8_at(ofs::NW_PROTO))),
    );
    f.eth(
        "sha",
        k.bytes(ofs::ARP_SHA, 6),
        Some(m.bytes(ofs::ARP_SHA, 6)),
    );
    f.eth(
        "tha",
        k.bytes(ofs::ARP_THA, 6),
        Some(m.bytes(ofs::ARP_THA, 6)),
    );
    f
}

fn l4_attrs(k: &FlowKey, m: &FlowKey, attrs: &mut Vec<String>) {
    let proto = k.nw_proto();
    let ports = |name: &str| {
        let mut f = Fields::new();
        f.be16("src", k.be16_at(ofs::TP_SRC), Some(m.be16_at(ofs::TP_SRC)));
        f.be16("dst", k.be16_at(ofs::TP_DST), Some(m.be16_at(ofs::TP_DST)));
        (name.to_string(), f)
    };
    // ICMP type and code are the low bytes of the transport port slots.
    let icmp = |name: &str| {
        let mut f = Fields::new();
        f.u8u(
            "type",
            k.u8_at(ofs::TP_SRC + 1),
            Some(m.u8_at(ofs::TP_SRC + 1)),
        );
        f.u8u(
            "code",
            k.u8_at(ofs::TP_DST + 1),
            Some(m.u8_at(ofs::TP_DST + 1)),
        );
        (name.to_string(), f)
    };
    let dl_type = k.dl_type();
    let (name, fields) = match proto {
        IPPROTO_TCP => ports("tcp"),
        IPPROTO_UDP => ports("udp"),
        IPPROTO_SCTP => ports("sctp"),
        IPPROTO_ICMP if dl_type == ETH_TYPE_IP => icmp("icmp"),
        IPPROTO_ICMPV6 if dl_type == ETH_TYPE_IPV6 => icmp("icmpv6"),
        _ => return,
    };
    push_attr(attrs, &name, fields);
    if proto == IPPROTO_TCP {
        let (v, fm) = (
            k.be16_at(ofs::TCP_FLAGS),
            m.be16_at(ofs::TCP_FLAGS) & TCP_FLAGS_MASK,
        );
        if fm != 0 {
            attrs.push(format!(
                "tcp_flags({})",
                flags_masked(v, fm, TCP_FLAGS_MASK, &TCP_FLAG_NAMES)
            ));
        }
    }
    if name == "icmpv6" {
        // OVS exports the ND mask only when the ICMPv6 type and code are
        // matched exactly (otherwise the datapath could not tell ND apart).
        let is_nd = matches!(
            k.u8_at(ofs::TP_SRC + 1),
            ND_NEIGHBOR_SOLICIT | ND_NEIGHBOR_ADVERT
        ) && k.u8_at(ofs::TP_DST + 1) == 0;
        let exact = m.u8_at(ofs::TP_SRC + 1) == u8::MAX && m.u8_at(ofs::TP_DST + 1) == u8::MAX;
        if is_nd && exact {
            let mut f = Fields::new();
            f.ipv6(
                "target",
                &arr(k, ofs::ND_TARGET),
                Some(&arr(m, ofs::ND_TARGET)),
            );
            f.eth(
                "sll",
                k.bytes(ofs::ARP_SHA, 6),
                Some(m.bytes(ofs::ARP_SHA, 6)),
            );
            f.eth(
                "tll",
                k.bytes(ofs::ARP_THA, 6),
                Some(m.bytes(ofs::ARP_THA, 6)),
            );
            push_attr(attrs, "nd", f);
        }
    }
}

/// `tunnel(…)` of a flow that came out of a tunnel, when the mask looks at
/// its metadata. fvs tunnels always carry a key (VXLAN), which OVS shows as
/// the `key` tunnel flag next to `tun_id`.
fn tunnel_attr(k: &FlowKey, m: &FlowKey) -> Option<String> {
    let masked = [
        m.bytes(ofs::TUN_FLAGS, 4),
        m.bytes(ofs::TUN_ID, 16),
        m.bytes(ofs::TUN_IPV6_SRC, 32),
    ];
    // A key without tunnel metadata has no tunnel attribute to print.
    let from_tunnel = k.be16_at(ofs::TUN_FLAGS) & key::TUN_FLAG_PRESENT != 0
        || !is_zero(k.bytes(ofs::TUN_ID, 16))
        || !is_zero(k.bytes(ofs::TUN_IPV6_DST, 16));
    if !from_tunnel || masked.iter().all(|b| is_zero(b)) {
        return None;
    }
    let mut f = Fields::new();
    let tun_id_m = u64::from_be_bytes(arr(m, ofs::TUN_ID));
    f.be64(
        "tun_id",
        u64::from_be_bytes(arr(k, ofs::TUN_ID)),
        Some(tun_id_m),
    );
    // Addresses, TOS and TTL are key attributes only when set (TTL always).
    if !is_zero(k.bytes(ofs::TUN_SRC, 4)) {
        f.ipv4(
            "src",
            k.bytes(ofs::TUN_SRC, 4),
            Some(m.bytes(ofs::TUN_SRC, 4)),
        );
    }
    if !is_zero(k.bytes(ofs::TUN_DST, 4)) {
        f.ipv4(
            "dst",
            k.bytes(ofs::TUN_DST, 4),
            Some(m.bytes(ofs::TUN_DST, 4)),
        );
    }
    for (name, at) in [
        ("ipv6_src", ofs::TUN_IPV6_SRC),
        ("ipv6_dst", ofs::TUN_IPV6_DST),
    ] {
        if !is_zero(k.bytes(at, 16)) {
            f.ipv6(name, &arr(k, at), Some(&arr(m, at)));
        }
    }
    if k.u8_at(ofs::TUN_TOS) != 0 {
        f.u8x("tos", k.u8_at(ofs::TUN_TOS), Some(m.u8_at(ofs::TUN_TOS)));
    }
    f.u8u("ttl", k.u8_at(ofs::TUN_TTL), Some(m.u8_at(ofs::TUN_TTL)));
    let flags_m = m.be16_at(ofs::TUN_FLAGS) & TUN_FLAGS_PUBLIC;
    if flags_m != 0 {
        // OVS's `format_flags_masked()` of df, csum, key.
        let v = k.be16_at(ofs::TUN_FLAGS);
        let mut fl = String::new();
        for (bit, name) in [
            (tunnel::TUN_FLAG_DF, "df"),
            (tunnel::TUN_FLAG_CSUM, "csum"),
            (tunnel::TUN_FLAG_KEY, "key"),
        ] {
            if flags_m & bit != 0 {
                fl.push(if v & bit != 0 { '+' } else { '-' });
                fl.push_str(name);
            }
        }
        f.put(format!("flags({fl})"));
    } else if tun_id_m != 0 {
        f.put("flags(+key)".to_string());
    }
    Some(format!("tunnel({})", f.join()))
}

// ---- actions ----

/// How to print datapath actions beyond what they hold themselves.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ActionFormat {
    /// IP protocol of the flow's packets: names the header a port rewrite
    /// (`set(tcp(…))`, `set(udp(…))`, `set(sctp(…))`) sets; TCP if unknown.
    pub ip_proto: Option<u8>,
    /// The actions come from `ofproto/trace`, which translates without side
    /// effects: OVS marks its controller actions `dont_send=1`.
    pub trace: bool,
}

/// Datapath actions as `dpctl/dump-flows` prints them after `actions:`
/// (`drop` when there are none). Port rewrites print as `tcp`; use
/// [`format_actions_with`] to name UDP or SCTP.
pub fn format_actions(actions: &[DpAction]) -> String {
    format_actions_with(actions, &ActionFormat::default())
}

/// [`format_actions`] with what the actions alone do not say.
pub fn format_actions_with(actions: &[DpAction], how: &ActionFormat) -> String {
    if actions.is_empty() {
        return "drop".to_string();
    }
    actions
        .iter()
        .map(|a| format_action(a, how))
        .collect::<Vec<_>>()
        .join(",")
}

fn set(inner: &str, fields: Fields) -> String {
    format!("set({inner}({}))", fields.join())
}

fn format_action(a: &DpAction, how: &ActionFormat) -> String {
    match a {
        DpAction::Output(port) => port.to_string(),
        DpAction::Userspace(SlowPath::Controller {
            reason,
            max_len,
            controller_id,
            cookie,
            ..
        }) => format!(
            "userspace(pid=0,controller(reason={reason},dont_send={},continuation=0,\
             recirc_id=0,rule_cookie={},controller_id={controller_id},max_len={max_len}))",
            u8::from(how.trace),
            alt_hex(*cookie),
        ),
        DpAction::SetEth { value, mask } => set("eth", eth_set(value, mask)),
        DpAction::SetIpv4 { value, mask } => set("ipv4", ipv4_set(value, mask)),
        DpAction::SetIpv6 { value, mask } => set("ipv6", ipv6_set(value, mask)),
        DpAction::SetL4 { value, mask } => {
            let name = match how.ip_proto {
                Some(IPPROTO_UDP) => "udp",
                Some(IPPROTO_SCTP) => "sctp",
                _ => "tcp",
            };
            set(name, l4_set(value, mask))
        }
        DpAction::SetArp { value, mask } => set("arp", arp_set(value, mask)),
        DpAction::SetNd { value, mask } => set("nd", nd_set(value, mask)),
        DpAction::PushVlan { tpid, tci } => push_vlan(*tpid, *tci),
        DpAction::PopVlan => "pop_vlan".to_string(),
        // The datapath interface has no in-place tag rewrite: OVS pops the
        // tag and pushes the new one.
        DpAction::SetVlanTci(tci) => format!("pop_vlan,{}", push_vlan(ETH_TYPE_VLAN, *tci)),
        DpAction::SetTunnel(t) => format!("set(tunnel({}))", tunnel_set(t)),
        DpAction::TunnelPush(p) => tnl_push(p),
        DpAction::TunnelPop(port) => format!("tnl_pop({port})"),
        DpAction::Clone(inner) => format!("clone({})", format_actions_with(inner, how)),
    }
}

/// OVS's `format_odp_tnl_push_action()`: the tunnel port, the header
/// template field by field, the underlay port.
fn tnl_push(p: &TnlPush) -> String {
    let h = p.header.bytes();
    let be16 = |at: usize| {
        h.get(at..at + 2)
            .map_or(0, |b| u16::from_be_bytes([b[0], b[1]]))
    };
    let be32 = |at: usize| {
        h.get(at..at + 4)
            .map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    };
    let mut s = format!(
        "tnl_push(tnl_port({}),header(size={},type={},eth(dst={},src={},dl_type=0x{:04x}),",
        p.tnl_port,
        h.len(),
        tunnel::OVS_VPORT_TYPE_VXLAN,
        mac(h.get(0..6).unwrap_or_default()),
        mac(h.get(6..12).unwrap_or_default()),
        be16(12),
    );
    let l3 = tunnel::ETH_LEN;
    if p.header.is_ipv6() {
        let addr = |at: usize| -> [u8; 16] {
            let mut a = [0u8; 16];
            if let Some(b) = h.get(at..at + 16) {
                a.copy_from_slice(b);
            }
            a
        };
        let vtcfl = be32(l3);
        let _ = write!(
            s,
            "ipv6(src={},dst={},label={},proto={},tclass=0x{:x},hlimit={}),",
            format_ipv6(&addr(l3 + 8)),
            format_ipv6(&addr(l3 + 24)),
            vtcfl & IPV6_LABEL_MASK,
            h.get(l3 + 6).copied().unwrap_or(0),
            (vtcfl >> 20) & 0xff,
            h.get(l3 + 7).copied().unwrap_or(0),
        );
    } else {
        let _ = write!(
            s,
            "ipv4(src={},dst={},proto={},tos={},ttl={},frag=0x{:x}),",
            ipv4(h.get(l3 + 12..l3 + 16).unwrap_or_default()),
            ipv4(h.get(l3 + 16..l3 + 20).unwrap_or_default()),
            h.get(l3 + 9).copied().unwrap_or(0),
            alt_hex(h.get(l3 + 1).copied().unwrap_or(0)),
            h.get(l3 + 8).copied().unwrap_or(0),
            be16(l3 + 6),
        );
    }
    let l4 = p.header.l4_ofs();
    let _ = write!(
        s,
        "udp(src={},dst={},csum=0x{:x}),vxlan(flags=0x{:x},vni=0x{:x})),out_port({}))",
        be16(l4),
        be16(l4 + 2),
        be16(l4 + 6),
        be32(l4 + 8),
        be32(l4 + 12) >> 8,
        p.out_port,
    );
    s
}

fn push_vlan(tpid: u16, tci: u16) -> String {
    let mut s = "push_vlan(".to_string();
    if tpid != ETH_TYPE_VLAN {
        let _ = write!(s, "tpid={tpid:#06x},");
    }
    // The action's TCI has no "present" bit; the tag it pushes is present.
    s.push_str(&vlan_tci(tci | VLAN_CFI, u16::MAX));
    s.push(')');
    s
}

fn eth_set(v: &EthSet, m: &EthSet) -> Fields {
    let mut f = Fields::new();
    f.eth("src", &v.src, Some(&m.src));
    f.eth("dst", &v.dst, Some(&m.dst));
    f
}

fn ipv4_set(v: &Ipv4Set, m: &Ipv4Set) -> Fields {
    let mut f = Fields::new();
    f.ipv4("src", &v.src, Some(&m.src));
    f.ipv4("dst", &v.dst, Some(&m.dst));
    f.u8x("tos", v.tos, Some(m.tos));
    f.u8u("ttl", v.ttl, Some(m.ttl));
    f
}

fn ipv6_set(v: &Ipv6Set, m: &Ipv6Set) -> Fields {
    let mut f = Fields::new();
    f.ipv6("src", &v.src, Some(&m.src));
    f.ipv6("dst", &v.dst, Some(&m.dst));
    f.label(v.label, Some(m.label));
    f.u8x("tclass", v.tc, Some(m.tc));
    f.u8u("hlimit", v.hlimit, Some(m.hlimit));
    f
}

fn l4_set(v: &L4Set, m: &L4Set) -> Fields {
    let mut f = Fields::new();
    f.be16("src", v.src, Some(m.src));
    f.be16("dst", v.dst, Some(m.dst));
    f
}

fn arp_set(v: &ArpSet, m: &ArpSet) -> Fields {
    let mut f = Fields::new();
    f.ipv4("sip", &v.spa, Some(&m.spa));
    f.ipv4("tip", &v.tpa, Some(&m.tpa));
    // fvs keeps the opcode in 8 bits too (see `arp_op_mask`).
    let op_m = if m.op == 0x00ff { u16::MAX } else { m.op };
    f.be16("op", v.op, Some(op_m));
    f.eth("sha", &v.sha, Some(&m.sha));
    f.eth("tha", &v.tha, Some(&m.tha));
    f
}

fn nd_set(v: &NdSet, m: &NdSet) -> Fields {
    let mut f = Fields::new();
    f.ipv6("target", &v.target, Some(&m.target));
    f.eth("sll", &v.sll, Some(&m.sll));
    f.eth("tll", &v.tll, Some(&m.tll));
    f
}

/// A whole tunnel key as OVS prints an unmasked `set(tunnel(…))`: every
/// field the key holds, which is the addresses, TOS and ports when set, the
/// TTL always, and the `key` flag of a keyed (VXLAN) tunnel.
fn tunnel_set(t: &TunnelMeta) -> String {
    let mut f = Fields::new();
    f.be64("tun_id", t.tun_id, None);
    if t.ipv4_src != [0; 4] {
        f.ipv4("src", &t.ipv4_src, None);
    }
    if t.ipv4_dst != [0; 4] {
        f.ipv4("dst", &t.ipv4_dst, None);
    }
    if t.ipv6_src != [0; 16] {
        f.ipv6("ipv6_src", &t.ipv6_src, None);
    }
    if t.ipv6_dst != [0; 16] {
        f.ipv6("ipv6_dst", &t.ipv6_dst, None);
    }
    if t.tos != 0 {
        f.u8x("tos", t.tos, None);
    }
    f.u8u("ttl", t.ttl, None);
    if t.tp_src != 0 {
        f.be16("tp_src", t.tp_src, None);
    }
    if t.tp_dst != 0 {
        f.be16("tp_dst", t.tp_dst, None);
    }
    f.put("flags(key)".to_string());
    f.join()
}

// ---- statistics and whole lines ----

/// TCP flags seen as OVS's `packet_format_tcp_flags()` summarizes them:
/// `S` SYN, `F` FIN, `P` PSH, `R` RST, `U` URG, `.` ACK, `E` ECE, `C` CWR,
/// `N` NS, in that order (`none` for no flags).
pub fn format_tcp_flags_summary(flags: u16) -> String {
    if flags == 0 {
        return "none".to_string();
    }
    const LETTERS: [(u16, &str); 12] = [
        (0x002, "S"),
        (0x001, "F"),
        (0x008, "P"),
        (0x004, "R"),
        (0x020, "U"),
        (0x010, "."),
        (0x040, "E"),
        (0x080, "C"),
        (0x100, "N"),
        (0x200, "[200]"),
        (0x400, "[400]"),
        (0x800, "[800]"),
    ];
    LETTERS
        .iter()
        .filter(|(bit, _)| flags & bit != 0)
        .map(|(_, s)| *s)
        .collect()
}

/// How long ago a flow was last used, as OVS prints it: seconds with
/// millisecond precision (`0.347s`), or `never` (`used_ms` 0).
pub fn format_used(used_ms: u64, now_ms: u64) -> String {
    if used_ms == 0 {
        return "never".to_string();
    }
    let ago = i128::from(now_ms) - i128::from(used_ms);
    let sign = if ago < 0 { "-" } else { "" };
    let ago = ago.unsigned_abs();
    format!("{sign}{}.{:03}s", ago / 1000, ago % 1000)
}

/// One line of `dpctl/dump-flows`:
/// `<flow>, packets:N, bytes:N, used:0.347s|never[, flags:S.], actions:<actions>`.
/// `now_ms` is the datapath clock the counters' `used_ms` was taken from.
pub fn format_flow_dump_line(
    key: &FlowKey,
    mask: &FlowKey,
    actions: &[DpAction],
    counters: &FlowCounters,
    now_ms: u64,
) -> String {
    let mut s = format_megaflow(key, mask);
    let _ = write!(
        s,
        ", packets:{}, bytes:{}, used:{}",
        counters.packets,
        counters.bytes,
        format_used(counters.used_ms, now_ms)
    );
    if counters.tcp_flags != 0 {
        let _ = write!(
            s,
            ", flags:{}",
            format_tcp_flags_summary(counters.tcp_flags)
        );
    }
    let how = ActionFormat {
        ip_proto: Some(key.nw_proto()),
        trace: false,
    };
    let _ = write!(s, ", actions:{}", format_actions_with(actions, &how));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v6(s: &str) -> [u8; 16] {
        s.parse::<std::net::Ipv6Addr>().expect("address").octets()
    }

    #[test]
    fn ipv6_like_inet_ntop() {
        for (a, want) in [
            ("::", "::"),
            ("::1", "::1"),
            ("2001:db8::1", "2001:db8::1"),
            ("ffff:ffff::", "ffff:ffff::"),
            ("fe80::1:0:0:1", "fe80::1:0:0:1"),
            ("1:0:0:2:0:0:0:3", "1:0:0:2::3"),
            ("1:0:2:3:4:5:6:7", "1:0:2:3:4:5:6:7"),
            ("::ffff:1.2.3.4", "::ffff:1.2.3.4"),
            ("::1.2.3.4", "::1.2.3.4"),
            ("ff02::1:ff00:1", "ff02::1:ff00:1"),
        ] {
            assert_eq!(format_ipv6(&v6(a)), want, "{a}");
        }
    }

    #[test]
    fn c_alt_hex() {
        assert_eq!(alt_hex(0u8), "0");
        assert_eq!(alt_hex(0x10u8), "0x10");
    }

    #[test]
    fn used() {
        assert_eq!(format_used(0, 5), "never");
        assert_eq!(format_used(1000, 1347), "0.347s");
        assert_eq!(format_used(1000, 13_000), "12.000s");
        assert_eq!(format_used(1005, 1000), "-0.005s");
    }

    #[test]
    fn tcp_flag_letters() {
        assert_eq!(format_tcp_flags_summary(0x012), "S.");
        assert_eq!(format_tcp_flags_summary(0x01b), "SFP.");
        assert_eq!(format_tcp_flags_summary(0x004), "R");
        assert_eq!(format_tcp_flags_summary(0xfff), "SFPRU.ECN[200][400][800]");
    }

    #[test]
    fn no_panic_on_any_key() {
        let mut k = FlowKey::ONES;
        let m = FlowKey::ONES;
        let _ = format_megaflow(&k, &m);
        k.set_be16(ofs::DL_TYPE, key::ETH_TYPE_IPV6);
        let _ = format_megaflow(&k, &m);
        let _ = format_megaflow(&FlowKey::ZERO, &FlowKey::ZERO);
    }
}
