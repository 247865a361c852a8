//! Packet buffers, the pool they come from, and batches of packets.
//!
//! A pool is one memory region allocated up front (2 MB hugepages when asked,
//! so that a NIC can DMA into it; plain pages otherwise) and cut into
//! fixed-size slots: per slot, the packet's metadata, then headroom for
//! tunnel headers, then room for a frame. A [`Packet`] owns one slot and
//! gives it back when dropped; nothing is allocated per packet.
//!
//! Free slots live in the pool's lock-free ring and, in front of it, in a
//! small per-thread cache used last-in first-out (as DPDK's mempool cache):
//! a PMD thread keeps reusing the few hundred buffers still warm in its
//! caches instead of cycling through the whole pool (hundreds of MB) at one
//! cache miss or more per packet, and takes the ring's atomics once per
//! [`CACHE_MOVE`] buffers instead of twice per packet.

use std::cell::{Cell, UnsafeCell};
use std::ptr::NonNull;

use thiserror::Error;

use crate::ring::IndexRing;

/// Bytes reserved in front of a received frame for headers pushed later
/// (VXLAN over IPv6 plus a VLAN tag plus a virtio-net header fit).
pub const HEADROOM: usize = 192;
/// Largest frame a buffer holds.
pub const DATA_ROOM: usize = 2048;
/// Packets in a batch (OVS's `NETDEV_MAX_BURST`).
pub const BATCH_SIZE: usize = 32;
/// Value of `l3_ofs`/`l4_ofs` when the packet has no such header.
pub const NO_OFS: u16 = u16::MAX;

const META_SIZE: usize = 128;
const BUF_SIZE: usize = HEADROOM + DATA_ROOM;
/// Bytes per pool slot (a multiple of the cache line size).
pub const SLOT_SIZE: usize = META_SIZE + BUF_SIZE;
const HUGEPAGE_SIZE: usize = 2 << 20;
/// Free buffers a thread keeps for itself (per pool it uses last).
const CACHE_MAX: usize = 256;
/// Buffers moved between a thread's cache and the ring at a time.
const CACHE_MOVE: usize = CACHE_MAX / 2;
// A burst's slots are taken from the cache together (`LocalCache::take_many`).
const _: () = assert!(BATCH_SIZE <= CACHE_MOVE);
/// Pools smaller than this use no thread caches, so that no thread can sit
/// on a large share of a small pool.
const CACHE_MIN_POOL: usize = 16 * CACHE_MAX;

/// Tunnel metadata of a decapsulated packet (or to encapsulate with).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct TunnelMeta {
    pub tun_id: u64,
    pub ipv4_src: [u8; 4],
    pub ipv4_dst: [u8; 4],
    pub ipv6_src: [u8; 16],
    pub ipv6_dst: [u8; 16],
    pub tos: u8,
    pub ttl: u8,
    /// `key::TUN_FLAG_PRESENT` set when the packet came out of a tunnel.
    pub flags: u16,
    pub tp_src: u16,
    pub tp_dst: u16,
}

impl TunnelMeta {
    pub fn is_present(&self) -> bool {
        self.flags & crate::key::TUN_FLAG_PRESENT != 0
    }
}

/// Per-packet metadata, kept in the slot in front of the buffer.
#[repr(C, align(64))]
pub struct PacketMeta {
    /// Datapath port the packet arrived on.
    pub in_port: u32,
    pub recirc_id: u32,
    /// Flow hash (valid after key extraction).
    pub hash: u32,
    /// Offsets of the L3 and L4 headers from the start of the data, or [`NO_OFS`].
    pub l3_ofs: u16,
    pub l4_ofs: u16,
    pub tunnel: TunnelMeta,
    data_off: u16,
    len: u16,
    idx: u32,
    pool: *const PoolShared,
}

const _: () = assert!(std::mem::size_of::<PacketMeta>() <= META_SIZE);
const _: () = assert!(SLOT_SIZE.is_multiple_of(64));

/// Why a pool could not be created.
#[derive(Debug, Error)]
pub enum PoolError {
    /// Not enough free 2 MB hugepages for the pool.
    #[error("cannot allocate {mb} MB of hugepages for the packet pool ({source}); reserve more in /proc/sys/vm/nr_hugepages")]
    NoHugepages { mb: usize, source: std::io::Error },
    /// The pool memory could not be mapped.
    #[error("cannot allocate {mb} MB for the packet pool: {source}")]
    NoMemory { mb: usize, source: std::io::Error },
    /// A pool needs at least one buffer and at most 2^31.
    #[error("invalid packet pool size {0}")]
    BadSize(usize),
}

struct PoolShared {
    base: NonNull<u8>,
    map_len: usize,
    n: usize,
    hugepages: bool,
    /// Whether threads may cache this pool's free buffers.
    cached: bool,
    free: IndexRing,
}

