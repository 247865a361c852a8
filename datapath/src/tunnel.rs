//! VXLAN (RFC 7348) encapsulation and decapsulation, as OVS's userspace
//! datapath does them (`tnl_push` / `tnl_pop`).
//!
//! The outer Ethernet/IP/UDP/VXLAN header of a tunnel is built once, when a
//! flow is translated ([`TnlHeader::vxlan`]), and stored in the flow's
//! [`TnlPush`] action. Per packet, [`push`] copies it into the packet's
//! headroom and fixes the lengths, the IPv4 header checksum (incrementally,
//! from the template's), the UDP source port (from the flow hash, for ECMP
//! entropy) and, where the tunnel wants one, the UDP checksum. Nothing is
//! allocated, locked or asked of the kernel.
//!
//! [`pop`] checks every outer header of a received packet with checked
//! accessors (lengths, versions, the IPv4 header checksum, fragments, the
//! UDP length and checksum, the VXLAN flags) before it strips them and
//! records the tunnel metadata; a packet that fails any check is the
//! caller's to drop and count.

use std::net::IpAddr;

use crate::csum;
use crate::key::{ETH_TYPE_IP, ETH_TYPE_IPV6, IPPROTO_UDP, TUN_FLAG_PRESENT};
use crate::packet::{Packet, TunnelMeta, NO_OFS};

/// Tunnel flag: the outer IPv4 header had "don't fragment" set (OVS's
/// `FLOW_TNL_F_DONT_FRAGMENT`).
pub const TUN_FLAG_DF: u16 = 0x0001;
/// Tunnel flag: the outer UDP header carried a checksum (`FLOW_TNL_F_CSUM`).
pub const TUN_FLAG_CSUM: u16 = 0x0002;
/// Tunnel flag: the tunnel has a key (VXLAN always: its VNI) (`FLOW_TNL_F_KEY`).
pub const TUN_FLAG_KEY: u16 = 0x0004;
/// The flags OVS shows and matches (`FLOW_TNL_PUB_F_MASK` without OAM).
pub const TUN_FLAGS_PUBLIC: u16 = TUN_FLAG_DF | TUN_FLAG_CSUM | TUN_FLAG_KEY;

/// The VXLAN flags word with only the "VNI present" (I) bit.
pub const VXLAN_FLAGS: u32 = 0x0800_0000;
/// The IANA VXLAN port.
pub const VXLAN_PORT: u16 = 4789;
/// OVS's `type` of a VXLAN `tnl_push` header (`OVS_VPORT_TYPE_VXLAN`).
pub const OVS_VPORT_TYPE_VXLAN: u32 = 4;

pub const ETH_LEN: usize = 14;
pub const IPV4_LEN: usize = 20;
pub const IPV6_LEN: usize = 40;
pub const UDP_LEN: usize = 8;
pub const VXLAN_LEN: usize = 8;
/// The longest outer header: Ethernet, IPv6, UDP, VXLAN.
pub const MAX_HEADER: usize = ETH_LEN + IPV6_LEN + UDP_LEN + VXLAN_LEN;
/// Outer header bytes in front of the inner frame, by underlay family.
pub const VXLAN_IPV4_OVERHEAD: usize = ETH_LEN + IPV4_LEN + UDP_LEN + VXLAN_LEN;
pub const VXLAN_IPV6_OVERHEAD: usize = MAX_HEADER;

/// The UDP source port range (OVS's `tnl_udp_port_min`/`max`).
pub const UDP_SRC_MIN: u16 = 32768;
pub const UDP_SRC_MAX: u16 = 61000;

const IP_DF: u16 = 0x4000;
const IP_MF: u16 = 0x2000;
const IP_FRAG_OFS: u16 = 0x1fff;

/// What goes into a tunnel's outer header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeaderParams {
    pub eth_src: [u8; 6],
    pub eth_dst: [u8; 6],
    /// Outer source and destination: both IPv4 or both IPv6.
    pub ip_src: IpAddr,
    pub ip_dst: IpAddr,
    /// IPv4 TOS / IPv6 traffic class.
    pub tos: u8,
    /// IPv4 TTL / IPv6 hop limit.
    pub ttl: u8,
    /// IPv4 "don't fragment" (ignored for IPv6, which never fragments in flight).
    pub df: bool,
    pub dst_port: u16,
    /// The 24-bit VNI.
    pub vni: u32,
    /// Compute a UDP checksum per packet (always for IPv6).
    pub udp_csum: bool,
}

