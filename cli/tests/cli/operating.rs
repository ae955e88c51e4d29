//! Operating the command line (issue 13, items 13 to 15): `--watch` and input directories
//! (watching a file, too short an interval, entries that are not files, formats from the
//! files' extensions, a byte-order mark), the worker limit, and `tideflow cluster` and help
//! texts.

use crate::support::{fails, run_args, tideflow, write};

/// `tideflow COMMAND --help`, as text.
fn help(command: &str) -> String {
    let out = tideflow(&[command, "--help"]);
    assert_eq!(out.status.code(), Some(0));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn more_workers_than_key_groups_are_refused() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let input = write(dir.path(), "in.jsonl", "{\"ts\":1,\"k\":\"a\"}\n");
    let line = fails(&run_args(&input, &["--workers", "1024"]), 2);
    assert!(
        line.contains("--workers: 1024 workers is more than the 256 key groups"),
        "{line}"
    );
    // Over all processes of a cluster: refused before connecting to anyone.
    let line = fails(
        &run_args(
            &input,
            &[
                "--workers",
                "200",
                "--processes",
                "2",
                "--process-id",
                "0",
                "--hosts",
                "127.0.0.1:1,127.0.0.1:2",
                "--cluster-secret",
                "s",
            ],
        ),
        2,
    );
    assert!(
        line.contains("--workers: 200 workers in each of 2 processes (400 in all)"),
        "{line}"
    );
    // 256 are accepted.
    let out = tideflow(&run_args(&input, &["--workers", "256"]));
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("\"count\":1"));
}

#[test]
fn cluster_takes_the_word_run_and_reports_a_bad_flag_once() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let input = write(
        dir.path(),
        "in.jsonl",
        "{\"ts\":1,\"k\":\"a\"}\n{\"ts\":2,\"k\":\"b\"}\n{\"ts\":3,\"k\":\"a\"}\n",
    );
    let mut args = vec!["cluster", "--local", "2", "--", "run"];
    args.extend_from_slice(&run_args(&input, &[])[1..]);
    let out = tideflow(&args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("\"key\":\"a\",\"window_start\":0,\"window_end\":10000,\"count\":2"),
        "{stdout}"
    );
    // A bad flag: one line, from the launcher, before any process starts.
    let line = fails(
        &[
            "cluster", "--local", "2", "--", "run", "--input", &input, "--bogus",
        ],
        2,
    );
    assert!(line.contains("--bogus"), "{line}");
}

#[test]
fn help_lists_every_aggregate_and_the_rate_input() {
    let run = help("run");
    let explain = help("explain");
    for text in [&run, &explain] {
        for expected in [
            "first:F",
            "last:F",
            "count_distinct:F",
            "rate:rows_per_sec=N",
        ] {
            assert!(text.contains(expected), "{expected} missing from: {text}");
        }
    }
}
