//! The database contents ([`Data`]), transactions ([`Txn`]) and the rules a
//! transaction must keep to commit: column types and constraints, read-only
//! columns, referential integrity, garbage collection of unreferenced rows
//! of non-root tables, `maxRows` and unique indexes — OVSDB's rules, with
//! OVSDB's error wording where ovs-vsctl shows it to users.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;

use serde::ser::SerializeStruct;
use serde::{Deserialize, Serialize, Serializer};
use serde_json::Value;

use super::error::DbError;
use super::schema::{schema, TableSchema};
use super::value::{Atom, Datum, Uuid};

/// One row: a value for every column of its table.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Row {
    cols: BTreeMap<String, Datum>,
}

impl Row {
    /// A row of `table` with every column at its default value.
    pub fn new_default(table: &TableSchema) -> Row {
        Row {
            cols: table
                .columns
                .iter()
                .map(|(n, c)| (n.clone(), c.ty.default_datum()))
                .collect(),
        }
    }

    pub fn get(&self, column: &str) -> Option<&Datum> {
        self.cols.get(column)
    }

    pub fn columns(&self) -> impl Iterator<Item = (&str, &Datum)> {
        self.cols.iter().map(|(k, v)| (k.as_str(), v))
    }

    pub(crate) fn set(&mut self, column: &str, value: Datum) {
        self.cols.insert(column.to_string(), value);
    }

    /// A string column's value, or the single value of an optional string
    /// column (`""` when unset).
    pub fn str(&self, column: &str) -> &str {
        self.opt_str(column).unwrap_or("")
    }

    pub fn opt_str(&self, column: &str) -> Option<&str> {
        self.get(column)?.first()?.as_str()
    }

    pub fn int(&self, column: &str) -> Option<i64> {
        self.get(column)?.first()?.as_int()
    }

    pub fn bool(&self, column: &str) -> bool {
        self.get(column)
            .and_then(Datum::first)
            .and_then(Atom::as_bool)
            .unwrap_or(false)
    }

    /// The integers of a set column (e.g. `trunks`).
    pub fn ints(&self, column: &str) -> Vec<i64> {
        self.get(column)
            .map(|d| d.keys().filter_map(Atom::as_int).collect())
            .unwrap_or_default()
    }

    /// The strings of a set column (e.g. `protocols`).
    pub fn strs(&self, column: &str) -> Vec<String> {
        self.get(column)
            .map(|d| {
                d.keys()
                    .filter_map(Atom::as_str)
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The UUIDs of a reference column, in OVS's (UUID) order.
    pub fn uuids(&self, column: &str) -> Vec<Uuid> {
        self.get(column).map(Datum::uuids).unwrap_or_default()
    }

    /// A string-to-string map column (`other_config`, `options`, …).
    pub fn string_map(&self, column: &str) -> BTreeMap<String, String> {
        match self.get(column) {
            Some(Datum::Map(m)) => m
                .iter()
                .filter_map(|(k, v)| Some((k.as_str()?.to_string(), v.as_str()?.to_string())))
                .collect(),
            _ => BTreeMap::new(),
        }
    }

    /// A string-to-integer map column (`statistics`).
    pub fn int_map(&self, column: &str) -> BTreeMap<String, i64> {
        match self.get(column) {
            Some(Datum::Map(m)) => m
                .iter()
                .filter_map(|(k, v)| Some((k.as_str()?.to_string(), v.as_int()?)))
                .collect(),
            _ => BTreeMap::new(),
        }
    }
}

impl Serialize for Row {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.cols.iter())
    }
}

/// The contents of the database: every table of the schema, rows keyed by
/// UUID, and a generation number that counts durable commits (ephemeral-only
/// updates such as statistics leave it alone, so they never make a
/// fvs-vsctl snapshot stale).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "DataWire")]
pub struct Data {
    generation: u64,
    tables: BTreeMap<String, BTreeMap<Uuid, Row>>,
}

impl Serialize for Data {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("Data", 2)?;
        st.serialize_field("generation", &self.generation)?;
        st.serialize_field("tables", &self.tables)?;
        st.end()
    }
}

#[derive(Deserialize)]
struct DataWire {
    generation: u64,
    tables: BTreeMap<String, BTreeMap<Uuid, BTreeMap<String, Value>>>,
}

