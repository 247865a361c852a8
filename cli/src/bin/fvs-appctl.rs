//! fvs-appctl: sends a command to a running fvs daemon, as ovs-appctl does.

use std::path::PathBuf;
use std::process::ExitCode;

use fvs_cli::args;
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
    let args = match args::from_env() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("fvs-appctl: {e}");
            return ExitCode::from(1);
        }
    };
    let (target, timeout, cmd, params) = match args::appctl(&args) {
        Ok(args::Appctl::Help) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Ok(args::Appctl::Version) => {
            println!("fvs-appctl (Ferrous vSwitch) {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        Ok(args::Appctl::Call {
            target,
            timeout,
            cmd,
            params,
        }) => (target, timeout, cmd, params),
        Err(e) => {
            eprintln!("fvs-appctl: {e}");
            return ExitCode::from(1);
        }
    };
    let params = params.into_iter().map(serde_json::Value::String).collect();
    let path: PathBuf = unixctl::resolve_target(&target);
    match unixctl::call(&path, &cmd, params, timeout) {
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
