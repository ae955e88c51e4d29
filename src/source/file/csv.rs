//! CSV with a header row: the format, the file reader, and the record framing and parsing
//! the live sources ([`SocketSource`](crate::source::SocketSource),
//! [`StdinSource`](crate::source::StdinSource)) use to read CSV from a stream.

use std::fs::File;
use std::io::{self, BufRead, Cursor, Read, Seek, SeekFrom};
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use csv::{ByteRecord, Position, ReaderBuilder, Terminator};
use serde::de::DeserializeOwned;

use super::csv_fast::{FastLines, Handover, Step, FAST_BUFFER_BYTES};
use super::{FileFormat, RecordReader, Splittable};
use crate::error::Error;
use crate::source::{BadRecord, Position as RecordPosition, ReadError};

/// Decodes the rows of one input (a file, or a live stream).
pub type RowDecoder<T> = Box<dyn FnMut(&ByteRecord) -> Result<T, String>>;
type Prepare<T> = dyn Fn(&ByteRecord) -> Result<RowDecoder<T>, String> + Send + Sync;

/// The CSV format: a header row, then one record per row. Each row is decoded with serde (by
/// column name) or with a decoder prepared from each input's header (each file's, or a live
/// stream's first record).
pub struct Csv<T> {
    prepare: Arc<Prepare<T>>,
    /// The block size of the file reader's fast path (`csv_fast.rs`), or `None` to read files
    /// with the `csv` crate's parser alone (tests compare the two). Small, so that the live
    /// sources' decoder, which holds a `Csv`, stays small.
    fast_buffer: Option<NonZeroU32>,
}

impl<T> Clone for Csv<T> {
    fn clone(&self) -> Self {
        Csv {
            prepare: Arc::clone(&self.prepare),
            fast_buffer: self.fast_buffer,
        }
    }
}

impl<T: DeserializeOwned + 'static> Csv<T> {
    /// Decodes each row into `T` with serde, matching columns to fields by header name.
    pub fn serde() -> Self {
        Self::with_decoder(|header| {
            let header = header.clone();
            Ok(Box::new(move |row: &ByteRecord| {
                row.deserialize(Some(&header)).map_err(|e| e.to_string())
            }))
        })
    }
}

impl<T> Csv<T> {
    /// Decodes rows with the decoder `prepare` makes from each input's header. An `Err` from
    /// `prepare` (a missing column, say) stops the job with the input's name and the header's
    /// line, whatever the [`OnError`](crate::source::OnError) policy; an `Err` from the decoder
    /// is a bad record, reported with the input and line.
    pub fn with_decoder(
        prepare: impl Fn(&ByteRecord) -> Result<RowDecoder<T>, String> + Send + Sync + 'static,
    ) -> Self {
        Csv {
            prepare: Arc::new(prepare),
            fast_buffer: NonZeroU32::new(FAST_BUFFER_BYTES),
        }
    }

    /// Reads files through the fast path with blocks of `bytes`, or with the `csv` crate's
    /// parser alone if `None`.
    #[cfg(test)]
    pub(crate) fn fast_buffer(mut self, bytes: Option<NonZeroU32>) -> Self {
        self.fast_buffer = bytes;
        self
    }

    /// Prepares to decode the rows under `header`. An `Err` (a missing column, say) is the
    /// header's fault.
    pub(crate) fn rows(&self, header: &ByteRecord) -> Result<CsvRows<T>, String> {
        Ok(CsvRows {
            fields: header.len(),
            decode: (self.prepare)(header)?,
        })
    }
}

/// Decodes the rows under one header.
pub(crate) struct CsvRows<T> {
    /// The number of fields in the header, which every row must have.
    fields: usize,
    decode: RowDecoder<T>,
}

impl<T> CsvRows<T> {
    /// Decodes `row`; an `Err` says why it is a bad record.
    pub(crate) fn decode(&mut self, row: &ByteRecord) -> Result<T, String> {
        if row.len() != self.fields {
            return Err(format!(
                "found record with {} fields, but the header has {} fields",
                row.len(),
                self.fields
            ));
        }
        (self.decode)(row)
    }
}

