//! The overlay between hosts, keyed by `external_ids:system-id`.
//!
//! With `Open_vSwitch` `external_ids` `system-id`, `fvs-encap-ip`,
//! `fvs-encap-type=vxlan` and `fvs-remote=etcd:http://HOST:PORT`,
//! fvs-vswitchd registers the host in etcd (v3, through its JSON gateway)
//! under a lease it keeps alive, watches the other hosts, and keeps one
//! VXLAN port per remote host on the overlay bridge (`fvs-bridge`, default
//! `br-int`), named `vx-<system-id>`, with `remote_ip` the remote host's
//! encap address and `key` the configured VNI (`fvs-encap-key`, a number
//! or `flow`; default 0). The ports are ordinary database rows, marked with
//! `external_ids:fvs-remote-system-id`; they form the `overlay`
//! split-horizon group, so NORMAL never forwards from one to another and a
//! full mesh does not loop.
//!
//! A host whose lease ends (it stopped, or lost the registry for longer
//! than the lease) is deleted by etcd, and every other host removes its
//! tunnel. While the registry cannot be reached the tunnels stay as they
//! are; the client retries (backing off to 2 s), says so in the log and in
//! `overlay/status`, and on reconnection keeps its lease if it is still
//! alive (or takes a new one), registers again and resynchronises.
//!
//! The registry client is a thread of its own (HTTP/1.1 over a loopback or
//! LAN TCP connection: unary calls, and the watch's chunked stream); the
//! main loop applies what it learns ([`Overlay::tick`]). Everything the
//! registry returns is untrusted: parsed with serde_json and checked,
//! bounded in size, never unwrapped.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::tunnel::OVERLAY_REMOTE_KEY;
use super::vlog::Vlog;
use crate::db::SwitchConfig;

/// Where hosts register (`<PREFIX><system-id>`).
pub const PREFIX: &str = "/fvs/hosts/";
/// The overlay bridge unless `external_ids:fvs-bridge` names another.
pub const DEFAULT_BRIDGE: &str = "br-int";
/// Lease TTL (seconds) unless `external_ids:fvs-lease-ttl` says otherwise.
pub const DEFAULT_TTL: u64 = 10;
/// Largest response accepted from the registry.
const MAX_RESPONSE: usize = 4 << 20;
/// Timeout of one registry call.
const CALL_TIMEOUT: Duration = Duration::from_secs(2);
/// Longest wait between reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(2);

// ---- configuration ----

/// The overlay settings of the `Open_vSwitch` row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OverlayCfg {
    pub system_id: String,
    pub encap_ip: IpAddr,
    pub bridge: String,
    /// The tunnels' `key` option (a VNI or `flow`).
    pub key: String,
    /// `host:port` of the etcd client URL.
    pub registry: String,
    pub ttl: u64,
}

impl OverlayCfg {
    /// The settings, `None` when the overlay is not asked for, or why they
    /// are wrong.
    pub fn from_config(c: &SwitchConfig) -> Option<Result<OverlayCfg, String>> {
        let ids = &c.external_ids;
        let remote = ids.get("fvs-remote")?;
        Some(Self::parse(ids, remote))
    }

