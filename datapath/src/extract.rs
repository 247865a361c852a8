//! Flow key extraction: parses L2–L4 of a packet once into a [`FlowKey`],
//! records the L3/L4 offsets in the packet's metadata and computes the flow
//! hash.
//!
//! Truncated or malformed headers end parsing where they start: the key
//! keeps what came before (a valid, shorter key) and a counter moves.

use crate::hash;
use crate::key::{
    self, ofs, FlowKey, Shape, FRAG_ANY, FRAG_LATER, HOT_LEN, HOT_WORDS, KEY_WORDS, TUNNEL4_WORDS,
    VLAN_CFI,
};
use crate::packet::{Packet, NO_OFS};

/// Counts of packets whose headers ended early or did not make sense.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExtractStats {
    /// A header was cut short by the end of the frame.
    pub truncated: u64,
    /// A header was present but invalid (bad version, length, options).
    pub malformed: u64,
}

/// The first `N` bytes of `d` from `at`, as an array (no panics).
#[inline(always)]
fn arr<const N: usize>(d: &[u8], at: usize) -> Option<&[u8; N]> {
    d.get(at..at.checked_add(N)?)?.try_into().ok()
}

#[inline(always)]
fn be16(b: [u8; 2]) -> u16 {
    u16::from_be_bytes(b)
}

/// Extracts the key of `pkt` into `key` and returns (and stores in the
/// packet's metadata) the flow hash.
#[inline]
pub fn extract(pkt: &mut Packet, key: &mut FlowKey, stats: &mut ExtractStats) -> u32 {
    let (hash, shape) = extract_hot(pkt, key, stats, true);
    if shape == Shape::Compact {
        key.clear_cold();
    }
    hash
}

/// The hot-path form of [`extract`]: also tells the key's [`Shape`], and
/// leaves a compact key's words beyond the hot ones as they were (stale).
/// The caller clears them ([`FlowKey::clear_cold`]) before using the key
/// for anything but the EMC. Without `want_hash` (no EMC to look up) the
/// hash is not computed and is 0.
#[inline(always)]
pub fn extract_hot(
    pkt: &mut Packet,
    key: &mut FlowKey,
    stats: &mut ExtractStats,
    want_hash: bool,
) -> (u32, Shape) {
    let in_port = pkt.meta().in_port;
    extract_arrived(pkt, in_port, key, stats, want_hash)
}

/// [`extract_hot`] for a packet that just arrived on datapath port
/// `in_port` (which is recorded in its metadata).
#[inline(always)]
pub fn extract_arrived(
    pkt: &mut Packet,
    in_port: u32,
    key: &mut FlowKey,
    stats: &mut ExtractStats,
    want_hash: bool,
) -> (u32, Shape) {
    let (m, d) = pkt.meta_and_data();
    m.in_port = in_port;
    if let Some((mut words, l4)) = fast_ipv4_l4(d, in_port, m.recirc_id) {
        let (h, shape) = if m.tunnel.is_present() {
            // Whole words, stored as such: the hash reads them back at
            // once (narrower stores of the fields would stall each load).
            let (w5, tail) = tunnel_words(&m.tunnel);
            words[5] |= w5;
            key.set_hot(&words);
            for (i, w) in tail.iter().enumerate() {
                key.set_word(HOT_WORDS + i, *w);
            }
            // The packet is IPv4, so only the tunnel's words can be set
            // beyond the hot ones; an IPv4 tunnel leaves its IPv6 ones zero.
            let at = |o: usize| o / 8 - HOT_WORDS;
            let v6 = &tail[at(ofs::TUN_IPV6_SRC)..at(ofs::TUN_IPV6_DST) + 2];
            let shape = if v6.iter().all(|&w| w == 0) {
                Shape::Tunnel4
            } else {
                Shape::Full
            };
            let h = match (want_hash, shape) {
                (false, _) => 0,
                (true, Shape::Tunnel4) => hash::hash_tunnel4(
                    &words,
                    tail[TUNNEL4_WORDS[0] - HOT_WORDS],
                    tail[TUNNEL4_WORDS[1] - HOT_WORDS],
                ),
                (true, _) => hash::key_hash_shaped(key, shape),
            };
            (h, shape)
        } else {
            key.set_hot(&words);
            let h = if want_hash {
                hash::hash_hot_words(&words)
            } else {
                0
            };
            (h, Shape::Compact)
        };
        m.l3_ofs = 14;
        m.l4_ofs = l4;
        m.hash = h;
        return (h, shape);
    }
    extract_general(pkt, in_port, key, stats, want_hash)
}

