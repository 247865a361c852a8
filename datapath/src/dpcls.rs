//! The megaflow classifier: tuple space search over wildcarded flows.
//!
//! Each distinct mask has a subtable: a hash table keyed by the masked key,
//! hashing and comparing only the mask's non-zero words. A lookup tries the
//! subtables in order of recent hits; megaflows never overlap (translation
//! makes each one exactly as wide as its decision allows), so the first hit
//! is the answer.

use std::sync::Arc;

use crate::actions::DpAction;
use crate::hash::{finish, masked_hash, mix, BASIS};
use crate::key::{FlowKey, HOT_WORDS, KEY_WORDS};
use crate::prefetch;

/// Megaflows a PMD thread holds when `flow-limit` is not set. OVS stops at
/// 65536 per thread (a fixed-size table), which makes 100k active flows
/// churn through upcalls; this table grows as flows are installed.
pub const DEFAULT_MAX_FLOWS: usize = 1 << 18;
/// The most a PMD thread's share of `flow-limit` can be.
pub const MAX_FLOWS_PER_PMD: usize = 1 << 22;

const EMPTY: u32 = u32::MAX;

/// Traffic counters of one megaflow, kept by its PMD thread.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlowCounters {
    pub packets: u64,
    pub bytes: u64,
    /// PMD time (ms) of the last packet; 0 if none yet.
    pub used_ms: u64,
    pub tcp_flags: u16,
}

impl FlowCounters {
    /// Counts a group of packets forwarded at PMD time `now_ms`.
    #[inline(always)]
    pub fn credit(&mut self, packets: u64, bytes: u64, tcp_flags: u16, now_ms: u64) {
        self.packets += packets;
        self.bytes += bytes;
        self.used_ms = now_ms.max(1);
        self.tcp_flags |= tcp_flags;
    }
}

/// An installed megaflow. Laid out (with its [`Slot`]) so that what a
/// packet touches is two adjacent cache lines: the slot's first holds the
/// generation, counters and actions, the second the key's hot words; the
/// rest (the key's other words, credited counters, dependencies) follows.
#[repr(C)]
pub struct Megaflow<D> {
    pub counters: FlowCounters,
    pub actions: Arc<[DpAction]>,
    subtable: u32,
    hash: u32,
    /// Rule-set version the decision was made against.
    pub version: u64,
    /// The masked key.
    pub key: FlowKey,
    /// What `counters` held when last credited to the flow's dependencies.
    pub credited: FlowCounters,
    /// The translation's record of what the decision depended on.
    pub deps: D,
}

impl<D> Megaflow<D> {
    /// Counters not yet credited, and marks them credited.
    pub fn take_uncredited(&mut self) -> FlowCounters {
        let d = FlowCounters {
            packets: self.counters.packets - self.credited.packets,
            bytes: self.counters.bytes - self.credited.bytes,
            used_ms: self.counters.used_ms,
            tcp_flags: self.counters.tcp_flags,
        };
        self.credited = self.counters;
        d
    }
}

/// Cache-line aligned: see [`Megaflow`] (laid out by the compiler, with
/// the pmd's dependency type first, a hit read and wrote four or five
/// lines of a 448-byte slot).
#[repr(C, align(64))]
struct Slot<D> {
    gen: u32,
    flow: Option<Megaflow<D>>,
}

#[derive(Clone, Copy)]
struct Bucket {
    hash: u32,
    flow: u32,
}

/// Hash of a hot-only subtable's masked key.
#[inline(always)]
fn hash_hot(masked: &[u64; HOT_WORDS]) -> u32 {
    let mut h = BASIS;
    for &w in masked {
        h = mix(h, w);
    }
    finish(h)
}

