//! fvs-vsctl without the daemon or OVS: transactions and their atomicity,
//! waiting semantics, record resolution, every error as one line that
//! leaves the database alone, and parsers that never panic.

mod common;

use common::{run, vsctl, words};
use fvs_cli::db::{schema, Data, Datum, Db, DbError, Symtab, Type, Uuid};
use fvs_cli::vsctl::{self, Action};
use proptest::prelude::*;

/// A database with a bridge, a VLAN bridge, ports, a bond and a controller.
fn populated() -> Data {
    let mut d = Data::initial();
    for line in [
        "add-br br0 -- set Bridge br0 datapath_type=netdev",
        "add-port br0 p1 tag=10 -- set Interface p1 type=dpdk options:dpdk-devargs=0000:01:00.0",
        "add-port br0 p2 trunks=1,2",
        "add-br br1 br0 20 -- add-port br1 p3",
        "add-bond br0 bond0 e1 e2",
        "set-controller br0 tcp:127.0.0.1:6653",
        "set Open_vSwitch . external_ids:system-id=host1",
    ] {
        run(&mut d, line).unwrap_or_else(|e| panic!("{line}: {e}"));
    }
    d
}

#[test]
fn errors_are_one_line_and_change_nothing() {
    let base = populated();
    let cases = [
        ("add-br br0", "cannot create a bridge named br0 because a bridge named br0 already exists"),
        ("add-port br0 p1", "cannot create a port named p1 because a port named p1 already exists on bridge br0"),
        ("add-port br0 e1", "cannot create a port named e1 because an interface named e1 already exists on bridge br0"),
        ("add-port br9 x", "no bridge named br9"),
        ("del-br br9", "no bridge named br9"),
        ("del-port p9", "no port named p9"),
        ("iface-to-br p9", "no interface named p9"),
        ("list nope", "unknown table \"nope\""),
        ("get Interface p1 foo", "Interface does not contain a column whose name matches \"foo\""),
        ("get Port x name", "no row \"x\" in table Port"),
        ("set Port p1 tag=5000", "constraint violation: 5000 is not in the valid range 0 to 4095 (inclusive)"),
        ("set Port p1 tag=x", "\"x\" is not a valid integer or range"),
        ("set Bridge br0 name=x", "cannot modify read-only column name in table Bridge"),
        ("set Port p1 interfaces=[]", "[]: 0 value(s) specified but the minimum number is 1"),
        ("clear Port p1 interfaces", "\"clear\" operation cannot be applied to column interfaces"),
        ("set-fail-mode br1 secure", "br1 is a fake bridge"),
        ("set Bridge br0 netflow=12345678-1234-1234-1234-123456789abc", "referential integrity violation"),
        ("add-br br2 -- add-br br2", "cannot create a bridge named br2"),
        ("add-br br2 -- set Port br2 tag=99999", "99999 is not in the valid range"),
        ("frob", "unknown command 'frob'; use --help for help"),
        ("add-br", "'add-br' command requires at least 1 arguments"),
        ("--format=yaml list-br", "unknown output format \"yaml\""),
        ("--db=tcp:1.2.3.4:6640 list-br", "tcp:1.2.3.4:6640: unsupported database"),
        ("set Bridge br0 mirrors=@m", "row id \"@m\" is referenced but never created"),
        ("find Port tag", "tag: argument does not end in \"=\", \"!=\", \"<\", \">\", \"<=\", \">=\", \"{=}\""),
    ];
    for (line, want) in cases {
        let mut d = base.clone();
        let err = run(&mut d, line).expect_err(line);
        assert!(
            err.contains(want),
            "`{line}`: {err:?} should contain {want:?}"
        );
        assert!(!err.contains('\n'), "`{line}`: {err:?}");
        assert_eq!(d, base, "`{line}` changed the database");
    }
}

