//! Multi-process clusters with the real binary: 2 processes x 2 workers give exactly the output
//! of 1 worker for every window kind (started by hand and by `tideflow cluster --local`), a lost
//! process stops the others with an error naming it, and a stranger is refused.

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::support::{fails, free_hosts, tideflow, write, SplitMix64};

/// Starts `tideflow run args` as process `process` of the cluster at `hosts`.
fn start(args: &[&str], process: usize, hosts: &str, secret: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_tideflow"))
        .arg("run")
        .args(args)
        .args(["--processes", "2", "--process-id", &process.to_string()])
        .args(["--hosts", hosts])
        .env("TIDEFLOW_CLUSTER_SECRET", secret)
        .current_dir(crate::support::ROOT)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the tideflow binary starts")
}

/// Waits for `child` for at most `limit`; kills it and fails the test past that.
pub(crate) fn finish(mut child: Child, limit: Duration, what: &str) -> Output {
    let started = Instant::now();
    while child.try_wait().expect("wait").is_none() {
        if started.elapsed() > limit {
            let _ = child.kill();
            let output = child.wait_with_output().expect("output");
            panic!(
                "{what} still ran after {limit:?}; stderr: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().expect("output")
}

/// JSON lines of `count` events over 60 users in 3 files, 1 ms apart, some 40 ms early.
pub(crate) fn input(dir: &Path) -> String {
    let input = dir.join("input");
    std::fs::create_dir(&input).expect("an input directory");
    let mut rng = SplitMix64(77);
    for file in 0..3 {
        let mut lines = String::new();
        for i in 0..4_000u64 {
            let ts = 1_000 + i * 3 + file - rng.below(40);
            let user = rng.below(60);
            let v = rng.below(100);
            lines.push_str(&format!("{{\"ts\":{ts},\"user\":\"u{user}\",\"v\":{v}}}\n"));
        }
        write(&input, &format!("part{file}.jsonl"), &lines);
    }
    input.to_string_lossy().into_owned()
}

pub(crate) fn query<'a>(input: &'a str, window: &'a str, output: &'a str) -> Vec<&'a str> {
    vec![
        "--input",
        input,
        "--format",
        "jsonl",
        "--time-field",
        "ts",
        "--key-field",
        "user",
        "--agg",
        "count",
        "--agg",
        "sum:v",
        "--window",
        window,
        "--watermark-delay",
        "20ms",
        "--output",
        output,
    ]
}

#[test]
fn two_processes_of_two_workers_give_the_single_worker_output_for_every_window_kind() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let input = input(dir.path());
    for window in ["tumbling:50ms", "sliding:100ms,25ms", "session:15ms"] {
        let reference = dir.path().join("reference.jsonl");
        let reference = reference.to_string_lossy().into_owned();
        let mut args = vec!["run"];
        args.extend(query(&input, window, &reference));
        let out = tideflow(&args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let expected = std::fs::read(&reference).expect("the reference output");
        assert!(!expected.is_empty());

        // By hand: two processes, two workers each.
        let output = dir.path().join("by-hand.jsonl");
        let output = output.to_string_lossy().into_owned();
        let mut args = query(&input, window, &output);
        args.extend(["--workers", "2"]);
        let hosts = free_hosts();
        let second = start(&args, 1, &hosts, "s3cret");
        let first = start(&args, 0, &hosts, "s3cret");
        for (process, child) in [(0, first), (1, second)] {
            let done = finish(child, Duration::from_secs(60), "a cluster process");
            assert!(
                done.status.success(),
                "{window}: process {process}: {}",
                String::from_utf8_lossy(&done.stderr)
            );
        }
        assert_eq!(
            std::fs::read(&output).expect("the cluster's output"),
            expected,
            "{window}: 2 processes x 2 workers by hand"
        );

        // With `tideflow cluster --local 2`.
        let output = dir.path().join("local.jsonl");
        let output = output.to_string_lossy().into_owned();
        let mut args = vec!["cluster", "--local", "2", "--"];
        args.extend(query(&input, window, &output));
        args.extend(["--workers", "2"]);
        let out = tideflow(&args);
        assert!(
            out.status.success(),
            "{window}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            std::fs::read(&output).expect("the cluster's output"),
            expected,
            "{window}: tideflow cluster --local 2"
        );
    }
}

/// A job that runs for about 20 s unless stopped.
fn long_job(output: &str) -> Vec<&str> {
    vec![
        "--input",
        "rate:rows_per_sec=2000,keys=10,count=40000,seed=1",
        "--time-field",
        "ts",
        "--key-field",
        "key",
        "--agg",
        "count",
        "--window",
        "tumbling:100ms",
        "--output",
        output,
    ]
}

#[test]
fn killing_one_process_stops_the_others_with_an_error_naming_it() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let output = dir.path().join("out.jsonl").to_string_lossy().into_owned();
    let args = long_job(&output);
    let hosts = free_hosts();
    let mut second = start(&args, 1, &hosts, "s3cret");
    let mut first = start(&args, 0, &hosts, "s3cret");
    // Let the job form and run (its first rows are written), then kill process 1.
    let started = Instant::now();
    while std::fs::metadata(&output).map_or(true, |m| m.len() == 0) {
        if started.elapsed() > Duration::from_secs(60) || first.try_wait().ok().flatten().is_some()
        {
            let _ = second.kill();
            let done = finish(first, Duration::from_secs(60), "process 0");
            panic!(
                "the cluster wrote no rows: {}",
                String::from_utf8_lossy(&done.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    second.kill().expect("process 1 is killed");
    let _ = second.wait();
    let done = finish(
        first,
        Duration::from_secs(60),
        "process 0 after its peer died",
    );
    let stderr = String::from_utf8_lossy(&done.stderr);
    assert!(!done.status.success(), "process 0 exited 0: {stderr}");
    assert!(
        stderr.contains("lost process 1") && stderr.contains(hosts.split(',').nth(1).unwrap()),
        "{stderr}"
    );
    assert!(
        !stderr.contains("panicked") && !stderr.contains("backtrace"),
        "{stderr}"
    );
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
}

#[test]
fn a_wrong_secret_or_cluster_id_is_refused_and_the_cluster_keeps_its_shape() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let input = input(dir.path());
    let reference = dir
        .path()
        .join("reference.jsonl")
        .to_string_lossy()
        .into_owned();
    let mut args = vec!["run"];
    args.extend(query(&input, "tumbling:50ms", &reference));
    assert!(tideflow(&args).status.success());

    let output = dir.path().join("out.jsonl").to_string_lossy().into_owned();
    let args = query(&input, "tumbling:50ms", &output);
    let hosts = free_hosts();
    let first = start(&args, 0, &hosts, "right");

    // The wrong secret: refused on both sides.
    let stranger = start(&args, 1, &hosts, "wrong");
    let refused = finish(
        stranger,
        Duration::from_secs(60),
        "a process with the wrong secret",
    );
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("refused by process 0") && stderr.contains("secrets differ"),
        "{stderr}"
    );
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");

    // Another cluster's process: refused.
    let mut other = args.clone();
    other.extend(["--cluster-id", "another"]);
    let refused = finish(
        start(&other, 1, &hosts, "right"),
        Duration::from_secs(60),
        "another cluster's process",
    );
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success());
    assert!(stderr.contains("cluster id \"another\""), "{stderr}");

    // The right process joins, and the job runs as if nothing had happened.
    let second = start(&args, 1, &hosts, "right");
    let done = finish(second, Duration::from_secs(60), "process 1");
    assert!(
        done.status.success(),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    let done = finish(first, Duration::from_secs(60), "process 0");
    let stderr = String::from_utf8_lossy(&done.stderr);
    assert!(done.status.success(), "{stderr}");
    assert!(stderr.contains("refused a cluster connection"), "{stderr}");
    assert_eq!(
        std::fs::read(&output).expect("output"),
        std::fs::read(&reference).expect("reference")
    );
}

#[test]
fn cluster_flags_are_checked() {
    let base = [
        "run",
        "--input",
        "x.jsonl",
        "--time-field",
        "ts",
        "--window",
        "tumbling:1s",
        "--agg",
        "count",
    ];
    let with = |extra: &[&str]| -> Vec<String> {
        base.iter().chain(extra).map(|s| s.to_string()).collect()
    };
    for (extra, flag) in [
        (
            vec!["--processes", "2", "--hosts", "127.0.0.1:1,127.0.0.1:2"],
            "--process-id",
        ),
        (vec!["--processes", "2", "--process-id", "0"], "--hosts"),
        (
            vec![
                "--processes",
                "3",
                "--process-id",
                "0",
                "--hosts",
                "127.0.0.1:1,127.0.0.1:2",
            ],
            "--hosts",
        ),
        (
            vec![
                "--processes",
                "2",
                "--process-id",
                "2",
                "--hosts",
                "127.0.0.1:1,127.0.0.1:2",
            ],
            "--process-id",
        ),
        (
            vec![
                "--processes",
                "2",
                "--process-id",
                "0",
                "--hosts",
                "127.0.0.1:1,nowhere",
            ],
            "--hosts",
        ),
    ] {
        let args = with(&extra);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let line = fails(&args, 2);
        assert!(line.contains(flag), "{extra:?}: {line}");
    }
    // Without a secret (neither the flag nor the environment variable).
    let out = Command::new(env!("CARGO_BIN_EXE_tideflow"))
        .args(with(&[
            "--processes",
            "2",
            "--process-id",
            "0",
            "--hosts",
            "127.0.0.1:1,127.0.0.1:2",
        ]))
        .env_remove("TIDEFLOW_CLUSTER_SECRET")
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--cluster-secret"));
    // `tideflow cluster` sets the cluster flags itself.
    let line = fails(&["cluster", "--local", "2", "--", "--processes", "2"], 2);
    assert!(line.contains("--processes"), "{line}");
}

#[test]
fn an_error_in_one_process_stops_the_others_naming_it() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let input = dir.path().join("input");
    std::fs::create_dir(&input).expect("an input directory");
    // File 0 (process 0's) has a bad line late in it; file 1 is fine.
    for file in 0..2 {
        let mut lines = String::new();
        for i in 0..20_000 {
            lines.push_str(&format!("{{\"ts\":{i},\"user\":\"u{}\",\"v\":1}}\n", i % 7));
            if file == 0 && i == 15_000 {
                lines.push_str("{not json\n");
            }
        }
        write(&input, &format!("part{file}.jsonl"), &lines);
    }
    let input = input.to_string_lossy().into_owned();
    let output = dir.path().join("out.jsonl").to_string_lossy().into_owned();
    let args = query(&input, "tumbling:100ms", &output);
    let hosts = free_hosts();
    let second = start(&args, 1, &hosts, "s3cret");
    let first = start(&args, 0, &hosts, "s3cret");
    let failed = finish(
        first,
        Duration::from_secs(30),
        "process 0 with a bad record",
    );
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert_eq!(failed.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("part0.jsonl:15002"), "{stderr}");
    let stopped = finish(
        second,
        Duration::from_secs(10),
        "process 1 after process 0 failed",
    );
    let stderr = String::from_utf8_lossy(&stopped.stderr);
    assert_eq!(stopped.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("lost process 0"), "{stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
}
