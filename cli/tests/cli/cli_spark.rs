//! Golden tests against Apache Spark: `tideflow run` must produce exactly the
//! windows that Spark SQL's `window()` / `session_window()` grouped by key
//! produces on the same input file.
//!
//! The inputs, the case list (`cases.json`) and Spark's outputs live in
//! `tests/fixtures/spark/`; see the README there for how they are regenerated
//! (`scripts/gen_spark_fixtures.py`, `scripts/spark_reference.py`).
//!
//! Every case runs with `--workers 1` and `--workers 2`. Rows are compared
//! after sorting by (window_start, window_end, key rendered as a string):
//! same field names in the same order, integers exactly, floats within 1e-9
//! relative tolerance, nulls as nulls.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const CASES_FILE: &str = "tests/fixtures/spark/cases.json";
const WORKER_COUNTS: [usize; 2] = [1, 2];
const WATERMARK_DELAY: &str = "5s";
const FLOAT_REL_TOL: f64 = 1e-9;
/// A run that takes longer than this is killed and the test fails.
const RUN_TIMEOUT: Duration = Duration::from_secs(120);

/// One entry of `cases.json`.
#[derive(Debug)]
struct Case {
    name: String,
    input: String,
    format: String,
    time_field: String,
    key_field: Option<String>,
    window: String,
    aggs: Vec<String>,
    expected: String,
}

/// One output line: its top-level field names in order, the parsed object,
/// and the raw text (for messages).
#[derive(Debug)]
struct Row {
    fields: Vec<String>,
    value: Value,
    raw: String,
}

fn root() -> PathBuf {
    PathBuf::from(crate::support::ROOT)
}

fn str_field(obj: &Value, field: &str, ctx: &str) -> String {
    obj.get(field)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("{ctx}: missing string field `{field}` in {obj}"))
        .to_string()
}

fn load_cases() -> Vec<Case> {
    let path = root().join(CASES_FILE);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let all: Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("parsing {}: {e}", path.display()));
    let list = all
        .as_array()
        .unwrap_or_else(|| panic!("{} is not a JSON array", path.display()));
    list.iter()
        .map(|c| {
            let ctx = format!("{CASES_FILE} entry {c}");
            let key_field = match c.get("key_field") {
                None | Some(Value::Null) => None,
                Some(Value::String(s)) => Some(s.clone()),
                Some(other) => panic!("{ctx}: key_field must be a string or null, got {other}"),
            };
            let aggs = c
                .get("aggs")
                .and_then(Value::as_array)
                .unwrap_or_else(|| panic!("{ctx}: missing array `aggs`"))
                .iter()
                .map(|a| {
                    a.as_str()
                        .unwrap_or_else(|| panic!("{ctx}: aggs must be strings"))
                        .to_string()
                })
                .collect();
            Case {
                name: str_field(c, "name", &ctx),
                input: str_field(c, "input", &ctx),
                format: str_field(c, "format", &ctx),
                time_field: str_field(c, "time_field", &ctx),
                key_field,
                window: str_field(c, "window", &ctx),
                aggs,
                expected: str_field(c, "expected", &ctx),
            }
        })
        .collect()
}

fn find_case(name: &str) -> Case {
    load_cases()
        .into_iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("case `{name}` not found in {CASES_FILE}"))
}

/// The command-line arguments of `tideflow run` for a case.
fn run_args(case: &Case, workers: usize) -> Vec<String> {
    let mut args: Vec<String> = vec![
        "run".into(),
        "--input".into(),
        case.input.clone(),
        "--format".into(),
        case.format.clone(),
        "--time-field".into(),
        case.time_field.clone(),
    ];
    if let Some(key) = &case.key_field {
        args.push("--key-field".into());
        args.push(key.clone());
    }
    args.push("--window".into());
    args.push(case.window.clone());
    for agg in &case.aggs {
        args.push("--agg".into());
        args.push(agg.clone());
    }
    args.extend([
        "--watermark-delay".to_string(),
        WATERMARK_DELAY.to_string(),
        "--workers".to_string(),
        workers.to_string(),
        "--output".to_string(),
        "-".to_string(),
    ]);
    args
}

