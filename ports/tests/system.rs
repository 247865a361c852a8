//! `type=system` ports on the root-namespace end of a veth pair whose other
//! end sits in a network namespace, driven as a PMD thread would.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use fvs_datapath::netdev::{Netdev, NetdevError};
use fvs_datapath::packet::{Batch, PacketPool};
use fvs_ports::SystemPort;

const SEC: Duration = Duration::from_secs(1);
const ME: [u8; 6] = [0x02, 0xf5, 0, 0, 0, 1];

fn pool() -> Arc<PacketPool> {
    Arc::new(PacketPool::new(2048, false).unwrap())
}

#[test]
fn frames_cross_both_ways_byte_for_byte() {
    if !privileged() {
        return;
    }
    let v = Veth::new("10.0.0.2");
    let pool = pool();
    let port = SystemPort::open(&v.host, &v.host, 1, pool.clone()).unwrap();
    assert_eq!(
        (port.name(), port.kind(), port.ifname()),
        (v.host.as_str(), "system", v.host.as_str())
    );
    let mut rx = Rx::new(port.open_rxq(0).unwrap());
    let mut tx = port.open_txq(0).unwrap();
    let peer = v.ns.run(|| RawSock::bind(&v.peer));
    let peer_mac = v.peer_mac();

    // In: from the namespace to the port, smallest to largest frame.
    let sent: Vec<Vec<u8>> = [60, 61, 512, 1514]
        .iter()
        .enumerate()
        .map(|(i, &len)| test_frame(ME, peer_mac, &[b'i', b'n', i as u8], len))
        .collect();
    for f in &sent {
        peer.send(f);
    }
    let mut got = Vec::new();
    assert!(wait_until(2 * SEC, || {
        got.extend(rx.poll().into_iter().filter(|f| has_tag(f, b"in")));
        got.len() == sent.len()
    }));
    assert_eq!(got, sent);

    // Out: one batch from the port to the namespace.
    let out: Vec<Vec<u8>> = [60, 1000, 1514]
        .iter()
        .enumerate()
        .map(|(i, &len)| test_frame(peer_mac, ME, &[b'o', b'u', b't', i as u8], len))
        .collect();
    send(tx.as_mut(), &pool, &out);
    let arrived = peer.collect_for(SEC / 2, |f| has_tag(f, b"out"));
    assert_eq!(arrived, out);

    // The port's own transmissions do not come back to it.
    rx.collect_for(SEC / 2, |_| true);
    assert!(
        !rx.seen.iter().any(|f| has_tag(f, b"out")),
        "the port received what it sent"
    );

    let s = port.stats();
    assert_eq!(s.rx_packets, rx.seen.len() as u64);
    assert_eq!(s.rx_bytes, rx.seen_bytes());
    assert_eq!(s.tx_packets, 3);
    assert_eq!(s.tx_bytes, 60 + 1000 + 1514);
    assert_eq!(
        (s.rx_dropped, s.rx_errors, s.tx_dropped, s.tx_errors),
        (0, 0, 0, 0)
    );
}

#[test]
fn the_namespace_kernel_answers_arp_and_ping() {
    if !privileged() {
        return;
    }
    let v = Veth::new("10.0.0.2");
    let pool = pool();
    let port = SystemPort::open(&v.host, &v.host, 1, pool.clone()).unwrap();
    let mut rx = Rx::new(port.open_rxq(0).unwrap());
    let mut tx = port.open_txq(0).unwrap();
    let (me_ip, peer_ip) = ([10, 0, 0, 1], [10, 0, 0, 2]);

    send(tx.as_mut(), &pool, &[arp_request(ME, me_ip, peer_ip)]);
    let reply = rx.wait_for(2 * SEC, |f| arp_reply_from(f, peer_ip, ME).is_some());
    let reply = reply.expect("an ARP reply from the namespace");
    assert_eq!(arp_reply_from(&reply, peer_ip, ME), Some(v.peer_mac()));

    let data: Vec<u8> = (0..56).collect();
    let ping = eth(
        v.peer_mac(),
        ME,
        0x0800,
        &ipv4(me_ip, peer_ip, 1, &icmp_echo(0x4242, 7, &data)),
    );
    send(tx.as_mut(), &pool, &[ping]);
    let pong = rx.wait_for(2 * SEC, |f| {
        echo_reply_data(f, peer_ip, 0x4242, 7).is_some()
    });
    assert_eq!(
        echo_reply_data(&pong.expect("an echo reply"), peer_ip, 0x4242, 7),
        Some(data)
    );
    assert_eq!(port.stats().tx_packets, 2);
}

