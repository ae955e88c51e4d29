//! Live sources: a TCP socket and standard input read until their peer closes them, a watched
//! directory read until the process is stopped, and the foreach sink. Every wait is bounded
//! and every child process is killed, even when a test fails.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tideflow::aggregate::Count;
use tideflow::sink::ForeachSink;
use tideflow::source::{JsonLines, SocketSource};
use tideflow::{Config, Window, WindowResult};

use crate::support::{accept, run_args, ChildGuard, DEADLINE};

const EVENTS: &str = "{\"ts\":1000,\"k\":\"a\"}\n{\"ts\":2000,\"k\":\"a\"}\n\n\
                      {\"ts\":12000,\"k\":\"b\"}\n{\"ts\":3000,\"k\":\"b\"}\n";

const WINDOWS: &str = "{\"key\":\"a\",\"window_start\":0,\"window_end\":10000,\"count\":2}\n\
                       {\"key\":\"b\",\"window_start\":0,\"window_end\":10000,\"count\":1}\n\
                       {\"key\":\"b\",\"window_start\":10000,\"window_end\":20000,\"count\":1}\n";

#[test]
fn socket_input_is_read_until_the_peer_closes() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let input = format!("tcp://{}", listener.local_addr().unwrap());
    let args = run_args(
        &input,
        &[
            "--format",
            "jsonl",
            "--watermark-delay",
            "10s",
            "--workers",
            "2",
        ],
    );
    let mut child = ChildGuard::spawn(&args, Stdio::null());
    let mut peer = accept(&listener);
    for line in EVENTS.lines() {
        peer.write_all(format!("{line}\n").as_bytes()).unwrap();
        peer.flush().unwrap();
    }
    drop(peer);
    let (code, stdout, stderr) = child.finish();
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(stdout, WINDOWS, "{stderr}");
    assert!(stderr.contains("4 records read"), "{stderr}");
}

#[test]
fn socket_input_needs_a_format_and_a_server() {
    let line = crate::support::fails(&run_args("tcp://127.0.0.1:1", &[]), 2);
    assert!(line.contains("--format"), "{line}");
    // Nothing listens on a port just freed: the error names the address.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    drop(listener);
    let input = format!("tcp://{address}");
    let line = crate::support::fails(&run_args(&input, &["--format", "jsonl"]), 3);
    assert!(
        line.contains(&format!("cannot connect to {input}")),
        "{line}"
    );
}

#[test]
fn socket_bad_lines_name_the_address_and_line() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let input = format!("tcp://{}", listener.local_addr().unwrap());
    let args = run_args(&input, &["--format", "jsonl"]);
    let mut child = ChildGuard::spawn(&args, Stdio::null());
    let mut peer = accept(&listener);
    peer.write_all(b"{\"ts\":1000,\"k\":\"a\"}\n{\"ts\":\n")
        .unwrap();
    drop(peer);
    let (code, stdout, stderr) = child.finish();
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stdout.is_empty(), "{stdout}");
    assert!(stderr.contains(&format!("{input}:2: ")), "{stderr}");
}

#[test]
fn socket_source_feeds_every_worker_and_a_foreach_sink() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let feeder = std::thread::spawn(move || {
        let mut peer = accept(&listener);
        for t in 0..1000u64 {
            peer.write_all(format!("{t}\n").as_bytes()).unwrap();
        }
    });
    let rows = Arc::new(Mutex::new(Vec::new()));
    let output = Arc::clone(&rows);
    let report = tideflow::execute(Config::workers(2), move |flow| {
        let output = Arc::clone(&output);
        let worker = flow.worker_index();
        flow.source(SocketSource::connect(
            address.clone(),
            JsonLines::<u64>::serde(),
        ))
        .with_event_time(|t| *t)
        .with_watermark(Duration::ZERO)
        .map(|t| (t % 10, t))
        .into_keyed()
        .window(Window::tumbling(Duration::from_millis(100))?)
        .aggregate(Count)
        .sink(ForeachSink::new(move |row: WindowResult<u64, u64>| {
            output
                .lock()
                .unwrap()
                .push((worker, row.key, row.start, row.value));
        }));
        Ok(())
    })
    .unwrap();
    feeder.join().unwrap();
    let rows = rows.lock().unwrap().clone();
    assert_eq!(report.records_in, 1000);
    assert!(rows.iter().any(|row| row.0 == 1), "no window on worker 1");
    let mut windows: Vec<(u64, u64, u64)> = rows.iter().map(|r| (r.1, r.2, r.3)).collect();
    windows.sort();
    let expected: Vec<(u64, u64, u64)> = (0..10u64)
        .flat_map(|start| (0..10u64).map(move |key| (key, start * 100, 10)))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    assert_eq!(windows, expected);
}

