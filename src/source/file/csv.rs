//! CSV with a header row.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use csv::{ByteRecord, ReaderBuilder};
use serde::de::DeserializeOwned;

use super::{FileFormat, RecordReader};
use crate::error::Error;

type RecordDecoder<T> = dyn Fn(&ByteRecord, &ByteRecord) -> Result<T, String> + Send + Sync;

/// The CSV format: a header row, then one record per row. Each row is decoded with serde (by
/// column name) or with a function given the header and the row.
pub struct Csv<T> {
    decode: Arc<RecordDecoder<T>>,
}

impl<T> Clone for Csv<T> {
    fn clone(&self) -> Self {
        Csv { decode: Arc::clone(&self.decode) }
    }
}

impl<T: DeserializeOwned> Csv<T> {
    /// Decodes each row into `T` with serde, matching columns to fields by header name.
    pub fn serde() -> Self {
        Self::with_decoder(|header, row| row.deserialize(Some(header)).map_err(|e| e.to_string()))
    }
}

impl<T> Csv<T> {
    /// Decodes each row with `decode(header, row)`; an `Err` is reported with the file and line.
    pub fn with_decoder(decode: impl Fn(&ByteRecord, &ByteRecord) -> Result<T, String> + Send + Sync + 'static) -> Self {
        Csv { decode: Arc::new(decode) }
    }
}

impl<T: 'static> FileFormat for Csv<T> {
    type Item = T;
    type Reader = CsvReader<T>;

    fn open(&self, path: &Path, file: File) -> Result<Self::Reader, Error> {
        let mut reader = ReaderBuilder::new().has_headers(true).from_reader(file);
        let header = reader
            .byte_headers()
            .map_err(|e| Error::Input { path: path.to_path_buf(), line: 1, reason: format!("cannot read the CSV header: {e}") })?
            .clone();
        Ok(CsvReader { path: path.to_path_buf(), reader, header, row: ByteRecord::new(), decode: Arc::clone(&self.decode) })
    }
}

/// Reads one CSV file.
pub struct CsvReader<T> {
    path: PathBuf,
    reader: csv::Reader<File>,
    header: ByteRecord,
    row: ByteRecord,
    decode: Arc<RecordDecoder<T>>,
}

impl<T: 'static> RecordReader for CsvReader<T> {
    type Item = T;

    fn next_record(&mut self) -> Result<Option<T>, Error> {
        let more = self.reader.read_byte_record(&mut self.row).map_err(|e| {
            let line = e.position().map_or(0, |p| p.line());
            if e.is_io_error() {
                Error::io(format!("cannot read {}", self.path.display()), std::io::Error::other(e))
            } else {
                Error::Input { path: self.path.clone(), line, reason: e.to_string() }
            }
        })?;
        if !more {
            return Ok(None);
        }
        let line = self.row.position().map_or(0, |p| p.line());
        (self.decode)(&self.header, &self.row).map(Some).map_err(|reason| Error::Input { path: self.path.clone(), line, reason })
    }
}
