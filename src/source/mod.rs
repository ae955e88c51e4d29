//! Sources: where records come from, split into partitions and shared out among workers.
//!
//! A [`Source`] is built on every worker; [`Source::on_start`] tells it which worker it runs on
//! so it can pick its share of the input, as a number of *partitions* (a file, a generator
//! stride, a slice of a `Vec`). Each partition has its own bounded out-of-orderness watermark;
//! the source's watermark is the minimum over its unfinished partitions (DESIGN.md "Time").
//! Partitions are numbered globally and partition `p` is read by worker `p % peers`, so which
//! records are late depends on the input and its partitioning, never on the worker count.
//!
//! Bounded sources ([`FileSource`], [`MemorySource`]) end; live ones read until their peer
//! closes ([`SocketSource`], [`StdinSource`]) or forever ([`FileSource::watch`], which adds a
//! partition per new file with [`SourceBatch::add_partition`]; `KafkaSource`, one partition
//! per Kafka partition, replayable from its offsets, with the `kafka` feature).
//!
//! A job reads a source with [`Flow::source`](crate::Flow::source), names the event time with
//! [`SourceBuilder::with_event_time`] and the allowed disorder with
//! [`EventTimeBuilder::with_watermark`], which yields a [`Stream`]. A bounded source can also
//! be read whole, without event time, as the static table of a stream-static join
//! ([`Flow::static_table`](crate::Flow::static_table)).

mod bad_input;
mod driver;
mod file;
#[cfg(feature = "kafka")]
mod kafka;
mod lines;
mod memory;
#[cfg(feature = "parquet")]
mod parquet;
mod rate;
mod socket;
mod stdin;
mod table;

use std::rc::Rc;
use std::sync::Arc;

use timely::dataflow::Scope;

pub use crate::context::{PartitionGauge, PartitionGauges};
pub use crate::position::Position;
pub use bad_input::{BadRecord, OnError, ReadError, DEFAULT_MAX_RECORD_BYTES};
pub use file::{
    input_files, Csv, FileFormat, FileSource, JsonLines, RecordReader, RowDecoder, Splittable,
    DEFAULT_SPLIT_BYTES,
};
#[cfg(feature = "kafka")]
pub use kafka::{kafka_partitions, KafkaMessage, KafkaSource, PartitionInfo, StartingOffsets};
pub use memory::MemorySource;
#[cfg(feature = "parquet")]
pub use parquet::{Parquet, ParquetReader, ParquetRow, ParquetValue};
pub use rate::{RateRecord, RateSource};
pub use socket::SocketSource;
pub use stdin::StdinSource;
pub(crate) use table::read_table;
pub use tideflow_operators::source::SourceStatus;
pub use tideflow_operators::watermark::WatermarkStrategy;

use driver::SourceDriver;

use crate::error::Error;
use crate::stream::Stream;
use crate::worker::WorkerJob;

/// Where a source instance runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SourceContext {
    /// This worker's index.
    pub worker_index: usize,
    /// The number of workers.
    pub peers: usize,
}

impl SourceContext {
    /// The partitions, out of `total`, that this worker reads: `p` with `p % peers == index`.
    pub fn local_partitions(&self, total: usize) -> impl Iterator<Item = usize> {
        (self.worker_index..total).step_by(self.peers.max(1))
    }
}

/// Records read by one [`Source::read`] call, each tagged with its local partition.
pub struct SourceBatch<T> {
    records: Vec<(usize, T)>,
    /// For replayable sources, the position of each record (index for index with `records`).
    positions: Vec<Position>,
    finished: Vec<usize>,
    added: usize,
    skipped: u64,
    dead_lettered: u64,
}

impl<T> SourceBatch<T> {
    fn new() -> Self {
        SourceBatch {
            records: Vec::new(),
            positions: Vec::new(),
            finished: Vec::new(),
            added: 0,
            skipped: 0,
            dead_lettered: 0,
        }
    }

    /// Adds a record read from local partition `partition` (0-based among this worker's).
    #[inline]
    pub fn push(&mut self, partition: usize, record: T) {
        self.records.push((partition, record));
    }

