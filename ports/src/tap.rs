//! `type=tap` and `type=internal`: a TAP device the port creates (or
//! attaches to, if a persistent one exists), through which the host's IP
//! stack talks to the switch. An internal port is the bridge's own TAP,
//! named like the bridge.
//!
//! A TAP descriptor has no batched read or write, so a poll reads frames
//! one `readv` each until the kernel says EAGAIN or the batch is full, and
//! a batch is sent with one `write` per frame. The device is removed when
//! the last descriptor closes: when the port and its queues are dropped.

use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use fvs_datapath::netdev::{Netdev, NetdevError, NetdevStats, RxQueue, TxQueue};
use fvs_datapath::packet::{Batch, Packet, PacketPool, DATA_ROOM};

use crate::{os_error, sys, Counters, PortError};

/// A port on a TAP device.
pub struct TapPort {
    name: String,
    ifname: String,
    kind: &'static str,
    fd: Arc<OwnedFd>,
    ctl: OwnedFd,
    counters: Arc<Counters>,
    rx_taken: Arc<AtomicBool>,
    pool: Arc<PacketPool>,
}

impl TapPort {
    /// Creates TAP device `ifname` for port `name` (or attaches to an
    /// existing persistent one) and brings it up.
    pub fn create(name: &str, ifname: &str, pool: Arc<PacketPool>) -> Result<TapPort, PortError> {
        let err = |what| move |e| os_error(name, ifname, what, e);
        if let Err(why) = sys::check_ifname(ifname) {
            return Err(PortError::InvalidName {
                port: name.into(),
                ifname: ifname.into(),
                why,
            });
        }
        let ctl = sys::control_socket().map_err(err("control socket"))?;
        let fd = sys::open_tun().map_err(err("open /dev/net/tun"))?;
        if let Err(e) = sys::tun_set_iff(fd.as_fd(), ifname, libc::IFF_TAP | libc::IFF_NO_PI) {
            let busy = |why| PortError::Busy {
                port: name.into(),
                ifname: ifname.into(),
                why,
            };
            return Err(match e.raw_os_error() {
                Some(libc::EBUSY) => busy("a TAP device attached to another process"),
                Some(libc::EINVAL) if sys::ifindex(ctl.as_fd(), ifname).is_ok() => {
                    busy("the name belongs to a device that is not a TAP device")
                }
                _ => os_error(name, ifname, "create TAP device", e),
            });
        }
        let flags = sys::if_flags(ctl.as_fd(), ifname).map_err(err("get flags"))?;
        sys::set_if_flags(ctl.as_fd(), ifname, flags | libc::IFF_UP as u32)
            .map_err(err("bring up"))?;
        Ok(TapPort {
            name: name.into(),
            ifname: ifname.into(),
            kind: "tap",
            fd: Arc::new(fd),
            ctl,
            counters: Arc::default(),
            rx_taken: Arc::default(),
            pool,
        })
    }

    /// The TAP device's name.
    pub fn ifname(&self) -> &str {
        &self.ifname
    }

    pub(crate) fn with_kind(mut self, kind: &'static str) -> TapPort {
        self.kind = kind;
        self
    }

    /// Sets the device's Ethernet address.
    pub fn set_mac(&self, mac: [u8; 6]) -> Result<(), PortError> {
        sys::set_if_hwaddr(self.ctl.as_fd(), &self.ifname, mac)
            .map_err(|e| os_error(&self.name, &self.ifname, "set MAC address", e))
    }
}

impl Netdev for TapPort {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &str {
        self.kind
    }

    fn n_rxq(&self) -> usize {
        1
    }

    fn n_txq(&self) -> usize {
        1
    }

    fn open_rxq(&self, q: usize) -> Result<Box<dyn RxQueue>, NetdevError> {
        if q != 0 {
            return Err(NetdevError::NoSuchQueue {
                port: self.name.clone(),
                queue: q,
            });
        }
        if self.rx_taken.swap(true, Ordering::AcqRel) {
            return Err(NetdevError::QueueBusy {
                port: self.name.clone(),
                queue: q,
            });
        }
        Ok(Box::new(TapRxq {
            fd: self.fd.clone(),
            counters: self.counters.clone(),
            taken: self.rx_taken.clone(),
            pool: self.pool.clone(),
            spare: None,
            spill: [0; 64],
        }))
    }

