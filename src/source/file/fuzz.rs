//! Fuzzing the file readers and the record framing: the JSON lines and CSV file readers, the
//! line and CSV-record splitting of the live sources and their CSV field parser, over
//! arbitrary bytes and over valid files with bit flips, truncations and insertions. Nothing may
//! panic or loop, a bad record is a [`ReadError::Bad`] with a line and at most
//! `max_record_bytes` of raw text (never a fatal error: the files are readable), and valid
//! files read back what was written, from the start and from every position the reader gave.
//! The CSV reader's fast path reads every file exactly as the `csv` crate's parser alone does:
//! the same records, bad records and positions, from the start and after seeks.

use std::io::{BufReader, Write};
use std::num::NonZeroU32;

use ::csv::{ByteRecord, ReaderBuilder, WriterBuilder};
use proptest::prelude::*;
use serde::{Deserialize, Serialize};

use super::{
    read_csv_record_capped, read_line_capped, Csv, CsvRecordParser, FileFormat, JsonLines,
    RecordReader,
};
use crate::source::{BadRecord, Position, ReadError};

use crate::mutate;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Rec {
    k: String,
    ts: u64,
    v: i64,
}

fn rec() -> impl Strategy<Value = Rec> {
    // Keys with the bytes that make CSV quote: commas, quotes, newlines, spaces.
    ("[a-z ,\"\n\r\u{e9}]{0,8}", any::<u64>(), any::<i64>()).prop_map(|(k, ts, v)| Rec { k, ts, v })
}

/// What reading a whole file gave: each record, or a bad record's line.
type Read<T> = Vec<Result<(Position, T), u64>>;

/// Reads `bytes` as a file in `format` with records of at most `max` bytes: every record with
/// the position before it, or a bad record's line. `Err` if the file cannot be opened (a bad
/// CSV header).
fn read_file<F: FileFormat>(format: &F, bytes: &[u8], max: usize) -> Result<Read<F::Item>, String> {
    let mut file = tempfile::NamedTempFile::new().expect("a temporary file");
    file.write_all(bytes).expect("write the temporary file");
    let path = file.path().to_path_buf();
    let opened = std::fs::File::open(&path).expect("open the temporary file");
    let mut reader = format.open(&path, opened, max).map_err(|e| e.to_string())?;
    let mut read = Vec::new();
    // Each call consumes at least one byte, or ends the file.
    for _ in 0..bytes.len() + 2 {
        let before = reader.position();
        match reader.next_record() {
            Ok(Some(record)) => read.push(Ok((before, record))),
            Ok(None) => return Ok(read),
            Err(ReadError::Bad(bad)) => {
                assert!(bad.line >= 1, "a bad record names its line");
                assert!(bad.raw.len() <= max, "raw text is cut at the limit");
                read.push(Err(bad.line));
            }
            Err(ReadError::Fatal(error)) => panic!("a readable file gave a fatal error: {error}"),
        }
    }
    panic!(
        "the reader did not reach the end of a {}-byte file",
        bytes.len()
    );
}

/// Checks that seeking to each position the reader gave reads the same record again.
fn check_seek<F: FileFormat>(format: &F, bytes: &[u8], read: &Read<F::Item>)
where
    F::Item: PartialEq + std::fmt::Debug,
{
    let mut file = tempfile::NamedTempFile::new().expect("a temporary file");
    file.write_all(bytes).expect("write the temporary file");
    let path = file.path().to_path_buf();
    let opened = std::fs::File::open(&path).expect("open the temporary file");
    let mut reader = format.open(&path, opened, 1 << 20).expect("opens");
    for (position, record) in read.iter().rev().flatten() {
        reader.seek(*position).expect("seeks");
        match reader.next_record() {
            Ok(Some(again)) => assert_eq!(&again, record, "at {position:?}"),
            _ => panic!("no record at {position:?}"),
        }
    }
}

fn records<T: Clone>(read: &Read<T>) -> Vec<T> {
    read.iter().flatten().map(|(_, r)| r.clone()).collect()
}

