//! Deduplication within a time bound on [`KeyedStream`]: the API over
//! [`tideflow_operators::keyed::dedup`].

use std::hash::Hash;
use std::time::Duration;

use tideflow_operators::keyed::dedup::{DedupStreams, DedupWithin};
use timely::ExchangeData;

use crate::duration::millis;
use crate::stream::{drop_late, KeyedStream, Stream};

impl<'scope, K, D> KeyedStream<'scope, K, D>
where
    K: ExchangeData + Hash + Eq + Clone,
    D: ExchangeData + Ord,
{
    /// Drops records whose key (their id) was kept within `bound` of event time, like Spark's
    /// `dropDuplicatesWithinWatermark`: a record is kept unless a record with the same key,
    /// kept at event time `t0`, is still in state, which it is until the watermark passes
    /// `t0 + bound`; then the key may be kept again. A kept record leaves once the watermark
    /// passes its stamp, with its own event time.
    ///
    /// Records are applied in the order of their stamps (a record's stamp is its event time,
    /// or its partition's watermark if it arrived behind it), so the kept set depends only on
    /// the input and its partitioning, not on the worker count or on batching. Of several new
    /// records of one key with the same stamp, the one with the smallest event time, then the
    /// smallest record (`D: Ord`), is kept. A record stamped past its own `t + bound` would find
    /// expired state (as in Spark, which drops records behind the watermark): it is dropped and
    /// counted in [`JobReport::late_dropped`](crate::JobReport). The live ids are reported in
    /// [`JobReport::state`](crate::JobReport) as `"dedup"`.
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    /// use tideflow::{sink::MemorySink, source::MemorySource, Config};
    ///
    /// // (id, event time): a retry of "a" 400 ms later, and "a" again 5 s later.
    /// let clicks: Vec<(String, u64)> = [("a", 1_000), ("b", 1_100), ("a", 1_400), ("a", 6_000), ("b", 300)]
    ///     .into_iter()
    ///     .map(|(id, t)| (id.to_string(), t))
    ///     .collect();
    /// let sink = MemorySink::new();
    /// let output = sink.clone();
    /// let report = tideflow::execute(Config::workers(2), move |flow| {
    ///     flow.source(MemorySource::new(clicks.clone()))
    ///         .with_event_time(|(_, t)| *t)
    ///         .with_watermark(Duration::from_millis(200))
    ///         .key_by(|(id, _)| id.clone())
    ///         .dedup_within(Duration::from_secs(1))
    ///         .sink(output.clone());
    ///     Ok(())
    /// })?;
    /// let mut kept: Vec<(String, u64)> = sink.take().into_iter().map(|(id, (_, t))| (id, t)).collect();
    /// kept.sort();
    /// assert_eq!(kept, vec![("a".into(), 1_000), ("a".into(), 6_000), ("b".into(), 1_100)]);
    /// // "b" at 300 arrived behind watermark 5_800, past 300 + 1 s: late.
    /// assert_eq!(report.late_dropped, 1);
    /// assert_eq!(report.state["dedup"].peak, 2);
    /// # Ok::<(), tideflow::Error>(())
    /// ```
    pub fn dedup_within(self, bound: Duration) -> Stream<'scope, (K, D)> {
        let mut keyed = self;
        let config = keyed.state_config("dedup", true);
        let KeyedStream { inner, job, .. } = keyed;
        let DedupStreams { kept, late, .. } = inner.dedup_within_core(millis(bound), config);
        drop_late(&job, late, |_| 1);
        Stream { inner: kept, job }
    }
}
