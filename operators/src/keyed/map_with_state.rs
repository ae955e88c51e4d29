//! Arbitrary keyed state with event-time timers and a state TTL, in the spirit of Spark's
//! `flatMapGroupsWithState` and Flink's `KeyedProcessFunction`, made deterministic.
//!
//! A user function is called per key with a [`StateInput`] (the key's records of one stamp, a
//! timer, or the expiry of its state), the key's state (`&mut Option<S>`: set it, change it, or
//! set it to `None` to remove it), and a [`StateContext`] to emit records and to set and
//! delete the key's event-time timers.
//!
//! **Order.** The input is exchanged by [`key_group`] of the key. Each incoming batch waits in a
//! stash until the frontier passes its stamp. Then the operator takes *steps* in time order, up
//! to the frontier: the records stamped `s` (one call per key, with all of its records of that
//! stamp), the timers at `t` (one call per key and timer), and the expiries at `e` (one call
//! per expiring state). At equal times, records go first, then timers, then expiries: a timer
//! at `t` fires once the frontier passes `t`, after the records stamped `t` and before any
//! record stamped later (as in Flink, where the watermark `t` that fires a timer follows the
//! records of time `t`). Within one call, a key's records come sorted by event time, then by
//! the record itself (`D: Ord`; records that compare equal come in an unspecified order). The
//! output therefore depends only on the input and its partitioning (which sets the stamps),
//! never on batching or worker count, provided the function itself is deterministic.
//!
//! **Lateness.** There is none: every record is delivered when its stamp comes, with its own
//! event time. A record that arrived behind its partition's watermark is stamped at that
//! watermark, so the function sees it at [`StateContext::time`] later than its event time
//! (timers before that time have already fired), and decides what to do with it.
//!
//! **Timers.** [`StateContext::set_timer`] sets a timer of the key; a key has at most one timer
//! per time, and a timer for a time before the current step's is set at the step's time (it
//! fires right after the step, as part of the same time). A timer fires with
//! [`StateInput::Timer`] once the frontier passes its time. [`StateContext::delete_timer`]
//! deletes one. Timers are not state: they survive the removal of the state, and a key with
//! neither state nor timers is forgotten.
//!
//! **TTL.** With a TTL, a key's state expires when the frontier passes its *last touch* plus
//! the TTL, where a touch is any call with records or a timer, at the step's time. Expiry calls
//! the function with [`StateInput::Expired`] (it may emit a last record or set timers), then
//! removes the state whatever the function left in it. Records stamped exactly at last touch
//! plus TTL still find the state. A key that comes back after its state expired starts with
//! `None`.
//!
//! **Output.** [`StateContext::emit`] emits a record at the step's time as event time
//! (the stamp of the records, or the time of the timer or expiry);
//! [`StateContext::emit_at`] at any event time. A record leaves at timely time
//! `max(step time, event time)`, so, as at a source, no output is stamped below its own event
//! time.
//!
//! **End of input.** When the frontier empties, every remaining step runs, in time order:
//! every timer fires (including timers set by those calls) and, with a TTL, every state
//! expires. A timer that always sets a later timer of its key therefore never lets a job end.
//!
//! **State.** Keys live in a slab of slots (`FxHashMap<K, slot>` beside `Vec<slot>`): a key is
//! cloned once when it first comes, and the key of each later record is dropped. A key's
//! records of a stamp are grouped by sorting a reused buffer, not by allocating per key.
//! Timers and expiries are indexed by time (`BTreeMap<time, Vec<slot>>`), so a timer costs a
//! push of a slot number, not a copy of the key; a deleted timer's index entry is skipped when
//! its time comes. Expiries are lazy: a state has one index entry at a time, re-armed at its
//! latest touch when it comes due.
//! The [`StateRows`](crate::state::StateRows) gauge counts the keys held (with state, timers,
//! or both); the stash holds about one watermark delay of records. [`StateHandle::with_state`]
//! reads every key's state and timers between steps of the worker.
//!
//! [`key_group`]: crate::snapshot::key_group

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::hash::Hash;
use std::rc::Rc;

