//! The file source: one file or a directory of files, each file one partition.
//!
//! Files are listed once at start (sorted by name; hidden files and subdirectories are skipped)
//! and shared out among workers: file `p` of the list is read by worker `p % workers`. A
//! worker reads its files side by side, a slice of each in turn, so each file's watermark
//! advances with its own records. The record format is a [`FileFormat`]: [`JsonLines`] or
//! [`Csv`], each decoding with serde by default or with a function of yours.

mod csv;
mod jsonl;

use std::fs::File;
use std::path::{Path, PathBuf};

pub use self::csv::{Csv, RowDecoder};
pub use self::jsonl::JsonLines;

use super::{Source, SourceBatch, SourceContext, SourceStatus};
use crate::error::Error;

/// Records read per partition per call.
const BATCH: usize = 1024;

/// How records are laid out in a file.
pub trait FileFormat: 'static {
    /// The records decoded.
    type Item: 'static;
    /// Reads one open file.
    type Reader: RecordReader<Item = Self::Item>;
    /// Starts reading `file`, found at `path`.
    fn open(&self, path: &Path, file: File) -> Result<Self::Reader, Error>;
}

/// Reads the records of one file in order.
pub trait RecordReader: 'static {
    /// The records decoded.
    type Item;
    /// The next record, or `None` at the end of the file. A record that cannot be decoded is an
    /// [`Error::Input`] naming the file and line.
    fn next_record(&mut self) -> Result<Option<Self::Item>, Error>;
}

/// Reads JSON lines or CSV from a file or a directory of files.
///
/// # Examples
/// ```no_run
/// use std::time::Duration;
/// use tideflow::{sink::ConsoleSink, source::{FileSource, JsonLines}, Config};
///
/// #[derive(serde::Deserialize, serde::Serialize, Clone)]
/// struct Click { user: String, ts: u64 }
///
/// tideflow::execute(Config::default(), |flow| {
///     flow.source(FileSource::new("clicks/", JsonLines::<Click>::serde()))
///         .with_event_time(|c| c.ts)
///         .with_watermark(Duration::from_secs(5))
///         .sink(ConsoleSink::json());
///     Ok(())
/// })?;
/// # Ok::<(), tideflow::Error>(())
/// ```
pub struct FileSource<F: FileFormat> {
    path: PathBuf,
    format: F,
    readers: Vec<Option<F::Reader>>,
    next: usize,
}

impl<F: FileFormat> FileSource<F> {
    /// Reads `path` (a file, or every visible file in a directory) in `format`.
    pub fn new(path: impl Into<PathBuf>, format: F) -> Self {
        FileSource {
            path: path.into(),
            format,
            readers: Vec::new(),
            next: 0,
        }
    }
}

/// The files a path names: itself, or the visible regular files of a directory, sorted.
pub(crate) fn list_files(path: &Path) -> Result<Vec<PathBuf>, Error> {
    let metadata = std::fs::metadata(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => {
            Error::Config(format!("input {} does not exist", path.display()))
        }
        _ => Error::io(format!("cannot read input {}", path.display()), e),
    })?;
    if !metadata.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let entries = std::fs::read_dir(path)
        .map_err(|e| Error::io(format!("cannot list directory {}", path.display()), e))?;
    let mut files = Vec::new();
    for entry in entries {
        let entry =
            entry.map_err(|e| Error::io(format!("cannot list directory {}", path.display()), e))?;
        let hidden = entry.file_name().to_string_lossy().starts_with('.');
        let is_file = entry.file_type().map(|t| t.is_file()).unwrap_or(false);
        if is_file && !hidden {
            files.push(entry.path());
        }
    }
    files.sort();
    Ok(files)
}

impl<F: FileFormat> Source for FileSource<F> {
    type Item = F::Item;

    fn on_start(&mut self, context: &SourceContext) -> Result<(), Error> {
        let files = list_files(&self.path)?;
        for index in context.local_partitions(files.len()) {
            let path = &files[index];
            let file = File::open(path)
                .map_err(|e| Error::io(format!("cannot open {}", path.display()), e))?;
            self.readers.push(Some(self.format.open(path, file)?));
        }
        Ok(())
    }

    fn partitions(&self) -> usize {
        self.readers.len()
    }

    fn read(&mut self, batch: &mut SourceBatch<F::Item>) -> Result<SourceStatus, Error> {
        let open = self.readers.iter().filter(|r| r.is_some()).count();
        if open == 0 {
            return Ok(SourceStatus::Done);
        }
        let per_file = (BATCH / open).max(1);
        for _ in 0..self.readers.len() {
            let partition = self.next;
            self.next = (self.next + 1) % self.readers.len();
            let Some(reader) = self.readers[partition].as_mut() else {
                continue;
            };
            for _ in 0..per_file {
                match reader.next_record()? {
                    Some(record) => batch.push(partition, record),
                    None => {
                        self.readers[partition] = None;
                        batch.finish_partition(partition);
                        break;
                    }
                }
            }
        }
        Ok(SourceStatus::Ready)
    }
}
