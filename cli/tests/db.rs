//! The configuration database: atomic transactions, OVSDB's rules, the
//! journal on disk (corruption refused, torn tails dropped), compaction,
//! ephemeral columns, serialization.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use common::{run, scratch, Scratch};
use fvs_cli::db::{Atom, Data, Datum, Db, DbError, DbOptions, Txn, Uuid};

fn db_path(tag: &str) -> (Scratch, PathBuf) {
    let dir = scratch(tag);
    let path = dir.join("conf.db");
    (dir, path)
}

/// Adds a bridge with its internal port and interface, as add-br does.
fn add_bridge(txn: &mut Txn, data: &Data, name: &str) -> (Uuid, Uuid, Uuid) {
    let (br, port, iface) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    txn.insert(
        "Interface",
        iface,
        BTreeMap::from([
            ("name".into(), Datum::string(name)),
            ("type".into(), Datum::string("internal")),
        ]),
    );
    txn.insert(
        "Port",
        port,
        BTreeMap::from([
            ("name".into(), Datum::string(name)),
            ("interfaces".into(), Datum::uuid_set([iface])),
        ]),
    );
    txn.insert(
        "Bridge",
        br,
        BTreeMap::from([
            ("name".into(), Datum::string(name)),
            ("ports".into(), Datum::uuid_set([port])),
        ]),
    );
    let (root, row) = data.root().expect("root row");
    let mut bridges = row.uuids("bridges");
    bridges.push(br);
    txn.update("Open_vSwitch", root, "bridges", Datum::uuid_set(bridges));
    (br, port, iface)
}

fn bridge_names(data: &Data) -> Vec<String> {
    data.config().bridges.into_iter().map(|b| b.name).collect()
}

#[test]
fn new_database_has_one_root_row_and_reopens() {
    let (_dir, path) = db_path("new");
    let db = Db::open(&path).unwrap();
    assert_eq!(db.data().row_count("Open_vSwitch"), 1);
    let root = db.data().root().unwrap().0;
    drop(db);
    let db = Db::open(&path).unwrap();
    assert_eq!(db.data().root().unwrap().0, root);
    let text = fs::read_to_string(&path).unwrap();
    assert_eq!(text.lines().count(), 1, "a snapshot record only");
    assert!(
        text.starts_with("{\"format\":\"fvs-conf-db/1\",\"generation\":0,"),
        "{text}"
    );
}

#[test]
fn second_open_is_refused_while_locked() {
    let (_dir, path) = db_path("lock");
    let _db = Db::open(&path).unwrap();
    let err = Db::open(&path).err().expect("locked");
    assert!(matches!(err, DbError::Locked { .. }), "{err}");
    assert!(err.to_string().contains("locked"));
}