/// The tunnel metadata's bits in a key's hot word 5, and its words beyond
/// the hot ones (those of IPv6, ND and ARP, zero for a fast-path packet,
/// then the tunnel's).
#[inline(always)]
fn tunnel_words(t: &crate::packet::TunnelMeta) -> (u64, [u64; KEY_WORDS - HOT_WORDS]) {
    let word = |b: &[u8]| {
        let mut w = [0u8; 8];
        w.copy_from_slice(b);
        u64::from_ne_bytes(w)
    };
    let mut w5 = [0u8; 8];
    w5[ofs::TUN_FLAGS - 40..ofs::TUN_FLAGS - 40 + 2].copy_from_slice(&t.flags.to_be_bytes());
    w5[ofs::TUN_TOS - 40] = t.tos;
    w5[ofs::TUN_TTL - 40] = t.ttl;
    let mut tail = [0u64; KEY_WORDS - HOT_WORDS];
    let at = |o: usize| o / 8 - HOT_WORDS;
    tail[at(ofs::TUN_ID)] = u64::from_ne_bytes(t.tun_id.to_be_bytes());
    let mut addrs = [0u8; 8];
    addrs[..4].copy_from_slice(&t.ipv4_src);
    addrs[4..].copy_from_slice(&t.ipv4_dst);
    tail[at(ofs::TUN_SRC)] = u64::from_ne_bytes(addrs);
    tail[at(ofs::TUN_IPV6_SRC)] = word(&t.ipv6_src[..8]);
    tail[at(ofs::TUN_IPV6_SRC) + 1] = word(&t.ipv6_src[8..]);
    tail[at(ofs::TUN_IPV6_DST)] = word(&t.ipv6_dst[..8]);
    tail[at(ofs::TUN_IPV6_DST) + 1] = word(&t.ipv6_dst[8..]);
    (u64::from_ne_bytes(w5), tail)
}

/// [`extract_arrived`] by the general parser alone (every packet shape).
/// Public for the checks that compare it with the fast path.
#[inline]
pub fn extract_general(
    pkt: &mut Packet,
    in_port: u32,
    key: &mut FlowKey,
    stats: &mut ExtractStats,
    want_hash: bool,
) -> (u32, Shape) {
    let (m, d) = pkt.meta_and_data();
    m.in_port = in_port;
    key.b[8..HOT_LEN].fill(0);
    key.set_in_port(in_port);
    key.set_recirc_id(m.recirc_id);
    let tunnel = m.tunnel.is_present();
    let (l3, l4, simple) = parse(d, key, stats);
    if tunnel {
        // IPv6 and ARP parsing cleared the cold words already.
        if simple {
            key.clear_cold();
        }
        let t = &m.tunnel;
        key.set_bytes(ofs::TUN_ID, &t.tun_id.to_be_bytes());
        key.set_bytes(ofs::TUN_SRC, &t.ipv4_src);
        key.set_bytes(ofs::TUN_DST, &t.ipv4_dst);
        key.set_bytes(ofs::TUN_IPV6_SRC, &t.ipv6_src);
        key.set_bytes(ofs::TUN_IPV6_DST, &t.ipv6_dst);
        key.set_be16(ofs::TUN_FLAGS, t.flags);
        key.b[ofs::TUN_TOS] = t.tos;
        key.b[ofs::TUN_TTL] = t.ttl;
    }
    // As `key.shape()`, which only a tunnel's key needs to look at.
    let shape = match (tunnel, simple) {
        (true, _) => key.shape(),
        (false, true) => Shape::Compact,
        (false, false) => Shape::Full,
    };
    let h = if want_hash {
        hash::key_hash_shaped(key, shape)
    } else {
        0
    };
    m.l3_ofs = l3;
    m.l4_ofs = l4;
    m.hash = h;
    (h, shape)
}

