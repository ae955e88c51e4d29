//! The Kafka source against a real broker: per-partition watermarks (the same windows as the
//! same records from a memory source partitioned alike, on 1, 2 and 4 workers), an idle
//! partition under an idle timeout, replay from a snapshot's offsets, bad messages under each
//! policy, an unreachable broker, available-now over a topic produced in batches, starting
//! offsets, and offsets and lag in progress reports.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tideflow::aggregate::Count;
use tideflow::sink::{FileSink, MemorySink};
use tideflow::source::{
    kafka_partitions, KafkaMessage, KafkaSource, MemorySource, OnError, StartingOffsets,
    WatermarkStrategy,
};
use tideflow::{Checkpoint, Config, Error, ErrorKind, Trigger, Window, WindowResult};

use crate::kafka_broker::{Batched, Broker, Single};
use crate::support::{Gate, Gated, ReadGate, SplitMix64};

/// A record: a key and an event time, ms; encoded as the text `"KEY TS"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
struct Rec {
    key: u64,
    ts: u64,
}

fn encode(record: &Rec) -> Vec<u8> {
    format!("{} {}", record.key, record.ts).into_bytes()
}

fn decode(message: &KafkaMessage<'_>) -> Result<Rec, String> {
    let text = std::str::from_utf8(message.value).map_err(|e| e.to_string())?;
    let (key, ts) = text
        .split_once(' ')
        .ok_or_else(|| format!("'{text}' is not 'KEY TS'"))?;
    Ok(Rec {
        key: key.parse().map_err(|_| format!("bad key '{key}'"))?,
        ts: ts.parse().map_err(|_| format!("bad time '{ts}'"))?,
    })
}

const BASE: u64 = 1_700_000_000_000;

/// `per_partition` records for each of `partitions` partitions, interleaved: record `i` is
/// partition `i % partitions`'s. Partition `p` advances `p + 1` times as fast as partition 0
/// (all alike unless `speeds`), with disorder up to 150 ms (beyond a 100 ms delay, so some
/// records are late).
fn records(seed: u64, partitions: usize, per_partition: usize, speeds: bool) -> Vec<Rec> {
    let mut rng = SplitMix64(seed);
    let mut out = Vec::with_capacity(partitions * per_partition);
    for j in 0..per_partition as u64 {
        for p in 0..partitions as u64 {
            let speed = if speeds { p + 1 } else { 1 };
            let ts = BASE + j * 10 * speed + rng.below(150);
            out.push(Rec {
                key: rng.below(5),
                ts,
            });
        }
    }
    out
}

/// Produces `records` (record `i` to partition `i % partitions`) in batches.
fn produce(broker: &Broker, topic: &str, records: &[Rec], partitions: usize) {
    let encoded: Vec<(i32, Vec<u8>)> = records
        .iter()
        .enumerate()
        .map(|(i, r)| ((i % partitions) as i32, encode(r)))
        .collect();
    let messages: Vec<Batched<'_>> = encoded
        .iter()
        .map(|(p, value)| (*p, None, Some(value.as_slice()), None))
        .collect();
    broker.produce_batched(topic, &messages);
}

type Row = (u64, u64, u64, u64);

fn row(result: WindowResult<u64, u64>) -> Row {
    (result.key, result.start, result.end, result.value)
}

/// Counts per key in 1 s tumbling windows, watermark 100 ms behind, under available-now,
/// of the source `make` builds on each worker.
fn count_windows<S, F>(make: F, workers: usize) -> (Vec<Row>, tideflow::JobReport)
where
    S: tideflow::source::Source<Item = Rec>,
    F: Fn() -> S + Send + Sync + 'static,
{
    let sink = MemorySink::new();
    let output = sink.clone();
    let config = Config::workers(workers).trigger(Trigger::AvailableNow);
    let report = tideflow::execute(config, move |flow| {
        flow.source(make())
            .with_event_time(|r: &Rec| r.ts)
            .with_watermark(Duration::from_millis(100))
            .key_by(|r| r.key)
            .window(Window::tumbling(Duration::from_secs(1))?)
            .aggregate(Count)
            .map(row)
            .sink(output.clone());
        Ok(())
    })
    .unwrap_or_else(|e| panic!("the job fails: {e}"));
    let mut rows = sink.take();
    rows.sort();
    (rows, report)
}

