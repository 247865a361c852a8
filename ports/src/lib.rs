//! fvs netdev drivers. Each driver implements
//! [`fvs_datapath::netdev::Netdev`]; nearly all `unsafe` of the project
//! lives here, each block with a SAFETY comment.
//!
//! [`open`] makes a port from an Interface's `type` and `options`, as the
//! daemon's reconciliation does.

use std::collections::BTreeMap;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use fvs_datapath::netdev::{Netdev, NetdevStats};
use fvs_datapath::packet::PacketPool;
use thiserror::Error;

pub mod memory;
pub mod offload;
mod sys;
pub mod system;
pub mod tap;
pub mod vfio;
pub mod vhost;

pub use system::SystemPort;
pub use tap::TapPort;

/// For `type=dpdkvhostuser` (fvs is the vhost-user server), the daemon
/// passes the socket path it chose (`<rundir>/<vhost-sock-dir>/<port>`, as
/// OVS places it) in the options under this key.
pub const VHOST_SOCKET_OPTION: &str = "fvs:vhost-socket-path";

/// Why a port could not be opened. Each message is one line that names
/// the port and the cause.
#[derive(Debug, Error)]
pub enum PortError {
    /// The kernel interface does not exist (OVS's wording, as in the
    /// Interface `error` column).
    #[error("could not open network device {ifname} (No such device)")]
    NoSuchDevice { port: String, ifname: String },
    /// The interface name is not one the kernel accepts.
    #[error("{port}: invalid interface name \"{ifname}\": {why}")]
    InvalidName {
        port: String,
        ifname: String,
        why: &'static str,
    },
    /// A switch port needs an Ethernet device (not loopback, not an L3 tunnel).
    #[error("{port}: \"{ifname}\" is not an Ethernet device")]
    NotEthernet { port: String, ifname: String },
    /// The process lacks a capability.
    #[error("{port}: permission denied ({what}); fvs-vswitchd needs root or CAP_NET_ADMIN and CAP_NET_RAW")]
    Permission { port: String, what: &'static str },
    /// Another process or port holds the device, or the name is taken by
    /// another kind of device.
    #[error("{port}: device \"{ifname}\" is busy ({why})")]
    Busy {
        port: String,
        ifname: String,
        why: &'static str,
    },
    /// OVS's wording; fvs knows system, tap, internal, dpdk and memory.
    #[error("could not create netdev {port} of unknown type {kind}")]
    UnknownType { port: String, kind: String },
    #[error("{port}: type=dpdk needs options:dpdk-devargs, e.g. net_af_packet0,iface=eth1 or net_tap0,iface=tap1")]
    MissingDevargs { port: String },
    #[error("{port}: bad dpdk-devargs \"{devargs}\": {why}")]
    BadDevargs {
        port: String,
        devargs: String,
        why: String,
    },
    /// A NIC named by its PCI address could not be opened through VFIO.
    #[error("{port}: {source}")]
    Vfio {
        port: String,
        source: vfio::VfioError,
    },
    /// A vhost-user port could not be set up (socket, options).
    #[error("{port}: {why}")]
    Vhost { port: String, why: String },
    #[error("{port}: bad option {key}=\"{value}\": {why}")]
    BadOption {
        port: String,
        key: String,
        value: String,
        why: &'static str,
    },
    /// Any other failure of a system call.
    #[error("{port}: {what}: {source}")]
    Os {
        port: String,
        what: &'static str,
        source: io::Error,
    },
}

/// Classifies the failure of system call `what` on interface `ifname`.
pub(crate) fn os_error(port: &str, ifname: &str, what: &'static str, e: io::Error) -> PortError {
    let (port, ifname) = (port.to_string(), ifname.to_string());
    match e.raw_os_error().unwrap_or(0) {
        libc::ENODEV | libc::ENXIO => PortError::NoSuchDevice { port, ifname },
        libc::EPERM | libc::EACCES => PortError::Permission { port, what },
        libc::EBUSY => PortError::Busy {
            port,
            ifname,
            why: "in use by another process or port",
        },
        _ => PortError::Os {
            port,
            what,
            source: e,
        },
    }
}

/// Traffic counters of one queue. Updated once per batch by the queue's
/// thread and read by anyone.
#[derive(Default)]
pub(crate) struct Counters {
    rx_packets: AtomicU64,
    rx_bytes: AtomicU64,
    rx_dropped: AtomicU64,
    rx_errors: AtomicU64,
    tx_packets: AtomicU64,
    tx_bytes: AtomicU64,
    tx_dropped: AtomicU64,
    tx_errors: AtomicU64,
}

impl Counters {
    pub(crate) fn add(&self, d: &NetdevStats) {
        let pairs = [
            (&self.rx_packets, d.rx_packets),
            (&self.rx_bytes, d.rx_bytes),
            (&self.rx_dropped, d.rx_dropped),
            (&self.rx_errors, d.rx_errors),
            (&self.tx_packets, d.tx_packets),
            (&self.tx_bytes, d.tx_bytes),
            (&self.tx_dropped, d.tx_dropped),
            (&self.tx_errors, d.tx_errors),
        ];
        for (c, v) in pairs {
            if v != 0 {
                c.fetch_add(v, Ordering::Relaxed);
            }
        }
    }

