//! The exact-match cache: per PMD thread, full key → megaflow, two-way
//! hash-indexed, with probabilistic insertion (OVS's `emc-insert-inv-prob`)
//! so that many short flows do not thrash it.

use crate::key::{FlowKey, Shape, HOT_WORDS, KEY_WORDS, TUNNEL4_WORDS};

/// Four times OVS's 8192: 10k flows fit (98% hits where 8192 entries gave
/// 41% in the side-by-side scenario c), and what a lookup reads of an entry
/// is one cache line (2 MB in all), not OVS's (and fvs's earlier) ~3.
pub const DEFAULT_EMC_ENTRIES: usize = 32768;
/// OVS's default: insert one miss in 100.
pub const DEFAULT_INSERT_INV_PROB: u32 = 100;

const EMPTY: u32 = u32::MAX;

/// Lookups over which the hit rate is judged.
const GATE_WINDOW: u32 = 8192;
/// Below one hit in this many lookups, lookups stop (but for samples). With
/// more flows than entries the lines a lookup reads are cache misses, and
/// criterion's `many_flows` (rounds of 32 flows in turn) measured the EMC
/// no cheaper than the classifier alone at 40k flows (at most four in five
/// of them fit) and a third slower at 100k (at most a third fit).
const BYPASS_BELOW_ONE_IN: u32 = 2;
/// While bypassed, one round in this many still looks up (and inserts,
/// that many times as likely), so that the bypass ends when the traffic
/// changes.
const SAMPLE_EVERY: u32 = 16;

/// What a lookup reads: the hash, the megaflow it points at and the key's
/// hot words, in one cache line. A compact key (nearly all packets) is
/// compared on this line alone; others also compare their [`Tail`].
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Entry {
    hash: u32,
    /// Megaflow slot and its generation when the entry was made.
    flow: u32,
    gen: u32,
    /// The key's shape (in what was padding): a [`Shape::Tunnel4`] lookup
    /// compares two words of the tail, which needs the rest known zero.
    shape: Shape,
    words: [u64; HOT_WORDS],
}
const _: () = assert!(std::mem::size_of::<Entry>() == 64);

/// The words of a key beyond the hot ones, for keys that are not compact.
type Tail = [u64; KEY_WORDS - HOT_WORDS];

impl Entry {
    #[inline(always)]
    fn hot_eq(&self, words: &[u64; HOT_WORDS]) -> bool {
        let mut diff = 0;
        for (a, b) in self.words.iter().zip(words) {
            diff |= a ^ b;
        }
        diff == 0
    }

    #[inline(always)]
    fn key_hot_eq(&self, key: &FlowKey) -> bool {
        let mut diff = 0;
        for (i, a) in self.words.iter().enumerate() {
            diff |= a ^ key.word(i);
        }
        diff == 0
    }
}

/// [`tail_eq`] for keys of shape [`Shape::Tunnel4`] (both of them).
#[inline(always)]
fn tunnel4_eq(tail: &Tail, key: &FlowKey) -> bool {
    let [a, b] = TUNNEL4_WORDS;
    (tail[a - HOT_WORDS] ^ key.word(a)) | (tail[b - HOT_WORDS] ^ key.word(b)) == 0
}

#[inline(always)]
fn tail_eq(tail: &Tail, key: &FlowKey) -> bool {
    let mut diff = 0;
    for (i, a) in tail.iter().enumerate() {
        diff |= a ^ key.word(HOT_WORDS + i);
    }
    diff == 0
}

/// A cache hit: the megaflow slot and generation the entry points at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EmcHit {
    pub flow: u32,
    pub gen: u32,
}

pub struct Emc {
    entries: Box<[Entry]>,
    /// Each entry's [`Tail`], read only for keys that are not compact (the
    /// hot words say which: equal hot words, equal compactness).
    tails: Box<[Tail]>,
    mask: usize,
    /// Insert one miss in `inv_prob` (0: never, 1: always).
    inv_prob: u32,
    /// What insertion uses: `inv_prob`, or less while only sampled rounds
    /// insert ([`Emc::set_sampled`]).
    cur_inv_prob: u32,
    rng: u32,
}

