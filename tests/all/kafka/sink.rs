//! The Kafka sink against a real broker (tansu, tests/all/kafka_broker.rs): at-least-once
//! without snapshots, exactly-once with them, across crashes injected with `TIDEFLOW_FAULT`
//! (in a child process: this test binary run again on one test, as tests/all/runtime.rs
//! does), and its errors.
//!
//! Reading exactly-once output: tansu shows the records of a transaction aborted by *fencing*
//! (a new producer with the same transactional id) to read_committed readers, where Kafka
//! hides them. So a commit a crash interrupted half-way leaves its first records visible
//! here, and the recovery produces the epoch again from the snapshot. Each message carries
//! `tideflow-epoch` and `tideflow-execution`; [`exactly_once`] keeps, per epoch, only the
//! highest execution's records (what Kafka's read_committed would have shown), and counts
//! what it dropped: nothing, unless a commit was interrupted.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};
use tideflow::sink::{FileSink, JsonLinesEncoder, KafkaSink};
use tideflow::source::MemorySource;
use tideflow::{Checkpoint, Config, Error, Flow, JobReport};

use crate::kafka_broker::{Broker, Consumed};
use crate::support::{Gate, Gated, ReadGate};

/// Records in the input.
const RECORDS: u64 = 3_000;
/// Records between snapshots.
const EVERY: u64 = 200;
/// Partitions of the output topics.
const PARTITIONS: i32 = 3;
/// How long the reader waits for nothing new before it stops.
const QUIET: Duration = Duration::from_millis(1_500);
/// Set in the child process: `BROKERS|TOPIC|CHECKPOINT DIR|SNAPSHOT EVERY N RECORDS`.
const CHILD: &str = "TIDEFLOW_TEST_KAFKA_SINK_CHILD";

/// Paces the source: a pause before each read, so that a job with snapshots every
/// [`EVERY`] records takes many (the crash points are at the second and third).
struct Pace;

impl ReadGate for Pace {
    fn before_read(&mut self) -> Gate {
        std::thread::sleep(Duration::from_millis(1));
        Gate::Read
    }
}

/// The job: `n -> (n, n * n % 1000)` on 2 workers, its key `n`.
fn build(flow: &mut Flow<'_>, sink: impl tideflow::sink::Sink<(u64, u64)>) {
    let input: Vec<u64> = (0..RECORDS).collect();
    let source = Gated {
        inner: MemorySource::partitioned(input, 2).batch_size(16),
        gate: Pace,
    };
    flow.source(source)
        .with_event_time(|n: &u64| *n)
        .with_watermark(Duration::ZERO)
        .map(|n| (n, n * n % 1000))
        .sink(sink);
}

fn kafka_sink(brokers: &str, topic: &str) -> KafkaSink<(u64, u64), JsonLinesEncoder> {
    KafkaSink::new(brokers, topic, JsonLinesEncoder).with_key(|row: &(u64, u64), key| {
        key.extend_from_slice(row.0.to_string().as_bytes());
        true
    })
}

/// Runs the job into `topic`; with snapshots into `dir` every `every` records if given.
fn run(brokers: &str, topic: &str, dir: Option<(&Path, u64)>) -> Result<JobReport, Error> {
    run_on(2, brokers, topic, dir)
}

/// [`run`] on `workers` workers.
fn run_on(
    workers: usize,
    brokers: &str,
    topic: &str,
    dir: Option<(&Path, u64)>,
) -> Result<JobReport, Error> {
    let mut config = Config::workers(workers);
    if let Some((dir, every)) = dir {
        config = config.checkpoint(Checkpoint::new(dir).every_records(every));
    }
    let (brokers, topic) = (brokers.to_string(), topic.to_string());
    tideflow::execute(config, move |flow| {
        build(flow, kafka_sink(&brokers, &topic));
        Ok(())
    })
}

/// The rows of an uninterrupted run, as JSON values, sorted.
fn expected() -> Vec<String> {
    let mut rows: Vec<String> = (0..RECORDS)
        .map(|n| format!("[{n},{}]", n * n % 1000))
        .collect();
    rows.sort();
    rows
}

/// Every message of `topic` (read_committed), once at least [`RECORDS`] are there: the reader
/// stops after [`QUIET`] without a message, which a loaded machine may take before the first
/// one, so a short read is tried again (at most 20 times).
fn read_all(broker: &Broker, topic: &str) -> Vec<Consumed> {
    read_at_least(broker, topic, RECORDS as usize)
}

