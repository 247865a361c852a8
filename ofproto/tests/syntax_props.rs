//! Properties of the flow syntax: printing then parsing gives back the same
//! match, actions, flow-mod and statistics; printing is a fixed point; and
//! no input, however mangled, makes a parser panic.

use fvs_datapath::key;
use fvs_ofproto::actions::{
    port, OfAction, PacketInReason, PopVlanSyntax, SetFieldSyntax, SubField,
};
use fvs_ofproto::fields::{FieldFormat, FieldId, Maskable, FIELDS};
use fvs_ofproto::flow::Match;
use fvs_ofproto::flow_mod::{FlowMod, FlowModCommand, FlowModFlags, FlowStats, DEFAULT_PRIORITY};
use fvs_ofproto::syntax::*;
use proptest::prelude::*;
use proptest::sample::select;

fn ones(n_bits: u32) -> u128 {
    if n_bits >= 128 {
        u128::MAX
    } else {
        (1 << n_bits) - 1
    }
}

/// `dl_type`, `nw_proto` and ICMP type/code that make some fields meaningful.
fn context() -> impl Strategy<Value = Vec<(FieldId, u128)>> {
    use FieldId::*;
    let ip = |proto: Option<u8>| {
        let mut v = vec![(EthType, u128::from(key::ETH_TYPE_IP))];
        v.extend(proto.map(|p| (IpProto, u128::from(p))));
        v
    };
    let ip6 = |proto: Option<u8>| {
        let mut v = vec![(EthType, u128::from(key::ETH_TYPE_IPV6))];
        v.extend(proto.map(|p| (IpProto, u128::from(p))));
        v
    };
    prop_oneof![
        Just(vec![]),
        any::<u16>().prop_map(|t| vec![(EthType, u128::from(t))]),
        select(vec![None, Some(1), Some(6), Some(17), Some(132), Some(47)]).prop_map(ip),
        select(vec![None, Some(58), Some(6), Some(17), Some(132)]).prop_map(ip6),
        select(vec![135u128, 136, 1]).prop_map(move |t| {
            let mut v = ip6(Some(58));
            v.extend([(Icmpv6Type, t), (Icmpv6Code, 0)]);
            v
        }),
        select(vec![key::ETH_TYPE_ARP, key::ETH_TYPE_RARP])
            .prop_map(|t| vec![(EthType, u128::from(t))]),
    ]
}

/// One field setting in the shape a parser can produce.
fn setting() -> impl Strategy<Value = (FieldId, u128, u128)> {
    (0..FIELDS.len(), any::<u128>(), any::<u128>(), any::<bool>()).prop_map(|(i, v, m, exact)| {
        let f = &FIELDS[i];
        let full = f.value_mask();
        let m = match f.format {
            FieldFormat::Frag => {
                let (v, m) = [(0, 1), (1, 1), (1, 3), (3, 3), (0, 2)][(v % 5) as usize];
                return (f.id, v, m);
            }
            _ if f.maskable == Maskable::No || exact => full,
            _ => m & full,
        };
        (f.id, v & m, m)
    })
}

/// A random match in normal form (what parsing produces).
fn a_match() -> impl Strategy<Value = Match> {
    (context(), prop::collection::vec(setting(), 0..10)).prop_map(|(ctx, settings)| {
        let mut m = Match::catchall();
        for (id, v, mask) in settings {
            m.set_masked(id, v, mask);
        }
        for (id, v) in ctx {
            m.set_exact(id, v);
        }
        normalize_match(&m)
    })
}

fn writable_field() -> impl Strategy<Value = FieldId> {
    let ids: Vec<FieldId> = FIELDS
        .iter()
        .filter(|f| f.writable && !matches!(f.id, FieldId::TunTos | FieldId::TunTtl))
        .map(|f| f.id)
        .collect();
    select(ids)
}

