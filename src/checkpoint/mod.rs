//! Epoch snapshots and recovery (DESIGN.md "Snapshots"; the protocol and why it is
//! exactly-once are in docs/ARCHITECTURE.md).
//!
//! One [`Checkpointer`] per process coordinates its workers: sources ask it, once per poll,
//! whether a snapshot is pending (it starts one every interval, at an epoch above every stamp
//! sent so far); stateful operators, sources and committing sinks register with it when the
//! dataflow is built and hand it their parts; the thread that hands in the last part writes
//! the manifest, tells the sinks' committers to commit and removes old snapshots. The
//! coordinator decides *when*; each sink's [`Committer`] decides *how* (it never touches
//! output itself). Snapshots are kept in a [`CheckpointStorage`] (`storage.rs`).
//! [`Checkpointer::open`] recovers before the workers start.

mod cluster;
pub mod commit;
mod complete;
pub(crate) mod fault;
mod files;
#[cfg(test)]
mod fuzz;
mod hooks;
mod job;
mod operators;
mod recovery;
mod stop;
pub(crate) mod storage;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tideflow_operators::snapshot::{Frame, Resumed};

use fault::Fault;
pub(crate) use files::PartitionCursor;
use files::{Manifest, PartBody, PartInfo};
use storage::{CheckpointStorage, LocalDir, Location, SnapshotId};

use crate::context::PostOffice;
use crate::error::Error;
pub(crate) use cluster::Role;
use commit::{CommitContext, Committer, Recovered, ReopenCommitter};

#[cfg(feature = "failpoints")]
pub use fault::FAULT_VAR;
pub(crate) use hooks::{SinkHook, SourceHook, WorkerRegistry};
pub use job::JobFingerprint;

/// Where and how often a job takes snapshots.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    /// The checkpoint directory (created if missing).
    pub dir: PathBuf,
    /// Processing time between snapshots. By default, 1 s.
    pub interval: Duration,
    /// How many complete snapshots are kept. By default, 2.
    pub keep: usize,
    /// Snapshots by record count instead of by time: the next snapshot starts once the sources
    /// have sent this many records since the last one completed (or since the start), and
    /// `interval` is ignored. Where snapshots happen then depends on the input, not on the
    /// clock, which is what tests need. By default, `None`: every `interval`.
    pub every_records: Option<u64>,
    /// What the job is ([`JobFingerprint`]): kept in every snapshot, and compared when the job
    /// resumes from one. By default, empty: only the stateful operators are compared.
    pub job: JobFingerprint,
}

impl Checkpoint {
    /// Snapshots into `dir` every second, keeping the last 2.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Checkpoint {
            dir: dir.into(),
            interval: Duration::from_secs(1),
            keep: 2,
            every_records: None,
            job: JobFingerprint::new(),
        }
    }

    /// Describes the job ([`Checkpoint::job`]), so that resuming a snapshot in a job that
    /// differs is refused, naming what changed.
    pub fn job(mut self, job: JobFingerprint) -> Self {
        self.job = job;
        self
    }

    /// Takes a snapshot every `records` records (at least 1) the sources send, instead of
    /// every [`Checkpoint::interval`] ([`Checkpoint::every_records`]).
    ///
    /// # Examples
    /// ```
    /// let config = tideflow::Checkpoint::new("checkpoints").every_records(1_000);
    /// assert_eq!(config.every_records, Some(1_000));
    /// ```
    pub fn every_records(mut self, records: u64) -> Self {
        self.every_records = Some(records.max(1));
        self
    }

    /// Where the sources of a job resumed from this directory would start: the source
    /// positions of the newest usable snapshot (a Kafka partition's offset, a file's byte
    /// offset...), for tools that show it (`tideflow explain`). Reads only: the directory is
    /// not taken over, nothing is written. `None` without a snapshot (or a directory).
    pub fn resume_positions(&self) -> Result<Option<ResumePositions>, Error> {
        if !self.dir.is_dir() {
            return Ok(None);
        }
        let storage = LocalDir::new(self.dir.clone(), Arc::new(Fault::default()));
        let Some(from) = recovery::newest_usable(&storage)? else {
            return Ok(None);
        };
        let mut sources: std::collections::BTreeMap<String, Vec<SourcePosition>> =
            std::collections::BTreeMap::new();
        for part in from.manifest.parts.iter().filter(|p| p.kind == "source") {
            let PartBody::Source(cursors) = files::read_part(&storage, from.id, part)? else {
                continue;
            };
            // `src0-w1.part` is worker 1's part of source `src0`.
            let source = part
                .file
                .split("-w")
                .next()
                .unwrap_or(&part.file)
                .to_string();
            sources
                .entry(source)
                .or_default()
                .extend(cursors.into_iter().map(|c| SourcePosition {
                    partition: c.partition,
                    position: c.position,
                    finished: c.finished,
                }));
        }
        for positions in sources.values_mut() {
            positions.sort_by_key(|p| p.partition);
        }
        Ok(Some(ResumePositions {
            epoch: from.manifest.epoch,
            is_final: from.manifest.is_final,
            sources,
        }))
    }
}