/// The Kafka source of `topic` on `broker`.
fn kafka(broker: &Broker, topic: &str) -> impl Fn() -> KafkaSource<Rec> + Send + Sync + 'static {
    let (brokers, topic) = (broker.address(), topic.to_owned());
    move || KafkaSource::new(brokers.clone(), topic.clone(), decode)
}

#[test]
fn per_partition_watermarks_give_the_memory_sources_windows_on_1_2_and_4_workers() {
    let broker = Broker::start();
    let topic = "speeds";
    broker.create_topic(topic, 4);
    let records = records(0x5eed_0001, 4, 1_500, true);
    produce(&broker, topic, &records, 4);
    let records = Arc::new(records);
    let memory = Arc::clone(&records);
    let (expected, reference) = count_windows(
        move || MemorySource::partitioned(Arc::clone(&memory), 4).batch_size(64),
        1,
    );
    assert!(reference.late_dropped > 0, "the input has late records");
    assert!(!expected.is_empty());
    for workers in [1, 2, 4] {
        let (rows, report) = count_windows(kafka(&broker, topic), workers);
        assert_eq!(report.records_in, records.len() as u64, "{workers} workers");
        assert_eq!(
            report.late_dropped, reference.late_dropped,
            "{workers} workers: late"
        );
        assert_eq!(rows, expected, "{workers} workers: windows");
    }
}

fn produce_values(broker: &Broker, topic: &str, values: &[(i32, Vec<u8>)]) {
    let messages: Vec<Batched<'_>> = values
        .iter()
        .map(|(p, value)| (*p, None, Some(value.as_slice()), None))
        .collect();
    broker.produce_batched(topic, &messages);
}