/// What a PMD holds in a key slot: a key of each [`Shape`] (a compact
/// one's cold words left stale), or an EMC signature.
pub const KIND_FULL: u8 = Shape::Full as u8;
pub const KIND_COMPACT: u8 = Shape::Compact as u8;
pub const KIND_TUNNEL4: u8 = Shape::Tunnel4 as u8;
pub const KIND_SIG: u8 = 2;
/// An EMC hit on a megaflow since removed (the slot may hold nothing of
/// the packet's: it is looked at again).
pub const KIND_STALE: u8 = 3;

/// The shape of the key in a slot of kind `kind` (one of a key's kinds).
#[inline(always)]
pub fn kind_shape(kind: u8) -> Shape {
    match kind {
        KIND_COMPACT => Shape::Compact,
        KIND_TUNNEL4 => Shape::Tunnel4,
        _ => Shape::Full,
    }
}

/// Set in a signature's first word. Datapath port numbers stay below 2^31
/// (the datapath refuses others), so a signature never equals a compact key.
pub const SIG_MARK: u64 = 1 << 31;

/// The EMC signature of `pkt`, which just arrived on `in_port`, for the
/// packets [`fast_ipv4_l4`] takes (`None` for the others: their key is
/// looked up instead). A signature is the packet's header words as loaded,
/// with what changes from packet to packet masked out: equal signatures
/// mean equal keys, and building one costs a few loads; the key itself is
/// made only on an EMC miss ([`key_of_sig`]). Sets the packet's metadata
/// (input port, offsets, hash) and returns the words and their hash.
#[inline(always)]
pub fn emc_signature(pkt: &mut Packet, in_port: u32) -> Option<([u64; HOT_WORDS], u32)> {
    let (m, d) = pkt.meta_and_data();
    if m.tunnel.is_present() {
        return None;
    }
    let (words, h) = fast_ipv4_sig(d, in_port, m.recirc_id)?;
    m.in_port = in_port;
    m.l3_ofs = 14;
    m.l4_ofs = 34;
    m.hash = h;
    Some((words, h))
}

/// The key of a packet from its signature (what [`fast_ipv4_l4`] would
/// build from the packet, rearranged from the words already loaded).
#[inline]
pub fn key_of_sig(sig: &[u64; HOT_WORDS]) -> [u64; HOT_WORDS] {
    const MAC: u64 = 0xffff_ffff_ffff;
    let [s0, s1, s2, s3, s4, s5] = *sig;
    [
        s0 & !SIG_MARK,
        (s1 & MAC) | ((s2 >> 32) & 0xffff) << 48,
        (s1 >> 48) | (s2 & 0xffff_ffff) << 16,
        (s5 >> 56) << 16 | (s2 >> 56) << 24 | ((s5 >> 48) & 0xff) << 32 | (s3 & 0xffff << 48),
        s4,
        s3 & 0xffff_ffff,
    ]
}

