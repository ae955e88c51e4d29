//! Stream-static joins (enrichment, Spark's stream-static join):
//! [`Flow::static_table`](crate::Flow::static_table) (in `flow.rs`) reads a bounded source to its
//! end and arranges its rows once, by key, with differential dataflow, as a [`StaticTable`];
//! [`KeyedStream::join_static`] and [`KeyedStream::join_static_left`] look each record up in
//! it. The API over [`tideflow_operators::keyed::static_join`].

use std::fmt::Debug;
use std::hash::Hash;

use tideflow_operators::keyed::interval_join::{InnerJoin, JoinKind, Joined, LeftJoin};
use tideflow_operators::keyed::static_join::{ArrangedTable, StaticJoin};
use timely::ExchangeData;

use crate::stream::{KeyedStream, Stream};

/// A static table of `(K, V)` rows, arranged by key and spread over the workers by
/// [`key_hash`](tideflow_operators::key_hash) of the key, made by
/// [`Flow::static_table`](crate::Flow::static_table). Clone it to join several streams with the
/// one arrangement.
pub struct StaticTable<'scope, K: Ord + Clone + 'static, V: Ord + Clone + 'static> {
    pub(crate) table: ArrangedTable<'scope, K, V>,
}

impl<K, V> Clone for StaticTable<'_, K, V>
where
    K: Ord + Clone + 'static,
    V: Ord + Clone + 'static,
{
    fn clone(&self) -> Self {
        StaticTable {
            table: self.table.clone(),
        }
    }
}

impl<'scope, K, D> KeyedStream<'scope, K, D>
where
    K: ExchangeData + Hash + Ord + Debug + Clone,
    D: ExchangeData + Clone,
{
    /// Joins each record with every row of `table` that has its key (Spark's stream-static
    /// inner join): a [`Joined`] row `{ key, left: record, right: value }` per table row, so a
    /// key with several rows gives several rows, and a record whose key is not in the table
    /// is dropped.
    ///
    /// Records wait until the whole table is loaded (its source has ended on every worker),
    /// then are looked up in the arrangement; they are not kept. Joined rows keep their
    /// record's event time and stamp, so watermarks and windows downstream are as without the
    /// join, and the result does not depend on when the table finished loading. The table's
    /// rows held per worker (and the records waiting for it) are reported in
    /// [`JobReport::state`](crate::JobReport) as `static_join`; the table is let go when the
    /// stream ends.
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    /// use tideflow::{aggregate::Sum, sink::MemorySink, source::MemorySource, Config, Window};
    ///
    /// // (customer, segment), and orders (customer, cents, event time).
    /// let customers = vec![(1u32, "gold".to_string()), (2, "basic".to_string()), (3, "gold".to_string())];
    /// let orders = vec![(1u32, 500i64, 1_000u64), (2, 200, 1_500), (3, 300, 2_000), (4, 900, 2_500)];
    /// let totals = MemorySink::new();
    /// let output = totals.clone();
    /// let report = tideflow::execute(Config::workers(2), move |flow| {
    ///     let customers = flow.static_table(MemorySource::new(customers.clone()));
    ///     flow.source(MemorySource::new(orders.clone()))
    ///         .with_event_time(|(_, _, t)| *t)
    ///         .with_watermark(Duration::ZERO)
    ///         .key_by(|(customer, _, _)| *customer)
    ///         .join_static(customers)
    ///         .key_by(|row| row.right.clone()) // the segment
    ///         .window(Window::tumbling(Duration::from_secs(10))?)
    ///         .aggregate(Sum::of(|row: &tideflow::Joined<u32, (u32, i64, u64), String>| row.left.1))
    ///         .sink(output.clone());
    ///     Ok(())
    /// })?;
    /// let mut totals: Vec<(String, i64)> = totals.take().into_iter().map(|r| (r.key, r.value)).collect();
    /// totals.sort();
    /// // Customer 4 is not in the table: its order is dropped.
    /// assert_eq!(totals, vec![("basic".to_string(), 200), ("gold".to_string(), 800)]);
    /// let state = report.state["static_join"];
    /// // The table's 3 rows (and any records that waited for it); let go when the stream ended.
    /// assert!(state.peak >= 3 && state.rows == 0);
    /// # Ok::<(), tideflow::Error>(())
    /// ```
    pub fn join_static<V>(self, table: StaticTable<'scope, K, V>) -> Stream<'scope, Joined<K, D, V>>
    where
        V: ExchangeData + Ord + Debug + Clone,
    {
        self.join_static_kind(table, InnerJoin)
    }

    /// Like [`join_static`](Self::join_static), and each record whose key is not in the
    /// table leaves once, with `right: None` (Spark's left outer stream-static join).
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    /// use tideflow::{sink::MemorySink, source::MemorySource, Config};
    ///
    /// let names = vec![("ann".to_string(), "Ann Lee".to_string())];
    /// let clicks = vec![("ann".to_string(), 1_000u64), ("bob".to_string(), 2_000)];
    /// let rows = MemorySink::new();
    /// let output = rows.clone();
    /// tideflow::execute(Config::default(), move |flow| {
    ///     let names = flow.static_table(MemorySource::new(names.clone()));
    ///     flow.source(MemorySource::new(clicks.clone()))
    ///         .with_event_time(|(_, t)| *t)
    ///         .with_watermark(Duration::ZERO)
    ///         .into_keyed()
    ///         .join_static_left(names)
    ///         .map(|row| (row.key, row.left, row.right))
    ///         .sink(output.clone());
    ///     Ok(())
    /// })?;
    /// let mut rows = rows.take();
    /// rows.sort();
    /// assert_eq!(rows, vec![
    ///     ("ann".to_string(), 1_000, Some("Ann Lee".to_string())),
    ///     ("bob".to_string(), 2_000, None),
    /// ]);
    /// # Ok::<(), tideflow::Error>(())
    /// ```
    pub fn join_static_left<V>(
        self,
        table: StaticTable<'scope, K, V>,
    ) -> Stream<'scope, Joined<K, D, Option<V>>>
    where
        V: ExchangeData + Ord + Debug + Clone,
    {
        self.join_static_kind(table, LeftJoin)
    }

    /// The static join of kind `kind`, its state gauged.
    fn join_static_kind<V, J>(
        self,
        table: StaticTable<'scope, K, V>,
        kind: J,
    ) -> Stream<'scope, J::Row>
    where
        V: ExchangeData + Ord + Debug + Clone,
        J: JoinKind<K, D, V>,
    {
        let mut keyed = self;
        // The join keeps no state in snapshots: the table is read again when a job resumes.
        let config = keyed.state_config("static_join", false);
        let KeyedStream { inner, job, .. } = keyed;
        let joined = inner.join_static_core(table.table, kind, config).joined;
        Stream { inner: joined, job }
    }
}
