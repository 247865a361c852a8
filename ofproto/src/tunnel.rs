//! Userspace tunnelling state, as OVS keeps it for its netdev datapath:
//! tunnel ports and their configuration (`type=vxlan` options), the
//! datapath tunnel ports they share (`vxlan_sys_4789`), the IP devices
//! (bridge internal ports and the addresses the kernel gave them), the
//! route table (`ovs/route/*`) and the neighbour cache (`tnl/neigh/*`).
//!
//! Translation reads all of it when a packet goes out of a tunnel port
//! (route, neighbour, header) or reaches a local VTEP address (pop), and
//! writes the neighbour cache when ARP replies and neighbour advertisements
//! pass by (snooping). Every change that can alter a decision is logged
//! as [`crate::ofproto::Change::Tunnel`], so the megaflows made from the
//! old state are revalidated.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::time::{Duration, Instant};

use fvs_datapath::key::{self, ofs, FlowKey};
use fvs_datapath::tunnel::{TUN_FLAGS_PUBLIC, VXLAN_PORT};
use thiserror::Error;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

// ---- tunnel port configuration ----

/// Where a tunnel's packets go (`options:remote_ip`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Remote {
    Ip(IpAddr),
    /// From the flow's `tun_dst` / `tun_ipv6_dst`.
    Flow,
}

/// The tunnel's own address (`options:local_ip`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Local {
    /// The route's source address.
    Auto,
    Ip(IpAddr),
    /// From the flow's `tun_src` / `tun_ipv6_src`.
    Flow,
}

/// A VNI (`key`, `in_key`, `out_key`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Key {
    Fixed(u64),
    /// From (out) or into (in) the flow's `tun_id`.
    Flow,
}

/// `tos` and `ttl`: a number or `inherit` (from the inner packet).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Inherit {
    Fixed(u8),
    Inherit,
}

/// A `type=vxlan` interface's options.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TunnelConfig {
    pub remote: Remote,
    pub local: Local,
    pub in_key: Key,
    pub out_key: Key,
    pub dst_port: u16,
    pub tos: Inherit,
    pub ttl: Inherit,
    /// `df_default`: set "don't fragment" in the outer IPv4 header.
    pub df: bool,
    /// `csum`: UDP checksums over IPv4 (IPv6 always has them).
    pub csum: bool,
}

impl Default for TunnelConfig {
    fn default() -> Self {
        TunnelConfig {
            remote: Remote::Flow,
            local: Local::Auto,
            in_key: Key::Fixed(0),
            out_key: Key::Fixed(0),
            dst_port: VXLAN_PORT,
            tos: Inherit::Fixed(0),
            ttl: Inherit::Fixed(DEFAULT_TTL),
            df: true,
            csum: false,
        }
    }
}

/// The outer TTL unless `options:ttl` says otherwise (OVS's default).
pub const DEFAULT_TTL: u8 = 64;

/// Why a tunnel interface's options were refused (OVS's wording where it
/// has one; the Interface `error` column shows it).
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum TunnelConfigError {
    #[error("{port}: vxlan type requires valid 'remote_ip' argument")]
    MissingRemote { port: String },
    #[error("{port}: bad vxlan '{key}' \"{value}\"")]
    BadValue {
        port: String,
        key: String,
        value: String,
    },
    #[error("{port}: unknown vxlan argument '{key}'")]
    Unknown { port: String, key: String },
    #[error("{port}: remote_ip and local_ip are of different address families")]
    MixedFamilies { port: String },
}

fn parse_key(v: &str) -> Option<Key> {
    if v == "flow" {
        return Some(Key::Flow);
    }
    let n = match v.strip_prefix("0x").or_else(|| v.strip_prefix("0X")) {
        Some(h) => u64::from_str_radix(h, 16).ok()?,
        None => v.parse::<u64>().ok()?,
    };
    // VXLAN carries 24 bits.
    (n <= 0x00ff_ffff).then_some(Key::Fixed(n))
}

fn parse_inherit(v: &str) -> Option<Inherit> {
    if v == "inherit" {
        return Some(Inherit::Inherit);
    }
    v.parse::<u8>().ok().map(Inherit::Fixed)
}

fn parse_bool(v: &str) -> Option<bool> {
    match v {
        "true" => Some(true),
        "false" => Some(false),
        _ => None,
    }
}

