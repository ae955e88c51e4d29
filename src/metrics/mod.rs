//! Progress reports of a running job, like Spark's `StreamingQueryProgress`: every interval a
//! [`Progress`] goes to a callback ([`Config::progress`](crate::Config::progress)) or a channel
//! ([`Config::progress_channel`](crate::Config::progress_channel)); the command line writes them as JSON lines (`--progress`)
//! and serves them in Prometheus text format (`--metrics-addr`).
//!
//! The hot path only feeds atomics and per-sink histograms: sources add to the job's input
//! counter and store their watermark after each poll, window operators' outputs add per batch,
//! and each sink records its batch's latencies under a lock of its own, uncontended but for the
//! reporter's once-per-interval read. A reporter thread, started by [`execute`](crate::execute)
//! when a listener is configured, reads them every interval and once more when the job ends
//! (the final report, [`Progress::is_final`]). Without a listener none of this is built.
//!
//! In a cluster, process 0's reports also hold the figures of every process and their totals
//! ([`Progress::cluster`]), which the other processes send it (`cluster.rs`).

mod cluster;
mod prometheus;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::checkpoint::Checkpointer;
use crate::context::{latency_histogram, wall_clock_us, SharedJob};
use crate::error::Error;

pub(crate) use cluster::FiguresSender;
pub use cluster::{ClusterProgress, Figures, ProcessProgress};
use cluster::{ClusterReporter, Counts, FIGURES_INTERVAL};

/// The estimated size of one row of keyed state, in bytes, for [`OperatorState::bytes`]: a
/// hash-map entry with a small key and value or accumulator. State rows are not measured (that
/// would cost on the hot path); the figure is for trends and orders of magnitude.
pub const STATE_BYTES_PER_ROW: u64 = 64;

/// What a running job did in one reporting interval, and in all so far (JSON field names as
/// here). Counters (`*_rows`, `late_rows_*`) are totals since the job started, summed over all
/// workers of this process (in a cluster too: the whole cluster's are in
/// [`cluster`](Self::cluster), on process 0); rates are over the interval.
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
    /// summed over workers (window operators included: `tumbling`, `session`...).
    pub state: BTreeMap<String, OperatorState>,
    /// Snapshots, when the job takes them.
    pub snapshot: Option<SnapshotProgress>,
    /// End-to-end latency of the rows sinks received during the interval; `None` if none.
    pub latency_ms: Option<LatencyPercentiles>,
    /// Where each partition of the sources that report offsets (Kafka) stands, by source
    /// then partition; empty without such a source.
    pub source_partitions: Vec<SourcePartition>,
    /// On process 0 of a cluster: the totals over every process and each process's figures, as
    /// the latest figures each sent (docs/CLUSTER.md "One view of the job"). `None` (JSON
    /// `null`) outside a cluster and on the other processes.
    pub cluster: Option<ClusterProgress>,
}

/// Where one partition of a source that reports offsets (Kafka) stands.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SourcePartition {
    /// The source: for Kafka, the topic.
    pub source: String,
    /// The partition's number.
    pub partition: u64,
    /// The offset of the next record to read.
    pub offset: u64,
    /// The partition's end as the source last learnt it: for Kafka, the high watermark of its
    /// latest fetch response (the offset the next produced record will get). `None` until the
    /// first fetch response.
    pub end_offset: Option<u64>,
    /// Records behind: `end_offset - offset` (0 once caught up); `None` while the end is not
    /// known. For a topic written in transactions it counts the transaction markers too.
    pub lag: Option<u64>,
}

/// The keyed state one operator holds, summed over workers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperatorState {
    /// Rows held now.
    pub rows: u64,
    /// The sum of each worker's most rows held so far.
    pub peak_rows: u64,
    /// An estimate of the bytes held now: `rows` times [`STATE_BYTES_PER_ROW`].
    pub bytes: u64,
}

impl OperatorState {
    /// The state of `rows` rows held now and `peak_rows` at most.
    fn of(rows: u64, peak_rows: u64) -> OperatorState {
        OperatorState {
            rows,
            peak_rows,
            bytes: rows.saturating_mul(STATE_BYTES_PER_ROW),
        }
    }
}

/// The rate of a counter that went from `before` to `now` in `seconds`.
fn per_second(now: u64, before: u64, seconds: f64) -> f64 {
    if seconds > 0.0 {
        now.saturating_sub(before) as f64 / seconds
    } else {
        0.0
    }
}

/// The wall clock at `timestamp_ms` minus `watermark`, ms.
fn event_time_lag(timestamp_ms: u64, watermark: Option<u64>) -> Option<i64> {
    watermark.map(|w| {
        let lag = i128::from(timestamp_ms) - i128::from(w);
        i64::try_from(lag).unwrap_or(if lag < 0 { i64::MIN } else { i64::MAX })
    })
}

/// The job's snapshots so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct SnapshotProgress {
    /// Snapshots completed.
    pub completed: u64,
    /// The epoch of the last one (`None` before the first).
    pub last_epoch: Option<u64>,
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

/// A progress callback and how often it is called (see
/// [`Config::progress`](crate::Config::progress)).
#[derive(Clone)]
pub struct ProgressListener {
    interval: Duration,
    callback: Arc<ProgressCallback>,
}

/// A progress callback; its `Err` stops the job.
type ProgressCallback = dyn Fn(&Progress) -> Result<(), Error> + Send + Sync;

