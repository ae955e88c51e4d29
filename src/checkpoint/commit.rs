//! Two-phase commit: how a sink publishes its output exactly once in a job with snapshots (in
//! the manner of Flink's `TwoPhaseCommitSinkFunction` and Arroyo's committing sinks).
//!
//! The checkpoint coordinator decides *when*; the sink decides *how*:
//! 1. While an epoch runs, the sink stages the rows stamped in it ([`Sink::write`] after
//!    [`Sink::begin_staging`]): nothing is visible to readers yet.
//! 2. When the sink's input reaches the epoch `W` of a pending snapshot, the sink driver calls
//!    [`Sink::pre_commit`]`(W)`: the sink makes the staged rows durable or hands them over
//!    (flush, fsync, write under a temporary name...) and returns what must be recorded to
//!    finish the commit later. Those bytes become the sink's part of the snapshot.
//! 3. Once every part and the snapshot's manifest are durable, the coordinator calls
//!    [`Committer::commit`]`(W, prepared)`: the output becomes visible.
//! 4. When the job starts, before any commit, [`Committer::recover`] gets the sink's prepared
//!    part of the snapshot the job resumes from and completes that commit if a crash
//!    interrupted it; then, when resuming, [`Committer::abort`] discards what earlier
//!    executions prepared or half-published beyond it.
//!
//! A sink opts in by returning a [`Committer`] from [`Sink::committer`]; the file sink's is in
//! `sink/file/commit.rs`, the Kafka sink's in `sink/kafka/commit.rs`. Committing sinks are [`Parallelism::Single`](crate::sink::Parallelism)
//! sinks for now: one committer per sink, driven on worker 0.
//!
//! [`Sink::write`]: crate::sink::Sink::write
//! [`Sink::begin_staging`]: crate::sink::Sink::begin_staging
//! [`Sink::pre_commit`]: crate::sink::Sink::pre_commit
//! [`Sink::committer`]: crate::sink::Sink::committer

use std::fs::File;
use std::path::PathBuf;

use super::fault::Fault;
use super::storage::CheckpointStorage;
use crate::error::Error;

/// What a sink's part of a snapshot recorded: the epoch and the bytes [`Sink::pre_commit`]
/// returned for it.
///
/// [`Sink::pre_commit`]: crate::sink::Sink::pre_commit
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Prepared<'a> {
    /// The snapshot's epoch: the prepared output holds the rows stamped below it (since the
    /// previous epoch); `u64::MAX` for the final snapshot at the end of the input.
    pub epoch: u64,
    /// What [`Sink::pre_commit`](crate::sink::Sink::pre_commit) returned.
    pub bytes: &'a [u8],
}

/// What is committed when a job starts, as [`Committer::recover`] found it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Recovered {
    /// The epoch below which the output is committed: replayed rows stamped below it are
    /// dropped before they reach the sink. 0 if nothing was committed.
    pub epoch: u64,
    /// Whether the output already holds committed rows (a CSV header, for one, is not due
    /// again).
    pub resumed: bool,
}

/// Where the coordinator can reopen a committer from, without the job's dataflow: a job whose
/// final snapshot is written is complete and is not built again, so only a committer it can
/// reopen from the manifest alone finishes a final commit a crash interrupted.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CommitTarget {
    /// Only through the sink: the committer is recovered when the job registers the sink.
    Sink,
    /// An append-only file, committed by the file sink's committer; the manifest names it.
    File(PathBuf),
    /// Another committer the library can make again from the manifest alone: `kind` says
    /// which (`kafka`), `spec` is what it needs, in its own format (kept in the manifest, so
    /// no secrets). The Kafka sink's, so that a crash between the final snapshot's manifest
    /// and its commit is finished by the next run although the job is not built again.
    Reopen {
        /// The committer's kind.
        kind: String,
        /// What the committer needs to reopen.
        spec: String,
    },
}

/// The checkpoint a committer works in: the sink's name, the execution, and (for the
/// library's committers) the checkpoint storage where a commit record may be kept.
pub struct CommitContext<'a> {
    sink: &'a str,
    execution: u64,
    storage: &'a dyn CheckpointStorage,
    fault: &'a Fault,
}

impl<'a> CommitContext<'a> {
    pub(crate) fn new(
        sink: &'a str,
        execution: u64,
        storage: &'a dyn CheckpointStorage,
        fault: &'a Fault,
    ) -> Self {
        CommitContext {
            sink,
            execution,
            storage,
            fault,
        }
    }

    /// The sink's name in the checkpoint (`sink0`, `sink1`... in the order sinks are built).
    pub fn sink(&self) -> &str {
        self.sink
    }

    /// This run's execution number: 1 for the first run on a checkpoint directory, one more
    /// for each later run.
    pub fn execution(&self) -> u64 {
        self.execution
    }

