//! `tideflow run --input rate:...`: generated input, the rate generator's records as rows.
//!
//! The spec `rate:rows_per_sec=N[,keys=K][,count=C][,seed=S][,partitions=P][,disorder=MS]`
//! names a [`RateSource`] whose records have the fields `ts` (the event time, integer ms),
//! `key` (a string, `k0` to `k{K-1}`) and `value` (an integer from 0 to 999). Its start time is
//! fixed at the Unix epoch, so record `i` has the event time `i * 1000 / N` ms (less up to the
//! disorder) and its key and value depend on the seed and `i` alone: every run, with any
//! number of workers, generates the same records, and a run resumed from a snapshot generates
//! the rest of them. Records come at `N` per second from when the job starts (or resumes).

use std::str::FromStr;
use std::time::Duration;

use crate::record::{Key, KeyKind, Num, Row, Schema};
use tideflow::source::{
    Position, RateRecord, RateSource, Source, SourceBatch, SourceContext, SourceStatus,
};
use tideflow::Error;

/// The prefix of a rate `--input`.
pub(super) const RATE_PREFIX: &str = "rate:";

/// The event time of record 0, in ms since the epoch: the epoch itself.
pub(super) const RATE_START_MS: u64 = 0;

/// The partitions of a rate input by default: fixed, so that which records are late does not
/// depend on the number of workers.
const DEFAULT_PARTITIONS: usize = 4;

/// The most partitions a rate input may have.
const MAX_PARTITIONS: usize = 65_536;

/// The fields of a rate input's rows, as errors list them.
const FIELDS: &str = "ts, key, value";

/// A rate `--input`, parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct RateInput {
    /// Records generated per second, at least 1.
    pub(super) rows_per_sec: u64,
    /// The number of keys, at least 1. By default, 1.
    pub(super) keys: u64,
    /// The number of records in all; `None` (the default) for an endless input.
    pub(super) count: Option<u64>,
    /// The seed of the keys, values and disorder. By default, 0.
    pub(super) seed: u64,
    /// The number of partitions (generator strides), at least 1. By default, 4.
    pub(super) partitions: usize,
    /// How far back each event time may be moved. By default, zero.
    pub(super) disorder: Duration,
}

impl FromStr for RateInput {
    type Err = Error;

    /// Parses `rate:rows_per_sec=N[,keys=K][,count=C][,seed=S][,partitions=P][,disorder=MS]`.
    /// The disorder is integer milliseconds or a duration (`20ms`, `1s`).
    fn from_str(text: &str) -> Result<Self, Error> {
        let config = |message: String| Error::Config(format!("--input: {message}"));
        let Some(parameters) = text.strip_prefix(RATE_PREFIX) else {
            return Err(config(format!(
                "'{text}' is not a rate input (rate:rows_per_sec=N,...)"
            )));
        };
        let mut rows_per_sec = None;
        let mut keys = None;
        let mut count = None;
        let mut seed = None;
        let mut partitions = None;
        let mut disorder = None;
        for parameter in parameters.split(',') {
            let Some((name, value)) = parameter.split_once('=') else {
                return Err(config(format!(
                    "rate parameter '{}' is not NAME=VALUE",
                    parameter.trim()
                )));
            };
            let (name, value) = (name.trim(), value.trim());
            let number = || -> Result<u64, Error> {
                value.parse().map_err(|_| {
                    config(format!(
                        "rate parameter {name}: '{value}' is not a whole number"
                    ))
                })
            };
            let at_least_one = || -> Result<u64, Error> {
                match number()? {
                    0 => Err(config(format!("rate parameter {name}: must be at least 1"))),
                    n => Ok(n),
                }
            };
            let given = match name {
                "rows_per_sec" => rows_per_sec.replace(at_least_one()?).is_some(),
                "keys" => keys.replace(at_least_one()?).is_some(),
                "count" => count.replace(number()?).is_some(),
                "seed" => seed.replace(number()?).is_some(),
                "partitions" => {
                    let n = usize::try_from(at_least_one()?).unwrap_or(usize::MAX);
                    if n > MAX_PARTITIONS {
                        return Err(config(format!(
                            "rate parameter partitions: at most {MAX_PARTITIONS}, got {n}"
                        )));
                    }
                    partitions.replace(n).is_some()
                }
                "disorder" => {
                    let ms = if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
                        Duration::from_millis(number()?)
                    } else {
                        tideflow::parse_duration(value)
                            .map_err(|e| config(format!("rate parameter disorder: {e}")))?
                    };
                    disorder.replace(ms).is_some()
                }
                _ => {
                    return Err(config(format!(
                        "unknown rate parameter '{name}'; the parameters are rows_per_sec, keys, count, seed, partitions and disorder"
                    )))
                }
            };
            if given {
                return Err(config(format!("rate parameter {name} is given twice")));
            }
        }
        let rows_per_sec = rows_per_sec.ok_or_else(|| {
            config("a rate input needs rows_per_sec, e.g. rate:rows_per_sec=1000".into())
        })?;
        Ok(RateInput {
            rows_per_sec,
            keys: keys.unwrap_or(1),
            count,
            seed: seed.unwrap_or(0),
            partitions: partitions.unwrap_or(DEFAULT_PARTITIONS),
            disorder: disorder.unwrap_or(Duration::ZERO),
        })
    }
}

