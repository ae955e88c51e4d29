//! What `tideflow bench` prints: tables, JSON reports, and the targets checked against
//! them.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

use super::measure::{Measurement, Scenario, Workload};
use tideflow::Error;
use tideflow::Trigger;

/// A duration as the flags write it.
pub(super) fn show(duration: Duration) -> String {
    let ms = duration.as_millis();
    if ms >= 1_000 && ms.is_multiple_of(1_000) {
        format!("{}s", ms / 1_000)
    } else {
        format!("{ms}ms")
    }
}

/// A trigger as `--trigger` writes it.
pub(super) fn mode_name(trigger: Trigger) -> String {
    match trigger {
        Trigger::Continuous => "continuous".to_string(),
        Trigger::Interval(interval) => format!("interval:{}", show(interval)),
        Trigger::AvailableNow => "available-now".to_string(),
        Trigger::Once => "once".to_string(),
    }
}

/// Whether the workload is the one the targets are stated for: 1,000 keys in 1 s windows.
pub(super) fn is_target_shape(workload: &Workload) -> bool {
    workload.keys == 1_000 && workload.window == Duration::from_secs(1)
}

/// The targets that apply to one run of `workload`.
pub(super) fn latency_targets(workload: &Workload, run: &RunReport) -> Vec<Target> {
    let mut targets = Vec::new();
    if workload.rate != 1_000_000 || workload.trigger != Trigger::Continuous {
        return targets;
    }
    match workload.scenario {
        Scenario::Window if is_target_shape(workload) => {
            if workload.workers == 1 {
                targets.push(Target::below(
                    "continuous window-close p50 < 1 ms, 1 worker",
                    run.latency_ms.p50,
                    1.0,
                ));
                targets.push(Target::below(
                    "continuous window-close p99 < 2 ms, 1 worker",
                    run.latency_ms.p99,
                    2.0,
                ));
            } else if workload.workers == 2 {
                targets.push(Target::below(
                    "continuous window-close p99 < 5 ms, 2 workers",
                    run.latency_ms.p99,
                    5.0,
                ));
            }
        }
        Scenario::Window => {}
        Scenario::Stateless => targets.push(Target::below(
            "stateless ingest-to-sink p99 < 1 ms",
            run.latency_ms.p99,
            1.0,
        )),
    }
    targets
}

/// The targets that compare modes: continuous p99 against micro-batch p50 at 100 ms, and each
/// micro-batch p50 against its interval.
pub(super) fn compare_targets(workload: &Workload, runs: &[RunReport]) -> Vec<Target> {
    let mut targets = Vec::new();
    if workload.scenario != Scenario::Window
        || workload.rate != 1_000_000
        || !is_target_shape(workload)
    {
        return targets;
    }
    let continuous = runs.iter().find(|run| run.trigger == Trigger::Continuous);
    for run in runs {
        let Trigger::Interval(interval) = run.trigger else {
            continue;
        };
        let interval_ms = interval.as_secs_f64() * 1_000.0;
        targets.push(Target::below(
            &format!(
                "{} p50 within 5 ms of its interval (distance, ms)",
                run.mode
            ),
            (run.latency_ms.p50 - interval_ms).abs(),
            5.0,
        ));
        if let (Some(continuous), true) = (continuous, interval == Duration::from_millis(100)) {
            targets.push(Target::at_least(
                "continuous p99 at least 50x below interval:100ms p50 (ratio)",
                run.latency_ms.p50 / continuous.latency_ms.p99.max(0.001),
                50.0,
            ));
        }
    }
    targets
}

/// One line of the table header, for a scenario.
pub(super) fn table_header(scenario: Scenario) -> String {
    let what = match scenario {
        Scenario::Window => "window-close latency (ms)",
        Scenario::Stateless => "ingest-to-sink latency (ms)",
    };
    format!(
        "{what}\n{:<16} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>12}\n",
        "mode", "samples", "p50", "p90", "p99", "p99.9", "max", "events/s"
    )
}

/// Writes a run's row (and, for windows, its source and engine parts) to `out`.
pub(super) fn write_run(out: &mut String, run: &RunReport) {
    let row = |out: &mut String, name: &str, samples: &str, p: &Percentiles, rate: &str| {
        let _ = writeln!(
            out,
            "{name:<16} {samples:>9} {:>9.3} {:>9.3} {:>9.3} {:>9.3} {:>9.3} {rate:>12}",
            p.p50, p.p90, p.p99, p.p99_9, p.max
        );
    };
    row(
        out,
        &run.mode,
        &run.samples.to_string(),
        &run.latency_ms,
        &format!("{:.0}", run.achieved_rate),
    );
    if let (Some(source), Some(engine)) = (&run.source_ms, &run.engine_ms) {
        row(out, "  of which source", "", source, "");
        row(out, "  of which engine", "", engine, "");
    }
    if run.achieved_rate < 0.95 * run.rate as f64 {
        let _ = writeln!(
            out,
            "  (the engine did not keep up: {:.0} of {} events/s)",
            run.achieved_rate, run.rate
        );
    }
}