/// Why a header could not be built.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    /// The outer source and destination are of different families.
    #[error("tunnel source and destination addresses are of different families")]
    MixedFamilies,
    /// VXLAN network identifiers have 24 bits.
    #[error("VNI {0:#x} does not fit in 24 bits")]
    VniTooLarge(u64),
}

/// A prebuilt outer header (template) of a tunnel.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TnlHeader {
    bytes: [u8; MAX_HEADER],
    len: u8,
    ipv6: bool,
    udp_csum: bool,
    /// The IPv4 header checksum of the template (total length zero).
    ip_csum: u16,
    /// One's-complement sum of the pseudo-header addresses and protocol.
    pseudo_sum: u32,
}

impl std::fmt::Debug for TnlHeader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TnlHeader(")?;
        for b in self.bytes() {
            write!(f, "{b:02x}")?;
        }
        write!(f, ")")
    }
}

impl TnlHeader {
    /// The outer header of a VXLAN tunnel.
    pub fn vxlan(p: &HeaderParams) -> Result<TnlHeader, HeaderError> {
        if p.vni > 0x00ff_ffff {
            return Err(HeaderError::VniTooLarge(u64::from(p.vni)));
        }
        let mut b = [0u8; MAX_HEADER];
        b[0..6].copy_from_slice(&p.eth_dst);
        b[6..12].copy_from_slice(&p.eth_src);
        let (l4, ipv6, ip_csum, pseudo_sum) = match (p.ip_src, p.ip_dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                b[12..14].copy_from_slice(&ETH_TYPE_IP.to_be_bytes());
                let ip = &mut b[ETH_LEN..ETH_LEN + IPV4_LEN];
                ip[0] = 0x45;
                ip[1] = p.tos;
                // Total length (2..4) and identification (4..6) stay zero.
                let frag = if p.df { IP_DF } else { 0 };
                ip[6..8].copy_from_slice(&frag.to_be_bytes());
                ip[8] = p.ttl;
                ip[9] = IPPROTO_UDP;
                ip[12..16].copy_from_slice(&s.octets());
                ip[16..20].copy_from_slice(&d.octets());
                let c = csum::checksum(ip);
                ip[10..12].copy_from_slice(&c.to_be_bytes());
                let pseudo = csum::sum16(csum::sum16(IPPROTO_UDP as u32, &s.octets()), &d.octets());
                (ETH_LEN + IPV4_LEN, false, c, pseudo)
            }
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                b[12..14].copy_from_slice(&ETH_TYPE_IPV6.to_be_bytes());
                let ip = &mut b[ETH_LEN..ETH_LEN + IPV6_LEN];
                let vtcfl = (6u32 << 28) | (u32::from(p.tos) << 20);
                ip[0..4].copy_from_slice(&vtcfl.to_be_bytes());
                ip[6] = IPPROTO_UDP;
                ip[7] = p.ttl;
                ip[8..24].copy_from_slice(&s.octets());
                ip[24..40].copy_from_slice(&d.octets());
                let pseudo = csum::sum16(csum::sum16(IPPROTO_UDP as u32, &s.octets()), &d.octets());
                (ETH_LEN + IPV6_LEN, true, 0, pseudo)
            }
            _ => return Err(HeaderError::MixedFamilies),
        };
        let udp_csum = p.udp_csum || ipv6;
        let u = &mut b[l4..l4 + UDP_LEN];
        u[2..4].copy_from_slice(&p.dst_port.to_be_bytes());
        if udp_csum {
            // OVS marks a checksummed tunnel this way in its template.
            u[6..8].copy_from_slice(&0xffffu16.to_be_bytes());
        }
        let v = &mut b[l4 + UDP_LEN..l4 + UDP_LEN + VXLAN_LEN];
        v[0..4].copy_from_slice(&VXLAN_FLAGS.to_be_bytes());
        v[4..8].copy_from_slice(&(p.vni << 8).to_be_bytes());
        Ok(TnlHeader {
            bytes: b,
            len: (l4 + UDP_LEN + VXLAN_LEN) as u8,
            ipv6,
            udp_csum,
            ip_csum,
            pseudo_sum,
        })
    }

    /// The header bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes[..self.len as usize]
    }

    pub fn len(&self) -> usize {
        self.len as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn is_ipv6(&self) -> bool {
        self.ipv6
    }

    /// Offset of the UDP header.
    pub fn l4_ofs(&self) -> usize {
        if self.ipv6 {
            ETH_LEN + IPV6_LEN
        } else {
            ETH_LEN + IPV4_LEN
        }
    }

    /// Whether each packet gets a UDP checksum.
    pub fn udp_csum(&self) -> bool {
        self.udp_csum
    }

    /// The VNI the header carries.
    pub fn vni(&self) -> u32 {
        let v = self.l4_ofs() + UDP_LEN + 4;
        u32::from_be_bytes([
            self.bytes[v],
            self.bytes[v + 1],
            self.bytes[v + 2],
            self.bytes[v + 3],
        ]) >> 8
    }
}

