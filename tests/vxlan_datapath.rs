//! VXLAN through the whole datapath, in process: two switches on memory
//! ports ("hosts" A and B), each an overlay bridge `br-int` (container port
//! `c1`, VXLAN port `vx`) over an underlay bridge `br-phy` (internal port
//! `br-phy` holding the VTEP address, uplink `p0`). The uplinks are wired
//! to each other; the test plays the hosts' kernels behind the internal
//! ports (answering ARP). Checked: neighbour resolution (ARP request out,
//! reply snooped), encapsulation byte for byte against etherparse's
//! builder (IPv4 and IPv6 underlays), decapsulation and recirculation,
//! the UDP source port entropy, oversize drops, and bad VXLAN input
//! counted and dropped.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use etherparse::PacketBuilder;
use fvs_datapath::netdev::Netdev;
use fvs_datapath::packet::{Batch, PacketPool};
use fvs_datapath::pmd::{Pmd, PmdConfig, PmdCounters};
use fvs_ofproto::flow_mod::FlowModCommand;
use fvs_ofproto::syntax::parse_flow_mod;
use fvs_ofproto::tunnel::{IpDev, TunnelConfig};
use fvs_ofproto::{Ofproto, PortConfig};
use fvs_ports::memory::MemoryPort;

const C1: u32 = 1;
const P0: u32 = 2;
const LOCAL: u32 = 3;
const INT_LOCAL: u32 = 4;
const VX: u32 = 10;
const VPORT: u32 = 20;
const VNI: u32 = 5001;

struct Host {
    of: Arc<Ofproto>,
    pmd: Pmd<Ofproto>,
    pool: PacketPool,
    c1: Arc<MemoryPort>,
    p0: Arc<MemoryPort>,
    local: Arc<MemoryPort>,
    mac: [u8; 6],
    vtep: IpAddr,
}

fn flow(of: &Ofproto, br: &str, f: &str) {
    of.flow_mod(br, &parse_flow_mod(f, FlowModCommand::Add, None).unwrap())
        .unwrap();
}

