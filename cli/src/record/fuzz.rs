//! Fuzzing the command line's record decoders: JSON objects and CSV rows into [`Row`]s
//! (`decode_json`, `decode_csv`), static-table rows (`decode_table_json`, `decode_table_csv`)
//! and the late output's copy of a CSV row ([`CsvOriginal`]), over arbitrary bytes and over
//! valid records with bit flips, truncations and insertions. Nothing may panic (a bad record
//! is an `Err` with a reason); valid records decode to what was written.

use csv::{ByteRecord, ReaderBuilder, WriterBuilder};
use proptest::prelude::*;

use super::{
    decode_csv, decode_json, decode_table_csv, decode_table_json, CsvColumns, CsvOriginal, Key,
    Row, Schema, TableColumns, TableSchema,
};

use super::decode::decode_json_serde;

#[path = "../../../tests/all/mutate.rs"]
mod mutate;

/// The latest event time accepted.
const MAX_TIME: u64 = 253_402_300_799_999;

fn schema() -> Schema {
    Schema {
        time_field: "ts".into(),
        key_field: Some("k".into()),
        value_fields: vec!["v".into()],
        scalar_fields: vec!["s".into()],
    }
}

fn table_schema() -> TableSchema {
    TableSchema {
        key_field: "k".into(),
        value_fields: vec!["v".into()],
        scalar_fields: vec!["s".into()],
    }
}

/// A valid record: key, time, value, a scalar and a field no query reads.
#[derive(Clone, Debug)]
struct Record {
    k: String,
    ts: u64,
    v: i64,
    s: String,
    other: String,
}

fn record() -> impl Strategy<Value = Record> {
    (
        "[a-z ,\"\n\u{e9}]{1,6}",
        0..=MAX_TIME,
        any::<i64>(),
        "[a-z]{1,4}",
        "[ -~\n]{0,8}",
    )
        .prop_map(|(k, ts, v, s, other)| Record { k, ts, v, s, other })
}

fn json_line(r: &Record) -> String {
    serde_json::json!({"other": r.other, "k": r.k, "ts": r.ts, "v": r.v, "s": r.s}).to_string()
}

fn csv_text(records: &[Record]) -> Vec<u8> {
    let mut writer = WriterBuilder::new().from_writer(Vec::new());
    writer.write_record(["other", "k", "ts", "v", "s"]).unwrap();
    for r in records {
        let fields = [
            r.other.clone(),
            r.k.clone(),
            r.ts.to_string(),
            r.v.to_string(),
            r.s.clone(),
        ];
        writer.write_record(&fields).unwrap();
    }
    writer.into_inner().unwrap()
}

/// Checks that `row` holds `r`.
fn check_row(row: &Row, r: &Record) {
    assert_eq!(row.key, Key::Str(r.k.as_str().into()));
    assert_eq!(row.time, r.ts);
    assert_eq!(row.values.len(), 1);
    assert_eq!(row.values[0].map(|n| n.as_f64()), Some(r.v as f64));
    assert_eq!(row.scalars.len(), 1);
}

/// Decodes every row of CSV `text` (header first) with every CSV decoder, and checks that the
/// late output's copy of each row is a JSON object of its cells.
fn decode_csv_text(text: &[u8]) -> Vec<Result<Row, String>> {
    let mut reader = ReaderBuilder::new().flexible(true).from_reader(text);
    let Ok(header) = reader.byte_headers().cloned() else {
        return Vec::new();
    };
    let (schema, table) = (schema(), table_schema());
    let columns = CsvColumns::new(&schema, &header);
    let table_columns = TableColumns::new(&table, &header);
    let original = CsvOriginal::new(&header);
    let mut rows = Vec::new();
    let mut row = ByteRecord::new();
    while let Ok(true) = reader.read_byte_record(&mut row) {
        if let Ok(columns) = &columns {
            rows.push(decode_csv(&schema, columns, &row));
        }
        if let Ok(columns) = &table_columns {
            let _ = decode_table_csv(&table, columns, &row);
        }
        let copy: serde_json::Value =
            serde_json::from_str(&original.encode(&row)).expect("a JSON object");
        assert!(copy.is_object(), "{copy}");
    }
    rows
}

/// A JSON value as text: the usual scalars and everything the fast path of `decode_json`
/// must leave to `serde_json` (escapes, nested values, odd numbers, non-finite tokens).
fn json_value() -> impl Strategy<Value = String> {
    prop_oneof![
        (0..=MAX_TIME).prop_map(|ts| ts.to_string()),
        any::<i64>().prop_map(|n| n.to_string()),
        any::<u64>().prop_map(|n| n.to_string()),
        any::<f64>().prop_map(|f| serde_json::to_string(&f).unwrap()),
        (-1_000i32..1_000, 0u32..4).prop_map(|(n, e)| format!("{n}.{e}e-{e}")),
        "[a-z0-9 \u{e9}:-]{0,8}".prop_map(|s| serde_json::to_string(&s).unwrap()),
        prop::sample::select(vec![
            "0",
            "-0",
            "01",
            "1.",
            ".5",
            "1e",
            "1E+2",
            "-",
            "1.5e308",
            "1e400",
            "-1e-400",
            "12345678901234567890",
            "-9223372036854775808",
            "999999999999999999",
            "1000000000000000000",
            "true",
            "false",
            "null",
            "tru",
            "nul",
            "NaN",
            "-Infinity",
            "\"NaN\"",
            "\"a\\\"b\"",
            "\"\\u00e9\"",
            "\"2024-05-01T12:00:00.250Z\"",
            "\"\"",
            "\"\t\"",
            "[1,2]",
            "{\"a\":1}",
            "[]",
            "{}",
            "\"unterminated",
        ])
        .prop_map(str::to_string),
    ]
}