/// The `tnl_push` datapath action: the tunnel's datapath port, its header,
/// and the underlay port the translation found (informational, as in OVS).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TnlPush {
    pub tnl_port: u32,
    pub out_port: u32,
    pub header: TnlHeader,
    /// Largest outer IP datagram (the underlay MTU): bigger ones are dropped.
    pub max_ip_len: u16,
}

/// Why a packet was not encapsulated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PushError {
    /// The encapsulated packet would exceed the underlay MTU.
    #[error("encapsulated packet exceeds the underlay MTU")]
    TooBig,
    /// Not enough headroom in the buffer for the outer header.
    #[error("not enough headroom for the tunnel header")]
    NoHeadroom,
}

/// The UDP source port for flow hash `hash` (OVS's formula: the hash
/// scaled into [`UDP_SRC_MIN`, `UDP_SRC_MAX`)).
#[inline(always)]
pub fn udp_src_port(hash: u32) -> u16 {
    let range = u64::from(UDP_SRC_MAX - UDP_SRC_MIN);
    ((u64::from(hash) * range) >> 32) as u16 + UDP_SRC_MIN
}

/// Encapsulates `pkt` with `p`'s header: a copy of the template into the
/// headroom plus the per-packet fields.
#[inline]
pub fn push(pkt: &mut Packet, p: &TnlPush) -> Result<(), PushError> {
    // One length per family, known when compiled: the template's copy and
    // the field writes become moves, without a memcpy call or bounds checks
    // (callgrind, vxlan_encap: 263 -> 231 instructions per packet).
    if p.header.ipv6 {
        push_fixed::<VXLAN_IPV6_OVERHEAD, true>(pkt, p)
    } else {
        push_fixed::<VXLAN_IPV4_OVERHEAD, false>(pkt, p)
    }
}

#[inline(always)]
fn push_fixed<const HL: usize, const V6: bool>(
    pkt: &mut Packet,
    p: &TnlPush,
) -> Result<(), PushError> {
    const {
        assert!(
            HL == if V6 {
                VXLAN_IPV6_OVERHEAD
            } else {
                VXLAN_IPV4_OVERHEAD
            }
        );
    }
    let h = &p.header;
    debug_assert_eq!(h.len as usize, HL);
    let total = pkt.len() + HL;
    let ip_len = total - ETH_LEN;
    if ip_len > p.max_ip_len as usize {
        return Err(PushError::TooBig);
    }
    let hash = pkt.meta().hash;
    let d = pkt.push_front(HL).map_err(|_| PushError::NoHeadroom)?;
    let Some((hd, inner)) = d.split_first_chunk_mut::<HL>() else {
        return Err(PushError::NoHeadroom);
    };
    hd.copy_from_slice(&h.bytes[..HL]);
    let l4 = if V6 {
        let payload = (total - ETH_LEN - IPV6_LEN) as u16;
        hd[ETH_LEN + 4..ETH_LEN + 6].copy_from_slice(&payload.to_be_bytes());
        ETH_LEN + IPV6_LEN
    } else {
        let len = ip_len as u16;
        hd[ETH_LEN + 2..ETH_LEN + 4].copy_from_slice(&len.to_be_bytes());
        let c = csum::update16(h.ip_csum, 0, len);
        hd[ETH_LEN + 10..ETH_LEN + 12].copy_from_slice(&c.to_be_bytes());
        ETH_LEN + IPV4_LEN
    };
    let udp_len = (total - l4) as u16;
    hd[l4..l4 + 2].copy_from_slice(&udp_src_port(hash).to_be_bytes());
    hd[l4 + 4..l4 + 6].copy_from_slice(&udp_len.to_be_bytes());
    if h.udp_csum {
        hd[l4 + 6..l4 + 8].fill(0);
        // The UDP and VXLAN headers (16 bytes: even, so the sum goes on
        // over the inner frame as if it were one slice).
        let sum = csum::sum16(
            csum::sum16(h.pseudo_sum + u32::from(udp_len), &hd[l4..]),
            inner,
        );
        let c = match csum::fold(sum) {
            0 => 0xffff,
            c => c,
        };
        hd[l4 + 6..l4 + 8].copy_from_slice(&c.to_be_bytes());
    }
    let m = pkt.meta_mut();
    m.l3_ofs = ETH_LEN as u16;
    m.l4_ofs = l4 as u16;
    Ok(())
}

