//! VXLAN push and pop primitives: the pushed header checked with
//! etherparse, pops of arbitrary bytes never panic, and the datapath
//! action formats (`tnl_push`, `tnl_pop`, `clone`, the tunnel key) as OVS
//! prints them.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use fvs_datapath::actions::DpAction;
use fvs_datapath::key::{ofs, FlowKey, TUN_FLAG_PRESENT};
use fvs_datapath::odp::{format_actions, format_megaflow};
use fvs_datapath::packet::PacketPool;
use fvs_datapath::tunnel::{self, HeaderParams, PopError, TnlHeader, TnlPush, TUN_FLAG_KEY};
use proptest::prelude::*;

fn params(src: IpAddr, dst: IpAddr) -> HeaderParams {
    HeaderParams {
        eth_src: [0xaa, 0x55, 0xaa, 0x55, 0, 0],
        eth_dst: [0xf8, 0xbc, 0x12, 0x44, 0x34, 0xb6],
        ip_src: src,
        ip_dst: dst,
        tos: 0,
        ttl: 64,
        df: true,
        dst_port: 4789,
        vni: 123,
        udp_csum: false,
    }
}

fn v4() -> HeaderParams {
    params(
        Ipv4Addr::new(1, 1, 2, 88).into(),
        Ipv4Addr::new(1, 1, 2, 92).into(),
    )
}

fn push_action(h: HeaderParams) -> TnlPush {
    TnlPush {
        tnl_port: 4789,
        out_port: 100,
        header: TnlHeader::vxlan(&h).unwrap(),
        max_ip_len: 1500,
    }
}

#[test]
fn pushed_headers_parse_as_vxlan() {
    let pool = PacketPool::new(4, false).unwrap();
    let inner = [0x5au8; 64];
    for (h, csum) in [
        (v4(), false),
        (
            HeaderParams {
                udp_csum: true,
                tos: 0xb8,
                df: false,
                ..v4()
            },
            true,
        ),
    ] {
        let mut p = pool.packet_from(&inner).unwrap();
        tunnel::push(&mut p, &push_action(h)).unwrap();
        let s = etherparse::SlicedPacket::from_ethernet(p.data()).unwrap();
        let Some(etherparse::NetSlice::Ipv4(ip)) = &s.net else {
            panic!("not IPv4")
        };
        let hdr = ip.header().to_header();
        assert_eq!(hdr.header_checksum, hdr.calc_header_checksum());
        assert_eq!(usize::from(hdr.total_len), 20 + 8 + 8 + inner.len());
        assert_eq!(hdr.dont_fragment, h.df);
        assert_eq!(hdr.dscp.value() << 2, h.tos);
        let Some(etherparse::TransportSlice::Udp(udp)) = &s.transport else {
            panic!("not UDP")
        };
        assert_eq!(udp.destination_port(), 4789);
        assert_eq!(usize::from(udp.length()), 8 + 8 + inner.len());
        if csum {
            let want = udp
                .to_header()
                .calc_checksum_ipv4(&hdr, udp.payload())
                .unwrap();
            assert_eq!(udp.checksum(), want);
        } else {
            assert_eq!(udp.checksum(), 0);
        }
        let vx = udp.payload();
        assert_eq!(&vx[..8], &[0x08, 0, 0, 0, 0, 0, 123, 0]);
        assert_eq!(&vx[8..], &inner[..]);
    }
}

/// IPv6 always carries a UDP checksum: summed over the header and the inner
/// frame (odd lengths too), as etherparse computes it.
#[test]
fn pushed_ipv6_headers_carry_the_udp_checksum() {
    let pool = PacketPool::new(4, false).unwrap();
    let h = params(
        "2001:db8::1".parse::<Ipv6Addr>().unwrap().into(),
        "2001:db8::2".parse::<Ipv6Addr>().unwrap().into(),
    );
    for len in [60usize, 61, 64, 1000] {
        let inner: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
        let mut p = pool.packet_from(&inner).unwrap();
        p.meta_mut().hash = 0x1234_5678;
        tunnel::push(&mut p, &push_action(h)).unwrap();
        let s = etherparse::SlicedPacket::from_ethernet(p.data()).unwrap();
        let Some(etherparse::NetSlice::Ipv6(ip)) = &s.net else {
            panic!("not IPv6")
        };
        let hdr = ip.header().to_header();
        assert_eq!(usize::from(hdr.payload_length), 8 + 8 + len);
        let Some(etherparse::TransportSlice::Udp(udp)) = &s.transport else {
            panic!("not UDP")
        };
        assert_eq!(usize::from(udp.length()), 8 + 8 + len);
        let want = udp
            .to_header()
            .calc_checksum_ipv6(&hdr, udp.payload())
            .unwrap();
        assert_eq!(udp.checksum(), want, "{len}-byte inner frame");
        assert_eq!(&udp.payload()[8..], &inner[..]);
    }
}

