//! How each match field is named, read and printed in flow syntax (OVS's
//! meta-flow names and `mf_parse()`/`mf_format()`), and when its
//! prerequisites are met.

use fvs_datapath::key;

use super::port::{fmt_port, parse_port, PortNames};
use super::value::{
    fmt_ipv4_masked, fmt_ipv6_masked, fmt_mac, hex, parse_field_int, parse_ipv4_masked,
    parse_ipv6_masked, parse_mac_masked, NumErr,
};
use super::ParseError;
use crate::actions::SubField;
use crate::fields::{FieldFormat, FieldId, Maskable, Prereq, FIELDS};
use crate::flow::{Match, OfFlow};

/// OVS's name for a field, its other accepted names, and its OXM name when
/// that differs from the NXM name in [`crate::fields`].
fn names(id: FieldId) -> (&'static str, &'static [&'static str], Option<&'static str>) {
    use FieldId::*;
    match id {
        InPort => ("in_port", &[], None),
        EthSrc => ("eth_src", &["dl_src"], Some("OXM_OF_ETH_SRC")),
        EthDst => ("eth_dst", &["dl_dst"], Some("OXM_OF_ETH_DST")),
        EthType => ("eth_type", &["dl_type"], Some("OXM_OF_ETH_TYPE")),
        VlanTci => ("vlan_tci", &[], None),
        DlVlan => ("dl_vlan", &[], None),
        VlanVid => ("vlan_vid", &[], None),
        // fvs has one PCP field for OVS's dl_vlan_pcp and vlan_pcp.
        DlVlanPcp => ("vlan_pcp", &["dl_vlan_pcp"], None),
        Ipv4Src => ("ip_src", &["nw_src"], Some("OXM_OF_IPV4_SRC")),
        Ipv4Dst => ("ip_dst", &["nw_dst"], Some("OXM_OF_IPV4_DST")),
        IpProto => ("nw_proto", &["ip_proto"], Some("OXM_OF_IP_PROTO")),
        IpTos => ("nw_tos", &[], None),
        IpDscp => ("ip_dscp", &[], None),
        IpEcn => ("nw_ecn", &["ip_ecn"], Some("OXM_OF_IP_ECN")),
        IpTtl => ("nw_ttl", &[], None),
        IpFrag => ("ip_frag", &["nw_frag"], None),
        TcpSrc => ("tcp_src", &["tp_src"], Some("OXM_OF_TCP_SRC")),
        TcpDst => ("tcp_dst", &["tp_dst"], Some("OXM_OF_TCP_DST")),
        UdpSrc => ("udp_src", &[], Some("OXM_OF_UDP_SRC")),
        UdpDst => ("udp_dst", &[], Some("OXM_OF_UDP_DST")),
        SctpSrc => ("sctp_src", &[], None),
        SctpDst => ("sctp_dst", &[], None),
        TcpFlags => ("tcp_flags", &[], Some("OXM_OF_TCP_FLAGS")),
        IcmpType => ("icmp_type", &[], Some("OXM_OF_ICMPV4_TYPE")),
        IcmpCode => ("icmp_code", &[], Some("OXM_OF_ICMPV4_CODE")),
        Icmpv6Type => ("icmpv6_type", &[], Some("OXM_OF_ICMPV6_TYPE")),
        Icmpv6Code => ("icmpv6_code", &[], Some("OXM_OF_ICMPV6_CODE")),
        ArpOp => ("arp_op", &[], Some("OXM_OF_ARP_OP")),
        ArpSpa => ("arp_spa", &[], Some("OXM_OF_ARP_SPA")),
        ArpTpa => ("arp_tpa", &[], Some("OXM_OF_ARP_TPA")),
        ArpSha => ("arp_sha", &[], Some("OXM_OF_ARP_SHA")),
        ArpTha => ("arp_tha", &[], Some("OXM_OF_ARP_THA")),
        Ipv6Src => ("ipv6_src", &[], Some("OXM_OF_IPV6_SRC")),
        Ipv6Dst => ("ipv6_dst", &[], Some("OXM_OF_IPV6_DST")),
        Ipv6Label => ("ipv6_label", &[], Some("OXM_OF_IPV6_FLABEL")),
        NdTarget => ("nd_target", &[], Some("OXM_OF_IPV6_ND_TARGET")),
        NdSll => ("nd_sll", &[], Some("OXM_OF_IPV6_ND_SLL")),
        NdTll => ("nd_tll", &[], Some("OXM_OF_IPV6_ND_TLL")),
        TunId => ("tun_id", &["tunnel_id"], Some("OXM_OF_TUNNEL_ID")),
        // metadata, registers and the other tunnel fields: the registry's names.
        _ => (id.def().name, &[], None),
    }
}

/// OVS's (meta-flow) name of a field, as `set_field` prints it.
pub(crate) fn mf_name(id: FieldId) -> &'static str {
    names(id).0
}

