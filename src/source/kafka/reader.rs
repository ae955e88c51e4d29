//! The Kafka source's hot path: messages taken from librdkafka's consumer queue in batches
//! (`rd_kafka_consume_batch_queue`), read in place and released, with no allocation per
//! message; and the partition figures librdkafka caches from its fetch responses (the high
//! watermark, the consumer's position).
//!
//! rdkafka's own `BaseConsumer::poll` allocates per message (an `Arc` per event) and returns
//! one message per call; this reads up to a batch per call through the C API instead, on the
//! same consumer.

use std::ffi::{c_void, CString};
use std::ptr;

use rdkafka::bindings as rdsys;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::{Offset, TopicPartitionList};

use crate::error::Error;

/// The syslog level of a warning: the client's log lines up to it are reported.
const LOG_WARNING: i32 = 4;

/// One message as librdkafka hands it over, borrowed until it is released.
pub(crate) struct RawMessage<'a> {
    /// Its partition.
    pub(crate) partition: i32,
    /// Its offset.
    pub(crate) offset: i64,
    /// Create or log-append time, ms since the Unix epoch.
    pub(crate) timestamp: Option<i64>,
    pub(crate) key: Option<&'a [u8]>,
    /// `None` for a tombstone (a message without a value).
    pub(crate) value: Option<&'a [u8]>,
}

/// What a consumed queue entry was.
pub(crate) enum Consumed<'a> {
    Message(RawMessage<'a>),
    /// An error librdkafka reported through the queue, for a partition (or `-1`).
    Error {
        partition: i32,
        code: RDKafkaErrorCode,
        text: String,
    },
}

/// A consumer with explicitly assigned partitions of one topic, read in batches.
pub(crate) struct Reader {
    /// The consumer's queue, a reference of our own (released in `drop`, before the consumer).
    queue: *mut rdsys::rd_kafka_queue_t,
    /// The client's log lines, which would otherwise be printed raw to stderr when the
    /// consumer queue is served here (null if the client does not queue its logs).
    logs: *mut rdsys::rd_kafka_queue_t,
    consumer: BaseConsumer,
    topic: String,
    topic_c: CString,
    buffer: Vec<*mut rdsys::rd_kafka_message_t>,
}

impl Reader {
    /// Reads from `consumer` (created with a `group.id`, so that its main queue is forwarded
    /// to its consumer queue) up to `batch` messages per call.
    pub(crate) fn new(consumer: BaseConsumer, topic: &str, batch: usize) -> Result<Self, Error> {
        let topic_c = CString::new(topic)
            .map_err(|_| Error::Config(format!("kafka: topic name {topic:?} holds a NUL byte")))?;
        // SAFETY: the client pointer is valid while `consumer` lives; the queue reference
        // returned is ours and is destroyed in `drop`, before `consumer` is dropped.
        let queue = unsafe { rdsys::rd_kafka_queue_get_consumer(consumer.client().native_ptr()) };
        if queue.is_null() {
            return Err(Error::Internal(
                "kafka: the consumer has no consumer queue (no group.id?)".into(),
            ));
        }
        // SAFETY: as above; the new queue is ours, the client forwards its logs to it until
        // `drop` sets them back to its main queue.
        let logs = unsafe {
            let client = consumer.client().native_ptr();
            let logs = rdsys::rd_kafka_queue_new(client);
            if rdsys::rd_kafka_set_log_queue(client, logs)
                != rdsys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR
            {
                rdsys::rd_kafka_queue_destroy(logs);
                ptr::null_mut()
            } else {
                logs
            }
        };
        Ok(Reader {
            queue,
            logs,
            consumer,
            topic: topic.to_owned(),
            topic_c,
            buffer: Vec::with_capacity(batch.max(1)),
        })
    }

    /// Assigns `partitions` of the topic, each to start at its offset.
    pub(crate) fn assign(&self, partitions: &[(i32, i64)]) -> Result<(), Error> {
        let mut list = TopicPartitionList::with_capacity(partitions.len());
        for &(partition, offset) in partitions {
            list.add_partition_offset(&self.topic, partition, Offset::Offset(offset))
                .map_err(|e| Error::Internal(format!("kafka: cannot list a partition: {e}")))?;
        }
        self.consumer.assign(&list).map_err(|e| {
            Error::Kafka(format!(
                "cannot assign the partitions of topic {}: {e}",
                self.topic
            ))
        })
    }

    /// Stops fetching `partition` (read to its end under available-now).
    pub(crate) fn pause(&self, partition: i32) {
        let mut list = TopicPartitionList::with_capacity(1);
        list.add_partition(&self.topic, partition);
        // Only fetching stops; the messages already fetched are dropped by the caller.
        let _ = self.consumer.pause(&list);
    }

