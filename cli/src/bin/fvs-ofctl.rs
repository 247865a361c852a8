//! fvs-ofctl: OpenFlow table management with ovs-ofctl's commands and
//! output. It speaks OpenFlow to the bridge's management socket
//! (`$FVS_RUNDIR/BRIDGE.mgmt`), or to `unix:PATH` / `tcp:HOST:PORT`.

use std::io::Read;
use std::process::ExitCode;

use fvs_cli::args;
use fvs_cli::daemon::ofctl::{self, Client, DiffSource, OfctlOptions, SocketTransport};

const USAGE: &str = "\
fvs-ofctl: OpenFlow switch management utility (Ferrous vSwitch)
usage: fvs-ofctl [OPTIONS] COMMAND [ARG...]
  show SWITCH                 show OpenFlow information
  dump-tables SWITCH          print table stats
  dump-ports SWITCH [PORT]    print port statistics
  dump-flows SWITCH [FLOW]    print matching FLOWs
  dump-aggregate SWITCH [FLOW] print aggregate stats for FLOWs
  add-flow SWITCH FLOW        add flow described by FLOW
  add-flows SWITCH FILE       add flows from FILE (- for stdin)
  mod-flows SWITCH FLOW       modify actions of matching FLOWs
  del-flows SWITCH [FLOW]     delete matching FLOWs
  replace-flows SWITCH FILE   replace flows with those in FILE
  diff-flows SOURCE1 SOURCE2  compare flows from two sources
  add-group SWITCH GROUP      add group described by GROUP
  add-groups SWITCH FILE      add groups from FILE
  mod-group SWITCH GROUP      modify specific group
  del-groups SWITCH [GROUP]   delete matching GROUPs
  dump-groups SWITCH [GROUP]  print group descriptions
  dump-group-stats SWITCH [GROUP]  print group statistics
SWITCH is a bridge name (its management socket), unix:PATH or tcp:HOST:PORT.
Options:
  --strict                    use strict match for flow commands
  --no-stats                  omit statistics in dump-flows output
  --names / --no-names        show port names / numbers
  -O, --protocols=VERSIONS    OpenFlow10 and/or OpenFlow13
  -t, --timeout=SECS          give up after SECS seconds
  -h, --help                  display this help message";

fn read_source(path: &str) -> Result<String, String> {
    let mut text = String::new();
    if path == "-" {
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| format!("-: {e}"))?;
    } else {
        text = std::fs::read_to_string(path)
            .map_err(|e| format!("{path}: open failed ({})", os_error(&e)))?;
    }
    Ok(text)
}

fn os_error(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "No such file or directory".into(),
        std::io::ErrorKind::PermissionDenied => "Permission denied".into(),
        _ => e.to_string(),
    }
}

fn main() -> ExitCode {
    match run() {
        Ok(out) => {
            print!("{out}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("fvs-ofctl: {e}");
            ExitCode::from(1)
        }
    }
}

fn run() -> Result<String, String> {
    let (flags, timeout, versions, cmd, rest) = match args::ofctl(args::from_env()?)? {
        args::Ofctl::Help => return Ok(format!("{USAGE}\n")),
        args::Ofctl::Version => {
            return Ok(format!(
                "fvs-ofctl (Ferrous vSwitch) {}\nOpenFlow versions 0x1, 0x4\n",
                env!("CARGO_PKG_VERSION")
            ))
        }
        args::Ofctl::Run {
            flags,
            timeout,
            versions,
            cmd,
            rest,
        } => (flags, timeout, versions, cmd, rest),
    };
    let mut opts = OfctlOptions::parse(&flags);
    opts.versions = versions;
    opts.timeout = timeout;
    let mut connect = |target: &str, allowed: u32| -> Result<Client, String> {
        Client::open(
            Box::new(SocketTransport::connect(target, timeout)?),
            allowed,
            target,
        )
    };
    let rest = &rest[..];
    match cmd.as_str() {
        "add-flows" | "replace-flows" | "add-groups" => {
            let file = &rest[1];
            let text = read_source(file)?;
            ofctl::run_with(&mut connect, &cmd, &rest[0], &[text], &opts)
                .map_err(|e| with_file(&e, file))
        }
        "diff-flows" => {
            // Each source is a flow file if one exists by that name, else a bridge.
            let mut sources = Vec::new();
            for s in rest {
                if std::path::Path::new(s).is_file() || s == "-" {
                    sources.push(DiffSource::Text {
                        text: read_source(s)?,
                        name: s.clone(),
                    });
                } else {
                    sources.push(DiffSource::Bridge(s.clone()));
                }
            }
            ofctl::diff_sources(&mut connect, &sources, &opts)
        }
        _ => ofctl::run_with(&mut connect, &cmd, &rest[0], &rest[1..], &opts),
    }
}

/// `line N: …` errors from a flow file become `FILE:N: …`, as ovs-ofctl prints them.
fn with_file(e: &str, file: &str) -> String {
    match e.strip_prefix("line ").and_then(|r| r.split_once(": ")) {
        Some((n, msg)) if n.chars().all(|c| c.is_ascii_digit()) => format!("{file}:{n}: {msg}"),
        _ => e.to_string(),
    }
}
