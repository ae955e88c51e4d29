//! The watermarked source operator: polls records from a user function, stamps them with event
//! time, and holds the source's watermark as its capability.
//!
//! The operator knows nothing of files and reads no clock: the poll function fills a
//! [`SourceOutput`] and says when it wants to be polled again, and a clock function the caller
//! passes in gives the processing time that idle timeouts, heartbeats and the future-skew guard
//! use ([`WatermarkStrategy`]). Records of one poll are grouped by timestamp before
//! they are sent, so a poll that spans a few milliseconds becomes a few timely messages, not one
//! per record.

use std::time::Duration;

use timely::container::CapacityContainerBuilder;
use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;
use timely::dataflow::operators::generic::OutputBuilder;
use timely::dataflow::operators::Capability;
use timely::dataflow::{Scope, StreamVec};

use crate::event::Event;
use crate::trigger::{Schedule, Trigger};
use crate::watermark::{PartitionWatermarks, ProcessingTime, WatermarkStrategy};

/// What a poll function tells the source operator about its input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SourceStatus {
    /// More input may be ready now: poll again as soon as possible.
    Ready,
    /// No input is ready: poll again after this long (or earlier, if woken).
    Wait(Duration),
    /// The input is exhausted on this worker: release the watermark, which closes every window.
    Done,
    /// The job is being torn down (an error elsewhere, a stop request): stop polling but keep
    /// holding the watermark, so that nothing downstream mistakes the stop for the end of the
    /// input and closes windows early.
    Halt,
}

/// The buffer a poll function writes records into, with the partition watermarks they update.
pub struct SourceOutput<D> {
    watermarks: PartitionWatermarks,
    /// The stamps of the pending events, index for index.
    stamps: Vec<u64>,
    events: Vec<Event<D>>,
}

impl<D> SourceOutput<D> {
    /// An output for `partitions` partitions whose watermarks trail by `delay_ms`.
    pub fn new(partitions: usize, delay_ms: u64) -> Self {
        SourceOutput::with_watermarks(PartitionWatermarks::new(partitions, delay_ms))
    }

    /// An output for `partitions` partitions whose watermarks follow `strategy`.
    pub fn with_strategy(partitions: usize, strategy: &WatermarkStrategy) -> Self {
        SourceOutput::with_watermarks(PartitionWatermarks::with_strategy(partitions, strategy))
    }

    fn with_watermarks(watermarks: PartitionWatermarks) -> Self {
        SourceOutput {
            watermarks,
            stamps: Vec::new(),
            events: Vec::new(),
        }
    }

    /// Emits `data` with event time `event_time` from `partition`, and returns its stamp.
    #[inline]
    pub fn push(&mut self, partition: usize, event_time: u64, data: D) -> u64 {
        let stamp = self.watermarks.stamp(partition, event_time);
        self.stamps.push(stamp);
        self.events.push(Event::new(event_time, data));
        stamp
    }

    /// As [`SourceOutput::push`], but a record stamped below `skip_below` only advances its
    /// partition's watermark and is not sent: a replay after a snapshot at epoch `skip_below`
    /// skips the records whose effects the restored state already holds.
    #[inline(always)]
    pub fn push_from(
        &mut self,
        partition: usize,
        event_time: u64,
        data: D,
        skip_below: u64,
    ) -> u64 {
        let stamp = self.watermarks.stamp(partition, event_time);
        if stamp >= skip_below {
            self.stamps.push(stamp);
            self.events.push(Event::new(event_time, data));
        }
        stamp
    }

    /// Restores `partition`'s watermark state from a snapshot (see
    /// [`PartitionWatermarks::restore_max_seen`]).
    pub fn restore_partition(&mut self, partition: usize, max_seen: Option<u64>, finished: bool) {
        self.watermarks.restore_max_seen(partition, max_seen);
        if finished {
            self.watermarks.finish(partition);
        }
    }

    /// Sets the floor the other instances of this source give (see
    /// [`PartitionWatermarks::set_peer_floor`]).
    pub fn set_peer_floor(&mut self, floor: Option<u64>) {
        self.watermarks.set_peer_floor(floor);
    }

    /// Marks `partition` as exhausted; it stops holding the watermark back.
    pub fn finish_partition(&mut self, partition: usize) {
        self.watermarks.finish(partition);
    }

    /// Adds a partition discovered while running and returns its index.
    pub fn add_partition(&mut self) -> usize {
        self.watermarks.add_partition()
    }

    /// The watermark state, for sources that report it.
    pub fn watermarks(&self) -> &PartitionWatermarks {
        &self.watermarks
    }

