//! Idle and hard timeouts: expiry removes rules (and the datapath stops
//! using them); traffic keeps an idle-timeout rule alive.

mod common;

use std::time::{Duration, Instant};

use common::*;
use fvs_datapath::pmd::PmdConfig;
use fvs_ofproto::flow_mod::FlowModCommand;
use fvs_ofproto::ofproto::RemovedReason;
use fvs_ofproto::syntax::parse_flow_mod;

fn add(sw: &TestSwitch, line: &str) {
    sw.flow_mod(&parse_flow_mod(line, FlowModCommand::Add, None).unwrap())
        .unwrap();
}

/// Expires what has timed out, after crediting the datapath's traffic to the rules.
fn expire(sw: &mut TestSwitch) -> Vec<(u16, RemovedReason)> {
    sw.pmd.sync_stats();
    sw.of
        .run_timeouts()
        .into_iter()
        .map(|r| (r.rule.priority, r.reason))
        .collect()
}

#[test]
fn hard_timeout_expires_even_with_traffic() {
    let mut sw = TestSwitch::new(2, PmdConfig::default());
    add(&sw, "priority=10,in_port=1,hard_timeout=1,actions=output:2");
    let f = udp4(mac(1), mac(2), [10, 0, 0, 1], [10, 0, 0, 2], 1, 2);
    let start = Instant::now();
    while start.elapsed() < Duration::from_millis(900) {
        assert_eq!(sw.send1(1, &f).len(), 1);
        assert!(expire(&mut sw).is_empty(), "expired early");
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(expire(&mut sw), vec![(10, RemovedReason::HardTimeout)]);
    assert!(
        sw.send1(1, &f).is_empty(),
        "the expired rule still forwards"
    );
    assert!(sw.of.dump_flows("br0", None).unwrap().is_empty());
}

#[test]
fn idle_timeout_is_reset_by_traffic_and_expires_without() {
    let mut sw = TestSwitch::new(2, PmdConfig::default());
    add(&sw, "priority=20,in_port=1,idle_timeout=1,actions=output:2");
    add(&sw, "priority=5,in_port=2,idle_timeout=1,actions=output:1");
    let f = udp4(mac(1), mac(2), [10, 0, 0, 1], [10, 0, 0, 2], 1, 2);
    // Traffic on port 1 only, for twice the idle timeout.
    let start = Instant::now();
    let mut expired = Vec::new();
    while start.elapsed() < Duration::from_millis(2000) {
        assert_eq!(
            sw.send1(1, &f).len(),
            1,
            "rule with traffic expired: {expired:?}"
        );
        expired.extend(expire(&mut sw));
        std::thread::sleep(Duration::from_millis(150));
    }
    assert_eq!(
        expired,
        vec![(5, RemovedReason::IdleTimeout)],
        "only the idle rule expires"
    );
    let flows = sw.of.dump_flows("br0", None).unwrap();
    assert_eq!(flows.len(), 1);
    assert!(flows[0].packet_count >= 10);
    assert_eq!(flows[0].idle_age, 0);
    std::thread::sleep(Duration::from_millis(1200));
    assert_eq!(expire(&mut sw), vec![(20, RemovedReason::IdleTimeout)]);
    assert!(sw.send1(1, &f).is_empty());
}
