//! Command-line parsing, as ovs-vsctl does it: getopt-style global options
//! (long names may be abbreviated, `+` mode: they stop at the first
//! command), then commands separated by `--`, each with its own leading
//! options. Command options given before the first command belong to it.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use super::commands::{find_syntax, SYNTAXES};
use super::output::{CellFormat, TableFormat, TableStyle};
use super::{Action, Command, Invocation, VsctlError};

#[derive(Clone, Copy, PartialEq)]
enum HasArg {
    No,
    Required,
    Optional,
}

/// Global long options: (name, argument, short letter).
const GLOBAL: &[(&str, HasArg, Option<char>)] = &[
    ("db", HasArg::Required, None),
    ("no-syslog", HasArg::No, None),
    ("no-wait", HasArg::No, None),
    ("dry-run", HasArg::No, None),
    ("oneline", HasArg::No, None),
    ("timeout", HasArg::Required, Some('t')),
    ("retry", HasArg::No, None),
    ("help", HasArg::No, Some('h')),
    ("commands", HasArg::No, None),
    ("options", HasArg::No, None),
    ("leader-only", HasArg::No, None),
    ("no-leader-only", HasArg::No, None),
    ("shuffle-remotes", HasArg::No, None),
    ("no-shuffle-remotes", HasArg::No, None),
    ("version", HasArg::No, Some('V')),
    ("verbose", HasArg::Optional, Some('v')),
    ("log-file", HasArg::Optional, None),
    ("syslog-method", HasArg::Required, None),
    ("syslog-target", HasArg::Required, None),
    ("format", HasArg::Required, Some('f')),
    ("data", HasArg::Required, Some('d')),
    ("no-headings", HasArg::No, None),
    ("pretty", HasArg::No, None),
    ("bare", HasArg::No, None),
    ("max-column-width", HasArg::Required, None),
    ("private-key", HasArg::Required, Some('p')),
    ("certificate", HasArg::Required, Some('c')),
    ("ca-cert", HasArg::Required, Some('C')),
    ("ssl-protocols", HasArg::Required, None),
    ("ssl-ciphers", HasArg::Required, None),
    ("bootstrap-ca-cert", HasArg::Required, None),
    ("peer-ca-cert", HasArg::Required, None),
];

/// Every long option: the global ones, then each command option once.
fn long_options() -> Vec<(String, HasArg, bool)> {
    let mut v: Vec<(String, HasArg, bool)> = GLOBAL
        .iter()
        .map(|(n, a, _)| (n.to_string(), *a, false))
        .collect();
    for s in SYNTAXES {
        for opt in s.options.split(',').filter(|o| !o.is_empty()) {
            let (name, arg) = match opt.strip_suffix('=') {
                Some(n) => (n, HasArg::Required),
                None => (opt, HasArg::No),
            };
            let name = name.trim_start_matches('-');
            if !v.iter().any(|(n, _, _)| n == name) {
                v.push((name.to_string(), arg, true));
            }
        }
    }
    v
}

fn usage(msg: impl Into<String>) -> VsctlError {
    VsctlError::Usage(msg.into())
}

/// C's `strtoul(s, NULL, 10)`: the leading digits, 0 if there are none.
fn leading_number(s: &str) -> Option<u64> {
    let t = s.trim_start();
    if t.starts_with('-') {
        return None;
    }
    let t = t.trim_start_matches('+');
    let digits: String = t.chars().take_while(char::is_ascii_digit).collect();
    Some(
        digits
            .parse()
            .unwrap_or(if digits.is_empty() { 0 } else { u64::MAX }),
    )
}

