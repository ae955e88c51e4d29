//! Decoding command-line rows from JSON objects and CSV rows, by field name.

use std::borrow::Cow;
use std::fmt;

use csv::ByteRecord;
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserializer;

use super::flat_json::decode_flat;
use super::group_key::{group_key, KeyKind};
use super::non_finite::{decode_allowing_non_finite, parse_non_finite};
use super::{Key, Num, Row};

/// The latest event time accepted: the last millisecond of the year 9999.
const MAX_TIME_MS: u64 = 253_402_300_799_999;

/// Which fields of a record the query reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Schema {
    /// The event-time field: integer ms since the epoch, or an RFC 3339 string.
    pub time_field: String,
    /// The key field, if the query groups by one.
    pub key_field: Option<String>,
    /// The numeric fields the aggregates read, without repeats.
    pub value_fields: Vec<String>,
    /// The fields read as any scalar (`first`, `last`, `count_distinct`), without repeats.
    pub scalar_fields: Vec<String>,
}

impl Schema {
    /// Whether the query reads field `name` (as the time, the key, a value or a scalar).
    pub fn reads(&self, name: &str) -> bool {
        same(name, &self.time_field)
            || self.key_field.as_deref().is_some_and(|key| same(name, key))
            || self.value_fields.iter().any(|f| same(f, name))
            || self.scalar_fields.iter().any(|f| same(f, name))
    }
}

/// Whether two field names are equal, comparing short names byte by byte rather than
/// through `memcmp` (this runs for every field of every JSON record).
#[inline]
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).all(|(x, y)| x == y)
}

/// Parses an event time written as integer milliseconds since the epoch or as an RFC 3339
/// timestamp (`2024-05-01T12:00:00.250Z`, `...+02:00`).
///
/// # Examples
/// ```
/// use tideflow_cli::record::parse_time;
/// assert_eq!(parse_time("1700000000000"), Ok(1_700_000_000_000));
/// assert_eq!(parse_time("1970-01-01T00:00:01.5+00:00"), Ok(1_500));
/// assert!(parse_time("-5").is_err());
/// ```
pub fn parse_time(text: &str) -> Result<u64, String> {
    if let Some(ms) = digits_ms(text.as_bytes()) {
        return check_time(ms);
    }
    let text = text.trim();
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        let ms: u64 = text
            .parse()
            .map_err(|_| format!("time {text} is out of range"))?;
        return check_time(ms);
    }
    if let Some(rest) = text.strip_prefix('-') {
        if rest.bytes().all(|b| b.is_ascii_digit()) && !rest.is_empty() {
            return Err(format!("time {text} is negative"));
        }
    }
    let parsed = chrono::DateTime::parse_from_rfc3339(text).map_err(|_| {
        format!("time '{text}' is neither integer milliseconds nor an RFC 3339 timestamp")
    })?;
    let ms = parsed.timestamp_millis();
    u64::try_from(ms)
        .map_err(|_| format!("time '{text}' is before 1970"))
        .and_then(check_time)
}

/// The value of 1 to 18 ASCII digits (no sign, no spaces), in one pass: the usual event time.
/// `None` for anything else, which [`parse_time`] reads the long way.
#[inline]
fn digits_ms(bytes: &[u8]) -> Option<u64> {
    if bytes.is_empty() || bytes.len() > 18 {
        return None;
    }
    let mut value = 0u64;
    for &b in bytes {
        let digit = b.wrapping_sub(b'0');
        if digit > 9 {
            return None;
        }
        value = value * 10 + u64::from(digit);
    }
    Some(value)
}

/// An event time as an aggregated number (event times fit `i64`: see [`check_time`]).
fn time_num(ms: u64) -> Num {
    Num::Int(ms as i64)
}

fn check_time(ms: u64) -> Result<u64, String> {
    if ms > MAX_TIME_MS {
        Err(format!("time {ms} is out of range (after the year 9999)"))
    } else {
        Ok(ms)
    }
}

