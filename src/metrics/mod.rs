//! Progress reports of a running job, like Spark's `StreamingQueryProgress`: every interval a
//! [`Progress`] goes to a callback ([`Config::progress`]) or a channel
//! ([`Config::progress_channel`]); the command line writes them as JSON lines (`--progress`)
//! and serves them in Prometheus text format (`--metrics-addr`).
//!
//! The hot path only feeds atomics and per-sink histograms: sources add to the job's input
//! counter and store their watermark after each poll, window operators' outputs add per batch,
//! and each sink records its batch's latencies under a lock of its own, uncontended but for the
//! reporter's once-per-interval read. A reporter thread, started by [`execute`](crate::execute)
//! when a listener is configured, reads them every interval and once more when the job ends
//! (the final report, [`Progress::is_final`]). Without a listener none of this is built.

mod prometheus;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hdrhistogram::Histogram;
use serde::Serialize;
use tideflow_operators::state::StateRows;
use tideflow_operators::watermark::PartitionWatermarks;
use tideflow_operators::Event;
use timely::dataflow::operators::Inspect;
use timely::dataflow::StreamVec;

use crate::checkpoint::Checkpointer;
use crate::runtime::{Config, SharedJob};

/// The estimated size of one row of keyed state, in bytes, for [`OperatorState::bytes`]: a
/// hash-map entry with a small key and value or accumulator. State rows are not measured (that
/// would cost on the hot path); the figure is for trends and orders of magnitude.
pub const STATE_BYTES_PER_ROW: u64 = 64;

/// What a running job did in one reporting interval, and in all so far (JSON field names as
/// here). Counters (`*_rows`, `late_rows_*`) are totals since the job started, summed over all
/// workers of this process; rates are over the interval.
///
/// # Examples
/// ```
/// use std::time::Duration;
/// use tideflow::{aggregate::Count, sink::MemorySink, source::MemorySource, Config, Window};
///
/// let (config, reports) = Config::workers(2).progress_channel(Duration::from_millis(100));
/// tideflow::execute(config, |flow| {
///     flow.source(MemorySource::new((0..1_000u64).collect::<Vec<_>>()))
///         .with_event_time(|t| *t)
///         .with_watermark(Duration::ZERO)
///         .key_by(|t| t % 10)
///         .window(Window::tumbling(Duration::from_millis(100))?)
///         .aggregate(Count)
///         .sink(MemorySink::new());
///     Ok(())
/// })?;
/// // The job is over: its reporter sent the final report last, and hung up.
/// let last = reports.iter().last().expect("a final report");
/// assert!(last.is_final);
/// assert_eq!((last.input_rows, last.windows_emitted), (1_000, 100));
/// assert_eq!(last.watermark, Some(999));
/// # Ok::<(), tideflow::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Progress {
    /// When the report was taken: wall clock, ms since the Unix epoch.
    pub timestamp_ms: u64,
    /// The time since the previous report (or since the job started), ms.
    pub interval_ms: u64,
    /// The report's number, from 1.
    pub batch: u64,
    /// Whether this is the job's last report, taken when it ended (or failed).
    #[serde(rename = "final")]
    pub is_final: bool,
    /// Records read from sources so far.
    pub input_rows: u64,
    /// Records read from sources per second, over the interval.
    pub input_rows_per_sec: f64,
    /// Records that went through the dataflow so far: taken in by window operators or, in a job
    /// without windows, received by sinks. Below [`input_rows`](Self::input_rows) by what
    /// filters drop, late records, and what is still on its way.
    pub processed_rows: u64,
    /// [`processed_rows`](Self::processed_rows) per second, over the interval: how fast the
    /// dataflow keeps up with its input.
    pub processed_rows_per_sec: f64,
    /// The job's watermark: the smallest watermark of the sources still reading, ms (once they
    /// have all ended, the largest they reached). `None` until every source has read a record.
    pub watermark: Option<u64>,
    /// The wall clock minus the watermark, ms: how far event time trails the present
    /// (negative for event times ahead of the clock).
    pub event_time_lag_ms: Option<i64>,
    /// Rows written to sinks so far (late records routed to a sink included).
    pub output_rows: u64,
    /// Rows window operators produced so far: results, or in update mode every update row.
    pub windows_emitted: u64,
    /// Records too late for every window they belong to, dropped, so far.
    pub late_rows_dropped: u64,
    /// Late records routed to a late-data output, so far.
    pub late_rows_routed: u64,
    /// Bad input records skipped so far.
    pub rows_skipped: u64,
    /// Bad input records written to a dead-letter file so far.
    pub rows_dead_lettered: u64,
    /// Keyed state per stateful operator (named as in [`JobReport::state`](crate::JobReport)),
    /// summed over workers. Window operators do not report their state yet.
    pub state: BTreeMap<String, OperatorState>,
    /// Snapshots, when the job takes them.
    pub snapshot: Option<SnapshotProgress>,
    /// End-to-end latency of the rows sinks received during the interval; `None` if none.
    pub latency_ms: Option<LatencyPercentiles>,
}