#[test]
fn chained_commands_are_one_transaction() {
    let mut d = populated();
    let before = d.clone();
    // The third command fails: nothing of the first two is committed.
    assert!(run(&mut d, "add-br a -- add-port a a1 -- add-port a a1").is_err());
    assert_eq!(d, before);
    let e = vsctl(
        &mut d,
        "add-br a -- add-port a a1 -- set Interface a1 type=tap -- list-ports a",
    )
    .unwrap();
    assert_eq!(e.output, "a1\n");
    let txn = e.txn.expect("one transaction");
    assert_eq!(
        txn.comment.as_deref(),
        Some("fvs-vsctl: add-br a -- add-port a a1 -- set Interface a1 type=tap -- list-ports a")
    );
    assert_eq!(run(&mut d, "list-ports a").unwrap(), "a1\n");
}

#[test]
fn changes_increment_next_cfg_unless_no_wait() {
    let mut d = Data::initial();
    let e = vsctl(&mut d, "add-br br0").unwrap();
    assert!(e.wait_for_daemon);
    assert_eq!(e.next_cfg, Some(1));
    assert_eq!(d.config().next_cfg, 1);
    // Read-only and no-op commands neither commit nor wait.
    for line in [
        "show",
        "list-br",
        "--may-exist add-br br0",
        "--if-exists del-br nobr",
        "init",
    ] {
        let e = vsctl(&mut d, line).unwrap();
        assert!(
            e.txn.is_none() && !e.wait_for_daemon && e.next_cfg.is_none(),
            "{line}"
        );
    }
    let e = vsctl(&mut d, "--no-wait add-br br1").unwrap();
    assert!(e.txn.is_some() && !e.wait_for_daemon);
    assert_eq!(d.config().next_cfg, 1);
    let e = vsctl(&mut d, "--dry-run add-br br2").unwrap();
    assert!(e.txn.is_none() && !e.wait_for_daemon);
    assert_eq!(run(&mut d, "list-br").unwrap(), "br0\nbr1\n");
    let e = vsctl(&mut d, "set Open_vSwitch . next_cfg=7 -- add-br br3").unwrap();
    assert_eq!(e.next_cfg, Some(8));
}

#[test]
fn br_exists_exits_2_and_commits_nothing() {
    let mut d = populated();
    let before = d.clone();
    let e = vsctl(&mut d, "add-br zz -- br-exists nobr").unwrap();
    assert_eq!((e.exit_status, e.output.as_str()), (2, ""));
    assert!(e.txn.is_none());
    assert_eq!(d, before);
    assert_eq!(vsctl(&mut d, "br-exists br1").unwrap().exit_status, 0);
}

#[test]
fn may_exist_and_if_exists() {
    let mut d = populated();
    let before = d.clone();
    for line in [
        "--may-exist add-br br0",
        "--may-exist add-port br0 p1",
        "--may-exist add-br br1 br0 20",
    ] {
        assert!(vsctl(&mut d, line).unwrap().txn.is_none(), "{line}");
    }
    for line in [
        "--if-exists del-br nobr",
        "--if-exists del-port nop",
        "--if-exists get Port nop name",
    ] {
        assert!(vsctl(&mut d, line).unwrap().txn.is_none(), "{line}");
    }
    assert_eq!(d, before);
    let err = run(&mut d, "--may-exist add-port br1 p1").unwrap_err();
    assert_eq!(
        err,
        "\"--may-exist add-port br1 p1\" but p1 is actually attached to bridge br0"
    );
}

#[test]
fn records_resolve_like_ovs_vsctl() {
    let mut d = populated();
    let (p1, _) = d.find_by_name("Port", "p1").unwrap();
    let full = p1.to_string();
    assert_eq!(
        run(&mut d, &format!("get Port {full} name")).unwrap(),
        "p1\n"
    );
    assert_eq!(
        run(&mut d, &format!("get Port {} name", &full[..6])).unwrap(),
        "p1\n"
    );
    assert_eq!(
        run(&mut d, "get Open_vSwitch . external_ids:system-id").unwrap(),
        "host1\n"
    );
    assert_eq!(
        run(&mut d, "get Controller br0 target").unwrap(),
        "\"tcp:127.0.0.1:6653\"\n"
    );
    assert_eq!(run(&mut d, "get In p1 ty").unwrap(), "dpdk\n");
    assert!(run(&mut d, "get Port 12 name")
        .unwrap_err()
        .contains("no row \"12\""));
    assert!(run(&mut d, "list Fl")
        .unwrap_err()
        .contains("matches multiple table names"));
    let e = vsctl(
        &mut d,
        "-- --id=@c create Controller target=\"ptcp:6653\" -- set Bridge br0 controller=@c",
    )
    .unwrap();
    let created = Uuid::parse(e.output.trim()).expect("create prints the new UUID");
    assert!(d.row("Controller", created).is_some());
    assert_eq!(run(&mut d, "get-controller br0").unwrap(), "ptcp:6653\n");
}

