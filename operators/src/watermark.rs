//! Watermark arithmetic: bounded out-of-orderness per source partition, minimum over partitions,
//! and the three processing-time rules (idle partitions, heartbeat, future skew).
//!
//! A source partition (a file, a generator stride, a Kafka partition) has seen event times up to
//! `max_seen`; its watermark is `max_seen - delay`. A source's watermark is the minimum over its
//! partitions that have not finished; it is held as the source operator's capability, so it is
//! the frontier downstream. A record is stamped with the larger of its event time and its
//! partition's watermark *before* the record, so the stamp depends only on the records before it
//! in its partition, never on how partitions interleave or on timing.
//!
//! This crate reads no clock: processing time comes in as a [`ProcessingTime`], given to
//! [`PartitionWatermarks::set_now`] by the caller (the source operator reads it from the clock
//! function it is given). The rules that use it ([`WatermarkStrategy::idle_timeout`],
//! [`WatermarkStrategy::heartbeat`], [`WatermarkStrategy::max_future_skew`]) are all off by
//! default; with them off, nothing here depends on timing.

use std::time::Duration;

/// Processing time, read from a clock by the caller and handed in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProcessingTime {
    /// A monotonic clock in milliseconds, from any origin (e.g. since the job started): measures
    /// how long a partition or the whole input has been quiet.
    pub monotonic_ms: u64,
    /// The wall clock in milliseconds since the Unix epoch: what event times are compared with
    /// by the future-skew guard.
    pub wall_ms: u64,
}

/// How a source derives its watermark.
///
/// # Examples
/// ```
/// use std::time::Duration;
/// use tideflow_operators::watermark::WatermarkStrategy;
/// let strategy = WatermarkStrategy::bounded_delay(Duration::from_secs(5))
///     .with_idle_timeout(Duration::from_secs(30))
///     .with_heartbeat(Duration::from_secs(1))
///     .with_max_future_skew(Duration::from_secs(60));
/// assert_eq!(strategy.delay_ms(), 5_000);
/// assert_eq!(strategy.heartbeat, Some(Duration::from_secs(1)));
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WatermarkStrategy {
    /// How far behind the largest event time seen in a partition its watermark stays: the
    /// out-of-orderness the stream is allowed. By default, zero (events in order).
    pub delay: Duration,
    /// A partition that has produced no record for this long (processing time; a partition that
    /// never produced one counts from the source's start) is *idle*: it is left out of the
    /// minimum, so it stops holding the watermark back, until its next record. If every
    /// unfinished partition is idle, the watermark is the largest of their watermarks, or the
    /// peer floor if that is larger: the smallest watermark of the other instances of the same
    /// source in this process that are not all idle, or if all are, the largest of theirs
    /// ([`PartitionWatermarks::set_peer_floor`]), so that a worker whose partitions are all
    /// quiet does not hold back the windows of the others (Flink's idle source subtask).
    ///
    /// This makes lateness depend on timing for the records of a partition that was idle: the
    /// watermark may have moved past them meanwhile. Such a record is stamped as always (its
    /// event time or its partition's watermark, whichever is larger) and, like every record, never
    /// below the source's current watermark, so it is late for the windows that closed while its
    /// partition was idle (Flink's idleness has the same property). By default, `None`: a quiet
    /// partition holds the watermark for as long as it is quiet.
    pub idle_timeout: Option<Duration>,
    /// Opt-in processing-time heartbeat, so that windows close on a quiet stream. Once the source
    /// has produced its first record, if it then produces none (in any partition) for `quiet >=
    /// heartbeat` of processing time, its watermark is `W + quiet`, where `W` is the watermark
    /// the partitions' event times give (the usual rule): event time is assumed to follow the
    /// wall clock while the input is quiet. It is re-evaluated at least every `heartbeat` (the
    /// source is polled again by then). The next record ends the quiet; the watermark never goes
    /// back, so records stamped below the advanced watermark are sent at it (late for the windows
    /// that closed meanwhile): with a heartbeat, lateness depends on timing. By default, `None`:
    /// the watermark moves only with event time.
    pub heartbeat: Option<Duration>,
    /// Future-timestamp guard: an event whose time is more than this far ahead of the wall clock
    /// is still sent (at its event time, as usual) but does not raise its partition's
    /// `max_seen`, so a clock gone wrong in one producer cannot push the watermark into the
    /// future and make every later record late. Such events are counted (see
    /// [`PartitionWatermarks::take_future_count`]). By default, `None`: no guard.
    pub max_future_skew: Option<Duration>,
    /// Stamps and the watermark advance in whole steps of this many milliseconds: a record's
    /// stamp, and the source's watermark, are rounded down to a multiple of it. Timely's
    /// progress tracking costs per distinct stamp per message, so a sparse stream (a few records
    /// per millisecond of event time) sends many small messages at exact stamps; with a
    /// granularity `G`, one poll's records mostly share one stamp and travel in one container.
    ///
    /// It changes no result when every boundary downstream compares against is a multiple of
    /// `G`: for `x` a stamp or watermark and `c` a multiple of `G`, `floor_G(x) >= c` exactly
    /// when `x >= c`. That holds for aligned (tumbling and sliding) windows in append mode when
    /// `G` divides the size, the slide and the allowed lateness: lateness and closing are the
    /// same, record for record. It does not hold for sessions (their ends are any millisecond),
    /// nor for update mode (its intermediate rows follow each stamp), nor where a stamp is
    /// shown (the late output's watermark). By default, `None`: exact stamps.
    pub granularity: Option<Duration>,
}

