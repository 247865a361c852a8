//! The built-in demo: the seed walkthrough on this machine. Two hosts in
//! network namespaces, each behind a veth pair; a netdev bridge whose two
//! `type=dpdk` ports attach to the veths (DPDK af_packet devargs); the
//! seed's pair of cross-connect flows; a TCP transfer and a ping-like ARP
//! exchange between the hosts; then the counters, as fvs-ofctl and
//! fvs-appctl print them.
//!
//! The switch runs in this process (the same daemon code fvs-vswitchd
//! runs), and each step is the fvs-vsctl / fvs-ofctl / fvs-appctl command
//! it shows.
//!
//!     cargo run --release --example demo                      # needs root
//!     cargo run --release --example demo -- --memory [PACKETS] # no kernel, no root

mod memory;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fvs_cli::daemon::run::Vswitchd;
use fvs_cli::daemon::vlog::Vlog;
use fvs_cli::daemon::{appctl, ofctl, Daemon};

type Error = Box<dyn std::error::Error>;

const BYTES: usize = 64 << 20;

fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--memory") {
        let packets = args
            .get(1)
            .and_then(|a| a.parse().ok())
            .unwrap_or(1_000_000);
        return memory::run(packets);
    }
    if let Some(why) = cannot_use_kernel() {
        println!("({why}: running the in-memory demo instead)\n");
        return memory::run(1_000_000);
    }
    namespaces_demo()
}

fn cannot_use_kernel() -> Option<&'static str> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("network namespaces need root");
    }
    if Command::new("ip").arg("-V").output().is_err() {
        return Some("`ip` (iproute2) is not installed");
    }
    None
}

fn ip(args: &[&str]) -> Result<(), Error> {
    let o = Command::new("ip").args(args).output()?;
    if !o.status.success() {
        return Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&o.stderr).trim()
        )
        .into());
    }
    Ok(())
}

/// A host: a namespace with `eth0` (its address given), whose veth peer
/// `port` stays in this namespace for the switch. Removed when dropped.
struct Host {
    ns: String,
    port: String,
    addr: Ipv4Addr,
}

impl Host {
    fn new(tag: &str, addr: Ipv4Addr) -> Result<Host, Error> {
        let pid = std::process::id() % 10_000;
        let h = Host {
            ns: format!("fvs-demo-{tag}-{pid}"),
            port: format!("fvsdemo{tag}{pid}"),
            addr,
        };
        ip(&["netns", "add", &h.ns])?;
        ip(&[
            "link", "add", &h.port, "type", "veth", "peer", "name", "eth0", "netns", &h.ns,
        ])?;
        ip(&["link", "set", &h.port, "up"])?;
        ip(&[
            "-n",
            &h.ns,
            "addr",
            "add",
            &format!("{addr}/24"),
            "dev",
            "eth0",
        ])?;
        ip(&["-n", &h.ns, "link", "set", "eth0", "up"])?;
        Ok(h)
    }

    /// Runs `f` on a thread inside the namespace (sockets it opens live there).
    fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> std::thread::JoinHandle<Result<T, String>> {
        let path = PathBuf::from("/var/run/netns").join(&self.ns);
        std::thread::spawn(move || {
            let ns = std::fs::File::open(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            // SAFETY: setns on a namespace descriptor we hold open; it moves
            // only this thread, which then runs `f`.
            if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                return Err(format!("setns: {}", std::io::Error::last_os_error()));
            }
            Ok(f())
        })
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        let _ = ip(&["netns", "del", &self.ns]);
        let _ = ip(&["link", "del", &self.port]);
    }
}

static STOP: AtomicBool = AtomicBool::new(false);
static HUP: AtomicBool = AtomicBool::new(false);

fn show(cmd: &str, out: Result<String, String>) -> Result<(), Error> {
    println!("$ {cmd}");
    let out = out.map_err(|e| format!("{cmd}: {e}"))?;
    print!("{out}");
    if !out.is_empty() && !out.ends_with('\n') {
        println!();
    }
    Ok(())
}