/// Parses the arguments after the program name.
pub fn parse(args: &[String]) -> Result<Invocation, VsctlError> {
    let mut inv = Invocation {
        args_text: escape_args(args),
        ..Invocation::default()
    };
    let mut local: BTreeMap<String, Option<String>> = BTreeMap::new();
    let longs = long_options();
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        i += 1;
        if arg == "--" {
            break;
        }
        let (name, value, is_local) = if let Some(body) = arg.strip_prefix("--") {
            let (n, inline) = match body.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (body, None),
            };
            let exact = longs.iter().find(|(l, _, _)| l == n);
            let matches: Vec<_> = longs.iter().filter(|(l, _, _)| l.starts_with(n)).collect();
            let (lname, has_arg, is_local) = match (exact, matches.as_slice()) {
                (Some(e), _) => e.clone(),
                (None, [one]) => (*one).clone(),
                (None, []) => return Err(usage(format!("unrecognized option '--{n}'"))),
                (None, many) => {
                    let list: Vec<String> =
                        many.iter().map(|(l, _, _)| format!("'--{l}'")).collect();
                    return Err(usage(format!(
                        "option '--{n}' is ambiguous; possibilities: {}",
                        list.join(" ")
                    )));
                }
            };
            let value = match (has_arg, inline) {
                (HasArg::No, Some(_)) => {
                    return Err(usage(format!(
                        "option '--{lname}' doesn't allow an argument"
                    )))
                }
                (HasArg::Required, None) => {
                    let v = args
                        .get(i)
                        .ok_or_else(|| usage(format!("option '--{lname}' requires an argument")))?;
                    i += 1;
                    Some(v.clone())
                }
                (_, v) => v,
            };
            (lname, value, is_local)
        } else if arg.len() > 1 && arg.starts_with('-') {
            let c = arg[1..].chars().next().unwrap_or('-');
            let Some((lname, has_arg, _)) = GLOBAL.iter().find(|(_, _, s)| *s == Some(c)) else {
                return Err(usage(format!("invalid option -- '{c}'")));
            };
            let rest = &arg[1 + c.len_utf8()..];
            let value = match has_arg {
                HasArg::No if !rest.is_empty() => {
                    return Err(usage(format!("invalid option -- '{c}'")))
                }
                HasArg::No => None,
                HasArg::Optional => (!rest.is_empty()).then(|| rest.to_string()),
                HasArg::Required if !rest.is_empty() => Some(rest.to_string()),
                HasArg::Required => {
                    let v = args
                        .get(i)
                        .ok_or_else(|| usage(format!("option requires an argument -- '{c}'")))?;
                    i += 1;
                    Some(v.clone())
                }
            };
            (lname.to_string(), value, false)
        } else {
            i -= 1;
            break;
        };

        if is_local {
            // ovs-vsctl means to refuse a repeated option here but looks it
            // up under the wrong key, so a repeat is accepted: the last wins.
            local.insert(format!("--{name}"), value);
            continue;
        }
        let value = value.unwrap_or_default();
        match name.as_str() {
            "db" => {
                let path = value
                    .strip_prefix("unix:")
                    .filter(|p| !p.is_empty())
                    .ok_or_else(|| {
                        usage(format!(
                            "{value}: unsupported database (only unix:PATH is supported)"
                        ))
                    })?;
                inv.db = Some(PathBuf::from(path));
            }
            "no-wait" => inv.no_wait = true,
            "dry-run" => inv.dry_run = true,
            "oneline" => inv.oneline = true,
            "retry" => inv.retry = true,
            "timeout" => {
                let secs = leading_number(&value)
                    .ok_or_else(|| usage(format!("value {value} on -t or --timeout is invalid")))?;
                inv.timeout = (secs > 0).then(|| Duration::from_secs(secs));
            }
            "help" => {
                return Ok(Invocation {
                    action: Action::Help,
                    ..inv
                })
            }
            "version" => {
                return Ok(Invocation {
                    action: Action::Version,
                    ..inv
                })
            }
            "commands" => {
                return Ok(Invocation {
                    action: Action::ListCommands,
                    ..inv
                })
            }
            "options" => {
                return Ok(Invocation {
                    action: Action::ListOptions,
                    ..inv
                })
            }
            "format" => {
                inv.style.format = match value.as_str() {
                    "table" => TableFormat::Table,
                    "list" => TableFormat::List,
                    "html" => TableFormat::Html,
                    "csv" => TableFormat::Csv,
                    "json" => TableFormat::Json,
                    _ => return Err(usage(format!("unknown output format \"{value}\""))),
                }
            }
            "data" => {
                inv.style.cell = match value.as_str() {
                    "string" => CellFormat::String,
                    "bare" => CellFormat::Bare,
                    "json" => CellFormat::Json,
                    _ => return Err(usage(format!("unknown data format \"{value}\""))),
                }
            }
            "no-headings" => inv.style.headings = false,
            "pretty" => inv.style.pretty = true,
            "bare" => {
                inv.style.format = TableFormat::List;
                inv.style.cell = CellFormat::Bare;
                inv.style.headings = false;
            }
            "max-column-width" => {
                // atoi: a leading number, else 0 (no limit).
                inv.style.max_column_width = leading_number(&value).unwrap_or(0) as usize;
            }
            "private-key" | "certificate" | "ca-cert" | "bootstrap-ca-cert" | "peer-ca-cert"
            | "ssl-protocols" | "ssl-ciphers" => {
                return Err(usage(format!("--{name}: SSL is not supported")))
            }
            // Logging and clustering options are accepted and ignored.
            _ => {}
        }
    }

    // Commands, separated by "--".
    let rest = &args[i..];
    let mut start = 0;
    for j in 0..=rest.len() {
        if j == rest.len() || rest[j] == "--" {
            if j > start {
                inv.commands
                    .push(parse_command(&rest[start..j], std::mem::take(&mut local))?);
            } else if !local.is_empty() {
                return Err(usage("missing command name (use --help for help)"));
            }
            start = j + 1;
        }
    }
    if inv.commands.is_empty() {
        return Err(usage("missing command name (use --help for help)"));
    }
    inv.warnings = super::commands::early_warnings(&inv.commands);
    Ok(inv)
}

