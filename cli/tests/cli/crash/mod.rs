//! Crash tests for snapshots and exactly-once output (issue 5), with real processes:
//! `tideflow run` on the replayable rate input with a checkpoint directory is killed with
//! SIGKILL at seeded random moments, or crashed at the fault points of `TIDEFLOW_FAULT`, then
//! started again with the same command; its committed output must equal the output of an
//! uninterrupted run without a checkpoint directory: no row lost, none duplicated.
//!
//! The kill delays come from `TIDEFLOW_CRASH_SEED` (a fixed default otherwise) and are printed
//! with the commands, so a failure replays:
//! `TIDEFLOW_CRASH_SEED=S cargo nextest run -E 'test(crash_recovery)' --no-capture`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::support::{self, SplitMix64};

mod cluster;
pub(crate) mod harness;

use harness::*;

/// The variable that replays a crash test's kill delays.
pub(crate) const SEED_VAR: &str = "TIDEFLOW_CRASH_SEED";
const DEFAULT_SEED: u64 = 0x5eed_0005;
/// SIGKILLs per crash case.
const KILLS: usize = 5;
/// Kill delays after a start, in ms: while a 5 s job runs, often after a snapshot.
const KILL_MIN_MS: u64 = 100;
const KILL_MAX_MS: u64 = 1200;

/// The seed of the kill delays.
pub(crate) fn crash_seed() -> u64 {
    match std::env::var(SEED_VAR) {
        Ok(text) => text
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{SEED_VAR}={text:?} is not an integer")),
        Err(_) => DEFAULT_SEED,
    }
}

/// Kills `job` (checkpointed in `dir`) with SIGKILL at random moments, restarting it with the
/// same command (the worker counts cycle through `workers`) until [`KILLS`] kills landed while
/// it ran (or it completed first: the input is sized so that it rarely does), then runs it to
/// the end and compares its output with the reference run's in `dir`; at least one run must
/// have resumed from a snapshot (the first kill waits for a complete snapshot, so the second
/// run does, however slow the machine).
fn crash_and_recover(label: &str, job: &Job, dir: &Path, workers: &[u16], rng: &mut SplitMix64) {
    let reference = job.start_reference(dir, workers[0]);
    let mut runs: Vec<Ran> = Vec::new();
    let mut kills = 0;
    while kills < KILLS {
        let on = workers[runs.len() % workers.len()];
        let args = job.checkpointed(dir, on, "200ms", &[]);
        let delay = Duration::from_millis(KILL_MIN_MS + rng.below(KILL_MAX_MS - KILL_MIN_MS + 1));
        if runs.is_empty() {
            eprintln!("{label}: {}", describe(&args, None));
        }
        let mut process = Proc::start(&args, None);
        if runs.is_empty() {
            process.wait_for_snapshots(&dir.join("ck"), 1);
        }
        let (ran, killed) = process.kill_after(delay);
        eprintln!(
            "{label}: run {} on {on} worker(s): {}",
            runs.len() + 1,
            if killed {
                format!("SIGKILL after {delay:?}")
            } else {
                format!("exited by itself before {delay:?} ({})", ran.status)
            }
        );
        if killed {
            kills += 1;
            runs.push(ran.no_panic());
        } else {
            // It completed: the runs after it find the job complete.
            runs.push(ran.succeeded());
            eprintln!("{label}: the job completed after only {kills} kills");
            break;
        }
    }
    let on = workers[runs.len() % workers.len()];
    let args = job.checkpointed(dir, on, "200ms", &[]);
    eprintln!("{label}: final run on {on} worker(s)");
    runs.push(Proc::start(&args, None).finish().succeeded());
    // Once more: the job is complete, and its output stays as it is.
    let again = Proc::start(&args, None).finish().succeeded();
    assert!(
        again.stderr.contains("already completed"),
        "{label}: a run after the end did not find the job complete:\n{}",
        again.stderr
    );
    reference.finish().succeeded();
    job.assert_reference_output(dir, dir);
    let resumed = runs.iter().filter(|r| r.resumed()).count();
    eprintln!(
        "{label}: {resumed} of {} runs resumed from a snapshot",
        runs.len()
    );
    assert!(
        resumed > 0,
        "{label}: no restart resumed from a snapshot; stderr of the runs:\n{}",
        runs.iter()
            .map(|r| r.stderr.as_str())
            .collect::<Vec<_>>()
            .join("---\n")
    );
}

