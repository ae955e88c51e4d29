//! Event-time windows: assignment, and the tumbling, sliding and session window operators.
//!
//! All three take a stream of keyed events `Event<(K, D)>`, exchange it by [`key_group`] of the
//! key, fold each key's records per window with an [`Aggregator`], and emit one
//! [`WindowResult`] per (key, window) when the input frontier shows that no more records for the
//! window can arrive. A result carries event time `window_end - 1`, so windowed streams compose.
//! Windows are aligned to the epoch like Spark's and Flink's: `[k * slide, k * slide + size)`;
//! a session is `[first_event, last_event + gap)`.
//!
//! Each operator emits its rows in one of two output modes, chosen by the row type `R` of the
//! `*_rows` methods ([`WindowRow`]): [`WindowResult`] is append mode (one row per window, when it
//! closes); [`WindowUpdate`] is update mode (an early row whenever a window's result changed as
//! the frontier advanced, then a final row; sessions also retract rows whose bounds changed).
//!
//! Lateness is decided per record and deterministically: a record stamped `stamp` (its event
//! time, or its partition's watermark when it arrived behind it) is late for a window when
//! `stamp >= window_end + allowed_lateness` (for sessions the window is the record's own
//! `[t, t + gap)`). Late records leave on a second stream, [`WindowStreams::late`], with the
//! stamp they arrived at, so that nothing is dropped without being seen.
//!
//! [`key_group`]: crate::snapshot::key_group
//! [`Aggregator`]: crate::Aggregator

mod aligned;
mod arrival;
pub mod assign;
pub mod fold;
pub mod session;
pub mod sliding;
pub mod tumbling;

use std::hash::Hash;

use serde::{Deserialize, Serialize};
use timely::communication::Pull;
use timely::dataflow::channels::pact::{Exchange, LogPuller};
use timely::dataflow::channels::Message;
use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;
use timely::dataflow::operators::generic::{InputHandleCore, OutputBuilder, OutputBuilderSession};
use timely::dataflow::operators::{Capability, InputCapability};
use timely::dataflow::StreamVec;
use timely::progress::frontier::MutableAntichain;
use timely::ExchangeData;

pub use fold::{fold_locally, Folding, Piece};
pub use session::SessionWindow;
pub use sliding::SlidingWindow;
pub use tumbling::TumblingWindow;

use crate::container::GrowingBuilder;
use crate::event::Event;
use crate::snapshot::key_group;

/// One key's result for one window.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct WindowResult<K, O> {
    /// The key.
    pub key: K,
    /// Window start, inclusive, in ms since the epoch.
    pub start: u64,
    /// Window end, exclusive, in ms since the epoch.
    pub end: u64,
    /// The aggregate of the key's records in the window.
    pub value: O,
}

/// A record that arrived too late for every window it belongs to. Its [`Event::time`] is the
/// record's own event time.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct LateRecord<K, D> {
    /// The record's key.
    pub key: K,
    /// The record.
    pub data: D,
    /// The watermark the record arrived behind: its stamp.
    pub watermark: u64,
    /// The end of the latest window the record belongs to (for sessions, of its own window
    /// `[t, t + gap)`). Every window of the record closed when the watermark reached
    /// `window_end + allowed_lateness`, and `watermark` is at or past that.
    pub window_end: u64,
}

/// What an update-mode row says about its window.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum UpdateKind {
    /// The window's result so far: more rows for the window may follow.
    Early,
    /// The window's last result: the window has closed and no row for it follows.
    Final,
    /// The window no longer exists (a session that grew or merged into another one): delete
    /// the row with this key and bounds. The value is the one last emitted for it.
    Retract,
}

/// A row of update-mode output: upserting [`UpdateKind::Early`] and [`UpdateKind::Final`] rows
/// on `(key, start, end)` and deleting on [`UpdateKind::Retract`] rows holds, once the input
/// ends, exactly the append-mode results.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct WindowUpdate<K, O> {
    /// The window and its result.
    pub result: WindowResult<K, O>,
    /// Whether the row is early, final or a retraction.
    pub kind: UpdateKind,
}

impl<K, O> WindowUpdate<K, O> {
    /// Whether this is the window's last row.
    pub fn is_final(&self) -> bool {
        self.kind == UpdateKind::Final
    }
}

mod sealed {
    pub trait Sealed {}
    impl<K, O> Sealed for super::WindowResult<K, O> {}
    impl<K, O> Sealed for super::WindowUpdate<K, O> {}
}

/// The rows a window operator emits, which set its output mode: [`WindowResult`] for append
/// mode, [`WindowUpdate`] for update mode.
pub trait WindowRow<K, O>: sealed::Sealed + 'static {
    /// Whether the operator emits early rows and retractions (update mode).
    const UPDATES: bool;
    /// The row for `result`. In append mode `kind` is always [`UpdateKind::Final`].
    fn row(result: WindowResult<K, O>, kind: UpdateKind) -> Self;
}

impl<K: 'static, O: 'static> WindowRow<K, O> for WindowResult<K, O> {
    const UPDATES: bool = false;
    #[inline]
    fn row(result: WindowResult<K, O>, kind: UpdateKind) -> Self {
        debug_assert_eq!(kind, UpdateKind::Final, "append mode emits final rows only");
        result
    }
}

impl<K: 'static, O: 'static> WindowRow<K, O> for WindowUpdate<K, O> {
    const UPDATES: bool = true;
    #[inline]
    fn row(result: WindowResult<K, O>, kind: UpdateKind) -> Self {
        WindowUpdate { result, kind }
    }
}