/// Decodes one JSON object into a [`Row`].
///
/// # Examples
/// ```
/// use tideflow_cli::record::{decode_json, Key, Num, Schema};
/// let schema = Schema {
///     time_field: "ts".into(),
///     key_field: Some("user".into()),
///     value_fields: vec!["n".into()],
///     scalar_fields: vec![],
/// };
/// let row = decode_json(&schema, r#"{"user":"ann","ts":1000,"n":2.5,"other":[1,2]}"#).unwrap();
/// assert_eq!((row.key, row.time, row.values), (Key::Str("ann".into()), 1_000, vec![Some(Num::Float(2.5))]));
/// assert!(decode_json(&schema, r#"{"user":"ann"}"#).unwrap_err().contains("missing time field 'ts'"));
/// ```
pub fn decode_json(schema: &Schema, line: &str) -> Result<Row, String> {
    decode_json_beside(schema, line, &[])
}

/// A field given beside a record rather than in it: a Kafka message's timestamp, key,
/// partition, offset or topic ([`decode_json_beside`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Beside<'a> {
    /// No value (a message without a key).
    Null,
    /// An integer.
    Int(i64),
    /// Text.
    Str(&'a str),
}

impl<'a> Beside<'a> {
    fn scalar(self) -> Scalar<'a> {
        match self {
            Beside::Null => Scalar::Null,
            // As serde_json gives them: non-negative integers unsigned.
            Beside::Int(n) => match u64::try_from(n) {
                Ok(n) => Scalar::UInt(n),
                Err(_) => Scalar::Int(n),
            },
            Beside::Str(text) => Scalar::Str(Cow::Borrowed(text)),
        }
    }
}

