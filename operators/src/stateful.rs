//! The harness every stateful operator runs on (in the spirit of Bytewax's `stateful_unary`):
//! the snapshot protocol and the state gauge, written once.
//!
//! An operator is given a [`StateConfig`] when it is built: the [`SnapshotPort`] the runtime
//! opened for it (under the operator's id) and the [`StateRows`] gauge it reports to, each
//! optional (plain timely programs, unit tests and doctests pass [`StateConfig::none`]). It
//! wraps them in a [`Harness`], which
//! - restores the operator's entries when the job resumed ([`Harness::restore`]),
//! - tells it how far to apply its input in an activation: first up to a pending snapshot's
//!   epoch, where its part is saved, then up to the frontier ([`Harness::steps`],
//!   [`Harness::save`]),
//! - and, at the end of each activation, sets the gauge and tells the runtime once the input
//!   has ended ([`Harness::settle`]).
//!
//! Operators that apply records in stamp order keep them in a [`StampStash`] until the frontier
//! (or a snapshot's epoch) passes their stamp; the containers are moved in, never copied.
//! Without a port the harness costs one branch per activation.

use std::collections::BTreeMap;
use std::fmt;
use std::rc::Rc;

use serde::de::DeserializeOwned;
use serde::Serialize;
use timely::dataflow::operators::{Capability, InputCapability};

use crate::event::Event;
use crate::snapshot::{Ahead, Resumed, SnapshotPort, Snapshots};
use crate::state::StateRows;

/// What a stateful operator is given when it is built: where its snapshots go and where it
/// reports the rows of state it holds.
///
/// # Examples
/// ```
/// use tideflow_operators::stateful::StateConfig;
/// use tideflow_operators::state::StateRows;
///
/// let gauge = StateRows::default();
/// let config = StateConfig::gauged(gauge.clone());
/// assert!(config.port.is_none() && config.gauge.is_some());
/// assert!(StateConfig::none().gauge.is_none());
/// ```
#[derive(Clone, Default)]
pub struct StateConfig {
    /// The operator's port to the runtime's snapshots. By default, none: the operator takes no
    /// snapshots and restores nothing.
    pub port: Option<Rc<dyn SnapshotPort>>,
    /// The gauge of the rows of state the operator holds, set after each activation. By
    /// default, none.
    pub gauge: Option<StateRows>,
}

impl StateConfig {
    /// No snapshots and no gauge.
    pub fn none() -> Self {
        StateConfig::default()
    }

    /// No snapshots; the rows held are reported to `gauge`.
    pub fn gauged(gauge: StateRows) -> Self {
        StateConfig {
            port: None,
            gauge: Some(gauge),
        }
    }
}

impl fmt::Debug for StateConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StateConfig")
            .field("port", &self.port.is_some())
            .field("gauge", &self.gauge)
            .finish()
    }
}

/// How far an operator applies its input in one step of an activation (see
/// [`Harness::steps`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Step {
    /// Apply what is stamped below this time (`None`: everything, the input has ended).
    pub limit: Option<u64>,
    /// After applying, save the operator's part of the snapshot at this epoch.
    pub save: Option<u64>,
}

impl Step {
    /// Whether a stamp or timer at `time` is applied in this step.
    #[inline]
    pub fn passed(&self, time: u64) -> bool {
        self.limit.is_none_or(|limit| time < limit)
    }
}

/// One stateful operator instance's side of snapshots and its gauge: see the
/// [module documentation](self).
pub struct Harness {
    snapshots: Option<Snapshots>,
    gauge: Option<StateRows>,
}

impl Harness {
    /// The harness of an operator built with `config`.
    pub fn new(config: StateConfig) -> Self {
        Harness {
            snapshots: config.port.map(Snapshots::new),
            gauge: config.gauge,
        }
    }

    /// Whether the operator takes part in snapshots.
    #[inline]
    pub fn snapshots(&self) -> bool {
        self.snapshots.is_some()
    }

    /// The restored entries of this worker's key groups: `None` without snapshots, empty when
    /// the job did not resume (or when they do not decode, which is reported and stops the
    /// job).
    pub fn restore<E: DeserializeOwned>(&self) -> Option<Vec<E>> {
        self.snapshots.as_ref().map(Snapshots::restore)
    }