    fn parse(ids: &BTreeMap<String, String>, remote: &str) -> Result<OverlayCfg, String> {
        let registry = remote
            .strip_prefix("etcd:http://")
            .map(|r| r.trim_end_matches('/').to_string())
            .filter(|r| !r.is_empty() && !r.contains('/'))
            .ok_or_else(|| format!("fvs-remote \"{remote}\": expected etcd:http://HOST:PORT"))?;
        let system_id = ids
            .get("system-id")
            .filter(|s| !s.is_empty())
            .ok_or("fvs-remote needs external_ids:system-id")?
            .clone();
        match ids.get("fvs-encap-type").map(String::as_str) {
            Some("vxlan") | None => {}
            Some(t) => return Err(format!("fvs-encap-type \"{t}\": only vxlan is supported")),
        }
        let encap_ip = ids
            .get("fvs-encap-ip")
            .ok_or("fvs-remote needs external_ids:fvs-encap-ip")?
            .parse::<IpAddr>()
            .map_err(|_| "fvs-encap-ip is not an IP address".to_string())?;
        let key = ids
            .get("fvs-encap-key")
            .cloned()
            .unwrap_or_else(|| "0".into());
        let key_ok = key == "flow" || key.parse::<u32>().is_ok_and(|k| k <= 0x00ff_ffff);
        if !key_ok {
            return Err(format!("fvs-encap-key \"{key}\": expected a VNI or flow"));
        }
        let ttl = match ids.get("fvs-lease-ttl") {
            Some(t) => t
                .parse::<u64>()
                .ok()
                .filter(|&t| (1..=3600).contains(&t))
                .ok_or_else(|| format!("fvs-lease-ttl \"{t}\": expected 1..3600 seconds"))?,
            None => DEFAULT_TTL,
        };
        Ok(OverlayCfg {
            system_id,
            encap_ip,
            bridge: ids
                .get("fvs-bridge")
                .cloned()
                .unwrap_or_else(|| DEFAULT_BRIDGE.into()),
            key,
            registry,
            ttl,
        })
    }
}

/// A registered host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Host {
    pub system_id: String,
    pub encap_type: String,
    pub encap_ip: IpAddr,
}

impl Host {
    fn to_json(&self) -> String {
        json!({
            "system-id": self.system_id,
            "encap-type": self.encap_type,
            "encap-ip": self.encap_ip.to_string(),
        })
        .to_string()
    }

    /// Reads a registration (untrusted).
    fn parse(value: &[u8]) -> Option<Host> {
        let v: Value = serde_json::from_slice(value).ok()?;
        let s = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
        let system_id = s("system-id").filter(|s| !s.is_empty() && s.len() <= 255)?;
        Some(Host {
            system_id,
            encap_type: s("encap-type")?,
            encap_ip: s("encap-ip")?.parse().ok()?,
        })
    }
}

/// The name of the tunnel port to `system_id`.
pub fn port_name(system_id: &str) -> String {
    let s: String = system_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .take(60)
        .collect();
    format!("vx-{s}")
}

// ---- status ----

#[derive(Clone, Debug, Default)]
struct Status {
    registry: String,
    system_id: String,
    state: String,
    lease: Option<i64>,
    hosts: usize,
    tunnels: usize,
}

static STATUS: Mutex<Option<Status>> = Mutex::new(None);

fn set_status(f: impl FnOnce(&mut Status)) {
    let mut g = STATUS.lock().unwrap_or_else(|e| e.into_inner());
    f(g.get_or_insert_with(Status::default));
}

/// `overlay/status`.
pub fn status_text() -> String {
    let g = STATUS.lock().unwrap_or_else(|e| e.into_inner());
    match g.as_ref() {
        None => "overlay: not configured\n".into(),
        Some(s) => {
            let lease = s.lease.map_or("none".into(), |l| format!("{l:x}"));
            format!(
                "registry: etcd:http://{}\nsystem-id: {}\nstate: {}\nlease: {lease}\nremote hosts: {}\ntunnels: {}\n",
                s.registry, s.system_id, s.state, s.hosts, s.tunnels
            )
        }
    }
}

// ---- the main loop's side ----

enum Event {
    /// Every registered host (after a (re)connection).
    Snapshot(Vec<Host>),
    Put(Host),
    Delete(String),
    Connected(i64),
    Disconnected(String),
}