/// `recs` as JSON lines, each ended by `\n` or `\r\n`, with blank lines between some.
fn json_file(recs: &[Rec], crlf: bool, blank: bool) -> Vec<u8> {
    let mut out = Vec::new();
    for r in recs {
        out.extend_from_slice(serde_json::to_string(r).unwrap().as_bytes());
        out.extend_from_slice(if crlf { b"\r\n" } else { b"\n" });
        if blank {
            out.extend_from_slice(b"  \n");
        }
    }
    out
}

/// `recs` as CSV with a header, with or without a final newline.
fn csv_file(recs: &[Rec], final_newline: bool) -> Vec<u8> {
    let mut writer = WriterBuilder::new().from_writer(Vec::new());
    for r in recs {
        writer.serialize(r).unwrap();
    }
    if recs.is_empty() {
        writer.write_record(["k", "ts", "v"]).unwrap();
    }
    let mut out = writer.into_inner().unwrap();
    if !final_newline {
        out.pop();
    }
    out
}

/// Splits `input` with the live sources' framing (`csv`: CSV records, else lines) through a
/// reader buffer of `capacity` bytes, keeping `max + 1` bytes: each record's length and kept
/// bytes. Checks that the lengths account for every byte and that the kept bytes are a prefix
/// of the record.
fn frame(input: &[u8], csv: bool, capacity: usize, max: usize) -> Vec<Vec<u8>> {
    let mut reader = BufReader::with_capacity(capacity, input);
    let mut record = Vec::new();
    let mut records = Vec::new();
    let mut consumed = 0;
    for _ in 0..input.len() + 1 {
        let read = if csv {
            read_csv_record_capped(&mut reader, &mut record, max)
                .unwrap()
                .map(|(n, _)| n)
        } else {
            read_line_capped(&mut reader, &mut record, max).unwrap()
        };
        let Some(length) = read else {
            assert!(consumed >= input.len(), "framing stopped early");
            return records;
        };
        assert!(record.len() <= max + 1 && record.len() <= length);
        assert_eq!(&input[consumed..consumed + record.len()], &record[..]);
        consumed += length + 1;
        records.push(record.clone());
    }
    panic!("framing did not end");
}

/// Parses each framed CSV record with the live sources' parser, as the file reader would.
fn parse_each(records: &[Vec<u8>]) {
    let mut parser = CsvRecordParser::new();
    let mut row = ByteRecord::new();
    for record in records {
        let mut bytes = record.clone();
        let parsed = parser.parse(&mut bytes, &mut row);
        assert_eq!(&bytes, record, "the record is given back");
        if parsed == Ok(true) && !record.contains(&b'\r') {
            let mut expected = ByteRecord::new();
            let mut file = ReaderBuilder::new()
                .has_headers(false)
                .from_reader(&record[..]);
            if file.read_byte_record(&mut expected).unwrap_or(false) {
                assert_eq!(
                    row.iter().collect::<Vec<_>>(),
                    expected.iter().collect::<Vec<_>>()
                );
            }
        }
    }
}

