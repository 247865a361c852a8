//! The data path of a vhost-user port: virtio-net frames in and out of the
//! guest's split rings, polled by PMD threads.
//!
//! Receive (the guest's transmit queue, virtqueue `2q + 1`): up to a batch of
//! available chains are copied, minus their virtio-net header, into pool
//! buffers; each chain goes back to the used ring with length 0; the used
//! index is published once per burst.
//!
//! Transmit (the guest's receive queue, virtqueue `2q`): each frame gets a
//! virtio-net header (`num_buffers` counts the buffers it spans with
//! MRG_RXBUF) and is copied into the guest's buffers; the used index is
//! published once per burst, plus before every retry when the ring is full.
//!
//! Both directions then write the call eventfd if, and only if, the driver
//! asked for an interrupt (EVENT_IDX `used_event`, or the available ring's
//! NO_INTERRUPT flag clear): at most one system call per burst, none with a
//! polling driver. Nothing allocates; the only lock is the ring's, once per
//! burst.
//!
//! A chain that breaks the rules (addresses outside the memory table,
//! loops, bad indirect tables, wrong direction) costs that frame: the chain
//! is returned unused, the queue's error counter moves and the port reports
//! the fault. An available index more than a ring ahead, or a head outside
//! the ring, means the ring itself is corrupt: the ring stops until the
//! frontend sets it up again.

use std::os::fd::AsRawFd;
use std::sync::atomic::{fence, AtomicBool, Ordering};
use std::sync::Arc;

use fvs_datapath::netdev::{RxQueue, TxQueue};
use fvs_datapath::packet::{Batch, Packet, PacketPool, BATCH_SIZE, DATA_ROOM};
use fvs_datapath::prefetch;

use super::device::{QueueStats, Shared, VringCell, VringState, NO_PAIR};
use super::vring::{
    need_event, walk_chain_from, Desc, Ring, RingError, Seg, AVAIL_F_NO_INTERRUPT, DESC_F_WRITE,
};
use super::MAX_QUEUE_PAIRS;

/// Segments one transmitted frame may be spread over.
const MAX_SEGS: usize = 64;
/// How long a transmitting PMD spins for a ring another thread holds.
const TX_LOCK_SPINS: u32 = 64;
/// Used-ring entries kept back before they are written out.
const SHADOW: usize = 64;

/// The used-ring entries of a burst, written out together just before the
/// used index (as DPDK's shadow used ring does): written one by one while
/// the driver reads the previous ones, their cache lines would bounce
/// between the two cores for every packet.
struct UsedShadow {
    /// The used-ring slot of the first entry held.
    slot: u16,
    n: usize,
    e: [(u16, u32); SHADOW],
}

impl UsedShadow {
    /// Starts a burst whose first entry goes to used slot `slot`.
    #[inline(always)]
    fn start(&mut self, slot: u16) {
        self.slot = slot;
        self.n = 0;
    }

    #[inline(always)]
    fn push(&mut self, ring: &Ring, id: u16, len: u32) {
        if self.n == SHADOW {
            self.flush(ring);
        }
        self.e[self.n % SHADOW] = (id, len);
        self.n += 1;
    }

    /// Writes the entries held to the used ring (not the index).
    #[inline]
    fn flush(&mut self, ring: &Ring) {
        for (k, &(id, len)) in self.e[..self.n.min(SHADOW)].iter().enumerate() {
            ring.put_used(self.slot.wrapping_add(k as u16), id, len);
        }
        self.slot = self.slot.wrapping_add(self.n as u16);
        self.n = 0;
    }
}

/// An available chain read ahead of a burst's copy loop: its head, its head
/// descriptor and, if that descriptor is one buffer of the direction the
/// burst wants, the buffer's address in our mapping (0: not translated).
#[derive(Clone, Copy, Default)]
struct Ahead {
    head: u16,
    d: Desc,
    buf: usize,
}

impl Ahead {
    /// The chain in available slot `slot`, untranslated (a head outside
    /// the ring comes with an empty descriptor, for the caller to report).
    #[inline(always)]
    fn read(ring: &Ring, slot: u16) -> Ahead {
        let head = ring.avail_entry(slot);
        let d = if (head as u32) < ring.size() {
            ring.desc(head)
        } else {
            Desc::default()
        };
        Ahead { head, d, buf: 0 }
    }
}

