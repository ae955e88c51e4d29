//! Outputs that cannot be written stop the job (issue 13 items 2, 5, 6 and 18): every write,
//! flush and sync error of the rows, the dead-letter file, the late output and the progress
//! file fails `tideflow run` with one line naming the path and the OS error; a closed standard
//! output or a pipe whose reader has gone does too, without a panic. Dead-letter and late-output
//! files are created owner-only (0600), and a dead letter keeps the record's exact bytes.

use std::io::{BufRead, BufReader};
use std::os::fd::OwnedFd;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Command, Stdio};

use base64::Engine as _;

use crate::support::{self, fails, tideflow, ChildGuard};

/// Good records of keys a and b, then one bad line and one record too late for its window.
const INPUT: &str = "{\"ts\":1000,\"k\":\"a\"}\n{\"ts\":25000,\"k\":\"b\"}\nnot json\n\
                     {\"ts\":2000,\"k\":\"a\"}\n{\"ts\":31000,\"k\":\"b\"}\n";

/// Checks the one line a failed write leaves: the path and ENOSPC.
fn full_disk(args: &[&str], path: &str) {
    let line = fails(args, 3);
    assert!(
        line.contains(path) && line.contains("No space left on device (os error 28)"),
        "{args:?}: {line}"
    );
}

#[test]
fn a_full_disk_fails_the_job_for_every_output() {
    let dir = tempfile::tempdir().unwrap();
    let input = support::write(dir.path(), "in.jsonl", INPUT);
    let out = dir.path().join("out.jsonl").to_string_lossy().into_owned();
    let skip: &[&str] = &["--on-error", "skip"];
    // The rows: append, update, complete mode.
    for mode in ["append", "update"] {
        let args = support::run_args(
            &input,
            &[skip, &["--mode", mode, "--output", "/dev/full"]].concat(),
        );
        full_disk(&args, "/dev/full");
    }
    // Complete mode replaces a regular file by renaming a new one over it; a device is written
    // in place (through a link, so that a regression replaces the link, not /dev/full).
    let link = dir.path().join("full.jsonl");
    std::os::unix::fs::symlink("/dev/full", &link).unwrap();
    let link = link.to_string_lossy().into_owned();
    let args = support::run_args(
        &input,
        &[skip, &["--mode", "complete", "--output", &link]].concat(),
    );
    full_disk(&args, &link);
    assert!(Path::new(&link).is_symlink(), "the link was replaced");

    // The dead letters: the summary used to count a record the full disk had lost.
    let policy = "dead-letter:/dev/full";
    full_disk(
        &support::run_args(&input, &["--on-error", policy, "--output", &out]),
        "dead-letter file /dev/full",
    );
    // The late records.
    let late: &[&str] = &["--late-output", "/dev/full", "--output", &out];
    full_disk(
        &support::run_args(&input, &[skip, late].concat()),
        "/dev/full",
    );
    // The progress reports.
    let progress: &[&str] = &["--progress", "/dev/full", "--output", &out];
    full_disk(
        &support::run_args(&input, &[skip, progress].concat()),
        "--progress: cannot write /dev/full",
    );
}

#[test]
fn dead_letter_and_late_output_files_are_owner_only() {
    let dir = tempfile::tempdir().unwrap();
    let input = support::write(dir.path(), "in.jsonl", INPUT);
    let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    for checkpoint in [false, true] {
        let dead = dir.path().join(format!("dead-{checkpoint}.jsonl"));
        let late = dir.path().join(format!("late-{checkpoint}.jsonl"));
        let out = dir.path().join(format!("out-{checkpoint}.jsonl"));
        let policy = format!("dead-letter:{}", dead.display());
        let ck = dir.path().join(format!("ck-{checkpoint}"));
        let mut args = support::run_args(&input, &["--on-error", &policy]);
        let (late, out, ck) = (
            late.to_str().unwrap(),
            out.to_str().unwrap(),
            ck.to_str().unwrap(),
        );
        args.extend(["--late-output", late, "--output", out]);
        if checkpoint {
            // With snapshots the late output is created by its commit.
            args.extend(["--checkpoint-dir", ck]);
        }
        let run = tideflow(&args);
        assert!(
            run.status.success(),
            "{}",
            String::from_utf8_lossy(&run.stderr)
        );
        assert_eq!(std::fs::read_to_string(late).unwrap().lines().count(), 1);
        assert_eq!(std::fs::read_to_string(&dead).unwrap().lines().count(), 1);
        assert_eq!(mode(&dead), 0o600, "dead letters, checkpoint {checkpoint}");
        assert_eq!(
            mode(Path::new(late)),
            0o600,
            "late output, checkpoint {checkpoint}"
        );
        assert_ne!(mode(Path::new(out)), 0o600, "the rows are not raw input");
    }
}

