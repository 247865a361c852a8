//! Thousands of active flows: more megaflows than the lookup prefetching
//! threshold (so the EMC is looked up after a prefetching pass too),
//! packets of many flows in every batch, TCP (keys made from EMC
//! signatures) and ICMP (keys extracted) mixed, and flows removed between
//! rounds. Every packet must leave by its own rule: with OVS's insertion
//! rate (the EMC mostly misses, then is bypassed) and with every miss
//! inserted (thousands of EMC hits, stale ones on removed flows).

mod common;

use common::*;
use fvs_datapath::pmd::PmdConfig;
use fvs_ofproto::flow_mod::FlowModCommand;
use fvs_ofproto::syntax::parse_flow_mod;

use etherparse::PacketBuilder;

const FLOWS: u32 = 6000;

fn dst(i: u32) -> [u8; 4] {
    (0x0afd_0000 + i).to_be_bytes()
}

/// Flow i leaves by port 2 or 3, by a rule of its own.
fn out_port(i: u32) -> u16 {
    2 + (i % 2) as u16
}

fn icmp4(src: [u8; 6], dst: [u8; 6], sip: [u8; 4], dip: [u8; 4]) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(src, dst)
        .ipv4(sip, dip, 64)
        .icmpv4_echo_request(7, 1);
    let mut v = Vec::with_capacity(b.size(8));
    b.write(&mut v, &[0x5a; 8]).unwrap();
    v
}

fn frame(i: u32) -> Vec<u8> {
    if i.is_multiple_of(3) {
        icmp4(mac(1), mac(2), [10, 254, 0, 1], dst(i))
    } else {
        tcp4(mac(1), mac(2), [10, 254, 0, 1], dst(i), 1024, 80)
    }
}

#[test]
fn every_packet_of_thousands_of_flows_takes_its_own_rule() {
    let c = run(PmdConfig::default().emc_insert_inv_prob);
    assert!(c.megaflow_hits > c.emc_hits, "{c:?}");
}

#[test]
fn every_packet_of_thousands_of_flows_takes_its_own_rule_by_the_emc() {
    let c = run(1);
    // The first round's 6000 misses (upcalls) and the first hits of the
    // second make a window under one hit in two: lookups are bypassed from
    // then on but for sampled rounds. Hits before and in those: thousands.
    assert!(c.emc_hits > 2000, "{c:?}");
}

/// Sends each flow's packets three times, removes a third of the rules and
/// sends them again; returns the counters after the first three rounds.
fn run(emc_insert_inv_prob: u32) -> fvs_datapath::pmd::PmdCounters {
    let mut sw = TestSwitch::with_pool(
        3,
        PmdConfig {
            upcall_rate: 0,
            emc_insert_inv_prob,
            ..Default::default()
        },
        8192,
    );
    for i in 0..FLOWS {
        let d = dst(i);
        let line = format!(
            "ip,nw_dst={}.{}.{}.{},actions=output:{}",
            d[0],
            d[1],
            d[2],
            d[3],
            out_port(i)
        );
        sw.flow_mod(&parse_flow_mod(&line, FlowModCommand::Add, None).unwrap())
            .unwrap();
    }
    // Batches mix flows: flow k of batch b is (b + k * 197) % FLOWS.
    let order: Vec<u32> = (0..FLOWS)
        .flat_map(|b| (0..32).map(move |k| (b + k * 197) % FLOWS))
        .take(3 * FLOWS as usize)
        .collect();
    let check = |sw: &mut TestSwitch, removed: &dyn Fn(u32) -> bool| {
        for chunk in order.chunks(32) {
            let frames: Vec<Vec<u8>> = chunk.iter().map(|&i| frame(i)).collect();
            let mut out = sw.send(1, &frames);
            let mut want: Vec<(u16, Vec<u8>)> = chunk
                .iter()
                .filter(|&&i| !removed(i))
                .map(|&i| (out_port(i), frame(i)))
                .collect();
            out.sort();
            want.sort();
            assert_eq!(out, want, "batch {chunk:?}");
        }
    };
    check(&mut sw, &|_| false);
    assert!(
        sw.pmd.n_megaflows() >= FLOWS as usize,
        "{}",
        sw.pmd.n_megaflows()
    );
    let c = sw.pmd.counters();
    // Remove a third of the rules: their packets are dropped from then on,
    // whatever the caches held.
    for i in (0..FLOWS).filter(|i| i % 3 == 1) {
        let d = dst(i);
        let line = format!("ip,nw_dst={}.{}.{}.{}", d[0], d[1], d[2], d[3]);
        sw.flow_mod(&parse_flow_mod(&line, FlowModCommand::DeleteStrict, None).unwrap())
            .unwrap();
    }
    check(&mut sw, &|i| i % 3 == 1);
    c
}
