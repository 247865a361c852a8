//! virtio-net over PCI, modern interface only (virtio 1.x, 1af4:1041, or a
//! transitional 1af4:1000 that has the modern capabilities).
//!
//! The device is found through its vendor capabilities (common, notify and
//! device configuration windows in its BARs); the features negotiated are
//! VERSION_1 and ACCESS_PLATFORM (required: without the latter the device
//! would bypass the IOMMU), plus MAC, STATUS, MTU, CTRL_VQ, CTRL_RX and MQ
//! when offered. Each queue pair is a receive and a transmit split
//! virtqueue; interrupts are suppressed (the rings are polled), and the
//! device is notified once per batch, only when it asks to be. Promiscuous
//! mode and the number of queue pairs go through the control virtqueue.
//!
//! Every received frame is preceded by the 12-byte `virtio_net_hdr`, which
//! the device writes into the buffer's headroom; a sent packet gets a
//! zeroed header pushed into its own headroom: no copies either way.

use std::collections::BTreeMap;
use std::sync::atomic::{fence, AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fvs_datapath::netdev::NetdevStats;
use fvs_datapath::packet::{Batch, Packet, BATCH_SIZE, DATA_ROOM};

use super::{dma_ready, DriverInfo, Link, Nic, RxRing, StartArgs, Started, TxRing};
use crate::vfio::dma::{DmaRegion, PoolDma};
use crate::vfio::pci;
use crate::vfio::sys::{Bar, Container, Device};
use crate::vfio::VfioError;

pub const DRIVER: DriverInfo = DriverInfo {
    name: "virtio-net",
    describe: "virtio-net 1.0 (1af4:1041)",
    ids: &[(0x1af4, 0x1041), (0x1af4, 0x1000)],
    start,
};

// Vendor capability types.
const PCI_CAP_VENDOR: u8 = 0x09;
const CAP_COMMON: u8 = 1;
const CAP_NOTIFY: u8 = 2;
const CAP_DEVICE: u8 = 4;

// Common configuration.
const DFSELECT: usize = 0x00;
const DF: usize = 0x04;
const GFSELECT: usize = 0x08;
const GF: usize = 0x0c;
const NUM_QUEUES: usize = 0x12;
const DEVICE_STATUS: usize = 0x14;
const GENERATION: usize = 0x15;
const Q_SELECT: usize = 0x16;
const Q_SIZE: usize = 0x18;
const Q_MSIX: usize = 0x1a;
const Q_ENABLE: usize = 0x1c;
const Q_NOTIFY_OFF: usize = 0x1e;
const Q_DESC: usize = 0x20;
const Q_DRIVER: usize = 0x28;
const Q_DEVICE: usize = 0x30;
const COMMON_LEN: usize = 0x38;

// Device status.
const S_ACK: u8 = 1;
const S_DRIVER: u8 = 2;
const S_DRIVER_OK: u8 = 4;
const S_FEATURES_OK: u8 = 8;
const S_NEEDS_RESET: u8 = 0x40;
const S_FAILED: u8 = 0x80;

// Feature bits.
const F_MTU: u64 = 1 << 3;
const F_MAC: u64 = 1 << 5;
const F_STATUS: u64 = 1 << 16;
const F_CTRL_VQ: u64 = 1 << 17;
const F_CTRL_RX: u64 = 1 << 18;
const F_MQ: u64 = 1 << 22;
const F_VERSION_1: u64 = 1 << 32;
const F_ACCESS_PLATFORM: u64 = 1 << 33;
const WANTED: u64 =
    F_MTU | F_MAC | F_STATUS | F_CTRL_VQ | F_CTRL_RX | F_MQ | F_VERSION_1 | F_ACCESS_PLATFORM;

// virtio-net device configuration.
const CFG_MAC: usize = 0;
const CFG_STATUS: usize = 6;
const CFG_MAX_PAIRS: usize = 8;
const CFG_MTU: usize = 10;
const LINK_UP: u16 = 1;

// Control virtqueue commands.
const CTRL_RX: u8 = 0;
const CTRL_RX_PROMISC: u8 = 0;
const CTRL_MQ: u8 = 4;
const CTRL_MQ_VQ_PAIRS_SET: u8 = 0;

// Split virtqueue.
const DESC_F_NEXT: u16 = 1;
const DESC_F_WRITE: u16 = 2;
const AVAIL_F_NO_INTERRUPT: u16 = 1;
const USED_F_NO_NOTIFY: u16 = 1;
const NO_VECTOR: u16 = 0xffff;
const MAX_RING: usize = 32768;

/// `struct virtio_net_hdr` with `num_buffers` (always present in virtio 1.x).
const HDR: usize = 12;
const L2_OVERHEAD: u32 = 18;
const REFILL_MIN: usize = 16;

/// A window of a BAR (a capability's structure); accesses outside it
/// read all ones and write nothing.
#[derive(Clone)]
struct Window {
    bar: Arc<Bar>,
    off: usize,
    len: usize,
}

impl Window {
    fn ok(&self, o: usize, n: usize) -> bool {
        o.checked_add(n).is_some_and(|e| e <= self.len)
    }
    fn r8(&self, o: usize) -> u8 {
        if self.ok(o, 1) {
            self.bar.read8(self.off + o)
        } else {
            u8::MAX
        }
    }
    fn r16(&self, o: usize) -> u16 {
        if self.ok(o, 2) {
            self.bar.read16(self.off + o)
        } else {
            u16::MAX
        }
    }
    fn r32(&self, o: usize) -> u32 {
        if self.ok(o, 4) {
            self.bar.read32(self.off + o)
        } else {
            u32::MAX
        }
    }
    fn w8(&self, o: usize, v: u8) {
        if self.ok(o, 1) {
            self.bar.write8(self.off + o, v)
        }
    }
    fn w16(&self, o: usize, v: u16) {
        if self.ok(o, 2) {
            self.bar.write16(self.off + o, v)
        }
    }
    fn w32(&self, o: usize, v: u32) {
        if self.ok(o, 4) {
            self.bar.write32(self.off + o, v)
        }
    }
    fn w64(&self, o: usize, v: u64) {
        self.w32(o, v as u32);
        self.w32(o + 4, (v >> 32) as u32);
    }
}

/// The device's configuration windows, from its vendor capabilities.
struct Windows {
    common: Window,
    notify: Window,
    notify_mult: u32,
    device: Option<Window>,
}

fn find_windows(dev: &Device) -> Result<Windows, String> {
    let mut found: BTreeMap<u8, (u8, u32, u32, u32)> = BTreeMap::new();
    for p in pci::capabilities(dev, PCI_CAP_VENDOR) {
        let ty = dev.config_read8(p + 3);
        let bar = dev.config_read8(p + 4);
        if bar > 5 || !(1..=4).contains(&ty) {
            continue;
        }
        let off = dev.config_read32(p + 8);
        let len = dev.config_read32(p + 12);
        let mult = if ty == CAP_NOTIFY {
            dev.config_read32(p + 16)
        } else {
            0
        };
        // The first capability of a type is the preferred one.
        found.entry(ty).or_insert((bar, off, len, mult));
    }
    let mut bars: BTreeMap<u8, Arc<Bar>> = BTreeMap::new();
    let mut window = |ty: u8| -> Result<Option<(Window, u32)>, String> {
        let Some(&(bar, off, len, mult)) = found.get(&ty) else {
            return Ok(None);
        };
        let b = match bars.get(&bar) {
            Some(b) => b.clone(),
            None => {
                let b = Arc::new(dev.map_bar(bar).map_err(|e| e.to_string())?);
                bars.insert(bar, b.clone());
                b
            }
        };
        let (off, len) = (off as usize, len as usize);
        if off.checked_add(len).is_none_or(|end| end > b.size()) {
            return Err(format!(
                "capability {ty} points outside BAR{bar} ({off:#x}+{len:#x} > {:#x})",
                b.size()
            ));
        }
        Ok(Some((Window { bar: b, off, len }, mult)))
    };
    let no_modern = || "no virtio 1.0 capabilities (a legacy-only device?)".to_string();
    let (common, _) = window(CAP_COMMON)?.ok_or_else(no_modern)?;
    let (notify, notify_mult) = window(CAP_NOTIFY)?.ok_or_else(no_modern)?;
    let device = window(CAP_DEVICE)?.map(|(w, _)| w);
    if common.len < COMMON_LEN {
        return Err(format!(
            "common configuration is {} bytes, too short",
            common.len
        ));
    }
    Ok(Windows {
        common,
        notify,
        notify_mult,
        device,
    })
}

/// Resets the device and waits until it says so.
fn reset(common: &Window) -> bool {
    common.w8(DEVICE_STATUS, 0);
    let t0 = Instant::now();
    while common.r8(DEVICE_STATUS) != 0 {
        if t0.elapsed() > Duration::from_millis(500) {
            return false;
        }
        std::thread::sleep(Duration::from_micros(100));
    }
    true
}

/// A split virtqueue in driver memory: descriptor table, available ring
/// (driver → device), used ring (device → driver).
struct Vq {
    mem: DmaRegion,
    n: u16,
    avail: usize,
    used: usize,
    /// Our copy of avail.idx, and the next used entry to read.
    next_avail: u16,
    last_used: u16,
    notify: Window,
    notify_at: usize,
    index: u16,
}

impl Vq {
    /// Offsets of the available and used rings, and the memory needed, for `n` entries.
    fn layout(n: usize) -> (usize, usize, usize) {
        let avail = 16 * n;
        let used = (avail + 6 + 2 * n).div_ceil(4096) * 4096;
        (avail, used, used + 6 + 8 * n)
    }

    /// Sets up queue `index` with at most `want` entries.
    fn new(w: &Windows, container: &Arc<Container>, index: u16, want: usize) -> Result<Vq, String> {
        let c = &w.common;
        c.w16(Q_SELECT, index);
        let max = usize::from(c.r16(Q_SIZE));
        if max == 0 || max == usize::from(u16::MAX) {
            return Err(format!("virtqueue {index} does not exist"));
        }
        // A power of two no larger than the device's maximum or what we want.
        let cap = want.min(max).clamp(2, MAX_RING);
        let n = 1usize << (usize::BITS - 1 - cap.leading_zeros());
        let (avail, used, len) = Vq::layout(n);
        let mem = DmaRegion::new(container, len).map_err(|e| format!("virtqueue memory: {e}"))?;
        mem.write::<u16>(avail, AVAIL_F_NO_INTERRUPT);
        c.w16(Q_SIZE, n as u16);
        c.w16(Q_MSIX, NO_VECTOR);
        c.w64(Q_DESC, mem.iova());
        c.w64(Q_DRIVER, mem.iova() + avail as u64);
        c.w64(Q_DEVICE, mem.iova() + used as u64);
        let notify_at = usize::from(c.r16(Q_NOTIFY_OFF)) * w.notify_mult as usize;
        if !w.notify.ok(notify_at, 2) {
            return Err(format!(
                "virtqueue {index}'s notification address {notify_at:#x} is outside the notify window"
            ));
        }
        c.w16(Q_ENABLE, 1);
        Ok(Vq {
            mem,
            n: n as u16,
            avail,
            used,
            next_avail: 0,
            last_used: 0,
            notify: w.notify.clone(),
            notify_at,
            index,
        })
    }

    fn set_desc(&self, id: u16, addr: u64, len: u32, flags: u16, next: u16) {
        let d = usize::from(id) * 16;
        self.mem.write::<u64>(d, addr);
        self.mem.write::<u32>(d + 8, len);
        self.mem.write::<u16>(d + 12, flags);
        self.mem.write::<u16>(d + 14, next);
    }

    fn push_avail(&mut self, id: u16) {
        let slot = usize::from(self.next_avail % self.n);
        self.mem.write::<u16>(self.avail + 4 + 2 * slot, id);
        self.next_avail = self.next_avail.wrapping_add(1);
    }

    /// Makes the new available entries visible and notifies the device if it wants.
    fn publish(&mut self) {
        fence(Ordering::Release);
        self.mem.write::<u16>(self.avail + 2, self.next_avail);
        // The index store must be seen before we read whether to notify.
        fence(Ordering::SeqCst);
        if self.mem.read::<u16>(self.used) & USED_F_NO_NOTIFY == 0 {
            self.notify.w16(self.notify_at, self.index);
        }
    }

    /// The next used entry: (descriptor id, bytes written), unchecked.
    fn pop_used(&mut self) -> Option<(u32, u32)> {
        let idx = self.mem.read::<u16>(self.used + 2);
        if idx == self.last_used {
            return None;
        }
        fence(Ordering::Acquire);
        let slot = usize::from(self.last_used % self.n);
        let e = self.used + 4 + 8 * slot;
        self.last_used = self.last_used.wrapping_add(1);
        Some((self.mem.read::<u32>(e), self.mem.read::<u32>(e + 4)))
    }
}

/// The control virtqueue and its command buffer.
struct Ctrl {
    vq: Vq,
    buf: DmaRegion,
}

impl Ctrl {
    const DATA: usize = 64;
    const ACK: usize = 192;

    /// Sends command `class`.`cmd` with `data` and waits for the device's answer.
    fn command(&mut self, class: u8, cmd: u8, data: &[u8]) -> Result<(), String> {
        let iova = self.buf.iova();
        self.buf.write_bytes(0, &[class, cmd]);
        self.buf.write_bytes(Self::DATA, data);
        self.buf.write::<u8>(Self::ACK, 0xff);
        self.vq.set_desc(0, iova, 2, DESC_F_NEXT, 1);
        self.vq.set_desc(
            1,
            iova + Self::DATA as u64,
            data.len() as u32,
            DESC_F_NEXT,
            2,
        );
        self.vq
            .set_desc(2, iova + Self::ACK as u64, 1, DESC_F_WRITE, 0);
        self.vq.push_avail(0);
        self.vq.publish();
        let t0 = Instant::now();
        loop {
            if self.vq.pop_used().is_some() {
                break;
            }
            if t0.elapsed() > Duration::from_secs(1) {
                return Err(format!(
                    "control command {class}.{cmd} got no answer in 1 s"
                ));
            }
            std::thread::sleep(Duration::from_micros(50));
        }
        match self.buf.read::<u8>(Self::ACK) {
            0 => Ok(()),
            _ => Err(format!("the device refused control command {class}.{cmd}")),
        }
    }
}

struct VirtioNet {
    common: Window,
    device: Option<Window>,
    features: u64,
    mac: [u8; 6],
    max_mtu: u32,
    mtu: AtomicU32,
    promisc: AtomicBool,
    ctrl: Option<Mutex<Ctrl>>,
    pairs: usize,
    max_pairs: usize,
}

fn start(a: StartArgs<'_>) -> Result<Started, VfioError> {
    let bdf = a.device.bdf.clone();
    let err = |why: String| VfioError::Device {
        bdf: bdf.clone(),
        driver: "virtio-net",
        why,
    };
    let w = find_windows(a.device).map_err(err)?;
    if !reset(&w.common) {
        return Err(err("reset did not complete in 500 ms".into()));
    }
    match start_reset(&a, &w) {
        Ok(s) => Ok(s),
        Err(why) => {
            w.common.w8(DEVICE_STATUS, S_FAILED);
            reset(&w.common);
            Err(err(why))
        }
    }
}

fn start_reset(a: &StartArgs<'_>, w: &Windows) -> Result<Started, String> {
    let c = &w.common;
    c.w8(DEVICE_STATUS, S_ACK);
    c.w8(DEVICE_STATUS, S_ACK | S_DRIVER);
    let mut offered = 0u64;
    for sel in [1u32, 0] {
        c.w32(DFSELECT, sel);
        offered = (offered << 32) | u64::from(c.r32(DF));
    }
    if offered & F_VERSION_1 == 0 {
        return Err("the device does not offer VIRTIO_F_VERSION_1 (a legacy-only device)".into());
    }
    if offered & F_ACCESS_PLATFORM == 0 {
        return Err("the device does not offer VIRTIO_F_ACCESS_PLATFORM, so its DMA would bypass the IOMMU (QEMU: iommu_platform=on)".into());
    }
    let mut features = offered & WANTED;
    if features & F_CTRL_VQ == 0 {
        features &= !(F_CTRL_RX | F_MQ);
    }
    for sel in [0u32, 1] {
        c.w32(GFSELECT, sel);
        c.w32(GF, (features >> (32 * sel)) as u32);
    }
    c.w8(DEVICE_STATUS, S_ACK | S_DRIVER | S_FEATURES_OK);
    if c.r8(DEVICE_STATUS) & S_FEATURES_OK == 0 {
        return Err(format!("the device refused features {features:#x}"));
    }

    // Device configuration, read consistently (the generation must not move).
    let dev = w.device.as_ref();
    let (mut mac, mut max_pairs, mut dev_mtu) = ([0u8; 6], 1usize, 0u32);
    for _ in 0..10 {
        let gen = c.r8(GENERATION);
        if let Some(d) = dev {
            if features & F_MAC != 0 {
                for (i, b) in mac.iter_mut().enumerate() {
                    *b = d.r8(CFG_MAC + i);
                }
            }
            if features & F_MQ != 0 {
                max_pairs = usize::from(d.r16(CFG_MAX_PAIRS)).clamp(1, 0x8000);
            }
            if features & F_MTU != 0 {
                dev_mtu = u32::from(d.r16(CFG_MTU));
            }
        }
        if c.r8(GENERATION) == gen {
            break;
        }
    }
    if features & F_MAC == 0 || mac == [0; 6] || mac[0] & 1 != 0 {
        // No address from the device: a locally administered one.
        let h = a
            .device
            .bdf
            .bytes()
            .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(b.into()));
        mac = [0x02, 0x76, 0x66, (h >> 16) as u8, (h >> 8) as u8, h as u8];
    }
    let mut max_mtu = DATA_ROOM as u32 - L2_OVERHEAD;
    if dev_mtu >= 68 {
        max_mtu = max_mtu.min(dev_mtu);
    }

    let pairs = a.n_rxq.clamp(1, max_pairs);
    let ctrl_index = if features & F_MQ != 0 {
        2 * max_pairs
    } else {
        2
    };
    let n_queues = usize::from(c.r16(NUM_QUEUES));
    let needed = if features & F_CTRL_VQ != 0 {
        ctrl_index + 1
    } else {
        2 * pairs
    };
    if n_queues < needed {
        return Err(format!(
            "the device has {n_queues} virtqueues, {needed} are needed"
        ));
    }
    let container = a.device.container();
    let mut rx: Vec<Box<dyn RxRing>> = Vec::new();
    let mut rx_rings = Vec::new();
    let mut tx: Vec<Box<dyn TxRing>> = Vec::new();
    let (mut rx_desc, mut tx_desc) = (0, 0);
    for p in 0..pairs {
        let vq = Vq::new(w, container, (2 * p) as u16, a.rxq_size)?;
        rx_desc = usize::from(vq.n);
        rx_rings.push(VirtioRx::new(vq, a.pool.clone()));
        let vq = Vq::new(w, container, (2 * p + 1) as u16, a.txq_size)?;
        tx_desc = usize::from(vq.n);
        tx.push(Box::new(VirtioTx::new(vq, a.pool.clone())));
    }
    let ctrl = if features & F_CTRL_VQ != 0 {
        let vq = Vq::new(w, container, ctrl_index as u16, 64)?;
        let buf = DmaRegion::new(container, 4096).map_err(|e| format!("control buffer: {e}"))?;
        Some(Mutex::new(Ctrl { vq, buf }))
    } else {
        None
    };
    c.w8(
        DEVICE_STATUS,
        S_ACK | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK,
    );
    for mut r in rx_rings {
        r.refill(true);
        rx.push(Box::new(r));
    }
    let nic = VirtioNet {
        common: c.clone(),
        device: w.device.clone(),
        features,
        mac,
        max_mtu,
        mtu: AtomicU32::new(1500.min(max_mtu)),
        promisc: AtomicBool::new(features & F_CTRL_RX == 0),
        ctrl,
        pairs,
        max_pairs,
    };
    if pairs > 1 {
        nic.command(CTRL_MQ, CTRL_MQ_VQ_PAIRS_SET, &(pairs as u16).to_le_bytes())?;
    }
    // A switch port hears every frame on the wire.
    nic.set_promisc(true)?;
    Ok(Started {
        nic: Box::new(nic),
        rx,
        tx,
        rx_desc,
        tx_desc,
    })
}