use rustc_hash::FxHashMap;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::Capability;
use timely::dataflow::StreamVec;
use timely::ExchangeData;

use crate::container::GrowingBuilder;
use crate::event::Event;
use crate::snapshot::key_group;
use crate::stateful::{EventStash, Harness, StampStash, StateConfig};
use crate::window::EventOutput;

mod ahead;
use ahead::{keep_ahead, Deferred, AGREEING_POLL};

/// Why the function of [`MapWithState::map_with_state`] is called for a key.
#[derive(Debug)]
pub enum StateInput<'a, D> {
    /// The key's records of one stamp, sorted by event time, then by record.
    Records(Records<'a, D>),
    /// The key's timer at this time fired (the same time as [`StateContext::time`]).
    Timer(u64),
    /// The key's state was untouched for the TTL. It is passed in as usual, and removed after
    /// the call whatever the function leaves in it.
    Expired,
}

/// A key's records of one stamp, each with its event time, in event-time order; moved out of
/// the operator, not copied. Records not taken are dropped.
#[derive(Debug)]
pub struct Records<'a, D> {
    drain: std::vec::Drain<'a, (u32, Event<D>)>,
}

impl<D> Iterator for Records<'_, D> {
    type Item = Event<D>;

    #[inline]
    fn next(&mut self) -> Option<Event<D>> {
        self.drain.next().map(|(_, event)| event)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.drain.size_hint()
    }
}

impl<D> ExactSizeIterator for Records<'_, D> {}

/// What the function may do besides changing its state: emit records, and set and delete the
/// key's timers.
#[derive(Debug)]
pub struct StateContext<'a, O> {
    time: u64,
    slot: u32,
    output: &'a mut Vec<Event<O>>,
    /// The key's pending timers, ascending.
    timers: &'a mut Vec<u64>,
    index: &'a mut BTreeMap<u64, Vec<u32>>,
}

impl<O> StateContext<'_, O> {
    /// The time of this step: the stamp of the records, or the time of the timer or expiry.
    pub fn time(&self) -> u64 {
        self.time
    }

    /// Emits `data` with event time [`time`](Self::time).
    #[inline]
    pub fn emit(&mut self, data: O) {
        self.output.push(Event::new(self.time, data));
    }

    /// Emits `data` with event time `time`. It leaves at timely time
    /// `max(self.time(), time)`.
    #[inline]
    pub fn emit_at(&mut self, time: u64, data: O) {
        self.output.push(Event::new(time, data));
    }

    /// Sets a timer of this key at `time`, or at [`time`](Self::time) if `time` is earlier; it
    /// fires once the frontier passes that time. Setting a timer that is already set does
    /// nothing: a key has at most one timer per time.
    pub fn set_timer(&mut self, time: u64) {
        let time = time.max(self.time);
        if let Err(position) = self.timers.binary_search(&time) {
            self.timers.insert(position, time);
            self.index.entry(time).or_default().push(self.slot);
        }
    }

    /// Deletes this key's timer at `time`; returns whether there was one.
    pub fn delete_timer(&mut self, time: u64) -> bool {
        match self.timers.binary_search(&time) {
            Ok(position) => {
                self.timers.remove(position);
                true
            }
            Err(_) => false,
        }
    }

    /// Deletes every timer of this key.
    pub fn delete_timers(&mut self) {
        self.timers.clear();
    }

    /// This key's pending timers, earliest first (a timer that is firing is no longer
    /// pending).
    pub fn timers(&self) -> &[u64] {
        self.timers
    }
}

/// The outputs of [`MapWithState::map_with_state`].
pub struct StatefulStreams<'scope, K, S, O> {
    /// The records the function emitted, each at `max(step time, its event time)`.
    pub output: StreamVec<'scope, u64, Event<O>>,
    /// The operator's state on this worker, to read between steps.
    pub state: StateHandle<K, S>,
}

