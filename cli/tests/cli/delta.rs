//! `--output delta:PATH`: the deltalake package reads the table's rows and types as the JSON
//! lines output has them; a job killed at seeded random moments leaves the table (at its
//! latest version) with the rows of an uninterrupted run, none twice, and every file a
//! version adds is whole when the version appears; a table of another schema and update
//! mode are refused with one line.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::crash::harness::{describe, path_arg, Proc};
use crate::crash::{crash_seed, SEED_VAR};
use crate::lake::{self, assert_same_rows, json_rows};
use crate::parquet::{crash_query, sorted};
use crate::support::{fails, tideflow, SplitMix64};

fn run(args: &[String]) {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = tideflow(&args);
    assert!(
        out.status.success(),
        "tideflow {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

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
    run(&json_query(20_000, &json, &[]));
    run(&query(20_000, &["--output".into(), delta(&table)]));
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
    run(&json_query(20_000, &json, &complete));
    let table = dir.path().join("complete");
    let mut args = query(20_000, &complete);
    args.extend(["--output".into(), delta(&table)]);
    run(&args);
    run(&args);
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
    run(&query(2_000, &["--output".into(), delta(&table)]));
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

/// Watches the Delta log of `table` while runs go on: every file a version adds is there
/// whole (its size, Parquet's magic at both ends) and stays.
fn watch_table(table: PathBuf, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<BTreeSet<String>> {
    std::thread::spawn(move || {
        let mut seen = BTreeSet::new();
        loop {
            let done = stop.load(Ordering::SeqCst);
            let log = table.join("_delta_log");
            let versions: Vec<PathBuf> = std::fs::read_dir(&log)
                .map(|listing| listing.map(|item| item.unwrap().path()).collect())
                .unwrap_or_default();
            for version in versions.iter().filter(|p| {
                let name = p.file_name().unwrap().to_string_lossy();
                name.ends_with(".json") && !name.starts_with('.')
            }) {
                let text = std::fs::read_to_string(version).unwrap();
                for line in text.lines() {
                    let action: serde_json::Value = serde_json::from_str(line).expect("an action");
                    let Some(add) = action.get("add") else {
                        continue;
                    };
                    let name = add["path"].as_str().unwrap().to_string();
                    let bytes = std::fs::read(table.join(&name)).unwrap_or_else(|e| {
                        panic!(
                            "{name}, added by {}, cannot be read: {e}",
                            version.display()
                        )
                    });
                    assert_eq!(bytes.len() as u64, add["size"].as_u64().unwrap(), "{name}");
                    assert!(
                        bytes.starts_with(b"PAR1") && bytes.ends_with(b"PAR1"),
                        "{name}"
                    );
                    seen.insert(name);
                }
            }
            if done {
                return seen;
            }
            std::thread::sleep(Duration::from_millis(3));
        }
    })
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
    let watcher = watch_table(table.clone(), stop.clone());
    let mut runs = Vec::new();
    for kill in 0..5 {
        let delay = Duration::from_millis(100 + rng.below(1101));
        let mut process = Proc::start(&args, None);
        if kill == 0 {
            process.wait_for_snapshots(&ck, 1);
        }
        let (ran, killed) = process.kill_after(delay);
        if !killed {
            eprintln!("run {} completed after {kill} kills", runs.len() + 1);
            runs.push(ran.succeeded());
            break;
        }
        eprintln!("run {}: SIGKILL after {delay:?}", runs.len() + 1);
        runs.push(ran.no_panic());
    }
    runs.push(Proc::start(&args, None).finish().succeeded());
    stop.store(true, Ordering::SeqCst);
    let seen = watcher.join().expect("the table watcher");
    refrun.finish().succeeded();
    assert!(!seen.is_empty(), "the watcher saw no version add a file");
    assert!(
        runs.iter().any(|run| run.resumed()),
        "no run resumed from a snapshot"
    );
    assert_table_as(&reference, &table);
}

#[test]
fn delta_fault_points_recover_to_the_uninterrupted_table() {
    let base = tempfile::tempdir().unwrap();
    let reference = base.path().join("ref");
    run(&query(20_000, &["--output".into(), delta(&reference)]));
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