/// [`read_all`], once at least `count` messages are there.
fn read_at_least(broker: &Broker, topic: &str, count: usize) -> Vec<Consumed> {
    let mut read = Vec::new();
    for _ in 0..20 {
        read = broker.read_committed(topic, QUIET);
        if read.len() >= count {
            return read;
        }
    }
    panic!(
        "{topic}: {} messages, expected at least {count}",
        read.len()
    );
}

fn values(read: &[Consumed]) -> Vec<String> {
    let mut values: Vec<String> = read
        .iter()
        .map(|c| String::from_utf8(c.value.clone()).expect("UTF-8 values"))
        .collect();
    values.sort();
    values
}

fn header(consumed: &Consumed, name: &str) -> Option<u64> {
    consumed
        .headers
        .iter()
        .find(|(key, _)| key == name)
        .and_then(|(_, value)| std::str::from_utf8(value).ok()?.parse().ok())
}

/// The exactly-once output of a read_committed reader on a broker that shows fence-aborted
/// records (see the module docs): per epoch, the records of the highest execution. Returns
/// them and how many records were dropped. Every record must carry both headers.
fn exactly_once(read: Vec<Consumed>) -> (Vec<Consumed>, usize) {
    let (kept, dropped) = exactly_once_by_epoch(read);
    (kept, dropped.values().sum())
}

/// [`exactly_once`], with the records dropped counted by epoch.
fn exactly_once_by_epoch(read: Vec<Consumed>) -> (Vec<Consumed>, BTreeMap<u64, usize>) {
    let mut latest: BTreeMap<u64, u64> = BTreeMap::new();
    for consumed in &read {
        let epoch = header(consumed, "tideflow-epoch").expect("a tideflow-epoch header");
        let execution =
            header(consumed, "tideflow-execution").expect("a tideflow-execution header");
        let entry = latest.entry(epoch).or_insert(execution);
        *entry = (*entry).max(execution);
    }
    let mut dropped = BTreeMap::new();
    let kept: Vec<Consumed> = read
        .into_iter()
        .filter(|c| {
            let epoch = header(c, "tideflow-epoch").expect("checked");
            let keep = header(c, "tideflow-execution") == latest.get(&epoch).copied();
            if !keep {
                *dropped.entry(epoch).or_insert(0) += 1;
            }
            keep
        })
        .collect();
    (kept, dropped)
}

#[test]
fn at_least_once_rows_equal_the_file_sinks() {
    let broker = Broker::start();
    broker.create_topic("alo", PARTITIONS);
    let dir = tempfile::tempdir().expect("a temporary directory");
    let file = dir.path().join("out.jsonl");
    let path = file.clone();
    tideflow::execute(Config::workers(2), move |flow| {
        build(flow, FileSink::jsonl(&path));
        Ok(())
    })
    .expect("the file run");
    let report = run(&broker.address(), "alo", None).expect("the Kafka run");
    assert_eq!(report.records_out, RECORDS);

    let mut lines: Vec<String> = std::fs::read_to_string(&file)
        .expect("the output file")
        .lines()
        .map(str::to_string)
        .collect();
    lines.sort();
    let read = read_all(&broker, "alo");
    assert_eq!(values(&read), lines);
    assert_eq!(values(&read), expected());
    // The key is the row's first field; no headers without snapshots.
    for consumed in &read {
        let value = String::from_utf8(consumed.value.clone()).expect("UTF-8");
        let key = String::from_utf8(consumed.key.clone().expect("a key")).expect("UTF-8");
        assert!(value.starts_with(&format!("[{key},")), "{key} {value}");
        assert!(consumed.headers.is_empty());
    }
    assert!(
        read.iter().map(|c| c.partition).max() > Some(0),
        "keys spread over partitions"
    );
}

