//! Parquet files as a [`FileFormat`] of the file source: a Parquet file or a directory of them
//! (such as a [`ParquetSink`](crate::sink::ParquetSink)'s output), each file a partition with
//! its own watermark, replayable by file and row.
//!
//! A record is one row, handed to a decoder as a [`ParquetRow`]: its columns by name, as
//! [`ParquetValue`]s, or the whole row as a JSON object. A record's [`Position`] is its row
//! number in the file (`offset`, from 0) and that number plus one (`line`, which errors name),
//! so a job resumed from a snapshot starts each file at the row after the last one it read
//! (the reader skips the row groups before it without decoding them).
//!
//! In a directory, subdirectories whose name starts with `_` (`_tideflow_log`, Spark's
//! `_spark_metadata`, Delta's `_delta_log`) are skipped as the file listing skips hidden
//! entries; the files renamed into a Parquet sink's directory are whole files.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Date32Type, Date64Type, Float32Type, Float64Type, Int16Type, Int32Type, Int64Type, Int8Type,
    TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType,
    TimestampSecondType, UInt16Type, UInt32Type, UInt64Type, UInt8Type,
};
use arrow_array::{Array, RecordBatch};
use arrow_schema::{DataType, TimeUnit};
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};
use serde::de::DeserializeOwned;

use super::file::{FileFormat, RecordReader};
use super::{BadRecord, Position, ReadError};
use crate::error::Error;

/// Rows decoded per batch read from a file.
const BATCH_ROWS: usize = 1024;

type RowDecoder<T> = dyn Fn(&ParquetRow<'_>) -> Result<T, String> + Send + Sync;

/// The Parquet format of a [`FileSource`](super::FileSource), decoding each row with a
/// function or with serde.
///
/// # Examples
/// ```no_run
/// use std::time::Duration;
/// use tideflow::{sink::ConsoleSink, source::{FileSource, Parquet}, Config};
///
/// #[derive(serde::Deserialize, serde::Serialize, Clone)]
/// struct Click { user: String, ts: u64 }
///
/// tideflow::execute(Config::default(), |flow| {
///     flow.source(FileSource::new("clicks/", Parquet::<Click>::serde()))
///         .with_event_time(|c| c.ts)
///         .with_watermark(Duration::from_secs(5))
///         .sink(ConsoleSink::json());
///     Ok(())
/// })?;
/// # Ok::<(), tideflow::Error>(())
/// ```
pub struct Parquet<T> {
    decode: Arc<RowDecoder<T>>,
}

impl<T> Clone for Parquet<T> {
    fn clone(&self) -> Self {
        Parquet {
            decode: Arc::clone(&self.decode),
        }
    }
}

impl<T: DeserializeOwned> Parquet<T> {
    /// Decodes each row, as a JSON object of its columns ([`ParquetRow::write_json`]), into
    /// `T` with serde.
    pub fn serde() -> Self {
        Self::with_decoder(|row| {
            let mut json = Vec::new();
            row.write_json(|_| true, &mut json)?;
            serde_json::from_slice(&json).map_err(|e| e.to_string())
        })
    }
}

impl<T> Parquet<T> {
    /// Decodes each row with `decode`; an `Err` is a bad record, reported with the file and
    /// the row's number (from 1).
    pub fn with_decoder(
        decode: impl Fn(&ParquetRow<'_>) -> Result<T, String> + Send + Sync + 'static,
    ) -> Self {
        Parquet {
            decode: Arc::new(decode),
        }
    }
}

impl<T: 'static> FileFormat for Parquet<T> {
    type Item = T;
    type Reader = ParquetReader<T>;

    fn open(
        &self,
        path: &Path,
        file: File,
        _max_record_bytes: usize,
    ) -> Result<Self::Reader, Error> {
        let mut reader = ParquetReader {
            path: path.to_path_buf(),
            file,
            batches: None,
            batch: None,
            in_batch: 0,
            row: 0,
            decode: Arc::clone(&self.decode),
        };
        reader.start_at(0)?;
        Ok(reader)
    }
}

/// Reads the rows of one Parquet file.
pub struct ParquetReader<T> {
    path: PathBuf,
    file: File,
    batches: Option<ParquetRecordBatchReader>,
    batch: Option<RecordBatch>,
    /// The next row's index in `batch`.
    in_batch: usize,
    /// The next row's number in the file, from 0.
    row: u64,
    decode: Arc<RowDecoder<T>>,
}

impl<T> ParquetReader<T> {
    /// Reads from row `row` (from 0) on.
    fn start_at(&mut self, row: u64) -> Result<(), Error> {
        let failed = |e: &dyn std::fmt::Display| {
            Error::io(
                format!("cannot read Parquet file {}", self.path.display()),
                std::io::Error::other(e.to_string()),
            )
        };
        let file = self.file.try_clone().map_err(|e| failed(&e))?;
        let batches = ParquetRecordBatchReaderBuilder::try_new(file)
            .map_err(|e| failed(&e))?
            .with_batch_size(BATCH_ROWS)
            .with_offset(usize::try_from(row).unwrap_or(usize::MAX))
            .build()
            .map_err(|e| failed(&e))?;
        self.batches = Some(batches);
        self.batch = None;
        self.in_batch = 0;
        self.row = row;
        Ok(())
    }
}

impl<T: 'static> RecordReader for ParquetReader<T> {
    type Item = T;

    fn next_record(&mut self) -> Result<Option<T>, ReadError> {
        loop {
            if let Some(batch) = self.batch.as_ref().filter(|b| self.in_batch < b.num_rows()) {
                let row = ParquetRow {
                    batch,
                    row: self.in_batch,
                };
                self.in_batch += 1;
                self.row += 1;
                return match (self.decode)(&row) {
                    Ok(record) => Ok(Some(record)),
                    Err(reason) => {
                        let mut raw = Vec::new();
                        // A column that cannot be written as JSON is left out of the raw row.
                        let _ = row.write_json(|_| true, &mut raw);
                        Err(ReadError::Bad(BadRecord {
                            line: self.row,
                            reason,
                            length: raw.len() as u64,
                            raw,
                        }))
                    }
                };
            }
            let Some(batches) = self.batches.as_mut() else {
                return Ok(None);
            };
            match batches.next() {
                None => {
                    self.batches = None;
                    self.batch = None;
                    return Ok(None);
                }
                Some(Ok(batch)) => {
                    self.batch = Some(batch);
                    self.in_batch = 0;
                }
                Some(Err(e)) => {
                    return Err(ReadError::Fatal(Error::io(
                        format!("cannot read Parquet file {}", self.path.display()),
                        std::io::Error::other(e.to_string()),
                    )))
                }
            }
        }
    }

    fn position(&self) -> Position {
        Position {
            offset: self.row,
            line: self.row + 1,
        }
    }

    fn seek(&mut self, position: Position) -> Result<(), Error> {
        self.start_at(position.offset)
    }
}

