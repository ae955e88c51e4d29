//! `--output delta:PATH`: the deltalake package reads the table's rows and types as the JSON
//! lines output has them; a job killed at seeded random moments leaves the table (at its
//! latest version) with the rows of an uninterrupted run, none twice, and every file a
//! version adds is whole when the version appears; a table of another schema and update
//! mode are refused with one line.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::crash::harness::{describe, path_arg, Proc};
use crate::crash::{crash_seed, SEED_VAR};
use crate::lake::{self, assert_same_rows, json_rows};
use crate::parquet::{crash_query, sorted};
use crate::support::{fails, SplitMix64};

/// The rate query of the crash tests, with `extra` (its output).
fn query(count: u64, extra: &[String]) -> Vec<String> {
    crash_query(count)
        .into_iter()
        .chain(extra.iter().cloned())
        .collect()
}

/// The same query writing JSON lines to `path`: without the Parquet flags.
fn json_query(count: u64, path: &Path, extra: &[String]) -> Vec<String> {
    let mut args = Vec::new();
    let mut query = crash_query(count).into_iter();
    while let Some(arg) = query.next() {
        if arg == "--output-format" || arg == "--column-type" {
            query.next();
            continue;
        }
        args.push(arg);
    }
    args.extend(extra.iter().cloned());
    args.extend(["--output".into(), path_arg(path)]);
    args
}

fn delta(path: &Path) -> String {
    format!("delta:{}", path_arg(path))
}

#[test]
fn a_delta_table_holds_the_json_lines_rows_and_complete_mode_overwrites_it() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("rows.jsonl");
    let table = dir.path().join("lake/table");
    lake::run_ok(&json_query(20_000, &json, &[]));
    lake::run_ok(&query(20_000, &["--output".into(), delta(&table)]));
    let read = lake::read("delta", &table);
    let timestamp = "timestamp[us, tz=UTC]";
    let want: Vec<(String, String, bool)> = [
        ("key", "string", true),
        ("window_start", timestamp, false),
        ("window_end", timestamp, false),
        ("count", "int64", false),
        ("sum_value", "int64", true),
    ]
    .iter()
    .map(|(n, t, null)| (n.to_string(), t.to_string(), *null))
    .collect();
    assert_eq!(read.schema, want);
    // The table's files are read in any order: compare sorted by window and key.
    let mut rows = read.rows.clone();
    rows.sort_by_key(|row| {
        (
            row["window_end"].as_i64(),
            row["key"].as_str().map(String::from),
        )
    });
    let sorted_read = lake::Table {
        schema: read.schema.clone(),
        rows,
    };
    assert_same_rows(&json_rows(&json), &sorted_read, "append");

    // Complete mode: the table holds the last table written, as the JSON lines file does.
    let complete = ["--mode".to_string(), "complete".to_string()];
    let json = dir.path().join("complete.jsonl");
    lake::run_ok(&json_query(20_000, &json, &complete));
    let table = dir.path().join("complete");
    let mut args = query(20_000, &complete);
    args.extend(["--output".into(), delta(&table)]);
    lake::run_ok(&args);
    lake::run_ok(&args);
    let read = lake::read("delta", &table);
    let strip = |rows: Vec<serde_json::Map<String, serde_json::Value>>| {
        let mut rows: Vec<String> = rows
            .into_iter()
            .map(|mut row| {
                row.remove("batch");
                serde_json::to_string(&row).unwrap()
            })
            .collect();
        rows.sort();
        rows
    };
    let want = strip(json_rows(&json));
    assert!(!want.is_empty());
    assert_eq!(strip(read.rows), want, "the table after two complete runs");
}

