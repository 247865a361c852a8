//! The `fvs-vsctl` command engine: ovs-vsctl 3.1's syntax, output and
//! error messages, computed against a snapshot of the database without
//! talking to the daemon.
//!
//! # API
//!
//! ```text
//! vsctl::parse(&args) -> Result<Invocation, VsctlError>       args: argv without the program name;
//!                                                             print inv.warnings to stderr first
//! vsctl::execute(&Invocation, &Data) -> Result<Execution, VsctlError>
//!
//! Execution {
//!     txn: Option<Txn>,        commit with Db::commit(&txn, Some(snapshot.generation()));
//!                              on DbError::Stale, fetch a new snapshot and execute again
//!     output: String,          stdout, once the transaction committed (or there was none)
//!     exit_status: i32,        0, or 2 from br-exists on a missing bridge
//!     wait_for_daemon: bool,   wait until Open_vSwitch cur_cfg >= next_cfg
//!     next_cfg: Option<i64>,   the value to wait for
//!     warnings: Vec<String>,   for stderr (ovs-vsctl logs them as warnings)
//!     try_again: bool,         wait-until: re-execute when the database changes
//! }
//! VsctlError: Display is the message; print it as "fvs-vsctl: {err}" and exit 1.
//! ```
//!
//! Commands run in order on a working copy of the snapshot; the first error
//! aborts them all (nothing is committed, nothing is printed). The
//! transaction is the difference between the working copy and the snapshot
//! and is checked against the snapshot before `execute` returns, so a
//! commit fails only if the database moved meanwhile. Like ovs-vsctl, a
//! transaction that changes something also increments `next_cfg`, unless
//! `--no-wait`. Rows are listed in UUID order (ovs-vsctl uses hash order).

mod bridge;
mod commands;
mod output;
mod parse;
mod show;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use crate::db::{json_string, Data, Datum, DbError, Txn};

use commands::{Ctx, Out, Stop};
pub use output::{CellFormat, TableFormat, TableStyle};
pub use parse::parse;

/// What the command line asks for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Action {
    /// Run the commands.
    #[default]
    Run,
    Help,
    Version,
    ListCommands,
    ListOptions,
}

/// A parsed command line.
#[derive(Clone, Debug, Default)]
pub struct Invocation {
    /// `--db=unix:PATH`.
    pub db: Option<PathBuf>,
    pub no_wait: bool,
    /// `-t`/`--timeout=SECS` (none when 0 or absent).
    pub timeout: Option<Duration>,
    pub dry_run: bool,
    pub oneline: bool,
    pub retry: bool,
    pub style: TableStyle,
    pub action: Action,
    pub commands: Vec<Command>,
    /// The arguments as one string, for the transaction's comment.
    pub args_text: String,
    /// Warnings to print before running (ovs-vsctl prints them even if a
    /// command then fails), e.g. `create` in a non-root table without `--id`.
    pub warnings: Vec<String>,
}

/// One command: its name, arguments and `--option[=value]`s.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Command {
    pub name: String,
    pub args: Vec<String>,
    pub options: BTreeMap<String, Option<String>>,
}

