//! The file source: one file or a directory of files, each file one partition, or several
//! when it is large.
//!
//! Files are listed once at start (sorted by name; symbolic links are followed to regular files;
//! hidden entries are skipped, and other entries that are not files with a warning: see
//! [`input_files`]). A file longer than the split size ([`FileSource::split_bytes`], 8 MiB by
//! default) is cut into chunks at line starts (`split.rs`), each its own partition, so that one
//! large file is read by every worker. Partitions are numbered file by file, chunk by chunk, and
//! partition `p` is read by worker `p % workers`. A worker reads its files side by side, a slice
//! of each in turn, so each file's watermark advances with its own records; the chunks of one
//! file it reads one after the other, having read the first record of each at the start, so
//! that a chunk not yet reached holds the watermark at its own first event time (where its
//! records start) rather than at 0, and windows close as the chunks being read advance. The record format is a [`FileFormat`]: [`JsonLines`] or
//! [`Csv`], each decoding with serde by default or with a function of yours. A record that
//! cannot be decoded, or is longer than [`FileSource::max_record_bytes`], is handled by the
//! source's [`OnError`] policy.
//!
//! With [`FileSource::watch`] the source is continuous: it re-lists the directory every poll
//! interval and reads each new file as a new partition, and never finishes on its own.
//! Without it, the source is replayable ([`Source::replayable`]): a record's [`Position`] is
//! the byte offset in its file where the reader starts reading it and the 1-based line number
//! there, so a job resumed from a snapshot reads each file from there on and still names the
//! right lines in errors.

mod csv;
mod csv_fast;
#[cfg(test)]
mod fuzz;
mod jsonl;
mod listing;
mod split;

use std::collections::HashSet;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub(crate) use self::csv::{
    ends_in_open_quote, read_csv_record_capped, CsvRecordParser, CsvRows, OPEN_QUOTE,
};
pub use self::csv::{Csv, RowDecoder};
pub use self::jsonl::JsonLines;
pub(crate) use self::jsonl::{decode_line, read_line_capped, LineDecoder};
pub use self::listing::input_files;
pub use self::split::{Splittable, DEFAULT_SPLIT_BYTES};

use super::bad_input::{BadInputHandler, Handled, DEFAULT_MAX_RECORD_BYTES};
use super::{OnError, Position, ReadError, Source, SourceBatch, SourceContext, SourceStatus};
use crate::error::Error;

/// Records read per partition per call.
const BATCH: usize = 1024;

/// How records are laid out in a file.
pub trait FileFormat: 'static {
    /// The records decoded.
    type Item: 'static;
    /// Reads one open file.
    type Reader: RecordReader<Item = Self::Item>;
    /// Starts reading `file`, found at `path`, whose records are at most `max_record_bytes`
    /// long (a longer one is a [`ReadError::Bad`] record, and the reader must not buffer much
    /// past the limit to find that out).
    fn open(&self, path: &Path, file: File, max_record_bytes: usize)
        -> Result<Self::Reader, Error>;
    /// Whether a large file may be cut into chunks read by different workers. By default, no.
    fn splittable(&self) -> Splittable {
        Splittable::No
    }
}

/// Reads the records of one file in order.
pub trait RecordReader: 'static {
    /// The records decoded.
    type Item;
    /// The next record, or `None` at the end of the file. A record that cannot be decoded is a
    /// [`ReadError::Bad`] with its line, reason and raw text, after which reading goes on with
    /// the next record; an I/O failure is a [`ReadError::Fatal`] naming the file.
    fn next_record(&mut self) -> Result<Option<Self::Item>, ReadError>;
    /// Where the next call to [`RecordReader::next_record`] starts reading: a byte offset in
    /// the file and the 1-based line number there (the end of the file once it is read). A
    /// bad record, once returned, is behind it. Called for every record: keep it cheap.
    fn position(&self) -> Position;
    /// Goes back or forward to `position`, one that [`RecordReader::position`] gave over the
    /// same file: the next record read is the one read after it was given, with the same line
    /// numbers. A failure is an [`Error::Io`] naming the file.
    fn seek(&mut self, position: Position) -> Result<(), Error>;
}

