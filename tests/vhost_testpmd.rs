//! The container side of vhost-user, for real: DPDK's testpmd with two
//! net_virtio_user ports on an fvs bridge, one port of each type
//! (`dpdkvhostuser`: fvs listens; `dpdkvhostuserclient`: testpmd listens).
//! Exactly N frames sent each way arrive on the other side, and testpmd's,
//! fvs's and the database's counters agree. Restarting testpmd, then
//! fvs-vswitchd, traffic resumes each time with nobody's help.

mod e2e;
mod vhost_peers;

use std::time::Duration;

use e2e::{can_run, field, serial, Switch};
use vhost_peers::{can_use_testpmd, Testpmd, VirtioUser};

/// Frames testpmd sends on each port: `tx_first` bursts of 32.
const BURSTS: u64 = 8;
const N: u64 = BURSTS * 32;

fn link_up(sw: &Switch, port: &str) -> bool {
    let o = sw.vsctl_out(&["get", "Interface", port, "link_state"]);
    e2e::text(&o.stdout).trim() == "up"
}

fn port_counter(sw: &Switch, br: &str, ofport: &str, key: &str) -> u64 {
    let dump = sw.ofctl(&["dump-ports", br]);
    let mut lines = dump.lines();
    while let Some(l) = lines.next() {
        if l.trim_start().starts_with(&format!("port  {ofport}:")) {
            if key.starts_with("rx") {
                return field(l, &format!("{} pkts=", "rx"));
            }
            let next = lines.next().unwrap_or_default();
            return field(next, "tx pkts=");
        }
    }
    panic!("no port {ofport} in\n{dump}");
}

