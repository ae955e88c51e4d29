//! CSV with a header row.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use csv::{ByteRecord, ReaderBuilder};
use serde::de::DeserializeOwned;

use super::{FileFormat, RecordReader};
use crate::error::Error;

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

    fn open(&self, path: &Path, file: File) -> Result<Self::Reader, Error> {
        let mut reader = ReaderBuilder::new().has_headers(true).from_reader(file);
        let bad_header = |reason: String| Error::Input {
            path: path.to_path_buf(),
            line: 1,
            reason,
        };
        let header = reader
            .byte_headers()
            .map_err(|e| bad_header(format!("cannot read the CSV header: {e}")))?;
        let decode = (self.prepare)(header).map_err(bad_header)?;
        Ok(CsvReader {
            path: path.to_path_buf(),
            reader,
            row: ByteRecord::new(),
            decode,
        })
    }
}

/// Reads one CSV file.
pub struct CsvReader<T> {
    path: PathBuf,
    reader: csv::Reader<File>,
    row: ByteRecord,
    decode: RowDecoder<T>,
}

impl<T: 'static> RecordReader for CsvReader<T> {
    type Item = T;

    fn next_record(&mut self) -> Result<Option<T>, Error> {
        let more = self.reader.read_byte_record(&mut self.row).map_err(|e| {
            let line = e.position().map_or(0, |p| p.line());
            if e.is_io_error() {
                Error::io(
                    format!("cannot read {}", self.path.display()),
                    std::io::Error::other(e),
                )
            } else {
                Error::Input {
                    path: self.path.clone(),
                    line,
                    reason: e.to_string(),
                }
            }
        })?;
        if !more {
            return Ok(None);
        }
        let line = self.row.position().map_or(0, |p| p.line());
        (self.decode)(&self.row)
            .map(Some)
            .map_err(|reason| Error::Input {
                path: self.path.clone(),
                line,
                reason,
            })
    }
}
