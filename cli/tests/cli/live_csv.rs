//! CSV over the live inputs: a TCP socket (the test is the server) and standard input, read
//! through the command line as a CSV file is, bad rows under each `--on-error` policy, a
//! rejected header, the record size limit, and the `SocketSource::connect_csv` API. Every
//! wait is bounded and every child process is killed, even when a test fails.

use std::io::Write;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tideflow::sink::MemorySink;
use tideflow::source::{Csv, OnError, SocketSource};
use tideflow::{Config, Error};

use crate::support::{accept, run_args, tideflow, write, ChildGuard};

/// Which live input a test feeds.
#[derive(Clone, Copy, Debug)]
enum Via {
    Tcp,
    Stdin,
}

const BOTH: [Via; 2] = [Via::Tcp, Via::Stdin];

/// How one `tideflow run` over a live input ended.
struct Run {
    /// The input's name in errors and dead letters: `tcp://ADDR` or `stdin`.
    name: String,
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    /// Asserts a clean exit and returns the output.
    fn succeeded(&self) -> &str {
        assert_eq!(self.code, Some(0), "{}: {}", self.name, self.stderr);
        &self.stdout
    }

    /// Asserts a failure with exit code 2, no output, and one error line, which it returns.
    fn failed(&self) -> &str {
        assert_eq!(self.code, Some(2), "{}: {}", self.name, self.stderr);
        assert!(
            self.stdout.is_empty(),
            "output before the error: {}",
            self.stdout
        );
        assert!(
            !self.stderr.contains("panicked") && !self.stderr.contains("backtrace"),
            "{}",
            self.stderr
        );
        assert_eq!(self.stderr.trim_end().lines().count(), 1, "{}", self.stderr);
        assert!(self.stderr.starts_with("tideflow: "), "{}", self.stderr);
        &self.stderr
    }
}

/// Writes `data` in small pieces, so that records straddle reads. A job that stops early
/// (a failed run) closes its input, so a failed write ends the sending.
fn send(to: &mut impl Write, data: &[u8]) {
    for piece in data.chunks(97) {
        if to.write_all(piece).and_then(|()| to.flush()).is_err() {
            return;
        }
    }
}

/// Runs `tideflow run --format csv` (keyed by `k`, 10 s tumbling windows, a count, then
/// `extra`) over `via`, sends it `data` and closes the input.
fn run_live(via: Via, data: &[u8], extra: &[&str]) -> Run {
    let extra = [&["--format", "csv"][..], extra].concat();
    let (name, code, stdout, stderr) = match via {
        Via::Tcp => {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let name = format!("tcp://{}", listener.local_addr().unwrap());
            let mut child = ChildGuard::spawn(&run_args(&name, &extra), Stdio::null());
            let mut peer = accept(&listener);
            send(&mut peer, data);
            drop(peer);
            let (code, stdout, stderr) = child.finish();
            (name, code, stdout, stderr)
        }
        Via::Stdin => {
            let mut child = ChildGuard::spawn(&run_args("-", &extra), Stdio::piped());
            let mut stdin = child.0.stdin.take().unwrap();
            send(&mut stdin, data);
            drop(stdin);
            let (code, stdout, stderr) = child.finish();
            ("stdin".to_string(), code, stdout, stderr)
        }
    };
    Run {
        name,
        code,
        stdout,
        stderr,
    }
}

/// Runs the same query as [`run_live`] over `data` written to a .csv file.
fn run_file(data: &str, extra: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "events.csv", data);
    let out = tideflow(&run_args(&path, extra));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    String::from_utf8(out.stdout).unwrap()
}

/// `rows` rows in event-time order give or take 5 s, with CRLF and LF line ends, blank lines,
/// and quoted keys (one holding a comma, one a newline).
fn events(rows: u64) -> String {
    let keys = ["a", "\"b, c\"", "\"d\ne\"", "f"];
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let mut text = String::from("ts,k,v\r\n");
    for i in 0..rows {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let ts = i * 20 + state % 5000;
        let key = keys[(state >> 20) as usize % keys.len()];
        let end = if i % 3 == 0 { "\r\n" } else { "\n" };
        text.push_str(&format!("{ts},{key},{}{end}", state % 100));
        if i % 500 == 0 {
            text.push('\n');
        }
    }
    text
}

#[test]
fn csv_over_each_live_input_gives_the_rows_of_the_same_csv_file() {
    let data = events(3000);
    let query = ["--agg", "sum:v", "--watermark-delay", "10s"];
    for workers in ["1", "2"] {
        let extra = [&query[..], &["--workers", workers]].concat();
        let expected = run_file(&data, &extra);
        assert!(expected.lines().count() >= 4 * 6, "{expected}");
        assert!(expected.contains("\"key\":\"d\\ne\""), "{expected}");
        for via in BOTH {
            let run = run_live(via, data.as_bytes(), &extra);
            assert_eq!(run.succeeded(), expected, "{via:?}, {workers} workers");
            assert!(run.stderr.contains("3000 records read"), "{}", run.stderr);
        }
    }
}

