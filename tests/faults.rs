//! Faults from outside (issue 9, fault tests): a controller floods
//! packet-outs and requests without reading its replies; a peer vanishes
//! mid-burst. The daemon must stay up and responsive, keep its memory
//! bounded and keep forwarding between the other ports.
//!
//! Needs root (namespaces, AF_PACKET); fails rather than skips under CI=true.

mod e2e;
mod vhost_peers;

use std::io::Write;
use std::os::unix::net::UnixStream;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use e2e::{can_run, serial, Host, Switch};
use fvs_ofproto::actions::{port, OfAction};
use fvs_ofproto::ofp::{self, msg::PacketOutMsg, Msg};

/// Resident memory of a process, in kB.
fn rss_kb(pid: i32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Runs a tool and returns how long it took (it must succeed).
fn timed(sw: &Switch, tool: &str, args: &[&str]) -> Duration {
    let t = Instant::now();
    let o = match tool {
        "vsctl" => sw.vsctl_out(args),
        _ => sw.ofctl_out(args),
    };
    assert!(
        o.status.success(),
        "{tool} {args:?}: {}",
        e2e::text(&o.stderr)
    );
    t.elapsed()
}

/// Ping `count` times, 20 ms apart; returns the replies received.
fn ping_replies(from: &Host, to: &str, count: u32) -> u32 {
    let o = Command::new("ip")
        .args([
            "netns",
            "exec",
            &from.ns,
            "ping",
            "-q",
            "-n",
            "-i",
            "0.02",
            "-W",
            "1",
            "-c",
            &count.to_string(),
            to,
        ])
        .output()
        .expect("ping");
    e2e::text(&o.stdout)
        .lines()
        .find(|l| l.contains("packets transmitted"))
        .and_then(|l| l.split(", ").nth(1))
        .and_then(|s| s.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// A bridge with three hosts on OpenFlow ports 1, 2, 3 and in_port rules
/// between 1 and 2.
fn three_hosts(sw: &Switch, br: &str, net: u8) -> (Host, Host, Host) {
    let a = Host::new(&format!("10.{net}.0.1/24"));
    let b = Host::new(&format!("10.{net}.0.2/24"));
    let c = Host::new(&format!("10.{net}.0.3/24"));
    // No NORMAL flow, ever: a frame the bridge's own interface sends while
    // the ports are being added would be flooded (one received, several
    // sent) and the counters below could not balance.
    sw.add_netdev_bridge(br, &["fail_mode=secure"]);
    for (h, n) in [(&a, 1), (&b, 2), (&c, 3)] {
        sw.vsctl(&[
            "add-port",
            br,
            &h.port,
            "--",
            "set",
            "Interface",
            &h.port,
            &format!("ofport_request={n}"),
        ]);
    }
    sw.ofctl(&["del-flows", br]);
    sw.ofctl(&["add-flow", br, "in_port=1,actions=output:2"]);
    sw.ofctl(&["add-flow", br, "in_port=2,actions=output:1"]);
    (a, b, c)
}

#[test]
fn controller_flooding_packet_outs_is_bounded() {
    if !can_run("controller_flooding_packet_outs_is_bounded") {
        return;
    }
    let _serial = serial();
    let sw = Switch::start();
    let br = e2e::bridge_name();
    let (a, b, c) = three_hosts(&sw, &br, 78);
    assert!(a.ping(&b.ip, 2));
    let pid = sw.pid.expect("pid");
    let rss0 = rss_kb(pid);

    // Two raw OpenFlow 1.3 clients on the management socket. One sends
    // packet-outs to port 3 as fast as it can (its few replies read and
    // thrown away); the other floods echo requests, each asking for a 4 kB
    // reply, and never reads: unbounded, those replies would grow the
    // daemon's memory by megabytes a second.
    let mgmt = sw.dir.join(format!("run/{br}.mgmt"));
    let hello = ofp::encode(
        ofp::OFP13,
        1,
        &Msg::Hello {
            bitmap: 1 << ofp::OFP13,
        },
    )
    .unwrap();
    let mut frame = vec![0xffu8; 6];
    frame.extend_from_slice(&[2, 0, 0, 0, 0, 0x42, 0x88, 0xb5]);
    frame.resize(60, 0x5a);
    let po = ofp::encode(
        ofp::OFP13,
        2,
        &Msg::PacketOut(PacketOutMsg {
            buffer_id: u32::MAX,
            in_port: port::CONTROLLER,
            actions: vec![OfAction::Output {
                port: 3,
                max_len: 0,
            }],
            data: frame,
        }),
    )
    .unwrap();
    let echo = ofp::encode(ofp::OFP13, 3, &Msg::EchoRequest(vec![7; 4000])).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let flood = |msg: &[u8], read: bool| {
        let mut s = UnixStream::connect(&mgmt).expect("mgmt socket");
        s.write_all(&hello).unwrap();
        if read {
            let mut r = s.try_clone().unwrap();
            std::thread::spawn(move || {
                let mut buf = vec![0u8; 65536];
                while matches!(std::io::Read::read(&mut r, &mut buf), Ok(n) if n > 0) {}
            });
        }
        let chunk: Vec<u8> = msg.repeat(100);
        let (stop, sent) = (stop.clone(), Arc::new(AtomicU64::new(0)));
        s.set_write_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let sock = s.try_clone().unwrap();
        let counted = sent.clone();
        let t = std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                match s.write_all(&chunk) {
                    Ok(()) => {
                        counted.fetch_add(100, Ordering::Relaxed);
                    }
                    // Blocked: the switch stopped reading us (backpressure).
                    Err(e)
                        if matches!(
                            e.kind(),
                            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                        ) => {}
                    Err(_) => break,
                }
            }
        });
        (sock, sent, t)
    };
    let (s1, sent_po, w1) = flood(&po, true);
    let (s2, sent_echo, w2) = flood(&echo, false);

    // Meanwhile: the tools answer within a bound, the other ports forward,
    // and memory stays bounded.
    let t0 = Instant::now();
    let mut max_rss = rss0;
    let mut slowest = Duration::ZERO;
    let mut replies = 0;
    while t0.elapsed() < Duration::from_secs(8) {
        slowest = slowest.max(timed(&sw, "ofctl", &["dump-flows", &br]));
        slowest = slowest.max(timed(&sw, "vsctl", &["show"]));
        replies += ping_replies(&a, &b.ip, 10);
        max_rss = max_rss.max(rss_kb(pid));
    }
    stop.store(true, Ordering::Relaxed);
    let _ = s1.shutdown(std::net::Shutdown::Both);
    let _ = s2.shutdown(std::net::Shutdown::Both);
    w1.join().unwrap();
    w2.join().unwrap();
    let sent = sent_po.load(Ordering::Relaxed);
    let echoes = sent_echo.load(Ordering::Relaxed);
    let ports = sw.ofctl(&["dump-ports", &br, "3"]);
    let tx3 = e2e::field(&ports, "tx pkts=");
    eprintln!(
        "packet-outs written {sent}, sent on port 3 {tx3}; echo requests written {echoes}; RSS {rss0} kB -> max {max_rss} kB; \
         slowest tool {slowest:?}; pings answered {replies}"
    );
    assert!(sent >= 10_000, "the flood hardly started: {sent}");
    // The unread replies stopped the echo flood at the backlog bound
    // (4 MB of replies, plus what the sockets buffer).
    assert!(
        echoes < 20_000,
        "{echoes} echo requests taken in without their replies being read"
    );
    assert!(tx3 >= 5_000, "packet-outs were not executed: {ports}");
    assert!(
        max_rss < rss0 + 64 * 1024,
        "memory grew from {rss0} kB to {max_rss} kB"
    );
    assert!(slowest < Duration::from_secs(3), "a tool took {slowest:?}");
    assert!(sw.alive(), "the daemon died");
    // The pings ran in rounds of 10 between the tools.
    let rounds = replies.div_ceil(10).max(1);
    assert!(
        replies * 100 >= rounds * 10 * 95,
        "other ports starved: {replies} replies in {rounds} rounds"
    );
    // A new connection is served normally once the flood is gone.
    assert!(timed(&sw, "ofctl", &["dump-flows", &br]) < Duration::from_secs(2));
    let _ = c;
}

