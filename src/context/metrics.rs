//! The figures of a running job that only progress reports read (src/metrics turns them into
//! [`Progress`](crate::Progress) reports): each source instance's watermark, each sink
//! instance's latencies, every stateful operator's state gauge, and the rows into and out of
//! window operators. Part of the job context ([`SharedJob::metrics`]); the hot path only
//! touches atomics and uncontended locks, and without a listener none of it is kept (but for
//! state gauges; every process of a cluster keeps all but the latencies, so that all build the
//! same dataflow and process 0 has the others' figures).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use hdrhistogram::Histogram;
use tideflow_operators::state::{StateCount, StateRows};
use tideflow_operators::watermark::PartitionWatermarks;
use tideflow_operators::Event;
use timely::dataflow::operators::Inspect;
use timely::dataflow::StreamVec;

use super::SharedJob;

/// Sub-microsecond latencies are not told apart; the largest tracked is about 285 years, so
/// that any `u64` ms event time since 1970 fits.
const LATENCY_HIGH_US: u64 = 1 << 53;

/// An empty histogram of latencies, µs.
pub(crate) fn latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, LATENCY_HIGH_US, 2).expect("valid histogram bounds")
}

/// Locks `mutex`, also after a panic elsewhere poisoned it (the figures stay usable).
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The wall clock, µs since the Unix epoch (0 before it).
pub(crate) fn wall_clock_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| {
            u64::try_from(since.as_micros()).unwrap_or(u64::MAX)
        })
}

/// The figures of a job that only progress reports need, in [`SharedJob`]: registered as the
/// dataflow is built, and only when a listener is configured (but for state gauges).
#[derive(Default)]
pub(crate) struct JobMetrics {
    enabled: AtomicBool,
    /// Whether sinks record latencies (only a listener of this process reads them).
    latencies_enabled: AtomicBool,
    /// Rows out of window operators.
    windows_emitted: AtomicU64,
    /// Records into window operators.
    window_input: AtomicU64,
    /// Whether the job has a window operator (then `window_input` is its processed rows).
    has_windows: AtomicBool,
    /// Each source instance's watermark.
    sources: Mutex<Vec<Arc<WatermarkSlot>>>,
    /// Each active sink instance's latencies since the last report.
    latencies: Mutex<Vec<Arc<Mutex<Histogram<u64>>>>>,
    /// Every worker's state gauges, by operator name.
    state: Mutex<Vec<(String, StateRows)>>,
    /// The offsets of every source partition that reports them (Kafka's).
    partitions: Mutex<Vec<Arc<PartitionGauge>>>,
}

impl JobMetrics {
    /// Whether progress is reported: only then are the figures kept.
    pub(crate) fn enabled(&self) -> bool {
        self.enabled.load(Ordering::Relaxed)
    }

    /// Keeps the figures from now on (a listener is configured, or the job is a cluster's:
    /// counting adds operators, and every process must build the same dataflow), before the
    /// workers start; with `latencies`, the sinks' latencies too (only this process's own
    /// listener reads them).
    pub(crate) fn enable(&self, latencies: bool) {
        self.latencies_enabled.store(latencies, Ordering::SeqCst);
        self.enabled.store(true, Ordering::SeqCst);
    }

    /// Rows window operators produced so far.
    pub(crate) fn windows_emitted(&self) -> u64 {
        self.windows_emitted.load(Ordering::Relaxed)
    }

    /// Records taken in by window operators so far; `None` in a job without windows.
    pub(crate) fn window_input(&self) -> Option<u64> {
        self.has_windows
            .load(Ordering::Relaxed)
            .then(|| self.window_input.load(Ordering::Relaxed))
    }

    /// Adds a worker's gauge of operator `name` to the process-wide registry.
    pub(crate) fn register_state(&self, name: &str, gauge: &StateRows) {
        lock(&self.state).push((name.to_string(), gauge.clone()));
    }

    /// A watermark slot for a new source instance, when progress is reported.
    pub(crate) fn watermark_slot(&self) -> Option<Arc<WatermarkSlot>> {
        if !self.enabled() {
            return None;
        }
        let slot = Arc::new(WatermarkSlot {
            value: AtomicU64::new(WatermarkSlot::UNSET),
            finished: AtomicBool::new(false),
        });
        lock(&self.sources).push(Arc::clone(&slot));
        Some(slot)
    }

    /// Every registered source partition's gauge, in registration order.
    pub(crate) fn partition_offsets(&self) -> Vec<Arc<PartitionGauge>> {
        lock(&self.partitions).clone()
    }

    /// A latency recorder for a new sink instance, when progress is reported.
    pub(crate) fn latency_recorder(&self) -> Option<LatencyRecorder> {
        if !self.enabled() || !self.latencies_enabled.load(Ordering::Relaxed) {
            return None;
        }
        let histogram = Arc::new(Mutex::new(latency_histogram()));
        lock(&self.latencies).push(Arc::clone(&histogram));
        Some(LatencyRecorder { histogram })
    }

