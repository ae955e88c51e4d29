//! `tideflow sql`: its rows against Apache Spark SQL's on the same input (the goldens in
//! tests/fixtures/sql/, made by scripts/sql_spark_reference.sh), with 1 and 2 workers; the same
//! query as SQL and as `tideflow run` flags giving the same rows and the same `explain`; and
//! each error path, with its line and column.

use serde_json::Value;

use crate::support::{fails, tideflow, ROOT};

const CASES: &str = "tests/fixtures/sql/cases.json";
const FLOAT_REL_TOL: f64 = 1e-9;

/// The DDL of the Spark fixtures' events, as the goldens' scripts declare them.
const EVENTS: &str = "CREATE TABLE events (ts BIGINT, user STRING, amount BIGINT, price DOUBLE, WATERMARK FOR ts AS ts - INTERVAL '5' SECOND) WITH ('connector' = 'file', 'path' = 'tests/fixtures/spark/events.jsonl', 'format' = 'jsonl');";

/// The rows of a JSON lines output, each as its text and its value.
fn rows(text: &str) -> Vec<(String, Value)> {
    text.lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            let value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
            (line.to_string(), value)
        })
        .collect()
}

/// A row's sort key: its fields in order, floats rounded (so that rows sort alike whatever the
/// last digits of a float sum).
fn sort_key(row: &Value) -> String {
    let Value::Object(fields) = row else {
        return row.to_string();
    };
    let parts: Vec<String> = fields
        .iter()
        .map(|(name, value)| match value {
            Value::Number(n) if n.is_f64() => format!("{name}={:.6}", n.as_f64().unwrap_or(0.0)),
            Value::Number(n) => format!("{name}={:.6}", n.as_f64().unwrap_or(0.0)),
            other => format!("{name}={other}"),
        })
        .collect();
    parts.join("|")
}

fn same_value(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(x), Some(y)) => x == y,
            _ => {
                let (x, y) = (
                    x.as_f64().unwrap_or(f64::NAN),
                    y.as_f64().unwrap_or(f64::NAN),
                );
                x == y || (x - y).abs() <= FLOAT_REL_TOL * x.abs().max(y.abs())
            }
        },
        _ => a == b,
    }
}

/// Checks `actual` rows against `expected` ones: the same rows, in any order, with the same
/// field names; integers exactly, floats within a relative tolerance.
fn assert_same_rows(case: &str, mut actual: Vec<Value>, mut expected: Vec<Value>) {
    assert_eq!(actual.len(), expected.len(), "{case}: row count");
    actual.sort_by_key(sort_key);
    expected.sort_by_key(sort_key);
    for (got, want) in actual.iter().zip(&expected) {
        let (Value::Object(got_fields), Value::Object(want_fields)) = (got, want) else {
            panic!("{case}: rows are not objects: {got} / {want}");
        };
        let got_names: Vec<&String> = got_fields.keys().collect();
        let want_names: Vec<&String> = want_fields.keys().collect();
        assert_eq!(got_names, want_names, "{case}: field names of {got}");
        for (name, value) in want_fields {
            assert!(
                same_value(&got_fields[name], value),
                "{case}: field {name}: tideflow {got}, Spark {want}"
            );
        }
    }
}