/// The datapath's balance: (packets received, packets sent to ports,
/// counted drops) from pmd-perf-show and the drop coverage counters.
fn balance(sw: &Switch) -> (u64, u64, u64) {
    // Read until two readings agree (a late ARP would tear one).
    let mut last = read_balance(sw);
    for _ in 0..5 {
        std::thread::sleep(Duration::from_millis(300));
        let now = read_balance(sw);
        if now == last {
            break;
        }
        last = now;
    }
    last
}

fn read_balance(sw: &Switch) -> (u64, u64, u64) {
    let perf = sw.appctl(&["dpif-netdev/pmd-perf-show"]);
    let sum = |key: &str| -> u64 {
        perf.lines()
            .filter_map(|l| l.trim_start().strip_prefix(key))
            .filter_map(|r| r.split_whitespace().next()?.parse::<u64>().ok())
            .sum()
    };
    let drops = [
        "datapath_drop_upcall_error",
        "datapath_drop_upcall_limit",
        "datapath_drop_invalid_port",
        "datapath_drop_tunnel_push_error",
        "datapath_drop_tunnel_pop_error",
        "datapath_drop_recirc_error",
        "drop_action_of_pipeline",
    ]
    .iter()
    .map(|c| {
        sw.appctl(&["coverage/read-counter", c])
            .trim()
            .parse::<u64>()
            .unwrap_or(0)
    })
    .sum();
    (sum("Rx packets:"), sum("Tx packets:"), drops)
}