impl RateInput {
    /// The generator: fixed start time ([`RATE_START_MS`]), paced from when it starts reading.
    fn generator(&self) -> RateSource {
        let source = RateSource::new(self.rows_per_sec)
            .keys(self.keys)
            .seed(self.seed)
            .max_disorder(self.disorder)
            .start_time(RATE_START_MS)
            .partitions(self.partitions)
            .paced_from_start();
        match self.count {
            Some(count) => source.count(count),
            None => source,
        }
    }

    /// The source of the rows `schema` reads. The time field must be `ts`; a numeric
    /// (`--agg sum`, `avg`, `min`, `max`) field cannot be `key`, a string. Any other field the
    /// schema names is null, as a field missing from a JSON record is.
    pub(super) fn source(&self, schema: &Schema) -> Result<RateRows, Error> {
        if schema.time_field != "ts" {
            return Err(Error::Config(format!(
                "--time-field: a rate input has no field '{}', only {FIELDS}: its event time is ts",
                schema.time_field
            )));
        }
        let values: Vec<Field> = schema
            .value_fields
            .iter()
            .map(|name| Field::of(name))
            .collect();
        if values.contains(&Field::Key) {
            // A string in a numeric field is a bad record in JSON or CSV input: here, every
            // record would be one.
            return Err(Error::Config(
                "--agg: field 'key' of a rate input is a string (k0, k1, ...), not a number; a numeric aggregate can read ts or value".into(),
            ));
        }
        Ok(RateRows {
            generator: self.generator(),
            fields: Fields {
                key: schema.key_field.as_deref().map(Field::of),
                values,
                scalars: schema.scalar_fields.iter().map(|f| Field::of(f)).collect(),
                keep_original: false,
            },
        })
    }
}

/// A field of a rate input's rows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Field {
    Ts,
    Key,
    Value,
    /// A field the rate input does not have: null.
    Missing,
}

impl Field {
    fn of(name: &str) -> Field {
        match name {
            "ts" => Field::Ts,
            "key" => Field::Key,
            "value" => Field::Value,
            _ => Field::Missing,
        }
    }

    /// The field of `record` as a key or scalar, as a JSON record holding it decodes.
    fn scalar(self, record: &RateRecord) -> Key {
        match self {
            Field::Ts => i64::try_from(record.ts).map_or(Key::Float(record.ts as f64), Key::Int),
            Field::Key => Key::Str(compact_str::format_compact!("k{}", record.key)),
            Field::Value => Key::Int(record.value),
            Field::Missing => Key::Null,
        }
    }

    /// The field of `record` as a number (never `key`: [`RateInput::source`] rejects it).
    fn num(self, record: &RateRecord) -> Option<Num> {
        match self {
            Field::Ts => {
                Some(i64::try_from(record.ts).map_or(Num::Float(record.ts as f64), Num::Int))
            }
            Field::Value => Some(Num::Int(record.value)),
            Field::Key | Field::Missing => None,
        }
    }
}

/// The fields a query reads from a rate input's rows.
#[derive(Clone, Debug)]
struct Fields {
    key: Option<Field>,
    values: Vec<Field>,
    scalars: Vec<Field>,
    /// Whether rows keep the record they were made from ([`Row::original`]).
    keep_original: bool,
}

