//! Bad input records under each `--on-error` policy: `fail` stops with the file and line,
//! `skip` drops and counts them, `dead-letter:PATH` writes each one to PATH as a JSON line.
//! Under `skip` and `dead-letter` the output must equal that of the input without its bad
//! records.

use std::path::Path;
use std::process::Output;

use crate::support::{self, fails, tideflow};
use std::time::Duration;

use tideflow::sink::MemorySink;
use tideflow::source::{FileSource, JsonLines, OnError};
use tideflow::Config;

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn succeeds(args: &[&str]) -> Output {
    let out = tideflow(args);
    assert!(out.status.success(), "args {args:?}: {}", stderr(&out));
    out
}

/// `tideflow run` with a sum of `v` and a watermark delay covering the files' disorder.
fn run_args<'a>(input: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let query: &[&str] = &["--agg", "sum:v", "--watermark-delay", "30s"];
    support::run_args(input, &[query, extra].concat())
}

/// One kind of bad record, placed twice among good ones.
struct Case {
    name: &'static str,
    /// The file's header line, if any (CSV).
    header: Option<&'static str>,
    good: [&'static str; 4],
    bad: Vec<u8>,
    /// A substring of the reason the bad record must be reported with.
    reason: &'static str,
    /// `--max-record-bytes`, if not the default.
    max: Option<usize>,
}

impl Case {
    fn json(name: &'static str, bad: &[u8], reason: &'static str) -> Case {
        Case {
            name,
            header: None,
            good: [
                r#"{"ts":1000,"k":"a","v":1}"#,
                r#"{"ts":2000,"k":"b","v":2}"#,
                r#"{"ts":12000,"k":"a","v":3}"#,
                r#"{"ts":15000,"k":"a","v":4}"#,
            ],
            bad: bad.to_vec(),
            reason,
            max: None,
        }
    }

    fn csv(name: &'static str, bad: &[u8], reason: &'static str) -> Case {
        Case {
            name,
            header: Some("ts,k,v"),
            good: ["1000,a,1", "2000,b,2", "12000,a,3", "15000,a,4"],
            bad: bad.to_vec(),
            reason,
            max: None,
        }
    }

    fn max(mut self, max: usize) -> Case {
        self.max = Some(max);
        self
    }

    /// The file's lines: good, good, bad, good, bad, good (after the header).
    fn lines(&self, with_bad: bool) -> (Vec<u8>, Vec<u64>) {
        let mut lines: Vec<Vec<u8>> = self.header.iter().map(|h| h.as_bytes().to_vec()).collect();
        let mut bad_lines = Vec::new();
        let g = |i: usize| self.good[i].as_bytes().to_vec();
        for line in [Some(g(0)), Some(g(1)), None, Some(g(2)), None, Some(g(3))] {
            match line {
                Some(good) => lines.push(good),
                None if with_bad => {
                    lines.push(self.bad.clone());
                    bad_lines.push(lines.len() as u64);
                }
                None => {}
            }
        }
        (
            lines.join(&b"\n"[..]).into_iter().chain(*b"\n").collect(),
            bad_lines,
        )
    }

    fn extension(&self) -> &'static str {
        if self.header.is_some() {
            "csv"
        } else {
            "jsonl"
        }
    }

    /// Checks the record a dead letter holds: its exact bytes, as text (`raw`) or, when they
    /// are not UTF-8, as base64 (`raw_base64`), cut at the size limit and then marked with
    /// the record's whole length.
    fn check_letter(&self, letter: &serde_json::Value) {
        use base64::Engine as _;
        let max = self.max.unwrap_or(usize::MAX).min(self.bad.len());
        let kept = &self.bad[..max];
        match std::str::from_utf8(kept) {
            Ok(text) => assert_eq!(letter["raw"], text, "{}", self.name),
            Err(_) => assert_eq!(
                letter["raw_base64"],
                base64::engine::general_purpose::STANDARD.encode(kept),
                "{}",
                self.name
            ),
        }
        let cut = max < self.bad.len();
        assert_eq!(letter.get("truncated").is_some(), cut, "{}", self.name);
        if cut {
            assert_eq!(letter["truncated"], true, "{}", self.name);
            assert_eq!(letter["length"], self.bad.len(), "{}", self.name);
        }
    }
}