// SAFETY: the region behind `base` is only reached through `Packet`s, each of
// which owns its slot exclusively; the free list is a lock-free ring.
unsafe impl Send for PoolShared {}
// SAFETY: as above; shared access only touches the atomic free list.
unsafe impl Sync for PoolShared {}

/// A pool of packet buffers.
pub struct PacketPool {
    shared: NonNull<PoolShared>,
}

// SAFETY: `PoolShared` is Send + Sync; the handle is a pointer to it.
unsafe impl Send for PacketPool {}
// SAFETY: as above.
unsafe impl Sync for PacketPool {}

impl PacketPool {
    /// Allocates `n` buffers, backed by hugepages if `hugepages`.
    pub fn new(n: usize, hugepages: bool) -> Result<PacketPool, PoolError> {
        if n == 0 || n > (1 << 31) {
            return Err(PoolError::BadSize(n));
        }
        let page = if hugepages { HUGEPAGE_SIZE } else { 4096 };
        let map_len = (n * SLOT_SIZE).div_ceil(page) * page;
        let mut flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE;
        if hugepages {
            flags |= libc::MAP_HUGETLB;
        }
        // SAFETY: an anonymous mapping at an address of the kernel's choosing;
        // no existing memory is affected. The result is checked below.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                map_len,
                libc::PROT_READ | libc::PROT_WRITE,
                flags,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            let source = std::io::Error::last_os_error();
            let mb = map_len >> 20;
            return Err(if hugepages {
                PoolError::NoHugepages { mb, source }
            } else {
                PoolError::NoMemory { mb, source }
            });
        }
        let base = NonNull::new(p.cast::<u8>()).ok_or(PoolError::BadSize(n))?;
        let free = IndexRing::new(n);
        for i in 0..n {
            free.push_not_full(i as u32);
        }
        let shared = Box::new(PoolShared {
            base,
            map_len,
            n,
            hugepages,
            cached: n >= CACHE_MIN_POOL,
            free,
        });
        Ok(PacketPool {
            shared: NonNull::from(Box::leak(shared)),
        })
    }

    fn shared(&self) -> &PoolShared {
        // SAFETY: `shared` came from a leaked Box and is freed only in `drop`
        // of the one handle, when no packet refers to it.
        unsafe { self.shared.as_ref() }
    }

    /// A fresh, empty packet with [`HEADROOM`] bytes of headroom, or `None`
    /// when every buffer is in use. (Always inline: with two call sites in
    /// the vhost receive path LLVM made it a call, 12 instructions a packet.)
    #[inline(always)]
    pub fn alloc(&self) -> Option<Packet> {
        let idx = self.shared().take()?;
        Some(self.fresh_packet(idx))
    }

    /// Takes up to `want` (at most [`BATCH_SIZE`]) free slots in one visit
    /// of the thread's cache, for a burst to turn into packets one by one;
    /// slots not used go back when it is dropped. (Callgrind, vhost_p2p:
    /// 364 -> 340 instructions a packet against `alloc` per packet.)
    #[inline]
    pub fn reserve(&self, want: usize) -> Reserved<'_> {
        let mut r = Reserved {
            pool: self,
            idx: [0; BATCH_SIZE],
            next: 0,
            n: 0,
        };
        let want = want.min(BATCH_SIZE);
        r.n = self.shared().take_many(&mut r.idx[..want]);
        r
    }

    /// The packet of slot `idx`, which the caller took off the free list.
    #[inline(always)]
    fn fresh_packet(&self, idx: u32) -> Packet {
        let meta = self.shared().slot(idx);
        // SAFETY: the index came off the free list, so no other Packet owns
        // this slot; the slot is inside the mapping and 64-byte aligned.
        unsafe {
            meta.as_ptr().write(PacketMeta {
                in_port: 0,
                recirc_id: 0,
                hash: 0,
                l3_ofs: NO_OFS,
                l4_ofs: NO_OFS,
                tunnel: TunnelMeta::default(),
                data_off: HEADROOM as u16,
                len: 0,
                idx,
                pool: self.shared.as_ptr(),
            });
        }
        Packet { meta }
    }

    /// A packet holding a copy of `frame` (`None` if the pool is empty or the
    /// frame does not fit a buffer).
    pub fn packet_from(&self, frame: &[u8]) -> Option<Packet> {
        let mut p = self.alloc()?;
        p.set_data(frame).ok()?;
        Some(p)
    }

    /// Buffers not in use: in the ring or in this thread's cache (other
    /// threads' caches are not counted).
    pub fn available(&self) -> usize {
        let s = self.shared();
        s.free.len() + CACHE.try_with(|c| c.held_for(s)).unwrap_or(0)
    }

    pub fn capacity(&self) -> usize {
        self.shared().n
    }

    pub fn is_hugepage_backed(&self) -> bool {
        self.shared().hugepages
    }

    /// The pool's memory region (for DMA mapping).
    pub fn region(&self) -> (*const u8, usize) {
        let s = self.shared();
        (s.base.as_ptr(), s.map_len)
    }
}

