//! State shared by a vhost-user port's control thread and the PMD threads
//! that poll its queues.
//!
//! Each virtqueue sits in a [`VringCell`]: its state behind a spin lock that
//! a PMD thread takes once per burst (a single uncontended atomic exchange)
//! and the control thread takes to change the ring (addresses, memory
//! table, enable, stop). Guest memory is only touched under that lock, so
//! once the control thread has swapped a ring's memory table under the lock,
//! no PMD can still be using the old mapping, which is then unmapped. The
//! lock is never held across a system call by the control thread, and a PMD
//! that finds it taken skips the queue for this poll (receive) or retries
//! briefly (transmit).

use std::cell::UnsafeCell;
use std::ops::{Deref, DerefMut};
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::sync::Mutex;

use super::vring::{Ring, RingError};
use super::MAX_QUEUE_PAIRS;

/// Number of virtqueues: a receive and a transmit queue per pair.
pub const MAX_VRINGS: usize = 2 * MAX_QUEUE_PAIRS;

/// No transmit ring is usable (in `Shared::tx_map`).
pub const NO_PAIR: u8 = u8::MAX;

/// One virtqueue's state. Only read or written by the holder of the lock.
#[derive(Default)]
pub struct VringState {
    /// `SET_VRING_NUM`.
    pub size: u32,
    /// `SET_VRING_ADDR`, kept to re-locate the ring after a memory table change.
    pub addr: Option<super::msg::VringAddr>,
    /// The located ring (when addresses, size and memory are known and valid).
    pub ring: Option<Ring>,
    /// Next available entry to consume.
    pub last_avail: u16,
    /// Next used entry to fill (equal to `last_avail`: we complete in order).
    pub last_used: u16,
    /// Used index at the last notification (EVENT_IDX).
    pub signalled_used: u16,
    pub signalled_valid: bool,
    pub kick: Option<OwnedFd>,
    pub call: Option<OwnedFd>,
    pub err: Option<OwnedFd>,
    /// `SET_VRING_KICK` received and no `GET_VRING_BASE` since.
    pub started: bool,
    /// `SET_VRING_ENABLE` (or started without protocol features).
    pub enabled: bool,
    /// The frontend corrupted the ring; nothing is done until it is reset.
    pub broken: bool,
    /// Whether the data path may run: located, started, enabled, not broken.
    pub ready: bool,
    // Negotiated features, copied here for the data path.
    pub event_idx: bool,
    pub indirect: bool,
    pub mrg_rxbuf: bool,
    /// Bytes of the virtio-net header in front of every frame (12 or 10).
    pub hdr_len: usize,
}

impl VringState {
    /// Recomputes `ready`.
    pub fn refresh(&mut self) {
        self.ready = self.ring.is_some() && self.started && self.enabled && !self.broken;
    }

    /// Forgets everything (disconnect, reset): closes the descriptors and
    /// drops the ring's hold on the memory.
    pub fn reset(&mut self) {
        *self = VringState::default();
    }
}

/// Counters of one queue direction. Written by the holder of the vring
/// lock (so plain load + store), read by anyone.
#[derive(Default)]
pub struct QueueStats {
    pub packets: AtomicU64,
    pub bytes: AtomicU64,
    pub dropped: AtomicU64,
    pub errors: AtomicU64,
    pub retries: AtomicU64,
}

impl QueueStats {
    #[inline(always)]
    pub fn add(c: &AtomicU64, v: u64) {
        if v != 0 {
            c.store(c.load(Ordering::Relaxed).wrapping_add(v), Ordering::Relaxed);
        }
    }

    pub fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }
}

/// A virtqueue: its state behind a spin lock.
pub struct VringCell {
    lock: AtomicBool,
    /// Mirror of `state.ready`, read without the lock so that an idle or
    /// disabled queue costs one load per poll.
    pub ready_hint: AtomicBool,
    /// The last fault the frontend caused on this ring (a [`RingError`]
    /// code + 1; 0: none). Read by `status` without the lock.
    pub fault: AtomicU32,
    pub stats: QueueStats,
    state: UnsafeCell<VringState>,
}