impl WatermarkStrategy {
    /// Watermarks that trail the largest event time seen by `delay`, with no processing-time
    /// rules.
    pub fn bounded_delay(delay: Duration) -> Self {
        WatermarkStrategy {
            delay,
            ..WatermarkStrategy::default()
        }
    }

    /// Sets [`WatermarkStrategy::idle_timeout`]. By default, no idle timeout.
    pub fn with_idle_timeout(mut self, timeout: Duration) -> Self {
        self.idle_timeout = Some(timeout);
        self
    }

    /// Sets [`WatermarkStrategy::heartbeat`]. By default, no heartbeat.
    pub fn with_heartbeat(mut self, interval: Duration) -> Self {
        self.heartbeat = Some(interval);
        self
    }

    /// Sets [`WatermarkStrategy::max_future_skew`]. By default, no guard.
    pub fn with_max_future_skew(mut self, skew: Duration) -> Self {
        self.max_future_skew = Some(skew);
        self
    }

    /// Sets [`WatermarkStrategy::granularity`]. By default, exact stamps.
    pub fn with_granularity(mut self, granularity: Duration) -> Self {
        self.granularity = Some(granularity);
        self
    }

    /// The delay in whole milliseconds (saturating).
    pub fn delay_ms(&self) -> u64 {
        millis(self.delay)
    }
}

/// A duration in whole milliseconds (saturating).
fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

impl From<Duration> for WatermarkStrategy {
    fn from(delay: Duration) -> Self {
        WatermarkStrategy::bounded_delay(delay)
    }
}

/// Per-partition watermark state of one source instance.
///
/// # Examples
/// ```
/// use tideflow_operators::watermark::PartitionWatermarks;
/// let mut wm = PartitionWatermarks::new(2, 100);
/// assert_eq!(wm.stamp(0, 1_000), 1_000);   // first record of partition 0
/// assert_eq!(wm.stamp(0, 850), 900);       // behind its partition's watermark (1000 - 100)
/// assert_eq!(wm.watermark(), Some(0));     // partition 1 has seen nothing yet
/// assert_eq!(wm.stamp(1, 2_000), 2_000);
/// assert_eq!(wm.watermark(), Some(900));
/// wm.finish(0);
/// assert_eq!(wm.watermark(), Some(1_900));
/// wm.finish(1);
/// assert_eq!(wm.watermark(), None);        // every partition done: the input is over
/// ```
#[derive(Clone, Debug)]
pub struct PartitionWatermarks {
    delay: u64,
    idle_timeout: Option<u64>,
    heartbeat: Option<u64>,
    max_future_skew: Option<u64>,
    /// Stamps and watermarks are rounded down to a multiple of this (at least 1).
    granule: u64,
    partitions: Vec<PartitionState>,
    /// The processing time last given to [`PartitionWatermarks::set_now`], if any.
    now: Option<ProcessingTime>,
    /// The monotonic time first given: partitions that never produced a record are quiet since.
    started_ms: u64,
    /// The monotonic time of the source's last record (any partition), if any.
    last_record_ms: Option<u64>,
    /// Events kept from the watermark by the future-skew guard, not yet taken.
    future_count: u64,
    /// The floor the other instances of this source give, if any: an all-idle instance's
    /// watermark rises to it.
    peer_floor: Option<u64>,
}