/// Runs `tideflow` with `args` in the crate root and returns its stdout;
/// panics (naming `ctx`) on a spawn failure, a timeout or a non-zero exit.
fn run_tideflow(args: &[String], ctx: &str) -> String {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tideflow"))
        .args(args)
        .current_dir(crate::support::ROOT)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{ctx}: cannot start tideflow: {e}"));

    // Drain both pipes on their own threads so a chatty child cannot block.
    let mut out_pipe = child.stdout.take().expect("stdout is piped");
    let mut err_pipe = child.stderr.take().expect("stderr is piped");
    let out_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        out_pipe.read_to_end(&mut buf).map(|_| buf)
    });
    let err_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        err_pipe.read_to_end(&mut buf).map(|_| buf)
    });

    let deadline = Instant::now() + RUN_TIMEOUT;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{ctx}: tideflow did not finish within {RUN_TIMEOUT:?}; args: {args:?}");
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => panic!("{ctx}: waiting for tideflow: {e}"),
        }
    };
    let stdout = out_reader
        .join()
        .expect("stdout reader panicked")
        .unwrap_or_else(|e| panic!("{ctx}: reading stdout: {e}"));
    let stderr = err_reader
        .join()
        .expect("stderr reader panicked")
        .unwrap_or_else(|e| panic!("{ctx}: reading stderr: {e}"));
    let stderr = String::from_utf8_lossy(&stderr);
    assert!(
        status.success(),
        "{ctx}: tideflow exited with {status}\nargs: {args:?}\nstderr:\n{stderr}"
    );
    String::from_utf8(stdout).unwrap_or_else(|e| panic!("{ctx}: stdout is not UTF-8: {e}"))
}

/// The top-level field names of a JSON object, in the order they appear in
/// `text` (serde_json's `Map` does not keep insertion order here). `text`
/// must already be known to be a valid JSON object.
fn top_level_keys(text: &str) -> Vec<String> {
    let bytes = text.as_bytes();
    let mut keys = Vec::new();
    let mut depth = 0usize;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'{' | b'[' => depth += 1,
            b'}' | b']' => depth = depth.saturating_sub(1),
            b'"' => {
                // scan to the closing quote, skipping escaped characters
                let start = i;
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    if bytes[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
                let end = i; // index of the closing quote
                let mut j = end + 1;
                while j < bytes.len() && bytes[j].is_ascii_whitespace() {
                    j += 1;
                }
                if depth == 1 && j < bytes.len() && bytes[j] == b':' {
                    let key: String = serde_json::from_str(&text[start..=end])
                        .unwrap_or_else(|e| panic!("bad key in {text}: {e}"));
                    keys.push(key);
                }
            }
            _ => {}
        }
        i += 1;
    }
    keys
}

/// Parses JSON-lines text (blank lines ignored) into rows; `origin` names
/// the source in panic messages.
fn parse_rows(text: &str, origin: &str) -> Vec<Row> {
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(n, line)| {
            let value: Value = serde_json::from_str(line).unwrap_or_else(|e| {
                panic!("{origin}: line {} is not valid JSON ({e}): {line}", n + 1)
            });
            assert!(
                value.is_object(),
                "{origin}: line {} is not a JSON object: {line}",
                n + 1
            );
            Row {
                fields: top_level_keys(line),
                value,
                raw: line.to_string(),
            }
        })
        .collect()
}

/// The key rendered as a string: a JSON string as itself, anything else
/// (e.g. null) as its JSON text.
fn key_string(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => "<missing>".to_string(),
    }
}

fn sort_key(row: &Row, origin: &str) -> (i64, i64, String) {
    let bound = |field: &str| {
        row.value
            .get(field)
            .and_then(Value::as_i64)
            .unwrap_or_else(|| panic!("{origin}: `{field}` is not an integer in {}", row.raw))
    };
    (
        bound("window_start"),
        bound("window_end"),
        key_string(row.value.get("key")),
    )
}

fn sort_rows(rows: &mut [Row], origin: &str) {
    // compute keys first so a malformed row panics with a clear message
    for row in rows.iter() {
        sort_key(row, origin);
    }
    rows.sort_by_cached_key(|row| sort_key(row, origin));
}

fn floats_close(a: f64, b: f64) -> bool {
    a == b || (a - b).abs() <= FLOAT_REL_TOL * a.abs().max(b.abs())
}

/// Scalar equality under the contract: integers exactly (and the actual value
/// must be an integer too), floats within the relative tolerance (and the
/// actual value must be a float), everything else exactly.
fn values_match(expected: &Value, actual: &Value) -> bool {
    match (expected, actual) {
        (Value::Number(e), Value::Number(a)) => {
            if e.is_f64() {
                a.is_f64() && floats_close(e.as_f64().unwrap(), a.as_f64().unwrap())
            } else {
                !a.is_f64() && e == a
            }
        }
        _ => expected == actual,
    }
}

/// Why `actual` differs from `expected`, or `None` when they match.
fn row_mismatch(expected: &Row, actual: &Row) -> Option<String> {
    if expected.fields != actual.fields {
        return Some(format!(
            "fields differ: expected {:?}, got {:?}",
            expected.fields, actual.fields
        ));
    }
    for field in &expected.fields {
        let e = &expected.value[field.as_str()];
        let a = &actual.value[field.as_str()];
        if !values_match(e, a) {
            return Some(format!("field `{field}`: expected {e}, got {a}"));
        }
    }
    None
}