#[test]
fn exactly_once_output_equals_an_uninterrupted_run() {
    let broker = Broker::start();
    broker.create_topic("eos", PARTITIONS);
    let dir = tempfile::tempdir().expect("a temporary directory");
    let report = run(&broker.address(), "eos", Some((dir.path(), EVERY))).expect("the run");
    assert!(report.snapshots.completed > 1, "{:?}", report.snapshots);

    let (kept, dropped) = exactly_once(read_all(&broker, "eos"));
    assert_eq!(
        dropped, 0,
        "no commit was interrupted: the filter drops nothing"
    );
    assert_eq!(values(&kept), expected());
    let epochs: std::collections::BTreeSet<u64> = kept
        .iter()
        .map(|c| header(c, "tideflow-epoch").expect("an epoch"))
        .collect();
    assert!(epochs.len() > 1, "one transaction per epoch: {epochs:?}");
    assert!(kept
        .iter()
        .all(|c| header(c, "tideflow-execution") == Some(1)));

    // The marker: the last epoch with rows (an epoch without rows commits no transaction),
    // committed to the group named after the transactional id (made of the checkpoint
    // directory's id); the final epoch, u64::MAX, is i64::MAX.
    let id = std::fs::read_to_string(dir.path().join("ID")).expect("the checkpoint's id");
    let group = format!("tideflow-{}-sink0-committed", id.trim());
    let last = *epochs.last().expect("epochs");
    let last = i64::try_from(last).unwrap_or(i64::MAX);
    assert_eq!(marker(&broker, "eos", &group), Some(last));

    // Running the complete job again changes nothing.
    let again = run(&broker.address(), "eos", Some((dir.path(), EVERY))).expect("again");
    assert!(again.snapshots.already_complete);
    let (kept, dropped) = exactly_once(read_all(&broker, "eos"));
    assert_eq!((values(&kept), dropped), (expected(), 0));
}

/// The offset committed for partition 0 of `topic` by consumer group `group`.
fn marker(broker: &Broker, topic: &str, group: &str) -> Option<i64> {
    let consumer: BaseConsumer = broker
        .config()
        .set("group.id", group)
        .create()
        .expect("a consumer");
    let mut list = TopicPartitionList::new();
    list.add_partition(topic, 0);
    let read = consumer
        .committed_offsets(list, Duration::from_secs(30))
        .expect("the committed offsets");
    let offset = read.elements().first().map(|e| e.offset());
    match offset {
        Some(Offset::Offset(offset)) => Some(offset),
        _ => None,
    }
}

/// The child process's side of the crash tests: runs the job as `CHILD` says (with the fault
/// `TIDEFLOW_FAULT` sets, which aborts the process).
fn child_job() {
    let spec = std::env::var(CHILD).expect("the child's job");
    let fields: Vec<&str> = spec.split('|').collect();
    let every: u64 = fields[3].parse().expect("a record count");
    let result = run(fields[0], fields[1], Some((Path::new(fields[2]), every)));
    panic!("the job was not interrupted: {result:?}");
}

/// Runs the job in a child process that crashes at `fault`; returns its stderr.
fn crash(broker: &Broker, topic: &str, dir: &Path, every: u64, fault: &str) -> String {
    let module = module_path!()
        .split_once("::")
        .map_or("", |(_, module)| module);
    let name = format!("{module}::interrupted_commits_are_recovered_exactly_once");
    let out = Command::new(std::env::current_exe().expect("the test binary"))
        .args([&name, "--exact", "--nocapture", "--test-threads", "1"])
        .env(
            CHILD,
            format!("{}|{topic}|{}|{every}", broker.address(), dir.display()),
        )
        .env("TIDEFLOW_FAULT", fault)
        .output()
        .expect("the test binary runs");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !out.status.success() && stderr.contains("TIDEFLOW_FAULT: crashing"),
        "the child did not crash at {fault}:\n{stderr}"
    );
    stderr
}