#[derive(Clone, Copy, Debug)]
struct PartitionState {
    /// Largest event time seen, or `None` before the first record.
    max_seen: Option<u64>,
    /// The monotonic time of the partition's last record (or of its creation, for one added
    /// while running); `None` means since the clock was first set.
    last_active_ms: Option<u64>,
    finished: bool,
}

impl PartitionState {
    #[inline]
    fn watermark(&self, delay: u64) -> u64 {
        self.max_seen.map_or(0, |m| m.saturating_sub(delay))
    }
}

impl PartitionWatermarks {
    /// State for `partitions` partitions with out-of-orderness `delay_ms` and no
    /// processing-time rules.
    pub fn new(partitions: usize, delay_ms: u64) -> Self {
        let strategy = WatermarkStrategy::bounded_delay(Duration::from_millis(delay_ms));
        PartitionWatermarks::with_strategy(partitions, &strategy)
    }

    /// State for `partitions` partitions following `strategy`.
    pub fn with_strategy(partitions: usize, strategy: &WatermarkStrategy) -> Self {
        let fresh = PartitionState {
            max_seen: None,
            last_active_ms: None,
            finished: false,
        };
        PartitionWatermarks {
            delay: strategy.delay_ms(),
            idle_timeout: strategy.idle_timeout.map(millis),
            heartbeat: strategy.heartbeat.map(millis),
            max_future_skew: strategy.max_future_skew.map(millis),
            granule: strategy.granularity.map_or(1, millis).max(1),
            partitions: vec![fresh; partitions],
            now: None,
            started_ms: 0,
            last_record_ms: None,
            future_count: 0,
            peer_floor: None,
        }
    }

    /// Sets the current processing time, used by the records stamped next and by
    /// [`PartitionWatermarks::watermark`]. The source operator calls it before each poll. The
    /// monotonic part never goes back (an earlier value is ignored). Until the first call, the
    /// processing-time rules do nothing.
    pub fn set_now(&mut self, now: ProcessingTime) {
        let monotonic_ms = match self.now {
            None => {
                self.started_ms = now.monotonic_ms;
                now.monotonic_ms
            }
            Some(before) => before.monotonic_ms.max(now.monotonic_ms),
        };
        self.now = Some(ProcessingTime {
            monotonic_ms,
            wall_ms: now.wall_ms,
        });
    }

    /// Adds a partition (a new file in a watched directory, say) and returns its index. Until it
    /// sees its first record it holds the watermark where it is (until it is idle, with an idle
    /// timeout: its quiet counts from now).
    pub fn add_partition(&mut self) -> usize {
        self.partitions.push(PartitionState {
            max_seen: None,
            last_active_ms: self.now.map(|now| now.monotonic_ms),
            finished: false,
        });
        self.partitions.len() - 1
    }

    /// The number of partitions, finished or not.
    pub fn len(&self) -> usize {
        self.partitions.len()
    }

    /// Whether there are no partitions at all.
    pub fn is_empty(&self) -> bool {
        self.partitions.is_empty()
    }

    /// The largest event time `partition` has seen (that counts for its watermark), if any.
    pub fn max_seen(&self, partition: usize) -> Option<u64> {
        self.partitions[partition].max_seen
    }

    /// Whether `partition` has finished.
    pub fn is_finished(&self, partition: usize) -> bool {
        self.partitions[partition].finished
    }

    /// Restores `partition`'s largest event time seen, as it was when a snapshot was taken, so
    /// that a replay stamps its records as the first run did.
    pub fn restore_max_seen(&mut self, partition: usize, max_seen: Option<u64>) {
        self.partitions[partition].max_seen = max_seen;
    }

    /// The watermark of one partition: `max_seen - delay`, or 0 before its first record.
    pub fn partition_watermark(&self, partition: usize) -> u64 {
        self.partitions[partition].watermark(self.delay)
    }

