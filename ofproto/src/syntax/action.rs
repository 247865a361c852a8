//! Actions and instructions: OVS's `ofpacts_parse_instructions()` and
//! `ofpacts_format()` for the actions fvs implements, plus the checks of
//! `ofpacts_verify()` (instruction order) and `ofpacts_check()` (fit with
//! the match).

use super::field::{
    self, fmt_subfield, fmt_value, mf_name, parse_subfield, parse_value, prereq_met, writable,
};
use super::lex::key_values;
use super::port::{fmt_port, parse_port, valid_output_port, PortNames};
use super::value::{
    fmt_ipv4, fmt_mac, hex, parse_c_u64, parse_decimal, parse_field_int, parse_ipv4, parse_mac,
    parse_uint,
};
use super::ParseError;
use crate::actions::{port, OfAction, PacketInReason, PopVlanSyntax, SetFieldSyntax, SubField};
use crate::fields::FieldId;
use crate::flow::Match;
use fvs_datapath::key;

/// OVS actions fvs does not implement (so they get a clearer error than
/// "unknown action").
const UNSUPPORTED: &[&str] = &[
    "enqueue",
    "set_queue",
    "pop_queue",
    "set_vlan_vid",
    "set_vlan_pcp",
    "mod_dl_vlan",
    "bundle",
    "bundle_load",
    "learn",
    "conjunction",
    "multipath",
    "autopath",
    "fin_timeout",
    "exit",
    "clone",
    "ct",
    "ct_clear",
    "nat",
    "sample",
    "meter",
    "push_mpls",
    "pop_mpls",
    "set_mpls_label",
    "set_mpls_tc",
    "set_mpls_ttl",
    "dec_mpls_ttl",
    "stack_push",
    "stack_pop",
    "output_reg",
    "encap",
    "decap",
    "check_pkt_larger",
    "delete_field",
    "dec_nsh_ttl",
    "set_mpls",
    "debug_recirc",
    "debug_slow",
    "controller_meter",
    "unroll_xlate",
    "resubmit_ct",
    "truncate",
    "write_metadata64",
];

/// Parses an action list (what follows `actions=`). Checks what needs no
/// match: syntax, values, `drop` alone and instruction order; see
/// [`check_actions`] for the rest.
pub fn parse_actions(s: &str, ports: Option<&dyn PortNames>) -> Result<Vec<OfAction>, ParseError> {
    let mut out = Vec::new();
    let mut drop = false;
    for (k, v) in key_values(s) {
        let name = k.to_ascii_lowercase();
        match name.as_str() {
            "drop" => drop = true,
            "apply_actions" => {
                return Err(ParseError::InvalidActions(
                    "apply_actions is the default instruction".into(),
                ))
            }
            _ => parse_one(&name, k, v, ports, &mut out)?,
        }
    }
    if drop && !out.is_empty() {
        return Err(ParseError::InvalidActions(
            "\"drop\" must not be accompanied by any other action or instruction".into(),
        ));
    }
    verify_order(&out)?;
    Ok(out)
}