    /// Adds a record read from local partition `partition` that starts at `position`: seeking
    /// the partition to `position` ([`Source::seek`]) reads this record again. A replayable
    /// source pushes every record this way.
    #[inline]
    pub fn push_at(&mut self, partition: usize, record: T, position: Position) {
        self.records.push((partition, record));
        self.positions.push(position);
    }

    /// Marks local partition `partition` as exhausted: it stops holding the watermark back.
    pub fn finish_partition(&mut self, partition: usize) {
        self.finished.push(partition);
    }

    /// Adds a local partition discovered while running (a new file in a watched directory).
    /// Partitions are numbered in the order they appear: the first added one is numbered
    /// [`Source::partitions`] (as it was at start), the next one more, and so on. Records of
    /// the new partition may be pushed into this same batch. Until its first record it holds
    /// the watermark where it is.
    pub fn add_partition(&mut self) {
        self.added += 1;
    }

    /// Counts `n` bad input records that were skipped (reported as
    /// [`JobReport::records_skipped`](crate::JobReport)).
    pub fn count_skipped(&mut self, n: u64) {
        self.skipped += n;
    }

    /// Counts `n` bad input records that went to a dead-letter file (reported as
    /// [`JobReport::records_dead_lettered`](crate::JobReport)).
    pub fn count_dead_lettered(&mut self, n: u64) {
        self.dead_lettered += n;
    }

    /// How many records this batch holds.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether the batch holds no records.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }
}

/// A source of records, instantiated once per worker.
///
/// Contract: [`Source::on_start`] runs once before the first read, and
/// [`Source::partitions`] after it. `read` is called whenever the worker schedules the source;
/// it adds what is ready to the batch (a few thousand records at most, so one source does not
/// starve the rest of the dataflow) and says when to call it again. Returning
/// [`SourceStatus::Done`] ends this worker's share of the input. An `Err` stops the whole job
/// without closing any window (what was read is not treated as the whole input) and is what
/// [`execute`](crate::execute) returns, so it must name the file, line or address at fault.
pub trait Source: 'static {
    /// The records this source produces.
    type Item: 'static;

    /// Reads what is ready into `batch`.
    fn read(&mut self, batch: &mut SourceBatch<Self::Item>) -> Result<SourceStatus, Error>;

    /// Picks this worker's share of the input. By default, does nothing.
    fn on_start(&mut self, context: &SourceContext) -> Result<(), Error> {
        let _ = context;
        Ok(())
    }

    /// Called before [`Source::on_start`] when the job's trigger reads only the input available
    /// at start and then ends ([`Trigger::AvailableNow`](crate::Trigger::AvailableNow),
    /// [`Trigger::Once`](crate::Trigger::Once)). Under those triggers the source ends at its
    /// first read that returns [`SourceStatus::Wait`]: a source for which "nothing ready now"
    /// does not mean its available input is read (a broker's reply still on its way) reads up
    /// to an end it fixes at start instead, returning [`SourceStatus::Ready`] until it is
    /// there. By default, does nothing.
    fn on_available_now(&mut self) {}

    /// Called after [`Source::on_start`] when the job reports progress: a source whose
    /// partitions have offsets (Kafka) registers a [`PartitionGauge`] per partition here and
    /// updates them as it reads (per read, not per record); they appear in
    /// [`Progress::source_partitions`](crate::Progress::source_partitions). By default, does
    /// nothing.
    fn report_offsets(&mut self, gauges: &PartitionGauges) {
        let _ = gauges;
    }

    /// The number of partitions this worker reads, known after `on_start`. By default, 1.
    fn partitions(&self) -> usize {
        1
    }

    /// Whether the source can be replayed from a [`Position`] (DESIGN.md "Snapshots"): it
    /// pushes every record with [`SourceBatch::push_at`], reports [`Source::position`] and
    /// implements [`Source::seek`], and it reads the same records in the same order, per
    /// partition, every time. Local partition `i` must then be the global partition
    /// `worker_index + i * peers`, as [`SourceContext::local_partitions`] gives them. By
    /// default, `false`.
    fn replayable(&self) -> bool {
        false
    }

    /// The position of the next record local partition `partition` will read (its end, once
    /// it is exhausted). Only called on replayable sources.
    fn position(&self, partition: usize) -> Position {
        let _ = partition;
        Position::default()
    }

    /// Resumes local partition `partition` at `position`, a position this source reported
    /// (with a record, or from [`Source::position`]) in an earlier run over the same input.
    /// Called after `on_start` and before the first `read`. A partition sought to its end
    /// reads nothing more and is finished by the caller.
    fn seek(&mut self, partition: usize, position: Position) -> Result<(), Error> {
        let _ = (partition, position);
        Err(Error::Config(
            "this source cannot be replayed from a snapshot".into(),
        ))
    }
}

