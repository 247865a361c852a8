//! Flow key extraction: every key field `extract()` produces, for every
//! header kind it parses, built with `etherparse`; the L3/L4 offsets it
//! records; truncation at every length; and random input never panics.

use std::ops::Range;
use std::sync::OnceLock;

use etherparse::{
    EtherType, Ethernet2Header, IcmpEchoHeader, Icmpv4Header, Icmpv4Type, Icmpv6Header, Icmpv6Type,
    IpAuthHeader, IpFragOffset, IpNumber, Ipv4Dscp, Ipv4Ecn, Ipv4Header, Ipv6FlowLabel, Ipv6Header,
    Ipv6RawExtHeader, SingleVlanHeader, TcpHeader, TcpOptionElement, UdpHeader, VlanId, VlanPcp,
};
use fvs_datapath::extract::{emc_signature, extract, key_of_sig, ExtractStats, SIG_MARK};
use fvs_datapath::key::{self, ofs, FlowKey, FRAG_ANY, FRAG_LATER, HOT_WORDS, KEY_LEN, VLAN_CFI};
use fvs_datapath::packet::{PacketPool, TunnelMeta, NO_OFS};
use proptest::prelude::*;

// ---------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------

const IN_PORT: u32 = 7;
const DST: [u8; 6] = [0x02, 0x00, 0x00, 0xaa, 0xbb, 0x01];
const SRC: [u8; 6] = [0x02, 0x00, 0x00, 0xaa, 0xbb, 0x02];
const IP4_A: [u8; 4] = [10, 1, 2, 3];
const IP4_B: [u8; 4] = [192, 168, 7, 9];
const IP6_A: [u8; 16] = [
    0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0x02, 0, 0, 0xff, 0xfe, 0xaa, 0xbb, 0x02,
];
const IP6_B: [u8; 16] = [
    0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x02,
];

fn pool() -> &'static PacketPool {
    static POOL: OnceLock<PacketPool> = OnceLock::new();
    POOL.get_or_init(|| PacketPool::new(256, false).expect("packet pool"))
}

#[derive(Debug, Clone, Copy)]
struct Extracted {
    key: FlowKey,
    stats: ExtractStats,
    l3: u16,
    l4: u16,
    hash: u32,
}

fn run_with(frame: &[u8], in_port: u32, tunnel: Option<TunnelMeta>) -> Extracted {
    let mut p = pool()
        .packet_from(frame)
        .expect("a free buffer that fits the frame");
    p.meta_mut().in_port = in_port;
    if let Some(t) = tunnel {
        p.meta_mut().tunnel = t;
    }
    let mut key = FlowKey::ONES; // extract must overwrite every byte
    let mut stats = ExtractStats::default();
    let hash = extract(&mut p, &mut key, &mut stats);
    let m = p.meta();
    assert_eq!(
        m.hash, hash,
        "the returned hash is the one stored in the metadata"
    );
    assert_eq!(p.data(), frame, "extraction does not change the packet");
    Extracted {
        key,
        stats,
        l3: m.l3_ofs,
        l4: m.l4_ofs,
        hash,
    }
}

fn run(frame: &[u8]) -> Extracted {
    run_with(frame, IN_PORT, None)
}

/// Every field of the key: (name, offset, length). Covers all KEY_LEN bytes.
const FIELDS: &[(&str, usize, usize)] = &[
    ("in_port", ofs::IN_PORT, 4),
    ("recirc_id", ofs::RECIRC_ID, 4),
    ("dl_dst", ofs::DL_DST, 6),
    ("dl_type", ofs::DL_TYPE, 2),
    ("dl_src", ofs::DL_SRC, 6),
    ("vlan_tci", ofs::VLAN_TCI, 2),
    ("vlan2_tci", ofs::VLAN2_TCI, 2),
    ("nw_proto", ofs::NW_PROTO, 1),
    ("nw_tos", ofs::NW_TOS, 1),
    ("nw_ttl", ofs::NW_TTL, 1),
    ("nw_frag", ofs::NW_FRAG, 1),
    ("tcp_flags", ofs::TCP_FLAGS, 2),
    ("nw_src", ofs::NW_SRC, 4),
    ("nw_dst", ofs::NW_DST, 4),
    ("tp_src", ofs::TP_SRC, 2),
    ("tp_dst", ofs::TP_DST, 2),
    ("ipv6_label", ofs::IPV6_LABEL, 4),
    ("ipv6_src", ofs::IPV6_SRC, 16),
    ("ipv6_dst", ofs::IPV6_DST, 16),
    ("nd_target", ofs::ND_TARGET, 16),
    ("arp_sha", ofs::ARP_SHA, 6),
    ("tun_flags", ofs::TUN_FLAGS, 2),
    ("arp_tha", ofs::ARP_THA, 6),
    ("tun_tos", ofs::TUN_TOS, 1),
    ("tun_ttl", ofs::TUN_TTL, 1),
    ("tun_id", ofs::TUN_ID, 8),
    ("tun_src", ofs::TUN_SRC, 4),
    ("tun_dst", ofs::TUN_DST, 4),
    ("tun_ipv6_src", ofs::TUN_IPV6_SRC, 16),
    ("tun_ipv6_dst", ofs::TUN_IPV6_DST, 16),
];

/// Fields filled from L3 and beyond (ARP, IPv4, IPv6, ND, transport).
const L3_FIELDS: &[usize] = &[
    ofs::NW_PROTO,
    ofs::NW_TOS,
    ofs::NW_TTL,
    ofs::NW_FRAG,
    ofs::TCP_FLAGS,
    ofs::NW_SRC,
    ofs::NW_DST,
    ofs::TP_SRC,
    ofs::TP_DST,
    ofs::IPV6_LABEL,
    ofs::IPV6_SRC,
    ofs::IPV6_DST,
    ofs::ND_TARGET,
    ofs::ARP_SHA,
    ofs::ARP_THA,
];
/// Fields filled from the transport header (ND fields included: they come from ICMPv6).
const L4_FIELDS: &[usize] = &[ofs::TCP_FLAGS, ofs::TP_SRC, ofs::TP_DST, ofs::ND_TARGET];

fn field(ofs_: usize) -> (&'static str, usize, usize) {
    *FIELDS
        .iter()
        .find(|f| f.1 == ofs_)
        .expect("known field offset")
}

fn field_bytes<'k>(k: &'k FlowKey, f: (&str, usize, usize)) -> &'k [u8] {
    &k.b[f.1..f.1 + f.2]
}