fn cases() -> Vec<Case> {
    let long_json = format!(r#"{{"ts":1500,"k":"{}","v":1}}"#, "x".repeat(200));
    let long_csv = format!("1500,{},1", "x".repeat(200));
    vec![
        Case::json("malformed", br#"{"ts":1500,"k":"#, "EOF"),
        Case::json("not_object", b"[1,2]", "a JSON object"),
        Case::json(
            "wrong_type",
            br#"{"ts":1500,"k":"a","v":"ten"}"#,
            "field 'v' must be a number",
        ),
        Case::json(
            "missing_time",
            br#"{"k":"a","v":1}"#,
            "missing time field 'ts'",
        ),
        Case::json(
            "invalid_utf8",
            b"{\"ts\":1500,\"k\":\"\xff\xfe\",\"v\":1}",
            "invalid UTF-8",
        ),
        Case::json(
            "over_long",
            long_json.as_bytes(),
            "record is longer than 64 bytes",
        )
        .max(64),
        Case::json("negative_time", br#"{"ts":-5,"k":"a"}"#, "negative"),
        Case::json(
            "out_of_range_time",
            br#"{"ts":99999999999999999,"k":"a"}"#,
            "out of range",
        ),
        Case::json(
            "bad_rfc3339",
            br#"{"ts":"2024-13-45T00:00:00Z","k":"a"}"#,
            "RFC 3339",
        ),
        Case::csv(
            "short_row",
            b"1500,a",
            "found record with 2 fields, but the header has 3 fields",
        ),
        Case::csv(
            "long_row",
            b"1500,a,1,extra",
            "found record with 4 fields, but the header has 3 fields",
        ),
        Case::csv(
            "csv_wrong_type",
            b"1500,a,ten",
            "field 'v' must be a number",
        ),
        Case::csv("csv_missing_time", b",a,1", "missing time field 'ts'"),
        Case::csv("csv_invalid_utf8", b"1500,\xff,1", "not valid UTF-8"),
        Case::csv("csv_negative_time", b"-5,a,1", "negative"),
        Case::csv("csv_bad_rfc3339", b"2024-02-30T25:00:00Z,a,1", "RFC 3339"),
        Case::csv(
            "csv_over_long",
            long_csv.as_bytes(),
            "record is longer than 64 bytes",
        )
        .max(64),
    ]
}

#[test]
fn each_bad_record_kind_under_each_policy() {
    let dir = tempfile::tempdir().unwrap();
    for case in cases() {
        let name = case.name;
        let ext = case.extension();
        let (contents, bad_lines) = case.lines(true);
        let (clean_contents, no_bad) = case.lines(false);
        assert_eq!((bad_lines.len(), no_bad.len()), (2, 0));
        let input = dir.path().join(format!("{name}.{ext}"));
        std::fs::write(&input, &contents).unwrap();
        let clean = dir.path().join(format!("{name}_clean.{ext}"));
        std::fs::write(&clean, &clean_contents).unwrap();
        let input = input.to_string_lossy().into_owned();
        let clean = clean.to_string_lossy().into_owned();
        let max = case.max.map(|m| m.to_string());
        let mut limit = Vec::new();
        if let Some(max) = &max {
            limit = vec!["--max-record-bytes", max.as_str()];
        }

        // The clean file is good, and its output is what skipping must produce.
        let expected = succeeds(&run_args(&clean, &limit)).stdout;
        let expected = String::from_utf8(expected).unwrap();
        assert_eq!(expected.lines().count(), 3, "{name}: {expected}");

        // fail, explicitly and by default: the first bad record stops the run.
        let mut fail_args = limit.clone();
        fail_args.extend(["--on-error", "fail"]);
        for extra in [&fail_args, &limit] {
            let line = fails(&run_args(&input, extra), 2);
            let at = format!("{name}.{ext}:{}: ", bad_lines[0]);
            assert!(
                line.contains(&at) && line.contains(case.reason),
                "{name}: {line}"
            );
        }

        // skip: the output of the clean file, and both bad records counted.
        let mut skip_args = limit.clone();
        skip_args.extend(["--on-error", "skip"]);
        let out = succeeds(&run_args(&input, &skip_args));
        assert_eq!(String::from_utf8_lossy(&out.stdout), expected, "{name}");
        let summary = stderr(&out);
        assert!(
            summary.contains("4 records read")
                && summary.contains("2 bad records skipped")
                && summary.contains("0 bad records dead-lettered")
                && summary.contains("0 late records dropped")
                && summary.trim_end().lines().count() == 1,
            "{name}: {summary}"
        );

        // dead-letter: the same output, and one JSON line per bad record.
        let dead = dir.path().join(format!("{name}.dead.jsonl"));
        let policy = format!("dead-letter:{}", dead.display());
        let mut dead_args = limit.clone();
        dead_args.extend(["--on-error", policy.as_str()]);
        let out = succeeds(&run_args(&input, &dead_args));
        assert_eq!(String::from_utf8_lossy(&out.stdout), expected, "{name}");
        let summary = stderr(&out);
        assert!(
            summary.contains("4 records read")
                && summary.contains("0 bad records skipped")
                && summary.contains("2 bad records dead-lettered"),
            "{name}: {summary}"
        );
        let letters = std::fs::read_to_string(&dead).unwrap();
        let letters: Vec<serde_json::Value> = letters
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(letters.len(), 2, "{name}: {letters:?}");
        for (letter, line) in letters.iter().zip(&bad_lines) {
            assert_eq!(letter["path"], input.as_str(), "{name}");
            assert_eq!(letter["line"], *line, "{name}: {letter}");
            let reason = letter["reason"].as_str().unwrap();
            assert!(reason.contains(case.reason), "{name}: {reason}");
            case.check_letter(letter);
        }
    }
}

#[test]
fn an_over_long_line_is_not_read_whole_and_reading_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    // 8 MiB on one line, far over a 1 KiB limit: skipped, the next line still read.
    let mut contents = String::from("{\"ts\":1000,\"k\":\"a\",\"v\":1}\n{\"ts\":2000,\"k\":\"");
    contents.push_str(&"y".repeat(8 << 20));
    contents.push_str("\"}\n{\"ts\":3000,\"k\":\"a\",\"v\":2}\n");
    let input = dir.path().join("huge.jsonl");
    std::fs::write(&input, contents).unwrap();
    let input = input.to_string_lossy().into_owned();
    let dead = dir.path().join("dead.jsonl");
    let policy = format!("dead-letter:{}", dead.display());
    let out = succeeds(&run_args(
        &input,
        &["--max-record-bytes", "1024", "--on-error", &policy],
    ));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "{\"key\":\"a\",\"window_start\":0,\"window_end\":10000,\"count\":2,\"sum_v\":3}\n"
    );
    let letters = std::fs::read_to_string(&dead).unwrap();
    let letter: serde_json::Value = serde_json::from_str(letters.trim_end()).unwrap();
    assert_eq!(letters.lines().count(), 1);
    assert_eq!(letter["line"], 2);
    assert_eq!(letter["reason"], "record is longer than 1024 bytes");
    assert_eq!(letter["raw"].as_str().unwrap().len(), 1024);
    assert_eq!(letter["truncated"], true);
    assert_eq!(letter["length"], (8 << 20) + 18);
    // The default limit, 1 MiB, rejects it too.
    let line = fails(&run_args(&input, &[]), 2);
    assert!(
        line.contains("huge.jsonl:2: record is longer than 1048576 bytes"),
        "{line}"
    );
}

#[test]
fn workers_of_a_directory_share_one_dead_letter_file() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    std::fs::create_dir(&input).unwrap();
    for (name, bad) in [("a.jsonl", 1), ("b.jsonl", 2), ("c.jsonl", 3)] {
        let mut lines = String::new();
        for i in 0..bad {
            lines.push_str(&format!(
                "{{\"ts\":{},\"k\":\"{name}\"}}\nbad {i}\n",
                i * 100
            ));
        }
        std::fs::write(input.join(name), lines).unwrap();
    }
    let input = input.to_string_lossy().into_owned();
    let dead = dir.path().join("dead.jsonl");
    let policy = format!("dead-letter:{}", dead.display());
    let out = succeeds(&run_args(
        &input,
        &["--format", "jsonl", "--workers", "2", "--on-error", &policy],
    ));
    assert!(
        stderr(&out).contains("6 records read, 0 bad records skipped, 6 bad records dead-lettered"),
        "{}",
        stderr(&out)
    );
    let mut letters: Vec<(String, u64, String)> = std::fs::read_to_string(&dead)
        .unwrap()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            let path = v["path"].as_str().unwrap();
            let file = Path::new(path).file_name().unwrap().to_string_lossy();
            (
                file.into_owned(),
                v["line"].as_u64().unwrap(),
                v["raw"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    letters.sort();
    let expected: Vec<(String, u64, String)> = [
        ("a.jsonl", 2, "bad 0"),
        ("b.jsonl", 2, "bad 0"),
        ("b.jsonl", 4, "bad 1"),
        ("c.jsonl", 2, "bad 0"),
        ("c.jsonl", 4, "bad 1"),
        ("c.jsonl", 6, "bad 2"),
    ]
    .iter()
    .map(|(f, l, r)| (f.to_string(), *l, r.to_string()))
    .collect();
    assert_eq!(letters, expected);
}

#[test]
fn bad_policy_flags_and_dead_letter_paths_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("ok.jsonl");
    std::fs::write(&input, "{\"ts\":1,\"k\":\"a\"}\n").unwrap();
    let input = input.to_string_lossy().into_owned();
    for (extra, flag) in [
        (["--on-error", "ignore"], "--on-error"),
        (["--on-error", "dead-letter:"], "--on-error"),
        (["--max-record-bytes", "0"], "--max-record-bytes"),
        (["--max-record-bytes", "lots"], "--max-record-bytes"),
    ] {
        let line = fails(&run_args(&input, &extra), 2);
        assert!(line.contains(flag), "{extra:?}: {line}");
    }
    let policy = format!(
        "dead-letter:{}",
        dir.path().join("no/dir/dead.jsonl").display()
    );
    let line = fails(&run_args(&input, &["--on-error", &policy]), 3);
    assert!(
        line.contains("cannot create dead-letter file") && line.contains("no/dir/dead.jsonl"),
        "{line}"
    );
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Deserialize, serde::Serialize)]
struct Event {
    ts: u64,
    k: String,
}

