//! Snapshots through the Rust API: a job stopped by a failing source after some snapshots,
//! then run again, writes exactly the output of an uninterrupted run, for every stateful
//! operator (windows, running aggregates, dedup, interval joins, `map_with_state`), on 1, 2
//! and 4 workers, also resuming on another worker count, and in clusters of 2 and 3 processes
//! (threads of this test process, each one a cluster process), resuming on another shape.
//! (Real crashes, killed processes and fault injection are in the CLI's `crash` tests.) Nothing here depends on timing: snapshots are taken
//! every [`RECORDS_PER_SNAPSHOT`] records, and a run is stopped only once it completed one.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tideflow::aggregate::{Count, Sum};
use tideflow::sink::FileSink;
use tideflow::source::MemorySource;
use tideflow::{Checkpoint, Cluster, Config, Error, Flow, StateInput, Stream, Window};

use crate::support::{Gate, Gated, ReadGate, SplitMix64};

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
struct Rec {
    key: u64,
    ts: u64,
    id: u32,
    value: i64,
}

/// `n` records over `keys` keys, 1 ms apart on average, a fifth of them up to 80 ms early.
fn records(seed: u64, n: u32, keys: u64) -> Arc<Vec<Rec>> {
    let mut rng = SplitMix64(seed);
    let records = (0..n)
        .map(|id| {
            let base = u64::from(id) + 1_000;
            let ts = if rng.below(5) == 0 {
                base - rng.below(80)
            } else {
                base
            };
            Rec {
                key: rng.below(keys),
                ts,
                id,
                value: rng.below(100) as i64,
            }
        })
        .collect();
    Arc::new(records)
}

/// The snapshots are taken every this many records.
const RECORDS_PER_SNAPSHOT: u64 = 150;
/// While a stopped run waits for its first snapshot, its sources first read after this many
/// polls (each poll that does not read waits 1 ms), then after twice as many each time. A
/// fixed gap (50, then 200 polls) let runs on a loaded CI machine read their input to the end
/// before a slow snapshot completed.
const TRICKLE: u64 = 25;
/// The longest wait between two reads while a snapshot is awaited, in polls of 1 ms.
const MAX_GAP: u64 = 1_000;

/// The complete snapshots (with a manifest) in the checkpoint directory `dir`, by name.
fn complete_snapshots(dir: &Path) -> BTreeSet<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return BTreeSet::new();
    };
    entries
        .flatten()
        .filter(|entry| entry.path().join("MANIFEST.json").exists())
        .filter_map(|entry| entry.file_name().into_string().ok())
        .filter(|name| name.starts_with("snapshot-"))
        .collect()
}

/// Stops the job, if told, at its `fail_at`-th read (counted per worker), or at the first
/// read after it at which this run has completed a snapshot in `checkpoint`. Until then, it
/// slows the source down (a read after [`TRICKLE`] polls of 1 ms, then after twice as many
/// each time, up to [`MAX_GAP`]): the snapshot in progress still gets the input it needs to
/// complete, and the input does not run out first, however slow the snapshot (a loaded
/// machine, a slow disk: a 3.4 s snapshot on a loaded CI machine saw 17 reads with one read
/// every 200 polls and the input ran out; it now sees 8).
struct Interrupt {
    reads: u64,
    fail_at: Option<u64>,
    checkpoint: Option<PathBuf>,
    /// The complete snapshots when the run started.
    before: BTreeSet<String>,
    /// Polls to wait before the next read while a snapshot is awaited, and polls waited.
    gap: u64,
    waited: u64,
}

impl ReadGate for Interrupt {
    fn on_start(&mut self) {
        if let Some(dir) = &self.checkpoint {
            self.before = complete_snapshots(dir);
        }
    }

    fn before_read(&mut self) -> Gate {
        self.reads += 1;
        if self.fail_at.is_none_or(|at| self.reads < at) {
            return Gate::Read;
        }
        let completed = self.checkpoint.as_deref().is_none_or(|dir| {
            complete_snapshots(dir)
                .difference(&self.before)
                .next()
                .is_some()
        });
        if completed {
            Gate::Stop
        } else if self.waited < self.gap {
            self.waited += 1;
            Gate::Wait(Duration::from_millis(1))
        } else {
            self.waited = 0;
            self.gap = (self.gap * 2).min(MAX_GAP);
            Gate::Read
        }
    }
}