/// Good rows around a quoted key spanning lines 3 and 4, a row with too few fields (line 5)
/// and one with a bad time (line 7).
const WITH_BAD_ROWS: &str =
    "ts,k,v\n1000,a,1\n2000,\"b\nc\",2\n3000,a\n12000,a,3\nnoon,a,4\n15000,a,5\n";
const WITHOUT_BAD_ROWS: &str = "ts,k,v\n1000,a,1\n2000,\"b\nc\",2\n12000,a,3\n15000,a,5\n";
const FEW_FIELDS: &str = "found record with 2 fields, but the header has 3 fields";

#[test]
fn bad_csv_rows_follow_the_on_error_policy() {
    let dir = tempfile::tempdir().unwrap();
    let expected = run_file(WITHOUT_BAD_ROWS, &[]);
    assert_eq!(expected.lines().count(), 3, "{expected}");
    for via in BOTH {
        for policy in [&["--on-error", "fail"][..], &[]] {
            let run = run_live(via, WITH_BAD_ROWS.as_bytes(), policy);
            let line = run.failed();
            assert!(
                line.contains(&format!("{}:5: {FEW_FIELDS}", run.name)),
                "{line}"
            );
        }

        let run = run_live(via, WITH_BAD_ROWS.as_bytes(), &["--on-error", "skip"]);
        assert_eq!(run.succeeded(), expected, "{via:?}");
        assert!(
            run.stderr.contains("4 records read") && run.stderr.contains("2 bad records skipped"),
            "{}",
            run.stderr
        );

        let dead = dir.path().join(format!("{via:?}.dead.jsonl"));
        let policy = format!("dead-letter:{}", dead.display());
        let run = run_live(via, WITH_BAD_ROWS.as_bytes(), &["--on-error", &policy]);
        assert_eq!(run.succeeded(), expected, "{via:?}");
        assert!(
            run.stderr.contains("2 bad records dead-lettered"),
            "{}",
            run.stderr
        );
        let letters: Vec<serde_json::Value> = std::fs::read_to_string(&dead)
            .unwrap()
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect();
        assert_eq!(letters.len(), 2, "{letters:?}");
        for (letter, (line, reason, raw)) in letters.iter().zip([
            (5, FEW_FIELDS, "3000,a"),
            (7, "time field 'ts'", "noon,a,4"),
        ]) {
            assert_eq!(letter["path"], run.name.as_str(), "{letter}");
            assert_eq!(letter["line"], line, "{letter}");
            assert!(
                letter["reason"].as_str().unwrap().contains(reason),
                "{letter}"
            );
            assert_eq!(letter["raw"], raw, "{letter}");
        }
    }
}

#[test]
fn a_header_without_the_time_column_or_over_the_limit_is_a_one_line_error() {
    // Whatever the policy: there is nothing to decode the rows with.
    for (via, workers) in [(Via::Tcp, "1"), (Via::Stdin, "2")] {
        let data = b"\ntime,k,v\n1000,a,1\n";
        let run = run_live(via, data, &["--workers", workers, "--on-error", "skip"]);
        let line = run.failed();
        let expected = format!(
            "tideflow: {}:2: no column 'ts' (--time-field) in the CSV header",
            run.name
        );
        assert!(line.starts_with(&expected), "{line}");

        // A header over the size limit cannot be read either.
        let extra = ["--max-record-bytes", "4", "--on-error", "skip"];
        let run = run_live(via, b"ts,k,v\n1000,a,1\n", &extra);
        let line = run.failed();
        let expected = format!(
            "tideflow: {}:1: cannot read the CSV header: record is longer than 4 bytes",
            run.name
        );
        assert_eq!(line.trim_end(), expected);
    }
}

