// The OpenFlow 1.0/1.3 decoder over arbitrary messages: never panics, and
// what decodes re-encodes to a message that decodes equal (the codec's
// promise, `ofproto/tests/ofp_codec.rs`), whose re-encoding is then
// byte-for-byte stable.
//
// Shared by the fuzz target (fuzz/fuzz_targets/ofp_decode.rs) and the replay of
// the corpus and crash reproducers in the crate's tests (`include!`d).
use fvs_ofproto::fields::FieldId;
use fvs_ofproto::flow::Match;
use fvs_ofproto::flow_mod::FlowModCommand;
use fvs_ofproto::ofp::msg::frame_len;
use fvs_ofproto::ofp::msg::{StatsReply, StatsRequest};
use fvs_ofproto::ofp::{decode, encode_all, Frame, Msg, OFP10};

fn check_frame(bytes: &[u8]) {
    let Ok(f) = decode(bytes) else {
        return;
    };
    let Ok(frames) = encode_all(f.version, f.xid, &f.msg) else {
        return;
    };
    for fr in &frames {
        assert_eq!(
            frame_len(fr),
            Some(Ok(fr.len())),
            "framing of our own message"
        );
    }
    if frames.len() != 1 {
        return;
    }
    let again = decode(&frames[0]).unwrap_or_else(|e| {
        panic!(
            "re-encoded {:02x?} of {:?} does not decode: {e:?}",
            frames[0], f.msg
        )
    });
    assert_eq!(
        again,
        as_sent(f),
        "re-encoded {:02x?} from {bytes:02x?}",
        frames[0]
    );
    let twice = encode_all(again.version, again.xid, &again.msg).expect("encodes again");
    assert_eq!(twice, frames, "encoding is not a fixed point");
}

/// `f` as its encoding says it. Where the codec does not promise a round
/// trip: an OpenFlow 1.3 add or modify for table 255 ("all
/// tables", decoded as no table) goes out for table 0, as OVS's
/// `ofputil_encode_flow_mod()` sends it (only deletes keep 255).
fn as_sent(mut f: Frame) -> Frame {
    if f.version != OFP10 {
        if let Msg::FlowMod(m) = &mut f.msg {
            if !matches!(
                m.fm.command,
                FlowModCommand::Delete | FlowModCommand::DeleteStrict
            ) && m.fm.table_id.is_none()
            {
                m.fm.table_id = Some(0);
            }
        }
    }
    // OXM says "no VLAN tag" one way (OFPVID_NONE, decoded 0x0000/0x1fff,
    // as OVS decodes it); any other mask selecting the same untagged
    // packets (e.g. NXM_OF_VLAN_TCI 0x0000/0xffff) goes out that way.
    if f.version != OFP10 {
        for m in matches(&mut f.msg) {
            let (tci, mask) = m.get(FieldId::VlanTci);
            if mask & 0x1000 != 0 && tci & mask == 0 {
                m.set_masked(FieldId::VlanTci, 0, 0x1fff);
            }
        }
    }
    // Nicira flow statistics carry the ages in 16 bits (seconds plus one),
    // saturating as OVS's do.
    if let Msg::StatsReply {
        body: StatsReply::Flow { nxm: true, flows },
        ..
    } = &mut f.msg
    {
        for fs in flows {
            fs.idle_age = fs.idle_age.min(0xfffe);
            fs.hard_age = fs.hard_age.min(0xfffe);
        }
    }
    f
}

/// The matches a message carries.
fn matches(msg: &mut Msg) -> Vec<&mut Match> {
    match msg {
        Msg::PacketIn(p) => vec![&mut p.match_],
        Msg::FlowRemoved(r) => vec![&mut r.match_],
        Msg::FlowMod(m) => vec![&mut m.fm.match_],
        Msg::StatsRequest {
            body: StatsRequest::Flow(r) | StatsRequest::Aggregate(r),
            ..
        } => vec![&mut r.match_],
        Msg::StatsReply {
            body: StatsReply::Flow { flows, .. },
            ..
        } => flows.iter_mut().map(|f| &mut f.match_).collect(),
        _ => Vec::new(),
    }
}

/// Runs one input; panics on a finding.
pub fn check(data: &[u8]) {
    // As the connection frames the stream.
    let _ = frame_len(data);
    check_frame(data);
    // With the header's length set right, so that the body gets parsed.
    if (8..=usize::from(u16::MAX)).contains(&data.len()) {
        let mut b = data.to_vec();
        let n = b.len() as u16;
        b[2..4].copy_from_slice(&n.to_be_bytes());
        check_frame(&b);
    }
}
