//! fvs-vsctl against a running daemon: `show` and `list` in OVS's layout,
//! waiting for the daemon to apply a change, and every error printed as one
//! line with a non-zero exit and the database left unchanged.

mod e2e;

use e2e::{can_run, serial, text, Switch};

/// The database generation (moves on every configuration commit).
fn generation(sw: &Switch) -> u64 {
    let v: serde_json::Value = serde_json::from_str(&sw.appctl(&["db/get"])).expect("db/get json");
    v["generation"].as_u64().expect("generation")
}

fn normalize_uuids(s: &str) -> String {
    s.split('\n')
        .map(|l| {
            l.split(' ')
                .map(|w| {
                    let core = w.trim_matches(|c: char| !c.is_ascii_hexdigit() && c != '-');
                    if core.len() == 36 && core.matches('-').count() == 4 {
                        w.replace(core, "<uuid>")
                    } else {
                        w.to_string()
                    }
                })
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// `show` with each bridge's `Port` blocks in name order.
fn sort_port_blocks(show: &str) -> String {
    let mut out = Vec::new();
    let mut ports: Vec<Vec<&str>> = Vec::new();
    for line in show.lines() {
        if line.starts_with("        Port ") {
            ports.push(vec![line]);
        } else if line.starts_with("            ") && !ports.is_empty() {
            if let Some(p) = ports.last_mut() {
                p.push(line);
            }
        } else {
            ports.sort();
            out.extend(ports.drain(..).flatten());
            out.push(line);
        }
    }
    ports.sort();
    out.extend(ports.drain(..).flatten());
    out.join("\n")
}

#[test]
fn show_list_and_errors() {
    if !can_run("show_list_and_errors") {
        return;
    }
    let _serial = serial();
    let sw = Switch::start();
    let br = e2e::bridge_name();
    let tap = format!("fvt{}", std::process::id() % 100_000);
    sw.add_netdev_bridge(&br, &[]);
    sw.vsctl(&[
        "add-port",
        &br,
        &tap,
        "--",
        "set",
        "Interface",
        &tap,
        "type=tap",
    ]);
    sw.vsctl(&["set", "Port", &tap, "tag=10"]);

    // Waiting (no --no-wait) means the daemon has applied it: the tap exists.
    assert!(std::path::Path::new(&format!("/sys/class/net/{tap}")).exists());
    assert_eq!(sw.get("Interface", &tap, "ofport"), "1");

    let show = normalize_uuids(&sw.vsctl(&["show"]));
    let expected = format!(
        "<uuid>\n    Bridge {br}\n        datapath_type: netdev\n        Port {br}\n            Interface {br}\n                type: internal\n        Port {tap}\n            tag: 10\n            Interface {tap}\n                type: tap\n    ovs_version: \"{}\"\n",
        env!("CARGO_PKG_VERSION")
    );
    // Ports come in UUID order (OVS: hash order): compare them as a set.
    assert_eq!(
        sort_port_blocks(&show),
        sort_port_blocks(&expected),
        "{show}"
    );

    let list = sw.vsctl(&["list", "Port", &tap]);
    let keys: Vec<&str> = list
        .lines()
        .map(|l| l.split(':').next().unwrap_or(""))
        .collect();
    // OVS pads column names to one width, `_uuid` first, then alphabetical.
    let width = keys[0].len();
    assert!(keys.iter().all(|k| k.len() == width), "{list}");
    assert_eq!(keys[0].trim_end(), "_uuid");
    let names: Vec<&str> = keys[1..].iter().map(|k| k.trim_end()).collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted, "{list}");
    assert!(
        list.contains("\ntag                 : 10\n")
            || list
                .lines()
                .any(|l| l.starts_with("tag ") && l.ends_with(": 10")),
        "{list}"
    );

    let before = generation(&sw);
    let errors: &[&[&str]] = &[
        &["list", "Nope"],
        &["set", "Bridge", &br, "nope=1"],
        &["add-port", "br9", "x1"],
        &["del-port", &br, "nope"],
        &["add-port", &br, &tap],
        &["set", "Port", &tap, "tag=abc"],
        &["set", "Port", &tap, "tag=5000"],
        &["get", "Interface", "nope", "ofport"],
        &[
            "add-port", &br, "newp", "--", "set", "Port", "nope", "tag=1",
        ],
        &["del-br", "br9"],
        &["frobnicate"],
    ];
    for args in errors {
        let o = sw.vsctl_out(args);
        let err = text(&o.stderr);
        assert!(!o.status.success(), "{args:?} should fail");
        assert_eq!(
            err.lines().count(),
            1,
            "{args:?}: one line expected, got {err:?}"
        );
        assert!(err.starts_with("fvs-vsctl: "), "{args:?}: {err:?}");
        assert!(
            text(&o.stdout).is_empty(),
            "{args:?} printed {:?}",
            text(&o.stdout)
        );
    }
    assert_eq!(
        generation(&sw),
        before,
        "a failed command changed the database"
    );
    assert!(sw.vsctl_out(&["list-ports", &br]).status.success());
    assert!(!sw.vsctl(&["list-ports", &br]).contains("newp"));

    // br-exists: exit status 2 for a missing bridge, as OVS.
    assert_eq!(sw.vsctl_out(&["br-exists", "br9"]).status.code(), Some(2));
    assert_eq!(sw.vsctl_out(&["br-exists", &br]).status.code(), Some(0));

    // --may-exist / --if-exists turn those errors into no-ops.
    sw.vsctl(&["--may-exist", "add-port", &br, &tap]);
    sw.vsctl(&["--if-exists", "del-port", &br, "nope"]);

    // JSON output.
    let json = sw.vsctl(&["--format=json", "list", "Bridge"]);
    let v: serde_json::Value = serde_json::from_str(&json).expect("json");
    assert!(
        v["headings"]
            .as_array()
            .is_some_and(|h| h.iter().any(|x| x == "name")),
        "{json}"
    );

    // A port whose device is missing: the error is in the database, as OVS puts it.
    sw.vsctl(&["add-port", &br, "fvnosuch0"]);
    assert_eq!(sw.get("Interface", "fvnosuch0", "ofport"), "-1");
    assert_eq!(
        sw.get("Interface", "fvnosuch0", "error"),
        "could not open network device fvnosuch0 (No such device)"
    );
    assert!(sw
        .vsctl(&["show"])
        .contains("            Interface fvnosuch0\n                error: \"could not open network device fvnosuch0 (No such device)\"\n"));
    sw.vsctl(&["del-port", &br, "fvnosuch0"]);

    // Deleting the port removes the tap the daemon made.
    sw.vsctl(&["del-port", &br, &tap]);
    assert!(!std::path::Path::new(&format!("/sys/class/net/{tap}")).exists());
}
