//! Outputs that would overwrite what the job reads (issue 13, item 1): refused with one line
//! naming the flag, before anything is opened, by `run` and `explain` alike; the input, the
//! join table and the other outputs are left as they were.

use std::path::Path;

use crate::support::{fails, run_args, write};

#[test]
fn an_output_that_is_an_input_or_another_output_is_refused_and_nothing_is_touched() {
    let dir = tempfile::tempdir().unwrap();
    let events = "{\"ts\":1,\"k\":\"a\"}\n{\"ts\":2,\"k\":\"b\"}\n";
    let input = write(dir.path(), "events.jsonl", events);
    let rows = "{\"id\":\"a\",\"x\":1}\n";
    let table = write(dir.path(), "table.jsonl", rows);
    let other = dir.path().join("out.jsonl");
    let other = other.to_str().unwrap();
    let dotted = format!("{}/./events.jsonl", dir.path().display());
    let dead_letter = format!("dead-letter:{input}");
    let join = ["--join-static", &table, "--join-key", "id"];
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["--output", &input], "--output: "),
        (vec!["--output", &dotted], "--output: "),
        (vec!["--late-output", &input], "--late-output: "),
        (vec!["--on-error", &dead_letter], "--on-error: "),
        (vec!["--progress", &input], "--progress: "),
        ([&join[..], &["--output", &table]].concat(), "--output: "),
        (
            vec!["--output", other, "--late-output", other],
            "--late-output: ",
        ),
    ];
    for (extra, flag) in cases {
        for command in ["run", "explain"] {
            let mut args = run_args(&input, &extra);
            args[0] = command;
            let line = fails(&args, 2);
            assert!(
                line.starts_with(&format!("tideflow: {flag}")),
                "{args:?}: {line}"
            );
            assert_eq!(std::fs::read_to_string(&input).unwrap(), events, "{args:?}");
            assert_eq!(std::fs::read_to_string(&table).unwrap(), rows, "{args:?}");
            assert!(!Path::new(other).exists(), "{args:?} created {other}");
        }
    }
}