impl<T: 'static> FileFormat for Csv<T> {
    type Item = T;
    type Reader = CsvReader<T>;

    fn open(
        &self,
        path: &Path,
        file: File,
        max_record_bytes: usize,
    ) -> Result<Self::Reader, Error> {
        // Flexible, so that a row with the wrong number of fields is a bad record the policy
        // handles rather than an error that ends the file.
        let mut reader = ReaderBuilder::new()
            .has_headers(true)
            .flexible(true)
            .from_reader(EofFile {
                file,
                at_end: false,
                keep_mark: false,
            });
        let bad_header = |reason: String| Error::Input {
            path: path.to_path_buf(),
            line: 1,
            reason,
        };
        let header = reader
            .byte_headers()
            .map_err(|e| bad_header(format!("cannot read the CSV header: {e}")))?;
        let rows = self.rows(header).map_err(bad_header)?;
        // The fast path reads on from where the `csv` reader, which read ahead, stands.
        let lines = match self.fast_buffer {
            Some(bytes) => {
                let at = reader.position().clone();
                reader
                    .get_mut()
                    .file
                    .seek(SeekFrom::Start(at.byte()))
                    .map_err(|e| Error::io(format!("cannot seek in {}", path.display()), e))?;
                Some(FastLines::new(bytes.get() as usize, at))
            }
            None => None,
        };
        Ok(CsvReader {
            path: path.to_path_buf(),
            reader,
            row: ByteRecord::new(),
            max_record_bytes,
            rows,
            fast: lines.is_some(),
            lines,
        })
    }
    fn splittable(&self) -> Splittable {
        Splittable::LinesUnlessQuoted
    }
}

/// A file that remembers whether a read has met its end since it was last seeked. The `csv`
/// reader reads ahead only when its buffer is empty, so a record read while this happened
/// ran to the end of the file without a terminator, and its quotes must be checked.
struct EofFile {
    file: File,
    at_end: bool,
    /// Whether the next read gives one byte at most. The `csv` reader drops a UTF-8
    /// byte-order mark at the start of its first read after a seek, if that read has all three
    /// of its bytes; when it takes over from the fast path, which read on from an earlier
    /// record, it must keep it, as it would have.
    keep_mark: bool,
}

impl Read for EofFile {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let take = if std::mem::take(&mut self.keep_mark) {
            buf.len().min(1)
        } else {
            buf.len()
        };
        let read = self.file.read(&mut buf[..take])?;
        self.at_end |= read == 0 && take > 0;
        Ok(read)
    }
}

impl Seek for EofFile {
    fn seek(&mut self, position: SeekFrom) -> io::Result<u64> {
        self.at_end = false;
        self.keep_mark = false;
        self.file.seek(position)
    }
}

/// Reads one CSV file: records without quotes through the fast path (`csv_fast.rs`), from
/// the first record with a quote to the end of the file (or the next seek) through the `csv`
/// reader.
pub struct CsvReader<T> {
    path: PathBuf,
    reader: csv::Reader<EofFile>,
    row: ByteRecord,
    max_record_bytes: usize,
    rows: CsvRows<T>,
    /// The fast path, unless the format turned it off.
    lines: Option<FastLines>,
    /// Whether the fast path reads the next record (else the `csv` reader does).
    fast: bool,
}

