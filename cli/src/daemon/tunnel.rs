//! fvs-vswitchd's tunnels: `type=vxlan` interfaces become tunnel ports of
//! ofproto (no device of their own, as in OVS's userspace datapath), and a
//! helper thread keeps the tunnel state in step with the system: the
//! addresses and MACs of the bridges' internal ports (the tunnel endpoint
//! devices), the kernel routes through them, neighbour requests to send,
//! neighbour entries to age and next hops to ask again for.
//!
//! Also the appctl commands: `ovs/route/{add,del,show,lookup}`,
//! `tnl/neigh/{show,set,flush,aging}` (alias `tnl/arp/*`),
//! `tnl/ports/show`, `coverage/show`, `coverage/read-counter`.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use fvs_datapath::netdev::{Netdev, NetdevError, NetdevStats, RxQueue, TxQueue};
use fvs_ofproto::bridge::VlanConfig;
use fvs_ofproto::tunnel::{
    parse_cidr, parse_mac, IpDev, Route, RouteKind, TnlPortStats, TunnelConfig,
};
use fvs_ofproto::{Ofproto, PortConfig};

use super::{Daemon, OpenPort, State};
use crate::db::{BridgeConfig, InterfaceConfig};
use crate::unixctl::Server;

/// `Interface` `other_config` key naming a split-horizon group: tunnels of
/// one group never forward to each other (NORMAL, floods).
pub const SPLIT_HORIZON_KEY: &str = "fvs-split-horizon";
/// `Interface` `external_ids` key of the tunnels the overlay manager made
/// (the remote host's system-id); they are in the `overlay` group.
pub const OVERLAY_REMOTE_KEY: &str = "fvs-remote-system-id";

/// How often the helper re-reads addresses and routes, and retries next hops.
const REFRESH: Duration = Duration::from_secs(1);

/// A tunnel port as the daemon's port list holds it: no queues, counters
/// from the tunnel's megaflows, OVS's tunnel status columns.
pub struct TunnelNetdev {
    name: String,
    of: Weak<Ofproto>,
    cfg: TunnelConfig,
    stats: Arc<TnlPortStats>,
}

impl Netdev for TunnelNetdev {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &str {
        "vxlan"
    }

    fn n_rxq(&self) -> usize {
        0
    }

    fn n_txq(&self) -> usize {
        0
    }

    fn open_rxq(&self, q: usize) -> Result<Box<dyn RxQueue>, NetdevError> {
        Err(NetdevError::NoSuchQueue {
            port: self.name.clone(),
            queue: q,
        })
    }

    fn open_txq(&self, q: usize) -> Result<Box<dyn TxQueue>, NetdevError> {
        Err(NetdevError::NoSuchQueue {
            port: self.name.clone(),
            queue: q,
        })
    }

    fn stats(&self) -> NetdevStats {
        let s = &self.stats;
        let get = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        NetdevStats {
            rx_packets: get(&s.rx_packets),
            rx_bytes: get(&s.rx_bytes),
            tx_packets: get(&s.tx_packets),
            tx_bytes: get(&s.tx_bytes),
            tx_dropped: get(&s.tx_dropped),
            ..Default::default()
        }
    }

    /// OVS's `tunnel_egress_iface` and its carrier, from the route to the
    /// remote endpoint.
    fn status(&self) -> BTreeMap<String, String> {
        let mut m = BTreeMap::new();
        let (Some(of), fvs_ofproto::tunnel::Remote::Ip(ip)) = (self.of.upgrade(), self.cfg.remote)
        else {
            return m;
        };
        if let Some(r) = of.tunnels.route_lookup(ip, 0) {
            m.insert("tunnel_egress_iface".into(), r.dev.clone());
            let up = of.tunnels.device(&r.dev).is_some();
            m.insert(
                "tunnel_egress_iface_carrier".into(),
                if up { "up" } else { "down" }.into(),
            );
        }
        m
    }
}

