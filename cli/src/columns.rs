//! How `tideflow run` writes its rows as typed Arrow columns, for `--output-format parquet`.
//!
//! The schema follows the JSON lines output's columns, in the same order: `batch` (complete
//! mode, int64), `key`, `window_start` and `window_end` (timestamp, ms, UTC; windowed jobs),
//! one column per aggregate, then `final` (update and complete modes) and `retract` (update
//! mode, windowed). The aggregates' types: `count` and `count_distinct` int64, never null;
//! `avg` float64; `sum`, `min` and `max` float64 and `first`, `last` and the key string,
//! unless `--column-type COLUMN=TYPE` declares another (int64, float64, string or bool), as a
//! Spark job declares its schema. Every column but the counts, the window and the mode's flags
//! is nullable (SQL: an aggregate over nulls only is null; a job without `--key-field` has the
//! key null). A value its column's type cannot hold (a float in an int64 column) stops the job
//! with one line naming the column and the flag.

use std::str::FromStr;
use std::sync::Arc;

use tideflow::sink::parquet::arrow_array::builder::{
    BooleanBuilder, Float64Builder, Int64Builder, StringBuilder, TimestampMicrosecondBuilder,
    TimestampMillisecondBuilder,
};
use tideflow::sink::parquet::arrow_array::{ArrayRef, RecordBatch};
use tideflow::sink::parquet::arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use tideflow::sink::ArrowEncoder;
use tideflow::Error;

use crate::output::OutputRow;
use crate::record::{AggKind, AggSpec, AggValue, Key};

/// A column type `--column-type` can declare.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ColumnType {
    Int64,
    Float64,
    String,
    Bool,
}

impl ColumnType {
    pub(crate) fn name(self) -> &'static str {
        match self {
            ColumnType::Int64 => "int64",
            ColumnType::Float64 => "float64",
            ColumnType::String => "string",
            ColumnType::Bool => "bool",
        }
    }

    fn arrow(self) -> DataType {
        match self {
            ColumnType::Int64 => DataType::Int64,
            ColumnType::Float64 => DataType::Float64,
            ColumnType::String => DataType::Utf8,
            ColumnType::Bool => DataType::Boolean,
        }
    }
}

/// One `--column-type COLUMN=TYPE` flag.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ColumnTypeArg {
    pub(crate) column: String,
    pub(crate) kind: ColumnType,
}

impl FromStr for ColumnTypeArg {
    type Err = Error;

    /// Parses `COLUMN=TYPE`.
    fn from_str(text: &str) -> Result<Self, Error> {
        let kinds = [
            ColumnType::Int64,
            ColumnType::Float64,
            ColumnType::String,
            ColumnType::Bool,
        ];
        text.split_once('=')
            .and_then(|(column, name)| {
                let kind = kinds.into_iter().find(|kind| kind.name() == name)?;
                Some(ColumnTypeArg {
                    column: column.to_string(),
                    kind,
                })
            })
            .ok_or_else(|| {
                Error::Config(format!(
                    "invalid column type '{text}': expected COLUMN=TYPE, TYPE one of int64, float64, string or bool"
                ))
            })
    }
}

/// The declared or default type of the `key` column and of each aggregate's column, checked
/// against the job: `--column-type` names the key or a `sum`, `min`, `max`, `first` or
/// `last` column, once.
pub(crate) fn column_types(
    aggs: &[AggSpec],
    declared: &[ColumnTypeArg],
) -> Result<(ColumnType, Vec<ColumnType>), Error> {
    let typed = |spec: &AggSpec| {
        matches!(
            spec.kind,
            AggKind::Sum | AggKind::Min | AggKind::Max | AggKind::First | AggKind::Last
        )
    };
    for (i, arg) in declared.iter().enumerate() {
        if declared[..i].iter().any(|other| other.column == arg.column) {
            return Err(Error::Config(format!(
                "--column-type: column {} is declared twice",
                arg.column
            )));
        }
        let known = arg.column == "key"
            || aggs
                .iter()
                .any(|spec| typed(spec) && spec.column() == arg.column);
        if !known {
            let columns: Vec<String> = std::iter::once("key".to_string())
                .chain(aggs.iter().filter(|s| typed(s)).map(AggSpec::column))
                .collect();
            return Err(Error::Config(format!(
                "--column-type: {} is not a column whose type can be declared; this job's are: {}",
                arg.column,
                columns.join(", ")
            )));
        }
    }
    let declared_type = |column: &str| {
        declared
            .iter()
            .find(|arg| arg.column == column)
            .map(|arg| arg.kind)
    };
    let key = declared_type("key").unwrap_or(ColumnType::String);
    let values = aggs
        .iter()
        .map(|spec| match spec.kind {
            AggKind::Count | AggKind::CountDistinct => ColumnType::Int64,
            AggKind::Avg => ColumnType::Float64,
            AggKind::Sum | AggKind::Min | AggKind::Max => {
                declared_type(&spec.column()).unwrap_or(ColumnType::Float64)
            }
            AggKind::First | AggKind::Last => {
                declared_type(&spec.column()).unwrap_or(ColumnType::String)
            }
        })
        .collect();
    Ok((key, values))
}