#[test]
fn interrupted_commits_are_recovered_exactly_once() {
    if std::env::var_os(CHILD).is_some() {
        child_job();
        return;
    }
    let broker = Broker::start();
    // (fault, snapshot every N records, whether the crash leaves records of an unfinished
    // commit behind). With 10^9 records per snapshot the only snapshot is the final one: its
    // job is complete once its manifest is written, so the restart finishes the commit from
    // the manifest alone (the committer reopened by the checkpoint, the job not built).
    let cases = [
        ("after-parts:3", EVERY, false),
        ("after-manifest:2", EVERY, false),
        ("mid-commit:3", EVERY, true),
        ("during-recovery", EVERY, true),
        ("after-manifest:1", 1_000_000_000, false),
        ("mid-commit:1", 1_000_000_000, true),
    ];
    for (index, (fault, every, leftovers)) in cases.into_iter().enumerate() {
        let topic = format!("crash{index}");
        broker.create_topic(&topic, PARTITIONS);
        let dir = tempfile::tempdir().expect("a temporary directory");
        let ck: PathBuf = dir.path().join("ck");
        if fault == "during-recovery" {
            // Crash in a commit, then again in the recovery's commit of the same epoch.
            crash(&broker, &topic, &ck, every, "mid-commit:3");
        }
        crash(&broker, &topic, &ck, every, fault);
        // The restart runs on another worker count (the sink writes from worker 0 either way).
        let workers = if index % 2 == 0 { 1 } else { 3 };
        let report = run_on(workers, &broker.address(), &topic, Some((&ck, every)))
            .unwrap_or_else(|e| panic!("{fault}: the restart fails: {e}"));
        let (kept, dropped) = exactly_once_by_epoch(read_all(&broker, &topic));
        assert_eq!(values(&kept), expected(), "{fault}: exactly once");
        // Only the epoch whose commit was interrupted left records behind (visible on tansu,
        // see the module docs); nothing committed was produced again.
        assert_eq!(
            dropped.len(),
            usize::from(leftovers),
            "{fault}: records left behind, by epoch: {dropped:?}"
        );
        if every == 1_000_000_000 {
            assert!(report.snapshots.already_complete, "{fault}");
        }
        // What the first execution committed is not produced again: every epoch is one
        // execution's.
        let mut by_epoch: BTreeMap<u64, u64> = BTreeMap::new();
        for consumed in &kept {
            let epoch = header(consumed, "tideflow-epoch").expect("an epoch");
            let execution = header(consumed, "tideflow-execution").expect("an execution");
            assert_eq!(*by_epoch.entry(epoch).or_insert(execution), execution);
        }
    }
}

#[test]
fn a_missing_topic_or_an_unreachable_broker_is_one_line_naming_it() {
    let broker = Broker::start();
    let dir = tempfile::tempdir().expect("a temporary directory");
    for snapshots in [None, Some((dir.path(), EVERY))] {
        let error = run(&broker.address(), "nowhere", snapshots).expect_err("no topic");
        let message = error.to_string();
        assert!(
            message.contains("Kafka output topic nowhere does not exist")
                && message.contains(&broker.address())
                && !message.contains('\n'),
            "{message}"
        );
    }

    // Nothing listens on a port just freed.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let address = format!("127.0.0.1:{port}");
    let error = run(&address, "out", None).expect_err("no broker");
    let message = error.to_string();
    assert!(
        message.contains(&format!("cannot reach the Kafka broker at {address}"))
            && message.contains("out")
            && !message.contains('\n'),
        "{message}"
    );
}

#[test]
fn a_restarted_job_fences_the_producer_of_the_previous_one() {
    let broker = Broker::start();
    broker.create_topic("fenced", PARTITIONS);
    // A producer of an earlier run that is still alive, mid-transaction, with the job's
    // transactional id (the `transactional.id` option sets its prefix).
    let stale: BaseProducer = broker
        .config()
        .set("transactional.id", "fence-test-sink0")
        .set("allow.auto.create.topics", "false")
        .create()
        .expect("a producer");
    stale
        .init_transactions(Duration::from_secs(30))
        .expect("init");
    stale.begin_transaction().expect("begin");
    stale
        .send(
            BaseRecord::<str, str>::to("fenced")
                .payload("stale")
                .partition(0),
        )
        .map_err(|(e, _)| e)
        .expect("sends");
    stale.flush(Duration::from_secs(30)).expect("flushed");

    let dir = tempfile::tempdir().expect("a temporary directory");
    let (brokers, config) = (
        broker.address(),
        Config::workers(2).checkpoint(Checkpoint::new(dir.path()).every_records(EVERY)),
    );
    tideflow::execute(config, move |flow| {
        build(
            flow,
            kafka_sink(&brokers, "fenced").option("transactional.id", "fence-test"),
        );
        Ok(())
    })
    .expect("the job");
    // Fenced: its transaction cannot commit. (Kafka answers PRODUCER_FENCED; tansu leaves the
    // commit waiting, so it times out. An unfenced producer commits, as the control shows; a
    // machine too loaded to commit within the bound could only make this pass wrongly, never
    // fail.)
    let fenced = stale.commit_transaction(Duration::from_secs(5));
    assert!(fenced.is_err(), "the stale producer was fenced");
    let control: BaseProducer = broker
        .config()
        .set("transactional.id", "fence-control")
        .set("allow.auto.create.topics", "false")
        .create()
        .expect("a producer");
    control
        .init_transactions(Duration::from_secs(30))
        .expect("init");
    control.begin_transaction().expect("begin");
    control
        .send(
            BaseRecord::<str, str>::to("fenced")
                .payload("stale")
                .partition(0),
        )
        .map_err(|(e, _)| e)
        .expect("sends");
    control
        .commit_transaction(Duration::from_secs(60))
        .expect("an unfenced producer commits");

    // The job's own output is exactly the rows; the stale record (no headers) is left aside
    // (tansu shows it: see the module docs).
    let read = read_all(&broker, "fenced");
    let (ours, stale): (Vec<Consumed>, Vec<Consumed>) =
        read.into_iter().partition(|c| !c.headers.is_empty());
    assert!(stale.iter().all(|c| c.value == b"stale"), "{stale:?}");
    let (kept, dropped) = exactly_once(ours);
    assert_eq!((values(&kept), dropped), (expected(), 0));
}

