//! What a source does with a record it cannot decode: fail, skip it, or write it to a
//! dead-letter file (DESIGN.md "Bad input").
//!
//! A [`RecordReader`](super::RecordReader) reports an undecodable record as a [`BadRecord`]
//! (its line, why, and its raw bytes) inside [`ReadError::Bad`]; I/O failures are
//! [`ReadError::Fatal`] and always stop the job. The source then applies its [`OnError`]
//! policy and counts what it skipped or dead-lettered in the batch, which the runtime adds to
//! [`JobReport`](crate::JobReport).

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, Mutex, OnceLock, Weak};

use base64::Engine as _;
use serde::Serialize;

use crate::error::Error;
use crate::output_file;

/// The longest record a file source accepts by default: 1 MiB.
pub const DEFAULT_MAX_RECORD_BYTES: usize = 1 << 20;

/// What a source does with a record it cannot decode (malformed, wrong types, a missing or
/// invalid event time, invalid UTF-8, too long, the wrong number of CSV fields).
///
/// I/O failures are not bad records: they stop the job whatever the policy.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum OnError {
    /// Stop the job with [`Error::Input`] naming the file, line and reason. The default.
    #[default]
    Fail,
    /// Drop the record, count it in [`JobReport::records_skipped`](crate::JobReport), and go on.
    Skip,
    /// Write the record as one JSON line to this file (created, or truncated, when the job
    /// starts; a new file gets mode 0600, owner only, as it holds raw input), count it in
    /// [`JobReport::records_dead_lettered`](crate::JobReport), and go on. A write, flush or
    /// sync error of the file stops the job.
    ///
    /// The line is `{"path", "line", "reason", "raw"}` (for a Kafka message,
    /// `{"topic", "partition", "offset", "reason", "raw"}`), where `raw` is the record's exact
    /// text; a record that is not valid UTF-8 has `"raw_base64"` (its exact bytes, standard
    /// base64) instead of `raw`. A record over the size limit is kept up to the limit and
    /// marked `"truncated": true, "length": <its whole length in bytes>`.
    ///
    /// All workers of a process share the file. Until sources snapshot their offsets
    /// (issue 5), delivery is at-least-once: a job rerun over the same input writes the same
    /// bad records again.
    DeadLetter(PathBuf),
}

impl FromStr for OnError {
    type Err = Error;

    /// Parses `fail`, `skip` or `dead-letter:PATH`, as the `--on-error` flag takes them.
    ///
    /// # Examples
    /// ```
    /// use tideflow::source::OnError;
    /// assert_eq!("skip".parse::<OnError>().unwrap(), OnError::Skip);
    /// assert_eq!(
    ///     "dead-letter:bad.jsonl".parse::<OnError>().unwrap(),
    ///     OnError::DeadLetter("bad.jsonl".into())
    /// );
    /// assert!("ignore".parse::<OnError>().is_err());
    /// ```
    fn from_str(text: &str) -> Result<Self, Error> {
        match text {
            "fail" => Ok(OnError::Fail),
            "skip" => Ok(OnError::Skip),
            _ => match text.strip_prefix("dead-letter:") {
                Some(path) if !path.is_empty() => Ok(OnError::DeadLetter(PathBuf::from(path))),
                _ => Err(Error::Config(format!(
                    "OnError: '{text}' is not fail, skip or dead-letter:PATH"
                ))),
            },
        }
    }
}

/// A record that could not be decoded, as a [`RecordReader`](super::RecordReader) reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadRecord {
    /// The 1-based line the record starts on.
    pub line: u64,
    /// What is wrong with it.
    pub reason: String,
    /// The record as it was in the file, without its line terminator (cut at the size limit
    /// if it was longer).
    pub raw: Vec<u8>,
    /// The record's whole length in bytes, without its line terminator: more than
    /// `raw.len()` when it was cut (a cut line that ended in `\r\n` counts its `\r`, which
    /// was not read).
    pub length: u64,
}

impl BadRecord {
    /// The error that stops the job under [`OnError::Fail`].
    pub fn into_error(self, path: &Path) -> Error {
        Error::Input {
            path: path.to_path_buf(),
            line: self.line,
            reason: self.reason,
        }
    }
}

/// Why a [`RecordReader`](super::RecordReader) returned no record.
#[derive(Debug)]
pub enum ReadError {
    /// This record is bad; reading can go on with the next one.
    Bad(BadRecord),
    /// Reading cannot go on (an I/O failure): the job stops whatever the policy.
    Fatal(Error),
}

impl From<Error> for ReadError {
    fn from(error: Error) -> Self {
        ReadError::Fatal(error)
    }
}

