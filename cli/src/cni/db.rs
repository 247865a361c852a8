//! The switch's database, reached in-process through the `fvs-vsctl`
//! command engine (the same parsing, checks and transactions as the
//! binary), so that the plugin needs no `fvs-vsctl` on the runtime's
//! `PATH` and gets typed errors instead of scraped text.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::db::Data;
use crate::unixctl::{self, UnixctlError};
use crate::vsctl;

/// How long one database operation may take, waiting for the daemon included.
const TIMEOUT: Duration = Duration::from_secs(15);

/// Why a database operation failed.
#[derive(Debug, thiserror::Error)]
pub enum DbClientError {
    /// The daemon cannot be reached (not running, or its socket is elsewhere).
    #[error("fvs-vswitchd is not reachable at {path}: {why}")]
    Unreachable { path: String, why: String },
    /// The command itself failed (no such bridge, bad value, ...).
    #[error("{0}")]
    Command(String),
    /// The daemon did not apply the change in time.
    #[error("fvs-vswitchd did not apply the change within {} s", TIMEOUT.as_secs())]
    Timeout,
}

fn call(
    path: &Path,
    method: &str,
    params: Vec<Value>,
    left: Duration,
) -> Result<Value, DbClientError> {
    unixctl::call(path, method, params, Some(left)).map_err(|e| match e {
        UnixctlError::Connect { path, source } => DbClientError::Unreachable {
            path,
            why: source.to_string(),
        },
        UnixctlError::Remote(m) if m.starts_with("timeout") => DbClientError::Timeout,
        UnixctlError::Remote(m) => DbClientError::Command(m),
        other => DbClientError::Command(other.to_string()),
    })
}

/// Runs one `fvs-vsctl` command line (without the program name) against the
/// daemon whose control socket is `socket`; returns what fvs-vsctl would
/// print. Waits until the daemon has applied a change, as fvs-vsctl does.
pub fn vsctl(socket: &Path, args: &[String]) -> Result<String, DbClientError> {
    let inv = vsctl::parse(args).map_err(|e| DbClientError::Command(e.to_string()))?;
    let deadline = Instant::now() + TIMEOUT;
    let left = || {
        deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(1))
    };
    // Others may commit between our snapshot and our transaction: start over.
    for _ in 0..100 {
        if Instant::now() >= deadline {
            return Err(DbClientError::Timeout);
        }
        let snapshot: Data = serde_json::from_value(call(socket, "db/get", vec![], left())?)
            .map_err(|e| DbClientError::Command(format!("malformed database snapshot: {e}")))?;
        let exec =
            vsctl::execute(&inv, &snapshot).map_err(|e| DbClientError::Command(e.to_string()))?;
        if let Some(txn) = &exec.txn {
            let txn =
                serde_json::to_value(txn).map_err(|e| DbClientError::Command(e.to_string()))?;
            let reply = call(
                socket,
                "db/transact",
                vec![txn, json!(snapshot.generation())],
                left(),
            )?;
            if reply.get("stale").and_then(Value::as_bool) == Some(true) {
                continue;
            }
        }
        if exec.wait_for_daemon {
            if let Some(cfg) = exec.next_cfg {
                let ms = left().as_millis() as u64;
                call(socket, "db/wait-cfg", vec![json!(cfg), json!(ms)], TIMEOUT)?;
            }
        }
        if exec.exit_status != 0 {
            return Err(DbClientError::Command(exec.output));
        }
        return Ok(exec.output);
    }
    Err(DbClientError::Command(
        "the database changed under every attempt".into(),
    ))
}

/// One Interface record, the columns the plugin looks at.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Iface {
    pub name: String,
    pub kind: String,
    pub external_ids: BTreeMap<String, String>,
    pub options: BTreeMap<String, String>,
    pub status: BTreeMap<String, String>,
}

/// Interfaces matching the `find` conditions (e.g. `name=X`,
/// `external_ids:cni_network=N`).
pub fn find_ifaces(socket: &Path, conditions: &[String]) -> Result<Vec<Iface>, DbClientError> {
    let mut args: Vec<String> = [
        "--format=json",
        "--columns=name,type,external_ids,options,status",
        "find",
        "Interface",
    ]
    .map(String::from)
    .to_vec();
    args.extend_from_slice(conditions);
    let out = vsctl(socket, &args)?;
    let v: Value = serde_json::from_str(&out)
        .map_err(|e| DbClientError::Command(format!("unexpected `find` output: {e}")))?;
    let rows = v
        .get("data")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    Ok(rows
        .iter()
        .filter_map(|r| {
            let r = r.as_array()?;
            Some(Iface {
                name: r.first()?.as_str()?.to_string(),
                kind: r.get(1)?.as_str().unwrap_or_default().to_string(),
                external_ids: ovsdb_map(r.get(2)?),
                options: ovsdb_map(r.get(3)?),
                status: ovsdb_map(r.get(4)?),
            })
        })
        .collect())
}

/// An OVSDB JSON map (`["map", [[k, v], ...]]`) of strings.
fn ovsdb_map(v: &Value) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    if let Some(pairs) = v
        .as_array()
        .filter(|a| a.first().and_then(Value::as_str) == Some("map"))
        .and_then(|a| a.get(1))
        .and_then(Value::as_array)
    {
        for p in pairs {
            if let (Some(k), Some(v)) = (
                p.get(0).and_then(Value::as_str),
                p.get(1).and_then(Value::as_str),
            ) {
                m.insert(k.to_string(), v.to_string());
            }
        }
    }
    m
}

/// An OVSDB string atom as fvs-vsctl's command line takes it (quoted).
pub fn quote(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_of_find_output() {
        let v = json!(["map", [["a", "1"], ["b", "x y"]]]);
        let m = ovsdb_map(&v);
        assert_eq!(m.get("a").map(String::as_str), Some("1"));
        assert_eq!(m.get("b").map(String::as_str), Some("x y"));
        assert!(ovsdb_map(&json!(["set", []])).is_empty());
        assert!(ovsdb_map(&json!("junk")).is_empty());
    }

    #[test]
    fn quoting_escapes() {
        assert_eq!(quote("a\"b"), "\"a\\\"b\"");
    }
}