impl Daemon {
    /// Adds a `type=vxlan` interface: a tunnel port of ofproto, whose
    /// packets come and go through the datapath tunnel port of its UDP port.
    pub(super) fn add_tunnel_port(
        &self,
        st: &mut State,
        b: &BridgeConfig,
        i: &InterfaceConfig,
        vlan: VlanConfig,
    ) {
        let cfg = match TunnelConfig::parse(&i.name, &i.options) {
            Ok(c) => c,
            Err(e) => {
                let msg = e.to_string();
                if st.errors.get(&i.name) != Some(&msg) {
                    self.log.warn("tunnel", &msg);
                }
                st.errors.insert(i.name.clone(), msg);
                return;
            }
        };
        let group = i.other_config.get(SPLIT_HORIZON_KEY).cloned().or_else(|| {
            i.external_ids
                .contains_key(OVERLAY_REMOTE_KEY)
                .then(|| "overlay".to_string())
        });
        // The port's own number only names it in ofproto; packets use the
        // datapath tunnel port.
        let odp = st.next_odp;
        st.next_odp += 1;
        let pc = PortConfig {
            name: i.name.clone(),
            odp_port: odp,
            ofport_request: i.ofport_request,
            vlan: vlan.clone(),
            no_flood: false,
        };
        let next = &mut st.next_odp;
        let alloc = || {
            let n = *next;
            *next += 1;
            n
        };
        match self
            .of
            .add_tunnel_port(&b.name, pc, cfg.clone(), group, alloc)
        {
            Ok((ofport, vport)) => {
                st.errors.remove(&i.name);
                self.log.info(
                    "bridge",
                    &format!(
                        "{}: added interface {} on port {ofport} (vxlan, {}, datapath port {vport})",
                        b.name,
                        i.name,
                        cfg.describe()
                    ),
                );
                let stats = self
                    .of
                    .tunnels
                    .port(self.of.bridge_id(&b.name).unwrap_or(0), ofport)
                    .map(|p| p.stats.clone())
                    .unwrap_or_default();
                let netdev: Arc<dyn Netdev> = Arc::new(TunnelNetdev {
                    name: i.name.clone(),
                    of: Arc::downgrade(&self.of),
                    cfg,
                    stats,
                });
                st.ports.insert(
                    i.name.clone(),
                    OpenPort {
                        bridge: b.name.clone(),
                        odp,
                        ofport,
                        kind: "vxlan".into(),
                        options: i.options.clone(),
                        netdev,
                        vlan,
                        mtu_request: i.mtu_request,
                        ofport_request: i.ofport_request,
                    },
                );
            }
            Err(e) => {
                st.errors.insert(i.name.clone(), e.to_string());
            }
        }
    }

    /// The IP devices: internal ports with their kernel addresses.
    fn ip_devices(&self) -> Vec<IpDev> {
        let addrs = interface_addresses();
        super::lock(&self.state)
            .ports
            .iter()
            .filter(|(_, p)| p.kind == "internal")
            .map(|(name, p)| IpDev {
                name: name.clone(),
                mac: p.netdev.mac(),
                mtu: p.netdev.mtu(),
                addrs: addrs.get(name).cloned().unwrap_or_default(),
            })
            .collect()
    }
}

