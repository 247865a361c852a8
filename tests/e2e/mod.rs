//! End-to-end harness: runs the real fvs-vswitchd, fvs-vsctl, fvs-ofctl and
//! fvs-appctl binaries in a private run/db/log directory, and builds hosts
//! in network namespaces joined to the switch by veth pairs.
//!
//! Needs root, `ip` and the binaries (`cargo build -p fvs-cli`; run-tests.sh
//! builds them). Without root a test is skipped with a message, except
//! under `CI=true`, where a missing capability fails the test.
//! E2E tests take a machine-wide lock so that they run one at a time.
#![allow(dead_code)]

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

/// Whether the machine can run end-to-end tests; `None` if it can, else why not.
fn missing_capability() -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("needs root (network namespaces, AF_PACKET, TAP)".into());
    }
    if Command::new("ip").arg("-V").output().is_err() {
        return Some("needs iproute2 (`ip`)".into());
    }
    if !Path::new("/dev/net/tun").exists() {
        return Some("needs /dev/net/tun".into());
    }
    None
}

/// Returns false (after saying why) when the test must be skipped; panics
/// instead under CI=true.
pub fn can_run(test: &str) -> bool {
    match missing_capability() {
        None => true,
        Some(why) => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "{test}: {why} (required under CI=true)"
            );
            eprintln!("skipping {test}: {why}");
            false
        }
    }
}

/// Holds the machine-wide e2e lock (heavy tests never overlap on 2 cores).
pub struct Serial(File);

pub fn serial() -> Serial {
    let f = File::create("/tmp/fvs-e2e.lock").expect("lock file");
    // SAFETY: flock on a descriptor we own; blocks until the lock is ours.
    let r = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) };
    assert_eq!(r, 0, "flock: {}", std::io::Error::last_os_error());
    Serial(f)
}

/// The directory cargo put the binaries in (next to this test's own).
fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    // target/<profile>/deps/<test> → target/<profile>
    exe.parent()
        .and_then(Path::parent)
        .expect("target dir")
        .to_path_buf()
}

fn newest_source_mtime(dir: &Path) -> SystemTime {
    let mut newest = SystemTime::UNIX_EPOCH;
    let Ok(entries) = std::fs::read_dir(dir) else {
        return newest;
    };
    for e in entries.flatten() {
        let p = e.path();
        let t = if p.is_dir() {
            newest_source_mtime(&p)
        } else if p.extension().is_some_and(|x| x == "rs") {
            e.metadata()
                .and_then(|m| m.modified())
                .unwrap_or(SystemTime::UNIX_EPOCH)
        } else {
            continue;
        };
        newest = newest.max(t);
    }
    newest
}

/// Path of an fvs binary; panics if it is missing or older than the sources.
pub fn bin(name: &str) -> PathBuf {
    let p = bin_dir().join(name);
    let built = std::fs::metadata(&p)
        .and_then(|m| m.modified())
        .unwrap_or_else(|_| {
            panic!(
                "{} is missing: run `cargo build -p fvs-cli` first (run-tests.sh does)",
                p.display()
            )
        });
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for krate in ["cli", "ofproto", "datapath", "ports"] {
        let src = newest_source_mtime(&root.join(krate).join("src"));
        assert!(
            src <= built,
            "{} is older than {krate}/src: run `cargo build -p fvs-cli` first (run-tests.sh does)",
            p.display()
        );
    }
    p
}

fn unique(prefix: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "{prefix}{}x{}",
        std::process::id() % 100_000,
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Runs a command and returns its output (never panics on failure status).
pub fn run(cmd: &mut Command) -> Output {
    cmd.stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e}"))
}

pub fn sh(args: &[&str]) -> Output {
    run(Command::new(args[0]).args(&args[1..]))
}

