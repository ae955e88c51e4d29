//! The driver of the window operators that apply records as they arrive (aligned windows,
//! sliding contributions), on the [`Harness`]: restore, then per activation apply each batch
//! (or hold it while a snapshot is pending at or below its stamp), close the windows a due
//! snapshot's epoch closes, save the part, apply what was held, close what the frontier
//! closes, and settle the gauge.

use std::hash::Hash;

use serde::de::DeserializeOwned;
use serde::Serialize;
use timely::dataflow::operators::{Capability, InputCapability};
use timely::dataflow::StreamVec;
use timely::ExchangeData;

use super::aligned::AlignedWindows;
use super::assign::Grid;
use super::sliding::SlidingState;
use super::{keyed_window_operator, EventOutput, LateRecord, StampCaps, WindowRow, WindowStreams};
use crate::aggregate::Aggregator;
use crate::event::Event;
use crate::stateful::{Harness, StateConfig};

/// The state of a window operator that applies records as they arrive.
pub(crate) enum ArrivalState<K, Acc, O, R> {
    /// Aligned windows, one accumulator per (key, window): tumbling windows, and sliding
    /// windows in update mode.
    Aligned(AlignedWindows<K, Acc, O, R>),
    /// Sliding windows in append mode, on per-key contributions.
    Contributions(SlidingState<K, Acc>),
}

/// Builds the operator named `name` over `state`: windows on `grid`, open for records stamped
/// up to `lateness` ms past their end, folding records with `aggregator`.
pub(crate) fn arrival_windows<'scope, K, D, A, R>(
    stream: StreamVec<'scope, u64, Event<(K, D)>>,
    name: &str,
    (grid, lateness): (Grid, u64),
    aggregator: A,
    config: StateConfig,
    mut state: ArrivalState<K, A::Acc, A::Output, R>,
) -> WindowStreams<'scope, K, D, R>
where
    K: ExchangeData + Hash + Eq + Clone,
    D: ExchangeData,
    A: Aggregator<D>,
    R: WindowRow<K, A::Output>,
{
    let peers = stream.scope().peers();
    let mut harness = Harness::new(config);
    keyed_window_operator(stream, name, move |initial| {
        restore_check(&harness, lateness, peers);
        state.restore(&harness, initial);
        let mut stash = SnapshotStash::default();
        move |input, frontier, results, late| {
            let ports = (results.output_index(), late.output_index());
            input.for_each_time(|capability, containers| {
                let hold = harness.unsaved();
                stash.hold_or_apply(hold, &capability, ports, containers, |caps, batch| {
                    state.apply(caps, ports.0, batch.drain(..), (grid, &aggregator), late)
                });
            });
            for step in harness.steps(frontier.frontier().first().copied()) {
                // A window closes once the frontier is at or past its close time.
                let reached = |close: u64| step.limit.is_none_or(|limit| close <= limit);
                state.close_passed(reached, results, &aggregator);
                if let Some(epoch) = step.save {
                    // The part holds the records stamped below the epoch, with the windows a
                    // frontier at the epoch closes closed.
                    state.save(epoch, &mut harness);
                    stash.drain(|caps, events| {
                        let events = events.into_iter();
                        state.apply(&caps, ports.0, events, (grid, &aggregator), late)
                    });
                }
            }
            if let ArrivalState::Aligned(windows) = &mut state {
                windows.emit_early(frontier, results, |acc| aggregator.finish(acc));
            }
            harness.settle(state.rows(), frontier.is_empty());
        }
    })
}