/// A Kafka sink that pauses the broker (SIGSTOP) once it has started: what it sends then is
/// never acknowledged.
struct PausingSink {
    inner: KafkaSink<(u64, u64), JsonLinesEncoder>,
    broker: u32,
}

impl tideflow::sink::Sink<(u64, u64)> for PausingSink {
    fn on_start(&mut self, context: &tideflow::sink::SinkContext) -> Result<(), Error> {
        self.inner.on_start(context)?;
        signal(self.broker, "-STOP");
        Ok(())
    }
    fn write(&mut self, batch: &mut Vec<tideflow::Event<(u64, u64)>>) -> Result<(), Error> {
        self.inner.write(batch)
    }
    fn on_watermark(&mut self, watermark: u64) -> Result<(), Error> {
        self.inner.on_watermark(watermark)
    }
    fn on_close(&mut self) -> Result<(), Error> {
        self.inner.on_close()
    }
    fn parallelism(&self) -> tideflow::sink::Parallelism {
        tideflow::sink::Parallelism::Single
    }
}

fn signal(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success(), "kill {signal} {pid}");
}

#[test]
fn undelivered_messages_fail_the_job_naming_the_topic() {
    let broker = Broker::start();
    broker.create_topic("lost", PARTITIONS);
    let (brokers, pid) = (broker.address(), broker.pid());
    let result = tideflow::execute(Config::workers(2), move |flow| {
        let inner = kafka_sink(&brokers, "lost").option("message.timeout.ms", "1000");
        build(flow, PausingSink { inner, broker: pid });
        Ok(())
    });
    signal(broker.pid(), "-CONT");
    let message = result.expect_err("nothing was delivered").to_string();
    assert!(
        message.contains(&format!("Kafka output topic lost at {}", broker.address()))
            && message.contains("not delivered")
            && !message.contains('\n'),
        "{message}"
    );
}

/// An exactly-once Kafka sink that pauses the broker (SIGSTOP) at its third pre-commit, just
/// before that snapshot's commit, and has it resumed (SIGCONT) a moment later.
struct PausingCommitSink {
    inner: KafkaSink<(u64, u64), JsonLinesEncoder>,
    broker: u32,
    pre_commits: u64,
    resumed: Option<std::thread::JoinHandle<()>>,
}

impl tideflow::sink::Sink<(u64, u64)> for PausingCommitSink {
    fn write(&mut self, batch: &mut Vec<tideflow::Event<(u64, u64)>>) -> Result<(), Error> {
        self.inner.write(batch)
    }
    fn parallelism(&self) -> tideflow::sink::Parallelism {
        tideflow::sink::Parallelism::Single
    }
    fn committer(&mut self) -> Option<Box<dyn tideflow::sink::Committer>> {
        self.inner.committer()
    }
    fn begin_staging(&mut self, recovered: &tideflow::sink::Recovered) {
        self.inner.begin_staging(recovered);
    }
    fn pre_commit(&mut self, epoch: u64) -> Result<Vec<u8>, Error> {
        self.pre_commits += 1;
        if self.pre_commits == 3 {
            signal(self.broker, "-STOP");
            let broker = self.broker;
            self.resumed = Some(std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(1_500));
                signal(broker, "-CONT");
            }));
        }
        self.inner.pre_commit(epoch)
    }
    fn on_close(&mut self) -> Result<(), Error> {
        if let Some(resumed) = self.resumed.take() {
            resumed.join().expect("the broker is resumed");
        }
        self.inner.on_close()
    }
}

