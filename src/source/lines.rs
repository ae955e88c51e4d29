//! The machinery the live line sources ([`SocketSource`](super::SocketSource) and
//! [`StdinSource`](super::StdinSource)) share: a background thread cuts a blocking reader's
//! input into records and sends them through a bounded channel, and worker 0 drains and
//! decodes them.
//!
//! The thread only frames records, capped at the record size limit: a line for JSON lines, a
//! line or more for CSV (a quoted field may span lines). Decoding, the CSV header and the
//! [`OnError`] policy run on the worker, so records need not be `Send`. The channel is
//! bounded, so a slow dataflow makes the thread stop reading and the peer's writes block:
//! back-pressure reaches the producer. The worker hands each record's buffer back to the
//! thread for the next one, so reading allocates nothing per record once it is running.

use std::io::{self, BufRead};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TryRecvError};
use std::sync::Arc;
use std::time::Duration;

use csv::ByteRecord;

use super::bad_input::{BadInputHandler, Handled};
use super::file::{
    decode_line, ends_in_open_quote, read_csv_record_capped, read_line_capped, CsvRecordParser,
    CsvRows, LineDecoder, OPEN_QUOTE,
};
use super::{BadRecord, Csv, OnError, ReadError, SourceBatch, SourceContext, SourceStatus};
use crate::error::Error;

/// Records held between the reading thread and the worker.
const CHANNEL_RECORDS: usize = 8192;
/// Records decoded per read call.
const BATCH: usize = 4096;
/// How long the worker waits before looking again when no record is ready.
const IDLE_WAIT: Duration = Duration::from_millis(2);
/// The largest buffer handed back to the reading thread for reuse; a larger one (left by a
/// long record) is freed instead, so that a few long records do not pin their memory.
const REUSED_CAPACITY: usize = 64 * 1024;

/// How a live source's input is laid out.
pub(crate) enum LiveFormat<T> {
    /// One record per line, decoded by the function; blank lines are skipped.
    Lines(Arc<LineDecoder<T>>),
    /// CSV: the first record is the header, and a quoted field may span lines.
    Csv(Csv<T>),
}

impl<T> LiveFormat<T> {
    /// How the reading thread cuts the input into records.
    fn framing(&self) -> Framing {
        match self {
            LiveFormat::Lines(_) => Framing::Lines,
            LiveFormat::Csv(_) => Framing::Csv,
        }
    }
}

/// How the reading thread cuts the input into records.
#[derive(Clone, Copy)]
enum Framing {
    /// A record is a line.
    Lines,
    /// A record ends at a newline outside quotes.
    Csv,
}

impl Framing {
    /// Reads the next record into `bytes` (at most `max + 1` of its bytes): its whole length
    /// and the number of lines it spans, or `None` at the end of the input.
    fn read(
        self,
        reader: &mut impl BufRead,
        bytes: &mut Vec<u8>,
        max: usize,
    ) -> io::Result<Option<(usize, u64)>> {
        match self {
            Framing::Lines => Ok(read_line_capped(reader, bytes, max)?.map(|length| (length, 1))),
            Framing::Csv => read_csv_record_capped(reader, bytes, max),
        }
    }
}

/// What the reading thread sends.
enum Message {
    /// A record: the 1-based line it starts on, its whole length (without its line
    /// terminator), and at most `max + 1` of its bytes.
    Record {
        line: u64,
        length: usize,
        bytes: Vec<u8>,
    },
    /// Reading failed; the thread has stopped.
    Failed(io::Error),
}

/// Decodes the records on the worker.
enum RecordDecoder<T> {
    Lines(Arc<LineDecoder<T>>),
    Csv(CsvDecoder<T>),
}

impl<T> RecordDecoder<T> {
    fn new(format: &LiveFormat<T>) -> Self {
        match format {
            LiveFormat::Lines(decode) => RecordDecoder::Lines(Arc::clone(decode)),
            LiveFormat::Csv(format) => RecordDecoder::Csv(CsvDecoder {
                format: format.clone(),
                parser: CsvRecordParser::new(),
                row: ByteRecord::new(),
                rows: None,
            }),
        }
    }

