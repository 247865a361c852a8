//! Whole flow-mod lines (`add-flow`, `mod-flows`, `del-flows`, `add-flows`
//! files), `dump-flows` filters and `dump-flows` output lines (OVS's
//! `parse_ofp_str()`, `ofputil_flow_mod_format()` and
//! `ofputil_flow_stats_format()`).

use std::fmt::Write as _;

use super::action::{check_actions, format_actions_with, parse_actions, parse_table};
use super::field::normalize_match;
use super::lex::{key_values, split_actions};
use super::matching::{apply_item, format_match_with};
use super::port::{fmt_port, parse_port, PortNames};
use super::value::{hex, parse_c_u64, parse_uint};
use super::ParseError;
use crate::actions::port;
use crate::flow::Match;
use crate::flow_mod::{FlowMod, FlowModCommand, FlowModFlags, FlowStats, DEFAULT_PRIORITY};

/// What a request may say besides its match, as OVS's `parse_ofp_str__()`
/// decides from the command.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Mod(FlowModCommand),
    /// A `dump-flows` filter.
    Filter,
    /// A `dump-flows` output line read back.
    Stats,
}

impl Kind {
    fn actions(self) -> bool {
        matches!(
            self,
            Kind::Stats
                | Kind::Mod(
                    FlowModCommand::Add | FlowModCommand::Modify | FlowModCommand::ModifyStrict
                )
        )
    }
    fn timeouts_and_flags(self) -> bool {
        self.actions()
    }
    fn priority(self) -> bool {
        self.actions() || self == Kind::Mod(FlowModCommand::DeleteStrict)
    }
    fn importance(self) -> bool {
        matches!(self, Kind::Stats | Kind::Mod(FlowModCommand::Add))
    }
    fn out_port(self) -> bool {
        matches!(
            self,
            Kind::Filter | Kind::Mod(FlowModCommand::Delete | FlowModCommand::DeleteStrict)
        )
    }
    fn sets_cookie(self) -> bool {
        self.actions()
    }
    fn name(self) -> &'static str {
        match self {
            Kind::Mod(FlowModCommand::Add) => "add flow-mods",
            Kind::Mod(FlowModCommand::Modify | FlowModCommand::ModifyStrict) => "modify flow-mods",
            Kind::Mod(FlowModCommand::Delete) => "non-strict delete flow-mods",
            Kind::Mod(FlowModCommand::DeleteStrict) => "delete flow-mods",
            Kind::Filter => "flow filters",
            Kind::Stats => "flow statistics",
        }
    }
}

/// What a line says, whatever its kind.
struct Parsed {
    fm: FlowMod,
    /// `dump-flows` statistics read back from a line (OVS ignores them).
    duration: (u32, u32),
    n_packets: u64,
    n_bytes: u64,
    idle_age: u32,
    hard_age: Option<u32>,
}