impl TunnelConfig {
    /// Reads a `type=vxlan` interface's `options` (port `port`).
    pub fn parse(
        port: &str,
        options: &BTreeMap<String, String>,
    ) -> Result<TunnelConfig, TunnelConfigError> {
        let bad = |k: &str, v: &str| TunnelConfigError::BadValue {
            port: port.to_string(),
            key: k.to_string(),
            value: v.to_string(),
        };
        let mut c = TunnelConfig::default();
        let mut remote = None;
        let (mut key, mut in_key, mut out_key) = (None, None, None);
        for (k, v) in options {
            match k.as_str() {
                "remote_ip" => {
                    remote = Some(if v == "flow" {
                        Remote::Flow
                    } else {
                        Remote::Ip(v.parse().map_err(|_| bad(k, v))?)
                    })
                }
                "local_ip" => {
                    c.local = if v == "flow" {
                        Local::Flow
                    } else {
                        Local::Ip(v.parse().map_err(|_| bad(k, v))?)
                    }
                }
                "key" => key = Some(parse_key(v).ok_or_else(|| bad(k, v))?),
                "in_key" => in_key = Some(parse_key(v).ok_or_else(|| bad(k, v))?),
                "out_key" => out_key = Some(parse_key(v).ok_or_else(|| bad(k, v))?),
                "dst_port" => {
                    c.dst_port = v
                        .parse::<u16>()
                        .ok()
                        .filter(|&p| p != 0)
                        .ok_or_else(|| bad(k, v))?
                }
                "tos" => c.tos = parse_inherit(v).ok_or_else(|| bad(k, v))?,
                "ttl" => {
                    c.ttl = parse_inherit(v)
                        .filter(|t| *t != Inherit::Fixed(0))
                        .ok_or_else(|| bad(k, v))?
                }
                "df_default" => c.df = parse_bool(v).ok_or_else(|| bad(k, v))?,
                "csum" => c.csum = parse_bool(v).ok_or_else(|| bad(k, v))?,
                _ => {
                    return Err(TunnelConfigError::Unknown {
                        port: port.to_string(),
                        key: k.clone(),
                    })
                }
            }
        }
        c.remote = remote.ok_or_else(|| TunnelConfigError::MissingRemote {
            port: port.to_string(),
        })?;
        let key = key.unwrap_or(Key::Fixed(0));
        c.in_key = in_key.unwrap_or(key);
        c.out_key = out_key.unwrap_or(key);
        if let (Remote::Ip(r), Local::Ip(l)) = (c.remote, c.local) {
            if r.is_ipv4() != l.is_ipv4() {
                return Err(TunnelConfigError::MixedFamilies {
                    port: port.to_string(),
                });
            }
        }
        Ok(c)
    }

    /// The options as OVS's `dpif/show` lists them (`key=123, remote_ip=…`).
    pub fn describe(&self) -> String {
        let mut items = Vec::new();
        if self.csum {
            items.push("csum=true".to_string());
        }
        if self.dst_port != VXLAN_PORT {
            items.push(format!("dst_port={}", self.dst_port));
        }
        if !self.df {
            items.push("df_default=false".to_string());
        }
        let key = |k: Key| match k {
            Key::Fixed(n) => n.to_string(),
            Key::Flow => "flow".to_string(),
        };
        if self.in_key == self.out_key {
            if self.in_key != Key::Fixed(0) {
                items.push(format!("key={}", key(self.in_key)));
            }
        } else {
            items.push(format!("in_key={}", key(self.in_key)));
            items.push(format!("out_key={}", key(self.out_key)));
        }
        match self.local {
            Local::Auto => {}
            Local::Ip(ip) => items.push(format!("local_ip={ip}")),
            Local::Flow => items.push("local_ip=flow".to_string()),
        }
        items.push(match self.remote {
            Remote::Ip(ip) => format!("remote_ip={ip}"),
            Remote::Flow => "remote_ip=flow".to_string(),
        });
        match self.tos {
            Inherit::Fixed(0) => {}
            Inherit::Fixed(t) => items.push(format!("tos={t}")),
            Inherit::Inherit => items.push("tos=inherit".to_string()),
        }
        match self.ttl {
            Inherit::Fixed(DEFAULT_TTL) => {}
            Inherit::Fixed(t) => items.push(format!("ttl={t}")),
            Inherit::Inherit => items.push("ttl=inherit".to_string()),
        }
        items.sort();
        items.join(", ")
    }
}

// ---- ports ----

/// Traffic counters of a tunnel port (credited from its megaflows).
#[derive(Debug, Default)]
pub struct TnlPortStats {
    pub tx_packets: AtomicU64,
    pub tx_bytes: AtomicU64,
    /// Packets translation could not send (no route, no neighbour yet…).
    pub tx_dropped: AtomicU64,
    pub rx_packets: AtomicU64,
    pub rx_bytes: AtomicU64,
}

/// A tunnel port of a bridge.
#[derive(Debug)]
pub struct TnlPort {
    pub bridge: u32,
    pub ofport: u16,
    pub name: String,
    pub cfg: TunnelConfig,
    /// The datapath port its packets arrive on (shared by every tunnel
    /// port with the same `dst_port`).
    pub vport: u32,
    /// Packets from this port are never flooded to another port of the
    /// same group, nor sent there by MAC learning (full-mesh overlays).
    pub split_horizon: Option<String>,
    pub stats: Arc<TnlPortStats>,
}

/// A datapath tunnel port (`vxlan_sys_4789`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Vport {
    pub odp: u32,
    pub dst_port: u16,
    /// Tunnel ports using it.
    pub refs: usize,
}

impl Vport {
    pub fn name(&self) -> String {
        format!("vxlan_sys_{}", self.dst_port)
    }
}

// ---- devices and routes ----

/// A device with IP addresses: a bridge's internal port whose kernel
/// interface holds a tunnel endpoint address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IpDev {
    pub name: String,
    pub mac: [u8; 6],
    pub mtu: u32,
    /// Addresses with their prefix lengths.
    pub addrs: Vec<(IpAddr, u8)>,
}

impl IpDev {
    pub fn has_addr(&self, ip: IpAddr) -> bool {
        self.addrs.iter().any(|(a, _)| *a == ip)
    }