/// Runs a function with per-key state, timers and TTL over a keyed stream: see the
/// [module documentation](self).
pub trait MapWithState<'scope, K, D> {
    /// Calls `logic(key, input, state, context)` for each key's records of each stamp, each of
    /// its timers, and (with `ttl`, in ms) the expiry of its state, in time order; returns what
    /// it emits.
    ///
    /// # Examples
    /// Counts each key's clicks until 1 s passes without one, with a timer:
    /// ```
    /// use timely::dataflow::operators::{Capture, capture::Extract, ToStream};
    /// use timely::dataflow::operators::vec::{Delay, Map};
    /// use tideflow_operators::keyed::map_with_state::{MapWithState, StateInput};
    /// use tideflow_operators::Event;
    ///
    /// let captured = timely::example(|scope| {
    ///     vec![(1_000u64, "ann"), (1_500, "ann"), (1_200, "bob"), (4_000, "ann")]
    ///         .to_stream(scope)
    ///         .container::<Vec<_>>()
    ///         .map(|(t, user): (u64, &str)| Event::new(t, (user.to_string(), ())))
    ///         .delay(|event, _| event.time) // stamp each record at its event time
    ///         .map_with_state(None, |user, input, clicks: &mut Option<u64>, context| {
    ///             match input {
    ///                 StateInput::Records(records) => {
    ///                     *clicks.get_or_insert(0) += records.len() as u64;
    ///                     context.delete_timers();
    ///                     context.set_timer(context.time() + 1_000);
    ///                 }
    ///                 StateInput::Timer(_) => {
    ///                     context.emit((user.clone(), clicks.take().unwrap_or(0)));
    ///                 }
    ///                 StateInput::Expired => {}
    ///             }
    ///         })
    ///         .output
    ///         .capture()
    /// });
    /// let mut rows: Vec<(u64, String, u64)> = captured.extract().into_iter()
    ///     .flat_map(|(_, rows)| rows)
    ///     .map(|event| (event.time, event.data.0, event.data.1))
    ///     .collect();
    /// rows.sort();
    /// assert_eq!(rows, vec![
    ///     (2_200, "bob".into(), 1),
    ///     (2_500, "ann".into(), 2),
    ///     (5_000, "ann".into(), 1),
    /// ]);
    /// ```
    fn map_with_state<S, O, L>(
        self,
        ttl: Option<u64>,
        logic: L,
    ) -> StatefulStreams<'scope, K, S, O>
    where
        S: Serialize + DeserializeOwned + 'static,
        O: Clone + Serialize + DeserializeOwned + 'static,
        L: FnMut(&K, StateInput<'_, D>, &mut Option<S>, &mut StateContext<'_, O>) + 'static;

    /// Like [`map_with_state`](Self::map_with_state), with the operator's snapshot port and
    /// gauge (set to the number of keys held after each activation) in `config`.
    fn map_with_state_core<S, O, L>(
        self,
        ttl: Option<u64>,
        logic: L,
        config: StateConfig,
    ) -> StatefulStreams<'scope, K, S, O>
    where
        S: Serialize + DeserializeOwned + 'static,
        O: Clone + Serialize + DeserializeOwned + 'static,
        L: FnMut(&K, StateInput<'_, D>, &mut Option<S>, &mut StateContext<'_, O>) + 'static;
}

