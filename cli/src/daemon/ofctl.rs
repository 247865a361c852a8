//! `fvs-ofctl` commands, carried out by the daemon (until the OpenFlow wire
//! protocol lands, fvs-ofctl sends them over the control socket). Output is
//! ovs-ofctl's (OVS 3.1, OpenFlow 1.0 with Nicira extensions).

use std::collections::BTreeMap;

use fvs_ofproto::actions::port;
use fvs_ofproto::flow_mod::{FlowMod, FlowModCommand, FlowStats};
use fvs_ofproto::syntax::{
    flow_stats_to_flow_mod, format_flow_mod_line, format_flow_stats_with, parse_flow_filter,
    parse_flow_mod, parse_flow_mods, PortMap, PortNames,
};

use super::Daemon;

/// Options fvs-ofctl passes along.
#[derive(Clone, Debug, Default)]
pub struct OfctlOptions {
    pub strict: bool,
    pub no_stats: bool,
    pub names: bool,
}

impl OfctlOptions {
    pub fn parse(flags: &[String]) -> OfctlOptions {
        OfctlOptions {
            strict: flags.iter().any(|f| f == "--strict"),
            no_stats: flags.iter().any(|f| f == "--no-stats"),
            names: flags.iter().any(|f| f == "--names"),
        }
    }
}

fn port_map(d: &Daemon, bridge: &str) -> Result<PortMap, String> {
    let names =
        d.of.port_names(bridge)
            .map_err(|_| format!("{bridge} is not a bridge or a socket"))?;
    Ok(names.iter().map(|(n, name)| (name.as_str(), *n)).collect())
}

fn dpid(bridge: &str) -> String {
    // Derived from the name (stable across restarts), as OVS derives it from the bridge MAC.
    let h = bridge.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
    });
    format!("{:016x}", h & 0x0000_ffff_ffff_ffff)
}

fn port_label(n: u16, name: &str) -> String {
    if n == port::LOCAL {
        format!("LOCAL({name})")
    } else {
        format!("{n}({name})")
    }
}

