// Command lines of fvs-vsctl, fvs-ofctl and fvs-appctl: arbitrary argument
// vectors (the input split on NUL bytes; the first byte picks the tool).
// Only parsing, and for fvs-vsctl the command engine over an in-memory
// database (what it does with the daemon's snapshot); nothing connects to
// a daemon.
//
// Shared by the fuzz target (fuzz/fuzz_targets/cli_args.rs) and the replay of
// the corpus and crash reproducers in the crate's tests (`include!`d).
use fvs_cli::args::{self, Appctl, Ofctl};
use fvs_cli::db::Data;
use fvs_cli::vsctl::{self, Action};

fn vsctl(argv: &[String]) {
    let Ok(inv) = vsctl::parse(argv) else {
        return;
    };
    let _ = vsctl::might_write(&inv);
    let base = Data::initial();
    let Ok(exec) = vsctl::execute(&inv, &base) else {
        return;
    };
    if inv.action != Action::Run {
        return;
    }
    if let Some(txn) = &exec.txn {
        // What fvs-vsctl sends the daemon, and what the daemon commits.
        let wire = serde_json::to_value(txn).expect("transactions serialize");
        let back: fvs_cli::db::Txn =
            serde_json::from_value(wire).expect("transactions deserialize");
        assert_eq!(&back, txn);
        if let Ok((after, _)) = base.applied(txn) {
            let _ = after.config();
        }
    }
}

/// Runs one input; panics on a finding.
pub fn check(data: &[u8]) {
    let Some((&tool, rest)) = data.split_first() else {
        return;
    };
    let raw: Vec<&[u8]> = if rest.is_empty() {
        Vec::new()
    } else {
        rest.split(|&b| b == 0).collect()
    };
    // As the tools take their arguments: bytes, refused unless UTF-8.
    let os = raw
        .iter()
        .map(|a| <std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(a).to_os_string());
    let argv = match args::strings(os) {
        Ok(argv) => argv,
        Err(_) => {
            assert!(raw.iter().any(|a| std::str::from_utf8(a).is_err()));
            return;
        }
    };
    match tool % 3 {
        0 => vsctl(&argv),
        1 => {
            if let Ok(Ofctl::Run { cmd, rest, .. }) = args::ofctl(argv.iter().cloned()) {
                let (min, max) = args::ofctl_arity(&cmd).expect("a known command");
                assert!((min..=max).contains(&rest.len()));
            }
        }
        _ => {
            if let Ok(Appctl::Call { cmd, params, .. }) = args::appctl(&argv) {
                assert!(params.len() < argv.len());
                assert!(argv.contains(&cmd));
            }
        }
    }
}
