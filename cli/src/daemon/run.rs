//! fvs-vswitchd's main loop: owns the database, applies it to the switch,
//! reports status back into it, and serves the control socket.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::{appctl, dbsync, ofctl, Daemon};
use crate::db::{Db, DbError, Txn};
use crate::unixctl::Server;
use crate::vsctl;

/// How often statistics and link states go to the database (as OVS).
const STATS_INTERVAL: Duration = Duration::from_secs(5);
/// How often the loop runs without being woken (timeouts, retries).
const TICK: Duration = Duration::from_millis(200);
/// Interfaces that failed to open are retried, and ports checked for a
/// device gone, this often.
const RETRY_INTERVAL: Duration = Duration::from_secs(2);

/// What the loop waits on: a database change or a request to stop.
#[derive(Default)]
struct Wake {
    changed: bool,
}

pub struct Vswitchd {
    pub daemon: Arc<Daemon>,
    db: Mutex<Db>,
    wake: (Mutex<Wake>, Condvar),
    /// cur_cfg as last reported, for `db/wait-cfg`.
    cur_cfg: (Mutex<i64>, Condvar),
    /// OpenFlow: management sockets and controller connections.
    openflow: super::openflow::Manager,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Vswitchd {
    pub fn new(daemon: Arc<Daemon>, db: Db) -> Arc<Vswitchd> {
        let cur = db
            .data()
            .root()
            .and_then(|(_, r)| r.int("cur_cfg"))
            .unwrap_or(0);
        let openflow = super::openflow::Manager::start(&daemon);
        // Management sockets exist once the daemon says it is ready.
        openflow.configure(&db.data().config());
        Arc::new(Vswitchd {
            daemon,
            db: Mutex::new(db),
            wake: (Mutex::new(Wake::default()), Condvar::new()),
            cur_cfg: (Mutex::new(cur), Condvar::new()),
            openflow,
        })
    }

    fn poke(&self) {
        lock(&self.wake.0).changed = true;
        self.wake.1.notify_all();
    }

    /// Commits `txn` if the database is still at `generation`.
    pub fn transact(&self, txn: &Txn, generation: Option<u64>) -> Result<u64, DbError> {
        let mut db = lock(&self.db);
        db.commit(txn, generation)?;
        let g = db.data().generation();
        drop(db);
        self.poke();
        Ok(g)
    }

    /// Waits until the daemon has applied configuration `cfg` (cur_cfg ≥ cfg).
    pub fn wait_cfg(&self, cfg: i64, timeout: Option<Duration>) -> bool {
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut cur = lock(&self.cur_cfg.0);
        while *cur < cfg {
            let wait = match deadline {
                Some(d) => match d.checked_duration_since(Instant::now()) {
                    Some(left) if !left.is_zero() => left,
                    _ => return false,
                },
                None => Duration::from_secs(1),
            };
            cur = self
                .cur_cfg
                .1
                .wait_timeout(cur, wait)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        true
    }

    /// Runs an fvs-vsctl command line in-process, as fvs-vsctl does over
    /// the control socket: execute on a snapshot, commit unless someone else
    /// committed first (then start over), wait for the daemon unless --no-wait.
    pub fn vsctl(&self, args: &[&str]) -> Result<String, String> {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let inv = vsctl::parse(&args).map_err(|e| e.to_string())?;
        loop {
            let snapshot = lock(&self.db).data().clone();
            let exec = vsctl::execute(&inv, &snapshot).map_err(|e| e.to_string())?;
            if let Some(txn) = &exec.txn {
                match self.transact(txn, Some(snapshot.generation())) {
                    Err(DbError::Stale { .. }) => continue,
                    Err(e) => return Err(e.to_string()),
                    Ok(_) => {}
                }
            }
            if let (true, false, Some(cfg)) = (exec.wait_for_daemon, inv.no_wait, exec.next_cfg) {
                if !self.wait_cfg(cfg, inv.timeout.or(Some(Duration::from_secs(30)))) {
                    return Err("timeout waiting for the daemon to apply the change".into());
                }
            }
            return Ok(exec.output);
        }
    }

    /// Registers the control-socket methods: appctl commands, fvs-ofctl's
    /// `ofctl`, and fvs-vsctl's `db/get`, `db/transact`, `db/wait-cfg`.
    pub fn register(self: &Arc<Vswitchd>, server: &Arc<Server>) {
        appctl::register(server, &self.daemon);
        let d = self.daemon.clone();
        server.register("ofctl", move |params| ofctl::handle(&d, params));
        let me = self.clone();
        server.register("db/get", move |_| {
            let db = lock(&me.db);
            serde_json::to_value(db.data()).map_err(|e| e.to_string())
        });
        let me = self.clone();
        server.register("db/transact", move |params| {
            let (txn, generation) = match params {
                [t, g] => (t, g.as_u64()),
                [t] => (t, None),
                _ => return Err("db/transact: expected [txn, generation]".into()),
            };
            let txn: Txn =
                serde_json::from_value(txn.clone()).map_err(|e| format!("db/transact: {e}"))?;
            match me.transact(&txn, generation) {
                Ok(g) => Ok(json!({ "generation": g })),
                Err(DbError::Stale { .. }) => Ok(json!({ "stale": true })),
                Err(e) => Err(e.to_string()),
            }
        });
        let me = self.clone();
        server.register("db/wait-cfg", move |params| {
            let cfg = params
                .first()
                .and_then(Value::as_i64)
                .ok_or("db/wait-cfg: expected [cfg, timeout_ms]")?;
            let timeout = params
                .get(1)
                .and_then(Value::as_u64)
                .filter(|&t| t > 0)
                .map(Duration::from_millis);
            if me.wait_cfg(cfg, timeout) {
                Ok(Value::Null)
            } else {
                Err("timeout waiting for fvs-vswitchd to reconfigure".into())
            }
        });
    }

    fn commit_status(&self, txn: &Txn) {
        if txn.is_empty() {
            return;
        }
        if let Err(e) = lock(&self.db).commit(txn, None) {
            self.daemon
                .log
                .warn("bridge", &format!("cannot record status: {e}"));
        }
    }

    /// Applies the database now; reports status and cur_cfg.
    fn reconfigure(&self, stats_due: bool) {
        let data = lock(&self.db).data().clone();
        let cfg = data.config();
        let statuses = self.daemon.apply(&cfg);
        self.openflow.configure(&cfg);
        let stats = stats_due.then(|| {
            self.daemon
                .interfaces()
                .into_iter()
                .map(|(name, _, _, nd)| (name, nd.stats()))
                .collect::<BTreeMap<_, _>>()
        });
        // Read again: a vsctl transaction may have committed meanwhile (its
        // rows must not be overwritten, and its next_cfg is not applied yet).
        let txn = {
            let db = lock(&self.db);
            dbsync::status_txn(db.data(), &statuses, stats.as_ref(), Some(cfg.next_cfg))
        };
        self.commit_status(&txn);
        // The root's status (versions, interface types, whether the pool is
        // in hugepages once the first port made it): written when it differs.
        let hugepages = self.daemon.is_hugepage_backed();
        let root =
            dbsync::root_status_txn(lock(&self.db).data(), env!("CARGO_PKG_VERSION"), hugepages);
        self.commit_status(&root);
        let mut cur = lock(&self.cur_cfg.0);
        if *cur < cfg.next_cfg {
            *cur = cfg.next_cfg;
        }
        self.cur_cfg.1.notify_all();
    }

    /// Runs until `stop` is set. `hup` asks for the log to be reopened.
    pub fn run(&self, stop: &AtomicBool, hup: &AtomicBool) {
        let mut last_stats = Instant::now();
        let mut last_retry = Instant::now();
        // Tunnel state from the system, and the overlay of hosts.
        let _tunnel_helper = super::tunnel::Helper::start(&self.daemon);
        let mut overlay = super::overlay::Overlay::new(self.daemon.log.clone());
        self.reconfigure(true);
        while !stop.load(Ordering::Relaxed) && !self.daemon.exit.load(Ordering::Relaxed) {
            let changed = {
                let g = lock(&self.wake.0);
                let (mut g, _) = self
                    .wake
                    .1
                    .wait_timeout_while(g, TICK, |w| !w.changed)
                    .unwrap_or_else(|e| e.into_inner());
                std::mem::take(&mut g.changed)
            };
            if hup.swap(false, Ordering::Relaxed) {
                if let Err(e) = self.daemon.log.reopen() {
                    eprintln!("fvs-vswitchd: cannot reopen log: {e}");
                }
            }
            let stats_due = last_stats.elapsed() >= STATS_INTERVAL;
            let retry_due = last_retry.elapsed() >= RETRY_INTERVAL && {
                last_retry = Instant::now();
                self.daemon.close_gone_ports() || self.daemon.has_errors()
            };
            if changed || stats_due || retry_due {
                self.reconfigure(stats_due);
                if stats_due {
                    last_stats = Instant::now();
                }
            }
            let removed = self.daemon.run_periodic();
            self.openflow.flow_removed(removed);
            let status = self.openflow.status_txn(lock(&self.db).data());
            self.commit_status(&status);
            let cfg = lock(&self.db).data().config();
            for cmd in overlay.tick(&cfg) {
                let args: Vec<&str> = cmd.iter().map(String::as_str).collect();
                if let Err(e) = self.vsctl(&args) {
                    self.daemon.log.warn("overlay", &e);
                }
            }
        }
        self.openflow.stop();
    }

    /// Whether the database file at `path` can be opened (for start-up errors).
    pub fn open_db(path: &Path) -> Result<Db, String> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| format!("{}: cannot create directory ({e})", dir.display()))?;
        }
        Db::open(path).map_err(|e| match e {
            DbError::Corrupt { .. } => format!(
                "{e}; refusing to start (`fvs-dbtool check {0}` reports, `fvs-dbtool recover {0}` keeps the valid prefix)",
                path.display()
            ),
            e => e.to_string(),
        })
    }
}
