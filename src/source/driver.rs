//! The source driver: the runtime side of reading a [`Source`] into a stream, apart from the
//! API builder that asks for it ([`EventTimeBuilder::with_watermark`](super::EventTimeBuilder)).
//!
//! For one source instance on one worker, [`SourceDriver::drive`] starts the source, seeks it
//! to where a snapshot resumes ([`Replay`]), and builds the operator (`watermarked_source_with_frontier` of
//! `tideflow-operators`) that polls it: each poll reads a batch, stamps each record with its
//! event time, counts records, skipped and dead-lettered records and future events into the
//! job context, hands the source's part to the snapshot coordinator when one is due, and
//! stores the source's watermark for progress reports. The clock the watermark strategy reads
//! is made here too.
//!
//! Layer (docs/ARCHITECTURE.md "Layers"): it imports the job context, the checkpoint
//! coordinator and the source traits, not the API (`Flow`, `Stream`) nor the runtime.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tideflow_operators::source::{watermarked_source_with_frontier, SourceOutput, WithFrontier};
use tideflow_operators::watermark::{ProcessingTime, WatermarkStrategy};
use tideflow_operators::Trigger;
use timely::dataflow::Scope;

use super::{Position, Source, SourceBatch, SourceContext, SourceStatus};
use crate::checkpoint::{Checkpointer, PartitionCursor, SourceHook};
use crate::context::{PartitionGauges, PeerFloor, SharedJob, WatermarkSlot};
use crate::error::Error;

/// How soon a source polls again while the processes of a cluster agree on a snapshot's epoch
/// (one round trip between processes).
const FROZEN_POLL: Duration = Duration::from_micros(200);

/// What a source instance needs of its job to be driven.
pub(crate) struct SourceDriver {
    /// Where the instance runs.
    pub(crate) context: SourceContext,
    /// When the watermark advances, and whether the source ends once nothing is ready.
    pub(crate) trigger: Trigger,
    /// The job context the instance reports into and stops with.
    pub(crate) shared: Arc<SharedJob>,
    /// The snapshot coordinator, when the job takes snapshots.
    pub(crate) checkpointer: Option<Arc<Checkpointer>>,
    /// Under an idle timeout: the watermarks of this source's other instances.
    pub(crate) peer_floor: Option<PeerFloor>,
}

impl SourceDriver {
    /// Starts `source` on this worker and returns the stream of its records, each stamped
    /// with `event_time`, under the watermarks of `strategy`. A failure to start or to resume
    /// from the snapshot becomes the job's error (the stream then ends without records).
    pub(crate) fn drive<'scope, S, F>(
        self,
        scope: Scope<'scope, u64>,
        mut source: S,
        event_time: F,
        strategy: WatermarkStrategy,
    ) -> WithFrontier<'scope, S::Item>
    where
        S: Source,
        F: Fn(&S::Item) -> u64 + 'static,
    {
        let SourceDriver {
            context,
            trigger,
            shared,
            checkpointer,
            peer_floor,
        } = self;
        if trigger.finishes_when_idle() {
            source.on_available_now();
        }
        let started = source.on_start(&context);
        let partitions = if started.is_ok() {
            if let Some(gauges) = PartitionGauges::of(&shared) {
                source.report_offsets(&gauges);
            }
            source.partitions()
        } else {
            0
        };
        if let Err(error) = started {
            shared.fail(error);
        }
        let replay = match &checkpointer {
            Some(checkpointer) => Replay::new(checkpointer, &context, &mut source, partitions)
                .unwrap_or_else(|error| {
                    shared.fail(error);
                    None
                }),
            None => None,
        };
        shared.graceful.source_built();
        let mut poller = Poller {
            batch: SourceBatch::new(),
            replay,
            finishes_when_idle: trigger.finishes_when_idle(),
            trigger,
            stopped: false,
            held: None,
            // Progress reports (src/metrics): this source instance's watermark.
            watermark_slot: shared.metrics.watermark_slot(),
            peer_floor,
            source,
            event_time,
            shared,
        };
        watermarked_source_with_frontier(
            scope,
            "Source",
            partitions,
            strategy,
            trigger,
            clock(),
            move |out| poller.poll(out),
        )
    }
}

/// The clock a source's watermark strategy reads before each poll: processing time since the
/// source started, and the system clock.
fn clock() -> impl FnMut() -> ProcessingTime + 'static {
    let started_at = Instant::now();
    move || ProcessingTime {
        monotonic_ms: u64::try_from(started_at.elapsed().as_millis()).unwrap_or(u64::MAX),
        // A system clock before 1970 reads as the epoch: nothing is then "in the future".
        wall_ms: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| {
                u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
            }),
    }
}

/// One source instance being polled, with what it reports into.
struct Poller<S: Source, F> {
    source: S,
    event_time: F,
    /// The batch each read fills, reused.
    batch: SourceBatch<S::Item>,
    /// The instance's part in snapshots, when the job takes them.
    replay: Option<Replay>,
    /// Under available-now and once, a source with nothing ready has ended (the operator
    /// finishes it).
    finishes_when_idle: bool,
    trigger: Trigger,
    /// Whether the instance has stopped reading for a graceful stop.
    stopped: bool,
    /// What the read of a batch that is held returned: in a cluster, a batch is held while
    /// the processes agree on a snapshot's epoch, and sent once they have.
    held: Option<Result<SourceStatus, Error>>,
    watermark_slot: Option<Arc<WatermarkSlot>>,
    /// Under an idle timeout: the watermarks of this source's other instances, which this one
    /// rises to while all its partitions are idle.
    peer_floor: Option<PeerFloor>,
    shared: Arc<SharedJob>,
}