/// Why a received tunnel packet was dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PopError {
    #[error("packet too short for its tunnel headers")]
    Truncated,
    #[error("outer header is not IPv4 or IPv6")]
    NotIp,
    #[error("bad outer IP header")]
    BadIpHeader,
    #[error("ip packet has invalid checksum")]
    BadIpChecksum,
    #[error("outer IP packet is a fragment")]
    Fragment,
    #[error("outer packet is not UDP")]
    NotUdp,
    #[error("bad UDP length")]
    BadUdpLength,
    #[error("bad UDP checksum")]
    BadUdpChecksum,
    #[error("dropping vxlan packet with invalid flags")]
    BadVxlanFlags,
}

#[inline(always)]
fn be16(d: &[u8], at: usize) -> Option<u16> {
    let b = d.get(at..at.checked_add(2)?)?;
    Some(u16::from_be_bytes([b[0], b[1]]))
}

#[inline(always)]
fn be32(d: &[u8], at: usize) -> Option<u32> {
    let b = d.get(at..at.checked_add(4)?)?;
    Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

/// What [`parse`] found in a VXLAN packet's outer headers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Parsed {
    pub tunnel: TunnelMeta,
    /// Bytes of outer headers in front of the inner frame.
    pub outer_len: usize,
    /// Length of the inner frame (the UDP payload less the VXLAN header).
    pub inner_len: usize,
}

/// Checks the outer headers of VXLAN packet `d` (its IP header at `l3`,
/// normally 14) and returns the tunnel metadata; touches nothing.
#[inline]
pub fn parse(d: &[u8], l3: usize) -> Result<Parsed, PopError> {
    match parse_plain_v4(d, l3) {
        Some(p) => Ok(p),
        None => parse_general(d, l3),
    }
}

/// [`parse`] of what nearly every VXLAN packet is (IPv4 without options or
/// fragmentation, no UDP checksum) from one fixed-size read of its 36
/// header bytes: what [`parse_general`] finds, in a third of its
/// instructions (callgrind). `None` for anything else or anything wrong,
/// which [`parse_general`] then judges.
#[inline(always)]
fn parse_plain_v4(d: &[u8], l3: usize) -> Option<Parsed> {
    const HDRS: usize = IPV4_LEN + UDP_LEN + VXLAN_LEN;
    let h: &[u8; HDRS] = d.get(l3..l3.checked_add(HDRS)?)?.try_into().ok()?;
    let be16 = |i: usize| u16::from_be_bytes([h[i], h[i + 1]]);
    let be32 = |i: usize| u32::from_be_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]);
    let sum: u32 = (0..IPV4_LEN).step_by(2).map(|i| u32::from(be16(i))).sum();
    let (tot, frag, udp_len) = (be16(2) as usize, be16(6), be16(24) as usize);
    let (flags, vni) = (be32(28), be32(32));
    let valid = h[0] == 0x45
        && h[9] == IPPROTO_UDP
        && csum::fold(sum) == 0
        && frag & (IP_MF | IP_FRAG_OFS) == 0
        && l3 + tot <= d.len()
        && udp_len >= UDP_LEN + VXLAN_LEN + ETH_LEN
        && IPV4_LEN + udp_len <= tot
        && be16(26) == 0
        && flags == VXLAN_FLAGS
        && vni & 0xff == 0;
    if !valid {
        return None;
    }
    let df = if frag & IP_DF != 0 { TUN_FLAG_DF } else { 0 };
    let at4 = |i: usize| [h[i], h[i + 1], h[i + 2], h[i + 3]];
    Some(Parsed {
        tunnel: TunnelMeta {
            tun_id: u64::from(vni >> 8),
            ipv4_src: at4(12),
            ipv4_dst: at4(16),
            tos: h[1],
            ttl: h[8],
            flags: TUN_FLAG_PRESENT | TUN_FLAG_KEY | df,
            tp_src: be16(20),
            tp_dst: be16(22),
            ..TunnelMeta::default()
        },
        outer_len: l3 + HDRS,
        inner_len: udp_len - UDP_LEN - VXLAN_LEN,
    })
}