impl VirtioNet {
    fn command(&self, class: u8, cmd: u8, data: &[u8]) -> Result<(), String> {
        match &self.ctrl {
            Some(c) => c
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .command(class, cmd, data),
            None => Err("the device has no control virtqueue".into()),
        }
    }
}

impl Nic for VirtioNet {
    fn mac(&self) -> [u8; 6] {
        self.mac
    }

    fn link(&self) -> Link {
        let st = self.common.r8(DEVICE_STATUS);
        let alive = st & S_DRIVER_OK != 0 && st & (S_NEEDS_RESET | S_FAILED) == 0;
        let up = match &self.device {
            Some(d) if self.features & F_STATUS != 0 => d.r16(CFG_STATUS) & LINK_UP != 0,
            _ => true,
        };
        Link {
            up: alive && up,
            speed: None,
        }
    }

    fn max_mtu(&self) -> u32 {
        self.max_mtu
    }

    fn set_mtu(&self, mtu: u32) -> Result<(), String> {
        // Receive buffers already hold the largest frame; nothing to program.
        self.mtu.store(mtu, Ordering::Relaxed);
        Ok(())
    }

    fn set_promisc(&self, on: bool) -> Result<(), String> {
        if self.features & F_CTRL_RX == 0 {
            // Without CTRL_RX the device delivers every frame.
            return if on {
                Ok(())
            } else {
                Err("the device cannot leave promiscuous mode (no VIRTIO_NET_F_CTRL_RX)".into())
            };
        }
        self.command(CTRL_RX, CTRL_RX_PROMISC, &[u8::from(on)])?;
        self.promisc.store(on, Ordering::Relaxed);
        Ok(())
    }

