//! The command table and the database commands every OVS `*-ctl` shares
//! (`lib/db-ctl-base.c`): get, list, find, set, add, remove, clear, create,
//! destroy, wait-until, comment. Commands work on a working copy of the
//! snapshot; `super::execute` turns the difference into the transaction.

use crate::db::{
    parse_atom, parse_token, schema, Atom, ColumnSchema, Data, Datum, Symtab, TableSchema, Type,
    Uuid,
};

use super::bridge;
use super::output::{Cell, Table};
use super::{show, Command, VsctlError};

/// What a command produced.
pub(crate) enum Out {
    Text(String),
    Table(Table),
}

/// Why a command stopped early.
pub(crate) enum Stop {
    Fail(VsctlError),
    /// `br-exists` on a missing bridge: exit now with this status, committing nothing.
    Exit(i32),
    /// `wait-until`: the condition does not hold yet.
    TryAgain,
}

impl From<VsctlError> for Stop {
    fn from(e: VsctlError) -> Stop {
        Stop::Fail(e)
    }
}

pub(crate) type R<T> = Result<T, Stop>;

pub(crate) fn fail(msg: impl Into<String>) -> Stop {
    Stop::Fail(VsctlError::Command(msg.into()))
}

/// The state commands share within one invocation.
pub(crate) struct Ctx<'a> {
    pub base: &'a Data,
    /// The working copy the commands modify.
    pub data: Data,
    /// The `Open_vSwitch` row.
    pub ovs: Uuid,
    pub symtab: Symtab,
    pub warnings: Vec<String>,
}

impl<'a> Ctx<'a> {
    pub fn new(base: &'a Data) -> Ctx<'a> {
        let mut data = base.clone();
        // Like ovs-vsctl, supply the root row if the database lacks one.
        let ovs = match data.root() {
            Some((u, _)) => u,
            None => {
                let u = Uuid::new_v4();
                data.insert_default("Open_vSwitch", u);
                u
            }
        };
        Ctx {
            base,
            data,
            ovs,
            symtab: Symtab::default(),
            warnings: Vec::new(),
        }
    }

    /// A column's current value (its default if the row lacks it).
    pub fn datum(&self, table: &str, uuid: Uuid, column: &ColumnSchema) -> Datum {
        self.data
            .row(table, uuid)
            .and_then(|r| r.get(&column.name))
            .cloned()
            .unwrap_or_else(|| column.ty.default_datum())
    }

    pub fn write(&mut self, table: &str, uuid: Uuid, column: &str, value: Datum) {
        if let Some(r) = self.data.row_mut(table, uuid) {
            r.set(column, value);
        }
    }

    pub fn insert(&mut self, table: &str, uuid: Uuid) {
        self.data.insert_default(table, uuid);
    }

    pub fn delete(&mut self, table: &str, uuid: Uuid) {
        self.data.remove_row(table, uuid);
    }

    /// A row may be written in any column if this transaction created it.
    fn check_mutable(&self, ts: &TableSchema, uuid: Uuid, column: &ColumnSchema) -> R<()> {
        if column.mutable || self.base.row(&ts.name, uuid).is_none() {
            Ok(())
        } else {
            Err(fail(format!(
                "cannot modify read-only column {} in table {}",
                column.name, ts.name
            )))
        }
    }
}

impl Command {
    pub(crate) fn has(&self, option: &str) -> bool {
        self.options.contains_key(option)
    }

