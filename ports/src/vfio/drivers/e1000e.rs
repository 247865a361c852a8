//! Intel 82574 ("e1000e", 8086:10d3): two receive and two transmit queues.
//!
//! Receive uses extended descriptors (16 bytes: buffer address; written
//! back as RSS hash, status/errors, length, VLAN), so that the second
//! queue can be fed by RSS; transmit uses legacy descriptors (address,
//! length, command, status). The device is reset, its interrupts masked,
//! and polled: a receive poll reads one descriptor's status word in
//! memory, a batch costs one tail register write.
//!
//! Register offsets and bits are those of Intel's 82574 datasheet.

use std::collections::BTreeMap;
use std::sync::atomic::{fence, AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fvs_datapath::netdev::NetdevStats;
use fvs_datapath::packet::{Batch, Packet, BATCH_SIZE, DATA_ROOM};

use super::{dma_ready, DriverInfo, Link, Nic, RxRing, StartArgs, Started, TxRing};
use crate::vfio::dma::{DmaRegion, PoolDma};
use crate::vfio::sys::Bar;
use crate::vfio::VfioError;

pub const DRIVER: DriverInfo = DriverInfo {
    name: "e1000e",
    describe: "Intel 82574 (8086:10d3)",
    ids: &[(0x8086, 0x10d3)],
    start,
};

// Registers.
const CTRL: usize = 0x0000;
const STATUS: usize = 0x0008;
const EERD: usize = 0x0014;
const CTRL_EXT: usize = 0x0018;
const IMC: usize = 0x00d8;
const RCTL: usize = 0x0100;
const TCTL: usize = 0x0400;
const TIPG: usize = 0x0410;
const RXCSUM: usize = 0x5000;
const RFCTL: usize = 0x5008;
const MTA: usize = 0x5200;
const RAL0: usize = 0x5400;
const RAH0: usize = 0x5404;
const MRQC: usize = 0x5818;
const RETA: usize = 0x5c00;
const RSSRK: usize = 0x5c80;
const fn rdbal(q: usize) -> usize {
    0x2800 + q * 0x100
}
const fn rdbah(q: usize) -> usize {
    0x2804 + q * 0x100
}
const fn rdlen(q: usize) -> usize {
    0x2808 + q * 0x100
}
const fn rdh(q: usize) -> usize {
    0x2810 + q * 0x100
}
const fn rdt(q: usize) -> usize {
    0x2818 + q * 0x100
}
const fn tdbal(q: usize) -> usize {
    0x3800 + q * 0x100
}
const fn tdbah(q: usize) -> usize {
    0x3804 + q * 0x100
}
const fn tdlen(q: usize) -> usize {
    0x3808 + q * 0x100
}
const fn tdh(q: usize) -> usize {
    0x3810 + q * 0x100
}
const fn tdt(q: usize) -> usize {
    0x3818 + q * 0x100
}
// Statistics (clear on read).
const CRCERRS: usize = 0x4000;
const ALGNERRC: usize = 0x4004;
const RXERRC: usize = 0x400c;
const MPC: usize = 0x4010;
const RLEC: usize = 0x4040;
const GPRC: usize = 0x4074;
const GPTC: usize = 0x4080;

const CTRL_SLU: u32 = 1 << 6;
const CTRL_RST: u32 = 1 << 26;
const CTRL_EXT_DRV_LOAD: u32 = 1 << 28;
const STATUS_LU: u32 = 1 << 1;
const RCTL_EN: u32 = 1 << 1;
const RCTL_UPE: u32 = 1 << 3;
const RCTL_MPE: u32 = 1 << 4;
const RCTL_LPE: u32 = 1 << 5;
const RCTL_BAM: u32 = 1 << 15;
const RCTL_SECRC: u32 = 1 << 26;
const TCTL_EN: u32 = 1 << 1;
const TCTL_PSP: u32 = 1 << 3;
const TCTL_CT: u32 = 0x0f << 4;
const TCTL_COLD: u32 = 0x3f << 12;
const TCTL_RTLC: u32 = 1 << 24;
const RFCTL_EXTEN: u32 = 1 << 15;
const RXCSUM_PCSD: u32 = 1 << 13;
const RAH_AV: u32 = 1 << 31;
const MRQC_RSS: u32 = 1;
const MRQC_HASH: u32 = (1 << 16) | (1 << 17) | (1 << 18) | (1 << 20); // TCP/IPv4, IPv4, TCP/IPv6, IPv6

const DESC: usize = 16;
const RXD_DD: u32 = 1;
const RXD_EOP: u32 = 1 << 1;
/// CE, SE, SEQ, CXE, RXE: the frame arrived damaged.
const RXD_FRAME_ERR: u32 = 0x01 | 0x02 | 0x04 | 0x10 | 0x80;
const TXD_EOP: u32 = 0x01;
const TXD_IFCS: u32 = 0x02;
const TXD_RS: u32 = 0x08;
const TXD_DD: u8 = 1;

const N_QUEUES: usize = 2;
/// Most descriptors a ring may have (RDLEN/TDLEN are 20 bits).
const MAX_RING: usize = 4096;
/// Ethernet header + one VLAN tag, with the CRC stripped by the device.
const L2_OVERHEAD: u32 = 18;
/// Refill the receive ring once this many descriptors are free.
const REFILL_MIN: usize = 16;

struct E1000e {
    bar: Arc<Bar>,
    mac: [u8; 6],
    /// RCTL's read-modify-writes (promiscuous mode, MTU).
    rctl: Mutex<()>,
    mtu: AtomicU32,
    promisc: AtomicBool,
    /// Clear-on-read hardware counters accumulated since start.
    hw: Mutex<NetdevStats>,
    hw_good: Mutex<(u64, u64)>,
    n_rxq: usize,
}

fn err(why: impl Into<String>) -> impl FnOnce(&str) -> VfioError {
    let why = why.into();
    move |bdf| VfioError::Device {
        bdf: bdf.into(),
        driver: "e1000e",
        why,
    }
}

fn start(a: StartArgs<'_>) -> Result<Started, VfioError> {
    let bdf = a.device.bdf.as_str();
    let bar = Arc::new(a.device.map_bar(0)?);
    if bar.size() < 0x10000 {
        return Err(err(format!(
            "BAR0 is {} bytes, too small for 82574 registers",
            bar.size()
        ))(bdf));
    }
    reset(&bar).map_err(|why| err(why)(bdf))?;
    let mac =
        read_mac(&bar).ok_or_else(|| err("no valid MAC address in RAL0/RAH0 or the NVM")(bdf))?;
    // The address filter: our MAC in slot 0, multicast table cleared.
    bar.write32(RAL0, u32::from_le_bytes([mac[0], mac[1], mac[2], mac[3]]));
    bar.write32(RAH0, u32::from(mac[4]) | u32::from(mac[5]) << 8 | RAH_AV);
    for i in 0..128 {
        bar.write32(MTA + 4 * i, 0);
    }
    for r in [CRCERRS, ALGNERRC, RXERRC, MPC, RLEC, GPRC, GPTC] {
        let _ = bar.read32(r);
    }

    let n_rxq = a.n_rxq.clamp(1, N_QUEUES);
    let rxq_size = a.rxq_size.clamp(8, MAX_RING);
    let txq_size = a.txq_size.clamp(8, MAX_RING);
    let container = a.device.container();
    let region = |n: usize| {
        DmaRegion::new(container, n * DESC).map_err(|e| VfioError::Os {
            bdf: bdf.into(),
            what: "descriptor ring memory",
            source: e,
        })
    };

    // Receive: extended descriptors, RSS over two queues when asked.
    bar.write32(RFCTL, RFCTL_EXTEN);
    bar.write32(RXCSUM, RXCSUM_PCSD);
    let mut rx: Vec<Box<dyn RxRing>> = Vec::new();
    for q in 0..n_rxq {
        let mem = region(rxq_size)?;
        bar.write32(rdbal(q), mem.iova() as u32);
        bar.write32(rdbah(q), (mem.iova() >> 32) as u32);
        bar.write32(rdlen(q), (rxq_size * DESC) as u32);
        bar.write32(rdh(q), 0);
        bar.write32(rdt(q), 0);
        let mut ring = E1000eRx::new(bar.clone(), q, mem, rxq_size, a.pool.clone());
        ring.refill(true);
        rx.push(Box::new(ring));
    }
    if n_rxq > 1 {
        let key: [u32; 10] = [
            0xda56_5a6d,
            0xc20e_5b25,
            0x3d25_6741,
            0xb08f_a343,
            0xcb2b_cad0,
            0xb430_7bae,
            0xa32d_cb77,
            0x0cf2_3080,
            0x3bb7_426a,
            0xfa01_acbe,
        ];
        for (i, k) in key.iter().enumerate() {
            bar.write32(RSSRK + 4 * i, *k);
        }
        // 128 one-byte entries; bit 7 picks queue 1: alternate the queues.
        for i in 0..32 {
            bar.write32(RETA + 4 * i, 0x8000_8000);
        }
        bar.write32(MRQC, MRQC_RSS | MRQC_HASH);
    } else {
        bar.write32(MRQC, 0);
    }

    // Transmit: both queues, legacy descriptors.
    let mut tx: Vec<Box<dyn TxRing>> = Vec::new();
    for q in 0..N_QUEUES {
        let mem = region(txq_size)?;
        bar.write32(tdbal(q), mem.iova() as u32);
        bar.write32(tdbah(q), (mem.iova() >> 32) as u32);
        bar.write32(tdlen(q), (txq_size * DESC) as u32);
        bar.write32(tdh(q), 0);
        bar.write32(tdt(q), 0);
        tx.push(Box::new(E1000eTx::new(
            bar.clone(),
            q,
            mem,
            txq_size,
            a.pool.clone(),
        )));
    }
    bar.write32(TIPG, 8 | (8 << 10) | (6 << 20));
    bar.write32(TCTL, TCTL_EN | TCTL_PSP | TCTL_CT | TCTL_COLD | TCTL_RTLC);

    let nic = E1000e {
        bar: bar.clone(),
        mac,
        rctl: Mutex::new(()),
        mtu: AtomicU32::new(1500),
        promisc: AtomicBool::new(true),
        hw: Mutex::new(NetdevStats::default()),
        hw_good: Mutex::new((0, 0)),
        n_rxq,
    };
    // A switch port hears every frame on the wire.
    nic.write_rctl();
    Ok(Started {
        nic: Box::new(nic),
        rx,
        tx,
        rx_desc: rxq_size,
        tx_desc: txq_size,
    })
}

/// Masks interrupts and resets the MAC; then sets the link up.
fn reset(bar: &Bar) -> Result<(), String> {
    bar.write32(IMC, u32::MAX);
    bar.write32(RCTL, 0);
    bar.write32(TCTL, 0);
    let ctrl = bar.read32(CTRL);
    if ctrl == u32::MAX {
        return Err("the device does not answer (registers read all ones)".into());
    }
    bar.write32(CTRL, ctrl | CTRL_RST);
    std::thread::sleep(Duration::from_millis(1));
    let t0 = Instant::now();
    while bar.read32(CTRL) & CTRL_RST != 0 {
        if t0.elapsed() > Duration::from_millis(500) {
            return Err("reset did not complete in 500 ms".into());
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    bar.write32(IMC, u32::MAX);
    bar.write32(CTRL, bar.read32(CTRL) | CTRL_SLU);
    bar.write32(CTRL_EXT, bar.read32(CTRL_EXT) | CTRL_EXT_DRV_LOAD);
    Ok(())
}

/// The MAC address: receive address 0 if valid, else NVM words 0–2.
fn read_mac(bar: &Bar) -> Option<[u8; 6]> {
    let (ral, rah) = (bar.read32(RAL0), bar.read32(RAH0));
    let mac = if rah & RAH_AV != 0 {
        let l = ral.to_le_bytes();
        [l[0], l[1], l[2], l[3], rah as u8, (rah >> 8) as u8]
    } else {
        let mut mac = [0u8; 6];
        for w in 0..3 {
            bar.write32(EERD, (w << 2) | 1);
            let t0 = Instant::now();
            let v = loop {
                let v = bar.read32(EERD);
                if v & 2 != 0 && v != u32::MAX {
                    break v;
                }
                if t0.elapsed() > Duration::from_millis(100) {
                    return None;
                }
                std::hint::spin_loop();
            };
            mac[w as usize * 2] = (v >> 16) as u8;
            mac[w as usize * 2 + 1] = (v >> 24) as u8;
        }
        mac
    };
    let valid = mac != [0; 6] && mac != [0xff; 6] && mac[0] & 1 == 0;
    valid.then_some(mac)
}

impl E1000e {
    fn write_rctl(&self) {
        let _g = self.rctl.lock().unwrap_or_else(|e| e.into_inner());
        let mut v = RCTL_EN | RCTL_BAM | RCTL_SECRC; // 2048-byte buffers (BSIZE 00)
        if self.promisc.load(Ordering::Relaxed) {
            v |= RCTL_UPE | RCTL_MPE;
        }
        if self.mtu.load(Ordering::Relaxed) > 1500 {
            v |= RCTL_LPE;
        }
        self.bar.write32(RCTL, v);
    }
}

impl Nic for E1000e {
    fn mac(&self) -> [u8; 6] {
        self.mac
    }

    fn link(&self) -> Link {
        let s = self.bar.read32(STATUS);
        if s == u32::MAX {
            return Link {
                up: false,
                speed: None,
            };
        }
        Link {
            up: s & STATUS_LU != 0,
            speed: Some(match (s >> 6) & 3 {
                0 => 10,
                1 => 100,
                _ => 1000,
            }),
        }
    }

    fn max_mtu(&self) -> u32 {
        DATA_ROOM as u32 - L2_OVERHEAD
    }

    fn set_mtu(&self, mtu: u32) -> Result<(), String> {
        self.mtu.store(mtu, Ordering::Relaxed);
        self.write_rctl();
        Ok(())
    }

    fn set_promisc(&self, on: bool) -> Result<(), String> {
        self.promisc.store(on, Ordering::Relaxed);
        self.write_rctl();
        Ok(())
    }

    fn promisc(&self) -> bool {
        self.bar.read32(RCTL) & RCTL_UPE != 0
    }

    fn hw_stats(&self) -> NetdevStats {
        let mut hw = self.hw.lock().unwrap_or_else(|e| e.into_inner());
        // All ones: the device is gone, not 4 billion errors.
        let r = |reg| match self.bar.read32(reg) {
            u32::MAX => 0,
            v => u64::from(v),
        };
        hw.rx_dropped += r(MPC);
        hw.rx_errors += r(CRCERRS) + r(ALGNERRC) + r(RXERRC) + r(RLEC);
        let mut good = self.hw_good.lock().unwrap_or_else(|e| e.into_inner());
        good.0 += r(GPRC);
        good.1 += r(GPTC);
        *hw
    }

    fn status(&self, s: &mut BTreeMap<String, String>) {
        let good = *self.hw_good.lock().unwrap_or_else(|e| e.into_inner());
        s.insert("max_rx_queues".into(), N_QUEUES.to_string());
        s.insert("max_tx_queues".into(), N_QUEUES.to_string());
        s.insert("rss".into(), (self.n_rxq > 1).to_string());
        s.insert("hw_rx_good_packets".into(), good.0.to_string());
        s.insert("hw_tx_good_packets".into(), good.1.to_string());
    }

    fn stop(&self) {
        self.bar.write32(RCTL, 0);
        self.bar.write32(TCTL, 0);
        self.bar.write32(IMC, u32::MAX);
        let ctrl = self.bar.read32(CTRL);
        if ctrl != u32::MAX {
            self.bar.write32(CTRL, ctrl | CTRL_RST);
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

/// A receive queue: descriptors [clean, tail) belong to the device, the
/// others wait for buffers; `slots[i]` is the packet whose buffer
/// descriptor `i` points at.
struct E1000eRx {
    bar: Arc<Bar>,
    q: usize,
    mem: DmaRegion,
    slots: Vec<Option<Packet>>,
    clean: usize,
    tail: usize,
    pool: Arc<PoolDma>,
    /// Dropping the rest of a frame that spans descriptors.
    discarding: bool,
}

impl E1000eRx {
    fn new(bar: Arc<Bar>, q: usize, mem: DmaRegion, n: usize, pool: Arc<PoolDma>) -> E1000eRx {
        E1000eRx {
            bar,
            q,
            mem,
            slots: (0..n).map(|_| None).collect(),
            clean: 0,
            tail: 0,
            pool,
            discarding: false,
        }
    }

    fn n(&self) -> usize {
        self.slots.len()
    }

    /// Gives the device buffers for every empty descriptor (keeping one
    /// empty, so that a full ring is not mistaken for an empty one).
    fn refill(&mut self, force: bool) {
        let n = self.n();
        let free = (self.clean + n - self.tail - 1) % n;
        if free == 0 || (free < REFILL_MIN.min(n / 2) && !force) {
            return;
        }
        let start = self.tail;
        for _ in 0..free {
            let Some(pkt) = self.pool.pool().alloc() else {
                break;
            };
            let Some(iova) = self.pool.iova_of(pkt.data().as_ptr(), DATA_ROOM) else {
                break;
            };
            let d = self.tail * DESC;
            self.mem.write::<u64>(d, iova);
            self.mem.write::<u64>(d + 8, 0);
            self.slots[self.tail] = Some(pkt);
            self.tail = (self.tail + 1) % n;
        }
        if self.tail != start {
            fence(Ordering::Release);
            self.bar.write32(rdt(self.q), self.tail as u32);
        }
    }
}

impl RxRing for E1000eRx {
    fn recv(&mut self, batch: &mut Batch, d: &mut NetdevStats) {
        let n = self.n();
        let mut room = BATCH_SIZE.saturating_sub(batch.len());
        while room > 0 && self.clean != self.tail {
            let i = self.clean;
            let status = self.mem.read::<u32>(i * DESC + 8);
            if status & RXD_DD == 0 {
                break;
            }
            fence(Ordering::Acquire);
            let len = usize::from(self.mem.read::<u16>(i * DESC + 12));
            let pkt = self.slots[i].take();
            self.clean = (i + 1) % n;
            let Some(mut pkt) = pkt else {
                d.rx_errors += 1;
                continue;
            };
            let eop = status & RXD_EOP != 0;
            if self.discarding || !eop {
                // A frame longer than a buffer: dropped whole.
                if !self.discarding {
                    d.rx_dropped += 1;
                }
                self.discarding = !eop;
                continue;
            }
            if (status >> 24) & RXD_FRAME_ERR != 0 || len == 0 || len > DATA_ROOM {
                d.rx_errors += 1;
                continue;
            }
            if pkt.extend(len).is_err() {
                d.rx_errors += 1;
                continue;
            }
            d.rx_packets += 1;
            d.rx_bytes += len as u64;
            let _ = batch.push(pkt);
            room -= 1;
        }
        self.refill(false);
    }
}

/// A transmit queue: descriptors [clean, tail) are the device's; the
/// packets they send stay in `slots` until the device reports them done.
struct E1000eTx {
    bar: Arc<Bar>,
    q: usize,
    mem: DmaRegion,
    slots: Vec<Option<Packet>>,
    clean: usize,
    tail: usize,
    pool: Arc<PoolDma>,
}

impl E1000eTx {
    fn new(bar: Arc<Bar>, q: usize, mem: DmaRegion, n: usize, pool: Arc<PoolDma>) -> E1000eTx {
        E1000eTx {
            bar,
            q,
            mem,
            slots: (0..n).map(|_| None).collect(),
            clean: 0,
            tail: 0,
            pool,
        }
    }

    /// Frees the packets of descriptors the device has written back.
    fn reclaim(&mut self) {
        let n = self.slots.len();
        while self.clean != self.tail {
            if self.mem.read::<u8>(self.clean * DESC + 12) & TXD_DD == 0 {
                break;
            }
            self.slots[self.clean] = None;
            self.clean = (self.clean + 1) % n;
        }
    }
}

impl TxRing for E1000eTx {
    fn send(&mut self, batch: &mut Batch, d: &mut NetdevStats) {
        let n = self.slots.len();
        self.reclaim();
        let start = self.tail;
        for pkt in batch.drain() {
            let next = (self.tail + 1) % n;
            if next == self.clean {
                self.reclaim();
                if next == self.clean {
                    d.tx_dropped += 1;
                    continue;
                }
            }
            let len = pkt.len();
            if len == 0 || len > DATA_ROOM {
                d.tx_errors += 1;
                continue;
            }
            let Some(pkt) = dma_ready(&self.pool, pkt, 0) else {
                d.tx_dropped += 1;
                continue;
            };
            let Some(iova) = self.pool.iova_of(pkt.data().as_ptr(), len) else {
                d.tx_dropped += 1;
                continue;
            };
            let at = self.tail * DESC;
            self.mem.write::<u64>(at, iova);
            self.mem
                .write::<u32>(at + 8, len as u32 | (TXD_EOP | TXD_IFCS | TXD_RS) << 24);
            self.mem.write::<u32>(at + 12, 0);
            self.slots[self.tail] = Some(pkt);
            self.tail = next;
            d.tx_packets += 1;
            d.tx_bytes += len as u64;
        }
        if self.tail != start {
            fence(Ordering::Release);
            self.bar.write32(tdt(self.q), self.tail as u32);
        }
    }
}

#[cfg(test)]
mod tests {
    //! The rings against a simulated device: the test writes back
    //! descriptors and frames as the 82574 would, including bad ones.

    use super::*;
    use fvs_datapath::packet::PacketPool;

    const POOL_IOVA: u64 = 0x10_0000_0000;

    fn regs() -> Arc<Bar> {
        Arc::new(Bar::from_memory(Box::leak(
            vec![0u32; 0x8000].into_boxed_slice(),
        )))
    }

    fn setup(n: usize, buffers: usize) -> (Arc<PacketPool>, Arc<PoolDma>, Arc<Bar>) {
        let pool = Arc::new(PacketPool::new(buffers, false).unwrap());
        let dma = PoolDma::for_test(&pool, POOL_IOVA);
        let _ = n;
        (pool, dma, regs())
    }

    /// The device receives `frame` into descriptor `i`.
    fn device_rx(ring: &E1000eRx, i: usize, frame: &[u8], status: u32) {
        let at = i * DESC;
        let addr = ring.mem.read::<u64>(at);
        let va = ring.pool.vaddr_of(addr).expect("a pool buffer");
        assert!(ring.pool.iova_of(va as *const u8, DATA_ROOM).is_some());
        // SAFETY: `va` is the buffer of a packet the ring holds for the
        // device, which this test plays; it has DATA_ROOM bytes (checked).
        unsafe { std::ptr::copy_nonoverlapping(frame.as_ptr(), va as *mut u8, frame.len()) };
        ring.mem.write::<u64>(at, 0x1234); // write-back replaces the address
        ring.mem.write::<u16>(at + 12, frame.len() as u16);
        ring.mem.write::<u32>(at + 8, status);
    }

    #[test]
    fn rx_delivers_frames_and_refills() {
        let (pool, dma, bar) = setup(8, 64);
        let mut ring = E1000eRx::new(
            bar.clone(),
            1,
            DmaRegion::for_test(8 * DESC, 0x2000),
            8,
            dma,
        );
        ring.refill(true);
        // One descriptor stays empty: 7 buffers given, tail register says so.
        assert_eq!(bar.read32(rdt(1)), 7);
        assert_eq!(pool.available(), 64 - 7);
        let mut batch = Batch::new();
        let mut d = NetdevStats::default();
        ring.recv(&mut batch, &mut d);
        assert!(batch.is_empty(), "nothing written back yet");

        device_rx(&ring, 0, &[0xaa; 60], RXD_DD | RXD_EOP);
        device_rx(&ring, 1, &[0xbb; 1514], RXD_DD | RXD_EOP);
        ring.recv(&mut batch, &mut d);
        assert_eq!(batch.len(), 2);
        assert_eq!(batch.packets()[0].data(), &[0xaa; 60][..]);
        assert_eq!(batch.packets()[1].len(), 1514);
        assert_eq!((d.rx_packets, d.rx_bytes), (2, 1574));
        batch.clear();
        // Two free descriptors are below the refill threshold (4 of 8).
        assert_eq!(bar.read32(rdt(1)), 7);
        device_rx(&ring, 2, &[1; 64], RXD_DD | RXD_EOP);
        device_rx(&ring, 3, &[1; 64], RXD_DD | RXD_EOP);
        ring.recv(&mut batch, &mut d);
        assert_eq!(batch.len(), 2);
        assert_eq!(bar.read32(rdt(1)), 3, "refilled 4 descriptors, wrapping");
        assert_eq!(pool.available(), 64 - 7 - 2);
    }

    #[test]
    fn rx_drops_bad_frames_without_panicking() {
        let (pool, dma, bar) = setup(8, 64);
        let mut ring = E1000eRx::new(bar, 0, DmaRegion::for_test(8 * DESC, 0x2000), 8, dma);
        ring.refill(true);
        let mut batch = Batch::new();
        let mut d = NetdevStats::default();
        // A CRC error, a length beyond the buffer, a zero length, a frame
        // over two descriptors, then a good one.
        device_rx(&ring, 0, &[2; 60], RXD_DD | RXD_EOP | (0x01 << 24));
        device_rx(&ring, 1, &[2; 60], RXD_DD | RXD_EOP);
        ring.mem.write::<u16>(DESC + 12, 9000);
        device_rx(&ring, 2, &[], RXD_DD | RXD_EOP);
        device_rx(&ring, 3, &[3; 100], RXD_DD);
        device_rx(&ring, 4, &[3; 100], RXD_DD | RXD_EOP);
        device_rx(&ring, 5, &[4; 70], RXD_DD | RXD_EOP);
        ring.recv(&mut batch, &mut d);
        assert_eq!(batch.len(), 1);
        assert_eq!(batch.packets()[0].data(), &[4; 70][..]);
        assert_eq!((d.rx_errors, d.rx_dropped, d.rx_packets), (3, 1, 1));
        drop(batch);
        drop(ring);
        assert_eq!(pool.available(), 64, "every buffer is back");
    }

    #[test]
    fn rx_waits_for_buffers_when_the_pool_is_empty() {
        let (pool, dma, bar) = setup(8, 3);
        let mut ring = E1000eRx::new(
            bar.clone(),
            0,
            DmaRegion::for_test(8 * DESC, 0x2000),
            8,
            dma,
        );
        ring.refill(true);
        assert_eq!(bar.read32(rdt(0)), 3);
        assert_eq!(pool.available(), 0);
        let mut batch = Batch::new();
        let mut d = NetdevStats::default();
        for i in 0..3 {
            device_rx(&ring, i, &[9; 60], RXD_DD | RXD_EOP);
        }
        ring.recv(&mut batch, &mut d);
        assert_eq!(batch.len(), 3);
        batch.clear();
        ring.recv(&mut batch, &mut d);
        assert_eq!(
            bar.read32(rdt(0)),
            6,
            "buffers given back as the pool refills"
        );
    }

    #[test]
    fn tx_sends_zero_copy_and_reclaims() {
        let (pool, dma, bar) = setup(8, 64);
        let mut ring = E1000eTx::new(
            bar.clone(),
            1,
            DmaRegion::for_test(8 * DESC, 0x3000),
            8,
            dma.clone(),
        );
        let mut batch = Batch::new();
        for i in 0..3u8 {
            batch.push(pool.packet_from(&[i; 60]).unwrap()).unwrap();
        }
        let first = batch.packets()[0].data().as_ptr();
        let mut d = NetdevStats::default();
        ring.send(&mut batch, &mut d);
        assert!(batch.is_empty());
        assert_eq!((d.tx_packets, d.tx_bytes), (3, 180));
        assert_eq!(bar.read32(tdt(1)), 3);
        assert_eq!(
            ring.mem.read::<u64>(0),
            dma.iova_of(first, 60).unwrap(),
            "no copy"
        );
        let cmd = ring.mem.read::<u32>(8);
        assert_eq!(cmd & 0xffff, 60);
        assert_eq!(cmd >> 24, TXD_EOP | TXD_IFCS | TXD_RS);
        assert_eq!(pool.available(), 61, "in flight until done");
        // The device finishes two.
        ring.mem.write::<u8>(12, TXD_DD);
        ring.mem.write::<u8>(DESC + 12, TXD_DD);
        ring.send(&mut Batch::new(), &mut d);
        assert_eq!(pool.available(), 63);

        // A full ring drops what does not fit (7 in flight at most).
        for _ in 0..8 {
            batch.push(pool.packet_from(&[7; 64]).unwrap()).unwrap();
        }
        let mut d = NetdevStats::default();
        ring.send(&mut batch, &mut d);
        assert_eq!((d.tx_packets, d.tx_dropped), (6, 2));
    }

    #[test]
    fn tx_copies_packets_from_outside_the_mapped_pool() {
        let (pool, dma, bar) = setup(8, 16);
        let other = PacketPool::new(4, false).unwrap();
        let mut ring = E1000eTx::new(
            bar,
            0,
            DmaRegion::for_test(8 * DESC, 0x3000),
            8,
            dma.clone(),
        );
        let mut batch = Batch::new();
        batch.push(other.packet_from(&[5; 100]).unwrap()).unwrap();
        batch.push(pool.packet_from(&[]).unwrap()).unwrap();
        let mut d = NetdevStats::default();
        ring.send(&mut batch, &mut d);
        assert_eq!((d.tx_packets, d.tx_errors), (1, 1));
        assert_eq!(
            other.available(),
            4,
            "the foreign packet was copied and freed"
        );
        let iova = ring.mem.read::<u64>(0);
        assert!(dma.vaddr_of(iova).is_some());
    }
}
