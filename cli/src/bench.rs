//! `tideflow bench`: the latency and throughput benchmarks of docs/BENCHMARKS.md.
//!
//! Each run is a whole job on generated events (the same records and millisecond schedule as
//! `RateSource`, whose event time follows the wall clock, with a watermark delay of zero):
//!
//! - `bench latency` runs one scenario under one trigger and prints latency percentiles and
//!   the achieved rate. The *window* scenario is a keyed tumbling count; its window-close
//!   latency runs from the moment the wall clock passes a window's end (which is when the
//!   generator's watermark may pass it) to the moment the sink receives the row, and is split
//!   into the source's part (until a source reads the first record at or past the end) and the
//!   engine's (from that read to the sink). The *stateless* scenario is a map and a filter;
//!   its latency runs from the moment the source read a record to the moment it reaches the
//!   sink. The first `--warmup` of each run is not measured.
//! - `bench compare` runs the same workload continuously and in micro-batches at several
//!   intervals, side by side, and can plot their latency CDFs.
//! - `bench throughput` searches for the highest rate whose p99 window-close latency stays
//!   under a target while the generator keeps to its schedule.
//! - `bench nexmark` runs a NEXMark query on events generated beforehand and reports its
//!   throughput (`bench/nexmark/`).
//!
//! When the workload is the one of the targets (1,000,000 events/s, 1,000 keys, 1 s
//! windows), each command checks the targets and says which it missed. Run it with, e.g.,
//! `cargo run --release -- bench latency --workers 2` or `scripts/benchmarks.sh`.

mod measure;
mod nexmark;
mod plot;
mod report;
mod search;

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand};
use hdrhistogram::Histogram;

use self::measure::{Measurement, Scenario, Workload};
use self::report::{
    compare_targets, create, describe, is_target_shape, latency_targets, mode_name, print,
    print_json, show, table_header, write_distribution, write_run, write_targets, CompareReport,
    LatencyReport, Probe, RunReport, Target, ThroughputReport, WorkloadReport,
};
use self::search::RateSearch;
use super::{duration_arg, trigger_arg};
use tideflow::Error;
use tideflow::Trigger;

/// Arguments of `tideflow bench`.
#[derive(Debug, Args)]
pub(crate) struct BenchArgs {
    #[command(subcommand)]
    command: BenchCommand,
}

#[derive(Debug, Subcommand)]
enum BenchCommand {
    /// Measure window-close (or ingest-to-sink) latency under one trigger.
    Latency(LatencyArgs),
    /// Measure the same workload continuously and in micro-batches, side by side.
    Compare(CompareArgs),
    /// Find the highest rate sustained with p99 window-close latency under a target.
    Throughput(ThroughputArgs),
    /// Run a NEXMark query on pre-generated events and report its throughput.
    Nexmark(nexmark::NexmarkArgs),
}

/// The workload flags of `bench latency` and `bench compare`.
#[derive(Clone, Debug, Args)]
struct WorkloadArgs {
    /// What to measure: a keyed tumbling count (window-close latency) or a map and filter
    /// (ingest-to-sink latency per record).
    #[arg(long, value_enum, default_value_t = Scenario::Window)]
    scenario: Scenario,
    /// Events per second, over all workers.
    #[arg(long, value_name = "N", default_value_t = 1_000_000, value_parser = clap::value_parser!(u64).range(1..))]
    rate: u64,
    /// How long each run is measured, the warm-up included.
    #[arg(long, value_name = "DUR", default_value = "10s", value_parser = duration_arg)]
    duration: Duration,
    #[command(flatten)]
    shape: ShapeArgs,
}

/// The flags every benchmark shares: workers, keys, window and warm-up.
#[derive(Clone, Debug, Args)]
struct ShapeArgs {
    /// Worker threads.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=1024))]
    workers: u16,
    /// Number of distinct keys.
    #[arg(long, value_name = "N", default_value_t = 1_000, value_parser = clap::value_parser!(u64).range(1..))]
    keys: u64,
    /// Tumbling window size.
    #[arg(long, value_name = "DUR", default_value = "1s", value_parser = duration_arg)]
    window: Duration,
    /// The start of each run that is not measured (start-up: threads, first allocations):
    /// windows that end, or records stamped, within it are left out.
    #[arg(long, value_name = "DUR", default_value = "1s", value_parser = duration_arg)]
    warmup: Duration,
}

