//! The vswitch schema: OVS's `vswitch.ovsschema` (8.3.1, Apache-2.0, copied
//! verbatim from Open vSwitch 3.1 so that every table and column of OVS
//! exists here with the same type) turned into typed Rust values once.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;

use serde_json::Value;

use super::value::{Atom, AtomicType, Datum};

const SCHEMA_JSON: &str = include_str!("vswitch.ovsschema");

/// The whole database schema.
#[derive(Debug)]
pub struct Schema {
    pub name: String,
    pub version: String,
    pub tables: BTreeMap<String, TableSchema>,
}

/// One table: its columns (sorted by name, as OVS lists them) and constraints.
#[derive(Debug)]
pub struct TableSchema {
    pub name: String,
    pub columns: BTreeMap<String, ColumnSchema>,
    /// Rows of a root table live without being referenced; others are
    /// garbage-collected when nothing refers to them.
    pub is_root: bool,
    pub max_rows: Option<usize>,
    /// Sets of columns whose combined values must be unique.
    pub indexes: Vec<Vec<String>>,
}

#[derive(Debug)]
pub struct ColumnSchema {
    pub name: String,
    pub ty: Type,
    /// Kept in memory, never written to the journal (statistics, link state…).
    pub ephemeral: bool,
    /// `false` for identity columns such as `name` that may only be set at insert.
    pub mutable: bool,
}

/// An OVSDB column type: a key type, an optional value type (a map), and
/// bounds on the number of elements.
#[derive(Clone, Debug, PartialEq)]
pub struct Type {
    pub key: BaseType,
    pub value: Option<BaseType>,
    pub min: usize,
    /// `usize::MAX` stands for "unlimited".
    pub max: usize,
}

/// An atomic type with its constraints.
#[derive(Clone, Debug, PartialEq)]
pub struct BaseType {
    pub atomic: AtomicType,
    pub enumeration: Option<BTreeSet<Atom>>,
    pub min_integer: i64,
    pub max_integer: i64,
    pub min_length: usize,
    pub max_length: usize,
    pub ref_table: Option<String>,
    /// A weak reference disappears with its target instead of keeping it alive.
    pub weak: bool,
}

impl BaseType {
    pub fn new(atomic: AtomicType) -> Self {
        BaseType {
            atomic,
            enumeration: None,
            min_integer: i64::MIN,
            max_integer: i64::MAX,
            min_length: 0,
            max_length: usize::MAX,
            ref_table: None,
            weak: false,
        }
    }

    /// True for a reference that keeps its target alive.
    pub fn is_strong_ref(&self) -> bool {
        self.ref_table.is_some() && !self.weak
    }
}

impl Type {
    /// A type of exactly one atom of `atomic`.
    pub fn scalar(atomic: AtomicType) -> Self {
        Type {
            key: BaseType::new(atomic),
            value: None,
            min: 1,
            max: 1,
        }
    }

    /// A set of any number of `key` atoms.
    pub fn set_of(key: BaseType) -> Self {
        Type {
            key,
            value: None,
            min: 0,
            max: usize::MAX,
        }
    }

    pub fn is_map(&self) -> bool {
        self.value.is_some()
    }

    pub fn is_scalar(&self) -> bool {
        self.value.is_none() && self.min == 1 && self.max == 1
    }

    /// The value OVSDB gives a column nobody set: empty, or one default atom.
    pub fn default_datum(&self) -> Datum {
        match (&self.value, self.min) {
            (Some(v), 1) => Datum::Map(BTreeMap::from([(
                Atom::default_of(self.key.atomic),
                Atom::default_of(v.atomic),
            )])),
            (Some(_), _) => Datum::Map(BTreeMap::new()),
            (None, 1) => Datum::Set(BTreeSet::from([Atom::default_of(self.key.atomic)])),
            (None, _) => Datum::Set(BTreeSet::new()),
        }
    }

    /// OVS's `ovsdb_type_to_english`, used in parse errors.
    pub fn english(&self) -> String {
        let key = self.key.atomic.name();
        if self.is_scalar() {
            return key.to_string();
        }
        let mut s = String::from(if self.is_map() { "map" } else { "set" });
        if self.max == usize::MAX {
            if self.min > 0 {
                s += &format!(" of {} or more", self.min);
            } else {
                s += " of";
            }
        } else if self.min > 0 {
            s += &format!(" of {} to {}", self.min, self.max);
        } else {
            s += &format!(" of up to {}", self.max);
        }
        match &self.value {
            None => s += &format!(" {key}s"),
            Some(v) => s += &format!(" ({key}, {}) pairs", v.atomic.name()),
        }
        s
    }
}

impl Schema {
    pub fn table(&self, name: &str) -> Option<&TableSchema> {
        self.tables.get(name)
    }
}

impl TableSchema {
    pub fn column(&self, name: &str) -> Option<&ColumnSchema> {
        self.columns.get(name)
    }
}

/// The embedded vswitch schema, parsed on first use.
pub fn schema() -> &'static Schema {
    static SCHEMA: OnceLock<Schema> = OnceLock::new();
    SCHEMA.get_or_init(|| parse_schema(SCHEMA_JSON).expect("embedded vswitch schema is valid"))
}