/// A dead-letter file shared by every worker of the process that names it.
type SharedWriter = Mutex<BufWriter<File>>;

/// The open dead-letter files of this process, by path. An entry lives as long as some source
/// uses it, so the workers of one job share one file and a later job starts it afresh.
fn open_dead_letters() -> &'static Mutex<HashMap<PathBuf, Weak<SharedWriter>>> {
    static OPEN: OnceLock<Mutex<HashMap<PathBuf, Weak<SharedWriter>>>> = OnceLock::new();
    OPEN.get_or_init(Mutex::default)
}

/// Where a bad record was read: the file (or stream name) and line of a file, socket or stdin
/// record, or the topic, partition and offset of a Kafka message.
#[derive(Clone, Copy, Debug)]
pub(crate) enum RecordLocation<'a> {
    /// A line-oriented input: the record's line is [`BadRecord::line`].
    File(&'a Path),
    /// A Kafka message.
    Kafka {
        topic: &'a str,
        partition: i32,
        offset: i64,
    },
}

impl RecordLocation<'_> {
    /// The error that stops the job under [`OnError::Fail`].
    fn error(self, record: BadRecord) -> Error {
        match self {
            RecordLocation::File(path) => record.into_error(path),
            RecordLocation::Kafka {
                topic,
                partition,
                offset,
            } => Error::KafkaRecord {
                topic: topic.to_owned(),
                partition,
                offset,
                reason: record.reason,
            },
        }
    }
}

/// One line of a dead-letter file: where the record was (`path` and `line` of a file,
/// `topic`, `partition` and `offset` of a Kafka message), the record's text as `raw` when it
/// is valid UTF-8, else its bytes as `raw_base64`; `truncated` and `length` when it was cut at
/// the size limit.
#[derive(Serialize)]
struct DeadLetterLine<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    path: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    line: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    topic: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    partition: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    offset: Option<i64>,
    reason: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    raw: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    raw_base64: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    truncated: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    length: Option<u64>,
}

impl<'a> DeadLetterLine<'a> {
    fn new(at: RecordLocation<'a>, source: Option<&'a str>, record: &'a BadRecord) -> Self {
        let text = std::str::from_utf8(&record.raw).ok();
        let cut = record.length > record.raw.len() as u64;
        let (topic, partition, offset) = match at {
            RecordLocation::File(_) => (None, None, None),
            RecordLocation::Kafka {
                topic,
                partition,
                offset,
            } => (Some(topic), Some(partition), Some(offset)),
        };
        DeadLetterLine {
            path: source,
            line: source.map(|_| record.line),
            topic,
            partition,
            offset,
            reason: &record.reason,
            raw: text,
            raw_base64: text
                .is_none()
                .then(|| base64::engine::general_purpose::STANDARD.encode(&record.raw)),
            truncated: cut.then_some(true),
            length: cut.then_some(record.length),
        }
    }
}

/// An [`OnError`] policy in force in one source instance.
pub(crate) enum BadInputHandler {
    Fail,
    Skip,
    DeadLetter {
        path: PathBuf,
        writer: Arc<SharedWriter>,
    },
}

/// What became of a bad record that did not stop the job.
pub(crate) enum Handled {
    Skipped,
    DeadLettered,
}

impl BadInputHandler {
    /// Starts applying `policy`, creating its dead-letter file unless another source of this
    /// process already has it open.
    pub(crate) fn new(policy: &OnError) -> Result<Self, Error> {
        Ok(match policy {
            OnError::Fail => BadInputHandler::Fail,
            OnError::Skip => BadInputHandler::Skip,
            OnError::DeadLetter(path) => {
                let mut open = open_dead_letters()
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                open.retain(|_, writer| writer.strong_count() > 0);
                let writer = match open.get(path).and_then(Weak::upgrade) {
                    Some(writer) => writer,
                    None => {
                        let file =
                            output_file::create(path, output_file::PRIVATE_MODE).map_err(|e| {
                                Error::io(
                                    format!("cannot create dead-letter file {}", path.display()),
                                    e,
                                )
                            })?;
                        let writer = Arc::new(Mutex::new(BufWriter::new(file)));
                        open.insert(path.clone(), Arc::downgrade(&writer));
                        writer
                    }
                };
                BadInputHandler::DeadLetter {
                    path: path.clone(),
                    writer,
                }
            }
        })
    }

    /// Applies the policy to `record`, read from `source`: an `Err` stops the job.
    pub(crate) fn handle(&self, source: &Path, record: BadRecord) -> Result<Handled, Error> {
        self.handle_at(RecordLocation::File(source), record)
    }