fn parse_one(
    name: &str,
    key: &str,
    arg: &str,
    ports: Option<&dyn PortNames>,
    out: &mut Vec<OfAction>,
) -> Result<(), ParseError> {
    let bad = |reason: &str| ParseError::bad(name, arg, reason);
    let uint =
        |max: u64, what: &str| parse_uint(arg, max).ok_or_else(|| bad(&format!("invalid {what}")));
    let action = match name {
        "output" => {
            if arg.contains('[') || (arg.contains("port") && arg.contains("max_len")) {
                return Err(ParseError::Unsupported(format!("{key}:{arg}")));
            }
            output(parse_port(arg, ports).ok_or_else(|| bad("output to unknown port"))?)
        }
        "controller" => parse_controller(arg)?,
        "mod_vlan_vid" => {
            let vid = uint(0xffff, "VLAN VID")? as u16;
            if vid > 0x0fff {
                return Err(bad("not a valid VLAN VID"));
            }
            OfAction::SetVlanVid { vid }
        }
        "mod_vlan_pcp" => {
            let pcp = uint(0xff, "VLAN PCP")? as u8;
            if pcp > 7 {
                return Err(bad("not a valid VLAN PCP"));
            }
            OfAction::SetVlanPcp { pcp }
        }
        "strip_vlan" => OfAction::PopVlan {
            syntax: PopVlanSyntax::StripVlan,
        },
        "pop_vlan" => OfAction::PopVlan {
            syntax: PopVlanSyntax::PopVlan,
        },
        "push_vlan" => {
            let ethertype = uint(0xffff, "ethertype")? as u16;
            if ethertype != key::ETH_TYPE_VLAN && ethertype != key::ETH_TYPE_VLAN_8021AD {
                return Err(bad("not a valid VLAN ethertype"));
            }
            OfAction::PushVlan { ethertype }
        }
        "mod_dl_src" | "mod_dl_dst" => {
            let mac = parse_mac(arg).ok_or_else(|| bad("invalid mac address"))?;
            if name == "mod_dl_src" {
                OfAction::SetEthSrc(mac)
            } else {
                OfAction::SetEthDst(mac)
            }
        }
        "mod_nw_src" | "mod_nw_dst" => {
            let ip = parse_ipv4(arg).ok_or_else(|| bad("could not convert to IP address"))?;
            if name == "mod_nw_src" {
                OfAction::SetIpv4Src(ip)
            } else {
                OfAction::SetIpv4Dst(ip)
            }
        }
        "mod_nw_tos" => {
            let tos = uint(0xff, "TOS")? as u8;
            if tos & 0x03 != 0 {
                return Err(bad("not a valid TOS"));
            }
            OfAction::SetIpDscp(tos)
        }
        "mod_nw_ecn" => {
            let ecn = uint(0xff, "ECN")? as u8;
            if ecn > 3 {
                return Err(bad("not a valid ECN"));
            }
            OfAction::SetIpEcn(ecn)
        }
        "mod_nw_ttl" | "set_nw_ttl" => OfAction::SetIpTtl(uint(0xff, "TTL")? as u8),
        "mod_tp_src" => OfAction::SetL4SrcPort(uint(0xffff, "source port")? as u16),
        "mod_tp_dst" => OfAction::SetL4DstPort(uint(0xffff, "destination port")? as u16),
        "set_field" => parse_set_field(arg, ports)?,
        "load" => parse_load(arg)?,
        "move" => parse_move(arg)?,
        "dec_ttl" => {
            let mut ids = Vec::new();
            for id in arg.split([',', ' ']).filter(|t| !t.is_empty()) {
                let n = parse_decimal(id)
                    .filter(|&n| n <= 0xffff)
                    .ok_or_else(|| bad("invalid controller id"))?;
                ids.push(n as u16);
            }
            if ids.is_empty() {
                ids.push(0);
            }
            OfAction::DecTtl {
                controller_ids: ids,
            }
        }
        "set_tunnel" | "set_tunnel64" => {
            let tun_id = u64_arg(name, arg)?;
            OfAction::SetTunnel {
                tun_id,
                wide: name == "set_tunnel64" || tun_id > u64::from(u32::MAX),
            }
        }
        "resubmit" => parse_resubmit(arg, ports)?,
        "note" => {
            OfAction::Note(parse_note(arg).ok_or_else(|| bad("bad hex digit in `note' argument"))?)
        }
        "group" => OfAction::Group(
            parse_uint(arg, u64::from(u32::MAX)).ok_or_else(|| bad("invalid group id"))? as u32,
        ),
        "clear_actions" => OfAction::ClearActions,
        "write_actions" => {
            let inner = parse_actions(arg, ports)?;
            if inner.iter().any(|a| instruction(a).0 != 1) {
                return Err(ParseError::InvalidActions(
                    "write_actions takes only actions, not instructions".into(),
                ));
            }
            OfAction::WriteActions(inner)
        }
        "goto_table" => OfAction::GotoTable(parse_table(arg).ok_or_else(|| bad("unknown table"))?),
        "write_metadata" => {
            let (v, m) = match arg.split_once('/') {
                Some((v, m)) => (v, Some(m)),
                None => (arg, None),
            };
            let value = u64_arg(name, v)?;
            let mask = m.map(|m| u64_arg(name, m)).transpose()?.unwrap_or(u64::MAX);
            OfAction::WriteMetadata { value, mask }
        }
        _ if UNSUPPORTED.contains(&name) => return Err(ParseError::Unsupported(key.to_string())),
        _ => match parse_port(key, ports) {
            // A bare port number or name is an output (its value, if any, is ignored as in OVS).
            Some(p) => output(p),
            None => return Err(ParseError::UnknownAction(key.to_string())),
        },
    };
    out.push(action);
    Ok(())
}

