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
use crate::snapshot::{Resumed, SnapshotPort, Snapshots};
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
    /// that made it; returns the pending epoch whose part it has not saved.
    pub fn note_sent(&self, time: u64) -> Option<u64> {
        self.snapshots.as_ref().and_then(|s| s.note_sent(time))
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