#[test]
fn stdin_input_is_read_until_end_of_file() {
    let args = run_args("-", &["--format", "jsonl", "--watermark-delay", "10s"]);
    let mut child = ChildGuard::spawn(&args, Stdio::piped());
    let mut stdin = child.0.stdin.take().unwrap();
    stdin.write_all(EVENTS.as_bytes()).unwrap();
    drop(stdin);
    let (code, stdout, stderr) = child.finish();
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(stdout, WINDOWS, "{stderr}");
}

/// Puts a file into `dir` whole: written under a hidden name, then renamed.
fn add_file(dir: &Path, name: &str, contents: &str) {
    let hidden = dir.join(format!(".{name}.tmp"));
    std::fs::write(&hidden, contents).unwrap();
    std::fs::rename(&hidden, dir.join(name)).unwrap();
}

/// Waits (bounded) until `path` holds at least `lines` lines, and returns its text.
fn wait_for_lines(path: &Path, lines: usize, child: &mut ChildGuard) -> String {
    let start = Instant::now();
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if text.lines().count() >= lines {
            return text;
        }
        if let Some(status) = child.0.try_wait().unwrap() {
            let mut stderr = String::new();
            child
                .0
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut stderr)
                .unwrap();
            panic!("tideflow exited early ({status}): {stderr}");
        }
        assert!(
            start.elapsed() < DEADLINE,
            "{} has {text:?}, not {lines} lines",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn watched_directory_reads_new_files_and_closes_their_windows() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    std::fs::create_dir(&input).unwrap();
    add_file(
        &input,
        "00.jsonl",
        "{\"ts\":1000,\"k\":\"a\"}\n{\"ts\":2000,\"k\":\"a\"}\n",
    );
    let output = dir.path().join("out.jsonl");
    let input_arg = input.to_string_lossy().into_owned();
    let output_arg = output.to_string_lossy().into_owned();
    let args = run_args(
        &input_arg,
        &[
            "--watch",
            "50ms",
            "--format",
            "jsonl",
            "--output",
            &output_arg,
        ],
    );
    let mut child = ChildGuard::spawn(&args, Stdio::null());
    // The first file's window [0, 10 s) stays open: nothing has passed it yet.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(std::fs::read_to_string(&output).unwrap_or_default(), "");
    add_file(&input, "01.jsonl", "{\"ts\":11000,\"k\":\"b\"}\n");
    let first = wait_for_lines(&output, 1, &mut child);
    assert_eq!(
        first,
        "{\"key\":\"a\",\"window_start\":0,\"window_end\":10000,\"count\":2}\n"
    );
    add_file(&input, "02.jsonl", "{\"ts\":25000,\"k\":\"c\"}\n");
    let second = wait_for_lines(&output, 2, &mut child);
    assert_eq!(
        second,
        "{\"key\":\"a\",\"window_start\":0,\"window_end\":10000,\"count\":2}\n\
         {\"key\":\"b\",\"window_start\":10000,\"window_end\":20000,\"count\":1}\n"
    );
    // Continuous mode runs until it is stopped.
    assert!(child.0.try_wait().unwrap().is_none());
    child.0.kill().unwrap();
}

#[test]
fn watch_applies_to_directories_only() {
    let line = crate::support::fails(&run_args("-", &["--format", "jsonl", "--watch", "1s"]), 2);
    assert!(line.contains("--watch"), "{line}");
}
