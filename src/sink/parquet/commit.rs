//! The Parquet sink's committer: an epoch's files, written and synced under
//! `_tideflow_staging/` by the pre-commit, are renamed into the output directory and listed in
//! a new commit log entry when the snapshot is complete (`log.rs`).
//!
//! The snapshot's part is the list of staged files (names, rows, bytes), not the rows: the
//! files themselves are durable before the snapshot's manifest. The log says which epoch is
//! committed, so a commit is done once: a commit replayed after a crash whose epoch the log
//! already has is skipped. Recovery finishes the commit of the snapshot resumed from if the
//! log is behind it, then removes every file not committed (staged files of a pre-commit whose
//! manifest was never written, files renamed before a crash cut the commit short).
//!
//! The log's entries carry the checkpoint directory's id: an output directory whose log was
//! written by another job (another checkpoint directory) is replaced, as the file sink
//! truncates its file when a job starts anew.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::log::{LogEntry, LoggedFile, OutputDir};
use crate::checkpoint::commit::{CommitContext, CommitTarget, Committer, Prepared, Recovered};
use crate::error::Error;

/// The committer kind the manifest names (`CommitTarget::Reopen`).
pub(crate) const KIND: &str = "parquet";

/// A Parquet sink's part of a snapshot: the files its pre-commit staged.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct Staged {
    pub(crate) files: Vec<LoggedFile>,
}

impl Staged {
    /// The part's bytes.
    pub(crate) fn encode(&self) -> Result<Vec<u8>, Error> {
        serde_json::to_vec(self)
            .map_err(|e| Error::Internal(format!("cannot encode a Parquet sink's part: {e}")))
    }

    /// The files a part lists.
    pub(crate) fn decode(bytes: &[u8]) -> Result<Self, Error> {
        if bytes.is_empty() {
            return Ok(Staged::default());
        }
        serde_json::from_slice(bytes)
            .map_err(|e| Error::Snapshot(format!("a Parquet sink's part is malformed: {e}")))
    }
}

/// Commits a Parquet sink's staged files to its output directory.
pub(crate) struct ParquetCommitter {
    dir: PathBuf,
}

impl ParquetCommitter {
    /// Commits to the output directory `dir`.
    pub(crate) fn new(dir: PathBuf) -> Self {
        ParquetCommitter { dir }
    }

    /// Reopens the committer the manifest names (`spec`: the output directory).
    pub(crate) fn reopen(spec: &str) -> Self {
        ParquetCommitter::new(PathBuf::from(spec))
    }

    /// The output directory, with the log of another job (or of no job) cleared away.
    fn open(&self, context: &CommitContext<'_>) -> Result<OutputDir, Error> {
        let mut out = OutputDir::open(&self.dir)?;
        let job = context.checkpoint_id()?;
        if out
            .entries()
            .iter()
            .any(|entry| entry.job.as_deref() != Some(job.as_str()))
        {
            out.clear()?;
        }
        Ok(out)
    }

    /// Commits the files `prepared` staged for `epoch` unless the log has that epoch.
    fn publish(
        &self,
        out: &mut OutputDir,
        epoch: u64,
        prepared: &[u8],
        context: &CommitContext<'_>,
    ) -> Result<(), Error> {
        if out.last_epoch().is_some_and(|last| last >= epoch) {
            return Ok(());
        }
        let staged = Staged::decode(prepared)?;
        if staged.files.is_empty() {
            return Ok(());
        }
        let entry = LogEntry {
            epoch: Some(epoch),
            files: staged.files,
            job: Some(context.checkpoint_id()?),
            execution: context.execution(),
        };
        out.publish(entry, || context.mid_commit_then(|| ()))
    }
}

impl Committer for ParquetCommitter {
    fn commit(
        &mut self,
        epoch: u64,
        prepared: &[u8],
        context: &CommitContext<'_>,
    ) -> Result<(), Error> {
        let mut out = OutputDir::open(&self.dir)?;
        self.publish(&mut out, epoch, prepared, context)
    }

    /// Fails if a file this job's log lists is missing (another job's log is cleared by
    /// `recover`).
    fn verify(&mut self, context: &CommitContext<'_>) -> Result<(), Error> {
        let out = OutputDir::open(&self.dir)?;
        let job = context.checkpoint_id()?;
        if out
            .entries()
            .iter()
            .all(|entry| entry.job.as_deref() == Some(job.as_str()))
        {
            out.check_files()?;
        }
        Ok(())
    }

