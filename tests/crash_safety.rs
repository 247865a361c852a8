//! Crash safety: fvs-vswitchd is killed with SIGKILL in the middle of a
//! stream of fvs-vsctl transactions. After a restart the database holds
//! exactly a prefix of them (every acknowledged one included), and the
//! bridge and its ports are back and forwarding.

mod e2e;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use e2e::{can_run, serial, Host, Switch};

const TRANSACTIONS: usize = 1000;

#[test]
fn sigkill_during_transactions_keeps_a_prefix() {
    if !can_run("sigkill_during_transactions_keeps_a_prefix") {
        return;
    }
    let _serial = serial();
    let mut sw = Switch::start();
    let br = e2e::bridge_name();
    let h1 = Host::new("10.79.0.1/24");
    let h2 = Host::new("10.79.0.2/24");
    sw.add_netdev_bridge(&br, &[]);
    sw.vsctl(&["add-port", &br, &h1.port]);
    sw.vsctl(&["add-port", &br, &h2.port]);
    assert!(
        h1.ping(&h2.ip, 2),
        "forwarding before the crash\n{}",
        sw.log()
    );
    let ofport1 = sw.get("Interface", &h1.port, "ofport");

    // Transactions one after the other, as fast as fvs-vsctl goes; the
    // main thread kills the daemon partway.
    let acked = Arc::new(AtomicUsize::new(0));
    let dir = sw.dir.clone();
    let worker = {
        let acked = acked.clone();
        let br = br.clone();
        std::thread::spawn(move || {
            let mut attempted = 0;
            for i in 0..TRANSACTIONS {
                attempted = i + 1;
                let o = std::process::Command::new(e2e::bin("fvs-vsctl"))
                    .env("FVS_RUNDIR", dir.join("run"))
                    .args([
                        "--no-wait",
                        "br-set-external-id",
                        &br,
                        &format!("k{i:04}"),
                        &format!("v{i}"),
                    ])
                    .output()
                    .expect("fvs-vsctl");
                if !o.status.success() {
                    break;
                }
                acked.store(i + 1, Ordering::SeqCst);
            }
            attempted
        })
    };
    while acked.load(Ordering::SeqCst) < 150 {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    sw.kill(libc::SIGKILL);
    let attempted = worker.join().expect("worker");
    let acked = acked.load(Ordering::SeqCst);
    assert!(
        acked < TRANSACTIONS,
        "the daemon died after every transaction: nothing was tested"
    );

    sw.launch();
    let ids = sw.vsctl(&["br-get-external-id", &br]);
    let keys: Vec<usize> = ids
        .lines()
        .filter_map(|l| l.strip_prefix('k'))
        .map(|l| {
            l.split('=')
                .next()
                .unwrap_or("")
                .parse()
                .expect("key number")
        })
        .collect();
    let n = keys.len();
    assert_eq!(keys, (0..n).collect::<Vec<_>>(), "not a prefix: {ids}");
    assert!(
        n >= acked,
        "acknowledged {acked} transactions but only {n} survived"
    );
    assert!(n <= attempted, "{n} survived of {attempted} attempted");
    for (i, line) in ids.lines().enumerate() {
        assert_eq!(line, format!("k{i:04}=v{i}"));
    }

    // Bridges, ports and forwarding are back.
    sw.wait_for(10, "ports after restart", || {
        sw.get("Interface", &h1.port, "ofport") == ofport1
    });
    assert!(h1.ping(&h2.ip, 3), "forwarding after restart\n{}", sw.log());
}
