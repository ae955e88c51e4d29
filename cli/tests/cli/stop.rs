//! Stopping `tideflow run` with SIGINT or SIGTERM (issue 13, item 12): the first signal stops
//! the job gracefully (the summary is printed, what is complete is written, and with a
//! checkpoint directory the last snapshot lets the same command resume exactly there), the
//! process exits with 130 or 143; a second signal ends it at once, killed by the signal.
//! Every wait is for something observable (output rows, a progress line, a message), with
//! the suite's deadline.

use std::io::{BufRead, BufReader};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use crate::support::{tideflow, write, DEADLINE, ROOT};

/// A running `tideflow` whose standard error is read line by line as it comes.
struct Running {
    child: Child,
    stderr: Receiver<String>,
    seen: Vec<String>,
}

impl Running {
    fn start(args: &[&str]) -> Running {
        let mut child = Command::new(env!("CARGO_BIN_EXE_tideflow"))
            .args(args)
            .current_dir(ROOT)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the tideflow binary starts");
        let stderr = child.stderr.take().expect("piped standard error");
        let (lines, receiver) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if lines.send(line).is_err() {
                    break;
                }
            }
        });
        Running {
            child,
            stderr: receiver,
            seen: Vec::new(),
        }
    }

    fn signal(&self, name: &str) {
        crate::support::signal(self.child.id(), name);
    }

    /// Waits for a standard error line containing `text`.
    fn wait_for_stderr(&mut self, text: &str) {
        let start = Instant::now();
        while !self.seen.iter().any(|line| line.contains(text)) {
            let left = DEADLINE.saturating_sub(start.elapsed());
            match self.stderr.recv_timeout(left) {
                Ok(line) => self.seen.push(line),
                Err(_) => panic!("no {text:?} on standard error: {:?}", self.seen),
            }
        }
    }

    /// Waits for the process to exit; returns its status and every standard error line.
    fn finish(mut self) -> (ExitStatus, String) {
        let start = Instant::now();
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("wait for tideflow") {
                break status;
            }
            assert!(start.elapsed() < DEADLINE, "tideflow did not exit in time");
            std::thread::sleep(Duration::from_millis(10));
        };
        // The reader thread ends at the end of the pipe.
        while let Ok(line) = self.stderr.recv_timeout(DEADLINE) {
            self.seen.push(line);
        }
        (status, self.seen.join("\n"))
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `dir/name`, and as an argument.
fn path_in(dir: &Path, name: &str) -> (PathBuf, String) {
    let path = dir.join(name);
    let shown = path.to_string_lossy().into_owned();
    (path, shown)
}

/// Waits until `path` holds at least `lines` lines.
fn wait_for_lines(path: &Path, lines: usize) {
    let start = Instant::now();
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if text.lines().count() >= lines {
            return;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "{} did not reach {lines} lines",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The number of records a summary line says were read.
fn records_read(stderr: &str) -> u64 {
    let line = stderr
        .lines()
        .find(|line| line.contains(" records read, "))
        .unwrap_or_else(|| panic!("no summary: {stderr}"));
    let count = line
        .trim_start_matches("tideflow: ")
        .split(' ')
        .next()
        .expect("a count");
    count.parse().expect("a number of records")
}

/// `tideflow run` over `rate`, in 1 s tumbling windows by key, with a count and a sum.
fn rate_query<'a>(rate: &'a str, output: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "run",
        "--input",
        rate,
        "--time-field",
        "ts",
        "--key-field",
        "key",
        "--window",
        "tumbling:1s",
        "--agg",
        "count",
        "--agg",
        "sum:value",
        "--output",
        output,
    ];
    args.extend_from_slice(extra);
    args
}

