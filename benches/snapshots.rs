//! Snapshots (issue 5): how big and how long a snapshot of keyed window state is, how long
//! recovery takes, and what taking a snapshot every second costs in throughput.
//!
//! Every job here is `RateSource` (fixed start time, one partition per worker, so replayable)
//! -> `with_event_time(ts)`/`with_watermark(0)` -> `key_by(key)` -> tumbling window -> `Count`
//! -> a sink that counts rows and sums their counts (checked against the input size after every
//! run). Checkpoint directories live in a fresh temporary directory per run (`SNAPSHOTS_DIR`
//! overrides where: the default is the system temp dir, on the same disk as the repo on the
//! development VM). Three parts, each printed as a table at the end:
//!
//! - **sizes**: `keys x 8` records over `keys` keys, in one 1 h tumbling window (so the state
//!   holds every key seen, and nothing closes before the end of input), paced from the start to
//!   last `SNAPSHOTS_SECONDS` (4) s, with a snapshot every 200 ms and every snapshot kept. The
//!   final snapshot (end of input) holds no operator state, so the bench reads every mid-run
//!   snapshot's `MANIFEST.json` and its window part (the frames' entry counts) and reports the
//!   largest: its bytes, its state entries (keys), bytes per entry. A thread polls the
//!   checkpoint directory every millisecond and times each snapshot from its directory's
//!   creation to its `MANIFEST.json`; the table gives the median and the longest of the "full"
//!   snapshots (at least 90 % of the largest one's bytes), and `SnapshotReport::max_duration`.
//!   Keys: `SNAPSHOTS_KEYS` (default `100000,1000000`).
//! - **restore**: the largest mid-run snapshot of each sizes run is copied alone into a new
//!   checkpoint directory (as if the process had been killed right after it), and the same job,
//!   unpaced, resumes from it: `SnapshotReport::restore_duration` (verifying the snapshot,
//!   reading and decoding the parts, restoring every worker's state) and `restored_bytes`. The
//!   resumed run must still count every input record exactly once. Median of `SNAPSHOTS_RESTORES`
//!   (3) runs; the copy is fresh for each and in the page cache.
//! - **throughput**: `SNAPSHOTS_EVENTS` (default 120,000,000) records, unpaced, over 100,000
//!   keys, 1,000,000 records per second of event time in 1 s tumbling windows (the state turns
//!   over every window), with no checkpoint and with a snapshot every 1 s (keep 2). Runs of the
//!   two modes alternate, `SNAPSHOTS_RUNS` (5) of each; the median run gives events/s and the
//!   cost of snapshots.
//!
//! Run: `cargo bench --bench snapshots` (about 75 s on the 2-vCPU development VM, after the
//! build; `cargo bench --bench snapshots -- sizes restore` runs only those parts, `-- throughput`
//! only that one). `SNAPSHOTS_WORKERS` (default `1,2`) sets the worker counts,
//! `SNAPSHOTS_TRACE=1` prints when each file of each snapshot appeared. Results:
//! `docs/BENCHMARKS.md`.
//!
//! Profiling: `SNAPSHOTS_PROFILE=with` (or `none`) runs only throughput runs with (without)
//! snapshots, `SNAPSHOTS_RUNS` times on the first of `SNAPSHOTS_WORKERS`, e.g. under
//! `perf record -g target/release/deps/snapshots-<hash>`.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tideflow::aggregate::Count;
use tideflow::sink::Sink;
use tideflow::source::{RateRecord, RateSource};
use tideflow::{Checkpoint, Config, Event, JobReport, Window, WindowResult};

/// Event time of the first record: a whole hour, so one 1 h window holds a sizes run.
const START_MS: u64 = 400_000 * 3_600_000;
/// Records per key in a sizes run (1 - e^-8: all but 0.03 % of the keys are seen).
const SIZE_EVENTS_PER_KEY: u64 = 8;
/// Snapshot interval of the sizes runs.
const SIZE_INTERVAL: Duration = Duration::from_millis(200);
/// Keys of the throughput runs.
const THROUGHPUT_KEYS: u64 = 100_000;
/// Records per second of event time in the throughput runs (per 1 s window).
const THROUGHPUT_RATE: u64 = 1_000_000;
/// Snapshot interval of the throughput runs.
const THROUGHPUT_INTERVAL: Duration = Duration::from_secs(1);

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|value| value.replace('_', "").parse().ok())
        .unwrap_or(default)
}

