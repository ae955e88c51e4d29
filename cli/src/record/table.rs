//! The rows of a static table for `tideflow run --join-static`: the join key and the columns
//! the query reads (`--agg sum:table.F` reads the table's column `F`), decoded from JSON lines
//! or CSV by column name.
//!
//! Keys are matched by their canonical text, the text the stream groups by (see
//! `group_key.rs`): `7`, `7.0` and `"7"` are the same key, and `true` matches `"true"`. A null
//! or missing key matches nothing (SQL's `NULL = NULL` is not true).

use std::fmt;

use csv::ByteRecord;
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

use super::decode::{
    csv_cell, csv_number, csv_scalar, find_column, header_names, json_error, Scalar,
};
use super::non_finite::decode_allowing_non_finite;
use super::{Key, Num, Row};

/// Which columns of a static table the query reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableSchema {
    /// The column matched against the stream's key field (`--join-key`).
    pub key_field: String,
    /// The numeric columns the aggregates read, without repeats.
    pub value_fields: Vec<String>,
    /// The columns the aggregates read as any scalar, without repeats.
    pub scalar_fields: Vec<String>,
}

/// The columns of one table row that the query reads.
///
/// Numbers are held as [`Key::Int`] and [`Key::Float`] (null as [`Key::Null`]), so that rows
/// are totally ordered, as a differential arrangement needs.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TableRow {
    /// The numeric columns, in [`TableSchema::value_fields`] order.
    pub values: Vec<Key>,
    /// The scalar columns, in [`TableSchema::scalar_fields`] order.
    pub scalars: Vec<Key>,
}

impl TableRow {
    /// Appends this row's columns to a stream `row`, after the stream's own: the query's
    /// `table.F` columns come after its stream columns.
    pub fn append_to(self, row: &mut Row) {
        row.values
            .extend(self.values.into_iter().map(|value| match value {
                Key::Int(i) => Some(Num::Int(i)),
                Key::Float(f) => Some(Num::Float(f)),
                _ => None,
            }));
        row.scalars.extend(self.scalars);
    }

    /// Appends nulls for every table column to a stream `row` that matched no table row.
    pub fn append_nulls(schema: &TableSchema, row: &mut Row) {
        row.values
            .extend(std::iter::repeat_n(None, schema.value_fields.len()));
        row.scalars
            .extend(std::iter::repeat_n(Key::Null, schema.scalar_fields.len()));
    }
}

/// The key a join matches `key` on: its canonical text ([`Key::text`] of its canonical form,
/// the one the stream groups by), or null.
///
/// # Examples
/// ```
/// use tideflow_cli::record::{join_key, Key};
/// assert_eq!(join_key(&Key::Int(7)), join_key(&Key::Str("7".into())));
/// assert_eq!(join_key(&Key::Float(7.0)), Key::Str("7".into()));
/// assert_eq!(join_key(&Key::Bool(true)), join_key(&Key::Str("true".into())));
/// assert_eq!(join_key(&Key::Null), Key::Null);
/// ```
pub fn join_key(key: &Key) -> Key {
    match key {
        Key::Null => Key::Null,
        other => Key::Str(other.canonical().text().into()),
    }
}

fn num_key(num: Option<Num>) -> Key {
    match num {
        None => Key::Null,
        Some(Num::Int(i)) => Key::Int(i),
        Some(Num::Float(f)) => Key::Float(f),
    }
}

/// Decodes one JSON object into its join key ([`join_key`]) and its [`TableRow`]. A row
/// without the join key field is an error; a null key is a row that matches nothing.
///
/// # Examples
/// ```
/// use tideflow_cli::record::{decode_table_json, Key, TableSchema};
/// let schema = TableSchema {
///     key_field: "id".into(),
///     value_fields: vec!["limit".into()],
///     scalar_fields: vec!["segment".into()],
/// };
/// let (key, row) = decode_table_json(&schema, r#"{"id": 7, "segment": "gold", "limit": 500}"#).unwrap();
/// assert_eq!((key, row.values, row.scalars), (Key::Str("7".into()), vec![Key::Int(500)], vec![Key::Str("gold".into())]));
/// assert!(decode_table_json(&schema, r#"{"segment": "gold"}"#).unwrap_err().contains("missing join key field 'id'"));
/// ```
pub fn decode_table_json(schema: &TableSchema, line: &str) -> Result<(Key, TableRow), String> {
    decode_allowing_non_finite(line, |line| {
        let mut deserializer = serde_json::Deserializer::from_str(line);
        let row = TableRowSeed { schema }
            .deserialize(&mut deserializer)
            .map_err(json_error)?;
        deserializer.end().map_err(json_error)?;
        Ok(row)
    })
}

