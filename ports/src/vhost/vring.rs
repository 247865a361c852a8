//! Split virtqueues as the device sees them: the descriptor table, the
//! available ring (written by the driver) and the used ring (written by
//! us), located in guest memory, and the walk of a descriptor chain with
//! every index, address and length checked.
//!
//! Layout (virtio 1.x, split): descriptors are 16 bytes (`addr: u64, len:
//! u32, flags: u16, next: u16`), 16-byte aligned; the available ring is
//! `flags: u16, idx: u16, ring: [u16; size], used_event: u16`, 2-byte
//! aligned; the used ring is `flags: u16, idx: u16, ring: [{id: u32, len:
//! u32}; size], avail_event: u16`, 4-byte aligned.
//!
//! The guest writes these concurrently, so every access is a volatile or
//! atomic one through a raw pointer; nothing here makes a Rust reference to
//! guest memory.

use std::ptr::NonNull;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Arc;

use thiserror::Error;

use super::memory::GuestMemory;
use super::msg::VringAddr;

pub const DESC_F_NEXT: u16 = 1;
pub const DESC_F_WRITE: u16 = 2;
pub const DESC_F_INDIRECT: u16 = 4;
/// In the used ring's flags: the device does not want kicks.
pub const USED_F_NO_NOTIFY: u16 = 1;
/// In the available ring's flags: the driver does not want interrupts.
pub const AVAIL_F_NO_INTERRUPT: u16 = 1;
/// Largest split ring (virtio 1.x).
pub const MAX_QUEUE_SIZE: u32 = 32768;
/// Largest indirect table, in descriptors.
pub const MAX_INDIRECT: u32 = 32768;

/// A descriptor, as read from guest memory.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct Desc {
    pub addr: u64,
    pub len: u32,
    pub flags: u16,
    pub next: u16,
}

const _: () = assert!(std::mem::size_of::<Desc>() == 16);

/// Why a ring or a chain was refused. The messages become the port's
/// `Interface:error`.
#[derive(Clone, Copy, Debug, Error, PartialEq, Eq)]
pub enum RingError {
    #[error("ring size {0} is not a power of two from 1 to 32768")]
    BadSize(u32),
    #[error("ring addresses are misaligned")]
    Misaligned,
    #[error("ring {0} table is not inside the guest memory")]
    NotMapped(&'static str),
    /// The available index ran more than a ring's worth ahead of what we consumed.
    #[error("available index {avail} is {ahead} entries ahead of {last} (ring size {size})")]
    AvailAhead {
        avail: u16,
        last: u16,
        ahead: u16,
        size: u16,
    },
    #[error("descriptor head {head} is outside the ring (size {size})")]
    HeadOutOfRange { head: u16, size: u16 },
    #[error("descriptor chain: next index {next} outside its table ({len} entries)")]
    NextOutOfRange { next: u16, len: u32 },
    #[error("descriptor chain loops or is longer than its table ({0} entries)")]
    Loop(u32),
    #[error("indirect descriptor inside an indirect table")]
    NestedIndirect,
    #[error("indirect descriptor without VIRTIO_RING_F_INDIRECT_DESC")]
    IndirectNotNegotiated,
    #[error("indirect descriptor with the NEXT flag")]
    IndirectWithNext,
    #[error("indirect table of {0} bytes (must be a non-zero multiple of 16)")]
    BadIndirectLen(u32),
    #[error("descriptor buffer {addr:#x}+{len} is not inside the guest memory")]
    BadAddress { addr: u64, len: u32 },
    #[error("device-writable descriptor in a transmit chain")]
    WriteInTx,
    #[error("device-readable descriptor in a receive chain")]
    ReadInRx,
    #[error("frame of {0} bytes does not fit a packet buffer")]
    TooLong(usize),
    #[error("chain of {0} bytes is shorter than the virtio-net header")]
    TooShort(usize),
    #[error("receive buffers too fragmented ({0} segments)")]
    TooFragmented(usize),
}

/// Pointers to the three parts of a split ring in mapped guest memory, and
/// the memory that keeps them valid.
pub struct Ring {
    /// Keeps the mapping (and so every pointer below) alive.
    mem: Arc<GuestMemory>,
    desc: NonNull<Desc>,
    avail: NonNull<u16>,
    used: NonNull<u16>,
    mask: u16,
    /// `size` as a 32-bit count (a ring of 32768 does not fit u16 arithmetic in places).
    size32: u32,
}

// SAFETY: the pointers target the shared mapping owned by `mem`, which this
// value keeps alive; the ring is used by one thread at a time (under the
// vring lock).
unsafe impl Send for Ring {}

impl Ring {
    /// Locates a ring of `size` entries at the frontend addresses in `a`.
    pub fn new(mem: Arc<GuestMemory>, a: &VringAddr, size: u32) -> Result<Ring, RingError> {
        if size == 0 || size > MAX_QUEUE_SIZE || !size.is_power_of_two() {
            return Err(RingError::BadSize(size));
        }
        if !a.desc.is_multiple_of(16) || !a.avail.is_multiple_of(2) || !a.used.is_multiple_of(4) {
            return Err(RingError::Misaligned);
        }
        let n = size as u64;
        let desc = mem
            .uva(a.desc, 16 * n)
            .ok_or(RingError::NotMapped("descriptor"))?;
        let avail = mem
            .uva(a.avail, 6 + 2 * n)
            .ok_or(RingError::NotMapped("available"))?;
        let used = mem
            .uva(a.used, 6 + 8 * n)
            .ok_or(RingError::NotMapped("used"))?;
        // Mappings are page aligned and keep the file's offsets, and the
        // frontend's addresses were checked aligned; check ours anyway.
        if !(desc as usize).is_multiple_of(16)
            || !(avail as usize).is_multiple_of(2)
            || !(used as usize).is_multiple_of(4)
        {
            return Err(RingError::Misaligned);
        }
        let nn = |p: *mut u8| NonNull::new(p).ok_or(RingError::NotMapped("any"));
        Ok(Ring {
            desc: nn(desc)?.cast(),
            avail: nn(avail)?.cast(),
            used: nn(used)?.cast(),
            mem,
            mask: (size - 1) as u16,
            size32: size,
        })
    }