    pub(crate) fn opt(&self, option: &str) -> Option<&str> {
        self.options.get(option).and_then(|v| v.as_deref())
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    ReadOnly,
    ReadWrite,
}

/// One command: its arity (arguments after the name), the options it
/// accepts (`--id=` takes a value), and how to run it.
pub(crate) struct Syntax {
    pub name: &'static str,
    pub min_args: usize,
    pub max_args: usize,
    pub arguments: &'static str,
    pub options: &'static str,
    pub mode: Mode,
    pub run: fn(&mut Ctx, &Command) -> R<Out>,
}

const MANY: usize = usize::MAX;

macro_rules! syntax {
    ($name:literal, $min:expr, $max:expr, $args:literal, $opts:literal, $mode:ident, $run:expr) => {
        Syntax {
            name: $name,
            min_args: $min,
            max_args: $max,
            arguments: $args,
            options: $opts,
            mode: Mode::$mode,
            run: $run,
        }
    };
}

pub(crate) static SYNTAXES: &[Syntax] = &[
    syntax!("init", 0, 0, "", "", ReadWrite, |_, _| Ok(Out::Text(
        String::new()
    ))),
    syntax!("show", 0, 0, "", "", ReadOnly, show::cmd_show),
    syntax!(
        "emer-reset",
        0,
        0,
        "",
        "",
        ReadWrite,
        bridge::cmd_emer_reset
    ),
    syntax!(
        "add-br",
        1,
        3,
        "NEW-BRIDGE [PARENT] [NEW-VLAN]",
        "--may-exist",
        ReadWrite,
        bridge::cmd_add_br
    ),
    syntax!(
        "del-br",
        1,
        1,
        "BRIDGE",
        "--if-exists",
        ReadWrite,
        bridge::cmd_del_br
    ),
    syntax!(
        "list-br",
        0,
        0,
        "",
        "--real,--fake",
        ReadOnly,
        bridge::cmd_list_br
    ),
    syntax!(
        "br-exists",
        1,
        1,
        "BRIDGE",
        "",
        ReadOnly,
        bridge::cmd_br_exists
    ),
    syntax!(
        "br-to-vlan",
        1,
        1,
        "BRIDGE",
        "",
        ReadOnly,
        bridge::cmd_br_to_vlan
    ),
    syntax!(
        "br-to-parent",
        1,
        1,
        "BRIDGE",
        "",
        ReadOnly,
        bridge::cmd_br_to_parent
    ),
    syntax!(
        "br-set-external-id",
        2,
        3,
        "BRIDGE KEY [VALUE]",
        "",
        ReadWrite,
        bridge::cmd_br_set_external_id
    ),
    syntax!(
        "br-get-external-id",
        1,
        2,
        "BRIDGE [KEY]",
        "",
        ReadOnly,
        bridge::cmd_br_get_external_id
    ),
    syntax!(
        "list-ports",
        1,
        1,
        "BRIDGE",
        "",
        ReadOnly,
        bridge::cmd_list_ports
    ),
    syntax!(
        "add-port",
        2,
        MANY,
        "BRIDGE NEW-PORT [COLUMN[:KEY]=VALUE]...",
        "--may-exist",
        ReadWrite,
        bridge::cmd_add_port
    ),
    syntax!(
        "del-port",
        1,
        2,
        "[BRIDGE] PORT|IFACE",
        "--if-exists,--with-iface",
        ReadWrite,
        bridge::cmd_del_port
    ),
    syntax!(
        "port-to-br",
        1,
        1,
        "PORT",
        "",
        ReadOnly,
        bridge::cmd_port_to_br
    ),
    syntax!(
        "add-bond",
        4,
        MANY,
        "BRIDGE BOND IFACE... [COLUMN[:KEY]=VALUE]...",
        "--may-exist,--fake-iface",
        ReadWrite,
        bridge::cmd_add_bond
    ),
    syntax!(
        "add-bond-iface",
        2,
        2,
        "BOND IFACE",
        "--may-exist",
        ReadWrite,
        bridge::cmd_add_bond_iface
    ),
    syntax!(
        "del-bond-iface",
        1,
        2,
        "[BOND] IFACE",
        "--if-exists",
        ReadWrite,
        bridge::cmd_del_bond_iface
    ),
    syntax!(
        "list-ifaces",
        1,
        1,
        "BRIDGE",
        "",
        ReadOnly,
        bridge::cmd_list_ifaces
    ),
    syntax!(
        "iface-to-br",
        1,
        1,
        "IFACE",
        "",
        ReadOnly,
        bridge::cmd_iface_to_br
    ),
    syntax!(
        "get-controller",
        1,
        1,
        "BRIDGE",
        "",
        ReadOnly,
        bridge::cmd_get_controller
    ),
    syntax!(
        "del-controller",
        1,
        1,
        "BRIDGE",
        "",
        ReadWrite,
        bridge::cmd_del_controller
    ),
    syntax!(
        "set-controller",
        1,
        MANY,
        "BRIDGE TARGET...",
        "--inactivity-probe=",
        ReadWrite,
        bridge::cmd_set_controller
    ),
    syntax!(
        "get-fail-mode",
        1,
        1,
        "BRIDGE",
        "",
        ReadOnly,
        bridge::cmd_get_fail_mode
    ),
    syntax!(
        "del-fail-mode",
        1,
        1,
        "BRIDGE",
        "",
        ReadWrite,
        bridge::cmd_del_fail_mode
    ),
    syntax!(
        "set-fail-mode",
        2,
        2,
        "BRIDGE MODE",
        "",
        ReadWrite,
        bridge::cmd_set_fail_mode
    ),
    syntax!(
        "get-manager",
        0,
        0,
        "",
        "",
        ReadOnly,
        bridge::cmd_get_manager
    ),
    syntax!(
        "del-manager",
        0,
        0,
        "",
        "",
        ReadWrite,
        bridge::cmd_del_manager
    ),
    syntax!(
        "set-manager",
        1,
        MANY,
        "TARGET...",
        "--inactivity-probe=",
        ReadWrite,
        bridge::cmd_set_manager
    ),
    syntax!("get-ssl", 0, 0, "", "", ReadOnly, bridge::cmd_get_ssl),
    syntax!("del-ssl", 0, 0, "", "", ReadWrite, bridge::cmd_del_ssl),
    syntax!(
        "set-ssl",
        3,
        3,
        "PRIVATE-KEY CERTIFICATE CA-CERT",
        "--bootstrap",
        ReadWrite,
        bridge::cmd_set_ssl
    ),
    syntax!(
        "add-aa-mapping",
        3,
        3,
        "BRIDGE ARG ARG",
        "",
        ReadWrite,
        bridge::cmd_add_aa_mapping
    ),
    syntax!(
        "del-aa-mapping",
        3,
        3,
        "BRIDGE ARG ARG",
        "",
        ReadWrite,
        bridge::cmd_del_aa_mapping
    ),
    syntax!(
        "get-aa-mapping",
        1,
        1,
        "BRIDGE",
        "",
        ReadOnly,
        bridge::cmd_get_aa_mapping
    ),
    syntax!("comment", 0, MANY, "[ARG]...", "", ReadOnly, |_, _| Ok(
        Out::Text(String::new())
    )),
    syntax!(
        "get",
        2,
        MANY,
        "TABLE RECORD [COLUMN[:KEY]]...",
        "--if-exists,--id=",
        ReadOnly,
        cmd_get
    ),
    syntax!(
        "list",
        1,
        MANY,
        "TABLE [RECORD]...",
        "--if-exists,--columns=",
        ReadOnly,
        cmd_list
    ),
    syntax!(
        "find",
        1,
        MANY,
        "TABLE [COLUMN[:KEY]=VALUE]...",
        "--columns=",
        ReadOnly,
        cmd_find
    ),
    syntax!(
        "set",
        3,
        MANY,
        "TABLE RECORD COLUMN[:KEY]=VALUE...",
        "--if-exists",
        ReadWrite,
        cmd_set
    ),
    syntax!(
        "add",
        4,
        MANY,
        "TABLE RECORD COLUMN [KEY=]VALUE...",
        "--if-exists",
        ReadWrite,
        cmd_add
    ),
    syntax!(
        "remove",
        4,
        MANY,
        "TABLE RECORD COLUMN KEY|VALUE|KEY=VALUE...",
        "--if-exists",
        ReadWrite,
        cmd_remove
    ),
    syntax!(
        "clear",
        3,
        MANY,
        "TABLE RECORD COLUMN...",
        "--if-exists",
        ReadWrite,
        cmd_clear
    ),
    syntax!(
        "create",
        2,
        MANY,
        "TABLE COLUMN[:KEY]=VALUE...",
        "--id=",
        ReadWrite,
        cmd_create
    ),
    syntax!(
        "destroy",
        1,
        MANY,
        "TABLE [RECORD]...",
        "--if-exists,--all",
        ReadWrite,
        cmd_destroy
    ),
    syntax!(
        "wait-until",
        2,
        MANY,
        "TABLE RECORD [COLUMN[:KEY]=VALUE]...",
        "",
        ReadOnly,
        cmd_wait_until
    ),
];

pub(crate) fn find_syntax(name: &str) -> Option<&'static Syntax> {
    SYNTAXES.iter().find(|s| s.name == name)
}

/// OVS's `score_partial_match`: exact beats case/dash-insensitive equality
/// beats the length of a matching prefix.
fn score(name: &str, s: &str) -> usize {
    if name == s {
        return usize::MAX;
    }
    let norm = |c: u8| {
        if c == b'-' {
            b'_'
        } else {
            c.to_ascii_lowercase()
        }
    };
    let (n, b) = (name.as_bytes(), s.as_bytes());
    let mut i = 0;
    loop {
        let (cn, cs) = (n.get(i).copied(), b.get(i).copied());
        if cn.map(norm) != cs.map(norm) {
            break;
        }
        if cn.is_none() {
            return usize::MAX - 1;
        }
        i += 1;
    }
    if i == b.len() {
        i
    } else {
        0
    }
}

/// The best-scoring name among `names`, or the list of ties.
fn best_match<'n>(names: impl Iterator<Item = &'n str>, s: &str) -> Result<&'n str, Vec<&'n str>> {
    let mut best: Vec<&str> = Vec::new();
    let mut best_score = 0;
    for n in names {
        let sc = score(n, s);
        if sc > 0 && sc >= best_score {
            if sc > best_score {
                best.clear();
            }
            best.push(n);
            best_score = sc;
        }
    }
    match best.as_slice() {
        [one] => Ok(one),
        _ => Err(best),
    }
}