#[test]
fn the_api_counts_skipped_and_dead_lettered_records_over_workers() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    std::fs::create_dir(&input).unwrap();
    let mut good = Vec::new();
    for (file, bad) in [("a.jsonl", 1u64), ("b.jsonl", 0), ("c.jsonl", 3)] {
        let mut lines = String::new();
        for i in 0..10u64 {
            let event = Event {
                ts: i * 1_000,
                k: file.to_string(),
            };
            lines.push_str(&format!("{{\"ts\":{},\"k\":\"{}\"}}\n", event.ts, event.k));
            good.push(event);
            if i < bad {
                lines.push_str("{\"ts\":\"late\",\"k\":1}\n");
            }
        }
        std::fs::write(input.join(file), lines).unwrap();
    }
    good.sort();
    let dead = dir.path().join("dead.jsonl");
    for policy in [OnError::Skip, OnError::DeadLetter(dead.clone())] {
        let sink = MemorySink::new();
        let output = sink.clone();
        let (path, on_error) = (input.clone(), policy.clone());
        let report = tideflow::execute(Config::workers(2), move |flow| {
            let source =
                FileSource::new(&path, JsonLines::<Event>::serde()).on_error(on_error.clone());
            flow.source(source)
                .with_event_time(|e| e.ts)
                .with_watermark(Duration::from_secs(60))
                .sink(output.clone());
            Ok(())
        })
        .unwrap();
        let mut seen = sink.take();
        seen.sort();
        assert_eq!(seen, good);
        assert_eq!(report.records_in, 30);
        match policy {
            OnError::Skip => {
                assert_eq!(
                    (report.records_skipped, report.records_dead_lettered),
                    (4, 0)
                )
            }
            _ => {
                assert_eq!(
                    (report.records_skipped, report.records_dead_lettered),
                    (0, 4)
                );
                assert_eq!(std::fs::read_to_string(&dead).unwrap().lines().count(), 4);
            }
        }
    }
    // And the default policy stops the job at the first bad record.
    let path = input.clone();
    let error = tideflow::execute(Config::workers(2), move |flow| {
        flow.source(FileSource::new(&path, JsonLines::<Event>::serde()))
            .with_event_time(|e| e.ts)
            .with_watermark(Duration::from_secs(60))
            .sink(MemorySink::new());
        Ok(())
    })
    .unwrap_err();
    assert!(
        matches!(&error, tideflow::Error::Input { line: 2, .. }),
        "{error}"
    );
}
