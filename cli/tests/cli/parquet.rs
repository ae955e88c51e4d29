//! `--output-format parquet`: the files read by pyarrow hold the JSON lines output's rows with
//! typed columns; a job killed at seeded random moments commits the rows of an uninterrupted
//! run exactly once, and a reader that follows the commit log never sees a partial or
//! uncommitted file; the flags' mistakes are one line.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::crash::harness::{describe, path_arg, Proc};
use crate::crash::{crash_seed, rate, SEED_VAR};
use crate::lake::{self, assert_same_rows, json_rows};
use crate::support::{fails, SplitMix64};

/// JSON lines with a string key `k`, an integer `n`, a number or null `x` and a string `s`.
fn input(dir: &Path) -> PathBuf {
    let mut rng = SplitMix64(17);
    let mut text = String::new();
    for i in 0..3000u64 {
        let ts = i * 20 + rng.below(15);
        let k = ["a", "b", "c", "d"][rng.below(4) as usize];
        let x = match rng.below(4) {
            0 => "null".to_string(),
            1 => format!("{}", rng.below(100)),
            _ => format!("{}.25", rng.below(100)),
        };
        let s = format!("s{}", rng.below(7));
        text.push_str(&format!(
            "{{\"ts\":{ts},\"k\":\"{k}\",\"n\":{},\"x\":{x},\"s\":\"{s}\"}}\n",
            rng.below(1000)
        ));
    }
    let path = dir.join("in.jsonl");
    std::fs::write(&path, text).expect("write the input");
    path
}

/// The query over `input`, then `extra`.
fn query(input: &Path, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = [
        "run",
        "--input",
        &path_arg(input),
        "--time-field",
        "ts",
        "--key-field",
        "k",
        "--watermark-delay",
        "100ms",
        "--agg",
        "count",
        "--agg",
        "sum:n",
        "--agg",
        "sum:x",
        "--agg",
        "avg:x",
        "--agg",
        "max:n",
        "--agg",
        "first:s",
        "--agg",
        "count_distinct:s",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

#[test]
fn parquet_files_hold_the_json_lines_rows_in_typed_columns() {
    let dir = tempfile::tempdir().unwrap();
    let input = input(dir.path());
    let typed = [
        "--column-type",
        "sum_n=int64",
        "--column-type",
        "max_n=int64",
    ];
    let timestamp = "timestamp[ms, tz=UTC]";
    for (mode, window, flags) in [
        ("append", "tumbling:1s", vec![]),
        ("update", "sliding:2s,1s", vec!["final", "retract"]),
    ] {
        let json = dir.path().join(format!("{mode}.jsonl"));
        let parquet = dir.path().join(mode);
        let job = ["--window", window, "--mode", mode];
        let mut args = query(&input, &job);
        args.extend(["--output".into(), path_arg(&json)]);
        lake::run_ok(&args);
        let mut args = query(&input, &job);
        args.extend(typed.iter().map(|s| s.to_string()));
        args.extend(["--output".into(), path_arg(&parquet)]);
        args.extend(
            [
                "--output-format",
                "parquet",
                "--parquet-compression",
                "zstd",
            ]
            .map(String::from),
        );
        args.extend(["--parquet-row-group-rows", "7"].map(String::from));
        lake::run_ok(&args);

        let table = lake::read("parquet", &parquet);
        let mut want: Vec<(String, String, bool)> = [
            ("key", "string", true),
            ("window_start", timestamp, false),
            ("window_end", timestamp, false),
            ("count", "int64", false),
            ("sum_n", "int64", true),
            ("sum_x", "double", true),
            ("avg_x", "double", true),
            ("max_n", "int64", true),
            ("first_s", "string", true),
            ("count_distinct_s", "int64", false),
        ]
        .iter()
        .map(|(n, t, null)| (n.to_string(), t.to_string(), *null))
        .collect();
        for flag in &flags {
            want.push((flag.to_string(), "bool".into(), false));
        }
        assert_eq!(table.schema, want, "{mode}: the schema");
        let json = json_rows(&json);
        assert!(json.len() > 100, "{mode}: {} rows", json.len());
        assert_same_rows(&json, &table, mode);
        // Nothing is left beside the committed files.
        let staging: Vec<_> = std::fs::read_dir(parquet.join("_tideflow_staging"))
            .unwrap()
            .collect();
        assert!(staging.is_empty(), "{mode}: staged files left: {staging:?}");
    }
}

#[test]
fn parquet_flag_mistakes_are_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let input = input(dir.path());
    let out = path_arg(&dir.path().join("out"));
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["--window", "tumbling:1s", "--output-format", "parquet"],
            "--output-format: parquet writes into a directory",
        ),
        (
            vec![
                "--window", "tumbling:1s", "--mode", "complete", "--output", &out,
                "--output-format", "parquet",
            ],
            "--mode: a parquet --output takes append or update mode",
        ),
        (
            vec!["--window", "tumbling:1s", "--output", &out, "--column-type", "sum_n=int64"],
            "--column-type: only with --output-format parquet",
        ),
        (
            vec![
                "--window", "tumbling:1s", "--output", &out, "--output-format", "parquet",
                "--column-type", "avg_x=int64",
            ],
            "--column-type: avg_x is not a column whose type can be declared; this job's are: key, sum_n, sum_x, max_n, first_s",
        ),
        (
            vec![
                "--window", "tumbling:1s", "--output", &out, "--output-format", "parquet",
                "--column-type", "sum_x=int64",
            ],
            "column sum_x is int64 but a row's value is",
        ),
    ];
    for (extra, message) in cases {
        let args = query(&input, &extra);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let line = fails(&args, 2);
        assert!(line.contains(message), "{extra:?}: {line}");
    }
}