pub(crate) fn get_table(name: &str) -> R<&'static TableSchema> {
    match best_match(schema().tables.keys().map(String::as_str), name) {
        Ok(t) => Ok(&schema().tables[t]),
        Err(m) if m.is_empty() => Err(fail(format!("unknown table \"{name}\""))),
        Err(m) => Err(fail(format!(
            "\"{name}\" matches multiple table names: {}",
            m.join(", ")
        ))),
    }
}

pub(crate) fn get_column(ts: &'static TableSchema, name: &str) -> R<&'static ColumnSchema> {
    match best_match(ts.columns.keys().map(String::as_str), name) {
        Ok(c) => Ok(&ts.columns[c]),
        Err(m) if m.is_empty() => Err(fail(format!(
            "{} does not contain a column whose name matches \"{name}\"",
            ts.name
        ))),
        Err(m) => Err(fail(format!(
            "{} contains more than one column whose name matches \"{name}\": {}",
            ts.name,
            m.join(", ")
        ))),
    }
}

/// How ovs-vsctl lets users name a row of each table, besides by UUID:
/// (table holding the name, name column, column of that row pointing here).
fn row_id(table: &str) -> Option<(&'static str, &'static str, Option<&'static str>)> {
    Some(match table {
        "Bridge" => ("Bridge", "name", None),
        "Controller" => ("Bridge", "name", Some("controller")),
        "Interface" => ("Interface", "name", None),
        "Mirror" => ("Mirror", "name", None),
        "Manager" => ("Manager", "target", None),
        "NetFlow" => ("Bridge", "name", Some("netflow")),
        "Port" => ("Port", "name", None),
        "QoS" => ("Port", "name", Some("qos")),
        "sFlow" => ("Bridge", "name", Some("sflow")),
        "Flow_Table" => ("Flow_Table", "name", None),
        "IPFIX" => ("Bridge", "name", Some("ipfix")),
        "AutoAttach" => ("Bridge", "name", Some("auto_attach")),
        "Flow_Sample_Collector_Set" => ("Flow_Sample_Collector_Set", "id", None),
        _ => return None,
    })
}

/// OVS's `ctl_get_row`: a UUID, `.` for a table's only row, a name, or a
/// UUID prefix of at least 4 characters.
pub(crate) fn get_row(
    ctx: &Ctx,
    ts: &TableSchema,
    record: &str,
    must_exist: bool,
) -> R<Option<Uuid>> {
    let table = ts.name.as_str();
    let mut found = Uuid::parse(record).filter(|u| ctx.data.row(table, *u).is_some());
    if found.is_none() && record == "." && ctx.data.row_count(table) == 1 {
        found = ctx.data.rows(table).next().map(|(u, _)| u);
    }
    if let (None, Some((id_table, name_col, uuid_col))) = (found, row_id(table)) {
        let integer = id_table == "Flow_Sample_Collector_Set";
        let matches = |r: &crate::db::Row| -> bool {
            if integer {
                !record.is_empty()
                    && record.bytes().all(|b| b.is_ascii_digit())
                    && r.int(name_col) == record.parse::<i64>().ok()
            } else {
                match r
                    .get(name_col)
                    .filter(|d| d.len() == 1)
                    .and_then(Datum::first)
                    .and_then(Atom::as_str)
                {
                    Some(name) => {
                        name == record
                            || (record.len() >= 4
                                && Uuid::parse(name).is_some()
                                && name.starts_with(record))
                    }
                    None => false,
                }
            }
        };
        let mut referrer = None;
        for (u, r) in ctx.data.rows(id_table) {
            if matches(r) {
                if referrer.is_some() {
                    return Err(fail(format!(
                        "multiple rows in {id_table} match \"{record}\""
                    )));
                }
                referrer = Some(u);
            }
        }
        found = match (referrer, uuid_col) {
            (Some(r), None) => Some(r),
            (Some(r), Some(col)) => {
                let refs = ctx
                    .data
                    .row(id_table, r)
                    .map(|row| row.uuids(col))
                    .unwrap_or_default();
                match refs.as_slice() {
                    [one] if ctx.data.row(table, *one).is_some() => Some(*one),
                    _ => None,
                }
            }
            (None, _) => None,
        };
    }
    if found.is_none() && Uuid::partial_len(record) >= 4 {
        for (u, _) in ctx.data.rows(table) {
            if u.to_string().starts_with(record) {
                if let Some(first) = found {
                    return Err(fail(format!(
                        "{table} contains 2 or more rows whose UUIDs begin with {record}: at least {first} and {u}"
                    )));
                }
                found = Some(u);
            }
        }
    }
    if must_exist && found.is_none() {
        return Err(fail(format!("no row \"{record}\" in table {table}")));
    }
    Ok(found)
}

const RELOPS: &[&str] = &[
    "=", "!=", "<", ">", "<=", ">=", "{=}", "{!=}", "{<}", "{>}", "{<=}", "{>=}", "{in}",
    "{not-in}",
];

fn missing_operator_error(arg: &str, ops: &[&str]) -> String {
    let q: Vec<String> = ops.iter().map(|o| format!("\"{o}\"")).collect();
    let list = match q.len() {
        1 => q[0].clone(),
        2 => format!("{} or {}", q[0], q[1]),
        n => format!("{}, or {}", q[..n - 1].join(", "), q[n - 1]),
    };
    format!("{arg}: argument does not end in {list} followed by a value.")
}

/// A parsed `COLUMN[:KEY][OP VALUE]` argument.
pub(crate) struct ColumnArg {
    pub column: &'static ColumnSchema,
    pub key: Option<String>,
    pub op: usize,
    pub value: Option<String>,
}

/// OVS's `parse_column_key_value`. With `ops`, an operator and a non-empty
/// value must follow; without, nothing may.
pub(crate) fn parse_column_arg(
    arg: &str,
    ts: &'static TableSchema,
    ops: Option<&[&str]>,
) -> R<ColumnArg> {
    let (name, n) = parse_token(arg).map_err(fail)?;
    if name.is_empty() {
        return Err(fail(format!("{arg}: missing column name")));
    }
    let column = get_column(ts, &name)?;
    let mut p = &arg[n..];
    let mut key = None;
    if let Some(rest) = p.strip_prefix(':') {
        let (k, n) = parse_token(rest).map_err(fail)?;
        key = Some(k);
        p = &rest[n..];
    }
    match ops {
        Some(ops) => {
            let best = ops
                .iter()
                .enumerate()
                .filter(|(_, op)| p.starts_with(**op) && p.len() > op.len())
                .max_by_key(|(_, op)| op.len());
            let Some((op, opstr)) = best else {
                return Err(fail(missing_operator_error(arg, ops)));
            };
            Ok(ColumnArg {
                column,
                key,
                op,
                value: Some(p[opstr.len()..].to_string()),
            })
        }
        None if !p.is_empty() => Err(fail(format!("{arg}: trailing garbage \"{p}\" in argument"))),
        None => Ok(ColumnArg {
            column,
            key,
            op: 0,
            value: None,
        }),
    }
}

/// Checks only the column name of a `COLUMN[:KEY]…` argument (OVS's
/// prerequisite pass, which runs before any command).
fn pre_column(arg: &str, ts: &'static TableSchema) -> R<()> {
    let (name, _) = parse_token(arg).map_err(fail)?;
    if name.is_empty() {
        return Err(fail(format!("{arg}: missing column name")));
    }
    get_column(ts, &name).map(|_| ())
}

/// Column list of `--columns`: `None` stands for `_uuid`.
fn parse_column_names(
    names: Option<&str>,
    ts: &'static TableSchema,
) -> R<Vec<Option<&'static ColumnSchema>>> {
    let Some(names) = names else {
        return Ok(std::iter::once(None)
            .chain(ts.columns.values().map(Some))
            .collect());
    };
    let cols = names
        .split([',', ' '])
        .filter(|n| !n.is_empty())
        .map(|n| {
            if n.eq_ignore_ascii_case("_uuid") {
                Ok(None)
            } else {
                get_column(ts, n).map(Some)
            }
        })
        .collect::<R<Vec<_>>>()?;
    if cols.is_empty() {
        return Err(fail("must specify at least one column name"));
    }
    Ok(cols)
}