impl Drop for PacketPool {
    fn drop(&mut self) {
        let s = self.shared();
        let _ = CACHE.try_with(|c| c.flush_if(s));
        if s.free.len() != s.n {
            // Packets are still out (held by a port or another thread): they
            // point at this pool, so it stays mapped for the life of the process.
            return;
        }
        // SAFETY: every buffer is back on the free list, so no Packet refers
        // to the pool and no new one can be made (this is the only handle).
        unsafe {
            let shared = Box::from_raw(self.shared.as_ptr());
            libc::munmap(shared.base.as_ptr().cast(), shared.map_len);
        }
    }
}

/// Free slots of a pool taken together (see [`PacketPool::reserve`]).
pub struct Reserved<'a> {
    pool: &'a PacketPool,
    idx: [u32; BATCH_SIZE],
    next: usize,
    n: usize,
}

impl Reserved<'_> {
    /// A fresh, empty packet (as [`PacketPool::alloc`] makes), or `None`
    /// when the slots taken are used up.
    #[inline(always)]
    pub fn alloc(&mut self) -> Option<Packet> {
        if self.next >= self.n {
            return None;
        }
        let idx = self.idx[self.next];
        self.next += 1;
        Some(self.pool.fresh_packet(idx))
    }
}

impl Drop for Reserved<'_> {
    #[inline]
    fn drop(&mut self) {
        if self.next < self.n {
            let s = self.pool.shared();
            for &i in &self.idx[self.next..self.n] {
                s.give(i);
            }
        }
    }
}

impl PoolShared {
    /// Fills `out` with free slots as far as there are any; returns how
    /// many (as [`PoolShared::take`] would one by one).
    #[inline]
    fn take_many(&self, out: &mut [u32]) -> usize {
        if self.cached {
            if let Ok(n) = CACHE.try_with(|c| c.take_many(self, out)) {
                return n;
            }
        }
        self.take_many_from_ring(out)
    }

    fn take_many_from_ring(&self, out: &mut [u32]) -> usize {
        for (k, o) in out.iter_mut().enumerate() {
            match self.free.pop() {
                Some(i) => *o = i,
                None => return k,
            }
        }
        out.len()
    }

    /// A free slot: from this thread's cache, refilled from the ring.
    #[inline]
    fn take(&self) -> Option<u32> {
        if !self.cached {
            return self.free.pop();
        }
        CACHE
            .try_with(|c| c.take(self))
            .unwrap_or_else(|_| self.free.pop())
    }

    /// Gives a slot back: to this thread's cache, overflowing into the ring.
    #[inline]
    fn give(&self, idx: u32) {
        if !self.cached || CACHE.try_with(|c| c.give(self, idx)).is_err() {
            self.free.push_not_full(idx);
        }
    }

    /// Takes back the slots of the leading packets of `pkts` that are
    /// this pool's, visiting the thread's cache once; returns how many.
    /// The caller must forget those packets.
    #[inline]
    fn give_run(&self, pkts: &[Packet]) -> usize {
        if self.cached {
            if let Ok(n) = CACHE.try_with(|c| c.give_run(self, pkts)) {
                return n;
            }
        }
        self.give_run_to_ring(pkts)
    }

    /// [`PoolShared::give_run`] past the thread's cache.
    fn give_run_to_ring(&self, pkts: &[Packet]) -> usize {
        let mut n = 0;
        for p in pkts {
            let m = p.meta();
            if !std::ptr::eq(m.pool, self) {
                break;
            }
            self.free.push_not_full(m.idx);
            n += 1;
        }
        n
    }

    #[inline]
    fn slot(&self, idx: u32) -> NonNull<PacketMeta> {
        debug_assert!((idx as usize) < self.n);
        // SAFETY: idx < n, so the slot lies inside the mapping of n * SLOT_SIZE bytes.
        unsafe { NonNull::new_unchecked(self.base.as_ptr().add(idx as usize * SLOT_SIZE).cast()) }
    }
}

/// A thread's cache of free slots of one pool (the last one it used),
/// taken last-in first-out.
struct LocalCache {
    /// The pool the cached slots belong to; compared, and dereferenced only
    /// while `len > 0` (a pool with slots out of its ring is never unmapped).
    pool: Cell<*const PoolShared>,
    len: Cell<usize>,
    idx: UnsafeCell<[u32; CACHE_MAX]>,
}

