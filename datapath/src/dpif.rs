//! The datapath: its ports (by datapath port number) and the PMD threads
//! that poll them. Control operations reach the PMDs as commands and return
//! once every PMD has carried them out.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, RwLock};

use thiserror::Error;

use crate::netdev::{Netdev, NetdevError};
use crate::pmd::{FlowDump, Pmd, PmdCmd, PmdConfig, PmdCounters, PmdHandle, PmdShared};
use crate::upcall::Upcall;

#[derive(Debug, Error)]
pub enum DpifError {
    #[error("datapath port {0} is already in use")]
    PortInUse(u32),
    #[error("no datapath port {0}")]
    NoSuchPort(u32),
    #[error(transparent)]
    Netdev(#[from] NetdevError),
    #[error("cannot start PMD thread: {0}")]
    Thread(#[from] std::io::Error),
}

/// Lets the control plane wait until every PMD thread has stopped using
/// decisions older than a version (without owning the datapath).
#[derive(Default)]
pub struct Quiescer {
    pmds: RwLock<Vec<Arc<PmdShared>>>,
}

impl Quiescer {
    /// Returns once no PMD will forward a packet by a decision older than `version`.
    pub fn wait_version(&self, version: u64) {
        let pmds = self.pmds.read().unwrap_or_else(|e| e.into_inner());
        for p in pmds.iter() {
            p.wait_version(version);
        }
    }
}

struct PortEntry {
    netdev: Arc<dyn Netdev>,
    /// PMD index polling each rx queue.
    rxq_pmd: Vec<usize>,
}

/// Where an rx queue is polled (`pmd-rxq-show`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RxqAssignment {
    pub port: u32,
    pub port_name: String,
    pub queue: usize,
    pub pmd: usize,
    pub core: Option<usize>,
}

pub struct Datapath<H: Upcall> {
    handler: Arc<H>,
    pmds: Vec<PmdHandle>,
    cores: Vec<Option<usize>>,
    ports: Mutex<BTreeMap<u32, PortEntry>>,
    quiescer: Arc<Quiescer>,
    next_rxq: Mutex<usize>,
}

impl<H: Upcall> Datapath<H> {
    /// Starts one PMD thread per entry of `cores` (pinned where `Some`).
    pub fn new(
        handler: Arc<H>,
        cores: &[Option<usize>],
        config: PmdConfig,
    ) -> Result<Datapath<H>, DpifError> {
        let mut pmds = Vec::new();
        for (id, core) in cores.iter().enumerate() {
            let pmd = Pmd::new(id, handler.clone(), config);
            pmds.push(PmdHandle::spawn(pmd, *core)?);
        }
        let quiescer = Arc::new(Quiescer {
            pmds: RwLock::new(pmds.iter().map(|p| p.shared().clone()).collect()),
        });
        Ok(Datapath {
            handler,
            pmds,
            cores: cores.to_vec(),
            ports: Mutex::new(BTreeMap::new()),
            quiescer,
            next_rxq: Mutex::new(0),
        })
    }

    pub fn handler(&self) -> &Arc<H> {
        &self.handler
    }

    pub fn quiescer(&self) -> Arc<Quiescer> {
        self.quiescer.clone()
    }

    pub fn n_pmds(&self) -> usize {
        self.pmds.len()
    }

    /// Adds a port: its rx queues go round robin to the PMDs, and every PMD
    /// gets a transmit queue on it.
    pub fn add_port(&self, port: u32, netdev: Arc<dyn Netdev>) -> Result<(), DpifError> {
        let mut ports = self.ports.lock().unwrap_or_else(|e| e.into_inner());
        if ports.contains_key(&port) {
            return Err(DpifError::PortInUse(port));
        }
        let n_pmds = self.pmds.len().max(1);
        let mut txqs = Vec::new();
        for i in 0..self.pmds.len() {
            txqs.push(netdev.open_txq(i % netdev.n_txq().max(1))?);
        }
        let mut rxqs = Vec::new();
        for q in 0..netdev.n_rxq() {
            rxqs.push(netdev.open_rxq(q)?);
        }
        for (i, txq) in txqs.into_iter().enumerate() {
            self.pmds[i].request(PmdCmd::AddTx { port, queue: txq });
        }
        let mut rxq_pmd = Vec::new();
        let mut next = self.next_rxq.lock().unwrap_or_else(|e| e.into_inner());
        for queue in rxqs {
            let pmd = *next % n_pmds;
            *next += 1;
            if let Some(h) = self.pmds.get(pmd) {
                h.request(PmdCmd::AddRxq { port, queue });
            }
            rxq_pmd.push(pmd);
        }
        ports.insert(port, PortEntry { netdev, rxq_pmd });
        Ok(())
    }

    pub fn del_port(&self, port: u32) -> Result<Arc<dyn Netdev>, DpifError> {
        let mut ports = self.ports.lock().unwrap_or_else(|e| e.into_inner());
        let entry = ports.remove(&port).ok_or(DpifError::NoSuchPort(port))?;
        for p in &self.pmds {
            p.request(PmdCmd::RemovePort(port));
        }
        Ok(entry.netdev)
    }

    pub fn port(&self, port: u32) -> Option<Arc<dyn Netdev>> {
        self.ports
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&port)
            .map(|e| e.netdev.clone())
    }

    pub fn ports(&self) -> Vec<(u32, Arc<dyn Netdev>)> {
        self.ports
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(n, e)| (*n, e.netdev.clone()))
            .collect()
    }

    pub fn rxq_assignments(&self) -> Vec<RxqAssignment> {
        let ports = self.ports.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = Vec::new();
        for (n, e) in ports.iter() {
            for (q, &pmd) in e.rxq_pmd.iter().enumerate() {
                out.push(RxqAssignment {
                    port: *n,
                    port_name: e.netdev.name().to_string(),
                    queue: q,
                    pmd,
                    core: self.cores.get(pmd).copied().flatten(),
                });
            }
        }
        out
    }

    /// Waits until no PMD uses decisions older than `version`.
    pub fn wait_version(&self, version: u64) {
        self.quiescer.wait_version(version);
    }

    fn broadcast(&self, f: impl Fn() -> PmdCmd) {
        for p in &self.pmds {
            p.request(f());
        }
    }

    /// Credits all megaflow traffic to rules now (before reading rule stats).
    pub fn sync_stats(&self) {
        self.broadcast(|| PmdCmd::SyncStats);
    }

    pub fn flush_flows(&self) {
        self.broadcast(|| PmdCmd::FlushFlows);
    }

    pub fn clear_stats(&self) {
        self.broadcast(|| PmdCmd::ClearStats);
    }

    pub fn configure(&self, config: PmdConfig) {
        self.broadcast(|| PmdCmd::Configure(config));
    }

    /// Counters of each PMD thread (fresh: each thread publishes before acking).
    pub fn pmd_counters(&self) -> Vec<PmdCounters> {
        self.pmds
            .iter()
            .map(|p| {
                p.request(PmdCmd::SyncStats);
                p.counters()
            })
            .collect()
    }

    pub fn dump_flows(&self) -> Vec<FlowDump> {
        self.pmds.iter().flat_map(|p| p.dump_flows()).collect()
    }
}