/// How a run is stopped: at read `fail_at` (per worker), once a snapshot completed in
/// `checkpoint` if there is one.
#[derive(Clone, Copy)]
struct Stop<'a> {
    fail_at: Option<u64>,
    checkpoint: Option<&'a Path>,
}

/// Reads `records` in 4 partitions, 16 records per read, watermark 100 ms behind.
fn read<'s>(flow: &mut Flow<'s>, records: &Arc<Vec<Rec>>, stop: Stop<'_>) -> Stream<'s, Rec> {
    let source = MemorySource::partitioned(Arc::clone(records), 4).batch_size(16);
    flow.source(Gated {
        inner: source,
        gate: Interrupt {
            reads: 0,
            fail_at: stop.fail_at,
            checkpoint: stop.checkpoint.map(Path::to_path_buf),
            before: BTreeSet::new(),
            gap: TRICKLE,
            waited: 0,
        },
    })
    .with_event_time(|r: &Rec| r.ts)
    .with_watermark(Duration::from_millis(100))
}

/// The jobs under test: each writes one kind of row to a JSON lines file.
#[derive(Clone, Copy, Debug)]
enum Job {
    Tumbling,
    Session,
    Running,
    Dedup,
    IntervalJoin,
    MapWithState,
    /// `map_with_state` whose outputs, some ahead of their step, are counted in tumbling
    /// windows (which apply records as they arrive).
    MapWithStateIntoWindows,
}

/// A session of `map_with_state`: first and last event time, and records.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
struct Visit {
    first: u64,
    last: u64,
    records: u64,
}

fn build(job: Job, flow: &mut Flow<'_>, records: &Arc<Vec<Rec>>, stop: Stop<'_>, output: &Path) {
    let output = output.to_path_buf();
    if let Job::Dedup = job {
        return read(flow, records, stop)
            .key_by(|r| r.value)
            .dedup_within(Duration::from_millis(30))
            .map(|(value, r)| (value, r.id))
            .sink(FileSink::jsonl(output));
    }
    let keyed = read(flow, records, stop).key_by(|r| r.key);
    match job {
        Job::Tumbling => keyed
            .window(Window::tumbling(Duration::from_millis(50)).expect("a window"))
            .aggregate((Count, Sum::of(|r: &Rec| r.value)))
            .sink(FileSink::jsonl(output)),
        Job::Session => keyed
            .window(Window::session(Duration::from_millis(40)).expect("a window"))
            .aggregate(Count)
            .sink(FileSink::jsonl(output)),
        Job::Running => keyed
            .running_aggregate(Sum::of(|r: &Rec| r.value))
            .sink(FileSink::jsonl(output)),
        Job::Dedup => unreachable!("built above"),
        Job::IntervalJoin => {
            let never = Stop {
                fail_at: None,
                checkpoint: None,
            };
            let right = read(flow, records, never)
                .filter(|r| r.id % 3 == 0)
                .key_by(|r| r.key);
            keyed
                .interval_join(right, Duration::from_millis(20), Duration::from_millis(10))
                .map(|joined| (joined.key, joined.left.id, joined.right.id))
                .sink(FileSink::jsonl(output))
        }
        Job::MapWithState => visits(keyed).sink(FileSink::jsonl(output)),
        Job::MapWithStateIntoWindows => visits(keyed)
            .key_by(|(key, _, _)| *key % 7)
            .window(Window::tumbling(Duration::from_millis(50)).expect("a window"))
            .aggregate(Count)
            .sink(FileSink::jsonl(output)),
    }
}

