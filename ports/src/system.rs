//! `type=system`: an existing kernel interface (a NIC, one end of a veth
//! pair) attached through AF_PACKET sockets.
//!
//! Receive: one socket per rx queue (spread by flow hash with
//! `PACKET_FANOUT` when there are several), each with a `TPACKET_V2` ring
//! mapped into the process; a poll walks the ring and copies frames into
//! pool buffers, so receiving makes no syscall at all. The sockets are
//! promiscuous, ignore the interface's outgoing frames (the switch's own
//! transmissions would otherwise come back) and ask for a virtio-net header,
//! with which frames from a local stack arrive with partial checksums or as
//! 64 KB TSO super-frames; [`crate::offload`] finishes them. Frames too big
//! for a ring slot are queued on the socket by the kernel
//! (`PACKET_COPY_THRESH`) and read with one `recv` each.
//!
//! Transmit: each tx queue is its own socket bound to the interface, and a
//! batch leaves in one `sendmmsg`, so PMD threads never share a lock.

use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use fvs_datapath::netdev::{Netdev, NetdevError, NetdevStats, RxQueue, TxQueue};
use fvs_datapath::packet::{Batch, Packet, PacketPool, BATCH_SIZE, DATA_ROOM};

use crate::offload::{complete_csum, put_frame, GsoError, Segmenter, VnetHdr, VNET_HDR_LEN};
use crate::{os_error, sys, Counters, PortError};

const ETH_P_ALL: u16 = 0x0003;
/// Ring slots per rx queue (about 2 MB of ring each).
const RING_FRAMES: usize = 1024;
const RING_BLOCK: usize = 1 << 16;
/// Room in a slot in front of the frame: tpacket2_hdr and sockaddr_ll,
/// aligned, plus the virtio-net header (the kernel's `macoff` is at most
/// this for Ethernet).
const SLOT_HEAD: usize = 96;
/// A slot holds a full pool buffer; anything larger goes through the socket
/// queue (and is segmented or dropped).
const RING_FRAME_SIZE: usize = (SLOT_HEAD + DATA_ROOM + 15) & !15;
/// Largest frame read from the socket queue: a 64 KB super-frame and its
/// headers, with room to insert a VLAN tag in front.
const BIG_FRAME: usize = 1 << 17;
const SOCKBUF: i32 = 8 << 20;
/// Where the kernel puts the frame's sockaddr_ll in a slot:
/// TPACKET_ALIGN(sizeof(struct tpacket2_hdr)).
const SLL_OFFSET: usize = (std::mem::size_of::<libc::tpacket2_hdr>() + libc::TPACKET_ALIGNMENT - 1)
    & !(libc::TPACKET_ALIGNMENT - 1);

/// A port on an existing kernel interface.
pub struct SystemPort {
    name: String,
    ifname: String,
    kind: &'static str,
    ifindex: i32,
    ctl: OwnedFd,
    rx: Vec<Arc<RxSlot>>,
    tx: Vec<Arc<TxShared>>,
    pool: Arc<PacketPool>,
}

struct RxSlot {
    fd: Arc<OwnedFd>,
    /// The socket and its ring while no queue holds them.
    idle: Mutex<Option<RxSock>>,
    taken: AtomicBool,
    counters: Counters,
    kernel_drops: AtomicU64,
}

struct TxShared {
    fd: OwnedFd,
    counters: Counters,
}