/// A queue handle's scratch space for its bursts, kept with the handle so
/// that a burst does not initialise it on the stack (a burst of one packet
/// paid 130 instructions to zero the shadow alone).
pub(super) struct Burst {
    ahead: [Ahead; BATCH_SIZE],
    shadow: UsedShadow,
}

impl Burst {
    pub(super) fn new() -> Burst {
        Burst {
            ahead: [Ahead::default(); BATCH_SIZE],
            shadow: UsedShadow {
                slot: 0,
                n: 0,
                e: [(0, 0); SHADOW],
            },
        }
    }
}

/// Receive queue `q`: polls the guest's transmit ring.
pub struct VhostRxq {
    pub(super) shared: Arc<Shared>,
    pub(super) vring: usize,
    pub(super) taken: Arc<[AtomicBool; MAX_QUEUE_PAIRS]>,
    pub(super) hint: usize,
    pub(super) pool: Arc<PacketPool>,
    pub(super) burst: Burst,
}

impl RxQueue for VhostRxq {
    #[inline]
    fn recv(&mut self, batch: &mut Batch) -> usize {
        let cell = &self.shared.vrings[self.vring];
        if !cell.ready_hint.load(Ordering::Relaxed) {
            return 0;
        }
        let Some(mut g) = cell.try_lock() else {
            return 0;
        };
        if !g.ready {
            return 0;
        }
        dequeue(
            &mut g,
            cell,
            &self.pool,
            batch,
            &mut self.hint,
            &mut self.burst,
        )
    }

    fn enabled(&self) -> bool {
        self.shared.vrings[self.vring]
            .ready_hint
            .load(Ordering::Relaxed)
    }
}

impl Drop for VhostRxq {
    fn drop(&mut self) {
        self.taken[self.vring / 2].store(false, Ordering::Release);
    }
}

/// Writes the call eventfd if the driver wants to hear about used entries
/// up to `st.last_used` (at most once per burst).
#[inline]
fn notify(st: &mut VringState) {
    let (Some(call), Some(ring)) = (st.call.as_ref(), st.ring.as_ref()) else {
        return;
    };
    // Our used index store must be visible before we read the driver's
    // wish, or an interrupt it asked for in between could be missed.
    fence(Ordering::SeqCst);
    let new = st.last_used;
    let want = if st.event_idx {
        let (old, valid) = (st.signalled_used, st.signalled_valid);
        st.signalled_used = new;
        st.signalled_valid = true;
        !valid || need_event(ring.used_event(), new, old)
    } else {
        ring.avail_flags() & AVAIL_F_NO_INTERRUPT == 0
    };
    if want {
        let one = 1u64.to_ne_bytes();
        // SAFETY: writes 8 bytes from a live buffer to the eventfd we own;
        // a full counter (EAGAIN) only means an interrupt is pending anyway.
        unsafe {
            libc::write(call.as_raw_fd(), one.as_ptr().cast(), 8);
        }
    }
}

/// Stops a corrupt ring (until the frontend sets it up again).
#[cold]
fn break_ring(st: &mut VringState, cell: &VringCell, e: RingError) {
    st.broken = true;
    st.refresh();
    cell.ready_hint.store(false, Ordering::Relaxed);
    cell.set_fault(e);
}

/// Entries the driver made available beyond ours, or the corruption.
#[inline(always)]
fn pending(ring: &Ring, last_avail: u16) -> Result<u16, RingError> {
    let avail = ring.avail_idx();
    let n = avail.wrapping_sub(last_avail);
    if n as u32 > ring.size() {
        return Err(RingError::AvailAhead {
            avail,
            last: last_avail,
            ahead: n,
            size: ring.size() as u16,
        });
    }
    Ok(n)
}