/// The signature words of the packets [`fast_ipv4_l4`] takes, and their hash. Word layout: the first as in a key (plus
/// [`SIG_MARK`]); bytes 0–7 and 8–15 of the frame (MACs, Ethertype, IHL,
/// TOS); the L4 ports with the TCP flags where a key has them (so
/// `be16_at(ofs::TCP_FLAGS)` reads them from either); IPv4 addresses;
/// bytes 16–23 with length and identification masked (fragment bits, TTL,
/// protocol).
#[inline(always)]
fn fast_ipv4_sig(d: &[u8], in_port: u32, recirc_id: u32) -> Option<([u64; HOT_WORDS], u32)> {
    let f = arr::<42>(d, 0)?;
    let le64 = |at: usize| {
        u64::from_le_bytes([
            f[at],
            f[at + 1],
            f[at + 2],
            f[at + 3],
            f[at + 4],
            f[at + 5],
            f[at + 6],
            f[at + 7],
        ])
    };
    let w8 = le64(8);
    let w16 = le64(16);
    // Ethertype 0x0800, version 4 with a 20-byte header; no fragment bits.
    if (w8 >> 32) & 0xff_ffff != 0x45_0008 || (w16 >> 32) & 0xff3f != 0 {
        return None;
    }
    let tot_len = (w16 as u16).swap_bytes() as usize;
    if 14 + tot_len > d.len() {
        return None;
    }
    let ports = u32::from_le_bytes([f[34], f[35], f[36], f[37]]) as u64;
    let l4 = match (w16 >> 56) as u8 {
        key::IPPROTO_UDP if tot_len >= 28 => ports,
        key::IPPROTO_TCP if tot_len >= 40 => {
            let t = arr::<2>(d, 46)?;
            let doff = (t[0] >> 4) as usize * 4;
            if doff < 20 || doff > tot_len - 20 {
                return None;
            }
            ports | ((t[0] & 0x0f) as u64) << 48 | (t[1] as u64) << 56
        }
        _ => return None,
    };
    let words = [
        in_port as u64 | SIG_MARK | (recirc_id as u64) << 32,
        le64(0),
        w8,
        l4,
        le64(26),
        w16 & 0xffff_ffff_0000_0000,
    ];
    // Like OVS's 5-tuple hash: what tells flows apart, not the MACs nor
    // the TCP flags (a connection keeps one hash).
    Some((
        words,
        hash::hash_words(&[words[0], ports, words[4], words[5]]),
    ))
}

/// The hot key words of the most common packet, built straight from the
/// frame with a few 8-byte loads: untagged Ethernet, IPv4 without options
/// and not fragmented, carrying a whole TCP or UDP header. `None` for
/// anything else (the general parser then gives the same key, and counts
/// what is wrong). Also returns the L4 offset.
#[inline(always)]
fn fast_ipv4_l4(d: &[u8], in_port: u32, recirc_id: u32) -> Option<([u64; HOT_WORDS], u16)> {
    let f = arr::<42>(d, 0)?;
    let le64 = |at: usize| {
        u64::from_le_bytes([
            f[at],
            f[at + 1],
            f[at + 2],
            f[at + 3],
            f[at + 4],
            f[at + 5],
            f[at + 6],
            f[at + 7],
        ])
    };
    // Ethertype 0x0800, version 4 with a 20-byte header, no fragment bits.
    if f[12] != 0x08 || f[13] != 0x00 || f[14] != 0x45 || f[20] & 0x3f != 0 || f[21] != 0 {
        return None;
    }
    let tot_len = be16([f[16], f[17]]) as usize;
    if 14 + tot_len > d.len() {
        return None;
    }
    let proto = f[23];
    let (ports, flags) = match proto {
        key::IPPROTO_UDP if tot_len >= 28 => {
            (u32::from_le_bytes([f[34], f[35], f[36], f[37]]), 0u64)
        }
        key::IPPROTO_TCP if tot_len >= 40 => {
            let t = arr::<20>(d, 34)?;
            let doff = (t[12] >> 4) as usize * 4;
            if doff < 20 || doff > tot_len - 20 {
                return None;
            }
            let flags = ((t[12] & 0x0f) as u64) << 48 | (t[13] as u64) << 56;
            (u32::from_le_bytes([t[0], t[1], t[2], t[3]]), flags)
        }
        _ => return None,
    };
    const MAC: u64 = 0xffff_ffff_ffff;
    let words = [
        in_port as u64 | (recirc_id as u64) << 32,
        (le64(0) & MAC) | (f[12] as u64) << 48 | (f[13] as u64) << 56,
        le64(6) & MAC,
        (proto as u64) << 16 | (f[15] as u64) << 24 | (f[22] as u64) << 32 | flags,
        le64(26),
        ports as u64,
    ];
    Some((words, 34))
}