/// The helper thread; stops when dropped.
pub struct Helper {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Helper {
    pub fn start(d: &Arc<Daemon>) -> Helper {
        let stop = Arc::new(AtomicBool::new(false));
        let (weak, flag) = (Arc::downgrade(d), stop.clone());
        let thread = std::thread::Builder::new()
            .name("tnl-helper".into())
            .spawn(move || helper(weak, flag))
            .ok();
        Helper { stop, thread }
    }
}

impl Drop for Helper {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn helper(d: Weak<Daemon>, stop: Arc<AtomicBool>) {
    let mut last_refresh = Instant::now() - REFRESH;
    while !stop.load(Ordering::Relaxed) {
        let Some(of) = d.upgrade().map(|d| d.of.clone()) else {
            return;
        };
        let reqs = of.tunnels.wait_requests(Duration::from_millis(200));
        let Some(daemon) = d.upgrade() else { return };
        if !reqs.is_empty() {
            let pool = daemon
                .pool
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .clone();
            if let Some(pool) = pool {
                let dp = daemon.datapath();
                for r in reqs {
                    daemon.log.dbg(
                        "tunnel",
                        &format!("{}: asking for the MAC of {}", r.bridge, r.target),
                    );
                    if let Some(p) = pool.packet_from(&r.frame) {
                        dp.inject(r.odp_port, vec![p]);
                    }
                }
            }
        }
        if last_refresh.elapsed() >= REFRESH {
            last_refresh = Instant::now();
            let devs = daemon.ip_devices();
            let names: Vec<String> = devs.iter().map(|d| d.name.clone()).collect();
            of.tunnels.set_devices(devs);
            of.tunnels.set_system_routes(kernel_routes(&names));
            of.tunnels.neigh_expire();
            of.retry_tunnel_neighbours();
        }
        of.tunnels_changed();
    }
}

// ---- what the system knows: addresses and routes ----

/// The IP addresses (with prefix lengths) of every interface, by name.
pub fn interface_addresses() -> BTreeMap<String, Vec<(IpAddr, u8)>> {
    let mut out: BTreeMap<String, Vec<(IpAddr, u8)>> = BTreeMap::new();
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs writes a list it allocates to `head`; on success
    // it is freed below with freeifaddrs, and only read meanwhile.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return out;
    }
    let mut p = head;
    while !p.is_null() {
        // SAFETY: `p` is a node of the list getifaddrs returned, alive until
        // freeifaddrs; its name is a NUL-terminated string and its address
        // and netmask, when not null, are sockaddrs of the family they say.
        unsafe {
            let ifa = &*p;
            p = ifa.ifa_next;
            if ifa.ifa_addr.is_null() || ifa.ifa_name.is_null() {
                continue;
            }
            let name = std::ffi::CStr::from_ptr(ifa.ifa_name)
                .to_string_lossy()
                .into_owned();
            let entry = match i32::from((*ifa.ifa_addr).sa_family) {
                libc::AF_INET => {
                    let a = &*(ifa.ifa_addr as *const libc::sockaddr_in);
                    let ip = Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr));
                    let plen = if ifa.ifa_netmask.is_null() {
                        32
                    } else {
                        let m = &*(ifa.ifa_netmask as *const libc::sockaddr_in);
                        u32::from_be(m.sin_addr.s_addr).count_ones() as u8
                    };
                    Some((IpAddr::V4(ip), plen))
                }
                libc::AF_INET6 => {
                    let a = &*(ifa.ifa_addr as *const libc::sockaddr_in6);
                    let ip = Ipv6Addr::from(a.sin6_addr.s6_addr);
                    let plen = if ifa.ifa_netmask.is_null() {
                        128
                    } else {
                        let m = &*(ifa.ifa_netmask as *const libc::sockaddr_in6);
                        u128::from_be_bytes(m.sin6_addr.s6_addr).count_ones() as u8
                    };
                    // Link-local addresses are no tunnel endpoints.
                    (ip.segments()[0] & 0xffc0 != 0xfe80).then_some((IpAddr::V6(ip), plen))
                }
                _ => None,
            };
            if let Some(e) = entry {
                out.entry(name).or_default().push(e);
            }
        }
    }
    // SAFETY: `head` came from a successful getifaddrs and is freed once.
    unsafe { libc::freeifaddrs(head) };
    for v in out.values_mut() {
        v.sort();
    }
    out
}

/// The kernel's routes with a gateway through the devices `devs`, from
/// /proc/net/route and /proc/net/ipv6_route (the devices' own subnets come
/// from their addresses).
pub fn kernel_routes(devs: &[String]) -> Vec<Route> {
    let addrs = interface_addresses();
    let src_for = |dev: &str, gw: IpAddr| {
        addrs.get(dev).and_then(|a| {
            a.iter()
                .filter(|(ip, plen)| {
                    ip.is_ipv4() == gw.is_ipv4()
                        && fvs_ofproto::tunnel::prefix_of(*ip, *plen)
                            == fvs_ofproto::tunnel::prefix_of(gw, *plen)
                })
                .map(|(ip, _)| *ip)
                .next()
        })
    };
    let mut out = Vec::new();
    if let Ok(t) = std::fs::read_to_string("/proc/net/route") {
        for line in t.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            let [dev, dst, gw, _flags, _, _, _, mask, ..] = f.as_slice() else {
                continue;
            };
            if !devs.iter().any(|d| d == dev) {
                continue;
            }
            let hex = |s: &str| u32::from_str_radix(s, 16).ok().map(u32::from_be);
            let (Some(dst), Some(gw), Some(mask)) = (hex(dst), hex(gw), hex(mask)) else {
                continue;
            };
            if gw == 0 {
                continue;
            }
            let gw = IpAddr::V4(Ipv4Addr::from(gw));
            let Some(src) = src_for(dev, gw) else {
                continue;
            };
            out.push(Route {
                prefix: IpAddr::V4(Ipv4Addr::from(dst)),
                plen: mask.count_ones() as u8,
                dev: dev.to_string(),
                gw: Some(gw),
                src,
                mark: 0,
                kind: RouteKind::Cached,
            });
        }
    }
    if let Ok(t) = std::fs::read_to_string("/proc/net/ipv6_route") {
        for line in t.lines() {
            let f: Vec<&str> = line.split_whitespace().collect();
            let [dst, plen, _, _, gw, _, _, _, _, dev] = f.as_slice() else {
                continue;
            };
            if !devs.iter().any(|d| d == dev) {
                continue;
            }
            let v6 = |s: &str| u128::from_str_radix(s, 16).ok().map(Ipv6Addr::from);
            let (Some(dst), Some(plen), Some(gw)) =
                (v6(dst), u8::from_str_radix(plen, 16).ok(), v6(gw))
            else {
                continue;
            };
            if gw.is_unspecified() {
                continue;
            }
            let gw = IpAddr::V6(gw);
            let Some(src) = src_for(dev, gw) else {
                continue;
            };
            out.push(Route {
                prefix: IpAddr::V6(dst),
                plen,
                dev: dev.to_string(),
                gw: Some(gw),
                src,
                mark: 0,
                kind: RouteKind::Cached,
            });
        }
    }
    out
}

