//! Event-time windows: assignment, and the tumbling, sliding and session window operators.
//!
//! All three take a stream of keyed events `Event<(K, D)>`, exchange it by [`key_hash`] of the
//! key, fold each key's records per window with an [`Aggregator`], and emit one
//! [`WindowResult`] per (key, window) when the input frontier shows that no more records for the
//! window can arrive. A result carries event time `window_end - 1`, so windowed streams compose.
//! Windows are aligned to the epoch like Spark's and Flink's: `[k * slide, k * slide + size)`;
//! a session is `[first_event, last_event + gap)`.
//!
//! Lateness is decided per record and deterministically: a record stamped `stamp` (its event
//! time, or its partition's watermark when it arrived behind it) is late for a window when
//! `stamp >= window_end + allowed_lateness` (for sessions the window is the record's own
//! `[t, t + gap)`). Late records leave on a second stream, [`WindowStreams::late`], with the
//! stamp they arrived at, so that nothing is dropped without being seen.
//!
//! [`key_hash`]: crate::key_hash
//! [`Aggregator`]: crate::Aggregator

pub mod assign;
pub mod session;
pub mod sliding;
pub mod tumbling;

use std::collections::BTreeMap;
use std::hash::Hash;

use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};
use timely::communication::Pull;
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::{Exchange, LogPuller};
use timely::dataflow::channels::Message;
use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;
use timely::dataflow::operators::generic::{InputHandleCore, OutputBuilder, OutputBuilderSession};
use timely::dataflow::operators::{Capability, InputCapability};
use timely::dataflow::StreamVec;
use timely::progress::frontier::MutableAntichain;
use timely::ExchangeData;

pub use session::SessionWindow;
pub use sliding::SlidingWindow;
pub use tumbling::TumblingWindow;

use crate::aggregate::Aggregator;
use crate::event::{key_hash, Event};

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

/// The two outputs of a window operator.
pub struct WindowStreams<'scope, K, D, O> {
    /// One result per (key, window), at event time `window_end - 1`.
    pub results: StreamVec<'scope, u64, Event<WindowResult<K, O>>>,
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
pub(crate) type EventOutput<'a, R> =
    OutputBuilderSession<'a, u64, CapacityContainerBuilder<Vec<Event<R>>>>;