#[test]
fn failed_transactions_change_nothing() {
    let (_dir, path) = db_path("atomic");
    let mut db = Db::open(&path).unwrap();
    let mut txn = Txn::new();
    add_bridge(&mut txn, db.data(), "br0");
    db.commit(&txn, None).unwrap();
    let before = db.data().clone();
    let bytes = fs::read(&path).unwrap();
    let root = db.data().root().unwrap().0;

    let mut cases: Vec<(Txn, &str)> = Vec::new();
    // A good op followed by a bad column.
    let mut t = Txn::new();
    t.update(
        "Open_vSwitch",
        root,
        "external_ids",
        Datum::string_map([("a", "b")]),
    );
    t.update("Open_vSwitch", root, "nope", Datum::integer(1));
    cases.push((t, "has no column \"nope\""));
    // A duplicate bridge name.
    let mut t = Txn::new();
    add_bridge(&mut t, db.data(), "br0");
    cases.push((t, "identical values (br0) for index on column \"name\""));
    // A dangling reference.
    let mut t = Txn::new();
    let br = db.data().find_by_name("Bridge", "br0").unwrap().0;
    t.update("Bridge", br, "netflow", Datum::uuid(Uuid::new_v4()));
    cases.push((t, "references nonexistent row"));
    // A value out of range, and a wrong type.
    let port = db.data().find_by_name("Port", "br0").unwrap().0;
    let mut t = Txn::new();
    t.update("Port", port, "tag", Datum::integer(5000));
    cases.push((t, "5000 is not in the valid range 0 to 4095"));
    let mut t = Txn::new();
    t.update("Port", port, "tag", Datum::string("x"));
    cases.push((t, "expected integer"));
    // A read-only column, a second root row, a missing row, a bad table.
    let mut t = Txn::new();
    t.update("Bridge", br, "name", Datum::string("other"));
    cases.push((t, "read-only column name"));
    let mut t = Txn::new();
    t.insert("Open_vSwitch", Uuid::new_v4(), BTreeMap::new());
    cases.push((t, "greater than the schema-defined limit of 1 row(s)"));
    let mut t = Txn::new();
    t.update("Bridge", Uuid::new_v4(), "stp_enable", Datum::boolean(true));
    cases.push((t, "no row"));
    let mut t = Txn::new();
    t.delete("Nope", br);
    cases.push((t, "unknown table \"Nope\""));
    // Deleting a row that is still referenced.
    let mut t = Txn::new();
    t.delete("Port", port);
    cases.push((t, "cannot delete Port row"));
    // An empty set where one element is required.
    let mut t = Txn::new();
    t.update("Port", port, "interfaces", Datum::empty_set());
    cases.push((t, "must have 1 to"));

    for (t, want) in cases {
        let err = db.commit(&t, None).expect_err(want).to_string();
        assert!(err.contains(want), "{err:?} should contain {want:?}");
        assert!(!err.contains('\n'), "{err}");
        assert_eq!(db.data(), &before);
        assert_eq!(fs::read(&path).unwrap(), bytes, "the journal is untouched");
    }
    drop(db);
    assert_eq!(Db::open(&path).unwrap().data(), &before);
}

#[test]
fn stale_transactions_are_refused() {
    let (_dir, path) = db_path("stale");
    let mut db = Db::open(&path).unwrap();
    let g = db.generation();
    let mut t1 = Txn::new();
    add_bridge(&mut t1, db.data(), "br0");
    let mut t2 = Txn::new();
    add_bridge(&mut t2, db.data(), "br1");
    assert_eq!(db.commit(&t1, Some(g)).unwrap().generation, g + 1);
    let err = db.commit(&t2, Some(g)).unwrap_err();
    assert!(
        matches!(err, DbError::Stale { expected, current } if expected == g && current == g + 1)
    );
    assert_eq!(bridge_names(db.data()), ["br0"]);
}

#[test]
fn unreferenced_rows_are_garbage_collected() {
    let (_dir, path) = db_path("gc");
    let mut db = Db::open(&path).unwrap();
    let mut t = Txn::new();
    let (br, _, _) = add_bridge(&mut t, db.data(), "br0");
    db.commit(&t, None).unwrap();
    // A port added then dropped from the bridge goes, with its interface.
    let (p, i) = (Uuid::new_v4(), Uuid::new_v4());
    let mut t = Txn::new();
    t.insert(
        "Interface",
        i,
        BTreeMap::from([("name".into(), Datum::string("p1"))]),
    );
    t.insert(
        "Port",
        p,
        BTreeMap::from([
            ("name".into(), Datum::string("p1")),
            ("interfaces".into(), Datum::uuid_set([i])),
        ]),
    );
    let mut ports = db.data().row("Bridge", br).unwrap().uuids("ports");
    ports.push(p);
    t.update("Bridge", br, "ports", Datum::uuid_set(ports.clone()));
    db.commit(&t, None).unwrap();
    assert_eq!(db.data().row_count("Port"), 2);
    ports.retain(|u| *u != p);
    let mut t = Txn::new();
    t.update("Bridge", br, "ports", Datum::uuid_set(ports));
    db.commit(&t, None).unwrap();
    assert!(db.data().row("Port", p).is_none());
    assert!(db.data().row("Interface", i).is_none());
    // Dropping the bridge from the root takes everything below it.
    let root = db.data().root().unwrap().0;
    let mut t = Txn::new();
    t.update("Open_vSwitch", root, "bridges", Datum::empty_set());
    db.commit(&t, None).unwrap();
    for table in ["Bridge", "Port", "Interface"] {
        assert_eq!(db.data().row_count(table), 0, "{table}");
    }
    // A row inserted without any reference never appears.
    let mut t = Txn::new();
    t.insert(
        "Controller",
        Uuid::new_v4(),
        BTreeMap::from([("target".into(), Datum::string("tcp:1.2.3.4"))]),
    );
    db.commit(&t, None).unwrap();
    assert_eq!(db.data().row_count("Controller"), 0);
}