/// Warnings ovs-vsctl gives before it runs anything.
pub(crate) fn early_warnings(commands: &[Command]) -> Vec<String> {
    let mut warnings = Vec::new();
    for c in commands.iter().filter(|c| c.name == "create") {
        if let Ok(ts) = get_table(&c.args[0]) {
            if c.opt("--id").is_none() && !ts.is_root {
                warnings.push(format!(
                    "applying \"create\" command to table {} without --id option will have no effect",
                    ts.name
                ));
            }
        }
    }
    warnings
}

/// Validates table and column names before any command runs, as OVS's
/// `pre_*` functions do.
pub(crate) fn prerequisites(c: &Command) -> R<()> {
    let a = &c.args;
    match c.name.as_str() {
        "get" => {
            let ts = get_table(&a[0])?;
            for arg in &a[2..] {
                if !arg.eq_ignore_ascii_case("_uuid") && !arg.eq_ignore_ascii_case("-uuid") {
                    pre_column(arg, ts)?;
                }
            }
        }
        "list" => {
            parse_column_names(c.opt("--columns"), get_table(&a[0])?)?;
        }
        "find" => {
            let ts = get_table(&a[0])?;
            parse_column_names(c.opt("--columns"), ts)?;
            for arg in &a[1..] {
                pre_column(arg, ts)?;
            }
        }
        "set" | "wait-until" => {
            let ts = get_table(&a[0])?;
            for arg in &a[2..] {
                pre_column(arg, ts)?;
            }
        }
        "add" | "remove" => {
            get_column(get_table(&a[0])?, &a[2])?;
        }
        "clear" => {
            let ts = get_table(&a[0])?;
            for arg in &a[2..] {
                get_column(ts, arg)?;
            }
        }
        "create" | "destroy" => {
            get_table(&a[0])?;
        }
        _ => {}
    }
    Ok(())
}