/// Reads JSON lines or CSV from a file or a directory of files.
///
/// # Examples
/// ```no_run
/// use std::time::Duration;
/// use tideflow::{sink::ConsoleSink, source::{FileSource, JsonLines}, Config};
///
/// #[derive(serde::Deserialize, serde::Serialize, Clone)]
/// struct Click { user: String, ts: u64 }
///
/// tideflow::execute(Config::default(), |flow| {
///     flow.source(FileSource::new("clicks/", JsonLines::<Click>::serde()))
///         .with_event_time(|c| c.ts)
///         .with_watermark(Duration::from_secs(5))
///         .sink(ConsoleSink::json());
///     Ok(())
/// })?;
/// # Ok::<(), tideflow::Error>(())
/// ```
pub struct FileSource<F: FileFormat> {
    path: PathBuf,
    format: F,
    on_error: OnError,
    max_record_bytes: usize,
    handler: Option<BadInputHandler>,
    /// This worker's files, each with its reader until the file is exhausted.
    /// Index `p` is local partition `p`; a watching worker with no file at start has a
    /// placeholder entry (no path, no reader) so that it holds the watermark.
    readers: Vec<(PathBuf, Option<F::Reader>)>,
    /// Per local partition, where its exhausted file ended (default while it is open).
    ends: Vec<Position>,
    /// Per local partition, the chunk it reads: its file's number in the listing, and the
    /// offset where the next chunk starts (`None`: to the end of the file).
    chunks: Vec<(usize, Option<u64>)>,
    /// Per local partition, whether a record has been read from it.
    began: Vec<bool>,
    split_bytes: u64,
    next: usize,
    watch: Option<Watch>,
}

/// The state of a watched directory.
struct Watch {
    poll_interval: Duration,
    last_poll: Instant,
    context: SourceContext,
    /// Every file listed so far, by any worker's count.
    seen: HashSet<PathBuf>,
    /// The entries skipped with a warning so far (worker 0 warns).
    warned: HashSet<PathBuf>,
    /// How many files have been listed so far: a new file's number, which picks its worker.
    discovered: usize,
    /// A partition kept unfinished, although exhausted, because it was this worker's last open
    /// one: it holds the watermark at its last value until a new file arrives.
    held: Option<usize>,
}

impl<F: FileFormat> FileSource<F> {
    /// Reads `path` (a file, or every visible file in a directory) in `format`.
    pub fn new(path: impl Into<PathBuf>, format: F) -> Self {
        FileSource {
            path: path.into(),
            format,
            on_error: OnError::Fail,
            max_record_bytes: DEFAULT_MAX_RECORD_BYTES,
            handler: None,
            readers: Vec::new(),
            ends: Vec::new(),
            chunks: Vec::new(),
            began: Vec::new(),
            split_bytes: DEFAULT_SPLIT_BYTES,
            next: 0,
            watch: None,
        }
    }

    /// Keeps watching the directory: every `poll_interval` it is listed again and each new
    /// file becomes a new partition, so the source never finishes on its own (the job runs
    /// until it is stopped: [`StopHandle`](crate::StopHandle), or the process ends). By default, the directory is listed once and the source
    /// finishes when every file is read.
    ///
    /// New files are numbered in discovery order (the files of one listing in name order,
    /// after every file seen before) and file `n` is read by worker `n % workers`. Put a file
    /// in place whole (write it elsewhere, then rename it into the directory): a file is read
    /// up to its end once, and what is appended to it after that is not read. A file that
    /// has been read to its end stops holding the watermark back, except a worker's last open
    /// one: while a worker has no file open, its watermark stays where it was (and at 0 on a
    /// worker that has had no file yet), so windows close only as new files bring later
    /// event times. An idle timeout or processing-time heartbeat (DESIGN.md "Time") is what
    /// lets windows close on a quiet directory.
    pub fn watch(mut self, poll_interval: Duration) -> Self {
        self.watch = Some(Watch {
            poll_interval,
            last_poll: Instant::now(),
            context: SourceContext {
                worker_index: 0,
                peers: 1,
            },
            seen: HashSet::new(),
            warned: HashSet::new(),
            discovered: 0,
            held: None,
        });
        self
    }

