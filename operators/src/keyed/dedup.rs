//! Deduplication within a time bound, Spark's `dropDuplicatesWithinWatermark` made
//! deterministic.
//!
//! The key of a keyed event is its id. A record is kept unless a kept record with the same key
//! is still in state; a record kept at event time `t0` stays in state until the frontier passes
//! `t0 + bound`, then the id may be kept again. Records are applied in stamp order, as sessions
//! are: each incoming batch is stashed until the frontier passes its stamp, and before the
//! records stamped `s` are applied every entry whose expiry is below `s` is removed. Of several
//! new records of one key with the same stamp, the one with the smallest event time, then the
//! smallest record (`D: Ord`), is kept. The kept set therefore depends only on the records and
//! their stamps, never on batching or worker count.
//!
//! A record stamped past its own `t + bound` would find state that has already expired for it
//! (a duplicate kept at about the same event time would be gone), so it is late: it leaves on
//! the late output, like a record too late for every window, and is not kept.
//!
//! State is one entry per live id (its expiry, 24 bytes beside the key) and an expiry index
//! (`BTreeMap<expiry, Vec<key>>`). A new id's key is moved into the map and cloned for the
//! output and the index; a duplicate costs one hash lookup and no allocation. The stash holds
//! about one watermark delay of records. When the input ends, every id is forgotten.

use std::cell::RefCell;
use std::collections::hash_map::Entry as MapEntry;
use std::collections::BTreeMap;
use std::hash::Hash;
use std::rc::Rc;

use rustc_hash::FxHashMap;
use timely::dataflow::StreamVec;
use timely::ExchangeData;

use crate::event::Event;
use crate::snapshot::key_group;
use crate::stateful::{EventStash, Harness, StampStash, StateConfig};
use crate::window::{emit_late, keyed_window_operator, LateRecord, StampCaps, WindowStreams};

/// The outputs of [`DedupWithin::dedup_within`].
pub struct DedupStreams<'scope, K, D> {
    /// The kept records, each at its stamp and with its own event time.
    pub kept: StreamVec<'scope, u64, Event<(K, D)>>,
    /// Records stamped past their own `t + bound`, at the stamp they arrived at; a late
    /// record's [`LateRecord::window_end`] is `t + bound + 1`, the watermark at which its own
    /// state would have expired.
    pub late: StreamVec<'scope, u64, Event<LateRecord<K, D>>>,
    /// The operator's state on this worker, to read between steps.
    pub state: DedupHandle<K>,
}

/// Drops records whose key was kept within a time bound.
pub trait DedupWithin<'scope, K, D> {
    /// Keeps a record unless a record with the same key, kept at event time `t0`, is still in
    /// state: until the frontier passes `t0 + bound` ms. Records are applied in stamp order; of
    /// several new records of a key with the same stamp, the one with the smallest event time,
    /// then the smallest record, is kept. A record stamped past its own `t + bound` is late and
    /// leaves on [`DedupStreams::late`].
    ///
    /// # Examples
    /// ```
    /// use timely::dataflow::operators::{Capture, capture::Extract, ToStream};
    /// use timely::dataflow::operators::vec::{Delay, Map};
    /// use tideflow_operators::{keyed::dedup::DedupWithin, Event};
    ///
    /// let kept = timely::example(|scope| {
    ///     vec![(1_000u64, "a"), (1_500, "a"), (1_200, "b"), (3_000, "a")]
    ///         .to_stream(scope)
    ///         .container::<Vec<_>>()
    ///         .map(|(t, id): (u64, &str)| Event::new(t, (id.to_string(), t)))
    ///         .delay(|event, _| event.time) // stamp each record at its event time
    ///         .dedup_within(1_000)
    ///         .kept
    ///         .capture()
    /// });
    /// let mut kept: Vec<(String, u64)> = kept.extract().into_iter()
    ///     .flat_map(|(_, events)| events)
    ///     .map(|event| event.data)
    ///     .collect();
    /// kept.sort();
    /// // "a" at 1_500 is within 1 s of the "a" kept at 1_000; at 3_000 it is not.
    /// assert_eq!(kept, vec![("a".into(), 1_000), ("a".into(), 3_000), ("b".into(), 1_200)]);
    /// ```
    fn dedup_within(self, bound: u64) -> DedupStreams<'scope, K, D>;

    /// Like [`dedup_within`](Self::dedup_within), with the operator's snapshot port and gauge
    /// (set to the number of live ids after each activation) in `config`.
    fn dedup_within_core(self, bound: u64, config: StateConfig) -> DedupStreams<'scope, K, D>;
}