impl Host {
    fn new(n: u8, vtep: &str, plen: u8, remote: &str, extra_opts: &[(&str, &str)]) -> Host {
        let of = Ofproto::new();
        let mut pmd = Pmd::new(0, of.clone(), PmdConfig::default());
        let mut ports = Vec::new();
        for br in ["br-int", "br-phy"] {
            of.add_bridge(br).unwrap();
            flow(&of, br, "actions=NORMAL");
        }
        for (br, name, odp) in [
            ("br-int", "c1", C1),
            ("br-phy", "p0", P0),
            ("br-phy", "br-phy", LOCAL),
            ("br-int", "br-int", INT_LOCAL),
        ] {
            let p = MemoryPort::new(name, 1);
            of.add_port(
                br,
                PortConfig {
                    name: name.into(),
                    odp_port: odp,
                    ..Default::default()
                },
            )
            .unwrap();
            pmd.add_rxq(odp, p.open_rxq(0).unwrap());
            pmd.add_tx(odp, p.open_txq(0).unwrap());
            ports.push(p);
        }
        let mut opts: Vec<(String, String)> = vec![
            ("remote_ip".into(), remote.into()),
            ("key".into(), VNI.to_string()),
        ];
        opts.extend(
            extra_opts
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string())),
        );
        let cfg = TunnelConfig::parse("vx", &opts.into_iter().collect()).unwrap();
        of.add_tunnel_port(
            "br-int",
            PortConfig {
                name: "vx".into(),
                odp_port: VX,
                ..Default::default()
            },
            cfg,
            None,
            || VPORT,
        )
        .unwrap();
        let mac = [0x0a, 0, 0, 0, 0, n];
        let vtep: IpAddr = vtep.parse().unwrap();
        of.tunnels.set_device(IpDev {
            name: "br-phy".into(),
            mac,
            mtu: 1500,
            addrs: vec![(vtep, plen)],
        });
        of.tunnels_changed();
        pmd.check_version();
        Host {
            of,
            pmd,
            pool: PacketPool::new(512, false).unwrap(),
            c1: ports[0].clone(),
            p0: ports[1].clone(),
            local: ports[2].clone(),
            mac,
            vtep,
        }
    }

    fn counters(&self) -> PmdCounters {
        self.pmd.counters()
    }

    /// Sends the requests translation queued (ARP/ND), as the daemon's helper does.
    fn send_requests(&mut self) -> usize {
        let reqs = self.of.tunnels.wait_requests(Duration::ZERO);
        let n = reqs.len();
        for r in reqs {
            let p = self.pool.packet_from(&r.frame).unwrap();
            self.pmd.inject(r.odp_port, vec![p]);
        }
        n
    }

    /// Plays the kernel behind the internal port: answers ARP requests for
    /// the VTEP address (IPv4) and neighbour solicitations (IPv6).
    fn kernel(&mut self) {
        for p in self.local.take_sent() {
            let d = p.data();
            let reply = match (self.vtep, d.get(12..14)) {
                (IpAddr::V4(v), Some([0x08, 0x06]))
                    if d.len() >= 42 && d[21] == 1 && d[38..42] == v.octets() =>
                {
                    let mut r = Vec::new();
                    r.extend_from_slice(&d[6..12]);
                    r.extend_from_slice(&self.mac);
                    r.extend_from_slice(&[0x08, 0x06, 0, 1, 8, 0, 6, 4, 0, 2]);
                    r.extend_from_slice(&self.mac);
                    r.extend_from_slice(&v.octets());
                    r.extend_from_slice(&d[22..32]);
                    r
                }
                _ => continue,
            };
            self.local.inject(0, self.pool.packet_from(&reply).unwrap());
        }
    }

    fn send(&self, frame: &[u8]) {
        self.c1.inject(0, self.pool.packet_from(frame).unwrap());
    }
}

/// Runs both hosts until nothing moves, carrying p0 ↔ p0; returns the
/// frames that crossed A→B on the wire.
fn run(a: &mut Host, b: &mut Host) -> Vec<Vec<u8>> {
    let mut wire = Vec::new();
    for _ in 0..50 {
        a.pmd.check_version();
        b.pmd.check_version();
        a.pmd.poll_once();
        b.pmd.poll_once();
        a.kernel();
        b.kernel();
        let mut moved = false;
        for p in a.p0.take_sent() {
            wire.push(p.data().to_vec());
            b.p0.inject(0, b.pool.packet_from(p.data()).unwrap());
            moved = true;
        }
        for p in b.p0.take_sent() {
            a.p0.inject(0, a.pool.packet_from(p.data()).unwrap());
            moved = true;
        }
        if !moved
            && a.c1.pending() == 0
            && b.c1.pending() == 0
            && a.local.pending() == 0
            && b.local.pending() == 0
        {
            a.pmd.poll_once();
            b.pmd.poll_once();
            if a.p0.pending() == 0 && b.p0.pending() == 0 {
                break;
            }
        }
    }
    wire
}

fn inner_frame(n: u8) -> Vec<u8> {
    let b = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
        .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
        .udp(1000 + u16::from(n), 2000);
    let payload = [n; 40];
    let mut v = Vec::new();
    b.write(&mut v, &payload).unwrap();
    v
}

fn pair_v4() -> (Host, Host) {
    let a = Host::new(1, "172.31.1.1", 24, "172.31.1.2", &[]);
    let b = Host::new(2, "172.31.1.2", 24, "172.31.1.1", &[]);
    (a, b)
}