pub(super) fn write_targets(out: &mut String, targets: &[Target]) {
    for target in targets {
        let _ = writeln!(
            out,
            "target {}: {} (measured {}, limit {})",
            target.target,
            if target.met { "met" } else { "MISSED" },
            round(target.value),
            round(target.limit)
        );
    }
}

/// A number with µs precision (3 decimals) when it is small, whole when it is large.
pub(super) fn round(value: f64) -> String {
    if value.abs() >= 10_000.0 {
        format!("{value:.0}")
    } else {
        format!("{value:.3}")
    }
}

/// The first line of a latency or compare report.
pub(super) fn describe(workload: &Workload) -> String {
    let pipeline = match workload.scenario {
        Scenario::Window => format!(
            "{} keys, {} tumbling count",
            workload.keys,
            show(workload.window)
        ),
        Scenario::Stateless => "map and filter".to_string(),
    };
    format!(
        "tideflow bench: {} scenario, {} events/s, {pipeline}, {} worker(s), {} per run (first {} \
         not measured)",
        workload.scenario.name(),
        workload.rate,
        workload.workers,
        show(workload.duration),
        show(workload.warmup)
    )
}

/// Creates (or truncates) an output file before the benchmark runs, so that a bad path fails
/// at once.
pub(super) fn create(path: &Path) -> Result<(PathBuf, std::fs::File), Error> {
    let file = std::fs::File::create(path)
        .map_err(|e| Error::io(format!("cannot create {}", path.display()), e))?;
    Ok((path.to_path_buf(), file))
}

/// Writes `percentile,latency_us` rows of the whole distribution.
pub(super) fn write_distribution(
    path: &Path,
    file: std::fs::File,
    histogram: &Histogram<u64>,
) -> Result<(), Error> {
    let mut csv = String::from("percentile,latency_us\n");
    for step in histogram.iter_quantiles(5) {
        let _ = writeln!(
            csv,
            "{:.6},{}",
            step.quantile_iterated_to() * 100.0,
            step.value_iterated_to()
        );
    }
    let mut file = std::io::BufWriter::new(file);
    file.write_all(csv.as_bytes())
        .and_then(|()| file.flush())
        .map_err(|e| Error::io(format!("writing {}", path.display()), e))
}

pub(super) fn print(text: &str) -> Result<(), Error> {
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
        .map_err(|e| Error::io("writing to standard output", e))
}

pub(super) fn print_json(report: &impl Serialize) -> Result<(), Error> {
    let mut text = serde_json::to_string(report)
        .map_err(|e| Error::Internal(format!("cannot encode the report as JSON: {e}")))?;
    text.push('\n');
    print(&text)
}

/// Latency percentiles in ms, with µs precision.
#[derive(Clone, Debug, Serialize)]
pub(super) struct Percentiles {
    pub(super) p50: f64,
    pub(super) p90: f64,
    pub(super) p99: f64,
    pub(super) p99_9: f64,
    pub(super) max: f64,
}

impl Percentiles {
    pub(super) fn of(histogram: &Histogram<u64>) -> Self {
        let ms = |us: u64| us as f64 / 1_000.0;
        Percentiles {
            p50: ms(histogram.value_at_quantile(0.5)),
            p90: ms(histogram.value_at_quantile(0.9)),
            p99: ms(histogram.value_at_quantile(0.99)),
            p99_9: ms(histogram.value_at_quantile(0.999)),
            max: ms(histogram.max()),
        }
    }
}

/// One run, as printed and as JSON.
#[derive(Debug, Serialize)]
pub(super) struct RunReport {
    pub(super) mode: String,
    #[serde(skip)]
    pub(super) trigger: Trigger,
    /// Rows (window) or records (stateless) measured.
    pub(super) samples: u64,
    pub(super) latency_ms: Percentiles,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) source_ms: Option<Percentiles>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) engine_ms: Option<Percentiles>,
    pub(super) rate: u64,
    pub(super) records_in: u64,
    pub(super) achieved_rate: f64,
}

impl RunReport {
    pub(super) fn new(workload: &Workload, measurement: &Measurement) -> Self {
        RunReport {
            mode: mode_name(workload.trigger),
            trigger: workload.trigger,
            samples: measurement.latency.len(),
            latency_ms: Percentiles::of(&measurement.latency),
            source_ms: measurement.source.as_ref().map(Percentiles::of),
            engine_ms: measurement.engine.as_ref().map(Percentiles::of),
            rate: workload.rate,
            records_in: measurement.records_in,
            achieved_rate: measurement.achieved_rate.round(),
        }
    }
}