impl<'scope, K, D> DedupWithin<'scope, K, D> for StreamVec<'scope, u64, Event<(K, D)>>
where
    K: ExchangeData + Hash + Eq + Clone,
    D: ExchangeData + Ord,
{
    fn dedup_within(self, bound: u64) -> DedupStreams<'scope, K, D> {
        self.dedup_within_core(bound, StateConfig::none())
    }

    fn dedup_within_core(self, bound: u64, config: StateConfig) -> DedupStreams<'scope, K, D> {
        let mut stash: EventStash<(K, D)> = StampStash::default();
        let state = Rc::new(RefCell::new(DedupState::new(bound)));
        let handle = DedupHandle {
            state: Rc::clone(&state),
        };
        let mut kept = Vec::new();
        let mut harness = Harness::new(config);

        let restore_state = Rc::clone(&state);
        let WindowStreams { results, late } =
            keyed_window_operator(self, "DedupWithin", move |_| {
                if let Some(saved) = harness.restore::<(K, u64)>() {
                    restore_state.borrow_mut().restore(saved);
                }
                move |input, frontier, results, late| {
                    let port = results.output_index();
                    input.for_each_time(|capability, containers| {
                        let stamp = *capability.time();
                        let is_late =
                            |event: &Event<(K, D)>| stamp > event.time.saturating_add(bound);
                        let batches = stash.at(&capability, port);
                        for container in containers {
                            if container.iter().any(is_late) {
                                let mut on_time = Vec::with_capacity(container.len());
                                for event in container.drain(..) {
                                    if is_late(&event) {
                                        let expired_at =
                                            event.time.saturating_add(bound).saturating_add(1);
                                        emit_late(
                                            late,
                                            &StampCaps::Input(&capability),
                                            event,
                                            expired_at,
                                        );
                                    } else {
                                        on_time.push(event);
                                    }
                                }
                                batches.push(on_time);
                            } else {
                                batches.push(std::mem::take(container));
                            }
                        }
                    });

                    // Apply stashed stamps in order up to the frontier, each after expiring the
                    // entries below it; then expire what the frontier has passed.
                    let mut state = state.borrow_mut();
                    let frontier_min = frontier.frontier().first().copied();
                    let mut most = state.rows();
                    // Up to a snapshot's epoch first (its part is saved there), then the frontier.
                    for step in harness.steps(frontier_min) {
                        while let Some((stamp, capability, batches)) = stash.pop_passed(&step) {
                            state.expire_before(stamp);
                            state.apply(batches.into_iter().flatten(), &mut kept);
                            most = most.max(state.rows());
                            if !kept.is_empty() {
                                results
                                    .session_with_builder(&capability)
                                    .give_container(&mut kept);
                                kept.clear();
                            }
                        }
                        if let Some(epoch) = step.save {
                            let entries = state
                                .iter()
                                .map(|(key, expiry)| (key_group(key), (key, expiry)));
                            harness.save(epoch, entries);
                        }
                    }
                    match frontier_min {
                        Some(frontier) => state.expire_before(frontier),
                        None => state.expire_all(),
                    }
                    // The peak includes the rows held between stamps within this activation.
                    if most > state.rows() {
                        harness.peak(most as u64);
                    }
                    harness.settle(state.rows() as u64, frontier.is_empty());
                }
            });
        DedupStreams {
            kept: results,
            late,
            state: handle,
        }
    }
}

/// A live id's entry.
#[derive(Clone, Copy, Debug)]
struct Live {
    /// The frontier must pass this time for the entry to expire: `t0 + bound`.
    expiry: u64,
    /// The [`DedupState::apply`] call that kept the id, and the kept record's index in that
    /// call's output, so that records of the same stamp compete by the tie rule.
    applied_in: u64,
    slot: u32,
}

