//! Running a job: worker threads, the dataflow each one builds, and how a job ends.
//!
//! [`execute`] starts the configured number of timely workers. Each calls the user's build
//! function with a [`Flow`], the handle for adding sources, and then steps its dataflow until
//! every terminal operator (each sink, and each counter of late records) has seen the end of
//! its input, or until any worker reports an error. Errors travel through a slot shared by all
//! workers of the process, so the first one stops everybody and is the one returned.

use std::any::Any;
use std::collections::BTreeMap;
use std::panic::{self, AssertUnwindSafe};
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, Receiver};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tideflow_operators::snapshot::KEY_GROUPS;
use tideflow_operators::state::StateCount;
use tideflow_operators::Trigger;
use timely::communication::allocator::zero_copy::initialize::initialize_networking_from_sockets;
use timely::communication::allocator::ProcessBuilder;
use timely::communication::{AllocatorBuilder, Hooks};
use timely::worker::Worker;
use timely::WorkerConfig;

use crate::checkpoint::{Checkpoint, Checkpointer, Role, SnapshotReport};
use crate::cluster::{announce, receive, Cluster, PanicRouting, PeerWatch, SnapshotStart, StartUp};
use crate::context::{PostOffice, SharedJob, StopHandle, StopState};
use crate::error::Error;
use crate::flow::Flow;
use crate::metrics::{Progress, ProgressListener};
use crate::worker::WorkerJob;

/// How a job runs.
///
/// # Examples
/// ```
/// let config = tideflow::Config::workers(4);
/// assert_eq!(config.workers, 4);
/// assert_eq!(tideflow::Config::default().workers, 1);
/// ```
#[derive(Clone, Debug)]
pub struct Config {
    /// Worker threads in this process. By default, 1.
    pub workers: usize,
    /// When sources let the watermark advance, and whether they stop at the end of the input
    /// available now. By default, [`Trigger::Continuous`].
    pub trigger: Trigger,
    /// Periodic snapshots, recovery and exactly-once file output (DESIGN.md "Snapshots"). By
    /// default, none.
    pub checkpoint: Option<Checkpoint>,
    /// This process's place in a multi-process cluster; `workers` threads run in each
    /// process. By default, none: one process.
    pub cluster: Option<Cluster>,
    /// Progress reports while the job runs ([`Config::progress`]). By default, none.
    pub progress: Option<ProgressListener>,
    /// What stops the job gracefully from outside ([`Config::stop_handle`]). By default, a
    /// handle of its own, which nothing calls. A clone of the config shares it, and a handle
    /// once stopped stops every later job run with it at once: give each run a fresh one.
    pub stop: StopHandle,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            workers: 1,
            trigger: Trigger::Continuous,
            checkpoint: None,
            cluster: None,
            progress: None,
            stop: StopHandle::new(),
        }
    }
}

impl Config {
    /// A job on `workers` worker threads (at least 1).
    pub fn workers(workers: usize) -> Self {
        Config {
            workers: workers.max(1),
            ..Config::default()
        }
    }

    /// Sets the job's trigger (DESIGN.md "Triggers"). Every trigger gives the same final
    /// results; they differ in when results leave.
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    /// use tideflow::{Config, Trigger};
    /// // Micro-batches: the watermark advances every 100 ms of processing time.
    /// let config = Config::workers(2).trigger(Trigger::Interval(Duration::from_millis(100)));
    /// assert_eq!(config.trigger, Trigger::Interval(Duration::from_millis(100)));
    /// ```
    pub fn trigger(mut self, trigger: Trigger) -> Self {
        self.trigger = trigger;
        self
    }

