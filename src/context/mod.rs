//! The job context: what every worker of a job in this process shares, and what operators,
//! sources and sinks report into while the job runs ([`SharedJob`]): the stop flag and the
//! error slot (the first error stops every worker and is the one [`execute`](crate::execute)
//! returns), a graceful stop ([`StopHandle`], `stop.rs`), the job's counters, the state
//! totals, the figures progress reports read ([`JobMetrics`]), and in a cluster the sockets to
//! break when the job fails.
//!
//! A leaf of the crate (docs/ARCHITECTURE.md "Layers"): it imports only `error`, std, the
//! operators crate and timely, so that every layer above (checkpoints, source and sink drivers,
//! the API, the runtime) can take the context explicitly.

mod idle;
mod metrics;
mod post;
mod stop;

use std::collections::BTreeMap;
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use tideflow_operators::state::StateCount;

use crate::error::Error;

pub use stop::StopHandle;
pub(crate) use stop::StopState;

pub(crate) use idle::{IdleSources, PeerFloor};
pub(crate) use metrics::{
    count_window, latency_histogram, lock, wall_clock_us, JobMetrics, LatencyRecorder,
    WatermarkSlot, WindowCount,
};
pub use metrics::{PartitionGauge, PartitionGauges};
pub(crate) use post::{Letter, Mail, PostOffice, Received};

/// The job context: state shared by all workers of a job in this process.
#[derive(Default)]
pub(crate) struct SharedJob {
    /// Set once the job must stop (an error, or a lost peer).
    stop: AtomicBool,
    /// A graceful stop: its handle and how far it has got ([`StopHandle`]).
    pub(crate) graceful: StopState,
    /// The job's first error.
    error: Mutex<Option<Error>>,
    /// Records read from sources.
    pub(crate) records_in: AtomicU64,
    /// Records written to sinks.
    pub(crate) records_out: AtomicU64,
    /// Late records dropped.
    pub(crate) late_dropped: AtomicU64,
    /// Late records routed to a late-data output.
    pub(crate) late_routed: AtomicU64,
    /// Bad input records skipped.
    pub(crate) records_skipped: AtomicU64,
    /// Bad input records written to a dead-letter file.
    pub(crate) records_dead_lettered: AtomicU64,
    /// Events held back from the watermark by the future-skew guard.
    pub(crate) future_events: AtomicU64,
    /// Every finished worker's state rows per operator, summed.
    state: Mutex<BTreeMap<String, StateCount>>,
    /// What progress reports read besides the counters above (src/metrics).
    pub(crate) metrics: JobMetrics,
    /// The watermarks of source instances with an idle timeout, for their all-idle peers.
    pub(crate) idle_sources: IdleSources,
    /// In a cluster: this process's sockets to its peers (clones of timely's), to break them
    /// when the job stops with an error, so that the peers stop too.
    peers: Mutex<Vec<TcpStream>>,
    /// In a cluster: the mail to and from the other processes.
    pub(crate) post: OnceLock<Arc<PostOffice>>,
}

impl SharedJob {
    /// The context of a job that a graceful stop reaches through `graceful`.
    pub(crate) fn stopped_by(graceful: StopState) -> Self {
        SharedJob {
            graceful,
            ..SharedJob::default()
        }
    }

    /// Breaks the connections to the other processes of a cluster (once): their network
    /// threads see the connection end without timely's clean shutdown, so they stop with an
    /// error naming this process instead of waiting for its progress for ever.
    pub(crate) fn break_cluster(&self) {
        let peers = std::mem::take(&mut *lock(&self.peers));
        for socket in peers {
            let _ = socket.shutdown(Shutdown::Both);
        }
    }

    /// Records `error` (the first one wins) and asks every worker to stop.
    pub(crate) fn fail(&self, error: Error) {
        let mut slot = lock(&self.error);
        slot.get_or_insert(error);
        self.stop.store(true, Ordering::SeqCst);
    }

    /// Whether the job must stop.
    pub(crate) fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// The job's first error, taken out of its slot.
    pub(crate) fn take_error(&self) -> Option<Error> {
        lock(&self.error).take()
    }

    /// In a cluster: keeps `sockets`, clones of this process's connections to its peers, for
    /// [`SharedJob::break_cluster`].
    pub(crate) fn keep_cluster_sockets(&self, sockets: Vec<TcpStream>) {
        *lock(&self.peers) = sockets;
    }

    /// Adds a finished worker's state rows of operator `name` to the job's totals.
    pub(crate) fn add_state(&self, name: &str, count: StateCount) {
        let mut totals = lock(&self.state);
        let total = totals.entry(name.to_string()).or_default();
        total.rows += count.rows;
        total.peak += count.peak;
    }

    /// The job's state totals, taken once every worker has added its own.
    pub(crate) fn take_state(&self) -> BTreeMap<String, StateCount> {
        std::mem::take(&mut *lock(&self.state))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_error_wins_and_stops_the_job() {
        let job = SharedJob::default();
        assert!(!job.stopped());
        job.fail(Error::Config("first".into()));
        job.fail(Error::Config("second".into()));
        assert!(job.stopped());
        assert!(matches!(job.take_error(), Some(Error::Config(m)) if m == "first"));
        assert!(job.take_error().is_none());
    }

    #[test]
    fn state_totals_sum_rows_and_peaks_over_workers() {
        let job = SharedJob::default();
        job.add_state("running", StateCount { rows: 2, peak: 5 });
        job.add_state("running", StateCount { rows: 3, peak: 4 });
        job.add_state("dedup", StateCount { rows: 1, peak: 1 });
        let totals = job.take_state();
        assert_eq!(totals["running"], StateCount { rows: 5, peak: 9 });
        assert_eq!(totals["dedup"], StateCount { rows: 1, peak: 1 });
        assert!(job.take_state().is_empty());
    }
}