    fn recover(
        &mut self,
        committed: Option<Prepared<'_>>,
        context: &CommitContext<'_>,
    ) -> Result<Recovered, Error> {
        let mut out = self.open(context)?;
        if let Some(prepared) = committed {
            self.publish(&mut out, prepared.epoch, prepared.bytes, context)?;
        }
        out.remove_uncommitted()?;
        let logged = out.last_epoch().unwrap_or(0);
        Ok(Recovered {
            epoch: committed.map_or(logged, |prepared| prepared.epoch.max(logged)),
            resumed: !out.entries().is_empty(),
        })
    }

    /// Removes the files no commit lists.
    fn abort(&mut self, context: &CommitContext<'_>) -> Result<(), Error> {
        self.open(context)?.remove_uncommitted()
    }

    fn target(&self) -> CommitTarget {
        CommitTarget::Reopen {
            kind: KIND.to_string(),
            spec: self.dir.to_string_lossy().into_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::checkpoint::fault::Fault;
    use crate::checkpoint::storage::{CheckpointStorage, LocalDir};
    use crate::sink::parquet::{committed_files, log::OutputDir};

    /// Stages a file `name` in `dir` and returns the part that lists it.
    fn stage(dir: &std::path::Path, name: &str) -> Vec<u8> {
        std::fs::write(OutputDir::staged(dir, name), b"PAR1").unwrap();
        let file = LoggedFile {
            name: name.into(),
            rows: 1,
            bytes: 4,
        };
        Staged { files: vec![file] }.encode().unwrap()
    }

    #[test]
    fn commits_once_recover_finishes_and_another_jobs_output_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let fault = Arc::new(Fault::none());
        let storage = LocalDir::new(dir.path().join("ck"), Arc::clone(&fault));
        storage.create().unwrap();
        let out = dir.path().join("out");
        let names = |out: &std::path::Path| -> Vec<String> {
            committed_files(out)
                .unwrap()
                .iter()
                .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
                .collect()
        };

        let first = CommitContext::new("sink0", 1, &storage, &fault);
        let mut committer = ParquetCommitter::new(out.clone());
        assert_eq!(
            committer.recover(None, &first).unwrap(),
            Recovered::default()
        );
        let part = stage(&out, "part-00000-a.parquet");
        committer.commit(5, &part, &first).unwrap();
        committer.commit(5, &part, &first).unwrap();
        assert_eq!(
            names(&out),
            ["part-00000-a.parquet"],
            "a commit is idempotent"
        );

        // A crash after the manifest of epoch 9, before its commit; and a staged file of an
        // epoch whose manifest was never written.
        let pending = stage(&out, "part-00001-a.parquet");
        stage(&out, "part-00002-a.parquet");
        let second = CommitContext::new("sink0", 2, &storage, &fault);
        let mut committer = ParquetCommitter::new(out.clone());
        committer.verify(&second).unwrap();
        let prepared = Prepared {
            epoch: 9,
            bytes: &pending,
        };
        let recovered = committer.recover(Some(prepared), &second).unwrap();
        committer.abort(&second).unwrap();
        assert_eq!(
            recovered,
            Recovered {
                epoch: 9,
                resumed: true
            }
        );
        assert_eq!(
            names(&out),
            ["part-00000-a.parquet", "part-00001-a.parquet"]
        );
        assert!(!OutputDir::staged(&out, "part-00002-a.parquet").exists());

        // A committed file deleted since: refused, naming it.
        std::fs::remove_file(out.join("part-00000-a.parquet")).unwrap();
        let message = committer.verify(&second).unwrap_err().to_string();
        assert!(
            message.contains("part-00000-a.parquet is missing"),
            "{message}"
        );

        // Another checkpoint directory: the earlier output is replaced.
        let other = LocalDir::new(dir.path().join("other"), Arc::clone(&fault));
        other.create().unwrap();
        let third = CommitContext::new("sink0", 1, &other, &fault);
        let mut committer = ParquetCommitter::new(out.clone());
        committer.verify(&third).unwrap();
        assert_eq!(
            committer.recover(None, &third).unwrap(),
            Recovered::default()
        );
        assert!(names(&out).is_empty());
        assert!(!out.join("part-00001-a.parquet").exists());
    }
}
