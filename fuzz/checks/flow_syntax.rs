// The ovs-ofctl flow syntax parsers over arbitrary text: never panic, and
// whatever parses prints to text that parses back to the same value
// (flow-mods, matches, actions, dump-flows lines, groups), printing being a
// fixed point.
//
// Shared by the fuzz target (fuzz/fuzz_targets/flow_syntax.rs) and the replay of
// the corpus and crash reproducers in the crate's tests (`include!`d).
use fvs_ofproto::flow_mod::{FlowModCommand, DEFAULT_PRIORITY};
use fvs_ofproto::group::GroupModCommand;
use fvs_ofproto::syntax::*;

const COMMANDS: [FlowModCommand; 5] = [
    FlowModCommand::Add,
    FlowModCommand::Modify,
    FlowModCommand::ModifyStrict,
    FlowModCommand::Delete,
    FlowModCommand::DeleteStrict,
];

/// Runs one input; panics on a finding.
pub fn check(data: &[u8]) {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let Ok(s) = std::str::from_utf8(rest) else {
        return;
    };
    match sel % 6 {
        0 => {
            let c = COMMANDS[usize::from(sel / 6) % COMMANDS.len()];
            if let Ok(Some(fm)) = parse_flow_mod_line(s, c, None) {
                let line = format_flow_mod_line(&fm);
                let again = parse_flow_mod_line(&line, FlowModCommand::Add, None)
                    .unwrap_or_else(|e| panic!("{s:?} -> {line:?}: {e}"));
                assert_eq!(again.as_ref(), Some(&fm), "{s:?} -> {line:?}");
                assert_eq!(format_flow_mod_line(&fm), line);
                let _ = format_flow_mod(&fm);
            }
        }
        1 => {
            if let Ok((m, p)) = parse_match(s, None) {
                let p = p.unwrap_or(DEFAULT_PRIORITY);
                let printed = format_match(&m, p);
                let (m2, p2) = parse_match(&printed, None)
                    .unwrap_or_else(|e| panic!("{s:?} -> {printed:?}: {e}"));
                assert_eq!(
                    (m2, p2.unwrap_or(DEFAULT_PRIORITY)),
                    (m, p),
                    "{s:?} -> {printed:?}"
                );
                assert_eq!(format_match(&m2, p), printed);
            }
        }
        2 => {
            if let Ok(a) = parse_actions(s, None) {
                let printed = format_actions(&a);
                let again = parse_actions(&printed, None)
                    .unwrap_or_else(|e| panic!("{s:?} -> {printed:?}: {e}"));
                assert_eq!(again, a, "{s:?} -> {printed:?}");
                assert_eq!(format_actions(&again), printed);
            }
        }
        3 => {
            if let Ok(fs) = parse_flow_stats(s, None) {
                let printed = format_flow_stats(&fs, true);
                assert_eq!(
                    parse_flow_stats(&printed, None).as_ref(),
                    Ok(&fs),
                    "{s:?} -> {printed:?}"
                );
            }
        }
        4 => {
            if let Ok(g) = parse_group_mod(s, GroupModCommand::Add, None) {
                let printed = format_group(g.group_id, g.kind, &g.buckets, None);
                let again = parse_group_mod(&printed, GroupModCommand::Add, None)
                    .unwrap_or_else(|e| panic!("{s:?} -> {printed:?}: {e}"));
                assert_eq!(
                    format_group(again.group_id, again.kind, &again.buckets, None),
                    printed
                );
            }
        }
        _ => {
            let _ = parse_flow_filter(s, None);
            let _ = parse_flow_mods(s, FlowModCommand::Add, None);
        }
    }
}
