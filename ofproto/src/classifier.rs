//! One OpenFlow table's rules, searched by priority with tuple space search,
//! recording the fields each lookup consulted (the megaflow's wildcards).
//!
//! Rules are grouped in subtables by mask; subtables are ordered by the
//! highest priority they hold. A lookup visits subtables until the next one
//! cannot beat the best match found, unwildcarding each visited subtable's
//! mask: exactly the bits that decided the result.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

use crate::flow::{Match, OfFlow, OF_WORDS};
use crate::rule::Rule;

/// A fast hasher for masked flows (64-bit multiply–rotate over the bytes);
/// hash flooding is not a concern for rule tables the operator writes.
#[derive(Default)]
pub struct FlowHasher(u64);

impl Hasher for FlowHasher {
    fn finish(&self) -> u64 {
        let h = self.0;
        (h ^ (h >> 29)).wrapping_mul(0xbf58_476d_1ce4_e5b9)
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let w = u64::from_ne_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
            self.0 = (self.0 ^ w)
                .wrapping_mul(0x9e37_79b9_7f4a_7c15)
                .rotate_left(31);
        }
        for &b in chunks.remainder() {
            self.0 = (self.0 ^ b as u64)
                .wrapping_mul(0x9e37_79b9_7f4a_7c15)
                .rotate_left(31);
        }
    }
}

pub type FlowMap<K, V> = HashMap<K, V, BuildHasherDefault<FlowHasher>>;

struct Subtable {
    mask: OfFlow,
    /// Rules by masked value, each list highest priority first.
    rules: FlowMap<OfFlow, Vec<Arc<Rule>>>,
    max_priority: u16,
    n_rules: usize,
}

impl Subtable {
    fn recompute_max(&mut self) {
        self.max_priority = self
            .rules
            .values()
            .filter_map(|v| v.first())
            .map(|r| r.priority)
            .max()
            .unwrap_or(0);
    }
}

/// The rules of one table.
#[derive(Default)]
pub struct Classifier {
    subtables: Vec<Subtable>,
    n_rules: usize,
}

impl Classifier {
    pub fn len(&self) -> usize {
        self.n_rules
    }

    pub fn is_empty(&self) -> bool {
        self.n_rules == 0
    }

    pub fn n_subtables(&self) -> usize {
        self.subtables.len()
    }

    fn sort(&mut self) {
        self.subtables
            .sort_by_key(|s| std::cmp::Reverse(s.max_priority));
    }

    /// The rule with exactly this match and priority.
    pub fn find_exact(&self, m: &Match, priority: u16) -> Option<&Arc<Rule>> {
        let st = self.subtables.iter().find(|s| s.mask == m.mask)?;
        st.rules
            .get(&m.flow)?
            .iter()
            .find(|r| r.priority == priority)
    }

    /// Inserts `rule`, replacing one with the same match and priority (returned).
    pub fn insert(&mut self, rule: Arc<Rule>) -> Option<Arc<Rule>> {
        let m = rule.match_;
        let si = match self.subtables.iter().position(|s| s.mask == m.mask) {
            Some(i) => i,
            None => {
                self.subtables.push(Subtable {
                    mask: m.mask,
                    rules: FlowMap::default(),
                    max_priority: 0,
                    n_rules: 0,
                });
                self.subtables.len() - 1
            }
        };
        let st = &mut self.subtables[si];
        let list = st.rules.entry(m.flow).or_default();
        let mut replaced = None;
        if let Some(i) = list.iter().position(|r| r.priority == rule.priority) {
            replaced = Some(std::mem::replace(&mut list[i], rule));
        } else {
            // Highest priority first; among equals (impossible here) keep insertion order.
            let at = list
                .iter()
                .position(|r| r.priority < rule.priority)
                .unwrap_or(list.len());
            let p = rule.priority;
            list.insert(at, rule);
            st.n_rules += 1;
            self.n_rules += 1;
            if st.n_rules == 1 || p > st.max_priority {
                st.max_priority = p;
            }
        }
        self.sort();
        replaced
    }

    /// Removes the rule with this match and priority.
    pub fn remove(&mut self, m: &Match, priority: u16) -> Option<Arc<Rule>> {
        let si = self.subtables.iter().position(|s| s.mask == m.mask)?;
        let st = &mut self.subtables[si];
        let list = st.rules.get_mut(&m.flow)?;
        let i = list.iter().position(|r| r.priority == priority)?;
        let r = list.remove(i);
        if list.is_empty() {
            st.rules.remove(&m.flow);
        }
        st.n_rules -= 1;
        self.n_rules -= 1;
        if st.n_rules == 0 {
            self.subtables.remove(si);
        } else if priority >= st.max_priority {
            st.recompute_max();
            self.sort();
        }
        Some(r)
    }

    /// The highest-priority rule matching `flow`. Every bit of the subtable
    /// masks visited is OR-ed into `wc` except those in `known` (bits the
    /// pipeline set itself, which do not depend on the packet).
    pub fn lookup(&self, flow: &OfFlow, wc: &mut OfFlow, known: &OfFlow) -> Option<&Arc<Rule>> {
        let mut best: Option<&Arc<Rule>> = None;
        for st in &self.subtables {
            if let Some(b) = best {
                if st.max_priority <= b.priority {
                    break;
                }
            }
            for i in 0..OF_WORDS {
                let m = st.mask.word(i) & !known.word(i);
                if m != 0 {
                    let cur = wc.word(i) | m;
                    wc.b[i * 8..i * 8 + 8].copy_from_slice(&cur.to_ne_bytes());
                }
            }
            let masked = flow.and(&st.mask);
            if let Some(r) = st.rules.get(&masked).and_then(|l| l.first()) {
                if best.is_none_or(|b| r.priority > b.priority) {
                    best = Some(r);
                }
            }
        }
        best
    }

    /// Every rule, in no particular order.
    pub fn rules(&self) -> impl Iterator<Item = &Arc<Rule>> {
        self.subtables
            .iter()
            .flat_map(|s| s.rules.values().flatten())
    }
}
