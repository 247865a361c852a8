//! A hostile frontend against a vhost-user port: corrupt descriptor chains,
//! addresses outside the memory table, an available index far ahead,
//! malformed and unsupported protocol messages, memory tables swapped under
//! running traffic, disconnects mid-burst. The port must survive each one,
//! say what went wrong, never touch memory outside the table, and keep
//! serving well-behaved frontends; other ports are unaffected.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fvs_datapath::netdev::{Netdev, RxQueue};
use fvs_datapath::packet::{Batch, PacketPool};
use fvs_ports::vhost::backend::feature;
use fvs_ports::vhost::frontend::{frame, Config, Frontend, BUF_SIZE, GPA_BASE};
use fvs_ports::vhost::msg::{self, req};
use fvs_ports::vhost::vring::{Desc, DESC_F_INDIRECT, DESC_F_NEXT, DESC_F_WRITE};
use fvs_ports::vhost::VhostPort;

const A: [u8; 6] = [2, 0, 0, 0, 0, 1];
const B: [u8; 6] = [2, 0, 0, 0, 0, 2];

fn pool() -> Arc<PacketPool> {
    Arc::new(PacketPool::new(2048, false).unwrap())
}

fn sock(tag: &str) -> PathBuf {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    std::env::temp_dir().join(format!("fvs-vhh-{}-{tag}-{n}.sock", std::process::id()))
}

fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

struct Victim {
    port: VhostPort,
    fe: Frontend,
    rxq: Box<dyn RxQueue>,
    path: PathBuf,
}

fn victim(tag: &str, cfg: Config) -> Victim {
    let path = sock(tag);
    let port = VhostPort::server("vhu-bad", &path, pool()).unwrap();
    let mut fe = Frontend::connect(&path, cfg).unwrap();
    fe.setup().unwrap();
    wait_until("link up", || port.is_up());
    let rxq = port.open_rxq(0).unwrap();
    Victim {
        port,
        fe,
        rxq,
        path,
    }
}

fn poll(rxq: &mut Box<dyn RxQueue>, rounds: usize) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut b = Batch::new();
    for _ in 0..rounds {
        rxq.recv(&mut b);
        out.extend(b.drain().map(|p| p.data().to_vec()));
        std::thread::sleep(Duration::from_micros(100));
    }
    out
}

/// A good frame still crosses after the attack (the chain-level faults
/// only cost their own frame).
fn still_works(v: &mut Victim) {
    let f = frame(B, A, 4242, 90);
    assert_eq!(v.fe.send(0, &[&f]), 1);
    let got = poll(&mut v.rxq, 50);
    assert_eq!(got, vec![f], "a good frame after the bad one");
}

/// Makes descriptor `d` (already written) available on the guest's TX ring.
fn offer(v: &mut Victim, d: u16) {
    v.fe.push_avail(1, d);
}

fn error(v: &Victim) -> String {
    v.port.error().unwrap_or_default()
}

#[test]
fn descriptor_loop() {
    let mut v = victim("loop", Config::default());
    let off = v.fe.layout(1).bufs;
    let g = v.fe.gpa(off);
    // Short segments, so that the loop is found before the frame grows too long.
    v.fe.write_desc(
        1,
        200,
        Desc {
            addr: g,
            len: 4,
            flags: DESC_F_NEXT,
            next: 201,
        },
    );
    v.fe.write_desc(
        1,
        201,
        Desc {
            addr: g,
            len: 4,
            flags: DESC_F_NEXT,
            next: 200,
        },
    );
    offer(&mut v, 200);
    assert!(poll(&mut v.rxq, 20).is_empty());
    assert!(error(&v).contains("loops"), "{}", error(&v));
    assert_eq!(v.port.stats().rx_errors, 1);
    // A self-loop inside an indirect table is bounded as well.
    let t = v.fe.layout(1).indirect;
    v.fe.write_raw_desc(
        t,
        Desc {
            addr: g,
            len: 4,
            flags: DESC_F_NEXT,
            next: 0,
        },
    );
    v.fe.write_desc(
        1,
        202,
        Desc {
            addr: v.fe.gpa(t),
            len: 16,
            flags: DESC_F_INDIRECT,
            next: 0,
        },
    );
    offer(&mut v, 202);
    assert!(poll(&mut v.rxq, 20).is_empty());
    assert_eq!(v.port.stats().rx_errors, 2);
    still_works(&mut v);
}