struct Client {
    cfg: OverlayCfg,
    events: Receiver<Event>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Client {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The overlay manager, driven by the daemon's main loop.
pub struct Overlay {
    log: Arc<Vlog>,
    client: Option<Client>,
    /// What the configuration said last (to report each error once).
    last_error: Option<String>,
    hosts: BTreeMap<String, Host>,
    connected: bool,
}

impl Overlay {
    pub fn new(log: Arc<Vlog>) -> Overlay {
        Overlay {
            log,
            client: None,
            last_error: None,
            hosts: BTreeMap::new(),
            connected: false,
        }
    }

    /// Follows the configuration `c`, takes in what the registry said and
    /// returns the fvs-vsctl commands that bring the tunnel ports in line.
    pub fn tick(&mut self, c: &SwitchConfig) -> Vec<Vec<String>> {
        let cfg = match OverlayCfg::from_config(c) {
            None => None,
            Some(Ok(cfg)) => Some(cfg),
            Some(Err(e)) => {
                if self.last_error.as_ref() != Some(&e) {
                    self.log.warn("overlay", &e);
                    self.last_error = Some(e);
                }
                None
            }
        };
        if cfg.is_some() {
            self.last_error = None;
        }
        if self.client.as_ref().map(|c| &c.cfg) != cfg.as_ref() {
            self.client = None;
            self.hosts.clear();
            self.connected = false;
            if let Some(cfg) = cfg.clone() {
                self.log.info(
                    "overlay",
                    &format!(
                        "registering {} ({}) in etcd:http://{}, tunnels on {}",
                        cfg.system_id, cfg.encap_ip, cfg.registry, cfg.bridge
                    ),
                );
                self.client = Some(start_client(cfg));
            } else {
                *STATUS.lock().unwrap_or_else(|e| e.into_inner()) = None;
            }
        }
        if let Some(client) = &self.client {
            while let Ok(ev) = client.events.try_recv() {
                match ev {
                    Event::Snapshot(hosts) => {
                        self.hosts = hosts
                            .into_iter()
                            .map(|h| (h.system_id.clone(), h))
                            .collect();
                    }
                    Event::Put(h) => {
                        if self.hosts.get(&h.system_id) != Some(&h) {
                            self.log.info(
                                "overlay",
                                &format!("host {} ({}) registered", h.system_id, h.encap_ip),
                            );
                        }
                        self.hosts.insert(h.system_id.clone(), h);
                    }
                    Event::Delete(id) => {
                        if self.hosts.remove(&id).is_some() {
                            self.log
                                .info("overlay", &format!("host {id} left (its lease ended)"));
                        }
                    }
                    Event::Connected(lease) => {
                        self.connected = true;
                        self.log.info(
                            "overlay",
                            &format!(
                                "connected to etcd:http://{} (lease {lease:x}), {} hosts registered",
                                client.cfg.registry,
                                self.hosts.len()
                            ),
                        );
                    }
                    Event::Disconnected(why) => {
                        if self.connected {
                            self.log.warn(
                                "overlay",
                                &format!(
                                    "registry etcd:http://{} unreachable ({why}): keeping the existing tunnels, reconnecting",
                                    client.cfg.registry
                                ),
                            );
                        }
                        self.connected = false;
                    }
                }
            }
        }
        let cmds = self.reconcile(c);
        let own = self.client.as_ref().map(|c| c.cfg.system_id.clone());
        set_status(|s| {
            s.hosts = self
                .hosts
                .keys()
                .filter(|k| Some(*k) != own.as_ref())
                .count();
            s.tunnels = managed_ports(c).len();
        });
        cmds
    }

    /// The commands that make the managed tunnel ports match the hosts.
    fn reconcile(&self, c: &SwitchConfig) -> Vec<Vec<String>> {
        let existing = managed_ports(c);
        let mut cmds = Vec::new();
        let Some(client) = &self.client else {
            // No overlay (any more): its ports go.
            for (name, (bridge, _, _)) in existing {
                self.log.info("overlay", &format!("removing tunnel {name}"));
                cmds.push(del_port(&bridge, &name));
            }
            return cmds;
        };
        let cfg = &client.cfg;
        let wanted: BTreeMap<String, &Host> = self
            .hosts
            .values()
            .filter(|h| h.system_id != cfg.system_id && h.encap_type == "vxlan")
            .filter(|h| h.encap_ip.is_ipv4() == cfg.encap_ip.is_ipv4())
            .map(|h| (port_name(&h.system_id), h))
            .collect();
        let has_bridge = c.bridges.iter().any(|b| b.name == cfg.bridge);
        for (name, (bridge, remote_ip, key)) in &existing {
            match wanted.get(name) {
                Some(h) if *bridge == cfg.bridge => {
                    let ip = h.encap_ip.to_string();
                    if remote_ip.as_deref() != Some(ip.as_str()) || key.as_deref() != Some(&cfg.key)
                    {
                        cmds.push(vec![
                            "--no-wait".into(),
                            "set".into(),
                            "Interface".into(),
                            name.clone(),
                            format!("options:remote_ip={ip}"),
                            format!("options:key={}", cfg.key),
                        ]);
                    }
                }
                _ => {
                    self.log.info("overlay", &format!("removing tunnel {name}"));
                    cmds.push(del_port(bridge, name));
                }
            }
        }
        if !has_bridge {
            return cmds;
        }
        for (name, h) in &wanted {
            if existing.contains_key(name) {
                continue;
            }
            self.log.info(
                "overlay",
                &format!("adding tunnel {name} to {} ({})", h.system_id, h.encap_ip),
            );
            cmds.push(vec![
                "--no-wait".into(),
                "--may-exist".into(),
                "add-port".into(),
                cfg.bridge.clone(),
                name.clone(),
                "--".into(),
                "set".into(),
                "Interface".into(),
                name.clone(),
                "type=vxlan".into(),
                format!("options:remote_ip={}", h.encap_ip),
                format!("options:key={}", cfg.key),
                format!("external_ids:{OVERLAY_REMOTE_KEY}={}", h.system_id),
            ]);
        }
        cmds
    }
}

fn del_port(bridge: &str, name: &str) -> Vec<String> {
    vec![
        "--no-wait".into(),
        "--if-exists".into(),
        "del-port".into(),
        bridge.into(),
        name.into(),
    ]
}

/// The tunnel ports the overlay made: name → (bridge, remote_ip, key).
fn managed_ports(c: &SwitchConfig) -> BTreeMap<String, (String, Option<String>, Option<String>)> {
    let mut out = BTreeMap::new();
    for b in &c.bridges {
        for p in &b.ports {
            for i in &p.interfaces {
                if i.external_ids.contains_key(OVERLAY_REMOTE_KEY) {
                    out.insert(
                        i.name.clone(),
                        (
                            b.name.clone(),
                            i.options.get("remote_ip").cloned(),
                            i.options.get("key").cloned(),
                        ),
                    );
                }
            }
        }
    }
    out
}

// ---- the registry client ----

fn start_client(cfg: OverlayCfg) -> Client {
    let (tx, rx) = mpsc::channel();
    let stop = Arc::new(AtomicBool::new(false));
    set_status(|s| {
        *s = Status {
            registry: cfg.registry.clone(),
            system_id: cfg.system_id.clone(),
            state: "connecting".into(),
            ..Status::default()
        }
    });
    let (c, flag) = (cfg.clone(), stop.clone());
    let thread = std::thread::Builder::new()
        .name("overlay".into())
        .spawn(move || client_loop(c, tx, flag))
        .ok();
    Client {
        cfg,
        events: rx,
        stop,
        thread,
    }
}

fn sleep_unless(stop: &AtomicBool, d: Duration) {
    let end = Instant::now() + d;
    while !stop.load(Ordering::Relaxed) && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn client_loop(cfg: OverlayCfg, tx: Sender<Event>, stop: Arc<AtomicBool>) {
    let etcd = Etcd {
        addr: cfg.registry.clone(),
    };
    let me = Host {
        system_id: cfg.system_id.clone(),
        encap_type: "vxlan".into(),
        encap_ip: cfg.encap_ip,
    };
    let mut lease: Option<i64> = None;
    let mut backoff = Duration::from_millis(250);
    while !stop.load(Ordering::Relaxed) {
        let mut up = false;
        let r = session(&etcd, &cfg, &me, &mut lease, &tx, &stop, &mut up);
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let why = r
            .err()
            .unwrap_or_else(|| "watch ended by the registry".into());
        set_status(|s| s.state = format!("disconnected ({why}), retrying"));
        if tx.send(Event::Disconnected(why)).is_err() {
            return;
        }
        if up {
            backoff = Duration::from_millis(250);
        }
        sleep_unless(&stop, backoff);
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
    // Leaving (the overlay was unconfigured or the daemon stops): the
    // registration goes now rather than when the lease ends.
    if let Some(id) = lease {
        let _ = etcd.call("/v3/lease/revoke", &json!({ "ID": id.to_string() }));
    }
}

/// One connection's life: lease, registration, snapshot, then the watch
/// and keepalives until something fails (the error says what).
fn session(
    etcd: &Etcd,
    cfg: &OverlayCfg,
    me: &Host,
    lease: &mut Option<i64>,
    tx: &Sender<Event>,
    stop: &AtomicBool,
    up: &mut bool,
) -> Result<(), String> {
    let id = match *lease {
        Some(id) if etcd.keepalive(id)? > 0 => id,
        _ => {
            let id = etcd.grant(cfg.ttl)?;
            *lease = Some(id);
            id
        }
    };
    let key = format!("{PREFIX}{}", cfg.system_id);
    etcd.put(&key, &me.to_json(), id)?;
    let (hosts, rev) = etcd.range_prefix(PREFIX)?;
    *up = true;
    set_status(|s| {
        s.state = "connected".into();
        s.lease = Some(id);
    });
    let send = |e: Event| tx.send(e).map_err(|_| "daemon gone".to_string());
    send(Event::Snapshot(hosts))?;
    send(Event::Connected(id))?;
    let mut watch = etcd.watch(PREFIX, rev + 1)?;
    let interval = Duration::from_millis((cfg.ttl * 1000 / 3).max(200));
    let mut last_keepalive = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        if last_keepalive.elapsed() >= interval {
            if etcd.keepalive(id)? == 0 {
                *lease = None;
                return Err("lease expired".into());
            }
            last_keepalive = Instant::now();
        }
        for ev in watch.next_events()? {
            match ev {
                WatchEvent::Put(k, v) => {
                    if let Some(h) =
                        Host::parse(&v).filter(|h| k == format!("{PREFIX}{}", h.system_id))
                    {
                        send(Event::Put(h))?;
                    }
                }
                WatchEvent::Delete(k) => {
                    if let Some(id) = k.strip_prefix(PREFIX) {
                        send(Event::Delete(id.to_string()))?;
                        if id == cfg.system_id {
                            // Our own registration went (lease revoked or
                            // expired under us): register again.
                            *lease = None;
                            return Err("registration removed".into());
                        }
                    }
                }
            }
        }
    }
    Ok(())
}

// ---- etcd v3 over its JSON gateway ----

/// An etcd server's gRPC gateway (`/v3/...`).
struct Etcd {
    /// `host:port`.
    addr: String,
}

enum WatchEvent {
    Put(String, Vec<u8>),
    Delete(String),
}

/// A 64-bit integer the gateway writes as a string (or a number).
fn int64(v: Option<&Value>) -> Option<i64> {
    match v? {
        Value::String(s) => s.parse().ok(),
        Value::Number(n) => n.as_i64(),
        _ => None,
    }
}

impl Etcd {
    fn connect(&self) -> Result<TcpStream, String> {
        let addrs: Vec<SocketAddr> = self
            .addr
            .to_socket_addrs()
            .map_err(|e| format!("{}: {e}", self.addr))?
            .collect();
        let mut last = format!("{}: no address", self.addr);
        for a in addrs {
            match TcpStream::connect_timeout(&a, CALL_TIMEOUT) {
                Ok(s) => {
                    let _ = s.set_nodelay(true);
                    s.set_read_timeout(Some(CALL_TIMEOUT))
                        .and_then(|_| s.set_write_timeout(Some(CALL_TIMEOUT)))
                        .map_err(|e| e.to_string())?;
                    return Ok(s);
                }
                Err(e) => last = e.to_string(),
            }
        }
        Err(last)
    }

    fn request(&self, s: &mut TcpStream, path: &str, body: &Value) -> Result<(), String> {
        let body = body.to_string();
        let req = format!(
            "POST {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.addr,
            body.len()
        );
        s.write_all(req.as_bytes()).map_err(|e| e.to_string())
    }

    /// A unary call: the JSON response of a 200, or why not.
    fn call(&self, path: &str, body: &Value) -> Result<Value, String> {
        let mut s = self.connect()?;
        self.request(&mut s, path, body)?;
        let mut raw = Vec::new();
        let mut buf = [0u8; 8192];
        loop {
            match s.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    raw.extend_from_slice(&buf[..n]);
                    if raw.len() > MAX_RESPONSE {
                        return Err("response too large".into());
                    }
                }
                Err(e) => return Err(e.to_string()),
            }
        }
        let (status, chunked, body) = split_response(&raw)?;
        let body = if chunked {
            dechunk(body)?
        } else {
            body.to_vec()
        };
        let v: Value = serde_json::from_slice(&body).map_err(|e| format!("bad response: {e}"))?;
        if status != 200 {
            let msg = v
                .get("message")
                .or_else(|| v.get("error"))
                .map(|m| m.to_string())
                .unwrap_or_default();
            return Err(format!("HTTP {status} {msg}"));
        }
        Ok(v)
    }

    fn grant(&self, ttl: u64) -> Result<i64, String> {
        let v = self.call("/v3/lease/grant", &json!({ "TTL": ttl }))?;
        int64(v.get("ID")).ok_or_else(|| "lease grant: no ID".to_string())
    }

    /// Renews a lease; its remaining TTL (0: it is gone).
    fn keepalive(&self, id: i64) -> Result<i64, String> {
        let v = self.call("/v3/lease/keepalive", &json!({ "ID": id.to_string() }))?;
        let r = v.get("result").unwrap_or(&v);
        Ok(int64(r.get("TTL")).unwrap_or(0))
    }

    fn put(&self, key: &str, value: &str, lease: i64) -> Result<(), String> {
        self.call(
            "/v3/kv/put",
            &json!({
                "key": b64encode(key.as_bytes()),
                "value": b64encode(value.as_bytes()),
                "lease": lease.to_string(),
            }),
        )
        .map(|_| ())
    }

    /// Every registered host under `prefix`, and the store's revision.
    fn range_prefix(&self, prefix: &str) -> Result<(Vec<Host>, i64), String> {
        let v = self.call(
            "/v3/kv/range",
            &json!({
                "key": b64encode(prefix.as_bytes()),
                "range_end": b64encode(&prefix_end(prefix.as_bytes())),
            }),
        )?;
        let rev = int64(v.get("header").and_then(|h| h.get("revision"))).unwrap_or(0);
        let mut hosts = Vec::new();
        for kv in v.get("kvs").and_then(Value::as_array).into_iter().flatten() {
            let (Some(k), Some(val)) = (b64field(kv, "key"), b64field(kv, "value")) else {
                continue;
            };
            let key = String::from_utf8_lossy(&k).into_owned();
            if let Some(h) = Host::parse(&val).filter(|h| key == format!("{prefix}{}", h.system_id))
            {
                hosts.push(h);
            }
        }
        Ok((hosts, rev))
    }

    fn watch(&self, prefix: &str, start_revision: i64) -> Result<Watch, String> {
        let mut s = self.connect()?;
        let body = json!({
            "create_request": {
                "key": b64encode(prefix.as_bytes()),
                "range_end": b64encode(&prefix_end(prefix.as_bytes())),
                "start_revision": start_revision.to_string(),
            }
        });
        self.request(&mut s, "/v3/watch", &body)?;
        s.set_read_timeout(Some(Duration::from_millis(200)))
            .map_err(|e| e.to_string())?;
        Ok(Watch {
            s,
            raw: Vec::new(),
            headers_done: false,
            body: Vec::new(),
        })
    }
}

/// A watch: the response's chunked stream of JSON messages, one a line.
struct Watch {
    s: TcpStream,
    /// Received bytes not decoded yet.
    raw: Vec<u8>,
    headers_done: bool,
    /// Decoded body bytes not split into messages yet.
    body: Vec<u8>,
}

impl Watch {
    /// The events received within the read timeout (none on a quiet stream).
    fn next_events(&mut self) -> Result<Vec<WatchEvent>, String> {
        let mut buf = [0u8; 16384];
        match self.s.read(&mut buf) {
            Ok(0) => return Err("watch closed by the registry".into()),
            Ok(n) => self.raw.extend_from_slice(&buf[..n]),
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut =>
            {
                return Ok(Vec::new())
            }
            Err(e) => return Err(e.to_string()),
        }
        if self.raw.len() + self.body.len() > MAX_RESPONSE {
            return Err("watch message too large".into());
        }
        if !self.headers_done {
            let Some(end) = find(&self.raw, b"\r\n\r\n") else {
                return Ok(Vec::new());
            };
            let (status, chunked, _) = split_response(&self.raw[..end + 4])?;
            if status != 200 || !chunked {
                return Err(format!("watch refused (HTTP {status})"));
            }
            self.raw.drain(..end + 4);
            self.headers_done = true;
        }
        // Whole chunks move to the body.
        while let Some(eol) = find(&self.raw, b"\r\n") {
            let size_text = std::str::from_utf8(&self.raw[..eol]).map_err(|_| "bad chunk")?;
            let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
                .map_err(|_| "bad chunk size")?;
            if size == 0 {
                return Err("watch ended by the registry".into());
            }
            let need = eol + 2 + size + 2;
            if self.raw.len() < need {
                break;
            }
            self.body
                .extend_from_slice(&self.raw[eol + 2..eol + 2 + size]);
            self.raw.drain(..need);
        }
        let mut out = Vec::new();
        while let Some(nl) = self.body.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.body.drain(..=nl).collect();
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let v: Value =
                serde_json::from_slice(&line).map_err(|e| format!("bad watch message: {e}"))?;
            if let Some(err) = v.get("error") {
                return Err(format!("watch error: {err}"));
            }
            let Some(r) = v.get("result") else { continue };
            if r.get("canceled").and_then(Value::as_bool) == Some(true) {
                return Err("watch canceled".into());
            }
            for e in r
                .get("events")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let Some(kv) = e.get("kv") else { continue };
                let Some(k) = b64field(kv, "key") else {
                    continue;
                };
                let key = String::from_utf8_lossy(&k).into_owned();
                if e.get("type").and_then(Value::as_str) == Some("DELETE") {
                    out.push(WatchEvent::Delete(key));
                } else if let Some(v) = b64field(kv, "value") {
                    out.push(WatchEvent::Put(key, v));
                }
            }
        }
        Ok(out)
    }
}

