//! Benchmark scenarios shared by the criterion benches and the callgrind
//! instruction counter: a bridge on memory ports whose PMD is driven directly.
#![allow(dead_code)]

use std::sync::Arc;

use fvs_datapath::netdev::Netdev;
use fvs_datapath::packet::{Batch, PacketPool, BATCH_SIZE};
use fvs_datapath::pmd::{Pmd, PmdConfig};
use fvs_ofproto::flow_mod::FlowModCommand;
use fvs_ofproto::syntax::parse_flow_mod;
use fvs_ofproto::{Ofproto, PortConfig};
use fvs_ports::memory::MemoryPort;

pub struct Bench {
    pub of: Arc<Ofproto>,
    pub pmd: Pmd<Ofproto>,
    pub input: Arc<MemoryPort>,
    pub output: Arc<MemoryPort>,
    pub pool: PacketPool,
    pub frames: Vec<Vec<u8>>,
    next: usize,
}

impl Bench {
    /// Ports 1 (input) and 2 (output) on bridge br0, the given flows, and
    /// `frames` to cycle through.
    pub fn new(config: PmdConfig, flows: &[String], frames: Vec<Vec<u8>>) -> Bench {
        let of = Ofproto::new();
        of.add_bridge("br0").unwrap();
        let mut pmd = Pmd::new(0, of.clone(), config);
        let input = MemoryPort::new("p1", 1);
        let output = MemoryPort::new("p2", 1);
        for (n, p) in [(1u32, &input), (2, &output)] {
            of.add_port(
                "br0",
                PortConfig {
                    name: p.name().into(),
                    odp_port: n,
                    ofport_request: Some(n as u16),
                    ..Default::default()
                },
            )
            .unwrap();
            pmd.add_rxq(n, p.open_rxq(0).unwrap());
            pmd.add_tx(n, p.open_txq(0).unwrap());
        }
        let fms: Vec<_> = flows
            .iter()
            .map(|f| parse_flow_mod(f, FlowModCommand::Add, None).unwrap())
            .collect();
        of.flow_mods("br0", &fms).unwrap();
        let pool = PacketPool::new(4 * BATCH_SIZE + frames.len().min(4096), false).unwrap();
        Bench {
            of,
            pmd,
            input,
            output,
            pool,
            frames,
            next: 0,
        }
    }

    /// Queues the next batch of frames on the input port.
    pub fn load_batch(&mut self) {
        let mut b = Batch::new();
        for _ in 0..BATCH_SIZE {
            let f = &self.frames[self.next];
            self.next = (self.next + 1) % self.frames.len();
            b.push(self.pool.packet_from(f).expect("pool")).unwrap();
        }
        self.input.inject_batch(0, &mut b);
    }

    /// Recycles what the output port sent into the input port, unchanged
    /// (the flows under test do not rewrite headers).
    pub fn recycle(&mut self) {
        let mut b = Batch::new();
        loop {
            self.output.take_sent_into(&mut b);
            if b.is_empty() {
                break;
            }
            self.input.inject_batch(0, &mut b);
        }
    }

    /// Drops whatever was sent.
    pub fn drain(&mut self) {
        drop(self.output.take_sent());
    }

    /// Runs `n` batches to fill the caches.
    pub fn warm_up(&mut self, n: usize) {
        for _ in 0..n {
            self.load_batch();
            self.pmd.poll_once();
            self.drain();
        }
    }
}

pub fn mac(n: u8) -> [u8; 6] {
    [0x02, 0, 0, 0, 0, n]
}

pub fn tcp4(sip: [u8; 4], dip: [u8; 4], sport: u16, dport: u16) -> Vec<u8> {
    let b = etherparse::PacketBuilder::ethernet2(mac(1), mac(2))
        .ipv4(sip, dip, 64)
        .tcp(sport, dport, 1, 1024);
    let mut v = Vec::new();
    b.write(&mut v, &[0u8; 6]).unwrap();
    v
}

