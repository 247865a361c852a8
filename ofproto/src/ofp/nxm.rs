//! Flow matches as type-length-value entries: OXM (OpenFlow 1.2+, class
//! `OFPXMC_OPENFLOW_BASIC`) and NXM (Nicira's, classes `NXM_OF` and
//! `NXM_NX`). Like OVS, either kind of entry is accepted in either kind of
//! match; when encoding, an OXM match uses OXM entries where one exists and
//! NXM entries for the rest.

use super::error::OfpErr;
use super::wire::{Reader, Writer};
use crate::fields::{FieldId, Prereq};
use crate::flow::Match;
use crate::syntax::prereq_met;

pub const NXM_OF: u16 = 0x0000;
pub const NXM_NX: u16 = 0x0001;
pub const OXM_BASIC: u16 = 0x8000;
pub const OXM_EXPERIMENTER: u16 = 0xffff;

/// How a field's wire value maps to fvs's.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Conv {
    Plain,
    /// A 32-bit OpenFlow 1.1+ port number.
    Port32,
    /// OXM's `VLAN_VID` (13 bits with `OFPVID_PRESENT`).
    VlanVid,
    /// OXM's `VLAN_PCP` (also requires a tag).
    VlanPcp,
}

/// One known entry type.
#[derive(Clone, Copy, Debug)]
struct Entry {
    class: u16,
    field: u8,
    len: u8,
    id: FieldId,
    maskable: bool,
    conv: Conv,
}

const fn e(class: u16, field: u8, len: u8, id: FieldId, maskable: bool) -> Entry {
    Entry {
        class,
        field,
        len,
        id,
        maskable,
        conv: Conv::Plain,
    }
}

const fn ec(class: u16, field: u8, len: u8, id: FieldId, maskable: bool, conv: Conv) -> Entry {
    Entry {
        class,
        field,
        len,
        id,
        maskable,
        conv,
    }
}

use FieldId::*;

