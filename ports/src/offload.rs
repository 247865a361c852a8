//! The work a kernel leaves to whoever receives a packet from a packet
//! socket with `PACKET_VNET_HDR`: a frame from a local stack (a veth peer, a
//! container) may carry a partial checksum (`CHECKSUM_PARTIAL`) or be a
//! TSO/USO super-frame up to 64 KB. A switch must finish both before the
//! frame leaves on a port without offloads, or the receiver drops it.
//! Pure code over byte slices; the driver feeds it.

use fvs_datapath::csum::{checksum, fold, sum16};
use fvs_datapath::packet::{Packet, DATA_ROOM};

/// Size of `struct virtio_net_hdr` (without `num_buffers`).
pub const VNET_HDR_LEN: usize = 10;

const F_NEEDS_CSUM: u8 = 1;
const GSO_NONE: u8 = 0;
const GSO_TCPV4: u8 = 1;
const GSO_TCPV6: u8 = 4;
const GSO_UDP_L4: u8 = 5;
const GSO_ECN: u8 = 0x80;

const ETH_P_IPV4: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;
const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;

/// A `virtio_net_hdr` as the packet socket writes it (legacy layout, host
/// byte order).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VnetHdr {
    pub flags: u8,
    pub gso_type: u8,
    pub gso_size: u16,
    pub csum_start: u16,
    pub csum_offset: u16,
}

impl VnetHdr {
    pub fn parse(b: &[u8]) -> Option<VnetHdr> {
        let b: &[u8; VNET_HDR_LEN] = b.get(..VNET_HDR_LEN)?.try_into().ok()?;
        let u16_at = |i: usize| u16::from_ne_bytes([b[i], b[i + 1]]);
        Some(VnetHdr {
            flags: b[0],
            gso_type: b[1],
            gso_size: u16_at(4),
            csum_start: u16_at(6),
            csum_offset: u16_at(8),
        })
    }

    pub fn needs_csum(&self) -> bool {
        self.flags & F_NEEDS_CSUM != 0
    }

    pub fn is_gso(&self) -> bool {
        self.gso_type & !GSO_ECN != GSO_NONE
    }

    /// The header for the same frame after `n` bytes (a VLAN tag) were
    /// inserted in front of the checksummed part.
    pub fn shifted(mut self, n: u16) -> VnetHdr {
        if self.needs_csum() {
            self.csum_start += n;
        }
        self
    }
}

/// Finishes a partial checksum: the field at `start + offset` holds the
/// pseudo-header sum, and the checksum covers `start..` to the end (what
/// the kernel's `skb_checksum_help` does). False if out of bounds.
pub fn complete_csum(frame: &mut [u8], start: usize, offset: usize) -> bool {
    let at = start + offset;
    if at + 2 > frame.len() {
        return false;
    }
    store_l4_csum(frame, at, sum16(0, &frame[start..]));
    true
}

fn store_l4_csum(frame: &mut [u8], at: usize, sum: u32) {
    // A zero UDP checksum means "none"; the kernel writes 0xffff for every
    // protocol, which TCP reads as the same value.
    let c = match fold(sum) {
        0 => 0xffff,
        c => c,
    };
    frame[at..at + 2].copy_from_slice(&c.to_be_bytes());
}

/// Writes `frame` to `dst` with an 802.1Q/802.1ad tag (`tpid`, `tci`)
/// inserted after the MAC addresses when `vlan` is set; returns the length
/// written. The kernel hands the tag of an accelerated VLAN apart from the
/// frame, and a switch must see it in place. `dst` must hold `frame.len() + 4`.
pub fn put_frame(dst: &mut [u8], frame: &[u8], vlan: Option<(u16, u16)>) -> usize {
    match vlan {
        Some((tpid, tci)) if frame.len() >= 12 => {
            dst[..12].copy_from_slice(&frame[..12]);
            dst[12..14].copy_from_slice(&tpid.to_be_bytes());
            dst[14..16].copy_from_slice(&tci.to_be_bytes());
            dst[16..frame.len() + 4].copy_from_slice(&frame[12..]);
            frame.len() + 4
        }
        _ => {
            dst[..frame.len()].copy_from_slice(frame);
            frame.len()
        }
    }
}

