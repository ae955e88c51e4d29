//! Stream-stream interval join (Flink's interval join, made deterministic): pairs each left
//! record `a` with every right record `b` of the same key whose event time lies in
//! `[a.time - lower, a.time + upper]`, inner or left outer.
//!
//! **Order.** Both inputs are exchanged by [`key_group`] of the key. Each incoming batch waits in
//! a stash until the frontiers of both inputs pass its stamp; stamps are then applied in order,
//! the left records of a stamp before its right records, and state expires in time order
//! between stamps (as sessions do). What joins therefore depends only on the records and their
//! stamps (the input and its partitioning), never on arrival order, batching or worker count.
//!
//! **State.** A record stamped `s` is held from `s` until the frontier passes its *expiry*
//! `max(s, a.time + upper)` for a left record, `max(s, b.time + lower)` for a right one: the
//! last stamp at which an on-time partner can arrive. Then it is removed, so state stays flat
//! on an endless stream. Each key keeps its rows per side in a deque sorted by expiry, and each
//! side keeps a time-ordered index of one timer per key (at the key's earliest expiry). The
//! [`StateRows`] gauge counts the records held: waiting in the stash, and in state.
//!
//! **Rule.** A pair joins iff the keys are equal, the time condition holds, and the record
//! applied later finds the other still held: both have the same stamp, or the later stamp is at
//! most the earlier record's expiry. Records on time (stamped at their event time) therefore
//! join every partner; a record behind its watermark joins the partners still held.
//!
//! **Late records.** A record stamped `s` with `s > time + lower + upper` is *late*: every
//! row it could match has an expiry of at most `time + lower + upper`, so it expired before
//! `s`. A late record is not applied: it joins nothing (not even records of its own stamp) and
//! is dropped and counted (`on_late`); in the left join a late left record is instead emitted
//! at once with no partner.
//!
//! **Output.** A pair leaves at the later of the two stamps, with event time the later of the
//! two event times (as in Flink). In the left join, a left record that matched nothing leaves
//! with no partner when it expires, at its expiry, with its own event time.
//!
//! [`key_group`]: crate::snapshot::key_group

use std::hash::Hash;

use serde::{Deserialize, Serialize};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::Capability;
use timely::dataflow::StreamVec;
use timely::ExchangeData;

use crate::event::Event;
use crate::snapshot::key_group;
use crate::state::StateRows;
use crate::stateful::{Harness, StampStash, StateConfig};

mod state;

pub use state::{HeldRecord, HeldRow, JoinState, Timed};

/// A row of an interval join: a left record and its partner. The inner join's partner is a
/// `B`; the left join's is an `Option<B>`, `None` for a left record that matched nothing.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Joined<K, A, B> {
    /// The key both records share.
    pub key: K,
    /// The left record.
    pub left: A,
    /// The right record.
    pub right: B,
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for super::InnerJoin {}
    impl Sealed for super::LeftJoin {}
}

/// Which rows an interval join emits: [`InnerJoin`] or [`LeftJoin`].
pub trait JoinKind<K, A, B>: sealed::Sealed + 'static {
    /// The output row.
    type Row: 'static;
    /// Whether left records that matched nothing are emitted.
    const OUTER: bool;
    /// The row of a matching pair.
    fn matched(key: K, left: A, right: B) -> Self::Row;
    /// The row of a left record that matched nothing, if this kind emits one.
    fn unmatched(key: K, left: A) -> Option<Self::Row>;
}

/// The inner join: matching pairs only, as [`Joined<K, A, B>`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct InnerJoin;

/// The left outer join: matching pairs as `Joined<K, A, Option<B>>` with `Some`, and each left
/// record that matched nothing once, with `None`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LeftJoin;

impl<K: 'static, A: 'static, B: 'static> JoinKind<K, A, B> for InnerJoin {
    type Row = Joined<K, A, B>;
    const OUTER: bool = false;
    #[inline]
    fn matched(key: K, left: A, right: B) -> Self::Row {
        Joined { key, left, right }
    }
    #[inline]
    fn unmatched(_key: K, _left: A) -> Option<Self::Row> {
        None
    }
}

impl<K: 'static, A: 'static, B: 'static> JoinKind<K, A, B> for LeftJoin {
    type Row = Joined<K, A, Option<B>>;
    const OUTER: bool = true;
    #[inline]
    fn matched(key: K, left: A, right: B) -> Self::Row {
        Joined {
            key,
            left,
            right: Some(right),
        }
    }
    #[inline]
    fn unmatched(key: K, left: A) -> Option<Self::Row> {
        Some(Joined {
            key,
            left,
            right: None,
        })
    }
}

