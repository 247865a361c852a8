//! The fuzz targets' checks (`fuzz/checks/`) over their committed corpora
//! and crash reproducers (`fuzz/corpus/<target>/`, `fuzz/regressions/<target>/`),
//! so that `cargo test` replays them without nightly or cargo-fuzz.

mod db_load {
    include!("../../fuzz/checks/db_load.rs");
}
mod cli_args {
    include!("../../fuzz/checks/cli_args.rs");
}

// `replay(target, check)`: the check over every committed input.
include!("../../fuzz/checks/replay.rs");

#[test]
fn db_load() {
    replay("db_load", db_load::check);
    std::fs::remove_dir_all(db_load::dir()).unwrap();
}

#[test]
fn cli_args() {
    replay("cli_args", cli_args::check);
}

/// Found writing the `cli_args` target: an argument that is not UTF-8 made
/// fvs-vsctl, fvs-ofctl and fvs-appctl panic (`std::env::args()`), and
/// later by review fvs-vswitchd and fvs-dbtool; now each says so in one
/// line and exits as for other bad arguments.
#[test]
fn non_utf8_arguments_are_refused_cleanly() {
    use std::os::unix::ffi::OsStrExt;
    let bad = std::ffi::OsStr::from_bytes(b"br\xff0");
    for (tool, exe) in [
        ("fvs-vsctl", env!("CARGO_BIN_EXE_fvs-vsctl")),
        ("fvs-ofctl", env!("CARGO_BIN_EXE_fvs-ofctl")),
        ("fvs-appctl", env!("CARGO_BIN_EXE_fvs-appctl")),
    ] {
        let out = std::process::Command::new(exe)
            .arg("show")
            .arg(bad)
            .env("FVS_RUNDIR", "/nonexistent")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{tool}: {err}");
        assert_eq!(
            err,
            format!("{tool}: invalid argument \"br\\xFF0\": not UTF-8\n"),
            "{tool}"
        );
    }
    // The daemon and fvs-dbtool the same way (each with its own usual
    // status and hint for a bad command line).
    for (tool, exe, code, hint) in [
        (
            "fvs-vswitchd",
            env!("CARGO_BIN_EXE_fvs-vswitchd"),
            1,
            " (use --help for help)",
        ),
        ("fvs-dbtool", env!("CARGO_BIN_EXE_fvs-dbtool"), 2, ""),
    ] {
        let out = std::process::Command::new(exe)
            .arg(bad)
            .env("FVS_RUNDIR", "/nonexistent")
            .env("FVS_DBDIR", "/nonexistent")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{tool}: {err}");
        assert_eq!(
            err,
            format!("{tool}: invalid argument \"br\\xFF0\": not UTF-8{hint}\n"),
            "{tool}"
        );
    }
}