/// The result of running an invocation against a snapshot.
#[derive(Clone, Debug, Default)]
pub struct Execution {
    pub txn: Option<Txn>,
    pub output: String,
    pub exit_status: i32,
    pub wait_for_daemon: bool,
    pub next_cfg: Option<i64>,
    pub warnings: Vec<String>,
    pub try_again: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum VsctlError {
    /// A bad command line.
    #[error("{0}")]
    Usage(String),
    /// A command that cannot run (no such bridge, bad value, …).
    #[error("{0}")]
    Command(String),
    /// The database would refuse the transaction.
    #[error("transaction error: {}", transaction_error_json(.0))]
    Transaction(DbError),
}

impl VsctlError {
    /// The process exit status for this error (always 1, as in ovs-vsctl).
    pub fn exit_status(&self) -> i32 {
        1
    }
}

fn transaction_error_json(e: &DbError) -> String {
    let (tag, details) = e.ovsdb_error();
    format!(
        "{{\"details\":{},\"error\":{}}}",
        json_string(&details),
        json_string(tag)
    )
}

/// Runs `inv` against `snapshot`.
pub fn execute(inv: &Invocation, snapshot: &Data) -> Result<Execution, VsctlError> {
    match inv.action {
        Action::Run => {}
        Action::Help => return Ok(text_only(help_text())),
        Action::Version => {
            return Ok(text_only(format!(
                "fvs-vsctl (fvs) {}\nDB Schema {}\n",
                env!("CARGO_PKG_VERSION"),
                crate::db::schema().version
            )))
        }
        Action::ListCommands => return Ok(text_only(commands::list_commands())),
        Action::ListOptions => return Ok(text_only(options_text())),
    }

    let mut warnings = Vec::new();
    for c in &inv.commands {
        let arity_ok = commands::find_syntax(&c.name)
            .is_some_and(|s| (s.min_args..=s.max_args).contains(&c.args.len()));
        if arity_ok {
            commands::prerequisites(c).map_err(stop_error)?;
        }
    }
    let mut ctx = Ctx::new(snapshot);
    let mut outs = Vec::new();
    for c in &inv.commands {
        let syntax = commands::find_syntax(&c.name).ok_or_else(|| {
            VsctlError::Usage(format!("unknown command '{}'; use --help for help", c.name))
        })?;
        // An Invocation built by hand could have any arity; parse() checks
        // this too, with the same messages.
        if c.args.len() < syntax.min_args || c.args.len() > syntax.max_args {
            return Err(VsctlError::Usage(format!(
                "'{}' command has a wrong number of arguments",
                c.name
            )));
        }
        match (syntax.run)(&mut ctx, c) {
            Ok(out) => outs.push(out),
            Err(Stop::Fail(e)) => return Err(e),
            Err(Stop::Exit(status)) => {
                return Ok(Execution {
                    exit_status: status,
                    warnings,
                    ..Execution::default()
                })
            }
            Err(Stop::TryAgain) => {
                return Ok(Execution {
                    try_again: true,
                    warnings,
                    ..Execution::default()
                })
            }
        }
    }
    warnings.append(&mut ctx.warnings);

    for (name, sym) in &ctx.symtab.symbols {
        if !sym.created {
            return Err(VsctlError::Command(format!(
                "row id \"{name}\" is referenced but never created (e.g. with \"-- --id={name} create ...\")"
            )));
        }
        if !sym.strong_ref {
            warnings.push(if sym.weak_ref {
                format!(
                    "row id \"{name}\" was created but only a weak reference to it was inserted, so it will not \
                     actually appear in the database"
                )
            } else {
                format!(
                    "row id \"{name}\" was created but no reference to it was inserted, so it will not actually \
                     appear in the database"
                )
            });
        }
    }

    let mut txn = Txn::diff(snapshot, &ctx.data);
    let mut next_cfg = None;
    if !txn.is_empty() && !inv.no_wait {
        if let Some(row) = ctx.data.row("Open_vSwitch", ctx.ovs) {
            let next = row.int("next_cfg").unwrap_or(0) + 1;
            match txn.ops.iter_mut().find(|op| {
                matches!(op, crate::db::Op::Insert { table, uuid, .. } if table == "Open_vSwitch" && *uuid == ctx.ovs)
            }) {
                Some(crate::db::Op::Insert { row, .. }) => {
                    row.insert("next_cfg".into(), Datum::integer(next));
                }
                _ => {
                    txn.update("Open_vSwitch", ctx.ovs, "next_cfg", Datum::integer(next));
                }
            }
            next_cfg = Some(next);
        }
    }
    if !txn.is_empty() {
        txn.comment = Some(format!("fvs-vsctl: {}", inv.args_text));
        snapshot.applied(&txn).map_err(VsctlError::Transaction)?;
    }

    let mut output = String::new();
    let mut printer = output::Printer::default();
    for out in outs {
        match out {
            Out::Table(t) => output += &printer.print(&t, &inv.style),
            Out::Text(s) if inv.oneline => {
                for ch in s.strip_suffix('\n').unwrap_or(&s).chars() {
                    match ch {
                        '\n' => output += "\\n",
                        '\\' => output += "\\\\",
                        c => output.push(c),
                    }
                }
                output.push('\n');
            }
            Out::Text(s) => output += &s,
        }
    }

    let changed = !txn.is_empty() && !inv.dry_run;
    Ok(Execution {
        wait_for_daemon: changed && !inv.no_wait,
        next_cfg: next_cfg.filter(|_| changed),
        txn: changed.then_some(txn),
        output,
        exit_status: 0,
        warnings,
        try_again: false,
    })
}

fn stop_error(s: Stop) -> VsctlError {
    match s {
        Stop::Fail(e) => e,
        Stop::Exit(_) | Stop::TryAgain => VsctlError::Command("unexpected early exit".into()),
    }
}

fn text_only(output: String) -> Execution {
    Execution {
        output,
        ..Execution::default()
    }
}

fn options_text() -> String {
    let mut out = String::new();
    for line in [
        "--db=ARG",
        "--no-syslog",
        "--no-wait",
        "--dry-run",
        "--oneline",
        "--timeout=ARG",
        "-t ARG",
        "--retry",
        "--help",
        "-h",
        "--commands",
        "--options",
        "--version",
        "-V",
        "--verbose=ARG",
        "-v ARG",
        "--log-file=ARG",
        "--format=ARG",
        "-f ARG",
        "--data=ARG",
        "-d ARG",
        "--no-headings",
        "--pretty",
        "--bare",
        "--max-column-width=ARG",
    ] {
        out += line;
        out.push('\n');
    }
    out
}

fn help_text() -> String {
    "fvs-vsctl: fvs-vswitchd management utility
usage: fvs-vsctl [OPTIONS] COMMAND [ARG...]

Open vSwitch commands:
  init                        initialize database, if not yet initialized
  show                        print overview of database contents
  emer-reset                  reset configuration to clean state

Bridge commands:
  add-br BRIDGE               create a new bridge named BRIDGE
  add-br BRIDGE PARENT VLAN   create new fake BRIDGE in PARENT on VLAN
  del-br BRIDGE               delete BRIDGE and all of its ports
  list-br                     print the names of all the bridges
  br-exists BRIDGE            exit 2 if BRIDGE does not exist
  br-to-vlan BRIDGE           print the VLAN which BRIDGE is on
  br-to-parent BRIDGE         print the parent of BRIDGE
  br-set-external-id BRIDGE KEY VALUE  set KEY on BRIDGE to VALUE
  br-set-external-id BRIDGE KEY  unset KEY on BRIDGE
  br-get-external-id BRIDGE KEY  print value of KEY on BRIDGE
  br-get-external-id BRIDGE  list key-value pairs on BRIDGE

Port commands (a bond is considered to be a single port):
  list-ports BRIDGE           print the names of all the ports on BRIDGE
  add-port BRIDGE PORT        add network device PORT to BRIDGE
  add-bond BRIDGE PORT IFACE...  add bonded port PORT in BRIDGE from IFACES
  del-port [BRIDGE] PORT      delete PORT (which may be bonded) from BRIDGE
  port-to-br PORT             print name of bridge that contains PORT

Interface commands (a bond consists of multiple interfaces):
  list-ifaces BRIDGE          print the names of all interfaces on BRIDGE
  iface-to-br IFACE           print name of bridge that contains IFACE

Controller commands:
  get-controller BRIDGE      print the controllers for BRIDGE
  del-controller BRIDGE      delete the controllers for BRIDGE
  [--inactivity-probe=MSECS]
  set-controller BRIDGE TARGET...  set the controllers for BRIDGE
  get-fail-mode BRIDGE       print the fail-mode for BRIDGE
  del-fail-mode BRIDGE       delete the fail-mode for BRIDGE
  set-fail-mode BRIDGE MODE  set the fail-mode for BRIDGE to MODE

Manager commands:
  get-manager                print the managers
  del-manager                delete the managers
  [--inactivity-probe=MSECS]
  set-manager TARGET...      set the list of managers to TARGET...

SSL commands:
  get-ssl                     print the SSL configuration
  del-ssl                     delete the SSL configuration
  set-ssl PRIV-KEY CERT CA-CERT  set the SSL configuration

Auto Attach commands:
  add-aa-mapping BRIDGE I-SID VLAN   add Auto Attach mapping to BRIDGE
  del-aa-mapping BRIDGE I-SID VLAN   delete Auto Attach mapping VLAN from BRIDGE
  get-aa-mapping BRIDGE              get Auto Attach mappings from BRIDGE

Switch commands:
  emer-reset                  reset switch to known good state

Database commands:
  list TBL [REC]              list RECord (or all records) in TBL
  find TBL CONDITION...       list records satisfying CONDITION in TBL
  get TBL REC COL[:KEY]       print values of COLumns in RECord in TBL
  set TBL REC COL[:KEY]=VALUE set COLumn values in RECord in TBL
  add TBL REC COL [KEY=]VALUE add (KEY=)VALUE to COLumn in RECord in TBL
  remove TBL REC COL [KEY=]VALUE  remove (KEY=)VALUE from COLumn
  clear TBL REC COL           clear values from COLumn in RECord in TBL
  create TBL COL[:KEY]=VALUE  create and initialize new record
  destroy TBL REC             delete RECord from TBL
  wait-until TBL REC [COL[:KEY]=VALUE]  wait until condition is true

Options:
  --db=unix:PATH              connect to the daemon's socket at PATH
  --no-wait                   do not wait for fvs-vswitchd to reconfigure
  -t, --timeout=SECS          wait at most SECS seconds for fvs-vswitchd
  --dry-run                   do not commit changes to database
  --oneline                   print exactly one line of output per command

Output formatting options:
  -f, --format=FORMAT         set output formatting to FORMAT
                              (\"table\", \"html\", \"csv\", or \"json\")
  -d, --data=FORMAT           set table cell output formatting to
                              FORMAT (\"string\", \"bare\", or \"json\")
  --no-headings               omit table heading row
  --pretty                    pretty-print JSON in output
  --bare                      equivalent to \"--format=list --data=bare --no-headings\"

Other options:
  -h, --help                  display this help message
  -V, --version               display version information
"
    .to_string()
}

/// True if the commands could change the database (worth an info log).
pub fn might_write(inv: &Invocation) -> bool {
    commands::might_write(&inv.commands)
}