/// The kernel hands a received VLAN tag apart from the frame; the port
/// puts it back in place, with its TPID.
#[test]
fn vlan_tags_cross_in_place() {
    if !privileged() {
        return;
    }
    let v = Veth::new("10.0.0.2");
    let pool = pool();
    let port = SystemPort::open(&v.host, &v.host, 1, pool.clone()).unwrap();
    let mut rx = Rx::new(port.open_rxq(0).unwrap());
    let mut tx = port.open_txq(0).unwrap();

    // A tagged ARP request to the namespace's VLAN 100 interface, whose
    // answer comes back tagged (if the kernel has 802.1Q devices).
    let vlan_if = format!("{}.7", v.peer);
    let ns = &v.ns.0;
    if ip_ok(&format!(
        "-n {ns} link add link {} name {vlan_if} type vlan id 100",
        v.peer
    )) {
        ip(&format!("-n {ns} addr add 10.0.100.2/24 dev {vlan_if}"));
        ip(&format!("-n {ns} link set {vlan_if} up"));
        let mut req = arp_request(ME, [10, 0, 100, 1], [10, 0, 100, 2]);
        req.splice(12..12, [0x81, 0x00, 0x00, 100]);
        send(tx.as_mut(), &pool, &[req]);
        let reply = rx.wait_for(2 * SEC, |f| {
            f.len() >= 46 && f[12..18] == [0x81, 0, 0, 100, 8, 6] && f[24..26] == [0, 2]
        });
        let reply = reply.expect("a tagged ARP reply");
        assert_eq!(&reply[..6], &ME);
        assert_eq!(&reply[32..36], &[10, 0, 100, 2]);
    } else {
        let _ = tx;
        eprintln!("no 802.1Q devices in this kernel: tagged ARP part skipped");
    }

    // An 802.1ad outer tag over an 802.1Q inner one, byte for byte.
    let peer = v.ns.run(|| RawSock::bind(&v.peer));
    let mut qinq = test_frame(ME, v.peer_mac(), b"qinq", 100);
    qinq.splice(12..12, [0x88, 0xa8, 0x60, 0x05, 0x81, 0x00, 0x00, 0x64]);
    peer.send(&qinq);
    let got = rx.wait_for(2 * SEC, |f| {
        f.len() == qinq.len() && f[12..14] == [0x88, 0xa8]
    });
    assert_eq!(got, Some(qinq));
}

/// A UDP datagram and a TCP transfer between two namespaces, through two
/// ports and a thread that forwards between them. The namespaces' veths
/// keep their default offloads, so the frames arrive with partial
/// checksums and as TSO super-frames, which the port must finish.
#[test]
fn offloaded_udp_and_tcp_cross_two_ports() {
    if !privileged() {
        return;
    }
    let (a, b) = (Veth::new("10.0.0.1"), Veth::new("10.0.0.2"));
    let pool = pool();
    let pa = SystemPort::open(&a.host, &a.host, 1, pool.clone()).unwrap();
    let pb = SystemPort::open(&b.host, &b.host, 1, pool.clone()).unwrap();
    let stop = AtomicBool::new(false);
    let total = 4 << 20;
    std::thread::scope(|s| {
        let (mut ra, mut ta) = (pa.open_rxq(0).unwrap(), pa.open_txq(0).unwrap());
        let (mut rb, mut tb) = (pb.open_rxq(0).unwrap(), pb.open_txq(0).unwrap());
        let stop = &stop;
        s.spawn(move || {
            let mut batch = Batch::new();
            while !stop.load(Ordering::Relaxed) {
                let n = ra.recv(&mut batch);
                tb.send(&mut batch);
                let m = rb.recv(&mut batch);
                ta.send(&mut batch);
                if n + m == 0 {
                    std::thread::sleep(Duration::from_micros(50));
                }
            }
        });

        let server = b.ns.run(|| UdpSocket::bind("10.0.0.2:5000").unwrap());
        server.set_read_timeout(Some(5 * SEC)).unwrap();
        let client = a.ns.run(|| UdpSocket::bind("10.0.0.1:0").unwrap());
        let msg: Vec<u8> = (0..1200u32).map(|i| (i * 7) as u8).collect();
        client.send_to(&msg, "10.0.0.2:5000").unwrap();
        let mut buf = [0u8; 2000];
        let (n, from) = server
            .recv_from(&mut buf)
            .expect("the datagram crosses (its checksum is right)");
        assert_eq!(
            (&buf[..n], from.ip().to_string()),
            (&msg[..], "10.0.0.1".to_string())
        );

        let listener = b.ns.run(|| TcpListener::bind("10.0.0.2:5001").unwrap());
        let receiver = s.spawn(move || {
            let (mut c, _) = listener.accept().unwrap();
            c.set_read_timeout(Some(10 * SEC)).unwrap();
            let mut got = Vec::with_capacity(total);
            c.read_to_end(&mut got).unwrap();
            got
        });
        let data: Vec<u8> = (0..total).map(|i| (i % 251) as u8).collect();
        let mut c = a.ns.run(|| {
            TcpStream::connect_timeout(&"10.0.0.2:5001".parse().unwrap(), 5 * SEC).unwrap()
        });
        c.set_write_timeout(Some(10 * SEC)).unwrap();
        c.write_all(&data).unwrap();
        drop(c);
        let got = receiver.join().unwrap();
        stop.store(true, Ordering::Relaxed);
        assert!(
            got == data,
            "received {} of {} bytes, or wrong ones",
            got.len(),
            total
        );
    });
    let sa = pa.stats();
    assert_eq!((sa.rx_errors, sa.rx_dropped), (0, 0), "{sa:?}");
    // Every segment left port b at wire size, and all of them got there.
    assert!(
        pb.stats().tx_packets as usize >= total / 1500,
        "{:?}",
        pb.stats()
    );
    assert_eq!(pb.stats().tx_errors, 0);
}

