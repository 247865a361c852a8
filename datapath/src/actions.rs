//! Datapath actions: what a megaflow does to its packets. Header rewrites
//! are masked (only the bits a rule set change) and keep the IPv4 header
//! checksum and the TCP/UDP checksums valid by incremental update; SCTP's
//! CRC is recomputed.

use crate::csum;
use crate::key::{self, IPPROTO_ICMPV6, IPPROTO_SCTP, IPPROTO_TCP, IPPROTO_UDP};
use crate::packet::{Packet, TunnelMeta, NO_OFS};
use crate::tunnel::TnlPush;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct EthSet {
    pub src: [u8; 6],
    pub dst: [u8; 6],
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Ipv4Set {
    pub src: [u8; 4],
    pub dst: [u8; 4],
    pub tos: u8,
    pub ttl: u8,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Ipv6Set {
    pub src: [u8; 16],
    pub dst: [u8; 16],
    pub tc: u8,
    pub hlimit: u8,
    /// 20-bit flow label.
    pub label: u32,
}

/// Transport ports (TCP, UDP or SCTP: the packet's protocol decides).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct L4Set {
    pub src: u16,
    pub dst: u16,
}

/// IPv6 neighbour discovery fields: the target address and the source
/// (solicitations) or target (advertisements) link-layer address options.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct NdSet {
    pub target: [u8; 16],
    pub sll: [u8; 6],
    pub tll: [u8; 6],
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct ArpSet {
    pub op: u16,
    pub sha: [u8; 6],
    pub spa: [u8; 4],
    pub tha: [u8; 6],
    pub tpa: [u8; 4],
}

/// Why a packet goes to the slow path.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum SlowPath {
    /// To the bridge's controller(s) (OpenFlow packet-in).
    Controller {
        /// Datapath-independent id of the bridge (given by the control plane).
        bridge: u32,
        /// The OpenFlow input port as the pipeline saw it at the action.
        in_port: u16,
        reason: u8,
        max_len: u16,
        controller_id: u16,
        table_id: u8,
        cookie: u64,
    },
}

/// One datapath action.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum DpAction {
    /// Send to a datapath port.
    Output(u32),
    /// Hand to the control plane.
    Userspace(SlowPath),
    SetEth {
        value: EthSet,
        mask: EthSet,
    },
    SetIpv4 {
        value: Ipv4Set,
        mask: Ipv4Set,
    },
    SetIpv6 {
        value: Ipv6Set,
        mask: Ipv6Set,
    },
    SetL4 {
        value: L4Set,
        mask: L4Set,
    },
    SetArp {
        value: ArpSet,
        mask: ArpSet,
    },
    SetNd {
        value: NdSet,
        mask: NdSet,
    },
    /// Push an 802.1Q/802.1ad tag (`tci` without the CFI "present" bit).
    PushVlan {
        tpid: u16,
        tci: u16,
    },
    /// Pop the outermost tag.
    PopVlan,
    /// Rewrite the PCP and VID of the outermost tag in place, keeping its
    /// TPID (which the flow key does not hold) and its DEI bit.
    SetVlanTci(u16),
    /// Tunnel metadata for a later encapsulation.
    SetTunnel(TunnelMeta),
    /// Encapsulate in a prebuilt tunnel header (`tnl_push`).
    TunnelPush(Box<TnlPush>),
    /// Decapsulate and process again as received on tunnel datapath port
    /// N, with the tunnel metadata set (`tnl_pop`).
    TunnelPop(u32),
    /// Run the actions on a copy of the packet, leaving the packet as it
    /// is for the actions after (`clone`).
    Clone(Box<[DpAction]>),
}

impl DpAction {
    /// Whether the action hands the packet to someone (the last such action
    /// may give away the packet itself instead of a copy).
    #[inline(always)]
    pub fn consumes(&self) -> bool {
        matches!(
            self,
            DpAction::Output(_)
                | DpAction::Userspace(_)
                | DpAction::TunnelPop(_)
                | DpAction::Clone(_)
        )
    }
}