#[track_caller]
fn assert_key(actual: &FlowKey, expected: &FlowKey) {
    if actual == expected {
        return;
    }
    let mut diff = String::new();
    for &f in FIELDS {
        let (a, e) = (field_bytes(actual, f), field_bytes(expected, f));
        if a != e {
            diff += &format!("\n  {}: got {} want {}", f.0, hex(a), hex(e));
        }
    }
    panic!("flow keys differ:{diff}");
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[track_caller]
fn assert_clean(x: &Extracted) {
    assert_eq!(
        x.stats,
        ExtractStats::default(),
        "no counter moves for a well-formed frame"
    );
}

/// The key of a frame from DST/SRC with `dl_type` on port IN_PORT.
fn l2_key(dl_type: u16) -> FlowKey {
    let mut k = FlowKey::ZERO;
    k.set_in_port(IN_PORT);
    k.set_bytes(ofs::DL_DST, &DST);
    k.set_bytes(ofs::DL_SRC, &SRC);
    k.set_be16(ofs::DL_TYPE, dl_type);
    k
}

fn set_ipv4_fields(k: &mut FlowKey, ip: &Ipv4Header) {
    k.b[ofs::NW_PROTO] = ip.protocol.0;
    k.b[ofs::NW_TOS] = (ip.dscp.value() << 2) | ip.ecn.value();
    k.b[ofs::NW_TTL] = ip.time_to_live;
    k.set_bytes(ofs::NW_SRC, &ip.source);
    k.set_bytes(ofs::NW_DST, &ip.destination);
}

fn set_ipv6_fields(k: &mut FlowKey, ip: &Ipv6Header, proto: u8) {
    k.b[ofs::NW_PROTO] = proto;
    k.b[ofs::NW_TOS] = ip.traffic_class;
    k.b[ofs::NW_TTL] = ip.hop_limit;
    k.set_be32(ofs::IPV6_LABEL, ip.flow_label.value());
    k.set_bytes(ofs::IPV6_SRC, &ip.source);
    k.set_bytes(ofs::IPV6_DST, &ip.destination);
}

fn set_ports(k: &mut FlowKey, src: u16, dst: u16) {
    k.set_be16(ofs::TP_SRC, src);
    k.set_be16(ofs::TP_DST, dst);
}

// ---------------------------------------------------------------------------
// Packet building (etherparse headers; raw bytes where etherparse has none)
// ---------------------------------------------------------------------------

fn eth(ether_type: u16) -> Vec<u8> {
    Ethernet2Header {
        source: SRC,
        destination: DST,
        ether_type: EtherType(ether_type),
    }
    .to_bytes()
    .to_vec()
}

/// One VLAN tag (TCI + the ethertype that follows it).
fn tag(pcp: u8, dei: bool, vid: u16, next: u16) -> [u8; 4] {
    SingleVlanHeader {
        pcp: VlanPcp::try_new(pcp).unwrap(),
        drop_eligible_indicator: dei,
        vlan_id: VlanId::try_new(vid).unwrap(),
        ether_type: EtherType(next),
    }
    .to_bytes()
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

/// Pads a frame to the 60-byte Ethernet minimum (without FCS).
fn pad60(mut f: Vec<u8>) -> Vec<u8> {
    if f.len() < 60 {
        f.resize(60, 0xee);
    }
    f
}

#[derive(Clone, Debug)]
enum L4 {
    Tcp(TcpHeader),
    Udp { src: u16, dst: u16 },
    Sctp { src: u16, dst: u16 },
    Icmp4(Icmpv4Type),
    Icmp6(Icmpv6Type),
}

impl L4 {
    fn proto(&self) -> u8 {
        match self {
            L4::Tcp(_) => key::IPPROTO_TCP,
            L4::Udp { .. } => key::IPPROTO_UDP,
            L4::Sctp { .. } => key::IPPROTO_SCTP,
            L4::Icmp4(_) => key::IPPROTO_ICMP,
            L4::Icmp6(_) => key::IPPROTO_ICMPV6,
        }
    }
}

/// CRC32c, bit by bit (reference for SCTP).
fn crc32c_ref(data: &[u8]) -> u32 {
    let mut c = !0u32;
    for &b in data {
        c ^= b as u32;
        for _ in 0..8 {
            c = if c & 1 != 0 {
                (c >> 1) ^ 0x82f6_3b78
            } else {
                c >> 1
            };
        }
    }
    !c
}

fn sctp_bytes(src: u16, dst: u16, payload: &[u8]) -> Vec<u8> {
    let mut s = Vec::new();
    s.extend_from_slice(&src.to_be_bytes());
    s.extend_from_slice(&dst.to_be_bytes());
    s.extend_from_slice(&0x0102_0304u32.to_be_bytes());
    s.extend_from_slice(&[0; 4]);
    s.extend_from_slice(payload);
    let crc = crc32c_ref(&s);
    s[8..12].copy_from_slice(&crc.to_le_bytes());
    s
}

/// The transport segment (header + payload) with a valid checksum for the
/// given pseudo-header addresses (4 or 16 bytes each).
fn l4_bytes(l4: &L4, src: &[u8], dst: &[u8], payload: &[u8]) -> Vec<u8> {
    let v4 = src.len() == 4;
    match l4 {
        L4::Tcp(t) => {
            let mut t = t.clone();
            t.checksum = if v4 {
                t.calc_checksum_ipv4_raw(src.try_into().unwrap(), dst.try_into().unwrap(), payload)
                    .unwrap()
            } else {
                t.calc_checksum_ipv6_raw(src.try_into().unwrap(), dst.try_into().unwrap(), payload)
                    .unwrap()
            };
            cat(&[&t.to_bytes(), payload])
        }
        L4::Udp { src: sp, dst: dp } => {
            let mut u = UdpHeader {
                source_port: *sp,
                destination_port: *dp,
                length: 8 + payload.len() as u16,
                checksum: 0,
            };
            u.checksum = if v4 {
                u.calc_checksum_ipv4_raw(src.try_into().unwrap(), dst.try_into().unwrap(), payload)
                    .unwrap()
            } else {
                u.calc_checksum_ipv6_raw(src.try_into().unwrap(), dst.try_into().unwrap(), payload)
                    .unwrap()
            };
            cat(&[&u.to_bytes(), payload])
        }
        L4::Sctp { src, dst } => sctp_bytes(*src, *dst, payload),
        L4::Icmp4(t) => cat(&[
            &Icmpv4Header::with_checksum(t.clone(), payload).to_bytes(),
            payload,
        ]),
        L4::Icmp6(t) => {
            let h = Icmpv6Header::with_checksum(
                *t,
                src.try_into().unwrap(),
                dst.try_into().unwrap(),
                payload,
            )
            .unwrap();
            cat(&[&h.to_bytes(), payload])
        }
    }
}

fn ip4_hdr(ttl: u8) -> Ipv4Header {
    let mut ip = Ipv4Header::new(0, ttl, IpNumber(0), IP4_A, IP4_B).unwrap();
    ip.identification = 0x1234;
    ip
}

/// An IPv4 datagram: `ip` with protocol, length and checksum filled in around `body`.
fn ipv4_datagram(mut ip: Ipv4Header, proto: u8, body: &[u8]) -> Vec<u8> {
    ip.protocol = IpNumber(proto);
    ip.total_len = (ip.header_len() + body.len()) as u16;
    ip.header_checksum = ip.calc_header_checksum();
    cat(&[&ip.to_bytes(), body])
}

fn ipv4_l4(ip: Ipv4Header, l4: &L4, payload: &[u8]) -> Vec<u8> {
    let body = l4_bytes(l4, &ip.source, &ip.destination, payload);
    ipv4_datagram(ip, l4.proto(), &body)
}

fn ip6_hdr(hop_limit: u8) -> Ipv6Header {
    Ipv6Header {
        traffic_class: 0xb8,
        flow_label: Ipv6FlowLabel::try_new(0x5_4321).unwrap(),
        payload_length: 0,
        next_header: IpNumber(0),
        hop_limit,
        source: IP6_A,
        destination: IP6_B,
    }
}

/// IPv6 extension headers.
#[derive(Clone, Debug)]
enum Ext {
    /// Hop-by-hop options, `n` 8-byte units beyond the first.
    Hop(usize),
    /// Destination options.
    Dest(usize),
    /// Type-0 routing header with `segleft` and the addresses.
    Routing(u8, Vec<[u8; 16]>),
    /// Fragment header: offset (8-byte units), more fragments.
    Frag(u16, bool),
    /// Authentication header with an ICV of `n` 4-byte words.
    Ah(usize),
}

impl Ext {
    fn number(&self) -> u8 {
        match self {
            Ext::Hop(_) => 0,
            Ext::Dest(_) => 60,
            Ext::Routing(..) => 43,
            Ext::Frag(..) => 44,
            Ext::Ah(_) => 51,
        }
    }

    fn bytes(&self, next: u8) -> Vec<u8> {
        let next = IpNumber(next);
        match self {
            Ext::Hop(n) | Ext::Dest(n) => {
                // A PadN option filling the header.
                let mut payload = vec![0u8; 6 + 8 * n];
                payload[0] = 1;
                payload[1] = (payload.len() - 2) as u8;
                Ipv6RawExtHeader::new_raw(next, &payload)
                    .unwrap()
                    .to_bytes()
                    .to_vec()
            }
            Ext::Routing(segleft, addrs) => {
                let mut payload = vec![0u8, *segleft, 0, 0, 0, 0];
                for a in addrs {
                    payload.extend_from_slice(a);
                }
                Ipv6RawExtHeader::new_raw(next, &payload)
                    .unwrap()
                    .to_bytes()
                    .to_vec()
            }
            Ext::Frag(off, more) => {
                // Raw bytes: etherparse 0.16 puts M and the offset's low bits in
                // the wrong places (JulianSchmid/etherparse#150, fixed in 0.20).
                let mut b = vec![next.0, 0];
                b.extend_from_slice(&((off << 3) | *more as u16).to_be_bytes());
                b.extend_from_slice(&0xabcd_0001u32.to_be_bytes());
                b
            }
            Ext::Ah(n) => {
                let icv: Vec<u8> = (0..4 * *n as u8).collect();
                IpAuthHeader::new(next, 0x1111_2222, 7, &icv)
                    .unwrap()
                    .to_bytes()
                    .to_vec()
            }
        }
    }
}

/// An IPv6 packet: `ip`, the extension headers chained in order, then `body`
/// (an upper-layer `proto` segment).
fn ipv6_datagram(mut ip: Ipv6Header, exts: &[Ext], proto: u8, body: &[u8]) -> Vec<u8> {
    let mut ext_bytes = Vec::new();
    for (i, e) in exts.iter().enumerate() {
        let next = exts.get(i + 1).map_or(proto, Ext::number);
        ext_bytes.extend(e.bytes(next));
    }
    ip.next_header = IpNumber(exts.first().map_or(proto, Ext::number));
    ip.payload_length = (ext_bytes.len() + body.len()) as u16;
    cat(&[&ip.to_bytes(), &ext_bytes, body])
}

fn ipv6_l4(ip: Ipv6Header, exts: &[Ext], l4: &L4, payload: &[u8]) -> Vec<u8> {
    let body = l4_bytes(l4, &ip.source, &ip.destination, payload);
    ipv6_datagram(ip, exts, l4.proto(), &body)
}

fn tcp_hdr(src: u16, dst: u16) -> TcpHeader {
    let mut t = TcpHeader::new(src, dst, 0x0102_0304, 4096);
    t.syn = true;
    t
}

/// An ARP (or RARP) packet body.
fn arp_body(htype: u16, ptype: u16, hlen: u8, plen: u8, op: u16) -> Vec<u8> {
    let mut a = Vec::new();
    a.extend_from_slice(&htype.to_be_bytes());
    a.extend_from_slice(&ptype.to_be_bytes());
    a.extend_from_slice(&[hlen, plen]);
    a.extend_from_slice(&op.to_be_bytes());
    a.extend_from_slice(&SRC);
    a.extend_from_slice(&IP4_A);
    a.extend_from_slice(&[0x02, 0x11, 0x22, 0x33, 0x44, 0x55]);
    a.extend_from_slice(&IP4_B);
    a
}

const ND_NS: u8 = 135;
const ND_NA: u8 = 136;
const LLA: [u8; 6] = [0x02, 0xde, 0xad, 0xbe, 0xef, 0x01];
const ND_TARGET: [u8; 16] = [
    0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x99,
];

fn nd_opt(kind: u8, mac: [u8; 6]) -> Vec<u8> {
    cat(&[&[kind, 1], &mac])
}

/// An ND message (NS/NA) over IPv6 with `options` after the target.
fn nd_frame(nd_type: u8, code: u8, options: &[u8]) -> Vec<u8> {
    let flags = if nd_type == ND_NA {
        [0x60, 0, 0, 0]
    } else {
        [0; 4]
    };
    let t = Icmpv6Type::Unknown {
        type_u8: nd_type,
        code_u8: code,
        bytes5to8: flags,
    };
    let payload = cat(&[&ND_TARGET, options]);
    let mut ip = ip6_hdr(255);
    ip.destination = [0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, 0, 0, 0x99];
    cat(&[
        &eth(key::ETH_TYPE_IPV6),
        &ipv6_l4(ip, &[], &L4::Icmp6(t), &payload),
    ])
}

// ---------------------------------------------------------------------------
// Sanity of the harness itself
// ---------------------------------------------------------------------------

#[test]
fn field_table_covers_the_key_exactly_once() {
    let mut seen = [0u8; KEY_LEN];
    for &(_, o, l) in FIELDS {
        for s in &mut seen[o..o + l] {
            *s += 1;
        }
    }
    assert!(seen.iter().all(|&s| s == 1), "{seen:?}");
}

#[test]
fn crc32c_reference_matches_known_vectors() {
    assert_eq!(crc32c_ref(b"123456789"), 0xe306_9283);
    assert_eq!(crc32c_ref(&[0u8; 32]), 0x8a91_36aa);
    assert_eq!(fvs_datapath::csum::crc32c(b"123456789"), 0xe306_9283);
}

// ---------------------------------------------------------------------------
// Ethernet, VLAN, 802.3
// ---------------------------------------------------------------------------

#[test]
fn ethernet_only_unknown_ethertype() {
    let f = pad60(eth(0x88cc));
    let x = run(&f);
    assert_clean(&x);
    assert_key(&x.key, &l2_key(0x88cc));
    assert_eq!((x.l3, x.l4), (14, NO_OFS));
}

#[test]
fn metadata_port_recirc_and_tunnel_go_into_the_key() {
    let f = pad60(eth(0x88cc));
    let t = TunnelMeta {
        tun_id: 0x0000_0000_00ab_cdef,
        ipv4_src: [172, 16, 0, 1],
        ipv4_dst: [172, 16, 0, 2],
        ipv6_src: IP6_A,
        ipv6_dst: IP6_B,
        tos: 0x28,
        ttl: 63,
        flags: key::TUN_FLAG_PRESENT | 1,
        tp_src: 1234,
        tp_dst: 4789,
    };
    let x = run_with(&f, 0xdead_beef, Some(t));
    let mut k = l2_key(0x88cc);
    k.set_in_port(0xdead_beef);
    k.set_bytes(ofs::TUN_ID, &t.tun_id.to_be_bytes());
    k.set_bytes(ofs::TUN_SRC, &t.ipv4_src);
    k.set_bytes(ofs::TUN_DST, &t.ipv4_dst);
    k.set_bytes(ofs::TUN_IPV6_SRC, &t.ipv6_src);
    k.set_bytes(ofs::TUN_IPV6_DST, &t.ipv6_dst);
    k.set_be16(ofs::TUN_FLAGS, t.flags);
    k.b[ofs::TUN_TOS] = t.tos;
    k.b[ofs::TUN_TTL] = t.ttl;
    assert_key(&x.key, &k);
    assert_eq!(x.key.in_port(), 0xdead_beef);

    // Tunnel metadata without the "present" flag is not part of the key.
    let absent = TunnelMeta { flags: 0, ..t };
    let y = run_with(&f, 0xdead_beef, Some(absent));
    let mut k = l2_key(0x88cc);
    k.set_in_port(0xdead_beef);
    assert_key(&y.key, &k);
    assert_ne!(x.hash, y.hash, "tunnel words are hashed when present");
}

#[test]
fn recirc_id_goes_into_the_key() {
    let f = pad60(eth(0x88cc));
    let mut p = pool().packet_from(&f).unwrap();
    p.meta_mut().in_port = IN_PORT;
    p.meta_mut().recirc_id = 0x55;
    let mut k = FlowKey::ZERO;
    let mut s = ExtractStats::default();
    extract(&mut p, &mut k, &mut s);
    let mut want = l2_key(0x88cc);
    want.set_recirc_id(0x55);
    assert_key(&k, &want);
    assert_eq!(k.recirc_id(), 0x55);
}

#[test]
fn vlan_8021q_ipv4_udp() {
    let ip = ip4_hdr(64);
    let f = pad60(cat(&[
        &eth(key::ETH_TYPE_VLAN),
        &tag(5, false, 100, key::ETH_TYPE_IP),
        &ipv4_l4(ip.clone(), &L4::Udp { src: 5353, dst: 53 }, b"q"),
    ]));
    let x = run(&f);
    assert_clean(&x);
    let mut k = l2_key(key::ETH_TYPE_IP);
    k.set_be16(ofs::VLAN_TCI, (5 << 13) | VLAN_CFI | 100);
    set_ipv4_fields(&mut k, &ip.clone());
    k.b[ofs::NW_PROTO] = key::IPPROTO_UDP;
    set_ports(&mut k, 5353, 53);
    assert_key(&x.key, &k);
    assert_eq!((x.l3, x.l4), (18, 38));
}

#[test]
fn vlan_tci_zero_still_marks_a_tag_and_dei_is_kept() {
    // Priority tag (VID 0, PCP 0): the CFI "present" bit tells it from no tag.
    let f = pad60(cat(&[&eth(key::ETH_TYPE_VLAN), &tag(0, false, 0, 0x88cc)]));
    let x = run(&f);
    assert_clean(&x);
    let mut k = l2_key(0x88cc);
    k.set_be16(ofs::VLAN_TCI, VLAN_CFI);
    assert_key(&x.key, &k);
    assert_eq!(x.l3, 18);

    // A DEI bit on the wire is the same bit: the TCI stays "present".
    let f = pad60(cat(&[
        &eth(key::ETH_TYPE_VLAN),
        &tag(7, true, 4095, 0x88cc),
    ]));
    let x = run(&f);
    assert_eq!(x.key.be16_at(ofs::VLAN_TCI), 0xffff);
}

#[test]
fn qinq_8021ad_outer_8021q_inner() {
    let ip = ip4_hdr(9);
    let f = pad60(cat(&[
        &eth(key::ETH_TYPE_VLAN_8021AD),
        &tag(3, false, 1000, key::ETH_TYPE_VLAN),
        &tag(1, false, 20, key::ETH_TYPE_IP),
        &ipv4_l4(ip.clone(), &L4::Udp { src: 1, dst: 2 }, &[]),
    ]));
    let x = run(&f);
    assert_clean(&x);
    let mut k = l2_key(key::ETH_TYPE_IP);
    k.set_be16(ofs::VLAN_TCI, (3 << 13) | VLAN_CFI | 1000);
    k.set_be16(ofs::VLAN2_TCI, (1 << 13) | VLAN_CFI | 20);
    set_ipv4_fields(&mut k, &ip);
    k.b[ofs::NW_PROTO] = key::IPPROTO_UDP;
    set_ports(&mut k, 1, 2);
    assert_key(&x.key, &k);
    assert_eq!((x.l3, x.l4), (22, 42));
}

#[test]
fn qinq_two_8021q_tags() {
    let f = pad60(cat(&[
        &eth(key::ETH_TYPE_VLAN),
        &tag(0, false, 10, key::ETH_TYPE_VLAN),
        &tag(0, false, 11, 0x88b5),
    ]));
    let x = run(&f);
    assert_clean(&x);
    let mut k = l2_key(0x88b5);
    k.set_be16(ofs::VLAN_TCI, VLAN_CFI | 10);
    k.set_be16(ofs::VLAN2_TCI, VLAN_CFI | 11);
    assert_key(&x.key, &k);
    assert_eq!((x.l3, x.l4), (22, NO_OFS));
}

#[test]
fn third_vlan_tag_stays_payload() {
    let ip = ip4_hdr(64);
    let f = cat(&[
        &eth(key::ETH_TYPE_VLAN_8021AD),
        &tag(0, false, 1, key::ETH_TYPE_VLAN),
        &tag(0, false, 2, key::ETH_TYPE_VLAN),
        &tag(0, false, 3, key::ETH_TYPE_IP),
        &ipv4_l4(ip, &L4::Udp { src: 1, dst: 2 }, &[]),
    ]);
    let x = run(&f);
    assert_clean(&x);
    let mut k = l2_key(key::ETH_TYPE_VLAN);
    k.set_be16(ofs::VLAN_TCI, VLAN_CFI | 1);
    k.set_be16(ofs::VLAN2_TCI, VLAN_CFI | 2);
    assert_key(&x.key, &k);
    assert_eq!((x.l3, x.l4), (22, NO_OFS));
}

#[test]
fn ieee_8023_llc_without_snap() {
    // STP BPDU: 802.3 length, LLC 42 42 03.
    let mut f = eth(0x0026);
    f.extend_from_slice(&[0x42, 0x42, 0x03, 0, 0, 0, 0, 0]);
    let f = pad60(f);
    let x = run(&f);
    assert_clean(&x);
    assert_key(&x.key, &l2_key(key::DL_TYPE_NONE));
    assert_eq!((x.l3, x.l4), (NO_OFS, NO_OFS));

    // Tagged 802.3 frame.
    let mut f = cat(&[&eth(key::ETH_TYPE_VLAN), &tag(0, false, 9, 0x0026)]);
    f.extend_from_slice(&[0x42, 0x42, 0x03]);
    let x = run(&pad60(f));
    assert_clean(&x);
    let mut k = l2_key(key::DL_TYPE_NONE);
    k.set_be16(ofs::VLAN_TCI, VLAN_CFI | 9);
    assert_key(&x.key, &k);
}

#[test]
fn ieee_8023_llc_snap_with_ethertype() {
    let ip = ip4_hdr(33);
    let snap = [0xaa, 0xaa, 0x03, 0, 0, 0, 0x08, 0x00];
    let dgram = ipv4_l4(ip.clone(), &L4::Udp { src: 7, dst: 9 }, b"hello");
    let f = cat(&[&eth((snap.len() + dgram.len()) as u16), &snap, &dgram]);
    let x = run(&f);
    assert_clean(&x);
    let mut k = l2_key(key::ETH_TYPE_IP);
    set_ipv4_fields(&mut k, &ip);
    k.b[ofs::NW_PROTO] = key::IPPROTO_UDP;
    set_ports(&mut k, 7, 9);
    assert_key(&x.key, &k);
    assert_eq!((x.l3, x.l4), (22, 42));
}

#[test]
fn ieee_8023_snap_with_nonzero_oui_has_no_ethertype() {
    // Cisco CDP: SNAP with OUI 00:00:0c.
    let mut f = eth(0x0030);
    f.extend_from_slice(&[0xaa, 0xaa, 0x03, 0x00, 0x00, 0x0c, 0x20, 0x00]);
    let x = run(&pad60(f));
    assert_clean(&x);
    assert_key(&x.key, &l2_key(key::DL_TYPE_NONE));
    assert_eq!(x.l3, NO_OFS);
}

#[test]
fn ieee_8023_snap_with_length_as_ethertype_has_no_ethertype() {
    // As OVS: a SNAP "type" below 0x600 is not an ethertype either.
    let mut f = eth(0x0030);
    f.extend_from_slice(&[0xaa, 0xaa, 0x03, 0, 0, 0, 0x00, 0x40]);
    let x = run(&pad60(f));
    assert_clean(&x);
    assert_key(&x.key, &l2_key(key::DL_TYPE_NONE));
    assert_eq!(x.l3, NO_OFS);
}

#[test]
fn ethertype_0x0600_is_an_ethertype_not_a_length() {
    let f = pad60(eth(0x0600));
    let x = run(&f);
    assert_key(&x.key, &l2_key(0x0600));
    assert_eq!(x.l3, 14);
}

// ---------------------------------------------------------------------------
// ARP / RARP
// ---------------------------------------------------------------------------

fn arp_key(dl_type: u16, op: u8) -> FlowKey {
    let mut k = l2_key(dl_type);
    k.b[ofs::NW_PROTO] = op;
    k.set_bytes(ofs::ARP_SHA, &SRC);
    k.set_bytes(ofs::NW_SRC, &IP4_A);
    k.set_bytes(ofs::ARP_THA, &[0x02, 0x11, 0x22, 0x33, 0x44, 0x55]);
    k.set_bytes(ofs::NW_DST, &IP4_B);
    k
}

#[test]
fn arp_request_and_reply() {
    for op in [1u16, 2] {
        let f = pad60(cat(&[
            &eth(key::ETH_TYPE_ARP),
            &arp_body(1, 0x0800, 6, 4, op),
        ]));
        let x = run(&f);
        assert_clean(&x);
        assert_key(&x.key, &arp_key(key::ETH_TYPE_ARP, op as u8));
        assert_eq!((x.l3, x.l4), (14, NO_OFS));
    }
}

#[test]
fn arp_over_vlan() {
    let f = pad60(cat(&[
        &eth(key::ETH_TYPE_VLAN),
        &tag(0, false, 42, key::ETH_TYPE_ARP),
        &arp_body(1, 0x0800, 6, 4, 1),
    ]));
    let x = run(&f);
    assert_clean(&x);
    let mut k = arp_key(key::ETH_TYPE_ARP, 1);
    k.set_be16(ofs::VLAN_TCI, VLAN_CFI | 42);
    assert_key(&x.key, &k);
    assert_eq!(x.l3, 18);
}

#[test]
fn rarp_request_and_reply() {
    for op in [3u16, 4] {
        let f = pad60(cat(&[
            &eth(key::ETH_TYPE_RARP),
            &arp_body(1, 0x0800, 6, 4, op),
        ]));
        let x = run(&f);
        assert_clean(&x);
        assert_key(&x.key, &arp_key(key::ETH_TYPE_RARP, op as u8));
    }
}

#[test]
fn arp_opcode_above_255_is_not_stored() {
    let f = pad60(cat(&[
        &eth(key::ETH_TYPE_ARP),
        &arp_body(1, 0x0800, 6, 4, 0x0101),
    ]));
    let x = run(&f);
    assert_clean(&x);
    assert_key(&x.key, &arp_key(key::ETH_TYPE_ARP, 0));
}

#[test]
fn non_ethernet_ipv4_arp_is_malformed() {
    for (htype, ptype, hlen, plen) in [
        (6u16, 0x0800u16, 6u8, 4u8),
        (1, 0x86dd, 6, 16),
        (1, 0x0800, 8, 4),
        (1, 0x0800, 6, 6),
    ] {
        let f = pad60(cat(&[
            &eth(key::ETH_TYPE_ARP),
            &arp_body(htype, ptype, hlen, plen, 1),
        ]));
        let x = run(&f);
        assert_eq!(
            x.stats,
            ExtractStats {
                truncated: 0,
                malformed: 1
            },
            "{htype} {ptype:#x} {hlen} {plen}"
        );
        assert_key(&x.key, &l2_key(key::ETH_TYPE_ARP));
        assert_eq!((x.l3, x.l4), (14, NO_OFS));
    }
}

// ---------------------------------------------------------------------------
// IPv4
// ---------------------------------------------------------------------------

#[test]
fn ipv4_with_options_tcp_with_options_and_flags() {
    let mut ip = ip4_hdr(17);
    ip.dscp = Ipv4Dscp::try_new(46).unwrap();
    ip.ecn = Ipv4Ecn::try_new(1).unwrap();
    // Record route (7 bytes) + EOL padding: IHL 7.
    ip.options = [7, 7, 4, 0, 0, 0, 0, 0].into();
    let mut t = TcpHeader::new(40000, 443, 1, 1000);
    t.ns = true;
    t.cwr = true;
    t.ece = true;
    t.urg = true;
    t.ack = true;
    t.psh = true;
    t.rst = true;
    t.syn = true;
    t.fin = true;
    t.set_options(&[
        TcpOptionElement::MaximumSegmentSize(1460),
        TcpOptionElement::SelectiveAcknowledgementPermitted,
        TcpOptionElement::Timestamp(1, 2),
        TcpOptionElement::Noop,
        TcpOptionElement::WindowScale(7),
    ])
    .unwrap();
    assert!(t.header_len() > 20);
    let f = cat(&[
        &eth(key::ETH_TYPE_IP),
        &ipv4_l4(ip.clone(), &L4::Tcp(t), b"GET / HTTP/1.0\r\n"),
    ]);
    let x = run(&f);
    assert_clean(&x);
    let mut k = l2_key(key::ETH_TYPE_IP);
    set_ipv4_fields(&mut k, &ip);
    assert_eq!(k.b[ofs::NW_TOS], 0xb9);
    k.b[ofs::NW_PROTO] = key::IPPROTO_TCP;
    set_ports(&mut k, 40000, 443);
    k.set_be16(ofs::TCP_FLAGS, 0x1ff);
    assert_key(&x.key, &k);
    assert_eq!((x.l3, x.l4), (14, 14 + 28));
}

#[test]
fn tcp_flags_each_bit_and_reserved_bits() {
    type SetFlag = fn(&mut TcpHeader);
    let bits: [(SetFlag, u16); 9] = [
        (|t| t.fin = true, 0x001),
        (|t| t.syn = true, 0x002),
        (|t| t.rst = true, 0x004),
        (|t| t.psh = true, 0x008),
        (|t| t.ack = true, 0x010),
        (|t| t.urg = true, 0x020),
        (|t| t.ece = true, 0x040),
        (|t| t.cwr = true, 0x080),
        (|t| t.ns = true, 0x100),
    ];
    for (set, flag) in bits {
        let mut t = TcpHeader::new(1, 2, 3, 4);
        set(&mut t);
        let f = cat(&[
            &eth(key::ETH_TYPE_IP),
            &ipv4_l4(ip4_hdr(64), &L4::Tcp(t), &[]),
        ]);
        let x = run(&f);
        assert_clean(&x);
        assert_eq!(x.key.be16_at(ofs::TCP_FLAGS), flag);
    }
    // The three reserved bits are part of the 12-bit field (as OVS); the data
    // offset nibble is not.
    let f = cat(&[
        &eth(key::ETH_TYPE_IP),
        &ipv4_l4(ip4_hdr(64), &L4::Tcp(TcpHeader::new(1, 2, 3, 4)), &[]),
    ]);
    let mut f = f;
    f[14 + 20 + 12] |= 0x0e;
    let x = run(&f);
    assert_eq!(x.key.be16_at(ofs::TCP_FLAGS), 0x0e00);
}

#[test]
fn ipv4_udp() {
    let ip = ip4_hdr(1);
    let f = pad60(cat(&[
        &eth(key::ETH_TYPE_IP),
        &ipv4_l4(ip.clone(), &L4::Udp { src: 67, dst: 68 }, &[1, 2, 3]),
    ]));
    let x = run(&f);
    assert_clean(&x);
    let mut k = l2_key(key::ETH_TYPE_IP);
    set_ipv4_fields(&mut k, &ip);
    k.b[ofs::NW_PROTO] = key::IPPROTO_UDP;
    set_ports(&mut k, 67, 68);
    assert_key(&x.key, &k);
    assert_eq!((x.l3, x.l4), (14, 34));
}

#[test]
fn ipv4_sctp() {
    let ip = ip4_hdr(64);
    let chunk = [
        0x01, 0, 0, 0x14, 0, 0, 0, 1, 0, 0, 0x10, 0, 0, 1, 0, 1, 0, 0, 0, 1,
    ];
    let f = cat(&[
        &eth(key::ETH_TYPE_IP),
        &ipv4_l4(
            ip.clone(),
            &L4::Sctp {
                src: 2905,
                dst: 36412,
            },
            &chunk,
        ),
    ]);
    let x = run(&f);
    assert_clean(&x);
    let mut k = l2_key(key::ETH_TYPE_IP);
    set_ipv4_fields(&mut k, &ip);
    k.b[ofs::NW_PROTO] = key::IPPROTO_SCTP;
    set_ports(&mut k, 2905, 36412);
    assert_key(&x.key, &k);
    assert_eq!((x.l3, x.l4), (14, 34));
}

#[test]
fn ipv4_icmp_type_and_code_in_low_bytes() {
    let ip = ip4_hdr(64);
    let echo = Icmpv4Type::EchoRequest(IcmpEchoHeader { id: 0x4242, seq: 9 });
    let unreach = Icmpv4Type::Unknown {
        type_u8: 3,
        code_u8: 4,
        bytes5to8: [0, 0, 5, 0xdc],
    };
    for (t, ty, code) in [(echo, 8u8, 0u8), (unreach, 3, 4)] {
        let f = pad60(cat(&[
            &eth(key::ETH_TYPE_IP),
            &ipv4_l4(ip.clone(), &L4::Icmp4(t), b"ping"),
        ]));
        let x = run(&f);
        assert_clean(&x);
        let mut k = l2_key(key::ETH_TYPE_IP);
        set_ipv4_fields(&mut k, &ip);
        k.b[ofs::NW_PROTO] = key::IPPROTO_ICMP;
        set_ports(&mut k, ty as u16, code as u16);
        assert_key(&x.key, &k);
        assert_eq!((x.l3, x.l4), (14, 34));
    }
}

#[test]
fn ipv4_unknown_protocol_has_no_l4() {
    let ip = ip4_hdr(64);
    let f = pad60(cat(&[
        &eth(key::ETH_TYPE_IP),
        &ipv4_datagram(ip.clone(), 47, &[0, 0, 0x65, 0x58]),
    ]));
    let x = run(&f);
    assert_clean(&x);
    let mut k = l2_key(key::ETH_TYPE_IP);
    set_ipv4_fields(&mut k, &ip);
    k.b[ofs::NW_PROTO] = 47;
    assert_key(&x.key, &k);
    assert_eq!((x.l3, x.l4), (14, NO_OFS));
}

#[test]
fn ipv4_dont_fragment_is_not_a_fragment() {
    let mut ip = ip4_hdr(64);
    ip.dont_fragment = true;
    let f = pad60(cat(&[
        &eth(key::ETH_TYPE_IP),
        &ipv4_l4(ip, &L4::Udp { src: 1, dst: 2 }, &[]),
    ]));
    let x = run(&f);
    assert_eq!(x.key.u8_at(ofs::NW_FRAG), 0);
    assert_eq!(x.l4, 34);
}

#[test]
fn ipv4_first_fragment_has_l4() {
    let mut ip = ip4_hdr(64);
    ip.dont_fragment = false;
    ip.more_fragments = true;
    let f = cat(&[
        &eth(key::ETH_TYPE_IP),
        &ipv4_l4(
            ip.clone(),
            &L4::Udp {
                src: 1000,
                dst: 2000,
            },
            &[0x55; 32],
        ),
    ]);
    let x = run(&f);
    assert_clean(&x);
    let mut k = l2_key(key::ETH_TYPE_IP);
    set_ipv4_fields(&mut k, &ip);
    k.b[ofs::NW_PROTO] = key::IPPROTO_UDP;
    k.b[ofs::NW_FRAG] = FRAG_ANY;
    set_ports(&mut k, 1000, 2000);
    assert_key(&x.key, &k);
    assert_eq!((x.l3, x.l4), (14, 34));
}

#[test]
fn ipv4_later_fragment_has_no_l4() {
    for more in [true, false] {
        let mut ip = ip4_hdr(64);
        ip.dont_fragment = false;
        ip.more_fragments = more;
        ip.fragment_offset = IpFragOffset::try_new(5).unwrap();
        // The payload looks like a TCP header but must not be parsed as one.
        let body = l4_bytes(&L4::Tcp(tcp_hdr(80, 8080)), &IP4_A, &IP4_B, &[]);
        let f = pad60(cat(&[
            &eth(key::ETH_TYPE_IP),
            &ipv4_datagram(ip.clone(), key::IPPROTO_TCP, &body),
        ]));
        let x = run(&f);
        assert_clean(&x);
        let mut k = l2_key(key::ETH_TYPE_IP);
        set_ipv4_fields(&mut k, &ip);
        k.b[ofs::NW_PROTO] = key::IPPROTO_TCP;
        k.b[ofs::NW_FRAG] = FRAG_ANY | FRAG_LATER;
        assert_key(&x.key, &k);
        assert_eq!((x.l3, x.l4), (14, NO_OFS));
    }
}

#[test]
fn ipv4_ethernet_padding_is_ignored() {
    let ip = ip4_hdr(64);
    let dgram = ipv4_l4(ip, &L4::Udp { src: 1, dst: 2 }, &[]);
    let unpadded = cat(&[&eth(key::ETH_TYPE_IP), &dgram]);
    assert_eq!(unpadded.len(), 42);
    let a = run(&unpadded);
    for pad in [0u8, 0xff] {
        let mut f = unpadded.clone();
        f.resize(60, pad);
        let b = run(&f);
        assert_clean(&b);
        assert_key(&b.key, &a.key);
        assert_eq!((b.l3, b.l4, b.hash), (a.l3, a.l4, a.hash));
    }

    // A TCP header cut by the IP total length is truncated even though the
    // Ethernet padding would have supplied enough bytes.
    let t = l4_bytes(&L4::Tcp(tcp_hdr(1, 2)), &IP4_A, &IP4_B, &[]);
    let mut f = cat(&[
        &eth(key::ETH_TYPE_IP),
        &ipv4_datagram(ip4_hdr(64), key::IPPROTO_TCP, &t[..12]),
    ]);
    f.extend_from_slice(&t[12..]);
    let f = pad60(f);
    let x = run(&f);
    assert_eq!(
        x.stats,
        ExtractStats {
            truncated: 1,
            malformed: 0
        }
    );
    assert_eq!(
        x.key.u8_at(ofs::NW_PROTO),
        key::IPPROTO_TCP,
        "L3 fields are kept"
    );
    assert_eq!(x.key.be16_at(ofs::TP_SRC), 0);
    assert_eq!((x.l3, x.l4), (14, NO_OFS));
}

#[test]
fn ipv4_malformed_headers() {
    let good = cat(&[
        &eth(key::ETH_TYPE_IP),
        &ipv4_l4(ip4_hdr(64), &L4::Udp { src: 1, dst: 2 }, &[0; 20]),
    ]);
    type Mutate = fn(&mut [u8]);
    let cases: [(&str, Mutate); 4] = [
        ("version 5", |f| f[14] = 0x55),
        ("ihl 4", |f| f[14] = 0x44),
        ("total length below ihl", |f| {
            f[16..18].copy_from_slice(&19u16.to_be_bytes())
        }),
        ("ihl beyond total length", |f| {
            f[14] = 0x4f;
            f[16..18].copy_from_slice(&40u16.to_be_bytes());
        }),
    ];
    for (what, mutate) in cases {
        let mut f = good.clone();
        mutate(&mut f);
        let x = run(&f);
        assert_eq!(
            x.stats,
            ExtractStats {
                truncated: 0,
                malformed: 1
            },
            "{what}"
        );
        assert_key(&x.key, &l2_key(key::ETH_TYPE_IP));
        assert_eq!((x.l3, x.l4), (14, NO_OFS), "{what}");
    }
}

#[test]
fn tcp_with_bad_data_offset_is_malformed() {
    let ip = ip4_hdr(64);
    for doff in [0u8, 4, 15] {
        let mut f = cat(&[
            &eth(key::ETH_TYPE_IP),
            &ipv4_l4(ip.clone(), &L4::Tcp(tcp_hdr(1, 2)), &[0; 8]),
        ]);
        f[14 + 20 + 12] = doff << 4;
        let x = run(&f);
        assert_eq!(
            x.stats,
            ExtractStats {
                truncated: 0,
                malformed: 1
            },
            "doff {doff}"
        );
        let mut k = l2_key(key::ETH_TYPE_IP);
        set_ipv4_fields(&mut k, &ip);
        k.b[ofs::NW_PROTO] = key::IPPROTO_TCP;
        assert_key(&x.key, &k);
        assert_eq!((x.l3, x.l4), (14, NO_OFS));
    }
}

// ---------------------------------------------------------------------------
// IPv6
// ---------------------------------------------------------------------------

#[test]
fn ipv6_tcp_plain() {
    let ip = ip6_hdr(64);
    let f = cat(&[
        &eth(key::ETH_TYPE_IPV6),
        &ipv6_l4(ip.clone(), &[], &L4::Tcp(tcp_hdr(22, 50000)), b"ssh"),
    ]);
    let x = run(&f);
    assert_clean(&x);
    let mut k = l2_key(key::ETH_TYPE_IPV6);
    set_ipv6_fields(&mut k, &ip, key::IPPROTO_TCP);
    set_ports(&mut k, 22, 50000);
    k.set_be16(ofs::TCP_FLAGS, 0x002);
    assert_key(&x.key, &k);
    assert_eq!(k.be32_at(ofs::IPV6_LABEL), 0x5_4321);
    assert_eq!((x.l3, x.l4), (14, 54));
}

#[test]
fn ipv6_each_extension_header_reaches_l4() {
    let exts: Vec<(Vec<Ext>, u8)> = vec![
        (vec![Ext::Hop(0)], 0),
        (vec![Ext::Hop(2)], 0),
        (vec![Ext::Routing(0, vec![IP6_B])], 0),
        (vec![Ext::Dest(1)], 0),
        (vec![Ext::Frag(0, true)], FRAG_ANY),
        // An atomic fragment (offset 0, no more fragments) is a fragment too, as OVS.
        (vec![Ext::Frag(0, false)], FRAG_ANY),
        (vec![Ext::Ah(1)], 0),
        (vec![Ext::Ah(4)], 0),
        (
            vec![
                Ext::Hop(0),
                Ext::Dest(0),
                Ext::Routing(1, vec![IP6_A]),
                Ext::Frag(0, true),
                Ext::Ah(3),
                Ext::Dest(2),
            ],
            FRAG_ANY,
        ),
    ];
    for (chain, frag) in exts {
        let ext_len: usize = chain.iter().map(|e| e.bytes(0).len()).sum();
        for l4 in [L4::Tcp(tcp_hdr(1234, 80)), L4::Udp { src: 546, dst: 547 }] {
            let ip = ip6_hdr(1);
            let f = cat(&[
                &eth(key::ETH_TYPE_IPV6),
                &ipv6_l4(ip.clone(), &chain, &l4, b"data"),
            ]);
            let x = run(&f);
            assert_clean(&x);
            let mut k = l2_key(key::ETH_TYPE_IPV6);
            set_ipv6_fields(&mut k, &ip, l4.proto());
            k.b[ofs::NW_FRAG] = frag;
            match l4 {
                L4::Tcp(_) => {
                    set_ports(&mut k, 1234, 80);
                    k.set_be16(ofs::TCP_FLAGS, 0x002);
                }
                _ => set_ports(&mut k, 546, 547),
            }
            assert_key(&x.key, &k);
            assert_eq!((x.l3, x.l4), (14, (54 + ext_len) as u16), "{chain:?}");
        }
    }
}

#[test]
fn ipv6_later_fragment_has_no_l4() {
    let ip = ip6_hdr(64);
    let body = l4_bytes(&L4::Udp { src: 9, dst: 10 }, &IP6_A, &IP6_B, &[0; 16]);
    for chain in [
        vec![Ext::Frag(1, true)],
        vec![Ext::Hop(0), Ext::Frag(185, false)],
    ] {
        let f = cat(&[
            &eth(key::ETH_TYPE_IPV6),
            &ipv6_datagram(ip.clone(), &chain, key::IPPROTO_UDP, &body),
        ]);
        let x = run(&f);
        assert_clean(&x);
        let mut k = l2_key(key::ETH_TYPE_IPV6);
        set_ipv6_fields(&mut k, &ip, key::IPPROTO_UDP);
        k.b[ofs::NW_FRAG] = FRAG_ANY | FRAG_LATER;
        assert_key(&x.key, &k);
        assert_eq!((x.l3, x.l4), (14, NO_OFS));
    }
}

#[test]
fn ipv6_no_next_header_and_too_many_extensions() {
    let ip = ip6_hdr(64);
    let f = cat(&[
        &eth(key::ETH_TYPE_IPV6),
        &ipv6_datagram(ip.clone(), &[Ext::Dest(0)], 59, &[]),
    ]);
    let x = run(&f);
    assert_clean(&x);
    let mut k = l2_key(key::ETH_TYPE_IPV6);
    set_ipv6_fields(&mut k, &ip, 59);
    assert_key(&x.key, &k);
    assert_eq!(x.l4, NO_OFS);

    // A chain longer than the parser follows ends without L4 and without panic.
    let chain = vec![Ext::Dest(0); 40];
    let body = l4_bytes(&L4::Udp { src: 9, dst: 10 }, &IP6_A, &IP6_B, &[]);
    let f = cat(&[
        &eth(key::ETH_TYPE_IPV6),
        &ipv6_datagram(ip.clone(), &chain, key::IPPROTO_UDP, &body),
    ]);
    let x = run(&f);
    assert_eq!(x.key.u8_at(ofs::NW_PROTO), 60);
    assert_eq!(x.key.be16_at(ofs::TP_SRC), 0);
    assert_eq!(x.l4, NO_OFS);
}

#[test]
fn ipv6_extension_header_longer_than_payload_is_truncated() {
    let ip = ip6_hdr(64);
    let mut f = cat(&[
        &eth(key::ETH_TYPE_IPV6),
        &ipv6_datagram(ip.clone(), &[Ext::Hop(0)], key::IPPROTO_UDP, &[0; 8]),
    ]);
    f[14 + 40 + 1] = 3; // hop-by-hop claims 32 bytes, 16 remain
    let x = run(&f);
    assert_eq!(
        x.stats,
        ExtractStats {
            truncated: 1,
            malformed: 0
        }
    );
    let mut k = l2_key(key::ETH_TYPE_IPV6);
    set_ipv6_fields(&mut k, &ip, key::IPPROTO_UDP);
    assert_key(&x.key, &k);
    assert_eq!((x.l3, x.l4), (14, NO_OFS));
}

#[test]
fn ipv6_bad_version_is_malformed() {
    let mut f = cat(&[
        &eth(key::ETH_TYPE_IPV6),
        &ipv6_l4(ip6_hdr(64), &[], &L4::Udp { src: 1, dst: 2 }, &[]),
    ]);
    f[14] = (4 << 4) | (f[14] & 0x0f);
    let x = run(&f);
    assert_eq!(
        x.stats,
        ExtractStats {
            truncated: 0,
            malformed: 1
        }
    );
    assert_key(&x.key, &l2_key(key::ETH_TYPE_IPV6));
    assert_eq!((x.l3, x.l4), (14, NO_OFS));
}

#[test]
fn ipv6_trailing_bytes_beyond_payload_length_are_ignored() {
    let ip = ip6_hdr(64);
    let f = cat(&[
        &eth(key::ETH_TYPE_IPV6),
        &ipv6_l4(ip, &[], &L4::Udp { src: 1, dst: 2 }, &[]),
    ]);
    let a = run(&f);
    let mut g = f.clone();
    g.extend_from_slice(&[0xaa; 10]);
    let b = run(&g);
    assert_clean(&b);
    assert_key(&b.key, &a.key);
    assert_eq!((b.l3, b.l4, b.hash), (a.l3, a.l4, a.hash));
}

#[test]
fn icmpv6_echo() {
    let ip = ip6_hdr(64);
    let t = Icmpv6Type::EchoRequest(IcmpEchoHeader { id: 1, seq: 2 });
    let f = cat(&[
        &eth(key::ETH_TYPE_IPV6),
        &ipv6_l4(ip.clone(), &[], &L4::Icmp6(t), b"abcdefgh"),
    ]);
    let x = run(&f);
    assert_clean(&x);
    let mut k = l2_key(key::ETH_TYPE_IPV6);
    set_ipv6_fields(&mut k, &ip, key::IPPROTO_ICMPV6);
    set_ports(&mut k, 128, 0);
    assert_key(&x.key, &k);
    assert_eq!((x.l3, x.l4), (14, 54));
}

fn nd_key(nd_type: u8) -> FlowKey {
    let mut ip = ip6_hdr(255);
    ip.destination = [0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, 0, 0, 0x99];
    let mut k = l2_key(key::ETH_TYPE_IPV6);
    set_ipv6_fields(&mut k, &ip, key::IPPROTO_ICMPV6);
    set_ports(&mut k, nd_type as u16, 0);
    k
}

#[test]
fn nd_neighbour_solicitation_with_sll() {
    let f = nd_frame(ND_NS, 0, &nd_opt(1, LLA));
    let x = run(&f);
    assert_clean(&x);
    let mut k = nd_key(ND_NS);
    k.set_bytes(ofs::ND_TARGET, &ND_TARGET);
    k.set_bytes(ofs::ARP_SHA, &LLA);
    assert_key(&x.key, &k);
    assert_eq!((x.l3, x.l4), (14, 54));
}

#[test]
fn nd_neighbour_advertisement_with_tll() {
    let f = nd_frame(ND_NA, 0, &nd_opt(2, LLA));
    let x = run(&f);
    assert_clean(&x);
    let mut k = nd_key(ND_NA);
    k.set_bytes(ofs::ND_TARGET, &ND_TARGET);
    k.set_bytes(ofs::ARP_THA, &LLA);
    assert_key(&x.key, &k);
}

#[test]
fn nd_without_options_and_with_other_options() {
    for t in [ND_NS, ND_NA] {
        let x = run(&nd_frame(t, 0, &[]));
        assert_clean(&x);
        let mut k = nd_key(t);
        k.set_bytes(ofs::ND_TARGET, &ND_TARGET);
        assert_key(&x.key, &k);
    }
    // Unknown options (here: an MTU option and a 16-byte nonce) are skipped.
    let mut opts = vec![5, 1, 0, 0, 0, 0, 0x05, 0xdc];
    opts.extend_from_slice(&[14, 2, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14]);
    opts.extend(nd_opt(1, LLA));
    let x = run(&nd_frame(ND_NS, 0, &opts));
    assert_clean(&x);
    let mut k = nd_key(ND_NS);
    k.set_bytes(ofs::ND_TARGET, &ND_TARGET);
    k.set_bytes(ofs::ARP_SHA, &LLA);
    assert_key(&x.key, &k);

    // As in OVS, a target link-layer address in a solicitation is kept too,
    // a link-layer option that is not 8 bytes long is skipped, and fewer than
    // 8 trailing bytes are ignored.
    let opts = cat(&[&nd_opt(2, LLA), &[1, 2], &[9; 14], &[0; 5]]);
    let x = run(&nd_frame(ND_NS, 0, &opts));
    assert_clean(&x);
    let mut k = nd_key(ND_NS);
    k.set_bytes(ofs::ND_TARGET, &ND_TARGET);
    k.set_bytes(ofs::ARP_THA, &LLA);
    assert_key(&x.key, &k);
}

#[test]
fn nd_with_nonzero_code_is_plain_icmpv6() {
    let x = run(&nd_frame(ND_NS, 1, &nd_opt(1, LLA)));
    assert_clean(&x);
    let mut k = nd_key(ND_NS);
    set_ports(&mut k, ND_NS as u16, 1);
    assert_key(&x.key, &k);
}

#[test]
fn nd_malformed_options_zero_the_nd_fields() {
    let cases: Vec<(&str, u8, Vec<u8>)> = vec![
        ("option length 0", ND_NS, vec![1, 0, 1, 2, 3, 4, 5, 6]),
        (
            "option longer than the message",
            ND_NS,
            vec![1, 2, 1, 2, 3, 4, 5, 6],
        ),
        (
            "duplicate SLL",
            ND_NS,
            cat(&[&nd_opt(1, LLA), &nd_opt(1, [2, 3, 4, 5, 6, 7])]),
        ),
        (
            "duplicate TLL",
            ND_NA,
            cat(&[&nd_opt(2, LLA), &nd_opt(2, [2, 3, 4, 5, 6, 7])]),
        ),
        (
            "zero-length option after a good one",
            ND_NA,
            cat(&[&nd_opt(2, LLA), &[3, 0, 0, 0, 0, 0, 0, 0]]),
        ),
    ];
    for (what, t, opts) in cases {
        let x = run(&nd_frame(t, 0, &opts));
        assert_eq!(
            x.stats,
            ExtractStats {
                truncated: 0,
                malformed: 1
            },
            "{what}"
        );
        // ICMPv6 type/code stay, ND target/SLL/TLL are zero.
        assert_key(&x.key, &nd_key(t));
        assert_eq!((x.l3, x.l4), (14, 54), "{what}");
    }
}

#[test]
fn nd_with_truncated_target_keeps_type() {
    let t = Icmpv6Type::Unknown {
        type_u8: ND_NS,
        code_u8: 0,
        bytes5to8: [0; 4],
    };
    let mut ip = ip6_hdr(255);
    ip.destination = [0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, 0, 0, 0x99];
    let f = cat(&[
        &eth(key::ETH_TYPE_IPV6),
        &ipv6_l4(ip, &[], &L4::Icmp6(t), &ND_TARGET[..8]),
    ]);
    let x = run(&f);
    assert_eq!(
        x.stats,
        ExtractStats {
            truncated: 1,
            malformed: 0
        }
    );
    assert_key(&x.key, &nd_key(ND_NS));
    assert_eq!(x.l4, 54);
}

#[test]
fn nd_trailing_frame_bytes_are_not_options() {
    let mut f = nd_frame(ND_NA, 0, &nd_opt(2, LLA));
    f.extend_from_slice(&[0, 0, 0, 0]);
    let x = run(&f);
    assert_clean(&x);
    let mut k = nd_key(ND_NA);
    k.set_bytes(ofs::ND_TARGET, &ND_TARGET);
    k.set_bytes(ofs::ARP_THA, &LLA);
    assert_key(&x.key, &k);
}

// ---------------------------------------------------------------------------
// Hash
// ---------------------------------------------------------------------------

#[test]
fn equal_keys_hash_equally() {
    let mk = |id: u16, ttl_payload: &[u8]| {
        let mut ip = ip4_hdr(64);
        ip.identification = id;
        cat(&[
            &eth(key::ETH_TYPE_IP),
            &ipv4_l4(ip, &L4::Tcp(tcp_hdr(1, 2)), ttl_payload),
        ])
    };
    let a = run(&mk(1, b"one"));
    let b = run(&mk(2, b"a different payload"));
    assert_key(&a.key, &b.key);
    assert_eq!(a.hash, b.hash);
    assert_eq!(a.hash, fvs_datapath::hash::key_hash(&a.key));

    // Same for IPv6 (more key words hashed) and tunnels.
    let mk6 = |payload: &[u8]| {
        cat(&[
            &eth(key::ETH_TYPE_IPV6),
            &ipv6_l4(
                ip6_hdr(1),
                &[Ext::Dest(0)],
                &L4::Udp { src: 1, dst: 2 },
                payload,
            ),
        ])
    };
    let t = TunnelMeta {
        tun_id: 5,
        flags: key::TUN_FLAG_PRESENT,
        ..TunnelMeta::default()
    };
    let a = run_with(&mk6(b"x"), 3, Some(t));
    let b = run_with(&mk6(b"yyyy"), 3, Some(t));
    assert_key(&a.key, &b.key);
    assert_eq!(a.hash, b.hash);

    // Different keys: different hashes (for these fixed inputs).
    let c = run_with(&mk6(b"x"), 4, Some(t));
    assert_ne!(a.hash, c.hash, "in_port is hashed");
    let mut ip = ip6_hdr(1);
    ip.source[15] ^= 1;
    let d = run_with(
        &cat(&[
            &eth(key::ETH_TYPE_IPV6),
            &ipv6_l4(ip, &[Ext::Dest(0)], &L4::Udp { src: 1, dst: 2 }, b"x"),
        ]),
        3,
        Some(t),
    );
    assert_ne!(a.hash, d.hash, "IPv6 source is hashed");
    let e = run_with(&mk6(b"x"), 3, Some(TunnelMeta { tun_id: 6, ..t }));
    assert_ne!(a.hash, e.hash, "tunnel id is hashed");
}

// ---------------------------------------------------------------------------
// Truncation at every length
// ---------------------------------------------------------------------------

struct TruncCase {
    name: &'static str,
    frame: Vec<u8>,
    /// Cuts below this must move the `truncated` counter.
    hdr_end: usize,
    /// Cuts in this range leave the counters alone (802.3 without a complete SNAP header).
    silent: Range<usize>,
}

fn trunc_cases() -> Vec<TruncCase> {
    let mut ip_opts = ip4_hdr(64);
    ip_opts.options = [1, 1, 1, 0].into();
    let mut t = tcp_hdr(443, 1025);
    t.ack = true;
    t.set_options(&[
        TcpOptionElement::MaximumSegmentSize(1400),
        TcpOptionElement::WindowScale(2),
    ])
    .unwrap();
    let mut frag_later = ip4_hdr(64);
    frag_later.fragment_offset = IpFragOffset::try_new(100).unwrap();
    frag_later.dont_fragment = false;
    let snap_dgram = ipv4_l4(ip4_hdr(2), &L4::Udp { src: 3, dst: 4 }, &[9; 3]);
    let echo = Icmpv4Type::EchoRequest(IcmpEchoHeader { id: 1, seq: 1 });
    let v6_chain = [
        Ext::Hop(0),
        Ext::Routing(0, vec![IP6_B]),
        Ext::Dest(1),
        Ext::Frag(0, true),
        Ext::Ah(2),
    ];

    let mut cases = vec![
        TruncCase {
            name: "ethernet only",
            frame: pad60(eth(0x88cc)),
            hdr_end: 14,
            silent: 0..0,
        },
        TruncCase {
            name: "vlan ipv4(options) tcp(options)",
            frame: cat(&[
                &eth(key::ETH_TYPE_VLAN),
                &tag(2, false, 300, key::ETH_TYPE_IP),
                &ipv4_l4(ip_opts.clone(), &L4::Tcp(t.clone()), b"payload!"),
            ]),
            hdr_end: 0,
            silent: 0..0,
        },
        TruncCase {
            name: "qinq ipv4 udp",
            frame: pad60(cat(&[
                &eth(key::ETH_TYPE_VLAN_8021AD),
                &tag(0, false, 1, key::ETH_TYPE_VLAN),
                &tag(0, false, 2, key::ETH_TYPE_IP),
                &ipv4_l4(ip4_hdr(64), &L4::Udp { src: 1, dst: 2 }, &[]),
            ])),
            hdr_end: 22 + 28,
            silent: 0..0,
        },
        TruncCase {
            name: "llc/snap ipv4 udp",
            frame: cat(&[
                &eth(8 + snap_dgram.len() as u16),
                &[0xaa, 0xaa, 0x03, 0, 0, 0, 0x08, 0x00],
                &snap_dgram,
            ]),
            hdr_end: 0,
            silent: 14..22,
        },
        TruncCase {
            name: "arp",
            frame: pad60(cat(&[
                &eth(key::ETH_TYPE_ARP),
                &arp_body(1, 0x0800, 6, 4, 1),
            ])),
            hdr_end: 42,
            silent: 0..0,
        },
        TruncCase {
            name: "ipv4(options) icmp echo, padded",
            frame: pad60(cat(&[
                &eth(key::ETH_TYPE_IP),
                &ipv4_l4(ip_opts, &L4::Icmp4(echo), &[]),
            ])),
            hdr_end: 14 + 24 + 8,
            silent: 0..0,
        },
        TruncCase {
            name: "ipv4 sctp",
            frame: cat(&[
                &eth(key::ETH_TYPE_IP),
                &ipv4_l4(ip4_hdr(64), &L4::Sctp { src: 5, dst: 6 }, &[0; 16]),
            ]),
            hdr_end: 0,
            silent: 0..0,
        },
        TruncCase {
            name: "ipv4 later fragment",
            frame: pad60(cat(&[
                &eth(key::ETH_TYPE_IP),
                &ipv4_datagram(frag_later, key::IPPROTO_UDP, &[1; 8]),
            ])),
            hdr_end: 14 + 28,
            silent: 0..0,
        },
        TruncCase {
            name: "ipv6 extension chain tcp",
            frame: cat(&[
                &eth(key::ETH_TYPE_IPV6),
                &ipv6_l4(ip6_hdr(64), &v6_chain, &L4::Tcp(t), b"x"),
            ]),
            hdr_end: 0,
            silent: 0..0,
        },
        TruncCase {
            name: "ipv6 later fragment",
            frame: cat(&[
                &eth(key::ETH_TYPE_IPV6),
                &ipv6_datagram(
                    ip6_hdr(64),
                    &[Ext::Hop(0), Ext::Frag(3, false)],
                    key::IPPROTO_TCP,
                    &[0; 20],
                ),
            ]),
            hdr_end: 0,
            silent: 0..0,
        },
        TruncCase {
            name: "nd ns sll",
            frame: nd_frame(ND_NS, 0, &nd_opt(1, LLA)),
            hdr_end: 0,
            silent: 0..0,
        },
        TruncCase {
            name: "nd na tll + trailer",
            frame: cat(&[&nd_frame(ND_NA, 0, &nd_opt(2, LLA)), &[0xab; 6]]),
            hdr_end: 14 + 40 + 32,
            silent: 0..0,
        },
        TruncCase {
            name: "icmpv6 echo",
            frame: cat(&[
                &eth(key::ETH_TYPE_IPV6),
                &ipv6_l4(
                    ip6_hdr(64),
                    &[],
                    &L4::Icmp6(Icmpv6Type::EchoReply(IcmpEchoHeader { id: 3, seq: 4 })),
                    &[],
                ),
            ]),
            hdr_end: 0,
            silent: 0..0,
        },
    ];
    for c in &mut cases {
        if c.hdr_end == 0 {
            c.hdr_end = c.frame.len();
        }
    }
    cases
}

/// A truncated frame's key field: equal to the full frame's, or zero (the
/// parse ended before it), or — for `dl_type` only — the TPID of a cut VLAN
/// tag or "no ethertype" for a cut SNAP header.
fn field_consistent(f: (&'static str, usize, usize), cut: &FlowKey, full: &FlowKey) -> bool {
    let (a, e) = (field_bytes(cut, f), field_bytes(full, f));
    if a == e || a.iter().all(|&b| b == 0) {
        return true;
    }
    f.1 == ofs::DL_TYPE
        && [
            key::ETH_TYPE_VLAN,
            key::ETH_TYPE_VLAN_8021AD,
            key::DL_TYPE_NONE,
        ]
        .contains(&cut.be16_at(ofs::DL_TYPE))
}

#[test]
fn every_truncation_gives_a_consistent_shorter_key() {
    for c in trunc_cases() {
        let full = run(&c.frame);
        let name = c.name;
        assert_eq!(
            full.stats,
            ExtractStats::default(),
            "{name}: the whole frame is well-formed"
        );
        let mut prev_matching = 0;
        for cut in 0..=c.frame.len() {
            let x = run(&c.frame[..cut]);
            let ctx = format!("{name}: cut at {cut} of {}", c.frame.len());

            // 1. Every field is the full frame's value or zero.
            for &f in FIELDS {
                assert!(
                    field_consistent(f, &x.key, &full.key),
                    "{ctx}: field {} = {} (full frame: {})",
                    f.0,
                    hex(field_bytes(&x.key, f)),
                    hex(field_bytes(&full.key, f))
                );
            }
            // 2. Nothing comes from beyond the cut.
            if cut < 14 {
                let mut k = FlowKey::ZERO;
                k.set_in_port(IN_PORT);
                assert_key(&x.key, &k);
            }
            if full.l3 != NO_OFS && cut <= full.l3 as usize {
                for &o in L3_FIELDS {
                    assert!(
                        field_bytes(&x.key, field(o)).iter().all(|&b| b == 0),
                        "{ctx}: {}",
                        field(o).0
                    );
                }
            }
            if full.l4 != NO_OFS && cut <= full.l4 as usize {
                for &o in L4_FIELDS {
                    assert!(
                        field_bytes(&x.key, field(o)).iter().all(|&b| b == 0),
                        "{ctx}: {}",
                        field(o).0
                    );
                }
            }
            // 3. Offsets are the full frame's or absent, and inside the cut.
            assert!(x.l3 == NO_OFS || x.l3 == full.l3, "{ctx}: l3 {}", x.l3);
            assert!(x.l4 == NO_OFS || x.l4 == full.l4, "{ctx}: l4 {}", x.l4);
            if x.l4 != NO_OFS {
                assert!(x.l4 as usize + 4 <= cut, "{ctx}");
            }
            // 4. Counters: a cut header counts as truncated, once.
            if cut < c.hdr_end && !c.silent.contains(&cut) {
                assert_eq!(
                    x.stats,
                    ExtractStats {
                        truncated: 1,
                        malformed: 0
                    },
                    "{ctx}"
                );
            } else {
                assert_eq!(x.stats, ExtractStats::default(), "{ctx}");
            }
            if cut >= c.hdr_end {
                assert_key(&x.key, &full.key);
                assert_eq!((x.l3, x.l4, x.hash), (full.l3, full.l4, full.hash), "{ctx}");
            }
            if c.silent.contains(&cut) {
                assert_eq!(x.key.dl_type(), key::DL_TYPE_NONE, "{ctx}");
            }
            // 5. A longer prefix never knows less.
            let matching = FIELDS
                .iter()
                .filter(|&&f| {
                    let e = field_bytes(&full.key, f);
                    e.iter().any(|&b| b != 0) && field_bytes(&x.key, f) == e
                })
                .count();
            assert!(
                matching >= prev_matching,
                "{ctx}: {matching} fields known, {prev_matching} before"
            );
            prev_matching = matching;
        }
    }
}

// ---------------------------------------------------------------------------
// Random input
// ---------------------------------------------------------------------------

/// Properties every extraction has, whatever the input.
fn check_invariants(frame: &[u8], x: &Extracted) {
    let len = frame.len();
    assert_eq!(x.key.in_port(), IN_PORT);
    assert!(x.stats.truncated + x.stats.malformed <= 1, "{:?}", x.stats);
    if x.l3 != NO_OFS {
        assert!(x.l3 as usize <= len);
    }
    if x.l4 != NO_OFS {
        assert!(x.l3 != NO_OFS && x.l3 < x.l4);
        assert!(x.l4 as usize + 4 <= len);
    }
    assert!([0, FRAG_ANY, FRAG_ANY | FRAG_LATER].contains(&x.key.u8_at(ofs::NW_FRAG)));
    assert!(x.key.be16_at(ofs::TCP_FLAGS) <= 0x0fff);
    assert!(x.key.be32_at(ofs::IPV6_LABEL) <= 0xf_ffff);
    for o in [ofs::VLAN_TCI, ofs::VLAN2_TCI] {
        let tci = x.key.be16_at(o);
        assert!(tci == 0 || tci & VLAN_CFI != 0);
    }
    if x.key.be16_at(ofs::VLAN2_TCI) != 0 {
        assert_ne!(x.key.be16_at(ofs::VLAN_TCI), 0);
    }
    let dl = x.key.dl_type();
    let l3_proto = [
        key::ETH_TYPE_IP,
        key::ETH_TYPE_IPV6,
        key::ETH_TYPE_ARP,
        key::ETH_TYPE_RARP,
    ]
    .contains(&dl);
    if !l3_proto {
        for &o in L3_FIELDS {
            assert!(
                field_bytes(&x.key, field(o)).iter().all(|&b| b == 0),
                "{}",
                field(o).0
            );
        }
        assert_eq!(x.l4, NO_OFS);
    }
    if dl != key::ETH_TYPE_IPV6 {
        for o in [
            ofs::IPV6_LABEL,
            ofs::IPV6_SRC,
            ofs::IPV6_DST,
            ofs::ND_TARGET,
        ] {
            assert!(field_bytes(&x.key, field(o)).iter().all(|&b| b == 0));
        }
    }
    for &f in FIELDS.iter().filter(|f| f.0.starts_with("tun_")) {
        assert!(
            field_bytes(&x.key, f).iter().all(|&b| b == 0),
            "no tunnel: {}",
            f.0
        );
    }
    // Deterministic: the same frame gives the same key and hash.
    let y = run(frame);
    assert_eq!(x.key, y.key);
    assert_eq!((x.l3, x.l4, x.hash, x.stats), (y.l3, y.l4, y.hash, y.stats));
    assert_eq!(x.hash, fvs_datapath::hash::key_hash(&x.key));
}

fn valid_frames() -> Vec<Vec<u8>> {
    let mut v: Vec<Vec<u8>> = trunc_cases().into_iter().map(|c| c.frame).collect();
    v.push(cat(&[
        &eth(key::ETH_TYPE_IPV6),
        &ipv6_l4(
            ip6_hdr(9),
            &[Ext::Hop(0)],
            &L4::Sctp { src: 1, dst: 2 },
            &[0; 4],
        ),
    ]));
    v.push(nd_frame(
        ND_NS,
        0,
        &cat(&[&nd_opt(1, LLA), &nd_opt(2, LLA)]),
    ));
    v.push(pad60(cat(&[
        &eth(key::ETH_TYPE_RARP),
        &arp_body(1, 0x0800, 6, 4, 3),
    ])));
    v
}

fn proptest_config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(proptest_config(4096))]

    #[test]
    fn random_bytes_never_panic(frame in prop::collection::vec(any::<u8>(), 0..256)) {
        let x = run(&frame);
        check_invariants(&frame, &x);
    }

    #[test]
    fn random_bytes_after_a_known_ethertype_never_panic(
        ether_type in prop::sample::select(vec![
            key::ETH_TYPE_IP, key::ETH_TYPE_IPV6, key::ETH_TYPE_ARP, key::ETH_TYPE_RARP,
            key::ETH_TYPE_VLAN, key::ETH_TYPE_VLAN_8021AD, 0x0040,
        ]),
        rest in prop::collection::vec(any::<u8>(), 0..200),
    ) {
        let frame = cat(&[&eth(ether_type), &rest]);
        let x = run(&frame);
        check_invariants(&frame, &x);
    }

    #[test]
    fn mutated_valid_frames_never_panic(
        which in any::<prop::sample::Index>(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in any::<prop::sample::Index>(),
        extra in prop::collection::vec(any::<u8>(), 0..16),
    ) {
        let frames = valid_frames();
        let mut f = frames[which.index(frames.len())].clone();
        let n = f.len();
        for (at, v) in flips {
            f[at.index(n)] = v;
        }
        let x = run(&f);
        check_invariants(&f, &x);
        let short = &f[..cut.index(n + 1)];
        let y = run(short);
        check_invariants(short, &y);
        let long = cat(&[&f, &extra]);
        let z = run(&long);
        check_invariants(&long, &z);
    }

    /// The EMC's packet signatures: where one is made, the key rebuilt from
    /// it is the key extraction gives (so equal signatures mean equal keys),
    /// and the metadata agree.
    #[test]
    fn signatures_give_the_extracted_key(
        which in any::<prop::sample::Index>(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..6),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut frames = plain_frames();
        frames.extend(valid_frames());
        let mut f = frames[which.index(frames.len())].clone();
        let n = f.len();
        for (at, v) in flips {
            // Mostly the bytes that decide the fast path.
            let at = if at.index(2) == 0 { 12 + at.index(40.min(n - 12)) } else { at.index(n) };
            f[at] = v;
        }
        let f = &f[..cut.index(n + 1).max(n / 2)];
        check_signature(f);
    }
    #[test]
    fn mutated_length_and_type_fields_never_panic(
        which in any::<prop::sample::Index>(),
        // Length, header-length and type bytes sit in the first 80 bytes.
        at in 12usize..80,
        v in prop::sample::select(vec![0u8, 1, 2, 3, 4, 5, 6, 0x0f, 0x10, 0x40, 0x45, 0x4f, 0x60, 0x7f, 0x80, 0xfe, 0xff]),
    ) {
        let frames = valid_frames();
        let mut f = frames[which.index(frames.len())].clone();
        if at < f.len() {
            f[at] = v;
        }
        let x = run(&f);
        check_invariants(&f, &x);
    }
}

/// Untagged IPv4 without options carrying TCP or UDP: what the EMC keys by
/// signature.
fn plain_frames() -> Vec<Vec<u8>> {
    let mut tcp = TcpHeader::new(1000, 80, 7, 4096);
    tcp.psh = true;
    tcp.ack = true;
    let mut with_options = tcp.clone();
    with_options
        .set_options(&[TcpOptionElement::MaximumSegmentSize(1460)])
        .unwrap();
    let mut df = ip4_hdr(64);
    df.dont_fragment = true;
    let ip = |ip: Ipv4Header, l4: &L4, payload: &[u8]| {
        cat(&[&eth(key::ETH_TYPE_IP), &ipv4_l4(ip, l4, payload)])
    };
    vec![
        ip(ip4_hdr(64), &L4::Tcp(tcp.clone()), b"payload"),
        ip(df, &L4::Tcp(with_options), &[]),
        ip(ip4_hdr(1), &L4::Udp { src: 53, dst: 5353 }, &[]),
        pad60(ip(ip4_hdr(64), &L4::Udp { src: 1, dst: 2 }, b"x")),
    ]
}

fn check_signature(frame: &[u8]) -> Option<u32> {
    let mut p = pool().packet_from(frame).expect("a free buffer");
    let (words, hash) = emc_signature(&mut p, IN_PORT)?;
    let x = run(frame);
    let m = p.meta();
    assert!(words[0] & SIG_MARK != 0, "a signature is marked");
    let key = key_of_sig(&words);
    for (i, w) in key.iter().enumerate() {
        assert_eq!(*w, x.key.word(i), "word {i} of {frame:02x?}");
    }
    for i in HOT_WORDS..KEY_LEN / 8 {
        assert_eq!(x.key.word(i), 0, "a signature's key is compact");
    }
    assert_eq!((m.l3_ofs, m.l4_ofs, m.hash), (x.l3, x.l4, hash));
    Some(hash)
}

/// Signatures are made for plain IPv4 TCP and UDP (the bulk of traffic),
/// and their hash is the connection's: the TCP flags do not change it.
#[test]
fn signatures_of_tcp_and_udp_and_their_hash() {
    for frame in plain_frames() {
        assert!(check_signature(&frame).is_some(), "{frame:02x?}");
    }
    for frame in valid_frames() {
        check_signature(&frame);
    }
    let hash_of = |syn: bool, ack: bool, payload: &[u8]| {
        let mut tcp = TcpHeader::new(40000, 443, 1, 4096);
        tcp.syn = syn;
        tcp.ack = ack;
        let f = cat(&[
            &eth(key::ETH_TYPE_IP),
            &ipv4_l4(ip4_hdr(64), &L4::Tcp(tcp), payload),
        ]);
        check_signature(&f).expect("a signature")
    };
    assert_eq!(hash_of(true, false, b""), hash_of(false, true, b"data"));
    let udp = |dst: u16| {
        let f = cat(&[
            &eth(key::ETH_TYPE_IP),
            &ipv4_l4(ip4_hdr(64), &L4::Udp { src: 5000, dst }, b"x"),
        ]);
        check_signature(&f).expect("a signature")
    };
    assert_ne!(udp(53), udp(54));
}

/// Simple match forwards without extraction but still counts TCP flags:
/// its quick parse must agree with extraction, except where it stops early
/// (a second VLAN tag, IPv6 extension headers), and then it says 0.
#[test]
fn tcp_flags_without_extraction_agree() {
    let mut with_flags = 0;
    let mut tcp = TcpHeader::new(1000, 80, 7, 4096);
    tcp.syn = true;
    tcp.ack = true;
    tcp.ns = true;
    let mut with_options = ip4_hdr(64);
    with_options.options = [1, 1, 1, 0][..].try_into().unwrap();
    let mut frames = vec![
        cat(&[
            &eth(key::ETH_TYPE_IP),
            &ipv4_l4(ip4_hdr(64), &L4::Tcp(tcp.clone()), b"x"),
        ]),
        cat(&[
            &eth(key::ETH_TYPE_IP),
            &ipv4_l4(with_options, &L4::Tcp(tcp.clone()), &[]),
        ]),
        cat(&[
            &eth(key::ETH_TYPE_IPV6),
            &ipv6_l4(ip6_hdr(9), &[], &L4::Tcp(tcp.clone()), &[]),
        ]),
        cat(&[
            &eth(key::ETH_TYPE_IPV6),
            &ipv6_l4(ip6_hdr(9), &[Ext::Hop(0)], &L4::Tcp(tcp.clone()), &[]),
        ]),
    ];
    let v4 = frames[0].clone();
    // Tagged, and cut inside the TCP header.
    frames.push(cat(&[&v4[..12], &[0x81, 0, 0, 5], &v4[12..]]));
    frames.push(v4[..14 + 20 + 10].to_vec());
    frames.extend(valid_frames());
    for mut f in frames {
        // Give every TCP header some flags (NS, SYN, ACK) to find.
        let x = run(&f);
        if x.key.nw_proto() == 6 && x.l4 != NO_OFS && f.len() >= x.l4 as usize + 14 {
            f[x.l4 as usize + 12] |= 0x01;
            f[x.l4 as usize + 13] = 0x12;
        }
        let full = run(&f).key.be16_at(ofs::TCP_FLAGS);
        let quick = fvs_datapath::extract::tcp_flags_of(&f);
        with_flags += usize::from(full != 0);
        if quick != full {
            let outer = u16::from_be_bytes([f[12], f[13]]);
            let inner = u16::from_be_bytes([f[16], f[17]]);
            let two_tags = matches!(outer, 0x8100 | 0x88a8) && matches!(inner, 0x8100 | 0x88a8);
            let ipv6_ext = outer == 0x86dd && f[20] != 6;
            assert!(
                quick == 0 && (two_tags || ipv6_ext),
                "flags {quick:#x} vs extraction {full:#x} for {}",
                hex(&f)
            );
        }
    }
    assert!(with_flags >= 3, "the corpus needs TCP frames with flags");
}