    /// Whether `ip` is on one of the device's subnets.
    pub fn on_link(&self, ip: IpAddr) -> bool {
        self.addrs
            .iter()
            .any(|(a, plen)| prefix_of(*a, *plen) == prefix_of(ip, *plen))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum RouteKind {
    /// Learned from the system (device addresses, kernel routes).
    Cached,
    /// Added with `ovs/route/add`.
    User,
    /// A device's own address.
    Local,
}

/// A route table entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    /// The network (host bits zero).
    pub prefix: IpAddr,
    pub plen: u8,
    pub dev: String,
    pub gw: Option<IpAddr>,
    pub src: IpAddr,
    pub mark: u32,
    pub kind: RouteKind,
}

impl Route {
    /// OVS's classifier priority: IPv4 routes live at plen + 96 of the
    /// IPv6 space; user routes win over cached ones, local ones over both.
    fn priority(&self) -> u32 {
        let plen = u32::from(self.plen) + if self.prefix.is_ipv4() { 96 } else { 0 };
        plen + match self.kind {
            RouteKind::Cached => 0,
            RouteKind::User => 32,
            RouteKind::Local => 64,
        }
    }

    fn matches(&self, dst: IpAddr, mark: u32) -> bool {
        self.mark == mark
            && self.prefix.is_ipv4() == dst.is_ipv4()
            && prefix_of(dst, self.plen) == self.prefix
    }

    /// One line of `ovs/route/show`.
    pub fn format(&self) -> String {
        let mut s = String::from(match self.kind {
            RouteKind::User => "User: ",
            _ => "Cached: ",
        });
        let _ = write!(s, "{}/{}", self.prefix, self.plen);
        if self.mark != 0 {
            let _ = write!(s, " MARK {}", self.mark);
        }
        let _ = write!(s, " dev {}", self.dev);
        if let Some(gw) = self.gw {
            let _ = write!(s, " GW {gw}");
        }
        let _ = write!(s, " SRC {}", self.src);
        if self.kind == RouteKind::Local {
            s.push_str(" local");
        }
        s
    }
}

/// `ip` with all but the first `plen` bits zero.
pub fn prefix_of(ip: IpAddr, plen: u8) -> IpAddr {
    match ip {
        IpAddr::V4(a) => {
            let m = if plen == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(plen.min(32)))
            };
            IpAddr::V4(Ipv4Addr::from(u32::from(a) & m))
        }
        IpAddr::V6(a) => {
            let m = if plen == 0 {
                0
            } else {
                u128::MAX << (128 - u32::from(plen.min(128)))
            };
            IpAddr::V6(Ipv6Addr::from(u128::from(a) & m))
        }
    }
}

/// Parses `ADDR/PLEN` (OVS's `ip_parse_cidr`: a bare address is a host route).
pub fn parse_cidr(s: &str) -> Option<(IpAddr, u8)> {
    let (a, p) = match s.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (s, None),
    };
    let ip: IpAddr = a.parse().ok()?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let plen = match p {
        Some(p) => p.parse::<u8>().ok().filter(|&p| p <= max)?,
        None => max,
    };
    Some((ip, plen))
}

/// Parses `aa:bb:cc:dd:ee:ff`.
pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut m = [0u8; 6];
    let mut parts = s.split(':');
    for b in &mut m {
        let p = parts.next()?;
        if p.is_empty() || p.len() > 2 {
            return None;
        }
        *b = u8::from_str_radix(p, 16).ok()?;
    }
    parts.next().is_none().then_some(m)
}

pub fn format_mac(m: &[u8; 6]) -> String {
    format!(
        "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        m[0], m[1], m[2], m[3], m[4], m[5]
    )
}

// ---- the neighbour cache ----

/// OVS's neighbour cache aging (`NEIGH_ENTRY_DEFAULT_IDLE_TIME_MS`).
pub const NEIGH_AGING: Duration = Duration::from_secs(15 * 60);
/// Longest aging `tnl/neigh/aging` accepts.
const NEIGH_MAX_AGING_SECS: u64 = 3600;
/// Fewest time between two requests for the same neighbour.
const REQUEST_INTERVAL: Duration = Duration::from_millis(500);

#[derive(Clone, Copy, Debug)]
struct Neigh {
    mac: [u8; 6],
    expires: Instant,
}

struct NeighCache {
    /// By (bridge, address).
    entries: BTreeMap<(String, IpAddr), Neigh>,
    aging: Duration,
}

/// An ARP request or neighbour solicitation to send out of a bridge, as
/// if its internal port had sent it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NeighRequest {
    pub bridge: String,
    /// Datapath port of the port it comes from (the underlay bridge's
    /// internal port).
    pub odp_port: u32,
    pub target: IpAddr,
    pub frame: Vec<u8>,
}

#[derive(Default)]
struct Requests {
    pending: Vec<NeighRequest>,
    last: HashMap<(String, IpAddr), Instant>,
}

// ---- what translation records ----

/// What a decision took from the tunnel state (for revalidation and counters).
#[derive(Debug, Default)]
pub struct TnlDeps {
    /// The decision read tunnel state: any change to it makes it stale.
    pub used: bool,
    /// A next hop's MAC was unknown: retry after the request.
    pub neigh_miss: bool,
    /// (bridge, next hop) entries used: kept fresh while traffic flows.
    pub neighs: Vec<(String, IpAddr)>,
    /// Tunnel ports sent to (`true`) or that could not send (`false`).
    pub tx: Vec<(Arc<TnlPortStats>, bool)>,
    /// The tunnel port the packet arrived on.
    pub rx: Option<Arc<TnlPortStats>>,
    /// Bridges other than the packet's that translation went through (the
    /// underlay bridge of a tunnel): any change to them makes it stale.
    pub bridges: Vec<u32>,
}

/// Where a decapsulated packet belongs.
#[derive(Clone, Debug)]
pub struct Receive {
    pub bridge: u32,
    pub ofport: u16,
    pub stats: Arc<TnlPortStats>,
}

// ---- the whole state ----

