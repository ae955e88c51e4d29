//! `--input` of Parquet files (written by pyarrow, and by a job's Parquet output): each file a
//! partition with its own watermark, so the results are those of the same rows as JSON lines
//! files; a job killed at seeded random moments resumes each file at its row and writes the
//! output of an uninterrupted run.

use std::path::{Path, PathBuf};

use crate::crash::harness::{compare, describe, path_arg};
use crate::crash::{crash_seed, SEED_VAR};
use crate::lake;
use crate::support::SplitMix64;

/// Writes `files` JSON lines files of `rows` rows each into `dir/json` and the same rows as
/// Parquet files (pyarrow, row groups of `group` rows) into `dir/parquet`. File `i` starts
/// `i` seconds later, so each file's watermark matters. Fields: `ts`, a string key `k`, an
/// integer `n`, a fractional number or null `x`, a string `s`.
fn inputs(dir: &Path, files: u64, rows: u64, group: usize) -> (PathBuf, PathBuf) {
    let (json, parquet) = (dir.join("json"), dir.join("parquet"));
    std::fs::create_dir_all(&json).unwrap();
    std::fs::create_dir_all(&parquet).unwrap();
    let mut rng = SplitMix64(29);
    for file in 0..files {
        let mut text = String::new();
        for i in 0..rows {
            let ts = file * 1000 + i * 7 + rng.below(40);
            let k = ["a", "b", "c"][rng.below(3) as usize];
            let x = match rng.below(3) {
                0 => "null".to_string(),
                _ => format!("{}.5", rng.below(50)),
            };
            text.push_str(&format!(
                "{{\"ts\":{ts},\"k\":\"{k}\",\"n\":{},\"x\":{x},\"s\":\"s{}\"}}\n",
                rng.below(1000),
                rng.below(5)
            ));
        }
        let name = format!("part-{file}");
        let source = json.join(format!("{name}.jsonl"));
        std::fs::write(&source, text).unwrap();
        lake::write_parquet(&source, &parquet.join(format!("{name}.parquet")), group);
    }
    (json, parquet)
}

/// The query over `input` writing JSON lines to `output`, then `extra`.
fn query(input: &Path, output: &Path, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = [
        "run",
        "--input",
        &path_arg(input),
        "--time-field",
        "ts",
        "--key-field",
        "k",
        "--watermark-delay",
        "30ms",
        "--window",
        "tumbling:500ms",
        "--agg",
        "count",
        "--agg",
        "sum:n",
        "--agg",
        "sum:x",
        "--agg",
        "avg:x",
        "--agg",
        "min:x",
        "--agg",
        "first:s",
        "--agg",
        "count_distinct:s",
        "--output",
        &path_arg(output),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

#[test]
fn a_parquet_input_gives_the_output_of_the_same_rows_as_json_lines() {
    let dir = tempfile::tempdir().unwrap();
    let (json, parquet) = inputs(dir.path(), 3, 2000, 150);
    for workers in ["1", "2"] {
        let want = dir.path().join(format!("json-{workers}.jsonl"));
        let got = dir.path().join(format!("parquet-{workers}.jsonl"));
        lake::run_ok(&query(&json, &want, &["--workers", workers]));
        // The format from the files' extension; --late-output keeps each row as JSON.
        let late = dir.path().join(format!("late-{workers}.jsonl"));
        let stderr = lake::run_ok(&query(
            &parquet,
            &got,
            &["--workers", workers, "--late-output", &path_arg(&late)],
        ));
        assert!(stderr.contains("6000 records read"), "{stderr}");
        compare(&want, &got, false);
    }

    // A job's Parquet output read by another job: its log and staging folders are skipped.
    let written = dir.path().join("written");
    let mut args = query(&json, &written, &["--output-format", "parquet"]);
    args.extend(["--column-type".into(), "sum_n=int64".into()]);
    lake::run_ok(&args);
    let again = dir.path().join("again.jsonl");
    let args: Vec<String> = [
        "run",
        "--input",
        &path_arg(&written),
        "--time-field",
        "window_start",
        "--window",
        "tumbling:10s",
        "--agg",
        "sum:count",
        "--agg",
        "sum:sum_n",
        "--output",
        &path_arg(&again),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let stderr = lake::run_ok(&args);
    assert!(!stderr.contains("warning"), "{stderr}");
    let totals = std::fs::read_to_string(&again).unwrap();
    let count: u64 = totals
        .lines()
        .map(|line| {
            serde_json::from_str::<serde_json::Value>(line).unwrap()["sum_count"]
                .as_u64()
                .unwrap()
        })
        .sum();
    assert_eq!(count, 6000, "{totals}");
}

#[test]
fn a_parquet_input_resumes_at_its_rows_after_crashes() {
    let seed = crash_seed();
    eprintln!("crash seed {seed} (replay with {SEED_VAR}={seed})");
    let mut rng = SplitMix64(seed ^ 0x7a11);
    let dir = tempfile::tempdir().unwrap();
    let (_, parquet) = inputs(dir.path(), 2, 100_000, 2000);
    let reference = dir.path().join("ref.jsonl");
    lake::run_ok(&query(&parquet, &reference, &["--workers", "2"]));
    let out = dir.path().join("out.jsonl");
    let ck = dir.path().join("ck");
    let args = query(
        &parquet,
        &out,
        &[
            "--workers",
            "2",
            "--checkpoint-dir",
            &path_arg(&ck),
            "--snapshot-interval",
            "50ms",
        ],
    );
    eprintln!("{}", describe(&args, None));
    lake::kill_and_finish(&args, &ck, &mut rng, 400);
    compare(&reference, &out, false);
}