/// Why a super-frame cannot be segmented.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GsoError {
    /// A GSO type other than TCP or UDP_L4 (e.g. UFO), or not over IP.
    Unsupported,
    /// Headers inconsistent with the GSO metadata.
    Malformed,
    /// A segment would not fit a packet buffer.
    TooBig,
}

#[derive(Clone, Copy, Debug)]
struct Plan {
    begin: usize,
    end: usize,
    l3: usize,
    l4: usize,
    hdr_len: usize,
    mss: usize,
    v4: bool,
    tcp: bool,
    /// The outer headers of a UDP tunnel super-frame (`l3`, `l4`: inner).
    outer: Option<Outer>,
    /// Offset (from `begin`) of the next payload byte to send.
    off: usize,
    index: u16,
}

#[derive(Clone, Copy, Debug)]
struct Outer {
    l3: usize,
    l4: usize,
    v4: bool,
}

/// Cuts one TSO/USO super-frame into wire-size segments, one per call to
/// [`Segmenter::next_into`], so that a receive batch can stop half way and
/// resume on the next poll. The super-frame lives in a buffer allocated
/// once with the queue.
pub struct Segmenter {
    buf: Box<[u8]>,
    plan: Option<Plan>,
}

impl Segmenter {
    pub fn new(capacity: usize) -> Segmenter {
        Segmenter {
            buf: vec![0; capacity].into_boxed_slice(),
            plan: None,
        }
    }

    /// The buffer to place a super-frame in before [`Segmenter::start`].
    pub fn buf_mut(&mut self) -> &mut [u8] {
        &mut self.buf
    }

    pub fn is_active(&self) -> bool {
        self.plan.is_some()
    }

    /// Starts segmenting the frame at `begin..end` of the buffer, described by `hdr`.
    pub fn start(&mut self, begin: usize, end: usize, hdr: VnetHdr) -> Result<(), GsoError> {
        let f = self.buf.get(begin..end).ok_or(GsoError::Malformed)?;
        let at =
            |i: usize| -> Result<u8, GsoError> { f.get(i).copied().ok_or(GsoError::Malformed) };
        // The L3 header after the Ethernet header (and VLAN tags) at `eth`.
        let l3_after = |eth: usize| -> Result<(usize, bool), GsoError> {
            let mut l3 = eth + 12;
            let mut ethertype = u16::from_be_bytes([at(l3)?, at(l3 + 1)?]);
            while matches!(ethertype, 0x8100 | 0x88a8 | 0x9100) {
                l3 += 4;
                ethertype = u16::from_be_bytes([at(l3)?, at(l3 + 1)?]);
            }
            match ethertype {
                ETH_P_IPV4 => Ok((l3 + 2, true)),
                ETH_P_IPV6 => Ok((l3 + 2, false)),
                _ => Err(GsoError::Unsupported),
            }
        };
        let (mut l3, mut v4) = l3_after(0)?;
        let l4 = hdr.csum_start as usize;
        // A super-frame of a UDP tunnel (a kernel VXLAN or Geneve device
        // behind a veth hands these over whole): the GSO type and checksum
        // start describe the inner packet; the outer headers are fixed up
        // per segment too.
        let mut outer = None;
        let outer_l4 = if v4 {
            l3 + (at(l3)? & 0xf) as usize * 4
        } else {
            l3 + 40
        };
        let outer_udp = if v4 { at(l3 + 9)? } else { at(l3 + 6)? } == IPPROTO_UDP;
        if l4 > outer_l4 + 8 && outer_udp {
            let dport = u16::from_be_bytes([at(outer_l4 + 2)?, at(outer_l4 + 3)?]);
            let tnl_len = match dport {
                4789 | 8472 => 8,
                6081 => 8 + (at(outer_l4 + 8)? & 0x3f) as usize * 4,
                _ => return Err(GsoError::Unsupported),
            };
            outer = Some(Outer {
                l3,
                l4: outer_l4,
                v4,
            });
            (l3, v4) = l3_after(outer_l4 + 8 + tnl_len)?;
        }
        let tcp = match hdr.gso_type & !GSO_ECN {
            GSO_TCPV4 if v4 => true,
            GSO_TCPV6 if !v4 => true,
            GSO_UDP_L4 => false,
            _ => return Err(GsoError::Unsupported),
        };
        let ip_ok = if v4 {
            let ihl = (at(l3)? & 0xf) as usize * 4;
            at(l3)? >> 4 == 4
                && ihl >= 20
                && l3 + ihl == l4
                && at(l3 + 9)? == if tcp { IPPROTO_TCP } else { IPPROTO_UDP }
        } else {
            at(l3)? >> 4 == 6 && l3 + 40 <= l4
        };
        if !ip_ok {
            return Err(GsoError::Malformed);
        }
        let hdr_len = if tcp {
            l4 + (at(l4 + 12)? >> 4) as usize * 4
        } else {
            l4 + 8
        };
        let mss = hdr.gso_size as usize;
        if mss == 0 || hdr_len > f.len() || (tcp && hdr_len < l4 + 20) {
            return Err(GsoError::Malformed);
        }
        if hdr_len + mss.min(f.len() - hdr_len) > DATA_ROOM {
            return Err(GsoError::TooBig);
        }
        self.plan = Some(Plan {
            begin,
            end,
            l3,
            l4,
            hdr_len,
            mss,
            v4,
            tcp,
            outer,
            off: hdr_len,
            index: 0,
        });
        Ok(())
    }

