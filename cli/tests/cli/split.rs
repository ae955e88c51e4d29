//! One large input file read by every worker (`--split-size`): the file is cut into chunks at
//! line starts, each its own partition, and the results do not depend on the worker count.

use crate::support::{fails, query_args, tideflow, write, SplitMix64};

/// `count` records keyed `k0..k9`, stamped about 4 ms apart, each up to `disorder` ms behind
/// the largest time before it (so with a smaller watermark delay some are late).
fn records(count: usize, disorder: u64, csv: bool) -> String {
    let mut rng = SplitMix64(0x5b11_7f11);
    let mut cursor = 1_000_000;
    let mut text = String::from(if csv { "ts,k,v\n" } else { "" });
    for _ in 0..count {
        cursor += rng.below(8);
        let ts = cursor - rng.below(disorder + 1);
        let (k, v) = (rng.below(10), rng.below(100));
        text += &if csv {
            format!("{ts},k{k},{v}\n")
        } else {
            format!("{{\"ts\":{ts},\"k\":\"k{k}\",\"v\":{v}}}\n")
        };
    }
    text
}

/// Runs `args` and returns standard output and the summary line.
fn run(args: &[&str]) -> (String, String) {
    let out = tideflow(args);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{args:?}: {stderr}");
    let summary = stderr
        .lines()
        .find(|l| l.contains("records read"))
        .unwrap_or("")
        .to_string();
    (String::from_utf8(out.stdout).unwrap(), summary)
}

/// With records out of order beyond the watermark delay (some late), every window kind gives
/// the same rows and the same late count on 1, 2 and 4 workers when the file is cut into
/// chunks of 2 KB; with the delay covering the disorder, the rows equal an unsplit read.
#[test]
fn a_split_file_gives_the_same_results_on_any_number_of_workers() {
    let dir = tempfile::tempdir().unwrap();
    for csv in [true, false] {
        let name = if csv { "in.csv" } else { "in.jsonl" };
        let input = write(dir.path(), name, &records(4_000, 300, csv));
        for window in ["tumbling:1s", "sliding:1s,250ms", "session:20ms"] {
            for delay in ["100ms", "300ms"] {
                let base = ["--window", window, "--agg", "count", "--agg", "sum:v"];
                let mut args = query_args(&input, &base);
                args.extend(["--watermark-delay", delay, "--split-size", "2000"]);
                let mut first: Option<(String, String)> = None;
                for workers in ["1", "2", "4"] {
                    let got = run(&[&args[..], &["--workers", workers]].concat());
                    assert!(got.0.lines().count() > 10, "{name} {window}: {}", got.0);
                    match &first {
                        None => first = Some(got),
                        Some(first) => assert_eq!(
                            &got, first,
                            "{name} {window} delay {delay}: {workers} workers differ from 1"
                        ),
                    }
                }
                if delay == "300ms" {
                    let (rows, summary) = first.unwrap();
                    assert!(summary.contains(" 0 late records dropped"), "{summary}");
                    let mut whole = query_args(&input, &base);
                    whole.extend(["--watermark-delay", delay, "--split-size", "0"]);
                    assert_eq!(
                        run(&whole).0,
                        rows,
                        "{name} {window}: split and whole differ"
                    );
                }
            }
        }
    }
}

/// A bad record in a later chunk is named with its line in the whole file.
#[test]
fn a_bad_record_in_a_later_chunk_is_named_by_its_line_in_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let mut text = records(2_000, 0, false);
    let mut lines: Vec<&str> = text.lines().collect();
    lines[1_500] = "{\"ts\":\"noon\",\"k\":\"a\"}";
    text = lines.join("\n") + "\n";
    let input = write(dir.path(), "in.jsonl", &text);
    let output = dir.path().join("out.jsonl");
    let output = output.to_str().unwrap();
    for workers in ["1", "3"] {
        let mut args = query_args(&input, &["--window", "tumbling:1s", "--agg", "count"]);
        args.extend(["--split-size", "1000", "--workers", workers]);
        // To a file: windows closed before the bad record was read may already be on
        // standard output, which `fails` would take for a partial write.
        args.extend(["--output", output]);
        let line = fails(&args, 2);
        assert!(line.contains("in.jsonl:1501: time field 'ts'"), "{line}");
    }
}