/// [`decode_json`], with fields given beside the record (by name): the query reads them as
/// if the object had them, in place of any field of the object with the same name.
///
/// # Examples
/// ```
/// use tideflow_cli::record::{decode_json_beside, Beside, Key, Schema};
/// let schema = Schema {
///     time_field: "kafka_timestamp".into(),
///     key_field: Some("user".into()),
///     value_fields: vec![],
///     scalar_fields: vec![],
/// };
/// let row = decode_json_beside(&schema, r#"{"user":"ann","kafka_timestamp":5}"#, &[("kafka_timestamp", Beside::Int(1_000))]).unwrap();
/// assert_eq!((row.key, row.time), (Key::Str("ann".into()), 1_000));
/// ```
pub fn decode_json_beside(
    schema: &Schema,
    line: &str,
    beside: &[(&str, Beside<'_>)],
) -> Result<Row, String> {
    if beside.is_empty() {
        if let Some(row) = decode_flat(schema, line) {
            return Ok(row);
        }
    }
    decode_json_serde(schema, line, beside)
}

/// [`decode_json_beside`] through `serde_json` only, without the fast path for flat objects.
pub(super) fn decode_json_serde(
    schema: &Schema,
    line: &str,
    beside: &[(&str, Beside<'_>)],
) -> Result<Row, String> {
    decode_allowing_non_finite(line, |line| decode_json_strict(schema, line, beside))
}

/// [`decode_json`] without bare `NaN` and infinity tokens.
fn decode_json_strict(
    schema: &Schema,
    line: &str,
    beside: &[(&str, Beside<'_>)],
) -> Result<Row, String> {
    let mut deserializer = serde_json::Deserializer::from_str(line);
    let row = RowSeed { schema, beside }
        .deserialize(&mut deserializer)
        .map_err(json_error)?;
    deserializer.end().map_err(json_error)?;
    Ok(row)
}

/// serde_json's message, with its position given as a column: the line is the file's.
pub(super) fn json_error(error: serde_json::Error) -> String {
    let message = error.to_string();
    match message.rfind(" at line ") {
        Some(at) => format!("{} (column {})", &message[..at], error.column()),
        None => message,
    }
}

struct RowSeed<'a> {
    schema: &'a Schema,
    beside: &'a [(&'a str, Beside<'a>)],
}

impl<'de> DeserializeSeed<'de> for RowSeed<'_> {
    type Value = Row;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Row, D::Error> {
        deserializer.deserialize_map(self)
    }
}

/// A row being decoded: the fields the query reads, as they are found.
pub(super) struct RowParts<'a> {
    schema: &'a Schema,
    time: Option<u64>,
    key: Key,
    key_kind: KeyKind,
    values: Vec<Option<Num>>,
    scalars: Vec<Key>,
}

impl<'a> RowParts<'a> {
    pub(super) fn new(schema: &'a Schema) -> Self {
        RowParts {
            schema,
            time: None,
            key: Key::Null,
            key_kind: KeyKind::Native,
            // `vec![x; 0]` is a call; most queries read no value or no scalar.
            values: match schema.value_fields.len() {
                0 => Vec::new(),
                n => vec![None; n],
            },
            scalars: match schema.scalar_fields.len() {
                0 => Vec::new(),
                n => vec![Key::Null; n],
            },
        }
    }

    /// Whether the query reads field `name`.
    pub(super) fn reads(&self, name: &str) -> bool {
        self.schema.reads(name)
    }

    /// Takes field `name`'s value wherever the query reads it.
    pub(super) fn set(&mut self, name: &str, value: &Scalar<'_>) -> Result<(), String> {
        let schema = self.schema;
        let is_time = same(name, &schema.time_field);
        if is_time {
            self.time = Some(value.to_time(name)?);
        }
        if schema
            .key_field
            .as_deref()
            .is_some_and(|key| same(name, key))
        {
            (self.key, self.key_kind) = group_key(value, name)?;
        }
        if let Some(slot) = schema.value_fields.iter().position(|f| same(f, name)) {
            // The time field as a value is its time in ms, whichever way it is written.
            self.values[slot] = match self.time.filter(|_| is_time) {
                Some(ms) => Some(time_num(ms)),
                None => value.to_num(name)?,
            };
        }
        if let Some(slot) = schema.scalar_fields.iter().position(|f| same(f, name)) {
            self.scalars[slot] = match self.time.filter(|_| is_time) {
                Some(ms) => Key::Int(ms as i64),
                None => value.to_key(name, "field")?,
            };
        }
        Ok(())
    }

    pub(super) fn finish(self) -> Result<Row, String> {
        let time = self
            .time
            .ok_or_else(|| format!("missing time field '{}'", self.schema.time_field))?;
        Ok(Row {
            key: self.key,
            key_kind: self.key_kind,
            time,
            values: self.values,
            scalars: self.scalars,
            original: None,
        })
    }
}

impl<'de> Visitor<'de> for RowSeed<'_> {
    type Value = Row;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Row, A::Error> {
        let mut row = RowParts::new(self.schema);
        for (name, value) in self.beside {
            if row.reads(name) {
                row.set(name, &value.scalar()).map_err(de::Error::custom)?;
            }
        }
        while let Some(name) = map.next_key::<Scalar<'de>>()? {
            let Scalar::Str(name) = name else { continue };
            let given_beside = self.beside.iter().any(|(beside, _)| **beside == *name);
            if given_beside || !row.reads(&name) {
                map.next_value::<IgnoredAny>()?;
                continue;
            }
            let value: Scalar<'de> = map.next_value()?;
            row.set(&name, &value).map_err(de::Error::custom)?;
        }
        row.finish().map_err(de::Error::custom)
    }
}

/// A JSON value as far as a row cares: a scalar, or something it will not use.
pub(super) enum Scalar<'de> {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Str(Cow<'de, str>),
    Composite,
}