/// Waits (at most `bound`, a failure bound) until `done` holds.
fn wait_until(what: &str, bound: Duration, done: impl Fn() -> bool) {
    let deadline = Instant::now() + bound;
    while !done() {
        assert!(Instant::now() < deadline, "{what}: not within {bound:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A continuous job whose topic's last partition gets nothing: under an idle timeout the
/// windows of the other partitions close all the same. On 1 worker over 2 partitions; on 2
/// workers over 3 (the idle partition shares worker 0 with partition 0); and on 2 workers over
/// 2 and 4 over 4, where the idle partition is its worker's only one (that worker's watermark
/// rises to its peers').
#[test]
fn an_idle_partition_under_an_idle_timeout_does_not_stall_windows() {
    let broker = Broker::start();
    for (workers, partitions) in [(1, 2), (2, 3), (2, 2), (4, 4)] {
        let topic = format!("idle{workers}-{partitions}");
        broker.create_topic(&topic, partitions);
        // Event times over 3 s in each active partition.
        let values: Vec<(i32, Vec<u8>)> = (0..300u64)
            .flat_map(|i| {
                (0..partitions - 1).map(move |p| {
                    (
                        p,
                        encode(&Rec {
                            key: 0,
                            ts: BASE + i * 10,
                        }),
                    )
                })
            })
            .collect();
        produce_values(&broker, &topic, &values);
        let sink = MemorySink::new();
        let output = sink.clone();
        let config = Config::workers(workers);
        let stop = config.stop_handle();
        let make = kafka(&broker, &topic);
        let job = std::thread::spawn(move || {
            tideflow::execute(config, move |flow| {
                let strategy = WatermarkStrategy::bounded_delay(Duration::from_millis(100))
                    .with_idle_timeout(Duration::from_secs(1));
                flow.source(make())
                    .with_event_time(|r: &Rec| r.ts)
                    .with_watermark(strategy)
                    .key_by(|r| r.key)
                    .window(Window::tumbling(Duration::from_secs(1))?)
                    .aggregate(Count)
                    .sink(output.clone());
                Ok(())
            })
        });
        // The first two windows close once the last partition is idle.
        wait_until(
            &format!("{workers} workers: two windows closed"),
            Duration::from_secs(60),
            || sink.len() >= 2,
        );
        stop.stop();
        let report = job
            .join()
            .expect("no panic")
            .expect("the job stops cleanly");
        let mut rows: Vec<(u64, u64)> = sink
            .take()
            .into_iter()
            .map(|r| (r.start, r.value))
            .collect();
        rows.sort();
        let first = BASE - BASE % 1_000;
        let per_partition = (first + 1_000 - BASE).div_ceil(10);
        let expected = per_partition * (partitions as u64 - 1);
        // Idleness makes lateness depend on timing: a partition whose first fetch took longer
        // than the idle timeout was idle meanwhile, and its records may be late. Then they
        // are counted as such: never lost, never counted twice.
        let (start, count) = rows[0];
        assert_eq!(start, first, "{workers} workers");
        assert!(
            count <= expected && count + report.late_dropped >= expected,
            "{workers} workers: {count} in the first window, {} late, {expected} expected",
            report.late_dropped
        );
    }
}

/// Stops a job, at its `at`-th read or later, once it completed a new snapshot in `dir`; until
/// then after read `at` it reads once every 16 polls, so the input does not run out first.
struct StopAfterSnapshot {
    reads: u64,
    at: u64,
    dir: PathBuf,
    before: BTreeSet<String>,
}

fn complete_snapshots(dir: &Path) -> BTreeSet<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return BTreeSet::new();
    };
    entries
        .flatten()
        .filter(|entry| entry.path().join("MANIFEST.json").exists())
        .filter_map(|entry| entry.file_name().into_string().ok())
        .collect()
}

impl ReadGate for StopAfterSnapshot {
    fn on_start(&mut self) {
        self.before = complete_snapshots(&self.dir);
    }

    fn before_read(&mut self) -> Gate {
        self.reads += 1;
        if self.reads < self.at {
            return Gate::Read;
        }
        let completed = complete_snapshots(&self.dir)
            .difference(&self.before)
            .next()
            .is_some();
        if completed {
            Gate::Stop
        } else if !(self.reads - self.at).is_multiple_of(16) {
            Gate::Wait(Duration::from_millis(1))
        } else {
            Gate::Read
        }
    }
}

/// Every `(partition, offset)` a source's decoder saw.
type ReadLog = Arc<Mutex<Vec<(i32, i64)>>>;

/// A Kafka source of `topic` that logs each message it decodes into `log`, `batch` messages
/// per read.
fn logged(
    broker: &Broker,
    topic: &str,
    log: &ReadLog,
    batch: usize,
) -> impl Fn() -> KafkaSource<Rec> + Send + Sync + 'static {
    let (brokers, topic, log) = (broker.address(), topic.to_owned(), Arc::clone(log));
    move || {
        let log = Arc::clone(&log);
        KafkaSource::new(brokers.clone(), topic.clone(), move |m| {
            log.lock().expect("no panics").push((m.partition, m.offset));
            decode(m)
        })
        .batch_size(batch)
    }
}

/// A job on `workers` under `trigger`, with snapshots every 200 records in `checkpoint` if
/// given.
fn job_config(workers: usize, trigger: Trigger, checkpoint: Option<&Path>) -> Config {
    let config = Config::workers(workers).trigger(trigger);
    match checkpoint {
        Some(dir) => config.checkpoint(Checkpoint::new(dir).every_records(200)),
        None => config,
    }
}

/// Counts per key in 1 s windows of `source` into `output` (JSON lines).
fn windows_to_file<S: tideflow::source::Source<Item = Rec>>(
    source: impl Fn() -> S + Send + Sync + 'static,
    output: &Path,
    config: Config,
) -> Result<tideflow::JobReport, Error> {
    let output = output.to_path_buf();
    tideflow::execute(config, move |flow| {
        flow.source(source())
            .with_event_time(|r: &Rec| r.ts)
            .with_watermark(Duration::from_millis(100))
            .key_by(|r| r.key)
            .window(Window::tumbling(Duration::from_secs(1))?)
            .aggregate(Count)
            .map(row)
            .sink(FileSink::jsonl(output.clone()));
        Ok(())
    })
}

fn sorted_lines(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    lines.sort();
    lines
}