/// Visits of each key by `map_with_state`, with outputs ahead of their step.
fn visits<'s>(keyed: tideflow::KeyedStream<'s, u64, Rec>) -> Stream<'s, (u64, u64, u64)> {
    keyed.map_with_state_ttl(
        Duration::from_millis(200),
        |key, input, state: &mut Option<Visit>, context| {
            match input {
                StateInput::Records(records) => {
                    for record in records {
                        let visit = state.get_or_insert(Visit {
                            first: record.time,
                            last: record.time,
                            records: 0,
                        });
                        visit.last = visit.last.max(record.time);
                        visit.records += 1;
                    }
                    let last = state.map_or(0, |v| v.last);
                    context.delete_timers();
                    context.set_timer(last + 60);
                    // An output ahead of its step: a snapshot must keep it.
                    context.emit_at(last + 500, (*key, last, 0));
                }
                StateInput::Timer(time) => {
                    if let Some(visit) = state.take() {
                        context.emit((*key, visit.first, visit.records));
                    }
                    let _ = time;
                }
                StateInput::Expired => context.emit((*key, 0, u64::MAX)),
            }
        },
    )
}

/// Runs `job` on `workers` with snapshots in `checkpoint` every [`RECORDS_PER_SNAPSHOT`]
/// records, stopped at read `fail_at` (once a snapshot completed) if given.
/// The shape of a run: processes, and workers in each.
type Shape = (usize, usize);

/// Runs `job` on `shape`: one process (this one), or a cluster whose processes are threads of
/// this one. A cluster's result is process 0's, or the first process's own error (its peers
/// then fail on the lost process).
fn run(
    job: Job,
    records: &Arc<Vec<Rec>>,
    (processes, workers): Shape,
    checkpoint: Option<&Path>,
    fail_at: Option<u64>,
    output: &Path,
) -> Result<tideflow::JobReport, Error> {
    if processes == 1 {
        return run_process(
            job,
            records,
            Config::workers(workers),
            checkpoint,
            fail_at,
            output,
        );
    }
    let hosts: Vec<String> = crate::support::free_hosts_of(processes)
        .split(',')
        .map(str::to_string)
        .collect();
    let threads: Vec<_> = (0..processes)
        .map(|process| {
            let config = Config {
                workers,
                cluster: Some(Cluster::new(process, hosts.clone(), "snapshots", "s3cret")),
                ..Config::default()
            };
            let records = Arc::clone(records);
            let checkpoint = checkpoint.map(Path::to_path_buf);
            let output = output.to_path_buf();
            std::thread::spawn(move || {
                run_process(
                    job,
                    &records,
                    config,
                    checkpoint.as_deref(),
                    fail_at,
                    &output,
                )
            })
        })
        .collect();
    let mut results: Vec<Result<tideflow::JobReport, Error>> = threads
        .into_iter()
        .map(|thread| thread.join().expect("a cluster process's thread"))
        .collect();
    if results.iter().all(Result::is_ok) {
        return results.swap_remove(0);
    }
    let own = results
        .iter()
        .position(|r| matches!(r, Err(e) if !matches!(e, Error::Cluster(_))));
    results.swap_remove(own.unwrap_or_else(|| results.iter().position(Result::is_err).unwrap_or(0)))
}

/// Runs `job` in this process with `config`, with snapshots in `checkpoint` every
/// [`RECORDS_PER_SNAPSHOT`] records, stopped at read `fail_at` (once a snapshot completed) if
/// given.
fn run_process(
    job: Job,
    records: &Arc<Vec<Rec>>,
    mut config: Config,
    checkpoint: Option<&Path>,
    fail_at: Option<u64>,
    output: &Path,
) -> Result<tideflow::JobReport, Error> {
    if let Some(dir) = checkpoint {
        config = config.checkpoint(Checkpoint::new(dir).every_records(RECORDS_PER_SNAPSHOT));
    }
    let records = Arc::clone(records);
    let output: PathBuf = output.to_path_buf();
    let checkpoint = checkpoint.map(Path::to_path_buf);
    tideflow::execute(config, move |flow| {
        let stop = Stop {
            fail_at,
            checkpoint: checkpoint.as_deref(),
        };
        build(job, flow, &records, stop, &output);
        Ok(())
    })
}

fn sorted_lines(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    lines.sort();
    lines
}