/// Defines `@name` (from `--id`); returns whether it was unused so far.
fn create_symbol(ctx: &mut Ctx, id: &str) -> R<bool> {
    if !id.starts_with('@') {
        return Err(fail(format!("row id \"{id}\" does not begin with \"@\"")));
    }
    let new = !ctx.symtab.symbols.contains_key(id);
    let sym = ctx.symtab.insert(id);
    if sym.created {
        return Err(fail(format!(
            "row id \"{id}\" may only be specified on one --id option"
        )));
    }
    sym.created = true;
    Ok(new)
}

fn parse_value(ctx: &mut Ctx, ty: &Type, s: &str) -> R<Datum> {
    Datum::parse(ty, s, Some(&mut ctx.symtab)).map_err(fail)
}

fn parse_key(ctx: &mut Ctx, column: &ColumnSchema, key: &str) -> R<Atom> {
    Ok(
        parse_atom(&column.ty.key, key, Some(&mut ctx.symtab), false)
            .map_err(fail)?
            .0,
    )
}

fn cmd_get(ctx: &mut Ctx, c: &Command) -> R<Out> {
    let id = c.opt("--id");
    let must_exist = !c.has("--if-exists");
    if id.is_some() && !must_exist {
        return Err(fail("--if-exists and --id may not be specified together"));
    }
    let ts = get_table(&c.args[0])?;
    let record = &c.args[1];
    let Some(uuid) = get_row(ctx, ts, record, must_exist)? else {
        return Ok(Out::Text(String::new()));
    };
    if let Some(id) = id {
        if !create_symbol(ctx, id)? {
            return Err(fail(format!(
                "row id \"{id}\" specified on \"get\" command was used before it was defined"
            )));
        }
        let sym = ctx.symtab.insert(id);
        sym.uuid = uuid;
        sym.strong_ref = true;
    }
    let mut out = String::new();
    for arg in &c.args[2..] {
        if arg.eq_ignore_ascii_case("_uuid") || arg.eq_ignore_ascii_case("-uuid") {
            out += &format!("{uuid}\n");
            continue;
        }
        let ca = parse_column_arg(arg, ts, None)?;
        let datum = ctx.datum(&ts.name, uuid, ca.column);
        if let Some(key) = &ca.key {
            if !ca.column.ty.is_map() {
                return Err(fail(format!(
                    "cannot specify key to get for non-map column {}",
                    ca.column.name
                )));
            }
            let k = parse_key(ctx, ca.column, key)?;
            match datum.get(&k) {
                Some(v) => out += &v.to_string(),
                None if must_exist => {
                    return Err(fail(format!(
                        "no key \"{key}\" in {} record \"{record}\" column {}",
                        ts.name, ca.column.name
                    )))
                }
                None => {}
            }
        } else {
            out += &datum.to_string(&ca.column.ty);
        }
        out.push('\n');
    }
    Ok(Out::Text(out))
}