/// The ids a dedup operator holds on one worker, each with its expiry.
#[derive(Debug)]
pub struct DedupState<K> {
    bound: u64,
    live: FxHashMap<K, Live>,
    /// Expiry time to the ids expiring then; each live id is here exactly once.
    expiries: BTreeMap<u64, Vec<K>>,
    /// How many times [`DedupState::apply`] has run.
    applied: u64,
}

impl<K: Hash + Eq + Clone> DedupState<K> {
    fn new(bound: u64) -> Self {
        DedupState {
            bound,
            live: FxHashMap::default(),
            expiries: BTreeMap::new(),
            applied: 0,
        }
    }

    /// The time bound, in ms.
    pub fn bound(&self) -> u64 {
        self.bound
    }

    /// The number of live ids.
    pub fn rows(&self) -> usize {
        self.live.len()
    }

    /// Every live id with its expiry (`t0 + bound`: the id is dropped once the frontier passes
    /// it), in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&K, u64)> + '_ {
        self.live.iter().map(|(key, entry)| (key, entry.expiry))
    }

    /// Removes every id whose expiry is below `time`: the frontier has passed it.
    fn expire_before(&mut self, time: u64) {
        while let Some(entry) = self.expiries.first_entry() {
            if *entry.key() >= time {
                break;
            }
            for key in entry.remove() {
                self.live.remove(&key);
            }
        }
    }

    /// Restores ids saved by a snapshot, with their expiries.
    fn restore(&mut self, saved: Vec<(K, u64)>) {
        for (key, expiry) in saved {
            self.expiries.entry(expiry).or_default().push(key.clone());
            self.live.insert(
                key,
                Live {
                    expiry,
                    applied_in: 0,
                    slot: 0,
                },
            );
        }
    }

    /// Removes every id: the input has ended.
    fn expire_all(&mut self) {
        self.live.clear();
        self.expiries.clear();
    }

    /// Applies the records of one stamp, every expiry below it already removed, and appends
    /// the kept ones to `kept` (empty on entry). A record is kept if its key is not live; of
    /// several such records of one key, the smallest `(event time, record)`.
    fn apply<D: Ord>(
        &mut self,
        events: impl IntoIterator<Item = Event<(K, D)>>,
        kept: &mut Vec<Event<(K, D)>>,
    ) {
        debug_assert!(kept.is_empty(), "apply appends to an empty list");
        self.applied += 1;
        let applied = self.applied;
        let bound = self.bound;
        for Event { time, data } in events {
            let (key, data) = data;
            match self.live.entry(key) {
                MapEntry::Occupied(mut occupied) => {
                    let live = occupied.get_mut();
                    if live.applied_in == applied {
                        // A tie: another new record of this key with the same stamp.
                        let current = &mut kept[live.slot as usize];
                        if (time, &data) < (current.time, &current.data.1) {
                            live.expiry = time.saturating_add(bound);
                            current.time = time;
                            current.data.1 = data;
                        }
                    }
                }
                MapEntry::Vacant(vacant) => {
                    let slot = u32::try_from(kept.len()).expect("under 2^32 records per stamp");
                    let key = vacant.key().clone();
                    vacant.insert(Live {
                        expiry: time.saturating_add(bound),
                        applied_in: applied,
                        slot,
                    });
                    kept.push(Event::new(time, (key, data)));
                }
            }
        }
        for event in kept.iter() {
            let expiry = event.time.saturating_add(bound);
            self.expiries
                .entry(expiry)
                .or_default()
                .push(event.data.0.clone());
        }
    }
}

/// A handle on a dedup operator's state on one worker, for reading it between steps of the
/// worker (for example to snapshot it).
#[derive(Clone, Debug)]
pub struct DedupHandle<K> {
    state: Rc<RefCell<DedupState<K>>>,
}