// ---- appctl ----

fn ok() -> Result<String, String> {
    Ok("OK\n".into())
}

fn pkt_mark(s: &str) -> Option<u32> {
    let v = s.strip_prefix("pkt_mark=")?;
    match v.strip_prefix("0x") {
        Some(h) => u32::from_str_radix(h, 16).ok(),
        None => v.parse().ok(),
    }
}

fn route_add(d: &Daemon, args: &[String]) -> Result<String, String> {
    let [cidr, dev, rest @ ..] = args else {
        return Err("\"ovs/route/add\" command requires at least 2 arguments".into());
    };
    if rest.len() > 3 {
        return Err("\"ovs/route/add\" command takes at most 5 arguments".into());
    }
    let (ip, plen) = parse_cidr(cidr).ok_or("Invalid 'ip/plen' parameter")?;
    let (mut gw, mut src, mut mark) = (None, None, 0);
    for a in rest {
        if let Some(m) = pkt_mark(a) {
            mark = m;
        } else if let Some(s) = a
            .strip_prefix("src=")
            .and_then(|s| s.parse::<IpAddr>().ok())
        {
            src = Some(s);
        } else if let Ok(g) = a.parse::<IpAddr>() {
            gw = Some(g);
        } else {
            return Err("Invalid pkt_mark, IP gateway or src_ip".into());
        }
        if gw.is_some_and(|g| g.is_ipv4() != ip.is_ipv4())
            || src.is_some_and(|s| s.is_ipv4() != ip.is_ipv4())
        {
            return Err("Invalid pkt_mark, IP gateway or src_ip".into());
        }
    }
    d.of.tunnels.add_route(ip, plen, dev, gw, src, mark)?;
    d.of.tunnels_changed();
    ok()
}

fn route_del(d: &Daemon, args: &[String]) -> Result<String, String> {
    let (cidr, mark) = match args {
        [c] => (c, 0),
        [c, m] => (c, pkt_mark(m).ok_or("Invalid pkt_mark")?),
        _ => return Err("\"ovs/route/del\" command requires 1 or 2 arguments".into()),
    };
    let (ip, plen) = parse_cidr(cidr).ok_or("Invalid parameters")?;
    if !d.of.tunnels.del_route(ip, plen, mark) {
        return Err("Not found".into());
    }
    d.of.tunnels_changed();
    ok()
}

fn route_lookup(d: &Daemon, args: &[String]) -> Result<String, String> {
    let (addr, mark) = match args {
        [a] => (a, 0),
        [a, m] => (a, pkt_mark(m).ok_or("Invalid pkt_mark")?),
        _ => return Err("\"ovs/route/lookup\" command requires 1 or 2 arguments".into()),
    };
    let ip = match parse_cidr(addr) {
        Some((ip, plen)) if plen == if ip.is_ipv4() { 32 } else { 128 } => ip,
        _ => return Err("Invalid parameters".into()),
    };
    let r = d.of.tunnels.route_lookup(ip, mark).ok_or("Not found")?;
    let gw = match (r.gw, ip) {
        (Some(g), _) => g.to_string(),
        (None, _) => "::".to_string(),
    };
    Ok(format!("src {}\ngateway {gw}\ndev {}\n", r.src, r.dev))
}