// SAFETY: `state` is only reached through a `VringGuard`, which exists only
// while `lock` is held by its owner; everything else is atomic.
unsafe impl Sync for VringCell {}
// SAFETY: as above; the state (raw ring pointers, descriptors) may move
// between threads with the lock.
unsafe impl Send for VringCell {}

impl Default for VringCell {
    fn default() -> Self {
        VringCell {
            lock: AtomicBool::new(false),
            ready_hint: AtomicBool::new(false),
            fault: AtomicU32::new(0),
            stats: QueueStats::default(),
            state: UnsafeCell::new(VringState::default()),
        }
    }
}

impl VringCell {
    /// Takes the lock if it is free (one atomic exchange).
    #[inline(always)]
    pub fn try_lock(&self) -> Option<VringGuard<'_>> {
        self.lock
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .ok()
            .map(|_| VringGuard { cell: self })
    }

    /// Takes the lock, spinning up to `spins` times; `None` if still taken.
    #[inline]
    pub fn lock_spin(&self, spins: u32) -> Option<VringGuard<'_>> {
        for _ in 0..spins {
            if let Some(g) = self.try_lock() {
                return Some(g);
            }
            while self.lock.load(Ordering::Relaxed) {
                std::hint::spin_loop();
            }
        }
        self.try_lock()
    }

    /// Takes the lock, however long it takes (control thread only: PMD
    /// threads hold it for one burst).
    pub fn lock(&self) -> VringGuard<'_> {
        let mut n = 0u32;
        loop {
            if let Some(g) = self.try_lock() {
                return g;
            }
            n += 1;
            if n < 1000 {
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
    }

    /// Records a fault of the frontend on this ring.
    #[cold]
    pub fn set_fault(&self, e: RingError) {
        self.fault.store(fault_code(e), Ordering::Relaxed);
    }
}

/// Exclusive access to a ring's state.
pub struct VringGuard<'a> {
    cell: &'a VringCell,
}

impl VringGuard<'_> {
    /// Recomputes `ready` and publishes it to the lock-free hint.
    pub fn refresh(&mut self) {
        self.deref_mut().refresh();
        let r = self.ready;
        self.cell.ready_hint.store(r, Ordering::Relaxed);
    }

    /// Marks the ring broken (until the frontend resets it) and records why.
    #[cold]
    pub fn break_ring(&mut self, e: RingError) {
        self.broken = true;
        self.cell.set_fault(e);
        self.refresh();
    }
}

impl Deref for VringGuard<'_> {
    type Target = VringState;
    #[inline(always)]
    fn deref(&self) -> &VringState {
        // SAFETY: the guard exists only while the lock is held, so no other
        // reference to the state exists.
        unsafe { &*self.cell.state.get() }
    }
}

impl DerefMut for VringGuard<'_> {
    #[inline(always)]
    fn deref_mut(&mut self) -> &mut VringState {
        // SAFETY: as in deref; `&mut self` makes this access unique.
        unsafe { &mut *self.cell.state.get() }
    }
}

impl Drop for VringGuard<'_> {
    #[inline(always)]
    fn drop(&mut self) {
        self.cell.lock.store(false, Ordering::Release);
    }
}

/// Stable codes for [`RingError`] kinds (for the lock-free fault word).
fn fault_code(e: RingError) -> u32 {
    1 + match e {
        RingError::BadSize(_) => 0,
        RingError::Misaligned => 1,
        RingError::NotMapped(_) => 2,
        RingError::AvailAhead { .. } => 3,
        RingError::HeadOutOfRange { .. } => 4,
        RingError::NextOutOfRange { .. } => 5,
        RingError::Loop(_) => 6,
        RingError::NestedIndirect => 7,
        RingError::IndirectNotNegotiated => 8,
        RingError::IndirectWithNext => 9,
        RingError::BadIndirectLen(_) => 10,
        RingError::BadAddress { .. } => 11,
        RingError::WriteInTx => 12,
        RingError::ReadInRx => 13,
        RingError::TooLong(_) => 14,
        RingError::TooShort(_) => 15,
        RingError::TooFragmented(_) => 16,
    }
}