/// One value of a Parquet row, as the decoder gets it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ParquetValue<'a> {
    /// Null.
    Null,
    /// A boolean.
    Bool(bool),
    /// An integer (any integer column that fits `i64`).
    Int(i64),
    /// An unsigned integer above `i64::MAX`.
    UInt(u64),
    /// A floating-point number (float32 or float64).
    Float(f64),
    /// A string.
    Str(&'a str),
    /// A timestamp or date, in milliseconds since the Unix epoch (finer units truncated).
    Time(i64),
}

/// One row of a Parquet file, for a [`Parquet`] decoder.
pub struct ParquetRow<'a> {
    batch: &'a RecordBatch,
    row: usize,
}

impl<'a> ParquetRow<'a> {
    /// The names of the row's columns.
    pub fn columns(&self) -> impl Iterator<Item = &'a str> {
        self.batch
            .schema_ref()
            .fields()
            .iter()
            .map(|f| f.name().as_str())
    }

    /// The value of column `name`: `None` if the file has no such column, `Err` naming the
    /// column if its type is not one [`ParquetValue`] holds (a list, a struct, a decimal...).
    pub fn get(&self, name: &str) -> Option<Result<ParquetValue<'a>, String>> {
        let index = self.batch.schema_ref().index_of(name).ok()?;
        Some(value(self.batch.column(index).as_ref(), self.row, name))
    }

    /// Writes the row as a JSON object of the columns `name` keeps, in file order: timestamps
    /// as integer milliseconds, NaN and the infinities as the strings `"NaN"`, `"Infinity"`
    /// and `"-Infinity"`. `Err` names a kept column whose type cannot be written.
    pub fn write_json(&self, keep: impl Fn(&str) -> bool, out: &mut Vec<u8>) -> Result<(), String> {
        out.push(b'{');
        let mut first = true;
        for (index, field) in self.batch.schema_ref().fields().iter().enumerate() {
            let name = field.name();
            if !keep(name) {
                continue;
            }
            let value = value(self.batch.column(index).as_ref(), self.row, name)?;
            if !first {
                out.push(b',');
            }
            first = false;
            // Writing JSON to a Vec cannot fail.
            let _ = serde_json::to_writer(&mut *out, name);
            out.push(b':');
            let _ = match value {
                ParquetValue::Null => out.write_all(b"null"),
                ParquetValue::Bool(b) => write!(out, "{b}"),
                ParquetValue::Int(i) | ParquetValue::Time(i) => write!(out, "{i}"),
                ParquetValue::UInt(u) => write!(out, "{u}"),
                ParquetValue::Float(f) if f.is_nan() => out.write_all(b"\"NaN\""),
                ParquetValue::Float(f) if f.is_infinite() && f > 0.0 => {
                    out.write_all(b"\"Infinity\"")
                }
                ParquetValue::Float(f) if f.is_infinite() => out.write_all(b"\"-Infinity\""),
                ParquetValue::Float(f) => {
                    serde_json::to_writer(&mut *out, &f).map_err(std::io::Error::other)
                }
                ParquetValue::Str(s) => {
                    serde_json::to_writer(&mut *out, s).map_err(std::io::Error::other)
                }
            };
        }
        out.push(b'}');
        Ok(())
    }
}

