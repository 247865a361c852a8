//! Thin safe wrappers over the libc calls the kernel-facing drivers make
//! (sockets, socket options, interface ioctls, shared mappings, batched
//! I/O). Each wrapper checks its arguments so that callers stay safe code.

use std::ffi::CString;
use std::io;
use std::mem::size_of;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::ptr::NonNull;

/// Longest interface name the kernel accepts (IFNAMSIZ less the NUL).
pub const IFNAME_MAX: usize = libc::IFNAMSIZ - 1;

/// `TPACKET_V2` (an enum in the uapi header, so libc has no constant).
pub const TPACKET_V2: libc::c_int = 1;

fn cvt(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

fn cvt_size(ret: libc::ssize_t) -> io::Result<usize> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret as usize)
    }
}

fn socket(domain: libc::c_int, ty: libc::c_int, protocol: libc::c_int) -> io::Result<OwnedFd> {
    // SAFETY: plain syscall; on success the descriptor is new and owned by nobody else.
    let fd = cvt(unsafe { libc::socket(domain, ty | libc::SOCK_CLOEXEC, protocol) })?;
    // SAFETY: `fd` was just returned by socket() and is not owned elsewhere.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// A nonblocking raw packet socket that receives nothing until bound with a
/// protocol (protocol 0 keeps it off the receive path meanwhile).
pub fn packet_socket() -> io::Result<OwnedFd> {
    socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_NONBLOCK, 0)
}

/// A socket for interface ioctls; a unix socket needs no capability and
/// exists in every kernel, and the ioctls reach the device layer through it.
pub fn control_socket() -> io::Result<OwnedFd> {
    socket(libc::AF_UNIX, libc::SOCK_DGRAM, 0)
}

/// Sets a socket option whose value is the plain-data `val`.
pub fn setsockopt<T: Copy>(
    fd: BorrowedFd<'_>,
    level: libc::c_int,
    name: libc::c_int,
    val: &T,
) -> io::Result<()> {
    // SAFETY: `val` points to size_of::<T>() readable bytes for the duration of the call.
    cvt(unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (val as *const T).cast(),
            size_of::<T>() as libc::socklen_t,
        )
    })
    .map(drop)
}

/// Reads an integer socket option.
pub fn getsockopt_int(
    fd: BorrowedFd<'_>,
    level: libc::c_int,
    name: libc::c_int,
) -> io::Result<i32> {
    let mut val: libc::c_int = 0;
    let mut len = size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `val` and `len` are valid for writes and `len` holds their size.
    cvt(unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (&mut val as *mut i32).cast(),
            &mut len,
        )
    })?;
    Ok(val)
}

/// Reads (and so resets) a packet socket's counters: (packets, drops).
pub fn packet_stats(fd: BorrowedFd<'_>) -> io::Result<(u32, u32)> {
    let mut st = libc::tpacket_stats {
        tp_packets: 0,
        tp_drops: 0,
    };
    let mut len = size_of::<libc::tpacket_stats>() as libc::socklen_t;
    // SAFETY: `st` and `len` are valid for writes and `len` holds the size of `st`.
    cvt(unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_PACKET,
            libc::PACKET_STATISTICS,
            (&mut st as *mut libc::tpacket_stats).cast(),
            &mut len,
        )
    })?;
    Ok((st.tp_packets, st.tp_drops))
}

/// Binds a packet socket to interface `ifindex` for `protocol` (host order;
/// 0 to send only).
pub fn bind_packet(fd: BorrowedFd<'_>, ifindex: i32, protocol: u16) -> io::Result<()> {
    // SAFETY: sockaddr_ll is plain data; all zeroes is a valid value.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_protocol = protocol.to_be();
    sll.sll_ifindex = ifindex;
    // SAFETY: `sll` is a valid sockaddr_ll and the length passed is its size.
    cvt(unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&sll as *const libc::sockaddr_ll).cast(),
            size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    })
    .map(drop)
}

/// Checks an interface name as the kernel would, so that a bad one is a
/// clear error rather than a silently truncated name.
pub fn check_ifname(name: &str) -> Result<(), &'static str> {
    if name.is_empty() || name.len() > IFNAME_MAX {
        return Err("interface names have 1 to 15 bytes");
    }
    let bad = |b: u8| b == b'/' || b == b':' || b == 0 || b.is_ascii_whitespace();
    if name == "." || name == ".." || name.bytes().any(bad) {
        return Err("interface names cannot contain '/', ':', spaces or be '.' or '..'");
    }
    Ok(())
}

