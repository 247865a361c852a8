//! The seed walkthrough end to end: two hosts in network namespaces, each
//! on a veth whose peer is a port of a netdev bridge; OpenFlow rules added
//! with fvs-ofctl carry ping and a 10 MB TCP transfer; the rule counters
//! match what crossed; after del-flows nothing crosses.

mod e2e;

use e2e::{can_run, field, flow_packets, serial, tcp_transfer, Host, Switch};

/// The walkthrough with each host's port added by the fvs-vsctl arguments
/// `port_args` gives (with the Interface's name).
/// With `dpdk`, the switch is set up as the seed sets up OVS-DPDK first
/// (dpdk-init, dpdk-socket-mem, dpdk-lcore-mask): a hugepage packet pool.
fn walkthrough(
    test: &str,
    dpdk: bool,
    port_args: impl Fn(&Host, u16, &str) -> (String, Vec<String>),
) {
    if !can_run(test) {
        return;
    }
    let _serial = serial();
    let sw = Switch::start();
    let br = e2e::bridge_name();
    let h1 = Host::new("10.77.0.1/24");
    let h2 = Host::new("10.77.0.2/24");
    // 32 MB of pool: 16 pages of 2 MB. `true` insists on hugepages (as
    // under CI, where run-tests.sh reserves them); `try` falls back.
    let free_pages = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix("HugePages_Free:")
                .and_then(|v| v.trim().parse::<u64>().ok())
        })
        .unwrap_or(0);
    let hugepages = free_pages >= 16 || std::env::var("CI").as_deref() == Ok("true");
    if dpdk {
        let init = if hugepages {
            "other_config:dpdk-init=true"
        } else {
            "other_config:dpdk-init=try"
        };
        sw.vsctl(&[
            "--no-wait",
            "set",
            "Open_vSwitch",
            ".",
            init,
            "other_config:dpdk-socket-mem=32",
            "other_config:dpdk-lcore-mask=0x1",
        ]);
    }
    sw.add_netdev_bridge(&br, &[]);
    let mut names = Vec::new();
    for (h, ofport) in [(&h1, 1u16), (&h2, 2)] {
        let (name, args) = port_args(h, ofport, &br);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        sw.vsctl(&args);
        names.push(name);
    }
    assert_eq!(sw.get("Interface", &names[0], "ofport"), "1");
    assert_eq!(sw.get("Interface", &names[1], "ofport"), "2");
    assert_eq!(sw.get("Interface", &names[0], "link_state"), "up");
    if dpdk && hugepages {
        assert_eq!(
            sw.get("Open_vSwitch", ".", "dpdk_initialized"),
            "true",
            "{}",
            sw.log()
        );
    }

    sw.ofctl(&["del-flows", &br]);
    sw.ofctl(&["add-flow", &br, "in_port=1,actions=output:2"]);
    sw.ofctl(&["add-flow", &br, "in_port=2,actions=output:1"]);

    assert!(
        h1.ping(&h2.ip, 3),
        "ping across the bridge failed\n{}",
        sw.log()
    );
    assert!(
        tcp_transfer(&h2, &h1, &h2.ip, 5201, 10 << 20),
        "10 MB TCP transfer failed\n{}",
        sw.log()
    );

    // Rule counters equal what the ports received: every packet that came
    // in on port 1 matched the in_port=1 rule, and so on.
    let dump = sw.ofctl(&["dump-flows", &br]);
    let ports = sw.ofctl(&["dump-ports", &br]);
    let rx = |p: &str| {
        let line = ports
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("port  {p}:")))
            .expect("port line");
        field(line, "rx pkts=")
    };
    let f1 = flow_packets(&dump, "in_port=1");
    let f2 = flow_packets(&dump, "in_port=2");
    assert!(
        f1 > 7000,
        "10 MB is more than 7000 full-size segments, rule saw {f1}\n{dump}"
    );
    assert_eq!(f1, rx("1"), "in_port=1 rule vs port 1 rx\n{dump}\n{ports}");
    assert_eq!(f2, rx("2"), "in_port=2 rule vs port 2 rx\n{dump}\n{ports}");
    // Interface:statistics says the same (written every 5 s).
    sw.wait_for(12, "statistics in the database", || {
        let o = sw.vsctl_out(&["get", "Interface", &names[0], "statistics:rx_packets"]);
        e2e::text(&o.stdout)
            .trim()
            .parse::<u64>()
            .is_ok_and(|n| n >= f1)
    });

    // The datapath shows the megaflows it built, with counters.
    let flows = sw.appctl(&["dpctl/dump-flows"]);
    assert!(
        flows.contains("in_port(1)") || flows.contains("in_port("),
        "{flows}"
    );
    let stats = sw.appctl(&["dpif-netdev/pmd-stats-show"]);
    assert!(stats.contains("packets received:"), "{stats}");

    sw.ofctl(&["del-flows", &br]);
    assert!(sw.ofctl(&["dump-flows", &br]).lines().count() <= 1);
    assert!(!h1.ping(&h2.ip, 2), "ping must fail without flows");
}