impl SystemPort {
    /// Attaches port `name` to kernel interface `ifname` with `n_rxq`
    /// receive queues.
    pub fn open(
        name: &str,
        ifname: &str,
        n_rxq: usize,
        pool: Arc<PacketPool>,
    ) -> Result<SystemPort, PortError> {
        let err = |what| move |e| os_error(name, ifname, what, e);
        if let Err(why) = sys::check_ifname(ifname) {
            return Err(PortError::InvalidName {
                port: name.into(),
                ifname: ifname.into(),
                why,
            });
        }
        let ctl = sys::control_socket().map_err(err("control socket"))?;
        let ifindex = sys::ifindex(ctl.as_fd(), ifname).map_err(err("interface lookup"))?;
        let (_, hw_type) = sys::if_hwaddr(ctl.as_fd(), ifname).map_err(err("get address"))?;
        if hw_type != libc::ARPHRD_ETHER {
            return Err(PortError::NotEthernet {
                port: name.into(),
                ifname: ifname.into(),
            });
        }
        let n_rxq = n_rxq.clamp(1, 64);
        let mut fanout_id = None;
        let mut rx = Vec::with_capacity(n_rxq);
        for _ in 0..n_rxq {
            let sock =
                RxSock::open(ifindex, n_rxq > 1, &mut fanout_id).map_err(err("packet socket"))?;
            rx.push(Arc::new(RxSlot {
                fd: sock.fd.clone(),
                idle: Mutex::new(Some(sock)),
                taken: AtomicBool::new(false),
                counters: Counters::default(),
                kernel_drops: AtomicU64::new(0),
            }));
        }
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let n_txq = cpus.clamp(1, 64).max(n_rxq);
        let mut tx = Vec::with_capacity(n_txq);
        for _ in 0..n_txq {
            let fd = sys::packet_socket().map_err(err("packet socket"))?;
            // Bound with protocol 0: the socket sends on the interface but
            // never receives, so nothing piles up in it.
            sys::bind_packet(fd.as_fd(), ifindex, 0).map_err(err("bind"))?;
            set_buf(&fd, libc::SO_SNDBUFFORCE, libc::SO_SNDBUF);
            tx.push(Arc::new(TxShared {
                fd,
                counters: Counters::default(),
            }));
        }
        Ok(SystemPort {
            name: name.into(),
            ifname: ifname.into(),
            kind: "system",
            ifindex,
            ctl,
            rx,
            tx,
            pool,
        })
    }

    /// The kernel interface the port is attached to.
    pub fn ifname(&self) -> &str {
        &self.ifname
    }

    pub(crate) fn with_kind(mut self, kind: &'static str) -> SystemPort {
        self.kind = kind;
        self
    }

    fn flags(&self) -> Option<u32> {
        // A device deleted and recreated under the same name is not ours.
        let same = sys::ifindex(self.ctl.as_fd(), &self.ifname).ok()? == self.ifindex;
        same.then(|| sys::if_flags(self.ctl.as_fd(), &self.ifname).ok())?
    }
}

/// Raises a socket buffer, past the sysctl limit when privileged.
fn set_buf(fd: &OwnedFd, force: libc::c_int, plain: libc::c_int) {
    if sys::setsockopt(fd.as_fd(), libc::SOL_SOCKET, force, &SOCKBUF).is_err() {
        // Best effort: the default size only means earlier drops.
        let _ = sys::setsockopt(fd.as_fd(), libc::SOL_SOCKET, plain, &SOCKBUF);
    }
}

impl Netdev for SystemPort {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &str {
        self.kind
    }

    fn n_rxq(&self) -> usize {
        self.rx.len()
    }

    fn n_txq(&self) -> usize {
        self.tx.len()
    }

    fn open_rxq(&self, q: usize) -> Result<Box<dyn RxQueue>, NetdevError> {
        let slot = self.rx.get(q).ok_or_else(|| NetdevError::NoSuchQueue {
            port: self.name.clone(),
            queue: q,
        })?;
        let busy = || NetdevError::QueueBusy {
            port: self.name.clone(),
            queue: q,
        };
        if slot.taken.swap(true, Ordering::AcqRel) {
            return Err(busy());
        }
        let sock = slot.idle.lock().unwrap_or_else(|e| e.into_inner()).take();
        let sock = sock.ok_or_else(busy)?;
        Ok(Box::new(SystemRxq {
            sock: Some(sock),
            slot: slot.clone(),
            pool: self.pool.clone(),
            spare: None,
        }))
    }

    fn open_txq(&self, q: usize) -> Result<Box<dyn TxQueue>, NetdevError> {
        let shared = self.tx.get(q).ok_or_else(|| NetdevError::NoSuchQueue {
            port: self.name.clone(),
            queue: q,
        })?;
        Ok(Box::new(SystemTxq {
            shared: shared.clone(),
        }))
    }

    fn stats(&self) -> NetdevStats {
        let mut s = NetdevStats::default();
        for slot in &self.rx {
            // Reading the kernel's counters resets them: accumulate.
            if let Ok((_, drops)) = sys::packet_stats(slot.fd.as_fd()) {
                slot.kernel_drops.fetch_add(drops as u64, Ordering::Relaxed);
            }
            s += slot.counters.get();
            s.rx_dropped += slot.kernel_drops.load(Ordering::Relaxed);
        }
        for t in &self.tx {
            s += t.counters.get();
        }
        s
    }

