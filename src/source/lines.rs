//! The machinery the live line sources ([`SocketSource`](super::SocketSource) and
//! [`StdinSource`](super::StdinSource)) share: a background thread reads text lines from a
//! blocking reader into a bounded channel, and worker 0 drains and decodes them.
//!
//! The thread only splits lines (capped at the record size limit); decoding and the
//! [`OnError`] policy run on the worker, so records need not be `Send`. The channel is bounded,
//! so a slow dataflow makes the thread stop reading and the peer's writes block: back-pressure
//! reaches the producer.

use std::io::{self, BufRead};
use std::path::PathBuf;
use std::sync::mpsc::{sync_channel, Receiver, TryRecvError};
use std::sync::Arc;
use std::time::Duration;

use super::bad_input::{BadInputHandler, Handled};
use super::file::{decode_line, read_line_capped, LineDecoder};
use super::{OnError, ReadError, SourceBatch, SourceContext, SourceStatus};
use crate::error::Error;

/// Lines held between the reading thread and the worker.
const CHANNEL_LINES: usize = 8192;
/// Lines decoded per read call.
const BATCH: usize = 4096;
/// How long the worker waits before looking again when no line is ready.
const IDLE_WAIT: Duration = Duration::from_millis(2);

/// What the reading thread sends.
enum Message {
    /// A line: its 1-based number, its whole length, and at most `max + 1` of its bytes.
    Line {
        number: u64,
        length: usize,
        bytes: Vec<u8>,
    },
    /// Reading failed; the thread has stopped.
    Failed(io::Error),
}

/// The worker side of a live line source: one partition, on worker 0.
pub(crate) struct LineChannel<T> {
    /// The input's name in errors and dead letters: `tcp://ADDR` or `stdin`.
    name: PathBuf,
    decode: Arc<LineDecoder<T>>,
    on_error: OnError,
    max_record_bytes: usize,
    /// Set on worker 0 once reading has started.
    reading: Option<(Receiver<Message>, BadInputHandler)>,
}

impl<T: 'static> LineChannel<T> {
    pub(crate) fn new(name: String, decode: Arc<LineDecoder<T>>) -> Self {
        LineChannel {
            name: PathBuf::from(name),
            decode,
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

    /// Starts a thread, named `thread_name`, that reads lines from `open()` until its end.
    pub(crate) fn start<R, O>(&mut self, thread_name: &str, open: O) -> Result<(), Error>
    where
        R: BufRead,
        O: FnOnce() -> R + Send + 'static,
    {
        let handler = BadInputHandler::new(&self.on_error)?;
        let (sender, receiver) = sync_channel(CHANNEL_LINES);
        let max = self.max_record_bytes;
        std::thread::Builder::new()
            .name(thread_name.to_string())
            .spawn(move || {
                let mut reader = open();
                let mut number = 0;
                loop {
                    let mut bytes = Vec::new();
                    let message = match read_line_capped(&mut reader, &mut bytes, max) {
                        Ok(Some(length)) => {
                            number += 1;
                            Message::Line {
                                number,
                                length,
                                bytes,
                            }
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
        self.reading = Some((receiver, handler));
        Ok(())
    }

    /// The number of partitions: 1 on the reading worker, else 0.
    pub(crate) fn partitions(&self) -> usize {
        usize::from(self.reading.is_some())
    }

    /// Decodes the lines that are ready into partition 0 of `batch`.
    pub(crate) fn read(&mut self, batch: &mut SourceBatch<T>) -> Result<SourceStatus, Error> {
        let Some((receiver, handler)) = self.reading.as_ref() else {
            return Ok(SourceStatus::Done);
        };
        for _ in 0..BATCH {
            let (number, length, mut bytes) = match receiver.try_recv() {
                Ok(Message::Line {
                    number,
                    length,
                    bytes,
                }) => (number, length, bytes),
                Ok(Message::Failed(error)) => {
                    return Err(Error::io(format!("cannot read {}", self.name()), error))
                }
                Err(TryRecvError::Empty) => {
                    handler.flush()?;
                    return Ok(if batch.is_empty() {
                        SourceStatus::Wait(IDLE_WAIT)
                    } else {
                        SourceStatus::Ready
                    });
                }
                Err(TryRecvError::Disconnected) => {
                    handler.flush()?;
                    return Ok(SourceStatus::Done);
                }
            };
            let max = self.max_record_bytes;
            match decode_line(&*self.decode, &mut bytes, length, number, max) {
                Ok(Some(record)) => batch.push(0, record),
                Ok(None) => {}
                Err(ReadError::Fatal(error)) => return Err(error),
                Err(ReadError::Bad(record)) => match handler.handle(&self.name, record)? {
                    Handled::Skipped => batch.count_skipped(1),
                    Handled::DeadLettered => batch.count_dead_lettered(1),
                },
            }
        }
        Ok(SourceStatus::Ready)
    }
}