/// A job stopped after a snapshot and resumed (on the same or another number of workers)
/// reads each partition from the snapshot's offset on, and nothing before it: per partition, a
/// run of consecutive offsets up to the end, one read each; some partition resumes past its
/// start; and the output is the uninterrupted run's.
#[test]
fn a_resumed_job_reads_from_the_snapshots_offsets_on() {
    let broker = Broker::start();
    let topic = "replay";
    let partitions = 4;
    broker.create_topic(topic, partitions);
    let per_partition = 800;
    let records = records(0x5eed_0002, partitions as usize, per_partition, false);
    produce(&broker, topic, &records, partitions as usize);
    let dir = tempfile::tempdir().expect("a temporary directory");
    let reference = dir.path().join("reference.jsonl");
    let log: ReadLog = Arc::default();
    windows_to_file(
        logged(&broker, topic, &log, 1024),
        &reference,
        job_config(1, Trigger::AvailableNow, None),
    )
    .expect("the reference run");
    let expected = sorted_lines(&reference);
    assert!(!expected.is_empty());

    for (case, (before, after)) in [(2, 2), (4, 1), (1, 3)].into_iter().enumerate() {
        let context = format!("{before} then {after} workers");
        let checkpoint = dir.path().join(format!("checkpoint-{case}"));
        let output = dir.path().join(format!("output-{case}.jsonl"));
        let first: ReadLog = Arc::default();
        let make = logged(&broker, topic, &first, 16);
        let gate_dir = checkpoint.clone();
        let config = job_config(before, Trigger::Continuous, Some(&checkpoint));
        // Bounded, so that a run whose input ran out before a snapshot completed ends (and
        // the test fails) rather than waits for ever.
        let stopped = windows_to_file(
            move || Gated {
                inner: make().until_end_offsets(),
                gate: StopAfterSnapshot {
                    reads: 0,
                    at: 10,
                    dir: gate_dir.clone(),
                    before: BTreeSet::new(),
                },
            },
            &output,
            config,
        );
        let error = stopped
            .err()
            .unwrap_or_else(|| panic!("{context}: the input ran out before a snapshot completed"));
        assert!(
            error.to_string().contains("the test stopped the job"),
            "{context}: {error}"
        );

        let second: ReadLog = Arc::default();
        let report = windows_to_file(
            logged(&broker, topic, &second, 16),
            &output,
            job_config(after, Trigger::AvailableNow, Some(&checkpoint)),
        )
        .unwrap_or_else(|e| panic!("{context}: the resumed run: {e}"));
        assert!(
            report.snapshots.resumed_from.is_some(),
            "{context}: resumed"
        );
        assert_eq!(sorted_lines(&output), expected, "{context}: the output");

        let by_partition = |log: &ReadLog| {
            let mut by: BTreeMap<i32, Vec<i64>> = BTreeMap::new();
            for &(p, offset) in log.lock().expect("no panics").iter() {
                by.entry(p).or_default().push(offset);
            }
            by
        };
        let (first, second) = (by_partition(&first), by_partition(&second));
        let mut resumed_past_start = false;
        let end = per_partition as i64;
        for partition in 0..partitions {
            let mut read = second.get(&partition).cloned().unwrap_or_default();
            read.sort_unstable();
            let start = read.first().copied().unwrap_or(end);
            assert_eq!(
                read,
                (start..end).collect::<Vec<_>>(),
                "{context}: partition {partition}: one read per offset from {start} to the end"
            );
            let before = first
                .get(&partition)
                .and_then(|r| r.iter().max())
                .map_or(0, |max| max + 1);
            assert!(
                start <= before,
                "{context}: partition {partition}: resumed at {start}, past what the first run read ({before})"
            );
            resumed_past_start |= start > 0;
        }
        assert!(
            resumed_past_start,
            "{context}: the second run resumed past the start"
        );
    }
}

/// A topic with a bad message in each partition: undecodable at partition 0 offset 1, a
/// tombstone at partition 1 offset 1, a value over the 16-byte limit at partition 1 offset 2.
fn bad_topic(broker: &Broker) -> &'static str {
    let topic = "bad";
    broker.create_topic(topic, 2);
    let long = vec![b'9'; 40];
    let messages: Vec<Batched<'_>> = vec![
        (0, None, Some(b"1 1000"), None),
        (0, None, Some(b"x"), None),
        (0, None, Some(b"2 2000"), None),
        (1, None, Some(b"3 3000"), None),
        (1, Some(b"k"), None, None),
        (1, None, Some(&long), None),
        (1, None, Some(b"4 4000"), None),
    ];
    broker.produce_batched(topic, &messages);
    topic
}

