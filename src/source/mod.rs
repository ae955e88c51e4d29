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
//! partition per new file with [`SourceBatch::add_partition`]).
//!
//! A job reads a source with [`Flow::source`], names the event time with
//! [`SourceBuilder::with_event_time`] and the allowed disorder with
//! [`EventTimeBuilder::with_watermark`], which yields a [`Stream`]. A bounded source can also
//! be read whole, without event time, as the static table of a stream-static join
//! ([`Flow::static_table`](crate::Flow::static_table)).

mod bad_input;
mod file;
mod lines;
mod memory;
mod rate;
mod socket;
mod stdin;
mod table;

use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

pub use bad_input::{BadRecord, OnError, ReadError, DEFAULT_MAX_RECORD_BYTES};
pub use file::{Csv, FileFormat, FileSource, JsonLines, RecordReader, RowDecoder};
pub use memory::MemorySource;
pub use rate::{RateRecord, RateSource};
pub use socket::SocketSource;
pub use stdin::StdinSource;
pub(crate) use table::read_table;
pub use tideflow_operators::source::SourceStatus;
pub use tideflow_operators::watermark::WatermarkStrategy;

use tideflow_operators::source::{watermarked_source, SourceOutput};
use tideflow_operators::watermark::ProcessingTime;

use crate::checkpoint::{Checkpointer, PartitionCursor, SourceHook};
use crate::error::Error;
use crate::runtime::Flow;
use crate::stream::Stream;

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

/// Where a replayable partition's reading stands: enough to resume reading at one record
/// ([`Source::seek`]). Its meaning is the source's: a byte offset and line number for files, a
/// record index for generated and in-memory input.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Position {
    /// A byte offset, or a record index.
    pub offset: u64,
    /// A 1-based line number where the source has lines (to name lines in errors), else 0.
    pub line: u64,
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

impl<'scope> Flow<'scope> {
    /// Starts a stream from `source`, read in parallel by every worker.
    pub fn source<S: Source>(&mut self, source: S) -> SourceBuilder<'_, 'scope, S> {
        SourceBuilder { flow: self, source }
    }
}

/// A source whose event time is not named yet.
pub struct SourceBuilder<'flow, 'scope, S> {
    flow: &'flow mut Flow<'scope>,
    source: S,
}

impl<'flow, 'scope, S: Source> SourceBuilder<'flow, 'scope, S> {
    /// Names each record's event time, in milliseconds since the Unix epoch.
    pub fn with_event_time<F>(self, event_time: F) -> EventTimeBuilder<'flow, 'scope, S, F>
    where
        F: Fn(&S::Item) -> u64 + 'static,
    {
        EventTimeBuilder {
            flow: self.flow,
            source: self.source,
            event_time,
        }
    }
}