    /// Records an event of `partition` and returns its stamp: the larger of its event time and
    /// the partition's watermark before it, rounded down to the granularity. A stamp above the event time marks a late arrival.
    /// With a future-skew guard, an event too far ahead of the wall clock is stamped the same way
    /// but leaves `max_seen` alone, and is counted.
    ///
    /// # Panics
    /// If `partition` is out of range: the source broke its own partition numbering.
    #[inline]
    pub fn stamp(&mut self, partition: usize, event_time: u64) -> u64 {
        let timed = self.now.is_some() && self.uses_processing_time();
        let state = &mut self.partitions[partition];
        let before = state.watermark(self.delay);
        if !timed {
            // The hot path: no processing-time rule is on.
            state.max_seen = Some(state.max_seen.map_or(event_time, |m| m.max(event_time)));
            return self.round(event_time.max(before));
        }
        let stamp = self.stamp_timed(partition, event_time, before);
        self.round(stamp)
    }

    /// `time` rounded down to the granularity.
    #[inline(always)]
    fn round(&self, time: u64) -> u64 {
        if self.granule == 1 {
            time
        } else {
            time - time % self.granule
        }
    }

    /// Whether any processing-time rule is on.
    #[inline]
    fn uses_processing_time(&self) -> bool {
        self.idle_timeout.is_some() || self.heartbeat.is_some() || self.max_future_skew.is_some()
    }

    /// [`PartitionWatermarks::stamp`] with the processing-time rules: the future-skew guard, and
    /// the activity times idleness and the heartbeat read.
    #[cold]
    fn stamp_timed(&mut self, partition: usize, event_time: u64, before: u64) -> u64 {
        let state = &mut self.partitions[partition];
        let future = match (self.max_future_skew, self.now) {
            (Some(skew), Some(now)) => event_time > now.wall_ms.saturating_add(skew),
            _ => false,
        };
        if future {
            self.future_count += 1;
        } else {
            state.max_seen = Some(state.max_seen.map_or(event_time, |m| m.max(event_time)));
        }
        if let Some(now) = self.now {
            state.last_active_ms = Some(now.monotonic_ms);
            self.last_record_ms = Some(now.monotonic_ms);
        }
        event_time.max(before)
    }

    /// Marks a partition as exhausted: it no longer holds the watermark back.
    pub fn finish(&mut self, partition: usize) {
        self.partitions[partition].finished = true;
    }

    /// How long `partition` has been quiet (no record), if processing time is known.
    fn quiet_ms(&self, partition: &PartitionState) -> Option<u64> {
        let now = self.now?.monotonic_ms;
        Some(now.saturating_sub(partition.last_active_ms.unwrap_or(self.started_ms)))
    }

    fn is_idle(&self, partition: &PartitionState) -> bool {
        match (self.idle_timeout, self.quiet_ms(partition)) {
            (Some(timeout), Some(quiet)) => quiet >= timeout,
            _ => false,
        }
    }

    /// Whether every unfinished partition is idle (and there is one): the instance's watermark
    /// then follows the peer floor, and it should not hold its peers back.
    pub fn all_idle(&self) -> bool {
        let mut unfinished = self.partitions.iter().filter(|p| !p.finished).peekable();
        unfinished.peek().is_some() && unfinished.all(|p| self.is_idle(p))
    }

    /// Sets the floor the other instances of this source give (the smallest watermark of those
    /// that are not all idle, else the largest of the all-idle ones; `None` if there is none):
    /// while every unfinished partition of this instance is idle, its watermark is at least
    /// that.
    pub fn set_peer_floor(&mut self, floor: Option<u64>) {
        self.peer_floor = floor;
    }

    /// How long the whole source has been quiet since its last record, if it has had one and
    /// processing time is known.
    fn source_quiet_ms(&self) -> Option<u64> {
        Some(self.now?.monotonic_ms.saturating_sub(self.last_record_ms?))
    }