    /// The number of events pushed since the last call that were too far ahead of the wall clock
    /// ([`WatermarkStrategy::max_future_skew`]): sent, but kept from the watermark.
    pub fn take_future_count(&mut self) -> u64 {
        self.watermarks.take_future_count()
    }

    /// The number of records pushed since the last send.
    pub fn pending_len(&self) -> usize {
        self.events.len()
    }

    /// Sorts the pending events by stamp (stably), if they are not in order already.
    fn sort_by_stamp(&mut self) {
        if !self.stamps.is_sorted() {
            let mut pairs: Vec<(u64, Event<D>)> =
                self.stamps.drain(..).zip(self.events.drain(..)).collect();
            pairs.sort_by_key(|(stamp, _)| *stamp);
            for (stamp, event) in pairs {
                self.stamps.push(stamp);
                self.events.push(event);
            }
        }
    }

    /// Sends the pending events, each run of equal stamps as one container at
    /// `max(stamp, floor)`. Runs leave last first: the last is the buffer itself, earlier ones
    /// are split off it, so no record is pushed one at a time.
    fn send(&mut self, mut send_run: impl FnMut(u64, &mut Vec<Event<D>>)) {
        self.sort_by_stamp();
        let polled = self.events.len();
        let mut end = polled;
        while end > 0 {
            let stamp = self.stamps[end - 1];
            let start = self.stamps[..end].partition_point(|s| *s < stamp);
            let mut run = if start == 0 {
                std::mem::take(&mut self.events)
            } else {
                self.events.split_off(start)
            };
            send_run(stamp, &mut run);
            end = start;
        }
        self.stamps.clear();
        self.events = Vec::with_capacity(polled);
    }
}

/// A source whose timestamps are event times and whose capability is the watermark.
///
/// `poll` is called whenever the operator is scheduled; it pushes records into the
/// [`SourceOutput`] and returns a [`SourceStatus`]. Each record is sent at its stamp (its event
/// time, or its partition's watermark when it arrived behind it), and the capability is
/// downgraded to the minimum watermark over unfinished partitions after each poll, or when the
/// [`Trigger`] allows it: at once (continuous); at each interval boundary of the clock's wall
/// time, to the watermark of the records read before the boundary (interval); or only at the
/// end (once). Under [`Trigger::AvailableNow`] and
/// [`Trigger::Once`], a poll that returns [`SourceStatus::Wait`] (no input ready) finishes the
/// source. When `poll`
/// returns [`SourceStatus::Done`], or every partition has finished, the capability is dropped;
/// after [`SourceStatus::Halt`] the operator is not polled again and keeps its capability.
///
/// `clock` is read once before each poll; its [`ProcessingTime`] is what the records of that
/// poll and the watermark after it see. The capability never goes back, so a record stamped
/// below it (after an idle partition resumes, or after a heartbeat moved the watermark) is sent
/// at the capability. A [`SourceStatus::Wait`] is shortened so that the source is polled again
/// when an idle timeout or the heartbeat may move the watermark
/// ([`PartitionWatermarks::wake_after`]).
///
/// # Examples
/// ```
/// use std::time::Duration;
/// use timely::dataflow::operators::{Capture, capture::Extract};
/// use tideflow_operators::source::{watermarked_source, SourceStatus};
/// use tideflow_operators::watermark::{ProcessingTime, WatermarkStrategy};
/// use tideflow_operators::Trigger;
///
/// let captured = timely::example(|scope| {
///     let mut input = vec![3_000u64, 1_000, 5_000, 4_500].into_iter();
///     let strategy = WatermarkStrategy::bounded_delay(Duration::from_millis(1_000));
///     let clock = ProcessingTime::default; // no processing-time rule in `strategy`
///     let trigger = Trigger::Continuous;
///     watermarked_source(scope, "Numbers", 1, strategy, trigger, clock, move |out| {
///         match input.next() {
///             Some(t) => { out.push(0, t, t / 1_000); SourceStatus::Ready }
///             None => SourceStatus::Done,
///         }
///     })
///     .capture()
/// });
/// let mut times: Vec<(u64, u64)> = captured
///     .extract()
///     .into_iter()
///     .flat_map(|(stamp, events)| events.into_iter().map(move |e| (stamp, e.time)))
///     .collect();
/// times.sort();
/// // 1_000 arrived behind the watermark 3_000 - 1_000: it is sent at 2_000, keeping its time.
/// assert_eq!(times, vec![(2_000, 1_000), (3_000, 3_000), (4_500, 4_500), (5_000, 5_000)]);
/// ```
pub fn watermarked_source<'scope, D, C, P>(
    scope: Scope<'scope, u64>,
    name: &str,
    partitions: usize,
    strategy: WatermarkStrategy,
    trigger: Trigger,
    clock: C,
    poll: P,
) -> StreamVec<'scope, u64, Event<D>>
where
    D: 'static,
    C: FnMut() -> ProcessingTime + 'static,
    P: FnMut(&mut SourceOutput<D>) -> SourceStatus + 'static,
{
    watermarked_source_with_frontier(scope, name, partitions, strategy, trigger, clock, poll).0
}

