//! `tideflow bench`: short real runs of each benchmark command report well-formed numbers, the
//! compare plot is an SVG with a line per mode, and bad flags fail on one line. No assertion
//! is timed: the values are checked for shape and order, never against a latency bound.

use serde_json::Value;

use crate::support::{fails, tideflow};

/// A short, light workload: 20,000 events/s for 1 s, 200 ms windows after a 200 ms warm-up.
const SHORT: [&str; 8] = [
    "--rate",
    "20000",
    "--duration",
    "1s",
    "--window",
    "200ms",
    "--warmup",
    "200ms",
];

/// Runs `tideflow bench` with `args`, expects success, and parses standard output as JSON.
fn bench_json(args: &[&str]) -> Value {
    let out = tideflow(&[&["bench"], args].concat());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{args:?}: {stderr}");
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{args:?}: not one JSON object ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// Checks that `value` holds ordered, non-negative latency percentiles.
fn assert_percentiles(value: &Value) {
    let get = |name: &str| {
        value[name]
            .as_f64()
            .unwrap_or_else(|| panic!("no {name} in {value}"))
    };
    let ordered = ["p50", "p90", "p99", "p99_9", "max"].map(get);
    assert!(ordered[0] >= 0.0, "{value}");
    assert!(ordered.windows(2).all(|w| w[0] <= w[1]), "{value}");
}

#[test]
fn latency_reports_ordered_percentiles_and_the_achieved_rate() {
    let report = bench_json(&[&["latency"], &SHORT[..], &["--keys", "10", "--json"]].concat());
    assert_eq!(report["workload"]["scenario"], "window");
    assert_eq!(report["mode"], "continuous");
    assert!(report["samples"].as_u64().unwrap() > 0, "{report}");
    assert!(report["achieved_rate"].as_f64().unwrap() > 0.0, "{report}");
    assert!(report["records_in"].as_u64().unwrap() > 0, "{report}");
    for part in ["latency_ms", "source_ms", "engine_ms"] {
        assert_percentiles(&report[part]);
    }
    assert!(report["targets"].as_array().unwrap().is_empty(), "{report}");
}

#[test]
fn stateless_latency_writes_the_distribution() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("distribution.csv");
    let csv_arg = csv.to_string_lossy();
    let args = [
        &[
            "latency",
            "--scenario",
            "stateless",
            "--trigger",
            "interval:50ms",
        ],
        &SHORT[..],
        &["--workers", "2", "--json", "--distribution", &csv_arg],
    ]
    .concat();
    let report = bench_json(&args);
    assert_eq!(report["workload"]["scenario"], "stateless");
    assert_eq!(report["mode"], "interval:50ms");
    assert!(report["samples"].as_u64().unwrap() > 1_000, "{report}");
    assert_percentiles(&report["latency_ms"]);
    assert!(report.get("source_ms").is_none(), "{report}");

    let text = std::fs::read_to_string(&csv).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("percentile,latency_us"));
    let rows: Vec<(f64, u64)> = lines
        .map(|line| {
            let (percentile, latency) = line.split_once(',').unwrap();
            (percentile.parse().unwrap(), latency.parse().unwrap())
        })
        .collect();
    assert!(rows.len() > 3, "{text}");
    assert!(
        rows.windows(2)
            .all(|w| w[0].0 <= w[1].0 && w[0].1 <= w[1].1),
        "{text}"
    );
    assert_eq!(rows.last().unwrap().0, 100.0, "{text}");
}

#[test]
fn compare_prints_each_mode_and_plots_one_line_per_mode() {
    let dir = tempfile::tempdir().unwrap();
    let svg = dir.path().join("cdf.svg");
    let svg_arg = svg.to_string_lossy();
    let args = [
        &["compare"],
        &SHORT[..],
        &["--intervals", "20ms,100ms", "--plot", &svg_arg, "--json"],
    ]
    .concat();
    let report = bench_json(&args);
    let modes: Vec<&str> = report["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|run| {
            assert_percentiles(&run["latency_ms"]);
            run["mode"].as_str().unwrap()
        })
        .collect();
    assert_eq!(modes, ["continuous", "interval:20ms", "interval:100ms"]);

    let plot = std::fs::read_to_string(&svg).unwrap();
    assert!(
        plot.starts_with("<svg") || plot.starts_with("<?xml"),
        "{plot:.200}"
    );
    assert!(plot.trim_end().ends_with("</svg>"));
    // Series are drawn 2 px wide; axes and ticks 1 px.
    let lines = plot
        .split("<polyline")
        .skip(1)
        .filter(|rest| rest[..rest.find('>').unwrap()].contains("stroke-width=\"2\""))
        .count();
    assert_eq!(lines, modes.len(), "{plot}");
    for mode in modes {
        assert!(
            plot.lines().any(|line| line.trim() == mode),
            "no legend for {mode}"
        );
    }
}

