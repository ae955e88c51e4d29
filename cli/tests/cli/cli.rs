//! The command line as a user meets it: errors are one line naming the flag, file or line, with
//! a non-zero exit and no panic; late records are counted at exit; output is ordered; the demo
//! runs.

use crate::support::{fails, run_args, tideflow, write};

#[test]
fn bad_records_name_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "malformed.jsonl",
            "{\"ts\":1,\"k\":\"a\"}\n{\"ts\":2,\"k\":\n",
            ":2:",
        ),
        (
            "missing_time.jsonl",
            "{\"ts\":1,\"k\":\"a\"}\n\n{\"k\":\"b\"}\n",
            ":3: missing time field 'ts'",
        ),
        (
            "bad_time.jsonl",
            "{\"ts\":\"noon\",\"k\":\"a\"}\n",
            ":1: time field 'ts'",
        ),
        (
            "negative_time.jsonl",
            "{\"ts\":-5,\"k\":\"a\"}\n",
            ":1: time field 'ts' is negative",
        ),
        ("not_object.jsonl", "[1,2]\n", ":1:"),
        (
            "bad_time.csv",
            "ts,k\n100,a\nyesterday,b\n",
            ":3: time field 'ts'",
        ),
        (
            "no_column.csv",
            "time,k\n100,a\n",
            ":1: no column 'ts' (--time-field)",
        ),
    ];
    for (name, contents, expected) in cases {
        let path = write(dir.path(), name, contents);
        for workers in ["1", "2"] {
            let line = fails(&run_args(&path, &["--workers", workers]), 2);
            assert!(
                line.contains(name) && line.contains(expected),
                "{name}: {line}"
            );
        }
    }
    let path = write(dir.path(), "utf8.jsonl", "");
    std::fs::write(&path, b"{\"ts\":1,\"k\":\"\xff\"}\n").unwrap();
    let line = fails(&run_args(&path, &[]), 2);
    assert!(line.contains("utf8.jsonl:1: invalid UTF-8"), "{line}");
    let path = write(
        dir.path(),
        "sum.jsonl",
        "{\"ts\":1,\"k\":\"a\",\"v\":\"ten\"}\n",
    );
    let line = fails(&run_args(&path, &["--agg", "sum:v"]), 2);
    assert!(
        line.contains("sum.jsonl:1: field 'v' must be a number"),
        "{line}"
    );
}

#[test]
fn bad_flags_name_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let input = write(dir.path(), "ok.jsonl", "{\"ts\":1,\"k\":\"a\"}\n");
    let run = ["run", "--input", input.as_str(), "--time-field", "ts"];
    let window = ["--window", "tumbling:1s"];
    let count = ["--agg", "count"];
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            [&run[..], &["--window", "hopping:1s"], &count].concat(),
            "--window",
        ),
        (
            [&run[..], &["--window", "sliding:1s,2s"], &count].concat(),
            "--window",
        ),
        (
            [&run[..], &window, &["--agg", "median:x"]].concat(),
            "--agg",
        ),
        ([&run[..], &window, &["--agg", "sum"]].concat(), "--agg"),
        ([&run[..], &window].concat(), "--agg"),
        ([&run[..], &window, &count, &count].concat(), "--agg"),
        (
            [
                &run[..],
                &window,
                &count,
                &["--watermark-delay", "5 minutes"],
            ]
            .concat(),
            "--watermark-delay",
        ),
        (
            [&run[..], &window, &count, &["--workers", "0"]].concat(),
            "--workers",
        ),
        ([&run[..3], &window, &count].concat(), "--time-field"),
        (
            [
                &["run", "--input", "data.txt", "--time-field", "ts"][..],
                &window,
                &count,
            ]
            .concat(),
            "--format",
        ),
        (vec!["run", "--bogus"], "--bogus"),
    ];
    for (args, flag) in cases {
        let line = fails(&args, 2);
        assert!(line.contains(flag), "{args:?}: {line}");
    }
    let line = fails(&run_args("no/such/file.jsonl", &[]), 2);
    assert!(line.contains("no/such/file.jsonl does not exist"), "{line}");
}