/// A rate input of `count` records at 20000 a second (`count / 20000` s of running).
pub(crate) fn rate(keys: u64, count: u64, seed: u64, disorder_ms: u64) -> String {
    format!("rate:rows_per_sec=20000,keys={keys},count={count},seed={seed},disorder={disorder_ms}")
}

#[test]
fn crash_recovery_gives_the_uninterrupted_output() {
    let seed = crash_seed();
    eprintln!("crash seed {seed} (replay with {SEED_VAR}={seed})");
    let delay = ["--watermark-delay", "50ms"];
    let with = |window: &[&'static str]| -> Vec<&'static str> {
        let mut rest = delay.to_vec();
        rest.extend_from_slice(window);
        rest
    };
    let tumbling = || {
        Job::new(
            &rate(50, 100_000, 7, 20),
            &with(&["--window", "tumbling:100ms"]),
        )
    };
    let cases: Vec<(&str, Job, Vec<u16>)> = vec![
        ("tumbling, 1 worker", tumbling(), vec![1]),
        (
            "sliding, 2 workers",
            Job::new(
                &rate(50, 100_000, 8, 20),
                &with(&["--window", "sliding:200ms,50ms"]),
            ),
            vec![2],
        ),
        (
            "session, 2 workers",
            Job::new(
                &rate(200, 100_000, 9, 20),
                &with(&["--window", "session:30ms"]),
            ),
            vec![2],
        ),
        (
            "running aggregate, 1 worker",
            Job::new(&rate(50, 100_000, 10, 20), &with(&["--mode", "update"])).unordered(),
            vec![1],
        ),
        (
            "running aggregate, 2 workers",
            Job::new(&rate(50, 100_000, 11, 20), &with(&["--mode", "update"])).unordered(),
            vec![2],
        ),
        (
            "tumbling with late output, 2 workers",
            // A disorder above the watermark delay: records arrive after their window closed.
            Job::new(
                &rate(50, 100_000, 12, 100),
                &["--watermark-delay", "20ms", "--window", "tumbling:100ms"],
            )
            .with_late_output(),
            vec![2],
        ),
        (
            "tumbling, restarted on 2, 1, 2... workers",
            tumbling(),
            vec![2, 1],
        ),
    ];
    let scenarios = cases
        .into_iter()
        .enumerate()
        .map(|(index, (label, job, workers))| {
            let run = move || {
                // Each case's delays depend on the seed and the case alone.
                let mut rng = SplitMix64(seed ^ (index as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
                let dir = tempfile::tempdir().unwrap();
                let started = Instant::now();
                crash_and_recover(label, &job, dir.path(), &workers, &mut rng);
                eprintln!("{label}: ok in {:?}", started.elapsed());
            };
            (label.to_string(), Box::new(run) as Box<dyn FnOnce()>)
        })
        .collect();
    run_all(scenarios);
}

/// The fault tests' job: 1 s of input, snapshots every 200 ms on 2 workers.
pub(crate) fn fault_job() -> Job {
    Job::new(
        &rate(50, 20_000, 21, 20),
        &["--watermark-delay", "50ms", "--window", "tumbling:100ms"],
    )
}

#[test]
fn fault_points_recover_to_the_exact_output() {
    let base = tempfile::tempdir().unwrap();
    let base = base.path();
    let job = fault_job();
    job.start_reference(base, 2).finish().succeeded();
    let scenario = |name: &str| {
        let dir = base.join(name.replace(':', "-"));
        std::fs::create_dir(&dir).unwrap();
        let args = job.checkpointed(&dir, 2, "200ms", &[]);
        (dir, args)
    };
    let mut scenarios: Vec<(String, Box<dyn FnOnce() + '_>)> = Vec::new();

    // One crash at a point of a snapshot, then the same command to the end.
    for point in [
        "after-parts",
        "after-parts:2",
        "after-manifest",
        "after-manifest:2",
        "mid-commit",
        "mid-commit:2",
    ] {
        let (dir, args) = scenario(point);
        // The first snapshot's manifest was written at every point but the first one.
        let resumes = point != "after-parts";
        scenarios.push(crash_at_fault_then_recover(
            &job, base, dir, args, point, resumes,
        ));
    }

    // A crash during recovery: first after a manifest but before its commit (recovery then
    // commits, and crashes in the middle of that commit), or after a complete snapshot
    // (recovery crashes after truncating the output).
    for first in ["after-manifest", "after-parts:2"] {
        let name = format!("{first}-then-during-recovery");
        let (dir, args) = scenario(&name);
        let job = &job;
        let run = move || {
            eprintln!("{name}: {}", describe(&args, Some(first)));
            Proc::start(&args, Some(first)).finish().crashed_at_fault();
            Proc::start(&args, Some("during-recovery"))
                .finish()
                .crashed_at_fault();
            let recovered = Proc::start(&args, None).finish().succeeded();
            assert!(recovered.resumed(), "{name}: {}", recovered.stderr);
            job.assert_reference_output(base, &dir);
        };
        scenarios.push((
            format!("{FAULT_VAR}={first}, then {FAULT_VAR}=during-recovery"),
            Box::new(run),
        ));
    }
    run_all(scenarios);
}

/// A scenario: `args` (writing into `dir`) crashes at the fault `point`, then the same command
/// runs to the end (resuming from a snapshot if `resumes`) and its output is the reference's
/// in `base`.
pub(crate) fn crash_at_fault_then_recover<'a>(
    job: &'a Job,
    base: &'a Path,
    dir: PathBuf,
    args: Vec<String>,
    point: &'static str,
    resumes: bool,
) -> (String, Box<dyn FnOnce() + 'a>) {
    let run = move || {
        eprintln!("{point}: {}", describe(&args, Some(point)));
        Proc::start(&args, Some(point)).finish().crashed_at_fault();
        let recovered = Proc::start(&args, None).finish().succeeded();
        assert!(
            !resumes || recovered.resumed(),
            "{point}: the restart did not resume: {}",
            recovered.stderr
        );
        job.assert_reference_output(base, &dir);
    };
    (format!("{FAULT_VAR}={point}"), Box::new(run))
}

/// Runs every scenario, even after one failed (each failure's message is printed as it
/// panics), then fails naming the failed ones.
fn run_all<'a>(scenarios: Vec<(String, Box<dyn FnOnce() + 'a>)>) {
    let mut failed = Vec::new();
    for (name, scenario) in scenarios {
        if std::panic::catch_unwind(std::panic::AssertUnwindSafe(scenario)).is_err() {
            eprintln!("FAILED: {name}");
            failed.push(name);
        }
    }
    assert!(
        failed.is_empty(),
        "failed scenarios (messages above): {failed:?}"
    );
}

/// The largest part file of the snapshot in `dir` whose name starts with `prefix` (`op`: an
/// operator's state, `sink`, `src`, or `` for any).
fn largest_part(dir: &Path, prefix: &str) -> PathBuf {
    let mut parts: Vec<(u64, PathBuf)> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "part"))
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with(prefix))
        .map(|p| (std::fs::metadata(&p).unwrap().len(), p))
        .collect();
    parts.sort();
    parts.pop().expect("a snapshot has parts").1
}

