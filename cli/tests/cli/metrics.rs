//! Progress reports (DESIGN.md "Observability"): through the API (callback and channel), as
//! the JSON lines of `tideflow run --progress`, and scraped from `--metrics-addr` by a real
//! HTTP client (Python's urllib) while the job runs.

use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use tideflow::aggregate::Count;
use tideflow::sink::MemorySink;
use tideflow::source::{MemorySource, RateRecord, RateSource};
use tideflow::{Config, Progress, Window};

use crate::support::{fails, ChildGuard, DEADLINE};

/// Checks that the watermarks of `reports`, in order, never go back and take at least three
/// distinct values.
fn assert_watermark_advances(watermarks: &[u64]) {
    assert!(
        watermarks.windows(2).all(|w| w[0] <= w[1]),
        "the watermark went back: {watermarks:?}"
    );
    let mut distinct = watermarks.to_vec();
    distinct.dedup();
    assert!(
        distinct.len() >= 3,
        "the watermark did not advance: {watermarks:?}"
    );
}

#[test]
fn progress_reports_count_input_watermark_late_rows_and_latency() {
    let reports = Arc::new(Mutex::new(Vec::<Progress>::new()));
    let seen = Arc::clone(&reports);
    let config = Config::workers(2).progress(Duration::from_millis(200), move |progress| {
        seen.lock().unwrap().push(progress.clone());
    });
    let (dropping, routing, late) = (MemorySink::new(), MemorySink::new(), MemorySink::new());
    let (dropping_out, routing_out, late_out) = (dropping.clone(), routing.clone(), late.clone());
    // 6000 records paced at 2000/s over 3 s, event time following the wall clock; one in 50
    // is stamped 5 s back: late for every 100 ms window.
    let source = RateSource::new(2_000)
        .keys(10)
        .count(6_000)
        .seed(1)
        .partitions(4);
    let report = tideflow::execute(config, move |flow| {
        let stream = flow
            .source(source.clone())
            .with_event_time(|r: &RateRecord| {
                if r.value % 50 == 0 {
                    r.ts.saturating_sub(5_000)
                } else {
                    r.ts
                }
            })
            .with_watermark(Duration::from_millis(20));
        let window = Window::tumbling(Duration::from_millis(100))?;
        stream
            .clone()
            .key_by(|r| r.key)
            .window(window)
            .aggregate(Count)
            .sink(dropping_out.clone());
        let (rows, too_late) = stream
            .key_by(|r| r.key)
            .window(window)
            .aggregate_with_late(Count);
        rows.sink(routing_out.clone());
        too_late.sink(late_out.clone());
        Ok(())
    })
    .expect("the job runs");
    let reports = reports.lock().unwrap().clone();
    assert!(reports.len() >= 8, "{} reports in 3 s", reports.len());
    let batches: Vec<u64> = reports.iter().map(|r| r.batch).collect();
    assert_eq!(batches, (1..=reports.len() as u64).collect::<Vec<_>>());
    let last = reports.last().unwrap();
    assert!(last.is_final && reports[..reports.len() - 1].iter().all(|r| !r.is_final));
    assert_eq!(last.input_rows, 6_000);
    assert_eq!(last.input_rows, report.records_in);
    assert_eq!(last.output_rows, report.records_out);
    // Late counts match the job's, and both branches see the same late records.
    assert!(report.late_dropped > 0, "{report:?}");
    assert_eq!(last.late_rows_dropped, report.late_dropped);
    assert_eq!(last.late_rows_routed, report.late_routed);
    assert_eq!(report.late_routed, report.late_dropped);
    assert_eq!(late.len() as u64, report.late_routed);
    // Window rows: both window operators' results; processed: both took every record.
    assert_eq!(
        last.windows_emitted,
        (dropping.len() + routing.len()) as u64
    );
    assert_eq!(last.processed_rows, 2 * 6_000);
    // Counters only grow; input arrives over the run, not at once.
    assert!(reports
        .windows(2)
        .all(|w| w[0].input_rows <= w[1].input_rows && w[0].output_rows <= w[1].output_rows));
    let growing = reports
        .iter()
        .filter(|r| r.input_rows > 0 && r.input_rows < 6_000)
        .count();
    assert!(growing >= 5, "input did not arrive over time: {reports:?}");
    assert!(reports.iter().any(|r| r.input_rows_per_sec > 500.0));
    // The watermark follows the wall clock.
    let watermarks: Vec<u64> = reports.iter().filter_map(|r| r.watermark).collect();
    assert_watermark_advances(&watermarks);
    for report in reports
        .iter()
        .filter(|r| r.watermark.is_some() && !r.is_final)
    {
        let lag = report.event_time_lag_ms.unwrap();
        assert!((0..2_000).contains(&lag), "lag {lag} ms: {report:?}");
    }
    // Latency: window rows leave a little after their window closes (late rows routed to the
    // late sink, 5 s old, are in the tail).
    let measured: Vec<_> = reports.iter().filter_map(|r| r.latency_ms).collect();
    assert!(measured.len() >= 5, "{reports:?}");
    for l in &measured {
        assert!(
            l.rows > 0 && l.p50 <= l.p90 && l.p90 <= l.p99 && l.p99 <= l.max,
            "{l:?}"
        );
    }
    // Every row but the last windows', closed by the end of the input before the wall clock
    // reached their end (at most one row per key and branch).
    let total: u64 = measured.iter().map(|l| l.rows).sum();
    assert!(
        total <= report.records_out && total + 20 >= report.records_out,
        "{total} of {} rows measured",
        report.records_out
    );
    assert!(
        measured.iter().any(|l| l.p50 < 1_000.0),
        "window rows took too long: {measured:?}"
    );
    assert!(
        measured.iter().any(|l| l.max >= 4_000.0),
        "the 5 s old late rows are not in the tail: {measured:?}"
    );
    assert!(last.snapshot.is_none());
    // The window operators report their state: accumulators held while windows were open,
    // none once the input ended and every window closed.
    let tumbling = last
        .state
        .get("tumbling")
        .expect("the tumbling windows' state");
    assert_eq!(tumbling.rows, 0, "{last:?}");
    assert!(tumbling.peak_rows > 0, "{last:?}");
    assert!(
        reports
            .iter()
            .any(|r| r.state.get("tumbling").is_some_and(|s| s.rows > 0)),
        "no report saw open windows: {reports:?}"
    );
}

