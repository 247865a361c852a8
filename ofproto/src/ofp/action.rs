//! Actions (OpenFlow 1.0 and 1.3, with Nicira extensions for what fvs does
//! beyond the standard ones) and OpenFlow 1.3 instructions, as fvs's
//! [`OfAction`] lists. The encodings are the ones OVS chooses, so a flow
//! sent by `ovs-ofctl` and dumped back prints as it does against OVS.

use super::error::OfpErr;
use super::nxm::{self, port_from_32, port_to_32, read_entry, FieldValue};
use super::wire::{Reader, Writer};
use super::{OFP10, OFP13};
use crate::actions::{port, OfAction, PacketInReason, PopVlanSyntax, SetFieldSyntax, SubField};
use crate::fields::FieldId;
use crate::flow::Match;
use crate::syntax::prereq_met;

pub const NX_VENDOR: u32 = 0x0000_2320;

// Nicira action subtypes.
const NXAST_RESUBMIT: u16 = 1;
const NXAST_SET_TUNNEL: u16 = 2;
const NXAST_REG_MOVE: u16 = 6;
const NXAST_REG_LOAD: u16 = 7;
const NXAST_NOTE: u16 = 8;
const NXAST_SET_TUNNEL64: u16 = 9;
const NXAST_RESUBMIT_TABLE: u16 = 14;
const NXAST_DEC_TTL: u16 = 18;
const NXAST_CONTROLLER: u16 = 20;
const NXAST_DEC_TTL_CNT_IDS: u16 = 21;
const NXAST_WRITE_METADATA: u16 = 22;
const NXAST_REG_LOAD2: u16 = 33;
const NXAST_GROUP: u16 = 40;

/// Most actions one list may hold (a bound on work per message).
const MAX_ACTIONS: usize = 4096;

fn reason_code(r: PacketInReason) -> u8 {
    match r {
        PacketInReason::NoMatch => 0,
        PacketInReason::Action => 1,
        PacketInReason::InvalidTtl => 2,
    }
}

fn reason_of(c: u8) -> Option<PacketInReason> {
    Some(match c {
        0 => PacketInReason::NoMatch,
        1 => PacketInReason::Action,
        2 => PacketInReason::InvalidTtl,
        _ => return None,
    })
}

/// Whether `p` may be an output port (OVS's `ofputil_check_output_port()`).
fn check_out_port(p: u16) -> Result<u16, OfpErr> {
    if p < port::MAX
        || matches!(
            p,
            port::IN_PORT
                | port::TABLE
                | port::NORMAL
                | port::FLOOD
                | port::ALL
                | port::CONTROLLER
                | port::LOCAL
        )
    {
        Ok(p)
    } else {
        Err(OfpErr::BadOutPort)
    }
}