    /// Cuts every file longer than `bytes` into chunks at line starts near each multiple of
    /// `bytes`, each chunk a partition, where the format allows it ([`FileFormat::splittable`]:
    /// JSON lines always, CSV when the file has no `"`); 0 never splits. By default,
    /// [`DEFAULT_SPLIT_BYTES`] (8 MiB). A watched directory's files are never split.
    ///
    /// The chunks depend on the file and this size only, not on the number of workers, so
    /// neither do the results. Each chunk has its own watermark: a record is late when it is
    /// behind its own chunk's watermark (as for one file of a directory), so with records out
    /// of order by more than the watermark delay, which records are late may differ at the
    /// cuts from an unsplit file.
    pub fn split_bytes(mut self, bytes: u64) -> Self {
        self.split_bytes = bytes;
        self
    }

    /// Opens `path` as this worker's next partition: file number `file` of the listing, from
    /// `start` (the beginning if `None`) up to the byte offset `limit` (the end if `None`).
    fn open(
        &mut self,
        path: &Path,
        file: usize,
        start: Option<Position>,
        limit: Option<u64>,
    ) -> Result<(), Error> {
        let handle = File::open(path)
            .map_err(|e| Error::io(format!("cannot open {}", path.display()), e))?;
        let mut reader = self.format.open(path, handle, self.max_record_bytes)?;
        if let Some(start) = start {
            reader.seek(start)?;
        }
        self.readers.push((path.to_path_buf(), Some(reader)));
        self.ends.push(Position::default());
        self.chunks.push((file, limit));
        self.began.push(false);
        Ok(())
    }

    /// Per local partition, whether it is the first open chunk of its file on this worker (a
    /// file's local partitions are next to each other: partitions are numbered file by file).
    fn leading(&self) -> Vec<bool> {
        let mut leading = Vec::with_capacity(self.readers.len());
        let mut open_seen: Option<usize> = None;
        for (partition, (_, reader)) in self.readers.iter().enumerate() {
            let file = self.chunks[partition].0;
            leading.push(reader.is_some() && open_seen != Some(file));
            if reader.is_some() {
                open_seen = Some(file);
            }
        }
        leading
    }

    /// Lists a watched directory again, if its poll interval has passed, and opens this
    /// worker's share of the new files as new partitions.
    fn poll_directory(&mut self, batch: &mut SourceBatch<F::Item>) -> Result<(), Error> {
        let Some(watch) = self.watch.as_mut() else {
            return Ok(());
        };
        if watch.last_poll.elapsed() < watch.poll_interval {
            return Ok(());
        }
        watch.last_poll = Instant::now();
        let mut mine = Vec::new();
        let listing = listing::list(&self.path)?;
        if watch.context.worker_index == 0 {
            listing.warn_skipped(&mut watch.warned);
        }
        for path in listing.files {
            if watch.seen.insert(path.clone()) {
                let number = watch.discovered;
                watch.discovered += 1;
                if number % watch.context.peers.max(1) == watch.context.worker_index {
                    mine.push((number, path));
                }
            }
        }
        if mine.is_empty() {
            return Ok(());
        }
        if let Some(held) = watch.held.take() {
            batch.finish_partition(held);
        }
        for (file, path) in mine {
            self.open(&path, file, None, None)?;
            batch.add_partition();
        }
        Ok(())
    }