/// [`parse`] for every packet shape (IPv6, IPv4 options, UDP checksums),
/// and the error for a bad one. Public for the checks that compare it
/// with [`parse`]'s fast path.
pub fn parse_general(d: &[u8], l3: usize) -> Result<Parsed, PopError> {
    let ver = d.get(l3).ok_or(PopError::Truncated)? >> 4;
    let mut t = TunnelMeta {
        flags: TUN_FLAG_PRESENT | TUN_FLAG_KEY,
        ..TunnelMeta::default()
    };
    let (l4, ip_end) = match ver {
        4 => {
            let ip = d.get(l3..l3 + IPV4_LEN).ok_or(PopError::Truncated)?;
            let ihl = (ip[0] & 0x0f) as usize * 4;
            if ihl < IPV4_LEN {
                return Err(PopError::BadIpHeader);
            }
            let hdr = d.get(l3..l3 + ihl).ok_or(PopError::Truncated)?;
            if csum::checksum(hdr) != 0 {
                return Err(PopError::BadIpChecksum);
            }
            let tot = u16::from_be_bytes([ip[2], ip[3]]) as usize;
            if tot < ihl {
                return Err(PopError::BadIpHeader);
            }
            if l3 + tot > d.len() {
                return Err(PopError::Truncated);
            }
            let frag = u16::from_be_bytes([ip[6], ip[7]]);
            if frag & (IP_MF | IP_FRAG_OFS) != 0 {
                return Err(PopError::Fragment);
            }
            if ip[9] != IPPROTO_UDP {
                return Err(PopError::NotUdp);
            }
            if frag & IP_DF != 0 {
                t.flags |= TUN_FLAG_DF;
            }
            t.tos = ip[1];
            t.ttl = ip[8];
            t.ipv4_src.copy_from_slice(&ip[12..16]);
            t.ipv4_dst.copy_from_slice(&ip[16..20]);
            (l3 + ihl, l3 + tot)
        }
        6 => {
            let ip = d.get(l3..l3 + IPV6_LEN).ok_or(PopError::Truncated)?;
            if ip[6] != IPPROTO_UDP {
                return Err(PopError::NotUdp);
            }
            let payload = u16::from_be_bytes([ip[4], ip[5]]) as usize;
            if l3 + IPV6_LEN + payload > d.len() {
                return Err(PopError::Truncated);
            }
            let vtcfl = u32::from_be_bytes([ip[0], ip[1], ip[2], ip[3]]);
            t.tos = (vtcfl >> 20) as u8;
            t.ttl = ip[7];
            t.ipv6_src.copy_from_slice(&ip[8..24]);
            t.ipv6_dst.copy_from_slice(&ip[24..40]);
            (l3 + IPV6_LEN, l3 + IPV6_LEN + payload)
        }
        _ => return Err(PopError::NotIp),
    };
    let udp_len = be16(d, l4 + 4).ok_or(PopError::Truncated)? as usize;
    if udp_len < UDP_LEN + VXLAN_LEN || l4 + udp_len > ip_end {
        return Err(PopError::BadUdpLength);
    }
    let udp_csum = be16(d, l4 + 6).ok_or(PopError::Truncated)?;
    if udp_csum != 0 {
        let mut sum = csum::sum16(IPPROTO_UDP as u32 + udp_len as u32, &[]);
        sum = if ver == 4 {
            csum::sum16(csum::sum16(sum, &t.ipv4_src), &t.ipv4_dst)
        } else {
            csum::sum16(csum::sum16(sum, &t.ipv6_src), &t.ipv6_dst)
        };
        let seg = d.get(l4..l4 + udp_len).ok_or(PopError::Truncated)?;
        if csum::fold(csum::sum16(sum, seg)) != 0 {
            return Err(PopError::BadUdpChecksum);
        }
        t.flags |= TUN_FLAG_CSUM;
    }
    t.tp_src = be16(d, l4).ok_or(PopError::Truncated)?;
    t.tp_dst = be16(d, l4 + 2).ok_or(PopError::Truncated)?;
    let vx = l4 + UDP_LEN;
    let flags = be32(d, vx).ok_or(PopError::Truncated)?;
    let vni = be32(d, vx + 4).ok_or(PopError::Truncated)?;
    if flags != VXLAN_FLAGS || vni & 0xff != 0 {
        return Err(PopError::BadVxlanFlags);
    }
    t.tun_id = u64::from(vni >> 8);
    let inner_len = udp_len - UDP_LEN - VXLAN_LEN;
    if inner_len < ETH_LEN {
        return Err(PopError::Truncated);
    }
    Ok(Parsed {
        tunnel: t,
        outer_len: vx + VXLAN_LEN,
        inner_len,
    })
}

