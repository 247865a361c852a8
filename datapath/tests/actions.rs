//! Datapath actions: each header rewrite applied to a packet whose offsets
//! come from `extract()`, checked with `etherparse` (and small reference
//! implementations written here): new header values, only the masked bits
//! changed, and every checksum equal to a full recomputation.

use std::sync::OnceLock;

use etherparse::{
    EtherType, Ethernet2Header, IcmpEchoHeader, Icmpv4Header, Icmpv4Type, Icmpv6Header,
    Icmpv6Slice, Icmpv6Type, IpAuthHeader, IpFragOffset, IpNumber, Ipv4Header, Ipv6FlowLabel,
    Ipv6Header, Ipv6RawExtHeader, SingleVlanHeader, TcpHeader, UdpHeader, VlanId, VlanPcp,
};
use fvs_datapath::actions::{self, ArpSet, DpAction, EthSet, Ipv4Set, Ipv6Set, L4Set, SlowPath};
use fvs_datapath::extract::{extract, ExtractStats};
use fvs_datapath::key::{self, ofs, FlowKey, VLAN_CFI};
use fvs_datapath::packet::{Packet, PacketPool, TunnelMeta, NO_OFS};
use proptest::prelude::*;

// ---------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------

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
const IP6_C: [u8; 16] = [
    0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x0c, 0x03,
];

fn pool() -> &'static PacketPool {
    static POOL: OnceLock<PacketPool> = OnceLock::new();
    POOL.get_or_init(|| PacketPool::new(256, false).expect("packet pool"))
}

/// Where a built frame's headers are (known from construction, not from the
/// code under test).
#[derive(Clone, Debug)]
struct Lay {
    l3: usize,
    /// The transport header, if the frame has one `extract()` reaches.
    l4: Option<usize>,
    v4: bool,
    proto: u8,
    /// IPv6 pseudo-header destination when a routing header has segments left.
    final_dst: Option<[u8; 16]>,
}

/// A packet holding `frame`, with its metadata filled by `extract()`.
fn prepared(frame: &[u8]) -> Packet {
    let mut p = pool().packet_from(frame).expect("a free buffer");
    p.meta_mut().in_port = 1;
    let mut k = FlowKey::ZERO;
    let mut s = ExtractStats::default();
    extract(&mut p, &mut k, &mut s);
    p
}

/// Applies `acts` to `frame` (offsets from `extract()`) and returns the new bytes.
fn apply_all(frame: &[u8], acts: &[DpAction]) -> Vec<u8> {
    let mut p = prepared(frame);
    for a in acts {
        actions::apply(&mut p, a);
    }
    p.data().to_vec()
}

