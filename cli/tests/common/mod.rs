//! Helpers shared by the fvs-cli integration tests: running fvs-vsctl
//! commands against in-memory data, and a real ovsdb-server/ovs-vsctl to
//! compare with.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use fvs_cli::db::{Data, Datum, Uuid};
use fvs_cli::vsctl::{self, Execution, VsctlError};
use serde_json::{json, Value};

/// Splits a command line on blanks, honouring single quotes.
pub fn words(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_quote = false;
    let mut any = false;
    for c in line.chars() {
        match c {
            '\'' => {
                in_quote = !in_quote;
                any = true;
            }
            c if c.is_whitespace() && !in_quote => {
                if any {
                    out.push(std::mem::take(&mut cur));
                    any = false;
                }
            }
            c => {
                cur.push(c);
                any = true;
            }
        }
    }
    if any {
        out.push(cur);
    }
    out
}

/// Runs one fvs-vsctl command line against `data`, committing its
/// transaction into `data` the way the daemon would.
pub fn vsctl(data: &mut Data, line: &str) -> Result<Execution, VsctlError> {
    let inv = vsctl::parse(&words(line))?;
    let exec = vsctl::execute(&inv, data)?;
    if let Some(txn) = &exec.txn {
        data.apply(txn).expect("execute validated the transaction");
    }
    Ok(exec)
}

/// Like [`vsctl`], but returns stdout or the one-line error.
pub fn run(data: &mut Data, line: &str) -> Result<String, String> {
    vsctl(data, line)
        .map(|e| e.output)
        .map_err(|e| e.to_string())
}

pub fn have(cmd: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(cmd).is_file()))
        .unwrap_or(false)
}

/// True if the OVS tools are there; otherwise fails under CI=true and
/// prints a skip message elsewhere.
pub fn ovs_available(test: &str) -> bool {
    let ok = ["ovsdb-server", "ovsdb-tool", "ovs-vsctl", "ovsdb-client"]
        .iter()
        .all(|c| have(c));
    if !ok {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!(
                "{test}: ovsdb-server/ovs-vsctl are missing (apt-get install openvswitch-switch)"
            );
        }
        eprintln!("SKIP {test}: ovsdb-server/ovs-vsctl not installed (apt-get install openvswitch-switch)");
    }
    ok
}

/// A directory under the system temp dir, removed when dropped.
pub struct Scratch(PathBuf);