fn a_port() -> impl Strategy<Value = u16> {
    prop_oneof![
        0u16..port::MAX,
        select(vec![
            port::IN_PORT,
            port::TABLE,
            port::NORMAL,
            port::FLOOD,
            port::ALL,
            port::LOCAL,
            port::NONE
        ]),
        port::MAX..port::IN_PORT,
    ]
}

fn pad_note(mut b: Vec<u8>) -> Vec<u8> {
    let len = ((10 + b.len()).div_ceil(8) * 8 - 10).max(6);
    b.resize(len, 0);
    b
}

/// A subfield of `field` `n` bits wide at a random offset.
fn subfield(field: FieldId, n: u32, seed: u32) -> SubField {
    let room = field.def().n_bits - n;
    SubField {
        field,
        ofs: if room == 0 { 0 } else { seed % (room + 1) },
        n_bits: n,
    }
}

/// An apply-actions action as parsing produces it.
fn an_action() -> impl Strategy<Value = OfAction> {
    let mac = any::<[u8; 6]>();
    let ip = any::<[u8; 4]>();
    prop_oneof![
        a_port().prop_map(|port| OfAction::Output { port, max_len: 0 }),
        (
            any::<u16>(),
            select(vec![
                PacketInReason::Action,
                PacketInReason::NoMatch,
                PacketInReason::InvalidTtl
            ]),
            any::<u16>()
        )
            .prop_map(|(max_len, reason, controller_id)| OfAction::Controller {
                max_len,
                reason,
                controller_id
            }),
        (0u16..4096).prop_map(|vid| OfAction::SetVlanVid { vid }),
        (0u8..8).prop_map(|pcp| OfAction::SetVlanPcp { pcp }),
        select(vec![PopVlanSyntax::StripVlan, PopVlanSyntax::PopVlan])
            .prop_map(|syntax| OfAction::PopVlan { syntax }),
        select(vec![0x8100u16, 0x88a8]).prop_map(|ethertype| OfAction::PushVlan { ethertype }),
        mac.prop_map(OfAction::SetEthSrc),
        mac.prop_map(OfAction::SetEthDst),
        ip.prop_map(OfAction::SetIpv4Src),
        ip.prop_map(OfAction::SetIpv4Dst),
        any::<u8>().prop_map(|v| OfAction::SetIpDscp(v & 0xfc)),
        (0u8..4).prop_map(OfAction::SetIpEcn),
        any::<u8>().prop_map(OfAction::SetIpTtl),
        any::<u16>().prop_map(OfAction::SetL4SrcPort),
        any::<u16>().prop_map(OfAction::SetL4DstPort),
        (
            writable_field(),
            any::<u128>(),
            any::<u128>(),
            any::<bool>()
        )
            .prop_map(|(field, v, m, exact)| {
                let f = field.def();
                let full = f.value_mask();
                let m = if exact || f.maskable == Maskable::No {
                    full
                } else {
                    (m & full).max(1) & full
                };
                let m = if m == 0 { full } else { m };
                OfAction::SetField {
                    field,
                    value: v & m,
                    mask: m,
                    syntax: SetFieldSyntax::SetField,
                }
            }),
        (writable_field(), any::<u32>(), any::<u32>(), any::<u128>()).prop_map(
            |(field, n, seed, v)| {
                let n = 1 + n % field.def().n_bits.min(64);
                let sf = subfield(field, n, seed);
                let value = (v & ones(n)) << sf.ofs & field.def().value_mask();
                OfAction::SetField {
                    field,
                    value,
                    mask: sf.mask(),
                    syntax: SetFieldSyntax::Load,
                }
            }
        ),
        (
            0..FIELDS.len(),
            writable_field(),
            any::<u32>(),
            any::<u32>(),
            any::<u32>()
        )
            .prop_map(|(i, dst, n, s1, s2)| {
                let src = FIELDS[i].id;
                let n = 1 + n % src.def().n_bits.min(dst.def().n_bits);
                OfAction::Move {
                    src: subfield(src, n, s1),
                    dst: subfield(dst, n, s2),
                }
            }),
        prop::collection::vec(any::<u16>(), 1..4)
            .prop_map(|controller_ids| OfAction::DecTtl { controller_ids }),
        (any::<u64>(), any::<bool>()).prop_map(|(tun_id, w)| OfAction::SetTunnel {
            tun_id,
            wide: w || tun_id > u64::from(u32::MAX)
        }),
        (
            prop::option::of(a_port().prop_filter("in_port", |p| *p != port::IN_PORT)),
            prop::option::of(0u8..255)
        )
            .prop_filter("one of port and table", |(p, t)| p.is_some() || t.is_some())
            .prop_map(|(port, table)| OfAction::Resubmit { port, table }),
        prop::collection::vec(any::<u8>(), 0..20).prop_map(|b| OfAction::Note(pad_note(b))),
    ]
}