#[inline(always)]
fn merge<const N: usize>(old: &[u8], v: &[u8; N], m: &[u8; N]) -> [u8; N] {
    let mut out = [0u8; N];
    for i in 0..N {
        out[i] = (old[i] & !m[i]) | (v[i] & m[i]);
    }
    out
}

/// Applies a header-rewriting action to `pkt` (output-like actions are the
/// caller's). A packet without the header the action rewrites is left alone.
#[inline]
pub fn apply(pkt: &mut Packet, action: &DpAction) {
    match action {
        DpAction::SetEth { value, mask } => set_eth(pkt, value, mask),
        DpAction::SetIpv4 { value, mask } => set_ipv4(pkt, value, mask),
        DpAction::SetIpv6 { value, mask } => set_ipv6(pkt, value, mask),
        DpAction::SetL4 { value, mask } => set_l4(pkt, value, mask),
        DpAction::SetArp { value, mask } => set_arp(pkt, value, mask),
        DpAction::SetNd { value, mask } => set_nd(pkt, value, mask),
        DpAction::PushVlan { tpid, tci } => push_vlan(pkt, *tpid, *tci),
        DpAction::PopVlan => pop_vlan(pkt),
        DpAction::SetVlanTci(tci) => set_vlan_tci(pkt, *tci),
        DpAction::SetTunnel(t) => pkt.meta_mut().tunnel = *t,
        // Executed by the PMD, which owns the queues they lead to.
        DpAction::Output(_)
        | DpAction::Userspace(_)
        | DpAction::TunnelPush(_)
        | DpAction::TunnelPop(_)
        | DpAction::Clone(_) => {}
    }
}

fn set_eth(pkt: &mut Packet, v: &EthSet, m: &EthSet) {
    let d = pkt.data_mut();
    if d.len() < 12 {
        return;
    }
    let dst = merge(&d[0..6], &v.dst, &m.dst);
    let src = merge(&d[6..12], &v.src, &m.src);
    d[0..6].copy_from_slice(&dst);
    d[6..12].copy_from_slice(&src);
}

/// The (L3 offset, L4 offset) of a packet, if it has an L3 header.
#[inline(always)]
fn offsets(pkt: &Packet) -> Option<(usize, Option<usize>)> {
    let m = pkt.meta();
    if m.l3_ofs == NO_OFS {
        return None;
    }
    Some((
        m.l3_ofs as usize,
        (m.l4_ofs != NO_OFS).then_some(m.l4_ofs as usize),
    ))
}

/// Offset of the L4 checksum for `proto`, and whether 0 means "none": UDP
/// over IPv4, and over IPv6 for tunnels (RFC 6935); as OVS, it stays 0.
fn l4_csum_ofs(proto: u8, ipv4: bool) -> Option<(usize, bool)> {
    match proto {
        IPPROTO_TCP => Some((16, false)),
        IPPROTO_UDP => Some((6, true)),
        IPPROTO_ICMPV6 if !ipv4 => Some((2, false)),
        _ => None,
    }
}

/// Folds a pseudo-header change into the L4 checksum at `l4`.
fn update_l4_pseudo(
    d: &mut [u8],
    l4: Option<usize>,
    proto: u8,
    ipv4: bool,
    old: &[u8],
    new: &[u8],
) {
    let Some(l4) = l4 else { return };
    let Some((co, zero_is_none)) = l4_csum_ofs(proto, ipv4) else {
        return;
    };
    let Some(c) = d.get(l4 + co..l4 + co + 2) else {
        return;
    };
    let c = u16::from_be_bytes([c[0], c[1]]);
    if c == 0 && zero_is_none {
        return;
    }
    let mut n = csum::update_bytes(c, old, new);
    if n == 0 && proto == IPPROTO_UDP {
        n = 0xffff;
    }
    d[l4 + co..l4 + co + 2].copy_from_slice(&n.to_be_bytes());
}

