//! One worker's interval-join state, without a dataflow: the rows each side holds per key,
//! sorted by expiry, and one timer per key and side in a time-ordered index. The operator in
//! the parent module drives it; its rule is documented there.

use std::collections::{BTreeMap, VecDeque};
use std::hash::Hash;

use rustc_hash::FxHashMap;

use crate::event::Event;

/// A held row: the record, its event time and expiry, and (left rows) whether it matched.
struct Row<D> {
    expires: u64,
    time: u64,
    record: D,
    matched: bool,
}

/// One key's rows on one side, sorted by expiry, and the time of its live timer (the earliest
/// expiry), if it has rows.
struct SideRows<D> {
    rows: VecDeque<Row<D>>,
    timer: Option<u64>,
}

impl<D> Default for SideRows<D> {
    fn default() -> Self {
        SideRows {
            rows: VecDeque::new(),
            timer: None,
        }
    }
}

impl<D> SideRows<D> {
    /// Inserts `row` in expiry order; returns whether the key needs a new timer at its expiry.
    fn insert(&mut self, row: Row<D>) -> bool {
        let expires = row.expires;
        // Room for one row first, not `VecDeque`'s four: most keys hold one or two rows
        // (a held row cost 373 bytes with room for four, 3 of them empty).
        if self.rows.capacity() == 0 {
            self.rows.reserve_exact(1);
        }
        if self.rows.back().is_none_or(|last| last.expires <= expires) {
            self.rows.push_back(row);
        } else {
            let at = self.rows.partition_point(|held| held.expires <= expires);
            self.rows.insert(at, row);
        }
        let arm = self.timer.is_none_or(|timer| expires < timer);
        if arm {
            self.timer = Some(expires);
        }
        arm
    }

    /// The rows that can match a record at `time`: a partner's expiry lies in
    /// `[time, time + lower + upper]` (see [`JoinState::apply_left`]).
    fn candidates(&mut self, low: u64, high: u64) -> impl Iterator<Item = &mut Row<D>> {
        let start = self.rows.partition_point(|held| held.expires < low);
        self.rows
            .range_mut(start..)
            .take_while(move |held| held.expires <= high)
    }

    /// Fires the timer at `at`: removes the rows expiring at `at` (or earlier) and hands them to
    /// `expired`; returns the key's next timer, or `None` if the timer was stale (a later one
    /// replaced it) or the key has no rows left on this side.
    fn fire(&mut self, at: u64, mut expired: impl FnMut(Row<D>)) -> Option<u64> {
        if self.timer != Some(at) {
            return None;
        }
        while self.rows.front().is_some_and(|front| front.expires <= at) {
            expired(self.rows.pop_front().expect("a front row"));
        }
        self.timer = self.rows.front().map(|front| front.expires);
        self.timer
    }
}

/// Both sides' rows of one key.
struct KeyRows<A, B> {
    left: SideRows<A>,
    right: SideRows<B>,
}

impl<A, B> Default for KeyRows<A, B> {
    fn default() -> Self {
        KeyRows {
            left: SideRows::default(),
            right: SideRows::default(),
        }
    }
}

/// A timer index: per expiry time, the keys with a timer there (stale ones included).
type Timers<K> = BTreeMap<u64, Vec<K>>;

/// Emptied timer buckets kept for reuse, at most this many.
const SPARE_BUCKETS: usize = 16;

/// A row of join state as [`JoinState::rows`] enumerates it.
#[derive(Debug, PartialEq, Eq)]
pub struct HeldRow<'a, K, A, B> {
    /// The record's key.
    pub key: &'a K,
    /// The record, and its side.
    pub record: HeldRecord<'a, A, B>,
    /// The record's event time.
    pub time: u64,
    /// When the row goes: once the frontier passes this time.
    pub expires: u64,
    /// Whether the row has matched a partner (tracked for left rows).
    pub matched: bool,
}

