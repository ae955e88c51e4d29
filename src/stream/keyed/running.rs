//! Running aggregates per key: [`KeyedStream::running_aggregate`].

use std::hash::Hash;

use tideflow_operators::aggregate::Aggregator;
use tideflow_operators::keyed::running::{KeyedChange, RunningAggregate};
use timely::ExchangeData;

use crate::stream::{KeyedStream, Stream};

impl<'scope, K, D> KeyedStream<'scope, K, D>
where
    K: ExchangeData + Hash + Eq + Clone,
    D: ExchangeData,
{
    /// Aggregates each key's records for ever, without windows (Spark's `groupBy(key).agg(..)`
    /// on a stream, Flink's group aggregate), as a changelog: each time the watermark advances,
    /// for each key whose result changed, a [`Change::Retract`](crate::Change) row of its
    /// previous result (if any) and a [`Change::Insert`](crate::Change) row of the new one, at
    /// event time `watermark - 1`. The rows up to any time they carry hold the aggregate of
    /// exactly the records stamped at or before it. Keep only the insertions for upserts on the
    /// key; sink into [`CompleteSink`](crate::sink::CompleteSink) for the whole table. State is
    /// one accumulator and one result per key, reported in
    /// [`JobReport::state`](crate::JobReport) as `running_aggregate` (by default; see
    /// [`KeyedStream::named`]).
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    /// use tideflow::{aggregate::Sum, sink::MemorySink, source::MemorySource, Change, Config};
    ///
    /// let rows = MemorySink::new();
    /// let output = rows.clone();
    /// let sales = vec![("tea", 3i64, 1_000u64), ("tea", 4, 2_000), ("jam", 5, 3_000)];
    /// tideflow::execute(Config::default(), move |flow| {
    ///     flow.source(MemorySource::new(sales.clone()).batch_size(1))
    ///         .with_event_time(|(_, _, ts)| *ts)
    ///         .with_watermark(Duration::ZERO)
    ///         .map(|(item, amount, _)| (item.to_string(), amount))
    ///         .into_keyed()
    ///         .running_aggregate(Sum::of(|amount: &i64| *amount))
    ///         .sink(output.clone());
    ///     Ok(())
    /// })?;
    /// let rows: Vec<(String, i64, Change)> =
    ///     rows.take().into_iter().map(|row| (row.key, row.value, row.change)).collect();
    /// assert_eq!(rows, vec![
    ///     ("tea".into(), 3, Change::Insert),
    ///     ("tea".into(), 3, Change::Retract),
    ///     ("tea".into(), 7, Change::Insert),
    ///     ("jam".into(), 5, Change::Insert),
    /// ]);
    /// # Ok::<(), tideflow::Error>(())
    /// ```
    pub fn running_aggregate<A>(self, aggregator: A) -> Stream<'scope, KeyedChange<K, A::Output>>
    where
        A: Aggregator<D>,
        A::Output: PartialEq,
    {
        let mut keyed = self;
        let config = keyed.state_config("running_aggregate", true);
        Stream {
            inner: keyed
                .inner
                .running_aggregate_core(aggregator, config)
                .changes,
            job: keyed.job,
        }
    }
}
