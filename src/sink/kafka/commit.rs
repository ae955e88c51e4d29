//! The Kafka sink's committer: one Kafka transaction per completed snapshot, which produces
//! the epoch's rows (kept in the snapshot as the sink's part) and commits a marker, the
//! epoch, as the offset of a consumer group named after the transactional id, in the same
//! transaction: the marker is committed if and only if the rows are.
//!
//! Why the rows travel in the snapshot instead of an open transaction (Flink's way):
//! librdkafka cannot resume a transaction another producer opened, so a restarted job could
//! never commit a transaction its predecessor pre-committed; and a broker such as tansu shows
//! the records of a transaction aborted by fencing to read_committed readers. Producing only
//! after the snapshot is complete leaves, after any crash, at most one epoch's records in an
//! unfinished transaction, and those are produced again (by a later execution, so the
//! `tideflow-execution` header tells them apart) by the recovery.
//!
//! Recovery (`recover`): `init_transactions` with the same transactional id fences the
//! previous run's producer and aborts its open transaction; the marker says which epoch is
//! committed; if it is below the epoch of the snapshot resumed from, that epoch's commit is
//! run again from the snapshot's part.

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerGroupMetadata};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};

use super::client::{self, DeliveryContext, Target, BROKER_TIMEOUT};
use crate::checkpoint::commit::{CommitContext, CommitTarget, Committer, Prepared, Recovered};
use crate::error::Error;

/// The header with the message's epoch (decimal).
pub const EPOCH_HEADER: &str = "tideflow-epoch";
/// The header with the execution that produced the message (decimal).
pub const EXECUTION_HEADER: &str = "tideflow-execution";

/// A sink's staged rows, encoded as its part of the snapshot: per row, the key's length as a
/// little-endian `u32` (`u32::MAX`: no key), the key, the value's length, the value.
#[derive(Default)]
pub(crate) struct Rows(Vec<u8>);

impl Rows {
    /// Appends a row.
    pub(crate) fn push(&mut self, key: Option<&[u8]>, value: &[u8]) -> Result<(), Error> {
        let length = |bytes: &[u8]| {
            u32::try_from(bytes.len())
                .ok()
                .filter(|&n| n != u32::MAX)
                .ok_or_else(|| {
                    Error::Config(format!(
                        "a Kafka message's key or value of {} bytes is too large",
                        bytes.len()
                    ))
                })
        };
        match key {
            Some(key) => {
                self.0.extend_from_slice(&length(key)?.to_le_bytes());
                self.0.extend_from_slice(key);
            }
            None => self.0.extend_from_slice(&u32::MAX.to_le_bytes()),
        }
        self.0.extend_from_slice(&length(value)?.to_le_bytes());
        self.0.extend_from_slice(value);
        Ok(())
    }

    /// The rows, encoded; empties this.
    pub(crate) fn take(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.0)
    }
}

/// The rows encoded in `bytes` (`Rows`): `(key, value)`, or an error at the first malformed
/// one.
fn decode(bytes: &[u8]) -> impl Iterator<Item = Result<(Option<&[u8]>, &[u8]), Error>> {
    let mut rest = bytes;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let mut field = |optional: bool| -> Result<Option<&[u8]>, Error> {
            let malformed = || Error::Snapshot("a Kafka sink's part is malformed".into());
            let (length, tail) = rest.split_first_chunk::<4>().ok_or_else(malformed)?;
            let length = u32::from_le_bytes(*length);
            if optional && length == u32::MAX {
                rest = tail;
                return Ok(None);
            }
            let length = length as usize;
            if tail.len() < length {
                return Err(malformed());
            }
            let (field, tail) = tail.split_at(length);
            rest = tail;
            Ok(Some(field))
        };
        let row = field(true).and_then(|key| Ok((key, field(false)?.unwrap_or_default())));
        if row.is_err() {
            rest = &[];
        }
        Some(row)
    })
}

/// An epoch as a marker offset (`u64::MAX`, the final epoch, as `i64::MAX`).
fn marker_offset(epoch: u64) -> i64 {
    i64::try_from(epoch).unwrap_or(i64::MAX)
}

/// The epoch a marker offset stands for.
fn marker_epoch(offset: i64) -> u64 {
    match offset {
        i64::MAX => u64::MAX,
        offset => u64::try_from(offset).unwrap_or(0),
    }
}

/// What the manifest keeps to reopen the committer (`CommitTarget::Reopen`): the target
/// without its secret properties.
#[derive(Serialize, Deserialize)]
struct Reopen {
    target: Target,
}

