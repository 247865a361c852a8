//! `type=dpdk` ports on physical NICs (`options:dpdk-devargs=<PCI
//! address>`), driven from userspace through VFIO, polled by the PMD
//! threads like DPDK's poll-mode drivers.
//!
//! Layers, bottom up:
//!
//! - [`sys`]: the VFIO kernel interface — container with the type1 IOMMU,
//!   IOMMU group, device (configuration space, BARs mapped for register
//!   access);
//! - [`dma`]: memory the device reaches through the IOMMU: the packet pool
//!   (hugepages, mapped once per container) and the drivers' rings;
//! - [`pci`]: sysfs checks (bound to vfio-pci? in an IOMMU group?) and
//!   PCI capabilities;
//! - [`drivers`]: one module per NIC family (e1000e, virtio-net) behind
//!   the [`drivers::Nic`], [`drivers::RxRing`] and [`drivers::TxRing`]
//!   traits;
//! - [`VfioPort`] (here): the [`Netdev`] the datapath polls — queue
//!   ownership, counters, status, and an orderly stop (device quiesced
//!   before any buffer or ring it could write is freed).
//!
//! Every failure names the device and the cause in one line (it becomes
//! the Interface's `error` column); fvs keeps running and retries.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use fvs_datapath::netdev::{Netdev, NetdevError, NetdevStats, RxQueue, TxQueue};
use fvs_datapath::packet::{Batch, PacketPool, BATCH_SIZE};
use thiserror::Error;

use crate::Counters;

pub mod dma;
pub mod drivers;
pub mod pci;
pub mod sys;

use drivers::{Nic, RxRing, StartArgs, TxRing};

/// Descriptors per ring unless `options:n_rxq_desc`/`n_txq_desc` say otherwise.
pub const DEFAULT_RING_SIZE: usize = 1024;

/// Why a VFIO port could not be opened. Each message is one line naming
/// the device and the cause.
#[derive(Debug, Error)]
pub enum VfioError {
    #[error("no PCI device {bdf} (check the address with lspci)")]
    NoDevice { bdf: String },
    #[error("PCI device {bdf} ({vendor:04x}:{device:04x}) has no fvs driver; fvs drives {known}")]
    Unsupported {
        bdf: String,
        vendor: u16,
        device: u16,
        known: String,
    },
    #[error("PCI device {bdf} {}; bind it to vfio-pci first (driver_override, or dpdk-devbind.py --bind=vfio-pci {bdf})", match driver { Some(d) => format!("is bound to {d}, not vfio-pci"), None => "has no driver, not vfio-pci".to_string() })]
    NotBound { bdf: String, driver: Option<String> },
    #[error("PCI device {bdf} has no IOMMU group: enable the IOMMU (intel_iommu=on or amd_iommu=on on the kernel command line)")]
    NoIommuGroup { bdf: String },
    #[error("PCI device {bdf}: cannot open /dev/vfio/vfio ({why}); load the vfio-pci module")]
    NoVfio { bdf: String, why: String },
    #[error("PCI device {bdf}: no usable IOMMU: {why}")]
    NoIommu { bdf: String, why: String },
    #[error("IOMMU group {group} of PCI device {bdf} is not viable: every device of the group must be bound to vfio-pci or to no driver")]
    GroupNotViable { bdf: String, group: u32 },
    #[error("IOMMU group {group} of PCI device {bdf} is in use by another process")]
    GroupBusy { bdf: String, group: u32 },
    #[error("PCI device {bdf} is already used by port {port}")]
    DeviceBusy { bdf: String, port: String },
    #[error("PCI device {bdf}: the packet pool is not in hugepages, which VFIO DMA needs: set other_config:dpdk-init=true and reserve hugepages (/proc/sys/vm/nr_hugepages)")]
    NoHugepages { bdf: String },
    #[error("PCI device {bdf}: the packet pool has {have} free buffers, the port needs {need} ({n_rxq} rx queue(s) of {ring} descriptors, and room to work): raise other_config:dpdk-socket-mem or lower options:n_rxq_desc")]
    PoolTooSmall {
        bdf: String,
        have: usize,
        need: usize,
        n_rxq: usize,
        ring: usize,
    },
    #[error("PCI device {bdf}: cannot map the packet pool ({mb} MB) for DMA: {source}")]
    DmaMap {
        bdf: String,
        mb: usize,
        source: std::io::Error,
    },
    #[error("PCI device {bdf}: BAR{bar}: {why}")]
    Bar { bdf: String, bar: u8, why: String },
    #[error("PCI device {bdf}: {driver}: {why}")]
    Device {
        bdf: String,
        driver: &'static str,
        why: String,
    },
    #[error("PCI device {bdf}: bad option {key}=\"{value}\": {why}")]
    BadOption {
        bdf: String,
        key: String,
        value: String,
        why: &'static str,
    },
    #[error("PCI device {bdf}: {what}: {source}")]
    Os {
        bdf: String,
        what: &'static str,
        source: std::io::Error,
    },
}

