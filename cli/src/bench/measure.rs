//! One benchmark run: a paced generator, the scenario's pipeline, and sinks that record latency
//! in per-worker histograms, merged when the job ends.
//!
//! The generator, [`BenchSource`], emits `RateSource`'s records on `RateSource`'s schedule
//! (record `i` is released once the wall clock, read in whole milliseconds, reaches its due
//! time `start + i * 1000 / rate`; a caught-up source sleeps at least 1 ms), and stamps each
//! record with the wall-clock microsecond at which it was read. It also notes, per window end,
//! when the last source read a record at or past that end: the moment the watermark passed it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use tideflow::WindowResult;
use tideflow::{Event, Trigger};

use tideflow::aggregate::Count;
use tideflow::sink::Sink;
use tideflow::source::{RateRecord, RateSource, Source, SourceBatch, SourceContext, SourceStatus};
use tideflow::Error;
use tideflow::Window;
use tideflow::{execute, Config};

/// Records generated per read at most (as `RateSource` does).
const BATCH: u64 = 4096;
/// How long after the job is set up the generator's schedule starts: worker start-up.
const LEAD_MS: u64 = 50;
/// Input generated past the measured span, so that the last measured window closes because the
/// watermark passed it, not because the input ended.
const TAIL_MS: u64 = 50;
/// The largest latency a histogram holds, in µs (one hour); larger values count as this.
const MAX_LATENCY_US: u64 = 3_600_000_000;

/// What a run measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Scenario {
    /// A keyed tumbling count: window-close latency, from the moment the wall clock (and so
    /// the watermark) passes a window's end to the moment its row reaches the sink.
    Window,
    /// A map and a filter: ingest-to-sink latency per record, from the moment the source read
    /// the record to the moment it reaches the sink.
    Stateless,
}

impl Scenario {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Scenario::Window => "window",
            Scenario::Stateless => "stateless",
        }
    }
}

/// One run's workload, validated.
#[derive(Clone, Debug)]
pub(crate) struct Workload {
    pub(crate) scenario: Scenario,
    /// Events per second, over all workers.
    pub(crate) rate: u64,
    /// The measured span, warm-up included.
    pub(crate) duration: Duration,
    pub(crate) workers: usize,
    pub(crate) keys: u64,
    pub(crate) window: Duration,
    /// The start of the run that is not measured.
    pub(crate) warmup: Duration,
    pub(crate) trigger: Trigger,
    /// Ends the run early, as not sustained, when the generator falls this far behind its
    /// schedule. By default (`None`), never.
    pub(crate) max_lag: Option<Duration>,
}

/// What a run measured. Latencies are in µs.
pub(crate) struct Measurement {
    /// Window-close latency (window scenario) or ingest-to-sink latency (stateless).
    pub(crate) latency: Histogram<u64>,
    /// Window scenario: from the window end to the moment the last source read past it.
    pub(crate) source: Option<Histogram<u64>>,
    /// Window scenario: from that read to the sink.
    pub(crate) engine: Option<Histogram<u64>>,
    pub(crate) records_in: u64,
    /// Records read per second of the generator's schedule: the rate asked for, if the engine
    /// kept up.
    pub(crate) achieved_rate: f64,
    /// The generator fell further behind than `max_lag` and stopped early.
    pub(crate) fell_behind: bool,
}

pub(crate) fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).expect("valid histogram bounds")
}

fn wall_clock_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

