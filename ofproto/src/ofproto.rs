//! The OpenFlow switch layer over one datapath: bridges, their ports and
//! tables, flow-table modifications, timeouts, statistics, and the datapath's
//! [`Upcall`] interface (translation, revalidation, stats crediting).
//!
//! Every change that can make an installed megaflow stale is logged with a
//! new version number. A flow-mod returns only after every PMD thread has
//! revalidated its caches up to that version, so no packet is forwarded by
//! a stale decision once the call returns.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use fvs_datapath::actions::SlowPath;
use fvs_datapath::dpcls::FlowCounters;
use fvs_datapath::key::FlowKey;
use fvs_datapath::packet::Packet;
use fvs_datapath::pmd::epoch;
use fvs_datapath::upcall::{Translation, Upcall, UpcallError};
use thiserror::Error;

use crate::actions::OfAction;
use crate::bridge::{Bridge, BridgePort, VlanConfig, N_TABLES};
use crate::fdb::FdbRow;
use crate::flow::{ofs, Match, OfFlow};
use crate::flow_mod::{FlowMod, FlowModCommand, FlowStats};
use crate::rule::{Rule, RuleStats};
use crate::xlate::{Xlate, XlateDeps, XlateOut};

#[path = "ofproto_of.rs"]
mod openflow;

/// A change to decision inputs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// A rule appeared: megaflows whose lookup in that table could now find it are stale.
    RuleAdded {
        bridge: u32,
        table: u8,
        priority: u16,
        match_: Box<Match>,
    },
    /// A rule was removed or replaced: megaflows that hit it are stale.
    RuleRemoved { rule_id: u64 },
    /// A MAC learning entry changed: megaflows that looked it up are stale.
    Fdb {
        bridge: u32,
        vlan: u16,
        mac: [u8; 6],
    },
    /// Ports or bridges changed: every megaflow is stale.
    All,
    /// Tunnel state (routes, neighbours, IP devices) changed: megaflows
    /// whose decision read it are stale.
    Tunnel,
    /// Time to retry tunnel next hops whose MAC was unknown: megaflows
    /// that dropped for that are stale.
    TunnelRetry,
}

/// Changes since some version, as handed to a PMD thread.
#[derive(Debug, Default)]
pub struct Changes {
    /// Too many, or too old to be in the log: treat every megaflow as stale.
    pub all: bool,
    pub list: Vec<(u64, Change)>,
}

/// Changes kept for PMD threads that have not caught up.
const LOG_MAX: usize = 4096;
/// Beyond this many pending changes, revalidating each megaflow against
/// each change costs more than re-learning them all.
const CHANGES_MAX: usize = 64;

struct ChangeLog {
    /// Versions up to `base` are no longer in `entries`.
    base: u64,
    entries: VecDeque<(u64, Change)>,
}

/// What the datapath offers the control plane (implemented by the daemon
/// over its [`fvs_datapath::dpif::Datapath`]).
pub trait DatapathHooks: Send + Sync {
    /// Returns once no PMD thread uses a decision older than `version`.
    fn wait_version(&self, version: u64);
    /// Credits all megaflow traffic to rules now.
    fn sync_stats(&self);
}

/// The hooks of a running datapath whose upcalls this ofproto answers.
struct DatapathLink(std::sync::Weak<fvs_datapath::dpif::Datapath<Ofproto>>);

impl DatapathHooks for DatapathLink {
    fn wait_version(&self, version: u64) {
        if let Some(dp) = self.0.upgrade() {
            dp.wait_version(version);
        }
    }

    fn sync_stats(&self) {
        if let Some(dp) = self.0.upgrade() {
            dp.sync_stats();
        }
    }
}

/// How a port joins a bridge.
#[derive(Clone, Debug, Default)]
pub struct PortConfig {
    pub name: String,
    pub odp_port: u32,
    pub ofport_request: Option<u16>,
    pub vlan: VlanConfig,
    pub no_flood: bool,
}

/// A packet the pipeline sent to the controller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PacketIn {
    pub bridge: u32,
    pub reason: u8,
    pub table_id: u8,
    pub cookie: u64,
    pub in_port: u16,
    pub total_len: usize,
    pub data: Vec<u8>,
}

/// Packet-ins held for a controller before the oldest are dropped.
const PACKET_IN_QUEUE: usize = 256;

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum FlowModError {
    #[error("table {0} is not a flow table (tables are 0-254)")]
    BadTable(u8),
    #[error("goto_table:{goto} in table {table}: the target must be a later table")]
    BadGoto { table: u8, goto: u8 },
    #[error("the flow overlaps an existing flow of priority {0} (check_overlap)")]
    Overlap(u16),
    #[error("group {0} does not exist")]
    UnknownGroup(u32),
}

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum OfprotoError {
    #[error("no bridge named {0}")]
    NoSuchBridge(String),
    #[error("a bridge named {0} already exists")]
    BridgeExists(String),
    #[error("{bridge}: a port named {port} already exists")]
    PortExists { bridge: String, port: String },
    #[error("{bridge}: no port {port}")]
    NoSuchPort { bridge: String, port: String },
    #[error("{bridge}: no free OpenFlow port number")]
    NoFreeOfport { bridge: String },
    #[error("datapath port {0} already belongs to a bridge")]
    OdpPortInUse(u32),
    #[error("{bridge}: {error}")]
    FlowMod { bridge: String, error: FlowModError },
    #[error("{bridge}: {error}")]
    GroupMod {
        bridge: String,
        error: crate::group::GroupModError,
    },
}