/// The frame etherparse builds for `inner` in VXLAN from `a` to `b` with
/// UDP source port `sport` (IPv4 UDP checksum left out, as fvs sends it).
fn expected_outer(a: &Host, b: &Host, sport: u16, inner: &[u8]) -> Vec<u8> {
    let mut vx = vec![0x08, 0, 0, 0];
    vx.extend_from_slice(&(VNI << 8).to_be_bytes());
    vx.extend_from_slice(inner);
    let eth = PacketBuilder::ethernet2(a.mac, b.mac);
    let mut v = Vec::new();
    match (a.vtep, b.vtep) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let mut ip = etherparse::Ipv4Header::new(
                0,
                64,
                etherparse::IpNumber::UDP,
                s.octets(),
                d.octets(),
            )
            .unwrap();
            ip.dont_fragment = true;
            eth.ip(etherparse::IpHeaders::Ipv4(ip, Default::default()))
                .udp(sport, 4789)
                .write(&mut v, &vx)
                .unwrap();
            // IPv4 VXLAN goes without a UDP checksum (as OVS and Linux send it).
            v[40] = 0;
            v[41] = 0;
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            eth.ipv6(s.octets(), d.octets(), 64)
                .udp(sport, 4789)
                .write(&mut v, &vx)
                .unwrap();
        }
        _ => unreachable!(),
    }
    v
}

fn udp_sport(frame: &[u8], ipv6: bool) -> u16 {
    let l4 = if ipv6 { 54 } else { 34 };
    u16::from_be_bytes([frame[l4], frame[l4 + 1]])
}

#[test]
fn arp_then_encap_decap_both_ways() {
    let (mut a, mut b) = pair_v4();
    // First packet: A does not know B's VTEP MAC. It asks, drops the packet.
    a.send(&inner_frame(1));
    run(&mut a, &mut b);
    assert_eq!(a.send_requests(), 1);
    let wire = run(&mut a, &mut b);
    let arp = wire
        .iter()
        .find(|f| f[12..14] == [0x08, 0x06])
        .expect("ARP request on the wire");
    assert_eq!(&arp[0..6], &[0xff; 6]);
    assert_eq!(&arp[38..42], &[172, 31, 1, 2]);
    // B's kernel answered; A snooped the reply on its way to A's kernel.
    assert_eq!(
        a.of.tunnels.neigh_lookup("br-phy", b.vtep),
        Some(b.mac),
        "{}",
        a.of.tunnels.format_neighbours()
    );
    assert!(b.c1.take_sent().is_empty(), "the first packet was dropped");
    // The retry makes the dropped decision stale; the next packet goes.
    a.of.retry_tunnel_neighbours();
    let inner = inner_frame(2);
    a.send(&inner);
    let wire = run(&mut a, &mut b);
    let vxlan: Vec<&Vec<u8>> = wire
        .iter()
        .filter(|f| f.len() == inner.len() + 50)
        .collect();
    assert_eq!(vxlan.len(), 1, "one encapsulated frame");
    let sport = udp_sport(vxlan[0], false);
    assert!((32768..61000).contains(&sport));
    assert_eq!(*vxlan[0], expected_outer(&a, &b, sport, &inner));
    // B decapsulated it (a second datapath pass) and delivered it as sent.
    let got: Vec<Vec<u8>> = b.c1.take_sent().iter().map(|p| p.data().to_vec()).collect();
    assert_eq!(got, vec![inner.clone()]);
    assert_eq!(b.counters().recirculations, 1);
    // B learned A's VTEP MAC from the tunnel packet itself: it answers
    // without asking.
    assert_eq!(b.of.tunnels.neigh_lookup("br-phy", a.vtep), Some(a.mac));
    let back = {
        let mut f = inner_frame(3);
        f[0..6].copy_from_slice(&[2, 0, 0, 0, 0, 1]);
        f[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 2]);
        f
    };
    b.send(&back);
    run(&mut a, &mut b);
    assert_eq!(b.send_requests(), 0);
    let got: Vec<Vec<u8>> = a.c1.take_sent().iter().map(|p| p.data().to_vec()).collect();
    assert_eq!(got, vec![back]);
    // The tunnel ports' counters (credited from the megaflows).
    a.pmd.sync_stats();
    let stats = a.of.tunnels.ports()[0].stats.clone();
    let get = |x: &std::sync::atomic::AtomicU64| x.load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!((get(&stats.tx_packets), get(&stats.tx_dropped)), (1, 1));
    assert_eq!(get(&stats.rx_packets), 1);
}