static ENTRIES: &[Entry] = &[
    e(NXM_OF, 0, 2, InPort, false),
    e(NXM_OF, 1, 6, EthDst, true),
    e(NXM_OF, 2, 6, EthSrc, true),
    e(NXM_OF, 3, 2, EthType, false),
    e(NXM_OF, 4, 2, VlanTci, true),
    e(NXM_OF, 5, 1, IpTos, false),
    e(NXM_OF, 6, 1, IpProto, false),
    e(NXM_OF, 7, 4, Ipv4Src, true),
    e(NXM_OF, 8, 4, Ipv4Dst, true),
    e(NXM_OF, 9, 2, TcpSrc, true),
    e(NXM_OF, 10, 2, TcpDst, true),
    e(NXM_OF, 11, 2, UdpSrc, true),
    e(NXM_OF, 12, 2, UdpDst, true),
    e(NXM_OF, 13, 1, IcmpType, false),
    e(NXM_OF, 14, 1, IcmpCode, false),
    e(NXM_OF, 15, 2, ArpOp, false),
    e(NXM_OF, 16, 4, ArpSpa, true),
    e(NXM_OF, 17, 4, ArpTpa, true),
    e(NXM_NX, 0, 4, Reg0, true),
    e(NXM_NX, 1, 4, Reg1, true),
    e(NXM_NX, 2, 4, Reg2, true),
    e(NXM_NX, 3, 4, Reg3, true),
    e(NXM_NX, 4, 4, Reg4, true),
    e(NXM_NX, 5, 4, Reg5, true),
    e(NXM_NX, 6, 4, Reg6, true),
    e(NXM_NX, 7, 4, Reg7, true),
    e(NXM_NX, 8, 4, Reg8, true),
    e(NXM_NX, 9, 4, Reg9, true),
    e(NXM_NX, 10, 4, Reg10, true),
    e(NXM_NX, 11, 4, Reg11, true),
    e(NXM_NX, 12, 4, Reg12, true),
    e(NXM_NX, 13, 4, Reg13, true),
    e(NXM_NX, 14, 4, Reg14, true),
    e(NXM_NX, 15, 4, Reg15, true),
    e(NXM_NX, 16, 8, TunId, true),
    e(NXM_NX, 17, 6, ArpSha, true),
    e(NXM_NX, 18, 6, ArpTha, true),
    e(NXM_NX, 19, 16, Ipv6Src, true),
    e(NXM_NX, 20, 16, Ipv6Dst, true),
    e(NXM_NX, 21, 1, Icmpv6Type, false),
    e(NXM_NX, 22, 1, Icmpv6Code, false),
    e(NXM_NX, 23, 16, NdTarget, true),
    e(NXM_NX, 24, 6, NdSll, true),
    e(NXM_NX, 25, 6, NdTll, true),
    e(NXM_NX, 26, 1, IpFrag, true),
    e(NXM_NX, 27, 4, Ipv6Label, true),
    e(NXM_NX, 28, 1, IpEcn, false),
    e(NXM_NX, 29, 1, IpTtl, false),
    e(NXM_NX, 31, 4, TunSrc, true),
    e(NXM_NX, 32, 4, TunDst, true),
    e(NXM_NX, 34, 2, TcpFlags, true),
    e(NXM_NX, 109, 16, TunIpv6Src, true),
    e(NXM_NX, 110, 16, TunIpv6Dst, true),
    ec(OXM_BASIC, 0, 4, InPort, false, Conv::Port32),
    e(OXM_BASIC, 2, 8, Metadata, true),
    e(OXM_BASIC, 3, 6, EthDst, true),
    e(OXM_BASIC, 4, 6, EthSrc, true),
    e(OXM_BASIC, 5, 2, EthType, false),
    ec(OXM_BASIC, 6, 2, VlanVid, true, Conv::VlanVid),
    ec(OXM_BASIC, 7, 1, DlVlanPcp, false, Conv::VlanPcp),
    e(OXM_BASIC, 8, 1, IpDscp, false),
    e(OXM_BASIC, 9, 1, IpEcn, false),
    e(OXM_BASIC, 10, 1, IpProto, false),
    e(OXM_BASIC, 11, 4, Ipv4Src, true),
    e(OXM_BASIC, 12, 4, Ipv4Dst, true),
    e(OXM_BASIC, 13, 2, TcpSrc, true),
    e(OXM_BASIC, 14, 2, TcpDst, true),
    e(OXM_BASIC, 15, 2, UdpSrc, true),
    e(OXM_BASIC, 16, 2, UdpDst, true),
    e(OXM_BASIC, 17, 2, SctpSrc, true),
    e(OXM_BASIC, 18, 2, SctpDst, true),
    e(OXM_BASIC, 19, 1, IcmpType, false),
    e(OXM_BASIC, 20, 1, IcmpCode, false),
    e(OXM_BASIC, 21, 2, ArpOp, false),
    e(OXM_BASIC, 22, 4, ArpSpa, true),
    e(OXM_BASIC, 23, 4, ArpTpa, true),
    e(OXM_BASIC, 24, 6, ArpSha, true),
    e(OXM_BASIC, 25, 6, ArpTha, true),
    e(OXM_BASIC, 26, 16, Ipv6Src, true),
    e(OXM_BASIC, 27, 16, Ipv6Dst, true),
    e(OXM_BASIC, 28, 4, Ipv6Label, true),
    e(OXM_BASIC, 29, 1, Icmpv6Type, false),
    e(OXM_BASIC, 30, 1, Icmpv6Code, false),
    e(OXM_BASIC, 31, 16, NdTarget, true),
    e(OXM_BASIC, 32, 6, NdSll, true),
    e(OXM_BASIC, 33, 6, NdTll, true),
    e(OXM_BASIC, 38, 8, TunId, true),
];

/// A TLV header: class, field, has-mask, payload length.
pub fn header(class: u16, field: u8, hasmask: bool, len: u8) -> u32 {
    (class as u32) << 16 | (field as u32) << 9 | (hasmask as u32) << 8 | len as u32
}

fn find(class: u16, field: u8) -> Option<&'static Entry> {
    ENTRIES
        .iter()
        .find(|e| e.class == class && e.field == field)
}

/// The entry fvs writes for `id` (OXM preferred when `oxm`).
fn entry_for(id: FieldId, oxm: bool) -> Option<&'static Entry> {
    let pick = |class: u16| ENTRIES.iter().find(|e| e.id == id && e.class == class);
    if oxm {
        pick(OXM_BASIC)
            .or_else(|| pick(NXM_OF))
            .or_else(|| pick(NXM_NX))
    } else {
        pick(NXM_OF)
            .or_else(|| pick(NXM_NX))
            .or_else(|| pick(OXM_BASIC))
    }
}

