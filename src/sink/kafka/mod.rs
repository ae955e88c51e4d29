//! A sink that writes records to a Kafka topic, and its committer for exactly-once output
//! (`commit.rs`); the connection, topic check and delivery reports both use are in
//! `client.rs`. docs/notes/kafka-sink.md has the user-facing write-up.
//!
//! Without snapshots the sink produces as rows come, through an idempotent producer, and
//! flushes when the input ends: at-least-once (a crash replays rows already delivered).
//! With snapshots it stages each epoch's rows, hands them to the snapshot as its part
//! ([`Sink::pre_commit`]), and the committer produces them in one Kafka transaction once the
//! snapshot is complete: exactly-once for a read_committed reader.

mod client;
pub(crate) mod commit;

use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use tideflow_operators::Event;

use super::{Committer, Encoder, Parallelism, Recovered, Sink, SinkContext};
use crate::error::Error;
use client::{DeliveryContext, Target};
use commit::{KafkaCommitter, Rows};

/// The committer kind the manifest names (`CommitTarget::Reopen`).
pub(crate) const KIND: &str = "kafka";

/// How a record's key is written: appends the key's bytes, returns `false` for no key.
type KeyFn<D> = Box<dyn Fn(&D, &mut Vec<u8>) -> bool>;

/// Writes records to one Kafka topic, from worker 0 (records of all workers are gathered
/// there). The value of each message is the encoder's bytes for the record, less the trailing
/// newline; the key is what [`KafkaSink::with_key`] writes, or none.
///
/// The topic must exist: it is checked at start, and a missing topic or an unreachable broker
/// stops the job with one line naming both. Producers never create topics
/// (`allow.auto.create.topics=false`). Every failed delivery stops the job, naming the topic.
///
/// - Without snapshots: **at-least-once**. An idempotent producer (`enable.idempotence=true`)
///   sends rows as they come; delivery reports are served without waiting; the input's end
///   flushes and waits for every acknowledgement.
/// - In a job with snapshots: **exactly-once** for a `read_committed` reader. Rows are staged
///   per epoch, kept in the snapshot, and produced in one transaction per epoch when the
///   snapshot is complete, with a marker (the epoch, as the committed offset of a consumer
///   group named after the transactional id) committed in the same transaction. A restarted
///   job fences the previous run's producer and commits again only the epoch the marker shows
///   uncommitted. Each message carries the headers `tideflow-epoch` and `tideflow-execution`
///   (decimal); on a broker that shows records of fence-aborted transactions to
///   `read_committed` readers (tansu), keep, per epoch, only the highest execution's records.
///
/// # Examples
/// ```
/// use tideflow::sink::{JsonLinesEncoder, KafkaSink};
/// let sink = KafkaSink::new("127.0.0.1:9092", "clicks-per-user", JsonLinesEncoder)
///     .with_key(|row: &(String, u64), key| {
///         key.extend_from_slice(row.0.as_bytes());
///         true
///     })
///     .option("compression.type", "lz4");
/// # let _ = sink;
/// ```
pub struct KafkaSink<D, E> {
    target: Target,
    encoder: E,
    key: Option<KeyFn<D>>,
    /// At-least-once: the producer, once started.
    producer: Option<BaseProducer<DeliveryContext>>,
    /// Exactly-once: the rows staged since the last pre-commit.
    staged: Option<Rows>,
    /// A record's encoded value.
    value: Vec<u8>,
    /// A record's key.
    key_bytes: Vec<u8>,
}