impl<'scope, K, D> MapWithState<'scope, K, D> for StreamVec<'scope, u64, Event<(K, D)>>
where
    K: ExchangeData + Hash + Eq + Clone,
    D: ExchangeData + Ord,
{
    fn map_with_state<S, O, L>(self, ttl: Option<u64>, logic: L) -> StatefulStreams<'scope, K, S, O>
    where
        S: Serialize + DeserializeOwned + 'static,
        O: Clone + Serialize + DeserializeOwned + 'static,
        L: FnMut(&K, StateInput<'_, D>, &mut Option<S>, &mut StateContext<'_, O>) + 'static,
    {
        self.map_with_state_core(ttl, logic, StateConfig::none())
    }

    fn map_with_state_core<S, O, L>(
        self,
        ttl: Option<u64>,
        mut logic: L,
        config: StateConfig,
    ) -> StatefulStreams<'scope, K, S, O>
    where
        S: Serialize + DeserializeOwned + 'static,
        O: Clone + Serialize + DeserializeOwned + 'static,
        L: FnMut(&K, StateInput<'_, D>, &mut Option<S>, &mut StateContext<'_, O>) + 'static,
    {
        let route: fn(&Event<(K, D)>) -> u64 = |event| key_group(&event.data.0);
        let mut stash: EventStash<(K, D)> = StampStash::default();
        let mut harness = Harness::new(config);
        let states = Rc::new(RefCell::new(KeyedStates::new(ttl)));
        let handle = StateHandle {
            states: Rc::clone(&states),
        };
        // At or below the earliest pending timer or expiry, while there is one.
        let mut held: Option<Capability<u64>> = None;
        let mut pending: Vec<(u32, Event<D>)> = Vec::new();
        let mut emitted: Vec<Event<O>> = Vec::new();
        let scope = self.scope();

        let output = self.unary_frontier::<GrowingBuilder<Event<O>>, _, _, _>(
            Exchange::new(route),
            "MapWithState",
            move |initial, info| {
                let activator = scope.activator_for(info.address);
                // Outputs ahead of their step, made while the processes of a cluster agree on
                // a snapshot's epoch: held until every process knows it (see `Deferred`).
                let mut deferred = Deferred::default();
                // Outputs a restored snapshot holds (made before its epoch, for at or after it).
                let mut restored: Option<(Capability<u64>, Vec<Event<O>>)> = None;
                // Outputs made before a pending epoch for at or after it: in the next part.
                let mut ahead: Vec<Event<O>> = Vec::new();
                if let Some(saved) = harness.restore::<OwnedState<K, S, O>>() {
                    let mut states = states.borrow_mut();
                    let mut outputs = Vec::new();
                    for saved in saved {
                        match saved {
                            SavedState::Key {
                                key,
                                state,
                                timers,
                                touched,
                                expiry,
                            } => states.restore(key, state, timers, touched, expiry),
                            SavedState::Output(event) => outputs.push(event),
                        }
                    }
                    held = states.next_due().map(|due| initial.delayed(&due));
                    if let Some(first) = outputs.iter().map(|e| e.time).min() {
                        // They are sent again, ahead of every step: later epochs must be
                        // above them, as they were in the run that made them.
                        let latest = outputs.iter().map(|e| e.time).max().unwrap_or(first);
                        harness.note_sent(latest);
                        restored = Some((initial.delayed(&first), outputs));
                    }
                }
                drop(initial);
                move |(input, frontier), output| {
                    if let Some((capability, mut outputs)) = restored.take() {
                        send(output, &capability, &mut outputs);
                    }
                    if !deferred.flush(&harness, output, &mut ahead) {
                        activator.activate_after(AGREEING_POLL);
                    }
                    input.for_each_time(|capability, containers| {
                        stash.stash(&capability, 0, containers);
                    });

                    let mut states = states.borrow_mut();
                    let states = &mut *states;
                    let frontier_now = frontier.frontier().first().copied();
                    let mut most = states.rows();
                    // Up to a snapshot's epoch first (its part is saved there), then the frontier.
                    for step in harness.steps(frontier_now) {
                        let passed = |time: &u64| step.passed(*time);
                        loop {
                            let records = stash.first_stamp().filter(passed);
                            let timers = states.timers.keys().next().copied().filter(passed);
                            let expiries = states.expiries.keys().next().copied().filter(passed);
                            let next = [
                                (records, Step::Records),
                                (timers, Step::Timers),
                                (expiries, Step::Expiries),
                            ]
                            .into_iter()
                            .filter_map(|(time, step)| Some((time?, step)))
                            .min();
                            let Some((time, step)) = next else {
                                break;
                            };
                            let capability = if step == Step::Records {
                                let (_, capability, batches) =
                                    stash.pop_first().expect("a stamp is due");
                                states.apply(time, batches, &mut pending, &mut logic, &mut emitted);
                                capability
                            } else {
                                let capability = held
                                    .as_ref()
                                    .expect("a capability is held for every timer and expiry")
                                    .delayed(&time);
                                if step == Step::Timers {
                                    states.fire_timers(time, &mut logic, &mut emitted);
                                } else {
                                    states.expire(time, &mut logic, &mut emitted);
                                }
                                capability
                            };
                            if harness.snapshots()
                                && keep_ahead(&harness, time, &emitted, &mut ahead)
                            {
                                deferred.hold(&capability, time, &mut emitted);
                                activator.activate_after(AGREEING_POLL);
                            }
                            send(output, &capability, &mut emitted);
                            hold(&mut held, &capability, states.next_due());
                            most = most.max(states.rows());
                        }
                        if let Some(epoch) = step.save {
                            // What is held is in the part where it is at or after the epoch
                            // (it is sent once every process knows the epoch).
                            deferred.keep_for(epoch, &mut ahead);
                            let keys = states.iter_entries().map(|entry| {
                                let saved = SavedState::Key {
                                    key: &entry.key,
                                    state: entry.state.as_ref(),
                                    timers: &entry.timers,
                                    touched: entry.touched,
                                    expiry: entry.expiry,
                                };
                                (key_group(&entry.key), saved)
                            });
                            // Kept while the epoch was being agreed, some may be below it.
                            let outputs = ahead
                                .iter()
                                .filter(|event| event.time >= epoch)
                                .map(|event| (0, SavedState::Output(event)));
                            harness.save(epoch, keys.chain(outputs));
                            ahead.clear();
                        }
                    }
                    // The peak includes the keys held between steps within this activation.
                    if most > states.rows() {
                        harness.peak(most as u64);
                    }
                    harness.settle(states.rows() as u64, frontier.is_empty());
                }
            },
        );
        StatefulStreams {
            output,
            state: handle,
        }
    }
}

