//! Memory a device reaches by DMA, through the IOMMU.
//!
//! [`DmaRegion`]: a driver's own memory for descriptor rings and control
//! buffers, mapped at a fresh IOVA. [`PoolDma`]: the packet pool, mapped
//! once per container, so that a received frame lands in a pool buffer
//! and a sent packet leaves from its buffer without a copy.
//!
//! The device writes this memory behind the program's back, so it is only
//! ever read and written with volatile accesses through checked offsets,
//! never through Rust references; what the device wrote (lengths, indexes,
//! status bits) is data to validate, like any input.

use std::io;
use std::ptr::NonNull;
use std::sync::{Arc, Weak};

use fvs_datapath::packet::PacketPool;

use super::sys::Container;

/// Driver memory (descriptor rings, control buffers) visible to a device.
pub struct DmaRegion {
    ptr: NonNull<u8>,
    len: usize,
    iova: u64,
    /// None for a test's region (no IOMMU mapping to undo).
    container: Option<Arc<Container>>,
}

// SAFETY: the region is plain memory reached only with volatile accesses
// through `&self`/`&mut self` methods; the owner decides who uses it.
unsafe impl Send for DmaRegion {}
// SAFETY: as above; concurrent volatile accesses to plain memory are
// what a device does anyway, and no reference into it is handed out.
unsafe impl Sync for DmaRegion {}

fn anon_map(len: usize) -> io::Result<NonNull<u8>> {
    // SAFETY: a new private anonymous mapping at an address of the
    // kernel's choosing (zero-filled, populated); nothing else is affected.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    NonNull::new(p.cast()).ok_or_else(|| io::Error::other("mmap returned null"))
}

impl DmaRegion {
    /// At least `len` bytes of zeroed memory, mapped for the devices of `container`.
    pub fn new(container: &Arc<Container>, len: usize) -> io::Result<DmaRegion> {
        let len = len.max(1).div_ceil(4096) * 4096;
        let iova = container
            .alloc_iova(len as u64, 4096)
            .ok_or_else(|| io::Error::other("IOVA space exhausted"))?;
        let ptr = anon_map(len)?;
        if let Err(e) = container.map_dma(ptr.as_ptr(), len, iova) {
            // SAFETY: our own mapping, just made and not yet shared.
            unsafe { libc::munmap(ptr.as_ptr().cast(), len) };
            return Err(e);
        }
        Ok(DmaRegion {
            ptr,
            len,
            iova,
            container: Some(container.clone()),
        })
    }

    /// Zeroed memory with a made-up IOVA, for tests that play the device.
    #[cfg(test)]
    pub fn for_test(len: usize, iova: u64) -> DmaRegion {
        let len = len.max(1).div_ceil(4096) * 4096;
        DmaRegion {
            ptr: anon_map(len).expect("mmap"),
            len,
            iova,
            container: None,
        }
    }

    pub fn iova(&self) -> u64 {
        self.iova
    }

    pub fn size(&self) -> usize {
        self.len
    }

    fn at<T>(&self, off: usize) -> Option<*mut T> {
        let n = std::mem::size_of::<T>();
        if !off.is_multiple_of(n) || off.checked_add(n)? > self.len {
            return None;
        }
        // SAFETY: off + n <= len: the pointer stays inside the mapping.
        Some(unsafe { self.ptr.as_ptr().add(off) }.cast())
    }

    /// Reads a little-endian value (zero when `off` is out of bounds or misaligned).
    #[inline]
    pub fn read<T: LeValue>(&self, off: usize) -> T {
        match self.at::<T>(off) {
            // SAFETY: an aligned, in-bounds address of our mapping (`at`).
            Some(p) => unsafe { p.read_volatile() }.le_decode(),
            None => T::default(),
        }
    }

