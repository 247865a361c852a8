//! OVSDB values: UUIDs, atoms and data (sets and maps), with OVS's two
//! notations — the JSON one of RFC 7047 (`["set",[…]]`, `["map",[[k,v]…]]`,
//! `["uuid","…"]`) and the string one ovs-vsctl reads and prints
//! (`{a=b, c="d e"}`, `[1, 2]`, quoting only when needed). Parsing and
//! printing follow `lib/ovsdb-data.c` so that errors read the same.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::fs::File;
use std::io::Read;
use std::str::FromStr;
use std::sync::OnceLock;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use super::schema::{BaseType, Type};

/// OVS refuses integer ranges (`1-4096`) wider than this.
const MAX_RANGE_SIZE: u64 = 4096;

/// A 128-bit row identifier, printed as OVS does (lowercase, 8-4-4-4-12).
#[derive(Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Uuid(u128);

impl Uuid {
    pub const ZERO: Uuid = Uuid(0);

    pub const fn from_u128(v: u128) -> Self {
        Uuid(v)
    }

    pub const fn as_u128(self) -> u128 {
        self.0
    }

    pub fn is_zero(self) -> bool {
        self.0 == 0
    }

    /// A random (version 4) UUID from /dev/urandom.
    pub fn new_v4() -> Self {
        let mut b = random_bytes();
        b[6] = (b[6] & 0x0f) | 0x40;
        b[8] = (b[8] & 0x3f) | 0x80;
        Uuid(u128::from_be_bytes(b))
    }

    /// Parses exactly the 36-character form (any hex case), like `uuid_from_string`.
    pub fn parse(s: &str) -> Option<Uuid> {
        let b = s.as_bytes();
        if b.len() != 36 {
            return None;
        }
        let mut v: u128 = 0;
        for (i, &c) in b.iter().enumerate() {
            if matches!(i, 8 | 13 | 18 | 23) {
                if c != b'-' {
                    return None;
                }
                continue;
            }
            v = (v << 4) | (c as char).to_digit(16)? as u128;
        }
        Some(Uuid(v))
    }

    /// How many characters of `s` form the start of a UUID (0 if `s` is not
    /// one), like OVS's `uuid_is_partial_string`.
    pub fn partial_len(s: &str) -> usize {
        const TMPL: &[u8; 36] = b"xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx";
        let b = s.as_bytes();
        if b.len() > 36 {
            return 0;
        }
        for (i, &c) in b.iter().enumerate() {
            let ok = if TMPL[i] == b'x' {
                c.is_ascii_hexdigit()
            } else {
                c == b'-'
            };
            if !ok {
                return 0;
            }
        }
        b.len()
    }
}

impl fmt::Display for Uuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = self.0;
        write!(
            f,
            "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
            (v >> 96) as u32,
            (v >> 80) as u16,
            (v >> 64) as u16,
            (v >> 48) as u16,
            v & 0xffff_ffff_ffff
        )
    }
}

impl fmt::Debug for Uuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for Uuid {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Uuid::parse(s).ok_or_else(|| format!("\"{s}\" is not a valid UUID"))
    }
}

impl Serialize for Uuid {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Uuid {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

fn random_bytes() -> [u8; 16] {
    static URANDOM: OnceLock<Option<File>> = OnceLock::new();
    let mut b = [0u8; 16];
    if let Some(mut f) = URANDOM
        .get_or_init(|| File::open("/dev/urandom").ok())
        .as_ref()
    {
        if f.read_exact(&mut b).is_ok() {
            return b;
        }
    }
    // No /dev/urandom (a chroot): std's per-process random hash keys plus a
    // counter still give unique identifiers.
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    static STATE: OnceLock<std::collections::hash_map::RandomState> = OnceLock::new();
    let state = STATE.get_or_init(Default::default);
    for half in b.chunks_mut(8) {
        let mut h = state.build_hasher();
        h.write_u64(COUNTER.fetch_add(1, Relaxed));
        half.copy_from_slice(&h.finish().to_be_bytes());
    }
    b
}

/// The atomic types of the vswitch schema (it has no `real` column).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AtomicType {
    Integer,
    Boolean,
    String,
    Uuid,
}

impl AtomicType {
    pub fn name(self) -> &'static str {
        match self {
            AtomicType::Integer => "integer",
            AtomicType::Boolean => "boolean",
            AtomicType::String => "string",
            AtomicType::Uuid => "uuid",
        }
    }

    pub fn from_name(s: &str) -> Option<Self> {
        Some(match s {
            "integer" => AtomicType::Integer,
            "boolean" => AtomicType::Boolean,
            "string" => AtomicType::String,
            "uuid" => AtomicType::Uuid,
            _ => return None,
        })
    }
}