    /// Decodes the record that starts on line `line` of the input `name`, `length` bytes
    /// long, of which `bytes` holds at most `max + 1`: `None` for a blank record or the CSV
    /// header. A bad record takes its raw text out of `bytes`.
    fn decode(
        &mut self,
        name: &Path,
        bytes: &mut Vec<u8>,
        length: usize,
        line: u64,
        max: usize,
    ) -> Result<Option<T>, ReadError> {
        match self {
            RecordDecoder::Lines(decode) => decode_line(&**decode, bytes, length, line, max),
            RecordDecoder::Csv(csv) => csv.decode(name, bytes, length, line, max),
        }
    }
}

/// Decodes a CSV stream: its first record is the header, the rest are rows.
struct CsvDecoder<T> {
    format: Csv<T>,
    parser: CsvRecordParser,
    /// The fields of the record being decoded, reused for every record.
    row: ByteRecord,
    /// The row decoder, once the header has been read.
    rows: Option<CsvRows<T>>,
}

impl<T> CsvDecoder<T> {
    /// As [`RecordDecoder::decode`]. A header that cannot be read, or that the format
    /// rejects, is fatal, whatever the policy: there is nothing to decode the rows with.
    fn decode(
        &mut self,
        name: &Path,
        bytes: &mut Vec<u8>,
        mut length: usize,
        line: u64,
        max: usize,
    ) -> Result<Option<T>, ReadError> {
        // As for a JSON line, a `\r` before the `\n` is the line terminator's.
        if length <= max + 1 && bytes.last() == Some(&b'\r') {
            bytes.pop();
            length -= 1;
        }
        let header_error = |reason: String| {
            ReadError::Fatal(Error::Input {
                path: name.to_path_buf(),
                line,
                reason,
            })
        };
        let is_header = self.rows.is_none();
        let bad = |bytes: &mut Vec<u8>, reason: String| {
            if is_header {
                return header_error(format!("cannot read the CSV header: {reason}"));
            }
            bytes.truncate(max);
            ReadError::Bad(BadRecord {
                line,
                reason,
                raw: std::mem::take(bytes),
                length: length as u64,
            })
        };
        if length > max {
            return Err(bad(bytes, format!("record is longer than {max} bytes")));
        }
        match self.parser.parse(bytes, &mut self.row) {
            Ok(true) => {}
            Ok(false) => return Ok(None),
            Err(reason) => return Err(bad(bytes, reason)),
        }
        // A record with an open quote ran to the end of the input (a newline inside quotes
        // does not end it); the parser took it as if the quote were closed there.
        if ends_in_open_quote(bytes) {
            return Err(bad(bytes, OPEN_QUOTE.to_string()));
        }
        match &mut self.rows {
            Some(rows) => match rows.decode(&self.row) {
                Ok(record) => Ok(Some(record)),
                Err(reason) => Err(bad(bytes, reason)),
            },
            None => {
                self.rows = Some(self.format.rows(&self.row).map_err(header_error)?);
                Ok(None)
            }
        }
    }
}

/// The worker's end of a running reading thread.
struct Reading<T> {
    records: Receiver<Message>,
    /// Hands record buffers back to the thread.
    reuse: SyncSender<Vec<u8>>,
    handler: BadInputHandler,
    decoder: RecordDecoder<T>,
}

/// The worker side of a live line source: one partition, on worker 0.
pub(crate) struct LineChannel<T> {
    /// The input's name in errors and dead letters: `tcp://ADDR` or `stdin`.
    name: PathBuf,
    format: LiveFormat<T>,
    on_error: OnError,
    max_record_bytes: usize,
    /// Set on worker 0 once reading has started.
    reading: Option<Reading<T>>,
}

