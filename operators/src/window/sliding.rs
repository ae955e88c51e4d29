//! Sliding (hopping) windows: `[k * slide, k * slide + size)`, each record in `size / slide` of
//! them, updated incrementally.
//!
//! A record does not go into each of its windows. It goes, once, into a *contribution*: the
//! records of one key that enter the sequence of windows at the same window end and leave it
//! after the same window end (the records of one pane, `gcd(size, slide)` wide, unless some
//! arrived late for their earliest windows, which makes them enter later). When a window
//! closes, the contributions entering at its end are merged into each key's state and those
//! that have left are dropped. For an invertible aggregate ([`Aggregator::invertible`]: count,
//! sum, average) each key keeps a running accumulator, merged with what enters and retracted by
//! what leaves: O(1) per key per slide, however many slides a window spans. Otherwise each
//! window's result is merged from the key's live contributions.

use std::collections::BTreeMap;
use std::hash::Hash;

use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};
use timely::dataflow::operators::Capability;
use timely::dataflow::StreamVec;
use timely::ExchangeData;

use super::aligned::AlignedWindows;
use super::arrival::{arrival_windows, ArrivalState};
use super::assign::Grid;
use super::{
    close_time, emit_late, hold_earliest, EventOutput, LateRecord, StampCaps, UpdateKind,
    WindowResult, WindowRow, WindowStreams,
};
use crate::aggregate::Aggregator;
use crate::event::Event;
use crate::snapshot::key_group;
use crate::stateful::StateConfig;

/// Groups keyed events into sliding windows and aggregates each key's records per window.
pub trait SlidingWindow<'scope, K, D> {
    /// Sliding windows of `size` ms every `slide` ms, with no allowed lateness.
    ///
    /// # Examples
    /// ```
    /// use timely::dataflow::operators::{Capture, capture::Extract, ToStream};
    /// use timely::dataflow::operators::vec::Map;
    /// use tideflow_operators::{aggregate::Sum, window::SlidingWindow, Event};
    ///
    /// let results = timely::example(|scope| {
    ///     vec![(1_000u64, 5i64), (6_000, 7)]
    ///         .to_stream(scope)
    ///         .container::<Vec<_>>()
    ///         .map(|(t, v): (u64, i64)| Event::new(t, ((), v)))
    ///         .sliding_window(10_000, 5_000, Sum::of(|v: &i64| *v))
    ///         .results
    ///         .capture()
    /// });
    /// let mut rows: Vec<(u64, u64, i64)> = results.extract().into_iter()
    ///     .flat_map(|(_, rows)| rows)
    ///     .map(|e| (e.data.start, e.data.end, e.data.value))
    ///     .collect();
    /// rows.sort();
    /// assert_eq!(rows, vec![(0, 10_000, 12), (5_000, 15_000, 7)]);
    /// ```
    fn sliding_window<A: Aggregator<D>>(
        self,
        size: u64,
        slide: u64,
        aggregator: A,
    ) -> WindowStreams<'scope, K, D, WindowResult<K, A::Output>>;

    /// Sliding windows that stay open for records stamped up to `lateness` ms past their end.
    fn sliding_window_core<A: Aggregator<D>>(
        self,
        size: u64,
        slide: u64,
        lateness: u64,
        aggregator: A,
    ) -> WindowStreams<'scope, K, D, WindowResult<K, A::Output>>;

    /// Sliding windows in the output mode of the row type `R`: [`WindowResult`] (append, on
    /// per-key contributions) or [`WindowUpdate`](super::WindowUpdate) (update: early rows as
    /// the frontier advances, then the final one; each record is added to each of its windows,
    /// so that every open window's value is at hand), with the operator's snapshot port and
    /// gauge in `config`.
    fn sliding_window_rows<A: Aggregator<D>, R: WindowRow<K, A::Output>>(
        self,
        size: u64,
        slide: u64,
        lateness: u64,
        aggregator: A,
        config: StateConfig,
    ) -> WindowStreams<'scope, K, D, R>;
}

impl<'scope, K, D> SlidingWindow<'scope, K, D> for StreamVec<'scope, u64, Event<(K, D)>>
where
    K: ExchangeData + Hash + Eq + Clone,
    D: ExchangeData,
{
    fn sliding_window<A: Aggregator<D>>(
        self,
        size: u64,
        slide: u64,
        aggregator: A,
    ) -> WindowStreams<'scope, K, D, WindowResult<K, A::Output>> {
        self.sliding_window_core(size, slide, 0, aggregator)
    }

    fn sliding_window_core<A: Aggregator<D>>(
        self,
        size: u64,
        slide: u64,
        lateness: u64,
        aggregator: A,
    ) -> WindowStreams<'scope, K, D, WindowResult<K, A::Output>> {
        self.sliding_window_rows(size, slide, lateness, aggregator, StateConfig::none())
    }

    fn sliding_window_rows<A: Aggregator<D>, R: WindowRow<K, A::Output>>(
        self,
        size: u64,
        slide: u64,
        lateness: u64,
        aggregator: A,
        config: StateConfig,
    ) -> WindowStreams<'scope, K, D, R> {
        assert!(
            slide > 0 && slide <= size,
            "sliding windows need 0 < slide <= size"
        );
        let grid = Grid { size, slide };
        let state = if R::UPDATES {
            ArrivalState::Aligned(AlignedWindows::new(size, lateness))
        } else {
            ArrivalState::Contributions(SlidingState::new(grid, lateness))
        };
        arrival_windows(
            self,
            "SlidingWindow",
            (grid, lateness),
            aggregator,
            config,
            state,
        )
    }
}

