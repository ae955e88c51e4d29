//! Sinks: where results go, and the encoders that turn records into bytes.
//!
//! A [`Sink`] is built on every worker. Its [`Parallelism`] says whether each worker writes its
//! own records ([`Parallelism::PerWorker`], like the memory sink) or all records are gathered on
//! worker 0 ([`Parallelism::Single`], like a file or the console, so there is one writer).
//! Console and file sinks format records with an [`Encoder`]. A sink that gives a
//! [`Committer`] commits its output exactly once in a job with snapshots ([`commit`]); the
//! timely operator that drives every sink is `driver.rs`'s.

pub use crate::checkpoint::commit;
mod complete;
mod console;
#[cfg(feature = "parquet")]
mod delta;
mod driver;
pub(crate) mod file;
mod foreach;
#[cfg(feature = "kafka")]
pub(crate) mod kafka;
mod memory;
mod ordered;
#[cfg(feature = "parquet")]
pub mod parquet;

use std::fmt::Debug;
use std::io::Write;
use std::time::{Duration, Instant};

use serde::Serialize;
use tideflow_operators::Event;

pub use commit::{CommitContext, CommitTarget, Committer, Prepared, Recovered};
pub use complete::{CompleteSink, KeyTableRow, TableChange, TableRow};
pub use console::{stdout_is_open, ConsoleSink};
#[cfg(feature = "parquet")]
pub use delta::DeltaSink;
pub use file::FileSink;
pub use foreach::ForeachSink;
#[cfg(feature = "kafka")]
pub use kafka::KafkaSink;
pub use memory::MemorySink;
pub use ordered::OrderedSink;
#[cfg(feature = "parquet")]
pub use parquet::{ArrowEncoder, ParquetCompression, ParquetSink};

pub(crate) use driver::{drive, SinkDriver};

/// The committer of a sink reopened from its manifest entry (a file sink's output file, a
/// Kafka sink's topic and transactional id, a Parquet sink's directory), for the checkpoint's recovery before the job is
/// built.
pub(crate) fn reopen_committer(target: &CommitTarget) -> Result<Box<dyn Committer>, Error> {
    match target {
        CommitTarget::File(output) => Ok(Box::new(file::commit::FileCommitter::new(
            output.clone(),
            crate::output_file::DEFAULT_MODE,
        ))),
        #[cfg(feature = "kafka")]
        CommitTarget::Reopen { kind, spec } if kind == kafka::KIND => {
            Ok(Box::new(kafka::commit::KafkaCommitter::reopen(spec)?))
        }
        #[cfg(feature = "parquet")]
        CommitTarget::Reopen { kind, spec } if kind == parquet::commit::KIND => {
            Ok(Box::new(parquet::commit::ParquetCommitter::reopen(spec)))
        }
        #[cfg(feature = "parquet")]
        CommitTarget::Reopen { kind, spec } if kind == delta::commit::KIND => {
            Ok(Box::new(delta::commit::DeltaCommitter::reopen(spec)))
        }
        CommitTarget::Reopen { kind, .. } => Err(Error::Snapshot(format!(
            "the snapshot names a sink of kind {kind:?} that this tideflow cannot commit (built without it?)"
        ))),
        CommitTarget::Sink => Err(Error::Internal(
            "a sink committed only through the job was asked to reopen".into(),
        )),
    }
}

use crate::error::Error;

/// Where a sink instance runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SinkContext {
    /// This worker's index.
    pub worker_index: usize,
    /// The number of workers.
    pub peers: usize,
}

/// Which workers a sink receives records on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Parallelism {
    /// Each worker writes the records it holds.
    PerWorker,
    /// All records are gathered on worker 0, which is the only one that writes.
    Single,
}

/// A destination for records, instantiated once per worker.
///
/// Contract: `on_start` runs before the first `write`; `write` gets batches of events (it may
/// drain the vector); `on_watermark` is called each time the sink's input watermark advances,
/// after the records before it were written; `on_close` once, when the input has ended. An
/// `Err` from any of them stops the job and is returned by [`execute`](crate::execute). A
/// [`Parallelism::Single`] sink is only driven on worker 0.
pub trait Sink<D>: 'static {
    /// Writes a batch of records.
    fn write(&mut self, batch: &mut Vec<Event<D>>) -> Result<(), Error>;

    /// Prepares to write. By default, does nothing.
    fn on_start(&mut self, context: &SinkContext) -> Result<(), Error> {
        let _ = context;
        Ok(())
    }

    /// The input's watermark advanced to `watermark`. By default, does nothing.
    fn on_watermark(&mut self, watermark: u64) -> Result<(), Error> {
        let _ = watermark;
        Ok(())
    }

    /// The input has ended: flush everything. By default, does nothing.
    fn on_close(&mut self) -> Result<(), Error> {
        Ok(())
    }

    /// Processing time has passed: called after every activation of the sink (after `write`
    /// and `on_watermark`), for sinks that act on the wall clock. Returns how long from `now`
    /// the sink wants to be called again even if nothing arrives. By default, does nothing and
    /// asks for nothing.
    fn on_tick(&mut self, now: Instant) -> Result<Option<Duration>, Error> {
        let _ = now;
        Ok(None)
    }

    /// Which workers receive records. By default, [`Parallelism::PerWorker`].
    fn parallelism(&self) -> Parallelism {
        Parallelism::PerWorker
    }

    /// Exactly-once output in a job with snapshots: this sink's [`Committer`], if it commits
    /// its output in two phases ([`commit`] explains the protocol). Asked once while the job is
    /// built, only with snapshots; a committing sink must be [`Parallelism::Single`] (a
    /// `PerWorker` sink that gives one stops the job with an error). By default, `None`: the
    /// sink writes as rows come (at-least-once after a crash).
    fn committer(&mut self) -> Option<Box<dyn Committer>> {
        None
    }

    /// Switches to staged output (only called after [`Sink::committer`] gave a committer,
    /// before `on_start`): rows written from now on are staged until [`Sink::pre_commit`]
    /// instead of published; `recovered` says what output is committed already. By default,
    /// does nothing.
    fn begin_staging(&mut self, recovered: &Recovered) {
        let _ = recovered;
    }

    /// Phase one of the commit of the snapshot at `epoch` (`u64::MAX` at the end of the
    /// input), called once the rows stamped below `epoch` were written: makes the rows staged
    /// since the last call durable or hands them over, and returns what the committer needs to
    /// publish them. The bytes are the sink's part of the snapshot, given to
    /// [`Committer::commit`] once the snapshot is complete (and to [`Committer::recover`] after
    /// a crash). An `Err` abandons the snapshot and stops the job. By default, returns nothing.
    fn pre_commit(&mut self, epoch: u64) -> Result<Vec<u8>, Error> {
        let _ = epoch;
        Ok(Vec::new())
    }
}

