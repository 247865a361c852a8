//! `type=tap` and `type=internal` ports: TAP devices made inside a network
//! namespace (so that addresses given to them touch nothing of the host),
//! talking with that namespace's kernel.

mod common;

use std::collections::BTreeMap;
use std::net::UdpSocket;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use fvs_datapath::netdev::Netdev;
use fvs_datapath::packet::PacketPool;
use fvs_ports::{PortError, TapPort};

const SEC: Duration = Duration::from_secs(1);
const ME: [u8; 6] = [0x02, 0xf5, 0, 0, 0, 2];

fn pool() -> Arc<PacketPool> {
    Arc::new(PacketPool::new(512, false).unwrap())
}

fn exists(ns: &Netns, ifname: &str) -> bool {
    ip_ok(&format!("-n {} link show {ifname}", ns.0))
}

#[test]
fn the_device_lives_as_long_as_the_port() {
    if !privileged() {
        return;
    }
    let ns = Netns::new();
    let name = unique("t");
    let port = ns.run(|| TapPort::create(&name, &name, pool()).unwrap());
    assert!(exists(&ns, &name));
    let show = ip(&format!("-n {} -o link show {name}", ns.0));
    assert!(show.contains("state UP") || show.contains(",UP"), "{show}");
    assert_eq!(
        (port.name(), port.kind(), port.ifname()),
        (name.as_str(), "tap", name.as_str())
    );
    assert_eq!(port.mac(), ns.mac(&name));
    assert_eq!(port.mtu(), 1500);
    assert!(port.is_up());
    let (rxq, txq) = (port.open_rxq(0).unwrap(), port.open_txq(0).unwrap());
    drop(port);
    assert!(exists(&ns, &name), "the queues still hold the device");
    drop((rxq, txq));
    assert!(
        wait_until(2 * SEC, || !exists(&ns, &name)),
        "the device outlived the port"
    );
}

#[test]
fn the_kernel_answers_arp_and_ping_through_the_tap() {
    if !privileged() {
        return;
    }
    let ns = Netns::new();
    let name = unique("t");
    let pool = pool();
    let port = ns.run(|| TapPort::create(&name, &name, pool.clone()).unwrap());
    ip(&format!("-n {} addr add 10.0.0.1/24 dev {name}", ns.0));
    let mut rx = Rx::new(port.open_rxq(0).unwrap());
    let mut tx = port.open_txq(0).unwrap();
    let (host_ip, me_ip) = ([10, 0, 0, 1], [10, 0, 0, 2]);

    send(tx.as_mut(), &pool, &[arp_request(ME, me_ip, host_ip)]);
    let reply = rx.wait_for(2 * SEC, |f| arp_reply_from(f, host_ip, ME).is_some());
    let host_mac = arp_reply_from(&reply.expect("an ARP reply"), host_ip, ME);
    assert_eq!(host_mac, Some(port.mac()));

    let data = b"fvs tap ping".to_vec();
    let ping = eth(
        port.mac(),
        ME,
        0x0800,
        &ipv4(me_ip, host_ip, 1, &icmp_echo(9, 1, &data)),
    );
    send(tx.as_mut(), &pool, std::slice::from_ref(&ping));
    let pong = rx.wait_for(2 * SEC, |f| echo_reply_data(f, host_ip, 9, 1).is_some());
    assert_eq!(
        echo_reply_data(&pong.expect("an echo reply"), host_ip, 9, 1),
        Some(data)
    );

    let s = port.stats();
    assert_eq!((s.tx_packets, s.tx_bytes), (2, 42 + ping.len() as u64));
    assert_eq!(
        (s.rx_packets, s.rx_bytes),
        (rx.seen.len() as u64, rx.seen_bytes())
    );
    assert_eq!(
        (s.rx_dropped, s.rx_errors, s.tx_dropped, s.tx_errors),
        (0, 0, 0, 0)
    );
}

#[test]
fn frames_longer_than_a_buffer_are_dropped_and_counted() {
    if !privileged() {
        return;
    }
    let ns = Netns::new();
    let name = unique("t");
    let port = ns.run(|| TapPort::create(&name, &name, pool()).unwrap());
    ip(&format!("-n {} link set {name} mtu 4000", ns.0));
    ip(&format!("-n {} addr add 10.0.0.1/24 dev {name}", ns.0));
    ip(&format!(
        "-n {} neigh add 10.0.0.2 lladdr 02:f5:00:00:00:02 dev {name}",
        ns.0
    ));
    let mut rx = Rx::new(port.open_rxq(0).unwrap());
    let sock = ns.run(|| UdpSocket::bind("10.0.0.1:0").unwrap());
    sock.send_to(&[1u8; 3000], "10.0.0.2:9").unwrap();
    sock.send_to(b"small", "10.0.0.2:9").unwrap();
    let small = rx.wait_for(2 * SEC, |f| f.len() > 42 && f.ends_with(b"small"));
    assert!(small.is_some(), "the frame after the long one is lost");
    assert!(rx.seen.iter().all(|f| f.len() < 3000));
    assert_eq!(port.stats().rx_dropped, 1);
}

#[test]
fn internal_ports_and_busy_names() {
    if !privileged() {
        return;
    }
    let ns = Netns::new();
    let br = unique("b");
    let opts = BTreeMap::new();
    let port = ns.run(|| fvs_ports::open("internal", &br, &opts, pool()).unwrap());
    assert_eq!((port.name(), port.kind()), (br.as_str(), "internal"));
    assert!(exists(&ns, &br));

    // The device is attached: a second port on it is refused.
    let e = ns.run(|| TapPort::create("again", &br, pool()).err().unwrap());
    assert!(matches!(e, PortError::Busy { .. }), "{e}");
    assert!(
        e.to_string()
            .starts_with(&format!("again: device \"{br}\" is busy")),
        "{e}"
    );

    // A name that belongs to another kind of device.
    let e = ns.run(|| TapPort::create("lo0", "lo", pool()).err().unwrap());
    assert!(e.to_string().contains("not a TAP device"), "{e}");
    drop(port);
    assert!(wait_until(2 * SEC, || !exists(&ns, &br)));
}