/// The keyed state one operator holds, summed over workers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct OperatorState {
    /// Rows held now.
    pub rows: u64,
    /// The sum of each worker's most rows held so far.
    pub peak_rows: u64,
    /// An estimate of the bytes held now: `rows` times [`STATE_BYTES_PER_ROW`].
    pub bytes: u64,
}

/// The job's snapshots so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct SnapshotProgress {
    /// Snapshots completed.
    pub completed: u64,
    /// How long the last one took, from its epoch's start to its commit, ms.
    pub last_duration_ms: f64,
    /// The size of the last one's parts, bytes.
    pub last_bytes: u64,
}

/// Percentiles of end-to-end latency over an interval, ms, from an HDR histogram (two
/// significant digits). A row's latency is the wall clock when a sink receives it minus its
/// event time: for a window's row (event time `window_end - 1`), how long after the window's
/// end it left, the window-close delay. Rows stamped ahead of the wall clock are not counted.
/// It measures the pipeline's delay only when event time follows the wall clock.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct LatencyPercentiles {
    /// The rows measured.
    pub rows: u64,
    /// The median.
    pub p50: f64,
    /// The 90th percentile.
    pub p90: f64,
    /// The 99th percentile.
    pub p99: f64,
    /// The largest.
    pub max: f64,
}

/// A progress callback and how often it is called (see [`Config::progress`]).
#[derive(Clone)]
pub struct ProgressListener {
    interval: Duration,
    callback: Arc<dyn Fn(&Progress) + Send + Sync>,
}

impl ProgressListener {
    /// Calls `callback` every `interval` (at least 1 ms), and once when the job ends.
    pub fn new(interval: Duration, callback: impl Fn(&Progress) + Send + Sync + 'static) -> Self {
        ProgressListener {
            interval: interval.max(Duration::from_millis(1)),
            callback: Arc::new(callback),
        }
    }

    /// How often reports are taken.
    pub fn interval(&self) -> Duration {
        self.interval
    }
}

impl fmt::Debug for ProgressListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProgressListener")
            .field("interval", &self.interval)
            .finish_non_exhaustive()
    }
}

impl Config {
    /// Calls `callback` with a [`Progress`] report every `interval` (at least 1 ms) while the
    /// job runs, and once more when it ends ([`Progress::is_final`]). It runs on a reporter
    /// thread of its own, so a slow callback delays reports, not the job. Replaces an earlier
    /// listener.
    ///
    /// # Examples
    /// ```
    /// use std::sync::{Arc, Mutex};
    /// use std::time::Duration;
    /// use tideflow::{sink::MemorySink, source::MemorySource, Config};
    ///
    /// let reports = Arc::new(Mutex::new(Vec::new()));
    /// let seen = Arc::clone(&reports);
    /// let config = Config::default().progress(Duration::from_millis(50), move |progress| {
    ///     seen.lock().unwrap().push(progress.clone());
    /// });
    /// tideflow::execute(config, |flow| {
    ///     flow.source(MemorySource::new(vec![1u64, 2, 3]))
    ///         .with_event_time(|t| *t)
    ///         .with_watermark(Duration::ZERO)
    ///         .sink(MemorySink::new());
    ///     Ok(())
    /// })?;
    /// let reports = reports.lock().unwrap();
    /// let last = reports.last().unwrap();
    /// assert!(last.is_final);
    /// assert_eq!((last.input_rows, last.output_rows, last.processed_rows), (3, 3, 3));
    /// # Ok::<(), tideflow::Error>(())
    /// ```
    pub fn progress(
        mut self,
        interval: Duration,
        callback: impl Fn(&Progress) + Send + Sync + 'static,
    ) -> Self {
        self.progress = Some(ProgressListener::new(interval, callback));
        self
    }

