// Key extraction over arbitrary frames. Besides "never panics", checks what
// callers rely on: the L3/L4 offsets lie within the frame, the stored hash
// is the key's, no field of a previous key survives, and the IPv4 fast path
// gives the same key as the general parser (which a tunnel mark forces).
//
// Shared by the fuzz target (fuzz/fuzz_targets/extract.rs) and the replay of
// the corpus and crash reproducers in the crate's tests (`include!`d).
use std::sync::OnceLock;

use fvs_datapath::extract::{extract, extract_hot, ExtractStats};
use fvs_datapath::hash::key_hash_shaped;
use fvs_datapath::key::{ofs, FlowKey, TUN_FLAG_PRESENT};
use fvs_datapath::packet::{PacketPool, DATA_ROOM, NO_OFS};

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
        key_hash_shaped(&key, key.is_compact()),
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

    // From a zero key: the same key.
    let mut pkt0 = pool().packet_from(frame).expect("fits");
    pkt0.meta_mut().in_port = in_port;
    let mut key0 = FlowKey::ZERO;
    let mut stats0 = ExtractStats::default();
    assert_eq!(extract(&mut pkt0, &mut key0, &mut stats0), h);
    assert_eq!(key0, key, "stale key bits leak");
    assert_eq!(stats0, stats);

    // The hot-path form tells compactness right.
    let mut pkt1 = pool().packet_from(frame).expect("fits");
    pkt1.meta_mut().in_port = in_port;
    let mut key1 = FlowKey::ONES;
    let (h1, compact) = extract_hot(&mut pkt1, &mut key1, &mut ExtractStats::default(), true);
    assert_eq!(h1, h);
    assert_eq!(compact, key.is_compact());
    assert!(key1.fast_eq(&key, compact));

    // Marked as decapsulated, the packet takes the general parser: every
    // field but the tunnel's must be the same.
    let mut pkt2 = pool().packet_from(frame).expect("fits");
    pkt2.meta_mut().in_port = in_port;
    pkt2.meta_mut().tunnel.flags = TUN_FLAG_PRESENT;
    let mut key2 = FlowKey::ONES;
    extract(&mut pkt2, &mut key2, &mut ExtractStats::default());
    assert_eq!(
        key2.b[..ofs::TUN_FLAGS],
        key.b[..ofs::TUN_FLAGS],
        "fast vs general"
    );
    assert_eq!(
        key2.b[ofs::IPV6_SRC..ofs::TUN_ID],
        key.b[ofs::IPV6_SRC..ofs::TUN_ID],
        "fast vs general"
    );
    assert_eq!((pkt2.meta().l3_ofs, pkt2.meta().l4_ofs), (l3, l4));
    assert!(!key2.is_compact());
}
