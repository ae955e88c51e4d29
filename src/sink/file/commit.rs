//! The file sink's committer: staged rows are appended to the output file when their snapshot
//! is complete, and a commit record (`commit-SINK.json` in the checkpoint: epoch, committed
//! length, execution) says how much of the file is committed. Recovery truncates the file to
//! that length, removing what an interrupted commit had appended, and finishes a commit whose
//! manifest was written. A file shorter than its committed length, or missing, lost committed
//! output (it was truncated, replaced or deleted since): it is refused, naming the file and
//! both lengths, never padded to the length and appended to.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::checkpoint::commit::{CommitContext, CommitTarget, Committer, Prepared, Recovered};
use crate::checkpoint::storage::Location;
use crate::error::Error;

/// A file sink's commit record: what of its output file is committed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct CommitRecord {
    /// The epoch committed: the rows stamped below it are in the file.
    epoch: u64,
    /// The committed length of the output file.
    length: u64,
    /// The execution that committed it.
    execution: u64,
}

/// Commits a file sink's staged rows to its append-only output file.
pub(crate) struct FileCommitter {
    output: PathBuf,
    /// The permission bits of the output file if the committer creates it.
    mode: u32,
    /// The last commit record, once read or written by this committer.
    record: Option<CommitRecord>,
}

impl FileCommitter {
    /// Commits to `output`, creating it with `mode` if it is missing.
    pub(crate) fn new(output: PathBuf, mode: u32) -> Self {
        FileCommitter {
            output,
            mode,
            record: None,
        }
    }

    /// The sink's commit record, or the empty one if it never committed.
    fn record(&mut self, context: &CommitContext<'_>) -> Result<CommitRecord, Error> {
        if let Some(record) = self.record {
            return Ok(record);
        }
        let file = record_file(context.sink());
        let at = Location::Top(&file);
        let storage = context.storage();
        let record = match storage.read(at) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                Error::Snapshot(format!(
                    "{}: not a valid commit record: {e}",
                    storage.describe(Some(at))
                ))
            })?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => CommitRecord::default(),
            Err(e) => {
                return Err(Error::io(
                    format!("cannot read {}", storage.describe(Some(at))),
                    e,
                ))
            }
        };
        self.record = Some(record);
        Ok(record)
    }

    /// Appends `bytes` to the output after truncating it to the committed length (which removes
    /// what a commit interrupted half-way had appended), fsyncs it, and records the commit of
    /// `epoch`.
    fn append(
        &mut self,
        record: CommitRecord,
        bytes: &[u8],
        epoch: u64,
        context: &CommitContext<'_>,
    ) -> Result<CommitRecord, Error> {
        let output = &self.output;
        let failed =
            |e: io::Error| Error::io(format!("cannot commit output to {}", output.display()), e);
        let mut file = open_committed(output, self.mode, record, context)?;
        let half = bytes.len() / 2;
        file.write_all(&bytes[..half]).map_err(failed)?;
        context.mid_commit(&mut file);
        file.write_all(&bytes[half..]).map_err(failed)?;
        file.sync_all().map_err(failed)?;
        let committed = CommitRecord {
            epoch,
            length: record.length + bytes.len() as u64,
            execution: context.execution(),
        };
        let encoded = serde_json::to_vec(&committed)
            .map_err(|e| Error::Internal(format!("cannot encode a commit record: {e}")))?;
        let file = record_file(context.sink());
        let at = Location::Top(&file);
        let storage = context.storage();
        storage.write(at, &encoded).map_err(|e| {
            Error::io(
                format!("cannot write commit record {}", storage.describe(Some(at))),
                e,
            )
        })?;
        self.record = Some(committed);
        Ok(committed)
    }
}

impl Committer for FileCommitter {
    /// Appends the epoch's rows, unless the commit record shows it committed already.
    fn commit(
        &mut self,
        epoch: u64,
        prepared: &[u8],
        context: &CommitContext<'_>,
    ) -> Result<(), Error> {
        let record = self.record(context)?;
        if record.epoch >= epoch {
            return Ok(());
        }
        self.append(record, prepared, epoch, context).map(|_| ())
    }