/// A record held by the join, on its side.
#[derive(Debug, PartialEq, Eq)]
pub enum HeldRecord<'a, A, B> {
    /// A record of the left input.
    Left(&'a A),
    /// A record of the right input.
    Right(&'a B),
}

/// One worker's interval-join state: the rows each side holds per key, and the timers that
/// expire them in time order. The operator drives it; it is public so that its rows can be
/// enumerated ([`JoinState::rows`]) and its rule tested without a dataflow.
///
/// # Examples
/// ```
/// use tideflow_operators::keyed::interval_join::JoinState;
///
/// let mut state: JoinState<&str, u32, u32> = JoinState::new(100, 50);
/// state.apply_left(1_000, "k", 1_000, 1, |_, _, _| unreachable!("nothing to match yet"));
/// let mut pairs = Vec::new();
/// state.apply_right(1_040, "k", 1_040, 2, |_, left, right| pairs.push((*left.data, *right)));
/// assert_eq!(pairs, vec![(1, 2)]);
/// assert_eq!(state.len(), 2);
/// // The right row goes after 1_040 + 100, the left row after 1_000 + 50.
/// assert_eq!(state.next_expiry(), Some(1_050));
/// while let Some(at) = state.next_expiry() {
///     state.expire(at, |_, _, _| {});
/// }
/// assert!(state.is_empty());
/// ```
pub struct JoinState<K, A, B> {
    lower: u64,
    upper: u64,
    keys: FxHashMap<K, KeyRows<A, B>>,
    left_timers: Timers<K>,
    right_timers: Timers<K>,
    spare: Vec<Vec<K>>,
    len: u64,
}

/// A record offered to a `JoinState` callback: its event time and the record.
pub type Timed<'a, D> = Event<&'a D>;

impl<K: Hash + Eq + Clone, A, B> JoinState<K, A, B> {
    /// Empty state for the interval `[a.time - lower, a.time + upper]`.
    pub fn new(lower: u64, upper: u64) -> Self {
        JoinState {
            lower,
            upper,
            keys: FxHashMap::default(),
            left_timers: BTreeMap::new(),
            right_timers: BTreeMap::new(),
            spare: Vec::new(),
            len: 0,
        }
    }

    /// Whether a record at event time `time` stamped `stamp` is too late to join anything.
    #[inline]
    pub fn is_late(&self, stamp: u64, time: u64) -> bool {
        stamp > time.saturating_add(self.lower).saturating_add(self.upper)
    }

    /// The expiries a partner of a record at `time` may have. A left `a` and right `b` match
    /// iff `b.time + lower` lies in `[a.time, a.time + lower + upper]`, and iff `a.time +
    /// upper` lies in `[b.time, b.time + lower + upper]`; a held row's expiry is that, or its
    /// stamp, which is at most the current stamp, itself at most `time + lower + upper` for a
    /// record that is not late.
    #[inline]
    fn partner_expiries(&self, time: u64) -> (u64, u64) {
        (
            time,
            time.saturating_add(self.lower).saturating_add(self.upper),
        )
    }

    /// Applies a left record stamped `stamp` (not late; every stamp below it applied, the rows
    /// expiring below it expired): calls `matched(key, left, right)` for each held right row it
    /// matches, then holds it until `max(stamp, time + upper)`.
    pub fn apply_left(
        &mut self,
        stamp: u64,
        key: K,
        time: u64,
        record: A,
        mut matched: impl FnMut(&K, Timed<'_, A>, Timed<'_, B>),
    ) {
        debug_assert!(!self.is_late(stamp, time), "late records are not applied");
        let (low, high) = self.partner_expiries(time);
        let mut row = Row {
            expires: stamp.max(time.saturating_add(self.upper)),
            time,
            record,
            matched: false,
        };
        let expires = row.expires;
        match self.keys.get_mut(&key) {
            Some(rows) => {
                for right in rows.right.candidates(low, high) {
                    if within(self.lower, self.upper, time, right.time) {
                        row.matched = true;
                        matched(
                            &key,
                            Event::new(time, &row.record),
                            Event::new(right.time, &right.record),
                        );
                    }
                }
                if rows.left.insert(row) {
                    arm(&mut self.left_timers, &mut self.spare, expires, key);
                }
            }
            None => {
                let mut rows = KeyRows::default();
                rows.left.insert(row);
                self.keys.insert(key.clone(), rows);
                arm(&mut self.left_timers, &mut self.spare, expires, key);
            }
        }
        self.len += 1;
    }

    /// Applies a right record stamped `stamp`, after the left records of that stamp: calls
    /// `matched(key, left, right)` for each held left row it matches, then holds it until
    /// `max(stamp, time + lower)`.
    pub fn apply_right(
        &mut self,
        stamp: u64,
        key: K,
        time: u64,
        record: B,
        mut matched: impl FnMut(&K, Timed<'_, A>, &B),
    ) {
        debug_assert!(!self.is_late(stamp, time), "late records are not applied");
        let (low, high) = self.partner_expiries(time);
        let row = Row {
            expires: stamp.max(time.saturating_add(self.lower)),
            time,
            record,
            matched: false,
        };
        let expires = row.expires;
        match self.keys.get_mut(&key) {
            Some(rows) => {
                for left in rows.left.candidates(low, high) {
                    if within(self.lower, self.upper, left.time, time) {
                        left.matched = true;
                        matched(&key, Event::new(left.time, &left.record), &row.record);
                    }
                }
                if rows.right.insert(row) {
                    arm(&mut self.right_timers, &mut self.spare, expires, key);
                }
            }
            None => {
                let mut rows = KeyRows::default();
                rows.right.insert(row);
                self.keys.insert(key.clone(), rows);
                arm(&mut self.right_timers, &mut self.spare, expires, key);
            }
        }
        self.len += 1;
    }

    /// The earliest time at which rows may expire (a timer may be stale: then nothing does).
    pub fn next_expiry(&self) -> Option<u64> {
        let left = self.next_left_expiry();
        let right = self.right_timers.first_key_value().map(|(at, _)| *at);
        match (left, right) {
            (Some(l), Some(r)) => Some(l.min(r)),
            (l, r) => l.or(r),
        }
    }

    /// The earliest time at which left rows may expire.
    pub fn next_left_expiry(&self) -> Option<u64> {
        self.left_timers.first_key_value().map(|(at, _)| *at)
    }

    /// Fires the timers at `at`, which must be the earliest ([`next_expiry`](Self::next_expiry)):
    /// removes every row expiring at `at`, and calls `unmatched(key, time, record)` for each
    /// left row among them that never matched.
    pub fn expire(&mut self, at: u64, mut unmatched: impl FnMut(&K, u64, A)) {
        debug_assert!(
            self.next_expiry() == Some(at),
            "expire the earliest timer first"
        );
        if let Some(mut keys) = take_bucket(&mut self.left_timers, at) {
            for key in keys.drain(..) {
                let Some(rows) = self.keys.get_mut(&key) else {
                    continue;
                };
                let len = &mut self.len;
                let next = rows.left.fire(at, |row| {
                    *len -= 1;
                    if !row.matched {
                        unmatched(&key, row.time, row.record);
                    }
                });
                match next {
                    Some(next) => arm(&mut self.left_timers, &mut self.spare, next, key),
                    None => remove_if_empty(&mut self.keys, key),
                }
            }
            recycle(&mut self.spare, keys);
        }
        if let Some(mut keys) = take_bucket(&mut self.right_timers, at) {
            for key in keys.drain(..) {
                let Some(rows) = self.keys.get_mut(&key) else {
                    continue;
                };
                let len = &mut self.len;
                match rows.right.fire(at, |_| *len -= 1) {
                    Some(next) => arm(&mut self.right_timers, &mut self.spare, next, key),
                    None => remove_if_empty(&mut self.keys, key),
                }
            }
            recycle(&mut self.spare, keys);
        }
    }

    /// The rows held, both sides.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether no rows are held.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Holds a row saved by a snapshot again: a left row (`record` is `Ok`) or a right one.
    pub fn restore(
        &mut self,
        key: K,
        record: Result<A, B>,
        time: u64,
        expires: u64,
        matched: bool,
    ) {
        let rows = self.keys.entry(key.clone()).or_default();
        match record {
            Ok(record) => {
                let row = Row {
                    expires,
                    time,
                    record,
                    matched,
                };
                if rows.left.insert(row) {
                    arm(&mut self.left_timers, &mut self.spare, expires, key);
                }
            }
            Err(record) => {
                let row = Row {
                    expires,
                    time,
                    record,
                    matched,
                };
                if rows.right.insert(row) {
                    arm(&mut self.right_timers, &mut self.spare, expires, key);
                }
            }
        }
        self.len += 1;
    }

    /// Every row held, in no particular order: this worker's part of the join's state.
    pub fn rows(&self) -> impl Iterator<Item = HeldRow<'_, K, A, B>> + '_ {
        self.keys.iter().flat_map(|(key, rows)| {
            let left = rows.left.rows.iter().map(move |row| HeldRow {
                key,
                record: HeldRecord::Left(&row.record),
                time: row.time,
                expires: row.expires,
                matched: row.matched,
            });
            let right = rows.right.rows.iter().map(move |row| HeldRow {
                key,
                record: HeldRecord::Right(&row.record),
                time: row.time,
                expires: row.expires,
                matched: row.matched,
            });
            left.chain(right)
        })
    }
}

/// Whether a left record at `left` and a right one at `right` satisfy the time condition
/// `right in [left - lower, left + upper]`.
#[inline]
fn within(lower: u64, upper: u64, left: u64, right: u64) -> bool {
    left.saturating_sub(lower) <= right && right <= left.saturating_add(upper)
}

/// Registers a timer for `key` at `at`.
fn arm<K>(timers: &mut Timers<K>, spare: &mut Vec<Vec<K>>, at: u64, key: K) {
    timers
        .entry(at)
        .or_insert_with(|| spare.pop().unwrap_or_default())
        .push(key);
}

/// Removes the bucket of timers at `at`, if it is the earliest.
fn take_bucket<K>(timers: &mut Timers<K>, at: u64) -> Option<Vec<K>> {
    let entry = timers.first_entry()?;
    (*entry.key() == at).then(|| entry.remove())
}

/// Keeps an emptied bucket for reuse.
fn recycle<K>(spare: &mut Vec<Vec<K>>, bucket: Vec<K>) {
    if spare.len() < SPARE_BUCKETS {
        spare.push(bucket);
    }
}

/// Forgets `key` if neither side holds rows for it.
fn remove_if_empty<K: Hash + Eq, A, B>(keys: &mut FxHashMap<K, KeyRows<A, B>>, key: K) {
    if keys
        .get(&key)
        .is_some_and(|rows| rows.left.rows.is_empty() && rows.right.rows.is_empty())
    {
        keys.remove(&key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A record as the tests write it: left or right, stamp, key, event time.
    #[derive(Clone, Copy, Debug)]
    struct Input {
        left: bool,
        stamp: u64,
        key: u8,
        time: u64,
    }

    /// Runs `inputs` (indices are the records) through a `JoinState` in stamp order, left
    /// before right within a stamp, expiring before each stamp and at the end. Returns the
    /// sorted pairs `(left, right)`, the unmatched left records, and the peak rows held.
    fn drive(inputs: &[Input], lower: u64, upper: u64) -> (Vec<(usize, usize)>, Vec<usize>, u64) {
        let mut state: JoinState<u8, usize, usize> = JoinState::new(lower, upper);
        let mut order: Vec<usize> = (0..inputs.len()).collect();
        order.sort_by_key(|&i| (inputs[i].stamp, !inputs[i].left));
        let (mut pairs, mut unmatched, mut peak) = (Vec::new(), Vec::new(), 0);
        let mut expire_before = |state: &mut JoinState<u8, usize, usize>, limit: Option<u64>| {
            while let Some(at) = state
                .next_expiry()
                .filter(|&at| limit.is_none_or(|l| at < l))
            {
                state.expire(at, |_, _, record| unmatched.push(record));
            }
        };
        for i in order {
            let Input {
                left,
                stamp,
                key,
                time,
            } = inputs[i];
            if state.is_late(stamp, time) {
                continue;
            }
            expire_before(&mut state, Some(stamp));
            if left {
                state.apply_left(stamp, key, time, i, |_, _, right| {
                    pairs.push((i, *right.data))
                });
            } else {
                state.apply_right(stamp, key, time, i, |_, left, _| {
                    pairs.push((*left.data, i))
                });
            }
            assert_eq!(state.rows().count() as u64, state.len());
            peak = peak.max(state.len());
        }
        expire_before(&mut state, None);
        assert!(
            state.is_empty() && state.keys.is_empty(),
            "everything expires"
        );
        assert!(state.left_timers.is_empty() && state.right_timers.is_empty());
        pairs.sort_unstable();
        unmatched.sort_unstable();
        (pairs, unmatched, peak)
    }

    /// The rule of the module documentation, pair by pair.
    fn rule(inputs: &[Input], lower: u64, upper: u64) -> (Vec<(usize, usize)>, Vec<usize>) {
        let late = |r: &Input| r.stamp > r.time + lower + upper;
        let mut pairs = Vec::new();
        for (i, a) in inputs
            .iter()
            .enumerate()
            .filter(|(_, r)| r.left && !late(r))
        {
            for (j, b) in inputs
                .iter()
                .enumerate()
                .filter(|(_, r)| !r.left && !late(r))
            {
                let within = a.time.saturating_sub(lower) <= b.time && b.time <= a.time + upper;
                let held = a.stamp == b.stamp
                    || (a.stamp < b.stamp && b.stamp <= a.time + upper)
                    || (b.stamp < a.stamp && a.stamp <= b.time + lower);
                if a.key == b.key && within && held {
                    pairs.push((i, j));
                }
            }
        }
        let unmatched = (0..inputs.len())
            .filter(|&i| inputs[i].left && !late(&inputs[i]))
            .filter(|&i| !pairs.iter().any(|&(a, _)| a == i))
            .collect();
        (pairs, unmatched)
    }

    fn input() -> impl Strategy<Value = Input> {
        (any::<bool>(), 0u64..200, 0u8..3, 0u64..60).prop_map(|(left, time, key, behind)| Input {
            left,
            // Most records on time, some behind their stamp.
            stamp: if behind < 40 { time } else { time + behind },
            key,
            time,
        })
    }

    proptest! {
        #[test]
        fn joins_by_the_documented_rule(
            inputs in proptest::collection::vec(input(), 0..80),
            lower in 0u64..30,
            upper in 0u64..30,
        ) {
            let (pairs, unmatched, _) = drive(&inputs, lower, upper);
            let (expected_pairs, expected_unmatched) = rule(&inputs, lower, upper);
            prop_assert_eq!(pairs, expected_pairs);
            prop_assert_eq!(unmatched, expected_unmatched);
        }
    }

    #[test]
    fn on_time_records_join_every_partner_in_the_interval() {
        let inputs: Vec<Input> = [
            (true, 10),
            (false, 5),
            (false, 10),
            (false, 14),
            (false, 16),
        ]
        .into_iter()
        .map(|(left, time)| Input {
            left,
            stamp: time,
            key: 0,
            time,
        })
        .collect();
        let (pairs, unmatched, _) = drive(&inputs, 5, 4);
        assert_eq!(pairs, vec![(0, 1), (0, 2), (0, 3)]);
        assert!(unmatched.is_empty());
    }

    #[test]
    fn a_record_behind_its_watermark_misses_partners_that_expired() {
        // The right record at 3 is stamped 20: the left record at 0 expired after 0 + 4, so
        // they do not meet; the left record at 19 stamped 20 meets it.
        let inputs = [
            Input {
                left: true,
                stamp: 0,
                key: 0,
                time: 0,
            },
            Input {
                left: false,
                stamp: 20,
                key: 0,
                time: 3,
            },
            Input {
                left: true,
                stamp: 20,
                key: 0,
                time: 19,
            },
        ];
        let (pairs, unmatched, _) = drive(&inputs, 100, 4);
        assert_eq!(pairs, vec![(2, 1)]);
        assert_eq!(unmatched, vec![0]);
        // With the same stamp the records still meet, whatever their times.
        let together = [
            Input {
                left: true,
                stamp: 20,
                key: 0,
                time: 2,
            },
            Input {
                left: false,
                stamp: 20,
                key: 0,
                time: 3,
            },
        ];
        assert_eq!(drive(&together, 100, 4).0, vec![(0, 1)]);
    }

    #[test]
    fn state_stays_within_the_interval_on_a_long_stream() {
        // One left and one right record per ms on 4 keys: each side holds about its bound.
        let inputs: Vec<Input> = (0..20_000u64)
            .map(|i| Input {
                left: i % 2 == 0,
                stamp: i / 2,
                key: (i % 8 / 2) as u8,
                time: i / 2,
            })
            .collect();
        let (_, _, peak) = drive(&inputs, 30, 70);
        assert!(peak <= 30 + 70 + 4, "peak {peak}");
    }
}