/// Joins two keyed streams on an event-time interval: see the [module documentation](self).
pub trait IntervalJoin<'scope, K, A> {
    /// The inner join: every `(a, b)` with equal keys and `b.time` in
    /// `[a.time - lower, a.time + upper]` (ms), applied by the rule of the module
    /// documentation. `state` is told how many records the join holds; late records are dropped.
    ///
    /// # Examples
    /// ```
    /// use timely::dataflow::operators::{Capture, capture::Extract, ToStream};
    /// use timely::dataflow::operators::vec::Map;
    /// use tideflow_operators::keyed::interval_join::IntervalJoin;
    /// use tideflow_operators::state::StateRows;
    /// use tideflow_operators::Event;
    ///
    /// let captured = timely::example(|scope| {
    ///     let clicks = vec![(1_000u64, "ad-1")].to_stream(scope).container::<Vec<_>>()
    ///         .map(|(t, ad): (u64, &str)| Event::new(t, (ad.to_string(), ())));
    ///     let views = vec![(400u64, "ad-1"), (1_200, "ad-1"), (5_000, "ad-1")]
    ///         .to_stream(scope).container::<Vec<_>>()
    ///         .map(|(t, ad): (u64, &str)| Event::new(t, (ad.to_string(), t)));
    ///     // Views from 1 s before to 500 ms after each click.
    ///     clicks.interval_join(views, 1_000, 500, StateRows::default()).capture()
    /// });
    /// let mut rows: Vec<(u64, u64)> = captured.extract().into_iter()
    ///     .flat_map(|(_, rows)| rows)
    ///     .map(|e| (e.time, e.data.right))
    ///     .collect();
    /// rows.sort();
    /// // Each row carries the later of the two event times.
    /// assert_eq!(rows, vec![(1_000, 400), (1_200, 1_200)]);
    /// ```
    fn interval_join<B: ExchangeData + Clone>(
        self,
        other: StreamVec<'scope, u64, Event<(K, B)>>,
        lower: u64,
        upper: u64,
        state: StateRows,
    ) -> StreamVec<'scope, u64, Event<Joined<K, A, B>>>;

    /// The left outer join: the inner join's pairs with `Some(b)`, and each left record that
    /// matched nothing once with `None`, when it expires (or at once, if it is late).
    ///
    /// # Examples
    /// ```
    /// use timely::dataflow::operators::{Capture, capture::Extract, ToStream};
    /// use timely::dataflow::operators::vec::Map;
    /// use tideflow_operators::keyed::interval_join::IntervalJoin;
    /// use tideflow_operators::state::StateRows;
    /// use tideflow_operators::Event;
    ///
    /// let captured = timely::example(|scope| {
    ///     // (time, order id, cents)
    ///     let orders = vec![(1_000u64, 1u32, 500i64), (2_000, 2, 900)]
    ///         .to_stream(scope).container::<Vec<_>>()
    ///         .map(|(t, order, cents)| Event::new(t, (order, cents)));
    ///     let payments = vec![(1_300u64, 1u32, 500i64)].to_stream(scope).container::<Vec<_>>()
    ///         .map(|(t, order, cents)| Event::new(t, (order, cents)));
    ///     // A payment within 0..=500 ms after its order.
    ///     orders.interval_join_left(payments, 0, 500, StateRows::default()).capture()
    /// });
    /// let mut rows: Vec<(u64, u32, Option<i64>)> = captured.extract().into_iter()
    ///     .flat_map(|(_, rows)| rows)
    ///     .map(|e| (e.time, e.data.key, e.data.right))
    ///     .collect();
    /// rows.sort();
    /// // Order 2 was never paid: it leaves with `None` at its own time once 2_500 has passed.
    /// assert_eq!(rows, vec![(1_300, 1, Some(500)), (2_000, 2, None)]);
    /// ```
    fn interval_join_left<B: ExchangeData + Clone>(
        self,
        other: StreamVec<'scope, u64, Event<(K, B)>>,
        lower: u64,
        upper: u64,
        state: StateRows,
    ) -> StreamVec<'scope, u64, Event<Joined<K, A, Option<B>>>>;

    /// The join of kind `kind` ([`InnerJoin`] or [`LeftJoin`]), with the operator's snapshot
    /// port and gauge in `config`; `on_late` is called with the number of late records dropped
    /// (at most once per activation). The left join emits its late left records instead of
    /// dropping them, so they are not counted.
    fn interval_join_core<B: ExchangeData + Clone, J: JoinKind<K, A, B>>(
        self,
        other: StreamVec<'scope, u64, Event<(K, B)>>,
        lower: u64,
        upper: u64,
        kind: J,
        config: StateConfig,
        on_late: impl FnMut(u64) + 'static,
    ) -> StreamVec<'scope, u64, Event<J::Row>>;
}

