//! OpenFlow connections of fvs-vswitchd (the I/O around
//! [`fvs_ofproto::ofp::Session`]): per bridge a management socket
//! `<rundir>/<bridge>.mgmt` (what `fvs-ofctl` and `ovs-ofctl` connect to),
//! and the bridge's controllers from the Controller table: active
//! (`tcp:IP[:PORT]`, `unix:PATH`, reconnecting with back-off) and passive
//! (`ptcp:[PORT][:IP]`, `punix:PATH`). One thread polls every socket,
//! delivers packet-ins, flow-removed and port-status messages, probes idle
//! controllers with echo requests, runs fail-open for standalone bridges
//! whose controllers are gone, and reports connection state for the
//! Controller table.

use std::collections::{BTreeMap, HashMap};
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use fvs_datapath::actions::DpAction;
use fvs_datapath::extract::{extract, ExtractStats};
use fvs_datapath::key::FlowKey;
use fvs_datapath::packet::{Batch, Packet};
use fvs_datapath::upcall::Upcall;
use fvs_ofproto::actions::{port, OfAction};
use fvs_ofproto::ofp::msg::{self, pc, pf, ps, DescStats, PortDesc, PortModMsg, PortStats};
use fvs_ofproto::ofp::{self, BridgeShared, ConnKind, OfpErr, PortInfo, Session, SwitchView};
use fvs_ofproto::ofproto::RemovedRule;

use super::Daemon;
use crate::db::value::Uuid;
use crate::db::{Data, SwitchConfig, Txn};

/// The default OpenFlow port (IANA).
pub const OFP_PORT: u16 = 6653;
/// How long `poll` waits when nothing happens (packet-ins are drained at
/// least this often).
const POLL_MS: i32 = 10;
/// Ports and links are compared this often (port-status, liveness).
const PORT_SCAN: Duration = Duration::from_millis(100);
/// Default inactivity probe of a controller connection (OVS's).
const DEFAULT_PROBE: Duration = Duration::from_secs(5);
/// Default and first reconnection back-off.
const DEFAULT_MAX_BACKOFF: Duration = Duration::from_secs(8);
const MIN_BACKOFF: Duration = Duration::from_secs(1);
/// Output queued for a connection beyond which packet-ins are dropped
/// (and counted, OVS's `rconn_overflow`) and its requests are left unread
/// until the peer reads its replies: OVS's rconn backlog bound, so a peer
/// that floods requests without reading cannot grow our memory.
const MAX_QUEUED: usize = 4 << 20;
/// Input buffered for a connection beyond which it is not read.
const MAX_INBUF: usize = 1 << 20;
/// Messages of one connection handled per round, so that one flooding peer
/// cannot hold up the others (OVS handles 50 per ofconn_run).
const MAX_MSGS_PER_ROUND: usize = 100;

/// Packet-ins dropped because their connection's backlog was full.
pub static PACKET_INS_DROPPED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// The path of a bridge's management socket.
pub fn mgmt_path(bridge: &str) -> PathBuf {
    crate::unixctl::rundir().join(format!("{bridge}.mgmt"))
}

/// A datapath id from a bridge name (stable across restarts), as OVS
/// derives one from the bridge's MAC address.
pub fn default_dpid(bridge: &str) -> u64 {
    let h = bridge.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
    });
    h & 0x0000_ffff_ffff_ffff
}

/// A controller target, parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Target {
    Tcp(String),
    Unix(PathBuf),
    PTcp(SocketAddr),
    PUnix(PathBuf),
}

fn parse_target(t: &str) -> Result<Target, String> {
    let (method, rest) = t
        .split_once(':')
        .ok_or_else(|| format!("{t}: not a connection method"))?;
    let host_port = |s: &str| -> (String, Option<u16>) {
        if let Some(r) = s.strip_prefix('[') {
            let (h, p) = r.split_once(']').unwrap_or((r, ""));
            (
                h.to_string(),
                p.strip_prefix(':').and_then(|p| p.parse().ok()),
            )
        } else {
            match s.rsplit_once(':') {
                Some((h, p)) => (h.to_string(), p.parse().ok()),
                None => (s.to_string(), None),
            }
        }
    };
    match method {
        "tcp" => {
            let (h, p) = host_port(rest);
            if h.is_empty() {
                return Err(format!("{t}: missing host"));
            }
            let h = if h.contains(':') { format!("[{h}]") } else { h };
            Ok(Target::Tcp(format!("{h}:{}", p.unwrap_or(OFP_PORT))))
        }
        "ptcp" => {
            // ptcp:[PORT][:IP]
            let (p, ip) = match rest.split_once(':') {
                Some((p, ip)) => (p, ip.trim_start_matches('[').trim_end_matches(']')),
                None => (rest, "0.0.0.0"),
            };
            let port: u16 = if p.is_empty() {
                OFP_PORT
            } else {
                p.parse().map_err(|_| format!("{t}: bad port"))?
            };
            let ip: std::net::IpAddr = ip.parse().map_err(|_| format!("{t}: bad address"))?;
            Ok(Target::PTcp(SocketAddr::new(ip, port)))
        }
        "unix" => Ok(Target::Unix(PathBuf::from(rest))),
        "punix" => Ok(Target::PUnix(PathBuf::from(rest))),
        _ => Err(format!("{t}: unsupported connection method")),
    }
}

/// What the configuration asks of one controller.
#[derive(Clone, Debug, PartialEq, Eq)]
struct CtlWant {
    uuid: Uuid,
    target: String,
    probe: Option<Duration>,
    max_backoff: Duration,
}

