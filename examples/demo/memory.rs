//! The demo without a kernel: a bridge with three in-memory ports, OpenFlow
//! rules in OVS syntax, a PMD thread, and real packets: a generator thread
//! sends TCP, UDP and ARP traffic into the ports, the switch forwards it,
//! and the demo prints what happened the way `ovs-ofctl dump-flows` and
//! `ovs-appctl dpif-netdev/pmd-stats-show` would.
//!
//!     cargo run --release --example demo -- --memory [PACKETS]

use std::sync::Arc;
use std::time::{Duration, Instant};

use etherparse::PacketBuilder;
use fvs_datapath::dpif::Datapath;
use fvs_datapath::netdev::Netdev;
use fvs_datapath::packet::{Batch, PacketPool, BATCH_SIZE};
use fvs_datapath::pmd::PmdConfig;
use fvs_ofproto::flow_mod::FlowModCommand;
use fvs_ofproto::syntax::{format_flow_stats, parse_flow_mod};
use fvs_ofproto::{Ofproto, PortConfig};
use fvs_ports::memory::MemoryPort;

const FLOWS: &[&str] = &[
    "priority=100,in_port=1,tcp,actions=output:2",
    "priority=100,in_port=2,tcp,actions=output:1",
    "priority=90,ip,nw_dst=10.0.3.0/24,actions=mod_dl_dst:02:00:00:00:00:03,dec_ttl,output:3",
    "priority=0,actions=NORMAL",
];

fn mac(n: u8) -> [u8; 6] {
    [0x02, 0, 0, 0, 0, n]
}

/// The i-th packet of the demo traffic, and the port it enters on.
fn frame(i: u32) -> (usize, Vec<u8>) {
    let mut v = Vec::new();
    let flow = (i % 500) as u16;
    match i % 10 {
        // TCP between vm1 and vm2, 500 connections each way.
        0..=5 => {
            let (inp, src, dst) = if i.is_multiple_of(2) {
                (0, 1, 2)
            } else {
                (1, 2, 1)
            };
            PacketBuilder::ethernet2(mac(src), mac(dst))
                .ipv4([10, 0, 0, src], [10, 0, 0, dst], 64)
                .tcp(10000 + flow, 80, i, 512)
                .write(&mut v, &[0u8; 16])
                .expect("frame");
            (inp, v)
        }
        // UDP from vm1 to the 10.0.3.0/24 subnet behind vm3 (rewritten, TTL decremented).
        6..=8 => {
            PacketBuilder::ethernet2(mac(1), mac(9))
                .ipv4([10, 0, 0, 1], [10, 0, 3, (flow % 250) as u8 + 1], 64)
                .udp(5000 + flow, 53)
                .write(&mut v, &[0u8; 32])
                .expect("frame");
            (0, v)
        }
        // ARP broadcasts from vm3: NORMAL floods them and learns vm3.
        _ => {
            v.extend_from_slice(&[0xff; 6]);
            v.extend_from_slice(&mac(3));
            v.extend_from_slice(&[0x08, 0x06, 0, 1, 8, 0, 6, 4, 0, 1]);
            v.extend_from_slice(&mac(3));
            v.extend_from_slice(&[10, 0, 0, 3, 0, 0, 0, 0, 0, 0, 10, 0, 0, 1]);
            (2, v)
        }
    }
}

pub fn run(total: u32) -> Result<(), Box<dyn std::error::Error>> {
    let of = Ofproto::new();
    of.add_bridge("br0")?;
    let config = PmdConfig {
        sleep_max_us: 500,
        ..PmdConfig::default()
    };
    let dp = Arc::new(Datapath::new(of.clone(), &[None], config)?);
    of.connect(&dp);
    let ports: Vec<Arc<MemoryPort>> = (1..=3)
        .map(|i| MemoryPort::new(&format!("vm{i}"), 1))
        .collect();
    for (i, p) in ports.iter().enumerate() {
        let n = i as u32 + 1;
        dp.add_port(n, p.clone())?;
        of.add_port(
            "br0",
            PortConfig {
                name: p.name().into(),
                odp_port: n,
                ofport_request: Some(n as u16),
                ..Default::default()
            },
        )?;
    }
    println!("$ fvs-ofctl add-flows br0 -");
    for f in FLOWS {
        println!("{f}");
        of.flow_mod("br0", &parse_flow_mod(f, FlowModCommand::Add, None)?)?;
    }

    // Traffic: one thread sends, this one drains what comes out.
    let pool = Arc::new(PacketPool::new(16384, false)?);
    let start = Instant::now();
    let sender = {
        let (ports, pool) = (ports.clone(), pool.clone());
        std::thread::spawn(move || {
            let mut i = 0;
            let mut batches: Vec<Batch> = (0..3).map(|_| Batch::new()).collect();
            while i < total {
                for _ in 0..BATCH_SIZE.min((total - i) as usize) {
                    let (port, f) = frame(i);
                    match pool.packet_from(&f) {
                        Some(p) => {
                            let _ = batches[port].push(p);
                            i += 1;
                        }
                        None => std::thread::sleep(Duration::from_micros(50)),
                    }
                    if batches[port].is_full() {
                        ports[port].inject_batch(0, &mut batches[port]);
                    }
                }
                for (port, b) in batches.iter_mut().enumerate() {
                    ports[port].inject_batch(0, b);
                }
                // Let the PMD keep up on a small machine.
                while ports.iter().map(|p| p.pending()).sum::<usize>() > 4096 {
                    std::thread::yield_now();
                }
            }
        })
    };
    let mut received = [0u64; 3];
    loop {
        for (i, p) in ports.iter().enumerate() {
            received[i] += p.take_sent().len() as u64;
        }
        if sender.is_finished() && ports.iter().all(|p| p.pending() == 0) {
            std::thread::sleep(Duration::from_millis(20));
            for (i, p) in ports.iter().enumerate() {
                received[i] += p.take_sent().len() as u64;
            }
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    sender.join().map_err(|_| "traffic thread panicked")?;
    let elapsed = start.elapsed();

    println!(
        "\nSent {total} packets in {:.2} s through a PMD thread; received back:",
        elapsed.as_secs_f64()
    );
    for (i, p) in ports.iter().enumerate() {
        let s = p.stats();
        println!(
            "  {}: sent in {} packets, got out {} packets",
            p.name(),
            s.rx_packets,
            received[i]
        );
    }

    println!("\n$ fvs-ofctl dump-flows br0");
    for fs in of.dump_flows("br0", None)? {
        println!("{}", format_flow_stats(&fs, true));
    }
    println!("\n$ fvs-appctl fdb/show br0");
    println!(" port  VLAN  MAC                Age");
    for e in of.fdb_entries("br0")? {
        let m = e.mac;
        println!(
            "{:>5} {:>5}  {:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}  {:>3}",
            e.port, e.vlan, m[0], m[1], m[2], m[3], m[4], m[5], e.age_secs
        );
    }
    println!("\n$ fvs-appctl dpif-netdev/pmd-stats-show");
    for (id, c) in dp.pmd_counters().iter().enumerate() {
        print!(
            "{}",
            c.format(&format!("pmd thread numa_id 0 core_id {id}:"))
        );
    }
    println!("\n{} megaflows installed", dp.dump_flows().len());
    Ok(())
}
