//! Native tunnelling in translation, seen through `ofproto/trace`: the
//! `clone(tnl_push(…),…)` and `tnl_pop(…)` datapath actions byte for byte
//! as OVS 3.1's own tunnel tests print them (tests/tunnel-push-pop.at, same
//! addresses and port numbers), the trace notes of routing failures and
//! neighbour misses, ARP snooping, split horizon and the tunnel receive
//! lookup.

use std::collections::BTreeMap;
use std::net::IpAddr;

use fvs_datapath::key::{ofs, FlowKey, TUN_FLAG_PRESENT};
use fvs_datapath::packet::PacketPool;
use fvs_datapath::upcall::Upcall;
use fvs_ofproto::flow_mod::FlowModCommand;
use fvs_ofproto::syntax::parse_flow_mod;
use fvs_ofproto::trace;
use fvs_ofproto::tunnel::{IpDev, TunnelConfig};
use fvs_ofproto::{Ofproto, PortConfig};

const BR0_MAC: [u8; 6] = [0xaa, 0x55, 0xaa, 0x55, 0x00, 0x00];

fn flow(of: &Ofproto, br: &str, f: &str) {
    let fm = parse_flow_mod(f, FlowModCommand::Add, None).unwrap();
    of.flow_mod(br, &fm).unwrap();
}

fn port(of: &Ofproto, br: &str, name: &str, odp: u32, ofport: Option<u16>) {
    of.add_port(
        br,
        PortConfig {
            name: name.into(),
            odp_port: odp,
            ofport_request: ofport,
            ..Default::default()
        },
    )
    .unwrap();
}

fn tunnel(
    of: &Ofproto,
    name: &str,
    odp: u32,
    ofport: u16,
    opts: &[(&str, &str)],
    group: Option<&str>,
) {
    let opts: BTreeMap<String, String> = opts
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let cfg = TunnelConfig::parse(name, &opts).unwrap();
    let (p, vport) = of
        .add_tunnel_port(
            "int-br",
            PortConfig {
                name: name.into(),
                odp_port: odp,
                ofport_request: Some(ofport),
                ..Default::default()
            },
            cfg,
            group.map(str::to_string),
            || 4789,
        )
        .unwrap();
    assert_eq!((p, vport), (ofport, 4789));
}

