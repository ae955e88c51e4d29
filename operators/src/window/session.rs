//! Session windows: per key, runs of events separated by less than a gap.
//!
//! A session is `[first_event, last_event + gap)`; two sessions of a key merge when an event
//! makes them touch (`next.start <= current.end`, as in Spark's `session_window`). Because a
//! merge can join sessions across any span, this operator applies records in stamp order: it
//! stashes each incoming batch until the frontier passes its stamp, and closes a session once
//! the frontier passes `end + lateness` (an event at exactly `end` still extends it). The result
//! therefore depends only on the records and their stamps, never on arrival order or worker
//! count. The stash holds about one watermark delay of records.

use std::collections::BTreeMap;
use std::hash::Hash;

use rustc_hash::{FxHashMap, FxHashSet};
use timely::dataflow::operators::Capability;
use timely::dataflow::StreamVec;
use timely::ExchangeData;

use super::arrival::restore_check;
use super::assign::{Session, Sessions};
use super::{
    close_time, emit_late, keyed_window_operator, EventOutput, StampCaps, UpdateKind, WindowResult,
    WindowRow, WindowStreams,
};
use crate::aggregate::Aggregator;
use crate::event::Event;
use crate::snapshot::key_group;
use crate::stateful::{EventStash, Harness, StampStash, StateConfig};

/// Groups keyed events into session windows and aggregates each session.
pub trait SessionWindow<'scope, K, D> {
    /// Sessions with inactivity `gap` ms and no allowed lateness.
    ///
    /// # Examples
    /// ```
    /// use timely::dataflow::operators::{Capture, capture::Extract, ToStream};
    /// use timely::dataflow::operators::vec::Map;
    /// use tideflow_operators::{aggregate::Count, window::SessionWindow, Event};
    ///
    /// let results = timely::example(|scope| {
    ///     vec![0u64, 4_000, 9_000, 20_000]
    ///         .to_stream(scope)
    ///         .container::<Vec<_>>()
    ///         .map(|t: u64| Event::new(t, ("user".to_string(), ())))
    ///         .session_window(5_000, Count)
    ///         .results
    ///         .capture()
    /// });
    /// let mut rows: Vec<(u64, u64, u64)> = results.extract().into_iter()
    ///     .flat_map(|(_, rows)| rows)
    ///     .map(|e| (e.data.start, e.data.end, e.data.value))
    ///     .collect();
    /// rows.sort();
    /// // 9_000 touches [0, 9_000): one session of three events; 20_000 is alone.
    /// assert_eq!(rows, vec![(0, 14_000, 3), (20_000, 25_000, 1)]);
    /// ```
    fn session_window<A: Aggregator<D>>(
        self,
        gap: u64,
        aggregator: A,
    ) -> WindowStreams<'scope, K, D, WindowResult<K, A::Output>>;

    /// Sessions that stay open for records stamped up to `lateness` ms past their end.
    fn session_window_core<A: Aggregator<D>>(
        self,
        gap: u64,
        lateness: u64,
        aggregator: A,
    ) -> WindowStreams<'scope, K, D, WindowResult<K, A::Output>>;

    /// Sessions in the output mode of the row type `R`: [`WindowResult`] (append) or
    /// [`WindowUpdate`](super::WindowUpdate) (update: after each step of the frontier, an early
    /// row for every open session of a key that received records, a retraction for every
    /// session row of it whose bounds no longer exist, and a final row when a session closes),
    /// with the operator's snapshot port and gauge (the keys with open sessions) in `config`.
    fn session_window_rows<A: Aggregator<D>, R: WindowRow<K, A::Output>>(
        self,
        gap: u64,
        lateness: u64,
        aggregator: A,
        config: StateConfig,
    ) -> WindowStreams<'scope, K, D, R>;
}

/// Update mode: the keys whose sessions received records since their last early rows, and the
/// bounds and value of every early row of a still-open session, to retract it if the session
/// grows or merges.
struct Updates<K, O> {
    dirty: FxHashSet<K>,
    emitted: FxHashMap<K, Vec<(u64, u64, O)>>,
    /// While keys are dirty: a capability at the earliest stamp applied to them.
    early: Option<Capability<u64>>,
}