fn whole_ms(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// Runs `workload` once.
pub(crate) fn run(workload: &Workload) -> Result<Measurement, Error> {
    let window =
        Window::tumbling(workload.window).map_err(|e| Error::Config(format!("--window: {e}")))?;
    let window_ms = whole_ms(workload.window);
    let start_ms = wall_clock_us() / 1_000 + LEAD_MS;
    let span = Span {
        from_ms: start_ms.saturating_add(whole_ms(workload.warmup)),
        to_ms: start_ms.saturating_add(whole_ms(workload.duration)),
    };
    // With an interval trigger a window closes at the first boundary after its end: keep the
    // input going until then.
    let interval_ms = match workload.trigger {
        Trigger::Interval(interval) => whole_ms(interval),
        _ => 0,
    };
    let generated_ms = whole_ms(workload.duration)
        .saturating_add(interval_ms)
        .saturating_add(TAIL_MS);
    let count = u64::try_from(u128::from(workload.rate) * u128::from(generated_ms) / 1_000)
        .unwrap_or(u64::MAX);
    let recorder = Arc::new(Recorder::default());
    let source = BenchSource {
        generator: RateSource::new(workload.rate)
            .keys(workload.keys)
            .start_time(start_ms)
            .partitions(workload.workers),
        rate: workload.rate,
        start_ms,
        count,
        window_ms: (workload.scenario == Scenario::Window).then_some(window_ms),
        max_lag_ms: workload.max_lag.map(whole_ms),
        recorder: Arc::clone(&recorder),
        cursor: 0,
        stride: 1,
        next_end: 0,
    };
    let scenario = workload.scenario;
    let job_recorder = Arc::clone(&recorder);
    let config = Config::workers(workload.workers).trigger(workload.trigger);
    let report = execute(config, move |flow| {
        let recorder = Arc::clone(&job_recorder);
        let stream = flow
            .source(source.clone())
            .with_event_time(|stamped: &Stamped| stamped.record.ts)
            .with_watermark(Duration::ZERO);
        match scenario {
            Scenario::Window => stream
                .map(|stamped| (stamped.record.key, ()))
                .into_keyed()
                .window(window)
                .aggregate(Count)
                .sink(WindowSink::new(recorder, span)),
            Scenario::Stateless => stream
                .map(|mut stamped| {
                    stamped.record.value = stamped.record.value * 3 + 1;
                    stamped
                })
                .filter(|stamped| stamped.record.value % 10 != 0)
                .sink(StatelessSink::new(recorder, span)),
        }
        Ok(())
    })?;
    let histograms = std::mem::take(&mut *lock(&recorder.histograms));
    let elapsed_us = recorder
        .last_read_us
        .load(Ordering::Relaxed)
        .saturating_sub(start_ms * 1_000)
        .max(1_000);
    Ok(Measurement {
        latency: histograms.latency,
        source: (scenario == Scenario::Window).then_some(histograms.source),
        engine: (scenario == Scenario::Window).then_some(histograms.engine),
        records_in: report.records_in,
        achieved_rate: report.records_in as f64 * 1e6 / elapsed_us as f64,
        fell_behind: recorder.fell_behind.load(Ordering::Relaxed),
    })
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The measured part of a run, in event time (ms): what ends, or is stamped, after the warm-up
/// and before the end of the duration.
#[derive(Clone, Copy, Debug)]
struct Span {
    from_ms: u64,
    to_ms: u64,
}

impl Span {
    fn contains_end(self, end: u64) -> bool {
        end > self.from_ms && end <= self.to_ms
    }

    fn contains_time(self, time: u64) -> bool {
        time >= self.from_ms && time < self.to_ms
    }
}

/// What the workers of a run share: histograms merged once per worker at close, and the
/// generator's notes, touched once per read or per window.
#[derive(Default)]
struct Recorder {
    histograms: Mutex<Histograms>,
    /// Window end (ms) -> the latest wall-clock µs at which a source read past it.
    passed: Mutex<HashMap<u64, u64>>,
    last_read_us: AtomicU64,
    fell_behind: AtomicBool,
}

struct Histograms {
    latency: Histogram<u64>,
    source: Histogram<u64>,
    engine: Histogram<u64>,
}

impl Default for Histograms {
    fn default() -> Self {
        Histograms {
            latency: histogram(),
            source: histogram(),
            engine: histogram(),
        }
    }
}

impl Histograms {
    fn merge_into(&mut self, recorder: &Recorder) -> Result<(), Error> {
        let mut total = lock(&recorder.histograms);
        let merged = total
            .latency
            .add(&self.latency)
            .and_then(|()| total.source.add(&self.source))
            .and_then(|()| total.engine.add(&self.engine));
        merged.map_err(|e| Error::Internal(format!("cannot merge latency histograms: {e:?}")))
    }
}

/// A generated record and the wall-clock µs at which the source read it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Stamped {
    record: RateRecord,
    read_us: u64,
}

/// `RateSource`'s records and schedule, each record stamped with its read time. Each worker
/// reads one partition: records `worker_index + k * workers`.
#[derive(Clone)]
struct BenchSource {
    generator: RateSource,
    rate: u64,
    start_ms: u64,
    /// Records in all, over every partition.
    count: u64,
    /// The window size, when window ends are to be noted.
    window_ms: Option<u64>,
    max_lag_ms: Option<u64>,
    recorder: Arc<Recorder>,
    cursor: u64,
    stride: u64,
    /// The next window end to note.
    next_end: u64,
}

impl BenchSource {
    /// When record `index` is due, in ms.
    fn due_time(&self, index: u64) -> u64 {
        self.start_ms + (u128::from(index) * 1_000 / u128::from(self.rate)) as u64
    }

    /// Notes the window ends this read passed: a record stamped `last_ts` was read at `now_us`.
    fn note_passed(&mut self, last_ts: u64, now_us: u64) {
        let Some(window_ms) = self.window_ms else {
            return;
        };
        if self.next_end > last_ts {
            return;
        }
        let mut passed = lock(&self.recorder.passed);
        while self.next_end <= last_ts {
            let at = passed.entry(self.next_end).or_insert(now_us);
            *at = (*at).max(now_us);
            self.next_end += window_ms;
        }
    }
}

impl Source for BenchSource {
    type Item = Stamped;

    fn on_start(&mut self, context: &SourceContext) -> Result<(), Error> {
        self.generator.on_start(context)?;
        self.cursor = context.worker_index as u64;
        self.stride = context.peers.max(1) as u64;
        if let Some(window_ms) = self.window_ms {
            self.next_end = (self.start_ms / window_ms + 1) * window_ms;
        }
        Ok(())
    }

    fn read(&mut self, batch: &mut SourceBatch<Stamped>) -> Result<SourceStatus, Error> {
        let now_us = wall_clock_us();
        let now_ms = now_us / 1_000;
        // Every record whose event time (a whole millisecond) has begun on the wall clock is
        // due: the records of millisecond `m` are read from `m` on, by every worker.
        let due = if now_ms < self.start_ms {
            0
        } else {
            (u128::from(now_ms - self.start_ms + 1) * u128::from(self.rate))
                .div_ceil(1_000)
                .min(u128::from(self.count)) as u64
        };
        let stop = due.min(self.cursor.saturating_add(BATCH * self.stride));
        let mut last_ts = None;
        while self.cursor < stop {
            let record = self.generator.record(self.cursor);
            last_ts = Some(record.ts);
            batch.push(
                0,
                Stamped {
                    record,
                    read_us: now_us,
                },
            );
            self.cursor += self.stride;
        }
        if let Some(last_ts) = last_ts {
            self.note_passed(last_ts, now_us);
            self.recorder
                .last_read_us
                .fetch_max(now_us, Ordering::Relaxed);
        }
        if self.cursor >= self.count {
            batch.finish_partition(0);
            return Ok(SourceStatus::Done);
        }
        if self.cursor < due {
            let lag = now_ms.saturating_sub(self.due_time(self.cursor));
            if self.max_lag_ms.is_some_and(|max_lag| lag > max_lag) {
                self.recorder.fell_behind.store(true, Ordering::Relaxed);
                batch.finish_partition(0);
                return Ok(SourceStatus::Done);
            }
            return Ok(SourceStatus::Ready);
        }
        // Sleep until the millisecond of the next record begins.
        let wait_us = (self.due_time(self.cursor) * 1_000).saturating_sub(now_us);
        Ok(SourceStatus::Wait(Duration::from_micros(
            wait_us.clamp(1, 100_000),
        )))
    }
}

/// Records window-close latency, and its source and engine parts, for the rows of measured
/// windows.
struct WindowSink {
    recorder: Arc<Recorder>,
    span: Span,
    local: Histograms,
    /// The last window end looked up, and when the sources passed it.
    passed: Option<(u64, Option<u64>)>,
}

impl WindowSink {
    fn new(recorder: Arc<Recorder>, span: Span) -> Self {
        WindowSink {
            recorder,
            span,
            local: Histograms::default(),
            passed: None,
        }
    }

    fn passed_us(&mut self, end: u64) -> Option<u64> {
        match self.passed {
            Some((cached, at)) if cached == end => at,
            _ => {
                let at = lock(&self.recorder.passed).get(&end).copied();
                self.passed = Some((end, at));
                at
            }
        }
    }
}

impl Sink<WindowResult<u64, u64>> for WindowSink {
    fn write(&mut self, batch: &mut Vec<Event<WindowResult<u64, u64>>>) -> Result<(), Error> {
        let now_us = wall_clock_us();
        for event in batch.drain(..) {
            let end = event.data.end;
            if !self.span.contains_end(end) {
                continue;
            }
            let end_us = end * 1_000;
            self.local
                .latency
                .saturating_record(now_us.saturating_sub(end_us));
            if let Some(passed_us) = self.passed_us(end) {
                self.local
                    .source
                    .saturating_record(passed_us.saturating_sub(end_us));
                self.local
                    .engine
                    .saturating_record(now_us.saturating_sub(passed_us));
            }
        }
        Ok(())
    }

    fn on_close(&mut self) -> Result<(), Error> {
        self.local.merge_into(&self.recorder)
    }
}

/// Records ingest-to-sink latency for the records stamped in the measured span.
struct StatelessSink {
    recorder: Arc<Recorder>,
    span: Span,
    local: Histograms,
}

impl StatelessSink {
    fn new(recorder: Arc<Recorder>, span: Span) -> Self {
        StatelessSink {
            recorder,
            span,
            local: Histograms::default(),
        }
    }
}

impl Sink<Stamped> for StatelessSink {
    fn write(&mut self, batch: &mut Vec<Event<Stamped>>) -> Result<(), Error> {
        let now_us = wall_clock_us();
        for event in batch.drain(..) {
            if self.span.contains_time(event.data.record.ts) {
                self.local
                    .latency
                    .saturating_record(now_us.saturating_sub(event.data.read_us));
            }
        }
        Ok(())
    }

    fn on_close(&mut self) -> Result<(), Error> {
        self.local.merge_into(&self.recorder)
    }
}