/// OVS's test setup: br0 (internal port `br0` with 1.1.2.88/24 and MAC
/// aa:55:aa:55:00:00, datapath port 100; `p0` datapath port 1) under
/// int-br's VXLAN ports t2 (remote 1.1.2.92, key 123) and t3 (remote
/// 1.1.2.93, out_key=flow, csum=true).
fn setup() -> std::sync::Arc<Ofproto> {
    let of = Ofproto::new();
    of.add_bridge("br0").unwrap();
    of.add_bridge("int-br").unwrap();
    port(&of, "br0", "br0", 100, None);
    port(&of, "br0", "p0", 1, Some(1));
    port(&of, "int-br", "int-br", 2, None);
    tunnel(
        &of,
        "t2",
        10,
        2,
        &[("remote_ip", "1.1.2.92"), ("key", "123")],
        None,
    );
    tunnel(
        &of,
        "t3",
        11,
        4,
        &[
            ("remote_ip", "1.1.2.93"),
            ("out_key", "flow"),
            ("csum", "true"),
        ],
        None,
    );
    of.tunnels.set_device(IpDev {
        name: "br0".into(),
        mac: BR0_MAC,
        mtu: 1500,
        addrs: vec![("1.1.2.88".parse().unwrap(), 24)],
    });
    flow(&of, "br0", "actions=normal");
    of
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

const INNER: &str = "in_port=LOCAL,ip,dl_src=f8:bc:12:44:34:b6,dl_dst=aa:55:aa:55:00:00,nw_src=1.1.3.88,nw_dst=1.1.3.112,nw_proto=47,nw_ttl=64";

fn datapath_actions(t: &str) -> &str {
    t.lines()
        .last()
        .and_then(|l| l.strip_prefix("Datapath actions: "))
        .unwrap_or_else(|| panic!("no datapath actions in\n{t}"))
}

#[test]
fn vxlan_push_as_ovs_prints_it() {
    let of = setup();
    of.tunnels
        .neigh_set("br0", ip("1.1.2.92"), [0xf8, 0xbc, 0x12, 0x44, 0x34, 0xb6]);
    of.tunnels
        .neigh_set("br0", ip("1.1.2.93"), [0xf8, 0xbc, 0x12, 0x44, 0x34, 0xb7]);
    flow(&of, "int-br", "actions=2");
    let t = trace::trace(&of, "int-br", INNER).unwrap();
    assert_eq!(
        datapath_actions(&t),
        "clone(tnl_push(tnl_port(4789),header(size=50,type=4,eth(dst=f8:bc:12:44:34:b6,src=aa:55:aa:55:00:00,dl_type=0x0800),ipv4(src=1.1.2.88,dst=1.1.2.92,proto=17,tos=0,ttl=64,frag=0x4000),udp(src=0,dst=4789,csum=0x0),vxlan(flags=0x8000000,vni=0x7b)),out_port(100)),1)"
    );
    // The trace: the tunnel's notes, then the underlay bridge (a node of
    // the tunnel's table, last in its list, so at the left margin as OVS
    // prints it).
    for line in [
        "     -> output to native tunnel",
        "     -> tunneling to 1.1.2.92 via br0",
        "     -> tunneling from aa:55:aa:55:00:00 1.1.2.88 to f8:bc:12:44:34:b6 1.1.2.92",
        "bridge(\"br0\")",
        "-------------",
        "     -> no learned MAC for destination, flooding",
    ] {
        assert!(t.lines().any(|l| l == line), "no {line:?} in\n{t}");
    }
    assert!(t.contains("\nFinal flow: unchanged\n"), "{t}");

    // set_tunnel with out_key=flow, and a checksummed tunnel.
    flow(&of, "int-br", "actions=set_tunnel:124,4");
    let t = trace::trace(&of, "int-br", INNER).unwrap();
    assert_eq!(
        datapath_actions(&t),
        "clone(tnl_push(tnl_port(4789),header(size=50,type=4,eth(dst=f8:bc:12:44:34:b7,src=aa:55:aa:55:00:00,dl_type=0x0800),ipv4(src=1.1.2.88,dst=1.1.2.93,proto=17,tos=0,ttl=64,frag=0x4000),udp(src=0,dst=4789,csum=0xffff),vxlan(flags=0x8000000,vni=0x7c)),out_port(100)),1)"
    );
}

#[test]
fn flow_based_tunnel_by_set_field() {
    let of = setup();
    tunnel(
        &of,
        "tf",
        12,
        5,
        &[("remote_ip", "flow"), ("key", "flow")],
        None,
    );
    of.tunnels
        .neigh_set("br0", ip("1.1.2.92"), [0xf8, 0xbc, 0x12, 0x44, 0x34, 0xb6]);
    of.tunnels
        .neigh_set("br0", ip("1.1.2.94"), [0xf8, 0xbc, 0x12, 0x44, 0x34, 0xb8]);
    flow(
        &of,
        "int-br",
        "ip,nw_dst=1.1.3.112,actions=set_field:1.1.2.94->tun_dst,set_field:5000->tun_id,5",
    );
    flow(
        &of,
        "int-br",
        "ip,nw_dst=1.1.3.113,actions=set_field:1.1.2.92->tun_dst,set_field:6000->tun_id,5",
    );
    let t = trace::trace(&of, "int-br", INNER).unwrap();
    assert!(
        datapath_actions(&t).contains("ipv4(src=1.1.2.88,dst=1.1.2.94,proto=17,tos=0,ttl=64,frag=0x4000),udp(src=0,dst=4789,csum=0x0),vxlan(flags=0x8000000,vni=0x1388))"),
        "{t}"
    );
    let t = trace::trace(&of, "int-br", &INNER.replace("1.1.3.112", "1.1.3.113")).unwrap();
    assert!(
        datapath_actions(&t).contains("dst=1.1.2.92,proto=17")
            && datapath_actions(&t).contains("vni=0x1770"),
        "{t}"
    );
    // No destination in the flow: nowhere to go.
    flow(&of, "int-br", "priority=1,actions=5");
    let t = trace::trace(&of, "int-br", &INNER.replace("1.1.3.112", "9.9.9.9")).unwrap();
    assert!(t.contains(" >> native tunnel routing failed"), "{t}");
    assert_eq!(datapath_actions(&t), "drop");
}

#[test]
fn vxlan_pop_as_ovs_prints_it() {
    let of = setup();
    let t = trace::trace(
        &of,
        "br0",
        "in_port=p0,dl_src=f8:bc:12:44:34:b6,dl_dst=aa:55:aa:55:00:00,udp,nw_src=1.1.2.92,nw_dst=1.1.2.88,nw_ttl=64,udp_src=51283,udp_dst=4789",
    )
    .unwrap();
    assert_eq!(datapath_actions(&t), "tnl_pop(4789)");
    // Not for us (another address, another port, another MAC): forwarded.
    for other in [
        "nw_dst=1.1.2.89,udp_dst=4789,dl_dst=aa:55:aa:55:00:00",
        "nw_dst=1.1.2.88,udp_dst=4790,dl_dst=aa:55:aa:55:00:00",
        "nw_dst=1.1.2.88,udp_dst=4789,dl_dst=aa:55:aa:55:00:01",
    ] {
        let f = format!("in_port=p0,dl_src=f8:bc:12:44:34:b6,udp,nw_src=1.1.2.92,{other}");
        let t = trace::trace(&of, "br0", &f).unwrap();
        assert_eq!(datapath_actions(&t), "100", "{other}\n{t}");
    }
}

#[test]
fn unreachable_next_hop_says_why_and_counts_drops() {
    let of = setup();
    flow(&of, "int-br", "actions=2");
    // The neighbour is not known: an ARP request is due, the packet dropped.
    let t = trace::trace(&of, "int-br", INNER).unwrap();
    assert!(
        t.contains("     -> neighbor cache miss for 1.1.2.92 on bridge br0, sending ARP request\n"),
        "{t}"
    );
    assert_eq!(datapath_actions(&t), "drop");
    // No route at all.
    of.tunnels.set_devices(Vec::new());
    let t = trace::trace(&of, "int-br", INNER).unwrap();
    assert!(t.contains("     >> native tunnel routing failed\n"), "{t}");
    assert_eq!(datapath_actions(&t), "drop");
}

#[test]
fn neighbour_miss_sends_a_request_and_snooping_resolves_it() {
    let of = setup();
    flow(&of, "int-br", "actions=2");
    let pool = PacketPool::new(16, false).unwrap();
    // A real upcall (not a trace) asks for the neighbour.
    let mut key = FlowKey::ZERO;
    key.set_in_port(2);
    key.set_be16(ofs::DL_TYPE, 0x0800);
    let pkt = pool.packet_from(&[0u8; 60]).unwrap();
    let tr = of.translate(&key, &pkt).unwrap();
    assert!(tr.actions.is_empty());
    assert!(tr.deps.tnl.neigh_miss);
    let reqs = of.tunnels.wait_requests(std::time::Duration::ZERO);
    assert_eq!(reqs.len(), 1);
    assert_eq!((reqs[0].bridge.as_str(), reqs[0].odp_port), ("br0", 100));
    let hex: String = reqs[0].frame.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(
        hex,
        "ffffffffffffaa55aa55000008060001080006040001aa55aa550000010102580000000000000101025c"
    );
    // The reply, on its way to br0's internal port, is snooped.
    let mut reply = FlowKey::ZERO;
    reply.set_in_port(1);
    reply.set_be16(ofs::DL_TYPE, 0x0806);
    reply.set_bytes(ofs::DL_DST, &BR0_MAC);
    reply.set_bytes(ofs::DL_SRC, &[0xf8, 0xbc, 0x12, 0x44, 0x34, 0xb6]);
    reply.b[ofs::NW_PROTO] = 2;
    reply.set_bytes(ofs::NW_SRC, &[1, 1, 2, 92]);
    reply.set_bytes(ofs::NW_DST, &[1, 1, 2, 88]);
    reply.set_bytes(ofs::ARP_SHA, &[0xf8, 0xbc, 0x12, 0x44, 0x34, 0xb6]);
    reply.set_bytes(ofs::ARP_THA, &BR0_MAC);
    let v = of.version();
    of.translate(&reply, &pkt).unwrap();
    assert!(of.version() > v, "the snoop is a change of tunnel state");
    assert_eq!(
        of.tunnels.neigh_lookup("br0", ip("1.1.2.92")),
        Some([0xf8, 0xbc, 0x12, 0x44, 0x34, 0xb6])
    );
    let show = of.tunnels.format_neighbours();
    assert!(
        show.contains("1.1.2.92                                      f8:bc:12:44:34:b6   br0\n"),
        "{show}"
    );
    // A reply to some other address teaches nothing.
    reply.set_bytes(ofs::NW_SRC, &[1, 1, 2, 95]);
    reply.set_bytes(ofs::NW_DST, &[1, 1, 2, 90]);
    of.translate(&reply, &pkt).unwrap();
    assert_eq!(of.tunnels.neigh_lookup("br0", ip("1.1.2.95")), None);
    // A gratuitous ARP from the subnet does.
    reply.b[ofs::NW_PROTO] = 1;
    reply.set_bytes(ofs::NW_DST, &[1, 1, 2, 95]);
    reply.set_bytes(ofs::ARP_SHA, &[2, 0, 0, 0, 0, 0x95]);
    of.translate(&reply, &pkt).unwrap();
    assert_eq!(
        of.tunnels.neigh_lookup("br0", ip("1.1.2.95")),
        Some([2, 0, 0, 0, 0, 0x95])
    );
    // And the tunnel now encapsulates.
    let tr = of.translate(&key, &pkt).unwrap();
    assert_eq!(tr.actions.len(), 1, "{:?}", tr.actions);
}

#[test]
fn decapsulated_packets_find_their_port() {
    let of = setup();
    flow(&of, "int-br", "in_port=2,actions=LOCAL");
    flow(&of, "int-br", "in_port=4,actions=drop");
    let pool = PacketPool::new(4, false).unwrap();
    let pkt = pool.packet_from(&[0u8; 60]).unwrap();
    let mut key = FlowKey::ZERO;
    key.set_in_port(4789);
    key.set_be16(ofs::DL_TYPE, 0x0800);
    key.set_be16(ofs::TUN_FLAGS, TUN_FLAG_PRESENT | 0x4);
    key.set_bytes(ofs::TUN_ID, &123u64.to_be_bytes());
    key.set_bytes(ofs::TUN_SRC, &[1, 1, 2, 92]);
    key.set_bytes(ofs::TUN_DST, &[1, 1, 2, 88]);
    let tr = of.translate(&key, &pkt).unwrap();
    assert_eq!(format!("{:?}", tr.actions), "[Output(2)]");
    // The megaflow matches the tunnel: key, addresses, flags.
    assert_eq!(tr.mask.bytes(ofs::TUN_ID, 8), &[0xff; 8]);
    assert_eq!(tr.mask.bytes(ofs::TUN_SRC, 8), &[0xff; 8]);
    assert_ne!(tr.mask.be16_at(ofs::TUN_FLAGS) & 0x8007, 0);
    // From 1.1.2.93 with key 0: port t3 (out_key=flow, in_key 0).
    key.set_bytes(ofs::TUN_ID, &0u64.to_be_bytes());
    key.set_bytes(ofs::TUN_SRC, &[1, 1, 2, 93]);
    let tr = of.translate(&key, &pkt).unwrap();
    assert!(tr.actions.is_empty());
    assert!(tr.deps.tnl.rx.is_some());
    // From nobody we know: dropped, by a megaflow on the tunnel fields.
    key.set_bytes(ofs::TUN_SRC, &[9, 9, 9, 9]);
    let tr = of.translate(&key, &pkt).unwrap();
    assert!(tr.actions.is_empty() && tr.deps.tnl.rx.is_none());
    assert_eq!(tr.mask.bytes(ofs::TUN_SRC, 4), &[0xff; 4]);
    // Tunnel fields are match fields of the pipeline.
    let t = trace::trace(
        &of,
        "int-br",
        "in_port=2,tun_id=0x7b,tun_src=1.1.2.92,tun_dst=1.1.2.88,ip",
    )
    .unwrap();
    assert_eq!(datapath_actions(&t), "2");
    assert!(
        t.starts_with("Flow: ip,tun_id=0x7b,tun_src=1.1.2.92,tun_dst=1.1.2.88,"),
        "{t}"
    );
}

#[test]
fn split_horizon_keeps_a_mesh_loop_free() {
    let of = setup();
    tunnel(
        &of,
        "m1",
        20,
        10,
        &[("remote_ip", "1.1.2.92")],
        Some("overlay"),
    );
    tunnel(
        &of,
        "m2",
        21,
        11,
        &[("remote_ip", "1.1.2.93")],
        Some("overlay"),
    );
    port(&of, "int-br", "c1", 3, Some(3));
    flow(&of, "int-br", "actions=normal");
    of.tunnels
        .neigh_set("br0", ip("1.1.2.92"), [0xf8, 0xbc, 0x12, 0x44, 0x34, 0xb6]);
    of.tunnels
        .neigh_set("br0", ip("1.1.2.93"), [0xf8, 0xbc, 0x12, 0x44, 0x34, 0xb7]);
    let bcast =
        "dl_src=02:00:00:00:00:01,dl_dst=ff:ff:ff:ff:ff:ff,ip,nw_src=10.0.0.1,nw_dst=10.0.0.2";
    // From a local port: flooded to both mesh tunnels (and t2, t3).
    let t = trace::trace(&of, "int-br", &format!("in_port=c1,{bcast}")).unwrap();
    assert_eq!(datapath_actions(&t).matches("tnl_push").count(), 4, "{t}");
    // From one mesh tunnel: to the local port and the ungrouped tunnels,
    // never to the other mesh tunnel.
    let t = trace::trace(&of, "int-br", &format!("in_port=m1,{bcast}")).unwrap();
    let a = datapath_actions(&t);
    assert!(
        a.contains(",3") || a.starts_with("3,") || a.contains("),3"),
        "{t}"
    );
    assert!(!a.contains("dst=1.1.2.93,proto=17,tos=0,ttl=64,frag=0x4000),udp(src=0,dst=4789,csum=0x0),vxlan(flags=0x8000000,vni=0x0)"), "{t}");
}