thread_local! {
    static CACHE: LocalCache = const {
        LocalCache {
            pool: Cell::new(std::ptr::null()),
            len: Cell::new(0),
            idx: UnsafeCell::new([0; CACHE_MAX]),
        }
    };
}

impl LocalCache {
    /// Whether the cache may hold `pool`'s slots (adopting it when empty).
    #[inline]
    fn serves(&self, pool: &PoolShared) -> bool {
        let p: *const PoolShared = pool;
        if self.pool.get() == p {
            return true;
        }
        if self.len.get() != 0 {
            return false;
        }
        self.pool.set(p);
        true
    }

    #[inline]
    fn take(&self, pool: &PoolShared) -> Option<u32> {
        if !self.serves(pool) {
            return pool.free.pop();
        }
        // SAFETY: the cache is this thread's own and no reference into the
        // array outlives this call, which does not re-enter the cache.
        let idx = unsafe { &mut *self.idx.get() };
        let mut n = self.len.get();
        if n == 0 {
            n = Self::refill(idx, n, pool);
            if n == 0 {
                return None;
            }
        }
        n -= 1;
        self.len.set(n);
        Some(idx[n])
    }

    /// As [`LocalCache::take`], `out.len()` times (at most [`CACHE_MOVE`]).
    #[inline]
    fn take_many(&self, pool: &PoolShared, out: &mut [u32]) -> usize {
        debug_assert!(out.len() <= CACHE_MOVE);
        if !self.serves(pool) {
            return pool.take_many_from_ring(out);
        }
        // SAFETY: as in `take`.
        let idx = unsafe { &mut *self.idx.get() };
        let mut n = self.len.get();
        if n < out.len() {
            n = Self::refill(idx, n, pool);
        }
        let k = out.len().min(n);
        out[..k].copy_from_slice(&idx[n - k..n]);
        self.len.set(n - k);
        k
    }

    #[inline]
    fn give(&self, pool: &PoolShared, i: u32) {
        if !self.serves(pool) {
            pool.free.push_not_full(i);
            return;
        }
        // SAFETY: as in `take`.
        let idx = unsafe { &mut *self.idx.get() };
        let n = Self::make_room(idx, self.len.get(), pool);
        idx[n] = i;
        self.len.set(n + 1);
    }

    /// The leading run of `pkts` from `pool` (see [`PoolShared::give_run`]).
    #[inline]
    fn give_run(&self, pool: &PoolShared, pkts: &[Packet]) -> usize {
        let p: *const PoolShared = pool;
        if !self.serves(pool) {
            return pool.give_run_to_ring(pkts);
        }
        // SAFETY: as in `take`.
        let idx = unsafe { &mut *self.idx.get() };
        let mut n = self.len.get();
        let mut k = 0;
        for pkt in pkts {
            let m = pkt.meta();
            if m.pool != p {
                break;
            }
            n = Self::make_room(idx, n, pool);
            idx[n] = m.idx;
            n += 1;
            k += 1;
        }
        self.len.set(n);
        k
    }

    /// Tops the `n` cached slots up to [`CACHE_MOVE`] from the ring (as far
    /// as it has any); returns the new count.
    #[inline(never)]
    fn refill(idx: &mut [u32; CACHE_MAX], mut n: usize, pool: &PoolShared) -> usize {
        while n < CACHE_MOVE {
            match pool.free.pop() {
                Some(i) => {
                    idx[n] = i;
                    n += 1;
                }
                None => break,
            }
        }
        n
    }

    /// `n`, or when the cache is full (`n` is [`CACHE_MAX`]) the count left
    /// after its coldest half went back to the ring.
    #[inline(always)]
    fn make_room(idx: &mut [u32; CACHE_MAX], n: usize, pool: &PoolShared) -> usize {
        if n < CACHE_MAX {
            return n;
        }
        for &v in &idx[..CACHE_MOVE] {
            pool.free.push_not_full(v);
        }
        idx.copy_within(CACHE_MOVE.., 0);
        n - CACHE_MOVE
    }

    fn held_for(&self, pool: &PoolShared) -> usize {
        if std::ptr::eq(self.pool.get(), pool) {
            self.len.get()
        } else {
            0
        }
    }

    /// Returns every cached slot to `pool`'s ring, if they are its.
    fn flush_if(&self, pool: &PoolShared) {
        if std::ptr::eq(self.pool.get(), pool) {
            self.flush();
        }
    }

    fn flush(&self) {
        let n = self.len.replace(0);
        if n == 0 {
            return;
        }
        // SAFETY: `len > 0`, so the pool still has slots out of its ring and
        // is mapped (see `PacketPool::drop`).
        let pool = unsafe { &*self.pool.get() };
        // SAFETY: as in `take`.
        let idx = unsafe { &*self.idx.get() };
        for &v in &idx[..n] {
            pool.free.push_not_full(v);
        }
    }
}