#[test]
fn sigint_stops_an_endless_job_with_its_summary_and_the_closed_windows_written() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let (output, shown) = path_in(dir.path(), "out.jsonl");
    let (progress, progress_shown) = path_in(dir.path(), "progress.jsonl");
    let rate = "rate:rows_per_sec=2000,keys=3";
    let job = Running::start(&rate_query(
        rate,
        &shown,
        &[
            "--workers",
            "2",
            "--progress",
            &progress_shown,
            "--progress-interval",
            "50ms",
        ],
    ));
    // Two windows of three keys are out.
    wait_for_lines(&output, 6);
    job.signal("INT");
    let (status, stderr) = job.finish();
    assert_eq!(status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("stopping gracefully"), "{stderr}");
    assert!(stderr.contains("stopped by SIGINT"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    // The final progress report is written too.
    let reports = std::fs::read_to_string(&progress).expect("progress reports");
    let last = reports.lines().last().expect("a report");
    assert!(last.contains("\"final\":true"), "{last}");
    // The rows written are those of the same records read by a run that ends there.
    let written = std::fs::read_to_string(&output).expect("the output");
    assert!(written.lines().count() >= 6);
    assert_written_as_by_a_run_of(dir.path(), rate, records_read(&stderr), &written);
    // Every row the sink received is in the file, whole: none was left in a buffer.
    assert!(written.ends_with('\n'), "{written}");
    assert_eq!(
        summary_count(&stderr, " window rows written"),
        written.lines().count()
    );
}

/// The count a summary line gives before `what` (e.g. " window rows written").
fn summary_count(stderr: &str, what: &str) -> usize {
    let line = stderr
        .lines()
        .find(|line| line.contains(what))
        .unwrap_or_else(|| panic!("no summary: {stderr}"));
    let before = &line[..line.find(what).expect("the count's label")];
    let count = before.rsplit(' ').next().expect("a count");
    count.parse().expect("a number of rows")
}

/// Asserts that `written` is a prefix of the output of the same query over the first `read`
/// records of `rate`: every window the watermark had closed is in it, whole.
fn assert_written_as_by_a_run_of(dir: &Path, rate: &str, read: u64, written: &str) {
    let reference_rate = format!("{rate},count={read}");
    let (reference, reference_shown) = path_in(dir, "reference.jsonl");
    let ran = tideflow(&rate_query(&reference_rate, &reference_shown, &[]));
    assert_eq!(ran.status.code(), Some(0));
    let reference = std::fs::read_to_string(&reference).expect("the reference output");
    assert!(
        reference.starts_with(written),
        "not a prefix:\n{written}\nof\n{reference}"
    );
}

#[test]
fn sigterm_with_a_checkpoint_directory_commits_a_snapshot_that_a_resumed_run_completes() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let rate = "rate:rows_per_sec=4000,keys=3,count=40000";
    // The reference: one uninterrupted run, at the same time.
    let (reference, reference_shown) = path_in(dir.path(), "reference.jsonl");
    let reference_run = Running::start(&rate_query(rate, &reference_shown, &[]));
    let (output, shown) = path_in(dir.path(), "out.jsonl");
    let (_, ck_shown) = path_in(dir.path(), "ck");
    let args = rate_query(
        rate,
        &shown,
        &[
            "--checkpoint-dir",
            &ck_shown,
            "--snapshot-interval",
            "100ms",
        ],
    );
    let job = Running::start(&args);
    // A snapshot has committed rows.
    wait_for_lines(&output, 3);
    job.signal("TERM");
    let (status, stderr) = job.finish();
    assert_eq!(status.code(), Some(143), "{stderr}");
    assert!(stderr.contains("stopped by SIGTERM"), "{stderr}");
    assert!(stderr.contains(" records read, "), "{stderr}");
    let resumed_stderr = resume_after_the_stop(&args, &output, &reference, reference_run);
    // Fewer records than all of them: it went on where the first run stopped.
    assert!(records_read(&resumed_stderr) < 40_000, "{resumed_stderr}");
}

/// After a graceful stop of `args` with a checkpoint directory: the output written so far is a
/// proper prefix of the uninterrupted `reference_run`'s; the same command resumes from the
/// snapshot it stopped at and completes with the reference's output. Returns its stderr.
fn resume_after_the_stop(
    args: &[&str],
    output: &Path,
    reference: &Path,
    reference_run: Running,
) -> String {
    let stopped_at = std::fs::read_to_string(output).expect("the output");
    let (reference_status, reference_stderr) = reference_run.finish();
    assert!(reference_status.success(), "{reference_stderr}");
    let reference = std::fs::read_to_string(reference).expect("the reference output");
    assert!(
        reference.starts_with(&stopped_at) && stopped_at.len() < reference.len(),
        "not a proper prefix:\n{stopped_at}\nof\n{reference}"
    );
    let resumed = tideflow(args);
    let resumed_stderr = String::from_utf8_lossy(&resumed.stderr).to_string();
    assert_eq!(resumed.status.code(), Some(0), "{resumed_stderr}");
    assert!(
        resumed_stderr.contains("resuming from the snapshot"),
        "{resumed_stderr}"
    );
    assert_eq!(
        std::fs::read_to_string(output).expect("the output"),
        reference
    );
    resumed_stderr
}

#[test]
fn a_second_signal_stops_at_once() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let (_, shown) = path_in(dir.path(), "out.jsonl");
    let (progress, progress_shown) = path_in(dir.path(), "progress.jsonl");
    let (_, ck_shown) = path_in(dir.path(), "ck");
    // Micro-batches 1000 hours apart: the snapshot a graceful stop asks for cannot complete
    // before the next batch, so only the second signal ends the job.
    let mut job = Running::start(&rate_query(
        "rate:rows_per_sec=1000",
        &shown,
        &[
            "--trigger",
            "interval:1000h",
            "--checkpoint-dir",
            &ck_shown,
            "--progress",
            &progress_shown,
            "--progress-interval",
            "20ms",
        ],
    ));
    // Running, with the signal handler installed (before the job starts).
    wait_for_lines(&progress, 1);
    job.signal("INT");
    job.wait_for_stderr("stopping gracefully");
    job.signal("INT");
    let (status, stderr) = job.finish();
    assert_eq!(status.code(), None, "{stderr}");
    assert_eq!(status.signal(), Some(2), "killed by SIGINT: {stderr}");
    assert!(
        stderr.contains("SIGINT again: stopping at once"),
        "{stderr}"
    );
    assert!(!stderr.contains(" records read, "), "{stderr}");
}

