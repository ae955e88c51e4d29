//! The state of aligned windows `[end - size, end)` with one accumulator per (key, window):
//! tumbling windows in both output modes, and sliding windows in update mode (where every open
//! window's current value must be at hand for its early rows). The operator is the
//! arrival-order driver's (`window/arrival.rs`).
//!
//! A window keeps its accumulators densely, in a vector in the order their keys arrived, and
//! maps each key to its position: a hash table's entries are paid for about twice over (it
//! doubles when 7/8 full), so they hold the key and a 4-byte position only, not the
//! accumulator (a window's accumulators are freed together, when it closes).
//!
//! In update mode each accumulator has a dirty flag and each window a list of the keys
//! whose accumulator changed since the last early rows. Each time the frontier moves, the
//! operator emits an early row for every dirty (key, window) that is still open, showing every
//! record received so far; a window's final row leaves when it closes.

use std::collections::hash_map::Entry;
use std::collections::BTreeMap;
use std::hash::Hash;
use std::marker::PhantomData;

use rustc_hash::FxHashMap;
use timely::dataflow::operators::Capability;
use timely::progress::frontier::MutableAntichain;

use super::assign::Grid;
use super::{
    close_time, emit_late, hold_earliest, EventOutput, LateRecord, StampCaps, UpdateKind,
    WindowResult, WindowRow,
};
use crate::aggregate::Aggregator;
use crate::event::Event;
use crate::snapshot::key_group;

/// One saved (key, window): its end, the window's result capability, the key, its accumulator.
pub(super) type SavedWindow<K, Acc> = (u64, u64, K, Acc);

/// The open windows: per window end, a capability for its results and one accumulator per key.
/// The row type `R` emitted with results `O` sets the output mode at compile time.
pub(crate) struct AlignedWindows<K, Acc, O, R> {
    size: u64,
    lateness: u64,
    rows: PhantomData<fn(O) -> R>,
    open: BTreeMap<u64, OpenWindow<K, Acc>>,
    /// In update mode, while changes wait for their early rows: a capability at the earliest
    /// stamp among them.
    early: Option<Capability<u64>>,
    /// The frontier at the last activation.
    frontier: Option<u64>,
    /// Accumulators held, over all open windows.
    pub(super) held: u64,
}

struct OpenWindow<K, Acc> {
    capability: Capability<u64>,
    /// Per key, the position of its accumulator in `accumulators`.
    positions: FxHashMap<K, u32>,
    accumulators: Vec<Acc>,
    /// Update mode: per accumulator, whether it changed since its key's last early row.
    changed: Vec<bool>,
    /// Update mode: the keys whose accumulator changed since their last early row.
    dirty: Vec<K>,
}

impl<K: Hash + Eq, Acc> OpenWindow<K, Acc> {
    fn new(capability: Capability<u64>) -> Self {
        OpenWindow {
            capability,
            positions: FxHashMap::default(),
            accumulators: Vec::new(),
            changed: Vec::new(),
            dirty: Vec::new(),
        }
    }

    /// The keys and their accumulators.
    fn iter(&self) -> impl Iterator<Item = (&K, &Acc)> + '_ {
        (self.positions.iter()).map(|(key, &at)| (key, &self.accumulators[at as usize]))
    }
}

