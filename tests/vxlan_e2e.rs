//! VXLAN end to end, on the real binaries, with network namespaces as hosts
//! joined by veths (the underlay). Host A runs fvs-vswitchd in its own
//! namespace: an underlay bridge `br-phy` (internal port holding the VTEP
//! address, uplink `ul0`) and an overlay bridge `br-int` (a container
//! namespace's veth `c0`, the VXLAN port). The peer host B runs, in turn,
//! the Linux kernel's VXLAN device, Open vSwitch (a private ovsdb-server and
//! ovs-vswitchd, userspace datapath) and another fvs-vswitchd; ping and a
//! TCP transfer cross the overlay and tshark on the underlay decodes VXLAN
//! with the configured VNI. Then: a flow-based port reaching two hosts with
//! different VNIs, three fvs hosts finding each other through etcd by
//! system-id, bad input (an unreachable next hop, broken VXLAN frames), and
//! the underlay removed mid-traffic.
//!
//! Needs root, iproute2, tshark, Open vSwitch and etcd (run-tests.sh installs
//! them); under CI=true a missing one fails the test.

mod e2e;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use e2e::{bin, can_run, must, run, serial, sh, tcp_transfer, text, Host, Switch};

const VNI: &str = "5001";
/// Inner MTU: 1500 minus the 50 bytes of outer headers (and some spare).
const INNER_MTU: &str = "1400";

fn uniq(prefix: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "{prefix}{}x{}",
        std::process::id() % 10_000,
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Fails (CI=true) or skips when a tool this test needs is missing.
fn need(test: &str, tools: &[&str]) -> bool {
    if !can_run(test) {
        return false;
    }
    for t in tools {
        let found = sh(&["sh", "-c", &format!("command -v {t}")])
            .status
            .success();
        if !found {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "{test}: needs {t} (required under CI=true)"
            );
            eprintln!("skipping {test}: needs {t}");
            return false;
        }
    }
    true
}

/// A bare namespace (a host or a container), deleted when dropped. The
/// harness' `Host` does the deleting; its `port` names no root device.
fn netns(ip: &str) -> Host {
    let ns = uniq("vxe");
    must(&["ip", "netns", "add", &ns]);
    let h = Host {
        ns: ns.clone(),
        port: ns.clone(),
        ip: ip.into(),
        mac: String::new(),
    };
    must(&["ip", "-n", &ns, "link", "set", "lo", "up"]);
    let _ = sh(&[
        "ip",
        "netns",
        "exec",
        &ns,
        "sysctl",
        "-qw",
        "net.ipv6.conf.all.disable_ipv6=1",
    ]);
    h
}

fn ns_must(ns: &str, args: &[&str]) -> String {
    let mut full = vec!["ip", "netns", "exec", ns];
    full.extend_from_slice(args);
    must(&full)
}

/// A veth between two namespaces, both ends up.
fn veth(a: &str, a_if: &str, b: &str, b_if: &str) {
    must(&[
        "ip", "-n", a, "link", "add", a_if, "type", "veth", "peer", "name", b_if, "netns", b,
    ]);
    must(&["ip", "-n", a, "link", "set", a_if, "up"]);
    must(&["ip", "-n", b, "link", "set", b_if, "up"]);
}

/// A container namespace with `ip` (CIDR) on `eth0`, its peer `c0` in `host`.
fn container(host: &str, ip_cidr: &str) -> Host {
    let c = netns(ip_cidr.split('/').next().unwrap_or(""));
    veth(host, "c0", &c.ns, "eth0");
    must(&["ip", "-n", &c.ns, "addr", "add", ip_cidr, "dev", "eth0"]);
    must(&["ip", "-n", &c.ns, "link", "set", "eth0", "mtu", INNER_MTU]);
    must(&["ip", "-n", host, "link", "set", "c0", "mtu", INNER_MTU]);
    c
}

/// fvs-vswitchd started inside namespace `ns`, with its own directories.
fn fvs_in(ns: &str) -> Switch {
    let dir = std::env::temp_dir().join(uniq("fvs-vxe-"));
    std::fs::create_dir_all(&dir).expect("mkdir");
    let mut sw = Switch { dir, pid: None };
    launch_in(&mut sw, ns);
    sw.vsctl(&[
        "--no-wait",
        "set",
        "Open_vSwitch",
        ".",
        "other_config:pmd-sleep-max=500",
    ]);
    sw
}

fn launch_in(sw: &mut Switch, ns: &str) {
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", ns])
        .arg(bin("fvs-vswitchd"))
        .args(["--pidfile", "--detach", "--log-file"])
        .env("FVS_RUNDIR", sw.dir.join("run"))
        .env("FVS_DBDIR", sw.dir.join("db"))
        .env("FVS_LOGDIR", sw.dir.join("log"));
    let o = run(&mut cmd);
    assert!(
        o.status.success(),
        "fvs-vswitchd failed to start in {ns}: {}{}",
        text(&o.stderr),
        sw.log()
    );
    let pid = std::fs::read_to_string(sw.pidfile()).expect("pidfile");
    sw.pid = Some(pid.trim().parse().expect("pid"));
}

/// The underlay bridge of a switch in namespace `ns`: `br-phy` with uplink
/// `ul0`, its internal port holding `vtep` (CIDR); and the overlay bridge
/// `br-int` with the container port `c0`.
fn fvs_bridges(sw: &Switch, ns: &str, vtep: &str) {
    sw.add_netdev_bridge("br-phy", &[]);
    sw.vsctl(&["add-port", "br-phy", "ul0"]);
    must(&["ip", "-n", ns, "addr", "add", vtep, "dev", "br-phy"]);
    must(&["ip", "-n", ns, "link", "set", "br-phy", "up"]);
    sw.add_netdev_bridge("br-int", &[]);
    sw.vsctl(&["add-port", "br-int", "c0"]);
}

