//! `tideflow run --trigger`: every trigger writes the same rows; available-now and once stop
//! after the input there is at start, even on a watched directory; live inputs refuse them.

use std::process::Stdio;

use crate::support::{fails, run_args, tideflow, write, ChildGuard};

/// Records over a minute, somewhat out of order, in two files of one directory.
fn write_input(dir: &std::path::Path) -> String {
    let input = dir.join("input");
    std::fs::create_dir(&input).unwrap();
    for (file, offset) in [("a.jsonl", 0u64), ("b.jsonl", 450)] {
        let lines: String = (0..80u64)
            .map(|i| {
                let ts = 1_000 + offset + i * 700 - (i % 4) * 300;
                format!("{{\"ts\":{ts},\"k\":\"k{}\"}}\n", i % 3)
            })
            .collect();
        write(&input, file, &lines);
    }
    input.to_string_lossy().into_owned()
}

/// `tideflow run` on the JSON lines directory `input`, then `extra`.
fn args<'a>(input: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    run_args(input, &[&["--format", "jsonl"], extra].concat())
}

#[test]
fn every_trigger_writes_the_same_rows() {
    let dir = tempfile::tempdir().unwrap();
    let input = write_input(dir.path());
    for workers in ["1", "2"] {
        let continuous = tideflow(&args(&input, &["--workers", workers]));
        assert!(continuous.status.success());
        assert!(continuous.stdout.len() > 100);
        for trigger in ["interval:5ms", "available-now", "once"] {
            let out = tideflow(&args(&input, &["--workers", workers, "--trigger", trigger]));
            assert!(
                out.status.success(),
                "{trigger}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert_eq!(
                out.stdout, continuous.stdout,
                "trigger {trigger}, {workers} workers"
            );
        }
    }
}

/// A watched directory never ends on its own; available-now and once read the files there at
/// start and stop.
#[test]
fn available_now_and_once_stop_a_watched_directory() {
    let dir = tempfile::tempdir().unwrap();
    let input = write_input(dir.path());
    let expected = tideflow(&args(&input, &[]));
    for trigger in ["available-now", "once"] {
        // Bounded: a source that kept watching would make `finish` fail the test.
        let mut child = ChildGuard::spawn(
            &args(&input, &["--watch", "50ms", "--trigger", trigger]),
            Stdio::null(),
        );
        let (code, stdout, stderr) = child.finish();
        assert_eq!(code, Some(0), "{trigger}: {stderr}");
        assert_eq!(stdout.as_bytes(), expected.stdout, "{trigger}");
    }
}

#[test]
fn trigger_flags_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let input = write(dir.path(), "in.jsonl", "{\"ts\":1,\"k\":\"a\"}\n");
    for (trigger, expected) in [
        ("interval:0ms", "--trigger"),
        ("interval:soon", "--trigger"),
        (
            "hourly",
            "expected continuous, interval:DUR, available-now or once",
        ),
    ] {
        let line = fails(&run_args(&input, &["--trigger", trigger]), 2);
        assert!(line.contains(expected), "{trigger}: {line}");
    }
    let line = fails(
        &run_args("-", &["--format", "jsonl", "--trigger", "once"]),
        2,
    );
    assert!(line.contains("--trigger: available-now and once"), "{line}");
}