/// A column being built.
enum Column {
    Int64(Int64Builder),
    Float64(Float64Builder),
    String(StringBuilder),
    Bool(BooleanBuilder),
    Millis(TimestampMillisecondBuilder),
    Micros(TimestampMicrosecondBuilder),
}

impl Column {
    fn new(kind: ColumnType) -> Self {
        match kind {
            ColumnType::Int64 => Column::Int64(Int64Builder::new()),
            ColumnType::Float64 => Column::Float64(Float64Builder::new()),
            ColumnType::String => Column::String(StringBuilder::new()),
            ColumnType::Bool => Column::Bool(BooleanBuilder::new()),
        }
    }

    /// A timestamp column in `unit` (milliseconds or microseconds), UTC.
    fn timestamp(unit: TimeUnit) -> Self {
        match unit {
            TimeUnit::Microsecond => {
                Column::Micros(TimestampMicrosecondBuilder::new().with_timezone("UTC"))
            }
            _ => Column::Millis(TimestampMillisecondBuilder::new().with_timezone("UTC")),
        }
    }

    fn finish(&mut self) -> ArrayRef {
        match self {
            Column::Int64(builder) => Arc::new(builder.finish()),
            Column::Float64(builder) => Arc::new(builder.finish()),
            Column::String(builder) => Arc::new(builder.finish()),
            Column::Bool(builder) => Arc::new(builder.finish()),
            Column::Millis(builder) => Arc::new(builder.finish()),
            Column::Micros(builder) => Arc::new(builder.finish()),
        }
    }

    /// Appends to an int64 column (a batch number).
    fn append_int(&mut self, value: u64) {
        match self {
            Column::Int64(builder) => {
                builder.append_value(i64::try_from(value).unwrap_or(i64::MAX))
            }
            _ => unreachable!("a batch column is int64"),
        }
    }

    /// Appends `ms` milliseconds since the epoch to a timestamp column (a window bound).
    fn append_time(&mut self, ms: u64) {
        let ms = i64::try_from(ms).unwrap_or(i64::MAX);
        match self {
            Column::Millis(builder) => builder.append_value(ms),
            Column::Micros(builder) => builder.append_value(ms.saturating_mul(1000)),
            _ => unreachable!("a window column is a timestamp"),
        }
    }

    /// Appends to a bool column (`final`, `retract`).
    fn append_bool(&mut self, value: bool) {
        match self {
            Column::Bool(builder) => builder.append_value(value),
            _ => unreachable!("a flag column is bool"),
        }
    }

    fn append_null(&mut self) {
        match self {
            Column::Int64(builder) => builder.append_null(),
            Column::Float64(builder) => builder.append_null(),
            Column::String(builder) => builder.append_null(),
            Column::Bool(builder) => builder.append_null(),
            Column::Millis(builder) => builder.append_null(),
            Column::Micros(builder) => builder.append_null(),
        }
    }

    /// Appends a scalar (a key, or a `first`/`last` value) whose text is `text`; `Err` with
    /// the text if the column cannot hold it.
    fn append_scalar(&mut self, value: &Key, text: impl FnOnce() -> String) -> Result<(), String> {
        match (self, value) {
            (column, Key::Null) => column.append_null(),
            (Column::String(builder), _) => builder.append_value(text()),
            (Column::Int64(builder), Key::Int(i)) => builder.append_value(*i),
            (Column::Float64(builder), Key::Int(i)) => builder.append_value(*i as f64),
            (Column::Float64(builder), Key::Float(f)) => builder.append_value(*f),
            (Column::Bool(builder), Key::Bool(b)) => builder.append_value(*b),
            _ => return Err(text()),
        }
        Ok(())
    }