    fn promisc(&self) -> bool {
        self.promisc.load(Ordering::Relaxed)
    }

    fn status(&self, s: &mut BTreeMap<String, String>) {
        s.insert("features".into(), format!("{:#x}", self.features));
        s.insert("max_rx_queues".into(), self.max_pairs.to_string());
        s.insert("max_tx_queues".into(), self.max_pairs.to_string());
        s.insert("queue_pairs".into(), self.pairs.to_string());
    }

    fn stop(&self) {
        reset(&self.common);
    }
}

/// A receive virtqueue: `slots[id]` is the packet whose buffer descriptor
/// `id` points at; `free` holds the descriptors without one.
struct VirtioRx {
    vq: Vq,
    slots: Vec<Option<Packet>>,
    free: Vec<u16>,
    pool: Arc<PoolDma>,
}

impl VirtioRx {
    fn new(vq: Vq, pool: Arc<PoolDma>) -> VirtioRx {
        let n = vq.n;
        VirtioRx {
            vq,
            slots: (0..n).map(|_| None).collect(),
            free: (0..n).rev().collect(),
            pool,
        }
    }

    fn refill(&mut self, force: bool) {
        let min = REFILL_MIN.min(self.slots.len() / 2);
        if self.free.is_empty() || (self.free.len() < min && !force) {
            return;
        }
        let mut posted = false;
        while let Some(id) = self.free.pop() {
            let Some(mut pkt) = self.pool.pool().alloc() else {
                self.free.push(id);
                break;
            };
            // The header goes in the headroom, the frame where data starts.
            let iova = match pkt.push_front(HDR) {
                Ok(b) => self.pool.iova_of(b.as_ptr(), HDR + DATA_ROOM),
                Err(_) => None,
            };
            let Some(iova) = iova else {
                self.free.push(id);
                break;
            };
            self.vq
                .set_desc(id, iova, (HDR + DATA_ROOM) as u32, DESC_F_WRITE, 0);
            self.vq.push_avail(id);
            self.slots[usize::from(id)] = Some(pkt);
            posted = true;
        }
        if posted {
            self.vq.publish();
        }
    }
}