struct Subtable {
    /// Stable while the subtable exists (its position changes with ranking).
    id: u32,
    mask: FlowKey,
    /// Indices of the mask's non-zero words.
    words: Box<[u8]>,
    /// The mask has no bits beyond the hot words: lookups hash and compare
    /// the six hot words, unrolled (`hot_mask` holds them).
    hot_only: bool,
    hot_mask: [u64; HOT_WORDS],
    buckets: Vec<Bucket>,
    bmask: usize,
    count: usize,
    hits: u64,
}

impl Subtable {
    fn new(mask: &FlowKey, id: u32) -> Subtable {
        let words: Box<[u8]> = mask.nonzero_words().map(|w| w as u8).collect();
        let hot_only = words.iter().all(|&w| (w as usize) < HOT_WORDS);
        let hot_mask = std::array::from_fn(|i| mask.word(i));
        Subtable {
            id,
            mask: *mask,
            words,
            hot_only,
            hot_mask,
            buckets: vec![
                Bucket {
                    hash: 0,
                    flow: EMPTY
                };
                8
            ],
            bmask: 7,
            count: 0,
            hits: 0,
        }
    }

    /// The subtable's hash of a key (whose hot words are `hot`).
    #[inline(always)]
    fn hash(&self, key: &FlowKey, hot: &[u64; HOT_WORDS]) -> u32 {
        if self.hot_only {
            hash_hot(&self.mask_hot(hot))
        } else {
            masked_hash(key, &self.mask, &self.words)
        }
    }

    #[inline(always)]
    fn mask_hot(&self, hot: &[u64; HOT_WORDS]) -> [u64; HOT_WORDS] {
        std::array::from_fn(|i| hot[i] & self.hot_mask[i])
    }

    /// The (slot, generation) of the flow with hash `h` whose stored
    /// masked key satisfies `same`.
    #[inline(always)]
    fn probe<D>(
        &self,
        h: u32,
        slots: &[Slot<D>],
        same: impl Fn(&FlowKey) -> bool,
    ) -> Option<(u32, u32)> {
        let mut i = h as usize & self.bmask;
        loop {
            let b = *self.buckets.get(i)?;
            if b.flow == EMPTY {
                return None;
            }
            if b.hash == h {
                let slot = slots.get(b.flow as usize)?;
                if let Some(f) = &slot.flow {
                    if same(&f.key) {
                        return Some((b.flow, slot.gen));
                    }
                }
            }
            i = (i + 1) & self.bmask;
        }
    }

    fn place(&mut self, b: Bucket) {
        let mut i = b.hash as usize & self.bmask;
        while self.buckets[i].flow != EMPTY {
            i = (i + 1) & self.bmask;
        }
        self.buckets[i] = b;
    }

    fn grow(&mut self) {
        let old = std::mem::replace(
            &mut self.buckets,
            vec![
                Bucket {
                    hash: 0,
                    flow: EMPTY
                };
                (self.bmask + 1) * 2
            ],
        );
        self.bmask = self.buckets.len() - 1;
        for b in old.into_iter().filter(|b| b.flow != EMPTY) {
            self.place(b);
        }
    }

    fn insert(&mut self, hash: u32, flow: u32) {
        if (self.count + 1) * 2 > self.buckets.len() {
            self.grow();
        }
        self.place(Bucket { hash, flow });
        self.count += 1;
    }

    /// Removes the bucket of `flow` (linear probing, backward-shift deletion).
    fn remove(&mut self, hash: u32, flow: u32) {
        let mut i = hash as usize & self.bmask;
        while self.buckets[i].flow != flow {
            if self.buckets[i].flow == EMPTY {
                return;
            }
            i = (i + 1) & self.bmask;
        }
        let mut j = i;
        loop {
            j = (j + 1) & self.bmask;
            let b = self.buckets[j];
            if b.flow == EMPTY {
                break;
            }
            let home = b.hash as usize & self.bmask;
            // The entry at j may stay if its home lies cyclically in (i, j].
            let stays = if i <= j {
                i < home && home <= j
            } else {
                i < home || home <= j
            };
            if !stays {
                self.buckets[i] = b;
                i = j;
            }
        }
        self.buckets[i] = Bucket {
            hash: 0,
            flow: EMPTY,
        };
        self.count -= 1;
    }
}