fn set_ipv4(pkt: &mut Packet, v: &Ipv4Set, m: &Ipv4Set) {
    let Some((l3, l4)) = offsets(pkt) else { return };
    let d = pkt.data_mut();
    if d.len() < l3 + 20 || d[l3] >> 4 != 4 {
        return;
    }
    let old: [u8; 20] = d[l3..l3 + 20].try_into().expect("20 bytes");
    let mut new = old;
    new[1] = (old[1] & !m.tos) | (v.tos & m.tos);
    new[8] = (old[8] & !m.ttl) | (v.ttl & m.ttl);
    new[12..16].copy_from_slice(&merge(&old[12..16], &v.src, &m.src));
    new[16..20].copy_from_slice(&merge(&old[16..20], &v.dst, &m.dst));
    let c = u16::from_be_bytes([old[10], old[11]]);
    let c = csum::update_bytes(c, &old, &new);
    new[10..12].copy_from_slice(&c.to_be_bytes());
    d[l3..l3 + 20].copy_from_slice(&new);
    if old[12..20] != new[12..20] {
        update_l4_pseudo(d, l4, old[9], true, &old[12..20], &new[12..20]);
    }
}

fn set_ipv6(pkt: &mut Packet, v: &Ipv6Set, m: &Ipv6Set) {
    let Some((l3, l4)) = offsets(pkt) else { return };
    // Needed for the pseudo-header checksum; read before borrowing the data mutably.
    let proto = pkt_l4_proto_v6(pkt);
    let d = pkt.data_mut();
    if d.len() < l3 + 40 || d[l3] >> 4 != 6 {
        return;
    }
    let old: [u8; 40] = d[l3..l3 + 40].try_into().expect("40 bytes");
    let mut new = old;
    let vtcfl = u32::from_be_bytes([old[0], old[1], old[2], old[3]]);
    let tc = ((vtcfl >> 20) as u8 & !m.tc) | (v.tc & m.tc);
    let label = (vtcfl & 0xfffff & !m.label) | (v.label & m.label & 0xfffff);
    let vtcfl = (6 << 28) | ((tc as u32) << 20) | label;
    new[0..4].copy_from_slice(&vtcfl.to_be_bytes());
    new[7] = (old[7] & !m.hlimit) | (v.hlimit & m.hlimit);
    new[8..24].copy_from_slice(&merge(&old[8..24], &v.src, &m.src));
    new[24..40].copy_from_slice(&merge(&old[24..40], &v.dst, &m.dst));
    d[l3..l3 + 40].copy_from_slice(&new);
    if old[8..40] != new[8..40] {
        if let Some((proto, rh)) = proto {
            // Behind a routing header with segments left, the pseudo-header
            // destination is the final one, not the address rewritten here.
            let end = if rh { 24 } else { 40 };
            update_l4_pseudo(d, l4, proto, false, &old[8..end], &new[8..end]);
        }
    }
}

/// The upper-layer protocol of an IPv6 packet whose L4 offset is known
/// (the next-header field of the header just before L4), and whether a
/// routing header with segments left comes before it.
fn pkt_l4_proto_v6(pkt: &Packet) -> Option<(u8, bool)> {
    let (l3, l4) = offsets(pkt)?;
    let l4 = l4?;
    let d = pkt.data();
    // Walk the extension-header chain from the fixed header to L4.
    let mut nh = *d.get(l3 + 6)?;
    let mut at = l3 + 40;
    let mut rh = false;
    while at < l4 {
        let e = d.get(at..at + 2)?;
        rh |= nh == 43 && d.get(at + 3).is_some_and(|&segs_left| segs_left > 0);
        let len = if nh == 51 {
            (e[1] as usize + 2) * 4
        } else if nh == 44 {
            8
        } else {
            (e[1] as usize + 1) * 8
        };
        nh = e[0];
        at += len;
    }
    Some((nh, rh))
}