/// tshark on `ns`'s `dev` for `secs` seconds: VXLAN frames as
/// `vni src dst protocols` lines. Returns once it captures.
struct Capture(Option<Child>);

impl Capture {
    fn start(ns: &str, dev: &str, secs: u32) -> Capture {
        let dur = format!("duration:{secs}");
        let child = Command::new("ip")
            .args(["netns", "exec", ns, "tshark", "-i", dev, "-a", &dur])
            .args(["-f", "udp port 4789", "-l", "-n", "-T", "fields"])
            .args(["-e", "vxlan.vni", "-e", "ip.src", "-e", "ip.dst"])
            .args(["-e", "frame.protocols", "-e", "ipv6.src", "-e", "ipv6.dst"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("tshark");
        let mut c = Capture(Some(child));
        // tshark says "Capturing on" once its socket is open.
        let err = c.0.as_mut().and_then(|c| c.stderr.take()).expect("stderr");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            let mut all = String::new();
            for line in std::io::BufReader::new(err).lines().map_while(Result::ok) {
                if line.contains("Capturing on") {
                    let _ = tx.send(());
                }
                all += &line;
            }
            drop(all);
        });
        let started = rx.recv_timeout(Duration::from_secs(20)).is_ok();
        assert!(started, "tshark did not start capturing on {ns}/{dev}");
        c
    }

    /// Waits for the end of the capture; its lines.
    fn lines(mut self) -> Vec<String> {
        let child = self.0.take().expect("child");
        let out = child.wait_with_output().expect("tshark output");
        text(&out.stdout).lines().map(str::to_string).collect()
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Asserts that the capture holds ICMP inside VXLAN with VNI `vni` between
/// `a` and `b`, both ways.
fn assert_vxlan(lines: &[String], vni: &str, a: &str, b: &str) {
    let has = |src: &str, dst: &str| {
        lines.iter().any(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            // The outer addresses: IPv6's if any, else IPv4's (listed first).
            let outer = |v6: &str, v4: &'_ str| if v6.is_empty() { v4 } else { v6 }.to_string();
            f.len() == 6
                && f[0] == vni
                && outer(f[4], f[1]).split(',').next() == Some(src)
                && outer(f[5], f[2]).split(',').next() == Some(dst)
                && f[3].contains("udp:vxlan:eth:ethertype:ip:icmp")
        })
    };
    assert!(
        has(a, b) && has(b, a),
        "no VXLAN (VNI {vni}) ICMP both ways between {a} and {b} in:\n{}",
        lines.join("\n")
    );
}

/// Ping (through a capture on `cap_ns`'s `ul0`) and a TCP transfer between
/// containers `ca` and `cb` across the overlay.
fn prove_overlay(ca: &Host, cb: &Host, cap_ns: &str, vni: &str) {
    prove_overlay_between(ca, cb, cap_ns, vni, ["172.31.0.1", "172.31.0.2"]);
}

/// [`prove_overlay`] with the VTEP addresses of A and B.
fn prove_overlay_between(ca: &Host, cb: &Host, cap_ns: &str, vni: &str, vteps: [&str; 2]) {
    // The first packets wait for ARP (inner and outer); then steady.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !ca.ping(&cb.ip, 1) {
        assert!(Instant::now() < deadline, "no ping {} -> {}", ca.ip, cb.ip);
    }
    let cap = Capture::start(cap_ns, "ul0", 4);
    assert!(ca.ping(&cb.ip, 5), "ping {} -> {}", ca.ip, cb.ip);
    assert!(cb.ping(&ca.ip, 3), "ping {} -> {}", cb.ip, ca.ip);
    assert_vxlan(&cap.lines(), vni, vteps[0], vteps[1]);
    assert!(
        tcp_transfer(cb, ca, &cb.ip, 5201, 2 << 20),
        "TCP {} -> {}",
        ca.ip,
        cb.ip
    );
    assert!(
        tcp_transfer(ca, cb, &ca.ip, 5202, 1 << 20),
        "TCP {} -> {}",
        cb.ip,
        ca.ip
    );
}

/// Host A: fvs in its own namespace, VTEP 172.31.0.1, container 10.9.0.1,
/// a VXLAN port `vx0` to `remote` with `key`. The uplink `ul0` goes to
/// `peer_ns` as `peer_if`.
struct FvsHostA {
    sw: Switch,
    c: Host,
    h: Host,
}

fn fvs_host_a(peer_ns: &str, peer_if: &str, vx_opts: &[&str]) -> FvsHostA {
    let h = netns("172.31.0.1");
    veth(&h.ns, "ul0", peer_ns, peer_if);
    let sw = fvs_in(&h.ns);
    let a = FvsHostA {
        c: container(&h.ns, "10.9.0.1/24"),
        sw,
        h,
    };
    fvs_bridges(&a.sw, &a.h.ns, "172.31.0.1/24");
    let mut args = vec!["add-port", "br-int", "vx0", "--", "set", "Interface", "vx0"];
    args.push("type=vxlan");
    args.extend_from_slice(vx_opts);
    a.sw.vsctl(&args);
    a
}