    /// The source's watermark at the current processing time, or `None` once every partition
    /// has finished (the input is over and every window may close).
    ///
    /// It is the minimum over unfinished partitions that are not idle (the largest over the
    /// idle ones if all are), plus the quiet time once the heartbeat applies (see
    /// [`WatermarkStrategy`]). Without processing-time rules it never decreases; with them it
    /// may (an idle partition resumes, a record ends a heartbeat's quiet), and the source
    /// operator holds its capability at the largest value it has seen.
    pub fn watermark(&self) -> Option<u64> {
        let mut active_min: Option<u64> = None;
        let mut idle_max: Option<u64> = None;
        for partition in self.partitions.iter().filter(|p| !p.finished) {
            let watermark = partition.watermark(self.delay);
            if self.is_idle(partition) {
                idle_max = Some(idle_max.map_or(watermark, |m| m.max(watermark)));
            } else {
                active_min = Some(active_min.map_or(watermark, |m| m.min(watermark)));
            }
        }
        let watermark = match active_min {
            Some(active) => active,
            None => idle_max?.max(self.peer_floor.unwrap_or(0)),
        };
        Some(self.round(match (self.heartbeat, self.source_quiet_ms()) {
            (Some(heartbeat), Some(quiet)) if quiet >= heartbeat => watermark.saturating_add(quiet),
            _ => watermark,
        }))
    }

    /// How soon, with no new record, the watermark may next change because of processing time
    /// (a partition turning idle, the heartbeat): the source must be polled again by then.
    /// `None` when no processing-time rule is pending. Never zero.
    pub fn wake_after(&self) -> Option<Duration> {
        let mut next: Option<u64> = None;
        let mut earliest = |ms: u64| next = Some(next.map_or(ms, |n| n.min(ms)));
        if let Some(timeout) = self.idle_timeout {
            for partition in self.partitions.iter().filter(|p| !p.finished) {
                if let Some(quiet) = self.quiet_ms(partition).filter(|q| *q < timeout) {
                    earliest(timeout - quiet);
                }
            }
        }
        if let (Some(heartbeat), Some(quiet)) = (self.heartbeat, self.source_quiet_ms()) {
            earliest(if quiet < heartbeat {
                heartbeat - quiet
            } else {
                heartbeat
            });
        }
        next.map(|ms| Duration::from_millis(ms.max(1)))
    }

