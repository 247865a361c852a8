//! fvs-vswitchd's control surface end to end: fvs-ofctl's commands and
//! errors (diff-flows checked against the real ovs-ofctl), fvs-appctl's
//! commands, PMD pinning, ports added and removed under traffic, and the
//! daemon's signals.

mod e2e;

use std::process::Command;
use std::time::Duration;

use e2e::{can_run, serial, text, Host, Switch};

fn write(dir: &std::path::Path, name: &str, body: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, body).expect("write");
    p.display().to_string()
}

#[test]
fn ofctl_commands() {
    if !can_run("ofctl_commands") {
        return;
    }
    let _serial = serial();
    let sw = Switch::start();
    let br = e2e::bridge_name();
    let tap1 = format!("fvo{}a", std::process::id() % 10_000);
    let tap2 = format!("fvo{}b", std::process::id() % 10_000);
    sw.add_netdev_bridge(&br, &["fail_mode=secure"]);
    for (t, n) in [(&tap1, "1"), (&tap2, "2")] {
        sw.vsctl(&[
            "add-port",
            &br,
            t,
            "--",
            "set",
            "Interface",
            t,
            "type=tap",
            &format!("ofport_request={n}"),
        ]);
    }
    // fail_mode=secure: no NORMAL rule.
    assert_eq!(
        sw.ofctl(&["dump-flows", &br]),
        "NXST_FLOW reply (xid=0x4):\n"
    );

    let flows = write(
        &sw.dir,
        "flows.txt",
        "# two rules and a comment\n\
         priority=10,in_port=1,actions=output:2\n\
         \n\
         table=0,priority=20,ip,nw_dst=10.0.0.0/8,actions=drop\n",
    );
    sw.ofctl(&["add-flows", &br, &flows]);
    assert_eq!(
        sw.ofctl(&["--no-stats", "dump-flows", &br]),
        " priority=20,ip,nw_dst=10.0.0.0/8 actions=drop\n priority=10,in_port=1 actions=output:2\n"
    );
    assert_eq!(
        sw.ofctl(&["--no-stats", "dump-flows", &br, "in_port=1"]),
        " priority=10,in_port=1 actions=output:2\n"
    );
    // Port names work where numbers do.
    assert_eq!(
        sw.ofctl(&["--no-stats", "dump-flows", &br, &format!("in_port={tap1}")]),
        " priority=10,in_port=1 actions=output:2\n"
    );
    sw.ofctl(&["mod-flows", &br, "in_port=1,actions=output:LOCAL"]);
    assert!(sw
        .ofctl(&["dump-flows", &br])
        .contains("in_port=1 actions=LOCAL"));
    let agg = sw.ofctl(&["dump-aggregate", &br]);
    assert!(
        agg.starts_with("NXST_AGGREGATE reply (xid=0x4): packet_count=")
            && agg.ends_with(" flow_count=2\n"),
        "{agg}"
    );

    // --strict deletes only the exact rule.
    sw.ofctl(&["--strict", "del-flows", &br, "ip,nw_dst=10.0.0.0/8"]);
    assert_eq!(
        sw.ofctl(&["dump-flows", &br]).lines().count(),
        3,
        "non-strict priority must not match strictly"
    );
    sw.ofctl(&[
        "--strict",
        "del-flows",
        &br,
        "priority=20,ip,nw_dst=10.0.0.0/8",
    ]);
    assert_eq!(
        sw.ofctl(&["--no-stats", "dump-flows", &br]),
        " priority=10,in_port=1 actions=LOCAL\n"
    );

    // replace-flows makes the table equal to the file; diff-flows agrees with ovs-ofctl.
    let wanted = write(
        &sw.dir,
        "wanted.txt",
        "priority=5,arp,actions=NORMAL\npriority=10,in_port=1,actions=output:2\n",
    );
    sw.ofctl(&["replace-flows", &br, &wanted]);
    assert_eq!(
        sw.ofctl(&["--no-stats", "dump-flows", &br]),
        " priority=10,in_port=1 actions=output:2\n priority=5,arp actions=NORMAL\n"
    );
    assert_eq!(sw.ofctl(&["diff-flows", &br, &wanted]), "");
    let other = write(
        &sw.dir,
        "other.txt",
        "priority=5,arp,actions=drop\npriority=7,udp,actions=output:1\n",
    );
    let ours = sw.ofctl(&["diff-flows", &wanted, &other]);
    // ovs-ofctl lists the flows in hash order; compare the lines as a set.
    let sorted = |s: &str| {
        let mut v: Vec<String> = s.lines().map(str::to_string).collect();
        v.sort();
        v
    };
    if let Ok(o) = Command::new("ovs-ofctl")
        .args(["diff-flows", &wanted, &other])
        .output()
    {
        assert_eq!(
            sorted(&ours),
            sorted(&text(&o.stdout)),
            "diff-flows differs from ovs-ofctl's"
        );
    } else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "ovs-ofctl is required under CI=true"
        );
    }
    assert!(
        ours.contains("-priority=5,arp actions=NORMAL")
            && ours.contains("+priority=7,udp actions=output:1"),
        "{ours}"
    );

    let tables = sw.ofctl(&["dump-tables", &br]);
    assert!(
        tables.starts_with("OFPST_TABLE reply (xid=0x2):\n  table 0:\n    active=2, lookup="),
        "{tables}"
    );
    let ports = sw.ofctl(&["dump-ports", &br, "2"]);
    assert!(
        ports.starts_with("OFPST_PORT reply (xid=0x2): 1 ports\n  port  2: rx pkts="),
        "{ports}"
    );
    let showed = sw.ofctl(&["show", &br]);
    assert!(
        showed.starts_with("OFPT_FEATURES_REPLY (xid=0x2): dpid:"),
        "{showed}"
    );
    assert!(
        showed.contains(&format!(" 1({tap1}): addr:"))
            && showed.contains(&format!(" LOCAL({br}): addr:")),
        "{showed}"
    );

    // Errors: one line, exit 1, nothing changed.
    let before = sw.ofctl(&["--no-stats", "dump-flows", &br]);
    for (args, expect) in [
        (
            vec!["add-flow", &br, "in_port=1,actions=frobnicate"],
            "fvs-ofctl: unknown action frobnicate\n",
        ),
        (
            vec!["add-flow", "br9", "actions=drop"],
            "fvs-ofctl: br9 is not a bridge or a socket\n",
        ),
        (vec!["dump-flows"], ""),
        (
            vec!["frobnicate", &br],
            "fvs-ofctl: unknown command 'frobnicate'; use --help for help\n",
        ),
    ] {
        let o = sw.ofctl_out(&args);
        let err = text(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err:?}");
        assert!(err.starts_with("fvs-ofctl: "), "{err}");
        if !expect.is_empty() {
            assert_eq!(err, expect);
        }
    }
    let bad = write(
        &sw.dir,
        "bad.txt",
        "priority=1,actions=drop\npriority=2,in_port=x y,actions=drop\n",
    );
    let o = sw.ofctl_out(&["add-flows", &br, &bad]);
    assert!(
        text(&o.stderr).starts_with(&format!("fvs-ofctl: {bad}:2: ")),
        "{}",
        text(&o.stderr)
    );
    assert_eq!(
        sw.ofctl(&["--no-stats", "dump-flows", &br]),
        before,
        "a failed add-flows changed the table"
    );
}

