//! Tumbling windows: fixed-size, non-overlapping, aligned to the epoch.

use std::collections::BTreeMap;
use std::hash::Hash;

use rustc_hash::FxHashMap;
use timely::dataflow::operators::{Capability, InputCapability};
use timely::dataflow::StreamVec;
use timely::progress::frontier::MutableAntichain;
use timely::ExchangeData;

use super::assign::tumbling_end;
use super::{
    close_time, emit_late, keyed_window_operator, EventOutput, WindowResult, WindowStreams,
};
use crate::aggregate::Aggregator;
use crate::event::Event;

/// Groups keyed events into tumbling windows `[k * size, (k + 1) * size)` and aggregates each
/// key's records per window.
pub trait TumblingWindow<'scope, K, D> {
    /// Tumbling windows of `size` ms with no allowed lateness.
    ///
    /// # Examples
    /// ```
    /// use timely::dataflow::operators::{Capture, capture::Extract, ToStream};
    /// use timely::dataflow::operators::vec::Map;
    /// use tideflow_operators::{aggregate::Count, window::TumblingWindow, Event};
    ///
    /// let results = timely::example(|scope| {
    ///     let events = vec![(100u64, "a"), (900, "a"), (1_200, "a"), (300, "b")];
    ///     events
    ///         .to_stream(scope)
    ///         .container::<Vec<_>>()
    ///         .map(|(t, k): (u64, &str)| Event::new(t, (k.to_string(), ())))
    ///         .tumbling_window(1_000, Count)
    ///         .results
    ///         .capture()
    /// });
    /// let mut rows: Vec<(String, u64, u64)> = results.extract().into_iter()
    ///     .flat_map(|(_, rows)| rows)
    ///     .map(|e| (e.data.key, e.data.start, e.data.value))
    ///     .collect();
    /// rows.sort();
    /// assert_eq!(rows, vec![("a".into(), 0, 2), ("a".into(), 1_000, 1), ("b".into(), 0, 1)]);
    /// ```
    fn tumbling_window<A: Aggregator<D>>(
        self,
        size: u64,
        aggregator: A,
    ) -> WindowStreams<'scope, K, D, A::Output>;

    /// Tumbling windows of `size` ms that stay open for records stamped up to `lateness` ms past
    /// their end.
    fn tumbling_window_core<A: Aggregator<D>>(
        self,
        size: u64,
        lateness: u64,
        aggregator: A,
    ) -> WindowStreams<'scope, K, D, A::Output>;
}

impl<'scope, K, D> TumblingWindow<'scope, K, D> for StreamVec<'scope, u64, Event<(K, D)>>
where
    K: ExchangeData + Hash + Eq + Clone,
    D: ExchangeData,
{
    fn tumbling_window<A: Aggregator<D>>(
        self,
        size: u64,
        aggregator: A,
    ) -> WindowStreams<'scope, K, D, A::Output> {
        self.tumbling_window_core(size, 0, aggregator)
    }

    fn tumbling_window_core<A: Aggregator<D>>(
        self,
        size: u64,
        lateness: u64,
        aggregator: A,
    ) -> WindowStreams<'scope, K, D, A::Output> {
        assert!(size > 0, "tumbling window size must be positive");
        let mut windows = TumblingWindows::<K, A::Acc>::new(size, lateness);
        keyed_window_operator(
            self,
            "TumblingWindow",
            move |input, frontier, results, late| {
                let port = results.output_index();
                input.for_each_time(|capability, containers| {
                    let stamp = *capability.time();
                    for event in containers.flat_map(|container| container.drain(..)) {
                        let end = tumbling_end(event.time, size);
                        if stamp >= close_time(end, lateness) {
                            emit_late(late, &capability, event, end);
                            continue;
                        }
                        let (key, data) = event.data;
                        let acc =
                            windows.accumulator(end, key, &capability, port, || aggregator.init());
                        aggregator.add(acc, &data);
                    }
                });
                windows.close_passed(frontier, results, |acc| aggregator.finish(acc));
            },
        )
    }
}

/// The open tumbling windows: per window end, a capability for its results and one accumulator
/// per key.
struct TumblingWindows<K, Acc> {
    size: u64,
    lateness: u64,
    open: BTreeMap<u64, OpenWindow<K, Acc>>,
}

struct OpenWindow<K, Acc> {
    capability: Capability<u64>,
    accumulators: FxHashMap<K, Acc>,
}

impl<K: Hash + Eq + 'static, Acc> TumblingWindows<K, Acc> {
    fn new(size: u64, lateness: u64) -> Self {
        TumblingWindows {
            size,
            lateness,
            open: BTreeMap::new(),
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
    fn close_passed<O: 'static>(
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
