//! NIC drivers on top of the VFIO layer.
//!
//! A driver is one module that exports a [`DriverInfo`]: the PCI ids it
//! drives and a `start` function that brings the device up on the memory
//! and registers the VFIO layer gives it ([`StartArgs`]) and returns
//!
//! - a [`Nic`]: the control side (MAC, link, promiscuous mode, MTU,
//!   counters the hardware keeps, status, stop), called from the daemon;
//! - one [`RxRing`] per receive queue and one [`TxRing`] per transmit
//!   queue: the data side, each owned by one PMD thread at a time and
//!   polled in batches, without locks, allocation or system calls.
//!
//! The generic port ([`super::VfioPort`]) does the rest: sysfs checks,
//! IOMMU group and container, DMA mapping of the packet pool, queue
//! ownership, counters, teardown order. Adding a NIC family (ixgbe/ixgbevf,
//! i40e/iavf, ice, …) is one more module and one more line in [`DRIVERS`].

use std::collections::BTreeMap;
use std::sync::Arc;

use fvs_datapath::netdev::NetdevStats;
use fvs_datapath::packet::{Batch, Packet};

use super::dma::PoolDma;
use super::sys::Device;
use super::VfioError;

pub mod e1000e;
pub mod virtio_net;

/// A NIC family: which devices it drives and how to start one.
pub struct DriverInfo {
    /// Short name (Interface:status `driver_name`, logs).
    pub name: &'static str,
    /// What it drives, for messages ("Intel 82574 (8086:10d3)").
    pub describe: &'static str,
    /// (vendor, device) PCI ids.
    pub ids: &'static [(u16, u16)],
    pub start: fn(StartArgs<'_>) -> Result<Started, VfioError>,
}

/// Every driver fvs has.
pub const DRIVERS: &[&DriverInfo] = &[&e1000e::DRIVER, &virtio_net::DRIVER];

/// The driver for PCI ids `vendor:device`, if fvs has one.
pub fn find(vendor: u16, device: u16) -> Option<&'static DriverInfo> {
    DRIVERS
        .iter()
        .copied()
        .find(|d| d.ids.contains(&(vendor, device)))
}

/// What a driver gets to start a device.
pub struct StartArgs<'a> {
    /// The device, opened, with memory decoding and bus mastering on.
    pub device: &'a Device,
    /// The packet pool, mapped for the device's DMA.
    pub pool: Arc<PoolDma>,
    /// Receive queues wanted (the driver may give fewer: as many as the device has).
    pub n_rxq: usize,
    /// Descriptors per receive and per transmit ring (powers of two; the
    /// driver may lower them to the device's maximum).
    pub rxq_size: usize,
    pub txq_size: usize,
}

/// A started device: its control side and its queues.
pub struct Started {
    pub nic: Box<dyn Nic>,
    pub rx: Vec<Box<dyn RxRing>>,
    pub tx: Vec<Box<dyn TxRing>>,
    /// Descriptors per receive and per transmit ring, as set up.
    pub rx_desc: usize,
    pub tx_desc: usize,
}

/// Link state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Link {
    pub up: bool,
    /// Mbps, when the device says.
    pub speed: Option<u32>,
}

/// The control side of a started NIC. Called from the daemon's threads
/// while PMD threads poll the rings.
pub trait Nic: Send + Sync {
    fn mac(&self) -> [u8; 6];
    fn link(&self) -> Link;
    /// Largest MTU the device and the pool's buffers allow.
    fn max_mtu(&self) -> u32;
    /// Programs the device for frames of `mtu` bytes of payload (at most `max_mtu`).
    fn set_mtu(&self, mtu: u32) -> Result<(), String>;
    fn set_promisc(&self, on: bool) -> Result<(), String>;
    fn promisc(&self) -> bool;
    /// Drops and errors counted by the device itself, since start.
    fn hw_stats(&self) -> NetdevStats {
        NetdevStats::default()
    }
    /// Driver-specific Interface:status entries.
    fn status(&self, _s: &mut BTreeMap<String, String>) {}
    /// Stops all DMA (before the rings and their buffers are freed).
    fn stop(&self);
}

/// One receive queue.
pub trait RxRing: Send {
    /// Moves received frames into `batch` (up to its free room), gives the
    /// device fresh buffers, and counts what happened in `d`.
    fn recv(&mut self, batch: &mut Batch, d: &mut NetdevStats);
}

/// One transmit queue.
pub trait TxRing: Send {
    /// Queues every packet of `batch` for the device (leaving it empty),
    /// reclaims what the device finished, and counts what happened in `d`.
    fn send(&mut self, batch: &mut Batch, d: &mut NetdevStats);
}

/// `pkt` as a buffer the device can read: itself when it lies in the
/// mapped pool with `headroom` bytes free in front, else a copy in a
/// fresh pool buffer (`None` when the pool is empty or it does not fit).
pub(crate) fn dma_ready(pool: &PoolDma, pkt: Packet, headroom: usize) -> Option<Packet> {
    let d = pkt.data();
    if pkt.headroom() >= headroom && pool.iova_of(d.as_ptr(), d.len()).is_some() {
        return Some(pkt);
    }
    pool.pool().packet_from(pkt.data())
}