fn find(h: &[u8], n: &[u8]) -> Option<usize> {
    h.windows(n.len()).position(|w| w == n)
}

/// (status, whether the body is chunked, the body) of an HTTP response.
fn split_response(raw: &[u8]) -> Result<(u16, bool, &[u8]), String> {
    let end = find(raw, b"\r\n\r\n").ok_or("truncated HTTP response")?;
    let head = std::str::from_utf8(&raw[..end]).map_err(|_| "bad HTTP header")?;
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or("bad HTTP status line")?;
    let chunked = lines.any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    Ok((status, chunked, &raw[end + 4..]))
}

fn dechunk(mut b: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let eol = find(b, b"\r\n").ok_or("truncated chunk")?;
        let size_text = std::str::from_utf8(&b[..eol]).map_err(|_| "bad chunk")?;
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| "bad chunk size")?;
        if size == 0 {
            return Ok(out);
        }
        let data = b.get(eol + 2..eol + 2 + size).ok_or("truncated chunk")?;
        out.extend_from_slice(data);
        b = b.get(eol + 4 + size..).ok_or("truncated chunk")?;
    }
}

/// The end of etcd's range of keys starting with `p`.
fn prefix_end(p: &[u8]) -> Vec<u8> {
    let mut e = p.to_vec();
    while let Some(last) = e.pop() {
        if last < 0xff {
            e.push(last + 1);
            return e;
        }
    }
    vec![0]
}