impl<T> CsvReader<T> {
    /// The record that spans bytes `start..end` of the file, which the `csv` reader says
    /// starts on line `line`, with its true line and raw text: the span begins with the
    /// previous record's terminator and any blank lines, and ends with its own terminator.
    fn raw_record(&self, start: u64, end: u64, mut line: u64) -> Result<(u64, Vec<u8>), Error> {
        let cannot = |e| Error::io(format!("cannot read {}", self.path.display()), e);
        let mut file = File::open(&self.path).map_err(cannot)?;
        file.seek(SeekFrom::Start(start)).map_err(cannot)?;
        let mut raw = Vec::new();
        file.take(end.saturating_sub(start))
            .read_to_end(&mut raw)
            .map_err(cannot)?;
        let leading = raw
            .iter()
            .take_while(|&&b| b == b'\n' || b == b'\r')
            .count();
        line += raw[..leading].iter().filter(|&&b| b == b'\n').count() as u64;
        raw.drain(..leading);
        while matches!(raw.last(), Some(b'\n' | b'\r')) {
            raw.pop();
        }
        Ok((line, raw))
    }

    /// A bad record spanning `start..end` that the `csv` reader says starts on line `line`.
    fn bad(&self, start: u64, end: u64, line: u64, reason: String) -> ReadError {
        match self.raw_record(start, end, line) {
            Ok((line, mut raw)) => {
                let length = raw.len() as u64;
                raw.truncate(self.max_record_bytes);
                ReadError::Bad(BadRecord {
                    line,
                    reason,
                    raw,
                    length,
                })
            }
            Err(error) => ReadError::Fatal(error),
        }
    }

    /// Seeks the `csv` reader to `at`.
    fn seek_csv(&mut self, at: Position) -> Result<(), Error> {
        self.reader
            .seek_raw(SeekFrom::Start(at.byte()), at)
            .map_err(|e| {
                Error::io(
                    format!("cannot seek in {}", self.path.display()),
                    std::io::Error::other(e),
                )
            })
    }

    /// The next record, read by the `csv` reader.
    fn next_csv_record(&mut self) -> Result<Option<T>, ReadError> {
        let before = self.reader.position().clone();
        let more = match self.reader.read_byte_record(&mut self.row) {
            Ok(more) => more,
            Err(e) if e.is_io_error() => {
                return Err(ReadError::Fatal(Error::io(
                    format!("cannot read {}", self.path.display()),
                    std::io::Error::other(e),
                )))
            }
            Err(e) => {
                let start = e.position().unwrap_or(&before).clone();
                let end = self.reader.position().byte();
                return Err(self.bad(start.byte(), end, start.line(), e.to_string()));
            }
        };
        if !more {
            return Ok(None);
        }
        let start = self.row.position().unwrap_or(&before).clone();
        let end = self.reader.position().byte();
        let max = self.max_record_bytes;
        if end.saturating_sub(start.byte()) > max as u64 {
            let (line, raw) = self
                .raw_record(start.byte(), end, start.line())
                .map_err(ReadError::Fatal)?;
            if raw.len() > max {
                let reason = format!("record is longer than {max} bytes");
                return Err(ReadError::Bad(BadRecord {
                    line,
                    reason,
                    raw: raw[..max].to_vec(),
                    length: raw.len() as u64,
                }));
            }
        }
        if self.reader.get_ref().at_end {
            // The last record, without a terminator: the `csv` reader closes a quote left
            // open at the end of the file; it is a bad record.
            let (line, mut raw) = self
                .raw_record(start.byte(), end, start.line())
                .map_err(ReadError::Fatal)?;
            if ends_in_open_quote(&raw) {
                let length = raw.len() as u64;
                raw.truncate(max);
                let reason = OPEN_QUOTE.to_string();
                return Err(ReadError::Bad(BadRecord {
                    line,
                    reason,
                    raw,
                    length,
                }));
            }
        }
        match self.rows.decode(&self.row) {
            Ok(record) => Ok(Some(record)),
            Err(reason) => Err(self.bad(start.byte(), end, start.line(), reason)),
        }
    }
}

