//! The CSV file reader's fast path: records that need none of CSV's quoting rules are split
//! here, without the `csv` crate's parser; everything else is left to that parser.
//!
//! To the `csv` crate as the file reader configures it (comma delimiter, `"` quote, `\r`,
//! `\n` or `\r\n` terminators, blank lines skipped), input without a `"` is a series of
//! records, each a run of bytes with no `\r` or `\n`, ended by one terminator byte (which it
//! consumes) or by the end of the file; the terminators between records are skipped, and each
//! `\n` counts a line. A record's fields are the bytes between its commas. [`FastLines`]
//! reads the file in large blocks, finds such records with `memchr` and splits them into the
//! reader's [`ByteRecord`], keeping the `csv` reader's position (byte offset, line and record
//! count) exactly as that reader would have, so that positions, line numbers and error texts
//! do not depend on which path read a record. When the next record has a `"` (or does not fit
//! in the buffer, or starts with a byte-order mark just after a seek), it hands the file back
//! to the `csv` reader at that record's position ([`Handover`]).

use std::fs::File;
use std::io::{self, Read};

use csv::{ByteRecord, Position};

/// The UTF-8 byte-order mark, which the `csv` reader drops where it starts reading after a
/// seek.
const BOM: &[u8] = b"\xEF\xBB\xBF";

/// By default, the fast path reads the file in blocks of this many bytes (as the JSON lines
/// reader's buffer: a worker holds one per open file or chunk); a record that does not fit
/// is read by the `csv` reader.
pub(super) const FAST_BUFFER_BYTES: u32 = 64 * 1024;

/// Splits the lines of one CSV file that need no quoting rules.
pub(super) struct FastLines {
    /// Bytes read from the file; `buffer[start..end]` are not consumed yet.
    buffer: Box<[u8]>,
    start: usize,
    end: usize,
    /// The first `"` in `buffer[start..end]`, or `end` if there is none.
    quote: usize,
    /// The `csv` reader's position at `buffer[start]`: byte offset, line, and the number of
    /// records read since the last seek.
    at: Position,
    /// Whether a read from the file has returned nothing since it was last seeked.
    at_end: bool,
    /// Whether nothing was read since a seek: the `csv` reader then drops a byte-order mark
    /// at the start of what it reads.
    fresh: bool,
}

/// What [`FastLines::next`] found.
pub(super) enum Step<'a> {
    /// A record, split into the row. `line` is the line it is on (after any blank lines before
    /// it), `text` its bytes without its terminator.
    Record { line: u64, text: &'a [u8] },
    /// The end of the file.
    End,
    /// The next record is for the `csv` reader to read, from [`FastLines::position`].
    Csv(Handover),
}

/// Why the `csv` reader takes over, and for how long.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Handover {
    /// The record has a `"`: the `csv` reader reads the rest of the file (a file that quotes
    /// once is likely to quote again; this keeps it to one seek per file).
    RestOfFile,
    /// The record does not fit in the buffer: the `csv` reader reads that one record.
    LongLine,
    /// The first record after a seek starts with a byte-order mark, which the `csv` reader,
    /// seeked there, would drop: it reads that one record, and drops it.
    MarkAfterSeek,
}

impl Handover {
    /// Whether the `csv` reader must keep a byte-order mark where it starts reading, as it
    /// does when it reads on from an earlier record rather than from a seek.
    pub(super) fn keeps_mark(self) -> bool {
        self != Handover::MarkAfterSeek
    }
}

impl FastLines {
    /// Reads in blocks of `capacity` bytes (at least 4) from `at`, where the `csv` reader
    /// stands after reading the header: not `fresh`.
    pub(super) fn new(capacity: usize, at: Position) -> Self {
        FastLines {
            buffer: vec![0; capacity.max(BOM.len() + 1)].into_boxed_slice(),
            start: 0,
            end: 0,
            quote: 0,
            at,
            at_end: false,
            fresh: false,
        }
    }

    /// Where the next record starts, as the `csv` reader counts it.
    pub(super) fn position(&self) -> &Position {
        &self.at
    }

    /// Starts again at `at`, where the file has just been seeked to; `fresh` if by a seek
    /// of the reader (rather than after a record the `csv` reader read).
    pub(super) fn restart(&mut self, at: Position, fresh: bool) {
        self.start = 0;
        self.end = 0;
        self.quote = 0;
        self.at = at;
        self.at_end = false;
        self.fresh = fresh;
    }