/// One value. Atoms of one type order as OVS orders them (integers
/// numerically, strings bytewise, UUIDs by their text).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Atom {
    Integer(i64),
    Boolean(bool),
    String(String),
    Uuid(Uuid),
}

impl Atom {
    pub fn default_of(t: AtomicType) -> Atom {
        match t {
            AtomicType::Integer => Atom::Integer(0),
            AtomicType::Boolean => Atom::Boolean(false),
            AtomicType::String => Atom::String(String::new()),
            AtomicType::Uuid => Atom::Uuid(Uuid::ZERO),
        }
    }

    pub fn atomic_type(&self) -> AtomicType {
        match self {
            Atom::Integer(_) => AtomicType::Integer,
            Atom::Boolean(_) => AtomicType::Boolean,
            Atom::String(_) => AtomicType::String,
            Atom::Uuid(_) => AtomicType::Uuid,
        }
    }

    pub fn is_default(&self) -> bool {
        *self == Atom::default_of(self.atomic_type())
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Atom::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_int(&self) -> Option<i64> {
        match self {
            Atom::Integer(i) => Some(*i),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Atom::Boolean(b) => Some(*b),
            _ => None,
        }
    }

    pub fn as_uuid(&self) -> Option<Uuid> {
        match self {
            Atom::Uuid(u) => Some(*u),
            _ => None,
        }
    }

    pub fn to_json(&self) -> Value {
        match self {
            Atom::Integer(i) => Value::from(*i),
            Atom::Boolean(b) => Value::from(*b),
            Atom::String(s) => Value::from(s.as_str()),
            Atom::Uuid(u) => serde_json::json!(["uuid", u.to_string()]),
        }
    }

    /// Parses RFC 7047 JSON for an atom of `base`, checking its constraints.
    pub fn from_json(json: &Value, base: &BaseType) -> Result<Atom, String> {
        let atom = match (base.atomic, json) {
            (AtomicType::Integer, Value::Number(n)) if n.is_i64() => {
                Atom::Integer(n.as_i64().unwrap_or(0))
            }
            (AtomicType::Boolean, Value::Bool(b)) => Atom::Boolean(*b),
            (AtomicType::String, Value::String(s)) => {
                if s.contains('\0') {
                    return Err("null bytes not supported in quoted strings".into());
                }
                Atom::String(s.clone())
            }
            (AtomicType::Uuid, Value::Array(a)) if a.len() == 2 && a[0] == "uuid" => {
                let s = a[1].as_str().ok_or("expected [\"uuid\", <string>]")?;
                Atom::Uuid(s.parse()?)
            }
            (t, _) => return Err(format!("expected {}", t.name())),
        };
        check_constraints(&atom, base)?;
        Ok(atom)
    }
}

impl fmt::Display for Atom {
    /// OVS's `ovsdb_atom_to_string`: strings are quoted only when they would
    /// not read back as the same string.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Atom::Integer(i) => write!(f, "{i}"),
            Atom::Boolean(b) => write!(f, "{b}"),
            Atom::String(s) if string_needs_quotes(s) => f.write_str(&json_string(s)),
            Atom::String(s) => f.write_str(s),
            Atom::Uuid(u) => write!(f, "{u}"),
        }
    }
}