impl<T: 'static> RecordReader for CsvReader<T> {
    type Item = T;

    fn next_record(&mut self) -> Result<Option<T>, ReadError> {
        let handover = match self.lines.as_mut() {
            Some(lines) if self.fast => {
                match lines.next(&mut self.reader.get_mut().file, &mut self.row) {
                    Ok(Step::Record { line, text }) => {
                        let max = self.max_record_bytes;
                        let (reason, length) = if text.len() > max {
                            (format!("record is longer than {max} bytes"), text.len())
                        } else {
                            match self.rows.decode(&self.row) {
                                Ok(record) => return Ok(Some(record)),
                                Err(reason) => (reason, text.len()),
                            }
                        };
                        return Err(ReadError::Bad(BadRecord {
                            line,
                            reason,
                            raw: text[..length.min(max)].to_vec(),
                            length: length as u64,
                        }));
                    }
                    Ok(Step::End) => return Ok(None),
                    Ok(Step::Csv(handover)) => (handover, lines.position().clone()),
                    Err(e) => {
                        let context = format!("cannot read {}", self.path.display());
                        return Err(ReadError::Fatal(Error::io(context, e)));
                    }
                }
            }
            _ => return self.next_csv_record(),
        };
        // The `csv` reader reads on from the record the fast path stopped at.
        let (handover, at) = handover;
        self.seek_csv(at).map_err(ReadError::Fatal)?;
        self.reader.get_mut().keep_mark = handover.keeps_mark();
        self.fast = false;
        if handover == Handover::RestOfFile {
            return self.next_csv_record();
        }
        // One record only: the fast path goes on from where the `csv` reader stopped.
        let read = self.next_csv_record();
        let after = self.reader.position().clone();
        let cannot = |e| Error::io(format!("cannot seek in {}", self.path.display()), e);
        let file = &mut self.reader.get_mut().file;
        file.seek(SeekFrom::Start(after.byte()))
            .map_err(|e| ReadError::Fatal(cannot(e)))?;
        if let Some(lines) = &mut self.lines {
            lines.restart(after, false);
        }
        self.fast = true;
        read
    }

    /// Where the fast path or the `csv` reader stands: the byte offset and the line the `csv`
    /// reader counts there. A record read from there may start with the previous record's
    /// terminator and blank lines, which the reader skips (and counts in the line number of a
    /// bad record).
    fn position(&self) -> RecordPosition {
        let at = match &self.lines {
            Some(lines) if self.fast => lines.position(),
            _ => self.reader.position(),
        };
        RecordPosition {
            offset: at.byte(),
            line: at.line(),
        }
    }

    /// Seeks the fast path, or the `csv` reader if there is none, keeping the header (read at
    /// open) and the row decoder made from it.
    fn seek(&mut self, position: RecordPosition) -> Result<(), Error> {
        let mut at = Position::new();
        at.set_byte(position.offset).set_line(position.line);
        let Some(lines) = &mut self.lines else {
            return self.seek_csv(at);
        };
        self.reader
            .get_mut()
            .file
            .seek(SeekFrom::Start(position.offset))
            .map_err(|e| Error::io(format!("cannot seek in {}", self.path.display()), e))?;
        lines.restart(at, true);
        self.fast = true;
        Ok(())
    }
}

/// Where the framing of a CSV stream is within a record: what a byte means depends on it.
/// These are the states of the `csv` crate's parser (quote `"`, doubled to escape it,
/// delimiter `,`) that matter for finding a record's end.
#[derive(Clone, Copy)]
enum Framing {
    /// At the start of a field, where a quote opens a quoted field.
    FieldStart,
    /// Inside an unquoted field, where a quote is data.
    Unquoted,
    /// Inside a quoted field, where a newline is data.
    Quoted,
    /// Just after a quote inside a quoted field: another quote is an escaped quote; anything
    /// else follows the closing quote.
    QuoteInQuoted,
}