fn make_table(columns: &[Option<&ColumnSchema>]) -> Table {
    Table {
        headings: columns
            .iter()
            .map(|c| c.map_or("_uuid".to_string(), |c| c.name.clone()))
            .collect(),
        rows: Vec::new(),
    }
}

fn list_record(
    ctx: &Ctx,
    ts: &TableSchema,
    uuid: Uuid,
    columns: &[Option<&ColumnSchema>],
    out: &mut Table,
) {
    let uuid_type = Type::scalar(crate::db::AtomicType::Uuid);
    out.rows.push(
        columns
            .iter()
            .map(|c| match c {
                None => Cell {
                    datum: Datum::uuid(uuid),
                    ty: uuid_type.clone(),
                },
                Some(c) => Cell {
                    datum: ctx.datum(&ts.name, uuid, c),
                    ty: c.ty.clone(),
                },
            })
            .collect(),
    );
}

fn cmd_list(ctx: &mut Ctx, c: &Command) -> R<Out> {
    let must_exist = !c.has("--if-exists");
    let ts = get_table(&c.args[0])?;
    let columns = parse_column_names(c.opt("--columns"), ts)?;
    let mut out = make_table(&columns);
    if c.args.len() > 1 {
        for record in &c.args[1..] {
            if let Some(u) = get_row(ctx, ts, record, must_exist)? {
                list_record(ctx, ts, u, &columns, &mut out);
            }
        }
    } else {
        let uuids: Vec<Uuid> = ctx.data.rows(&ts.name).map(|(u, _)| u).collect();
        for u in uuids {
            list_record(ctx, ts, u, &columns, &mut out);
        }
    }
    Ok(Out::Table(out))
}

