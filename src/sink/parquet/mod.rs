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

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub use arrow_array;
use arrow_array::RecordBatch;
pub use arrow_schema;
use arrow_schema::SchemaRef;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use tideflow_operators::Event;

use super::{Committer, Parallelism, Recovered, Sink, SinkContext};
use crate::error::Error;
pub use log::{committed_files, read_log, LogEntry, LoggedFile, LOG_DIR};
use log::{sync_dir, OutputDir};

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

/// The rows appended to the encoder are written to the file in batches of this many.
const BATCH_ROWS: usize = 8192;

/// A staged file being written.
struct OpenFile {
    name: String,
    writer: ArrowWriter<File>,
    rows: u64,
}

/// Writes records as Parquet files into a directory, from worker 0 (records of all workers are
/// gathered there, so the directory has one writer). See the [module](self) for how files are
/// committed, and `log.rs`'s layout of the directory.
///
/// # Examples
/// ```
/// /// use tideflow::sink::parquet::arrow_array::builder::{Int64Builder, StringBuilder};
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
    dir: PathBuf,
    encoder: E,
    properties: WriterProperties,
    compression: ParquetCompression,
    row_group_rows: usize,
    roll_interval: Duration,
    /// Rows appended to the encoder and not yet written to the file.
    buffered: usize,
    /// The file being written.
    open: Option<OpenFile>,
    /// Files closed since the last pre-commit (exactly-once) or publication.
    closed: Vec<LoggedFile>,
    /// Exactly-once output: staging since `begin_staging`.
    staging: bool,
    /// Without snapshots: the directory, once started, and when the file was last published.
    output: Option<(OutputDir, Instant)>,
    /// The number of the next file of this run.
    next_file: u64,
    /// Tells this run's file names from other runs' (`part-NNNNN-TOKEN.parquet`).
    token: String,
    _records: std::marker::PhantomData<fn(D)>,
}

