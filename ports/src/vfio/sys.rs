//! The VFIO kernel interface: containers (one IOMMU address space), groups
//! (the unit of isolation the IOMMU enforces) and devices (register
//! regions, PCI configuration space). Only the type1 IOMMU is used: every
//! address a device is given is an IOVA that the IOMMU translates, so a
//! device can reach nothing but the memory mapped here.
//!
//! Each group is opened once per process and shared by its devices; each
//! group has its own container, so that one port's failure or removal
//! never disturbs another's DMA mappings.

use std::collections::BTreeMap;
use std::ffi::CString;
use std::fs::{File, OpenOptions};
use std::io;
use std::mem::size_of;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::fs::FileExt;
use std::ptr::NonNull;
use std::sync::{Arc, Mutex, Weak};

use super::VfioError;

// ioctl numbers: _IO(';', 100 + n); VFIO passes sizes in `argsz`, not in the number.
const fn vfio_io(n: u64) -> u64 {
    ((b';' as u64) << 8) | (100 + n)
}
const VFIO_GET_API_VERSION: u64 = vfio_io(0);
const VFIO_CHECK_EXTENSION: u64 = vfio_io(1);
const VFIO_SET_IOMMU: u64 = vfio_io(2);
const VFIO_GROUP_GET_STATUS: u64 = vfio_io(3);
const VFIO_GROUP_SET_CONTAINER: u64 = vfio_io(4);
const VFIO_GROUP_GET_DEVICE_FD: u64 = vfio_io(6);
const VFIO_DEVICE_GET_INFO: u64 = vfio_io(7);
const VFIO_DEVICE_GET_REGION_INFO: u64 = vfio_io(8);
const VFIO_IOMMU_GET_INFO: u64 = vfio_io(12);
const VFIO_IOMMU_MAP_DMA: u64 = vfio_io(13);
const VFIO_IOMMU_UNMAP_DMA: u64 = vfio_io(14);

const VFIO_API_VERSION: libc::c_int = 0;
const VFIO_TYPE1_IOMMU: libc::c_int = 1;
const VFIO_TYPE1V2_IOMMU: libc::c_int = 3;
const VFIO_GROUP_FLAGS_VIABLE: u32 = 1;
const VFIO_DEVICE_FLAGS_PCI: u32 = 1 << 1;
const VFIO_REGION_INFO_FLAG_MMAP: u32 = 1 << 2;
const VFIO_IOMMU_INFO_CAPS: u32 = 1 << 1;
const VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE: u16 = 1;
const VFIO_DMA_MAP_FLAG_READ: u32 = 1;
const VFIO_DMA_MAP_FLAG_WRITE: u32 = 2;
/// Region index of PCI configuration space (after BAR0–5 and the ROM).
const VFIO_PCI_CONFIG_REGION_INDEX: u32 = 7;

#[repr(C)]
#[derive(Default)]
struct GroupStatus {
    argsz: u32,
    flags: u32,
}

#[repr(C)]
#[derive(Default)]
struct DeviceInfo {
    argsz: u32,
    flags: u32,
    num_regions: u32,
    num_irqs: u32,
    cap_offset: u32,
    pad: u32,
}

#[repr(C)]
#[derive(Default, Clone, Copy)]
struct RegionInfo {
    argsz: u32,
    flags: u32,
    index: u32,
    cap_offset: u32,
    size: u64,
    offset: u64,
}

#[repr(C)]
#[derive(Default)]
struct DmaMap {
    argsz: u32,
    flags: u32,
    vaddr: u64,
    iova: u64,
    size: u64,
}

#[repr(C)]
#[derive(Default)]
struct DmaUnmap {
    argsz: u32,
    flags: u32,
    iova: u64,
    size: u64,
}

/// `struct vfio_iommu_type1_info` without its capability chain.
const IOMMU_INFO_SIZE: usize = 24;