fn string_needs_quotes(s: &str) -> bool {
    let b = s.as_bytes();
    match b.first() {
        Some(c) if c.is_ascii_alphabetic() || *c == b'_' => {}
        _ => return true,
    }
    b[1..].iter().any(|&c| !(c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.')))
        || s == "true"
        || s == "false"
        // A string that reads as a UUID must not print as one.
        || Uuid::parse(s).is_some()
}

/// A string in JSON notation, escaped as OVS's JSON writer does.
pub fn json_string(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_default()
}

/// A column's value: a set of atoms (a scalar is a set of one) or a map.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Datum {
    Set(BTreeSet<Atom>),
    Map(BTreeMap<Atom, Atom>),
}

impl Datum {
    pub fn empty_set() -> Datum {
        Datum::Set(BTreeSet::new())
    }

    pub fn empty_map() -> Datum {
        Datum::Map(BTreeMap::new())
    }

    pub fn atom(a: Atom) -> Datum {
        Datum::Set(BTreeSet::from([a]))
    }

    pub fn string(s: &str) -> Datum {
        Datum::atom(Atom::String(s.to_string()))
    }

    pub fn integer(i: i64) -> Datum {
        Datum::atom(Atom::Integer(i))
    }

    pub fn boolean(b: bool) -> Datum {
        Datum::atom(Atom::Boolean(b))
    }

    pub fn uuid(u: Uuid) -> Datum {
        Datum::atom(Atom::Uuid(u))
    }

    /// An optional (0 or 1 element) value.
    pub fn optional(a: Option<Atom>) -> Datum {
        Datum::Set(a.into_iter().collect())
    }

    pub fn set(atoms: impl IntoIterator<Item = Atom>) -> Datum {
        Datum::Set(atoms.into_iter().collect())
    }

    pub fn uuid_set(uuids: impl IntoIterator<Item = Uuid>) -> Datum {
        Datum::set(uuids.into_iter().map(Atom::Uuid))
    }

    pub fn string_map<K: AsRef<str>, V: AsRef<str>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Datum {
        Datum::Map(
            pairs
                .into_iter()
                .map(|(k, v)| {
                    (
                        Atom::String(k.as_ref().into()),
                        Atom::String(v.as_ref().into()),
                    )
                })
                .collect(),
        )
    }

    pub fn len(&self) -> usize {
        match self {
            Datum::Set(s) => s.len(),
            Datum::Map(m) => m.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The keys (the elements of a set).
    pub fn keys(&self) -> Box<dyn Iterator<Item = &Atom> + '_> {
        match self {
            Datum::Set(s) => Box::new(s.iter()),
            Datum::Map(m) => Box::new(m.keys()),
        }
    }

    /// The first key, i.e. the value of a scalar or optional column.
    pub fn first(&self) -> Option<&Atom> {
        self.keys().next()
    }

    /// The value stored under `key` in a map.
    pub fn get(&self, key: &Atom) -> Option<&Atom> {
        match self {
            Datum::Map(m) => m.get(key),
            Datum::Set(_) => None,
        }
    }

    pub fn contains_key(&self, key: &Atom) -> bool {
        match self {
            Datum::Set(s) => s.contains(key),
            Datum::Map(m) => m.contains_key(key),
        }
    }

    /// Every UUID this datum holds, keys and values.
    pub fn uuids(&self) -> Vec<Uuid> {
        match self {
            Datum::Set(s) => s.iter().filter_map(Atom::as_uuid).collect(),
            Datum::Map(m) => m
                .iter()
                .flat_map(|(k, v)| [k.as_uuid(), v.as_uuid()])
                .flatten()
                .collect(),
        }
    }

    /// OVS's `ovsdb_datum_compare_3way`: by size first, then elementwise.
    pub fn compare(&self, other: &Datum) -> Ordering {
        self.len()
            .cmp(&other.len())
            .then_with(|| match (self, other) {
                (Datum::Set(a), Datum::Set(b)) => a.iter().cmp(b.iter()),
                (Datum::Map(a), Datum::Map(b)) => a
                    .keys()
                    .cmp(b.keys())
                    .then_with(|| a.values().cmp(b.values())),
                (Datum::Set(_), Datum::Map(_)) => Ordering::Less,
                (Datum::Map(_), Datum::Set(_)) => Ordering::Greater,
            })
    }

    /// Adds the elements of `other`; a key already in a map takes the new
    /// value (as `ovs-vsctl add` does since OVS 2.x).
    pub fn union(&mut self, other: &Datum) {
        match (self, other) {
            (Datum::Set(a), Datum::Set(b)) => a.extend(b.iter().cloned()),
            (Datum::Map(a), Datum::Map(b)) => {
                a.extend(b.iter().map(|(k, v)| (k.clone(), v.clone())))
            }
            _ => {}
        }
    }

    /// Removes the elements of `other`: a set of keys removes map entries by
    /// key, a map removes only matching key=value pairs.
    pub fn subtract(&mut self, other: &Datum) {
        match (self, other) {
            (Datum::Set(a), Datum::Set(b)) => a.retain(|x| !b.contains(x)),
            (Datum::Map(a), Datum::Set(keys)) => a.retain(|k, _| !keys.contains(k)),
            (Datum::Map(a), Datum::Map(b)) => a.retain(|k, v| b.get(k) != Some(v)),
            (Datum::Set(_), Datum::Map(_)) => {}
        }
    }

    /// True if every element of `self` is in `other`.
    pub fn included_in(&self, other: &Datum) -> bool {
        match (self, other) {
            (Datum::Set(a), Datum::Set(b)) => a.is_subset(b),
            (Datum::Map(a), Datum::Map(b)) => a.iter().all(|(k, v)| b.get(k) == Some(v)),
            _ => self.is_empty(),
        }
    }

    /// True if no element of `self` is in `other`.
    pub fn disjoint_from(&self, other: &Datum) -> bool {
        match (self, other) {
            (Datum::Set(a), Datum::Set(b)) => a.is_disjoint(b),
            (Datum::Map(a), Datum::Map(b)) => a.iter().all(|(k, v)| b.get(k) != Some(v)),
            _ => true,
        }
    }

    pub fn is_default(&self, ty: &Type) -> bool {
        *self == ty.default_datum()
    }

    /// Checks that the datum fits `ty`: kind, atom types, constraints, size.
    pub fn check(&self, ty: &Type) -> Result<(), String> {
        match (self, &ty.value) {
            (Datum::Set(s), None) => {
                for a in s {
                    check_base(a, &ty.key)?;
                }
            }
            (Datum::Map(m), Some(vt)) => {
                for (k, v) in m {
                    check_base(k, &ty.key)?;
                    check_base(v, vt)?;
                }
            }
            (Datum::Set(_), Some(_)) => return Err("expected a map, got a set".into()),
            (Datum::Map(_), None) => return Err("expected a set, got a map".into()),
        }
        if self.len() < ty.min || self.len() > ty.max {
            return Err(format!(
                "{} must have {} to {} members but {} are present",
                if ty.is_map() { "map" } else { "set" },
                ty.min,
                ty.max.min(u32::MAX as usize),
                self.len()
            ));
        }
        Ok(())
    }

    /// RFC 7047 JSON: a map is always `["map",…]`, a set of one is its atom.
    pub fn to_json(&self) -> Value {
        match self {
            Datum::Map(m) => Value::Array(vec![
                "map".into(),
                Value::Array(
                    m.iter()
                        .map(|(k, v)| Value::Array(vec![k.to_json(), v.to_json()]))
                        .collect(),
                ),
            ]),
            Datum::Set(s) if s.len() == 1 => {
                s.iter().next().map(Atom::to_json).unwrap_or(Value::Null)
            }
            Datum::Set(s) => Value::Array(vec![
                "set".into(),
                Value::Array(s.iter().map(Atom::to_json).collect()),
            ]),
        }
    }

    /// Parses RFC 7047 JSON as a datum of `ty`, checking every constraint.
    pub fn from_json(json: &Value, ty: &Type) -> Result<Datum, String> {
        let tagged = |tag: &str| match json {
            Value::Array(a) if a.len() == 2 && a[0] == tag => a[1].as_array(),
            _ => None,
        };
        let datum = if let Some(vt) = &ty.value {
            let elems = tagged("map").ok_or("expected [\"map\", <array>]")?;
            let mut m = BTreeMap::new();
            for e in elems {
                let pair = e
                    .as_array()
                    .filter(|p| p.len() == 2)
                    .ok_or("expected 2-element array")?;
                let k = Atom::from_json(&pair[0], &ty.key)?;
                let v = Atom::from_json(&pair[1], vt)?;
                if m.insert(k, v).is_some() {
                    return Err("map contains duplicate key".into());
                }
            }
            Datum::Map(m)
        } else if let Some(elems) = tagged("set") {
            let mut s = BTreeSet::new();
            for e in elems {
                if !s.insert(Atom::from_json(e, &ty.key)?) {
                    return Err("set contains duplicate".into());
                }
            }
            Datum::Set(s)
        } else {
            Datum::atom(Atom::from_json(json, &ty.key)?)
        };
        datum.check(ty)?;
        Ok(datum)
    }

    /// OVS's `ovsdb_datum_to_string`: brackets unless the type holds at most
    /// one value and one is present.
    pub fn to_string(&self, ty: &Type) -> String {
        let bracket = ty.max > 1 || self.is_empty();
        let mut out = String::new();
        if bracket {
            out.push(if ty.is_map() { '{' } else { '[' });
        }
        match self {
            Datum::Set(s) => {
                out += &s
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            }
            Datum::Map(m) => {
                out += &m
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        }
        if bracket {
            out.push(if ty.is_map() { '}' } else { ']' });
        }
        out
    }

    /// OVS's `ovsdb_datum_to_bare`: space separated, strings unquoted.
    pub fn to_bare(&self) -> String {
        let bare = |a: &Atom| match a {
            Atom::String(s) => s.clone(),
            a => a.to_string(),
        };
        match self {
            Datum::Set(s) => s.iter().map(bare).collect::<Vec<_>>().join(" "),
            Datum::Map(m) => m
                .iter()
                .map(|(k, v)| format!("{}={}", bare(k), bare(v)))
                .collect::<Vec<_>>()
                .join(" "),
        }
    }

    /// Parses ovs-vsctl's string syntax for a value of `ty`; `@name` UUIDs
    /// are resolved through `symtab` (a plain UUID is required without one).
    pub fn parse(ty: &Type, s: &str, symtab: Option<&mut Symtab>) -> Result<Datum, String> {
        parse_datum(ty, s, symtab)
    }
}

impl Serialize for Datum {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.to_json().serialize(s)
    }
}

/// Named rows of one ovs-vsctl invocation (`--id=@name` and `@name` values).
#[derive(Clone, Debug, Default)]
pub struct Symtab {
    pub symbols: BTreeMap<String, Symbol>,
}

#[derive(Clone, Debug)]
pub struct Symbol {
    pub uuid: Uuid,
    /// Defined by `create --id` or `get --id`.
    pub created: bool,
    pub strong_ref: bool,
    pub weak_ref: bool,
}

impl Symtab {
    /// The symbol called `name`, made with a fresh UUID on first mention.
    pub fn insert(&mut self, name: &str) -> &mut Symbol {
        self.symbols
            .entry(name.to_string())
            .or_insert_with(|| Symbol {
                uuid: Uuid::new_v4(),
                created: false,
                strong_ref: false,
                weak_ref: false,
            })
    }
}

fn check_base(atom: &Atom, base: &BaseType) -> Result<(), String> {
    if atom.atomic_type() != base.atomic {
        return Err(format!("expected {}", base.atomic.name()));
    }
    check_constraints(atom, base)
}

/// OVS's `ovsdb_atom_check_constraints`, with its messages.
pub fn check_constraints(atom: &Atom, base: &BaseType) -> Result<(), String> {
    if let Some(e) = &base.enumeration {
        if !e.contains(atom) {
            let valid = Datum::Set(e.clone()).to_string(&Type::set_of(BaseType::new(base.atomic)));
            return Err(format!(
                "constraint violation: {atom} is not one of the allowed values ({valid})"
            ));
        }
    }
    match atom {
        Atom::Integer(i) if *i < base.min_integer || *i > base.max_integer => Err(
            if base.min_integer != i64::MIN && base.max_integer != i64::MAX {
                format!(
                    "constraint violation: {i} is not in the valid range {} to {} (inclusive)",
                    base.min_integer, base.max_integer
                )
            } else if base.min_integer != i64::MIN {
                format!(
                    "constraint violation: {i} is less than minimum allowed value {}",
                    base.min_integer
                )
            } else {
                format!(
                    "constraint violation: {i} is greater than maximum allowed value {}",
                    base.max_integer
                )
            },
        ),
        Atom::String(s) => {
            let n = s.chars().count();
            if n < base.min_length {
                Err(format!(
                    "constraint violation: \"{s}\" length {n} is less than minimum allowed length {}",
                    base.min_length
                ))
            } else if n > base.max_length {
                Err(format!(
                    "constraint violation: \"{s}\" length {n} is greater than maximum allowed length {}",
                    base.max_length
                ))
            } else {
                Ok(())
            }
        }
        _ => Ok(()),
    }
}

/// True for the characters that end a token in ovs-vsctl arguments.
pub fn is_delim(c: u8) -> bool {
    b":=, []{}!<>".contains(&c)
}

/// OVS's `ovsdb_token_parse`: a token runs to the next unquoted, unescaped
/// delimiter; a backslash escapes one character (and is dropped), double
/// quotes are kept. Returns the token and the number of bytes consumed.
pub fn parse_token(s: &str) -> Result<(String, usize), String> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut in_quotes = false;
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == b'\\' {
            if in_quotes {
                out.push(b'\\');
            }
            if i + 1 >= b.len() {
                return Err(format!("{s}: backslash at end of argument"));
            }
            out.push(b[i + 1]);
            i += 2;
        } else if !in_quotes && is_delim(c) {
            break;
        } else {
            out.push(c);
            if c == b'"' {
                in_quotes = !in_quotes;
            }
            i += 1;
        }
    }
    if in_quotes {
        return Err(format!("{s}: quoted string extends past end of argument"));
    }
    // Only whole ASCII bytes were dropped, so the rest is still UTF-8.
    Ok((String::from_utf8_lossy(&out).into_owned(), i))
}