fn env_list(name: &str, default: &[u64]) -> Vec<u64> {
    std::env::var(name)
        .ok()
        .map(|value| {
            value
                .split(',')
                .filter_map(|n| n.trim().replace('_', "").parse().ok())
                .collect::<Vec<u64>>()
        })
        .filter(|list| !list.is_empty())
        .unwrap_or_else(|| default.to_vec())
}

/// A fresh temporary directory for one run's checkpoints.
fn scratch() -> tempfile::TempDir {
    match std::env::var_os("SNAPSHOTS_DIR") {
        Some(dir) => {
            std::fs::create_dir_all(&dir).expect("cannot create SNAPSHOTS_DIR");
            tempfile::tempdir_in(dir)
        }
        None => tempfile::tempdir(),
    }
    .expect("cannot create a temporary directory")
}

#[derive(Clone, Default)]
struct Counters {
    rows: Arc<AtomicU64>,
    total: Arc<AtomicU64>,
}

/// A sink that counts rows and sums their counts.
struct CountingSink(Counters);

impl Sink<WindowResult<u64, u64>> for CountingSink {
    fn write(
        &mut self,
        batch: &mut Vec<Event<WindowResult<u64, u64>>>,
    ) -> Result<(), tideflow::Error> {
        let total: u64 = batch.iter().map(|row| row.data.value).sum();
        self.0.rows.fetch_add(batch.len() as u64, Ordering::Relaxed);
        self.0.total.fetch_add(total, Ordering::Relaxed);
        batch.clear();
        Ok(())
    }
}

/// One job: the source's records, keyed, counted per `window` into a counting sink.
struct Job {
    source: RateSource,
    window: Duration,
    workers: usize,
    checkpoint: Option<Checkpoint>,
    /// Watch the checkpoint directory (always done with `SNAPSHOTS_TRACE`).
    trace: bool,
}

/// What a job did, and how long `execute` took.
struct Ran {
    report: JobReport,
    took: Duration,
    /// CPU time of the whole process during the run.
    cpu: Duration,
    /// Per snapshot directory, its duration as the tracer saw it.
    traced: Vec<(String, Duration)>,
    rows: u64,
    total: u64,
}

/// CPU time (user + system) this process has used so far, all threads, from `/proc/self/stat`
/// (in ticks of 10 ms; zero where it cannot be read).
fn cpu_time() -> Duration {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return Duration::ZERO;
    };
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or(Vec::new(), |(_, rest)| rest.split_whitespace().collect());
    // Fields 14 and 15 of proc(5), counted from the state (field 3).
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i)?.parse::<u64>().ok())
        .sum();
    Duration::from_millis(ticks * 10)
}

fn run(job: Job) -> Ran {
    let counters = Counters::default();
    let sink = counters.clone();
    let mut config = Config::workers(job.workers);
    let mut tracer = None;
    if let Some(checkpoint) = job.checkpoint {
        if job.trace || std::env::var_os("SNAPSHOTS_TRACE").is_some() {
            tracer = Some(Tracer::start(&checkpoint.dir));
        }
        config = config.checkpoint(checkpoint);
    }
    let (source, window) = (job.source, job.window);
    let (started, cpu_started) = (Instant::now(), cpu_time());
    let report = tideflow::execute(config, move |flow| {
        flow.source(source.clone())
            .with_event_time(|r: &RateRecord| r.ts)
            .with_watermark(Duration::ZERO)
            .key_by(|r| r.key)
            .window(Window::tumbling(window)?)
            .aggregate(Count)
            .sink(CountingSink(sink.clone()));
        Ok(())
    })
    .expect("job failed");
    let took = started.elapsed();
    let cpu = cpu_time().saturating_sub(cpu_started);
    let traced = tracer.map(Tracer::finish).unwrap_or_default();
    Ran {
        report,
        took,
        cpu,
        traced,
        rows: counters.rows.load(Ordering::Relaxed),
        total: counters.total.load(Ordering::Relaxed),
    }
}