    /// The next record of `file`, split into `row` with its position set as the `csv` reader
    /// sets it; or the end; or a record the `csv` reader must read, with nothing consumed.
    pub(super) fn next(&mut self, file: &mut File, row: &mut ByteRecord) -> io::Result<Step<'_>> {
        if self.fresh {
            while self.end - self.start < BOM.len() && !self.at_end {
                self.fill(file)?;
            }
            self.fresh = false;
            if self.buffer[self.start..self.end].starts_with(BOM) {
                return Ok(Step::Csv(Handover::MarkAfterSeek));
            }
        }
        let (from, blank, stop, next) = loop {
            if let Some(found) = self.split(row) {
                break found;
            }
            if self.start == 0 && self.end == self.buffer.len() {
                return Ok(Step::Csv(Handover::LongLine));
            }
            self.fill(file)?;
        };
        if self.quote < stop {
            return Ok(Step::Csv(Handover::RestOfFile));
        }
        let consumed = (next - self.start) as u64;
        let line = self.at.line() + blank;
        self.start = next;
        if from == stop {
            // Only terminators were left: the end, where the `csv` reader stops too.
            self.at.set_byte(self.at.byte() + consumed).set_line(line);
            return Ok(Step::End);
        }
        // The record ends at its first terminator, which it consumes; a `\n` after a `\r`
        // is the next record's to skip, as the `csv` reader does.
        let newline = u64::from(next > stop && self.buffer[stop] == b'\n');
        row.set_position(Some(self.at.clone()));
        let (byte, record) = (self.at.byte() + consumed, self.at.record() + 1);
        self.at
            .set_byte(byte)
            .set_line(line + newline)
            .set_record(record);
        Ok(Step::Record {
            line,
            text: &self.buffer[from..stop],
        })
    }

    /// Splits the record at the start of the buffer into the fields of `row`, if the buffer
    /// holds all of it: skips the terminators before it (blank lines, the `\n` of a `\r\n`)
    /// and returns where it starts, how many `\n`s were skipped, where it stops (its
    /// terminator, or the end of the file) and where the next one starts. Consumes nothing.
    fn split(&self, row: &mut ByteRecord) -> Option<(usize, u64, usize, usize)> {
        let buffer = &self.buffer[..self.end];
        let mut from = self.start;
        let mut blank = 0;
        while from < buffer.len() && matches!(buffer[from], b'\n' | b'\r') {
            blank += u64::from(buffer[from] == b'\n');
            from += 1;
        }
        row.clear();
        // Eight bytes at a time: commas end fields, the first terminator the record.
        let mut field = from;
        let mut words = buffer[from..].chunks_exact(8);
        let mut at = from;
        for chunk in words.by_ref() {
            let mut word = [0; 8];
            word.copy_from_slice(chunk);
            let mut found = candidates(u64::from_le_bytes(word));
            while found != 0 {
                let stop = at + found.trailing_zeros() as usize / 8;
                found &= found - 1;
                match buffer[stop] {
                    b',' => {
                        row.push_field(&buffer[field..stop]);
                        field = stop + 1;
                    }
                    b'\n' | b'\r' => {
                        row.push_field(&buffer[field..stop]);
                        return Some((from, blank, stop, stop + 1));
                    }
                    _ => {}
                }
            }
            at += 8;
        }
        for (stop, &byte) in words.remainder().iter().enumerate() {
            if matches!(byte, b',' | b'\n' | b'\r') {
                let stop = at + stop;
                row.push_field(&buffer[field..stop]);
                if byte != b',' {
                    return Some((from, blank, stop, stop + 1));
                }
                field = stop + 1;
            }
        }
        if !self.at_end {
            return None;
        }
        row.push_field(&buffer[field..]);
        Some((from, blank, buffer.len(), buffer.len()))
    }

    /// Moves the unconsumed bytes to the front of the buffer and reads more after them (at
    /// least one byte unless at the end of the file; the buffer must not be full).
    fn fill(&mut self, file: &mut File) -> io::Result<()> {
        self.buffer.copy_within(self.start..self.end, 0);
        self.end -= self.start;
        self.quote -= self.start;
        self.start = 0;
        let read = loop {
            match file.read(&mut self.buffer[self.end..]) {
                Ok(read) => break read,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        };
        self.at_end |= read == 0;
        let before = self.end;
        self.end += read;
        if self.quote == before {
            let fresh = &self.buffer[before..self.end];
            self.quote = before + memchr::memchr(b'"', fresh).unwrap_or(read);
        }
        Ok(())
    }
}

/// The bytes of `word` (eight bytes, the first in the low lane) that may be `,`, `\n` or
/// `\r`, as the high bit of their lanes: those below `-` (0x2D), which `,` (0x2C), `\n` and
/// `\r` are; digits and letters are not.
#[inline(always)]
fn candidates(word: u64) -> u64 {
    const LANES: u64 = 0x0101_0101_0101_0101;
    const LOW: u64 = 0x7F7F_7F7F_7F7F_7F7F;
    // A lane's high bit is set in `(word & LOW) + (0x80 - 0x2D)` if its low seven bits are
    // 0x2D or more, in `word` if its high bit is; no lane carries into the next.
    !(((word & LOW) + LANES * (0x80 - 0x2D)) | word) & !LOW
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidates_are_the_bytes_below_a_dash_in_every_lane() {
        for lane in 0..8 {
            for byte in 0..=255u8 {
                // The other lanes hold bytes on either side of the bound (and 0x80 and 0xAC, whose
                // low bits are those of a candidate) to catch a carry between lanes.
                let mut word = [b'+', b'\x80', b'\xac', b'-', b'\x7f', b',', b'\xff', b'\0'];
                word[lane] = byte;
                let expected = word
                    .iter()
                    .enumerate()
                    .filter(|(_, &b)| b < b'-')
                    .fold(0, |mask, (at, _)| mask | 0x80 << (8 * at));
                assert_eq!(candidates(u64::from_le_bytes(word)), expected, "{word:?}");
            }
        }
    }
}