/// The files a commit log entry lists, with their sizes.
fn logged_files(entry: &str) -> Vec<(String, u64)> {
    let entry: serde_json::Value = serde_json::from_str(entry).expect("a log entry");
    let files = entry["files"].as_array().expect("files");
    files
        .iter()
        .map(|file| {
            let name = file["name"].as_str().unwrap().to_string();
            (name, file["bytes"].as_u64().unwrap())
        })
        .collect()
}

/// Sorted rows, as JSON text.
pub(crate) fn sorted(table: &lake::Table) -> Vec<String> {
    let mut rows: Vec<String> = table
        .rows
        .iter()
        .map(|row| serde_json::to_string(row).unwrap())
        .collect();
    rows.sort();
    rows
}

/// The crash tests' job on `count` records of the rate input, writing Parquet on 2 workers.
pub(crate) fn crash_query(count: u64) -> Vec<String> {
    [
        "run",
        "--input",
        &rate(50, count, 7, 20),
        "--time-field",
        "ts",
        "--key-field",
        "key",
        "--agg",
        "count",
        "--agg",
        "sum:value",
        "--watermark-delay",
        "50ms",
        "--window",
        "tumbling:100ms",
        "--output-format",
        "parquet",
        "--column-type",
        "sum_value=int64",
        "--workers",
        "2",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// `query` writing into `dir/NAME`, with snapshots in `dir/ck` every 200 ms if `checkpoint`.
fn with_output(query: &[String], dir: &Path, name: &str, checkpoint: bool) -> Vec<String> {
    let mut args = query.to_vec();
    args.extend(["--output".into(), path_arg(&dir.join(name))]);
    if checkpoint {
        args.extend([
            "--checkpoint-dir".into(),
            path_arg(&dir.join("ck")),
            "--snapshot-interval".into(),
            "200ms".into(),
        ]);
    }
    args
}

/// Asserts the rows committed in `out` are those of the uninterrupted run in `reference`
/// (compared sorted), and that every visible file is committed and nothing is staged.
fn assert_committed_as(reference: &Path, out: &Path) {
    let want = lake::read("parquet", reference);
    let got = lake::read("parquet", out);
    assert_eq!(got.schema, want.schema);
    let (want, got) = (sorted(&want), sorted(&got));
    assert_eq!(got.len(), want.len(), "rows committed vs uninterrupted");
    assert!(
        got == want,
        "the committed rows differ from the uninterrupted run's"
    );
    let logged: BTreeSet<String> = tideflow::sink::parquet::committed_files(out)
        .unwrap()
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    let visible: BTreeSet<String> = std::fs::read_dir(out)
        .unwrap()
        .map(|item| item.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".parquet"))
        .collect();
    assert_eq!(visible, logged, "visible files that are not committed");
    let staged = std::fs::read_dir(out.join("_tideflow_staging"))
        .unwrap()
        .count();
    assert_eq!(staged, 0, "staged files left");
}

#[test]
fn parquet_crash_recovery_commits_the_uninterrupted_rows_exactly_once() {
    let seed = crash_seed();
    eprintln!("crash seed {seed} (replay with {SEED_VAR}={seed})");
    let mut rng = SplitMix64(seed ^ 0x9a4c);
    let dir = tempfile::tempdir().unwrap();
    let query = crash_query(100_000);
    let reference = Proc::start(&with_output(&query, dir.path(), "ref", false), None);
    let out = dir.path().join("out");
    let args = with_output(&query, dir.path(), "out", true);
    eprintln!("{}", describe(&args, None));
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = lake::watch(out.clone(), "_tideflow_log", logged_files, stop.clone());
    lake::kill_and_finish(&args, &dir.path().join("ck"), &mut rng, 1300);
    stop.store(true, Ordering::SeqCst);
    let seen = watcher.join().expect("the log watcher");
    reference.finish().succeeded();
    assert!(!seen.is_empty(), "the log watcher saw no commit");
    assert_committed_as(&dir.path().join("ref"), &out);
}

#[test]
fn parquet_fault_points_recover_to_the_uninterrupted_rows() {
    let base = tempfile::tempdir().unwrap();
    let query = crash_query(20_000);
    Proc::start(&with_output(&query, base.path(), "ref", false), None)
        .finish()
        .succeeded();
    // A crash before the manifest, after it, and between the files' rename and the log entry;
    // then a crash in the middle of the recovery's commit of that epoch.
    let cases: [&[&str]; 4] = [
        &["after-parts:2"],
        &["after-manifest:2"],
        &["mid-commit:2"],
        &["after-manifest", "during-recovery"],
    ];
    for faults in cases {
        let dir = base.path().join(faults.join("-").replace(':', "-"));
        std::fs::create_dir(&dir).unwrap();
        let args = with_output(&query, &dir, "out", true);
        for fault in faults {
            eprintln!("{}", describe(&args, Some(fault)));
            Proc::start(&args, Some(fault)).finish().crashed_at_fault();
        }
        let recovered = Proc::start(&args, None).finish().succeeded();
        assert!(recovered.resumed(), "{faults:?}: {}", recovered.stderr);
        assert_committed_as(&base.path().join("ref"), &dir.join("out"));
    }
}