impl Framing {
    /// The state after `byte`, or `None` if `byte` ends the record (a `\n` outside quotes).
    fn after(self, byte: u8) -> Option<Framing> {
        Some(match (self, byte) {
            (Framing::Quoted, b'"') => Framing::QuoteInQuoted,
            (Framing::Quoted, _) => Framing::Quoted,
            (Framing::FieldStart, b'"') | (Framing::QuoteInQuoted, b'"') => Framing::Quoted,
            (_, b',') => Framing::FieldStart,
            (_, b'\n') => return None,
            (_, _) => Framing::Unquoted,
        })
    }
}

/// Whether the CSV record `record` (without its terminator) leaves a quoted field open: the
/// record ran to the end of the input looking for the closing quote. The `csv` crate takes
/// such a record as if the quote were closed there; Tideflow reports it as a bad record.
pub(crate) fn ends_in_open_quote(record: &[u8]) -> bool {
    if !record.contains(&b'"') {
        return false;
    }
    let mut state = Framing::FieldStart;
    for &byte in record {
        // A record ends at its first `\n` outside quotes: what follows is not part of it.
        match state.after(byte) {
            Some(next) => state = next,
            None => return false,
        }
    }
    matches!(state, Framing::Quoted)
}

/// The reason given for a record whose quote is not closed before the end of the input.
pub(crate) const OPEN_QUOTE: &str = "a quoted field is not closed before the end of the input";

/// Reads the next CSV record of `reader` into `record`, without its `\n`, keeping at most
/// `max + 1` bytes of it. A quoted field may span lines, so a record ends at the first `\n`
/// outside quotes (or at the end of the input). Returns the record's whole length (without
/// the `\n`) and the number of lines it spans, or `None` at the end.
pub(crate) fn read_csv_record_capped(
    reader: &mut impl BufRead,
    record: &mut Vec<u8>,
    max: usize,
) -> io::Result<Option<(usize, u64)>> {
    record.clear();
    let mut length = 0;
    let mut lines = 1;
    let mut any = false;
    let mut state = Framing::FieldStart;
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
        let mut end = None;
        for (at, &byte) in available.iter().enumerate() {
            match state.after(byte) {
                Some(next) => {
                    lines += u64::from(byte == b'\n');
                    state = next;
                }
                None => {
                    end = Some(at);
                    break;
                }
            }
        }
        let content = end.unwrap_or(available.len());
        let room = (max + 1).saturating_sub(record.len());
        record.extend_from_slice(&available[..content.min(room)]);
        length += content;
        reader.consume(end.map_or(content, |at| at + 1));
        if end.is_some() {
            break;
        }
    }
    Ok(any.then_some((length, lines)))
}

/// Splits records framed by [`read_csv_record_capped`] into fields, as the `csv` crate does
/// for files, with one reader reused for every record.
pub(crate) struct CsvRecordParser {
    /// Reads the record lent to it. Only `\n` ends a record (a `\r` before it is cut off
    /// first), and any number of fields is accepted: the caller checks the count.
    reader: csv::Reader<Cursor<Vec<u8>>>,
}

impl CsvRecordParser {
    pub(crate) fn new() -> Self {
        let reader = ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .terminator(Terminator::Any(b'\n'))
            .from_reader(Cursor::new(Vec::new()));
        CsvRecordParser { reader }
    }