    /// Sets what to do with a record that cannot be decoded. By default, [`OnError::Fail`]:
    /// the first bad record stops the job.
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    /// use tideflow::{sink::MemorySink, source::{FileSource, JsonLines, OnError}, Config};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let input = dir.path().join("in.jsonl");
    /// std::fs::write(&input, "1\n\"two\"\n3\n").unwrap();
    /// let sink = MemorySink::new();
    /// let output = sink.clone();
    /// let report = tideflow::execute(Config::default(), move |flow| {
    ///     flow.source(FileSource::new(&input, JsonLines::<u64>::serde()).on_error(OnError::Skip))
    ///         .with_event_time(|t| *t)
    ///         .with_watermark(Duration::ZERO)
    ///         .sink(output.clone());
    ///     Ok(())
    /// })?;
    /// let mut seen = sink.take();
    /// seen.sort();
    /// assert_eq!(seen, vec![1, 3]);
    /// assert_eq!((report.records_in, report.records_skipped), (2, 1));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn on_error(mut self, policy: OnError) -> Self {
        self.on_error = policy;
        self
    }

    /// Sets the longest record accepted, in bytes (a JSON line without its line terminator,
    /// or a CSV record). A longer record is a bad record ("record is longer than N bytes"),
    /// handled by the [`OnError`] policy. By default, 1 MiB
    /// ([`DEFAULT_MAX_RECORD_BYTES`](super::DEFAULT_MAX_RECORD_BYTES)).
    ///
    /// JSON lines stop being buffered at the limit. A CSV record is checked once the `csv`
    /// crate has read it whole, so one over-long CSV record is held in memory.
    pub fn max_record_bytes(mut self, max: usize) -> Self {
        self.max_record_bytes = max;
        self
    }
}

impl<F: FileFormat> Source for FileSource<F> {
    type Item = F::Item;

    fn on_start(&mut self, context: &SourceContext) -> Result<(), Error> {
        let listing = listing::list(&self.path)?;
        // Worker 0 warns of what is skipped, once per path.
        let mut warned = HashSet::new();
        if context.worker_index == 0 {
            listing.warn_skipped(&mut warned);
        }
        let files = listing.files;
        self.handler = Some(BadInputHandler::new(&self.on_error)?);
        // Every worker cuts every file the same way, and opens its own share of the chunks.
        let mut partitions = Vec::new();
        for (file, path) in files.iter().enumerate() {
            let starts = match self.watch {
                Some(_) => Vec::new(),
                None => split::chunk_starts(path, self.split_bytes, self.format.splittable())?,
            };
            let mut start = None;
            for next in starts.into_iter().map(Some).chain([None]) {
                partitions.push((file, start, next.map(|p: Position| p.offset)));
                start = next;
            }
        }
        for index in context.local_partitions(partitions.len()) {
            let (file, start, limit) = partitions[index];
            self.open(&files[file], file, start, limit)?;
        }
        if let Some(watch) = self.watch.as_mut() {
            watch.context = *context;
            watch.discovered = files.len();
            watch.seen = files.into_iter().collect();
            watch.warned = warned;
            watch.last_poll = Instant::now();
            if self.readers.is_empty() {
                self.readers.push((PathBuf::new(), None));
                self.ends.push(Position::default());
                self.chunks.push((usize::MAX, None));
                self.began.push(true);
                watch.held = Some(0);
            }
        }
        Ok(())
    }

    fn partitions(&self) -> usize {
        self.readers.len()
    }