fn apply(frame: &[u8], act: DpAction) -> Vec<u8> {
    apply_all(frame, &[act])
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[track_caller]
fn assert_frame(actual: &[u8], expected: &[u8]) {
    assert_eq!(actual.len(), expected.len(), "frame length");
    let diffs: Vec<String> = (0..actual.len())
        .filter(|&i| actual[i] != expected[i])
        .map(|i| format!("[{i}] got {:02x} want {:02x}", actual[i], expected[i]))
        .collect();
    assert!(
        diffs.is_empty(),
        "frames differ: {}\n got  {}\n want {}",
        diffs.join(", "),
        hex(actual),
        hex(expected)
    );
}

fn be16_at(d: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([d[at], d[at + 1]])
}

// ---------------------------------------------------------------------------
// Reference checksums
// ---------------------------------------------------------------------------

/// One's-complement sum (folded, not inverted) of `parts` as big-endian words.
fn ones_sum(parts: &[&[u8]]) -> u16 {
    let mut s: u64 = 0;
    let bytes: Vec<u8> = parts.concat();
    for c in bytes.chunks(2) {
        s += if c.len() == 2 {
            u16::from_be_bytes([c[0], c[1]]) as u64
        } else {
            (c[0] as u64) << 8
        };
    }
    while s >> 16 != 0 {
        s = (s & 0xffff) + (s >> 16);
    }
    s as u16
}

/// CRC32c, bit by bit.
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

/// The end of the IP datagram at `lay.l3` (Ethernet padding excluded).
fn ip_end(frame: &[u8], lay: &Lay) -> usize {
    if lay.v4 {
        lay.l3 + be16_at(frame, lay.l3 + 2) as usize
    } else {
        lay.l3 + 40 + be16_at(frame, lay.l3 + 4) as usize
    }
}

/// Writes into `frame` the checksums a full recomputation gives: the IPv4
/// header checksum and the transport checksum (etherparse), the SCTP CRC
/// (reference above). A UDP-over-IPv4 checksum of 0 ("none") stays 0.
fn recompute_checksums(frame: &mut [u8], lay: &Lay) {
    let end = ip_end(frame, lay);
    let (src, dst): (Vec<u8>, Vec<u8>) = if lay.v4 {
        let (ip, _) = Ipv4Header::from_slice(&frame[lay.l3..]).expect("an IPv4 header");
        let c = ip.calc_header_checksum();
        frame[lay.l3 + 10..lay.l3 + 12].copy_from_slice(&c.to_be_bytes());
        (ip.source.to_vec(), ip.destination.to_vec())
    } else {
        let (ip, _) = Ipv6Header::from_slice(&frame[lay.l3..]).expect("an IPv6 header");
        (
            ip.source.to_vec(),
            lay.final_dst
                .map_or(ip.destination.to_vec(), |d| d.to_vec()),
        )
    };
    let Some(l4) = lay.l4 else { return };
    let seg = frame[l4..end].to_vec();
    match lay.proto {
        key::IPPROTO_TCP => {
            let (t, payload) = TcpHeader::from_slice(&seg).expect("a TCP header");
            let c = if lay.v4 {
                t.calc_checksum_ipv4_raw(
                    src[..].try_into().unwrap(),
                    dst[..].try_into().unwrap(),
                    payload,
                )
            } else {
                t.calc_checksum_ipv6_raw(
                    src[..].try_into().unwrap(),
                    dst[..].try_into().unwrap(),
                    payload,
                )
            }
            .unwrap();
            frame[l4 + 16..l4 + 18].copy_from_slice(&c.to_be_bytes());
        }
        key::IPPROTO_UDP => {
            let (u, payload) = UdpHeader::from_slice(&seg).expect("a UDP header");
            // 0 is "no checksum": over IPv4, and over IPv6 for tunnels
            // (RFC 6935); it must stay 0, as in OVS.
            if u.checksum == 0 {
                return;
            }
            let c = if lay.v4 {
                u.calc_checksum_ipv4_raw(
                    src[..].try_into().unwrap(),
                    dst[..].try_into().unwrap(),
                    payload,
                )
            } else {
                u.calc_checksum_ipv6_raw(
                    src[..].try_into().unwrap(),
                    dst[..].try_into().unwrap(),
                    payload,
                )
            }
            .unwrap();
            frame[l4 + 6..l4 + 8].copy_from_slice(&c.to_be_bytes());
        }
        key::IPPROTO_ICMPV6 => {
            let s = Icmpv6Slice::from_slice(&seg).expect("an ICMPv6 header");
            let c = s
                .header()
                .icmp_type
                .calc_checksum(
                    src[..].try_into().unwrap(),
                    dst[..].try_into().unwrap(),
                    s.payload(),
                )
                .unwrap();
            frame[l4 + 2..l4 + 4].copy_from_slice(&c.to_be_bytes());
        }
        key::IPPROTO_SCTP => {
            let mut s = seg;
            s[8..12].fill(0);
            frame[l4 + 8..l4 + 12].copy_from_slice(&crc32c_ref(&s).to_le_bytes());
        }
        key::IPPROTO_ICMP => {
            let (h, payload) = Icmpv4Header::from_slice(&seg).expect("an ICMP header");
            let c = Icmpv4Header::with_checksum(h.icmp_type, payload).checksum;
            frame[l4 + 2..l4 + 4].copy_from_slice(&c.to_be_bytes());
        }
        _ => {}
    }
}

/// Asserts that every checksum of `frame` is what a full recomputation gives.
#[track_caller]
fn assert_checksums(frame: &[u8], lay: &Lay) {
    let mut want = frame.to_vec();
    recompute_checksums(&mut want, lay);
    assert_frame(frame, &want);
    // And, independently of the representation, they verify.
    if lay.v4 {
        let ihl = (frame[lay.l3] & 0x0f) as usize * 4;
        assert_eq!(
            ones_sum(&[&frame[lay.l3..lay.l3 + ihl]]),
            0xffff,
            "IPv4 header checksum verifies"
        );
    }
}

// ---------------------------------------------------------------------------
// Packet building
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

fn tag(pcp: u8, vid: u16, next: u16) -> [u8; 4] {
    SingleVlanHeader {
        pcp: VlanPcp::try_new(pcp).unwrap(),
        drop_eligible_indicator: false,
        vlan_id: VlanId::try_new(vid).unwrap(),
        ether_type: EtherType(next),
    }
    .to_bytes()
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

fn pad60(mut f: Vec<u8>) -> Vec<u8> {
    if f.len() < 60 {
        f.resize(60, 0xee);
    }
    f
}

#[derive(Clone, Debug)]
enum L4 {
    Tcp(TcpHeader),
    /// UDP; `zero_csum` sends it without a checksum (IPv4, or an IPv6
    /// tunnel as RFC 6935 allows).
    Udp {
        src: u16,
        dst: u16,
        zero_csum: bool,
    },
    Sctp {
        src: u16,
        dst: u16,
    },
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

    fn udp(src: u16, dst: u16) -> L4 {
        L4::Udp {
            src,
            dst,
            zero_csum: false,
        }
    }
}

/// The transport segment with a valid checksum for the pseudo-header addresses.
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
        L4::Udp {
            src: sp,
            dst: dp,
            zero_csum,
        } => {
            let mut u = UdpHeader {
                source_port: *sp,
                destination_port: *dp,
                length: 8 + payload.len() as u16,
                checksum: 0,
            };
            u.checksum = match (v4, zero_csum) {
                (_, true) => 0,
                (true, false) => u
                    .calc_checksum_ipv4_raw(
                        src.try_into().unwrap(),
                        dst.try_into().unwrap(),
                        payload,
                    )
                    .unwrap(),
                (false, _) => u
                    .calc_checksum_ipv6_raw(
                        src.try_into().unwrap(),
                        dst.try_into().unwrap(),
                        payload,
                    )
                    .unwrap(),
            };
            cat(&[&u.to_bytes(), payload])
        }
        L4::Sctp { src, dst } => {
            let mut s = cat(&[
                &src.to_be_bytes(),
                &dst.to_be_bytes(),
                &0x0102_0304u32.to_be_bytes(),
                &[0; 4],
                payload,
            ]);
            let crc = crc32c_ref(&s);
            s[8..12].copy_from_slice(&crc.to_le_bytes());
            s
        }
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

fn ip4_hdr() -> Ipv4Header {
    let mut ip = Ipv4Header::new(0, 64, IpNumber(0), IP4_A, IP4_B).unwrap();
    ip.identification = 0x1234;
    ip
}

fn ipv4_datagram(mut ip: Ipv4Header, proto: u8, body: &[u8]) -> Vec<u8> {
    ip.protocol = IpNumber(proto);
    ip.total_len = (ip.header_len() + body.len()) as u16;
    ip.header_checksum = ip.calc_header_checksum();
    cat(&[&ip.to_bytes(), body])
}

/// Ethernet (+ `l2_extra`, e.g. VLAN tags, whose last ethertype must be IPv4)
/// + IPv4 + `l4`.
fn v4_frame(l2: &[u8], ip: Ipv4Header, l4: &L4, payload: &[u8]) -> (Vec<u8>, Lay) {
    let body = l4_bytes(l4, &ip.source, &ip.destination, payload);
    let ihl = ip.header_len();
    let f = cat(&[l2, &ipv4_datagram(ip, l4.proto(), &body)]);
    let lay = Lay {
        l3: l2.len(),
        l4: Some(l2.len() + ihl),
        v4: true,
        proto: l4.proto(),
        final_dst: None,
    };
    (f, lay)
}

fn ip6_hdr() -> Ipv6Header {
    Ipv6Header {
        traffic_class: 0xb8,
        flow_label: Ipv6FlowLabel::try_new(0x5_4321).unwrap(),
        payload_length: 0,
        next_header: IpNumber(0),
        hop_limit: 64,
        source: IP6_A,
        destination: IP6_B,
    }
}

#[derive(Clone, Debug)]
enum Ext {
    Hop(usize),
    Dest(usize),
    /// Routing header: segments left, addresses.
    Routing(u8, Vec<[u8; 16]>),
    /// Fragment: offset (8-byte units), more fragments.
    Frag(u16, bool),
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
                // Raw: etherparse 0.16 misplaces M and the offset (JulianSchmid/etherparse#150).
                cat(&[
                    &[next.0, 0],
                    &((off << 3) | *more as u16).to_be_bytes(),
                    &7u32.to_be_bytes(),
                ])
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

/// Ethernet + IPv6 + extension headers + `l4`. With a routing header that has
/// segments left, the pseudo-header destination is its last address.
fn v6_frame(l2: &[u8], ip: Ipv6Header, exts: &[Ext], l4: &L4, payload: &[u8]) -> (Vec<u8>, Lay) {
    let final_dst = exts.iter().find_map(|e| match e {
        Ext::Routing(segleft, addrs) if *segleft > 0 => addrs.last().copied(),
        _ => None,
    });
    let body = l4_bytes(
        l4,
        &ip.source,
        &final_dst.unwrap_or(ip.destination),
        payload,
    );
    let ext_len: usize = exts.iter().map(|e| e.bytes(0).len()).sum();
    let f = cat(&[l2, &ipv6_datagram(ip, exts, l4.proto(), &body)]);
    let lay = Lay {
        l3: l2.len(),
        l4: Some(l2.len() + 40 + ext_len),
        v4: false,
        proto: l4.proto(),
        final_dst,
    };
    (f, lay)
}

fn tcp_hdr(src: u16, dst: u16) -> TcpHeader {
    let mut t = TcpHeader::new(src, dst, 0x0102_0304, 4096);
    t.ack = true;
    t.acknowledgment_number = 0x0a0b_0c0d;
    t.psh = true;
    t
}

fn arp_frame(op: u16) -> Vec<u8> {
    let mut a = eth(key::ETH_TYPE_ARP);
    a.extend_from_slice(&[0, 1, 8, 0, 6, 4]);
    a.extend_from_slice(&op.to_be_bytes());
    a.extend_from_slice(&SRC);
    a.extend_from_slice(&IP4_A);
    a.extend_from_slice(&[0; 6]);
    a.extend_from_slice(&IP4_B);
    pad60(a)
}

// ---------------------------------------------------------------------------
// Models of the rewrites (what the frame must look like afterwards)
// ---------------------------------------------------------------------------

fn merge(old: &mut [u8], v: &[u8], m: &[u8]) {
    for i in 0..old.len() {
        old[i] = (old[i] & !m[i]) | (v[i] & m[i]);
    }
}

fn model_eth(f: &mut [u8], v: &EthSet, m: &EthSet) {
    merge(&mut f[0..6], &v.dst, &m.dst);
    merge(&mut f[6..12], &v.src, &m.src);
}

fn model_ipv4(f: &mut [u8], lay: &Lay, v: &Ipv4Set, m: &Ipv4Set) {
    let l3 = lay.l3;
    merge(&mut f[l3 + 1..l3 + 2], &[v.tos], &[m.tos]);
    merge(&mut f[l3 + 8..l3 + 9], &[v.ttl], &[m.ttl]);
    merge(&mut f[l3 + 12..l3 + 16], &v.src, &m.src);
    merge(&mut f[l3 + 16..l3 + 20], &v.dst, &m.dst);
    recompute_checksums(f, lay);
}

fn model_ipv6(f: &mut [u8], lay: &Lay, v: &Ipv6Set, m: &Ipv6Set) {
    let l3 = lay.l3;
    let old = u32::from_be_bytes(f[l3..l3 + 4].try_into().unwrap());
    let tc = ((old >> 20) as u8 & !m.tc) | (v.tc & m.tc);
    let label = (old & 0xf_ffff & !m.label) | (v.label & m.label & 0xf_ffff);
    f[l3..l3 + 4].copy_from_slice(&((6 << 28) | ((tc as u32) << 20) | label).to_be_bytes());
    merge(&mut f[l3 + 7..l3 + 8], &[v.hlimit], &[m.hlimit]);
    merge(&mut f[l3 + 8..l3 + 24], &v.src, &m.src);
    merge(&mut f[l3 + 24..l3 + 40], &v.dst, &m.dst);
    recompute_checksums(f, lay);
}

fn model_l4(f: &mut [u8], lay: &Lay, v: &L4Set, m: &L4Set) {
    let Some(l4) = lay.l4 else { return };
    if ![key::IPPROTO_TCP, key::IPPROTO_UDP, key::IPPROTO_SCTP].contains(&lay.proto) {
        return;
    }
    merge(
        &mut f[l4..l4 + 2],
        &v.src.to_be_bytes(),
        &m.src.to_be_bytes(),
    );
    merge(
        &mut f[l4 + 2..l4 + 4],
        &v.dst.to_be_bytes(),
        &m.dst.to_be_bytes(),
    );
    recompute_checksums(f, lay);
}

fn model_arp(f: &mut [u8], v: &ArpSet, m: &ArpSet) {
    merge(&mut f[20..22], &v.op.to_be_bytes(), &m.op.to_be_bytes());
    merge(&mut f[22..28], &v.sha, &m.sha);
    merge(&mut f[28..32], &v.spa, &m.spa);
    merge(&mut f[32..38], &v.tha, &m.tha);
    merge(&mut f[38..42], &v.tpa, &m.tpa);
}

fn full_ipv4_mask() -> Ipv4Set {
    Ipv4Set {
        src: [0xff; 4],
        dst: [0xff; 4],
        tos: 0xff,
        ttl: 0xff,
    }
}

// ---------------------------------------------------------------------------
// Harness sanity
// ---------------------------------------------------------------------------

#[test]
fn builders_and_extract_agree_on_offsets() {
    let frames = [
        v4_frame(
            &eth(key::ETH_TYPE_IP),
            ip4_hdr(),
            &L4::Tcp(tcp_hdr(1, 2)),
            b"x",
        ),
        v4_frame(
            &cat(&[&eth(key::ETH_TYPE_VLAN), &tag(1, 5, key::ETH_TYPE_IP)]),
            ip4_hdr(),
            &L4::udp(1, 2),
            b"",
        ),
        v6_frame(
            &eth(key::ETH_TYPE_IPV6),
            ip6_hdr(),
            &[Ext::Hop(0), Ext::Ah(1)],
            &L4::Tcp(tcp_hdr(1, 2)),
            b"",
        ),
    ];
    for (f, lay) in frames {
        let p = prepared(&f);
        assert_eq!(p.meta().l3_ofs as usize, lay.l3);
        assert_eq!(p.meta().l4_ofs as usize, lay.l4.unwrap());
        assert_checksums(&f, &lay);
    }
    assert_eq!(crc32c_ref(b"123456789"), 0xe306_9283);
}

// ---------------------------------------------------------------------------
// Ethernet
// ---------------------------------------------------------------------------

#[test]
fn set_eth_full_and_masked() {
    let (f, lay) = v4_frame(
        &eth(key::ETH_TYPE_IP),
        ip4_hdr(),
        &L4::Tcp(tcp_hdr(1, 2)),
        b"abc",
    );
    let v = EthSet {
        src: [0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f],
        dst: [0xff; 6],
    };
    let out = apply(
        &f,
        DpAction::SetEth {
            value: v,
            mask: EthSet {
                src: [0xff; 6],
                dst: [0xff; 6],
            },
        },
    );
    let (e, rest) = Ethernet2Header::from_slice(&out).unwrap();
    assert_eq!(
        (e.source, e.destination, e.ether_type),
        (v.src, v.dst, EtherType::IPV4)
    );
    assert_eq!(rest, &f[14..], "nothing beyond the addresses changes");
    assert_checksums(&out, &lay);

    // Masked: only the masked bits move.
    let m = EthSet {
        src: [0, 0, 0, 0, 0, 0x0f],
        dst: [0xf0, 0, 0, 0, 0, 0],
    };
    let out = apply(&f, DpAction::SetEth { value: v, mask: m });
    let mut want = f.clone();
    model_eth(&mut want, &v, &m);
    assert_frame(&out, &want);
    assert_eq!(&out[0..6], &[0xf2, 0x00, 0x00, 0xaa, 0xbb, 0x01]);
    assert_eq!(&out[6..12], &[0x02, 0x00, 0x00, 0xaa, 0xbb, 0x0f]);

    // A zero mask changes nothing.
    assert_frame(
        &apply(
            &f,
            DpAction::SetEth {
                value: v,
                mask: EthSet::default(),
            },
        ),
        &f,
    );
}

// ---------------------------------------------------------------------------
// IPv4
// ---------------------------------------------------------------------------

#[test]
fn set_ipv4_src_dst_tos_ttl_tcp() {
    let mut ip = ip4_hdr();
    ip.options = [0x94, 0x04, 0, 0].into(); // router alert: IHL 6
    let (f, lay) = v4_frame(
        &eth(key::ETH_TYPE_IP),
        ip,
        &L4::Tcp(tcp_hdr(40000, 80)),
        b"GET /",
    );
    let v = Ipv4Set {
        src: [172, 16, 5, 4],
        dst: [8, 8, 4, 4],
        tos: 0x2e << 2,
        ttl: 3,
    };
    let out = apply(
        &f,
        DpAction::SetIpv4 {
            value: v,
            mask: full_ipv4_mask(),
        },
    );
    let (h, _) = Ipv4Header::from_slice(&out[14..]).unwrap();
    assert_eq!((h.source, h.destination, h.time_to_live), (v.src, v.dst, 3));
    assert_eq!((h.dscp.value(), h.ecn.value()), (0x2e, 0));
    assert_eq!(&h.options[..], &[0x94, 0x04, 0, 0]);
    assert_eq!(h.header_checksum, h.calc_header_checksum());
    let (t, payload) = TcpHeader::from_slice(&out[lay.l4.unwrap()..]).unwrap();
    assert_eq!(t.checksum, t.calc_checksum_ipv4(&h, payload).unwrap());
    assert_checksums(&out, &lay);
    let mut want = f.clone();
    model_ipv4(&mut want, &lay, &v, &full_ipv4_mask());
    assert_frame(&out, &want);
}

#[test]
fn set_ipv4_masked_fields_change_only_masked_bits() {
    let (f, lay) = v4_frame(
        &eth(key::ETH_TYPE_IP),
        ip4_hdr(),
        &L4::Tcp(tcp_hdr(1, 2)),
        b"",
    );
    let cases = [
        // DSCP only (ECN kept), TTL untouched.
        (
            Ipv4Set {
                tos: 0xb8,
                ttl: 1,
                ..Default::default()
            },
            Ipv4Set {
                tos: 0xfc,
                ..Default::default()
            },
        ),
        // ECN only.
        (
            Ipv4Set {
                tos: 0x03,
                ..Default::default()
            },
            Ipv4Set {
                tos: 0x03,
                ..Default::default()
            },
        ),
        // TTL only.
        (
            Ipv4Set {
                ttl: 9,
                ..Default::default()
            },
            Ipv4Set {
                ttl: 0xff,
                ..Default::default()
            },
        ),
        // Source /24, destination last octet.
        (
            Ipv4Set {
                src: [100, 64, 1, 99],
                dst: [0, 0, 0, 254],
                ..Default::default()
            },
            Ipv4Set {
                src: [0xff, 0xff, 0xff, 0],
                dst: [0, 0, 0, 0xff],
                ..Default::default()
            },
        ),
        // Odd bit masks.
        (
            Ipv4Set {
                src: [0xff; 4],
                dst: [0; 4],
                tos: 0xff,
                ttl: 0,
            },
            Ipv4Set {
                src: [0x81, 0x42, 0x24, 0x18],
                dst: [0x0f; 4],
                tos: 0x10,
                ttl: 0x80,
            },
        ),
    ];
    for (v, m) in cases {
        let out = apply(&f, DpAction::SetIpv4 { value: v, mask: m });
        let mut want = f.clone();
        model_ipv4(&mut want, &lay, &v, &m);
        assert_frame(&out, &want);
        assert_checksums(&out, &lay);
    }
    // Spot-check one by hand.
    let out = apply(
        &f,
        DpAction::SetIpv4 {
            value: Ipv4Set {
                src: [100, 64, 1, 99],
                ..Default::default()
            },
            mask: Ipv4Set {
                src: [0xff, 0xff, 0xff, 0],
                ..Default::default()
            },
        },
    );
    assert_eq!(&out[26..30], &[100, 64, 1, 3]);
    // Zero mask: nothing changes.
    assert_frame(
        &apply(
            &f,
            DpAction::SetIpv4 {
                value: full_ipv4_mask(),
                mask: Ipv4Set::default(),
            },
        ),
        &f,
    );
}

#[test]
fn set_ipv4_udp_checksum_updated_and_zero_stays_zero() {
    let v = Ipv4Set {
        src: [1, 2, 3, 4],
        dst: [5, 6, 7, 8],
        ..Default::default()
    };
    let m = Ipv4Set {
        src: [0xff; 4],
        dst: [0xff; 4],
        ..Default::default()
    };
    for zero_csum in [false, true] {
        let l4 = L4::Udp {
            src: 5000,
            dst: 53,
            zero_csum,
        };
        let (f, lay) = v4_frame(&eth(key::ETH_TYPE_IP), ip4_hdr(), &l4, b"query");
        let out = apply(&f, DpAction::SetIpv4 { value: v, mask: m });
        let (h, rest) = Ipv4Header::from_slice(&out[14..]).unwrap();
        let (u, payload) = UdpHeader::from_slice(rest).unwrap();
        if zero_csum {
            assert_eq!(u.checksum, 0, "no checksum stays no checksum");
        } else {
            assert_eq!(u.checksum, u.calc_checksum_ipv4(&h, payload).unwrap());
        }
        let mut want = f.clone();
        model_ipv4(&mut want, &lay, &v, &m);
        assert_frame(&out, &want);
    }
}

/// A UDP payload word that makes the segment's checksum compute to 0 (so it
/// must be sent as 0xffff) for the given pseudo-header and ports.
fn udp_word_for_zero_checksum(src: &[u8], dst: &[u8], sport: u16, dport: u16) -> [u8; 2] {
    let len = 10u16; // 8 header + 2 payload
    let s = ones_sum(&[
        src,
        dst,
        &[0, key::IPPROTO_UDP],
        &len.to_be_bytes(),
        &sport.to_be_bytes(),
        &dport.to_be_bytes(),
        &len.to_be_bytes(),
    ]);
    (0xffff - s).to_be_bytes()
}

#[test]
fn set_ipv4_udp_checksum_that_computes_to_zero_is_sent_as_ffff() {
    let new_src = [1, 2, 3, 4];
    let w = udp_word_for_zero_checksum(&new_src, &IP4_B, 5000, 53);
    let (f, lay) = v4_frame(&eth(key::ETH_TYPE_IP), ip4_hdr(), &L4::udp(5000, 53), &w);
    let l4 = lay.l4.unwrap();
    assert_ne!(be16_at(&f, l4 + 6), 0xffff);
    let out = apply(
        &f,
        DpAction::SetIpv4 {
            value: Ipv4Set {
                src: new_src,
                ..Default::default()
            },
            mask: Ipv4Set {
                src: [0xff; 4],
                ..Default::default()
            },
        },
    );
    assert_eq!(be16_at(&out, l4 + 6), 0xffff);
    assert_checksums(&out, &lay);
}

#[test]
fn set_ipv4_tos_ttl_leave_l4_checksum_alone() {
    let (f, lay) = v4_frame(&eth(key::ETH_TYPE_IP), ip4_hdr(), &L4::udp(1, 2), b"xyz");
    let l4 = lay.l4.unwrap();
    let out = apply(
        &f,
        DpAction::SetIpv4 {
            value: Ipv4Set {
                tos: 0xff,
                ttl: 0,
                ..Default::default()
            },
            mask: Ipv4Set {
                tos: 0xff,
                ttl: 0xff,
                ..Default::default()
            },
        },
    );
    assert_eq!(&out[l4..], &f[l4..]);
    assert_eq!((out[15], out[22]), (0xff, 0));
    assert_checksums(&out, &lay);
}

#[test]
fn set_ipv4_icmp_checksum_has_no_pseudo_header() {
    let echo = Icmpv4Type::EchoRequest(IcmpEchoHeader { id: 7, seq: 8 });
    let (f, lay) = v4_frame(&eth(key::ETH_TYPE_IP), ip4_hdr(), &L4::Icmp4(echo), b"ping");
    let out = apply(
        &f,
        DpAction::SetIpv4 {
            value: Ipv4Set {
                src: [9; 4],
                dst: [8; 4],
                ..Default::default()
            },
            mask: full_ipv4_mask(),
        },
    );
    assert_eq!(
        &out[lay.l4.unwrap()..],
        &f[lay.l4.unwrap()..],
        "ICMP is untouched"
    );
    assert_checksums(&out, &lay);
}

#[test]
fn set_ipv4_over_vlan_and_with_padding() {
    let l2 = cat(&[
        &eth(key::ETH_TYPE_VLAN_8021AD),
        &tag(1, 10, key::ETH_TYPE_VLAN),
        &tag(2, 20, key::ETH_TYPE_IP),
    ]);
    let (f, lay) = v4_frame(&l2, ip4_hdr(), &L4::udp(1, 2), b"");
    let f = pad60(f);
    let v = Ipv4Set {
        src: [11, 12, 13, 14],
        dst: [15, 16, 17, 18],
        tos: 4,
        ttl: 5,
    };
    let out = apply(
        &f,
        DpAction::SetIpv4 {
            value: v,
            mask: full_ipv4_mask(),
        },
    );
    let mut want = f.clone();
    model_ipv4(&mut want, &lay, &v, &full_ipv4_mask());
    assert_frame(&out, &want);
    assert_eq!(&out[50..], &f[50..], "padding untouched");
}

#[test]
fn set_ipv4_first_fragment_updates_the_whole_datagram_checksum() {
    // A 40-byte UDP datagram whose first 24 bytes travel in the first fragment:
    // the UDP checksum covers the whole datagram, so it must become the
    // checksum of the whole datagram with the new addresses.
    let payload: Vec<u8> = (0..32).collect();
    let whole = l4_bytes(&L4::udp(7, 9), &IP4_A, &IP4_B, &payload);
    let mut ip = ip4_hdr();
    ip.dont_fragment = false;
    ip.more_fragments = true;
    let f = cat(&[
        &eth(key::ETH_TYPE_IP),
        &ipv4_datagram(ip, key::IPPROTO_UDP, &whole[..24]),
    ]);
    let new_dst = [203, 0, 113, 77];
    let out = apply(
        &f,
        DpAction::SetIpv4 {
            value: Ipv4Set {
                dst: new_dst,
                ..Default::default()
            },
            mask: Ipv4Set {
                dst: [0xff; 4],
                ..Default::default()
            },
        },
    );
    let (u, _) = UdpHeader::from_slice(&whole).unwrap();
    let want = u.calc_checksum_ipv4_raw(IP4_A, new_dst, &payload).unwrap();
    assert_eq!(be16_at(&out, 34 + 6), want);
    let (h, _) = Ipv4Header::from_slice(&out[14..]).unwrap();
    assert_eq!(h.header_checksum, h.calc_header_checksum());
}

#[test]
fn set_ipv4_later_fragment_leaves_the_payload_alone() {
    let mut ip = ip4_hdr();
    ip.dont_fragment = false;
    ip.fragment_offset = IpFragOffset::try_new(3).unwrap();
    // Payload bytes that would look like a UDP header with a checksum.
    let body = [
        0x12, 0x34, 0x56, 0x78, 0, 16, 0xab, 0xcd, 1, 2, 3, 4, 5, 6, 7, 8,
    ];
    let f = pad60(cat(&[
        &eth(key::ETH_TYPE_IP),
        &ipv4_datagram(ip, key::IPPROTO_UDP, &body),
    ]));
    let lay = Lay {
        l3: 14,
        l4: None,
        v4: true,
        proto: key::IPPROTO_UDP,
        final_dst: None,
    };
    let v = Ipv4Set {
        src: [1, 1, 1, 1],
        dst: [2, 2, 2, 2],
        tos: 0,
        ttl: 1,
    };
    let out = apply(
        &f,
        DpAction::SetIpv4 {
            value: v,
            mask: full_ipv4_mask(),
        },
    );
    assert_eq!(&out[34..], &f[34..]);
    let mut want = f.clone();
    model_ipv4(&mut want, &lay, &v, &full_ipv4_mask());
    assert_frame(&out, &want);
}

#[test]
fn set_ipv4_on_a_packet_without_ipv4_does_nothing() {
    let act = DpAction::SetIpv4 {
        value: Ipv4Set {
            src: [9; 4],
            dst: [9; 4],
            tos: 9,
            ttl: 9,
        },
        mask: full_ipv4_mask(),
    };
    let arp = arp_frame(1);
    assert_frame(&apply(&arp, act.clone()), &arp);
    let (v6, _) = v6_frame(
        &eth(key::ETH_TYPE_IPV6),
        ip6_hdr(),
        &[],
        &L4::udp(1, 2),
        b"",
    );
    assert_frame(&apply(&v6, act.clone()), &v6);
    let other = pad60(eth(0x88cc));
    assert_frame(&apply(&other, act.clone()), &other);
    let short = eth(key::ETH_TYPE_IP);
    assert_frame(&apply(&short, act), &short);
}

// ---------------------------------------------------------------------------
// IPv6
// ---------------------------------------------------------------------------

fn full_ipv6_mask() -> Ipv6Set {
    Ipv6Set {
        src: [0xff; 16],
        dst: [0xff; 16],
        tc: 0xff,
        hlimit: 0xff,
        label: 0xf_ffff,
    }
}

#[test]
fn set_ipv6_all_fields_tcp_udp_icmpv6() {
    let v = Ipv6Set {
        src: IP6_C,
        dst: IP6_A,
        tc: 0x12,
        hlimit: 7,
        label: 0xa_bcde,
    };
    let echo = Icmpv6Type::EchoRequest(IcmpEchoHeader { id: 3, seq: 4 });
    for l4 in [L4::Tcp(tcp_hdr(1, 2)), L4::udp(3, 4), L4::Icmp6(echo)] {
        let (f, lay) = v6_frame(
            &eth(key::ETH_TYPE_IPV6),
            ip6_hdr(),
            &[],
            &l4,
            b"some payload",
        );
        let out = apply(
            &f,
            DpAction::SetIpv6 {
                value: v,
                mask: full_ipv6_mask(),
            },
        );
        let (h, rest) = Ipv6Header::from_slice(&out[14..]).unwrap();
        assert_eq!((h.source, h.destination), (v.src, v.dst));
        assert_eq!(
            (h.traffic_class, h.hop_limit, h.flow_label.value()),
            (0x12, 7, 0xa_bcde)
        );
        match l4 {
            L4::Tcp(_) => {
                let (t, p) = TcpHeader::from_slice(rest).unwrap();
                assert_eq!(t.checksum, t.calc_checksum_ipv6(&h, p).unwrap());
            }
            L4::Udp { .. } => {
                let (u, p) = UdpHeader::from_slice(rest).unwrap();
                assert_eq!(u.checksum, u.calc_checksum_ipv6(&h, p).unwrap());
            }
            _ => assert!(Icmpv6Slice::from_slice(rest)
                .unwrap()
                .is_checksum_valid(h.source, h.destination)),
        }
        let mut want = f.clone();
        model_ipv6(&mut want, &lay, &v, &full_ipv6_mask());
        assert_frame(&out, &want);
    }
}

#[test]
fn set_ipv6_masked_fields_change_only_masked_bits() {
    let (f, lay) = v6_frame(
        &eth(key::ETH_TYPE_IPV6),
        ip6_hdr(),
        &[],
        &L4::Tcp(tcp_hdr(1, 2)),
        b"",
    );
    let cases = [
        // Traffic class DSCP bits only.
        (
            Ipv6Set {
                tc: 0x04,
                ..Default::default()
            },
            Ipv6Set {
                tc: 0xfc,
                ..Default::default()
            },
        ),
        // Label low bits; bits above 20 in value and mask are ignored (version stays 6).
        (
            Ipv6Set {
                label: 0xffff_ffff,
                ..Default::default()
            },
            Ipv6Set {
                label: 0xfff0_00ff,
                ..Default::default()
            },
        ),
        (
            Ipv6Set {
                label: 0,
                ..Default::default()
            },
            Ipv6Set {
                label: 0xffff_ffff,
                ..Default::default()
            },
        ),
        // Hop limit.
        (
            Ipv6Set {
                hlimit: 1,
                ..Default::default()
            },
            Ipv6Set {
                hlimit: 0xff,
                ..Default::default()
            },
        ),
        // /64 prefix of the source, interface id of the destination.
        (
            Ipv6Set {
                src: IP6_C,
                dst: IP6_C,
                ..Default::default()
            },
            Ipv6Set {
                src: [
                    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 0,
                ],
                dst: [
                    0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                ],
                ..Default::default()
            },
        ),
    ];
    for (v, m) in cases {
        let out = apply(&f, DpAction::SetIpv6 { value: v, mask: m });
        let mut want = f.clone();
        model_ipv6(&mut want, &lay, &v, &m);
        assert_frame(&out, &want);
        assert_eq!(out[14] >> 4, 6);
    }
    assert_frame(
        &apply(
            &f,
            DpAction::SetIpv6 {
                value: full_ipv6_mask(),
                mask: Ipv6Set::default(),
            },
        ),
        &f,
    );
}

#[test]
fn set_ipv6_through_extension_headers() {
    let chains = [
        vec![Ext::Hop(0)],
        vec![Ext::Hop(1), Ext::Dest(0), Ext::Ah(2)],
        vec![Ext::Frag(0, true)],
        vec![Ext::Dest(0), Ext::Routing(0, vec![IP6_C])],
    ];
    let v = Ipv6Set {
        src: IP6_C,
        dst: IP6_A,
        ..Default::default()
    };
    let m = Ipv6Set {
        src: [0xff; 16],
        dst: [0xff; 16],
        ..Default::default()
    };
    for chain in chains {
        for l4 in [L4::Tcp(tcp_hdr(1, 2)), L4::udp(3, 4)] {
            let (f, lay) = v6_frame(
                &eth(key::ETH_TYPE_IPV6),
                ip6_hdr(),
                &chain,
                &l4,
                b"0123456789",
            );
            let out = apply(&f, DpAction::SetIpv6 { value: v, mask: m });
            let mut want = f.clone();
            model_ipv6(&mut want, &lay, &v, &m);
            assert_frame(&out, &want);
        }
    }
}

#[test]
fn set_ipv6_dst_with_routing_header_keeps_l4_checksum() {
    // With segments left, the pseudo-header destination is the routing
    // header's final address, not the IPv6 destination being rewritten.
    let exts = [Ext::Routing(1, vec![IP6_C])];
    for l4 in [L4::Tcp(tcp_hdr(1, 2)), L4::udp(3, 4)] {
        let (f, lay) = v6_frame(&eth(key::ETH_TYPE_IPV6), ip6_hdr(), &exts, &l4, b"hello");
        let l4o = lay.l4.unwrap();
        assert_checksums(&f, &lay);
        let dst = DpAction::SetIpv6 {
            value: Ipv6Set {
                dst: IP6_A,
                ..Default::default()
            },
            mask: Ipv6Set {
                dst: [0xff; 16],
                ..Default::default()
            },
        };
        let out = apply(&f, dst);
        assert_eq!(&out[l4o..], &f[l4o..], "L4 checksum unchanged");
        assert_checksums(&out, &lay);
        // The source is in the pseudo-header either way.
        let src = DpAction::SetIpv6 {
            value: Ipv6Set {
                src: IP6_C,
                ..Default::default()
            },
            mask: Ipv6Set {
                src: [0xff; 16],
                ..Default::default()
            },
        };
        let out = apply(&f, src);
        assert_checksums(&out, &lay);
    }
}

#[test]
fn set_ipv6_later_fragment_leaves_the_payload_alone() {
    let body = [
        0x12, 0x34, 0x56, 0x78, 0, 16, 0xab, 0xcd, 1, 2, 3, 4, 5, 6, 7, 8,
    ];
    let f = cat(&[
        &eth(key::ETH_TYPE_IPV6),
        &ipv6_datagram(ip6_hdr(), &[Ext::Frag(2, false)], key::IPPROTO_UDP, &body),
    ]);
    let lay = Lay {
        l3: 14,
        l4: None,
        v4: false,
        proto: key::IPPROTO_UDP,
        final_dst: None,
    };
    let out = apply(
        &f,
        DpAction::SetIpv6 {
            value: Ipv6Set {
                src: IP6_C,
                ..Default::default()
            },
            mask: full_ipv6_mask(),
        },
    );
    assert_eq!(&out[54..], &f[54..]);
    let mut want = f.clone();
    model_ipv6(
        &mut want,
        &lay,
        &Ipv6Set {
            src: IP6_C,
            ..Default::default()
        },
        &full_ipv6_mask(),
    );
    assert_frame(&out, &want);
}

#[test]
fn set_ipv6_on_a_packet_without_ipv6_does_nothing() {
    let act = DpAction::SetIpv6 {
        value: Ipv6Set {
            src: IP6_C,
            dst: IP6_C,
            tc: 1,
            hlimit: 1,
            label: 1,
        },
        mask: full_ipv6_mask(),
    };
    let (v4, _) = v4_frame(
        &eth(key::ETH_TYPE_IP),
        ip4_hdr(),
        &L4::Tcp(tcp_hdr(1, 2)),
        &[0; 40],
    );
    assert_frame(&apply(&v4, act.clone()), &v4);
    let arp = arp_frame(2);
    assert_frame(&apply(&arp, act), &arp);
}

#[test]
fn set_ipv6_udp_checksum_that_computes_to_zero_is_sent_as_ffff() {
    let w = udp_word_for_zero_checksum(&IP6_A, &IP6_C, 5000, 53);
    let (f, lay) = v6_frame(
        &eth(key::ETH_TYPE_IPV6),
        ip6_hdr(),
        &[],
        &L4::udp(5000, 53),
        &w,
    );
    let out = apply(
        &f,
        DpAction::SetIpv6 {
            value: Ipv6Set {
                dst: IP6_C,
                ..Default::default()
            },
            mask: Ipv6Set {
                dst: [0xff; 16],
                ..Default::default()
            },
        },
    );
    assert_eq!(be16_at(&out, lay.l4.unwrap() + 6), 0xffff);
    assert_checksums(&out, &lay);
}

#[test]
fn set_ipv6_udp_without_checksum_stays_without() {
    // RFC 6935: UDP tunnels over IPv6 may send a zero checksum; a rewrite
    // must not turn it into a (wrong) non-zero one.
    let l4 = L4::Udp {
        src: 4789,
        dst: 4789,
        zero_csum: true,
    };
    let (f, lay) = v6_frame(&eth(key::ETH_TYPE_IPV6), ip6_hdr(), &[], &l4, b"vxlan...");
    let v = Ipv6Set {
        src: IP6_C,
        dst: IP6_A,
        ..Default::default()
    };
    let out = apply(
        &f,
        DpAction::SetIpv6 {
            value: v,
            mask: full_ipv6_mask(),
        },
    );
    assert_eq!(be16_at(&out, lay.l4.unwrap() + 6), 0);
    let mut want = f.clone();
    model_ipv6(&mut want, &lay, &v, &full_ipv6_mask());
    assert_frame(&out, &want);
}

// ---------------------------------------------------------------------------
// Transport ports
// ---------------------------------------------------------------------------

const ALL_PORTS: L4Set = L4Set {
    src: 0xffff,
    dst: 0xffff,
};

#[test]
fn set_l4_tcp_v4_and_v6() {
    let v = L4Set {
        src: 12345,
        dst: 8443,
    };
    let frames = [
        v4_frame(
            &eth(key::ETH_TYPE_IP),
            ip4_hdr(),
            &L4::Tcp(tcp_hdr(40000, 443)),
            b"tls",
        ),
        v6_frame(
            &eth(key::ETH_TYPE_IPV6),
            ip6_hdr(),
            &[Ext::Dest(0)],
            &L4::Tcp(tcp_hdr(40000, 443)),
            b"tls",
        ),
    ];
    for (f, lay) in frames {
        let out = apply(
            &f,
            DpAction::SetL4 {
                value: v,
                mask: ALL_PORTS,
            },
        );
        let (t, _) = TcpHeader::from_slice(&out[lay.l4.unwrap()..]).unwrap();
        assert_eq!((t.source_port, t.destination_port), (12345, 8443));
        assert_checksums(&out, &lay);
        let mut want = f.clone();
        model_l4(&mut want, &lay, &v, &ALL_PORTS);
        assert_frame(&out, &want);

        // Masked: low byte of the destination only.
        let m = L4Set {
            src: 0,
            dst: 0x00ff,
        };
        let out = apply(&f, DpAction::SetL4 { value: v, mask: m });
        let (t, _) = TcpHeader::from_slice(&out[lay.l4.unwrap()..]).unwrap();
        assert_eq!(
            (t.source_port, t.destination_port),
            (40000, (443 & 0xff00) | (8443 & 0xff))
        );
        let mut want = f.clone();
        model_l4(&mut want, &lay, &v, &m);
        assert_frame(&out, &want);
    }
}

#[test]
fn set_l4_udp_v4_v6_and_zero_checksum() {
    let v = L4Set { src: 1, dst: 65535 };
    let frames = [
        v4_frame(
            &eth(key::ETH_TYPE_IP),
            ip4_hdr(),
            &L4::udp(5353, 5353),
            b"mdns",
        ),
        v4_frame(
            &eth(key::ETH_TYPE_IP),
            ip4_hdr(),
            &L4::Udp {
                src: 5353,
                dst: 5353,
                zero_csum: true,
            },
            b"mdns",
        ),
        v6_frame(
            &eth(key::ETH_TYPE_IPV6),
            ip6_hdr(),
            &[],
            &L4::udp(5353, 5353),
            b"mdns",
        ),
        v6_frame(
            &eth(key::ETH_TYPE_IPV6),
            ip6_hdr(),
            &[],
            &L4::Udp {
                src: 5353,
                dst: 5353,
                zero_csum: true,
            },
            b"mdns",
        ),
    ];
    for (f, lay) in frames {
        let out = apply(
            &f,
            DpAction::SetL4 {
                value: v,
                mask: ALL_PORTS,
            },
        );
        let l4 = lay.l4.unwrap();
        let (u, _) = UdpHeader::from_slice(&out[l4..]).unwrap();
        assert_eq!((u.source_port, u.destination_port), (1, 65535));
        if be16_at(&f, l4 + 6) == 0 {
            assert_eq!(u.checksum, 0, "no checksum stays no checksum");
        }
        assert_checksums(&out, &lay);
        let mut want = f.clone();
        model_l4(&mut want, &lay, &v, &ALL_PORTS);
        assert_frame(&out, &want);
    }
}

#[test]
fn set_l4_udp_checksum_that_computes_to_zero_is_sent_as_ffff() {
    let w = udp_word_for_zero_checksum(&IP4_A, &IP4_B, 4242, 53);
    let (f, lay) = v4_frame(&eth(key::ETH_TYPE_IP), ip4_hdr(), &L4::udp(1000, 53), &w);
    let out = apply(
        &f,
        DpAction::SetL4 {
            value: L4Set { src: 4242, dst: 0 },
            mask: L4Set {
                src: 0xffff,
                dst: 0,
            },
        },
    );
    assert_eq!(be16_at(&out, lay.l4.unwrap() + 6), 0xffff);
    assert_checksums(&out, &lay);

    // And back: from 0xffff to a regular value.
    let back = apply(
        &out,
        DpAction::SetL4 {
            value: L4Set { src: 1000, dst: 0 },
            mask: L4Set {
                src: 0xffff,
                dst: 0,
            },
        },
    );
    assert_frame(&back, &f);
}

#[test]
fn set_l4_sctp_recomputes_crc32c() {
    let chunk: Vec<u8> = [
        0x00, 0x03, 0x00, 0x14, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0x2f, b'd', b'a', b't', b'a',
    ]
    .to_vec();
    let v = L4Set { src: 2906, dst: 9 };
    let frames = [
        v4_frame(
            &eth(key::ETH_TYPE_IP),
            ip4_hdr(),
            &L4::Sctp {
                src: 2905,
                dst: 36412,
            },
            &chunk,
        ),
        v6_frame(
            &eth(key::ETH_TYPE_IPV6),
            ip6_hdr(),
            &[Ext::Hop(0)],
            &L4::Sctp {
                src: 2905,
                dst: 36412,
            },
            &chunk,
        ),
    ];
    for (f, lay) in frames {
        for m in [
            ALL_PORTS,
            L4Set {
                src: 0xff00,
                dst: 0,
            },
        ] {
            let out = apply(&f, DpAction::SetL4 { value: v, mask: m });
            let l4 = lay.l4.unwrap();
            let want_src = (2905 & !m.src) | (v.src & m.src);
            let want_dst = (36412 & !m.dst) | (v.dst & m.dst);
            assert_eq!(
                (be16_at(&out, l4), be16_at(&out, l4 + 2)),
                (want_src, want_dst)
            );
            let mut seg = out[l4..].to_vec();
            seg[8..12].fill(0);
            assert_eq!(
                u32::from_le_bytes(out[l4 + 8..l4 + 12].try_into().unwrap()),
                crc32c_ref(&seg)
            );
            let mut want = f.clone();
            model_l4(&mut want, &lay, &v, &m);
            assert_frame(&out, &want);
        }
    }
}

#[test]
fn set_l4_sctp_crc_ignores_ethernet_padding() {
    // SHUTDOWN COMPLETE (a 4-byte chunk): 50 bytes, padded to 60 on the wire.
    let (f, lay) = v4_frame(
        &eth(key::ETH_TYPE_IP),
        ip4_hdr(),
        &L4::Sctp { src: 1, dst: 2 },
        &[14, 0, 0, 4],
    );
    assert_eq!(f.len(), 50);
    let f = pad60(f);
    let out = apply(
        &f,
        DpAction::SetL4 {
            value: L4Set { src: 3, dst: 4 },
            mask: ALL_PORTS,
        },
    );
    let l4 = lay.l4.unwrap();
    let mut seg = out[l4..50].to_vec();
    seg[8..12].fill(0);
    assert_eq!(
        u32::from_le_bytes(out[l4 + 8..l4 + 12].try_into().unwrap()),
        crc32c_ref(&seg)
    );
    let mut want = f.clone();
    model_l4(&mut want, &lay, &L4Set { src: 3, dst: 4 }, &ALL_PORTS);
    assert_frame(&out, &want);
}

#[test]
fn set_l4_on_icmp_and_fragments_does_nothing() {
    let act = DpAction::SetL4 {
        value: L4Set { src: 1, dst: 2 },
        mask: ALL_PORTS,
    };
    let echo = Icmpv4Type::EchoRequest(IcmpEchoHeader { id: 7, seq: 8 });
    let (icmp, _) = v4_frame(&eth(key::ETH_TYPE_IP), ip4_hdr(), &L4::Icmp4(echo), b"ping");
    assert_frame(&apply(&icmp, act.clone()), &icmp);
    let echo6 = Icmpv6Type::EchoRequest(IcmpEchoHeader { id: 7, seq: 8 });
    let (icmp6, _) = v6_frame(
        &eth(key::ETH_TYPE_IPV6),
        ip6_hdr(),
        &[],
        &L4::Icmp6(echo6),
        b"ping",
    );
    assert_frame(&apply(&icmp6, act.clone()), &icmp6);

    let mut ip = ip4_hdr();
    ip.dont_fragment = false;
    ip.fragment_offset = IpFragOffset::try_new(1).unwrap();
    let later = pad60(cat(&[
        &eth(key::ETH_TYPE_IP),
        &ipv4_datagram(ip, key::IPPROTO_TCP, &[0x55; 24]),
    ]));
    assert_frame(&apply(&later, act.clone()), &later);
    let later6 = cat(&[
        &eth(key::ETH_TYPE_IPV6),
        &ipv6_datagram(
            ip6_hdr(),
            &[Ext::Frag(1, true)],
            key::IPPROTO_TCP,
            &[0x55; 24],
        ),
    ]);
    assert_frame(&apply(&later6, act.clone()), &later6);
    let arp = arp_frame(1);
    assert_frame(&apply(&arp, act), &arp);
}

// ---------------------------------------------------------------------------
// ARP
// ---------------------------------------------------------------------------

#[test]
fn set_arp_full_and_masked() {
    let f = arp_frame(1);
    let v = ArpSet {
        op: 2,
        sha: [0xaa; 6],
        spa: [1, 2, 3, 4],
        tha: [0xbb; 6],
        tpa: [5, 6, 7, 8],
    };
    let full = ArpSet {
        op: 0xffff,
        sha: [0xff; 6],
        spa: [0xff; 4],
        tha: [0xff; 6],
        tpa: [0xff; 4],
    };
    let out = apply(
        &f,
        DpAction::SetArp {
            value: v,
            mask: full,
        },
    );
    assert_eq!(be16_at(&out, 20), 2);
    assert_eq!(
        (&out[22..28], &out[28..32], &out[32..38], &out[38..42]),
        (
            &[0xaa; 6][..],
            &[1, 2, 3, 4][..],
            &[0xbb; 6][..],
            &[5, 6, 7, 8][..]
        )
    );
    assert_eq!(&out[..20], &f[..20]);
    assert_eq!(&out[42..], &f[42..]);

    let m = ArpSet {
        op: 0x00ff,
        sha: [0, 0, 0, 0, 0, 0xff],
        spa: [0, 0, 0, 0xff],
        tha: [0; 6],
        tpa: [0xf0, 0, 0, 0],
    };
    let out = apply(&f, DpAction::SetArp { value: v, mask: m });
    let mut want = f.clone();
    model_arp(&mut want, &v, &m);
    assert_frame(&out, &want);

    // Re-extraction sees the new values.
    let (k, _, _) = re_extract(&mut prepared(&apply(
        &f,
        DpAction::SetArp {
            value: v,
            mask: full,
        },
    )));
    assert_eq!(k.nw_proto(), 2);
    assert_eq!(k.bytes(ofs::ARP_SHA, 6), &[0xaa; 6]);
    assert_eq!(k.bytes(ofs::NW_SRC, 4), &[1, 2, 3, 4]);
    assert_eq!(k.bytes(ofs::ARP_THA, 6), &[0xbb; 6]);
    assert_eq!(k.bytes(ofs::NW_DST, 4), &[5, 6, 7, 8]);
}

#[test]
fn set_arp_on_a_packet_without_arp_does_nothing() {
    let act = DpAction::SetArp {
        value: ArpSet {
            op: 2,
            sha: [0xaa; 6],
            spa: [1; 4],
            tha: [0xbb; 6],
            tpa: [2; 4],
        },
        mask: ArpSet {
            op: 0xffff,
            sha: [0xff; 6],
            spa: [0xff; 4],
            tha: [0xff; 6],
            tpa: [0xff; 4],
        },
    };
    let (v4, _) = v4_frame(
        &eth(key::ETH_TYPE_IP),
        ip4_hdr(),
        &L4::Tcp(tcp_hdr(1, 2)),
        &[0; 20],
    );
    assert_frame(&apply(&v4, act.clone()), &v4);
    let (v6, _) = v6_frame(
        &eth(key::ETH_TYPE_IPV6),
        ip6_hdr(),
        &[],
        &L4::udp(1, 2),
        b"",
    );
    assert_frame(&apply(&v6, act), &v6);
}

// ---------------------------------------------------------------------------
// VLAN push / pop
// ---------------------------------------------------------------------------

fn offsets(p: &Packet) -> (u16, u16) {
    (p.meta().l3_ofs, p.meta().l4_ofs)
}

fn re_extract(p: &mut Packet) -> (FlowKey, u16, u16) {
    let mut k = FlowKey::ZERO;
    let mut s = ExtractStats::default();
    extract(p, &mut k, &mut s);
    assert_eq!(s, ExtractStats::default());
    (k, p.meta().l3_ofs, p.meta().l4_ofs)
}

#[test]
fn push_vlan_on_untagged_and_tagged() {
    let (f, _) = v4_frame(
        &eth(key::ETH_TYPE_IP),
        ip4_hdr(),
        &L4::Tcp(tcp_hdr(1, 2)),
        b"xyz",
    );
    let mut p = prepared(&f);
    let (k0, _, _) = re_extract(&mut prepared(&f));
    assert_eq!(offsets(&p), (14, 34));
    // The CFI ("present") bit in the action is not put on the wire.
    actions::apply(
        &mut p,
        &DpAction::PushVlan {
            tpid: key::ETH_TYPE_VLAN,
            tci: (3 << 13) | VLAN_CFI | 100,
        },
    );
    assert_eq!(offsets(&p), (18, 38), "offsets follow the headers");
    let d = p.data().to_vec();
    assert_eq!(d.len(), f.len() + 4);
    let (e, rest) = Ethernet2Header::from_slice(&d).unwrap();
    assert_eq!(
        (e.destination, e.source, e.ether_type),
        (DST, SRC, EtherType::VLAN_TAGGED_FRAME)
    );
    let (t, rest) = SingleVlanHeader::from_slice(rest).unwrap();
    assert_eq!(
        (
            t.pcp.value(),
            t.drop_eligible_indicator,
            t.vlan_id.value(),
            t.ether_type
        ),
        (3, false, 100, EtherType::IPV4)
    );
    assert_eq!(rest, &f[14..]);

    // Offsets after the push are those extraction finds.
    let mut q = prepared(&d);
    let (k1, l3, l4) = re_extract(&mut q);
    assert_eq!((l3, l4), (18, 38));
    assert_eq!(k1.be16_at(ofs::VLAN_TCI), (3 << 13) | VLAN_CFI | 100);
    let mut k0v = k0;
    k0v.set_be16(ofs::VLAN_TCI, (3 << 13) | VLAN_CFI | 100);
    assert_eq!(k1, k0v);

    // A later rewrite uses the shifted offsets.
    actions::apply(
        &mut p,
        &DpAction::SetIpv4 {
            value: Ipv4Set {
                ttl: 1,
                ..Default::default()
            },
            mask: full_ipv4_mask(),
        },
    );
    let lay = Lay {
        l3: 18,
        l4: Some(38),
        v4: true,
        proto: key::IPPROTO_TCP,
        final_dst: None,
    };
    assert_eq!(p.data()[18 + 8], 1);
    assert_eq!(&p.data()[18 + 12..18 + 20], &[0; 8]);
    assert_checksums(p.data(), &lay);

    // Pushing an 802.1ad tag on top makes QinQ.
    actions::apply(
        &mut p,
        &DpAction::PushVlan {
            tpid: key::ETH_TYPE_VLAN_8021AD,
            tci: 7,
        },
    );
    assert_eq!(offsets(&p), (22, 42));
    let d = p.data().to_vec();
    assert_eq!(be16_at(&d, 12), key::ETH_TYPE_VLAN_8021AD);
    assert_eq!(be16_at(&d, 14), 7);
    assert_eq!(be16_at(&d, 16), key::ETH_TYPE_VLAN);
    let mut q = prepared(&d);
    let (k2, l3, l4) = re_extract(&mut q);
    assert_eq!((l3, l4), (22, 42));
    assert_eq!(k2.be16_at(ofs::VLAN_TCI), VLAN_CFI | 7);
    assert_eq!(k2.be16_at(ofs::VLAN2_TCI), (3 << 13) | VLAN_CFI | 100);
}

#[test]
fn push_vlan_on_arp_and_non_ip_frames() {
    let f = arp_frame(1);
    let mut p = prepared(&f);
    actions::apply(
        &mut p,
        &DpAction::PushVlan {
            tpid: key::ETH_TYPE_VLAN,
            tci: 5,
        },
    );
    assert_eq!(offsets(&p), (18, NO_OFS));
    assert_eq!(&p.data()[18..], &f[14..]);
    let mut q = pool().packet_from(&eth(0x88cc)).unwrap();
    let (_, l3, _) = re_extract(&mut q);
    assert_eq!(l3, 14);
    actions::apply(
        &mut q,
        &DpAction::PushVlan {
            tpid: key::ETH_TYPE_VLAN,
            tci: 5,
        },
    );
    assert_eq!(q.data().len(), 18);
    assert_eq!(offsets(&q), (18, NO_OFS));
}

#[test]
fn pop_vlan_single_double_and_untagged() {
    let inner = v4_frame(&eth(key::ETH_TYPE_IP), ip4_hdr(), &L4::udp(1, 2), b"data").0;
    let single = cat(&[
        &eth(key::ETH_TYPE_VLAN),
        &tag(2, 30, key::ETH_TYPE_IP),
        &inner[14..],
    ]);
    let double = cat(&[
        &eth(key::ETH_TYPE_VLAN_8021AD),
        &tag(1, 40, key::ETH_TYPE_VLAN),
        &tag(2, 30, key::ETH_TYPE_IP),
        &inner[14..],
    ]);

    let mut p = prepared(&single);
    assert_eq!(offsets(&p), (18, 38));
    actions::apply(&mut p, &DpAction::PopVlan);
    assert_frame(p.data(), &inner);
    assert_eq!(offsets(&p), (14, 34));
    let lay = Lay {
        l3: 14,
        l4: Some(34),
        v4: true,
        proto: key::IPPROTO_UDP,
        final_dst: None,
    };
    actions::apply(
        &mut p,
        &DpAction::SetL4 {
            value: L4Set { src: 99, dst: 98 },
            mask: ALL_PORTS,
        },
    );
    assert_eq!((be16_at(p.data(), 34), be16_at(p.data(), 36)), (99, 98));
    assert_checksums(p.data(), &lay);

    let mut p = prepared(&double);
    assert_eq!(offsets(&p), (22, 42));
    actions::apply(&mut p, &DpAction::PopVlan);
    assert_frame(p.data(), &single);
    assert_eq!(offsets(&p), (18, 38));
    let (_, l3, l4) = re_extract(&mut pool().packet_from(p.data()).unwrap());
    assert_eq!((l3, l4), (18, 38));
    actions::apply(&mut p, &DpAction::PopVlan);
    assert_frame(p.data(), &inner);
    assert_eq!(offsets(&p), (14, 34));

    // Nothing to pop: unchanged.
    actions::apply(&mut p, &DpAction::PopVlan);
    assert_frame(p.data(), &inner);
    assert_eq!(offsets(&p), (14, 34));

    // Push then pop is the identity.
    let mut p = prepared(&inner);
    actions::apply(
        &mut p,
        &DpAction::PushVlan {
            tpid: key::ETH_TYPE_VLAN,
            tci: 123,
        },
    );
    actions::apply(&mut p, &DpAction::PopVlan);
    assert_frame(p.data(), &inner);
    assert_eq!(offsets(&p), (14, 34));

    // A frame too short to hold a tag is left alone.
    let mut p = pool()
        .packet_from(&cat(&[&eth(key::ETH_TYPE_VLAN), &[0, 1]]))
        .unwrap();
    actions::apply(&mut p, &DpAction::PopVlan);
    assert_eq!(p.data().len(), 16);
}

// ---------------------------------------------------------------------------
// Tunnel metadata and non-rewriting actions
// ---------------------------------------------------------------------------

#[test]
fn set_tunnel_sets_metadata_only() {
    let (f, _) = v4_frame(&eth(key::ETH_TYPE_IP), ip4_hdr(), &L4::udp(1, 2), b"");
    let t = TunnelMeta {
        tun_id: 0x1234_5678,
        ipv4_src: [10, 0, 0, 1],
        ipv4_dst: [10, 0, 0, 2],
        tos: 0x10,
        ttl: 64,
        flags: key::TUN_FLAG_PRESENT,
        tp_dst: 4789,
        ..TunnelMeta::default()
    };
    let mut p = prepared(&f);
    actions::apply(&mut p, &DpAction::SetTunnel(t));
    assert_eq!(p.meta().tunnel, t);
    assert_frame(p.data(), &f);
    let (k, _, _) = re_extract(&mut p);
    assert_eq!(
        u64::from_be_bytes(k.bytes(ofs::TUN_ID, 8).try_into().unwrap()),
        0x1234_5678
    );
    assert_eq!(k.bytes(ofs::TUN_SRC, 4), &[10, 0, 0, 1]);
    assert_eq!(k.bytes(ofs::TUN_DST, 4), &[10, 0, 0, 2]);
    assert_eq!((k.u8_at(ofs::TUN_TOS), k.u8_at(ofs::TUN_TTL)), (0x10, 64));
    assert_eq!(k.be16_at(ofs::TUN_FLAGS), key::TUN_FLAG_PRESENT);

    // Clearing it.
    actions::apply(&mut p, &DpAction::SetTunnel(TunnelMeta::default()));
    assert!(!p.meta().tunnel.is_present());
}

#[test]
fn output_and_userspace_do_not_touch_the_packet() {
    let (f, _) = v4_frame(&eth(key::ETH_TYPE_IP), ip4_hdr(), &L4::udp(1, 2), b"");
    let up = DpAction::Userspace(SlowPath::Controller {
        in_port: 1,
        bridge: 1,
        reason: 0,
        max_len: 128,
        controller_id: 0,
        table_id: 0,
        cookie: 0,
    });
    assert!(up.consumes() && DpAction::Output(3).consumes());
    assert!(!DpAction::PopVlan.consumes());
    let mut p = prepared(&f);
    let before = offsets(&p);
    actions::apply(&mut p, &DpAction::Output(3));
    actions::apply(&mut p, &up);
    assert_frame(p.data(), &f);
    assert_eq!(offsets(&p), before);
}

#[test]
fn rewrites_on_packets_without_offsets_do_nothing() {
    // Offsets never extracted (NO_OFS): header rewrites beyond L2 are skipped.
    let (f, _) = v4_frame(
        &eth(key::ETH_TYPE_IP),
        ip4_hdr(),
        &L4::Tcp(tcp_hdr(1, 2)),
        b"",
    );
    let mut p = pool().packet_from(&f).unwrap();
    for a in [
        DpAction::SetIpv4 {
            value: Ipv4Set {
                ttl: 1,
                ..Default::default()
            },
            mask: full_ipv4_mask(),
        },
        DpAction::SetL4 {
            value: L4Set { src: 5, dst: 6 },
            mask: ALL_PORTS,
        },
        DpAction::SetArp {
            value: ArpSet::default(),
            mask: ArpSet {
                op: 0xffff,
                ..Default::default()
            },
        },
        DpAction::SetIpv6 {
            value: Ipv6Set::default(),
            mask: full_ipv6_mask(),
        },
    ] {
        actions::apply(&mut p, &a);
    }
    assert_frame(p.data(), &f);
    // A runt frame survives every action.
    for len in [0, 5, 11, 12, 13, 17] {
        let mut p = prepared(&vec![0x81; len]);
        for a in [
            DpAction::SetEth {
                value: EthSet::default(),
                mask: EthSet {
                    src: [0xff; 6],
                    dst: [0xff; 6],
                },
            },
            DpAction::PopVlan,
            DpAction::PushVlan {
                tpid: key::ETH_TYPE_VLAN,
                tci: 1,
            },
            DpAction::PopVlan,
        ] {
            actions::apply(&mut p, &a);
        }
    }
}

// ---------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------

#[derive(Clone, Debug)]
enum Proto {
    Tcp,
    Udp,
    UdpNoCsum,
    Sctp,
    Icmp,
}

#[derive(Clone, Debug)]
struct Spec {
    v6: bool,
    vlans: u8,
    ip_opts: usize,
    tos: u8,
    ttl: u8,
    src4: [u8; 4],
    dst4: [u8; 4],
    src6: [u8; 16],
    dst6: [u8; 16],
    label: u32,
    exts: Vec<u8>,
    proto: Proto,
    sport: u16,
    dport: u16,
    tcp_bits: u16,
    seq: u32,
    payload: Vec<u8>,
    pad: bool,
}

fn spec() -> impl Strategy<Value = Spec> {
    (
        (any::<bool>(), 0u8..3, 0usize..4, any::<u8>(), any::<u8>()),
        (
            any::<[u8; 4]>(),
            any::<[u8; 4]>(),
            any::<[u8; 16]>(),
            any::<[u8; 16]>(),
            0u32..0x10_0000,
        ),
        prop::collection::vec(0u8..5, 0..3),
        prop_oneof![
            Just(Proto::Tcp),
            Just(Proto::Udp),
            Just(Proto::UdpNoCsum),
            Just(Proto::Sctp),
            Just(Proto::Icmp)
        ],
        (any::<u16>(), any::<u16>(), any::<u16>(), any::<u32>()),
        (prop::collection::vec(any::<u8>(), 0..48), any::<bool>()),
    )
        .prop_map(|(a, b, exts, proto, c, (payload, pad))| Spec {
            v6: a.0,
            vlans: a.1,
            ip_opts: a.2,
            tos: a.3,
            ttl: a.4,
            src4: b.0,
            dst4: b.1,
            src6: b.2,
            dst6: b.3,
            label: b.4,
            exts,
            proto,
            sport: c.0,
            dport: c.1,
            tcp_bits: c.2,
            seq: c.3,
            payload,
            pad,
        })
}

fn build(s: &Spec) -> (Vec<u8>, Lay) {
    let l3_type = if s.v6 {
        key::ETH_TYPE_IPV6
    } else {
        key::ETH_TYPE_IP
    };
    let l2 = match s.vlans {
        0 => eth(l3_type),
        1 => cat(&[&eth(key::ETH_TYPE_VLAN), &tag(1, 2, l3_type)]),
        _ => cat(&[
            &eth(key::ETH_TYPE_VLAN_8021AD),
            &tag(1, 2, key::ETH_TYPE_VLAN),
            &tag(3, 4, l3_type),
        ]),
    };
    let mut t = TcpHeader::new(s.sport, s.dport, s.seq, s.tcp_bits);
    let b = s.tcp_bits;
    (t.fin, t.syn, t.rst, t.psh, t.ack, t.urg, t.ece, t.cwr, t.ns) = (
        b & 1 != 0,
        b & 2 != 0,
        b & 4 != 0,
        b & 8 != 0,
        b & 16 != 0,
        b & 32 != 0,
        b & 64 != 0,
        b & 128 != 0,
        b & 256 != 0,
    );
    t.set_options_raw(&[1, 1, 1, 1][..(b as usize >> 12) & 4])
        .unwrap();
    let l4 = match (&s.proto, s.v6) {
        (Proto::Tcp, _) => L4::Tcp(t),
        (Proto::Udp, _) => L4::udp(s.sport, s.dport),
        (Proto::UdpNoCsum, _) => L4::Udp {
            src: s.sport,
            dst: s.dport,
            zero_csum: true,
        },
        (Proto::Sctp, _) => L4::Sctp {
            src: s.sport,
            dst: s.dport,
        },
        (Proto::Icmp, false) => L4::Icmp4(Icmpv4Type::EchoRequest(IcmpEchoHeader {
            id: s.sport,
            seq: s.dport,
        })),
        (Proto::Icmp, true) => L4::Icmp6(Icmpv6Type::EchoReply(IcmpEchoHeader {
            id: s.sport,
            seq: s.dport,
        })),
    };
    let (mut f, lay) = if s.v6 {
        let ip = Ipv6Header {
            traffic_class: s.tos,
            flow_label: Ipv6FlowLabel::try_new(s.label).unwrap(),
            payload_length: 0,
            next_header: IpNumber(0),
            hop_limit: s.ttl,
            source: s.src6,
            destination: s.dst6,
        };
        let exts: Vec<Ext> = s
            .exts
            .iter()
            .map(|&e| match e {
                0 => Ext::Hop(0),
                1 => Ext::Dest(1),
                2 => Ext::Ah(1),
                // Routing headers: the pseudo-header destination is the
                // final one while segments are left.
                3 => Ext::Routing(0, vec![IP6_C]),
                _ => Ext::Routing(2, vec![IP6_A, IP6_C]),
            })
            .collect();
        v6_frame(&l2, ip, &exts, &l4, &s.payload)
    } else {
        let mut ip = Ipv4Header::new(0, s.ttl, IpNumber(0), s.src4, s.dst4).unwrap();
        ip.dscp = etherparse::Ipv4Dscp::try_new(s.tos >> 2).unwrap();
        ip.ecn = etherparse::Ipv4Ecn::try_new(s.tos & 3).unwrap();
        ip.options = etherparse::Ipv4Options::try_from(&[1u8; 12][..4 * s.ip_opts]).unwrap();
        v4_frame(&l2, ip, &l4, &s.payload)
    };
    if s.pad {
        f.extend_from_slice(&[0xa5; 7]);
    }
    (f, lay)
}

fn mask_byte() -> impl Strategy<Value = u8> {
    prop_oneof![Just(0u8), Just(0xff), any::<u8>()]
}

fn ipv4_set() -> impl Strategy<Value = (Ipv4Set, Ipv4Set)> {
    (
        (any::<[u8; 4]>(), any::<[u8; 4]>(), any::<u8>(), any::<u8>()),
        (
            prop::array::uniform4(mask_byte()),
            prop::array::uniform4(mask_byte()),
            mask_byte(),
            mask_byte(),
        ),
    )
        .prop_map(|(v, m)| {
            (
                Ipv4Set {
                    src: v.0,
                    dst: v.1,
                    tos: v.2,
                    ttl: v.3,
                },
                Ipv4Set {
                    src: m.0,
                    dst: m.1,
                    tos: m.2,
                    ttl: m.3,
                },
            )
        })
}

fn ipv6_set() -> impl Strategy<Value = (Ipv6Set, Ipv6Set)> {
    (
        (
            any::<[u8; 16]>(),
            any::<[u8; 16]>(),
            any::<u8>(),
            any::<u8>(),
            any::<u32>(),
        ),
        (
            prop::array::uniform16(mask_byte()),
            prop::array::uniform16(mask_byte()),
            mask_byte(),
            mask_byte(),
            prop_oneof![Just(0u32), Just(0xf_ffff), any::<u32>()],
        ),
    )
        .prop_map(|(v, m)| {
            (
                Ipv6Set {
                    src: v.0,
                    dst: v.1,
                    tc: v.2,
                    hlimit: v.3,
                    label: v.4,
                },
                Ipv6Set {
                    src: m.0,
                    dst: m.1,
                    tc: m.2,
                    hlimit: m.3,
                    label: m.4,
                },
            )
        })
}

fn l4_set() -> impl Strategy<Value = (L4Set, L4Set)> {
    (
        any::<u16>(),
        any::<u16>(),
        prop_oneof![Just(0u16), Just(0xffff), any::<u16>()],
        prop_oneof![Just(0u16), Just(0xffff), any::<u16>()],
    )
        .prop_map(|(vs, vd, ms, md)| (L4Set { src: vs, dst: vd }, L4Set { src: ms, dst: md }))
}

fn proptest_config() -> ProptestConfig {
    ProptestConfig {
        cases: 2048,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(proptest_config())]

    /// Random masked L3 and L4 rewrites on random TCP/UDP/SCTP/ICMP packets:
    /// the result is exactly "old bits outside the mask, new bits inside,
    /// checksums fully recomputed" (so incremental updates equal full
    /// recomputation and nothing else moves).
    #[test]
    fn masked_rewrites_keep_checksums_valid(
        s in spec(),
        ip4 in ipv4_set(),
        ip6 in ipv6_set(),
        ports in l4_set(),
        order in any::<bool>(),
    ) {
        let (f, lay) = build(&s);
        let ip_act = if s.v6 {
            DpAction::SetIpv6 { value: ip6.0, mask: ip6.1 }
        } else {
            DpAction::SetIpv4 { value: ip4.0, mask: ip4.1 }
        };
        let l4_act = DpAction::SetL4 { value: ports.0, mask: ports.1 };
        let acts = if order { [ip_act, l4_act] } else { [l4_act, ip_act] };

        let mut p = prepared(&f);
        prop_assert_eq!(p.meta().l3_ofs as usize, lay.l3);
        prop_assert_eq!(p.meta().l4_ofs as usize, lay.l4.unwrap());
        let mut want = f.clone();
        for a in &acts {
            actions::apply(&mut p, a);
            match a {
                DpAction::SetIpv4 { value, mask } => model_ipv4(&mut want, &lay, value, mask),
                DpAction::SetIpv6 { value, mask } => model_ipv6(&mut want, &lay, value, mask),
                DpAction::SetL4 { value, mask } => model_l4(&mut want, &lay, value, mask),
                _ => unreachable!(),
            }
            assert_frame(p.data(), &want);
        }
        assert_checksums(p.data(), &lay);
        // A UDP packet without a checksum still has none.
        if matches!(s.proto, Proto::UdpNoCsum) {
            prop_assert_eq!(be16_at(p.data(), lay.l4.unwrap() + 6), 0);
        }
    }

    /// Masked Ethernet and ARP rewrites change exactly the masked bits.
    #[test]
    fn masked_eth_and_arp_rewrites_change_only_masked_bits(
        ev in any::<([u8; 6], [u8; 6])>(),
        em in (prop::array::uniform6(mask_byte()), prop::array::uniform6(mask_byte())),
        av in any::<(u16, [u8; 6], [u8; 4], [u8; 6], [u8; 4])>(),
        am in (any::<u16>(), prop::array::uniform6(mask_byte()), prop::array::uniform4(mask_byte()),
               prop::array::uniform6(mask_byte()), prop::array::uniform4(mask_byte())),
        op in 1u16..5,
    ) {
        let f = arp_frame(op);
        let e = (EthSet { src: ev.0, dst: ev.1 }, EthSet { src: em.0, dst: em.1 });
        let a = (
            ArpSet { op: av.0, sha: av.1, spa: av.2, tha: av.3, tpa: av.4 },
            ArpSet { op: am.0, sha: am.1, spa: am.2, tha: am.3, tpa: am.4 },
        );
        let out = apply_all(&f, &[DpAction::SetEth { value: e.0, mask: e.1 }, DpAction::SetArp { value: a.0, mask: a.1 }]);
        let mut want = f.clone();
        model_eth(&mut want, &e.0, &e.1);
        model_arp(&mut want, &a.0, &a.1);
        assert_frame(&out, &want);
    }
}
