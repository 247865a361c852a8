// VXLAN decapsulation (the `tnl_pop` path of the PMD: extraction, then
// `tunnel::pop`, then extraction of the inner frame with the tunnel
// metadata) over arbitrary outer frames; and push → pop round trips with
// arbitrary header parameters and inner frames. Both check that the outer
// headers' fast parser agrees with the general one.
//
// Shared by the fuzz target (fuzz/fuzz_targets/vxlan_decap.rs) and the replay of
// the corpus and crash reproducers in the crate's tests (`include!`d).
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::OnceLock;

use fvs_datapath::extract::{extract, ExtractStats};
use fvs_datapath::key::{ofs, FlowKey, TUN_FLAG_PRESENT};
use fvs_datapath::packet::{PacketPool, DATA_ROOM, NO_OFS};
use fvs_datapath::tunnel::{
    self, HeaderParams, TnlHeader, TnlPush, TUN_FLAG_CSUM, TUN_FLAG_DF, TUN_FLAG_KEY,
};

fn pool() -> &'static PacketPool {
    static POOL: OnceLock<PacketPool> = OnceLock::new();
    POOL.get_or_init(|| PacketPool::new(8, false).expect("pool"))
}

fn check_offsets(pkt: &fvs_datapath::Packet) {
    let m = pkt.meta();
    for o in [m.l3_ofs, m.l4_ofs] {
        assert!(
            o == NO_OFS || usize::from(o) <= pkt.len(),
            "offset {o} > {}",
            pkt.len()
        );
    }
}

/// The PMD's way: extract the outer key, pop, extract the inner key.
fn decap(frame: &[u8]) {
    let frame = &frame[..frame.len().min(DATA_ROOM)];
    let mut pkt = pool().packet_from(frame).expect("fits");
    let mut key = FlowKey::ZERO;
    let mut stats = ExtractStats::default();
    extract(&mut pkt, &mut key, &mut stats);
    let l3 = match pkt.meta().l3_ofs {
        NO_OFS => 14,
        o => usize::from(o),
    };
    let parsed = tunnel::parse(frame, l3);
    assert_eq!(parsed, tunnel::parse_general(frame, l3), "fast vs general");
    match tunnel::pop(&mut pkt) {
        Ok(()) => {
            let p = parsed.expect("pop succeeded where parse failed");
            assert!(p.inner_len >= 14);
            assert_eq!(pkt.data(), &frame[p.outer_len..p.outer_len + p.inner_len]);
            assert_eq!(pkt.meta().tunnel, p.tunnel);
            assert!(p.tunnel.is_present());
            let mut inner = FlowKey::ZERO;
            pkt.meta_mut().in_port = 7;
            extract(&mut pkt, &mut inner, &mut stats);
            check_offsets(&pkt);
            assert_eq!(inner.be16_at(ofs::TUN_FLAGS), p.tunnel.flags);
            assert_eq!(inner.bytes(ofs::TUN_ID, 8), p.tunnel.tun_id.to_be_bytes());
        }
        Err(e) => {
            assert_eq!(parsed.err(), Some(e));
            assert_eq!(pkt.data(), frame, "a refused packet was changed");
        }
    }
}

fn take<const N: usize>(d: &mut &[u8]) -> Option<[u8; N]> {
    let (a, rest) = d.split_first_chunk::<N>()?;
    *d = rest;
    Some(*a)
}

/// push → pop gives back the inner frame and the header's metadata.
fn round_trip(mut d: &[u8]) -> Option<()> {
    let [flags, tos, ttl] = take::<3>(&mut d)?;
    let v6 = flags & 1 != 0;
    let (ip_src, ip_dst): (IpAddr, IpAddr) = if v6 {
        (
            Ipv6Addr::from(take::<16>(&mut d)?).into(),
            Ipv6Addr::from(take::<16>(&mut d)?).into(),
        )
    } else {
        (
            Ipv4Addr::from(take::<4>(&mut d)?).into(),
            Ipv4Addr::from(take::<4>(&mut d)?).into(),
        )
    };
    let vni = u32::from_be_bytes(take::<4>(&mut d)?) & 0x00ff_ffff;
    let hash = u32::from_be_bytes(take::<4>(&mut d)?);
    let p = HeaderParams {
        eth_src: take::<6>(&mut d)?,
        eth_dst: take::<6>(&mut d)?,
        ip_src,
        ip_dst,
        tos,
        ttl,
        df: flags & 2 != 0,
        dst_port: u16::from_be_bytes(take::<2>(&mut d)?),
        vni,
        udp_csum: flags & 4 != 0,
    };
    let header = TnlHeader::vxlan(&p).expect("valid params");
    let inner = &d[..d.len().min(DATA_ROOM - header.len())];
    if inner.len() < 14 {
        return None;
    }
    let mut pkt = pool().packet_from(inner).expect("fits");
    pkt.meta_mut().hash = hash;
    let push = TnlPush {
        tnl_port: 1,
        out_port: 2,
        header,
        max_ip_len: u16::MAX,
    };
    tunnel::push(&mut pkt, &push).expect("push");
    let sport = u16::from_be_bytes([pkt.data()[header.l4_ofs()], pkt.data()[header.l4_ofs() + 1]]);
    assert!((tunnel::UDP_SRC_MIN..tunnel::UDP_SRC_MAX).contains(&sport));
    let l3 = header.l4_ofs() - if v6 { 40 } else { 20 };
    assert_eq!(
        tunnel::parse(pkt.data(), l3),
        tunnel::parse_general(pkt.data(), l3),
        "fast vs general"
    );
    tunnel::pop(&mut pkt).unwrap_or_else(|e| panic!("pop of a pushed packet: {e}"));
    assert_eq!(pkt.data(), inner);
    let t = pkt.meta().tunnel;
    assert_eq!(t.tun_id, u64::from(vni));
    assert_eq!(
        (t.tos, t.ttl, t.tp_src, t.tp_dst),
        (tos, ttl, sport, p.dst_port)
    );
    let mut want = TUN_FLAG_PRESENT | TUN_FLAG_KEY;
    if p.udp_csum || v6 {
        want |= TUN_FLAG_CSUM;
    }
    if p.df && !v6 {
        want |= TUN_FLAG_DF;
    }
    assert_eq!(t.flags, want);
    match (ip_src, ip_dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            assert_eq!((t.ipv4_src, t.ipv4_dst), (s.octets(), d.octets()))
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            assert_eq!((t.ipv6_src, t.ipv6_dst), (s.octets(), d.octets()))
        }
        _ => unreachable!(),
    }
    Some(())
}

/// Runs one input; panics on a finding.
pub fn check(data: &[u8]) {
    match data.split_first() {
        Some((&m, rest)) if m & 0x80 != 0 => {
            round_trip(rest);
        }
        Some((_, rest)) => decap(rest),
        None => {}
    }
}
