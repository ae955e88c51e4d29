//! JSON lines: one JSON value per line; blank lines are skipped.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::de::DeserializeOwned;

use super::{FileFormat, RecordReader, Splittable};
use crate::error::Error;
use crate::source::{BadRecord, Position, ReadError};

pub(crate) type LineDecoder<T> = dyn Fn(&str) -> Result<T, String> + Send + Sync;

/// The JSON lines format, decoding each line with serde or with a function.
pub struct JsonLines<T> {
    decode: Arc<LineDecoder<T>>,
}

impl<T> Clone for JsonLines<T> {
    fn clone(&self) -> Self {
        JsonLines {
            decode: Arc::clone(&self.decode),
        }
    }
}

impl<T: DeserializeOwned> JsonLines<T> {
    /// Decodes each line into `T` with serde.
    pub fn serde() -> Self {
        Self::with_decoder(|line| serde_json::from_str(line).map_err(|e| e.to_string()))
    }
}

impl<T> JsonLines<T> {
    /// The function that decodes one line.
    pub(crate) fn decoder(&self) -> Arc<LineDecoder<T>> {
        Arc::clone(&self.decode)
    }

    /// Decodes each line with `decode`; an `Err` is reported with the file and line.
    pub fn with_decoder(
        decode: impl Fn(&str) -> Result<T, String> + Send + Sync + 'static,
    ) -> Self {
        JsonLines {
            decode: Arc::new(decode),
        }
    }
}

impl<T: 'static> FileFormat for JsonLines<T> {
    type Item = T;
    type Reader = JsonLinesReader<T>;

    fn open(
        &self,
        path: &Path,
        file: File,
        max_record_bytes: usize,
    ) -> Result<Self::Reader, Error> {
        Ok(JsonLinesReader {
            path: path.to_path_buf(),
            reader: BufReader::with_capacity(64 * 1024, file),
            line: Vec::new(),
            offset: 0,
            line_number: 0,
            max_record_bytes,
            decode: Arc::clone(&self.decode),
        })
    }
    fn splittable(&self) -> Splittable {
        Splittable::Lines
    }
}

/// The UTF-8 byte-order mark.
const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Reads one JSON lines file.
pub struct JsonLinesReader<T> {
    path: PathBuf,
    reader: BufReader<File>,
    line: Vec<u8>,
    /// The byte offset of the next line.
    offset: u64,
    /// The number of lines read: the next one's number less one.
    line_number: u64,
    max_record_bytes: usize,
    decode: Arc<LineDecoder<T>>,
}

/// Reads the next line of `reader` into `line`, without its `\n`, keeping at most `max + 1`
/// bytes of it. Returns the line's whole length (without the `\n`), or `None` at the end.
pub(crate) fn read_line_capped(
    reader: &mut impl BufRead,
    line: &mut Vec<u8>,
    max: usize,
) -> io::Result<Option<usize>> {
    Ok(read_line_counted(reader, line, max)?.map(|(length, _)| length))
}

/// As [`read_line_capped`], also returning the number of bytes taken from `reader`: the line's
/// length and its `\n`, if it has one.
fn read_line_counted(
    reader: &mut impl BufRead,
    line: &mut Vec<u8>,
    max: usize,
) -> io::Result<Option<(usize, u64)>> {
    line.clear();
    let mut length = 0;
    let mut newline_taken = false;
    let mut any = false;
    loop {
        let available = match reader.fill_buf() {
            Ok(available) => available,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if available.is_empty() {
            break;
        }
        any = true;
        let newline = memchr::memchr(b'\n', available);
        let content = newline.unwrap_or(available.len());
        let room = (max + 1).saturating_sub(line.len());
        line.extend_from_slice(&available[..content.min(room)]);
        length += content;
        reader.consume(newline.map_or(content, |at| at + 1));
        if newline.is_some() {
            newline_taken = true;
            break;
        }
    }
    let taken = length as u64 + u64::from(newline_taken);
    Ok(any.then_some((length, taken)))
}

impl<T: 'static> RecordReader for JsonLinesReader<T> {
    type Item = T;

    fn next_record(&mut self) -> Result<Option<T>, ReadError> {
        loop {
            let max = self.max_record_bytes;
            let read = read_line_counted(&mut self.reader, &mut self.line, max)
                .map_err(|e| Error::io(format!("cannot read {}", self.path.display()), e))?;
            let Some((mut length, taken)) = read else {
                return Ok(None);
            };
            // A UTF-8 byte-order mark opening the file is not part of its first record (as
            // in CSV files).
            if self.offset == 0 && self.line.starts_with(BOM) {
                self.line.drain(..BOM.len());
                length -= BOM.len();
            }
            self.offset += taken;
            self.line_number += 1;
            let line = &mut self.line;
            if let Some(record) = decode_line(&*self.decode, line, length, self.line_number, max)? {
                return Ok(Some(record));
            }
        }
    }

    fn position(&self) -> Position {
        Position {
            offset: self.offset,
            line: self.line_number + 1,
        }
    }

    fn seek(&mut self, position: Position) -> Result<(), Error> {
        self.reader
            .seek(SeekFrom::Start(position.offset))
            .map_err(|e| Error::io(format!("cannot seek in {}", self.path.display()), e))?;
        self.offset = position.offset;
        self.line_number = position.line.saturating_sub(1);
        Ok(())
    }
}

/// Decodes one line read by [`read_line_capped`] (`length` bytes long, at most `max + 1` of
/// them kept in `line`): `None` for a blank line, else the record or a bad record with its
/// line number, reason and raw text (taken out of `line`).
pub(crate) fn decode_line<T>(
    decode: &LineDecoder<T>,
    line: &mut Vec<u8>,
    mut length: usize,
    line_number: u64,
    max: usize,
) -> Result<Option<T>, ReadError> {
    if length <= max + 1 && line.last() == Some(&b'\r') {
        line.pop();
        length -= 1;
    }
    let bad = |line: &mut Vec<u8>, reason: String| {
        line.truncate(max);
        ReadError::Bad(BadRecord {
            line: line_number,
            reason,
            raw: std::mem::take(line),
            length: length as u64,
        })
    };
    if length > max {
        return Err(bad(line, format!("record is longer than {max} bytes")));
    }
    let text = match std::str::from_utf8(line) {
        Ok(text) => text.trim(),
        Err(e) => return Err(bad(line, format!("invalid UTF-8: {e}"))),
    };
    if text.is_empty() {
        return Ok(None);
    }
    match decode(text) {
        Ok(record) => Ok(Some(record)),
        Err(reason) => Err(bad(line, reason)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_read_whole_up_to_the_cap_and_cut_past_it() {
        let input = b"abc\r\n\nabcdef\nabcd\r\nxy".to_vec();
        let mut reader = io::BufReader::with_capacity(2, &input[..]);
        let mut line = Vec::new();
        let mut lines = Vec::new();
        while let Some(length) = read_line_capped(&mut reader, &mut line, 4).unwrap() {
            lines.push((length, String::from_utf8(line.clone()).unwrap()));
        }
        let expected = [
            (4, "abc\r"),
            (0, ""),
            (6, "abcde"),
            (5, "abcd\r"),
            (2, "xy"),
        ];
        let expected: Vec<(usize, String)> =
            expected.iter().map(|(n, s)| (*n, s.to_string())).collect();
        assert_eq!(lines, expected);
    }
}