impl TryFrom<DataWire> for Data {
    type Error = String;
    fn try_from(w: DataWire) -> Result<Data, String> {
        let mut data = Data::empty();
        data.generation = w.generation;
        for (t, rows) in w.tables {
            let ts = schema()
                .table(&t)
                .ok_or_else(|| format!("unknown table \"{t}\""))?;
            for (uuid, cols) in rows {
                let row = row_from_json(ts, &cols).map_err(|e| e.to_string())?;
                data.tables.entry(t.clone()).or_default().insert(uuid, row);
            }
        }
        Ok(data)
    }
}

/// Builds a full row of `ts` from JSON columns (missing ones take defaults).
pub(crate) fn row_from_json(
    ts: &TableSchema,
    cols: &BTreeMap<String, Value>,
) -> Result<Row, DbError> {
    let mut row = Row::new_default(ts);
    for (c, v) in cols {
        row.set(c, datum_from_json(ts, c, v)?);
    }
    Ok(row)
}

pub(crate) fn datum_from_json(ts: &TableSchema, column: &str, v: &Value) -> Result<Datum, DbError> {
    let cs = ts.column(column).ok_or_else(|| DbError::NoSuchColumn {
        table: ts.name.clone(),
        column: column.to_string(),
    })?;
    Datum::from_json(v, &cs.ty).map_err(|reason| DbError::BadValue {
        table: ts.name.clone(),
        column: column.to_string(),
        reason,
    })
}

/// One change of a transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// A new row; columns left out take their default values.
    Insert {
        table: String,
        uuid: Uuid,
        row: BTreeMap<String, Datum>,
    },
    /// New values for some columns of an existing row.
    Update {
        table: String,
        uuid: Uuid,
        columns: BTreeMap<String, Datum>,
    },
    /// Removes a row (it must not be strongly referenced any more).
    Delete { table: String, uuid: Uuid },
}

impl Op {
    pub fn table(&self) -> &str {
        match self {
            Op::Insert { table, .. } | Op::Update { table, .. } | Op::Delete { table, .. } => table,
        }
    }
}

/// A transaction: all its operations commit together or not at all.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "TxnWire", into = "TxnWire")]
pub struct Txn {
    /// Recorded in the journal, like OVSDB's transaction comments.
    pub comment: Option<String>,
    pub ops: Vec<Op>,
}

#[derive(Serialize, Deserialize)]
struct TxnWire {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    comment: Option<String>,
    ops: Vec<OpWire>,
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
enum OpWire {
    Insert {
        table: String,
        uuid: Uuid,
        row: BTreeMap<String, Value>,
    },
    Update {
        table: String,
        uuid: Uuid,
        columns: BTreeMap<String, Value>,
    },
    Delete {
        table: String,
        uuid: Uuid,
    },
}

impl From<Txn> for TxnWire {
    fn from(t: Txn) -> TxnWire {
        let cols =
            |m: BTreeMap<String, Datum>| m.into_iter().map(|(k, v)| (k, v.to_json())).collect();
        TxnWire {
            comment: t.comment,
            ops: t
                .ops
                .into_iter()
                .map(|op| match op {
                    Op::Insert { table, uuid, row } => OpWire::Insert {
                        table,
                        uuid,
                        row: cols(row),
                    },
                    Op::Update {
                        table,
                        uuid,
                        columns,
                    } => OpWire::Update {
                        table,
                        uuid,
                        columns: cols(columns),
                    },
                    Op::Delete { table, uuid } => OpWire::Delete { table, uuid },
                })
                .collect(),
        }
    }
}

impl TryFrom<TxnWire> for Txn {
    type Error = DbError;
    fn try_from(w: TxnWire) -> Result<Txn, DbError> {
        let table = |t: &str| {
            schema()
                .table(t)
                .ok_or_else(|| DbError::NoSuchTable(t.to_string()))
        };
        let cols = |ts: &TableSchema, m: BTreeMap<String, Value>| {
            m.into_iter()
                .map(|(c, v)| Ok((c.clone(), datum_from_json(ts, &c, &v)?)))
                .collect::<Result<BTreeMap<_, _>, DbError>>()
        };
        let ops = w
            .ops
            .into_iter()
            .map(|op| {
                Ok(match op {
                    OpWire::Insert {
                        table: t,
                        uuid,
                        row,
                    } => Op::Insert {
                        row: cols(table(&t)?, row)?,
                        table: t,
                        uuid,
                    },
                    OpWire::Update {
                        table: t,
                        uuid,
                        columns,
                    } => Op::Update {
                        columns: cols(table(&t)?, columns)?,
                        table: t,
                        uuid,
                    },
                    OpWire::Delete { table: t, uuid } => {
                        table(&t)?;
                        Op::Delete { table: t, uuid }
                    }
                })
            })
            .collect::<Result<_, DbError>>()?;
        Ok(Txn {
            comment: w.comment,
            ops,
        })
    }
}

impl Txn {
    pub fn new() -> Txn {
        Txn::default()
    }

    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    pub fn insert(&mut self, table: &str, uuid: Uuid, row: BTreeMap<String, Datum>) -> &mut Self {
        self.ops.push(Op::Insert {
            table: table.into(),
            uuid,
            row,
        });
        self
    }