fn rate_source(rows_per_sec: u64, keys: u64, count: u64, workers: usize) -> RateSource {
    RateSource::new(rows_per_sec)
        .keys(keys)
        .seed(1)
        .count(count)
        .start_time(START_MS)
        .partitions(workers)
}

// ---------------------------------------------------------------------------------------------
// Reading snapshots back.

/// One complete snapshot directory, as its manifest describes it.
struct OnDisk {
    dir: PathBuf,
    epoch: u64,
    is_final: bool,
    /// Every part's size.
    bytes: u64,
    /// The window operator's parts' sizes.
    window_bytes: u64,
    /// State entries in the window operator's parts (`None` if the parts did not parse).
    entries: Option<u64>,
}

/// The complete snapshots in `checkpoint_dir` (with a `MANIFEST.json`), oldest first.
fn snapshots_on_disk(checkpoint_dir: &Path) -> Vec<OnDisk> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(checkpoint_dir).expect("cannot list the checkpoint dir") {
        let dir = entry.expect("cannot list the checkpoint dir").path();
        let Ok(text) = std::fs::read(dir.join("MANIFEST.json")) else {
            continue;
        };
        let manifest: serde_json::Value =
            serde_json::from_slice(&text).expect("MANIFEST.json is not JSON");
        let parts = manifest["parts"]
            .as_array()
            .expect("a manifest lists parts");
        let size = |part: &serde_json::Value| part["size"].as_u64().expect("a part's size");
        let window_parts: Vec<&serde_json::Value> = parts
            .iter()
            .filter(|p| p["kind"].as_str().is_some_and(|k| k.contains("tumbling")))
            .collect();
        let entries = window_parts
            .iter()
            .map(|p| {
                let file = p["file"].as_str().expect("a part's file");
                operator_entries(&std::fs::read(dir.join(file)).ok()?)
            })
            .sum::<Option<u64>>();
        found.push(OnDisk {
            epoch: manifest["epoch"].as_u64().expect("a manifest's epoch"),
            is_final: manifest["final"].as_bool().unwrap_or(false),
            bytes: parts.iter().map(size).sum(),
            window_bytes: window_parts.iter().map(|p| size(p)).sum(),
            entries,
            dir,
        });
    }
    found.sort_by_key(|s| s.epoch);
    found
}

/// The number of state entries in an operator's part file: the 8-byte header, then bincode
/// (fixed-width little-endian) of `PartBody::Operator(Vec<Frame { group: u16, count: u64,
/// bytes: Vec<u8> }>)` (docs/ARCHITECTURE.md "Writing order"). `None` if it does not parse.
fn operator_entries(file: &[u8]) -> Option<u64> {
    fn take<'a>(bytes: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
        let (head, tail) = (bytes.get(..n)?, bytes.get(n..)?);
        *bytes = tail;
        Some(head)
    }
    fn u64_of(bytes: &mut &[u8]) -> Option<u64> {
        Some(u64::from_le_bytes(take(bytes, 8)?.try_into().ok()?))
    }
    let mut bytes = file.get(8..)?;
    let variant = u32::from_le_bytes(take(&mut bytes, 4)?.try_into().ok()?);
    if variant != 0 {
        return None;
    }
    let frames = u64_of(&mut bytes)?;
    let mut entries = 0;
    for _ in 0..frames {
        take(&mut bytes, 2)?; // group
        entries += u64_of(&mut bytes)?;
        let len = u64_of(&mut bytes)?;
        take(&mut bytes, usize::try_from(len).ok()?)?;
    }
    bytes.is_empty().then_some(entries)
}

// ---------------------------------------------------------------------------------------------
// Sizes and restore.

