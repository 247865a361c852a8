//! The datapath: its ports (by datapath port number) and the PMD threads
//! that poll them. Control operations reach the PMDs as commands and return
//! once every PMD has carried them out.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, RwLock};

use thiserror::Error;

use crate::netdev::{Netdev, NetdevError};
use crate::pmd::{FlowDump, Pmd, PmdCmd, PmdConfig, PmdCounters, PmdHandle, PmdLoad, PmdShared};
use crate::upcall::Upcall;

#[derive(Debug, Error)]
pub enum DpifError {
    #[error("datapath port {0} is already in use")]
    PortInUse(u32),
    #[error("no datapath port {0}")]
    NoSuchPort(u32),
    #[error("datapath port {0} is out of range (ports are below 2^31)")]
    PortRange(u32),
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

/// How rx queues are spread over PMD threads (`pmd-rxq-assign`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RxqAssign {
    /// In port and queue order, one PMD after the other.
    RoundRobin,
    /// By measured load, busiest first, across the PMDs in turn (OVS's default).
    #[default]
    Cycles,
    /// By measured load, each queue to the least loaded PMD.
    Group,
}

impl RxqAssign {
    pub fn parse(s: &str) -> Option<RxqAssign> {
        match s {
            "roundrobin" => Some(RxqAssign::RoundRobin),
            "cycles" => Some(RxqAssign::Cycles),
            "group" => Some(RxqAssign::Group),
            _ => None,
        }
    }
}

/// One rx queue moved by a rebalance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RxqMove {
    pub port_name: String,
    pub queue: usize,
    pub from: usize,
    pub to: usize,
}