/// Parses `d` into `key`; returns the L3 and L4 offsets, and false if the
/// packet is IPv6, ARP or RARP (fields beyond the key's hot words).
#[inline(always)]
fn parse(d: &[u8], key: &mut FlowKey, stats: &mut ExtractStats) -> (u16, u16, bool) {
    let Some(eth) = arr::<14>(d, 0) else {
        stats.truncated += 1;
        return (NO_OFS, NO_OFS, true);
    };
    key.b[ofs::DL_DST..ofs::DL_DST + 6].copy_from_slice(&eth[0..6]);
    key.b[ofs::DL_SRC..ofs::DL_SRC + 6].copy_from_slice(&eth[6..12]);
    let mut eth_type = be16([eth[12], eth[13]]);
    let mut at = 14;

    // Up to two VLAN tags (QinQ); a third stays payload, as in OVS.
    let mut n_vlans = 0;
    while (eth_type == key::ETH_TYPE_VLAN || eth_type == key::ETH_TYPE_VLAN_8021AD) && n_vlans < 2 {
        let Some(tag) = arr::<4>(d, at) else {
            stats.truncated += 1;
            key.set_be16(ofs::DL_TYPE, eth_type);
            return (NO_OFS, NO_OFS, true);
        };
        let slot = if n_vlans == 0 {
            ofs::VLAN_TCI
        } else {
            ofs::VLAN2_TCI
        };
        key.set_be16(slot, be16([tag[0], tag[1]]) | VLAN_CFI);
        eth_type = be16([tag[2], tag[3]]);
        at += 4;
        n_vlans += 1;
    }

    if eth_type < 0x600 {
        // 802.3 length field: only LLC/SNAP with a zero OUI carries an ethertype
        // (and only if it is one, not another length: as OVS).
        match arr::<8>(d, at) {
            Some(s) if s[..6] == [0xaa, 0xaa, 0x03, 0, 0, 0] && be16([s[6], s[7]]) >= 0x600 => {
                eth_type = be16([s[6], s[7]]);
                at += 8;
            }
            _ => {
                key.set_be16(ofs::DL_TYPE, key::DL_TYPE_NONE);
                return (NO_OFS, NO_OFS, true);
            }
        }
    }
    key.set_be16(ofs::DL_TYPE, eth_type);

    let l3 = &d[at.min(d.len())..];
    let (l4, simple) = match eth_type {
        key::ETH_TYPE_IP => (parse_ipv4::<false>(l3, key, stats), true),
        key::ETH_TYPE_IPV6 => (parse_ipv6(l3, key, stats), false),
        key::ETH_TYPE_ARP | key::ETH_TYPE_RARP => {
            parse_arp(l3, key, stats);
            (None, false)
        }
        _ => return (at as u16, NO_OFS, true),
    };
    match l4 {
        Some(l4) => (at as u16, (at + l4) as u16, simple),
        None => (at as u16, NO_OFS, simple),
    }
}

/// Returns the L4 offset within `d`, if there is an L4 header to look at.
#[inline(always)]
/// `NO_OPTIONS`: the caller checked that the header is version 4 with no options.
fn parse_ipv4<const NO_OPTIONS: bool>(
    d: &[u8],
    key: &mut FlowKey,
    stats: &mut ExtractStats,
) -> Option<usize> {
    let Some(h) = arr::<20>(d, 0) else {
        stats.truncated += 1;
        return None;
    };
    let ihl = if NO_OPTIONS {
        20
    } else {
        (h[0] & 0x0f) as usize * 4
    };
    if !NO_OPTIONS && (h[0] >> 4 != 4 || ihl < 20) {
        stats.malformed += 1;
        return None;
    }
    let tot_len = be16([h[2], h[3]]) as usize;
    if tot_len > d.len() || ihl > tot_len {
        if ihl > tot_len {
            stats.malformed += 1;
        } else {
            stats.truncated += 1;
        }
        return None;
    }
    key.b[ofs::NW_SRC..ofs::NW_SRC + 8].copy_from_slice(&h[12..20]);
    key.b[ofs::NW_PROTO] = h[9];
    key.b[ofs::NW_TOS] = h[1];
    key.b[ofs::NW_TTL] = h[8];
    let frag_off = be16([h[6], h[7]]);
    if frag_off & 0x3fff != 0 {
        let later = frag_off & 0x1fff != 0;
        key.b[ofs::NW_FRAG] = FRAG_ANY | if later { FRAG_LATER } else { 0 };
        if later {
            return None;
        }
    }
    // `d[..tot_len]` drops Ethernet padding.
    parse_l4(h[9], &d[ihl..tot_len], key, stats).then_some(ihl)
}