/// Clears testpmd's counters, sends N frames on each port, and checks that
/// exactly N arrived on each.
fn exactly_n(sw: &Switch, tp: &mut Testpmd) {
    tp.cmd("stop", Duration::from_millis(200));
    tp.cmd("clear port stats all", Duration::from_millis(200));
    tp.cmd(
        &format!("start tx_first {BURSTS}"),
        Duration::from_millis(500),
    );
    let mut stats = tp.stats();
    for _ in 0..40 {
        if stats.len() == 2 && stats.iter().all(|&(rx, _)| rx >= N) {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
        stats = tp.stats();
    }
    // Nothing more trickles in.
    std::thread::sleep(Duration::from_millis(300));
    let stats = tp.stats();
    assert_eq!(
        stats,
        vec![(N, N), (N, N)],
        "testpmd (rx, tx) per port\n{}",
        sw.log()
    );
}

fn add_flows(sw: &Switch, br: &str) {
    sw.ofctl(&["del-flows", br]);
    sw.ofctl(&["add-flow", br, "in_port=1,actions=output:2"]);
    sw.ofctl(&["add-flow", br, "in_port=2,actions=output:1"]);
}

#[test]
fn testpmd_exactly_n_both_port_types_and_testpmd_restart() {
    let test = "testpmd_exactly_n_both_port_types_and_testpmd_restart";
    if !can_run(test) || !can_use_testpmd(test) {
        return;
    }
    let _serial = serial();
    let sw = Switch::start();
    let br = e2e::bridge_name();
    sw.add_netdev_bridge(&br, &[]);
    let server_path = sw.dir.join("tp-srv.sock");
    sw.vsctl(&[
        "add-port",
        &br,
        "vhu1",
        "--",
        "set",
        "Interface",
        "vhu1",
        "type=dpdkvhostuser",
        "ofport_request=1",
    ]);
    let opt = format!("options:vhost-server-path={}", server_path.display());
    sw.vsctl(&[
        "add-port",
        &br,
        "vhu2",
        "--",
        "set",
        "Interface",
        "vhu2",
        "type=dpdkvhostuserclient",
        &opt,
        "ofport_request=2",
    ]);
    add_flows(&sw, &br);
    // fvs's server socket: <rundir>/<vhost-sock-dir>/<port>.
    let fvs_sock = sw.dir.join("run/vhu1");
    assert!(fvs_sock.exists(), "no socket at {}", fvs_sock.display());
    assert_eq!(sw.get("Interface", "vhu1", "status:mode"), "server");
    assert_eq!(sw.get("Interface", "vhu2", "status:status"), "disconnected");

    let mut tp = Testpmd::start(
        &sw.dir,
        "a",
        &[
            VirtioUser {
                path: fvs_sock.clone(),
                server: false,
            },
            VirtioUser {
                path: server_path.clone(),
                server: true,
            },
        ],
    );
    sw.wait_for(20, "both links up", || {
        link_up(&sw, "vhu1") && link_up(&sw, "vhu2")
    });
    assert_eq!(sw.get("Interface", "vhu1", "status:status"), "connected");
    assert_eq!(sw.get("Interface", "vhu2", "status:mode"), "client");
    assert_eq!(sw.get("Interface", "vhu2", "status:vring_0_size"), "512");
    assert!(sw
        .get("Interface", "vhu1", "status:features")
        .starts_with("0x"));
    // testpmd enables one queue pair of the eight offered: pmd-rxq-show
    // says so, as OVS does.
    let rxq = sw.appctl(&["dpif-netdev/pmd-rxq-show"]);
    assert!(
        rxq.contains("  port: vhu1              queue-id:  0 (enabled)   pmd usage:"),
        "{rxq}"
    );
    assert!(
        rxq.contains("  port: vhu1              queue-id:  1 (disabled)  pmd usage:"),
        "{rxq}"
    );

    exactly_n(&sw, &mut tp);
    // fvs saw the same: N in and N out on each port, nothing dropped.
    for p in ["1", "2"] {
        assert_eq!(port_counter(&sw, &br, p, "rx"), N, "port {p} rx");
        assert_eq!(port_counter(&sw, &br, p, "tx"), N, "port {p} tx");
    }
    let dump = sw.ofctl(&["dump-flows", &br]);
    assert_eq!(e2e::flow_packets(&dump, "in_port=1"), N);
    assert_eq!(e2e::flow_packets(&dump, "in_port=2"), N);
    // And so does the database (statistics are written every 5 s), per queue too.
    sw.wait_for(12, "Interface:statistics", || {
        let o = sw.vsctl_out(&["get", "Interface", "vhu2", "statistics:rx_packets"]);
        e2e::text(&o.stdout).trim() == N.to_string()
    });
    assert_eq!(
        sw.get("Interface", "vhu1", "statistics:tx_packets"),
        N.to_string()
    );
    assert_eq!(sw.get("Interface", "vhu1", "error"), "[]");

    // The container restarts: both ports come back by themselves.
    tp.restart();
    sw.wait_for(20, "links up after testpmd restart", || {
        link_up(&sw, "vhu1") && link_up(&sw, "vhu2")
    });
    exactly_n(&sw, &mut tp);
    assert_eq!(port_counter(&sw, &br, "1", "rx"), 2 * N);
    assert_eq!(port_counter(&sw, &br, "2", "tx"), 2 * N);
}

#[test]
fn fvs_restart_reconnects_client_ports() {
    let test = "fvs_restart_reconnects_client_ports";
    if !can_run(test) || !can_use_testpmd(test) {
        return;
    }
    let _serial = serial();
    let mut sw = Switch::start();
    let br = e2e::bridge_name();
    sw.add_netdev_bridge(&br, &[]);
    let paths = [sw.dir.join("c1.sock"), sw.dir.join("c2.sock")];
    for (i, p) in paths.iter().enumerate() {
        let name = format!("vhc{}", i + 1);
        let opt = format!("options:vhost-server-path={}", p.display());
        let ofport = format!("ofport_request={}", i + 1);
        sw.vsctl(&[
            "add-port",
            &br,
            &name,
            "--",
            "set",
            "Interface",
            &name,
            "type=dpdkvhostuserclient",
            &opt,
            &ofport,
        ]);
    }
    add_flows(&sw, &br);
    let ports: Vec<VirtioUser> = paths
        .iter()
        .map(|p| VirtioUser {
            path: p.clone(),
            server: true,
        })
        .collect();
    let mut tp = Testpmd::start(&sw.dir, "b", &ports);
    let both_up = |sw: &Switch| link_up(sw, "vhc1") && link_up(sw, "vhc2");
    sw.wait_for(20, "links up", || both_up(&sw));
    exactly_n(&sw, &mut tp);

    // testpmd restarts: fvs reconnects to its new sockets (back-off <= 1 s).
    tp.restart();
    sw.wait_for(20, "links up after testpmd restart", || both_up(&sw));
    exactly_n(&sw, &mut tp);

    // fvs-vswitchd restarts (SIGKILL: no goodbye) and testpmd keeps
    // running: fvs reconnects, testpmd sets the rings up again.
    sw.kill(libc::SIGKILL);
    sw.launch();
    sw.wait_for(30, "links up after fvs restart", || both_up(&sw));
    // OpenFlow rules do not outlive the daemon (as in OVS): the controller,
    // here the test, puts them back.
    add_flows(&sw, &br);
    assert!(tp.alive(), "testpmd survived the switch restart");
    // Until the rules were back, the default NORMAL rule flooded the new
    // internal port's IPv6 chatter (router solicitations, MLD) to both
    // vhost ports: count from here.
    let tx_before = port_counter(&sw, &br, "2", "tx");
    exactly_n(&sw, &mut tp);
    assert_eq!(
        port_counter(&sw, &br, "1", "rx"),
        N,
        "counters of the new daemon"
    );
    assert_eq!(port_counter(&sw, &br, "2", "tx") - tx_before, N);
}
