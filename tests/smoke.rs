//! The simplest end-to-end path: in_port rules between memory ports,
//! through EMC, megaflows and upcalls, with counters.

mod common;

use common::*;
use fvs_datapath::pmd::PmdConfig;
use fvs_ofproto::actions::{port, OfAction};
use fvs_ofproto::fields::FieldId;
use fvs_ofproto::flow_mod::{FlowMod, FlowModCommand};

fn in_port_rule(inp: u16, out: u16) -> FlowMod {
    let mut fm = FlowMod::new(FlowModCommand::Add);
    fm.match_.set_exact(FieldId::InPort, inp as u128);
    fm.actions = vec![OfAction::Output {
        port: out,
        max_len: 0,
    }];
    fm
}

#[test]
fn port_to_port_with_counters() {
    let mut sw = TestSwitch::new(
        2,
        PmdConfig {
            emc_insert_inv_prob: 1,
            ..Default::default()
        },
    );
    sw.flow_mod(&in_port_rule(1, 2)).unwrap();
    sw.flow_mod(&in_port_rule(2, 1)).unwrap();
    let f = tcp4(mac(1), mac(2), [10, 0, 0, 1], [10, 0, 0, 2], 1000, 80);
    let out = sw.send(1, &vec![f.clone(); 5]);
    assert_eq!(out.len(), 5);
    assert!(out.iter().all(|(p, d)| *p == 2 && *d == f));
    let out = sw.send(1, &vec![f.clone(); 3]);
    assert_eq!(out.len(), 3);
    let c = sw.pmd.counters();
    assert_eq!(c.packets, 8);
    assert_eq!(c.upcalls_ok, 1, "{c:?}");
    assert_eq!(c.megaflow_hits, 4, "rest of the first burst: {c:?}");
    // An in_port-only megaflow that only outputs: later batches skip
    // extraction and lookups (simple match).
    assert_eq!((c.simple_hits, c.emc_hits), (3, 0), "{c:?}");
    assert_eq!(sw.pmd.n_megaflows(), 1);
    // The megaflow is as wide as the rules: only in_port matters.
    let dump = sw.pmd.dump_flows();
    assert_eq!(dump[0].mask.nonzero_words().collect::<Vec<_>>(), vec![0]);
    sw.pmd.sync_stats();
    let flows = sw.of.dump_flows("br0", None).unwrap();
    let r = flows
        .iter()
        .find(|f| {
            f.actions
                == vec![OfAction::Output {
                    port: 2,
                    max_len: 0,
                }]
        })
        .unwrap();
    assert_eq!(r.packet_count, 8);
    assert_eq!(r.byte_count, 8 * f.len() as u64);
}

#[test]
fn delete_takes_effect_before_the_next_packet() {
    let mut sw = TestSwitch::new(
        2,
        PmdConfig {
            emc_insert_inv_prob: 1,
            ..Default::default()
        },
    );
    sw.flow_mod(&in_port_rule(1, 2)).unwrap();
    let f = udp4(mac(1), mac(2), [10, 0, 0, 1], [10, 0, 0, 2], 53, 53);
    assert_eq!(sw.send1(1, &f).len(), 1);
    assert_eq!(sw.send1(1, &f).len(), 1);
    let mut del = FlowMod::new(FlowModCommand::Delete);
    del.match_.set_exact(FieldId::InPort, 1);
    assert_eq!(sw.flow_mod(&del).unwrap().deleted, 1);
    assert!(
        sw.send1(1, &f).is_empty(),
        "stale megaflow used after delete"
    );
    let mut add = in_port_rule(1, port::IN_PORT);
    add.priority = 7;
    sw.flow_mod(&add).unwrap();
    let out = sw.send1(1, &f);
    assert_eq!(out, vec![(1, f)]);
}

#[test]
fn packet_in_reports_the_pipelines_in_port() {
    use fvs_ofproto::syntax::parse_flow_mod;
    let mut sw = TestSwitch::new(2, PmdConfig::default());
    for l in [
        "in_port=1,actions=resubmit(2,1)",
        "table=1,in_port=2,actions=controller",
    ] {
        sw.flow_mod(&parse_flow_mod(l, FlowModCommand::Add, None).unwrap())
            .unwrap();
    }
    let f = udp4(mac(1), mac(2), [10, 0, 0, 1], [10, 0, 0, 2], 1, 2);
    assert!(sw.send1(1, &f).is_empty());
    let pis = sw.of.take_packet_ins();
    assert_eq!(pis.len(), 1);
    assert_eq!(
        (pis[0].in_port, pis[0].table_id, pis[0].data.clone()),
        (2, 1, f)
    );
}