impl<S, F> Poller<S, F>
where
    S: Source,
    F: Fn(&S::Item) -> u64,
{
    /// Reads what is ready into `out` and says when to poll again.
    #[inline]
    fn poll(&mut self, out: &mut SourceOutput<S::Item>) -> SourceStatus {
        let shared = &self.shared;
        if shared.stopped() {
            return SourceStatus::Halt;
        }
        let status = match self.held.take() {
            Some(status) => status,
            None => {
                if self.replay.as_ref().is_some_and(Replay::frozen) {
                    return SourceStatus::Wait(FROZEN_POLL);
                }
                if shared.graceful.requested() {
                    if let Some(status) = self.stop() {
                        return status;
                    }
                }
                self.source.read(&mut self.batch)
            }
        };
        let shared = &self.shared;
        let batch = &mut self.batch;
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
        let ended = matches!(status, Ok(SourceStatus::Done))
            || (self.finishes_when_idle && matches!(status, Ok(SourceStatus::Wait(_))));
        if ended && !self.stopped {
            // An instance whose input ended reads no more: for a graceful stop it has stopped
            // (it is not polled again, so `stop` would never count it).
            self.stopped = true;
            shared.graceful.source_stopped();
        }
        let sent = match self.replay.as_mut() {
            None => {
                let sent = batch.records.len() as u64;
                for (partition, record) in batch.records.drain(..) {
                    out.push(partition, (self.event_time)(&record), record);
                }
                for partition in batch.finished.drain(..) {
                    out.finish_partition(partition);
                }
                sent
            }
            Some(replay) => match replay.push(batch, out, &self.event_time, &self.source, ended) {
                Ok(Some(sent)) => sent,
                Ok(None) => {
                    self.held = Some(status);
                    return SourceStatus::Wait(FROZEN_POLL);
                }
                Err(error) => {
                    shared.fail(error);
                    return SourceStatus::Halt;
                }
            },
        };
        batch.positions.clear();
        shared.records_in.fetch_add(sent, Ordering::Relaxed);
        let future = out.take_future_count();
        if future > 0 {
            shared.future_events.fetch_add(future, Ordering::Relaxed);
        }
        if let Some(peers) = &self.peer_floor {
            let marks = out.watermarks();
            let own = if ended { None } else { marks.watermark() };
            let floor = peers.exchange(own, marks.all_idle());
            out.set_peer_floor(floor);
        }
        if let Some(slot) = &self.watermark_slot {
            slot.observe(sent, out.watermarks(), ended);
        }
        status.unwrap_or_else(|error| {
            shared.fail(error);
            SourceStatus::Halt
        })
    }
}

impl<S: Source, F> Poller<S, F> {
    /// Under a graceful stop ([`StopHandle`](crate::StopHandle)): whether to stop reading now,
    /// and what to tell the operator then. Without snapshots the instance stops at once; with
    /// them, once it has saved its part of the snapshot the job stops at (until then it reads
    /// on, so that its watermark passes that epoch), except under [`Trigger::Once`], whose
    /// watermark stays at the start until the end, so no snapshot completes before it: it
    /// stops at once (and the job at its last snapshot, if any).
    #[cold]
    fn stop(&mut self) -> Option<SourceStatus> {
        if !self.stopped {
            let ready = match &mut self.replay {
                Some(replay) if self.trigger != Trigger::Once => match replay.stop_saved() {
                    Ok(saved) => saved,
                    Err(error) => {
                        self.shared.fail(error);
                        return Some(SourceStatus::Halt);
                    }
                },
                _ => true,
            };
            if !ready {
                return None;
            }
            self.stopped = true;
            self.shared.graceful.source_stopped();
        }
        // An interval trigger moves the capability up to the watermark at its next boundary
        // only while the operator is scheduled: it is, with nothing more read. Under
        // available-now, waiting would end the source (closing every window): it halts.
        Some(match self.trigger {
            Trigger::Interval(every) => SourceStatus::Wait(every),
            _ => SourceStatus::Halt,
        })
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
    /// how many records were sent, or `None` if the processes of a cluster are agreeing on a
    /// snapshot's epoch: nothing was sent, and the batch is pushed again later.
    fn push<S: Source, F: Fn(&S::Item) -> u64>(
        &mut self,
        batch: &mut SourceBatch<S::Item>,
        out: &mut SourceOutput<S::Item>,
        event_time: &F,
        source: &S,
        ended: bool,
    ) -> Result<Option<u64>, Error> {
        if let Some(states) = self.restore.take() {
            for (local, (max_seen, finished)) in states.into_iter().enumerate() {
                out.restore_partition(local, max_seen, finished);
            }
        }
        let checkpointer = Arc::clone(self.hook.checkpointer_arc());
        let polled = checkpointer.poll(|pending| {
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
        let Some((sent, due)) = polled else {
            return Ok(None);
        };
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
        Ok(Some(sent))
    }

    /// In a cluster, whether the processes are agreeing on a snapshot's epoch: nothing may be
    /// sent until they have.
    fn frozen(&self) -> bool {
        self.hook.checkpointer().frozen()
    }

    /// Under a graceful stop: whether this instance has saved its part of the snapshot the
    /// job stops at, or ended (the snapshot is asked for first).
    fn stop_saved(&mut self) -> Result<bool, Error> {
        let epoch = self.hook.checkpointer().stop_snapshot()?;
        Ok(self.finished || epoch.is_some_and(|epoch| self.saved.is_some_and(|s| s >= epoch)))
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
