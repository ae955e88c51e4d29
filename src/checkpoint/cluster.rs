//! Snapshots of a multi-process job (docs/ARCHITECTURE.md "Snapshots of a cluster").
//!
//! Every process has its own [`Checkpointer`] for its workers; process 0's also coordinates the
//! others, through mail carried by the coordination dataflow ([`PostOffice`]):
//!
//! 1. A process whose snapshot is due (by time, by records, or for a graceful stop) asks
//!    process 0 (`Due`). Process 0 opens a round of agreement: it stops its own sources from
//!    sending (`frozen`) and tells every other process to do the same (`Freeze`); each replies
//!    with the largest stamp its sources and operators have sent (`Frozen`).
//! 2. Process 0 picks the epoch above all of them and every process begins the snapshot at it
//!    (`Begin`), still frozen, and says so (`Ready`); once every process has, process 0 lets
//!    them all send again (`Go`). So, as in one process, no record stamped at or after the
//!    epoch is sent before every process knows the epoch: an operator that applies records as
//!    they arrive (tumbling and sliding windows) stashes every such record from another
//!    process, and each part is "as of" the epoch.
//! 3. Each process writes its parts into the shared snapshot directory; another process reports
//!    them, durable, to process 0 (`Parts`). Once it has every process's parts, process 0 writes
//!    the manifest listing them all, has its sinks commit (every committing sink is process
//!    0's), removes old snapshots and tells the others (`Committed`).
//! 4. Once every participant of a process has ended it tells process 0 (`Finished`); when all
//!    have, process 0 begins the final snapshot (epoch `u64::MAX`) the same way, with no round.
//!
//! Operators whose output runs ahead of their input (`map_with_state`) keep, while a round is
//! open, the output at or after the epoch's floor (`Ahead::Agreeing`): every step made then is
//! below the epoch to come.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::files::PartInfo;
use super::{Checkpointer, State};
use crate::cluster::SnapshotStart;
use crate::context::{Mail, PostOffice};
use crate::error::Error;

/// A process's part in its job's snapshots.
pub(crate) enum Role {
    /// A job of one process.
    Alone,
    /// Process 0 of a cluster: it takes the checkpoint directory over and coordinates.
    Leader(Arc<PostOffice>),
    /// Another process of a cluster: it starts as process 0 said.
    Follower {
        post: Arc<PostOffice>,
        start: SnapshotStart,
    },
}

/// The snapshot protocol's mail.
#[derive(Debug, Serialize, Deserialize)]
enum Coord {
    /// To process 0: a snapshot is due in process `from`.
    Due { from: usize },
    /// From process 0: stop sending and report the largest stamp sent.
    Freeze { round: u64 },
    /// To process 0: the largest stamp process `from` has sent, sending nothing more until
    /// the epoch is known.
    Frozen {
        from: usize,
        round: u64,
        max_sent: u64,
    },
    /// From process 0: begin the snapshot at `epoch` (still sending nothing).
    Begin { epoch: u64 },
    /// To process 0: process `from` has begun the snapshot at `epoch`.
    Ready { from: usize, epoch: u64 },
    /// From process 0: every process knows the epoch; send again.
    Go { epoch: u64 },
    /// To process 0: every part of process `from` for the snapshot at `epoch` is durable.
    Parts {
        from: usize,
        epoch: u64,
        parts: Vec<PartInfo>,
    },
    /// To process 0: every participant of process `from` has ended.
    Finished { from: usize },
    /// From process 0: the snapshot at `epoch` is complete and committed.
    Committed { epoch: u64 },
}