impl<D: 'static, E: Encoder<D>> KafkaSink<D, E> {
    /// Writes records encoded by `encoder` to `topic` on the brokers `brokers`
    /// (`HOST:PORT[,HOST:PORT...]`), without keys.
    pub fn new(brokers: impl Into<String>, topic: impl Into<String>, mut encoder: E) -> Self {
        // One record per message: a format with a header row (CSV) writes none.
        encoder.continue_file();
        KafkaSink {
            target: Target::new(brokers.into(), topic.into()),
            encoder,
            key: None,
            producer: None,
            staged: None,
            value: Vec::new(),
            key_bytes: Vec::new(),
        }
    }

    /// Writes each message's key with `key`: it appends the key's bytes to the buffer it gets
    /// (empty) and returns `true`, or `false` for a message without a key. Kafka's default
    /// partitioner then sends equal keys to the same partition. By default, no key.
    pub fn with_key(mut self, key: impl Fn(&D, &mut Vec<u8>) -> bool + 'static) -> Self {
        self.key = Some(Box::new(key));
        self
    }

    /// Sets a librdkafka client property (`KEY=VALUE`, as in librdkafka's CONFIGURATION.md) on
    /// every client the sink makes; repeatable, the last value of a key wins. The sink's own
    /// settings win over these: `bootstrap.servers` (the brokers given), `enable.idempotence`
    /// (`true`) and `allow.auto.create.topics` (`false`). `transactional.id` sets the prefix
    /// of the exactly-once transactional id (the id is `PREFIX-SINK`, `SINK` the sink's name in
    /// the checkpoint, `sink0`...). By default, `tideflow-ID`, `ID` the checkpoint directory's
    /// id ([`CommitContext::checkpoint_id`](super::CommitContext::checkpoint_id)).
    pub fn option(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.target.set(key.into(), value.into());
        self
    }

    /// Encodes `record`'s value (less its trailing newline) into `self.value` and its key
    /// into `self.key_bytes`; returns whether it has a key.
    fn encode(&mut self, record: &D) -> Result<bool, Error> {
        self.value.clear();
        self.encoder.encode(record, &mut self.value)?;
        if self.value.last() == Some(&b'\n') {
            self.value.pop();
        }
        self.key_bytes.clear();
        Ok(self
            .key
            .as_ref()
            .is_some_and(|key| key(record, &mut self.key_bytes)))
    }

    /// At-least-once: sends the batch, serving delivery reports while the queue is full.
    fn produce(&mut self, batch: &mut Vec<Event<D>>) -> Result<(), Error> {
        let Some(producer) = self.producer.take() else {
            return Err(Error::Internal(
                "the Kafka sink wrote before it started".into(),
            ));
        };
        let mut result = Ok(());
        for event in batch.drain(..) {
            if result.is_err() {
                continue;
            }
            result = self.encode(&event.data).and_then(|keyed| {
                let mut record =
                    BaseRecord::<[u8], [u8]>::to(self.target.topic()).payload(&self.value[..]);
                if keyed {
                    record = record.key(&self.key_bytes[..]);
                }
                client::send(&producer, record, &self.target)
            });
        }
        // Serves the reports that are ready, without waiting.
        producer.poll(std::time::Duration::ZERO);
        let checked = producer.context().check(&self.target);
        self.producer = Some(producer);
        result.and(checked)
    }
}

impl<D: 'static, E: Encoder<D>> Sink<D> for KafkaSink<D, E> {
    /// At-least-once: makes the producer and checks the topic. Exactly-once: nothing (the
    /// committer checked the topic when the job registered it).
    fn on_start(&mut self, _context: &SinkContext) -> Result<(), Error> {
        if self.staged.is_some() {
            return Ok(());
        }
        let producer = self.target.producer(None)?;
        self.target.check_topic(producer.client())?;
        self.producer = Some(producer);
        Ok(())
    }

    fn write(&mut self, batch: &mut Vec<Event<D>>) -> Result<(), Error> {
        if self.staged.is_none() {
            return self.produce(batch);
        }
        for event in batch.drain(..) {
            let keyed = self.encode(&event.data)?;
            let key = keyed.then_some(&self.key_bytes[..]);
            self.staged
                .as_mut()
                .expect("staging")
                .push(key, &self.value)?;
        }
        Ok(())
    }

    /// At-least-once: serves delivery reports (the failures stop the job).
    fn on_watermark(&mut self, _watermark: u64) -> Result<(), Error> {
        match &self.producer {
            Some(producer) => {
                producer.poll(std::time::Duration::ZERO);
                producer.context().check(&self.target)
            }
            None => Ok(()),
        }
    }

    /// At-least-once: waits until every message is acknowledged (or failed: the failure stops
    /// the job).
    fn on_close(&mut self) -> Result<(), Error> {
        match self.producer.take() {
            Some(producer) => client::flush(&producer, &self.target),
            None => Ok(()),
        }
    }

    fn parallelism(&self) -> Parallelism {
        Parallelism::Single
    }

    fn committer(&mut self) -> Option<Box<dyn Committer>> {
        Some(Box::new(KafkaCommitter::new(self.target.clone())))
    }

    fn begin_staging(&mut self, _recovered: &Recovered) {
        self.staged = Some(Rows::default());
    }

    /// The rows staged since the last call, encoded (`commit.rs`): produced by the commit.
    fn pre_commit(&mut self, _epoch: u64) -> Result<Vec<u8>, Error> {
        Ok(self.staged.as_mut().map(Rows::take).unwrap_or_default())
    }
}
