//! The whole record a [`Row`](super::Row) was decoded from, kept for `--late-output` so that
//! late records can be replayed: a JSON line as it was read, a CSV row as a JSON object of its
//! cells by header name.

use csv::ByteRecord;

use super::decode::header_names;

/// Writes the CSV rows under one header as JSON objects of their cells by header name, each
/// cell a string exactly as read (unquoted, not trimmed, not converted: `1,"a,b"` under
/// `ts,k` is `{"ts":"1","k":"a,b"}`); invalid UTF-8 is replaced with U+FFFD. A header name
/// given twice keeps each of its cells, in order, as JSON allows.
#[derive(Clone, Debug)]
pub struct CsvOriginal {
    /// Each column's `"name":`, encoded once.
    keys: Vec<String>,
}

impl CsvOriginal {
    /// The rows under `header`.
    pub fn new(header: &ByteRecord) -> Self {
        let keys = header_names(header)
            .iter()
            .map(|name| format!("{}:", json_string(name)))
            .collect();
        CsvOriginal { keys }
    }

    /// `row` as a JSON object.
    ///
    /// # Examples
    /// ```
    /// use csv::ByteRecord;
    /// use tideflow_cli::record::CsvOriginal;
    /// let original = CsvOriginal::new(&ByteRecord::from(vec!["ts", "k"]));
    /// let row = ByteRecord::from(vec!["1", " a,\"b\""]);
    /// assert_eq!(&*original.encode(&row), r#"{"ts":"1","k":" a,\"b\""}"#);
    /// ```
    pub fn encode(&self, row: &ByteRecord) -> Box<str> {
        let mut out = Vec::with_capacity(row.as_slice().len() + 8 * self.keys.len() + 2);
        out.push(b'{');
        for (index, (key, cell)) in self.keys.iter().zip(row.iter()).enumerate() {
            if index > 0 {
                out.push(b',');
            }
            out.extend_from_slice(key.as_bytes());
            // Serialising a string to a Vec cannot fail.
            let _ = serde_json::to_writer(&mut out, &*String::from_utf8_lossy(cell));
        }
        out.push(b'}');
        // Made of JSON text, which is UTF-8.
        String::from_utf8_lossy(&out).into()
    }
}

/// `text` as a JSON string.
fn json_string(text: &str) -> String {
    // Serialising a string cannot fail.
    serde_json::to_string(text).unwrap_or_default()
}
