//! The frontend's memory as the backend sees it: the regions of a
//! `SET_MEM_TABLE`, each mapped from the file descriptor that came with
//! it, and the checked translation of guest addresses into pointers.
//!
//! Every translation checks that the whole range `[addr, addr + len)` lies
//! inside one region; nothing outside the regions can be reached. The
//! mappings go away when the last holder of the [`GuestMemory`] drops it
//! (a new memory table, a disconnect): the rings keep it alive while they
//! use it, and they only use it under their lock (see `device.rs`).

use std::os::fd::{AsRawFd, OwnedFd};

use thiserror::Error;

use super::msg::{MemRegion, MAX_REGIONS};

/// Why a memory table was refused.
#[derive(Debug, Error)]
pub enum MemError {
    /// A region is empty or its addresses wrap around.
    #[error("memory region {0}: empty or its addresses overflow")]
    BadRegion(usize),
    /// Two regions claim the same guest addresses.
    #[error("memory regions {0} and {1} overlap")]
    Overlap(usize, usize),
    /// The file is not a regular file (memfd, hugetlbfs or tmpfs file).
    #[error("memory region {0}: the descriptor is not a regular file")]
    NotAFile(usize),
    /// The file is shorter than the region claims: touching the missing
    /// part would fault.
    #[error("memory region {region}: file of {file} bytes, region needs {need}")]
    FileTooShort { region: usize, file: u64, need: u64 },
    #[error("memory region {region}: {what}: {source}")]
    Os {
        region: usize,
        what: &'static str,
        source: std::io::Error,
    },
}

/// One mapped region.
#[derive(Clone, Copy, Debug)]
struct Region {
    gpa: u64,
    size: u64,
    uva: u64,
    /// Our address of the region's first byte.
    host: usize,
    map_base: usize,
    map_len: usize,
}

/// The mapped regions of one memory table.
pub struct GuestMemory {
    regions: [Region; MAX_REGIONS],
    n: usize,
}

// SAFETY: the regions are plain addresses of shared mappings owned by this
// value; they are only unmapped in Drop, when no thread can use them.
unsafe impl Send for GuestMemory {}
// SAFETY: as above; translation only reads the region table.
unsafe impl Sync for GuestMemory {}

const EMPTY: Region = Region {
    gpa: 0,
    size: 0,
    uva: 0,
    host: 0,
    map_base: 0,
    map_len: 0,
};

impl GuestMemory {
    /// Maps `regions`, region `i` from `fds[i]`. On any error nothing stays mapped.
    pub fn map(regions: &[MemRegion], fds: &[OwnedFd]) -> Result<GuestMemory, MemError> {
        let mut mem = GuestMemory {
            regions: [EMPTY; MAX_REGIONS],
            n: 0,
        };
        for (i, r) in regions.iter().enumerate().take(MAX_REGIONS) {
            let end_ok = r.size > 0
                && r.gpa.checked_add(r.size).is_some()
                && r.uva.checked_add(r.size).is_some()
                && r.mmap_offset.checked_add(r.size).is_some();
            if !end_ok {
                return Err(MemError::BadRegion(i));
            }
            for (j, o) in mem.regions[..mem.n].iter().enumerate() {
                if r.gpa < o.gpa + o.size && o.gpa < r.gpa + r.size {
                    return Err(MemError::Overlap(j, i));
                }
            }
            let fd = fds.get(i).ok_or(MemError::BadRegion(i))?;
            let region = map_region(i, r, fd)?;
            mem.regions[mem.n] = region;
            mem.n += 1;
        }
        Ok(mem)
    }

    /// Number of regions.
    pub fn len(&self) -> usize {
        self.n
    }

    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// Total bytes of guest memory mapped.
    pub fn total_size(&self) -> u64 {
        self.regions[..self.n].iter().map(|r| r.size).sum()
    }

    /// Our pointer to guest physical range `[gpa, gpa + len)`, if it lies
    /// inside one region. `hint` remembers the region of the last hit.
    #[inline(always)]
    pub fn gpa(&self, gpa: u64, len: u64, hint: &mut usize) -> Option<*mut u8> {
        if let Some(r) = self.regions.get(*hint) {
            if let Some(p) = within(r, r.gpa, gpa, len) {
                return Some(p);
            }
        }
        self.gpa_slow(gpa, len, hint)
    }

    #[inline(never)]
    fn gpa_slow(&self, gpa: u64, len: u64, hint: &mut usize) -> Option<*mut u8> {
        for (i, r) in self.regions[..self.n].iter().enumerate() {
            if let Some(p) = within(r, r.gpa, gpa, len) {
                *hint = i;
                return Some(p);
            }
        }
        None
    }

    /// Our pointer to the frontend's virtual range `[uva, uva + len)` (ring
    /// addresses are given this way), if it lies inside one region.
    pub fn uva(&self, uva: u64, len: u64) -> Option<*mut u8> {
        self.regions[..self.n]
            .iter()
            .find_map(|r| within(r, r.uva, uva, len))
    }
}

/// The pointer to `[addr, addr + len)` in region `r` whose addresses start at `base`.
#[inline(always)]
fn within(r: &Region, base: u64, addr: u64, len: u64) -> Option<*mut u8> {
    let off = addr.wrapping_sub(base);
    // `off < size` also rejects addresses below the base (they wrap to huge offsets).
    if off < r.size && len <= r.size - off {
        Some((r.host + off as usize) as *mut u8)
    } else {
        None
    }
}