/// Pings from `from` to `to` in the background: `count` pings 10 ms apart.
fn ping_in_background(from: &Host, to: &str, count: u32) -> std::process::Child {
    Command::new("ip")
        .args([
            "netns",
            "exec",
            &from.ns,
            "ping",
            "-q",
            "-n",
            "-i",
            "0.01",
            "-W",
            "1",
            "-c",
            &count.to_string(),
            to,
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("ping")
}

fn replies_of(ping: std::process::Child) -> u32 {
    let out = ping.wait_with_output().expect("ping");
    e2e::text(&out.stdout)
        .lines()
        .find(|l| l.contains("packets transmitted"))
        .and_then(|l| l.split(", ").nth(1))
        .and_then(|s| s.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

#[test]
fn system_port_peer_deleted_mid_burst() {
    if !can_run("system_port_peer_deleted_mid_burst") {
        return;
    }
    let _serial = serial();
    let sw = Switch::start();
    let br = e2e::bridge_name();
    let (a, b, c) = three_hosts(&sw, &br, 81);
    sw.ofctl(&["add-flow", &br, "in_port=3,actions=output:1"]);
    assert!(a.ping(&b.ip, 2));
    let steady = ping_in_background(&a, &b.ip, 300);
    // c floods a (its replies go nowhere: no rule from a to c).
    let flood = Command::new("ip")
        .args([
            "netns", "exec", &c.ns, "ping", "-q", "-n", "-i", "0.001", "-w", "4", &a.ip,
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("flood");
    std::thread::sleep(Duration::from_millis(1000));
    // The peer vanishes: its namespace, and with it both ends of the veth.
    e2e::must(&["ip", "netns", "del", &c.ns]);
    let replies = replies_of(steady);
    // (its namespace is gone: the flood ends at its 4 s deadline)
    let _ = flood.wait_with_output();
    assert!(sw.alive(), "the daemon died");
    assert!(replies >= 285, "a <-> b starved: {replies}/300");
    // The port's state says the device is gone.
    sw.wait_for(15, "the vanished port's state", || {
        let err = sw.get("Interface", &c.port, "error");
        let link = sw.get("Interface", &c.port, "link_state");
        !err.is_empty() && err != "[]" || link == "down"
    });
    eprintln!(
        "after the namespace went: error {:?}, link_state {:?}",
        sw.get("Interface", &c.port, "error"),
        sw.get("Interface", &c.port, "link_state")
    );
    sw.vsctl(&["del-port", &br, &c.port]);
    assert!(a.ping(&b.ip, 3), "no connectivity after the port went");
    std::thread::sleep(Duration::from_millis(300));
    let (rx, tx, drops) = balance(&sw);
    eprintln!("received {rx} = sent {tx} + dropped {drops}");
    assert!(rx > 500, "{rx}");
    assert_eq!(rx, tx + drops, "counters do not balance");
}

#[test]
fn hugepages_run_out() {
    if !can_run("hugepages_run_out") {
        return;
    }
    let _serial = serial();
    // More hugepages than any machine here has: 4 TB.
    for (init, opens) in [("true", false), ("try", true)] {
        let sw = Switch::start();
        let br = e2e::bridge_name();
        let a = Host::new("10.82.0.1/24");
        let b = Host::new("10.82.0.2/24");
        sw.vsctl(&[
            "--no-wait",
            "set",
            "Open_vSwitch",
            ".",
            &format!("other_config:dpdk-init={init}"),
            "other_config:dpdk-socket-mem=4194304",
        ]);
        sw.add_netdev_bridge(&br, &[]);
        sw.vsctl(&["add-port", &br, &a.port]);
        sw.vsctl(&["add-port", &br, &b.port]);
        let err = sw.get("Interface", &a.port, "error");
        eprintln!("dpdk-init={init}: Interface error {err:?}");
        assert!(sw.alive(), "dpdk-init={init}: the daemon died");
        // The tools still answer.
        sw.appctl(&["dpif-netdev/pmd-stats-show"]);
        if opens {
            // `try` falls back to plain memory, says so, and forwards.
            assert!(err.is_empty() || err == "[]", "{err}");
            assert!(sw.log().contains("using plain memory"), "{}", sw.log());
            assert!(a.ping(&b.ip, 3), "no forwarding on plain memory");
        } else {
            // `true` refuses: every port says why, nothing half-works.
            assert!(err.contains("hugepages"), "dpdk-init=true: error {err:?}");
            let err_b = sw.get("Interface", &b.port, "error");
            assert!(err_b.contains("hugepages"), "{err_b}");
            assert!(!a.ping(&b.ip, 1));
        }
    }
}

#[test]
fn vhost_user_peer_killed_mid_burst() {
    let test = "vhost_user_peer_killed_mid_burst";
    if !can_run(test) || !vhost_peers::can_use_testpmd(test) {
        return;
    }
    let _serial = serial();
    let sw = Switch::start();
    let br = e2e::bridge_name();
    let a = Host::new("10.83.0.1/24");
    let b = Host::new("10.83.0.2/24");
    // No NORMAL flow, ever (as in three_hosts).
    sw.add_netdev_bridge(&br, &["fail_mode=secure"]);
    for (name, n) in [("vu0", 1), ("vu1", 2)] {
        sw.vsctl(&[
            "add-port",
            &br,
            name,
            "--",
            "set",
            "Interface",
            name,
            "type=dpdkvhostuser",
            &format!("ofport_request={n}"),
        ]);
    }
    for (h, n) in [(&a, 3), (&b, 4)] {
        sw.vsctl(&[
            "add-port",
            &br,
            &h.port,
            "--",
            "set",
            "Interface",
            &h.port,
            &format!("ofport_request={n}"),
        ]);
    }
    sw.ofctl(&["del-flows", &br]);
    for (i, o) in [(1, 2), (2, 1), (3, 4), (4, 3)] {
        sw.ofctl(&["add-flow", &br, &format!("in_port={i},actions=output:{o}")]);
    }
    let ports = ["vu0", "vu1"].map(|p| vhost_peers::VirtioUser {
        path: sw.dir.join("run").join(p),
        server: false,
    });
    let mut tp = vhost_peers::Testpmd::start(&sw.dir, "k9", &ports);
    let up = |sw: &Switch| {
        ["vu0", "vu1"]
            .iter()
            .all(|p| sw.get("Interface", p, "link_state") == "up")
    };
    sw.wait_for(20, "vhost-user links up", || up(&sw));
    // Bursts circulate testpmd -> vu0 -> vu1 -> testpmd (io forwarding).
    tp.cmd("set fwd io", Duration::from_millis(200));
    tp.cmd("start tx_first 8", Duration::from_millis(500));
    let steady = ping_in_background(&a, &b.ip, 300);
    std::thread::sleep(Duration::from_millis(1000));
    let (rx_before, _, _) = balance(&sw);
    tp.kill9();
    let replies = replies_of(steady);
    assert!(sw.alive(), "the daemon died");
    assert!(
        rx_before > 10_000,
        "no vhost traffic before the kill: {rx_before}"
    );
    assert!(replies >= 285, "kernel ports starved: {replies}/300");
    sw.wait_for(15, "vhost-user links down", || {
        ["vu0", "vu1"]
            .iter()
            .all(|p| sw.get("Interface", p, "link_state") == "down")
    });
    std::thread::sleep(Duration::from_millis(300));
    let (rx, tx, drops) = balance(&sw);
    eprintln!("after the kill: received {rx} = sent {tx} + dropped {drops}");
    assert_eq!(rx, tx + drops, "counters do not balance");
    // A new frontend reconnects and traffic flows again.
    let mut tp = vhost_peers::Testpmd::start(&sw.dir, "k9b", &ports);
    sw.wait_for(20, "vhost-user links up again", || up(&sw));
    tp.cmd("set fwd io", Duration::from_millis(200));
    tp.cmd("start tx_first 8", Duration::from_millis(1000));
    let (rx2, _, _) = balance(&sw);
    assert!(
        rx2 > rx + 1000,
        "no traffic after reconnecting: {rx} -> {rx2}"
    );
    tp.stop();
}