/// A physical NIC port.
pub struct VfioPort {
    inner: Arc<Inner>,
}

struct Inner {
    name: String,
    bdf: String,
    driver: &'static str,
    ids: (u16, u16),
    group: u32,
    rxq_size: usize,
    txq_size: usize,
    // Fields drop in this order, after `Drop::drop` has stopped the device.
    nic: Box<dyn Nic>,
    /// Each receive ring, while no queue handle holds it.
    rx: Vec<Mutex<Option<Box<dyn RxRing>>>>,
    /// Transmit rings, shared by the handles of threads that get the same one.
    tx: Vec<Arc<Mutex<Box<dyn TxRing>>>>,
    counters: Counters,
    /// Packets received per queue (`rx_qN_packets` in the status, as DPDK's xstats).
    rxq_packets: Vec<AtomicU64>,
    mtu: AtomicU32,
    device: sys::Device,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // No queue handle is left (each holds the Inner). Stop every DMA
        // before the rings, their buffers and the mappings go away.
        self.nic.stop();
        let _ = pci::set_bus_master(&self.device, false);
    }
}

fn ring_option(
    bdf: &str,
    options: &BTreeMap<String, String>,
    key: &str,
) -> Result<usize, VfioError> {
    let Some(v) = options.get(key) else {
        return Ok(DEFAULT_RING_SIZE);
    };
    v.parse::<usize>()
        .ok()
        .filter(|n| n.is_power_of_two() && (64..=4096).contains(n))
        .ok_or_else(|| VfioError::BadOption {
            bdf: bdf.into(),
            key: key.into(),
            value: v.clone(),
            why: "not a power of two from 64 to 4096",
        })
}

