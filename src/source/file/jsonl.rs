//! JSON lines: one JSON value per line; blank lines are skipped.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::de::DeserializeOwned;

use super::{FileFormat, RecordReader};
use crate::error::Error;

type LineDecoder<T> = dyn Fn(&str) -> Result<T, String> + Send + Sync;

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

    fn open(&self, path: &Path, file: File) -> Result<Self::Reader, Error> {
        Ok(JsonLinesReader {
            path: path.to_path_buf(),
            reader: BufReader::with_capacity(64 * 1024, file),
            line: Vec::new(),
            line_number: 0,
            decode: Arc::clone(&self.decode),
        })
    }
}

/// Reads one JSON lines file.
pub struct JsonLinesReader<T> {
    path: PathBuf,
    reader: BufReader<File>,
    line: Vec<u8>,
    line_number: u64,
    decode: Arc<LineDecoder<T>>,
}

impl<T: 'static> RecordReader for JsonLinesReader<T> {
    type Item = T;

    fn next_record(&mut self) -> Result<Option<T>, Error> {
        loop {
            self.line.clear();
            let read = self
                .reader
                .read_until(b'\n', &mut self.line)
                .map_err(|e| Error::io(format!("cannot read {}", self.path.display()), e))?;
            if read == 0 {
                return Ok(None);
            }
            self.line_number += 1;
            let bad = |reason: String| Error::Input {
                path: self.path.clone(),
                line: self.line_number,
                reason,
            };
            let text =
                std::str::from_utf8(&self.line).map_err(|e| bad(format!("invalid UTF-8: {e}")))?;
            let text = text.trim();
            if text.is_empty() {
                continue;
            }
            return (self.decode)(text).map(Some).map_err(bad);
        }
    }
}