#[derive(Default)]
struct State {
    ports: Vec<Arc<TnlPort>>,
    vports: BTreeMap<u16, Vport>,
    devs: BTreeMap<String, IpDev>,
    /// Routes the system gave (kernel routes through IP devices).
    kernel: Vec<Route>,
    /// Those and the routes of the devices' own subnets and addresses.
    system: Vec<Route>,
    user: Vec<Route>,
}

impl State {
    /// Recomputes the system routes; returns whether they changed.
    fn rebuild(&mut self) -> bool {
        let mut routes = self.kernel.clone();
        for d in self.devs.values() {
            for &(addr, plen) in &d.addrs {
                routes.push(Route {
                    prefix: prefix_of(addr, plen),
                    plen,
                    dev: d.name.clone(),
                    gw: None,
                    src: addr,
                    mark: 0,
                    kind: RouteKind::Cached,
                });
                routes.push(Route {
                    prefix: addr,
                    plen: if addr.is_ipv4() { 32 } else { 128 },
                    dev: d.name.clone(),
                    gw: None,
                    src: addr,
                    mark: 0,
                    kind: RouteKind::Local,
                });
            }
        }
        routes.sort_by(|a, b| {
            (a.prefix, a.plen, a.kind, &a.dev).cmp(&(b.prefix, b.plen, b.kind, &b.dev))
        });
        routes.dedup_by(|a, b| {
            a.prefix == b.prefix && a.plen == b.plen && a.kind == b.kind && a.mark == b.mark
        });
        if routes == self.system {
            return false;
        }
        self.system = routes;
        true
    }

    fn routes(&self) -> impl Iterator<Item = &Route> {
        self.system.iter().chain(self.user.iter())
    }
}

/// Every piece of tunnelling state of a switch.
pub struct Tunnels {
    state: RwLock<State>,
    neigh: Mutex<NeighCache>,
    requests: Mutex<Requests>,
    wake: Condvar,
    /// A translation met an unknown neighbour since the last retry.
    misses: AtomicBool,
    /// Something changed that makes tunnel decisions stale (the owner
    /// logs the change; see [`Tunnels::take_changed`]).
    changed: AtomicBool,
    /// The IP devices changed: any decision that output to a port may be
    /// stale (whether it terminates tunnels or snoops neighbours).
    changed_devices: AtomicBool,
}

impl Default for Tunnels {
    fn default() -> Self {
        Tunnels {
            state: RwLock::new(State::default()),
            neigh: Mutex::new(NeighCache {
                entries: BTreeMap::new(),
                aging: NEIGH_AGING,
            }),
            requests: Mutex::new(Requests::default()),
            wake: Condvar::new(),
            misses: AtomicBool::new(false),
            changed: AtomicBool::new(false),
            changed_devices: AtomicBool::new(false),
        }
    }
}