    /// Every handle writes to the one descriptor: the kernel serialises
    /// writes to a TAP device itself, so no lock is needed here.
    fn open_txq(&self, q: usize) -> Result<Box<dyn TxQueue>, NetdevError> {
        if q != 0 {
            return Err(NetdevError::NoSuchQueue {
                port: self.name.clone(),
                queue: q,
            });
        }
        Ok(Box::new(TapTxq {
            fd: self.fd.clone(),
            counters: self.counters.clone(),
        }))
    }

    fn stats(&self) -> NetdevStats {
        self.counters.get()
    }

    fn mac(&self) -> [u8; 6] {
        sys::if_hwaddr(self.ctl.as_fd(), &self.ifname).map_or([0; 6], |(mac, _)| mac)
    }

    fn mtu(&self) -> u32 {
        sys::if_mtu(self.ctl.as_fd(), &self.ifname).unwrap_or(0)
    }

    fn is_up(&self) -> bool {
        let want = (libc::IFF_UP | libc::IFF_RUNNING) as u32;
        sys::if_flags(self.ctl.as_fd(), &self.ifname).is_ok_and(|f| f & want == want)
    }
}

struct TapRxq {
    fd: Arc<OwnedFd>,
    counters: Arc<Counters>,
    taken: Arc<AtomicBool>,
    pool: Arc<PacketPool>,
    /// A buffer kept across polls so that an idle poll takes nothing from the pool.
    spare: Option<Packet>,
    /// Catches the bytes of a frame longer than a buffer, so that it is
    /// seen as too long instead of silently cut.
    spill: [u8; 64],
}

impl RxQueue for TapRxq {
    fn polls_by_syscall(&self) -> bool {
        true
    }

    fn recv(&mut self, batch: &mut Batch) -> usize {
        let mut d = NetdevStats::default();
        let before = batch.len();
        while !batch.is_full() {
            let Some(mut pkt) = self.spare.take().or_else(|| self.pool.alloc()) else {
                break;
            };
            let Ok(buf) = pkt.extend(DATA_ROOM) else {
                break;
            };
            let more = match sys::readv2(self.fd.as_fd(), buf, &mut self.spill) {
                Ok(n) if (1..=DATA_ROOM).contains(&n) => {
                    pkt.truncate(n);
                    d.rx_packets += 1;
                    d.rx_bytes += n as u64;
                    let _ = batch.push(pkt);
                    continue;
                }
                // Longer than a buffer: dropped; the next frame may be fine.
                Ok(n) if n > DATA_ROOM => {
                    d.rx_dropped += 1;
                    true
                }
                Ok(_) => false,
                Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => false,
                Err(_) => {
                    d.rx_errors += 1;
                    false
                }
            };
            pkt.truncate(0);
            self.spare = Some(pkt);
            if !more {
                break;
            }
        }
        self.counters.add(&d);
        batch.len() - before
    }
}

impl Drop for TapRxq {
    fn drop(&mut self) {
        self.taken.store(false, Ordering::Release);
    }
}

struct TapTxq {
    fd: Arc<OwnedFd>,
    counters: Arc<Counters>,
}

impl TxQueue for TapTxq {
    fn send(&mut self, batch: &mut Batch) {
        let mut d = NetdevStats::default();
        let pkts = batch.packets();
        for (i, p) in pkts.iter().enumerate() {
            match sys::write(self.fd.as_fd(), p.data()) {
                Ok(_) => {
                    d.tx_packets += 1;
                    d.tx_bytes += p.len() as u64;
                }
                Err(e) => match e.raw_os_error().unwrap_or(0) {
                    // This frame is malformed (e.g. shorter than a header).
                    libc::EINVAL | libc::EMSGSIZE => d.tx_errors += 1,
                    // Device down (EIO) or out of memory: the rest is lost.
                    libc::EIO | libc::EAGAIN | libc::ENOBUFS | libc::ENOMEM => {
                        d.tx_dropped += (pkts.len() - i) as u64;
                        break;
                    }
                    _ => {
                        d.tx_errors += (pkts.len() - i) as u64;
                        break;
                    }
                },
            }
        }
        self.counters.add(&d);
        batch.clear();
    }
}
