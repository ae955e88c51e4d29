//! Graceful stops: the [`StopHandle`] a job is stopped with from outside (a signal handler, a
//! supervisor thread), and what the job context counts to tell when a stop has taken effect
//! ([`StopState`]): how many source instances this process runs and how many have stopped
//! reading.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

/// Asks a running job to stop gracefully, like Flink's stop-with-savepoint or Spark's
/// `StreamingQuery.stop()`: its sources stop reading, what is complete is written and
/// committed, and [`execute`](crate::execute) returns its [`JobReport`](crate::JobReport) with
/// [`stopped`](crate::JobReport::stopped) set.
///
/// What is complete: every row of a window the watermark has closed. Windows still open are
/// not written as final (the watermark did not pass them). With a checkpoint directory
/// ([`Config::checkpoint`](crate::Config::checkpoint)) the sources first read on until their
/// part of one more snapshot is saved (their watermark passes its epoch), and the job ends
/// once that snapshot is committed: the open windows are in it, and the same job started
/// again resumes exactly there, with the output an uninterrupted run would have written.
/// Without one, the job ends once every row already closed by the watermark has reached its
/// sink, and the open windows are lost, as with Spark's `stop()`.
///
/// Cloning gives another handle to the same job; [`stop`](StopHandle::stop) only sets a flag,
/// so it may be called from a signal handler's thread, any number of times.
///
/// # Examples
/// ```
/// use std::time::Duration;
/// use tideflow::source::{RateRecord, RateSource};
/// use tideflow::{sink::MemorySink, Config};
///
/// let config = Config::workers(2);
/// let stop = config.stop_handle();
/// let sink = MemorySink::new();
/// let rows = sink.clone();
/// // A rate source never ends: stop the job once some rows have come out.
/// let watcher = std::thread::spawn(move || {
///     while rows.len() < 10 {
///         std::thread::sleep(Duration::from_millis(5));
///     }
///     stop.stop();
/// });
/// let report = tideflow::execute(config, move |flow| {
///     flow.source(RateSource::new(1_000).partitions(2))
///         .with_event_time(|r: &RateRecord| r.ts)
///         .with_watermark(Duration::ZERO)
///         .sink(sink.clone());
///     Ok(())
/// })?;
/// watcher.join().unwrap();
/// assert!(report.stopped);
/// assert!(report.records_in >= 10);
/// # Ok::<(), tideflow::Error>(())
/// ```
#[derive(Clone, Debug, Default)]
pub struct StopHandle {
    requested: Arc<AtomicBool>,
}

impl StopHandle {
    /// A handle of a job that is not asked to stop.
    pub fn new() -> Self {
        StopHandle::default()
    }

    /// Asks the job to stop gracefully (see [`StopHandle`]). Calling it again does nothing
    /// more.
    pub fn stop(&self) {
        self.requested.store(true, Ordering::SeqCst);
    }

    /// Whether [`stop`](StopHandle::stop) was called.
    pub fn is_stop_requested(&self) -> bool {
        self.requested.load(Ordering::Relaxed)
    }
}

/// A job's stop handle and how far a requested stop has got in this process.
#[derive(Default)]
pub(crate) struct StopState {
    pub(crate) handle: StopHandle,
    /// Worker threads of this process.
    pub(crate) workers: usize,
    /// Workers of this process that have built their dataflow.
    workers_built: AtomicUsize,
    /// Source instances built in this process.
    sources: AtomicUsize,
    /// Source instances that have stopped reading for the stop.
    sources_stopped: AtomicUsize,
    /// The stop has taken effect: a worker ended for it.
    took_effect: AtomicBool,
}

impl StopState {
    /// The state of a job on `workers` threads in this process, stopped through `handle`.
    pub(crate) fn new(handle: StopHandle, workers: usize) -> Self {
        StopState {
            handle,
            workers,
            ..StopState::default()
        }
    }

    /// Whether a graceful stop was requested.
    #[inline]
    pub(crate) fn requested(&self) -> bool {
        self.handle.is_stop_requested()
    }

    /// A worker has built its dataflow.
    pub(crate) fn worker_built(&self) {
        self.workers_built.fetch_add(1, Ordering::SeqCst);
    }

    /// A source instance was built.
    pub(crate) fn source_built(&self) {
        self.sources.fetch_add(1, Ordering::SeqCst);
    }

    /// A source instance has stopped reading (call once per instance).
    pub(crate) fn source_stopped(&self) {
        self.sources_stopped.fetch_add(1, Ordering::SeqCst);
    }

    /// The stop has taken effect: the job ends for it.
    pub(crate) fn took_effect(&self) {
        self.took_effect.store(true, Ordering::SeqCst);
    }

    /// Whether the job ended for a graceful stop.
    pub(crate) fn has_taken_effect(&self) -> bool {
        self.took_effect.load(Ordering::SeqCst)
    }

    /// Whether every source instance of this process has stopped reading, every worker
    /// having built its own.
    pub(crate) fn sources_stopped(&self) -> bool {
        self.workers_built.load(Ordering::SeqCst) >= self.workers
            && self.sources_stopped.load(Ordering::SeqCst) >= self.sources.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_have_stopped_once_every_worker_built_and_every_source_stopped() {
        let handle = StopHandle::new();
        let state = StopState::new(handle.clone(), 2);
        assert!(!state.requested());
        handle.clone().stop();
        assert!(state.requested());
        state.worker_built();
        state.source_built();
        state.source_stopped();
        // The second worker has not built its sources yet.
        assert!(!state.sources_stopped());
        state.worker_built();
        state.source_built();
        assert!(!state.sources_stopped());
        state.source_stopped();
        assert!(state.sources_stopped());
    }
}
