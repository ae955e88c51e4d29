//! `tideflow explain <run args>`: the plan `run` would build, one operator per line in dataflow
//! order, printed without running anything; a bad flag fails as it does for `run`.

use crate::support::{fails, tideflow, write};

/// The explained plan of `run_args` (the arguments of `run`, without the subcommand): its
/// header and its (operator, description) lines. Expects success, nothing on stderr.
fn explain(run_args: &[&str]) -> (String, Vec<(String, String)>) {
    let mut args = vec!["explain"];
    args.extend_from_slice(run_args);
    let out = tideflow(&args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "args {args:?}: {stderr}");
    assert!(stderr.is_empty(), "args {args:?}: {stderr}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    let mut lines = stdout.lines();
    let header = lines.next().expect("a header line").to_string();
    let plan = lines
        .map(|line| {
            let (operator, text) = line.split_once(' ').expect("operator and description");
            (operator.to_string(), text.trim_start().to_string())
        })
        .collect();
    (header, plan)
}

fn operators(plan: &[(String, String)]) -> Vec<&str> {
    plan.iter().map(|(operator, _)| operator.as_str()).collect()
}

/// The description of the `n`th line whose operator is `operator`.
fn line<'a>(plan: &'a [(String, String)], operator: &str, n: usize) -> &'a str {
    plan.iter()
        .filter(|(op, _)| op == operator)
        .nth(n)
        .map(|(_, text)| text.as_str())
        .unwrap_or_else(|| panic!("no {operator} line #{n} in {plan:?}"))
}

fn assert_contains(text: &str, parts: &[&str]) {
    for part in parts {
        assert!(text.contains(part), "{part:?} not in {text:?}");
    }
}

#[test]
fn explain_rate_tumbling_append_plan() {
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("out.jsonl");
    let output = output.to_str().unwrap();
    let (header, plan) = explain(&[
        "--input",
        "rate:rows_per_sec=1000",
        "--time-field",
        "ts",
        "--key-field",
        "key",
        "--window",
        "tumbling:10s",
        "--agg",
        "count",
        "--agg",
        "sum:value",
        "--watermark-delay",
        "50ms",
        "--workers",
        "2",
        "--output",
        output,
    ]);
    assert_eq!(
        header,
        "tideflow explain: 2 workers, trigger continuous, output mode append"
    );
    assert_eq!(
        operators(&plan),
        [
            "source",
            "exchange",
            "window",
            "late",
            "exchange",
            "sink",
            "snapshots"
        ]
    );
    assert_contains(
        line(&plan, "source", 0),
        &[
            "rate generator rows_per_sec=1000",
            "4 partitions, replayable; partition p on worker p % 2",
            "event time ts, watermark delay 50ms",
        ],
    );
    assert_eq!(
        line(&plan, "exchange", 0),
        "by key_group(key) -> worker key_group % 2"
    );
    assert_contains(
        line(&plan, "window", 0),
        &[
            "tumbling 10s, allowed lateness 0ms",
            "state: one accumulator per (key, open window): count, sum(value)",
        ],
    );
    assert_eq!(
        line(&plan, "late", 0),
        "dropped and counted (no --late-output)"
    );
    assert_eq!(line(&plan, "exchange", 1), "all rows to worker 0");
    assert_contains(
        line(&plan, "sink", 0),
        &[
            &format!("ordered file {output} (JSON lines)"),
            "(window end, key) order",
        ],
    );
    assert_eq!(line(&plan, "snapshots", 0), "none (add --checkpoint-dir)");
    assert!(
        !dir.path().join("out.jsonl").exists(),
        "explain created the output"
    );
}