impl<T: 'static> LineChannel<T> {
    pub(crate) fn new(name: String, format: LiveFormat<T>) -> Self {
        LineChannel {
            name: PathBuf::from(name),
            format,
            on_error: OnError::Fail,
            max_record_bytes: super::DEFAULT_MAX_RECORD_BYTES,
            reading: None,
        }
    }

    pub(crate) fn set_on_error(&mut self, policy: OnError) {
        self.on_error = policy;
    }

    pub(crate) fn set_max_record_bytes(&mut self, max: usize) {
        self.max_record_bytes = max;
    }

    /// The input's name, as errors show it.
    pub(crate) fn name(&self) -> String {
        self.name.display().to_string()
    }

    /// Whether this worker reads the input: only worker 0 does.
    pub(crate) fn is_reader(context: &SourceContext) -> bool {
        context.worker_index == 0
    }

    /// Starts a thread, named `thread_name`, that reads records from `open()` until its end.
    pub(crate) fn start<R, O>(&mut self, thread_name: &str, open: O) -> Result<(), Error>
    where
        R: BufRead,
        O: FnOnce() -> R + Send + 'static,
    {
        let handler = BadInputHandler::new(&self.on_error)?;
        let (sender, records) = sync_channel(CHANNEL_RECORDS);
        let (reuse, reused) = sync_channel::<Vec<u8>>(CHANNEL_RECORDS);
        let max = self.max_record_bytes;
        let framing = self.format.framing();
        std::thread::Builder::new()
            .name(thread_name.to_string())
            .spawn(move || {
                let mut reader = open();
                let mut line = 1;
                loop {
                    let mut bytes = reused.try_recv().unwrap_or_default();
                    let message = match framing.read(&mut reader, &mut bytes, max) {
                        Ok(Some((length, lines))) => {
                            let message = Message::Record {
                                line,
                                length,
                                bytes,
                            };
                            line += lines;
                            message
                        }
                        // The end of the input: dropping the sender says so.
                        Ok(None) => return,
                        Err(error) => Message::Failed(error),
                    };
                    let failed = matches!(message, Message::Failed(_));
                    // A send fails once the worker has dropped the source: stop reading.
                    if sender.send(message).is_err() || failed {
                        return;
                    }
                }
            })
            .map_err(|e| Error::io(format!("cannot start reading {}", self.name()), e))?;
        self.reading = Some(Reading {
            records,
            reuse,
            handler,
            decoder: RecordDecoder::new(&self.format),
        });
        Ok(())
    }

    /// The number of partitions: 1 on the reading worker, else 0.
    pub(crate) fn partitions(&self) -> usize {
        usize::from(self.reading.is_some())
    }

    /// Decodes the records that are ready into partition 0 of `batch`.
    pub(crate) fn read(&mut self, batch: &mut SourceBatch<T>) -> Result<SourceStatus, Error> {
        let Some(reading) = self.reading.as_mut() else {
            return Ok(SourceStatus::Done);
        };
        for _ in 0..BATCH {
            let (line, length, mut bytes) = match reading.records.try_recv() {
                Ok(Message::Record {
                    line,
                    length,
                    bytes,
                }) => (line, length, bytes),
                Ok(Message::Failed(error)) => {
                    let context = format!("cannot read {}", self.name.display());
                    return Err(Error::io(context, error));
                }
                Err(TryRecvError::Empty) => {
                    reading.handler.flush()?;
                    return Ok(if batch.is_empty() {
                        SourceStatus::Wait(IDLE_WAIT)
                    } else {
                        SourceStatus::Ready
                    });
                }
                Err(TryRecvError::Disconnected) => {
                    reading.handler.finish()?;
                    return Ok(SourceStatus::Done);
                }
            };
            let max = self.max_record_bytes;
            let decoded = reading
                .decoder
                .decode(&self.name, &mut bytes, length, line, max);
            if bytes.capacity() <= REUSED_CAPACITY {
                // Fails only when the thread holds enough buffers already, or has stopped:
                // then this one is freed.
                let _ = reading.reuse.try_send(bytes);
            }
            match decoded {
                Ok(Some(record)) => batch.push(0, record),
                Ok(None) => {}
                Err(ReadError::Fatal(error)) => return Err(error),
                Err(ReadError::Bad(record)) => match reading.handler.handle(&self.name, record)? {
                    Handled::Skipped => batch.count_skipped(1),
                    Handled::DeadLettered => batch.count_dead_lettered(1),
                },
            }
        }
        Ok(SourceStatus::Ready)
    }
}