/// A lookup hit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hit {
    pub flow: u32,
    pub gen: u32,
    /// Subtables searched to find it (1 = the first).
    pub lookups: u32,
}

/// Why a megaflow was not installed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InstallError {
    /// The PMD's megaflow limit is reached.
    TableFull,
}

/// One PMD thread's megaflows.
pub struct Megaflows<D> {
    slots: Vec<Slot<D>>,
    free: Vec<u32>,
    /// Most hit first (see [`Megaflows::rank`]).
    subtables: Vec<Subtable>,
    next_subtable_id: u32,
    len: usize,
    max_flows: usize,
    /// Subtables whose mask reaches beyond the hot words.
    n_cold: usize,
    /// Scratch for [`Megaflows::evict_lru`] (kept to not allocate per sweep).
    lru: Vec<(u64, u32)>,
}

impl<D> Default for Megaflows<D> {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_FLOWS)
    }
}

impl<D> Megaflows<D> {
    pub fn new(max_flows: usize) -> Self {
        Megaflows {
            slots: Vec::new(),
            free: Vec::new(),
            subtables: Vec::new(),
            next_subtable_id: 0,
            len: 0,
            max_flows,
            n_cold: 0,
            lru: Vec::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn n_subtables(&self) -> usize {
        self.subtables.len()
    }

    fn subtable_pos(&self, id: u32) -> usize {
        // Every live flow's subtable exists.
        self.subtables
            .iter()
            .position(|s| s.id == id)
            .expect("subtable of a live flow")
    }

    pub fn set_max_flows(&mut self, max: usize) {
        self.max_flows = max;
    }

    pub fn max_flows(&self) -> usize {
        self.max_flows
    }

    /// Whether no megaflow can be installed until some are removed.
    pub fn is_full(&self) -> bool {
        self.len >= self.max_flows
    }

    /// Removes every megaflow last used before `cutoff_ms` (a flow never
    /// used counts as used at time 0), handing each to `gone`; returns how
    /// many. Idle aging: OVS's `max-idle`.
    pub fn expire(&mut self, cutoff_ms: u64, mut gone: impl FnMut(Megaflow<D>)) -> usize {
        let mut n = 0;
        for idx in 0..self.slots.len() as u32 {
            let idle = self.slots[idx as usize]
                .flow
                .as_ref()
                .is_some_and(|f| f.counters.used_ms < cutoff_ms);
            if idle {
                if let Some(f) = self.remove(idx) {
                    gone(f);
                    n += 1;
                }
            }
        }
        n
    }

    /// Removes the least recently used megaflows until at most `target`
    /// remain, handing each to `gone`; returns how many. Eviction at the
    /// flow limit, run off the per-packet path.
    pub fn evict_lru(&mut self, target: usize, mut gone: impl FnMut(Megaflow<D>)) -> usize {
        if self.len <= target {
            return 0;
        }
        let k = self.len - target;
        let mut lru = std::mem::take(&mut self.lru);
        lru.clear();
        lru.extend(self.iter().map(|(i, f)| (f.counters.used_ms, i)));
        // The k oldest first (ties: any of them).
        if k < lru.len() {
            lru.select_nth_unstable(k);
        }
        for &(_, idx) in lru.iter().take(k) {
            if let Some(f) = self.remove(idx) {
                gone(f);
            }
        }
        self.lru = lru;
        k
    }

    /// The hash of `key` in the most hit subtable, if that one is hot-only:
    /// what the prefetch steps and [`Megaflows::lookup_hashed`] take, so
    /// that a round of lookups computes it once per key.
    #[inline]
    pub fn first_hash(&self, key: &FlowKey) -> Option<u32> {
        let st = self.subtables.first().filter(|st| st.hot_only)?;
        let hot: [u64; HOT_WORDS] = std::array::from_fn(|i| key.word(i));
        Some(st.hash(key, &hot))
    }

    /// The most hit subtable's bucket for hash `h`.
    #[inline(always)]
    fn first_bucket(&self, h: u32) -> Option<&Bucket> {
        let st = self.subtables.first()?;
        st.buckets.get(h as usize & st.bmask)
    }

    /// First of two prefetch steps for a round of lookups (so that their
    /// cache misses overlap instead of following one another): the home
    /// bucket, in the most hit subtable, of the key whose
    /// [`Megaflows::first_hash`] is `h`.
    #[inline]
    pub fn prefetch_bucket(&self, h: u32) {
        if let Some(b) = self.first_bucket(h) {
            prefetch::read(b);
        }
    }

    /// Second step, once the bucket is in cache: the slot of the flow it
    /// points to, both of its lines a hit touches (the key, compared; the
    /// generation, read, and the counters, written).
    #[inline]
    pub fn prefetch_flow(&self, h: u32) {
        let Some(&b) = self.first_bucket(h) else {
            return;
        };
        if let Some(slot) = self.slots.get(b.flow as usize) {
            prefetch::write(slot, prefetch::has_write());
            if let Some(f) = &slot.flow {
                prefetch::read(&f.key);
            }
        }
    }

    /// Prefetches what running flow `idx`'s packets touches after the
    /// round's lookups: its counters (to be written; in the slot's first
    /// line) and its actions. perf at 100k flows: the counters' update was
    /// three quarters of the flow batches' time.
    #[inline]
    pub fn prefetch_use(&self, idx: u32) {
        if let Some(Some(f)) = self.slots.get(idx as usize).map(|s| s.flow.as_ref()) {
            prefetch::write(&f.counters, prefetch::has_write());
            if let Some(a) = f.actions.first() {
                prefetch::read(a);
            }
        }
    }

    /// Finds the megaflow matching `key`.
    #[inline]
    pub fn lookup(&mut self, key: &FlowKey) -> Option<Hit> {
        self.lookup_with::<false>(key, 0)
    }

    /// [`Megaflows::lookup`] given `key`'s [`Megaflows::first_hash`], taken
    /// since the subtables last changed (an insert may add one in front).
    #[inline]
    pub fn lookup_hashed(&mut self, key: &FlowKey, first: u32) -> Option<Hit> {
        self.lookup_with::<true>(key, first)
    }

    /// A separate instance for each case: one test of `HASHED` per
    /// subtable cost the plain lookup ~30 instructions per packet
    /// (callgrind megaflow1) in register pressure.
    #[inline(always)]
    fn lookup_with<const HASHED: bool>(&mut self, key: &FlowKey, first: u32) -> Option<Hit> {
        let slots = &self.slots;
        let hot: [u64; HOT_WORDS] = std::array::from_fn(|i| key.word(i));
        // Hot-only subtables come first (see `rank`): their loop needs no test.
        let n_hot = self.subtables.len() - self.n_cold;
        let (hot_tables, cold_tables) = self.subtables.split_at_mut(n_hot);
        for (n, st) in hot_tables.iter_mut().enumerate() {
            let h = if HASHED && n == 0 {
                first
            } else {
                // Scalar on purpose: each masked word feeds a CRC instruction.
                let mut h = BASIS;
                for (k, m) in hot.iter().zip(st.hot_mask.iter()) {
                    h = mix(h, k & m);
                }
                finish(h)
            };
            let hm = &st.hot_mask;
            let found = st.probe(h, slots, |stored| {
                let mut diff = 0;
                for w in 0..HOT_WORDS {
                    diff |= (hot[w] & hm[w]) ^ stored.word(w);
                }
                diff == 0
            });
            if let Some((flow, gen)) = found {
                st.hits += 1;
                return Some(Hit {
                    flow,
                    gen,
                    lookups: n as u32 + 1,
                });
            }
        }
        for (n, st) in cold_tables.iter_mut().enumerate() {
            let (words, mask) = (&st.words, &st.mask);
            let found = st.probe(masked_hash(key, mask, words), slots, |stored| {
                words.iter().all(|&w| {
                    key.word(w as usize) & mask.word(w as usize) == stored.word(w as usize)
                })
            });
            if let Some((flow, gen)) = found {
                st.hits += 1;
                return Some(Hit {
                    flow,
                    gen,
                    lookups: (n_hot + n) as u32 + 1,
                });
            }
        }
        None
    }

    /// Whether some subtable's mask reaches beyond the hot words (so that
    /// lookups read a key's cold words).
    pub fn has_cold_masks(&self) -> bool {
        self.n_cold > 0
    }

    /// The live megaflow in slot `idx` if its generation is still `gen`.
    #[inline(always)]
    pub fn get_mut(&mut self, idx: u32, gen: u32) -> Option<&mut Megaflow<D>> {
        let slot = self.slots.get_mut(idx as usize)?;
        if slot.gen != gen {
            return None;
        }
        slot.flow.as_mut()
    }

    /// Whether slot `idx` holds a live megaflow of generation `gen`.
    #[inline(always)]
    pub fn is_live(&self, idx: u32, gen: u32) -> bool {
        self.slots
            .get(idx as usize)
            .is_some_and(|s| s.gen == gen && s.flow.is_some())
    }

    pub fn get(&self, idx: u32) -> Option<&Megaflow<D>> {
        self.slots.get(idx as usize)?.flow.as_ref()
    }

    /// The mask of a megaflow.
    pub fn mask_of(&self, f: &Megaflow<D>) -> &FlowKey {
        &self.subtables[self.subtable_pos(f.subtable)].mask
    }

    /// Installs a megaflow for `key` under `mask`; returns its slot and generation.
    pub fn insert(
        &mut self,
        key: &FlowKey,
        mask: &FlowKey,
        actions: Arc<[DpAction]>,
        deps: D,
        version: u64,
    ) -> Result<(u32, u32), InstallError> {
        if self.len >= self.max_flows {
            return Err(InstallError::TableFull);
        }
        let si = match self.subtables.iter().position(|s| s.mask == *mask) {
            Some(i) => i,
            None => {
                let st = Subtable::new(mask, self.next_subtable_id);
                self.next_subtable_id = self.next_subtable_id.wrapping_add(1);
                if st.hot_only {
                    let at = self.subtables.len() - self.n_cold;
                    self.subtables.insert(at, st);
                    at
                } else {
                    self.n_cold += 1;
                    self.subtables.push(st);
                    self.subtables.len() - 1
                }
            }
        };
        let masked = key.and(mask);
        let st = &mut self.subtables[si];
        let hash = st.hash(&masked, &std::array::from_fn(|i| masked.word(i)));
        let subtable = st.id;
        let flow = Megaflow {
            key: masked,
            actions,
            counters: FlowCounters::default(),
            credited: FlowCounters::default(),
            deps,
            version,
            subtable,
            hash,
        };
        let idx = match self.free.pop() {
            Some(i) => {
                self.slots[i as usize].flow = Some(flow);
                i
            }
            None => {
                self.slots.push(Slot {
                    gen: 0,
                    flow: Some(flow),
                });
                (self.slots.len() - 1) as u32
            }
        };
        self.subtables[si].insert(hash, idx);
        self.len += 1;
        Ok((idx, self.slots[idx as usize].gen))
    }

    /// Removes the megaflow in slot `idx`, returning it.
    pub fn remove(&mut self, idx: u32) -> Option<Megaflow<D>> {
        let slot = self.slots.get_mut(idx as usize)?;
        let f = slot.flow.take()?;
        slot.gen = slot.gen.wrapping_add(1);
        self.free.push(idx);
        self.len -= 1;
        let si = self.subtable_pos(f.subtable);
        let st = &mut self.subtables[si];
        st.remove(f.hash, idx);
        if st.count == 0 {
            if !st.hot_only {
                self.n_cold -= 1;
            }
            self.subtables.remove(si);
        }
        Some(f)
    }

    /// Slots of every live megaflow.
    pub fn indices(&self) -> Vec<u32> {
        (0..self.slots.len() as u32)
            .filter(|&i| self.slots[i as usize].flow.is_some())
            .collect()
    }

    /// Iterates over live megaflows.
    pub fn iter(&self) -> impl Iterator<Item = (u32, &Megaflow<D>)> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.flow.as_ref().map(|f| (i as u32, f)))
    }