impl Drop for LocalCache {
    /// A thread that ends gives its cached slots back.
    fn drop(&mut self) {
        self.flush();
    }
}

/// Why packet data could not be changed.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum PacketError {
    /// Not enough head or tail room.
    #[error("packet buffer too small ({need} bytes needed)")]
    NoRoom { need: usize },
}

/// A packet: an owned buffer slot of a [`PacketPool`].
pub struct Packet {
    meta: NonNull<PacketMeta>,
}

// SAFETY: a Packet owns its slot exclusively; moving it to another thread
// moves that ownership. The pool free list it returns to is thread-safe.
unsafe impl Send for Packet {}

impl Packet {
    #[inline(always)]
    pub fn meta(&self) -> &PacketMeta {
        // SAFETY: the slot is owned by this Packet and initialised by `alloc`.
        unsafe { self.meta.as_ref() }
    }

    #[inline(always)]
    pub fn meta_mut(&mut self) -> &mut PacketMeta {
        // SAFETY: as in `meta`, and `&mut self` makes the access exclusive.
        unsafe { self.meta.as_mut() }
    }

    /// The metadata and the data at once (they are disjoint parts of the slot).
    #[inline(always)]
    pub fn meta_and_data(&mut self) -> (&mut PacketMeta, &[u8]) {
        let meta = self.meta.as_ptr();
        // SAFETY: the slot is owned by this Packet and `&mut self` makes the
        // access exclusive; the metadata and the buffer do not overlap, and
        // data_off + len <= BUF_SIZE (see `data`).
        unsafe {
            let (off, len) = ((*meta).data_off as usize, (*meta).len as usize);
            let data = std::slice::from_raw_parts(meta.cast::<u8>().add(META_SIZE + off), len);
            (&mut *meta, data)
        }
    }

    #[inline(always)]
    fn buf(&self) -> *mut u8 {
        // SAFETY: the buffer follows the metadata inside the same slot.
        unsafe { self.meta.as_ptr().cast::<u8>().add(META_SIZE) }
    }

    #[inline(always)]
    pub fn len(&self) -> usize {
        self.meta().len as usize
    }

    #[inline(always)]
    pub fn is_empty(&self) -> bool {
        self.meta().len == 0
    }

    #[inline(always)]
    pub fn data(&self) -> &[u8] {
        let m = self.meta();
        // SAFETY: data_off + len <= BUF_SIZE is an invariant of every method
        // that changes them; the bytes belong to this Packet's slot.
        unsafe { std::slice::from_raw_parts(self.buf().add(m.data_off as usize), m.len as usize) }
    }

    #[inline(always)]
    pub fn data_mut(&mut self) -> &mut [u8] {
        let (off, len) = (self.meta().data_off as usize, self.meta().len as usize);
        // SAFETY: as in `data`; `&mut self` makes the access exclusive.
        unsafe { std::slice::from_raw_parts_mut(self.buf().add(off), len) }
    }

    pub fn headroom(&self) -> usize {
        self.meta().data_off as usize
    }

    pub fn tailroom(&self) -> usize {
        BUF_SIZE - self.meta().data_off as usize - self.meta().len as usize
    }

    /// Replaces the data by `frame`, with the default headroom.
    pub fn set_data(&mut self, frame: &[u8]) -> Result<(), PacketError> {
        if frame.len() > DATA_ROOM {
            return Err(PacketError::NoRoom { need: frame.len() });
        }
        let m = self.meta_mut();
        m.data_off = HEADROOM as u16;
        m.len = frame.len() as u16;
        self.data_mut().copy_from_slice(frame);
        Ok(())
    }

    /// Grows the data by `n` bytes at the front; returns the whole data.
    #[inline]
    pub fn push_front(&mut self, n: usize) -> Result<&mut [u8], PacketError> {
        let m = self.meta_mut();
        if (m.data_off as usize) < n {
            return Err(PacketError::NoRoom { need: n });
        }
        m.data_off -= n as u16;
        m.len += n as u16;
        Ok(self.data_mut())
    }

    /// Drops `n` bytes from the front.
    #[inline]
    pub fn pull_front(&mut self, n: usize) -> Result<(), PacketError> {
        let m = self.meta_mut();
        if (m.len as usize) < n {
            return Err(PacketError::NoRoom { need: n });
        }
        m.data_off += n as u16;
        m.len -= n as u16;
        Ok(())
    }