fn parse(s: &str, kind: Kind, ports: Option<&dyn PortNames>) -> Result<Parsed, ParseError> {
    let command = match kind {
        Kind::Mod(c) => c,
        Kind::Filter => FlowModCommand::Delete,
        Kind::Stats => FlowModCommand::Add,
    };
    let mut p = Parsed {
        fm: FlowMod::new(command),
        duration: (0, 0),
        n_packets: 0,
        n_bytes: 0,
        idle_age: 0,
        hard_age: None,
    };
    let (match_part, actions) = if kind.actions() {
        let (m, a) = split_actions(s);
        (m, Some(a.ok_or(ParseError::MissingActions)?))
    } else {
        (s, None)
    };
    let fm = &mut p.fm;
    let mut m = Match::catchall();
    let mut new_cookie = None;
    for (k, v) in key_values(match_part) {
        if let Some(set) = flag_setter(k) {
            if !kind.timeouts_and_flags() {
                return Err(not_allowed(k, kind));
            }
            set(&mut fm.flags);
            continue;
        }
        if matches!(k, "no_readonly_table" | "allow_hidden_fields")
            || apply_item(&mut m, k, v, ports)?
        {
            continue;
        }
        let allowed = match k {
            "table" | "cookie" | "duration" | "n_packets" | "n_bytes" | "idle_age" | "hard_age" => {
                true
            }
            "priority" => kind.priority(),
            "idle_timeout" | "hard_timeout" => kind.timeouts_and_flags(),
            "importance" => kind.importance(),
            "out_port" => kind.out_port(),
            "out_group" => return Err(ParseError::Unsupported(k.into())),
            "actions" | "action" => false,
            _ => return Err(ParseError::UnknownField(k.into())),
        };
        if !allowed {
            return Err(not_allowed(k, kind));
        }
        if v.is_empty() {
            return Err(ParseError::MissingValue(k.into()));
        }
        let u16_of = |what: &str| {
            parse_uint(v, 0xffff)
                .map(|n| n as u16)
                .ok_or_else(|| ParseError::bad(k, v, format!("invalid {what}")))
        };
        let count = || parse_c_u64(v).map_err(|_| ParseError::bad(k, v, "invalid count"));
        let age = || {
            parse_uint(v, u64::from(u32::MAX))
                .map(|n| n as u32)
                .ok_or_else(|| ParseError::bad(k, v, "invalid age"))
        };
        match k {
            "table" => {
                let t = parse_table(v).ok_or_else(|| {
                    ParseError::bad(k, v, "unknown table (valid tables are 0 through 255)")
                })?;
                fm.table_id = (t != 255).then_some(t);
            }
            "out_port" => {
                fm.out_port = parse_port(v, ports)
                    .ok_or_else(|| ParseError::bad(k, v, "not a valid OpenFlow port"))?;
            }
            "priority" => fm.priority = u16_of("priority")?,
            "idle_timeout" => fm.idle_timeout = u16_of("idle_timeout")?,
            "hard_timeout" => fm.hard_timeout = u16_of("hard_timeout")?,
            "importance" => fm.importance = u16_of("importance")?,
            "cookie" => {
                let num = |t: &str| {
                    parse_c_u64(t).map_err(|_| ParseError::bad(k, v, "invalid numeric format"))
                };
                if let Some((c, mask)) = v.split_once('/') {
                    if command == FlowModCommand::Add {
                        return Err(ParseError::CookieMaskOnAdd);
                    }
                    let (c, mask) = (num(c)?, num(mask)?);
                    fm.cookie_mask = mask;
                    fm.cookie = c & mask;
                } else if !kind.sets_cookie() {
                    return Err(ParseError::CannotSetCookie);
                } else {
                    new_cookie = Some(num(v)?);
                }
            }
            "duration" => {
                p.duration =
                    parse_duration(v).ok_or_else(|| ParseError::bad(k, v, "invalid duration"))?
            }
            "n_packets" => p.n_packets = count()?,
            "n_bytes" => p.n_bytes = count()?,
            "idle_age" => p.idle_age = age()?,
            _ => p.hard_age = Some(age()?),
        }
    }
    if let Some(c) = new_cookie {
        if fm.cookie_mask != 0 {
            // FlowMod has one cookie for both jobs; OVS would accept this.
            return Err(ParseError::bad(
                "cookie",
                &hex(u128::from(c)),
                "cannot both select rules by a cookie mask and set a new cookie",
            ));
        }
        fm.cookie = c;
        fm.modify_cookie = matches!(
            command,
            FlowModCommand::Modify | FlowModCommand::ModifyStrict
        );
    }
    fm.match_ = normalize_match(&m);
    if let Some(a) = actions {
        fm.actions = parse_actions(a, ports)?;
        let table = fm
            .table_id
            .or((command == FlowModCommand::Add).then_some(0));
        check_actions(&fm.actions, &fm.match_, table)?;
    }
    Ok(p)
}

/// The flag a keyword sets, if it is a flow-mod flag.
fn flag_setter(k: &str) -> Option<fn(&mut FlowModFlags)> {
    Some(match k {
        "send_flow_rem" => |f| f.send_flow_rem = true,
        "check_overlap" => |f| f.check_overlap = true,
        "reset_counts" => |f| f.reset_counts = true,
        "no_packet_counts" => |f| f.no_packet_counts = true,
        "no_byte_counts" => |f| f.no_byte_counts = true,
        _ => return None,
    })
}

fn not_allowed(k: &str, kind: Kind) -> ParseError {
    ParseError::NotAllowed {
        keyword: k.to_string(),
        context: kind.name(),
    }
}

/// `S[.fraction]s`, as `dump-flows` prints durations.
fn parse_duration(s: &str) -> Option<(u32, u32)> {
    let s = s.strip_suffix('s')?;
    let (sec, frac) = s.split_once('.').unwrap_or((s, ""));
    let digits = |t: &str| t.bytes().all(|b| b.is_ascii_digit());
    if sec.is_empty() || !digits(sec) || !digits(frac) || frac.len() > 9 {
        return None;
    }
    let nsec = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<9}").parse().ok()?
    };
    Some((sec.parse().ok()?, nsec))
}

