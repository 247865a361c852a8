//! fvs-vsctl against the real thing: every step runs on an ovsdb-server
//! through ovs-vsctl 3.1 and, from the same database contents (same UUIDs),
//! through fvs-vsctl; stdout, stderr and exit status must match, and so
//! must the databases afterwards. Fails under CI=true if OVS is missing.

mod common;

use common::{canonical, words, OvsDb};
use fvs_cli::db::Data;
use fvs_cli::vsctl;

#[derive(Clone, Copy, PartialEq)]
enum Cmp {
    /// Byte for byte.
    Exact,
    /// The same records or lines, in any order (OVS lists rows in hash order).
    Unordered,
    /// UUIDs of rows made by this step differ by nature: mask every UUID.
    Masked,
}

use Cmp::*;

/// `{uuid:Table:name}` and `{prefix:Table:name}` become the row's UUID or
/// its first 8 characters.
fn substitute(line: &str, data: &Data) -> String {
    let mut out = line.to_string();
    while let Some(start) = out.find('{') {
        let Some(len) = out[start..].find('}') else {
            break;
        };
        let spec = out[start + 1..start + len].to_string();
        let parts: Vec<&str> = spec.split(':').collect();
        let [kind @ ("uuid" | "prefix"), table, name] = parts.as_slice() else {
            break;
        };
        let (u, _) = data.find_by_name(table, name).expect("row to substitute");
        let mut s = u.to_string();
        if *kind == "prefix" {
            s.truncate(8);
        }
        out.replace_range(start..=start + len, &s);
    }
    out
}

fn mask_uuids(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = String::new();
    let mut i = 0;
    while i < s.len() {
        if i + 36 <= s.len()
            && s.is_char_boundary(i + 36)
            && fvs_cli::db::Uuid::parse(&s[i..i + 36]).is_some()
        {
            out += "<uuid>";
            i += 36;
        } else {
            let c = s[i..].chars().next().unwrap_or(' ');
            out.push(c);
            i += c.len_utf8();
        }
        let _ = b;
    }
    out
}

fn normalize(s: &str, cmp: Cmp) -> String {
    match cmp {
        Exact => s.to_string(),
        Masked => mask_uuids(s),
        Unordered => {
            // Records of list format are separated by blank lines; table and
            // csv output is one row per line.
            let list_format = s
                .lines()
                .next()
                .is_some_and(|l| l.get(20..22) == Some(": "));
            let mut blocks: Vec<String> = if list_format || s.contains("\n\n") {
                s.split("\n\n").map(|b| b.trim_end().to_string()).collect()
            } else {
                s.lines().map(String::from).collect()
            };
            blocks.sort();
            blocks.join("\n--\n")
        }
    }
}

/// OVS's stderr as fvs prints it: `ovs-vsctl:` becomes `fvs-vsctl:`, and
/// log-format warnings become `warning: MESSAGE`.
fn ovs_stderr(s: &str) -> String {
    s.lines()
        // ovs-vsctl logs a failed transaction and then reports it again.
        .filter(|l| !l.contains("|ovsdb_idl|WARN|transaction error"))
        .map(|l| {
            if let Some(rest) = l.strip_prefix("ovs-vsctl: ") {
                format!("fvs-vsctl: {rest}")
            } else if let Some(pos) = l.find("|WARN|") {
                format!("warning: {}", &l[pos + 6..])
            } else {
                l.to_string()
            }
        })
        .map(|l| l + "\n")
        .collect()
}

