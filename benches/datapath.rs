//! Criterion benches of the datapath's hot paths (wall time per packet).
//! Instruction counts per packet come from `benches/callgrind.sh`.

mod scenarios;

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use fvs_datapath::extract::{extract, ExtractStats};
use fvs_datapath::key::FlowKey;
use fvs_datapath::packet::{PacketPool, BATCH_SIZE};
use scenarios::*;

fn key_extraction(c: &mut Criterion) {
    let pool = PacketPool::new(16, false).unwrap();
    let mut g = c.benchmark_group("extract");
    g.throughput(Throughput::Elements(1));
    for (name, frame) in [
        ("tcp4", tcp4([10, 0, 0, 1], [10, 0, 0, 2], 1000, 80)),
        ("udp6", udp6(53, 53)),
        ("vlan_tcp4", vlan_tcp4()),
    ] {
        let mut p = pool.packet_from(&frame).unwrap();
        let mut key = FlowKey::ZERO;
        let mut stats = ExtractStats::default();
        g.bench_function(name, |b| {
            b.iter(|| extract(std::hint::black_box(&mut p), &mut key, &mut stats))
        });
    }
    g.finish();
}

/// 32 packets in from a memory port, through the EMC, out to a memory port
/// (the time includes moving the output back to the input).
fn emc_hit_batch(c: &mut Criterion) {
    let mut b = emc_hit();
    b.load_batch();
    let mut g = c.benchmark_group("emc_hit");
    g.throughput(Throughput::Elements(BATCH_SIZE as u64));
    g.bench_function("batch32", |bench| {
        bench.iter(|| {
            b.pmd.poll_once();
            b.recycle();
        })
    });
    g.finish();
    assert!(b.pmd.counters().emc_hits > b.pmd.counters().packets / 2);
}

fn megaflow_hits(c: &mut Criterion) {
    let mut g = c.benchmark_group("megaflow_hit");
    g.throughput(Throughput::Elements(BATCH_SIZE as u64));
    for k in [1, 4, 16] {
        let mut b = megaflow_hit(k);
        b.load_batch();
        g.bench_function(format!("subtables{k}"), |bench| {
            bench.iter(|| {
                b.pmd.poll_once();
                b.recycle();
            })
        });
        let c = b.pmd.counters();
        assert_eq!(c.upcalls_ok, c.megaflow_hits.min(c.upcalls_ok), "{c:?}");
    }
    g.finish();
}

/// Megaflow hits spread over many flows (cache misses, not instructions).
fn many_flows_hits(c: &mut Criterion) {
    let mut g = c.benchmark_group("many_flows");
    g.throughput(Throughput::Elements(BATCH_SIZE as u64));
    for n in [10_000, 40_000, 100_000] {
        let mut b = many_flows(n);
        g.bench_function(format!("flows{n}"), |bench| {
            bench.iter(|| {
                b.load_batch();
                b.pmd.poll_once();
                b.drain();
            })
        });
    }
    g.finish();
}

/// A batch of 32 packets of new flows: each is translated and installed.
fn upcall_install(c: &mut Criterion) {
    let mut b = upcall(4096);
    let mut g = c.benchmark_group("upcall");
    g.throughput(Throughput::Elements(BATCH_SIZE as u64));
    g.bench_function("translate_install_batch32", |bench| {
        bench.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                b.pmd.flush_flows();
                b.load_batch();
                let t = Instant::now();
                b.pmd.poll_once();
                total += t.elapsed();
                b.drain();
            }
            total
        })
    });
    g.finish();
    let _ = BatchSize::SmallInput;
}

criterion_group!(
    benches,
    key_extraction,
    emc_hit_batch,
    megaflow_hits,
    many_flows_hits,
    upcall_install
);
criterion_main!(benches);
