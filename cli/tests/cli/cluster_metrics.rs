//! One view of a cluster job (docs/CLUSTER.md "One view of the job"): `tideflow cluster
//! --local 2` (2 workers each) on a watched directory, read whole and then quiet, so that the
//! figures settle while the job runs. Process 0's Prometheus endpoint serves the cluster's
//! totals, which equal the sum of what each process serves as its own (the watermark: the
//! smallest), and after a graceful stop (SIGINT to the launcher) process 0's final progress
//! line's totals equal the sum of both processes' final lines. Every wait is for something
//! observable, bounded by a hang guard only.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{write, ROOT};

/// How long any one wait may take before the test fails: a guard against a hang only.
const GUARD: Duration = Duration::from_secs(90);

/// Rows in each input file; file `f` is read by worker `f` (of 4), so process `f / 2`.
const ROWS: [u64; 4] = [300, 400, 500, 600];

/// The metrics every set of figures has, after their scope's prefix (`tideflow_`,
/// `tideflow_cluster_`, `tideflow_cluster_process_`), with their labels.
const SUMMED: [&str; 9] = [
    "input_rows_total",
    "processed_rows_total",
    "output_rows_total",
    "windows_emitted_total",
    "late_rows_dropped_total",
    "bad_rows_total",
    "state_rows{operator=\"tumbling\"}",
    "state_peak_rows{operator=\"tumbling\"}",
    "state_bytes{operator=\"tumbling\"}",
];

/// A running `tideflow cluster` launcher; dropped, it and the processes it started are killed
/// (they run in process groups of their own, out of reach of a signal to the launcher's).
struct Launcher {
    child: Child,
}

impl Launcher {
    fn start(args: &[&str], dir: &Path) -> Launcher {
        let out = |name: &str| std::fs::File::create(dir.join(name)).expect("a log file");
        let child = Command::new(env!("CARGO_BIN_EXE_tideflow"))
            .args(args)
            .current_dir(ROOT)
            .stdin(Stdio::null())
            .stdout(out("stdout"))
            .stderr(out("stderr"))
            .spawn()
            .expect("the tideflow binary starts");
        Launcher { child }
    }

    /// The processes the launcher started.
    fn processes(&self) -> Vec<String> {
        let pid = self.child.id();
        std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
            .unwrap_or_default()
            .split_whitespace()
            .map(str::to_string)
            .collect()
    }

    fn signal(&self, name: &str) {
        crate::support::signal(self.child.id(), name);
    }

    /// Waits for the launcher to exit; its exit code.
    fn wait(&mut self) -> Option<i32> {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for the launcher") {
                return status.code();
            }
            assert!(start.elapsed() < GUARD, "the cluster did not stop");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Launcher {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            for pid in self.processes() {
                let _ = Command::new("kill").args(["-KILL", &pid]).status();
            }
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// A port `p` such that `p` and `p + 1` were both free a moment ago on 127.0.0.1.
fn two_free_ports() -> u16 {
    loop {
        let first = TcpListener::bind("127.0.0.1:0").expect("a free port");
        let port = first.local_addr().expect("an address").port();
        if port < u16::MAX && TcpListener::bind(("127.0.0.1", port + 1)).is_ok() {
            return port;
        }
    }
}

/// The samples of `GET /metrics` on `port`, by name with labels; `None` if it cannot be had
/// (the process has not bound its port yet).
fn scrape(port: u16) -> Option<BTreeMap<String, f64>> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(GUARD)).ok()?;
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: test\r\n\r\n")
        .ok()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).ok()?;
    let (head, body) = answer.split_once("\r\n\r\n")?;
    if !head.starts_with("HTTP/1.1 200") {
        return None;
    }
    Some(
        body.lines()
            .filter(|line| !line.starts_with('#'))
            .filter_map(|line| {
                let (name, value) = line.rsplit_once(' ')?;
                Some((name.to_string(), value.parse().ok()?))
            })
            .collect(),
    )
}

/// The sample `name` (with its labels) of `samples`, 0 if absent.
fn get(samples: &BTreeMap<String, f64>, name: &str) -> f64 {
    samples.get(name).copied().unwrap_or(0.0)
}

/// `name` with a `process` label added before its own labels.
fn of_process(name: &str, process: usize) -> String {
    match name.split_once('{') {
        Some((base, labels)) => format!("{base}{{process=\"{process}\",{labels}"),
        None => format!("{name}{{process=\"{process}\"}}"),
    }
}

/// The last progress line of `path`.
fn final_line(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).expect("progress lines");
    let last = text.lines().last().expect("a progress line");
    serde_json::from_str(last).expect("a JSON line")
}

/// The figures of a progress line (its own, or its cluster totals) that add up over processes.
fn summed(figures: &Value) -> Vec<(&'static str, u64)> {
    let number = |value: &Value| value.as_u64().unwrap_or_else(|| panic!("{figures}"));
    let mut fields: Vec<(&'static str, u64)> = [
        "input_rows",
        "processed_rows",
        "output_rows",
        "windows_emitted",
        "late_rows_dropped",
        "late_rows_routed",
        "rows_skipped",
        "rows_dead_lettered",
    ]
    .into_iter()
    .map(|field| (field, number(&figures[field])))
    .collect();
    let state = &figures["state"]["tumbling"];
    fields.push(("state rows", number(&state["rows"])));
    fields.push(("state peak rows", number(&state["peak_rows"])));
    fields
}