/// ioctl whose argument is an integer value.
fn ioctl_val(fd: &OwnedFd, req: u64, val: libc::c_int) -> io::Result<libc::c_int> {
    // SAFETY: these VFIO ioctls take their argument by value; no memory is passed.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), req as libc::Ioctl, val) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// ioctl whose argument is a pointer to `T`, which the kernel may fill in.
fn ioctl_ptr<T>(fd: &OwnedFd, req: u64, arg: &mut T) -> io::Result<libc::c_int> {
    // SAFETY: `arg` is a valid, exclusively borrowed `T` for the call, and
    // every `T` used here is the #[repr(C)] struct the request expects,
    // with `argsz` telling the kernel how many bytes it may touch.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), req as libc::Ioctl, arg as *mut T) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// ioctl whose argument is the buffer `buf`, which starts with `argsz`.
fn ioctl_buf(fd: &OwnedFd, req: u64, buf: &mut [u64]) -> io::Result<libc::c_int> {
    let argsz = buf.first().map_or(0, |w| *w as u32 as usize);
    if argsz > buf.len() * 8 {
        return Err(io::ErrorKind::InvalidInput.into());
    }
    // SAFETY: the kernel reads and writes at most `argsz` bytes, which the
    // exclusively borrowed buffer holds (checked above).
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), req as libc::Ioctl, buf.as_mut_ptr()) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn open_rw(path: &str) -> io::Result<OwnedFd> {
    let f = OpenOptions::new().read(true).write(true).open(path)?;
    Ok(OwnedFd::from(f))
}

/// A VFIO container with the type1 IOMMU set: one IOVA space.
pub struct Container {
    fd: OwnedFd,
    /// Valid IOVA ranges (inclusive ends), from the IOMMU.
    ranges: Vec<(u64, u64)>,
    /// Next free IOVA (a bump allocator: mappings live as long as the container).
    next_iova: Mutex<u64>,
    /// Packet pools mapped for DMA, by the pool's address.
    pub(super) pools: Mutex<Vec<Weak<super::dma::PoolDma>>>,
}

/// Lowest IOVA handed out: above 4 GiB, clear of the MSI window and of
/// low ranges some platforms reserve.
const IOVA_BASE: u64 = 1 << 32;

impl Container {
    fn open(bdf: &str) -> Result<OwnedFd, VfioError> {
        let fd = open_rw("/dev/vfio/vfio").map_err(|e| VfioError::NoVfio {
            bdf: bdf.into(),
            why: e.to_string(),
        })?;
        match ioctl_val(&fd, VFIO_GET_API_VERSION, 0) {
            Ok(VFIO_API_VERSION) => Ok(fd),
            Ok(v) => Err(VfioError::NoVfio {
                bdf: bdf.into(),
                why: format!("unknown VFIO API version {v}"),
            }),
            Err(e) => Err(VfioError::NoVfio {
                bdf: bdf.into(),
                why: e.to_string(),
            }),
        }
    }

    /// Sets the IOMMU type on a container that now holds a group.
    fn set_iommu(fd: OwnedFd, bdf: &str) -> Result<Container, VfioError> {
        let ty = if ioctl_val(&fd, VFIO_CHECK_EXTENSION, VFIO_TYPE1V2_IOMMU).unwrap_or(0) == 1 {
            VFIO_TYPE1V2_IOMMU
        } else if ioctl_val(&fd, VFIO_CHECK_EXTENSION, VFIO_TYPE1_IOMMU).unwrap_or(0) == 1 {
            VFIO_TYPE1_IOMMU
        } else {
            return Err(VfioError::NoIommu {
                bdf: bdf.into(),
                why: "the VFIO container offers no type1 IOMMU".into(),
            });
        };
        ioctl_val(&fd, VFIO_SET_IOMMU, ty).map_err(|e| VfioError::NoIommu {
            bdf: bdf.into(),
            why: format!("VFIO_SET_IOMMU: {e}"),
        })?;
        let ranges = iova_ranges(&fd).unwrap_or_default();
        let ranges = if ranges.is_empty() {
            // No capability (old kernels): 39 bits, the smallest width of
            // Intel's second-level tables.
            vec![(0, (1u64 << 39) - 1)]
        } else {
            ranges
        };
        Ok(Container {
            fd,
            ranges,
            next_iova: Mutex::new(IOVA_BASE),
            pools: Mutex::new(Vec::new()),
        })
    }

    /// Reserves `size` bytes of IOVA space aligned to `align` (a power of two).
    pub fn alloc_iova(&self, size: u64, align: u64) -> Option<u64> {
        let mut next = self.next_iova.lock().unwrap_or_else(|e| e.into_inner());
        let align = align.max(4096);
        for &(start, end) in &self.ranges {
            let from = (*next).max(start).checked_add(align - 1)? & !(align - 1);
            let last = from.checked_add(size.checked_sub(1)?)?;
            if last <= end {
                *next = last + 1;
                return Some(from);
            }
        }
        None
    }

    /// Lets the devices of this container read and write `size` bytes at
    /// `vaddr` through IOVA `iova`. The pages are pinned until unmapped.
    ///
    /// The caller keeps the memory mapped for as long as the mapping exists.
    pub fn map_dma(&self, vaddr: *const u8, size: usize, iova: u64) -> io::Result<()> {
        let mut m = DmaMap {
            argsz: size_of::<DmaMap>() as u32,
            flags: VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE,
            vaddr: vaddr as u64,
            iova,
            size: size as u64,
        };
        ioctl_ptr(&self.fd, VFIO_IOMMU_MAP_DMA, &mut m).map(|_| ())
    }

    pub fn unmap_dma(&self, iova: u64, size: usize) {
        let mut u = DmaUnmap {
            argsz: size_of::<DmaUnmap>() as u32,
            flags: 0,
            iova,
            size: size as u64,
        };
        let _ = ioctl_ptr(&self.fd, VFIO_IOMMU_UNMAP_DMA, &mut u);
    }
}

/// Reads the IOMMU's valid IOVA ranges from VFIO_IOMMU_GET_INFO's
/// capability chain (every offset and count checked against the buffer).
fn iova_ranges(fd: &OwnedFd) -> Option<Vec<(u64, u64)>> {
    // First with the bare struct: the kernel says how big the answer is.
    let mut buf = vec![0u64; IOMMU_INFO_SIZE / 8];
    buf[0] = IOMMU_INFO_SIZE as u64; // argsz (low half of the first word)
    ioctl_buf(fd, VFIO_IOMMU_GET_INFO, &mut buf).ok()?;
    let bytes = |b: &[u64]| -> Vec<u8> { b.iter().flat_map(|w| w.to_le_bytes()).collect() };
    let head = bytes(&buf);
    let u32_at = |b: &[u8], o: usize| -> Option<u32> {
        Some(u32::from_le_bytes(b.get(o..o + 4)?.try_into().ok()?))
    };
    let argsz = u32_at(&head, 0)? as usize;
    let flags = u32_at(&head, 4)?;
    if flags & VFIO_IOMMU_INFO_CAPS == 0 || argsz <= IOMMU_INFO_SIZE || argsz > 1 << 16 {
        return None;
    }
    let mut buf = vec![0u64; argsz.div_ceil(8)];
    buf[0] = argsz as u64;
    ioctl_buf(fd, VFIO_IOMMU_GET_INFO, &mut buf).ok()?;
    let b = bytes(&buf);
    let u16_at =
        |o: usize| -> Option<u16> { Some(u16::from_le_bytes(b.get(o..o + 2)?.try_into().ok()?)) };
    let u64_at =
        |o: usize| -> Option<u64> { Some(u64::from_le_bytes(b.get(o..o + 8)?.try_into().ok()?)) };
    let mut off = u32_at(&b, 16)? as usize;
    let mut hops = 0;
    while off != 0 && off + 8 <= b.len() && hops < 16 {
        hops += 1;
        let (id, next) = (u16_at(off)?, u32_at(&b, off + 4)? as usize);
        if id == VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE {
            let n = u32_at(&b, off + 8)? as usize;
            let mut ranges = Vec::new();
            for i in 0..n.min(64) {
                let at = off + 16 + i * 16;
                ranges.push((u64_at(at)?, u64_at(at + 8)?));
            }
            return Some(ranges);
        }
        if next <= off {
            break;
        }
        off = next;
    }
    None
}

/// An IOMMU group attached to its own container.
pub struct Group {
    pub id: u32,
    // Declared before `container`: closing the group detaches it first.
    fd: OwnedFd,
    pub container: Arc<Container>,
    /// Devices of this group in use by a port (address → port).
    in_use: Mutex<BTreeMap<String, String>>,
}

/// Groups open in this process, by number.
static GROUPS: Mutex<BTreeMap<u32, Weak<Group>>> = Mutex::new(BTreeMap::new());

impl Group {
    /// The group `id` (opened and given a container on first use) for device `bdf`.
    pub fn get(id: u32, bdf: &str) -> Result<Arc<Group>, VfioError> {
        let mut groups = GROUPS.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(g) = groups.get(&id).and_then(Weak::upgrade) {
            return Ok(g);
        }
        let g = Arc::new(Group::open(id, bdf)?);
        groups.retain(|_, w| w.strong_count() > 0);
        groups.insert(id, Arc::downgrade(&g));
        Ok(g)
    }

    fn open(id: u32, bdf: &str) -> Result<Group, VfioError> {
        let container = Container::open(bdf)?;
        let path = format!("/dev/vfio/{id}");
        let fd = match open_rw(&path) {
            Ok(fd) => fd,
            Err(e) => {
                let noiommu = std::path::Path::new(&format!("/dev/vfio/noiommu-{id}")).exists();
                return Err(match e.raw_os_error() {
                    _ if noiommu => VfioError::NoIommu {
                        bdf: bdf.into(),
                        why: "VFIO runs in no-IOMMU mode, which fvs does not use".into(),
                    },
                    Some(libc::EBUSY) => VfioError::GroupBusy {
                        bdf: bdf.into(),
                        group: id,
                    },
                    _ => VfioError::Os {
                        bdf: bdf.into(),
                        what: "open the IOMMU group",
                        source: io::Error::new(e.kind(), format!("{path}: {e}")),
                    },
                });
            }
        };
        let mut st = GroupStatus {
            argsz: size_of::<GroupStatus>() as u32,
            flags: 0,
        };
        ioctl_ptr(&fd, VFIO_GROUP_GET_STATUS, &mut st).map_err(|e| VfioError::Os {
            bdf: bdf.into(),
            what: "VFIO_GROUP_GET_STATUS",
            source: e,
        })?;
        if st.flags & VFIO_GROUP_FLAGS_VIABLE == 0 {
            return Err(VfioError::GroupNotViable {
                bdf: bdf.into(),
                group: id,
            });
        }
        let mut cfd = container.as_raw_fd();
        ioctl_ptr(&fd, VFIO_GROUP_SET_CONTAINER, &mut cfd).map_err(|e| VfioError::Os {
            bdf: bdf.into(),
            what: "VFIO_GROUP_SET_CONTAINER",
            source: e,
        })?;
        let container = Arc::new(Container::set_iommu(container, bdf)?);
        Ok(Group {
            id,
            fd,
            container,
            in_use: Mutex::new(BTreeMap::new()),
        })
    }

    /// Opens device `bdf` of this group for port `port`.
    pub fn open_device(self: &Arc<Group>, bdf: &str, port: &str) -> Result<Device, VfioError> {
        {
            let mut used = self.in_use.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(other) = used.get(bdf) {
                return Err(VfioError::DeviceBusy {
                    bdf: bdf.into(),
                    port: other.clone(),
                });
            }
            used.insert(bdf.into(), port.into());
        }
        let release = |g: &Group| {
            g.in_use
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(bdf);
        };
        match self.open_device_fd(bdf) {
            Ok((fd, config)) => Ok(Device {
                bdf: bdf.into(),
                file: File::from(fd),
                config,
                group: self.clone(),
            }),
            Err(e) => {
                release(self);
                Err(e)
            }
        }
    }

    fn open_device_fd(&self, bdf: &str) -> Result<(OwnedFd, RegionInfo), VfioError> {
        let os = |what| {
            let bdf = bdf.to_string();
            move |source| VfioError::Os { bdf, what, source }
        };
        let name = CString::new(bdf).map_err(|_| VfioError::Os {
            bdf: bdf.into(),
            what: "device name",
            source: io::ErrorKind::InvalidInput.into(),
        })?;
        // SAFETY: the ioctl reads the NUL-terminated name; on success it
        // returns a new descriptor that nobody else owns.
        let raw = unsafe {
            libc::ioctl(
                self.fd.as_raw_fd(),
                VFIO_GROUP_GET_DEVICE_FD as libc::Ioctl,
                name.as_ptr(),
            )
        };
        if raw < 0 {
            return Err(os("VFIO_GROUP_GET_DEVICE_FD")(io::Error::last_os_error()));
        }
        // SAFETY: `raw` is a fresh descriptor returned by the kernel just now.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let mut info = DeviceInfo {
            argsz: size_of::<DeviceInfo>() as u32,
            ..DeviceInfo::default()
        };
        ioctl_ptr(&fd, VFIO_DEVICE_GET_INFO, &mut info).map_err(os("VFIO_DEVICE_GET_INFO"))?;
        if info.flags & VFIO_DEVICE_FLAGS_PCI == 0
            || info.num_regions <= VFIO_PCI_CONFIG_REGION_INDEX
        {
            return Err(VfioError::Os {
                bdf: bdf.into(),
                what: "VFIO_DEVICE_GET_INFO",
                source: io::Error::other("not a PCI device"),
            });
        }
        let config = region_info(fd.as_fd(), VFIO_PCI_CONFIG_REGION_INDEX)
            .map_err(os("config space region"))?;
        Ok((fd, config))
    }
}