#[test]
fn weak_references_vanish_with_their_target() {
    let mut data = Data::initial();
    run(&mut data, "add-br br0 -- add-port br0 p1").unwrap();
    run(
        &mut data,
        "-- --id=@p get Port p1 -- --id=@m create Mirror name=m0 select_src_port=@p -- add Bridge br0 mirrors @m",
    )
    .unwrap();
    assert_eq!(
        data.find_by_name("Mirror", "m0")
            .unwrap()
            .1
            .uuids("select_src_port")
            .len(),
        1
    );
    run(&mut data, "del-port p1").unwrap();
    assert!(data
        .find_by_name("Mirror", "m0")
        .unwrap()
        .1
        .uuids("select_src_port")
        .is_empty());
}

#[test]
fn ephemeral_columns_stay_in_memory() {
    let (_dir, path) = db_path("ephemeral");
    let mut db = Db::open(&path).unwrap();
    let mut t = Txn::new();
    let (_, _, iface) = add_bridge(&mut t, db.data(), "br0");
    db.commit(&t, None).unwrap();
    let g = db.generation();
    let bytes = fs::read(&path).unwrap();

    let mut t = Txn::new();
    t.set_statistics(iface, [("rx_packets", 10), ("tx_packets", 20)])
        .set_link_state(iface, Some(true))
        .set_mac_in_use(iface, Some("aa:bb:cc:dd:ee:ff"))
        .set_mtu(iface, Some(1500));
    let c = db.commit(&t, Some(g)).unwrap();
    assert!(!c.durable);
    assert_eq!(c.generation, g, "statistics do not make snapshots stale");
    assert_eq!(fs::read(&path).unwrap(), bytes, "nothing written");
    let row = db.data().row("Interface", iface).unwrap();
    assert_eq!(row.int_map("statistics")["rx_packets"], 10);
    assert_eq!(row.opt_str("link_state"), Some("up"));

    // Durable status columns are written; ephemeral ones never are.
    let mut t = Txn::new();
    t.set_ofport(iface, Some(1))
        .set_iface_error(iface, None)
        .set_statistics(iface, [("rx_packets", 11)]);
    let root = db.data().root().unwrap().0;
    t.set_cur_cfg(root, 3).set_dpdk_initialized(root, true);
    assert!(db.commit(&t, None).unwrap().durable);
    let journal = fs::read_to_string(&path).unwrap();
    assert!(
        !journal.contains("rx_packets") && !journal.contains("aa:bb:cc"),
        "{journal}"
    );
    drop(db);

    let db = Db::open(&path).unwrap();
    let row = db.data().row("Interface", iface).unwrap();
    assert_eq!(row.int("ofport"), Some(1));
    assert!(row.int_map("statistics").is_empty());
    assert_eq!(row.opt_str("link_state"), None);
    assert_eq!(db.data().config().cur_cfg, 3);
    assert!(db.data().root().unwrap().1.bool("dpdk_initialized"));
}

#[test]
fn journal_is_one_record_per_transaction_and_compacts() {
    let (_dir, path) = db_path("compact");
    let options = DbOptions {
        compact_min_bytes: 4096,
        compact_factor: 2,
    };
    let mut db = Db::open_with(&path, options).unwrap();
    let root = db.data().root().unwrap().0;
    let mut t = Txn::new();
    t.update(
        "Open_vSwitch",
        root,
        "external_ids",
        Datum::string_map([("n", "0")]),
    );
    t.comment = Some("first".into());
    db.commit(&t, None).unwrap();
    let text = fs::read_to_string(&path).unwrap();
    assert_eq!(text.lines().count(), 2);
    assert!(text
        .lines()
        .nth(1)
        .unwrap()
        .contains("\"comment\":\"first\""));

    let mut compacted = false;
    let mut last_len = fs::metadata(&path).unwrap().len();
    for i in 0..200 {
        let mut t = Txn::new();
        if i % 10 == 0 {
            add_bridge(&mut t, db.data(), &format!("br{i}"));
        }
        t.update(
            "Open_vSwitch",
            root,
            "external_ids",
            Datum::string_map([("n", i.to_string())]),
        );
        db.commit(&t, None).unwrap();
        let len = fs::metadata(&path).unwrap().len();
        compacted |= len < last_len;
        last_len = len;
    }
    assert!(compacted, "the journal was compacted at least once");
    let before = db.data().clone();
    db.compact().unwrap();
    assert_eq!(fs::read_to_string(&path).unwrap().lines().count(), 1);
    drop(db);
    let db = Db::open_with(&path, options).unwrap();
    assert_eq!(db.data(), &before);
    assert_eq!(bridge_names(db.data()).len(), 20);
    assert_eq!(db.data().config().external_ids["n"], "199");
}

