//! Kafka inputs and outputs of `tideflow run`: `kafka://HOST:PORT[,HOST:PORT]/TOPIC`, the
//! message fields a query reads beside its value's, and how a message's value is decoded.
//!
//! A message's value is one record: a JSON object (`--format jsonl`) or one CSV row whose
//! columns `--csv-header` names (`--format csv`; a message carries no header). Beside the
//! value's fields a query may read the message's own, by the names of [`MESSAGE_FIELDS`]
//! (Spark's Kafka columns, prefixed): `kafka_timestamp` (ms since the epoch, the producer's
//! create time or the broker's log-append time), `kafka_key` (as text), `kafka_partition`,
//! `kafka_offset` and `kafka_topic`. They take the place of value fields of the same names.

use std::fmt;

use csv::ByteRecord;

use crate::record::{decode_csv, decode_json_beside, Beside, CsvColumns, CsvOriginal, Row, Schema};
use tideflow::source::KafkaMessage;
use tideflow::Error;

/// How a Kafka address starts.
pub(super) const KAFKA_PREFIX: &str = "kafka://";

/// The fields of a Kafka message a query can read beside its value's.
pub const MESSAGE_FIELDS: [&str; 5] = [
    "kafka_timestamp",
    "kafka_key",
    "kafka_partition",
    "kafka_offset",
    "kafka_topic",
];

/// A topic on a Kafka cluster: `kafka://HOST:PORT[,HOST:PORT...]/TOPIC`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct KafkaAddress {
    /// The bootstrap servers, comma-separated (librdkafka's `bootstrap.servers`).
    pub brokers: String,
    pub topic: String,
}

impl KafkaAddress {
    /// Parses `text` (which starts with `kafka://`) given to `flag`.
    pub(super) fn parse(text: &str, flag: &str) -> Result<Self, Error> {
        let bad = |why: &str| {
            Error::Config(format!(
                "{flag}: '{text}' is not a Kafka topic address ({why}); expected kafka://HOST:PORT[,HOST:PORT]/TOPIC"
            ))
        };
        let rest = text
            .strip_prefix(KAFKA_PREFIX)
            .ok_or_else(|| bad("no kafka://"))?;
        let (brokers, topic) = rest.split_once('/').ok_or_else(|| bad("no /TOPIC"))?;
        for broker in brokers.split(',') {
            let (host, port) = broker
                .rsplit_once(':')
                .ok_or_else(|| bad(&format!("broker '{broker}' has no :PORT")))?;
            if host.is_empty() || port.parse::<u16>().map_or(true, |port| port == 0) {
                return Err(bad(&format!("broker '{broker}' is not HOST:PORT")));
            }
        }
        // Kafka's own rule for topic names.
        let valid_topic = !topic.is_empty()
            && topic.len() <= 249
            && topic != "."
            && topic != ".."
            && topic
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if !valid_topic {
            return Err(bad(&format!(
                "topic '{topic}' is not 1 to 249 of the characters a-z A-Z 0-9 . _ -"
            )));
        }
        Ok(KafkaAddress {
            brokers: brokers.to_string(),
            topic: topic.to_string(),
        })
    }
}

impl fmt::Display for KafkaAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{KAFKA_PREFIX}{}/{}", self.brokers, self.topic)
    }
}

/// Parses `--kafka-option KEY=VALUE` for clap.
pub(crate) fn option_arg(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.trim().is_empty() => {
            Ok((key.trim().to_string(), value.to_string()))
        }
        _ => Err(format!(
            "expected KEY=VALUE (a librdkafka property, e.g. security.protocol=ssl), got '{text}'"
        )),
    }
}

/// The message's own fields, by [`MESSAGE_FIELDS`] name. A key that is not UTF-8 is null
/// unless the query reads it (`kafka_key`): then the message is a bad record.
fn message_fields<'a>(
    message: &'a KafkaMessage<'a>,
    reads_key: bool,
) -> Result<[(&'static str, Beside<'a>); 5], String> {
    let key = match message.key {
        None => Beside::Null,
        Some(bytes) => match std::str::from_utf8(bytes) {
            Ok(text) => Beside::Str(text),
            Err(_) if reads_key => return Err("the message key is not UTF-8".into()),
            Err(_) => Beside::Null,
        },
    };
    let timestamp = message.timestamp.map_or(Beside::Null, Beside::Int);
    Ok([
        (MESSAGE_FIELDS[0], timestamp),
        (MESSAGE_FIELDS[1], key),
        (MESSAGE_FIELDS[2], Beside::Int(i64::from(message.partition))),
        (MESSAGE_FIELDS[3], Beside::Int(message.offset)),
        (MESSAGE_FIELDS[4], Beside::Str(message.topic)),
    ])
}