/// What a batch of flow-mods did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FlowModOutcome {
    pub added: usize,
    pub modified: usize,
    pub deleted: usize,
    /// The version after the change (the datapath is revalidated up to it).
    pub version: u64,
    /// The rules deletes removed (for flow-removed messages).
    pub removed: Vec<Arc<Rule>>,
}

/// A rule removed by a timeout or a delete (for flow-removed messages).
#[derive(Clone, Debug)]
pub struct RemovedRule {
    pub bridge: u32,
    pub rule: Arc<Rule>,
    pub reason: RemovedReason,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RemovedReason {
    IdleTimeout,
    HardTimeout,
    Delete,
    /// The group it sent to was deleted.
    GroupDelete,
}

#[derive(Default)]
struct State {
    bridges: BTreeMap<u32, Bridge>,
    /// Datapath port → (bridge id, OpenFlow port).
    odp_ports: HashMap<u32, (u32, u16)>,
    next_bridge_id: u32,
}

impl State {
    fn bridge_mut(&mut self, name: &str) -> Result<&mut Bridge, OfprotoError> {
        self.bridges
            .values_mut()
            .find(|b| b.name == name)
            .ok_or_else(|| OfprotoError::NoSuchBridge(name.to_string()))
    }

    fn bridge(&self, name: &str) -> Result<&Bridge, OfprotoError> {
        self.bridges
            .values()
            .find(|b| b.name == name)
            .ok_or_else(|| OfprotoError::NoSuchBridge(name.to_string()))
    }
}

/// Counters of the slow path.
#[derive(Debug, Default)]
pub struct OfprotoCounters {
    pub packet_ins: AtomicU64,
    pub packet_ins_dropped: AtomicU64,
    pub translations: AtomicU64,
    pub xlate_errors: AtomicU64,
}

pub struct Ofproto {
    state: RwLock<State>,
    version: AtomicU64,
    log: Mutex<ChangeLog>,
    next_rule_id: AtomicU64,
    hooks: RwLock<Option<Arc<dyn DatapathHooks>>>,
    packet_ins: Mutex<VecDeque<PacketIn>>,
    pub counters: OfprotoCounters,
    /// Tunnel ports, routes, IP devices and the neighbour cache.
    pub tunnels: crate::tunnel::Tunnels,
}

impl Default for Ofproto {
    fn default() -> Self {
        Ofproto {
            state: RwLock::new(State::default()),
            version: AtomicU64::new(1),
            log: Mutex::new(ChangeLog {
                base: 1,
                entries: VecDeque::new(),
            }),
            next_rule_id: AtomicU64::new(1),
            hooks: RwLock::new(None),
            packet_ins: Mutex::new(VecDeque::new()),
            counters: OfprotoCounters::default(),
            tunnels: crate::tunnel::Tunnels::default(),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Milliseconds of datapath time at `t`.
fn ms_of(t: Instant) -> u64 {
    t.saturating_duration_since(epoch()).as_millis() as u64
}

impl Ofproto {
    pub fn new() -> Arc<Ofproto> {
        Arc::new(Ofproto::default())
    }

    /// Connects the datapath (for waiting on revalidation and syncing stats).
    pub fn set_hooks(&self, hooks: Arc<dyn DatapathHooks>) {
        *self.hooks.write().unwrap_or_else(|e| e.into_inner()) = Some(hooks);
    }

    /// Makes flow-mods wait for, and stats reads sync with, `dp`'s PMD threads.
    pub fn connect(&self, dp: &Arc<fvs_datapath::dpif::Datapath<Ofproto>>) {
        self.set_hooks(Arc::new(DatapathLink(Arc::downgrade(dp))));
    }

    fn hooks(&self) -> Option<Arc<dyn DatapathHooks>> {
        self.hooks.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|e| e.into_inner())
    }

    pub fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }

    /// Logs changes under a new version; returns it.
    pub(crate) fn log_changes(&self, changes: Vec<Change>) -> u64 {
        let mut log = lock(&self.log);
        let v = self.version.load(Ordering::Acquire) + 1;
        for c in changes {
            log.entries.push_back((v, c));
        }
        while log.entries.len() > LOG_MAX {
            if let Some((ver, _)) = log.entries.pop_front() {
                log.base = log.base.max(ver);
            }
        }
        // Entries of a version must be all present or all gone.
        while log.entries.front().is_some_and(|(ver, _)| *ver <= log.base) {
            log.entries.pop_front();
        }
        self.version.store(v, Ordering::Release);
        v
    }

    /// Waits until the datapath has caught up with `version`.
    fn wait(&self, version: u64) {
        if let Some(h) = self.hooks() {
            h.wait_version(version);
        }
    }

    fn sync_stats(&self) {
        if let Some(h) = self.hooks() {
            h.sync_stats();
        }
    }

    // ---- bridges and ports ----

    pub fn add_bridge(&self, name: &str) -> Result<u32, OfprotoError> {
        let mut st = self.write();
        if st.bridge(name).is_ok() {
            return Err(OfprotoError::BridgeExists(name.to_string()));
        }
        st.next_bridge_id += 1;
        let id = st.next_bridge_id;
        st.bridges.insert(id, Bridge::new(id, name));
        Ok(id)
    }

    pub fn del_bridge(&self, name: &str) -> Result<(), OfprotoError> {
        let v = {
            let mut st = self.write();
            let id = st.bridge(name)?.id;
            st.bridges.remove(&id);
            st.odp_ports.retain(|_, (b, _)| *b != id);
            self.tunnels.del_bridge(id);
            self.log_changes(vec![Change::All])
        };
        self.wait(v);
        Ok(())
    }

    pub fn bridge_names(&self) -> Vec<String> {
        self.read()
            .bridges
            .values()
            .map(|b| b.name.clone())
            .collect()
    }

    pub fn bridge_id(&self, name: &str) -> Option<u32> {
        self.read().bridge(name).ok().map(|b| b.id)
    }

    /// Runs `f` on a bridge (read-only view).
    pub fn with_bridge<T>(
        &self,
        name: &str,
        f: impl FnOnce(&Bridge) -> T,
    ) -> Result<T, OfprotoError> {
        let st = self.read();
        Ok(f(st.bridge(name)?))
    }

    /// Adds a port to a bridge; returns its OpenFlow port number.
    pub fn add_port(&self, bridge: &str, cfg: PortConfig) -> Result<u16, OfprotoError> {
        let (ofport, v) = {
            let mut st = self.write();
            if st.odp_ports.contains_key(&cfg.odp_port) {
                return Err(OfprotoError::OdpPortInUse(cfg.odp_port));
            }
            let br = st.bridge_mut(bridge)?;
            if br.port_by_name(&cfg.name).is_some() {
                return Err(OfprotoError::PortExists {
                    bridge: bridge.to_string(),
                    port: cfg.name,
                });
            }
            let ofport = br
                .choose_ofport(&cfg.name, cfg.ofport_request)
                .ok_or_else(|| OfprotoError::NoFreeOfport {
                    bridge: bridge.to_string(),
                })?;
            br.ports.insert(
                ofport,
                BridgePort {
                    name: cfg.name,
                    ofport,
                    odp_port: cfg.odp_port,
                    vlan: cfg.vlan,
                    no_flood: cfg.no_flood,
                },
            );
            let id = br.id;
            st.odp_ports.insert(cfg.odp_port, (id, ofport));
            (ofport, self.log_changes(vec![Change::All]))
        };
        self.wait(v);
        Ok(ofport)
    }

    /// Removes a port (by name); returns it.
    pub fn del_port(&self, bridge: &str, name: &str) -> Result<BridgePort, OfprotoError> {
        let (p, v) = {
            let mut st = self.write();
            let br = st.bridge_mut(bridge)?;
            let ofport = br.port_by_name(name).map(|p| p.ofport).ok_or_else(|| {
                OfprotoError::NoSuchPort {
                    bridge: bridge.to_string(),
                    port: name.to_string(),
                }
            })?;
            let p = br.ports.remove(&ofport).expect("port just found");
            self.tunnels.del_port(br.id, ofport);
            lock(&br.fdb).flush(Some(ofport));
            st.odp_ports.remove(&p.odp_port);
            (p, self.log_changes(vec![Change::All]))
        };
        self.wait(v);
        Ok(p)
    }

    /// Changes a port's VLAN configuration and flood setting.
    pub fn set_port_config(
        &self,
        bridge: &str,
        name: &str,
        vlan: VlanConfig,
        no_flood: bool,
    ) -> Result<(), OfprotoError> {
        let v = {
            let mut st = self.write();
            let br = st.bridge_mut(bridge)?;
            let p = br
                .ports
                .values_mut()
                .find(|p| p.name == name)
                .ok_or_else(|| OfprotoError::NoSuchPort {
                    bridge: bridge.to_string(),
                    port: name.to_string(),
                })?;
            if p.vlan == vlan && p.no_flood == no_flood {
                return Ok(());
            }
            p.vlan = vlan;
            p.no_flood = no_flood;
            let ofport = p.ofport;
            lock(&br.fdb).flush(Some(ofport));
            self.log_changes(vec![Change::All])
        };
        self.wait(v);
        Ok(())
    }

    /// OpenFlow port number → port name, for every port of a bridge.
    pub fn port_names(&self, bridge: &str) -> Result<Vec<(u16, String)>, OfprotoError> {
        self.with_bridge(bridge, |b| {
            b.ports().map(|p| (p.ofport, p.name.clone())).collect()
        })
    }

    // ---- flow tables ----

    pub fn flow_mod(&self, bridge: &str, fm: &FlowMod) -> Result<FlowModOutcome, OfprotoError> {
        self.flow_mods(bridge, std::slice::from_ref(fm))
    }

    /// Applies flow-mods in order and returns once the datapath no longer
    /// uses decisions they invalidated. On an error, the mods before it stay
    /// applied (as `ovs-ofctl add-flows` without `--bundle`).
    pub fn flow_mods(&self, bridge: &str, fms: &[FlowMod]) -> Result<FlowModOutcome, OfprotoError> {
        let out = self.flow_mods_unsynced(bridge, fms);
        let (Ok(FlowModOutcome { version, .. }) | Err((_, version))) = &out;
        if *version != 0 {
            self.wait(*version);
        }
        out.map_err(|(e, _)| e)
    }

    /// [`Ofproto::flow_mods`] without waiting for the datapath: the caller
    /// waits for the returned version ([`Ofproto::wait_version`]) before it
    /// relies on the change (an OpenFlow connection: before its next message
    /// that is not a flow-mod, so that a run of them costs one wait). An
    /// error carries the version of the mods applied before it.
    pub fn flow_mods_unsynced(
        &self,
        bridge: &str,
        fms: &[FlowMod],
    ) -> Result<FlowModOutcome, (OfprotoError, u64)> {
        let mut out = FlowModOutcome::default();
        let mut changes = Vec::new();
        let mut result = Ok(());
        {
            let mut st = self.write();
            let br = st.bridge_mut(bridge).map_err(|e| (e, 0))?;
            for fm in fms {
                let missing =
                    openflow::missing_group(br, &fm.actions).map(FlowModError::UnknownGroup);
                if let Err(e) = missing
                    .map_or(Ok(()), Err)
                    .and_then(|_| self.apply(br, fm, &mut changes, &mut out))
                {
                    result = Err(OfprotoError::FlowMod {
                        bridge: bridge.to_string(),
                        error: e,
                    });
                    break;
                }
            }
            if !changes.is_empty() {
                out.version = self.log_changes(changes);
            }
        }
        match result {
            Ok(()) => Ok(out),
            Err(e) => Err((e, out.version)),
        }
    }

    /// Returns once the datapath has seen every change up to `version`.
    pub fn wait_version(&self, version: u64) {
        self.wait(version);
    }

    fn new_rule(&self, fm: &FlowMod, table_id: u8, now: Instant) -> Rule {
        Rule {
            id: self.next_rule_id.fetch_add(1, Ordering::Relaxed),
            table_id,
            priority: fm.priority,
            match_: fm.match_,
            cookie: fm.cookie,
            actions: fm.actions.clone().into(),
            idle_timeout: fm.idle_timeout,
            hard_timeout: fm.hard_timeout,
            importance: fm.importance,
            flags: fm.flags,
            created: now,
            modified: now,
            stats: Arc::new(RuleStats::default()),
        }
    }

    fn check_actions(table: u8, actions: &[OfAction]) -> Result<(), FlowModError> {
        for a in actions {
            if let OfAction::GotoTable(g) = a {
                if *g <= table || *g as usize >= N_TABLES {
                    return Err(FlowModError::BadGoto { table, goto: *g });
                }
            }
        }
        Ok(())
    }

    /// The rules a modify/delete selects.
    fn select(br: &Bridge, fm: &FlowMod) -> Vec<Arc<Rule>> {
        let tables: Vec<u8> = match fm.table_id {
            Some(t) => vec![t],
            None => (0..N_TABLES as u8).collect(),
        };
        let cookie_ok = |r: &Rule| r.cookie & fm.cookie_mask == fm.cookie & fm.cookie_mask;
        let mut out = Vec::new();
        for t in tables {
            let Some(cls) = br.tables.get(t as usize) else {
                continue;
            };
            if fm.command.is_strict() {
                if let Some(r) = cls.find_exact(&fm.match_, fm.priority) {
                    if cookie_ok(r) && r.outputs_to(fm.out_port) && r.outputs_to_group(fm.out_group)
                    {
                        out.push(r.clone());
                    }
                }
            } else {
                out.extend(
                    cls.rules()
                        .filter(|r| {
                            r.match_.is_subset_of(&fm.match_)
                                && cookie_ok(r)
                                && r.outputs_to(fm.out_port)
                                && r.outputs_to_group(fm.out_group)
                        })
                        .cloned(),
                );
            }
        }
        out
    }

    fn apply(
        &self,
        br: &mut Bridge,
        fm: &FlowMod,
        changes: &mut Vec<Change>,
        out: &mut FlowModOutcome,
    ) -> Result<(), FlowModError> {
        let now = Instant::now();
        match fm.command {
            FlowModCommand::Add => self.add(br, fm, changes, now)?,
            FlowModCommand::Modify | FlowModCommand::ModifyStrict => {
                let selected = Self::select(br, fm);
                if selected.is_empty() {
                    // OVS adds when a modify with a new cookie and no cookie mask matched nothing.
                    if fm.modify_cookie && fm.cookie_mask == 0 {
                        self.add(br, fm, changes, now)?;
                        out.added += 1;
                    }
                    return Ok(());
                }
                for old in selected {
                    Self::check_actions(old.table_id, &fm.actions)?;
                    let rule = Rule {
                        id: self.next_rule_id.fetch_add(1, Ordering::Relaxed),
                        cookie: if fm.modify_cookie {
                            fm.cookie
                        } else {
                            old.cookie
                        },
                        actions: fm.actions.clone().into(),
                        modified: now,
                        stats: if fm.flags.reset_counts {
                            Arc::new(RuleStats::default())
                        } else {
                            old.stats.clone()
                        },
                        ..clone_rule(&old)
                    };
                    br.tables[old.table_id as usize].insert(Arc::new(rule));
                    changes.push(Change::RuleRemoved { rule_id: old.id });
                    out.modified += 1;
                }
                return Ok(());
            }
            FlowModCommand::Delete | FlowModCommand::DeleteStrict => {
                for r in Self::select(br, fm) {
                    br.tables[r.table_id as usize].remove(&r.match_, r.priority);
                    changes.push(Change::RuleRemoved { rule_id: r.id });
                    out.deleted += 1;
                    out.removed.push(r);
                }
                return Ok(());
            }
        }
        out.added += 1;
        Ok(())
    }

    fn add(
        &self,
        br: &mut Bridge,
        fm: &FlowMod,
        changes: &mut Vec<Change>,
        now: Instant,
    ) -> Result<(), FlowModError> {
        let table = fm.table_id.unwrap_or(0);
        if table as usize >= N_TABLES {
            return Err(FlowModError::BadTable(table));
        }
        Self::check_actions(table, &fm.actions)?;
        let cls = &mut br.tables[table as usize];
        if fm.flags.check_overlap && cls.find_exact(&fm.match_, fm.priority).is_none() {
            if let Some(r) = cls
                .rules()
                .find(|r| r.priority == fm.priority && r.match_.overlaps(&fm.match_))
            {
                return Err(FlowModError::Overlap(r.priority));
            }
        }
        let rule = Arc::new(self.new_rule(fm, table, now));
        if let Some(old) = cls.insert(rule) {
            changes.push(Change::RuleRemoved { rule_id: old.id });
        }
        changes.push(Change::RuleAdded {
            bridge: br.id,
            table,
            priority: fm.priority,
            match_: Box::new(fm.match_),
        });
        Ok(())
    }

    /// The rules `filter` selects (as a non-strict delete would; `None`:
    /// all), with fresh statistics, ordered by table, priority, then age.
    pub fn dump_flows(
        &self,
        bridge: &str,
        filter: Option<&FlowMod>,
    ) -> Result<Vec<FlowStats>, OfprotoError> {
        self.sync_stats();
        let st = self.read();
        let br = st.bridge(bridge)?;
        let all = FlowMod::new(FlowModCommand::Delete);
        let mut rules = Self::select(br, filter.unwrap_or(&all));
        // Creation order within a priority: a modified rule keeps its place.
        rules.sort_by_key(|r| (r.table_id, std::cmp::Reverse(r.priority), r.created, r.id));
        let now = Instant::now();
        let now_ms = ms_of(now);
        Ok(rules.iter().map(|r| flow_stats(r, now, now_ms)).collect())
    }

    /// Rules per table of a bridge.
    pub fn table_counts(&self, bridge: &str) -> Result<Vec<usize>, OfprotoError> {
        self.with_bridge(bridge, |b| b.tables.iter().map(|t| t.len()).collect())
    }

    /// Removes rules whose idle or hard timeout has passed, and aged-out MACs.
    pub fn run_timeouts(&self) -> Vec<RemovedRule> {
        self.sync_stats();
        let now = Instant::now();
        let now_ms = ms_of(now);
        let mut removed = Vec::new();
        let mut changes = Vec::new();
        {
            let mut st = self.write();
            for br in st.bridges.values_mut() {
                let mut expired = Vec::new();
                for cls in &br.tables {
                    for r in cls.rules() {
                        if let Some(reason) = expiry(r, now, now_ms) {
                            expired.push((r.clone(), reason));
                        }
                    }
                }
                for (r, reason) in expired {
                    br.tables[r.table_id as usize].remove(&r.match_, r.priority);
                    changes.push(Change::RuleRemoved { rule_id: r.id });
                    removed.push(RemovedRule {
                        bridge: br.id,
                        rule: r,
                        reason,
                    });
                }
                for (vlan, mac) in lock(&br.fdb).expire(now) {
                    changes.push(Change::Fdb {
                        bridge: br.id,
                        vlan,
                        mac,
                    });
                }
            }
        }
        if !changes.is_empty() {
            let v = self.log_changes(changes);
            self.wait(v);
        }
        removed
    }

    // ---- MAC learning ----

    /// The entries of a bridge's MAC learning table.
    pub fn fdb_entries(&self, bridge: &str) -> Result<Vec<FdbRow>, OfprotoError> {
        self.with_bridge(bridge, |b| lock(&b.fdb).entries(Instant::now()))
    }

    pub fn fdb_flush(&self, bridge: &str) -> Result<(), OfprotoError> {
        let v = {
            let st = self.read();
            let br = st.bridge(bridge)?;
            let gone = lock(&br.fdb).flush(None);
            self.log_changes(
                gone.into_iter()
                    .map(|(vlan, mac)| Change::Fdb {
                        bridge: br.id,
                        vlan,
                        mac,
                    })
                    .collect(),
            )
        };
        self.wait(v);
        Ok(())
    }

    pub fn set_mac_aging(&self, bridge: &str, aging: Duration) -> Result<(), OfprotoError> {
        self.with_bridge(bridge, |b| lock(&b.fdb).set_aging(aging))
    }

    // ---- slow path ----

    /// Takes the packet-ins queued for the controller.
    pub fn take_packet_ins(&self) -> Vec<PacketIn> {
        lock(&self.packet_ins).drain(..).collect()
    }

    /// Translates a flow arriving on `ofport` of `bridge` without installing
    /// anything (`ofproto/trace`).
    pub fn trace(
        &self,
        bridge: &str,
        key: &FlowKey,
        ofport: u16,
    ) -> Result<XlateOut, OfprotoError> {
        let st = self.read();
        let br = st.bridge(bridge)?;
        Ok(Xlate::new(self, br, key, ofport, true)
            .with_bridges(&st.bridges)
            .run(0))
    }

    /// [`Ofproto::trace`] of an OpenFlow flow, whose pipeline registers and
    /// metadata may start nonzero (`ofproto/trace` takes them in the flow).
    pub fn trace_flow(&self, bridge: &str, flow: &OfFlow) -> Result<XlateOut, OfprotoError> {
        let st = self.read();
        let br = st.bridge(bridge)?;
        let ofport = flow.in_port() as u16;
        Ok(Xlate::new(self, br, &flow.key_part(), ofport, true)
            .with_registers(flow)
            .with_bridges(&st.bridges)
            .run(0))
    }
}

impl Ofproto {
    // ---- tunnels ----

