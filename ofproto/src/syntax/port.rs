//! OpenFlow port numbers and names as flow syntax writes them.

use std::collections::BTreeMap;

use super::value::parse_decimal;
use crate::actions::port;

/// Translates between port names and OpenFlow port numbers (what
/// `ovs-ofctl` learns from the switch's port descriptions).
pub trait PortNames {
    /// The number of the port called `name`.
    fn port_number(&self, name: &str) -> Option<u16>;
    /// The name of port `number`, for printing with names (`--names`).
    fn port_name(&self, number: u16) -> Option<String>;
}

/// A simple name ↔ number table.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PortMap {
    by_name: BTreeMap<String, u16>,
    by_number: BTreeMap<u16, String>,
}

impl PortMap {
    pub fn new() -> PortMap {
        PortMap::default()
    }

    pub fn insert(&mut self, name: &str, number: u16) {
        self.by_name.insert(name.to_string(), number);
        self.by_number.insert(number, name.to_string());
    }
}

impl<S: AsRef<str>> FromIterator<(S, u16)> for PortMap {
    fn from_iter<I: IntoIterator<Item = (S, u16)>>(iter: I) -> PortMap {
        let mut m = PortMap::new();
        for (name, number) in iter {
            m.insert(name.as_ref(), number);
        }
        m
    }
}

impl PortNames for PortMap {
    fn port_number(&self, name: &str) -> Option<u16> {
        self.by_name.get(name).copied()
    }

    fn port_name(&self, number: u16) -> Option<String> {
        self.by_number.get(&number).cloned()
    }
}

/// Reserved ports by name (OVS's OFPUTIL_NAMED_PORTS_WITH_NONE); the first
/// name of a number is the one printed.
const RESERVED: [(&str, u16); 9] = [
    ("IN_PORT", port::IN_PORT),
    ("TABLE", port::TABLE),
    ("NORMAL", port::NORMAL),
    ("FLOOD", port::FLOOD),
    ("ALL", port::ALL),
    ("CONTROLLER", port::CONTROLLER),
    ("LOCAL", port::LOCAL),
    ("ANY", port::NONE),
    ("NONE", port::NONE),
];

/// OpenFlow 1.1+ writes port numbers as 32 bits: 0xffffff00 and up are the
/// 16-bit reserved ports plus this offset.
const OFPP11_OFFSET: u64 = 0xffff_0000;

/// A port as OVS's `ofputil_port_from_string()` reads it: a decimal number
/// (16-bit, or an OpenFlow 1.1 reserved 32-bit number), a reserved name in
/// any case, or a (possibly double-quoted) name from `ports`.
pub(crate) fn parse_port(s: &str, ports: Option<&dyn PortNames>) -> Option<u16> {
    if s.starts_with('-') {
        return None;
    }
    if let Some(n) = parse_decimal(s) {
        return match n {
            0..=0xffff => Some(n as u16),
            0xffff_ff00..=0xffff_ffff => Some((n - OFPP11_OFFSET) as u16),
            _ => None,
        };
    }
    if let Some(&(_, p)) = RESERVED
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(s))
    {
        return Some(p);
    }
    let name = match s.strip_prefix('"').and_then(|t| t.strip_suffix('"')) {
        Some(quoted) => unescape(quoted)?,
        None => s.to_string(),
    };
    ports?.port_number(&name)
}

/// Undoes the JSON-style escaping of a quoted port name.
fn unescape(s: &str) -> Option<String> {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.push(chars.next()?),
            '"' => return None,
            c => out.push(c),
        }
    }
    Some(out)
}

/// A port as OVS's `ofputil_format_port()` prints it: reserved ports by
/// name, others by name when `ports` knows one, else by number.
pub(crate) fn fmt_port(p: u16, ports: Option<&dyn PortNames>) -> String {
    if p >= port::IN_PORT {
        if let Some(&(name, _)) = RESERVED.iter().find(|(_, n)| *n == p) {
            return name.to_string();
        }
    }
    match ports.and_then(|m| m.port_name(p)) {
        Some(name) if needs_quotes(&name) => {
            format!("\"{}\"", name.replace('\\', "\\\\").replace('"', "\\\""))
        }
        Some(name) => name,
        None => p.to_string(),
    }
}

/// OVS quotes names that would not read back as a plain name.
fn needs_quotes(name: &str) -> bool {
    !name.starts_with(|c: char| c.is_ascii_alphabetic())
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        || RESERVED.iter().any(|(r, _)| r.eq_ignore_ascii_case(name))
}

/// Whether `output` may send to `p` (OVS's `ofpact_check_output_port()`).
pub(crate) fn valid_output_port(p: u16) -> bool {
    p < port::MAX || (p >= port::IN_PORT && p != port::NONE)
}
