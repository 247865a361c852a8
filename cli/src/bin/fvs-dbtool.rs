//! fvs-dbtool: checks and repairs fvs-vswitchd's database file, in the
//! spirit of ovsdb-tool. `check` reads without changing anything; `recover`
//! keeps the longest valid prefix and writes the rest aside.

use std::path::PathBuf;
use std::process::ExitCode;

use fvs_cli::db;

const USAGE: &str = "\
fvs-dbtool: Ferrous vSwitch database management utility
usage: fvs-dbtool [OPTIONS] COMMAND [DB]
where DB is the database file (default: $FVS_DBDIR/conf.db,
FVS_DBDIR defaulting to /etc/fvs).

Commands:
  check [DB]      report whether fvs-vswitchd can open DB, and if not, which
                  record at which byte offset is damaged (exit status 1)
  recover [DB]    keep the longest valid prefix of DB, write the rest to
                  DB.corrupt-<unix time>, print what was kept and lost
                  (fvs-vswitchd must not be running)
Options:
  -h, --help      display this help message
  -V, --version   display version information";

fn default_db() -> PathBuf {
    std::env::var_os("FVS_DBDIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/etc/fvs"))
        .join("conf.db")
}

fn describe(r: &db::CheckReport) -> String {
    let mut s = format!(
        "{}: {} bytes, {} valid record{} ({} bytes), generation {}",
        r.path.display(),
        r.file_len,
        r.records,
        if r.records == 1 { "" } else { "s" },
        r.valid_len,
        r.generation
    );
    if let Some(a) = r.acknowledged {
        s.push_str(&format!(", {a} bytes acknowledged"));
    }
    s
}

fn main() -> ExitCode {
    let args = match fvs_cli::args::from_env() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("fvs-dbtool: {e}");
            return ExitCode::from(2);
        }
    };
    let mut words = Vec::new();
    for a in args {
        match a.as_str() {
            "-h" | "--help" => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            "-V" | "--version" => {
                println!("fvs-dbtool (Ferrous vSwitch) {}", env!("CARGO_PKG_VERSION"));
                return ExitCode::SUCCESS;
            }
            s if s.starts_with('-') => {
                eprintln!("fvs-dbtool: unrecognized option '{s}' (use --help for help)");
                return ExitCode::from(2);
            }
            _ => words.push(a),
        }
    }
    let (cmd, path) = match words.as_slice() {
        [cmd] => (cmd.as_str(), default_db()),
        [cmd, p] => (cmd.as_str(), PathBuf::from(p)),
        [] => {
            eprintln!("fvs-dbtool: missing command name (use --help for help)");
            return ExitCode::from(2);
        }
        _ => {
            eprintln!("fvs-dbtool: too many arguments (use --help for help)");
            return ExitCode::from(2);
        }
    };
    match cmd {
        "check" => match db::check(&path) {
            Err(e) => {
                eprintln!("fvs-dbtool: {e}");
                ExitCode::from(2)
            }
            Ok(r) => {
                println!("{}", describe(&r));
                if let Some(t) = &r.torn {
                    println!("{t} (fvs-vswitchd drops it when it opens the file)");
                }
                match &r.problem {
                    None => {
                        println!("ok");
                        ExitCode::SUCCESS
                    }
                    Some(e) => {
                        println!("damaged: {e}");
                        println!("fvs-vswitchd refuses this file; `fvs-dbtool recover` keeps the valid prefix");
                        ExitCode::from(1)
                    }
                }
            }
        },
        "recover" => match db::recover(&path) {
            Err(e) => {
                eprintln!("fvs-dbtool: {e}");
                ExitCode::from(2)
            }
            Ok(rec) => {
                let r = &rec.before;
                println!("{}", describe(r));
                if let Some(e) = &r.problem {
                    println!("damaged: {e}");
                } else if let Some(t) = &r.torn {
                    println!("{t}");
                }
                if r.records == 0 {
                    println!("kept: nothing (no valid snapshot); fvs-vswitchd will start with an empty database");
                } else {
                    println!(
                        "kept: {} record{} ({} bytes), generation {}",
                        r.records,
                        if r.records == 1 { "" } else { "s" },
                        r.valid_len,
                        r.generation
                    );
                }
                match &rec.aside {
                    Some(p) => println!("lost: {} bytes, written to {}", rec.removed, p.display()),
                    None => println!("lost: nothing in the file"),
                }
                if rec.missing > 0 {
                    println!(
                        "lost: {} acknowledged bytes were already missing from the file (truncated)",
                        rec.missing
                    );
                }
                ExitCode::SUCCESS
            }
        },
        other => {
            eprintln!("fvs-dbtool: unknown command '{other}'; use --help for help");
            ExitCode::from(2)
        }
    }
}