/// The transactional producer and the marker's consumer group.
struct Session {
    producer: BaseProducer<DeliveryContext>,
    /// The transactional id.
    id: String,
    /// A consumer of the marker's group: reads the committed marker.
    marker: BaseConsumer,
    group: ConsumerGroupMetadata,
}

/// Commits a Kafka sink's epochs, one transaction each.
pub(crate) struct KafkaCommitter {
    target: Target,
    session: Option<Session>,
    /// The epoch committed, once known.
    committed: Option<u64>,
}

impl KafkaCommitter {
    pub(super) fn new(target: Target) -> Self {
        KafkaCommitter {
            target,
            session: None,
            committed: None,
        }
    }

    /// The committer the manifest describes (a final snapshot's, when the job is not built).
    pub(crate) fn reopen(spec: &str) -> Result<Self, Error> {
        let reopen: Reopen = serde_json::from_str(spec).map_err(|e| {
            Error::Snapshot(format!(
                "a Kafka sink's entry in the manifest is malformed: {e}"
            ))
        })?;
        Ok(KafkaCommitter::new(reopen.target))
    }

    /// The transactional id: `PREFIX-SINK`.
    fn transactional_id(&self, context: &CommitContext<'_>) -> Result<String, Error> {
        let prefix = match self.target.transactional_prefix() {
            Some(prefix) => prefix.to_string(),
            None => format!("tideflow-{}", context.checkpoint_id()?),
        };
        Ok(format!("{prefix}-{}", context.sink()))
    }

    /// The session, made on first use: checks the topic, then initializes transactions, which
    /// fences any earlier producer with the transactional id and aborts its open transaction.
    fn session(&mut self, context: &CommitContext<'_>) -> Result<&Session, Error> {
        if self.session.is_none() {
            let target = &self.target;
            let id = self.transactional_id(context)?;
            let producer = target.producer(Some(&id))?;
            target.check_topic(producer.client())?;
            producer.init_transactions(BROKER_TIMEOUT).map_err(|e| {
                target.error(
                    &format!("cannot initialize transactions (transactional id {id})"),
                    e,
                )
            })?;
            let marker: BaseConsumer = target
                .config()
                .set("group.id", format!("{id}-committed"))
                .set("enable.auto.commit", "false")
                .set("isolation.level", "read_committed")
                .create()
                .map_err(|e| target.config_error(&e))?;
            let group = marker
                .group_metadata()
                .ok_or_else(|| Error::Internal("a Kafka consumer without group metadata".into()))?;
            self.session = Some(Session {
                producer,
                id,
                marker,
                group,
            });
        }
        Ok(self.session.as_ref().expect("made above"))
    }

    /// The epoch the marker says is committed (0 if none), read from the broker once.
    fn committed(&mut self, context: &CommitContext<'_>) -> Result<u64, Error> {
        if let Some(epoch) = self.committed {
            return Ok(epoch);
        }
        let target = self.target.clone();
        let session = self.session(context)?;
        let mut list = TopicPartitionList::new();
        list.add_partition(target.topic(), 0);
        let read = session
            .marker
            .committed_offsets(list, BROKER_TIMEOUT)
            .map_err(|e| {
                target.error(
                    &format!(
                        "cannot read the committed epoch (group {}-committed)",
                        session.id
                    ),
                    e,
                )
            })?;
        let epoch = match read.elements().first().map(|e| e.offset()) {
            Some(Offset::Offset(offset)) => marker_epoch(offset),
            _ => 0,
        };
        self.committed = Some(epoch);
        Ok(epoch)
    }