#[test]
fn addresses_outside_every_region_and_across_its_end() {
    let mut v = victim("addr", Config::default());
    let end = GPA_BASE + v.fe.mem.len() as u64;
    let cases = [
        Desc {
            addr: 0x1000,
            len: 64,
            flags: 0,
            next: 0,
        }, // below the region
        Desc {
            addr: end + 4096,
            len: 64,
            flags: 0,
            next: 0,
        }, // beyond it
        Desc {
            addr: end - 32,
            len: 64,
            flags: 0,
            next: 0,
        }, // crossing its end
        Desc {
            addr: u64::MAX - 8,
            len: 64,
            flags: 0,
            next: 0,
        }, // wrapping
        Desc {
            addr: GPA_BASE,
            len: u32::MAX,
            flags: 0,
            next: 0,
        }, // huge
    ];
    for (i, d) in cases.iter().enumerate() {
        v.fe.write_desc(1, 100 + i as u16, *d);
        offer(&mut v, 100 + i as u16);
    }
    assert!(poll(&mut v.rxq, 20).is_empty());
    let s = v.port.stats();
    assert_eq!(s.rx_errors + s.rx_dropped, cases.len() as u64);
    assert!(
        error(&v).contains("outside the guest memory"),
        "{}",
        error(&v)
    );
    still_works(&mut v);

    // The same on the receive side: a buffer across the region's end.
    let p = pool();
    let mut txq = v.port.open_txq(0).unwrap();
    v.fe.write_desc(
        0,
        7,
        Desc {
            addr: end - 16,
            len: 2048,
            flags: DESC_F_WRITE,
            next: 0,
        },
    );
    v.fe.push_avail(0, 7);
    let mut b = Batch::new();
    b.push(p.packet_from(&frame(A, B, 1, 100)).unwrap())
        .unwrap();
    txq.send(&mut b);
    assert_eq!(v.port.stats().tx_errors, 1);
    assert_eq!(v.fe.used_idx(0), 1, "the bad buffer went back unused");
    assert_eq!(v.fe.used_elem(0, 0), (7, 0));
}

#[test]
fn available_index_far_ahead_stops_the_ring() {
    let mut v = victim("ahead", Config::default());
    v.fe.set_avail_idx(1, 40000);
    assert!(poll(&mut v.rxq, 20).is_empty());
    assert!(error(&v).contains("available index ahead"), "{}", error(&v));
    assert!(!v.port.is_up(), "the corrupt ring stops");
    // The frontend sets the ring up again: traffic resumes, error cleared by reconnect.
    drop(v.rxq);
    let Victim { port, fe, path, .. } = v;
    fe.disconnect();
    wait_until("disconnect", || !port.connected());
    let mut fe = Frontend::connect(&path, Config::default()).unwrap();
    fe.setup().unwrap();
    wait_until("link up", || port.is_up());
    assert!(port.error().is_none());
    let mut v = Victim {
        rxq: port.open_rxq(0).unwrap(),
        port,
        fe,
        path,
    };
    still_works(&mut v);
}