/// A saved piece of `map_with_state` state.
#[derive(Serialize, Deserialize)]
enum SavedState<K, S, T, E> {
    /// A key's entry.
    Key {
        key: K,
        state: Option<S>,
        timers: T,
        touched: u64,
        expiry: Option<u64>,
    },
    /// An output made before the snapshot's epoch for a time at or after it, sent again on
    /// restore.
    Output(E),
}

/// Saved `map_with_state` state, as read back.
type OwnedState<K, S, O> = SavedState<K, S, Vec<u64>, Event<O>>;

/// The kinds of step, in the order they run at equal times.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Step {
    Records,
    Timers,
    Expiries,
}

/// Sends `emitted` (emptied), each event at `max(capability time, event time)`.
fn send<O: 'static>(
    output: &mut EventOutput<'_, O>,
    capability: &Capability<u64>,
    emitted: &mut Vec<Event<O>>,
) {
    let now = *capability.time();
    if emitted.iter().all(|event| event.time <= now) {
        if !emitted.is_empty() {
            output
                .session_with_builder(capability)
                .give_iterator(emitted.drain(..));
        }
        return;
    }
    emitted.sort_by_key(|event| event.time.max(now));
    let mut events = emitted.drain(..).peekable();
    while let Some(first) = events.next() {
        let at = first.time.max(now);
        let delayed = capability.delayed(&at);
        let mut session = output.session_with_builder(&delayed);
        session.give(first);
        while let Some(event) = events.next_if(|event| event.time.max(now) == at) {
            session.give(event);
        }
    }
}

/// Keeps `held` at `due`, the earliest pending timer or expiry (none: drops it). A step at
/// `capability`'s time only adds timers and expiries at or after it.
fn hold(held: &mut Option<Capability<u64>>, capability: &Capability<u64>, due: Option<u64>) {
    let Some(due) = due else {
        *held = None;
        return;
    };
    match held {
        Some(held) if *held.time() <= due => held.downgrade(&due),
        _ => *held = Some(capability.delayed(&due)),
    }
}

/// One key's entry.
#[derive(Debug)]
struct KeyEntry<K, S> {
    key: K,
    state: Option<S>,
    /// Pending timers, ascending.
    timers: Vec<u64>,
    /// The time of the last call with records or a timer.
    touched: u64,
    /// The time of this key's entry in the expiry index, if it has one.
    expiry: Option<u64>,
}

