//! In-memory ports: packets injected by a test or benchmark are received by
//! the datapath, and packets the datapath sends are collected. Used to drive
//! the datapath without a kernel or a peer.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use fvs_datapath::netdev::{Netdev, NetdevError, NetdevStats, RxQueue, TxQueue};
use fvs_datapath::packet::{Batch, Packet};

#[derive(Default)]
struct Counters {
    rx_packets: AtomicU64,
    rx_bytes: AtomicU64,
    tx_packets: AtomicU64,
    tx_bytes: AtomicU64,
}

type Queue = Arc<Mutex<Vec<Packet>>>;

fn lock(q: &Queue) -> std::sync::MutexGuard<'_, Vec<Packet>> {
    q.lock().unwrap_or_else(|e| e.into_inner())
}

/// A port whose wire is a pair of in-memory queues.
pub struct MemoryPort {
    name: String,
    rx: Vec<Queue>,
    sent: Queue,
    counters: Arc<Counters>,
    mac: [u8; 6],
}

impl MemoryPort {
    /// A port with `n_rxq` receive queues.
    pub fn new(name: &str, n_rxq: usize) -> Arc<MemoryPort> {
        let n = name
            .bytes()
            .fold(0u8, |a, b| a.wrapping_mul(31).wrapping_add(b));
        Arc::new(MemoryPort {
            name: name.to_string(),
            rx: (0..n_rxq.max(1)).map(|_| Queue::default()).collect(),
            sent: Queue::default(),
            counters: Arc::default(),
            mac: [0x02, 0, 0, 0, 0, n],
        })
    }

    /// Queues `pkt` for reception on queue `q`.
    pub fn inject(&self, q: usize, pkt: Packet) {
        self.count_rx(1, pkt.len() as u64);
        lock(&self.rx[q % self.rx.len()]).push(pkt);
    }

    /// Queues a whole batch for reception on queue `q`.
    pub fn inject_batch(&self, q: usize, batch: &mut Batch) {
        let bytes = batch.packets().iter().map(|p| p.len() as u64).sum();
        self.count_rx(batch.len() as u64, bytes);
        batch.move_into(&mut lock(&self.rx[q % self.rx.len()]));
    }

    fn count_rx(&self, packets: u64, bytes: u64) {
        self.counters
            .rx_packets
            .fetch_add(packets, Ordering::Relaxed);
        self.counters.rx_bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Packets waiting to be received.
    pub fn pending(&self) -> usize {
        self.rx.iter().map(|q| lock(q).len()).sum()
    }

    /// Takes every packet sent so far.
    pub fn take_sent(&self) -> Vec<Packet> {
        let v = std::mem::take(&mut *lock(&self.sent));
        self.count_tx_bytes(&v);
        v
    }

    /// Moves up to a batch of sent packets into `batch` (for benchmarks that recycle them).
    pub fn take_sent_into(&self, batch: &mut Batch) {
        let n = batch.take_from(&mut lock(&self.sent));
        self.count_tx_bytes(&batch.packets()[batch.len() - n..]);
    }

    fn count_tx_bytes(&self, pkts: &[Packet]) {
        let bytes = pkts.iter().map(|p| p.len() as u64).sum();
        self.counters.tx_bytes.fetch_add(bytes, Ordering::Relaxed);
    }
}

struct MemRxq {
    q: Queue,
}

// Received packets and bytes are counted as they are injected, sent bytes as
// they are taken out: the datapath side of a memory port does no per-packet
// bookkeeping.
impl RxQueue for MemRxq {
    fn recv(&mut self, batch: &mut Batch) -> usize {
        batch.take_from(&mut lock(&self.q))
    }
}

struct MemTxq {
    sent: Queue,
    counters: Arc<Counters>,
}

impl TxQueue for MemTxq {
    fn send(&mut self, batch: &mut Batch) {
        self.counters
            .tx_packets
            .fetch_add(batch.len() as u64, Ordering::Relaxed);
        batch.move_into(&mut lock(&self.sent));
    }
}

impl Netdev for MemoryPort {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &str {
        "memory"
    }

    fn n_rxq(&self) -> usize {
        self.rx.len()
    }

    fn n_txq(&self) -> usize {
        1
    }

    fn open_rxq(&self, q: usize) -> Result<Box<dyn RxQueue>, NetdevError> {
        let q = self.rx.get(q).ok_or_else(|| NetdevError::NoSuchQueue {
            port: self.name.clone(),
            queue: q,
        })?;
        Ok(Box::new(MemRxq { q: q.clone() }))
    }

    fn open_txq(&self, _q: usize) -> Result<Box<dyn TxQueue>, NetdevError> {
        Ok(Box::new(MemTxq {
            sent: self.sent.clone(),
            counters: self.counters.clone(),
        }))
    }

    fn stats(&self) -> NetdevStats {
        let c = &self.counters;
        NetdevStats {
            rx_packets: c.rx_packets.load(Ordering::Relaxed),
            rx_bytes: c.rx_bytes.load(Ordering::Relaxed),
            tx_packets: c.tx_packets.load(Ordering::Relaxed),
            tx_bytes: c.tx_bytes.load(Ordering::Relaxed),
            ..NetdevStats::default()
        }
    }

    fn mac(&self) -> [u8; 6] {
        self.mac
    }
}