/// A short description of a fault code (the details are gone by then).
pub fn fault_text(code: u32) -> Option<&'static str> {
    Some(match code.checked_sub(1)? {
        0 => "bad ring size",
        1 => "misaligned ring address",
        2 => "ring outside the guest memory",
        3 => "available index ahead of the ring",
        4 => "descriptor head outside the ring",
        5 => "descriptor next index outside its table",
        6 => "descriptor chain loops or exceeds the ring",
        7 => "nested indirect descriptor table",
        8 => "indirect descriptor not negotiated",
        9 => "indirect descriptor with NEXT",
        10 => "bad indirect table length",
        11 => "descriptor address outside the guest memory",
        12 => "device-writable descriptor in a transmit chain",
        13 => "device-readable descriptor in a receive chain",
        14 => "frame too long for a packet buffer",
        15 => "chain shorter than the virtio-net header",
        16 => "receive buffers too fragmented",
        _ => return None,
    })
}

/// What `status` and `is_up` report, kept by the control thread.
#[derive(Clone, Debug, Default)]
pub struct Info {
    pub connected: bool,
    pub features: u64,
    pub protocol_features: u64,
    /// MTU the frontend announced (`NET_SET_MTU`).
    pub guest_mtu: Option<u64>,
    /// Ring sizes by virtqueue index (0: not set up).
    pub vring_sizes: [u32; MAX_VRINGS],
    /// Protocol-level error of the current or last connection.
    pub error: Option<String>,
    pub connections: u64,
}

/// Everything a port's threads share.
pub struct Shared {
    pub name: String,
    pub vrings: [VringCell; MAX_VRINGS],
    /// Transmit queue id (a PMD's handle) → queue pair it sends on.
    pub tx_map: [AtomicU8; MAX_QUEUE_PAIRS],
    pub info: Mutex<Info>,
    /// MTU in use (mtu_request; 1500 by default).
    pub mtu: AtomicU32,
    /// `options:tx-retries-max`.
    pub tx_retries_max: AtomicU32,
    /// Frames dropped for exceeding the MTU on transmit.
    pub tx_mtu_drops: AtomicU64,
    /// Transmit batches dropped because no ring was ready.
    pub tx_down_drops: AtomicU64,
}

impl Shared {
    pub fn new(name: &str) -> Shared {
        Shared {
            name: name.to_string(),
            vrings: Default::default(),
            tx_map: std::array::from_fn(|_| AtomicU8::new(NO_PAIR)),
            info: Mutex::new(Info::default()),
            mtu: AtomicU32::new(1500),
            tx_retries_max: AtomicU32::new(8),
            tx_mtu_drops: AtomicU64::new(0),
            tx_down_drops: AtomicU64::new(0),
        }
    }

    pub fn info(&self) -> std::sync::MutexGuard<'_, Info> {
        self.info.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Recomputes which pair each transmit queue id uses: the pairs whose
    /// receive ring (the guest's; our transmit ring) is enabled, dealt round
    /// robin. Called by the control thread after enable changes.
    pub fn remap_tx(&self) {
        let mut on = [0u8; MAX_QUEUE_PAIRS];
        let mut n = 0;
        for q in 0..MAX_QUEUE_PAIRS {
            if self.vrings[2 * q].ready_hint.load(Ordering::Relaxed) {
                on[n] = q as u8;
                n += 1;
            }
        }
        for (i, m) in self.tx_map.iter().enumerate() {
            m.store(if n == 0 { NO_PAIR } else { on[i % n] }, Ordering::Relaxed);
        }
    }
}