    /// Appends an aggregate's value; `Err` with its text if the column cannot hold it.
    fn append_value(&mut self, value: &AggValue) -> Result<(), String> {
        match (self, value) {
            (column, AggValue::Null) => column.append_null(),
            (column, AggValue::Scalar(key)) => return column.append_scalar(key, || key.text()),
            (Column::Int64(builder), AggValue::Int(i)) => {
                builder.append_value(i64::try_from(*i).map_err(|_| i.to_string())?)
            }
            (Column::Float64(builder), AggValue::Int(i)) => builder.append_value(*i as f64),
            (Column::Float64(builder), AggValue::Float(f)) => builder.append_value(*f),
            (Column::String(builder), value) => builder.append_value(value.csv_text()),
            (_, value) => return Err(value.csv_text()),
        }
        Ok(())
    }
}

/// Which of the mode's columns a job's rows have, besides the key and the aggregates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RowShape {
    /// `batch` (complete mode).
    pub(crate) batch: bool,
    /// `window_start` and `window_end` (windowed jobs).
    pub(crate) window: bool,
    /// `final` (windowed update and complete modes).
    pub(crate) is_final: bool,
    /// `retract` (windowed update mode).
    pub(crate) retract: bool,
}

impl RowShape {
    /// The columns of a job in `mode` (`append`, `update`, `complete`), windowed or not.
    pub(crate) fn of(mode: &str, windowed: bool) -> Self {
        RowShape {
            batch: mode == "complete",
            window: windowed,
            is_final: windowed && mode != "append",
            retract: windowed && mode == "update",
        }
    }
}

/// Encodes `tideflow run`'s rows as Arrow columns (module docs).
pub struct ColumnEncoder {
    names: Vec<String>,
    key_type: ColumnType,
    types: Vec<ColumnType>,
    shape: RowShape,
    schema: SchemaRef,
    batch: Column,
    key: Column,
    window: (Column, Column),
    values: Vec<Column>,
    is_final: Column,
    retract: Column,
}

impl ColumnEncoder {
    /// Encodes rows of `shape` whose aggregate columns are `names`, of `types`, with a key of
    /// type `key` ([`column_types`]), and window bounds as timestamps in `unit` (UTC).
    pub(crate) fn new(
        names: Vec<String>,
        key: ColumnType,
        types: Vec<ColumnType>,
        shape: RowShape,
        unit: TimeUnit,
    ) -> Self {
        let mut fields = Vec::new();
        let timestamp = DataType::Timestamp(unit, Some("UTC".into()));
        if shape.batch {
            fields.push(Field::new("batch", DataType::Int64, false));
        }
        fields.push(Field::new("key", key.arrow(), true));
        if shape.window {
            fields.push(Field::new("window_start", timestamp.clone(), false));
            fields.push(Field::new("window_end", timestamp, false));
        }
        for (name, kind) in names.iter().zip(&types) {
            fields.push(Field::new(name, kind.arrow(), !is_count(name)));
        }
        if shape.is_final {
            fields.push(Field::new("final", DataType::Boolean, false));
        }
        if shape.retract {
            fields.push(Field::new("retract", DataType::Boolean, false));
        }
        ColumnEncoder {
            schema: Arc::new(Schema::new(fields)),
            batch: Column::new(ColumnType::Int64),
            key: Column::new(key),
            window: (Column::timestamp(unit), Column::timestamp(unit)),
            values: types.iter().map(|kind| Column::new(*kind)).collect(),
            is_final: Column::new(ColumnType::Bool),
            retract: Column::new(ColumnType::Bool),
            names,
            key_type: key,
            types,
            shape,
        }
    }
}

/// Whether the column `name` is a count (`count`, `count_distinct_F`): never null.
fn is_count(name: &str) -> bool {
    name == "count" || name.starts_with("count_distinct_")
}

/// The error of a value its column cannot hold.
fn does_not_fit(column: &str, kind: ColumnType, value: &str) -> Error {
    Error::Config(format!(
        "--output-format parquet: column {column} is {} but a row's value is {value}; declare another type with --column-type {column}=TYPE",
        kind.name()
    ))
}

