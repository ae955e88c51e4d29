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
    // Help, once.
    let out = tideflow(&["cluster", "--local", "2", "--", "run", "--help"]);
    assert_eq!(out.status.code(), Some(0));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(stdout.matches("Usage: tideflow run").count(), 1, "{stdout}");
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

#[test]
fn watch_is_refused_on_a_file_and_below_ten_milliseconds() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let input = write(dir.path(), "in.jsonl", "{\"ts\":1,\"k\":\"a\"}\n");
    let line = fails(&run_args(&input, &["--watch", "1s"]), 2);
    assert!(line.contains("--watch") && line.contains(&input), "{line}");
    let dir_input = dir.path().to_string_lossy().into_owned();
    for (interval, shown) in [("0s", "0ms"), ("5ms", "5ms")] {
        let line = fails(&run_args(&dir_input, &["--watch", interval]), 2);
        assert!(
            line.contains(&format!("--watch: {shown} is too short")),
            "{line}"
        );
    }
}

#[test]
fn entries_of_an_input_directory_that_are_not_files_are_named_once_and_links_followed() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let input = dir.path().join("input");
    std::fs::create_dir(&input).expect("an input directory");
    write(&input, "a.jsonl", "{\"ts\":1,\"k\":\"a\"}\n");
    let outside = write(dir.path(), "outside.jsonl", "{\"ts\":2,\"k\":\"a\"}\n");
    std::os::unix::fs::symlink(&outside, input.join("b.jsonl")).expect("a link to a file");
    std::os::unix::fs::symlink(dir.path().join("gone"), input.join("c.jsonl"))
        .expect("a dangling link");
    std::fs::create_dir(input.join("d.jsonl")).expect("a subdirectory");
    let fifo = input.join("e.jsonl");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo runs");
    assert!(made.success());
    let input = input.to_string_lossy().into_owned();
    let out = tideflow(&run_args(&input, &["--workers", "2"]));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    // The linked file is read: both records are counted.
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("\"count\":2"), "{stdout}");
    for (name, what) in [
        ("c.jsonl", "a dangling symbolic link"),
        ("d.jsonl", "a directory"),
        ("e.jsonl", "a FIFO"),
    ] {
        let warning = format!("tideflow: warning: skipping {input}/{name}: {what}, not a file");
        assert_eq!(stderr.matches(&warning).count(), 1, "{warning}: {stderr}");
    }
    assert_eq!(stderr.matches("warning").count(), 3, "{stderr}");
}

#[test]
fn a_directory_takes_its_format_from_its_files_when_they_agree() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let input = dir.path().join("input");
    std::fs::create_dir(&input).expect("an input directory");
    write(&input, "a.jsonl", "{\"ts\":1,\"k\":\"a\"}\n");
    write(&input, "b.ndjson", "{\"ts\":2,\"k\":\"a\"}\n");
    let shown = input.to_string_lossy().into_owned();
    let out = tideflow(&run_args(&shown, &[]));
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("\"count\":2"));
    // Two formats: both files named.
    let csv = write(&input, "c.csv", "ts,k\n3,a\n");
    let line = fails(&run_args(&shown, &[]), 2);
    assert!(
        line.contains("--format") && line.contains("a.jsonl") && line.contains(&csv),
        "{line}"
    );
    // --format settles it.
    let out = tideflow(&run_args(
        &shown,
        &["--format", "jsonl", "--on-error", "skip"],
    ));
    assert_eq!(out.status.code(), Some(0));
    std::fs::remove_file(&csv).expect("remove the CSV file");
    // A file whose name says nothing.
    let notes = write(&input, "notes.txt", "");
    let line = fails(&run_args(&shown, &[]), 2);
    assert!(line.contains("--format") && line.contains(&notes), "{line}");
    std::fs::remove_file(&notes).expect("remove the notes");
    for file in ["a.jsonl", "b.ndjson"] {
        std::fs::remove_file(input.join(file)).expect("remove an input file");
    }
    let line = fails(&run_args(&shown, &[]), 2);
    assert!(line.contains("has no files"), "{line}");
}

#[test]
fn a_byte_order_mark_opening_a_json_lines_file_is_skipped() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("bom.jsonl");
    std::fs::write(
        &path,
        b"\xEF\xBB\xBF{\"ts\":1,\"k\":\"a\"}\n{\"ts\":2,\"k\":\"a\"}\n",
    )
    .expect("write the input");
    let input = path.to_string_lossy().into_owned();
    let out = tideflow(&run_args(&input, &[]));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "{\"key\":\"a\",\"window_start\":0,\"window_end\":10000,\"count\":2}\n"
    );
    // A mark anywhere else is still a bad record.
    std::fs::write(
        &path,
        b"{\"ts\":1,\"k\":\"a\"}\n\xEF\xBB\xBF{\"ts\":2,\"k\":\"a\"}\n",
    )
    .expect("write the input");
    let line = fails(&run_args(&input, &[]), 2);
    assert!(line.contains("bom.jsonl:2:"), "{line}");
}
