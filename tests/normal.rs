//! The NORMAL action: a VLAN-aware MAC learning switch.

mod common;

use common::*;
use fvs_datapath::pmd::PmdConfig;
use fvs_ofproto::actions::{port, OfAction};
use fvs_ofproto::bridge::{VlanConfig, VlanMode};
use fvs_ofproto::flow_mod::{FlowMod, FlowModCommand};

fn normal_switch(n: usize) -> TestSwitch {
    let sw = TestSwitch::new(
        n,
        PmdConfig {
            emc_insert_inv_prob: 1,
            ..Default::default()
        },
    );
    let mut fm = FlowMod::new(FlowModCommand::Add);
    fm.priority = 0;
    fm.actions = vec![OfAction::Output {
        port: port::NORMAL,
        max_len: 0,
    }];
    sw.flow_mod(&fm).unwrap();
    sw
}

fn ports_of(out: &[(u16, Vec<u8>)]) -> Vec<u16> {
    let mut p: Vec<u16> = out.iter().map(|(p, _)| *p).collect();
    p.sort();
    p
}

/// A frame with an 802.1Q tag inserted after the MAC addresses.
fn tagged(frame: &[u8], vid: u16) -> Vec<u8> {
    let mut v = frame[..12].to_vec();
    v.extend_from_slice(&[0x81, 0x00]);
    v.extend_from_slice(&vid.to_be_bytes());
    v.extend_from_slice(&frame[12..]);
    v
}

fn vid_of(frame: &[u8]) -> Option<u16> {
    (frame[12..14] == [0x81, 0x00]).then(|| u16::from_be_bytes([frame[14], frame[15]]) & 0x0fff)
}

#[test]
fn floods_unknown_then_forwards_learned() {
    let mut sw = normal_switch(3);
    let a_to_b = udp4(mac(1), mac(2), [10, 0, 0, 1], [10, 0, 0, 2], 1, 2);
    let b_to_a = udp4(mac(2), mac(1), [10, 0, 0, 2], [10, 0, 0, 1], 2, 1);
    assert_eq!(
        ports_of(&sw.send1(1, &a_to_b)),
        vec![2, 3],
        "unknown destination floods"
    );
    assert_eq!(
        ports_of(&sw.send1(2, &b_to_a)),
        vec![1],
        "A was learned on port 1"
    );
    assert_eq!(
        ports_of(&sw.send1(1, &a_to_b)),
        vec![2],
        "B was learned: the flood megaflow is gone"
    );
    assert_eq!(ports_of(&sw.send1(1, &a_to_b)), vec![2]);
    let fdb = sw.of.fdb_entries("br0").unwrap();
    let learned: Vec<(u16, [u8; 6])> = fdb.iter().map(|e| (e.port, e.mac)).collect();
    assert_eq!(learned, vec![(1, mac(1)), (2, mac(2))]);
    // Broadcast always floods; the learned source is not sent back.
    let bcast = udp4(mac(1), [0xff; 6], [10, 0, 0, 1], [10, 0, 0, 255], 1, 2);
    assert_eq!(ports_of(&sw.send1(1, &bcast)), vec![2, 3]);
}

#[test]
fn a_mac_that_moves_is_relearned() {
    let mut sw = normal_switch(3);
    let a_to_b = udp4(mac(1), mac(2), [10, 0, 0, 1], [10, 0, 0, 2], 1, 2);
    let b_to_a = udp4(mac(2), mac(1), [10, 0, 0, 2], [10, 0, 0, 1], 2, 1);
    sw.send1(1, &a_to_b);
    sw.send1(2, &b_to_a);
    assert_eq!(ports_of(&sw.send1(2, &b_to_a)), vec![1]);
    // A now speaks from port 3.
    sw.send1(3, &a_to_b);
    assert_eq!(
        ports_of(&sw.send1(2, &b_to_a)),
        vec![3],
        "traffic to A follows the move"
    );
    sw.of.fdb_flush("br0").unwrap();
    assert_eq!(
        ports_of(&sw.send1(2, &b_to_a)),
        vec![1, 3],
        "after fdb/flush the destination is unknown again"
    );
}

#[test]
fn access_vlans_separate_and_trunks_carry_tags() {
    let mut sw = normal_switch(4);
    for (name, vlan) in [
        ("p1", VlanConfig::access(10)),
        ("p2", VlanConfig::access(10)),
        ("p3", VlanConfig::access(20)),
        (
            "p4",
            VlanConfig {
                tag: None,
                trunks: vec![10, 20],
                mode: Some(VlanMode::Trunk),
            },
        ),
    ] {
        sw.of.set_port_config("br0", name, vlan, false).unwrap();
    }
    let bcast = |src: u8| udp4(mac(src), [0xff; 6], [10, 0, 0, src], [10, 0, 0, 255], 1, 2);
    let out = sw.send1(1, &bcast(1));
    assert_eq!(ports_of(&out), vec![2, 4], "VLAN 10 stays in VLAN 10");
    for (p, f) in &out {
        assert_eq!(vid_of(f), if *p == 4 { Some(10) } else { None }, "port {p}");
    }
    let out = sw.send1(3, &bcast(3));
    assert_eq!(ports_of(&out), vec![4]);
    assert_eq!(vid_of(&out[0].1), Some(20));
    // A tagged frame on an access port is dropped.
    assert!(sw.send1(1, &tagged(&bcast(1), 20)).is_empty());
    // From the trunk: VLAN 20 reaches port 3 untagged; VLAN 30 is not trunked.
    let out = sw.send1(4, &tagged(&bcast(4), 20));
    assert_eq!(ports_of(&out), vec![3]);
    assert_eq!(vid_of(&out[0].1), None);
    assert_eq!(
        out[0].1,
        bcast(4),
        "the tag is stripped and nothing else changes"
    );
    assert!(sw.send1(4, &tagged(&bcast(4), 30)).is_empty());
    // Learning is per VLAN: mac(1) learned in VLAN 10 is unknown in VLAN 20.
    let to_1_in_20 = udp4(mac(3), mac(1), [10, 0, 0, 3], [10, 0, 0, 1], 1, 2);
    assert_eq!(ports_of(&sw.send1(3, &to_1_in_20)), vec![4]);
    let to_1_in_10 = udp4(mac(2), mac(1), [10, 0, 0, 2], [10, 0, 0, 1], 1, 2);
    assert_eq!(ports_of(&sw.send1(2, &to_1_in_10)), vec![1]);
}

#[test]
fn reserved_multicast_is_not_forwarded() {
    let mut sw = normal_switch(2);
    let stp = udp4(
        mac(1),
        [0x01, 0x80, 0xc2, 0, 0, 0],
        [10, 0, 0, 1],
        [10, 0, 0, 2],
        1,
        2,
    );
    assert!(sw.send1(1, &stp).is_empty());
}