#[test]
fn oversized_frames_are_dropped_and_counted() {
    if !privileged() {
        return;
    }
    let v = Veth::new("10.0.0.2");
    ip(&format!("link set {} mtu 9000", v.host));
    ip(&format!("-n {} link set {} mtu 9000", v.ns.0, v.peer));
    let pool = pool();
    let port = SystemPort::open(&v.host, &v.host, 1, pool.clone()).unwrap();
    let mut rx = Rx::new(port.open_rxq(0).unwrap());
    let mut tx = port.open_txq(0).unwrap();
    let peer = v.ns.run(|| RawSock::bind(&v.peer));
    let peer_mac = v.peer_mac();

    // Larger than a pool buffer (2048): never delivered cut short.
    peer.send(&test_frame(ME, peer_mac, b"big", 3000));
    peer.send(&test_frame(ME, peer_mac, b"small", 100));
    let small = rx.wait_for(2 * SEC, |f| has_tag(f, b"small"));
    assert_eq!(small.map(|f| f.len()), Some(100));
    assert!(!rx.seen.iter().any(|f| has_tag(f, b"big")));
    assert_eq!(port.stats().rx_dropped, 1);

    // Longer than the interface's MTU: the kernel refuses that frame
    // alone, the rest of the batch goes.
    ip(&format!("link set {} mtu 1500", v.host));
    let batch = [
        test_frame(peer_mac, ME, b"toolong", 1600),
        test_frame(peer_mac, ME, b"fine", 200),
    ];
    send(tx.as_mut(), &pool, &batch);
    let arrived = peer.collect_for(SEC / 2, |f| has_tag(f, b"toolong") || has_tag(f, b"fine"));
    assert_eq!(arrived, [batch[1].clone()]);
    let s = port.stats();
    assert_eq!((s.tx_packets, s.tx_errors), (1, 1));
}

#[test]
fn link_state_mac_and_mtu_follow_the_interface() {
    if !privileged() {
        return;
    }
    let v = Veth::new("10.0.0.2");
    let port = SystemPort::open(&v.host, &v.host, 1, pool()).unwrap();
    assert_eq!(port.mac(), sysfs_mac(&v.host));
    assert_eq!(port.mtu(), 1500);
    ip(&format!("link set {} mtu 1400", v.host));
    assert_eq!(port.mtu(), 1400);
    assert!(wait_until(2 * SEC, || port.is_up()));
    // The peer going down takes the carrier away.
    ip(&format!("-n {} link set {} down", v.ns.0, v.peer));
    assert!(wait_until(2 * SEC, || !port.is_up()), "carrier still up");
    ip(&format!("-n {} link set {} up", v.ns.0, v.peer));
    assert!(wait_until(2 * SEC, || port.is_up()));
    ip(&format!("link set {} down", v.host));
    assert!(
        wait_until(2 * SEC, || !port.is_up()),
        "still up when administratively down"
    );
}