/// A database with a few committed transactions, and its journal lines.
fn journal_with(tag: &str, n: usize) -> (Scratch, PathBuf, Vec<String>, Data) {
    let (dir, path) = db_path(tag);
    let mut db = Db::open(&path).unwrap();
    for i in 0..n {
        let mut t = Txn::new();
        add_bridge(&mut t, db.data(), &format!("br{i}"));
        db.commit(&t, None).unwrap();
    }
    let data = db.data().clone();
    drop(db);
    let lines = fs::read_to_string(&path)
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    (dir, path, lines, data)
}

fn write_lines(path: &PathBuf, lines: &[String], tail: &str) {
    fs::write(
        path,
        lines.iter().map(|l| format!("{l}\n")).collect::<String>() + tail,
    )
    .unwrap();
}

fn append(path: &PathBuf, bytes: &[u8]) {
    use std::io::Write;
    fs::OpenOptions::new()
        .append(true)
        .open(path)
        .unwrap()
        .write_all(bytes)
        .unwrap();
}

fn lock_file(path: &Path) -> PathBuf {
    path.with_file_name(".conf.db.~lock~")
}

/// A line in the format before checksums: the JSON alone.
fn strip_checksum(line: &str) -> String {
    match line.rsplit_once('\t') {
        Some((json, sum)) if sum.len() == 8 => json.to_string(),
        _ => line.to_string(),
    }
}

/// Byte offset of record `n` (1-based) in a journal of `lines`.
fn offset_of(lines: &[String], n: usize) -> usize {
    lines[..n - 1].iter().map(|l| l.len() + 1).sum()
}

#[test]
fn records_carry_checksums() {
    let (_dir, _path, lines, _) = journal_with("sums", 2);
    for l in &lines {
        let (json, sum) = l.rsplit_once('\t').expect("a checksum suffix");
        assert_eq!(
            u32::from_str_radix(sum, 16).unwrap(),
            fvs_cli::db::crc32c(json.as_bytes())
        );
        assert!(json.starts_with('{') && json.ends_with('}'));
    }
    // The standard CRC-32C check value.
    assert_eq!(fvs_cli::db::crc32c(b"123456789"), 0xe306_9283);
}

#[test]
fn torn_write_after_the_acknowledged_end_is_dropped_and_writing_resumes() {
    // The record being written when the process died: any bytes of it.
    let (_d2, _p2, other, _) = journal_with("torn-src", 4);
    let next = format!("{}\n", other[4]);
    let mut tails: Vec<Vec<u8>> = [1, next.len() / 2, next.len() - 1]
        .iter()
        .map(|&cut| next.as_bytes()[..cut].to_vec())
        .collect();
    // Zeros where a power cut left the block unwritten, with a newline.
    tails.push(b"\0\0\0\0\n".to_vec());
    // A whole line whose checksum is wrong: still never acknowledged.
    tails.push(next.replace("br3", "brZ").into_bytes());
    for tail in tails {
        let (_dir, path, _, _) = journal_with("torn", 3);
        append(&path, &tail);
        let mut db = Db::open(&path).unwrap();
        assert_eq!(bridge_names(db.data()), ["br0", "br1", "br2"]);
        let note = db.recovery_note().unwrap().to_string();
        assert!(note.contains("torn record 5 at byte offset"), "{note}");
        assert!(note.contains("never acknowledged"), "{note}");
        // The torn bytes are gone: a new commit starts a clean line.
        let mut t = Txn::new();
        add_bridge(&mut t, db.data(), "brX");
        db.commit(&t, None).unwrap();
        drop(db);
        let db = Db::open(&path).unwrap();
        assert_eq!(bridge_names(db.data()), ["br0", "br1", "br2", "brX"]);
        assert!(db.recovery_note().is_none());
    }
}