fn run_with_policy(
    broker: &Broker,
    topic: &str,
    policy: OnError,
) -> Result<tideflow::JobReport, Error> {
    let (brokers, topic) = (broker.address(), topic.to_owned());
    let config = Config::default().trigger(Trigger::AvailableNow);
    tideflow::execute(config, move |flow| {
        flow.source(
            KafkaSource::new(brokers.clone(), topic.clone(), decode)
                .on_error(policy.clone())
                .max_record_bytes(16),
        )
        .with_event_time(|r: &Rec| r.ts)
        .with_watermark(Duration::ZERO)
        .sink(MemorySink::new());
        Ok(())
    })
}

#[test]
fn bad_messages_follow_each_policy_named_by_partition_and_offset() {
    let broker = Broker::start();
    let topic = bad_topic(&broker);
    let error = run_with_policy(&broker, topic, OnError::Fail).expect_err("fail stops");
    let message = error.to_string();
    assert!(
        [
            "kafka topic bad partition 0 offset 1: 'x' is not 'KEY TS'",
            "kafka topic bad partition 1 offset 1: message has no value (a tombstone)",
        ]
        .contains(&message.as_str()),
        "{message}"
    );
    assert_eq!(error.kind(), ErrorKind::User);

    let report = run_with_policy(&broker, topic, OnError::Skip).expect("skip goes on");
    assert_eq!((report.records_in, report.records_skipped), (4, 3));

    let dir = tempfile::tempdir().expect("a temporary directory");
    let dead = dir.path().join("dead.jsonl");
    let report = run_with_policy(&broker, topic, OnError::DeadLetter(dead.clone()))
        .expect("dead letters go on");
    assert_eq!((report.records_in, report.records_dead_lettered), (4, 3));
    let mut lines: Vec<serde_json::Value> = std::fs::read_to_string(&dead)
        .expect("the dead letters")
        .lines()
        .map(|line| serde_json::from_str(line).expect("JSON"))
        .collect();
    lines.sort_by_key(|line| (line["partition"].as_i64(), line["offset"].as_i64()));
    let expected = [
        r#"{"topic":"bad","partition":0,"offset":1,"reason":"'x' is not 'KEY TS'","raw":"x"}"#,
        r#"{"topic":"bad","partition":1,"offset":1,"reason":"message has no value (a tombstone)","raw":""}"#,
        r#"{"topic":"bad","partition":1,"offset":2,"reason":"message value is longer than 16 bytes","raw":"9999999999999999","truncated":true,"length":40}"#,
    ];
    let expected: Vec<serde_json::Value> = expected
        .iter()
        .map(|line| serde_json::from_str(line).expect("JSON"))
        .collect();
    assert_eq!(lines, expected);
}

#[test]
fn an_unreachable_broker_is_a_one_line_error_naming_its_address() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let address = format!("127.0.0.1:{port}");
    let brokers = address.clone();
    let (done, result) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let outcome = tideflow::execute(Config::default(), move |flow| {
            flow.source(KafkaSource::new(brokers.clone(), "nowhere", decode))
                .with_event_time(|r: &Rec| r.ts)
                .with_watermark(Duration::ZERO)
                .sink(MemorySink::new());
            Ok(())
        });
        let _ = done.send(outcome);
    });
    // A failure bound, not a measurement: the client gives up after about 10 s.
    let outcome = result
        .recv_timeout(Duration::from_secs(120))
        .expect("the job ends instead of hanging");
    let error = outcome.expect_err("no broker, no job");
    let message = error.to_string();
    assert_eq!(error.kind(), ErrorKind::External, "{message}");
    assert!(
        message.contains(&address) && message.contains("nowhere"),
        "{message}"
    );
    assert!(!message.contains('\n'), "{message}");
}

