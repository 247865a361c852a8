//! vhost-user ports: DPDK containers (virtio-user) and QEMU VMs attach to
//! the switch through a unix socket and shared memory.
//!
//! `type=dpdkvhostuser`: fvs is the vhost-user server, listening on the
//! socket the daemon chose (`<rundir>/<vhost-sock-dir>/<port>`).
//! `type=dpdkvhostuserclient`: fvs connects to `options:vhost-server-path`
//! and reconnects (back-off up to 1 s) whenever the frontend goes away, so
//! that restarting either side needs nothing from the other.
//!
//! The parts, each in its file:
//! - [`msg`]: message framing and payload parsing (untrusted bytes, never panics);
//! - [`backend`]: the protocol (features, memory table, rings);
//! - [`memory`]: the mapped memory table and checked address translation;
//! - [`vring`]: split rings in guest memory and bounded chain walks;
//! - [`device`]: what the control thread and the PMD threads share;
//! - [`net`]: the virtio-net data path the PMD threads run;
//! - `conn`: the control thread and its socket;
//! - [`frontend`]: a small virtio-net driver over vhost-user, for tests
//!   and tools (the hostile-frontend tests are built on it).
//!
//! Queues: [`MAX_QUEUE_PAIRS`] receive queues are always offered to the
//! datapath; those the guest has not enabled cost one load per poll. Each
//! PMD thread's transmit handle is mapped onto the enabled pairs.

pub mod backend;
mod conn;
pub mod device;
pub mod frontend;
pub mod memory;
pub mod msg;
pub mod net;
pub mod vring;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use fvs_datapath::netdev::{Netdev, NetdevError, NetdevStats, RxQueue, TxQueue};
use fvs_datapath::packet::{PacketPool, DATA_ROOM};

use crate::{PortError, VHOST_SOCKET_OPTION};
use device::{fault_text, QueueStats, Shared, MAX_VRINGS};

/// Most queue pairs a frontend may use.
pub const MAX_QUEUE_PAIRS: usize = 8;

/// A vhost-user port.
pub struct VhostPort {
    shared: Arc<Shared>,
    kind: &'static str,
    client: bool,
    socket: PathBuf,
    pool: Arc<PacketPool>,
    rx_taken: Arc<[AtomicBool; MAX_QUEUE_PAIRS]>,
    /// Stops the control thread when the port goes away.
    _control: conn::Control,
}

impl VhostPort {
    /// A port for which fvs listens on `path` (`dpdkvhostuser`).
    pub fn server(name: &str, path: &Path, pool: Arc<PacketPool>) -> Result<VhostPort, PortError> {
        let listener = conn::listen(path).map_err(|e| PortError::Vhost {
            port: name.into(),
            why: format!("cannot listen on {}: {e}", path.display()),
        })?;
        let ep = conn::Endpoint::Server {
            listener,
            path: path.to_path_buf(),
        };
        VhostPort::start(name, "dpdkvhostuser", false, path, ep, pool)
    }

    /// A port that connects to the frontend listening on `path`
    /// (`dpdkvhostuserclient`), retrying until it is there.
    pub fn client(name: &str, path: &Path, pool: Arc<PacketPool>) -> Result<VhostPort, PortError> {
        use std::os::unix::ffi::OsStrExt;
        let len = path.as_os_str().as_bytes().len();
        if len == 0 || len >= 108 {
            return Err(PortError::Vhost {
                port: name.into(),
                why: format!(
                    "vhost-server-path \"{}\" is empty or longer than 107 bytes",
                    path.display()
                ),
            });
        }
        let ep = conn::Endpoint::Client {
            path: path.to_path_buf(),
        };
        VhostPort::start(name, "dpdkvhostuserclient", true, path, ep, pool)
    }

    fn start(
        name: &str,
        kind: &'static str,
        client: bool,
        path: &Path,
        ep: conn::Endpoint,
        pool: Arc<PacketPool>,
    ) -> Result<VhostPort, PortError> {
        let shared = Arc::new(Shared::new(name));
        let control = conn::Control::start(shared.clone(), ep).map_err(|e| PortError::Vhost {
            port: name.into(),
            why: format!("cannot start its control thread: {e}"),
        })?;
        Ok(VhostPort {
            shared,
            kind,
            client,
            socket: path.to_path_buf(),
            pool,
            rx_taken: Arc::new(std::array::from_fn(|_| AtomicBool::new(false))),
            _control: control,
        })
    }