impl Tunnels {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether tunnel state changed since the last call (the change is the
    /// caller's to log).
    pub fn take_changed(&self) -> bool {
        self.changed.swap(false, Ordering::AcqRel)
    }

    /// Whether the IP devices changed since the last call (then every
    /// decision is stale, not only those that used tunnel state).
    pub fn take_changed_devices(&self) -> bool {
        self.changed_devices.swap(false, Ordering::AcqRel)
    }

    fn mark_changed(&self) {
        self.changed.store(true, Ordering::Release);
        self.wake.notify_all();
    }

    // ---- ports ----

    /// The datapath port of tunnels on UDP port `dst_port`, if any exists.
    pub fn vport_for(&self, dst_port: u16) -> Option<u32> {
        self.read().vports.get(&dst_port).map(|v| v.odp)
    }

    /// Adds a tunnel port; `alloc` gives a datapath port number if its
    /// `dst_port` has no datapath port yet. Returns the datapath port.
    pub(crate) fn add_port(
        &self,
        bridge: u32,
        ofport: u16,
        name: &str,
        cfg: TunnelConfig,
        split_horizon: Option<String>,
        alloc: impl FnOnce() -> u32,
    ) -> u32 {
        let mut st = self.write();
        let v = st.vports.entry(cfg.dst_port).or_insert_with(|| Vport {
            odp: alloc(),
            dst_port: cfg.dst_port,
            refs: 0,
        });
        v.refs += 1;
        let vport = v.odp;
        st.ports.push(Arc::new(TnlPort {
            bridge,
            ofport,
            name: name.to_string(),
            cfg,
            vport,
            split_horizon,
            stats: Arc::default(),
        }));
        vport
    }

    /// Removes the tunnel port `ofport` of `bridge` (if it is one).
    pub(crate) fn del_port(&self, bridge: u32, ofport: u16) -> Option<Arc<TnlPort>> {
        let mut st = self.write();
        let i = st
            .ports
            .iter()
            .position(|p| p.bridge == bridge && p.ofport == ofport)?;
        let p = st.ports.remove(i);
        if let Some(v) = st.vports.get_mut(&p.cfg.dst_port) {
            v.refs -= 1;
            if v.refs == 0 {
                st.vports.remove(&p.cfg.dst_port);
            }
        }
        Some(p)
    }

    /// Removes every tunnel port of `bridge`.
    pub(crate) fn del_bridge(&self, bridge: u32) {
        let ofports: Vec<u16> = self
            .read()
            .ports
            .iter()
            .filter(|p| p.bridge == bridge)
            .map(|p| p.ofport)
            .collect();
        for p in ofports {
            self.del_port(bridge, p);
        }
    }

    /// The tunnel port `ofport` of `bridge`, if it is one.
    pub fn port(&self, bridge: u32, ofport: u16) -> Option<Arc<TnlPort>> {
        self.read()
            .ports
            .iter()
            .find(|p| p.bridge == bridge && p.ofport == ofport)
            .cloned()
    }

    /// Every tunnel port.
    pub fn ports(&self) -> Vec<Arc<TnlPort>> {
        self.read().ports.clone()
    }

    /// The split-horizon group of port `ofport` of `bridge`.
    pub fn split_horizon(&self, bridge: u32, ofport: u16) -> Option<String> {
        self.port(bridge, ofport)
            .and_then(|p| p.split_horizon.clone())
    }

    /// Whether `odp` is a datapath tunnel port.
    pub fn is_vport(&self, odp: u32) -> bool {
        self.read().vports.values().any(|v| v.odp == odp)
    }

    /// The datapath tunnel port listening on UDP port `dst_port`.
    pub fn listening(&self, dst_port: u16) -> Option<u32> {
        self.vport_for(dst_port)
    }

    /// The tunnel port a packet decapsulated on datapath port
    /// `key.in_port()` belongs to: matched by the tunnel metadata as OVS's
    /// `tnl_find()` does, the most specific configuration first (fixed key
    /// before `key=flow`, fixed local address before any, fixed remote
    /// before `remote_ip=flow`).
    pub fn receive(&self, key: &FlowKey) -> Option<Receive> {
        let odp = key.in_port();
        let tun_id = u64::from_be_bytes(key.bytes(ofs::TUN_ID, 8).try_into().ok()?);
        let (src, dst) = tunnel_addrs(key);
        let st = self.read();
        let mut best: Option<(u8, &Arc<TnlPort>)> = None;
        for p in st.ports.iter().filter(|p| p.vport == odp) {
            let mut score = 0u8;
            match p.cfg.in_key {
                Key::Fixed(k) if k == tun_id => score += 4,
                Key::Fixed(_) => continue,
                Key::Flow => {}
            }
            match p.cfg.local {
                Local::Ip(l) if Some(l) == dst => score += 1,
                Local::Ip(_) => continue,
                Local::Auto | Local::Flow => {}
            }
            match p.cfg.remote {
                Remote::Ip(r) if Some(r) == src => score += 2,
                Remote::Ip(_) => continue,
                Remote::Flow => {}
            }
            if best.is_none_or(|(s, _)| score > s) {
                best = Some((score, p));
            }
        }
        best.map(|(_, p)| Receive {
            bridge: p.bridge,
            ofport: p.ofport,
            stats: p.stats.clone(),
        })
    }

    // ---- devices ----

    /// Replaces the IP devices (and the routes derived from them); returns
    /// whether anything changed.
    pub fn set_devices(&self, devs: Vec<IpDev>) -> bool {
        let mut st = self.write();
        let new: BTreeMap<String, IpDev> = devs.into_iter().map(|d| (d.name.clone(), d)).collect();
        if new == st.devs {
            return false;
        }
        st.devs = new;
        st.rebuild();
        drop(st);
        self.changed_devices.store(true, Ordering::Release);
        self.mark_changed();
        true
    }

    /// Adds or replaces one IP device.
    pub fn set_device(&self, dev: IpDev) {
        let mut devs: Vec<IpDev> = self.read().devs.values().cloned().collect();
        devs.retain(|d| d.name != dev.name);
        devs.push(dev);
        self.set_devices(devs);
    }

    pub fn device(&self, name: &str) -> Option<IpDev> {
        self.read().devs.get(name).cloned()
    }

    pub fn devices(&self) -> Vec<IpDev> {
        self.read().devs.values().cloned().collect()
    }

    // ---- routes ----

    /// Replaces the routes learned from the system (kernel routes through
    /// IP devices); the devices' own subnets and addresses are added to
    /// them. Returns whether the table changed.
    pub fn set_system_routes(&self, routes: Vec<Route>) -> bool {
        let mut st = self.write();
        st.kernel = routes;
        let changed = st.rebuild();
        drop(st);
        if changed {
            self.mark_changed();
        }
        changed
    }

    /// The source address `dev` has for reaching `dst` (the address of the
    /// longest subnet of `dev` that holds `dst`).
    fn source_for(st: &State, dev: &str, dst: IpAddr) -> Option<IpAddr> {
        let d = st.devs.get(dev)?;
        d.addrs
            .iter()
            .filter(|(a, plen)| {
                a.is_ipv4() == dst.is_ipv4() && prefix_of(*a, *plen) == prefix_of(dst, *plen)
            })
            .max_by_key(|(_, plen)| *plen)
            .map(|(a, _)| *a)
    }

    /// `ovs/route/add`: a user route. The source address comes from `src`
    /// or from the device's addresses (which must then reach the
    /// destination or the gateway).
    pub fn add_route(
        &self,
        prefix: IpAddr,
        plen: u8,
        dev: &str,
        gw: Option<IpAddr>,
        src: Option<IpAddr>,
        mark: u32,
    ) -> Result<(), String> {
        let mut st = self.write();
        let src = match src {
            Some(s) => {
                let ok = st.devs.get(dev).is_some_and(|d| d.has_addr(s));
                if !ok {
                    return Err("Error while inserting route.".into());
                }
                s
            }
            None => Self::source_for(&st, dev, prefix)
                .or_else(|| gw.and_then(|g| Self::source_for(&st, dev, g)))
                .ok_or("Error while inserting route.")?,
        };
        let r = Route {
            prefix: prefix_of(prefix, plen),
            plen,
            dev: dev.to_string(),
            gw,
            src,
            mark,
            kind: RouteKind::User,
        };
        st.user
            .retain(|u| !(u.prefix == r.prefix && u.plen == r.plen && u.mark == r.mark));
        st.user.push(r);
        drop(st);
        self.mark_changed();
        Ok(())
    }

    /// `ovs/route/del`.
    pub fn del_route(&self, prefix: IpAddr, plen: u8, mark: u32) -> bool {
        let mut st = self.write();
        let p = prefix_of(prefix, plen);
        let before = st.user.len();
        st.user
            .retain(|u| !(u.prefix == p && u.plen == plen && u.mark == mark));
        let removed = st.user.len() != before;
        drop(st);
        if removed {
            self.mark_changed();
        }
        removed
    }

    /// The route to `dst`: OVS's classifier lookup (highest priority).
    pub fn route_lookup(&self, dst: IpAddr, mark: u32) -> Option<Route> {
        self.read()
            .routes()
            .filter(|r| r.matches(dst, mark))
            .max_by_key(|r| r.priority())
            .cloned()
    }

    /// `ovs/route/show`.
    pub fn format_routes(&self) -> String {
        let st = self.read();
        let mut routes: Vec<&Route> = st.routes().collect();
        routes.sort_by_key(|r| std::cmp::Reverse(r.priority()));
        let mut s = String::from("Route Table:\n");
        for r in routes {
            s += &r.format();
            s.push('\n');
        }
        s
    }

    // ---- neighbours ----

    /// The MAC of `ip` as seen from `bridge` (refreshes the entry).
    pub fn neigh_lookup(&self, bridge: &str, ip: IpAddr) -> Option<[u8; 6]> {
        let mut n = lock(&self.neigh);
        let now = Instant::now();
        let aging = n.aging;
        let e = n.entries.get_mut(&(bridge.to_string(), ip))?;
        if e.expires <= now {
            return None;
        }
        e.expires = now + aging;
        Some(e.mac)
    }

    /// Keeps an entry in use alive (traffic through a megaflow that uses it).
    pub fn neigh_touch(&self, bridge: &str, ip: IpAddr) {
        let _ = self.neigh_lookup(bridge, ip);
    }

    /// Learns (or refreshes) `ip` at `mac` on `bridge`; returns whether the
    /// cache changed (then tunnel decisions are stale).
    pub fn neigh_set(&self, bridge: &str, ip: IpAddr, mac: [u8; 6]) -> bool {
        let changed = {
            let mut n = lock(&self.neigh);
            let expires = Instant::now() + n.aging;
            let k = (bridge.to_string(), ip);
            let changed = n.entries.get(&k).is_none_or(|e| e.mac != mac);
            n.entries.insert(k, Neigh { mac, expires });
            changed
        };
        if changed {
            self.mark_changed();
        }
        changed
    }

    /// `tnl/neigh/flush`: forgets every entry (of `bridge`, if given).
    pub fn neigh_flush(&self, bridge: Option<&str>) {
        let changed = {
            let mut n = lock(&self.neigh);
            let before = n.entries.len();
            n.entries.retain(|(b, _), _| bridge.is_some_and(|x| x != b));
            before != n.entries.len()
        };
        if changed {
            self.mark_changed();
        }
    }

    /// Removes expired entries; returns whether any went.
    pub fn neigh_expire(&self) -> bool {
        let now = Instant::now();
        let changed = {
            let mut n = lock(&self.neigh);
            let before = n.entries.len();
            n.entries.retain(|_, e| e.expires > now);
            before != n.entries.len()
        };
        if changed {
            self.mark_changed();
        }
        changed
    }

    /// `tnl/neigh/aging`: the aging time in seconds.
    pub fn neigh_aging(&self) -> u64 {
        lock(&self.neigh).aging.as_secs()
    }

    /// Sets the aging time (1..=3600 s); entries expire no later than that from now.
    pub fn set_neigh_aging(&self, secs: u64) -> Result<(), String> {
        if secs == 0 || secs > NEIGH_MAX_AGING_SECS {
            return Err("bad aging value".into());
        }
        let mut n = lock(&self.neigh);
        n.aging = Duration::from_secs(secs);
        let latest = Instant::now() + n.aging;
        for e in n.entries.values_mut() {
            e.expires = e.expires.min(latest);
        }
        Ok(())
    }

    /// `tnl/neigh/show`, as OVS prints it.
    pub fn format_neighbours(&self) -> String {
        let n = lock(&self.neigh);
        let now = Instant::now();
        let mut s = String::from(
            "IP                                            MAC                 Bridge\n\
             ==========================================================================\n",
        );
        for ((bridge, ip), e) in &n.entries {
            let ip = ip.to_string();
            let _ = write!(s, "{ip:<46}{}   {bridge}", format_mac(&e.mac));
            if e.expires <= now {
                s.push_str(" STALE");
            }
            s.push('\n');
        }
        s
    }

    // ---- neighbour requests ----

    /// Queues an ARP request (IPv4) or neighbour solicitation (IPv6) for
    /// `target` out of `bridge`'s port `odp_port` (MAC `smac`, address
    /// `src`), unless one went out very recently.
    pub(crate) fn request_neighbour(
        &self,
        bridge: &str,
        odp_port: u32,
        smac: [u8; 6],
        src: IpAddr,
        target: IpAddr,
    ) {
        self.misses.store(true, Ordering::Release);
        let frame = match (src, target) {
            (IpAddr::V4(s), IpAddr::V4(t)) => compose_arp_request(smac, s, t),
            (IpAddr::V6(s), IpAddr::V6(t)) => compose_nd_ns(smac, s, t),
            _ => return,
        };
        let mut r = lock(&self.requests);
        let now = Instant::now();
        let k = (bridge.to_string(), target);
        if r.last
            .get(&k)
            .is_some_and(|t| now.duration_since(*t) < REQUEST_INTERVAL)
        {
            return;
        }
        r.last.insert(k, now);
        r.last
            .retain(|_, t| now.duration_since(*t) < Duration::from_secs(60));
        r.pending.push(NeighRequest {
            bridge: bridge.to_string(),
            odp_port,
            target,
            frame,
        });
        drop(r);
        self.wake.notify_all();
    }

    /// Takes the queued requests, waiting up to `timeout` for one (or for
    /// a change of tunnel state).
    pub fn wait_requests(&self, timeout: Duration) -> Vec<NeighRequest> {
        let r = lock(&self.requests);
        let (mut r, _) = self
            .wake
            .wait_timeout_while(r, timeout, |r| {
                r.pending.is_empty() && !self.changed.load(Ordering::Acquire)
            })
            .unwrap_or_else(|e| e.into_inner());
        std::mem::take(&mut r.pending)
    }

    /// Whether a translation met an unknown neighbour since the last call.
    pub fn take_misses(&self) -> bool {
        self.misses.swap(false, Ordering::AcqRel)
    }

    // ---- appctl views ----

    /// `tnl/ports/show`.
    pub fn format_ports(&self) -> String {
        let st = self.read();
        let mut v: Vec<&Vport> = st.vports.values().collect();
        v.sort_by_key(|v| v.name());
        let mut s = String::from("Listening ports:\n");
        for v in v {
            let _ = writeln!(s, "{} ({}) ref_cnt={}", v.name(), v.odp, v.refs);
        }
        s
    }
}

/// The outer addresses of a decapsulated packet's key (IPv4 or IPv6).
pub fn tunnel_addrs(key: &FlowKey) -> (Option<IpAddr>, Option<IpAddr>) {
    let v4 = |at: usize| -> Option<IpAddr> {
        let b: [u8; 4] = key.bytes(at, 4).try_into().ok()?;
        (b != [0; 4]).then(|| IpAddr::V4(Ipv4Addr::from(b)))
    };
    let v6 = |at: usize| -> Option<IpAddr> {
        let b: [u8; 16] = key.bytes(at, 16).try_into().ok()?;
        (b != [0; 16]).then(|| IpAddr::V6(Ipv6Addr::from(b)))
    };
    match (v4(ofs::TUN_SRC), v4(ofs::TUN_DST)) {
        (None, None) => (v6(ofs::TUN_IPV6_SRC), v6(ofs::TUN_IPV6_DST)),
        (s, d) => (s, d),
    }
}

/// The megaflow bits a decapsulated packet's tunnel lookup looked at
/// (OVS's `tnl_wc_init()`): the key, the addresses, the public flags and
/// the TOS.
pub fn receive_mask(mask: &mut FlowKey) {
    mask.b[ofs::TUN_ID..ofs::TUN_ID + 8].fill(0xff);
    mask.b[ofs::TUN_SRC..ofs::TUN_DST + 4].fill(0xff);
    mask.b[ofs::TUN_IPV6_SRC..ofs::TUN_IPV6_DST + 16].fill(0xff);
    let f = mask.be16_at(ofs::TUN_FLAGS) | TUN_FLAGS_PUBLIC | key::TUN_FLAG_PRESENT;
    mask.set_be16(ofs::TUN_FLAGS, f);
    mask.b[ofs::TUN_TOS] = 0xff;
}

/// An ARP request for `target` from `smac`/`src`, broadcast (OVS's `compose_arp()`).
pub fn compose_arp_request(smac: [u8; 6], src: Ipv4Addr, target: Ipv4Addr) -> Vec<u8> {
    let mut f = Vec::with_capacity(42);
    f.extend_from_slice(&[0xff; 6]);
    f.extend_from_slice(&smac);
    f.extend_from_slice(&key::ETH_TYPE_ARP.to_be_bytes());
    f.extend_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1]);
    f.extend_from_slice(&smac);
    f.extend_from_slice(&src.octets());
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&target.octets());
    f
}

