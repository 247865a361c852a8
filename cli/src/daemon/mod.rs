//! fvs-vswitchd's core: applies the configuration (bridges, ports, PMD
//! threads, the packet pool) to ofproto and the datapath, and answers the
//! control socket's commands.

pub mod appctl;
pub mod config;
pub mod dbsync;
pub mod ofctl;
pub mod openflow;
pub mod overlay;
pub mod privs;
pub mod run;
pub mod tunnel;
pub mod vlog;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, RwLock};

use fvs_datapath::dpif::{Datapath, RxqAssign};
use fvs_datapath::netdev::Netdev;
use fvs_datapath::packet::PacketPool;
use fvs_datapath::pmd::PmdConfig;
use fvs_ofproto::bridge::{VlanConfig, VlanMode};
use fvs_ofproto::flow_mod::FlowModCommand;
use fvs_ofproto::syntax::parse_flow_mod;
use fvs_ofproto::{Ofproto, PortConfig};

use crate::db::{BridgeConfig, InterfaceConfig, PortConfig as DbPortConfig, SwitchConfig};
use config::{DpdkInit, GlobalCfg, IfaceStatus};

/// Packet buffers in a plain-memory pool (no `dpdk-init`).
const PLAIN_POOL_BUFFERS: usize = 16384;

/// A port the daemon opened.
struct OpenPort {
    bridge: String,
    odp: u32,
    ofport: u16,
    kind: String,
    options: BTreeMap<String, String>,
    netdev: Arc<dyn Netdev>,
    vlan: VlanConfig,
    /// The `mtu_request` last applied.
    mtu_request: Option<u32>,
    /// `ofport_request` when the port was added (a change re-adds the port).
    ofport_request: Option<u16>,
}

#[derive(Default)]
struct State {
    bridges: BTreeMap<String, BridgeConfig>,
    /// By interface name.
    ports: BTreeMap<String, OpenPort>,
    /// Interfaces that failed to open, with the reason.
    errors: BTreeMap<String, String>,
    /// The OpenFlow port numbers of interfaces closed because their device
    /// went away, given back when it returns (rules keep pointing at them).
    gone_ofports: BTreeMap<String, u16>,
    next_odp: u32,
    global: Option<GlobalCfg>,
    /// `dpdk_initialized`: the pool is hugepage-backed.
    hugepages: bool,
}

pub struct Daemon {
    pub of: Arc<Ofproto>,
    dp: RwLock<Arc<Datapath<Ofproto>>>,
    pool: RwLock<Option<Arc<PacketPool>>>,
    state: Mutex<State>,
    pub log: Arc<vlog::Vlog>,
    /// Set by `exit`; with `cleanup_on_exit` by `exit --cleanup`.
    pub exit: AtomicBool,
    pub cleanup_on_exit: AtomicBool,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn vlan_config(p: &DbPortConfig) -> VlanConfig {
    VlanConfig {
        tag: p.tag,
        trunks: p.trunks.clone(),
        mode: p.vlan_mode.as_deref().and_then(VlanMode::parse),
    }
}

fn pmd_cores(g: &GlobalCfg) -> Vec<Option<usize>> {
    match &g.pmd_cores {
        Some(cores) => cores.iter().map(|&c| Some(c)).collect(),
        None => vec![None],
    }
}

impl Daemon {
    pub fn new(log: Arc<vlog::Vlog>) -> Result<Arc<Daemon>, String> {
        let of = Ofproto::new();
        let dp = Arc::new(
            Datapath::new(of.clone(), &[None], PmdConfig::default()).map_err(|e| e.to_string())?,
        );
        of.connect(&dp);
        Ok(Arc::new(Daemon {
            of,
            dp: RwLock::new(dp),
            pool: RwLock::new(None),
            state: Mutex::new(State {
                next_odp: 1,
                ..State::default()
            }),
            log,
            exit: AtomicBool::new(false),
            cleanup_on_exit: AtomicBool::new(false),
        }))
    }