/// Actions then, optionally, `write_metadata` and `goto_table` (their
/// required order).
fn actions() -> impl Strategy<Value = Vec<OfAction>> {
    (
        prop::collection::vec(an_action(), 0..6),
        prop::option::of((any::<u64>(), any::<u64>())),
        prop::option::of(any::<u8>()),
    )
        .prop_map(|(mut a, wm, goto)| {
            a.extend(wm.map(|(value, mask)| OfAction::WriteMetadata { value, mask }));
            a.extend(goto.map(OfAction::GotoTable));
            a
        })
}

/// Actions that fit any match in any table before `table`.
fn safe_actions(table: u8) -> impl Strategy<Value = Vec<OfAction>> {
    let goto = if table < 254 {
        prop::option::of(table + 1..=254).boxed()
    } else {
        Just(None).boxed()
    };
    let valid = |p: &u16| *p < port::MAX || (*p >= port::IN_PORT && *p != port::NONE);
    (
        prop::collection::vec(a_port().prop_filter("valid", valid), 0..3),
        goto,
    )
        .prop_map(|(ports, goto)| {
            let mut a: Vec<OfAction> = ports
                .into_iter()
                .map(|port| OfAction::Output { port, max_len: 0 })
                .collect();
            a.extend(goto.map(OfAction::GotoTable));
            a
        })
}

fn flags() -> impl Strategy<Value = FlowModFlags> {
    any::<[bool; 5]>().prop_map(|b| FlowModFlags {
        send_flow_rem: b[0],
        check_overlap: b[1],
        reset_counts: b[2],
        no_packet_counts: b[3],
        no_byte_counts: b[4],
    })
}

fn a_flow_mod() -> impl Strategy<Value = FlowMod> {
    let command = select(vec![
        FlowModCommand::Add,
        FlowModCommand::Modify,
        FlowModCommand::ModifyStrict,
        FlowModCommand::Delete,
        FlowModCommand::DeleteStrict,
    ]);
    (
        command,
        prop::option::of(0u8..254),
        any::<u16>(),
        a_match(),
        any::<(u64, u64, bool)>(),
        any::<[u16; 3]>(),
        flags(),
        a_port(),
    )
        .prop_flat_map(
            |(
                command,
                table_id,
                priority,
                match_,
                (cookie, cookie_mask, set_cookie),
                [idle, hard, imp],
                flags,
                out_port,
            )| {
                safe_actions(table_id.unwrap_or(0)).prop_map(move |actions| {
                    let mut fm = FlowMod {
                        table_id,
                        match_,
                        ..FlowMod::new(command)
                    };
                    let del = matches!(
                        command,
                        FlowModCommand::Delete | FlowModCommand::DeleteStrict
                    );
                    if command != FlowModCommand::Delete {
                        fm.priority = priority;
                    }
                    if del {
                        fm.out_port = out_port;
                    } else {
                        fm.actions = actions;
                        fm.idle_timeout = idle;
                        fm.hard_timeout = hard;
                        fm.flags = flags;
                    }
                    match command {
                        FlowModCommand::Add => {
                            fm.cookie = cookie;
                            fm.importance = imp;
                        }
                        _ if cookie_mask != 0 && (del || !set_cookie) => {
                            fm.cookie = cookie & cookie_mask;
                            fm.cookie_mask = cookie_mask;
                        }
                        FlowModCommand::Modify | FlowModCommand::ModifyStrict if set_cookie => {
                            fm.cookie = cookie;
                            fm.modify_cookie = true;
                        }
                        _ => {}
                    }
                    fm
                })
            },
        )
}