#[test]
fn dead_letters_keep_the_exact_bytes_of_the_record() {
    let dir = tempfile::tempdir().unwrap();
    let lines: Vec<Vec<u8>> = vec![
        b"{\"ts\":1000,\"k\":\"a\"}".to_vec(),
        // Invalid UTF-8: base64.
        b"{\"ts\":1500,\"k\":\"\xff\xfe\"}".to_vec(),
        // Valid UTF-8 with quotes, a backslash, a tab and a non-ASCII letter: as text.
        "{\"ts\":\"x\",\"k\":\"\u{e9} \\\"q\\\" \\\\ \t\"}"
            .as_bytes()
            .to_vec(),
        // Over the 40-byte limit: cut, marked, with its length.
        format!("{{\"ts\":2000,\"k\":\"{}\"}}", "y".repeat(60)).into_bytes(),
        // Over the limit, cut inside a two-byte letter: the kept bytes are not UTF-8.
        format!("{{\"ts\":2000,\"k\":\"x{}\"}}", "\u{e9}".repeat(20)).into_bytes(),
        b"{\"ts\":3000,\"k\":\"a\"}".to_vec(),
    ];
    let mut contents = lines.join(&b'\n');
    contents.push(b'\n');
    let input = dir.path().join("in.jsonl");
    std::fs::write(&input, &contents).unwrap();
    let input = input.to_string_lossy().into_owned();
    let dead = dir.path().join("dead.jsonl");
    let policy = format!("dead-letter:{}", dead.display());
    let args = support::run_args(&input, &["--max-record-bytes", "40", "--on-error", &policy]);
    let run = tideflow(&args);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let written = std::fs::read_to_string(&dead).unwrap();
    let letters: Vec<serde_json::Value> = written
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(letters.len(), 4, "{written}");
    for (letter, line) in letters.iter().zip([2usize, 3, 4, 5]) {
        let original = &lines[line - 1];
        assert_eq!(letter["line"], line, "{letter}");
        let kept = match (letter.get("raw"), letter.get("raw_base64")) {
            (Some(raw), None) => raw.as_str().unwrap().as_bytes().to_vec(),
            (None, Some(encoded)) => base64::engine::general_purpose::STANDARD
                .decode(encoded.as_str().unwrap())
                .unwrap(),
            _ => panic!("raw or raw_base64, not both: {letter}"),
        };
        let cut = original.len() > 40;
        assert_eq!(kept, original[..original.len().min(40)], "{letter}");
        let truncated = letter.get("truncated").and_then(serde_json::Value::as_bool);
        assert_eq!(truncated, cut.then_some(true), "{letter}");
        let length = letter.get("length").and_then(serde_json::Value::as_u64);
        assert_eq!(length, cut.then_some(original.len() as u64), "{letter}");
    }
    assert!(letters[0].get("raw").is_none() && letters[1].get("raw_base64").is_none());
    assert!(letters[2].get("raw").is_some() && letters[3].get("raw_base64").is_some());
    // The whole line of the invalid UTF-8 record, byte for byte.
    let first = written.lines().next().unwrap();
    let expected = format!(
        "{{\"path\":{},\"line\":2,\"reason\":{},\"raw_base64\":\"eyJ0cyI6MTUwMCwiayI6Iv/+In0=\"}}",
        serde_json::Value::from(input.as_str()),
        letters[0]["reason"]
    );
    assert_eq!(first, expected);
}