/// The batches of both inputs stamped at one time.
struct Pending<K, A, B> {
    left: Vec<Vec<Event<(K, A)>>>,
    right: Vec<Vec<Event<(K, B)>>>,
    /// Records in `left` and `right`.
    records: u64,
}

impl<K, A, B> Default for Pending<K, A, B> {
    fn default() -> Self {
        Pending {
            left: Vec::new(),
            right: Vec::new(),
            records: 0,
        }
    }
}

/// Moves `container`'s records that are not late into a new batch, and hands the late ones
/// to `late`. Allocates only if some record is late.
fn split_late<D>(
    container: &mut Vec<Event<D>>,
    is_late: impl Fn(u64) -> bool,
    mut late: impl FnMut(Event<D>),
) -> Vec<Event<D>> {
    if !container.iter().any(|event| is_late(event.time)) {
        return std::mem::take(container);
    }
    let mut kept = Vec::with_capacity(container.len());
    for event in container.drain(..) {
        if is_late(event.time) {
            late(event);
        } else {
            kept.push(event);
        }
    }
    kept
}

impl<'scope, K, A> IntervalJoin<'scope, K, A> for StreamVec<'scope, u64, Event<(K, A)>>
where
    K: ExchangeData + Hash + Eq + Clone,
    A: ExchangeData + Clone,
{
    fn interval_join<B: ExchangeData + Clone>(
        self,
        other: StreamVec<'scope, u64, Event<(K, B)>>,
        lower: u64,
        upper: u64,
        state: StateRows,
    ) -> StreamVec<'scope, u64, Event<Joined<K, A, B>>> {
        let config = StateConfig::gauged(state);
        self.interval_join_core(other, lower, upper, InnerJoin, config, |_| {})
    }

    fn interval_join_left<B: ExchangeData + Clone>(
        self,
        other: StreamVec<'scope, u64, Event<(K, B)>>,
        lower: u64,
        upper: u64,
        state: StateRows,
    ) -> StreamVec<'scope, u64, Event<Joined<K, A, Option<B>>>> {
        let config = StateConfig::gauged(state);
        self.interval_join_core(other, lower, upper, LeftJoin, config, |_| {})
    }

    fn interval_join_core<B: ExchangeData + Clone, J: JoinKind<K, A, B>>(
        self,
        other: StreamVec<'scope, u64, Event<(K, B)>>,
        lower: u64,
        upper: u64,
        _kind: J,
        config: StateConfig,
        mut on_late: impl FnMut(u64) + 'static,
    ) -> StreamVec<'scope, u64, Event<J::Row>> {
        let left_route: fn(&Event<(K, A)>) -> u64 = |event| key_group(&event.data.0);
        let right_route: fn(&Event<(K, B)>) -> u64 = |event| key_group(&event.data.0);
        let mut stash: StampStash<Pending<K, A, B>> = StampStash::default();
        let mut harness = Harness::new(config);
        let mut state: JoinState<K, A, B> = JoinState::new(lower, upper);
        // Records in the stash, for the gauge.
        let mut stashed: u64 = 0;
        // Late left records of one batch (reused).
        let mut late_left: Vec<Event<(K, A)>> = Vec::new();
        // Left join: a capability at or below every pending left expiry, for unmatched rows.
        let mut outer: Option<Capability<u64>> = None;
        self.binary_frontier::<_, CapacityContainerBuilder<Vec<Event<J::Row>>>, _, _, _, _>(
            other,
            Exchange::new(left_route),
            Exchange::new(right_route),
            "IntervalJoin",
            move |initial, _info| {
                // Output capabilities are minted from input capabilities, or from the initial
                // one for restored left rows (the left join's unmatched rows).
                if let Some(saved) = harness.restore::<SavedRow<K, A, B>>() {
                    for (key, record, time, expires, matched) in saved {
                        state.restore(key, record, time, expires, matched);
                    }
                    if J::OUTER {
                        outer = state.next_left_expiry().map(|at| initial.delayed(&at));
                    }
                }
                drop(initial);
                move |(left, left_frontier), (right, right_frontier), output| {
                    let port = output.output_index();
                    let mut late = 0;
                    left.for_each(|capability, container| {
                        let stamp = *capability.time();
                        let is_late = |time| state.is_late(stamp, time);
                        let kept = split_late(container, is_late, |event| late_left.push(event));
                        if !J::OUTER {
                            late += late_left.len() as u64;
                            late_left.clear();
                        } else if !late_left.is_empty() {
                            let mut session = output.session(&capability);
                            for event in late_left.drain(..) {
                                let (key, record) = event.data;
                                if let Some(row) = J::unmatched(key, record) {
                                    session.give(Event::new(event.time, row));
                                }
                            }
                        }
                        if !kept.is_empty() {
                            stashed += kept.len() as u64;
                            let pending = stash.at(&capability, port);
                            pending.records += kept.len() as u64;
                            pending.left.push(kept);
                        }
                    });
                    right.for_each(|capability, container| {
                        let stamp = *capability.time();
                        let is_late = |time| state.is_late(stamp, time);
                        let kept = split_late(container, is_late, |_| late += 1);
                        if !kept.is_empty() {
                            stashed += kept.len() as u64;
                            let pending = stash.at(&capability, port);
                            pending.records += kept.len() as u64;
                            pending.right.push(kept);
                        }
                    });
                    if late > 0 {
                        on_late(late);
                    }

                    // Apply stashed stamps and expire rows in time order, up to the frontier
                    // of both inputs: a row expiring at `e` is there for the records stamped
                    // `e` and gone for later ones.
                    let frontier = match (
                        left_frontier.frontier().first().copied(),
                        right_frontier.frontier().first().copied(),
                    ) {
                        (Some(l), Some(r)) => Some(l.min(r)),
                        (l, r) => l.or(r),
                    };
                    // Up to a snapshot's epoch first (its part is saved there), then the frontier.
                    for step in harness.steps(frontier) {
                        loop {
                            let next_stamp = stash.first_stamp().filter(|&s| step.passed(s));
                            // Expire every row due before the next stamp (or the frontier).
                            let limit = next_stamp.or(step.limit);
                            while let Some(at) = state
                                .next_expiry()
                                .filter(|&at| limit.is_none_or(|limit| at < limit))
                            {
                                if J::OUTER && state.next_left_expiry() == Some(at) {
                                    let capability = outer
                                        .as_ref()
                                        .expect("pending left rows hold the outer capability")
                                        .delayed(&at);
                                    let mut session = output.session(&capability);
                                    state.expire(at, |key, time, record| {
                                        if let Some(row) = J::unmatched(key.clone(), record) {
                                            session.give(Event::new(time, row));
                                        }
                                    });
                                } else {
                                    state.expire(at, |_, _, _| {});
                                }
                            }
                            let Some(stamp) = next_stamp else {
                                break;
                            };
                            let (_, capability, pending) =
                                stash.pop_first().expect("a stamp is due");
                            stashed -= pending.records;
                            if J::OUTER
                                && !pending.left.is_empty()
                                && outer.as_ref().is_none_or(|held| *held.time() > stamp)
                            {
                                outer = Some(capability.clone());
                            }
                            let mut session = output.session(&capability);
                            for event in pending.left.into_iter().flatten() {
                                let (time, (key, record)) = (event.time, event.data);
                                state.apply_left(stamp, key, time, record, |key, left, right| {
                                    let row = J::matched(
                                        key.clone(),
                                        left.data.clone(),
                                        right.data.clone(),
                                    );
                                    session.give(Event::new(time.max(right.time), row));
                                });
                            }
                            for event in pending.right.into_iter().flatten() {
                                let (time, (key, record)) = (event.time, event.data);
                                state.apply_right(stamp, key, time, record, |key, left, right| {
                                    let row =
                                        J::matched(key.clone(), left.data.clone(), right.clone());
                                    session.give(Event::new(time.max(left.time), row));
                                });
                            }
                        }
                        if let Some(epoch) = step.save {
                            let rows = state.rows().map(|row| {
                                let record = match row.record {
                                    HeldRecord::Left(left) => Ok(left),
                                    HeldRecord::Right(right) => Err(right),
                                };
                                let saved = (row.key, record, row.time, row.expires, row.matched);
                                (key_group(row.key), saved)
                            });
                            harness.save(epoch, rows);
                        }
                    }
                    if J::OUTER {
                        match state.next_left_expiry() {
                            Some(at) => {
                                if let Some(held) = outer.as_mut() {
                                    if *held.time() < at {
                                        held.downgrade(&at);
                                    }
                                }
                            }
                            None => outer = None,
                        }
                    }
                    let ended = left_frontier.is_empty() && right_frontier.is_empty();
                    harness.settle(state.len() + stashed, ended);
                }
            },
        )
    }
}

/// A saved join row: key, the record (`Ok` left, `Err` right), event time, expiry, matched.
type SavedRow<K, A, B> = (K, Result<A, B>, u64, u64, bool);