/// OVS's `parse_command`: leading `-` options, the name, then the arguments.
fn parse_command(
    argv: &[String],
    mut options: BTreeMap<String, Option<String>>,
) -> Result<Command, VsctlError> {
    let mut i = 0;
    while i < argv.len() && argv[i].starts_with('-') {
        let (key, value) = match argv[i].split_once('=') {
            Some((k, v)) => (k.to_string(), Some(v.to_string())),
            None => (argv[i].clone(), None),
        };
        if options.contains_key(&key) {
            return Err(usage(format!(
                "'{}' option specified multiple times",
                argv[i]
            )));
        }
        options.insert(key, value);
        i += 1;
    }
    let Some(name) = argv.get(i) else {
        return Err(usage("missing command name (use --help for help)"));
    };
    let syntax = find_syntax(name)
        .ok_or_else(|| usage(format!("unknown command '{name}'; use --help for help")))?;
    for (opt, value) in &options {
        // OVS looks the option up by substring in the command's option list.
        let end = syntax.options.find(opt.as_str()).map(|p| {
            syntax.options[p + opt.len()..]
                .chars()
                .next()
                .unwrap_or('\0')
        });
        let Some(end @ ('=' | ',' | '?' | ' ' | '\0')) = end else {
            return Err(usage(format!("'{name}' command has no '{opt}' option")));
        };
        if end != '?' && (end == '=') != value.is_some() {
            return Err(usage(if end == '=' {
                format!("missing argument to '{opt}' option on '{name}' command")
            } else {
                format!("'{opt}' option on '{name}' does not accept an argument")
            }));
        }
    }
    let args: Vec<String> = argv[i + 1..].to_vec();
    if args.len() < syntax.min_args {
        return Err(usage(format!(
            "'{}' command requires at least {} arguments",
            syntax.name, syntax.min_args
        )));
    }
    if args.len() > syntax.max_args {
        let note = if args.iter().any(|a| a.starts_with('-')) {
            " (note that options must precede command names and follow a \"--\" argument)"
        } else {
            ""
        };
        return Err(usage(format!(
            "'{}' command takes at most {} arguments{note}",
            syntax.name, syntax.max_args
        )));
    }
    Ok(Command {
        name: name.clone(),
        args,
        options,
    })
}

/// OVS's `process_escape_args`: arguments joined by spaces, quoted when needed.
pub fn escape_args(args: &[String]) -> String {
    args.iter()
        .map(|a| {
            if a.contains([' ', '\t', '\r', '\n', '\x0b', '\\', '\'', '"']) {
                let mut q = String::from('"');
                for c in a.chars() {
                    if c == '\\' || c == '"' {
                        q.push('\\');
                    }
                    q.push(c);
                }
                q.push('"');
                q
            } else {
                a.clone()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

impl Default for TableStyle {
    fn default() -> Self {
        TableStyle {
            format: TableFormat::List,
            cell: CellFormat::String,
            headings: true,
            pretty: false,
            max_column_width: 0,
        }
    }
}
