//! Running aggregates per key, without windows (Spark's `groupBy(key).agg(..)` on a stream,
//! Flink's group aggregate): a changelog of each key's result as the watermark advances.
//!
//! Records are applied in stamp order: each batch waits in a stash until the frontier passes
//! its stamp. Then, for each key whose result the records of that stamp changed, the operator
//! emits at that stamp (as event time too) a retraction of the row it emitted before (if any)
//! and an insertion of the new one. The rows up to any time `t` therefore fold to exactly the
//! aggregate of the records stamped at or below `t`, whatever the batching or worker count: a
//! changelog that is right at every time, as a differential collection is. The price is one
//! change per key per distinct stamp (at most one pair per record). State is one accumulator
//! per key: the result last emitted for a key is always its accumulator's result, so the
//! retraction is computed when the key's first record of a stamp arrives, not kept.

use std::cell::RefCell;
use std::hash::Hash;
use std::marker::PhantomData;
use std::rc::Rc;

use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::StreamVec;
use timely::ExchangeData;

use crate::aggregate::Aggregator;
use crate::container::GrowingBuilder;
use crate::event::Event;
use crate::snapshot::key_group;
use crate::state::StateRows;
use crate::stateful::{EventStash, Harness, StampStash, StateConfig};

/// Whether a changelog row adds a key's new result or takes back its old one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Change {
    /// The key's previous result no longer holds.
    Retract,
    /// The key's result from now on.
    Insert,
}

/// One row of a running aggregate's changelog.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct KeyedChange<K, O> {
    /// The key.
    pub key: K,
    /// The key's result (the old one for a retraction).
    pub value: O,
    /// Retraction or insertion.
    pub change: Change,
}

/// Aggregates each key's records for ever: see the [module documentation](self).
pub trait RunningAggregate<'scope, K, D>: Sized {
    /// The changelog of `aggregator` per key. `state` is told how many keys are held.
    ///
    /// # Examples
    /// ```
    /// use timely::dataflow::operators::{Capture, capture::Extract, ToStream};
    /// use timely::dataflow::operators::vec::Map;
    /// use tideflow_operators::{aggregate::Count, Event};
    /// use tideflow_operators::keyed::running::{Change, RunningAggregate};
    /// use tideflow_operators::state::StateRows;
    ///
    /// let captured = timely::example(|scope| {
    ///     vec![(1u64, "a"), (2, "b"), (3, "a")]
    ///         .to_stream(scope)
    ///         .container::<Vec<_>>()
    ///         .map(|(t, k): (u64, &str)| Event::new(t, (k.to_string(), ())))
    ///         .running_aggregate(Count, StateRows::default())
    ///         .capture()
    /// });
    /// // All three records arrive at once: one insertion per key.
    /// let mut rows: Vec<(String, u64, Change)> = captured.extract().into_iter()
    ///     .flat_map(|(_, rows)| rows)
    ///     .map(|e| (e.data.key, e.data.value, e.data.change))
    ///     .collect();
    /// rows.sort();
    /// assert_eq!(rows, vec![("a".into(), 2, Change::Insert), ("b".into(), 1, Change::Insert)]);
    /// ```
    fn running_aggregate<A>(
        self,
        aggregator: A,
        state: StateRows,
    ) -> StreamVec<'scope, u64, Event<KeyedChange<K, A::Output>>>
    where
        A: Aggregator<D>,
        A::Output: PartialEq,
    {
        self.running_aggregate_core(aggregator, StateConfig::gauged(state))
            .changes
    }

    /// Like [`running_aggregate`](Self::running_aggregate), with the operator's snapshot port
    /// and gauge in `config`, and a handle on its state on this worker.
    fn running_aggregate_core<A>(
        self,
        aggregator: A,
        config: StateConfig,
    ) -> RunningStreams<'scope, K, A::Acc, A::Output>
    where
        A: Aggregator<D>,
        A::Output: PartialEq;
}

/// The changelog of a running aggregate and a handle on its state.
pub struct RunningStreams<'scope, K, Acc, O> {
    /// The changelog.
    pub changes: StreamVec<'scope, u64, Event<KeyedChange<K, O>>>,
    /// This worker's keys and accumulators.
    pub state: RunningHandle<K, Acc, O>,
}