/// Runs `script` and returns its standard output, failing the test on a failed run.
fn run_sql(case: &str, script: &str) -> String {
    let out = tideflow(&["sql", "-e", script]);
    assert!(
        out.status.success(),
        "{case}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

#[test]
fn sql_queries_give_the_rows_spark_sql_gives_with_one_and_two_workers() {
    let cases = std::fs::read_to_string(format!("{ROOT}/{CASES}")).expect("read cases.json");
    let cases: Value = serde_json::from_str(&cases).expect("cases.json is JSON");
    let cases = cases.as_array().expect("a list of cases");
    assert!(cases.len() >= 10, "the conformance cases are there");
    for case in cases {
        let name = case["name"].as_str().expect("name");
        let script = case["script"].as_str().expect("script");
        let complete = case["complete"].as_bool().expect("complete");
        let expected_file = case["expected"].as_str().expect("expected");
        let expected = std::fs::read_to_string(format!("{ROOT}/{expected_file}"))
            .unwrap_or_else(|e| panic!("{name}: {expected_file}: {e}"));
        let expected: Vec<Value> = rows(&expected).into_iter().map(|(_, v)| v).collect();
        for workers in [1, 2] {
            let case_name = format!("{name} with {workers} workers");
            let output = run_sql(
                &case_name,
                &format!("SET 'workers' = '{workers}';\n{script}"),
            );
            let mut actual: Vec<Value> = rows(&output).into_iter().map(|(_, v)| v).collect();
            if complete {
                // The complete-mode table as last written, without its batch number.
                let last = actual.iter().filter_map(|row| row["batch"].as_u64()).max();
                actual.retain(|row| row["batch"].as_u64() == last);
                for row in &mut actual {
                    row.as_object_mut().map(|fields| fields.remove("batch"));
                }
            }
            assert_same_rows(&case_name, actual, expected.clone());
        }
    }
}

/// The same windowed query as SQL and as `tideflow run` flags: the same output bytes and the
/// same `explain`, with 1 and 2 workers.
#[test]
fn sql_and_run_flags_give_the_same_rows_and_the_same_explain() {
    let input = "tests/fixtures/spark/events.jsonl";
    let queries = [
        (
            "SELECT user AS key, window.start AS window_start, window.end AS window_end, COUNT(*) AS count, SUM(amount) AS sum_amount, AVG(price) AS avg_price FROM events GROUP BY user, window(ts, '10 seconds')",
            vec!["--window", "tumbling:10s", "--agg", "count", "--agg", "sum:amount", "--agg", "avg:price"],
        ),
        (
            "SELECT user AS key, window_start, window_end, MAX(price) AS max_price, COUNT(*) AS count FROM TABLE(SESSION(TABLE events PARTITION BY user, DESCRIPTOR(ts), INTERVAL '4' SECOND)) GROUP BY window_start, window_end, user",
            vec!["--window", "session:4s", "--agg", "max:price", "--agg", "count"],
        ),
    ];
    for (query, flags) in queries {
        for workers in ["1", "2"] {
            let mut args = vec![
                "--input",
                input,
                "--time-field",
                "ts",
                "--key-field",
                "user",
                "--watermark-delay",
                "5s",
            ];
            args.extend(flags.iter().copied());
            args.extend(["--workers", workers]);
            let script = format!("SET 'workers' = '{workers}'; {EVENTS} {query}");
            let sql_rows = run_sql(query, &script);
            let run = tideflow(&[&["run"], args.as_slice()].concat());
            assert!(
                run.status.success(),
                "{}",
                String::from_utf8_lossy(&run.stderr)
            );
            assert!(!sql_rows.is_empty());
            assert_eq!(sql_rows, String::from_utf8_lossy(&run.stdout), "{query}");
            let sql_explain = run_sql(
                query,
                &format!("SET 'workers' = '{workers}'; {EVENTS} EXPLAIN {query}"),
            );
            let explain = tideflow(&[&["explain"], args.as_slice()].concat());
            assert!(explain.status.success());
            assert_eq!(
                sql_explain,
                String::from_utf8_lossy(&explain.stdout),
                "{query}"
            );
        }
    }
}

#[test]
fn sql_explain_shows_the_stages_around_the_aggregation() {
    let query = "EXPLAIN SELECT user, window.start AS ws, SUM(amount * 2) AS s FROM events WHERE price > 10.0 GROUP BY user, window(ts, '10 seconds') HAVING COUNT(*) > 2";
    let text = run_sql(query, &format!("{EVENTS} {query}"));
    let operators: Vec<&str> = text
        .lines()
        .skip(1)
        .map(|line| line.split_whitespace().next().unwrap_or(""))
        .collect();
    assert_eq!(
        operators,
        [
            "source",
            "filter",
            "map",
            "exchange",
            "window",
            "late",
            "filter",
            "project",
            "exchange",
            "sink",
            "snapshots"
        ],
        "{text}"
    );
    assert!(text.contains("WHERE price > 10.0"), "{text}");
    assert!(text.contains("sum(amount * 2)"), "{text}");
    assert!(text.contains("HAVING COUNT(*) > 2"), "{text}");
}

#[test]
fn insert_into_a_file_sink_names_the_columns_by_the_table() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("out.jsonl");
    let script = format!(
        "{EVENTS} CREATE TABLE totals (who STRING, n BIGINT) WITH ('connector' = 'file', 'path' = '{}'); INSERT INTO totals SELECT user, COUNT(*) FROM events WHERE user = 'u01' GROUP BY user, window(ts, '1 day')",
        out.display()
    );
    let stdout = run_sql("insert", &script);
    assert!(stdout.is_empty(), "{stdout}");
    let written = std::fs::read_to_string(&out).expect("the sink file");
    let rows = rows(&written);
    assert_eq!(rows.len(), 1, "{written}");
    assert_eq!(rows[0].0, r#"{"who":"u01","n":111}"#, "{written}");
}

/// Each error: exit code 2, one line naming the line and column and what is supported.
#[test]
fn sql_errors_name_the_line_and_column_and_what_is_supported() {
    let no_watermark = "CREATE TABLE t (ts BIGINT, k STRING) WITH ('connector' = 'file', 'path' = 'tests/fixtures/spark/events.jsonl');";
    let cases = [
        (format!("{EVENTS}\nSELECT usr, COUNT(*) FROM events GROUP BY usr"), "line 2, column 43: unknown column usr: table events has ts, user, amount, price"),
        (format!("{EVENTS}\nSELECT user, SUM(user) FROM events GROUP BY user"), "line 2, column 14: type mismatch in SUM(user): SUM takes a number, not STRING"),
        (format!("{EVENTS}\nSELECT user, COUNT(*) FROM events WHERE amount > 'x' GROUP BY user"), "line 2, column 41: type mismatch in amount > 'x': cannot compare BIGINT and STRING"),
        (format!("{EVENTS}\nSELECT user, COUNT(*) FROM events WHERE SUM(amount) > 3 GROUP BY user"), "line 2, column 41: aggregate SUM(amount) in WHERE: aggregates go in the SELECT list or HAVING"),
        (format!("{EVENTS}\nSELECT e.user, COUNT(*) FROM events e JOIN events f ON e.user = f.user GROUP BY e.user"), "line 2, column 44: table events is a stream: stream-stream joins are not supported yet"),
        (format!("{no_watermark}\nSELECT k, COUNT(*) FROM t GROUP BY k, window(ts, '10 seconds')"), "line 2, column 1: a window over table t needs its event time and watermark: add WATERMARK FOR ts AS ts - INTERVAL '5' SECOND"),
        (format!("{EVENTS}\nSELECT user, COUNT(* FROM events GROUP BY user"), "line 2, column 22: syntax error: Expected: ), found: FROM"),
        (format!("{EVENTS}\nSELECT user, amount, COUNT(*) FROM events GROUP BY user"), "line 2, column 14: column amount is neither in GROUP BY nor inside an aggregate"),
        (format!("{EVENTS}\nSELECT user, COUNT(*) FROM TABLE(SESSION(TABLE events, DESCRIPTOR(ts), INTERVAL '4' SECOND)) GROUP BY window_start, window_end, user"), "SESSION: tideflow's sessions are per group key"),
        (format!("{EVENTS}\nSELECT user, COUNT(*) FROM events GROUP BY user ORDER BY user"), "line 2, column 1: ORDER BY"),
        (format!("{EVENTS}\nSET 'parallelism' = '4'; SELECT COUNT(*) FROM events"), "SET 'parallelism' is not supported; supported keys:"),
    ];
    for (script, expected) in cases {
        let line = fails(&["sql", "-e", &script], 2);
        assert!(
            line.contains(expected),
            "script {script}\nexpected {expected}\ngot {line}"
        );
    }
}

/// The NEXMark queries in SQL (scripts/nexmark_sql/) on the bids of `bench nexmark
/// --write-bids`: every bid passes q0 and q1, q2 keeps the bids of every 123rd auction, each
/// bid counts in five of q5's hop windows and in one of q11's sessions.
#[test]
fn nexmark_queries_in_sql_run_on_generated_bids() {
    let dir = tempfile::tempdir().expect("temp dir");
    let bids_path = dir.path().join("bids.jsonl");
    let bids_arg = bids_path.to_string_lossy().into_owned();
    let out = tideflow(&[
        "bench",
        "nexmark",
        "--events",
        "20000",
        "--write-bids",
        &bids_arg,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bids: Vec<Value> = rows(&std::fs::read_to_string(&bids_path).expect("bids"))
        .into_iter()
        .map(|(_, v)| v)
        .collect();
    assert!(bids.len() > 18_000, "{} bids", bids.len());
    let run = |query: &str| -> Vec<Value> {
        let file = format!("{ROOT}/scripts/nexmark_sql/{query}.sql");
        let script = std::fs::read_to_string(&file).expect("the query file");
        let script = script.replace("target/nexmark/bids.jsonl", &bids_arg);
        rows(&run_sql(query, &script))
            .into_iter()
            .map(|(_, v)| v)
            .collect()
    };
    let sum = |rows: &[Value], field: &str| {
        rows.iter()
            .map(|r| r[field].as_u64().expect(field))
            .sum::<u64>()
    };
    assert_eq!(run("q0").len(), bids.len());
    let q1 = run("q1");
    assert_eq!(q1.len(), bids.len());
    let euros = q1[0]["price"].as_f64().expect("price");
    let cents = bids[0]["price"].as_f64().expect("price");
    assert!((euros - 0.908 * cents).abs() < 1e-6, "{euros} {cents}");
    let kept = bids
        .iter()
        .filter(|b| b["auction"].as_u64().is_some_and(|a| a % 123 == 0))
        .count();
    assert_eq!(run("q2").len(), kept);
    assert_eq!(sum(&run("q5_counts"), "num"), 5 * bids.len() as u64);
    assert_eq!(sum(&run("q11"), "bid_count"), bids.len() as u64);
}

/// `SET 'checkpoint-dir'` takes snapshots as `run --checkpoint-dir` does; the query is in the
/// job's fingerprint, so a changed WHERE is refused on resume.
#[test]
fn a_checkpointed_sql_job_refuses_a_changed_query_on_resume() {
    let dir = tempfile::tempdir().expect("temp dir");
    let script = |condition: &str| {
        format!(
            "{EVENTS} CREATE TABLE out (u STRING, n BIGINT) WITH ('connector' = 'file', 'path' = '{}'); SET 'checkpoint-dir' = '{}'; INSERT INTO out SELECT user, COUNT(*) FROM events WHERE {condition} GROUP BY user, window(ts, '10 seconds')",
            dir.path().join("out.jsonl").display(),
            dir.path().join("ck").display()
        )
    };
    run_sql("first run", &script("amount > 0"));
    let written = std::fs::read_to_string(dir.path().join("out.jsonl")).expect("the sink file");
    assert!(written.lines().count() > 400, "{written}");
    let line = fails(&["sql", "-e", &script("amount > 1")], 3);
    assert!(
        line.contains("was written by a different job: query WHERE amount > 0"),
        "{line}"
    );
}