/// `output` to the controller is the `controller` action with defaults.
fn output(p: u16) -> OfAction {
    if p == port::CONTROLLER {
        OfAction::Controller {
            max_len: u16::MAX,
            reason: PacketInReason::Action,
            controller_id: 0,
        }
    } else {
        OfAction::Output {
            port: p,
            max_len: 0,
        }
    }
}

/// OVS's `str_to_u64()`: any C number, including negative ones.
fn u64_arg(name: &str, s: &str) -> Result<u64, ParseError> {
    if s.is_empty() {
        return Err(ParseError::bad(
            name,
            s,
            "missing required numeric argument",
        ));
    }
    parse_c_u64(s).map_err(|_| ParseError::bad(name, s, "invalid numeric format"))
}

/// A table number 0..=255 (decimal, as OVS's `ofputil_table_from_string()`).
pub(crate) fn parse_table(s: &str) -> Option<u8> {
    parse_decimal(s).and_then(|t| u8::try_from(t).ok())
}

fn parse_controller(arg: &str) -> Result<OfAction, ParseError> {
    let mut a = (u16::MAX, PacketInReason::Action, 0u16);
    let bad = |what: &str, v: &str| ParseError::bad("controller", v, format!("invalid {what}"));
    if !arg.is_empty() && arg.bytes().all(|b| b.is_ascii_digit()) {
        a.0 = parse_uint(arg, 0xffff).ok_or_else(|| bad("max_len", arg))? as u16;
    } else {
        for (k, v) in key_values(arg) {
            match k {
                "reason" => {
                    a.1 = match v {
                        "no_match" => PacketInReason::NoMatch,
                        "action" => PacketInReason::Action,
                        "invalid_ttl" => PacketInReason::InvalidTtl,
                        "action_set" | "group" | "packet_out" => {
                            return Err(ParseError::Unsupported(format!("controller(reason={v})")))
                        }
                        _ => return Err(ParseError::bad("controller", v, "unknown reason")),
                    }
                }
                "max_len" => a.0 = parse_uint(v, 0xffff).ok_or_else(|| bad("max_len", v))? as u16,
                "id" => a.2 = parse_uint(v, 0xffff).ok_or_else(|| bad("id", v))? as u16,
                "userdata" | "pause" | "meter_id" => {
                    return Err(ParseError::Unsupported(format!("controller({k})")))
                }
                _ => {
                    return Err(ParseError::bad(
                        "controller",
                        k,
                        "unknown key parsing controller action",
                    ))
                }
            }
        }
    }
    Ok(OfAction::Controller {
        max_len: a.0,
        reason: a.1,
        controller_id: a.2,
    })
}

fn parse_resubmit(arg: &str, ports: Option<&dyn PortNames>) -> Result<OfAction, ParseError> {
    let mut parts = arg.split(',');
    let (p, t, ct) = (
        parts.next().unwrap_or(""),
        parts.next().unwrap_or(""),
        parts.next().unwrap_or(""),
    );
    let port = match p {
        "" => None,
        p => match parse_port(p, ports) {
            Some(port::IN_PORT) => None,
            Some(n) => Some(n),
            None => return Err(ParseError::bad("resubmit", p, "resubmit to unknown port")),
        },
    };
    let table = match t {
        "" => None,
        t => match parse_table(t) {
            Some(255) => None,
            Some(n) => Some(n),
            None => return Err(ParseError::bad("resubmit", t, "resubmit to unknown table")),
        },
    };
    if ct == "ct" {
        return Err(ParseError::Unsupported("resubmit(...,ct)".into()));
    } else if !ct.is_empty() || parts.next().is_some() {
        return Err(ParseError::bad("resubmit", arg, "unknown parameter"));
    }
    if port.is_none() && table.is_none() {
        return Err(ParseError::bad(
            "resubmit",
            arg,
            "at least one \"in_port\" or \"table\" must be specified on resubmit",
        ));
    }
    Ok(OfAction::Resubmit { port, table })
}