    /// Takes up to a batch of queued entries, waiting up to `timeout_ms` for the first one,
    /// and hands each to `each` in order; every entry is released, also when `each` fails
    /// (the first error is returned and the later entries are released unread). Returns how
    /// many entries there were.
    pub(crate) fn consume(
        &mut self,
        timeout_ms: i32,
        mut each: impl FnMut(Consumed<'_>) -> Result<(), Error>,
    ) -> Result<usize, Error> {
        let capacity = self.buffer.capacity();
        // SAFETY: the buffer has room for `capacity` pointers, which librdkafka fills with
        // `n <= capacity` messages it hands over to us.
        let n = unsafe {
            rdsys::rd_kafka_consume_batch_queue(
                self.queue,
                timeout_ms,
                self.buffer.as_mut_ptr(),
                capacity,
            )
        };
        let n = usize::try_from(n).unwrap_or(0).min(capacity);
        // SAFETY: the first `n` entries were written above.
        unsafe { self.buffer.set_len(n) };
        let mut result = Ok(());
        for &message in &self.buffer {
            if result.is_ok() {
                // SAFETY: `message` is a valid message librdkafka handed over, not yet
                // destroyed; what `entry` borrows from it lives until it is destroyed below.
                let entry = unsafe { entry(&*message) };
                result = each(entry);
            }
            // SAFETY: each message is destroyed exactly once, after its last use.
            unsafe { rdsys::rd_kafka_message_destroy(message) };
        }
        self.buffer.clear();
        result.map(|()| n)
    }

    /// The high watermark of `partition` from the latest fetch response (the offset the next
    /// produced record will get); `None` before the first response.
    pub(crate) fn high_watermark(&self, partition: i32) -> Option<i64> {
        let (mut low, mut high) = (-1i64, -1i64);
        // SAFETY: the client is valid while `self.consumer` lives; the topic is a valid C
        // string; librdkafka only reads its cached offsets (under its own lock) into the two
        // locals.
        let err = unsafe {
            rdsys::rd_kafka_get_watermark_offsets(
                self.consumer.client().native_ptr(),
                self.topic_c.as_ptr(),
                partition,
                &mut low,
                &mut high,
            )
        };
        (err == rdsys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR && high >= 0).then_some(high)
    }

    /// The consumer's position in each assigned partition: past the last message taken from
    /// the queue, and past the transaction markers after it (which are not messages).
    pub(crate) fn positions(&self) -> Vec<(i32, i64)> {
        let Ok(list) = self.consumer.position() else {
            return Vec::new();
        };
        list.elements()
            .iter()
            .filter_map(|e| match e.offset() {
                Offset::Offset(offset) => Some((e.partition(), offset)),
                _ => None,
            })
            .collect()
    }

    /// The last warning or error the client logged since the previous call (a broker that
    /// cannot be reached, a failed fetch), if any; the other log lines are dropped.
    pub(crate) fn take_log(&self) -> Option<String> {
        if self.logs.is_null() {
            return None;
        }
        let mut last = None;
        loop {
            // SAFETY: the log queue is ours and valid; each event returned is ours to destroy,
            // and the strings it holds are read before it is.
            unsafe {
                let event = rdsys::rd_kafka_queue_poll(self.logs, 0);
                if event.is_null() {
                    break;
                }
                if rdsys::rd_kafka_event_type(event) == rdsys::RD_KAFKA_EVENT_LOG {
                    let (mut facility, mut text, mut level) = (ptr::null(), ptr::null(), 0);
                    let found =
                        rdsys::rd_kafka_event_log(event, &mut facility, &mut text, &mut level);
                    if found == 0 && !text.is_null() && level <= LOG_WARNING {
                        last = Some(
                            std::ffi::CStr::from_ptr(text)
                                .to_string_lossy()
                                .into_owned(),
                        );
                    }
                }
                rdsys::rd_kafka_event_destroy(event);
            }
        }
        last
    }

    /// A fatal client error, if one happened: the client cannot go on.
    pub(crate) fn fatal_error(&self) -> Option<String> {
        // SAFETY: the client is valid while `self.consumer` lives; with no buffer librdkafka
        // only returns the error code (an atomic read, no allocation on this idle path).
        let code = unsafe {
            rdsys::rd_kafka_fatal_error(self.consumer.client().native_ptr(), ptr::null_mut(), 0)
        };
        if code == rdsys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
            return None;
        }
        self.consumer
            .client()
            .fatal_error()
            .map(|(code, text)| format!("{text} ({code})"))
    }
}

/// The entry `message` is.
///
/// # Safety
/// `message` must be a valid message handed over by librdkafka and not yet destroyed.
unsafe fn entry(message: &rdsys::rd_kafka_message_t) -> Consumed<'_> {
    let bytes = |data: *mut c_void, len: usize| -> Option<&[u8]> {
        // SAFETY: librdkafka's payload and key are `len` bytes owned by the message.
        (!data.is_null()).then(|| unsafe { std::slice::from_raw_parts(data as *const u8, len) })
    };
    if message.err != rdsys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
        let code: RDKafkaErrorCode = message.err.into();
        // For an error, the payload is its text.
        let text = bytes(message.payload, message.len)
            .map(|text| String::from_utf8_lossy(text).into_owned())
            .unwrap_or_else(|| KafkaError::MessageConsumption(code).to_string());
        return Consumed::Error {
            partition: message.partition,
            code,
            text,
        };
    }
    let mut kind = rdsys::rd_kafka_timestamp_type_t::RD_KAFKA_TIMESTAMP_NOT_AVAILABLE;
    // SAFETY: `message` is valid (the caller's contract); `kind` is a valid local.
    let timestamp = unsafe { rdsys::rd_kafka_message_timestamp(ptr::from_ref(message), &mut kind) };
    Consumed::Message(RawMessage {
        partition: message.partition,
        offset: message.offset,
        timestamp: (timestamp >= 0).then_some(timestamp),
        key: bytes(message.key, message.key_len),
        value: bytes(message.payload, message.len),
    })
}

impl Drop for Reader {
    fn drop(&mut self) {
        // SAFETY: the queue references are ours and the consumer still lives (fields are
        // dropped after this); the client's logs go back to its main queue (which rdkafka
        // serves) before the log queue is released.
        unsafe {
            if !self.logs.is_null() {
                let client = self.consumer.client().native_ptr();
                rdsys::rd_kafka_set_log_queue(client, ptr::null_mut());
                rdsys::rd_kafka_queue_destroy(self.logs);
            }
            rdsys::rd_kafka_queue_destroy(self.queue);
        }
    }
}