impl<K: Hash + Eq + Clone + 'static, Acc, O, R: WindowRow<K, O>> AlignedWindows<K, Acc, O, R> {
    /// Update mode: track changes and emit early rows.
    const UPDATES: bool = R::UPDATES;

    pub(super) fn new(size: u64, lateness: u64) -> Self {
        AlignedWindows {
            size,
            lateness,
            rows: PhantomData,
            open: BTreeMap::new(),
            early: None,
            frontier: Some(0),
            held: 0,
        }
    }

    /// In update mode, notes that records stamped `capability.time()` may change results.
    #[inline]
    fn note_change(&mut self, capability: &StampCaps<'_>, port: usize) {
        let stamp = capability.time();
        if Self::UPDATES
            && self
                .early
                .as_ref()
                .is_none_or(|early| *early.time() > stamp)
        {
            self.early = Some(capability.result_at(stamp, port));
        }
    }

    /// Applies the records of one stamp: each goes into its windows, or to the late output.
    pub(super) fn apply<D, A: Aggregator<D, Acc = Acc>>(
        &mut self,
        capability: &StampCaps<'_>,
        port: usize,
        events: impl Iterator<Item = Event<(K, D)>>,
        grid: Grid,
        aggregator: &A,
        late: &mut EventOutput<'_, LateRecord<K, D>>,
    ) where
        D: 'static,
    {
        let Grid { size, slide } = grid;
        let stamp = capability.time();
        self.note_change(capability, port);
        for event in events {
            // The windows of the record it is not late for: ends in `entry..=exit`.
            let exit = grid.last_end(event.time);
            if slide == size {
                if stamp >= close_time(exit, self.lateness) {
                    emit_late(late, capability, event, exit);
                    continue;
                }
                let (key, data) = event.data;
                let acc = self.accumulator(exit, key, capability, port, || aggregator.init());
                aggregator.add(acc, &data);
                continue;
            }
            let entry = grid.first_open_end(event.time, stamp, self.lateness);
            if entry > exit {
                emit_late(late, capability, event, exit);
                continue;
            }
            let (key, data) = event.data;
            let mut end = entry;
            while end < exit {
                let acc =
                    self.accumulator(end, key.clone(), capability, port, || aggregator.init());
                aggregator.add(acc, &data);
                end += slide;
            }
            let acc = self.accumulator(exit, key, capability, port, || aggregator.init());
            aggregator.add(acc, &data);
        }
    }

    /// The state as snapshot entries, each with its key group.
    pub(super) fn entries(&self) -> impl Iterator<Item = (u64, SavedWindow<&K, &Acc>)> + '_ {
        self.open.iter().flat_map(|(&end, window)| {
            let at = *window.capability.time();
            window
                .iter()
                .map(move |(key, acc)| (key_group(key), (end, at, key, acc)))
        })
    }

    /// Restores saved entries, minting their windows' capabilities from `initial`.
    pub(super) fn restore(&mut self, entries: Vec<SavedWindow<K, Acc>>, initial: &Capability<u64>) {
        for (end, at, key, acc) in entries {
            let window =
                (self.open.entry(end)).or_insert_with(|| OpenWindow::new(initial.delayed(&at)));
            if *window.capability.time() > at {
                window.capability = initial.delayed(&at);
            }
            match window.positions.entry(key) {
                Entry::Occupied(entry) => window.accumulators[*entry.get() as usize] = acc,
                Entry::Vacant(entry) => {
                    entry.insert(to_position(window.accumulators.len()));
                    window.accumulators.push(acc);
                    if Self::UPDATES {
                        window.changed.push(false);
                    }
                    self.held += 1;
                }
            }
        }
    }

    /// The accumulator of `key` in the window ending at `end`, created by `init` if new (the key
    /// moves into the map: one hash lookup). The window's result capability is the earliest of
    /// `max(end - 1, stamp)` over its records.
    #[inline]
    fn accumulator(
        &mut self,
        end: u64,
        key: K,
        capability: &StampCaps<'_>,
        output_port: usize,
        init: impl FnOnce() -> Acc,
    ) -> &mut Acc {
        let at = (end - 1).max(capability.time());
        let window = (self.open.entry(end))
            .or_insert_with(|| OpenWindow::new(capability.result_at(at, output_port)));
        hold_earliest(&mut window.capability, capability, at, output_port);
        let position = match window.positions.entry(key) {
            Entry::Occupied(entry) => {
                let position = *entry.get() as usize;
                if Self::UPDATES && !window.changed[position] {
                    window.changed[position] = true;
                    window.dirty.push(entry.key().clone());
                }
                position
            }
            Entry::Vacant(entry) => {
                let position = window.accumulators.len();
                if Self::UPDATES {
                    window.dirty.push(entry.key().clone());
                    window.changed.push(true);
                }
                entry.insert(to_position(position));
                window.accumulators.push(init());
                self.held += 1;
                position
            }
        };
        &mut window.accumulators[position]
    }

    /// Emits and frees, oldest first, every window whose close time has `passed` (the
    /// frontier is at or past it).
    pub(super) fn close_passed(
        &mut self,
        passed: impl Fn(u64) -> bool,
        results: &mut EventOutput<'_, R>,
        mut finish: impl FnMut(&Acc) -> O,
    ) {
        while let Some((&end, _)) = self.open.first_key_value() {
            if !passed(close_time(end, self.lateness)) {
                break;
            }
            let window = self.open.remove(&end).expect("first window exists");
            self.held -= window.accumulators.len() as u64;
            let start = end - self.size;
            let mut session = results.session_with_builder(&window.capability);
            for (key, at) in window.positions {
                let value = finish(&window.accumulators[at as usize]);
                let result = WindowResult {
                    key,
                    start,
                    end,
                    value,
                };
                session.give(Event::new(end - 1, R::row(result, UpdateKind::Final)));
            }
        }
    }

    /// In update mode, when the frontier has moved (or has passed the earliest change waiting
    /// for its early row), emits one early row per changed (key, window), showing every record
    /// received so far, at event time `max(frontier - 1, earliest change)`.
    pub(super) fn emit_early(
        &mut self,
        frontier: &MutableAntichain<u64>,
        results: &mut EventOutput<'_, R>,
        mut finish: impl FnMut(&Acc) -> O,
    ) {
        let now = frontier.frontier().first().copied();
        let moved = std::mem::replace(&mut self.frontier, now) != now;
        let Some(early) = &self.early else {
            return;
        };
        let Some(now) = now else {
            // The input has ended: every window closed with its final row.
            self.early = None;
            return;
        };
        if !moved && *early.time() >= now {
            return;
        }
        let at = (now - 1).max(*early.time());
        let capability = early.delayed(&at);
        self.early = None;
        let mut session = results.session_with_builder(&capability);
        for (&end, window) in &mut self.open {
            let start = end - self.size;
            for key in window.dirty.drain(..) {
                let position = window.positions[&key] as usize;
                window.changed[position] = false;
                let value = finish(&window.accumulators[position]);
                let result = WindowResult {
                    key,
                    start,
                    end,
                    value,
                };
                session.give(Event::new(at, R::row(result, UpdateKind::Early)));
            }
        }
    }
}

/// The position of the `at`th accumulator of a window.
#[inline]
fn to_position(at: usize) -> u32 {
    u32::try_from(at).expect("a window holds fewer than 2^32 keys per worker")
}