    fn mac(&self) -> [u8; 6] {
        sys::if_hwaddr(self.ctl.as_fd(), &self.ifname).map_or([0; 6], |(mac, _)| mac)
    }

    fn mtu(&self) -> u32 {
        sys::if_mtu(self.ctl.as_fd(), &self.ifname).unwrap_or(0)
    }

    /// Up when the interface is administratively up and has carrier.
    fn is_up(&self) -> bool {
        let want = (libc::IFF_UP | libc::IFF_RUNNING) as u32;
        self.flags().is_some_and(|f| f & want == want)
    }

    fn is_gone(&self) -> bool {
        sys::ifindex(self.ctl.as_fd(), &self.ifname).ok() != Some(self.ifindex)
    }
}

/// A TPACKET_V2 receive ring: `frames` slots of `RING_FRAME_SIZE` bytes,
/// packed into blocks of `RING_BLOCK` bytes.
struct Ring {
    map: sys::Mmap,
    frames: usize,
    per_block: usize,
}

/// What the kernel wrote in front of a frame.
struct SlotHdr {
    len: usize,
    snaplen: usize,
    mac: usize,
    vlan_tci: u16,
    vlan_tpid: u16,
    pkttype: u8,
}

impl Ring {
    fn slot(&self, i: usize) -> *mut u8 {
        assert!(i < self.frames, "ring slot {i} out of range");
        let off = (i / self.per_block) * RING_BLOCK + (i % self.per_block) * RING_FRAME_SIZE;
        debug_assert!(off + RING_FRAME_SIZE <= self.map.len());
        // SAFETY: i < frames (asserted), so the slot lies inside the mapping
        // (sized as blocks * RING_BLOCK with per_block slots per block).
        unsafe { self.map.as_ptr().add(off) }
    }

    fn status_word(&self, i: usize) -> &AtomicU32 {
        // SAFETY: tp_status is the first, 4-byte aligned field of the slot
        // (slots are 16-byte aligned in a page-aligned mapping), and the
        // kernel and this process both access it as a 32-bit word.
        unsafe { AtomicU32::from_ptr(self.slot(i).cast()) }
    }

    /// The slot's status; with TP_STATUS_USER, the slot is ours (the
    /// acquire pairs with the kernel's barrier before it sets the status).
    fn status(&self, i: usize) -> u32 {
        self.status_word(i).load(Ordering::Acquire)
    }

    /// Hands slot `i` back to the kernel. `&mut self` ensures that no slice
    /// of the slot (from `bytes`) is still alive.
    fn release(&mut self, i: usize) {
        self.status_word(i)
            .store(libc::TP_STATUS_KERNEL, Ordering::Release);
    }

    /// The slot's header; call only while the slot belongs to user space.
    fn header(&self, i: usize) -> SlotHdr {
        // SAFETY: the slot starts with a tpacket2_hdr (aligned as above)
        // followed by a sockaddr_ll at TPACKET_ALIGN(sizeof(tpacket2_hdr));
        // the kernel does not write a slot whose status is TP_STATUS_USER.
        let (h, pkttype) = unsafe {
            let p = self.slot(i);
            let h = p.cast::<libc::tpacket2_hdr>().read();
            let sll = p.add(SLL_OFFSET).cast::<libc::sockaddr_ll>().read();
            (h, sll.sll_pkttype)
        };
        SlotHdr {
            len: h.tp_len as usize,
            snaplen: h.tp_snaplen as usize,
            mac: h.tp_mac as usize,
            vlan_tci: h.tp_vlan_tci,
            vlan_tpid: h.tp_vlan_tpid,
            pkttype,
        }
    }

    /// Bytes `off..off + len` of slot `i`, if inside the slot.
    fn bytes(&self, i: usize, off: usize, len: usize) -> Option<&[u8]> {
        if off.checked_add(len)? > RING_FRAME_SIZE {
            return None;
        }
        // SAFETY: the range is inside slot i (checked above); the caller saw
        // TP_STATUS_USER, so the kernel leaves the slot alone until
        // `release`, which takes `&mut self` and so outlives no slice.
        Some(unsafe { std::slice::from_raw_parts(self.slot(i).add(off), len) })
    }
}