#[test]
fn without_the_note_only_the_last_line_may_be_torn() {
    // A copied file (no lock file beside it): as before the note existed.
    let (_dir, path, lines, _) = journal_with("torn-nonote", 3);
    let last = &lines[3];
    for cut in [1, last.len() / 2, last.len() - 1] {
        write_lines(&path, &lines[..3], &last[..cut]);
        fs::remove_file(lock_file(&path)).unwrap();
        let db = Db::open(&path).unwrap();
        assert_eq!(bridge_names(db.data()), ["br0", "br1"], "cut at {cut}");
        assert!(db.recovery_note().unwrap().contains("torn record 4"));
    }
    let mut bad = lines.clone();
    bad[2] = bad[2].replace("br1", "brY");
    write_lines(&path, &bad, "");
    fs::remove_file(lock_file(&path)).unwrap();
    let err = Db::open(&path).err().expect("refused").to_string();
    assert!(err.contains("record 3 (byte offset"), "{err}");
}

#[test]
fn damage_to_acknowledged_records_is_refused() {
    let (_dir, path, lines, _) = journal_with("corrupt", 4);
    let name = path.display().to_string();
    let expect = |lines: &[String], tail: &str, record: usize, what: &str| {
        write_lines(&path, lines, tail);
        let err = Db::open(&path).err().expect("refused").to_string();
        assert!(err.starts_with(&name), "{err}");
        assert!(
            err.contains(&format!("record {record} (byte offset ")),
            "{err}"
        );
        assert!(err.contains(what), "{err:?} should mention {what:?}");
        assert!(!err.contains('\n'));
        err
    };
    // One flipped byte, in a middle record and in the last one: the
    // checksum catches it although the JSON still parses.
    for n in [3, 5] {
        let mut bad = lines.clone();
        bad[n - 1] = bad[n - 1].replacen("br", "bR", 1);
        let err = expect(&bad, "", n, "checksum mismatch");
        assert!(
            err.contains(&format!("(byte offset {}):", offset_of(&lines, n))),
            "{err}"
        );
    }
    // A flipped bit that breaks the JSON.
    let mut bad = lines.clone();
    bad[2] = bad[2].replacen('{', "[", 1);
    expect(&bad, "", 3, "checksum mismatch");
    // A checksummed journal does not go back to records without one.
    let mut bad = lines.clone();
    bad[3] = strip_checksum(&bad[3]);
    expect(&bad, "", 4, "no checksum");
    // Truncated inside the last (acknowledged) record, or at a record
    // boundary, or to nothing: committed transactions are missing.
    let l = lines[4].len();
    expect(&lines[..4], &lines[4][..l / 2], 5, "truncated");
    let err = expect(&lines[..4], "", 5, "truncated");
    assert!(err.contains("acknowledged"), "{err}");
    expect(&[], "", 1, "empty file");
    // The refused file is left as it was.
    write_lines(&path, &lines[..4], "");
    let before = fs::read(&path).unwrap();
    assert!(Db::open(&path).is_err());
    assert_eq!(fs::read(&path).unwrap(), before);
}