#[test]
fn head_and_next_indices_outside_the_ring() {
    let mut v = victim("idx", Config::default());
    let g = v.fe.gpa(v.fe.layout(1).bufs);
    v.fe.write_desc(
        1,
        5,
        Desc {
            addr: g,
            len: 64,
            flags: DESC_F_NEXT,
            next: 9999,
        },
    );
    offer(&mut v, 5);
    assert!(poll(&mut v.rxq, 10).is_empty());
    assert!(error(&v).contains("next index"), "{}", error(&v));
    still_works(&mut v);
    // A head beyond the ring corrupts it.
    offer(&mut v, 4000);
    assert!(poll(&mut v.rxq, 10).is_empty());
    assert!(error(&v).contains("head outside"), "{}", error(&v));
    assert!(!v.port.is_up());
}

#[test]
fn bad_indirect_tables() {
    let mut v = victim("ind", Config::default());
    let l = v.fe.layout(1);
    let g = v.fe.gpa(l.bufs);
    let t = l.indirect;
    // Nested indirect.
    v.fe.write_raw_desc(
        t,
        Desc {
            addr: v.fe.gpa(t),
            len: 16,
            flags: DESC_F_INDIRECT,
            next: 0,
        },
    );
    v.fe.write_desc(
        1,
        10,
        Desc {
            addr: v.fe.gpa(t),
            len: 16,
            flags: DESC_F_INDIRECT,
            next: 0,
        },
    );
    // Indirect with NEXT.
    v.fe.write_desc(
        1,
        11,
        Desc {
            addr: v.fe.gpa(t),
            len: 16,
            flags: DESC_F_INDIRECT | DESC_F_NEXT,
            next: 12,
        },
    );
    // Length not a multiple of 16, and zero.
    v.fe.write_desc(
        1,
        12,
        Desc {
            addr: v.fe.gpa(t),
            len: 20,
            flags: DESC_F_INDIRECT,
            next: 0,
        },
    );
    v.fe.write_desc(
        1,
        13,
        Desc {
            addr: v.fe.gpa(t),
            len: 0,
            flags: DESC_F_INDIRECT,
            next: 0,
        },
    );
    // Table outside memory.
    v.fe.write_desc(
        1,
        14,
        Desc {
            addr: 0x10,
            len: 64,
            flags: DESC_F_INDIRECT,
            next: 0,
        },
    );
    // Device-writable buffer in a transmit chain.
    v.fe.write_desc(
        1,
        15,
        Desc {
            addr: g,
            len: 64,
            flags: DESC_F_WRITE,
            next: 0,
        },
    );
    // Shorter than the virtio-net header.
    v.fe.write_desc(
        1,
        16,
        Desc {
            addr: g,
            len: 4,
            flags: 0,
            next: 0,
        },
    );
    for d in 10..=16 {
        offer(&mut v, d);
    }
    assert!(poll(&mut v.rxq, 20).is_empty());
    assert_eq!(v.port.stats().rx_errors, 7);
    still_works(&mut v);

    // Indirect tables refused when not negotiated.
    let cfg = Config {
        features: feature::F_VERSION_1 | feature::PROTOCOL_FEATURES,
        ..Config::default()
    };
    let mut v = victim("noind", cfg);
    let f = frame(B, A, 1, 80);
    assert!(v.fe.send_indirect(0, &f));
    assert!(poll(&mut v.rxq, 10).is_empty());
    assert!(
        error(&v).contains("indirect descriptor not negotiated"),
        "{}",
        error(&v)
    );
    still_works(&mut v);
}

#[test]
fn readable_buffers_in_the_receive_ring() {
    let mut v = victim("rxro", Config::default());
    let p = pool();
    let mut txq = v.port.open_txq(0).unwrap();
    let off = v.fe.layout(0).bufs;
    v.fe.write_desc(
        0,
        3,
        Desc {
            addr: v.fe.gpa(off),
            len: 2048,
            flags: 0,
            next: 0,
        },
    );
    v.fe.push_avail(0, 3);
    let mut b = Batch::new();
    b.push(p.packet_from(&frame(A, B, 1, 100)).unwrap())
        .unwrap();
    txq.send(&mut b);
    assert_eq!(v.port.stats().tx_errors, 1);
    assert!(error(&v).contains("device-readable"), "{}", error(&v));
    // A good buffer then works.
    v.fe.post_rx(0, BUF_SIZE);
    let f = frame(A, B, 2, 100);
    b.push(p.packet_from(&f).unwrap()).unwrap();
    txq.send(&mut b);
    assert_eq!(v.fe.recv(0, 0), vec![f]);
}