impl<K, Acc, O, R> ArrivalState<K, Acc, O, R>
where
    K: ExchangeData + Hash + Eq + Clone,
    Acc: Clone + Serialize + DeserializeOwned + 'static,
    R: WindowRow<K, O>,
{
    /// Applies the records of one stamp: each goes into its windows, or to the late output.
    #[inline]
    fn apply<D: 'static, A: Aggregator<D, Acc = Acc, Output = O>>(
        &mut self,
        capability: &StampCaps<'_>,
        port: usize,
        events: impl Iterator<Item = Event<(K, D)>>,
        (grid, aggregator): (Grid, &A),
        late: &mut EventOutput<'_, LateRecord<K, D>>,
    ) {
        match self {
            ArrivalState::Aligned(windows) => {
                windows.apply(capability, port, events, grid, aggregator, late)
            }
            ArrivalState::Contributions(state) => {
                state.apply(capability, port, events, aggregator, late)
            }
        }
    }

    /// Emits and frees, oldest first, every window whose close time has `passed`.
    fn close_passed<D, A: Aggregator<D, Acc = Acc, Output = O>>(
        &mut self,
        passed: impl Fn(u64) -> bool,
        results: &mut EventOutput<'_, R>,
        aggregator: &A,
    ) {
        match self {
            ArrivalState::Aligned(windows) => {
                windows.close_passed(passed, results, |acc| aggregator.finish(acc))
            }
            ArrivalState::Contributions(state) => state.close_passed(passed, results, aggregator),
        }
    }

    /// Saves the state as the operator's part of the snapshot at `epoch`.
    fn save(&self, epoch: u64, harness: &mut Harness) {
        match self {
            ArrivalState::Aligned(windows) => harness.save(epoch, windows.entries()),
            ArrivalState::Contributions(state) => harness.save(epoch, state.entries()),
        }
    }

    /// Restores the state the job resumed with, minting capabilities from `initial`.
    fn restore(&mut self, harness: &Harness, initial: &Capability<u64>) {
        match self {
            ArrivalState::Aligned(windows) => {
                if let Some(saved) = harness.restore() {
                    windows.restore(saved, initial);
                }
            }
            ArrivalState::Contributions(state) => {
                if let Some(saved) = harness.restore() {
                    state.restore(saved, initial);
                }
            }
        }
    }

    /// The rows of state held, for the gauge.
    fn rows(&self) -> u64 {
        match self {
            ArrivalState::Aligned(windows) => windows.held,
            ArrivalState::Contributions(state) => state.rows(),
        }
    }
}

/// Refuses to restore a window operator with allowed lateness onto another worker count: the
/// result capability of a window still open after its end is shared by the keys of a worker,
/// so a row could move across the snapshot's cut (docs/ARCHITECTURE.md "Snapshots").
pub(crate) fn restore_check(harness: &Harness, lateness: u64, peers: usize) {
    if let Some(resumed) = harness.resumed() {
        if lateness > 0 && resumed.peers != peers {
            harness.fail(format!(
                "the snapshot was taken with {} workers and this run has {peers}; a job with allowed lateness resumes on the same number of workers only",
                resumed.peers
            ));
        }
    }
}

/// A batch waiting in a [`SnapshotStash`], with capabilities for the result and late outputs.
type HeldBatch<K, D> = (Capability<u64>, Capability<u64>, Vec<Event<(K, D)>>);

/// Records stamped at or after a pending snapshot's epoch, waiting until the operator's part
/// is saved, with capabilities for both outputs at their stamp.
struct SnapshotStash<K, D> {
    held: Vec<HeldBatch<K, D>>,
}

impl<K, D> Default for SnapshotStash<K, D> {
    fn default() -> Self {
        SnapshotStash { held: Vec::new() }
    }
}

impl<K, D> SnapshotStash<K, D> {
    /// Keeps `containers`, stamped `capability.time()`.
    fn hold<'a>(
        &mut self,
        capability: &InputCapability<u64>,
        ports: (usize, usize),
        containers: impl Iterator<Item = &'a mut Vec<Event<(K, D)>>>,
    ) where
        K: 'a,
        D: 'a,
    {
        let results = capability.retain(ports.0);
        let late = capability.delayed(capability.time(), ports.1);
        for container in containers {
            self.held
                .push((results.clone(), late.clone(), std::mem::take(container)));
        }
    }

    /// Applies the records of one stamp as they arrive, unless a snapshot is pending at or
    /// below their stamp (`hold`, the unsaved epoch): then they are held until the operator's
    /// part is saved. The pending epoch is read after the records arrived (a record stamped at
    /// or after it was sent after it was announced, so its receiver sees it), once per batch of
    /// one stamp.
    fn hold_or_apply<'a>(
        &mut self,
        hold: Option<u64>,
        capability: &InputCapability<u64>,
        ports: (usize, usize),
        containers: impl Iterator<Item = &'a mut Vec<Event<(K, D)>>>,
        mut apply: impl FnMut(&StampCaps<'_>, &mut Vec<Event<(K, D)>>),
    ) where
        K: 'a,
        D: 'a,
    {
        if hold.is_some_and(|epoch| *capability.time() >= epoch) {
            self.hold(capability, ports, containers);
            return;
        }
        let caps = StampCaps::Input(capability);
        for container in containers {
            apply(&caps, container);
        }
    }

    /// Hands each held batch to `apply`, in the order they came.
    fn drain(&mut self, mut apply: impl FnMut(StampCaps<'_>, Vec<Event<(K, D)>>)) {
        for (results, late, events) in self.held.drain(..) {
            apply(
                StampCaps::Held {
                    results: &results,
                    late: &late,
                },
                events,
            );
        }
    }
}