#[test]
fn stale_snapshot_is_refused_then_retried() {
    let dir = common::scratch("vsctl-stale");
    let path = dir.join("conf.db");
    let mut db = Db::open(&path).unwrap();
    let snapshot = db.data().clone();
    let inv = vsctl::parse(&words("add-br br0")).unwrap();
    let e1 = vsctl::execute(&inv, &snapshot).unwrap();
    let other = vsctl::execute(&vsctl::parse(&words("add-br br1")).unwrap(), &snapshot).unwrap();
    db.commit(other.txn.as_ref().unwrap(), Some(snapshot.generation()))
        .unwrap();
    let err = db
        .commit(e1.txn.as_ref().unwrap(), Some(snapshot.generation()))
        .unwrap_err();
    assert!(matches!(err, DbError::Stale { .. }));
    // Like ovs-vsctl, run again against the new snapshot.
    let e2 = vsctl::execute(&inv, db.data()).unwrap();
    let g = db.generation();
    db.commit(e2.txn.as_ref().unwrap(), Some(g)).unwrap();
    drop(db);
    let db = Db::open(&path).unwrap();
    let out = vsctl::execute(&vsctl::parse(&words("list-br")).unwrap(), db.data())
        .unwrap()
        .output;
    assert_eq!(out, "br0\nbr1\n");
}

#[test]
fn commands_survive_a_restart() {
    let dir = common::scratch("vsctl-restart");
    let path = dir.join("conf.db");
    let mut db = Db::open(&path).unwrap();
    for line in [
        "add-br br0 -- set Bridge br0 datapath_type=netdev",
        "add-port br0 dpdk0 -- set Interface dpdk0 type=dpdk options:dpdk-devargs=net_tap0,iface=t0",
        "add-port br0 vhu0 tag=100 -- set Interface vhu0 type=dpdkvhostuserclient",
        "set Open_vSwitch . other_config:dpdk-init=true external_ids:system-id=node1",
        "del-port br0 vhu0",
    ] {
        let inv = vsctl::parse(&words(line)).unwrap();
        let e = vsctl::execute(&inv, db.data()).unwrap();
        let g = db.generation();
        db.commit(e.txn.as_ref().unwrap(), Some(g)).unwrap();
    }
    let show = |db: &Db| {
        let inv = vsctl::parse(&words("show -- list Interface dpdk0")).unwrap();
        vsctl::execute(&inv, db.data()).unwrap().output
    };
    let before = show(&db);
    drop(db);
    let db = Db::open(&path).unwrap();
    assert_eq!(show(&db), before);
    assert_eq!(
        db.data().row_count("Interface"),
        2,
        "vhu0 was garbage-collected"
    );
}