impl Scalar<'_> {
    fn kind(&self) -> &'static str {
        match self {
            Scalar::Null => "null",
            Scalar::Bool(_) => "a boolean",
            Scalar::Int(_) | Scalar::UInt(_) => "an integer",
            Scalar::Float(_) => "a fraction",
            Scalar::Str(_) => "a string",
            Scalar::Composite => "an object or array",
        }
    }

    fn to_time(&self, field: &str) -> Result<u64, String> {
        match self {
            Scalar::UInt(ms) => check_time(*ms),
            Scalar::Int(ms) => Err(format!("time field '{field}' is negative ({ms})")),
            Scalar::Str(text) => parse_time(text).map_err(|e| format!("time field '{field}': {e}")),
            other => Err(format!(
                "time field '{field}' must be integer milliseconds or an RFC 3339 string, got {}",
                other.kind()
            )),
        }
    }

    pub(super) fn to_key(&self, field: &str, what: &str) -> Result<Key, String> {
        Ok(match self {
            Scalar::Null => Key::Null,
            Scalar::Bool(b) => Key::Bool(*b),
            Scalar::Int(i) => Key::Int(*i),
            Scalar::UInt(u) => i64::try_from(*u).map_or(Key::Float(*u as f64), Key::Int),
            Scalar::Float(f) => Key::Float(*f),
            Scalar::Str(s) => Key::Str(s.as_ref().into()),
            Scalar::Composite => {
                return Err(format!(
                    "{what} '{field}' must be a scalar, got an object or array"
                ))
            }
        })
    }

    pub(super) fn to_num(&self, field: &str) -> Result<Option<Num>, String> {
        Ok(match self {
            Scalar::Null => None,
            Scalar::Int(i) => Some(Num::Int(*i)),
            Scalar::UInt(u) => Some(i64::try_from(*u).map_or(Num::Float(*u as f64), Num::Int)),
            Scalar::Float(f) => Some(Num::Float(*f)),
            Scalar::Str(text) if parse_non_finite(text).is_some() => {
                parse_non_finite(text).map(Num::Float)
            }
            other => {
                return Err(format!(
                    "field '{field}' must be a number, got {}",
                    other.kind()
                ))
            }
        })
    }
}

impl<'de> serde::Deserialize<'de> for Scalar<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ScalarVisitor)
    }
}

struct ScalarVisitor;

impl<'de> Visitor<'de> for ScalarVisitor {
    type Value = Scalar<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_unit<E>(self) -> Result<Scalar<'de>, E> {
        Ok(Scalar::Null)
    }
    fn visit_bool<E>(self, b: bool) -> Result<Scalar<'de>, E> {
        Ok(Scalar::Bool(b))
    }
    fn visit_i64<E>(self, i: i64) -> Result<Scalar<'de>, E> {
        Ok(if i >= 0 {
            Scalar::UInt(i as u64)
        } else {
            Scalar::Int(i)
        })
    }
    fn visit_u64<E>(self, u: u64) -> Result<Scalar<'de>, E> {
        Ok(Scalar::UInt(u))
    }
    fn visit_f64<E>(self, f: f64) -> Result<Scalar<'de>, E> {
        Ok(Scalar::Float(f))
    }
    fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Scalar<'de>, E> {
        Ok(Scalar::Str(Cow::Borrowed(s)))
    }
    fn visit_str<E>(self, s: &str) -> Result<Scalar<'de>, E> {
        Ok(Scalar::Str(Cow::Owned(s.to_owned())))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Scalar<'de>, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Scalar::Composite)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Scalar<'de>, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Scalar::Composite)
    }
}

/// Column positions of a schema's fields in one CSV file.
#[derive(Clone, Debug)]
pub struct CsvColumns {
    time: usize,
    key: Option<usize>,
    values: Vec<usize>,
    scalars: Vec<usize>,
}

impl CsvColumns {
    /// Finds each field of `schema` in `header`; a missing column is an error naming it.
    pub fn new(schema: &Schema, header: &ByteRecord) -> Result<Self, String> {
        let names = header_names(header);
        let find = |field: &str, flag: &str| find_column(&names, field, flag);
        Ok(CsvColumns {
            time: find(&schema.time_field, "--time-field")?,
            key: schema
                .key_field
                .as_deref()
                .map(|k| find(k, "--key-field"))
                .transpose()?,
            values: schema
                .value_fields
                .iter()
                .map(|f| find(f, "--agg"))
                .collect::<Result<_, _>>()?,
            scalars: schema
                .scalar_fields
                .iter()
                .map(|f| find(f, "--agg"))
                .collect::<Result<_, _>>()?,
        })
    }
}