    fn read(&mut self, batch: &mut SourceBatch<F::Item>) -> Result<SourceStatus, Error> {
        self.poll_directory(batch)?;
        let Some(handler) = self.handler.as_ref() else {
            return Err(Error::Internal("FileSource::read before on_start".into()));
        };
        let open = self.readers.iter().filter(|(_, r)| r.is_some()).count();
        // A partition may be read now if it has not read a record yet, or if it is the first
        // open chunk of its file here.
        let leading = self.leading();
        let readable = (0..self.readers.len())
            .filter(|&p| self.readers[p].1.is_some() && (leading[p] || !self.began[p]))
            .count();
        if open == 0 {
            handler.flush()?;
            return Ok(match &self.watch {
                None => SourceStatus::Done,
                Some(watch) => SourceStatus::Wait(
                    watch
                        .poll_interval
                        .saturating_sub(watch.last_poll.elapsed()),
                ),
            });
        }
        let per_file = (BATCH / readable.max(1)).max(1);
        for _ in 0..self.readers.len() {
            let partition = self.next;
            self.next = (self.next + 1) % self.readers.len();
            let leading = leading[partition];
            if !leading && self.began[partition] {
                continue;
            }
            // A chunk not yet reached (a later chunk of a file with an earlier one still open
            // here) reads up to its first record only.
            let take = if leading { per_file } else { BATCH };
            let limit = self.chunks[partition].1;
            for _ in 0..take {
                if !leading && self.began[partition] {
                    break;
                }
                let (path, Some(reader)) = &mut self.readers[partition] else {
                    break;
                };
                let position = reader.position();
                let next = match limit {
                    Some(limit) if position.offset >= limit => Ok(None),
                    _ => reader.next_record(),
                };
                match next {
                    Ok(Some(record)) => {
                        self.began[partition] = true;
                        batch.push_at(partition, record, position);
                    }
                    Ok(None) => {
                        self.ends[partition] = reader.position();
                        self.readers[partition].1 = None;
                        let last_open = self.readers.iter().all(|(_, r)| r.is_none());
                        match self.watch.as_mut() {
                            Some(watch) if last_open => watch.held = Some(partition),
                            // The driver reads no more once every partition is finished: the
                            // dead letters are written out now, and an error stops the job.
                            None if last_open => {
                                handler.finish()?;
                                batch.finish_partition(partition);
                            }
                            _ => batch.finish_partition(partition),
                        }
                    }
                    Err(ReadError::Fatal(error)) => return Err(error),
                    Err(ReadError::Bad(record)) => match handler.handle(path, record)? {
                        Handled::Skipped => batch.count_skipped(1),
                        Handled::DeadLettered => batch.count_dead_lettered(1),
                    },
                }
            }
        }
        Ok(SourceStatus::Ready)
    }

    /// Replayable unless it watches a directory, whose files come and go.
    fn replayable(&self) -> bool {
        self.watch.is_none()
    }

    fn position(&self, partition: usize) -> Position {
        match self.readers.get(partition) {
            Some((_, Some(reader))) => reader.position(),
            Some((_, None)) => self.ends[partition],
            None => Position::default(),
        }
    }

    fn seek(&mut self, partition: usize, position: Position) -> Result<(), Error> {
        if self.watch.is_some() {
            return Err(Error::Config(format!(
                "a watched directory ({}) cannot be replayed from a snapshot",
                self.path.display()
            )));
        }
        let Some((path, Some(reader))) = self.readers.get_mut(partition) else {
            return Err(Error::Internal(format!(
                "FileSource::seek: no open local partition {partition}"
            )));
        };
        // A position past the end means the file is not the one the snapshot was taken of.
        let length = std::fs::metadata(&*path)
            .map_err(|e| Error::io(format!("cannot read {}", path.display()), e))?
            .len();
        if position.offset > length {
            return Err(Error::Input {
                path: path.clone(),
                line: position.line,
                reason: format!(
                    "cannot resume at byte {}: the file is only {length} bytes long (it changed since the snapshot)",
                    position.offset
                ),
            });
        }
        reader.seek(position)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::memory::tests::read_all;

    /// Checks that `make(policy)` is replayable: read whole (bad records skipped) it gives
    /// records on `lines` (each record is its line number); sought to each record's position
    /// (and to the end), it reads the records from there on, and under `OnError::Fail` stops
    /// at the first of `bad_lines` after that record, with its line number.
    fn check_replay<F: FileFormat>(
        make: impl Fn(OnError) -> FileSource<F>,
        line_of: impl Fn(&F::Item) -> u64,
        lines: &[u64],
        bad_lines: &[u64],
    ) {
        let mut first = make(OnError::Skip);
        assert!(first.replayable());
        let all = read_all(&mut first, 0, 1, &[]).unwrap();
        let read_lines: Vec<u64> = all.records.iter().map(|r| line_of(&r.2)).collect();
        assert_eq!(read_lines, lines);
        assert_eq!(all.finished, vec![0]);
        let end = first.position(0);
        let mut positions: Vec<Position> = all.records.iter().map(|r| r.1).collect();
        positions.push(end);
        for (skip, &at) in positions.iter().enumerate() {
            let mut resumed = make(OnError::Skip);
            let read = read_all(&mut resumed, 0, 1, &[(0, at)]).unwrap();
            let read_lines: Vec<u64> = read.records.iter().map(|r| line_of(&r.2)).collect();
            assert_eq!(read_lines, lines[skip..], "from {at:?}");
            let positions: Vec<Position> = read.records.iter().map(|r| r.1).collect();
            assert_eq!(
                positions,
                all.records[skip..].iter().map(|r| r.1).collect::<Vec<_>>()
            );
            assert_eq!(read.finished, vec![0], "from {at:?}");
            assert_eq!(resumed.position(0), end);
            let after = lines.get(skip).copied().unwrap_or(u64::MAX);
            let bad = bad_lines.iter().copied().find(|&line| line > after);
            let result = read_all(&mut make(OnError::Fail), 0, 1, &[(0, at)]);
            match (bad, result) {
                (None, Ok(read)) => assert_eq!(read.records.len(), lines.len() - skip),
                (Some(bad), Err(Error::Input { line, .. })) => {
                    assert_eq!(line, bad, "from {at:?}")
                }
                (bad, result) => panic!("from {at:?}: bad line {bad:?}, got {:?}", result.err()),
            }
        }
    }

    #[test]
    fn json_lines_resume_at_a_record_with_its_line_numbers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("in.jsonl");
        let text = "1\n\n3\r\n\"bad\"\n5\n   \n7\nnot json\n9";
        std::fs::write(&path, text).unwrap();
        let make = |policy| FileSource::new(&path, JsonLines::<u64>::serde()).on_error(policy);
        check_replay(make, |n| *n, &[1, 3, 5, 7, 9], &[4, 8]);
        let mut first = make(OnError::Skip);
        read_all(&mut first, 0, 1, &[]).unwrap();
        let end = first.position(0);
        assert_eq!((end.offset, end.line), (text.len() as u64, 10));
        // A position past the end of the file: the input changed.
        let past = Position {
            offset: end.offset + 1,
            line: 10,
        };
        let error = read_all(&mut make(OnError::Skip), 0, 1, &[(0, past)])
            .err()
            .unwrap();
        let message = error.to_string();
        assert!(
            message.contains("in.jsonl:10: cannot resume at byte"),
            "{message}"
        );
    }