    /// Takes snapshots as `checkpoint` says, and resumes from the newest usable one in its
    /// directory when the job starts (see [`Checkpoint`]). Every source must be replayable and
    /// every stateful operator's accumulators serializable; file sinks then commit their output
    /// exactly once, per snapshot.
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    /// use tideflow::{Checkpoint, Config};
    /// let dir = tempfile::tempdir()?;
    /// let config = Config::workers(2).checkpoint(Checkpoint {
    ///     interval: Duration::from_millis(500),
    ///     ..Checkpoint::new(dir.path())
    /// });
    /// assert_eq!(config.checkpoint.unwrap().keep, 2);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn checkpoint(mut self, checkpoint: Checkpoint) -> Self {
        self.checkpoint = Some(checkpoint);
        self
    }

    /// Runs this process as process `cluster.process` of a cluster (DESIGN.md "Multi-worker and
    /// multi-process"): it connects to the other processes, proves the shared secret, and its
    /// `workers` threads join theirs into one job. Every process must run the same job.
    pub fn cluster(mut self, cluster: Cluster) -> Self {
        self.cluster = Some(cluster);
        self
    }

    /// Calls `callback` with a [`Progress`] report every `interval` (at least 1 ms) while the
    /// job runs, and once more when it ends ([`Progress::is_final`]). It runs on a reporter
    /// thread of its own, so a slow callback delays reports, not the job. Replaces an earlier
    /// listener.
    ///
    /// # Examples
    /// ```
    /// use std::sync::{Arc, Mutex};
    /// use std::time::Duration;
    /// use tideflow::{sink::MemorySink, source::MemorySource, Config};
    ///
    /// let reports = Arc::new(Mutex::new(Vec::new()));
    /// let seen = Arc::clone(&reports);
    /// let config = Config::default().progress(Duration::from_millis(50), move |progress| {
    ///     seen.lock().unwrap().push(progress.clone());
    /// });
    /// tideflow::execute(config, |flow| {
    ///     flow.source(MemorySource::new(vec![1u64, 2, 3]))
    ///         .with_event_time(|t| *t)
    ///         .with_watermark(Duration::ZERO)
    ///         .sink(MemorySink::new());
    ///     Ok(())
    /// })?;
    /// let reports = reports.lock().unwrap();
    /// let last = reports.last().unwrap();
    /// assert!(last.is_final);
    /// assert_eq!((last.input_rows, last.output_rows, last.processed_rows), (3, 3, 3));
    /// # Ok::<(), tideflow::Error>(())
    /// ```
    pub fn progress(
        mut self,
        interval: Duration,
        callback: impl Fn(&Progress) + Send + Sync + 'static,
    ) -> Self {
        self.progress = Some(ProgressListener::new(interval, callback));
        self
    }

    /// As [`Config::progress`], for a callback that can fail (one that writes the reports to a
    /// file): its first `Err` stops the job, which returns that error, and no more reports
    /// are taken.
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    /// use tideflow::{sink::MemorySink, source::MemorySource, Config, Error};
    ///
    /// let config = Config::default().try_progress(Duration::from_millis(50), |_| {
    ///     Err(Error::Config("no more reports".into()))
    /// });
    /// let result = tideflow::execute(config, |flow| {
    ///     flow.source(MemorySource::new(vec![1u64, 2, 3]))
    ///         .with_event_time(|t| *t)
    ///         .with_watermark(Duration::ZERO)
    ///         .sink(MemorySink::new());
    ///     Ok(())
    /// });
    /// assert_eq!(result.unwrap_err().to_string(), "no more reports");
    /// ```
    pub fn try_progress(
        mut self,
        interval: Duration,
        callback: impl Fn(&Progress) -> Result<(), Error> + Send + Sync + 'static,
    ) -> Self {
        self.progress = Some(ProgressListener::try_new(interval, callback));
        self
    }

    /// Sends a [`Progress`] report every `interval` to the returned channel, and the final one
    /// when the job ends; the sender is dropped with the job, so iterating the receiver ends.
    /// Reports queue up until received. Replaces an earlier listener.
    pub fn progress_channel(self, interval: Duration) -> (Config, Receiver<Progress>) {
        let (sender, receiver) = mpsc::channel();
        let config = self.progress(interval, move |progress| {
            // A receiver that hung up no longer wants reports.
            let _ = sender.send(progress.clone());
        });
        (config, receiver)
    }

    /// A handle that stops the job gracefully ([`StopHandle`]): its sources stop reading,
    /// what is complete is written (and, with snapshots, committed in one last snapshot the
    /// job resumes from), and [`execute`] returns with [`JobReport::stopped`] set. A signal
    /// handler may hold it.
    pub fn stop_handle(&self) -> StopHandle {
        self.stop.clone()
    }

    fn timely(&self) -> timely::Config {
        if self.workers <= 1 {
            timely::Config::thread()
        } else {
            timely::Config::process(self.workers)
        }
    }
}