    /// Writes a little-endian value (nothing when `off` is out of bounds or misaligned).
    #[inline]
    pub fn write<T: LeValue>(&self, off: usize, v: T) {
        if let Some(p) = self.at::<T>(off) {
            // SAFETY: an aligned, in-bounds address of our mapping (`at`).
            unsafe { p.write_volatile(v.le_encode()) }
        }
    }

    /// Copies `bytes` to `off` (nothing if it does not fit).
    pub fn write_bytes(&self, off: usize, bytes: &[u8]) {
        for (i, b) in bytes.iter().enumerate() {
            self.write::<u8>(off + i, *b);
        }
    }
}

impl Drop for DmaRegion {
    fn drop(&mut self) {
        if let Some(c) = &self.container {
            c.unmap_dma(self.iova, self.len);
        }
        // SAFETY: our own mapping; the owner stopped the device from using
        // it (and the IOMMU mapping is gone), and no reference into it exists.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

/// Plain little-endian integers a device reads and writes.
pub trait LeValue: Copy + Default {
    fn le_decode(self) -> Self;
    fn le_encode(self) -> Self;
}

macro_rules! le_value {
    ($($t:ty),*) => {$(
        impl LeValue for $t {
            #[inline(always)]
            fn le_decode(self) -> Self { <$t>::from_le(self) }
            #[inline(always)]
            fn le_encode(self) -> Self { <$t>::to_le(self) }
        }
    )*};
}
le_value!(u8, u16, u32, u64);

/// The packet pool as the devices of one container see it.
pub struct PoolDma {
    pool: Arc<PacketPool>,
    base: usize,
    len: usize,
    iova: u64,
    container: Option<Arc<Container>>,
}

impl PoolDma {
    /// The DMA mapping of `pool` in `container` (made on first use, shared after).
    pub fn get(container: &Arc<Container>, pool: &Arc<PacketPool>) -> io::Result<Arc<PoolDma>> {
        let (base, len) = pool.region();
        let mut pools = container.pools.lock().unwrap_or_else(|e| e.into_inner());
        pools.retain(|w| w.strong_count() > 0);
        if let Some(p) = pools
            .iter()
            .filter_map(Weak::upgrade)
            .find(|p| p.base == base as usize)
        {
            return Ok(p);
        }
        // 2 MB alignment lets the IOMMU use large pages for a hugepage pool.
        let iova = container
            .alloc_iova(len as u64, 2 << 20)
            .ok_or_else(|| io::Error::other("IOVA space exhausted"))?;
        container.map_dma(base, len, iova)?;
        let p = Arc::new(PoolDma {
            pool: pool.clone(),
            base: base as usize,
            len,
            iova,
            container: Some(container.clone()),
        });
        pools.push(Arc::downgrade(&p));
        Ok(p)
    }

    /// `pool` seen at a made-up IOVA, for tests that play the device.
    #[cfg(test)]
    pub fn for_test(pool: &Arc<PacketPool>, iova: u64) -> Arc<PoolDma> {
        let (base, len) = pool.region();
        Arc::new(PoolDma {
            pool: pool.clone(),
            base: base as usize,
            len,
            iova,
            container: None,
        })
    }

    pub fn pool(&self) -> &PacketPool {
        &self.pool
    }

    /// The IOVA of `len` bytes at `ptr`, if they lie inside the pool.
    #[inline]
    pub fn iova_of(&self, ptr: *const u8, len: usize) -> Option<u64> {
        let off = (ptr as usize).checked_sub(self.base)?;
        if off.checked_add(len)? > self.len {
            return None;
        }
        Some(self.iova + off as u64)
    }

    /// The address of the pool byte at IOVA `iova` (tests play the device with it).
    #[cfg(test)]
    pub fn vaddr_of(&self, iova: u64) -> Option<usize> {
        let off = iova.checked_sub(self.iova)? as usize;
        (off < self.len).then_some(self.base + off)
    }
}

impl Drop for PoolDma {
    fn drop(&mut self) {
        if let Some(c) = &self.container {
            c.unmap_dma(self.iova, self.len);
        }
    }
}
