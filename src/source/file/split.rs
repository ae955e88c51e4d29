//! Splitting one large file into chunks at line starts, so that every worker reads a share of
//! it (as Spark splits files into partitions of `maxPartitionBytes`).
//!
//! A file longer than the split size is cut near every multiple of it: chunk `k` starts at the
//! first line that starts at or after byte `k * size`. Where the cuts fall depends on the file
//! and the split size only, never on the worker count, so the partitions (and with them every
//! stamp and late record: DESIGN.md "Time") are the same on any number of workers.

use std::fs::File;
use std::io::{ErrorKind, Read};
use std::path::Path;

use super::Position;
use crate::error::Error;

/// Whether and how a file format may be split.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Splittable {
    /// Never: a record may span lines in ways only a reader from the start can tell.
    No,
    /// At any line start: every record is one line (JSON lines).
    Lines,
    /// At any line start unless the file has a `"` anywhere: CSV, whose quoted fields may
    /// hold line breaks (as Spark's `multiLine`, such a file is read whole by one worker).
    LinesUnlessQuoted,
}

/// The default split size: 8 MiB.
pub const DEFAULT_SPLIT_BYTES: u64 = 8 << 20;

/// The positions where chunks `1..` of the file at `path` start (chunk 0 starts at the
/// beginning): empty when the file is not longer than `split_bytes`, when `rule` forbids
/// splitting it, or with `split_bytes` 0. Each position is a line start with its 1-based line
/// number; they are strictly increasing and before the end of the file.
pub fn chunk_starts(
    path: &Path,
    split_bytes: u64,
    rule: Splittable,
) -> Result<Vec<Position>, Error> {
    let cannot = |e| Error::io(format!("cannot read {}", path.display()), e);
    let length = std::fs::metadata(path).map_err(cannot)?.len();
    if rule == Splittable::No || split_bytes == 0 || length <= split_bytes {
        return Ok(Vec::new());
    }
    let file = File::open(path).map_err(cannot)?;
    scan(file, length, split_bytes, rule, &mut vec![0; 1 << 20]).map_err(cannot)
}

/// The cuts of `chunk_starts` in the `length` bytes of `file`, read into `buffer`.
fn scan(
    mut file: impl Read,
    length: u64,
    split_bytes: u64,
    rule: Splittable,
    buffer: &mut [u8],
) -> std::io::Result<Vec<Position>> {
    let mut starts = Vec::new();
    // Bytes and line breaks before `buffer`; the next cut wanted at or after `target`.
    let (mut offset, mut lines) = (0u64, 0u64);
    let mut target = split_bytes;
    loop {
        let read = match file.read(buffer) {
            Ok(0) => break,
            Ok(read) => read,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        let block = &buffer[..read];
        if rule == Splittable::LinesUnlessQuoted && memchr::memchr(b'"', block).is_some() {
            return Ok(Vec::new());
        }
        // Line breaks are counted in bulk up to the break before the next cut: a break at
        // `at` starts a line at `offset + at + 1`, a cut when that is at or after `target`.
        let mut from = 0;
        while let Some(cut) = usize::try_from(target.saturating_sub(offset + 1))
            .ok()
            .filter(|at| *at < read)
        {
            let Some(found) = memchr::memchr(b'\n', &block[cut..]) else {
                break;
            };
            let at = cut + found;
            lines += count_breaks(&block[from..=at]);
            from = at + 1;
            let start = offset + from as u64;
            if start < length {
                starts.push(Position {
                    offset: start,
                    line: lines + 1,
                });
            }
            target = (start / split_bytes + 1) * split_bytes;
        }
        lines += count_breaks(&block[from..]);
        offset += read as u64;
    }
    Ok(starts)
}

/// The line breaks in `bytes`: an input's every byte is read here once, before any record, so
/// 64 bytes at a time, summed as bytes (which the compiler turns into vector compares).
fn count_breaks(bytes: &[u8]) -> u64 {
    let blocks = bytes.chunks_exact(64);
    let tail = blocks.remainder();
    let mut count = 0;
    for block in blocks {
        let breaks: u8 = block.iter().map(|&byte| u8::from(byte == b'\n')).sum();
        count += u64::from(breaks);
    }
    count + tail.iter().filter(|&&byte| byte == b'\n').count() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn starts(text: &str, size: u64, rule: Splittable) -> Vec<(u64, u64)> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, text).unwrap();
        chunk_starts(&path, size, rule)
            .unwrap()
            .into_iter()
            .map(|p| (p.offset, p.line))
            .collect()
    }

    #[test]
    fn cuts_fall_at_the_first_line_start_at_or_after_each_multiple() {
        // Lines start at 0, 4, 8, 12, 16.
        let text = "aaa\nbbb\nccc\nddd\neee\n";
        assert_eq!(
            starts(text, 5, Splittable::Lines),
            [(8, 3), (12, 4), (16, 5)]
        );
        assert_eq!(starts(text, 8, Splittable::Lines), [(8, 3), (16, 5)]);
        assert_eq!(starts(text, 100, Splittable::Lines), []);
        assert_eq!(starts(text, 0, Splittable::Lines), []);
        assert_eq!(starts(text, 5, Splittable::No), []);
        // A line longer than the split size makes one chunk of it, never an empty one.
        // Lines start at 0, 2, 15 and 17: the cuts wanted at 3, 6, 9 and 12 all fall at 15.
        let long = "a\nbbbbbbbbbbbb\nc\nd";
        assert_eq!(starts(long, 3, Splittable::Lines), [(15, 3)]);
        // No cut at the very end (after a trailing line break).
        assert_eq!(starts("ab\ncd\n", 2, Splittable::Lines), [(3, 2)]);
    }

    /// The cuts, found line break by line break.
    fn plain_cuts(text: &[u8], split_bytes: u64) -> Vec<(u64, u64)> {
        let (mut cuts, mut target) = (Vec::new(), split_bytes);
        let breaks = text.iter().enumerate().filter(|(_, byte)| **byte == b'\n');
        for (lines, (at, _)) in breaks.enumerate() {
            let start = at as u64 + 1;
            if start >= target && start < text.len() as u64 {
                cuts.push((start, lines as u64 + 2));
                target = (start / split_bytes + 1) * split_bytes;
            }
        }
        cuts
    }

    proptest::proptest! {
        /// Reading in blocks of any size, with cuts of any size, finds the cuts a plain walk
        /// over every line break finds.
        #[test]
        fn blocks_of_any_size_find_the_same_cuts(
            lines in proptest::collection::vec(0usize..12, 0..40),
            split_bytes in 1u64..30,
            block in 1usize..20,
        ) {
            let text: Vec<u8> = lines
                .iter()
                .flat_map(|len| std::iter::repeat_n(b'x', *len).chain([b'\n']))
                .collect();
            let found = scan(&text[..], text.len() as u64, split_bytes, Splittable::Lines, &mut vec![0; block])
                .unwrap()
                .into_iter()
                .map(|p| (p.offset, p.line))
                .collect::<Vec<_>>();
            proptest::prop_assert_eq!(found, plain_cuts(&text, split_bytes));
        }
    }

    #[test]
    fn a_csv_file_with_a_quote_is_not_split() {
        let text = "a,b\n1,2\n3,\"x\ny\"\n5,6\n";
        assert_eq!(starts(text, 4, Splittable::LinesUnlessQuoted), []);
        let text = "a,b\n1,2\n3,4\n5,6\n";
        assert_eq!(
            starts(text, 4, Splittable::LinesUnlessQuoted),
            [(4, 2), (8, 3), (12, 4)]
        );
    }
}