fn dequeue(
    st: &mut VringState,
    cell: &VringCell,
    pool: &PacketPool,
    batch: &mut Batch,
    hint: &mut usize,
    burst: &mut Burst,
) -> usize {
    let Some(ring) = st.ring.as_ref() else {
        return 0;
    };
    let n = match pending(ring, st.last_avail) {
        Ok(0) => return 0,
        Ok(n) => (n as usize).min(BATCH_SIZE.saturating_sub(batch.len())),
        Err(e) => {
            break_ring(st, cell, e);
            return 0;
        }
    };
    let (hdr, indirect) = (st.hdr_len, st.indirect);
    let (mut last_avail, mut last_used) = (st.last_avail, st.last_used);
    let ahead = &mut burst.ahead;
    // The first and last line of each frame, not the one of its header,
    // which is not read: DPDK's virtio-user puts the header at the end of
    // the line before a 64-byte frame's, so prefetching the buffer's first
    // two lines asked for a line (written by the driver's core) for nothing.
    let n = read_ahead(ring, last_avail, n, 0, hint, ahead, |p, d| {
        if d.len as usize > hdr {
            prefetch::ends(p.wrapping_add(hdr), d.len as usize - hdr, prefetch::read);
        }
    });
    // The common case first, in a loop of its own (as in `enqueue`): each
    // chain is one readable buffer read ahead and translated, its frame
    // fits a packet. The first that is not leaves the rest to the general
    // loop, which reports what is wrong with it (copying it again).
    let mut fresh = pool.reserve(n);
    // The packet of a chain the common case leaves: the general loop's
    // first (the burst reserved one packet per chain, not more).
    let mut spare = None;
    let mut taken = 0;
    let mut bytes = 0u64;
    for a in &ahead[..n] {
        if a.d.flags != 0 {
            break;
        }
        let Some(mut pkt) = fresh.alloc() else {
            break;
        };
        let Ok(len) = copy_one_buffer(a, hdr, &mut pkt) else {
            spare = Some(pkt);
            break;
        };
        let _ = batch.push(pkt);
        bytes += len as u64;
        taken += 1;
    }
    last_avail = last_avail.wrapping_add(taken as u16);
    last_used = last_used.wrapping_add(taken as u16);
    let (mut got, mut dropped, mut errors) = (taken as u64, 0u64, 0u64);
    let mut fatal = None;
    for a in &ahead[taken..n] {
        if a.head as u32 >= ring.size() {
            fatal = Some(RingError::HeadOutOfRange {
                head: a.head,
                size: ring.size() as u16,
            });
            break;
        }
        // An empty pool leaves the rest in the ring for the next poll.
        let Some(mut pkt) = spare.take().or_else(|| fresh.alloc()) else {
            break;
        };
        match copy_from_chain(ring, a, indirect, hdr, &mut pkt, hint) {
            Ok(len) => {
                got += 1;
                bytes += len as u64;
                let _ = batch.push(pkt);
            }
            Err(RingError::TooLong(_)) => dropped += 1,
            Err(e) => {
                errors += 1;
                cell.set_fault(e);
            }
        }
        last_avail = last_avail.wrapping_add(1);
        last_used = last_used.wrapping_add(1);
    }
    if last_used != st.last_used {
        // Every chain taken, in ring order, is returned with length 0 (the
        // device wrote nothing): the used entries come straight from `ahead`,
        // written together before the index, as a shadow would have them.
        let taken = usize::from(last_used.wrapping_sub(st.last_used));
        for (j, a) in ahead[..taken].iter().enumerate() {
            ring.put_used(st.last_used.wrapping_add(j as u16), a.head, 0);
        }
        ring.set_used_idx(last_used);
        st.last_avail = last_avail;
        st.last_used = last_used;
        notify(st);
    }
    if let Some(e) = fatal {
        break_ring(st, cell, e);
    }
    let s = &cell.stats;
    QueueStats::add(&s.packets, got);
    QueueStats::add(&s.bytes, bytes);
    QueueStats::add(&s.dropped, dropped);
    QueueStats::add(&s.errors, errors);
    got as usize
}

