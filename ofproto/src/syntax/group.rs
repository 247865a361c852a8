//! Group syntax as `ovs-ofctl add-group`/`dump-groups` read and print it:
//! `group_id=1,type=select,bucket=weight:10,actions=output:1,bucket=…`.

use super::action::{format_actions_with, parse_actions};
use super::port::{fmt_port, parse_port, PortNames};
use super::value::parse_uint;
use super::ParseError;
use crate::group::{Bucket, GroupModCommand, GroupType, GROUP_ALL, WATCH_NONE};

/// A group-mod: its command, type, id and buckets.
pub use crate::group::GroupMod;

fn bad(what: &str, v: &str, why: &str) -> ParseError {
    ParseError::bad(what, v, why)
}

/// Splits at top-level commas (not inside parentheses).
fn split_top(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut depth, mut start) = (0i32, 0);
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out.into_iter()
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .collect()
}

fn parse_bucket(s: &str, ports: Option<&dyn PortNames>) -> Result<Bucket, ParseError> {
    let mut b = Bucket {
        weight: 0,
        watch_port: WATCH_NONE,
        watch_group: WATCH_NONE,
        actions: Vec::new(),
    };
    let items = split_top(s);
    for (i, item) in items.iter().enumerate() {
        let (k, v) = match item.split_once([':', '=']) {
            Some((k, v)) => (k, v),
            None => (*item, ""),
        };
        match k {
            "weight" => {
                b.weight =
                    parse_uint(v, 0xffff).ok_or_else(|| bad("weight", v, "invalid weight"))? as u16
            }
            "watch_port" => {
                let p = parse_port(v, ports).ok_or_else(|| bad("watch_port", v, "unknown port"))?;
                b.watch_port = crate::ofp::nxm::port_to_32(p);
            }
            "watch_group" => {
                b.watch_group = parse_uint(v, u64::from(u32::MAX))
                    .ok_or_else(|| bad("watch_group", v, "invalid group id"))?
                    as u32
            }
            "bucket_id" => {}
            "actions" => {
                let rest = std::iter::once(v)
                    .chain(items[i + 1..].iter().copied())
                    .collect::<Vec<_>>()
                    .join(",");
                b.actions = parse_actions(&rest, ports)?;
                return Ok(b);
            }
            _ => {
                let rest = items[i..].join(",");
                b.actions = parse_actions(&rest, ports)?;
                return Ok(b);
            }
        }
    }
    Ok(b)
}

/// Parses a group for `add-group`, `mod-group` or `del-groups` (whose id
/// defaults to all groups).
pub fn parse_group_mod(
    s: &str,
    command: GroupModCommand,
    ports: Option<&dyn PortNames>,
) -> Result<GroupMod, ParseError> {
    // The group's own fields come before the first bucket.
    let (head, buckets) = match find_bucket(s) {
        Some(i) => (&s[..i], Some(&s[i..])),
        None => (s, None),
    };
    let mut gm = GroupMod {
        command,
        kind: GroupType::All,
        group_id: if command == GroupModCommand::Delete {
            GROUP_ALL
        } else {
            u32::MAX
        },
        buckets: Vec::new(),
    };
    for item in split_top(head) {
        let (k, v) = item.split_once('=').unwrap_or((item, ""));
        match k {
            "group_id" => {
                gm.group_id = if v.eq_ignore_ascii_case("all") {
                    GROUP_ALL
                } else {
                    parse_uint(v, u64::from(u32::MAX))
                        .ok_or_else(|| bad("group_id", v, "invalid group id"))?
                        as u32
                }
            }
            "type" => {
                gm.kind = match v {
                    "all" => GroupType::All,
                    "select" => GroupType::Select,
                    "indirect" => GroupType::Indirect,
                    "ff" | "fast_failover" => GroupType::FastFailover,
                    _ => return Err(bad("type", v, "unknown group type")),
                }
            }
            _ => return Err(ParseError::UnknownField(k.to_string())),
        }
    }
    if gm.group_id == u32::MAX {
        return Err(ParseError::MissingValue("group_id".into()));
    }
    if let Some(mut rest) = buckets {
        while let Some(body) = rest.strip_prefix("bucket=") {
            // Look past the bucket's first character (a whole one: the
            // text may be anything).
            let skip = body.chars().next().map_or(0, char::len_utf8);
            let end = find_bucket(&body[skip..])
                .map(|i| i + skip)
                .unwrap_or(body.len());
            let text = body[..end].trim_end_matches(',');
            gm.buckets.push(parse_bucket(text, ports)?);
            rest = &body[end..];
        }
    }
    Ok(gm)
}

/// Byte offset of the next top-level `bucket=` in `s`.
fn find_bucket(s: &str) -> Option<usize> {
    let mut depth = 0i32;
    let b = s.as_bytes();
    for i in 0..b.len() {
        match b[i] {
            b'(' => depth += 1,
            b')' => depth -= 1,
            // Bytes, not `s[i..]`: i need not be a character boundary.
            _ if depth == 0 && b[i..].starts_with(b"bucket=") && (i == 0 || b[i - 1] == b',') => {
                return Some(i)
            }
            _ => {}
        }
    }
    None
}

/// A group as `ovs-ofctl dump-groups` prints it (OpenFlow 1.3).
pub fn format_group(
    id: u32,
    kind: GroupType,
    buckets: &[Bucket],
    ports: Option<&dyn PortNames>,
) -> String {
    let mut s = format!("group_id={id},type={}", kind.name());
    for b in buckets {
        s.push_str(",bucket=");
        if kind == GroupType::Select {
            s.push_str(&format!("weight:{},", b.weight));
        }
        if b.watch_port != WATCH_NONE {
            let p = crate::ofp::nxm::port_from_32(b.watch_port).unwrap_or(0);
            s.push_str(&format!("watch_port:{},", fmt_port(p, ports)));
        }
        if b.watch_group != WATCH_NONE {
            s.push_str(&format!("watch_group:{},", b.watch_group));
        }
        s.push_str("actions=");
        s.push_str(&format_actions_with(&b.actions, ports));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_print_back() {
        for s in [
            "group_id=1,type=all,bucket=actions=output:1,bucket=actions=output:2",
            "group_id=2,type=select,bucket=weight:10,actions=output:1,bucket=weight:20,actions=output:2",
            "group_id=3,type=ff,bucket=watch_port:1,actions=output:1,bucket=watch_port:2,actions=output:2",
            "group_id=4,type=indirect,bucket=actions=mod_dl_src:00:00:00:00:00:01,resubmit(,3)",
        ] {
            let g = parse_group_mod(s, GroupModCommand::Add, None).expect(s);
            assert_eq!(format_group(g.group_id, g.kind, &g.buckets, None), s);
        }
        let g = parse_group_mod(
            "group_id=5,type=all,bucket=output:1,bucket=output:2",
            GroupModCommand::Add,
            None,
        )
        .unwrap();
        assert_eq!(g.buckets.len(), 2);
        assert_eq!(
            parse_group_mod("", GroupModCommand::Delete, None)
                .unwrap()
                .group_id,
            GROUP_ALL
        );
    }
}
