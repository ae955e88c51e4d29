//! The snapshot a graceful stop ([`StopHandle`](crate::StopHandle)) ends the job at, like
//! Flink's stop-with-savepoint: the one pending when the stop is asked for, or else one started
//! at once; the job ends once it is committed.

use super::Checkpointer;
use crate::error::Error;

impl Checkpointer {
    /// A graceful stop was requested ([`StopHandle`](crate::StopHandle)): the snapshot
    /// pending now, or else one started at once, is the one the job stops at (like Flink's
    /// stop-with-savepoint). Returns its epoch, once every worker has built its dataflow and
    /// unless the job has ended or a snapshot failed.
    pub(crate) fn stop_snapshot(&self) -> Result<Option<u64>, Error> {
        let mut state = self.lock();
        if state.stop_epoch.is_none()
            && !state.done
            && !state.broken
            && state.built == self.local_workers
        {
            if state.pending.is_none() {
                // In a cluster this asks process 0 for a snapshot: its epoch becomes the stop
                // epoch when it begins (`cluster.rs`).
                state.cluster.stop_wanted = true;
                self.start(&mut state)?;
            }
            state.stop_epoch = state.pending.as_ref().map(|p| p.epoch);
        }
        Ok(state.stop_epoch)
    }

    /// Whether the snapshot a graceful stop asked for is committed (or the job has ended).
    pub(crate) fn stop_snapshot_committed(&self) -> bool {
        let state = self.lock();
        state.done
            || state
                .stop_epoch
                .is_some_and(|epoch| state.committed_epoch.is_some_and(|done| done >= epoch))
    }
}