/// Saved sliding-window state, as read back.
pub(super) type OwnedSliding<K, Acc> = SavedSliding<K, Acc, Vec<(u64, Acc)>>;

/// A saved piece of sliding-window state, with the worker-wide positions it needs.
#[derive(Serialize, Deserialize)]
pub(super) enum SavedSliding<K, Acc, Parts> {
    /// Records of `key` entering at window end `entry`, leaving after `exit`; `at` is the
    /// entering window's result capability.
    Entering {
        entry: u64,
        at: u64,
        key: K,
        exit: u64,
        acc: Acc,
    },
    /// A key's live contributions; `last_closed` and `held` are its worker's last closed
    /// window and its capability for the next window's results.
    Active {
        key: K,
        running: Option<Acc>,
        parts: Parts,
        last_closed: Option<u64>,
        held: Option<u64>,
    },
}

/// Contributions entering at one window end, with the capability for that window's results.
struct Entering<K, Acc> {
    capability: Capability<u64>,
    /// Per key and exit end (the last window end the records belong to).
    parts: FxHashMap<(K, u64), Acc>,
}

/// One key's live contributions, sorted by exit end, and their running total when the
/// aggregate is invertible.
struct Active<Acc> {
    running: Option<Acc>,
    parts: Vec<(u64, Acc)>,
}

pub(crate) struct SlidingState<K, Acc> {
    grid: Grid,
    lateness: u64,
    entering: BTreeMap<u64, Entering<K, Acc>>,
    active: FxHashMap<K, Active<Acc>>,
    /// While keys are active, a capability for the next window's results.
    held: Option<Capability<u64>>,
    last_closed: Option<u64>,
}

impl<K: Hash + Eq + Clone + 'static, Acc: Clone + 'static> SlidingState<K, Acc> {
    /// No windows yet, on `grid`, open for records stamped up to `lateness` ms past their end.
    pub(super) fn new(grid: Grid, lateness: u64) -> Self {
        SlidingState {
            grid,
            lateness,
            entering: BTreeMap::new(),
            active: FxHashMap::default(),
            held: None,
            last_closed: None,
        }
    }