/// A JSON object as text with members named as the schema's fields (and others, and with an
/// escape), random whitespace, and sometimes cut short.
fn json_object() -> impl Strategy<Value = String> {
    let name = prop::sample::select(vec!["ts", "k", "v", "s", "other", "t\\u0073", "k "]);
    let space = prop::sample::select(vec!["", "", "", " ", "\t", "\n", "\r", "  "]);
    let member = (
        space.clone(),
        name,
        space.clone(),
        json_value(),
        space.clone(),
    );
    (prop::collection::vec(member, 0..6), space, any::<u8>()).prop_map(|(members, end, cut)| {
        let members: Vec<String> = members
            .into_iter()
            .map(|(a, name, b, value, c)| format!("{a}\"{name}\"{b}:{value}{c}"))
            .collect();
        let line = format!("{{{}}}{end}", members.join(","));
        match cut {
            // A line cut short, or with a byte flipped to a delimiter.
            0..=15 => {
                let mut at = line.len() * usize::from(cut) / 16;
                while !line.is_char_boundary(at) {
                    at -= 1;
                }
                line[..at].to_string()
            }
            16..=23 => line.replacen(',', "", 1),
            24..=31 => line.replacen(':', ",", 1),
            _ => line,
        }
    })
}

proptest! {
    #![proptest_config(mutate::config(1024))]

    /// The fast path for flat objects decodes every line to what serde_json decodes it to:
    /// the same row, or the same error.
    #[test]
    fn fuzz_flat_json_decodes_as_serde_json_does(
        lines in prop::collection::vec(json_object(), 1..8),
        mutations in mutate::mutations(),
    ) {
        let schema = schema();
        let mutated = mutate::mutate(lines[0].as_bytes(), &mutations);
        let mutated = String::from_utf8_lossy(&mutated).into_owned();
        for line in lines.iter().chain([&mutated]) {
            let fast = format!("{:?}", decode_json(&schema, line));
            let serde = format!("{:?}", decode_json_serde(&schema, line, &[]));
            prop_assert_eq!(fast, serde, "line {:?}", line);
        }
    }
}

proptest! {
    #![proptest_config(mutate::config(128))]

    #[test]
    fn fuzz_record_decoders_round_trip_valid_records(
        records in prop::collection::vec(record(), 1..5),
    ) {
        for r in &records {
            let line = json_line(r);
            check_row(&decode_json(&schema(), &line).expect("decodes"), r);
            let (key, row) = decode_table_json(&table_schema(), &line).expect("decodes");
            prop_assert_eq!(key, Key::Str(r.k.as_str().into()));
            prop_assert_eq!(row.values.len(), 1);
        }
        let rows = decode_csv_text(&csv_text(&records));
        prop_assert_eq!(rows.len(), records.len());
        for (row, r) in rows.iter().zip(&records) {
            check_row(row.as_ref().expect("decodes"), r);
        }
        // The late output's copy of a CSV row holds its cells by header name.
        let text = csv_text(&records[..1]);
        let mut reader = ReaderBuilder::new().from_reader(&text[..]);
        let header = reader.byte_headers().unwrap().clone();
        let row = reader.byte_records().next().unwrap().unwrap();
        let copy: serde_json::Value =
            serde_json::from_str(&CsvOriginal::new(&header).encode(&row)).unwrap();
        prop_assert_eq!(&copy["k"], &serde_json::Value::from(records[0].k.clone()));
        prop_assert_eq!(&copy["other"], &serde_json::Value::from(records[0].other.clone()));
        prop_assert_eq!(&copy["ts"], &serde_json::Value::from(records[0].ts.to_string()));
    }

    #[test]
    fn fuzz_record_decoders_never_panic_on_damaged_records(
        records in prop::collection::vec(record(), 1..4),
        mutations in mutate::mutations(),
    ) {
        let line = mutate::mutate(json_line(&records[0]).as_bytes(), &mutations);
        let line = String::from_utf8_lossy(&line);
        let _ = decode_json(&schema(), &line);
        let _ = decode_table_json(&table_schema(), &line);
        decode_csv_text(&mutate::mutate(&csv_text(&records), &mutations));
    }

    #[test]
    fn fuzz_record_decoders_never_panic_on_arbitrary_bytes(
        bytes in mutate::arbitrary_bytes(128),
    ) {
        let text = String::from_utf8_lossy(&bytes);
        let _ = decode_json(&schema(), &text);
        let _ = decode_table_json(&table_schema(), &text);
        decode_csv_text(&bytes);
        let mut with_header = b"k,ts,v,s\n".to_vec();
        with_header.extend_from_slice(&bytes);
        decode_csv_text(&with_header);
    }
}
