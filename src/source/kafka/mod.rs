//! The Kafka source: each partition of a topic is a source partition with its own watermark,
//! read by the worker the engine assigns it to (Kafka partition `p` by worker `p % workers`),
//! never through a consumer-group rebalance.
//!
//! A worker's consumer is assigned its partitions explicitly at the offsets the job starts
//! from: [`StartingOffsets`] on a first run, the snapshot's on a resumed one (the snapshot,
//! not a consumer group, is the truth; nothing is committed to the group). Offsets are the
//! source's [`Position`]s, so the source is replayable. Messages are taken from librdkafka's
//! queue in batches without blocking the worker (`reader.rs`), decoded by the function the
//! source was built with, and bad ones (undecodable, tombstones, too long) follow the
//! source's [`OnError`] policy, named by topic, partition and offset.
//!
//! Under available-now ([`KafkaSource::until_end_offsets`], or the trigger) each partition is
//! read up to the end it had when the job started, then finished. That end is the high
//! watermark of the partition's first fetch response, not the broker's ListOffsets answer
//! (which some brokers get wrong when producers batch).

mod offsets;
mod reader;

use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::RDKafkaErrorCode;

pub use offsets::{kafka_partitions, PartitionInfo, StartingOffsets};

use self::offsets::{consumer, topic_partitions, REQUEST_TIMEOUT};
use self::reader::{Consumed, RawMessage, Reader};
use super::bad_input::{
    BadInputHandler, BadRecord, Handled, RecordLocation, DEFAULT_MAX_RECORD_BYTES,
};
use super::{
    OnError, PartitionGauge, PartitionGauges, Position, Source, SourceBatch, SourceContext,
    SourceStatus,
};
use crate::error::Error;

/// Queue entries (messages) taken per read, by default.
const BATCH: usize = 1024;
/// How long the worker waits before looking again when no message is ready.
const IDLE_WAIT: Duration = Duration::from_millis(2);
/// Under available-now, how long a read may block for the first message when the previous
/// read found none (a partition not at its end yet: its fetch is on its way).
const BOUNDED_WAIT_MS: i32 = 5;
/// How often the progress gauges are updated.
const GAUGE_EVERY: Duration = Duration::from_millis(100);
/// How often a transient client error (a broker unreachable) is warned about.
const WARN_EVERY: Duration = Duration::from_secs(30);

/// A Kafka message as the decoding function sees it.
#[derive(Clone, Copy, Debug)]
pub struct KafkaMessage<'a> {
    /// The topic.
    pub topic: &'a str,
    /// The partition.
    pub partition: i32,
    /// The message's offset in its partition.
    pub offset: i64,
    /// The message's timestamp, ms since the Unix epoch: its create time or the broker's
    /// log-append time, as the topic is configured; `None` if it has none.
    pub timestamp: Option<i64>,
    /// The message's key, if it has one.
    pub key: Option<&'a [u8]>,
    /// The message's value (a message without one, a tombstone, is a bad record and never
    /// reaches the decoding function).
    pub value: &'a [u8],
}