impl Fields {
    fn row(&self, record: RateRecord) -> Row {
        Row {
            key: self.key.map_or(Key::Null, |field| field.scalar(&record)),
            key_kind: KeyKind::Native,
            time: record.ts,
            values: self.values.iter().map(|field| field.num(&record)).collect(),
            scalars: self
                .scalars
                .iter()
                .map(|field| field.scalar(&record))
                .collect(),
            // A rate record is the JSON object of its fields.
            original: self
                .keep_original
                .then(|| {
                    serde_json::to_string(&record)
                        .ok()
                        .map(String::into_boxed_str)
                })
                .flatten(),
        }
    }
}

/// A rate input as a source of rows; replayable.
pub(super) struct RateRows {
    generator: RateSource,
    fields: Fields,
}

impl RateRows {
    /// Rows that keep the record they were made from ([`Row::original`]), for late output.
    pub(super) fn keep_original(mut self, keep: bool) -> Self {
        self.fields.keep_original = keep;
        self
    }
}

impl Source for RateRows {
    type Item = Row;

    fn read(&mut self, batch: &mut SourceBatch<Row>) -> Result<SourceStatus, Error> {
        let fields = &self.fields;
        self.generator
            .read_mapped(batch, |record| fields.row(record))
    }

    fn on_start(&mut self, context: &SourceContext) -> Result<(), Error> {
        self.generator.on_start(context)
    }

    fn partitions(&self) -> usize {
        Source::partitions(&self.generator)
    }

    fn replayable(&self) -> bool {
        self.generator.replayable()
    }

    fn position(&self, partition: usize) -> Position {
        self.generator.position(partition)
    }