/// Whether EMC lookups pay, judged from their hit rate: with many more
/// flows than entries nearly all miss, and a miss's two probes, cache
/// misses themselves in a table this big, cost more than the hits save.
/// Then lookups stop, but for one round in [`SAMPLE_EVERY`]. Kept apart
/// from [`Emc`] so that the lookup loop's code does not change.
#[derive(Default)]
pub struct EmcGate {
    bypass: bool,
    rounds: u32,
    lookups: u32,
    hits: u32,
}

impl EmcGate {
    /// Whether this round of packets looks the cache up (and inserts).
    #[inline(always)]
    pub fn use_round(&mut self) -> bool {
        !self.bypass || self.sample()
    }

    #[cold]
    #[inline(never)]
    fn sample(&mut self) -> bool {
        self.rounds = self.rounds.wrapping_add(1);
        self.rounds.is_multiple_of(SAMPLE_EVERY)
    }

    /// Records a looked-up round's `lookups` and `hits`; every
    /// `GATE_WINDOW` lookups, decides whether lookups pay. Returns the
    /// decision when it changed.
    #[inline]
    pub fn record_round(&mut self, lookups: usize, hits: usize) -> Option<bool> {
        self.lookups += lookups as u32;
        self.hits += hits as u32;
        if self.lookups < GATE_WINDOW {
            return None;
        }
        let bypass = self.hits * BYPASS_BELOW_ONE_IN < self.lookups;
        self.lookups = 0;
        self.hits = 0;
        (bypass != self.bypass).then(|| {
            self.bypass = bypass;
            bypass
        })
    }

    /// Whether lookups are bypassed now.
    pub fn bypassed(&self) -> bool {
        self.bypass
    }
}

impl Emc {
    /// A cache of `entries` (rounded up to a power of two, at least 2) slots.
    pub fn new(entries: usize, inv_prob: u32) -> Emc {
        let n = entries.max(2).next_power_of_two();
        let empty = Entry {
            hash: 0,
            flow: EMPTY,
            gen: 0,
            shape: Shape::Full,
            words: [0; HOT_WORDS],
        };
        Emc {
            entries: vec![empty; n].into_boxed_slice(),
            tails: vec![[0; KEY_WORDS - HOT_WORDS]; n].into_boxed_slice(),
            mask: n - 1,
            inv_prob,
            cur_inv_prob: inv_prob,
            rng: 0x9e37_79b9,
        }
    }

    /// While only one round in [`SAMPLE_EVERY`] inserts ([`EmcGate`]),
    /// each of its misses inserts that many times as likely: as often per
    /// packet as before, or a cache emptied (by a flush, at start) would
    /// take that much longer to fill and to end the bypass.
    pub fn set_sampled(&mut self, sampled: bool) {
        self.cur_inv_prob = if sampled && self.inv_prob > 1 {
            (self.inv_prob / SAMPLE_EVERY).max(1)
        } else {
            self.inv_prob
        };
    }

    pub fn set_insert_inv_prob(&mut self, inv_prob: u32) {
        self.inv_prob = inv_prob;
        self.cur_inv_prob = inv_prob;
    }

    pub fn insert_inv_prob(&self) -> u32 {
        self.inv_prob
    }

    #[inline(always)]
    fn ways(&self, hash: u32) -> [usize; 2] {
        [hash as usize & self.mask, (hash >> 16) as usize & self.mask]
    }

    /// Asks for the lines of both ways `hash` may be in.
    #[inline(always)]
    pub fn prefetch(&self, hash: u32) {
        for i in self.ways(hash) {
            crate::prefetch::read(&self.entries[i]);
        }
    }

