//! vhost-user ports with a real VM: QEMU (TCG) boots a tiny Linux guest
//! whose virtio-net-pci device has an fvs vhost-user port as its backend
//! (guest RAM in a shared memfd that fvs maps). The guest's own kernel
//! driver, virtio_net, talks to a host network namespace across an fvs
//! bridge: the vhost-user port and a `system` (AF_PACKET) port on a veth
//! into the namespace, forwarded by the bridge's NORMAL rule.
//!
//! Both modes: `dpdkvhostuser` (fvs listens, QEMU connects with
//! `reconnect=1`) and `dpdkvhostuserclient` (QEMU listens, `server=on`).
//! Two queue pairs (`mq=on`, 2 vCPUs): the guest pings from each CPU, so
//! both of its transmit queues carry frames. Then the host pings the
//! guest, a 1 MB TCP stream crosses, fvs-vswitchd is killed and started
//! again, and the guest's pings resume without touching QEMU.
//!
//! The scenario is tests/vm/vhost-guest.sh; the guest is built as for
//! tests/vfio_vm.rs (tests/qemu/mod.rs). Needs root; under CI=true a
//! missing piece fails the test instead of skipping it.
//! `FVS_VM_KEEP_LOGS=DIR` keeps each guest's console log in DIR.

mod e2e;
mod qemu;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use e2e::{serial, Host, Switch};
use qemu::{Guest, Report, TempDir};

/// Longest the guest may take to reach each step (TCG on a busy 2-core
/// machine boots in 10-40 s).
const STEP_TIMEOUT: Duration = Duration::from_secs(240);
const GUEST_MAC: &str = "52:54:00:00:77:02";
const GUEST_IP: &str = "10.77.0.2";
const HOST_IP: &str = "10.77.0.1";
const TCP_BYTES: u64 = 1024 * 1024;
/// Guest memory (MiB): all of it is one shared memfd region fvs maps.
const GUEST_MEM: u32 = 256;

/// A child process killed (by its PID) if still running when dropped.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
        }
        let _ = self.0.wait();
    }
}

/// A guest booting or running, its console going to a file.
struct Vm {
    guest: Guest,
    stdin: Option<ChildStdin>,
    console: PathBuf,
}

impl Vm {
    /// Boots the guest on `initrd` with a virtio-net-pci device backed by
    /// the vhost-user socket `sock`; `server`: QEMU listens on it.
    fn boot(initrd: &Path, sock: &Path, server: bool, console: PathBuf) -> Vm {
        let kernel = qemu::cache_dir().join("kernel/vmlinuz");
        let log = std::fs::File::create(&console).expect("console log");
        // QEMU as the server waits (before booting) for fvs to connect; as
        // the client it reconnects each second when fvs goes away.
        let chardev = if server {
            format!("socket,id=c0,path={},server=on", sock.display())
        } else {
            format!("socket,id=c0,path={},reconnect=1", sock.display())
        };
        let mut child = Command::new("qemu-system-x86_64")
            .args(["-accel", "tcg,thread=multi", "-cpu", "max", "-smp", "2"])
            .args(["-m", &GUEST_MEM.to_string()])
            .args(["-nographic", "-no-reboot", "-machine", "q35"])
            // The guest's RAM is a memfd QEMU passes to fvs with the memory table.
            .args([
                "-object",
                &format!("memory-backend-memfd,id=mem,size={GUEST_MEM}M,share=on"),
                "-numa",
                "node,memdev=mem",
            ])
            .args(["-chardev", &chardev])
            .args(["-netdev", "vhost-user,id=n0,chardev=c0,queues=2"])
            // vectors=0: QEMU 7.2 under TCG crashes when the guest enables
            // MSI-X on a vhost-user virtio-net; INTx is enough here.
            .args([
                "-device",
                &format!(
                    "virtio-net-pci,netdev=n0,mac={GUEST_MAC},mq=on,vectors=0,disable-legacy=on"
                ),
            ])
            .arg("-kernel")
            .arg(&kernel)
            .arg("-initrd")
            .arg(initrd)
            .args([
                "-append",
                &format!(
                    "console=ttyS0 quiet loglevel=4 panic=-1 fvs_ip={GUEST_IP}/24 fvs_peer={HOST_IP}"
                ),
            ])
            .stdin(Stdio::piped())
            .stdout(log.try_clone().expect("dup"))
            .stderr(log)
            .spawn()
            .expect("qemu-system-x86_64");
        let stdin = child.stdin.take();
        Vm {
            guest: Guest(child),
            stdin,
            console,
        }
    }