/// Hex bytes with optional `.` between them, padded as OVS pads the note.
fn parse_note(arg: &str) -> Option<Vec<u8>> {
    let mut bytes = Vec::new();
    let mut rest = arg;
    while !rest.is_empty() {
        rest = rest.strip_prefix('.').unwrap_or(rest);
        if rest.is_empty() {
            break;
        }
        let pair = rest.get(..2)?;
        if !pair.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        bytes.push(u8::from_str_radix(pair, 16).ok()?);
        rest = &rest[2..];
    }
    Some(pad_note(bytes))
}

/// OVS's NXAST_NOTE is a 10-byte header plus the note, padded to a multiple
/// of 8 bytes, so a note always holds at least 6 bytes.
pub(crate) fn pad_note(mut bytes: Vec<u8>) -> Vec<u8> {
    let len = (10 + bytes.len()).div_ceil(8) * 8 - 10;
    bytes.resize(len.max(6), 0);
    bytes
}

fn parse_set_field(arg: &str, ports: Option<&dyn PortNames>) -> Result<OfAction, ParseError> {
    let bad = |r: String| ParseError::bad("set_field", arg, r);
    let (value, name) = arg
        .split_once("->")
        .ok_or_else(|| bad("missing `->'".into()))?;
    if name.is_empty() {
        return Err(bad("missing field name following `->'".into()));
    }
    let field = field::field_by_name(name)
        .ok_or_else(|| bad(format!("{name} is not a valid OXM field name")))?;
    if !writable(field) {
        return Err(bad(format!("{name} is read-only")));
    }
    let (v, m) = parse_value(field, name, value, ports)?;
    if m == 0 {
        return Err(bad("a zero mask sets nothing".into()));
    }
    if field == FieldId::DlVlan && v == 0xffff {
        return Err(bad(format!(
            "{value} is not a valid value for field {name}"
        )));
    }
    Ok(OfAction::SetField {
        field,
        value: v,
        mask: m,
        syntax: SetFieldSyntax::SetField,
    })
}

fn parse_load(arg: &str) -> Result<OfAction, ParseError> {
    let bad = |r: String| ParseError::bad("load", arg, r);
    let arrow = arg.find("->").ok_or_else(|| bad("missing `->'".into()))?;
    let v = parse_field_int(&arg[..arrow]).map_err(|_| bad("cannot parse integer value".into()))?;
    let (dst, rest) = parse_subfield(&arg[arrow + 2..]).map_err(bad)?;
    if !rest.is_empty() {
        return Err(bad("unexpected input following field syntax".into()));
    }
    if dst.n_bits < 128 && v >> dst.n_bits != 0 {
        return Err(bad(format!(
            "value {} does not fit into {} bits",
            hex(v),
            dst.n_bits
        )));
    }
    if !writable(dst.field) {
        return Err(bad(format!(
            "destination field {} is not writable",
            mf_name(dst.field)
        )));
    }
    let (value, mask) = (v << dst.ofs, dst.mask());
    if value & !field::full_mask(dst.field) != 0 {
        return Err(bad(format!(
            "{} is not a valid value for field {}",
            hex(v),
            mf_name(dst.field)
        )));
    }
    Ok(OfAction::SetField {
        field: dst.field,
        value,
        mask,
        syntax: SetFieldSyntax::Load,
    })
}