#[test]
fn show_and_list_layout() {
    let mut d = populated();
    run(
        &mut d,
        "set Open_vSwitch . ovs_version=3.1.0 -- set Interface p1 'error=\"no such device\"'",
    )
    .unwrap();
    let root = d.root().unwrap().0;
    let show = run(&mut d, "show").unwrap();
    assert!(
        show.starts_with(&format!(
            "{root}\n    Bridge br0\n        Controller \"tcp:127.0.0.1:6653\"\n"
        )),
        "{show}"
    );
    for line in [
        "        datapath_type: netdev\n",
        "        Port p1\n            tag: 10\n            Interface p1\n                type: dpdk\n                options: {dpdk-devargs=\"0000:01:00.0\"}\n                error: \"no such device\"\n",
        "        Port p2\n            trunks: [1, 2]\n            Interface p2\n",
        "    ovs_version: \"3.1.0\"\n",
    ] {
        assert!(show.contains(line), "{show}\nmissing:\n{line}");
    }
    // A bond's interfaces come in UUID order, as OVS's come in hash order.
    assert!(
        show.contains("        Port bond0\n            Interface e1\n            Interface e2\n")
            || show.contains(
                "        Port bond0\n            Interface e2\n            Interface e1\n"
            ),
        "{show}"
    );
    let list = run(&mut d, "list Port p2").unwrap();
    let first: Vec<&str> = list.lines().take(3).collect();
    assert_eq!(
        first[0],
        format!(
            "_uuid               : {}",
            d.find_by_name("Port", "p2").unwrap().0
        )
    );
    assert_eq!(first[1], "bond_active_slave   : []");
    assert!(list.contains("\ntrunks              : [1, 2]\n"));
    assert!(list.contains("\nrstp_statistics     : {}\n"));
    let json = run(
        &mut d,
        "--format=json --columns=name,tag,trunks,other_config list Port p1",
    )
    .unwrap();
    assert_eq!(json, "{\"data\":[[\"p1\",10,[\"set\",[]],[\"map\",[]]]],\"headings\":[\"name\",\"tag\",\"trunks\",\"other_config\"]}\n");
}

#[test]
fn global_options() {
    let inv = vsctl::parse(&words(
        "--db=unix:/run/fvs/db.sock -t 5 --no-wait --oneline --dry-run list-br",
    ))
    .unwrap();
    assert_eq!(
        inv.db.as_deref(),
        Some(std::path::Path::new("/run/fvs/db.sock"))
    );
    assert_eq!(inv.timeout, Some(std::time::Duration::from_secs(5)));
    assert!(inv.no_wait && inv.oneline && inv.dry_run);
    let inv = vsctl::parse(&words(
        "--timeout=0 --if-exists del-br x -- --may-exist add-br y",
    ))
    .unwrap();
    assert_eq!(inv.timeout, None);
    assert_eq!(inv.commands.len(), 2);
    assert!(inv.commands[0].options.contains_key("--if-exists"));
    assert!(inv.commands[1].options.contains_key("--may-exist"));
    assert_eq!(
        vsctl::parse(&words("--version")).unwrap().action,
        Action::Version
    );
    let v = vsctl::execute(&vsctl::parse(&words("-V")).unwrap(), &Data::initial()).unwrap();
    assert!(v.output.starts_with("fvs-vsctl (fvs) ") && v.output.contains("DB Schema 8.3.1"));
    assert!(vsctl::parse(&words("--help")).is_ok());
    let err = vsctl::parse(&words("--f=json list-br"))
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("option '--f' is ambiguous; possibilities: "),
        "{err}"
    );
    let inv = vsctl::parse(&words("create Bridge name=x")).unwrap();
    assert_eq!(
        inv.warnings,
        ["applying \"create\" command to table Bridge without --id option will have no effect"]
    );
}

fn column_type(table: &str, column: &str) -> Type {
    schema()
        .table(table)
        .unwrap()
        .column(column)
        .unwrap()
        .ty
        .clone()
}

/// Columns of every shape: string/integer/boolean scalars, optional
/// values, enums, bounded integer sets, string maps, string→integer maps.
const SHAPES: &[(&str, &str)] = &[
    ("Interface", "type"),
    ("Interface", "ofport_request"),
    ("Bridge", "stp_enable"),
    ("Interface", "error"),
    ("Port", "vlan_mode"),
    ("Port", "trunks"),
    ("Bridge", "protocols"),
    ("Interface", "options"),
    ("Interface", "statistics"),
    ("NetFlow", "targets"),
];