#[test]
fn a_missing_topic_is_an_error_naming_it_and_the_broker() {
    let broker = Broker::start();
    let make = kafka(&broker, "absent");
    let error = tideflow::execute(Config::default(), move |flow| {
        flow.source(make())
            .with_event_time(|r: &Rec| r.ts)
            .with_watermark(Duration::ZERO)
            .sink(MemorySink::new());
        Ok(())
    })
    .expect_err("no topic, no job");
    assert_eq!(
        error.to_string(),
        format!(
            "kafka: topic 'absent' does not exist on {}",
            broker.address()
        )
    );
}

/// Under available-now, a topic produced in batches (whose ListOffsets "latest" this broker
/// gets wrong) is read whole and the job ends; an empty partition finishes at once. The last
/// progress report has each partition's offset, end and lag.
#[test]
fn available_now_reads_a_batched_topic_whole_and_reports_offsets_and_lag() {
    let broker = Broker::start();
    let topic = "batched";
    broker.create_topic(topic, 4);
    let records = records(0x5eed_0003, 3, 1_000, true);
    produce(&broker, topic, &records, 3);
    let listed: Vec<(i64, i64)> = (0..3).map(|p| broker.list_offsets(topic, p)).collect();
    eprintln!("the broker's ListOffsets (earliest, latest) after batched produce: {listed:?}");
    let infos = kafka_partitions(&broker.address(), topic, &[]).expect("the partitions");
    let ends: Vec<(i32, i64, i64)> = infos
        .iter()
        .map(|i| (i.partition, i.earliest, i.latest))
        .collect();
    assert_eq!(
        ends,
        vec![(0, 0, 1_000), (1, 0, 1_000), (2, 0, 1_000), (3, 0, 0)]
    );
    let make = kafka(&broker, topic);
    let (config, reports) = Config::workers(2)
        .trigger(Trigger::AvailableNow)
        .progress_channel(Duration::from_millis(50));
    let report = tideflow::execute(config, move |flow| {
        flow.source(make())
            .with_event_time(|r: &Rec| r.ts)
            .with_watermark(Duration::from_millis(100))
            .sink(MemorySink::new());
        Ok(())
    })
    .expect("the job ends");
    assert_eq!(report.records_in, records.len() as u64);
    let last = reports.iter().last().expect("a final report");
    assert!(last.is_final);
    type Figures = (String, u64, u64, Option<u64>, Option<u64>);
    let partitions: Vec<Figures> = last
        .source_partitions
        .iter()
        .map(|p| (p.source.clone(), p.partition, p.offset, p.end_offset, p.lag))
        .collect();
    let expected: Vec<Figures> = (0..4)
        .map(|p| {
            let n = if p < 3 { 1_000 } else { 0 };
            (topic.to_owned(), p, n, Some(n), Some(0))
        })
        .collect();
    assert_eq!(partitions, expected);
    let text = last.to_prometheus();
    assert!(
        text.contains("tideflow_kafka_partition_offset{topic=\"batched\",partition=\"2\"} 1000\n"),
        "{text}"
    );
    assert!(
        text.contains("tideflow_kafka_partition_lag{topic=\"batched\",partition=\"3\"} 0\n"),
        "{text}"
    );
}

