//! `tideflow run --mode append|update|complete`: early rows as the watermark advances on a
//! live input, upserted update rows and complete-mode tables that equal the append output, and
//! the flags' errors.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{ChildStdin, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{fails, query_args, run_args, tideflow, write, ChildGuard, DEADLINE};

/// A run of `tideflow` fed through standard input, its output lines collected as they come.
struct LiveRun {
    child: ChildGuard,
    stdin: Option<ChildStdin>,
    lines: Arc<Mutex<Vec<String>>>,
}

impl LiveRun {
    fn start(args: &[&str]) -> LiveRun {
        let mut child = ChildGuard::spawn(args, Stdio::piped());
        let stdin = child.0.stdin.take();
        let stdout = child.0.stdout.take().expect("stdout is piped");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let collected = Arc::clone(&lines);
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                collected.lock().unwrap().push(line);
            }
        });
        LiveRun {
            child,
            stdin,
            lines,
        }
    }

    fn send(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin is open");
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
    }

    /// Waits (bounded) until an output line satisfies `wanted`.
    fn wait_for(&self, what: &str, wanted: impl Fn(&Value) -> bool) {
        let start = Instant::now();
        loop {
            let lines = self.lines.lock().unwrap().clone();
            if lines
                .iter()
                .any(|line| serde_json::from_str(line).is_ok_and(|row| wanted(&row)))
            {
                return;
            }
            assert!(
                start.elapsed() < DEADLINE,
                "no output row with {what}; output so far: {lines:#?}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Closes standard input, waits for the exit, and returns the output rows.
    fn finish(mut self) -> Vec<Value> {
        drop(self.stdin.take());
        let (code, _, stderr) = self.child.finish();
        assert_eq!(code, Some(0), "{stderr}");
        // The reader thread sees end of file once the process has exited.
        let start = Instant::now();
        while Arc::strong_count(&self.lines) > 1 {
            assert!(start.elapsed() < DEADLINE, "stdout reader did not finish");
            std::thread::sleep(Duration::from_millis(10));
        }
        let lines = self.lines.lock().unwrap();
        lines.iter().map(|line| parse(line)).collect()
    }
}

fn parse(line: &str) -> Value {
    serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
}

fn event(ts: u64) -> String {
    format!("{{\"ts\":{ts},\"k\":\"a\"}}")
}

/// Whether `row` is the row of window `[start, ..)` with `count` and the flag `final`.
fn is_row(row: &Value, start: u64, count: u64, is_final: bool) -> bool {
    row["window_start"] == start && row["count"] == count && row["final"] == is_final
}

/// Update mode on a live input: each time the watermark moves, the window's early row shows
/// every record read so far; then its final row.
#[test]
fn update_mode_emits_early_rows_as_the_watermark_advances() {
    let args = run_args("-", &["--format", "jsonl", "--mode", "update"]);
    let mut run = LiveRun::start(&args);
    for (ts, count) in [(1_000, 1), (2_000, 2), (3_000, 3)] {
        run.send(&event(ts));
        run.wait_for(&format!("count {count}, not final"), |row| {
            is_row(row, 0, count, false)
        });
    }
    run.send(&event(12_000));
    run.wait_for("count 3, final", |row| is_row(row, 0, 3, true));
    let rows = run.finish();
    let summary: Vec<(u64, u64, bool)> = rows
        .iter()
        .map(|row| {
            (
                row["window_start"].as_u64().unwrap(),
                row["count"].as_u64().unwrap(),
                row["final"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (0, 1, false),
            (0, 2, false),
            (0, 3, false),
            (0, 3, true),
            (10_000, 1, false),
            (10_000, 1, true)
        ]
    );
    assert!(rows.iter().all(|row| row.get("retract").is_none()));
}

/// Complete mode on a live input: the whole table is written at each trigger while it
/// changes, numbered, and the last table holds every window, final.
#[test]
fn complete_mode_writes_the_table_at_each_trigger() {
    let args = run_args(
        "-",
        &[
            "--format",
            "jsonl",
            "--mode",
            "complete",
            "--complete-interval",
            "20ms",
        ],
    );
    let mut run = LiveRun::start(&args);
    for (ts, count) in [(1_000, 1), (2_000, 2)] {
        run.send(&event(ts));
        run.wait_for(&format!("a table with count {count}"), |row| {
            is_row(row, 0, count, false)
        });
    }
    run.send(&event(12_000));
    run.wait_for("a table with the first window final", |row| {
        is_row(row, 0, 2, true)
    });
    run.send(&event(13_000));
    let rows = run.finish();
    let mut tables: BTreeMap<u64, Vec<&Value>> = BTreeMap::new();
    for row in &rows {
        tables
            .entry(row["batch"].as_u64().unwrap())
            .or_default()
            .push(row);
    }
    let numbers: Vec<u64> = tables.keys().copied().collect();
    assert!(numbers.len() >= 3, "tables: {tables:#?}");
    assert_eq!(numbers, (0..numbers.len() as u64).collect::<Vec<_>>());
    let last = tables.values().last().unwrap();
    assert_eq!(last.len(), 2, "{last:?}");
    assert!(is_row(last[0], 0, 2, true) && is_row(last[1], 10_000, 2, true));
}

/// Events of three keys over a minute, somewhat out of order; some are late, the last one
/// for sure.
fn events() -> String {
    let mut lines = String::new();
    let mut ts = 5_000u64;
    for i in 0..120u64 {
        ts += 317 + (i * 7919) % 900;
        let time = if i % 5 == 0 { ts - 1_500 } else { ts };
        let key = ["a", "b", "c"][(i % 3) as usize];
        lines.push_str(&format!(
            "{{\"ts\":{time},\"k\":\"{key}\",\"v\":{}}}\n",
            i % 17
        ));
    }
    lines.push_str("{\"ts\":0,\"k\":\"a\",\"v\":1}\n");
    lines
}

/// Upserts update-mode rows on (key, window_start, window_end), deleting retracted ones.
fn upsert(rows: &[Value]) -> BTreeMap<String, Value> {
    let mut table = BTreeMap::new();
    for row in rows {
        let window = format!(
            "{}|{}|{}",
            row["key"], row["window_start"], row["window_end"]
        );
        if row.get("retract") == Some(&Value::Bool(true)) {
            table.remove(&window);
            continue;
        }
        let mut value = row.clone();
        let fields = value.as_object_mut().unwrap();
        fields.remove("final");
        fields.remove("batch");
        table.insert(window, value);
    }
    table
}

/// The late-record count of a run's summary line.
fn late_dropped(stderr: &[u8]) -> u64 {
    let stderr = String::from_utf8_lossy(stderr);
    let before = stderr
        .split(" late records dropped")
        .next()
        .filter(|before| before.len() < stderr.len())
        .unwrap_or_else(|| panic!("no late count in {stderr}"));
    let count = before.rsplit(", ").next().unwrap();
    count
        .parse()
        .unwrap_or_else(|_| panic!("bad late count in {stderr}"))
}

fn json_lines(text: &str) -> Vec<Value> {
    text.lines().map(parse).collect()
}

/// For every window kind and 1 and 2 workers, on a file read in one go and through standard
/// input line by line: update rows upserted, and complete mode's table (an --output file
/// replaced at each trigger), equal the append output; the late record is counted in all
/// three.
#[test]
fn update_and_complete_outputs_equal_append_output() {
    let dir = tempfile::tempdir().unwrap();
    let input = write(dir.path(), "events.jsonl", &events());
    for window in ["tumbling:5s", "sliding:6s,2s", "session:1500ms"] {
        for workers in ["1", "2"] {
            let common = [
                "--window",
                window,
                "--agg",
                "sum:v",
                "--watermark-delay",
                "1s",
                "--workers",
                workers,
            ];
            let context = format!("window {window}, {workers} workers");
            let append = tideflow(&query_args(&input, &common));
            assert!(append.status.success(), "{context}");
            let expected = upsert(&json_lines(&String::from_utf8_lossy(&append.stdout)));
            assert!(expected.len() > 10, "{context}: {expected:?}");
            let late = late_dropped(&append.stderr);
            assert!(late >= 1, "{context}: the record at 0 is late");

            let update = tideflow(&query_args(
                &input,
                &[&common[..], &["--mode", "update"]].concat(),
            ));
            let stderr = String::from_utf8_lossy(&update.stderr);
            assert!(update.status.success(), "{context}: {stderr}");
            assert_eq!(late_dropped(&update.stderr), late, "{context}: {stderr}");
            let rows = json_lines(&String::from_utf8_lossy(&update.stdout));
            assert_eq!(upsert(&rows), expected, "{context}: update");

            let stdin_args = query_args(
                "-",
                &[&common[..], &["--format", "jsonl", "--mode", "update"]].concat(),
            );
            let mut live = LiveRun::start(&stdin_args);
            for line in events().lines() {
                live.send(line);
            }
            let rows = live.finish();
            assert_eq!(upsert(&rows), expected, "{context}: update over stdin");

            let table = dir.path().join("table.jsonl");
            let table_path = table.to_string_lossy().into_owned();
            let complete_args = [
                &common[..],
                &["--mode", "complete", "--output", &table_path],
            ]
            .concat();
            let complete = tideflow(&query_args(&input, &complete_args));
            assert!(complete.status.success(), "{context}");
            assert_eq!(late_dropped(&complete.stderr), late, "{context}");
            let rows = json_lines(&std::fs::read_to_string(&table).unwrap());
            assert!(rows.iter().all(|row| row["final"] == true), "{context}");
            let batches: Vec<&Value> = rows.iter().map(|row| &row["batch"]).collect();
            assert!(
                batches.windows(2).all(|pair| pair[0] == pair[1]),
                "{context}: one table"
            );
            assert_eq!(upsert(&rows), expected, "{context}: complete");
        }
    }
}

/// CSV output in update and complete mode carries the extra columns in its header.
#[test]
fn csv_rows_carry_the_mode_columns() {
    let dir = tempfile::tempdir().unwrap();
    let input = write(
        dir.path(),
        "in.jsonl",
        "{\"ts\":1000,\"k\":\"a\"}\n{\"ts\":1500,\"k\":\"a\"}\n",
    );
    let update = tideflow(&run_args(
        &input,
        &["--mode", "update", "--output-format", "csv"],
    ));
    assert_eq!(
        String::from_utf8_lossy(&update.stdout),
        "key,window_start,window_end,count,final,retract\na,0,10000,2,true,false\n"
    );
    let table = dir.path().join("table.csv");
    let table_path = table.to_string_lossy().into_owned();
    let complete = tideflow(&run_args(
        &input,
        &["--mode", "complete", "--output", &table_path],
    ));
    assert!(complete.status.success());
    assert_eq!(
        std::fs::read_to_string(&table).unwrap(),
        "batch,key,window_start,window_end,count,final\n0,a,0,10000,2,true\n"
    );
}

#[test]
fn mode_flags_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let input = write(dir.path(), "in.jsonl", "{\"ts\":1,\"k\":\"a\"}\n");
    let line = fails(&run_args(&input, &["--complete-interval", "1s"]), 2);
    assert!(
        line.contains("--complete-interval: only with --mode complete"),
        "{line}"
    );
    let line = fails(
        &run_args(
            &input,
            &["--mode", "complete", "--complete-interval", "0ms"],
        ),
        2,
    );
    assert!(
        line.contains("--complete-interval: must be longer than 0ms"),
        "{line}"
    );
    let line = fails(&run_args(&input, &["--mode", "upsert"]), 2);
    assert!(line.contains("--mode"), "{line}");
}

/// Without --window, update mode upserts each key's running aggregates and complete mode
/// writes the whole per-key table; the last row per key equals the aggregate of all its
/// records, for 1 and 2 workers.
#[test]
fn running_aggregates_without_window() {
    let dir = tempfile::tempdir().unwrap();
    let text = events();
    let input = write(dir.path(), "events.jsonl", &text);
    let mut expected: BTreeMap<String, (u64, i64)> = BTreeMap::new();
    for row in json_lines(&text) {
        let entry = expected.entry(row["k"].to_string()).or_default();
        entry.0 += 1;
        entry.1 += row["v"].as_i64().unwrap();
    }
    let aggs = [
        "--agg",
        "count",
        "--agg",
        "sum:v",
        "--watermark-delay",
        "1s",
    ];
    let last_per_key = |rows: &[Value]| -> BTreeMap<String, (u64, i64)> {
        rows.iter()
            .map(|row| {
                let value = (
                    row["count"].as_u64().unwrap(),
                    row["sum_v"].as_i64().unwrap(),
                );
                (row["key"].to_string(), value)
            })
            .collect()
    };
    for workers in ["1", "2"] {
        let update = tideflow(&query_args(
            &input,
            &[&aggs[..], &["--mode", "update", "--workers", workers]].concat(),
        ));
        assert!(
            update.status.success(),
            "{}",
            String::from_utf8_lossy(&update.stderr)
        );
        let rows = json_lines(&String::from_utf8_lossy(&update.stdout));
        assert!(rows.iter().all(|row| row.get("window_start").is_none()));
        assert_eq!(last_per_key(&rows), expected, "update, {workers} workers");

        let table = dir.path().join("totals.jsonl");
        let table_path = table.to_string_lossy().into_owned();
        let complete = tideflow(&query_args(
            &input,
            &[
                &aggs[..],
                &[
                    "--mode",
                    "complete",
                    "--workers",
                    workers,
                    "--output",
                    &table_path,
                ],
            ]
            .concat(),
        ));
        assert!(complete.status.success());
        let rows = json_lines(&std::fs::read_to_string(&table).unwrap());
        assert_eq!(rows.len(), expected.len(), "one row per key: {rows:?}");
        assert_eq!(last_per_key(&rows), expected, "complete, {workers} workers");
    }
}

#[test]
fn running_aggregate_flags_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let input = write(dir.path(), "in.jsonl", "{\"ts\":1,\"k\":\"a\"}\n");
    let count = ["--agg", "count"];
    let line = fails(&query_args(&input, &count), 2);
    assert!(line.contains("--window: required in append mode"), "{line}");
    for (flag, value) in [
        ("--late-output", "late.jsonl"),
        ("--allowed-lateness", "1s"),
    ] {
        let line = fails(
            &query_args(
                &input,
                &[&count[..], &["--mode", "update", flag, value]].concat(),
            ),
            2,
        );
        assert!(
            line.contains(&format!("{flag}: only with --window")),
            "{line}"
        );
    }
}
