//! `tideflow run` with kafka:// inputs and outputs against a real broker (tansu, started per
//! test by tests/all/kafka_broker.rs): the same rows as files, per-partition watermarks, bad
//! messages, an unreachable or paused broker, and exactly-once Kafka-to-Kafka output under
//! SIGKILLs at seeded random moments.
//!
//! Replay a kill test with `TIDEFLOW_CRASH_SEED=S cargo nextest run -E 'test(kafka_)'
//! --no-capture` (the seed is printed).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::crash::harness::{path_arg, Proc, Ran};
use crate::kafka_broker::{Batched, Broker, Consumed};
use crate::support::{self, SplitMix64};

const SEED_VAR: &str = "TIDEFLOW_CRASH_SEED";

fn seed() -> u64 {
    std::env::var(SEED_VAR)
        .ok()
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or(0x5eed_0014)
}

/// The records of `partitions` partitions as JSON lines: partition `p`'s event times advance
/// by `p + 1` ms a record (the partitions run at different speeds), each up to `disorder` ms
/// early; keys `k0`..`k{keys-1}`.
fn records(
    partitions: usize,
    per_partition: usize,
    keys: u64,
    disorder: u64,
    seed: u64,
) -> Vec<Vec<String>> {
    let mut rng = SplitMix64(seed);
    (0..partitions)
        .map(|p| {
            (0..per_partition)
                .map(|i| {
                    let ts =
                        1_000 + (i as u64) * (p as u64 + 1) - rng.below(disorder + 1).min(1_000);
                    let key = rng.below(keys);
                    let value = rng.below(100);
                    format!(r#"{{"ts":{ts},"key":"k{key}","value":{value}}}"#)
                })
                .collect()
        })
        .collect()
}

/// Produces `partitions[p]` to partition `p` of `topic`, batched as a normal producer does.
fn produce(broker: &Broker, topic: &str, partitions: &[Vec<String>]) {
    let records: Vec<Batched<'_>> = (partitions.iter().enumerate())
        .flat_map(|(p, lines)| {
            lines
                .iter()
                .map(move |line| (p as i32, None, Some(line.as_bytes()), None))
        })
        .collect();
    broker.produce_batched(topic, &records);
}

/// `run` on `input`: a count per key `k` in 1 s tumbling windows of `ts`, then `rest`.
fn count_by_k<'a>(input: &'a str, rest: &[&'a str]) -> Vec<&'a str> {
    let mut args = support::query_args(input, &["--window", "tumbling:1s", "--agg", "count"]);
    args.extend(rest);
    args
}

/// Writes partition `p` as file `p{p}.jsonl` of a new directory `files` under `dir`.
fn write_files(dir: &Path, partitions: &[Vec<String>]) -> String {
    let files = dir.join("files");
    std::fs::create_dir_all(&files).unwrap();
    for (p, lines) in partitions.iter().enumerate() {
        std::fs::write(files.join(format!("p{p}.jsonl")), lines.join("\n") + "\n").unwrap();
    }
    path_arg(&files)
}

fn topic_input(broker: &Broker, topic: &str) -> String {
    format!("kafka://{}/{topic}", broker.address())
}

fn run_ok(args: &[&str]) -> (String, String) {
    let out = support::tideflow(args);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{args:?}: {stderr}");
    (String::from_utf8(out.stdout).unwrap(), stderr)
}

const QUERY: [&str; 12] = [
    "--time-field",
    "ts",
    "--key-field",
    "key",
    "--window",
    "tumbling:100ms",
    "--agg",
    "count",
    "--agg",
    "sum:value",
    "--watermark-delay",
    "30ms",
];

/// Each partition a file, each file a partition: a topic read to its end gives the rows of
/// the same records read from files, byte for byte, with 1, 2 and 4 workers, although its
/// partitions advance at different speeds (each has its own watermark).
#[test]
fn kafka_input_gives_the_rows_of_the_same_records_in_files() {
    let broker = Broker::start();
    broker.create_topic("events", 4);
    let partitions = records(4, 3_000, 40, 30, seed());
    produce(&broker, "events", &partitions);
    let dir = tempfile::tempdir().unwrap();
    let files = write_files(dir.path(), &partitions);
    let input = topic_input(&broker, "events");
    let mut expected = None;
    for workers in ["1", "2", "4"] {
        let mut from_files = vec!["run", "--input", &files];
        from_files.extend(QUERY);
        from_files.extend(["--workers", workers]);
        let (file_rows, _) = run_ok(&from_files);
        let mut from_topic = vec!["run", "--input", &input, "--trigger", "available-now"];
        from_topic.extend(QUERY);
        from_topic.extend(["--workers", workers]);
        let (topic_rows, stderr) = run_ok(&from_topic);
        assert!(stderr.contains("12000 records read"), "{stderr}");
        assert!(file_rows.lines().count() > 100, "{file_rows}");
        assert_eq!(topic_rows, file_rows, "{workers} worker(s)");
        let expected = expected.get_or_insert(file_rows.clone());
        assert_eq!(&file_rows, expected, "{workers} worker(s)");
    }
}

/// The message's timestamp, key, partition and offset are fields; CSV values take their
/// columns from --csv-header.
#[test]
fn kafka_message_fields_and_csv_values() {
    let broker = Broker::start();
    broker.create_topic("csv", 2);
    broker.produce(
        "csv",
        &[
            (0, Some(b"ann"), b"5,x", Some(1_000)),
            (1, Some(b"bob"), b"7,y", Some(1_050)),
            (0, Some(b"ann"), b"9,z", Some(2_500)),
        ],
    );
    let input = topic_input(&broker, "csv");
    let (rows, _) = run_ok(&[
        "run",
        "--input",
        &input,
        "--format",
        "csv",
        "--csv-header",
        "amount,tag",
        "--time-field",
        "kafka_timestamp",
        "--key-field",
        "kafka_key",
        "--window",
        "tumbling:1s",
        "--agg",
        "sum:amount",
        "--agg",
        "max:kafka_offset",
        "--agg",
        "first:kafka_partition",
        "--trigger",
        "available-now",
    ]);
    assert_eq!(
        rows,
        concat!(
            r#"{"key":"ann","window_start":1000,"window_end":2000,"sum_amount":5,"max_kafka_offset":0,"first_kafka_partition":0}"#,
            "\n",
            r#"{"key":"bob","window_start":1000,"window_end":2000,"sum_amount":7,"max_kafka_offset":0,"first_kafka_partition":1}"#,
            "\n",
            r#"{"key":"ann","window_start":2000,"window_end":3000,"sum_amount":9,"max_kafka_offset":1,"first_kafka_partition":0}"#,
            "\n",
        )
    );
}

/// A partition that sends nothing does not hold the windows back with --idle-timeout: rows
/// leave while the job runs (continuous trigger), then SIGTERM stops it.
#[test]
fn kafka_idle_partition_does_not_stall_windows() {
    let broker = Broker::start();
    broker.create_topic("idle", 2);
    let lines: Vec<String> = (0..50)
        .map(|i| format!(r#"{{"ts":{},"key":"a"}}"#, 1_000 + i * 100))
        .collect();
    produce(&broker, "idle", &[lines, Vec::new()]);
    let input = topic_input(&broker, "idle");
    let mut job = support::ChildGuard::spawn(
        &[
            "run",
            "--input",
            &input,
            "--time-field",
            "ts",
            "--key-field",
            "key",
            "--window",
            "tumbling:1s",
            "--agg",
            "count",
            "--idle-timeout",
            "300ms",
        ],
        std::process::Stdio::null(),
    );
    let stdout = job.0.stdout.take().unwrap();
    let (send, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout).lines() {
            if send.send(line.unwrap()).is_err() {
                break;
            }
        }
    });
    let first = lines.recv_timeout(Duration::from_secs(60));
    let pid = job.0.id().to_string();
    std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert_eq!(
        first.ok().as_deref(),
        Some(r#"{"key":"a","window_start":1000,"window_end":2000,"count":10}"#),
        "no window closed while partition 1 was idle"
    );
}

/// Bad messages follow --on-error, named by topic, partition and offset.
#[test]
fn kafka_bad_messages_are_named_by_partition_and_offset() {
    let broker = Broker::start();
    broker.create_topic("bad", 2);
    broker.produce(
        "bad",
        &[
            (0, None, br#"{"ts":1000,"k":"a"}"#, None),
            (1, None, br#"{"ts":1000,"k":"a"}"#, None),
            (1, None, b"{not json", None),
            (0, None, br#"{"k":"a"}"#, None),
        ],
    );
    let input = topic_input(&broker, "bad");
    let base = count_by_k(&input, &["--trigger", "available-now"]);
    let error = support::fails(&base, 2);
    assert!(error.contains("topic bad partition"), "{error}");
    assert!(
        error.contains("partition 1 offset 1") || error.contains("partition 0 offset 1"),
        "{error}"
    );
    let mut skip = base.to_vec();
    skip.extend(["--on-error", "skip"]);
    let (rows, stderr) = run_ok(&skip);
    assert!(stderr.contains("2 bad records skipped"), "{stderr}");
    assert!(rows.contains(r#""count":2"#), "{rows}");
    let dir = tempfile::tempdir().unwrap();
    let letters = dir.path().join("dead.jsonl");
    let policy = format!("dead-letter:{}", letters.display());
    let mut dead = base.to_vec();
    dead.extend(["--on-error", &policy]);
    let (_, stderr) = run_ok(&dead);
    assert!(stderr.contains("2 bad records dead-lettered"), "{stderr}");
    let text = std::fs::read_to_string(&letters).unwrap();
    let mut lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    lines.sort_by_key(|l| l["partition"].as_i64());
    assert_eq!(lines.len(), 2, "{text}");
    assert_eq!(
        (lines[0]["partition"].as_i64(), lines[0]["offset"].as_i64()),
        (Some(0), Some(1)),
        "{text}"
    );
    assert_eq!(
        (lines[1]["partition"].as_i64(), lines[1]["offset"].as_i64()),
        (Some(1), Some(1)),
        "{text}"
    );
    assert_eq!(lines[1]["raw"].as_str(), Some("{not json"), "{text}");
}

/// No broker at the address: one line naming it, a non-zero exit, in bounded time; a missing
/// topic is named too, for the input and for the output.
#[test]
fn kafka_unreachable_broker_and_missing_topics_are_one_line() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = closed.local_addr().unwrap().to_string();
    drop(closed);
    let input = format!("kafka://{address}/events");
    let query = [
        "--time-field",
        "ts",
        "--window",
        "tumbling:1s",
        "--agg",
        "count",
    ];
    let mut args = vec!["run", "--input", &input];
    args.extend(query);
    let started = Instant::now();
    // An I/O failure: exit code 3.
    let error = support::fails(&args, 3);
    assert!(error.contains(&address), "{error}");
    assert!(
        started.elapsed() < Duration::from_secs(120),
        "{:?}",
        started.elapsed()
    );

    let broker = Broker::start();
    broker.create_topic("present", 1);
    let missing = topic_input(&broker, "absent");
    let mut args = vec!["run", "--input", &missing];
    args.extend(query);
    let error = support::fails(&args, 2);
    assert!(error.contains("absent"), "{error}");
    let present = topic_input(&broker, "present");
    let mut args = vec![
        "run",
        "--input",
        &present,
        "--trigger",
        "available-now",
        "--output",
        &missing,
    ];
    args.extend(query);
    let error = support::fails(&args, 2);
    assert!(error.contains("absent"), "{error}");
}

/// Kafka flags out of place are refused naming the flag.
#[test]
fn kafka_flags_are_checked() {
    let cases: [(&[&str], &str); 5] = [
        (
            &[
                "--input",
                "kafka://h:1",
                "--time-field",
                "ts",
                "--window",
                "tumbling:1s",
                "--agg",
                "count",
            ],
            "--input: 'kafka://h:1'",
        ),
        (
            &[
                "--input",
                "tests/fixtures/events.jsonl",
                "--starting-offsets",
                "latest",
                "--time-field",
                "ts",
                "--window",
                "tumbling:1s",
                "--agg",
                "count",
            ],
            "--starting-offsets: ",
        ),
        (
            &[
                "--input",
                "tests/fixtures/events.jsonl",
                "--kafka-option",
                "a=b",
                "--time-field",
                "ts",
                "--window",
                "tumbling:1s",
                "--agg",
                "count",
            ],
            "--kafka-option: ",
        ),
        (
            &[
                "--input",
                "kafka://h:1/t",
                "--format",
                "csv",
                "--time-field",
                "ts",
                "--window",
                "tumbling:1s",
                "--agg",
                "count",
            ],
            "--csv-header: required",
        ),
        (
            &[
                "--input",
                "kafka://h:1/t",
                "--output",
                "kafka://h:1/o",
                "--output-format",
                "csv",
                "--time-field",
                "ts",
                "--window",
                "tumbling:1s",
                "--agg",
                "count",
            ],
            "--output-format: ",
        ),
    ];
    for (flags, expected) in cases {
        let mut args = vec!["run"];
        args.extend(flags);
        let error = support::fails(&args, 2);
        assert!(error.contains(expected), "{flags:?}: {error}");
    }
}

/// `explain` names the topic's partitions with their offsets.
#[test]
fn kafka_explain_shows_partitions_and_offsets() {
    let broker = Broker::start();
    broker.create_topic("shown", 2);
    broker.produce(
        "shown",
        &[
            (0, None, b"{}", None),
            (0, None, b"{}", None),
            (1, None, b"{}", None),
        ],
    );
    let input = topic_input(&broker, "shown");
    let output = topic_input(&broker, "out");
    let (plan, _) = run_ok(&[
        "explain",
        "--input",
        &input,
        "--time-field",
        "ts",
        "--window",
        "tumbling:1s",
        "--agg",
        "count",
        "--output",
        &output,
        "--workers",
        "2",
    ]);
    assert!(plan.contains("Kafka topic shown"), "{plan}");
    assert!(plan.contains("0: offsets 0..2"), "{plan}");
    assert!(plan.contains("1: offsets 0..1"), "{plan}");
    assert!(plan.contains("Kafka topic out"), "{plan}");
    // With a snapshot, where a resumed run starts and how far behind the end that is.
    let dir = tempfile::tempdir().unwrap();
    let ck = path_arg(&dir.path().join("ck"));
    let rows = path_arg(&dir.path().join("rows.jsonl"));
    let query = [
        "--time-field",
        "ts",
        "--window",
        "tumbling:1s",
        "--agg",
        "count",
        "--on-error",
        "skip",
    ];
    let mut run = vec![
        "run",
        "--input",
        &input,
        "--trigger",
        "available-now",
        "--checkpoint-dir",
        &ck,
        "--output",
        &rows,
    ];
    run.extend(query);
    run_ok(&run);
    broker.produce("shown", &[(1, None, b"{}", None)]);
    let mut explain = vec![
        "explain",
        "--input",
        &input,
        "--checkpoint-dir",
        &ck,
        "--output",
        &rows,
    ];
    explain.extend(query);
    let (plan, _) = run_ok(&explain);
    assert!(
        plan.contains("0: offsets 0..2, resumes at 2, lag 0"),
        "{plan}"
    );
    assert!(
        plan.contains("1: offsets 0..2, resumes at 1, lag 1"),
        "{plan}"
    );
}

/// The output topic's values as a read_committed consumer sees them, keeping per snapshot
/// epoch only the records of the last execution that wrote it (headers `tideflow-epoch` and
/// `tideflow-execution`): Kafka hides the records of a transaction aborted by fencing (a
/// commit a crash cut short, redone by the next run), and this test broker (tansu 0.6) does
/// not. Returns the values and how many records the filter dropped.
fn committed_rows(broker: &Broker, topic: &str) -> (Vec<String>, usize) {
    let read = broker.read_committed(topic, Duration::from_secs(3));
    let header = |c: &Consumed, name: &str| -> u64 {
        let (_, value) = c
            .headers
            .iter()
            .find(|(key, _)| key == name)
            .unwrap_or_else(|| panic!("a message without {name}: {c:?}"));
        std::str::from_utf8(value).unwrap().parse().unwrap()
    };
    let mut last: BTreeMap<u64, u64> = BTreeMap::new();
    for c in &read {
        let execution = last.entry(header(c, "tideflow-epoch")).or_insert(0);
        *execution = (*execution).max(header(c, "tideflow-execution"));
    }
    let kept: Vec<String> = read
        .iter()
        .filter(|c| last[&header(c, "tideflow-epoch")] == header(c, "tideflow-execution"))
        .map(|c| String::from_utf8(c.value.clone()).unwrap())
        .collect();
    let dropped = read.len() - kept.len();
    (kept, dropped)
}

fn sorted_lines(text: &str) -> Vec<String> {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    lines.sort();
    lines
}

/// One exactly-once case: the Kafka-to-Kafka job SIGKILLed 5 times at seeded random moments
/// and restarted on the worker counts of `workers` in turn; the output topic, read committed,
/// holds the rows of an uninterrupted run to a file, none lost, none duplicated.
fn kill_and_compare(
    label: &str,
    broker: &Broker,
    input_topic: &str,
    workers: &[&str],
    rng: &mut SplitMix64,
) {
    let dir = tempfile::tempdir().unwrap();
    let out_topic = format!("out-{}", label.replace([' ', ','], "-"));
    broker.create_topic(&out_topic, 2);
    let input = topic_input(broker, input_topic);
    let output = topic_input(broker, &out_topic);
    // Small fetches: the job takes seconds, so that the kills land while it runs.
    let slow = [
        "--kafka-option",
        "max.partition.fetch.bytes=4096",
        "--trigger",
        "available-now",
    ];
    let reference = dir.path().join("reference.jsonl");
    let mut args = vec!["run", "--input", &input];
    args.extend(QUERY);
    args.extend(slow);
    let reference_arg = path_arg(&reference);
    args.extend(["--output", &reference_arg]);
    run_ok(&args);
    let ck = path_arg(&dir.path().join("ck"));
    let command = |on: &str| -> Vec<String> {
        let mut args = vec!["run", "--input", &input];
        args.extend(QUERY);
        args.extend(slow);
        args.extend([
            "--output",
            &output,
            "--checkpoint-dir",
            &ck,
            "--snapshot-interval",
            "200ms",
            "--workers",
            on,
        ]);
        args.into_iter().map(str::to_string).collect()
    };
    let mut kills = 0;
    let mut runs = 0;
    let mut resumed = 0;
    while kills < 5 {
        let on = workers[runs % workers.len()];
        runs += 1;
        let delay = Duration::from_millis(150 + rng.below(1_500));
        let mut process = Proc::start(&command(on), None);
        if runs == 1 {
            eprintln!("{label}: {}", process.what);
            // The first kill lands after a snapshot, so a later run resumes from one.
            process.wait_for_snapshots(&dir.path().join("ck"), 1);
        }
        let (ran, killed): (Ran, bool) = process.kill_after(delay);
        eprintln!(
            "{label}: run {runs} on {on} worker(s): {}",
            if killed {
                format!("SIGKILL after {delay:?}")
            } else {
                format!("exited by itself ({})", ran.status)
            }
        );
        if !killed {
            ran.succeeded();
            eprintln!("{label}: the job completed after {kills} kills");
            break;
        }
        resumed += usize::from(ran.no_panic().resumed());
        kills += 1;
    }
    assert!(
        resumed > 0,
        "{label}: no killed run had resumed from a snapshot"
    );
    let on = workers[runs % workers.len()];
    Proc::start(&command(on), None).finish().succeeded();
    let expected = sorted_lines(&std::fs::read_to_string(&reference).unwrap());
    assert!(expected.len() > 1_000, "{} rows", expected.len());
    let (mut rows, dropped) = committed_rows(broker, &out_topic);
    rows.sort();
    eprintln!(
        "{label}: {} rows, {dropped} records of fenced commits dropped by the reader",
        rows.len()
    );
    assert_eq!(
        rows.len(),
        expected.len(),
        "{label}: rows lost or duplicated"
    );
    assert_eq!(rows, expected, "{label}");
}

/// Exactly-once Kafka to Kafka: 200,000 records in 4 partitions (disorder within the
/// watermark delay), killed at least 5 times, on 1 worker, 2 workers, and alternating 2 and 1.
#[test]
fn kafka_to_kafka_is_exactly_once_under_kills() {
    let seed = seed();
    eprintln!("kill seed {seed} (replay with {SEED_VAR}={seed})");
    let broker = Broker::start();
    broker.create_topic("input", 4);
    produce(&broker, "input", &records(4, 50_000, 200, 30, seed));
    let mut rng = SplitMix64(seed);
    for (label, workers) in [
        ("1 worker", &["1"][..]),
        ("2 workers", &["2"][..]),
        ("2 then 1 workers", &["2", "1"][..]),
    ] {
        kill_and_compare(label, &broker, "input", workers, &mut rng);
    }
}

/// Without a checkpoint directory the Kafka output is at-least-once; with nothing
/// interrupted it holds each row once, and the same rows as a file.
#[test]
fn kafka_output_without_snapshots_holds_the_rows() {
    let broker = Broker::start();
    broker.create_topic("in", 2);
    broker.create_topic("plain", 1);
    produce(&broker, "in", &records(2, 2_000, 20, 30, 7));
    let input = topic_input(&broker, "in");
    let output = topic_input(&broker, "plain");
    let mut args = vec![
        "run",
        "--input",
        &input,
        "--trigger",
        "available-now",
        "--output",
        &output,
    ];
    args.extend(QUERY);
    run_ok(&args);
    let mut file_args = vec!["run", "--input", &input, "--trigger", "available-now"];
    file_args.extend(QUERY);
    let (expected, _) = run_ok(&file_args);
    let read = broker.read_committed("plain", Duration::from_secs(2));
    let values: Vec<String> = read
        .iter()
        .map(|c| String::from_utf8(c.value.clone()).unwrap())
        .collect();
    // One partition: the rows in the order they were written.
    assert_eq!(values.join("\n") + "\n", expected);
    // Keyed by the row's key.
    let first: serde_json::Value = serde_json::from_str(&values[0]).unwrap();
    assert_eq!(
        read[0].key.as_deref(),
        first["key"].as_str().map(str::as_bytes)
    );
}

/// The broker paused (SIGSTOP) mid-run and resumed (SIGCONT): the job waits and carries on, or
/// stops with an error and a restart resumes; either way the output is exact.
#[test]
fn kafka_broker_outage_loses_and_duplicates_nothing() {
    let broker = Broker::start();
    broker.create_topic("src", 2);
    broker.create_topic("dst", 1);
    produce(&broker, "src", &records(2, 20_000, 50, 30, 11));
    let dir = tempfile::tempdir().unwrap();
    let input = topic_input(&broker, "src");
    let output = topic_input(&broker, "dst");
    let mut reference_args = vec!["run", "--input", &input, "--trigger", "available-now"];
    reference_args.extend(QUERY);
    let (expected, _) = run_ok(&reference_args);
    let ck = path_arg(&dir.path().join("ck"));
    let mut args: Vec<String> = [
        "run",
        "--input",
        &input,
        "--trigger",
        "available-now",
        "--output",
        &output,
        "--checkpoint-dir",
        &ck,
        "--snapshot-interval",
        "200ms",
        "--kafka-option",
        "max.partition.fetch.bytes=4096",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(QUERY.iter().map(|s| s.to_string()));
    let mut process = Proc::start(&args, None);
    process.wait_for_snapshots(&dir.path().join("ck"), 1);
    let pid = broker.pid().to_string();
    let signal = |name: &str| {
        let status = std::process::Command::new("kill")
            .args([name, &pid])
            .status()
            .unwrap();
        assert!(status.success(), "kill {name} {pid}");
    };
    signal("-STOP");
    std::thread::sleep(Duration::from_secs(3));
    signal("-CONT");
    let ran = process.finish();
    if !ran.status.success() {
        eprintln!("the job stopped during the outage: {}", ran.stderr.trim());
        ran.no_panic();
        Proc::start(&args, None).finish().succeeded();
    }
    let (mut rows, dropped) = committed_rows(&broker, "dst");
    rows.sort();
    eprintln!("{dropped} records of fenced commits dropped by the reader");
    assert_eq!(rows, sorted_lines(&expected));
}

/// Records too late for every window go to a Kafka topic of their own, whole, exactly-once
/// with a checkpoint directory.
#[test]
fn kafka_late_output_goes_to_a_topic() {
    let broker = Broker::start();
    broker.create_topic("timely", 1);
    broker.create_topic("rows", 1);
    broker.create_topic("late", 1);
    broker.produce(
        "timely",
        &[
            (0, None, br#"{"ts":1000,"k":"a"}"#, None),
            (0, None, br#"{"ts":5000,"k":"a"}"#, None),
            (0, None, br#"{"ts":1500, "k":"b"}"#, None),
            (0, None, br#"{"ts":9000,"k":"a"}"#, None),
        ],
    );
    let dir = tempfile::tempdir().unwrap();
    let ck = path_arg(&dir.path().join("ck"));
    let (input, rows, late) = (
        topic_input(&broker, "timely"),
        topic_input(&broker, "rows"),
        topic_input(&broker, "late"),
    );
    let args = count_by_k(
        &input,
        &[
            "--trigger",
            "available-now",
            "--output",
            &rows,
            "--late-output",
            &late,
            "--checkpoint-dir",
            &ck,
        ],
    );
    let (_, stderr) = run_ok(&args);
    assert!(stderr.contains("1 written to the late output"), "{stderr}");
    let (late_rows, _) = committed_rows(&broker, "late");
    assert_eq!(late_rows.len(), 1, "{late_rows:?}");
    assert!(
        late_rows[0].starts_with(r#"{"key":"b","event_time":1500,"#)
            && late_rows[0].ends_with(r#""record":{"ts":1500, "k":"b"}}"#),
        "{}",
        late_rows[0]
    );
    let (window_rows, _) = committed_rows(&broker, "rows");
    assert_eq!(window_rows.len(), 3, "{window_rows:?}");
    let same = ["--late-output", &rows];
    let mut refused = args[..args.len() - 4].to_vec();
    refused.extend(same);
    let error = support::fails(&refused, 2);
    assert!(
        error.contains("--late-output: the same Kafka topic"),
        "{error}"
    );
}