/// A handle on a running aggregate's state on one worker, for reading it between steps of the
/// worker (for example to snapshot it).
pub struct RunningHandle<K, Acc, O> {
    keys: Rc<RefCell<KeyTable<K, Acc>>>,
    output: PhantomData<O>,
}

impl<K, Acc, O> Clone for RunningHandle<K, Acc, O> {
    fn clone(&self) -> Self {
        RunningHandle {
            keys: Rc::clone(&self.keys),
            output: PhantomData,
        }
    }
}

impl<K: Hash + Eq, Acc, O> RunningHandle<K, Acc, O> {
    /// Calls `read` with every key held on this worker and its accumulator (whose result,
    /// `Aggregator::finish`, is the row last emitted for the key). Call it between steps of
    /// the worker: the operator borrows the state while it runs.
    pub fn with_state<R>(&self, read: impl FnOnce(&mut dyn Iterator<Item = (&K, &Acc)>) -> R) -> R {
        let keys = self.keys.borrow();
        let mut rows = keys.iter().map(|(key, slot)| (key, &slot.acc));
        read(&mut rows)
    }
}

/// One key's accumulator, and whether records of the stamp being applied changed it.
struct KeyState<Acc> {
    acc: Acc,
    dirty: bool,
}

/// The keys' states: each key's position in a dense vector of states. A hash table is paid
/// for about twice over (it doubles when 7/8 full), so it holds only the key and a 4-byte
/// position, as the aligned windows' tables do; a key held cost 444 bytes with its state in
/// the table and the emitted row beside it, 330 without the row.
struct KeyTable<K, Acc> {
    positions: FxHashMap<K, u32>,
    states: Vec<KeyState<Acc>>,
}

impl<K: Hash + Eq, Acc> KeyTable<K, Acc> {
    fn new() -> Self {
        KeyTable {
            positions: FxHashMap::default(),
            states: Vec::new(),
        }
    }

    fn len(&self) -> usize {
        self.states.len()
    }

    fn get_mut(&mut self, key: &K) -> Option<&mut KeyState<Acc>> {
        let at = *self.positions.get(key)?;
        Some(&mut self.states[at as usize])
    }

    /// Puts `state` for `key`, in place of any state it has.
    fn insert(&mut self, key: K, state: KeyState<Acc>) -> &mut KeyState<Acc> {
        let next = self.states.len();
        let at = *self.positions.entry(key).or_insert_with(|| {
            u32::try_from(next).expect("a running aggregate holds fewer than 2^32 keys per worker")
        }) as usize;
        if at == next {
            self.states.push(state);
        } else {
            self.states[at] = state;
        }
        &mut self.states[at]
    }

    fn iter(&self) -> impl Iterator<Item = (&K, &KeyState<Acc>)> + '_ {
        self.positions
            .iter()
            .map(|(key, &at)| (key, &self.states[at as usize]))
    }
}