#[test]
fn explain_static_join_session_update_with_snapshots() {
    let dir = tempfile::tempdir().unwrap();
    let input = write(dir.path(), "events.jsonl", "{\"ts\":1,\"k\":\"a\"}\n");
    let table = write(dir.path(), "customers.csv", "id,credit\na,5\n");
    let late = dir.path().join("late.jsonl");
    let checkpoint = dir.path().join("ck");
    let output = dir.path().join("out.jsonl");
    let (late, checkpoint, output) = (
        late.to_str().unwrap(),
        checkpoint.to_str().unwrap(),
        output.to_str().unwrap(),
    );
    let (header, plan) = explain(&[
        "--input",
        &input,
        "--time-field",
        "ts",
        "--key-field",
        "k",
        "--join-static",
        &table,
        "--join-key",
        "id",
        "--join-type",
        "left",
        "--window",
        "session:4s",
        "--agg",
        "count",
        "--agg",
        "sum:table.credit",
        "--mode",
        "update",
        "--allowed-lateness",
        "2s",
        "--late-output",
        late,
        "--checkpoint-dir",
        checkpoint,
        "--snapshot-interval",
        "500ms",
        "--keep-snapshots",
        "3",
        "--output",
        output,
        "--workers",
        "4",
    ]);
    assert_eq!(
        header,
        "tideflow explain: 4 workers, trigger continuous, output mode update"
    );
    assert_eq!(
        operators(&plan),
        [
            "source",
            "table",
            "exchange",
            "arrange",
            "exchange",
            "join",
            "exchange",
            "window",
            "late",
            "exchange",
            "sink",
            "exchange",
            "sink",
            "snapshots"
        ]
    );
    assert_contains(
        line(&plan, "source", 0),
        &[
            &format!("file {input} (JSON lines; one partition, on worker 0, replayable)"),
            "a bad record stops the run",
        ],
    );
    assert_contains(
        line(&plan, "table", 0),
        &[
            &format!("static file {table} (CSV with a header row"),
            "join key id, columns credit",
        ],
    );
    assert_eq!(
        line(&plan, "exchange", 0),
        "table rows by key_group(id) -> worker key_group % 4"
    );
    assert_contains(line(&plan, "arrange", 0), &["state: the table's rows"]);
    assert_eq!(
        line(&plan, "exchange", 1),
        "records by key_group(k as text) -> worker key_group % 4"
    );
    assert_contains(
        line(&plan, "join", 0),
        &[
            "left static join",
            "once with null table columns",
            "k = id compared as text",
        ],
    );
    assert_eq!(
        line(&plan, "exchange", 2),
        "by key_group(k) -> worker key_group % 4"
    );
    assert_contains(
        line(&plan, "window", 0),
        &[
            "session gap 4s, allowed lateness 2s",
            "records applied in stamp order",
            "retractions of rows whose session grew or merged",
            "state: each key's open sessions",
            "the row last shown per open session",
            "count, sum(table.credit)",
        ],
    );
    assert_contains(line(&plan, "late", 0), &["side output"]);
    assert_eq!(line(&plan, "exchange", 3), "late records to worker 0");
    assert_contains(line(&plan, "sink", 0), &[&format!("late file {late}")]);
    assert_eq!(line(&plan, "exchange", 4), "all rows to worker 0");
    assert_contains(
        line(&plan, "sink", 1),
        &[
            &format!("file {output} (JSON lines), update rows as they arrive"),
            "\"retract\": true",
        ],
    );
    assert_contains(
        line(&plan, "snapshots", 0),
        &[
            &format!("every 500ms into {checkpoint}, keeping the newest 3"),
            "same worker count only",
            "the table is read again on resume",
            &format!("{output} and {late} exactly-once"),
        ],
    );
    for path in [late, checkpoint, output] {
        assert!(
            !std::path::Path::new(path).exists(),
            "explain created {path}"
        );
    }
}

#[test]
fn explain_running_aggregate_complete_mode() {
    let dir = tempfile::tempdir().unwrap();
    let input = write(dir.path(), "events.csv", "ts,k,v\n1,a,2\n");
    let output = dir.path().join("table.csv");
    let output = output.to_str().unwrap();
    let (header, plan) = explain(&[
        "--input",
        &input,
        "--time-field",
        "ts",
        "--key-field",
        "k",
        "--agg",
        "avg:v",
        "--agg",
        "count_distinct:u",
        "--mode",
        "complete",
        "--complete-interval",
        "250ms",
        "--trigger",
        "interval:100ms",
        "--output",
        output,
    ]);
    assert_eq!(
        header,
        "tideflow explain: 1 worker, trigger interval:100ms, output mode complete"
    );
    assert_eq!(
        operators(&plan),
        [
            "source",
            "exchange",
            "aggregate",
            "filter",
            "exchange",
            "sink",
            "snapshots"
        ]
    );
    assert_contains(
        line(&plan, "source", 0),
        &[
            "(CSV with a header row;",
            "the watermark advances once every 100ms",
        ],
    );
    assert_eq!(
        line(&plan, "exchange", 0),
        "by key_group(k) -> worker 0 (1 worker)"
    );
    assert_contains(
        line(&plan, "aggregate", 0),
        &[
            "no --window",
            "state: one accumulator + last result per key: avg(v) (sum and count), count_distinct(u) (every distinct value)",
        ],
    );
    assert_contains(
        line(&plan, "sink", 0),
        &[
            "complete-mode table on worker 0, key -> aggregates",
            "every 250ms",
            &format!("replacing file {output} (CSV)"),
        ],
    );
    assert!(!std::path::Path::new(output).exists());
}

