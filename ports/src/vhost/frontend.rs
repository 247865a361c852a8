//! A small virtio-net driver speaking vhost-user, as DPDK's virtio-user
//! does: guest memory is one memfd shared with the backend, rings and
//! buffers live in it, and packets are exchanged through split rings.
//!
//! It exists for tests and tools: it drives fvs's vhost-user ports without
//! DPDK or a VM, and it can also misbehave on purpose (descriptor loops,
//! addresses outside the memory table, an available index far ahead, a
//! memory table swapped mid-traffic, raw protocol messages).
//!
//! Rings and buffers are laid out by the driver; descriptor `i` of a queue
//! always points into buffer `i` of that queue.

use std::collections::HashMap;
use std::io::{self, Read};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

use super::backend::{feature, protocol};
use super::conn::{eventfd, send_fds};
use super::memory::memfd;
use super::msg::{
    self, addr_bytes, encode_request, mem_table_bytes, req, state_bytes, Header, MemRegion,
    VringAddr, FLAG_NEED_REPLY, HDR_SIZE,
};
use super::vring::{Desc, DESC_F_INDIRECT, DESC_F_NEXT, DESC_F_WRITE};

/// Guest physical address of the start of the driver's memory.
pub const GPA_BASE: u64 = 0x4000_0000;
/// Bytes of each descriptor's buffer.
pub const BUF_SIZE: usize = 2304;
const PAGE: usize = 4096;

/// How the driver sets itself up.
#[derive(Clone, Debug)]
pub struct Config {
    /// Features wanted (intersected with what the backend offers).
    pub features: u64,
    pub protocol_features: u64,
    pub queue_pairs: usize,
    pub queue_size: u16,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            features: feature::F_VERSION_1
                | feature::NET_F_MRG_RXBUF
                | feature::RING_F_INDIRECT_DESC
                | feature::RING_F_EVENT_IDX
                | feature::PROTOCOL_FEATURES
                | feature::NET_F_MQ,
            protocol_features: protocol::MQ | protocol::REPLY_ACK | protocol::NET_MTU,
            queue_pairs: 1,
            queue_size: 256,
        }
    }
}

/// Where a virtqueue's parts are, as offsets in the driver's memory.
#[derive(Clone, Copy, Debug)]
pub struct Layout {
    pub desc: usize,
    pub avail: usize,
    pub used: usize,
    pub bufs: usize,
    /// Room for one indirect table per descriptor (16 entries each).
    pub indirect: usize,
    pub size: u16,
}

struct Vq {
    lay: Layout,
    avail_idx: u16,
    last_used: u16,
    free: Vec<u16>,
    /// Descriptors of each chain in flight, by head.
    chains: HashMap<u16, Vec<u16>>,
    call: OwnedFd,
    kick: OwnedFd,
}

/// The driver's shared memory: a memfd mapped here.
pub struct Memory {
    fd: OwnedFd,
    base: *mut u8,
    len: usize,
}

// SAFETY: the mapping is owned by this value and unmapped only in Drop;
// accesses go through bounds-checked raw pointers.
unsafe impl Send for Memory {}