/// A field by the name a match or `set_field` uses (case matters, as in OVS).
pub(crate) fn field_by_name(name: &str) -> Option<FieldId> {
    FIELDS.iter().map(|f| f.id).find(|&id| {
        let (n, aliases, _) = names(id);
        n == name || aliases.contains(&name)
    })
}

/// A field by any name a subfield (`load`, `move`) may use: the match names
/// plus the NXM and OXM names.
pub(crate) fn field_by_any_name(name: &str) -> Option<FieldId> {
    field_by_name(name).or_else(|| {
        FIELDS
            .iter()
            .map(|f| f.id)
            .find(|&id| id.def().nxm_name == name || names(id).2 == Some(name))
    })
}

/// Whether actions may write the field: writable both in the fvs registry
/// and in OVS (which keeps the tunnel TOS and TTL read-only).
pub(crate) fn writable(id: FieldId) -> bool {
    id.def().writable && !matches!(id, FieldId::TunTos | FieldId::TunTtl)
}

/// All-ones for the field's value bits, right-aligned.
pub(crate) fn full_mask(id: FieldId) -> u128 {
    id.def().value_mask()
}

fn width_mask(n_bits: u32) -> u128 {
    if n_bits >= 128 {
        u128::MAX
    } else {
        (1u128 << n_bits) - 1
    }
}

/// Whether `p` holds for the packet values in `f` (OVS's
/// `mf_are_prereqs_ok()`).
pub(crate) fn prereq_met(p: Prereq, f: &OfFlow) -> bool {
    let dl = f.dl_type();
    let proto = f.nw_proto();
    let (ip4, ip6) = (dl == key::ETH_TYPE_IP, dl == key::ETH_TYPE_IPV6);
    let nd = |want: &[u128]| {
        ip6 && proto == key::IPPROTO_ICMPV6
            && f.get(FieldId::Icmpv6Code) == 0
            && want.contains(&f.get(FieldId::Icmpv6Type))
    };
    match p {
        Prereq::None => true,
        Prereq::Vlan => f.get(FieldId::VlanTci) as u16 & key::VLAN_CFI != 0,
        Prereq::Arp => dl == key::ETH_TYPE_ARP || dl == key::ETH_TYPE_RARP,
        Prereq::Ipv4 => ip4,
        Prereq::Ipv6 => ip6,
        Prereq::IpAny => ip4 || ip6,
        Prereq::Tcp => (ip4 || ip6) && proto == key::IPPROTO_TCP,
        Prereq::Udp => (ip4 || ip6) && proto == key::IPPROTO_UDP,
        Prereq::Sctp => (ip4 || ip6) && proto == key::IPPROTO_SCTP,
        Prereq::Icmpv4 => ip4 && proto == key::IPPROTO_ICMP,
        Prereq::Icmpv6 => ip6 && proto == key::IPPROTO_ICMPV6,
        Prereq::Nd => nd(&[135, 136]),
        Prereq::NdSolicit => nd(&[135]),
        Prereq::NdAdvert => nd(&[136]),
    }
}