struct SizeResult {
    keys: u64,
    workers: usize,
    events: u64,
    /// The source's records per second (their event times depend on it).
    rate: u64,
    report: JobReport,
    /// Mid-run snapshots completed.
    mid_run: usize,
    /// The largest mid-run snapshot.
    largest: OnDisk,
    /// How many mid-run snapshots held at least 90 % of the largest one's bytes ("full"), and
    /// the median and the largest of their durations as the tracer saw them.
    full: usize,
    full_median: Duration,
    full_max: Duration,
    /// Keeps the checkpoint directory (and the largest snapshot) alive for the restore part.
    _dir: tempfile::TempDir,
}

fn sizes_run(keys: u64, workers: usize, seconds: u64) -> SizeResult {
    let events = keys * SIZE_EVENTS_PER_KEY;
    let rate = events / seconds;
    let dir = scratch();
    let ran = run(Job {
        source: rate_source(rate, keys, events, workers).paced_from_start(),
        window: Duration::from_secs(3_600),
        workers,
        checkpoint: Some(Checkpoint {
            interval: SIZE_INTERVAL,
            keep: usize::MAX,
            ..Checkpoint::new(dir.path())
        }),
        trace: true,
    });
    assert_eq!(ran.total, events, "sizes {keys} keys: every record counted");
    let snapshots = snapshots_on_disk(dir.path());
    let mid_run: Vec<OnDisk> = snapshots.into_iter().filter(|s| !s.is_final).collect();
    let count = mid_run.len();
    let most = mid_run
        .iter()
        .map(|s| s.bytes)
        .max()
        .expect("no mid-run snapshot: make the run longer (SNAPSHOTS_SECONDS)");
    let mut full: Vec<Duration> = mid_run
        .iter()
        .filter(|s| s.bytes * 10 >= most * 9)
        .filter_map(|s| {
            let name = s.dir.file_name()?.to_str()?;
            ran.traced.iter().find(|(d, _)| d == name).map(|(_, t)| *t)
        })
        .collect();
    full.sort();
    let largest = mid_run
        .into_iter()
        .max_by_key(|s| s.bytes)
        .expect("a mid-run snapshot");
    println!(
        "sizes {keys} keys {workers}w: {} snapshots ({count} mid-run) in {:.2} s; largest {} bytes \
         at epoch {}, {:?} entries; max duration {:.1} ms, last {:.1} ms; full-size snapshots \
         (ms): {:.1?}",
        ran.report.snapshots.completed,
        ran.took.as_secs_f64(),
        largest.bytes,
        largest.epoch,
        largest.entries,
        ms(ran.report.snapshots.max_duration),
        ms(ran.report.snapshots.last_duration),
        full.iter().map(|&t| ms(t)).collect::<Vec<f64>>(),
    );
    SizeResult {
        keys,
        workers,
        events,
        rate,
        report: ran.report,
        mid_run: count,
        largest,
        full: full.len(),
        full_median: full.get(full.len() / 2).copied().unwrap_or_default(),
        full_max: full.last().copied().unwrap_or_default(),
        _dir: dir,
    }
}

struct RestoreResult {
    keys: u64,
    from_workers: usize,
    workers: usize,
    median: Duration,
    bytes: u64,
}

/// Resumes the sizes job from a copy of its largest mid-run snapshot, `runs` times.
fn restore_runs(size: &SizeResult, workers: usize, runs: usize) -> RestoreResult {
    let mut durations = Vec::new();
    let mut bytes = 0;
    for _ in 0..runs {
        let dir = scratch();
        let name = size.largest.dir.file_name().expect("a snapshot dir name");
        let copy = dir.path().join(name);
        std::fs::create_dir(&copy).expect("cannot create the copy");
        for file in std::fs::read_dir(&size.largest.dir).expect("cannot list the snapshot") {
            let file = file.expect("cannot list the snapshot").path();
            std::fs::copy(&file, copy.join(file.file_name().unwrap())).expect("cannot copy");
        }
        let ran = run(Job {
            source: rate_source(size.rate, size.keys, size.events, workers).unpaced(),
            window: Duration::from_secs(3_600),
            workers,
            checkpoint: Some(Checkpoint {
                interval: Duration::from_secs(3_600),
                ..Checkpoint::new(dir.path())
            }),
            trace: false,
        });
        let snapshots = &ran.report.snapshots;
        assert_eq!(snapshots.resumed_from, Some(size.largest.epoch));
        assert_eq!(
            ran.total, size.events,
            "restore {} keys: every record counted exactly once",
            size.keys
        );
        assert_eq!(ran.rows, ran.report.records_out);
        durations.push(snapshots.restore_duration);
        bytes = snapshots.restored_bytes;
    }
    durations.sort();
    RestoreResult {
        keys: size.keys,
        from_workers: size.workers,
        workers,
        median: durations[durations.len() / 2],
        bytes,
    }
}

