//! How `tideflow run` writes window results: one JSON object (or CSV row) per (key, window).

use std::io::Write;

use std::time::Duration;

use tideflow::KeyedChange;
use tideflow::{LateRecord, UpdateKind, WindowResult, WindowUpdate};

use crate::millis;
use crate::record::{write_json_str, AggValue, Aggregates, Key, KeyKind, Row};
use tideflow::sink::{Encoder, KeyTableRow, TableRow};
use tideflow::Error;

/// Encodes window rows as `{"key":..,"window_start":..,"window_end":..,<aggregates>}` JSON
/// lines, or as CSV rows under a header with the same columns. Update-mode rows add `final`
/// (and `"retract":true` on a retraction; in CSV a `retract` column); complete-mode rows start
/// with `batch` and add `final`.
pub struct RowEncoder {
    columns: Vec<String>,
    /// Each column as it starts a JSON member after another: `,"name":`.
    json_columns: Vec<Vec<u8>>,
    csv: bool,
    header_written: bool,
}

/// The fields of one output row: its key, its window (none for running aggregates) and its
/// aggregate values.
#[derive(Clone, Copy)]
pub(crate) struct RowView<'a> {
    pub(crate) key: &'a Key,
    pub(crate) key_kind: KeyKind,
    pub(crate) window: Option<(u64, u64)>,
    pub(crate) values: &'a [AggValue],
}

impl<'a> RowView<'a> {
    /// A row without a window (running aggregates).
    fn unwindowed(key: &'a Key, aggregates: &'a Aggregates) -> Self {
        RowView {
            key,
            key_kind: aggregates.key_kind,
            window: None,
            values: &aggregates.values,
        }
    }
}

impl<'a> From<&'a WindowResult<Key, Aggregates>> for RowView<'a> {
    fn from(row: &'a WindowResult<Key, Aggregates>) -> Self {
        RowView {
            key: &row.key,
            key_kind: row.value.key_kind,
            window: Some((row.start, row.end)),
            values: &row.value.values,
        }
    }
}

/// The extra columns of one output mode's rows.
#[derive(Clone, Copy)]
pub(crate) struct Extra {
    pub(crate) batch: Option<u64>,
    pub(crate) is_final: Option<bool>,
    pub(crate) retract: Option<bool>,
}

impl RowEncoder {
    /// JSON lines with one field per aggregate column.
    pub fn json(columns: Vec<String>) -> Self {
        Self::new(columns, false)
    }

    /// CSV with a header row.
    pub fn csv(columns: Vec<String>) -> Self {
        Self::new(columns, true)
    }

    fn new(columns: Vec<String>, csv: bool) -> Self {
        let json_columns = columns
            .iter()
            .map(|column| {
                let mut member = b",".to_vec();
                write_json_str(column, &mut member);
                member.push(b':');
                member
            })
            .collect();
        RowEncoder {
            columns,
            json_columns,
            csv,
            header_written: false,
        }
    }

    fn encode_row(
        &mut self,
        row: RowView<'_>,
        extra: Extra,
        out: &mut Vec<u8>,
    ) -> Result<(), Error> {
        if self.csv {
            return self.encode_csv(row, extra, out);
        }
        out.push(b'{');
        let mut digits = itoa::Buffer::new();
        if let Some(batch) = extra.batch {
            out.extend_from_slice(b"\"batch\":");
            out.extend_from_slice(digits.format(batch).as_bytes());
            out.push(b',');
        }
        out.extend_from_slice(b"\"key\":");
        row.key.write_json_as(row.key_kind, out);
        if let Some((start, end)) = row.window {
            out.extend_from_slice(b",\"window_start\":");
            out.extend_from_slice(digits.format(start).as_bytes());
            out.extend_from_slice(b",\"window_end\":");
            out.extend_from_slice(digits.format(end).as_bytes());
        }
        for (column, value) in self.json_columns.iter().zip(row.values) {
            out.extend_from_slice(column);
            value.write_json(out);
        }
        if let Some(is_final) = extra.is_final {
            let _ = write!(out, ",\"final\":{is_final}");
        }
        if extra.retract == Some(true) {
            out.extend_from_slice(b",\"retract\":true");
        }
        out.extend_from_slice(b"}\n");
        Ok(())
    }

