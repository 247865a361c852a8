//! Database faults with the real daemon: a corrupted or truncated database
//! file makes fvs-vswitchd refuse to start with one line naming the file,
//! the record and its byte offset; `fvs-dbtool` reports and recovers; a
//! full disk (a small tmpfs under the database) fails commits with ENOSPC
//! while the daemon keeps forwarding, and nothing that failed comes back.

mod e2e;

use std::path::{Path, PathBuf};
use std::process::Command;

use e2e::{can_run, must, run, serial, sh, text, Host, Switch};

fn db_file(sw: &Switch) -> PathBuf {
    sw.dir.join("db/conf.db")
}

/// Starts fvs-vswitchd on `sw`'s directory; returns (success, stderr).
fn try_launch(sw: &Switch) -> (bool, String) {
    let mut cmd = Command::new(e2e::bin("fvs-vswitchd"));
    cmd.args(["--pidfile", "--detach", "--log-file"]);
    sw.env(&mut cmd);
    let o = run(&mut cmd);
    (o.status.success(), text(&o.stderr))
}

fn dbtool(args: &[&str]) -> (i32, String) {
    let o = run(Command::new(e2e::bin("fvs-dbtool")).args(args));
    (
        o.status.code().unwrap_or(-1),
        text(&o.stdout) + &text(&o.stderr),
    )
}

/// A switch with a bridge and `n` external ids set (one commit each),
/// stopped; returns it and the journal's lines.
fn stopped_switch_with(n: usize) -> (Switch, String, Vec<String>) {
    let mut sw = Switch::start();
    let br = e2e::bridge_name();
    sw.add_netdev_bridge(&br, &[]);
    for i in 0..n {
        sw.vsctl(&[
            "br-set-external-id",
            &br,
            &format!("k{i}"),
            &format!("v{i}"),
        ]);
    }
    sw.kill(libc::SIGTERM);
    let lines = std::fs::read_to_string(db_file(&sw))
        .expect("journal")
        .lines()
        .map(String::from)
        .collect();
    (sw, br, lines)
}

fn offset_of(lines: &[String], record: usize) -> usize {
    lines[..record - 1].iter().map(|l| l.len() + 1).sum()
}

fn external_ids(sw: &Switch, br: &str) -> Vec<String> {
    sw.vsctl(&["br-get-external-id", br])
        .lines()
        .map(String::from)
        .collect()
}

#[test]
fn corrupted_database_is_refused_then_recovered() {
    if !can_run("corrupted_database_is_refused_then_recovered") {
        return;
    }
    let _serial = serial();
    let (mut sw, br, lines) = stopped_switch_with(4);
    let path = db_file(&sw);
    let bytes = std::fs::read(&path).unwrap();
    // Flip one byte inside the record that set k1 (a committed, acknowledged
    // transaction in the middle of the journal): "v1" becomes "w1".
    let record = lines
        .iter()
        .position(|l| l.contains("\"k1\"") && !l.contains("\"k2\""))
        .expect("the record of k1")
        + 1;
    assert!(record > 1 && record < lines.len());
    let start = offset_of(&lines, record);
    let at = start + lines[record - 1].find("\"v1\"").unwrap() + 1;
    let mut bad = bytes.clone();
    bad[at] ^= 0x01;
    std::fs::write(&path, &bad).unwrap();

    let (ok, err) = try_launch(&sw);
    assert!(!ok, "started on a corrupted database");
    let line = err.trim();
    assert_eq!(line.lines().count(), 1, "one line: {err}");
    assert!(line.contains(&path.display().to_string()), "{line}");
    assert!(
        line.contains(&format!("record {record} (byte offset {start})")),
        "{line}"
    );
    assert!(line.contains("checksum mismatch"), "{line}");
    assert!(line.contains("fvs-dbtool"), "{line}");
    assert_eq!(
        std::fs::read(&path).unwrap(),
        bad,
        "refusal changes nothing"
    );

    let p = path.display().to_string();
    let (code, out) = dbtool(&["check", &p]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("damaged:") && out.contains("checksum mismatch"),
        "{out}"
    );
    let (code, out) = dbtool(&["recover", &p]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(&format!("kept: {} records ({start} bytes)", record - 1)),
        "{out}"
    );
    let aside = out
        .lines()
        .find_map(|l| l.split(", written to ").nth(1))
        .expect("where the rest went");
    assert_eq!(std::fs::read(aside).unwrap(), &bad[start..]);
    assert_eq!(dbtool(&["check", &p]).0, 0);

    // The prefix: everything committed before k1.
    sw.launch();
    assert_eq!(external_ids(&sw, &br), ["k0=v0"]);
}

#[test]
fn truncated_database_is_refused() {
    if !can_run("truncated_database_is_refused") {
        return;
    }
    let _serial = serial();
    let (mut sw, br, lines) = stopped_switch_with(3);
    let path = db_file(&sw);
    let bytes = std::fs::read(&path).unwrap();
    let p = path.display().to_string();
    // The record that set k2 (the daemon's status records may follow it).
    let last = lines
        .iter()
        .position(|l| l.contains("\"k2\""))
        .expect("the record of k2")
        + 1;
    let last_start = offset_of(&lines, last);

    // Cut inside that (acknowledged) record, and at its start.
    for (cut, what) in [
        (last_start + lines[last - 1].len() / 2, "inside this record"),
        (last_start, "the file ends at byte"),
    ] {
        std::fs::write(&path, &bytes[..cut]).unwrap();
        let (ok, err) = try_launch(&sw);
        assert!(!ok, "started on a database cut at {cut}");
        let line = err.trim();
        assert_eq!(line.lines().count(), 1, "{err}");
        assert!(line.contains(&p), "{line}");
        assert!(
            line.contains(&format!("record {last} (byte offset {last_start})")),
            "{line}"
        );
        assert!(line.contains("truncated") && line.contains(what), "{line}");
        assert!(
            line.contains(&format!("{} bytes were acknowledged", bytes.len())),
            "{line}"
        );
    }
    // Cut to zero length.
    std::fs::write(&path, b"").unwrap();
    let (ok, err) = try_launch(&sw);
    assert!(!ok);
    assert!(
        err.contains("record 1 (byte offset 0): empty file"),
        "{err}"
    );

    // Recovery of the mid-record cut keeps the whole records before it.
    std::fs::write(&path, &bytes[..last_start + 10]).unwrap();
    let (code, out) = dbtool(&["recover", &p]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("acknowledged bytes were already missing"),
        "{out}"
    );
    sw.launch();
    let ids = external_ids(&sw, &br);
    assert_eq!(ids, ["k0=v0", "k1=v1"]);
}