fn ifreq(name: &str) -> io::Result<libc::ifreq> {
    if check_ifname(name).is_err() {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    // SAFETY: ifreq is plain data (a name and a union of plain data); zeroes are valid.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in ifr.ifr_name.iter_mut().zip(name.bytes()) {
        *d = s as libc::c_char;
    }
    Ok(ifr)
}

fn ioctl_ifreq(fd: BorrowedFd<'_>, req: libc::Ioctl, ifr: &mut libc::ifreq) -> io::Result<()> {
    // SAFETY: every request used here reads and writes at most one struct
    // ifreq, which `ifr` points to.
    cvt(unsafe { libc::ioctl(fd.as_raw_fd(), req, ifr as *mut libc::ifreq) }).map(drop)
}

/// The index of interface `name`.
pub fn ifindex(ctl: BorrowedFd<'_>, name: &str) -> io::Result<i32> {
    let mut ifr = ifreq(name)?;
    ioctl_ifreq(ctl, libc::SIOCGIFINDEX, &mut ifr)?;
    // SAFETY: SIOCGIFINDEX filled the ifindex member of the union.
    Ok(unsafe { ifr.ifr_ifru.ifru_ifindex })
}

/// The IFF_* flags of interface `name` (including IFF_RUNNING, the carrier).
pub fn if_flags(ctl: BorrowedFd<'_>, name: &str) -> io::Result<u32> {
    let mut ifr = ifreq(name)?;
    ioctl_ifreq(ctl, libc::SIOCGIFFLAGS, &mut ifr)?;
    // SAFETY: SIOCGIFFLAGS filled the flags member of the union.
    Ok(unsafe { ifr.ifr_ifru.ifru_flags } as u16 as u32)
}

/// Sets the administrative flags of interface `name`.
pub fn set_if_flags(ctl: BorrowedFd<'_>, name: &str, flags: u32) -> io::Result<()> {
    let mut ifr = ifreq(name)?;
    ifr.ifr_ifru.ifru_flags = flags as u16 as libc::c_short;
    ioctl_ifreq(ctl, libc::SIOCSIFFLAGS, &mut ifr)
}

pub fn if_mtu(ctl: BorrowedFd<'_>, name: &str) -> io::Result<u32> {
    let mut ifr = ifreq(name)?;
    ioctl_ifreq(ctl, libc::SIOCGIFMTU, &mut ifr)?;
    // SAFETY: SIOCGIFMTU filled the mtu member of the union.
    Ok(unsafe { ifr.ifr_ifru.ifru_mtu } as u32)
}

/// The hardware address of interface `name` and its type (ARPHRD_*).
pub fn if_hwaddr(ctl: BorrowedFd<'_>, name: &str) -> io::Result<([u8; 6], u16)> {
    let mut ifr = ifreq(name)?;
    ioctl_ifreq(ctl, libc::SIOCGIFHWADDR, &mut ifr)?;
    // SAFETY: SIOCGIFHWADDR filled the hwaddr member of the union.
    let sa = unsafe { ifr.ifr_ifru.ifru_hwaddr };
    Ok((std::array::from_fn(|i| sa.sa_data[i] as u8), sa.sa_family))
}

pub fn set_if_hwaddr(ctl: BorrowedFd<'_>, name: &str, mac: [u8; 6]) -> io::Result<()> {
    let mut ifr = ifreq(name)?;
    // SAFETY: sockaddr is plain data; zeroes are valid.
    let mut sa: libc::sockaddr = unsafe { std::mem::zeroed() };
    sa.sa_family = libc::ARPHRD_ETHER;
    for (d, s) in sa.sa_data.iter_mut().zip(mac) {
        *d = s as libc::c_char;
    }
    ifr.ifr_ifru.ifru_hwaddr = sa;
    ioctl_ifreq(ctl, libc::SIOCSIFHWADDR, &mut ifr)
}