/// The field an NXM/OXM header names (for `load`, `move`, `set_field`),
/// with its wire width in bytes.
pub fn field_of_header(h: u32) -> Option<(FieldId, usize)> {
    let e = find((h >> 16) as u16, ((h >> 9) & 0x7f) as u8)?;
    match e.conv {
        Conv::Plain => Some((e.id, e.len as usize)),
        // Subfield actions on OXM's in_port/vlan fields: not supported.
        _ => None,
    }
}

/// The NXM header (no mask) that names `id` in `load`/`move` actions.
pub fn header_of_field(id: FieldId) -> Option<u32> {
    let e = ENTRIES
        .iter()
        .find(|e| e.id == id && e.class != OXM_BASIC && e.conv == Conv::Plain)
        .or_else(|| ENTRIES.iter().find(|e| e.id == id && e.conv == Conv::Plain))?;
    Some(header(e.class, e.field, false, e.len))
}

fn be_value(b: &[u8]) -> u128 {
    b.iter().fold(0u128, |a, &x| (a << 8) | x as u128)
}

fn put_value(w: &mut Writer, v: u128, len: usize) {
    for i in (0..len).rev() {
        w.u8((v >> (8 * i)) as u8);
    }
}

/// An OpenFlow 1.1+ port number as fvs's 16-bit one.
pub fn port_from_32(p: u32) -> Option<u16> {
    if p >= 0xffff_ff00 {
        Some((p - 0xffff_0000) as u16)
    } else if p < 0xff00 {
        Some(p as u16)
    } else {
        None
    }
}

/// fvs's 16-bit port number as OpenFlow 1.1+'s.
pub fn port_to_32(p: u16) -> u32 {
    if p >= 0xff00 {
        0xffff_0000 | p as u32
    } else {
        p as u32
    }
}

/// One decoded set-field/load argument: the field, its value and mask in
/// field position (right-aligned).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FieldValue {
    pub id: FieldId,
    pub value: u128,
    pub mask: u128,
}

/// Reads one entry (header, value, optional mask) from `r`; errors as for a
/// match (`set_field` maps them to its own).
pub fn read_entry(r: &mut Reader<'_>) -> Result<FieldValue, OfpErr> {
    let h = r.u32().map_err(|_| OfpErr::BmcBadLen)?;
    let class = (h >> 16) as u16;
    let field = ((h >> 9) & 0x7f) as u8;
    let hasmask = (h >> 8) & 1 == 1;
    let len = (h & 0xff) as usize;
    let payload = r.bytes(len).map_err(|_| OfpErr::BmcBadLen)?;
    if class == OXM_EXPERIMENTER {
        return Err(OfpErr::BadField);
    }
    let ent = find(class, field).ok_or(OfpErr::BadField)?;
    let wlen = ent.len as usize;
    if len != if hasmask { 2 * wlen } else { wlen } {
        return Err(OfpErr::BmcBadLen);
    }
    if hasmask && !ent.maskable {
        return Err(OfpErr::BadMask);
    }
    let value = be_value(&payload[..wlen]);
    let wire_all = if wlen >= 16 {
        u128::MAX
    } else {
        (1u128 << (8 * wlen)) - 1
    };
    let mask = if hasmask {
        be_value(&payload[wlen..])
    } else {
        wire_all
    };
    if value & !mask != 0 {
        return Err(OfpErr::BadWildcards);
    }
    let def = ent.id.def();
    let (value, mask) = match ent.conv {
        Conv::Port32 => (
            port_from_32(value as u32).ok_or(OfpErr::BadValue)? as u128,
            0xffff,
        ),
        Conv::Plain | Conv::VlanPcp => {
            if value & !def.value_mask() != 0 {
                return Err(OfpErr::BadValue);
            }
            (value, mask & def.value_mask())
        }
        Conv::VlanVid => {
            // A VID without OFPVID_PRESENT (other than NONE, 0) is malformed.
            if !hasmask && value & 0x1000 == 0 && value != 0 {
                return Err(OfpErr::BadValue);
            }
            if value & !0x1fff != 0 {
                return Err(OfpErr::BadValue);
            }
            (value, mask & 0x1fff)
        }
    };
    Ok(FieldValue {
        id: ent.id,
        value,
        mask,
    })
}