fn region_info(fd: BorrowedFd<'_>, index: u32) -> io::Result<RegionInfo> {
    let mut ri = RegionInfo {
        argsz: size_of::<RegionInfo>() as u32,
        index,
        ..RegionInfo::default()
    };
    // SAFETY: `ri` is the #[repr(C)] struct the request expects, valid and
    // exclusively borrowed for the call; `argsz` is its size.
    let r = unsafe {
        libc::ioctl(
            fd.as_raw_fd(),
            VFIO_DEVICE_GET_REGION_INFO as libc::Ioctl,
            &mut ri as *mut RegionInfo,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(ri)
}

/// A PCI device opened through VFIO.
pub struct Device {
    pub bdf: String,
    file: File,
    config: RegionInfo,
    pub group: Arc<Group>,
}

impl Drop for Device {
    fn drop(&mut self) {
        self.group
            .in_use
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.bdf);
    }
}

impl Device {
    pub fn container(&self) -> &Arc<Container> {
        &self.group.container
    }

    /// Reads `N` bytes of configuration space at `off` (all ones when the
    /// read fails, as a PCI master abort reads).
    fn config_read<const N: usize>(&self, off: u16) -> [u8; N] {
        let mut b = [0xffu8; N];
        if u64::from(off) + N as u64 <= self.config.size
            && self
                .file
                .read_exact_at(&mut b, self.config.offset + u64::from(off))
                .is_err()
        {
            b = [0xff; N];
        }
        b
    }

    pub fn config_read8(&self, off: u16) -> u8 {
        self.config_read::<1>(off)[0]
    }

    pub fn config_read16(&self, off: u16) -> u16 {
        u16::from_le_bytes(self.config_read(off))
    }

    pub fn config_read32(&self, off: u16) -> u32 {
        u32::from_le_bytes(self.config_read(off))
    }

    pub fn config_write16(&self, off: u16, v: u16) -> io::Result<()> {
        if u64::from(off) + 2 > self.config.size {
            return Err(io::ErrorKind::InvalidInput.into());
        }
        self.file
            .write_all_at(&v.to_le_bytes(), self.config.offset + u64::from(off))
    }

    /// Maps BAR `index` (0–5) for register access.
    pub fn map_bar(&self, index: u8) -> Result<Bar, VfioError> {
        let err = |why: String| VfioError::Bar {
            bdf: self.bdf.clone(),
            bar: index,
            why,
        };
        if index > 5 {
            return Err(err("no such BAR".into()));
        }
        let ri =
            region_info(self.file.as_fd(), u32::from(index)).map_err(|e| err(e.to_string()))?;
        if ri.size == 0 {
            return Err(err("not implemented by the device".into()));
        }
        if ri.flags & VFIO_REGION_INFO_FLAG_MMAP == 0 {
            return Err(err("VFIO cannot map it (an I/O port BAR?)".into()));
        }
        let len = usize::try_from(ri.size).map_err(|_| err("too large".into()))?;
        let offset =
            libc::off_t::try_from(ri.offset).map_err(|_| err("bad region offset".into()))?;
        // SAFETY: a new shared mapping of the device's region at an address
        // of the kernel's choosing; no existing memory is affected. The
        // result is checked below.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                self.file.as_raw_fd(),
                offset,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(err(format!("mmap: {}", io::Error::last_os_error())));
        }
        let ptr = NonNull::new(p.cast::<u8>()).ok_or_else(|| err("mmap returned null".into()))?;
        Ok(Bar {
            ptr,
            len,
            owned: true,
        })
    }
}