fn a_flow_stats() -> impl Strategy<Value = FlowStats> {
    (
        // Table 255 means "all tables" in flow syntax; no rule lives there.
        (0u8..255, any::<(u32, u16, u16, u16, u16)>()),
        any::<(u64, u64, u64, u32, u32)>(),
        0u32..1_000_000_000,
        flags(),
        a_match(),
        prop::bool::ANY,
    )
        .prop_flat_map(
            |(
                (table_id, (sec, priority, idle, hard, imp)),
                (cookie, np, nb, ia, ha),
                nsec,
                flags,
                match_,
                same_age,
            )| {
                safe_actions(table_id).prop_map(move |actions| FlowStats {
                    table_id,
                    duration_sec: sec,
                    duration_nsec: nsec,
                    priority,
                    idle_timeout: idle,
                    hard_timeout: hard,
                    flags,
                    importance: imp,
                    cookie,
                    packet_count: np,
                    byte_count: nb,
                    idle_age: ia,
                    hard_age: if same_age { sec } else { ha },
                    match_,
                    actions,
                })
            },
        )
}

/// Characters that matter to the syntax, for inputs that get further than
/// random text does.
fn syntaxy() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            select(vec![
                ",", "=", ":", "(", ")", "[", "]", "/", "->", " ", ".", "..", "-", "+", "0x", "*",
                "\"", "#", "|", "\t"
            ]),
            select(vec![
                "actions",
                "ip",
                "tcp",
                "ipv6",
                "arp",
                "in_port",
                "nw_src",
                "tp_src",
                "dl_vlan",
                "vlan_tci",
                "tcp_flags",
                "nw_frag",
                "reg0",
                "NXM_NX_REG0",
                "load",
                "move",
                "set_field",
                "resubmit",
                "note",
                "goto_table",
                "write_metadata",
                "controller",
                "output",
                "cookie",
                "table",
                "priority",
                "dec_ttl",
                "LOCAL",
                "delete",
                "1",
                "255",
                "65535",
                "4294967295",
                "ff",
                "1.2.3.4",
                "::1",
                "00:11:22:33:44:55",
                "é",
                "\u{0}",
            ]),
        ],
        0..24,
    )
    .prop_map(|v| v.concat())
}

const CORPUS: &str = include_str!("data/flows.txt");

fn corpus_line() -> impl Strategy<Value = String> {
    select(
        CORPUS
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
            .map(String::from)
            .collect::<Vec<_>>(),
    )
}

/// A corpus line with a few random edits.
fn mutated() -> impl Strategy<Value = String> {
    (
        corpus_line(),
        prop::collection::vec((any::<usize>(), any::<usize>(), syntaxy(), 0u8..3), 1..4),
    )
        .prop_map(|(line, edits)| {
            let mut chars: Vec<char> = line.chars().collect();
            for (at, len, text, op) in edits {
                let at = at % (chars.len() + 1);
                let end = (at + len % 8).min(chars.len());
                match op {
                    0 => {
                        chars.drain(at..end);
                    }
                    1 => {
                        chars.splice(at..at, text.chars());
                    }
                    _ => {
                        chars.splice(at..end, text.chars());
                    }
                }
            }
            chars.into_iter().collect()
        })
}