/// Opens the TUN/TAP clone device, nonblocking.
pub fn open_tun() -> io::Result<OwnedFd> {
    let path = CString::new("/dev/net/tun").expect("no NUL in a literal");
    let flags = libc::O_RDWR | libc::O_NONBLOCK | libc::O_CLOEXEC;
    // SAFETY: `path` is a valid NUL-terminated string; on success the
    // descriptor is new and owned by nobody else.
    let fd = cvt(unsafe { libc::open(path.as_ptr(), flags) })?;
    // SAFETY: `fd` was just returned by open() and is not owned elsewhere.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Attaches a TUN/TAP descriptor to device `name` (creating it if needed).
pub fn tun_set_iff(fd: BorrowedFd<'_>, name: &str, flags: libc::c_int) -> io::Result<()> {
    let mut ifr = ifreq(name)?;
    ifr.ifr_ifru.ifru_flags = flags as libc::c_short;
    // SAFETY: TUNSETIFF reads and writes one struct ifreq, which `ifr` is.
    cvt(unsafe {
        libc::ioctl(
            fd.as_raw_fd(),
            libc::TUNSETIFF,
            &mut ifr as *mut libc::ifreq,
        )
    })
    .map(drop)
}

/// A shared read-write mapping of a descriptor (a packet ring), unmapped on drop.
pub struct Mmap {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is plain memory; whoever holds the Mmap decides who
// touches it (a ring is owned by one queue at a time).
unsafe impl Send for Mmap {}

impl Mmap {
    pub fn shared(fd: BorrowedFd<'_>, len: usize) -> io::Result<Mmap> {
        // SAFETY: a new mapping at an address of the kernel's choosing; no
        // existing memory is affected. The result is checked below.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_POPULATE,
                fd.as_raw_fd(),
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr =
            NonNull::new(p.cast()).ok_or_else(|| io::Error::from_raw_os_error(libc::ENOMEM))?;
        Ok(Mmap { ptr, len })
    }

    pub fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    pub fn len(&self) -> usize {
        self.len
    }
}

impl Drop for Mmap {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` describe a mapping made by `shared` that nothing
        // refers to any more (borrows of it cannot outlive `self`).
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

/// Sends each of `frames` as one message on a bound packet socket, in one
/// `sendmmsg`; returns how many were sent (the first failure stops it).
pub fn sendmmsg(fd: BorrowedFd<'_>, frames: &[&[u8]]) -> io::Result<usize> {
    const N: usize = fvs_datapath::packet::BATCH_SIZE;
    let n = frames.len().min(N);
    let mut iov = [libc::iovec {
        iov_base: std::ptr::null_mut(),
        iov_len: 0,
    }; N];
    // SAFETY: mmsghdr is plain data (pointers and integers); zeroes are valid
    // and mean "no address, no control data".
    let mut msgs: [libc::mmsghdr; N] = unsafe { std::mem::zeroed() };
    for i in 0..n {
        iov[i] = libc::iovec {
            iov_base: frames[i].as_ptr() as *mut libc::c_void,
            iov_len: frames[i].len(),
        };
        msgs[i].msg_hdr.msg_iov = &mut iov[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
    }
    // SAFETY: the first `n` headers point to iovecs that point to the
    // caller's frames, all alive for the call; the kernel only reads them
    // (and writes msg_len, which is ours).
    let r = unsafe {
        libc::sendmmsg(
            fd.as_raw_fd(),
            msgs.as_mut_ptr(),
            n as libc::c_uint,
            libc::MSG_DONTWAIT,
        )
    };
    cvt(r).map(|r| r as usize)
}

/// Receives one queued message into `buf` without blocking; returns its full
/// length, which exceeds `buf.len()` when it was truncated.
pub fn recv_trunc(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: `buf` is valid for `buf.len()` bytes of writes.
    cvt_size(unsafe {
        libc::recv(
            fd.as_raw_fd(),
            buf.as_mut_ptr().cast(),
            buf.len(),
            libc::MSG_DONTWAIT | libc::MSG_TRUNC,
        )
    })
}

/// Reads one frame into `buf` then `spill`; returns the bytes read.
pub fn readv2(fd: BorrowedFd<'_>, buf: &mut [u8], spill: &mut [u8]) -> io::Result<usize> {
    let iov = [
        libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        },
        libc::iovec {
            iov_base: spill.as_mut_ptr().cast(),
            iov_len: spill.len(),
        },
    ];
    // SAFETY: both iovecs describe writable memory borrowed for the call.
    cvt_size(unsafe { libc::readv(fd.as_raw_fd(), iov.as_ptr(), 2) })
}

pub fn write(fd: BorrowedFd<'_>, buf: &[u8]) -> io::Result<usize> {
    // SAFETY: `buf` is valid for `buf.len()` bytes of reads.
    cvt_size(unsafe { libc::write(fd.as_raw_fd(), buf.as_ptr().cast(), buf.len()) })
}