/// Drops what the match's own `dl_type`/`nw_proto` make meaningless, as
/// `ovs-ofctl` does when it encodes a flow (a field whose prerequisites are
/// missing is silently left out, e.g. `nw_src=1.2.3.4` without `ip`). Fields
/// sharing bytes keep them if any of them applies (`arp,nw_src=…` is
/// `arp_spa`; under `icmp`, `tp_src` keeps only its ICMP-type byte).
pub fn normalize_match(m: &Match) -> Match {
    use FieldId::*;
    let mut out = Match::catchall();
    for f in FIELDS {
        let (v, mut mask) = m.get(f.id);
        // OVS puts the ICMP type (code) whenever any bit of tp_src (tp_dst)
        // is matched, and a field that takes no mask is all or nothing.
        let slot_mask = match f.id {
            IcmpType | Icmpv6Type => m.mask.get(TcpSrc),
            IcmpCode | Icmpv6Code => m.mask.get(TcpDst),
            _ => mask,
        };
        if slot_mask == 0 || !prereq_met(f.prereq, &m.flow) {
            continue;
        }
        if f.maskable == Maskable::No && !matches!(f.id, DlVlan | VlanVid | DlVlanPcp) {
            mask = full_mask(f.id);
        }
        let (ov, om) = out.get(f.id);
        out.set_masked(f.id, ov | v, om | mask);
    }
    out
}

/// The TCP flag names OVS prints, bit 0 first.
pub(crate) const TCP_FLAGS: [&str; 12] = [
    "fin", "syn", "rst", "psh", "ack", "urg", "ece", "cwr", "ns", "[200]", "[400]", "[800]",
];

/// OVS's `format_flags_masked()` for `tcp_flags`.
pub(crate) fn fmt_tcp_flags(v: u128, m: u128) -> String {
    let full = full_mask(FieldId::TcpFlags);
    let bits = || TCP_FLAGS.iter().enumerate().map(|(i, n)| (1u128 << i, *n));
    if m & full == full {
        if v == 0 {
            return "0".to_string();
        }
        return bits()
            .filter(|(b, _)| v & b != 0)
            .map(|(_, n)| n)
            .collect::<Vec<_>>()
            .join("|");
    }
    if m == 0 {
        return "0/0".to_string();
    }
    bits()
        .filter(|(b, _)| m & b != 0)
        .map(|(b, n)| format!("{}{n}", if v & b != 0 { '+' } else { '-' }))
        .collect()
}

/// OVS's `parse_flags()` for `tcp_flags`: `V/M` numbers, `+syn-ack`, or
/// `syn|ack` (also numbers) meaning exactly those flags.
fn parse_tcp_flags(s: &str) -> Result<(u128, u128), String> {
    let full = full_mask(FieldId::TcpFlags);
    let unknown = || "unknown TCP flag(s)".to_string();
    let num = |t: &str| parse_field_int(t).ok().filter(|v| v & !full == 0);
    if let Some((v, m)) = s.split_once('/') {
        return match (num(v), num(m)) {
            (Some(v), Some(m)) => Ok((v & m, m)),
            _ => Err(unknown()),
        };
    }
    let flag = |t: &str| TCP_FLAGS.iter().position(|n| *n == t).map(|i| 1u128 << i);
    if s.starts_with(['+', '-']) {
        let (mut v, mut m) = (0, 0);
        let mut rest = s;
        while let Some(c) = rest.chars().next() {
            let body = &rest[1..];
            let end = body.find(['+', '-']).unwrap_or(body.len());
            let bit = flag(&body[..end]).ok_or_else(unknown)?;
            if m & bit != 0 {
                return Err(format!(
                    "each TCP flag can be specified only once ({})",
                    &body[..end]
                ));
            }
            m |= bit;
            if c == '+' {
                v |= bit;
            }
            rest = &body[end..];
        }
        return Ok((v, m));
    }
    let mut v = 0;
    for t in s.split('|') {
        v |= flag(t).or_else(|| num(t)).ok_or_else(unknown)?;
    }
    Ok((v, full))
}

const FRAGS: [(&str, u128, u128); 5] = [
    ("no", 0, 1),
    ("yes", 1, 1),
    ("first", 1, 3),
    ("later", 3, 3),
    ("not_later", 0, 2),
];