impl<'scope, K, D> RunningAggregate<'scope, K, D> for StreamVec<'scope, u64, Event<(K, D)>>
where
    K: ExchangeData + Hash + Eq + Clone,
    D: ExchangeData,
{
    fn running_aggregate_core<A>(
        self,
        aggregator: A,
        config: StateConfig,
    ) -> RunningStreams<'scope, K, A::Acc, A::Output>
    where
        A: Aggregator<D>,
        A::Output: PartialEq,
    {
        let route: fn(&Event<(K, D)>) -> u64 = |event| key_group(&event.data.0);
        let mut stash: EventStash<(K, D)> = StampStash::default();
        let handle = RunningHandle {
            keys: Rc::new(RefCell::new(KeyTable::new())),
            output: PhantomData,
        };
        let shared = Rc::clone(&handle.keys);
        // The keys the records of a stamp changed, each with its result before them (none
        // for a new key): the row to retract.
        let mut dirty: Vec<(K, Option<A::Output>)> = Vec::new();
        let mut harness = Harness::new(config);
        let changes = self
            .unary_frontier::<GrowingBuilder<Event<KeyedChange<K, A::Output>>>, _, _, _>(
                Exchange::new(route),
                "RunningAggregate",
                move |initial, _info| {
                    drop(initial);
                    // Snapshots keep the result emitted beside each accumulator (it is the
                    // accumulator's result), as they did when the operator held it.
                    if let Some(saved) = harness.restore::<(K, A::Acc, Option<A::Output>)>() {
                        let mut keys = shared.borrow_mut();
                        for (key, acc, _emitted) in saved {
                            keys.insert(key, KeyState { acc, dirty: false });
                        }
                    }
                    move |(input, frontier), output| {
                        let mut keys = shared.borrow_mut();
                        input.for_each_time(|capability, containers| {
                            stash.stash(&capability, 0, containers);
                        });
                        // Up to a snapshot's epoch first (its part is saved there), then the frontier.
                        for step in harness.steps(frontier.frontier().first().copied()) {
                            while let Some((stamp, capability, batches)) = stash.pop_passed(&step) {
                                for event in batches.into_iter().flatten() {
                                    let (key, data) = event.data;
                                    let slot = match keys.get_mut(&key) {
                                        Some(slot) => {
                                            if !slot.dirty {
                                                slot.dirty = true;
                                                let before = aggregator.finish(&slot.acc);
                                                dirty.push((key, Some(before)));
                                            }
                                            slot
                                        }
                                        None => {
                                            dirty.push((key.clone(), None));
                                            keys.insert(
                                                key,
                                                KeyState {
                                                    acc: aggregator.init(),
                                                    dirty: true,
                                                },
                                            )
                                        }
                                    };
                                    aggregator.add(&mut slot.acc, &data);
                                }
                                // The changes of the records stamped `stamp`, at `stamp`.
                                let mut session = output.session_with_builder(&capability);
                                for (key, before) in dirty.drain(..) {
                                    let slot = keys.get_mut(&key).expect("a dirty key has state");
                                    slot.dirty = false;
                                    let value = aggregator.finish(&slot.acc);
                                    if before.as_ref() == Some(&value) {
                                        continue;
                                    }
                                    if let Some(old) = before {
                                        let retract = KeyedChange {
                                            key: key.clone(),
                                            value: old,
                                            change: Change::Retract,
                                        };
                                        session.give(Event::new(stamp, retract));
                                    }
                                    let insert = KeyedChange {
                                        key,
                                        value,
                                        change: Change::Insert,
                                    };
                                    session.give(Event::new(stamp, insert));
                                }
                            }
                            if let Some(epoch) = step.save {
                                let entries = keys.iter().map(|(key, slot)| {
                                    let emitted = Some(aggregator.finish(&slot.acc));
                                    (key_group(key), (key, &slot.acc, emitted))
                                });
                                harness.save(epoch, entries);
                            }
                        }
                        harness.settle(keys.len() as u64, frontier.is_empty());
                    }
                },
            );
        RunningStreams {
            changes,
            state: handle,
        }
    }
}

#[cfg(test)]
mod tests {
    use timely::dataflow::operators::vec::Map;
    use timely::dataflow::operators::ToStream;

    use super::*;
    use crate::aggregate::{Count, Sum};

    #[test]
    fn the_handle_lists_each_key_with_its_accumulator_and_result() {
        let held = timely::execute_directly(|worker| {
            let handle = worker.dataflow::<u64, _, _>(|scope| {
                vec![(1u64, 'a', 5i64), (2, 'b', 1), (3, 'a', 2)]
                    .to_stream(scope)
                    .container::<Vec<_>>()
                    .map(|(t, k, v)| Event::new(t, (k, v)))
                    .running_aggregate_core((Count, Sum::of(|v: &i64| *v)), StateConfig::none())
                    .state
            });
            while worker.step() {}
            handle.with_state(|rows| {
                let mut rows: Vec<(char, (u64, i64))> = rows
                    .map(|(key, acc)| (*key, (Count, Sum::of(|v: &i64| *v)).finish(acc)))
                    .collect();
                rows.sort();
                rows
            })
        });
        assert_eq!(held, vec![('a', (2, 7)), ('b', (1, 1))]);
    }
}