// ---------------------------------------------------------------------------------------------
// Throughput.

struct ThroughputRun {
    took: Duration,
    cpu: Duration,
    snapshots: u64,
    max_duration: Duration,
}

fn throughput_run(events: u64, workers: usize, snapshots: bool) -> ThroughputRun {
    let dir = scratch();
    let ran = run(Job {
        source: rate_source(THROUGHPUT_RATE, THROUGHPUT_KEYS, events, workers).unpaced(),
        window: Duration::from_secs(1),
        workers,
        checkpoint: snapshots.then(|| Checkpoint {
            interval: THROUGHPUT_INTERVAL,
            ..Checkpoint::new(dir.path())
        }),
        trace: false,
    });
    assert_eq!(ran.total, events, "throughput: every record counted");
    ThroughputRun {
        took: ran.took,
        cpu: ran.cpu,
        snapshots: ran.report.snapshots.completed,
        max_duration: ran.report.snapshots.max_duration,
    }
}

struct ThroughputResult {
    workers: usize,
    none: Vec<ThroughputRun>,
    with: Vec<ThroughputRun>,
}

fn median(runs: &[ThroughputRun]) -> &ThroughputRun {
    let mut order: Vec<usize> = (0..runs.len()).collect();
    order.sort_by_key(|&i| runs[i].took);
    &runs[order[order.len() / 2]]
}

fn median_cpu(runs: &[ThroughputRun]) -> Duration {
    let mut cpu: Vec<Duration> = runs.iter().map(|r| r.cpu).collect();
    cpu.sort();
    cpu[cpu.len() / 2]
}

fn throughput(events: u64, workers: usize, runs: usize) -> ThroughputResult {
    let mut result = ThroughputResult {
        workers,
        none: Vec::new(),
        with: Vec::new(),
    };
    for round in 0..runs {
        // Alternate which mode goes first, so that neither always runs on a warmer machine.
        let order = if round % 2 == 0 {
            [false, true]
        } else {
            [true, false]
        };
        for snapshots in order {
            let ran = throughput_run(events, workers, snapshots);
            println!(
                "throughput {workers}w {}: {:.1} ms (CPU {:.2} s), {:.2}M events/s, {} snapshots \
                 (max {:.1} ms)",
                if snapshots { "every 1 s" } else { "none" },
                ms(ran.took),
                ran.cpu.as_secs_f64(),
                events as f64 / ran.took.as_secs_f64() / 1e6,
                ran.snapshots,
                ms(ran.max_duration),
            );
            if snapshots {
                result.with.push(ran);
            } else {
                result.none.push(ran);
            }
        }
    }
    result
}

// ---------------------------------------------------------------------------------------------
// Tracing: when each snapshot's files appear (printed with `SNAPSHOTS_TRACE=1`).

/// Watches a checkpoint directory every millisecond and notes when each snapshot directory and
/// each file in it first appear, to see which part of a snapshot is late.
struct Tracer {
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<Vec<(String, String, Duration)>>,
}