/// The source positions of a snapshot ([`Checkpoint::resume_positions`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResumePositions {
    /// The snapshot's epoch.
    pub epoch: u64,
    /// Whether it is the final snapshot of a completed job.
    pub is_final: bool,
    /// Each source's partitions, by source name (`src0`, `src1`... in the order the job reads
    /// them), by partition.
    pub sources: std::collections::BTreeMap<String, Vec<SourcePosition>>,
}

/// Where one source partition resumes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SourcePosition {
    /// The global partition number (a Kafka partition's number).
    pub partition: u64,
    /// The position of the first record to read (a Kafka offset, a file's byte offset).
    pub position: crate::position::Position,
    /// Whether the partition had ended.
    pub finished: bool,
}

/// What snapshots a job took, and what it resumed from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SnapshotReport {
    /// The epoch of the snapshot the job resumed from, if any.
    pub resumed_from: Option<u64>,
    /// Whether the checkpoint directory held a finished job: nothing was run.
    pub already_complete: bool,
    /// Snapshots completed (manifest written, output committed) by this run, the final one
    /// included.
    pub completed: u64,
    /// The epoch of the last completed snapshot.
    pub last_epoch: Option<u64>,
    /// The size in bytes of the last completed snapshot's parts.
    pub last_bytes: u64,
    /// The size in bytes of the largest completed snapshot.
    pub max_bytes: u64,
    /// How long the last completed snapshot took, from its epoch's start to its commit.
    pub last_duration: Duration,
    /// The longest any snapshot took.
    pub max_duration: Duration,
    /// How long recovery took: verifying the snapshot, finishing an interrupted commit, and
    /// restoring every worker's state (zero without a snapshot to resume from).
    pub restore_duration: Duration,
    /// The size in bytes of the snapshot resumed from.
    pub restored_bytes: u64,
}

impl SnapshotReport {
    /// The snapshot at `epoch`, of `bytes`, completed `took` after its epoch began.
    fn record(&mut self, epoch: u64, bytes: u64, took: Duration) {
        self.completed += 1;
        self.last_epoch = Some(epoch);
        self.last_bytes = bytes;
        self.max_bytes = self.max_bytes.max(bytes);
        self.last_duration = took;
        self.max_duration = self.max_duration.max(took);
    }
}

/// One registered participant: an operator instance, a source instance or a sink.
struct Registration {
    /// Its file name stem: `op-tumbling-w1`, `src0-w0`, `sink0`.
    name: String,
    kind: String,
    /// A committing sink's committer.
    committer: Option<Box<dyn Committer>>,
    /// A stateful operator instance: the operator's id and the worker.
    operator: Option<(String, usize)>,
    /// Once its input ended: its last part, used for every later snapshot.
    finished: Option<PartBody>,
}

