// Shared by the crates' tests/fuzz_regressions.rs (included, not a module).

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