/// The decoding function of a [`KafkaSource`].
type Decode<T> = dyn Fn(&KafkaMessage<'_>) -> Result<T, String> + Send + Sync;

/// Reads a Kafka topic: each partition a source partition with its own watermark, shared out
/// among workers by the engine (partition `p` by worker `p % workers`), and replayable from
/// the offsets a snapshot holds.
///
/// Each message's value is decoded by the function the source is built with; an `Err(reason)`
/// makes it a bad record, handled by the source's [`OnError`] policy and named by topic,
/// partition and offset. So are a message without a value (a tombstone) and one longer than
/// [`KafkaSource::max_record_bytes`].
///
/// The consumer reads `read_committed` (records of open or aborted transactions are not
/// read), commits nothing to its consumer group (`group.id` `tideflow`: librdkafka needs one
/// to assign partitions), and treats an offset the broker no longer has as an error
/// (`auto.offset.reset=error`); [`KafkaSource::option`] overrides any of these. A broker that
/// cannot be reached at start stops the job within about 10 s with an [`Error::Kafka`] naming
/// the address; one that goes away while the job runs is waited for (librdkafka reconnects; a
/// warning is printed every 30 s), and a fatal client error stops the job.
///
/// # Examples
/// ```no_run
/// use std::time::Duration;
/// use tideflow::{sink::ConsoleSink, source::{KafkaSource, StartingOffsets}, Config};
///
/// tideflow::execute(Config::default(), |flow| {
///     let source = KafkaSource::new("127.0.0.1:9092", "clicks", |m| {
///         std::str::from_utf8(m.value)
///             .map_err(|e| e.to_string())
///             .map(|text| (text.to_owned(), m.timestamp.unwrap_or(0) as u64))
///     })
///     .starting_offsets(StartingOffsets::Earliest);
///     flow.source(source)
///         .with_event_time(|(_, ts)| *ts)
///         .with_watermark(Duration::from_secs(5))
///         .sink(ConsoleSink::json());
///     Ok(())
/// })?;
/// # Ok::<(), tideflow::Error>(())
/// ```
pub struct KafkaSource<T> {
    brokers: String,
    topic: String,
    decode: Box<Decode<T>>,
    options: Vec<(String, String)>,
    starting: StartingOffsets,
    until_end: bool,
    on_error: OnError,
    max_record_bytes: usize,
    batch: usize,
    /// Set by `on_start`.
    running: Option<Running>,
}

/// A started source: its consumer and this worker's partitions.
struct Running {
    reader: Reader,
    handler: BadInputHandler,
    context: SourceContext,
    /// This worker's partitions, by local number.
    partitions: Vec<PartitionState>,
    /// Whether the partitions are assigned (at the first read, after any seek).
    assigned: bool,
    /// Whether the previous read found nothing (under available-now, the next one waits a
    /// little for a fetch).
    idle: bool,
    last_gauges: Option<Instant>,
    last_warning: Option<Instant>,
    /// Partitions finished during a read, to stop fetching once it is over.
    to_pause: Vec<i32>,
}

/// One local partition.
struct PartitionState {
    partition: i32,
    /// The offset of the next message to read.
    next: i64,
    /// Under available-now, where reading stops: the high watermark of the partition's first
    /// fetch response (`None` until it came).
    end: Option<i64>,
    finished: bool,
    gauge: Option<Arc<PartitionGauge>>,
}

impl<T: 'static> KafkaSource<T> {
    /// Reads `topic` from `brokers` (`HOST:PORT[,HOST:PORT...]`), decoding each message with
    /// `decode` (an `Err(reason)` makes the message a bad record).
    pub fn new(
        brokers: impl Into<String>,
        topic: impl Into<String>,
        decode: impl Fn(&KafkaMessage<'_>) -> Result<T, String> + Send + Sync + 'static,
    ) -> Self {
        KafkaSource {
            brokers: brokers.into(),
            topic: topic.into(),
            decode: Box::new(decode),
            options: Vec::new(),
            starting: StartingOffsets::Earliest,
            until_end: false,
            on_error: OnError::Fail,
            max_record_bytes: DEFAULT_MAX_RECORD_BYTES,
            batch: BATCH,
            running: None,
        }
    }

    /// Sets a librdkafka client property (`fetch.max.bytes`, `security.protocol`, ...);
    /// repeatable, and it overrides the source's own settings. By default, the source sets
    /// `bootstrap.servers`, `client.id=tideflow`, `group.id=tideflow`,
    /// `enable.auto.commit=false`, `enable.auto.offset.store=false`,
    /// `allow.auto.create.topics=false`, `auto.offset.reset=error`,
    /// `isolation.level=read_committed` and `socket.connection.setup.timeout.ms=10000`.
    pub fn option(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.options.push((key.into(), value.into()));
        self
    }

    /// Sets where each partition starts on the job's first run; a job resumed from a
    /// snapshot starts at the snapshot's offsets whatever this says. `Latest` and `-1` are
    /// resolved when the job starts, by the broker's ListOffsets answer. By default,
    /// [`StartingOffsets::Earliest`].
    pub fn starting_offsets(mut self, offsets: StartingOffsets) -> Self {
        self.starting = offsets;
        self
    }

    /// Reads each partition only up to the end it has when the job starts (the high watermark
    /// of its first fetch response), then finishes it; the source ends when all are finished.
    /// An empty partition finishes at once. The available-now and once triggers turn this on
    /// by themselves. By default, the source reads on forever.
    ///
    /// A read_committed consumer does not get past a transaction still open at the end: the
    /// partition finishes once it is committed or aborted.
    pub fn until_end_offsets(mut self) -> Self {
        self.until_end = true;
        self
    }

    /// Sets what to do with a message that cannot be decoded, has no value (a tombstone), or
    /// is too long. By default, [`OnError::Fail`]: the job stops with an
    /// [`Error::KafkaRecord`] naming the topic, partition, offset and reason. A dead letter
    /// is the line `{"topic", "partition", "offset", "reason", "raw"}` (see
    /// [`OnError::DeadLetter`]).
    pub fn on_error(mut self, policy: OnError) -> Self {
        self.on_error = policy;
        self
    }

    /// Sets the longest message value accepted, in bytes; a longer one is a bad record
    /// ("message value is longer than N bytes"). By default, 1 MiB
    /// ([`DEFAULT_MAX_RECORD_BYTES`](super::DEFAULT_MAX_RECORD_BYTES)).
    pub fn max_record_bytes(mut self, max: usize) -> Self {
        self.max_record_bytes = max;
        self
    }

    /// Reads at most `messages` messages per read (at least 1). The watermark can advance
    /// after every read, so a small batch makes a job see its input arrive in many steps. By
    /// default, 1024.
    pub fn batch_size(mut self, messages: usize) -> Self {
        self.batch = messages.max(1);
        self
    }

    /// Where each local partition starts on a first run.
    fn resolve_starts(
        &self,
        consumer: &BaseConsumer,
        partitions: &[i32],
    ) -> Result<Vec<i64>, Error> {
        let topic = &self.topic;
        let watermarks = |partition: i32| {
            consumer
                .fetch_watermarks(topic, partition, REQUEST_TIMEOUT)
                .map_err(|e| {
                    Error::Kafka(format!(
                        "cannot read the offsets of topic {topic} partition {partition} from {}: {e}",
                        self.brokers
                    ))
                })
        };
        partitions
            .iter()
            .map(|&partition| {
                let wanted = match &self.starting {
                    StartingOffsets::Earliest => -2,
                    StartingOffsets::Latest => -1,
                    StartingOffsets::Offsets(offsets) => {
                        offsets.get(&partition).copied().unwrap_or(-2)
                    }
                };
                match wanted {
                    -2 => watermarks(partition).map(|(low, _)| low),
                    -1 => watermarks(partition).map(|(_, high)| high),
                    offset => Ok(offset),
                }
            })
            .collect()
    }
}

impl<T: 'static> Source for KafkaSource<T> {
    type Item = T;

    fn on_available_now(&mut self) {
        self.until_end = true;
    }

    fn on_start(&mut self, context: &SourceContext) -> Result<(), Error> {
        let consumer = consumer(&self.brokers, &self.options)?;
        let all = topic_partitions(&consumer, &self.brokers, &self.topic)?;
        if let StartingOffsets::Offsets(offsets) = &self.starting {
            if let Some(unknown) = offsets.keys().find(|p| !all.contains(p)) {
                return Err(Error::Config(format!(
                    "starting offsets name partition {unknown}, but topic {} has partitions 0 to {}",
                    self.topic,
                    all.len() - 1
                )));
            }
        }
        if all.iter().enumerate().any(|(index, &p)| p != index as i32) {
            return Err(Error::Kafka(format!(
                "topic {} on {} has partitions {all:?}, not 0 to {}",
                self.topic,
                self.brokers,
                all.len() - 1
            )));
        }
        let mine: Vec<i32> = context
            .local_partitions(all.len())
            .map(|p| p as i32)
            .collect();
        let starts = self.resolve_starts(&consumer, &mine)?;
        let partitions = mine
            .into_iter()
            .zip(starts)
            .map(|(partition, next)| PartitionState {
                partition,
                next,
                end: None,
                finished: false,
                gauge: None,
            })
            .collect();
        self.running = Some(Running {
            reader: Reader::new(consumer, &self.topic, self.batch)?,
            handler: BadInputHandler::new(&self.on_error)?,
            context: *context,
            partitions,
            assigned: false,
            idle: false,
            last_gauges: None,
            last_warning: None,
            to_pause: Vec::new(),
        });
        Ok(())
    }

    fn report_offsets(&mut self, gauges: &PartitionGauges) {
        if let Some(running) = self.running.as_mut() {
            for state in &mut running.partitions {
                let gauge = gauges.register(&self.topic, state.partition as u64);
                gauge.set(state.next.max(0) as u64, None);
                state.gauge = Some(gauge);
            }
        }
    }

    fn partitions(&self) -> usize {
        self.running.as_ref().map_or(0, |r| r.partitions.len())
    }

    fn replayable(&self) -> bool {
        true
    }

    fn position(&self, partition: usize) -> Position {
        let next = self
            .running
            .as_ref()
            .and_then(|r| r.partitions.get(partition))
            .map_or(0, |state| state.next);
        Position {
            offset: next.max(0) as u64,
            line: 0,
        }
    }

    fn seek(&mut self, partition: usize, position: Position) -> Result<(), Error> {
        let state = self
            .running
            .as_mut()
            .filter(|r| !r.assigned)
            .and_then(|r| r.partitions.get_mut(partition))
            .ok_or_else(|| {
                Error::Internal(format!(
                    "KafkaSource::seek: no local partition {partition} before the first read"
                ))
            })?;
        state.next = i64::try_from(position.offset).map_err(|_| {
            Error::Snapshot(format!(
                "offset {} of topic {} partition {} is out of range",
                position.offset, self.topic, state.partition
            ))
        })?;
        Ok(())
    }

    fn read(&mut self, batch: &mut SourceBatch<T>) -> Result<SourceStatus, Error> {
        let Some(running) = self.running.as_mut() else {
            return Err(Error::Internal("KafkaSource::read before on_start".into()));
        };
        if !running.assigned {
            let starts: Vec<(i32, i64)> = running
                .partitions
                .iter()
                .map(|s| (s.partition, s.next))
                .collect();
            running.reader.assign(&starts)?;
            running.assigned = true;
        }
        if self.until_end {
            running.fix_ends(batch);
        }
        let timeout = if self.until_end && running.idle {
            BOUNDED_WAIT_MS
        } else {
            0
        };
        let reading = Reading {
            topic: &self.topic,
            brokers: &self.brokers,
            decode: &*self.decode,
            max_record_bytes: self.max_record_bytes,
        };
        let Running {
            reader,
            handler,
            partitions,
            context,
            to_pause,
            ..
        } = running;
        let mut warning = None;
        let consumed = reader.consume(timeout, |entry| match entry {
            Consumed::Message(message) => {
                let Some(local) = local_of(context, message.partition) else {
                    return Ok(());
                };
                let Some(state) = partitions.get_mut(local) else {
                    return Ok(());
                };
                reading.message(state, local, &message, handler, batch, to_pause)
            }
            Consumed::Error {
                partition,
                code,
                text,
            } => match reading.error(partition, code, text) {
                Ok(transient) => {
                    warning = transient;
                    Ok(())
                }
                Err(error) => Err(error),
            },
        })?;
        if let Some(text) = warning {
            running.warn(&self.topic, &text);
        }
        for partition in running.to_pause.drain(..) {
            running.reader.pause(partition);
        }
        running.idle = consumed == 0;
        if consumed == 0 {
            if let Some(text) = running.reader.take_log() {
                running.warn(&self.topic, &text);
            }
            if let Some(fatal) = running.reader.fatal_error() {
                return Err(Error::Kafka(format!(
                    "the client of topic {} on {} failed: {fatal}",
                    self.topic, self.brokers
                )));
            }
            if self.until_end {
                running.catch_up(batch);
            }
        }
        let done = running.partitions.iter().all(|s| s.finished);
        running.update_gauges(done);
        if done {
            // The driver reads no more: the dead letters are written out now.
            running.handler.finish()?;
            return Ok(SourceStatus::Done);
        }
        if consumed > 0 || self.until_end {
            return Ok(SourceStatus::Ready);
        }
        running.handler.flush()?;
        Ok(SourceStatus::Wait(IDLE_WAIT))
    }
}