#[test]
fn over_long_csv_records_are_bad_records() {
    let dir = tempfile::tempdir().unwrap();
    let long_row = format!("2000,{},1", "x".repeat(100));
    // A quoted field spanning lines counts whole: 41 bytes over lines 4 to 6.
    let long_quoted = format!(
        "3000,\"{}\n{}\n{}\",1",
        "y".repeat(10),
        "y".repeat(10),
        "y".repeat(10)
    );
    let data = format!("ts,k,v\n1000,a,1\n{long_row}\n{long_quoted}\n4000,a,1\n");
    let max = ["--max-record-bytes", "32"];
    for via in BOTH {
        let run = run_live(via, data.as_bytes(), &max);
        let line = run.failed();
        let at = format!("{}:3: record is longer than 32 bytes", run.name);
        assert!(line.contains(&at), "{line}");

        let dead = dir.path().join(format!("{via:?}.dead.jsonl"));
        let policy = format!("dead-letter:{}", dead.display());
        let run = run_live(
            via,
            data.as_bytes(),
            &[&max[..], &["--on-error", &policy]].concat(),
        );
        assert_eq!(
            run.succeeded(),
            "{\"key\":\"a\",\"window_start\":0,\"window_end\":10000,\"count\":2}\n"
        );
        let letters: Vec<serde_json::Value> = std::fs::read_to_string(&dead)
            .unwrap()
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect();
        assert_eq!(letters.len(), 2, "{letters:?}");
        for (letter, (line, record)) in letters.iter().zip([(3, &long_row), (4, &long_quoted)]) {
            assert_eq!(letter["line"], line, "{letter}");
            assert_eq!(
                letter["reason"], "record is longer than 32 bytes",
                "{letter}"
            );
            // The first 32 bytes, marked as cut, with the record's whole length.
            assert_eq!(letter["raw"], record[..32], "{letter}");
            assert_eq!(letter["truncated"], true, "{letter}");
            assert_eq!(letter["length"], record.len(), "{letter}");
        }
    }
}

#[test]
fn live_inputs_need_a_format() {
    let out = tideflow(&run_args("-", &[]));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("--format jsonl or --format csv"),
        "{stderr}"
    );
}

#[derive(serde::Deserialize, serde::Serialize, Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Click {
    ts: u64,
    user: String,
}

/// Serves `data` to the first client of a new listener, then closes the connection; returns
/// the listener's address and the serving thread.
fn serve(data: &'static [u8]) -> (String, std::thread::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let server = std::thread::spawn(move || send(&mut accept(&listener), data));
    (address, server)
}

#[test]
fn socket_csv_source_decodes_rows_with_serde_on_every_worker_count() {
    let data = b"user,ts\r\nann,1000\n\"bob\njr\",2000\nann,soon\n\"eve, sr\",3000\n";
    for workers in [1, 2] {
        let (address, server) = serve(data);
        let sink = MemorySink::new();
        let output = sink.clone();
        let report = tideflow::execute(Config::workers(workers), move |flow| {
            let source = SocketSource::connect_csv(address.clone(), Csv::<Click>::serde())
                .on_error(OnError::Skip);
            flow.source(source)
                .with_event_time(|click| click.ts)
                .with_watermark(Duration::ZERO)
                .sink(output.clone());
            Ok(())
        })
        .unwrap();
        server.join().unwrap();
        let mut clicks = sink.take();
        clicks.sort();
        let click = |ts, user: &str| Click {
            ts,
            user: user.to_string(),
        };
        let expected = [
            click(1000, "ann"),
            click(2000, "bob\njr"),
            click(3000, "eve, sr"),
        ];
        assert_eq!(clicks, expected);
        assert_eq!((report.records_in, report.records_skipped), (3, 1));
    }
}

#[test]
fn socket_csv_header_the_decoder_rejects_stops_the_job_with_the_address() {
    let (address, server) = serve(b"ts,user\n1000,ann\n");
    let input = format!("tcp://{address}");
    let result = tideflow::execute(Config::workers(2), move |flow| {
        let format = Csv::<Click>::with_decoder(|_| Err("no column 'time'".into()));
        flow.source(SocketSource::connect_csv(address.clone(), format).on_error(OnError::Skip))
            .with_event_time(|click| click.ts)
            .with_watermark(Duration::ZERO)
            .sink(MemorySink::new());
        Ok(())
    });
    server.join().unwrap();
    match result {
        Err(Error::Input { path, line, reason }) => {
            assert_eq!((path, line), (PathBuf::from(input), 1));
            assert_eq!(reason, "no column 'time'");
        }
        other => panic!("not a header error: {other:?}"),
    }
}

#[test]
fn a_quote_left_open_at_the_end_of_a_live_csv_input_is_a_bad_record() {
    // Without the check the last row would count, its cell running to the end: "2\n".
    let data = b"ts,k,v\n1000,a,1\n2000,b,\"2\n";
    for via in BOTH {
        let run = run_live(via, data, &[]);
        let line = run.failed();
        assert!(
            line.contains(&format!("{}:3:", run.name)) && line.contains("quote"),
            "{line}"
        );
        let run = run_live(via, data, &["--on-error", "skip"]);
        assert_eq!(
            run.succeeded(),
            "{\"key\":\"a\",\"window_start\":0,\"window_end\":10000,\"count\":1}\n"
        );
    }
}