fn any_string() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z][a-z0-9_.-]{0,8}",
        "[ -~]{0,12}",
        any::<String>().prop_map(|s| s.replace('\0', "")),
        Just(String::new()),
        Just("true".to_string()),
        Just("a\"b\\c".to_string()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// What fvs-vsctl prints, it reads back as the same value.
    #[test]
    fn values_round_trip(
        shape in 0..SHAPES.len(),
        strings in prop::collection::vec(any_string(), 0..4),
        ints in prop::collection::vec(any::<i64>(), 0..4),
        b in any::<bool>(),
    ) {
        let (t, c) = SHAPES[shape];
        let ty = column_type(t, c);
        let atom_of = |base: &fvs_cli::db::BaseType, i: usize| -> Option<fvs_cli::db::Atom> {
            use fvs_cli::db::{Atom, AtomicType};
            let a = match base.atomic {
                AtomicType::String => Atom::String(strings.get(i)?.clone()),
                AtomicType::Integer => {
                    let v = *ints.get(i)?;
                    let span = (base.max_integer as i128 - base.min_integer as i128 + 1) as u128;
                    Atom::Integer((base.min_integer as i128 + (v as i128).rem_euclid(span as i128)) as i64)
                }
                AtomicType::Boolean => Atom::Boolean(b ^ (i % 2 == 1)),
                AtomicType::Uuid => Atom::Uuid(Uuid::new_v4()),
            };
            match &base.enumeration {
                Some(e) => e.iter().nth(i % e.len()).cloned(),
                None => Some(a),
            }
        };
        let n = strings.len().max(ints.len()).clamp(ty.min, ty.max.min(4));
        let datum = match &ty.value {
            Some(vt) => Datum::Map((0..n).filter_map(|i| Some((atom_of(&ty.key, i)?, atom_of(vt, i)?))).collect()),
            None => Datum::set((0..n).filter_map(|i| atom_of(&ty.key, i))),
        };
        prop_assume!(datum.check(&ty).is_ok());
        let text = datum.to_string(&ty);
        let back = Datum::parse(&ty, &text, None);
        prop_assert_eq!(back.as_ref(), Ok(&datum), "{} {}: {:?}", t, c, text);
        let from_json = Datum::from_json(&datum.to_json(), &ty);
        prop_assert_eq!(from_json.as_ref(), Ok(&datum));
    }

    /// Value parsing never panics, whatever the input and column.
    #[test]
    fn value_parser_never_panics(s in any::<String>(), shape in 0..SHAPES.len()) {
        let (t, c) = SHAPES[shape];
        let mut symtab = Symtab::default();
        let _ = Datum::parse(&column_type(t, c), &s, Some(&mut symtab));
        let _ = fvs_cli::db::parse_token(&s);
    }

    /// Command lines never panic the parser or the engine.
    #[test]
    fn command_lines_never_panic(args in prop::collection::vec(prop_oneof![
        Just("--".to_string()), Just("add-br".to_string()), Just("del-br".to_string()),
        Just("add-port".to_string()), Just("del-port".to_string()), Just("set".to_string()),
        Just("get".to_string()), Just("list".to_string()), Just("find".to_string()),
        Just("remove".to_string()), Just("add".to_string()), Just("clear".to_string()),
        Just("create".to_string()), Just("destroy".to_string()), Just("show".to_string()),
        Just("br0".to_string()), Just("br1".to_string()), Just("p1".to_string()), Just("e1".to_string()),
        Just("Bridge".to_string()), Just("Port".to_string()), Just("Interface".to_string()),
        Just(".".to_string()), Just("tag=5".to_string()), Just("other_config:a=b".to_string()),
        Just("--if-exists".to_string()), Just("--may-exist".to_string()), Just("--id=@x".to_string()),
        Just("@x".to_string()), Just("--columns=name".to_string()), Just("--format=json".to_string()),
        Just("add-bond".to_string()), Just("del-bond-iface".to_string()), Just("list-ports".to_string()),
        Just("set-controller".to_string()), Just("emer-reset".to_string()), Just("br-set-external-id".to_string()),
        "[ -~]{0,10}",
        any::<String>(),
    ], 0..8)) {
        let data = populated();
        if let Ok(inv) = vsctl::parse(&args) {
            if let Ok(e) = vsctl::execute(&inv, &data) {
                if let Some(txn) = e.txn {
                    let mut after = data.clone();
                    prop_assert!(after.apply(&txn).is_ok(), "execute returned a transaction that does not apply");
                }
            }
        }
    }

    /// A snapshot sent as JSON comes back identical; garbage never panics.
    #[test]
    fn data_json_never_panics(s in any::<String>()) {
        let _ = serde_json::from_str::<Data>(&s);
        let _ = serde_json::from_str::<fvs_cli::db::Txn>(&s);
    }
}
