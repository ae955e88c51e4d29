//! Snapshot hooks for stateful operators (DESIGN.md "Snapshots"; the protocol is in
//! docs/ARCHITECTURE.md). This crate does no I/O: an operator asks a [`SnapshotPort`] whether a
//! snapshot at an epoch `W` is pending, hands it its state as of `W` in frames of key groups,
//! and reads back the frames of its worker's key groups when the job resumes. The runtime
//! (`tideflow`'s checkpointer) implements the port, writes the files and decides the epochs.
//!
//! An operator is given its port when it is built, in its
//! [`StateConfig`](crate::stateful::StateConfig); the runtime opens one port per operator id
//! and worker. Without one (unit tests, plain timely programs) operators take no snapshots and
//! pay one branch per activation. The [`Harness`](crate::stateful::Harness) drives this
//! protocol for every stateful operator.

use std::hash::Hash;
use std::rc::Rc;

use bincode::Options;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::event::key_hash;

/// The number of key groups. Keyed exchanges route a key to worker `key_group(key) % workers`,
/// and state is saved per group, so a snapshot restores onto any number of workers.
pub const KEY_GROUPS: u64 = 256;

/// The key group of `key`, which is also the route of keyed exchanges.
///
/// # Examples
/// ```
/// use tideflow_operators::snapshot::{key_group, KEY_GROUPS};
/// assert!(key_group("ann") < KEY_GROUPS);
/// assert_eq!(key_group("ann"), key_group("ann"));
/// ```
#[inline]
pub fn key_group<K: Hash + ?Sized>(key: &K) -> u64 {
    key_hash(key) % KEY_GROUPS
}

/// Whether `worker` of `peers` owns key group `group`.
#[inline]
pub fn owns_group(group: u64, worker: usize, peers: usize) -> bool {
    group % peers.max(1) as u64 == worker as u64
}

/// The entries of one key group in an operator's part: `count` values, bincode-encoded one
/// after another.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Frame {
    /// The key group.
    pub group: u16,
    /// How many entries `bytes` holds.
    pub count: u64,
    /// The entries.
    #[serde(with = "serde_bytes")]
    pub bytes: Vec<u8>,
}

/// The snapshot the job resumed from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Resumed {
    /// Its epoch: the restored state holds the records stamped below it.
    pub epoch: u64,
    /// The number of workers that took it.
    pub peers: usize,
}

/// What the runtime offers one operator instance (one operator on one worker).
pub trait SnapshotPort {
    /// The epoch of the snapshot in progress, if there is one.
    fn pending(&self) -> Option<u64>;
    /// Saves this instance's part of the snapshot at `epoch`.
    fn save(&self, epoch: u64, frames: Vec<Frame>);
    /// This instance's input has ended: it holds no state and takes part in no later snapshot.
    fn finish(&self);
    /// The frames of this worker's key groups from the snapshot the job resumed from (empty
    /// when it did not resume). Called once.
    fn take_restored(&self) -> Vec<Frame>;
    /// The snapshot the job resumed from, if any.
    fn resumed(&self) -> Option<Resumed>;
    /// Reports an error that must stop the job (restored state that does not decode, a
    /// restore the operator cannot do).
    fn fail(&self, message: String);
    /// The operator is about to send output at `time`, later than the step that made it (an
    /// operator whose outputs may run ahead of its input, as `map_with_state`'s may): the next
    /// epoch is then above `time`. Returns what of such output belongs in the operator's next
    /// part, read at the same moment ([`Ahead`]).
    fn note_sent(&self, time: u64) -> Ahead;
}

/// What an operator whose output runs ahead of its input keeps for its next part
/// ([`SnapshotPort::note_sent`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ahead {
    /// No snapshot is pending: the next epoch will be above the output.
    Nothing,
    /// The snapshot at this epoch is pending: output at or after it made by a step before it
    /// belongs in the part.
    Pending(u64),
    /// The processes of a cluster are agreeing on the next epoch, which will be at least this
    /// (it is the epoch once this process knows it, until every process does): every step
    /// made meanwhile is below it. Output ahead of its step must be held until the agreement
    /// is over (an operator of another process may not know the epoch yet); output at or
    /// after this may belong in the part (what is below the epoch is dropped when the part is
    /// saved).
    Agreeing(u64),
}

impl Ahead {
    /// The stamp from which output made by a step at `step` is kept, if any.
    pub fn keep_from(self, step: u64) -> Option<u64> {
        match self {
            Ahead::Nothing => None,
            Ahead::Pending(epoch) => (step < epoch).then_some(epoch),
            Ahead::Agreeing(floor) => Some(floor),
        }
    }
}

/// An operator's side of the protocol: when to stash, when its part is due, how to save and
/// restore entries.
pub struct Snapshots {
    port: Rc<dyn SnapshotPort>,
    saved: Option<u64>,
    finished: bool,
}

impl Snapshots {
    /// Wraps `port`.
    pub fn new(port: Rc<dyn SnapshotPort>) -> Self {
        Snapshots {
            port,
            saved: None,
            finished: false,
        }
    }

    /// The epoch of a pending snapshot this operator has not saved its part of: records stamped
    /// at or after it must not change the state until the part is saved.
    #[inline]
    pub fn unsaved(&self) -> Option<u64> {
        self.port
            .pending()
            .filter(|&epoch| self.saved != Some(epoch))
    }

    /// The epoch whose part is due now: a pending snapshot not saved yet, with the input
    /// frontier (given as its least time, `None`: empty) at or past it.
    pub fn due_at(&self, frontier: Option<u64>) -> Option<u64> {
        let epoch = self.unsaved()?;
        match frontier {
            Some(time) if time < epoch => None,
            _ => Some(epoch),
        }
    }