    #[inline(always)]
    pub fn mem(&self) -> &GuestMemory {
        &self.mem
    }

    /// Number of entries (a ring of 32768 reports 32768 here).
    #[inline(always)]
    pub fn size(&self) -> u32 {
        self.size32
    }

    #[inline(always)]
    fn avail_u16(&self, i: usize) -> &AtomicU16 {
        // SAFETY: index i < 3 + size lies inside the available ring, which
        // Ring::new checked to be mapped (6 + 2 * size bytes) and 2-byte
        // aligned; the mapping lives as long as self.mem.
        unsafe { AtomicU16::from_ptr(self.avail.as_ptr().add(i)) }
    }

    #[inline(always)]
    fn used_u16(&self, i: usize) -> &AtomicU16 {
        // SAFETY: i is 0, 1 (flags, idx) or 2 + 4 * size (avail_event), all
        // inside the used ring (6 + 8 * size bytes, 4-byte aligned).
        unsafe { AtomicU16::from_ptr(self.used.as_ptr().add(i)) }
    }

    /// The driver's available index (acquire: entries and descriptors it
    /// published before are visible after this).
    #[inline(always)]
    pub fn avail_idx(&self) -> u16 {
        self.avail_u16(1).load(Ordering::Acquire)
    }

    #[inline(always)]
    pub fn avail_flags(&self) -> u16 {
        self.avail_u16(0).load(Ordering::Relaxed)
    }

    /// The descriptor head in available slot `i` (taken modulo the size).
    #[inline(always)]
    pub fn avail_entry(&self, i: u16) -> u16 {
        self.avail_u16(2 + (i & self.mask) as usize)
            .load(Ordering::Relaxed)
    }

    /// `used_event`: with EVENT_IDX, interrupt once the used index passes it.
    #[inline(always)]
    pub fn used_event(&self) -> u16 {
        self.avail_u16(2 + self.size32 as usize)
            .load(Ordering::Relaxed)
    }

    #[inline(always)]
    pub fn used_idx(&self) -> u16 {
        self.used_u16(1).load(Ordering::Relaxed)
    }

    /// Publishes the used index (release: the entries written before are
    /// visible to the driver first).
    #[inline(always)]
    pub fn set_used_idx(&self, v: u16) {
        self.used_u16(1).store(v, Ordering::Release);
    }

    pub fn set_used_flags(&self, f: u16) {
        self.used_u16(0).store(f, Ordering::Relaxed);
    }

    /// `avail_event`: with EVENT_IDX, where the driver should kick next.
    pub fn set_avail_event(&self, v: u16) {
        self.used_u16(2 + 4 * self.size32 as usize)
            .store(v, Ordering::Relaxed);
    }

    /// Writes used element `slot` (modulo the size).
    #[inline(always)]
    pub fn put_used(&self, slot: u16, id: u16, len: u32) {
        let v = (id as u64) | ((len as u64) << 32);
        // SAFETY: the element lies inside the used ring (4 + 8 * slot bytes
        // in, slot < size) and is 4-byte aligned; written volatile because
        // the guest reads it concurrently.
        unsafe {
            let p = self
                .used
                .as_ptr()
                .cast::<u8>()
                .add(4 + 8 * (slot & self.mask) as usize)
                .cast::<u32>();
            p.write_volatile(v as u32);
            p.add(1).write_volatile((v >> 32) as u32);
        }
    }

