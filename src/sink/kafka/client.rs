//! The Kafka sink's connection: its target (brokers, topic, client properties), the producers
//! and consumers it makes, the topic check at start, and the delivery reports every send is
//! checked against.

use std::io;
use std::sync::Mutex;
use std::time::Duration;

use rdkafka::client::{Client, ClientContext};
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::DeliveryResult;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer, ProducerContext};
use serde::{Deserialize, Serialize};

use crate::error::Error;

/// How long the topic check at start waits for the broker: bounds the start against an
/// unreachable broker.
const METADATA_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a flush, a transaction's commit or its initialization waits for the broker at
/// most (a failure bound: a healthy broker answers in milliseconds).
pub(super) const BROKER_TIMEOUT: Duration = Duration::from_secs(60);

/// The property that sets the transactional id's prefix.
const TRANSACTIONAL_ID: &str = "transactional.id";

/// Where the sink writes: the brokers, the topic, and the user's client properties.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(super) struct Target {
    brokers: String,
    topic: String,
    options: Vec<(String, String)>,
}

impl Target {
    pub(super) fn new(brokers: String, topic: String) -> Self {
        Target {
            brokers,
            topic,
            options: Vec::new(),
        }
    }

    /// Sets client property `key` (the last value wins).
    pub(super) fn set(&mut self, key: String, value: String) {
        self.options.retain(|(k, _)| *k != key);
        self.options.push((key, value));
    }

    pub(super) fn topic(&self) -> &str {
        &self.topic
    }

    /// The transactional id's prefix the user set, if any.
    pub(super) fn transactional_prefix(&self) -> Option<&str> {
        self.options
            .iter()
            .find(|(k, _)| k == TRANSACTIONAL_ID)
            .map(|(_, v)| v.as_str())
    }

    /// The target without the properties that may hold secrets (passwords, SASL and OAuth
    /// settings, private keys), for the manifest.
    pub(super) fn without_secrets(&self) -> Target {
        let secret = |key: &str| {
            [
                "password",
                "secret",
                "jaas",
                "sasl.oauthbearer.config",
                "key.pem",
            ]
            .iter()
            .any(|word| key.contains(word))
        };
        Target {
            options: self
                .options
                .iter()
                .filter(|(k, _)| !secret(k))
                .cloned()
                .collect(),
            ..self.clone()
        }
    }

    /// A client configuration: the user's properties, then the sink's own.
    pub(super) fn config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        for (key, value) in self.options.iter().filter(|(k, _)| k != TRANSACTIONAL_ID) {
            config.set(key, value);
        }
        config
            .set("bootstrap.servers", &self.brokers)
            .set("allow.auto.create.topics", "false");
        config
    }

    /// An idempotent producer; a transactional one with `transactional_id`.
    pub(super) fn producer(
        &self,
        transactional_id: Option<&str>,
    ) -> Result<BaseProducer<DeliveryContext>, Error> {
        let mut config = self.config();
        config.set("enable.idempotence", "true");
        if let Some(id) = transactional_id {
            config.set(TRANSACTIONAL_ID, id);
        }
        config
            .create_with_context(DeliveryContext::default())
            .map_err(|e| self.config_error(&e))
    }

    /// A client property librdkafka refused.
    pub(super) fn config_error(&self, error: &KafkaError) -> Error {
        Error::Config(format!(
            "Kafka output topic {} at {}: bad client configuration: {error}",
            self.topic, self.brokers
        ))
    }

    /// An error of the broker or the client, while `doing`.
    pub(super) fn error(&self, doing: &str, error: impl std::fmt::Display) -> Error {
        Error::io(
            format!(
                "Kafka output topic {} at {}: {doing}",
                self.topic, self.brokers
            ),
            io::Error::other(error.to_string()),
        )
    }

    /// Fails unless the topic exists (waiting at most [`METADATA_TIMEOUT`] for the broker).
    pub(super) fn check_topic<C: ClientContext>(&self, client: &Client<C>) -> Result<(), Error> {
        let metadata = client
            .fetch_metadata(Some(&self.topic), METADATA_TIMEOUT)
            .map_err(|e| {
                Error::io(
                    format!(
                        "cannot reach the Kafka broker at {} (output topic {}) within {} s",
                        self.brokers,
                        self.topic,
                        METADATA_TIMEOUT.as_secs()
                    ),
                    io::Error::other(e.to_string()),
                )
            })?;
        let found = metadata.topics().iter().find(|t| t.name() == self.topic);
        match found {
            Some(topic) if topic.error().is_none() && !topic.partitions().is_empty() => Ok(()),
            Some(topic)
                if topic.error().is_some_and(|e| {
                    RDKafkaErrorCode::from(e) != RDKafkaErrorCode::UnknownTopicOrPartition
                }) =>
            {
                Err(self.error(
                    "cannot read the topic's metadata",
                    RDKafkaErrorCode::from(topic.error().expect("an error")),
                ))
            }
            _ => Err(Error::Config(format!(
                "Kafka output topic {} does not exist at {}: create it first (tideflow does not create topics)",
                self.topic, self.brokers
            ))),
        }
    }
}