fn map_region(i: usize, r: &MemRegion, fd: &OwnedFd) -> Result<Region, MemError> {
    let os = |what| {
        move |source| MemError::Os {
            region: i,
            what,
            source,
        }
    };
    // SAFETY: fstat writes into the zeroed stat buffer we pass; the
    // descriptor is ours (it came with the message).
    let st = unsafe {
        let mut st: libc::stat = std::mem::zeroed();
        if libc::fstat(fd.as_raw_fd(), &mut st) != 0 {
            return Err(os("fstat")(std::io::Error::last_os_error()));
        }
        st
    };
    if st.st_mode & libc::S_IFMT != libc::S_IFREG {
        return Err(MemError::NotAFile(i));
    }
    let need = r.mmap_offset + r.size;
    if (st.st_size as u64) < need {
        return Err(MemError::FileTooShort {
            region: i,
            file: st.st_size as u64,
            need,
        });
    }
    // Best effort: a file that can no longer shrink cannot make our accesses
    // fault later. (QEMU's memfd backend is sealed already; DPDK's files
    // usually refuse seals: their size is trusted as checked above.)
    // SAFETY: fcntl on our own descriptor with an integer argument.
    unsafe {
        libc::fcntl(fd.as_raw_fd(), libc::F_ADD_SEALS, libc::F_SEAL_SHRINK);
    }
    // Map from the page (or huge page) holding the region's start.
    let page = (st.st_blksize as u64)
        .clamp(4096, 1 << 30)
        .next_power_of_two();
    let map_off = r.mmap_offset & !(page - 1);
    let lead = r.mmap_offset - map_off;
    let map_len = (lead + r.size).div_ceil(page) * page;
    let Ok(map_len) = usize::try_from(map_len) else {
        return Err(MemError::BadRegion(i));
    };
    if map_len > isize::MAX as usize || map_off > i64::MAX as u64 {
        return Err(MemError::BadRegion(i));
    }
    // SAFETY: a new shared mapping at an address of the kernel's choosing;
    // no existing memory is affected. The result is checked below.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            map_len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            fd.as_raw_fd(),
            map_off as libc::off_t,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(os("mmap")(std::io::Error::last_os_error()));
    }
    Ok(Region {
        gpa: r.gpa,
        size: r.size,
        uva: r.uva,
        host: p as usize + lead as usize,
        map_base: p as usize,
        map_len,
    })
}

impl Drop for GuestMemory {
    fn drop(&mut self) {
        for r in &self.regions[..self.n] {
            // SAFETY: the mapping was made by map_region and is unmapped once,
            // here; no pointer into it outlives this value (the rings hold it).
            unsafe {
                libc::munmap(r.map_base as *mut libc::c_void, r.map_len);
            }
        }
    }
}

/// An anonymous shared file of `len` bytes (for frontends: tests, tools).
pub fn memfd(name: &str, len: u64) -> std::io::Result<OwnedFd> {
    use std::os::fd::FromRawFd;
    let cname = std::ffi::CString::new(name).unwrap_or_default();
    // SAFETY: memfd_create with a valid C string; the result is checked.
    let fd = unsafe { libc::memfd_create(cname.as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: a new descriptor that we own.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: ftruncate on our own descriptor.
    if unsafe { libc::ftruncate(fd.as_raw_fd(), len as libc::off_t) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(fd)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn region(gpa: u64, size: u64, off: u64) -> MemRegion {
        MemRegion {
            gpa,
            size,
            uva: gpa.wrapping_add(0x7000_0000),
            mmap_offset: off,
        }
    }

    #[test]
    fn translation_stays_inside_regions() {
        let fd = memfd("t", 1 << 20).unwrap();
        let fd2 = fd.try_clone().unwrap();
        let mem = GuestMemory::map(
            &[
                region(0x10000, 0x40000, 0),
                region(0x100000, 0x10000, 0x41000),
            ],
            &[fd, fd2],
        )
        .unwrap();
        let mut h = 0;
        assert!(mem.gpa(0x10000, 0x40000, &mut h).is_some());
        assert!(mem.gpa(0x10000, 0x40001, &mut h).is_none());
        assert!(mem.gpa(0xffff, 1, &mut h).is_none());
        assert!(mem.gpa(0x4ffff, 1, &mut h).is_some());
        assert!(mem.gpa(0x50000, 0, &mut h).is_none());
        assert!(mem.gpa(u64::MAX, 2, &mut h).is_none());
        let p = mem.gpa(0x100000, 16, &mut h).unwrap();
        assert_eq!(h, 1);
        // Region 1 is the file at 0x41000: written through region 0's view
        // at 0x10000 + 0x41000 - 0x40000 ... it is outside region 0, so check
        // through the mapping itself.
        // SAFETY: p points at 16 mapped bytes of region 1.
        unsafe { p.write(7) };
        // SAFETY: as above.
        assert_eq!(unsafe { p.read() }, 7);
        assert!(mem.uva(0x7001_0000, 8).is_some());
        assert!(mem.uva(0x7000_0000, 8).is_none());
    }

    #[test]
    fn bad_tables_are_refused() {
        let fd = || memfd("t", 1 << 16).unwrap();
        assert!(matches!(
            GuestMemory::map(&[region(0, 1 << 17, 0)], &[fd()]),
            Err(MemError::FileTooShort { .. })
        ));
        assert!(matches!(
            GuestMemory::map(&[region(0, 0, 0)], &[fd()]),
            Err(MemError::BadRegion(0))
        ));
        assert!(matches!(
            GuestMemory::map(&[region(u64::MAX - 10, 100, 0)], &[fd()]),
            Err(MemError::BadRegion(0))
        ));
        assert!(matches!(
            GuestMemory::map(&[region(0, 4096, 0), region(2048, 4096, 0)], &[fd(), fd()]),
            Err(MemError::Overlap(0, 1))
        ));
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        assert!(matches!(
            GuestMemory::map(&[region(0, 4096, 0)], &[a.into()]),
            Err(MemError::NotAFile(0))
        ));
    }
}