impl Tracer {
    fn start(dir: &Path) -> Tracer {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (flag, dir) = (Arc::clone(&stop), dir.to_path_buf());
        let thread = std::thread::spawn(move || {
            let started = Instant::now();
            let mut seen: Vec<(String, String, Duration)> = Vec::new();
            let mut known = std::collections::HashSet::new();
            while !flag.load(Ordering::Relaxed) {
                for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                    let name = entry.file_name().to_string_lossy().into_owned();
                    if !name.starts_with("snapshot-") {
                        continue;
                    }
                    if known.insert((name.clone(), String::new())) {
                        seen.push((name.clone(), String::new(), started.elapsed()));
                    }
                    for file in std::fs::read_dir(entry.path())
                        .into_iter()
                        .flatten()
                        .flatten()
                    {
                        let file = file.file_name().to_string_lossy().into_owned();
                        if known.insert((name.clone(), file.clone())) {
                            seen.push((name.clone(), file, started.elapsed()));
                        }
                    }
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            seen
        });
        Tracer { stop, thread }
    }

    /// Per snapshot directory, how long after it appeared its `MANIFEST.json` did (the
    /// snapshot's duration, within the 1 ms polling). With `SNAPSHOTS_TRACE`, prints when each
    /// file appeared after its directory (ms).
    fn finish(self) -> Vec<(String, Duration)> {
        let print = std::env::var_os("SNAPSHOTS_TRACE").is_some();
        let mut durations = Vec::new();
        self.stop.store(true, Ordering::Relaxed);
        let seen = self.thread.join().expect("the tracer panicked");
        let mut dirs: Vec<&str> = Vec::new();
        for (dir, _, _) in &seen {
            if !dirs.contains(&dir.as_str()) {
                dirs.push(dir);
            }
        }
        for dir in dirs {
            let files: Vec<&(String, String, Duration)> =
                seen.iter().filter(|(d, _, _)| d == dir).collect();
            let t0 = files[0].2;
            if let Some((_, _, at)) = files.iter().find(|(_, f, _)| f == "MANIFEST.json") {
                durations.push((dir.to_string(), *at - t0));
            }
            if !print {
                continue;
            }
            let line: Vec<String> = files[1..]
                .iter()
                .map(|(_, file, at)| format!("{file} +{:.1}", ms(*at - t0)))
                .collect();
            println!("  trace {dir} at {:.1} ms: {}", ms(t0), line.join(", "));
        }
        durations
    }
}

// ---------------------------------------------------------------------------------------------

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e3
}

