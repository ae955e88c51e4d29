//! `tideflow demo`: generated events, a keyed one-second tumbling count, and a live report.

use std::io::Write;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::Args;
use hdrhistogram::Histogram;
use tideflow::Event;
use tideflow::WindowResult;

use super::duration_arg;
use crate::ui::{Graph, UiArgs, Watch};
use tideflow::aggregate::Count;
use tideflow::sink::{Parallelism, Sink};
use tideflow::source::RateSource;
use tideflow::Error;
use tideflow::Window;
use tideflow::{execute, Config, RecordsInHandle};

/// Arguments of `tideflow demo`.
#[derive(Debug, Args)]
pub(crate) struct DemoArgs {
    /// How long to generate events.
    #[arg(long, value_name = "DUR", default_value = "10s", value_parser = duration_arg)]
    duration: Duration,
    /// Events per second.
    #[arg(long, value_name = "N", default_value_t = 200_000, value_parser = clap::value_parser!(u64).range(1..))]
    rate: u64,
    /// Number of distinct keys.
    #[arg(long, value_name = "N", default_value_t = 8, value_parser = clap::value_parser!(u64).range(1..))]
    keys: u64,
    /// Tumbling window size.
    #[arg(long, value_name = "DUR", default_value = "1s", value_parser = duration_arg)]
    window: Duration,
    /// Worker threads.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=1024))]
    workers: u16,
    /// Serve a live dashboard of the demo at http://HOST:PORT/ (as `tideflow run --ui`); a
    /// PORT alone binds 127.0.0.1.
    #[arg(long, value_name = "[HOST:]PORT")]
    ui: Option<String>,
}

/// Runs `tideflow demo`.
pub(crate) fn demo(args: DemoArgs) -> Result<(), Error> {
    let workers = usize::from(args.workers);
    let window =
        Window::tumbling(args.window).map_err(|e| Error::Config(format!("--window: {e}")))?;
    outln!(
        "tideflow demo: {} events/s over {} keys for {:?}, {} tumbling count per key, {} worker(s)",
        args.rate,
        args.keys,
        args.duration,
        window,
        workers
    )?;
    let source = RateSource::new(args.rate)
        .keys(args.keys)
        .duration(args.duration)
        .partitions(workers);
    let watch = Watch::start(
        &UiArgs {
            ui: args.ui.clone(),
            quiet: true,
        },
        graph(&args, workers),
        false,
        None,
    )?;
    let mut config = Config::workers(workers);
    if !watch.is_empty() {
        let watched = watch.clone();
        config = config.progress(Duration::from_secs(1), move |p| watched.on_progress(p));
    }
    let report = execute(config, move |flow| {
        let records_in = flow.records_in();
        flow.source(source.clone())
            .with_event_time(|event| event.ts)
            .with_watermark(Duration::ZERO)
            .map(|event| (event.key, ()))
            .into_keyed()
            .window(window)
            .aggregate(Count)
            .sink(DemoSink::new(records_in));
        Ok(())
    })
    .inspect_err(|e| watch.on_error(e))?;
    outln!(
        "done: {} events in {:.1}s ({:.0} events/s), {} window rows, {} late events",
        report.records_in,
        report.elapsed.as_secs_f64(),
        report.records_in as f64 / report.elapsed.as_secs_f64(),
        report.records_out,
        report.late_dropped
    )?;
    Ok(())
}

/// The demo's operators, for its dashboard.
fn graph(args: &DemoArgs, workers: usize) -> Graph {
    let lines = vec![
        (
            "source",
            format!(
                "rate generator, {} events/s over {} keys for {:?} ({workers} partitions); event time ts, watermark delay 0ms",
                args.rate, args.keys, args.duration
            ),
        ),
        ("exchange", format!("by key -> {workers} worker(s)")),
        (
            "window",
            format!(
                "tumbling {:?}; one count per (key, window) once the watermark passes its end",
                args.window
            ),
        ),
        ("sink", "standard output (JSON lines) and the latency report, on worker 0".to_string()),
    ];
    Graph::from_explain("tideflow demo", lines, &["tumbling"])
}

/// Prints window rows, and each second the input rate and the window-close latency: the time
/// from the watermark passing a window's end (the generator's event time follows the wall
/// clock, and the watermark delay is zero, so that is when the wall clock passes the end) to
/// the row reaching this sink.
struct DemoSink {
    records_in: RecordsInHandle,
    interval: Histogram<u64>,
    total: Histogram<u64>,
    last_report: Instant,
    last_records: u64,
    buffer: Vec<u8>,
}

impl DemoSink {
    fn new(records_in: RecordsInHandle) -> Self {
        let histogram =
            || Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds");
        DemoSink {
            records_in,
            interval: histogram(),
            total: histogram(),
            last_report: Instant::now(),
            last_records: 0,
            buffer: Vec::new(),
        }
    }

    fn print(&mut self) -> Result<(), Error> {
        let mut stdout = std::io::stdout().lock();
        stdout
            .write_all(&self.buffer)
            .and_then(|()| stdout.flush())
            .map_err(|e| Error::io("writing to standard output", e))?;
        self.buffer.clear();
        Ok(())
    }
}

fn millis(histogram: &Histogram<u64>, quantile: f64) -> f64 {
    histogram.value_at_quantile(quantile) as f64 / 1_000.0
}

impl Sink<WindowResult<u64, u64>> for DemoSink {
    fn write(&mut self, batch: &mut Vec<Event<WindowResult<u64, u64>>>) -> Result<(), Error> {
        let now_us = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as u64);
        batch.sort_by_key(|event| (event.data.end, event.data.key));
        for event in batch.drain(..) {
            let row = event.data;
            // The last windows close early, when the input ends: they have no close latency.
            if let Some(latency) = now_us.checked_sub(row.end * 1_000) {
                let _ = self.interval.record(latency.max(1));
                let _ = self.total.record(latency.max(1));
            }
            let _ = writeln!(
                self.buffer,
                "{{\"key\":{},\"window_start\":{},\"window_end\":{},\"count\":{}}}",
                row.key, row.start, row.end, row.value
            );
        }
        let elapsed = self.last_report.elapsed();
        if elapsed >= Duration::from_millis(900) {
            let records = self.records_in.get();
            let rate = (records - self.last_records) as f64 / elapsed.as_secs_f64();
            let _ = writeln!(
                self.buffer,
                "-- {:>10.0} events/s | window-close latency p50 {:.2} ms  p99 {:.2} ms  max {:.2} ms ({} rows)",
                rate,
                millis(&self.interval, 0.5),
                millis(&self.interval, 0.99),
                self.interval.max() as f64 / 1_000.0,
                self.interval.len()
            );
            self.interval.reset();
            self.last_report = Instant::now();
            self.last_records = records;
        }
        self.print()
    }

    fn on_close(&mut self) -> Result<(), Error> {
        if !self.total.is_empty() {
            let _ = writeln!(
                self.buffer,
                "window-close latency over the run: p50 {:.2} ms  p90 {:.2} ms  p99 {:.2} ms  max {:.2} ms",
                millis(&self.total, 0.5),
                millis(&self.total, 0.9),
                millis(&self.total, 0.99),
                self.total.max() as f64 / 1_000.0
            );
        }
        self.print()
    }

    fn parallelism(&self) -> Parallelism {
        Parallelism::Single
    }
}
