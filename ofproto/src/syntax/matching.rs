//! Matches: setting fields from `key=value` items the way OVS's
//! `ofp_parse_field()` does, and printing them as OVS's `match_format()`.

use std::fmt::Write as _;

use fvs_datapath::key;

use super::field::{
    self, field_by_name, fmt_frag, fmt_tcp_flags, normalize_match, parse_subfield, parse_value,
};
use super::lex::key_values;
use super::port::{fmt_port, PortNames};
use super::value::{fmt_ipv4_masked, fmt_ipv6_masked, fmt_mac, hex, parse_field_int, parse_uint};
use super::ParseError;
use crate::fields::FieldId;
use crate::flow::Match;
use crate::flow_mod::DEFAULT_PRIORITY;

/// `dl_type` and `nw_proto` of OVS's protocol shorthands.
pub(crate) fn protocol(name: &str) -> Option<(u16, Option<u8>)> {
    Some(match name {
        "ip" | "ipv4" | "ip4" => (key::ETH_TYPE_IP, None),
        "icmp" => (key::ETH_TYPE_IP, Some(key::IPPROTO_ICMP)),
        "tcp" => (key::ETH_TYPE_IP, Some(key::IPPROTO_TCP)),
        "udp" => (key::ETH_TYPE_IP, Some(key::IPPROTO_UDP)),
        "sctp" => (key::ETH_TYPE_IP, Some(key::IPPROTO_SCTP)),
        "ipv6" | "ip6" => (key::ETH_TYPE_IPV6, None),
        "icmp6" => (key::ETH_TYPE_IPV6, Some(key::IPPROTO_ICMPV6)),
        "tcp6" => (key::ETH_TYPE_IPV6, Some(key::IPPROTO_TCP)),
        "udp6" => (key::ETH_TYPE_IPV6, Some(key::IPPROTO_UDP)),
        "sctp6" => (key::ETH_TYPE_IPV6, Some(key::IPPROTO_SCTP)),
        "arp" => (key::ETH_TYPE_ARP, None),
        "rarp" => (key::ETH_TYPE_RARP, None),
        "mpls" => (ETH_TYPE_MPLS, None),
        "mplsm" => (ETH_TYPE_MPLS_MCAST, None),
        _ => return None,
    })
}

const ETH_TYPE_MPLS: u16 = 0x8847;
const ETH_TYPE_MPLS_MCAST: u16 = 0x8848;

/// Applies one match item to `m` if it is one (a protocol shorthand, a
/// field or a `field[bits]` subfield); `Ok(false)` if `key` is not a match
/// item. Later items override earlier ones, as in OVS.
pub(crate) fn apply_item(
    m: &mut Match,
    key: &str,
    value: &str,
    ports: Option<&dyn PortNames>,
) -> Result<bool, ParseError> {
    if let Some((dl_type, proto)) = protocol(key) {
        m.set_exact(FieldId::EthType, u128::from(dl_type));
        if let Some(p) = proto {
            m.set_exact(FieldId::IpProto, u128::from(p));
        }
    } else if key == "eth" {
        // OVS's packet_type=Ethernet: the only kind fvs matches anyway.
    } else if let Some(id) = field_by_name(key) {
        // A bare field name matches on nothing, as OVS's "0/0".
        let value = if value.is_empty() { "0/0" } else { value };
        let (v, mask) = parse_value(id, key, value, ports)?;
        set_field(m, id, v, mask);
    } else if key.contains('[') {
        let (sf, rest) = parse_subfield(key).map_err(|e| ParseError::bad(key, value, e))?;
        if !rest.is_empty() {
            return Err(ParseError::bad(
                key,
                value,
                "unexpected input following field syntax",
            ));
        }
        let v = parse_field_int(value)
            .map_err(|_| ParseError::bad(key, value, "cannot parse integer value"))?;
        if sf.n_bits < 128 && v >> sf.n_bits != 0 {
            return Err(ParseError::bad(
                key,
                value,
                format!("value does not fit into {} bits", sf.n_bits),
            ));
        }
        let (old_v, old_m) = m.get(sf.field);
        let bits = sf.mask();
        m.set_masked(sf.field, (old_v & !bits) | (v << sf.ofs), old_m | bits);
    } else {
        return Ok(false);
    }
    Ok(true)
}