    /// Sets one column, merging with an earlier update of the same row.
    pub fn update(&mut self, table: &str, uuid: Uuid, column: &str, value: Datum) -> &mut Self {
        if let Some(Op::Update { columns, .. }) = self.ops.iter_mut().rev().find(
            |op| matches!(op, Op::Update { table: t, uuid: u, .. } if t == table && *u == uuid),
        ) {
            columns.insert(column.into(), value);
        } else {
            self.ops.push(Op::Update {
                table: table.into(),
                uuid,
                columns: BTreeMap::from([(column.into(), value)]),
            });
        }
        self
    }

    pub fn delete(&mut self, table: &str, uuid: Uuid) -> &mut Self {
        self.ops.push(Op::Delete {
            table: table.into(),
            uuid,
        });
        self
    }

    /// The transaction that turns `old` into `new`, as the OVS IDL would send
    /// it: new rows are inserts of their non-default columns, changed rows are
    /// updates of the changed columns, and removed rows are deletes only in
    /// root tables — a removed row of another table is left for the garbage
    /// collector, so one that is still referenced simply stays.
    pub fn diff(old: &Data, new: &Data) -> Txn {
        let mut txn = Txn::new();
        for (t, ts) in &schema().tables {
            let (o, n) = (old.tables.get(t), new.tables.get(t));
            let empty = BTreeMap::new();
            let (o, n) = (o.unwrap_or(&empty), n.unwrap_or(&empty));
            for (uuid, nrow) in n {
                match o.get(uuid) {
                    None => {
                        let row = nrow
                            .cols
                            .iter()
                            .filter(|(c, d)| ts.column(c).is_some_and(|cs| !d.is_default(&cs.ty)))
                            .map(|(c, d)| (c.clone(), d.clone()))
                            .collect();
                        txn.insert(t, *uuid, row);
                    }
                    Some(orow) if orow != nrow => {
                        let columns: BTreeMap<_, _> = nrow
                            .cols
                            .iter()
                            .filter(|(c, d)| orow.get(c) != Some(*d))
                            .map(|(c, d)| (c.clone(), d.clone()))
                            .collect();
                        txn.ops.push(Op::Update {
                            table: t.clone(),
                            uuid: *uuid,
                            columns,
                        });
                    }
                    Some(_) => {}
                }
            }
            if ts.is_root {
                for uuid in o.keys().filter(|u| !n.contains_key(u)) {
                    txn.delete(t, *uuid);
                }
            }
        }
        txn
    }
}

/// What a commit changed in durable columns, per table and row: `None` for
/// a deleted row, else the new row's non-default columns (an insert) or the
/// changed columns (an update). This is what the journal records.
pub type Changes = BTreeMap<String, BTreeMap<Uuid, Option<BTreeMap<String, Datum>>>>;

/// A reference column: (table, column, referenced table, strong?).
struct RefColumn {
    table: &'static str,
    column: &'static str,
    ref_table: &'static str,
    strong: bool,
}

fn ref_columns() -> &'static [RefColumn] {
    static REFS: OnceLock<Vec<RefColumn>> = OnceLock::new();
    REFS.get_or_init(|| {
        let mut v = Vec::new();
        for (t, ts) in &schema().tables {
            for (c, cs) in &ts.columns {
                for base in std::iter::once(&cs.ty.key).chain(cs.ty.value.as_ref()) {
                    if let Some(rt) = &base.ref_table {
                        v.push(RefColumn {
                            table: t,
                            column: c,
                            ref_table: rt,
                            strong: !base.weak,
                        });
                    }
                }
            }
        }
        v
    })
}