fn main() {
    let workers: Vec<usize> = env_list("SNAPSHOTS_WORKERS", &[1, 2])
        .into_iter()
        .map(|w| w.max(1) as usize)
        .collect();
    let keys = env_list("SNAPSHOTS_KEYS", &[100_000, 1_000_000]);
    let seconds: u64 = env_or("SNAPSHOTS_SECONDS", 4).max(1);
    let events: u64 = env_or("SNAPSHOTS_EVENTS", 120_000_000);
    let runs: usize = env_or("SNAPSHOTS_RUNS", 5).max(1);
    let restores: usize = env_or("SNAPSHOTS_RESTORES", 3).max(1);

    if let Ok(mode) = std::env::var("SNAPSHOTS_PROFILE") {
        let snapshots = match mode.as_str() {
            "with" => true,
            "none" => false,
            other => panic!("SNAPSHOTS_PROFILE must be with or none, not {other:?}"),
        };
        for _ in 0..runs {
            let ran = throughput_run(events, workers[0], snapshots);
            println!(
                "{mode} {}w: {:.1} ms (CPU {:.2} s), {:.2}M events/s, {} snapshots (max {:.1} ms)",
                workers[0],
                ms(ran.took),
                ran.cpu.as_secs_f64(),
                events as f64 / ran.took.as_secs_f64() / 1e6,
                ran.snapshots,
                ms(ran.max_duration)
            );
        }
        return;
    }

    let load = || {
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    };
    let load_at_start = load();
    let started = Instant::now();

    // Parts named on the command line (cargo passes `--bench`), or all of them.
    let named: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let wanted = |part: &str| named.is_empty() || named.iter().any(|n| n == part);
    let (want_sizes, want_restore) = (wanted("sizes"), wanted("restore"));

    let mut sizes = Vec::new();
    let mut restored = Vec::new();
    if want_sizes || want_restore {
        for &k in &keys {
            for &w in &workers {
                let size = sizes_run(k, w, seconds);
                if want_restore {
                    restored.push(restore_runs(&size, w, restores));
                }
                sizes.push(size);
            }
        }
    }
    let mut throughputs = Vec::new();
    if wanted("throughput") {
        for &w in &workers {
            throughputs.push(throughput(events, w, runs));
        }
    }

    if want_sizes && !sizes.is_empty() {
        println!(
            "\nsnapshot size and time (keys x {SIZE_EVENTS_PER_KEY} records in one 1 h window, \
             paced over {seconds} s, a snapshot every {} ms; the largest mid-run snapshot)",
            SIZE_INTERVAL.as_millis()
        );
        println!(
            "{:>9} {:>7} {:>9} {:>5} {:>10} {:>10} {:>6} {:>11} {:>9} {:>11}",
            "keys",
            "workers",
            "snapshots",
            "full",
            "state rows",
            "bytes",
            "B/row",
            "full median",
            "full max",
            "report max"
        );
        for s in &sizes {
            let entries = s.largest.entries.unwrap_or(0);
            println!(
                "{:>9} {:>7} {:>9} {:>5} {:>10} {:>8.2}MB {:>6.1} {:>9.1}ms {:>7.1}ms {:>9.1}ms",
                s.keys,
                s.workers,
                s.mid_run,
                s.full,
                s.largest
                    .entries
                    .map_or(String::from("?"), |e| e.to_string()),
                s.largest.bytes as f64 / 1e6,
                s.largest.window_bytes as f64 / entries.max(1) as f64,
                ms(s.full_median),
                ms(s.full_max),
                ms(s.report.snapshots.max_duration),
            );
        }
        println!(
            "(snapshots: mid-run ones; full: those with at least 90% of the largest one's bytes; \
             state rows, bytes: the largest; B/row: its window part per row; full median/max: \
             their durations, directory to MANIFEST.json; report max: SnapshotReport::max_duration)"
        );
    }
    if !restored.is_empty() {
        println!("\nrestore from the largest mid-run snapshot (median of {restores})");
        println!(
            "{:>9} {:>12} {:>7} {:>12} {:>12}",
            "keys", "snapshot by", "workers", "bytes", "restore"
        );
        for r in &restored {
            println!(
                "{:>9} {:>11}w {:>7} {:>10.2}MB {:>10.1}ms",
                r.keys,
                r.from_workers,
                r.workers,
                r.bytes as f64 / 1e6,
                ms(r.median),
            );
        }
    }
    if !throughputs.is_empty() {
        println!(
            "\nthroughput ({events} records, {THROUGHPUT_KEYS} keys, 1 s tumbling windows of \
             {THROUGHPUT_RATE} records; median of {runs} runs per mode; CPU: the process's user + \
             system time, median)"
        );
        println!(
            "{:>7} {:>10} {:>11} {:>10} {:>9} {:>10} {:>9} {:>10} {:>9}",
            "workers",
            "snapshots",
            "median run",
            "events/s",
            "wall cost",
            "CPU",
            "CPU cost",
            "snapshots",
            "max snap"
        );
        for t in &throughputs {
            let none = median(&t.none);
            let with = median(&t.with);
            let cpu_none = median_cpu(&t.none);
            let cpu_with = median_cpu(&t.with);
            let rate = |run: &ThroughputRun| events as f64 / run.took.as_secs_f64();
            for (label, run, cpu) in [("none", none, cpu_none), ("every 1 s", with, cpu_with)] {
                let (wall_cost, cpu_cost) = if std::ptr::eq(run, with) {
                    (
                        format!("{:.1}%", (1.0 - rate(with) / rate(none)) * 100.0),
                        format!(
                            "{:.1}%",
                            (cpu_with.as_secs_f64() / cpu_none.as_secs_f64() - 1.0) * 100.0
                        ),
                    )
                } else {
                    (String::from("-"), String::from("-"))
                };
                println!(
                    "{:>7} {:>10} {:>9.1}ms {:>9.2}M {:>9} {:>9.2}s {:>9} {:>10} {:>7.1}ms",
                    t.workers,
                    label,
                    ms(run.took),
                    rate(run) / 1e6,
                    wall_cost,
                    cpu.as_secs_f64(),
                    cpu_cost,
                    run.snapshots,
                    ms(run.max_duration),
                );
            }
        }
    }
    println!(
        "\nload average {load_at_start} at the start, {} at the end; {:.0} s in all",
        load(),
        started.elapsed().as_secs_f64()
    );
}
