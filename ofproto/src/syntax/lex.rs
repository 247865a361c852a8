//! Tokenizing OVS flow syntax: `key=value`, `key:value`, `key(value)` and
//! bare `key` items separated by commas or white space, as OVS's
//! `ofputil_parse_key_value()` splits them.
//!
//! All delimiters are ASCII, so every slice boundary below falls on a UTF-8
//! character boundary.

const SEPARATORS: &[u8] = b", \t\r\n";

/// Iterates over the `(key, value)` items of a flow or action string.
pub(crate) struct KeyValues<'a> {
    rest: &'a str,
}

pub(crate) fn key_values(s: &str) -> KeyValues<'_> {
    KeyValues { rest: s }
}

impl<'a> Iterator for KeyValues<'a> {
    type Item = (&'a str, &'a str);

    fn next(&mut self) -> Option<(&'a str, &'a str)> {
        let s = self
            .rest
            .trim_start_matches(|c: char| c.is_ascii() && SEPARATORS.contains(&(c as u8)));
        if s.is_empty() {
            self.rest = s;
            return None;
        }
        let key_len = s
            .bytes()
            .position(|b| b":=(".contains(&b) || SEPARATORS.contains(&b))
            .unwrap_or(s.len());
        let key = &s[..key_len];
        let delim = s.as_bytes().get(key_len).copied();
        let after = s.get(key_len + 1..).unwrap_or("");
        let (value, rest) = match delim {
            Some(b':') | Some(b'=') => split_value(after, value_len(after, SEPARATORS)),
            Some(b'(') => {
                let mut n = value_len(after, b")");
                // `(x)->y` keeps going to the end of `y` (used by `move(...)->...`).
                if after.get(n..).is_some_and(|t| t.starts_with(")->")) {
                    n += value_len(after.get(n..).unwrap_or(""), SEPARATORS);
                }
                split_value(after, n)
            }
            _ => ("", after),
        };
        self.rest = rest;
        Some((key, value))
    }
}

/// Splits `s` into the value (`n` bytes) and what follows its delimiter.
fn split_value(s: &str, n: usize) -> (&str, &str) {
    let value = s.get(..n).unwrap_or(s);
    let rest = s.get(n..).unwrap_or("");
    (value, rest.get(1..).unwrap_or(""))
}

/// Length of the value at the start of `s`: up to one of `delims`, skipping
/// over balanced parentheses.
fn value_len(s: &str, delims: &[u8]) -> usize {
    let b = s.as_bytes();
    let mut n = 0;
    while let Some(&c) = b.get(n) {
        if delims.contains(&c) {
            break;
        }
        if c == b'(' {
            let mut level = 0i32;
            loop {
                match b.get(n) {
                    None => return n,
                    Some(b'(') => level += 1,
                    Some(b')') => level -= 1,
                    Some(_) => {}
                }
                n += 1;
                if level <= 0 {
                    break;
                }
            }
        } else {
            n += 1;
        }
    }
    n
}

/// Splits a flow-mod string at its actions the way OVS's
/// `ofp_extract_actions()` does: at the first `action` and then the next `=`.
/// Returns the match part and, if present, the actions text.
pub(crate) fn split_actions(s: &str) -> (&str, Option<&str>) {
    match s.find("action") {
        Some(i) => {
            let head = s.get(..i).unwrap_or("");
            let tail = s.get(i + 1..).unwrap_or("");
            (head, tail.find('=').and_then(|j| tail.get(j + 1..)))
        }
        None => (s, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(s: &str) -> Vec<(&str, &str)> {
        key_values(s).collect()
    }

    #[test]
    fn splits_like_ovs() {
        assert_eq!(
            kv(" ip,nw_src=1.2.3.4 tcp"),
            [("ip", ""), ("nw_src", "1.2.3.4"), ("tcp", "")]
        );
        assert_eq!(
            kv("resubmit(1,2),output:3"),
            [("resubmit", "1,2"), ("output", "3")]
        );
        assert_eq!(
            kv("controller(reason=no_match,max_len=5)"),
            [("controller", "reason=no_match,max_len=5")]
        );
        assert_eq!(kv("a((b)),c"), [("a", "(b)"), ("c", "")]);
        assert_eq!(kv("k=(unbalanced"), [("k", "(unbalanced")]);
        assert_eq!(kv(",,"), []);
        assert_eq!(split_actions("ip actions=1"), ("ip ", Some("1")));
        assert_eq!(split_actions("ip action=1"), ("ip ", Some("1")));
        assert_eq!(split_actions("ip actions"), ("ip ", None));
    }
}