/// Copies the frame of chain `a` (after its `hdr`-byte virtio-net header)
/// into `pkt`; returns the frame's length.
#[inline(always)]
fn copy_from_chain(
    ring: &Ring,
    a: &Ahead,
    indirect: bool,
    hdr: usize,
    pkt: &mut Packet,
    hint: &mut usize,
) -> Result<usize, RingError> {
    if a.d.flags == 0 {
        return copy_one_buffer(a, hdr, pkt);
    }
    // The descriptor already read goes on: never read twice.
    copy_from_chain_slow(ring, a.d, indirect, hdr, pkt, hint)
}

/// The common case of [`copy_from_chain`]: a chain of one readable buffer
/// (`a.d.flags` is 0), translated by `read_ahead`.
#[inline(always)]
fn copy_one_buffer(a: &Ahead, hdr: usize, pkt: &mut Packet) -> Result<usize, RingError> {
    let d = a.d;
    let len = d.len as usize;
    if len < hdr {
        return Err(RingError::TooShort(len));
    }
    if len - hdr > DATA_ROOM {
        return Err(RingError::TooLong(len - hdr));
    }
    if a.buf == 0 {
        return Err(RingError::BadAddress {
            addr: d.addr,
            len: d.len,
        });
    }
    let src = a.buf as *const u8;
    let dst = pkt
        .extend(len - hdr)
        .map_err(|_| RingError::TooLong(len - hdr))?;
    // SAFETY: read_ahead translated src..src+len (the whole buffer) inside
    // guest memory that the ring keeps mapped (the guest may change the
    // bytes meanwhile: they are only copied); dst is our packet's buffer of
    // len - hdr bytes; they cannot overlap.
    unsafe { copy_frame(src.add(hdr), dst.as_mut_ptr(), len - hdr) };
    Ok(len - hdr)
}

#[inline(never)]
fn copy_from_chain_slow(
    ring: &Ring,
    head: Desc,
    indirect: bool,
    hdr: usize,
    pkt: &mut Packet,
    hint: &mut usize,
) -> Result<usize, RingError> {
    let mut skip = hdr;
    let mut total = 0usize;
    let mut seen = 0usize;
    walk_chain_from(ring, head, indirect, hint, |s: Seg| {
        if s.write {
            return Err(RingError::WriteInTx);
        }
        let len = s.len as usize;
        seen += len;
        let off = skip.min(len);
        skip -= off;
        let rest = len - off;
        if rest == 0 {
            return Ok(true);
        }
        if total + rest > DATA_ROOM {
            return Err(RingError::TooLong(total + rest));
        }
        let dst = pkt
            .extend(rest)
            .map_err(|_| RingError::TooLong(total + rest))?;
        // SAFETY: the segment (s.ptr, s.len) was bounds-checked against the
        // memory table by walk_chain; dst is `rest` bytes of our buffer.
        unsafe { std::ptr::copy_nonoverlapping(s.ptr.add(off), dst.as_mut_ptr(), rest) };
        total += rest;
        Ok(true)
    })?;
    if skip > 0 {
        return Err(RingError::TooShort(seen));
    }
    Ok(total)
}

/// Transmit queue handle `id` (one per PMD thread): sends on the queue pair
/// the control thread mapped it to.
pub struct VhostTxq {
    pub(super) shared: Arc<Shared>,
    pub(super) id: usize,
    pub(super) hint: usize,
    pub(super) burst: Burst,
}

impl TxQueue for VhostTxq {
    #[inline]
    fn send(&mut self, batch: &mut Batch) {
        let n = batch.len();
        if n == 0 {
            return;
        }
        let pair = self.shared.tx_map[self.id % MAX_QUEUE_PAIRS].load(Ordering::Relaxed);
        let cell = (pair != NO_PAIR).then(|| &self.shared.vrings[2 * pair as usize]);
        let guard = cell.and_then(|c| c.lock_spin(TX_LOCK_SPINS));
        match (cell, guard) {
            (Some(cell), Some(mut g)) if g.ready => {
                let retries = self.shared.tx_retries_max.load(Ordering::Relaxed);
                let mtu = self.shared.mtu.load(Ordering::Relaxed) as usize;
                let mtu_drops = enqueue(
                    &mut g,
                    cell,
                    batch.packets(),
                    retries,
                    mtu + 18,
                    &mut self.hint,
                    &mut self.burst,
                );
                drop(g);
                if mtu_drops > 0 {
                    self.shared
                        .tx_mtu_drops
                        .fetch_add(mtu_drops, Ordering::Relaxed);
                }
            }
            _ => {
                self.shared
                    .tx_down_drops
                    .fetch_add(n as u64, Ordering::Relaxed);
            }
        }
        batch.clear();
    }
}

