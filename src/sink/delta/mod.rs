//! A sink that writes records into a Delta Lake table (a folder with a `_delta_log/`), and
//! its committer for exactly-once output (`commit.rs`). The table's log is written as the
//! Delta protocol says (`log.rs`); the data files are the Parquet sink's, through the same
//! [`ArrowEncoder`], with timestamps in microseconds as Delta's `timestamp` type is.
//!
//! - In a job with snapshots: **exactly-once**. Each epoch's rows go to one Parquet file under
//!   `_tideflow_staging/`, and one table version per completed snapshot adds it, with a `txn`
//!   action (application id the job's, version the epoch) that makes a replayed commit a
//!   no-op.
//! - Without snapshots: a version appends the rows every [`DeltaSink::roll_interval`] and at
//!   the input's end (at-least-once).
//! - [`DeltaSink::overwrite_on_write`] (complete mode): each write replaces the table's rows
//!   with its batch in one version (`remove` of every file, `add` of the new one).
//!
//! The table is created with the encoder's schema if it does not exist; an existing table
//! whose schema differs is refused before the job runs, naming the column.

pub(crate) mod commit;
mod log;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use tideflow_operators::Event;

use super::parquet::{
    clear_staging, rename_staged, ArrowEncoder, ParquetCompression, ParquetWriter,
};
use super::{Committer, Parallelism, Recovered, Sink, SinkContext};
use crate::error::Error;
use log::DeltaTable;

/// Writes records into a Delta Lake table, from worker 0 (see the [module](self)).
///
/// # Examples
/// ```
/// # use std::sync::Arc;
/// # use tideflow::sink::parquet::arrow_array::{builder::Int64Builder, ArrayRef, RecordBatch};
/// # use tideflow::sink::parquet::arrow_schema::{DataType, Field, Schema, SchemaRef};
/// use tideflow::sink::{ArrowEncoder, DeltaSink};
/// # struct Counts(SchemaRef, Int64Builder);
/// # impl ArrowEncoder<i64> for Counts {
/// #     fn schema(&self) -> SchemaRef { self.0.clone() }
/// #     fn append(&mut self, n: &i64) -> Result<(), tideflow::Error> { self.1.append_value(*n); Ok(()) }
/// #     fn finish(&mut self) -> Result<RecordBatch, tideflow::Error> {
/// #         let columns: Vec<ArrayRef> = vec![Arc::new(self.1.finish())];
/// #         RecordBatch::try_new(self.0.clone(), columns).map_err(|e| tideflow::Error::Internal(e.to_string()))
/// #     }
/// # }
/// let schema = Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, false)]));
/// let sink = DeltaSink::new("lake/counts", Counts(schema, Int64Builder::new()));
/// # let _ = sink;
/// ```
pub struct DeltaSink<D, E> {
    files: ParquetWriter<D, E>,
    overwrite: bool,
    roll_interval: Duration,
    /// Exactly-once output: staging since `begin_staging`.
    staging: bool,
    /// Without snapshots: the table, once started, and when rows were last committed.
    table: Option<(DeltaTable, Instant)>,
}

impl<D: 'static, E: ArrowEncoder<D>> DeltaSink<D, E> {
    /// Writes records encoded by `encoder` into the table in folder `dir`.
    pub fn new(dir: impl Into<PathBuf>, encoder: E) -> Self {
        DeltaSink {
            files: ParquetWriter::new(dir.into(), encoder),
            overwrite: false,
            roll_interval: Duration::from_secs(10),
            staging: false,
            table: None,
        }
    }

    /// Makes each `write` replace the table's rows with its batch, in one table version
    /// (complete mode writes its table this way). Not exactly-once: a crash may leave the
    /// table at an earlier table's rows. By default, writes append.
    pub fn overwrite_on_write(mut self) -> Self {
        self.overwrite = true;
        self
    }

    /// Compresses the files' column chunks with `compression`. By default, snappy.
    pub fn compression(mut self, compression: ParquetCompression) -> Self {
        self.files.set_compression(compression);
        self
    }

    /// Starts a new row group every `rows` rows (at least 1). By default, 1,048,576 rows.
    pub fn row_group_rows(mut self, rows: usize) -> Self {
        self.files.set_row_group_rows(rows);
        self
    }

    /// Without snapshots, how often the rows written are committed as a table version (and at
    /// the input's end). By default, 10 s.
    pub fn roll_interval(mut self, interval: Duration) -> Self {
        self.roll_interval = interval;
        self
    }

    /// Without snapshots: commits the rows written since the last call as a table version,
    /// replacing the table's rows if `overwrite`.
    fn publish(&mut self, now: Instant, overwrite: bool) -> Result<(), Error> {
        self.files.close_file()?;
        let files = self.files.take_closed()?;
        let Some((table, published)) = self.table.as_mut() else {
            return Ok(());
        };
        *published = now;
        if files.is_empty() && !overwrite {
            return Ok(());
        }
        rename_staged(self.files.dir(), &files)?;
        let mut actions = match overwrite {
            true => table.remove_all_actions(),
            false => Vec::new(),
        };
        actions.extend(DeltaTable::add_actions(&files));
        let operation = if overwrite {
            "WRITE"
        } else {
            "STREAMING UPDATE"
        };
        table.commit(actions, operation)
    }
}

impl<D: 'static, E: ArrowEncoder<D>> Sink<D> for DeltaSink<D, E> {
    /// Without snapshots: checks the table's schema, or creates the table.
    fn on_start(&mut self, _context: &SinkContext) -> Result<(), Error> {
        if self.staging {
            return Ok(());
        }
        let dir = self.files.dir().to_path_buf();
        let mut table = DeltaTable::open(&dir)?;
        let schema = self.files.schema();
        table.check_schema(&schema)?;
        if !table.exists() {
            let actions = table.create_actions(&schema)?;
            table.commit(actions, "CREATE TABLE")?;
        }
        clear_staging(&dir)?;
        self.table = Some((table, Instant::now()));
        Ok(())
    }

    fn write(&mut self, batch: &mut Vec<Event<D>>) -> Result<(), Error> {
        for event in batch.drain(..) {
            self.files.append(&event.data)?;
        }
        if self.overwrite {
            return self.publish(Instant::now(), true);
        }
        Ok(())
    }

    fn on_tick(&mut self, now: Instant) -> Result<Option<Duration>, Error> {
        let Some((_, published)) = &self.table else {
            return Ok(None);
        };
        if self.overwrite {
            return Ok(None);
        }
        let due = *published + self.roll_interval;
        if now < due {
            return Ok(Some(due - now));
        }
        self.publish(now, false)?;
        Ok(Some(self.roll_interval))
    }

    fn on_close(&mut self) -> Result<(), Error> {
        if self.staging || self.overwrite {
            return Ok(());
        }
        self.publish(Instant::now(), false)
    }

    fn parallelism(&self) -> Parallelism {
        Parallelism::Single
    }

    /// Commits with snapshots, unless each write overwrites the table.
    fn committer(&mut self) -> Option<Box<dyn Committer>> {
        (!self.overwrite).then(|| {
            let dir = self.files.dir().to_path_buf();
            Box::new(commit::DeltaCommitter::new(dir, self.files.schema())) as _
        })
    }

    fn begin_staging(&mut self, _recovered: &Recovered) {
        self.staging = true;
    }

    /// Closes and syncs the epoch's file: the part lists it, for the commit to add.
    fn pre_commit(&mut self, _epoch: u64) -> Result<Vec<u8>, Error> {
        self.files.close_file()?;
        super::parquet::commit::Staged {
            files: self.files.take_closed()?,
        }
        .encode()
    }
}
