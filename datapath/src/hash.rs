//! Hashing of flow keys, for the EMC and the megaflow subtables.
//!
//! Multiply–rotate mixing of 64-bit words: a few instructions per word and
//! good enough spread for power-of-two tables. Equal keys hash equally; the
//! caches always compare the key itself after a hash hit.

use crate::key::{FlowKey, ETH_TYPE_IPV6};

const K: u64 = 0x9e37_79b9_7f4a_7c15;
const BASIS: u64 = 0x2545_f491_4f6c_dd1d;

#[inline(always)]
pub fn mix(h: u64, w: u64) -> u64 {
    (h ^ w).wrapping_mul(K).rotate_left(31)
}

#[inline(always)]
pub fn finish(h: u64) -> u32 {
    let h = h ^ (h >> 29);
    let h = h.wrapping_mul(K);
    (h >> 32) as u32
}

/// The hash of a packet's key for the EMC: the words every packet uses
/// (ports, Ethernet, IPv4, L4), plus the IPv6 addresses and the tunnel
/// words when the packet has them.
#[inline(always)]
pub fn key_hash(key: &FlowKey, tunnel: bool) -> u32 {
    let mut h = BASIS;
    for i in 0..6 {
        h = mix(h, key.word(i));
    }
    if key.dl_type() == ETH_TYPE_IPV6 {
        for i in 6..10 {
            h = mix(h, key.word(i));
        }
    }
    if tunnel {
        for i in 14..20 {
            h = mix(h, key.word(i));
        }
    }
    finish(h)
}

/// Hash of `key & mask` over the words listed in `words` (a subtable's
/// non-zero mask words). `masked` says `key` is already masked.
#[inline(always)]
pub fn masked_hash(key: &FlowKey, mask: &FlowKey, words: &[u8]) -> u32 {
    let mut h = BASIS;
    for &i in words {
        let i = i as usize;
        h = mix(h, key.word(i) & mask.word(i));
    }
    finish(h)
}