#[test]
fn throughput_with_a_tiny_budget_returns_a_rate() {
    let report = bench_json(&[
        "throughput",
        "--rate",
        "10000",
        "--probe",
        "1s",
        "--window",
        "200ms",
        "--warmup",
        "200ms",
        "--max-probes",
        "2",
        "--p99-target",
        "1s",
        "--json",
    ]);
    let probes = report["probes"].as_array().unwrap();
    assert!(!probes.is_empty() && probes.len() <= 2, "{report}");
    assert_eq!(probes[0]["rate"], 10_000);
    let sustained = report["sustained_rate"].as_u64().unwrap();
    assert!(report["complete"].is_boolean(), "{report}");
    assert!(
        probes
            .iter()
            .any(|probe| probe["rate"] == sustained && probe["sustained"] == true)
            || sustained == 0,
        "{report}"
    );
}

#[test]
fn bad_bench_flags_fail_on_one_line_naming_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no/such/dir/plot.svg");
    let missing = missing.to_string_lossy();
    for (args, code, expected) in [
        (vec!["latency", "--rate", "0"], 2, "--rate"),
        (vec!["latency", "--duration", "soon"], 2, "--duration"),
        (vec!["latency", "--workers", "0"], 2, "--workers"),
        (vec!["latency", "--window", "0ms"], 2, "--window"),
        (vec!["latency", "--scenario", "join"], 2, "--scenario"),
        (vec!["latency", "--trigger", "hourly"], 2, "--trigger"),
        (vec!["latency", "--trigger", "once"], 2, "--trigger"),
        (
            vec!["latency", "--duration", "1s", "--warmup", "1s"],
            2,
            "--warmup",
        ),
        (
            vec!["latency", "--duration", "2s", "--window", "5s"],
            2,
            "--window",
        ),
        (vec!["compare", "--intervals", "10ms,0ms"], 2, "--intervals"),
        (vec!["compare", "--plot", &missing], 3, "plot.svg"),
        (vec!["throughput", "--p99-target", "0ms"], 2, "--p99-target"),
        (vec!["throughput", "--max-probes", "0"], 2, "--max-probes"),
        (
            vec!["throughput", "--probe", "1s", "--warmup", "2s"],
            2,
            "--probe",
        ),
        (
            vec!["throughput", "--rate", "10", "--max-rate", "5"],
            2,
            "--max-rate",
        ),
        (vec!["nexmark", "--query", "q6"], 2, "--query"),
        (vec!["nexmark", "--events", "100"], 2, "--query"),
        (
            vec!["nexmark", "--query", "q0", "--events", "0"],
            2,
            "--events",
        ),
        (
            vec!["nexmark", "--query", "q0", "--workers", "0"],
            2,
            "--workers",
        ),
        (vec!["nexmark", "--query", "q0", "--runs", "0"], 2, "--runs"),
        (vec!["nexmark", "--query", "q0", "--rate", "0"], 2, "--rate"),
    ] {
        let args = [&["bench"], &args[..]].concat();
        let message = fails(&args, code);
        assert!(message.contains(expected), "{args:?}: {message}");
    }
}

#[test]
fn nexmark_runs_each_query_and_reports_its_throughput() {
    for query in ["q0", "q1", "q2", "q3", "q4", "q5", "q7", "q8", "q11"] {
        // 3,000 events at 1,000 events/s: 3 s of event time, 60 of each 50 kinds of event.
        let report = bench_json(&[
            "nexmark",
            "--query",
            query,
            "--events",
            "3000",
            "--rate",
            "1000",
            "--workers",
            "2",
            "--runs",
            "2",
            "--json",
        ]);
        assert_eq!(report["query"], query, "{report}");
        let runs = report["runs"].as_array().unwrap();
        assert_eq!(runs.len(), 2, "{report}");
        // The same events give the same rows every run.
        assert_eq!(runs[0]["rows"], runs[1]["rows"], "{report}");
        let median = &report["median"];
        for figure in [
            "wall_s",
            "events_per_s",
            "events_per_s_per_worker",
            "events_per_cpu_s",
        ] {
            assert!(median[figure].as_f64().unwrap() > 0.0, "{figure}: {report}");
        }
        let per_worker = median["events_per_s_per_worker"].as_f64().unwrap();
        let total = median["events_per_s"].as_f64().unwrap();
        assert!((total - 2.0 * per_worker).abs() <= 1e-9 * total, "{report}");
        assert!(report["flink_per_core"].as_f64().unwrap() > 0.0, "{report}");
        if query == "q0" {
            // 46 bids in every 50 events.
            assert_eq!(median["rows"], 2_760, "{report}");
        }
    }
}