    /// The snapshot the job resumed from, if any.
    pub fn resumed(&self) -> Option<Resumed> {
        self.snapshots.as_ref().and_then(Snapshots::resumed)
    }

    /// Reports an error that stops the job (nothing happens without snapshots).
    pub fn fail(&self, message: String) {
        if let Some(snapshots) = &self.snapshots {
            snapshots.fail(message);
        }
    }

    /// The epoch of a pending snapshot whose part is not saved yet: records stamped at or after
    /// it must not change the state until it is.
    #[inline]
    pub fn unsaved(&self) -> Option<u64> {
        self.snapshots.as_ref().and_then(Snapshots::unsaved)
    }

    /// The steps of an activation whose input frontier is `frontier` (its least time; `None`:
    /// the input has ended): when a snapshot's part is due (its epoch pending and unsaved, the
    /// frontier at or past it), first up to the epoch, saving the part there; then up to the
    /// frontier.
    pub fn steps(&self, frontier: Option<u64>) -> impl Iterator<Item = Step> {
        let due = self.snapshots.as_ref().and_then(|s| s.due_at(frontier));
        let to_epoch = due.map(|epoch| Step {
            limit: Some(epoch),
            save: Some(epoch),
        });
        to_epoch.into_iter().chain([Step {
            limit: frontier,
            save: None,
        }])
    }

    /// Saves `entries`, each with its key group, as the operator's part of the snapshot at
    /// `epoch`.
    pub fn save<E: Serialize>(&mut self, epoch: u64, entries: impl IntoIterator<Item = (u64, E)>) {
        if let Some(snapshots) = self.snapshots.as_mut() {
            snapshots.save(epoch, entries);
        }
    }

    /// See [`SnapshotPort::note_sent`]: the operator sends output at `time`, ahead of the step
    /// that made it; returns what of such output belongs in its next part.
    pub fn note_sent(&self, time: u64) -> Ahead {
        self.snapshots
            .as_ref()
            .map_or(Ahead::Nothing, |s| s.note_sent(time))
    }

    /// Sets the gauge to `rows` without ending the activation: a peak reached between the
    /// steps of an activation.
    #[inline]
    pub fn peak(&self, rows: u64) {
        if let Some(gauge) = &self.gauge {
            gauge.set(rows);
        }
    }

    /// Ends an activation: sets the gauge to `rows` and, once `ended` (the input has ended and
    /// any due part was saved), tells the runtime that the operator takes part in no later
    /// snapshot.
    #[inline]
    pub fn settle(&mut self, rows: u64, ended: bool) {
        if let Some(gauge) = &self.gauge {
            gauge.set(rows);
        }
        if let Some(snapshots) = self.snapshots.as_mut() {
            snapshots.finish_if(ended);
        }
    }
}

/// The containers of events of type `D` waiting by stamp: the stash of most operators.
pub type EventStash<D> = StampStash<Vec<Vec<Event<D>>>>;

/// Input waiting for the frontier to pass its stamp, with a capability at each stamp: the
/// containers of each stamp, moved in, never copied (`V` is e.g. `Vec<Vec<Event<D>>>`).
pub struct StampStash<V> {
    stamps: BTreeMap<u64, (Capability<u64>, V)>,
}

impl<V> Default for StampStash<V> {
    fn default() -> Self {
        StampStash {
            stamps: BTreeMap::new(),
        }
    }
}

impl<V: Default> StampStash<V> {
    /// What waits at `capability`'s stamp, created with a capability for output `port`.
    #[inline]
    pub fn at(&mut self, capability: &InputCapability<u64>, port: usize) -> &mut V {
        &mut self
            .stamps
            .entry(*capability.time())
            .or_insert_with(|| (capability.retain(port), V::default()))
            .1
    }
}

impl<V> StampStash<V> {
    /// The earliest stamp waiting.
    #[inline]
    pub fn first_stamp(&self) -> Option<u64> {
        self.stamps.keys().next().copied()
    }