impl<D: 'static, E: ArrowEncoder<D>> ParquetSink<D, E> {
    /// Writes records encoded by `encoder` into the directory `dir` (created if missing).
    pub fn new(dir: impl Into<PathBuf>, encoder: E) -> Self {
        let mut sink = ParquetSink {
            dir: dir.into(),
            encoder,
            properties: WriterProperties::default(),
            compression: ParquetCompression::default(),
            row_group_rows: 1 << 20,
            roll_interval: Duration::from_secs(10),
            buffered: 0,
            open: None,
            closed: Vec::new(),
            staging: false,
            output: None,
            next_file: 0,
            token: run_token(),
            _records: std::marker::PhantomData,
        };
        sink.properties = sink.writer_properties();
        sink
    }

    /// Compresses the files' column chunks with `compression`. By default, snappy.
    pub fn compression(mut self, compression: ParquetCompression) -> Self {
        self.compression = compression;
        self.properties = self.writer_properties();
        self
    }

    /// Starts a new row group every `rows` rows (at least 1). By default, 1,048,576 rows (the
    /// parquet crate's default).
    pub fn row_group_rows(mut self, rows: usize) -> Self {
        self.row_group_rows = rows.max(1);
        self.properties = self.writer_properties();
        self
    }

    /// Without snapshots, how often the file being written is closed and committed (and at
    /// the input's end). With snapshots, files are committed with each snapshot instead. By
    /// default, 10 s.
    pub fn roll_interval(mut self, interval: Duration) -> Self {
        self.roll_interval = interval;
        self
    }

    fn writer_properties(&self) -> WriterProperties {
        let compression = match self.compression {
            ParquetCompression::None => Compression::UNCOMPRESSED,
            ParquetCompression::Snappy => Compression::SNAPPY,
            ParquetCompression::Zstd(level) => {
                Compression::ZSTD(ZstdLevel::try_new(level).unwrap_or_default())
            }
        };
        WriterProperties::builder()
            .set_compression(compression)
            .set_max_row_group_row_count(Some(self.row_group_rows))
            .set_created_by(format!("tideflow {}", env!("CARGO_PKG_VERSION")))
            .build()
    }

    /// Writes the rows buffered in the encoder to the open file (opened if need be).
    fn write_buffered(&mut self) -> Result<(), Error> {
        if self.buffered == 0 {
            return Ok(());
        }
        let batch = self.encoder.finish()?;
        self.buffered = 0;
        if self.open.is_none() {
            let name = format!("part-{:05}-{}.parquet", self.next_file, self.token);
            self.next_file += 1;
            let path = OutputDir::staged(&self.dir, &name);
            let file = File::create(&path)
                .map_err(|e| Error::io(format!("cannot create {}", path.display()), e))?;
            let writer =
                ArrowWriter::try_new(file, self.encoder.schema(), Some(self.properties.clone()))
                    .map_err(|e| parquet_error(&path, e))?;
            self.open = Some(OpenFile {
                name,
                writer,
                rows: 0,
            });
        }
        let open = self.open.as_mut().expect("opened above");
        open.writer
            .write(&batch)
            .map_err(|e| parquet_error(&OutputDir::staged(&self.dir, &open.name), e))?;
        open.rows += batch.num_rows() as u64;
        Ok(())
    }

    /// Writes what is buffered, then closes and syncs the open file, if any, and adds it to
    /// the closed files.
    fn close_file(&mut self) -> Result<(), Error> {
        self.write_buffered()?;
        let Some(open) = self.open.take() else {
            return Ok(());
        };
        let path = OutputDir::staged(&self.dir, &open.name);
        let file = open
            .writer
            .into_inner()
            .map_err(|e| parquet_error(&path, e))?;
        file.sync_all()
            .map_err(|e| Error::io(format!("cannot write {}", path.display()), e))?;
        let bytes = file
            .metadata()
            .map_err(|e| Error::io(format!("cannot write {}", path.display()), e))?
            .len();
        self.closed.push(LoggedFile {
            name: open.name,
            rows: open.rows,
            bytes,
        });
        Ok(())
    }

    /// Without snapshots: closes the open file and commits the closed ones.
    fn publish(&mut self, now: Instant) -> Result<(), Error> {
        self.close_file()?;
        let Some((out, published)) = self.output.as_mut() else {
            return Ok(());
        };
        *published = now;
        if self.closed.is_empty() {
            return Ok(());
        }
        sync_dir(&self.dir.join(log::STAGING_DIR))?;
        let entry = LogEntry {
            epoch: None,
            files: std::mem::take(&mut self.closed),
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
        let mut out = OutputDir::open(&self.dir)?;
        out.clear()?;
        out.remove_uncommitted()?;
        self.output = Some((out, Instant::now()));
        Ok(())
    }

    fn write(&mut self, batch: &mut Vec<Event<D>>) -> Result<(), Error> {
        for event in batch.drain(..) {
            self.encoder.append(&event.data)?;
            self.buffered += 1;
            if self.buffered >= BATCH_ROWS {
                self.write_buffered()?;
            }
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
        Some(Box::new(commit::ParquetCommitter::new(self.dir.clone())))
    }

    fn begin_staging(&mut self, _recovered: &Recovered) {
        self.staging = true;
    }

    /// Closes and syncs the epoch's file: the part lists it, for the commit to rename.
    fn pre_commit(&mut self, _epoch: u64) -> Result<Vec<u8>, Error> {
        self.close_file()?;
        if !self.closed.is_empty() {
            sync_dir(&self.dir.join(log::STAGING_DIR))?;
        }
        commit::Staged {
            files: std::mem::take(&mut self.closed),
        }
        .encode()
    }
}

/// A token that tells this run's file names from another run's: the process id and the clock.
fn run_token() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_nanos() as u64);
    format!(
        "{:08x}",
        (nanos ^ u64::from(std::process::id()).rotate_left(32)) as u32
    )
}

/// A Parquet or Arrow error writing `path` (most often an I/O error underneath).
fn parquet_error(path: &Path, error: impl std::fmt::Display) -> Error {
    Error::io(
        format!("cannot write Parquet file {}", path.display()),
        std::io::Error::other(error.to_string()),
    )
}
