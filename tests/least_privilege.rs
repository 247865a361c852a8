//! Least privilege: `fvs-vswitchd --user USER:GROUP` runs every thread as
//! USER with only CAP_NET_ADMIN, CAP_NET_RAW and CAP_IPC_LOCK (effective,
//! permitted and bounding), no supplementary groups and NoNewPrivs, and
//! still forwards and still accepts changes that need those capabilities
//! (TAP and AF_PACKET ports added after the switch). Its sockets and files
//! give others no access, and no TCP socket listens unless configured.

mod e2e;

use std::collections::BTreeSet;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use e2e::{can_run, must, serial, sh, text, Host, Switch};

/// CAP_NET_ADMIN (12), CAP_NET_RAW (13), CAP_IPC_LOCK (14).
const KEPT: u64 = 0x7000;

/// A system user and group made for the test, deleted when dropped.
struct TestUser {
    name: String,
    uid: u32,
    gid: u32,
}

impl TestUser {
    fn create() -> TestUser {
        let name = format!("fvst{}", std::process::id() % 100_000);
        let _ = sh(&["userdel", &name]);
        must(&[
            "useradd",
            "--system",
            "--user-group",
            "--no-create-home",
            "--shell",
            "/usr/sbin/nologin",
            &name,
        ]);
        let u = TestUser {
            uid: must(&["id", "-u", &name]).trim().parse().unwrap(),
            gid: must(&["id", "-g", &name]).trim().parse().unwrap(),
            name,
        };
        assert_ne!(u.uid, 0);
        u
    }
}

impl Drop for TestUser {
    fn drop(&mut self) {
        let _ = sh(&["userdel", &self.name]);
        let _ = sh(&["groupdel", &self.name]);
    }
}

fn status_field(status: &str, key: &str) -> String {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .unwrap_or_else(|| panic!("no {key} in {status}"))
        .trim()
        .to_string()
}

fn hex(s: &str) -> u64 {
    u64::from_str_radix(s, 16).unwrap()
}

/// Checks every thread of `pid`: ids, groups, capabilities, NoNewPrivs.
fn check_threads(pid: i32, uid: u32, gid: u32) -> usize {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).expect("tasks");
    let mut n = 0;
    for t in tasks.flatten() {
        let st = std::fs::read_to_string(t.path().join("status")).unwrap();
        let name = status_field(&st, "Name:");
        let ids = |k| {
            status_field(&st, k)
                .split_whitespace()
                .map(|x| x.parse::<u32>().unwrap())
                .collect::<Vec<_>>()
        };
        assert_eq!(ids("Uid:"), [uid; 4], "thread {name}: {st}");
        assert_eq!(ids("Gid:"), [gid; 4], "thread {name}: {st}");
        assert_eq!(status_field(&st, "Groups:"), "", "thread {name}");
        assert_eq!(hex(&status_field(&st, "CapEff:")), KEPT, "thread {name}");
        assert_eq!(hex(&status_field(&st, "CapPrm:")), KEPT, "thread {name}");
        assert_eq!(hex(&status_field(&st, "CapBnd:")), KEPT, "thread {name}");
        assert_eq!(hex(&status_field(&st, "CapInh:")), 0, "thread {name}");
        assert_eq!(hex(&status_field(&st, "CapAmb:")), 0, "thread {name}");
        assert_eq!(status_field(&st, "NoNewPrivs:"), "1", "thread {name}");
        n += 1;
    }
    n
}

/// Local addresses of TCP sockets of `pid` in LISTEN state.
fn tcp_listeners(pid: i32) -> Vec<String> {
    let mut inodes = BTreeSet::new();
    for fd in std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .flatten()
    {
        if let Ok(link) = std::fs::read_link(fd.path()) {
            let l = link.display().to_string();
            if let Some(i) = l.strip_prefix("socket:[").and_then(|r| r.strip_suffix(']')) {
                inodes.insert(i.to_string());
            }
        }
    }
    let mut out = Vec::new();
    for table in ["tcp", "tcp6"] {
        let text = std::fs::read_to_string(format!("/proc/{pid}/net/{table}")).unwrap();
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            // local_address rem_address st ... inode (10th column)
            if f.len() > 9 && f[3] == "0A" && inodes.contains(f[9]) {
                out.push(format!("{table} {}", f[1]));
            }
        }
    }
    out
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
}

/// Nothing under `dir` grants access to others.
fn assert_private(dir: &Path, uid: Option<u32>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let md = std::fs::symlink_metadata(e.path()).unwrap();
        assert_eq!(
            md.permissions().mode() & 0o007,
            0,
            "{} is open to others ({:o})",
            e.path().display(),
            md.permissions().mode()
        );
        if let Some(uid) = uid {
            assert_eq!(md.uid(), uid, "{} owner", e.path().display());
        }
        if md.is_dir() {
            assert_private(&e.path(), uid);
        }
    }
}