    /// Fails if the output is shorter than its committed length, or missing.
    fn verify(&mut self, context: &CommitContext<'_>) -> Result<(), Error> {
        let record = self.record(context)?;
        let length = match std::fs::metadata(&self.output) {
            Ok(metadata) => Some(metadata.len()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => {
                return Err(Error::io(
                    format!("cannot read {}", self.output.display()),
                    e,
                ))
            }
        };
        check_length(&self.output, length, record, context)
    }

    /// Finishes the commit of the snapshot resumed from if the record is behind it (a crash
    /// between its manifest and its commit).
    fn recover(
        &mut self,
        committed: Option<Prepared<'_>>,
        context: &CommitContext<'_>,
    ) -> Result<Recovered, Error> {
        let mut record = self.record(context)?;
        if let Some(prepared) = committed.filter(|p| record.epoch < p.epoch) {
            record = self.append(record, prepared.bytes, prepared.epoch, context)?;
        }
        Ok(Recovered {
            epoch: record.epoch,
            resumed: record.length > 0,
        })
    }

    /// Truncates the output to its committed length (removing the output of an epoch that
    /// was never committed).
    fn abort(&mut self, context: &CommitContext<'_>) -> Result<(), Error> {
        let record = self.record(context)?;
        let file = open_committed(&self.output, self.mode, record, context)?;
        file.sync_all().map_err(|e| {
            Error::io(
                format!(
                    "cannot truncate {} to its committed length",
                    self.output.display()
                ),
                e,
            )
        })
    }

    fn target(&self) -> CommitTarget {
        CommitTarget::File(self.output.clone())
    }
}

/// The commit record's file name for `sink`.
fn record_file(sink: &str) -> String {
    format!("commit-{sink}.json")
}

/// Opens `output` for appending, truncated to its committed length `record.length`
/// (removing what an uncommitted or interrupted commit appended); created if it is missing and
/// nothing is committed. Fails if the file is shorter than that length, or missing.
fn open_committed(
    output: &Path,
    mode: u32,
    record: CommitRecord,
    context: &CommitContext<'_>,
) -> Result<File, Error> {
    let failed = |e: io::Error| {
        Error::io(
            format!(
                "cannot truncate {} to its committed length",
                output.display()
            ),
            e,
        )
    };
    let file = match OpenOptions::new()
        .append(true)
        .create(record.length == 0)
        .mode(mode)
        .open(output)
    {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(check_length(output, None, record, context)
                .err()
                .unwrap_or_else(|| failed(e)))
        }
        Err(e) => return Err(failed(e)),
    };
    let length = file.metadata().map_err(failed)?.len();
    check_length(output, Some(length), record, context)?;
    file.set_len(record.length).map_err(failed)?;
    Ok(file)
}