proptest! {
    #![proptest_config(mutate::config(128))]

    #[test]
    fn fuzz_file_readers_round_trip_valid_files(
        recs in prop::collection::vec(rec(), 0..8),
        crlf in any::<bool>(),
        blank in any::<bool>(),
        final_newline in any::<bool>(),
    ) {
        let json = json_file(&recs, crlf, blank);
        let read = read_file(&JsonLines::<Rec>::serde(), &json, 1 << 20).unwrap();
        prop_assert_eq!(&records(&read), &recs);
        check_seek(&JsonLines::<Rec>::serde(), &json, &read);
        let csv = csv_file(&recs, final_newline);
        let read = read_file(&Csv::<Rec>::serde(), &csv, 1 << 20).unwrap();
        prop_assert_eq!(&records(&read), &recs);
        check_seek(&Csv::<Rec>::serde(), &csv, &read);
        // The live framing splits them into the same records (and the header).
        let lines = frame(&json, false, 7, 1 << 20);
        prop_assert_eq!(lines.iter().filter(|l| !l.trim_ascii().is_empty()).count(), recs.len());
        let framed = frame(&csv, true, 5, 1 << 20);
        prop_assert_eq!(framed.len(), recs.len() + 1);
        parse_each(&framed);
    }

    #[test]
    fn fuzz_file_readers_never_panic_on_damaged_files(
        recs in prop::collection::vec(rec(), 1..6),
        mutations in mutate::mutations(),
        max in prop_oneof![Just(1usize << 20), 1usize..40],
        capacity in 1usize..16,
    ) {
        let json = mutate::mutate(&json_file(&recs, false, false), &mutations);
        let _ = read_file(&JsonLines::<Rec>::serde(), &json, max);
        let _ = read_file(&JsonLines::<serde_json::Value>::serde(), &json, max);
        frame(&json, false, capacity, max);
        let csv = mutate::mutate(&csv_file(&recs, true), &mutations);
        let _ = read_file(&Csv::<Rec>::serde(), &csv, max);
        parse_each(&frame(&csv, true, capacity, max));
    }

    #[test]
    fn fuzz_file_readers_never_panic_on_arbitrary_bytes(
        bytes in mutate::arbitrary_bytes(160),
        max in prop_oneof![Just(1usize << 20), 1usize..40],
        capacity in 1usize..16,
    ) {
        let _ = read_file(&JsonLines::<Rec>::serde(), &bytes, max);
        let mut with_header = b"k,ts,v\n".to_vec();
        with_header.extend_from_slice(&bytes);
        let _ = read_file(&Csv::<Rec>::serde(), &with_header, max);
        let _ = read_file(&Csv::<Rec>::serde(), &bytes, max);
        frame(&bytes, false, capacity, max);
        parse_each(&frame(&bytes, true, capacity, max));
    }
}

/// Pieces of CSV files for the fast path's differential test: plain fields, commas, every
/// terminator, blank lines, quotes (opening, escaped, stray), a byte-order mark, and a long
/// field (past small record limits and buffers).
const PIECES: &[&[u8]] = &[
    b"a",
    b"17",
    b"k,1,2",
    b"x\xc3\xa9",
    b",",
    b",,",
    b"\n",
    b"\n",
    b"\r\n",
    b"\r",
    b"\n\n",
    b"\"",
    b"\"q,\"",
    b"\"\"",
    b"\"a\nb\"",
    b"\xEF\xBB\xBF",
    b"a long field of forty-two bytes, say more",
];

/// A CSV file: a header (of the fields `k`, `ts` and `v`, of others, or none) and pieces,
/// without quotes unless `quotes`.
fn pieces_file() -> impl Strategy<Value = Vec<u8>> {
    let header = prop::sample::select(vec![
        &b"k,ts,v\n"[..],
        b"k,ts,v\r\n",
        b"\xEF\xBB\xBFk,ts,v\n",
        b"a,b\n",
        b"",
    ]);
    let pieces = prop::collection::vec(prop::sample::select(PIECES), 0..48);
    (header, pieces, any::<bool>()).prop_map(|(header, pieces, quotes)| {
        let mut bytes = header.to_vec();
        for piece in pieces {
            if quotes || !piece.contains(&b'"') {
                bytes.extend_from_slice(piece);
            }
        }
        bytes
    })
}

/// One step of reading, comparable across readers: a record (as text), a bad record, or the
/// end, with the reader's position after it.
type Step = (
    Result<Option<String>, (u64, String, Vec<u8>, u64)>,
    Position,
);