#[test]
fn late_records_are_dropped_and_counted_at_exit() {
    let dir = tempfile::tempdir().unwrap();
    // 3_000 arrives after 25_000 with a 2 s delay: its window [0, 10s) has closed.
    let input = write(
        dir.path(),
        "late.jsonl",
        "{\"ts\":1000,\"k\":\"a\"}\n{\"ts\":25000,\"k\":\"a\"}\n{\"ts\":3000,\"k\":\"a\"}\n{\"ts\":24000,\"k\":\"a\"}\n",
    );
    let out = tideflow(&run_args(&input, &["--watermark-delay", "2s"]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        stdout,
        "{\"key\":\"a\",\"window_start\":0,\"window_end\":10000,\"count\":1}\n\
         {\"key\":\"a\",\"window_start\":20000,\"window_end\":30000,\"count\":2}\n"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("4 records read") && stderr.contains("1 late records dropped"),
        "{stderr}"
    );
}

#[test]
fn output_file_is_ordered_and_identical_across_worker_counts() {
    let dir = tempfile::tempdir().unwrap();
    let mut lines = String::new();
    for i in 0..2_000u64 {
        lines.push_str(&format!(
            "{{\"ts\":{},\"k\":\"k{}\",\"v\":{}}}\n",
            i * 37 % 50_000,
            i % 7,
            i
        ));
    }
    let input = write(dir.path(), "in.jsonl", &lines);
    let mut outputs = Vec::new();
    for workers in ["1", "2", "4"] {
        let output = dir.path().join(format!("out{workers}.csv"));
        let output = output.to_string_lossy().into_owned();
        let args = run_args(
            &input,
            &[
                "--agg",
                "sum:v",
                "--watermark-delay",
                "60s",
                "--workers",
                workers,
                "--output",
                &output,
            ],
        );
        let out = tideflow(&args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        outputs.push(std::fs::read_to_string(&output).unwrap());
    }
    assert!(
        outputs[0].starts_with("key,window_start,window_end,count,sum_v\nk0,0,10000,"),
        "{}",
        &outputs[0][..80]
    );
    assert_eq!(outputs[0].lines().count(), 1 + 5 * 7);
    assert_eq!(outputs[0], outputs[1]);
    assert_eq!(outputs[0], outputs[2]);
}

#[test]
fn a_directory_is_read_file_by_file() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "a.jsonl",
        "{\"ts\":1000,\"k\":\"x\"}\n{\"ts\":12000,\"k\":\"x\"}\n",
    );
    write(dir.path(), "b.jsonl", "{\"ts\":2000,\"k\":\"x\"}\n");
    write(dir.path(), ".hidden", "not json\n");
    let input = dir.path().to_string_lossy().into_owned();
    let out = tideflow(&run_args(&input, &["--format", "jsonl", "--workers", "2"]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "{\"key\":\"x\",\"window_start\":0,\"window_end\":10000,\"count\":2}\n\
         {\"key\":\"x\",\"window_start\":10000,\"window_end\":20000,\"count\":1}\n"
    );
}

#[test]
fn demo_runs_and_reports_windows_throughput_and_latency() {
    let out = tideflow(&[
        "demo",
        "--duration",
        "2500ms",
        "--rate",
        "20000",
        "--keys",
        "3",
        "--workers",
        "2",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("{\"key\":") && l.contains("\"count\":")),
        "{stdout}"
    );
    assert!(
        stdout.contains("events/s | window-close latency p50"),
        "{stdout}"
    );
    assert!(stdout.contains("done: 50000 events"), "{stdout}");
}

#[test]
fn allowed_lateness_keeps_windows_open_and_late_output_gets_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    // After 25_000 with a 2 s delay the watermark is 23_000: 3_000 is 13 s past [0, 10s).
    let input = write(
        dir.path(),
        "late.jsonl",
        "{\"ts\":1000,\"k\":\"a\",\"v\":1}\n{\"ts\":25000,\"k\":\"a\",\"v\":2}\n{\"ts\":3000,\"k\":\"a\",\"v\":4}\n",
    );
    let delay = ["--watermark-delay", "2s", "--agg", "sum:v"];
    let out = tideflow(&run_args(
        &input,
        &[&delay[..], &["--allowed-lateness", "15s"]].concat(),
    ));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "{\"key\":\"a\",\"window_start\":0,\"window_end\":10000,\"count\":2,\"sum_v\":5}\n\
         {\"key\":\"a\",\"window_start\":20000,\"window_end\":30000,\"count\":1,\"sum_v\":2}\n"
    );

    let late_path = dir.path().join("late-out.jsonl");
    let late_path = late_path.to_string_lossy().into_owned();
    let args = [
        &delay[..],
        &["--allowed-lateness", "5s", "--late-output", &late_path],
    ]
    .concat();
    let out = tideflow(&run_args(&input, &args));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("0 late records dropped, 1 written to the late output"),
        "{stderr}"
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "{\"key\":\"a\",\"window_start\":0,\"window_end\":10000,\"count\":1,\"sum_v\":1}\n\
         {\"key\":\"a\",\"window_start\":20000,\"window_end\":30000,\"count\":1,\"sum_v\":2}\n"
    );
    let late: serde_json::Value =
        serde_json::from_str(std::fs::read_to_string(&late_path).unwrap().trim()).unwrap();
    assert_eq!(late["key"], "a");
    assert_eq!(
        (
            late["event_time"].as_u64(),
            late["watermark"].as_u64(),
            late["window_end"].as_u64()
        ),
        (Some(3_000), Some(23_000), Some(10_000))
    );
    assert_eq!(late["record"]["v"], 4);
    assert!(
        late["reason"]
            .as_str()
            .unwrap()
            .contains("allowed lateness 5000ms"),
        "{late}"
    );
}