    /// Descriptor `i` of the main table (`i < size`, checked by callers).
    #[inline(always)]
    pub fn desc(&self, i: u16) -> Desc {
        debug_assert!((i as u32) < self.size32);
        let i = (i & self.mask) as usize;
        // SAFETY: i < size, so the descriptor lies inside the mapped table
        // (16 * size bytes, 16-byte aligned).
        unsafe { self.desc.as_ptr().add(i).read_volatile() }
    }
}

/// Reads descriptor `i` of an indirect table at `table` (`i` is checked
/// against the table's length by the caller).
#[inline(always)]
fn indirect_desc(table: *const u8, i: u32) -> Desc {
    // SAFETY: the caller checked i < the table's entry count and the table
    // (16 * count bytes) was translated inside a mapped region; it may be
    // unaligned in a hostile guest, hence the unaligned read.
    unsafe { table.add(16 * i as usize).cast::<Desc>().read_unaligned() }
}

/// One buffer segment of a chain, as our pointer and length.
#[derive(Clone, Copy, Debug)]
pub struct Seg {
    pub ptr: *mut u8,
    pub len: u32,
    pub write: bool,
}

/// Walks the chain starting at `head`, giving each segment (translated and
/// bounds-checked) to `f`, which returns `false` to stop early.
///
/// Bounded: at most `size` descriptors of the main table and at most the
/// entries of one indirect table are visited, so a loop ends in
/// [`RingError::Loop`]. Indirect tables nest at most once.
#[inline]
pub fn walk_chain(
    ring: &Ring,
    head: u16,
    indirect_ok: bool,
    hint: &mut usize,
    f: impl FnMut(Seg) -> Result<bool, RingError>,
) -> Result<(), RingError> {
    if head as u32 >= ring.size32 {
        return Err(RingError::HeadOutOfRange {
            head,
            size: ring.size32 as u16,
        });
    }
    walk_chain_from(ring, ring.desc(head), indirect_ok, hint, f)
}

/// [`walk_chain`] from a head descriptor the caller has already read (and
/// checked the head index of). Each descriptor is read from guest memory
/// once, into a local, before its fields are checked and used: reading the
/// head again here could see other values than the caller decided on.
#[inline]
pub fn walk_chain_from(
    ring: &Ring,
    head_desc: Desc,
    indirect_ok: bool,
    hint: &mut usize,
    mut f: impl FnMut(Seg) -> Result<bool, RingError>,
) -> Result<(), RingError> {
    let mem = ring.mem();
    // The table being walked: None for the main one.
    let mut table: Option<(*const u8, u32)> = None;
    let mut len = ring.size32;
    let mut idx = 0u32;
    let mut seen = 0u32;
    let mut first = Some(head_desc);
    loop {
        let d = match (first.take(), table) {
            (Some(d), _) => d,
            (None, None) => ring.desc(idx as u16),
            (None, Some((t, _))) => indirect_desc(t, idx),
        };
        seen += 1;
        if seen > len {
            return Err(RingError::Loop(len));
        }
        if d.flags & DESC_F_INDIRECT != 0 {
            if table.is_some() {
                return Err(RingError::NestedIndirect);
            }
            if !indirect_ok {
                return Err(RingError::IndirectNotNegotiated);
            }
            if d.flags & DESC_F_NEXT != 0 {
                return Err(RingError::IndirectWithNext);
            }
            if d.len == 0 || d.len % 16 != 0 || d.len / 16 > MAX_INDIRECT {
                return Err(RingError::BadIndirectLen(d.len));
            }
            let t = mem
                .gpa(d.addr, d.len as u64, hint)
                .ok_or(RingError::BadAddress {
                    addr: d.addr,
                    len: d.len,
                })?;
            len = d.len / 16;
            table = Some((t, len));
            idx = 0;
            seen = 0;
            continue;
        }
        if d.len > 0 {
            let p = mem
                .gpa(d.addr, d.len as u64, hint)
                .ok_or(RingError::BadAddress {
                    addr: d.addr,
                    len: d.len,
                })?;
            let go_on = f(Seg {
                ptr: p,
                len: d.len,
                write: d.flags & DESC_F_WRITE != 0,
            })?;
            if !go_on {
                return Ok(());
            }
        }
        if d.flags & DESC_F_NEXT == 0 {
            return Ok(());
        }
        if d.next as u32 >= len {
            return Err(RingError::NextOutOfRange { next: d.next, len });
        }
        idx = d.next as u32;
    }
}

/// `vring_need_event`: whether moving an index from `old` to `new` crossed
/// the other side's `event` (EVENT_IDX notification suppression).
#[inline(always)]
pub fn need_event(event: u16, new: u16, old: u16) -> bool {
    new.wrapping_sub(event).wrapping_sub(1) < new.wrapping_sub(old)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vhost::memory::{memfd, GuestMemory};
    use crate::vhost::msg::MemRegion;
    use std::fs::File;
    use std::os::unix::fs::FileExt;

    /// One 64 KiB region at guest address 0 (frontend address 0x10000),
    /// the file behind it (for writes a test can make mid-walk), and a ring
    /// of `size` entries with its descriptor table at guest address 0.
    fn guest(size: u32) -> (File, Ring) {
        let fd = memfd("vring-test", 1 << 16).unwrap();
        let file = File::from(fd.try_clone().unwrap());
        let region = MemRegion {
            gpa: 0,
            size: 1 << 16,
            uva: 0x10000,
            mmap_offset: 0,
        };
        let mem = GuestMemory::map(&[region], &[fd]).unwrap();
        let a = VringAddr {
            desc: 0x10000,
            avail: 0x12000,
            used: 0x13000,
            ..VringAddr::default()
        };
        (file, Ring::new(Arc::new(mem), &a, size).unwrap())
    }

    fn put(f: &File, at: u64, d: Desc) {
        let mut b = [0u8; 16];
        b[0..8].copy_from_slice(&d.addr.to_le_bytes());
        b[8..12].copy_from_slice(&d.len.to_le_bytes());
        b[12..14].copy_from_slice(&d.flags.to_le_bytes());
        b[14..16].copy_from_slice(&d.next.to_le_bytes());
        f.write_all_at(&b, at).unwrap();
    }

    fn desc(addr: u64, len: u32, flags: u16, next: u16) -> Desc {
        Desc {
            addr,
            len,
            flags,
            next,
        }
    }

    /// A descriptor the walker has used is never read again: the head it is
    /// handed is not looked up in the table, and descriptors the guest
    /// rewrites after their segment was delivered (here, into loops onto
    /// themselves with other lengths and flags) change nothing.
    #[test]
    fn descriptors_are_read_once() {
        const N: u16 = DESC_F_NEXT;
        let (f, ring) = guest(8);
        // Slot 0 holds garbage: the caller read the real head already.
        put(&f, 0, desc(0xdead_0000, 7, DESC_F_INDIRECT | N, 7));
        put(&f, 16, desc(0x1100, 20, N, 2));
        put(&f, 32, desc(0x1200, 30, 0, 0));
        let mut lens = Vec::new();
        walk_chain_from(&ring, desc(0x1000, 10, N, 1), false, &mut 0, |s| {
            lens.push((s.len, s.write));
            let i = lens.len() as u16 - 1;
            put(&f, 16 * u64::from(i), desc(0x1000, 1, N | DESC_F_WRITE, i));
            Ok(true)
        })
        .unwrap();
        assert_eq!(lens, [(10, false), (20, false), (30, false)]);

        // An indirect table at 0x800: its entries and the descriptor that
        // points at it, rewritten as they are used.
        put(&f, 0, desc(0x800, 48, DESC_F_INDIRECT, 0));
        for (i, d) in [
            desc(0x1000, 11, N, 1),
            desc(0x1100, 22, N, 2),
            desc(0x1200, 33, 0, 0),
        ]
        .into_iter()
        .enumerate()
        {
            put(&f, 0x800 + 16 * i as u64, d);
        }
        let mut lens = Vec::new();
        walk_chain(&ring, 0, true, &mut 0, |s| {
            lens.push(s.len);
            let i = lens.len() as u16 - 1;
            put(&f, 0x800 + 16 * u64::from(i), desc(0x1000, 1, N, i));
            put(&f, 0, desc(0x900, 16, DESC_F_INDIRECT, 0));
            Ok(true)
        })
        .unwrap();
        assert_eq!(lens, [11, 22, 33]);
    }

    #[test]
    fn need_event_matches_the_spec() {
        // Driver wants an event once index 5 is used.
        assert!(need_event(5, 6, 5));
        assert!(need_event(5, 10, 0));
        assert!(!need_event(5, 5, 0));
        assert!(!need_event(5, 20, 10));
        assert!(!need_event(5, 5, 5));
        // Wrapping around 65535.
        assert!(need_event(65535, 1, 65530));
        assert!(!need_event(3, 1, 65530));
    }
}