/// What became of one frame offered to the ring.
enum Put {
    Sent,
    /// Not enough buffers available now.
    NoRoom,
    /// Dropped (does not fit a buffer without MRG_RXBUF); nothing consumed.
    Dropped,
    /// The chains it took were bad: returned unused, frame dropped.
    Bad(RingError),
}

/// Copies `pkts` into the guest's receive ring; returns the frames dropped
/// for exceeding `max_len`.
fn enqueue(
    st: &mut VringState,
    cell: &VringCell,
    pkts: &[Packet],
    max_retries: u32,
    max_len: usize,
    hint: &mut usize,
    burst: &mut Burst,
) -> u64 {
    let Some(ring) = st.ring.as_ref() else {
        return 0;
    };
    let (hdr, mrg, indirect) = (st.hdr_len, st.mrg_rxbuf, st.indirect);
    let mut free = match pending(ring, st.last_avail) {
        Ok(n) => n,
        Err(e) => {
            break_ring(st, cell, e);
            return 0;
        }
    };
    let (mut last_avail, mut last_used) = (st.last_avail, st.last_used);
    let has_write = prefetch::has_write();
    let Burst { ahead, shadow } = burst;
    let first = last_avail;
    let n = read_ahead(
        ring,
        last_avail,
        pkts.len().min(free as usize),
        DESC_F_WRITE,
        hint,
        ahead,
        // The header's line and the line of a 64-byte frame's last byte:
        // after a header that ends a line (where DPDK's virtio-user puts
        // it) the first alone left the frame's line to the copy. A prefetch
        // past a short buffer's end is a hint, never a fault.
        |p, _| prefetch::ends(p, hdr + 64, |l| prefetch::write(l, has_write)),
    );
    // The common case first, in a loop of its own: each frame fits the one
    // writable buffer of the chain read ahead for it. (In the general loop
    // below, whose state spills to the stack, a burst of 64-byte frames
    // took 173 instructions a frame, against 114 with this loop: callgrind,
    // vhost_p2p.) The first frame that is not such a case leaves the rest
    // to the general loop.
    let mut i = 0;
    let mut bytes = 0u64;
    for (a, p) in ahead[..n].iter().zip(pkts) {
        let len = p.len();
        let need = hdr + len;
        if a.buf == 0 || a.d.flags != DESC_F_WRITE || (a.d.len as usize) < need || len > max_len {
            break;
        }
        // SAFETY: read_ahead translated the whole buffer (d.len >= need
        // bytes) inside guest memory that `ring` keeps mapped, and the
        // driver handed it to us for writing; the source is our packet's
        // data.
        unsafe {
            write_hdr(a.buf as *mut u8, hdr, 1);
            copy_frame(p.data().as_ptr(), (a.buf as *mut u8).add(hdr), len);
        }
        bytes += len as u64;
        i += 1;
    }
    // Their used entries, together (see UsedShadow); the general loop's
    // follow through the shadow.
    for (j, (a, p)) in ahead[..i].iter().zip(pkts).enumerate() {
        ring.put_used(
            last_used.wrapping_add(j as u16),
            a.head,
            (hdr + p.len()) as u32,
        );
    }
    last_avail = last_avail.wrapping_add(i as u16);
    last_used = last_used.wrapping_add(i as u16);
    free -= i as u16;
    shadow.start(last_used);
    let (mut sent, mut dropped, mut errors, mut retries) = (i as u64, 0u64, 0u64, 0u64);
    let mut mtu_drops = 0u64;
    let mut fatal = None;
    while i < pkts.len() {
        let p = &pkts[i];
        let len = p.len();
        if len > max_len {
            mtu_drops += 1;
            i += 1;
            continue;
        }
        let put = if free == 0 {
            Put::NoRoom
        } else {
            // Chains past those read ahead (after a retry, or taken by
            // frames spread over several buffers) are read here.
            let a = match ahead[..n].get(usize::from(last_avail.wrapping_sub(first))) {
                Some(a) => *a,
                None => Ahead::read(ring, last_avail),
            };
            let (head, d) = (a.head, a.d);
            if head as u32 >= ring.size() {
                fatal = Some(RingError::HeadOutOfRange {
                    head,
                    size: ring.size() as u16,
                });
                break;
            }
            let need = hdr + len;
            if d.flags == DESC_F_WRITE && d.len as usize >= need {
                // One writable buffer that holds it all: the common case.
                let dst = match a.buf {
                    0 => ring.mem().gpa(d.addr, need as u64, hint),
                    b => Some(b as *mut u8),
                };
                match dst {
                    Some(dst) => {
                        // SAFETY: dst..dst+need lies in guest memory that
                        // `ring` keeps mapped (read_ahead translated the
                        // whole buffer, d.len >= need bytes, or gpa `need`)
                        // and that the driver handed to us for writing; the
                        // source is our packet's data.
                        unsafe {
                            write_hdr(dst, hdr, 1);
                            copy_frame(p.data().as_ptr(), dst.add(hdr), len);
                        }
                        shadow.push(ring, head, need as u32);
                        last_avail = last_avail.wrapping_add(1);
                        last_used = last_used.wrapping_add(1);
                        free -= 1;
                        Put::Sent
                    }
                    None => {
                        shadow.push(ring, head, 0);
                        last_avail = last_avail.wrapping_add(1);
                        last_used = last_used.wrapping_add(1);
                        free -= 1;
                        Put::Bad(RingError::BadAddress {
                            addr: d.addr,
                            len: d.len,
                        })
                    }
                }
            } else {
                put_slow(
                    ring,
                    (head, d),
                    p.data(),
                    hdr,
                    mrg,
                    indirect,
                    &mut last_avail,
                    &mut last_used,
                    &mut free,
                    hint,
                    shadow,
                )
            }
        };
        match put {
            Put::Sent => {
                sent += 1;
                bytes += len as u64;
                i += 1;
            }
            Put::Dropped => {
                dropped += 1;
                i += 1;
            }
            Put::Bad(e) => {
                errors += 1;
                cell.set_fault(e);
                i += 1;
            }
            Put::NoRoom => {
                // Ring full: let the driver see what we used, look again.
                if retries >= max_retries as u64 {
                    dropped += (pkts.len() - i) as u64;
                    break;
                }
                retries += 1;
                if last_used != st.last_used {
                    shadow.flush(ring);
                    ring.set_used_idx(last_used);
                }
                match pending(ring, last_avail) {
                    Ok(n) => free = n,
                    Err(e) => {
                        fatal = Some(e);
                        break;
                    }
                }
            }
        }
    }
    if last_used != st.last_used {
        shadow.flush(ring);
        ring.set_used_idx(last_used);
        st.last_avail = last_avail;
        st.last_used = last_used;
        notify(st);
    }
    if let Some(e) = fatal {
        dropped += (pkts.len() - i) as u64;
        break_ring(st, cell, e);
    }
    let s = &cell.stats;
    QueueStats::add(&s.packets, sent);
    QueueStats::add(&s.bytes, bytes);
    QueueStats::add(&s.dropped, dropped + mtu_drops);
    QueueStats::add(&s.errors, errors);
    QueueStats::add(&s.retries, retries);
    mtu_drops
}