impl VfioPort {
    /// Opens the NIC at PCI address `addr` as port `name`, with
    /// `options:n_rxq` receive queues (as many as the device has, at most)
    /// and `options:n_rxq_desc`/`n_txq_desc` descriptors per ring; its
    /// frames live in `pool`, which must be hugepage-backed.
    pub fn open(
        name: &str,
        addr: &str,
        options: &BTreeMap<String, String>,
        pool: Arc<PacketPool>,
    ) -> Result<VfioPort, VfioError> {
        let bdf = pci::normalize(addr);
        let info = pci::sysfs_info(&bdf)?;
        let Some(driver) = drivers::find(info.vendor, info.device) else {
            let known: Vec<&str> = drivers::DRIVERS.iter().map(|d| d.describe).collect();
            return Err(VfioError::Unsupported {
                bdf,
                vendor: info.vendor,
                device: info.device,
                known: known.join(" and "),
            });
        };
        let group_id = pci::check_binding(&bdf, &info)?;
        let n_rxq = match options.get("n_rxq") {
            None => 1,
            Some(v) => v
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=64).contains(n))
                .ok_or_else(|| VfioError::BadOption {
                    bdf: bdf.clone(),
                    key: "n_rxq".into(),
                    value: v.clone(),
                    why: "not a number from 1 to 64",
                })?,
        };
        let rxq_size = ring_option(&bdf, options, "n_rxq_desc")?;
        let txq_size = ring_option(&bdf, options, "n_txq_desc")?;
        if !pool.is_hugepage_backed() {
            return Err(VfioError::NoHugepages { bdf });
        }
        // The rx rings take their buffers at once; keep some for the rest.
        let need = n_rxq * rxq_size + 4 * BATCH_SIZE;
        if pool.available() < need {
            return Err(VfioError::PoolTooSmall {
                bdf,
                have: pool.available(),
                need,
                n_rxq,
                ring: rxq_size,
            });
        }

        let group = sys::Group::get(group_id, &bdf)?;
        let device = group.open_device(&bdf, name)?;
        pci::set_bus_master(&device, true).map_err(|e| VfioError::Os {
            bdf: bdf.clone(),
            what: "enable bus mastering",
            source: e,
        })?;
        let pool_dma = match dma::PoolDma::get(device.container(), &pool) {
            Ok(p) => p,
            Err(source) => {
                let _ = pci::set_bus_master(&device, false);
                return Err(VfioError::DmaMap {
                    bdf,
                    mb: pool.region().1 >> 20,
                    source,
                });
            }
        };
        let started = (driver.start)(StartArgs {
            device: &device,
            pool: pool_dma,
            n_rxq,
            rxq_size,
            txq_size,
        });
        let started = match started {
            Ok(s) => s,
            Err(e) => {
                let _ = pci::set_bus_master(&device, false);
                return Err(e);
            }
        };
        let mtu = 1500.min(started.nic.max_mtu());
        let n_rx = started.rx.len();
        Ok(VfioPort {
            inner: Arc::new(Inner {
                name: name.into(),
                bdf,
                driver: driver.name,
                ids: (info.vendor, info.device),
                group: group_id,
                rxq_size: started.rx_desc,
                txq_size: started.tx_desc,
                nic: started.nic,
                rx: started
                    .rx
                    .into_iter()
                    .map(|r| Mutex::new(Some(r)))
                    .collect(),
                tx: started
                    .tx
                    .into_iter()
                    .map(|t| Arc::new(Mutex::new(t)))
                    .collect(),
                counters: Counters::default(),
                rxq_packets: (0..n_rx).map(|_| AtomicU64::new(0)).collect(),
                mtu: AtomicU32::new(mtu),
                device,
            }),
        })
    }

    /// The device's PCI address.
    pub fn pci_address(&self) -> &str {
        &self.inner.bdf
    }

    /// The driver's name (`e1000e`, `virtio-net`).
    pub fn driver(&self) -> &str {
        self.inner.driver
    }

    pub fn promisc(&self) -> bool {
        self.inner.nic.promisc()
    }

    pub fn set_promisc(&self, on: bool) -> Result<(), String> {
        self.inner.nic.set_promisc(on)
    }
}

impl Netdev for VfioPort {
    fn name(&self) -> &str {
        &self.inner.name
    }

    fn kind(&self) -> &str {
        "dpdk"
    }

    fn n_rxq(&self) -> usize {
        self.inner.rx.len()
    }

    fn n_txq(&self) -> usize {
        self.inner.tx.len()
    }

    fn open_rxq(&self, q: usize) -> Result<Box<dyn RxQueue>, NetdevError> {
        let slot = self.inner.rx.get(q).ok_or(NetdevError::NoSuchQueue {
            port: self.inner.name.clone(),
            queue: q,
        })?;
        let ring = slot
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .ok_or(NetdevError::QueueBusy {
                port: self.inner.name.clone(),
                queue: q,
            })?;
        Ok(Box::new(VfioRxq {
            inner: self.inner.clone(),
            q,
            ring: Some(ring),
        }))
    }

    /// Threads given the same queue share it: its lock is taken once per
    /// batch (uncontended when each thread has its own queue).
    fn open_txq(&self, q: usize) -> Result<Box<dyn TxQueue>, NetdevError> {
        let ring = self.inner.tx.get(q).ok_or(NetdevError::NoSuchQueue {
            port: self.inner.name.clone(),
            queue: q,
        })?;
        Ok(Box::new(VfioTxq {
            inner: self.inner.clone(),
            ring: ring.clone(),
        }))
    }

