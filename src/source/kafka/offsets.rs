//! Where a Kafka source starts ([`StartingOffsets`]), and a topic's partitions and offsets as
//! the broker lists them ([`kafka_partitions`], for `explain`).

use std::collections::BTreeMap;
use std::str::FromStr;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::ClientConfig;

use super::reader::Reader;
use crate::error::Error;

/// How long [`kafka_partitions`] waits for the fetch responses that carry the partitions'
/// high watermarks.
const FETCH_WAIT: Duration = Duration::from_secs(2);

/// How long a metadata or offsets request to the broker may take before the source gives up
/// (the broker unreachable, or not answering).
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Where a Kafka source starts reading each partition on a job's first run. A job resumed from
/// a snapshot starts at the snapshot's offsets instead.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum StartingOffsets {
    /// At each partition's earliest offset (the oldest record the broker keeps). The default.
    #[default]
    Earliest,
    /// At each partition's end when the job starts: only records produced from then on.
    Latest,
    /// At these offsets, by partition: `-2` is the partition's earliest, `-1` its latest. A
    /// partition not named starts at its earliest.
    Offsets(BTreeMap<i32, i64>),
}

impl StartingOffsets {
    /// Parses `earliest`, `latest` or Spark's JSON form, `{"TOPIC":{"0":23,"1":-2}}` (one
    /// topic, offsets by partition, `-2` for earliest and `-1` for latest), checking that the
    /// JSON names `topic`.
    ///
    /// # Examples
    /// ```
    /// use tideflow::source::StartingOffsets;
    /// let offsets = StartingOffsets::parse_for_topic(r#"{"clicks":{"0":23,"1":-2}}"#, "clicks")?;
    /// assert_eq!(offsets, StartingOffsets::Offsets([(0, 23), (1, -2)].into()));
    /// assert!(StartingOffsets::parse_for_topic(r#"{"views":{"0":1}}"#, "clicks").is_err());
    /// # Ok::<(), tideflow::Error>(())
    /// ```
    pub fn parse_for_topic(text: &str, topic: &str) -> Result<Self, Error> {
        let (named, offsets) = parse(text)?;
        match named {
            Some(named) if named != topic => Err(Error::Config(format!(
                "starting offsets: '{text}' names topic '{named}', not '{topic}'"
            ))),
            _ => Ok(offsets),
        }
    }
}

impl FromStr for StartingOffsets {
    type Err = Error;

    /// Parses `earliest`, `latest` or Spark's JSON form, `{"TOPIC":{"0":23,"1":-2}}`, as the
    /// `--starting-offsets` flag takes them (the topic is not checked: see
    /// [`StartingOffsets::parse_for_topic`]).
    ///
    /// # Examples
    /// ```
    /// use tideflow::source::StartingOffsets;
    /// assert_eq!("latest".parse::<StartingOffsets>()?, StartingOffsets::Latest);
    /// assert!("newest".parse::<StartingOffsets>().is_err());
    /// # Ok::<(), tideflow::Error>(())
    /// ```
    fn from_str(text: &str) -> Result<Self, Error> {
        parse(text).map(|(_, offsets)| offsets)
    }
}

/// Parses starting offsets: the JSON form also gives the topic it names.
fn parse(text: &str) -> Result<(Option<String>, StartingOffsets), Error> {
    let bad = |why: &str| {
        Error::Config(format!(
            "starting offsets: '{text}' is not earliest, latest or JSON like {{\"topic\":{{\"0\":23,\"1\":-2}}}}: {why}"
        ))
    };
    match text.trim() {
        "earliest" => return Ok((None, StartingOffsets::Earliest)),
        "latest" => return Ok((None, StartingOffsets::Latest)),
        _ => {}
    }
    let json: BTreeMap<String, BTreeMap<String, i64>> =
        serde_json::from_str(text).map_err(|e| bad(&e.to_string()))?;
    let mut topics = json.into_iter();
    let (Some((topic, by_partition)), None) = (topics.next(), topics.next()) else {
        return Err(bad("it must name exactly one topic"));
    };
    let mut offsets = BTreeMap::new();
    for (partition, offset) in by_partition {
        let number: i32 = partition
            .parse()
            .ok()
            .filter(|p: &i32| *p >= 0)
            .ok_or_else(|| bad(&format!("'{partition}' is not a partition number")))?;
        if offset < -2 {
            return Err(bad(&format!(
                "offset {offset} of partition {number} is below -2"
            )));
        }
        offsets.insert(number, offset);
    }
    Ok((Some(topic), StartingOffsets::Offsets(offsets)))
}

/// A partition of a topic and its offsets, as the broker lists them ([`kafka_partitions`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PartitionInfo {
    /// The partition's number.
    pub partition: i32,
    /// The earliest offset the broker keeps.
    pub earliest: i64,
    /// The offset the next produced record will get: the high watermark of a fetch response
    /// if one came within about 2 s, else the broker's ListOffsets answer (which some brokers
    /// get wrong: tansu answers the base offset of the newest batch plus one when producers
    /// batch several records).
    pub latest: i64,
}

