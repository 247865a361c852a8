//! vhost-user ports as an operator sees them through fvs-vswitchd:
//! Interface:status (mode, socket, connected or not, features, vring
//! sizes, running queue pairs), per-queue counters in
//! Interface:statistics, totals in dump-ports, and Interface:error when
//! the frontend misbehaves, while the bridge's other ports keep
//! forwarding. The frontend is fvs-ports' test virtio-net driver,
//! connected to the daemon's own socket (QEMU and testpmd, the real
//! frontends, are in tests/vhost_vm.rs and tests/vhost_testpmd.rs; neither
//! can be made to corrupt its rings on purpose).

mod e2e;

use std::time::Duration;

use e2e::{can_run, serial, Host, Switch};
use fvs_ports::vhost::frontend::{frame, Config, Frontend};
use fvs_ports::vhost::vring::{Desc, DESC_F_NEXT};

const GUEST: [u8; 6] = [2, 0, 0, 0, 0x78, 1];
const BROADCAST: [u8; 6] = [0xff; 6];

/// A counter of Interface:statistics (0 while it is not there).
fn stat(sw: &Switch, port: &str, key: &str) -> u64 {
    let o = sw.vsctl_out(&["get", "Interface", port, &format!("statistics:{key}")]);
    e2e::text(&o.stdout).trim().parse().unwrap_or(0)
}

/// `rx pkts=` of OpenFlow port `ofport` in dump-ports.
fn rx_packets(sw: &Switch, br: &str, ofport: u16) -> u64 {
    let dump = sw.ofctl(&["dump-ports", br]);
    let l = dump
        .lines()
        .find(|l| l.trim_start().starts_with(&format!("port  {ofport}:")))
        .unwrap_or_else(|| panic!("no port {ofport} in\n{dump}"));
    e2e::field(l, "rx pkts=")
}

fn frames(n: u32, len: usize) -> Vec<Vec<u8>> {
    (0..n).map(|i| frame(BROADCAST, GUEST, i, len)).collect()
}

