//! Named state on [`KeyedStream`]: the id of the stateful operator built on a stream, which
//! names its state in [`JobReport::state`](crate::JobReport) and in snapshots.

use tideflow_operators::stateful::StateConfig;

use crate::stream::KeyedStream;

impl<K: 'static, D: 'static> KeyedStream<'_, K, D> {
    /// Names the stateful operator built on this stream (a window, running aggregate, dedup,
    /// interval join, `map_with_state` or static join): its state is reported in
    /// [`JobReport::state`](crate::JobReport) under `name`, and snapshots keep it under
    /// `name`: a job resumes a snapshot only if its stateful operators have the snapshot's
    /// names and kinds, in whatever order it builds them. By default, an
    /// operator is named by its kind (`tumbling`, `running_aggregate`, ...), then `kind#2`,
    /// `kind#3`... for later ones of the kind, in the order the job builds them. Two operators
    /// of a job with the same name stop it when it is built. An interval join takes the name of
    /// the stream it is called on.
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    /// use tideflow::{aggregate::Count, sink::MemorySink, source::MemorySource, Config};
    ///
    /// let orders = vec![("shop-1".to_string(), 1_000u64), ("shop-2".to_string(), 2_000)];
    /// let report = tideflow::execute(Config::default(), move |flow| {
    ///     flow.source(MemorySource::new(orders.clone()))
    ///         .with_event_time(|(_, t)| *t)
    ///         .with_watermark(Duration::ZERO)
    ///         .key_by(|(shop, _)| shop.clone())
    ///         .named("orders-per-shop")
    ///         .running_aggregate(Count)
    ///         .sink(MemorySink::new());
    ///     Ok(())
    /// })?;
    /// assert_eq!(report.state["orders-per-shop"].peak, 2);
    /// # Ok::<(), tideflow::Error>(())
    /// ```
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// The state configuration of the operator of kind `kind` built on this stream (its
    /// snapshot port too if `snapshots`), under its name.
    pub(crate) fn state_config(&mut self, kind: &'static str, snapshots: bool) -> StateConfig {
        self.job.state_config(kind, self.name.take(), snapshots)
    }
}