fn neigh_set(d: &Daemon, args: &[String]) -> Result<String, String> {
    let [bridge, ip, mac] = args else {
        return Err("\"tnl/neigh/set\" command requires 3 arguments".into());
    };
    let ip: IpAddr = ip.parse().map_err(|_| "bad IP address")?;
    let mac = parse_mac(mac).ok_or("bad MAC address")?;
    d.of.tunnels.neigh_set(bridge, ip, mac);
    d.of.tunnels_changed();
    ok()
}

fn neigh_flush(d: &Daemon, args: &[String]) -> Result<String, String> {
    if !args.is_empty() {
        return Err("\"tnl/neigh/flush\" command takes no arguments".into());
    }
    d.of.tunnels.neigh_flush(None);
    d.of.tunnels_changed();
    ok()
}

fn neigh_aging(d: &Daemon, args: &[String]) -> Result<String, String> {
    match args {
        [] => Ok(format!("{}\n", d.of.tunnels.neigh_aging())),
        [s] => {
            let secs = s.parse::<u64>().map_err(|_| "bad aging value")?;
            d.of.tunnels.set_neigh_aging(secs)?;
            ok()
        }
        _ => Err("\"tnl/neigh/aging\" command takes at most 1 argument".into()),
    }
}

/// The datapath's drop counters as OVS names them (`coverage/read-counter`).
fn coverage(d: &Daemon) -> Vec<(&'static str, u64)> {
    let mut c = fvs_datapath::pmd::PmdCounters::default();
    for p in d.datapath().pmd_counters() {
        c += p;
    }
    vec![
        ("datapath_drop_tunnel_push_error", c.tnl_push_errors),
        ("datapath_drop_tunnel_pop_error", c.tnl_pop_errors),
        ("datapath_drop_recirc_error", c.recirc_errors),
        ("datapath_drop_invalid_port", c.tx_no_port),
        ("datapath_drop_upcall_error", c.upcalls_failed),
        ("datapath_drop_upcall_limit", c.upcalls_limited),
        // Actions that sent the packet nowhere (OVS's xlate drop reason).
        ("drop_action_of_pipeline", c.dropped),
        ("upcall_flow_limit_hit", c.installs_failed),
        (
            "upcall_flow_del_idle_or_limit",
            c.flows_evicted + c.flows_expired,
        ),
        (
            "rconn_overflow",
            super::openflow::PACKET_INS_DROPPED.load(std::sync::atomic::Ordering::Relaxed),
        ),
    ]
}

/// Registers the tunnel appctl commands.
pub fn register(server: &Arc<Server>, d: &Arc<Daemon>) {
    let text = |names: &[&str], f: fn(&Daemon, &[String]) -> Result<String, String>| {
        for name in names {
            let d = d.clone();
            server.register_text(name, move |args| f(&d, args));
        }
    };
    text(&["ovs/route/add"], route_add);
    text(&["ovs/route/del"], route_del);
    text(&["ovs/route/lookup"], route_lookup);
    text(&["ovs/route/show"], |d, _| Ok(d.of.tunnels.format_routes()));
    text(&["tnl/neigh/show", "tnl/arp/show"], |d, _| {
        Ok(d.of.tunnels.format_neighbours())
    });
    text(&["tnl/neigh/set", "tnl/arp/set"], neigh_set);
    text(&["tnl/neigh/flush", "tnl/arp/flush"], neigh_flush);
    text(&["tnl/neigh/aging", "tnl/arp/aging"], neigh_aging);
    text(&["tnl/ports/show"], |d, _| Ok(d.of.tunnels.format_ports()));
    text(&["coverage/read-counter"], |d, args| {
        let [name] = args else {
            return Err("\"coverage/read-counter\" command requires 1 argument".into());
        };
        match coverage(d).into_iter().find(|(n, _)| n == name) {
            Some((_, v)) => Ok(format!("{v}\n")),
            None => Err(format!("No such counter: \"{name}\"")),
        }
    });
    text(&["coverage/show"], |d, _| {
        let mut s = String::from("Event coverage, avg rate over last: 5 seconds, last minute, last hour,  hash=00000000:\n");
        for (n, v) in coverage(d) {
            if v != 0 {
                s += &format!(
                    "{n:<24} {:>5.1}/sec {:>9.3}/sec {:>10.4}/sec   total: {v}\n",
                    0.0, 0.0, 0.0
                );
            }
        }
        Ok(s)
    });
    text(
        &["overlay/status"],
        |_, _| Ok(super::overlay::status_text()),
    );
}