/// Arguments of `tideflow bench latency`.
#[derive(Debug, Args)]
struct LatencyArgs {
    #[command(flatten)]
    workload: WorkloadArgs,
    /// When results leave: continuous or interval:DUR.
    #[arg(long, value_name = "TRIGGER", default_value = "continuous", value_parser = trigger_arg)]
    trigger: Trigger,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
    /// Also write the full latency distribution to this file, as CSV of
    /// `percentile,latency_us`.
    #[arg(long, value_name = "PATH")]
    distribution: Option<PathBuf>,
}

/// Arguments of `tideflow bench compare`.
#[derive(Debug, Args)]
struct CompareArgs {
    #[command(flatten)]
    workload: WorkloadArgs,
    /// The micro-batch intervals to run next to continuous mode, separated by commas.
    #[arg(long, value_name = "DUR,..", value_delimiter = ',', default_value = "10ms,100ms,1s", value_parser = interval_arg)]
    intervals: Vec<Duration>,
    /// Write the latency CDF of every mode to this SVG file.
    #[arg(long, value_name = "FILE.svg")]
    plot: Option<PathBuf>,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
}

/// Arguments of `tideflow bench throughput`.
#[derive(Debug, Args)]
struct ThroughputArgs {
    #[command(flatten)]
    shape: ShapeArgs,
    /// The p99 window-close latency a sustained rate stays under.
    #[arg(long, value_name = "DUR", default_value = "10ms", value_parser = duration_arg)]
    p99_target: Duration,
    /// The first rate tried (events/s); the search doubles it while it is sustained, and
    /// halves it while it is not, then bisects.
    #[arg(long, value_name = "N", default_value_t = 1_000_000, value_parser = clap::value_parser!(u64).range(1..))]
    rate: u64,
    /// The highest rate tried.
    #[arg(long, value_name = "N", default_value_t = 256_000_000, value_parser = clap::value_parser!(u64).range(1..))]
    max_rate: u64,
    /// How long each probe runs, the warm-up included.
    #[arg(long, value_name = "DUR", default_value = "3s", value_parser = duration_arg)]
    probe: Duration,
    /// The most probes the search runs; it stops earlier once it has the rate within 5%.
    #[arg(long, value_name = "N", default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=100))]
    max_probes: u32,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
}

/// Parses a micro-batch interval (longer than zero) for clap.
fn interval_arg(text: &str) -> Result<Duration, String> {
    match duration_arg(text)? {
        Duration::ZERO => Err("an interval must be longer than 0ms".to_string()),
        interval => Ok(interval),
    }
}

/// Runs `tideflow bench`.
pub(crate) fn bench(args: BenchArgs) -> Result<(), Error> {
    match args.command {
        BenchCommand::Latency(args) => latency(args),
        BenchCommand::Compare(args) => compare(args),
        BenchCommand::Throughput(args) => throughput(args),
        BenchCommand::Nexmark(args) => nexmark::nexmark(args),
    }
}

impl ShapeArgs {
    /// The workload these flags describe, with `scenario`, `rate` and `duration` (the flag
    /// that names the duration being `duration_flag`).
    fn workload(
        &self,
        scenario: Scenario,
        rate: u64,
        duration: Duration,
        duration_flag: &str,
    ) -> Result<Workload, Error> {
        if self.window.is_zero() {
            return Err(Error::Config(
                "--window: a window must be longer than 0ms".to_string(),
            ));
        }
        if duration <= self.warmup {
            return Err(Error::Config(format!(
                "{duration_flag} ({}) must be longer than --warmup ({})",
                show(duration),
                show(self.warmup)
            )));
        }
        if scenario == Scenario::Window && duration - self.warmup < self.window {
            return Err(Error::Config(format!(
                "{duration_flag} ({}) must be at least --warmup plus --window ({} + {}), so that a \
                 window closes after the warm-up",
                show(duration),
                show(self.warmup),
                show(self.window)
            )));
        }
        Ok(Workload {
            scenario,
            rate,
            duration,
            workers: usize::from(self.workers),
            keys: self.keys,
            window: self.window,
            warmup: self.warmup,
            trigger: Trigger::Continuous,
            max_lag: None,
        })
    }
}