#[test]
fn damage_in_files_without_checksums_is_refused() {
    // The checks that do not need a checksum, on an old-format file.
    let (_dir, path, lines, _) = journal_with("corrupt-old", 4);
    let old: Vec<String> = lines.iter().map(|l| strip_checksum(l)).collect();
    let expect = |lines: &[String], record: usize, what: &str| {
        write_lines(&path, lines, "");
        let _ = fs::remove_file(lock_file(&path));
        let err = Db::open(&path).err().expect("refused").to_string();
        assert!(
            err.contains(&format!("record {record} (byte offset")),
            "{err}"
        );
        assert!(err.contains(what), "{err:?} should mention {what:?}");
    };
    let mut bad = old.clone();
    bad[2] = "this is not json".into();
    expect(&bad, 3, "expected");
    let mut bad = old.clone();
    bad[2] = bad[2].replace("\"Bridge\"", "\"Nope\"");
    expect(&bad, 3, "unknown table \"Nope\"");
    let mut bad = old.clone();
    bad[2] = bad[2].replace("\"internal\"", "42");
    expect(&bad, 3, "expected string");
    let mut bad = old.clone();
    bad.remove(2);
    expect(&bad, 3, "does not follow");
    let mut bad = old.clone();
    bad[0] = "{\"changes\":{}".into();
    expect(&bad, 1, "EOF");
    let mut bad = old.clone();
    bad[0] = bad[0].replace("fvs-conf-db/1", "fvs-conf-db/9");
    expect(&bad, 1, "unsupported format");
    let mut bad = old.clone();
    let l = bad[3].len();
    bad[3].truncate(l / 2);
    expect(&bad, 4, "EOF");
    // The snapshot is never "torn": a file cut inside it is refused.
    write_lines(&path, &[], &old[0][..old[0].len() / 2]);
    let err = Db::open(&path).err().expect("refused").to_string();
    assert!(
        err.contains("record 1 (byte offset 0): incomplete snapshot"),
        "{err}"
    );
}

#[test]
fn old_files_without_checksums_still_load() {
    let (_dir, path, lines, data) = journal_with("oldformat", 3);
    let old: Vec<String> = lines.iter().map(|l| strip_checksum(l)).collect();
    write_lines(&path, &old, "");
    fs::remove_file(lock_file(&path)).unwrap();
    let mut db = Db::open(&path).unwrap();
    assert_eq!(db.data(), &data);
    assert!(db.recovery_note().is_none());
    let mut t = Txn::new();
    add_bridge(&mut t, db.data(), "brN");
    db.commit(&t, None).unwrap();
    drop(db);
    let text = fs::read_to_string(&path).unwrap();
    assert!(
        text.lines().last().unwrap().contains('\t'),
        "new records are checksummed"
    );
    let db = Db::open(&path).unwrap();
    assert_eq!(bridge_names(db.data()), ["br0", "br1", "br2", "brN"]);
}

#[test]
fn check_reports_and_recover_keeps_the_valid_prefix() {
    let (dir, path, lines, _) = journal_with("recover", 4);
    let clean = fvs_cli::db::check(&path).unwrap();
    assert!(clean.is_ok() && clean.torn.is_none(), "{clean:?}");
    assert_eq!(clean.records, 5);
    assert_eq!(clean.acknowledged, Some(clean.file_len));
    let mut bad = lines.clone();
    bad[2] = bad[2].replacen("br", "bR", 1);
    write_lines(&path, &bad, "");
    let whole = fs::read(&path).unwrap();
    let report = fvs_cli::db::check(&path).unwrap();
    assert!(!report.is_ok());
    assert_eq!(report.records, 2);
    assert_eq!(report.valid_len as usize, offset_of(&lines, 3));
    assert!(report
        .problem
        .as_ref()
        .unwrap()
        .to_string()
        .contains("record 3 (byte offset"));
    // Not while the database is open elsewhere.
    {
        let _ = fs::remove_file(&path);
        let _held = Db::open(&path).unwrap();
        assert!(matches!(
            fvs_cli::db::recover(&path),
            Err(DbError::Locked { .. })
        ));
    }
    fs::write(&path, &whole).unwrap();
    // The lock file's note now describes the fresh database made above;
    // without it, recovery judges the journal alone.
    fs::remove_file(lock_file(&path)).unwrap();
    let rec = fvs_cli::db::recover(&path).unwrap();
    let aside = rec.aside.clone().expect("the rest set aside");
    assert!(aside.starts_with(&*dir));
    assert!(aside
        .file_name()
        .unwrap()
        .to_string_lossy()
        .starts_with("conf.db.corrupt-"));
    let keep = offset_of(&lines, 3);
    assert_eq!(fs::read(&aside).unwrap(), &whole[keep..]);
    assert_eq!(fs::read(&path).unwrap(), &whole[..keep]);
    assert_eq!(rec.removed as usize, whole.len() - keep);
    let db = Db::open(&path).unwrap();
    assert_eq!(bridge_names(db.data()), ["br0"]);
    drop(db);
    // A second run finds nothing to do.
    let again = fvs_cli::db::recover(&path).unwrap();
    assert!(again.aside.is_none() && again.removed == 0);

    // A damaged snapshot: nothing to keep, the whole file goes aside and
    // the next open starts a fresh database.
    let mut bad = lines.clone();
    bad[0] = bad[0].replacen("Open_vSwitch", "Open_vSwitcH", 1);
    write_lines(&path, &bad, "");
    std::thread::sleep(std::time::Duration::from_millis(1100)); // a new name
    let rec = fvs_cli::db::recover(&path).unwrap();
    assert_eq!(rec.before.records, 0);
    assert!(!path.exists());
    let whole: String = bad.iter().map(|l| format!("{l}\n")).collect();
    assert_eq!(fs::read(rec.aside.unwrap()).unwrap(), whole.as_bytes());
    assert!(bridge_names(Db::open(&path).unwrap().data()).is_empty());
}