#[test]
fn flows_spread_over_udp_source_ports() {
    // Also with the EMC off (or bypassed), whose lookups made the hash
    // the source port comes from.
    for emc_insert_inv_prob in [PmdConfig::default().emc_insert_inv_prob, 0] {
        let (mut a, mut b) = pair_v4();
        a.pmd.configure(PmdConfig {
            emc_insert_inv_prob,
            ..PmdConfig::default()
        });
        a.of.tunnels.neigh_set("br-phy", b.vtep, b.mac);
        a.of.tunnels_changed();
        let mut ports = std::collections::BTreeSet::new();
        for n in 0..32u8 {
            a.send(&inner_frame(n));
        }
        for f in run(&mut a, &mut b) {
            if f[12..14] == [0x08, 0x00] && f[23] == 17 {
                ports.insert(udp_sport(&f, false));
            }
        }
        assert!(
            ports.len() >= 24,
            "emc-insert-inv-prob={emc_insert_inv_prob}: {} distinct source ports",
            ports.len()
        );
        assert_eq!(b.c1.take_sent().len(), 32);
    }
}

#[test]
fn ipv6_underlay_with_udp_checksums() {
    let mut a = Host::new(1, "2001:db8::1", 64, "2001:db8::2", &[]);
    let mut b = Host::new(2, "2001:db8::2", 64, "2001:db8::1", &[]);
    a.of.tunnels.neigh_set("br-phy", b.vtep, b.mac);
    a.of.tunnels_changed();
    let inner = inner_frame(7);
    a.send(&inner);
    let wire = run(&mut a, &mut b);
    let f = wire
        .iter()
        .find(|f| f[12..14] == [0x86, 0xdd])
        .expect("IPv6 frame");
    let sport = udp_sport(f, true);
    assert_eq!(
        *f,
        expected_outer(&a, &b, sport, &inner),
        "checksum and all"
    );
    let got: Vec<Vec<u8>> = b.c1.take_sent().iter().map(|p| p.data().to_vec()).collect();
    assert_eq!(got, vec![inner]);
}

#[test]
fn oversize_after_encapsulation_is_dropped_and_counted() {
    let (mut a, mut b) = pair_v4();
    a.of.tunnels.neigh_set("br-phy", b.vtep, b.mac);
    a.of.tunnels_changed();
    let frame = |payload: usize| {
        let mut v = Vec::new();
        PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
            .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .udp(1, 2)
            .write(&mut v, &vec![0u8; payload])
            .unwrap();
        v
    };
    // 1450-byte inner IP datagram: 1500 outside. One more byte: too big.
    a.send(&frame(1450 - 28));
    a.send(&frame(1451 - 28));
    run(&mut a, &mut b);
    assert_eq!(a.counters().tnl_push_errors, 1);
    assert_eq!(b.c1.take_sent().len(), 1);
}