/// Parses the L4 header; false if there is none to point at.
#[inline(always)]
fn parse_l4(proto: u8, d: &[u8], key: &mut FlowKey, stats: &mut ExtractStats) -> bool {
    match proto {
        key::IPPROTO_TCP => {
            let Some(t) = arr::<20>(d, 0) else {
                stats.truncated += 1;
                return false;
            };
            let doff = (t[12] >> 4) as usize * 4;
            if doff < 20 || doff > d.len() {
                stats.malformed += 1;
                return false;
            }
            key.b[ofs::TP_SRC..ofs::TP_SRC + 4].copy_from_slice(&t[0..4]);
            key.set_be16(ofs::TCP_FLAGS, be16([t[12], t[13]]) & 0x0fff);
        }
        key::IPPROTO_UDP => {
            let Some(u) = arr::<8>(d, 0) else {
                stats.truncated += 1;
                return false;
            };
            key.b[ofs::TP_SRC..ofs::TP_SRC + 4].copy_from_slice(&u[0..4]);
        }
        key::IPPROTO_SCTP => {
            let Some(s) = arr::<12>(d, 0) else {
                stats.truncated += 1;
                return false;
            };
            key.b[ofs::TP_SRC..ofs::TP_SRC + 4].copy_from_slice(&s[0..4]);
        }
        key::IPPROTO_ICMP => {
            let Some(i) = arr::<8>(d, 0) else {
                stats.truncated += 1;
                return false;
            };
            key.b[ofs::TP_SRC + 1] = i[0];
            key.b[ofs::TP_DST + 1] = i[1];
        }
        _ => return false,
    }
    true
}

const IPV6_NEXTHDR_HOP: u8 = 0;
const IPV6_NEXTHDR_ROUTING: u8 = 43;
const IPV6_NEXTHDR_FRAGMENT: u8 = 44;
const IPV6_NEXTHDR_AH: u8 = 51;
const IPV6_NEXTHDR_DEST: u8 = 60;
/// Extension headers followed before giving up on reaching L4.
const IPV6_MAX_EXT_HEADERS: usize = 16;

