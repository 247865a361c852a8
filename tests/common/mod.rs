//! Shared test harness: a bridge on in-memory ports, its PMD driven directly.
#![allow(dead_code)]

use std::sync::Arc;

use etherparse::PacketBuilder;
use fvs_datapath::packet::{Batch, PacketPool};
use fvs_datapath::pmd::{Pmd, PmdConfig};
use fvs_ofproto::flow_mod::FlowMod;
use fvs_ofproto::ofproto::{FlowModOutcome, OfprotoError};
use fvs_ofproto::{Ofproto, PortConfig};
use fvs_ports::memory::MemoryPort;

/// Datapath port numbers are the OpenFlow port numbers plus this, so that
/// mixing the two spaces up shows in tests.
pub const ODP_OFFSET: u32 = 100;

pub struct TestSwitch {
    pub of: Arc<Ofproto>,
    pub pmd: Pmd<Ofproto>,
    /// ports[i] has OpenFlow port i + 1.
    pub ports: Vec<Arc<MemoryPort>>,
    pub pool: PacketPool,
    pub bridge: String,
}

impl TestSwitch {
    pub fn new(n_ports: usize, config: PmdConfig) -> TestSwitch {
        TestSwitch::with_pool(n_ports, config, 4096)
    }

    pub fn with_pool(n_ports: usize, config: PmdConfig, pool: usize) -> TestSwitch {
        let of = Ofproto::new();
        of.add_bridge("br0").unwrap();
        let mut pmd = Pmd::new(0, of.clone(), config);
        let mut ports = Vec::new();
        for i in 1..=n_ports {
            let p = MemoryPort::new(&format!("p{i}"), 1);
            let odp = i as u32 + ODP_OFFSET;
            let ofport = of
                .add_port(
                    "br0",
                    PortConfig {
                        name: format!("p{i}"),
                        odp_port: odp,
                        ofport_request: Some(i as u16),
                        ..Default::default()
                    },
                )
                .unwrap();
            assert_eq!(ofport, i as u16);
            use fvs_datapath::netdev::Netdev;
            pmd.add_rxq(odp, p.open_rxq(0).unwrap());
            pmd.add_tx(odp, p.open_txq(0).unwrap());
            ports.push(p);
        }
        TestSwitch {
            of,
            pmd,
            ports,
            pool: PacketPool::new(pool, false).unwrap(),
            bridge: "br0".into(),
        }
    }

    pub fn flow_mod(&self, fm: &FlowMod) -> Result<FlowModOutcome, OfprotoError> {
        self.of.flow_mod(&self.bridge, fm)
    }

    /// Receives `frames` on OpenFlow port `port` as one burst; returns what
    /// came out, as (OpenFlow port, frame), per port in order of ports.
    pub fn send(&mut self, port: u16, frames: &[Vec<u8>]) -> Vec<(u16, Vec<u8>)> {
        let mut b = Batch::new();
        for f in frames {
            b.push(self.pool.packet_from(f).expect("pool"))
                .expect("batch");
        }
        self.ports[port as usize - 1].inject_batch(0, &mut b);
        while self.ports.iter().any(|p| p.pending() > 0) {
            self.pmd.poll_once();
        }
        self.collect()
    }

    /// Receives one frame on `port`; returns what came out.
    pub fn send1(&mut self, port: u16, frame: &[u8]) -> Vec<(u16, Vec<u8>)> {
        self.send(port, &[frame.to_vec()])
    }

    pub fn collect(&mut self) -> Vec<(u16, Vec<u8>)> {
        let mut out = Vec::new();
        for (i, p) in self.ports.iter().enumerate() {
            for pkt in p.take_sent() {
                out.push((i as u16 + 1, pkt.data().to_vec()));
            }
        }
        out
    }
}

pub fn mac(n: u8) -> [u8; 6] {
    [0x02, 0, 0, 0, 0, n]
}

/// An IPv4/TCP frame.
pub fn tcp4(
    src: [u8; 6],
    dst: [u8; 6],
    sip: [u8; 4],
    dip: [u8; 4],
    sport: u16,
    dport: u16,
) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(src, dst)
        .ipv4(sip, dip, 64)
        .tcp(sport, dport, 1, 1024);
    let payload = [0xabu8; 16];
    let mut v = Vec::with_capacity(b.size(payload.len()));
    b.write(&mut v, &payload).unwrap();
    v
}

/// An IPv4/UDP frame.
pub fn udp4(
    src: [u8; 6],
    dst: [u8; 6],
    sip: [u8; 4],
    dip: [u8; 4],
    sport: u16,
    dport: u16,
) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(src, dst)
        .ipv4(sip, dip, 64)
        .udp(sport, dport);
    let payload = [0xcdu8; 18];
    let mut v = Vec::with_capacity(b.size(payload.len()));
    b.write(&mut v, &payload).unwrap();
    v
}