impl<K> DedupHandle<K> {
    /// Calls `read` with the state. Call it between steps of the worker: the operator borrows
    /// the state while it runs.
    pub fn with_state<R>(&self, read: impl FnOnce(&DedupState<K>) -> R) -> R {
        read(&self.state.borrow())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(time: u64, key: u32, data: u32) -> Event<(u32, u32)> {
        Event::new(time, (key, data))
    }

    fn applied(
        state: &mut DedupState<u32>,
        events: Vec<Event<(u32, u32)>>,
    ) -> Vec<(u64, u32, u32)> {
        let mut kept = Vec::new();
        state.apply(events, &mut kept);
        kept.into_iter()
            .map(|e| (e.time, e.data.0, e.data.1))
            .collect()
    }

    #[test]
    fn ties_at_one_stamp_keep_the_smallest_time_then_record() {
        let mut state = DedupState::new(100);
        let kept = applied(
            &mut state,
            vec![
                event(50, 1, 9),
                event(40, 1, 7),
                event(40, 1, 3),
                event(60, 2, 1),
                event(40, 1, 5),
            ],
        );
        assert_eq!(kept, vec![(40, 1, 3), (60, 2, 1)]);
        let mut entries: Vec<(u32, u64)> = state.iter().map(|(k, e)| (*k, e)).collect();
        entries.sort();
        assert_eq!(entries, vec![(1, 140), (2, 160)]);
    }

    #[test]
    fn a_live_id_drops_later_stamps_until_its_expiry_passes() {
        let mut state = DedupState::new(100);
        assert_eq!(applied(&mut state, vec![event(10, 1, 0)]).len(), 1);
        state.expire_before(110);
        assert!(applied(&mut state, vec![event(5, 1, 1)]).is_empty());
        state.expire_before(111);
        assert_eq!(state.rows(), 0);
        assert_eq!(
            applied(&mut state, vec![event(111, 1, 2)]),
            vec![(111, 1, 2)]
        );
        assert_eq!(state.expiries.len(), 1);
        state.expire_all();
        assert_eq!((state.rows(), state.expiries.len()), (0, 0));
    }

    #[test]
    fn state_expires_with_the_frontier_and_reads_between_steps() {
        use timely::container::CapacityContainerBuilder;
        use timely::dataflow::operators::{Inspect, Probe};
        use timely::dataflow::{InputHandle, ProbeHandle};

        timely::execute_directly(|worker| {
            type Builder = CapacityContainerBuilder<Vec<Event<(u32, u32)>>>;
            let mut input = InputHandle::<u64, Builder>::new();
            let probe = ProbeHandle::new();
            let late = Rc::new(RefCell::new(Vec::new()));
            let late_seen = Rc::clone(&late);
            let handle = worker.dataflow(|scope| {
                let streams = input.to_stream(scope).dedup_within(100);
                streams.kept.probe_with(&probe);
                streams.late.inspect(move |event| {
                    late_seen.borrow_mut().push((
                        event.time,
                        event.data.watermark,
                        event.data.window_end,
                    ))
                });
                streams.state
            });
            let entries = |handle: &DedupHandle<u32>| {
                let mut entries: Vec<(u32, u64)> =
                    handle.with_state(|state| state.iter().map(|(k, e)| (*k, e)).collect());
                entries.sort();
                entries
            };
            let mut advance = |input: &mut InputHandle<u64, Builder>, to: u64| {
                input.advance_to(to);
                for _ in 0..10 {
                    worker.step();
                }
            };
            input.send(event(10, 1, 0));
            input.send(event(20, 2, 0));
            advance(&mut input, 21);
            assert_eq!(entries(&handle), vec![(1, 110), (2, 120)]);
            advance(&mut input, 110);
            assert_eq!(entries(&handle), vec![(1, 110), (2, 120)]);
            advance(&mut input, 111);
            assert_eq!(entries(&handle), vec![(2, 120)]);
            // Stamped 111, past 10 + 100: late, its state would have expired at 111.
            input.send(event(10, 3, 0));
            advance(&mut input, 200);
            assert_eq!(entries(&handle), Vec::new());
            assert_eq!(*late.borrow(), vec![(10, 111, 111)]);
            drop(input);
            worker.step_while(|| !probe.done());
        });
    }
}