fn parse_move(arg: &str) -> Result<OfAction, ParseError> {
    let bad = |r: String| ParseError::bad("move", arg, r);
    let (src, rest) = parse_subfield(arg).map_err(bad)?;
    let rest = rest
        .strip_prefix("->")
        .ok_or_else(|| bad("missing `->' following source".into()))?;
    let (dst, rest) = parse_subfield(rest).map_err(bad)?;
    if !rest.is_empty() {
        return Err(bad("trailing garbage following destination".into()));
    }
    if src.n_bits != dst.n_bits {
        return Err(bad(format!(
            "source field is {} bits wide but destination is {} bits wide",
            src.n_bits, dst.n_bits
        )));
    }
    if !writable(dst.field) {
        return Err(bad(format!(
            "destination field {} is not writable",
            mf_name(dst.field)
        )));
    }
    Ok(OfAction::Move { src, dst })
}

/// OVS's instruction classes, in the order OpenFlow 1.1+ requires.
fn instruction(a: &OfAction) -> (u8, &'static str) {
    match a {
        OfAction::ClearActions => (2, "clear_actions"),
        OfAction::WriteActions(_) => (3, "write_actions"),
        OfAction::WriteMetadata { .. } => (4, "write_metadata"),
        OfAction::GotoTable(_) => (5, "goto_table"),
        _ => (1, "apply_actions"),
    }
}

/// OVS's `ofpacts_verify()`: apply-actions, then at most one
/// `write_metadata`, then at most one `goto_table`.
fn verify_order(actions: &[OfAction]) -> Result<(), ParseError> {
    let mut prev: Option<(u8, &str)> = None;
    for a in actions {
        let next = instruction(a);
        if let Some(inst) = prev {
            if next.0 == inst.0 && next.0 != 1 {
                return Err(ParseError::InvalidActions(format!(
                    "duplicate {} instruction not allowed, for OpenFlow 1.1+ compatibility",
                    inst.1
                )));
            }
            if next.0 < inst.0 {
                return Err(ParseError::InvalidActions(format!(
                    "invalid instruction ordering: {} must appear before {}, for OpenFlow 1.1+ compatibility",
                    next.1, inst.1
                )));
            }
        }
        prev = Some(next);
    }
    Ok(())
}