fn l4_proto(pkt: &Packet) -> Option<(u8, bool)> {
    let (l3, _) = offsets(pkt)?;
    let d = pkt.data();
    match d.get(l3)? >> 4 {
        4 => Some((*d.get(l3 + 9)?, true)),
        6 => Some((pkt_l4_proto_v6(pkt)?.0, false)),
        _ => None,
    }
}

/// End of the IP datagram at `l3` (from its length field): where Ethernet
/// padding starts.
fn ip_end(d: &[u8], l3: usize, ipv4: bool) -> usize {
    let (at, base) = if ipv4 {
        (l3 + 2, l3)
    } else {
        (l3 + 4, l3 + 40)
    };
    d.get(at..at + 2)
        .map_or(0, |b| base + u16::from_be_bytes([b[0], b[1]]) as usize)
}

const ND_NEIGHBOR_SOLICIT: u8 = 135;
const ND_NEIGHBOR_ADVERT: u8 = 136;

/// Rewrites the ND target and link-layer address options of a neighbour
/// solicitation or advertisement, updating the ICMPv6 checksum.
fn set_nd(pkt: &mut Packet, v: &NdSet, m: &NdSet) {
    let Some((l3, Some(l4))) = offsets(pkt) else {
        return;
    };
    if l4_proto(pkt) != Some((IPPROTO_ICMPV6, false)) {
        return;
    }
    let d = pkt.data_mut();
    let end = ip_end(d, l3, false).min(d.len());
    if end < l4 + 24 || !matches!(d[l4], ND_NEIGHBOR_SOLICIT | ND_NEIGHBOR_ADVERT) {
        return;
    }
    let mut c = u16::from_be_bytes([d[l4 + 2], d[l4 + 3]]);
    // Every rewritten range starts at an even offset from the ICMPv6 header,
    // as the incremental update needs.
    let mut rewrite = |d: &mut [u8], at: usize, v: &[u8], m: &[u8]| {
        for i in (0..v.len()).step_by(2) {
            let old = [d[at + i], d[at + i + 1]];
            let new = [
                (old[0] & !m[i]) | (v[i] & m[i]),
                (old[1] & !m[i + 1]) | (v[i + 1] & m[i + 1]),
            ];
            c = csum::update_bytes(c, &old, &new);
            d[at + i..at + i + 2].copy_from_slice(&new);
        }
    };
    rewrite(d, l4 + 8, &v.target, &m.target);
    let mut at = l4 + 24;
    while at + 8 <= end {
        let len = d[at + 1] as usize * 8;
        if len == 0 || at + len > end {
            break;
        }
        match (d[at], len) {
            (1, 8) => rewrite(d, at + 2, &v.sll, &m.sll),
            (2, 8) => rewrite(d, at + 2, &v.tll, &m.tll),
            _ => {}
        }
        at += len;
    }
    d[l4 + 2..l4 + 4].copy_from_slice(&c.to_be_bytes());
}

