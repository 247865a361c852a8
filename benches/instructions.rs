//! Drives one hot-path scenario for `benches/callgrind.sh`, which counts the
//! instructions executed inside `measured_poll` (one PMD iteration over a
//! 32-packet batch) and divides by the packets it processed.
//!
//! Usage: instructions SCENARIO ITERATIONS
//! Scenarios: emc_hit, megaflow1, megaflow4, megaflow16, megaflow10k (each
//! packet of a batch a different one of 10,000 flows), upcall, vhost_p2p,
//! vxlan_encap, vxlan_decap (one flow each way through a VXLAN port).

mod scenarios;

use fvs_datapath::packet::BATCH_SIZE;
use fvs_datapath::pmd::Pmd;
use fvs_ofproto::Ofproto;
use scenarios::*;

/// The measured region: everything a PMD does for one batch, from the
/// memory port's rx queue to its tx queue.
#[inline(never)]
fn measured_poll(pmd: &mut Pmd<Ofproto>) -> usize {
    pmd.poll_once()
}

/// Key extraction alone, for one packet.
#[inline(never)]
fn measured_extract(
    pkt: &mut fvs_datapath::Packet,
    key: &mut fvs_datapath::FlowKey,
    stats: &mut fvs_datapath::extract::ExtractStats,
) -> (u32, fvs_datapath::key::Shape) {
    fvs_datapath::extract::extract_hot(pkt, key, stats, true)
}

fn main() {
    // `cargo bench` adds `--bench`; only positional arguments count.
    let args: Vec<String> = std::env::args().filter(|a| !a.starts_with("--")).collect();
    let scenario = args.get(1).map(String::as_str).unwrap_or("emc_hit");
    let iters: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(1000);
    let mut packets = 0;
    match scenario {
        "extract_tcp4" | "extract_udp6" | "extract_vlan" => {
            let pool = fvs_datapath::PacketPool::new(4, false).unwrap();
            let frame = match scenario {
                "extract_tcp4" => tcp4([10, 0, 0, 1], [10, 0, 0, 2], 1000, 80),
                "extract_udp6" => udp6(53, 53),
                _ => vlan_tcp4(),
            };
            let mut p = pool.packet_from(&frame).unwrap();
            let mut key = fvs_datapath::FlowKey::ZERO;
            let mut stats = Default::default();
            for _ in 0..iters {
                std::hint::black_box(measured_extract(&mut p, &mut key, &mut stats));
                packets += 1;
            }
        }
        "upcall" => {
            let mut b = upcall(iters as u32 * BATCH_SIZE as u32);
            for _ in 0..iters {
                b.load_batch();
                packets += measured_poll(&mut b.pmd);
                b.drain();
            }
            let c = b.pmd.counters();
            assert_eq!(
                c.upcalls_ok as usize, packets,
                "every packet must be an upcall: {c:?}"
            );
        }
        "vhost_p2p" => {
            let mut b = VhostBench::new();
            let before = b.pmd.counters();
            for _ in 0..iters {
                packets += measured_poll(&mut b.pmd);
                b.guest_work();
            }
            let c = b.pmd.counters();
            assert_eq!(
                (c.simple_hits - before.simple_hits) as usize,
                packets,
                "every measured packet must take the simple-match path: {c:?}"
            );
            let sent = fvs_datapath::netdev::Netdev::stats(&b.ports[1]).tx_packets;
            assert!(
                sent as usize >= packets,
                "{sent} sent to the receiving guest, {packets} forwarded"
            );
        }
        "vxlan_encap" | "vxlan_decap" => {
            let mut b = vxlan(scenario == "vxlan_decap");
            let sent = |b: &Bench| fvs_datapath::netdev::Netdev::stats(&*b.output).tx_packets;
            let before = sent(&b);
            for _ in 0..iters {
                b.load_batch();
                packets += measured_poll(&mut b.pmd);
                b.drain();
            }
            let out = sent(&b) - before;
            assert_eq!(
                out as usize,
                packets,
                "every packet must come out: {:?}",
                b.pmd.counters()
            );
        }
        "megaflow10k" => {
            // The prefetching path (over PREFETCH_MIN_FLOWS megaflows): its
            // extra instructions; what it saves is cache misses (criterion's
            // many_flows measures those).
            let mut b = many_flows(10_000);
            let before = b.pmd.counters();
            for _ in 0..iters {
                b.load_batch();
                packets += measured_poll(&mut b.pmd);
                b.drain();
            }
            let c = b.pmd.counters();
            let hits = c.megaflow_hits + c.emc_hits - before.megaflow_hits - before.emc_hits;
            assert_eq!(hits as usize, packets, "every packet must hit: {c:?}");
        }
        _ => {
            let mut b = match scenario {
                "emc_hit" => emc_hit(),
                "megaflow1" => megaflow_hit(1),
                "megaflow4" => megaflow_hit(4),
                "megaflow16" => megaflow_hit(16),
                other => panic!("unknown scenario {other}"),
            };
            b.load_batch();
            let before = b.pmd.counters();
            for _ in 0..iters {
                packets += measured_poll(&mut b.pmd);
                b.recycle();
            }
            let c = b.pmd.counters();
            let hits = if scenario == "emc_hit" {
                c.emc_hits - before.emc_hits
            } else {
                c.megaflow_hits - before.megaflow_hits
            };
            assert_eq!(
                hits as usize, packets,
                "every measured packet must hit the cache under test: {c:?}"
            );
            if scenario != "emc_hit" {
                println!(
                    "avg_subtable_lookups {:.2}",
                    (c.megaflow_lookups - before.megaflow_lookups) as f64 / hits as f64
                );
            }
        }
    }
    println!("packets {packets}");
}
