//! vhost-user ports driven by the test frontend (a virtio-net driver over
//! vhost-user in this crate): negotiation, both directions, chains,
//! indirect tables, mergeable buffers, interrupts as the driver asks for
//! them, several queue pairs, disconnects, reconnection, memory-table
//! changes. No root needed: memfds and unix sockets only.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fvs_datapath::netdev::{Netdev, RxQueue, TxQueue};
use fvs_datapath::packet::{Batch, PacketPool};
use fvs_ports::vhost::backend::feature;
use fvs_ports::vhost::frontend::{frame, Config, Frontend, Listener, BUF_SIZE};
use fvs_ports::vhost::VhostPort;

const A: [u8; 6] = [2, 0, 0, 0, 0, 1];
const B: [u8; 6] = [2, 0, 0, 0, 0, 2];

fn pool() -> Arc<PacketPool> {
    Arc::new(PacketPool::new(4096, false).unwrap())
}

fn sock(tag: &str) -> PathBuf {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    std::env::temp_dir().join(format!("fvs-vhost-{}-{tag}-{n}.sock", std::process::id()))
}

fn wait_until(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A server port with a frontend connected and set up with `cfg`.
fn server_pair(tag: &str, cfg: Config) -> (VhostPort, Frontend) {
    let path = sock(tag);
    let port = VhostPort::server("vhu-test", &path, pool()).unwrap();
    let mut fe = Frontend::connect(&path, cfg).unwrap();
    fe.setup().unwrap();
    wait_until("link up", 5, || port.is_up());
    (port, fe)
}

/// Receives on `rxq` until `n` packets came (or 2 s passed).
fn recv_n(rxq: &mut Box<dyn RxQueue>, n: usize) -> Vec<Vec<u8>> {
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut out = Vec::new();
    let mut b = Batch::new();
    while out.len() < n && Instant::now() < deadline {
        if rxq.recv(&mut b) == 0 {
            std::thread::sleep(Duration::from_micros(200));
        }
        out.extend(b.drain().map(|p| p.data().to_vec()));
    }
    out
}

fn send_frames(txq: &mut Box<dyn TxQueue>, pool: &PacketPool, frames: &[Vec<u8>]) {
    for chunk in frames.chunks(32) {
        let mut b = Batch::new();
        for f in chunk {
            b.push(pool.packet_from(f).unwrap()).unwrap();
        }
        txq.send(&mut b);
        assert!(b.is_empty());
    }
}

#[test]
fn negotiation_status_and_both_directions() {
    let (port, mut fe) = server_pair("basic", Config::default());
    // Features: what the frontend asked for, all offered.
    assert_eq!(fe.features & fe.offered, fe.features);
    assert!(fe.features & feature::F_VERSION_1 != 0);
    let st = port.status();
    assert_eq!(st["mode"], "server");
    assert_eq!(st["status"], "connected");
    assert_eq!(st["num_of_vrings"], "2");
    assert_eq!(st["vring_0_size"], "256");
    assert_eq!(st["features"], format!("0x{:016x}", fe.features));
    assert_eq!((port.n_rxq(), port.n_txq()), (8, 8));

    // Guest → switch.
    let mut rxq = port.open_rxq(0).unwrap();
    assert!(port.open_rxq(0).is_err(), "a queue is taken once");
    let frames: Vec<Vec<u8>> = (0..100).map(|i| frame(B, A, i, 60 + i as usize)).collect();
    let refs: Vec<&[u8]> = frames.iter().map(Vec::as_slice).collect();
    assert_eq!(fe.send(0, &refs), 100);
    let got = recv_n(&mut rxq, 100);
    assert_eq!(got, frames);
    assert_eq!(fe.used_idx(1), 100, "every chain returned");
    // Polling driver (EVENT_IDX, used_event left at 0): one interrupt at most.
    assert!(fe.calls(1) <= 1);

    // Switch → guest.
    let p = pool();
    let mut txq = port.open_txq(0).unwrap();
    fe.post_rx(0, BUF_SIZE);
    let out: Vec<Vec<u8>> = (0..100)
        .map(|i| frame(A, B, i, 64 + 7 * i as usize))
        .collect();
    send_frames(&mut txq, &p, &out);
    let back = fe.recv_n(0, 100, Duration::from_secs(2));
    assert_eq!(back, out);

    let s = port.stats();
    assert_eq!((s.rx_packets, s.tx_packets), (100, 100));
    assert_eq!(
        s.rx_bytes,
        frames.iter().map(|f| f.len() as u64).sum::<u64>()
    );
    assert_eq!(s.tx_bytes, out.iter().map(|f| f.len() as u64).sum::<u64>());
    assert_eq!((s.rx_errors, s.tx_dropped, s.tx_errors), (0, 0, 0));
    let q = port.queue_stats();
    assert_eq!(q["rx_q0_good_packets"], 100);
    assert_eq!(q["tx_q0_good_packets"], 100);
    assert!(port.error().is_none(), "{:?}", port.error());
}

#[test]
fn chains_indirect_tables_and_split_receive_buffers() {
    let (port, mut fe) = server_pair("chains", Config::default());
    let mut rxq = port.open_rxq(0).unwrap();
    let f1 = frame(B, A, 1, 200);
    let f2 = frame(B, A, 2, 1500);
    assert!(fe.send_chained(0, &f1, 3));
    assert!(fe.send_indirect(0, &f2));
    assert_eq!(recv_n(&mut rxq, 2), vec![f1, f2]);

    // Mergeable buffers of 256 bytes: a 1500-byte frame spans 6 of them.
    let p = pool();
    let mut txq = port.open_txq(0).unwrap();
    fe.post_rx(0, 256);
    let big = frame(A, B, 3, 1500);
    send_frames(&mut txq, &p, std::slice::from_ref(&big));
    assert_eq!(fe.recv_n(0, 1, Duration::from_secs(2)), vec![big]);
    assert!(port.error().is_none(), "{:?}", port.error());
}

#[test]
fn without_mergeable_buffers_each_frame_takes_one_chain() {
    let cfg = Config {
        features: feature::F_VERSION_1 | feature::PROTOCOL_FEATURES,
        ..Config::default()
    };
    let (port, mut fe) = server_pair("nomrg", cfg);
    assert_eq!(fe.features & feature::NET_F_MRG_RXBUF, 0);
    let p = pool();
    let mut txq = port.open_txq(0).unwrap();
    // Chains of 4 × 400 bytes hold a 1500-byte frame and its header.
    fe.post_rx_chained(0, 400, 4);
    let frames: Vec<Vec<u8>> = (0..10)
        .map(|i| frame(A, B, i, 100 + 140 * i as usize))
        .collect();
    send_frames(&mut txq, &p, &frames);
    assert_eq!(fe.recv_n(0, 10, Duration::from_secs(2)), frames);
    // A frame larger than a whole chain is dropped, the chain kept.
    let huge = frame(A, B, 99, 2000);
    send_frames(&mut txq, &p, &[huge]);
    assert_eq!(port.stats().tx_dropped, 1);
    assert_eq!(fe.recv(0, 0).len(), 0);
}

#[test]
fn interrupts_only_when_the_driver_asks() {
    // EVENT_IDX: the driver asks for an interrupt past used_event.
    let (port, mut fe) = server_pair("evidx", Config::default());
    let mut rxq = port.open_rxq(0).unwrap();
    let f = frame(B, A, 0, 64);
    fe.send(0, &[&f]);
    assert_eq!(recv_n(&mut rxq, 1).len(), 1);
    let _ = fe.calls(1); // the first burst after start signals unconditionally
    fe.set_used_event(1, 1000);
    for _ in 0..5 {
        fe.send(0, &[&f]);
        assert_eq!(recv_n(&mut rxq, 1).len(), 1);
    }
    assert_eq!(fe.calls(1), 0, "used_event far ahead: no interrupt");
    let used = fe.used_idx(1);
    fe.set_used_event(1, used); // interrupt once the next entry is used
    fe.send(0, &[&f, &f, &f]);
    assert_eq!(recv_n(&mut rxq, 3).len(), 3);
    assert_eq!(fe.calls(1), 1, "one interrupt for the burst");

    // Without EVENT_IDX: the available ring's NO_INTERRUPT flag decides.
    let cfg = Config {
        features: feature::F_VERSION_1 | feature::PROTOCOL_FEATURES | feature::NET_F_MRG_RXBUF,
        ..Config::default()
    };
    let (port, mut fe) = server_pair("noevidx", cfg);
    assert_eq!(
        fe.used_flags(1) & 1,
        1,
        "the backend polls: no kicks wanted"
    );
    let mut rxq = port.open_rxq(0).unwrap();
    fe.set_avail_flags(1, 1);
    fe.send(0, &[&f, &f]);
    assert_eq!(recv_n(&mut rxq, 2).len(), 2);
    assert_eq!(fe.calls(1), 0);
    fe.set_avail_flags(1, 0);
    fe.send(0, &[&f]);
    assert_eq!(recv_n(&mut rxq, 1).len(), 1);
    assert_eq!(fe.calls(1), 1);
}

#[test]
fn several_queue_pairs() {
    let cfg = Config {
        queue_pairs: 4,
        queue_size: 128,
        ..Config::default()
    };
    let (port, mut fe) = server_pair("mq", cfg);
    assert_eq!(port.status()["num_of_vrings"], "8");
    for q in 0..4 {
        let mut rxq = port.open_rxq(q).unwrap();
        let f = frame(B, A, q as u32, 80);
        fe.send(q, &[&f]);
        assert_eq!(recv_n(&mut rxq, 1), vec![f], "queue {q}");
    }
    // Two PMD threads' transmit handles land on the enabled pairs.
    let p = pool();
    for q in 0..4 {
        fe.post_rx(q, BUF_SIZE);
    }
    let mut t0 = port.open_txq(0).unwrap();
    let mut t5 = port.open_txq(5).unwrap();
    send_frames(&mut t0, &p, &[frame(A, B, 10, 70)]);
    send_frames(&mut t5, &p, &[frame(A, B, 11, 70)]);
    let mut got = 0;
    for q in 0..4 {
        got += fe.recv(q, 0).len();
    }
    assert_eq!(got, 2);
    // Disabling pairs 1–3 moves every handle to pair 0.
    for vq in 2..8 {
        fe.enable(vq, false).unwrap();
    }
    send_frames(&mut t5, &p, &[frame(A, B, 12, 70)]);
    assert_eq!(fe.recv(0, 0).len(), 1);
}

#[test]
fn transmit_without_guest_buffers_retries_then_drops() {
    let mut opts = BTreeMap::new();
    let path = sock("retry");
    opts.insert(
        fvs_ports::VHOST_SOCKET_OPTION.to_string(),
        path.display().to_string(),
    );
    opts.insert("tx-retries-max".to_string(), "4".to_string());
    let port = VhostPort::from_options("dpdkvhostuser", "vhu-r", &opts, pool()).unwrap();
    let mut fe = Frontend::connect(&path, Config::default()).unwrap();
    fe.setup().unwrap();
    wait_until("link up", 5, || port.is_up());
    let p = pool();
    let mut txq = port.open_txq(0).unwrap();
    send_frames(&mut txq, &p, &[frame(A, B, 1, 64), frame(A, B, 2, 64)]);
    let s = port.stats();
    assert_eq!((s.tx_packets, s.tx_dropped, s.tx_retries), (0, 2, 4));
    assert_eq!(port.queue_stats()["tx_q0_retries"], 4);

    // Frames over the MTU are dropped and counted apart.
    port.set_mtu(1000).unwrap();
    assert!(port.set_mtu(9000).is_err());
    fe.post_rx(0, BUF_SIZE);
    send_frames(&mut txq, &p, &[frame(A, B, 3, 1100), frame(A, B, 4, 900)]);
    assert_eq!(fe.recv(0, 0).len(), 1);
    assert_eq!(port.queue_stats()["ovs_tx_mtu_exceeded_drops"], 1);
}

#[test]
fn disconnect_and_reconnect_as_server() {
    let path = sock("reconn");
    let port = VhostPort::server("vhu-s", &path, pool()).unwrap();
    let mut rxq = port.open_rxq(0).unwrap();
    for round in 0..3u32 {
        let mut fe = Frontend::connect(&path, Config::default()).unwrap();
        fe.setup().unwrap();
        wait_until("link up", 5, || port.is_up());
        let f = frame(B, A, round, 100);
        fe.send(0, &[&f]);
        assert_eq!(recv_n(&mut rxq, 1), vec![f]);
        fe.disconnect();
        wait_until("link down", 5, || !port.is_up() && !port.connected());
        assert_eq!(port.status()["status"], "disconnected");
        // Nothing is polled from a gone frontend.
        let mut b = Batch::new();
        assert_eq!(rxq.recv(&mut b), 0);
    }
    drop(rxq);
    drop(port);
    assert!(!path.exists(), "the socket goes with the port");
}

#[test]
fn client_connects_when_the_server_appears_and_after_it_restarts() {
    let path = sock("client");
    let port = VhostPort::client("vhu-c", &path, pool()).unwrap();
    assert_eq!(port.status()["mode"], "client");
    std::thread::sleep(Duration::from_millis(300));
    assert!(!port.connected());
    let mut rxq = port.open_rxq(0).unwrap();
    for round in 0..2u32 {
        let l = Listener::bind(&path).unwrap();
        let t0 = Instant::now();
        let mut fe = l.accept(Config::default(), Duration::from_secs(3)).unwrap();
        // Reconnection back-off is at most a second.
        assert!(t0.elapsed() < Duration::from_millis(1500));
        fe.setup().unwrap();
        wait_until("link up", 5, || port.is_up());
        let f = frame(B, A, round, 70);
        fe.send(0, &[&f]);
        assert_eq!(recv_n(&mut rxq, 1), vec![f]);
        drop(fe);
        drop(l);
        let _ = std::fs::remove_file(&path);
        wait_until("link down", 5, || !port.connected());
    }
}

#[test]
fn memory_table_swap_mid_traffic() {
    let (port, mut fe) = server_pair("swap", Config::default());
    let mut rxq = port.open_rxq(0).unwrap();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    // A PMD-like thread polls while the table changes under it.
    let stop2 = stop.clone();
    let poller = std::thread::spawn(move || {
        let mut n = 0usize;
        let mut b = Batch::new();
        while !stop2.load(std::sync::atomic::Ordering::Relaxed) {
            n += rxq.recv(&mut b);
            b.clear();
        }
        n
    });
    let f = frame(B, A, 7, 128);
    let mut sent = 0;
    for _ in 0..20 {
        for _ in 0..10 {
            while fe.send(0, &[&f]) == 0 {
                std::thread::yield_now();
            }
            sent += 1;
        }
        fe.swap_memory(true).unwrap();
    }
    wait_until("all received", 5, || port.stats().rx_packets == sent as u64);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    assert_eq!(poller.join().unwrap(), sent);
    assert!(port.error().is_none(), "{:?}", port.error());
}

#[test]
fn get_vring_base_stops_the_ring() {
    let (port, mut fe) = server_pair("base", Config::default());
    let mut rxq = port.open_rxq(0).unwrap();
    let f = frame(B, A, 1, 64);
    fe.send(0, &[&f, &f, &f]);
    assert_eq!(recv_n(&mut rxq, 3).len(), 3);
    assert_eq!(fe.get_vring_base(1).unwrap(), 3);
    assert!(!port.is_up());
    fe.send(0, &[&f]);
    std::thread::sleep(Duration::from_millis(50));
    let mut b = Batch::new();
    assert_eq!(rxq.recv(&mut b), 0, "a stopped ring is not polled");
}

/// One burst whose frames take more used-ring entries than the backend
/// holds back before writing them (32 frames × 6 mergeable buffers): every
/// frame still arrives whole and in order.
#[test]
fn a_burst_of_many_mergeable_buffers() {
    let (port, mut fe) = server_pair("many-bufs", Config::default());
    let p = pool();
    let mut txq = port.open_txq(0).unwrap();
    assert!(fe.post_rx(0, 256) >= 192);
    let frames: Vec<Vec<u8>> = (0..32).map(|i| frame(A, B, i, 1500)).collect();
    send_frames(&mut txq, &p, &frames);
    assert_eq!(fe.recv_n(0, 32, Duration::from_secs(2)), frames);
    assert_eq!(fe.used_idx(0), 32 * 6, "six buffers per frame");
    let s = port.stats();
    assert_eq!((s.tx_packets, s.tx_dropped), (32, 0));
}