impl RxRing for VirtioRx {
    fn recv(&mut self, batch: &mut Batch, d: &mut NetdevStats) {
        let mut room = BATCH_SIZE.saturating_sub(batch.len());
        while room > 0 {
            let Some((id, len)) = self.vq.pop_used() else {
                break;
            };
            let Some(mut pkt) = self.slots.get_mut(id as usize).and_then(Option::take) else {
                // Not a buffer we gave: the device is confused.
                d.rx_errors += 1;
                continue;
            };
            self.free.push(id as u16);
            let len = len as usize;
            if !(HDR..=HDR + DATA_ROOM).contains(&len) || len == HDR {
                d.rx_errors += 1;
                continue;
            }
            if pkt.extend(len - HDR).is_err() || pkt.pull_front(HDR).is_err() {
                d.rx_errors += 1;
                continue;
            }
            d.rx_packets += 1;
            d.rx_bytes += (len - HDR) as u64;
            let _ = batch.push(pkt);
            room -= 1;
        }
        self.refill(false);
    }
}

/// A transmit virtqueue: `slots[id]` holds the packet being sent by descriptor `id`.
struct VirtioTx {
    vq: Vq,
    slots: Vec<Option<Packet>>,
    free: Vec<u16>,
    pool: Arc<PoolDma>,
}

