//! `fvs_ports::open`: interface types and `dpdk-devargs` mapped onto the
//! kernel drivers, as the seed's `type=dpdk` commands use them.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use fvs_datapath::packet::PacketPool;

fn pool() -> Arc<PacketPool> {
    Arc::new(PacketPool::new(256, false).unwrap())
}

fn opts(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
    kv.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn af_packet_devargs_open_a_system_port() {
    if !privileged() {
        return;
    }
    let v = Veth::new("10.0.0.2");
    let devargs = format!("net_af_packet0,iface={},qpairs=2,blocksz=4096", v.host);
    let p = fvs_ports::open("dpdk", "p1", &opts(&[("dpdk-devargs", &devargs)]), pool()).unwrap();
    assert_eq!((p.name(), p.kind(), p.n_rxq()), ("p1", "dpdk", 2));
    assert_eq!(p.mac(), sysfs_mac(&v.host));

    // A plain system port takes the interface's name; "" means system, as in OVS.
    let s = fvs_ports::open("", &v.host, &opts(&[("n_rxq", "3")]), pool()).unwrap();
    assert_eq!(
        (s.name(), s.kind(), s.n_rxq()),
        (v.host.as_str(), "system", 3)
    );
    let e = fvs_ports::open(
        "dpdk",
        "p2",
        &opts(&[("dpdk-devargs", "net_af_packet1,iface=fvsnosuch0")]),
        pool(),
    );
    assert_eq!(
        e.err().unwrap().to_string(),
        "could not open network device fvsnosuch0 (No such device)"
    );
}

#[test]
fn tap_devargs_create_the_named_device() {
    if !privileged() {
        return;
    }
    let ns = Netns::new();
    let name = unique("d");
    let o = opts(&[(
        "dpdk-devargs",
        &format!("net_tap0,iface={name},mac=02:f5:00:00:00:0a"),
    )]);
    let p = ns.run(|| fvs_ports::open("dpdk", "p2", &o, pool()).unwrap());
    assert_eq!((p.name(), p.kind()), ("p2", "dpdk"));
    assert_eq!(ns.mac(&name), [2, 0xf5, 0, 0, 0, 10]);
    assert_eq!(p.mac(), [2, 0xf5, 0, 0, 0, 10]);
    drop(p);
    let gone = || !ip_ok(&format!("-n {} link show {name}", ns.0));
    assert!(wait_until(Duration::from_secs(2), gone));

    let t = ns.run(|| fvs_ports::open("tap", &name, &BTreeMap::new(), pool()).unwrap());
    assert_eq!((t.name(), t.kind()), (name.as_str(), "tap"));
}

/// The errors need no privilege: they come before any system call.
#[test]
fn devargs_errors_are_one_clear_line() {
    let cases = [
        ("0000:fe:1f.7", "p1: no PCI device 0000:fe:1f.7"),
        ("net_vhost0,iface=/tmp/sock", "p1: bad dpdk-devargs \"net_vhost0,iface=/tmp/sock\": unsupported device \"net_vhost0\""),
        ("net_af_packet0", "p1: bad dpdk-devargs \"net_af_packet0\": net_af_packet0 needs iface=IF"),
        ("net_af_packet0,iface=x,speed=10", "p1: bad dpdk-devargs \"net_af_packet0,iface=x,speed=10\": unknown argument \"speed\""),
    ];
    for (devargs, want) in cases {
        let e = fvs_ports::open("dpdk", "p1", &opts(&[("dpdk-devargs", devargs)]), pool());
        let msg = e.err().unwrap().to_string();
        assert!(msg.starts_with(want), "{msg}");
        assert!(!msg.contains('\n'));
    }
    let e = fvs_ports::open("dpdk", "p1", &BTreeMap::new(), pool())
        .err()
        .unwrap();
    assert!(
        e.to_string()
            .starts_with("p1: type=dpdk needs options:dpdk-devargs"),
        "{e}"
    );
}