#[test]
fn a_broker_paused_during_a_commit_is_waited_for() {
    let broker = Broker::start();
    broker.create_topic("paused", PARTITIONS);
    let dir = tempfile::tempdir().expect("a temporary directory");
    let (brokers, pid) = (broker.address(), broker.pid());
    let config = Config::workers(2).checkpoint(Checkpoint::new(dir.path()).every_records(EVERY));
    let report = tideflow::execute(config, move |flow| {
        let sink = PausingCommitSink {
            inner: kafka_sink(&brokers, "paused"),
            broker: pid,
            pre_commits: 0,
            resumed: None,
        };
        build(flow, sink);
        Ok(())
    })
    .expect("the job waits for the broker and carries on");
    // Each snapshot has a pre-commit of the sink: the third paused the broker.
    assert!(report.snapshots.completed >= 3, "{:?}", report.snapshots);
    let (kept, dropped) = exactly_once(read_all(&broker, "paused"));
    assert_eq!((values(&kept), dropped), (expected(), 0));
}

/// A windowed job whose results and late records go to two Kafka topics, or two memory
/// sinks: per-user counts in 1 s windows; every 40th click comes 3 s behind.
fn windowed<R, L>(flow: &mut Flow<'_>, rows: R, late: L) -> Result<(), Error>
where
    R: tideflow::sink::Sink<tideflow::WindowResult<String, u64>>,
    L: tideflow::sink::Sink<tideflow::LateRecord<String, (String, u64)>>,
{
    let clicks: Vec<(String, u64)> = (0..RECORDS)
        .map(|n| {
            let time = n * 10;
            let time = if n % 40 == 39 {
                time.saturating_sub(3_000)
            } else {
                time
            };
            (format!("user{}", n % 7), time)
        })
        .collect();
    let source = Gated {
        inner: MemorySource::new(clicks).batch_size(16),
        gate: Pace,
    };
    let (results, too_late) = flow
        .source(source)
        .with_event_time(|click: &(String, u64)| click.1)
        .with_watermark(Duration::ZERO)
        .key_by(|click: &(String, u64)| click.0.clone())
        .window(tideflow::Window::tumbling(Duration::from_secs(1))?)
        .aggregate_with_late(tideflow::aggregate::Count);
    results.sink(rows);
    too_late.sink(late);
    Ok(())
}

fn json<T: serde::Serialize>(rows: Vec<T>) -> Vec<String> {
    let mut rows: Vec<String> = rows
        .iter()
        .map(|row| serde_json::to_string(row).expect("JSON"))
        .collect();
    rows.sort();
    rows
}

#[test]
fn windowed_results_and_late_records_go_to_two_topics_exactly_once() {
    let (rows, late) = (
        tideflow::sink::MemorySink::new(),
        tideflow::sink::MemorySink::new(),
    );
    let (rows_out, late_out) = (rows.clone(), late.clone());
    tideflow::execute(Config::workers(2), move |flow| {
        windowed(flow, rows_out.clone(), late_out.clone())
    })
    .expect("the memory run");
    let (rows, late) = (json(rows.take()), json(late.take()));
    assert!(!late.is_empty());

    let broker = Broker::start();
    broker.create_topic("counts", PARTITIONS);
    broker.create_topic("late", 1);
    let dir = tempfile::tempdir().expect("a temporary directory");
    let brokers = broker.address();
    let config = Config::workers(2).checkpoint(Checkpoint::new(dir.path()).every_records(EVERY));
    tideflow::execute(config, move |flow| {
        let key = |row: &tideflow::WindowResult<String, u64>, key: &mut Vec<u8>| {
            key.extend_from_slice(row.key.as_bytes());
            true
        };
        windowed(
            flow,
            KafkaSink::new(&brokers, "counts", JsonLinesEncoder).with_key(key),
            KafkaSink::new(&brokers, "late", JsonLinesEncoder),
        )
    })
    .expect("the Kafka run");
    let (counts, dropped) = exactly_once(read_at_least(&broker, "counts", rows.len()));
    assert_eq!((values(&counts), dropped), (rows, 0));
    assert!(counts.iter().all(|c| {
        let value = String::from_utf8_lossy(&c.value);
        let key = String::from_utf8_lossy(c.key.as_deref().unwrap_or_default());
        value.contains(&format!("\"key\":\"{key}\""))
    }));
    let (late_read, dropped) = exactly_once(read_at_least(&broker, "late", late.len()));
    assert_eq!((values(&late_read), dropped), (late, 0));
    assert!(late_read.iter().all(|c| c.key.is_none()));
}