impl Memory {
    pub fn new(len: usize) -> io::Result<Memory> {
        let fd = memfd("fvs-frontend", len as u64)?;
        // SAFETY: a new shared mapping of our own memfd at an address of the
        // kernel's choosing; checked below.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Memory {
            fd,
            base: p.cast(),
            len,
        })
    }

    /// Our pointer to `len` bytes at offset `off` (panics outside).
    fn at(&self, off: usize, len: usize) -> *mut u8 {
        assert!(
            off.checked_add(len).is_some_and(|e| e <= self.len),
            "offset {off}+{len} outside the driver's memory"
        );
        // SAFETY: off + len <= self.len: inside our mapping.
        unsafe { self.base.add(off) }
    }

    pub fn write(&self, off: usize, data: &[u8]) {
        let p = self.at(off, data.len());
        // SAFETY: `at` checked the range; the source is a live slice.
        unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), p, data.len()) };
    }

    pub fn read(&self, off: usize, len: usize) -> Vec<u8> {
        let p = self.at(off, len);
        let mut v = vec![0u8; len];
        // SAFETY: `at` checked the range; the destination is our vector.
        unsafe { std::ptr::copy_nonoverlapping(p, v.as_mut_ptr(), len) };
        v
    }

    fn u16_at(&self, off: usize) -> &AtomicU16 {
        assert!(off.is_multiple_of(2));
        // SAFETY: in bounds (checked by `at`) and 2-byte aligned (the mapping
        // is page aligned); the backend writes it concurrently, hence atomic.
        unsafe { AtomicU16::from_ptr(self.at(off, 2).cast()) }
    }

    fn u32_at(&self, off: usize) -> u32 {
        let p = self.at(off, 4);
        // SAFETY: in bounds; volatile because the backend writes it.
        unsafe { p.cast::<u32>().read_volatile() }
    }

    /// The region that describes this memory to the backend.
    pub fn region(&self) -> MemRegion {
        MemRegion {
            gpa: GPA_BASE,
            size: self.len as u64,
            uva: self.base as u64,
            mmap_offset: 0,
        }
    }

    pub fn fd(&self) -> &OwnedFd {
        &self.fd
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl Drop for Memory {
    fn drop(&mut self) {
        // SAFETY: unmaps the mapping made in `new`, once.
        unsafe { libc::munmap(self.base.cast(), self.len) };
    }
}

/// A vhost-user frontend with one virtio-net device.
pub struct Frontend {
    sock: UnixStream,
    pub mem: Memory,
    cfg: Config,
    /// Features the backend offered, and those acked.
    pub offered: u64,
    pub features: u64,
    pub protocol: u64,
    vqs: Vec<Vq>,
}

/// Listens for a backend that connects (for `dpdkvhostuserclient` ports).
pub struct Listener {
    l: UnixListener,
}

impl Listener {
    pub fn bind(path: &Path) -> io::Result<Listener> {
        let _ = std::fs::remove_file(path);
        Ok(Listener {
            l: UnixListener::bind(path)?,
        })
    }

    /// Waits up to `timeout` for the backend to connect.
    pub fn accept(&self, cfg: Config, timeout: Duration) -> io::Result<Frontend> {
        self.l.set_nonblocking(true)?;
        let deadline = Instant::now() + timeout;
        loop {
            match self.l.accept() {
                Ok((s, _)) => {
                    s.set_nonblocking(false)?;
                    return Frontend::new(s, cfg);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(e) => return Err(e),
            }
        }
    }
}

impl Frontend {
    /// Connects to a backend listening on `path` (a `dpdkvhostuser` port).
    pub fn connect(path: &Path, cfg: Config) -> io::Result<Frontend> {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match UnixStream::connect(path) {
                Ok(s) => return Frontend::new(s, cfg),
                Err(_) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10))
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn new(sock: UnixStream, cfg: Config) -> io::Result<Frontend> {
        sock.set_read_timeout(Some(Duration::from_secs(5)))?;
        let n = 2 * cfg.queue_pairs;
        let size = cfg.queue_size as usize;
        let ring_bytes = (16 * size).next_multiple_of(PAGE)
            + (6 + 2 * size).next_multiple_of(PAGE)
            + (6 + 8 * size).next_multiple_of(PAGE);
        let per_vq = ring_bytes + size * BUF_SIZE + size * 16 * 16;
        let mem = Memory::new((n * per_vq).next_multiple_of(1 << 21))?;
        let mut vqs = Vec::with_capacity(n);
        for i in 0..n {
            let base = i * per_vq;
            let desc = base;
            let avail = desc + (16 * size).next_multiple_of(PAGE);
            let used = avail + (6 + 2 * size).next_multiple_of(PAGE);
            let bufs = used + (6 + 8 * size).next_multiple_of(PAGE);
            let indirect = bufs + size * BUF_SIZE;
            vqs.push(Vq {
                lay: Layout {
                    desc,
                    avail,
                    used,
                    bufs,
                    indirect,
                    size: cfg.queue_size,
                },
                avail_idx: 0,
                last_used: 0,
                free: (0..cfg.queue_size).rev().collect(),
                chains: HashMap::new(),
                call: eventfd()?,
                kick: eventfd()?,
            });
        }
        Ok(Frontend {
            sock,
            mem,
            cfg,
            offered: 0,
            features: 0,
            protocol: 0,
            vqs,
        })
    }

    /// Sends a raw message (fds attached) and, if `reply`, reads the
    /// answer's payload.
    pub fn raw(
        &mut self,
        request: u32,
        flags: u32,
        payload: &[u8],
        fds: &[&OwnedFd],
        reply: bool,
    ) -> io::Result<Option<Vec<u8>>> {
        let m = encode_request(request, flags, payload);
        let fds: Vec<_> = fds.iter().map(|f| f.as_fd()).collect();
        send_fds(self.sock.as_fd(), &m, &fds)?;
        if !reply {
            return Ok(None);
        }
        let mut h = [0u8; HDR_SIZE];
        self.sock.read_exact(&mut h)?;
        let h = Header::parse(&h).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        if h.request != request || h.flags != msg::VERSION | msg::FLAG_REPLY {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("unexpected reply {h:?} to request {request}"),
            ));
        }
        let mut p = vec![0u8; h.size as usize];
        self.sock.read_exact(&mut p)?;
        Ok(Some(p))
    }

    /// A request that gets a `u64` reply.
    pub fn get_u64(&mut self, request: u32) -> io::Result<u64> {
        let p = self.raw(request, 0, &[], &[], true)?.unwrap_or_default();
        let b: [u8; 8] = p
            .get(..8)
            .and_then(|s| s.try_into().ok())
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "short reply"))?;
        Ok(u64::from_le_bytes(b))
    }

    /// A request without a reply of its own, acknowledged when REPLY_ACK
    /// was negotiated; returns whether the backend accepted it.
    pub fn set(&mut self, request: u32, payload: &[u8], fds: &[&OwnedFd]) -> io::Result<bool> {
        let ack = self.protocol & protocol::REPLY_ACK != 0;
        let flags = if ack { FLAG_NEED_REPLY } else { 0 };
        match self.raw(request, flags, payload, fds, ack)? {
            Some(p) => Ok(p.get(..8).is_some_and(|s| s.iter().all(|&b| b == 0))),
            None => Ok(true),
        }
    }

    /// The whole start-up, as virtio-user does it: features, protocol
    /// features, owner, memory table, every ring, enable.
    pub fn setup(&mut self) -> io::Result<()> {
        self.offered = self.get_u64(req::GET_FEATURES)?;
        if self.offered & feature::PROTOCOL_FEATURES != 0 {
            let p = self.get_u64(req::GET_PROTOCOL_FEATURES)?;
            self.protocol = p & self.cfg.protocol_features;
            let pf = self.protocol;
            self.raw(req::SET_PROTOCOL_FEATURES, 0, &pf.to_le_bytes(), &[], false)?;
            if self.protocol & protocol::MQ != 0 {
                self.get_u64(req::GET_QUEUE_NUM)?;
            }
        }
        self.raw(req::SET_OWNER, 0, &[], &[], false)?;
        self.features = self.offered & self.cfg.features;
        let f = self.features;
        self.expect(req::SET_FEATURES, &f.to_le_bytes(), &[])?;
        self.set_mem_table()?;
        for i in 0..self.vqs.len() {
            self.setup_vq(i)?;
        }
        for i in 0..self.vqs.len() {
            self.enable(i, true)?;
        }
        Ok(())
    }

    fn expect(&mut self, request: u32, payload: &[u8], fds: &[&OwnedFd]) -> io::Result<()> {
        if self.set(request, payload, fds)? {
            Ok(())
        } else {
            Err(io::Error::other(format!(
                "backend refused {}",
                msg::request_name(request)
            )))
        }
    }

    /// Sends the memory table (one region: all of the driver's memory).
    pub fn set_mem_table(&mut self) -> io::Result<()> {
        let p = mem_table_bytes(&[self.mem.region()]);
        // Borrow juggling: the fd belongs to self.mem.
        let fd = self.mem.fd().try_clone()?;
        self.expect(req::SET_MEM_TABLE, &p, &[&fd])
    }

    /// Moves the driver to a new memfd with the same contents and announces
    /// it (as DPDK does when its memory grows): the old one is unmapped.
    /// The queues are paused around it, as DPDK does; `pause: false`
    /// swaps under running traffic (hostile).
    pub fn swap_memory(&mut self, pause: bool) -> io::Result<()> {
        if pause {
            for i in 0..self.vqs.len() {
                self.enable(i, false)?;
            }
        }
        let fresh = Memory::new(self.mem.len())?;
        let all = self.mem.read(0, self.mem.len());
        fresh.write(0, &all);
        // Ring addresses are frontend virtual addresses: they change too.
        self.mem = fresh;
        self.set_mem_table()?;
        for i in 0..self.vqs.len() {
            let a = self.vring_addr(i);
            self.expect(req::SET_VRING_ADDR, &addr_bytes(&a), &[])?;
        }
        if pause {
            for i in 0..self.vqs.len() {
                self.enable(i, true)?;
            }
        }
        Ok(())
    }

    pub fn vring_addr(&self, i: usize) -> VringAddr {
        let l = self.vqs[i].lay;
        let uva = |off: usize| self.mem.base as u64 + off as u64;
        VringAddr {
            index: i as u32,
            flags: 0,
            desc: uva(l.desc),
            used: uva(l.used),
            avail: uva(l.avail),
            log: 0,
        }
    }

    fn setup_vq(&mut self, i: usize) -> io::Result<()> {
        let call = self.vqs[i].call.try_clone()?;
        let kick = self.vqs[i].kick.try_clone()?;
        self.expect(req::SET_VRING_CALL, &(i as u64).to_le_bytes(), &[&call])?;
        let n = u32::from(self.cfg.queue_size);
        self.expect(req::SET_VRING_NUM, &state_bytes(i as u32, n), &[])?;
        let base = u32::from(self.vqs[i].avail_idx);
        self.expect(req::SET_VRING_BASE, &state_bytes(i as u32, base), &[])?;
        let a = self.vring_addr(i);
        self.expect(req::SET_VRING_ADDR, &addr_bytes(&a), &[])?;
        self.expect(req::SET_VRING_KICK, &(i as u64).to_le_bytes(), &[&kick])
    }

    pub fn enable(&mut self, vq: usize, on: bool) -> io::Result<()> {
        self.expect(
            req::SET_VRING_ENABLE,
            &state_bytes(vq as u32, u32::from(on)),
            &[],
        )
    }

    /// `GET_VRING_BASE`: stops the ring; returns the backend's next index.
    pub fn get_vring_base(&mut self, vq: usize) -> io::Result<u32> {
        let p = self
            .raw(
                req::GET_VRING_BASE,
                0,
                &state_bytes(vq as u32, 0),
                &[],
                true,
            )?
            .unwrap_or_default();
        Ok(p.get(4..8)
            .and_then(|s| s.try_into().ok())
            .map_or(0, u32::from_le_bytes))
    }

    pub fn layout(&self, vq: usize) -> Layout {
        self.vqs[vq].lay
    }

    pub fn hdr_len(&self) -> usize {
        if self.features & (feature::F_VERSION_1 | feature::NET_F_MRG_RXBUF) != 0 {
            12
        } else {
            10
        }
    }

    /// Guest physical address of offset `off` of the driver's memory.
    pub fn gpa(&self, off: usize) -> u64 {
        GPA_BASE + off as u64
    }

    fn buf(&self, vq: usize, d: u16) -> usize {
        self.vqs[vq].lay.bufs + d as usize * BUF_SIZE
    }

    /// Writes descriptor `i` of `vq`.
    pub fn write_desc(&self, vq: usize, i: u16, d: Desc) {
        let l = self.vqs[vq].lay;
        let mut b = [0u8; 16];
        b[0..8].copy_from_slice(&d.addr.to_le_bytes());
        b[8..12].copy_from_slice(&d.len.to_le_bytes());
        b[12..14].copy_from_slice(&d.flags.to_le_bytes());
        b[14..16].copy_from_slice(&d.next.to_le_bytes());
        self.mem.write(l.desc + 16 * i as usize, &b);
    }

    /// Makes chain `head` available (slot and index), as a driver does.
    pub fn push_avail(&mut self, vq: usize, head: u16) {
        let v = &mut self.vqs[vq];
        let slot = (v.avail_idx % v.lay.size) as usize;
        self.mem
            .write(v.lay.avail + 4 + 2 * slot, &head.to_le_bytes());
        v.avail_idx = v.avail_idx.wrapping_add(1);
        let idx = v.avail_idx;
        let off = v.lay.avail + 2;
        self.mem.u16_at(off).store(idx, Ordering::Release);
    }

    /// Sets the available index to anything (hostile).
    pub fn set_avail_idx(&mut self, vq: usize, idx: u16) {
        self.vqs[vq].avail_idx = idx;
        let off = self.vqs[vq].lay.avail + 2;
        self.mem.u16_at(off).store(idx, Ordering::Release);
    }

    pub fn set_avail_flags(&self, vq: usize, flags: u16) {
        let off = self.vqs[vq].lay.avail;
        self.mem.u16_at(off).store(flags, Ordering::Release);
    }

    /// EVENT_IDX: ask for an interrupt once the used index passes `v`.
    pub fn set_used_event(&self, vq: usize, v: u16) {
        let l = self.vqs[vq].lay;
        self.mem
            .u16_at(l.avail + 4 + 2 * l.size as usize)
            .store(v, Ordering::Release);
    }

    pub fn used_idx(&self, vq: usize) -> u16 {
        let off = self.vqs[vq].lay.used + 2;
        self.mem.u16_at(off).load(Ordering::Acquire)
    }

    pub fn used_flags(&self, vq: usize) -> u16 {
        let off = self.vqs[vq].lay.used;
        self.mem.u16_at(off).load(Ordering::Acquire)
    }

    /// Used element `slot` (modulo the size): (id, len).
    pub fn used_elem(&self, vq: usize, slot: u16) -> (u32, u32) {
        let l = self.vqs[vq].lay;
        let off = l.used + 4 + 8 * (slot % l.size) as usize;
        (self.mem.u32_at(off), self.mem.u32_at(off + 4))
    }

    /// Interrupts the backend signalled on `vq` since the last call.
    pub fn calls(&self, vq: usize) -> u64 {
        let mut b = [0u8; 8];
        // SAFETY: reads 8 bytes into a live buffer from our own eventfd
        // (non-blocking: EAGAIN when nothing was signalled).
        let n = unsafe { libc::read(self.vqs[vq].call.as_raw_fd(), b.as_mut_ptr().cast(), 8) };
        if n == 8 {
            u64::from_ne_bytes(b)
        } else {
            0
        }
    }

    fn take_desc(&mut self, vq: usize) -> Option<u16> {
        self.vqs[vq].free.pop()
    }

    /// Takes back what the backend used on transmit queue `vq`.
    pub fn reclaim(&mut self, vq: usize) -> usize {
        let used = self.used_idx(vq);
        let mut n = 0;
        while self.vqs[vq].last_used != used {
            let (id, _) = self.used_elem(vq, self.vqs[vq].last_used);
            let v = &mut self.vqs[vq];
            v.last_used = v.last_used.wrapping_add(1);
            if let Some(c) = v.chains.remove(&(id as u16)) {
                v.free.extend(c);
            }
            n += 1;
        }
        n
    }

    fn frame_with_hdr(&self, frame: &[u8]) -> Vec<u8> {
        let mut v = vec![0u8; self.hdr_len()];
        v.extend_from_slice(frame);
        v
    }

    /// Queues `frames` on queue pair `q` (one descriptor each); returns
    /// how many fitted.
    pub fn send(&mut self, q: usize, frames: &[&[u8]]) -> usize {
        let vq = 2 * q + 1;
        self.reclaim(vq);
        let mut n = 0;
        for f in frames {
            let Some(d) = self.take_desc(vq) else { break };
            let data = self.frame_with_hdr(f);
            let off = self.buf(vq, d);
            self.mem.write(off, &data[..data.len().min(BUF_SIZE)]);
            self.write_desc(
                vq,
                d,
                Desc {
                    addr: self.gpa(off),
                    len: data.len() as u32,
                    flags: 0,
                    next: 0,
                },
            );
            self.vqs[vq].chains.insert(d, vec![d]);
            self.push_avail(vq, d);
            n += 1;
        }
        n
    }

    /// Queues one frame as a chain: the header alone, then the frame cut
    /// in `pieces` descriptors.
    pub fn send_chained(&mut self, q: usize, frame: &[u8], pieces: usize) -> bool {
        let vq = 2 * q + 1;
        self.reclaim(vq);
        let pieces = pieces.max(1);
        if self.vqs[vq].free.len() < pieces + 1 {
            return false;
        }
        let ds: Vec<u16> = (0..=pieces).filter_map(|_| self.take_desc(vq)).collect();
        let hdr = vec![0u8; self.hdr_len()];
        let chunk = frame.len().div_ceil(pieces).max(1);
        let mut parts: Vec<&[u8]> = vec![&hdr];
        parts.extend(frame.chunks(chunk));
        while parts.len() < ds.len() {
            parts.push(&[]);
        }
        for (k, (&d, part)) in ds.iter().zip(&parts).enumerate() {
            let off = self.buf(vq, d);
            self.mem.write(off, part);
            let last = k + 1 == ds.len();
            self.write_desc(
                vq,
                d,
                Desc {
                    addr: self.gpa(off),
                    len: part.len() as u32,
                    flags: if last { 0 } else { DESC_F_NEXT },
                    next: if last { 0 } else { ds[k + 1] },
                },
            );
        }
        self.vqs[vq].chains.insert(ds[0], ds.clone());
        self.push_avail(vq, ds[0]);
        true
    }

    /// Queues one frame through an indirect table of two entries (header, frame).
    pub fn send_indirect(&mut self, q: usize, frame: &[u8]) -> bool {
        let vq = 2 * q + 1;
        self.reclaim(vq);
        let Some(d) = self.take_desc(vq) else {
            return false;
        };
        let l = self.vqs[vq].lay;
        let table = l.indirect + d as usize * 16 * 16;
        let hdr = vec![0u8; self.hdr_len()];
        let off = self.buf(vq, d);
        self.mem.write(off, &hdr);
        self.mem.write(off + 64, frame);
        let entries = [
            Desc {
                addr: self.gpa(off),
                len: hdr.len() as u32,
                flags: DESC_F_NEXT,
                next: 1,
            },
            Desc {
                addr: self.gpa(off + 64),
                len: frame.len() as u32,
                flags: 0,
                next: 0,
            },
        ];
        for (k, e) in entries.iter().enumerate() {
            self.write_raw_desc(table + 16 * k, *e);
        }
        self.write_desc(
            vq,
            d,
            Desc {
                addr: self.gpa(table),
                len: 32,
                flags: DESC_F_INDIRECT,
                next: 0,
            },
        );
        self.vqs[vq].chains.insert(d, vec![d]);
        self.push_avail(vq, d);
        true
    }

    /// Writes a descriptor anywhere in memory (indirect tables, hostile tests).
    pub fn write_raw_desc(&self, off: usize, d: Desc) {
        let mut b = [0u8; 16];
        b[0..8].copy_from_slice(&d.addr.to_le_bytes());
        b[8..12].copy_from_slice(&d.len.to_le_bytes());
        b[12..14].copy_from_slice(&d.flags.to_le_bytes());
        b[14..16].copy_from_slice(&d.next.to_le_bytes());
        self.mem.write(off, &b);
    }

    /// Posts receive buffers on queue pair `q` until the ring is full
    /// (`seg` > 0: each buffer a chain of writable segments of that size).
    pub fn post_rx(&mut self, q: usize, buf_len: usize) -> usize {
        self.post_rx_chained(q, buf_len, 1)
    }

    /// Posts receive buffers made of `segs` descriptors of `seg_len` bytes each.
    pub fn post_rx_chained(&mut self, q: usize, seg_len: usize, segs: usize) -> usize {
        let vq = 2 * q;
        let seg_len = seg_len.min(BUF_SIZE);
        let mut n = 0;
        while self.vqs[vq].free.len() >= segs.max(1) {
            let ds: Vec<u16> = (0..segs.max(1))
                .filter_map(|_| self.take_desc(vq))
                .collect();
            for (k, &d) in ds.iter().enumerate() {
                let last = k + 1 == ds.len();
                let off = self.buf(vq, d);
                self.write_desc(
                    vq,
                    d,
                    Desc {
                        addr: self.gpa(off),
                        len: seg_len as u32,
                        flags: DESC_F_WRITE | if last { 0 } else { DESC_F_NEXT },
                        next: if last { 0 } else { ds[k + 1] },
                    },
                );
            }
            self.vqs[vq].chains.insert(ds[0], ds.clone());
            self.push_avail(vq, ds[0]);
            n += 1;
        }
        n
    }

    /// Frames received on queue pair `q` so far (headers stripped, buffers
    /// of a frame merged as `num_buffers` says); the buffers are reposted
    /// with `repost_len` bytes (0: not reposted).
    pub fn recv(&mut self, q: usize, repost_len: usize) -> Vec<Vec<u8>> {
        let vq = 2 * q;
        let hdr = self.hdr_len();
        let mrg = self.features & feature::NET_F_MRG_RXBUF != 0;
        let used = self.used_idx(vq);
        let mut frames = Vec::new();
        let mut pending: Option<(Vec<u8>, u16)> = None;
        while self.vqs[vq].last_used != used {
            let (id, len) = self.used_elem(vq, self.vqs[vq].last_used);
            self.vqs[vq].last_used = self.vqs[vq].last_used.wrapping_add(1);
            let chain = self.vqs[vq].chains.remove(&(id as u16)).unwrap_or_default();
            // Gather the chain's bytes (segments in order, `len` in total).
            let mut data = Vec::new();
            let mut left = len as usize;
            for &d in &chain {
                let off = self.buf(vq, d);
                let seg = self.desc_len(vq, d).min(left);
                data.extend(self.mem.read(off, seg));
                left -= seg;
            }
            self.vqs[vq].free.extend(chain);
            match pending.take() {
                Some((mut f, more)) => {
                    f.extend(data);
                    if more > 1 {
                        pending = Some((f, more - 1));
                    } else {
                        frames.push(f);
                    }
                }
                None => {
                    if data.len() < hdr {
                        continue;
                    }
                    let nb = if mrg {
                        u16::from_le_bytes([data[10], data[11]]).max(1)
                    } else {
                        1
                    };
                    let f = data[hdr..].to_vec();
                    if nb > 1 {
                        pending = Some((f, nb - 1));
                    } else {
                        frames.push(f);
                    }
                }
            }
        }
        if repost_len > 0 {
            self.post_rx(q, repost_len);
        }
        frames
    }

    fn desc_len(&self, vq: usize, d: u16) -> usize {
        let l = self.vqs[vq].lay;
        let b = self.mem.read(l.desc + 16 * d as usize + 8, 4);
        u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize
    }

    /// Waits up to `timeout` until `n` frames arrived on pair `q`.
    pub fn recv_n(&mut self, q: usize, n: usize, timeout: Duration) -> Vec<Vec<u8>> {
        let deadline = Instant::now() + timeout;
        let mut all = Vec::new();
        while all.len() < n && Instant::now() < deadline {
            let got = self.recv(q, BUF_SIZE);
            if got.is_empty() {
                std::thread::sleep(Duration::from_millis(1));
            }
            all.extend(got);
        }
        all
    }

    /// Descriptors free on `vq`.
    pub fn free_descs(&self, vq: usize) -> usize {
        self.vqs[vq].free.len()
    }

    /// Closes the connection (the backend sees the frontend go away).
    pub fn disconnect(self) {}
}

/// An Ethernet frame of `len` bytes (at least 14) from `src` to `dst`,
/// carrying `seq` in its payload.
pub fn frame(dst: [u8; 6], src: [u8; 6], seq: u32, len: usize) -> Vec<u8> {
    let mut f = vec![0u8; len.max(18)];
    f[0..6].copy_from_slice(&dst);
    f[6..12].copy_from_slice(&src);
    f[12..14].copy_from_slice(&0x88b5u16.to_be_bytes());
    f[14..18].copy_from_slice(&seq.to_be_bytes());
    for (i, b) in f.iter_mut().enumerate().skip(18) {
        *b = (i as u32).wrapping_mul(31).wrapping_add(seq) as u8;
    }
    f
}