/// A process's view of the agreement.
#[derive(Default)]
pub(super) struct ClusterState {
    /// This process asked process 0 for a snapshot, and none has begun since.
    asked: bool,
    /// A graceful stop asked for a snapshot: the next one to begin is the one the job stops at.
    pub(super) stop_wanted: bool,
    /// This process told process 0 that all its participants ended.
    told_finished: bool,
    /// While a round is open: the next epoch is at least this.
    floor: u64,
    /// Another process asked to freeze before this one's workers had built the dataflow: the
    /// round it answers once they have (what their operators restore is then counted).
    freeze_unanswered: Option<u64>,
    /// Process 0: some process wants a snapshot.
    wanted: bool,
    /// Process 0: the round in progress, if `agreeing`, and the replies so far by process
    /// (`Frozen`, then `Ready`).
    round: u64,
    agreeing: bool,
    replies: BTreeMap<usize, u64>,
    ready: BTreeSet<usize>,
    /// Process 0: the processes whose participants have all ended.
    finished: BTreeSet<usize>,
}

impl Checkpointer {
    fn post(&self) -> &PostOffice {
        self.post.as_deref().expect("a cluster's coordinator")
    }

    fn send(&self, to: usize, coord: &Coord) {
        let body = serde_json::to_vec(coord).expect("the snapshot protocol's mail encodes");
        self.post().send(to, Mail::Snapshot(body));
    }

    fn broadcast(&self, coord: &Coord) {
        for process in 1..self.post().processes {
            self.send(process, coord);
        }
    }

    /// A snapshot is due in this process: asks process 0 for one.
    pub(super) fn ask_for_snapshot(&self, state: &mut State) -> Result<(), Error> {
        if self.post().is_leader() {
            state.cluster.wanted = true;
            self.open_round(state);
        } else if !state.cluster.asked {
            state.cluster.asked = true;
            self.send(
                0,
                &Coord::Due {
                    from: self.post().process,
                },
            );
        }
        Ok(())
    }

    /// Process 0: opens a round of agreement if one is wanted and none is in progress.
    fn open_round(&self, state: &mut State) {
        let cluster = &mut state.cluster;
        if !cluster.wanted
            || cluster.agreeing
            || state.pending.is_some()
            || state.done
            || state.broken
            || state.built < self.local_workers
        {
            return;
        }
        cluster.wanted = false;
        cluster.agreeing = true;
        cluster.round += 1;
        cluster.replies.clear();
        cluster.floor = state.max_sent.saturating_add(1);
        self.frozen.store(true, Ordering::Release);
        let round = cluster.round;
        self.broadcast(&Coord::Freeze { round });
    }

    /// While a round is open: the least the next epoch can be.
    pub(super) fn epoch_floor(&self, state: &State) -> u64 {
        state.cluster.floor
    }

    /// Mail for the snapshot protocol from another process (delivered on this process's first
    /// worker).
    pub(crate) fn deliver(&self, body: &[u8]) -> Result<(), Error> {
        let coord: Coord = serde_json::from_slice(body).map_err(|e| {
            Error::Internal(format!("a snapshot message from another process: {e}"))
        })?;
        let mut state = self.lock();
        let delivered = match coord {
            Coord::Due { .. } => {
                // A process asks once its interval has passed since it heard of the last
                // commit; one that asks while a snapshot is under way (a snapshot slower than
                // the interval) asks again after the next commit, an interval later, instead
                // of starting one the moment this one ends.
                if !state.cluster.agreeing && state.pending.is_none() {
                    state.cluster.wanted = true;
                    self.open_round(&mut state);
                }
                Ok(())
            }
            Coord::Freeze { round } => {
                self.frozen.store(true, Ordering::Release);
                if state.built < self.local_workers {
                    state.cluster.freeze_unanswered = Some(round);
                } else {
                    self.answer_freeze(&mut state, round);
                }
                Ok(())
            }
            Coord::Frozen {
                from,
                round,
                max_sent,
            } => self.frozen_reply(&mut state, from, round, max_sent),
            Coord::Begin { epoch } => {
                let begun = self.begin_agreed(&mut state, epoch);
                self.send(
                    0,
                    &Coord::Ready {
                        from: self.post().process,
                        epoch,
                    },
                );
                begun
            }
            Coord::Ready { from, epoch } => self.ready(&mut state, from, epoch),
            Coord::Go { epoch } => {
                if state.pending.as_ref().is_some_and(|p| p.epoch == epoch) {
                    self.frozen.store(false, Ordering::Release);
                }
                Ok(())
            }
            Coord::Parts { from, epoch, parts } => {
                match state.pending.as_mut().filter(|p| p.epoch == epoch) {
                    Some(pending) => {
                        pending.remote.insert(from, parts);
                        self.complete_cluster_if_ready(&mut state)
                    }
                    None => Ok(()),
                }
            }
            Coord::Finished { from } => {
                state.cluster.finished.insert(from);
                self.begin_final_if_ready(&mut state)
            }
            Coord::Committed { epoch } => {
                self.follower_committed(&mut state, epoch);
                Ok(())
            }
        };
        if delivered.is_err() {
            state.broken = true;
        }
        delivered
    }