/// The keys a [`MapWithState`] operator holds on one worker: each key's state and timers.
#[derive(Debug)]
pub struct KeyedStates<K, S> {
    ttl: Option<u64>,
    slots: Vec<Option<KeyEntry<K, S>>>,
    free: Vec<u32>,
    keys: FxHashMap<K, u32>,
    /// Timer time to the slots with a timer then; a deleted timer's entry stays until its time.
    timers: BTreeMap<u64, Vec<u32>>,
    /// Expiry time to the slots whose state may expire then.
    expiries: BTreeMap<u64, Vec<u32>>,
}

/// One key held by a [`MapWithState`] operator, as [`KeyedStates::iter`] shows it.
#[derive(Debug)]
pub struct HeldKey<'a, K, S> {
    /// The key.
    pub key: &'a K,
    /// Its state, if it has one.
    pub state: Option<&'a S>,
    /// Its pending timers, earliest first.
    pub timers: &'a [u64],
    /// The time of its last call with records or a timer: with a TTL, the state expires when
    /// the frontier passes `last_touch + ttl`.
    pub last_touch: u64,
}

impl<K: Hash + Eq + Clone, S> KeyedStates<K, S> {
    fn new(ttl: Option<u64>) -> Self {
        KeyedStates {
            ttl,
            slots: Vec::new(),
            free: Vec::new(),
            keys: FxHashMap::default(),
            timers: BTreeMap::new(),
            expiries: BTreeMap::new(),
        }
    }

    /// The state TTL in ms, if any.
    pub fn ttl(&self) -> Option<u64> {
        self.ttl
    }

    /// The number of keys held: with state, timers, or both.
    pub fn rows(&self) -> usize {
        self.keys.len()
    }

