//! The OpenFlow codec (`fvs_ofproto::ofp`) fuzzed: random and mutated
//! messages never panic the decoder, and whatever decodes re-encodes to
//! bytes that decode to the same message (a fixed point after one round).
//! Valid messages of every kind the switch receives round-trip exactly.

use fvs_ofproto::flow_mod::FlowModCommand;
use fvs_ofproto::group::GroupModCommand;
use fvs_ofproto::ofp::msg::{
    self, FlowModMsg, FlowStatsRequest, GroupModMsg, PacketOutMsg, PortModMsg, RoleMsg,
    StatsRequest, SwitchConfig,
};
use fvs_ofproto::ofp::{decode, encode_all, Frame, Msg, OfpErr, OFP10, OFP13};
use fvs_ofproto::syntax::{parse_actions, parse_flow_mod, parse_group_mod};
use proptest::prelude::*;

const FLOWS: &[&str] = &[
    "priority=100,ip,nw_dst=10.0.0.1,actions=output:1",
    "in_port=2,dl_src=00:11:22:33:44:55,dl_vlan=10,actions=strip_vlan,output:3",
    "tcp,tp_dst=80,nw_src=192.168.0.0/16,actions=mod_nw_tos:8,mod_tp_dst:8080,output:1",
    "udp,udp_src=53,actions=CONTROLLER:128",
    "arp,arp_tpa=10.0.0.2,actions=NORMAL",
    "ipv6,ipv6_dst=fe80::1,actions=drop",
    "cookie=0x5,table=1,idle_timeout=10,hard_timeout=20,icmp,actions=set_field:00:00:00:00:00:01->eth_dst,output:in_port",
    "dl_type=0x0800,nw_proto=17,actions=push_vlan:0x8100,mod_vlan_vid:100,output:4",
    "metadata=0x1/0xff,actions=write_metadata:0x2/0xff,goto_table:2",
    "actions=group:1",
    "ip,actions=dec_ttl,output:1,output:2",
    "send_flow_rem,check_overlap,reset_counts,priority=7,actions=FLOOD",
    "tcp,tcp_flags=+syn,actions=clear_actions,write_actions(output:1)",
];

const GROUPS: &[&str] = &[
    "group_id=1,type=all,bucket=output:1,bucket=output:2",
    "group_id=2,type=select,bucket=weight:10,output:1,bucket=weight:20,output:2",
    "group_id=3,type=indirect,bucket=output:3",
    "group_id=4,type=fast_failover,bucket=watch_port:1,output:1,bucket=watch_port:2,output:2",
];

/// Messages a switch receives, in every encoding fvs speaks (built once).
fn seeds() -> &'static [Vec<u8>] {
    static SEEDS: std::sync::OnceLock<Vec<Vec<u8>>> = std::sync::OnceLock::new();
    SEEDS.get_or_init(build_seeds)
}

fn build_seeds() -> Vec<Vec<u8>> {
    let mut msgs: Vec<(u8, Msg)> = Vec::new();
    for v in [OFP10, OFP13] {
        msgs.push((
            v,
            Msg::Hello {
                bitmap: 1 << OFP10 | 1 << OFP13,
            },
        ));
        msgs.push((v, Msg::EchoRequest(b"ping".to_vec())));
        msgs.push((v, Msg::FeaturesRequest));
        msgs.push((v, Msg::GetConfigRequest));
        msgs.push((
            v,
            Msg::SetConfig(SwitchConfig {
                flags: 0,
                miss_send_len: 128,
            }),
        ));
        msgs.push((v, Msg::BarrierRequest));
        msgs.push((
            v,
            Msg::PortMod(PortModMsg {
                port_no: 1,
                hw_addr: [0, 1, 2, 3, 4, 5],
                config: 1,
                mask: 1,
                advertise: 0,
            }),
        ));
        msgs.push((
            v,
            Msg::PacketOut(PacketOutMsg {
                buffer_id: 0xffff_ffff,
                in_port: 1,
                actions: parse_actions("output:2,output:TABLE", None).expect("actions"),
                data: vec![0xff; 60],
            }),
        ));
        for body in [
            StatsRequest::Desc,
            StatsRequest::Table,
            StatsRequest::Port(0xffff),
            StatsRequest::Flow(FlowStatsRequest::all(v == OFP10)),
            StatsRequest::Aggregate(FlowStatsRequest::all(false)),
        ] {
            msgs.push((v, Msg::StatsRequest { flags: 0, body }));
        }
        for (i, f) in FLOWS.iter().enumerate() {
            let cmd = [
                FlowModCommand::Add,
                FlowModCommand::Modify,
                FlowModCommand::ModifyStrict,
            ][i % 3];
            let fm = parse_flow_mod(f, cmd, None).expect(f);
            for nxm in [false, true] {
                if nxm && v != OFP10 {
                    continue;
                }
                msgs.push((
                    v,
                    Msg::FlowMod(FlowModMsg {
                        fm: fm.clone(),
                        buffer_id: msg::NO_BUFFER,
                        table_in_command: 0,
                        nxm,
                    }),
                ));
            }
        }
    }
    for body in [
        StatsRequest::PortDesc,
        StatsRequest::GroupDesc,
        StatsRequest::Group(0xffff_fffc),
        StatsRequest::GroupFeatures,
        StatsRequest::TableFeatures(Vec::new()),
    ] {
        msgs.push((OFP13, Msg::StatsRequest { flags: 0, body }));
    }
    msgs.push((
        OFP13,
        Msg::RoleRequest(RoleMsg {
            role: 2,
            generation_id: 7,
        }),
    ));
    msgs.push((OFP13, Msg::GetAsyncRequest));
    for g in GROUPS {
        let gm = parse_group_mod(g, GroupModCommand::Add, None).expect(g);
        msgs.push((
            OFP13,
            Msg::GroupMod(GroupModMsg {
                command: gm.command,
                kind: gm.kind,
                group_id: gm.group_id,
                buckets: gm.buckets,
            }),
        ));
    }
    let mut out = Vec::new();
    for (i, (v, m)) in msgs.iter().enumerate() {
        match encode_all(*v, i as u32, m) {
            Ok(frames) => out.extend(frames),
            // Some flows need NXM in OpenFlow 1.0 (e.g. IPv6): fine.
            Err(_) if *v == OFP10 => {}
            Err(e) => panic!("encode {m:?}: {e:?}"),
        }
    }
    assert!(out.len() > 60, "few seeds: {}", out.len());
    out
}