fn b64field(v: &Value, k: &str) -> Option<Vec<u8>> {
    b64decode(v.get(k)?.as_str()?)
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

pub fn b64encode(data: &[u8]) -> String {
    let mut s = String::with_capacity(data.len().div_ceil(3) * 4);
    for c in data.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                s.push(B64[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                s.push('=');
            }
        }
    }
    s
}

pub fn b64decode(s: &str) -> Option<Vec<u8>> {
    let s = s.trim_end_matches('=');
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s.bytes() {
        let v = B64.iter().position(|&b| b == c)? as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64() {
        for (raw, enc) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("/fvs/hosts/", "L2Z2cy9ob3N0cy8="),
        ] {
            assert_eq!(b64encode(raw.as_bytes()), enc);
            assert_eq!(b64decode(enc).unwrap(), raw.as_bytes());
        }
        assert!(b64decode("Zm9v!").is_none());
        assert_eq!(prefix_end(b"/fvs/hosts/"), b"/fvs/hosts0");
    }

    #[test]
    fn http_framing() {
        let r = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n1\r\n!\r\n0\r\n\r\n";
        let (st, ch, body) = split_response(r).unwrap();
        assert_eq!((st, ch), (200, true));
        assert_eq!(dechunk(body).unwrap(), b"hello!");
        assert!(dechunk(b"5\r\nhel").is_err());
        assert!(split_response(b"garbage").is_err());
    }

    #[test]
    fn untrusted_registrations() {
        assert!(Host::parse(
            b"{\"system-id\":\"a\",\"encap-type\":\"vxlan\",\"encap-ip\":\"1.2.3.4\"}"
        )
        .is_some());
        assert!(Host::parse(b"{\"system-id\":\"a\",\"encap-ip\":\"1.2.3.4\"}").is_none());
        assert!(
            Host::parse(b"{\"system-id\":\"a\",\"encap-type\":\"vxlan\",\"encap-ip\":\"x\"}")
                .is_none()
        );
        assert!(Host::parse(b"\xff\xfe").is_none());
        assert_eq!(port_name("host A/1"), "vx-host_A_1");
    }

    #[test]
    fn settings() {
        let ids: BTreeMap<String, String> = [
            ("system-id", "hostA"),
            ("fvs-encap-ip", "172.31.1.1"),
            ("fvs-encap-type", "vxlan"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let c = OverlayCfg::parse(&ids, "etcd:http://127.0.0.1:2379").unwrap();
        assert_eq!(
            (c.registry.as_str(), c.bridge.as_str(), c.ttl),
            ("127.0.0.1:2379", "br-int", 10)
        );
        assert!(OverlayCfg::parse(&ids, "http://127.0.0.1:2379").is_err());
        let mut bad = ids.clone();
        bad.insert("fvs-encap-key".into(), "16777216".into());
        assert!(OverlayCfg::parse(&bad, "etcd:http://h:1").is_err());
    }
}