/// Sends `record`; while the producer's queue is full, serves delivery reports and tries
/// again. Fails on a delivery already failed or a record the client refuses.
pub(super) fn send(
    producer: &BaseProducer<DeliveryContext>,
    mut record: BaseRecord<'_, [u8], [u8]>,
    target: &Target,
) -> Result<(), Error> {
    loop {
        match producer.send(record) {
            Ok(()) => return Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                producer.poll(Duration::from_millis(100));
                producer.context().check(target)?;
                record = back;
            }
            Err((error, _)) => return Err(target.error("cannot send a message", error)),
        }
    }
}

/// Waits until every message sent is acknowledged; fails on any failed delivery.
pub(super) fn flush(
    producer: &BaseProducer<DeliveryContext>,
    target: &Target,
) -> Result<(), Error> {
    producer
        .flush(BROKER_TIMEOUT)
        .map_err(|e| target.error("messages not acknowledged", e))?;
    producer.context().check(target)
}

/// Records the first failed delivery (and how many failed), for the sink to stop on.
#[derive(Default)]
pub(crate) struct DeliveryContext {
    /// The first failure and the number of failures.
    failed: Mutex<Option<(String, u64)>>,
}

impl DeliveryContext {
    /// Fails if a delivery failed since the producer was made.
    pub(super) fn check(&self, target: &Target) -> Result<(), Error> {
        let failed = self
            .failed
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        match &*failed {
            None => Ok(()),
            Some((first, count)) => Err(target.error(
                &format!("{count} message(s) not delivered, the first"),
                first,
            )),
        }
    }
}

impl ClientContext for DeliveryContext {}

impl ProducerContext for DeliveryContext {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _opaque: ()) {
        if let Err((error, _)) = result {
            let mut failed = self
                .failed
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            failed.get_or_insert_with(|| (error.to_string(), 0)).1 += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_manifest_keeps_no_secret_looking_property() {
        let mut target = Target::new("h:1".into(), "t".into());
        for (key, value) in [
            ("sasl.password", "p"),
            ("ssl.key.password", "p"),
            ("sasl.oauthbearer.client.secret", "s"),
            ("sasl.oauthbearer.config", "c"),
            ("ssl.key.pem", "k"),
            ("compression.type", "lz4"),
            ("transactional.id", "mine"),
            ("compression.type", "zstd"),
        ] {
            target.set(key.into(), value.into());
        }
        let kept = target.without_secrets();
        assert_eq!(
            kept.options,
            vec![
                ("transactional.id".to_string(), "mine".to_string()),
                ("compression.type".to_string(), "zstd".to_string()),
            ]
        );
        assert_eq!(kept.transactional_prefix(), Some("mine"));
        // The prefix is not passed to librdkafka as a property of its own.
        let config = target.config();
        assert_eq!(config.get("transactional.id"), None);
        assert_eq!(config.get("allow.auto.create.topics"), Some("false"));
    }
}