#[inline(always)]
fn parse_ipv6(d: &[u8], key: &mut FlowKey, stats: &mut ExtractStats) -> Option<usize> {
    key.clear_cold();
    let Some(h) = arr::<40>(d, 0) else {
        stats.truncated += 1;
        return None;
    };
    if h[0] >> 4 != 6 {
        stats.malformed += 1;
        return None;
    }
    let end = 40 + be16([h[4], h[5]]) as usize;
    if end > d.len() {
        stats.truncated += 1;
        return None;
    }
    let d = &d[..end];
    let vtcfl = u32::from_be_bytes([h[0], h[1], h[2], h[3]]);
    key.b[ofs::NW_TOS] = (vtcfl >> 20) as u8;
    key.set_be32(ofs::IPV6_LABEL, vtcfl & 0x000f_ffff);
    key.b[ofs::NW_TTL] = h[7];
    key.b[ofs::IPV6_SRC..ofs::IPV6_SRC + 32].copy_from_slice(&h[8..40]);

    let mut nh = h[6];
    let mut at = 40;
    for _ in 0..IPV6_MAX_EXT_HEADERS {
        let len = match nh {
            IPV6_NEXTHDR_HOP | IPV6_NEXTHDR_ROUTING | IPV6_NEXTHDR_DEST | IPV6_NEXTHDR_AH => {
                let Some(e) = arr::<2>(d, at) else {
                    stats.truncated += 1;
                    key.b[ofs::NW_PROTO] = nh;
                    return None;
                };
                let len = if nh == IPV6_NEXTHDR_AH {
                    (e[1] as usize + 2) * 4
                } else {
                    (e[1] as usize + 1) * 8
                };
                nh = e[0];
                len
            }
            IPV6_NEXTHDR_FRAGMENT => {
                let Some(f) = arr::<8>(d, at) else {
                    stats.truncated += 1;
                    key.b[ofs::NW_PROTO] = nh;
                    return None;
                };
                let later = be16([f[2], f[3]]) & 0xfff8 != 0;
                key.b[ofs::NW_FRAG] = FRAG_ANY | if later { FRAG_LATER } else { 0 };
                nh = f[0];
                if later {
                    key.b[ofs::NW_PROTO] = nh;
                    return None;
                }
                8
            }
            _ => break,
        };
        if at + len > d.len() {
            stats.truncated += 1;
            key.b[ofs::NW_PROTO] = nh;
            return None;
        }
        at += len;
    }
    key.b[ofs::NW_PROTO] = nh;
    let l4 = &d[at..];
    if nh == key::IPPROTO_ICMPV6 {
        return parse_icmpv6(l4, key, stats).then_some(at);
    }
    parse_l4(nh, l4, key, stats).then_some(at)
}

const ND_NEIGHBOR_SOLICIT: u8 = 135;
const ND_NEIGHBOR_ADVERT: u8 = 136;
const ND_OPT_SOURCE_LINKADDR: u8 = 1;
const ND_OPT_TARGET_LINKADDR: u8 = 2;

fn parse_icmpv6(d: &[u8], key: &mut FlowKey, stats: &mut ExtractStats) -> bool {
    let Some(i) = arr::<4>(d, 0) else {
        stats.truncated += 1;
        return false;
    };
    key.b[ofs::TP_SRC + 1] = i[0];
    key.b[ofs::TP_DST + 1] = i[1];
    if i[1] != 0 || (i[0] != ND_NEIGHBOR_SOLICIT && i[0] != ND_NEIGHBOR_ADVERT) {
        return true;
    }
    let Some(target) = arr::<16>(d, 8) else {
        stats.truncated += 1;
        return true;
    };
    key.b[ofs::ND_TARGET..ofs::ND_TARGET + 16].copy_from_slice(target);
    // Options, as OVS reads them: whole 8-byte units; a source and a target
    // link-layer address (8-byte options) at most once each, whatever the
    // message; other options skipped; fewer than 8 trailing bytes ignored.
    let mut opts = &d[24..];
    while let Some(o) = arr::<8>(opts, 0) {
        let len = o[1] as usize * 8;
        if len == 0 || len > opts.len() {
            return nd_invalid(key, stats);
        }
        let slot = match o[0] {
            ND_OPT_SOURCE_LINKADDR if len == 8 => Some(ofs::ARP_SHA),
            ND_OPT_TARGET_LINKADDR if len == 8 => Some(ofs::ARP_THA),
            _ => None,
        };
        if let Some(slot) = slot {
            if key.b[slot..slot + 6] != [0; 6] {
                return nd_invalid(key, stats);
            }
            key.b[slot..slot + 6].copy_from_slice(&o[2..8]);
        }
        opts = &opts[len..];
    }
    true
}

/// A malformed ND message keeps its ICMPv6 type/code but no ND fields (as OVS).
fn nd_invalid(key: &mut FlowKey, stats: &mut ExtractStats) -> bool {
    stats.malformed += 1;
    key.b[ofs::ND_TARGET..ofs::ND_TARGET + 16].fill(0);
    key.b[ofs::ARP_SHA..ofs::ARP_SHA + 6].fill(0);
    key.b[ofs::ARP_THA..ofs::ARP_THA + 6].fill(0);
    true
}

