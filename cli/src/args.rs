//! Command-line parsing of `fvs-ofctl` and `fvs-appctl`, apart from the
//! connection to the daemon so that it can be tested (and fuzzed) alone.

use std::ffi::OsString;
use std::time::Duration;

use fvs_ofproto::ofp;

/// The arguments as strings; an argument that is not UTF-8 is an error
/// (the message to print), where `std::env::args()` would panic.
pub fn strings(args: impl IntoIterator<Item = OsString>) -> Result<Vec<String>, String> {
    args.into_iter()
        .map(|a| {
            a.into_string()
                .map_err(|a| format!("invalid argument {a:?}: not UTF-8"))
        })
        .collect()
}

/// This process's arguments, without the program name (see [`strings`]).
pub fn from_env() -> Result<Vec<String>, String> {
    strings(std::env::args_os().skip(1))
}

/// What an `fvs-ofctl` command line asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ofctl {
    Help,
    Version,
    Run {
        /// `--strict`, `--no-stats`, `--names`, `--no-names`, `--readd`.
        flags: Vec<String>,
        timeout: Option<Duration>,
        versions: Option<u32>,
        cmd: String,
        /// The words after the command (their count checked).
        rest: Vec<String>,
    },
}

/// Commands and how many words follow the command (min, max).
pub fn ofctl_arity(cmd: &str) -> Option<(usize, usize)> {
    Some(match cmd {
        "show" | "dump-tables" => (1, 1),
        "dump-ports" | "dump-flows" | "dump-aggregate" | "del-flows" | "del-groups"
        | "dump-groups" | "dump-group-stats" => (1, 2),
        "add-flow" | "add-flows" | "mod-flows" | "replace-flows" | "diff-flows" | "add-group"
        | "add-groups" | "mod-group" => (2, 2),
        _ => return None,
    })
}

fn ofctl_timeout(v: &str) -> Result<Duration, String> {
    v.parse::<u64>()
        .map(Duration::from_secs)
        .map_err(|_| format!("value {v} on -t or --timeout is invalid"))
}

/// Parses `fvs-ofctl`'s arguments (without the program name); the error
/// is the message to print.
pub fn ofctl(args: impl IntoIterator<Item = String>) -> Result<Ofctl, String> {
    let mut flags = Vec::new();
    let mut words = Vec::new();
    let mut timeout = None;
    let mut versions = None;
    let mut args = args.into_iter();
    while let Some(a) = args.next() {
        match a.as_str() {
            "-h" | "--help" => return Ok(Ofctl::Help),
            "-V" | "--version" => return Ok(Ofctl::Version),
            "--strict" | "--no-stats" | "--names" | "--no-names" | "--readd" => flags.push(a),
            "-O" | "--protocols" => {
                let v = args.next().ok_or("option '-O' requires an argument")?;
                versions = Some(ofp::versions_from_option(&v)?);
            }
            "-t" | "--timeout" => {
                let v = args
                    .next()
                    .ok_or("option '--timeout' requires an argument")?;
                timeout = Some(ofctl_timeout(&v)?);
            }
            s if s.starts_with("--protocols=") => {
                versions = Some(ofp::versions_from_option(&s["--protocols=".len()..])?)
            }
            s if s.starts_with("-O") && s.len() > 2 => {
                versions = Some(ofp::versions_from_option(&s[2..])?)
            }
            s if s.starts_with("--timeout=") => {
                timeout = Some(ofctl_timeout(&s["--timeout=".len()..])?)
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
        ofctl_arity(cmd).ok_or_else(|| format!("unknown command '{cmd}'; use --help for help"))?;
    if rest.len() < min {
        return Err(format!("'{cmd}' command requires at least {min} arguments"));
    }
    if rest.len() > max {
        return Err(format!("'{cmd}' command takes at most {max} arguments"));
    }
    Ok(Ofctl::Run {
        flags,
        timeout,
        versions,
        cmd: cmd.clone(),
        rest: rest.to_vec(),
    })
}

/// What an `fvs-appctl` command line asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Appctl {
    Help,
    Version,
    Call {
        target: String,
        timeout: Option<Duration>,
        cmd: String,
        params: Vec<String>,
    },
}

fn appctl_timeout(v: &str, t: &mut Option<Duration>) -> Result<(), String> {
    let secs: u64 = v
        .parse()
        .map_err(|_| format!("value {v} on --timeout is invalid"))?;
    *t = (secs > 0).then(|| Duration::from_secs(secs));
    Ok(())
}

/// Parses `fvs-appctl`'s arguments (without the program name); the error
/// is the message to print.
pub fn appctl(args: &[String]) -> Result<Appctl, String> {
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
        match a.as_str() {
            "-t" | "--target" => target = value(&mut i, "--target")?,
            s if s.starts_with("--target=") => target = value(&mut i, "--target")?,
            "-T" | "--timeout" => appctl_timeout(&value(&mut i, "--timeout")?, &mut timeout)?,
            s if s.starts_with("--timeout=") => {
                appctl_timeout(&value(&mut i, "--timeout")?, &mut timeout)?
            }
            "-h" | "--help" => return Ok(Appctl::Help),
            "-V" | "--version" => return Ok(Appctl::Version),
            s if s.starts_with('-') => return Err(format!("unrecognized option '{s}'")),
            _ => break,
        }
        i += 1;
    }
    let Some(cmd) = args.get(i) else {
        return Err("at least one non-option argument is required (use --help for help)".into());
    };
    Ok(Appctl::Call {
        target,
        timeout,
        cmd: cmd.clone(),
        params: args[i + 1..].to_vec(),
    })
}