impl VirtioTx {
    fn new(vq: Vq, pool: Arc<PoolDma>) -> VirtioTx {
        let n = vq.n;
        VirtioTx {
            vq,
            slots: (0..n).map(|_| None).collect(),
            free: (0..n).rev().collect(),
            pool,
        }
    }

    fn reclaim(&mut self) {
        while let Some((id, _)) = self.vq.pop_used() {
            if let Some(slot) = self.slots.get_mut(id as usize) {
                if slot.take().is_some() {
                    self.free.push(id as u16);
                }
            }
        }
    }
}

impl TxRing for VirtioTx {
    fn send(&mut self, batch: &mut Batch, d: &mut NetdevStats) {
        self.reclaim();
        let mut posted = false;
        for pkt in batch.drain() {
            let len = pkt.len();
            if len == 0 || len > DATA_ROOM {
                d.tx_errors += 1;
                continue;
            }
            if self.free.is_empty() {
                self.reclaim();
            }
            let Some(id) = self.free.pop() else {
                d.tx_dropped += 1;
                continue;
            };
            let Some(mut pkt) = dma_ready(&self.pool, pkt, HDR) else {
                self.free.push(id);
                d.tx_dropped += 1;
                continue;
            };
            let iova = match pkt.push_front(HDR) {
                Ok(b) => {
                    b[..HDR].fill(0);
                    self.pool.iova_of(b.as_ptr(), b.len())
                }
                Err(_) => None,
            };
            let Some(iova) = iova else {
                self.free.push(id);
                d.tx_dropped += 1;
                continue;
            };
            self.vq.set_desc(id, iova, (HDR + len) as u32, 0, 0);
            self.vq.push_avail(id);
            self.slots[usize::from(id)] = Some(pkt);
            posted = true;
            d.tx_packets += 1;
            d.tx_bytes += len as u64;
        }
        if posted {
            self.vq.publish();
        }
    }
}