/// Fails if `output`, `length` bytes long (`None`: missing), lost committed output: it is
/// shorter than the committed length of `record`.
fn check_length(
    output: &Path,
    length: Option<u64>,
    record: CommitRecord,
    context: &CommitContext<'_>,
) -> Result<(), Error> {
    if length.unwrap_or(0) >= record.length {
        return Ok(());
    }
    let (is, since) = match length {
        None => ("missing".to_string(), "deleted or moved"),
        Some(length) => (format!("{length} bytes long"), "truncated or replaced"),
    };
    let file = record_file(context.sink());
    Err(Error::Snapshot(format!(
        "{} is {is}, but its first {} bytes were committed ({}): it was {since} after the job wrote it; restore it, or run the job anew with a new checkpoint directory",
        output.display(),
        record.length,
        context.storage().describe(Some(Location::Top(&file)))
    )))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::checkpoint::fault::Fault;
    use crate::checkpoint::storage::{CheckpointStorage, LocalDir};

    /// A temporary directory (kept while it lives), no fault, a checkpoint directory in it and
    /// the output file's path.
    fn setup() -> (tempfile::TempDir, Arc<Fault>, LocalDir, PathBuf) {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let fault = Arc::new(Fault::none());
        let storage = LocalDir::new(dir.path().join("ck"), Arc::clone(&fault));
        storage.create().expect("the checkpoint directory");
        let output = dir.path().join("out.txt");
        (dir, fault, storage, output)
    }

    #[test]
    fn a_commit_appends_once_and_recovery_keeps_only_committed_output() {
        let (_dir, fault, storage, output) = setup();
        let read = || std::fs::read_to_string(&output).expect("the output");
        let append = |bytes: &str| {
            let mut file = OpenOptions::new()
                .append(true)
                .open(&output)
                .expect("opens");
            file.write_all(bytes.as_bytes()).expect("appends");
        };

        let first = CommitContext::new("sink0", 1, &storage, &fault);
        let mut committer = FileCommitter::new(output.clone(), 0o644);
        committer.commit(5, b"ab\n", &first).expect("commits");
        committer.commit(5, b"ab\n", &first).expect("commits again");
        assert_eq!(read(), "ab\n", "a commit is idempotent");

        // A crash half-way through the commit of epoch 9, after its manifest: recovery
        // removes the partial append and commits the epoch again.
        append("c");
        let second = CommitContext::new("sink0", 2, &storage, &fault);
        let mut committer = FileCommitter::new(output.clone(), 0o644);
        let prepared = Prepared {
            epoch: 9,
            bytes: b"cd\nef\n",
        };
        let recovered = committer
            .recover(Some(prepared), &second)
            .expect("recovers");
        committer.abort(&second).expect("aborts");
        assert_eq!(
            recovered,
            Recovered {
                epoch: 9,
                resumed: true
            }
        );
        assert_eq!(read(), "ab\ncd\nef\n");

        // A partial append of an epoch whose manifest was never written: aborted.
        append("gh");
        let third = CommitContext::new("sink0", 3, &storage, &fault);
        let mut committer = FileCommitter::new(output.clone(), 0o644);
        let recovered = committer.recover(Some(prepared), &third).expect("recovers");
        committer.abort(&third).expect("aborts");
        assert_eq!(recovered.epoch, 9);
        assert_eq!(read(), "ab\ncd\nef\n");
    }

    #[test]
    fn a_file_shorter_than_its_committed_length_or_missing_is_refused_untouched() {
        let (_dir, fault, storage, output) = setup();
        let first = CommitContext::new("sink0", 1, &storage, &fault);
        FileCommitter::new(output.clone(), 0o644)
            .commit(5, b"abcdef\n", &first)
            .expect("commits");

        // Truncated: every step refuses, naming the file and both lengths, and writes nothing.
        std::fs::write(&output, b"abc").expect("truncated");
        let second = CommitContext::new("sink0", 2, &storage, &fault);
        let mut committer = FileCommitter::new(output.clone(), 0o644);
        let error = committer.verify(&second).expect_err("refused");
        let message = error.to_string();
        assert!(matches!(error, Error::Snapshot(_)), "{message}");
        assert!(
            message.contains(&format!(
                "{} is 3 bytes long, but its first 7 bytes were committed",
                output.display()
            )),
            "{message}"
        );
        assert!(message.contains("commit-sink0.json"), "{message}");
        assert!(committer.abort(&second).is_err());
        assert!(committer.commit(9, b"gh\n", &second).is_err());
        assert_eq!(std::fs::read(&output).expect("the output"), b"abc");

        // Deleted: refused, and not created again.
        std::fs::remove_file(&output).expect("deleted");
        let mut committer = FileCommitter::new(output.clone(), 0o644);
        let message = committer.verify(&second).expect_err("refused").to_string();
        assert!(
            message.contains(&format!(
                "{} is missing, but its first 7 bytes were committed",
                output.display()
            )),
            "{message}"
        );
        assert!(committer.abort(&second).is_err());
        assert!(committer.commit(9, b"gh\n", &second).is_err());
        assert!(!output.exists());

        // Longer is normal: the uncommitted bytes are removed.
        std::fs::write(&output, b"abcdef\nuncommitted").expect("longer");
        let mut committer = FileCommitter::new(output.clone(), 0o644);
        committer.verify(&second).expect("longer is fine");
        committer.abort(&second).expect("aborts");
        assert_eq!(std::fs::read(&output).expect("the output"), b"abcdef\n");
    }
}