/// What a finished job did, summed over its workers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct JobReport {
    /// Records read from sources.
    pub records_in: u64,
    /// Records written to sinks.
    pub records_out: u64,
    /// Records that arrived after every window they belong to had closed, and were dropped.
    pub late_dropped: u64,
    /// Late records sent to a late-data output instead of being dropped.
    pub late_routed: u64,
    /// Input records that could not be decoded and were skipped (`OnError::Skip`).
    pub records_skipped: u64,
    /// Input records that could not be decoded and went to a dead-letter file.
    pub records_dead_lettered: u64,
    /// Events stamped further ahead of the wall clock than the allowed future skew: processed,
    /// but kept from advancing the watermark.
    pub future_events: u64,
    /// Rows of keyed state per stateful operator, by its id (the name the job gave it, or by
    /// default its kind, `#2`, `#3` for repeats), summed over workers: held at the end, and the
    /// sum of each worker's peak.
    pub state: BTreeMap<String, StateCount>,
    /// Snapshots taken and the one resumed from (all zero without a checkpoint directory).
    pub snapshots: SnapshotReport,
    /// Whether the job ended because it was stopped ([`StopHandle::stop`]) before its input
    /// ended: windows still open were not written (with snapshots, they are in the last one,
    /// and the job resumes from it).
    pub stopped: bool,
    /// Wall-clock time from start to finish.
    pub elapsed: Duration,
}