fn parse_arp(d: &[u8], key: &mut FlowKey, stats: &mut ExtractStats) {
    key.clear_cold();
    let Some(a) = arr::<28>(d, 0) else {
        stats.truncated += 1;
        return;
    };
    if be16([a[0], a[1]]) != 1 || be16([a[2], a[3]]) != key::ETH_TYPE_IP || a[4] != 6 || a[5] != 4 {
        stats.malformed += 1;
        return;
    }
    let op = be16([a[6], a[7]]);
    if op <= 0xff {
        key.b[ofs::NW_PROTO] = op as u8;
    }
    key.b[ofs::ARP_SHA..ofs::ARP_SHA + 6].copy_from_slice(&a[8..14]);
    key.b[ofs::NW_SRC..ofs::NW_SRC + 4].copy_from_slice(&a[14..18]);
    key.b[ofs::ARP_THA..ofs::ARP_THA + 6].copy_from_slice(&a[18..24]);
    key.b[ofs::NW_DST..ofs::NW_DST + 4].copy_from_slice(&a[24..28]);
}

/// The TCP flags of a frame as extraction would find them (0 when it is not
/// TCP), for the flow statistics of packets forwarded without extraction
/// (simple match). Follows one 802.1Q/802.1ad tag, IPv4 options and IPv6
/// without extension headers; a later fragment or a cut header has none.
#[inline(always)]
pub fn tcp_flags_of(f: &[u8]) -> u16 {
    // Untagged IPv4 without options, from one fixed-size read: a third of
    // the instructions of the walk below (callgrind, vhost_p2p).
    if let Some(h) = arr::<54>(f, 0) {
        if h[12..15] == [0x08, 0x00, 0x45] {
            // Other protocols leave first: the checks below compile
            // branch-free, 25 instructions a packet (callgrind, vhost_p2p,
            // TCP frames), which UDP frames paid too for their 0.
            if h[23] != 6 {
                return 0;
            }
            let tot = be16([h[16], h[17]]) as usize;
            let later_fragment = be16([h[20], h[21]]) & 0x1fff != 0;
            let doff = (h[46] >> 4) as usize * 4;
            let tcp = !later_fragment && 14 + tot <= f.len();
            return if tcp && doff >= 20 && 20 + doff <= tot {
                be16([h[46] & 0x0f, h[47]])
            } else {
                0
            };
        }
    }
    let be16 = |i: usize| {
        f.get(i..i + 2)
            .map_or(0, |b| u16::from_be_bytes([b[0], b[1]]))
    };
    let mut l3 = 14;
    let mut eth_type = be16(12);
    if eth_type == 0x8100 || eth_type == 0x88a8 {
        eth_type = be16(16);
        l3 = 18;
    }
    // Where the TCP header starts, and where the IP packet ends.
    let (l4, end) = match eth_type {
        0x0800 => {
            let (Some(&vihl), Some(&proto)) = (f.get(l3), f.get(l3 + 9)) else {
                return 0;
            };
            if proto != 6 || vihl >> 4 != 4 || vihl & 0x0f < 5 || be16(l3 + 6) & 0x1fff != 0 {
                return 0;
            }
            (l3 + 4 * (vihl & 0x0f) as usize, l3 + be16(l3 + 2) as usize)
        }
        0x86dd => {
            if f.get(l3 + 6) != Some(&6) || f.get(l3).is_none_or(|v| v >> 4 != 6) {
                return 0;
            }
            (l3 + 40, l3 + 40 + be16(l3 + 4) as usize)
        }
        _ => return 0,
    };
    match (f.get(l4 + 12), f.get(l4 + 13)) {
        // A data offset beyond the IP packet: malformed, as extraction finds.
        (Some(&a), Some(&b))
            if end <= f.len() && a >> 4 >= 5 && l4 + 4 * (a >> 4) as usize <= end =>
        {
            u16::from_be_bytes([a & 0x0f, b])
        }
        _ => 0,
    }
}