struct RxSock {
    ring: Ring,
    head: usize,
    gso: Segmenter,
    fd: Arc<OwnedFd>,
}

impl RxSock {
    fn open(ifindex: i32, fanout: bool, fanout_id: &mut Option<u32>) -> std::io::Result<RxSock> {
        let fd = sys::packet_socket()?;
        let b = fd.as_fd();
        let one: libc::c_int = 1;
        sys::setsockopt(b, libc::SOL_PACKET, libc::PACKET_VERSION, &sys::TPACKET_V2)?;
        sys::setsockopt(b, libc::SOL_PACKET, libc::PACKET_VNET_HDR, &one)?;
        sys::setsockopt(b, libc::SOL_PACKET, libc::PACKET_COPY_THRESH, &one)?;
        // Older kernels lack it; outgoing frames are also skipped by type below.
        let _ = sys::setsockopt(b, libc::SOL_PACKET, libc::PACKET_IGNORE_OUTGOING, &one);
        set_buf(&fd, libc::SO_RCVBUFFORCE, libc::SO_RCVBUF);
        let per_block = RING_BLOCK / RING_FRAME_SIZE;
        let blocks = RING_FRAMES.div_ceil(per_block);
        let req = libc::tpacket_req {
            tp_block_size: RING_BLOCK as u32,
            tp_block_nr: blocks as u32,
            tp_frame_size: RING_FRAME_SIZE as u32,
            tp_frame_nr: (blocks * per_block) as u32,
        };
        sys::setsockopt(b, libc::SOL_PACKET, libc::PACKET_RX_RING, &req)?;
        let map = sys::Mmap::shared(b, blocks * RING_BLOCK)?;
        // The ring exists before the socket starts receiving (bind), so
        // every frame goes to the ring.
        sys::bind_packet(b, ifindex, ETH_P_ALL)?;
        let mreq = libc::packet_mreq {
            mr_ifindex: ifindex,
            mr_type: libc::PACKET_MR_PROMISC as u16,
            mr_alen: 0,
            mr_address: [0; 8],
        };
        // Membership ends with the socket, so the interface leaves
        // promiscuous mode when the port closes.
        sys::setsockopt(b, libc::SOL_PACKET, libc::PACKET_ADD_MEMBERSHIP, &mreq)?;
        if fanout {
            join_fanout(&fd, fanout_id)?;
        }
        Ok(RxSock {
            fd: Arc::new(fd),
            ring: Ring {
                map,
                frames: blocks * per_block,
                per_block,
            },
            head: 0,
            gso: Segmenter::new(BIG_FRAME),
        })
    }
}

/// Joins the port's fanout group (hash of the flow), creating it with a
/// kernel-chosen id for the first socket.
fn join_fanout(fd: &OwnedFd, id: &mut Option<u32>) -> std::io::Result<()> {
    let b = fd.as_fd();
    let base = libc::PACKET_FANOUT_HASH;
    let mut flags = libc::PACKET_FANOUT_FLAG_IGNORE_OUTGOING;
    let arg = |id: u32, flags: u32| (id | (base | flags) << 16) as libc::c_int;
    match *id {
        Some(v) => sys::setsockopt(
            b,
            libc::SOL_PACKET,
            libc::PACKET_FANOUT,
            &(v as libc::c_int),
        ),
        None => {
            let unique = libc::PACKET_FANOUT_FLAG_UNIQUEID;
            if sys::setsockopt(
                b,
                libc::SOL_PACKET,
                libc::PACKET_FANOUT,
                &arg(0, flags | unique),
            )
            .is_err()
            {
                // Older kernels lack IGNORE_OUTGOING for groups; outgoing
                // frames are then skipped by type on receive.
                flags = 0;
                sys::setsockopt(b, libc::SOL_PACKET, libc::PACKET_FANOUT, &arg(0, unique))?;
            }
            let got = sys::getsockopt_int(b, libc::SOL_PACKET, libc::PACKET_FANOUT)? as u32;
            *id = Some((got & 0xffff) | (base | flags) << 16);
            Ok(())
        }
    }
}

/// Local tallies of one poll, added to the shared counters once.
#[derive(Default)]
struct Tally {
    packets: u64,
    bytes: u64,
    dropped: u64,
    errors: u64,
}