    /// Grows the data by `n` bytes at the end; returns the new bytes.
    pub fn extend(&mut self, n: usize) -> Result<&mut [u8], PacketError> {
        if self.tailroom() < n {
            return Err(PacketError::NoRoom { need: n });
        }
        let old = self.len();
        self.meta_mut().len += n as u16;
        Ok(&mut self.data_mut()[old..])
    }

    /// Shortens the data to `len` bytes (no-op if already shorter).
    pub fn truncate(&mut self, len: usize) {
        if len < self.len() {
            self.meta_mut().len = len as u16;
        }
    }

    /// A copy of this packet (data and metadata) in a new buffer of the same pool.
    pub fn try_clone(&self) -> Option<Packet> {
        // SAFETY: the pool outlives every packet taken from it (see PacketPool::drop).
        let shared = unsafe { &*self.meta().pool };
        let idx = shared.free.pop()?;
        let dst = shared.slot(idx);
        let m = self.meta();
        // SAFETY: `dst` is a free slot now owned by the new packet; source and
        // destination slots are distinct, and both ranges lie in their slots.
        unsafe {
            dst.as_ptr().write(PacketMeta {
                in_port: m.in_port,
                recirc_id: m.recirc_id,
                hash: m.hash,
                l3_ofs: m.l3_ofs,
                l4_ofs: m.l4_ofs,
                tunnel: m.tunnel,
                data_off: m.data_off,
                len: m.len,
                idx,
                pool: m.pool,
            });
            let dbuf = dst
                .as_ptr()
                .cast::<u8>()
                .add(META_SIZE + m.data_off as usize);
            std::ptr::copy_nonoverlapping(
                self.buf().add(m.data_off as usize),
                dbuf,
                m.len as usize,
            );
        }
        Some(Packet { meta: dst })
    }
}

impl Drop for Packet {
    #[inline]
    fn drop(&mut self) {
        let m = self.meta();
        // SAFETY: the pool outlives every packet taken from it (see PacketPool::drop).
        let shared = unsafe { &*m.pool };
        shared.give(m.idx);
    }
}

impl std::fmt::Debug for Packet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Packet(in_port={}, len={})",
            self.meta().in_port,
            self.len()
        )
    }
}

/// Up to [`BATCH_SIZE`] packets moving through the datapath together.
///
/// Batches that carry packets are made by [`Batch::new`], which reserves a
/// full batch, so that swapping vectors between batches and queues never
/// leads to an allocation later. `Default` is an empty placeholder that
/// allocates nothing (for `std::mem::take`); it is not for carrying packets.
#[derive(Debug, Default)]
pub struct Batch {
    pkts: Vec<Packet>,
}

impl Batch {
    pub fn new() -> Batch {
        Batch {
            pkts: Vec::with_capacity(BATCH_SIZE),
        }
    }

    #[inline(always)]
    pub fn len(&self) -> usize {
        self.pkts.len()
    }

    #[inline(always)]
    pub fn is_empty(&self) -> bool {
        self.pkts.is_empty()
    }

    #[inline(always)]
    pub fn is_full(&self) -> bool {
        self.pkts.len() >= BATCH_SIZE
    }

    /// Adds a packet; hands it back when the batch is full.
    #[inline(always)]
    pub fn push(&mut self, p: Packet) -> Result<(), Packet> {
        if self.is_full() {
            return Err(p);
        }
        self.pkts.push(p);
        Ok(())
    }

    #[inline(always)]
    pub fn packets(&self) -> &[Packet] {
        &self.pkts
    }

    #[inline(always)]
    pub fn packets_mut(&mut self) -> &mut [Packet] {
        &mut self.pkts
    }