    /// Whether way `i` holds `key` (hashed to `hash`, of known shape).
    #[inline(always)]
    fn holds(&self, i: usize, key: &FlowKey, hash: u32, shape: Shape) -> bool {
        let e = &self.entries[i];
        e.hash == hash
            && e.key_hot_eq(key)
            && match shape {
                // Equal hot words: an entry of a compact key too.
                Shape::Compact => true,
                Shape::Tunnel4 => e.shape == Shape::Tunnel4 && tunnel4_eq(&self.tails[i], key),
                // Every entry of a key that is not compact has its tail.
                Shape::Full => tail_eq(&self.tails[i], key),
            }
    }

    /// `shape`: `key`'s shape ([`FlowKey::shape`]).
    /// Emptied entries keep their key under the inverse of its hash, so no
    /// lookup finds them; a never-used entry could only answer the all-zero
    /// key with hash 0, with flow `EMPTY` (`u32::MAX`), which no megaflow
    /// slot has: the caller's liveness check refuses it.
    #[inline(always)]
    pub fn lookup(&self, key: &FlowKey, hash: u32, shape: Shape) -> Option<EmcHit> {
        // The second way only when the first misses.
        for i in self.ways(hash) {
            if self.holds(i, key, hash, shape) {
                let e = &self.entries[i];
                return Some(EmcHit {
                    flow: e.flow,
                    gen: e.gen,
                });
            }
        }
        None
    }

    /// [`Emc::lookup`] of a compact key or a signature given as its hot words.
    #[inline(always)]
    pub fn lookup_hot(&self, words: &[u64; HOT_WORDS], hash: u32) -> Option<EmcHit> {
        for i in self.ways(hash) {
            let e = &self.entries[i];
            if e.hash == hash && e.hot_eq(words) {
                return Some(EmcHit {
                    flow: e.flow,
                    gen: e.gen,
                });
            }
        }
        None
    }

    /// Inserts after a miss, subject to the insertion probability.
    #[inline]
    pub fn maybe_insert(&mut self, key: &FlowKey, hash: u32, flow: u32, gen: u32) {
        if self.should_insert() {
            self.insert(key, hash, flow, gen);
        }
    }

    /// Whether this insertion is the one in `emc-insert-inv-prob` that is
    /// made (for callers that build the key only then).
    #[inline]
    pub fn should_insert(&mut self) -> bool {
        match self.cur_inv_prob {
            0 => false,
            1 => true,
            p => {
                // xorshift32: cheap, and only decides whether to insert.
                let mut x = self.rng;
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                self.rng = x;
                x.is_multiple_of(p)
            }
        }
    }

    pub fn insert(&mut self, key: &FlowKey, hash: u32, flow: u32, gen: u32) {
        let [a, b] = self.ways(hash);
        let shape = key.shape();
        // The same key, else an empty way, else evict by a hash bit.
        let slot = if self.holds(a, key, hash, shape) {
            a
        } else if self.holds(b, key, hash, shape) {
            b
        } else if self.entries[a].flow == EMPTY {
            a
        } else if self.entries[b].flow == EMPTY {
            b
        } else if hash & 0x8000_0000 != 0 {
            a
        } else {
            b
        };
        let e = &mut self.entries[slot];
        e.hash = hash;
        e.flow = flow;
        e.gen = gen;
        e.shape = shape;
        for (i, w) in e.words.iter_mut().enumerate() {
            *w = key.word(i);
        }
        // A compact key's tail is all zero: no lookup reads it.
        if shape != Shape::Compact {
            for (i, w) in self.tails[slot].iter_mut().enumerate() {
                *w = key.word(HOT_WORDS + i);
            }
        }
    }

    /// Empties the slot holding `key`, if any.
    pub fn remove(&mut self, key: &FlowKey, hash: u32) {
        let shape = key.shape();
        for i in self.ways(hash) {
            if self.holds(i, key, hash, shape) {
                let e = &mut self.entries[i];
                e.flow = EMPTY;
                // A hash no lookup of this key has: lookups skip the flow check.
                e.hash = !hash;
            }
        }
    }

