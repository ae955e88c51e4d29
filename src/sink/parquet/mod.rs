//! A sink that writes records as Parquet files into a directory with a commit log (`log.rs`),
//! and its committer for exactly-once output (`commit.rs`). The records become Arrow columns
//! through an [`ArrowEncoder`], which gives the files their typed schema.
//!
//! - In a job with snapshots: **exactly-once**. Each epoch's rows go to one file under
//!   `_tideflow_staging/`, closed and synced by the pre-commit, and renamed into the directory
//!   and listed in the commit log when the snapshot is complete.
//! - Without snapshots: the rows go to a staged file that is renamed into the directory and
//!   logged every [`ParquetSink::roll_interval`] and when the input ends; a crash loses the
//!   file being written (at-most-once for its rows).
//!
//! A job that starts anew (without snapshots, or with a checkpoint directory that did not
//! write the log) replaces the directory's earlier output: the files its log lists and the
//! log are removed first, as the file sink truncates its file.

pub(crate) mod commit;
mod log;
mod writer;

use std::path::PathBuf;
use std::time::{Duration, Instant};

pub use arrow_array;
use arrow_array::RecordBatch;
pub use arrow_schema;
use arrow_schema::SchemaRef;
use tideflow_operators::Event;

use super::{Committer, Parallelism, Recovered, Sink, SinkContext};
use crate::error::Error;
use log::OutputDir;
pub(crate) use log::{clear_staging, rename_staged, sync_dir};
pub use log::{committed_files, read_log, LogEntry, LoggedFile, LOG_DIR};
pub(crate) use writer::ParquetWriter;

/// Turns records into Arrow columns for the [`ParquetSink`]: the schema is fixed when the
/// encoder is made, rows are appended one at a time and taken as a batch.
///
/// Contract: every batch [`finish`](ArrowEncoder::finish) returns has [`schema`]
/// (ArrowEncoder::schema) and holds the rows appended since the previous call. An `Err` from
/// `append` (a value that the schema's column cannot hold) stops the job; it names the column.
pub trait ArrowEncoder<D>: 'static {
    /// The schema of every file.
    fn schema(&self) -> SchemaRef;

    /// Appends one record.
    fn append(&mut self, record: &D) -> Result<(), Error>;

    /// The rows appended since the last call, as one batch.
    fn finish(&mut self) -> Result<RecordBatch, Error>;
}

/// How the column chunks of a Parquet file are compressed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ParquetCompression {
    /// Not compressed.
    None,
    /// Snappy (Spark's default): fast, moderate ratio.
    #[default]
    Snappy,
    /// Zstandard at the given level (1 to 22; 3 is zstd's default): smaller files, slower.
    Zstd(i32),
}

/// Writes records as Parquet files into a directory, from worker 0 (records of all workers are
/// gathered there, so the directory has one writer). See the [module](self) for how files are
/// committed, and `log.rs`'s layout of the directory.
///
/// # Examples
/// ```
/// use std::sync::Arc;
/// use tideflow::sink::parquet::arrow_array::builder::{Int64Builder, StringBuilder};
/// use tideflow::sink::parquet::arrow_array::{ArrayRef, RecordBatch};
/// use tideflow::sink::parquet::arrow_schema::{DataType, Field, Schema, SchemaRef};
/// use tideflow::sink::parquet::{ArrowEncoder, ParquetCompression, ParquetSink};
/// use tideflow::Error;
///
/// /// `(user, clicks)` rows as the columns `user` (string) and `clicks` (int64).
/// struct Clicks {
///     schema: SchemaRef,
///     users: StringBuilder,
///     clicks: Int64Builder,
/// }
///
/// impl ArrowEncoder<(String, i64)> for Clicks {
///     fn schema(&self) -> SchemaRef {
///         self.schema.clone()
///     }
///     fn append(&mut self, row: &(String, i64)) -> Result<(), Error> {
///         self.users.append_value(&row.0);
///         self.clicks.append_value(row.1);
///         Ok(())
///     }
///     fn finish(&mut self) -> Result<RecordBatch, Error> {
///         let columns: Vec<ArrayRef> =
///             vec![Arc::new(self.users.finish()), Arc::new(self.clicks.finish())];
///         RecordBatch::try_new(self.schema.clone(), columns)
///             .map_err(|e| Error::Internal(e.to_string()))
///     }
/// }
///
/// let schema = Arc::new(Schema::new(vec![
///     Field::new("user", DataType::Utf8, false),
///     Field::new("clicks", DataType::Int64, false),
/// ]));
/// let encoder = Clicks { schema, users: StringBuilder::new(), clicks: Int64Builder::new() };
/// let sink = ParquetSink::new("clicks/", encoder)
///     .compression(ParquetCompression::Zstd(3))
///     .row_group_rows(100_000);
/// # let _ = sink;
/// ```
pub struct ParquetSink<D, E> {
    files: ParquetWriter<D, E>,
    roll_interval: Duration,
    /// Exactly-once output: staging since `begin_staging`.
    staging: bool,
    /// Without snapshots: the directory, once started, and when the file was last published.
    output: Option<(OutputDir, Instant)>,
}