/// A device's memory-mapped register region. Every access is checked
/// against the region's size and alignment: an access outside reads all
/// ones and writes nothing (offsets partly come from the device itself).
pub struct Bar {
    ptr: NonNull<u8>,
    len: usize,
    /// Whether `ptr` is our mapping to unmap (a test's plain memory is not).
    owned: bool,
}

// SAFETY: the mapping is device memory reached only through volatile
// accesses; registers may be read and written from any thread.
unsafe impl Send for Bar {}
// SAFETY: as above; no Rust reference into the mapping is ever made.
unsafe impl Sync for Bar {}

impl Bar {
    /// A register region backed by `mem` (tests drive the drivers with it).
    #[cfg(test)]
    pub fn from_memory(mem: &'static mut [u32]) -> Bar {
        Bar {
            len: std::mem::size_of_val(mem),
            ptr: NonNull::from(mem).cast(),
            owned: false,
        }
    }

    pub fn size(&self) -> usize {
        self.len
    }

    fn at<T>(&self, off: usize) -> Option<*mut T> {
        let n = size_of::<T>();
        if !off.is_multiple_of(n) || off.checked_add(n)? > self.len {
            return None;
        }
        // SAFETY: off + n <= len, so the pointer stays inside the mapping.
        Some(unsafe { self.ptr.as_ptr().add(off) }.cast())
    }