/// The local number of Kafka partition `partition` on this worker, if it reads it.
fn local_of(context: &SourceContext, partition: i32) -> Option<usize> {
    let partition = usize::try_from(partition).ok()?;
    let peers = context.peers.max(1);
    (partition % peers == context.worker_index).then_some(partition / peers)
}

/// What a read needs of the source's settings.
struct Reading<'a, T> {
    topic: &'a str,
    brokers: &'a str,
    decode: &'a Decode<T>,
    max_record_bytes: usize,
}

impl<T> Reading<'_, T> {
    /// Decodes `message` of local partition `local` into `batch`, or handles it as a bad
    /// record; under available-now, finishes the partition at its end.
    fn message(
        &self,
        state: &mut PartitionState,
        local: usize,
        message: &RawMessage<'_>,
        handler: &BadInputHandler,
        batch: &mut SourceBatch<T>,
        to_pause: &mut Vec<i32>,
    ) -> Result<(), Error> {
        // Past the end (fetched before the partition was paused), or already read.
        if state.finished || message.offset < state.next {
            return Ok(());
        }
        if let Some(end) = state.end.filter(|&end| message.offset >= end) {
            state.next = state.next.max(end);
            finish(state, local, batch, to_pause);
            return Ok(());
        }
        state.next = message.offset + 1;
        let position = Position {
            offset: message.offset as u64,
            line: 0,
        };
        let decoded = match message.value {
            None => Err("message has no value (a tombstone)".to_owned()),
            Some(value) if value.len() > self.max_record_bytes => Err(format!(
                "message value is longer than {} bytes",
                self.max_record_bytes
            )),
            Some(value) => (self.decode)(&KafkaMessage {
                topic: self.topic,
                partition: message.partition,
                offset: message.offset,
                timestamp: message.timestamp,
                key: message.key,
                value,
            }),
        };
        match decoded {
            Ok(record) => batch.push_at(local, record, position),
            Err(reason) => {
                let value = message.value.unwrap_or_default();
                let bad = BadRecord {
                    line: 0,
                    reason,
                    raw: value[..value.len().min(self.max_record_bytes)].to_vec(),
                    length: value.len() as u64,
                };
                let at = RecordLocation::Kafka {
                    topic: self.topic,
                    partition: message.partition,
                    offset: message.offset,
                };
                match handler.handle_at(at, bad)? {
                    Handled::Skipped => batch.count_skipped(1),
                    Handled::DeadLettered => batch.count_dead_lettered(1),
                }
            }
        }
        if state.end.is_some_and(|end| state.next >= end) {
            finish(state, local, batch, to_pause);
        }
        Ok(())
    }

    /// An error librdkafka reported: `Err` if it stops the job, else the text of a transient
    /// one to warn about (librdkafka retries), if any.
    fn error(
        &self,
        partition: i32,
        code: RDKafkaErrorCode,
        text: String,
    ) -> Result<Option<String>, Error> {
        let topic = self.topic;
        let at = if partition >= 0 {
            format!("topic {topic} partition {partition}")
        } else {
            format!("topic {topic}")
        };
        match code {
            RDKafkaErrorCode::PartitionEOF => Ok(None),
            RDKafkaErrorCode::AutoOffsetReset | RDKafkaErrorCode::OffsetOutOfRange => {
                Err(Error::Kafka(format!(
                    "{at} on {}: the offset to read is out of range (deleted by retention, or the topic was recreated): {text}",
                    self.brokers
                )))
            }
            RDKafkaErrorCode::UnknownTopicOrPartition
            | RDKafkaErrorCode::UnknownTopic
            | RDKafkaErrorCode::UnknownPartition
            | RDKafkaErrorCode::TopicAuthorizationFailed
            | RDKafkaErrorCode::GroupAuthorizationFailed
            | RDKafkaErrorCode::Fatal => Err(Error::Kafka(format!(
                "{at} on {}: {text}",
                self.brokers
            ))),
            _ => Ok(Some(text)),
        }
    }
}

