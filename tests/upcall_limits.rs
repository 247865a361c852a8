//! The flow limit with eviction, max-idle aging and the per-rx-queue upcall
//! rate limit, on in-memory ports with the PMD driven directly.

mod common;

use std::time::Duration;

use common::*;
use fvs_datapath::pmd::PmdConfig;
use fvs_ofproto::flow_mod::FlowModCommand;
use fvs_ofproto::syntax::parse_flow_mod;

/// Port 1 → 2 and 2 → 1, with a rule on the UDP destination port so that
/// each destination port makes a megaflow of its own.
fn switch(config: PmdConfig) -> TestSwitch {
    let sw = TestSwitch::new(2, config);
    for l in [
        "priority=10,udp,tp_dst=9,actions=drop",
        "priority=0,in_port=1,actions=output:2",
        "priority=0,in_port=2,actions=output:1",
    ] {
        sw.flow_mod(&parse_flow_mod(l, FlowModCommand::Add, None).unwrap())
            .unwrap();
    }
    sw
}

fn udp_to(dport: u16) -> Vec<u8> {
    udp4(mac(1), mac(2), [10, 0, 0, 1], [10, 0, 0, 2], 1234, dport)
}

/// Lets the PMD's millisecond clock move on.
fn tick(sw: &mut TestSwitch, ms: u64) {
    std::thread::sleep(Duration::from_millis(ms));
    sw.pmd.refresh_clock();
}

#[test]
fn upcalls_over_a_queues_budget_are_dropped_and_counted() {
    let mut sw = switch(PmdConfig {
        upcall_rate: 100,
        upcall_burst: 5,
        ..Default::default()
    });
    // 32 new flows in one burst on port 1: the burst of 5 is translated.
    let frames: Vec<Vec<u8>> = (1000..1032).map(udp_to).collect();
    let out = sw.send(1, &frames);
    let c = sw.pmd.counters();
    assert_eq!((c.upcalls_ok, c.upcalls_limited), (5, 27), "{c:?}");
    assert_eq!(out.len(), 5, "only translated packets go out");
    assert_eq!(sw.pmd.n_megaflows(), 5);
    // Established flows keep hitting their megaflows, whatever the budget.
    let out = sw.send(1, &frames[..5]);
    assert_eq!(out.len(), 5);
    // Another port's queue has its own budget.
    let back = udp4(mac(2), mac(1), [10, 0, 0, 2], [10, 0, 0, 1], 1, 2000);
    assert_eq!(sw.send1(2, &back), vec![(1, back.clone())]);
    // 100/s refills one token every 10 ms.
    tick(&mut sw, 25);
    let out = sw.send(1, &frames[5..]);
    let c2 = sw.pmd.counters();
    assert!(
        (2..=5).contains(&out.len()),
        "about 2 tokens after 25 ms (up to the burst): {} out, {c2:?}",
        out.len()
    );
    assert_eq!(c2.upcalls_limited, 27 + 27 - out.len() as u64);
    // Counted in pmd-stats-show.
    assert!(c2
        .format("pmd thread numa_id 0 core_id 0:")
        .contains(&format!(
            "miss dropped by upcall rate limit: {}",
            c2.upcalls_limited
        )));
    // Every packet received is accounted for: forwarded or a counted drop.
    assert_eq!(
        c2.packets,
        c2.tx_packets + c2.dropped + c2.upcalls_failed + c2.upcalls_limited
    );
}

#[test]
fn at_the_flow_limit_least_recently_used_megaflows_make_room() {
    let mut sw = switch(PmdConfig {
        max_flows: 8,
        upcall_rate: 0,
        emc_insert_inv_prob: 1,
        ..Default::default()
    });
    let established = udp_to(80);
    assert_eq!(sw.send1(1, &established).len(), 1);
    tick(&mut sw, 3);
    // A spray of 40 new flows: 7 fit, the rest are still forwarded, uninstalled.
    let spray: Vec<Vec<u8>> = (2000..2040).map(udp_to).collect();
    for chunk in spray.chunks(8) {
        assert_eq!(
            sw.send(1, chunk).len(),
            chunk.len(),
            "forwarded at the limit"
        );
    }
    let c = sw.pmd.counters();
    assert_eq!(sw.pmd.n_megaflows(), 8);
    assert_eq!(c.installs_failed, 33, "{c:?}");
    // The established flow keeps being used after the spray.
    tick(&mut sw, 3);
    assert_eq!(sw.send1(1, &established).len(), 1);
    let hits = sw.pmd.counters();
    assert_eq!(hits.upcalls_ok, c.upcalls_ok, "a cache hit, no upcall");
    // The sweep (off the per-packet path) frees an eighth of the limit,
    // oldest first: one spray flow, not the established one.
    tick(&mut sw, 101);
    assert_eq!(sw.pmd.evict_if_full(), 1);
    assert_eq!(sw.pmd.n_megaflows(), 7);
    assert_eq!(sw.pmd.evict_if_full(), 0, "nothing failed since");
    sw.send1(1, &established);
    let c2 = sw.pmd.counters();
    assert_eq!(c2.upcalls_ok, c.upcalls_ok, "still installed");
    assert_eq!(c2.flows_evicted, 1);
    // A new flow installs in the room made.
    sw.send1(1, &udp_to(3000));
    assert_eq!(sw.pmd.counters().installs_failed, 33);
    assert_eq!(sw.pmd.n_megaflows(), 8);
    // Evicted megaflows' traffic was credited to their rule: 1 + 40 + 2 + 1
    // packets went through priority=0,in_port=1.
    sw.pmd.sync_stats();
    let rules = sw.of.dump_flows("br0", None).unwrap();
    let r = rules
        .iter()
        .find(|r| r.priority == 0 && r.packet_count > 0)
        .unwrap();
    assert_eq!(r.packet_count, 44);
}

#[test]
fn megaflows_idle_past_max_idle_expire() {
    let mut sw = switch(PmdConfig {
        max_idle_ms: 50,
        ..Default::default()
    });
    let old: Vec<Vec<u8>> = (100..110).map(udp_to).collect();
    sw.send(1, &old);
    assert_eq!(sw.pmd.n_megaflows(), 10);
    tick(&mut sw, 30);
    let fresh = udp_to(200);
    sw.send1(1, &fresh);
    sw.pmd.expire_idle_flows();
    assert_eq!(sw.pmd.n_megaflows(), 11, "none idle for 50 ms yet");
    tick(&mut sw, 30);
    sw.pmd.expire_idle_flows();
    assert_eq!(sw.pmd.n_megaflows(), 1, "the ten idle for 60 ms went");
    assert_eq!(sw.pmd.counters().flows_expired, 10);
    let upcalls = sw.pmd.counters().upcalls_ok;
    sw.send1(1, &fresh);
    assert_eq!(
        sw.pmd.counters().upcalls_ok,
        upcalls,
        "the fresh one stayed"
    );
    // An expired flow comes back by an upcall.
    assert_eq!(sw.send1(1, &old[0]).len(), 1);
    assert_eq!(sw.pmd.counters().upcalls_ok, upcalls + 1);
}
