//! Checked reading and writing of big-endian wire data. Every read of
//! untrusted bytes goes through [`Reader`], which never panics: running past
//! the end yields the error the caller chose for that structure.

use super::error::OfpErr;

/// A cursor over untrusted bytes. Reads past the end return `self.short`
/// (the length error of the structure being read).
#[derive(Clone, Debug)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    short: OfpErr,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8], short: OfpErr) -> Reader<'a> {
        Reader { buf, pos: 0, short }
    }

    /// The same bytes with another length error.
    pub fn with_err(&self, short: OfpErr) -> Reader<'a> {
        Reader {
            buf: self.buf,
            pos: self.pos,
            short,
        }
    }

    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    pub fn pos(&self) -> usize {
        self.pos
    }

    pub fn bytes(&mut self, n: usize) -> Result<&'a [u8], OfpErr> {
        if n > self.remaining() {
            return Err(self.short);
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    /// The next `n` bytes as a reader of their own (with the same error).
    pub fn sub(&mut self, n: usize) -> Result<Reader<'a>, OfpErr> {
        let short = self.short;
        Ok(Reader::new(self.bytes(n)?, short))
    }

    pub fn rest(&mut self) -> &'a [u8] {
        let s = &self.buf[self.pos..];
        self.pos = self.buf.len();
        s
    }

    pub fn skip(&mut self, n: usize) -> Result<(), OfpErr> {
        self.bytes(n).map(|_| ())
    }

    pub fn array<const N: usize>(&mut self) -> Result<[u8; N], OfpErr> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.bytes(N)?);
        Ok(a)
    }

    pub fn u8(&mut self) -> Result<u8, OfpErr> {
        Ok(self.array::<1>()?[0])
    }

    pub fn u16(&mut self) -> Result<u16, OfpErr> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    pub fn u32(&mut self) -> Result<u32, OfpErr> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    pub fn u64(&mut self) -> Result<u64, OfpErr> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    /// Peeks at a big-endian u16 `at` bytes ahead without moving.
    pub fn peek_u16(&self, at: usize) -> Option<u16> {
        let s = self.buf.get(self.pos + at..self.pos + at + 2)?;
        Some(u16::from_be_bytes([s[0], s[1]]))
    }

    pub fn peek_u32(&self, at: usize) -> Option<u32> {
        let s = self.buf.get(self.pos + at..self.pos + at + 4)?;
        Some(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
    }

    /// A NUL-padded string field of `n` bytes. As in OVS, at most `n - 1`
    /// bytes are taken (the field always ends in a NUL); bytes that are not
    /// UTF-8 read as `?` (so the string re-encodes to as many bytes).
    pub fn string(&mut self, n: usize) -> Result<String, OfpErr> {
        let b = self.bytes(n)?;
        let b = &b[..n.saturating_sub(1)];
        let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
        Ok(match std::str::from_utf8(&b[..end]) {
            Ok(s) => s.to_string(),
            Err(_) => b[..end]
                .iter()
                .map(|&c| if c.is_ascii() { c as char } else { '?' })
                .collect(),
        })
    }
}

/// Appends big-endian wire data.
#[derive(Clone, Debug, Default)]
pub struct Writer {
    pub buf: Vec<u8>,
}

impl Writer {
    pub fn new() -> Writer {
        Writer::default()
    }

    pub fn len(&self) -> usize {
        self.buf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    pub fn u8(&mut self, v: u8) -> &mut Self {
        self.buf.push(v);
        self
    }

    pub fn u16(&mut self, v: u16) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }

    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }

    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }

    pub fn bytes(&mut self, b: &[u8]) -> &mut Self {
        self.buf.extend_from_slice(b);
        self
    }

    pub fn zeros(&mut self, n: usize) -> &mut Self {
        self.buf.resize(self.buf.len() + n, 0);
        self
    }

    /// A string in a NUL-padded field of `n` bytes (truncated to leave a NUL).
    pub fn string(&mut self, s: &str, n: usize) -> &mut Self {
        let b = s.as_bytes();
        let k = b.len().min(n.saturating_sub(1));
        self.bytes(&b[..k]).zeros(n - k)
    }

    /// Pads with zeros to a multiple of `align` bytes from `start`.
    pub fn pad_to(&mut self, start: usize, align: usize) -> &mut Self {
        let len = self.buf.len() - start;
        let padded = len.div_ceil(align) * align;
        self.zeros(padded - len)
    }

    /// Writes `v` as a big-endian u16 at byte `at` (a length filled in later).
    pub fn put_u16_at(&mut self, at: usize, v: u16) {
        if let Some(s) = self.buf.get_mut(at..at + 2) {
            s.copy_from_slice(&v.to_be_bytes());
        }
    }
}