/// Starting offsets on a first run: Spark's JSON (an offset, `-2` for earliest), `latest`,
/// and a partition the topic does not have.
#[test]
fn starting_offsets_pick_where_each_partition_starts() {
    let broker = Broker::start();
    let topic = "starts";
    broker.create_topic(topic, 2);
    let values: Vec<(i32, Vec<u8>)> = (0..20u64)
        .map(|i| {
            (
                (i % 2) as i32,
                encode(&Rec {
                    key: 0,
                    ts: BASE + i,
                }),
            )
        })
        .collect();
    let messages: Vec<Single<'_>> = values
        .iter()
        .map(|(p, v)| (*p, None, v.as_slice(), None))
        .collect();
    // One message per batch: the broker's "latest" is right then.
    broker.produce(topic, &messages);
    let run = |offsets: StartingOffsets| {
        let log: ReadLog = Arc::default();
        let make = logged(&broker, topic, &log, 1024);
        let result = tideflow::execute(
            Config::default().trigger(Trigger::AvailableNow),
            move |flow| {
                flow.source(make().starting_offsets(offsets.clone()))
                    .with_event_time(|r: &Rec| r.ts)
                    .with_watermark(Duration::ZERO)
                    .sink(MemorySink::new());
                Ok(())
            },
        );
        let mut read = log.lock().expect("no panics").clone();
        read.sort_unstable();
        result.map(|_| read)
    };
    let json = StartingOffsets::parse_for_topic(r#"{"starts":{"0":7,"1":-2}}"#, topic)
        .expect("valid JSON");
    let read = run(json).expect("the job runs");
    let expected: Vec<(i32, i64)> = (7..10)
        .map(|o| (0, o))
        .chain((0..10).map(|o| (1, o)))
        .collect();
    assert_eq!(read, expected);
    assert_eq!(run(StartingOffsets::Latest).expect("the job runs"), vec![]);
    let error = run(StartingOffsets::Offsets([(5, 0)].into())).expect_err("no partition 5");
    assert_eq!(
        error.to_string(),
        "starting offsets name partition 5, but topic starts has partitions 0 to 1"
    );
}

/// Sends `signal` (`STOP`, `CONT`) to process `pid`.
fn signal(pid: u32, signal: &str) {
    let status = std::process::Command::new("kill")
        .args([&format!("-{signal}"), &pid.to_string()])
        .status()
        .expect("cannot run kill");
    assert!(status.success(), "kill -{signal} {pid}");
}

/// Resumes a paused broker when dropped, also when the test fails.
struct Resume(u32);

impl Drop for Resume {
    fn drop(&mut self) {
        signal(self.0, "CONT");
    }
}

/// A broker paused (SIGSTOP) while a continuous job reads, with records produced meanwhile,
/// then resumed: the job waits and carries on, and reads every record once.
#[test]
fn a_paused_broker_is_waited_for_and_reading_carries_on() {
    let broker = Broker::start();
    let topic = "paused";
    broker.create_topic(topic, 2);
    let first: Vec<(i32, Vec<u8>)> = (0..100u64)
        .map(|i| {
            (
                (i % 2) as i32,
                encode(&Rec {
                    key: i,
                    ts: BASE + i,
                }),
            )
        })
        .collect();
    produce_values(&broker, topic, &first);
    let sink = MemorySink::new();
    let output = sink.clone();
    let config = Config::workers(2);
    let stop = config.stop_handle();
    let make = kafka(&broker, topic);
    let job = std::thread::spawn(move || {
        tideflow::execute(config, move |flow| {
            flow.source(make())
                .with_event_time(|r: &Rec| r.ts)
                .with_watermark(Duration::ZERO)
                .sink(output.clone());
            Ok(())
        })
    });
    wait_until("the first records read", Duration::from_secs(60), || {
        sink.len() >= 100
    });
    signal(broker.pid(), "STOP");
    let paused = Resume(broker.pid());
    let address = broker.address();
    // Produced while the broker is paused: acknowledged once it resumes.
    let producer = std::thread::spawn(move || {
        let mut config = rdkafka::ClientConfig::new();
        config
            .set("bootstrap.servers", address)
            .set("allow.auto.create.topics", "false")
            .set("enable.idempotence", "true");
        let producer: rdkafka::producer::BaseProducer = config.create().expect("a producer");
        for i in 100..200u64 {
            let value = encode(&Rec {
                key: i,
                ts: BASE + i,
            });
            producer
                .send(
                    rdkafka::producer::BaseRecord::<[u8], [u8]>::to("paused")
                        .partition((i % 2) as i32)
                        .payload(&value),
                )
                .expect("queued");
        }
        use rdkafka::producer::Producer;
        producer
            .flush(Duration::from_secs(120))
            .expect("acknowledged once the broker resumes");
    });
    // Long enough for the consumer's fetches to time out against the paused broker.
    std::thread::sleep(Duration::from_secs(3));
    drop(paused);
    producer.join().expect("no panic");
    wait_until("every record read", Duration::from_secs(120), || {
        sink.len() >= 200
    });
    stop.stop();
    job.join()
        .expect("no panic")
        .expect("the job stops cleanly");
    let mut keys: Vec<u64> = sink.take().into_iter().map(|r| r.key).collect();
    keys.sort_unstable();
    assert_eq!(keys, (0..200).collect::<Vec<_>>());
}