    /// Adds tunnel port `cfg.name` (`type=vxlan`, options `tnl`) to a
    /// bridge. It has no datapath port of its own: `cfg.odp_port` only
    /// names it; its packets arrive on the datapath tunnel port of its UDP
    /// port, which `alloc` numbers when it is the first. Returns the
    /// OpenFlow port and the datapath tunnel port.
    pub fn add_tunnel_port(
        &self,
        bridge: &str,
        cfg: PortConfig,
        tnl: crate::tunnel::TunnelConfig,
        split_horizon: Option<String>,
        alloc: impl FnOnce() -> u32,
    ) -> Result<(u16, u32), OfprotoError> {
        let name = cfg.name.clone();
        let ofport = self.add_port(bridge, cfg)?;
        let id = self
            .bridge_id(bridge)
            .ok_or_else(|| OfprotoError::NoSuchBridge(bridge.into()))?;
        let vport = self
            .tunnels
            .add_port(id, ofport, &name, tnl, split_horizon, alloc);
        let v = self.log_changes(vec![Change::All]);
        self.wait(v);
        Ok((ofport, vport))
    }

    /// Logs a change of tunnel state (routes, devices, neighbours) if there
    /// was one, and returns once the datapath no longer uses decisions made
    /// from the old state.
    pub fn tunnels_changed(&self) {
        let all = self.tunnels.take_changed_devices();
        if self.tunnels.take_changed() || all {
            let c = if all { Change::All } else { Change::Tunnel };
            let v = self.log_changes(vec![c]);
            self.wait(v);
        }
    }

