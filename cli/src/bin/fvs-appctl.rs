//! fvs-appctl: sends a command to a running fvs daemon, as ovs-appctl does.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use fvs_cli::unixctl::{self, UnixctlError};

const USAGE: &str = "\
fvs-appctl, for querying and controlling Ferrous vSwitch daemons
usage: fvs-appctl [TARGET] COMMAND [ARG...]
Targets:
  -t, --target=TARGET  pidfile or socket to contact (default: fvs-vswitchd)
Common commands:
  list-commands      List commands supported by the target
  version            Print version of the target
  vlog/list          List current logging levels
  vlog/set [SPEC]    Set log levels
Other options:
  -T, --timeout=SECS  wait at most SECS seconds for a response
  -h, --help          Print this helpful information
  -V, --version       Display ovs-appctl version information";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut target = "fvs-vswitchd".to_string();
    let mut timeout = None;
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        let value = |i: &mut usize, name: &str| -> Result<String, String> {
            if let Some(v) = a.split_once('=').map(|(_, v)| v.to_string()) {
                return Ok(v);
            }
            *i += 1;
            args.get(*i)
                .cloned()
                .ok_or_else(|| format!("option '{name}' requires an argument"))
        };
        let r = match a.as_str() {
            "-t" | "--target" => value(&mut i, "--target").map(|v| target = v),
            s if s.starts_with("--target=") => value(&mut i, "--target").map(|v| target = v),
            "-T" | "--timeout" => {
                value(&mut i, "--timeout").and_then(|v| set_timeout(&v, &mut timeout))
            }
            s if s.starts_with("--timeout=") => {
                value(&mut i, "--timeout").and_then(|v| set_timeout(&v, &mut timeout))
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            "-V" | "--version" => {
                println!("fvs-appctl (Ferrous vSwitch) {}", env!("CARGO_PKG_VERSION"));
                return ExitCode::SUCCESS;
            }
            s if s.starts_with('-') => Err(format!("unrecognized option '{s}'")),
            _ => break,
        };
        if let Err(e) = r {
            eprintln!("fvs-appctl: {e}");
            return ExitCode::from(1);
        }
        i += 1;
    }
    let Some(cmd) = args.get(i) else {
        eprintln!("fvs-appctl: at least one non-option argument is required (use --help for help)");
        return ExitCode::from(1);
    };
    let params = args[i + 1..]
        .iter()
        .map(|s| serde_json::Value::String(s.clone()))
        .collect();
    let path: PathBuf = unixctl::resolve_target(&target);
    match unixctl::call(&path, cmd, params, timeout) {
        Ok(serde_json::Value::String(s)) => {
            print!("{s}");
            ExitCode::SUCCESS
        }
        Ok(serde_json::Value::Null) => ExitCode::SUCCESS,
        Ok(other) => {
            println!("{other}");
            ExitCode::SUCCESS
        }
        Err(UnixctlError::Remote(msg)) => {
            // As ovs-appctl: the server's message, then which server failed.
            eprint!("{msg}");
            if !msg.ends_with('\n') {
                eprintln!();
            }
            eprintln!("fvs-appctl: {target}: server returned an error");
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("fvs-appctl: {e}");
            ExitCode::from(1)
        }
    }
}

fn set_timeout(v: &str, t: &mut Option<Duration>) -> Result<(), String> {
    let secs: u64 = v
        .parse()
        .map_err(|_| format!("value {v} on --timeout is invalid"))?;
    *t = (secs > 0).then(|| Duration::from_secs(secs));
    Ok(())
}