    pub(crate) fn get(&self) -> NetdevStats {
        let l = |c: &AtomicU64| c.load(Ordering::Relaxed);
        NetdevStats {
            rx_packets: l(&self.rx_packets),
            rx_bytes: l(&self.rx_bytes),
            rx_dropped: l(&self.rx_dropped),
            rx_errors: l(&self.rx_errors),
            tx_packets: l(&self.tx_packets),
            tx_bytes: l(&self.tx_bytes),
            tx_dropped: l(&self.tx_dropped),
            tx_errors: l(&self.tx_errors),
            tx_retries: 0,
        }
    }
}

/// What a `dpdk-devargs` value names, mapped onto the kernel drivers here
/// so that `type=dpdk` ports work on a machine without a VFIO NIC.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DpdkDevice {
    /// `net_af_packetN,iface=IF[,qpairs=N]`: a [`SystemPort`] on IF with
    /// N queues. DPDK's ring-shape arguments (blocksz, framesz, framecnt,
    /// qdisc_bypass, fanout_mode) are accepted and ignored.
    AfPacket { iface: String, qpairs: usize },
    /// `net_tapN[,iface=IF][,mac=ADDR|fixed]`: a [`TapPort`] (IF defaults
    /// to `dtapN`, as in DPDK).
    Tap { iface: String, mac: Option<[u8; 6]> },
    /// A PCI address: a NIC for VFIO.
    Pci(String),
}

impl DpdkDevice {
    /// Parses `devargs`; the error says what is wrong with it.
    pub fn parse(devargs: &str) -> Result<DpdkDevice, String> {
        let mut parts = devargs.trim().split(',');
        let dev = parts.next().unwrap_or_default();
        if is_pci_address(dev) {
            return Ok(DpdkDevice::Pci(dev.to_string()));
        }
        let (driver, index) = split_index(dev);
        let mut args = BTreeMap::new();
        for a in parts {
            let (k, v) = a.split_once('=').unwrap_or((a, ""));
            if k.is_empty() || args.insert(k, v).is_some() {
                return Err(format!("bad or repeated argument \"{a}\""));
            }
        }
        let check = |known: &[&str]| match args.keys().find(|k| !known.contains(k)) {
            Some(k) => Err(format!(
                "unknown argument \"{k}\" for {driver} (known: {})",
                known.join(", ")
            )),
            None => Ok(()),
        };
        match driver {
            "net_af_packet" | "eth_af_packet" => {
                check(&["iface", "qpairs", "blocksz", "framesz", "framecnt", "qdisc_bypass", "fanout_mode"])?;
                let iface = args.get("iface").filter(|v| !v.is_empty());
                let iface = iface.ok_or(format!("{dev} needs iface=IF"))?.to_string();
                let qpairs = match args.get("qpairs") {
                    None => 1,
                    Some(q) => q
                        .parse::<usize>()
                        .ok()
                        .filter(|q| (1..=16).contains(q))
                        .ok_or(format!("qpairs={q} is not a number from 1 to 16"))?,
                };
                Ok(DpdkDevice::AfPacket { iface, qpairs })
            }
            "net_tap" => {
                check(&["iface", "mac"])?;
                let iface = match args.get("iface") {
                    Some(i) if !i.is_empty() => i.to_string(),
                    Some(_) => return Err("iface= needs a name".into()),
                    None => format!("dtap{}", index.unwrap_or(0)),
                };
                let mac = match args.get("mac") {
                    None => None,
                    // DPDK's fixed address: "dtap" in ASCII, then the index.
                    Some(&"fixed") => Some([0x00, 0x64, 0x74, 0x61, 0x70, index.unwrap_or(0) as u8]),
                    Some(m) => Some(parse_mac(m).ok_or(format!("mac={m} is not an Ethernet address"))?),
                };
                Ok(DpdkDevice::Tap { iface, mac })
            }
            _ => Err(format!(
                "unsupported device \"{dev}\"; fvs maps net_af_packetN,iface=IF and net_tapN,iface=IF onto kernel interfaces"
            )),
        }
    }
}