/// Runs one fvs-ofctl command; `args` are the words after the bridge.
pub fn run(
    d: &Daemon,
    cmd: &str,
    bridge: &str,
    args: &[String],
    opts: &OfctlOptions,
) -> Result<String, String> {
    let ports = port_map(d, bridge)?;
    let pn: Option<&dyn PortNames> = Some(&ports);
    let err = |e: &dyn std::fmt::Display| e.to_string();
    let one = |what: &str| -> Result<&String, String> {
        args.first().ok_or_else(|| {
            format!("'{cmd}' command requires at least 2 arguments ({what} missing)")
        })
    };
    match cmd {
        "show" => Ok(show(d, bridge)),
        "add-flow" => {
            let fm = parse_flow_mod(one("flow")?, FlowModCommand::Add, pn).map_err(|e| err(&e))?;
            d.of.flow_mod(bridge, &fm).map_err(|e| err(&e))?;
            Ok(String::new())
        }
        "add-flows" | "mod-flows" | "del-flows" if cmd != "del-flows" || !args.is_empty() => {
            let command = match (cmd, opts.strict) {
                ("add-flows", _) => FlowModCommand::Add,
                ("mod-flows", false) => FlowModCommand::Modify,
                ("mod-flows", true) => FlowModCommand::ModifyStrict,
                (_, false) => FlowModCommand::Delete,
                (_, true) => FlowModCommand::DeleteStrict,
            };
            let text = one("flows")?;
            let fms = if cmd == "add-flows" {
                parse_flow_mods(text, command, pn).map_err(|e| err(&e))?
            } else {
                vec![parse_flow_mod(text, command, pn).map_err(|e| err(&e))?]
            };
            d.of.flow_mods(bridge, &fms).map_err(|e| err(&e))?;
            Ok(String::new())
        }
        "del-flows" => {
            d.of.flow_mod(bridge, &FlowMod::new(FlowModCommand::Delete))
                .map_err(|e| err(&e))?;
            Ok(String::new())
        }
        "dump-flows" => {
            let filter = match args.first() {
                Some(f) => Some(parse_flow_filter(f, pn).map_err(|e| err(&e))?.to_flow_mod()),
                None => None,
            };
            let flows =
                d.of.dump_flows(bridge, filter.as_ref())
                    .map_err(|e| err(&e))?;
            let names = opts.names.then_some(&ports as &dyn PortNames);
            let mut out = String::new();
            if !opts.no_stats {
                out += "NXST_FLOW reply (xid=0x4):\n";
            }
            for f in &flows {
                out += &format_flow_stats_with(f, !opts.no_stats, names);
                out.push('\n');
            }
            Ok(out)
        }
        "dump-aggregate" => {
            let filter = match args.first() {
                Some(f) => Some(parse_flow_filter(f, pn).map_err(|e| err(&e))?.to_flow_mod()),
                None => None,
            };
            let flows =
                d.of.dump_flows(bridge, filter.as_ref())
                    .map_err(|e| err(&e))?;
            let (p, b) = flows
                .iter()
                .fold((0, 0), |(p, b), f| (p + f.packet_count, b + f.byte_count));
            Ok(format!(
                "NXST_AGGREGATE reply (xid=0x4): packet_count={p} byte_count={b} flow_count={}\n",
                flows.len()
            ))
        }
        "dump-ports" => dump_ports(d, bridge, args.first().map(String::as_str), &ports),
        "dump-tables" => Ok(dump_tables(d, bridge)?),
        "replace-flows" => {
            let wanted =
                parse_flow_mods(one("file")?, FlowModCommand::Add, pn).map_err(|e| err(&e))?;
            replace_flows(d, bridge, wanted)
        }
        "diff-flows" => {
            // args[0]: the other side's flows (a file's contents, sent by fvs-ofctl).
            let theirs =
                parse_flow_mods(one("file")?, FlowModCommand::Add, pn).map_err(|e| err(&e))?;
            let ours: Vec<FlowMod> =
                d.of.dump_flows(bridge, None)
                    .map_err(|e| err(&e))?
                    .iter()
                    .map(flow_stats_to_flow_mod)
                    .collect();
            Ok(diff_flows(&ours, &theirs))
        }
        other => Err(format!("unknown command '{other}'; use --help for help")),
    }
}

fn show(d: &Daemon, bridge: &str) -> String {
    let mut out = format!(
        "OFPT_FEATURES_REPLY (xid=0x2): dpid:{}\nn_tables:254, n_buffers:0\n\
         capabilities: FLOW_STATS TABLE_STATS PORT_STATS QUEUE_STATS ARP_MATCH_IP\n\
         actions: output enqueue set_vlan_vid set_vlan_pcp strip_vlan mod_dl_src mod_dl_dst mod_nw_src mod_nw_dst mod_nw_tos mod_tp_src mod_tp_dst\n",
        dpid(bridge)
    );
    let mut ifaces: Vec<_> = d
        .interfaces()
        .into_iter()
        .filter(|(_, b, _, _)| b == bridge)
        .collect();
    // By number, LOCAL last (as OVS lists them).
    ifaces.sort_by_key(|(_, _, n, _)| *n);
    for (name, _, n, nd) in ifaces {
        let m = nd.mac();
        let up = nd.is_up();
        out += &format!(
            " {}: addr:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}\n     config:     {}\n     state:      {}\n     current:    10GB-FD COPPER\n     speed: 10000 Mbps now, 0 Mbps max\n",
            port_label(n, &name),
            m[0], m[1], m[2], m[3], m[4], m[5],
            if up { "0" } else { "PORT_DOWN" },
            if up { "0" } else { "LINK_DOWN" },
        );
    }
    out += "OFPT_GET_CONFIG_REPLY (xid=0x4): frags=normal miss_send_len=0\n";
    out
}