/// A source whose event time is not named yet.
pub struct SourceBuilder<'flow, 'scope, S> {
    /// The scope and the job of the flow, borrowed as
    /// [`Flow::source`](crate::Flow::source) borrows the flow.
    scope: &'flow mut Scope<'scope, u64>,
    job: &'flow Rc<WorkerJob>,
    source: S,
}

impl<'flow, 'scope, S: Source> SourceBuilder<'flow, 'scope, S> {
    /// The builder of [`Flow::source`](crate::Flow::source), on the flow's `scope` and `job`.
    pub(crate) fn new(
        scope: &'flow mut Scope<'scope, u64>,
        job: &'flow Rc<WorkerJob>,
        source: S,
    ) -> Self {
        SourceBuilder { scope, job, source }
    }

    /// Names each record's event time, in milliseconds since the Unix epoch.
    pub fn with_event_time<F>(self, event_time: F) -> EventTimeBuilder<'flow, 'scope, S, F>
    where
        F: Fn(&S::Item) -> u64 + 'static,
    {
        EventTimeBuilder {
            scope: self.scope,
            job: self.job,
            source: self.source,
            event_time,
        }
    }
}

/// A source with an event time, waiting for its watermark strategy.
pub struct EventTimeBuilder<'flow, 'scope, S, F> {
    scope: &'flow mut Scope<'scope, u64>,
    job: &'flow Rc<WorkerJob>,
    source: S,
    event_time: F,
}

impl<'scope, S, F> EventTimeBuilder<'_, 'scope, S, F>
where
    S: Source,
    F: Fn(&S::Item) -> u64 + 'static,
{
    /// Sets how far out of order events may arrive (a `Duration`, or a full
    /// [`WatermarkStrategy`]) and starts the stream. Each partition's watermark trails the
    /// largest event time it has seen by this delay. The strategy's processing-time rules (idle
    /// timeout, heartbeat, future skew) read the monotonic clock and the system clock before
    /// each read; events held back by the future-skew guard are counted in
    /// [`JobReport::future_events`](crate::JobReport).
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    /// use tideflow::{sink::MemorySink, source::MemorySource, Config};
    ///
    /// let sink = MemorySink::new();
    /// let output = sink.clone();
    /// tideflow::execute(Config::default(), move |flow| {
    ///     flow.source(MemorySource::new(vec![3u64, 1, 2]))
    ///         .with_event_time(|t| *t * 1_000)
    ///         .with_watermark(Duration::from_secs(5))
    ///         .map(|t| t * 10)
    ///         .sink(output.clone());
    ///     Ok(())
    /// })?;
    /// let mut seen = sink.take();
    /// seen.sort();
    /// assert_eq!(seen, vec![10, 20, 30]);
    /// # Ok::<(), tideflow::Error>(())
    /// ```
    pub fn with_watermark(self, strategy: impl Into<WatermarkStrategy>) -> Stream<'scope, S::Item> {
        let EventTimeBuilder {
            scope,
            job,
            source,
            event_time,
        } = self;
        let job = Rc::clone(job);
        let strategy = strategy.into();
        let peer_floor = strategy.idle_timeout.is_some().then(|| {
            job.shared
                .idle_sources
                .peer_floor(job.next_idle_source(), job.index, job.peers)
        });
        let driver = SourceDriver {
            context: SourceContext {
                worker_index: job.index,
                peers: job.peers,
            },
            trigger: job.trigger,
            shared: Arc::clone(&job.shared),
            checkpointer: job.checkpointer.clone(),
            peer_floor,
        };
        // The source's frontier, for a graceful stop, from its data-less second output: a
        // probe on the data would add progress traffic for every batch.
        use timely::dataflow::operators::Probe;
        let (inner, frontier) = driver.drive(*scope, source, event_time, strategy);
        frontier.probe_with(&job.source_probe);
        Stream { inner, job }
    }
}