    /// The job's watermark: the smallest of the unfinished sources' (`None` while one of them
    /// has none yet), or once all have finished, the largest they reached.
    pub(crate) fn watermark(&self) -> Option<u64> {
        let sources = lock(&self.sources);
        let mut active: Option<Option<u64>> = None;
        let mut finished: Option<u64> = None;
        for slot in sources.iter() {
            let value = slot.value();
            if slot.finished.load(Ordering::Relaxed) {
                if let Some(value) = value {
                    finished = Some(finished.map_or(value, |f| f.max(value)));
                }
            } else {
                active = Some(match (active, value) {
                    (None, value) => value,
                    (Some(Some(min)), Some(value)) => Some(min.min(value)),
                    (Some(_), _) => None,
                });
            }
        }
        match active {
            Some(active) => active,
            None => finished,
        }
    }

    /// The state rows per operator name, summed over workers: held now, and the sum of each
    /// worker's peak.
    pub(crate) fn state_counts(&self) -> BTreeMap<String, StateCount> {
        let mut totals: BTreeMap<String, StateCount> = BTreeMap::new();
        for (name, gauge) in lock(&self.state).iter() {
            let count = gauge.get();
            let total = totals.entry(name.clone()).or_default();
            total.rows += count.rows;
            total.peak += count.peak;
        }
        totals
    }

    /// Adds every sink's latencies since the last call to `into`, and clears them.
    pub(crate) fn drain_latencies(&self, into: &mut Histogram<u64>) {
        for histogram in lock(&self.latencies).iter() {
            let mut histogram = lock(histogram);
            // Same bounds: adding cannot fail.
            let _ = into.add(&*histogram);
            histogram.reset();
        }
    }
}

/// One source instance's watermark, stored after each poll.
pub(crate) struct WatermarkSlot {
    value: AtomicU64,
    finished: AtomicBool,
}

impl WatermarkSlot {
    /// No watermark yet.
    const UNSET: u64 = u64::MAX;

    fn value(&self) -> Option<u64> {
        Some(self.value.load(Ordering::Relaxed)).filter(|&v| v != Self::UNSET)
    }

    /// After a poll that sent `sent` records, with the source's partition watermarks
    /// `marks`; `ended` if the source said it is done.
    #[inline]
    pub(crate) fn observe(&self, sent: u64, marks: &PartitionWatermarks, ended: bool) {
        if self.finished.load(Ordering::Relaxed) {
            return;
        }
        let watermark = marks.watermark();
        match watermark {
            // Before its first record (or heartbeat) a source's watermark is 0: not known yet.
            Some(watermark) if sent > 0 || watermark > 0 || self.value().is_some() => {
                self.store(watermark)
            }
            _ => {}
        }
        if ended || watermark.is_none() {
            // The watermark is released: the largest one its partitions reached stays.
            let reached = (0..marks.len())
                .filter(|&partition| marks.max_seen(partition).is_some())
                .map(|partition| marks.partition_watermark(partition))
                .max();
            if let Some(reached) = reached {
                self.store(self.value().map_or(reached, |value| value.max(reached)));
            }
            self.finished.store(true, Ordering::Relaxed);
        }
    }

    fn store(&self, watermark: u64) {
        self.value
            .store(watermark.min(Self::UNSET - 1), Ordering::Relaxed);
    }
}

/// Where a source instance's partition stands, for progress reports: the offset of the next
/// record to read and the partition's end as the source last learnt it (Kafka: the high
/// watermark of its fetch responses). A source updates it per read, not per record.
#[derive(Debug)]
pub struct PartitionGauge {
    source: String,
    partition: u64,
    offset: AtomicU64,
    /// `UNKNOWN` until the end is known.
    end: AtomicU64,
}

impl PartitionGauge {
    const UNKNOWN: u64 = u64::MAX;

    /// Stores where the partition stands: `offset` is the next record to read, `end` the
    /// partition's end if known.
    #[inline]
    pub fn set(&self, offset: u64, end: Option<u64>) {
        self.offset.store(offset, Ordering::Relaxed);
        self.end.store(
            end.map_or(Self::UNKNOWN, |end| end.min(Self::UNKNOWN - 1)),
            Ordering::Relaxed,
        );
    }

    /// The source's name (for Kafka, the topic).
    pub(crate) fn source(&self) -> &str {
        &self.source
    }

    /// The partition's global number.
    pub(crate) fn partition(&self) -> u64 {
        self.partition
    }

    /// The next offset to read, and the end if known.
    pub(crate) fn get(&self) -> (u64, Option<u64>) {
        let end = self.end.load(Ordering::Relaxed);
        (
            self.offset.load(Ordering::Relaxed),
            (end != Self::UNKNOWN).then_some(end),
        )
    }
}

/// Where a source instance registers a [`PartitionGauge`] per partition it reads, for progress
/// reports ([`Source::report_offsets`](crate::source::Source::report_offsets)).
pub struct PartitionGauges {
    shared: Arc<SharedJob>,
}