struct TableRowSeed<'a> {
    schema: &'a TableSchema,
}

impl<'de> DeserializeSeed<'de> for TableRowSeed<'_> {
    type Value = (Key, TableRow);
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for TableRowSeed<'_> {
    type Value = (Key, TableRow);

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let schema = self.schema;
        let mut key = None;
        let mut values = vec![Key::Null; schema.value_fields.len()];
        let mut scalars = vec![Key::Null; schema.scalar_fields.len()];
        while let Some(name) = map.next_key::<Scalar<'de>>()? {
            let Scalar::Str(name) = name else { continue };
            let is_key = *name == *schema.key_field;
            let value_slot = schema.value_fields.iter().position(|f| *f == *name);
            let scalar_slot = schema.scalar_fields.iter().position(|f| *f == *name);
            if !is_key && value_slot.is_none() && scalar_slot.is_none() {
                map.next_value::<IgnoredAny>()?;
                continue;
            }
            let value: Scalar<'de> = map.next_value()?;
            if is_key {
                let read = value.to_key(&name, "join key field");
                key = Some(read.map_err(de::Error::custom)?);
            }
            if let Some(slot) = value_slot {
                values[slot] = num_key(value.to_num(&name).map_err(de::Error::custom)?);
            }
            if let Some(slot) = scalar_slot {
                scalars[slot] = value.to_key(&name, "field").map_err(de::Error::custom)?;
            }
        }
        let key = key.ok_or_else(|| {
            de::Error::custom(format!("missing join key field '{}'", schema.key_field))
        })?;
        Ok((join_key(&key), TableRow { values, scalars }))
    }
}

/// Column positions of a table schema's fields in one CSV file.
#[derive(Clone, Debug)]
pub struct TableColumns {
    key: usize,
    values: Vec<usize>,
    scalars: Vec<usize>,
}

impl TableColumns {
    /// Finds each field of `schema` in `header`; a missing column is an error naming it.
    ///
    /// # Examples
    /// ```
    /// use csv::ByteRecord;
    /// use tideflow_cli::record::{decode_table_csv, Key, TableColumns, TableSchema};
    /// let schema = TableSchema {
    ///     key_field: "id".into(),
    ///     value_fields: vec!["limit".into()],
    ///     scalar_fields: vec![],
    /// };
    /// let columns = TableColumns::new(&schema, &ByteRecord::from(vec!["id", "limit"])).unwrap();
    /// let (key, row) = decode_table_csv(&schema, &columns, &ByteRecord::from(vec!["7", "2.5"])).unwrap();
    /// assert_eq!((key, row.values), (Key::Str("7".into()), vec![Key::Float(2.5)]));
    /// let err = TableColumns::new(&schema, &ByteRecord::from(vec!["limit"])).unwrap_err();
    /// assert!(err.contains("no column 'id' (--join-key)"), "{err}");
    /// ```
    pub fn new(schema: &TableSchema, header: &ByteRecord) -> Result<Self, String> {
        let names = header_names(header);
        let find_all = |fields: &[String]| -> Result<Vec<usize>, String> {
            fields
                .iter()
                .map(|field| find_column(&names, field, &format!("--agg table.{field}")))
                .collect()
        };
        Ok(TableColumns {
            key: find_column(&names, &schema.key_field, "--join-key")?,
            values: find_all(&schema.value_fields)?,
            scalars: find_all(&schema.scalar_fields)?,
        })
    }
}