/// Runs a command that must succeed; returns its stdout.
pub fn must(args: &[&str]) -> String {
    let o = sh(args);
    assert!(
        o.status.success(),
        "{args:?} failed: {}{}",
        text(&o.stdout),
        text(&o.stderr)
    );
    text(&o.stdout)
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A running fvs-vswitchd with its own run, database and log directories.
pub struct Switch {
    pub dir: PathBuf,
    pub pid: Option<i32>,
}

impl Switch {
    /// Starts a daemon in a new directory (an empty database), its idle
    /// PMD threads sleeping up to 500 µs (2 cores are shared with the test).
    pub fn start() -> Switch {
        let dir = std::env::temp_dir().join(unique("fvs-e2e-"));
        std::fs::create_dir_all(&dir).expect("mkdir");
        let mut s = Switch { dir, pid: None };
        s.launch();
        s.vsctl(&[
            "--no-wait",
            "set",
            "Open_vSwitch",
            ".",
            "other_config:pmd-sleep-max=500",
        ]);
        s
    }

    /// Adds bridge `br` with `datapath_type=netdev` (and `extra` settings of the Bridge).
    pub fn add_netdev_bridge(&self, br: &str, extra: &[&str]) {
        let mut args = vec![
            "add-br",
            br,
            "--",
            "set",
            "bridge",
            br,
            "datapath_type=netdev",
        ];
        args.extend_from_slice(extra);
        self.vsctl(&args);
    }

    pub fn env(&self, cmd: &mut Command) {
        cmd.env("FVS_RUNDIR", self.dir.join("run"))
            .env("FVS_DBDIR", self.dir.join("db"))
            .env("FVS_LOGDIR", self.dir.join("log"));
    }

    pub fn pidfile(&self) -> PathBuf {
        self.dir.join("run/fvs-vswitchd.pid")
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.join("run/fvs-vswitchd.ctl")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("log/fvs-vswitchd.log")).unwrap_or_default()
    }

    /// Starts (or restarts) the daemon on this directory's database.
    pub fn launch(&mut self) {
        self.launch_with(&[]);
    }

    /// `launch` with more fvs-vswitchd options (e.g. `--user=USER`).
    pub fn launch_with(&mut self, extra: &[&str]) {
        let mut cmd = Command::new(bin("fvs-vswitchd"));
        cmd.args(["--pidfile", "--detach", "--log-file"]);
        cmd.args(extra);
        self.env(&mut cmd);
        let o = run(&mut cmd);
        assert!(
            o.status.success(),
            "fvs-vswitchd failed to start: {}{}",
            text(&o.stderr),
            self.log()
        );
        let pid = std::fs::read_to_string(self.pidfile()).expect("pidfile");
        self.pid = Some(pid.trim().parse().expect("pid"));
    }

    /// Kills the daemon with `sig` and waits until it is gone.
    pub fn kill(&mut self, sig: i32) {
        let Some(pid) = self.pid.take() else { return };
        // SAFETY: signals the daemon this harness started (its pid from its pidfile).
        unsafe { libc::kill(pid, sig) };
        let deadline = Instant::now() + Duration::from_secs(20);
        // SAFETY: kill with signal 0 only checks that the process exists.
        while unsafe { libc::kill(pid, 0) } == 0 && Instant::now() < deadline {
            // The daemon detached (its parent exited), so it is not our child:
            // it is reaped by init; poll until it has gone.
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Whether the daemon process is still alive.
    pub fn alive(&self) -> bool {
        // SAFETY: signal 0 only checks that the process exists.
        self.pid.is_some_and(|p| unsafe { libc::kill(p, 0) } == 0)
    }

    fn tool(&self, name: &str, args: &[&str]) -> Output {
        let mut cmd = Command::new(bin(name));
        cmd.args(args);
        self.env(&mut cmd);
        run(&mut cmd)
    }

    pub fn vsctl_out(&self, args: &[&str]) -> Output {
        self.tool("fvs-vsctl", args)
    }

    pub fn ofctl_out(&self, args: &[&str]) -> Output {
        self.tool("fvs-ofctl", args)
    }

    pub fn appctl_out(&self, args: &[&str]) -> Output {
        self.tool("fvs-appctl", args)
    }

    fn ok(&self, name: &str, args: &[&str]) -> String {
        let o = self.tool(name, args);
        assert!(
            o.status.success(),
            "{name} {args:?} failed ({}): {}{}",
            o.status,
            text(&o.stdout),
            text(&o.stderr)
        );
        text(&o.stdout)
    }

    pub fn vsctl(&self, args: &[&str]) -> String {
        self.ok("fvs-vsctl", args)
    }

    pub fn ofctl(&self, args: &[&str]) -> String {
        self.ok("fvs-ofctl", args)
    }

    pub fn appctl(&self, args: &[&str]) -> String {
        self.ok("fvs-appctl", args)
    }

    /// `fvs-vsctl get` of one value, trimmed and unquoted.
    pub fn get(&self, table: &str, record: &str, column: &str) -> String {
        self.vsctl(&["get", table, record, column])
            .trim()
            .trim_matches('"')
            .to_string()
    }

    /// Waits until `f` holds (panics with `what` after `secs`).
    pub fn wait_for(&self, secs: u64, what: &str, mut f: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while !f() {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}\n--- daemon log ---\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Switch {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "--- fvs-vswitchd log ({}) ---\n{}",
                self.dir.display(),
                self.log()
            );
        }
        self.kill(libc::SIGTERM);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A host: a network namespace with one veth whose peer stays in the root
/// namespace for the switch. Deleted (with its veth) when dropped.
pub struct Host {
    pub ns: String,
    /// The switch side of the veth pair.
    pub port: String,
    pub ip: String,
    pub mac: String,
}

impl Host {
    /// A namespace with address `ip` (CIDR) on `eth0`.
    pub fn new(ip_cidr: &str) -> Host {
        let ns = unique("fvsns");
        let port = unique("fvp");
        must(&["ip", "netns", "add", &ns]);
        // From here on, dropping `h` deletes what was made.
        let mut h = Host {
            ns: ns.clone(),
            port: port.clone(),
            ip: ip_cidr.split('/').next().unwrap_or("").to_string(),
            mac: String::new(),
        };
        must(&[
            "ip", "link", "add", &port, "type", "veth", "peer", "name", "eth0", "netns", &ns,
        ]);
        must(&["ip", "link", "set", &port, "up"]);
        must(&["ip", "-n", &ns, "addr", "add", ip_cidr, "dev", "eth0"]);
        must(&["ip", "-n", &ns, "link", "set", "eth0", "up"]);
        must(&["ip", "-n", &ns, "link", "set", "lo", "up"]);
        // No IPv6 chatter (router solicitations, DAD) to keep counts readable.
        let _ = sh(&[
            "ip",
            "netns",
            "exec",
            &ns,
            "sysctl",
            "-qw",
            "net.ipv6.conf.all.disable_ipv6=1",
        ]);
        h.mac = must(&[
            "ip",
            "netns",
            "exec",
            &ns,
            "cat",
            "/sys/class/net/eth0/address",
        ])
        .trim()
        .to_string();
        h
    }

    /// Runs a command inside the namespace.
    pub fn exec(&self, args: &[&str]) -> Output {
        let mut full = vec!["ip", "netns", "exec", &self.ns];
        full.extend_from_slice(args);
        sh(&full)
    }

    /// Whether `count` pings to `ip` get answers.
    pub fn ping(&self, ip: &str, count: u32) -> bool {
        let c = count.to_string();
        self.exec(&["ping", "-c", &c, "-i", "0.2", "-W", "2", "-q", ip])
            .status
            .success()
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        let _ = sh(&["ip", "netns", "del", &self.ns]);
        let _ = sh(&["ip", "link", "del", &self.port]);
    }
}

/// Sends `bytes` bytes over TCP from `client` to a server in `server` on
/// `ip:port`; returns whether the server received exactly that many bytes
/// with the expected content.
pub fn tcp_transfer(server: &Host, client: &Host, ip: &str, port: u16, bytes: usize) -> bool {
    let server_code = format!(
        "import socket,hashlib,sys\n\
         s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n\
         s.bind(('{ip}', {port})); s.listen(1); s.settimeout(60)\n\
         c,_=s.accept(); c.settimeout(60); h=hashlib.sha256(); n=0\n\
         while True:\n\
         \x20   d=c.recv(65536)\n\
         \x20   if not d: break\n\
         \x20   h.update(d); n+=len(d)\n\
         print(n, h.hexdigest())\n"
    );
    let srv = Command::new("ip")
        .args(["netns", "exec", &server.ns, "python3", "-c", &server_code])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 server");
    let client_code = format!(
        "import socket,time,hashlib\n\
         data=bytes((i*7+3)%251 for i in range({bytes}))\n\
         for _ in range(50):\n\
         \x20   try:\n\
         \x20       s=socket.create_connection(('{ip}', {port}), timeout=5); break\n\
         \x20   except OSError: time.sleep(0.1)\n\
         s.settimeout(60); s.sendall(data); s.close()\n\
         print(hashlib.sha256(data).hexdigest())\n"
    );
    let cli = client.exec(&["python3", "-c", &client_code]);
    let out = srv.wait_with_output().expect("server");
    let sent_hash = text(&cli.stdout).trim().to_string();
    let got = text(&out.stdout);
    let ok = cli.status.success() && got.trim() == format!("{bytes} {sent_hash}");
    if !ok {
        eprintln!(
            "tcp transfer failed: client {}{} server {}{}",
            text(&cli.stdout),
            text(&cli.stderr),
            got,
            text(&out.stderr)
        );
    }
    ok
}

/// Parses `n_packets=` of the dump-flows line that contains `needle`.
pub fn flow_packets(dump: &str, needle: &str) -> u64 {
    let line = dump
        .lines()
        .find(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("no flow with {needle:?} in:\n{dump}"));
    field(line, "n_packets=")
}

/// The number after `key` in `line`.
pub fn field(line: &str, key: &str) -> u64 {
    let at = line
        .find(key)
        .unwrap_or_else(|| panic!("no {key} in {line}"))
        + key.len();
    line[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .expect("number")
}

/// A bridge name unique to this test run: a bridge's internal port is a
/// kernel device of that name, which must not collide with the host's.
pub fn bridge_name() -> String {
    unique("fvbr")
}