impl<K, O> Default for Updates<K, O> {
    fn default() -> Self {
        Updates {
            dirty: FxHashSet::default(),
            emitted: FxHashMap::default(),
            early: None,
        }
    }
}

impl<K: Hash + Eq + Clone + 'static, O: Clone + 'static> Updates<K, O> {
    /// A record stamped `capability.time()` was applied to `key`'s sessions.
    fn changed(&mut self, key: &K, capability: &Capability<u64>) {
        if !self.dirty.contains(key) {
            self.dirty.insert(key.clone());
        }
        if self
            .early
            .as_ref()
            .is_none_or(|early| early.time() > capability.time())
        {
            self.early = Some(capability.clone());
        }
    }

    /// The session `[start, end)` of `key` is closing: its early row needs no retraction (the
    /// final row replaces it), and `retract` is given every other early row of the key within
    /// its bounds (sessions that grew or merged into it), so that they are deleted before the
    /// final row arrives.
    fn closing(&mut self, key: &K, start: u64, end: u64, mut retract: impl FnMut(u64, u64, O)) {
        let Some(rows) = self.emitted.get_mut(key) else {
            return;
        };
        let mut index = 0;
        while index < rows.len() {
            let (s, e) = (rows[index].0, rows[index].1);
            if start <= s && e <= end {
                let (s, e, value) = rows.swap_remove(index);
                if (s, e) != (start, end) {
                    retract(s, e, value);
                }
            } else {
                index += 1;
            }
        }
        if rows.is_empty() {
            self.emitted.remove(key);
        }
    }

    /// After the records stamped below `frontier` were applied: for every dirty key, retracts
    /// its early rows whose bounds are no longer an open session's, and emits an early row for
    /// each of its open sessions, at event time `frontier - 1`.
    fn emit<Acc, R: WindowRow<K, O>>(
        &mut self,
        frontier: Option<u64>,
        sessions: &FxHashMap<K, Sessions<Acc>>,
        results: &mut EventOutput<'_, R>,
        mut finish: impl FnMut(&Acc) -> O,
    ) {
        let Some(early) = self.early.take() else {
            return;
        };
        // Every applied record is stamped below the frontier; at the end of input, anywhere.
        let at = frontier.map_or(*early.time(), |now| now - 1);
        let capability = early.delayed(&at);
        let mut output = results.session_with_builder(&capability);
        for key in self.dirty.drain() {
            let open = sessions.get(&key);
            let is_open = |start: u64, end: u64| {
                open.is_some_and(|open| open.iter().any(|s| (s.start, s.end) == (start, end)))
            };
            let mut rows = self.emitted.remove(&key).unwrap_or_default();
            rows.retain(|(start, end, value)| {
                let keep = is_open(*start, *end);
                if !keep {
                    let result = WindowResult {
                        key: key.clone(),
                        start: *start,
                        end: *end,
                        value: value.clone(),
                    };
                    output.give(Event::new(at, R::row(result, UpdateKind::Retract)));
                }
                keep
            });
            for session in open.into_iter().flat_map(Sessions::iter) {
                let value = finish(&session.acc);
                match rows
                    .iter_mut()
                    .find(|(s, e, _)| (*s, *e) == (session.start, session.end))
                {
                    Some(row) => row.2 = value.clone(),
                    None => rows.push((session.start, session.end, value.clone())),
                }
                let result = WindowResult {
                    key: key.clone(),
                    start: session.start,
                    end: session.end,
                    value,
                };
                output.give(Event::new(at, R::row(result, UpdateKind::Early)));
            }
            if !rows.is_empty() {
                self.emitted.insert(key, rows);
            }
        }
    }
}

/// Close timers: per session end, the capability for the results and the keys to look at.
struct Timer<K> {
    capability: Capability<u64>,
    keys: Vec<K>,
}