#[test]
fn interop_with_linux_kernel_vxlan() {
    if !need("interop_with_linux_kernel_vxlan", &["tshark"]) {
        return;
    }
    let _l = serial();
    // Host B: the kernel's VXLAN device bridged with a container's veth.
    let hb = netns("172.31.0.2");
    let a = fvs_host_a(
        &hb.ns,
        "ul0",
        &[
            "options:remote_ip=172.31.0.2",
            &format!("options:key={VNI}"),
        ],
    );
    ns_must(
        &hb.ns,
        &["ip", "addr", "add", "172.31.0.2/24", "dev", "ul0"],
    );
    ns_must(
        &hb.ns,
        &[
            "ip",
            "link",
            "add",
            "vx0",
            "type",
            "vxlan",
            "id",
            VNI,
            "remote",
            "172.31.0.1",
            "local",
            "172.31.0.2",
            "dstport",
            "4789",
            "dev",
            "ul0",
        ],
    );
    ns_must(&hb.ns, &["ip", "link", "add", "br0", "type", "bridge"]);
    let cb = container(&hb.ns, "10.9.0.2/24");
    for (dev, master) in [("vx0", "br0"), ("c0", "br0")] {
        ns_must(&hb.ns, &["ip", "link", "set", dev, "master", master]);
    }
    ns_must(&hb.ns, &["ip", "link", "set", "vx0", "mtu", INNER_MTU]);
    for dev in ["vx0", "br0"] {
        ns_must(&hb.ns, &["ip", "link", "set", dev, "up"]);
    }
    prove_overlay(&a.c, &cb, &hb.ns, VNI);
    // The kernel's VXLAN TSO super-frames came over the veth whole and
    // were segmented, none refused.
    let stats = a.sw.get("Interface", "ul0", "statistics");
    assert!(stats.contains("rx_errors=0"), "{stats}");
    // OVS's tunnel commands see what the traffic taught.
    let neigh = a.sw.appctl(&["tnl/neigh/show"]);
    assert!(
        neigh.contains("172.31.0.2") && neigh.contains("br-phy"),
        "{neigh}"
    );
    let ports = a.sw.appctl(&["tnl/ports/show"]);
    assert!(ports.contains("vxlan_sys_4789"), "{ports}");
    let route = a.sw.appctl(&["ovs/route/lookup", "172.31.0.2"]);
    assert!(route.contains("dev br-phy"), "{route}");
    let t = a.sw.appctl(&[
        "ofproto/trace",
        "br-int",
        "in_port=c0,icmp,nw_src=10.9.0.1,nw_dst=10.9.0.2,dl_dst=ff:ff:ff:ff:ff:ff",
    ]);
    assert!(t.contains("tnl_push(tnl_port("), "{t}");
    assert!(t.contains(&format!("vni=0x{:x}", 5001)), "{t}");
}

/// A private Open vSwitch (ovsdb-server + ovs-vswitchd) in a namespace,
/// stopped (by pid) when dropped.
struct Ovs {
    dir: PathBuf,
    ns: String,
}

impl Ovs {
    fn start(ns: &str) -> Ovs {
        let dir = std::env::temp_dir().join(uniq("ovs-vxe-"));
        std::fs::create_dir_all(&dir).expect("mkdir");
        let o = Ovs { dir, ns: ns.into() };
        let db = o.dir.join("conf.db");
        must(&[
            "ovsdb-tool",
            "create",
            db.to_str().unwrap_or(""),
            "/usr/share/openvswitch/vswitch.ovsschema",
        ]);
        let p = |f: &str| o.dir.join(f).to_string_lossy().into_owned();
        o.run(&[
            "ovsdb-server",
            &p("conf.db"),
            &format!("--remote=punix:{}", p("db.sock")),
            &format!("--pidfile={}", p("ovsdb-server.pid")),
            &format!("--log-file={}", p("ovsdb-server.log")),
            &format!("--unixctl={}", p("ovsdb-server.ctl")),
            "--detach",
        ]);
        o.vsctl(&["--no-wait", "init"]);
        o.run(&[
            "ovs-vswitchd",
            &format!("unix:{}", p("db.sock")),
            &format!("--pidfile={}", p("ovs-vswitchd.pid")),
            &format!("--log-file={}", p("ovs-vswitchd.log")),
            &format!("--unixctl={}", p("ovs-vswitchd.ctl")),
            "--detach",
        ]);
        o
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.ns])
            .args(args)
            .env("OVS_RUNDIR", &self.dir)
            .env("OVS_DBDIR", &self.dir)
            .env("OVS_LOGDIR", &self.dir)
            .env("OVS_SYSCONFDIR", &self.dir);
        c
    }

    fn run(&self, args: &[&str]) -> String {
        let o = run(&mut self.cmd(args));
        assert!(
            o.status.success(),
            "{args:?}: {}{}\n{}",
            text(&o.stdout),
            text(&o.stderr),
            self.log()
        );
        text(&o.stdout)
    }

    fn vsctl(&self, args: &[&str]) -> String {
        let db = format!("--db=unix:{}", self.dir.join("db.sock").display());
        let mut full = vec!["ovs-vsctl", &db, "--timeout=20"];
        full.extend_from_slice(args);
        self.run(&full)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("ovs-vswitchd.log")).unwrap_or_default()
    }
}

