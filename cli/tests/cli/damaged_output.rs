//! An output file that lost committed rows before a resume (issue 13 item 4): truncated below
//! its committed length or deleted between a killed run and the next, or after the job
//! completed. The commit record says how long it was; the run is refused with one line naming
//! the file and both lengths, and writes nothing (it used to pad the file with NUL bytes to
//! its committed length and append to it).

use std::path::Path;
use std::time::Duration;

use crate::crash::harness::{path_arg, read, Job, Proc, RUN_DEADLINE};

/// The output's committed length, from its commit record in `ck` (0 without one).
fn committed_length(ck: &Path) -> u64 {
    let Ok(bytes) = std::fs::read(ck.join("commit-sink0.json")) else {
        return 0;
    };
    let record: serde_json::Value = serde_json::from_slice(&bytes).expect("a JSON commit record");
    record["length"].as_u64().expect("a committed length")
}

/// Runs `args` until its output has committed rows, then kills it (or lets it end, if it
/// ends first); returns the committed length.
fn kill_once_committed(args: &[String], ck: &Path) -> u64 {
    let mut process = Proc::start(args, None);
    while committed_length(ck) == 0 {
        if process.exited_within(Duration::ZERO) {
            break;
        }
        assert!(
            process.started.elapsed() < RUN_DEADLINE,
            "nothing committed within {RUN_DEADLINE:?}: {}",
            process.what
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    let _ = process.child.kill();
    process.collect().no_panic();
    let length = committed_length(ck);
    assert!(length > 0, "nothing was committed");
    length
}

/// Runs `args` again after the output `out` was damaged: refused with one line naming it and
/// both lengths (`is`: `N bytes long` or `missing`), and the output left as the damage left
/// it.
fn assert_refused(args: &[String], out: &Path, is: &str, committed: u64) {
    let before = std::fs::read(out).ok();
    let ran = Proc::start(args, None).finish();
    let line = ran.one_error_line();
    let expected = format!(
        "{} is {is}, but its first {committed} bytes were committed",
        path_arg(out)
    );
    assert!(line.contains(&expected), "expected {expected:?} in: {line}");
    assert!(line.contains("commit-sink0.json"), "{line}");
    assert_eq!(
        std::fs::read(out).ok(),
        before,
        "a refused run wrote to the output"
    );
}

/// Damages an output with its committed length; returns what the refusal says the file is.
type Damage = fn(&Path, u64) -> String;

/// The damages: truncated to half its committed length, or deleted.
fn damages() -> [(&'static str, Damage); 2] {
    fn truncate(out: &Path, committed: u64) -> String {
        let file = std::fs::OpenOptions::new().write(true).open(out).unwrap();
        file.set_len(committed / 2).unwrap();
        format!("{} bytes long", committed / 2)
    }
    fn delete(out: &Path, _committed: u64) -> String {
        std::fs::remove_file(out).unwrap();
        "missing".to_string()
    }
    [("truncated", truncate), ("deleted", delete)]
}

#[test]
fn an_output_truncated_or_deleted_before_a_resume_is_refused() {
    let base = tempfile::tempdir().unwrap();
    // 10 s of input: killed once its first rows are committed.
    let job = Job::new(
        "rate:rows_per_sec=20000,keys=50,count=200000,seed=41,disorder=20",
        &["--watermark-delay", "50ms", "--window", "tumbling:100ms"],
    );
    for (name, damage) in damages() {
        let dir = base.path().join(name);
        std::fs::create_dir(&dir).unwrap();
        let args = job.checkpointed(&dir, 2, "100ms", &[]);
        let committed = kill_once_committed(&args, &dir.join("ck"));
        let out = dir.join("out.jsonl");
        assert!(read(&out).len() as u64 >= committed);
        let is = damage(&out, committed);
        assert_refused(&args, &out, &is, committed);
        // Refused again, however often it runs.
        assert_refused(&args, &out, &is, committed);
    }
}

#[test]
fn an_output_truncated_or_deleted_after_the_job_completed_is_refused() {
    let base = tempfile::tempdir().unwrap();
    let job = Job::new(
        "rate:rows_per_sec=20000,keys=50,count=4000,seed=42,disorder=20",
        &["--watermark-delay", "50ms", "--window", "tumbling:100ms"],
    );
    for (name, damage) in damages() {
        let dir = base.path().join(name);
        std::fs::create_dir(&dir).unwrap();
        let args = job.checkpointed(&dir, 1, "100ms", &[]);
        Proc::start(&args, None).finish().succeeded();
        let out = dir.join("out.jsonl");
        let committed = committed_length(&dir.join("ck"));
        assert_eq!(read(&out).len() as u64, committed);
        let is = damage(&out, committed);
        // Not "nothing to do" over a file that lost its rows.
        assert_refused(&args, &out, &is, committed);
    }
}