#[test]
fn explain_sliding_windows_by_mode() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "a.jsonl", "");
    write(dir.path(), "b.jsonl", "");
    let input = dir.path().to_str().unwrap();
    let dead = dir.path().join("dead.jsonl");
    let dead = format!("dead-letter:{}", dead.to_str().unwrap());
    let args = |mode: &'static str| {
        vec![
            "--input",
            input,
            "--format",
            "jsonl",
            "--time-field",
            "ts",
            "--window",
            "sliding:10s,4s",
            "--agg",
            "sum:v",
            "--mode",
            mode,
            "--workers",
            "2",
            "--on-error",
            dead.as_str(),
            "--idle-timeout",
            "3s",
            "--heartbeat",
            "1s",
        ]
    };
    let (_, append) = explain(&args("append"));
    assert_contains(
        line(&append, "source", 0),
        &[
            "directory",
            "2 files now",
            "each visible file one partition, a file longer than 8388608 bytes one per chunk",
            "partition n on worker n % 2",
            "idle timeout 3s, heartbeat 1s",
            "bad records written to",
        ],
    );
    assert_contains(
        line(&append, "exchange", 0),
        &["key_group(null)", "no --key-field"],
    );
    assert_contains(
        line(&append, "window", 0),
        &[
            "sliding 10s every 4s",
            "contribution (normally one per pane of 2s)",
            "running accumulator",
        ],
    );
    let (_, update) = explain(&args("update"));
    assert_contains(
        line(&update, "window", 0),
        &[
            "each record added to each of its windows (up to 3)",
            "early rows",
            "one accumulator per (key, open window) with a dirty flag",
        ],
    );
    assert_contains(
        line(&update, "sink", 0),
        &["standard output (JSON lines), update rows as they arrive"],
    );
    assert!(!dir.path().join("dead.jsonl").exists());
}

#[test]
fn explain_live_inputs_runs_nothing() {
    // A port where nothing listens: explain does not connect.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let address = format!("tcp://127.0.0.1:{port}");
    let window = ["--window", "tumbling:1s", "--agg", "count"];
    let mut args = vec![
        "--input",
        &address,
        "--format",
        "csv",
        "--time-field",
        "ts",
        "--key-field",
        "k",
    ];
    args.extend_from_slice(&window);
    let (_, plan) = explain(&args);
    assert_contains(
        line(&plan, "source", 0),
        &[
            &format!("{address} (CSV with a header row)"),
            "worker 0 only",
            "not replayable",
        ],
    );
    let mut args = vec!["--input", "-", "--format", "jsonl", "--time-field", "ts"];
    args.extend_from_slice(&window);
    let (_, plan) = explain(&args);
    assert_contains(
        line(&plan, "source", 0),
        &["standard input (JSON lines)", "until end of file"],
    );
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().to_str().unwrap();
    let mut args = vec![
        "--input",
        input,
        "--format",
        "jsonl",
        "--watch",
        "2s",
        "--time-field",
        "ts",
        "--trigger",
        "available-now",
    ];
    args.extend_from_slice(&window);
    let (header, plan) = explain(&args);
    assert!(header.contains("trigger available-now"), "{header}");
    assert_contains(
        line(&plan, "source", 0),
        &[
            "watched directory",
            "0 files now",
            "re-listed every 2s",
            "ends at its first poll with no input ready",
        ],
    );
}

#[test]
fn explain_reports_flag_errors_as_run_does() {
    let dir = tempfile::tempdir().unwrap();
    let input = write(dir.path(), "events.jsonl", "{\"ts\":1}\n");
    let cases: Vec<Vec<&str>> = vec![
        // clap's own error
        vec![
            "--input",
            &input,
            "--time-field",
            "ts",
            "--window",
            "hop:1s",
            "--agg",
            "count",
        ],
        // Plan::new: append mode needs a window
        vec!["--input", &input, "--time-field", "ts", "--agg", "count"],
        // Plan::new: a tcp input cannot be replayed
        vec![
            "--input",
            "tcp://127.0.0.1:9",
            "--format",
            "jsonl",
            "--time-field",
            "ts",
            "--window",
            "tumbling:1s",
            "--agg",
            "count",
            "--checkpoint-dir",
            "ck",
        ],
        // Plan::new: the rate input's fields
        vec![
            "--input",
            "rate:rows_per_sec=10,count=5",
            "--time-field",
            "t",
            "--window",
            "tumbling:1s",
            "--agg",
            "count",
        ],
    ];
    for case in cases {
        let mut run = vec!["run"];
        run.extend_from_slice(&case);
        let mut explain = vec!["explain"];
        explain.extend_from_slice(&case);
        assert_eq!(fails(&explain, 2), fails(&run, 2), "args {case:?}");
    }
}