    /// Another process, frozen: tells process 0 the largest stamp it has sent.
    fn answer_freeze(&self, state: &mut State, round: u64) {
        state.cluster.floor = state.max_sent.saturating_add(1);
        self.send(
            0,
            &Coord::Frozen {
                from: self.post().process,
                round,
                max_sent: state.max_sent,
            },
        );
    }

    /// Process 0: a process's reply to the round; once every process replied, the epoch is
    /// chosen above every stamp any of them sent, and every process begins the snapshot.
    fn frozen_reply(
        &self,
        state: &mut State,
        from: usize,
        round: u64,
        max_sent: u64,
    ) -> Result<(), Error> {
        let cluster = &mut state.cluster;
        if !cluster.agreeing || cluster.round != round {
            return Ok(());
        }
        cluster.replies.insert(from, max_sent);
        if cluster.replies.len() + 1 < self.post().processes {
            return Ok(());
        }
        cluster.agreeing = false;
        cluster.ready.clear();
        let highest = cluster
            .replies
            .values()
            .copied()
            .fold(state.max_sent, u64::max);
        let epoch = highest.saturating_add(1);
        self.broadcast(&Coord::Begin { epoch });
        self.begin_agreed(state, epoch)
    }

    /// Process 0: process `from` has begun the snapshot at `epoch`; once every process has,
    /// all send again.
    fn ready(&self, state: &mut State, from: usize, epoch: u64) -> Result<(), Error> {
        if state.pending.as_ref().is_none_or(|p| p.epoch != epoch) {
            return Ok(());
        }
        state.cluster.ready.insert(from);
        if state.cluster.ready.len() + 1 == self.post().processes {
            self.broadcast(&Coord::Go { epoch });
            self.frozen.store(false, Ordering::Release);
        }
        Ok(())
    }

    /// Begins the snapshot at the agreed `epoch` in this process. Its sources stay frozen
    /// until every process has begun it (`Go`).
    fn begin_agreed(&self, state: &mut State, epoch: u64) -> Result<(), Error> {
        state.cluster.asked = false;
        self.begin(state, epoch)?;
        self.pending_epoch.store(epoch, Ordering::Release);
        if state.cluster.stop_wanted && state.stop_epoch.is_none() {
            state.stop_epoch = Some(epoch);
        }
        // Participants that have all ended hand in their parts at once.
        self.complete_if_ready(state)
    }

    /// Every part of this process for the pending snapshot is handed in: writes those of the
    /// participants that ended, then reports them to process 0 (or, in process 0, completes
    /// the snapshot once every process has).
    pub(super) fn hand_in(&self, state: &mut State) -> Result<(), Error> {
        self.write_rest(state)?;
        self.fault.after_parts();
        let pending = state.pending.as_mut().expect("a pending snapshot");
        pending.handed_in = true;
        let epoch = pending.epoch;
        if self.post().is_leader() {
            return self.complete_cluster_if_ready(state);
        }
        let parts = self.local_parts(state);
        self.send(
            0,
            &Coord::Parts {
                from: self.post().process,
                epoch,
                parts,
            },
        );
        Ok(())
    }