fn set_l4(pkt: &mut Packet, v: &L4Set, m: &L4Set) {
    let Some((l3, Some(l4))) = offsets(pkt) else {
        return;
    };
    let Some((proto, ipv4)) = l4_proto(pkt) else {
        return;
    };
    let d = pkt.data_mut();
    if d.len() < l4 + 4 {
        return;
    }
    let old: [u8; 4] = d[l4..l4 + 4].try_into().expect("4 bytes");
    let src = (u16::from_be_bytes([old[0], old[1]]) & !m.src) | (v.src & m.src);
    let dst = (u16::from_be_bytes([old[2], old[3]]) & !m.dst) | (v.dst & m.dst);
    let mut new = [0u8; 4];
    new[0..2].copy_from_slice(&src.to_be_bytes());
    new[2..4].copy_from_slice(&dst.to_be_bytes());
    if new == old {
        return;
    }
    match proto {
        IPPROTO_TCP | IPPROTO_UDP => {
            d[l4..l4 + 4].copy_from_slice(&new);
            update_l4_pseudo(d, Some(l4), proto, ipv4, &old, &new);
        }
        IPPROTO_SCTP => {
            // The CRC covers the SCTP packet, not the Ethernet padding after it.
            let end = ip_end(d, l3, ipv4).min(d.len());
            if end < l4 + 12 {
                return;
            }
            d[l4..l4 + 4].copy_from_slice(&new);
            d[l4 + 8..l4 + 12].fill(0);
            let crc = csum::crc32c(&d[l4..end]);
            d[l4 + 8..l4 + 12].copy_from_slice(&crc.to_le_bytes());
        }
        _ => {}
    }
}

fn set_arp(pkt: &mut Packet, v: &ArpSet, m: &ArpSet) {
    let Some((l3, _)) = offsets(pkt) else { return };
    let d = pkt.data_mut();
    // Only an Ethernet/IPv4 ARP header (what extraction parses) is rewritten.
    if d.len() < l3 + 28 || d[l3..l3 + 6] != [0, 1, 8, 0, 6, 4] {
        return;
    }
    let a = &mut d[l3..l3 + 28];
    let op = (u16::from_be_bytes([a[6], a[7]]) & !m.op) | (v.op & m.op);
    a[6..8].copy_from_slice(&op.to_be_bytes());
    let sha = merge(&a[8..14], &v.sha, &m.sha);
    let spa = merge(&a[14..18], &v.spa, &m.spa);
    let tha = merge(&a[18..24], &v.tha, &m.tha);
    let tpa = merge(&a[24..28], &v.tpa, &m.tpa);
    a[8..14].copy_from_slice(&sha);
    a[14..18].copy_from_slice(&spa);
    a[18..24].copy_from_slice(&tha);
    a[24..28].copy_from_slice(&tpa);
}

fn shift_offsets(pkt: &mut Packet, grow: bool) {
    let m = pkt.meta_mut();
    for o in [&mut m.l3_ofs, &mut m.l4_ofs] {
        if *o != NO_OFS {
            *o = if grow { *o + 4 } else { o.saturating_sub(4) };
        }
    }
}

fn push_vlan(pkt: &mut Packet, tpid: u16, tci: u16) {
    if pkt.len() < 12 {
        return;
    }
    let Ok(d) = pkt.push_front(4) else { return };
    d.copy_within(4..16, 0);
    d[12..14].copy_from_slice(&tpid.to_be_bytes());
    d[14..16].copy_from_slice(&(tci & !key::VLAN_CFI).to_be_bytes());
    shift_offsets(pkt, true);
}

fn set_vlan_tci(pkt: &mut Packet, tci: u16) {
    let d = pkt.data_mut();
    if d.len() < 18 {
        return;
    }
    let tpid = u16::from_be_bytes([d[12], d[13]]);
    if tpid != key::ETH_TYPE_VLAN && tpid != key::ETH_TYPE_VLAN_8021AD {
        return;
    }
    let old = u16::from_be_bytes([d[14], d[15]]);
    let new = (old & key::VLAN_CFI) | (tci & !key::VLAN_CFI);
    d[14..16].copy_from_slice(&new.to_be_bytes());
}

fn pop_vlan(pkt: &mut Packet) {
    let d = pkt.data_mut();
    if d.len() < 18 {
        return;
    }
    let tpid = u16::from_be_bytes([d[12], d[13]]);
    if tpid != key::ETH_TYPE_VLAN && tpid != key::ETH_TYPE_VLAN_8021AD {
        return;
    }
    d.copy_within(0..12, 4);
    let _ = pkt.pull_front(4);
    shift_offsets(pkt, false);
}