/// What the configuration asks of one bridge.
#[derive(Clone, Debug, PartialEq, Eq)]
struct BridgeWant {
    name: String,
    allowed: u32,
    secure: bool,
    dpid: u64,
    controllers: Vec<CtlWant>,
}

fn wanted(cfg: &SwitchConfig) -> Vec<BridgeWant> {
    cfg.bridges
        .iter()
        .map(|b| BridgeWant {
            name: b.name.clone(),
            allowed: ofp::versions_from_names(&b.protocols),
            secure: b.fail_mode.as_deref() == Some("secure"),
            dpid: b
                .other_config
                .get("datapath-id")
                .and_then(|s| u64::from_str_radix(s.trim_start_matches("0x"), 16).ok())
                .unwrap_or_else(|| default_dpid(&b.name)),
            controllers: b
                .controllers
                .iter()
                .map(|c| CtlWant {
                    uuid: c.uuid,
                    target: c.target.clone(),
                    probe: match c.inactivity_probe {
                        Some(0) => None,
                        Some(ms) => Some(Duration::from_millis(ms.max(100) as u64)),
                        None => Some(DEFAULT_PROBE),
                    },
                    max_backoff: c
                        .max_backoff
                        .map(|ms| Duration::from_millis(ms.max(1000) as u64))
                        .unwrap_or(DEFAULT_MAX_BACKOFF),
                })
                .collect(),
        })
        .collect()
}

/// A controller's state as the Controller table reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct CtlStatus {
    connected: bool,
    role: Option<String>,
    state: &'static str,
    last_error: Option<String>,
    since_connect: Option<Instant>,
    since_disconnect: Option<Instant>,
}

struct Shared {
    daemon: Arc<Daemon>,
    stop: AtomicBool,
    /// Wanted configuration and its generation.
    want: Mutex<(u64, Vec<BridgeWant>)>,
    /// Management listeners bound by `configure`, for the thread to take.
    new_mgmt: Mutex<Vec<(String, UnixListener)>>,
    removed: Mutex<Vec<RemovedRule>>,
    status: Mutex<BTreeMap<Uuid, CtlStatus>>,
}

/// The OpenFlow side of the daemon.
pub struct Manager {
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
    /// Bridges whose management socket `configure` made.
    mgmt: Mutex<BTreeMap<String, PathBuf>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Manager {
    /// Starts the connection thread.
    pub fn start(daemon: &Arc<Daemon>) -> Manager {
        let shared = Arc::new(Shared {
            daemon: daemon.clone(),
            stop: AtomicBool::new(false),
            want: Mutex::new((0, Vec::new())),
            new_mgmt: Mutex::new(Vec::new()),
            removed: Mutex::new(Vec::new()),
            status: Mutex::new(BTreeMap::new()),
        });
        let s = shared.clone();
        let thread = std::thread::Builder::new()
            .name("openflow".into())
            .spawn(move || Worker::new(s).run())
            .ok();
        Manager {
            shared,
            thread: Mutex::new(thread),
            mgmt: Mutex::new(BTreeMap::new()),
        }
    }

    /// Applies the configuration: management sockets exist when this
    /// returns (so a tool run right after `add-br` finds one); controllers
    /// are (re)connected by the thread.
    pub fn configure(&self, cfg: &SwitchConfig) {
        let want = wanted(cfg);
        let mut mgmt = lock(&self.mgmt);
        for b in &want {
            if mgmt.contains_key(&b.name) {
                continue;
            }
            let path = mgmt_path(&b.name);
            let _ = std::fs::remove_file(&path);
            match UnixListener::bind(&path) {
                Ok(l) => {
                    let _ = l.set_nonblocking(true);
                    lock(&self.shared.new_mgmt).push((b.name.clone(), l));
                    mgmt.insert(b.name.clone(), path);
                }
                Err(e) => self.shared.daemon.log.warn(
                    "connmgr",
                    &format!("{}: cannot listen ({e})", path.display()),
                ),
            }
        }
        let gone: Vec<String> = mgmt
            .keys()
            .filter(|n| !want.iter().any(|b| &b.name == *n))
            .cloned()
            .collect();
        for n in gone {
            if let Some(p) = mgmt.remove(&n) {
                let _ = std::fs::remove_file(p);
            }
        }
        let mut w = lock(&self.shared.want);
        if w.1 != want {
            w.0 += 1;
            w.1 = want;
        }
    }

    /// Rules that expired (their flow-removed messages).
    pub fn flow_removed(&self, removed: Vec<RemovedRule>) {
        if !removed.is_empty() {
            lock(&self.shared.removed).extend(removed);
        }
    }

    /// The transaction that brings the Controller table's status columns
    /// to what the connections are (empty when they already say so).
    pub fn status_txn(&self, data: &Data) -> Txn {
        let mut txn = Txn::new();
        let status = lock(&self.shared.status).clone();
        let now = Instant::now();
        for (uuid, row) in data.rows("Controller") {
            let Some(st) = status.get(&uuid) else {
                continue;
            };
            let mut map: BTreeMap<String, String> = BTreeMap::new();
            map.insert("state".into(), st.state.into());
            if let Some(e) = &st.last_error {
                map.insert("last_error".into(), e.clone());
            }
            if let Some(t) = st.since_connect {
                map.insert(
                    "sec_since_connect".into(),
                    now.saturating_duration_since(t).as_secs().to_string(),
                );
            }
            if let Some(t) = st.since_disconnect {
                map.insert(
                    "sec_since_disconnect".into(),
                    now.saturating_duration_since(t).as_secs().to_string(),
                );
            }
            let same = row.bool("is_connected") == st.connected
                && row.opt_str("role") == st.role.as_deref()
                && row.string_map("status") == map;
            if !same {
                txn.set_controller_status(
                    uuid,
                    st.connected,
                    st.role.as_deref(),
                    map.iter().map(|(k, v)| (k.as_str(), v.as_str())),
                );
            }
        }
        txn
    }

    /// Stops the thread, closes every connection and removes the
    /// management sockets.
    pub fn stop(&self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        if let Some(t) = lock(&self.thread).take() {
            let _ = t.join();
        }
        for (_, p) in std::mem::take(&mut *lock(&self.mgmt)) {
            let _ = std::fs::remove_file(p);
        }
    }
}

impl Drop for Manager {
    fn drop(&mut self) {
        self.stop();
    }
}

enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Stream {
    fn fd(&self) -> RawFd {
        match self {
            Stream::Tcp(s) => s.as_raw_fd(),
            Stream::Unix(s) => s.as_raw_fd(),
        }
    }

    fn set_nonblocking(&self) {
        let _ = match self {
            Stream::Tcp(s) => {
                let _ = s.set_nodelay(true);
                s.set_nonblocking(true)
            }
            Stream::Unix(s) => s.set_nonblocking(true),
        };
    }

    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.read(buf),
            Stream::Unix(s) => s.read(buf),
        }
    }

    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.write(buf),
            Stream::Unix(s) => s.write(buf),
        }
    }
}

