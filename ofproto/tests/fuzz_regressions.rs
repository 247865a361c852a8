//! The fuzz targets' checks (`fuzz/checks/`) over their committed corpora
//! and crash reproducers (`fuzz/corpus/<target>/`, `fuzz/regressions/<target>/`),
//! so that `cargo test` replays them without nightly or cargo-fuzz.

mod ofp_decode {
    include!("../../fuzz/checks/ofp_decode.rs");
}
mod flow_syntax {
    include!("../../fuzz/checks/flow_syntax.rs");
}

use std::path::Path;

/// Runs `check` on every committed input of fuzz target `target`.
fn replay(target: &str, check: fn(&[u8])) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
    let mut n = 0;
    for dir in ["corpus", "regressions"] {
        let Ok(entries) = std::fs::read_dir(root.join(dir).join(target)) else {
            continue;
        };
        let mut files: Vec<_> = entries.map(|e| e.unwrap().path()).collect();
        files.sort();
        for f in files {
            // A file a running fuzzer just replaced is no input.
            let Ok(data) = std::fs::read(&f) else {
                continue;
            };
            let r = std::panic::catch_unwind(|| check(&data));
            assert!(r.is_ok(), "{target}: {} fails its check", f.display());
            n += 1;
        }
    }
    assert!(n > 0, "no committed inputs for fuzz target {target}");
}

#[test]
fn ofp_decode() {
    replay("ofp_decode", ofp_decode::check);
}

#[test]
fn flow_syntax() {
    replay("flow_syntax", flow_syntax::check);
}