/// `net_tap12` → ("net_tap", Some(12)).
fn split_index(dev: &str) -> (&str, Option<u32>) {
    let driver = dev.trim_end_matches(|c: char| c.is_ascii_digit());
    (driver, dev[driver.len()..].parse().ok())
}

/// `0000:01:00.0` or `01:00.0` (domain, bus, device, function).
fn is_pci_address(s: &str) -> bool {
    let hex = |p: &str, n: usize| p.len() == n && p.bytes().all(|b| b.is_ascii_hexdigit());
    let Some((rest, func)) = s.rsplit_once('.') else {
        return false;
    };
    let fields: Vec<&str> = rest.split(':').collect();
    let bdf = match fields.as_slice() {
        [d, b, dv] => hex(d, 4) && hex(b, 2) && hex(dv, 2),
        [b, dv] => hex(b, 2) && hex(dv, 2),
        _ => false,
    };
    bdf && func.len() == 1 && matches!(func.as_bytes()[0], b'0'..=b'7')
}

fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut parts = s.split(':');
    for b in &mut mac {
        let p = parts.next()?;
        if p.is_empty() || p.len() > 2 {
            return None;
        }
        *b = u8::from_str_radix(p, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

fn n_rxq_option(port: &str, options: &BTreeMap<String, String>) -> Result<usize, PortError> {
    let Some(v) = options.get("n_rxq") else {
        return Ok(1);
    };
    v.parse::<usize>()
        .ok()
        .filter(|n| (1..=64).contains(n))
        .ok_or_else(|| PortError::BadOption {
            port: port.into(),
            key: "n_rxq".into(),
            value: v.clone(),
            why: "not a number from 1 to 64",
        })
}

/// Opens port `name` of type `kind` (an Interface's `type` column, `""`
/// meaning `system` as in OVS) with its `options`; received packets are put
/// in buffers of `pool`.
///
/// `system`: the existing interface `name` (`options:n_rxq` queues).
/// `tap`: a TAP device `name`, created if needed. `internal`: the same,
/// for a bridge's own port. `memory`: an in-memory port. `dpdk`: the
/// device `options:dpdk-devargs` names ([`DpdkDevice`]).
pub fn open(
    kind: &str,
    name: &str,
    options: &BTreeMap<String, String>,
    pool: Arc<PacketPool>,
) -> Result<Arc<dyn Netdev>, PortError> {
    Ok(match kind {
        "" | "system" => Arc::new(SystemPort::open(
            name,
            name,
            n_rxq_option(name, options)?,
            pool,
        )?),
        "tap" | "internal" => {
            Arc::new(TapPort::create(name, name, pool)?.with_kind(kind_str(kind)))
        }
        "memory" => memory::MemoryPort::new(name, n_rxq_option(name, options)?),
        "dpdk" => {
            let devargs = options
                .get("dpdk-devargs")
                .ok_or_else(|| PortError::MissingDevargs { port: name.into() })?;
            let bad = |why| PortError::BadDevargs {
                port: name.into(),
                devargs: devargs.clone(),
                why,
            };
            match DpdkDevice::parse(devargs).map_err(bad)? {
                DpdkDevice::AfPacket { iface, qpairs } => {
                    let n_rxq = match options.get("n_rxq") {
                        Some(_) => n_rxq_option(name, options)?,
                        None => qpairs,
                    };
                    Arc::new(SystemPort::open(name, &iface, n_rxq, pool)?.with_kind("dpdk"))
                }
                DpdkDevice::Tap { iface, mac } => {
                    let tap = TapPort::create(name, &iface, pool)?.with_kind("dpdk");
                    if let Some(mac) = mac {
                        tap.set_mac(mac)?;
                    }
                    Arc::new(tap)
                }
                DpdkDevice::Pci(addr) => {
                    Arc::new(vfio::VfioPort::open(name, &addr, options, pool).map_err(
                        |source| PortError::Vfio {
                            port: name.into(),
                            source,
                        },
                    )?)
                }
            }
        }
        "dpdkvhostuser" | "dpdkvhostuserclient" => {
            Arc::new(vhost::VhostPort::from_options(kind, name, options, pool)?)
        }
        other => {
            return Err(PortError::UnknownType {
                port: name.into(),
                kind: other.into(),
            })
        }
    })
}

fn kind_str(kind: &str) -> &'static str {
    if kind == "internal" {
        "internal"
    } else {
        "tap"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devargs_map_onto_kernel_drivers() {
        let p = |s| DpdkDevice::parse(s);
        assert_eq!(
            p("net_af_packet0,iface=veth1"),
            Ok(DpdkDevice::AfPacket {
                iface: "veth1".into(),
                qpairs: 1
            })
        );
        assert_eq!(
            p("net_af_packet3,iface=eth0,qpairs=4,blocksz=4096,framecnt=512,qdisc_bypass=1"),
            Ok(DpdkDevice::AfPacket {
                iface: "eth0".into(),
                qpairs: 4
            })
        );
        assert_eq!(
            p("eth_af_packet,iface=x"),
            Ok(DpdkDevice::AfPacket {
                iface: "x".into(),
                qpairs: 1
            })
        );
        assert_eq!(
            p("net_tap0,iface=tap9"),
            Ok(DpdkDevice::Tap {
                iface: "tap9".into(),
                mac: None
            })
        );
        assert_eq!(
            p("net_tap2,mac=fixed"),
            Ok(DpdkDevice::Tap {
                iface: "dtap2".into(),
                mac: Some([0, 0x64, 0x74, 0x61, 0x70, 2])
            })
        );
        assert_eq!(
            p("net_tap1,iface=t,mac=02:00:00:00:00:0a"),
            Ok(DpdkDevice::Tap {
                iface: "t".into(),
                mac: Some([2, 0, 0, 0, 0, 10])
            })
        );
        assert_eq!(
            p("0000:01:00.0"),
            Ok(DpdkDevice::Pci("0000:01:00.0".into()))
        );
        assert_eq!(
            p("01:00.1,representor=[0]"),
            Ok(DpdkDevice::Pci("01:00.1".into()))
        );
    }

    #[test]
    fn bad_devargs_say_why() {
        let e = |s| DpdkDevice::parse(s).unwrap_err();
        assert!(e("net_af_packet0").contains("needs iface=IF"));
        assert!(e("net_af_packet0,iface=").contains("needs iface=IF"));
        assert!(e("net_af_packet0,iface=a,qpairs=0").contains("qpairs=0"));
        assert!(e("net_af_packet0,iface=a,bogus=1").contains("unknown argument \"bogus\""));
        assert!(e("net_af_packet0,iface=a,iface=b").contains("repeated"));
        assert!(e("net_tap0,mac=zz").contains("mac=zz"));
        assert!(e("net_tap0,persist").contains("unknown argument \"persist\""));
        assert!(e("net_vhost0,iface=/tmp/s").contains("unsupported device \"net_vhost0\""));
        assert!(e("0000:01:00.8").contains("unsupported device"));
        assert!(e("").contains("unsupported device"));
    }

    #[test]
    fn factory_errors_name_the_port() {
        let pool = Arc::new(PacketPool::new(8, false).unwrap());
        let opts = |kv: &[(&str, &str)]| {
            kv.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let err = |kind, o: BTreeMap<String, String>| {
            open(kind, "p1", &o, pool.clone())
                .err()
                .unwrap()
                .to_string()
        };
        let e = err("dpdk", opts(&[("dpdk-devargs", "0000:01:00.0")]));
        assert!(
            e.starts_with("p1: ") && e.contains("0000:01:00.0") && !e.contains('\n'),
            "{e}"
        );
        let e = err("dpdk", opts(&[]));
        assert!(e.starts_with("p1: ") && e.contains("dpdk-devargs"), "{e}");
        let e = err("dpdk", opts(&[("dpdk-devargs", "net_ring0")]));
        assert!(e.starts_with("p1: bad dpdk-devargs \"net_ring0\""), "{e}");
        let e = err("vxlan", opts(&[]));
        assert!(e.contains("of unknown type vxlan"), "{e}");
        let e = err("memory", opts(&[("n_rxq", "0")]));
        assert!(e.starts_with("p1: bad option n_rxq=\"0\""), "{e}");
        let m = open("memory", "m0", &opts(&[("n_rxq", "2")]), pool.clone()).unwrap();
        assert_eq!((m.kind(), m.n_rxq()), ("memory", 2));
    }

    #[test]
    fn interface_names_are_checked() {
        assert!(sys::check_ifname("veth0").is_ok());
        assert!(sys::check_ifname("").is_err());
        assert!(sys::check_ifname("a23456789012345").is_ok());
        assert!(sys::check_ifname("a234567890123456").is_err());
        assert!(sys::check_ifname("a/b").is_err());
        assert!(sys::check_ifname("a b").is_err());
    }
}