    /// Opens the port an Interface of `kind` (`dpdkvhostuser` or
    /// `dpdkvhostuserclient`) describes.
    pub fn from_options(
        kind: &str,
        name: &str,
        options: &BTreeMap<String, String>,
        pool: Arc<PacketPool>,
    ) -> Result<VhostPort, PortError> {
        let port = match kind {
            "dpdkvhostuser" => {
                let path = options
                    .get(VHOST_SOCKET_OPTION)
                    .ok_or_else(|| PortError::Vhost {
                        port: name.into(),
                        why: "no socket path (the daemon passes it)".into(),
                    })?;
                VhostPort::server(name, Path::new(path), pool)?
            }
            _ => {
                let path = options
                    .get("vhost-server-path")
                    .filter(|p| !p.is_empty())
                    .ok_or_else(|| PortError::Vhost {
                        port: name.into(),
                        why: "type=dpdkvhostuserclient needs options:vhost-server-path".into(),
                    })?;
                VhostPort::client(name, Path::new(path), pool)?
            }
        };
        if let Some(v) = options.get("tx-retries-max") {
            let n =
                v.parse::<u32>()
                    .ok()
                    .filter(|n| *n <= 32)
                    .ok_or_else(|| PortError::BadOption {
                        port: name.into(),
                        key: "tx-retries-max".into(),
                        value: v.clone(),
                        why: "not a number from 0 to 32",
                    })?;
            port.shared.tx_retries_max.store(n, Ordering::Relaxed);
        }
        Ok(port)
    }

    /// The socket path (listened on or connected to).
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Whether a frontend is connected.
    pub fn connected(&self) -> bool {
        self.shared.info().connected
    }

    /// The frontend's faults and protocol errors, if any (the
    /// Interface:error of the port).
    pub fn error(&self) -> Option<String> {
        let mut parts = Vec::new();
        if let Some(e) = &self.shared.info().error {
            parts.push(e.clone());
        }
        for (i, c) in self.shared.vrings.iter().enumerate() {
            if let Some(t) = fault_text(c.fault.load(Ordering::Relaxed)) {
                parts.push(format!("virtqueue {i}: {t}"));
            }
        }
        (!parts.is_empty()).then(|| format!("{}: {}", self.shared.name, parts.join("; ")))
    }

    /// Counters of each queue, as OVS names them in Interface:statistics
    /// (`rx_q0_good_packets`, …), plus fvs's totals of drops.
    pub fn queue_stats(&self) -> BTreeMap<String, u64> {
        let mut m = BTreeMap::new();
        let g = QueueStats::get;
        for q in 0..MAX_QUEUE_PAIRS {
            for (dir, v) in [("rx", 2 * q + 1), ("tx", 2 * q)] {
                let s = &self.shared.vrings[v].stats;
                if g(&s.packets) == 0 && g(&s.dropped) == 0 && g(&s.errors) == 0 && q > 0 {
                    continue;
                }
                m.insert(format!("{dir}_q{q}_good_packets"), g(&s.packets));
                m.insert(format!("{dir}_q{q}_good_bytes"), g(&s.bytes));
                m.insert(format!("{dir}_q{q}_dropped"), g(&s.dropped));
                m.insert(format!("{dir}_q{q}_errors"), g(&s.errors));
                if dir == "tx" {
                    m.insert(format!("tx_q{q}_retries"), g(&s.retries));
                }
            }
        }
        let t = self.stats();
        m.insert("ovs_tx_retries".into(), t.tx_retries);
        m.insert(
            "ovs_tx_mtu_exceeded_drops".into(),
            self.shared.tx_mtu_drops.load(Ordering::Relaxed),
        );
        m.insert(
            "ovs_tx_failure_drops".into(),
            self.shared.tx_down_drops.load(Ordering::Relaxed),
        );
        m
    }
}

impl Netdev for VhostPort {
    fn name(&self) -> &str {
        &self.shared.name
    }

    fn kind(&self) -> &str {
        self.kind
    }

    fn n_rxq(&self) -> usize {
        MAX_QUEUE_PAIRS
    }

    fn n_txq(&self) -> usize {
        MAX_QUEUE_PAIRS
    }

