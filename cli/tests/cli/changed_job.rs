//! Resuming a checkpoint with a changed query (issue 13 item 3): every snapshot keeps the job's
//! fingerprint (window, aggregates, key, input, mode, ...), and a run whose flags differ is
//! refused before anything is recovered or run, with one line naming each changed flag, its
//! value then and now; the input, the output and the checkpoint directory are left as they
//! were, mid-way through the job and once it has completed. The job as it was still resumes,
//! on another worker count and snapshot interval, which may change.

use std::collections::BTreeMap;
use std::path::Path;

use crate::crash::files_under;
use crate::crash::harness::{path_arg, read, Proc};

/// Every file under `dir` (recursively) with its bytes.
fn contents(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    files_under(dir)
        .into_iter()
        .map(|path| (path_arg(&path), read(&path)))
        .collect()
}

/// The output's bytes, or `None` if there is no output file.
fn output(dir: &Path) -> Option<Vec<u8>> {
    std::fs::read(dir.join("out.jsonl")).ok()
}

/// `args` with `from` replaced by `to` (`from` must be there), or `to` appended if `from` is
/// empty.
fn changed(args: &[String], from: &[&str], to: &[&str]) -> Vec<String> {
    let to: Vec<String> = to.iter().map(|s| s.to_string()).collect();
    if from.is_empty() {
        return args.iter().cloned().chain(to).collect();
    }
    let at = args
        .windows(from.len())
        .position(|w| w == from)
        .unwrap_or_else(|| panic!("{from:?} is not in {args:?}"));
    let mut result = args[..at].to_vec();
    result.extend(to);
    result.extend_from_slice(&args[at + from.len()..]);
    result
}

/// Runs every changed query in `changes` on the checkpoint in `dir`: each is refused with one
/// error line naming what changed, and leaves the input, the output and the checkpoint as
/// they were.
fn assert_refused(dir: &Path, changes: &[(Vec<String>, Vec<&str>)]) {
    let input = read(&dir.join("in.jsonl"));
    let out = output(dir);
    let checkpoint = contents(&dir.join("ck"));
    // An earlier run's progress reports are not emptied by a run that never starts.
    let progress = dir.join("progress.jsonl");
    std::fs::write(&progress, "{\"earlier\":true}\n").unwrap();
    for (query, names) in changes {
        let query = changed(query, &[], &["--progress", &path_arg(&progress)]);
        let refused = Proc::start(&query, None).finish();
        let line = refused.one_error_line();
        let ck = path_arg(&dir.join("ck"));
        assert!(
            line.starts_with(&format!(
                "tideflow: snapshot: {ck} was written by a different job: "
            )),
            "{line}"
        );
        for name in names {
            assert!(line.contains(name), "expected {name:?} in: {line}");
        }
        assert_eq!(read(&dir.join("in.jsonl")), input, "the input changed");
        assert_eq!(
            read(&progress),
            b"{\"earlier\":true}\n",
            "the progress file"
        );
        assert_eq!(output(dir), out, "a refused run changed the output");
        assert_eq!(
            contents(&dir.join("ck")),
            checkpoint,
            "a refused run changed the checkpoint directory"
        );
    }
}

#[test]
fn resuming_with_a_changed_query_is_refused_naming_what_changed() {
    let base = tempfile::tempdir().unwrap();
    let dir = base.path();
    let mut lines = String::new();
    for i in 0..20_000u64 {
        lines.push_str(&format!(
            "{{\"ts\":{i},\"key\":\"k{}\",\"other\":\"o{}\",\"value\":{}}}\n",
            i % 5,
            i % 3,
            i % 10
        ));
    }
    std::fs::write(dir.join("in.jsonl"), &lines).unwrap();
    std::fs::write(dir.join("in2.jsonl"), &lines).unwrap();
    let query = |output: &str| -> Vec<String> {
        [
            "run",
            "--input",
            &path_arg(&dir.join("in.jsonl")),
            "--time-field",
            "ts",
            "--key-field",
            "key",
            "--window",
            "tumbling:500ms",
            "--agg",
            "count",
            "--output",
            &path_arg(&dir.join(output)),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    Proc::start(&query("ref.jsonl"), None).finish().succeeded();
    let ck = path_arg(&dir.join("ck"));
    let args = changed(
        &query("out.jsonl"),
        &[],
        &["--checkpoint-dir", &ck, "--snapshot-interval", "50ms"],
    );
    // A crash once the first snapshot's manifest is written, before its output is committed.
    Proc::start(&args, Some("after-manifest"))
        .finish()
        .crashed_at_fault();

    let input = path_arg(&dir.join("in.jsonl"));
    let other_input = path_arg(&dir.join("in2.jsonl"));
    let input_was = format!(
        "--input {} then, ",
        path_arg(&std::fs::canonicalize(&input).unwrap())
    );
    let input_is = format!(
        "{} now",
        path_arg(&std::fs::canonicalize(&other_input).unwrap())
    );
    let changes: Vec<(Vec<String>, Vec<&str>)> = vec![
        (
            changed(&args, &["tumbling:500ms"], &["tumbling:1s"]),
            vec!["--window tumbling:500ms then, tumbling:1s now"],
        ),
        (
            changed(&args, &[], &["--agg", "sum:value"]),
            vec!["--agg count then, count sum:value now"],
        ),
        (
            changed(&args, &["--key-field", "key"], &["--key-field", "other"]),
            vec!["--key-field key then, other now"],
        ),
        (
            changed(&args, &[&input], &[&other_input]),
            vec![&input_was, &input_is],
        ),
        (
            changed(&args, &[], &["--mode", "update"]),
            vec!["--mode append then, update now"],
        ),
        (
            // Two flags: both named.
            changed(&args, &["tumbling:500ms"], &["tumbling:1s", "--agg", "max:value"]),
            vec![
                "--window tumbling:500ms then, tumbling:1s now; --agg count then, max:value count now",
            ],
        ),
    ];
    assert_refused(dir, &changes);

    // The job as it was resumes (on 2 workers, snapshotting at another interval: both may
    // change) to the uninterrupted run's output.
    let resumed = changed(&args, &["50ms"], &["200ms", "--workers", "2"]);
    let ran = Proc::start(&resumed, None).finish().succeeded();
    assert!(
        ran.resumed() || ran.stderr.contains("already completed"),
        "{}",
        ran.stderr
    );
    assert_eq!(
        output(dir),
        Some(read(&dir.join("ref.jsonl"))),
        "the resumed output differs from the uninterrupted run's"
    );

    // The job has completed: a changed query is refused too, not told "nothing to do".
    let again = Proc::start(&args, None).finish().succeeded();
    assert!(
        again.stderr.contains("already completed"),
        "{}",
        again.stderr
    );
    assert_refused(dir, &changes);
}