    fn stats(&self) -> NetdevStats {
        let mut s = self.inner.counters.get();
        let hw = self.inner.nic.hw_stats();
        s.rx_dropped += hw.rx_dropped;
        s.rx_errors += hw.rx_errors;
        s.tx_dropped += hw.tx_dropped;
        s.tx_errors += hw.tx_errors;
        s
    }

    fn mac(&self) -> [u8; 6] {
        self.inner.nic.mac()
    }

    fn mtu(&self) -> u32 {
        self.inner.mtu.load(Ordering::Relaxed)
    }

    fn is_up(&self) -> bool {
        self.inner.nic.link().up
    }

    fn set_mtu(&self, mtu: u32) -> Result<(), String> {
        let max = self.inner.nic.max_mtu();
        if !(68..=max).contains(&mtu) {
            return Err(format!(
                "{}: MTU {mtu} is out of range for {} (68 to {max}: frames must fit one packet buffer)",
                self.inner.name, self.inner.bdf
            ));
        }
        self.inner
            .nic
            .set_mtu(mtu)
            .map_err(|e| format!("{}: {e}", self.inner.name))?;
        self.inner.mtu.store(mtu, Ordering::Relaxed);
        Ok(())
    }

    fn status(&self) -> BTreeMap<String, String> {
        let i = &self.inner;
        let link = i.nic.link();
        let mut s = BTreeMap::new();
        s.insert("driver_name".into(), i.driver.into());
        s.insert("pci-address".into(), i.bdf.clone());
        s.insert("pci-vendor_id".into(), format!("0x{:04x}", i.ids.0));
        s.insert("pci-device_id".into(), format!("0x{:04x}", i.ids.1));
        s.insert("iommu_group".into(), i.group.to_string());
        s.insert("n_rxq".into(), i.rx.len().to_string());
        s.insert("n_txq".into(), i.tx.len().to_string());
        s.insert("n_rxq_desc".into(), i.rxq_size.to_string());
        s.insert("n_txq_desc".into(), i.txq_size.to_string());
        s.insert("max_mtu".into(), i.nic.max_mtu().to_string());
        s.insert("promisc".into(), i.nic.promisc().to_string());
        for (q, n) in i.rxq_packets.iter().enumerate() {
            s.insert(
                format!("rx_q{q}_packets"),
                n.load(Ordering::Relaxed).to_string(),
            );
        }
        if let Some(speed) = link.speed {
            s.insert("link_speed".into(), format!("{speed}Mbps"));
        }
        i.nic.status(&mut s);
        s
    }
}

/// A receive queue handle: holds its ring exclusively, returns it on drop.
struct VfioRxq {
    inner: Arc<Inner>,
    q: usize,
    ring: Option<Box<dyn RxRing>>,
}

impl RxQueue for VfioRxq {
    fn recv(&mut self, batch: &mut Batch) -> usize {
        let Some(ring) = self.ring.as_mut() else {
            return 0;
        };
        let before = batch.len();
        let mut d = NetdevStats::default();
        ring.recv(batch, &mut d);
        if d != NetdevStats::default() {
            self.inner.counters.add(&d);
            if d.rx_packets != 0 {
                if let Some(c) = self.inner.rxq_packets.get(self.q) {
                    c.fetch_add(d.rx_packets, Ordering::Relaxed);
                }
            }
        }
        batch.len() - before
    }
}

impl Drop for VfioRxq {
    fn drop(&mut self) {
        if let Some(slot) = self.inner.rx.get(self.q) {
            *slot.lock().unwrap_or_else(|e| e.into_inner()) = self.ring.take();
        }
    }
}

struct VfioTxq {
    inner: Arc<Inner>,
    ring: Arc<Mutex<Box<dyn TxRing>>>,
}

impl TxQueue for VfioTxq {
    fn send(&mut self, batch: &mut Batch) {
        if batch.is_empty() {
            return;
        }
        let mut d = NetdevStats::default();
        self.ring
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .send(batch, &mut d);
        batch.clear();
        self.inner.counters.add(&d);
    }
}

#[cfg(test)]
mod tests;