/// OVS's `check_condition` for `find` and `wait-until`.
fn check_condition(ctx: &mut Ctx, ts: &'static TableSchema, uuid: Uuid, arg: &str) -> R<bool> {
    let ca = parse_column_arg(arg, ts, Some(RELOPS))?;
    let value = ca.value.as_deref().unwrap_or_default();
    let column = ca.column;
    let have = ctx.datum(&ts.name, uuid, column);
    let set_op = ca.op >= 6;
    let (a, b) = if let Some(key) = &ca.key {
        let Some(vt) = &column.ty.value else {
            return Err(fail(format!(
                "cannot specify key to check for non-map column {}",
                column.name
            )));
        };
        let want_key = parse_key(ctx, column, key)?;
        let ty = Type {
            key: vt.clone(),
            value: None,
            min: column.ty.min,
            max: usize::MAX,
        };
        let b = parse_value(ctx, &ty, value)?;
        match have.get(&want_key) {
            None if !set_op => return Ok(false),
            a => (Datum::optional(a.cloned()), b),
        }
    } else {
        (have, parse_value(ctx, &column.ty, value)?)
    };
    use std::cmp::Ordering::*;
    let cmp = a.compare(&b);
    Ok(match RELOPS[ca.op] {
        "=" | "{=}" => cmp == Equal,
        "!=" | "{!=}" => cmp != Equal,
        "<" => cmp == Less,
        ">" => cmp == Greater,
        "<=" => cmp != Greater,
        ">=" => cmp != Less,
        "{<}" => b.len() > a.len() && a.included_in(&b),
        "{>}" => a.len() > b.len() && b.included_in(&a),
        "{<=}" | "{in}" => a.included_in(&b),
        "{>=}" => b.included_in(&a),
        _ => a.disjoint_from(&b),
    })
}

fn cmd_find(ctx: &mut Ctx, c: &Command) -> R<Out> {
    let ts = get_table(&c.args[0])?;
    let columns = parse_column_names(c.opt("--columns"), ts)?;
    let mut out = make_table(&columns);
    let uuids: Vec<Uuid> = ctx.data.rows(&ts.name).map(|(u, _)| u).collect();
    'rows: for u in uuids {
        for cond in &c.args[1..] {
            if !check_condition(ctx, ts, u, cond)? {
                continue 'rows;
            }
        }
        list_record(ctx, ts, u, &columns, &mut out);
    }
    Ok(Out::Table(out))
}

/// OVS's `set_column`: `COLUMN=VALUE` replaces, `COLUMN:KEY=VALUE` sets one key.
pub(crate) fn set_column(ctx: &mut Ctx, ts: &'static TableSchema, uuid: Uuid, arg: &str) -> R<()> {
    let ca = parse_column_arg(arg, ts, Some(&["="]))?;
    let value = ca.value.as_deref().unwrap_or_default();
    let column = ca.column;
    ctx.check_mutable(ts, uuid, column)?;
    let datum = if let Some(key) = &ca.key {
        let Some(vt) = &column.ty.value else {
            return Err(fail(format!(
                "cannot specify key to set for non-map column {}",
                column.name
            )));
        };
        let k = parse_key(ctx, column, key)?;
        let v = parse_atom(vt, value, Some(&mut ctx.symtab), false)
            .map_err(fail)?
            .0;
        let mut d = ctx.datum(&ts.name, uuid, column);
        if let Datum::Map(m) = &mut d {
            m.insert(k, v);
        }
        d
    } else {
        parse_value(ctx, &column.ty, value)?
    };
    ctx.write(&ts.name, uuid, &column.name, datum);
    Ok(())
}

fn cmd_set(ctx: &mut Ctx, c: &Command) -> R<Out> {
    let ts = get_table(&c.args[0])?;
    if let Some(u) = get_row(ctx, ts, &c.args[1], !c.has("--if-exists"))? {
        for arg in &c.args[2..] {
            set_column(ctx, ts, u, arg)?;
        }
    }
    Ok(Out::Text(String::new()))
}

fn cmd_add(ctx: &mut Ctx, c: &Command) -> R<Out> {
    let ts = get_table(&c.args[0])?;
    let column = get_column(ts, &c.args[2])?;
    let Some(u) = get_row(ctx, ts, &c.args[1], !c.has("--if-exists"))? else {
        return Ok(Out::Text(String::new()));
    };
    ctx.check_mutable(ts, u, column)?;
    let ty = Type {
        min: 1,
        max: usize::MAX,
        ..column.ty.clone()
    };
    let mut d = ctx.datum(&ts.name, u, column);
    for arg in &c.args[3..] {
        let add = parse_value(ctx, &ty, arg)?;
        d.union(&add);
    }
    if d.len() > column.ty.max {
        return Err(fail(format!(
            "\"add\" operation would put {} {} in column {} of table {} but the maximum number is {}",
            d.len(),
            if column.ty.is_map() { "pairs" } else { "values" },
            column.name,
            ts.name,
            column.ty.max
        )));
    }
    ctx.write(&ts.name, u, &column.name, d);
    Ok(Out::Text(String::new()))
}

