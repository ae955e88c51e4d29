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
            lines.push_str(&format!("{{\"ts\":{ts},\"k\":\"k{}\",\"v\":{value}}}\n", i % 5));
        }
        lines.push_str(&format!("{{\"ts\":5,\"k\":\"exact\",\"v\":{exact}}}\n"));
        write(dir.path(), &format!("part{file}.jsonl"), &lines);
    }
    let input = dir.path().to_string_lossy().into_owned();
    let run = |workers: &str| {
        output_of(&query_args(
            &input,
            &[
                "--window",
                "tumbling:10s",
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
        ))
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