/// Builds a keyed operator with a result output (port 0) and a late output (port 1), its input
/// exchanged by the key's hash. `logic` runs on every activation with the input, its frontier
/// and both outputs.
pub(crate) fn keyed_window_operator<'scope, K, D, O, L>(
    stream: StreamVec<'scope, u64, Event<(K, D)>>,
    name: &str,
    mut logic: L,
) -> WindowStreams<'scope, K, D, O>
where
    K: ExchangeData + Hash,
    D: ExchangeData,
    O: 'static,
    L: FnMut(
            &mut KeyedInput<K, D>,
            &MutableAntichain<u64>,
            &mut EventOutput<'_, WindowResult<K, O>>,
            &mut EventOutput<'_, LateRecord<K, D>>,
        ) + 'static,
{
    let mut builder = OperatorBuilder::new(name.to_owned(), stream.scope());
    let route: fn(&Event<(K, D)>) -> u64 = |event| key_hash(&event.data.0);
    let mut input = builder.new_input(stream, Exchange::new(route));
    let (results, results_stream) = builder.new_output();
    let (late, late_stream) = builder.new_output();
    let mut results =
        OutputBuilder::<u64, CapacityContainerBuilder<Vec<Event<WindowResult<K, O>>>>>::from(
            results,
        );
    let mut late =
        OutputBuilder::<u64, CapacityContainerBuilder<Vec<Event<LateRecord<K, D>>>>>::from(late);
    builder.build(move |initial_capabilities| {
        // Every output capability is minted from input capabilities.
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

/// Sends `event`, too late for the window ending at `window_end`, to the late output.
#[inline]
pub(crate) fn emit_late<K: 'static, D: 'static>(
    late: &mut EventOutput<'_, LateRecord<K, D>>,
    capability: &InputCapability<u64>,
    event: Event<(K, D)>,
    window_end: u64,
) {
    let stamp = *capability.time();
    let (key, data) = event.data;
    late.session(capability).give(Event::new(
        event.time,
        LateRecord {
            key,
            data,
            watermark: stamp,
            window_end,
        },
    ));
}

/// The earliest time a window ending at `end` is complete: every record that belongs to it
/// has a stamp below `end + lateness`.
#[inline]
pub(crate) fn close_time(end: u64, lateness: u64) -> u64 {
    end.saturating_add(lateness)
}

/// The open windows of an aligned (tumbling or sliding) window operator: per window end, a
/// capability for its result and one accumulator per key.
pub(crate) struct AlignedWindows<K, Acc> {
    size: u64,
    lateness: u64,
    open: BTreeMap<u64, OpenWindow<K, Acc>>,
}

struct OpenWindow<K, Acc> {
    capability: Capability<u64>,
    accumulators: FxHashMap<K, Acc>,
}

impl<K: Hash + Eq + Clone + 'static, Acc> AlignedWindows<K, Acc> {
    pub(crate) fn new(size: u64, lateness: u64) -> Self {
        AlignedWindows {
            size,
            lateness,
            open: BTreeMap::new(),
        }
    }

    /// The accumulator of `key` in the window ending at `end`, created by `init` if new. The
    /// window's result capability is the earliest of `max(end - 1, stamp)` over its records.
    #[inline]
    pub(crate) fn accumulator(
        &mut self,
        end: u64,
        key: K,
        capability: &InputCapability<u64>,
        output_port: usize,
        init: impl FnOnce() -> Acc,
    ) -> &mut Acc {
        let at = (end - 1).max(*capability.time());
        let window = self.open.entry(end).or_insert_with(|| OpenWindow {
            capability: capability.delayed(&at, output_port),
            accumulators: FxHashMap::default(),
        });
        if *window.capability.time() > at {
            window.capability = capability.delayed(&at, output_port);
        }
        window.accumulators.entry(key).or_insert_with(init)
    }

    /// Emits and frees every window the frontier has passed, oldest first.
    pub(crate) fn close_passed<O: 'static>(
        &mut self,
        frontier: &MutableAntichain<u64>,
        results: &mut EventOutput<'_, WindowResult<K, O>>,
        mut finish: impl FnMut(&Acc) -> O,
    ) {
        while let Some((&end, _)) = self.open.first_key_value() {
            if frontier.less_than(&close_time(end, self.lateness)) {
                break;
            }
            let window = self.open.remove(&end).expect("first window exists");
            let start = end - self.size;
            let mut session = results.session(&window.capability);
            for (key, acc) in window.accumulators {
                let value = finish(&acc);
                session.give(Event::new(
                    end - 1,
                    WindowResult {
                        key,
                        start,
                        end,
                        value,
                    },
                ));
            }
        }
    }
}

/// Shared body of the tumbling and sliding operators: `ends(t)` lists the ends of the windows an
/// event time belongs to, latest first.
pub(crate) fn aligned_window<'scope, K, D, A, I>(
    stream: StreamVec<'scope, u64, Event<(K, D)>>,
    name: &str,
    size: u64,
    lateness: u64,
    aggregator: A,
    ends: impl Fn(u64) -> I + 'static,
) -> WindowStreams<'scope, K, D, A::Output>
where
    K: ExchangeData + Hash + Eq + Clone,
    D: ExchangeData,
    A: Aggregator<D>,
    I: Iterator<Item = u64>,
{
    let mut windows = AlignedWindows::<K, A::Acc>::new(size, lateness);
    keyed_window_operator(stream, name, move |input, frontier, results, late| {
        let port = results.output_index();
        input.for_each_time(|capability, containers| {
            let stamp = *capability.time();
            for event in containers.flat_map(|container| container.drain(..)) {
                // Earlier windows end earlier: once one is late, the rest are too.
                let mut open = ends(event.time)
                    .take_while(|&end| stamp < close_time(end, lateness))
                    .peekable();
                if open.peek().is_none() {
                    let window_end = ends(event.time).next().unwrap_or(event.time);
                    emit_late(late, &capability, event, window_end);
                    continue;
                }
                // The key moves into the last window's map (the only one, for tumbling windows):
                // one hash lookup per window, and a clone only for earlier sliding windows.
                let (key, data) = event.data;
                let mut key = Some(key);
                while let Some(end) = open.next() {
                    let key = if open.peek().is_some() {
                        key.clone()
                    } else {
                        key.take()
                    };
                    let key = key.expect("the key is moved out only for the last window");
                    let acc =
                        windows.accumulator(end, key, &capability, port, || aggregator.init());
                    aggregator.add(acc, &data);
                }
            }
        });
        windows.close_passed(frontier, results, |acc| aggregator.finish(acc));
    })
}
