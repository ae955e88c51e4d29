//! CSV with a header row.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use csv::{ByteRecord, ReaderBuilder};
use serde::de::DeserializeOwned;

use super::{FileFormat, RecordReader};
use crate::error::Error;
use crate::source::{BadRecord, ReadError};

/// Decodes the rows of one file.
pub type RowDecoder<T> = Box<dyn FnMut(&ByteRecord) -> Result<T, String>>;
type Prepare<T> = dyn Fn(&ByteRecord) -> Result<RowDecoder<T>, String> + Send + Sync;

/// The CSV format: a header row, then one record per row. Each row is decoded with serde (by
/// column name) or with a decoder prepared from each file's header.
pub struct Csv<T> {
    prepare: Arc<Prepare<T>>,
}

impl<T> Clone for Csv<T> {
    fn clone(&self) -> Self {
        Csv {
            prepare: Arc::clone(&self.prepare),
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
    /// Decodes rows with the decoder `prepare` makes from each file's header. An `Err` from
    /// `prepare` (a missing column, say) is reported with the file; an `Err` from the decoder
    /// with the file and line.
    pub fn with_decoder(
        prepare: impl Fn(&ByteRecord) -> Result<RowDecoder<T>, String> + Send + Sync + 'static,
    ) -> Self {
        Csv {
            prepare: Arc::new(prepare),
        }
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
            .from_reader(file);
        let bad_header = |reason: String| Error::Input {
            path: path.to_path_buf(),
            line: 1,
            reason,
        };
        let header = reader
            .byte_headers()
            .map_err(|e| bad_header(format!("cannot read the CSV header: {e}")))?;
        let fields = header.len();
        let decode = (self.prepare)(header).map_err(bad_header)?;
        Ok(CsvReader {
            path: path.to_path_buf(),
            reader,
            row: ByteRecord::new(),
            fields,
            max_record_bytes,
            decode,
        })
    }
}

/// Reads one CSV file.
pub struct CsvReader<T> {
    path: PathBuf,
    reader: csv::Reader<File>,
    row: ByteRecord,
    /// The number of fields in the header, which every row must have.
    fields: usize,
    max_record_bytes: usize,
    decode: RowDecoder<T>,
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
                raw.truncate(self.max_record_bytes);
                ReadError::Bad(BadRecord { line, reason, raw })
            }
            Err(error) => ReadError::Fatal(error),
        }
    }
}

impl<T: 'static> RecordReader for CsvReader<T> {
    type Item = T;

    fn next_record(&mut self) -> Result<Option<T>, ReadError> {
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
                }));
            }
        }
        if self.row.len() != self.fields {
            let reason = format!(
                "found record with {} fields, but the header has {} fields",
                self.row.len(),
                self.fields
            );
            return Err(self.bad(start.byte(), end, start.line(), reason));
        }
        match (self.decode)(&self.row) {
            Ok(record) => Ok(Some(record)),
            Err(reason) => Err(self.bad(start.byte(), end, start.line(), reason)),
        }
    }
}