impl WorkloadArgs {
    fn workload(&self) -> Result<Workload, Error> {
        self.shape
            .workload(self.scenario, self.rate, self.duration, "--duration")
    }
}

/// Runs `tideflow bench latency`.
fn latency(args: LatencyArgs) -> Result<(), Error> {
    let mut workload = args.workload.workload()?;
    if !matches!(args.trigger, Trigger::Continuous | Trigger::Interval(_)) {
        return Err(Error::Config(format!(
            "--trigger: the benchmark's generator never runs dry, so it needs continuous or \
             interval:DUR, not {}",
            mode_name(args.trigger)
        )));
    }
    workload.trigger = args.trigger;
    let distribution = args.distribution.as_deref().map(create).transpose()?;
    if !args.json {
        outln!("{}", describe(&workload))?;
    }
    let measurement = measure(&workload)?;
    let run = RunReport::new(&workload, &measurement);
    if let Some((path, file)) = distribution {
        write_distribution(&path, file, &measurement.latency)?;
    }
    let targets = latency_targets(&workload, &run);
    if args.json {
        let report = LatencyReport {
            workload: WorkloadReport::new(&workload),
            run,
            targets,
        };
        print_json(&report)
    } else {
        let mut out = table_header(workload.scenario);
        write_run(&mut out, &run);
        write_targets(&mut out, &targets);
        print(&out)
    }
}

/// Runs `tideflow bench compare`.
fn compare(args: CompareArgs) -> Result<(), Error> {
    let workload = args.workload.workload()?;
    if let Some(path) = &args.plot {
        create(path)?;
    }
    let modes: Vec<Trigger> = std::iter::once(Trigger::Continuous)
        .chain(
            args.intervals
                .iter()
                .map(|&interval| Trigger::Interval(interval)),
        )
        .collect();
    if !args.json {
        outln!("{}", describe(&workload))?;
        print(&table_header(workload.scenario))?;
    }
    let mut runs = Vec::new();
    let mut histograms = Vec::new();
    for trigger in modes {
        let workload = Workload {
            trigger,
            ..workload.clone()
        };
        let measurement = measure(&workload)?;
        let run = RunReport::new(&workload, &measurement);
        if !args.json {
            let mut out = String::new();
            write_run(&mut out, &run);
            print(&out)?;
        }
        histograms.push((run.mode.clone(), measurement.latency));
        runs.push(run);
    }
    let mut targets = Vec::new();
    for run in &runs {
        let workload = Workload {
            trigger: run.trigger,
            ..workload.clone()
        };
        targets.extend(latency_targets(&workload, run));
    }
    targets.extend(compare_targets(&workload, &runs));
    if let Some(path) = &args.plot {
        let what = match workload.scenario {
            Scenario::Window => "Window-close latency",
            Scenario::Stateless => "Ingest-to-sink latency",
        };
        let title = format!(
            "{what}: {} events/s, {} worker(s)",
            workload.rate, workload.workers
        );
        let lines: Vec<(String, &Histogram<u64>)> = histograms
            .iter()
            .map(|(mode, histogram)| (mode.clone(), histogram))
            .collect();
        plot::write_cdf(path, &title, &lines)?;
    }
    if args.json {
        print_json(&CompareReport {
            workload: WorkloadReport::new(&workload),
            runs,
            targets,
        })
    } else {
        let mut out = String::new();
        write_targets(&mut out, &targets);
        if let Some(path) = &args.plot {
            let _ = writeln!(out, "plot: {}", path.display());
        }
        print(&out)
    }
}