    /// Writes the next segment into the empty packet `pkt`; returns false
    /// when there was none left.
    pub fn next_into(&mut self, pkt: &mut Packet) -> bool {
        let Some(p) = self.plan.as_mut() else {
            return false;
        };
        let frame = &self.buf[p.begin..p.end];
        let chunk = p.mss.min(frame.len() - p.off);
        let (first, last) = (p.off == p.hdr_len, p.off + chunk == frame.len());
        let Ok(out) = pkt.extend(p.hdr_len + chunk) else {
            // `start` checked that every segment fits a buffer.
            self.plan = None;
            return false;
        };
        out[..p.hdr_len].copy_from_slice(&frame[..p.hdr_len]);
        out[p.hdr_len..].copy_from_slice(&frame[p.off..p.off + chunk]);
        fix_segment(out, p, first, last);
        p.off += chunk;
        p.index = p.index.wrapping_add(1);
        if last {
            self.plan = None;
        }
        true
    }
}

/// Sets the length (and for IPv4 the segment's ID and header checksum) of
/// the IP header at `l3` of a segment whose L4 header is at `l4`; returns
/// the L4 pseudo-header sum for `proto`.
fn fix_ip(out: &mut [u8], l3: usize, l4: usize, v4: bool, index: u16, proto: u8) -> u32 {
    let len = out.len();
    let put16 =
        |out: &mut [u8], at: usize, v: u16| out[at..at + 2].copy_from_slice(&v.to_be_bytes());
    let l4_len = (len - l4) as u32;
    let addrs = if v4 {
        put16(out, l3 + 2, (len - l3) as u16);
        let id = u16::from_be_bytes([out[l3 + 4], out[l3 + 5]]).wrapping_add(index);
        put16(out, l3 + 4, id);
        put16(out, l3 + 10, 0);
        let c = checksum(&out[l3..l4]);
        put16(out, l3 + 10, c);
        sum16(0, &out[l3 + 12..l3 + 20])
    } else {
        put16(out, l3 + 4, (len - l3 - 40) as u16);
        sum16(0, &out[l3 + 8..l3 + 40])
    };
    addrs + proto as u32 + (l4_len >> 16) + (l4_len & 0xffff)
}