/// Decodes a message whose value is a JSON object; `keep_original` keeps the value as the
/// row's original record (for `--late-output`).
pub(super) fn json_decoder(
    schema: Schema,
    keep_original: bool,
) -> impl Fn(&KafkaMessage<'_>) -> Result<Row, String> + Send + Sync + 'static {
    let reads_key = schema.reads(MESSAGE_FIELDS[1]);
    move |message| {
        let value = std::str::from_utf8(message.value)
            .map_err(|e| format!("the message value is not UTF-8 ({e})"))?;
        let beside = message_fields(message, reads_key)?;
        let mut row = decode_json_beside(&schema, value, &beside)?;
        if keep_original {
            row.original = Some(value.into());
        }
        Ok(row)
    }
}

/// Decodes a message whose value is one CSV row of the columns `header` names.
pub(super) fn csv_decoder(
    schema: Schema,
    header: &[String],
    keep_original: bool,
) -> Result<impl Fn(&KafkaMessage<'_>) -> Result<Row, String> + Send + Sync + 'static, Error> {
    let mut names = ByteRecord::new();
    for name in header.iter().map(String::as_str).chain(MESSAGE_FIELDS) {
        names.push_field(name.as_bytes());
    }
    let columns = CsvColumns::new(&schema, &names)
        .map_err(|e| Error::Config(format!("--csv-header: {e}")))?;
    let value_header: ByteRecord = header.iter().map(String::as_str).collect();
    let original = keep_original.then(|| CsvOriginal::new(&value_header));
    let width = header.len();
    let reads_key = schema.reads(MESSAGE_FIELDS[1]);
    Ok(move |message: &KafkaMessage<'_>| {
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .from_reader(message.value);
        let mut record = ByteRecord::new();
        if !reader
            .read_byte_record(&mut record)
            .map_err(|e| format!("the message value is not a CSV row ({e})"))?
        {
            return Err("the message value is empty".into());
        }
        if record.len() != width {
            return Err(format!(
                "the message value has {} CSV fields, --csv-header names {width}",
                record.len()
            ));
        }
        let kept = original.as_ref().map(|original| original.encode(&record));
        for (_, field) in message_fields(message, reads_key)? {
            match field {
                Beside::Null => record.push_field(b""),
                Beside::Int(n) => record.push_field(n.to_string().as_bytes()),
                Beside::Str(text) => record.push_field(text.as_bytes()),
            }
        }
        let mut row = decode_csv(&schema, &columns, &record)?;
        row.original = kept;
        Ok(row)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_brokers_and_a_topic() {
        let address = KafkaAddress::parse("kafka://a:9092,b:9093/events.v1", "--input").unwrap();
        assert_eq!(address.brokers, "a:9092,b:9093");
        assert_eq!(address.topic, "events.v1");
        assert_eq!(address.to_string(), "kafka://a:9092,b:9093/events.v1");
        for bad in [
            "kafka://a:9092",
            "kafka://a:9092/",
            "kafka://a/t",
            "kafka://:9092/t",
            "kafka://a:0/t",
            "kafka://a:9092/bad topic",
            "kafka://a:9092/..",
        ] {
            let error = KafkaAddress::parse(bad, "--input").unwrap_err().to_string();
            assert!(error.starts_with("--input: '"), "{bad}: {error}");
        }
    }

    #[test]
    fn options_are_key_value() {
        assert_eq!(
            option_arg("fetch.min.bytes=1"),
            Ok(("fetch.min.bytes".into(), "1".into()))
        );
        assert_eq!(option_arg("a=b=c"), Ok(("a".into(), "b=c".into())));
        assert!(option_arg("novalue").is_err());
        assert!(option_arg("=x").is_err());
    }

    fn message<'a>(value: &'a [u8], key: Option<&'a [u8]>) -> KafkaMessage<'a> {
        KafkaMessage {
            topic: "events",
            partition: 3,
            offset: 41,
            timestamp: Some(7_000),
            key,
            value,
        }
    }

    fn schema(time: &str, key: &str, scalars: &[&str]) -> Schema {
        Schema {
            time_field: time.into(),
            key_field: Some(key.into()),
            value_fields: vec![],
            scalar_fields: scalars.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn json_values_read_the_message_fields() {
        use crate::record::Key;
        let decode = json_decoder(
            schema(
                "kafka_timestamp",
                "kafka_key",
                &["kafka_partition", "kafka_offset", "kafka_topic", "n"],
            ),
            true,
        );
        let row = decode(&message(br#"{"n":1,"kafka_offset":99}"#, Some(b"ann"))).unwrap();
        assert_eq!(row.time, 7_000);
        assert_eq!(row.key, Key::Str("ann".into()));
        assert_eq!(
            row.scalars,
            vec![
                Key::Int(3),
                Key::Int(41),
                Key::Str("events".into()),
                Key::Int(1)
            ]
        );
        assert_eq!(
            row.original.as_deref(),
            Some(r#"{"n":1,"kafka_offset":99}"#)
        );
        let error = decode(&message(b"{}", Some(&[0xff]))).unwrap_err();
        assert!(error.contains("key is not UTF-8"), "{error}");
        let no_key = json_decoder(schema("ts", "user", &[]), false);
        assert!(no_key(&message(br#"{"ts":5,"user":"x"}"#, Some(&[0xff]))).is_ok());
        assert!(no_key(&message(b"\xff", None))
            .unwrap_err()
            .contains("not UTF-8"));
    }

    #[test]
    fn csv_values_are_one_row_of_the_named_columns() {
        use crate::record::Key;
        let header = ["ts".to_string(), "user".to_string()];
        let decode = csv_decoder(schema("ts", "user", &["kafka_offset"]), &header, false).unwrap();
        let row = decode(&message(b"1000,bob", None)).unwrap();
        assert_eq!((row.time, row.key.clone()), (1_000, Key::Str("bob".into())));
        assert_eq!(row.scalars, vec![Key::Int(41)]);
        let error = decode(&message(b"1000", None)).unwrap_err();
        assert!(
            error.contains("1 CSV fields, --csv-header names 2"),
            "{error}"
        );
        let missing = csv_decoder(schema("time", "user", &[]), &header, false)
            .err()
            .unwrap()
            .to_string();
        assert!(missing.starts_with("--csv-header: "), "{missing}");
    }
}