#[test]
fn progress_reports_sum_state_gauges_over_workers() {
    let (config, reports) = Config::workers(2).progress_channel(Duration::from_millis(20));
    // 2000 distinct ids over 1 s of event time, a few a time, kept for 10 s: all in state.
    let records: Vec<(u64, u64)> = (0..2_000u64).map(|i| (i, 1_000 + i / 2)).collect();
    let report = tideflow::execute(config, move |flow| {
        flow.source(MemorySource::partitioned(records.clone(), 4).batch_size(50))
            .with_event_time(|(_, t)| *t)
            .with_watermark(Duration::ZERO)
            .key_by(|(id, _)| *id)
            .dedup_within(Duration::from_secs(10))
            .sink(MemorySink::new());
        Ok(())
    })
    .expect("the job runs");
    let reports: Vec<Progress> = reports.iter().collect();
    let last = reports.last().expect("a final report");
    assert!(last.is_final);
    let dedup = last.state["dedup"];
    let expected = report.state["dedup"];
    assert_eq!(
        (dedup.rows, dedup.peak_rows),
        (expected.rows, expected.peak)
    );
    assert_eq!(dedup.peak_rows, 2_000);
    assert_eq!(dedup.bytes, dedup.rows * tideflow::STATE_BYTES_PER_ROW);
    assert_eq!(last.input_rows, 2_000);
    assert_eq!(last.watermark, Some(1_999));
}