/// Rewrites the headers of one segment as the kernel's GSO would: IP
/// lengths and IDs, TCP sequence number and flags, UDP length, checksums.
fn fix_segment(out: &mut [u8], p: &Plan, first: bool, last: bool) {
    let (l3, l4, len) = (p.l3, p.l4, out.len());
    let put16 =
        |out: &mut [u8], at: usize, v: u16| out[at..at + 2].copy_from_slice(&v.to_be_bytes());
    let proto = if p.tcp { IPPROTO_TCP } else { IPPROTO_UDP };
    let l4_len = (len - l4) as u32;
    let pseudo = fix_ip(out, l3, l4, p.v4, p.index, proto);
    let csum_at = if p.tcp {
        let seq = u32::from_be_bytes([out[l4 + 4], out[l4 + 5], out[l4 + 6], out[l4 + 7]]);
        let seq = seq.wrapping_add((p.off - p.hdr_len) as u32);
        out[l4 + 4..l4 + 8].copy_from_slice(&seq.to_be_bytes());
        const FIN: u8 = 0x01;
        const PSH: u8 = 0x08;
        const CWR: u8 = 0x80;
        if !last {
            out[l4 + 13] &= !(FIN | PSH);
        }
        if !first {
            out[l4 + 13] &= !CWR;
        }
        l4 + 16
    } else {
        put16(out, l4 + 4, l4_len as u16);
        l4 + 6
    };
    put16(out, csum_at, 0);
    let sum = sum16(pseudo, &out[l4..]);
    store_l4_csum(out, csum_at, sum);
    if let Some(o) = p.outer {
        let (l3, l4) = (o.l3, o.l4);
        let udp_len = (len - l4) as u32;
        let pseudo = fix_ip(out, l3, l4, o.v4, p.index, IPPROTO_UDP);
        put16(out, l4 + 4, udp_len as u16);
        // An outer IPv4 UDP checksum of zero (none) stays so; IPv6 needs one.
        if !o.v4 || out[l4 + 6..l4 + 8] != [0, 0] {
            put16(out, l4 + 6, 0);
            let sum = sum16(pseudo, &out[l4..]);
            store_l4_csum(out, l4 + 6, sum);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fvs_datapath::packet::PacketPool;

    fn tcp4_superframe(payload: usize) -> Vec<u8> {
        let mut f = vec![0u8; 14 + 20 + 32 + payload];
        f[12..14].copy_from_slice(&ETH_P_IPV4.to_be_bytes());
        let ip = &mut f[14..34];
        ip[0] = 0x45;
        ip[4..6].copy_from_slice(&0x1000u16.to_be_bytes());
        ip[8] = 64;
        ip[9] = IPPROTO_TCP;
        ip[12..16].copy_from_slice(&[10, 0, 0, 1]);
        ip[16..20].copy_from_slice(&[10, 0, 0, 2]);
        let tcp = &mut f[34..66];
        tcp[4..8].copy_from_slice(&0xffff_fff0u32.to_be_bytes());
        tcp[12] = 8 << 4;
        tcp[13] = 0x80 | 0x18 | 0x01; // CWR, PSH, ACK, FIN
        for (i, b) in f[66..].iter_mut().enumerate() {
            *b = i as u8;
        }
        f
    }

    fn l4_sum_ok(seg: &[u8], l3: usize, l4: usize, proto: u8) -> bool {
        let l4_len = (seg.len() - l4) as u32;
        let pseudo = sum16(0, &seg[l3 + 12..l3 + 20]) + proto as u32 + l4_len;
        fold(sum16(pseudo, &seg[l4..])) == 0
    }

    #[test]
    fn tcp_superframe_becomes_valid_segments() {
        let pool = PacketPool::new(8, false).unwrap();
        let frame = tcp4_superframe(3000);
        let mut seg = Segmenter::new(70_000);
        seg.buf_mut()[4..4 + frame.len()].copy_from_slice(&frame);
        let hdr = VnetHdr {
            flags: F_NEEDS_CSUM,
            gso_type: GSO_TCPV4,
            gso_size: 1448,
            csum_start: 34,
            csum_offset: 16,
        };
        seg.start(4, 4 + frame.len(), hdr).unwrap();
        let mut out = Vec::new();
        loop {
            let mut p = pool.alloc().unwrap();
            if !seg.next_into(&mut p) {
                break;
            }
            out.push(p);
        }
        assert_eq!(
            out.iter().map(|p| p.len()).collect::<Vec<_>>(),
            [66 + 1448, 66 + 1448, 66 + 104]
        );
        let mut payload = Vec::new();
        for (i, p) in out.iter().enumerate() {
            let d = p.data();
            assert_eq!(u16::from_be_bytes([d[16], d[17]]) as usize, d.len() - 14);
            assert_eq!(u16::from_be_bytes([d[18], d[19]]), 0x1000 + i as u16);
            assert_eq!(checksum(&d[14..34]), 0, "IPv4 header checksum");
            assert!(
                l4_sum_ok(d, 14, 34, IPPROTO_TCP),
                "TCP checksum of segment {i}"
            );
            let seq = u32::from_be_bytes(d[38..42].try_into().unwrap());
            assert_eq!(seq, 0xffff_fff0u32.wrapping_add(1448 * i as u32));
            let flags = d[47];
            assert_eq!(flags & 0x80 != 0, i == 0, "CWR only on the first");
            assert_eq!(flags & 0x09 != 0, i == 2, "FIN and PSH only on the last");
            payload.extend_from_slice(&d[66..]);
        }
        assert_eq!(payload, frame[66..]);
        assert!(!seg.is_active());
    }

    /// A kernel VXLAN device's TSO super-frame, as a veth hands it over: the
    /// GSO metadata describes the inner TCP; every segment gets valid outer
    /// and inner headers.
    #[test]
    fn vxlan_tunnel_superframe_becomes_valid_segments() {
        let pool = PacketPool::new(8, false).unwrap();
        for outer_csum in [false, true] {
            let inner = tcp4_superframe(3000);
            let mut f = vec![0u8; 14 + 20 + 8 + 8];
            f[12..14].copy_from_slice(&ETH_P_IPV4.to_be_bytes());
            f[14] = 0x45;
            f[18..20].copy_from_slice(&0x2000u16.to_be_bytes());
            f[22] = 64;
            f[23] = IPPROTO_UDP;
            f[26..30].copy_from_slice(&[172, 31, 0, 2]);
            f[30..34].copy_from_slice(&[172, 31, 0, 1]);
            f[34..36].copy_from_slice(&50000u16.to_be_bytes());
            f[36..38].copy_from_slice(&4789u16.to_be_bytes());
            if outer_csum {
                f[40] = 0x12; // whatever the kernel left: recomputed
            }
            f[42] = 0x08; // VXLAN: VNI valid
            f[46..49].copy_from_slice(&[0, 0x13, 0x89]);
            f.extend_from_slice(&inner);
            let mut seg = Segmenter::new(70_000);
            seg.buf_mut()[..f.len()].copy_from_slice(&f);
            let hdr = VnetHdr {
                flags: F_NEEDS_CSUM,
                gso_type: GSO_TCPV4,
                gso_size: 1348,
                csum_start: 50 + 34,
                csum_offset: 16,
            };
            seg.start(0, f.len(), hdr).unwrap();
            let mut payload = Vec::new();
            let mut n = 0;
            let mut p = pool.alloc().unwrap();
            while seg.next_into(&mut p) {
                let d = p.data();
                assert_eq!(u16::from_be_bytes([d[16], d[17]]) as usize, d.len() - 14);
                assert_eq!(u16::from_be_bytes([d[18], d[19]]), 0x2000 + n as u16);
                assert_eq!(checksum(&d[14..34]), 0, "outer IPv4 checksum");
                assert_eq!(u16::from_be_bytes([d[38], d[39]]) as usize, d.len() - 34);
                if outer_csum {
                    assert!(l4_sum_ok(d, 14, 34, IPPROTO_UDP), "outer UDP checksum");
                } else {
                    assert_eq!(d[40..42], [0, 0], "no outer UDP checksum stays none");
                }
                let i = &d[50..];
                assert_eq!(u16::from_be_bytes([i[16], i[17]]) as usize, i.len() - 14);
                assert_eq!(checksum(&i[14..34]), 0, "inner IPv4 checksum");
                assert!(l4_sum_ok(i, 14, 34, IPPROTO_TCP), "inner TCP checksum");
                let seq = u32::from_be_bytes(i[38..42].try_into().unwrap());
                assert_eq!(seq, 0xffff_fff0u32.wrapping_add(1348 * n as u32));
                payload.extend_from_slice(&i[66..]);
                n += 1;
                p = pool.alloc().unwrap();
            }
            assert_eq!(n, 3);
            assert_eq!(payload, inner[66..]);
        }
    }

    #[test]
    fn udp_l4_superframe_over_ipv6() {
        let pool = PacketPool::new(4, false).unwrap();
        let mut f = vec![0u8; 14 + 40 + 8 + 2500];
        f[12..14].copy_from_slice(&ETH_P_IPV6.to_be_bytes());
        f[14] = 0x60;
        f[20] = IPPROTO_UDP;
        f[22 + 15] = 1;
        f[38 + 15] = 2;
        let mut seg = Segmenter::new(4096);
        seg.buf_mut()[..f.len()].copy_from_slice(&f);
        let hdr = VnetHdr {
            flags: F_NEEDS_CSUM,
            gso_type: GSO_UDP_L4,
            gso_size: 1200,
            csum_start: 54,
            csum_offset: 6,
        };
        seg.start(0, f.len(), hdr).unwrap();
        let mut lens = Vec::new();
        let mut p = pool.alloc().unwrap();
        while seg.next_into(&mut p) {
            let d = p.data();
            assert_eq!(u16::from_be_bytes([d[18], d[19]]) as usize, d.len() - 54);
            assert_eq!(u16::from_be_bytes([d[58], d[59]]) as usize, d.len() - 54);
            let l4_len = (d.len() - 54) as u32;
            let pseudo = sum16(0, &d[22..54]) + IPPROTO_UDP as u32 + l4_len;
            assert_eq!(fold(sum16(pseudo, &d[54..])), 0);
            lens.push(d.len());
            p = pool.alloc().unwrap();
        }
        assert_eq!(lens, [62 + 1200, 62 + 1200, 62 + 100]);
    }

    #[test]
    fn bad_superframes_are_refused() {
        let frame = tcp4_superframe(100);
        let mut seg = Segmenter::new(16384);
        seg.buf_mut()[..frame.len()].copy_from_slice(&frame);
        let hdr = |gso_type, gso_size, csum_start| VnetHdr {
            flags: F_NEEDS_CSUM,
            gso_type,
            gso_size,
            csum_start,
            csum_offset: 16,
        };
        let n = frame.len();
        assert_eq!(seg.start(0, n, hdr(3, 50, 34)), Err(GsoError::Unsupported));
        assert_eq!(
            seg.start(0, n, hdr(GSO_TCPV6, 50, 34)),
            Err(GsoError::Unsupported)
        );
        assert_eq!(
            seg.start(0, n, hdr(GSO_TCPV4, 0, 34)),
            Err(GsoError::Malformed)
        );
        assert_eq!(
            seg.start(0, n, hdr(GSO_TCPV4, 50, 30)),
            Err(GsoError::Malformed)
        );
        assert_eq!(
            seg.start(0, 40, hdr(GSO_TCPV4, 50, 34)),
            Err(GsoError::Malformed)
        );
        assert!(!seg.is_active());
        let big = tcp4_superframe(9000);
        seg.buf_mut()[..big.len()].copy_from_slice(&big);
        assert_eq!(
            seg.start(0, big.len(), hdr(GSO_TCPV4, 4000, 34)),
            Err(GsoError::TooBig)
        );
    }

    #[test]
    fn partial_checksum_is_completed_and_vlan_inserted() {
        let mut f = tcp4_superframe(10);
        // The sender leaves the pseudo-header sum in the field.
        let l4_len = (f.len() - 34) as u32;
        let pseudo = fold(sum16(0, &f[26..34]) + IPPROTO_TCP as u32 + l4_len);
        f[50..52].copy_from_slice(&(!pseudo).to_be_bytes());
        let mut out = vec![0u8; f.len() + 4];
        let n = put_frame(&mut out, &f, Some((0x8100, 0x0064)));
        assert_eq!(n, f.len() + 4);
        assert_eq!(&out[12..18], &[0x81, 0x00, 0x00, 0x64, 0x08, 0x00]);
        let hdr = VnetHdr {
            flags: F_NEEDS_CSUM,
            csum_start: 34,
            csum_offset: 16,
            ..VnetHdr::default()
        }
        .shifted(4);
        assert!(complete_csum(
            &mut out,
            hdr.csum_start as usize,
            hdr.csum_offset as usize
        ));
        // The checksum does not cover the tag: check the untagged view.
        let mut untagged = out[..12].to_vec();
        untagged.extend_from_slice(&out[16..n]);
        assert!(l4_sum_ok(&untagged, 14, 34, IPPROTO_TCP));
        assert!(!complete_csum(&mut out, 70, 16), "field past the end");
    }
}