/// Stops `job` twice (on `first` workers, then `second`), then lets it finish on `third`:
/// its output is the uninterrupted run's.
fn stop_and_resume(job: Job, seed: u64, shapes: [Shape; 3], stops: [u64; 2]) {
    let records = records(seed, 3_000, 40);
    let dir = tempfile::tempdir().expect("a temporary directory");
    let reference = dir.path().join("reference.jsonl");
    run(job, &records, (1, 1), None, None, &reference).expect("the reference run");
    let expected = sorted_lines(&reference);
    assert!(!expected.is_empty(), "{job:?}: the reference wrote nothing");

    let checkpoint = dir.path().join("checkpoint");
    let output = dir.path().join("output.jsonl");
    let mut resumed = 0;
    for (attempt, stop) in stops.into_iter().enumerate() {
        let stopped = run(
            job,
            &records,
            shapes[attempt],
            Some(&checkpoint),
            Some(stop),
            &output,
        );
        let error = stopped.expect_err("the job stops at the injected error");
        assert!(
            error.to_string().contains("the test stopped the job"),
            "{job:?}: {error}"
        );
    }
    let report = run(job, &records, shapes[2], Some(&checkpoint), None, &output)
        .unwrap_or_else(|e| panic!("{job:?} on {shapes:?}: {e}"));
    resumed += usize::from(report.snapshots.resumed_from.is_some());
    assert_eq!(resumed, 1, "{job:?}: the last run resumed from a snapshot");
    let got = sorted_lines(&output);
    if got != expected {
        let missing: Vec<&String> = expected
            .iter()
            .filter(|l| !got.contains(l))
            .take(5)
            .collect();
        let extra: Vec<&String> = got
            .iter()
            .filter(|l| !expected.contains(l))
            .take(5)
            .collect();
        panic!(
            "{job:?} stopped at reads {stops:?} on (processes, workers) {shapes:?}, seed {seed}: {} rows, expected {}; missing {missing:?}, extra {extra:?}",
            got.len(),
            expected.len()
        );
    }
}

/// One process of `workers[i]` workers for each run.
fn alone(workers: [usize; 3]) -> [Shape; 3] {
    workers.map(|w| (1, w))
}

#[test]
fn windows_resume_to_the_uninterrupted_output_on_1_2_and_4_workers() {
    for (seed, workers) in [(1, [1, 1, 1]), (2, [2, 2, 2]), (3, [4, 2, 1])] {
        let workers = alone(workers);
        stop_and_resume(Job::Tumbling, seed, workers, [12, 14]);
        stop_and_resume(Job::Session, seed, workers, [12, 14]);
    }
}

#[test]
fn running_aggregates_and_dedup_resume_to_the_uninterrupted_output() {
    for (seed, workers) in [(4, [1, 1, 1]), (5, [2, 4, 2]), (6, [4, 4, 4])] {
        let workers = alone(workers);
        stop_and_resume(Job::Running, seed, workers, [12, 14]);
        stop_and_resume(Job::Dedup, seed, workers, [12, 14]);
    }
}

#[test]
fn interval_joins_and_map_with_state_resume_to_the_uninterrupted_output() {
    for (seed, workers) in [(7, [1, 1, 1]), (8, [2, 1, 2]), (9, [4, 4, 2])] {
        let workers = alone(workers);
        stop_and_resume(Job::IntervalJoin, seed, workers, [12, 14]);
        stop_and_resume(Job::MapWithState, seed, workers, [12, 14]);
    }
}

#[test]
fn cluster_snapshots_resume_to_the_uninterrupted_output_on_another_shape() {
    // 2 processes x 2 workers, then 3 x 1, then 1 process of 2 workers; and back.
    let shapes = [[(2, 2), (3, 1), (1, 2)], [(1, 2), (2, 1), (2, 2)]];
    for (seed, job) in [
        (21, Job::Tumbling),
        (22, Job::Session),
        (23, Job::Running),
        (24, Job::Dedup),
        (25, Job::IntervalJoin),
        (26, Job::MapWithState),
        (27, Job::MapWithStateIntoWindows),
    ] {
        for shapes in shapes {
            stop_and_resume(job, seed, shapes, [12, 14]);
        }
    }
}