#[test]
fn pop_keeps_the_outer_fields() {
    let pool = PacketPool::new(4, false).unwrap();
    let s6: Ipv6Addr = "2001:db8::1".parse().unwrap();
    let d6: Ipv6Addr = "2001:db8::2".parse().unwrap();
    let h = HeaderParams {
        tos: 0x28,
        ttl: 9,
        ..params(s6.into(), d6.into())
    };
    let mut p = pool.packet_from(&[1u8; 70]).unwrap();
    tunnel::push(&mut p, &push_action(h)).unwrap();
    tunnel::pop(&mut p).unwrap();
    let t = p.meta().tunnel;
    assert_eq!(t.ipv6_src, s6.octets());
    assert_eq!(t.ipv6_dst, d6.octets());
    assert_eq!((t.tos, t.ttl, t.tun_id), (0x28, 9, 123));
    assert_eq!(
        t.flags & (TUN_FLAG_PRESENT | TUN_FLAG_KEY),
        TUN_FLAG_PRESENT | TUN_FLAG_KEY
    );
    assert_eq!(p.data(), &[1u8; 70][..]);
}

#[test]
fn pop_refuses_what_is_not_vxlan() {
    let pool = PacketPool::new(4, false).unwrap();
    let mut p = pool.packet_from(&[0u8; 10]).unwrap();
    assert_eq!(tunnel::pop(&mut p), Err(PopError::Truncated));
    let mut p = pool.packet_from(&[0u8; 100]).unwrap();
    assert_eq!(tunnel::pop(&mut p), Err(PopError::NotIp));
    assert_eq!(p.len(), 100, "a refused packet is left as it was");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Any bytes: pop either refuses them or yields a frame inside them.
    #[test]
    fn pop_never_panics(data in proptest::collection::vec(any::<u8>(), 0..200)) {
        let pool = PacketPool::new(2, false).unwrap();
        let mut p = pool.packet_from(&data).unwrap();
        match tunnel::pop(&mut p) {
            Ok(()) => prop_assert!(p.len() >= 14 && p.len() <= data.len()),
            Err(_) => prop_assert_eq!(p.data(), &data[..]),
        }
    }

    /// Valid packets with one byte of the outer headers changed: never a
    /// panic, and the inner frame is never longer than what arrived.
    #[test]
    fn corrupted_headers(at in 14usize..50, x in 1u8..=255) {
        let pool = PacketPool::new(2, false).unwrap();
        let mut p = pool.packet_from(&[7u8; 60]).unwrap();
        tunnel::push(&mut p, &push_action(v4())).unwrap();
        let mut data = p.data().to_vec();
        data[at] ^= x;
        let mut q = pool.packet_from(&data).unwrap();
        drop(p);
        if tunnel::pop(&mut q).is_ok() {
            prop_assert!(q.len() <= 60);
        }
    }
}

#[test]
fn action_formats_as_ovs() {
    let push = push_action(v4());
    assert_eq!(
        format_actions(&[DpAction::Clone(
            vec![DpAction::TunnelPush(Box::new(push)), DpAction::Output(1)].into()
        )]),
        "clone(tnl_push(tnl_port(4789),header(size=50,type=4,eth(dst=f8:bc:12:44:34:b6,src=aa:55:aa:55:00:00,dl_type=0x0800),ipv4(src=1.1.2.88,dst=1.1.2.92,proto=17,tos=0,ttl=64,frag=0x4000),udp(src=0,dst=4789,csum=0x0),vxlan(flags=0x8000000,vni=0x7b)),out_port(100)),1)"
    );
    assert_eq!(format_actions(&[DpAction::TunnelPop(4)]), "tnl_pop(4)");
    let h6 = params(
        "2001:cafe::88".parse::<Ipv6Addr>().unwrap().into(),
        "2001:cafe::92".parse::<Ipv6Addr>().unwrap().into(),
    );
    assert_eq!(
        format_actions(&[DpAction::TunnelPush(Box::new(push_action(h6)))]),
        "tnl_push(tnl_port(4789),header(size=70,type=4,eth(dst=f8:bc:12:44:34:b6,src=aa:55:aa:55:00:00,dl_type=0x86dd),ipv6(src=2001:cafe::88,dst=2001:cafe::92,label=0,proto=17,tclass=0x0,hlimit=64),udp(src=0,dst=4789,csum=0xffff),vxlan(flags=0x8000000,vni=0x7b)),out_port(100))"
    );
}

#[test]
fn decapsulated_megaflow_format() {
    // As OVS dumps a flow after tnl_pop: the tunnel attribute with its flags.
    let mut key = FlowKey::ZERO;
    key.set_in_port(4);
    key.set_be16(ofs::DL_TYPE, 0x0800);
    key.set_be16(ofs::TUN_FLAGS, TUN_FLAG_PRESENT | TUN_FLAG_KEY);
    key.set_bytes(ofs::TUN_ID, &0x7bu64.to_be_bytes());
    key.set_bytes(ofs::TUN_SRC, &[1, 1, 2, 92]);
    key.set_bytes(ofs::TUN_DST, &[1, 1, 2, 88]);
    key.b[ofs::TUN_TTL] = 64;
    let mut mask = FlowKey::ZERO;
    mask.set_bytes(ofs::IN_PORT, &[0xff; 8]);
    mask.set_be16(ofs::DL_TYPE, 0xffff);
    mask.set_bytes(ofs::TUN_ID, &[0xff; 16]);
    mask.set_be16(ofs::TUN_FLAGS, 0x8007);
    mask.b[ofs::TUN_TOS] = 0xff;
    assert_eq!(
        format_megaflow(&key, &mask),
        "tunnel(tun_id=0x7b,src=1.1.2.92,dst=1.1.2.88,flags(-df-csum+key)),recirc_id(0),in_port(4),packet_type(ns=0,id=0),eth_type(0x0800)"
    );
}