/// Lists the partitions of `topic` on `brokers` (`HOST:PORT[,HOST:PORT...]`) with their
/// earliest and latest offsets (ListOffsets, then a fetch from the latest offset, whose reply
/// carries the partition's high watermark); `options` are client properties as
/// [`KafkaSource::option`](super::KafkaSource::option) takes them. A missing topic is an
/// [`Error::Config`] naming it and the brokers; a broker that cannot be reached within about
/// 10 s an [`Error::Kafka`] naming the address.
pub fn kafka_partitions(
    brokers: &str,
    topic: &str,
    options: &[(String, String)],
) -> Result<Vec<PartitionInfo>, Error> {
    let consumer = consumer(brokers, options)?;
    let partitions = topic_partitions(&consumer, brokers, topic)?;
    let mut infos = partitions
        .into_iter()
        .map(|partition| {
            let (earliest, latest) = consumer
                .fetch_watermarks(topic, partition, REQUEST_TIMEOUT)
                .map_err(|e| {
                    Error::Kafka(format!(
                        "cannot read the offsets of topic {topic} partition {partition} from {brokers}: {e}"
                    ))
                })?;
            Ok(PartitionInfo {
                partition,
                earliest,
                latest,
            })
        })
        .collect::<Result<Vec<_>, Error>>()?;
    let mut reader = Reader::new(consumer, topic, 64)?;
    let starts: Vec<(i32, i64)> = infos.iter().map(|i| (i.partition, i.latest)).collect();
    reader.assign(&starts)?;
    let deadline = Instant::now() + FETCH_WAIT;
    while Instant::now() < deadline
        && infos
            .iter()
            .any(|i| reader.high_watermark(i.partition).is_none())
    {
        // What is fetched is not needed, nor are transient errors: only the high watermarks.
        reader.consume(50, |_| Ok(()))?;
    }
    for info in &mut infos {
        if let Some(high) = reader.high_watermark(info.partition) {
            info.latest = info.latest.max(high);
        }
    }
    Ok(infos)
}

/// A consumer of `brokers` with Tideflow's settings, then `options` (which override them).
pub(crate) fn consumer(brokers: &str, options: &[(String, String)]) -> Result<BaseConsumer, Error> {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", brokers)
        .set("client.id", "tideflow")
        // assign() needs a group, though offsets are never committed to it: the snapshot, not
        // the group, says where a job resumes.
        .set("group.id", "tideflow")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("allow.auto.create.topics", "false")
        // An offset the broker no longer has (retention) is an error, not a silent jump.
        .set("auto.offset.reset", "error")
        .set("isolation.level", "read_committed")
        .set("socket.connection.setup.timeout.ms", "10000");
    for (key, value) in options {
        config.set(key, value);
    }
    config.create().map_err(|e| {
        Error::Config(format!(
            "kafka: cannot create a consumer of {brokers} with these options: {e}"
        ))
    })
}

/// The partitions of `topic`, from the broker's metadata.
pub(crate) fn topic_partitions(
    consumer: &BaseConsumer,
    brokers: &str,
    topic: &str,
) -> Result<Vec<i32>, Error> {
    let metadata = consumer
        .fetch_metadata(Some(topic), REQUEST_TIMEOUT)
        .map_err(|e| {
            Error::Kafka(format!(
                "cannot reach broker {brokers} for topic {topic} within {} s: {e}",
                REQUEST_TIMEOUT.as_secs()
            ))
        })?;
    let missing = || {
        Error::Config(format!(
            "kafka: topic '{topic}' does not exist on {brokers}"
        ))
    };
    let found = metadata
        .topics()
        .iter()
        .find(|t| t.name() == topic)
        .ok_or_else(missing)?;
    if found.error().is_some() || found.partitions().is_empty() {
        return Err(missing());
    }
    let mut partitions: Vec<i32> = found.partitions().iter().map(|p| p.id()).collect();
    partitions.sort_unstable();
    Ok(partitions)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starting_offsets_parse_and_name_the_flag_text() {
        assert_eq!(
            "earliest".parse::<StartingOffsets>().unwrap(),
            StartingOffsets::Earliest
        );
        assert_eq!(
            r#"{"t":{"0":5,"3":-1}}"#.parse::<StartingOffsets>().unwrap(),
            StartingOffsets::Offsets([(0, 5), (3, -1)].into())
        );
        for bad in [
            "",
            "oldest",
            "{}",
            r#"{"a":{"0":1},"b":{"0":1}}"#,
            r#"{"t":{"x":1}}"#,
            r#"{"t":{"-1":1}}"#,
            r#"{"t":{"0":-3}}"#,
            r#"{"t":[1]}"#,
        ] {
            let err = bad.parse::<StartingOffsets>().unwrap_err().to_string();
            assert!(
                err.starts_with(&format!("starting offsets: '{bad}'")),
                "{bad}: {err}"
            );
        }
        let err = StartingOffsets::parse_for_topic(r#"{"u":{"0":1}}"#, "t")
            .unwrap_err()
            .to_string();
        assert!(err.contains("names topic 'u', not 't'"), "{err}");
    }
}