/// A tmpfs mounted on `dir`, unmounted (lazily if busy) when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(dir).unwrap();
        must(&[
            "mount",
            "-t",
            "tmpfs",
            "-o",
            &format!("size={size},mode=0755"),
            "fvs-dbfull",
            &dir.display().to_string(),
        ]);
        Tmpfs(dir.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let d = self.0.display().to_string();
        if !sh(&["umount", &d]).status.success() {
            let _ = sh(&["umount", "-l", &d]);
        }
        // The switch's directory: its own guard could not remove it while
        // the mount was there (the test drops the switch first).
        if let Some(parent) = self.0.parent() {
            let _ = std::fs::remove_dir_all(parent);
        }
    }
}

/// Fills the file system under `dir` with `dir/filler` until ENOSPC.
fn fill(dir: &Path) -> PathBuf {
    use std::io::Write;
    let filler = dir.join("filler");
    let mut f = std::fs::File::create(&filler).unwrap();
    let chunk = vec![0xa5u8; 4096];
    loop {
        match f.write(&chunk) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => {
                assert_eq!(e.raw_os_error(), Some(libc::ENOSPC), "{e}");
                break;
            }
        }
    }
    filler
}

#[test]
fn full_disk_fails_commits_and_keeps_forwarding() {
    if !can_run("full_disk_fails_commits_and_keeps_forwarding") {
        return;
    }
    let _serial = serial();
    let dir = std::env::temp_dir().join(format!("fvs-e2e-dbfull-{}", std::process::id()));
    // Dropped in reverse order: the daemon stops before the unmount.
    let tmpfs = Tmpfs::mount(&dir.join("db"), "1m");
    let mut sw = Switch { dir, pid: None };
    sw.launch();
    sw.vsctl(&[
        "--no-wait",
        "set",
        "Open_vSwitch",
        ".",
        "other_config:pmd-sleep-max=500",
    ]);
    let br = e2e::bridge_name();
    let h1 = Host::new("10.79.9.1/24");
    let h2 = Host::new("10.79.9.2/24");
    sw.add_netdev_bridge(&br, &[]);
    sw.vsctl(&["add-port", &br, &h1.port]);
    sw.vsctl(&["add-port", &br, &h2.port]);
    sw.vsctl(&["br-set-external-id", &br, "before", "full"]);
    assert!(h1.ping(&h2.ip, 2), "forwarding before\n{}", sw.log());

    let filler = fill(&tmpfs.0);
    // Larger than the slack in the journal's last page, so it needs new ones.
    let big = "x".repeat(20_000);
    let o = sw.vsctl_out(&["br-set-external-id", &br, "lost", &big]);
    let err = text(&o.stderr);
    assert!(!o.status.success(), "a commit succeeded on a full disk");
    assert!(err.contains("ENOSPC"), "ENOSPC named: {err}");
    assert!(err.contains("conf.db"), "the file named: {err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    let o = sw.vsctl_out(&[
        "add-port",
        &br,
        "lostport",
        "--",
        "set",
        "interface",
        "lostport",
        "type=internal",
    ]);
    assert!(!o.status.success() && text(&o.stderr).contains("ENOSPC"));

    // The daemon lives, forwards, and its state is the file's.
    assert!(sw.alive(), "the daemon died on ENOSPC\n{}", sw.log());
    assert!(
        h1.ping(&h2.ip, 2),
        "forwarding while the disk is full\n{}",
        sw.log()
    );
    assert_eq!(external_ids(&sw, &br), ["before=full"]);
    let ports = sw.vsctl(&["list-ports", &br]);
    assert!(!ports.contains("lostport"), "{ports}");
    let journal = std::fs::read_to_string(db_file(&sw)).unwrap();
    assert!(!journal.contains("lostport") && !journal.contains("\"lost\""));
    assert!(journal.ends_with('\n'), "a partial record was left behind");

    // Space again: commits work.
    std::fs::remove_file(filler).unwrap();
    sw.vsctl(&["br-set-external-id", &br, "after", "freed"]);
    assert_eq!(external_ids(&sw, &br), ["after=freed", "before=full"]);

    // A restart loads exactly what was acknowledged.
    sw.kill(libc::SIGKILL);
    sw.launch();
    assert_eq!(external_ids(&sw, &br), ["after=freed", "before=full"]);
    assert!(!sw.vsctl(&["list-ports", &br]).contains("lostport"));
    sw.wait_for(10, "ports after restart", || {
        sw.get("Interface", &h1.port, "ofport") != "[]"
    });
    assert!(h1.ping(&h2.ip, 3), "forwarding after restart\n{}", sw.log());
    drop(sw);
    drop(tmpfs);
}