impl PartitionGauges {
    /// The registry of `shared`'s job, when progress is reported.
    pub(crate) fn of(shared: &Arc<SharedJob>) -> Option<PartitionGauges> {
        shared.metrics.enabled().then(|| PartitionGauges {
            shared: Arc::clone(shared),
        })
    }

    /// A new gauge for global partition `partition` of the source named `source`, starting at
    /// offset 0 with its end unknown.
    pub fn register(&self, source: &str, partition: u64) -> Arc<PartitionGauge> {
        let gauge = Arc::new(PartitionGauge {
            source: source.to_owned(),
            partition,
            offset: AtomicU64::new(0),
            end: AtomicU64::new(PartitionGauge::UNKNOWN),
        });
        lock(&self.shared.metrics.partitions).push(Arc::clone(&gauge));
        gauge
    }
}

impl fmt::Debug for PartitionGauges {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PartitionGauges").finish_non_exhaustive()
    }
}

/// A sink instance's latency histogram.
#[derive(Clone)]
pub(crate) struct LatencyRecorder {
    histogram: Arc<Mutex<Histogram<u64>>>,
}

impl LatencyRecorder {
    /// Records the latency of each row of a batch a sink is about to receive: one clock read
    /// and one (uncontended) lock per batch, no allocation.
    #[inline]
    pub(crate) fn record<D>(&self, batch: &[Event<D>]) {
        if batch.is_empty() {
            return;
        }
        let now_us = wall_clock_us();
        let mut histogram = lock(&self.histogram);
        for event in batch {
            if let Some(latency) = now_us.checked_sub(event.time.saturating_mul(1_000)) {
                histogram.saturating_record(latency);
            }
        }
    }
}

/// What a counted stream adds to.
#[derive(Clone, Copy)]
pub(crate) enum WindowCount {
    /// Records taken in by a window operator.
    Input,
    /// Rows a window operator produced.
    Rows,
}

/// Counts the records of `stream` per batch when progress is reported; returns it unchanged
/// otherwise.
pub(crate) fn count_window<'scope, T: 'static>(
    shared: &Arc<SharedJob>,
    stream: StreamVec<'scope, u64, Event<T>>,
    count: WindowCount,
) -> StreamVec<'scope, u64, Event<T>> {
    if !shared.metrics.enabled() {
        return stream;
    }
    if let WindowCount::Input = count {
        shared.metrics.has_windows.store(true, Ordering::Relaxed);
    }
    let shared = Arc::clone(shared);
    stream.inspect_batch(move |_, batch| {
        let counter = match count {
            WindowCount::Input => &shared.metrics.window_input,
            WindowCount::Rows => &shared.metrics.windows_emitted,
        };
        counter.fetch_add(batch.len() as u64, Ordering::Relaxed);
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_is_kept_without_a_listener() {
        let metrics = JobMetrics::default();
        assert!(metrics.watermark_slot().is_none());
        assert!(metrics.latency_recorder().is_none());
        assert_eq!(metrics.watermark(), None);
        // Figures for process 0 of a cluster, without a listener here: no latencies.
        metrics.enable(false);
        assert!(metrics.watermark_slot().is_some());
        assert!(metrics.latency_recorder().is_none());
        metrics.enable(true);
        assert!(metrics.latency_recorder().is_some());
    }

    #[test]
    fn the_job_watermark_is_the_slowest_reading_source_then_the_furthest_finished() {
        let metrics = JobMetrics::default();
        metrics.enable(true);
        let (fast, slow) = (metrics.watermark_slot(), metrics.watermark_slot());
        let (Some(fast), Some(slow)) = (fast, slow) else {
            panic!("progress is reported: every source gets a slot");
        };
        let mut fast_marks = PartitionWatermarks::new(1, 0);
        let mut slow_marks = PartitionWatermarks::new(1, 0);
        fast_marks.stamp(0, 900);
        fast.observe(1, &fast_marks, false);
        // The slow source has read nothing yet: the job's watermark is not known.
        assert_eq!(metrics.watermark(), None);
        slow_marks.stamp(0, 300);
        slow.observe(1, &slow_marks, false);
        assert_eq!(metrics.watermark(), Some(300));
        // A finished source no longer holds the job's watermark back...
        slow_marks.finish(0);
        slow.observe(0, &slow_marks, true);
        assert_eq!(metrics.watermark(), Some(900));
        // ...and once all have finished, the furthest one reached stays.
        fast_marks.finish(0);
        fast.observe(0, &fast_marks, true);
        assert_eq!(metrics.watermark(), Some(900));
    }

    #[test]
    fn state_counts_sum_every_workers_gauge_of_an_operator() {
        let metrics = JobMetrics::default();
        let (first, second) = (StateRows::default(), StateRows::default());
        metrics.register_state("session", &first);
        metrics.register_state("session", &second);
        first.set(4);
        first.set(2);
        second.set(3);
        assert_eq!(
            metrics.state_counts()["session"],
            StateCount { rows: 5, peak: 7 }
        );
    }
}