#[test]
fn malformed_and_unsupported_messages() {
    let mut v = victim("msg", Config::default());
    let ack = msg::FLAG_NEED_REPLY;
    let nack = |r: Option<Vec<u8>>| r.is_some_and(|p| p.len() == 8 && p != [0; 8]);
    // Ring index beyond 8 queue pairs, bad sizes, short payloads.
    assert!(nack(
        v.fe.raw(
            req::SET_VRING_NUM,
            ack,
            &msg::state_bytes(99, 256),
            &[],
            true
        )
        .unwrap()
    ));
    assert!(nack(
        v.fe.raw(
            req::SET_VRING_NUM,
            ack,
            &msg::state_bytes(0, 1000),
            &[],
            true
        )
        .unwrap()
    ));
    assert!(nack(
        v.fe.raw(
            req::SET_VRING_NUM,
            ack,
            &msg::state_bytes(0, 65536),
            &[],
            true
        )
        .unwrap()
    ));
    assert!(nack(
        v.fe.raw(req::SET_FEATURES, ack, &[1, 2], &[], true)
            .unwrap()
    ));
    assert!(nack(
        v.fe.raw(
            req::SET_FEATURES,
            ack,
            &(1u64 << 60).to_le_bytes(),
            &[],
            true
        )
        .unwrap()
    ));
    assert!(nack(
        v.fe.raw(
            req::SET_PROTOCOL_FEATURES,
            ack,
            &(1u64 << 40).to_le_bytes(),
            &[],
            true
        )
        .unwrap()
    ));
    assert!(nack(
        v.fe.raw(req::SET_LOG_BASE, ack, &[0; 16], &[], true)
            .unwrap()
    ));
    assert!(nack(v.fe.raw(77, ack, &[], &[], true).unwrap()));
    // A memory table with too many regions, without its descriptors, with a
    // file too short, with a socket instead of a file.
    let mut r = v.fe.mem.region();
    let nine = msg::mem_table_bytes(&[r; 9]);
    assert!(nack(
        v.fe.raw(req::SET_MEM_TABLE, ack, &nine, &[], true).unwrap()
    ));
    let one = msg::mem_table_bytes(&[r]);
    assert!(nack(
        v.fe.raw(req::SET_MEM_TABLE, ack, &one, &[], true).unwrap()
    ));
    r.size *= 4;
    let big = msg::mem_table_bytes(&[r]);
    let fd = v.fe.mem.fd().try_clone().unwrap();
    assert!(nack(
        v.fe.raw(req::SET_MEM_TABLE, ack, &big, &[&fd], true)
            .unwrap()
    ));
    let (s1, _s2) = std::os::unix::net::UnixStream::pair().unwrap();
    let sfd: std::os::fd::OwnedFd = s1.into();
    assert!(nack(
        v.fe.raw(req::SET_MEM_TABLE, ack, &one, &[&sfd], true)
            .unwrap()
    ));
    // A ring address outside the memory.
    let mut a = v.fe.vring_addr(1);
    a.desc = 0x10;
    assert!(nack(
        v.fe.raw(req::SET_VRING_ADDR, ack, &msg::addr_bytes(&a), &[], true)
            .unwrap()
    ));
    assert!(v.port.error().is_some());
    // GET_VRING_BASE of a ring that does not exist still gets a reply.
    assert!(v
        .fe
        .raw(req::GET_VRING_BASE, 0, &msg::state_bytes(200, 0), &[], true)
        .unwrap()
        .is_some());
    // The connection survived all that: set the ring back, traffic flows.
    let a = v.fe.vring_addr(1);
    assert!(v
        .fe
        .set(req::SET_VRING_ADDR, &msg::addr_bytes(&a), &[])
        .unwrap());
    let fd = v.fe.mem.fd().try_clone().unwrap();
    assert!(v.fe.set(req::SET_MEM_TABLE, &one, &[&fd]).unwrap());
    still_works(&mut v);

    // A header with a bad version, or a payload larger than any message,
    // ends the connection (the stream cannot be trusted after it).
    let Victim {
        port,
        fe,
        path,
        rxq,
    } = v;
    drop(rxq);
    fe.disconnect();
    wait_until("disconnect", || !port.connected());
    use std::io::Write;
    let huge = msg::Header {
        request: 1,
        flags: 1,
        size: 1 << 20,
    }
    .encode();
    let mut badver = msg::encode_request(req::GET_FEATURES, 0, &[]);
    badver[4] = 0x2;
    for (bytes, says) in [(huge.to_vec(), "too large"), (badver, "version")] {
        let mut s = std::os::unix::net::UnixStream::connect(&path).unwrap();
        s.write_all(&bytes).unwrap();
        wait_until("connection dropped after a bad header", || {
            port.error().is_some_and(|e| e.contains(says)) && !port.connected()
        });
    }
    // And the port takes a good frontend again.
    let mut fe = Frontend::connect(&path, Config::default()).unwrap();
    fe.setup().unwrap();
    wait_until("link up", || port.is_up());
}

