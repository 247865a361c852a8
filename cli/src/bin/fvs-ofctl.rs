//! fvs-ofctl: OpenFlow table management with ovs-ofctl's commands and
//! output. It speaks OpenFlow to the bridge's management socket
//! (`$FVS_RUNDIR/BRIDGE.mgmt`), or to `unix:PATH` / `tcp:HOST:PORT`.

use std::io::Read;
use std::process::ExitCode;
use std::time::Duration;

use fvs_cli::daemon::ofctl::{self, Client, DiffSource, OfctlOptions, SocketTransport};
use fvs_ofproto::ofp;

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

/// Commands and how many words follow the command (min, max).
fn arity(cmd: &str) -> Option<(usize, usize)> {
    Some(match cmd {
        "show" | "dump-tables" => (1, 1),
        "dump-ports" | "dump-flows" | "dump-aggregate" | "del-flows" | "del-groups"
        | "dump-groups" | "dump-group-stats" => (1, 2),
        "add-flow" | "add-flows" | "mod-flows" | "replace-flows" | "diff-flows" | "add-group"
        | "add-groups" | "mod-group" => (2, 2),
        _ => return None,
    })
}

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
    let mut flags = Vec::new();
    let mut words = Vec::new();
    let mut timeout = None;
    let mut versions = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "-h" | "--help" => return Ok(format!("{USAGE}\n")),
            "-V" | "--version" => {
                return Ok(format!(
                    "fvs-ofctl (Ferrous vSwitch) {}\nOpenFlow versions 0x1, 0x4\n",
                    env!("CARGO_PKG_VERSION")
                ))
            }
            "--strict" | "--no-stats" | "--names" | "--no-names" | "--readd" => flags.push(a),
            "-O" | "--protocols" => {
                let v = args.next().ok_or("option '-O' requires an argument")?;
                versions = Some(ofp::versions_from_option(&v)?);
            }
            "-t" | "--timeout" => {
                let v = args
                    .next()
                    .ok_or("option '--timeout' requires an argument")?;
                timeout = Some(parse_timeout(&v)?);
            }
            s if s.starts_with("--protocols=") => {
                versions = Some(ofp::versions_from_option(&s["--protocols=".len()..])?)
            }
            s if s.starts_with("-O") && s.len() > 2 => {
                versions = Some(ofp::versions_from_option(&s[2..])?)
            }
            s if s.starts_with("--timeout=") => {
                timeout = Some(parse_timeout(&s["--timeout=".len()..])?)
            }
            s if s.starts_with('-') && s.len() > 1 && words.is_empty() => {
                return Err(format!("unrecognized option '{s}'"))
            }
            _ => words.push(a),
        }
    }
    let Some((cmd, rest)) = words.split_first() else {
        return Err("missing command name; use --help for help".into());
    };
    let (min, max) =
        arity(cmd).ok_or_else(|| format!("unknown command '{cmd}'; use --help for help"))?;
    if rest.len() < min {
        return Err(format!("'{cmd}' command requires at least {min} arguments"));
    }
    if rest.len() > max {
        return Err(format!("'{cmd}' command takes at most {max} arguments"));
    }
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
    match cmd.as_str() {
        "add-flows" | "replace-flows" | "add-groups" => {
            let file = &rest[1];
            let text = read_source(file)?;
            ofctl::run_with(&mut connect, cmd, &rest[0], &[text], &opts)
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
        _ => ofctl::run_with(&mut connect, cmd, &rest[0], &rest[1..], &opts),
    }
}

/// `line N: …` errors from a flow file become `FILE:N: …`, as ovs-ofctl prints them.
fn with_file(e: &str, file: &str) -> String {
    match e.strip_prefix("line ").and_then(|r| r.split_once(": ")) {
        Some((n, msg)) if n.chars().all(|c| c.is_ascii_digit()) => format!("{file}:{n}: {msg}"),
        _ => e.to_string(),
    }
}

fn parse_timeout(v: &str) -> Result<Duration, String> {
    v.parse::<u64>()
        .map(Duration::from_secs)
        .map_err(|_| format!("value {v} on -t or --timeout is invalid"))
}
