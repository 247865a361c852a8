//! Crash safety: a child process (this test binary, re-run as
//! `crash_child`) commits transactions in a loop, acknowledging each on
//! stdout once `commit` has returned, and is SIGKILLed at a random moment —
//! many times, with compaction thresholds so low that kills also land in
//! the middle of compactions. Every reopen must succeed and hold exactly
//! the acknowledged transactions, plus at most the one in flight.

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use fvs_cli::db::{Data, Datum, Db, DbOptions, Txn, Uuid};

const CHILD_ENV: &str = "FVS_DB_CRASH_CHILD";
const ROUNDS: usize = 50;
const OPTIONS: DbOptions = DbOptions {
    compact_min_bytes: 2048,
    compact_factor: 2,
};

/// How many transactions the database holds (kept in external_ids:n).
fn counter(data: &Data) -> usize {
    data.config()
        .external_ids
        .get("n")
        .map_or(0, |n| n.parse().expect("n is a number"))
}

/// Transaction `k`: adds bridge `b{k}` (bridge, port and interface rows),
/// drops `b{k-3}` (so its rows are garbage-collected), bumps the counter.
fn step(data: &Data, k: usize) -> (Txn, Uuid) {
    let (root, row) = data.root().expect("root row");
    let (br, port, iface) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    let name = format!("b{k}");
    let mut txn = Txn::new();
    txn.insert(
        "Interface",
        iface,
        BTreeMap::from([("name".into(), Datum::string(&name))]),
    );
    let mut port_row = BTreeMap::from([
        ("name".into(), Datum::string(&name)),
        ("interfaces".into(), Datum::uuid_set([iface])),
    ]);
    if k % 7 == 3 {
        port_row.insert("tag".into(), Datum::integer((k % 4096) as i64));
    }
    txn.insert("Port", port, port_row);
    txn.insert(
        "Bridge",
        br,
        BTreeMap::from([
            ("name".into(), Datum::string(&name)),
            ("ports".into(), Datum::uuid_set([port])),
        ]),
    );
    let old = k.checked_sub(3).and_then(|o| {
        data.find_by_name("Bridge", &format!("b{o}"))
            .map(|(u, _)| u)
    });
    let mut bridges: Vec<Uuid> = row
        .uuids("bridges")
        .into_iter()
        .filter(|u| Some(*u) != old)
        .collect();
    bridges.push(br);
    txn.update("Open_vSwitch", root, "bridges", Datum::uuid_set(bridges));
    txn.update(
        "Open_vSwitch",
        root,
        "external_ids",
        Datum::string_map([("n", (k + 1).to_string())]),
    );
    txn.comment = Some(format!("step {k}"));
    (txn, iface)
}

/// What the database must hold after `n` transactions.
fn check(data: &Data, n: usize) {
    assert_eq!(counter(data), n);
    let want: Vec<String> = (n.saturating_sub(3)..n).map(|k| format!("b{k}")).collect();
    let mut have: Vec<String> = data.config().bridges.into_iter().map(|b| b.name).collect();
    have.sort_by_key(|b| b[1..].parse::<usize>().unwrap_or(0));
    assert_eq!(have, want);
    for table in ["Bridge", "Port", "Interface"] {
        assert_eq!(
            data.row_count(table),
            want.len(),
            "{table} rows after {n} transactions"
        );
    }
    for (_, row) in data.rows("Interface") {
        assert!(
            row.int_map("statistics").is_empty(),
            "statistics are ephemeral"
        );
    }
}

/// The child: commits forever. A no-op in a normal test run.
#[test]
fn crash_child() {
    let Ok(path) = std::env::var(CHILD_ENV) else {
        return;
    };
    let mut db = Db::open_with(&path, OPTIONS).expect("child opens the database");
    let mut out = std::io::stdout();
    loop {
        let n = counter(db.data());
        let (txn, iface) = step(db.data(), n);
        db.commit(&txn, Some(db.generation())).expect("commit");
        // An ephemeral update in between, as the daemon's statistics.
        let mut stats = Txn::new();
        stats.set_statistics(iface, [("rx_packets", n as i64)]);
        db.commit(&stats, None).expect("statistics");
        writeln!(out, "ACK {}", n + 1)
            .and_then(|()| out.flush())
            .expect("stdout");
    }
}

fn random_ms(max: u64) -> u64 {
    (Uuid::new_v4().as_u128() as u64) % max
}

fn run_child(path: &Path) -> usize {
    let mut child = Command::new(std::env::current_exe().expect("test binary"))
        .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, path)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn child");
    // Up to 125 ms: enough for tens of commits even on a loaded machine.
    std::thread::sleep(Duration::from_millis(5 + random_ms(120)));
    child.kill().expect("SIGKILL");
    child.wait().expect("reap");
    let mut text = String::new();
    child
        .stdout
        .take()
        .expect("stdout")
        .read_to_string(&mut text)
        .expect("read acks");
    // libtest's "test crash_child ... " may precede the first ACK on its line.
    text.lines()
        .filter_map(|l| l.find("ACK ").map(|i| &l[i + 4..]))
        .filter_map(|n| n.parse().ok())
        .max()
        .unwrap_or(0)
}

#[test]
fn kill_9_leaves_exactly_the_committed_transactions() {
    let dir = common::scratch("crash");
    let path = dir.join("conf.db");
    let mut n = 0;
    let mut busy_rounds = 0;
    for round in 0..ROUNDS {
        let acked = run_child(&path);
        let db = Db::open_with(&path, OPTIONS)
            .unwrap_or_else(|e| panic!("round {round}: reopen after kill -9 failed: {e}"));
        let now = counter(db.data());
        assert!(now >= n, "round {round}: went back from {n} to {now}");
        assert!(
            acked <= now && now <= acked.max(n) + 1,
            "round {round}: {acked} acknowledged (before: {n}), database holds {now}"
        );
        check(db.data(), now);
        if now > n + 10 {
            busy_rounds += 1;
        }
        n = now;
        // The journal is a snapshot plus whole records, each JSON, a tab
        // and its CRC-32C.
        let text = std::fs::read_to_string(&path).expect("journal");
        assert!(text.ends_with('\n'));
        assert!(text
            .lines()
            .all(|l| l.rsplit_once('\t').is_some_and(|(json, sum)| {
                serde_json::from_str::<serde_json::Value>(json).is_ok()
                    && u32::from_str_radix(sum, 16).ok()
                        == Some(fvs_cli::db::crc32c(json.as_bytes()))
            })));
    }
    assert!(
        n > ROUNDS,
        "the children committed only {n} transactions in {ROUNDS} rounds"
    );
    assert!(busy_rounds > 0);
}