/// Adds a decoded entry to a match (errors: duplicate field).
fn apply(m: &mut Match, fv: &FieldValue) -> Result<(), OfpErr> {
    let (_, old) = m.get(fv.id);
    if old & fv.mask != 0 || (old != 0 && fv.mask == 0) {
        return Err(OfpErr::DupField);
    }
    if fv.id == DlVlanPcp {
        // A PCP match implies a tag (OVS's match_set_dl_vlan_pcp).
        let (t, tm) = m.get(VlanTci);
        m.set_masked(VlanTci, t | 0x1000, tm | 0x1000);
    }
    let (v, mm) = m.get(fv.id);
    m.set_masked(fv.id, v | fv.value, mm | fv.mask);
    Ok(())
}

/// Decodes the entries of `bytes` (no padding) into a match.
pub fn decode_entries(bytes: &[u8]) -> Result<Match, OfpErr> {
    let mut r = Reader::new(bytes, OfpErr::BmcBadLen);
    let mut m = Match::catchall();
    let mut ids = Vec::new();
    while !r.is_empty() {
        let fv = read_entry(&mut r)?;
        apply(&mut m, &fv)?;
        ids.push(fv.id);
    }
    // Each entry's own prerequisites, as OVS checks them: where fields share
    // bytes (L4 ports, ICMP type and code), the entry must be the one that
    // applies (a masked UDP port on ICMP would be a masked ICMP type, which
    // no OXM field can say).
    for id in ids {
        let p = id.def().prereq;
        if p != Prereq::None && !prereq_met(p, &m.flow) {
            return Err(OfpErr::BadPrereq);
        }
    }
    Ok(m)
}

/// Decodes an NXM match of `match_len` bytes followed by padding to 8.
pub fn decode_nxm(r: &mut Reader<'_>, match_len: usize) -> Result<Match, OfpErr> {
    let padded = match_len.div_ceil(8) * 8;
    let bytes = r.bytes(padded).map_err(|_| OfpErr::BadLen)?;
    decode_entries(&bytes[..match_len])
}

/// Decodes an `ofp_match` of type OXM (OpenFlow 1.2+) with its padding.
pub fn decode_oxm_match(r: &mut Reader<'_>) -> Result<Match, OfpErr> {
    let t = r.u16().map_err(|_| OfpErr::BmcBadLen)?;
    let len = r.u16().map_err(|_| OfpErr::BmcBadLen)? as usize;
    if t != 1 {
        return Err(OfpErr::BmcBadType);
    }
    if len < 4 {
        return Err(OfpErr::BmcBadLen);
    }
    let padded = len.div_ceil(8) * 8;
    let bytes = r.bytes(padded - 4).map_err(|_| OfpErr::BmcBadLen)?;
    decode_entries(&bytes[..len - 4])
}

fn emit(w: &mut Writer, ent: &Entry, value: u128, mask: u128, full: u128) {
    let len = ent.len as usize;
    let masked = ent.maskable && mask != full;
    w.u32(header(
        ent.class,
        ent.field,
        masked,
        if masked { 2 * len } else { len } as u8,
    ));
    put_value(w, value & mask, len);
    if masked {
        put_value(w, mask, len);
    }
}

/// Encodes one entry for `id` = `value`/`mask` (OXM where it has one when
/// `oxm`); false if the field has no wire encoding.
pub fn encode_field(w: &mut Writer, id: FieldId, value: u128, mask: u128, oxm: bool) -> bool {
    let Some(ent) = entry_for(id, oxm) else {
        return false;
    };
    if ent.conv == Conv::Port32 {
        w.u32(header(OXM_BASIC, 0, false, 4))
            .u32(port_to_32(value as u16));
        return true;
    }
    let full = match ent.conv {
        Conv::VlanVid => 0x1fff,
        _ => id.def().value_mask(),
    };
    let mask = if ent.maskable { mask & full } else { full };
    emit(w, ent, value, mask, full);
    true
}

/// The field of `ids` that applies to the match (its prerequisites hold).
fn applicable(m: &Match, ids: &[FieldId]) -> Option<FieldId> {
    ids.iter()
        .copied()
        .find(|&id| prereq_met(id.def().prereq, &m.flow))
}