    /// Process 0: completes the pending snapshot once every process's parts are durable.
    fn complete_cluster_if_ready(&self, state: &mut State) -> Result<(), Error> {
        let Some(pending) = state.pending.as_ref() else {
            return Ok(());
        };
        if !pending.handed_in || pending.remote.len() + 1 < self.post().processes {
            return Ok(());
        }
        let completed = self
            .check_fence()
            .and_then(|()| self.write_manifest_and_commit(state));
        completed.map_err(|error| self.abandon(state, error))
    }

    /// Process 0 committed the snapshot at `epoch`: tells the others, then begins the final
    /// snapshot or opens the next round if one is due.
    pub(super) fn committed_in_cluster(&self, state: &mut State, epoch: u64) -> Result<(), Error> {
        self.broadcast(&Coord::Committed { epoch });
        if epoch == u64::MAX {
            state.done = true;
            // Its last letters are queued: the coordination dataflow may end.
            self.post().wake();
            return Ok(());
        }
        self.begin_final_if_ready(state)?;
        self.open_round(state);
        Ok(())
    }

    /// Another process: process 0 committed the snapshot at `epoch`.
    fn follower_committed(&self, state: &mut State, epoch: u64) {
        if let Some(pending) = state.pending.take_if(|p| p.epoch == epoch) {
            let bytes = pending.parts.values().map(|p| p.size).sum();
            state.report.record(epoch, bytes, pending.started.elapsed());
        }
        self.pending_epoch.store(u64::MAX, Ordering::Release);
        state.committed(epoch, self.interval);
        state.cluster.asked = false;
        if epoch == u64::MAX {
            state.done = true;
            self.post().wake();
        }
    }

    /// A participant of this process ended: once all have, process 0 is told (the final
    /// snapshot waits for every process).
    pub(super) fn finish_in_cluster(&self, state: &mut State) -> Result<(), Error> {
        if state.cluster.told_finished
            || state.built < self.local_workers
            || !state.registrations.iter().all(|r| r.finished.is_some())
        {
            return Ok(());
        }
        state.cluster.told_finished = true;
        if self.post().is_leader() {
            state.cluster.finished.insert(0);
            return self.begin_final_if_ready(state);
        }
        self.send(
            0,
            &Coord::Finished {
                from: self.post().process,
            },
        );
        Ok(())
    }

    /// Process 0: begins the final snapshot once every process's participants have ended and
    /// no snapshot is in progress.
    fn begin_final_if_ready(&self, state: &mut State) -> Result<(), Error> {
        if state.cluster.finished.len() < self.post().processes
            || state.cluster.agreeing
            || state.pending.is_some()
            || state.done
            || state.broken
        {
            return Ok(());
        }
        self.broadcast(&Coord::Begin { epoch: u64::MAX });
        self.begin_agreed(state, u64::MAX)
    }

    /// Once this process's workers have built the dataflow (and restored their state, whose
    /// outputs may be ahead of it): in process 0 a round asked for before then opens now; in
    /// another process a round that froze it before then is answered now.
    pub(super) fn built_in_cluster(&self, state: &mut State) {
        let Some(post) = &self.post else {
            return;
        };
        if post.is_leader() {
            self.open_round(state);
        } else if let Some(round) = state.cluster.freeze_unanswered.take() {
            self.answer_freeze(state, round);
        }
    }

    /// In a cluster: whether this process's part in snapshots is over (the final snapshot is
    /// committed, or a snapshot failed), so that it sends no more mail.
    pub(crate) fn over(&self) -> bool {
        let state = self.lock();
        state.done || state.broken
    }

    /// The execution number this run took the checkpoint directory over with.
    pub(crate) fn execution(&self) -> u64 {
        self.execution
    }

    /// The snapshot this run resumes from: its epoch and the execution that wrote it.
    pub(crate) fn resume_id(&self) -> Option<(u64, u64)> {
        self.resume
            .as_ref()
            .map(|from| (from.id.epoch, from.id.execution))
    }
}