    fn console(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.console).unwrap_or_default()).into_owned()
    }

    fn running(&mut self) -> bool {
        matches!(self.guest.0.try_wait(), Ok(None))
    }

    /// Waits until the guest printed `@@ <key>` (false: it powered off or
    /// took longer than STEP_TIMEOUT).
    fn wait_for(&mut self, key: &str) -> bool {
        let t0 = Instant::now();
        let want = format!("@@ {key}");
        loop {
            if self.console().lines().any(|l| l.contains(&want)) {
                return true;
            }
            if !self.running() || t0.elapsed() > STEP_TIMEOUT {
                return false;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Types a line on the guest's console (its scenario reads it).
    fn say(&mut self, line: &str) {
        if let Some(s) = self.stdin.as_mut() {
            let _ = writeln!(s, "{line}");
            let _ = s.flush();
        }
    }

    /// Waits for the guest to power off; returns its console.
    fn finish(mut self) -> String {
        let t0 = Instant::now();
        while self.running() && t0.elapsed() < STEP_TIMEOUT {
            std::thread::sleep(Duration::from_millis(200));
        }
        let console = self.console();
        drop(self);
        console
    }
}

/// A TCP sink in `host`'s namespace on HOST_IP:5001: prints the byte count
/// and MD5 of the one stream it receives to `out`.
fn tcp_sink(host: &Host, out: &Path) -> Reaped {
    let code = format!(
        "import socket,hashlib\n\
         s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n\
         s.bind(('{HOST_IP}', 5001)); s.listen(1); s.settimeout(600)\n\
         c,_=s.accept(); c.settimeout(120); h=hashlib.md5(); n=0\n\
         while True:\n\
         \x20   d=c.recv(65536)\n\
         \x20   if not d: break\n\
         \x20   h.update(d); n+=len(d)\n\
         print(n, h.hexdigest(), flush=True)\n"
    );
    let f = std::fs::File::create(out).expect("sink output");
    Reaped(
        Command::new("ip")
            .args(["netns", "exec", &host.ns, "python3", "-c", &code])
            .stdin(Stdio::null())
            .stdout(f)
            .stderr(Stdio::null())
            .spawn()
            .expect("python3"),
    )
}

fn link_up(sw: &Switch, port: &str) -> bool {
    let o = sw.vsctl_out(&["get", "Interface", port, "link_state"]);
    e2e::text(&o.stdout).trim() == "up"
}

/// `rx pkts=` / `tx pkts=` of OpenFlow port `ofport` in dump-ports.
fn port_packets(sw: &Switch, br: &str, ofport: u16, dir: &str) -> u64 {
    let dump = sw.ofctl(&["dump-ports", br]);
    let mut lines = dump.lines();
    while let Some(l) = lines.next() {
        if l.trim_start().starts_with(&format!("port  {ofport}:")) {
            let l = if dir == "rx" {
                l
            } else {
                lines.next().unwrap_or_default()
            };
            return e2e::field(l, &format!("{dir} pkts="));
        }
    }
    panic!("no port {ofport} in\n{dump}");
}

/// Whether feature bit `bit` is set in the guest's `features` line (the
/// virtio device's sysfs string: bit 0 first).
fn has_bit(features: &str, bit: usize) -> bool {
    features.as_bytes().get(bit) == Some(&b'1')
}

fn vm_case(test: &str, client: bool) {
    if !e2e::can_run(test) || !qemu::can_run(test) {
        return;
    }
    let _serial = serial();
    let tmp = TempDir::new(test);
    let initrd = qemu::initramfs(&tmp.0, "vhost-guest.sh", &[]);

    let mut sw = Switch::start();
    let br = e2e::bridge_name();
    sw.add_netdev_bridge(&br, &[]);
    let host = Host::new(&format!("{HOST_IP}/24"));
    sw.vsctl(&[
        "add-port",
        &br,
        &host.port,
        "--",
        "set",
        "Interface",
        &host.port,
        "ofport_request=2",
    ]);
    let port = "vm0";
    let sock = if client {
        let sock = tmp.0.join("vm0.sock");
        let opt = format!("options:vhost-server-path={}", sock.display());
        sw.vsctl(&[
            "add-port",
            &br,
            port,
            "--",
            "set",
            "Interface",
            port,
            "type=dpdkvhostuserclient",
            &opt,
            "ofport_request=1",
        ]);
        sock
    } else {
        sw.vsctl(&[
            "add-port",
            &br,
            port,
            "--",
            "set",
            "Interface",
            port,
            "type=dpdkvhostuser",
            "ofport_request=1",
        ]);
        // <rundir>/<vhost-sock-dir>/<port>, the run directory's by default.
        sw.dir.join("run").join(port)
    };
    assert_eq!(sw.get("Interface", port, "status:status"), "disconnected");
    assert_eq!(sw.get("Interface", port, "link_state"), "down");

    let sink_out = tmp.0.join("sink.txt");
    let _sink = tcp_sink(&host, &sink_out);
    let mut vm = Vm::boot(&initrd, &sock, client, tmp.0.join("console.txt"));
    let t0 = Instant::now();
    let reached = vm.wait_for("ready");
    if !reached {
        let console = vm.finish();
        qemu::keep_log(test, &console);
        Report::parse(console).fail("the guest did not reach \"ready\"");
    }
    eprintln!(
        "{test}: guest ready after {:.1} s",
        t0.elapsed().as_secs_f64()
    );

    // fvs's view of the connection.
    let mode = if client { "client" } else { "server" };
    assert_eq!(sw.get("Interface", port, "status:mode"), mode);
    assert_eq!(
        sw.get("Interface", port, "status:socket"),
        sock.display().to_string()
    );
    assert_eq!(sw.get("Interface", port, "status:status"), "connected");
    assert_eq!(sw.get("Interface", port, "link_state"), "up");
    let features = sw.get("Interface", port, "status:features");
    let f = u64::from_str_radix(features.trim_start_matches("0x"), 16).expect("hex features");
    assert!(f & (1 << 32) != 0, "VERSION_1 negotiated: {features}");
    assert!(f & (1 << 22) != 0, "MQ negotiated: {features}");
    // Two queue pairs: four rings of QEMU's default 256 entries.
    assert_eq!(sw.get("Interface", port, "status:num_of_vrings"), "4");
    for v in 0..4 {
        assert_eq!(
            sw.get("Interface", port, &format!("status:vring_{v}_size")),
            "256"
        );
    }
    assert_eq!(sw.get("Interface", port, "error"), "[]");

    // The host namespace reaches the guest (the guest waits on its console).
    assert!(
        host.ping(GUEST_IP, 3),
        "the host namespace pings the guest\n{}",
        vm.console()
    );
    // Both directions counted on the vhost-user port and the system port.
    let rx = port_packets(&sw, &br, 1, "rx");
    let tx = port_packets(&sw, &br, 1, "tx");
    assert!(rx >= 20 && tx >= 20, "vm0 rx {rx} tx {tx}");
    assert!(port_packets(&sw, &br, 2, "tx") >= 20);
    // Interface:statistics (written every 5 s) with per-queue counters:
    // the guest sent from both of its transmit queues (fvs's rx queues).
    sw.wait_for(12, "per-queue statistics", || {
        let o = sw.vsctl_out(&["get", "Interface", port, "statistics"]);
        let s = e2e::text(&o.stdout);
        let q = |k: &str| -> u64 {
            s.split(&format!("{k}=")).nth(1).map_or(0, |v| {
                v.chars()
                    .take_while(char::is_ascii_digit)
                    .collect::<String>()
                    .parse()
                    .unwrap_or(0)
            })
        };
        q("rx_q0_good_packets") > 0 && q("rx_q1_good_packets") > 0 && q("rx_packets") >= rx
    });

    // fvs-vswitchd dies and comes back; QEMU and the guest are left alone.
    let gone = sw.pid;
    sw.kill(libc::SIGKILL);
    sw.launch();
    assert_ne!(gone, sw.pid);
    sw.wait_for(30, "the VM's port up again", || link_up(&sw, port));
    vm.say("restarted");
    let console = vm.finish();
    qemu::keep_log(test, &console);
    let r = Report::parse(console);

    r.check(
        r.get("nic").contains("driver=virtio_net"),
        "the guest's virtio_net driver has the device",
    );
    let gf = r.get("features");
    r.check(
        has_bit(gf, 32) && has_bit(gf, 15) && has_bit(gf, 22) && has_bit(gf, 28) && has_bit(gf, 29),
        "the guest negotiated VERSION_1, MRG_RXBUF, MQ, INDIRECT_DESC and EVENT_IDX",
    );
    r.check(
        r.get("queues") == "rx=2 tx=2",
        "the guest uses two queue pairs",
    );
    r.check(r.get("carrier") == "1", "the guest's link is up");
    for key in ["ping-cpu0", "ping-cpu1", "ping-big"] {
        r.check(
            r.ping_received(key) == 5,
            &format!("{key}: 5 of 5 pings to the host namespace answered"),
        );
    }
    r.check(
        r.get("neigh").contains(&host.mac),
        "ARP resolved the host's address through fvs",
    );
    let sunk = std::fs::read_to_string(&sink_out).unwrap_or_default();
    r.check(
        r.get("tcp-rc") == "0",
        "the guest's TCP stream ended cleanly",
    );
    r.check(
        sunk.trim() == format!("{TCP_BYTES} {}", r.get("tcp-md5")),
        &format!("the host received the guest's 1 MB intact (sink said {sunk:?})"),
    );
    r.check(r.get("host-said") == "restarted", "the host restarted fvs");
    r.check(
        r.ping_received("ping-after-restart") == 3,
        "pings resume after fvs-vswitchd restarts, QEMU untouched",
    );
    r.check(
        r.all("done").len() == 1,
        "the guest's scenario ran to its end",
    );
    // The new daemon counted the traffic after the restart.
    assert!(port_packets(&sw, &br, 1, "rx") >= 4);
    assert_eq!(sw.get("Interface", port, "error"), "[]");
}

#[test]
fn vm_on_dpdkvhostuser_port() {
    vm_case("vm_on_dpdkvhostuser_port", false);
}

#[test]
fn vm_on_dpdkvhostuserclient_port() {
    vm_case("vm_on_dpdkvhostuserclient_port", true);
}