    /// Every key held, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = HeldKey<'_, K, S>> + '_ {
        self.slots.iter().flatten().map(|entry| HeldKey {
            key: &entry.key,
            state: entry.state.as_ref(),
            timers: &entry.timers,
            last_touch: entry.touched,
        })
    }

    /// Every key's entry, for snapshots.
    fn iter_entries(&self) -> impl Iterator<Item = &KeyEntry<K, S>> + '_ {
        self.slots.iter().flatten()
    }

    /// Holds a key saved by a snapshot again, with its timers and expiry indexed.
    fn restore(
        &mut self,
        key: K,
        state: Option<S>,
        timers: Vec<u64>,
        touched: u64,
        expiry: Option<u64>,
    ) {
        let slot = self.slot(key);
        for &time in &timers {
            self.timers.entry(time).or_default().push(slot);
        }
        if let Some(expiry) = expiry {
            self.expiries.entry(expiry).or_default().push(slot);
        }
        let entry = self.slots[slot as usize]
            .as_mut()
            .expect("a slot just made");
        entry.state = state;
        entry.timers = timers;
        entry.touched = touched;
        entry.expiry = expiry;
    }

    /// The earliest time a timer or expiry is indexed at.
    fn next_due(&self) -> Option<u64> {
        let timer = self.timers.keys().next().copied();
        let expiry = self.expiries.keys().next().copied();
        match (timer, expiry) {
            (Some(timer), Some(expiry)) => Some(timer.min(expiry)),
            (timer, expiry) => timer.or(expiry),
        }
    }

    /// The slot of `key`, a new one if the key is not held.
    fn slot(&mut self, key: K) -> u32 {
        if let Some(&slot) = self.keys.get(&key) {
            return slot;
        }
        let entry = KeyEntry {
            key: key.clone(),
            state: None,
            timers: Vec::new(),
            touched: 0,
            expiry: None,
        };
        let slot = match self.free.pop() {
            Some(slot) => {
                self.slots[slot as usize] = Some(entry);
                slot
            }
            None => {
                self.slots.push(Some(entry));
                u32::try_from(self.slots.len() - 1).expect("under 2^32 keys per worker")
            }
        };
        self.keys.insert(key, slot);
        slot
    }

    /// Applies the records stamped `time`: one call per key with its records sorted by
    /// `(event time, record)`.
    fn apply<D: Ord, O, L>(
        &mut self,
        time: u64,
        batches: Vec<Vec<Event<(K, D)>>>,
        pending: &mut Vec<(u32, Event<D>)>,
        logic: &mut L,
        emitted: &mut Vec<Event<O>>,
    ) where
        L: FnMut(&K, StateInput<'_, D>, &mut Option<S>, &mut StateContext<'_, O>),
    {
        for Event {
            time: event_time,
            data: (key, data),
        } in batches.into_iter().flatten()
        {
            let slot = self.slot(key);
            pending.push((slot, Event::new(event_time, data)));
        }
        pending.sort_unstable_by(|(a, x), (b, y)| (a, x).cmp(&(b, y)));
        // Each key's run, last first, so that draining it moves nothing else.
        while let Some(&(slot, _)) = pending.last() {
            let start = pending
                .iter()
                .rposition(|(other, _)| *other != slot)
                .map_or(0, |before| before + 1);
            let records = Records {
                drain: pending.drain(start..),
            };
            self.call(slot, time, StateInput::Records(records), logic, emitted);
        }
    }

    /// Fires the timers at `time`.
    fn fire_timers<D, O, L>(&mut self, time: u64, logic: &mut L, emitted: &mut Vec<Event<O>>)
    where
        L: FnMut(&K, StateInput<'_, D>, &mut Option<S>, &mut StateContext<'_, O>),
    {
        let Some(slots) = self.timers.remove(&time) else {
            return;
        };
        for slot in slots {
            // A deleted timer, or one fired already through another entry, is skipped.
            let due = self.slots[slot as usize].as_mut().is_some_and(|entry| {
                let found = entry.timers.binary_search(&time);
                found.map(|position| entry.timers.remove(position)).is_ok()
            });
            if due {
                self.call(slot, time, StateInput::Timer(time), logic, emitted);
            }
        }
    }

    /// Expires the states indexed at `time` that were not touched since; re-indexes the others
    /// at their last touch plus the TTL.
    fn expire<D, O, L>(&mut self, time: u64, logic: &mut L, emitted: &mut Vec<Event<O>>)
    where
        L: FnMut(&K, StateInput<'_, D>, &mut Option<S>, &mut StateContext<'_, O>),
    {
        let (Some(ttl), Some(slots)) = (self.ttl, self.expiries.remove(&time)) else {
            return;
        };
        for slot in slots {
            let Some(entry) = self.slots[slot as usize].as_mut() else {
                continue;
            };
            if entry.expiry != Some(time) {
                continue;
            }
            entry.expiry = None;
            if entry.state.is_none() {
                continue;
            }
            let due = entry.touched.saturating_add(ttl);
            if due > time {
                entry.expiry = Some(due);
                self.expiries.entry(due).or_default().push(slot);
            } else {
                self.call(slot, time, StateInput::Expired, logic, emitted);
            }
        }
    }

    /// Calls `logic` for the key in `slot` at `time`, then records the touch, indexes its
    /// expiry, or forgets the key if it holds nothing.
    fn call<D, O, L>(
        &mut self,
        slot: u32,
        time: u64,
        input: StateInput<'_, D>,
        logic: &mut L,
        emitted: &mut Vec<Event<O>>,
    ) where
        L: FnMut(&K, StateInput<'_, D>, &mut Option<S>, &mut StateContext<'_, O>),
    {
        let entry = self.slots[slot as usize]
            .as_mut()
            .expect("a called key is held");
        let expired = matches!(input, StateInput::Expired);
        let mut context = StateContext {
            time,
            slot,
            output: emitted,
            timers: &mut entry.timers,
            index: &mut self.timers,
        };
        logic(&entry.key, input, &mut entry.state, &mut context);
        if expired {
            entry.state = None;
        } else {
            entry.touched = time;
        }
        match (self.ttl, &entry.state) {
            (Some(ttl), Some(_)) if entry.expiry.is_none() => {
                let due = entry.touched.saturating_add(ttl);
                entry.expiry = Some(due);
                self.expiries.entry(due).or_default().push(slot);
            }
            (_, None) if entry.timers.is_empty() => {
                let entry = self.slots[slot as usize]
                    .take()
                    .expect("a called key is held");
                self.keys.remove(&entry.key);
                self.free.push(slot);
            }
            _ => {}
        }
    }
}