/// A port free a moment ago on 127.0.0.1.
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// GETs `url` with Python's urllib: the body, or `None` if the request failed.
fn scrape(url: &str) -> Option<String> {
    let out = Command::new("python3")
        .args([
            "-c",
            "import urllib.request,sys; r=urllib.request.urlopen(sys.argv[1], timeout=5); \
             print(r.headers['Content-Type']); print(r.read().decode())",
            url,
        ])
        .stderr(Stdio::null())
        .output()
        .expect("python3 runs");
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The value of the sample `name` (with its labels, if any) in a Prometheus exposition.
fn sample(body: &str, name: &str) -> Option<f64> {
    body.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .map(|value| value.trim().parse().expect("a number"))
}

/// The progress lines of `path`, parsed.
fn progress_lines(path: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .expect("the progress file")
        .lines()
        .map(|line| serde_json::from_str(line).expect("a JSON line"))
        .collect()
}

/// The number before `what` in the summary line of `tideflow run`.
fn summary_count(stderr: &str, what: &str) -> u64 {
    let summary = stderr
        .lines()
        .find(|line| line.contains("records read"))
        .unwrap_or_else(|| panic!("no summary: {stderr}"));
    let before = &summary[..summary.find(what).unwrap_or_else(|| panic!("{summary}"))];
    before
        .trim_end()
        .rsplit(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{summary}"))
}

#[test]
fn cli_progress_lines_and_prometheus_endpoint_follow_the_job() {
    let dir = tempfile::tempdir().unwrap();
    let progress = dir.path().join("progress.jsonl");
    let port = free_port().to_string();
    let address = format!("127.0.0.1:{port}");
    let url = format!("http://{address}/metrics");
    let progress_arg = progress.to_string_lossy().into_owned();
    // 6000 records at 2000/s with up to 50 ms of disorder and no watermark delay: some late.
    let mut child = ChildGuard::spawn(
        &[
            "run",
            "--input",
            "rate:rows_per_sec=2000,keys=10,count=6000,seed=1,disorder=50",
            "--time-field",
            "ts",
            "--key-field",
            "key",
            "--agg",
            "count",
            "--window",
            "tumbling:100ms",
            "--workers",
            "2",
            "--progress",
            &progress_arg,
            "--progress-interval",
            "200ms",
            "--metrics-addr",
            &address,
        ],
        Stdio::null(),
    );
    // Scrape while the job runs: the counters are there, and grow.
    let start = Instant::now();
    let first = loop {
        assert!(start.elapsed() < DEADLINE, "no metrics from {url}");
        if let Some(body) = scrape(&url) {
            if sample(&body, "tideflow_input_rows_total").is_some_and(|n| n > 0.0) {
                break body;
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        first.starts_with("text/plain; version=0.0.4"),
        "content type: {first}"
    );
    for line in [
        "# TYPE tideflow_input_rows_total counter",
        "# HELP tideflow_watermark_ms ",
        "# TYPE tideflow_watermark_ms gauge",
        "# TYPE tideflow_late_rows_dropped_total counter",
        "# TYPE tideflow_latency_ms gauge",
    ] {
        assert!(first.contains(line), "no {line}: {first}");
    }
    let input = sample(&first, "tideflow_input_rows_total").unwrap();
    assert!(input < 6_000.0, "the job was over before the first scrape");
    let watermark = sample(&first, "tideflow_watermark_ms");
    // Scrape again until the counters grew (the deadline only bounds a hang).
    let grew = |body: &str| {
        sample(body, "tideflow_input_rows_total").is_some_and(|n| n > input)
            && sample(body, "tideflow_watermark_ms").is_some_and(|w| w > watermark.unwrap_or(0.0))
            && sample(body, "tideflow_windows_emitted_total").is_some_and(|n| n > 0.0)
    };
    let start = Instant::now();
    let second = loop {
        std::thread::sleep(Duration::from_millis(100));
        let body = scrape(&url).expect("a second scrape");
        if grew(&body) {
            break body;
        }
        assert!(start.elapsed() < DEADLINE, "{first}\n{body}");
    };
    assert!(sample(&second, "tideflow_latency_ms{quantile=\"0.99\"}").is_some());
    let (code, _stdout, stderr) = child.finish();
    assert_eq!(code, Some(0), "{stderr}");
    // The JSON lines: input counts end at the input's size, the watermark advances, the late
    // count is the summary's.
    let lines = progress_lines(&progress);
    assert!(lines.len() >= 8, "{} progress lines", lines.len());
    let last = lines.last().unwrap();
    assert_eq!(last["final"], true);
    assert_eq!(last["input_rows"], 6_000);
    let inputs: Vec<u64> = lines
        .iter()
        .map(|l| l["input_rows"].as_u64().unwrap())
        .collect();
    assert!(inputs.windows(2).all(|w| w[0] <= w[1]), "{inputs:?}");
    assert!(inputs.iter().filter(|&&n| n > 0 && n < 6_000).count() >= 5);
    let watermarks: Vec<u64> = lines
        .iter()
        .filter_map(|l| l["watermark"].as_u64())
        .collect();
    assert_watermark_advances(&watermarks);
    let dropped = summary_count(&stderr, "late records dropped");
    assert!(dropped > 0, "no late records: {stderr}");
    assert_eq!(last["late_rows_dropped"], dropped);
    assert_eq!(last["late_rows_routed"], 0);
    assert_eq!(
        last["windows_emitted"],
        summary_count(&stderr, "window rows written")
    );
    for field in [
        "timestamp_ms",
        "interval_ms",
        "batch",
        "input_rows_per_sec",
        "processed_rows",
        "processed_rows_per_sec",
        "event_time_lag_ms",
        "output_rows",
        "state",
        "snapshot",
        "latency_ms",
    ] {
        assert!(last.get(field).is_some(), "no {field}: {last}");
    }
    assert!(lines.iter().any(|l| l["latency_ms"]["p99"].is_number()));
}

#[test]
fn cli_progress_reports_snapshots_and_routed_late_rows() {
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("out.jsonl").to_string_lossy().into_owned();
    let late = dir.path().join("late.jsonl").to_string_lossy().into_owned();
    let checkpoints = dir
        .path()
        .join("checkpoints")
        .to_string_lossy()
        .into_owned();
    let mut child = ChildGuard::spawn(
        &[
            "run",
            "--input",
            "rate:rows_per_sec=2000,keys=10,count=3000,seed=2,disorder=50",
            "--time-field",
            "ts",
            "--key-field",
            "key",
            "--agg",
            "count",
            "--window",
            "tumbling:100ms",
            "--late-output",
            &late,
            "--output",
            &output,
            "--checkpoint-dir",
            &checkpoints,
            "--snapshot-interval",
            "300ms",
            "--progress",
            "-",
            "--progress-interval",
            "100ms",
        ],
        Stdio::null(),
    );
    let (code, stdout, stderr) = child.finish();
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stdout.is_empty(),
        "progress went to standard output: {stdout}"
    );
    // With - the reports are JSON lines on standard error, before the summary.
    let lines: Vec<Value> = stderr
        .lines()
        .filter(|line| line.starts_with('{'))
        .map(|line| serde_json::from_str(line).expect("a JSON line"))
        .collect();
    assert!(lines.len() >= 8, "{stderr}");
    let last = lines.last().unwrap();
    assert_eq!(last["input_rows"], 3_000);
    let routed = std::fs::read_to_string(&late).unwrap().lines().count() as u64;
    assert!(routed > 0);
    assert_eq!(last["late_rows_routed"], routed);
    assert_eq!(last["late_rows_dropped"], 0);
    let rows = std::fs::read_to_string(&output).unwrap().lines().count() as u64;
    assert_eq!(last["windows_emitted"], rows);
    assert_eq!(last["output_rows"], rows + routed);
    // Snapshots, and the latency of rows released by the exactly-once sink.
    let completed = last["snapshot"]["completed"].as_u64().expect("snapshots");
    assert!(completed >= 2, "{last}");
    assert!(last["snapshot"]["last_bytes"].as_u64().unwrap() > 0);
    assert!(last["snapshot"]["last_duration_ms"].is_number());
    assert!(
        last["snapshot"]["last_epoch"].as_u64().unwrap() >= 1,
        "{last}"
    );
    let measured: u64 = lines
        .iter()
        .filter_map(|l| l["latency_ms"]["rows"].as_u64())
        .sum();
    assert_eq!(measured, rows + routed);
}

#[test]
fn cli_bad_progress_flags_are_one_line_naming_the_flag() {
    let base = [
        "run",
        "--input",
        "rate:rows_per_sec=1000,count=10",
        "--time-field",
        "ts",
        "--agg",
        "count",
        "--window",
        "tumbling:1s",
    ];
    let with = |extra: &[&'static str]| -> Vec<&'static str> {
        base.iter().chain(extra).copied().collect()
    };
    let message = fails(&with(&["--metrics-addr", "nonsense"]), 2);
    assert!(message.contains("--metrics-addr"), "{message}");
    // A port taken by someone else.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address: &'static str = Box::leak(taken.local_addr().unwrap().to_string().into_boxed_str());
    let message = fails(&with(&["--metrics-addr", address]), 2);
    assert!(
        message.contains("--metrics-addr") && message.contains(address),
        "{message}"
    );
    // A port alone is on localhost.
    let port: &'static str = Box::leak(
        taken
            .local_addr()
            .unwrap()
            .port()
            .to_string()
            .into_boxed_str(),
    );
    let message = fails(&with(&["--metrics-addr", port]), 2);
    assert!(message.contains(address), "{message}");
    let message = fails(&with(&["--progress-interval", "1s"]), 2);
    assert!(message.contains("--progress-interval"), "{message}");
    let message = fails(&with(&["--progress", "-", "--progress-interval", "0ms"]), 2);
    assert!(message.contains("--progress-interval"), "{message}");
    // Like --output, a file that cannot be created is an I/O failure.
    let message = fails(&with(&["--progress", "/nonexistent/dir/progress.jsonl"]), 3);
    assert!(message.contains("--progress"), "{message}");
}