pub struct Datapath<H: Upcall> {
    handler: Arc<H>,
    pmds: Vec<PmdHandle>,
    cores: Vec<Option<usize>>,
    ports: Mutex<BTreeMap<u32, PortEntry>>,
    quiescer: Arc<Quiescer>,
    next_rxq: Mutex<usize>,
    assign: Mutex<RxqAssign>,
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
            assign: Mutex::new(RxqAssign::default()),
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
        // The EMC tells packet signatures from keys by the port's top bit.
        if u64::from(port) & crate::extract::SIG_MARK != 0 {
            return Err(DpifError::PortRange(port));
        }
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
        let assign = self.rxq_assign();
        // Queues per PMD so far, for the load-based modes (a new queue has no
        // measured load: spread by count; a rebalance refines it later).
        let mut per_pmd = vec![0usize; n_pmds];
        for e in ports.values() {
            for &p in &e.rxq_pmd {
                if let Some(c) = per_pmd.get_mut(p) {
                    *c += 1;
                }
            }
        }
        let mut next = self.next_rxq.lock().unwrap_or_else(|e| e.into_inner());
        for (qid, queue) in rxqs.into_iter().enumerate() {
            let pmd = match assign {
                RxqAssign::RoundRobin => {
                    *next += 1;
                    (*next - 1) % n_pmds
                }
                RxqAssign::Cycles | RxqAssign::Group => {
                    (0..n_pmds).min_by_key(|&p| per_pmd[p]).unwrap_or(0)
                }
            };
            per_pmd[pmd] += 1;
            if let Some(h) = self.pmds.get(pmd) {
                h.request(PmdCmd::AddRxq { port, qid, queue });
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

    /// Has the first PMD thread process `pkts` as if received on `port`
    /// (packets the control plane originates); returns once they are sent.
    pub fn inject(&self, port: u32, pkts: Vec<crate::packet::Packet>) {
        if let Some(p) = self.pmds.first() {
            p.request(PmdCmd::Inject { port, pkts });
        }
    }

    /// The core each PMD thread is pinned to (`None`: not pinned).
    pub fn pmd_cores(&self) -> &[Option<usize>] {
        &self.cores
    }

    /// When each PMD's counters were last cleared ([`crate::pmd::now_ms`] time).
    pub fn pmd_stats_since_ms(&self) -> Vec<u64> {
        self.pmds
            .iter()
            .map(|p| p.shared().stats_since_ms())
            .collect()
    }

    /// Measured load of each PMD thread and its rx queues.
    pub fn pmd_loads(&self) -> Vec<PmdLoad> {
        self.pmds.iter().map(|p| p.load()).collect()
    }

    pub fn rxq_assign(&self) -> RxqAssign {
        *self.assign.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn set_rxq_assign(&self, a: RxqAssign) {
        *self.assign.lock().unwrap_or_else(|e| e.into_inner()) = a;
    }

    /// Reassigns every rx queue to PMDs by the current mode and measured
    /// loads, moving those whose PMD changes; returns the moves.
    pub fn rebalance(&self) -> Vec<RxqMove> {
        let mut ports = self.ports.lock().unwrap_or_else(|e| e.into_inner());
        let n = self.pmds.len();
        if n == 0 {
            return Vec::new();
        }
        let mut load: BTreeMap<(u32, usize), u64> = BTreeMap::new();
        for l in self.pmd_loads() {
            for r in l.rxqs {
                load.insert((r.port, r.qid), r.cycles);
            }
        }
        // (port, qid, current pmd, load)
        let mut queues: Vec<(u32, usize, usize, u64)> = ports
            .iter()
            .flat_map(|(&port, e)| {
                let load = &load;
                e.rxq_pmd.iter().enumerate().map(move |(q, &pmd)| {
                    (port, q, pmd, load.get(&(port, q)).copied().unwrap_or(0))
                })
            })
            .collect();
        let wanted = plan_assignment(&mut queues, n, self.rxq_assign());
        let mut moves = Vec::new();
        for ((port, qid, from, _), to) in queues.into_iter().zip(wanted) {
            if from == to {
                continue;
            }
            let Some(queue) = self.pmds.get(from).and_then(|p| p.take_rxq(port, qid)) else {
                continue;
            };
            if let Some(p) = self.pmds.get(to) {
                p.request(PmdCmd::AddRxq { port, qid, queue });
            }
            if let Some(e) = ports.get_mut(&port) {
                if let Some(slot) = e.rxq_pmd.get_mut(qid) {
                    *slot = to;
                }
                moves.push(RxqMove {
                    port_name: e.netdev.name().to_string(),
                    queue: qid,
                    from,
                    to,
                });
            }
        }
        moves
    }
}

/// The PMD each queue should go to. `queues` are (port, qid, current pmd,
/// load); they are sorted here into the order the result follows.
fn plan_assignment(
    queues: &mut [(u32, usize, usize, u64)],
    n_pmds: usize,
    mode: RxqAssign,
) -> Vec<usize> {
    match mode {
        RxqAssign::RoundRobin => {
            queues.sort_by_key(|q| (q.0, q.1));
            (0..queues.len()).map(|i| i % n_pmds).collect()
        }
        RxqAssign::Cycles => {
            // Busiest first, dealt to the PMDs up and back down (1 2 3 3 2 1 …),
            // so no PMD gets every queue of a rank.
            queues.sort_by(|a, b| b.3.cmp(&a.3).then((a.0, a.1).cmp(&(b.0, b.1))));
            (0..queues.len())
                .map(|i| {
                    let round = i / n_pmds;
                    let pos = i % n_pmds;
                    if round.is_multiple_of(2) {
                        pos
                    } else {
                        n_pmds - 1 - pos
                    }
                })
                .collect()
        }
        RxqAssign::Group => {
            queues.sort_by(|a, b| b.3.cmp(&a.3).then((a.0, a.1).cmp(&(b.0, b.1))));
            let mut sum = vec![(0u64, 0usize); n_pmds];
            queues
                .iter()
                .map(|q| {
                    let p = (0..n_pmds).min_by_key(|&p| sum[p]).unwrap_or(0);
                    sum[p].0 += q.3;
                    sum[p].1 += 1;
                    p
                })
                .collect()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assignment_plans() {
        let mut q = vec![
            (1, 0, 0, 10),
            (2, 0, 0, 300),
            (3, 0, 0, 200),
            (4, 0, 0, 100),
        ];
        // Cycles: 300→0, 200→1, 100→1, 10→0.
        let p = plan_assignment(&mut q, 2, RxqAssign::Cycles);
        let by_port: BTreeMap<u32, usize> = q.iter().map(|x| x.0).zip(p).collect();
        assert_eq!(by_port, BTreeMap::from([(2, 0), (3, 1), (4, 1), (1, 0)]));
        // Group: 300→0, 200→1, 100→1 (200 < 300), 10→0 (300 ≤ 300 ties go to 0).
        let p = plan_assignment(&mut q, 2, RxqAssign::Group);
        let by_port: BTreeMap<u32, usize> = q.iter().map(|x| x.0).zip(p).collect();
        assert_eq!(by_port, BTreeMap::from([(2, 0), (3, 1), (4, 1), (1, 0)]));
        let p = plan_assignment(&mut q, 2, RxqAssign::RoundRobin);
        assert_eq!(p, vec![0, 1, 0, 1]);
        assert_eq!(q.iter().map(|x| x.0).collect::<Vec<_>>(), vec![1, 2, 3, 4]);
    }
}