fn truncate_half(path: &Path) {
    let file = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    let length = file.metadata().unwrap().len();
    file.set_len(length / 2).unwrap();
}

fn flip_a_byte(path: &Path) {
    let mut bytes = read(path);
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(path, bytes).unwrap();
}

/// Runs `args` until its checkpoint directory `ck` holds two complete snapshots (not the
/// final one), then kills it; returns the complete snapshots, newest first.
fn crash_with_two_snapshots(args: &[String], ck: &Path) -> Vec<(u64, PathBuf)> {
    let mut process = Proc::start(args, None);
    assert!(
        process.wait_for_snapshots(ck, 2),
        "the job ended before it had two snapshots: {}",
        process.what
    );
    process.child.kill().expect("SIGKILL tideflow");
    let ran = process.collect().no_panic();
    let snapshots = complete_snapshots(ck);
    assert!(
        snapshots.len() >= 2 && snapshots.iter().all(|(e, _)| *e != FINAL_EPOCH),
        "expected two complete snapshots before the end, found {snapshots:?}; stderr:\n{}",
        ran.stderr
    );
    snapshots
}

#[test]
fn a_damaged_snapshot_is_named_and_an_older_one_used() {
    let base = tempfile::tempdir().unwrap();
    // 2 s of input, a snapshot every 100 ms: killed after the second one.
    let job = Job::new(
        &rate(50, 40_000, 31, 20),
        &["--watermark-delay", "50ms", "--window", "tumbling:100ms"],
    );
    let reference = job.start_reference(base.path(), 2);

    // An operator's state truncated; a byte flipped in the largest part (the sink's pending
    // output, usually).
    for (name, damage, prefix) in [
        ("truncated", truncate_half as fn(&Path), "op"),
        ("flipped", flip_a_byte as fn(&Path), ""),
    ] {
        let dir = base.path().join(name);
        std::fs::create_dir(&dir).unwrap();
        let args = job.checkpointed(&dir, 2, "100ms", &["--keep-snapshots", "2"]);
        eprintln!("{name}: {}", describe(&args, None));
        let snapshots = crash_with_two_snapshots(&args, &dir.join("ck"));
        let damaged = largest_part(&snapshots[0].1, prefix);
        damage(&damaged);
        eprintln!("{name}: damaged {}", damaged.display());
        let ran = Proc::start(&args, None).finish().succeeded();
        let named = ran
            .stderr
            .lines()
            .find(|l| l.contains(&*damaged.to_string_lossy()))
            .unwrap_or_else(|| {
                panic!(
                    "{name}: stderr does not name {}:\n{}",
                    damaged.display(),
                    ran.stderr
                )
            });
        assert!(named.contains("skipping"), "{name}: {named}");
        let older = format!("resuming from the snapshot at epoch {} ", snapshots[1].0);
        assert!(
            ran.stderr.contains(&older),
            "{name}: expected '{older}':\n{}",
            ran.stderr
        );
    }

    // Every complete snapshot damaged: the run refuses to start from partial state.
    let dir = base.path().join("all-damaged");
    std::fs::create_dir(&dir).unwrap();
    let args = job.checkpointed(&dir, 2, "100ms", &["--keep-snapshots", "2"]);
    eprintln!("all damaged: {}", describe(&args, None));
    let snapshots = crash_with_two_snapshots(&args, &dir.join("ck"));
    let damaged: Vec<String> = snapshots
        .iter()
        .map(|(_, snapshot)| {
            let part = largest_part(snapshot, "");
            truncate_half(&part);
            path_arg(&part)
        })
        .collect();
    let output_before = read(&dir.join("out.jsonl"));
    let ran = Proc::start(&args, None).finish();
    let error = ran.one_error_line();
    assert!(
        damaged.iter().any(|part| error.contains(part.as_str())),
        "the error names none of {damaged:?}: {error}"
    );
    assert_eq!(
        read(&dir.join("out.jsonl")),
        output_before,
        "a refused run changed the output"
    );

    reference.finish().succeeded();
    for name in ["truncated", "flipped"] {
        job.assert_reference_output(base.path(), &base.path().join(name));
    }
}

