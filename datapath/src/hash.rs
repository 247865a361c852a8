//! Hashing of flow keys, for the EMC and the megaflow subtables.
//!
//! Multiply–rotate mixing of 64-bit words: a few instructions per word and
//! good enough spread for power-of-two tables. Equal keys hash equally; the
//! caches always compare the key itself after a hash hit.

use crate::key::{FlowKey, Shape, HOT_WORDS, KEY_WORDS, TUNNEL4_WORDS};

#[cfg(not(all(target_arch = "x86_64", target_feature = "sse4.2")))]
const K: u64 = 0x9e37_79b9_7f4a_7c15;
/// Starting value of every hash.
pub const BASIS: u64 = 0x2545_f491_4f6c_dd1d;

/// Folds a word into the hash: one CRC32C instruction where SSE4.2 is
/// available (as OVS hashes on x86), multiply–rotate otherwise.
#[inline(always)]
pub fn mix(h: u64, w: u64) -> u64 {
    #[cfg(all(target_arch = "x86_64", target_feature = "sse4.2"))]
    // SAFETY: the build targets CPUs with SSE4.2 (the cfg above), which is
    // all the instruction requires; it touches no memory.
    unsafe {
        core::arch::x86_64::_mm_crc32_u64(h, w)
    }
    #[cfg(not(all(target_arch = "x86_64", target_feature = "sse4.2")))]
    {
        (h ^ w).wrapping_mul(K).rotate_left(31)
    }
}

#[inline(always)]
pub fn finish(h: u64) -> u32 {
    #[cfg(all(target_arch = "x86_64", target_feature = "sse4.2"))]
    {
        // CRC output is already well mixed in its 32 bits.
        h as u32
    }
    #[cfg(not(all(target_arch = "x86_64", target_feature = "sse4.2")))]
    {
        let h = h ^ (h >> 29);
        (h.wrapping_mul(K) >> 32) as u32
    }
}

/// The hash of a packet's key for the EMC: its hot words, and the rest as
/// its [`Shape`] has them.
#[inline(always)]
pub fn key_hash(key: &FlowKey) -> u32 {
    key_hash_shaped(key, key.shape())
}

/// [`key_hash`] for a key whose shape the caller knows.
#[inline(always)]
pub fn key_hash_shaped(key: &FlowKey, shape: Shape) -> u32 {
    let mut h = BASIS;
    for i in 0..HOT_WORDS {
        h = mix(h, key.word(i));
    }
    match shape {
        // A compact key's hash must stay that of its hot words alone:
        // signatures hash only those.
        Shape::Compact => {}
        Shape::Tunnel4 => {
            for i in TUNNEL4_WORDS {
                h = mix(h, key.word(i));
            }
        }
        Shape::Full => {
            // The cold words in three more chains beside the hot one, joined
            // at the end: one chain of all 20 words is 20 dependent CRC32
            // steps (3 cycles each), which perf showed as most of a
            // decapsulated packet's second datapath pass.
            let mut lanes = [BASIS ^ 1, BASIS ^ 2, BASIS ^ 3];
            for k in 0..KEY_WORDS - HOT_WORDS {
                lanes[k % 3] = mix(lanes[k % 3], key.word(HOT_WORDS + k));
            }
            h = mix(mix(mix(h, lanes[0]), lanes[1]), lanes[2]);
        }
    }
    finish(h)
}

/// [`key_hash_shaped`] of a [`Shape::Tunnel4`] key given its hot words
/// and its two [`TUNNEL4_WORDS`].
#[inline(always)]
pub fn hash_tunnel4(words: &[u64; HOT_WORDS], tun_id: u64, tun_addrs: u64) -> u32 {
    let mut h = BASIS;
    for &w in words {
        h = mix(h, w);
    }
    finish(mix(mix(h, tun_id), tun_addrs))
}

/// [`key_hash_shaped`] of a compact key given its hot words.
#[inline(always)]
pub fn hash_hot_words(words: &[u64; HOT_WORDS]) -> u32 {
    let mut h = BASIS;
    for &w in words {
        h = mix(h, w);
    }
    finish(h)
}

/// Hash of a few words.
#[inline(always)]
pub fn hash_words<const N: usize>(words: &[u64; N]) -> u32 {
    let mut h = BASIS;
    for &w in words {
        h = mix(h, w);
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