/// Sets a field as OVS's `mf_set()` does: a zero mask wildcards it, and the
/// OpenFlow 1.0 VLAN fields also set the "tag present" bit.
fn set_field(m: &mut Match, id: FieldId, v: u128, mask: u128) {
    const VID: u128 = 0x0fff;
    const PCP: u128 = 0xe000;
    const CFI: u128 = key::VLAN_CFI as u128;
    let (tci, tci_m) = m.get(FieldId::VlanTci);
    match id {
        FieldId::DlVlan | FieldId::VlanVid | FieldId::DlVlanPcp if mask == 0 => {
            // match_set_any_vid()/any_pcp(): keep the other half if matched.
            let (keep, other) = if id == FieldId::DlVlanPcp {
                (VID, PCP)
            } else {
                (PCP, VID | CFI)
            };
            if tci_m & keep != 0 {
                m.set_masked(FieldId::VlanTci, tci & !other, tci_m & !other);
            } else {
                m.clear(FieldId::VlanTci);
            }
        }
        FieldId::DlVlan if v == 0xffff => m.set_exact(FieldId::VlanTci, 0),
        FieldId::DlVlan => {
            m.set_masked(FieldId::VlanTci, (tci & !VID) | v | CFI, tci_m | VID | CFI)
        }
        FieldId::DlVlanPcp => m.set_masked(
            FieldId::VlanTci,
            (tci & !PCP) | (v << 13) | CFI,
            tci_m | PCP | CFI,
        ),
        _ if mask == 0 => m.clear(id),
        _ => m.set_masked(id, v, mask),
    }
}

/// Parses a match with an optional `priority=` (e.g. `priority=5,tcp,tp_dst=80`)
/// and normalizes it (fields whose prerequisites are missing are dropped, as
/// `ovs-ofctl` does).
pub fn parse_match(
    s: &str,
    ports: Option<&dyn PortNames>,
) -> Result<(Match, Option<u16>), ParseError> {
    let mut m = Match::catchall();
    let mut priority = None;
    for (k, v) in key_values(s) {
        if k == "priority" {
            if v.is_empty() {
                return Err(ParseError::MissingValue(k.into()));
            }
            let p = parse_uint(v, u64::from(u16::MAX))
                .ok_or_else(|| ParseError::bad(k, v, "invalid priority"))?;
            priority = Some(p as u16);
        } else if !apply_item(&mut m, k, v, ports)? {
            return Err(ParseError::UnknownField(k.into()));
        }
    }
    Ok((normalize_match(&m), priority))
}

/// Prints a match (and `priority` unless it is the default) as OVS's
/// `match_format()`, port numbers as numbers.
pub fn format_match(m: &Match, priority: u16) -> String {
    format_match_with(m, priority, None)
}