#[cfg(test)]
mod tests {
    //! The virtqueues against a simulated device that reads the available
    //! ring and writes the used ring, as QEMU's virtio-net would.

    use super::*;
    use fvs_datapath::packet::{PacketPool, HEADROOM};

    const POOL_IOVA: u64 = 0x20_0000_0000;

    fn notify_window() -> Window {
        let mem: &'static mut [u32] = Box::leak(vec![0u32; 1024].into_boxed_slice());
        Window {
            bar: Arc::new(Bar::from_memory(mem)),
            off: 0,
            len: 4096,
        }
    }

    fn vq(n: usize) -> Vq {
        let (avail, used, len) = Vq::layout(n);
        Vq {
            mem: DmaRegion::for_test(len, 0x4000_0000),
            n: n as u16,
            avail,
            used,
            next_avail: 0,
            last_used: 0,
            notify: notify_window(),
            notify_at: 8,
            index: 5,
        }
    }

    /// The device side of one virtqueue.
    #[derive(Default)]
    struct Device {
        seen_avail: u16,
        used_idx: u16,
    }

    impl Device {
        fn take(&mut self, q: &Vq) -> Option<(u16, u64, u32, u16)> {
            if q.mem.read::<u16>(q.avail + 2) == self.seen_avail {
                return None;
            }
            let slot = usize::from(self.seen_avail % q.n);
            let id = q.mem.read::<u16>(q.avail + 4 + 2 * slot);
            self.seen_avail = self.seen_avail.wrapping_add(1);
            let d = usize::from(id) * 16;
            Some((id, q.mem.read(d), q.mem.read(d + 8), q.mem.read(d + 12)))
        }