    /// The checkpoint directory's id: 16 hex digits made at random when a job first takes the
    /// directory over, then kept in it (file `ID`), so that it names the job across runs and
    /// moves of the directory (the Kafka sink's transactional id is made of it). Made now if
    /// the directory has none.
    pub fn checkpoint_id(&self) -> Result<String, Error> {
        super::files::checkpoint_id(self.storage)
    }

    /// The checkpoint storage, for commit records.
    pub(crate) fn storage(&self) -> &dyn CheckpointStorage {
        self.storage
    }

    /// Fault injection (crash tests): half of a commit's output is in `file`.
    pub(crate) fn mid_commit(&self, file: &mut File) {
        self.fault.mid_commit(file);
    }

    /// Fault injection (crash tests): half of a commit's output is sent; `durable` makes it
    /// reach the external system before the crash (a Kafka producer's flush).
    #[cfg_attr(not(feature = "kafka"), allow(dead_code))]
    pub(crate) fn mid_commit_then(&self, durable: impl FnOnce()) {
        self.fault.mid_commit_then(durable);
    }
}

/// The committing half of an exactly-once sink, held by the checkpoint coordinator and called
/// from whichever worker thread completes a snapshot (hence `Send`). The sink's other half,
/// staging and [`Sink::pre_commit`](crate::sink::Sink::pre_commit), runs on the sink's worker.
///
/// Contract: once per run, before any `commit`, `verify` then `recover` are called when the sink registers
/// (while the job is built), then `abort` if the job resumes from a snapshot. For a committer
/// whose [`target`](Committer::target) the manifest records as a file, the coordinator instead
/// calls them on a committer it reopens from the manifest before the job is built, and not on
/// the sink's: such a committer keeps what it needs (the file sink's commit record) where it
/// can read it again. A [`CommitTarget::Reopen`] committer is reopened that way only when the
/// snapshot resumed from is the final one (its job is not built again); otherwise the sink's
/// own committer recovers. `commit` is called for each completed snapshot whose part this sink
/// prepared, in epoch order, after its manifest is durable. A crash may happen at any point,
/// so `commit` must be idempotent: after a crash between the manifest and the end of `commit`,
/// `recover` finishes the same commit again.
///
/// Errors: an `Err` from `commit` stops the job (the snapshot exists: the next run's `recover`
/// finishes the commit); an `Err` from `verify`, `recover` or `abort` stops the job before it
/// runs. The
/// error is returned by [`execute`](crate::execute) either way.
pub trait Committer: Send + 'static {
    /// Phase two: makes the output prepared for `epoch` visible. Called once the snapshot at
    /// `epoch` is complete (its manifest durable) with the bytes
    /// [`Sink::pre_commit`](crate::sink::Sink::pre_commit) returned. Idempotent.
    fn commit(
        &mut self,
        epoch: u64,
        prepared: &[u8],
        context: &CommitContext<'_>,
    ) -> Result<(), Error>;

    /// On start: `committed` is this sink's part of the snapshot the job resumes from (`None`
    /// without one). Completes that commit if a crash interrupted it (as `commit` would) and
    /// returns what is committed.
    fn recover(
        &mut self,
        committed: Option<Prepared<'_>>,
        context: &CommitContext<'_>,
    ) -> Result<Recovered, Error>;

    /// Before `recover`: checks that the committed output is still there (the file sink: that
    /// its file is at least as long as its committed length), so that a job whose committed
    /// output was truncated or deleted is refused before any sink recovers or writes, rather
    /// than appended to. By default, does nothing.
    fn verify(&mut self, context: &CommitContext<'_>) -> Result<(), Error> {
        let _ = context;
        Ok(())
    }

    /// After `recover`, when the job resumes from a snapshot: discards what earlier executions
    /// prepared or half-published beyond the committed output (a pre-commit whose manifest was
    /// never written, an interrupted commit). By default, does nothing.
    fn abort(&mut self, context: &CommitContext<'_>) -> Result<(), Error> {
        let _ = context;
        Ok(())
    }

    /// Where the coordinator can reopen this committer from. By default,
    /// [`CommitTarget::Sink`].
    fn target(&self) -> CommitTarget {
        CommitTarget::Sink
    }
}

/// Makes the committer of a sink whose manifest entry says how ([`CommitTarget::File`] or
/// [`CommitTarget::Reopen`]), so that the coordinator can finish its commit before the job is
/// built: the checkpoint knows the protocol, the sink module knows how files and Kafka topics
/// commit (the runtime passes `sink::reopen_committer`).
pub(crate) type ReopenCommitter = fn(&CommitTarget) -> Result<Box<dyn Committer>, Error>;
