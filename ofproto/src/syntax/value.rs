//! Scalars of the flow syntax: integers as C's `strtoull(s, NULL, 0)` reads
//! them (OVS uses it everywhere), Ethernet, IPv4 and IPv6 addresses with
//! their masks, and their printed forms.

use std::fmt::Write as _;
use std::net::Ipv6Addr;

/// Why a number did not parse.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum NumErr {
    Syntax,
    Range,
}

/// The whole of `s` as C's `strtoull(s, NULL, 0)`: an optional sign, then
/// `0x` hexadecimal, `0` octal or decimal. A minus sign negates modulo 2^64,
/// as C does (OVS documents `cookie=5/-1`).
pub(crate) fn parse_c_u64(s: &str) -> Result<u64, NumErr> {
    let (neg, body) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let (radix, digits) =
        if let Some(h) = body.strip_prefix("0x").or_else(|| body.strip_prefix("0X")) {
            (16, h)
        } else if body.len() > 1 && body.starts_with('0') {
            (8, &body[1..])
        } else {
            (10, body)
        };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return Err(NumErr::Syntax);
    }
    let v = u64::from_str_radix(digits, radix).map_err(|_| NumErr::Range)?;
    Ok(if neg { v.wrapping_neg() } else { v })
}

/// An unsigned number that must fit `max`, without a sign (OVS's
/// `str_to_u16()` and friends, which use `strtol(s, NULL, 0)`).
pub(crate) fn parse_uint(s: &str, max: u64) -> Option<u64> {
    if s.starts_with('-') {
        return None;
    }
    parse_c_u64(s).ok().filter(|&v| v <= max)
}

/// A decimal number (OVS's `str_to_uint(s, 10, ...)`, used for ports and tables).
pub(crate) fn parse_decimal(s: &str) -> Option<u64> {
    let d = s.strip_prefix('+').unwrap_or(s);
    if d.is_empty() || !d.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    d.parse().ok()
}

/// A field value as OVS's `parse_int_string()` reads it: `0x` followed by
/// any number of hex digits (so 128-bit values work), else `strtoull`.
pub(crate) fn parse_field_int(s: &str) -> Result<u128, NumErr> {
    if let Some(h) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        if h.is_empty() || !h.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(NumErr::Syntax);
        }
        let h = h.trim_start_matches('0');
        if h.len() > 32 {
            return Err(NumErr::Range);
        }
        return if h.is_empty() {
            Ok(0)
        } else {
            u128::from_str_radix(h, 16).map_err(|_| NumErr::Range)
        };
    }
    parse_c_u64(s).map(u128::from)
}

/// `%#x` of C: `0` for zero, else `0x` and lower-case hex digits (also what
/// OVS's `ds_put_hex()` prints).
pub(crate) fn hex(v: u128) -> String {
    if v == 0 {
        "0".to_string()
    } else {
        format!("{v:#x}")
    }
}

pub(crate) fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut out = [0u8; 6];
    let mut parts = s.split(':');
    for b in out.iter_mut() {
        let p = parts.next()?;
        if p.is_empty() || p.len() > 2 || !p.bytes().all(|c| c.is_ascii_hexdigit()) {
            return None;
        }
        *b = u8::from_str_radix(p, 16).ok()?;
    }
    parts.next().is_none().then_some(out)
}

pub(crate) fn fmt_mac(m: &[u8]) -> String {
    let mut s = String::with_capacity(17);
    for (i, b) in m.iter().enumerate() {
        if i > 0 {
            s.push(':');
        }
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// `MAC[/MAC]`.
pub(crate) fn parse_mac_masked(s: &str) -> Option<([u8; 6], [u8; 6])> {
    match s.split_once('/') {
        Some((v, m)) => Some((parse_mac(v)?, parse_mac(m)?)),
        None => Some((parse_mac(s)?, [0xff; 6])),
    }
}

/// Dotted quad; each part decimal 0..=255 (OVS also takes leading zeros).
pub(crate) fn parse_ipv4(s: &str) -> Option<[u8; 4]> {
    let mut out = [0u8; 4];
    let mut parts = s.split('.');
    for b in out.iter_mut() {
        let p = parts.next()?;
        if p.is_empty() || p.len() > 3 || !p.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        *b = p.parse().ok()?;
    }
    parts.next().is_none().then_some(out)
}

pub(crate) fn fmt_ipv4(a: &[u8]) -> String {
    let mut s = String::with_capacity(15);
    for (i, b) in a.iter().enumerate() {
        if i > 0 {
            s.push('.');
        }
        let _ = write!(s, "{b}");
    }
    s
}

/// `IP[/prefix|/IP]`; the error is OVS's wording.
pub(crate) fn parse_ipv4_masked(s: &str) -> Result<(u32, u32), &'static str> {
    const BAD: &str = "invalid IP address";
    let (v, m) = match s.split_once('/') {
        Some((v, m)) => (v, Some(m)),
        None => (s, None),
    };
    let v = u32::from_be_bytes(parse_ipv4(v).ok_or(BAD)?);
    let m = match m {
        None => u32::MAX,
        Some(m) if !m.is_empty() && m.bytes().all(|b| b.is_ascii_digit()) => {
            match m.parse::<u32>() {
                Ok(0) => 0,
                Ok(n @ 1..=32) => u32::MAX << (32 - n),
                _ => return Err("IPv4 network prefix bits not between 0 and 32, inclusive"),
            }
        }
        Some(m) => u32::from_be_bytes(parse_ipv4(m).ok_or(BAD)?),
    };
    Ok((v, m))
}

/// OVS's `ip_format_masked()`: a CIDR suffix when the mask is a prefix.
pub(crate) fn fmt_ipv4_masked(v: u32, m: u32) -> String {
    let mut s = fmt_ipv4(&v.to_be_bytes());
    if m != u32::MAX {
        if m.leading_ones() + m.trailing_zeros() == 32 {
            let _ = write!(s, "/{}", m.leading_ones());
        } else {
            let _ = write!(s, "/{}", fmt_ipv4(&m.to_be_bytes()));
        }
    }
    s
}

pub(crate) fn parse_ipv6(s: &str) -> Option<u128> {
    s.parse::<Ipv6Addr>().ok().map(u128::from)
}

/// `IPv6[/prefix|/IPv6]`; the error is OVS's wording.
pub(crate) fn parse_ipv6_masked(s: &str) -> Result<(u128, u128), &'static str> {
    const BAD: &str = "invalid IPv6 address";
    let (v, m) = match s.split_once('/') {
        Some((v, m)) => (v, Some(m)),
        None => (s, None),
    };
    let v = parse_ipv6(v).ok_or(BAD)?;
    let m = match m {
        None => u128::MAX,
        Some(m) if !m.is_empty() && m.bytes().all(|b| b.is_ascii_digit()) => match m.parse::<u32>()
        {
            Ok(0) => 0,
            Ok(n @ 1..=128) => u128::MAX << (128 - n),
            _ => return Err("IPv6 network prefix bits not between 0 and 128, inclusive"),
        },
        Some(m) => parse_ipv6(m).ok_or(BAD)?,
    };
    Ok((v, m))
}