    /// Makes the decisions that met an unknown next hop stale (they are
    /// translated again, which asks for the neighbour again), if there were
    /// any since the last call.
    pub fn retry_tunnel_neighbours(&self) {
        if self.tunnels.take_misses() {
            self.log_changes(vec![Change::TunnelRetry]);
        }
    }

    /// A decision for a decapsulated packet no tunnel port accepts: drop,
    /// for every packet with the same tunnel metadata.
    fn tunnel_drop(&self, key: &FlowKey, version: u64) -> Translation<XlateDeps> {
        let _ = key;
        let mut mask = FlowKey::ZERO;
        crate::tunnel::receive_mask(&mut mask);
        let mut deps = XlateDeps::default();
        deps.tnl.used = true;
        Translation {
            actions: Vec::new(),
            mask,
            deps,
            version,
        }
    }

    /// Credits a megaflow's traffic to the tunnel ports it went through and
    /// keeps its next hops' neighbour entries alive.
    fn credit_tunnels(&self, t: &crate::tunnel::TnlDeps, delta: &FlowCounters) {
        for (stats, sent) in &t.tx {
            if *sent {
                stats.tx_packets.fetch_add(delta.packets, Ordering::Relaxed);
                stats.tx_bytes.fetch_add(delta.bytes, Ordering::Relaxed);
            } else {
                stats.tx_dropped.fetch_add(delta.packets, Ordering::Relaxed);
            }
        }
        if let Some(stats) = &t.rx {
            stats.rx_packets.fetch_add(delta.packets, Ordering::Relaxed);
            stats.rx_bytes.fetch_add(delta.bytes, Ordering::Relaxed);
        }
        for (bridge, ip) in &t.neighs {
            self.tunnels.neigh_touch(bridge, *ip);
        }
    }
}

fn clone_rule(r: &Rule) -> Rule {
    Rule {
        id: r.id,
        table_id: r.table_id,
        priority: r.priority,
        match_: r.match_,
        cookie: r.cookie,
        actions: r.actions.clone(),
        idle_timeout: r.idle_timeout,
        hard_timeout: r.hard_timeout,
        importance: r.importance,
        flags: r.flags,
        created: r.created,
        modified: r.modified,
        stats: r.stats.clone(),
    }
}

/// Milliseconds of datapath time of the rule's last activity.
fn last_active_ms(r: &Rule) -> u64 {
    r.stats
        .used_ms
        .load(Ordering::Relaxed)
        .max(ms_of(r.modified))
}

fn expiry(r: &Rule, now: Instant, now_ms: u64) -> Option<RemovedReason> {
    if r.hard_timeout != 0
        && now.saturating_duration_since(r.modified) >= Duration::from_secs(r.hard_timeout as u64)
    {
        return Some(RemovedReason::HardTimeout);
    }
    if r.idle_timeout != 0
        && now_ms.saturating_sub(last_active_ms(r)) >= r.idle_timeout as u64 * 1000
    {
        return Some(RemovedReason::IdleTimeout);
    }
    None
}

fn flow_stats(r: &Rule, now: Instant, now_ms: u64) -> FlowStats {
    let d = now.saturating_duration_since(r.created);
    let (packets, bytes) = r.stats.get();
    FlowStats {
        table_id: r.table_id,
        duration_sec: d.as_secs() as u32,
        duration_nsec: d.subsec_millis() * 1_000_000,
        priority: r.priority,
        idle_timeout: r.idle_timeout,
        hard_timeout: r.hard_timeout,
        flags: r.flags,
        importance: r.importance,
        cookie: r.cookie,
        packet_count: packets,
        byte_count: bytes,
        idle_age: (now_ms.saturating_sub(last_active_ms(r)) / 1000) as u32,
        hard_age: now.saturating_duration_since(r.modified).as_secs() as u32,
        match_: r.match_,
        actions: r.actions.to_vec(),
    }
}

/// Whether `m` can match a flow of the megaflow `key`/`mask` as the table
/// lookup recorded in `dep` saw it.
fn lookup_overlaps(
    m: &Match,
    dep: &crate::xlate::TableDep,
    key: &FlowKey,
    mask: &FlowKey,
    in_ofport: u16,
) -> bool {
    // Bits fixed for every packet of the megaflow: its mask, the pipeline's
    // own writes, registers, in_port.
    let mut fixed = OfFlow::from_key(mask, 0);
    fixed.b[ofs::IN_PORT..ofs::IN_PORT + 4].fill(0xff);
    fixed.b[ofs::METADATA..].fill(0xff);
    let state = match &dep.state {
        Some(s) => {
            fixed.or_assign(&s.1);
            s.0
        }
        None => OfFlow::from_key(key, in_ofport as u32),
    };
    (0..crate::flow::OF_WORDS).all(|i| {
        let common = m.mask.word(i) & fixed.word(i);
        (m.flow.word(i) ^ state.word(i)) & common == 0
    })
}

impl Upcall for Ofproto {
    type Deps = XlateDeps;
    type Changes = Changes;

    fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }

    fn translate(
        &self,
        key: &FlowKey,
        _pkt: &Packet,
    ) -> Result<Translation<XlateDeps>, UpcallError> {
        let st = self.read();
        let version = self.version.load(Ordering::Acquire);
        let odp = key.in_port();
        // A decapsulated packet arrives on a datapath tunnel port, shared
        // by the tunnel ports its metadata chooses between.
        let (bridge, ofport, tnl_rx) = match st.odp_ports.get(&odp) {
            Some(&(b, p)) => (b, p, None),
            None if self.tunnels.is_vport(odp) => match self.tunnels.receive(key) {
                Some(r) => (r.bridge, r.ofport, Some(r.stats)),
                None => return Ok(self.tunnel_drop(key, version)),
            },
            None => return Err(UpcallError::UnknownPort(odp)),
        };
        let br = st
            .bridges
            .get(&bridge)
            .ok_or(UpcallError::UnknownPort(odp))?;
        self.counters.translations.fetch_add(1, Ordering::Relaxed);
        let mut out = Xlate::new(self, br, key, ofport, false)
            .with_bridges(&st.bridges)
            .run(0);
        if let Some(e) = out.error {
            self.counters.xlate_errors.fetch_add(1, Ordering::Relaxed);
            return Err(UpcallError::Other(e.to_string()));
        }
        let mut mask = out.wc.key_part();
        if tnl_rx.is_some() {
            crate::tunnel::receive_mask(&mut mask);
            out.deps.tnl.used = true;
            out.deps.tnl.rx = tnl_rx;
        }
        Ok(Translation {
            actions: out.actions,
            mask,
            deps: out.deps,
            version,
        })
    }

