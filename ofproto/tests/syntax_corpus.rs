//! The flow corpus (tests/data/flows.txt): every line prints back unchanged
//! after parsing, and `ovs-ofctl parse-flow` prints the same flow-mod for it
//! as fvs does.

use std::process::Command;

use fvs_ofproto::flow_mod::{FlowMod, FlowModCommand};
use fvs_ofproto::syntax::{
    flow_stats_to_flow_mod, format_flow_mod, format_flow_mod_line, format_flow_stats,
    parse_flow_mod, parse_flow_stats,
};

const CORPUS: &str = include_str!("data/flows.txt");

/// The corpus lines: `dump-flows` lines start with a space.
fn corpus() -> Vec<&'static str> {
    CORPUS
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .collect()
}

fn is_dump(line: &str) -> bool {
    line.starts_with(' ')
}

/// The flow-mod a corpus line stands for.
fn flow_mod(line: &str) -> FlowMod {
    if is_dump(line) {
        flow_stats_to_flow_mod(
            &parse_flow_stats(line, None).unwrap_or_else(|e| panic!("{line:?}: {e}")),
        )
    } else {
        parse_flow_mod(line, FlowModCommand::Add, None).unwrap_or_else(|e| panic!("{line:?}: {e}"))
    }
}

#[test]
fn corpus_is_large_enough() {
    let lines = corpus();
    assert!(lines.len() >= 60, "only {} lines", lines.len());
    assert!(lines.iter().filter(|l| is_dump(l)).count() >= 8);
}

#[test]
fn corpus_round_trips_textually() {
    let mut failures = Vec::new();
    for line in corpus() {
        let printed = if is_dump(line) {
            match parse_flow_stats(line, None) {
                Ok(fs) => format_flow_stats(&fs, line.contains("duration=")),
                Err(e) => format!("error: {e}"),
            }
        } else {
            match parse_flow_mod(line, FlowModCommand::Add, None) {
                Ok(fm) => format_flow_mod_line(&fm),
                Err(e) => format!("error: {e}"),
            }
        };
        if printed != line {
            failures.push(format!("  corpus: {line:?}\n  printed: {printed:?}"));
        }
    }
    assert!(
        failures.is_empty(),
        "lines that do not round-trip:\n{}",
        failures.join("\n")
    );
}

/// The OpenFlow versions to ask `ovs-ofctl` for: it prints what it parsed
/// after encoding it for one version, and each version shows some actions
/// differently (OpenFlow 1.0 has no `goto_table` or `pop_vlan`, 1.3 turns
/// `mod_nw_src` into `set_field`, only 1.4 carries `importance`). fvs prints
/// what was written, which matches one of them.
const VERSIONS: [&[&str]; 5] = [
    &[],
    &["-O", "OpenFlow11"],
    &["-O", "OpenFlow13"],
    &["-O", "OpenFlow14"],
    &["-O", "OpenFlow15"],
];

fn ovs_ofctl_available() -> bool {
    Command::new("ovs-ofctl")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn corpus_matches_ovs_ofctl() {
    if !ovs_ofctl_available() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "ovs-ofctl is required when CI=true (apt-get install openvswitch-common)"
        );
        eprintln!("SKIPPED corpus_matches_ovs_ofctl: ovs-ofctl not found (install openvswitch-common to run it)");
        return;
    }
    let mut failures = Vec::new();
    for line in corpus() {
        let ours = format_flow_mod(&flow_mod(line));
        let mut seen = Vec::new();
        let found = VERSIONS.iter().any(|args| {
            let out = Command::new("ovs-ofctl")
                .args(*args)
                .arg("parse-flow")
                .arg(line)
                .output()
                .expect("run ovs-ofctl");
            let text = String::from_utf8_lossy(&out.stdout);
            // The flow-mod follows "OFPT_FLOW_MOD (xid=0x1): " or similar.
            let theirs = text
                .lines()
                .find_map(|l| l.split_once("): ").map(|(_, fm)| fm.to_string()));
            let ok = theirs.as_deref() == Some(ours.as_str());
            seen.push(format!(
                "    {:?}: {}",
                args,
                theirs.unwrap_or_else(|| String::from_utf8_lossy(&out.stderr).trim().to_string())
            ));
            ok
        });
        if !found {
            failures.push(format!(
                "  corpus: {line:?}\n  fvs:    {ours}\n  ovs-ofctl:\n{}",
                seen.join("\n")
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "fvs and ovs-ofctl disagree:\n{}",
        failures.join("\n")
    );
}