impl Default for Data {
    fn default() -> Self {
        Data::empty()
    }
}

impl Data {
    /// Every table, no rows.
    pub fn empty() -> Data {
        Data {
            generation: 0,
            tables: schema()
                .tables
                .keys()
                .map(|t| (t.clone(), BTreeMap::new()))
                .collect(),
        }
    }

    /// A fresh database: one `Open_vSwitch` row with default values.
    pub fn initial() -> Data {
        let mut d = Data::empty();
        d.insert_default("Open_vSwitch", Uuid::new_v4());
        d
    }

    /// Counts durable commits; a transaction made from a snapshot of
    /// generation `g` commits only while the database is still at `g`.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    pub(crate) fn set_generation(&mut self, g: u64) {
        self.generation = g;
    }

    /// The rows of `table` in UUID order (empty for an unknown table).
    pub fn rows(&self, table: &str) -> impl Iterator<Item = (Uuid, &Row)> {
        self.tables
            .get(table)
            .into_iter()
            .flatten()
            .map(|(u, r)| (*u, r))
    }

    pub fn row(&self, table: &str, uuid: Uuid) -> Option<&Row> {
        self.tables.get(table)?.get(&uuid)
    }

    pub fn row_count(&self, table: &str) -> usize {
        self.tables.get(table).map_or(0, BTreeMap::len)
    }

    /// The `Open_vSwitch` row (the first, if a broken database had several).
    pub fn root(&self) -> Option<(Uuid, &Row)> {
        self.rows("Open_vSwitch").next()
    }

    /// The table holding a row with this UUID.
    pub fn table_of(&self, uuid: Uuid) -> Option<&str> {
        self.tables
            .iter()
            .find(|(_, rows)| rows.contains_key(&uuid))
            .map(|(t, _)| t.as_str())
    }

    /// Inserts a row with default values (no checks: for working copies).
    pub(crate) fn insert_default(&mut self, table: &str, uuid: Uuid) {
        let ts = schema().table(table).expect("known table");
        self.tables
            .entry(table.into())
            .or_default()
            .insert(uuid, Row::new_default(ts));
    }

    pub(crate) fn row_mut(&mut self, table: &str, uuid: Uuid) -> Option<&mut Row> {
        self.tables.get_mut(table)?.get_mut(&uuid)
    }

    pub(crate) fn remove_row(&mut self, table: &str, uuid: Uuid) -> Option<Row> {
        self.tables.get_mut(table)?.remove(&uuid)
    }

    /// Applies `txn` atomically: on error `self` is unchanged. Returns the
    /// durable changes (empty when only ephemeral columns changed); the
    /// generation moves only when there are some.
    pub fn apply(&mut self, txn: &Txn) -> Result<Changes, DbError> {
        let (new, changes) = self.applied(txn)?;
        *self = new;
        Ok(changes)
    }

    /// The contents after `txn`, and its durable changes, leaving `self` alone.
    pub fn applied(&self, txn: &Txn) -> Result<(Data, Changes), DbError> {
        let mut new = self.clone();
        let mut touched: BTreeSet<(String, Uuid)> = BTreeSet::new();
        let mut inserted: BTreeSet<Uuid> = BTreeSet::new();
        let mut deleted: BTreeSet<Uuid> = BTreeSet::new();
        let mut refs_changed = false;
        let mut index_touched: BTreeSet<String> = BTreeSet::new();

        for op in &txn.ops {
            let ts = schema()
                .table(op.table())
                .ok_or_else(|| DbError::NoSuchTable(op.table().into()))?;
            let bad = |column: &str, reason: String| DbError::BadValue {
                table: ts.name.clone(),
                column: column.into(),
                reason,
            };
            match op {
                Op::Insert { table, uuid, row } => {
                    if new.table_of(*uuid).is_some() {
                        return Err(DbError::DuplicateUuid {
                            table: table.clone(),
                            uuid: *uuid,
                        });
                    }
                    let mut full = Row::new_default(ts);
                    for (c, d) in row {
                        let cs = ts.column(c).ok_or_else(|| no_column(ts, c))?;
                        d.check(&cs.ty).map_err(|e| bad(c, e))?;
                        full.set(c, d.clone());
                    }
                    new.tables
                        .entry(table.clone())
                        .or_default()
                        .insert(*uuid, full);
                    inserted.insert(*uuid);
                    refs_changed = true;
                    index_touched.insert(table.clone());
                    touched.insert((table.clone(), *uuid));
                }
                Op::Update {
                    table,
                    uuid,
                    columns,
                } => {
                    let is_new = inserted.contains(uuid);
                    let row = new
                        .row_mut(table, *uuid)
                        .ok_or_else(|| DbError::NoSuchRow {
                            table: table.clone(),
                            uuid: *uuid,
                        })?;
                    for (c, d) in columns {
                        let cs = ts.column(c).ok_or_else(|| no_column(ts, c))?;
                        d.check(&cs.ty).map_err(|e| bad(c, e))?;
                        if !cs.mutable && !is_new && row.get(c) != Some(d) {
                            return Err(DbError::ReadOnly {
                                table: table.clone(),
                                column: c.clone(),
                            });
                        }
                        refs_changed |= cs.ty.key.ref_table.is_some()
                            || cs.ty.value.as_ref().is_some_and(|v| v.ref_table.is_some());
                        if ts.indexes.iter().flatten().any(|ic| ic == c) {
                            index_touched.insert(table.clone());
                        }
                        row.set(c, d.clone());
                    }
                    touched.insert((table.clone(), *uuid));
                }
                Op::Delete { table, uuid } => {
                    new.remove_row(table, *uuid)
                        .ok_or_else(|| DbError::NoSuchRow {
                            table: table.clone(),
                            uuid: *uuid,
                        })?;
                    deleted.insert(*uuid);
                    refs_changed = true;
                    touched.insert((table.clone(), *uuid));
                }
            }
        }

        if refs_changed {
            new.check_strong_refs(&deleted)?;
            new.collect_garbage(&mut touched);
            new.remove_dangling_weak_refs(&mut touched)?;
        }
        for (t, ts) in &schema().tables {
            if let Some(max) = ts.max_rows {
                let n = new.row_count(t);
                if n > max && n > self.row_count(t) {
                    return Err(DbError::Constraint(format!(
                        "transaction causes \"{t}\" table to contain {n} rows, greater than the \
                         schema-defined limit of {max} row(s)"
                    )));
                }
            }
        }
        for t in &index_touched {
            new.check_indexes(self, t, &touched, &inserted)?;
        }

        let changes = durable_changes(self, &new, &touched);
        new.generation = self.generation + u64::from(!changes.is_empty());
        Ok((new, changes))
    }

    /// Every strong reference must point at an existing row.
    fn check_strong_refs(&self, deleted: &BTreeSet<Uuid>) -> Result<(), DbError> {
        for rc in ref_columns().iter().filter(|rc| rc.strong) {
            for (uuid, row) in self.rows(rc.table) {
                let Some(d) = row.get(rc.column) else {
                    continue;
                };
                for target in d.uuids() {
                    if self.row(rc.ref_table, target).is_some() {
                        continue;
                    }
                    return Err(DbError::Referential(if deleted.contains(&target) {
                        let n = self.count_strong_refs(target);
                        format!(
                            "cannot delete {} row {target} because of {n} remaining reference(s)",
                            rc.ref_table
                        )
                    } else {
                        format!(
                            "Table {} column {} row {uuid} references nonexistent row {target} in table {}.",
                            rc.table, rc.column, rc.ref_table
                        )
                    }));
                }
            }
        }
        Ok(())
    }

    fn count_strong_refs(&self, target: Uuid) -> usize {
        ref_columns()
            .iter()
            .filter(|rc| rc.strong)
            .flat_map(|rc| {
                self.rows(rc.table)
                    .filter_map(move |(_, r)| r.get(rc.column))
            })
            .map(|d| d.uuids().into_iter().filter(|u| *u == target).count())
            .sum()
    }

    /// Deletes the rows of non-root tables that no root row reaches through
    /// strong references (OVSDB's `isRoot` garbage collection).
    fn collect_garbage(&mut self, touched: &mut BTreeSet<(String, Uuid)>) {
        let mut reached: BTreeSet<Uuid> = BTreeSet::new();
        let mut stack: Vec<(&str, Uuid)> = Vec::new();
        for (t, ts) in &schema().tables {
            if ts.is_root {
                stack.extend(self.rows(t).map(|(u, _)| (t.as_str(), u)));
            }
        }
        while let Some((t, u)) = stack.pop() {
            if !reached.insert(u) {
                continue;
            }
            for rc in ref_columns().iter().filter(|rc| rc.strong && rc.table == t) {
                if let Some(d) = self.row(t, u).and_then(|r| r.get(rc.column)) {
                    stack.extend(
                        d.uuids()
                            .into_iter()
                            .filter(|target| self.row(rc.ref_table, *target).is_some())
                            .map(|target| (rc.ref_table, target)),
                    );
                }
            }
        }
        for (t, ts) in &schema().tables {
            if ts.is_root {
                continue;
            }
            if let Some(rows) = self.tables.get_mut(t) {
                rows.retain(|u, _| {
                    let keep = reached.contains(u);
                    if !keep {
                        touched.insert((t.clone(), *u));
                    }
                    keep
                });
            }
        }
    }

    /// Drops weak references to rows that no longer exist.
    fn remove_dangling_weak_refs(
        &mut self,
        touched: &mut BTreeSet<(String, Uuid)>,
    ) -> Result<(), DbError> {
        for rc in ref_columns().iter().filter(|rc| !rc.strong) {
            let dangling: Vec<(Uuid, Uuid)> = self
                .rows(rc.table)
                .flat_map(|(u, r)| {
                    r.get(rc.column)
                        .map(Datum::uuids)
                        .unwrap_or_default()
                        .into_iter()
                        .filter(|t| self.row(rc.ref_table, *t).is_none())
                        .map(move |t| (u, t))
                })
                .collect();
            for (u, target) in dangling {
                let ty = &schema().tables[rc.table].columns[rc.column].ty;
                let row = self.row_mut(rc.table, u).expect("row just seen");
                let mut d = row
                    .get(rc.column)
                    .cloned()
                    .unwrap_or_else(|| ty.default_datum());
                match &mut d {
                    Datum::Set(s) => {
                        s.remove(&Atom::Uuid(target));
                    }
                    Datum::Map(m) => {
                        m.retain(|k, v| *k != Atom::Uuid(target) && *v != Atom::Uuid(target))
                    }
                }
                d.check(ty).map_err(|e| {
                    DbError::Constraint(format!("{} column {} row {u}: {e}", rc.table, rc.column))
                })?;
                row.set(rc.column, d);
                touched.insert((rc.table.to_string(), u));
            }
        }
        Ok(())
    }

    /// No two rows of `table` may share the values of an index.
    fn check_indexes(
        &self,
        old: &Data,
        table: &str,
        touched: &BTreeSet<(String, Uuid)>,
        inserted: &BTreeSet<Uuid>,
    ) -> Result<(), DbError> {
        let ts = &schema().tables[table];
        for index in &ts.indexes {
            let key = |r: &Row| index.iter().map(|c| r.get(c).cloned()).collect::<Vec<_>>();
            let mut seen: BTreeMap<Vec<Option<Datum>>, Uuid> = BTreeMap::new();
            for (u, r) in self.rows(table) {
                let Some(other) = seen.insert(key(r), u) else {
                    continue;
                };
                let unmodified = |x: Uuid| !touched.contains(&(table.to_string(), x));
                // The row the transaction did not touch is "first", as in OVSDB.
                let (first, second) = if unmodified(u) && !unmodified(other) {
                    (u, other)
                } else {
                    (other, u)
                };
                let values: Vec<String> = index
                    .iter()
                    .map(|c| {
                        r.get(c)
                            .map(|d| d.to_string(&ts.columns[c].ty))
                            .unwrap_or_default()
                    })
                    .collect();
                let describe = |x: Uuid, title: &str| {
                    let status = if unmodified(x) {
                        "existed in the database before this transaction and was not modified by the transaction."
                            .to_string()
                    } else if inserted.contains(&x) {
                        "was inserted by this transaction.".to_string()
                    } else {
                        match old.row(table, x) {
                            Some(o) if key(o) == key(self.row(table, x).expect("row exists")) => {
                                "existed in the database before this transaction, which modified some of \
                                 the row's columns but not any columns in this index."
                                    .to_string()
                            }
                            Some(o) => format!(
                                "had the following index values before the transaction: {}.",
                                index
                                    .iter()
                                    .map(|c| o.get(c).map(|d| d.to_string(&ts.columns[c].ty)).unwrap_or_default())
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            ),
                            None => "was inserted by this transaction.".to_string(),
                        }
                    };
                    format!("{title} row, with UUID {x}, {status}")
                };
                return Err(DbError::Constraint(format!(
                    "Transaction causes multiple rows in \"{table}\" table to have identical values ({}) \
                     for index on {}.  {}  {}",
                    values.join(" and "),
                    column_list(index),
                    describe(first, "First"),
                    describe(second, "Second"),
                )));
            }
        }
        Ok(())
    }

    /// Applies journal changes (no constraint checks: they held at commit).
    pub(crate) fn apply_changes(&mut self, changes: &Changes) -> Result<(), String> {
        for (t, rows) in changes {
            let ts = schema()
                .table(t)
                .ok_or_else(|| format!("unknown table \"{t}\""))?;
            let table = self.tables.entry(t.clone()).or_default();
            for (u, change) in rows {
                match change {
                    None => {
                        table
                            .remove(u)
                            .ok_or_else(|| format!("deletes missing row {u} of table {t}"))?;
                    }
                    Some(cols) => {
                        let row = table.entry(*u).or_insert_with(|| Row::new_default(ts));
                        for (c, d) in cols {
                            if ts.column(c).is_none() {
                                return Err(format!("table {t} has no column \"{c}\""));
                            }
                            row.set(c, d.clone());
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Every strong reference resolves (checked after loading a journal).
    pub(crate) fn check_integrity(&self) -> Result<(), DbError> {
        self.check_strong_refs(&BTreeSet::new())
    }

    /// The durable contents in journal form: non-default, non-ephemeral columns.
    pub(crate) fn durable_snapshot(&self) -> Changes {
        let mut out = Changes::new();
        for (t, ts) in &schema().tables {
            let rows = out.entry(t.clone()).or_default();
            for (u, r) in self.rows(t) {
                rows.insert(u, Some(durable_columns(ts, r, None)));
            }
        }
        out.retain(|_, rows| !rows.is_empty());
        out
    }
}

fn no_column(ts: &TableSchema, c: &str) -> DbError {
    DbError::NoSuchColumn {
        table: ts.name.clone(),
        column: c.to_string(),
    }
}

fn column_list(cols: &[String]) -> String {
    let q: Vec<String> = cols.iter().map(|c| format!("\"{c}\"")).collect();
    match q.as_slice() {
        [one] => format!("column {one}"),
        [a, b] => format!("columns {a} and {b}"),
        _ => format!(
            "columns {}, and {}",
            q[..q.len() - 1].join(", "),
            q.last().map(String::as_str).unwrap_or("")
        ),
    }
}

/// Durable columns of `row`: all non-default ones, or with `old` only those
/// that differ from it.
fn durable_columns(ts: &TableSchema, row: &Row, old: Option<&Row>) -> BTreeMap<String, Datum> {
    row.columns()
        .filter(|(c, d)| {
            ts.column(c).is_some_and(|cs| {
                !cs.ephemeral
                    && match old {
                        None => !d.is_default(&cs.ty),
                        Some(o) => o.get(c) != Some(*d),
                    }
            })
        })
        .map(|(c, d)| (c.to_string(), d.clone()))
        .collect()
}

fn durable_changes(old: &Data, new: &Data, touched: &BTreeSet<(String, Uuid)>) -> Changes {
    let mut out = Changes::new();
    for (t, u) in touched {
        let ts = &schema().tables[t];
        let change = match (old.row(t, *u), new.row(t, *u)) {
            (None, None) => continue,
            (Some(_), None) => None,
            (None, Some(n)) => Some(durable_columns(ts, n, None)),
            (Some(o), Some(n)) => {
                let cols = durable_columns(ts, n, Some(o));
                if cols.is_empty() {
                    continue;
                }
                Some(cols)
            }
        };
        out.entry(t.clone()).or_default().insert(*u, change);
    }
    out
}