#[derive(Debug, Serialize)]
pub(super) struct WorkloadReport {
    pub(super) scenario: &'static str,
    pub(super) rate: u64,
    pub(super) keys: u64,
    pub(super) window_ms: u64,
    pub(super) workers: usize,
    pub(super) duration_ms: u64,
    pub(super) warmup_ms: u64,
}

impl WorkloadReport {
    pub(super) fn new(workload: &Workload) -> Self {
        WorkloadReport {
            scenario: workload.scenario.name(),
            rate: workload.rate,
            keys: workload.keys,
            window_ms: workload.window.as_millis() as u64,
            workers: workload.workers,
            duration_ms: workload.duration.as_millis() as u64,
            warmup_ms: workload.warmup.as_millis() as u64,
        }
    }
}

#[derive(Debug, Serialize)]
pub(super) struct LatencyReport {
    pub(super) workload: WorkloadReport,
    #[serde(flatten)]
    pub(super) run: RunReport,
    pub(super) targets: Vec<Target>,
}

#[derive(Debug, Serialize)]
pub(super) struct CompareReport {
    pub(super) workload: WorkloadReport,
    pub(super) runs: Vec<RunReport>,
    pub(super) targets: Vec<Target>,
}

/// One probe of the throughput search.
#[derive(Debug, Serialize)]
pub(super) struct Probe {
    pub(super) rate: u64,
    pub(super) achieved_rate: f64,
    pub(super) samples: u64,
    pub(super) p99_ms: f64,
    pub(super) max_ms: f64,
    pub(super) sustained: bool,
}

impl Probe {
    pub(super) fn new(rate: u64, measurement: &Measurement, target_us: u64) -> Self {
        let latency = &measurement.latency;
        Probe {
            rate,
            achieved_rate: measurement.achieved_rate.round(),
            samples: latency.len(),
            p99_ms: latency.value_at_quantile(0.99) as f64 / 1_000.0,
            max_ms: latency.max() as f64 / 1_000.0,
            sustained: !measurement.fell_behind
                && !latency.is_empty()
                && latency.value_at_quantile(0.99) < target_us
                && measurement.achieved_rate >= 0.95 * rate as f64,
        }
    }
}

#[derive(Debug, Serialize)]
pub(super) struct ThroughputReport {
    pub(super) workers: usize,
    pub(super) keys: u64,
    pub(super) window_ms: u64,
    pub(super) p99_target_ms: f64,
    pub(super) probe_ms: u64,
    pub(super) sustained_rate: u64,
    /// Whether the search finished (bounds within 5%, or the first or highest rate decided)
    /// before it ran out of probes; if not, `sustained_rate` is a lower bound.
    pub(super) complete: bool,
    pub(super) probes: Vec<Probe>,
    pub(super) targets: Vec<Target>,
}

/// A target of the issue, checked against a measurement.
#[derive(Debug, Serialize)]
pub(super) struct Target {
    pub(super) target: String,
    pub(super) value: f64,
    pub(super) limit: f64,
    pub(super) met: bool,
}

impl Target {
    pub(super) fn below(target: &str, value: f64, limit: f64) -> Self {
        Target {
            target: target.to_string(),
            value,
            limit,
            met: value < limit,
        }
    }

    pub(super) fn at_least(target: &str, value: f64, limit: f64) -> Self {
        Target {
            target: target.to_string(),
            value,
            limit,
            met: value >= limit,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_apply_only_to_the_target_workload() {
        let run = |p50: f64, p99: f64| RunReport {
            mode: "continuous".into(),
            trigger: Trigger::Continuous,
            samples: 1,
            latency_ms: Percentiles {
                p50,
                p90: p99,
                p99,
                p99_9: p99,
                max: p99,
            },
            source_ms: None,
            engine_ms: None,
            rate: 1_000_000,
            records_in: 1,
            achieved_rate: 1e6,
        };
        let workload = Workload {
            scenario: Scenario::Window,
            rate: 1_000_000,
            duration: Duration::from_secs(10),
            workers: 1,
            keys: 1_000,
            window: Duration::from_secs(1),
            warmup: Duration::from_secs(1),
            trigger: Trigger::Continuous,
            max_lag: None,
        };
        let checked = latency_targets(&workload, &run(0.5, 3.0));
        assert_eq!(
            checked.iter().map(|t| t.met).collect::<Vec<_>>(),
            [true, false]
        );
        let other = Workload {
            keys: 8,
            ..workload.clone()
        };
        assert!(latency_targets(&other, &run(0.5, 3.0)).is_empty());
        let mut batch = run(101.0, 101.5);
        batch.mode = "interval:100ms".into();
        batch.trigger = Trigger::Interval(Duration::from_millis(100));
        let compared = compare_targets(&workload, &[run(0.5, 1.5), batch]);
        assert_eq!(compared.len(), 2);
        assert!(compared.iter().all(|t| t.met), "{compared:?}");
    }
}