    fn encode_csv(
        &mut self,
        row: RowView<'_>,
        extra: Extra,
        out: &mut Vec<u8>,
    ) -> Result<(), Error> {
        let mut writer = csv::Writer::from_writer(&mut *out);
        let failed = |e: csv::Error| Error::Internal(format!("cannot encode a CSV row: {e}"));
        if !self.header_written {
            self.header_written = true;
            let header = extra
                .batch
                .map(|_| "batch")
                .into_iter()
                .chain(["key"])
                .chain(
                    row.window
                        .map(|_| ["window_start", "window_end"])
                        .into_iter()
                        .flatten(),
                )
                .map(str::to_string)
                .chain(self.columns.iter().cloned())
                .chain(extra.is_final.map(|_| "final".to_string()))
                .chain(extra.retract.map(|_| "retract".to_string()));
            writer.write_record(header).map_err(failed)?;
        }
        let fields = extra
            .batch
            .map(|batch| batch.to_string())
            .into_iter()
            .chain([row.key.csv_text_as(row.key_kind)])
            .chain(
                row.window
                    .map(|(start, end)| [start.to_string(), end.to_string()])
                    .into_iter()
                    .flatten(),
            )
            .chain(row.values.iter().map(AggValue::csv_text))
            .chain(extra.is_final.map(|value| value.to_string()))
            .chain(extra.retract.map(|value| value.to_string()));
        writer.write_record(fields).map_err(failed)?;
        writer
            .flush()
            .map_err(|e| Error::Internal(format!("cannot encode a CSV row: {e}")))
    }
}

/// A row type `tideflow run` writes: its fields and its mode's extra columns.
pub(crate) trait OutputRow: 'static {
    fn parts(&self) -> (RowView<'_>, Extra);

    /// Writes the row's key as a Kafka message key: its text, as a CSV output writes it;
    /// `false` for a null key (a message without a key).
    fn write_kafka_key(&self, out: &mut Vec<u8>) -> bool {
        let (view, _) = self.parts();
        write_key(view.key, view.key_kind, out)
    }
}

/// Writes `key` as a Kafka message key: its text, as a CSV output writes it; `false` for a
/// null key (a message without a key).
pub(crate) fn write_key(key: &Key, kind: KeyKind, out: &mut Vec<u8>) -> bool {
    if *key == Key::Null {
        return false;
    }
    out.extend_from_slice(key.csv_text_as(kind).as_bytes());
    true
}

/// No extra columns.
const PLAIN: Extra = Extra {
    batch: None,
    is_final: None,
    retract: None,
};

/// Append mode: the window's result.
impl OutputRow for WindowResult<Key, Aggregates> {
    fn parts(&self) -> (RowView<'_>, Extra) {
        (self.into(), PLAIN)
    }
}

/// Update mode: the result with `final`, and `retract` on a retraction.
impl OutputRow for WindowUpdate<Key, Aggregates> {
    fn parts(&self) -> (RowView<'_>, Extra) {
        let extra = Extra {
            is_final: Some(self.is_final()),
            retract: Some(self.kind == UpdateKind::Retract),
            ..PLAIN
        };
        ((&self.result).into(), extra)
    }
}

/// Complete mode: the table's batch number, the result and `final`.
impl OutputRow for TableRow<Key, Aggregates> {
    fn parts(&self) -> (RowView<'_>, Extra) {
        let extra = Extra {
            batch: Some(self.batch),
            is_final: Some(self.is_final),
            ..PLAIN
        };
        ((&self.result).into(), extra)
    }
}

/// Running aggregates in update mode: the key's new result (insertions only: an upsert on the
/// key).
impl OutputRow for KeyedChange<Key, Aggregates> {
    fn parts(&self) -> (RowView<'_>, Extra) {
        (RowView::unwindowed(&self.key, &self.value), PLAIN)
    }
}

/// Running aggregates in complete mode: the table's batch number and the key's result.
impl OutputRow for KeyTableRow<Key, Aggregates> {
    fn parts(&self) -> (RowView<'_>, Extra) {
        let extra = Extra {
            batch: Some(self.batch),
            ..PLAIN
        };
        (RowView::unwindowed(&self.key, &self.value), extra)
    }
}

impl<R: OutputRow> Encoder<R> for RowEncoder {
    fn encode(&mut self, row: &R, out: &mut Vec<u8>) -> Result<(), Error> {
        let (view, extra) = row.parts();
        self.encode_row(view, extra, out)
    }