/// Every file under `dir`, recursively.
pub(crate) fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(files_under(&path));
        } else {
            files.push(path);
        }
    }
    files
}

#[test]
fn disk_full_abandons_the_snapshot_and_keeps_the_previous_one() {
    let base = tempfile::tempdir().unwrap();
    let job = fault_job();
    let reference = job.start_reference(base.path(), 2);
    let dir = base.path().join("full");
    std::fs::create_dir(&dir).unwrap();
    let args = job.checkpointed(&dir, 2, "200ms", &[]);
    eprintln!("disk full: {}", describe(&args, Some("write-fail:2")));
    let ran = Proc::start(&args, Some("write-fail:2")).finish();
    let error = ran.one_error_line();
    assert!(error.contains("abandoned"), "{error}");

    let ck = dir.join("ck");
    let leftovers: Vec<PathBuf> = files_under(&ck)
        .into_iter()
        .filter(|p| p.to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
    for entry in std::fs::read_dir(&ck).unwrap().flatten() {
        let path = entry.path();
        if entry.file_name().to_string_lossy().starts_with("snapshot-") {
            assert!(
                path.join("MANIFEST.json").exists(),
                "a snapshot directory without a manifest is left: {}",
                path.display()
            );
        }
    }
    // The previous snapshot is intact: every part its manifest lists has its size and CRC.
    let snapshots = complete_snapshots(&ck);
    let (epoch, previous) = snapshots.first().expect("the first snapshot is kept");
    let manifest: serde_json::Value =
        serde_json::from_slice(&read(&previous.join("MANIFEST.json"))).expect("a JSON manifest");
    assert_eq!(manifest["epoch"].as_u64(), Some(*epoch));
    let parts = manifest["parts"].as_array().expect("the manifest's parts");
    assert!(!parts.is_empty());
    for part in parts {
        let file = previous.join(part["file"].as_str().unwrap());
        let bytes = read(&file);
        assert_eq!(
            Some(bytes.len() as u64),
            part["size"].as_u64(),
            "{}",
            file.display()
        );
        assert_eq!(
            Some(u64::from(crc32fast::hash(&bytes))),
            part["crc32"].as_u64(),
            "{}",
            file.display()
        );
    }

    let ran = Proc::start(&args, None).finish().succeeded();
    let resumed = format!("resuming from the snapshot at epoch {epoch} ");
    assert!(
        ran.stderr.contains(&resumed),
        "expected '{resumed}':\n{}",
        ran.stderr
    );
    reference.finish().succeeded();
    job.assert_reference_output(base.path(), &dir);
}

#[test]
fn checkpoint_flags_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let ck = path_arg(&dir.path().join("ck"));
    let out = path_arg(&dir.path().join("out.jsonl"));
    let watched = dir.path().join("in");
    std::fs::create_dir(&watched).unwrap();
    support::write(
        &watched,
        "a.jsonl",
        "{\"ts\":1,\"key\":\"a\",\"value\":1}\n",
    );
    let watched = path_arg(&watched);
    let rate = "rate:rows_per_sec=1000,keys=2,count=10,seed=1";
    let run = |input: &str, extra: &[&str]| -> Vec<String> {
        let mut args: Vec<String> = [
            "run",
            "--input",
            input,
            "--time-field",
            "ts",
            "--key-field",
            "key",
            "--agg",
            "count",
            "--output",
            &out,
            "--checkpoint-dir",
            &ck,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend(extra.iter().map(|s| s.to_string()));
        args
    };
    let window = ["--window", "tumbling:100ms"];
    let refused: Vec<Vec<String>> = vec![
        run(
            "tcp://127.0.0.1:9",
            &[&window[..], &["--format", "jsonl"]].concat(),
        ),
        run("-", &[&window[..], &["--format", "jsonl"]].concat()),
        run(
            &watched,
            &[&window[..], &["--format", "jsonl", "--watch", "100ms"]].concat(),
        ),
        run(rate, &["--mode", "complete"]),
        run(rate, &[&window[..], &["--heartbeat", "100ms"]].concat()),
    ];
    for args in &refused {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let error = support::fails(&args, 2);
        assert!(error.contains("--checkpoint-dir"), "{args:?}: {error}");
    }

    let args = run(
        rate,
        &[&window[..], &["--snapshot-interval", "0ms"]].concat(),
    );
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let error = support::fails(&args, 2);
    assert!(error.contains("--snapshot-interval"), "{error}");

    let args = run(rate, &window);
    let ran = Proc::start(&args, Some("bogus")).finish();
    assert_eq!(ran.status.code(), Some(2), "{}", ran.stderr);
    let error = ran.one_error_line();
    assert!(error.contains(FAULT_VAR), "{error}");
    assert_eq!(ran.stderr.trim_end().lines().count(), 1, "{}", ran.stderr);
}