    /// Sends a [`Progress`] report every `interval` to the returned channel, and the final one
    /// when the job ends; the sender is dropped with the job, so iterating the receiver ends.
    /// Reports queue up until received. Replaces an earlier listener.
    pub fn progress_channel(self, interval: Duration) -> (Config, Receiver<Progress>) {
        let (sender, receiver) = mpsc::channel();
        let config = self.progress(interval, move |progress| {
            // A receiver that hung up no longer wants reports.
            let _ = sender.send(progress.clone());
        });
        (config, receiver)
    }
}

/// Sub-microsecond latencies are not told apart; the largest tracked is about 285 years, so
/// that any `u64` ms event time since 1970 fits.
const LATENCY_HIGH_US: u64 = 1 << 53;

fn latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, LATENCY_HIGH_US, 2).expect("valid histogram bounds")
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn wall_clock_us() -> u64 {
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
}

impl JobMetrics {
    fn enabled(&self) -> bool {
        self.enabled.load(Ordering::Relaxed)
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

    /// A latency recorder for a new sink instance, when progress is reported.
    pub(crate) fn latency_recorder(&self) -> Option<LatencyRecorder> {
        if !self.enabled() {
            return None;
        }
        let histogram = Arc::new(Mutex::new(latency_histogram()));
        lock(&self.latencies).push(Arc::clone(&histogram));
        Some(LatencyRecorder { histogram })
    }

    /// The job's watermark: the smallest of the unfinished sources' (`None` while one of them
    /// has none yet), or once all have finished, the largest they reached.
    fn watermark(&self) -> Option<u64> {
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

    /// The state per operator name, summed over workers.
    fn state(&self) -> BTreeMap<String, OperatorState> {
        let mut totals: BTreeMap<String, OperatorState> = BTreeMap::new();
        for (name, gauge) in lock(&self.state).iter() {
            let count = gauge.get();
            let total = totals.entry(name.clone()).or_default();
            total.rows += count.rows;
            total.peak_rows += count.peak;
            total.bytes = total.rows.saturating_mul(STATE_BYTES_PER_ROW);
        }
        totals
    }

    /// Adds every sink's latencies since the last call to `into`, and clears them.
    fn drain_latencies(&self, into: &mut Histogram<u64>) {
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

/// The reporter thread of a job, when a listener is configured: it reports every interval,
/// and once more, finally, when stopped (dropped).
pub(crate) struct Reporter {
    stop: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Reporter {
    /// Starts reporting on `shared` as `listener` says; does nothing without one.
    pub(crate) fn start(
        listener: Option<&ProgressListener>,
        shared: &Arc<SharedJob>,
        checkpointer: Option<Arc<Checkpointer>>,
    ) -> Reporter {
        let Some(listener) = listener.cloned() else {
            return Reporter {
                stop: None,
                thread: None,
            };
        };
        shared.metrics.enabled.store(true, Ordering::SeqCst);
        let (stop, stopped) = mpsc::channel::<()>();
        let mut state = ReportState {
            shared: Arc::clone(shared),
            checkpointer,
            started: Instant::now(),
            last: Instant::now(),
            batch: 0,
            last_input: 0,
            last_processed: 0,
            latencies: latency_histogram(),
        };
        let spawned = std::thread::Builder::new()
            .name("tideflow-progress".into())
            .spawn(move || {
                let interval = listener.interval;
                let mut next = state.started + interval;
                loop {
                    let wait = next.saturating_duration_since(Instant::now());
                    match stopped.recv_timeout(wait) {
                        Err(RecvTimeoutError::Timeout) => {
                            (listener.callback)(&state.take(false));
                            next += interval;
                            // Behind (a slow callback): skip the ticks already missed.
                            let now = Instant::now();
                            if next < now {
                                next = now + interval;
                            }
                        }
                        Ok(()) | Err(RecvTimeoutError::Disconnected) => {
                            (listener.callback)(&state.take(true));
                            return;
                        }
                    }
                }
            });
        match spawned {
            Ok(thread) => Reporter {
                stop: Some(stop),
                thread: Some(thread),
            },
            // No thread, no reports; the job itself does not need them.
            Err(_) => Reporter {
                stop: None,
                thread: None,
            },
        }
    }

    /// Takes the final report and waits for the listener to have it.
    pub(crate) fn finish(self) {
        drop(self);
    }
}

impl Drop for Reporter {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            // A panicking callback only ends the reports.
            let _ = thread.join();
        }
    }
}

/// The reporter's memory between reports.
struct ReportState {
    shared: Arc<SharedJob>,
    checkpointer: Option<Arc<Checkpointer>>,
    started: Instant,
    last: Instant,
    batch: u64,
    last_input: u64,
    last_processed: u64,
    latencies: Histogram<u64>,
}

impl ReportState {
    /// The next report.
    fn take(&mut self, is_final: bool) -> Progress {
        let now = Instant::now();
        let elapsed = now.duration_since(self.last);
        self.last = now;
        self.batch += 1;
        let shared = &self.shared;
        let metrics = &shared.metrics;
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        let input_rows = load(&shared.records_in);
        let output_rows = load(&shared.records_out);
        let processed_rows = if metrics.has_windows.load(Ordering::Relaxed) {
            load(&metrics.window_input)
        } else {
            output_rows
        };
        let seconds = elapsed.as_secs_f64();
        let rate = |now: u64, before: u64| {
            if seconds > 0.0 {
                now.saturating_sub(before) as f64 / seconds
            } else {
                0.0
            }
        };
        let input_rows_per_sec = rate(input_rows, self.last_input);
        let processed_rows_per_sec = rate(processed_rows, self.last_processed);
        self.last_input = input_rows;
        self.last_processed = processed_rows;
        let timestamp_ms = wall_clock_us() / 1_000;
        let watermark = metrics.watermark();
        let event_time_lag_ms = watermark.map(|w| {
            let lag = i128::from(timestamp_ms) - i128::from(w);
            i64::try_from(lag).unwrap_or(if lag < 0 { i64::MIN } else { i64::MAX })
        });
        metrics.drain_latencies(&mut self.latencies);
        let latency_ms = (!self.latencies.is_empty()).then(|| {
            let ms = |us: u64| us as f64 / 1_000.0;
            let h = &self.latencies;
            LatencyPercentiles {
                rows: h.len(),
                p50: ms(h.value_at_quantile(0.5)),
                p90: ms(h.value_at_quantile(0.9)),
                p99: ms(h.value_at_quantile(0.99)),
                max: ms(h.max()),
            }
        });
        self.latencies.reset();
        let snapshot = self.checkpointer.as_ref().map(|checkpointer| {
            let report = checkpointer.report();
            SnapshotProgress {
                completed: report.completed,
                last_duration_ms: report.last_duration.as_secs_f64() * 1e3,
                last_bytes: report.last_bytes,
            }
        });
        Progress {
            timestamp_ms,
            interval_ms: u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX),
            batch: self.batch,
            is_final,
            input_rows,
            input_rows_per_sec,
            processed_rows,
            processed_rows_per_sec,
            watermark,
            event_time_lag_ms,
            output_rows,
            windows_emitted: load(&metrics.windows_emitted),
            late_rows_dropped: load(&shared.late_dropped),
            late_rows_routed: load(&shared.late_routed),
            rows_skipped: load(&shared.records_skipped),
            rows_dead_lettered: load(&shared.records_dead_lettered),
            state: metrics.state(),
            snapshot,
            latency_ms,
        }
    }
}