/// Parses a flow for `add-flow` (`command` Add), `mod-flows` (Modify or
/// ModifyStrict) or `del-flows` (Delete or DeleteStrict, without actions).
pub fn parse_flow_mod(
    s: &str,
    command: FlowModCommand,
    ports: Option<&dyn PortNames>,
) -> Result<FlowMod, ParseError> {
    Ok(parse(s, Kind::Mod(command), ports)?.fm)
}

/// Parses one line of a flow file. `#` starts a comment; blank lines give
/// `None`. As in OVS, when `default_command` is Add (`add-flows`) a line may
/// start with `add`, `modify`, `modify_strict`, `delete` or `delete_strict`
/// (or any prefix of them, e.g. `del`); other commands take no keyword.
pub fn parse_flow_mod_line(
    line: &str,
    default_command: FlowModCommand,
    ports: Option<&dyn PortNames>,
) -> Result<Option<FlowMod>, ParseError> {
    let line = line.split('#').next().unwrap_or("");
    let mut s = line.trim_start_matches([' ', '\t', '\r', '\n']);
    if s.is_empty() {
        return Ok(None);
    }
    let mut command = default_command;
    if default_command == FlowModCommand::Add {
        let len = s.find([',', ' ', '\t', '\r', '\n']).unwrap_or(s.len());
        let token = &s[..len];
        const KEYWORDS: [(&str, FlowModCommand); 5] = [
            ("add", FlowModCommand::Add),
            ("delete", FlowModCommand::Delete),
            ("delete_strict", FlowModCommand::DeleteStrict),
            ("modify", FlowModCommand::Modify),
            ("modify_strict", FlowModCommand::ModifyStrict),
        ];
        if let Some(&(_, c)) = KEYWORDS.iter().find(|(kw, _)| kw.starts_with(token)) {
            command = c;
            s = &s[len..];
        }
    }
    parse_flow_mod(s, command, ports).map(Some)
}

/// Parses a whole flow file (`add-flows FILE`, or `mod-flows`/`del-flows`
/// with `-`); errors say which line.
pub fn parse_flow_mods(
    text: &str,
    default_command: FlowModCommand,
    ports: Option<&dyn PortNames>,
) -> Result<Vec<FlowMod>, ParseError> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        match parse_flow_mod_line(line, default_command, ports) {
            Ok(Some(fm)) => out.push(fm),
            Ok(None) => {}
            Err(e) => {
                return Err(ParseError::Line {
                    line: i + 1,
                    error: Box::new(e),
                })
            }
        }
    }
    Ok(out)
}

/// Which rules `dump-flows` (and `dump-aggregate`) reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlowFilter {
    /// `None`: every table.
    pub table_id: Option<u8>,
    pub match_: Match,
    pub cookie: u64,
    /// Rules whose `cookie & cookie_mask` equals `cookie`; 0 = all.
    pub cookie_mask: u64,
    /// Only rules that output to this port (`port::NONE` = any).
    pub out_port: u16,
}

impl FlowFilter {
    /// The filter as the (loose delete) flow-mod that selects the same rules.
    pub fn to_flow_mod(&self) -> FlowMod {
        let mut fm = FlowMod::new(FlowModCommand::Delete);
        fm.table_id = self.table_id;
        fm.match_ = self.match_;
        fm.cookie = self.cookie;
        fm.cookie_mask = self.cookie_mask;
        fm.out_port = self.out_port;
        fm
    }
}

/// Parses a `dump-flows` filter: `table=N`, `cookie=V/M`, `out_port=P` and
/// a match (no priority, as in OVS).
pub fn parse_flow_filter(s: &str, ports: Option<&dyn PortNames>) -> Result<FlowFilter, ParseError> {
    let fm = parse(s, Kind::Filter, ports)?.fm;
    Ok(FlowFilter {
        table_id: fm.table_id,
        match_: fm.match_,
        cookie: fm.cookie,
        cookie_mask: fm.cookie_mask,
        out_port: fm.out_port,
    })
}

/// Parses a `dump-flows` output line back (with or without `--no-stats`).
/// Without `hard_age=`, the hard age is the duration (that is when OVS
/// leaves it out).
pub fn parse_flow_stats(s: &str, ports: Option<&dyn PortNames>) -> Result<FlowStats, ParseError> {
    let p = parse(s, Kind::Stats, ports)?;
    let fm = p.fm;
    Ok(FlowStats {
        table_id: fm.table_id.unwrap_or(0),
        duration_sec: p.duration.0,
        duration_nsec: p.duration.1,
        priority: fm.priority,
        idle_timeout: fm.idle_timeout,
        hard_timeout: fm.hard_timeout,
        flags: fm.flags,
        importance: fm.importance,
        cookie: fm.cookie,
        packet_count: p.n_packets,
        byte_count: p.n_bytes,
        idle_age: p.idle_age,
        hard_age: p.hard_age.unwrap_or(p.duration.0),
        match_: fm.match_,
        actions: fm.actions,
    })
}