/// The snapshot in progress.
struct Pending {
    epoch: u64,
    id: SnapshotId,
    started: Instant,
    parts: HashMap<usize, PartInfo>,
    sink_output: HashMap<usize, Vec<u8>>,
    /// In a cluster: every part of this process is written (and, in another process than
    /// process 0, reported to process 0).
    handed_in: bool,
    /// In process 0 of a cluster: the parts the other processes reported, by process.
    remote: std::collections::BTreeMap<usize, Vec<PartInfo>>,
}

struct State {
    next_due: Instant,
    /// Records the sources sent since the last snapshot completed (or the start).
    sent_since: u64,
    /// The largest stamp (or source watermark) any source has sent.
    max_sent: u64,
    built: usize,
    registrations: Vec<Registration>,
    /// Per worker, the number of registrations per name prefix.
    counters: HashMap<(usize, &'static str), usize>,
    pending: Option<Pending>,
    started: u64,
    /// What the sinks recovered before the workers started had committed, by sink name.
    recovered: HashMap<String, Recovered>,
    done: bool,
    /// A snapshot failed: no more are started.
    broken: bool,
    /// With a graceful stop requested: the epoch of the snapshot the job stops at.
    stop_epoch: Option<u64>,
    /// The epoch of the last snapshot this run committed.
    committed_epoch: Option<u64>,
    report: SnapshotReport,
    /// In a cluster: the agreement on epochs with the other processes.
    cluster: cluster::ClusterState,
}

impl State {
    /// The snapshot at `epoch` is committed: the next is due `interval` from now.
    fn committed(&mut self, epoch: u64, interval: Duration) {
        self.next_due = Instant::now() + interval;
        self.sent_since = 0;
        self.committed_epoch = Some(epoch);
    }
}

/// The snapshot a job resumes from.
struct ResumeFrom {
    id: SnapshotId,
    manifest: Manifest,
}

/// The coordinator of one process's snapshots.
pub(crate) struct Checkpointer {
    storage: Box<dyn CheckpointStorage>,
    interval: Duration,
    /// [`Checkpoint::every_records`].
    every_records: Option<u64>,
    keep: usize,
    /// The workers of the whole job (of every process): key groups are spread over them.
    peers: usize,
    /// The workers of this process: every one of them registers with this coordinator.
    local_workers: usize,
    /// In a cluster: the mail to the other processes (process 0 coordinates).
    post: Option<Arc<PostOffice>>,
    /// In a cluster, while the processes agree on the next epoch: sources send nothing.
    frozen: AtomicBool,
    /// [`Checkpoint::job`], stored in every manifest.
    job: JobFingerprint,
    execution: u64,
    fault: Arc<Fault>,
    resume: Option<ResumeFrom>,
    /// When recovery began.
    opened: Instant,
    /// Restored operator frames, read once per operator, by the worker that owns them.
    restored: Mutex<HashMap<String, Vec<Vec<Frame>>>>,
    /// The pending epoch, or `u64::MAX`: read by operators without the lock.
    pending_epoch: AtomicU64,
    state: Mutex<State>,
}

impl Checkpointer {
    /// Recovers from the newest usable snapshot in `config.dir` (see the module docs) and
    /// returns the coordinator of this process, which runs `local_workers` of the job's `peers`
    /// workers. In a cluster only process 0 takes the directory over ([`Role`]).
    /// `reopen` makes the committer of a sink whose manifest entry names its output file, so
    /// that such sinks recover before the job is built.
    pub(crate) fn open(
        config: &Checkpoint,
        peers: usize,
        local_workers: usize,
        role: Role,
        reopen: ReopenCommitter,
    ) -> Result<Arc<Checkpointer>, Error> {
        if config.interval.is_zero() {
            return Err(Error::Config(
                "Checkpoint::interval: must be longer than 0ms".into(),
            ));
        }
        if config.keep == 0 {
            return Err(Error::Config("Checkpoint::keep: must be at least 1".into()));
        }
        if config.every_records == Some(0) {
            return Err(Error::Config(
                "Checkpoint::every_records: must be at least 1".into(),
            ));
        }
        let opened = Instant::now();
        let process = match &role {
            Role::Alone => 0,
            Role::Leader(post) | Role::Follower { post, .. } => post.process,
        };
        let fault = Arc::new(Fault::from_env(process)?);
        let storage = LocalDir::new(config.dir.clone(), Arc::clone(&fault));
        storage.create().map_err(|e| {
            Error::io(
                format!(
                    "cannot create the checkpoint directory {}",
                    storage.describe(None)
                ),
                e,
            )
        })?;
        let (execution, resume, post) = match role {
            Role::Alone => {
                let (execution, resume) = recovery::take_over(&storage, &config.job)?;
                (execution, resume, None)
            }
            Role::Leader(post) => {
                let (execution, resume) = recovery::take_over(&storage, &config.job)?;
                (execution, resume, Some(post))
            }
            Role::Follower { post, start } => {
                let resume = recovery::follow(&storage, &config.job, start.resume)?;
                (start.execution, resume, Some(post))
            }
        };
        let leads = post.as_ref().is_none_or(|post| post.is_leader());

        // The sinks the manifest can reopen (file sinks) recover now, before the job is built
        // (a complete job is not built at all); the others recover when they register. In a
        // cluster every committing sink is process 0's.
        let recovered = match &resume {
            Some(from) if leads => {
                recovery::recover_reopenable(&storage, &fault, from, execution, reopen)?
            }
            _ => HashMap::new(),
        };
        let resumed_epoch = resume.as_ref().map(|r| r.manifest.epoch);
        let already_complete = resume.as_ref().is_some_and(|r| r.manifest.is_final);
        if let Some(epoch) = resumed_epoch.filter(|_| !already_complete && leads) {
            note!(
                "tideflow: resuming from the snapshot at epoch {epoch} in {}",
                storage.describe(None)
            );
        }
        Ok(Arc::new(Checkpointer {
            storage: Box::new(storage),
            interval: config.interval,
            every_records: config.every_records,
            keep: config.keep,
            peers,
            local_workers,
            post,
            frozen: AtomicBool::new(false),
            job: config.job.clone(),
            execution,
            fault,
            resume,
            opened,
            restored: Mutex::new(HashMap::new()),
            pending_epoch: AtomicU64::new(u64::MAX),
            state: Mutex::new(State {
                next_due: Instant::now() + config.interval,
                sent_since: 0,
                max_sent: resumed_epoch.unwrap_or(0),
                built: 0,
                registrations: Vec::new(),
                counters: HashMap::new(),
                pending: None,
                started: 0,
                recovered,
                done: already_complete,
                broken: false,
                stop_epoch: None,
                committed_epoch: None,
                report: SnapshotReport {
                    resumed_from: resumed_epoch,
                    already_complete,
                    ..SnapshotReport::default()
                },
                cluster: cluster::ClusterState::default(),
            }),
        }))
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// What the snapshots of this run did so far.
    pub(crate) fn report(&self) -> SnapshotReport {
        self.lock().report.clone()
    }

    /// Whether the checkpoint directory held a finished job.
    pub(crate) fn already_complete(&self) -> bool {
        self.resume.as_ref().is_some_and(|r| r.manifest.is_final)
    }

    /// The epoch the job resumed from.
    pub(crate) fn resumed_epoch(&self) -> Option<u64> {
        self.resume.as_ref().map(|r| r.manifest.epoch)
    }

    /// The pending snapshot's epoch.
    #[inline]
    pub(crate) fn pending(&self) -> Option<u64> {
        match self.pending_epoch.load(Ordering::Acquire) {
            u64::MAX => None,
            epoch => Some(epoch),
        }
    }

    /// Registers a source instance (`prefix` `src`) of `worker` or a sink (`sink`, on worker 0),
    /// numbered in registration order per worker and prefix: returns its index and its stem
    /// (`src0`, `sink1`), which names its parts (`src0-w1`, `sink1`). Stateful operators register
    /// by id instead (`register_operator`).
    fn register(
        &self,
        worker: usize,
        prefix: &'static str,
        kind: &str,
        committer: Option<Box<dyn Committer>>,
    ) -> (usize, String) {
        let mut state = self.lock();
        let counter = state.counters.entry((worker, prefix)).or_insert(0);
        let stem = format!("{prefix}{}", *counter);
        *counter += 1;
        let name = if prefix == "sink" {
            stem.clone()
        } else {
            format!("{stem}-w{worker}")
        };
        state.registrations.push(Registration {
            name,
            kind: kind.to_string(),
            committer,
            operator: None,
            finished: None,
        });
        (state.registrations.len() - 1, stem)
    }

    /// Registers a committing sink (on worker 0) and recovers it unless it was recovered before
    /// the workers started: returns its index and what it has committed.
    fn register_sink(&self, committer: Box<dyn Committer>) -> Result<(usize, Recovered), Error> {
        let (index, _) = self.register(0, "sink", "sink", Some(committer));
        let mut state = self.lock();
        let name = state.registrations[index].name.clone();
        if let Some(recovered) = state.recovered.get(&name) {
            return Ok((index, *recovered));
        }
        let committer = state.registrations[index]
            .committer
            .as_mut()
            .expect("a sink registration");
        let context = self.context(&name);
        let recovered = match &self.resume {
            Some(from) => {
                recovery::recover(&*self.storage, from, &name, &mut **committer, &context)?
            }
            None => {
                committer.verify(&context)?;
                committer.recover(None, &context)?
            }
        };
        Ok((index, recovered))
    }

    /// The commit context of sink `name`.
    fn context<'a>(&'a self, name: &'a str) -> CommitContext<'a> {
        CommitContext::new(name, self.execution, &*self.storage, &self.fault)
    }

    /// Worker `worker` has built its dataflow (and registered everything in it, restoring its
    /// state). Fails, before any data flows, if the job resumes from a snapshot whose stateful
    /// operators are not this worker's (every worker builds the same ones).
    pub(crate) fn worker_built(&self, worker: usize) -> Result<(), Error> {
        let mut state = self.lock();
        self.check_operators(&state, worker)?;
        state.built += 1;
        if state.built == self.local_workers {
            self.built_in_cluster(&mut state);
            if let Some(from) = &self.resume {
                let took = self.opened.elapsed();
                state.report.restore_duration = took;
                state.report.restored_bytes = from.manifest.parts.iter().map(|p| p.size).sum();
                note!(
                    "tideflow: restored {} bytes of state from epoch {} in {:.1} ms",
                    state.report.restored_bytes,
                    from.manifest.epoch,
                    took.as_secs_f64() * 1e3
                );
            }
        }
        Ok(())
    }

    /// Runs a source's poll under the coordinator's lock: `poll` gets the pending epoch (a
    /// snapshot is started first if one is due: by time, or by records sent with
    /// [`Checkpoint::every_records`]) and returns the largest stamp it sent and its watermark,
    /// so that the next epoch is above both, and how many records it sent.
    ///
    /// In a cluster, while the processes agree on the next epoch, `poll` is not called and
    /// `None` is returned: the source sends its batch later ([`Checkpointer::frozen`]).
    pub(crate) fn poll<R>(
        &self,
        poll: impl FnOnce(Option<u64>) -> (R, u64, u64),
    ) -> Result<Option<R>, Error> {
        let mut state = self.lock();
        if self.frozen() {
            return Ok(None);
        }
        let due = match self.every_records {
            Some(records) => state.sent_since >= records,
            None => Instant::now() >= state.next_due,
        };
        if due
            && state.pending.is_none()
            && !state.done
            && !state.broken
            && state.built == self.local_workers
        {
            self.start(&mut state)?;
            if self.frozen() {
                return Ok(None);
            }
        }
        let (result, high, sent) = poll(state.pending.as_ref().map(|p| p.epoch));
        state.max_sent = state.max_sent.max(high);
        state.sent_since = state.sent_since.saturating_add(sent);
        Ok(Some(result))
    }

    /// In a cluster, whether the processes are agreeing on the next epoch: sources must not
    /// send until they have.
    #[inline]
    pub(crate) fn frozen(&self) -> bool {
        self.frozen.load(Ordering::Acquire)
    }

    /// Starts the snapshot at the next epoch: above every stamp sent so far. In a cluster,
    /// asks process 0 for one instead (it agrees on the epoch with every process).
    fn start(&self, state: &mut State) -> Result<(), Error> {
        if self.post.is_some() {
            return self.ask_for_snapshot(state);
        }
        let epoch = state.max_sent.saturating_add(1);
        self.begin(state, epoch)?;
        self.pending_epoch.store(epoch, Ordering::Release);
        Ok(())
    }

    /// Creates the snapshot at `epoch` and makes it the pending one.
    fn begin(&self, state: &mut State, epoch: u64) -> Result<(), Error> {
        let id = SnapshotId {
            epoch,
            execution: self.execution,
        };
        state.started += 1;
        self.fault.begin_snapshot(state.started);
        if let Err(error) = self.storage.create_snapshot(id) {
            state.broken = true;
            return Err(Error::io(
                format!(
                    "cannot create snapshot directory {}",
                    self.storage.describe(Some(Location::Snapshot(id)))
                ),
                error,
            ));
        }
        state.pending = Some(Pending {
            epoch,
            id,
            started: Instant::now(),
            parts: HashMap::new(),
            sink_output: HashMap::new(),
            handed_in: false,
            remote: std::collections::BTreeMap::new(),
        });
        Ok(())
    }

    /// Hands in registration `index`'s part of the snapshot at `epoch`.
    fn save(&self, index: usize, epoch: u64, body: PartBody) -> Result<(), Error> {
        // The part is encoded and written without the lock: other workers' parts and sources'
        // polls go on meanwhile.
        let (id, name, kind) = {
            let state = self.lock();
            let Some(pending) = state.pending.as_ref().filter(|p| p.epoch == epoch) else {
                return Ok(());
            };
            let registration = &state.registrations[index];
            (
                pending.id,
                registration.name.clone(),
                registration.kind.clone(),
            )
        };
        let written = files::write_part(&*self.storage, id, &name, &kind, &body);
        let mut state = self.lock();
        if state.pending.as_ref().is_none_or(|p| p.epoch != epoch) {
            // Abandoned meanwhile (another part failed): its directory is gone or going.
            return Ok(());
        }
        let info = match written {
            Ok(info) => info,
            Err(error) => return Err(self.abandon(&mut state, error)),
        };
        let pending = state.pending.as_mut().expect("the pending snapshot");
        pending.parts.insert(index, info);
        if let PartBody::Sink(bytes) = body {
            pending.sink_output.insert(index, bytes);
        }
        self.complete_if_ready(&mut state)
    }

    /// Registration `index`'s input has ended; `last` is its part for every later snapshot.
    fn finish(&self, index: usize, last: PartBody) -> Result<(), Error> {
        let mut state = self.lock();
        state.registrations[index].finished = Some(last);
        self.complete_if_ready(&mut state)?;
        if self.post.is_some() {
            return self.finish_in_cluster(&mut state);
        }
        if !state.done
            && !state.broken
            && state.pending.is_none()
            && state.built == self.local_workers
            && state.registrations.iter().all(|r| r.finished.is_some())
        {
            // The end of the job: a final snapshot with the sinks' last output.
            self.begin(&mut state, u64::MAX)?;
            self.complete_if_ready(&mut state)?;
            state.done = true;
        }
        Ok(())
    }

    /// The restored cursors of source `name_stem`, by global partition.
    fn restored_cursors(
        &self,
        name_stem: &str,
    ) -> Result<Option<HashMap<u64, PartitionCursor>>, Error> {
        let Some(from) = &self.resume else {
            return Ok(None);
        };
        let prefix = format!("{name_stem}-w");
        let mut cursors = HashMap::new();
        for part in from
            .manifest
            .parts
            .iter()
            .filter(|p| p.file.starts_with(&prefix))
        {
            match files::read_part(&*self.storage, from.id, part)? {
                PartBody::Source(list) => {
                    cursors.extend(list.into_iter().map(|c| (c.partition, c)));
                }
                _ => return Err(self.mismatch(from.id, &part.file, &part.kind, "source")),
            }
        }
        Ok(Some(cursors))
    }

    fn mismatch(&self, id: SnapshotId, file: &str, was: &str, is: &str) -> Error {
        Error::Snapshot(format!(
            "{}: holds the state of a {was} operator where this job has a {is}; the snapshot was taken by another job",
            self.storage.describe(Some(Location::In(id, file)))
        ))
    }

    /// The snapshot the job resumed from, for operators.
    fn resumed(&self) -> Option<Resumed> {
        self.resume.as_ref().map(|r| Resumed {
            epoch: r.manifest.epoch,
            peers: r.manifest.peers,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::commit::CommitTarget;
    use super::*;

    fn no_reopen(target: &CommitTarget) -> Result<Box<dyn Committer>, Error> {
        panic!("no sink to reopen in this test: {target:?}")
    }

    #[test]
    fn a_newer_run_fences_an_older_one() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let config = Checkpoint::new(dir.path());
        let older =
            Checkpointer::open(&config, 1, 1, Role::Alone, no_reopen).expect("the first run opens");
        assert!(older.check_fence().is_ok());
        let newer = Checkpointer::open(&config, 1, 1, Role::Alone, no_reopen)
            .expect("the second run opens");
        assert_eq!(newer.execution, older.execution + 1);
        let error = older.check_fence().expect_err("the older run is fenced");
        assert!(error.to_string().contains("EXECUTION"), "{error}");
        assert!(newer.check_fence().is_ok());
    }

    #[test]
    fn only_the_newest_complete_snapshots_are_kept() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let config = Checkpoint {
            keep: 2,
            ..Checkpoint::new(dir.path())
        };
        let checkpointer =
            Checkpointer::open(&config, 1, 1, Role::Alone, no_reopen).expect("opens");
        let storage = &*checkpointer.storage;
        for epoch in [10, 20, 30, 40] {
            let id = SnapshotId {
                epoch,
                execution: 1,
            };
            storage.create_snapshot(id).expect("a snapshot directory");
            let manifest = Manifest {
                version: files::MANIFEST_VERSION,
                epoch,
                execution: 1,
                peers: 1,
                is_final: false,
                operators: Vec::new(),
                job: None,
                parts: Vec::new(),
                sinks: Vec::new(),
            };
            if epoch != 40 {
                files::write_manifest(storage, id, &manifest).expect("a manifest");
            }
        }
        checkpointer.collect_garbage();
        let left: Vec<u64> = storage
            .snapshots()
            .expect("lists")
            .into_iter()
            .map(|id| id.epoch)
            .collect();
        // The incomplete newest one goes too: only complete snapshots are kept.
        assert_eq!(left, vec![30, 20]);
    }

    #[test]
    fn every_records_starts_a_snapshot_once_that_many_records_were_sent() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let config = Checkpoint::new(dir.path()).every_records(100);
        let checkpointer =
            Checkpointer::open(&config, 1, 1, Role::Alone, no_reopen).expect("opens");
        checkpointer
            .worker_built(0)
            .expect("no snapshot to check against");
        // Sends `sent` records stamped up to `high`; returns the pending epoch it was shown.
        let poll = |sent: u64, high: u64| {
            checkpointer
                .poll(|pending| (pending, high, sent))
                .map(|polled| polled.expect("one process never freezes"))
        };
        assert_eq!(poll(60, 600).expect("polls"), None);
        assert_eq!(poll(39, 700).expect("polls"), None);
        assert_eq!(poll(1, 710).expect("polls"), None);
        // 100 records sent: the next poll starts the snapshot, above every stamp sent.
        assert_eq!(poll(5, 720).expect("polls"), Some(711));
        // At least 1.
        let zero = Checkpoint::new(dir.path()).every_records(0);
        assert_eq!(zero.every_records, Some(1));
    }
}