/// The column names of a CSV header, as written (not trimmed, as Spark reads them).
pub(super) fn header_names(header: &ByteRecord) -> Vec<String> {
    header
        .iter()
        .map(|h| String::from_utf8_lossy(h).into_owned())
        .collect()
}

/// The position of column `field` among `names`; a missing column, or one that appears more
/// than once (which one would be read?), is an error naming the flag that asked for it.
pub(super) fn find_column(names: &[String], field: &str, flag: &str) -> Result<usize, String> {
    let mut found = names.iter().enumerate().filter(|(_, n)| *n == field);
    let Some((index, _)) = found.next() else {
        let quoted: Vec<String> = names.iter().map(|n| format!("'{n}'")).collect();
        return Err(format!(
            "no column '{field}' ({flag}) in the CSV header; the columns are: {}",
            quoted.join(", ")
        ));
    };
    let others: Vec<String> = found.map(|(at, _)| (at + 1).to_string()).collect();
    if others.is_empty() {
        return Ok(index);
    }
    Err(format!(
        "column '{field}' ({flag}) appears {} times in the CSV header (columns {} and {}); rename all but one",
        others.len() + 1,
        index + 1,
        others.join(", ")
    ))
}

/// Decodes one CSV row into a [`Row`]: empty cells are null; numbers are integers when they
/// parse as one, else floats.
pub fn decode_csv(schema: &Schema, columns: &CsvColumns, row: &ByteRecord) -> Result<Row, String> {
    let cell = |index: usize, field: &str| csv_cell(row, index, field);
    let time_error = |e| format!("time field '{}': {e}", schema.time_field);
    // Integer milliseconds, the usual case, straight from the bytes.
    let time = match row.get(columns.time).and_then(digits_ms) {
        Some(ms) => check_time(ms).map_err(time_error)?,
        None => {
            let time_text = cell(columns.time, &schema.time_field)?;
            if time_text.is_empty() {
                return Err(format!("missing time field '{}'", schema.time_field));
            }
            parse_time(time_text).map_err(time_error)?
        }
    };
    let key = match (columns.key, schema.key_field.as_deref()) {
        (Some(index), Some(field)) => match cell(index, field)? {
            "" => Key::Null,
            text => Key::from_text(text),
        },
        _ => Key::Null,
    };
    let mut values = Vec::with_capacity(columns.values.len());
    for (&index, field) in columns.values.iter().zip(&schema.value_fields) {
        let text = cell(index, field)?;
        values.push(if *field == schema.time_field {
            Some(time_num(time))
        } else {
            csv_number(text, field)?
        });
    }
    let mut scalars = Vec::with_capacity(columns.scalars.len());
    for (&index, field) in columns.scalars.iter().zip(&schema.scalar_fields) {
        let text = cell(index, field)?;
        scalars.push(if *field == schema.time_field {
            Key::Int(time as i64)
        } else {
            csv_scalar(text)
        });
    }
    Ok(Row {
        key,
        key_kind: KeyKind::Text,
        time,
        values,
        scalars,
        original: None,
    })
}

/// The text of cell `index` of `row`, which holds `field`, as written (not trimmed: Spark's
/// CSV reader keeps leading and trailing spaces by default).
pub(super) fn csv_cell<'r>(
    row: &'r ByteRecord,
    index: usize,
    field: &str,
) -> Result<&'r str, String> {
    let bytes = row
        .get(index)
        .ok_or_else(|| format!("row has {} fields, no value for '{field}'", row.len()))?;
    std::str::from_utf8(bytes).map_err(|_| format!("field '{field}' is not valid UTF-8"))
}

