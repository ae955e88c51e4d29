//! Watching a running job: the dashboard of `--ui` in a real browser (Debian's chromium, driven
//! by playwright-core: scripts/browser-tools.sh and scripts/dashboard_check.cjs), and the
//! status line of `tideflow run` under a pseudo-terminal (util-linux `script`) and without one.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{tideflow, ChildGuard, ROOT};

/// How long the browser check may take (installing chromium and playwright-core on the first
/// run included): a guard against a hang only.
const BROWSER_GUARD: Duration = Duration::from_secs(900);

/// The query of these tests on a generated `input`, keyed one-second counts.
const QUERY: [&str; 8] = [
    "--time-field",
    "ts",
    "--key-field",
    "key",
    "--window",
    "tumbling:1s",
    "--agg",
    "count",
];

/// `tideflow run` of [`QUERY`] on `input`, its rows to a file in `dir`, then `extra`.
fn query(dir: &Path, input: &str, extra: &[&str]) -> Vec<String> {
    let output = dir.join("out.jsonl").to_string_lossy().into_owned();
    let head = ["run", "--input", input, "--output", &output];
    [&head[..], &QUERY, extra]
        .concat()
        .into_iter()
        .map(str::to_string)
        .collect()
}

/// `args` as `&str`s.
fn strs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

/// The operators `tideflow explain` lists for `args` (`run` replaced by `explain`), in order.
fn operators(args: &[String]) -> Vec<String> {
    let mut explain = strs(args);
    explain[0] = "explain";
    let out = tideflow(&explain);
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .skip(1)
        .filter_map(|line| line.split_whitespace().next())
        .filter(|kind| !matches!(*kind, "snapshots" | "progress" | "cluster"))
        .map(str::to_string)
        .collect()
}

/// The browser check's process and the browser's (whose id it writes to `pid_file`), both
/// killed by their ids when dropped, whatever the test's outcome.
struct BrowserGuard {
    check: Child,
    pid_file: std::path::PathBuf,
}

impl Drop for BrowserGuard {
    fn drop(&mut self) {
        if let Some(pid) = std::fs::read_to_string(&self.pid_file)
            .ok()
            .and_then(|pid| pid.trim().parse::<libc::pid_t>().ok())
        {
            // SAFETY: kill(2) on a process id; it may have exited already.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        let _ = self.check.kill();
        let _ = self.check.wait();
    }
}

/// The first line of `job`'s standard error: the dashboard's address.
fn dashboard_url(job: &mut ChildGuard) -> String {
    let mut stderr = BufReader::new(job.0.stderr.take().unwrap());
    let mut first = String::new();
    stderr.read_line(&mut first).unwrap();
    let url = first
        .trim_end()
        .strip_prefix("tideflow: dashboard at ")
        .unwrap_or_else(|| panic!("no dashboard address: {first}"))
        .to_string();
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    url
}

/// Opens `url` in the browser (scripts/dashboard_check.cjs with `flags`), checks that its graph
/// shows `kinds`, calls `on_ready` if the check says "ready" (with `--error`), saves a
/// screenshot as `name` in the tests' target directory, and returns what the check saw.
fn check_in_browser(
    url: &str,
    kinds: &[String],
    flags: &[&str],
    name: &str,
    on_ready: impl FnOnce(),
) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let screenshot = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_file(&screenshot);
    let pid_file = dir.path().join("browser.pid");
    let mut command = Command::new(Path::new(ROOT).join("scripts/browser-tools.sh"));
    command.arg("check").arg(url).arg(&screenshot);
    command.arg(&pid_file).args(flags).args(kinds);
    let check = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("scripts/browser-tools.sh runs");
    let mut browser = BrowserGuard { check, pid_file };
    let (lines, said) = std::sync::mpsc::channel();
    let stdout = BufReader::new(browser.check.stdout.take().unwrap());
    let reader = std::thread::spawn(move || {
        for line in stdout.lines().map_while(Result::ok) {
            let _ = lines.send(line);
        }
    });
    let (started, mut on_ready, mut last) = (Instant::now(), Some(on_ready), String::new());
    while browser.check.try_wait().unwrap().is_none() || !reader.is_finished() {
        assert!(
            started.elapsed() < BROWSER_GUARD,
            "the browser check did not end"
        );
        match said.recv_timeout(Duration::from_millis(100)) {
            Ok(line) if line == "ready" => on_ready.take().expect("one ready")(),
            Ok(line) => last = line,
            Err(_) => {}
        }
    }
    last = said.try_iter().last().unwrap_or(last);
    let mut failure = String::new();
    let check = &mut browser.check;
    let stderr = check.stderr.as_mut().unwrap();
    stderr.read_to_string(&mut failure).unwrap();
    assert!(check.wait().unwrap().success(), "{}", failure.trim_end());
    let seen: Value = serde_json::from_str(&last).expect("a JSON line");
    assert_eq!(seen["graph"], serde_json::json!(kinds));
    let png = std::fs::read(&screenshot).expect("a screenshot");
    assert!(png.starts_with(b"\x89PNG"), "not a PNG");
    eprintln!("the dashboard's screenshot: {}", screenshot.display());
    seen
}