#[test]
fn queues_are_exclusive_and_dropping_closes_everything() {
    if !privileged() {
        return;
    }
    let v = Veth::new("10.0.0.2");
    let idx = ifindex(&v.host);
    const IFF_PROMISC: u32 = 0x100;
    assert_eq!(packet_sockets_on(idx), 0);
    assert_eq!(if_flags(&v.host) & IFF_PROMISC, 0);

    let port = SystemPort::open(&v.host, &v.host, 2, pool()).unwrap();
    assert_eq!(port.n_rxq(), 2);
    assert_eq!(packet_sockets_on(idx), port.n_rxq() + port.n_txq());
    assert_ne!(if_flags(&v.host) & IFF_PROMISC, 0, "not promiscuous");

    let q0 = port.open_rxq(0).unwrap();
    assert!(matches!(
        port.open_rxq(0),
        Err(NetdevError::QueueBusy { queue: 0, .. })
    ));
    assert!(matches!(
        port.open_rxq(2),
        Err(NetdevError::NoSuchQueue { queue: 2, .. })
    ));
    assert!(matches!(
        port.open_txq(port.n_txq()),
        Err(NetdevError::NoSuchQueue { .. })
    ));
    drop(q0);
    let q0 = port.open_rxq(0).unwrap();
    let q1 = port.open_rxq(1).unwrap();
    let t0 = port.open_txq(0).unwrap();

    // A queue outlives the port; the sockets close with the last of them.
    drop(port);
    assert!(packet_sockets_on(idx) > 0);
    drop((q0, q1, t0));
    assert_eq!(packet_sockets_on(idx), 0, "sockets left open");
    assert_eq!(if_flags(&v.host) & IFF_PROMISC, 0, "still promiscuous");
}

#[test]
fn two_receive_queues_share_the_flows() {
    if !privileged() {
        return;
    }
    let v = Veth::new("10.0.0.2");
    let port = SystemPort::open(&v.host, &v.host, 2, pool()).unwrap();
    let mut q = [
        Rx::new(port.open_rxq(0).unwrap()),
        Rx::new(port.open_rxq(1).unwrap()),
    ];
    let peer = v.ns.run(|| RawSock::bind(&v.peer));
    let peer_mac = v.peer_mac();
    let flows = 64u16;
    for sport in 0..flows {
        let mut udp = vec![0u8; 8 + 4];
        udp[0..2].copy_from_slice(&(10000 + sport).to_be_bytes());
        udp[2..4].copy_from_slice(&7u16.to_be_bytes());
        udp[4..6].copy_from_slice(&12u16.to_be_bytes());
        udp[8..12].copy_from_slice(b"fvs!");
        peer.send(&eth(
            ME,
            peer_mac,
            0x0800,
            &ipv4([10, 0, 0, 2], [10, 0, 0, 9], 17, &udp),
        ));
    }
    let is_ours = |f: &[u8]| f.len() >= 46 && f[12..14] == [8, 0] && f[30..34] == [10, 0, 0, 9];
    let mut n = [0usize; 2];
    assert!(wait_until(2 * SEC, || {
        for (i, rx) in q.iter_mut().enumerate() {
            n[i] += rx.poll().iter().filter(|f| is_ours(f)).count();
        }
        n[0] + n[1] == flows as usize
    }));
    assert!(n[0] > 0 && n[1] > 0, "one queue got every flow: {n:?}");
    assert_eq!(
        port.stats().rx_packets,
        (q[0].seen.len() + q[1].seen.len()) as u64
    );
}

/// With every pool buffer in use, frames wait in the ring instead of
/// being lost, and arrive once buffers come back.
#[test]
fn an_empty_pool_leaves_frames_in_the_ring() {
    if !privileged() {
        return;
    }
    let v = Veth::new("10.0.0.2");
    let pool = Arc::new(PacketPool::new(8, false).unwrap());
    let port = SystemPort::open(&v.host, &v.host, 1, pool.clone()).unwrap();
    let mut rx = Rx::new(port.open_rxq(0).unwrap());
    let peer = v.ns.run(|| RawSock::bind(&v.peer));
    let held: Vec<_> = std::iter::from_fn(|| pool.alloc()).collect();
    assert_eq!(held.len(), 8);
    for i in 0..3 {
        peer.send(&test_frame(ME, v.peer_mac(), &[b'w', i], 80));
    }
    std::thread::sleep(SEC / 5);
    assert!(rx.poll().is_empty());
    drop(held);
    let mut n = 0;
    assert!(wait_until(2 * SEC, || {
        n += rx.poll().iter().filter(|f| has_tag(f, b"w")).count();
        n == 3
    }));
    assert_eq!(port.stats().rx_dropped, 0);
}

/// Needs no privilege: the lookups fail before any socket is opened.
#[test]
fn a_missing_interface_is_a_clear_error() {
    let e = SystemPort::open("p9", "fvsnosuch0", 1, pool())
        .err()
        .unwrap();
    assert_eq!(
        e.to_string(),
        "could not open network device fvsnosuch0 (No such device)"
    );
    let e = SystemPort::open("p9", "bad/name", 1, pool()).err().unwrap();
    let e = e.to_string();
    assert!(
        e.starts_with("p9: invalid interface name \"bad/name\""),
        "{e}"
    );
    let e = SystemPort::open("p9", "lo", 1, pool()).err().unwrap();
    assert_eq!(e.to_string(), "p9: \"lo\" is not an Ethernet device");
}