    /// Splits `record` (one record, without its line terminator) into the fields of `row`.
    /// Returns `false`, leaving `row` empty, for a blank record. `record` is lent to the
    /// reader and given back unchanged.
    pub(crate) fn parse(
        &mut self,
        record: &mut Vec<u8>,
        row: &mut ByteRecord,
    ) -> Result<bool, String> {
        std::mem::swap(self.reader.get_mut().get_mut(), record);
        // Rewinding resets the parser, which stopped at the end of the previous record.
        let parsed = self
            .reader
            .seek_raw(SeekFrom::Start(0), Position::new())
            .and_then(|()| self.reader.read_byte_record(row));
        std::mem::swap(self.reader.get_mut().get_mut(), record);
        parsed.map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Frames `input` with a reader buffer of `capacity` bytes and a cap of `max`.
    fn frame(input: &[u8], capacity: usize, max: usize) -> Vec<(usize, u64, String)> {
        let mut reader = io::BufReader::with_capacity(capacity, input);
        let mut record = Vec::new();
        let mut records = Vec::new();
        while let Some((length, lines)) =
            read_csv_record_capped(&mut reader, &mut record, max).unwrap()
        {
            records.push((length, lines, String::from_utf8(record.clone()).unwrap()));
        }
        records
    }

    #[test]
    fn records_end_at_a_newline_outside_quotes() {
        let input = b"ts,k\r\n1,\"a\nb\"\n\n2,\"say \"\"hi\"\"\nthere\",x\"y\n3,a\"b\n4,\"\"\n5";
        let expected = [
            (1, "ts,k\r"),
            (2, "1,\"a\nb\""),
            (1, ""),
            (2, "2,\"say \"\"hi\"\"\nthere\",x\"y"),
            (1, "3,a\"b"),
            (1, "4,\"\""),
            (1, "5"),
        ];
        let expected: Vec<(usize, u64, String)> = expected
            .iter()
            .map(|(lines, s)| (s.len(), *lines, s.to_string()))
            .collect();
        for capacity in [1, 3, 64] {
            assert_eq!(
                frame(input, capacity, 100),
                expected,
                "buffer of {capacity} bytes"
            );
        }
    }

    #[test]
    fn records_are_cut_past_the_cap_but_measured_whole() {
        let records = frame(b"abcdefgh\n\"ab\ncdefg\"\nxy\n", 2, 3);
        let expected = [(8, 1, "abcd"), (10, 2, "\"ab\n"), (2, 1, "xy")];
        let expected: Vec<(usize, u64, String)> = expected
            .iter()
            .map(|(n, lines, s)| (*n, *lines, s.to_string()))
            .collect();
        assert_eq!(records, expected);
        // An unterminated quote runs to the end of the input, held within the cap.
        assert_eq!(frame(b"\"a\nb\nc", 4, 2), vec![(6, 3, "\"a\n".to_string())]);
    }

    #[test]
    fn an_open_quote_is_found_only_at_the_end_of_a_record() {
        for (record, open) in [
            (&b"1,\"a"[..], true),
            (b"1,\"a\nb", true),
            (b"1,\"a\"\"", true),
            (b"1,\"a\"", false),
            (b"1,\"a\"\"b\"", false),
            (b"1,a\"b", false),
            (b"1,\"\"", false),
            (b"", false),
        ] {
            assert_eq!(
                ends_in_open_quote(record),
                open,
                "{}",
                String::from_utf8_lossy(record)
            );
        }
    }

    #[test]
    fn parser_splits_each_record_as_the_file_reader_does() {
        let mut parser = CsvRecordParser::new();
        let mut row = ByteRecord::new();
        for (text, fields) in [
            (&b"ts,k"[..], vec![&b"ts"[..], b"k"]),
            (b"1,\"a\nb\"", vec![b"1", b"a\nb"]),
            (
                b"2,\"say \"\"hi\"\"\",x\"y",
                vec![b"2", b"say \"hi\"", b"x\"y"],
            ),
            (b" 3 ,,", vec![b" 3 ", b"", b""]),
            (b"\xff,x", vec![b"\xff", b"x"]),
        ] {
            let mut record = text.to_vec();
            assert_eq!(parser.parse(&mut record, &mut row), Ok(true));
            assert_eq!(record, text, "the record is given back");
            assert_eq!(row.iter().collect::<Vec<_>>(), fields);
            let mut file = ReaderBuilder::new()
                .has_headers(false)
                .from_reader(&record[..]);
            let mut expected = ByteRecord::new();
            assert!(file.read_byte_record(&mut expected).unwrap());
            assert_eq!(row, expected, "as the file reader splits it");
        }
        let mut blank = Vec::new();
        assert_eq!(parser.parse(&mut blank, &mut row), Ok(false));
        assert!(row.is_empty());
    }
}
