//! Crash tests of cluster snapshots (issue 15): `tideflow cluster --local N` jobs with a
//! checkpoint directory, crashed at the fault points of the cross-process protocol, or with a
//! process SIGKILLed and the cluster restarted on another shape; the committed output must
//! equal an uninterrupted 1-process run's, byte for byte.
//!
//! Kill moments come from `TIDEFLOW_CRASH_SEED`, printed with the commands (see `mod.rs`).

use std::path::Path;
use std::time::Duration;

use super::harness::*;
use super::{crash_at_fault_then_recover, crash_seed, fault_job, run_all, SEED_VAR};
use crate::support::SplitMix64;

/// `tideflow cluster --local processes -- ARGS`.
fn on_cluster(processes: u16, args: &[String]) -> Vec<String> {
    let mut cluster = vec![
        "cluster".to_string(),
        "--local".to_string(),
        processes.to_string(),
        "--".to_string(),
    ];
    cluster.extend(args.iter().cloned());
    cluster
}

/// The pids of the processes the launcher `launcher` started.
fn children(launcher: u32) -> Vec<libc::pid_t> {
    let path = format!("/proc/{launcher}/task/{launcher}/children");
    std::fs::read_to_string(&path)
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|pid| pid.parse().ok())
        .collect()
}

/// SIGKILLs process `index` of the cluster `launcher` started; false if it is not running.
fn kill_process(launcher: &Proc, index: usize, processes: usize) -> bool {
    // The launcher starts its processes in order: the pids list in that order.
    let started = std::time::Instant::now();
    let pids = loop {
        let pids = children(launcher.child.id());
        if pids.len() == processes || started.elapsed() > RUN_DEADLINE {
            break pids;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let Some(&pid) = pids.get(index) else {
        return false;
    };
    // SAFETY: kill(2) with a child's pid and SIGKILL; it touches no memory of this process.
    unsafe { libc::kill(pid, libc::SIGKILL) == 0 }
}

#[test]
fn cluster_fault_points_recover_to_the_exact_output() {
    let base = tempfile::tempdir().unwrap();
    let base = base.path();
    let job = fault_job();
    job.start_reference(base, 1).finish().succeeded();
    let mut scenarios: Vec<(String, Box<dyn FnOnce() + '_>)> = Vec::new();
    // A process dies after writing its parts (before process 0 wrote the manifest); process
    // 0 dies after the manifest (before its sinks committed), or in the middle of a commit.
    for point in [
        "after-parts@1",
        "after-parts:2@1",
        "after-parts:2@0",
        "after-manifest@0",
        "after-manifest:2@0",
        "mid-commit:2@0",
    ] {
        let dir = base.join(point.replace([':', '@'], "-"));
        std::fs::create_dir(&dir).unwrap();
        let args = on_cluster(2, &job.checkpointed(&dir, 2, "200ms", &[]));
        // The first snapshot's manifest was written at every point but the first one.
        let resumes = point != "after-parts@1";
        scenarios.push(crash_at_fault_then_recover(
            &job, base, dir, args, point, resumes,
        ));
    }
    run_all(scenarios);
}

/// Runs `args` until its checkpoint directory holds a snapshot newer than `after`, then
/// SIGKILLs one of its `processes` processes, chosen by `rng`; returns the newest complete
/// snapshot's epoch and the run.
fn crash_after_a_snapshot(
    args: &[String],
    ck: &Path,
    processes: usize,
    after: Option<u64>,
    rng: &mut SplitMix64,
) -> (u64, Ran) {
    let mut launcher = Proc::start(args, None);
    loop {
        let newest = complete_snapshots(ck).first().map(|(epoch, _)| *epoch);
        if newest.is_some_and(|epoch| Some(epoch) > after) {
            break;
        }
        assert!(
            !launcher.exited_within(Duration::from_millis(2)),
            "the job ended before a new snapshot: {}",
            launcher.what
        );
    }
    // A moment later still: the kill lands mid-interval.
    let victim = rng.below(processes as u64) as usize;
    std::thread::sleep(Duration::from_millis(rng.below(150)));
    eprintln!("killing process {victim} of {}", launcher.what);
    let killed = kill_process(&launcher, victim, processes);
    let ran = launcher.finish().no_panic();
    assert!(
        killed && !ran.status.success(),
        "process {victim} was not killed ({}): {}",
        ran.status,
        ran.stderr
    );
    let newest = complete_snapshots(ck)
        .first()
        .map(|(epoch, _)| *epoch)
        .expect("a complete snapshot");
    (newest, ran)
}

#[test]
fn a_cluster_rescaled_between_crashes_gives_the_uninterrupted_output() {
    let seed = crash_seed();
    eprintln!("crash seed {seed} (replay with {SEED_VAR}={seed})");
    let mut rng = SplitMix64(seed ^ 0x15);
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let job = Job::new(
        "rate:rows_per_sec=20000,keys=200,count=100000,seed=15,disorder=20",
        &["--watermark-delay", "50ms", "--window", "session:30ms"],
    );
    job.start_reference(dir, 1).finish().succeeded();
    let ck = dir.join("ck");
    // 2 processes x 2 workers, then 3 x 1, then 1 process of 2 workers to the end.
    let (first, _) = crash_after_a_snapshot(
        &on_cluster(2, &job.checkpointed(dir, 2, "200ms", &[])),
        &ck,
        2,
        None,
        &mut rng,
    );
    let (second, ran) = crash_after_a_snapshot(
        &on_cluster(3, &job.checkpointed(dir, 1, "200ms", &[])),
        &ck,
        3,
        Some(first),
        &mut rng,
    );
    assert!(ran.resumed(), "3 x 1 did not resume: {}", ran.stderr);
    let last = Proc::start(&job.checkpointed(dir, 2, "200ms", &[]), None)
        .finish()
        .succeeded();
    assert!(
        last.resumed(),
        "1 x 2 did not resume (after epoch {second}): {}",
        last.stderr
    );
    job.assert_reference_output(dir, dir);
}