/// Sends every frame of `fs` on queue pair `q` (the ring may take them in
/// several goes: completed buffers are reclaimed in between).
fn send_all(fe: &mut Frontend, q: usize, fs: &[Vec<u8>]) {
    let mut sent = 0;
    for _ in 0..100 {
        let rest: Vec<&[u8]> = fs[sent..].iter().map(Vec::as_slice).collect();
        sent += fe.send(q, &rest);
        if sent == fs.len() {
            return;
        }
        fe.reclaim(2 * q + 1);
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("sent {sent} of {} frames on pair {q}", fs.len());
}

#[test]
fn vhost_status_statistics_and_error_through_the_daemon() {
    let test = "vhost_status_statistics_and_error_through_the_daemon";
    if !can_run(test) {
        return;
    }
    let _serial = serial();
    let sw = Switch::start();
    let br = e2e::bridge_name();
    sw.add_netdev_bridge(&br, &[]);
    let h1 = Host::new("10.78.0.1/24");
    let h2 = Host::new("10.78.0.2/24");
    for (h, ofport) in [(&h1, "ofport_request=3"), (&h2, "ofport_request=4")] {
        sw.vsctl(&[
            "add-port",
            &br,
            &h.port,
            "--",
            "set",
            "Interface",
            &h.port,
            ofport,
        ]);
    }
    let port = "vhu-st";
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
    let path = sw.dir.join("run").join(port);

    // Nobody connected yet.
    assert_eq!(sw.get("Interface", port, "status:mode"), "server");
    assert_eq!(
        sw.get("Interface", port, "status:socket"),
        path.display().to_string()
    );
    assert_eq!(sw.get("Interface", port, "status:status"), "disconnected");
    assert_eq!(sw.get("Interface", port, "link_state"), "down");
    assert_eq!(sw.get("Interface", port, "error"), "[]");

    // A frontend with two queue pairs of 256 entries.
    let cfg = Config {
        queue_pairs: 2,
        ..Config::default()
    };
    let mut fe = Frontend::connect(&path, cfg).expect("connect to the daemon's socket");
    fe.setup().expect("frontend setup");
    sw.wait_for(10, "link up", || {
        sw.get("Interface", port, "link_state") == "up"
    });
    assert_eq!(sw.get("Interface", port, "status:status"), "connected");
    let features = sw.get("Interface", port, "status:features");
    let f = u64::from_str_radix(features.trim_start_matches("0x"), 16).expect("hex");
    assert!(
        f & (1 << 32) != 0 && f & (1 << 22) != 0,
        "VERSION_1 and MQ: {features}"
    );
    assert!(sw
        .get("Interface", port, "status:protocol_features")
        .starts_with("0x"));
    assert_eq!(sw.get("Interface", port, "status:num_of_vrings"), "4");
    for v in 0..4 {
        assert_eq!(
            sw.get("Interface", port, &format!("status:vring_{v}_size")),
            "256"
        );
    }
    assert_eq!(
        sw.get("Interface", port, "status:queue_pairs_running"),
        "0,1"
    );

    // 10 frames on pair 0, 5 on pair 1: counted per queue and in total.
    send_all(&mut fe, 0, &frames(10, 100));
    send_all(&mut fe, 1, &frames(5, 200));
    sw.wait_for(5, "dump-ports rx", || rx_packets(&sw, &br, 1) == 15);
    sw.wait_for(12, "per-queue statistics", || {
        stat(&sw, port, "rx_q0_good_packets") == 10
            && stat(&sw, port, "rx_q1_good_packets") == 5
            && stat(&sw, port, "rx_packets") == 15
    });
    assert_eq!(stat(&sw, port, "rx_q0_good_bytes"), 10 * 100);
    assert_eq!(stat(&sw, port, "rx_q1_good_bytes"), 5 * 200);
    assert_eq!(stat(&sw, port, "rx_q0_errors"), 0);
    // The floods came out of both system ports.
    assert!(stat(&sw, &h1.port, "tx_packets") >= 15);

    // A descriptor loop on the guest's transmit ring of pair 0 (vring 1).
    let g = fe.gpa(fe.layout(1).bufs);
    fe.write_desc(
        1,
        200,
        Desc {
            addr: g,
            len: 4,
            flags: DESC_F_NEXT,
            next: 201,
        },
    );
    fe.write_desc(
        1,
        201,
        Desc {
            addr: g,
            len: 4,
            flags: DESC_F_NEXT,
            next: 200,
        },
    );
    fe.push_avail(1, 200);
    sw.wait_for(10, "Interface:error", || {
        sw.get("Interface", port, "error")
            .starts_with("vhu-st: virtqueue 1: descriptor chain loops")
    });
    sw.wait_for(12, "rx_errors", || {
        stat(&sw, port, "rx_errors") == 1 && stat(&sw, port, "rx_q0_errors") == 1
    });
    // fvs is fine, and so are the other ports.
    assert!(sw.appctl(&["version"]).contains("fvs-vswitchd"));
    assert!(h1.ping("10.78.0.2", 3), "h1 pings h2 across the bridge");

    // The frontend goes; a new one connects: the error is gone.
    drop(fe);
    sw.wait_for(10, "disconnected", || {
        sw.get("Interface", port, "status:status") == "disconnected"
    });
    assert_eq!(sw.get("Interface", port, "link_state"), "down");
    let mut fe = Frontend::connect(&path, Config::default()).expect("reconnect");
    fe.setup().expect("setup again");
    sw.wait_for(10, "link up again", || {
        sw.get("Interface", port, "link_state") == "up"
    });
    assert_eq!(sw.get("Interface", port, "error"), "[]");
    assert_eq!(sw.get("Interface", port, "status:num_of_vrings"), "2");
    send_all(&mut fe, 0, &frames(3, 64));
    sw.wait_for(5, "dump-ports rx after reconnect", || {
        rx_packets(&sw, &br, 1) == 18
    });
}
