//! Fuzz-style property tests of everything a vhost-user frontend controls:
//! message headers and payloads, sequences of requests, descriptor tables
//! and available rings. Nothing may panic, and every buffer the chain walk
//! yields must lie inside the memory table.

use std::sync::Arc;

use fvs_datapath::netdev::Netdev;
use fvs_datapath::packet::{Batch, PacketPool, DATA_ROOM};
use fvs_ports::vhost::backend::Backend;
use fvs_ports::vhost::device::Shared;
use fvs_ports::vhost::frontend::{frame, Config, Frontend, Memory, GPA_BASE};
use fvs_ports::vhost::memory::GuestMemory;
use fvs_ports::vhost::msg::{self, Header, MemRegion, VringAddr, HDR_SIZE};
use fvs_ports::vhost::vring::{walk_chain, Desc, Ring};
use fvs_ports::vhost::VhostPort;
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn any_bytes_parse_or_fail_cleanly(
        hdr in proptest::array::uniform12(any::<u8>()),
        payload in proptest::collection::vec(any::<u8>(), 0..400),
        n_fds in 0usize..10,
    ) {
        if let Ok(h) = Header::parse(&hdr) {
            prop_assert!(h.size as usize <= msg::MAX_PAYLOAD);
            let _ = msg::parse(&h, &payload, n_fds);
        }
    }

    #[test]
    fn known_requests_with_any_payload(
        code in 0u32..45,
        flags in any::<u32>(),
        payload in proptest::collection::vec(any::<u8>(), 0..300),
    ) {
        let h = Header { request: code, flags: (flags & !3) | 1, size: payload.len() as u32 };
        let _ = msg::parse(&h, &payload, 0);
    }
}

