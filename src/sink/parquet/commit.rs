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

    /// Fails if a file the log lists is missing (for this job's log).
    fn verify(&mut self, context: &CommitContext<'_>) -> Result<(), Error> {
        self.open(context)?.check_files()
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
