//! OpenFlow 1.0's fixed `ofp_match` (40 bytes of wildcards and fields), as
//! OVS converts it (`ofputil_match_from_ofp10_match()` and back).

use super::error::OfpErr;
use super::wire::{Reader, Writer};
use crate::fields::{FieldId, Prereq};
use crate::flow::Match;
use crate::syntax::prereq_met;

pub const MATCH10_LEN: usize = 40;

const FW_IN_PORT: u32 = 1 << 0;
const FW_DL_VLAN: u32 = 1 << 1;
const FW_DL_SRC: u32 = 1 << 2;
const FW_DL_DST: u32 = 1 << 3;
const FW_DL_TYPE: u32 = 1 << 4;
const FW_NW_PROTO: u32 = 1 << 5;
const FW_TP_SRC: u32 = 1 << 6;
const FW_TP_DST: u32 = 1 << 7;
const FW_NW_SRC_SHIFT: u32 = 8;
const FW_NW_DST_SHIFT: u32 = 14;
const FW_DL_VLAN_PCP: u32 = 1 << 20;
const FW_NW_TOS: u32 = 1 << 21;
pub const FW_ALL: u32 = (1 << 22) - 1;
const VLAN_NONE: u16 = 0xffff;

fn mac_u128(m: [u8; 6]) -> u128 {
    m.iter().fold(0u128, |a, &b| (a << 8) | b as u128)
}

fn mac_bytes(v: u128) -> [u8; 6] {
    let b = (v as u64).to_be_bytes();
    [b[2], b[3], b[4], b[5], b[6], b[7]]
}

fn cidr_mask(wild_bits: u32) -> u128 {
    if wild_bits >= 32 {
        0
    } else {
        (u32::MAX << wild_bits) as u128
    }
}

/// Decodes a 40-byte `ofp_match`.
pub fn decode(r: &mut Reader<'_>) -> Result<Match, OfpErr> {
    let mut r = r.sub(MATCH10_LEN).map_err(|_| OfpErr::BadLen)?;
    let wc = r.u32()?;
    let in_port = r.u16()?;
    let dl_src: [u8; 6] = r.array()?;
    let dl_dst: [u8; 6] = r.array()?;
    let dl_vlan = r.u16()?;
    let pcp = r.u8()?;
    r.skip(1)?;
    let dl_type = r.u16()?;
    let tos = r.u8()?;
    let proto = r.u8()?;
    r.skip(2)?;
    let nw_src = r.u32()?;
    let nw_dst = r.u32()?;
    let tp_src = r.u16()?;
    let tp_dst = r.u16()?;

    let mut m = Match::catchall();
    use FieldId::*;
    if wc & FW_IN_PORT == 0 {
        m.set_exact(InPort, in_port as u128);
    }
    if wc & FW_DL_SRC == 0 {
        m.set_exact(EthSrc, mac_u128(dl_src));
    }
    if wc & FW_DL_DST == 0 {
        m.set_exact(EthDst, mac_u128(dl_dst));
    }
    if wc & FW_DL_TYPE == 0 {
        m.set_exact(EthType, dl_type as u128);
    }
    // VLANs as OVS reads them.
    if wc & FW_DL_VLAN == 0 && dl_vlan == VLAN_NONE {
        m.set_masked(VlanTci, 0, 0xffff);
    } else {
        let mut tmask = 0u16;
        if wc & FW_DL_VLAN_PCP == 0 {
            tmask |= 0xe000 | 0x1000;
        }
        if wc & FW_DL_VLAN == 0 {
            tmask |= 0x0fff | 0x1000;
        }
        let tci = (dl_vlan & 0x0fff) | ((pcp as u16) << 13 & 0xe000) | 0x1000;
        if tmask != 0 {
            m.set_masked(VlanTci, (tci & tmask) as u128, tmask as u128);
        }
    }
    let ip = prereq_met(Prereq::IpAny, &m.flow);
    let arp = prereq_met(Prereq::Arp, &m.flow);
    if ip || arp {
        if wc & FW_NW_PROTO == 0 {
            m.set_exact(IpProto, proto as u128);
        }
        let src_mask = cidr_mask((wc >> FW_NW_SRC_SHIFT) & 0x3f);
        let dst_mask = cidr_mask((wc >> FW_NW_DST_SHIFT) & 0x3f);
        if src_mask != 0 {
            m.set_masked(Ipv4Src, nw_src as u128, src_mask);
        }
        if dst_mask != 0 {
            m.set_masked(Ipv4Dst, nw_dst as u128, dst_mask);
        }
    }
    if ip && wc & FW_NW_TOS == 0 {
        m.set_exact(IpTos, (tos & 0xfc) as u128);
    }
    let l4 = prereq_met(Prereq::Tcp, &m.flow)
        || prereq_met(Prereq::Udp, &m.flow)
        || prereq_met(Prereq::Sctp, &m.flow);
    let icmp = prereq_met(Prereq::Icmpv4, &m.flow);
    if l4 {
        if wc & FW_TP_SRC == 0 {
            m.set_exact(TcpSrc, tp_src as u128);
        }
        if wc & FW_TP_DST == 0 {
            m.set_exact(TcpDst, tp_dst as u128);
        }
    } else if icmp {
        if wc & FW_TP_SRC == 0 {
            m.set_exact(IcmpType, (tp_src & 0xff) as u128);
        }
        if wc & FW_TP_DST == 0 {
            m.set_exact(IcmpCode, (tp_dst & 0xff) as u128);
        }
    }
    Ok(m)
}

