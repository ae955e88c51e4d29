//! Sliding (hopping) windows: `[k * slide, k * slide + size)`, each record in `size / slide` of
//! them.

use std::hash::Hash;

use timely::dataflow::StreamVec;
use timely::ExchangeData;

use super::assign::sliding_ends;
use super::{aligned_window, WindowStreams};
use crate::aggregate::Aggregator;
use crate::event::Event;

/// Groups keyed events into sliding windows and aggregates each key's records per window.
///
/// Each record is added to every window that contains it (as Flink's sliding assigner does), so
/// the cost per record is `size / slide` accumulator updates.
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
    ) -> WindowStreams<'scope, K, D, A::Output>;

    /// Sliding windows that stay open for records stamped up to `lateness` ms past their end.
    fn sliding_window_core<A: Aggregator<D>>(
        self,
        size: u64,
        slide: u64,
        lateness: u64,
        aggregator: A,
    ) -> WindowStreams<'scope, K, D, A::Output>;
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
    ) -> WindowStreams<'scope, K, D, A::Output> {
        self.sliding_window_core(size, slide, 0, aggregator)
    }

    fn sliding_window_core<A: Aggregator<D>>(
        self,
        size: u64,
        slide: u64,
        lateness: u64,
        aggregator: A,
    ) -> WindowStreams<'scope, K, D, A::Output> {
        assert!(
            slide > 0 && slide <= size,
            "sliding windows need 0 < slide <= size"
        );
        aligned_window(
            self,
            "SlidingWindow",
            size,
            lateness,
            aggregator,
            move |time| sliding_ends(time, size, slide),
        )
    }
}