/// A source with an event time, waiting for its watermark strategy.
pub struct EventTimeBuilder<'flow, 'scope, S, F> {
    flow: &'flow mut Flow<'scope>,
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
            flow,
            mut source,
            event_time,
        } = self;
        let job = Rc::clone(&flow.job);
        let context = SourceContext {
            worker_index: job.index,
            peers: job.peers,
        };
        let started = source.on_start(&context);
        let partitions = if started.is_ok() {
            source.partitions()
        } else {
            0
        };
        if let Err(error) = started {
            job.shared.fail(error);
        }
        let shared = Arc::clone(&job.shared);
        let mut batch = SourceBatch::new();
        let mut replay = match &job.checkpointer {
            Some(checkpointer) => Replay::new(checkpointer, &context, &mut source, partitions)
                .unwrap_or_else(|error| {
                    job.shared.fail(error);
                    None
                }),
            None => None,
        };
        let finishes_when_idle = job.trigger.finishes_when_idle();
        // Progress reports (src/metrics): this source instance's watermark.
        let watermark_slot = job.shared.metrics.watermark_slot();
        let started_at = Instant::now();
        let clock = move || ProcessingTime {
            monotonic_ms: u64::try_from(started_at.elapsed().as_millis()).unwrap_or(u64::MAX),
            // A system clock before 1970 reads as the epoch: nothing is then "in the future".
            wall_ms: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |since| {
                    u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
                }),
        };
        let inner = watermarked_source(
            flow.scope,
            "Source",
            partitions,
            strategy.into(),
            job.trigger,
            clock,
            move |out| {
                if shared.stopped() {
                    return SourceStatus::Halt;
                }
                let status = source.read(&mut batch);
                if batch.skipped > 0 {
                    shared
                        .records_skipped
                        .fetch_add(std::mem::take(&mut batch.skipped), Ordering::Relaxed);
                }
                if batch.dead_lettered > 0 {
                    shared
                        .records_dead_lettered
                        .fetch_add(std::mem::take(&mut batch.dead_lettered), Ordering::Relaxed);
                }
                for _ in 0..std::mem::take(&mut batch.added) {
                    out.add_partition();
                }
                let sent = match replay.as_mut() {
                    None => {
                        let sent = batch.records.len() as u64;
                        for (partition, record) in batch.records.drain(..) {
                            out.push(partition, event_time(&record), record);
                        }
                        for partition in batch.finished.drain(..) {
                            out.finish_partition(partition);
                        }
                        sent
                    }
                    Some(replay) => {
                        // Under available-now and once, a source with nothing ready has ended
                        // (the operator finishes it).
                        let ended = matches!(status, Ok(SourceStatus::Done))
                            || (finishes_when_idle && matches!(status, Ok(SourceStatus::Wait(_))));
                        match replay.push(&mut batch, out, &event_time, &source, ended) {
                            Ok(sent) => sent,
                            Err(error) => {
                                shared.fail(error);
                                return SourceStatus::Halt;
                            }
                        }
                    }
                };
                batch.positions.clear();
                shared.records_in.fetch_add(sent, Ordering::Relaxed);
                let future = out.take_future_count();
                if future > 0 {
                    shared.future_events.fetch_add(future, Ordering::Relaxed);
                }
                if let Some(slot) = &watermark_slot {
                    let ended = matches!(status, Ok(SourceStatus::Done))
                        || (finishes_when_idle && matches!(status, Ok(SourceStatus::Wait(_))));
                    slot.observe(sent, out.watermarks(), ended);
                }
                status.unwrap_or_else(|error| {
                    shared.fail(error);
                    SourceStatus::Halt
                })
            },
        );
        Stream { inner, job }
    }
}

/// A source instance's part in snapshots: where its partitions resume after a restore, which
/// replayed records to skip, and, while a snapshot is pending, each partition's first record
/// stamped at or after the epoch (docs/ARCHITECTURE.md "Snapshots").
struct Replay {
    hook: SourceHook,
    /// The global number of each local partition.
    globals: Vec<u64>,
    /// Restored watermark state, applied before the first push: (max seen, finished).
    restore: Option<Vec<(Option<u64>, bool)>>,
    /// Records stamped below this were applied before the snapshot resumed from.
    skip_below: u64,
    /// The pending epoch whose part is not saved yet.
    epoch: Option<u64>,
    /// Per local partition: the position of its first record stamped at or after `epoch`,
    /// and the partition's largest event time before it.
    first: Vec<Option<(Position, Option<u64>)>>,
    /// The epoch whose part was saved last.
    saved: Option<u64>,
    finished: bool,
}

impl Replay {
    /// Registers the source and seeks its partitions to where the snapshot resumed from, if
    /// any.
    fn new<S: Source>(
        checkpointer: &Arc<Checkpointer>,
        context: &SourceContext,
        source: &mut S,
        partitions: usize,
    ) -> Result<Option<Replay>, Error> {
        let hook = SourceHook::register(checkpointer, context.worker_index);
        if !source.replayable() {
            return Err(Error::Config(
                "snapshots need a replayable input, and this one cannot be replayed (files that are not watched, the rate generator with a start time and memory sources can)".into(),
            ));
        }
        let globals: Vec<u64> = (0..partitions)
            .map(|local| (context.worker_index + local * context.peers) as u64)
            .collect();
        let mut restore = None;
        if let Some(cursors) = hook.restored()? {
            let mut states = Vec::with_capacity(partitions);
            for (local, global) in globals.iter().enumerate() {
                let cursor = cursors.get(global).ok_or_else(|| {
                    Error::Snapshot(format!(
                        "the snapshot has no position for input partition {global}; was the input changed?"
                    ))
                })?;
                source.seek(local, cursor.position)?;
                states.push((cursor.max_seen, cursor.finished));
            }
            restore = Some(states);
        }
        let skip_below = hook.checkpointer().resumed_epoch().unwrap_or(0);
        Ok(Some(Replay {
            hook,
            globals,
            restore,
            skip_below,
            epoch: None,
            first: vec![None; partitions],
            saved: None,
            finished: false,
        }))
    }

