// Key extraction over arbitrary frames. Besides "never panics", checks what
// callers rely on: the L3/L4 offsets lie within the frame, the stored hash
// is the key's, no field of a previous key survives, and the IPv4 fast path
// gives the same key and hash as the general parser, also for a packet
// that came out of a tunnel.
//
// Shared by the fuzz target (fuzz/fuzz_targets/extract.rs) and the replay of
// the corpus and crash reproducers in the crate's tests (`include!`d).
use std::sync::OnceLock;

use fvs_datapath::extract::{extract, extract_general, extract_hot, tcp_flags_of, ExtractStats};
use fvs_datapath::hash::key_hash_shaped;
use fvs_datapath::key::{ofs, FlowKey, Shape, TUN_FLAG_PRESENT};
use fvs_datapath::packet::{PacketPool, TunnelMeta, DATA_ROOM, NO_OFS};

fn pool() -> &'static PacketPool {
    static POOL: OnceLock<PacketPool> = OnceLock::new();
    POOL.get_or_init(|| PacketPool::new(8, false).expect("pool"))
}

/// Runs one input; panics on a finding.
pub fn check(data: &[u8]) {
    let Some((&port, frame)) = data.split_first() else {
        return;
    };
    let frame = &frame[..frame.len().min(DATA_ROOM)];
    let in_port = u32::from(port);

    // From a key full of stale bits, as the PMD's reused keys are.
    let mut pkt = pool().packet_from(frame).expect("fits");
    pkt.meta_mut().in_port = in_port;
    let mut key = FlowKey::ONES;
    let mut stats = ExtractStats::default();
    let h = extract(&mut pkt, &mut key, &mut stats);
    let m = pkt.meta();
    assert_eq!(m.hash, h);
    assert_eq!(
        h,
        key_hash_shaped(&key, key.shape()),
        "hash of {key:?}"
    );
    let (l3, l4) = (m.l3_ofs, m.l4_ofs);
    if l3 != NO_OFS {
        assert!(
            usize::from(l3) <= frame.len(),
            "l3_ofs {l3} > {}",
            frame.len()
        );
    }
    if l4 != NO_OFS {
        assert!(l3 != NO_OFS && l4 > l3, "l4_ofs {l4} without l3 {l3}");
        assert!(
            usize::from(l4) <= frame.len(),
            "l4_ofs {l4} > {}",
            frame.len()
        );
    }
    assert_eq!(key.in_port(), in_port);
    assert!(stats.truncated + stats.malformed <= 1, "{stats:?}");

    // Simple match's quick TCP flags (no extraction) are extraction's,
    // but where it gives up, with 0: two VLAN tags, IPv6 extension headers.
    let quick = tcp_flags_of(frame);
    let full = key.be16_at(ofs::TCP_FLAGS);
    if quick != full {
        let be16 = |i: usize| frame.get(i..i + 2).map(|b| u16::from_be_bytes([b[0], b[1]]));
        let tag = |t: Option<u16>| matches!(t, Some(0x8100 | 0x88a8));
        let two_tags = tag(be16(12)) && tag(be16(16));
        let (eth_type, l3) = if tag(be16(12)) { (be16(16), 18) } else { (be16(12), 14) };
        let ipv6_ext = eth_type == Some(0x86dd) && frame.get(l3 + 6) != Some(&6);
        assert!(
            quick == 0 && (two_tags || ipv6_ext),
            "quick TCP flags {quick:#x}, extraction's {full:#x}: {frame:02x?}"
        );
    }

    // From a zero key: the same key.
    let mut pkt0 = pool().packet_from(frame).expect("fits");
    pkt0.meta_mut().in_port = in_port;
    let mut key0 = FlowKey::ZERO;
    let mut stats0 = ExtractStats::default();
    assert_eq!(extract(&mut pkt0, &mut key0, &mut stats0), h);
    assert_eq!(key0, key, "stale key bits leak");
    assert_eq!(stats0, stats);

    // The hot-path form tells the key's shape right.
    let mut pkt1 = pool().packet_from(frame).expect("fits");
    pkt1.meta_mut().in_port = in_port;
    let mut key1 = FlowKey::ONES;
    let (h1, shape) = extract_hot(&mut pkt1, &mut key1, &mut ExtractStats::default(), true);
    assert_eq!(h1, h);
    assert_eq!(shape, key.shape());
    assert!(key1.fast_eq(&key, shape == Shape::Compact));

    // The general parser alone: the same key (cold words cleared for a
    // compact one) and hash.
    let mut pkt2 = pool().packet_from(frame).expect("fits");
    let mut key2 = FlowKey::ONES;
    let (h2, shape2) = extract_general(&mut pkt2, in_port, &mut key2, &mut ExtractStats::default(), true);
    if shape2 == Shape::Compact {
        key2.clear_cold();
    }
    assert_eq!((h2, shape2), (h, shape), "fast vs general");
    assert_eq!(key2, key, "fast vs general");
    assert_eq!((pkt2.meta().l3_ofs, pkt2.meta().l4_ofs), (l3, l4));

    // Decapsulated: the tunnel's fields join the key, by either path; out
    // of an IPv4 tunnel (no IPv6 addresses), and with both kinds set.
    for ipv6 in [false, true] {
        let (ipv6_src, ipv6_dst) = if ipv6 { ([port; 16], [0xfe; 16]) } else { ([0; 16], [0; 16]) };
        let tunnel = TunnelMeta {
            tun_id: 0x0012_3456_789a_bcde ^ u64::from(port),
            ipv4_src: [172, 31, 0, 2],
            ipv4_dst: [172, 31, 0, port],
            ipv6_src,
            ipv6_dst,
            tos: 0x28,
            ttl: port,
            flags: TUN_FLAG_PRESENT | u16::from(port),
            tp_src: 49152,
            tp_dst: 4789,
        };
        let mut keys = [FlowKey::ONES; 2];
        let mut found = [(0, Shape::Full); 2];
        for (general, (k, f)) in [false, true].into_iter().zip(keys.iter_mut().zip(found.iter_mut())) {
            let mut p = pool().packet_from(frame).expect("fits");
            p.meta_mut().tunnel = tunnel;
            p.meta_mut().in_port = in_port;
            let mut stats = ExtractStats::default();
            *f = if general {
                extract_general(&mut p, in_port, k, &mut stats, true)
            } else {
                extract_hot(&mut p, k, &mut stats, true)
            };
            assert_eq!(p.meta().hash, f.0);
            assert_eq!((p.meta().l3_ofs, p.meta().l4_ofs), (l3, l4));
        }
        assert_eq!(found[0], found[1], "tunnel: fast vs general");
        assert_ne!(found[0].1, Shape::Compact, "a tunnel's key is never compact");
        assert_eq!(found[0].1, keys[0].shape(), "tunnel: shape");
        if key.dl_type() == 0x0800 {
            let want = if ipv6 { Shape::Full } else { Shape::Tunnel4 };
            assert_eq!(found[0].1, want, "tunnel: shape of an IPv4 packet");
        }
        assert_eq!(keys[0], keys[1], "tunnel: fast vs general");
        assert_eq!(found[0].0, key_hash_shaped(&keys[0], found[0].1));
        assert_eq!(keys[0].b[..ofs::TUN_FLAGS], key.b[..ofs::TUN_FLAGS]);
        assert_eq!(
            keys[0].be16_at(ofs::TUN_FLAGS),
            TUN_FLAG_PRESENT | u16::from(port)
        );
    }
}
