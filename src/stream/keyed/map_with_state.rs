//! Arbitrary keyed state with event-time timers and a state TTL on [`KeyedStream`]: the API
//! over [`tideflow_operators::keyed::map_with_state`].

use std::hash::Hash;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;
use tideflow_operators::keyed::map_with_state::{MapWithState, StateContext, StateInput};
use timely::ExchangeData;

use crate::duration::millis;
use crate::stream::{KeyedStream, Stream};

impl<'scope, K, D> KeyedStream<'scope, K, D>
where
    K: ExchangeData + Hash + Eq + Clone,
    D: ExchangeData + Ord,
{
    /// Runs `logic` with state per key (Spark's `flatMapGroupsWithState`, Flink's
    /// `KeyedProcessFunction`): `logic(key, input, state, context)` is called with the key's
    /// records of each stamp ([`StateInput::Records`], sorted by event time, then by record),
    /// and for each of its timers that fires ([`StateInput::Timer`]). It may change `state`
    /// (`None` until set; set it to `None` to remove it), emit records and set or delete the
    /// key's event-time timers through `context` ([`StateContext`]). Returns what it emits,
    /// each record with the event time it was given (by default the step's time:
    /// [`StateContext::time`]).
    ///
    /// Records are applied in stamp order once the watermark passes their stamp; a timer at
    /// `t` fires once the watermark passes `t`: after the records stamped `t`, before any
    /// stamped later. So the output depends only on the input and its partitioning, not on the
    /// worker count or on batching. No record is late: one that arrived behind its
    /// partition's watermark is delivered at that watermark with its own event time. At the
    /// end of the input every pending timer fires. The keys held (with state or timers) are
    /// reported in [`JobReport::state`](crate::JobReport) as `"map_with_state"`. The rules in
    /// full are in [`tideflow_operators::keyed::map_with_state`].
    ///
    /// # Examples
    /// Sessions of clicks per user, closed by a timer 1 s after a user's last click:
    /// ```
    /// use std::time::Duration;
    /// use tideflow::{sink::MemorySink, source::MemorySource, Config, StateInput};
    ///
    /// #[derive(Clone, Copy, serde::Serialize, serde::Deserialize)]
    /// struct Session { start: u64, last: u64, clicks: u64 }
    ///
    /// let clicks: Vec<(String, u64)> = [("ann", 1_000), ("bob", 1_200), ("ann", 1_600), ("ann", 5_000)]
    ///     .into_iter()
    ///     .map(|(user, t)| (user.to_string(), t))
    ///     .collect();
    /// let sink = MemorySink::new();
    /// let output = sink.clone();
    /// tideflow::execute(Config::workers(2), move |flow| {
    ///     flow.source(MemorySource::new(clicks.clone()))
    ///         .with_event_time(|(_, t)| *t)
    ///         .with_watermark(Duration::from_millis(500))
    ///         .into_keyed()
    ///         .map_with_state(|user: &String, input, state: &mut Option<Session>, context| match input {
    ///             StateInput::Records(records) => {
    ///                 for record in records {
    ///                     let session = state.get_or_insert(Session { start: record.time, last: 0, clicks: 0 });
    ///                     session.last = session.last.max(record.time);
    ///                     session.clicks += 1;
    ///                 }
    ///                 context.delete_timers();
    ///                 context.set_timer(state.map_or(0, |s| s.last) + 1_000);
    ///             }
    ///             StateInput::Timer(_) => {
    ///                 if let Some(session) = state.take() {
    ///                     context.emit((user.clone(), session.start, session.last + 1_000, session.clicks));
    ///                 }
    ///             }
    ///             StateInput::Expired => {}
    ///         })
    ///         .sink(output.clone());
    ///     Ok(())
    /// })?;
    /// let mut sessions = sink.take();
    /// sessions.sort();
    /// assert_eq!(sessions, vec![
    ///     ("ann".to_string(), 1_000, 2_600, 2),
    ///     ("ann".to_string(), 5_000, 6_000, 1),
    ///     ("bob".to_string(), 1_200, 2_200, 1),
    /// ]);
    /// # Ok::<(), tideflow::Error>(())
    /// ```
    pub fn map_with_state<S, O>(
        self,
        logic: impl FnMut(&K, StateInput<'_, D>, &mut Option<S>, &mut StateContext<'_, O>) + 'static,
    ) -> Stream<'scope, O>
    where
        S: Serialize + DeserializeOwned + 'static,
        O: Clone + Serialize + DeserializeOwned + 'static,
    {
        self.map_with_state_core(None, logic)
    }

    /// Like [`map_with_state`](Self::map_with_state), with a state TTL in event time: a key's
    /// state that no call with records or a timer touched for `ttl` expires when the
    /// watermark passes its last touch plus `ttl`. `logic` is then called with
    /// [`StateInput::Expired`] (it may emit a last record), and the state is removed, so a key
    /// that comes back starts afresh (with `None`). Records stamped exactly at the last touch
    /// plus `ttl` still find the state. Timers are not affected. At the end of the input every
    /// state expires.
    ///
    /// # Examples
    /// Each user's clicks are counted until the user has been idle for 2 s; the count is
    /// emitted when the state expires:
    /// ```
    /// use std::time::Duration;
    /// use tideflow::{sink::MemorySink, source::MemorySource, Config, StateInput};
    ///
    /// let clicks: Vec<(String, u64)> = [("ann", 1_000), ("ann", 2_500), ("bob", 3_000), ("ann", 7_000)]
    ///     .into_iter()
    ///     .map(|(user, t)| (user.to_string(), t))
    ///     .collect();
    /// let sink = MemorySink::new();
    /// let output = sink.clone();
    /// let report = tideflow::execute(Config::default(), move |flow| {
    ///     flow.source(MemorySource::new(clicks.clone()))
    ///         .with_event_time(|(_, t)| *t)
    ///         .with_watermark(Duration::ZERO)
    ///         .into_keyed()
    ///         .map_with_state_ttl(Duration::from_secs(2), |user: &String, input, count: &mut Option<u64>, context| {
    ///             match input {
    ///                 StateInput::Records(records) => *count.get_or_insert(0) += records.len() as u64,
    ///                 StateInput::Expired => context.emit((user.clone(), count.unwrap_or(0))),
    ///                 StateInput::Timer(_) => {}
    ///             }
    ///         })
    ///         .sink(output.clone());
    ///     Ok(())
    /// })?;
    /// // Expired at 4_500 (2_500 + 2 s), 5_000 and 9_000: ann's click at 7_000 starts afresh.
    /// assert_eq!(sink.take(), vec![("ann".to_string(), 2), ("bob".to_string(), 1), ("ann".to_string(), 1)]);
    /// assert_eq!(report.state["map_with_state"].rows, 0);
    /// # Ok::<(), tideflow::Error>(())
    /// ```
    pub fn map_with_state_ttl<S, O>(
        self,
        ttl: Duration,
        logic: impl FnMut(&K, StateInput<'_, D>, &mut Option<S>, &mut StateContext<'_, O>) + 'static,
    ) -> Stream<'scope, O>
    where
        S: Serialize + DeserializeOwned + 'static,
        O: Clone + Serialize + DeserializeOwned + 'static,
    {
        self.map_with_state_core(Some(millis(ttl)), logic)
    }

    fn map_with_state_core<S, O>(
        self,
        ttl: Option<u64>,
        logic: impl FnMut(&K, StateInput<'_, D>, &mut Option<S>, &mut StateContext<'_, O>) + 'static,
    ) -> Stream<'scope, O>
    where
        S: Serialize + DeserializeOwned + 'static,
        O: Clone + Serialize + DeserializeOwned + 'static,
    {
        let mut keyed = self;
        let config = keyed.state_config("map_with_state", true);
        let KeyedStream { inner, job, .. } = keyed;
        let streams = inner.map_with_state_core(ttl, logic, config);
        Stream {
            inner: streams.output,
            job,
        }
    }
}