        fn used(&mut self, q: &Vq, id: u32, len: u32) {
            let slot = usize::from(self.used_idx % q.n);
            q.mem.write::<u32>(q.used + 4 + 8 * slot, id);
            q.mem.write::<u32>(q.used + 8 + 8 * slot, len);
            self.used_idx = self.used_idx.wrapping_add(1);
            q.mem.write::<u16>(q.used + 2, self.used_idx);
        }
    }

    fn write_pool(pool: &PoolDma, iova: u64, bytes: &[u8]) {
        let va = pool.vaddr_of(iova).expect("a pool buffer");
        assert!(pool.iova_of(va as *const u8, bytes.len()).is_some());
        // SAFETY: the bytes lie in a pool buffer the ring lent to the
        // device, which this test plays (range checked above).
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), va as *mut u8, bytes.len()) };
    }

    fn read_pool(pool: &PoolDma, iova: u64, len: usize) -> Vec<u8> {
        let va = pool.vaddr_of(iova).expect("a pool buffer");
        assert!(pool.iova_of(va as *const u8, len).is_some());
        // SAFETY: the bytes lie in a pool buffer held by the ring (checked above).
        unsafe { std::slice::from_raw_parts(va as *const u8, len) }.to_vec()
    }

    #[test]
    fn rx_buffers_carry_the_header_in_the_headroom() {
        let pool = Arc::new(PacketPool::new(64, false).unwrap());
        let dma = PoolDma::for_test(&pool, POOL_IOVA);
        let mut ring = VirtioRx::new(vq(8), dma.clone());
        ring.refill(true);
        assert_eq!(pool.available(), 56);
        assert_eq!(ring.vq.notify.r16(8), 5, "the device was notified");
        let mut dev = Device::default();
        let (id, addr, len, flags) = dev.take(&ring.vq).unwrap();
        assert_eq!((len as usize, flags), (HDR + DATA_ROOM, DESC_F_WRITE));
        let mut frame = vec![0u8; HDR];
        frame.extend_from_slice(&[0x5a; 98]);
        write_pool(&dma, addr, &frame);
        dev.used(&ring.vq, id.into(), frame.len() as u32);

        let mut batch = Batch::new();
        let mut d = NetdevStats::default();
        ring.recv(&mut batch, &mut d);
        assert_eq!(batch.len(), 1);
        assert_eq!(batch.packets()[0].data(), &[0x5a; 98][..]);
        assert_eq!(
            batch.packets()[0].headroom(),
            HEADROOM,
            "the header is gone"
        );
        assert_eq!((d.rx_packets, d.rx_bytes), (1, 98));
    }

    #[test]
    fn rx_rejects_what_the_device_should_not_say() {
        let pool = Arc::new(PacketPool::new(64, false).unwrap());
        let dma = PoolDma::for_test(&pool, POOL_IOVA);
        let mut ring = VirtioRx::new(vq(8), dma.clone());
        ring.refill(true);
        let mut dev = Device::default();
        let (a, ..) = dev.take(&ring.vq).unwrap();
        let (b, ..) = dev.take(&ring.vq).unwrap();
        let (c, ..) = dev.take(&ring.vq).unwrap();
        dev.used(&ring.vq, 4000, 60); // not a descriptor
        dev.used(&ring.vq, a.into(), 5); // shorter than the header
        dev.used(&ring.vq, b.into(), (HDR + DATA_ROOM + 1) as u32); // longer than the buffer
        dev.used(&ring.vq, b.into(), 60); // given back twice
        dev.used(&ring.vq, c.into(), (HDR + 60) as u32);
        let mut batch = Batch::new();
        let mut d = NetdevStats::default();
        ring.recv(&mut batch, &mut d);
        assert_eq!((batch.len(), d.rx_errors), (1, 4));
        drop(batch);
        drop(ring);
        assert_eq!(pool.available(), 64);
    }

    #[test]
    fn tx_pushes_a_zero_header_and_honours_no_notify() {
        let pool = Arc::new(PacketPool::new(64, false).unwrap());
        let dma = PoolDma::for_test(&pool, POOL_IOVA);
        let mut ring = VirtioTx::new(vq(4), dma.clone());
        let mut batch = Batch::new();
        batch.push(pool.packet_from(&[7; 60]).unwrap()).unwrap();
        let mut squeezed = pool.packet_from(&[8; 40]).unwrap();
        squeezed.push_front(HEADROOM - 4).unwrap().fill(8);
        batch.push(squeezed).unwrap();
        let mut d = NetdevStats::default();
        ring.send(&mut batch, &mut d);
        assert_eq!((d.tx_packets, d.tx_bytes), (2, 60 + HEADROOM as u64 + 36));
        assert_eq!(ring.vq.notify.r16(8), 5);
        let mut dev = Device::default();
        let (id, addr, len, flags) = dev.take(&ring.vq).unwrap();
        assert_eq!((len as usize, flags), (HDR + 60, 0));
        let bytes = read_pool(&dma, addr, HDR + 60);
        assert_eq!(&bytes[..HDR], &[0; HDR]);
        assert_eq!(&bytes[HDR..], &[7; 60]);
        // The packet without headroom for the header went as a copy.
        let (id2, _, len2, _) = dev.take(&ring.vq).unwrap();
        assert_eq!(len2 as usize, HDR + HEADROOM + 36);
        assert_eq!(pool.available(), 62);
        dev.used(&ring.vq, id.into(), 0);
        dev.used(&ring.vq, id2.into(), 0);

        // The device asks not to be notified: the next batch is silent.
        ring.vq.notify.w16(8, 0);
        ring.vq.mem.write::<u16>(ring.vq.used, USED_F_NO_NOTIFY);
        batch.push(pool.packet_from(&[1; 60]).unwrap()).unwrap();
        ring.send(&mut batch, &mut d);
        assert_eq!(ring.vq.notify.r16(8), 0);
        assert_eq!(pool.available(), 63, "the first two were reclaimed");

        // More than the ring holds: the rest is dropped.
        for _ in 0..6 {
            batch.push(pool.packet_from(&[1; 60]).unwrap()).unwrap();
        }
        let mut d = NetdevStats::default();
        ring.send(&mut batch, &mut d);
        assert_eq!((d.tx_packets, d.tx_dropped), (3, 3));
    }
}
