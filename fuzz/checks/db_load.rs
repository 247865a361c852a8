// The configuration database loader: `Db::open` replaying an arbitrary
// journal file (written to a temporary directory in memory), and the
// OVSDB JSON values it decodes, for every column of the schema.
// A database that opens must open again to the same contents (the loader
// cuts a torn tail; what remains must replay alike).
//
// Shared by the fuzz target (fuzz/fuzz_targets/db_load.rs) and the replay of
// the corpus and crash reproducers in the crate's tests (`include!`d).
use std::path::PathBuf;
use std::sync::OnceLock;

use fvs_cli::db::{schema, Datum, Db};

/// The scratch directory of this process: under `FVS_FUZZ_DB_DIR` when set
/// (whoever runs the fuzzer removes it then), else in /dev/shm, where fsyncs
/// cost nothing.
pub fn dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let base = if let Some(d) = std::env::var_os("FVS_FUZZ_DB_DIR") {
            PathBuf::from(d)
        } else if std::path::Path::new("/dev/shm").is_dir() {
            PathBuf::from("/dev/shm")
        } else {
            std::env::temp_dir()
        };
        let d = base.join(format!("fvs-fuzz-db-{}", std::process::id()));
        std::fs::create_dir_all(&d).expect("temp dir");
        d
    })
}

fn load(bytes: &[u8]) {
    let path = dir().join("conf.db");
    std::fs::write(&path, bytes).expect("write journal");
    let Ok(db) = Db::open(&path) else {
        return;
    };
    let data = db.data().clone();
    let _ = data.config();
    drop(db);
    let again = Db::open(&path).unwrap_or_else(|e| panic!("opened once, not twice: {e}"));
    assert_eq!(again.data(), &data, "a second open reads other contents");
}

fn value(sel: &[u8; 2], text: &[u8]) {
    let Ok(json) = serde_json::from_slice::<serde_json::Value>(text) else {
        return;
    };
    let tables: Vec<_> = schema().tables.values().collect();
    let t = tables[usize::from(sel[0]) % tables.len()];
    let cols: Vec<_> = t.columns.values().collect();
    let c = cols[usize::from(sel[1]) % cols.len()];
    if let Ok(d) = Datum::from_json(&json, &c.ty) {
        let back = d.to_json();
        let again = Datum::from_json(&back, &c.ty)
            .unwrap_or_else(|e| panic!("{}.{}: {back} from {json}: {e}", t.name, c.name));
        assert_eq!(again, d, "{}.{}: {json}", t.name, c.name);
    }
}

/// Runs one input; panics on a finding.
pub fn check(data: &[u8]) {
    match data.split_first_chunk::<3>() {
        Some(([0x7b, a, b], rest)) => value(&[*a, *b], rest),
        _ => load(data),
    }
}