/// C's `strtoll` in base 10 over the whole string (leading blanks and a sign allowed).
fn str_to_i64(s: &str) -> Option<i64> {
    let (v, rest) = str_to_i64_prefix(s)?;
    rest.is_empty().then_some(v)
}

fn str_to_i64_prefix(s: &str) -> Option<(i64, &str)> {
    let t = s.trim_start_matches([' ', '\t', '\n', '\x0b', '\x0c', '\r']);
    let digits_start = if t.starts_with(['+', '-']) { 1 } else { 0 };
    let end = digits_start
        + t[digits_start..]
            .bytes()
            .take_while(u8::is_ascii_digit)
            .count();
    if end == digits_start {
        return None;
    }
    let v = t[..end].trim_start_matches('+').parse::<i64>().ok()?;
    Some((v, &t[end..]))
}

/// OVS's `ovsdb_atom_from_string`; with `want_range`, an integer may be a
/// range `A-B`, whose end is returned too.
pub fn parse_atom(
    base: &BaseType,
    s: &str,
    symtab: Option<&mut Symtab>,
    want_range: bool,
) -> Result<(Atom, Option<i64>), String> {
    let mut range_end = None;
    let atom = match base.atomic {
        AtomicType::Integer => {
            let range = want_range
                .then(|| str_to_i64_prefix(s))
                .flatten()
                .and_then(|(a, rest)| Some((a, str_to_i64(rest.strip_prefix('-')?)?)));
            if let Some((a, b)) = range {
                if b < a {
                    return Err(format!(
                        "\"{s}\" is not a valid range. Range end cannot be before start."
                    ));
                }
                range_end = Some(b);
                Atom::Integer(a)
            } else {
                Atom::Integer(
                    str_to_i64(s)
                        .ok_or_else(|| format!("\"{s}\" is not a valid integer or range"))?,
                )
            }
        }
        AtomicType::Boolean => match s {
            "true" | "yes" | "on" | "1" => Atom::Boolean(true),
            "false" | "no" | "off" | "0" => Atom::Boolean(false),
            _ => {
                return Err(format!(
                    "\"{s}\" is not a valid boolean (use \"true\" or \"false\")"
                ))
            }
        },
        AtomicType::String => {
            if s.is_empty() {
                return Err(
                    "An empty string is not valid as input; use \"\" to represent the empty string"
                        .into(),
                );
            } else if let Some(inner) = s.strip_prefix('"') {
                let inner = inner
                    .strip_suffix('"')
                    .ok_or_else(|| format!("{s}: missing quote at end of quoted string"))?;
                Atom::String(json_unescape(inner).map_err(|e| format!("{s}: {e}"))?)
            } else {
                Atom::String(s.to_string())
            }
        }
        AtomicType::Uuid => match (s.strip_prefix('@'), symtab) {
            (Some(_), Some(symtab)) => {
                let sym = symtab.insert(s);
                if base.ref_table.is_some() {
                    if base.weak {
                        sym.weak_ref = true;
                    } else {
                        sym.strong_ref = true;
                    }
                }
                Atom::Uuid(sym.uuid)
            }
            _ => Atom::Uuid(s.parse()?),
        },
    };
    check_constraints(&atom, base)?;
    if let (Some(end), Atom::Integer(start)) = (range_end, &atom) {
        let too_big = (end as u64).wrapping_sub(*start as u64) >= MAX_RANGE_SIZE;
        let size_error = || {
            format!(
                "constraint violation: Range \"{start}-{end}\" is too big. Maximum allowed size is {MAX_RANGE_SIZE}."
            )
        };
        if base.enumeration.is_some() {
            // OVS checks every member of the range against the enum; check
            // the size first so that a huge range cannot take forever.
            if too_big {
                return Err(size_error());
            }
            for i in start + 1..=end {
                check_constraints(&Atom::Integer(i), base)?;
            }
        } else {
            check_constraints(&Atom::Integer(end), base)?;
        }
        if too_big {
            return Err(size_error());
        }
    }
    Ok((atom, range_end))
}