/// Finishes local partition `local`: it stops holding the watermark back, and is to be
/// paused (no longer fetched).
fn finish<T>(
    state: &mut PartitionState,
    local: usize,
    batch: &mut SourceBatch<T>,
    to_pause: &mut Vec<i32>,
) {
    state.finished = true;
    batch.finish_partition(local);
    to_pause.push(state.partition);
}

impl Running {
    /// Prints a transient client error (librdkafka retries), at most every [`WARN_EVERY`].
    fn warn(&mut self, topic: &str, text: &str) {
        if self
            .last_warning
            .is_none_or(|at| at.elapsed() >= WARN_EVERY)
        {
            self.last_warning = Some(Instant::now());
            note!("tideflow: warning: kafka topic {topic}: {text} (retrying)");
        }
    }

    /// Under available-now: fixes each partition's end from its first fetch response, and
    /// finishes those already there (an empty partition at once).
    fn fix_ends<T>(&mut self, batch: &mut SourceBatch<T>) {
        let Running {
            reader,
            partitions,
            to_pause,
            ..
        } = self;
        for (local, state) in partitions.iter_mut().enumerate() {
            if state.finished {
                continue;
            }
            if state.end.is_none() {
                state.end = reader.high_watermark(state.partition);
            }
            if state.end.is_some_and(|end| state.next >= end) {
                finish(state, local, batch, to_pause);
            }
        }
    }