#[test]
fn a_delta_table_of_another_schema_and_update_mode_are_refused_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let table = dir.path().join("t");
    lake::run_ok(&query(2_000, &["--output".into(), delta(&table)]));
    let mut other = query(2_000, &["--output".into(), delta(&table)]);
    let at = other.iter().position(|a| a == "sum_value=int64").unwrap();
    other[at] = "sum_value=float64".into();
    let args: Vec<&str> = other.iter().map(String::as_str).collect();
    let line = fails(&args, 2);
    assert!(
        line.contains("column sum_value is long in the table but double in the job's rows"),
        "{line}"
    );
    let mut update = query(2_000, &["--output".into(), delta(&table)]);
    update.extend(["--mode".into(), "update".into()]);
    let args: Vec<&str> = update.iter().map(String::as_str).collect();
    let line = fails(&args, 2);
    assert!(
        line.contains("--mode: a delta: --output takes append or complete mode"),
        "{line}"
    );
}

/// The files a Delta commit adds, with their sizes.
fn added_files(commit: &str) -> Vec<(String, u64)> {
    commit
        .lines()
        .filter_map(|line| {
            let action: serde_json::Value = serde_json::from_str(line).expect("an action");
            let add = action.get("add")?;
            Some((add["path"].as_str()?.to_string(), add["size"].as_u64()?))
        })
        .collect()
}

/// Asserts the table at `table` holds the rows of the uninterrupted run's table `reference`.
fn assert_table_as(reference: &Path, table: &Path) {
    let want = lake::read("delta", reference);
    let got = lake::read("delta", table);
    assert_eq!(got.schema, want.schema);
    let (want, got) = (sorted(&want), sorted(&got));
    assert_eq!(got.len(), want.len(), "rows in the table vs uninterrupted");
    assert!(
        got == want,
        "the table's rows differ from the uninterrupted run's"
    );
}

#[test]
fn delta_crash_recovery_commits_each_epoch_once() {
    let seed = crash_seed();
    eprintln!("crash seed {seed} (replay with {SEED_VAR}={seed})");
    let mut rng = SplitMix64(seed ^ 0xde17a);
    let dir = tempfile::tempdir().unwrap();
    let reference = dir.path().join("ref");
    let refrun = Proc::start(
        &query(100_000, &["--output".into(), delta(&reference)]),
        None,
    );
    let table = dir.path().join("out");
    let ck = dir.path().join("ck");
    let args = query(
        100_000,
        &[
            "--output".into(),
            delta(&table),
            "--checkpoint-dir".into(),
            path_arg(&ck),
            "--snapshot-interval".into(),
            "200ms".into(),
        ],
    );
    eprintln!("{}", describe(&args, None));
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = lake::watch(table.clone(), "_delta_log", added_files, stop.clone());
    lake::kill_and_finish(&args, &ck, &mut rng, 1300);
    stop.store(true, Ordering::SeqCst);
    let seen = watcher.join().expect("the table watcher");
    refrun.finish().succeeded();
    assert!(!seen.is_empty(), "the watcher saw no version add a file");
    assert_table_as(&reference, &table);
}

#[test]
fn delta_fault_points_recover_to_the_uninterrupted_table() {
    let base = tempfile::tempdir().unwrap();
    let reference = base.path().join("ref");
    lake::run_ok(&query(20_000, &["--output".into(), delta(&reference)]));
    let cases: [&[&str]; 3] = [
        &["after-manifest:2"],
        &["mid-commit:2"],
        &["after-manifest", "during-recovery"],
    ];
    for faults in cases {
        let dir = base.path().join(faults.join("-").replace(':', "-"));
        let args = query(
            20_000,
            &[
                "--output".into(),
                delta(&dir.join("table")),
                "--checkpoint-dir".into(),
                path_arg(&dir.join("ck")),
                "--snapshot-interval".into(),
                "200ms".into(),
            ],
        );
        for fault in faults {
            eprintln!("{}", describe(&args, Some(fault)));
            Proc::start(&args, Some(fault)).finish().crashed_at_fault();
        }
        let recovered = Proc::start(&args, None).finish().succeeded();
        assert!(recovered.resumed(), "{faults:?}: {}", recovered.stderr);
        assert_table_as(&reference, &dir.join("table"));
    }
}