    /// Removes the earliest stamp if `step` passes it.
    #[inline]
    pub fn pop_passed(&mut self, step: &Step) -> Option<(u64, Capability<u64>, V)> {
        let entry = self.stamps.first_entry()?;
        if !step.passed(*entry.key()) {
            return None;
        }
        let (stamp, (capability, value)) = entry.remove_entry();
        Some((stamp, capability, value))
    }

    /// Removes the earliest stamp, whatever it is.
    #[inline]
    pub fn pop_first(&mut self) -> Option<(u64, Capability<u64>, V)> {
        let (stamp, (capability, value)) = self.stamps.pop_first()?;
        Some((stamp, capability, value))
    }

    /// Whether nothing waits.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.stamps.is_empty()
    }
}

impl<C: Default> StampStash<Vec<C>> {
    /// Moves `containers`, stamped `capability.time()`, in (each leaves an empty one behind).
    #[inline]
    pub fn stash<'a>(
        &mut self,
        capability: &InputCapability<u64>,
        port: usize,
        containers: impl Iterator<Item = &'a mut C>,
    ) where
        C: 'a,
    {
        self.at(capability, port)
            .extend(containers.map(std::mem::take));
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use timely::communication::allocator::thread::Thread;
    use timely::communication::Allocator;
    use timely::container::CapacityContainerBuilder;
    use timely::dataflow::operators::Probe;
    use timely::dataflow::{InputHandle, ProbeHandle, StreamVec};
    use timely::worker::Worker;
    use timely::WorkerConfig;

    use super::*;
    use crate::aggregate::Count;
    use crate::keyed::running::RunningAggregate;
    use crate::snapshot::testing::RecordingPort;
    use crate::snapshot::Frame;
    use crate::window::TumblingWindow;

    /// The entries of `frames`, decoded as a restore decodes them.
    fn decode<E: DeserializeOwned>(frames: Vec<Frame>) -> Vec<E> {
        let port = Rc::new(RecordingPort::default());
        *port.restore.borrow_mut() = frames;
        let harness = Harness::new(StateConfig {
            port: Some(port),
            gauge: None,
        });
        harness.restore().expect("a harness with a port restores")
    }

    type Keyed = Event<(String, ())>;

    /// Runs `build` over an input of keyed events with `port` and `gauge`: sends the `(stamp,
    /// key)` records, closes the input, and only then steps the worker, so that the operator
    /// sees every record at once, with a snapshot's epoch among their stamps.
    fn run<R: 'static>(
        port: &Rc<RecordingPort>,
        gauge: &StateRows,
        records: &[(u64, &str)],
        build: impl FnOnce(StreamVec<'_, u64, Keyed>, StateConfig) -> StreamVec<'_, u64, R>,
    ) {
        let config = StateConfig {
            port: Some(Rc::clone(port) as Rc<dyn SnapshotPort>),
            gauge: Some(gauge.clone()),
        };
        // A worker on this thread: the port and the gauge are the test's.
        let allocator = Allocator::Thread(Thread::default());
        let mut worker = Worker::new(WorkerConfig::default(), allocator, None);
        let mut input = InputHandle::<u64, CapacityContainerBuilder<Vec<Keyed>>>::new();
        let probe = ProbeHandle::new();
        worker.dataflow(|scope| {
            build(input.to_stream(scope), config).probe_with(&probe);
        });
        for &(stamp, key) in records {
            input.advance_to(stamp);
            input.send(Event::new(stamp, (key.to_string(), ())));
        }
        drop(input);
        worker.step_while(|| !probe.done());
    }

    #[test]
    fn steps_go_to_a_due_epoch_first_and_save_once() {
        let port = Rc::new(RecordingPort::default());
        let mut harness = Harness::new(StateConfig {
            port: Some(port.clone()),
            gauge: None,
        });
        let steps = |harness: &Harness, frontier| harness.steps(frontier).collect::<Vec<_>>();
        let upto = |limit, save| Step { limit, save };
        assert_eq!(steps(&harness, Some(7)), vec![upto(Some(7), None)]);
        port.pending.set(Some(5));
        // Not due while the frontier is below the epoch; due at it, past it and at the end.
        assert_eq!(steps(&harness, Some(4)), vec![upto(Some(4), None)]);
        let due = vec![upto(Some(5), Some(5)), upto(Some(5), None)];
        assert_eq!(steps(&harness, Some(5)), due);
        let due = vec![upto(Some(5), Some(5)), upto(None, None)];
        assert_eq!(steps(&harness, None), due);
        harness.save(5, Vec::<(u64, ())>::new());
        assert_eq!(steps(&harness, Some(9)), vec![upto(Some(9), None)]);
        assert_eq!(harness.unsaved(), None);
        // The input ended with the part saved: the operator finishes.
        harness.settle(0, true);
        assert!(port.finished.get());
        assert!(Step {
            limit: Some(5),
            save: None
        }
        .passed(4));
        assert!(!Step {
            limit: Some(5),
            save: None
        }
        .passed(5));
    }

    #[test]
    fn a_stamp_order_part_holds_the_records_below_its_epoch_only() {
        let port = Rc::new(RecordingPort::default());
        port.pending.set(Some(5));
        let gauge = StateRows::default();
        let records = [(1, "a"), (2, "b"), (6, "a"), (7, "c")];
        run(&port, &gauge, &records, |stream, config| {
            stream.running_aggregate_core(Count, config).changes
        });
        let saved = port.saved.borrow();
        assert_eq!(saved.len(), 1, "one part, saved once");
        assert_eq!(saved[0].0, 5);
        let mut entries: Vec<(String, u64, Option<u64>)> = decode(saved[0].1.clone());
        entries.sort();
        // "a" at 6 and "c" at 7 are stamped after the epoch: not in the part.
        let expected = vec![("a".into(), 1, Some(1)), ("b".into(), 1, Some(1))];
        assert_eq!(entries, expected);
        assert!(
            port.finished.get(),
            "the operator finished once its input ended"
        );
        assert_eq!((gauge.get().rows, gauge.get().peak), (3, 3));
    }

    #[test]
    fn an_arrival_order_part_holds_records_stamped_at_its_epoch_back() {
        let port = Rc::new(RecordingPort::default());
        port.pending.set(Some(15));
        let gauge = StateRows::default();
        // Window [10, 20) of "a": 12 before the epoch, 16 after it.
        let records = [(12, "a"), (16, "a"), (31, "b")];
        run(&port, &gauge, &records, |stream, config| {
            stream
                .tumbling_window_rows::<_, crate::window::WindowResult<String, u64>>(
                    10, 0, Count, config,
                )
                .results
        });
        let saved = port.saved.borrow();
        assert_eq!(saved.len(), 1, "one part, saved once");
        let entries: Vec<(u64, u64, String, u64)> = decode(saved[0].1.clone());
        // The record at 16 waited until the part was saved.
        assert_eq!(entries, vec![(20, 19, "a".into(), 1)]);
        assert!(port.finished.get());
        assert_eq!(gauge.get().rows, 0, "every window closed at the end");
    }

    #[test]
    fn a_restored_part_is_the_state_the_operator_goes_on_from() {
        let first = Rc::new(RecordingPort::default());
        first.pending.set(Some(5));
        run(
            &first,
            &StateRows::default(),
            &[(1, "a"), (2, "a")],
            |stream, config| stream.running_aggregate_core(Count, config).changes,
        );
        let part = first.saved.borrow()[0].1.clone();
        let second = Rc::new(RecordingPort::default());
        *second.restore.borrow_mut() = part;
        let gauge = StateRows::default();
        let changes = Rc::new(RefCell::new(Vec::new()));
        let seen = Rc::clone(&changes);
        run(&second, &gauge, &[(7, "a")], move |stream, config| {
            use timely::dataflow::operators::Inspect;
            stream
                .running_aggregate_core(Count, config)
                .changes
                .inspect(move |event| {
                    let change = &event.data;
                    seen.borrow_mut().push((change.value, change.change));
                })
        });
        use crate::keyed::running::Change;
        // The restored count of 2 is retracted for 3.
        assert_eq!(
            *changes.borrow(),
            vec![(2, Change::Retract), (3, Change::Insert)]
        );
        assert_eq!(gauge.get().rows, 1);
    }
}