/// An IPv6 address as glibc's `inet_ntop()` prints it (which OVS uses):
/// the longest run of two or more zero groups (the first on a tie) becomes
/// `::`, and IPv4-mapped or -compatible addresses end in a dotted quad.
/// Rust's own `Display` differs for `::a.b.c.d`.
pub(crate) fn fmt_ipv6(a: u128) -> String {
    let b = a.to_be_bytes();
    let w: Vec<u16> = b
        .chunks(2)
        .map(|c| u16::from_be_bytes([c[0], c[1]]))
        .collect();
    let (mut best, mut best_len, mut cur, mut cur_len) = (None, 0, None, 0);
    for (i, &x) in w.iter().enumerate() {
        if x == 0 {
            if cur.is_none() {
                cur = Some(i);
                cur_len = 0;
            }
            cur_len += 1;
            if cur_len > best_len {
                best = cur;
                best_len = cur_len;
            }
        } else {
            cur = None;
        }
    }
    if best_len < 2 {
        best = None;
    }
    let mut s = String::with_capacity(39);
    for (i, &x) in w.iter().enumerate() {
        if let Some(base) = best {
            if i >= base && i < base + best_len {
                if i == base {
                    s.push(':');
                }
                continue;
            }
        }
        if i != 0 {
            s.push(':');
        }
        if i == 6 && best == Some(0) && (best_len == 6 || (best_len == 5 && w[5] == 0xffff)) {
            s.push_str(&fmt_ipv4(&b[12..]));
            return s;
        }
        let _ = write!(s, "{x:x}");
    }
    if best.is_some_and(|base| base + best_len == 8) {
        s.push(':');
    }
    s
}

/// OVS's `ipv6_format_masked()`.
pub(crate) fn fmt_ipv6_masked(v: u128, m: u128) -> String {
    let mut s = fmt_ipv6(v);
    if m != u128::MAX {
        if m.leading_ones() + m.trailing_zeros() == 128 {
            let _ = write!(s, "/{}", m.leading_ones());
        } else {
            let _ = write!(s, "/{}", fmt_ipv6(m));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn c_numbers() {
        assert_eq!(parse_c_u64("010"), Ok(8));
        assert_eq!(parse_c_u64("0x10"), Ok(16));
        assert_eq!(parse_c_u64("+5"), Ok(5));
        assert_eq!(parse_c_u64("-1"), Ok(u64::MAX));
        assert_eq!(parse_c_u64("0x"), Err(NumErr::Syntax));
        assert_eq!(parse_c_u64("08"), Err(NumErr::Syntax));
        assert_eq!(parse_c_u64("18446744073709551616"), Err(NumErr::Range));
        assert_eq!(
            parse_field_int("0x0000000000000000000000000000000000ff"),
            Ok(0xff)
        );
        assert_eq!(hex(0), "0");
        assert_eq!(hex(0x1005), "0x1005");
    }

    #[test]
    fn ipv6_like_glibc() {
        for s in [
            "::",
            "::1",
            "::ffff:1.2.3.4",
            "::1.2.3.4",
            "1:0:0:1::1",
            "1:0:1:0:1:0:1:0",
            "2001:db8::",
            "fe80::1:0:0:1",
        ] {
            assert_eq!(fmt_ipv6(parse_ipv6(s).unwrap()), s);
        }
        assert_eq!(
            fmt_ipv6(parse_ipv6("2001:0db8:0:0:0:0:0:1").unwrap()),
            "2001:db8::1"
        );
    }
}