    fn continue_file(&mut self) {
        self.header_written = true;
    }

    fn begin_file(&mut self) {
        self.header_written = false;
    }
}

/// Encodes late records as JSON lines: `key`, `event_time`, `watermark` (the stamp it arrived
/// behind), `window_end` (of the latest window it belonged to), `reason`, and last the whole
/// `record` as read ([`Row::original`]: a JSON line byte for byte, a CSV row as an object of
/// its cells by header name), or `null` for a row that kept none.
pub struct LateEncoder {
    lateness: u64,
}

impl LateEncoder {
    /// Late records under `lateness` of allowed lateness.
    pub fn new(lateness: Duration) -> Self {
        LateEncoder {
            lateness: millis(lateness),
        }
    }
}

impl Encoder<LateRecord<Key, Row>> for LateEncoder {
    fn encode(&mut self, late: &LateRecord<Key, Row>, out: &mut Vec<u8>) -> Result<(), Error> {
        out.extend_from_slice(b"{\"key\":");
        late.key.write_json_as(late.data.key_kind, out);
        let _ = write!(
            out,
            ",\"event_time\":{},\"watermark\":{},\"window_end\":{},\"reason\":\"every window of the record had closed: watermark {} >= window end {} + allowed lateness {}ms\",\"record\":",
            late.data.time, late.watermark, late.window_end, late.watermark, late.window_end, self.lateness
        );
        match &late.data.original {
            Some(original) => out.extend_from_slice(original.as_bytes()),
            None => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(b"}\n");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_and_csv_rows() {
        let row = WindowResult {
            key: Key::Str("a".into()),
            start: 0,
            end: 10,
            value: Aggregates {
                key_kind: KeyKind::Text,
                values: vec![AggValue::Int(3), AggValue::Float(1.5), AggValue::Null],
            },
        };
        let columns = vec![
            "count".to_string(),
            "avg_x".to_string(),
            "max_y".to_string(),
        ];
        let mut out = Vec::new();
        RowEncoder::json(columns.clone())
            .encode(&row, &mut out)
            .unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "{\"key\":\"a\",\"window_start\":0,\"window_end\":10,\"count\":3,\"avg_x\":1.5,\"max_y\":null}\n");
        let mut out = Vec::new();
        let mut csv = RowEncoder::csv(columns);
        csv.encode(&row, &mut out).unwrap();
        csv.encode(&row, &mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "key,window_start,window_end,count,avg_x,max_y\na,0,10,3,1.5,\na,0,10,3,1.5,\n"
        );
    }

    #[test]
    fn update_and_complete_rows_carry_their_mode_columns() {
        let result = WindowResult {
            key: Key::Str("a".into()),
            start: 0,
            end: 10,
            value: Aggregates {
                key_kind: KeyKind::Text,
                values: vec![AggValue::Int(3)],
            },
        };
        let columns = vec!["count".to_string()];
        let encode = |encoder: &mut RowEncoder, row: &WindowUpdate<Key, Aggregates>| {
            let mut out = Vec::new();
            encoder.encode(row, &mut out).unwrap();
            String::from_utf8(out).unwrap()
        };
        let mut json = RowEncoder::json(columns.clone());
        let early = WindowUpdate {
            result: result.clone(),
            kind: UpdateKind::Early,
        };
        let retract = WindowUpdate {
            result: result.clone(),
            kind: UpdateKind::Retract,
        };
        assert_eq!(
            encode(&mut json, &early),
            "{\"key\":\"a\",\"window_start\":0,\"window_end\":10,\"count\":3,\"final\":false}\n"
        );
        assert_eq!(
            encode(&mut json, &retract),
            "{\"key\":\"a\",\"window_start\":0,\"window_end\":10,\"count\":3,\"final\":false,\"retract\":true}\n"
        );
        let mut csv = RowEncoder::csv(columns.clone());
        assert_eq!(
            encode(&mut csv, &retract),
            "key,window_start,window_end,count,final,retract\na,0,10,3,false,true\n"
        );
        let row = TableRow {
            batch: 4,
            result,
            is_final: true,
        };
        let mut out = Vec::new();
        RowEncoder::json(columns).encode(&row, &mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "{\"batch\":4,\"key\":\"a\",\"window_start\":0,\"window_end\":10,\"count\":3,\"final\":true}\n"
        );
    }
}