/// Turns records into bytes for the console and file sinks.
pub trait Encoder<D>: 'static {
    /// Appends one encoded record, with its line end, to `out`.
    fn encode(&mut self, record: &D, out: &mut Vec<u8>) -> Result<(), Error>;

    /// A new file begins (a file sink that replaces its file on each write): a header, if the
    /// format has one, is due again. By default, does nothing.
    fn begin_file(&mut self) {}

    /// The output continues a file that already has rows (a job resumed from a snapshot): a
    /// header, if the format has one, is not due. By default, does nothing.
    fn continue_file(&mut self) {}
}

/// Encodes records as JSON, one object per line (serde).
#[derive(Clone, Copy, Debug, Default)]
pub struct JsonLinesEncoder;

impl<D: Serialize> Encoder<D> for JsonLinesEncoder {
    fn encode(&mut self, record: &D, out: &mut Vec<u8>) -> Result<(), Error> {
        serde_json::to_writer(&mut *out, record)
            .map_err(|e| Error::Internal(format!("cannot encode a record as JSON: {e}")))?;
        out.push(b'\n');
        Ok(())
    }
}

/// Encodes flat records (structs or tuples of scalars) as CSV rows, with a header row taken
/// from the first record's field names (serde).
pub struct CsvEncoder {
    writer: csv::Writer<SharedBuffer>,
    bytes: SharedBuffer,
}

/// A byte buffer the CSV writer writes into and the encoder drains.
#[derive(Clone, Default)]
struct SharedBuffer(std::rc::Rc<std::cell::RefCell<Vec<u8>>>);

impl Write for SharedBuffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.borrow_mut().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Default for CsvEncoder {
    fn default() -> Self {
        let bytes = SharedBuffer::default();
        CsvEncoder {
            writer: csv::Writer::from_writer(bytes.clone()),
            bytes,
        }
    }
}

impl<D: Serialize> Encoder<D> for CsvEncoder {
    fn begin_file(&mut self) {
        *self = CsvEncoder::default();
    }

    fn continue_file(&mut self) {
        let bytes = SharedBuffer::default();
        self.writer = csv::WriterBuilder::new()
            .has_headers(false)
            .from_writer(bytes.clone());
        self.bytes = bytes;
    }

    fn encode(&mut self, record: &D, out: &mut Vec<u8>) -> Result<(), Error> {
        let failed = |e: &dyn std::fmt::Display| {
            Error::Config(format!(
                "cannot write a record as CSV (only flat records can be): {e}"
            ))
        };
        self.writer.serialize(record).map_err(|e| failed(&e))?;
        self.writer.flush().map_err(|e| failed(&e))?;
        out.append(&mut self.bytes.0.borrow_mut());
        Ok(())
    }
}

/// Encodes records with their `Debug` form, one per line.
#[derive(Clone, Copy, Debug, Default)]
pub struct DebugEncoder;

impl<D: Debug> Encoder<D> for DebugEncoder {
    fn encode(&mut self, record: &D, out: &mut Vec<u8>) -> Result<(), Error> {
        writeln!(out, "{record:?}")
            .map_err(|e| Error::Internal(format!("cannot format a record: {e}")))
    }
}

/// Encodes records with their `Display` form, one per line.
#[derive(Clone, Copy, Debug, Default)]
pub struct DisplayEncoder;

impl<D: std::fmt::Display> Encoder<D> for DisplayEncoder {
    fn encode(&mut self, record: &D, out: &mut Vec<u8>) -> Result<(), Error> {
        writeln!(out, "{record}")
            .map_err(|e| Error::Internal(format!("cannot format a record: {e}")))
    }
}

/// Encodes a batch of events into `buffer` (cleared first).
pub(crate) fn encode_batch<D, E: Encoder<D>>(
    encoder: &mut E,
    batch: &mut Vec<Event<D>>,
    buffer: &mut Vec<u8>,
) -> Result<(), Error> {
    buffer.clear();
    for event in batch.drain(..) {
        encoder.encode(&event.data, buffer)?;
    }
    Ok(())
}