impl<R: OutputRow> ArrowEncoder<R> for ColumnEncoder {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn append(&mut self, row: &R) -> Result<(), Error> {
        let (view, extra) = row.parts();
        let shape = RowShape {
            batch: extra.batch.is_some(),
            window: view.window.is_some(),
            is_final: extra.is_final.is_some(),
            retract: extra.retract.is_some(),
        };
        if shape != self.shape {
            return Err(Error::Internal(format!(
                "a row of shape {shape:?} reached a Parquet encoder of rows of shape {:?}",
                self.shape
            )));
        }
        if let Some(batch) = extra.batch {
            self.batch.append_int(batch);
        }
        self.key
            .append_scalar(view.key, || view.key.csv_text_as(view.key_kind))
            .map_err(|value| does_not_fit("key", self.key_type, &value))?;
        if let Some((from, to)) = view.window {
            self.window.0.append_time(from);
            self.window.1.append_time(to);
        }
        for (i, (column, value)) in self.values.iter_mut().zip(view.values).enumerate() {
            column
                .append_value(value)
                .map_err(|value| does_not_fit(&self.names[i], self.types[i], &value))?;
        }
        if let Some(is_final) = extra.is_final {
            self.is_final.append_bool(is_final);
        }
        if let Some(retract) = extra.retract {
            self.retract.append_bool(retract);
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<RecordBatch, Error> {
        let shape = self.shape;
        let mut columns: Vec<ArrayRef> = Vec::new();
        if shape.batch {
            columns.push(self.batch.finish());
        }
        columns.push(self.key.finish());
        if shape.window {
            columns.push(self.window.0.finish());
            columns.push(self.window.1.finish());
        }
        columns.extend(self.values.iter_mut().map(Column::finish));
        if shape.is_final {
            columns.push(self.is_final.finish());
        }
        if shape.retract {
            columns.push(self.retract.finish());
        }
        RecordBatch::try_new(self.schema.clone(), columns)
            .map_err(|e| Error::Internal(format!("cannot make a batch of Parquet rows: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{Aggregates, KeyKind};
    use tideflow::WindowResult;

    type Result_ = WindowResult<Key, Aggregates>;

    #[test]
    fn rows_become_typed_columns_and_a_value_that_does_not_fit_is_named() {
        let specs: Vec<AggSpec> = ["count", "sum:x", "first:y"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        let declared = vec!["sum_x=int64".parse::<ColumnTypeArg>().unwrap()];
        let (key, types) = column_types(&specs, &declared).unwrap();
        assert_eq!(
            types,
            [ColumnType::Int64, ColumnType::Int64, ColumnType::String]
        );
        let names = specs.iter().map(AggSpec::column).collect();
        let shape = RowShape::of("append", true);
        let mut encoder = ColumnEncoder::new(names, key, types, shape, TimeUnit::Millisecond);
        let row = |values: Vec<AggValue>| WindowResult {
            key: Key::Int(7),
            start: 0,
            end: 10,
            value: Aggregates {
                key_kind: KeyKind::Float,
                values,
            },
        };
        let first = row(vec![
            AggValue::Int(2),
            AggValue::Int(5),
            AggValue::Scalar(Key::Str("a".into())),
        ]);
        encoder.append(&first).unwrap();
        let batch = ArrowEncoder::<Result_>::finish(&mut encoder).unwrap();
        assert_eq!(batch.num_rows(), 1);
        let fields: Vec<String> = batch
            .schema()
            .fields()
            .iter()
            .map(|f| format!("{} {} {}", f.name(), f.data_type(), f.is_nullable()))
            .collect();
        assert_eq!(
            fields,
            [
                "key Utf8 true",
                "window_start Timestamp(ms, \"UTC\") false",
                "window_end Timestamp(ms, \"UTC\") false",
                "count Int64 false",
                "sum_x Int64 true",
                "first_y Utf8 true"
            ]
        );
        let message = encoder
            .append(&row(vec![
                AggValue::Int(1),
                AggValue::Float(1.5),
                AggValue::Null,
            ]))
            .unwrap_err()
            .to_string();
        assert_eq!(message, "--output-format parquet: column sum_x is int64 but a row's value is 1.5; declare another type with --column-type sum_x=TYPE");

        let unknown = column_types(&specs, &["avg_x=int64".parse().unwrap()]).unwrap_err();
        assert_eq!(
            unknown.to_string(),
            "--column-type: avg_x is not a column whose type can be declared; this job's are: key, sum_x, first_y"
        );
    }
}