impl ProgressListener {
    /// Calls `callback` every `interval` (at least 1 ms), and once when the job ends.
    pub fn new(interval: Duration, callback: impl Fn(&Progress) + Send + Sync + 'static) -> Self {
        Self::try_new(interval, move |progress| {
            callback(progress);
            Ok(())
        })
    }

    /// As [`ProgressListener::new`], for a callback whose first `Err` stops the job (and the
    /// reports).
    pub fn try_new(
        interval: Duration,
        callback: impl Fn(&Progress) -> Result<(), Error> + Send + Sync + 'static,
    ) -> Self {
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

/// The reporter thread of a job, when a listener is configured: it reports every interval,
/// and once more, finally, when stopped (dropped). A process other than 0 of a cluster sends
/// its figures to process 0 with or without one ([`FiguresSender`], on its first worker).
pub(crate) struct Reporter {
    stop: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Reporter {
    /// Starts reporting on `shared` as `listener` says, before the workers start; no thread
    /// without a listener. Every process of a cluster keeps its figures either way, and one
    /// other than 0 sends them every interval of `listener` (by default [`FIGURES_INTERVAL`]).
    pub(crate) fn start(
        listener: Option<&ProgressListener>,
        shared: &Arc<SharedJob>,
        checkpointer: Option<Arc<Checkpointer>>,
    ) -> Reporter {
        if let Some(post) = shared.post.get() {
            // In every process, listener or not: counting window rows adds operators to the
            // dataflow, and every process of a cluster must build the same one.
            shared.metrics.enable(listener.is_some());
            if !post.is_leader() {
                let every = listener.map_or(FIGURES_INTERVAL, ProgressListener::interval);
                post.send_figures_every(every);
            }
        }
        let Some(listener) = listener.cloned() else {
            return Reporter {
                stop: None,
                thread: None,
            };
        };
        shared.metrics.enable(true);
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
            cluster: ClusterReporter::new(shared),
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
                            let reported = state
                                .take(false)
                                .and_then(|progress| (listener.callback)(&progress));
                            if let Err(error) = reported {
                                state.shared.fail(error);
                                return;
                            }
                            next += interval;
                            // Behind (a slow callback): skip the ticks already missed.
                            let now = Instant::now();
                            if next < now {
                                next = now + interval;
                            }
                        }
                        Ok(()) | Err(RecvTimeoutError::Disconnected) => {
                            let reported = state
                                .take(true)
                                .and_then(|progress| (listener.callback)(&progress));
                            if let Err(error) = reported {
                                state.shared.fail(error);
                            }
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

/// Where every registered source partition stands, by source then partition.
fn source_partitions(metrics: &crate::context::JobMetrics) -> Vec<SourcePartition> {
    let mut partitions: Vec<SourcePartition> = metrics
        .partition_offsets()
        .iter()
        .map(|gauge| {
            let (offset, end_offset) = gauge.get();
            SourcePartition {
                source: gauge.source().to_owned(),
                partition: gauge.partition(),
                offset,
                end_offset,
                lag: end_offset.map(|end| end.saturating_sub(offset)),
            }
        })
        .collect();
    partitions.sort_by(|a, b| (&a.source, a.partition).cmp(&(&b.source, b.partition)));
    partitions
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
    /// On process 0 of a cluster: the other processes' figures.
    cluster: Option<ClusterReporter>,
}

impl ReportState {
    /// The next report; fails only on process 0 of a cluster, on figures that cannot be read.
    fn take(&mut self, is_final: bool) -> Result<Progress, Error> {
        let now = Instant::now();
        let elapsed = now.duration_since(self.last);
        self.last = now;
        self.batch += 1;
        let metrics = &self.shared.metrics;
        let counts = Counts::read(&self.shared);
        let seconds = elapsed.as_secs_f64();
        let input_rows_per_sec = per_second(counts.input_rows, self.last_input, seconds);
        let processed_rows_per_sec =
            per_second(counts.processed_rows, self.last_processed, seconds);
        self.last_input = counts.input_rows;
        self.last_processed = counts.processed_rows;
        let timestamp_ms = wall_clock_us() / 1_000;
        let cluster = match self.cluster.as_mut() {
            Some(cluster) => Some(cluster.take(&counts, is_final, seconds, timestamp_ms)?),
            None => None,
        };
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
                last_epoch: report.last_epoch,
                last_duration_ms: report.last_duration.as_secs_f64() * 1e3,
                last_bytes: report.last_bytes,
            }
        });
        Ok(Progress {
            timestamp_ms,
            interval_ms: u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX),
            batch: self.batch,
            is_final,
            input_rows: counts.input_rows,
            input_rows_per_sec,
            processed_rows: counts.processed_rows,
            processed_rows_per_sec,
            watermark: counts.watermark,
            event_time_lag_ms: event_time_lag(timestamp_ms, counts.watermark),
            output_rows: counts.output_rows,
            windows_emitted: counts.windows_emitted,
            late_rows_dropped: counts.late_rows_dropped,
            late_rows_routed: counts.late_rows_routed,
            rows_skipped: counts.rows_skipped,
            rows_dead_lettered: counts.rows_dead_lettered,
            state: counts.state,
            snapshot,
            latency_ms,
            source_partitions: source_partitions(metrics),
            cluster,
        })
    }
}