fn parse_schema(text: &str) -> Result<Schema, String> {
    let json: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let str_field = |k: &str| {
        json.get(k)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let mut tables = BTreeMap::new();
    for (tname, t) in json["tables"].as_object().ok_or("no tables")? {
        let mut columns = BTreeMap::new();
        for (cname, c) in t["columns"].as_object().ok_or("no columns")? {
            let ty = parse_type(&c["type"]).map_err(|e| format!("{tname}.{cname}: {e}"))?;
            columns.insert(
                cname.clone(),
                ColumnSchema {
                    name: cname.clone(),
                    ty,
                    ephemeral: c.get("ephemeral").and_then(Value::as_bool).unwrap_or(false),
                    mutable: c.get("mutable").and_then(Value::as_bool).unwrap_or(true),
                },
            );
        }
        let indexes = t
            .get("indexes")
            .and_then(Value::as_array)
            .map(|ixs| {
                ixs.iter()
                    .filter_map(Value::as_array)
                    .map(|ix| {
                        ix.iter()
                            .filter_map(|c| c.as_str().map(String::from))
                            .collect()
                    })
                    .collect()
            })
            .unwrap_or_default();
        tables.insert(
            tname.clone(),
            TableSchema {
                name: tname.clone(),
                columns,
                is_root: t.get("isRoot").and_then(Value::as_bool).unwrap_or(false),
                max_rows: t.get("maxRows").and_then(Value::as_u64).map(|n| n as usize),
                indexes,
            },
        );
    }
    Ok(Schema {
        name: str_field("name"),
        version: str_field("version"),
        tables,
    })
}

fn parse_type(json: &Value) -> Result<Type, String> {
    if json.is_string() {
        return Ok(Type {
            key: parse_base(json)?,
            value: None,
            min: 1,
            max: 1,
        });
    }
    let key = parse_base(json.get("key").ok_or("type without key")?)?;
    let value = json.get("value").map(parse_base).transpose()?;
    let min = json.get("min").and_then(Value::as_u64).unwrap_or(1) as usize;
    let max = match json.get("max") {
        None => 1,
        Some(Value::String(s)) if s == "unlimited" => usize::MAX,
        Some(v) => v.as_u64().ok_or("bad max")? as usize,
    };
    Ok(Type {
        key,
        value,
        min,
        max,
    })
}

fn parse_base(json: &Value) -> Result<BaseType, String> {
    let atomic = |s: &str| AtomicType::from_name(s).ok_or(format!("unsupported atomic type {s}"));
    if let Some(s) = json.as_str() {
        return Ok(BaseType::new(atomic(s)?));
    }
    let mut base = BaseType::new(atomic(
        json["type"].as_str().ok_or("base type without type")?,
    )?);
    if let Some(e) = json.get("enum") {
        let set_type = Type::set_of(BaseType::new(base.atomic));
        match Datum::from_json(e, &set_type)? {
            Datum::Set(atoms) => base.enumeration = Some(atoms),
            Datum::Map(_) => return Err("enum is a map".into()),
        }
    }
    let int = |k: &str| json.get(k).and_then(Value::as_i64);
    let len = |k: &str| json.get(k).and_then(Value::as_u64).map(|n| n as usize);
    base.min_integer = int("minInteger").unwrap_or(i64::MIN);
    base.max_integer = int("maxInteger").unwrap_or(i64::MAX);
    base.min_length = len("minLength").unwrap_or(0);
    base.max_length = len("maxLength").unwrap_or(usize::MAX);
    base.ref_table = json
        .get("refTable")
        .and_then(Value::as_str)
        .map(String::from);
    base.weak = json.get("refType").and_then(Value::as_str) == Some("weak");
    Ok(base)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_schema_has_the_ovs_tables() {
        let s = schema();
        assert_eq!(s.name, "Open_vSwitch");
        for t in [
            "Open_vSwitch",
            "Bridge",
            "Port",
            "Interface",
            "Controller",
            "Manager",
        ] {
            assert!(s.table(t).is_some(), "{t}");
        }
        let ovs = s.table("Open_vSwitch").unwrap();
        assert!(ovs.is_root);
        assert_eq!(ovs.max_rows, Some(1));
        let iface = s.table("Interface").unwrap();
        assert!(iface.column("statistics").unwrap().ephemeral);
        assert!(!iface.column("name").unwrap().mutable);
        let req = &iface.column("ofport_request").unwrap().ty;
        assert_eq!(
            (req.min, req.max, req.key.min_integer, req.key.max_integer),
            (0, 1, 1, 65279)
        );
        let ports = &s.table("Bridge").unwrap().column("ports").unwrap().ty;
        assert_eq!(ports.key.ref_table.as_deref(), Some("Port"));
        assert_eq!(ports.english(), "set of uuids");
        let vlans = &s.table("Bridge").unwrap().column("flood_vlans").unwrap().ty;
        assert_eq!(vlans.english(), "set of up to 4096 integers");
        let oc = &s
            .table("Bridge")
            .unwrap()
            .column("other_config")
            .unwrap()
            .ty;
        assert_eq!(oc.english(), "map of (string, string) pairs");
    }
}
