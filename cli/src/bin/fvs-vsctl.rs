//! fvs-vsctl: configures fvs-vswitchd through its database, with
//! ovs-vsctl's commands, output and errors.
//!
//! It reads a snapshot of the database from the daemon, runs the commands
//! against it locally, and sends back the resulting transaction, which
//! commits only if nobody else committed in between (otherwise it starts
//! over on a fresh snapshot). Unless `--no-wait`, it then waits until the
//! daemon has applied the change.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use fvs_cli::db::Data;
use fvs_cli::unixctl::{self, UnixctlError};
use fvs_cli::vsctl::{self, Invocation};
use serde_json::{json, Value};

/// How many times a transaction is retried when others keep committing first.
const MAX_ATTEMPTS: usize = 100;

fn main() -> ExitCode {
    match fvs_cli::args::from_env().and_then(|args| run(&args)) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("fvs-vsctl: {e}");
            ExitCode::from(1)
        }
    }
}

fn socket(inv: &Invocation) -> PathBuf {
    inv.db.clone().unwrap_or_else(unixctl::default_socket)
}

fn call(
    path: &std::path::Path,
    method: &str,
    params: Vec<Value>,
    timeout: Option<Duration>,
) -> Result<Value, String> {
    unixctl::call(path, method, params, timeout).map_err(|e| match e {
        UnixctlError::Connect { source, .. } => {
            format!(
                "unix:{}: database connection failed ({})",
                path.display(),
                os_error(&source)
            )
        }
        UnixctlError::Remote(m) => m,
        other => other.to_string(),
    })
}

fn os_error(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "No such file or directory".into(),
        std::io::ErrorKind::ConnectionRefused => "Connection refused".into(),
        std::io::ErrorKind::PermissionDenied => "Permission denied".into(),
        _ => e.to_string(),
    }
}

fn run(args: &[String]) -> Result<u8, String> {
    let inv = vsctl::parse(args).map_err(|e| e.to_string())?;
    for w in &inv.warnings {
        eprintln!("fvs-vsctl: {w}");
    }
    let deadline = inv.timeout.map(|t| Instant::now() + t);
    let left = || {
        deadline.map(|d| {
            d.saturating_duration_since(Instant::now())
                .max(Duration::from_millis(1))
        })
    };
    let timed_out = || deadline.is_some_and(|d| Instant::now() >= d);
    let path = socket(&inv);
    // Commands that only print (help, version) need no daemon.
    if inv.action != vsctl::Action::Run {
        let e = vsctl::execute(&inv, &Data::empty()).map_err(|e| e.to_string())?;
        print!("{}", e.output);
        return Ok(0);
    }
    for _ in 0..MAX_ATTEMPTS {
        if timed_out() {
            return Err(timeout_msg(&inv));
        }
        let snapshot: Data = serde_json::from_value(call(&path, "db/get", vec![], left())?)
            .map_err(|e| format!("malformed database snapshot: {e}"))?;
        let exec = vsctl::execute(&inv, &snapshot).map_err(|e| e.to_string())?;
        for w in &exec.warnings {
            eprintln!("fvs-vsctl: {w}");
        }
        if exec.try_again {
            // wait-until: poll until the condition holds.
            std::thread::sleep(Duration::from_millis(100));
            continue;
        }
        if let Some(txn) = &exec.txn {
            let txn = serde_json::to_value(txn).map_err(|e| e.to_string())?;
            let reply = call(
                &path,
                "db/transact",
                vec![txn, json!(snapshot.generation())],
                left(),
            )?;
            if reply.get("stale").and_then(Value::as_bool) == Some(true) {
                continue;
            }
        }
        if exec.wait_for_daemon && !inv.no_wait {
            if let Some(cfg) = exec.next_cfg {
                let ms = left().map_or(0, |d| d.as_millis() as u64);
                call(&path, "db/wait-cfg", vec![json!(cfg), json!(ms)], None).map_err(|e| {
                    if e.starts_with("timeout") {
                        timeout_msg(&inv)
                    } else {
                        e
                    }
                })?;
            }
        }
        print!("{}", exec.output);
        return Ok(u8::try_from(exec.exit_status).unwrap_or(1));
    }
    Err("transaction kept failing: the database changed under every attempt".into())
}

fn timeout_msg(inv: &Invocation) -> String {
    format!(
        "timeout after {} seconds",
        inv.timeout.map_or(0, |t| t.as_secs())
    )
}