fn kill_pidfile(p: &Path) {
    let Ok(s) = std::fs::read_to_string(p) else {
        return;
    };
    let Ok(pid) = s.trim().parse::<i32>() else {
        return;
    };
    // SAFETY: signals a daemon this test started (its pid from its pidfile).
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(10);
    // SAFETY: signal 0 only checks that the process exists.
    while unsafe { libc::kill(pid, 0) } == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl Drop for Ovs {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- ovs-vswitchd log ---\n{}", self.log());
        }
        kill_pidfile(&self.dir.join("ovs-vswitchd.pid"));
        kill_pidfile(&self.dir.join("ovsdb-server.pid"));
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn interop_with_open_vswitch() {
    if !need(
        "interop_with_open_vswitch",
        &[
            "tshark",
            "ethtool",
            "ovs-vswitchd",
            "ovsdb-server",
            "ovsdb-tool",
        ],
    ) {
        return;
    }
    let _l = serial();
    let hb = netns("172.31.0.2");
    let a = fvs_host_a(
        &hb.ns,
        "ul0",
        &[
            "options:remote_ip=172.31.0.2",
            &format!("options:key={VNI}"),
        ],
    );
    let cb = container(&hb.ns, "10.9.0.2/24");
    // OVS's userspace datapath reads its AF_PACKET ports without the vnet
    // header, so it would forward the veth's partial checksums unfinished:
    // as OVS's documentation advises, no checksum offload on its side.
    ns_must(&cb.ns, &["ethtool", "-K", "eth0", "tx", "off"]);
    let ovs = Ovs::start(&hb.ns);
    ovs.vsctl(&[
        "add-br",
        "br-phy",
        "--",
        "set",
        "bridge",
        "br-phy",
        "datapath_type=netdev",
    ]);
    ovs.vsctl(&["add-port", "br-phy", "ul0"]);
    ns_must(
        &hb.ns,
        &["ip", "addr", "add", "172.31.0.2/24", "dev", "br-phy"],
    );
    ns_must(&hb.ns, &["ip", "link", "set", "br-phy", "up"]);
    ovs.vsctl(&[
        "add-br",
        "br-int",
        "--",
        "set",
        "bridge",
        "br-int",
        "datapath_type=netdev",
    ]);
    ovs.vsctl(&["add-port", "br-int", "c0"]);
    ovs.vsctl(&[
        "add-port",
        "br-int",
        "vx0",
        "--",
        "set",
        "Interface",
        "vx0",
        "type=vxlan",
        "options:remote_ip=172.31.0.1",
        &format!("options:key={VNI}"),
    ]);
    prove_overlay(&a.c, &cb, &hb.ns, VNI);
    drop(ovs);
}

#[test]
fn interop_with_another_fvs() {
    if !need("interop_with_another_fvs", &["tshark"]) {
        return;
    }
    let _l = serial();
    let hb = netns("172.31.0.2");
    let a = fvs_host_a(
        &hb.ns,
        "ul0",
        &[
            "options:remote_ip=172.31.0.2",
            &format!("options:key={VNI}"),
        ],
    );
    let cb = container(&hb.ns, "10.9.0.2/24");
    let b = fvs_in(&hb.ns);
    fvs_bridges(&b, &hb.ns, "172.31.0.2/24");
    b.vsctl(&[
        "add-port",
        "br-int",
        "vx0",
        "--",
        "set",
        "Interface",
        "vx0",
        "type=vxlan",
        "options:remote_ip=172.31.0.1",
        &format!("options:key={VNI}"),
    ]);
    prove_overlay(&a.c, &cb, &hb.ns, VNI);
    // B decapsulated: its trace of what arrives shows tnl_pop.
    let mac = ns_must(&hb.ns, &["cat", "/sys/class/net/br-phy/address"]);
    let t = b.appctl(&[
        "ofproto/trace",
        "br-phy",
        &format!(
            "in_port=ul0,dl_dst={},udp,nw_src=172.31.0.1,nw_dst=172.31.0.2,udp_dst=4789",
            mac.trim()
        ),
    ]);
    assert!(t.contains("tnl_pop("), "{t}");
    drop(b);
}

/// An underlay switch: a namespace with a Linux bridge `sw` that host
/// uplinks join (`attach`).
fn underlay() -> Host {
    let u = netns("");
    must(&["ip", "-n", &u.ns, "link", "add", "sw", "type", "bridge"]);
    must(&["ip", "-n", &u.ns, "link", "set", "sw", "up"]);
    u
}

fn attach(u: &Host, port: &str) {
    must(&["ip", "-n", &u.ns, "link", "set", port, "master", "sw"]);
}

/// A host whose kernel VXLAN device `vx0` (VNI `vni`, to 172.31.0.1)
/// holds the overlay address `inner` itself; its uplink joins `u` as `port`.
fn kernel_vtep(u: &Host, port: &str, vtep: &str, vni: &str, inner: &str) -> Host {
    let h = netns(inner);
    veth(&h.ns, "ul0", &u.ns, port);
    attach(u, port);
    ns_must(
        &h.ns,
        &["ip", "addr", "add", &format!("{vtep}/24"), "dev", "ul0"],
    );
    ns_must(
        &h.ns,
        &[
            "ip",
            "link",
            "add",
            "vx0",
            "type",
            "vxlan",
            "id",
            vni,
            "remote",
            "172.31.0.1",
            "local",
            vtep,
            "dstport",
            "4789",
            "dev",
            "ul0",
        ],
    );
    ns_must(&h.ns, &["ip", "link", "set", "vx0", "mtu", INNER_MTU]);
    ns_must(
        &h.ns,
        &["ip", "addr", "add", &format!("{inner}/24"), "dev", "vx0"],
    );
    ns_must(&h.ns, &["ip", "link", "set", "vx0", "up"]);
    h
}

#[test]
fn flow_based_tunnel_reaches_two_hosts_by_set_field() {
    if !need(
        "flow_based_tunnel_reaches_two_hosts_by_set_field",
        &["tshark"],
    ) {
        return;
    }
    let _l = serial();
    let u = underlay();
    let a = fvs_host_a(&u.ns, "ua", &["options:remote_ip=flow", "options:key=flow"]);
    attach(&u, "ua");
    let b = kernel_vtep(&u, "ub", "172.31.0.2", "100", "10.9.0.2");
    let c = kernel_vtep(&u, "uc", "172.31.0.3", "200", "10.9.0.3");
    a.sw.ofctl(&["del-flows", "br-int"]);
    for (inner, vtep, vni) in [
        ("10.9.0.2", "172.31.0.2", 100),
        ("10.9.0.3", "172.31.0.3", 200),
    ] {
        let to = format!("set_field:{vtep}->tun_dst,set_field:{vni}->tun_id,output:vx0");
        a.sw.ofctl(&[
            "add-flow",
            "br-int",
            &format!("in_port=c0,arp,arp_tpa={inner},actions={to}"),
        ]);
        a.sw.ofctl(&[
            "add-flow",
            "br-int",
            &format!("in_port=c0,ip,nw_dst={inner},actions={to}"),
        ]);
        a.sw.ofctl(&[
            "add-flow",
            "br-int",
            &format!("in_port=vx0,tun_id={vni},tun_src={vtep},actions=output:c0"),
        ]);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while !(a.c.ping("10.9.0.2", 1) && a.c.ping("10.9.0.3", 1)) {
        assert!(Instant::now() < deadline, "no ping from A to B and C");
    }
    let cap = Capture::start(&u.ns, "ua", 4);
    assert!(a.c.ping("10.9.0.2", 3), "ping B");
    assert!(a.c.ping("10.9.0.3", 3), "ping C");
    assert!(
        b.ping("10.9.0.1", 2) && c.ping("10.9.0.1", 2),
        "ping A from B and C"
    );
    let lines = cap.lines();
    assert_vxlan(&lines, "100", "172.31.0.1", "172.31.0.2");
    assert_vxlan(&lines, "200", "172.31.0.1", "172.31.0.3");
    // Never the other host's VNI.
    for l in &lines {
        let f: Vec<&str> = l.split('\t').collect();
        let bad = (f.first() == Some(&"100") && l.contains("172.31.0.3"))
            || (f.first() == Some(&"200") && l.contains("172.31.0.2"));
        assert!(!bad, "VNI crossed hosts: {l}");
    }
    // Each host's return flow (by tun_id and tun_src) saw its packets.
    let dump = a.sw.ofctl(&["dump-flows", "br-int"]);
    assert!(e2e::flow_packets(&dump, "tun_id=0x64") > 0, "{dump}");
    assert!(e2e::flow_packets(&dump, "tun_id=0xc8") > 0, "{dump}");
    assert!(
        e2e::tcp_transfer(&c, &a.c, "10.9.0.3", 5203, 1 << 20),
        "TCP A -> C"
    );
}

/// A private etcd in namespace `ns` on `ip`, its own data directory kept
/// across restarts; killed (by pid) when dropped.
struct Etcd {
    ns: String,
    ip: String,
    dir: PathBuf,
    child: Option<Child>,
}

impl Etcd {
    fn start(ns: &str, ip: &str) -> Etcd {
        let dir = std::env::temp_dir().join(uniq("etcd-vxe-"));
        std::fs::create_dir_all(&dir).expect("mkdir");
        let mut e = Etcd {
            ns: ns.into(),
            ip: ip.into(),
            dir,
            child: None,
        };
        e.launch();
        e
    }

    fn url(&self) -> String {
        format!("http://{}:23790", self.ip)
    }

    fn launch(&mut self) {
        let url = self.url();
        let log = std::fs::File::create(self.dir.join("etcd.log")).expect("log");
        let child = Command::new("ip")
            .args(["netns", "exec", &self.ns, "etcd", "--name", "vxe"])
            .arg("--data-dir")
            .arg(self.dir.join("data"))
            .args([
                "--listen-client-urls",
                &url,
                "--advertise-client-urls",
                &url,
            ])
            .args(["--listen-peer-urls", "http://127.0.0.1:23800"])
            .args(["--initial-advertise-peer-urls", "http://127.0.0.1:23800"])
            .args(["--initial-cluster", "vxe=http://127.0.0.1:23800"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("etcd");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let o = sh(&[
                "ip",
                "netns",
                "exec",
                &self.ns,
                "etcdctl",
                "--endpoints",
                &url,
                "endpoint",
                "health",
            ]);
            if o.status.success() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "etcd did not start: {}",
                std::fs::read_to_string(self.dir.join("etcd.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Stops etcd (SIGTERM) and waits for it to exit.
    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: signals the etcd this test spawned (`ip netns exec`
            // execs it: the child's pid is etcd's).
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
            let _ = c.wait();
        }
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// An overlay host: fvs in namespace `h` with VTEP 172.31.0.N, container
/// 10.9.0.N; its uplink joins the underlay `u`.
struct OverlayHost {
    sw: Switch,
    c: Host,
    h: Host,
    id: String,
}

fn overlay_host(u: &Host, n: u8) -> OverlayHost {
    let h = netns(&format!("172.31.0.{n}"));
    let port = format!("u{n}");
    veth(&h.ns, "ul0", &u.ns, &port);
    attach(u, &port);
    let sw = fvs_in(&h.ns);
    let o = OverlayHost {
        c: container(&h.ns, &format!("10.9.0.{n}/24")),
        sw,
        h,
        id: format!("host-{n}"),
    };
    fvs_bridges(&o.sw, &o.h.ns, &format!("172.31.0.{n}/24"));
    o
}

impl OverlayHost {
    /// Registers the host: system-id, encap address and type, VNI, etcd.
    fn join(&self, etcd: &Etcd) {
        self.sw.vsctl(&[
            "set",
            "Open_vSwitch",
            ".",
            &format!("external_ids:system-id={}", self.id),
            &format!("external_ids:fvs-encap-ip={}", self.h.ip),
            "external_ids:fvs-encap-type=vxlan",
            &format!("external_ids:fvs-encap-key={VNI}"),
            "external_ids:fvs-lease-ttl=3",
            &format!("external_ids:fvs-remote=etcd:{}", etcd.url()),
        ]);
    }

    /// The overlay tunnel ports on br-int.
    fn tunnels(&self) -> Vec<String> {
        let o = self.sw.vsctl_out(&["list-ports", "br-int"]);
        let mut v: Vec<String> = text(&o.stdout)
            .lines()
            .filter(|l| l.starts_with("vx-"))
            .map(str::to_string)
            .collect();
        v.sort();
        v
    }
}

#[test]
fn overlay_of_three_hosts_through_etcd() {
    if !need("overlay_of_three_hosts_through_etcd", &["etcd", "etcdctl"]) {
        return;
    }
    let _l = serial();
    let u = underlay();
    // etcd on the underlay, reached by each host through its fvs br-phy.
    must(&[
        "ip",
        "-n",
        &u.ns,
        "addr",
        "add",
        "172.31.0.254/24",
        "dev",
        "sw",
    ]);
    let mut etcd = Etcd::start(&u.ns, "172.31.0.254");
    let hosts: Vec<OverlayHost> = (1..=3).map(|n| overlay_host(&u, n)).collect();
    let want = |me: &OverlayHost| -> Vec<String> {
        let mut v: Vec<String> = hosts
            .iter()
            .filter(|h| h.id != me.id)
            .map(|h| format!("vx-{}", h.id))
            .collect();
        v.sort();
        v
    };
    hosts[0].join(&etcd);
    hosts[1].join(&etcd);
    let deadline = Instant::now() + Duration::from_secs(15);
    while hosts[0].tunnels() != ["vx-host-2"] || hosts[1].tunnels() != ["vx-host-1"] {
        assert!(
            Instant::now() < deadline,
            "hosts 1 and 2 did not find each other: {:?} {:?}\n{}\n{}",
            hosts[0].tunnels(),
            hosts[1].tunnels(),
            hosts[0].sw.log(),
            hosts[1].sw.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // The third host: everyone has everyone's tunnel within 2 s.
    let t0 = Instant::now();
    hosts[2].join(&etcd);
    while hosts.iter().any(|h| h.tunnels() != want(h)) {
        assert!(
            t0.elapsed() < Duration::from_secs(2),
            "not a full mesh 2 s after the third host joined: {:?}",
            hosts.iter().map(OverlayHost::tunnels).collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    eprintln!("full mesh {:?} after the third host joined", t0.elapsed());
    let remote = hosts[0]
        .sw
        .get("Interface", "vx-host-3", "options:remote_ip");
    assert_eq!(remote, "172.31.0.3");
    assert_eq!(
        hosts[0].sw.get("Interface", "vx-host-3", "options:key"),
        VNI
    );
    // Every container reaches the other two (NORMAL over the mesh; the
    // split horizon keeps floods from looping).
    for a in &hosts {
        for b in &hosts {
            if a.id != b.id {
                let deadline = Instant::now() + Duration::from_secs(10);
                while !a.c.ping(&b.c.ip, 1) {
                    assert!(Instant::now() < deadline, "{} cannot ping {}", a.id, b.id);
                }
                assert!(a.c.ping(&b.c.ip, 2), "{} -> {}", a.id, b.id);
            }
        }
    }
    let st = hosts[0].sw.appctl(&["overlay/status"]);
    assert!(
        st.contains("state: connected") && st.contains("tunnels: 2"),
        "{st}"
    );
    // etcd restarts under running traffic: the tunnels stay, pings cross.
    let pinger = {
        let ns = hosts[0].c.ns.clone();
        Command::new("ip")
            .args([
                "netns", "exec", &ns, "ping", "-c", "25", "-i", "0.2", "-W", "1",
            ])
            .arg(&hosts[1].c.ip)
            .stdout(Stdio::piped())
            .spawn()
            .expect("ping")
    };
    std::thread::sleep(Duration::from_millis(500));
    etcd.stop();
    hosts[0]
        .sw
        .wait_for(10, "the registry outage in overlay/status", || {
            hosts[0]
                .sw
                .appctl(&["overlay/status"])
                .contains("disconnected")
        });
    hosts[0].sw.wait_for(5, "a log line about the outage", || {
        hosts[0].sw.log().contains("unreachable")
    });
    for h in &hosts {
        assert_eq!(h.tunnels(), want(h), "tunnels changed while etcd was down");
    }
    etcd.launch();
    let out = pinger.wait_with_output().expect("ping");
    let summary = text(&out.stdout);
    assert!(
        summary.contains("25 received"),
        "pings lost across the etcd restart: {summary}"
    );
    for h in &hosts {
        h.sw.wait_for(10, "reconnection to etcd", || {
            h.sw.appctl(&["overlay/status"])
                .contains("state: connected")
        });
        assert_eq!(h.tunnels(), want(h));
    }
    // Host 3 stops without a word (a crash): once its lease ends (3 s),
    // the others drop its tunnel; host 1 and 2 still talk.
    let mut gone = hosts.into_iter();
    let (h1, h2, mut h3) = match (gone.next(), gone.next(), gone.next()) {
        (Some(a), Some(b), Some(c)) => (a, b, c),
        _ => unreachable!("three hosts"),
    };
    let t0 = Instant::now();
    h3.sw.kill(libc::SIGKILL);
    for h in [&h1, &h2] {
        h.sw.wait_for(12, "host-3's tunnel to go", || {
            !h.tunnels().contains(&"vx-host-3".to_string())
        });
    }
    let took = t0.elapsed();
    eprintln!("host-3's tunnels removed {took:?} after it died");
    assert!(
        took >= Duration::from_secs(1),
        "removed before the lease could end: {took:?}"
    );
    assert!(h1.c.ping(&h2.c.ip, 2), "host-1 -> host-2 after host-3 left");
    drop(h3);
}

/// Frames from `ns`'s `ul0` (AF_PACKET): VXLAN to 172.31.0.1 that is broken.
const BAD_VXLAN: &str = r#"
import socket, struct, sys
dmac = bytes.fromhex(sys.argv[1].replace(':', ''))
smac = bytes.fromhex(open('/sys/class/net/ul0/address').read().strip().replace(':', ''))
def csum(b):
    s = sum(struct.unpack('!%dH' % (len(b) // 2), b))
    while s >> 16: s = (s & 0xffff) + (s >> 16)
    return (~s) & 0xffff
def frame(udp_payload, udp_len=None, ip_len=None):
    udp_len = udp_len if udp_len is not None else 8 + len(udp_payload)
    ip_len = ip_len if ip_len is not None else 20 + 8 + len(udp_payload)
    ip = struct.pack('!BBHHHBBH4s4s', 0x45, 0, ip_len, 1, 0, 64, 17, 0,
                     socket.inet_aton('172.31.0.2'), socket.inet_aton('172.31.0.1'))
    ip = ip[:10] + struct.pack('!H', csum(ip)) + ip[12:]
    udp = struct.pack('!HHHH', 50000, 4789, udp_len, 0)
    return dmac + smac + b'\x08\x00' + ip + udp + udp_payload
inner = b'\xff' * 6 + b'\x02\x00\x00\x00\x00\x01' + b'\x08\x06' + bytes(28)
vx = struct.pack('!II', 0x08000000, 5001 << 8)
bad = [
    frame(vx[:4]),                      # truncated VXLAN header
    frame(vx + inner, udp_len=2000),    # UDP length beyond the datagram
    frame(vx + inner, udp_len=12),      # UDP length too short for VXLAN
    frame(vx[:8] + inner[:6]),          # truncated inner Ethernet header
]
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind(('ul0', 0))
for f in bad:
    s.send(f)
print(len(bad))
"#;

#[test]
fn bad_input_unreachable_next_hop_and_broken_vxlan() {
    if !need("bad_input_unreachable_next_hop_and_broken_vxlan", &[]) {
        return;
    }
    let _l = serial();
    let hb = netns("172.31.0.2");
    // vx0: no route to its remote; vx1: on the subnet, but nobody answers.
    let a = fvs_host_a(&hb.ns, "ul0", &["options:remote_ip=172.31.9.9"]);
    ns_must(
        &hb.ns,
        &["ip", "addr", "add", "172.31.0.2/24", "dev", "ul0"],
    );
    a.sw.vsctl(&[
        "add-port",
        "br-int",
        "vx1",
        "--",
        "set",
        "Interface",
        "vx1",
        "type=vxlan",
        "options:remote_ip=172.31.0.77",
    ]);
    a.sw.ofctl(&["del-flows", "br-int"]);
    for (ip, port) in [("10.9.0.9", "vx0"), ("10.9.0.77", "vx1")] {
        a.sw.ofctl(&[
            "add-flow",
            "br-int",
            &format!("in_port=c0,ip,nw_dst={ip},actions=output:{port}"),
        ]);
        ns_must(
            &a.c.ns,
            &[
                "ip",
                "neigh",
                "replace",
                ip,
                "lladdr",
                "02:00:00:00:00:09",
                "dev",
                "eth0",
            ],
        );
    }
    assert!(!a.c.ping("10.9.0.9", 3));
    assert!(!a.c.ping("10.9.0.77", 3));
    let trace = |dst: &str| {
        a.sw.appctl(&[
            "ofproto/trace",
            "br-int",
            &format!("in_port=c0,icmp,nw_src=10.9.0.1,nw_dst={dst}"),
        ])
    };
    let t = trace("10.9.0.9");
    assert!(t.contains("native tunnel routing failed"), "{t}");
    assert!(t.contains("Datapath actions: drop"), "{t}");
    let t = trace("10.9.0.77");
    assert!(
        t.contains("neighbor cache miss for 172.31.0.77 on bridge br-phy, sending ARP request"),
        "{t}"
    );
    assert!(t.contains("Datapath actions: drop"), "{t}");
    for port in ["vx0", "vx1"] {
        a.sw.wait_for(10, &format!("tx_dropped of {port}"), || {
            let d =
                a.sw.vsctl_out(&["get", "Interface", port, "statistics:tx_dropped"]);
            text(&d.stdout).trim().parse::<u64>().unwrap_or(0) >= 3
        });
    }
    let ports = a.sw.ofctl(&["dump-ports", "br-int"]);
    assert!(
        ports.contains("drop=3") || ports.contains("drop=4"),
        "{ports}"
    );
    // Broken VXLAN from B to A's VTEP: counted and dropped, nothing
    // delivered, nothing panics; A still answers afterwards.
    let mac = ns_must(&a.h.ns, &["cat", "/sys/class/net/br-phy/address"]);
    let count = || -> u64 {
        a.sw.appctl(&["coverage/read-counter", "datapath_drop_tunnel_pop_error"])
            .trim()
            .parse()
            .expect("counter")
    };
    let before = count();
    let sent: u64 = ns_must(&hb.ns, &["python3", "-c", BAD_VXLAN, mac.trim()])
        .trim()
        .parse()
        .expect("sent");
    a.sw.wait_for(5, "the broken VXLAN frames to be counted", || {
        count() == before + sent
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    let ping = [
        "ip",
        "netns",
        "exec",
        &hb.ns,
        "ping",
        "-c1",
        "-W1",
        "172.31.0.1",
    ];
    while !sh(&ping).status.success() {
        assert!(Instant::now() < deadline, "A's VTEP stopped answering");
    }
    assert!(a.sw.alive(), "fvs-vswitchd died");
}

/// Turns IPv6 on again in namespace `ns` (the helpers turn it off) and
/// gives `dev` the address `cidr` (no duplicate detection: usable at once).
fn ipv6_addr(ns: &str, dev: &str, cidr: &str) {
    for key in ["all", dev] {
        ns_must(
            ns,
            &[
                "sysctl",
                "-qw",
                &format!("net.ipv6.conf.{key}.disable_ipv6=0"),
            ],
        );
    }
    ns_must(ns, &["ip", "-6", "addr", "add", cidr, "dev", dev, "nodad"]);
}

#[test]
fn interop_with_linux_kernel_vxlan_over_ipv6() {
    if !need("interop_with_linux_kernel_vxlan_over_ipv6", &["tshark"]) {
        return;
    }
    let _l = serial();
    let hb = netns("fd00:31::2");
    let a = fvs_host_a(
        &hb.ns,
        "ul0",
        &[
            "options:remote_ip=fd00:31::2",
            &format!("options:key={VNI}"),
        ],
    );
    ipv6_addr(&a.h.ns, "br-phy", "fd00:31::1/64");
    ipv6_addr(&hb.ns, "ul0", "fd00:31::2/64");
    ns_must(
        &hb.ns,
        &[
            "ip",
            "link",
            "add",
            "vx0",
            "type",
            "vxlan",
            "id",
            VNI,
            "remote",
            "fd00:31::1",
            "local",
            "fd00:31::2",
            "dstport",
            "4789",
            "dev",
            "ul0",
        ],
    );
    ns_must(&hb.ns, &["ip", "link", "add", "br0", "type", "bridge"]);
    let cb = container(&hb.ns, "10.9.0.2/24");
    for dev in ["vx0", "c0"] {
        ns_must(&hb.ns, &["ip", "link", "set", dev, "master", "br0"]);
    }
    ns_must(&hb.ns, &["ip", "link", "set", "vx0", "mtu", INNER_MTU]);
    for dev in ["vx0", "br0"] {
        ns_must(&hb.ns, &["ip", "link", "set", dev, "up"]);
    }
    prove_overlay_between(&a.c, &cb, &hb.ns, VNI, ["fd00:31::1", "fd00:31::2"]);
    let neigh = a.sw.appctl(&["tnl/neigh/show"]);
    assert!(neigh.contains("fd00:31::2"), "{neigh}");
}

/// One counter of an interface's `statistics` map (0 when absent).
fn iface_stat(sw: &Switch, iface: &str, key: &str) -> u64 {
    let stats = sw.get("Interface", iface, "statistics");
    stats
        .trim_matches(|c| c == '{' || c == '}')
        .split(", ")
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == key)
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0)
}

/// The underlay under a VXLAN port goes away mid-traffic, twice: first the
/// VTEP address (and with it the route to the remote), then the uplink
/// device itself (its veth deleted). The daemon stays up, counts what it
/// could not send, and the overlay comes back by itself once the underlay
/// does: the route from the system's table, the uplink reopened under its
/// old OpenFlow port number.
#[test]
fn vxlan_underlay_removed_mid_traffic() {
    if !need("vxlan_underlay_removed_mid_traffic", &[]) {
        return;
    }
    let _l = serial();
    let u = underlay();
    let a = fvs_host_a(
        &u.ns,
        "ua",
        &[
            "options:remote_ip=172.31.0.2",
            &format!("options:key={VNI}"),
        ],
    );
    attach(&u, "ua");
    let b = kernel_vtep(&u, "ub", "172.31.0.2", VNI, "10.9.0.2");
    let overlay_back = |what: &str| {
        let deadline = Instant::now() + Duration::from_secs(15);
        while !a.c.ping("10.9.0.2", 1) {
            assert!(
                Instant::now() < deadline,
                "{what}: no ping across the overlay\n{}",
                a.sw.log()
            );
        }
    };
    overlay_back("at the start");
    // Traffic all along: 100 pings a second for 30 s.
    let traffic = Command::new("ip")
        .args(["netns", "exec", &a.c.ns, "ping", "-q", "-n", "-i", "0.01"])
        .args(["-W", "1", "-w", "30", "10.9.0.2"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("ping");
    std::thread::sleep(Duration::from_millis(500));

    // 1. The VTEP address goes: no route to the remote any more.
    let pipeline_drops = || {
        a.sw.appctl(&["coverage/read-counter", "drop_action_of_pipeline"])
            .trim()
            .parse::<u64>()
            .expect("counter")
    };
    let (before, vx_before) = (pipeline_drops(), iface_stat(&a.sw, "vx0", "tx_dropped"));
    ns_must(
        &a.h.ns,
        &["ip", "addr", "del", "172.31.0.1/24", "dev", "br-phy"],
    );
    std::thread::sleep(Duration::from_secs(2));
    assert!(a.sw.alive(), "the daemon died without a route");
    assert!(
        !a.c.ping("10.9.0.2", 1),
        "the overlay works without a route?"
    );
    let dropped = pipeline_drops() - before;
    assert!(dropped >= 50, "unsendable packets not counted: {dropped}");
    // (statistics reach the database every 5 s)
    a.sw.wait_for(10, "vx0's tx_dropped", || {
        iface_stat(&a.sw, "vx0", "tx_dropped") > vx_before
    });
    eprintln!(
        "without a route to the remote: {dropped} packets counted in drop_action_of_pipeline, vx0 tx_dropped {}",
        iface_stat(&a.sw, "vx0", "tx_dropped") - vx_before
    );
    ns_must(
        &a.h.ns,
        &["ip", "addr", "add", "172.31.0.1/24", "dev", "br-phy"],
    );
    overlay_back("after the VTEP address came back");

    // 2. The uplink goes (both ends of its veth).
    let ofport = a.sw.get("Interface", "ul0", "ofport");
    must(&["ip", "-n", &u.ns, "link", "del", "ua"]);
    a.sw.wait_for(10, "ul0 closed", || {
        a.sw.get("Interface", "ul0", "ofport") == "-1"
    });
    let error = a.sw.get("Interface", "ul0", "error");
    eprintln!("with the uplink gone: Interface:error {error:?}");
    assert!(error.contains("ul0"), "{error}");
    assert!(a.sw.alive(), "the daemon died without its uplink");
    assert!(
        !a.c.ping("10.9.0.2", 1),
        "the overlay works without an uplink?"
    );
    // A new device of that name: the port opens again by itself.
    veth(&a.h.ns, "ul0", &u.ns, "ua");
    attach(&u, "ua");
    a.sw.wait_for(10, "ul0 reopened", || {
        a.sw.get("Interface", "ul0", "ofport") == ofport
            && a.sw.get("Interface", "ul0", "error") == "[]"
    });
    overlay_back("after the uplink came back");
    assert!(
        tcp_transfer(&b, &a.c, "10.9.0.2", 5206, 1 << 20),
        "TCP across the overlay after the underlay came back"
    );
    let out = traffic.wait_with_output().expect("ping");
    let summary = text(&out.stdout);
    eprintln!(
        "{}",
        summary
            .lines()
            .find(|l| l.contains("transmitted"))
            .unwrap_or("")
    );
    assert!(a.sw.alive(), "the daemon died");
    assert_eq!(iface_stat(&a.sw, "ul0", "rx_errors"), 0);
}