    #[derive(serde::Deserialize)]
    struct Line {
        ts: u64,
        #[allow(dead_code)]
        k: String,
    }

    #[test]
    fn csv_resumes_at_a_record_with_its_header_and_line_numbers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("in.csv");
        let text = "ts,k\r\n2,a\r\n\r\n4,\"x\ny\"\r\n6\n7,b\r\nx,e\r\n\"9\",\"c\"\r\n10,d";
        std::fs::write(&path, text).unwrap();
        let make = |policy| FileSource::new(&path, Csv::<Line>::serde()).on_error(policy);
        check_replay(make, |line: &Line| line.ts, &[2, 4, 7, 9, 10], &[6, 8]);
        // Ended by a newline, the end is the file's length.
        std::fs::write(&path, "ts,k\n2,a\n").unwrap();
        let mut first = make(OnError::Skip);
        read_all(&mut first, 0, 1, &[]).unwrap();
        assert_eq!(first.position(0).offset, 9);
        check_replay(make, |line: &Line| line.ts, &[2], &[]);
    }

    /// A file longer than the split size is cut into chunks: 1, 2 and 3 workers read every
    /// record once, each with its line number; a worker reads the first record of each of its
    /// chunks first, then its chunks in order; and a chunk resumes at any of its records.
    #[test]
    fn a_large_file_is_split_into_chunks_read_by_every_worker() {
        let dir = tempfile::tempdir().unwrap();
        for (name, header, split) in [
            ("in.jsonl", "", Splittable::Lines),
            ("in.csv", "ts,k\n", Splittable::LinesUnlessQuoted),
        ] {
            let path = dir.path().join(name);
            let body: String = (0..200)
                .map(|n| {
                    if name.ends_with("csv") {
                        format!("{n},k{n}\n")
                    } else {
                        format!("{n}\n")
                    }
                })
                .collect();
            std::fs::write(&path, format!("{header}{body}")).unwrap();
            let starts = split::chunk_starts(&path, 100, split).unwrap();
            assert!(starts.len() > 4, "{name}: {starts:?}");
            let first_line = if header.is_empty() { 1 } else { 2 };
            let read =
                |worker, peers, seeks: &[(usize, Position)]| -> Vec<(usize, Position, u64)> {
                    if name.ends_with("csv") {
                        let mut source =
                            FileSource::new(&path, Csv::<Line>::serde()).split_bytes(100);
                        let read = read_all(&mut source, worker, peers, seeks).unwrap();
                        read.records
                            .into_iter()
                            .map(|(p, at, line)| (p, at, line.ts))
                            .collect()
                    } else {
                        let mut source =
                            FileSource::new(&path, JsonLines::<u64>::serde()).split_bytes(100);
                        read_all(&mut source, worker, peers, seeks).unwrap().records
                    }
                };
            for peers in 1..=3 {
                let mut all = Vec::new();
                for worker in 0..peers {
                    let records = read(worker, peers, &[]);
                    // Chunks are read one after the other (past their first records).
                    let first_of = |c| records.iter().position(|r| r.0 == c).unwrap();
                    let order: Vec<usize> = records
                        .iter()
                        .enumerate()
                        .filter(|(i, r)| *i != first_of(r.0))
                        .map(|(_, r)| r.0)
                        .collect();
                    assert!(order.is_sorted(), "{name} {worker}/{peers}: {order:?}");
                    for (_, at, n) in &records {
                        assert_eq!(at.line, n + first_line, "{name}: line of record {n}");
                    }
                    all.extend(records.into_iter().map(|r| r.2));
                }
                all.sort_unstable();
                assert_eq!(
                    all,
                    (0..200).collect::<Vec<_>>(),
                    "{name} on {peers} workers"
                );
            }
            // The first read starts every chunk: each holds the watermark at its own records.
            let mut source = FileSource::new(&path, JsonLines::<u64>::serde()).split_bytes(100);
            if name.ends_with("jsonl") {
                let context = SourceContext {
                    worker_index: 0,
                    peers: 1,
                };
                source.on_start(&context).unwrap();
                source.read(&mut SourceBatch::new()).unwrap();
                assert!(source.began.iter().all(|b| *b), "{:?}", source.began);
            }
            // Worker 1 of 2 resumes its second chunk (global chunk 3) at its fifth record.
            let mine = read(1, 2, &[]);
            let chunk: Vec<_> = mine.iter().filter(|r| r.0 == 1).collect();
            let resumed = read(1, 2, &[(1, chunk[4].1)]);
            let got: Vec<u64> = resumed.iter().filter(|r| r.0 == 1).map(|r| r.2).collect();
            let want: Vec<u64> = chunk[4..].iter().map(|r| r.2).collect();
            assert_eq!(got, want, "{name}");
        }
    }

    #[test]
    fn local_partitions_of_two_workers_are_the_global_files() {
        let dir = tempfile::tempdir().unwrap();
        for (name, base) in [("a.jsonl", 100), ("b.jsonl", 200), ("c.jsonl", 300)] {
            let text = format!("{}\n{}\n", base, base + 1);
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        let make = || FileSource::new(dir.path(), JsonLines::<u64>::serde());
        for (worker, files) in [(0, vec![100, 300]), (1, vec![200])] {
            let mut mine = make();
            let read = read_all(&mut mine, worker, 2, &[]).unwrap();
            assert_eq!(mine.partitions(), files.len());
            for (local, position, record) in read.records {
                assert_eq!(record - record % 100, files[local]);
                assert_eq!(position.line, record % 100 + 1);
            }
        }
        // Worker 0 resumes global file 2 (its local partition 1) at its second record.
        let at = Position { offset: 4, line: 2 };
        let read = read_all(&mut make(), 0, 2, &[(1, at)]).unwrap();
        let records: Vec<u64> = read.records.iter().map(|r| r.2).collect();
        assert_eq!(records, vec![100, 101, 301]);
        // A watched directory is not replayable.
        let mut watched = make().watch(Duration::from_secs(1));
        assert!(!watched.replayable());
        watched
            .on_start(&SourceContext {
                worker_index: 0,
                peers: 1,
            })
            .unwrap();
        assert!(watched.seek(0, at).is_err());
    }
}