enum Listen {
    Tcp(TcpListener),
    Unix(UnixListener, Option<PathBuf>),
}

impl Listen {
    fn fd(&self) -> RawFd {
        match self {
            Listen::Tcp(l) => l.as_raw_fd(),
            Listen::Unix(l, _) => l.as_raw_fd(),
        }
    }

    fn accept(&self) -> std::io::Result<Stream> {
        match self {
            Listen::Tcp(l) => l.accept().map(|(s, _)| Stream::Tcp(s)),
            Listen::Unix(l, _) => l.accept().map(|(s, _)| Stream::Unix(s)),
        }
    }
}

impl Drop for Listen {
    fn drop(&mut self) {
        if let Listen::Unix(_, Some(p)) = self {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// Where a connection came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Origin {
    Mgmt,
    /// A controller (active or accepted by its passive listener).
    Controller(Uuid),
}

struct Conn {
    stream: Stream,
    session: Session,
    bridge: String,
    origin: Origin,
    inbuf: InBuf,
    out: Vec<u8>,
    last_rx: Instant,
    probe: Option<Duration>,
    probed: bool,
    dead: bool,
}

/// Bytes received and not yet handled. Messages are taken from the front
/// by moving a start offset; the buffer is compacted only once the handled
/// part outgrows the rest, so a backlog of many small messages (an
/// add-flows of 100k rules) is not moved once per message.
#[derive(Default)]
struct InBuf {
    buf: Vec<u8>,
    start: usize,
}

impl InBuf {
    fn pending(&self) -> &[u8] {
        &self.buf[self.start..]
    }

    fn len(&self) -> usize {
        self.buf.len() - self.start
    }

    fn extend_from_slice(&mut self, b: &[u8]) {
        self.buf.extend_from_slice(b);
    }

    /// Takes the first `n` pending bytes.
    fn take(&mut self, n: usize) -> Vec<u8> {
        let n = n.min(self.len());
        let v = self.buf[self.start..self.start + n].to_vec();
        self.start += n;
        if self.start >= self.buf.len() - self.start {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        v
    }

    fn clear(&mut self) {
        self.buf.clear();
        self.start = 0;
    }
}

struct ListenerEntry {
    bridge: String,
    origin: Origin,
    kind: ConnKind,
    probe: Option<Duration>,
    listen: Listen,
}

/// An active controller's connection attempts.
struct Active {
    bridge: String,
    want: CtlWant,
    target: Target,
    backoff: Duration,
    next_try: Instant,
    pending: Option<Receiver<std::io::Result<Stream>>>,
    connected: bool,
    last_error: Option<String>,
    since_connect: Option<Instant>,
    since_disconnect: Option<Instant>,
}

struct Worker {
    shared: Arc<Shared>,
    generation: u64,
    want: Vec<BridgeWant>,
    listeners: Vec<ListenerEntry>,
    actives: Vec<Active>,
    conns: Vec<Conn>,
    bridges: HashMap<String, BridgeState>,
    port_state: PortState,
    dpids: HashMap<String, u64>,
    last_scan: Instant,
    passive_errors: HashMap<Uuid, String>,
    /// Some connection has whole messages left to handle (poll without waiting).
    input_pending: bool,
}

#[derive(Default)]
struct BridgeState {
    shared: BridgeShared,
    ports: BTreeMap<u16, PortDesc>,
    /// When a controller was last connected (or configured).
    last_connected: Option<Instant>,
    fail_open: bool,
    miss_to_controller: bool,
}

impl Worker {
    fn new(shared: Arc<Shared>) -> Worker {
        Worker {
            shared,
            generation: 0,
            want: Vec::new(),
            listeners: Vec::new(),
            actives: Vec::new(),
            conns: Vec::new(),
            bridges: HashMap::new(),
            port_state: PortState::default(),
            dpids: HashMap::new(),
            last_scan: Instant::now() - PORT_SCAN,
            passive_errors: HashMap::new(),
            input_pending: false,
        }
    }

    fn log(&self) -> &super::vlog::Vlog {
        &self.shared.daemon.log
    }

    fn run(mut self) {
        while !self.shared.stop.load(Ordering::Relaxed) {
            self.reconfigure();
            self.connect_actives();
            self.poll();
            self.deliver_async();
            self.keepalive();
            self.flush();
            self.reap();
            self.update_status();
        }
        for c in &mut self.conns {
            let out = std::mem::take(&mut c.out);
            let _ = c.stream.write(&out);
        }
    }

    fn want_of(&self, bridge: &str) -> Option<&BridgeWant> {
        self.want.iter().find(|b| b.name == bridge)
    }

    fn reconfigure(&mut self) {
        for (bridge, l) in std::mem::take(&mut *lock(&self.shared.new_mgmt)) {
            self.listeners
                .retain(|e| !(e.bridge == bridge && e.origin == Origin::Mgmt));
            self.listeners.push(ListenerEntry {
                bridge,
                origin: Origin::Mgmt,
                kind: ConnKind::Service,
                probe: None,
                listen: Listen::Unix(l, None),
            });
        }
        let (generation, want) = {
            let w = lock(&self.shared.want);
            (w.0, w.1.clone())
        };
        if generation == self.generation {
            return;
        }
        self.generation = generation;
        let old = std::mem::replace(&mut self.want, want);
        self.dpids = self.want.iter().map(|b| (b.name.clone(), b.dpid)).collect();
        // Bridges gone, or whose protocols changed: their connections go.
        for c in &mut self.conns {
            let now = self.want.iter().find(|b| b.name == c.bridge);
            let before = old.iter().find(|b| b.name == c.bridge);
            let keep = match (now, before) {
                (Some(n), Some(b)) => {
                    n.allowed == b.allowed
                        && match c.origin {
                            Origin::Mgmt => true,
                            Origin::Controller(u) => n.controllers.iter().any(|x| x.uuid == u),
                        }
                }
                (Some(_), None) => true,
                _ => false,
            };
            if !keep {
                c.dead = true;
            }
        }
        let want = self.want.clone();
        self.listeners.retain(|e| {
            let Some(b) = want.iter().find(|b| b.name == e.bridge) else {
                return false;
            };
            match e.origin {
                Origin::Mgmt => true,
                Origin::Controller(u) => b.controllers.iter().any(|c| c.uuid == u),
            }
        });
        self.actives.retain(|a| {
            want.iter()
                .find(|b| b.name == a.bridge)
                .is_some_and(|b| b.controllers.contains(&a.want))
        });
        self.bridges
            .retain(|n, _| want.iter().any(|b| &b.name == n));
        for b in &want {
            let st = self.bridges.entry(b.name.clone()).or_default();
            if !b.controllers.is_empty() && st.last_connected.is_none() {
                st.last_connected = Some(Instant::now());
            }
            for c in &b.controllers {
                match parse_target(&c.target) {
                    Ok(t @ (Target::Tcp(_) | Target::Unix(_))) => {
                        if !self.actives.iter().any(|a| a.want == *c) {
                            self.log().info(
                                "connmgr",
                                &format!("{}: added primary controller \"{}\"", b.name, c.target),
                            );
                            self.actives.push(Active {
                                bridge: b.name.clone(),
                                want: c.clone(),
                                target: t,
                                backoff: MIN_BACKOFF,
                                next_try: Instant::now(),
                                pending: None,
                                connected: false,
                                last_error: None,
                                since_connect: None,
                                since_disconnect: None,
                            });
                        }
                    }
                    Ok(t @ (Target::PTcp(_) | Target::PUnix(_))) => {
                        let origin = Origin::Controller(c.uuid);
                        if self.listeners.iter().any(|e| e.origin == origin) {
                            continue;
                        }
                        let l = match &t {
                            Target::PTcp(addr) => TcpListener::bind(addr).map(Listen::Tcp),
                            Target::PUnix(p) => {
                                let _ = std::fs::remove_file(p);
                                UnixListener::bind(p).map(|l| Listen::Unix(l, Some(p.clone())))
                            }
                            _ => unreachable!(),
                        };
                        match l {
                            Ok(l) => {
                                let _ = match &l {
                                    Listen::Tcp(t) => t.set_nonblocking(true),
                                    Listen::Unix(u, _) => u.set_nonblocking(true),
                                };
                                self.passive_errors.remove(&c.uuid);
                                self.log().info(
                                    "connmgr",
                                    &format!("{}: listening on \"{}\"", b.name, c.target),
                                );
                                self.listeners.push(ListenerEntry {
                                    bridge: b.name.clone(),
                                    origin,
                                    kind: ConnKind::Primary,
                                    probe: c.probe,
                                    listen: l,
                                });
                            }
                            Err(e) => {
                                let msg = format!("{}: {e}", c.target);
                                if self.passive_errors.get(&c.uuid) != Some(&msg) {
                                    self.log().warn("connmgr", &msg);
                                }
                                self.passive_errors.insert(c.uuid, msg);
                            }
                        }
                    }
                    Err(e) => {
                        if self.passive_errors.get(&c.uuid) != Some(&e) {
                            self.log().warn("connmgr", &e);
                        }
                        self.passive_errors.insert(c.uuid, e);
                    }
                }
            }
        }
    }

    fn connect_actives(&mut self) {
        let now = Instant::now();
        let mut new_conns = Vec::new();
        for a in &mut self.actives {
            if let Some(rx) = &a.pending {
                match rx.try_recv() {
                    Ok(Ok(stream)) => {
                        a.pending = None;
                        a.connected = true;
                        a.since_connect = Some(now);
                        a.backoff = MIN_BACKOFF;
                        a.last_error = None;
                        new_conns.push((a.bridge.clone(), a.want.clone(), stream));
                    }
                    Ok(Err(e)) => {
                        a.pending = None;
                        a.last_error = Some(e.to_string());
                        a.next_try = now + a.backoff;
                        a.backoff = (a.backoff * 2).min(a.want.max_backoff);
                    }
                    Err(mpsc::TryRecvError::Empty) => {}
                    Err(mpsc::TryRecvError::Disconnected) => a.pending = None,
                }
                continue;
            }
            if a.connected || now < a.next_try {
                continue;
            }
            let (tx, rx) = mpsc::channel();
            let target = a.target.clone();
            // Connecting may take long (a remote host): not on this thread.
            let spawned = std::thread::Builder::new()
                .name("of-connect".into())
                .spawn(move || {
                    let r = match target {
                        Target::Tcp(hp) => hp
                            .to_socket_addrs()
                            .and_then(|mut it| {
                                it.next().ok_or_else(|| {
                                    std::io::Error::new(ErrorKind::NotFound, "no address")
                                })
                            })
                            .and_then(|addr| {
                                TcpStream::connect_timeout(&addr, Duration::from_secs(5))
                            })
                            .map(Stream::Tcp),
                        Target::Unix(p) => UnixStream::connect(p).map(Stream::Unix),
                        _ => Err(std::io::Error::new(ErrorKind::InvalidInput, "passive")),
                    };
                    let _ = tx.send(r);
                });
            if spawned.is_ok() {
                a.pending = Some(rx);
            } else {
                a.next_try = now + a.backoff;
            }
        }
        for (bridge, want, stream) in new_conns {
            self.log()
                .info("rconn", &format!("{bridge}<->{}: connected", want.target));
            self.add_conn(
                stream,
                &bridge,
                Origin::Controller(want.uuid),
                ConnKind::Primary,
                want.probe,
            );
        }
    }

    fn add_conn(
        &mut self,
        stream: Stream,
        bridge: &str,
        origin: Origin,
        kind: ConnKind,
        probe: Option<Duration>,
    ) {
        stream.set_nonblocking();
        let allowed = self
            .want_of(bridge)
            .map(|b| b.allowed)
            .unwrap_or(ofp::SUPPORTED);
        let mut session = Session::new(bridge, allowed, kind);
        let out: Vec<u8> = session.take_output().concat();
        self.conns.push(Conn {
            stream,
            session,
            bridge: bridge.to_string(),
            origin,
            inbuf: InBuf::default(),
            out,
            last_rx: Instant::now(),
            probe,
            probed: false,
            dead: false,
        });
    }

    fn poll(&mut self) {
        let mut fds: Vec<libc::pollfd> = Vec::new();
        let of = &self.shared.daemon.of;
        for l in &self.listeners {
            // Connections wait in the backlog until their bridge exists.
            let ready = of.bridge_id(&l.bridge).is_some();
            fds.push(libc::pollfd {
                fd: l.listen.fd(),
                events: if ready { libc::POLLIN } else { 0 },
                revents: 0,
            });
        }
        for c in &self.conns {
            // A connection with a full backlog is not read until it drains.
            let mut events = if c.out.len() > MAX_QUEUED || c.inbuf.len() > MAX_INBUF {
                0
            } else {
                libc::POLLIN
            };
            if !c.out.is_empty() {
                events |= libc::POLLOUT;
            }
            fds.push(libc::pollfd {
                fd: c.stream.fd(),
                events,
                revents: 0,
            });
        }
        let wait = if self.input_pending { 0 } else { POLL_MS };
        // SAFETY: `fds` is a live, correctly sized array of pollfd for the
        // duration of the call; poll only writes their `revents`.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, wait) };
        if n <= 0 {
            if self.input_pending {
                self.process_input();
            }
            return;
        }
        let nl = self.listeners.len();
        let mut accepted = Vec::new();
        for (i, l) in self.listeners.iter().enumerate() {
            if fds[i].revents == 0 {
                continue;
            }
            while let Ok(s) = l.listen.accept() {
                accepted.push((s, l.bridge.clone(), l.origin, l.kind, l.probe));
            }
        }
        let mut buf = vec![0u8; 65536];
        for (i, c) in self.conns.iter_mut().enumerate() {
            let re = fds[nl + i].revents;
            if re == 0 {
                continue;
            }
            if re & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0
                && c.inbuf.len() <= MAX_INBUF
            {
                loop {
                    match c.stream.read(&mut buf) {
                        Ok(0) => {
                            c.dead = true;
                            break;
                        }
                        Ok(n) => {
                            c.inbuf.extend_from_slice(&buf[..n]);
                            c.last_rx = Instant::now();
                            c.probed = false;
                            if c.inbuf.len() > MAX_INBUF {
                                break;
                            }
                        }
                        Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                        Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                        Err(_) => {
                            c.dead = true;
                            break;
                        }
                    }
                }
            }
        }
        for (s, bridge, origin, kind, probe) in accepted {
            self.add_conn(s, &bridge, origin, kind, probe);
        }
        self.process_input();
    }

    fn process_input(&mut self) {
        let daemon = self.shared.daemon.clone();
        let mut events = Vec::new();
        self.input_pending = false;
        for i in 0..self.conns.len() {
            let mut budget = MAX_MSGS_PER_ROUND;
            loop {
                let c = &mut self.conns[i];
                if c.session.is_closed() {
                    break;
                }
                if budget == 0 || c.out.len() > MAX_QUEUED {
                    // The rest waits for the next round (or for the peer to
                    // read its replies).
                    let whole = matches!(msg::frame_len(c.inbuf.pending()), Some(Ok(n)) if c.inbuf.len() >= n);
                    if budget == 0 && whole {
                        self.input_pending = true;
                    }
                    break;
                }
                budget -= 1;
                let n = match msg::frame_len(c.inbuf.pending()) {
                    None => break,
                    Some(Err(e)) => {
                        // A header whose length is below 8: the stream
                        // cannot be framed any more. Answer and close.
                        let v = c.session.version().unwrap_or(ofp::OFP10);
                        let h = msg::Header::parse(c.inbuf.pending()).map_or(0, |h| h.xid);
                        if let Ok(f) = ofp::encode(v, h, &ofp::Msg::error(v, e, c.inbuf.pending()))
                        {
                            c.out.extend_from_slice(&f);
                        }
                        c.inbuf.clear();
                        c.dead = true;
                        break;
                    }
                    Some(Ok(n)) => n,
                };
                if c.inbuf.len() < n {
                    break;
                }
                let frame = c.inbuf.take(n);
                let bridge = c.bridge.clone();
                let mut shared =
                    std::mem::take(&mut self.bridges.entry(bridge.clone()).or_default().shared);
                // The session needs the switch's view (of this worker) and
                // itself: take it out of its connection meanwhile.
                let mut session = std::mem::replace(
                    &mut self.conns[i].session,
                    Session::new("", 0, ConnKind::Service),
                );
                let ev = {
                    let view = View {
                        daemon: &daemon,
                        dpids: &self.dpids,
                        ports: &self.port_state,
                    };
                    session.receive(&daemon.of, &view, &mut shared, &frame)
                };
                let c = &mut self.conns[i];
                c.session = session;
                for f in c.session.take_output() {
                    c.out.extend_from_slice(&f);
                }
                self.bridges.entry(bridge.clone()).or_default().shared = shared;
                if ev.became_master || !ev.removed.is_empty() {
                    events.push((i, bridge, ev));
                }
            }
            // Its flow-mods of this round are in effect before the next.
            self.conns[i].session.sync(&daemon.of);
        }
        for (i, bridge, ev) in events {
            if ev.became_master {
                for (j, c) in self.conns.iter_mut().enumerate() {
                    if j != i && c.bridge == bridge {
                        c.session.demote();
                    }
                }
            }
            self.broadcast_removed(&ev.removed);
        }
    }

    fn broadcast_removed(&mut self, removed: &[RemovedRule]) {
        for r in removed {
            let Some(name) = self.shared.daemon.of.bridge_name(r.bridge) else {
                continue;
            };
            for c in self.conns.iter_mut().filter(|c| c.bridge == name) {
                if c.session.flow_removed(r) {
                    for f in c.session.take_output() {
                        c.out.extend_from_slice(&f);
                    }
                }
            }
        }
    }

    fn deliver_async(&mut self) {
        let of = self.shared.daemon.of.clone();
        let pis = of.take_packet_ins();
        if !pis.is_empty() {
            let mut names: HashMap<u32, Option<String>> = HashMap::new();
            for pi in &pis {
                let name = names
                    .entry(pi.bridge)
                    .or_insert_with(|| of.bridge_name(pi.bridge));
                let Some(name) = name else { continue };
                for c in self.conns.iter_mut().filter(|c| &c.bridge == name) {
                    if c.out.len() > MAX_QUEUED {
                        PACKET_INS_DROPPED.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    if c.session.packet_in(pi) {
                        for f in c.session.take_output() {
                            c.out.extend_from_slice(&f);
                        }
                    }
                }
            }
        }
        let removed = std::mem::take(&mut *lock(&self.shared.removed));
        self.broadcast_removed(&removed);
        if self.last_scan.elapsed() >= PORT_SCAN {
            self.last_scan = Instant::now();
            self.scan_ports();
            self.bridge_modes();
        }
    }

    /// Port-status messages for ports that came, went or changed, and the
    /// liveness fast-failover groups watch.
    fn scan_ports(&mut self) {
        let daemon = self.shared.daemon.clone();
        let names: Vec<String> = self.want.iter().map(|b| b.name.clone()).collect();
        for name in names {
            let now: BTreeMap<u16, PortDesc> = View {
                daemon: &daemon,
                dpids: &self.dpids,
                ports: &self.port_state,
            }
            .ports(&name)
            .into_iter()
            .map(|p| (p.desc.port_no, p.desc))
            .collect();
            let st = self.bridges.entry(name.clone()).or_default();
            let before = std::mem::take(&mut st.ports);
            let mut msgs = Vec::new();
            for (n, d) in &now {
                match before.get(n) {
                    None => msgs.push((0u8, d.clone())),
                    Some(old) if old != d => msgs.push((2, d.clone())),
                    _ => {}
                }
                let live = d.state & ps::LINK_DOWN == 0 && d.config & pc::PORT_DOWN == 0;
                let was = before
                    .get(n)
                    .map(|o| o.state & ps::LINK_DOWN == 0 && o.config & pc::PORT_DOWN == 0);
                if was != Some(live) {
                    daemon.of.set_port_live(&name, *n, live);
                }
            }
            for (n, d) in &before {
                if !now.contains_key(n) {
                    msgs.push((1, d.clone()));
                }
            }
            st.ports = now;
            if msgs.is_empty() {
                continue;
            }
            for c in self.conns.iter_mut().filter(|c| c.bridge == name) {
                for (reason, d) in &msgs {
                    c.session.port_status(*reason, d);
                }
                for f in c.session.take_output() {
                    c.out.extend_from_slice(&f);
                }
            }
        }
    }

    /// Fail-open for standalone bridges whose controllers have been away
    /// (3 inactivity probes), and table misses to OpenFlow 1.0 controllers.
    fn bridge_modes(&mut self) {
        let of = self.shared.daemon.of.clone();
        let now = Instant::now();
        for b in &self.want {
            let connected = self.conns.iter().any(|c| {
                c.bridge == b.name
                    && matches!(c.origin, Origin::Controller(_))
                    && c.session.version().is_some()
                    && !c.dead
            });
            let miss = self
                .conns
                .iter()
                .any(|c| c.bridge == b.name && c.session.wants_table_miss() && !c.dead);
            let st = self.bridges.entry(b.name.clone()).or_default();
            if connected {
                st.last_connected = Some(now);
            }
            let probe = b
                .controllers
                .iter()
                .filter_map(|c| c.probe)
                .max()
                .unwrap_or(DEFAULT_PROBE);
            let trigger = (probe * 3).max(Duration::from_secs(1));
            let fail_open = !b.secure
                && !b.controllers.is_empty()
                && !connected
                && st
                    .last_connected
                    .is_some_and(|t| now.saturating_duration_since(t) >= trigger);
            if fail_open != st.fail_open {
                st.fail_open = fail_open;
                of.set_fail_open(&b.name, fail_open);
                self.shared.daemon.log.info(
                    "fail_open",
                    &format!(
                        "{}: {} fail-open mode",
                        b.name,
                        if fail_open { "entering" } else { "leaving" }
                    ),
                );
            }
            if miss != st.miss_to_controller {
                st.miss_to_controller = miss;
                of.set_miss_to_controller(&b.name, miss);
            }
        }
    }

    fn keepalive(&mut self) {
        let now = Instant::now();
        for c in &mut self.conns {
            let Some(probe) = c.probe else { continue };
            let idle = now.saturating_duration_since(c.last_rx);
            if idle >= probe * 2 && c.probed {
                self.shared.daemon.log.warn(
                    "rconn",
                    &format!(
                        "{}: no response to inactivity probe, disconnecting",
                        c.bridge
                    ),
                );
                c.dead = true;
            } else if idle >= probe && !c.probed {
                c.session.echo_request();
                c.probed = true;
                for f in c.session.take_output() {
                    c.out.extend_from_slice(&f);
                }
            }
        }
    }

    fn flush(&mut self) {
        for c in &mut self.conns {
            while !c.out.is_empty() {
                match c.stream.write(&c.out) {
                    Ok(0) => {
                        c.dead = true;
                        break;
                    }
                    Ok(n) => {
                        c.out.drain(..n);
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                    Err(_) => {
                        c.dead = true;
                        break;
                    }
                }
            }
            if c.session.is_closed() && c.out.is_empty() {
                c.dead = true;
            }
        }
    }

    fn reap(&mut self) {
        let now = Instant::now();
        let mut gone = Vec::new();
        self.conns.retain(|c| {
            if c.dead {
                gone.push((c.origin, c.bridge.clone()));
            }
            !c.dead
        });
        for (origin, bridge) in gone {
            if let Origin::Controller(u) = origin {
                if let Some(a) = self.actives.iter_mut().find(|a| a.want.uuid == u) {
                    a.connected = false;
                    a.since_disconnect = Some(now);
                    a.next_try = now + a.backoff;
                    a.backoff = (a.backoff * 2).min(a.want.max_backoff);
                    self.shared.daemon.log.info(
                        "rconn",
                        &format!("{bridge}<->{}: connection closed", a.want.target),
                    );
                }
            }
        }
    }

    fn update_status(&mut self) {
        let mut st = BTreeMap::new();
        for b in &self.want {
            for c in &b.controllers {
                let conn = self.conns.iter().find(|x| {
                    x.origin == Origin::Controller(c.uuid) && x.session.version().is_some()
                });
                let role = conn.map(|x| x.session.role_name().to_string());
                let active = self.actives.iter().find(|a| a.want.uuid == c.uuid);
                let s = match active {
                    Some(a) => CtlStatus {
                        connected: conn.is_some(),
                        role,
                        state: if conn.is_some() {
                            "ACTIVE"
                        } else if a.pending.is_some() {
                            "CONNECTING"
                        } else {
                            "BACKOFF"
                        },
                        last_error: a.last_error.clone(),
                        since_connect: a.since_connect,
                        since_disconnect: a.since_disconnect,
                    },
                    None => CtlStatus {
                        connected: conn.is_some(),
                        role,
                        state: if conn.is_some() {
                            "ACTIVE"
                        } else if self.passive_errors.contains_key(&c.uuid) {
                            "VOID"
                        } else {
                            "LISTENING"
                        },
                        last_error: self.passive_errors.get(&c.uuid).cloned(),
                        since_connect: None,
                        since_disconnect: None,
                    },
                };
                st.insert(c.uuid, s);
            }
        }
        let mut cur = lock(&self.shared.status);
        if *cur != st {
            *cur = st;
        }
    }
}

/// Port configuration bits set by port-mods, and when each port was first
/// seen (its statistics' duration).
#[derive(Default)]
pub struct PortState {
    cfg: std::cell::RefCell<HashMap<(String, u16), u32>>,
    seen: std::cell::RefCell<HashMap<(String, u16), Instant>>,
}

/// The switch as a session sees it: ports from the daemon's netdevs,
/// packet output through them.
pub struct View<'a> {
    pub daemon: &'a Arc<Daemon>,
    /// Datapath id by bridge (others get [`default_dpid`]).
    pub dpids: &'a HashMap<String, u64>,
    pub ports: &'a PortState,
}

impl SwitchView for View<'_> {
    fn datapath_id(&self, bridge: &str) -> u64 {
        self.dpids
            .get(bridge)
            .copied()
            .unwrap_or_else(|| default_dpid(bridge))
    }

    fn ports(&self, bridge: &str) -> Vec<PortInfo> {
        let mut ifaces: Vec<_> = self
            .daemon
            .interfaces()
            .into_iter()
            .filter(|(_, b, _, _)| b == bridge)
            .collect();
        // LOCAL first, then by number (the order OVS replies in).
        ifaces.sort_by_key(|(_, _, n, _)| if *n == port::LOCAL { 0 } else { *n as u32 + 1 });
        let now = Instant::now();
        ifaces
            .into_iter()
            .map(|(name, _, n, nd)| {
                let up = nd.is_up();
                let cfg = self
                    .ports
                    .cfg
                    .borrow()
                    .get(&(bridge.to_string(), n))
                    .copied()
                    .unwrap_or(0);
                let since = *self
                    .ports
                    .seen
                    .borrow_mut()
                    .entry((bridge.to_string(), n))
                    .or_insert(now);
                let d = now.saturating_duration_since(since);
                let s = nd.stats();
                PortInfo {
                    desc: PortDesc {
                        port_no: n,
                        hw_addr: nd.mac(),
                        name,
                        config: cfg | if up { 0 } else { pc::PORT_DOWN },
                        state: if up { ps::LIVE } else { ps::LINK_DOWN },
                        curr: pf::F_10GB_FD | pf::COPPER,
                        advertised: 0,
                        supported: 0,
                        peer: 0,
                        curr_speed: 10_000_000,
                        max_speed: 0,
                    },
                    stats: PortStats {
                        port_no: n,
                        rx_packets: s.rx_packets,
                        tx_packets: s.tx_packets,
                        rx_bytes: s.rx_bytes,
                        tx_bytes: s.tx_bytes,
                        rx_dropped: s.rx_dropped,
                        tx_dropped: s.tx_dropped,
                        rx_errors: s.rx_errors,
                        tx_errors: s.tx_errors,
                        duration_sec: d.as_secs() as u32,
                        duration_nsec: d.subsec_millis() * 1_000_000,
                        ..PortStats::default()
                    },
                }
            })
            .collect()
    }

    fn port_mod(&self, bridge: &str, pm: &PortModMsg) -> Result<(), OfpErr> {
        let ports = self.ports(bridge);
        let Some(p) = ports.iter().find(|p| p.desc.port_no == pm.port_no) else {
            return Err(OfpErr::PmBadPort);
        };
        if p.desc.hw_addr != pm.hw_addr {
            return Err(OfpErr::BadHwAddr);
        }
        if pm.mask & !pc::NO_FLOOD != 0 {
            // Only flooding can be turned off and on.
            return Err(OfpErr::PmBadConfig);
        }
        if pm.mask & pc::NO_FLOOD != 0 {
            let on = pm.config & pc::NO_FLOOD != 0;
            self.daemon
                .of
                .set_port_no_flood(bridge, pm.port_no, on)
                .map_err(|_| OfpErr::PmBadPort)?;
            let mut cfg = self.ports.cfg.borrow_mut();
            let e = cfg.entry((bridge.to_string(), pm.port_no)).or_insert(0);
            *e = (*e & !pc::NO_FLOOD) | (pm.config & pc::NO_FLOOD);
        }
        Ok(())
    }

    fn packet_out(
        &self,
        bridge: &str,
        in_port: u16,
        actions: &[OfAction],
        data: &[u8],
    ) -> Result<(), OfpErr> {
        if data.len() < 14 {
            return Err(OfpErr::BadPacket);
        }
        let Some(pool) = self.daemon.packet_pool() else {
            // No port was ever opened: nowhere to send it.
            return Ok(());
        };
        let Some(mut pkt) = pool.packet_from(data) else {
            return Err(OfpErr::BadPacket);
        };
        pkt.meta_mut().in_port = 0;
        let mut key = FlowKey::ZERO;
        let mut stats = ExtractStats::default();
        extract(&mut pkt, &mut key, &mut stats);
        let out = self
            .daemon
            .of
            .packet_out(bridge, &key, in_port, actions)
            .map_err(|_| OfpErr::BrcEperm)?;
        execute(self.daemon, pkt, &out.actions);
        Ok(())
    }

    fn desc(&self, bridge: &str) -> DescStats {
        DescStats {
            mfr: "Ferrous vSwitch project".into(),
            hw: "Ferrous vSwitch".into(),
            sw: env!("CARGO_PKG_VERSION").into(),
            serial: "None".into(),
            dp: bridge.to_string(),
        }
    }
}

/// Executes datapath actions on one packet (a packet-out), outside the
/// PMD threads.
fn execute(daemon: &Daemon, mut pkt: Packet, actions: &[DpAction]) {
    let dp = daemon.datapath();
    for a in actions {
        match a {
            DpAction::Output(odp) => {
                let (Some(nd), Some(copy)) = (dp.port(*odp), pkt.try_clone()) else {
                    continue;
                };
                if let Ok(mut txq) = nd.open_txq(0) {
                    let mut batch = Batch::new();
                    if batch.push(copy).is_ok() {
                        txq.send(&mut batch);
                    }
                }
            }
            DpAction::Userspace(what) => daemon.of.slow_path(&pkt, what),
            DpAction::Clone(inner) => {
                if let Some(copy) = pkt.try_clone() {
                    execute(daemon, copy, inner);
                }
            }
            other => fvs_datapath::actions::apply(&mut pkt, other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::InBuf;

    #[test]
    fn inbuf_takes_in_order_across_compactions() {
        let mut b = InBuf::default();
        let mut want = Vec::new();
        let mut got = Vec::new();
        for round in 0..50u8 {
            let chunk: Vec<u8> = (0..37)
                .map(|i| round.wrapping_mul(37).wrapping_add(i))
                .collect();
            b.extend_from_slice(&chunk);
            want.extend_from_slice(&chunk);
            while b.len() >= 8 {
                assert_eq!(b.pending().len(), b.len());
                got.extend(b.take(8));
            }
            // Compacted whenever the handled part reaches the rest's size.
            assert!(b.start == 0 || b.start < b.buf.len() - b.start);
        }
        got.extend(b.take(usize::MAX));
        assert_eq!(got, want);
        assert_eq!(b.len(), 0);
    }
}