#[test]
fn bad_vxlan_input_is_counted_and_dropped() {
    let (mut a, mut b) = pair_v4();
    a.of.tunnels.neigh_set("br-phy", b.vtep, b.mac);
    a.of.tunnels_changed();
    let inner = inner_frame(9);
    a.send(&inner);
    let wire = run(&mut a, &mut b);
    let good = wire
        .iter()
        .find(|f| f.len() == inner.len() + 50)
        .unwrap()
        .clone();
    assert_eq!(b.c1.take_sent().len(), 1);
    let fix_ip_csum = |f: &mut Vec<u8>| {
        f[24] = 0;
        f[25] = 0;
        let c = fvs_datapath::csum::checksum(&f[14..34]);
        f[24..26].copy_from_slice(&c.to_be_bytes());
    };
    let mut bad = Vec::new();
    // Bad VXLAN flags.
    let mut f = good.clone();
    f[42] = 0x0c;
    bad.push(f);
    // Reserved VNI byte set.
    let mut f = good.clone();
    f[49] = 1;
    bad.push(f);
    // UDP length beyond the datagram.
    let mut f = good.clone();
    f[38..40].copy_from_slice(&2000u16.to_be_bytes());
    bad.push(f);
    // UDP length too short for VXLAN.
    let mut f = good.clone();
    f[38..40].copy_from_slice(&12u16.to_be_bytes());
    bad.push(f);
    // Bad IP header checksum.
    let mut f = good.clone();
    f[24] ^= 0xff;
    bad.push(f);
    // A bad UDP checksum.
    let mut f = good.clone();
    f[40..42].copy_from_slice(&[0x12, 0x34]);
    bad.push(f);
    // Truncated inner frame (UDP and IP lengths cut to 8 + 8 + 10).
    let mut f = good[..14 + 20 + 26].to_vec();
    f[16..18].copy_from_slice(&46u16.to_be_bytes());
    f[38..40].copy_from_slice(&26u16.to_be_bytes());
    fix_ip_csum(&mut f);
    bad.push(f);
    let n = bad.len() as u64;
    for f in bad {
        b.p0.inject(0, b.pool.packet_from(&f).unwrap());
    }
    b.pmd.poll_once();
    assert_eq!(b.counters().tnl_pop_errors, n);
    assert!(b.c1.take_sent().is_empty());
    // An outer fragment is not for the tunnel (as in OVS): it goes on to
    // the internal port like any other packet, and counts no error.
    let mut f = good.clone();
    f[20] = 0x20;
    fix_ip_csum(&mut f);
    b.p0.inject(0, b.pool.packet_from(&f).unwrap());
    b.pmd.poll_once();
    assert_eq!(b.counters().tnl_pop_errors, n);
    assert!(b.c1.take_sent().is_empty());
    assert_eq!(b.local.take_sent().len(), 1);
    // The datapath still works.
    b.p0.inject(0, b.pool.packet_from(&good).unwrap());
    b.pmd.poll_once();
    assert_eq!(b.c1.take_sent().len(), 1);
}

#[test]
fn truncated_outer_headers_never_panic() {
    let (mut a, mut b) = pair_v4();
    a.of.tunnels.neigh_set("br-phy", b.vtep, b.mac);
    a.of.tunnels_changed();
    let inner = inner_frame(1);
    a.send(&inner);
    let good = run(&mut a, &mut b)
        .into_iter()
        .find(|f| f.len() == inner.len() + 50)
        .unwrap();
    // Every prefix, and every single-byte corruption, goes through the
    // full datapath (extraction, the pop decision, the pop) without panic.
    let mut batch = Batch::new();
    let drain = |h: &Host| {
        for p in [&h.c1, &h.p0, &h.local] {
            let _ = p.take_sent();
        }
    };
    for len in 0..good.len() {
        batch
            .push(b.pool.packet_from(&good[..len]).unwrap())
            .unwrap();
        if batch.is_full() {
            b.p0.inject_batch(0, &mut batch);
            b.pmd.poll_once();
            drain(&b);
        }
    }
    b.p0.inject_batch(0, &mut batch);
    b.pmd.poll_once();
    drain(&b);
    for i in 14..good.len() {
        for x in [0x00u8, 0xff, 0x80] {
            let mut f = good.clone();
            f[i] ^= x | 1;
            b.p0.inject(0, b.pool.packet_from(&f).unwrap());
        }
        b.pmd.poll_once();
        drain(&b);
    }
    assert!(b.counters().tnl_pop_errors > 0);
}