/// [`format_match`], printing ports by name where `ports` knows them.
pub fn format_match_with(m: &Match, priority: u16, ports: Option<&dyn PortNames>) -> String {
    use FieldId::*;
    let mut s = String::new();
    let (f, k) = (&m.flow, &m.mask);
    let get = |id| m.get(id);
    macro_rules! put {
        ($($arg:tt)*) => {{ let _ = write!(s, $($arg)*); s.push(','); }};
    }
    if priority != DEFAULT_PRIORITY {
        put!("priority={priority}");
    }

    let dl_type = f.dl_type();
    let (mut skip_type, mut skip_proto) = (false, false);
    if k.get(EthType) != 0 {
        skip_type = true;
        let proto = (k.get(IpProto) != 0).then(|| f.nw_proto());
        let name = match (dl_type, proto) {
            (key::ETH_TYPE_IP, Some(key::IPPROTO_ICMP)) => Some("icmp"),
            (key::ETH_TYPE_IP, Some(key::IPPROTO_TCP)) => Some("tcp"),
            (key::ETH_TYPE_IP, Some(key::IPPROTO_UDP)) => Some("udp"),
            (key::ETH_TYPE_IP, Some(key::IPPROTO_SCTP)) => Some("sctp"),
            (key::ETH_TYPE_IPV6, Some(key::IPPROTO_ICMPV6)) => Some("icmp6"),
            (key::ETH_TYPE_IPV6, Some(key::IPPROTO_TCP)) => Some("tcp6"),
            (key::ETH_TYPE_IPV6, Some(key::IPPROTO_UDP)) => Some("udp6"),
            (key::ETH_TYPE_IPV6, Some(key::IPPROTO_SCTP)) => Some("sctp6"),
            _ => None,
        };
        skip_proto = name.is_some();
        match (name, dl_type) {
            (Some(n), _) => put!("{n}"),
            (None, key::ETH_TYPE_IP) => put!("ip"),
            (None, key::ETH_TYPE_IPV6) => put!("ipv6"),
            (None, key::ETH_TYPE_ARP) => put!("arp"),
            (None, key::ETH_TYPE_RARP) => put!("rarp"),
            (None, ETH_TYPE_MPLS) => put!("mpls"),
            (None, ETH_TYPE_MPLS_MCAST) => put!("mplsm"),
            _ => skip_type = false,
        }
    }

    for i in 0..16 {
        if let Some(r) = FieldId::reg(i) {
            let (v, mk) = get(r);
            if mk != 0 {
                put!("reg{i}={}", masked_hex(v, mk, field::full_mask(r)));
            }
        }
    }
    for id in [
        TunId, TunSrc, TunDst, TunIpv6Src, TunIpv6Dst, TunTos, TunTtl, Metadata,
    ] {
        let (v, mk) = get(id);
        if mk != 0 {
            put!("{}={}", id.def().name, plain_value(id, v, mk));
        }
    }
    let (port, port_m) = get(InPort);
    if port_m != 0 {
        put!("in_port={}", fmt_port(port as u16, ports));
    }

    let (tci, tci_m) = (get(VlanTci).0 as u16, get(VlanTci).1 as u16);
    if tci_m != 0 {
        let (vid_m, pcp_m) = (tci_m & 0x0fff, tci_m & 0xe000);
        if tci_m & key::VLAN_CFI != 0
            && tci & key::VLAN_CFI != 0
            && (vid_m == 0 || vid_m == 0x0fff)
            && (pcp_m == 0 || pcp_m == 0xe000)
            && (vid_m | pcp_m) != 0
        {
            if vid_m != 0 {
                put!("dl_vlan={}", tci & 0x0fff);
            }
            if pcp_m != 0 {
                put!("dl_vlan_pcp={}", tci >> 13);
            }
        } else if tci_m == 0xffff {
            put!("vlan_tci=0x{tci:04x}");
        } else {
            put!("vlan_tci=0x{tci:04x}/0x{tci_m:04x}");
        }
    }

    for (id, name) in [(EthSrc, "dl_src"), (EthDst, "dl_dst")] {
        let (v, mk) = get(id);
        if mk != 0 {
            put!("{name}={}", plain_value(id, v, mk));
        }
    }
    if !skip_type && k.get(EthType) != 0 {
        put!("dl_type=0x{dl_type:04x}");
    }
    let is_arp = dl_type == key::ETH_TYPE_ARP || dl_type == key::ETH_TYPE_RARP;
    let l3: &[(FieldId, &str)] = if dl_type == key::ETH_TYPE_IPV6 {
        &[(Ipv6Src, "ipv6_src"), (Ipv6Dst, "ipv6_dst")]
    } else if is_arp {
        &[(ArpSpa, "arp_spa"), (ArpTpa, "arp_tpa")]
    } else {
        &[(Ipv4Src, "nw_src"), (Ipv4Dst, "nw_dst")]
    };
    for &(id, name) in l3 {
        let (v, mk) = get(id);
        if mk != 0 {
            put!("{name}={}", plain_value(id, v, mk));
        }
    }
    if dl_type == key::ETH_TYPE_IPV6 {
        let (v, mk) = get(Ipv6Label);
        if mk == field::full_mask(Ipv6Label) {
            put!("ipv6_label=0x{v:05x}");
        } else if mk != 0 {
            put!("ipv6_label=0x{v:05x}/0x{mk:05x}");
        }
    }
    if !skip_proto && k.get(IpProto) != 0 {
        put!(
            "{}={}",
            if is_arp { "arp_op" } else { "nw_proto" },
            f.nw_proto()
        );
    }
    if is_arp {
        for (id, name) in [(ArpSha, "arp_sha"), (ArpTha, "arp_tha")] {
            let (v, mk) = get(id);
            if mk != 0 {
                put!("{name}={}", plain_value(id, v, mk));
            }
        }
    }
    let (tos, tos_m) = get(IpTos);
    if tos_m != 0 {
        put!("nw_tos={tos}");
    }
    let (ecn, ecn_m) = get(IpEcn);
    if ecn_m != 0 {
        put!("nw_ecn={ecn}");
    }
    let (ttl, ttl_m) = get(IpTtl);
    if ttl_m != 0 {
        put!("nw_ttl={ttl}");
    }
    let (frag, frag_m) = get(IpFrag);
    if frag_m & 3 != 0 {
        put!("nw_frag={}", fmt_frag(frag, frag_m));
    }

    let proto = f.nw_proto();
    let l4: &[(FieldId, &str)] = if dl_type == key::ETH_TYPE_IP && proto == key::IPPROTO_ICMP {
        &[(IcmpType, "icmp_type"), (IcmpCode, "icmp_code")]
    } else if dl_type == key::ETH_TYPE_IPV6 && proto == key::IPPROTO_ICMPV6 {
        &[
            (Icmpv6Type, "icmp_type"),
            (Icmpv6Code, "icmp_code"),
            (NdTarget, "nd_target"),
            (NdSll, "nd_sll"),
            (NdTll, "nd_tll"),
        ]
    } else {
        &[(TcpSrc, "tp_src"), (TcpDst, "tp_dst")]
    };
    for &(id, name) in l4 {
        let (v, mk) = get(id);
        if mk != 0 {
            put!("{name}={}", plain_value(id, v, mk));
        }
    }
    let (flags, flags_m) = get(TcpFlags);
    if f.is_ip_any() && proto == key::IPPROTO_TCP && flags_m != 0 {
        put!("tcp_flags={}", fmt_tcp_flags(flags, flags_m));
    }
    s.pop();
    s
}

/// OVS's `format_uint32_masked()`/`format_be64_masked()`: `%#x[/%#x]`.
fn masked_hex(v: u128, m: u128, full: u128) -> String {
    if m == full {
        hex(v)
    } else {
        format!("{}/{}", hex(v), hex(m))
    }
}

/// A field's value as `match_format()` prints it.
fn plain_value(id: FieldId, v: u128, m: u128) -> String {
    use crate::fields::FieldFormat;
    let full = field::full_mask(id);
    match id.def().format {
        FieldFormat::Ethernet => {
            let mut s = fmt_mac(&field::int_to_mac(v));
            if m != full {
                s.push('/');
                s.push_str(&fmt_mac(&field::int_to_mac(m)));
            }
            s
        }
        FieldFormat::Ipv4 => fmt_ipv4_masked(v as u32, m as u32),
        FieldFormat::Ipv6 => fmt_ipv6_masked(v, m),
        FieldFormat::Hex => masked_hex(v, m, full),
        // Decimal fields: OVS's format_be16_masked() and friends.
        _ if m == full => v.to_string(),
        _ => format!("0x{v:x}/0x{m:x}"),
    }
}