    /// Under available-now, after a read that found nothing: moves each partition's next
    /// offset up to the consumer's position, which is past the transaction markers that end
    /// a partition written in transactions (they are not messages), and finishes the
    /// partitions that reached their end.
    fn catch_up<T>(&mut self, batch: &mut SourceBatch<T>) {
        if self
            .partitions
            .iter()
            .all(|s| s.finished || s.end.is_none_or(|end| s.next >= end))
        {
            return;
        }
        for (partition, position) in self.reader.positions() {
            let Some(local) = local_of(&self.context, partition) else {
                continue;
            };
            let Some(state) = self.partitions.get_mut(local) else {
                continue;
            };
            if state.finished {
                continue;
            }
            state.next = state.next.max(position);
            if state.end.is_some_and(|end| state.next >= end) {
                finish(state, local, batch, &mut self.to_pause);
            }
        }
    }

    /// Updates the progress gauges, every [`GAUGE_EVERY`] and at the end.
    fn update_gauges(&mut self, now: bool) {
        if self.partitions.first().is_none_or(|s| s.gauge.is_none()) {
            return;
        }
        if !now
            && self
                .last_gauges
                .is_some_and(|at| at.elapsed() < GAUGE_EVERY)
        {
            return;
        }
        self.last_gauges = Some(Instant::now());
        for state in &self.partitions {
            if let Some(gauge) = &state.gauge {
                let high = self.reader.high_watermark(state.partition);
                gauge.set(state.next.max(0) as u64, high.map(|h| h.max(0) as u64));
            }
        }
    }
}