#[test]
fn recover_after_truncation_reports_the_missing_bytes() {
    let (_dir, path, lines, _) = journal_with("recover-trunc", 3);
    let full = fs::metadata(&path).unwrap().len();
    write_lines(&path, &lines[..2], "");
    let cut = fs::metadata(&path).unwrap().len();
    let report = fvs_cli::db::check(&path).unwrap();
    assert!(report
        .problem
        .as_ref()
        .unwrap()
        .to_string()
        .contains("truncated"));
    assert_eq!(report.acknowledged, Some(full));
    let rec = fvs_cli::db::recover(&path).unwrap();
    assert_eq!(rec.missing, full - cut);
    assert!(rec.aside.is_none());
    let db = Db::open(&path).unwrap();
    assert_eq!(bridge_names(db.data()), ["br0"]);
}

const FSIZE_CHILD: &str = "FVS_DB_FSIZE_CHILD";

/// A write that fails half way (here: RLIMIT_FSIZE, EFBIG; on a full disk
/// ENOSPC takes the same path, tests/db_faults.rs) leaves the file and the
/// in-memory state as they were, and later commits work. Runs in a child
/// process (this binary again) because the limit is per process.
#[test]
fn failed_write_changes_nothing_and_commits_resume() {
    if let Ok(path) = std::env::var(FSIZE_CHILD) {
        fsize_child(Path::new(&path));
        return;
    }
    let (_dir, path) = db_path("fsize");
    let o = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "failed_write_changes_nothing_and_commits_resume",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(FSIZE_CHILD, &path)
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{out}");
    assert!(out.contains("FSIZE-CHILD-OK"), "the child ran: {out}");
}

fn set_fsize(limit: libc::rlim_t) {
    let r = libc::rlimit {
        rlim_cur: limit,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: setrlimit reads the struct, valid for the call.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_FSIZE, &r) }, 0);
}

fn fsize_child(path: &Path) {
    // SAFETY: ignoring SIGXFSZ turns the signal into an EFBIG error.
    unsafe { libc::signal(libc::SIGXFSZ, libc::SIG_IGN) };
    let mut db = Db::open(path).unwrap();
    let mut t = Txn::new();
    add_bridge(&mut t, db.data(), "br0");
    db.commit(&t, None).unwrap();
    let before = db.data().clone();
    let bytes = fs::read(path).unwrap();
    set_fsize(bytes.len() as libc::rlim_t + 100);
    let (root, _) = db.data().root().unwrap();
    let mut big = Txn::new();
    big.update(
        "Open_vSwitch",
        root,
        "external_ids",
        Datum::string_map([("big", "x".repeat(5000))]),
    );
    let err = db.commit(&big, None).expect_err("the write fails");
    let msg = err.to_string();
    assert!(msg.contains("conf.db") && msg.contains("EFBIG"), "{msg}");
    assert_eq!(db.data(), &before, "in memory: unchanged");
    assert_eq!(fs::read(path).unwrap(), bytes, "on disk: unchanged");
    set_fsize(libc::RLIM_INFINITY);
    let mut t = Txn::new();
    add_bridge(&mut t, db.data(), "br1");
    db.commit(&t, None).unwrap();
    drop(db);
    let db = Db::open(path).unwrap();
    assert_eq!(bridge_names(db.data()), ["br0", "br1"]);
    assert!(!db.data().config().external_ids.contains_key("big"));
    assert!(db.recovery_note().is_none());
    println!("FSIZE-CHILD-OK");
}