fn namespaces_demo() -> Result<(), Error> {
    let dir = std::env::temp_dir().join(format!("fvs-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let result = run_demo(&dir);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn run_demo(dir: &std::path::Path) -> Result<(), Error> {
    let a = Host::new("a", Ipv4Addr::new(10, 99, 0, 1))?;
    let b = Host::new("b", Ipv4Addr::new(10, 99, 0, 2))?;
    println!(
        "Hosts: {} ({}) and {} ({}), behind veths {} and {}\n",
        a.ns, a.addr, b.ns, b.addr, a.port, b.port
    );

    let log = Arc::new(Vlog::new(Some(dir.join("fvs-vswitchd.log")), false)?);
    let daemon = Daemon::new(log)?;
    let vs = Vswitchd::new(daemon.clone(), Vswitchd::open_db(&dir.join("conf.db"))?);
    let main_loop = {
        let vs = vs.clone();
        std::thread::spawn(move || vs.run(&STOP, &HUP))
    };

    let vsctl = |args: &[&str]| show(&format!("fvs-vsctl {}", args.join(" ")), vs.vsctl(args));
    let ofctl = |cmd: &str, args: &[&str]| {
        let line = format!("fvs-ofctl {cmd} br0 {}", args.join(" "));
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        show(
            line.trim_end(),
            ofctl::run(&daemon, cmd, "br0", &args, &ofctl::OfctlOptions::default()),
        )
    };
    // The idle PMD thread sleeps up to 500 µs between polls: small machines stay responsive.
    vsctl(&[
        "--no-wait",
        "set",
        "Open_vSwitch",
        ".",
        "other_config:pmd-sleep-max=500",
    ])?;
    vsctl(&[
        "add-br",
        "br0",
        "--",
        "set",
        "bridge",
        "br0",
        "datapath_type=netdev",
    ])?;
    for (n, h) in [(1, &a), (2, &b)] {
        let port = format!("p{n}");
        let devargs = format!(
            "options:dpdk-devargs=net_af_packet{},iface={}",
            n - 1,
            h.port
        );
        let ofport = format!("ofport_request={n}");
        vsctl(&[
            "add-port",
            "br0",
            &port,
            "--",
            "set",
            "Interface",
            &port,
            "type=dpdk",
            &devargs,
            &ofport,
        ])?;
    }
    ofctl("del-flows", &[])?;
    ofctl("add-flow", &["in_port=2,action=output:1"])?;
    ofctl("add-flow", &["in_port=1,action=output:2"])?;
    vsctl(&["show"])?;

    // Traffic: host b listens, host a sends BYTES over TCP (ARP first, through the switch).
    let server_addr = SocketAddr::from((b.addr, 5201));
    let server = b.run(move || -> std::io::Result<usize> {
        let l = TcpListener::bind(server_addr)?;
        let (mut s, _) = l.accept()?;
        let mut buf = vec![0u8; 1 << 16];
        let mut n = 0;
        loop {
            match s.read(&mut buf)? {
                0 => return Ok(n),
                k => n += k,
            }
        }
    });
    std::thread::sleep(Duration::from_millis(100));
    let start = Instant::now();
    let client = a.run(move || -> std::io::Result<usize> {
        let mut s = TcpStream::connect_timeout(&server_addr, Duration::from_secs(5))?;
        let chunk = vec![0x5au8; 1 << 16];
        let mut sent = 0;
        while sent < BYTES {
            s.write_all(&chunk)?;
            sent += chunk.len();
        }
        Ok(sent)
    });
    let sent = client
        .join()
        .map_err(|_| "client panicked")??
        .map_err(|e| format!("client: {e}"))?;
    let got = server
        .join()
        .map_err(|_| "server panicked")??
        .map_err(|e| format!("server: {e}"))?;
    let secs = start.elapsed().as_secs_f64();
    println!(
        "\nTCP {} -> {}: sent {} MB, received {} MB in {secs:.2} s ({:.2} Gbit/s)\n",
        a.addr,
        b.addr,
        sent >> 20,
        got >> 20,
        got as f64 * 8.0 / secs / 1e9
    );
    if got != sent {
        return Err(format!("received {got} of {sent} bytes").into());
    }

    ofctl("dump-flows", &[])?;
    ofctl("dump-ports", &[])?;
    let appctl = |name: &str, f: fn(&Daemon, &[String]) -> Result<String, String>| {
        show(&format!("fvs-appctl {name}"), f(&daemon, &[]))
    };
    appctl("dpif-netdev/pmd-stats-show", appctl::pmd_stats_show)?;
    appctl("dpif-netdev/pmd-rxq-show", appctl::pmd_rxq_show)?;
    appctl("dpctl/dump-flows", appctl::dpctl_dump_flows)?;

    daemon
        .exit
        .store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = main_loop.join();
    daemon.shutdown();
    Ok(())
}