    pub fn clear(&mut self) {
        for e in self.entries.iter_mut().filter(|e| e.flow != EMPTY) {
            e.flow = EMPTY;
            e.hash = !e.hash;
        }
    }

    pub fn capacity(&self) -> usize {
        self.entries.len()
    }

    /// Entries in use (including ones pointing at since-deleted megaflows).
    pub fn len(&self) -> usize {
        self.entries.iter().filter(|e| e.flow != EMPTY).count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> FlowKey {
        let mut k = FlowKey::ZERO;
        k.b[8] = n;
        k
    }

    #[test]
    fn hit_after_insert_and_both_ways_used() {
        let mut emc = Emc::new(8, 1);
        emc.insert(&key(1), 5, 10, 0);
        emc.insert(&key(2), 5, 11, 0);
        assert_eq!(
            emc.lookup(&key(1), 5, Shape::Compact),
            Some(EmcHit { flow: 10, gen: 0 })
        );
        assert_eq!(
            emc.lookup(&key(2), 5, Shape::Compact),
            Some(EmcHit { flow: 11, gen: 0 })
        );
        assert_eq!(emc.lookup(&key(3), 5, Shape::Compact), None);
        emc.remove(&key(1), 5);
        assert_eq!(emc.lookup(&key(1), 5, Shape::Compact), None);
    }

    /// Keys that are not compact differ beyond the hot words too: the
    /// entry's tail tells them apart.
    #[test]
    fn keys_alike_in_their_hot_words_are_told_apart_by_the_rest() {
        use crate::key::{ofs, ETH_TYPE_IPV6};
        let v6 = |last: u8| {
            let mut k = FlowKey::ZERO;
            k.set_be16(ofs::DL_TYPE, ETH_TYPE_IPV6);
            k.b[ofs::IPV6_SRC + 15] = last;
            k
        };
        let (a, b) = (v6(1), v6(2));
        assert!(!a.is_compact());
        let mut emc = Emc::new(8, 1);
        emc.insert(&a, 5, 10, 0);
        emc.insert(&b, 5, 11, 0);
        assert_eq!(
            emc.lookup(&a, 5, Shape::Full),
            Some(EmcHit { flow: 10, gen: 0 })
        );
        assert_eq!(
            emc.lookup(&b, 5, Shape::Full),
            Some(EmcHit { flow: 11, gen: 0 })
        );
        assert_eq!(emc.lookup(&v6(3), 5, Shape::Full), None);
        // Re-inserting a key updates its own way, not the other key's.
        emc.insert(&b, 5, 12, 1);
        assert_eq!(
            emc.lookup(&a, 5, Shape::Full),
            Some(EmcHit { flow: 10, gen: 0 })
        );
        assert_eq!(
            emc.lookup(&b, 5, Shape::Full),
            Some(EmcHit { flow: 12, gen: 1 })
        );
        emc.remove(&a, 5);
        assert_eq!(emc.lookup(&a, 5, Shape::Full), None);
        assert_eq!(
            emc.lookup(&b, 5, Shape::Full),
            Some(EmcHit { flow: 12, gen: 1 })
        );
        // A compact key with the same hot words as nothing here misses.
        assert_eq!(emc.lookup(&key(1), 5, Shape::Compact), None);
    }

    /// A key of an IPv4 packet out of an IPv4 tunnel is compared on two
    /// words beyond the hot ones; an entry of a key with more there (an
    /// IPv6 tunnel's address) never answers it.
    #[test]
    fn tunnel4_keys_compare_two_more_words_and_never_match_a_wider_key() {
        use crate::key::{ofs, ETH_TYPE_IP, TUN_FLAG_PRESENT};
        let tun = |vni: u8, v6: u8| {
            let mut k = FlowKey::ZERO;
            k.set_be16(ofs::DL_TYPE, ETH_TYPE_IP);
            k.set_be16(ofs::TUN_FLAGS, TUN_FLAG_PRESENT);
            k.b[ofs::TUN_ID + 7] = vni;
            k.b[ofs::TUN_SRC] = 10;
            k.b[ofs::TUN_IPV6_DST + 15] = v6;
            k
        };
        let (a, b, wide) = (tun(1, 0), tun(2, 0), tun(1, 1));
        assert_eq!((a.shape(), wide.shape()), (Shape::Tunnel4, Shape::Full));
        let hit = |flow| Some(EmcHit { flow, gen: 0 });
        let mut emc = Emc::new(8, 1);
        emc.insert(&a, 5, 10, 0);
        // Alike in the hot words and the two tunnel words, in the other way.
        emc.insert(&wide, 5, 11, 0);
        assert_eq!(emc.lookup(&a, 5, Shape::Tunnel4), hit(10));
        assert_eq!(emc.lookup(&wide, 5, Shape::Full), hit(11));
        assert_eq!(emc.lookup(&b, 5, Shape::Tunnel4), None);
        emc.remove(&a, 5);
        assert_eq!(emc.lookup(&a, 5, Shape::Tunnel4), None);
        assert_eq!(emc.lookup(&wide, 5, Shape::Full), hit(11));
        // A full lookup of a Tunnel4 key reads the whole tail and agrees.
        emc.insert(&b, 5, 12, 0);
        assert_eq!(emc.lookup(&b, 5, Shape::Full), hit(12));
    }

    #[test]
    fn lookups_stop_while_they_miss_and_resume_when_they_hit() {
        let mut gate = EmcGate::default();
        // Rounds of 32 lookups, all missing: bypassed after a window.
        for i in 0..GATE_WINDOW / 32 {
            assert!(gate.use_round());
            let changed = gate.record_round(32, 0);
            assert_eq!(changed, (i == GATE_WINDOW / 32 - 1).then_some(true));
        }
        assert!(gate.bypassed());
        let used = (0..SAMPLE_EVERY * 4).filter(|_| gate.use_round()).count();
        assert_eq!(used, 4, "one round in SAMPLE_EVERY still looks up");
        // The sampled rounds hit again (the traffic changed): lookups resume.
        let mut sampled = 0;
        while gate.bypassed() {
            if gate.use_round() {
                gate.record_round(32, 30);
                sampled += 1;
            }
        }
        assert_eq!(sampled, GATE_WINDOW / 32);
        assert!((0..10).all(|_| gate.use_round()));
        // A hit rate at the threshold keeps lookups on.
        for _ in 0..GATE_WINDOW / 32 {
            assert_eq!(
                gate.record_round(32, 32 / BYPASS_BELOW_ONE_IN as usize + 1),
                None
            );
        }
        assert!(!gate.bypassed());
    }

    #[test]
    fn sampled_rounds_insert_as_often_per_packet() {
        let mut emc = Emc::new(1 << 16, 100);
        emc.set_sampled(true);
        let n = (0..100_000).filter(|_| emc.should_insert()).count();
        // 1 in 100 / SAMPLE_EVERY = 1 in 6.
        assert!((14_000..20_000).contains(&n), "{n}");
        emc.set_sampled(false);
        let n = (0..100_000).filter(|_| emc.should_insert()).count();
        assert!((700..1_300).contains(&n), "{n}");
        let mut never = Emc::new(8, 0);
        never.set_sampled(true);
        assert!(!never.should_insert());
    }

    #[test]
    fn insertion_probability() {
        let mut never = Emc::new(1024, 0);
        let mut some = Emc::new(1 << 16, 10);
        for i in 0..1000u32 {
            let mut k = FlowKey::ZERO;
            k.b[32..36].copy_from_slice(&i.to_be_bytes());
            never.maybe_insert(&k, i.wrapping_mul(2654435761), 1, 0);
            some.maybe_insert(&k, i.wrapping_mul(2654435761), 1, 0);
        }
        assert_eq!(never.len(), 0);
        assert!((50..200).contains(&some.len()), "{}", some.len());
    }
}