fn flag_names(f: &FlowModFlags) -> impl Iterator<Item = &'static str> {
    [
        (f.send_flow_rem, "send_flow_rem"),
        (f.check_overlap, "check_overlap"),
        (f.reset_counts, "reset_counts"),
        (f.no_packet_counts, "no_packet_counts"),
        (f.no_byte_counts, "no_byte_counts"),
    ]
    .into_iter()
    .filter_map(|(on, name)| on.then_some(name))
}

/// OVS's `ofp_print_duration()`: no decimals for whole seconds, three when
/// the fraction is whole milliseconds, else as many as needed.
pub fn format_duration(sec: u32, nsec: u32) -> String {
    let mut s = sec.to_string();
    if nsec > 0 {
        if nsec / 1_000_000 * 1_000_000 == nsec {
            let _ = write!(s, ".{:03}", nsec / 1_000_000);
        } else {
            let frac = format!("{nsec:09}");
            s.push('.');
            s.push_str(frac.trim_end_matches('0'));
        }
    }
    s.push('s');
    s
}

/// One `dump-flows` line, exactly as `ovs-ofctl dump-flows` prints it
/// (including the leading space); `show_stats` false is `--no-stats`.
pub fn format_flow_stats(fs: &FlowStats, show_stats: bool) -> String {
    format_flow_stats_with(fs, show_stats, None)
}

/// [`format_flow_stats`], printing ports by name where `ports` knows them.
pub fn format_flow_stats_with(
    fs: &FlowStats,
    show_stats: bool,
    ports: Option<&dyn PortNames>,
) -> String {
    let mut s = String::from(" ");
    if show_stats || fs.cookie != 0 {
        let _ = write!(s, "cookie=0x{:x}, ", fs.cookie);
    }
    if show_stats {
        let _ = write!(
            s,
            "duration={}, ",
            format_duration(fs.duration_sec, fs.duration_nsec)
        );
    }
    if show_stats || fs.table_id != 0 {
        let _ = write!(s, "table={}, ", fs.table_id);
    }
    if show_stats {
        let _ = write!(
            s,
            "n_packets={}, n_bytes={}, ",
            fs.packet_count, fs.byte_count
        );
    }
    if fs.idle_timeout != 0 {
        let _ = write!(s, "idle_timeout={}, ", fs.idle_timeout);
    }
    if fs.hard_timeout != 0 {
        let _ = write!(s, "hard_timeout={}, ", fs.hard_timeout);
    }
    for name in flag_names(&fs.flags) {
        s.push_str(name);
        s.push(' ');
    }
    if fs.importance != 0 {
        let _ = write!(s, "importance={}, ", fs.importance);
    }
    if show_stats {
        let _ = write!(s, "idle_age={}, ", fs.idle_age);
        if fs.hard_age != fs.duration_sec {
            let _ = write!(s, "hard_age={}, ", fs.hard_age);
        }
    }
    let m = format_match_with(&fs.match_, fs.priority, ports);
    if !m.is_empty() {
        s.push_str(&m);
        s.push(' ');
    }
    s.push_str("actions=");
    s.push_str(&format_actions_with(&fs.actions, ports));
    s
}

fn command_name(c: FlowModCommand) -> &'static str {
    match c {
        FlowModCommand::Add => "ADD",
        FlowModCommand::Modify => "MOD",
        FlowModCommand::ModifyStrict => "MOD_STRICT",
        FlowModCommand::Delete => "DEL",
        FlowModCommand::DeleteStrict => "DEL_STRICT",
    }
}