/// A CSV cell of a numeric field: null when empty, an integer when it parses as one, else a
/// float. As in Spark's schema inference, an integer with surrounding spaces is not one
/// (Java's `Integer.parseInt`) but is a float (`Double.parseDouble` ignores them).
pub(super) fn csv_number(text: &str, field: &str) -> Result<Option<Num>, String> {
    if text.is_empty() {
        Ok(None)
    } else if let Ok(i) = text.parse::<i64>() {
        Ok(Some(Num::Int(i)))
    } else {
        let f = java_trim(text)
            .parse::<f64>()
            .map_err(|_| format!("field '{field}' must be a number, got '{text}'"))?;
        Ok(Some(Num::Float(f)))
    }
}

/// A CSV cell read as any scalar: null when empty, then an integer, a float, or the text.
pub(super) fn csv_scalar(text: &str) -> Key {
    if text.is_empty() {
        Key::Null
    } else if let Ok(i) = text.parse::<i64>() {
        Key::Int(i)
    } else if let Ok(f) = java_trim(text).parse::<f64>() {
        Key::Float(f)
    } else {
        Key::Str(text.into())
    }
}

/// `text` without the leading and trailing characters up to U+0020 (spaces, tabs, control
/// characters), as Java's `String.trim` and `Double.parseDouble` drop them.
fn java_trim(text: &str) -> &str {
    text.trim_matches(|c: char| c <= ' ')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema() -> Schema {
        Schema {
            time_field: "ts".into(),
            key_field: Some("k".into()),
            value_fields: vec!["v".into(), "ts".into()],
            scalar_fields: vec!["k".into()],
        }
    }

    #[test]
    fn json_errors_name_the_problem() {
        let s = schema();
        let cases = [
            (r#"{"ts": -1}"#, "negative"),
            (r#"{"ts": 1.5}"#, "integer milliseconds"),
            (r#"{"ts": "yesterday"}"#, "RFC 3339"),
            (
                r#"{"ts": 1, "v": "x"}"#,
                "field 'v' must be a number, got a string",
            ),
            (r#"{"ts": 1, "k": {"a": 1}}"#, "must be a scalar"),
            (r#"[1, 2]"#, "a JSON object"),
            (r#"{"ts": 1"#, "EOF"),
            (r#"{"ts": 1} x"#, "trailing"),
            (r#"{"ts": 99999999999999999}"#, "out of range"),
        ];
        for (line, expected) in cases {
            let err = decode_json(&s, line).unwrap_err();
            assert!(err.contains(expected), "{line}: {err}");
        }
    }

    #[test]
    fn a_field_can_be_time_and_value_and_escaped_names_match() {
        let row = decode_json(&schema(), r#"{"\u0074s": 7, "v": null, "k": 3}"#).unwrap();
        assert_eq!(
            row,
            Row {
                key: Key::Int(3),
                key_kind: KeyKind::Native,
                time: 7,
                values: vec![None, Some(Num::Int(7))],
                scalars: vec![Key::Int(3)],
                original: None,
            }
        );
    }

    #[test]
    fn csv_rows_decode_and_missing_columns_are_named() {
        let s = schema();
        let header = ByteRecord::from(vec!["k", "ts", "v"]);
        let columns = CsvColumns::new(&s, &header).unwrap();
        let row = decode_csv(
            &s,
            &columns,
            &ByteRecord::from(vec!["a", "2024-01-01T00:00:00Z", "2.5"]),
        )
        .unwrap();
        assert_eq!(row.time, 1_704_067_200_000);
        assert_eq!(
            row.values,
            vec![Some(Num::Float(2.5)), Some(Num::Int(1_704_067_200_000))]
        );
        let err = decode_csv(&s, &columns, &ByteRecord::from(vec!["a", "1", "abc"])).unwrap_err();
        assert!(err.contains("'v' must be a number"), "{err}");
        let err = CsvColumns::new(&s, &ByteRecord::from(vec!["k", "time"])).unwrap_err();
        assert!(err.contains("no column 'ts' (--time-field)"), "{err}");
    }
}