/// Reads at most `count` records (or to the end) from `reader`.
fn steps<R: RecordReader>(reader: &mut R, count: usize) -> Vec<Step>
where
    R::Item: std::fmt::Debug,
{
    let mut steps = Vec::new();
    for _ in 0..count {
        let step = match reader.next_record() {
            Ok(record) => Ok(record.map(|r| format!("{r:?}"))),
            Err(ReadError::Bad(BadRecord {
                line,
                reason,
                raw,
                length,
            })) => Err((line, reason, raw, length)),
            Err(ReadError::Fatal(error)) => panic!("a readable file gave a fatal error: {error}"),
        };
        let end = matches!(step, Ok(None));
        steps.push((step, reader.position()));
        if end {
            break;
        }
    }
    steps
}

/// Reads `bytes` in `format` with its fast path (blocks of `buffer` bytes) and without, with
/// records of at most `max` bytes, from the start and then after a seek to each of `seeks`
/// (each a position the readers gave, or any offset with any line), and checks that both read
/// the same.
fn check_fast_path<T: std::fmt::Debug + 'static>(
    format: Csv<T>,
    bytes: &[u8],
    max: usize,
    buffer: u32,
    seeks: &[(prop::sample::Index, bool, u64)],
) -> Result<(), TestCaseError> {
    let mut file = tempfile::NamedTempFile::new().expect("a temporary file");
    file.write_all(bytes).expect("write the temporary file");
    let path = file.path().to_path_buf();
    let open = |format: &Csv<T>| {
        let opened = std::fs::File::open(&path).expect("open the temporary file");
        format.open(&path, opened, max).map_err(|e| e.to_string())
    };
    let fast = open(&format.clone().fast_buffer(NonZeroU32::new(buffer)));
    let slow = open(&format.fast_buffer(None));
    let (mut fast, mut slow) = match (fast, slow) {
        (Ok(fast), Ok(slow)) => (fast, slow),
        (fast, slow) => {
            prop_assert_eq!(fast.err(), slow.err());
            return Ok(());
        }
    };
    prop_assert_eq!(fast.position(), slow.position());
    // Each call consumes at least one byte, or ends the file.
    let whole = steps(&mut slow, bytes.len() + 2);
    prop_assert_eq!(&steps(&mut fast, bytes.len() + 2), &whole);
    let given: Vec<Position> = whole.iter().map(|(_, position)| *position).collect();
    for (index, given_one, line) in seeks {
        let position = if *given_one {
            given[index.index(given.len())]
        } else {
            Position {
                offset: index.index(bytes.len() + 1) as u64,
                line: *line,
            }
        };
        fast.seek(position).expect("seeks");
        slow.seek(position).expect("seeks");
        let expected = steps(&mut slow, 4);
        prop_assert_eq!(
            &steps(&mut fast, 4),
            &expected,
            "after a seek to {:?}",
            position
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(mutate::config(512))]

    #[test]
    fn fuzz_csv_fast_path_reads_as_the_csv_crate_does(
        bytes in pieces_file(),
        max in prop_oneof![Just(1usize << 20), 1usize..48],
        buffer in prop_oneof![Just(1u32 << 16), 4u32..64],
        seeks in prop::collection::vec((any::<prop::sample::Index>(), any::<bool>(), 1u64..9), 0..6),
    ) {
        let fields = Csv::with_decoder(|_| {
            Ok(Box::new(|row: &ByteRecord| {
                let at = row.position().map(|p| (p.byte(), p.line(), p.record()));
                Ok((row.iter().map(<[u8]>::to_vec).collect::<Vec<_>>(), at))
            }))
        });
        check_fast_path(fields, &bytes, max, buffer, &seeks)?;
        // Serde's errors name the record's position.
        check_fast_path(Csv::<Rec>::serde(), &bytes, max, buffer, &seeks)?;
        // A decoder's own error is a bad record too.
        let picky = Csv::with_decoder(|_| {
            Ok(Box::new(|row: &ByteRecord| match row.get(0) {
                Some(b"a") => Err("a is not a key".to_string()),
                field => Ok(field.map(<[u8]>::to_vec)),
            }))
        });
        check_fast_path(picky, &bytes, max, buffer, &seeks)?;
    }
}
