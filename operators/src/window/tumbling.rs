//! Tumbling windows: fixed-size, non-overlapping, aligned to the epoch.

use std::hash::Hash;

use timely::dataflow::StreamVec;
use timely::ExchangeData;

use super::aligned::AlignedWindows;
use super::arrival::{arrival_windows, ArrivalState};
use super::assign::Grid;
use super::{WindowResult, WindowRow, WindowStreams};
use crate::aggregate::Aggregator;
use crate::event::Event;
use crate::stateful::StateConfig;

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
    ) -> WindowStreams<'scope, K, D, WindowResult<K, A::Output>>;

    /// Tumbling windows of `size` ms that stay open for records stamped up to `lateness` ms past
    /// their end.
    fn tumbling_window_core<A: Aggregator<D>>(
        self,
        size: u64,
        lateness: u64,
        aggregator: A,
    ) -> WindowStreams<'scope, K, D, WindowResult<K, A::Output>>;

    /// Tumbling windows in the output mode of the row type `R`: [`WindowResult`] (append) or
    /// [`WindowUpdate`](super::WindowUpdate) (update: early rows as the frontier advances, then
    /// the final one), with the operator's snapshot port and gauge in `config` (the gauge counts
    /// the (key, window) accumulators held).
    fn tumbling_window_rows<A: Aggregator<D>, R: WindowRow<K, A::Output>>(
        self,
        size: u64,
        lateness: u64,
        aggregator: A,
        config: StateConfig,
    ) -> WindowStreams<'scope, K, D, R>;
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
    ) -> WindowStreams<'scope, K, D, WindowResult<K, A::Output>> {
        self.tumbling_window_core(size, 0, aggregator)
    }

    fn tumbling_window_core<A: Aggregator<D>>(
        self,
        size: u64,
        lateness: u64,
        aggregator: A,
    ) -> WindowStreams<'scope, K, D, WindowResult<K, A::Output>> {
        self.tumbling_window_rows(size, lateness, aggregator, StateConfig::none())
    }

    fn tumbling_window_rows<A: Aggregator<D>, R: WindowRow<K, A::Output>>(
        self,
        size: u64,
        lateness: u64,
        aggregator: A,
        config: StateConfig,
    ) -> WindowStreams<'scope, K, D, R> {
        assert!(size > 0, "tumbling window size must be positive");
        let grid = Grid { size, slide: size };
        let state = ArrivalState::Aligned(AlignedWindows::new(size, lateness));
        arrival_windows(
            self,
            "TumblingWindow",
            (grid, lateness),
            aggregator,
            config,
            state,
        )
    }
}