#[test]
fn first_last_and_count_distinct_read_strings_and_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let input = write(
        dir.path(),
        "pages.jsonl",
        "{\"ts\":3000,\"k\":\"a\",\"page\":\"/b\"}\n{\"ts\":1000,\"k\":\"a\",\"page\":\"/a\"}\n\
         {\"ts\":2000,\"k\":\"a\",\"page\":null}\n{\"ts\":4000,\"k\":\"a\",\"page\":\"/a\"}\n\
         {\"ts\":5000,\"k\":\"a\",\"page\":7}\n",
    );
    let aggs = [
        "--agg",
        "first:page",
        "--agg",
        "last:page",
        "--agg",
        "count_distinct:page",
        "--watermark-delay",
        "10s",
    ];
    let out = tideflow(&run_args(&input, &aggs));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "{\"key\":\"a\",\"window_start\":0,\"window_end\":10000,\"count\":5,\"first_page\":\"/a\",\"last_page\":7,\"count_distinct_page\":3}\n"
    );
}

#[test]
fn invertible_and_merged_sliding_windows_agree() {
    let dir = tempfile::tempdir().unwrap();
    let mut lines = String::new();
    let mut state = 17u64;
    for i in 0..3_000u64 {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let jitter = (state >> 33) % 400;
        let value = if state.is_multiple_of(11) {
            "null".to_string()
        } else {
            format!("{}", (state >> 40) % 200)
        };
        lines.push_str(&format!(
            "{{\"ts\":{},\"k\":\"k{}\",\"v\":{value}}}\n",
            (i * 13).saturating_sub(jitter),
            (state >> 20) % 5
        ));
    }
    let input = write(dir.path(), "values.jsonl", &lines);
    let sliding = [
        "run",
        "--input",
        &input,
        "--time-field",
        "ts",
        "--key-field",
        "k",
        "--window",
        "sliding:2s,100ms",
        "--watermark-delay",
        "300ms",
        "--agg",
        "count",
        "--agg",
        "sum:v",
        "--agg",
        "avg:v",
    ];
    let invertible = tideflow(&sliding);
    let merged = tideflow(&[&sliding[..], &["--agg", "min:v"]].concat());
    assert!(invertible.status.success() && merged.status.success());
    let rows = |out: &std::process::Output| -> Vec<serde_json::Value> {
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let (a, b) = (rows(&invertible), rows(&merged));
    assert!(a.len() > 500, "only {} rows", a.len());
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(&b) {
        for field in ["key", "window_start", "window_end", "count", "sum_v"] {
            assert_eq!(x[field], y[field], "{field}: {x} vs {y}");
        }
        match (x["avg_v"].as_f64(), y["avg_v"].as_f64()) {
            (Some(p), Some(q)) => assert!((p - q).abs() <= 1e-9 * p.abs().max(1.0), "{x} vs {y}"),
            (p, q) => assert_eq!(p, q, "{x} vs {y}"),
        }
    }
}
