//! In-memory ports: packets injected by a test or benchmark are received by
//! the datapath, and packets the datapath sends are collected. Used to drive
//! the datapath without a kernel or a peer.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use fvs_datapath::netdev::{Netdev, NetdevError, NetdevStats, RxQueue, TxQueue};
use fvs_datapath::packet::{Batch, Packet, BATCH_SIZE};

#[derive(Default)]
struct Counters {
    rx_packets: AtomicU64,
    rx_bytes: AtomicU64,
    tx_packets: AtomicU64,
    tx_bytes: AtomicU64,
}

type Queue = Arc<Mutex<VecDeque<Packet>>>;

fn lock(q: &Queue) -> std::sync::MutexGuard<'_, VecDeque<Packet>> {
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
        lock(&self.rx[q % self.rx.len()]).push_back(pkt);
    }

    /// Packets waiting to be received.
    pub fn pending(&self) -> usize {
        self.rx.iter().map(|q| lock(q).len()).sum()
    }

    /// Takes every packet sent so far.
    pub fn take_sent(&self) -> Vec<Packet> {
        lock(&self.sent).drain(..).collect()
    }

    /// Moves up to a batch of sent packets into `batch` (for benchmarks that recycle them).
    pub fn take_sent_into(&self, batch: &mut Batch) {
        let mut s = lock(&self.sent);
        while !batch.is_full() {
            match s.pop_front() {
                Some(p) => {
                    let _ = batch.push(p);
                }
                None => break,
            }
        }
    }

    /// Queues a whole batch for reception on queue `q`.
    pub fn inject_batch(&self, q: usize, batch: &mut Batch) {
        let mut rx = lock(&self.rx[q % self.rx.len()]);
        rx.extend(batch.drain());
    }
}

struct MemRxq {
    q: Queue,
    counters: Arc<Counters>,
}

impl RxQueue for MemRxq {
    fn recv(&mut self, batch: &mut Batch) -> usize {
        let mut q = lock(&self.q);
        let mut n = 0;
        let mut bytes = 0;
        while n < BATCH_SIZE && !batch.is_full() {
            let Some(p) = q.pop_front() else { break };
            bytes += p.len() as u64;
            let _ = batch.push(p);
            n += 1;
        }
        drop(q);
        if n > 0 {
            self.counters
                .rx_packets
                .fetch_add(n as u64, Ordering::Relaxed);
            self.counters.rx_bytes.fetch_add(bytes, Ordering::Relaxed);
        }
        n
    }
}

struct MemTxq {
    sent: Queue,
    counters: Arc<Counters>,
}

impl TxQueue for MemTxq {
    fn send(&mut self, batch: &mut Batch) {
        let n = batch.len() as u64;
        let bytes: u64 = batch.packets().iter().map(|p| p.len() as u64).sum();
        lock(&self.sent).extend(batch.drain());
        self.counters.tx_packets.fetch_add(n, Ordering::Relaxed);
        self.counters.tx_bytes.fetch_add(bytes, Ordering::Relaxed);
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
        Ok(Box::new(MemRxq {
            q: q.clone(),
            counters: self.counters.clone(),
        }))
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
