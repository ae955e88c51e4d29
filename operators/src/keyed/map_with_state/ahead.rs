//! Output ahead of the step that made it, and snapshots: what `map_with_state` keeps for its
//! part, and what it holds while the processes of a cluster agree on an epoch
//! (docs/ARCHITECTURE.md "Snapshots of a cluster").

use timely::dataflow::operators::Capability;

use super::send;
use crate::event::Event;
use crate::snapshot::Ahead;
use crate::stateful::Harness;
use crate::window::EventOutput;

/// How soon an operator holding outputs polls again whether the processes of a cluster have
/// agreed on an epoch (about one round trip between processes).
pub(super) const AGREEING_POLL: std::time::Duration = std::time::Duration::from_micros(200);

/// With a snapshot pending, notes outputs of the step at `time` that run ahead of it, and keeps
/// those at or after the pending epoch made before it for the operator's part: a restore sends
/// them again, since the step that made them is in the restored state. Returns true if the
/// processes of a cluster are agreeing on the next epoch: then the outputs must be held until
/// every process knows it (an operator of another process that applies records as they
/// arrive would otherwise apply output of the next epoch in this one).
pub(super) fn keep_ahead<O: Clone>(
    harness: &Harness,
    time: u64,
    emitted: &[Event<O>],
    ahead: &mut Vec<Event<O>>,
) -> bool {
    let Some(latest) = emitted.iter().map(|event| event.time).max() else {
        return false;
    };
    if latest <= time {
        return false;
    }
    match harness.note_sent(latest) {
        Ahead::Agreeing(_) => true,
        view => {
            if let Some(from) = view.keep_from(time) {
                ahead.extend(emitted.iter().filter(|event| event.time >= from).cloned());
            }
            false
        }
    }
}

/// Outputs ahead of the step that made them, made while the processes of a cluster agree on the
/// next snapshot's epoch, with the step's capability and time: sent once every process knows the
/// epoch (no process then sends anything stamped at or after it before every process knows it),
/// and kept for the part where they are at or after it (as `keep_ahead` does). Every step made
/// while the processes agree is below the epoch to come.
pub(super) struct Deferred<O> {
    held: Vec<(Capability<u64>, u64, Vec<Event<O>>)>,
}

impl<O> Default for Deferred<O> {
    fn default() -> Self {
        Deferred { held: Vec::new() }
    }
}

impl<O: Clone + 'static> Deferred<O> {
    /// Holds the outputs `emitted` of the step at `time`.
    pub(super) fn hold(
        &mut self,
        capability: &Capability<u64>,
        time: u64,
        emitted: &mut Vec<Event<O>>,
    ) {
        self.held
            .push((capability.clone(), time, std::mem::take(emitted)));
    }

    /// The part at `epoch` is being saved: what is held at or after it belongs in it.
    pub(super) fn keep_for(&self, epoch: u64, ahead: &mut Vec<Event<O>>) {
        for (_, _, events) in &self.held {
            ahead.extend(events.iter().filter(|event| event.time >= epoch).cloned());
        }
    }

    /// Sends what is held once the processes have agreed (keeping for the pending epoch's part
    /// what belongs in it): returns false if they are still agreeing.
    pub(super) fn flush(
        &mut self,
        harness: &Harness,
        output: &mut EventOutput<'_, O>,
        ahead: &mut Vec<Event<O>>,
    ) -> bool {
        let Some(latest) = self
            .held
            .iter()
            .flat_map(|(_, _, events)| events.iter().map(|event| event.time))
            .max()
        else {
            return true;
        };
        let view = harness.note_sent(latest);
        if matches!(view, Ahead::Agreeing(_)) {
            return false;
        }
        for (capability, step, mut events) in self.held.drain(..) {
            if let Some(from) = view.keep_from(step) {
                ahead.extend(events.iter().filter(|event| event.time >= from).cloned());
            }
            send(output, &capability, &mut events);
        }
        true
    }
}
