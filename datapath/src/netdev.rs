//! The port (netdev) interface the PMD threads poll. Drivers live in the
//! `fvs-ports` crate; each receive or transmit queue is a separate object
//! owned by the one PMD thread that uses it, so queue operations need no
//! locks.

use thiserror::Error;

use crate::packet::Batch;

/// Receives packets from one queue of a port.
pub trait RxQueue: Send {
    /// Appends up to `BATCH_SIZE - batch.len()` received packets to `batch`;
    /// returns how many.
    fn recv(&mut self, batch: &mut Batch) -> usize;

    /// Whether each poll is a system call (a TAP device), not a look at
    /// shared memory: a busy PMD thread polls such a queue less often
    /// while it is empty.
    fn polls_by_syscall(&self) -> bool {
        false
    }

    /// Whether the queue can receive now: a vhost-user queue the guest has
    /// not enabled (or not set up) cannot (`pmd-rxq-show` says "disabled").
    fn enabled(&self) -> bool {
        true
    }
}

/// Sends packets on one queue of a port.
pub trait TxQueue: Send {
    /// Sends every packet of `batch`, leaving it empty. Packets that cannot
    /// be sent are dropped and counted by the port.
    fn send(&mut self, batch: &mut Batch);
}

/// Traffic counters of a port (or one of its queues).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetdevStats {
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub rx_dropped: u64,
    pub rx_errors: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
    pub tx_dropped: u64,
    pub tx_errors: u64,
    pub tx_retries: u64,
}

impl std::ops::AddAssign for NetdevStats {
    fn add_assign(&mut self, o: NetdevStats) {
        self.rx_packets += o.rx_packets;
        self.rx_bytes += o.rx_bytes;
        self.rx_dropped += o.rx_dropped;
        self.rx_errors += o.rx_errors;
        self.tx_packets += o.tx_packets;
        self.tx_bytes += o.tx_bytes;
        self.tx_dropped += o.tx_dropped;
        self.tx_errors += o.tx_errors;
        self.tx_retries += o.tx_retries;
    }
}

/// Why a port operation failed.
#[derive(Debug, Error)]
pub enum NetdevError {
    #[error("{port}: no such queue {queue}")]
    NoSuchQueue { port: String, queue: usize },
    #[error("{port}: queue {queue} is already open")]
    QueueBusy { port: String, queue: usize },
    #[error("{port}: {reason}")]
    Other { port: String, reason: String },
}

/// A port the datapath can poll and send to.
pub trait Netdev: Send + Sync {
    fn name(&self) -> &str;
    /// Driver name (`system`, `tap`, `dpdkvhostuser`, `memory`, …).
    fn kind(&self) -> &str;
    fn n_rxq(&self) -> usize;
    fn n_txq(&self) -> usize;
    /// Takes receive queue `q` for exclusive use by one thread.
    fn open_rxq(&self, q: usize) -> Result<Box<dyn RxQueue>, NetdevError>;
    /// A handle on transmit queue `q` for one thread (drivers whose queues are
    /// fewer than the threads share them internally).
    fn open_txq(&self, q: usize) -> Result<Box<dyn TxQueue>, NetdevError>;
    fn stats(&self) -> NetdevStats;
    fn mac(&self) -> [u8; 6] {
        [0; 6]
    }
    fn mtu(&self) -> u32 {
        1500
    }
    /// Whether the link is up.
    fn is_up(&self) -> bool {
        true
    }
    /// Sets the MTU (`Interface:mtu_request`); an error says why it cannot.
    fn set_mtu(&self, _mtu: u32) -> Result<(), String> {
        Err(format!(
            "{}: setting the MTU is not supported by {} ports",
            self.name(),
            self.kind()
        ))
    }
    /// Driver-specific state for `Interface:status` (mode, socket,
    /// features, connected, …).
    fn status(&self) -> std::collections::BTreeMap<String, String> {
        std::collections::BTreeMap::new()
    }
    /// Driver-specific counters (per queue, …) added to
    /// `Interface:statistics` under the names OVS gives them.
    fn custom_stats(&self) -> std::collections::BTreeMap<String, u64> {
        std::collections::BTreeMap::new()
    }
    /// A fault of an open port (e.g. a misbehaving vhost-user frontend)
    /// for `Interface:error`; `None` while it works.
    fn error(&self) -> Option<String> {
        None
    }
    /// The device under the port is gone (deleted, or replaced by another
    /// of the same name): the port must be closed and opened again.
    fn is_gone(&self) -> bool {
        false
    }
}