fn scenario(name: &str, steps: &[(&str, Cmp)]) {
    if !common::ovs_available(name) {
        return;
    }
    let srv = OvsDb::start();
    let mut failures = Vec::new();
    for (line, cmp) in steps {
        let pre = srv.dump();
        let line = substitute(line, &pre);
        let (o_out, o_err, o_code) = srv.vsctl(&line);
        let mut ours = pre.clone();
        let mut args = vec!["--no-wait".to_string()];
        args.extend(words(&line));
        let mut early = String::new();
        let result = vsctl::parse(&args).and_then(|inv| {
            early = inv
                .warnings
                .iter()
                .map(|w| format!("warning: {w}\n"))
                .collect();
            vsctl::execute(&inv, &pre)
        });
        let (f_out, f_err, f_code) = match result {
            Ok(e) => {
                if let Some(txn) = &e.txn {
                    ours.apply(txn).expect("validated transaction applies");
                }
                let warnings: String = e
                    .warnings
                    .iter()
                    .map(|w| format!("warning: {w}\n"))
                    .collect();
                (e.output, early + &warnings, e.exit_status)
            }
            Err(e) => (
                String::new(),
                format!("{early}fvs-vsctl: {e}\n"),
                e.exit_status(),
            ),
        };
        let o_err = ovs_stderr(&o_err);
        if normalize(&o_out, *cmp) != normalize(&f_out, *cmp) {
            failures.push(format!(
                "{name}: `{line}` stdout\n--- ovs-vsctl\n{o_out}--- fvs-vsctl\n{f_out}"
            ));
        }
        if normalize(&o_err, Masked) != normalize(&f_err, Masked) || o_code != f_code {
            failures.push(format!(
                "{name}: `{line}` stderr/status\n--- ovs-vsctl ({o_code})\n{o_err}--- fvs-vsctl ({f_code})\n{f_err}"
            ));
        }
        let post = srv.dump();
        if canonical(&post) != canonical(&ours) {
            failures.push(format!(
                "{name}: `{line}` database differs\n--- ovs\n{:#}\n--- fvs\n{:#}",
                canonical(&post),
                canonical(&ours)
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} mismatches:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

#[test]
fn bridges_and_ports() {
    scenario(
        "bridges_and_ports",
        &[
            ("add-br br0", Exact),
            ("add-br br0", Exact),
            ("--may-exist add-br br0", Exact),
            ("add-br ''", Exact),
            ("show", Exact),
            ("list-br", Exact),
            ("br-exists br0", Exact),
            ("br-exists nobr", Exact),
            ("add-port br0 p1", Exact),
            ("add-port br0 p1", Exact),
            ("add-port nobr p9", Exact),
            (
                "add-port br0 p2 tag=10 -- set Interface p2 type=internal",
                Exact,
            ),
            ("add-port br0 br0", Exact),
            ("add-port br0 p3 nocolumn=1", Exact),
            ("add-port br0 p3 tag=9999", Exact),
            ("list-ports br0", Exact),
            ("list-ifaces br0", Exact),
            ("port-to-br p1", Exact),
            ("iface-to-br p2", Exact),
            ("port-to-br nope", Exact),
            ("iface-to-br br0", Exact),
            ("set Bridge br0 datapath_type=netdev", Exact),
            (
                "set Interface p1 type=dpdk options:dpdk-devargs=net_af_packet0,iface=veth1",
                Exact,
            ),
            ("show", Exact),
            ("list Bridge br0", Exact),
            ("list Port p2", Exact),
            ("list Interface p1", Exact),
            ("get Interface p1 options", Exact),
            ("get Interface p1 options:dpdk-devargs", Exact),
            ("get Interface p1 options:nope", Exact),
            ("--if-exists get Interface p1 options:nope", Exact),
            ("get Interface p1 name:x", Exact),
            ("get Interface p1 foo", Exact),
            ("get Port p2 tag trunks name _uuid", Exact),
            ("list foo", Exact),
            ("list Bridge nobr", Exact),
            ("--if-exists list Bridge nobr", Exact),
            ("set Port p2 tag=5000", Exact),
            ("set Port p2 vlan_mode=foo", Exact),
            ("set Interface p1 ofport_request=abc", Exact),
            ("set Interface p1 ofport_request=0", Exact),
            ("set Bridge br0 name=x", Exact),
            ("set Interface p1 type", Exact),
            ("set Interface p1 mtu_request=9000 ofport_request=7", Exact),
            ("find Interface type=dpdk", Unordered),
            ("find Port tag=10", Unordered),
            ("find Port tag>5", Unordered),
            ("find Interface name=p1 type=internal", Unordered),
            (
                "--columns=name,ofport_request find Interface type=dpdk",
                Exact,
            ),
            ("--columns=name list Interface", Unordered),
            ("--format=json list Bridge br0", Exact),
            (
                "--format=json --columns=name,options,_uuid find Interface type=dpdk",
                Exact,
            ),
            ("--format=table --columns=name,tag list Port", Unordered),
            (
                "--bare --columns=name find Interface type=internal",
                Unordered,
            ),
            ("br-set-external-id br0 k v", Exact),
            ("br-get-external-id br0", Exact),
            ("br-get-external-id br0 k", Exact),
            ("br-set-external-id br0 k", Exact),
            ("br-get-external-id br0", Exact),
            ("del-port br0 p1", Exact),
            ("del-port br0 p1", Exact),
            ("--if-exists del-port br0 p1", Exact),
            ("del-port br0", Exact),
            ("del-port nobr p2", Exact),
            ("del-port p2", Exact),
            ("del-br nobr", Exact),
            ("--if-exists del-br nobr", Exact),
            ("add-br br1 -- add-port br1 q1 -- add-port br1 q1", Exact),
            ("add-br br1 -- add-port br1 q1 -- br-exists nobr", Exact),
            ("del-br br0", Exact),
            ("show", Exact),
            ("list-br", Exact),
        ],
    );
}

#[test]
fn database_commands() {
    scenario(
        "database_commands",
        &[
            ("add-br br0", Exact),
            ("set Bridge br0 other_config:a=1 'other_config:b=\"x y\"'", Exact),
            ("add Bridge br0 other_config c=3 a=9", Exact),
            ("get Bridge br0 other_config", Exact),
            ("remove Bridge br0 other_config a", Exact),
            ("remove Bridge br0 other_config 'b=\"x y\"'", Exact),
            ("remove Bridge br0 other_config c=4", Exact),
            ("get Bridge br0 other_config", Exact),
            ("clear Bridge br0 other_config", Exact),
            ("set Bridge br0 flood_vlans=1-3,7", Exact),
            ("add Bridge br0 flood_vlans 10 11-12", Exact),
            ("remove Bridge br0 flood_vlans 2 11", Exact),
            ("get Bridge br0 flood_vlans", Exact),
            ("add Bridge br0 flood_vlans []", Exact),
            ("add Bridge br0 nocol 1", Exact),
            ("set Bridge br0 protocols=OpenFlow10,OpenFlow13", Exact),
            ("set Bridge br0 protocols=OpenFlow99", Exact),
            ("clear Port br0 interfaces", Exact),
            ("clear Bridge br0 name", Exact),
            ("clear Bridge br0 stp_enable", Exact),
            ("remove Port br0 interfaces {uuid:Interface:br0}", Exact),
            ("set-controller br0 tcp:127.0.0.1:6653 ptcp:6654", Exact),
            ("get-controller br0", Exact),
            ("show", Exact),
            ("list Controller", Unordered),
            ("get Controller br0 target", Exact),
            ("del-controller br0", Exact),
            ("list Controller", Exact),
            ("set-fail-mode br0 secure", Exact),
            ("get-fail-mode br0", Exact),
            ("set-fail-mode br0 bogus", Exact),
            ("del-fail-mode br0", Exact),
            ("get-fail-mode br0", Exact),
            ("-- --id=@c create Controller target=tcp:1.1.1.1:6653 -- set Bridge br0 controller=@c", Masked),
            ("get Controller br0 target", Exact),
            ("list Controller br0", Exact),
            ("set Controller br0 is_connected=true role=master", Exact),
            ("show", Exact),
            ("destroy Controller br0", Exact),
            ("get Controller br0 target", Exact),
            ("clear Bridge br0 controller", Exact),
            ("list Controller", Exact),
            ("create Manager target=ptcp:6640", Masked),
            ("list Manager", Exact),
            ("-- --id=@m create Manager target=ptcp:6640 -- add Open_vSwitch . manager_options @m", Masked),
            ("get-manager", Exact),
            ("set Manager ptcp:6640 inactivity_probe=5000 is_connected=true", Exact),
            ("list Manager ptcp:6640", Exact),
            ("show", Exact),
            ("del-manager", Exact),
            ("set-manager ptcp:6641 punix:/tmp/x", Exact),
            ("-- --inactivity-probe=3000 set-controller br0 tcp:1.2.3.4:6653", Exact),
            ("--columns=target,inactivity_probe list Controller", Exact),
            ("set Interface br0 bfd_status:state=up error=oops", Exact),
            ("show", Exact),
            ("get-manager", Exact),
            ("set Open_vSwitch . external_ids:system-id=host1 other_config:dpdk-init=true", Exact),
            ("get Open_vSwitch . external_ids:system-id other_config", Exact),
            ("set Open_vSwitch . ovs_version=3.1.0", Exact),
            ("list Open_vSwitch", Exact),
            ("show", Exact),
            ("-- --id=@foo create Bridge name=x", Masked),
            ("set Bridge br0 mirrors=@foo", Exact),
            ("--id=foo create Bridge name=y", Exact),
            ("-- --id=foo create Bridge name=y", Exact),
            ("-- --id=@a create Bridge name=y -- --id=@a create Bridge name=z", Exact),
            ("set Bridge br0 netflow=12345678-1234-1234-1234-123456789abc", Exact),
            ("-- --id=@b create Bridge name=br0 -- add Open_vSwitch . bridges @b", Masked),
            ("-- --id=@b get Bridge br0 -- set Open_vSwitch . bridges=@b", Exact),
            ("--if-exists --id=@b get Bridge br0", Exact),
            ("destroy Bridge", Exact),
            ("--all destroy Manager x", Exact),
            ("--all destroy Manager", Exact),
            ("get-manager", Exact),
            ("wait-until Bridge br0 datapath_type=\"\"", Exact),
            ("set-ssl /k /c /ca", Exact),
            ("get-ssl", Exact),
            ("del-ssl", Exact),
            ("add-aa-mapping br0 100 10", Exact),
            ("add-aa-mapping br0 200 20 -- add-aa-mapping br0 100 30", Exact),
            ("get-aa-mapping br0", Exact),
            ("add-aa-mapping br0 abc 1", Exact),
            ("add-aa-mapping br0 5 5000", Exact),
            ("add-aa-mapping nobr 5 5", Exact),
            ("del-aa-mapping br0 100 20", Exact),
            ("get-aa-mapping br0", Exact),
            ("del-aa-mapping br0 200 20", Exact),
            ("list AutoAttach", Exact),
            ("emer-reset", Exact),
            ("list Open_vSwitch", Exact),
        ],
    );
}

#[test]
fn fake_bridges_and_bonds() {
    scenario(
        "fake_bridges_and_bonds",
        &[
            ("add-br br0", Exact),
            ("add-br br1 br0 10", Exact),
            ("add-br br1 br0 11", Exact),
            ("add-br br6 br0 10", Exact),
            ("--may-exist add-br br1 br0 10", Exact),
            ("--may-exist add-br br1 br0 11", Exact),
            ("--may-exist add-br br1", Exact),
            ("--may-exist add-br br0 br1 5", Exact),
            ("add-br br2 br1 5", Exact),
            ("add-br br3 nobr 5", Exact),
            ("add-br br4 br0 99999", Exact),
            ("add-br br5 br0", Exact),
            ("list-br", Exact),
            ("--fake list-br", Exact),
            ("--real list-br", Exact),
            ("br-to-vlan br1", Exact),
            ("br-to-vlan br0", Exact),
            ("br-to-parent br1", Exact),
            ("br-to-parent br0", Exact),
            ("add-port br1 p1", Exact),
            ("list-ports br1", Exact),
            ("list-ports br0", Exact),
            ("port-to-br p1", Exact),
            ("show", Exact),
            ("br-set-external-id br1 foo bar", Exact),
            ("br-get-external-id br1", Exact),
            ("br-get-external-id br1 foo", Exact),
            ("list Port br1", Exact),
            ("del-port br0 p1", Exact),
            ("set-fail-mode br1 secure", Exact),
            ("get-fail-mode br1", Exact),
            ("set-controller br1 tcp:1.2.3.4:6653", Exact),
            ("get-controller br1", Exact),
            ("add-bond br0 bond0 e1 e2 bond_mode=balance-slb", Exact),
            ("add-bond br0 bond1 e3", Exact),
            ("list-ifaces br0", Exact),
            ("--may-exist add-port br0 bond0", Exact),
            ("--may-exist add-bond br0 bond0 e2 e1", Exact),
            ("--may-exist add-port br1 bond0", Exact),
            ("add-bond-iface bond0 e4", Exact),
            ("--may-exist add-bond-iface bond0 e4", Exact),
            ("--may-exist add-bond-iface bond0 p1", Exact),
            ("del-bond-iface bond0 e4", Exact),
            ("del-bond-iface e1", Exact),
            ("del-bond-iface e2", Exact),
            ("iface-to-br e2", Exact),
            ("del-port e2", Exact),
            ("--with-iface del-port e2", Exact),
            ("del-br br1", Exact),
            ("show", Exact),
            ("add-br br1 br0 10 -- add-port br1 p5 -- del-br br1", Exact),
            ("del-br br0", Exact),
            ("show", Exact),
        ],
    );
}

#[test]
fn values_conditions_and_formats() {
    scenario(
        "values_conditions_and_formats",
        &[
            ("add-br br0", Exact),
            ("add-port br0 p1 trunks=1,2,3 other_config:k=v", Exact),
            ("set Port p1 'external_ids={a=b,c=\"d e\"}'", Exact),
            ("get Port p1 external_ids", Exact),
            ("set Port p1 'external_ids=[a=b]'", Exact),
            ("set Port p1 'external_ids={a=b'", Exact),
            ("set Port p1 'external_ids={a=b}x'", Exact),
            ("set Port p1 'external_ids={a}'", Exact),
            ("set Port p1 'external_ids={a=b,a=c}'", Exact),
            ("set Port p1 'external_ids={a'", Exact),
            ("set Port p1 external_ids=a", Exact),
            ("set Port p1 'external_ids:k=\"\\u+123\"'", Exact),
            ("set Port p1 'external_ids:k=\"\\u+000\"'", Exact),
            ("set Port p1 'external_ids={a=b c=d}'", Exact),
            ("set Port p1 external_ids=", Exact),
            ("set Port p1 'external_ids:k=\"\"'", Exact),
            ("set Port p1 'external_ids:\"k k\"=v'", Exact),
            ("set Port p1 'external_ids:k\\=x=v\\,w'", Exact),
            ("set Port p1 external_ids:x=é", Exact),
            ("set Port p1 'external_ids:ctl=\"a\\u0001b\\tc\"'", Exact),
            ("get Port p1 external_ids", Exact),
            ("set Port p1 'external_ids:k=\"a\\\"'", Exact),
            ("set Port p1 'external_ids:k=\"a\\q\"'", Exact),
            ("set Port p1 'external_ids:k=\"a\\u00\"'", Exact),
            ("set Port p1 'external_ids:k=\"a\\u0000\"'", Exact),
            ("set Port p1 'external_ids:k=\"a\"b\"'", Exact),
            ("set Port p1 'external_ids:k=\"\\ud800\"'", Exact),
            ("set Port p1 'external_ids:k=\"\\ud83d\\ude00\"'", Exact),
            ("set Port p1 'external_ids:k=a\\'", Exact),
            ("set Port p1 'external_ids={k=\"a\\\\\"}'", Exact),
            ("get Port p1 external_ids:k", Exact),
            ("set Port p1 trunks=[1,2,2]", Exact),
            ("set Port p1 trunks=5-2", Exact),
            ("set Port p1 trunks=abc", Exact),
            ("set Port p1 trunks={1}", Exact),
            ("set Port p1 trunks=0-5000", Exact),
            ("set Port p1 'trunks=[ 4 , 5 ]'", Exact),
            ("get Port p1 trunks", Exact),
            ("set Port p1 trunks=1,2,3", Exact),
            ("set Interface p1 'type=\"a\\\"b\"'", Exact),
            ("get Interface p1 type", Exact),
            ("set Interface p1 'type=\"abc'", Exact),
            ("set Interface p1 'type=a\\'", Exact),
            ("set Interface p1 type=true", Exact),
            ("get Interface p1 type", Exact),
            ("set Interface p1 'type=\"\"'", Exact),
            ("set Interface p1 'error=\"could not open\"'", Exact),
            ("set Interface p1 'error=could not open'", Exact),
            ("get Interface p1 error", Exact),
            ("set Interface p1 'options:remote_ip=\"10.0.0.1\"' options:key=flow", Exact),
            ("get Interface p1 options", Exact),
            ("set Bridge br0 stp_enable=yes", Exact),
            ("set Bridge br0 stp_enable=maybe", Exact),
            ("set Bridge br0 fail_mode=[]", Exact),
            ("set Bridge br0 fail_mode=secure,standalone", Exact),
            ("find Port 'trunks{>=}1'", Unordered),
            ("find Port 'trunks{in}1,2,3,4'", Unordered),
            ("find Port 'trunks{not-in}7'", Unordered),
            ("find Port 'trunks{<}1,2,3,4'", Unordered),
            ("find Port 'trunks{=}[]'", Unordered),
            ("find Port 'other_config:k=v'", Unordered),
            ("find Port 'other_config:k!=v'", Unordered),
            ("find Port 'other_config:zz{=}[]'", Unordered),
            ("find Port 'tag<5'", Unordered),
            ("find Port trunks", Unordered),
            ("find Port tr=1", Unordered),
            ("find Port t=1", Unordered),
            ("find Port name:x=1", Unordered),
            ("find Port 'name{=}'", Unordered),
            ("list In p1", Exact),
            ("list B br0", Exact),
            ("list Fl", Exact),
            ("list Open .", Exact),
            ("get Port p1 ta", Exact),
            ("--format=csv list Port p1", Exact),
            ("--format=html --columns=name,interfaces list Port p1", Exact),
            ("--format=json --pretty list Port p1", Exact),
            ("--format=json --pretty --columns=name list Bridge nobr", Exact),
            ("--data=json list Port p1", Exact),
            ("--data=bare list Port p1", Exact),
            ("--format=table list Port p1", Exact),
            ("--format=table --no-headings --columns=name,trunks list Port p1", Exact),
            ("--format=table --max-column-width=5 --columns=name,external_ids list Port p1", Exact),
            ("--oneline list-br -- show", Exact),
            ("--oneline get Port p1 name -- list-ports br0 -- add-br x9", Exact),
            ("--columns=name,trunks list Port p1 -- get Port p1 trunks -- --columns=name list Bridge br0", Exact),
            ("--columns=name list Controller -- --columns=name list Bridge br0", Exact),
            ("get Port {prefix:Port:p1} name", Exact),
            ("get Port {uuid:Port:p1} name", Exact),
            ("list Port 1234", Exact),
            ("get Open_vSwitch . bridges:x", Exact),
            ("--columns=foo list Bridge", Exact),
            ("--columns= list Bridge", Exact),
            ("--dry-run add-br br9", Exact),
            ("list-br", Exact),
        ],
    );
}

#[test]
fn command_line_errors() {
    scenario(
        "command_line_errors",
        &[
            ("frob", Exact),
            ("add-br", Exact),
            ("add-br a b c d", Exact),
            ("add-br a b c --x", Exact),
            ("list-br extra", Exact),
            ("--if-exists --if-exists del-br x", Exact),
            ("-- --if-exists --if-exists del-br x", Exact),
            ("--may-exist del-br x", Exact),
            ("-- --may-exist del-br x", Exact),
            ("--columns list Bridge", Exact),
            ("-- --columns list Bridge", Exact),
            ("-- --if-exists=1 del-br x", Exact),
            ("--foo show", Exact),
            ("--no-wai list-br", Exact),
            ("-x show", Exact),
            ("--format=yaml list-br", Exact),
            ("--data=xml list-br", Exact),
            ("--no-wait=1 list-br", Exact),
            ("--if-exists", Exact),
            ("add-br x --", Exact),
            ("-- -- list-br", Exact),
            ("--if-exists -- del-br nobr", Exact),
            ("init -- --", Exact),
            ("comment hello -- list-br", Exact),
        ],
    );
}