    pub fn iter_mut(&mut self) -> impl Iterator<Item = (u32, &mut Megaflow<D>)> {
        self.slots
            .iter_mut()
            .enumerate()
            .filter_map(|(i, s)| s.flow.as_mut().map(|f| (i as u32, f)))
    }

    /// Reorders subtables by hits since the last ranking (OVS re-sorts its
    /// subtable vector periodically the same way).
    pub fn rank(&mut self) {
        // Hot-only subtables stay ahead of the others (`lookup` relies on it).
        self.subtables
            .sort_by_key(|s| (!s.hot_only, std::cmp::Reverse(s.hits)));
        for s in &mut self.subtables {
            s.hits = 0;
        }
    }

    /// Removes every megaflow, returning them.
    pub fn drain(&mut self) -> Vec<Megaflow<D>> {
        let idx = self.indices();
        idx.into_iter().filter_map(|i| self.remove(i)).collect()
    }
}

const _: () = assert!(KEY_WORDS < 256);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::ofs;

    fn key(dst: [u8; 4], port: u32) -> FlowKey {
        let mut k = FlowKey::ZERO;
        k.set_in_port(port);
        k.set_bytes(ofs::NW_DST, &dst);
        k
    }

    fn mask(prefix_bytes: usize, in_port: bool) -> FlowKey {
        let mut m = FlowKey::ZERO;
        if in_port {
            m.set_in_port(u32::MAX);
        }
        for i in 0..prefix_bytes {
            m.b[ofs::NW_DST + i] = 0xff;
        }
        m
    }

    #[test]
    fn lookup_insert_remove_across_subtables() {
        let mut t: Megaflows<u32> = Megaflows::new(100);
        let acts: Arc<[DpAction]> = Arc::from(vec![]);
        let (a, _) = t
            .insert(&key([10, 0, 0, 1], 1), &mask(3, true), acts.clone(), 1, 0)
            .unwrap();
        let (b, _) = t
            .insert(&key([10, 1, 0, 1], 1), &mask(2, true), acts.clone(), 2, 0)
            .unwrap();
        assert_eq!(t.n_subtables(), 2);
        assert_eq!(t.lookup(&key([10, 0, 0, 99], 1)).unwrap().flow, a);
        assert_eq!(t.lookup(&key([10, 1, 7, 7], 1)).unwrap().flow, b);
        assert!(t.lookup(&key([10, 0, 0, 1], 2)).is_none());
        assert!(t.lookup(&key([11, 0, 0, 1], 1)).is_none());
        let f = t.remove(a).unwrap();
        assert_eq!(f.deps, 1);
        assert!(t.lookup(&key([10, 0, 0, 99], 1)).is_none());
        assert_eq!(t.n_subtables(), 1);
        assert!(t.get_mut(a, 0).is_none(), "old generation must not resolve");
    }

    #[test]
    fn a_hit_touches_two_adjacent_lines_of_its_slot() {
        // Dependencies of some size (they come last and move nothing).
        let mut t: Megaflows<[u64; 7]> = Megaflows::new(100);
        let acts: Arc<[DpAction]> = Arc::from(vec![]);
        for i in 0..5u8 {
            t.insert(
                &key([10, 0, 0, i], 1),
                &mask(4, true),
                acts.clone(),
                [0; 7],
                0,
            )
            .unwrap();
        }
        let line = |p: usize| p / 64;
        for slot in &t.slots {
            let s = slot as *const Slot<[u64; 7]> as usize;
            let f = slot.flow.as_ref().unwrap();
            assert_eq!(s % 64, 0, "slot not line aligned");
            let at = |p: *const u8| p as usize;
            for (what, p, len) in [
                ("gen", at((&slot.gen as *const u32).cast()), 4),
                (
                    "counters",
                    at((&f.counters as *const FlowCounters).cast()),
                    size_of::<FlowCounters>(),
                ),
                (
                    "actions",
                    at((&f.actions as *const Arc<[DpAction]>).cast()),
                    16,
                ),
            ] {
                assert_eq!((line(p), line(p + len - 1)), (line(s), line(s)), "{what}");
            }
            let k = at((&f.key as *const FlowKey).cast());
            assert_eq!(
                (line(k), line(k + 8 * HOT_WORDS - 1)),
                (line(s) + 1, line(s) + 1),
                "key's hot words"
            );
        }
    }

    #[test]
    fn many_flows_one_subtable_with_removals() {
        let mut t: Megaflows<u32> = Megaflows::new(100_000);
        let acts: Arc<[DpAction]> = Arc::from(vec![]);
        let m = mask(4, true);
        let mut idx = Vec::new();
        for i in 0..5000u32 {
            let k = key(i.to_be_bytes(), 1);
            idx.push(t.insert(&k, &m, acts.clone(), i, 0).unwrap().0);
        }
        for i in (0..5000u32).step_by(3) {
            t.remove(idx[i as usize]).unwrap();
        }
        for i in 0..5000u32 {
            let hit = t.lookup(&key(i.to_be_bytes(), 1));
            assert_eq!(hit.is_some(), i % 3 != 0, "flow {i}");
            if let Some(h) = hit {
                assert_eq!(t.get(h.flow).unwrap().deps, i);
            }
        }
    }

    #[test]
    fn cold_subtables_after_hot_ones() {
        let mut t: Megaflows<u8> = Megaflows::new(100);
        let acts: Arc<[DpAction]> = Arc::from(vec![]);
        // A mask on the IPv6 source (a cold word), then a hot one.
        let mut cold = mask(0, true);
        cold.b[ofs::IPV6_SRC..ofs::IPV6_SRC + 16].fill(0xff);
        let mut k6 = key([0; 4], 1);
        k6.b[ofs::IPV6_SRC + 15] = 7;
        let (c, _) = t.insert(&k6, &cold, acts.clone(), 1, 0).unwrap();
        let (h, _) = t
            .insert(&key([10, 0, 0, 1], 1), &mask(4, true), acts.clone(), 2, 0)
            .unwrap();
        assert!(t.has_cold_masks());
        assert_eq!(
            t.lookup(&key([10, 0, 0, 1], 1))
                .map(|x| (x.flow, x.lookups)),
            Some((h, 1))
        );
        assert_eq!(
            t.lookup(&k6).map(|x| (x.flow, x.lookups)),
            Some((c, 2)),
            "cold subtables come after hot ones"
        );
        k6.b[ofs::IPV6_SRC + 15] = 8;
        assert!(t.lookup(&k6).is_none());
        for _ in 0..5 {
            k6.b[ofs::IPV6_SRC + 15] = 7;
            t.lookup(&k6).unwrap();
        }
        t.rank();
        assert_eq!(
            t.lookup(&k6).unwrap().lookups,
            2,
            "ranking keeps hot subtables first"
        );
        t.remove(c).unwrap();
        assert!(!t.has_cold_masks());
        assert!(t.lookup(&k6).is_none());
        assert_eq!(t.lookup(&key([10, 0, 0, 1], 1)).unwrap().flow, h);
    }

    #[test]
    fn limit_and_ranking() {
        let mut t: Megaflows<()> = Megaflows::new(2);
        let acts: Arc<[DpAction]> = Arc::from(vec![]);
        t.insert(&key([1, 0, 0, 0], 1), &mask(1, true), acts.clone(), (), 0)
            .unwrap();
        t.insert(&key([2, 0, 0, 0], 1), &mask(2, true), acts.clone(), (), 0)
            .unwrap();
        assert_eq!(
            t.insert(&key([3, 0, 0, 0], 1), &mask(3, true), acts, (), 0),
            Err(InstallError::TableFull)
        );
        for _ in 0..10 {
            assert_eq!(t.lookup(&key([2, 0, 0, 0], 1)).unwrap().lookups, 2);
        }
        t.rank();
        assert_eq!(t.lookup(&key([2, 0, 0, 0], 1)).unwrap().lookups, 1);
    }

    /// Installs flows 0..n of one subtable, flow i last used at `used(i)`.
    fn table_with_uses(n: u32, used: impl Fn(u32) -> u64) -> (Megaflows<u32>, Vec<u32>) {
        let mut t: Megaflows<u32> = Megaflows::new(n as usize);
        let acts: Arc<[DpAction]> = Arc::from(vec![]);
        let mut idx = Vec::new();
        for i in 0..n {
            let (f, g) = t
                .insert(&key(i.to_be_bytes(), 1), &mask(4, true), acts.clone(), i, 0)
                .unwrap();
            t.get_mut(f, g).unwrap().counters.used_ms = used(i);
            idx.push(f);
        }
        (t, idx)
    }

    #[test]
    fn eviction_takes_least_recently_used_first() {
        // Used times out of insertion order: flow i used at (i * 7) % 10.
        let (mut t, _) = table_with_uses(10, |i| u64::from((i * 7) % 10) + 1);
        assert!(t.is_full());
        let acts: Arc<[DpAction]> = Arc::from(vec![]);
        assert_eq!(
            t.insert(&key([9, 9, 9, 9], 1), &mask(4, true), acts.clone(), 99, 0),
            Err(InstallError::TableFull)
        );
        let mut gone = Vec::new();
        assert_eq!(t.evict_lru(6, |f| gone.push(f.counters.used_ms)), 4);
        gone.sort();
        assert_eq!(gone, vec![1, 2, 3, 4], "the four oldest go");
        assert_eq!(t.len(), 6);
        for i in 0..10u32 {
            let used = u64::from((i * 7) % 10) + 1;
            assert_eq!(
                t.lookup(&key(i.to_be_bytes(), 1)).is_some(),
                used > 4,
                "flow {i}"
            );
        }
        // Room again: a new flow installs and is found.
        t.insert(&key([9, 9, 9, 9], 1), &mask(4, true), acts, 99, 0)
            .unwrap();
        assert_eq!(t.evict_lru(100, |_| panic!("under target")), 0);
        // Evicting everything empties the subtables too.
        assert_eq!(t.evict_lru(0, |_| {}), 7);
        assert!(t.is_empty() && t.n_subtables() == 0);
    }

    #[test]
    fn idle_aging_removes_only_flows_idle_past_the_cutoff() {
        // Flows 0..5 used at 1000 ms, 5..10 at 5000 ms; flow 3 never (0).
        let (mut t, idx) = table_with_uses(10, |i| match i {
            3 => 0,
            0..=4 => 1000,
            _ => 5000,
        });
        let mut gone = Vec::new();
        assert_eq!(
            t.expire(1000, |f| gone.push(f.deps)),
            1,
            "only the never-used one"
        );
        assert_eq!(gone, vec![3]);
        assert_eq!(t.expire(4999, |f| gone.push(f.deps)), 4);
        gone.sort();
        assert_eq!(gone, vec![0, 1, 2, 3, 4]);
        assert_eq!(t.len(), 5);
        assert!(t.get(idx[0]).is_none() && t.get(idx[7]).is_some());
        assert!(t.lookup(&key(7u32.to_be_bytes(), 1)).is_some());
        assert!(t.lookup(&key(2u32.to_be_bytes(), 1)).is_none());
    }
}