fn cidr_bits(mask: u32) -> Option<u32> {
    let wild = mask.trailing_zeros().min(32);
    let expect = if wild >= 32 { 0 } else { u32::MAX << wild };
    (expect == mask).then_some(wild)
}

/// Encodes a match as an `ofp_match` (lossy, as OVS's: what OpenFlow 1.0
/// cannot express is left out). Returns whether it was exact.
pub fn encode(m: &Match, w: &mut Writer) -> bool {
    use FieldId::*;
    let mut exact = true;
    let mut wc = FW_ALL;
    let g = |id| m.get(id);
    let (in_port, pm) = g(InPort);
    if pm != 0 {
        wc &= !FW_IN_PORT;
    }
    let (src, sm) = g(EthSrc);
    if sm == 0xffff_ffff_ffff {
        wc &= !FW_DL_SRC;
    } else if sm != 0 {
        exact = false;
    }
    let (dst, dm) = g(EthDst);
    if dm == 0xffff_ffff_ffff {
        wc &= !FW_DL_DST;
    } else if dm != 0 {
        exact = false;
    }
    let (dl_type, tm) = g(EthType);
    if tm != 0 {
        wc &= !FW_DL_TYPE;
    }
    let (tci, tcim) = g(VlanTci);
    let (tci, tcim) = (tci as u16, tcim as u16);
    let (mut dl_vlan, mut pcp) = (0u16, 0u8);
    if tcim == 0 {
    } else if tcim & 0x1000 != 0 && tci & 0x1000 == 0 {
        wc &= !FW_DL_VLAN;
        dl_vlan = VLAN_NONE;
    } else {
        if tcim & 0x0fff != 0 {
            wc &= !FW_DL_VLAN;
            dl_vlan = tci & 0x0fff;
        }
        if tcim & 0xe000 != 0 {
            wc &= !FW_DL_VLAN_PCP;
            pcp = (tci >> 13) as u8;
        }
    }
    let (proto, prm) = g(IpProto);
    if prm != 0 {
        wc &= !FW_NW_PROTO;
    }
    let (tos, tosm) = g(IpTos);
    if tosm != 0 {
        wc &= !FW_NW_TOS;
    }
    let mut nw = |id: FieldId, shift: u32, wc: &mut u32| -> u32 {
        let (v, mask) = g(id);
        match cidr_bits(mask as u32) {
            Some(bits) => {
                *wc = (*wc & !(0x3f << shift)) | (bits.min(32) << shift);
                v as u32
            }
            None => {
                exact = false;
                0
            }
        }
    };
    let nw_src = nw(Ipv4Src, FW_NW_SRC_SHIFT, &mut wc);
    let nw_dst = nw(Ipv4Dst, FW_NW_DST_SHIFT, &mut wc);
    let (tp_src, tsm) = g(TcpSrc);
    let (tp_dst, tdm) = g(TcpDst);
    if tsm != 0 {
        wc &= !FW_TP_SRC;
    }
    if tdm != 0 {
        wc &= !FW_TP_DST;
    }
    w.u32(wc)
        .u16(in_port as u16)
        .bytes(&mac_bytes(src))
        .bytes(&mac_bytes(dst))
        .u16(dl_vlan)
        .u8(pcp)
        .u8(0)
        .u16(dl_type as u16)
        .u8(tos as u8)
        .u8(proto as u8)
        .u16(0)
        .u32(nw_src)
        .u32(nw_dst)
        .u16(tp_src as u16)
        .u16(tp_dst as u16);
    exact
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::syntax::parse_match;

    #[test]
    fn round_trip() {
        for s in [
            "",
            "in_port=1",
            "ip,nw_src=10.0.0.0/8,nw_tos=4",
            "tcp,tp_dst=80",
            "dl_vlan=0xffff",
            "dl_vlan=5,dl_vlan_pcp=2",
            "arp,arp_op=1,arp_spa=1.2.3.4",
            "icmp,icmp_type=8",
            "dl_src=00:11:22:33:44:55,dl_type=0x88cc",
        ] {
            let m = parse_match(s, None).expect("parse").0;
            let mut w = Writer::new();
            assert!(encode(&m, &mut w), "{s}");
            assert_eq!(w.len(), MATCH10_LEN);
            let back = decode(&mut Reader::new(&w.buf, OfpErr::BadLen)).expect("decode");
            assert_eq!(back, m, "{s}");
        }
    }
}