/// Reads the heads and head descriptors of the next `n` (at most a batch)
/// available chains into `ahead`, and translates and hands to `buffer` (to
/// prefetch) the buffer of each whose head descriptor carries exactly
/// `flags`. The driver, on another core, wrote both last: each is a cache
/// miss here, and met one packet after the other in the copy loop they
/// followed one another (perf: half of `enqueue`'s samples on the first
/// store into a buffer, a fifth on the descriptor load). Asked for
/// together, they overlap; and the copy loop takes what was read here, so
/// no descriptor is read or translated twice. Stops after a head outside
/// the ring (kept, for the copy loop to report); returns the entries read.
#[inline(always)]
fn read_ahead(
    ring: &Ring,
    last_avail: u16,
    n: usize,
    flags: u16,
    hint: &mut usize,
    ahead: &mut [Ahead; BATCH_SIZE],
    buffer: impl Fn(*const u8, &Desc),
) -> usize {
    let n = n.min(BATCH_SIZE);
    for (j, a) in ahead[..n].iter_mut().enumerate() {
        *a = Ahead::read(ring, last_avail.wrapping_add(j as u16));
        if a.head as u32 >= ring.size() {
            return j + 1;
        }
        if a.d.flags == flags {
            if let Some(p) = ring.mem().gpa(a.d.addr, u64::from(a.d.len), hint) {
                buffer(p, &a.d);
                a.buf = p as usize;
            }
        }
    }
    n
}