    fn changes_since(&self, version: u64) -> (Changes, u64) {
        let log = lock(&self.log);
        let now = self.version.load(Ordering::Acquire);
        if version < log.base {
            return (
                Changes {
                    all: true,
                    list: Vec::new(),
                },
                now,
            );
        }
        let list: Vec<_> = log
            .entries
            .iter()
            .filter(|(v, _)| *v > version)
            .cloned()
            .collect();
        if list.len() > CHANGES_MAX || list.iter().any(|(_, c)| *c == Change::All) {
            return (
                Changes {
                    all: true,
                    list: Vec::new(),
                },
                now,
            );
        }
        (Changes { all: false, list }, now)
    }

    fn is_stale(
        &self,
        changes: &Changes,
        key: &FlowKey,
        mask: &FlowKey,
        deps: &XlateDeps,
        flow_version: u64,
    ) -> bool {
        if changes.all {
            return true;
        }
        changes
            .list
            .iter()
            .filter(|(v, _)| *v > flow_version)
            .any(|(_, c)| match c {
                Change::All => true,
                Change::Tunnel => deps.tnl.used,
                Change::TunnelRetry => deps.tnl.neigh_miss,
                Change::RuleAdded { bridge, .. } | Change::Fdb { bridge, .. }
                    if deps.tnl.bridges.contains(bridge) =>
                {
                    true
                }
                Change::RuleRemoved { rule_id } => deps.rules.iter().any(|(id, _)| id == rule_id),
                Change::Fdb { bridge, vlan, mac } => {
                    *bridge == deps.bridge && deps.macs.iter().any(|(v, m)| v == vlan && m == mac)
                }
                Change::RuleAdded {
                    bridge,
                    table,
                    priority,
                    match_,
                } => {
                    *bridge == deps.bridge
                        && deps.tables.iter().any(|t| {
                            t.table == *table
                                && t.hit_priority.is_none_or(|p| *priority >= p)
                                && lookup_overlaps(match_, t, key, mask, deps.in_ofport)
                        })
                }
            })
    }