impl std::ops::Deref for Scratch {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn scratch(tag: &str) -> Scratch {
    Scratch(scratch_dir(tag))
}

fn scratch_dir(tag: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "fvs-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// A private ovsdb-server with the vswitch schema, stopped (by PID) on drop.
pub struct OvsDb {
    pub dir: PathBuf,
    pid: Option<u32>,
}

impl OvsDb {
    pub fn start() -> OvsDb {
        let dir = scratch_dir("ovsdb");
        let db = dir.join("conf.db");
        let st = Command::new("ovsdb-tool")
            .arg("create")
            .arg(&db)
            .arg("/usr/share/openvswitch/vswitch.ovsschema")
            .status()
            .expect("ovsdb-tool");
        assert!(st.success());
        let st = Command::new("ovsdb-server")
            .arg(format!("--remote=punix:{}", dir.join("db.sock").display()))
            .arg(format!("--pidfile={}", dir.join("db.pid").display()))
            .arg(format!("--unixctl={}", dir.join("db.ctl").display()))
            .arg("--detach")
            .arg(&db)
            .status()
            .expect("ovsdb-server");
        assert!(st.success());
        let pid = std::fs::read_to_string(dir.join("db.pid"))
            .ok()
            .and_then(|s| s.trim().parse().ok());
        let srv = OvsDb { dir, pid };
        srv.vsctl("init");
        srv
    }

    fn sock(&self) -> String {
        format!("unix:{}", self.dir.join("db.sock").display())
    }

    /// Runs `ovs-vsctl --no-wait LINE`: (stdout, stderr, exit status).
    pub fn vsctl(&self, line: &str) -> (String, String, i32) {
        let out = Command::new("ovs-vsctl")
            .arg(format!("--db={}", self.sock()))
            .arg("--no-wait")
            .args(words(line))
            .output()
            .expect("ovs-vsctl");
        (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
            out.status.code().unwrap_or(-1),
        )
    }

    /// The whole database, as fvs `Data` with OVS's UUIDs.
    pub fn dump(&self) -> Data {
        let tables: Vec<String> = fvs_cli::db::schema().tables.keys().cloned().collect();
        let mut req = vec![json!("Open_vSwitch")];
        req.extend(
            tables
                .iter()
                .map(|t| json!({"op": "select", "table": t, "where": []})),
        );
        let out = Command::new("ovsdb-client")
            .arg("transact")
            .arg(self.sock())
            .arg(Value::Array(req).to_string())
            .output()
            .expect("ovsdb-client");
        let reply: Value = serde_json::from_slice(&out.stdout).expect("ovsdb-client reply");
        let mut wire = serde_json::Map::new();
        for (t, result) in tables.iter().zip(reply.as_array().expect("array")) {
            let mut rows = serde_json::Map::new();
            for row in result["rows"].as_array().expect("rows") {
                let mut cols = row.as_object().expect("row").clone();
                let uuid = cols.remove("_uuid").expect("_uuid")[1]
                    .as_str()
                    .expect("uuid")
                    .to_string();
                cols.remove("_version");
                rows.insert(uuid, Value::Object(cols));
            }
            wire.insert(t.clone(), Value::Object(rows));
        }
        serde_json::from_value(json!({"generation": 0, "tables": wire}))
            .expect("OVS data fits the schema")
    }
}

impl Drop for OvsDb {
    fn drop(&mut self) {
        if let Some(pid) = self.pid {
            let _ = Command::new("kill").arg(pid.to_string()).status();
            // Give it a moment to go before removing its files.
            for _ in 0..50 {
                if !Path::new(&format!("/proc/{pid}")).exists() {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The database with UUIDs replaced by names (`Bridge:br0`,
/// `Controller:tcp:…`), so that two databases built by the same commands
/// compare equal whatever UUIDs they drew. Ephemeral and derived columns
/// compare too.
pub fn canonical(data: &Data) -> Value {
    let mut labels: BTreeMap<Uuid, String> = BTreeMap::new();
    for t in fvs_cli::db::schema().tables.keys() {
        let mut seen: BTreeMap<String, usize> = BTreeMap::new();
        for (u, r) in data.rows(t) {
            let name = ["name", "target", "id"]
                .iter()
                .find_map(|c| r.get(c).filter(|d| !d.is_empty()).map(|d| d.to_bare()))
                .unwrap_or_default();
            let n = seen.entry(name.clone()).or_default();
            labels.insert(u, format!("{t}:{name}#{n}"));
            *n += 1;
        }
    }
    let relabel = |d: &Datum| -> Value {
        let mut j = d.to_json().to_string();
        for (u, l) in &labels {
            j = j.replace(&format!("[\"uuid\",\"{u}\"]"), &format!("\"{l}\""));
        }
        let mut v: Value = serde_json::from_str(&j).expect("json");
        // Sets of references were sorted by UUID; sort them by label.
        if let Some(inner) = v.get_mut(1).and_then(Value::as_array_mut) {
            inner.sort_by_key(|x| x.to_string());
        }
        v
    };
    let mut out = serde_json::Map::new();
    for t in fvs_cli::db::schema().tables.keys() {
        let mut rows: Vec<Value> = data
            .rows(t)
            .map(|(_, r)| {
                Value::Object(
                    r.columns()
                        .map(|(c, d)| (c.to_string(), relabel(d)))
                        .collect(),
                )
            })
            .collect();
        rows.sort_by_key(|r| r.to_string());
        if !rows.is_empty() {
            out.insert(t.clone(), Value::Array(rows));
        }
    }
    Value::Object(out)
}