/// A neighbour solicitation for `target` to its solicited-node multicast
/// address, with our link-layer address (OVS's `compose_nd_ns()`).
pub fn compose_nd_ns(smac: [u8; 6], src: Ipv6Addr, target: Ipv6Addr) -> Vec<u8> {
    let t = target.octets();
    let mut dst = [0u8; 16];
    dst[0] = 0xff;
    dst[1] = 0x02;
    dst[11] = 0x01;
    dst[12] = 0xff;
    dst[13..16].copy_from_slice(&t[13..16]);
    let mut icmp = vec![135u8, 0, 0, 0, 0, 0, 0, 0];
    icmp.extend_from_slice(&t);
    icmp.extend_from_slice(&[1, 1]);
    icmp.extend_from_slice(&smac);
    let len = icmp.len() as u32;
    let mut sum = fvs_datapath::csum::sum16(0, &src.octets());
    sum = fvs_datapath::csum::sum16(sum, &dst);
    sum += len + u32::from(key::IPPROTO_ICMPV6);
    let c = fvs_datapath::csum::fold(fvs_datapath::csum::sum16(sum, &icmp));
    icmp[2..4].copy_from_slice(&c.to_be_bytes());
    let mut f = Vec::with_capacity(14 + 40 + icmp.len());
    f.extend_from_slice(&[0x33, 0x33, 0xff, t[13], t[14], t[15]]);
    f.extend_from_slice(&smac);
    f.extend_from_slice(&key::ETH_TYPE_IPV6.to_be_bytes());
    f.extend_from_slice(&[0x60, 0, 0, 0]);
    f.extend_from_slice(&(icmp.len() as u16).to_be_bytes());
    f.push(key::IPPROTO_ICMPV6);
    f.push(255);
    f.extend_from_slice(&src.octets());
    f.extend_from_slice(&dst);
    f.extend_from_slice(&icmp);
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn options() {
        let c =
            TunnelConfig::parse("t", &opts(&[("remote_ip", "1.1.2.92"), ("key", "123")])).unwrap();
        assert_eq!(c.remote, Remote::Ip("1.1.2.92".parse().unwrap()));
        assert_eq!((c.in_key, c.out_key), (Key::Fixed(123), Key::Fixed(123)));
        assert_eq!(c.describe(), "key=123, remote_ip=1.1.2.92");
        let c = TunnelConfig::parse(
            "t",
            &opts(&[("remote_ip", "flow"), ("key", "flow"), ("dst_port", "4790")]),
        )
        .unwrap();
        assert_eq!(c.describe(), "dst_port=4790, key=flow, remote_ip=flow");
        assert_eq!(
            TunnelConfig::parse("t", &opts(&[]))
                .unwrap_err()
                .to_string(),
            "t: vxlan type requires valid 'remote_ip' argument"
        );
        assert!(TunnelConfig::parse("t", &opts(&[("remote_ip", "x")])).is_err());
        assert!(
            TunnelConfig::parse("t", &opts(&[("remote_ip", "1.1.1.1"), ("key", "16777216")]))
                .is_err()
        );
        assert!(
            TunnelConfig::parse("t", &opts(&[("remote_ip", "1.1.1.1"), ("bogus", "1")])).is_err()
        );
        assert!(
            TunnelConfig::parse("t", &opts(&[("remote_ip", "1.1.1.1"), ("local_ip", "::1")]))
                .is_err()
        );
    }

    #[test]
    fn routes_by_priority() {
        let t = Tunnels::default();
        t.set_devices(vec![IpDev {
            name: "br-phy".into(),
            mac: [2, 0, 0, 0, 0, 1],
            mtu: 1500,
            addrs: vec![("172.31.1.1".parse().unwrap(), 24)],
        }]);
        t.set_system_routes(Vec::new());
        let r = t.route_lookup("172.31.1.7".parse().unwrap(), 0).unwrap();
        assert_eq!(
            (r.dev.as_str(), r.gw, r.src),
            ("br-phy", None, "172.31.1.1".parse().unwrap())
        );
        assert!(t.route_lookup("10.0.0.1".parse().unwrap(), 0).is_none());
        t.add_route(
            "10.0.0.0".parse().unwrap(),
            8,
            "br-phy",
            Some("172.31.1.254".parse().unwrap()),
            None,
            0,
        )
        .unwrap();
        let r = t.route_lookup("10.1.2.3".parse().unwrap(), 0).unwrap();
        assert_eq!(r.gw, Some("172.31.1.254".parse().unwrap()));
        assert_eq!(
            t.format_routes(),
            "Route Table:\nCached: 172.31.1.1/32 dev br-phy SRC 172.31.1.1 local\n\
             User: 10.0.0.0/8 dev br-phy GW 172.31.1.254 SRC 172.31.1.1\n\
             Cached: 172.31.1.0/24 dev br-phy SRC 172.31.1.1\n"
        );
        assert!(t
            .add_route("10.0.0.0".parse().unwrap(), 8, "nodev", None, None, 0)
            .is_err());
        assert!(t.del_route("10.0.0.0".parse().unwrap(), 8, 0));
        assert!(!t.del_route("10.0.0.0".parse().unwrap(), 8, 0));
    }

    #[test]
    fn neighbours() {
        let t = Tunnels::default();
        let ip: IpAddr = "1.1.2.92".parse().unwrap();
        assert!(t.neigh_set("br0", ip, [0xf8, 0xbc, 0x12, 0x44, 0x34, 0xb6]));
        assert!(!t.neigh_set("br0", ip, [0xf8, 0xbc, 0x12, 0x44, 0x34, 0xb6]));
        assert_eq!(
            t.neigh_lookup("br0", ip),
            Some([0xf8, 0xbc, 0x12, 0x44, 0x34, 0xb6])
        );
        assert_eq!(t.neigh_lookup("br1", ip), None);
        assert!(t
            .format_neighbours()
            .ends_with("1.1.2.92                                      f8:bc:12:44:34:b6   br0\n"));
        t.neigh_flush(None);
        assert_eq!(t.neigh_lookup("br0", ip), None);
    }

    #[test]
    fn arp_and_ns_frames() {
        let f = compose_arp_request(
            [0xaa, 0x55, 0xaa, 0x55, 0, 0],
            "1.1.2.88".parse().unwrap(),
            "1.1.2.92".parse().unwrap(),
        );
        let hex: String = f.iter().map(|b| format!("{b:02x}")).collect();
        // As OVS's own ARP request in its tunnel tests.
        assert_eq!(
            hex,
            "ffffffffffffaa55aa55000008060001080006040001aa55aa550000010102580000000000000101025c"
        );
        let ns = compose_nd_ns(
            [2, 0, 0, 0, 0, 1],
            "2001:db8::1".parse().unwrap(),
            "2001:db8::2".parse().unwrap(),
        );
        assert_eq!(ns.len(), 86);
        assert_eq!(&ns[0..6], &[0x33, 0x33, 0xff, 0, 0, 2]);
    }
}