/// OVS's `json_string_unescape` (the inside of a quoted string).
fn json_unescape(s: &str) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => return Err("quoted string may not include unescaped \"".into()),
            '\\' => {}
            c => {
                out.push(c);
                continue;
            }
        }
        match chars.next() {
            Some(c @ ('"' | '\\' | '/')) => out.push(c),
            Some('b') => out.push('\u{8}'),
            Some('f') => out.push('\u{c}'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('t') => out.push('\t'),
            Some('u') => {
                let c0 = hex4(&mut chars)?;
                let cp = if (0xd800..0xdc00).contains(&c0) {
                    if chars.next() != Some('\\') || chars.next() != Some('u') {
                        return Err("malformed escaped surrogate pair".into());
                    }
                    let c1 = hex4(&mut chars)?;
                    if !(0xdc00..0xe000).contains(&c1) {
                        return Err(
                            "second half of escaped surrogate pair is not trailing surrogate"
                                .into(),
                        );
                    }
                    0x10000 + ((c0 - 0xd800) << 10) + (c1 - 0xdc00)
                } else {
                    c0
                };
                out.push(
                    char::from_u32(cp).ok_or("constraint violation: not a valid UTF-8 string")?,
                );
            }
            Some(c) => return Err(format!("bad escape \\{c}")),
            None => return Err("quoted string may not end with backslash".into()),
        }
    }
    Ok(out)
}

