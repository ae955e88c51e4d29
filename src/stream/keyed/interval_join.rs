//! Stream-stream interval joins: [`KeyedStream::interval_join`] and
//! [`KeyedStream::interval_join_left`].

use std::hash::Hash;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tideflow_operators::keyed::interval_join::{
    InnerJoin, IntervalJoin, JoinKind, Joined, LeftJoin,
};
use timely::ExchangeData;

use crate::duration::millis;
use crate::stream::{KeyedStream, Stream};

impl<'scope, K, A> KeyedStream<'scope, K, A>
where
    K: ExchangeData + Hash + Eq + Clone,
    A: ExchangeData + Clone,
{
    /// Joins each record `a` of this stream with every record `b` of `other` that has the same
    /// key and an event time in `[a.time - lower, a.time + upper]` (Flink's interval join).
    ///
    /// Each pair is a [`Joined`] row with event time the later of the two. Both streams are
    /// applied in stamp order once the watermarks of both pass, so the rows depend only on the
    /// input and its partitioning, not on worker count or timing: a pair joins iff the time
    /// condition holds and the record applied later finds the other still held. A record is
    /// held until the watermark passes the last time a partner can arrive on time
    /// (`a.time + upper`, `b.time + lower`), so state stays flat on an endless stream; a
    /// record behind its watermark joins only the partners still held. A record stamped past
    /// `time + lower + upper` can join nothing: it is dropped and counted in
    /// [`JobReport::late_dropped`](crate::JobReport). The records held (waiting for the
    /// watermark, and in state) are reported in [`JobReport::state`](crate::JobReport) as
    /// `interval_join`.
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    /// use tideflow::{sink::MemorySink, source::MemorySource, Config};
    ///
    /// // (ad, event time in ms)
    /// let views = vec![("ad-1", 1_000u64), ("ad-2", 1_500), ("ad-1", 9_000)];
    /// let clicks = vec![("ad-1", 1_800u64), ("ad-2", 8_000)];
    /// let rows = MemorySink::new();
    /// let output = rows.clone();
    /// let report = tideflow::execute(Config::workers(2), move |flow| {
    ///     let views = flow.source(MemorySource::new(views.clone()))
    ///         .with_event_time(|(_, t)| *t)
    ///         .with_watermark(Duration::ZERO)
    ///         .map(|(ad, t)| (ad.to_string(), t))
    ///         .into_keyed();
    ///     let clicks = flow.source(MemorySource::new(clicks.clone()))
    ///         .with_event_time(|(_, t)| *t)
    ///         .with_watermark(Duration::ZERO)
    ///         .map(|(ad, t)| (ad.to_string(), t))
    ///         .into_keyed();
    ///     // Clicks within 5 s after a view.
    ///     views.interval_join(clicks, Duration::ZERO, Duration::from_secs(5))
    ///         .map(|row| (row.key, row.left, row.right))
    ///         .sink(output.clone());
    ///     Ok(())
    /// })?;
    /// assert_eq!(rows.take(), vec![("ad-1".to_string(), 1_000, 1_800)]);
    /// assert_eq!(report.state["interval_join"].rows, 0); // everything expired at the end
    /// # Ok::<(), tideflow::Error>(())
    /// ```
    pub fn interval_join<B>(
        self,
        other: KeyedStream<'scope, K, B>,
        lower: Duration,
        upper: Duration,
    ) -> Stream<'scope, Joined<K, A, B>>
    where
        B: ExchangeData + Clone,
    {
        self.interval_join_kind(other, lower, upper, InnerJoin)
    }

    /// Like [`interval_join`](Self::interval_join), and every record of this stream that
    /// matched nothing is also emitted once, with `right: None`, when the watermark passes
    /// `a.time + upper` (and its own event time). A record of this stream too late to match
    /// anything is emitted with `None` at once (not counted as dropped); late records of
    /// `other` are dropped and counted.
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    /// use tideflow::{sink::MemorySink, source::MemorySource, Config};
    ///
    /// // (order id, event time in ms)
    /// let orders = vec![(1u32, 1_000u64), (2, 2_000)];
    /// let payments = vec![(1u32, 1_400u64), (2, 9_000)];
    /// let rows = MemorySink::new();
    /// let output = rows.clone();
    /// tideflow::execute(Config::default(), move |flow| {
    ///     let orders = flow.source(MemorySource::new(orders.clone()))
    ///         .with_event_time(|(_, t)| *t)
    ///         .with_watermark(Duration::ZERO)
    ///         .key_by(|(id, _)| *id);
    ///     let payments = flow.source(MemorySource::new(payments.clone()))
    ///         .with_event_time(|(_, t)| *t)
    ///         .with_watermark(Duration::ZERO)
    ///         .key_by(|(id, _)| *id);
    ///     // Paid within a second of ordering, or not.
    ///     orders.interval_join_left(payments, Duration::ZERO, Duration::from_secs(1))
    ///         .map(|row| (row.key, row.right.map(|(_, paid)| paid)))
    ///         .sink(output.clone());
    ///     Ok(())
    /// })?;
    /// let mut rows = rows.take();
    /// rows.sort();
    /// assert_eq!(rows, vec![(1, Some(1_400)), (2, None)]);
    /// # Ok::<(), tideflow::Error>(())
    /// ```
    pub fn interval_join_left<B>(
        self,
        other: KeyedStream<'scope, K, B>,
        lower: Duration,
        upper: Duration,
    ) -> Stream<'scope, Joined<K, A, Option<B>>>
    where
        B: ExchangeData + Clone,
    {
        self.interval_join_kind(other, lower, upper, LeftJoin)
    }

    /// The interval join of kind `kind`, its state gauged and its late records counted.
    fn interval_join_kind<B, J>(
        self,
        other: KeyedStream<'scope, K, B>,
        lower: Duration,
        upper: Duration,
        kind: J,
    ) -> Stream<'scope, J::Row>
    where
        B: ExchangeData + Clone,
        J: JoinKind<K, A, B>,
    {
        let mut keyed = self;
        let config = keyed.state_config("interval_join", true);
        let job = keyed.job;
        let counter = Rc::clone(&job);
        let on_late = move |late| {
            counter
                .shared
                .late_dropped
                .fetch_add(late, Ordering::Relaxed);
        };
        let inner = keyed.inner.interval_join_core(
            other.inner,
            millis(lower),
            millis(upper),
            kind,
            config,
            on_late,
        );
        Stream { inner, job }
    }
}