/// Builds this worker's dataflow and steps it until its terminals are done, the job stops or
/// (in a cluster, watched by `peers`) it loses a peer.
fn run_worker<F>(worker: &mut Worker, job: &Rc<WorkerJob>, build: &F, peers: Option<&PeerWatch>)
where
    F: Fn(&mut Flow<'_>) -> Result<(), Error>,
{
    if let Some(post) = job.shared.post.get() {
        let workers = job.peers / post.processes;
        crate::coordination::build(
            worker,
            job.index,
            workers,
            post,
            &job.shared,
            job.checkpointer.as_ref(),
        );
    }
    let mut built = worker.dataflow::<u64, _, _>(|scope| {
        build(&mut Flow {
            scope,
            job: Rc::clone(job),
        })
    });
    if let Some(checkpointer) = &job.checkpointer {
        built = built.and(checkpointer.worker_built(job.index));
    }
    if let Err(error) = built {
        job.shared.fail(error);
        return;
    }
    job.shared.graceful.worker_built();
    loop {
        // A graceful stop closes the sinks, which may finish the job's terminals: look at it
        // first, so that a stop that took effect is reported as one.
        if job.shared.graceful.requested() && job.stop_took_effect() {
            job.shared.graceful.took_effect();
            return;
        }
        if job.finished() || job.shared.stopped() {
            return;
        }
        worker.step_or_park(Some(Duration::from_millis(1)));
        if let Some((peer, reason)) = peers.and_then(PeerWatch::lost_peer) {
            job.shared
                .fail(Error::Cluster(format!("lost process {peer}: {reason}")));
        }
    }
}

/// Opens the snapshot coordinator of this process, if the job takes snapshots. In a cluster,
/// process 0 takes the checkpoint directory over and tells the others (on `sockets`, before
/// timely has them) which execution and snapshot they start with, or why it refused to start.
fn open_checkpointer(
    config: &Config,
    sockets: Option<&[Option<std::net::TcpStream>]>,
    post: Option<&Arc<PostOffice>>,
) -> Result<Option<Arc<Checkpointer>>, Error> {
    let workers = config.workers.max(1);
    let reopen = crate::sink::reopen_committer;
    let (Some(sockets), Some(post), Some(cluster)) = (sockets, post, &config.cluster) else {
        return config
            .checkpoint
            .as_ref()
            .map(|checkpoint| Checkpointer::open(checkpoint, workers, workers, Role::Alone, reopen))
            .transpose();
    };
    let peers = workers * post.processes;
    if post.is_leader() {
        let opened = config
            .checkpoint
            .as_ref()
            .map(|checkpoint| {
                let role = Role::Leader(Arc::clone(post));
                Checkpointer::open(checkpoint, peers, workers, role, reopen)
            })
            .transpose();
        let message = match &opened {
            Ok(checkpointer) => StartUp::Start {
                snapshots: checkpointer.as_ref().map(|c| SnapshotStart {
                    execution: c.execution(),
                    resume: c.resume_id(),
                    complete: c.already_complete(),
                }),
            },
            Err(error) => StartUp::Refused(error.to_string()),
        };
        let announced = announce(sockets, &message);
        let opened = opened?;
        announced?;
        return Ok(opened);
    }
    let to_leader = sockets
        .first()
        .and_then(Option::as_ref)
        .ok_or_else(|| Error::Internal("no connection to process 0".into()))?;
    match (receive(to_leader, cluster.connect_timeout)?, &config.checkpoint) {
        (StartUp::Refused(reason), _) => Err(Error::Cluster(format!(
            "process 0 refused to start the job: {reason}"
        ))),
        (StartUp::Start { snapshots: None }, None) => Ok(None),
        (StartUp::Start { snapshots: Some(start) }, Some(checkpoint)) => {
            let role = Role::Follower {
                post: Arc::clone(post),
                start,
            };
            Checkpointer::open(checkpoint, peers, workers, role, reopen).map(Some)
        }
        (StartUp::Start { snapshots }, _) => Err(Error::Config(format!(
            "Config::checkpoint: process 0 of this cluster {} snapshots and this process {}; give every process the same checkpoint directory",
            if snapshots.is_some() { "takes" } else { "takes no" },
            if config.checkpoint.is_some() { "does" } else { "does not" }
        ))),
    }
}

/// The most worker threads a job may have, over all its processes: keyed state is spread over
/// this many key groups ([`KEY_GROUPS`]), so a worker beyond them would own no key and only add
/// threads, channels and memory (1024 workers took 200 s and 1.5 GB for 8 records).
pub const MAX_WORKERS: usize = KEY_GROUPS as usize;

/// Refuses more workers, over all processes, than there are key groups ([`MAX_WORKERS`]).
fn check_workers(config: &Config) -> Result<(), Error> {
    let processes = config.cluster.as_ref().map_or(1, Cluster::processes);
    let total = config.workers.max(1).saturating_mul(processes);
    if total > MAX_WORKERS {
        let what = match processes {
            1 => format!("{} workers", config.workers),
            _ => format!(
                "{} workers in each of {processes} processes ({total} in all)",
                config.workers
            ),
        };
        return Err(Error::Config(format!(
            "Config::workers: {what} is more than the {MAX_WORKERS} key groups keyed state is spread over; use at most {MAX_WORKERS} in all"
        )));
    }
    Ok(())
}

/// The message of a panic payload.
fn panic_message(payload: &(dyn Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_string())
}

/// Runs a job: calls `build` on every worker to construct its dataflow, then runs the dataflow
/// until all input is consumed and every sink has closed, or until an error.
///
/// Returns what the job did, or the first error any worker hit: a configuration error from
/// `build`, a source or sink error, or [`Error::Internal`] if a worker panicked.
///
/// # Examples
/// ```
/// use std::time::Duration;
/// use tideflow::{aggregate::Count, sink::MemorySink, source::MemorySource, Config, Window};
///
/// let clicks: Vec<(String, u64)> = [("ann", 1_000), ("bob", 1_500), ("ann", 2_500), ("ann", 900)]
///     .into_iter()
///     .map(|(user, ts)| (user.to_string(), ts))
///     .collect();
/// let sink = MemorySink::new();
/// let output = sink.clone();
/// let report = tideflow::execute(Config::workers(2), move |flow| {
///     flow.source(MemorySource::new(clicks.clone()))
///         .with_event_time(|(_, ts)| *ts)
///         .with_watermark(Duration::from_millis(500))
///         .key_by(|(user, _)| user.clone())
///         .window(Window::tumbling(Duration::from_secs(2))?)
///         .aggregate(Count)
///         .sink(output.clone());
///     Ok(())
/// })?;
/// let mut rows: Vec<(String, u64, u64)> =
///     sink.take().into_iter().map(|r| (r.key, r.start, r.value)).collect();
/// rows.sort();
/// // ann@900 came 1.6 s behind ann@2500, more than the 500 ms allowed: late, dropped, counted.
/// assert_eq!(rows, vec![("ann".into(), 0, 1), ("ann".into(), 2_000, 1), ("bob".into(), 0, 1)]);
/// assert_eq!((report.records_in, report.late_dropped), (4, 1));
/// # Ok::<(), tideflow::Error>(())
/// ```
pub fn execute<F>(config: Config, build: F) -> Result<JobReport, Error>
where
    F: Fn(&mut Flow<'_>) -> Result<(), Error> + Send + Sync + 'static,
{
    let started = Instant::now();
    check_workers(&config)?;
    // A cluster connects first: process 0 recovers the checkpoint directory and tells the
    // others how to start.
    let (sockets, post) = match &config.cluster {
        Some(cluster) => {
            let sockets = cluster.connect()?;
            let post = PostOffice::new(cluster.process, cluster.processes(), config.workers.max(1));
            (Some(sockets), Some(Arc::new(post)))
        }
        None => (None, None),
    };
    let checkpointer = open_checkpointer(&config, sockets.as_deref(), post.as_ref())?;
    if let Some(checkpointer) = checkpointer.as_ref().filter(|c| c.already_complete()) {
        return Ok(JobReport {
            snapshots: checkpointer.report(),
            elapsed: started.elapsed(),
            ..JobReport::default()
        });
    }
    let worker_checkpointer = checkpointer.clone();
    let shared = Arc::new(SharedJob::stopped_by(StopState::new(
        config.stop.clone(),
        config.workers.max(1),
    )));
    if let Some(post) = &post {
        let _ = shared.post.set(Arc::clone(post));
    }
    let worker_shared = Arc::clone(&shared);
    let trigger = config.trigger;
    // In a cluster: the job's own lost-peer watch, fed by panics routed to it while it runs.
    let peer_watch = config
        .cluster
        .as_ref()
        .map(|_| Arc::new(PeerWatch::default()));
    let _routing = peer_watch.as_ref().map(|_| PanicRouting::install());
    let worker_watch = peer_watch.clone();
    let work = move |worker: &mut Worker| {
        if let Some(watch) = &worker_watch {
            watch.tag_worker_thread();
        }
        let job = Rc::new(WorkerJob::new(
            worker.index(),
            worker.peers(),
            trigger,
            Arc::clone(&worker_shared),
            worker_checkpointer.clone(),
        ));
        // A panic (a bug, or a panicking user closure) must not leave the other workers waiting
        // for this one's progress: it becomes the job's error and every worker stops.
        let ran = panic::catch_unwind(AssertUnwindSafe(|| {
            run_worker(worker, &job, &build, worker_watch.as_deref())
        }));
        if let Some(post) = job.shared.post.get() {
            post.worker_done();
        }
        if let Err(payload) = ran {
            job.shared.fail(Error::Internal(format!(
                "a worker panicked: {}",
                panic_message(&*payload)
            )));
        }
        job.report_state();
        if job.shared.stopped() || !job.finished() || job.shared.graceful.has_taken_effect() {
            // Sources halted without closing their windows (after an error, or a graceful
            // stop); timely would wait for them forever.
            for dataflow in worker.installed_dataflows() {
                worker.drop_dataflow(dataflow);
            }
            // So would the other processes of a cluster.
            job.shared.break_cluster();
        }
    };
    // Progress reports (src/metrics): a reporter thread while the workers run.
    let reporter =
        crate::metrics::Reporter::start(config.progress.as_ref(), &shared, checkpointer.clone());
    let guards = match &config.cluster {
        None => timely::execute(config.timely(), work),
        Some(cluster) => {
            let sockets = sockets.expect("a cluster's connections");
            shared.keep_cluster_sockets(
                sockets
                    .iter()
                    .flatten()
                    .filter_map(|socket| socket.try_clone().ok())
                    .collect(),
            );
            let threads = config.workers.max(1);
            let hooks = peer_watch
                .as_ref()
                .map_or_else(Hooks::default, PeerWatch::hooks);
            let allocators = ProcessBuilder::new_typed_vector(
                threads,
                hooks.refill.clone(),
                hooks.spill.clone(),
            );
            let (builders, guard) = initialize_networking_from_sockets(
                allocators,
                sockets,
                cluster.process,
                threads,
                hooks,
            )
            .map_err(|e| Error::io("cannot start the cluster's network threads", e))?;
            let builders = builders.into_iter().map(AllocatorBuilder::Tcp).collect();
            timely::execute::execute_from(builders, Box::new(guard), WorkerConfig::default(), work)
        }
    }
    .map_err(|e| Error::Internal(format!("could not start workers: {e}")))?;

    // A lost peer leaves a panicked network thread, whose guard panics when it is dropped
    // at the end of `join`: that is expected, and the lost peer is the error.
    let joined = {
        let _tag = peer_watch.as_ref().map(PeerWatch::tag_thread);
        panic::catch_unwind(AssertUnwindSafe(|| guards.join()))
    };
    let mut lost_peer = peer_watch.as_ref().and_then(|watch| watch.lost_peer());
    reporter.finish();
    // A cluster stopping gracefully: a peer that stopped before this process broke its
    // connections as it ended; that is the stop, not an error.
    let peer_stopped = lost_peer.is_some() && shared.graceful.requested();
    if peer_stopped {
        shared.graceful.took_effect();
    }
    // A job that stopped on its own error broke its connections itself: that error is the
    // one to report (a worker's panic on a queue the lost peer poisoned is not).
    let own_error = shared.take_error();
    if let Some(error) = own_error {
        if !matches!(error, Error::Internal(_) | Error::Cluster(_)) || lost_peer.is_none() {
            return Err(error);
        }
    }
    if peer_stopped {
        lost_peer = None;
    }
    if let (Some(cluster), Some((peer, reason))) = (&config.cluster, lost_peer) {
        let address = cluster.addresses.get(peer).cloned().unwrap_or_default();
        return Err(Error::Cluster(format!(
            "lost process {peer} ({address}): {reason}; stopping"
        )));
    }
    let mut panic = None;
    match joined {
        Ok(results) => {
            for result in results {
                if let Err(message) = result {
                    panic.get_or_insert(message);
                }
            }
        }
        Err(payload) => {
            panic.get_or_insert(panic_message(&*payload));
        }
    }
    if let Some(message) = panic.filter(|_| !peer_stopped) {
        return Err(Error::Internal(format!("a worker panicked: {message}")));
    }
    let state = shared.take_state();
    Ok(JobReport {
        records_in: shared.records_in.load(Ordering::Relaxed),
        records_out: shared.records_out.load(Ordering::Relaxed),
        late_dropped: shared.late_dropped.load(Ordering::Relaxed),
        late_routed: shared.late_routed.load(Ordering::Relaxed),
        records_skipped: shared.records_skipped.load(Ordering::Relaxed),
        records_dead_lettered: shared.records_dead_lettered.load(Ordering::Relaxed),
        future_events: shared.future_events.load(Ordering::Relaxed),
        state,
        snapshots: checkpointer.map(|c| c.report()).unwrap_or_default(),
        stopped: shared.graceful.has_taken_effect(),
        elapsed: started.elapsed(),
    })
}