    fn open_rxq(&self, q: usize) -> Result<Box<dyn RxQueue>, NetdevError> {
        if q >= MAX_QUEUE_PAIRS {
            return Err(NetdevError::NoSuchQueue {
                port: self.shared.name.clone(),
                queue: q,
            });
        }
        if self.rx_taken[q].swap(true, Ordering::AcqRel) {
            return Err(NetdevError::QueueBusy {
                port: self.shared.name.clone(),
                queue: q,
            });
        }
        Ok(Box::new(net::VhostRxq {
            shared: self.shared.clone(),
            vring: 2 * q + 1,
            taken: self.rx_taken.clone(),
            hint: 0,
            burst: net::Burst::new(),
            pool: self.pool.clone(),
        }))
    }

    fn open_txq(&self, q: usize) -> Result<Box<dyn TxQueue>, NetdevError> {
        if q >= MAX_QUEUE_PAIRS {
            return Err(NetdevError::NoSuchQueue {
                port: self.shared.name.clone(),
                queue: q,
            });
        }
        Ok(Box::new(net::VhostTxq {
            shared: self.shared.clone(),
            id: q,
            hint: 0,
            burst: net::Burst::new(),
        }))
    }

    fn stats(&self) -> NetdevStats {
        let g = QueueStats::get;
        let mut s = NetdevStats::default();
        for q in 0..MAX_QUEUE_PAIRS {
            let rx = &self.shared.vrings[2 * q + 1].stats;
            s.rx_packets += g(&rx.packets);
            s.rx_bytes += g(&rx.bytes);
            s.rx_dropped += g(&rx.dropped);
            s.rx_errors += g(&rx.errors);
            let tx = &self.shared.vrings[2 * q].stats;
            s.tx_packets += g(&tx.packets);
            s.tx_bytes += g(&tx.bytes);
            s.tx_dropped += g(&tx.dropped);
            s.tx_errors += g(&tx.errors);
            s.tx_retries += g(&tx.retries);
        }
        s.tx_dropped += self.shared.tx_down_drops.load(Ordering::Relaxed);
        s
    }

    fn mtu(&self) -> u32 {
        self.shared.mtu.load(Ordering::Relaxed)
    }

    fn set_mtu(&self, mtu: u32) -> Result<(), String> {
        let max = (DATA_ROOM - 18) as u32;
        if !(68..=max).contains(&mtu) {
            return Err(format!(
                "{}: MTU {mtu} is outside 68..={max} (a packet buffer holds {DATA_ROOM} bytes)",
                self.shared.name
            ));
        }
        self.shared.mtu.store(mtu, Ordering::Relaxed);
        Ok(())
    }

    /// Per-queue counters and the drop totals, for Interface:statistics.
    fn custom_stats(&self) -> BTreeMap<String, u64> {
        self.queue_stats()
    }

    /// The frontend's faults, for Interface:error (cleared when a new
    /// frontend connects).
    fn error(&self) -> Option<String> {
        VhostPort::error(self)
    }

    /// Up while a frontend is connected and its first queue pair runs.
    fn is_up(&self) -> bool {
        let r = |i: usize| self.shared.vrings[i].ready_hint.load(Ordering::Relaxed);
        self.connected() && r(0) && r(1)
    }

    fn status(&self) -> BTreeMap<String, String> {
        let info = self.shared.info().clone();
        let mut m = BTreeMap::new();
        m.insert(
            "mode".into(),
            if self.client { "client" } else { "server" }.into(),
        );
        m.insert("socket".into(), self.socket.display().to_string());
        m.insert(
            "status".into(),
            if info.connected {
                "connected"
            } else {
                "disconnected"
            }
            .into(),
        );
        if !info.connected {
            return m;
        }
        m.insert("features".into(), format!("0x{:016x}", info.features));
        m.insert(
            "protocol_features".into(),
            format!("0x{:016x}", info.protocol_features),
        );
        if let Some(mtu) = info.guest_mtu {
            m.insert("mtu".into(), mtu.to_string());
        }
        let n = (0..MAX_VRINGS)
            .rev()
            .find(|&i| info.vring_sizes[i] != 0)
            .map_or(0, |i| i + 1);
        if n > 0 {
            m.insert("num_of_vrings".into(), n.to_string());
        }
        for (i, size) in info.vring_sizes.iter().enumerate().take(n) {
            m.insert(format!("vring_{i}_size"), size.to_string());
        }
        let enabled: Vec<String> = (0..MAX_QUEUE_PAIRS)
            .filter(|&q| {
                let r = |i: usize| self.shared.vrings[i].ready_hint.load(Ordering::Relaxed);
                r(2 * q) || r(2 * q + 1)
            })
            .map(|q| q.to_string())
            .collect();
        m.insert("queue_pairs_running".into(), enabled.join(","));
        m
    }
}