impl<D: 'static, E: ArrowEncoder<D>> ParquetSink<D, E> {
    /// Writes records encoded by `encoder` into the directory `dir` (created if missing).
    pub fn new(dir: impl Into<PathBuf>, encoder: E) -> Self {
        ParquetSink {
            files: ParquetWriter::new(dir.into(), encoder),
            roll_interval: Duration::from_secs(10),
            staging: false,
            output: None,
        }
    }

    /// Compresses the files' column chunks with `compression`. By default, snappy.
    pub fn compression(mut self, compression: ParquetCompression) -> Self {
        self.files.set_compression(compression);
        self
    }

    /// Starts a new row group every `rows` rows (at least 1). By default, 1,048,576 rows (the
    /// parquet crate's default).
    pub fn row_group_rows(mut self, rows: usize) -> Self {
        self.files.set_row_group_rows(rows);
        self
    }

    /// Without snapshots, how often the file being written is closed and committed (and at
    /// the input's end). With snapshots, files are committed with each snapshot instead. By
    /// default, 10 s.
    pub fn roll_interval(mut self, interval: Duration) -> Self {
        self.roll_interval = interval;
        self
    }

    /// Without snapshots: closes the open file and commits the closed ones.
    fn publish(&mut self, now: Instant) -> Result<(), Error> {
        self.files.close_file()?;
        let Some((out, published)) = self.output.as_mut() else {
            return Ok(());
        };
        *published = now;
        let files = self.files.take_closed()?;
        if files.is_empty() {
            return Ok(());
        }
        let entry = LogEntry {
            epoch: None,
            files,
            job: None,
            execution: 1,
        };
        out.publish(entry, || {})
    }
}

impl<D: 'static, E: ArrowEncoder<D>> Sink<D> for ParquetSink<D, E> {
    /// Without snapshots: replaces the directory's earlier output.
    fn on_start(&mut self, _context: &SinkContext) -> Result<(), Error> {
        if self.staging {
            return Ok(());
        }
        let mut out = OutputDir::open(self.files.dir())?;
        out.clear()?;
        out.remove_uncommitted()?;
        self.output = Some((out, Instant::now()));
        Ok(())
    }

    fn write(&mut self, batch: &mut Vec<Event<D>>) -> Result<(), Error> {
        for event in batch.drain(..) {
            self.files.append(&event.data)?;
        }
        Ok(())
    }

    fn on_tick(&mut self, now: Instant) -> Result<Option<Duration>, Error> {
        let Some((_, published)) = &self.output else {
            return Ok(None);
        };
        let due = *published + self.roll_interval;
        if now < due {
            return Ok(Some(due - now));
        }
        self.publish(now)?;
        Ok(Some(self.roll_interval))
    }

    fn on_close(&mut self) -> Result<(), Error> {
        if self.staging {
            return Ok(());
        }
        self.publish(Instant::now())
    }

    fn parallelism(&self) -> Parallelism {
        Parallelism::Single
    }

    fn committer(&mut self) -> Option<Box<dyn Committer>> {
        Some(Box::new(commit::ParquetCommitter::new(
            self.files.dir().to_path_buf(),
        )))
    }

    fn begin_staging(&mut self, _recovered: &Recovered) {
        self.staging = true;
    }

    /// Closes and syncs the epoch's file: the part lists it, for the commit to rename.
    fn pre_commit(&mut self, _epoch: u64) -> Result<Vec<u8>, Error> {
        self.files.close_file()?;
        commit::Staged {
            files: self.files.take_closed()?,
        }
        .encode()
    }
}