/// Copies a frame of `len` bytes from `src` to `dst`. Up to 128 bytes it
/// is two or four unaligned 32-byte moves, overlapping in the middle, made
/// inline: for a 64-byte frame the call to memcpy, with the registers saved
/// around it, cost more instructions than the moves.
///
/// # Safety
/// `src` must be valid for `len` bytes of reads, `dst` for `len` bytes of
/// writes, and they must not overlap.
#[inline(always)]
unsafe fn copy_frame(src: *const u8, dst: *mut u8, len: usize) {
    type Chunk = [u8; 32];
    // SAFETY: every move below lies within [0, len) of both buffers (the
    // caller's guarantee): chunks start at 0, 32, len - 64 and len - 32,
    // each in range for the lengths its branch takes.
    unsafe {
        let mv = |at: usize| {
            let c = src.add(at).cast::<Chunk>().read_unaligned();
            dst.add(at).cast::<Chunk>().write_unaligned(c);
        };
        match len {
            32..=64 => {
                mv(0);
                mv(len - 32);
            }
            65..=128 => {
                mv(0);
                mv(32);
                mv(len - 64);
                mv(len - 32);
            }
            _ => std::ptr::copy_nonoverlapping(src, dst, len),
        }
    }
}

/// Writes a virtio-net header with no offloads at `dst`: 12 bytes with
/// `num_buffers`, or the 10-byte legacy one.
///
/// # Safety
/// `dst` must be valid for `hdr` bytes of writes.
#[inline(always)]
unsafe fn write_hdr(dst: *mut u8, hdr: usize, num_buffers: u16) {
    // SAFETY: the caller guarantees hdr (10 or 12) writable bytes at dst.
    unsafe {
        dst.cast::<u64>().write_unaligned(0);
        if hdr >= 12 {
            dst.add(8)
                .cast::<u32>()
                .write_unaligned(u32::from(num_buffers) << 16);
        } else {
            dst.add(8).cast::<u16>().write_unaligned(0);
        }
    }
}

