//! A bounded lock-free multi-producer multi-consumer queue of `u32`s
//! (Vyukov's design: a sequence number per slot), used for the free list of
//! the packet pool. All safe code: slots are atomics.

use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};

struct Slot {
    seq: AtomicUsize,
    val: AtomicU32,
}

/// Pads to a cache line so producers and consumers do not share one.
#[repr(align(64))]
struct Padded(AtomicUsize);

pub struct IndexRing {
    slots: Box<[Slot]>,
    mask: usize,
    head: Padded,
    tail: Padded,
}

impl IndexRing {
    /// A ring holding up to `capacity` (rounded up to a power of two) values.
    pub fn new(capacity: usize) -> IndexRing {
        let cap = capacity.max(2).next_power_of_two();
        let slots = (0..cap)
            .map(|i| Slot {
                seq: AtomicUsize::new(i),
                val: AtomicU32::new(0),
            })
            .collect();
        IndexRing {
            slots,
            mask: cap - 1,
            head: Padded(AtomicUsize::new(0)),
            tail: Padded(AtomicUsize::new(0)),
        }
    }

    /// Adds `v`; gives it back if the ring is full.
    pub fn push(&self, v: u32) -> Result<(), u32> {
        let mut pos = self.tail.0.load(Ordering::Relaxed);
        loop {
            let slot = &self.slots[pos & self.mask];
            let seq = slot.seq.load(Ordering::Acquire);
            let diff = seq as isize - pos as isize;
            if diff == 0 {
                match self.tail.0.compare_exchange_weak(
                    pos,
                    pos + 1,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => {
                        slot.val.store(v, Ordering::Relaxed);
                        slot.seq.store(pos + 1, Ordering::Release);
                        return Ok(());
                    }
                    Err(p) => pos = p,
                }
            } else if diff < 0 {
                return Err(v);
            } else {
                pos = self.tail.0.load(Ordering::Relaxed);
            }
        }
    }

    /// Adds `v` to a ring that cannot be full (it holds fewer values than its
    /// capacity). A push can still find its slot not yet released by a
    /// consumer that was preempted mid-pop; it waits for that consumer.
    pub fn push_not_full(&self, v: u32) {
        let mut spins = 0u32;
        while self.push(v).is_err() {
            spins += 1;
            if spins < 64 {
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
    }

    /// Takes the oldest value, if any.
    pub fn pop(&self) -> Option<u32> {
        let mut pos = self.head.0.load(Ordering::Relaxed);
        loop {
            let slot = &self.slots[pos & self.mask];
            let seq = slot.seq.load(Ordering::Acquire);
            let diff = seq as isize - (pos + 1) as isize;
            if diff == 0 {
                match self.head.0.compare_exchange_weak(
                    pos,
                    pos + 1,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => {
                        let v = slot.val.load(Ordering::Relaxed);
                        slot.seq.store(pos + self.mask + 1, Ordering::Release);
                        return Some(v);
                    }
                    Err(p) => pos = p,
                }
            } else if diff < 0 {
                return None;
            } else {
                pos = self.head.0.load(Ordering::Relaxed);
            }
        }
    }

    /// Number of values queued (exact when no operation is in flight).
    pub fn len(&self) -> usize {
        let tail = self.tail.0.load(Ordering::Acquire);
        let head = self.head.0.load(Ordering::Acquire);
        tail.wrapping_sub(head)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn fifo_and_full() {
        let r = IndexRing::new(4);
        for i in 0..4 {
            r.push(i).unwrap();
        }
        assert_eq!(r.push(9), Err(9));
        assert_eq!(r.len(), 4);
        for i in 0..4 {
            assert_eq!(r.pop(), Some(i));
        }
        assert_eq!(r.pop(), None);
    }

    #[test]
    fn concurrent_values_are_neither_lost_nor_duplicated() {
        let r = Arc::new(IndexRing::new(1024));
        for i in 0..1024 {
            r.push(i).unwrap();
        }
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let r = r.clone();
                std::thread::spawn(move || {
                    for _ in 0..100_000 {
                        if let Some(v) = r.pop() {
                            r.push_not_full(v);
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let mut seen = vec![false; 1024];
        while let Some(v) = r.pop() {
            assert!(!seen[v as usize]);
            seen[v as usize] = true;
        }
        assert!(seen.iter().all(|&s| s));
    }
}