/// A request with a payload biased towards plausible values.
fn request() -> impl Strategy<Value = (u32, Vec<u8>)> {
    let index = prop_oneof![0u32..4, 0u32..300];
    let num = prop_oneof![Just(256u32), 0u32..70000, any::<u32>()];
    prop_oneof![
        (index.clone(), num.clone())
            .prop_map(|(i, n)| (msg::req::SET_VRING_NUM, msg::state_bytes(i, n).to_vec())),
        (index.clone(), num.clone())
            .prop_map(|(i, n)| (msg::req::SET_VRING_BASE, msg::state_bytes(i, n).to_vec())),
        (index.clone(), num.clone())
            .prop_map(|(i, n)| (msg::req::SET_VRING_ENABLE, msg::state_bytes(i, n).to_vec())),
        index
            .clone()
            .prop_map(|i| (msg::req::GET_VRING_BASE, msg::state_bytes(i, 0).to_vec())),
        (index.clone(), any::<[u64; 4]>()).prop_map(|(i, a)| {
            let addr = VringAddr {
                index: i,
                flags: 0,
                desc: a[0],
                used: a[1],
                avail: a[2],
                log: a[3],
            };
            (msg::req::SET_VRING_ADDR, msg::addr_bytes(&addr).to_vec())
        }),
        index.clone().prop_map(|i| (
            msg::req::SET_VRING_KICK,
            (u64::from(i) | msg::VRING_NOFD).to_le_bytes().to_vec()
        )),
        index.prop_map(|i| (
            msg::req::SET_VRING_CALL,
            (u64::from(i) | msg::VRING_NOFD).to_le_bytes().to_vec()
        )),
        any::<u64>().prop_map(|f| (msg::req::SET_FEATURES, f.to_le_bytes().to_vec())),
        any::<u64>().prop_map(|f| (msg::req::SET_PROTOCOL_FEATURES, f.to_le_bytes().to_vec())),
        any::<u64>().prop_map(|f| (msg::req::NET_SET_MTU, f.to_le_bytes().to_vec())),
        (0u32..45, proptest::collection::vec(any::<u8>(), 0..64)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Random request sequences against the protocol engine (no memory
    /// table: the rings never become usable, nothing may panic).
    #[test]
    fn request_sequences_never_panic(reqs in proptest::collection::vec(request(), 1..40)) {
        let shared = Arc::new(Shared::new("fuzz"));
        let mut be = Backend::new(shared.clone());
        for (code, p) in reqs {
            let h = Header { request: code, flags: 1 | msg::FLAG_NEED_REPLY, size: p.len() as u32 };
            let (reply, _) = be.handle(&h, &p, Vec::new());
            if let Some(r) = reply {
                let mut hb = [0u8; HDR_SIZE];
                hb.copy_from_slice(&r.as_bytes()[..HDR_SIZE]);
                let rh = Header::parse(&hb).unwrap();
                prop_assert_eq!(rh.request, code);
                prop_assert_eq!(rh.flags, msg::VERSION | msg::FLAG_REPLY);
            }
        }
        be.reset();
    }
}

const MEM: usize = 1 << 20;
const QSIZE: u32 = 64;

/// Descriptors whose addresses hit inside, at the edges of, and outside
/// the 1 MB region at GPA_BASE.
fn desc() -> impl Strategy<Value = Desc> {
    let addr = prop_oneof![
        (0u64..MEM as u64).prop_map(|o| GPA_BASE + o),
        (0u64..64).prop_map(|o| GPA_BASE + MEM as u64 - o),
        Just(0u64),
        any::<u64>(),
    ];
    let len = prop_oneof![0u32..3000, Just(16u32), Just(32u32), any::<u32>()];
    let flags = prop_oneof![0u16..8, any::<u16>()];
    let next = prop_oneof![0u16..QSIZE as u16, any::<u16>()];
    (addr, len, flags, next).prop_map(|(addr, len, flags, next)| Desc {
        addr,
        len,
        flags,
        next,
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Any descriptor table, any head: the walk ends, and every segment
    /// lies inside the mapped region.
    #[test]
    fn chain_walks_stay_inside_memory(
        table in proptest::collection::vec(desc(), QSIZE as usize),
        extra in proptest::collection::vec(desc(), 16),
        heads in proptest::collection::vec(0u16..(QSIZE as u16 + 4), 1..16),
        indirect in any::<bool>(),
    ) {
        let m = Memory::new(MEM).unwrap();
        // The main table at offset 0, a would-be indirect table at 64 KB.
        for (i, d) in table.iter().enumerate() {
            write_desc(&m, 16 * i, d);
        }
        for (i, d) in extra.iter().enumerate() {
            write_desc(&m, 0x10000 + 16 * i, d);
        }
        let region = MemRegion { gpa: GPA_BASE, size: MEM as u64, uva: 0x5000_0000, mmap_offset: 0 };
        let gm = Arc::new(GuestMemory::map(&[region], &[m.fd().try_clone().unwrap()]).unwrap());
        let mut h = 0;
        let base = gm.gpa(GPA_BASE, 1, &mut h).unwrap() as usize;
        let a = VringAddr { index: 0, flags: 0, desc: 0x5000_0000, used: 0x5000_2000, avail: 0x5000_1000, log: 0 };
        let ring = Ring::new(gm.clone(), &a, QSIZE).unwrap();
        for head in heads {
            let mut n = 0;
            let _ = walk_chain(&ring, head, indirect, &mut h, |s| {
                let p = s.ptr as usize;
                assert!(p >= base && p + s.len as usize <= base + MEM, "segment outside the region");
                n += 1;
                Ok(true)
            });
            prop_assert!(n <= QSIZE as usize + 65536 / 16 + 1);
        }
    }
}

fn write_desc(m: &Memory, off: usize, d: &Desc) {
    let mut b = [0u8; 16];
    b[0..8].copy_from_slice(&d.addr.to_le_bytes());
    b[8..12].copy_from_slice(&d.len.to_le_bytes());
    b[12..14].copy_from_slice(&d.flags.to_le_bytes());
    b[14..16].copy_from_slice(&d.next.to_le_bytes());
    m.write(off, &b);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// A frontend that writes random descriptors and random available
    /// entries into both rings of a live port: the data path survives and
    /// every frame it delivers fits a packet buffer.
    #[test]
    fn random_rings_through_a_live_port(
        descs in proptest::collection::vec(desc(), 64),
        heads in proptest::collection::vec(prop_oneof![0u16..64, any::<u16>()], 1..48),
        avail_jump in prop_oneof![Just(0u16), any::<u16>()],
    ) {
        let path = std::env::temp_dir().join(format!(
            "fvs-vhf-{}-{}.sock",
            std::process::id(),
            rand_tag()
        ));
        let pool = Arc::new(PacketPool::new(512, false).unwrap());
        let port = VhostPort::server("fuzz", &path, pool.clone()).unwrap();
        let cfg = Config { queue_size: 64, ..Config::default() };
        let mut fe = Frontend::connect(&path, cfg).unwrap();
        fe.setup().unwrap();
        let mut rxq = port.open_rxq(0).unwrap();
        let mut txq = port.open_txq(0).unwrap();
        for vq in [0usize, 1] {
            for (i, d) in descs.iter().enumerate() {
                fe.write_desc(vq, i as u16, *d);
            }
            for h in &heads {
                fe.push_avail(vq, *h);
            }
        }
        if avail_jump != 0 {
            fe.set_avail_idx(1, avail_jump);
        }
        let mut b = Batch::new();
        for _ in 0..8 {
            rxq.recv(&mut b);
            for p in b.packets() {
                prop_assert!(p.len() <= DATA_ROOM);
            }
            b.clear();
            let mut out = Batch::new();
            for k in 0..4 {
                out.push(pool.packet_from(&frame([2; 6], [4; 6], k, 60 + 300 * k as usize)).unwrap()).unwrap();
            }
            txq.send(&mut out);
        }
        let _ = port.status();
        let _ = port.error();
        drop((rxq, txq, fe));
    }
}

fn rand_tag() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}
