//! The file source: one file or a directory of files, each file one partition.
//!
//! Files are listed once at start (sorted by name; hidden files and subdirectories are skipped)
//! and shared out among workers: file `p` of the list is read by worker `p % workers`. A
//! worker reads its files side by side, a slice of each in turn, so each file's watermark
//! advances with its own records. The record format is a [`FileFormat`]: [`JsonLines`] or
//! [`Csv`], each decoding with serde by default or with a function of yours. A record that
//! cannot be decoded, or is longer than [`FileSource::max_record_bytes`], is handled by the
//! source's [`OnError`] policy.

mod csv;
mod jsonl;

use std::fs::File;
use std::path::{Path, PathBuf};

pub use self::csv::{Csv, RowDecoder};
pub use self::jsonl::JsonLines;

use super::bad_input::{BadInputHandler, Handled, DEFAULT_MAX_RECORD_BYTES};
use super::{OnError, ReadError, Source, SourceBatch, SourceContext, SourceStatus};
use crate::error::Error;

/// Records read per partition per call.
const BATCH: usize = 1024;

/// How records are laid out in a file.
pub trait FileFormat: 'static {
    /// The records decoded.
    type Item: 'static;
    /// Reads one open file.
    type Reader: RecordReader<Item = Self::Item>;
    /// Starts reading `file`, found at `path`, whose records are at most `max_record_bytes`
    /// long (a longer one is a [`ReadError::Bad`] record, and the reader must not buffer much
    /// past the limit to find that out).
    fn open(&self, path: &Path, file: File, max_record_bytes: usize)
        -> Result<Self::Reader, Error>;
}

/// Reads the records of one file in order.
pub trait RecordReader: 'static {
    /// The records decoded.
    type Item;
    /// The next record, or `None` at the end of the file. A record that cannot be decoded is a
    /// [`ReadError::Bad`] with its line, reason and raw text, after which reading goes on with
    /// the next record; an I/O failure is a [`ReadError::Fatal`] naming the file.
    fn next_record(&mut self) -> Result<Option<Self::Item>, ReadError>;
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
    on_error: OnError,
    max_record_bytes: usize,
    handler: Option<BadInputHandler>,
    /// This worker's files, each with its reader until the file is exhausted.
    readers: Vec<(PathBuf, Option<F::Reader>)>,
    next: usize,
}

impl<F: FileFormat> FileSource<F> {
    /// Reads `path` (a file, or every visible file in a directory) in `format`.
    pub fn new(path: impl Into<PathBuf>, format: F) -> Self {
        FileSource {
            path: path.into(),
            format,
            on_error: OnError::Fail,
            max_record_bytes: DEFAULT_MAX_RECORD_BYTES,
            handler: None,
            readers: Vec::new(),
            next: 0,
        }
    }

    /// Sets what to do with a record that cannot be decoded. By default, [`OnError::Fail`]:
    /// the first bad record stops the job.
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    /// use tideflow::{sink::MemorySink, source::{FileSource, JsonLines, OnError}, Config};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let input = dir.path().join("in.jsonl");
    /// std::fs::write(&input, "1\n\"two\"\n3\n").unwrap();
    /// let sink = MemorySink::new();
    /// let output = sink.clone();
    /// let report = tideflow::execute(Config::default(), move |flow| {
    ///     flow.source(FileSource::new(&input, JsonLines::<u64>::serde()).on_error(OnError::Skip))
    ///         .with_event_time(|t| *t)
    ///         .with_watermark(Duration::ZERO)
    ///         .sink(output.clone());
    ///     Ok(())
    /// })?;
    /// let mut seen = sink.take();
    /// seen.sort();
    /// assert_eq!(seen, vec![1, 3]);
    /// assert_eq!((report.records_in, report.records_skipped), (2, 1));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn on_error(mut self, policy: OnError) -> Self {
        self.on_error = policy;
        self
    }

    /// Sets the longest record accepted, in bytes (a JSON line without its line terminator,
    /// or a CSV record). A longer record is a bad record ("record is longer than N bytes"),
    /// handled by the [`OnError`] policy. By default, 1 MiB
    /// ([`DEFAULT_MAX_RECORD_BYTES`](super::DEFAULT_MAX_RECORD_BYTES)).
    ///
    /// JSON lines stop being buffered at the limit. A CSV record is checked once the `csv`
    /// crate has read it whole, so one over-long CSV record is held in memory.
    pub fn max_record_bytes(mut self, max: usize) -> Self {
        self.max_record_bytes = max;
        self
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
        self.handler = Some(BadInputHandler::new(&self.on_error)?);
        for index in context.local_partitions(files.len()) {
            let path = &files[index];
            let file = File::open(path)
                .map_err(|e| Error::io(format!("cannot open {}", path.display()), e))?;
            let reader = self.format.open(path, file, self.max_record_bytes)?;
            self.readers.push((path.clone(), Some(reader)));
        }
        Ok(())
    }

    fn partitions(&self) -> usize {
        self.readers.len()
    }

    fn read(&mut self, batch: &mut SourceBatch<F::Item>) -> Result<SourceStatus, Error> {
        let Some(handler) = self.handler.as_ref() else {
            return Err(Error::Internal("FileSource::read before on_start".into()));
        };
        let open = self.readers.iter().filter(|(_, r)| r.is_some()).count();
        if open == 0 {
            handler.flush()?;
            return Ok(SourceStatus::Done);
        }
        let per_file = (BATCH / open).max(1);
        for _ in 0..self.readers.len() {
            let partition = self.next;
            self.next = (self.next + 1) % self.readers.len();
            for _ in 0..per_file {
                let (path, Some(reader)) = &mut self.readers[partition] else {
                    break;
                };
                match reader.next_record() {
                    Ok(Some(record)) => batch.push(partition, record),
                    Ok(None) => {
                        self.readers[partition].1 = None;
                        batch.finish_partition(partition);
                    }
                    Err(ReadError::Fatal(error)) => return Err(error),
                    Err(ReadError::Bad(record)) => match handler.handle(path, record)? {
                        Handled::Skipped => batch.count_skipped(1),
                        Handled::DeadLettered => batch.count_dead_lettered(1),
                    },
                }
            }
        }
        Ok(SourceStatus::Ready)
    }
}