fn dump_ports(
    d: &Daemon,
    bridge: &str,
    which: Option<&str>,
    ports: &PortMap,
) -> Result<String, String> {
    let mut ifaces: Vec<_> = d
        .interfaces()
        .into_iter()
        .filter(|(_, b, _, _)| b == bridge)
        .collect();
    // LOCAL first, then by number (OVS's order).
    ifaces.sort_by_key(|(_, _, n, _)| if *n == port::LOCAL { 0 } else { *n as u32 + 1 });
    if let Some(w) = which {
        let n = match w.parse::<u16>() {
            Ok(n) => n,
            Err(_) if w == "LOCAL" => port::LOCAL,
            Err(_) => ports
                .port_number(w)
                .ok_or_else(|| format!("{w}: invalid or unknown port"))?,
        };
        ifaces.retain(|(_, _, p, _)| *p == n);
    }
    let mut out = format!("OFPST_PORT reply (xid=0x2): {} ports\n", ifaces.len());
    for (_, _, n, nd) in ifaces {
        let s = nd.stats();
        let label = if n == port::LOCAL {
            "LOCAL".to_string()
        } else {
            format!("{n:>2}")
        };
        out += &format!(
            "  port {label}: rx pkts={}, bytes={}, drop={}, errs={}, frame=0, over=0, crc=0\n           tx pkts={}, bytes={}, drop={}, errs={}, coll=0\n",
            s.rx_packets, s.rx_bytes, s.rx_dropped, s.rx_errors, s.tx_packets, s.tx_bytes, s.tx_dropped, s.tx_errors
        );
    }
    Ok(out)
}

fn dump_tables(d: &Daemon, bridge: &str) -> Result<String, String> {
    let counts = d.of.table_counts(bridge).map_err(|e| e.to_string())?;
    let mut out = String::from("OFPST_TABLE reply (xid=0x2):\n");
    let mut i = 0;
    while i < counts.len().min(254) {
        // Runs of identical empty tables print as OVS does: "tables A...B: ditto".
        let j = (i + 1..counts.len().min(254))
            .find(|&j| counts[j] != 0)
            .unwrap_or(counts.len().min(254));
        out += &format!(
            "  table {i}:\n    active={}, lookup=0, matched=0\n",
            counts[i]
        );
        if i == 0 {
            out += "    max_entries=1000000\n    matching:\n      exact match or wildcard: in_port eth_{src,dst,type} vlan_{vid,pcp} ip_{src,dst} nw_{proto,tos} tcp_{src,dst}\n";
        } else {
            out += "    (same features)\n";
        }
        out.push('\n');
        if counts[i] == 0 && j > i + 2 {
            out += &format!("  tables {}...{}: ditto\n", i + 1, j - 1);
            i = j;
        } else {
            i += 1;
        }
    }
    Ok(out)
}

/// A rule's identity for replace/diff: table, priority and match.
fn identity(fm: &FlowMod) -> (u8, u16, Vec<u8>) {
    let m = &fm.match_;
    let mut k = m.flow.b.to_vec();
    k.extend_from_slice(&m.mask.b);
    (fm.table_id.unwrap_or(0), fm.priority, k)
}

fn replace_flows(d: &Daemon, bridge: &str, wanted: Vec<FlowMod>) -> Result<String, String> {
    let current: Vec<FlowStats> = d.of.dump_flows(bridge, None).map_err(|e| e.to_string())?;
    let cur: BTreeMap<_, FlowMod> = current
        .iter()
        .map(|f| {
            let fm = flow_stats_to_flow_mod(f);
            (identity(&fm), fm)
        })
        .collect();
    let want: BTreeMap<_, FlowMod> = wanted.into_iter().map(|fm| (identity(&fm), fm)).collect();
    let mut mods = Vec::new();
    for (k, fm) in &cur {
        if !want.contains_key(k) {
            let mut del = fm.clone();
            del.command = FlowModCommand::DeleteStrict;
            del.table_id = Some(fm.table_id.unwrap_or(0));
            mods.push(del);
        }
    }
    for (k, fm) in want {
        let same = cur
            .get(&k)
            .is_some_and(|c| c.actions == fm.actions && c.cookie == fm.cookie);
        if !same {
            mods.push(fm);
        }
    }
    d.of.flow_mods(bridge, &mods).map_err(|e| e.to_string())?;
    Ok(String::new())
}