/// Encodes a match's entries (no padding); OXM entries first when `oxm`.
pub fn encode_entries(m: &Match, oxm: bool, w: &mut Writer) {
    let put = |w: &mut Writer, id: FieldId| {
        let (v, mask) = m.get(id);
        if mask == 0 {
            return;
        }
        if let Some(ent) = entry_for(id, oxm) {
            let full = id.def().value_mask();
            let mask = if ent.maskable { mask } else { full };
            emit(w, ent, v, mask, full);
        }
    };
    let (_, pmask) = m.get(InPort);
    if pmask != 0 {
        let (p, _) = m.get(InPort);
        if oxm {
            w.u32(header(OXM_BASIC, 0, false, 4))
                .u32(port_to_32(p as u16));
        } else {
            w.u32(header(NXM_OF, 0, false, 2)).u16(p as u16);
        }
    }
    put(w, EthDst);
    put(w, EthSrc);
    put(w, EthType);
    encode_vlan(m, oxm, w);
    // Fields sharing bytes: the one whose prerequisites the match meets.
    let slots: &[&[FieldId]] = &[
        &[IpProto, ArpOp],
        &[Ipv4Src, ArpSpa],
        &[Ipv4Dst, ArpTpa],
        &[ArpSha, NdSll],
        &[ArpTha, NdTll],
        &[TcpSrc, UdpSrc, SctpSrc, IcmpType, Icmpv6Type],
        &[TcpDst, UdpDst, SctpDst, IcmpCode, Icmpv6Code],
    ];
    if prereq_met(Prereq::IpAny, &m.flow) {
        let (tos, tmask) = m.get(IpTos);
        if tmask != 0 {
            if oxm {
                w.u32(header(OXM_BASIC, 8, false, 1)).u8((tos >> 2) as u8);
            } else {
                w.u32(header(NXM_OF, 5, false, 1)).u8(tos as u8);
            }
        }
        put(w, IpEcn);
        put(w, IpTtl);
        put(w, IpFrag);
    }
    for ids in slots {
        if let Some(id) = applicable(m, ids) {
            put(w, id);
        }
    }
    for id in [Ipv6Src, Ipv6Dst, Ipv6Label, NdTarget, TcpFlags] {
        if prereq_met(id.def().prereq, &m.flow) {
            put(w, id);
        }
    }
    for id in [TunId, TunSrc, TunDst, TunIpv6Src, TunIpv6Dst, Metadata] {
        put(w, id);
    }
    for n in 0..16 {
        if let Some(r) = FieldId::reg(n) {
            put(w, r);
        }
    }
}

fn encode_vlan(m: &Match, oxm: bool, w: &mut Writer) {
    let (tci, mask) = m.get(VlanTci);
    let (tci, mask) = (tci as u16, mask as u16);
    if mask == 0 {
        return;
    }
    let nxm_tci = |w: &mut Writer| {
        let full = mask == 0xffff;
        w.u32(header(NXM_OF, 4, !full, if full { 2 } else { 4 }))
            .u16(tci);
        if !full {
            w.u16(mask);
        }
    };
    if !oxm {
        return nxm_tci(w);
    }
    let cfi_exact = mask & 0x1000 != 0;
    let pcp_mask = mask & 0xe000;
    let vid_mask = mask & 0x1fff;
    if cfi_exact && tci & 0x1000 == 0 {
        if tci & mask != 0 {
            // Matches nothing (an absent tag's TCI is 0): only NXM says so.
            return nxm_tci(w);
        }
        // No tag: OFPVID_NONE (the PCP of an absent tag is implied), as OVS
        // sends it; it decodes as 0x0000/0x1fff, the same packets.
        w.u32(header(OXM_BASIC, 6, false, 2)).u16(0);
        return;
    }
    let pcp_ok = pcp_mask == 0 || (pcp_mask == 0xe000 && cfi_exact && tci & 0x1000 != 0);
    if !pcp_ok {
        return nxm_tci(w);
    }
    if vid_mask != 0 {
        let full = vid_mask == 0x1fff;
        w.u32(header(OXM_BASIC, 6, !full, if full { 2 } else { 4 }))
            .u16(tci & 0x1fff);
        if !full {
            w.u16(vid_mask);
        }
    }
    if pcp_mask != 0 {
        w.u32(header(OXM_BASIC, 7, false, 1)).u8((tci >> 13) as u8);
    }
}

/// Encodes an `ofp_match` of type OXM with its padding to 8 bytes.
pub fn encode_oxm_match(m: &Match, w: &mut Writer) {
    let start = w.len();
    w.u16(1).u16(0);
    encode_entries(m, true, w);
    let len = w.len() - start;
    w.put_u16_at(start + 2, len as u16);
    w.pad_to(start, 8);
}