#[test]
fn data_and_transactions_serialize() {
    let mut data = Data::initial();
    run(
        &mut data,
        "add-br br0 -- add-port br0 p1 tag=5 trunks=1,2 -- set Interface p1 options:k=v",
    )
    .unwrap();
    let json = serde_json::to_string(&data).unwrap();
    let back: Data = serde_json::from_str(&json).unwrap();
    assert_eq!(back, data);
    assert_eq!(back.generation(), data.generation());

    let iface = data.find_by_name("Interface", "p1").unwrap().0;
    let mut t = Txn::new();
    t.set_statistics(iface, [("rx_packets", 1)])
        .delete("Port", Uuid::new_v4());
    t.insert(
        "Controller",
        Uuid::new_v4(),
        BTreeMap::from([("target".into(), Datum::string("tcp:1.2.3.4"))]),
    );
    t.comment = Some("c".into());
    let json = serde_json::to_string(&t).unwrap();
    assert_eq!(serde_json::from_str::<Txn>(&json).unwrap(), t);
    let bad = json.replace("statistics", "nope");
    assert!(serde_json::from_str::<Txn>(&bad).is_err());
    assert!(serde_json::from_str::<Data>("{\"generation\":1,\"tables\":{\"X\":{}}}").is_err());
}

#[test]
fn typed_config_for_the_daemon() {
    let mut data = Data::initial();
    run(
        &mut data,
        "add-br br0 -- set Bridge br0 datapath_type=netdev fail_mode=secure -- add-port br0 p2 tag=10 \
         -- add-port br0 p1 trunks=1,2 vlan_mode=trunk -- set Interface p1 type=dpdk \
         options:dpdk-devargs=net_af_packet0,iface=veth1 ofport_request=5 mtu_request=9000 \
         -- set Open_vSwitch . other_config:dpdk-init=true -- set-controller br0 tcp:127.0.0.1:6653",
    )
    .unwrap();
    let cfg = data.config();
    assert_eq!(cfg.other_config["dpdk-init"], "true");
    assert_eq!(cfg.next_cfg, 1);
    let br = &cfg.bridges[0];
    assert_eq!(
        (br.name.as_str(), br.datapath_type.as_str()),
        ("br0", "netdev")
    );
    assert_eq!(br.fail_mode.as_deref(), Some("secure"));
    assert_eq!(br.controllers[0].target, "tcp:127.0.0.1:6653");
    let names: Vec<&str> = br.ports.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["br0", "p1", "p2"]);
    let p1 = &br.ports[1];
    assert_eq!(
        (p1.trunks.clone(), p1.vlan_mode.as_deref()),
        (vec![1, 2], Some("trunk"))
    );
    let i = &p1.interfaces[0];
    assert_eq!(
        (i.kind.as_str(), i.ofport_request, i.mtu_request),
        ("dpdk", Some(5), Some(9000))
    );
    assert_eq!(i.options["dpdk-devargs"], "net_af_packet0,iface=veth1");
    assert_eq!(br.ports[2].tag, Some(10));
    assert_eq!(br.ports[0].interfaces[0].kind, "internal");
}

#[test]
fn row_accessors() {
    let mut data = Data::initial();
    run(
        &mut data,
        "add-br br0 -- set Bridge br0 protocols=OpenFlow13,OpenFlow10 stp_enable=true",
    )
    .unwrap();
    let (_, br) = data.find_by_name("Bridge", "br0").unwrap();
    assert_eq!(br.strs("protocols"), ["OpenFlow10", "OpenFlow13"]);
    assert!(br.bool("stp_enable"));
    assert_eq!(br.opt_str("fail_mode"), None);
    assert_eq!(br.str("datapath_type"), "");
    assert_eq!(
        br.get("name"),
        Some(&Datum::atom(Atom::String("br0".into())))
    );
}