    /// Saves `entries`, each with its key group, as the part of the snapshot at `epoch`.
    pub fn save<E: Serialize>(&mut self, epoch: u64, entries: impl IntoIterator<Item = (u64, E)>) {
        let mut frames: Vec<Frame> = Vec::new();
        let mut index = vec![usize::MAX; KEY_GROUPS as usize];
        for (group, entry) in entries {
            let group = (group % KEY_GROUPS) as usize;
            if index[group] == usize::MAX {
                index[group] = frames.len();
                frames.push(Frame {
                    group: group as u16,
                    count: 0,
                    bytes: Vec::new(),
                });
            }
            let frame = &mut frames[index[group]];
            if let Err(error) = bincode::serialize_into(&mut frame.bytes, &entry) {
                self.port
                    .fail(format!("cannot encode operator state: {error}"));
                return;
            }
            frame.count += 1;
        }
        self.port.save(epoch, frames);
        self.saved = Some(epoch);
    }

    /// Tells the runtime the input has ended if `ended` (once), after any due part was saved.
    pub fn finish_if(&mut self, ended: bool) {
        if !self.finished && ended && self.unsaved().is_none() {
            self.finished = true;
            self.port.finish();
        }
    }

    /// The restored entries of this worker's key groups (none if the job did not resume, or
    /// if they do not decode, which is reported and stops the job).
    ///
    /// Entries are read as [`save`](Self::save) wrote them (bincode's fixed-size integers),
    /// each limited to the bytes left in its frame: a length in state written by another query
    /// is an error, not an allocation of that many bytes.
    pub fn restore<E: DeserializeOwned>(&self) -> Vec<E> {
        let mut entries = Vec::new();
        for frame in self.port.take_restored() {
            let mut bytes = frame.bytes.as_slice();
            for _ in 0..frame.count {
                let options = bincode::DefaultOptions::new()
                    .with_fixint_encoding()
                    .allow_trailing_bytes()
                    .with_limit(bytes.len() as u64);
                match options.deserialize_from(&mut bytes) {
                    Ok(entry) => entries.push(entry),
                    Err(error) => {
                        self.port.fail(format!(
                            "the snapshot's state does not fit this job (was the query changed?): {error}"
                        ));
                        return Vec::new();
                    }
                }
            }
        }
        entries
    }

    /// The snapshot the job resumed from, if any.
    pub fn resumed(&self) -> Option<Resumed> {
        self.port.resumed()
    }

    /// Reports an error that stops the job.
    pub fn fail(&self, message: String) {
        self.port.fail(message);
    }

    /// See [`SnapshotPort::note_sent`]; a pending epoch this operator has saved already keeps
    /// nothing.
    pub fn note_sent(&self, time: u64) -> Ahead {
        match self.port.note_sent(time) {
            Ahead::Pending(epoch) if self.saved == Some(epoch) => Ahead::Nothing,
            ahead => ahead,
        }
    }
}

/// A runtime's port as a test sees it.
#[cfg(test)]
pub(crate) mod testing {
    use std::cell::{Cell, RefCell};

    use super::{Ahead, Frame, Resumed, SnapshotPort};

    /// A port whose pending epoch the test sets, which records the parts saved and whether the
    /// operator finished, and restores the frames the test gives it.
    #[derive(Default)]
    pub(crate) struct RecordingPort {
        pub(crate) pending: Cell<Option<u64>>,
        pub(crate) saved: RefCell<Vec<(u64, Vec<Frame>)>>,
        pub(crate) finished: Cell<bool>,
        pub(crate) restore: RefCell<Vec<Frame>>,
        /// Set: the epoch is being agreed, at least this (`Ahead::Agreeing`).
        pub(crate) agreeing: Cell<Option<u64>>,
    }

    impl SnapshotPort for RecordingPort {
        fn pending(&self) -> Option<u64> {
            self.pending.get()
        }
        fn save(&self, epoch: u64, frames: Vec<Frame>) {
            self.saved.borrow_mut().push((epoch, frames));
        }
        fn finish(&self) {
            assert!(!self.finished.replace(true), "finish is called once");
        }
        fn take_restored(&self) -> Vec<Frame> {
            std::mem::take(&mut *self.restore.borrow_mut())
        }
        fn resumed(&self) -> Option<Resumed> {
            None
        }
        fn fail(&self, message: String) {
            panic!("{message}")
        }
        fn note_sent(&self, _time: u64) -> Ahead {
            match (self.pending.get(), self.agreeing.get()) {
                (Some(epoch), _) => Ahead::Pending(epoch),
                (None, Some(floor)) => Ahead::Agreeing(floor),
                (None, None) => Ahead::Nothing,
            }
        }
    }
}

#[cfg(test)]
mod fuzz;

#[cfg(test)]
mod tests {
    use super::testing::RecordingPort;
    use super::*;

    #[test]
    fn entries_round_trip_by_group() {
        let port = Rc::new(RecordingPort::default());
        port.pending.set(Some(10));
        let mut snapshots = Snapshots::new(port.clone());
        assert_eq!(snapshots.unsaved(), Some(10));
        let entries: Vec<(String, u64)> = (0..100).map(|i| (format!("k{i}"), i)).collect();
        snapshots.save(10, entries.iter().map(|e| (key_group(&e.0), e)));
        assert_eq!(snapshots.unsaved(), None);
        let saved = port.saved.borrow()[0].1.clone();
        assert!(saved.iter().all(|frame| frame.count > 0));
        *port.restore.borrow_mut() = saved;
        let mut back: Vec<(String, u64)> = snapshots.restore();
        back.sort();
        let mut expected = entries.clone();
        expected.sort();
        assert_eq!(back, expected);
    }
}