/// `diff-flows`: `-` lines for flows only on the left (or changed), `+`
/// for flows only on the right (or changed).
pub fn diff_flows(left: &[FlowMod], right: &[FlowMod]) -> String {
    let l: BTreeMap<_, &FlowMod> = left.iter().map(|f| (identity(f), f)).collect();
    let r: BTreeMap<_, &FlowMod> = right.iter().map(|f| (identity(f), f)).collect();
    let mut out = String::new();
    for (k, f) in &l {
        match r.get(k) {
            Some(g) if g.actions == f.actions && g.cookie == f.cookie => {}
            _ => out += &format!("-{}\n", format_flow_mod_line(f)),
        }
        if let Some(g) = r.get(k) {
            if g.actions != f.actions || g.cookie != f.cookie {
                out += &format!("+{}\n", format_flow_mod_line(g));
            }
        }
    }
    for (k, g) in &r {
        if !l.contains_key(k) {
            out += &format!("+{}\n", format_flow_mod_line(g));
        }
    }
    out
}

/// The `ofctl` control-socket method: `[command, bridge, [flags…], [args…]]`
/// (for `diff-flows`, the args are sources: `{"bridge": B}` or `{"text": T}`).
pub fn handle(d: &Daemon, params: &[serde_json::Value]) -> Result<serde_json::Value, String> {
    use serde_json::Value;
    let bad = || "malformed ofctl request".to_string();
    let [Value::String(cmd), Value::String(bridge), Value::Array(flags), Value::Array(args)] =
        params
    else {
        return Err(bad());
    };
    let strings = |v: &[Value]| -> Result<Vec<String>, String> {
        v.iter()
            .map(|x| x.as_str().map(str::to_string).ok_or_else(bad))
            .collect()
    };
    let opts = OfctlOptions::parse(&strings(flags)?);
    if cmd == "diff-flows" {
        return diff_sources(d, args).map(Value::String);
    }
    run(d, cmd, bridge, &strings(args)?, &opts).map(Value::String)
}

fn diff_sources(d: &Daemon, sources: &[serde_json::Value]) -> Result<String, String> {
    // Port names of the first bridge named, for files that use names.
    let bridge = sources
        .iter()
        .find_map(|s| s.get("bridge").and_then(|b| b.as_str()));
    let ports = match bridge {
        Some(b) => Some(port_map(d, b)?),
        None => None,
    };
    let pn = ports.as_ref().map(|p| p as &dyn PortNames);
    let mut sides = Vec::new();
    for s in sources {
        if let Some(b) = s.get("bridge").and_then(|b| b.as_str()) {
            let flows =
                d.of.dump_flows(b, None)
                    .map_err(|_| format!("{b} is not a bridge or a socket"))?;
            sides.push(flows.iter().map(flow_stats_to_flow_mod).collect::<Vec<_>>());
        } else if let Some(t) = s.get("text").and_then(|t| t.as_str()) {
            let name = s.get("name").and_then(|n| n.as_str()).unwrap_or("-");
            let fms = parse_flow_mods(t, FlowModCommand::Add, pn).map_err(|e| {
                let e = e.to_string();
                match e.strip_prefix("line ").and_then(|r| r.split_once(": ")) {
                    Some((n, msg)) => format!("{name}:{n}: {msg}"),
                    None => e,
                }
            })?;
            sides.push(fms);
        } else {
            return Err("malformed ofctl request".into());
        }
    }
    let [left, right] = sides.as_slice() else {
        return Err("'diff-flows' command requires 2 arguments".into());
    };
    Ok(diff_flows(left, right))
}