/// Registers a close timer for `key` at `end`, its result capability at `max(end - 1, from)`.
fn register<K>(timers: &mut BTreeMap<u64, Timer<K>>, end: u64, key: K, from: &Capability<u64>) {
    let at = (end - 1).max(*from.time());
    let timer = timers.entry(end).or_insert_with(|| Timer {
        capability: from.delayed(&at),
        // Most ends are one key's: room for one, not the four `Vec` starts with.
        keys: Vec::with_capacity(1),
    });
    if *timer.capability.time() > at {
        timer.capability = from.delayed(&at);
    }
    timer.keys.push(key);
}

impl<'scope, K, D> SessionWindow<'scope, K, D> for StreamVec<'scope, u64, Event<(K, D)>>
where
    K: ExchangeData + Hash + Eq + Clone,
    D: ExchangeData,
{
    fn session_window<A: Aggregator<D>>(
        self,
        gap: u64,
        aggregator: A,
    ) -> WindowStreams<'scope, K, D, WindowResult<K, A::Output>> {
        self.session_window_core(gap, 0, aggregator)
    }

    fn session_window_core<A: Aggregator<D>>(
        self,
        gap: u64,
        lateness: u64,
        aggregator: A,
    ) -> WindowStreams<'scope, K, D, WindowResult<K, A::Output>> {
        self.session_window_rows(gap, lateness, aggregator, StateConfig::none())
    }

    fn session_window_rows<A: Aggregator<D>, R: WindowRow<K, A::Output>>(
        self,
        gap: u64,
        lateness: u64,
        aggregator: A,
        config: StateConfig,
    ) -> WindowStreams<'scope, K, D, R> {
        assert!(gap > 0, "session gap must be positive");
        let peers = self.scope().peers();
        let mut harness = Harness::new(config);
        keyed_window_operator(self, "SessionWindow", move |initial| {
            let mut stash: EventStash<(K, D)> = StampStash::default();
            let mut sessions: FxHashMap<K, Sessions<A::Acc>> = FxHashMap::default();
            let mut timers: BTreeMap<u64, Timer<K>> = BTreeMap::new();
            let mut rearm: Vec<u64> = Vec::new();
            let mut updates = R::UPDATES.then(Updates::<K, A::Output>::default);
            restore_check(&harness, lateness, peers);
            let restored = harness.restore::<SavedSessions<K, A::Acc, A::Output>>();
            if let Some(saved) = restored {
                for (key, list, emitted) in saved {
                    for (session, capability) in &list {
                        let from = initial.delayed(capability);
                        register(&mut timers, session.timer, key.clone(), &from);
                    }
                    if let (Some(updates), Some(emitted)) = (updates.as_mut(), emitted) {
                        updates.emitted.insert(key.clone(), emitted);
                    }
                    let list = list.into_iter().map(|(session, _)| session).collect();
                    sessions.insert(key, Sessions::from_list(list));
                }
            }
            move |input, frontier, results, late| {
                let port = results.output_index();
                input.for_each_time(|capability, containers| {
                    let stamp = *capability.time();
                    let is_late = |event: &Event<(K, D)>| {
                        stamp >= close_time(event.time.saturating_add(gap), lateness)
                    };
                    let on_time = stash.at(&capability, port);
                    for container in containers {
                        if container.iter().any(is_late) {
                            let mut kept = Vec::with_capacity(container.len());
                            for event in container.drain(..) {
                                if is_late(&event) {
                                    let window_end = event.time.saturating_add(gap);
                                    emit_late(
                                        late,
                                        &StampCaps::Input(&capability),
                                        event,
                                        window_end,
                                    );
                                } else {
                                    kept.push(event);
                                }
                            }
                            on_time.push(kept);
                        } else {
                            on_time.push(std::mem::take(container));
                        }
                    }
                });

                // Apply stashed records and close sessions in stamp order, up to the frontier (and
                // first up to a snapshot's epoch, whose part is then saved). A session ending at
                // `end` closes after every record stamped `end + lateness` or less.
                let frontier_min = frontier.frontier().first().copied();
                for step in harness.steps(frontier_min) {
                    let passed = |time: u64| step.passed(time);
                    loop {
                        let next_batch = stash.first_stamp().filter(|&t| passed(t));
                        let next_close = timers
                            .first_key_value()
                            .map(|(end, _)| close_time(*end, lateness))
                            .filter(|&c| passed(c));
                        let close_first = match (next_batch, next_close) {
                            (None, None) => break,
                            (Some(stamp), Some(close)) => close < stamp,
                            (Some(_), None) => false,
                            (None, Some(_)) => true,
                        };
                        if close_first {
                            let (end, timer) = timers.pop_first().expect("a timer is due");
                            let mut output = results.session_with_builder(&timer.capability);
                            for key in timer.keys {
                                let Some(open) = sessions.get_mut(&key) else {
                                    continue;
                                };
                                open.fire(
                                    end,
                                    |new_end| rearm.push(new_end),
                                    |session| {
                                        if let Some(updates) = updates.as_mut() {
                                            let time = session.end - 1;
                                            let retract = |start, end, value| {
                                                let result = WindowResult {
                                                    key: key.clone(),
                                                    start,
                                                    end,
                                                    value,
                                                };
                                                let row = R::row(result, UpdateKind::Retract);
                                                output.give(Event::new(time, row));
                                            };
                                            updates.closing(
                                                &key,
                                                session.start,
                                                session.end,
                                                retract,
                                            );
                                        }
                                        let value = aggregator.finish(&session.acc);
                                        let result = WindowResult {
                                            key: key.clone(),
                                            start: session.start,
                                            end: session.end,
                                            value,
                                        };
                                        let row = R::row(result, UpdateKind::Final);
                                        output.give(Event::new(session.end - 1, row));
                                    },
                                );
                                for new_end in rearm.drain(..) {
                                    register(&mut timers, new_end, key.clone(), &timer.capability);
                                }
                                if open.is_empty() {
                                    sessions.remove(&key);
                                }
                            }
                        } else {
                            let (_, capability, batches) =
                                stash.pop_first().expect("a batch is due");
                            for event in batches.into_iter().flatten() {
                                let (key, data) = event.data;
                                if let Some(updates) = updates.as_mut() {
                                    updates.changed(&key, &capability);
                                }
                                let (start, end) = (event.time, event.time.saturating_add(gap));
                                let mut apply = |open: &mut Sessions<A::Acc>, key: &K| {
                                    let (session, new) = open.insert(
                                        start,
                                        end,
                                        || aggregator.init(),
                                        |acc, other| aggregator.merge(acc, other),
                                    );
                                    aggregator.add(&mut session.acc, &data);
                                    if new {
                                        register(&mut timers, end, key.clone(), &capability);
                                    }
                                };
                                match sessions.get_mut(&key) {
                                    Some(open) => apply(open, &key),
                                    None => {
                                        let mut open = Sessions::default();
                                        apply(&mut open, &key);
                                        sessions.insert(key, open);
                                    }
                                }
                            }
                        }
                    }
                    if let Some(epoch) = step.save {
                        let mut timer_caps: FxHashMap<u64, u64> = FxHashMap::default();
                        for (end, timer) in &timers {
                            timer_caps.insert(*end, *timer.capability.time());
                        }
                        let emitted = updates.as_ref().map(|u| &u.emitted);
                        let entries = sessions.iter().map(|(key, open)| {
                            let list: Vec<(&Session<A::Acc>, u64)> = open
                                .iter()
                                .map(|session| {
                                    let at = timer_caps.get(&session.timer).copied();
                                    (session, at.unwrap_or(session.timer - 1))
                                })
                                .collect();
                            let shown = emitted.and_then(|e| e.get(key));
                            (key_group(key), (key, list, shown))
                        });
                        harness.save(epoch, entries);
                    }
                }

                if let Some(updates) = updates.as_mut() {
                    updates.emit(frontier_min, &sessions, results, |acc| {
                        aggregator.finish(acc)
                    });
                }
                // The gauge counts the keys with open sessions.
                harness.settle(sessions.len() as u64, frontier.is_empty());
            }
        })
    }
}

/// One key's saved sessions: each with its close timer's result capability, and in update mode
/// the early rows shown for it (to retract them later).
type SavedSessions<K, Acc, O> = (K, Vec<(Session<Acc>, u64)>, Option<Vec<(u64, u64, O)>>);