#[test]
fn ctrl_c_ends_a_watched_directory_and_a_skipped_entry_is_named_once() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let input = dir.path().join("input");
    std::fs::create_dir(&input).expect("an input directory");
    std::fs::create_dir(input.join("sub")).expect("a subdirectory");
    write(
        &input,
        "1.jsonl",
        "{\"ts\":1000,\"k\":\"a\"}\n{\"ts\":12000,\"k\":\"a\"}\n",
    );
    let (output, shown) = path_in(dir.path(), "out.jsonl");
    let input_shown = input.to_string_lossy().into_owned();
    let job = Running::start(&[
        "run",
        "--input",
        &input_shown,
        "--watch",
        "10ms",
        "--time-field",
        "ts",
        "--key-field",
        "k",
        "--window",
        "tumbling:10s",
        "--agg",
        "count",
        "--output",
        &shown,
    ]);
    wait_for_lines(&output, 1);
    // A file moved in whole, listed many times over since: its window closes.
    let staged = write(
        dir.path(),
        "2.jsonl",
        "{\"ts\":15000,\"k\":\"a\"}\n{\"ts\":25000,\"k\":\"a\"}\n",
    );
    std::fs::rename(&staged, input.join("2.jsonl")).expect("move the file in");
    wait_for_lines(&output, 2);
    job.signal("INT");
    let (status, stderr) = job.finish();
    assert_eq!(status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("4 records read"), "{stderr}");
    let warning = format!("skipping {input_shown}/sub: a directory");
    assert_eq!(stderr.matches(&warning).count(), 1, "{stderr}");
    assert_eq!(
        std::fs::read_to_string(&output).expect("the output"),
        "{\"key\":\"a\",\"window_start\":0,\"window_end\":10000,\"count\":1}\n{\"key\":\"a\",\"window_start\":10000,\"window_end\":20000,\"count\":2}\n"
    );
}

#[test]
fn cluster_local_forwards_sigint_and_every_process_stops_gracefully() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let (output, shown) = path_in(dir.path(), "out.jsonl");
    let (_, progress_shown) = path_in(dir.path(), "progress.jsonl");
    let rate = "rate:rows_per_sec=2000,keys=3";
    let mut args = vec!["cluster", "--local", "2", "--"];
    // Process P writes its progress reports to progress.jsonl.P.
    args.extend(rate_query(rate, &shown, &["--progress", &progress_shown]));
    let job = Running::start(&args);
    wait_for_lines(&output, 6);
    job.signal("INT");
    let (status, stderr) = job.finish();
    assert_eq!(status.code(), Some(130), "{stderr}");
    // Both processes stopped gracefully (their lines may interleave on the shared pipe).
    assert!(stderr.matches("stopped by SIGINT").count() >= 2, "{stderr}");
    assert!(!stderr.contains("lost process"), "{stderr}");
    // The rows written are those of a run over every record the processes read (their
    // standard errors interleave: the final progress reports say how many).
    let read: u64 = (0..2)
        .map(|process| {
            let path = dir.path().join(format!("progress.jsonl.{process}"));
            let reports = std::fs::read_to_string(&path).expect("progress reports");
            let last: serde_json::Value =
                serde_json::from_str(reports.lines().last().expect("a report")).expect("JSON");
            assert_eq!(last["final"], true, "{last}");
            last["input_rows"].as_u64().expect("input rows")
        })
        .sum();
    let written = std::fs::read_to_string(&output).expect("the output");
    assert_written_as_by_a_run_of(dir.path(), rate, read, &written);
}

#[test]
fn a_cluster_stopped_by_sigterm_commits_a_snapshot_that_a_resumed_cluster_completes() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let rate = "rate:rows_per_sec=4000,keys=3,count=40000";
    let (reference, reference_shown) = path_in(dir.path(), "reference.jsonl");
    let reference_run = Running::start(&rate_query(rate, &reference_shown, &[]));
    let (output, shown) = path_in(dir.path(), "out.jsonl");
    let (_, ck_shown) = path_in(dir.path(), "ck");
    let mut args = vec!["cluster", "--local", "2", "--"];
    args.extend(rate_query(
        rate,
        &shown,
        &[
            "--checkpoint-dir",
            &ck_shown,
            "--snapshot-interval",
            "100ms",
        ],
    ));
    let job = Running::start(&args);
    wait_for_lines(&output, 3);
    job.signal("TERM");
    let (status, stderr) = job.finish();
    assert_eq!(status.code(), Some(143), "{stderr}");
    // Both processes stopped at the same snapshot, not on a lost peer.
    assert!(
        stderr.matches("stopped by SIGTERM").count() >= 2,
        "{stderr}"
    );
    assert!(!stderr.contains("lost process"), "{stderr}");
    // The same cluster command resumes from that snapshot and completes.
    resume_after_the_stop(&args, &output, &reference, reference_run);
}