/// The value at `row` of `array` (column `name`).
fn value<'a>(array: &'a dyn Array, row: usize, name: &str) -> Result<ParquetValue<'a>, String> {
    if array.is_null(row) {
        return Ok(ParquetValue::Null);
    }
    let int = |i: i64| ParquetValue::Int(i);
    Ok(match array.data_type() {
        DataType::Null => ParquetValue::Null,
        DataType::Boolean => ParquetValue::Bool(array.as_boolean().value(row)),
        DataType::Int8 => int(array.as_primitive::<Int8Type>().value(row).into()),
        DataType::Int16 => int(array.as_primitive::<Int16Type>().value(row).into()),
        DataType::Int32 => int(array.as_primitive::<Int32Type>().value(row).into()),
        DataType::Int64 => int(array.as_primitive::<Int64Type>().value(row)),
        DataType::UInt8 => int(array.as_primitive::<UInt8Type>().value(row).into()),
        DataType::UInt16 => int(array.as_primitive::<UInt16Type>().value(row).into()),
        DataType::UInt32 => int(array.as_primitive::<UInt32Type>().value(row).into()),
        DataType::UInt64 => {
            let u = array.as_primitive::<UInt64Type>().value(row);
            i64::try_from(u).map_or(ParquetValue::UInt(u), int)
        }
        DataType::Float32 => {
            ParquetValue::Float(array.as_primitive::<Float32Type>().value(row).into())
        }
        DataType::Float64 => ParquetValue::Float(array.as_primitive::<Float64Type>().value(row)),
        DataType::Utf8 => ParquetValue::Str(array.as_string::<i32>().value(row)),
        DataType::LargeUtf8 => ParquetValue::Str(array.as_string::<i64>().value(row)),
        DataType::Utf8View => ParquetValue::Str(array.as_string_view().value(row)),
        DataType::Timestamp(unit, _) => ParquetValue::Time(match unit {
            TimeUnit::Second => array
                .as_primitive::<TimestampSecondType>()
                .value(row)
                .saturating_mul(1000),
            TimeUnit::Millisecond => array.as_primitive::<TimestampMillisecondType>().value(row),
            TimeUnit::Microsecond => {
                array.as_primitive::<TimestampMicrosecondType>().value(row) / 1000
            }
            TimeUnit::Nanosecond => {
                array.as_primitive::<TimestampNanosecondType>().value(row) / 1_000_000
            }
        }),
        DataType::Date32 => ParquetValue::Time(
            i64::from(array.as_primitive::<Date32Type>().value(row)) * 86_400_000,
        ),
        DataType::Date64 => ParquetValue::Time(array.as_primitive::<Date64Type>().value(row)),
        other => {
            return Err(format!(
                "column '{name}' is of Parquet/Arrow type {other}, which tideflow does not read (it reads booleans, integers, floats, strings, timestamps and dates)"
            ))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::parquet::arrow_array::builder::{Float64Builder, StringBuilder};
    use crate::sink::parquet::arrow_array::{ArrayRef, Int64Array};
    use crate::sink::parquet::arrow_schema::{Field, Schema};
    use parquet::arrow::ArrowWriter;

    /// A Parquet file of `rows` rows (`ts` int64, `k` string, `x` float64 with a null and a
    /// NaN), in row groups of 3.
    fn file(dir: &Path, rows: i64) -> PathBuf {
        let schema = Arc::new(Schema::new(vec![
            Field::new("ts", DataType::Int64, false),
            Field::new("k", DataType::Utf8, true),
            Field::new("x", DataType::Float64, true),
        ]));
        let mut keys = StringBuilder::new();
        let mut xs = Float64Builder::new();
        for i in 0..rows {
            keys.append_value(format!("k{}", i % 3));
            match i {
                1 => xs.append_null(),
                2 => xs.append_value(f64::NAN),
                _ => xs.append_value(i as f64 / 2.0),
            }
        }
        let columns: Vec<ArrayRef> = vec![
            Arc::new(Int64Array::from_iter_values(0..rows)),
            Arc::new(keys.finish()),
            Arc::new(xs.finish()),
        ];
        let batch = RecordBatch::try_new(schema.clone(), columns).unwrap();
        let path = dir.join("rows.parquet");
        let properties = parquet::file::properties::WriterProperties::builder()
            .set_max_row_group_row_count(Some(3))
            .build();
        let mut writer =
            ArrowWriter::try_new(File::create(&path).unwrap(), schema, Some(properties)).unwrap();
        writer.write(&batch).unwrap();
        writer.close().unwrap();
        path
    }

    #[test]
    fn rows_read_as_json_and_a_seek_resumes_at_a_row() {
        let dir = tempfile::tempdir().unwrap();
        let path = file(dir.path(), 10);
        let format = Parquet::with_decoder(|row| {
            let mut json = Vec::new();
            row.write_json(|_| true, &mut json)?;
            Ok(String::from_utf8(json).unwrap())
        });
        let mut reader = format.open(&path, File::open(&path).unwrap(), 0).unwrap();
        let mut rows = Vec::new();
        while let Some(row) = reader.next_record().unwrap_or_else(|_| panic!("a row")) {
            rows.push(row);
        }
        assert_eq!(rows.len(), 10);
        assert_eq!(rows[0], r#"{"ts":0,"k":"k0","x":0.0}"#);
        assert_eq!(rows[1], r#"{"ts":1,"k":"k1","x":null}"#);
        assert_eq!(rows[2], r#"{"ts":2,"k":"k2","x":"NaN"}"#);
        assert_eq!(
            reader.position(),
            Position {
                offset: 10,
                line: 11
            }
        );

        // From row 4 (in the second row group) on, as a resumed job reads it.
        reader.seek(Position { offset: 4, line: 5 }).unwrap();
        let next = reader.next_record().unwrap_or_else(|_| panic!("a row"));
        assert_eq!(next.as_deref(), Some(r#"{"ts":4,"k":"k1","x":2.0}"#));
        assert_eq!(reader.position(), Position { offset: 5, line: 6 });

        // A decoder's error is a bad record with the row's number and the row as JSON.
        let failing = Parquet::<()>::with_decoder(|row| match row.get("x") {
            Some(Ok(ParquetValue::Null)) => Err("x is null".into()),
            Some(Ok(_)) => Ok(()),
            _ => Err("no x".into()),
        });
        let mut reader = failing.open(&path, File::open(&path).unwrap(), 0).unwrap();
        assert!(matches!(reader.next_record(), Ok(Some(()))));
        match reader.next_record() {
            Err(ReadError::Bad(bad)) => {
                assert_eq!(bad.line, 2);
                assert_eq!(bad.reason, "x is null");
                assert_eq!(bad.raw, br#"{"ts":1,"k":"k1","x":null}"#);
            }
            _ => panic!("expected a bad record"),
        }
    }
}