/// Encodes an NXM match; returns its length before padding (the padding
/// to 8 bytes is written too).
pub fn encode_nxm(m: &Match, w: &mut Writer) -> usize {
    let start = w.len();
    encode_entries(m, false, w);
    let len = w.len() - start;
    w.pad_to(start, 8);
    len
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::syntax::parse_match;

    fn round(s: &str) {
        let m = parse_match(s, None).expect("parse").0;
        for oxm in [false, true] {
            let mut w = Writer::new();
            encode_entries(&m, oxm, &mut w);
            let back = decode_entries(&w.buf).unwrap_or_else(|e| panic!("{s} ({oxm}): {e}"));
            assert_eq!(back.flow.and(&back.mask), m.flow.and(&m.mask), "{s} {oxm}");
        }
    }

    #[test]
    fn matches_round_trip() {
        for s in [
            "in_port=3",
            "ip,nw_src=10.0.0.0/8,nw_dst=1.2.3.4",
            "tcp,tp_src=80,tp_dst=0x100/0xff00",
            "arp,arp_op=2,arp_spa=1.1.1.1,arp_sha=00:11:22:33:44:55",
            "icmp,icmp_type=8,icmp_code=0",
            "ipv6,ipv6_src=2001:db8::/32",
            "icmp6,icmp_type=135,nd_target=fe80::1",
            "dl_vlan=5,dl_vlan_pcp=3",
            "reg0=5,reg3=0x10/0xf0,metadata=0x1/0x1,tun_id=7",
            "ip,nw_tos=8,nw_ecn=1,nw_ttl=3",
        ] {
            round(s);
        }
    }

    /// OXM has one way to say "no tag" (OFPVID_NONE), used as OVS uses
    /// it; a TCI match no packet satisfies keeps its meaning through NXM.
    #[test]
    fn absent_vlan_tag_in_oxm() {
        let m = parse_match("vlan_tci=0", None).expect("parse").0;
        let mut w = Writer::new();
        encode_entries(&m, true, &mut w);
        assert_eq!(w.buf, [0x80, 0, 0x0c, 2, 0, 0]);
        let back = decode_entries(&w.buf).expect("decode");
        assert_eq!(back.get(VlanTci), (0, 0x1fff));
        round("vlan_tci=0x0005/0x1fff");
        round("vlan_tci=0x2000/0xf000");
    }

    #[test]
    fn bad_entries() {
        let mut w = Writer::new();
        // OXM ETH_TYPE with a mask: not maskable.
        w.u32(header(OXM_BASIC, 5, true, 4)).u16(0x800).u16(0xffff);
        assert_eq!(decode_entries(&w.buf), Err(OfpErr::BadMask));
        let mut w = Writer::new();
        w.u32(header(OXM_BASIC, 11, false, 4)).u32(1);
        assert_eq!(decode_entries(&w.buf), Err(OfpErr::BadPrereq));
        let mut w = Writer::new();
        w.u32(header(OXM_BASIC, 5, false, 2)).u16(0x800);
        w.u32(header(OXM_BASIC, 5, false, 2)).u16(0x800);
        assert_eq!(decode_entries(&w.buf), Err(OfpErr::DupField));
        let mut w = Writer::new();
        w.u32(header(OXM_BASIC, 35, false, 1)).u8(0);
        assert_eq!(decode_entries(&w.buf), Err(OfpErr::BadField));
        assert_eq!(decode_entries(&[0x80, 0, 10]), Err(OfpErr::BmcBadLen));
        // A UDP port on ICMP (the bytes of the ICMP type): refused, as OVS does.
        let icmp = |w: &mut Writer| {
            w.u32(header(OXM_BASIC, 5, false, 2)).u16(0x800);
            w.u32(header(OXM_BASIC, 10, false, 1)).u8(1);
        };
        let mut w = Writer::new();
        icmp(&mut w);
        w.u32(header(NXM_OF, 11, true, 4)).u16(2).u16(2);
        assert_eq!(decode_entries(&w.buf), Err(OfpErr::BadPrereq));
        let mut w = Writer::new();
        icmp(&mut w);
        w.u32(header(OXM_BASIC, 19, false, 1)).u8(2);
        assert!(decode_entries(&w.buf).is_ok());
    }
}