/// Decodes one CSV row into its join key ([`join_key`]; an empty cell is null) and its
/// [`TableRow`]: empty cells are null, numbers are integers when they parse as one, else
/// floats.
pub fn decode_table_csv(
    schema: &TableSchema,
    columns: &TableColumns,
    row: &ByteRecord,
) -> Result<(Key, TableRow), String> {
    let key = match csv_cell(row, columns.key, &schema.key_field)? {
        "" => Key::Null,
        text => Key::Str(text.into()),
    };
    let mut values = Vec::with_capacity(columns.values.len());
    for (&index, field) in columns.values.iter().zip(&schema.value_fields) {
        values.push(num_key(csv_number(csv_cell(row, index, field)?, field)?));
    }
    let mut scalars = Vec::with_capacity(columns.scalars.len());
    for (&index, field) in columns.scalars.iter().zip(&schema.scalar_fields) {
        scalars.push(csv_scalar(csv_cell(row, index, field)?));
    }
    Ok((key, TableRow { values, scalars }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema() -> TableSchema {
        TableSchema {
            key_field: "id".into(),
            value_fields: vec!["limit".into()],
            scalar_fields: vec!["segment".into()],
        }
    }

    #[test]
    fn json_table_rows_decode_and_errors_name_the_field() {
        let s = schema();
        let (key, row) = decode_table_json(&s, r#"{"id": null, "limit": 1.5, "x": [1]}"#).unwrap();
        assert_eq!(key, Key::Null);
        assert_eq!(row.values, vec![Key::Float(1.5)]);
        assert_eq!(row.scalars, vec![Key::Null]);
        let cases = [
            (r#"{"limit": 1}"#, "missing join key field 'id'"),
            (
                r#"{"id": {"a": 1}}"#,
                "join key field 'id' must be a scalar",
            ),
            (
                r#"{"id": 1, "limit": "high"}"#,
                "field 'limit' must be a number",
            ),
            (r#"{"id": 1"#, "EOF"),
        ];
        for (line, expected) in cases {
            let err = decode_table_json(&s, line).unwrap_err();
            assert!(err.contains(expected), "{line}: {err}");
        }
    }

    #[test]
    fn table_columns_follow_the_stream_columns() {
        let s = schema();
        let mut row = Row {
            key: Key::Str("a".into()),
            key_kind: crate::record::KeyKind::Text,
            time: 1,
            values: vec![Some(Num::Int(3))],
            scalars: vec![],
            original: None,
        };
        let (_, table_row) =
            decode_table_json(&s, r#"{"id": "a", "limit": 9, "segment": "gold"}"#).unwrap();
        table_row.append_to(&mut row);
        assert_eq!(row.values, vec![Some(Num::Int(3)), Some(Num::Int(9))]);
        assert_eq!(row.scalars, vec![Key::Str("gold".into())]);
        TableRow::append_nulls(&s, &mut row);
        assert_eq!(row.values.len(), 3);
        assert_eq!(row.scalars, vec![Key::Str("gold".into()), Key::Null]);
    }

    #[test]
    fn csv_table_rows_decode() {
        let s = schema();
        let header = ByteRecord::from(vec!["segment", "id", "limit"]);
        let columns = TableColumns::new(&s, &header).unwrap();
        let (key, row) =
            decode_table_csv(&s, &columns, &ByteRecord::from(vec!["gold", "7", ""])).unwrap();
        assert_eq!(key, Key::Str("7".into()));
        // Cells are not trimmed (as in Spark); a spaced number is a float (as Spark infers).
        let (key, row_7) =
            decode_table_csv(&s, &columns, &ByteRecord::from(vec!["gold", " 7 ", " 2 "])).unwrap();
        assert_eq!(key, Key::Str(" 7 ".into()));
        assert_eq!(row_7.values, vec![Key::Float(2.0)]);
        assert_eq!(row.values, vec![Key::Null]);
        assert_eq!(row.scalars, vec![Key::Str("gold".into())]);
        let (key, _) =
            decode_table_csv(&s, &columns, &ByteRecord::from(vec!["gold", "", "1"])).unwrap();
        assert_eq!(key, Key::Null);
        let err =
            decode_table_csv(&s, &columns, &ByteRecord::from(vec!["gold", "7", "x"])).unwrap_err();
        assert!(err.contains("'limit' must be a number"), "{err}");
        let err = TableColumns::new(&s, &ByteRecord::from(vec!["id", "limit"])).unwrap_err();
        assert!(
            err.contains("no column 'segment' (--agg table.segment)"),
            "{err}"
        );
    }
}