/// A source's stream of events, and a stream without data that has the source's frontier.
pub type WithFrontier<'scope, D> = (StreamVec<'scope, u64, Event<D>>, StreamVec<'scope, u64, ()>);

/// [`watermarked_source`], and a second stream that carries no data but has the same frontier
/// (the source's capability): a probe on it follows the source's progress without a probe
/// operator on the data path, which would add progress traffic for every batch.
pub fn watermarked_source_with_frontier<'scope, D, C, P>(
    scope: Scope<'scope, u64>,
    name: &str,
    partitions: usize,
    strategy: WatermarkStrategy,
    trigger: Trigger,
    mut clock: C,
    mut poll: P,
) -> WithFrontier<'scope, D>
where
    D: 'static,
    C: FnMut() -> ProcessingTime + 'static,
    P: FnMut(&mut SourceOutput<D>) -> SourceStatus + 'static,
{
    let mut builder = OperatorBuilder::new(name.to_owned(), scope);
    let info = builder.operator_info();
    let (output, stream) = builder.new_output();
    let mut output = OutputBuilder::<_, CapacityContainerBuilder<Vec<Event<D>>>>::from(output);
    let (_frontier_output, frontier) = builder.new_output::<Vec<()>>();
    builder.build(move |mut capabilities| {
        // One capability per output: the frontier output's moves with the data output's.
        let mut frontier_capability = capabilities.pop();
        let mut capability = capabilities.pop();
        let activator = scope.activator_for(info.address);
        let mut out = SourceOutput::with_strategy(partitions, &strategy);
        let mut schedule = Schedule::new(trigger);
        move |_frontiers| {
            let mut output = output.activate();
            let output = &mut output;
            {
                let Some(cap) = capability.as_mut() else {
                    return;
                };
                let now = clock();
                out.watermarks.set_now(now);
                // At an interval boundary the capability takes the watermark of what was read
                // before it: records read from now on belong to the next batch.
                if schedule.boundary_due(now.wall_ms) {
                    if let Some(watermark) = out.watermarks.watermark() {
                        if watermark > *cap.time() {
                            cap.downgrade(&watermark);
                            downgrade(&mut frontier_capability, watermark);
                        }
                    }
                }
                let mut status = poll(&mut out);

                if !out.events.is_empty() {
                    let floor = *cap.time();
                    out.send(|stamp, run| {
                        output
                            .session(&cap.delayed(&stamp.max(floor)))
                            .give_container(run)
                    });
                }

                if status == SourceStatus::Halt {
                    return;
                }
                if trigger.finishes_when_idle() && matches!(status, SourceStatus::Wait(_)) {
                    status = SourceStatus::Done;
                }
                let watermark = out.watermarks.watermark();
                match (status, watermark) {
                    (SourceStatus::Done, _) | (_, None) => {
                        capability = None;
                        frontier_capability = None;
                    }
                    (status, Some(watermark)) => {
                        let mut held_back = false;
                        if watermark > *cap.time() {
                            if schedule.follows_polls() {
                                cap.downgrade(&watermark);
                                downgrade(&mut frontier_capability, watermark);
                            } else {
                                held_back = true;
                            }
                        }
                        match status {
                            SourceStatus::Wait(after) => {
                                let mut wake =
                                    out.watermarks.wake_after().map_or(after, |w| w.min(after));
                                if held_back {
                                    if let Some(release) = schedule.wait(now.wall_ms) {
                                        wake = wake.min(release);
                                    }
                                }
                                activator.activate_after(wake)
                            }
                            _ => activator.activate(),
                        }
                    }
                }
            }
        }
    });
    (stream, frontier)
}

/// Moves the frontier output's capability to `time` with the data output's.
fn downgrade(capability: &mut Option<Capability<u64>>, time: u64) {
    if let Some(capability) = capability {
        capability.downgrade(&time);
    }
}
