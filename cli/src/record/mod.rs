//! The command line's record model: rows with a key, an event time and the numeric fields the
//! aggregates read, decoded from JSON lines or CSV by field name.
//!
//! The typed Rust API decodes records into the user's own structs; `tideflow run` does not
//! know the record's shape, so it decodes each record into a [`Row`] holding only what the
//! query needs: the key field, the time field and the fields named by `--agg`. JSON is decoded
//! with a serde seed that walks the object once and skips every other field without building
//! it. The rows of a static table (`--join-static`) are [`TableRow`]s: the columns named by
//! `--agg` as `table.F`, appended to each joined record's row.

mod aggregate;
mod decode;
mod flat_json;
#[cfg(test)]
mod fuzz;
mod group_key;
mod non_finite;
mod original;
mod table;
mod value;

pub use aggregate::{AggKind, AggSpec, AggValue, Aggregates, RowAggregator};
pub use decode::{
    decode_csv, decode_json, decode_json_beside, parse_time, Beside, CsvColumns, Schema,
};
pub use group_key::KeyKind;
pub use original::CsvOriginal;
pub use table::{
    decode_table_csv, decode_table_json, join_key, TableColumns, TableRow, TableSchema,
};
pub(crate) use value::write_json_str;
pub use value::{Key, Num};

use serde::{Deserialize, Serialize};

/// One input record, reduced to what the query reads.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Row {
    /// The value of the key field in its canonical form (`Key::Null` without one): see
    /// [`KeyKind`] for the rule.
    pub key: Key,
    /// How the record wrote its key.
    pub key_kind: KeyKind,
    /// Event time in ms since the epoch.
    pub time: u64,
    /// The aggregated fields, in [`Schema::value_fields`] order; `None` for null or missing.
    pub values: Vec<Option<Num>>,
    /// The fields read as any scalar, in [`Schema::scalar_fields`] order; `Key::Null` for null
    /// or missing.
    pub scalars: Vec<Key>,
    /// The whole record as read, as JSON text (a JSON line as it was; a CSV row as an object
    /// of its cells by header name, see [`CsvOriginal`]), kept only when the job writes late
    /// records (`--late-output`): `None` otherwise, so that the rows of other jobs allocate
    /// nothing for it.
    pub original: Option<Box<str>>,
}