/// Runs `tideflow bench throughput`.
fn throughput(args: ThroughputArgs) -> Result<(), Error> {
    let mut base = args
        .shape
        .workload(Scenario::Window, args.rate, args.probe, "--probe")?;
    if args.p99_target.is_zero() {
        return Err(Error::Config(
            "--p99-target: the target must be longer than 0ms".to_string(),
        ));
    }
    if args.rate > args.max_rate {
        return Err(Error::Config(format!(
            "--rate ({}) must not exceed --max-rate ({})",
            args.rate, args.max_rate
        )));
    }
    // A probe that falls a second behind its schedule has failed: stop it there.
    base.max_lag = Some(Duration::from_secs(1));
    let target_us = u64::try_from(args.p99_target.as_micros()).unwrap_or(u64::MAX);
    if !args.json {
        outln!(
            "tideflow bench throughput: the highest rate with p99 window-close latency under {} \
             and the rate kept within 5%; {} keys, {} tumbling count, {} worker(s), probes of {} \
             (first {} not measured)",
            show(args.p99_target),
            base.keys,
            show(base.window),
            base.workers,
            show(base.duration),
            show(base.warmup)
        )?;
        outln!(
            "{:>14} {:>14} {:>10} {:>10}  sustained",
            "rate",
            "achieved",
            "p99 ms",
            "max ms"
        )?;
    }
    let mut search = RateSearch::new(args.rate, args.max_rate);
    let mut probes = Vec::new();
    while let Some(rate) = search.next() {
        if probes.len() >= args.max_probes as usize {
            break;
        }
        let workload = Workload {
            rate,
            ..base.clone()
        };
        let measurement = measure::run(&workload)?;
        let probe = Probe::new(rate, &measurement, target_us);
        if !args.json {
            outln!(
                "{:>14} {:>14.0} {:>10.3} {:>10.3}  {}",
                rate,
                probe.achieved_rate,
                probe.p99_ms,
                probe.max_ms,
                if probe.sustained { "yes" } else { "no" }
            )?;
        }
        search.record(rate, probe.sustained);
        probes.push(probe);
    }
    let sustained_rate = search.sustained().unwrap_or(0);
    // The probes ran out before the bounds were within 5%: the rate found is a lower bound.
    let complete = search.next().is_none();
    let mut targets = Vec::new();
    if base.workers == 1 && is_target_shape(&base) && args.p99_target <= Duration::from_millis(10) {
        targets.push(Target::at_least(
            "sustained rate at p99 < 10 ms, 1 worker (events/s)",
            sustained_rate as f64,
            5_000_000.0,
        ));
    }
    if args.json {
        print_json(&ThroughputReport {
            workers: base.workers,
            keys: base.keys,
            window_ms: base.window.as_millis() as u64,
            p99_target_ms: args.p99_target.as_secs_f64() * 1_000.0,
            probe_ms: base.duration.as_millis() as u64,
            sustained_rate,
            complete,
            probes,
            targets,
        })
    } else {
        let mut out = String::new();
        match search.sustained() {
            Some(rate) => {
                let _ = writeln!(
                    out,
                    "sustained: {rate} events/s ({:.2} M) on {} worker(s)",
                    rate as f64 / 1e6,
                    base.workers
                );
            }
            None => {
                let _ = writeln!(
                    out,
                    "sustained: 0 events/s: no probed rate kept p99 under {}",
                    show(args.p99_target)
                );
            }
        }
        if !complete {
            let _ = writeln!(
                out,
                "(the search used its {} probes before the bounds were within 5%: a lower bound; \
                 raise --max-probes for more)",
                args.max_probes
            );
        }
        write_targets(&mut out, &targets);
        print(&out)
    }
}

/// Runs `workload` once and requires samples.
fn measure(workload: &Workload) -> Result<Measurement, Error> {
    let measurement = measure::run(workload)?;
    if measurement.latency.is_empty() {
        return Err(Error::Config(format!(
            "nothing was measured after the warm-up ({} {}): make --duration longer",
            workload.scenario.name(),
            mode_name(workload.trigger)
        )));
    }
    Ok(measurement)
}