#[test]
fn process_0_serves_and_reports_the_cluster_totals_the_sum_over_processes() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let input = dir.path().join("input");
    std::fs::create_dir(&input).expect("an input directory");
    // Process 0 (files 0 and 1) reads later event times than process 1 (files 2 and 3): the
    // cluster's watermark is process 1's.
    for (file, rows) in ROWS.iter().enumerate() {
        let base = if file < 2 { 20_000 } else { 10_000 };
        let lines: String = (0..*rows)
            .map(|i| format!("{{\"ts\":{},\"k\":\"u{}\"}}\n", base + i * 10, i % 13))
            .collect();
        write(&input, &format!("part{file}.jsonl"), &lines);
    }
    let total: u64 = ROWS.iter().sum();
    let input = input.to_string_lossy().into_owned();
    let output = dir.path().join("out.jsonl").to_string_lossy().into_owned();
    let progress = dir.path().join("p.jsonl").to_string_lossy().into_owned();
    let port = two_free_ports();
    let metrics_addr = format!("127.0.0.1:{port}");
    let mut launcher = Launcher::start(
        &[
            "cluster",
            "--local",
            "2",
            "--",
            "run",
            "--input",
            &input,
            "--watch",
            "50ms",
            "--time-field",
            "ts",
            "--key-field",
            "k",
            "--agg",
            "count",
            "--window",
            "tumbling:1s",
            "--workers",
            "2",
            "--output",
            &output,
            "--progress",
            &progress,
            "--progress-interval",
            "100ms",
            "--metrics-addr",
            &metrics_addr,
        ],
        dir.path(),
    );
    let stderr = || std::fs::read_to_string(dir.path().join("stderr")).unwrap_or_default();

    // Scrape both processes until the input is read and process 0 holds process 1's latest
    // figures (its copy of them equals what process 1 serves itself).
    let start = Instant::now();
    let (first, second) = loop {
        assert!(
            start.elapsed() < GUARD,
            "the figures did not settle: {}",
            stderr()
        );
        std::thread::sleep(Duration::from_millis(100));
        let (Some(first), Some(second)) = (scrape(port), scrape(port + 1)) else {
            continue;
        };
        let settled = get(&first, "tideflow_cluster_input_rows_total") == total as f64
            && get(&first, "tideflow_cluster_processed_rows_total") == total as f64
            && first.contains_key("tideflow_cluster_watermark_ms")
            && SUMMED.iter().chain(&["watermark_ms"]).all(|name| {
                get(
                    &first,
                    &format!("tideflow_cluster_process_{}", of_process(name, 1)),
                ) == get(&second, &format!("tideflow_{name}"))
            });
        if settled {
            break (first, second);
        }
    };
    // Process 0's totals are the sum of both processes' own figures, as each serves them.
    for name in SUMMED {
        let own = |samples: &BTreeMap<String, f64>| get(samples, &format!("tideflow_{name}"));
        assert_eq!(
            get(&first, &format!("tideflow_cluster_{name}")),
            own(&first) + own(&second),
            "{name}: {first:?}\n{second:?}"
        );
        assert_eq!(
            get(
                &first,
                &format!("tideflow_cluster_process_{}", of_process(name, 0))
            ),
            own(&first),
            "{name}"
        );
    }
    // Each process read its own files; windows closed (in both processes' operators).
    let input_of = |samples: &BTreeMap<String, f64>| get(samples, "tideflow_input_rows_total");
    assert_eq!(input_of(&first), (ROWS[0] + ROWS[1]) as f64);
    assert_eq!(input_of(&second), (ROWS[2] + ROWS[3]) as f64);
    assert!(get(&first, "tideflow_cluster_windows_emitted_total") > 0.0);
    // The watermark is the smallest of the processes': process 1's.
    let watermark = |samples: &BTreeMap<String, f64>| get(samples, "tideflow_watermark_ms");
    assert!(watermark(&second) < watermark(&first), "{first:?}");
    assert_eq!(
        get(&first, "tideflow_cluster_watermark_ms"),
        watermark(&second)
    );
    // Process 1 serves its own figures only.
    assert!(
        second
            .keys()
            .all(|name| !name.starts_with("tideflow_cluster")),
        "{second:?}"
    );
    assert!(first.contains_key("tideflow_cluster_process_figures_age_ms{process=\"1\"}"));

    // A graceful stop: process 0's final line's totals are the sum of both final lines.
    launcher.signal("INT");
    assert_eq!(launcher.wait(), Some(130), "{}", stderr());
    let lines: Vec<Value> = (0..2)
        .map(|process| final_line(&dir.path().join(format!("p.jsonl.{process}"))))
        .collect();
    for line in &lines {
        assert_eq!(line["final"], true, "{line}");
    }
    assert!(lines[1]["cluster"].is_null(), "{}", lines[1]);
    let cluster = &lines[0]["cluster"];
    let totals = summed(&cluster["totals"]);
    let (own0, own1) = (summed(&lines[0]), summed(&lines[1]));
    for ((field, total), ((_, first), (_, second))) in totals.iter().zip(own0.iter().zip(&own1)) {
        assert_eq!(*total, first + second, "{field}: {cluster}");
    }
    assert_eq!(totals[0], ("input_rows", total));
    for process in 0..2 {
        let entry = &cluster["processes"][process];
        assert_eq!(entry["process"], process);
        assert_eq!(
            summed(&entry["figures"]),
            summed(&lines[process]),
            "{entry}"
        );
    }
    assert_eq!(
        cluster["totals"]["watermark"], lines[1]["watermark"],
        "{cluster}"
    );
}