/// Decapsulates a VXLAN packet in place: strips the outer headers (and any
/// padding after the datagram) and records the tunnel metadata. On an
/// error the packet is unchanged.
#[inline]
pub fn pop(pkt: &mut Packet) -> Result<(), PopError> {
    let l3 = match pkt.meta().l3_ofs {
        NO_OFS => ETH_LEN,
        o => o as usize,
    };
    let p = parse(pkt.data(), l3)?;
    pkt.pull_front(p.outer_len)
        .map_err(|_| PopError::Truncated)?;
    pkt.truncate(p.inner_len);
    let m = pkt.meta_mut();
    m.tunnel = p.tunnel;
    m.l3_ofs = NO_OFS;
    m.l4_ofs = NO_OFS;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::PacketPool;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn params(v6: bool) -> HeaderParams {
        let (s, d): (IpAddr, IpAddr) = if v6 {
            (
                "2001:db8::1".parse::<Ipv6Addr>().unwrap().into(),
                "2001:db8::2".parse::<Ipv6Addr>().unwrap().into(),
            )
        } else {
            (
                Ipv4Addr::new(1, 1, 2, 88).into(),
                Ipv4Addr::new(1, 1, 2, 92).into(),
            )
        };
        HeaderParams {
            eth_src: [0xaa, 0x55, 0xaa, 0x55, 0, 0],
            eth_dst: [0xf8, 0xbc, 0x12, 0x44, 0x34, 0xb6],
            ip_src: s,
            ip_dst: d,
            tos: 0,
            ttl: 64,
            df: true,
            dst_port: VXLAN_PORT,
            vni: 123,
            udp_csum: false,
        }
    }

    #[test]
    fn push_then_pop_round_trips() {
        let pool = PacketPool::new(8, false).unwrap();
        for v6 in [false, true] {
            let h = TnlHeader::vxlan(&params(v6)).unwrap();
            let act = TnlPush {
                tnl_port: 4,
                out_port: 1,
                header: h,
                max_ip_len: 1500,
            };
            let inner: Vec<u8> = (0..100u8).collect();
            let mut p = pool.packet_from(&inner).unwrap();
            p.meta_mut().hash = 0xdead_beef;
            push(&mut p, &act).unwrap();
            assert_eq!(p.len(), inner.len() + h.len());
            if !v6 {
                assert_eq!(csum::checksum(&p.data()[14..34]), 0);
            }
            assert_eq!(
                u16::from_be_bytes([p.data()[h.l4_ofs()], p.data()[h.l4_ofs() + 1]]),
                udp_src_port(0xdead_beef)
            );
            pop(&mut p).unwrap();
            assert_eq!(p.data(), &inner[..]);
            let t = p.meta().tunnel;
            assert_eq!(t.tun_id, 123);
            assert_eq!(t.ttl, 64);
            assert_eq!(t.tp_dst, VXLAN_PORT);
            assert_ne!(t.flags & TUN_FLAG_KEY, 0);
            assert_eq!(t.flags & TUN_FLAG_CSUM != 0, v6);
        }
    }

    #[test]
    fn oversize_is_refused() {
        let pool = PacketPool::new(2, false).unwrap();
        let act = TnlPush {
            tnl_port: 4,
            out_port: 1,
            header: TnlHeader::vxlan(&params(false)).unwrap(),
            max_ip_len: 1500,
        };
        let mut p = pool.packet_from(&[0u8; 1500]).unwrap();
        assert_eq!(push(&mut p, &act), Err(PushError::TooBig));
        assert_eq!(p.len(), 1500);
        let mut p = pool.packet_from(&[0u8; 1464]).unwrap();
        assert_eq!(push(&mut p, &act), Ok(()));
    }

    #[test]
    fn src_port_range() {
        assert_eq!(udp_src_port(0), UDP_SRC_MIN);
        assert!(udp_src_port(u32::MAX) < UDP_SRC_MAX);
    }
}
