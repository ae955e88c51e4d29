//! The fast path of JSON decoding: a flat object of plain members, the usual JSON line.
//!
//! `serde_json` with the row seed spends about 2,000 instructions on a line such as
//! `{"ts":1700000000000,"key":"k134","value":847}` (a `MapAccess` per member, a `Cow` key, a
//! visitor per value). [`decode_flat`] reads such a line in one pass over its bytes and hands
//! the same [`Scalar`]s to the same [`RowParts`], so the row is the one serde would build. It
//! only takes what it can read exactly as `serde_json` does:
//!
//! - one object, members separated by JSON whitespace, commas and colons;
//! - names and strings without escapes or control characters (copied as they are);
//! - integers of at most 18 digits (exact in `u64`/`i64`; `-0` excepted), `true`, `false`,
//!   `null`; a number with a fraction or an exponent is parsed by `serde_json` itself, so it
//!   is the same `f64`;
//! - and no error: a query field that `RowParts` refuses, or a missing time.
//!
//! Anything else (an escape, a nested value, `NaN`, a syntax error, ...) gives `None`, and the
//! caller decodes the line with `serde_json` as before, which also writes the error. A property
//! test compares the two on random lines (`fuzz.rs`).

use std::borrow::Cow;

use super::decode::{RowParts, Scalar};
use super::{Row, Schema};

/// The row of `line` if it is a flat object of plain members, as `serde_json` would decode it;
/// `None` if the line needs `serde_json` (or is a bad record).
pub(super) fn decode_flat(schema: &Schema, line: &str) -> Option<Row> {
    let mut cursor = Cursor { line, at: 0 };
    let mut row = RowParts::new(schema);
    cursor.skip_whitespace();
    cursor.expect(b'{')?;
    cursor.skip_whitespace();
    if cursor.peek() == Some(b'}') {
        cursor.at += 1;
    } else {
        loop {
            cursor.expect(b'"')?;
            let name = cursor.plain_string()?;
            cursor.skip_whitespace();
            cursor.expect(b':')?;
            cursor.skip_whitespace();
            if row.reads(name) {
                let value = cursor.scalar()?;
                row.set(name, &value).ok()?;
            } else {
                cursor.scalar()?;
            }
            cursor.skip_whitespace();
            match cursor.next()? {
                b',' => cursor.skip_whitespace(),
                b'}' => break,
                _ => return None,
            }
        }
    }
    cursor.skip_whitespace();
    if cursor.at != line.len() {
        return None;
    }
    row.finish().ok()
}

struct Cursor<'a> {
    line: &'a str,
    at: usize,
}

impl<'a> Cursor<'a> {
    #[inline]
    fn peek(&self) -> Option<u8> {
        self.line.as_bytes().get(self.at).copied()
    }

    #[inline]
    fn next(&mut self) -> Option<u8> {
        let byte = self.peek()?;
        self.at += 1;
        Some(byte)
    }

    #[inline]
    fn expect(&mut self, byte: u8) -> Option<()> {
        (self.next()? == byte).then_some(())
    }

    #[inline]
    fn skip_whitespace(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.at += 1;
        }
    }

    /// The rest of a string whose opening quote was read, up to its closing quote (consumed),
    /// if it has no escape and no control character. Short strings (the usual key or name)
    /// are scanned byte by byte, cheaper than setting up `memchr`; longer ones with it.
    #[inline]
    fn plain_string(&mut self) -> Option<&'a str> {
        const SHORT: usize = 24;
        let bytes = &self.line.as_bytes()[self.at..];
        let plain = |b: u8| b >= 0x20 && b != b'\\';
        let mut length = None;
        for (i, &b) in bytes.iter().take(SHORT).enumerate() {
            if b == b'"' {
                length = Some(i);
                break;
            }
            if !plain(b) {
                return None;
            }
        }
        let length = match length {
            Some(length) => length,
            None if bytes.len() <= SHORT => return None,
            None => {
                let length = SHORT + memchr::memchr(b'"', &bytes[SHORT..])?;
                if !bytes[SHORT..length].iter().all(|&b| plain(b)) {
                    return None;
                }
                length
            }
        };
        // Cut at ASCII quotes, so on character boundaries.
        let text = self.line.get(self.at..self.at + length)?;
        self.at += length + 1;
        Some(text)
    }

    /// One scalar value.
    fn scalar(&mut self) -> Option<Scalar<'a>> {
        match self.next()? {
            b'"' => self.plain_string().map(|s| Scalar::Str(Cow::Borrowed(s))),
            b't' => self.word(b"rue", Scalar::Bool(true)),
            b'f' => self.word(b"alse", Scalar::Bool(false)),
            b'n' => self.word(b"ull", Scalar::Null),
            b'-' | b'0'..=b'9' => {
                self.at -= 1;
                self.number()
            }
            _ => None,
        }
    }

    fn word(&mut self, rest: &[u8], value: Scalar<'a>) -> Option<Scalar<'a>> {
        let end = self.at + rest.len();
        (self.line.as_bytes().get(self.at..end)? == rest).then(|| {
            self.at = end;
            value
        })
    }

    fn digits(&mut self) -> usize {
        let start = self.at;
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.at += 1;
        }
        self.at - start
    }

    /// A JSON number (the grammar's: `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`).
    fn number(&mut self) -> Option<Scalar<'a>> {
        let start = self.at;
        let negative = self.peek() == Some(b'-');
        if negative {
            self.at += 1;
        }
        let int_start = self.at;
        // The integer part's value, exact while it has at most 18 digits.
        let mut value = 0u64;
        match self.peek()? {
            b'0' => self.at += 1,
            b'1'..=b'9' => {
                while let Some(digit @ b'0'..=b'9') = self.peek() {
                    value = value.wrapping_mul(10).wrapping_add(u64::from(digit - b'0'));
                    self.at += 1;
                }
            }
            _ => return None,
        }
        let int_end = self.at;
        let mut fraction = false;
        if self.peek() == Some(b'.') {
            self.at += 1;
            if self.digits() == 0 {
                return None;
            }
            fraction = true;
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.at += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.at += 1;
            }
            if self.digits() == 0 {
                return None;
            }
            fraction = true;
        }
        if fraction {
            // serde_json's own float parsing, so the same f64 as the slow path.
            return serde_json::from_str::<f64>(&self.line[start..self.at])
                .ok()
                .map(Scalar::Float);
        }
        if int_end - int_start > 18 {
            return None;
        }
        match (negative, value) {
            (false, value) => Some(Scalar::UInt(value)),
            (true, 0) => None,
            // At most 18 digits: fits i64.
            (true, value) => Some(Scalar::Int(-(value as i64))),
        }
    }
}