    #[inline]
    pub fn read32(&self, off: usize) -> u32 {
        match self.at::<u32>(off) {
            // SAFETY: an aligned, in-bounds address of the mapping (`at`).
            Some(p) => u32::from_le(unsafe { p.read_volatile() }),
            None => u32::MAX,
        }
    }

    #[inline]
    pub fn write32(&self, off: usize, v: u32) {
        if let Some(p) = self.at::<u32>(off) {
            // SAFETY: an aligned, in-bounds address of the mapping (`at`).
            unsafe { p.write_volatile(v.to_le()) }
        }
    }

    #[inline]
    pub fn read16(&self, off: usize) -> u16 {
        match self.at::<u16>(off) {
            // SAFETY: an aligned, in-bounds address of the mapping (`at`).
            Some(p) => u16::from_le(unsafe { p.read_volatile() }),
            None => u16::MAX,
        }
    }

    #[inline]
    pub fn write16(&self, off: usize, v: u16) {
        if let Some(p) = self.at::<u16>(off) {
            // SAFETY: an aligned, in-bounds address of the mapping (`at`).
            unsafe { p.write_volatile(v.to_le()) }
        }
    }

    #[inline]
    pub fn read8(&self, off: usize) -> u8 {
        match self.at::<u8>(off) {
            // SAFETY: an in-bounds address of the mapping (`at`).
            Some(p) => unsafe { p.read_volatile() },
            None => u8::MAX,
        }
    }

    #[inline]
    pub fn write8(&self, off: usize, v: u8) {
        if let Some(p) = self.at::<u8>(off) {
            // SAFETY: an in-bounds address of the mapping (`at`).
            unsafe { p.write_volatile(v) }
        }
    }
}

impl Drop for Bar {
    fn drop(&mut self) {
        if self.owned {
            // SAFETY: our own mapping of `len` bytes; nothing refers to it
            // once the Bar is gone.
            unsafe {
                libc::munmap(self.ptr.as_ptr().cast(), self.len);
            }
        }
    }
}