struct SystemRxq {
    /// Always `Some` until drop, which hands it back to the slot.
    sock: Option<RxSock>,
    slot: Arc<RxSlot>,
    pool: Arc<PacketPool>,
    /// A buffer kept across polls so that an idle poll takes nothing from the pool.
    spare: Option<Packet>,
}

impl RxQueue for SystemRxq {
    fn recv(&mut self, batch: &mut Batch) -> usize {
        let Some(sock) = self.sock.as_mut() else {
            return 0;
        };
        let before = batch.len();
        let mut t = Tally::default();
        while !batch.is_full() {
            // Leave frames in the ring while the pool is empty: they are
            // taken once buffers come back, or counted by the kernel as
            // drops when the ring fills.
            let Some(mut pkt) = self.spare.take().or_else(|| self.pool.alloc()) else {
                break;
            };
            if sock.gso.is_active() {
                if sock.gso.next_into(&mut pkt) {
                    t.packets += 1;
                    t.bytes += pkt.len() as u64;
                    let _ = batch.push(pkt);
                } else {
                    self.spare = Some(pkt);
                }
                continue;
            }
            let i = sock.head;
            let status = sock.ring.status(i);
            if status & libc::TP_STATUS_USER == 0 {
                self.spare = Some(pkt);
                break;
            }
            if take_frame(sock, i, status, &mut pkt, &mut t) {
                let _ = batch.push(pkt);
            } else {
                pkt.truncate(0);
                self.spare = Some(pkt);
            }
            sock.ring.release(i);
            sock.head = (i + 1) % sock.ring.frames;
        }
        let c = &self.slot.counters;
        c.add(&NetdevStats {
            rx_packets: t.packets,
            rx_bytes: t.bytes,
            rx_dropped: t.dropped,
            rx_errors: t.errors,
            ..NetdevStats::default()
        });
        batch.len() - before
    }
}

/// Moves the frame of ring slot `i` into `pkt` (true), or into the
/// segmenter, or drops and counts it (false).
fn take_frame(sock: &mut RxSock, i: usize, status: u32, pkt: &mut Packet, t: &mut Tally) -> bool {
    let h = sock.ring.header(i);
    let vlan = (status & libc::TP_STATUS_VLAN_VALID != 0).then(|| {
        let tpid = if status & libc::TP_STATUS_VLAN_TPID_VALID != 0 {
            h.vlan_tpid
        } else {
            0x8100
        };
        (tpid, h.vlan_tci)
    });
    if status & libc::TP_STATUS_COPY != 0 {
        // Too big for the slot: the whole frame waits in the socket queue.
        take_queued(sock, vlan, h.pkttype == libc::PACKET_OUTGOING, t);
        return false;
    }
    if h.pkttype == libc::PACKET_OUTGOING {
        return false;
    }
    let extra: usize = if vlan.is_some() { 4 } else { 0 };
    let (Some(vnet), Some(frame)) = (
        h.mac
            .checked_sub(VNET_HDR_LEN)
            .and_then(|o| sock.ring.bytes(i, o, VNET_HDR_LEN))
            .and_then(VnetHdr::parse),
        sock.ring.bytes(i, h.mac, h.snaplen),
    ) else {
        t.errors += 1;
        return false;
    };
    if h.len > h.snaplen {
        // The kernel could not queue a full copy (socket buffer full).
        t.dropped += 1;
        return false;
    }
    if vnet.is_gso() {
        let buf = sock.gso.buf_mut();
        let n = put_frame(buf, frame, vlan);
        start_gso(&mut sock.gso, 0, n, vnet.shifted(extra as u16), t);
        return false;
    }
    if frame.len() + extra > DATA_ROOM {
        t.dropped += 1;
        return false;
    }
    let Ok(out) = pkt.extend(frame.len() + extra) else {
        t.dropped += 1;
        return false;
    };
    put_frame(out, frame, vlan);
    if vnet.needs_csum() {
        let v = vnet.shifted(extra as u16);
        if !complete_csum(out, v.csum_start as usize, v.csum_offset as usize) {
            t.errors += 1;
            return false;
        }
    }
    t.packets += 1;
    t.bytes += out.len() as u64;
    true
}