pub fn udp6(sport: u16, dport: u16) -> Vec<u8> {
    let s = [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
    let d = [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];
    let b = etherparse::PacketBuilder::ethernet2(mac(1), mac(2))
        .ipv6(s, d, 64)
        .udp(sport, dport);
    let mut v = Vec::new();
    b.write(&mut v, &[0u8; 18]).unwrap();
    v
}

pub fn vlan_tcp4() -> Vec<u8> {
    let b = etherparse::PacketBuilder::ethernet2(mac(1), mac(2))
        .single_vlan(10.try_into().unwrap())
        .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
        .tcp(1000, 80, 1, 1024);
    let mut v = Vec::new();
    b.write(&mut v, &[0u8; 2]).unwrap();
    v
}

/// Port-to-port forwarding of one TCP flow: every packet after warm-up is an EMC hit.
pub fn emc_hit() -> Bench {
    let flows = vec![
        "in_port=1,actions=output:2".to_string(),
        "in_port=2,actions=output:1".to_string(),
    ];
    let mut b = Bench::new(
        PmdConfig {
            emc_insert_inv_prob: 1,
            // In_port rules would take the simple-match path; this measures the EMC.
            simple_match: false,
            ..Default::default()
        },
        &flows,
        vec![tcp4([10, 0, 0, 1], [10, 0, 0, 2], 1000, 80)],
    );
    b.warm_up(4);
    b
}

/// Megaflow hits spread evenly over `k` subtables (EMC off). Rule j
/// (priority 1000-j) matches nw_dst with a /(8+j) prefix whose last bit is
/// set; a packet for rule j fails the longer-priority rules on that bit, so
/// its megaflow's mask is the /(8+j) prefix: one subtable per rule.
pub fn megaflow_hit(k: u32) -> Bench {
    let mut flows = Vec::new();
    let mut addrs = Vec::new();
    for j in 1..=k {
        let len = 8 + j;
        let a = ((10u32 << 24) | (1 << (32 - len))).to_be_bytes();
        flows.push(format!(
            "priority={},ip,nw_dst={}.{}.{}.{}/{len},actions=output:2",
            1000 - j,
            a[0],
            a[1],
            a[2],
            a[3]
        ));
        addrs.push(a);
    }
    // Interleaved: consecutive packets belong to different megaflows.
    let frames: Vec<Vec<u8>> = (0..4u16)
        .flat_map(|f| {
            addrs
                .iter()
                .map(move |a| tcp4([10, 0, 0, 1], *a, 1000 + f, 80))
        })
        .collect();
    let mut b = Bench::new(
        PmdConfig {
            emc_insert_inv_prob: 0,
            ..Default::default()
        },
        &flows,
        frames,
    );
    b.warm_up(8);
    assert_eq!(
        b.pmd.n_subtables(),
        k as usize,
        "one megaflow subtable per rule"
    );
    b
}

/// `n` active flows, each with its own megaflow (rules matching nw_dst
/// exactly, as the side-by-side benchmark's scenarios b–d), packets to each
/// in turn, EMC on at OVS's default insertion rate: with more flows than the
/// EMC holds, most packets are megaflow hits whose bucket and flow are
/// cache misses.
pub fn many_flows(n: u32) -> Bench {
    let mut flows = Vec::new();
    let mut frames = Vec::new();
    for i in 0..n {
        let a = (0x0afd_0000u32 + i).to_be_bytes();
        flows.push(format!(
            "ip,in_port=1,nw_dst={}.{}.{}.{},actions=output:2",
            a[0], a[1], a[2], a[3]
        ));
        frames.push(tcp4([10, 254, 0, 1], a, 1024, 1024));
    }
    let config = PmdConfig {
        // Warm-up installs them all at once.
        upcall_rate: 0,
        ..Default::default()
    };
    let mut b = Bench::new(config, &flows, frames);
    b.warm_up(2 * (n as usize).div_ceil(BATCH_SIZE));
    assert_eq!(b.pmd.n_megaflows(), n as usize, "one megaflow per flow");
    b
}

/// Every packet a new flow: `n` rules matching nw_dst exactly, packets to
/// each in turn; the caller flushes megaflows between rounds.
pub fn upcall(n: u32) -> Bench {
    let mut flows = Vec::new();
    let mut frames = Vec::new();
    for i in 0..n {
        let a = (0x0a00_0000u32 + i).to_be_bytes();
        flows.push(format!(
            "ip,nw_dst={}.{}.{}.{},actions=output:2",
            a[0], a[1], a[2], a[3]
        ));
        frames.push(tcp4([10, 9, 0, 1], a, 1000, 80));
    }
    Bench::new(
        PmdConfig {
            emc_insert_inv_prob: 1,
            ..Default::default()
        },
        &flows,
        frames,
    )
}

/// Two vhost-user ports on br0 (1 and 2), each with the in-process test
/// frontend as its guest: guest 1 transmits, guest 2 receives, and the
/// PMD forwards with the two in_port rules of the OVS harness (EMC hits).
/// What this counts beyond `emc_hit` is the ring work: descriptor reads,
/// copies out of and into guest memory, used-ring updates, notifications.
pub struct VhostBench {
    pub pmd: Pmd<Ofproto>,
    pub ports: Vec<fvs_ports::vhost::VhostPort>,
    pub tx_guest: fvs_ports::vhost::frontend::Frontend,
    pub rx_guest: fvs_ports::vhost::frontend::Frontend,
    frames: Vec<Vec<u8>>,
    dir: std::path::PathBuf,
}

impl VhostBench {
    pub fn new() -> VhostBench {
        use fvs_ports::vhost::frontend::{Config, Frontend};
        use fvs_ports::vhost::VhostPort;
        let of = Ofproto::new();
        of.add_bridge("br0").unwrap();
        let mut pmd = Pmd::new(
            0,
            of.clone(),
            PmdConfig {
                emc_insert_inv_prob: 1,
                ..Default::default()
            },
        );
        let pool = Arc::new(PacketPool::new(4096, false).unwrap());
        let dir = std::env::temp_dir().join(format!("fvs-bench-vhost-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut ports = Vec::new();
        let mut guests = Vec::new();
        for n in 1..=2u32 {
            let path = dir.join(format!("vhu{n}"));
            let port = VhostPort::server(&format!("vhu{n}"), &path, pool.clone()).unwrap();
            let mut fe = Frontend::connect(&path, Config::default()).unwrap();
            fe.setup().unwrap();
            let t = std::time::Instant::now();
            while !port.is_up() {
                assert!(t.elapsed().as_secs() < 5, "vhost port did not come up");
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            of.add_port(
                "br0",
                PortConfig {
                    name: format!("vhu{n}"),
                    odp_port: n,
                    ofport_request: Some(n as u16),
                    ..Default::default()
                },
            )
            .unwrap();
            pmd.add_rxq(n, port.open_rxq(0).unwrap());
            pmd.add_tx(n, port.open_txq(0).unwrap());
            ports.push(port);
            guests.push(fe);
        }
        let flows = ["in_port=1,actions=output:2", "in_port=2,actions=output:1"];
        let fms: Vec<_> = flows
            .iter()
            .map(|f| parse_flow_mod(f, FlowModCommand::Add, None).unwrap())
            .collect();
        of.flow_mods("br0", &fms).unwrap();
        let rx_guest = guests.pop().unwrap();
        let tx_guest = guests.pop().unwrap();
        let frames = vec![tcp4([10, 0, 0, 1], [10, 0, 0, 2], 1000, 80); BATCH_SIZE];
        let mut b = VhostBench {
            pmd,
            ports,
            tx_guest,
            rx_guest,
            frames,
            dir,
        };
        for _ in 0..4 {
            b.guest_work();
            b.pmd.poll_once();
        }
        b.guest_work();
        b
    }

    /// What the guests do between two polls: guest 1 queues a batch,
    /// guest 2 takes what arrived and posts its buffers again.
    pub fn guest_work(&mut self) {
        use fvs_ports::vhost::frontend::BUF_SIZE;
        let refs: Vec<&[u8]> = self.frames.iter().map(Vec::as_slice).collect();
        self.tx_guest.send(0, &refs);
        self.rx_guest.recv(0, 0);
        self.rx_guest.post_rx(0, BUF_SIZE);
    }
}

impl Drop for VhostBench {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The side-by-side harness's VXLAN topology (`TOPO=vxlan-*` in
/// `benches/vhost_bench.sh`) on memory ports: br-int has c1 (ofport 1) and
/// vx (VXLAN to 172.31.0.2, ofport 2), br-phy has p0 (ofport 1) and its
/// internal port (172.31.0.1/24; the remote's MAC known), each bridge
/// forwarding between its two ports. `decap`: VXLAN frames (no UDP
/// checksum, as Linux and OVS send them) into p0, inner frames out of c1;
/// else inner frames into c1, VXLAN frames out of p0. One flow.
pub fn vxlan(decap: bool) -> Bench {
    use fvs_ofproto::tunnel::{IpDev, TunnelConfig};
    const VNI: u32 = 5001;
    let (local_ip, remote_ip) = ([172, 31, 0, 1], [172, 31, 0, 2]);
    let (dev_mac, remote_mac) = (mac(0x10), mac(0x20));
    let of = Ofproto::new();
    let mut pmd = Pmd::new(0, of.clone(), PmdConfig::default());
    let (c1, p0, dev) = (
        MemoryPort::new("c1", 1),
        MemoryPort::new("p0", 1),
        MemoryPort::new("br-phy", 1),
    );
    for br in ["br-int", "br-phy"] {
        of.add_bridge(br).unwrap();
    }
    for (br, p, odp, ofport) in [
        ("br-int", &c1, 1u32, Some(1u16)),
        ("br-phy", &p0, 2, Some(1)),
        ("br-phy", &dev, 3, None),
    ] {
        of.add_port(
            br,
            PortConfig {
                name: p.name().into(),
                odp_port: odp,
                ofport_request: ofport,
                ..Default::default()
            },
        )
        .unwrap();
        pmd.add_rxq(odp, p.open_rxq(0).unwrap());
        pmd.add_tx(odp, p.open_txq(0).unwrap());
    }
    let opts = [
        ("remote_ip", "172.31.0.2".to_string()),
        ("key", VNI.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    of.add_tunnel_port(
        "br-int",
        PortConfig {
            name: "vx".into(),
            odp_port: 4,
            ofport_request: Some(2),
            ..Default::default()
        },
        TunnelConfig::parse("vx", &opts).unwrap(),
        None,
        || 5,
    )
    .unwrap();
    of.tunnels.set_device(IpDev {
        name: "br-phy".into(),
        mac: dev_mac,
        mtu: 1500,
        addrs: vec![(local_ip.into(), 24)],
    });
    of.tunnels.neigh_set("br-phy", remote_ip.into(), remote_mac);
    for (br, flows) in [
        (
            "br-int",
            ["in_port=1,actions=output:2", "in_port=2,actions=output:1"],
        ),
        (
            "br-phy",
            ["in_port=1,actions=LOCAL", "in_port=LOCAL,actions=output:1"],
        ),
    ] {
        let fms: Vec<_> = flows
            .iter()
            .map(|f| parse_flow_mod(f, FlowModCommand::Add, None).unwrap())
            .collect();
        of.flow_mods(br, &fms).unwrap();
    }
    of.tunnels_changed();
    pmd.check_version();
    let inner = tcp4([10, 0, 0, 1], [10, 253, 0, 0], 1024, 1024);
    let frame = if decap {
        let mut vx = vec![0x08, 0, 0, 0];
        vx.extend_from_slice(&(VNI << 8).to_be_bytes());
        vx.extend_from_slice(&inner);
        let mut v = Vec::new();
        etherparse::PacketBuilder::ethernet2(remote_mac, dev_mac)
            .ipv4(remote_ip, local_ip, 64)
            .udp(49152, 4789)
            .write(&mut v, &vx)
            .unwrap();
        v[40..42].fill(0);
        v
    } else {
        inner
    };
    let (input, output) = if decap { (p0, c1) } else { (c1, p0) };
    let mut b = Bench {
        of,
        pmd,
        input,
        output,
        pool: PacketPool::new(8 * BATCH_SIZE, false).unwrap(),
        frames: vec![frame],
        next: 0,
    };
    b.warm_up(64);
    b
}