#[test]
fn user_option_drops_privileges_and_keeps_working() {
    if !can_run("user_option_drops_privileges_and_keeps_working") {
        return;
    }
    let _serial = serial();
    let user = TestUser::create();
    let dir = std::env::temp_dir().join(format!("fvs-e2e-user-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut sw = Switch { dir, pid: None };
    sw.launch_with(&[&format!("--user={0}:{0}", user.name)]);
    let pid = sw.pid.unwrap();
    check_threads(pid, user.uid, user.gid);
    assert!(sw.log().contains(&format!("running as user {}", user.name)));

    // Changes after the switch, needing CAP_NET_ADMIN (the bridge's TAP
    // internal port, an extra internal port) and CAP_NET_RAW (AF_PACKET).
    sw.vsctl(&[
        "--no-wait",
        "set",
        "Open_vSwitch",
        ".",
        "other_config:pmd-sleep-max=500",
    ]);
    let br = e2e::bridge_name();
    let h1 = Host::new("10.79.8.1/24");
    let h2 = Host::new("10.79.8.2/24");
    sw.add_netdev_bridge(&br, &[]);
    sw.vsctl(&["add-port", &br, &h1.port]);
    sw.vsctl(&["add-port", &br, &h2.port]);
    let int = format!("{br}i");
    sw.vsctl(&[
        "add-port",
        &br,
        &int,
        "--",
        "set",
        "interface",
        &int,
        "type=internal",
    ]);
    for port in [&br, &int, &h1.port, &h2.port] {
        assert_eq!(
            sw.get("Interface", port, "error"),
            "[]",
            "{port}\n{}",
            sw.log()
        );
    }
    assert!(
        sh(&["ip", "link", "show", &int]).status.success(),
        "TAP {int} made"
    );
    assert!(
        h1.ping(&h2.ip, 3),
        "forwarding as {}\n{}",
        user.name,
        sw.log()
    );

    // Every thread, PMDs and port threads included, has the reduced set.
    let n = check_threads(pid, user.uid, user.gid);
    assert!(n >= 4, "only {n} threads checked");

    // Sockets and files: the control and management sockets 0750, files
    // 0640, directories 0750, all owned by the user, nothing for others.
    let run = sw.dir.join("run");
    assert_eq!(mode(&run.join("fvs-vswitchd.ctl")), 0o750);
    assert_eq!(mode(&run.join(format!("{br}.mgmt"))), 0o750);
    assert_eq!(mode(&run), 0o750);
    assert_eq!(mode(&sw.dir.join("db/conf.db")), 0o640);
    assert_private(&sw.dir, Some(user.uid));

    // No TCP listener by default; one when configured (so the check sees
    // one when there is one), gone when removed.
    assert_eq!(tcp_listeners(pid), Vec::<String>::new());
    let port = 20000 + std::process::id() % 20000;
    sw.vsctl(&["set-controller", &br, &format!("ptcp:{port}:127.0.0.1")]);
    sw.wait_for(10, "the ptcp listener", || !tcp_listeners(pid).is_empty());
    let want = format!("{:04X}", port);
    assert!(
        tcp_listeners(pid).iter().any(|l| l.ends_with(&want)),
        "{:?}",
        tcp_listeners(pid)
    );
    sw.vsctl(&["del-controller", &br]);
    sw.wait_for(10, "the listener to close", || {
        tcp_listeners(pid).is_empty()
    });

    // A restart as the same user reuses what the first run made.
    sw.kill(libc::SIGTERM);
    sw.launch_with(&[&format!("--user={}", user.name)]);
    check_threads(sw.pid.unwrap(), user.uid, user.gid);
    sw.wait_for(10, "ports after restart", || {
        sw.get("Interface", &h1.port, "ofport") != "[]"
    });
    assert!(h1.ping(&h2.ip, 3), "forwarding after restart\n{}", sw.log());
    drop(sw);
}

#[test]
fn default_setup_listens_on_no_tcp_port_and_keeps_files_private() {
    if !can_run("default_setup_listens_on_no_tcp_port_and_keeps_files_private") {
        return;
    }
    let _serial = serial();
    let sw = Switch::start();
    let br = e2e::bridge_name();
    sw.add_netdev_bridge(&br, &[]);
    let pid = sw.pid.unwrap();
    assert_eq!(tcp_listeners(pid), Vec::<String>::new());
    assert_eq!(mode(&sw.dir.join("run/fvs-vswitchd.ctl")), 0o750);
    assert_private(&sw.dir.join("run"), None);
    assert_private(&sw.dir.join("db"), None);
}

#[test]
fn bad_user_options_are_refused() {
    if !can_run("bad_user_options_are_refused") {
        return;
    }
    let dir = std::env::temp_dir().join(format!("fvs-e2e-baduser-{}", std::process::id()));
    for (arg, want) in [
        ("--user=fvs-no-such-user", "user fvs-no-such-user not found"),
        (
            "--user=root:fvs-no-such-group",
            "group fvs-no-such-group not found",
        ),
        ("--user=nobody:root", "user nobody is not in group root"),
    ] {
        let o = e2e::run(
            std::process::Command::new(e2e::bin("fvs-vswitchd"))
                .arg(arg)
                .env("FVS_RUNDIR", dir.join("run"))
                .env("FVS_DBDIR", dir.join("db"))
                .env("FVS_LOGDIR", dir.join("log")),
        );
        let err = text(&o.stderr);
        assert!(!o.status.success(), "{arg} accepted");
        assert!(err.contains(want), "{arg}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