/// Reads a frame the kernel queued on the socket because it did not fit a
/// ring slot: a super-frame is segmented, anything else is too big.
fn take_queued(sock: &mut RxSock, vlan: Option<(u16, u16)>, outgoing: bool, t: &mut Tally) {
    // Received at offset 4 so that a VLAN tag can be inserted in place.
    let buf = sock.gso.buf_mut();
    let room = buf.len() - 4;
    let n = match sys::recv_trunc(sock.fd.as_fd(), &mut buf[4..]) {
        Ok(n) => n,
        Err(_) => {
            t.errors += 1;
            return;
        }
    };
    if outgoing {
        return;
    }
    if n > room {
        t.dropped += 1;
        return;
    }
    let Some(vnet) = VnetHdr::parse(&buf[4..]).filter(|_| n >= VNET_HDR_LEN + 14) else {
        t.errors += 1;
        return;
    };
    if !vnet.is_gso() {
        t.dropped += 1;
        return;
    }
    let (begin, end) = (4 + VNET_HDR_LEN, 4 + n);
    match vlan {
        Some((tpid, tci)) => {
            buf.copy_within(begin..begin + 12, begin - 4);
            buf[begin + 8..begin + 10].copy_from_slice(&tpid.to_be_bytes());
            buf[begin + 10..begin + 12].copy_from_slice(&tci.to_be_bytes());
            start_gso(&mut sock.gso, begin - 4, end, vnet.shifted(4), t);
        }
        None => start_gso(&mut sock.gso, begin, end, vnet, t),
    }
}

fn start_gso(gso: &mut Segmenter, begin: usize, end: usize, vnet: VnetHdr, t: &mut Tally) {
    match gso.start(begin, end, vnet) {
        Ok(()) => {}
        Err(GsoError::TooBig) => t.dropped += 1,
        Err(GsoError::Unsupported | GsoError::Malformed) => t.errors += 1,
    }
}

impl Drop for SystemRxq {
    fn drop(&mut self) {
        // The socket (and the frames in its ring) go back to the port, so
        // that the queue can be opened again, e.g. on another PMD thread.
        let mut idle = self.slot.idle.lock().unwrap_or_else(|e| e.into_inner());
        *idle = self.sock.take();
        self.slot.taken.store(false, Ordering::Release);
    }
}

struct SystemTxq {
    shared: Arc<TxShared>,
}

impl TxQueue for SystemTxq {
    fn send(&mut self, batch: &mut Batch) {
        let mut d = NetdevStats::default();
        for chunk in batch.packets().chunks(BATCH_SIZE) {
            let mut frames: [&[u8]; BATCH_SIZE] = [&[]; BATCH_SIZE];
            for (f, p) in frames.iter_mut().zip(chunk) {
                *f = p.data();
            }
            send_frames(self.shared.fd.as_fd(), &frames[..chunk.len()], &mut d);
        }
        self.shared.counters.add(&d);
        batch.clear();
    }
}

/// Sends `frames` with as few `sendmmsg` calls as errors allow (one when
/// none), counting into `d`.
fn send_frames(fd: std::os::fd::BorrowedFd<'_>, frames: &[&[u8]], d: &mut NetdevStats) {
    let mut i = 0;
    while i < frames.len() {
        match sys::sendmmsg(fd, &frames[i..]) {
            Ok(0) => {
                d.tx_dropped += (frames.len() - i) as u64;
                return;
            }
            Ok(k) => {
                d.tx_packets += k as u64;
                d.tx_bytes += frames[i..i + k].iter().map(|f| f.len() as u64).sum::<u64>();
                i += k;
            }
            Err(e) => match e.raw_os_error().unwrap_or(0) {
                libc::EINTR => {}
                // This frame is bad (too long for the MTU, too short for a
                // header); the others may go.
                libc::EMSGSIZE | libc::EINVAL => {
                    d.tx_errors += 1;
                    i += 1;
                }
                // Full queue or link down: the rest of the batch is lost,
                // as on a NIC; no retry, a PMD must not spin here.
                libc::EAGAIN | libc::ENOBUFS | libc::ENETDOWN | libc::ENXIO | libc::ENODEV => {
                    d.tx_dropped += (frames.len() - i) as u64;
                    return;
                }
                _ => {
                    d.tx_errors += (frames.len() - i) as u64;
                    return;
                }
            },
        }
    }
}