    /// Pushes the batch's records into `out` under the coordinator's lock, noting each
    /// partition's first record at or after a pending epoch; then saves the source's part if
    /// it is due (its watermark passed the epoch, or it ended), and reports the end. Returns
    /// how many records were sent.
    fn push<S: Source, F: Fn(&S::Item) -> u64>(
        &mut self,
        batch: &mut SourceBatch<S::Item>,
        out: &mut SourceOutput<S::Item>,
        event_time: &F,
        source: &S,
        ended: bool,
    ) -> Result<u64, Error> {
        if let Some(states) = self.restore.take() {
            for (local, (max_seen, finished)) in states.into_iter().enumerate() {
                out.restore_partition(local, max_seen, finished);
            }
        }
        let checkpointer = Arc::clone(self.hook.checkpointer_arc());
        let (sent, due) = checkpointer.poll(|pending| {
            if pending != self.epoch {
                self.epoch = pending.filter(|&epoch| self.saved != Some(epoch));
                self.first.iter_mut().for_each(|first| *first = None);
            }
            let mut high = 0;
            let before = out.pending_len();
            let positions = std::mem::take(&mut batch.positions);
            match self.epoch {
                // The common case: no snapshot pending.
                None => {
                    for (partition, record) in batch.records.drain(..) {
                        let time = event_time(&record);
                        high = high.max(out.push_from(partition, time, record, self.skip_below));
                    }
                }
                Some(epoch) => {
                    for (index, (partition, record)) in batch.records.drain(..).enumerate() {
                        let time = event_time(&record);
                        let capture = self.first[partition]
                            .is_none()
                            .then(|| out.watermarks().max_seen(partition));
                        let stamp = out.push_from(partition, time, record, self.skip_below);
                        high = high.max(stamp);
                        if let Some(before) = capture.filter(|_| stamp >= epoch) {
                            let position = positions.get(index).copied().unwrap_or_default();
                            self.first[partition] = Some((position, before));
                        }
                    }
                }
            }
            let sent = (out.pending_len() - before) as u64;
            batch.positions = positions;
            for partition in batch.finished.drain(..) {
                out.finish_partition(partition);
            }
            let watermark = out.watermarks().watermark();
            let ended = ended || watermark.is_none();
            high = high.max(watermark.unwrap_or(0));
            let due = self
                .epoch
                .filter(|&epoch| ended || watermark.is_some_and(|w| w >= epoch));
            (
                (
                    sent,
                    due.map(|epoch| (epoch, ended))
                        .or(ended.then_some((u64::MAX, true))),
                ),
                high,
                sent,
            )
        })?;
        if let Some((epoch, ended)) = due {
            if epoch != u64::MAX {
                let cursors = self.cursors(out, source, false);
                self.hook.save(epoch, cursors)?;
                self.saved = Some(epoch);
                self.epoch = None;
            }
            if ended && !self.finished {
                self.finished = true;
                let cursors = self.cursors(out, source, true);
                self.hook.finish(cursors)?;
            }
        }
        Ok(sent)
    }

    /// The partitions' cursors: at each partition's first record at or after the pending
    /// epoch, or where it stands now.
    fn cursors<S: Source>(
        &self,
        out: &SourceOutput<S::Item>,
        source: &S,
        ended: bool,
    ) -> Vec<PartitionCursor> {
        self.globals
            .iter()
            .enumerate()
            .map(|(local, &partition)| match (&self.first[local], ended) {
                (Some((position, max_seen)), false) => PartitionCursor {
                    partition,
                    position: *position,
                    max_seen: *max_seen,
                    finished: false,
                },
                _ => PartitionCursor {
                    partition,
                    position: source.position(local),
                    max_seen: out.watermarks().max_seen(local),
                    finished: ended || out.watermarks().is_finished(local),
                },
            })
            .collect()
    }
}