#[test]
fn seed_walkthrough_system_ports() {
    walkthrough("seed_walkthrough_system_ports", false, |h, ofport, br| {
        let p = h.port.clone();
        let args = vec![
            "add-port".into(),
            br.to_string(),
            p.clone(),
            "--".into(),
            "set".into(),
            "Interface".into(),
            p.clone(),
            "type=system".into(),
            format!("ofport_request={ofport}"),
        ];
        (p, args)
    });
}

/// As the seed does it: `type=dpdk` ports named `dpdk-pN`, here with
/// `net_af_packet` devargs onto the veth instead of a VFIO PCI address.
#[test]
fn seed_walkthrough_dpdk_af_packet_ports() {
    walkthrough(
        "seed_walkthrough_dpdk_af_packet_ports",
        true,
        |h, ofport, br| {
            let name = format!("dpdk-p{ofport}");
            let args = vec![
                "add-port".into(),
                br.to_string(),
                name.clone(),
                "--".into(),
                "set".into(),
                "Interface".into(),
                name.clone(),
                "type=dpdk".into(),
                format!(
                    "options:dpdk-devargs=net_af_packet{ofport},iface={}",
                    h.port
                ),
                format!("ofport_request={ofport}"),
            ];
            (name, args)
        },
    );
}

/// A new bridge is a learning switch (`priority=0 actions=NORMAL`); an
/// access VLAN on one port cuts its host off from the other two.
#[test]
fn normal_with_access_vlan() {
    if !can_run("normal_with_access_vlan") {
        return;
    }
    let _serial = serial();
    let sw = Switch::start();
    let br = e2e::bridge_name();
    let h1 = Host::new("10.78.0.1/24");
    let h2 = Host::new("10.78.0.2/24");
    let h3 = Host::new("10.78.0.3/24");
    sw.add_netdev_bridge(&br, &[]);
    for h in [&h1, &h2, &h3] {
        sw.vsctl(&["add-port", &br, &h.port]);
    }
    let dump = sw.ofctl(&["dump-flows", &br]);
    assert!(dump.contains("priority=0 actions=NORMAL"), "{dump}");

    assert!(h1.ping(&h2.ip, 2), "h1 -> h2 through NORMAL\n{}", sw.log());
    assert!(h1.ping(&h3.ip, 2), "h1 -> h3 through NORMAL (no VLANs yet)");

    // The bridge learned where each host is.
    let fdb = sw.appctl(&["fdb/show", &br]);
    assert!(
        fdb.starts_with(" port  VLAN  MAC                Age\n"),
        "{fdb}"
    );
    for h in [&h1, &h2, &h3] {
        assert!(fdb.contains(&h.mac), "{} not learned:\n{fdb}", h.mac);
    }

    sw.vsctl(&["set", "Port", &h3.port, "tag=30"]);
    assert_eq!(sw.get("Port", &h3.port, "tag"), "30");
    assert!(h1.ping(&h2.ip, 2), "h1 -> h2 still in VLAN 0");
    assert!(
        !h1.ping(&h3.ip, 2),
        "h3 is in VLAN 30 now: h1 must not reach it"
    );
    assert!(
        !h2.ping(&h3.ip, 2),
        "h3 is in VLAN 30 now: h2 must not reach it"
    );
    let fdb = sw.appctl(&["fdb/show", &br]);
    assert!(
        !fdb.lines()
            .any(|l| l.contains(&h1.mac) && l.split_whitespace().nth(1) == Some("30")),
        "{fdb}"
    );

    // Same VLAN again: reachable.
    sw.vsctl(&["set", "Port", &h1.port, "tag=30"]);
    assert!(
        h1.ping(&h3.ip, 2),
        "h1 and h3 both in VLAN 30\n{}",
        sw.log()
    );
    // fdb/flush forgets every entry: once some entry has aged, flushing
    // leaves only entries learned since (hosts keep sending ARP probes).
    let ages = |fdb: &str| -> Vec<u64> {
        fdb.lines()
            .skip(1)
            .filter_map(|l| l.split_whitespace().nth(3)?.parse().ok())
            .collect()
    };
    sw.wait_for(20, "an aged MAC entry", || {
        ages(&sw.appctl(&["fdb/show", &br])).iter().any(|&a| a >= 3)
    });
    assert_eq!(
        sw.appctl(&["fdb/flush", &br]),
        "table successfully flushed\n"
    );
    let fdb = sw.appctl(&["fdb/show", &br]);
    assert!(
        ages(&fdb).iter().all(|&a| a <= 1),
        "entries survived the flush:\n{fdb}"
    );
}