    /// The number of events the future-skew guard kept from the watermark since the last call.
    pub fn take_future_count(&mut self) -> u64 {
        std::mem::take(&mut self.future_count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Processing time `ms` on both clocks (the wall clock only matters to the skew guard).
    fn at(ms: u64) -> ProcessingTime {
        ProcessingTime {
            monotonic_ms: ms,
            wall_ms: ms,
        }
    }

    fn strategy(delay_ms: u64) -> WatermarkStrategy {
        WatermarkStrategy::bounded_delay(Duration::from_millis(delay_ms))
    }

    #[test]
    fn an_idle_partition_stops_holding_the_watermark_back_until_it_produces() {
        let rules = strategy(0).with_idle_timeout(Duration::from_millis(100));
        let mut wm = PartitionWatermarks::with_strategy(2, &rules);
        wm.set_now(at(0));
        assert_eq!(wm.stamp(0, 1_000), 1_000);
        wm.set_now(at(90));
        assert_eq!(wm.stamp(0, 2_000), 2_000);
        assert_eq!(
            wm.watermark(),
            Some(0),
            "partition 1 is quiet for 90 ms only"
        );
        assert_eq!(wm.wake_after(), Some(Duration::from_millis(10)));
        wm.set_now(at(100));
        assert_eq!(
            wm.watermark(),
            Some(2_000),
            "partition 1 idle since the start"
        );
        wm.set_now(at(250));
        assert_eq!(
            wm.watermark(),
            Some(2_000),
            "both idle: the largest watermark"
        );
        assert_eq!(wm.wake_after(), None);
        // Partition 1 resumes: stamped by its own history (the operator clamps it to the
        // capability), and it holds the watermark again.
        wm.set_now(at(300));
        assert_eq!(wm.stamp(1, 500), 500);
        assert_eq!(wm.watermark(), Some(500));
    }

    #[test]
    fn an_all_idle_instance_rises_to_its_peers_floor() {
        let rules = strategy(0).with_idle_timeout(Duration::from_millis(100));
        let mut wm = PartitionWatermarks::with_strategy(1, &rules);
        wm.set_now(at(0));
        wm.set_peer_floor(Some(5_000));
        assert!(!wm.all_idle());
        assert_eq!(
            wm.watermark(),
            Some(0),
            "not idle yet: the floor does not apply"
        );
        wm.set_now(at(100));
        assert!(wm.all_idle());
        assert_eq!(wm.watermark(), Some(5_000), "idle: the peers' floor");
        wm.set_peer_floor(None);
        assert_eq!(wm.watermark(), Some(0), "no active peer: its own");
        // A record ends the idleness: the partition's own watermark again.
        wm.set_peer_floor(Some(5_000));
        wm.stamp(0, 700);
        assert!(!wm.all_idle());
        assert_eq!(wm.watermark(), Some(700));
        wm.finish(0);
        assert!(!wm.all_idle(), "nothing unfinished is not idle");
        assert_eq!(wm.watermark(), None);
    }

    #[test]
    fn without_a_clock_or_timeout_a_quiet_partition_holds_the_watermark() {
        let mut wm = PartitionWatermarks::with_strategy(2, &strategy(0));
        wm.set_now(at(0));
        wm.stamp(0, 1_000);
        wm.set_now(at(1_000_000));
        assert_eq!(wm.watermark(), Some(0));
        assert_eq!(wm.wake_after(), None);
        let rules = strategy(0).with_idle_timeout(Duration::from_millis(1));
        let mut unclocked = PartitionWatermarks::with_strategy(2, &rules);
        unclocked.stamp(0, 1_000);
        assert_eq!(
            unclocked.watermark(),
            Some(0),
            "no processing time given yet"
        );
    }

    #[test]
    fn an_added_partition_is_quiet_from_when_it_was_added() {
        let rules = strategy(0).with_idle_timeout(Duration::from_millis(100));
        let mut wm = PartitionWatermarks::with_strategy(1, &rules);
        wm.set_now(at(0));
        wm.stamp(0, 1_000);
        wm.set_now(at(80));
        wm.stamp(0, 1_500);
        let added = wm.add_partition();
        wm.set_now(at(150));
        assert_eq!(wm.watermark(), Some(0), "added at 80: quiet for 70 ms");
        wm.set_now(at(179));
        wm.stamp(0, 1_700);
        wm.set_now(at(180));
        assert_eq!(wm.watermark(), Some(1_700));
        assert_eq!(wm.partition_watermark(added), 0);
    }

    #[test]
    fn the_heartbeat_moves_the_watermark_with_processing_time_while_quiet() {
        let rules = strategy(100).with_heartbeat(Duration::from_millis(50));
        let mut wm = PartitionWatermarks::with_strategy(1, &rules);
        wm.set_now(at(0));
        wm.set_now(at(1_000));
        assert_eq!(
            wm.watermark(),
            Some(0),
            "no heartbeat before the first record"
        );
        assert_eq!(wm.wake_after(), None);
        assert_eq!(wm.stamp(0, 10_000), 10_000);
        assert_eq!(wm.watermark(), Some(9_900));
        wm.set_now(at(1_020));
        assert_eq!(wm.wake_after(), Some(Duration::from_millis(30)));
        wm.set_now(at(1_049));
        assert_eq!(
            wm.watermark(),
            Some(9_900),
            "quiet for less than a heartbeat"
        );
        wm.set_now(at(1_050));
        assert_eq!(wm.watermark(), Some(9_950));
        wm.set_now(at(1_300));
        assert_eq!(wm.watermark(), Some(10_200));
        assert_eq!(wm.wake_after(), Some(Duration::from_millis(50)));
        // A record ends the quiet: the partitions' watermark again (the operator keeps its
        // capability at 10_200, so this record is sent at 10_200 at least).
        assert_eq!(wm.stamp(0, 10_100), 10_100);
        assert_eq!(wm.watermark(), Some(10_000));
    }

    #[test]
    fn an_event_too_far_in_the_future_does_not_advance_the_watermark() {
        let rules = strategy(0).with_max_future_skew(Duration::from_millis(1_000));
        let mut wm = PartitionWatermarks::with_strategy(1, &rules);
        wm.set_now(ProcessingTime {
            monotonic_ms: 5,
            wall_ms: 1_000_000,
        });
        assert_eq!(wm.stamp(0, 1_000_500), 1_000_500);
        assert_eq!(
            wm.stamp(0, 1_001_000),
            1_001_000,
            "exactly the skew: allowed"
        );
        assert_eq!(wm.stamp(0, 5_000_000), 5_000_000, "sent at its own time");
        assert_eq!(wm.watermark(), Some(1_001_000));
        assert_eq!(wm.stamp(0, 1_000_900), 1_001_000);
        assert_eq!(
            wm.stamp(0, 1_001_000),
            1_001_000,
            "not late: the guard held"
        );
        assert_eq!(wm.take_future_count(), 1);
        assert_eq!(wm.take_future_count(), 0);
        // Once the wall clock catches up, the same event time is on time.
        wm.set_now(ProcessingTime {
            monotonic_ms: 6,
            wall_ms: 4_999_500,
        });
        wm.stamp(0, 5_000_000);
        assert_eq!(wm.watermark(), Some(5_000_000));
        assert_eq!(wm.take_future_count(), 0);
    }

    #[test]
    fn the_monotonic_clock_never_goes_back() {
        let rules = strategy(0).with_heartbeat(Duration::from_millis(10));
        let mut wm = PartitionWatermarks::with_strategy(1, &rules);
        wm.set_now(at(100));
        wm.stamp(0, 1_000);
        wm.set_now(at(200));
        wm.set_now(at(50));
        assert_eq!(wm.watermark(), Some(1_100));
    }

    #[test]
    fn no_partitions_means_no_watermark() {
        assert_eq!(PartitionWatermarks::new(0, 10).watermark(), None);
    }

    #[test]
    fn delay_larger_than_event_time_saturates_at_zero() {
        let mut wm = PartitionWatermarks::new(1, 5_000);
        assert_eq!(wm.stamp(0, 1_000), 1_000);
        assert_eq!(wm.watermark(), Some(0));
    }

    proptest! {
        /// With a granularity `G`, every stamp and watermark is the exact one rounded down to a
        /// multiple of `G`, so it compares with any multiple of `G` (a window's close time) the
        /// same way the exact one does: lateness and closing do not change.
        #[test]
        fn granular_stamps_compare_with_multiples_of_the_granule_as_exact_ones(
            events in proptest::collection::vec((0usize..2, 0u64..20_000), 0..80),
            delay in 0u64..3_000,
            granule in 1u64..2_500,
        ) {
            let mut exact = PartitionWatermarks::new(2, delay);
            let rules = strategy(delay).with_granularity(Duration::from_millis(granule));
            let mut coarse = PartitionWatermarks::with_strategy(2, &rules);
            for (partition, time) in events {
                let (e, c) = (exact.stamp(partition, time), coarse.stamp(partition, time));
                prop_assert_eq!(c, e - e % granule);
                let (we, wc) = (exact.watermark().unwrap(), coarse.watermark().unwrap());
                prop_assert_eq!(wc, we - we % granule);
                for close in [e - e % granule, e - e % granule + granule] {
                    prop_assert_eq!(c >= close, e >= close);
                }
            }
        }
    }

    proptest! {
        /// The stamp depends only on the partition's own history, not on how partitions
        /// interleave, and the watermark never decreases.
        #[test]
        fn stamps_ignore_interleaving(
            a in proptest::collection::vec(0u64..10_000, 0..50),
            b in proptest::collection::vec(0u64..10_000, 0..50),
            order in proptest::collection::vec(any::<bool>(), 0..100),
            delay in 0u64..2_000,
        ) {
            let alone = |events: &[u64]| {
                let mut wm = PartitionWatermarks::new(1, delay);
                events.iter().map(|&t| wm.stamp(0, t)).collect::<Vec<_>>()
            };
            let mut wm = PartitionWatermarks::new(2, delay);
            let (mut ia, mut ib) = (0, 0);
            let (mut sa, mut sb) = (Vec::new(), Vec::new());
            let mut last = wm.watermark();
            let mut choices = order.iter().copied().chain(std::iter::repeat(true));
            while ia < a.len() || ib < b.len() {
                let take_a = ib == b.len() || (ia < a.len() && choices.next().unwrap_or(true));
                if take_a { sa.push(wm.stamp(0, a[ia])); ia += 1; } else { sb.push(wm.stamp(1, b[ib])); ib += 1; }
                let now = wm.watermark();
                prop_assert!(now >= last);
                last = now;
            }
            prop_assert_eq!(sa, alone(&a));
            prop_assert_eq!(sb, alone(&b));
        }
    }
}