pub(crate) fn fmt_frag(v: u128, m: u128) -> &'static str {
    match m & 3 {
        3 => match v & 3 {
            0 => "no",
            1 => "first",
            3 => "later",
            _ => "<error>",
        },
        1 => ["no", "yes"][(v & 1) as usize],
        2 => ["not_later", "later"][((v >> 1) & 1) as usize],
        _ => "",
    }
}

/// Reads `s` as a value and mask of field `id`, right-aligned (OVS's
/// `mf_parse()`); `*` wildcards the field. `key` is the name the user wrote,
/// for the error message.
pub(crate) fn parse_value(
    id: FieldId,
    key: &str,
    s: &str,
    ports: Option<&dyn PortNames>,
) -> Result<(u128, u128), ParseError> {
    if s == "*" {
        return Ok((0, 0));
    }
    let f = id.def();
    let full = full_mask(id);
    let bad = |reason: String| ParseError::bad(key, s, reason);
    let (v, m) = match f.format {
        FieldFormat::OfpPort => {
            let p = parse_port(s, ports).ok_or_else(|| bad("invalid or unknown port".into()))?;
            (u128::from(p), full)
        }
        FieldFormat::Decimal | FieldFormat::Hex => {
            let width = f.len as u32 * 8;
            let int = |t: &str, what: &str| match parse_field_int(t) {
                Ok(v) if v <= width_mask(width) => Ok(v),
                Ok(_) | Err(NumErr::Range) => {
                    Err(bad(format!("{what} out of range for {}-bit field {}", f.n_bits.min(width), mf_name(id))))
                }
                Err(NumErr::Syntax) => Err(bad(format!("bad syntax for {} {what}", mf_name(id)))),
            };
            let (v, m) = match s.split_once('/') {
                Some((v, m)) => (int(v, "value")?, int(m, "mask")?),
                None => (int(s, "value")?, width_mask(width)),
            };
            // dl_vlan=0xffff is OpenFlow 1.0's "no VLAN header".
            if id == FieldId::DlVlan && v == 0xffff && m == width_mask(width) {
                return Ok((v, full));
            }
            if v & !full != 0 {
                let reason = if v > full {
                    format!("value out of range for {}-bit field {}", f.n_bits, mf_name(id))
                } else {
                    format!("not a valid value for field {}", mf_name(id))
                };
                return Err(bad(reason));
            }
            // A field that takes no mask takes one of all ones (OVS's mf_is_mask_valid()).
            if f.maskable == Maskable::No && m != 0 && m != width_mask(width) {
                return Err(bad(format!("invalid mask for field {}", mf_name(id))));
            }
            if m & !full != 0 && m != width_mask(width) {
                return Err(bad(format!("mask out of range for field {}", mf_name(id))));
            }
            (v, m & full)
        }
        FieldFormat::Ethernet => {
            let (v, m) = parse_mac_masked(s).ok_or_else(|| bad("invalid Ethernet address".into()))?;
            (mac_to_int(&v), mac_to_int(&m))
        }
        FieldFormat::Ipv4 => {
            let (v, m) = parse_ipv4_masked(s).map_err(|e| bad(e.into()))?;
            (u128::from(v), u128::from(m))
        }
        FieldFormat::Ipv6 => parse_ipv6_masked(s).map_err(|e| bad(e.into()))?,
        FieldFormat::Frag => FRAGS.iter().find(|(n, ..)| *n == s).map(|&(_, v, m)| (v, m)).ok_or_else(|| {
            bad(r#"unknown fragment type (valid types are "no", "yes", "first", "later", "not_later")"#.into())
        })?,
        FieldFormat::TcpFlags => parse_tcp_flags(s).map_err(|e| ParseError::bad(key, s, e))?,
    };
    if f.maskable == Maskable::No && m != 0 && m != full {
        return Err(bad(format!("invalid mask for field {}", mf_name(id))));
    }
    Ok((v & m, m))
}

pub(crate) fn mac_to_int(m: &[u8; 6]) -> u128 {
    m.iter().fold(0, |acc, &b| (acc << 8) | u128::from(b))
}

pub(crate) fn int_to_mac(v: u128) -> [u8; 6] {
    let b = v.to_be_bytes();
    let mut m = [0u8; 6];
    m.copy_from_slice(&b[10..]);
    m
}

/// A field value as `set_field` prints it (OVS's `mf_format()`).
pub(crate) fn fmt_value(id: FieldId, v: u128, m: u128, ports: Option<&dyn PortNames>) -> String {
    let f = id.def();
    let masked = m != full_mask(id);
    match f.format {
        FieldFormat::OfpPort if !masked => fmt_port(v as u16, ports),
        FieldFormat::Ethernet => {
            let mut s = fmt_mac(&int_to_mac(v));
            if masked {
                s.push('/');
                s.push_str(&fmt_mac(&int_to_mac(m)));
            }
            s
        }
        FieldFormat::Ipv4 => fmt_ipv4_masked(v as u32, if masked { m as u32 } else { u32::MAX }),
        FieldFormat::Ipv6 => fmt_ipv6_masked(v, if masked { m } else { u128::MAX }),
        FieldFormat::Decimal | FieldFormat::OfpPort => {
            if masked {
                format!("{v}/{}", hex(m))
            } else {
                v.to_string()
            }
        }
        FieldFormat::Hex | FieldFormat::Frag | FieldFormat::TcpFlags => {
            if masked {
                format!("{}/{}", hex(v), hex(m))
            } else {
                hex(v)
            }
        }
    }
}

/// `NAME`, `NAME[]`, `NAME[bit]` or `NAME[start..end]` (OVS's
/// `mf_parse_subfield()`); returns the subfield and what follows it.
pub(crate) fn parse_subfield(s: &str) -> Result<(SubField, &str), String> {
    let name_len = s
        .bytes()
        .position(|b| !(b.is_ascii_alphanumeric() || b == b'_'))
        .unwrap_or(s.len());
    let name = &s[..name_len];
    let field = field_by_any_name(name).ok_or_else(|| format!("unknown field `{name}'"))?;
    let n_bits = field.def().n_bits;
    let rest = &s[name_len..];
    let Some(inner) = rest.strip_prefix('[') else {
        return Ok((SubField::whole(field), rest));
    };
    let syntax = || format!("{s}: syntax error expecting [] or [<bit>] or [<start>..<end>]");
    let close = inner.find(']').ok_or_else(syntax)?;
    let (range, after) = (&inner[..close], &inner[close + 1..]);
    if range.is_empty() {
        return Ok((SubField::whole(field), after));
    }
    let num = |t: &str| {
        (!t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()))
            .then(|| t.parse::<u32>().ok())
            .flatten()
    };
    let (start, end) = match range.split_once("..") {
        Some((a, b)) => (num(a).ok_or_else(syntax)?, num(b).ok_or_else(syntax)?),
        None => {
            let b = num(range).ok_or_else(syntax)?;
            (b, b)
        }
    };
    let sub = &s[..s.len() - after.len()];
    if start > end {
        return Err(format!(
            "{sub}: starting bit {start} is after ending bit {end}"
        ));
    }
    if end >= n_bits {
        let which = if start >= n_bits {
            ("starting", start)
        } else {
            ("ending", end)
        };
        return Err(format!(
            "{sub}: {} bit {} is not valid because field is only {n_bits} bits wide",
            which.0, which.1
        ));
    }
    Ok((
        SubField {
            field,
            ofs: start,
            n_bits: end - start + 1,
        },
        after,
    ))
}

/// A subfield as OVS prints it, by its NXM (or OXM) name.
pub(crate) fn fmt_subfield(sf: &SubField) -> String {
    let name = sf.field.def().nxm_name;
    if sf.ofs == 0 && sf.n_bits == sf.field.def().n_bits {
        format!("{name}[]")
    } else if sf.n_bits == 1 {
        format!("{name}[{}]", sf.ofs)
    } else {
        format!(
            "{name}[{}..{}]",
            sf.ofs,
            sf.ofs + sf.n_bits.saturating_sub(1)
        )
    }
}