/// The two outputs of a window operator.
pub struct WindowStreams<'scope, K, D, R> {
    /// The rows: in append mode one [`WindowResult`] per (key, window) at event time
    /// `window_end - 1`; in update mode [`WindowUpdate`]s, early ones and retractions at event
    /// time `max(watermark - 1, earliest change shown)` for the watermark they were emitted
    /// at, final ones at `window_end - 1`.
    pub results: StreamVec<'scope, u64, Event<R>>,
    /// Records too late for every window they belong to.
    pub late: StreamVec<'scope, u64, Event<LateRecord<K, D>>>,
}

/// The input handle of a keyed window operator.
pub(crate) type KeyedInput<K, D> = InputHandleCore<
    u64,
    Vec<Event<(K, D)>>,
    LogPuller<Box<dyn Pull<Message<u64, Vec<Event<(K, D)>>>>>>,
>;
/// An output handle for events of type `R`.
pub(crate) type EventOutput<'a, R> = OutputBuilderSession<'a, u64, GrowingBuilder<Event<R>>>;

/// Builds a keyed operator with a result output (port 0) and a late output (port 1), its input
/// exchanged by the key's group. `constructor` gets the initial capability of the result
/// output (to restore windows from a snapshot; it is dropped after) and returns the logic,
/// which runs on every activation with the input, its frontier and both outputs.
pub(crate) fn keyed_window_operator<'scope, K, D, R, B, L>(
    stream: StreamVec<'scope, u64, Event<(K, D)>>,
    name: &str,
    constructor: B,
) -> WindowStreams<'scope, K, D, R>
where
    K: ExchangeData + Hash,
    D: ExchangeData,
    R: 'static,
    B: FnOnce(&Capability<u64>) -> L,
    L: FnMut(
            &mut KeyedInput<K, D>,
            &MutableAntichain<u64>,
            &mut EventOutput<'_, R>,
            &mut EventOutput<'_, LateRecord<K, D>>,
        ) + 'static,
{
    let mut builder = OperatorBuilder::new(name.to_owned(), stream.scope());
    let route: fn(&Event<(K, D)>) -> u64 = |event| key_group(&event.data.0);
    let mut input = builder.new_input(stream, Exchange::new(route));
    let (results, results_stream) = builder.new_output();
    let (late, late_stream) = builder.new_output();
    let mut results = OutputBuilder::<u64, GrowingBuilder<Event<R>>>::from(results);
    let mut late = OutputBuilder::<u64, GrowingBuilder<Event<LateRecord<K, D>>>>::from(late);
    builder.build(move |initial_capabilities| {
        // Every output capability is minted from input capabilities, or from this one when
        // windows are restored.
        let mut logic = constructor(&initial_capabilities[0]);
        drop(initial_capabilities);
        move |frontiers| {
            let mut results = results.activate();
            let mut late = late.activate();
            logic(&mut input, &frontiers[0], &mut results, &mut late);
        }
    });
    WindowStreams {
        results: results_stream,
        late: late_stream,
    }
}

/// The capabilities the records of one stamp are applied with: the input capability as they
/// arrive, or the capabilities retained for them while they waited for a snapshot.
pub(crate) enum StampCaps<'a> {
    /// Records as they arrive.
    Input(&'a InputCapability<u64>),
    /// Records that waited: capabilities for the result and late outputs at their stamp.
    Held {
        results: &'a Capability<u64>,
        late: &'a Capability<u64>,
    },
}

impl StampCaps<'_> {
    /// The records' stamp.
    #[inline]
    pub(crate) fn time(&self) -> u64 {
        match self {
            StampCaps::Input(capability) => *capability.time(),
            StampCaps::Held { results, .. } => *results.time(),
        }
    }

    /// A capability for the result output (`port`) at `at`, which is at least the stamp.
    #[inline]
    pub(crate) fn result_at(&self, at: u64, port: usize) -> Capability<u64> {
        match self {
            StampCaps::Input(capability) => capability.delayed(&at, port),
            StampCaps::Held { results, .. } => results.delayed(&at),
        }
    }
}

/// Sends `event`, too late for the window ending at `window_end`, to the late output.
#[inline]
pub(crate) fn emit_late<K: 'static, D: 'static>(
    late: &mut EventOutput<'_, LateRecord<K, D>>,
    capability: &StampCaps<'_>,
    event: Event<(K, D)>,
    window_end: u64,
) {
    let stamp = capability.time();
    let (key, data) = event.data;
    let record = Event::new(
        event.time,
        LateRecord {
            key,
            data,
            watermark: stamp,
            window_end,
        },
    );
    match capability {
        StampCaps::Input(capability) => late.session_with_builder(*capability).give(record),
        StampCaps::Held { late: held, .. } => late.session_with_builder(*held).give(record),
    }
}

/// Lowers `held` to `at`, minted from `capability` for output `port`, if it is later: a
/// window's result capability is the earliest its records need.
#[inline]
pub(crate) fn hold_earliest(
    held: &mut Capability<u64>,
    capability: &StampCaps<'_>,
    at: u64,
    port: usize,
) {
    if *held.time() > at {
        *held = capability.result_at(at, port);
    }
}

/// The earliest time a window ending at `end` is complete: every record that belongs to it
/// has a stamp below `end + lateness`.
#[inline]
pub(crate) fn close_time(end: u64, lateness: u64) -> u64 {
    end.saturating_add(lateness)
}