fn hex4(chars: &mut std::str::Chars<'_>) -> Result<u32, String> {
    let h: String = chars.take(4).collect();
    if h.chars().count() < 4 {
        return Err("quoted string ends within \\u escape".into());
    }
    if !h.bytes().all(|c| c.is_ascii_hexdigit()) {
        return Err("malformed \\u escape".into());
    }
    match u32::from_str_radix(&h, 16) {
        Ok(0) => Err("null bytes not supported in quoted strings".into()),
        Ok(v) => Ok(v),
        Err(_) => Err("malformed \\u escape".into()),
    }
}

fn skip_spaces(s: &str) -> &str {
    s.trim_start_matches([' ', '\t', '\n', '\x0b', '\x0c', '\r'])
}

/// OVS's `ovsdb_datum_from_string`.
fn parse_datum(ty: &Type, s: &str, mut symtab: Option<&mut Symtab>) -> Result<Datum, String> {
    let is_map = ty.is_map();
    let mut p = skip_spaces(s);
    let end_delim = if p.starts_with(if is_map { '{' } else { '[' }) {
        p = skip_spaces(&p[1..]);
        Some(if is_map { '}' } else { ']' })
    } else if p.is_empty() {
        return Err(if is_map {
            "use \"{}\" to specify the empty map".into()
        } else {
            "use \"[]\" to specify the empty set".into()
        });
    } else {
        None
    };

    let mut keys: Vec<Atom> = Vec::new();
    let mut values: Vec<Atom> = Vec::new();
    while let Some(c) = p.chars().next() {
        if Some(c) == end_delim {
            break;
        }
        if c.is_ascii() && is_delim(c as u8) {
            return Err(format!("{s}: unexpected \"{c}\" parsing {}", ty.english()));
        }
        let start = p;
        let (tok, n) = parse_token(p)?;
        p = &p[n..];
        let (key, range_end) = parse_atom(&ty.key, &tok, symtab.as_deref_mut(), !is_map)?;
        if let Some(vt) = &ty.value {
            p = skip_spaces(p);
            let Some(rest) = p.strip_prefix('=') else {
                // C prints the offending character with %c, so a missing
                // character (end of string) ends the message there.
                return Err(match p.chars().next() {
                    Some(c) => format!("{start}: syntax error at \"{c}\" expecting \"=\""),
                    None => format!("{start}: syntax error at \""),
                });
            };
            p = skip_spaces(rest);
            let (tok, n) = parse_token(p)?;
            p = &p[n..];
            values.push(parse_atom(vt, &tok, symtab.as_deref_mut(), false)?.0);
            keys.push(key);
        } else if let (Some(end), Atom::Integer(start)) = (range_end, &key) {
            keys.extend((*start..=end).map(Atom::Integer));
        } else {
            keys.push(key);
        }
        p = skip_spaces(p);
        if let Some(rest) = p.strip_prefix(',') {
            p = skip_spaces(rest);
        }
    }
    if let Some(end) = end_delim {
        let Some(rest) = p.strip_prefix(end) else {
            return Err(format!("{s}: missing \"{end}\" at end of data"));
        };
        if !skip_spaces(rest).is_empty() {
            return Err(format!("{s}: trailing garbage after \"{end}\""));
        }
    }
    let n = keys.len();
    let what = if is_map { "pair(s)" } else { "value(s)" };
    if n < ty.min {
        return Err(format!(
            "{s}: {n} {what} specified but the minimum number is {}",
            ty.min
        ));
    } else if n > ty.max {
        return Err(format!(
            "{s}: {n} {what} specified but the maximum number is {}",
            ty.max
        ));
    }
    let datum = if is_map {
        let m: BTreeMap<Atom, Atom> = keys.into_iter().zip(values).collect();
        if m.len() != n {
            return Err(format!("{s}: map contains duplicate key"));
        }
        Datum::Map(m)
    } else {
        let set: BTreeSet<Atom> = keys.into_iter().collect();
        if set.len() != n {
            return Err(format!("{s}: set contains duplicate value"));
        }
        Datum::Set(set)
    };
    Ok(datum)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::schema::schema;

    fn col(t: &str, c: &str) -> Type {
        schema().table(t).unwrap().column(c).unwrap().ty.clone()
    }

    #[test]
    fn uuid_text_round_trip_and_order() {
        let u = Uuid::parse("0390958F-7fdc-4d3c-8eda-6ef8868f6543").unwrap();
        assert_eq!(u.to_string(), "0390958f-7fdc-4d3c-8eda-6ef8868f6543");
        assert!(Uuid::parse("0390958f-7fdc-4d3c-8eda-6ef8868f654").is_none());
        assert!(Uuid::parse("0390958f_7fdc-4d3c-8eda-6ef8868f6543").is_none());
        let (a, b) = (
            Uuid::parse("6add2ba5-0000-0000-0000-000000000000").unwrap(),
            Uuid::new_v4(),
        );
        assert_eq!(a.cmp(&b), a.to_string().cmp(&b.to_string()));
        assert_eq!(Uuid::partial_len("0390958f-7f"), 11);
        assert_eq!(Uuid::partial_len("0390-"), 0);
        assert_eq!(Uuid::partial_len("03x"), 0);
        let v4 = Uuid::new_v4().to_string();
        assert_eq!(&v4[14..15], "4");
    }

    #[test]
    fn strings_are_quoted_like_ovs() {
        let s = |x: &str| Atom::String(x.into()).to_string();
        assert_eq!(s("br0"), "br0");
        assert_eq!(s("dot1q-tunnel"), "dot1q-tunnel");
        assert_eq!(s("1br"), "\"1br\"");
        assert_eq!(
            s("abcdef12-1234-1234-1234-123456789abc"),
            "\"abcdef12-1234-1234-1234-123456789abc\""
        );
        assert_eq!(s("netdev"), "netdev");
        assert_eq!(s("dpdk-devargs"), "dpdk-devargs");
        assert_eq!(s(""), "\"\"");
        assert_eq!(s("true"), "\"true\"");
        assert_eq!(s("a b"), "\"a b\"");
        assert_eq!(s("é"), "\"é\"");
        assert_eq!(s("a\"b\\\n"), "\"a\\\"b\\\\\\n\"");
    }

    #[test]
    fn parses_maps_sets_and_ranges() {
        let oc = col("Bridge", "other_config");
        let d = Datum::parse(&oc, r#"{"x"="1", y = 2}"#, None).unwrap();
        assert_eq!(d.to_string(&oc), r#"{x="1", y="2"}"#);
        assert_eq!(
            Datum::parse(&oc, "a=b", None).unwrap().to_string(&oc),
            "{a=b}"
        );
        let fv = col("Bridge", "flood_vlans");
        assert_eq!(
            Datum::parse(&fv, "1-3,7", None).unwrap().to_string(&fv),
            "[1, 2, 3, 7]"
        );
        let err = |ty: &Type, s: &str| Datum::parse(ty, s, None).unwrap_err();
        assert_eq!(
            err(&oc, "[a=b]"),
            "[a=b]: unexpected \"[\" parsing map of (string, string) pairs"
        );
        assert_eq!(err(&oc, "{a=b"), "{a=b: missing \"}\" at end of data");
        assert_eq!(err(&oc, "{a=b}x"), "{a=b}x: trailing garbage after \"}\"");
        assert_eq!(err(&oc, "{a}"), "a}: syntax error at \"}\" expecting \"=\"");
        assert_eq!(
            err(&oc, "{a=b,a=c}"),
            "{a=b,a=c}: map contains duplicate key"
        );
        assert_eq!(err(&fv, "[1,2,2]"), "[1,2,2]: set contains duplicate value");
        assert_eq!(
            err(&fv, "5-2"),
            "\"5-2\" is not a valid range. Range end cannot be before start."
        );
        assert_eq!(err(&fv, "abc"), "\"abc\" is not a valid integer or range");
        assert_eq!(
            err(&fv, "{1}"),
            "{1}: unexpected \"{\" parsing set of up to 4096 integers"
        );
        let tag = col("Port", "tag");
        assert_eq!(
            err(&tag, "5000"),
            "constraint violation: 5000 is not in the valid range 0 to 4095 (inclusive)"
        );
        let vm = col("Port", "vlan_mode");
        assert_eq!(
            err(&vm, "foo"),
            "constraint violation: foo is not one of the allowed values \
             ([access, dot1q-tunnel, native-tagged, native-untagged, trunk])"
        );
        let err_ = col("Interface", "error");
        assert_eq!(
            err(&err_, "could not open"),
            "could not open: 3 value(s) specified but the maximum number is 1"
        );
        let dt = col("Bridge", "datapath_type");
        assert_eq!(
            err(&dt, "\"abc"),
            "\"abc: quoted string extends past end of argument"
        );
        assert_eq!(err(&dt, "a\\"), "a\\: backslash at end of argument");
        assert_eq!(
            Datum::parse(&dt, "\"a\\\"b\"", None)
                .unwrap()
                .to_string(&dt),
            "\"a\\\"b\""
        );
        let stp = col("Bridge", "stp_enable");
        assert_eq!(
            err(&stp, "maybe"),
            "\"maybe\" is not a valid boolean (use \"true\" or \"false\")"
        );
    }

    #[test]
    fn json_round_trip() {
        let ports = col("Bridge", "ports");
        let d = Datum::uuid_set([Uuid::new_v4(), Uuid::new_v4()]);
        assert_eq!(Datum::from_json(&d.to_json(), &ports).unwrap(), d);
        let one = Datum::uuid_set([Uuid::new_v4()]);
        assert_eq!(one.to_json()[0], "uuid");
        let oc = col("Bridge", "other_config");
        assert_eq!(Datum::empty_map().to_json().to_string(), r#"["map",[]]"#);
        assert!(Datum::from_json(&serde_json::json!(["set", []]), &oc).is_err());
    }
}
