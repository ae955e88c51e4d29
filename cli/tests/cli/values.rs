//! Values in the command line's records: float sums and averages that do not depend on the
//! worker count, NaN and infinities in both input formats and the output, and keys of mixed
//! JSON types.

use crate::support::{query_args, tideflow, write, SplitMix64};

/// Runs `args`, expects success and returns standard output.
fn output_of(args: &[&str]) -> String {
    let out = tideflow(args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Standard output of `tideflow run` on `input` keyed by `k` in 10 s tumbling windows, then
/// `extra` (the aggregates, at least).
fn tumbling(input: &str, extra: &[&str]) -> String {
    let mut args = query_args(input, &["--window", "tumbling:10s"]);
    args.extend_from_slice(extra);
    output_of(&args)
}

/// A float of any sign and a magnitude from 1e-30 to 1e30, written in shortest form.
fn wide_float(rng: &mut SplitMix64) -> f64 {
    let mantissa = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
    let exponent = rng.below(61) as i32 - 30;
    let sign = if rng.below(2) == 0 { 1.0 } else { -1.0 };
    sign * mantissa * 10f64.powi(exponent)
}

#[test]
fn float_sums_and_averages_are_identical_for_every_worker_count_and_run() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = SplitMix64(13);
    // Four files (partitions): workers read them concurrently, so rows arrive interleaved
    // differently on every run. Key `exact` sums to 1.5 exactly: 1e16 + 1 - 1e16 + 0.5,
    // which a running float sum gets right in one order only.
    let exact = ["1e16", "1.0", "-1e16", "0.5"];
    for (file, exact) in exact.iter().enumerate() {
        let mut lines = String::new();
        for i in 0..1_500u64 {
            let value = wide_float(&mut rng);
            let ts = (i * 7 + file as u64) % 20_000;
            lines.push_str(&format!(
                "{{\"ts\":{ts},\"k\":\"k{}\",\"v\":{value}}}\n",
                i % 5
            ));
        }
        lines.push_str(&format!("{{\"ts\":5,\"k\":\"exact\",\"v\":{exact}}}\n"));
        write(dir.path(), &format!("part{file}.jsonl"), &lines);
    }
    let input = dir.path().to_string_lossy().into_owned();
    let run = |workers: &str| {
        tumbling(
            &input,
            &[
                "--agg",
                "count",
                "--agg",
                "sum:v",
                "--agg",
                "avg:v",
                "--watermark-delay",
                "60s",
                "--workers",
                workers,
                "--format",
                "jsonl",
            ],
        )
    };
    let reference = run("1");
    assert!(
        reference.contains(r#"{"key":"exact","window_start":0,"window_end":10000,"count":4,"sum_v":1.5,"avg_v":0.375}"#),
        "{reference}"
    );
    assert_eq!(reference.lines().count(), 11, "{reference}");
    for workers in ["2", "4", "2", "4", "2", "4"] {
        assert_eq!(run(workers), reference, "--workers {workers}");
    }
}

/// The rows of keys `a` (1 and NaN), `b` (1 and +infinity), `c` (both infinities) and `d`,
/// under `sum`, `avg`, `min` and `max`, in JSON: Spark's rules and its JSON encoding.
const NON_FINITE_JSON: &str = r#"{"key":"a","window_start":0,"window_end":10000,"sum_v":"NaN","avg_v":"NaN","min_v":1,"max_v":"NaN"}
{"key":"b","window_start":0,"window_end":10000,"sum_v":"Infinity","avg_v":"Infinity","min_v":1,"max_v":"Infinity"}
{"key":"c","window_start":0,"window_end":10000,"sum_v":"NaN","avg_v":"NaN","min_v":"-Infinity","max_v":"Infinity"}
{"key":"d","window_start":0,"window_end":10000,"sum_v":5.5,"avg_v":2.75,"min_v":2.5,"max_v":3}
"#;

/// The same rows in CSV.
const NON_FINITE_CSV: &str = "key,window_start,window_end,sum_v,avg_v,min_v,max_v
a,0,10000,NaN,NaN,1,NaN
b,0,10000,Infinity,Infinity,1,Infinity
c,0,10000,NaN,NaN,-Infinity,Infinity
d,0,10000,5.5,2.75,2.5,3
";

fn non_finite_query<'a>(input: &'a str, format: &'a str, output: &'a str) -> Vec<&'a str> {
    query_args(
        input,
        &[
            "--window",
            "tumbling:10s",
            "--agg",
            "sum:v",
            "--agg",
            "avg:v",
            "--agg",
            "min:v",
            "--agg",
            "max:v",
            "--watermark-delay",
            "60s",
            "--output-format",
            format,
            "--workers",
            "2",
        ],
    )
    .into_iter()
    .chain(["--output", output])
    .collect()
}

