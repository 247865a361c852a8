//! A busy PMD thread polls an empty rx queue whose every poll is a system
//! call (a TAP device) only every 16th iteration, an idle one only once per
//! `SYSCALL_IDLE_GAP_CYCLES`, and either still receives what arrives on it.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use common::*;
use fvs_datapath::netdev::RxQueue;
use fvs_datapath::packet::{Batch, Packet};
use fvs_datapath::pmd::{cycles, PmdConfig, SYSCALL_IDLE_GAP_CYCLES};
use fvs_ofproto::flow_mod::FlowModCommand;
use fvs_ofproto::syntax::parse_flow_mod;

/// Stands for a TAP queue: counts its polls, hands out what is queued.
struct SyscallRxq {
    polls: Arc<AtomicUsize>,
    queued: Arc<Mutex<Vec<Packet>>>,
}

impl RxQueue for SyscallRxq {
    fn recv(&mut self, batch: &mut Batch) -> usize {
        self.polls.fetch_add(1, Ordering::Relaxed);
        let mut q = self.queued.lock().unwrap();
        let n = q.len();
        for p in q.drain(..) {
            batch.push(p).unwrap();
        }
        n
    }

    fn polls_by_syscall(&self) -> bool {
        true
    }
}

#[test]
fn empty_syscall_queues_are_polled_less_while_busy() {
    let mut sw = TestSwitch::new(3, PmdConfig::default());
    for line in ["in_port=1,actions=output:2", "in_port=3,actions=output:2"] {
        sw.flow_mod(&parse_flow_mod(line, FlowModCommand::Add, None).unwrap())
            .unwrap();
    }
    let polls = Arc::new(AtomicUsize::new(0));
    let queued = Arc::new(Mutex::new(Vec::new()));
    sw.pmd.add_rxq(
        3 + ODP_OFFSET,
        Box::new(SyscallRxq {
            polls: polls.clone(),
            queued: queued.clone(),
        }),
    );
    let frame = udp4(mac(1), mac(2), [10, 0, 0, 1], [10, 0, 0, 2], 1, 2);
    let busy_round = |sw: &mut TestSwitch| {
        let mut b = Batch::new();
        b.push(sw.pool.packet_from(&frame).unwrap()).unwrap();
        sw.ports[0].inject_batch(0, &mut b);
        sw.pmd.poll_once();
    };
    for _ in 0..64 {
        busy_round(&mut sw);
    }
    let busy_polls = polls.swap(0, Ordering::Relaxed);
    assert!(
        (4..=6).contains(&busy_polls),
        "{busy_polls} polls in 64 busy iterations"
    );
    assert_eq!(sw.collect().len(), 64);
    // A frame waiting on it is taken within 16 busy iterations.
    queued
        .lock()
        .unwrap()
        .push(sw.pool.packet_from(&frame).unwrap());
    for _ in 0..16 {
        busy_round(&mut sw);
    }
    assert!(
        queued.lock().unwrap().is_empty(),
        "not polled for 16 iterations"
    );
    assert_eq!(sw.collect().len(), 17);
    // Idle: polled once per gap, however many iterations fit in it.
    polls.store(0, Ordering::Relaxed);
    let start = cycles();
    let mut iterations = 0u64;
    while cycles().wrapping_sub(start) < 4 * SYSCALL_IDLE_GAP_CYCLES {
        sw.pmd.poll_once();
        iterations += 1;
    }
    let spent = cycles().wrapping_sub(start);
    let idle_polls = polls.load(Ordering::Relaxed) as u64;
    assert!(
        (1..=spent / SYSCALL_IDLE_GAP_CYCLES + 1).contains(&idle_polls),
        "{idle_polls} polls in {iterations} idle iterations over {spent} cycles"
    );
    // A frame waiting on it is taken by an idle thread too.
    queued
        .lock()
        .unwrap()
        .push(sw.pool.packet_from(&frame).unwrap());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while !queued.lock().unwrap().is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "never polled while idle"
        );
        sw.pmd.poll_once();
    }
    assert_eq!(sw.collect().len(), 1);
}
