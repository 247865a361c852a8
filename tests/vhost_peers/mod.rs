//! Real vhost-user peers for the end-to-end tests: DPDK's testpmd with
//! net_virtio_user ports (the container side), driven interactively
//! through its stdin, cleaned up (process, runtime directory, sockets) when
//! dropped, also when the test fails.
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

/// Whether testpmd and its virtio PMD are installed; `None` if they are,
/// else why not.
pub fn testpmd_missing() -> Option<String> {
    let ok = Command::new("dpdk-testpmd")
        .arg("--version")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    if !ok {
        return Some("needs dpdk-testpmd (apt-get install dpdk-dev)".into());
    }
    let virtio = std::fs::read_dir("/usr/lib/x86_64-linux-gnu/dpdk")
        .into_iter()
        .flatten()
        .flatten()
        .any(|d| d.path().join("librte_net_virtio.so").exists());
    (!virtio).then(|| "needs DPDK's virtio PMD (librte-net-virtio23)".into())
}

/// Whether the test can use testpmd: skipped with a message when it is
/// missing, except under CI=true where that fails the test.
pub fn can_use_testpmd(test: &str) -> bool {
    match testpmd_missing() {
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

/// One virtio-user port of testpmd.
pub struct VirtioUser {
    pub path: PathBuf,
    /// testpmd listens (fvs connects: `dpdkvhostuserclient`).
    pub server: bool,
}

/// A running interactive testpmd (rxonly forwarding: it counts and drops
/// what it receives; `tx_first` makes it send).
pub struct Testpmd {
    child: Option<Child>,
    stdin: Option<ChildStdin>,
    log: PathBuf,
    prefix: String,
    args: Vec<String>,
    /// The network namespace it runs in (a pod's), if not the test's.
    netns: Option<String>,
}

impl Testpmd {
    /// Starts testpmd with `ports`, without hugepages (memfd-backed
    /// memory, so CI needs none), its files under `dir`.
    pub fn start(dir: &Path, tag: &str, ports: &[VirtioUser]) -> Testpmd {
        Testpmd::start_in(dir, tag, ports, None, &[])
    }

    /// [`Testpmd::start`] inside network namespace `netns` (as a pod's
    /// application runs), port `i` with MAC address `macs[i]` if given.
    pub fn start_in(
        dir: &Path,
        tag: &str,
        ports: &[VirtioUser],
        netns: Option<&str>,
        macs: &[&str],
    ) -> Testpmd {
        let prefix = format!("fvstp{}{tag}", std::process::id() % 100_000);
        let mut args: Vec<String> = vec![
            "--no-huge".into(),
            "-m".into(),
            "128".into(),
            "--no-pci".into(),
            format!("--file-prefix={prefix}"),
            "--lcores=0@0,1@0".into(),
            "--log-level=pmd.net.virtio.*:error".into(),
        ];
        for (i, p) in ports.iter().enumerate() {
            let server = if p.server { ",server=1" } else { "" };
            let mac = macs.get(i).map(|m| format!(",mac={m}")).unwrap_or_default();
            args.push(format!(
                "--vdev=net_virtio_user{i},path={},queue_size=512{server}{mac}",
                p.path.display()
            ));
        }
        args.extend(
            [
                "--",
                "-i",
                "--nb-cores=1",
                "--rxq=1",
                "--txq=1",
                "--rxd=512",
                "--txd=512",
                "--burst=32",
                "--total-num-mbufs=8192",
                "--forward-mode=rxonly",
            ]
            .map(String::from),
        );
        let mut t = Testpmd {
            child: None,
            stdin: None,
            log: dir.join(format!("testpmd-{tag}.log")),
            prefix,
            args,
            netns: netns.map(String::from),
        };
        t.launch();
        t
    }

    fn launch(&mut self) {
        let log = std::fs::File::create(&self.log).expect("testpmd log");
        let mut cmd = match &self.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, "stdbuf"]);
                c
            }
            None => Command::new("stdbuf"),
        };
        let mut child = cmd
            .arg("-oL")
            .arg("dpdk-testpmd")
            .args(&self.args)
            .stdin(Stdio::piped())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("spawn testpmd");
        self.stdin = child.stdin.take();
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self.output().contains("testpmd> ") {
            assert!(self.alive(), "testpmd exited at start:\n{}", self.output());
            assert!(
                Instant::now() < deadline,
                "testpmd did not start:\n{}",
                self.output()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn alive(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Everything testpmd printed so far.
    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Runs a command; returns what testpmd printed in the next `wait`.
    pub fn cmd(&mut self, cmd: &str, wait: Duration) -> String {
        let before = self.output().len();
        if let Some(s) = self.stdin.as_mut() {
            let _ = writeln!(s, "{cmd}");
            let _ = s.flush();
        }
        std::thread::sleep(wait);
        self.output().get(before..).unwrap_or_default().to_string()
    }

    /// (RX-packets, TX-packets) of each port, from `show port stats all`.
    pub fn stats(&mut self) -> Vec<(u64, u64)> {
        let out = self.cmd("show port stats all", Duration::from_millis(300));
        let num = |l: &str, key: &str| -> Option<u64> {
            let at = l.find(key)? + key.len();
            l[at..].split_whitespace().next()?.parse().ok()
        };
        let mut ports = Vec::new();
        let mut rx = None;
        for l in out.lines() {
            if let Some(v) = num(l, "RX-packets:") {
                rx = Some(v);
            }
            if let (Some(r), Some(t)) = (rx, num(l, "TX-packets:")) {
                ports.push((r, t));
                rx = None;
            }
        }
        ports
    }

    /// Restarts testpmd with the same arguments (the container restarts).
    pub fn restart(&mut self) {
        self.stop();
        self.launch();
    }

    /// Kills testpmd with SIGKILL (no goodbye: its rings stop mid-burst).
    pub fn kill9(&mut self) {
        self.stdin = None;
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(format!("/var/run/dpdk/{}", self.prefix));
    }

    /// Quits (politely, then by signal); removes its runtime directory.
    pub fn stop(&mut self) {
        if let Some(mut s) = self.stdin.take() {
            let _ = writeln!(s, "stop");
            let _ = writeln!(s, "quit");
        }
        if let Some(mut c) = self.child.take() {
            let deadline = Instant::now() + Duration::from_secs(10);
            while matches!(c.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            if matches!(c.try_wait(), Ok(None)) {
                let _ = c.kill();
            }
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(format!("/var/run/dpdk/{}", self.prefix));
    }
}

impl Drop for Testpmd {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- testpmd output ---\n{}", self.output());
        }
        self.stop();
    }
}