#[test]
fn memory_swapped_under_running_traffic_and_disconnect_mid_burst() {
    let path = sock("chaos");
    let port = Arc::new(VhostPort::server("vhu-chaos", &path, pool()).unwrap());
    // A healthy neighbour keeps forwarding all along.
    let path2 = sock("good");
    let good = VhostPort::server("vhu-good", &path2, pool()).unwrap();
    let mut gfe = Frontend::connect(&path2, Config::default()).unwrap();
    gfe.setup().unwrap();
    wait_until("good link", || good.is_up());
    let mut grx = good.open_rxq(0).unwrap();

    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (p2, s2) = (port.clone(), stop.clone());
    let pmd = std::thread::spawn(move || {
        let mut rxq = p2.open_rxq(0).unwrap();
        let mut txq = p2.open_txq(0).unwrap();
        let pool = pool();
        let mut b = Batch::new();
        let mut n = 0u64;
        while !s2.load(std::sync::atomic::Ordering::Relaxed) {
            n += rxq.recv(&mut b) as u64;
            // Echo: exercises the transmit side at the same time.
            txq.send(&mut b);
            let mut o = Batch::new();
            o.push(pool.packet_from(&frame(A, B, 0, 60)).unwrap())
                .unwrap();
            txq.send(&mut o);
        }
        n
    });
    let f = frame(B, A, 1, 300);
    for round in 0..6 {
        let mut fe = Frontend::connect(&path, Config::default()).unwrap();
        fe.setup().unwrap();
        fe.post_rx(0, BUF_SIZE);
        for k in 0..30 {
            fe.send(0, &[&f, &f, &f, &f]);
            fe.recv(0, BUF_SIZE);
            if k % 10 == 5 {
                fe.swap_memory(false).unwrap();
            }
        }
        // Disconnect with frames still queued (mid-burst).
        fe.send(0, &[&f, &f, &f, &f, &f, &f, &f, &f]);
        if round % 2 == 0 {
            fe.disconnect();
        } else {
            drop(fe);
        }
        wait_until("disconnect", || !port.connected());
        // The neighbour is unaffected.
        let g = frame(B, A, 77, 64);
        gfe.send(0, &[&g]);
        let got = poll(&mut grx, 20);
        assert_eq!(got, vec![g]);
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(pmd.join().unwrap() > 0);
    assert!(good.error().is_none());
}