    /// Applies the policy to `record`, read at `at`: an `Err` stops the job.
    pub(crate) fn handle_at(
        &self,
        at: RecordLocation<'_>,
        record: BadRecord,
    ) -> Result<Handled, Error> {
        match self {
            BadInputHandler::Fail => Err(at.error(record)),
            BadInputHandler::Skip => Ok(Handled::Skipped),
            BadInputHandler::DeadLetter { path, writer } => {
                let source = match at {
                    RecordLocation::File(source) => Some(source.to_string_lossy()),
                    RecordLocation::Kafka { .. } => None,
                };
                let line = DeadLetterLine::new(at, source.as_deref(), &record);
                let mut line = serde_json::to_vec(&line)
                    .map_err(|e| Error::Internal(format!("cannot encode a dead letter: {e}")))?;
                line.push(b'\n');
                let mut writer = writer.lock().unwrap_or_else(|p| p.into_inner());
                writer.write_all(&line).map_err(|e| {
                    Error::io(
                        format!("cannot write dead-letter file {}", path.display()),
                        e,
                    )
                })?;
                Ok(Handled::DeadLettered)
            }
        }
    }

    /// Flushes the dead-letter file, if any, so that what it holds is visible. A source calls
    /// [`BadInputHandler::finish`] instead at its end: dropping the file would discard the
    /// error of its last write.
    pub(crate) fn flush(&self) -> Result<(), Error> {
        self.flush_and(|_| Ok(()))
    }

    /// Flushes the dead-letter file, if any, and syncs it to disk, which also reports a write
    /// error the file system deferred (as `close` would): called when the source's input ends.
    pub(crate) fn finish(&self) -> Result<(), Error> {
        self.flush_and(output_file::sync)
    }

    fn flush_and(&self, then: impl FnOnce(&File) -> std::io::Result<()>) -> Result<(), Error> {
        if let BadInputHandler::DeadLetter { path, writer } = self {
            let mut writer = writer.lock().unwrap_or_else(|p| p.into_inner());
            writer
                .flush()
                .and_then(|()| then(writer.get_ref()))
                .map_err(|e| {
                    Error::io(
                        format!("cannot write dead-letter file {}", path.display()),
                        e,
                    )
                })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn on_error_parses_and_names_its_type() {
        assert_eq!("fail".parse::<OnError>().unwrap(), OnError::Fail);
        assert_eq!(OnError::default(), OnError::Fail);
        for bad in ["", "dead-letter:", "Skip", "dead-letter"] {
            let err = bad.parse::<OnError>().unwrap_err().to_string();
            assert!(err.starts_with("OnError: "), "{bad}: {err}");
        }
    }

    #[test]
    fn sources_of_one_process_share_a_dead_letter_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dead.jsonl");
        let policy = OnError::DeadLetter(path.clone());
        let first = BadInputHandler::new(&policy).unwrap();
        let second = BadInputHandler::new(&policy).unwrap();
        for (handler, line) in [(&first, 1), (&second, 2)] {
            let bad = BadRecord {
                line,
                reason: "bad".into(),
                raw: b"x\xff".to_vec(),
                length: 2,
            };
            assert!(matches!(
                handler.handle(Path::new("in.jsonl"), bad),
                Ok(Handled::DeadLettered)
            ));
        }
        first.flush().unwrap();
        let written = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            written,
            "{\"path\":\"in.jsonl\",\"line\":1,\"reason\":\"bad\",\"raw_base64\":\"eP8=\"}\n\
             {\"path\":\"in.jsonl\",\"line\":2,\"reason\":\"bad\",\"raw_base64\":\"eP8=\"}\n"
        );
        let missing = OnError::DeadLetter(dir.path().join("no/such/dir/dead.jsonl"));
        let err = BadInputHandler::new(&missing).err().unwrap();
        assert!(
            err.to_string().contains("cannot create dead-letter file")
                && err.to_string().contains("dead.jsonl"),
            "{err}"
        );
    }

    #[test]
    fn the_last_write_error_of_a_dead_letter_file_is_reported() {
        // The record fits in the buffer: only the final flush meets the full disk.
        let handler = BadInputHandler::new(&OnError::DeadLetter("/dev/full".into())).unwrap();
        let bad = BadRecord {
            line: 1,
            reason: "bad".into(),
            raw: b"x".to_vec(),
            length: 1,
        };
        assert!(matches!(
            handler.handle(Path::new("in.jsonl"), bad),
            Ok(Handled::DeadLettered)
        ));
        let err = handler.finish().unwrap_err().to_string();
        assert_eq!(
            err,
            "cannot write dead-letter file /dev/full: No space left on device (os error 28)"
        );
    }
}