/// A handle on a [`MapWithState`] operator's state on one worker, for reading it between steps
/// of the worker (for example to snapshot it).
#[derive(Debug)]
pub struct StateHandle<K, S> {
    states: Rc<RefCell<KeyedStates<K, S>>>,
}

impl<K, S> Clone for StateHandle<K, S> {
    fn clone(&self) -> Self {
        StateHandle {
            states: Rc::clone(&self.states),
        }
    }
}

impl<K, S> StateHandle<K, S> {
    /// Calls `read` with the state. Call it between steps of the worker: the operator borrows
    /// the state while it runs.
    pub fn with_state<R>(&self, read: impl FnOnce(&KeyedStates<K, S>) -> R) -> R {
        read(&self.states.borrow())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outputs_leave_at_their_event_time_or_later_and_state_reads_between_steps() {
        use timely::dataflow::operators::{Inspect, Probe};
        use timely::dataflow::{InputHandle, ProbeHandle};

        timely::execute_directly(|worker| {
            type Builder = timely::container::CapacityContainerBuilder<Vec<Event<(u32, u64)>>>;
            let mut input = InputHandle::<u64, Builder>::new();
            let probe = ProbeHandle::new();
            let seen = Rc::new(RefCell::new(Vec::new()));
            let sent = Rc::clone(&seen);
            let handle = worker.dataflow(|scope| {
                let streams = input.to_stream(scope).map_with_state(
                    Some(1_000),
                    |_key: &u32, input, sum: &mut Option<u64>, context| match input {
                        StateInput::Records(records) => {
                            let now = context.time();
                            *sum.get_or_insert(0) += records.map(|r| r.data).sum::<u64>();
                            context.emit_at(now - 5, "past".to_string());
                            context.emit_at(now + 100, "future".to_string());
                            context.set_timer(now + 50);
                        }
                        StateInput::Timer(_) => context.emit("timer".to_string()),
                        StateInput::Expired => context.emit("expired".to_string()),
                    },
                );
                streams
                    .output
                    .inspect_time(move |time, event| {
                        sent.borrow_mut()
                            .push((*time, event.time, event.data.clone()))
                    })
                    .probe_with(&probe);
                streams.state
            });
            let keys = |handle: &StateHandle<u32, u64>| {
                handle.with_state(|states| {
                    let mut keys: Vec<(u32, Option<u64>, Vec<u64>, u64)> = states
                        .iter()
                        .map(|held| {
                            let timers = held.timers.to_vec();
                            (*held.key, held.state.copied(), timers, held.last_touch)
                        })
                        .collect();
                    keys.sort();
                    keys
                })
            };
            let mut advance = |input: &mut InputHandle<u64, Builder>, to: u64| {
                input.advance_to(to);
                for _ in 0..10 {
                    worker.step();
                }
            };
            input.advance_to(10);
            input.send(Event::new(10, (1, 5)));
            input.send(Event::new(10, (1, 2)));
            advance(&mut input, 11);
            assert_eq!(keys(&handle), vec![(1, Some(7), vec![60], 10)]);
            // At the stamp for an earlier event time; at its own for a later one.
            assert_eq!(
                *seen.borrow(),
                vec![
                    (10, 5, "past".to_string()),
                    (110, 110, "future".to_string())
                ]
            );
            advance(&mut input, 61);
            assert_eq!(keys(&handle), vec![(1, Some(7), vec![], 60)]);
            assert_eq!(seen.borrow()[2], (60, 60, "timer".to_string()));
            // The timer touched the state at 60: it expires once the frontier passes 1_060.
            advance(&mut input, 1_060);
            assert_eq!(keys(&handle).len(), 1);
            advance(&mut input, 1_061);
            assert_eq!(keys(&handle), vec![]);
            assert_eq!(seen.borrow()[3], (1_060, 1_060, "expired".to_string()));
            drop(input);
            worker.step_while(|| !probe.done());
            assert_eq!(seen.borrow().len(), 4);
        });
    }
}
