//! What the QEMU guest tests share (tests/vfio_vm.rs, tests/vhost_vm.rs):
//! whether the machine can boot a guest, the guest's initramfs (Debian's
//! kernel from tests/vm/prepare.sh's cache, busybox-static, a scenario
//! script from tests/vm/), the QEMU process guard and the parsing of what
//! the guest reports on its console ("@@ key: value" lines).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// Where tests/vm/prepare.sh put the guest kernel and its modules.
pub fn cache_dir() -> PathBuf {
    std::env::var_os("FVS_VM_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/fvs-vm"))
}

pub fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Why the VM tests cannot run here, if they cannot.
pub fn missing() -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("needs root".into());
    }
    let prepare = "run tests/vm/prepare.sh (run-tests.sh does)";
    let found = |cmd: &str| {
        Command::new("sh")
            .args(["-c", &format!("command -v {cmd}")])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    for cmd in ["qemu-system-x86_64", "cpio", "depmod", "strip", "ldd"] {
        if !found(cmd) {
            return Some(format!("needs {cmd}: {prepare}"));
        }
    }
    if !cache_dir().join("kernel/ok").exists() {
        return Some(format!(
            "no guest kernel in {}: {prepare}",
            cache_dir().display()
        ));
    }
    None
}

/// Whether a VM test can run: skipped with a message when it cannot,
/// except under CI=true where that fails the test.
pub fn can_run(test: &str) -> bool {
    match missing() {
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

/// A directory removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let d = std::env::temp_dir().join(format!("fvs-vm-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).expect("mkdir");
        TempDir(d)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Builds a guest initramfs in `dir` whose /init runs `scenario` (a
/// script under tests/vm/) and powers off; `bins` are copied to /bin.
pub fn initramfs(dir: &Path, scenario: &str, bins: &[PathBuf]) -> PathBuf {
    let out = dir.join("initramfs.cpio.gz");
    let o = Command::new("sh")
        .arg(repo().join("tests/vm/build-initramfs.sh"))
        .arg(&out)
        .arg(cache_dir())
        .args(bins)
        .env("FVS_VM_GUEST", repo().join("tests/vm").join(scenario))
        .stdin(Stdio::null())
        .output()
        .expect("build-initramfs.sh");
    assert!(
        o.status.success(),
        "build-initramfs.sh failed: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    out
}

/// A QEMU process, killed (by its PID) if still running when dropped.
pub struct Guest(pub Child);

impl Drop for Guest {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Keeps a guest's console log in `FVS_VM_KEEP_LOGS` (a directory), if set.
pub fn keep_log(test: &str, console: &str) {
    if let Some(keep) = std::env::var_os("FVS_VM_KEEP_LOGS") {
        let _ = std::fs::create_dir_all(&keep);
        let _ = std::fs::write(Path::new(&keep).join(format!("{test}.txt")), console);
    }
}

/// What the guest reported: the "@@ key: value" lines, in order.
pub struct Report {
    pub lines: Vec<(String, String)>,
    pub console: String,
}

impl Report {
    pub fn parse(console: String) -> Report {
        let lines = console
            .lines()
            .filter_map(|l| {
                let l = &l[l.find("@@ ")? + 3..];
                let (k, v) = l.split_once(':').unwrap_or((l, ""));
                Some((k.trim().to_string(), v.trim().to_string()))
            })
            .collect();
        Report { lines, console }
    }

    pub fn all(&self, key: &str) -> Vec<&str> {
        self.lines
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    pub fn get(&self, key: &str) -> &str {
        self.all(key)
            .first()
            .copied()
            .unwrap_or_else(|| self.fail(&format!("no \"{key}\" in the guest's report")))
    }

    pub fn fail(&self, why: &str) -> ! {
        let tail: Vec<&str> = self.console.lines().rev().take(150).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        panic!(
            "{why}\n--- guest console (last 150 lines) ---\n{}",
            tail.join("\n")
        );
    }

    pub fn check(&self, ok: bool, why: &str) {
        if !ok {
            self.fail(why);
        }
    }

    /// Replies counted by ping's summary line under `key`.
    pub fn ping_received(&self, key: &str) -> u32 {
        self.all(key)
            .iter()
            .find_map(|l| {
                let (_, rest) = l.split_once("transmitted, ")?;
                rest.split_whitespace().next()?.parse().ok()
            })
            .unwrap_or(0)
    }
}
