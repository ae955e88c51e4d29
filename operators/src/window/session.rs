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

use rustc_hash::FxHashMap;
use timely::dataflow::operators::Capability;
use timely::dataflow::StreamVec;
use timely::ExchangeData;

use super::assign::Sessions;
use super::{close_time, emit_late, keyed_window_operator, WindowResult, WindowStreams};
use crate::aggregate::Aggregator;
use crate::event::Event;

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
    ) -> WindowStreams<'scope, K, D, A::Output>;

    /// Sessions that stay open for records stamped up to `lateness` ms past their end.
    fn session_window_core<A: Aggregator<D>>(
        self,
        gap: u64,
        lateness: u64,
        aggregator: A,
    ) -> WindowStreams<'scope, K, D, A::Output>;
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
        keys: Vec::new(),
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
    ) -> WindowStreams<'scope, K, D, A::Output> {
        self.session_window_core(gap, 0, aggregator)
    }

    fn session_window_core<A: Aggregator<D>>(
        self,
        gap: u64,
        lateness: u64,
        aggregator: A,
    ) -> WindowStreams<'scope, K, D, A::Output> {
        assert!(gap > 0, "session gap must be positive");
        type Stash<K, D> = BTreeMap<u64, (Capability<u64>, Vec<Vec<Event<(K, D)>>>)>;
        let mut stash: Stash<K, D> = BTreeMap::new();
        let mut sessions: FxHashMap<K, Sessions<A::Acc>> = FxHashMap::default();
        let mut timers: BTreeMap<u64, Timer<K>> = BTreeMap::new();
        let mut rearm: Vec<u64> = Vec::new();

        keyed_window_operator(
            self,
            "SessionWindow",
            move |input, frontier, results, late| {
                let port = results.output_index();
                input.for_each_time(|capability, containers| {
                    let stamp = *capability.time();
                    let is_late = |event: &Event<(K, D)>| {
                        stamp >= close_time(event.time.saturating_add(gap), lateness)
                    };
                    let mut on_time = Vec::new();
                    for container in containers {
                        if container.iter().any(is_late) {
                            let mut kept = Vec::with_capacity(container.len());
                            for event in container.drain(..) {
                                if is_late(&event) {
                                    let window_end = event.time.saturating_add(gap);
                                    emit_late(late, &capability, event, window_end);
                                } else {
                                    kept.push(event);
                                }
                            }
                            on_time.push(kept);
                        } else {
                            on_time.push(std::mem::take(container));
                        }
                    }
                    stash
                        .entry(stamp)
                        .or_insert_with(|| (capability.retain(port), Vec::new()))
                        .1
                        .extend(on_time);
                });

                // Apply stashed records and close sessions in stamp order, up to the frontier. A
                // session ending at `end` closes after every record stamped `end + lateness` or less.
                let frontier_min = frontier.frontier().first().copied();
                let passed = |time: u64| frontier_min.is_none_or(|f| time < f);
                loop {
                    let next_batch = stash
                        .first_key_value()
                        .map(|(t, _)| *t)
                        .filter(|&t| passed(t));
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
                        let mut output = results.session(&timer.capability);
                        for key in timer.keys {
                            let Some(open) = sessions.get_mut(&key) else {
                                continue;
                            };
                            open.fire(
                                end,
                                |new_end| rearm.push(new_end),
                                |session| {
                                    let value = aggregator.finish(&session.acc);
                                    let result = WindowResult {
                                        key: key.clone(),
                                        start: session.start,
                                        end: session.end,
                                        value,
                                    };
                                    output.give(Event::new(session.end - 1, result));
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
                        let (_, (capability, batches)) = stash.pop_first().expect("a batch is due");
                        for event in batches.into_iter().flatten() {
                            let (key, data) = event.data;
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
            },
        )
    }
}
