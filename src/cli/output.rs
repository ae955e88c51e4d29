//! How `tideflow run` writes window results: one JSON object (or CSV row) per (key, window).

use std::io::Write;

use std::time::Duration;

use tideflow_operators::window::{LateRecord, WindowResult};

use crate::duration::millis;
use crate::error::Error;
use crate::record::{AggValue, Key, Row};
use crate::sink::Encoder;

/// Encodes window results as `{"key":..,"window_start":..,"window_end":..,<aggregates>}` JSON
/// lines, or as CSV rows under a header with the same columns.
pub struct RowEncoder {
    columns: Vec<String>,
    csv: bool,
    header_written: bool,
}

impl RowEncoder {
    /// JSON lines with one field per aggregate column.
    pub fn json(columns: Vec<String>) -> Self {
        RowEncoder {
            columns,
            csv: false,
            header_written: false,
        }
    }

    /// CSV with a header row.
    pub fn csv(columns: Vec<String>) -> Self {
        RowEncoder {
            columns,
            csv: true,
            header_written: false,
        }
    }
}

impl Encoder<WindowResult<Key, Vec<AggValue>>> for RowEncoder {
    fn encode(
        &mut self,
        row: &WindowResult<Key, Vec<AggValue>>,
        out: &mut Vec<u8>,
    ) -> Result<(), Error> {
        if self.csv {
            let mut writer = csv::Writer::from_writer(&mut *out);
            let failed = |e: csv::Error| Error::Internal(format!("cannot encode a CSV row: {e}"));
            if !self.header_written {
                self.header_written = true;
                let header = ["key", "window_start", "window_end"]
                    .into_iter()
                    .map(str::to_string)
                    .chain(self.columns.iter().cloned());
                writer.write_record(header).map_err(failed)?;
            }
            let fixed = [
                row.key.csv_text(),
                row.start.to_string(),
                row.end.to_string(),
            ];
            writer
                .write_record(
                    fixed
                        .into_iter()
                        .chain(row.value.iter().map(AggValue::csv_text)),
                )
                .map_err(failed)?;
            return writer
                .flush()
                .map_err(|e| Error::Internal(format!("cannot encode a CSV row: {e}")));
        }
        out.extend_from_slice(b"{\"key\":");
        row.key.write_json(out);
        let _ = write!(
            out,
            ",\"window_start\":{},\"window_end\":{}",
            row.start, row.end
        );
        for (column, value) in self.columns.iter().zip(&row.value) {
            out.extend_from_slice(b",");
            let _ = serde_json::to_writer(&mut *out, column);
            out.extend_from_slice(b":");
            value.write_json(out);
        }
        out.extend_from_slice(b"}\n");
        Ok(())
    }
}

/// Encodes late records as JSON lines: `key`, `event_time`, `watermark` (the stamp it arrived
/// behind), `window_end` (of the latest window it belonged to), `reason`, and the aggregated
/// `fields` it carried.
pub struct LateEncoder {
    fields: Vec<String>,
    lateness: u64,
}

impl LateEncoder {
    /// Late records whose rows hold `fields`, under `lateness` of allowed lateness.
    pub fn new(fields: Vec<String>, lateness: Duration) -> Self {
        LateEncoder {
            fields,
            lateness: millis(lateness),
        }
    }
}

impl Encoder<LateRecord<Key, Row>> for LateEncoder {
    fn encode(&mut self, late: &LateRecord<Key, Row>, out: &mut Vec<u8>) -> Result<(), Error> {
        out.extend_from_slice(b"{\"key\":");
        late.key.write_json(out);
        let _ = write!(
            out,
            ",\"event_time\":{},\"watermark\":{},\"window_end\":{},\"reason\":\"every window of the record had closed: watermark {} >= window end {} + allowed lateness {}ms\",\"fields\":{{",
            late.data.time, late.watermark, late.window_end, late.watermark, late.window_end, self.lateness
        );
        for (index, (field, value)) in self.fields.iter().zip(&late.data.values).enumerate() {
            if index > 0 {
                out.push(b',');
            }
            let _ = serde_json::to_writer(&mut *out, field);
            out.push(b':');
            match value {
                None => out.extend_from_slice(b"null"),
                Some(number) => AggValue::from(*number).write_json(out),
            }
        }
        out.extend_from_slice(b"}}\n");
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
            value: vec![AggValue::Int(3), AggValue::Float(1.5), AggValue::Null],
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
}