    /// Produces the rows of `epoch` in one transaction with the marker, and commits it. An
    /// epoch without rows commits nothing (a recovery that finds the marker below it runs
    /// this again: still nothing).
    fn transact(
        &mut self,
        epoch: u64,
        prepared: &[u8],
        context: &CommitContext<'_>,
    ) -> Result<(), Error> {
        let count = decode(prepared).count();
        if count == 0 {
            context.mid_commit_then(|| ());
            self.committed = Some(epoch);
            return Ok(());
        }
        let target = self.target.clone();
        let session = self.session(context)?;
        let producer = &session.producer;
        let failed = |doing: &str, e: &dyn std::fmt::Display| {
            target.error(
                &format!("{doing} (transactional id {}, epoch {epoch})", session.id),
                e,
            )
        };
        producer
            .begin_transaction()
            .map_err(|e| failed("cannot begin a transaction", &e))?;
        let epoch_text = epoch.to_string();
        let execution_text = context.execution().to_string();
        let result = (|| {
            for (index, row) in decode(prepared).enumerate() {
                if index == count / 2 {
                    // Crash tests: half of the epoch's rows reach the broker, uncommitted.
                    context.mid_commit_then(|| {
                        let _ = producer.flush(BROKER_TIMEOUT);
                    });
                }
                let (key, value) = row?;
                let headers = OwnedHeaders::new_with_capacity(2)
                    .insert(Header {
                        key: EPOCH_HEADER,
                        value: Some(&epoch_text),
                    })
                    .insert(Header {
                        key: EXECUTION_HEADER,
                        value: Some(&execution_text),
                    });
                let mut record = BaseRecord::<[u8], [u8]>::to(target.topic())
                    .payload(value)
                    .headers(headers);
                if let Some(key) = key {
                    record = record.key(key);
                }
                client::send(producer, record, &target)?;
            }
            client::flush(producer, &target)?;
            let mut marker = TopicPartitionList::new();
            marker
                .add_partition_offset(target.topic(), 0, Offset::Offset(marker_offset(epoch)))
                .map_err(|e| failed("cannot write the marker", &e))?;
            producer
                .send_offsets_to_transaction(&marker, &session.group, BROKER_TIMEOUT)
                .map_err(|e| failed("cannot add the marker to the transaction", &e))?;
            producer
                .commit_transaction(BROKER_TIMEOUT)
                .map_err(|e| failed("cannot commit the transaction", &e))
        })();
        if let Err(error) = result {
            // The job stops; the next run fences this producer anyway.
            let _ = producer.abort_transaction(BROKER_TIMEOUT);
            self.session = None;
            return Err(error);
        }
        self.committed = Some(epoch);
        Ok(())
    }
}

impl Committer for KafkaCommitter {
    /// Produces and commits the epoch's rows, unless the marker shows it committed already.
    fn commit(
        &mut self,
        epoch: u64,
        prepared: &[u8],
        context: &CommitContext<'_>,
    ) -> Result<(), Error> {
        if self.committed(context)? >= epoch {
            return Ok(());
        }
        self.transact(epoch, prepared, context)
    }

    /// Fails if the topic is missing or the broker cannot be reached; fences the previous
    /// run's producer (the session is made here).
    fn verify(&mut self, context: &CommitContext<'_>) -> Result<(), Error> {
        self.session(context).map(|_| ())
    }

    /// Commits the snapshot's epoch again if the marker is below it (a crash between its
    /// manifest and the end of its commit).
    fn recover(
        &mut self,
        committed: Option<Prepared<'_>>,
        context: &CommitContext<'_>,
    ) -> Result<Recovered, Error> {
        let marker = self.committed(context)?;
        let mut epoch = marker;
        if let Some(prepared) = committed.filter(|p| marker < p.epoch) {
            self.transact(prepared.epoch, prepared.bytes, context)?;
            epoch = prepared.epoch;
        }
        Ok(Recovered {
            epoch,
            resumed: epoch > 0,
        })
    }

    // `abort`: nothing to do. Nothing is produced before a snapshot is complete, and the
    // transaction a crash interrupted was aborted by `init_transactions` in `verify`.

    fn target(&self) -> CommitTarget {
        let reopen = Reopen {
            target: self.target.without_secrets(),
        };
        CommitTarget::Reopen {
            kind: super::KIND.to_string(),
            spec: serde_json::to_string(&reopen).expect("a target encodes as JSON"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_round_trip_with_and_without_keys() {
        let mut rows = Rows::default();
        rows.push(Some(b"k"), b"{\"a\":1}").unwrap();
        rows.push(None, b"").unwrap();
        rows.push(Some(b""), b"v").unwrap();
        let bytes = rows.take();
        let decoded: Vec<(Option<&[u8]>, &[u8])> = decode(&bytes).map(Result::unwrap).collect();
        assert_eq!(
            decoded,
            vec![
                (Some(&b"k"[..]), &b"{\"a\":1}"[..]),
                (None, &b""[..]),
                (Some(&b""[..]), &b"v"[..])
            ]
        );
        assert!(rows.take().is_empty());
        let truncated = &bytes[..bytes.len() - 1];
        assert!(decode(truncated).any(|row| row.is_err()));
    }

    #[test]
    fn the_final_epoch_is_the_largest_marker() {
        assert_eq!(marker_epoch(marker_offset(u64::MAX)), u64::MAX);
        assert_eq!(marker_epoch(marker_offset(42)), 42);
        assert_eq!(marker_epoch(-1001), 0);
    }
}