    /// Removes and yields every packet (keeps the capacity).
    #[inline(always)]
    pub fn drain(&mut self) -> std::vec::Drain<'_, Packet> {
        self.pkts.drain(..)
    }

    /// Moves every packet of `other` to the end of this batch (a swap when
    /// this one is empty); the caller keeps the total within [`BATCH_SIZE`].
    #[inline(always)]
    pub fn append(&mut self, other: &mut Batch) {
        debug_assert!(self.len() + other.len() <= BATCH_SIZE);
        if self.pkts.is_empty() {
            std::mem::swap(&mut self.pkts, &mut other.pkts);
        } else {
            self.pkts.append(&mut other.pkts);
        }
    }

    /// Adds packets from `it` until the batch is full; returns how many.
    #[inline]
    pub fn fill_from(&mut self, it: impl Iterator<Item = Packet>) -> usize {
        let before = self.pkts.len();
        let room = BATCH_SIZE.saturating_sub(before);
        self.pkts.extend(it.take(room));
        self.pkts.len() - before
    }

    /// Moves packets from the front of `queue` until the batch is full (a
    /// swap of vectors when all of them fit an empty batch); returns how many.
    #[inline]
    pub fn take_from(&mut self, queue: &mut Vec<Packet>) -> usize {
        if queue.is_empty() {
            return 0;
        }
        let room = BATCH_SIZE.saturating_sub(self.pkts.len());
        // Swapping keeps a full batch's capacity on both sides, so neither
        // side allocates later.
        if self.pkts.is_empty() && queue.len() <= room && queue.capacity() >= BATCH_SIZE {
            std::mem::swap(&mut self.pkts, queue);
            return self.pkts.len();
        }
        let n = room.min(queue.len());
        self.pkts.extend(queue.drain(..n));
        n
    }

    /// Moves every packet to the end of `queue` (a swap of vectors when the
    /// queue is empty and can hold a batch).
    #[inline]
    pub fn move_into(&mut self, queue: &mut Vec<Packet>) {
        if queue.is_empty() && queue.capacity() >= BATCH_SIZE {
            std::mem::swap(&mut self.pkts, queue);
        } else {
            queue.append(&mut self.pkts);
        }
    }

    pub fn pop(&mut self) -> Option<Packet> {
        self.pkts.pop()
    }

    /// Keeps the packets for which `f` returns true (in order); the others
    /// are dropped (their buffers go back to their pools).
    #[inline]
    pub fn retain_mut(&mut self, f: impl FnMut(&mut Packet) -> bool) {
        self.pkts.retain_mut(f);
    }

    /// Drops every packet (their buffers go back to their pools). Each run
    /// of packets of one pool goes straight into the thread's cache in one
    /// visit, not one per packet (callgrind, vhost_p2p: 29 instructions a
    /// packet through an array of indices, 14 this way).
    pub fn clear(&mut self) {
        let mut rest = &self.pkts[..];
        while let Some(first) = rest.first() {
            // SAFETY: the pool outlives every packet taken from it (see
            // PacketPool::drop), and `first` is still owned by the batch.
            let pool = unsafe { &*first.meta().pool };
            rest = &rest[pool.give_run(rest)..];
        }
        // SAFETY: every packet's slot is back in its pool, so none may be
        // dropped (which would give it back again): forgetting them all is
        // what the length of 0 does; `Packet` owns nothing else. Nothing
        // above can unwind past a packet already given back (`give_run`
        // panics nowhere: its indices are bounded by `make_room`; each run
        // has at least its first packet, so the loop ends).
        unsafe { self.pkts.set_len(0) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alloc_free_and_headroom() {
        let pool = PacketPool::new(4, false).unwrap();
        let mut p = pool.packet_from(&[1, 2, 3]).unwrap();
        assert_eq!(p.data(), &[1, 2, 3]);
        assert_eq!(p.headroom(), HEADROOM);
        assert_eq!(pool.available(), 3);
        p.push_front(2).unwrap().copy_from_slice(&[9, 8, 1, 2, 3]);
        assert_eq!(p.data(), &[9, 8, 1, 2, 3]);
        p.pull_front(4).unwrap();
        assert_eq!(p.data(), &[3]);
        assert!(p.push_front(HEADROOM + 10).is_err());
        let c = p.try_clone().unwrap();
        assert_eq!(c.data(), &[3]);
        assert_eq!(pool.available(), 2);
        drop((p, c));
        assert_eq!(pool.available(), 4);
    }

    #[test]
    fn reserved_slots_become_packets_once_and_the_rest_go_back() {
        for n in [CACHE_MIN_POOL, 40] {
            let pool = PacketPool::new(n, false).unwrap();
            // More than the pool (or a batch) holds: as many as it can give.
            let mut r = pool.reserve(2 * BATCH_SIZE);
            assert_eq!(pool.available(), n - BATCH_SIZE);
            let pkts: Vec<_> = std::iter::from_fn(|| r.alloc()).collect();
            assert_eq!(pkts.len(), BATCH_SIZE);
            let mut seen: Vec<u32> = pkts.iter().map(|p| p.meta().idx).collect();
            seen.sort_unstable();
            seen.dedup();
            assert_eq!(seen.len(), BATCH_SIZE, "a slot given out twice");
            assert!(pkts
                .iter()
                .all(|p| p.is_empty() && p.headroom() == HEADROOM));
            drop(r);
            // Slots not made into packets go back with the reservation.
            let mut r = pool.reserve(BATCH_SIZE);
            let some: Vec<_> = (0..5).map(|_| r.alloc().unwrap()).collect();
            drop(r);
            assert_eq!(pool.available(), n - BATCH_SIZE - 5);
            drop((pkts, some));
            assert_eq!(pool.available(), n);
        }
        // A pool with fewer free slots than asked for.
        let small = PacketPool::new(8, false).unwrap();
        let held: Vec<_> = (0..6).map(|_| small.alloc().unwrap()).collect();
        let mut r = small.reserve(BATCH_SIZE);
        assert!(r.alloc().is_some() && r.alloc().is_some() && r.alloc().is_none());
        drop((r, held));
        assert_eq!(small.available(), 8);
    }

    #[test]
    fn clearing_a_batch_returns_each_buffer_to_its_pool() {
        // Runs of packets of two pools, one of them cached (thread cache)
        // and one not, and more packets than a batch holds.
        let cached = PacketPool::new(CACHE_MIN_POOL, false).unwrap();
        let small = PacketPool::new(64, false).unwrap();
        let mut queue = Vec::new();
        for i in 0..2 * BATCH_SIZE + 3 {
            let pool = if (i / 3) % 2 == 0 { &cached } else { &small };
            queue.push(pool.packet_from(&[i as u8; 60]).unwrap());
        }
        let mut b = Batch { pkts: queue };
        assert!(cached.available() < CACHE_MIN_POOL && small.available() < 64);
        b.clear();
        assert!(b.is_empty());
        assert_eq!(cached.available(), CACHE_MIN_POOL);
        assert_eq!(small.available(), 64);
        // Every buffer is usable again, once each.
        let again: Vec<_> = (0..64).map(|_| small.alloc().unwrap()).collect();
        assert!(small.alloc().is_none());
        drop(again);
        assert_eq!(small.available(), 64);
    }

    #[test]
    fn thread_cache_reuses_the_warmest_buffer() {
        let pool = PacketPool::new(CACHE_MIN_POOL, false).unwrap();
        let a = pool.alloc().unwrap();
        let first = a.meta().idx;
        drop(a);
        // Last in, first out: the buffer just freed comes back, not the
        // oldest one of the ring.
        assert_eq!(pool.alloc().unwrap().meta().idx, first);
        // Without the cache (a small pool) the ring hands out the next one.
        let small = PacketPool::new(64, false).unwrap();
        let b = small.alloc().unwrap();
        let first = b.meta().idx;
        drop(b);
        assert_ne!(small.alloc().unwrap().meta().idx, first);
    }

    #[test]
    fn every_buffer_reachable_through_the_thread_cache() {
        let pool = PacketPool::new(CACHE_MIN_POOL, false).unwrap();
        // Overflow the cache both ways, twice.
        for _ in 0..2 {
            let all: Vec<Packet> = std::iter::from_fn(|| pool.alloc()).collect();
            assert_eq!(all.len(), CACHE_MIN_POOL);
            let mut seen: Vec<u32> = all.iter().map(|p| p.meta().idx).collect();
            seen.sort_unstable();
            seen.dedup();
            assert_eq!(seen.len(), CACHE_MIN_POOL, "a buffer handed out twice");
            assert_eq!(pool.available(), 0);
            drop(all);
            assert_eq!(pool.available(), CACHE_MIN_POOL);
        }
        // Another thread's cached buffers come back when it ends.
        let shared = std::sync::Arc::new(pool);
        let p2 = shared.clone();
        std::thread::spawn(move || {
            let some: Vec<Packet> = (0..1000).filter_map(|_| p2.alloc()).collect();
            assert_eq!(some.len(), 1000);
            drop(some);
            // All but what the main thread's cache holds.
            assert!(p2.available() >= CACHE_MIN_POOL - CACHE_MAX);
        })
        .join()
        .unwrap();
        let all: Vec<Packet> = std::iter::from_fn(|| shared.alloc()).collect();
        assert_eq!(all.len(), CACHE_MIN_POOL);
    }

    #[test]
    fn exhaustion_is_reported_not_fatal() {
        let pool = PacketPool::new(2, false).unwrap();
        let a = pool.alloc().unwrap();
        let _b = pool.alloc().unwrap();
        assert!(pool.alloc().is_none());
        assert!(a.try_clone().is_none());
        drop(a);
        assert!(pool.alloc().is_some());
        assert!(pool.packet_from(&[0u8; DATA_ROOM + 1]).is_none());
    }

    #[test]
    fn packets_may_outlive_the_pool_handle() {
        let pool = PacketPool::new(2, false).unwrap();
        let p = pool.packet_from(&[7; 60]).unwrap();
        drop(pool);
        assert_eq!(p.data()[59], 7);
        drop(p);
    }

    #[test]
    fn batch_is_bounded() {
        let pool = PacketPool::new(BATCH_SIZE + 1, false).unwrap();
        let mut b = Batch::new();
        for _ in 0..BATCH_SIZE {
            b.push(pool.alloc().unwrap()).unwrap();
        }
        assert!(b.push(pool.alloc().unwrap()).is_err());
        b.clear();
        assert_eq!(pool.available(), BATCH_SIZE + 1);
    }
}