    /// The packet pool, once the first port made it (packet-outs use it).
    pub fn packet_pool(&self) -> Option<Arc<PacketPool>> {
        self.pool.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn datapath(&self) -> Arc<Datapath<Ofproto>> {
        self.dp.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn is_hugepage_backed(&self) -> bool {
        lock(&self.state).hugepages
    }

    /// Applies `cfg`; returns the status of every interface it names.
    pub fn apply(&self, cfg: &SwitchConfig) -> BTreeMap<String, IfaceStatus> {
        let mut st = lock(&self.state);
        let (global, errors) = GlobalCfg::from_other_config(&cfg.other_config);
        for e in errors {
            self.log.warn("bridge", &e);
        }
        self.apply_global(&mut st, &global);

        // Bridges first removed, then added, so that ports can move between them.
        let wanted: BTreeMap<&str, &BridgeConfig> =
            cfg.bridges.iter().map(|b| (b.name.as_str(), b)).collect();
        let wanted_ifaces: BTreeMap<&str, (&BridgeConfig, &DbPortConfig, &InterfaceConfig)> = cfg
            .bridges
            .iter()
            .flat_map(|b| {
                b.ports.iter().flat_map(move |p| {
                    p.interfaces
                        .iter()
                        .map(move |i| (i.name.as_str(), (b, p, i)))
                })
            })
            .collect();
        let stale_ports: Vec<String> = st
            .ports
            .iter()
            .filter(|(name, p)| match wanted_ifaces.get(name.as_str()) {
                None => true,
                Some((b, _, i)) => {
                    b.name != p.bridge
                        || iface_kind(i) != p.kind
                        || i.options != p.options
                        || i.ofport_request != p.ofport_request
                }
            })
            .map(|(n, _)| n.clone())
            .collect();
        for name in stale_ports {
            self.remove_port(&mut st, &name);
        }
        let stale_bridges: Vec<String> = st
            .bridges
            .keys()
            .filter(|b| !wanted.contains_key(b.as_str()))
            .cloned()
            .collect();
        for b in stale_bridges {
            if let Err(e) = self.of.del_bridge(&b) {
                self.log.warn("bridge", &e.to_string());
            }
            st.bridges.remove(&b);
            self.log.info("bridge", &format!("{b}: deleted"));
        }
        for b in &cfg.bridges {
            if !st.bridges.contains_key(&b.name) {
                self.add_bridge(b);
            }
            st.bridges.insert(b.name.clone(), b.clone());
        }
        st.errors
            .retain(|name, _| wanted_ifaces.contains_key(name.as_str()));
        st.gone_ofports
            .retain(|name, _| wanted_ifaces.contains_key(name.as_str()));
        for (name, (b, p, i)) in &wanted_ifaces {
            let vlan = vlan_config(p);
            if let Some(open) = st.ports.get_mut(*name) {
                if open.mtu_request != i.mtu_request {
                    open.mtu_request = i.mtu_request;
                    self.apply_mtu(open.netdev.as_ref(), i.mtu_request);
                }
                if open.vlan != vlan {
                    if let Err(e) = self.of.set_port_config(&b.name, name, vlan.clone(), false) {
                        self.log.warn("bridge", &e.to_string());
                    }
                    open.vlan = vlan;
                }
                continue;
            }
            self.add_port(&mut st, b, i, vlan);
        }
        wanted_ifaces
            .keys()
            .map(|name| (name.to_string(), self.status_of(&st, name)))
            .collect()
    }

    fn apply_global(&self, st: &mut State, g: &GlobalCfg) {
        if st.global.as_ref() == Some(g) {
            return;
        }
        let old = st.global.replace(g.clone());
        // The packet pool is made once, with the first port: like DPDK's
        // initialisation in OVS, dpdk-init cannot change it afterwards.
        let pool_made = self
            .pool
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .is_some();
        if pool_made
            && (g.dpdk_init != DpdkInit::No) != st.hugepages
            && old.as_ref().map(|o| o.dpdk_init) != Some(g.dpdk_init)
        {
            self.log.warn("dpdk", "dpdk-init changed after the packet pool was made: restart fvs-vswitchd to apply it");
        }
        if let Some(cores) = &g.lcore_cores {
            // The daemon's own threads (this one and later ones it spawns).
            set_affinity(cores);
        }
        match RxqAssign::parse(&g.rxq_assign) {
            Some(a) => self.datapath().set_rxq_assign(a),
            None => self.log.warn(
                "dpif_netdev",
                &format!("invalid pmd-rxq-assign \"{}\"; using cycles", g.rxq_assign),
            ),
        }
        let restart = old
            .as_ref()
            .map(|o| (o.pmd_cores != g.pmd_cores, o.pmd != g.pmd))
            .unwrap_or((g.pmd_cores.is_some(), true));
        if restart.0 {
            self.restart_pmds(st, g);
        } else if restart.1 {
            self.datapath().configure(g.pmd);
        }
    }

    /// Replaces the PMD threads (new cores) and gives them every port.
    fn restart_pmds(&self, st: &mut State, g: &GlobalCfg) {
        let cores = pmd_cores(g);
        let mut dp = self.dp.write().unwrap_or_else(|e| e.into_inner());
        // Stop the old threads first: a port's queues are opened once at a time.
        let ports: Vec<(u32, Arc<dyn Netdev>)> = dp.ports();
        for (n, _) in &ports {
            let _ = dp.del_port(*n);
        }
        let new = match Datapath::new(self.of.clone(), &cores, g.pmd) {
            Ok(d) => Arc::new(d),
            Err(e) => {
                self.log
                    .err("dpif_netdev", &format!("cannot start PMD threads: {e}"));
                return;
            }
        };
        if let Some(a) = RxqAssign::parse(&g.rxq_assign) {
            new.set_rxq_assign(a);
        }
        *dp = new.clone();
        drop(dp);
        self.of.connect(&new);
        for (n, netdev) in ports {
            if let Err(e) = new.add_port(n, netdev.clone()) {
                self.log
                    .err("dpif_netdev", &format!("{}: {e}", netdev.name()));
            }
        }
        let desc: Vec<String> = cores
            .iter()
            .map(|c| c.map_or("unpinned".to_string(), |c| format!("core {c}")))
            .collect();
        self.log.info(
            "dpif_netdev",
            &format!("PMD threads on {}", desc.join(", ")),
        );
        let _ = st;
    }

    /// The packet pool, created on first use: hugepages when `dpdk-init` asks.
    fn pool(&self, st: &mut State) -> Result<Arc<PacketPool>, String> {
        if let Some(p) = self.pool.read().unwrap_or_else(|e| e.into_inner()).clone() {
            return Ok(p);
        }
        let g = st
            .global
            .clone()
            .unwrap_or_else(|| GlobalCfg::from_other_config(&BTreeMap::new()).0);
        let pool = match g.dpdk_init {
            DpdkInit::No => {
                PacketPool::new(PLAIN_POOL_BUFFERS, false).map_err(|e| e.to_string())?
            }
            DpdkInit::Yes | DpdkInit::Try => {
                let n = (g.socket_mem_mb << 20) / fvs_datapath::packet::SLOT_SIZE;
                match PacketPool::new(n, true) {
                    Ok(p) => {
                        st.hugepages = true;
                        self.log.info(
                            "dpdk",
                            &format!(
                                "packet pool: {n} buffers in {} MB of hugepages",
                                g.socket_mem_mb
                            ),
                        );
                        p
                    }
                    Err(e) if g.dpdk_init == DpdkInit::Try => {
                        self.log
                            .warn("dpdk", &format!("{e}; using plain memory (dpdk-init=try)"));
                        PacketPool::new(PLAIN_POOL_BUFFERS, false).map_err(|e| e.to_string())?
                    }
                    Err(e) => return Err(e.to_string()),
                }
            }
        };
        let pool = Arc::new(pool);
        *self.pool.write().unwrap_or_else(|e| e.into_inner()) = Some(pool.clone());
        Ok(pool)
    }

    fn add_bridge(&self, b: &BridgeConfig) {
        if let Err(e) = self.of.add_bridge(&b.name) {
            self.log.warn("bridge", &e.to_string());
            return;
        }
        if b.fail_mode.as_deref() != Some("secure") {
            // OVS's standalone mode: a learning switch until told otherwise.
            if let Ok(fm) = parse_flow_mod("priority=0,actions=NORMAL", FlowModCommand::Add, None) {
                let _ = self.of.flow_mod(&b.name, &fm);
            }
        }
        self.log.info("bridge", &format!("{}: added", b.name));
    }

    fn add_port(&self, st: &mut State, b: &BridgeConfig, i: &InterfaceConfig, vlan: VlanConfig) {
        let kind = iface_kind(i);
        if kind == "vxlan" {
            // A tunnel port has no device: see tunnel.rs.
            self.add_tunnel_port(st, b, i, vlan);
            return;
        }
        let pool = match self.pool(st) {
            Ok(p) => p,
            Err(e) => {
                st.errors.insert(i.name.clone(), e.clone());
                self.log.err("netdev", &format!("{}: {e}", i.name));
                return;
            }
        };
        let mut options = i.options.clone();
        if kind == "dpdkvhostuser" {
            // fvs is the server: the socket is <rundir>/<vhost-sock-dir>/<port>, as in OVS.
            let dir = st
                .global
                .as_ref()
                .map(|g| g.vhost_sock_dir.clone())
                .unwrap_or_default();
            let path = crate::unixctl::rundir().join(dir).join(&i.name);
            options.insert(
                fvs_ports::VHOST_SOCKET_OPTION.into(),
                path.display().to_string(),
            );
        }
        let netdev = match fvs_ports::open(&kind, &i.name, &options, pool) {
            Ok(n) => n,
            Err(e) => {
                let msg = e.to_string();
                if st.errors.get(&i.name) != Some(&msg) {
                    self.log.warn("netdev", &msg);
                }
                st.errors.insert(i.name.clone(), msg);
                return;
            }
        };
        let odp = st.next_odp;
        st.next_odp += 1;
        if let Err(e) = self.datapath().add_port(odp, netdev.clone()) {
            st.errors.insert(i.name.clone(), format!("{}: {e}", i.name));
            return;
        }
        let pc = PortConfig {
            name: i.name.clone(),
            odp_port: odp,
            ofport_request: i
                .ofport_request
                .or_else(|| st.gone_ofports.get(&i.name).copied()),
            vlan: vlan.clone(),
            no_flood: false,
        };
        match self.of.add_port(&b.name, pc) {
            Ok(ofport) => {
                st.errors.remove(&i.name);
                st.gone_ofports.remove(&i.name);
                self.log.info(
                    "bridge",
                    &format!("{}: added interface {} on port {ofport}", b.name, i.name),
                );
                self.apply_mtu(netdev.as_ref(), i.mtu_request);
                st.ports.insert(
                    i.name.clone(),
                    OpenPort {
                        bridge: b.name.clone(),
                        odp,
                        ofport,
                        kind,
                        options: i.options.clone(),
                        netdev,
                        vlan,
                        mtu_request: i.mtu_request,
                        ofport_request: i.ofport_request,
                    },
                );
            }
            Err(e) => {
                let _ = self.datapath().del_port(odp);
                st.errors.insert(i.name.clone(), e.to_string());
            }
        }
    }

    fn remove_port(&self, st: &mut State, name: &str) {
        let Some(p) = st.ports.remove(name) else {
            return;
        };
        if let Err(e) = self.of.del_port(&p.bridge, name) {
            self.log.warn("bridge", &e.to_string());
        }
        let _ = self.datapath().del_port(p.odp);
        self.log.info(
            "bridge",
            &format!(
                "{}: deleted interface {name} on port {}",
                p.bridge, p.ofport
            ),
        );
    }

    /// Applies `mtu_request` (none: the device keeps its MTU).
    fn apply_mtu(&self, netdev: &dyn Netdev, mtu: Option<u32>) {
        if let Some(mtu) = mtu {
            match netdev.set_mtu(mtu) {
                Ok(()) => self
                    .log
                    .info("netdev", &format!("{}: MTU set to {mtu}", netdev.name())),
                Err(e) => self.log.warn("netdev", &e),
            }
        }
    }

    fn status_of(&self, st: &State, name: &str) -> IfaceStatus {
        match st.ports.get(name) {
            Some(p) => {
                let m = p.netdev.mac();
                IfaceStatus {
                    ofport: Some(p.ofport as i64),
                    mac_in_use: Some(format!(
                        "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
                        m[0], m[1], m[2], m[3], m[4], m[5]
                    )),
                    link_state: Some(if p.netdev.is_up() { "up" } else { "down" }.into()),
                    mtu: Some(p.netdev.mtu()),
                    error: p.netdev.error(),
                    status: p.netdev.status(),
                    custom_stats: p.netdev.custom_stats(),
                }
            }
            None => IfaceStatus {
                ofport: Some(-1),
                error: st.errors.get(name).cloned(),
                ..Default::default()
            },
        }
    }

    /// Every open interface: (name, bridge, ofport, netdev).
    pub fn interfaces(&self) -> Vec<(String, String, u16, Arc<dyn Netdev>)> {
        lock(&self.state)
            .ports
            .iter()
            .map(|(n, p)| (n.clone(), p.bridge.clone(), p.ofport, p.netdev.clone()))
            .collect()
    }

    /// Link states and statistics of every open interface (for the database).
    pub fn statuses(&self) -> BTreeMap<String, IfaceStatus> {
        let st = lock(&self.state);
        st.ports
            .keys()
            .chain(st.errors.keys())
            .map(|n| (n.clone(), self.status_of(&st, n)))
            .collect()
    }

    /// Whether some interface failed to open (the main loop retries them).
    pub fn has_errors(&self) -> bool {
        !lock(&self.state).errors.is_empty()
    }

    /// Closes the ports whose device went away (a veth deleted with its
    /// namespace, a device re-created under the same name), as OVS does;
    /// each then waits in `errors` and is opened again by the main loop's
    /// retries once a device of that name exists, with its old OpenFlow
    /// port number. Returns whether any port was closed.
    pub fn close_gone_ports(&self) -> bool {
        let mut st = lock(&self.state);
        let gone: Vec<String> = st
            .ports
            .iter()
            .filter(|(_, p)| p.netdev.is_gone())
            .map(|(n, _)| n.clone())
            .collect();
        for name in &gone {
            let ofport = st.ports.get(name).map(|p| p.ofport);
            self.remove_port(&mut st, name);
            if let Some(o) = ofport {
                st.gone_ofports.insert(name.clone(), o);
            }
            let msg = format!("{name}: the network device went away; reopened when it is back");
            self.log.warn("netdev", &msg);
            st.errors.insert(name.clone(), msg);
        }
        !gone.is_empty()
    }

    /// Periodic work of the main loop: rule and MAC-entry timeouts. Returns
    /// the expired rules (for flow-removed messages); packet-ins are the
    /// OpenFlow connections' (`openflow.rs`).
    pub fn run_periodic(&self) -> Vec<fvs_ofproto::ofproto::RemovedRule> {
        let removed = self.of.run_timeouts();
        for r in &removed {
            self.log.dbg(
                "ofproto",
                &format!("rule {} removed ({:?})", r.rule.id, r.reason),
            );
        }
        removed
    }

    /// Removes every port (kernel devices the daemon made go away with them).
    pub fn shutdown(&self) {
        let mut st = lock(&self.state);
        let names: Vec<String> = st.ports.keys().cloned().collect();
        for n in names {
            self.remove_port(&mut st, &n);
        }
        let bridges: BTreeSet<String> = st.bridges.keys().cloned().collect();
        for b in bridges {
            let _ = self.of.del_bridge(&b);
        }
        st.bridges.clear();
    }
}

/// `ofproto/trace BRIDGE FLOW`.
pub fn trace(d: &Daemon, bridge: &str, flow: &str) -> Result<String, String> {
    fvs_ofproto::trace::trace(&d.of, bridge, flow)
}

fn iface_kind(i: &InterfaceConfig) -> String {
    if i.kind.is_empty() {
        "system".into()
    } else {
        i.kind.clone()
    }
}

/// Pins the calling thread to `cores` (best effort).
pub fn set_affinity(cores: &[usize]) -> bool {
    // SAFETY: cpu_set_t is plain data that CPU_ZERO/CPU_SET write within;
    // sched_setaffinity only reads it, for the calling thread (pid 0).
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_ZERO(&mut set);
        for &c in cores {
            if c < libc::CPU_SETSIZE as usize {
                libc::CPU_SET(c, &mut set);
            }
        }
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) == 0
    }
}