/// A flow-mod as `ovs-ofctl` prints one it sends (`ofputil_flow_mod_format()`,
/// what `ovs-ofctl parse-flow` shows after `OFPT_FLOW_MOD (xid=0x1): `), e.g.
/// `ADD table:1 priority=100,ip cookie:0x5 idle:10 actions=output:2`.
/// Flags and `importance` appear as with OpenFlow 1.4; an unspecified table
/// prints nothing, as with OpenFlow 1.0 (1.1+ shows deletes as `table:255`).
pub fn format_flow_mod(fm: &FlowMod) -> String {
    let mut s = command_name(fm.command).to_string();
    if let Some(t) = fm.table_id.filter(|&t| t != 0) {
        let _ = write!(s, " table:{t}");
    }
    s.push(' ');
    s.push_str(&format_match_with(&fm.match_, fm.priority, None));
    if !s.ends_with(' ') {
        s.push(' ');
    }
    let sets_cookie = match fm.command {
        FlowModCommand::Add => true,
        FlowModCommand::Modify | FlowModCommand::ModifyStrict => fm.modify_cookie,
        _ => false,
    };
    if sets_cookie && fm.cookie != 0 && fm.cookie != u64::MAX {
        let _ = write!(s, "cookie:0x{:x} ", fm.cookie);
    }
    if fm.cookie_mask != 0 {
        let _ = write!(s, "cookie:0x{:x}/0x{:x} ", fm.cookie, fm.cookie_mask);
    }
    if fm.idle_timeout != 0 {
        let _ = write!(s, "idle:{} ", fm.idle_timeout);
    }
    if fm.hard_timeout != 0 {
        let _ = write!(s, "hard:{} ", fm.hard_timeout);
    }
    if fm.importance != 0 {
        let _ = write!(s, "importance:{} ", fm.importance);
    }
    if fm.out_port != port::NONE {
        let _ = write!(s, "out_port:{} ", fmt_port(fm.out_port, None));
    }
    for name in flag_names(&fm.flags) {
        s.push_str(name);
        s.push(' ');
    }
    s.push_str("actions=");
    s.push_str(&format_actions_with(&fm.actions, None));
    s
}

/// A flow-mod in the syntax [`parse_flow_mod_line`] reads (an `add-flows`
/// line, with its command keyword unless it is an add); for an add, also
/// what `add-flow` takes.
pub fn format_flow_mod_line(fm: &FlowMod) -> String {
    let mut items: Vec<String> = Vec::new();
    if let Some(t) = fm.table_id {
        items.push(format!("table={t}"));
    }
    let is_mod = matches!(
        fm.command,
        FlowModCommand::Modify | FlowModCommand::ModifyStrict
    );
    if (fm.command == FlowModCommand::Add && fm.cookie != 0) || (is_mod && fm.modify_cookie) {
        items.push(format!("cookie=0x{:x}", fm.cookie));
    }
    if fm.cookie_mask != 0 {
        items.push(format!("cookie=0x{:x}/0x{:x}", fm.cookie, fm.cookie_mask));
    }
    if fm.idle_timeout != 0 {
        items.push(format!("idle_timeout={}", fm.idle_timeout));
    }
    if fm.hard_timeout != 0 {
        items.push(format!("hard_timeout={}", fm.hard_timeout));
    }
    if fm.importance != 0 {
        items.push(format!("importance={}", fm.importance));
    }
    items.extend(flag_names(&fm.flags).map(String::from));
    if fm.out_port != port::NONE {
        items.push(format!("out_port={}", fmt_port(fm.out_port, None)));
    }
    // A non-strict delete takes no priority.
    let priority = if fm.command == FlowModCommand::Delete {
        DEFAULT_PRIORITY
    } else {
        fm.priority
    };
    let m = format_match_with(&fm.match_, priority, None);
    if !m.is_empty() {
        items.push(m);
    }
    let mut s = match fm.command {
        FlowModCommand::Add => String::new(),
        FlowModCommand::Modify => "modify ".into(),
        FlowModCommand::ModifyStrict => "modify_strict ".into(),
        FlowModCommand::Delete => "delete ".into(),
        FlowModCommand::DeleteStrict => "delete_strict ".into(),
    };
    s.push_str(&items.join(","));
    if !matches!(
        fm.command,
        FlowModCommand::Delete | FlowModCommand::DeleteStrict
    ) {
        if !items.is_empty() {
            s.push(' ');
        }
        s.push_str("actions=");
        s.push_str(&format_actions_with(&fm.actions, None));
    }
    s.trim_end().to_string()
}

/// The flow-mod that adds the rule a `dump-flows` line describes.
pub fn flow_stats_to_flow_mod(fs: &FlowStats) -> FlowMod {
    FlowMod {
        table_id: Some(fs.table_id),
        priority: fs.priority,
        match_: fs.match_,
        cookie: fs.cookie,
        idle_timeout: fs.idle_timeout,
        hard_timeout: fs.hard_timeout,
        importance: fs.importance,
        flags: fs.flags,
        actions: fs.actions.clone(),
        ..FlowMod::new(FlowModCommand::Add)
    }
}