/// The general case: chains of several descriptors, indirect tables, a
/// frame spread over several buffers (MRG_RXBUF).
#[allow(clippy::too_many_arguments)]
#[inline(never)]
fn put_slow(
    ring: &Ring,
    first: (u16, Desc),
    data: &[u8],
    hdr: usize,
    mrg: bool,
    indirect: bool,
    last_avail: &mut u16,
    last_used: &mut u16,
    free: &mut u16,
    hint: &mut usize,
    shadow: &mut UsedShadow,
) -> Put {
    let need = hdr + data.len();
    let mut segs = [Seg {
        ptr: std::ptr::null_mut(),
        len: 0,
        write: true,
    }; MAX_SEGS];
    let mut nsegs = 0usize;
    // (head, first segment, capacity) of each buffer taken.
    let mut bufs = [(0u16, 0usize, 0usize); MAX_SEGS];
    let mut nbufs = 0usize;
    let mut cap = 0usize;
    let mut avail = *last_avail;
    let mut bad = None;
    while cap < need {
        if nbufs == usize::from(*free) || nbufs == MAX_SEGS {
            break;
        }
        // The first buffer's head and descriptor were read by the caller
        // (and the head checked): they are not read again.
        let (head, d) = if nbufs == 0 {
            first
        } else {
            let head = ring.avail_entry(avail);
            if head as u32 >= ring.size() {
                // As walk_chain would say: this chain is bad, the ring goes on.
                bad = Some(RingError::HeadOutOfRange {
                    head,
                    size: ring.size() as u16,
                });
                bufs[nbufs] = (head, nsegs, 0);
                nbufs += 1;
                break;
            }
            (head, ring.desc(head))
        };
        avail = avail.wrapping_add(1);
        let first_seg = nsegs;
        let mut this = 0usize;
        let r = walk_chain_from(ring, d, indirect, hint, |s: Seg| {
            if !s.write {
                return Err(RingError::ReadInRx);
            }
            if nsegs == MAX_SEGS {
                return Err(RingError::TooFragmented(nsegs + 1));
            }
            segs[nsegs] = s;
            nsegs += 1;
            this += s.len as usize;
            Ok(true)
        });
        bufs[nbufs] = (head, first_seg, this);
        nbufs += 1;
        if let Err(e) = r {
            bad = Some(e);
            break;
        }
        cap += this;
        if !mrg {
            break;
        }
    }
    let take = |n: usize, last_avail: &mut u16, last_used: &mut u16, free: &mut u16| {
        *last_avail = last_avail.wrapping_add(n as u16);
        *last_used = last_used.wrapping_add(n as u16);
        *free -= n as u16;
    };
    if let Some(e) = bad {
        // Every buffer taken for this frame goes back unused.
        for b in &bufs[..nbufs] {
            shadow.push(ring, b.0, 0);
        }
        take(nbufs, last_avail, last_used, free);
        return Put::Bad(e);
    }
    if cap < need {
        if !mrg && nbufs == 1 {
            // The buffer is too small for this frame; leave it for another.
            return Put::Dropped;
        }
        return Put::NoRoom;
    }
    // Write the header, then the frame, across the segments in order.
    let mut hbuf = [0u8; 12];
    if hdr >= 12 {
        hbuf[10..12].copy_from_slice(&(nbufs as u16).to_le_bytes());
    }
    let mut src: [&[u8]; 2] = [&hbuf[..hdr], data];
    let mut part = 0;
    for (k, b) in bufs[..nbufs].iter().enumerate() {
        let end = bufs
            .get(k + 1)
            .filter(|_| k + 1 < nbufs)
            .map_or(nsegs, |n| n.1);
        let mut written = 0usize;
        for s in &segs[b.1..end] {
            let mut room = s.len as usize;
            let mut at = 0usize;
            while room > 0 && part < 2 {
                let chunk = src[part].len().min(room);
                // SAFETY: the segment (s.ptr, s.len) was bounds-checked by
                // walk_chain and is device-writable; at + chunk <= s.len.
                unsafe {
                    std::ptr::copy_nonoverlapping(src[part].as_ptr(), s.ptr.add(at), chunk);
                }
                src[part] = &src[part][chunk..];
                if src[part].is_empty() {
                    part += 1;
                }
                at += chunk;
                room -= chunk;
                written += chunk;
            }
        }
        shadow.push(ring, b.0, written as u32);
    }
    take(nbufs, last_avail, last_used, free);
    Put::Sent
}

#[cfg(test)]
mod tests {
    use super::copy_frame;

    /// Every length either side of the inline copies' bounds (32, 64, 128)
    /// copies exactly its bytes: none short, none past the end.
    #[test]
    fn copy_frame_copies_exactly_len_bytes() {
        let src: Vec<u8> = (0..300u32).map(|i| (i * 7 + 3) as u8).collect();
        for len in 0..=200 {
            let mut dst = vec![0xAAu8; 300];
            // SAFETY: both buffers hold 300 >= len bytes and are distinct.
            unsafe { copy_frame(src.as_ptr(), dst.as_mut_ptr(), len) };
            assert_eq!(dst[..len], src[..len], "len {len}");
            assert!(
                dst[len..].iter().all(|&b| b == 0xAA),
                "len {len}: wrote past the end"
            );
        }
    }
}