fn cmd_remove(ctx: &mut Ctx, c: &Command) -> R<Out> {
    let ts = get_table(&c.args[0])?;
    let column = get_column(ts, &c.args[2])?;
    let Some(u) = get_row(ctx, ts, &c.args[1], !c.has("--if-exists"))? else {
        return Ok(Out::Text(String::new()));
    };
    ctx.check_mutable(ts, u, column)?;
    let ty = Type {
        min: 1,
        max: usize::MAX,
        ..column.ty.clone()
    };
    let mut d = ctx.datum(&ts.name, u, column);
    for arg in &c.args[3..] {
        let rm = match Datum::parse(&ty, arg, Some(&mut ctx.symtab)) {
            Ok(rm) => rm,
            // A map also accepts bare keys.
            Err(_) if ty.is_map() => {
                let keys_ty = Type {
                    value: None,
                    ..ty.clone()
                };
                parse_value(ctx, &keys_ty, arg)?
            }
            Err(e) => return Err(fail(e)),
        };
        d.subtract(&rm);
    }
    if d.len() < column.ty.min {
        return Err(fail(format!(
            "\"remove\" operation would put {} {} in column {} of table {} but the minimum number is {}",
            d.len(),
            if column.ty.is_map() { "pairs" } else { "values" },
            column.name,
            ts.name,
            column.ty.min
        )));
    }
    ctx.write(&ts.name, u, &column.name, d);
    Ok(Out::Text(String::new()))
}

fn cmd_clear(ctx: &mut Ctx, c: &Command) -> R<Out> {
    let ts = get_table(&c.args[0])?;
    let Some(u) = get_row(ctx, ts, &c.args[1], !c.has("--if-exists"))? else {
        return Ok(Out::Text(String::new()));
    };
    for arg in &c.args[2..] {
        let column = get_column(ts, arg)?;
        ctx.check_mutable(ts, u, column)?;
        if column.ty.min > 0 {
            return Err(fail(format!(
                "\"clear\" operation cannot be applied to column {} of table {}, which is not allowed to be empty",
                column.name, ts.name
            )));
        }
        let empty = if column.ty.is_map() {
            Datum::empty_map()
        } else {
            Datum::empty_set()
        };
        ctx.write(&ts.name, u, &column.name, empty);
    }
    Ok(Out::Text(String::new()))
}

fn cmd_create(ctx: &mut Ctx, c: &Command) -> R<Out> {
    let ts = get_table(&c.args[0])?;
    let uuid = match c.opt("--id") {
        Some(id) => {
            create_symbol(ctx, id)?;
            let sym = ctx.symtab.insert(id);
            if ts.is_root {
                // Root rows live unreferenced: no warning about that.
                sym.strong_ref = true;
            }
            sym.uuid
        }
        None => Uuid::new_v4(),
    };
    ctx.insert(&ts.name, uuid);
    for arg in &c.args[1..] {
        set_column(ctx, ts, uuid, arg)?;
    }
    Ok(Out::Text(format!("{uuid}\n")))
}

fn cmd_destroy(ctx: &mut Ctx, c: &Command) -> R<Out> {
    let must_exist = !c.has("--if-exists");
    let all = c.has("--all");
    let ts = get_table(&c.args[0])?;
    if all && c.args.len() > 1 {
        return Err(fail(
            "--all and records argument should not be specified together",
        ));
    }
    if all && !must_exist {
        return Err(fail(
            "--all and --if-exists should not be specified together",
        ));
    }
    if !all && c.args.len() == 1 {
        ctx.warnings
            .push("either --all or records argument should be specified".into());
        return Ok(Out::Text(String::new()));
    }
    if all {
        let uuids: Vec<Uuid> = ctx.data.rows(&ts.name).map(|(u, _)| u).collect();
        for u in uuids {
            ctx.delete(&ts.name, u);
        }
    } else {
        for record in &c.args[1..] {
            if let Some(u) = get_row(ctx, ts, record, must_exist)? {
                ctx.delete(&ts.name, u);
            }
        }
    }
    Ok(Out::Text(String::new()))
}

fn cmd_wait_until(ctx: &mut Ctx, c: &Command) -> R<Out> {
    let ts = get_table(&c.args[0])?;
    let Some(u) = get_row(ctx, ts, &c.args[1], false)? else {
        return Err(Stop::TryAgain);
    };
    for cond in &c.args[2..] {
        if !check_condition(ctx, ts, u, cond)? {
            return Err(Stop::TryAgain);
        }
    }
    Ok(Out::Text(String::new()))
}

/// `--commands`: one line per command, as OVS prints them.
pub(crate) fn list_commands() -> String {
    let mut out = String::new();
    for s in SYNTAXES {
        for o in s.options.split(',').filter(|o| !o.is_empty()) {
            out += &format!("[{o}] ");
        }
        out += &format!(",{},{}\n", s.name, s.arguments);
    }
    out
}

/// Map from a read-write command name to whether it may change the database.
pub(crate) fn might_write(commands: &[Command]) -> bool {
    commands
        .iter()
        .any(|c| find_syntax(&c.name).is_some_and(|s| s.mode == Mode::ReadWrite))
}
