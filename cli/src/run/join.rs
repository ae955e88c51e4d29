//! `tideflow run --join-static`: the static table a run's records are enriched from, and how
//! its columns reach the aggregates (`--agg sum:table.F`): decoded into a [`TableRow`] and
//! appended to each joined record's [`Row`], after the record's own fields.

use std::path::PathBuf;

use clap::ValueEnum;

use super::Format;
use crate::record::{
    decode_table_csv, decode_table_json, join_key, Key, Row, TableColumns, TableRow, TableSchema,
};
use tideflow::source::{Csv, FileSource, JsonLines};
use tideflow::Error;
use tideflow::Flow;
use tideflow::StaticTable;
use tideflow::{KeyedStream, Stream};

/// The prefix of `--agg` fields read from the `--join-static` table.
pub(super) const TABLE_PREFIX: &str = "table.";

/// Which records `--join-static` keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum JoinType {
    /// Records whose key is in the table, once per table row with that key.
    Inner,
    /// Every record: once per table row with its key, or once with null table columns.
    Left,
}

/// The static table of `--join-static`, checked before the dataflow starts.
pub(super) struct TableJoin {
    /// The table file.
    pub(super) path: PathBuf,
    /// Its format, from its extension.
    pub(super) format: Format,
    /// Its join key and the columns the aggregates read.
    pub(super) schema: TableSchema,
    /// Inner or left.
    pub(super) kind: JoinType,
}

impl TableJoin {
    /// The table at `path` joined on `key_field`; its columns are the `--agg` fields named
    /// `table.F` among `value_fields` and `scalar_fields`.
    pub(super) fn new(
        path: PathBuf,
        key_field: String,
        kind: JoinType,
        value_fields: &[String],
        scalar_fields: &[String],
    ) -> Result<Self, Error> {
        let format = Format::from_extension(&path)
            .filter(|format| *format != Format::Parquet)
            .ok_or_else(|| {
            Error::Config(format!(
                "--join-static: cannot tell the format of {} from its name; name it .jsonl, .ndjson, .json or .csv",
                path.display()
            ))
        })?;
        match std::fs::metadata(&path) {
            Ok(metadata) if metadata.is_file() => {}
            Ok(_) => {
                return Err(Error::Config(format!(
                    "--join-static: {} is not a file",
                    path.display()
                )))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::Config(format!(
                    "--join-static: table file {} does not exist",
                    path.display()
                )))
            }
            Err(e) => {
                return Err(Error::io(
                    format!("--join-static: cannot read table file {}", path.display()),
                    e,
                ))
            }
        }
        let columns = |fields: &[String]| -> Result<Vec<String>, Error> {
            fields
                .iter()
                .filter_map(|field| field.strip_prefix(TABLE_PREFIX))
                .map(|column| match column {
                    "" => Err(Error::Config(
                        "--agg: table. must be followed by a column of the --join-static table"
                            .into(),
                    )),
                    column => Ok(column.to_string()),
                })
                .collect()
        };
        Ok(TableJoin {
            path,
            format,
            schema: TableSchema {
                key_field,
                value_fields: columns(value_fields)?,
                scalar_fields: columns(scalar_fields)?,
            },
            kind,
        })
    }

    /// The table, read whole and arranged by its join key (rows with a null key can match
    /// nothing and are left out).
    fn load<'scope>(
        &self,
        flow: &mut Flow<'scope>,
        max_record_bytes: usize,
    ) -> StaticTable<'scope, Key, TableRow> {
        let keyed = |(key, row): (Key, TableRow)| (!matches!(key, Key::Null)).then_some((key, row));
        let schema = self.schema.clone();
        match self.format {
            Format::Jsonl => {
                let format = JsonLines::with_decoder(move |line| decode_table_json(&schema, line));
                let source = FileSource::new(&self.path, format).max_record_bytes(max_record_bytes);
                flow.static_table_core(source, keyed)
            }
            // A .parquet table is refused by `new`.
            Format::Csv | Format::Parquet => {
                let format = Csv::with_decoder(move |header| {
                    let schema = schema.clone();
                    let columns = TableColumns::new(&schema, header)?;
                    Ok(Box::new(move |row: &csv::ByteRecord| {
                        decode_table_csv(&schema, &columns, row)
                    }))
                });
                let source = FileSource::new(&self.path, format).max_record_bytes(max_record_bytes);
                flow.static_table_core(source, keyed)
            }
        }
    }

    /// Each row of `rows` with the table's columns appended, once per table row with its key
    /// (or with nulls, in a left join), keyed by its own key; the join is the stateful
    /// operator `id`.
    pub(super) fn enrich<'scope>(
        &self,
        flow: &mut Flow<'scope>,
        rows: Stream<'scope, Row>,
        max_record_bytes: usize,
        id: &str,
    ) -> KeyedStream<'scope, Key, Row> {
        let table = self.load(flow, max_record_bytes);
        let keyed = rows.key_by(|row| join_key(&row.key)).named(id);
        let enriched = match self.kind {
            JoinType::Inner => keyed.join_static(table).map(|joined| {
                let mut row = joined.left;
                joined.right.append_to(&mut row);
                row
            }),
            JoinType::Left => {
                let schema = self.schema.clone();
                keyed.join_static_left(table).map(move |joined| {
                    let mut row = joined.left;
                    match joined.right {
                        Some(table_row) => table_row.append_to(&mut row),
                        None => TableRow::append_nulls(&schema, &mut row),
                    }
                    row
                })
            }
        };
        enriched
            .map(|mut row| (std::mem::replace(&mut row.key, Key::Null), row))
            .into_keyed()
    }
}

/// `fields` with the `table.` ones last, if `join`: the order of a joined row's fields.
pub(super) fn table_last(fields: &[String], join: bool) -> Vec<String> {
    let (mut own, table): (Vec<String>, Vec<String>) = fields
        .iter()
        .cloned()
        .partition(|field| !(join && field.starts_with(TABLE_PREFIX)));
    own.extend(table);
    own
}