#[test]
fn explain_cluster_and_progress_open_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let progress = dir.path().join("progress.jsonl");
    let progress = progress.to_str().unwrap();
    // A port already taken: `run` could not bind it, explain does not try.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let metrics = taken.local_addr().unwrap().to_string();
    let (header, plan) = explain(&[
        "--input",
        "rate:rows_per_sec=10",
        "--time-field",
        "ts",
        "--key-field",
        "key",
        "--window",
        "tumbling:1s",
        "--agg",
        "count",
        "--workers",
        "2",
        "--processes",
        "2",
        "--process-id",
        "1",
        "--hosts",
        "127.0.0.1:1,127.0.0.1:2",
        "--cluster-secret",
        "s3cret",
        "--progress",
        progress,
        "--metrics-addr",
        &metrics,
        "--progress-interval",
        "2s",
    ]);
    assert_eq!(
        header,
        "tideflow explain: 2 processes x 2 workers = 4 workers, trigger continuous, output mode append"
    );
    assert_contains(line(&plan, "source", 0), &["partition p on worker p % 4"]);
    assert_eq!(
        line(&plan, "exchange", 0),
        "by key_group(key) -> worker key_group % 4"
    );
    assert_contains(
        line(&plan, "cluster", 0),
        &["process 1 of 2", "worker w runs in process w / 2"],
    );
    assert_eq!(
        line(&plan, "progress", 0),
        format!("every 2s: a JSON line to {progress}; Prometheus text at http://{metrics}/metrics")
    );
    assert!(
        !std::path::Path::new(progress).exists(),
        "explain created the progress file"
    );
}

#[test]
fn run_and_explain_check_the_progress_flags_alike_and_open_nothing_before_every_flag_is_checked() {
    let dir = tempfile::tempdir().unwrap();
    let input = write(dir.path(), "events.jsonl", "{\"ts\":1}\n");
    let progress = dir.path().join("progress.jsonl");
    let progress = progress.to_str().unwrap();
    let query = |input: &str, time: &str, extra: &[&str]| -> Vec<String> {
        let mut args = vec![
            "--input",
            input,
            "--time-field",
            time,
            "--window",
            "tumbling:1s",
        ];
        args.extend_from_slice(&["--agg", "count"]);
        args.extend_from_slice(extra);
        args.into_iter().map(str::to_string).collect()
    };
    let cases = [
        (
            query(&input, "ts", &["--metrics-addr", "nonsense"]),
            "--metrics-addr",
        ),
        (
            query(
                &input,
                "ts",
                &["--progress", progress, "--progress-interval", "0ms"],
            ),
            "--progress-interval",
        ),
        (
            query(&input, "ts", &["--progress-interval", "1s"]),
            "--progress-interval",
        ),
        // A flag checked after the progress flags: the progress file is not created.
        (
            query(
                "rate:rows_per_sec=10,count=5",
                "t",
                &["--progress", progress],
            ),
            "--time-field",
        ),
    ];
    for (case, flag) in cases {
        let case: Vec<&str> = case.iter().map(String::as_str).collect();
        let run = fails(&[&["run"], case.as_slice()].concat(), 2);
        assert!(run.starts_with(&format!("tideflow: {flag}: ")), "{run}");
        assert_eq!(fails(&[&["explain"], case.as_slice()].concat(), 2), run);
        assert!(
            !std::path::Path::new(progress).exists(),
            "args {case:?}: the progress file was created"
        );
    }
    // With --ui, --progress-interval sets how often the dashboard is updated.
    let watched = query(&input, "ts", &["--progress-interval", "1s", "--ui", "0"]);
    let watched: Vec<&str> = watched.iter().map(String::as_str).collect();
    explain(&watched);
}

/// A file longer than `--split-size` is shown cut into chunks, each a partition on worker
/// `n % workers`; with `--split-size 0`, one partition.
#[test]
fn explain_shows_a_large_file_cut_into_chunks() {
    let dir = tempfile::tempdir().unwrap();
    let body: String = (0..100).map(|n| format!("{n},k{n}\n")).collect();
    let input = crate::support::write(dir.path(), "in.csv", &format!("ts,k\n{body}"));
    let args = |split: &'static str| {
        let query = [
            "--window",
            "tumbling:1s",
            "--agg",
            "count",
            "--workers",
            "3",
        ];
        let mut args = crate::support::query_args(&input, &query);
        args.extend(["--split-size", split]);
        // Without query_args' leading "run".
        args.into_iter()
            .skip(1)
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    let run = |split| {
        let owned = args(split);
        let borrowed: Vec<&str> = owned.iter().map(String::as_str).collect();
        explain(&borrowed).1
    };
    let cut = run("300");
    assert_contains(
        line(&cut, "source", 0),
        &[
            "cut at line starts into about 3 chunks of 300 bytes, each a partition",
            "a CSV file with a '\"' is read whole",
            "partition n on worker n % 3",
        ],
    );
    let whole = run("0");
    assert_contains(line(&whole, "source", 0), &["one partition, on worker 0"]);
}