fn output(p: u16, max_len: u16) -> OfAction {
    if p == port::CONTROLLER {
        OfAction::Controller {
            max_len,
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

fn mac(b: [u8; 6]) -> [u8; 6] {
    b
}

/// Decodes an action list of `len` bytes.
pub fn decode_actions(
    r: &mut Reader<'_>,
    len: usize,
    version: u8,
) -> Result<Vec<OfAction>, OfpErr> {
    // Consumes the list from the caller's reader (what follows, e.g. a
    // packet-out's data, comes after it).
    let mut r = Reader::new(
        r.bytes(len).map_err(|_| OfpErr::BacBadLen)?,
        OfpErr::BacBadLen,
    );
    let mut out = Vec::new();
    while !r.is_empty() {
        if out.len() >= MAX_ACTIONS {
            return Err(OfpErr::TooMany);
        }
        let t = r.peek_u16(0).ok_or(OfpErr::BacBadLen)?;
        let alen = r.peek_u16(2).ok_or(OfpErr::BacBadLen)? as usize;
        if alen < 8 || !alen.is_multiple_of(8) {
            return Err(OfpErr::BacBadLen);
        }
        let mut a = r.sub(alen)?;
        a.skip(4)?;
        if version == OFP10 {
            decode10(t, alen, &mut a, &mut out)?;
        } else {
            decode13(t, alen, &mut a, &mut out)?;
        }
    }
    Ok(out)
}

fn fixed(alen: usize, want: usize) -> Result<(), OfpErr> {
    if alen == want {
        Ok(())
    } else {
        Err(OfpErr::BacBadLen)
    }
}

fn decode10(
    t: u16,
    alen: usize,
    a: &mut Reader<'_>,
    out: &mut Vec<OfAction>,
) -> Result<(), OfpErr> {
    let act = match t {
        0 => {
            fixed(alen, 8)?;
            let p = check_out_port(a.u16()?)?;
            output(p, a.u16()?)
        }
        1 => {
            fixed(alen, 8)?;
            let vid = a.u16()?;
            if vid > 0xfff {
                return Err(OfpErr::BadArgument);
            }
            OfAction::SetVlanVid { vid }
        }
        2 => {
            fixed(alen, 8)?;
            let pcp = a.u8()?;
            if pcp > 7 {
                return Err(OfpErr::BadArgument);
            }
            OfAction::SetVlanPcp { pcp }
        }
        3 => {
            fixed(alen, 8)?;
            OfAction::PopVlan {
                syntax: PopVlanSyntax::StripVlan,
            }
        }
        4 | 5 => {
            fixed(alen, 16)?;
            let m = mac(a.array()?);
            if t == 4 {
                OfAction::SetEthSrc(m)
            } else {
                OfAction::SetEthDst(m)
            }
        }
        6 | 7 => {
            fixed(alen, 8)?;
            let ip: [u8; 4] = a.array()?;
            if t == 6 {
                OfAction::SetIpv4Src(ip)
            } else {
                OfAction::SetIpv4Dst(ip)
            }
        }
        8 => {
            fixed(alen, 8)?;
            let tos = a.u8()?;
            if tos & 3 != 0 {
                return Err(OfpErr::BadArgument);
            }
            OfAction::SetIpDscp(tos)
        }
        9 | 10 => {
            fixed(alen, 8)?;
            let p = a.u16()?;
            if t == 9 {
                OfAction::SetL4SrcPort(p)
            } else {
                OfAction::SetL4DstPort(p)
            }
        }
        // Enqueue: fvs has no queues.
        11 => return Err(OfpErr::BadQueue),
        0xffff => return decode_vendor(alen, a, out, OFP10),
        _ => return Err(OfpErr::BacBadType),
    };
    out.push(act);
    Ok(())
}

fn decode13(
    t: u16,
    alen: usize,
    a: &mut Reader<'_>,
    out: &mut Vec<OfAction>,
) -> Result<(), OfpErr> {
    let act = match t {
        0 => {
            fixed(alen, 16)?;
            let p = port_from_32(a.u32()?).ok_or(OfpErr::BadOutPort)?;
            let p = check_out_port(p)?;
            output(p, a.u16()?)
        }
        17 => {
            fixed(alen, 8)?;
            let ethertype = a.u16()?;
            if ethertype != 0x8100 && ethertype != 0x88a8 {
                return Err(OfpErr::BadArgument);
            }
            OfAction::PushVlan { ethertype }
        }
        18 => {
            fixed(alen, 8)?;
            OfAction::PopVlan {
                syntax: PopVlanSyntax::PopVlan,
            }
        }
        22 => {
            fixed(alen, 8)?;
            let g = a.u32()?;
            if g > 0xffff_ff00 {
                return Err(OfpErr::BadOutGroup);
            }
            OfAction::Group(g)
        }
        23 => {
            fixed(alen, 8)?;
            OfAction::SetIpTtl(a.u8()?)
        }
        24 => {
            fixed(alen, 8)?;
            OfAction::DecTtl {
                controller_ids: vec![0],
            }
        }
        25 => {
            let fv = read_entry(a).map_err(set_field_err)?;
            if fv.mask != fv.id.def().value_mask() && fv.id != FieldId::VlanVid {
                return Err(OfpErr::BadSetArgument);
            }
            if a.rest().iter().any(|&b| b != 0) {
                return Err(OfpErr::BadSetLen);
            }
            set_field(fv, SetFieldSyntax::SetField)?
        }
        0xffff => return decode_vendor(alen, a, out, OFP13),
        // Copy TTL, MPLS, queues, PBB: not implemented by fvs.
        11..=16 | 19..=21 | 26 | 27 => return Err(OfpErr::BacBadType),
        _ => return Err(OfpErr::BacBadType),
    };
    out.push(act);
    Ok(())
}

fn set_field_err(e: OfpErr) -> OfpErr {
    match e {
        OfpErr::BadField => OfpErr::BadSetType,
        OfpErr::BmcBadLen => OfpErr::BadSetLen,
        OfpErr::BadMask | OfpErr::BadWildcards | OfpErr::BadValue => OfpErr::BadSetArgument,
        e => e,
    }
}

fn set_field(fv: FieldValue, syntax: SetFieldSyntax) -> Result<OfAction, OfpErr> {
    if !fv.id.def().writable || matches!(fv.id, FieldId::TunTos | FieldId::TunTtl) {
        return Err(OfpErr::BadSetArgument);
    }
    Ok(OfAction::SetField {
        field: fv.id,
        value: fv.value,
        mask: fv.mask,
        syntax,
    })
}

fn nx_field(h: u32) -> Result<FieldId, OfpErr> {
    nxm::field_of_header(h)
        .map(|(id, _)| id)
        .ok_or(OfpErr::BadSetType)
}

fn subfield(h: u32, ofs: u16, n_bits: u16) -> Result<SubField, OfpErr> {
    let field = nx_field(h)?;
    let width = field.def().n_bits;
    if n_bits == 0 || ofs as u32 + n_bits as u32 > width {
        return Err(OfpErr::BadSetLen);
    }
    Ok(SubField {
        field,
        ofs: ofs as u32,
        n_bits: n_bits as u32,
    })
}

fn decode_vendor(
    alen: usize,
    a: &mut Reader<'_>,
    out: &mut Vec<OfAction>,
    version: u8,
) -> Result<(), OfpErr> {
    if a.u32()? != NX_VENDOR {
        return Err(OfpErr::BacBadVendor);
    }
    let sub = a.u16()?;
    let act = match sub {
        NXAST_RESUBMIT => {
            fixed(alen, 16)?;
            let p = a.u16()?;
            OfAction::Resubmit {
                port: (p != port::IN_PORT).then_some(p),
                table: None,
            }
        }
        NXAST_RESUBMIT_TABLE => {
            fixed(alen, 16)?;
            let p = a.u16()?;
            let t = a.u8()?;
            if a.bytes(3)?.iter().any(|&b| b != 0) {
                return Err(OfpErr::BadArgument);
            }
            OfAction::Resubmit {
                port: (p != port::IN_PORT).then_some(p),
                table: (t != 255).then_some(t),
            }
        }
        NXAST_SET_TUNNEL => {
            fixed(alen, 16)?;
            a.skip(2)?;
            OfAction::SetTunnel {
                tun_id: a.u32()? as u64,
                wide: false,
            }
        }
        NXAST_SET_TUNNEL64 => {
            fixed(alen, 24)?;
            a.skip(6)?;
            OfAction::SetTunnel {
                tun_id: a.u64()?,
                wide: true,
            }
        }
        NXAST_REG_MOVE => {
            fixed(alen, 24)?;
            let n_bits = a.u16()?;
            let (so, dof) = (a.u16()?, a.u16()?);
            let src = subfield(a.u32()?, so, n_bits)?;
            let dst = subfield(a.u32()?, dof, n_bits)?;
            if !dst.field.def().writable {
                return Err(OfpErr::BadSetArgument);
            }
            OfAction::Move { src, dst }
        }
        NXAST_REG_LOAD => {
            fixed(alen, 24)?;
            let ofs_nbits = a.u16()?;
            let h = a.u32()?;
            let value = a.u64()?;
            let sf = subfield(h, ofs_nbits >> 6, (ofs_nbits & 0x3f) + 1)?;
            if sf.n_bits < 64 && value >> sf.n_bits != 0 {
                return Err(OfpErr::BadArgument);
            }
            set_field(
                FieldValue {
                    id: sf.field,
                    value: (value as u128) << sf.ofs,
                    mask: sf.mask(),
                },
                SetFieldSyntax::Load,
            )?
        }
        NXAST_REG_LOAD2 => {
            a.skip(6)?;
            let fv = read_entry(a).map_err(set_field_err)?;
            if a.rest().iter().any(|&b| b != 0) {
                return Err(OfpErr::BadSetLen);
            }
            set_field(fv, SetFieldSyntax::SetField)?
        }
        NXAST_NOTE => OfAction::Note(a.rest().to_vec()),
        NXAST_DEC_TTL if version == OFP10 => OfAction::DecTtl {
            controller_ids: vec![0],
        },
        NXAST_DEC_TTL_CNT_IDS => {
            let n = a.u16()? as usize;
            a.skip(4)?;
            if 16 + (2 * n).div_ceil(8) * 8 != alen {
                return Err(OfpErr::BacBadLen);
            }
            let mut ids = Vec::with_capacity(n);
            for _ in 0..n {
                ids.push(a.u16()?);
            }
            OfAction::DecTtl {
                controller_ids: ids,
            }
        }
        NXAST_CONTROLLER => {
            fixed(alen, 16)?;
            let max_len = a.u16()?;
            let controller_id = a.u16()?;
            let reason = reason_of(a.u8()?).ok_or(OfpErr::BadArgument)?;
            OfAction::Controller {
                max_len,
                reason,
                controller_id,
            }
        }
        // OpenFlow 1.1+ has the instruction; inside an action list it would
        // run at another point than the instruction (OVS refuses it too).
        NXAST_WRITE_METADATA if version == OFP10 => {
            fixed(alen, 32)?;
            a.skip(6)?;
            let value = a.u64()?;
            let mask = a.u64()?;
            OfAction::WriteMetadata {
                value: value & mask,
                mask,
            }
        }
        NXAST_GROUP if version == OFP10 => {
            fixed(alen, 16)?;
            a.skip(2)?;
            OfAction::Group(a.u32()?)
        }
        _ => return Err(OfpErr::BacBadVendorType),
    };
    out.push(act);
    Ok(())
}

/// Decodes OpenFlow 1.3 instructions (`len` bytes) into one action list:
/// apply-actions, then clear/write actions, write-metadata, goto-table.
pub fn decode_instructions(r: &mut Reader<'_>, len: usize) -> Result<Vec<OfAction>, OfpErr> {
    let mut r = Reader::new(
        r.bytes(len).map_err(|_| OfpErr::BicBadLen)?,
        OfpErr::BicBadLen,
    );
    let mut seen = [false; 7];
    let mut apply = Vec::new();
    let (mut clear, mut write, mut meta, mut goto) = (None, None, None, None);
    while !r.is_empty() {
        let t = r.peek_u16(0).ok_or(OfpErr::BicBadLen)?;
        let ilen = r.peek_u16(2).ok_or(OfpErr::BicBadLen)? as usize;
        if ilen < 8 || !ilen.is_multiple_of(8) {
            return Err(OfpErr::BicBadLen);
        }
        let mut i = r.sub(ilen)?;
        i.skip(4)?;
        if (1..=6).contains(&t) {
            if seen[t as usize] {
                return Err(OfpErr::UnsupInst);
            }
            seen[t as usize] = true;
        }
        match t {
            1 => {
                if ilen != 8 {
                    return Err(OfpErr::BicBadLen);
                }
                let table = i.u8()?;
                if table == 255 {
                    return Err(OfpErr::BicBadTableId);
                }
                goto = Some(OfAction::GotoTable(table));
            }
            2 => {
                if ilen != 24 {
                    return Err(OfpErr::BicBadLen);
                }
                i.skip(4)?;
                let value = i.u64()?;
                let mask = i.u64()?;
                meta = Some(OfAction::WriteMetadata {
                    value: value & mask,
                    mask,
                });
            }
            3 | 4 => {
                i.skip(4)?;
                let acts = decode_actions(&mut i, ilen - 8, OFP13)?;
                if t == 4 {
                    apply = acts;
                } else {
                    write = Some(OfAction::WriteActions(acts));
                }
            }
            5 => {
                if ilen != 8 {
                    return Err(OfpErr::BicBadLen);
                }
                clear = Some(OfAction::ClearActions);
            }
            6 => return Err(OfpErr::UnsupInst),
            0xffff => return Err(OfpErr::BicBadExperimenter),
            _ => return Err(OfpErr::UnknownInst),
        }
    }
    apply.extend(clear);
    apply.extend(write);
    apply.extend(meta);
    apply.extend(goto);
    Ok(apply)
}

/// An action fvs cannot express in the requested version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unencodable(pub String);

fn nx_header(w: &mut Writer, len: u16, sub: u16) {
    w.u16(0xffff).u16(len).u32(NX_VENDOR).u16(sub);
}

fn reg_load(w: &mut Writer, field: FieldId, value: u128, mask: u128) -> Result<(), Unencodable> {
    let h = nxm::header_of_field(field)
        .ok_or_else(|| Unencodable(format!("{} cannot be loaded", field.name())))?;
    // One load per contiguous run of mask bits, at most 64 bits each.
    let n_bits = field.def().n_bits;
    let mut ofs = 0u32;
    while ofs < n_bits {
        if mask >> ofs & 1 == 0 {
            ofs += 1;
            continue;
        }
        let start = ofs;
        while ofs < n_bits && ofs - start < 64 && mask >> ofs & 1 == 1 {
            ofs += 1;
        }
        let n = ofs - start;
        let v = (value >> start)
            & if n >= 128 {
                u128::MAX
            } else {
                (1u128 << n) - 1
            };
        nx_header(w, 24, NXAST_REG_LOAD);
        w.u16(((start as u16) << 6) | (n as u16 - 1))
            .u32(h)
            .u64(v as u64);
    }
    Ok(())
}

fn set_field_oxm(w: &mut Writer, field: FieldId, value: u128, mask: u128, masked: bool) {
    // OFPAT_SET_FIELD (no mask) or NXAST_REG_LOAD2 (with one).
    let start = w.len();
    if masked {
        nx_header(w, 0, NXAST_REG_LOAD2);
        w.zeros(6);
    } else {
        w.u16(25).u16(0);
    }
    if !nxm::encode_field(w, field, value, mask, true) {
        w.buf.truncate(start);
        return;
    }
    w.pad_to(start, 8);
    let len = (w.len() - start) as u16;
    w.put_u16_at(start + 2, len);
}

/// The flow field an OpenFlow 1.3 `mod_tp_*` becomes, from the match.
fn l4_field(m: Option<&Match>, src: bool) -> FieldId {
    use crate::fields::Prereq;
    let f = m.map(|m| m.flow).unwrap_or_default();
    let (t, u, s) = if src {
        (FieldId::TcpSrc, FieldId::UdpSrc, FieldId::SctpSrc)
    } else {
        (FieldId::TcpDst, FieldId::UdpDst, FieldId::SctpDst)
    };
    if prereq_met(Prereq::Udp, &f) {
        u
    } else if prereq_met(Prereq::Sctp, &f) {
        s
    } else {
        t
    }
}

fn mac_u128(m: &[u8; 6]) -> u128 {
    m.iter().fold(0u128, |a, &b| (a << 8) | b as u128)
}

/// Encodes plain actions (no instructions) for `version`; `m` is the
/// match of the flow they belong to (it picks TCP/UDP for L4 rewrites).
pub fn encode_actions(
    actions: &[OfAction],
    version: u8,
    m: Option<&Match>,
    w: &mut Writer,
) -> Result<(), Unencodable> {
    for a in actions {
        if version == OFP10 {
            encode10(a, w)?;
        } else {
            encode13(a, m, w)?;
        }
    }
    Ok(())
}

fn encode_common_nx(a: &OfAction, version: u8, w: &mut Writer) -> Result<bool, Unencodable> {
    match a {
        OfAction::Resubmit { port: p, table } => {
            let p = p.unwrap_or(port::IN_PORT);
            match table {
                None => {
                    nx_header(w, 16, NXAST_RESUBMIT);
                    w.u16(p).zeros(4);
                }
                Some(t) => {
                    nx_header(w, 16, NXAST_RESUBMIT_TABLE);
                    w.u16(p).u8(*t).zeros(3);
                }
            }
        }
        OfAction::Move { src, dst } => {
            let sh = nxm::header_of_field(src.field)
                .ok_or_else(|| Unencodable(format!("move from {}", src.field.name())))?;
            let dh = nxm::header_of_field(dst.field)
                .ok_or_else(|| Unencodable(format!("move to {}", dst.field.name())))?;
            nx_header(w, 24, NXAST_REG_MOVE);
            w.u16(src.n_bits as u16)
                .u16(src.ofs as u16)
                .u16(dst.ofs as u16)
                .u32(sh)
                .u32(dh);
        }
        OfAction::Note(bytes) => {
            let start = w.len();
            nx_header(w, 0, NXAST_NOTE);
            w.bytes(bytes);
            if w.len() - start < 16 {
                w.pad_to(start, 16);
            }
            w.pad_to(start, 8);
            let len = (w.len() - start) as u16;
            w.put_u16_at(start + 2, len);
        }
        OfAction::Controller {
            max_len,
            reason,
            controller_id,
        } => {
            if *reason == PacketInReason::Action && *controller_id == 0 {
                if version == OFP10 {
                    w.u16(0).u16(8).u16(port::CONTROLLER).u16(*max_len);
                } else {
                    w.u16(0)
                        .u16(16)
                        .u32(port_to_32(port::CONTROLLER))
                        .u16(*max_len)
                        .zeros(6);
                }
            } else {
                nx_header(w, 16, NXAST_CONTROLLER);
                w.u16(*max_len)
                    .u16(*controller_id)
                    .u8(reason_code(*reason))
                    .u8(0);
            }
        }
        // Only [0] is the plain action: an empty list (a controller may send
        // one) would come back as [0], a packet-in nobody asked for.
        OfAction::DecTtl { controller_ids } if controller_ids.as_slice() != [0] => {
            let start = w.len();
            nx_header(w, 0, NXAST_DEC_TTL_CNT_IDS);
            w.u16(controller_ids.len() as u16).zeros(4);
            for id in controller_ids {
                w.u16(*id);
            }
            w.pad_to(start, 8);
            let len = (w.len() - start) as u16;
            w.put_u16_at(start + 2, len);
        }
        _ => return Ok(false),
    }
    Ok(true)
}

fn encode10(a: &OfAction, w: &mut Writer) -> Result<(), Unencodable> {
    if encode_common_nx(a, OFP10, w)? {
        return Ok(());
    }
    match a {
        OfAction::Output { port: p, max_len } => {
            w.u16(0).u16(8).u16(*p).u16(*max_len);
        }
        OfAction::SetVlanVid { vid } => {
            w.u16(1).u16(8).u16(*vid).zeros(2);
        }
        OfAction::SetVlanPcp { pcp } => {
            w.u16(2).u16(8).u8(*pcp).zeros(3);
        }
        OfAction::PopVlan { .. } => {
            w.u16(3).u16(8).zeros(4);
        }
        OfAction::SetEthSrc(m) => {
            w.u16(4).u16(16).bytes(m).zeros(6);
        }
        OfAction::SetEthDst(m) => {
            w.u16(5).u16(16).bytes(m).zeros(6);
        }
        OfAction::SetIpv4Src(ip) => {
            w.u16(6).u16(8).bytes(ip);
        }
        OfAction::SetIpv4Dst(ip) => {
            w.u16(7).u16(8).bytes(ip);
        }
        OfAction::SetIpDscp(tos) => {
            w.u16(8).u16(8).u8(*tos).zeros(3);
        }
        OfAction::SetL4SrcPort(p) => {
            w.u16(9).u16(8).u16(*p).zeros(2);
        }
        OfAction::SetL4DstPort(p) => {
            w.u16(10).u16(8).u16(*p).zeros(2);
        }
        OfAction::SetIpEcn(e) => reg_load(w, FieldId::IpEcn, *e as u128, 0x3)?,
        OfAction::SetIpTtl(t) => reg_load(w, FieldId::IpTtl, *t as u128, 0xff)?,
        OfAction::SetField {
            field,
            value,
            mask,
            syntax,
        } => {
            let full = field.def().value_mask();
            let legacy = *syntax == SetFieldSyntax::SetField && *mask == full;
            let v = *value;
            match field {
                FieldId::EthSrc if legacy => {
                    return encode10(&OfAction::SetEthSrc(int_mac(v)), w);
                }
                FieldId::EthDst if legacy => {
                    return encode10(&OfAction::SetEthDst(int_mac(v)), w);
                }
                FieldId::Ipv4Src if legacy => {
                    return encode10(&OfAction::SetIpv4Src((v as u32).to_be_bytes()), w);
                }
                FieldId::Ipv4Dst if legacy => {
                    return encode10(&OfAction::SetIpv4Dst((v as u32).to_be_bytes()), w);
                }
                _ => {}
            }
            if field.def().n_bits > 64 && mask.count_ones() > 64 {
                set_field_oxm(w, *field, v, *mask, true);
            } else {
                reg_load(w, *field, v, *mask)?;
            }
        }
        OfAction::DecTtl { .. } => {
            nx_header(w, 16, NXAST_DEC_TTL);
            w.zeros(6);
        }
        OfAction::SetTunnel { tun_id, wide } => {
            if !*wide && *tun_id <= u32::MAX as u64 {
                nx_header(w, 16, NXAST_SET_TUNNEL);
                w.zeros(2).u32(*tun_id as u32);
            } else {
                nx_header(w, 24, NXAST_SET_TUNNEL64);
                w.zeros(6).u64(*tun_id);
            }
        }
        OfAction::WriteMetadata { value, mask } => {
            nx_header(w, 32, NXAST_WRITE_METADATA);
            w.zeros(6).u64(*value).u64(*mask);
        }
        // OVS's OpenFlow 1.0 form of goto_table.
        OfAction::GotoTable(t) => {
            nx_header(w, 16, NXAST_RESUBMIT_TABLE);
            w.u16(port::IN_PORT).u8(*t).zeros(3);
        }
        OfAction::Group(g) => {
            nx_header(w, 16, NXAST_GROUP);
            w.zeros(2).u32(*g);
        }
        OfAction::PushVlan { .. } => return Err(Unencodable("push_vlan".into())),
        OfAction::ClearActions => return Err(Unencodable("clear_actions".into())),
        OfAction::WriteActions(_) => return Err(Unencodable("write_actions".into())),
        OfAction::Resubmit { .. }
        | OfAction::Move { .. }
        | OfAction::Note(_)
        | OfAction::Controller { .. } => {}
    }
    Ok(())
}

fn int_mac(v: u128) -> [u8; 6] {
    let b = (v as u64).to_be_bytes();
    [b[2], b[3], b[4], b[5], b[6], b[7]]
}

fn encode13(a: &OfAction, m: Option<&Match>, w: &mut Writer) -> Result<(), Unencodable> {
    if encode_common_nx(a, OFP13, w)? {
        return Ok(());
    }
    let sf = |w: &mut Writer, f: FieldId, v: u128| {
        let full = f.def().value_mask();
        set_field_oxm(w, f, v, full, false)
    };
    match a {
        OfAction::Output { port: p, max_len } => {
            w.u16(0).u16(16).u32(port_to_32(*p)).u16(*max_len).zeros(6);
        }
        OfAction::SetVlanVid { vid } => {
            w.u16(17).u16(8).u16(0x8100).zeros(2);
            sf(w, FieldId::VlanVid, 0x1000 | *vid as u128);
        }
        OfAction::SetVlanPcp { pcp } => {
            w.u16(17).u16(8).u16(0x8100).zeros(2);
            sf(w, FieldId::DlVlanPcp, *pcp as u128);
        }
        OfAction::PopVlan { .. } => {
            w.u16(18).u16(8).zeros(4);
        }
        OfAction::PushVlan { ethertype } => {
            w.u16(17).u16(8).u16(*ethertype).zeros(2);
        }
        OfAction::SetEthSrc(mm) => sf(w, FieldId::EthSrc, mac_u128(mm)),
        OfAction::SetEthDst(mm) => sf(w, FieldId::EthDst, mac_u128(mm)),
        OfAction::SetIpv4Src(ip) => sf(w, FieldId::Ipv4Src, u32::from_be_bytes(*ip) as u128),
        OfAction::SetIpv4Dst(ip) => sf(w, FieldId::Ipv4Dst, u32::from_be_bytes(*ip) as u128),
        OfAction::SetIpDscp(tos) => sf(w, FieldId::IpDscp, (*tos >> 2) as u128),
        OfAction::SetIpEcn(e) => sf(w, FieldId::IpEcn, *e as u128),
        OfAction::SetIpTtl(t) => {
            w.u16(23).u16(8).u8(*t).zeros(3);
        }
        OfAction::SetL4SrcPort(p) => sf(w, l4_field(m, true), *p as u128),
        OfAction::SetL4DstPort(p) => sf(w, l4_field(m, false), *p as u128),
        OfAction::SetField {
            field,
            value,
            mask,
            syntax,
        } => {
            let full = match field {
                FieldId::VlanVid => 0x1fff,
                f => f.def().value_mask(),
            };
            if *syntax == SetFieldSyntax::Load {
                reg_load(w, *field, *value, *mask)?;
            } else {
                set_field_oxm(w, *field, *value, *mask, *mask & full != full);
            }
        }
        OfAction::DecTtl { .. } => {
            w.u16(24).u16(8).zeros(4);
        }
        OfAction::SetTunnel { tun_id, .. } => sf(w, FieldId::TunId, *tun_id as u128),
        OfAction::Group(g) => {
            w.u16(22).u16(8).u32(*g);
        }
        OfAction::GotoTable(_)
        | OfAction::WriteMetadata { .. }
        | OfAction::ClearActions
        | OfAction::WriteActions(_) => {
            return Err(Unencodable("an instruction in an action list".into()))
        }
        OfAction::Resubmit { .. }
        | OfAction::Move { .. }
        | OfAction::Note(_)
        | OfAction::Controller { .. } => {}
    }
    Ok(())
}

/// Encodes an action list as OpenFlow 1.3 instructions.
pub fn encode_instructions(
    actions: &[OfAction],
    m: Option<&Match>,
    w: &mut Writer,
) -> Result<(), Unencodable> {
    let apply: Vec<OfAction> = actions
        .iter()
        .filter(|a| {
            !matches!(
                a,
                OfAction::GotoTable(_)
                    | OfAction::WriteMetadata { .. }
                    | OfAction::ClearActions
                    | OfAction::WriteActions(_)
            )
        })
        .cloned()
        .collect();
    if !apply.is_empty() {
        let start = w.len();
        w.u16(4).u16(0).zeros(4);
        encode_actions(&apply, OFP13, m, w)?;
        let len = (w.len() - start) as u16;
        w.put_u16_at(start + 2, len);
    }
    for a in actions {
        if matches!(a, OfAction::ClearActions) {
            w.u16(5).u16(8).zeros(4);
        }
    }
    for a in actions {
        if let OfAction::WriteActions(list) = a {
            let start = w.len();
            w.u16(3).u16(0).zeros(4);
            encode_actions(list, OFP13, m, w)?;
            let len = (w.len() - start) as u16;
            w.put_u16_at(start + 2, len);
        }
    }
    for a in actions {
        if let OfAction::WriteMetadata { value, mask } = a {
            w.u16(2).u16(24).zeros(4).u64(*value).u64(*mask);
        }
    }
    for a in actions {
        if let OfAction::GotoTable(t) = a {
            w.u16(1).u16(8).u8(*t).zeros(3);
        }
    }
    Ok(())
}

/// Whether `actions` can be sent with OpenFlow 1.0 (with Nicira extensions).
pub fn fits_of10(actions: &[OfAction]) -> bool {
    let mut w = Writer::new();
    encode_actions(actions, OFP10, None, &mut w).is_ok()
        && !actions.iter().any(|a| matches!(a, OfAction::GotoTable(_)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::syntax::parse_actions;

    fn round(s: &str, version: u8) -> Vec<OfAction> {
        let acts = parse_actions(s, None).expect("parse");
        let mut w = Writer::new();
        if version == OFP13 {
            encode_instructions(&acts, None, &mut w).expect("encode");
            decode_instructions(&mut Reader::new(&w.buf, OfpErr::BadLen), w.len()).expect("decode")
        } else {
            encode_actions(&acts, version, None, &mut w).expect("encode");
            decode_actions(&mut Reader::new(&w.buf, OfpErr::BadLen), w.len(), version)
                .expect("decode")
        }
    }

    #[test]
    fn lossless_round_trips() {
        for v in [OFP10, OFP13] {
            for s in [
                "output:1,output:2",
                "NORMAL",
                "controller",
                "controller(reason=no_match,id=3,max_len=64)",
                "resubmit(,2),resubmit:3,resubmit(4,5)",
                "move:NXM_NX_REG0[0..7]->NXM_NX_REG1[8..15]",
                "load:0x5->NXM_NX_REG2[]",
                "dec_ttl(1,2,3)",
                "note:01.02.03",
                "pop_vlan",
            ] {
                let acts = parse_actions(s, None).expect("parse");
                let got = round(s, v);
                if v == OFP10 && s == "pop_vlan" {
                    continue;
                }
                assert_eq!(got, acts, "{s} v{v}");
            }
        }
        let acts = parse_actions("group:5,write_metadata:0x3/0xff,goto_table:4", None).unwrap();
        assert_eq!(
            round("group:5,write_metadata:0x3/0xff,goto_table:4", OFP13),
            acts
        );
        let acts = parse_actions("clear_actions,write_actions(output:3,group:1)", None).unwrap();
        assert_eq!(
            round("clear_actions,write_actions(output:3,group:1)", OFP13),
            acts
        );
        let acts = parse_actions("mod_dl_src:00:01:02:03:04:05,mod_nw_dst:1.2.3.4,mod_tp_src:5,mod_vlan_vid:7,strip_vlan", None).unwrap();
        assert_eq!(round("mod_dl_src:00:01:02:03:04:05,mod_nw_dst:1.2.3.4,mod_tp_src:5,mod_vlan_vid:7,strip_vlan", OFP10), acts);
    }

    #[test]
    fn bad_actions() {
        let dec = |b: &[u8], v| decode_actions(&mut Reader::new(b, OfpErr::BadLen), b.len(), v);
        // Length not a multiple of 8.
        assert_eq!(
            dec(&[0, 0, 0, 7, 0, 1, 0, 0], OFP10),
            Err(OfpErr::BacBadLen)
        );
        // Truncated: claims 16 bytes, has 8.
        assert_eq!(
            dec(&[0, 0, 0, 16, 0, 1, 0, 0], OFP13),
            Err(OfpErr::BacBadLen)
        );
        assert_eq!(
            dec(&[0, 99, 0, 8, 0, 0, 0, 0], OFP10),
            Err(OfpErr::BacBadType)
        );
        assert_eq!(
            dec(&[0, 0, 0, 8, 0xff, 0xff, 0, 0], OFP10),
            Err(OfpErr::BadOutPort)
        );
        assert_eq!(
            dec(
                &[0xff, 0xff, 0, 16, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0],
                OFP13
            ),
            Err(OfpErr::BacBadVendor)
        );
    }
}