    fn credit(&self, deps: &XlateDeps, delta: &FlowCounters) {
        if delta.packets == 0 {
            return;
        }
        self.credit_tunnels(&deps.tnl, delta);
        for (_, stats) in &deps.rules {
            stats.credit(delta.packets, delta.bytes, delta.used_ms);
        }
        if let Some((vlan, mac, port)) = deps.learned {
            // Traffic keeps a learned MAC alive (and re-learns it if it moved).
            let st = self.read();
            if let Some(br) = st.bridges.get(&deps.bridge) {
                self.learn(br, vlan, mac, port, Instant::now());
            }
        }
    }

    fn slow_path(&self, pkt: &Packet, what: &SlowPath) {
        let SlowPath::Controller {
            bridge,
            in_port,
            reason,
            max_len,
            table_id,
            cookie,
            ..
        } = what;
        let in_port = *in_port;
        let data = pkt.data();
        let keep = if *max_len == u16::MAX {
            data.len()
        } else {
            data.len().min(*max_len as usize)
        };
        let pi = PacketIn {
            bridge: *bridge,
            reason: *reason,
            table_id: *table_id,
            cookie: *cookie,
            in_port,
            total_len: data.len(),
            data: data[..keep].to_vec(),
        };
        self.counters.packet_ins.fetch_add(1, Ordering::Relaxed);
        let mut q = lock(&self.packet_ins);
        if q.len() >= PACKET_IN_QUEUE {
            q.pop_front();
            self.counters
                .packet_ins_dropped
                .fetch_add(1, Ordering::Relaxed);
        }
        q.push_back(pi);
    }
}
