//! How the participants of a snapshot reach the coordinator: each worker's operator ports
//! (opened by [`WorkerRegistry::port`] under each stateful operator's id, and given to the
//! operator when the dataflow is built), and the hooks of sources and committing sinks.

use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;

use tideflow_operators::snapshot::{Ahead, Frame, Resumed, SnapshotPort};

use super::commit::{Committer, Recovered};
use super::files::{PartBody, PartitionCursor};
use super::Checkpointer;
use crate::context::SharedJob;
use crate::error::Error;

/// A worker's registry: opens the ports of its stateful operators.
pub(crate) struct WorkerRegistry<'a> {
    pub(crate) checkpointer: &'a Arc<Checkpointer>,
    pub(crate) shared: &'a Arc<SharedJob>,
    pub(crate) worker: usize,
}

impl WorkerRegistry<'_> {
    /// The port of this worker's instance of stateful operator `id`, of kind `kind`: its parts
    /// are named by the id, and it restores the id's state.
    pub(crate) fn port(&self, id: &str, kind: &'static str) -> Rc<dyn SnapshotPort> {
        let index = self.checkpointer.register_operator(self.worker, id, kind);
        Rc::new(OperatorPort {
            checkpointer: Arc::clone(self.checkpointer),
            shared: Arc::clone(self.shared),
            index,
            id: id.to_string(),
            kind,
            worker: self.worker,
        })
    }
}

/// An operator instance's port.
struct OperatorPort {
    checkpointer: Arc<Checkpointer>,
    shared: Arc<SharedJob>,
    index: usize,
    id: String,
    kind: &'static str,
    worker: usize,
}

impl SnapshotPort for OperatorPort {
    fn pending(&self) -> Option<u64> {
        self.checkpointer.pending()
    }

    fn save(&self, epoch: u64, frames: Vec<Frame>) {
        if let Err(error) = self
            .checkpointer
            .save(self.index, epoch, PartBody::Operator(frames))
        {
            self.shared.fail(error);
        }
    }

    fn finish(&self) {
        if let Err(error) = self
            .checkpointer
            .finish(self.index, PartBody::Operator(Vec::new()))
        {
            self.shared.fail(error);
        }
    }

    fn take_restored(&self) -> Vec<Frame> {
        match self
            .checkpointer
            .restored_frames(&self.id, self.kind, self.worker)
        {
            Ok(frames) => frames,
            Err(error) => {
                self.shared.fail(error);
                Vec::new()
            }
        }
    }

    fn resumed(&self) -> Option<Resumed> {
        self.checkpointer.resumed()
    }

    fn fail(&self, message: String) {
        self.shared.fail(Error::Snapshot(message));
    }

    fn note_sent(&self, time: u64) -> Ahead {
        let mut state = self.checkpointer.lock();
        state.max_sent = state.max_sent.max(time);
        // In a cluster, until every process knows the epoch (its sources are frozen until
        // then), output ahead of its step is held.
        match &state.pending {
            _ if self.checkpointer.frozen() => Ahead::Agreeing(
                state
                    .pending
                    .as_ref()
                    .map_or(self.checkpointer.epoch_floor(&state), |p| p.epoch),
            ),
            Some(pending) => Ahead::Pending(pending.epoch),
            None => Ahead::Nothing,
        }
    }
}

/// A source instance's participation.
pub(crate) struct SourceHook {
    checkpointer: Arc<Checkpointer>,
    index: usize,
    stem: String,
}

impl SourceHook {
    /// Registers a source instance of `worker`.
    pub(crate) fn register(checkpointer: &Arc<Checkpointer>, worker: usize) -> SourceHook {
        let (index, stem) = checkpointer.register(worker, "src", "source", None);
        SourceHook {
            checkpointer: Arc::clone(checkpointer),
            index,
            stem,
        }
    }

    /// The coordinator.
    pub(crate) fn checkpointer(&self) -> &Checkpointer {
        &self.checkpointer
    }

    /// The coordinator, shared.
    pub(crate) fn checkpointer_arc(&self) -> &Arc<Checkpointer> {
        &self.checkpointer
    }

    /// Where the source's partitions resume, by global partition (`None` without a snapshot).
    pub(crate) fn restored(&self) -> Result<Option<HashMap<u64, PartitionCursor>>, Error> {
        self.checkpointer.restored_cursors(&self.stem)
    }

    /// Saves the source's part of the snapshot at `epoch`.
    pub(crate) fn save(&self, epoch: u64, cursors: Vec<PartitionCursor>) -> Result<(), Error> {
        self.checkpointer
            .save(self.index, epoch, PartBody::Source(cursors))
    }

    /// The source has ended; `cursors` are its partitions' last positions.
    pub(crate) fn finish(&self, cursors: Vec<PartitionCursor>) -> Result<(), Error> {
        self.checkpointer
            .finish(self.index, PartBody::Source(cursors))
    }
}

/// A committing sink's participation.
pub(crate) struct SinkHook {
    checkpointer: Arc<Checkpointer>,
    index: usize,
    recovered: Recovered,
}

impl SinkHook {
    /// Registers a sink that commits with `committer`, recovering it if the job resumes.
    pub(crate) fn register(
        checkpointer: &Arc<Checkpointer>,
        committer: Box<dyn Committer>,
    ) -> Result<SinkHook, Error> {
        let (index, recovered) = checkpointer.register_sink(committer)?;
        Ok(SinkHook {
            checkpointer: Arc::clone(checkpointer),
            index,
            recovered,
        })
    }

    /// What the sink's output had committed when the job started: rows stamped below its
    /// epoch are dropped.
    pub(crate) fn recovered(&self) -> Recovered {
        self.recovered
    }

    /// The pending epoch whose part this sink has not saved.
    pub(crate) fn pending(&self) -> Option<u64> {
        self.checkpointer.pending()
    }

    /// Saves the output the sink pre-committed for `epoch` as its part.
    pub(crate) fn save(&self, epoch: u64, prepared: Vec<u8>) -> Result<(), Error> {
        self.checkpointer
            .save(self.index, epoch, PartBody::Sink(prepared))
    }

    /// The input has ended: `prepared` is the rest, committed by the final snapshot.
    pub(crate) fn finish(&self, prepared: Vec<u8>) -> Result<(), Error> {
        self.checkpointer
            .finish(self.index, PartBody::Sink(prepared))
    }
}