/// Parses `s` every way there is; whatever parses must print stably.
fn parse_everything(s: &str) {
    for c in [
        FlowModCommand::Add,
        FlowModCommand::Modify,
        FlowModCommand::ModifyStrict,
        FlowModCommand::Delete,
        FlowModCommand::DeleteStrict,
    ] {
        if let Ok(fm) = parse_flow_mod(s, c, None) {
            let line = format_flow_mod_line(&fm);
            let again = parse_flow_mod_line(&line, FlowModCommand::Add, None)
                .unwrap_or_else(|e| panic!("{s:?} -> {line:?}: {e}"));
            assert_eq!(
                again.as_ref().map(format_flow_mod_line).as_deref(),
                Some(line.as_str()),
                "{s:?}"
            );
            let _ = format_flow_mod(&fm);
        }
        let _ = parse_flow_mod_line(s, c, None);
    }
    if let Ok((m, p)) = parse_match(s, None) {
        let printed = format_match(&m, p.unwrap_or(DEFAULT_PRIORITY));
        let (m2, p2) =
            parse_match(&printed, None).unwrap_or_else(|e| panic!("{s:?} -> {printed:?}: {e}"));
        assert_eq!(
            (m2, p2.unwrap_or(DEFAULT_PRIORITY)),
            (m, p.unwrap_or(DEFAULT_PRIORITY)),
            "{s:?}"
        );
    }
    if let Ok(a) = parse_actions(s, None) {
        let printed = format_actions(&a);
        let again =
            parse_actions(&printed, None).unwrap_or_else(|e| panic!("{s:?} -> {printed:?}: {e}"));
        assert_eq!(format_actions(&again), printed, "{s:?}");
    }
    if let Ok(fs) = parse_flow_stats(s, None) {
        let printed = format_flow_stats(&fs, true);
        assert_eq!(
            parse_flow_stats(&printed, None).as_ref(),
            Ok(&fs),
            "{s:?} -> {printed:?}"
        );
    }
    let _ = parse_flow_filter(s, None);
    let _ = parse_flow_mods(s, FlowModCommand::Add, None);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn matches_round_trip(m in a_match(), priority in any::<u16>()) {
        let printed = format_match(&m, priority);
        let (parsed, p) = parse_match(&printed, None).map_err(|e| TestCaseError::fail(format!("{printed}: {e}")))?;
        prop_assert_eq!(parsed, m, "{}", printed);
        prop_assert_eq!(p.unwrap_or(DEFAULT_PRIORITY), priority);
        prop_assert_eq!(format_match(&parsed, priority), printed);
    }

    #[test]
    fn actions_round_trip(a in actions()) {
        let printed = format_actions(&a);
        let parsed = parse_actions(&printed, None).map_err(|e| TestCaseError::fail(format!("{printed}: {e}")))?;
        prop_assert_eq!(&parsed, &a, "{}", printed);
        prop_assert_eq!(format_actions(&parsed), printed);
    }

    #[test]
    fn flow_mods_round_trip(fm in a_flow_mod()) {
        let line = format_flow_mod_line(&fm);
        let parsed = parse_flow_mod_line(&line, FlowModCommand::Add, None)
            .map_err(|e| TestCaseError::fail(format!("{line}: {e}")))?;
        prop_assert_eq!(parsed.as_ref(), Some(&fm), "{}", line);
        prop_assert_eq!(format_flow_mod_line(&fm), line);
    }

    #[test]
    fn flow_stats_round_trip(fs in a_flow_stats()) {
        let printed = format_flow_stats(&fs, true);
        let parsed = parse_flow_stats(&printed, None).map_err(|e| TestCaseError::fail(format!("{printed}: {e}")))?;
        prop_assert_eq!(&parsed, &fs, "{}", printed);
        let brief = format_flow_stats(&fs, false);
        let parsed = parse_flow_stats(&brief, None).map_err(|e| TestCaseError::fail(format!("{brief}: {e}")))?;
        prop_assert_eq!(format_flow_stats(&parsed, false), brief);
    }

    #[test]
    fn arbitrary_text_never_panics(s in any::<String>()) {
        parse_everything(&s);
    }

    #[test]
    fn syntax_soup_never_panics(s in syntaxy()) {
        parse_everything(&s);
    }

    #[test]
    fn mutated_corpus_lines_never_panic(s in mutated()) {
        parse_everything(&s);
    }
}