#[test]
fn nan_and_infinities_read_alike_from_json_and_csv_and_aggregate_as_in_spark() {
    let dir = tempfile::tempdir().unwrap();
    // Bare tokens (Spark's allowNonNumericNumbers), strings, and a NaN in a field not read.
    let json = write(
        dir.path(),
        "in.jsonl",
        r#"{"ts":1,"k":"a","v":1}
{"ts":2,"k":"a","v":NaN}
{"ts":3,"k":"b","v":1,"other":-Infinity}
{"ts":4,"k":"b","v":"Infinity"}
{"ts":5,"k":"c","v":+INF}
{"ts":6,"k":"c","v":-Infinity}
{"ts":7,"k":"d","v":2.5}
{"ts":8,"k":"d","v":3,"s":"NaN, Infinity"}
"#,
    );
    let csv = write(
        dir.path(),
        "in.csv",
        "ts,k,v\n1,a,1\n2,a,NaN\n3,b,1\n4,b,Infinity\n5,c,+INF\n6,c,-Infinity\n7,d,2.5\n8,d,3\n",
    );
    for input in [&json, &csv] {
        for (format, expected) in [("jsonl", NON_FINITE_JSON), ("csv", NON_FINITE_CSV)] {
            let output = dir.path().join(format!("out.{format}"));
            let output = output.to_string_lossy().into_owned();
            output_of(&non_finite_query(input, format, &output));
            let written = std::fs::read_to_string(&output).unwrap();
            assert_eq!(written, expected, "{input} as {format}");
        }
    }
    // What the JSON output writes reads back as the same values.
    let again = write(dir.path(), "again.jsonl", NON_FINITE_JSON);
    let out = output_of(&[
        "run",
        "--input",
        &again,
        "--time-field",
        "window_start",
        "--key-field",
        "key",
        "--window",
        "tumbling:10s",
        "--agg",
        "max:max_v",
        "--agg",
        "min:min_v",
    ]);
    assert!(
        out.contains(
            r#""key":"a","window_start":0,"window_end":10000,"max_max_v":"NaN","min_min_v":1}"#
        ),
        "{out}"
    );
    assert!(out.contains(r#""key":"c","window_start":0,"window_end":10000,"max_max_v":"Infinity","min_min_v":"-Infinity"}"#), "{out}");
}

/// Keys written as several JSON types, one record each (`-0` is the integer 0; the bare `NaN`
/// token and the string `"NaN"` are one key).
const MIXED_KEYS: &str = r#"{"ts":1,"k":1}
{"ts":2,"k":"1"}
{"ts":3,"k":2}
{"ts":4,"k":2.0}
{"ts":5,"k":true}
{"ts":6,"k":"true"}
{"ts":7,"k":-0}
{"ts":8,"k":0}
{"ts":9,"k":false}
{"ts":10,"k":7}
{"ts":11,"k":"x"}
{"ts":12,"k":NaN}
{"ts":13,"k":"NaN"}
{"ts":14,"k":"01"}
"#;

#[test]
fn mixed_json_key_types_group_by_canonical_text_and_print_the_widest_type() {
    let dir = tempfile::tempdir().unwrap();
    let input = write(dir.path(), "in.jsonl", MIXED_KEYS);
    let run = |workers: &str| tumbling(&input, &["--agg", "count", "--workers", workers]);
    let out = run("1");
    let rows: Vec<String> = [
        ("false", 1),
        ("\"true\"", 2),
        ("0", 2),
        ("\"1\"", 2),
        ("2.0", 2),
        ("7", 1),
        ("\"NaN\"", 2),
        ("\"01\"", 1),
        ("\"x\"", 1),
    ]
    .iter()
    .map(|(key, count)| {
        format!("{{\"key\":{key},\"window_start\":0,\"window_end\":10000,\"count\":{count}}}\n")
    })
    .collect();
    assert_eq!(out, rows.concat());
    assert_eq!(run("2"), out);
    // CSV keys are strings, as in Spark's CSV reader: the same groups, written as strings.
    let csv = write(
        dir.path(),
        "in.csv",
        "ts,k\n1,1\n2,1\n3,2\n4,true\n5,true\n6,01\n",
    );
    let out = tumbling(&csv, &["--agg", "count"]);
    assert_eq!(
        out,
        "{\"key\":\"true\",\"window_start\":0,\"window_end\":10000,\"count\":2}\n\
         {\"key\":\"1\",\"window_start\":0,\"window_end\":10000,\"count\":2}\n\
         {\"key\":\"2\",\"window_start\":0,\"window_end\":10000,\"count\":1}\n\
         {\"key\":\"01\",\"window_start\":0,\"window_end\":10000,\"count\":1}\n"
    );
}

#[test]
fn a_static_join_and_the_grouping_after_it_match_the_same_keys() {
    let dir = tempfile::tempdir().unwrap();
    let input = write(dir.path(), "in.jsonl", MIXED_KEYS);
    let table = write(
        dir.path(),
        "table.jsonl",
        "{\"id\":\"1\",\"credit\":10}\n{\"id\":2.0,\"credit\":3}\n{\"id\":true,\"credit\":5}\n{\"id\":\"-0\",\"credit\":1}\n",
    );
    let out = tumbling(
        &input,
        &[
            "--agg",
            "count",
            "--agg",
            "sum:table.credit",
            "--join-static",
            &table,
            "--join-key",
            "id",
            "--workers",
            "2",
        ],
    );
    // Each matched key's two records joined and grouped together; "-0" is a string, not 0.
    assert_eq!(
        out,
        "{\"key\":\"true\",\"window_start\":0,\"window_end\":10000,\"count\":2,\"sum_table.credit\":10}\n\
         {\"key\":\"1\",\"window_start\":0,\"window_end\":10000,\"count\":2,\"sum_table.credit\":20}\n\
         {\"key\":2.0,\"window_start\":0,\"window_end\":10000,\"count\":2,\"sum_table.credit\":6}\n"
    );
}