/// `sh -c` running tideflow with `args` after `redirect` (e.g. `>&-`).
fn through_shell(redirect: &str, args: &[&str]) -> std::process::Output {
    let script = format!("exec \"$0\" \"$@\" {redirect}");
    Command::new("sh")
        .arg("-c")
        .arg(script)
        .arg(env!("CARGO_BIN_EXE_tideflow"))
        .args(args)
        .current_dir(support::ROOT)
        .output()
        .expect("sh runs")
}

/// Checks a failure about standard output: exit 3, one line, no panic.
fn stdout_failure(out: &std::process::Output, reason: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert_eq!(
        stderr.trim_end(),
        format!("tideflow: writing to standard output: {reason}"),
    );
}

/// `run` (rows on standard output), `explain` and `demo` on `input`.
fn commands_writing_stdout(input: &str) -> [Vec<&str>; 3] {
    let run = support::run_args(input, &["--on-error", "skip"]);
    let mut explain = run.clone();
    explain[0] = "explain";
    let demo = vec!["demo", "--duration", "100ms", "--rate", "100"];
    [run, explain, demo]
}

#[test]
fn a_closed_stdout_fails_every_command_that_writes_there() {
    let dir = tempfile::tempdir().unwrap();
    let input = support::write(dir.path(), "in.jsonl", INPUT);
    let commands = commands_writing_stdout(&input);
    for args in &commands {
        let out = through_shell(">&-", args);
        stdout_failure(&out, "Bad file descriptor (os error 9)");
    }
    // Rows to a file need no standard output; /dev/null is a valid one.
    let out = dir.path().join("out.jsonl");
    let mut to_file = commands[0].clone();
    to_file.extend(["--output", out.to_str().unwrap()]);
    assert!(through_shell(">&-", &to_file).status.success());
    assert_eq!(std::fs::read_to_string(&out).unwrap().lines().count(), 3);
    assert!(through_shell(">/dev/null", &commands[0]).status.success());
    // Opened read-write, as Python's subprocess.DEVNULL and supervisors do, it is valid too.
    assert!(through_shell("1<>/dev/null", &commands[0]).status.success());
}

#[test]
fn a_stdout_pipe_without_reader_fails_without_panic() {
    let dir = tempfile::tempdir().unwrap();
    let input = support::write(dir.path(), "in.jsonl", INPUT);
    for args in commands_writing_stdout(&input) {
        // A socket whose other end is closed before the process starts: EPIPE on each write.
        let (ours, theirs) = UnixStream::pair().unwrap();
        drop(ours);
        let out = Command::new(env!("CARGO_BIN_EXE_tideflow"))
            .args(args)
            .current_dir(support::ROOT)
            .stdout(Stdio::from(OwnedFd::from(theirs)))
            .output()
            .unwrap();
        stdout_failure(&out, "Broken pipe (os error 32)");
    }
}

#[test]
fn a_stdout_pipe_closed_after_one_line_fails_without_panic() {
    let dir = tempfile::tempdir().unwrap();
    // 40,000 one-record windows: about 2.5 MB of rows, far more than a pipe holds, so the
    // process is still writing when the reader goes (`tideflow run ... | head -1`).
    let mut contents = String::new();
    for i in 0..40_000u64 {
        contents.push_str(&format!("{{\"ts\":{},\"k\":\"k{}\"}}\n", i * 10_000, i % 7));
    }
    let input = support::write(dir.path(), "in.jsonl", &contents);
    let mut child = ChildGuard::spawn(&support::run_args(&input, &[]), Stdio::null());
    let mut rows = BufReader::new(child.0.stdout.take().unwrap());
    let mut first = String::new();
    rows.read_line(&mut first).unwrap();
    assert!(
        first.starts_with("{\"key\":\"k0\",\"window_start\":0,"),
        "{first}"
    );
    drop(rows);
    let (code, _, stderr) = child.finish();
    assert_eq!(code, Some(3), "{stderr}");
    assert_eq!(
        stderr.trim_end(),
        "tideflow: writing to standard output: Broken pipe (os error 32)"
    );
}
