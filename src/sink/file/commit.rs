//! The file sink's committer: staged rows are appended to the output file when their snapshot
//! is complete, and a commit record (`commit-SINK.json` in the checkpoint: epoch, committed
//! length, execution) says how much of the file is committed. Recovery truncates the file to
//! that length, removing what an interrupted commit had appended, and finishes a commit whose
//! manifest was written.

use std::fs::OpenOptions;
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
        set_length(output, record.length, self.mode).map_err(failed)?;
        let mut file = OpenOptions::new()
            .append(true)
            .open(output)
            .map_err(failed)?;
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
        truncate(&self.output, record.length, self.mode)
    }

    fn target(&self) -> CommitTarget {
        CommitTarget::File(self.output.clone())
    }
}

/// The commit record's file name for `sink`.
fn record_file(sink: &str) -> String {
    format!("commit-{sink}.json")
}

/// Truncates `output` to `length`.
fn truncate(output: &Path, length: u64, mode: u32) -> Result<(), Error> {
    set_length(output, length, mode).map_err(|e| {
        Error::io(
            format!(
                "cannot truncate {} to its committed length",
                output.display()
            ),
            e,
        )
    })
}

/// Sets the length of `output` (created with `mode` if missing) and fsyncs it.
fn set_length(output: &Path, length: u64, mode: u32) -> io::Result<()> {
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(mode)
        .open(output)?;
    file.set_len(length)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::checkpoint::fault::Fault;
    use crate::checkpoint::storage::{CheckpointStorage, LocalDir};

    #[test]
    fn a_commit_appends_once_and_recovery_keeps_only_committed_output() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let fault = Arc::new(Fault::none());
        let storage = LocalDir::new(dir.path().join("ck"), Arc::clone(&fault));
        storage.create().expect("the checkpoint directory");
        let output = dir.path().join("out.txt");
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
}