/// decode → encode → decode gives the same message (when the message can
/// be sent at all: requests a switch only receives may not be encodable).
fn check_fixed_point(bytes: &[u8]) -> Result<(), TestCaseError> {
    let Ok(f) = decode(bytes) else {
        return Ok(());
    };
    let Ok(frames) = encode_all(f.version, f.xid, &f.msg) else {
        return Ok(());
    };
    if frames.len() != 1 {
        return Ok(());
    }
    let again = decode(&frames[0]);
    prop_assert_eq!(
        again.as_ref(),
        Ok(&f),
        "re-encoded {:02x?} from {:02x?}",
        &frames[0],
        bytes
    );
    Ok(())
}

#[test]
fn valid_messages_round_trip_exactly() {
    for (i, s) in seeds().iter().enumerate() {
        let f: Frame = decode(s).unwrap_or_else(|e| panic!("seed {i} {s:02x?}: {e:?}"));
        let back = encode_all(f.version, f.xid, &f.msg).expect("re-encode");
        assert_eq!(back.len(), 1);
        assert_eq!(&back[0], s, "seed {i}: {:?}", f.msg);
    }
}

#[test]
fn wrong_lengths_are_bad_len() {
    for s in seeds().iter() {
        // One byte cut off (with the header's length adjusted) or added.
        let mut cut = s[..s.len() - 1].to_vec();
        let n = cut.len() as u16;
        cut[2..4].copy_from_slice(&n.to_be_bytes());
        if let Err(e) = decode(&cut) {
            assert_ne!(e, OfpErr::BadType, "{cut:02x?}");
        }
        // The header's length disagreeing with the bytes is always BAD_LEN.
        let mut longer = s.clone();
        longer.push(0);
        assert_eq!(decode(&longer[..s.len()]).is_ok(), decode(s).is_ok());
        let mut lie = s.clone();
        lie[2..4].copy_from_slice(&(s.len() as u16 + 8).to_be_bytes());
        assert_eq!(decode(&lie), Err(OfpErr::BadLen));
        assert_eq!(decode(&longer), Err(OfpErr::BadLen));
    }
}

fn mutate(seed: &[u8], ops: &[(u8, usize, u8)]) -> Vec<u8> {
    let mut b = seed.to_vec();
    for &(op, at, val) in ops {
        if b.is_empty() {
            b.push(val);
            continue;
        }
        let i = at % b.len();
        match op % 6 {
            0 => b[i] = val,
            1 => b[i] ^= 1 << (val % 8),
            2 => b.truncate(i.max(8)),
            3 => b.insert(i, val),
            // A length field somewhere inside: big-endian u16 overwrite.
            4 if i + 1 < b.len() => b[i..i + 2].copy_from_slice(&(val as u16 * 4).to_be_bytes()),
            _ => b.extend(std::iter::repeat_n(val, (at % 24) + 1)),
        }
    }
    b
}

/// Fixes the header's length so that the body's own fields are tested.
fn fix_len(mut b: Vec<u8>) -> Vec<u8> {
    if b.len() >= 4 {
        let n = b.len().min(0xffff) as u16;
        b.truncate(n as usize);
        b[2..4].copy_from_slice(&n.to_be_bytes());
    }
    b
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 20000, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(
        version in prop_oneof![Just(OFP10), Just(OFP13), any::<u8>()],
        msg_type in any::<u8>(),
        body in proptest::collection::vec(any::<u8>(), 0..300),
    ) {
        let mut b = vec![version, msg_type, 0, 0, 0, 0, 0, 1];
        b.extend_from_slice(&body);
        let b = fix_len(b);
        let _ = msg::frame_len(&b);
        check_fixed_point(&b)?;
        // Unframed garbage too.
        let _ = decode(&body);
        let _ = msg::frame_len(&body);
    }

    #[test]
    fn mutated_messages_never_panic(
        pick in any::<usize>(),
        ops in proptest::collection::vec((any::<u8>(), any::<usize>(), any::<u8>()), 1..6),
        keep_len in any::<bool>(),
    ) {
        let seeds = seeds();
        let seed = &seeds[pick % seeds.len()];
        let m = mutate(seed, &ops);
        let m = if keep_len { m } else { fix_len(m) };
        let _ = msg::frame_len(&m);
        check_fixed_point(&m)?;
    }
}