#[test]
fn the_dashboard_of_a_running_job_shows_its_graph_charts_and_snapshots_in_a_real_browser() {
    let dir = tempfile::tempdir().unwrap();
    let checkpoints = dir.path().join("checkpoints");
    let snapshots = ["--checkpoint-dir", checkpoints.to_str().unwrap()];
    let mut args = query(dir.path(), "rate:rows_per_sec=2000,keys=4", &snapshots);
    args.extend(["--snapshot-interval".into(), "300ms".into()]);
    let kinds = operators(&args);
    args.extend(["--ui".into(), "127.0.0.1:0".into()]);
    let mut job = ChildGuard::spawn(&strs(&args), Stdio::null());
    let url = dashboard_url(&mut job);
    let seen = check_in_browser(&url, &kinds, &["--snapshots"], "dashboard.png", || {});
    assert!(seen["snapshotRows"].as_u64().unwrap() >= 1, "{seen}");
}

#[test]
fn process_0_of_a_cluster_shows_every_process_on_its_dashboard() {
    let dir = tempfile::tempdir().unwrap();
    let run = query(dir.path(), "rate:rows_per_sec=2000,keys=4", &[]);
    // A cluster's processes run the operators of a single process.
    let kinds = operators(&run);
    let mut args = vec!["cluster", "--local", "2", "--"];
    args.extend(strs(&run));
    args.extend(["--ui", "127.0.0.1:0"]);
    let mut job = ChildGuard::spawn(&args, Stdio::null());
    let url = dashboard_url(&mut job);
    let flags = ["--processes", "2"];
    check_in_browser(&url, &kinds, &flags, "dashboard-cluster.png", || {});
}

#[test]
fn the_dashboard_shows_the_error_the_job_stopped_with() {
    let dir = tempfile::tempdir().unwrap();
    let mut args = query(dir.path(), "-", &["--format", "jsonl"]);
    let kinds = operators(&args);
    args.extend(["--ui".into(), "127.0.0.1:0".into()]);
    let mut job = ChildGuard::spawn(&strs(&args), Stdio::piped());
    let url = dashboard_url(&mut job);
    let mut stdin = job.0.stdin.take().unwrap();
    let flags = ["--error", "stdin:2: "];
    let seen = check_in_browser(&url, &kinds, &flags, "dashboard-error.png", || {
        use std::io::Write;
        stdin
            .write_all(b"{\"ts\": 1, \"key\": \"a\"}\nnot json\n")
            .expect("the job reads its input");
        stdin.flush().unwrap();
    });
    let (code, _, _) = job.finish();
    assert_eq!(code, Some(2), "{seen}");
}

