//! `--late-output` writes each late record whole, as it was read, so that it can be replayed:
//! a JSON line byte for byte (the late line ends with `"record":<the input line>}`), a CSV row
//! as a JSON object of its cells (strings, exactly as read) by header name; for tumbling,
//! sliding and session windows, in append and update mode, whatever the aggregates read
//! (`--agg count` reads no field at all).

use crate::support::{query_args, tideflow, write};

/// The late line of a JSON input: odd spacing, a fraction written `3.50`, an escape, a nested
/// value and a field no aggregate reads, all of which must come back unchanged.
const LATE_JSON: &str =
    r#"{ "ts": 2000, "k":"b",  "v":3.50, "s":"\u00e9\"x", "extra":{"n":[1, 2.0e0]} }"#;

/// The input around it: after 25 000 the watermark (no delay) has passed every window of 2000
/// (tumbling [0, 10s), sliding [-5s, 5s) and [0, 10s), the session [2s, 7s)).
fn json_input() -> String {
    format!(
        "{{\"ts\":1000,\"k\":\"a\",\"v\":1}}\n{{\"ts\":25000,\"k\":\"a\",\"v\":2}}\n{LATE_JSON}\n{{\"ts\":30000,\"k\":\"a\",\"v\":4}}\n"
    )
}

const CSV_INPUT: &str =
    "ts,k,v,note\n1000,a,1,x\n25000,a,2,y\n2000,b, 3.50,\"hello, \"\"world\"\"\"\n30000,a,4,z\n";

/// The late CSV row `2000,b, 3.50,"hello, ""world"""` as documented: its cells by header name.
const LATE_CSV: &str = r#"{"ts":"2000","k":"b","v":" 3.50","note":"hello, \"world\""}"#;

const WINDOWS: [&str; 3] = ["tumbling:10s", "sliding:10s,5s", "session:5s"];

/// Runs the query over `input` with `window`, `mode` and `agg`, and returns the late file.
fn late_lines(input: &str, window: &str, mode: &str, agg: &str, late: &str) -> String {
    let args = query_args(
        input,
        &[
            "--window",
            window,
            "--mode",
            mode,
            "--agg",
            agg,
            "--late-output",
            late,
        ],
    );
    let out = tideflow(&args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{args:?}: {stderr}");
    assert!(
        stderr.contains("0 late records dropped, 1 written to the late output"),
        "{args:?}: {stderr}"
    );
    std::fs::read_to_string(late).expect("the late output")
}

/// Checks that `late` is one JSON line about the record at 2000 whose `record` is `expected`
/// byte for byte.
fn check(late: &str, expected: &str, context: &str) {
    let lines: Vec<&str> = late.lines().collect();
    assert_eq!(lines.len(), 1, "{context}: {late}");
    let line = lines[0];
    assert!(
        line.ends_with(&format!(",\"record\":{expected}}}")),
        "{context}: {line}"
    );
    let parsed: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
    assert_eq!(parsed["key"], "b", "{context}");
    assert_eq!(parsed["event_time"], 2000, "{context}");
    let original: serde_json::Value = serde_json::from_str(expected).unwrap();
    assert_eq!(parsed["record"], original, "{context}");
}

#[test]
fn late_json_records_are_written_as_read() {
    let dir = tempfile::tempdir().unwrap();
    let input = write(dir.path(), "in.jsonl", &json_input());
    let late = dir.path().join("late.jsonl").to_string_lossy().into_owned();
    for window in WINDOWS {
        for (mode, agg) in [
            ("append", "count"),
            ("append", "sum:v"),
            ("update", "count"),
        ] {
            let lines = late_lines(&input, window, mode, agg, &late);
            check(&lines, LATE_JSON, &format!("{window} {mode} {agg}"));
        }
    }
}

#[test]
fn late_csv_rows_are_written_as_objects_of_their_cells() {
    let dir = tempfile::tempdir().unwrap();
    let input = write(dir.path(), "in.csv", CSV_INPUT);
    let late = dir.path().join("late.jsonl").to_string_lossy().into_owned();
    for window in WINDOWS {
        for (mode, agg) in [("append", "count"), ("update", "max:v")] {
            let lines = late_lines(&input, window, mode, agg, &late);
            check(&lines, LATE_CSV, &format!("{window} {mode} {agg}"));
        }
    }
}