#[test]
fn appctl_commands_pinning_and_signals() {
    if !can_run("appctl_commands_pinning_and_signals") {
        return;
    }
    let _serial = serial();
    let sw = Switch::start();
    let br = e2e::bridge_name();
    let h1 = Host::new("10.80.0.1/24");
    let h2 = Host::new("10.80.0.2/24");
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let pmd_core = cores - 1;
    sw.vsctl(&[
        "set",
        "Open_vSwitch",
        ".",
        "other_config:pmd-sleep-max=500",
        &format!("other_config:pmd-cpu-mask={:#x}", 1u64 << pmd_core),
        "other_config:some-unknown-key=kept",
    ]);
    assert_eq!(
        sw.get("Open_vSwitch", ".", "other_config:some-unknown-key"),
        "kept"
    );
    sw.add_netdev_bridge(&br, &[]);
    sw.vsctl(&["add-port", &br, &h1.port]);
    sw.vsctl(&["add-port", &br, &h2.port]);

    // The PMD thread runs on the pmd-cpu-mask core, and says so.
    let rxq = sw.appctl(&["dpif-netdev/pmd-rxq-show"]);
    assert!(
        rxq.contains(&format!(
            "pmd thread numa_id 0 core_id {pmd_core}:\n  isolated : false\n"
        )),
        "{rxq}"
    );
    assert!(
        rxq.contains(&format!(
            "  port: {:<16}  queue-id:  0 (enabled)   pmd usage:",
            h1.port
        )),
        "{rxq}"
    );
    let pid = sw.pid.expect("pid");
    let mut pinned = false;
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))
        .expect("tasks")
        .flatten()
    {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if comm.trim().starts_with("pmd-c") {
            let status = std::fs::read_to_string(task.path().join("status")).unwrap_or_default();
            let allowed = status
                .lines()
                .find(|l| l.starts_with("Cpus_allowed_list:"))
                .unwrap_or("");
            assert_eq!(
                allowed.split_whitespace().nth(1),
                Some(pmd_core.to_string().as_str()),
                "{comm}: {allowed}"
            );
            pinned = true;
        }
    }
    assert!(pinned, "no PMD thread found");

    assert!(h1.ping(&h2.ip, 3));
    let stats = sw.appctl(&["dpif-netdev/pmd-stats-show"]);
    assert!(
        stats.starts_with(&format!(
            "pmd thread numa_id 0 core_id {pmd_core}:\n  packets received: "
        )),
        "{stats}"
    );
    let received = e2e::field(&stats, "packets received: ");
    assert!(received >= 6, "{stats}");
    let perf = sw.appctl(&["dpif-netdev/pmd-perf-show"]);
    assert!(
        perf.contains("Measurement duration:")
            && perf.contains("  Iterations:")
            && perf.contains("  Rx packets:"),
        "{perf}"
    );
    sw.appctl(&["dpif-netdev/pmd-stats-clear"]);
    let stats = sw.appctl(&["dpif-netdev/pmd-stats-show"]);
    assert!(
        e2e::field(&stats, "packets received: ") < received,
        "{stats}"
    );
    assert_eq!(
        sw.appctl(&["dpif-netdev/pmd-rxq-rebalance"]),
        "pmd rxq rebalance requested.\n"
    );

    // Megaflows with masks and counters; the trace of the same packet.
    let dp = sw.appctl(&["dpctl/dump-flows"]);
    assert!(
        dp.starts_with(&format!("flow-dump from pmd on cpu core: {pmd_core}\n")),
        "{dp}"
    );
    assert!(
        dp.lines()
            .skip(1)
            .all(|l| l.starts_with("recirc_id(0),in_port(") && l.contains(", packets:")),
        "{dp}"
    );
    let trace = sw.appctl(&[
        "ofproto/trace",
        &br,
        &format!("in_port={},icmp,nw_dst={}", h1.port, h2.ip),
    ]);
    assert!(trace.starts_with("Flow: icmp,in_port=1,"), "{trace}");
    assert!(
        trace.contains(&format!(
            "bridge(\"{br}\")\n{}\n 0. priority 0\n    NORMAL\n",
            "-".repeat(br.len() + 10)
        )),
        "{trace}"
    );
    assert!(trace.contains("\nDatapath actions: "), "{trace}");
    let o = sw.appctl_out(&["ofproto/trace", "br9", "in_port=1"]);
    assert_eq!(o.status.code(), Some(2));

    assert!(sw
        .appctl(&["version"])
        .starts_with("fvs-vswitchd (Ferrous vSwitch) "));
    sw.appctl(&["vlog/set", "bridge:dbg"]);
    assert!(sw
        .appctl(&["vlog/list"])
        .lines()
        .any(|l| l.starts_with("bridge") && l.contains("DBG")));
    assert_eq!(sw.appctl_out(&["vlog/set", "loud"]).status.code(), Some(2));
    let o = sw.appctl_out(&["no/such-command"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o.stderr).contains("\"no/such-command\" is not a valid command"),
        "{}",
        text(&o.stderr)
    );

    // A port added and removed while traffic flows: the others lose nothing.
    let pinger = {
        let ns = h1.ns.clone();
        let ip = h2.ip.clone();
        std::thread::spawn(move || {
            Command::new("ip")
                .args([
                    "netns", "exec", &ns, "ping", "-c", "40", "-i", "0.05", "-W", "1", "-q", &ip,
                ])
                .output()
                .expect("ping")
        })
    };
    let tap = format!("fva{}", std::process::id() % 10_000);
    std::thread::sleep(Duration::from_millis(300));
    sw.vsctl(&[
        "add-port",
        &br,
        &tap,
        "--",
        "set",
        "Interface",
        &tap,
        "type=tap",
    ]);
    sw.vsctl(&["del-port", &br, &tap]);
    let out = pinger.join().expect("pinger");
    let summary = text(&out.stdout);
    assert!(
        summary.contains(" 0% packet loss"),
        "traffic stopped while a port came and went:\n{summary}"
    );

    // SIGHUP reopens the log: a moved-away log file is recreated.
    let log = sw.dir.join("log/fvs-vswitchd.log");
    std::fs::rename(&log, sw.dir.join("log/old.log")).expect("rename");
    let br1 = e2e::bridge_name();
    // SAFETY: signals the daemon this test started.
    unsafe { libc::kill(pid, libc::SIGHUP) };
    sw.wait_for(5, "log reopened", || {
        sw.vsctl(&["--may-exist", "add-br", &br1]);
        std::fs::read_to_string(&log).is_ok_and(|l| l.contains(&br1))
    });

    // exit --cleanup: the daemon goes, and the kernel devices it made with it.
    assert!(std::path::Path::new(&format!("/sys/class/net/{br}")).exists());
    sw.appctl(&["exit", "--cleanup"]);
    sw.wait_for(10, "daemon exit", || !sw.alive());
    // The kernel unregisters a TAP device shortly after its last descriptor closes.
    sw.wait_for(5, "bridge device removed", || {
        !std::path::Path::new(&format!("/sys/class/net/{br}")).exists()
    });
    assert!(!sw.socket().exists() && !sw.pidfile().exists());
}

/// SIGTERM: a clean shutdown that removes the devices the daemon made.
#[test]
fn sigterm_cleans_up() {
    if !can_run("sigterm_cleans_up") {
        return;
    }
    let _serial = serial();
    let mut sw = Switch::start();
    let br = e2e::bridge_name();
    sw.add_netdev_bridge(&br, &[]);
    assert!(std::path::Path::new(&format!("/sys/class/net/{br}")).exists());
    sw.kill(libc::SIGTERM);
    // The kernel unregisters a TAP device shortly after its last descriptor closes.
    sw.wait_for(5, "bridge device removed", || {
        !std::path::Path::new(&format!("/sys/class/net/{br}")).exists()
    });
    assert!(sw.log().contains("exiting"), "{}", sw.log());
    assert!(!sw.socket().exists());
}