/// OVS's `ofpacts_check()`: whether `actions` fit a rule with match `m` in
/// table `table_id`. Walks a copy of the match's flow through the actions so
/// that, e.g., a `push_vlan` satisfies a later `set_field:…->vlan_vid`.
///
/// Like `ovs-ofctl` with OpenFlow 1.0, the OpenFlow 1.0 actions (`mod_nw_src`,
/// `mod_tp_dst`, `strip_vlan`, `dec_ttl`…) are accepted without their
/// prerequisites (they do nothing to packets they do not apply to);
/// `set_field`, `load`, `move`, `mod_nw_ttl` and `mod_nw_ecn` need them.
pub fn check_actions(
    actions: &[OfAction],
    m: &Match,
    table_id: Option<u8>,
) -> Result<(), ParseError> {
    let mut flow = field::normalize_match(m).flow;
    let inconsistent = |a: &OfAction, reason: String| ParseError::Inconsistent {
        action: format_actions(std::slice::from_ref(a)),
        reason,
    };
    for a in actions {
        match a {
            OfAction::Output { port, .. } if !valid_output_port(*port) => {
                return Err(inconsistent(
                    a,
                    "invalid output port (OFPBAC_BAD_OUT_PORT)".into(),
                ));
            }
            OfAction::SetIpEcn(_) | OfAction::SetIpTtl(_) if !flow.is_ip_any() => {
                return Err(inconsistent(
                    a,
                    "requires an IPv4 or IPv6 match (OFPBAC_MATCH_INCONSISTENT)".into(),
                ));
            }
            OfAction::SetVlanVid { .. }
            | OfAction::SetVlanPcp { .. }
            | OfAction::PushVlan { .. } => {
                let tci = flow.get(FieldId::VlanTci);
                let tci = if matches!(a, OfAction::PushVlan { .. }) {
                    0
                } else {
                    tci
                };
                flow.set(FieldId::VlanTci, tci | u128::from(key::VLAN_CFI));
            }
            OfAction::PopVlan { .. } => flow.set(FieldId::VlanTci, 0),
            OfAction::SetField {
                field, value, mask, ..
            } => {
                let vlan_missing =
                    *field == FieldId::VlanVid && !prereq_met(crate::fields::Prereq::Vlan, &flow);
                if !prereq_met(field.def().prereq, &flow) || vlan_missing {
                    return Err(inconsistent(
                        a,
                        format!(
                            "{} lacks correct prerequisites (OFPBAC_MATCH_INCONSISTENT)",
                            mf_name(*field)
                        ),
                    ));
                }
                flow.set_masked(*field, *value, *mask);
            }
            OfAction::Move { src, dst } => {
                for (which, sf) in [("source", src), ("destination", dst)] {
                    if !prereq_met(sf.field.def().prereq, &flow) {
                        return Err(inconsistent(
                            a,
                            format!(
                                "{which} field {} lacks correct prerequisites (OFPBAC_MATCH_INCONSISTENT)",
                                mf_name(sf.field)
                            ),
                        ));
                    }
                }
            }
            OfAction::GotoTable(t) => {
                if let Some(cur) = table_id.filter(|&cur| *t <= cur) {
                    return Err(inconsistent(
                        a,
                        format!("goto_table must name a table after this rule's table {cur} (OFPBIC_BAD_TABLE_ID)"),
                    ));
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// Prints actions as OVS's `ofpacts_format()` (`drop` when empty), port
/// numbers as numbers.
pub fn format_actions(actions: &[OfAction]) -> String {
    format_actions_with(actions, None)
}

/// [`format_actions`], printing ports by name where `ports` knows them.
pub fn format_actions_with(actions: &[OfAction], ports: Option<&dyn PortNames>) -> String {
    if actions.is_empty() {
        return "drop".to_string();
    }
    actions
        .iter()
        .map(|a| format_action(a, ports))
        .collect::<Vec<_>>()
        .join(",")
}

fn format_action(a: &OfAction, ports: Option<&dyn PortNames>) -> String {
    match a {
        OfAction::Output { port: p, max_len } => {
            if *p < port::MAX {
                format!("output:{}", fmt_port(*p, ports))
            } else if *p == port::CONTROLLER {
                format!("CONTROLLER:{max_len}")
            } else {
                fmt_port(*p, ports)
            }
        }
        OfAction::Controller {
            max_len,
            reason,
            controller_id,
        } => {
            if *reason == PacketInReason::Action && *controller_id == 0 {
                return format!("CONTROLLER:{max_len}");
            }
            let mut parts = Vec::new();
            match reason {
                PacketInReason::Action => {}
                PacketInReason::NoMatch => parts.push("reason=no_match".to_string()),
                PacketInReason::InvalidTtl => parts.push("reason=invalid_ttl".to_string()),
            }
            if *max_len != u16::MAX {
                parts.push(format!("max_len={max_len}"));
            }
            if *controller_id != 0 {
                parts.push(format!("id={controller_id}"));
            }
            format!("controller({})", parts.join(","))
        }
        OfAction::SetVlanVid { vid } => format!("mod_vlan_vid:{vid}"),
        OfAction::SetVlanPcp { pcp } => format!("mod_vlan_pcp:{pcp}"),
        OfAction::PopVlan {
            syntax: PopVlanSyntax::StripVlan,
        } => "strip_vlan".to_string(),
        OfAction::PopVlan {
            syntax: PopVlanSyntax::PopVlan,
        } => "pop_vlan".to_string(),
        OfAction::PushVlan { ethertype } => format!("push_vlan:0x{ethertype:x}"),
        OfAction::SetEthSrc(m) => format!("mod_dl_src:{}", fmt_mac(m)),
        OfAction::SetEthDst(m) => format!("mod_dl_dst:{}", fmt_mac(m)),
        OfAction::SetIpv4Src(ip) => format!("mod_nw_src:{}", fmt_ipv4(ip)),
        OfAction::SetIpv4Dst(ip) => format!("mod_nw_dst:{}", fmt_ipv4(ip)),
        OfAction::SetIpDscp(v) => format!("mod_nw_tos:{v}"),
        OfAction::SetIpEcn(v) => format!("mod_nw_ecn:{v}"),
        OfAction::SetIpTtl(v) => format!("mod_nw_ttl:{v}"),
        OfAction::SetL4SrcPort(p) => format!("mod_tp_src:{p}"),
        OfAction::SetL4DstPort(p) => format!("mod_tp_dst:{p}"),
        OfAction::SetField {
            field,
            value,
            mask,
            syntax: SetFieldSyntax::SetField,
        } => {
            format!(
                "set_field:{}->{}",
                fmt_value(*field, *value, *mask, ports),
                mf_name(*field)
            )
        }
        OfAction::SetField {
            field,
            value,
            mask,
            syntax: SetFieldSyntax::Load,
        } => load_segments(*field, *value, *mask)
            .map(|(sf, v)| format!("load:{}->{}", hex(v), fmt_subfield(&sf)))
            .collect::<Vec<_>>()
            .join(","),
        OfAction::Move { src, dst } => format!("move:{}->{}", fmt_subfield(src), fmt_subfield(dst)),
        OfAction::DecTtl { controller_ids } => match controller_ids.as_slice() {
            [] | [0] => "dec_ttl".to_string(),
            ids => format!(
                "dec_ttl({})",
                ids.iter()
                    .map(|i| i.to_string())
                    .collect::<Vec<_>>()
                    .join(",")
            ),
        },
        OfAction::SetTunnel { tun_id, wide } => {
            let w = if *wide || *tun_id > u64::from(u32::MAX) {
                "64"
            } else {
                ""
            };
            format!("set_tunnel{w}:{}", hex(u128::from(*tun_id)))
        }
        OfAction::Resubmit { port: p, table } => {
            let p = p.filter(|&p| p != port::IN_PORT);
            match (p, table.filter(|&t| t != 255)) {
                (Some(p), None) => format!("resubmit:{}", fmt_port(p, ports)),
                (p, t) => format!(
                    "resubmit({},{})",
                    p.map(|p| fmt_port(p, ports)).unwrap_or_default(),
                    t.map(|t| t.to_string()).unwrap_or_default()
                ),
            }
        }
        OfAction::Note(bytes) => {
            let bytes = pad_note(bytes.clone());
            format!(
                "note:{}",
                bytes
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect::<Vec<_>>()
                    .join(".")
            )
        }
        OfAction::GotoTable(t) => format!("goto_table:{t}"),
        OfAction::Group(g) => format!("group:{g}"),
        OfAction::ClearActions => "clear_actions".to_string(),
        OfAction::WriteActions(list) => {
            format!("write_actions({})", format_actions_with(list, ports))
        }
        OfAction::WriteMetadata { value, mask } => {
            let mut s = format!("write_metadata:{}", hex(u128::from(*value)));
            if *mask != u64::MAX {
                s.push('/');
                s.push_str(&hex(u128::from(*mask)));
            }
            s
        }
    }
}

/// The `load`s OVS prints for a masked set: one per run of mask bits, at
/// most 64 bits each (OVS's `next_load_segment()`).
fn load_segments(
    field: FieldId,
    value: u128,
    mask: u128,
) -> impl Iterator<Item = (SubField, u128)> {
    let n_bits = field.def().n_bits;
    let mut ofs = 0u32;
    std::iter::from_fn(move || {
        while ofs < n_bits && mask >> ofs & 1 == 0 {
            ofs += 1;
        }
        if ofs >= n_bits {
            return None;
        }
        let start = ofs;
        while ofs < n_bits && ofs - start < 64 && mask >> ofs & 1 == 1 {
            ofs += 1;
        }
        let n = ofs - start;
        let v = (value >> start) & ((1u128 << n) - 1);
        Some((
            SubField {
                field,
                ofs: start,
                n_bits: n,
            },
            v,
        ))
    })
}