    /// Applies the records of one stamp: each joins its contribution, or goes to the late
    /// output.
    pub(super) fn apply<D: 'static, A: Aggregator<D, Acc = Acc>>(
        &mut self,
        capability: &StampCaps<'_>,
        port: usize,
        events: impl Iterator<Item = Event<(K, D)>>,
        aggregator: &A,
        late: &mut EventOutput<'_, LateRecord<K, D>>,
    ) {
        let stamp = capability.time();
        for event in events {
            let exit = self.grid.last_end(event.time);
            let entry = self.grid.first_open_end(event.time, stamp, self.lateness);
            if entry > exit {
                emit_late(late, capability, event, exit);
                continue;
            }
            let (key, data) = event.data;
            let acc = self.contribution(entry, key, exit, capability, port, || aggregator.init());
            aggregator.add(acc, &data);
        }
    }

    /// The state as snapshot entries, each with its key group.
    #[allow(clippy::type_complexity)]
    pub(super) fn entries(
        &self,
    ) -> impl Iterator<Item = (u64, SavedSliding<&K, &Acc, &Vec<(u64, Acc)>>)> + '_ {
        let entering = self.entering.iter().flat_map(|(&entry, entering)| {
            let at = *entering.capability.time();
            entering.parts.iter().map(move |((key, exit), acc)| {
                let saved = SavedSliding::Entering {
                    entry,
                    at,
                    key,
                    exit: *exit,
                    acc,
                };
                (key_group(key), saved)
            })
        });
        let held = self.held.as_ref().map(|held| *held.time());
        let active = self.active.iter().map(move |(key, active)| {
            let saved = SavedSliding::Active {
                key,
                running: active.running.as_ref(),
                parts: &active.parts,
                last_closed: self.last_closed,
                held,
            };
            (key_group(key), saved)
        });
        entering.chain(active)
    }

    /// Restores saved entries, minting capabilities from `initial`.
    pub(super) fn restore(&mut self, saved: Vec<OwnedSliding<K, Acc>>, initial: &Capability<u64>) {
        for entry in saved {
            match entry {
                SavedSliding::Entering {
                    entry,
                    at,
                    key,
                    exit,
                    acc,
                } => {
                    let entering = self.entering.entry(entry).or_insert_with(|| Entering {
                        capability: initial.delayed(&at),
                        parts: FxHashMap::default(),
                    });
                    if *entering.capability.time() > at {
                        entering.capability = initial.delayed(&at);
                    }
                    entering.parts.insert((key, exit), acc);
                }
                SavedSliding::Active {
                    key,
                    running,
                    parts,
                    last_closed,
                    held,
                } => {
                    self.active.insert(key, Active { running, parts });
                    self.last_closed = self.last_closed.max(last_closed);
                    if let Some(held) = held {
                        if self.held.as_ref().is_none_or(|h| *h.time() > held) {
                            self.held = Some(initial.delayed(&held));
                        }
                    }
                }
            }
        }
    }

    /// The rows held, for the gauge: contributions waiting to enter (a few windows' worth) and
    /// live keys.
    pub(super) fn rows(&self) -> u64 {
        let entering: usize = self.entering.values().map(|e| e.parts.len()).sum();
        (entering + self.active.len()) as u64
    }

    /// The accumulator of the records of `key` entering at `entry` and leaving after `exit`.
    fn contribution(
        &mut self,
        entry: u64,
        key: K,
        exit: u64,
        capability: &StampCaps<'_>,
        port: usize,
        init: impl FnOnce() -> Acc,
    ) -> &mut Acc {
        let at = (entry - 1).max(capability.time());
        let entering = self.entering.entry(entry).or_insert_with(|| Entering {
            capability: capability.result_at(at, port),
            parts: FxHashMap::default(),
        });
        hold_earliest(&mut entering.capability, capability, at, port);
        entering.parts.entry((key, exit)).or_insert_with(init)
    }

    /// Closes, in order, every window whose close time has `passed`.
    pub(super) fn close_passed<D, A: Aggregator<D, Acc = Acc>, R: WindowRow<K, A::Output>>(
        &mut self,
        passed: impl Fn(u64) -> bool,
        results: &mut EventOutput<'_, R>,
        aggregator: &A,
    ) {
        loop {
            let next_active = self
                .last_closed
                .filter(|_| !self.active.is_empty())
                .map(|end| end + self.grid.slide);
            let next_entering = self.entering.first_key_value().map(|(end, _)| *end);
            let Some(end) = next_active.into_iter().chain(next_entering).min() else {
                break;
            };
            if !passed(close_time(end, self.lateness)) {
                break;
            }
            self.close(end, results, aggregator);
        }
    }

    /// Closes the window ending at `end`: admits what enters, drops what has left, and emits
    /// one result per key with records in the window.
    fn close<D, A: Aggregator<D, Acc = Acc>, R: WindowRow<K, A::Output>>(
        &mut self,
        end: u64,
        results: &mut EventOutput<'_, R>,
        aggregator: &A,
    ) {
        let invertible = aggregator.invertible();
        let entering = self.entering.remove(&end);
        let capability = match (&self.held, &entering) {
            (Some(held), _) => held.delayed(&(end - 1).max(*held.time())),
            (None, Some(entering)) => entering.capability.clone(),
            (None, None) => return,
        };
        for ((key, exit), acc) in entering.into_iter().flat_map(|entering| entering.parts) {
            let active = self.active.entry(key).or_insert_with(|| Active {
                running: None,
                parts: Vec::new(),
            });
            if invertible {
                match active.running.as_mut() {
                    Some(running) => aggregator.merge(running, acc.clone()),
                    None => active.running = Some(acc.clone()),
                }
            }
            match active.parts.binary_search_by_key(&exit, |(exit, _)| *exit) {
                Ok(index) => aggregator.merge(&mut active.parts[index].1, acc),
                Err(index) => active.parts.insert(index, (exit, acc)),
            }
        }
        let start = end - self.grid.size;
        let mut output = results.session_with_builder(&capability);
        self.active.retain(|key, active| {
            let expired = active.parts.partition_point(|(exit, _)| *exit < end);
            for (_, acc) in active.parts.drain(..expired) {
                if let Some(running) = active.running.as_mut() {
                    aggregator.retract(running, &acc);
                }
            }
            if active.parts.is_empty() {
                return false;
            }
            let value = match &active.running {
                Some(running) => aggregator.finish(running),
                None => {
                    let mut window = aggregator.init();
                    for (_, acc) in &active.parts {
                        aggregator.merge(&mut window, acc.clone());
                    }
                    aggregator.finish(&window)
                }
            };
            let result = WindowResult {
                key: key.clone(),
                start,
                end,
                value,
            };
            output.give(Event::new(end - 1, R::row(result, UpdateKind::Final)));
            true
        });
        drop(output);
        self.last_closed = Some(end);
        self.held = if self.active.is_empty() {
            None
        } else {
            let next = (end + self.grid.slide - 1).max(*capability.time());
            Some(capability.delayed(&next))
        };
    }
}
