//! Mail between the processes of a cluster ([`PostOffice`]): what one process's snapshot
//! coordinator or progress figures have to tell another process. Mail is queued here by any
//! thread and carried by the coordination dataflow (`src/coordination.rs`), a timely dataflow
//! every worker builds before the job's own, so that it travels on timely's connections and not
//! on a side channel.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use timely::scheduling::SyncActivator;

use super::lock;

/// One letter: its body is encoded by the module that sends it and decoded by the one that
/// receives it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) enum Mail {
    /// The snapshot protocol (`src/checkpoint/cluster.rs`).
    Snapshot(Vec<u8>),
    /// Process `from`'s figures, for process 0's progress reports (`src/metrics/cluster.rs`).
    Figures { from: usize, body: Vec<u8> },
}

/// The latest figures letter from one process, and when it came.
#[derive(Clone, Debug)]
pub(crate) struct Received {
    /// When it was delivered.
    pub(crate) at: Instant,
    /// Its body.
    pub(crate) body: Vec<u8>,
}

/// A letter and the global index of the worker it goes to (the first worker of its process).
pub(crate) type Letter = (u64, Mail);

/// The mail of one process of a cluster.
pub(crate) struct PostOffice {
    /// This process's index.
    pub(crate) process: usize,
    /// How many processes the cluster has.
    pub(crate) processes: usize,
    /// Workers per process.
    workers: usize,
    queue: Mutex<Vec<Letter>>,
    /// Wakes the operator that sends the queue (on this process's first worker).
    activator: Mutex<Option<SyncActivator>>,
    /// How many of this process's workers have left the job's dataflow.
    workers_done: AtomicUsize,
    /// How often this process sends its figures to process 0, once set (before the workers
    /// start).
    figures_every: OnceLock<Duration>,
    /// Process 0: the latest figures letter of each process.
    figures: Mutex<Vec<Option<Received>>>,
}

impl PostOffice {
    /// The post office of process `process` of `processes`, each with `workers` workers.
    pub(crate) fn new(process: usize, processes: usize, workers: usize) -> PostOffice {
        PostOffice {
            process,
            processes,
            workers: workers.max(1),
            queue: Mutex::new(Vec::new()),
            activator: Mutex::new(None),
            workers_done: AtomicUsize::new(0),
            figures_every: OnceLock::new(),
            figures: Mutex::new(vec![None; processes]),
        }
    }

    /// Whether this is process 0, which writes the manifests and totals the figures.
    pub(crate) fn is_leader(&self) -> bool {
        self.process == 0
    }

    /// Sends `mail` to process `to`.
    pub(crate) fn send(&self, to: usize, mail: Mail) {
        lock(&self.queue).push(((to * self.workers) as u64, mail));
        self.wake();
    }

    /// The letters queued since the last call.
    pub(crate) fn take(&self) -> Vec<Letter> {
        std::mem::take(&mut *lock(&self.queue))
    }

    /// The sending operator's activator.
    pub(crate) fn set_activator(&self, activator: SyncActivator) {
        *lock(&self.activator) = Some(activator);
    }

    /// Wakes the sending operator.
    pub(crate) fn wake(&self) {
        if let Some(activator) = lock(&self.activator).as_ref() {
            // A worker that has gone has nothing left to send.
            let _ = activator.activate();
        }
    }

    /// One of this process's workers has left the job's dataflow.
    pub(crate) fn worker_done(&self) {
        self.workers_done.fetch_add(1, Ordering::SeqCst);
        self.wake();
    }

    /// Sets how often this process sends its figures to process 0 (the first call wins).
    pub(crate) fn send_figures_every(&self, interval: Duration) {
        let _ = self.figures_every.set(interval);
    }

    /// How often this process sends its figures to process 0; `None` if it sends none.
    pub(crate) fn figures_every(&self) -> Option<Duration> {
        self.figures_every.get().copied()
    }

    /// Process 0: keeps `body`, the latest figures of process `from`.
    pub(crate) fn receive_figures(&self, from: usize, body: Vec<u8>) {
        if let Some(slot) = lock(&self.figures).get_mut(from) {
            *slot = Some(Received {
                at: Instant::now(),
                body,
            });
        }
    }

    /// Process 0: the latest figures letter of each process so far, by process.
    pub(crate) fn figures(&self) -> Vec<Option<Received>> {
        lock(&self.figures).clone()
    }

    /// Whether every worker of this process has left the job's dataflow: once the snapshot
    /// coordinator, if any, is over too, the process sends nothing more.
    pub(crate) fn workers_done(&self) -> bool {
        self.workers_done.load(Ordering::SeqCst) >= self.workers
    }
}