fn check_case(name: &str) {
    let case = find_case(name);
    let expected_path: PathBuf = root().join(&case.expected);
    let expected_text = std::fs::read_to_string(&expected_path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", expected_path.display()));
    let mut expected = parse_rows(&expected_text, &case.expected);
    sort_rows(&mut expected, &case.expected);
    assert!(
        !expected.is_empty(),
        "{}: expected output is empty",
        case.expected
    );
    assert!(
        Path::new(crate::support::ROOT).join(&case.input).is_file(),
        "case {}: input {} is missing",
        case.name,
        case.input
    );

    for workers in WORKER_COUNTS {
        let ctx = format!("case `{}` with --workers {workers}", case.name);
        let args = run_args(&case, workers);
        let stdout = run_tideflow(&args, &ctx);
        let origin = format!("tideflow stdout ({ctx})");
        let mut actual = parse_rows(&stdout, &origin);
        sort_rows(&mut actual, &origin);

        // first differing row, in sorted order
        for i in 0..expected.len().max(actual.len()) {
            let problem = match (expected.get(i), actual.get(i)) {
                (Some(e), Some(a)) => row_mismatch(e, a),
                (Some(_), None) => Some("tideflow produced too few rows".to_string()),
                (None, Some(_)) => Some("tideflow produced too many rows".to_string()),
                (None, None) => unreachable!(),
            };
            if let Some(problem) = problem {
                let show = |r: Option<&Row>| r.map_or("<none>".to_string(), |r| r.raw.clone());
                panic!(
                    "{ctx}: row {i} (sorted) differs: {problem}\n  \
                     expected ({} rows): {}\n  \
                     actual   ({} rows): {}\n  \
                     args: {args:?}",
                    expected.len(),
                    show(expected.get(i)),
                    actual.len(),
                    show(actual.get(i)),
                );
            }
        }
        assert_eq!(expected.len(), actual.len(), "{ctx}: row counts differ");
    }
}

macro_rules! spark_cases {
    ($($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                check_case(stringify!($name));
            }
        )*

        /// Every case listed in cases.json has a test above, and vice versa.
        #[test]
        fn every_case_in_cases_json_is_tested() {
            let mut listed: Vec<String> = load_cases().into_iter().map(|c| c.name).collect();
            let mut tested: Vec<String> = vec![$(stringify!($name).to_string()),*];
            listed.sort();
            tested.sort();
            assert_eq!(listed, tested, "{CASES_FILE} and the tests in cli_spark.rs disagree");
        }
    };
}

spark_cases!(
    tumbling_jsonl,
    sliding_jsonl,
    session_jsonl,
    tumbling_rfc3339,
    session_csv,
    sliding_csv,
    tumbling_nokey,
);

/// Self-checks of this module's helpers (they run without the binary's
/// behaviour mattering).
#[test]
fn helpers_compare_rows_per_contract() {
    let rows = parse_rows(
        "{\"key\":\"a\",\"window_start\":1,\"window_end\":2,\"count\":3,\"avg_p\":0.1}\n\n\
         {\"window_start\":1,\"key\":\"a\",\"window_end\":2,\"count\":3,\"avg_p\":0.1}\n\
         {\"key\":\"a\",\"window_start\":1,\"window_end\":2,\"count\":3.0,\"avg_p\":0.10000000000000002}\n\
         {\"key\":null,\"window_start\":1,\"window_end\":2,\"count\":3,\"avg_p\":null}\n",
        "helper test",
    );
    assert_eq!(rows.len(), 4);
    assert_eq!(
        rows[0].fields,
        ["key", "window_start", "window_end", "count", "avg_p"]
    );
    assert!(row_mismatch(&rows[0], &rows[0]).is_none());
    // field order matters
    assert!(row_mismatch(&rows[0], &rows[1]).is_some());
    // an integer must stay an integer, floats are compared with tolerance
    assert!(row_mismatch(&rows[0], &rows[2]).unwrap().contains("count"));
    assert!(values_match(
        &rows[0].value["avg_p"],
        &rows[2].value["avg_p"]
    ));
    assert!(!values_match(
        &rows[0].value["avg_p"],
        &rows[3].value["avg_p"]
    ));
    assert_eq!(key_string(rows[3].value.get("key")), "null");
    assert_eq!(
        top_level_keys(r#"{"a":{"b":1,"c":[{"d":2}]},"e\"f":"g:h","i" : 1}"#),
        ["a", "e\"f", "i"]
    );
}