/// A 2,500-record input paced at 1,000/s.
const BOUNDED: &str = "rate:rows_per_sec=1000,count=2500";

/// `tideflow run` on [`BOUNDED`], under a pseudo-terminal
/// (`script`), with `extra`; what the terminal received.
fn on_a_terminal(dir: &Path, extra: &str) -> String {
    let args = query(dir, BOUNDED, &[]);
    // A terminal as wide as the whole line (script's has no size).
    let command = format!(
        "stty rows 50 cols 250; {} {} {extra}",
        env!("CARGO_BIN_EXE_tideflow"),
        args.join(" ")
    );
    let out = Command::new("script")
        .args(["-qfec", &command, "/dev/null"])
        .env("TERM", "xterm")
        .current_dir(ROOT)
        .stdin(Stdio::null())
        .output()
        .expect("script(1) from util-linux is needed for the status-line tests");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{text}");
    assert!(text.contains("tideflow: 2500 records read"), "{text}");
    text
}

#[test]
fn the_status_line_shows_on_a_terminal_and_is_cleared_at_the_end() {
    let dir = tempfile::tempdir().unwrap();
    let text = on_a_terminal(dir.path(), "");
    let start = text
        .rfind("% read, ")
        .unwrap_or_else(|| panic!("no status line: {text:?}"));
    let last = start + text[start..].find(" late").expect("the late count");
    let line = &text[start..last];
    assert!(
        line.contains(" records read, ")
            && line.contains("/s, watermark ")
            && line.contains(", lag "),
        "{line:?}"
    );
    // Cleared (erase in line) before the summary.
    let summary = text.find("tideflow: 2500 records read").unwrap();
    assert!(text[last..summary].contains("\x1b[2K"), "{text:?}");
}

#[test]
fn the_status_line_is_off_with_quiet_and_when_stderr_is_not_a_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let text = on_a_terminal(dir.path(), "--quiet");
    assert!(
        !text.contains("% read") && !text.contains('\x1b'),
        "{text:?}"
    );

    let stderr_path = dir.path().join("stderr.txt");
    let args = query(dir.path(), BOUNDED, &[]);
    let status = Command::new(env!("CARGO_BIN_EXE_tideflow"))
        .args(&args)
        .current_dir(ROOT)
        .stderr(File::create(&stderr_path).unwrap())
        .status()
        .unwrap();
    assert!(status.success());
    let stderr = std::fs::read_to_string(&stderr_path).unwrap();
    assert!(
        stderr.starts_with("tideflow: 2500 records read"),
        "{stderr:?}"
    );
    assert!(
        !stderr.contains("% read") && !stderr.contains('\x1b'),
        "{stderr:?}"
    );
}

#[test]
fn a_bad_ui_address_is_one_line_naming_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let args = query(
        dir.path(),
        "rate:rows_per_sec=10,count=10",
        &["--ui", "nowhere"],
    );
    let args = strs(&args);
    let stderr = crate::support::fails(&args, 2);
    assert!(
        stderr.starts_with("tideflow: --ui: cannot listen on nowhere"),
        "{stderr}"
    );
}

#[test]
fn tideflow_sql_serves_the_dashboard_too() {
    let statements = "CREATE TABLE events (ts BIGINT, user STRING, amount BIGINT, price DOUBLE, \
        WATERMARK FOR ts AS ts - INTERVAL '5' SECOND) \
        WITH ('connector' = 'file', 'path' = 'tests/fixtures/spark/events.jsonl'); \
        SELECT user, COUNT(*) AS n FROM events GROUP BY user, window(ts, '10 seconds')";
    let out = tideflow(&["sql", "--ui", "127.0.0.1:0", "-e", statements]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.starts_with("tideflow: dashboard at http://127.0.0.1:"),
        "{stderr}"
    );
    assert!(!out.stdout.is_empty());
}