    fn seek(&mut self, partition: usize, position: Position) -> Result<(), Error> {
        self.generator.seek(partition, position)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use tideflow::sink::MemorySink;
    use tideflow::{execute, Config};

    fn parse(text: &str) -> Result<RateInput, String> {
        text.parse::<RateInput>().map_err(|e| {
            assert!(matches!(e, Error::Config(_)), "{e:?}");
            e.to_string()
        })
    }

    #[test]
    fn specs_parse_with_defaults() {
        assert_eq!(
            parse("rate:rows_per_sec=10").unwrap(),
            RateInput {
                rows_per_sec: 10,
                keys: 1,
                count: None,
                seed: 0,
                partitions: 4,
                disorder: Duration::ZERO,
            }
        );
        assert_eq!(
            parse("rate:rows_per_sec=5, keys=3,count=0,seed=9,partitions=2,disorder=250").unwrap(),
            RateInput {
                rows_per_sec: 5,
                keys: 3,
                count: Some(0),
                seed: 9,
                partitions: 2,
                disorder: Duration::from_millis(250),
            }
        );
        let spec = parse("rate:disorder=2s,rows_per_sec=1").unwrap();
        assert_eq!(spec.disorder, Duration::from_secs(2));
    }

    #[test]
    fn bad_specs_name_the_parameter() {
        for (text, expected) in [
            ("rate:", "is not NAME=VALUE"),
            ("rate:keys=2", "needs rows_per_sec"),
            ("rate:rows_per_sec=0", "rows_per_sec: must be at least 1"),
            (
                "rate:rows_per_sec=-1",
                "rows_per_sec: '-1' is not a whole number",
            ),
            ("rate:rows_per_sec=1,keys=0", "keys: must be at least 1"),
            (
                "rate:rows_per_sec=1,partitions=0",
                "partitions: must be at least 1",
            ),
            (
                "rate:rows_per_sec=1,partitions=100000",
                "partitions: at most 65536",
            ),
            (
                "rate:rows_per_sec=1,count=lots",
                "count: 'lots' is not a whole number",
            ),
            (
                "rate:rows_per_sec=1,seed=",
                "seed: '' is not a whole number",
            ),
            (
                "rate:rows_per_sec=1,disorder=5x",
                "disorder: invalid duration",
            ),
            (
                "rate:rows_per_sec=1,rate=2",
                "unknown rate parameter 'rate'",
            ),
            (
                "rate:rows_per_sec=1,,keys=2",
                "rate parameter '' is not NAME=VALUE",
            ),
            (
                "rate:rows_per_sec=1,rows_per_sec=2",
                "rows_per_sec is given twice",
            ),
            ("rows_per_sec=1", "is not a rate input"),
        ] {
            let message = parse(text).unwrap_err();
            assert!(
                message.starts_with("--input: ") && message.contains(expected),
                "{text}: {message}"
            );
            assert_eq!(message.lines().count(), 1);
        }
    }

    fn schema(key: Option<&str>, values: &[&str], scalars: &[&str]) -> Schema {
        Schema {
            time_field: "ts".into(),
            key_field: key.map(str::to_string),
            value_fields: values.iter().map(|f| f.to_string()).collect(),
            scalar_fields: scalars.iter().map(|f| f.to_string()).collect(),
        }
    }

    #[test]
    fn records_map_to_rows_by_field_name() {
        let input = parse("rate:rows_per_sec=4,keys=5,seed=7,disorder=100").unwrap();
        let fields = input
            .source(&schema(
                Some("key"),
                &["value", "ts", "nope"],
                &["key", "value", "ts", "nope"],
            ))
            .unwrap()
            .fields;
        let generator = input.generator();
        for index in [0, 1, 2, 13] {
            let record = generator.record(index);
            assert!(record.ts <= index * 250 && record.ts + 100 >= index * 250);
            let row = fields.row(record);
            let key = Key::Str(compact_str::format_compact!("k{}", record.key));
            assert_eq!(row.key, key);
            assert_eq!(row.time, record.ts);
            let ts = record.ts as i64;
            assert_eq!(
                row.values,
                vec![Some(Num::Int(record.value)), Some(Num::Int(ts)), None]
            );
            assert_eq!(
                row.scalars,
                vec![key, Key::Int(record.value), Key::Int(ts), Key::Null]
            );
        }
        // Keyed by value or time, or without a key field.
        let by = |key| input.source(&schema(key, &[], &[])).unwrap().fields;
        let record = generator.record(3);
        assert_eq!(by(Some("value")).row(record).key, Key::Int(record.value));
        assert_eq!(by(Some("ts")).row(record).key, Key::Int(record.ts as i64));
        assert_eq!(by(Some("other")).row(record).key, Key::Null);
        assert_eq!(by(None).row(record).key, Key::Null);
    }

    #[test]
    fn schemas_a_rate_input_cannot_fill_are_named() {
        let input = parse("rate:rows_per_sec=1").unwrap();
        let mut bad_time = schema(None, &[], &[]);
        bad_time.time_field = "time".into();
        let message = input.source(&bad_time).err().unwrap().to_string();
        assert!(
            message.starts_with("--time-field: ") && message.contains("ts, key, value"),
            "{message}"
        );
        let message = input
            .source(&schema(None, &["key"], &[]))
            .err()
            .unwrap()
            .to_string();
        assert!(message.starts_with("--agg: field 'key'"), "{message}");
    }

    #[test]
    fn rows_are_replayable_and_the_same_for_any_worker_count() {
        let input = parse("rate:rows_per_sec=100000,keys=3,count=50,seed=1,partitions=3").unwrap();
        let rows = |workers: usize| {
            let sink = MemorySink::new();
            let output = sink.clone();
            let input = input.clone();
            execute(Config::workers(workers), move |flow| {
                let source = input.source(&schema(Some("key"), &["value"], &[]))?;
                assert!(source.replayable());
                flow.source(source)
                    .with_event_time(|row: &Row| row.time)
                    .with_watermark(Duration::ZERO)
                    .sink(output.clone());
                Ok(())
            })
            .unwrap();
            let mut rows: Vec<(u64, String)> = sink
                .take()
                .into_iter()
                .map(|row: Row| (row.time, format!("{:?} {:?}", row.key, row.values)))
                .collect();
            rows.sort();
            rows
        };
        let one = rows(1);
        assert_eq!(one.len(), 50);
        assert_eq!(rows(2), one);
        // A source sought to a position delegates to the generator.
        let mut source = input.source(&schema(None, &[], &[])).unwrap();
        let context = SourceContext {
            worker_index: 1,
            peers: 2,
        };
        source.on_start(&context).unwrap();
        assert_eq!(source.partitions(), 1);
        let at = Position {
            offset: 31,
            line: 0,
        };
        source.seek(0, at).unwrap();
        assert_eq!(source.position(0), at);
        assert!(source
            .seek(
                0,
                Position {
                    offset: 30,
                    line: 0
                }
            )
            .is_err());
    }
}
