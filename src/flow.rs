//! The build handle [`Flow`]: what a job's build function gets on each worker, where sources
//! ([`Flow::source`]) and static tables ([`Flow::static_table`]) start, and the live count of
//! records read ([`RecordsInHandle`]).
//!
//! It sits above the stream API (`stream/`) and the sources (`source/`), whose builders it
//! returns, and below the runtime (`runtime.rs`), which makes one per worker
//! (docs/ARCHITECTURE.md "Layers").

use std::fmt::Debug;
use std::hash::Hash;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use differential_dataflow::AsCollection;
use tideflow_operators::keyed::static_join::ArrangedTable;
use timely::dataflow::Scope;
use timely::ExchangeData;

use crate::context::SharedJob;
use crate::source::{read_table, Source, SourceBuilder};
use crate::stream::StaticTable;
use crate::worker::WorkerJob;

/// The handle a job's build function gets on each worker: sources start here.
///
/// A `Flow` is created once per worker; the build function runs on every worker and must build
/// the same dataflow on each (sources pick their worker's share of the input themselves).
pub struct Flow<'scope> {
    pub(crate) scope: Scope<'scope, u64>,
    pub(crate) job: Rc<WorkerJob>,
}

impl<'scope> Flow<'scope> {
    /// This worker's index, from 0 to `peers() - 1`.
    pub fn worker_index(&self) -> usize {
        self.job.index
    }

    /// The number of workers in the job.
    pub fn peers(&self) -> usize {
        self.job.peers
    }

    /// The timely scope, for building raw timely operators next to Tideflow's.
    pub fn scope(&self) -> Scope<'scope, u64> {
        self.scope
    }

    /// A handle on the number of records the job's sources have read so far (on every worker
    /// of this process), to show live figures from inside a sink while the job runs; the
    /// final figure is [`JobReport::records_in`](crate::JobReport::records_in).
    pub fn records_in(&self) -> RecordsInHandle {
        RecordsInHandle(Arc::clone(&self.job.shared))
    }

    /// Starts a stream from `source`, read in parallel by every worker.
    pub fn source<S: Source>(&mut self, source: S) -> SourceBuilder<'_, 'scope, S> {
        SourceBuilder::new(&mut self.scope, &self.job, source)
    }

    /// Reads `source`, a bounded source of `(key, value)` rows, to its end as a static table
    /// for [`KeyedStream::join_static`](crate::KeyedStream::join_static): the rows are arranged
    /// once, by key, in a differential arrangement (rows with the same key are all kept, and a
    /// row given twice joins twice). Every worker reads its share of the source, as for a
    /// stream; the rows are not counted as records read. No record is joined before the whole
    /// table is loaded, so a source that never ends (a watched directory, a socket) holds the
    /// joined stream back for ever; an error from the source stops the job.
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    /// use tideflow::{sink::MemorySink, source::MemorySource, Config};
    ///
    /// // Cents per unit of each currency, and (currency, amount, event time) payments.
    /// let rates = vec![("EUR".to_string(), 108u64), ("GBP".to_string(), 127)];
    /// let payments = vec![("EUR".to_string(), 100u64, 1_000u64), ("GBP".to_string(), 10, 2_000)];
    /// let cents = MemorySink::new();
    /// let output = cents.clone();
    /// tideflow::execute(Config::workers(2), move |flow| {
    ///     let rates = flow.static_table(MemorySource::new(rates.clone()));
    ///     flow.source(MemorySource::new(payments.clone()))
    ///         .with_event_time(|(_, _, t)| *t)
    ///         .with_watermark(Duration::ZERO)
    ///         .key_by(|(currency, _, _)| currency.clone())
    ///         .join_static(rates)
    ///         .map(|row| (row.key, row.left.1 * row.right))
    ///         .sink(output.clone());
    ///     Ok(())
    /// })?;
    /// let mut cents = cents.take();
    /// cents.sort();
    /// assert_eq!(cents, vec![("EUR".to_string(), 10_800), ("GBP".to_string(), 1_270)]);
    /// # Ok::<(), tideflow::Error>(())
    /// ```
    pub fn static_table<S, K, V>(&mut self, source: S) -> StaticTable<'scope, K, V>
    where
        S: Source<Item = (K, V)>,
        K: ExchangeData + Hash + Ord + Debug + Clone,
        V: ExchangeData + Ord + Debug + Clone,
    {
        self.static_table_core(source, Some)
    }

    /// Like [`static_table`](Self::static_table), for a source of any records: `row` turns
    /// each record into a `(key, value)` row, or `None` to leave it out of the table (a row
    /// whose key can match nothing, say).
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    /// use tideflow::{sink::MemorySink, source::{FileSource, JsonLines}, Config};
    ///
    /// #[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
    /// struct Customer { id: Option<u32>, segment: String }
    ///
    /// let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("customers.jsonl");
    /// std::fs::write(&path, "{\"id\":1,\"segment\":\"gold\"}\n{\"id\":null,\"segment\":\"?\"}\n")?;
    /// let rows = MemorySink::new();
    /// let output = rows.clone();
    /// tideflow::execute(Config::default(), move |flow| {
    ///     let customers = flow.static_table_core(
    ///         FileSource::new(&path, JsonLines::<Customer>::serde()),
    ///         |customer: Customer| Some((customer.id?, customer.segment)),
    ///     );
    ///     flow.source(tideflow::source::MemorySource::new(vec![(1u32, 500u64), (2, 600)]))
    ///         .with_event_time(|(_, t)| *t)
    ///         .with_watermark(Duration::ZERO)
    ///         .key_by(|(customer, _)| *customer)
    ///         .join_static_left(customers)
    ///         .map(|row| (row.key, row.right))
    ///         .sink(output.clone());
    ///     Ok(())
    /// })?;
    /// let mut rows = rows.take();
    /// rows.sort();
    /// assert_eq!(rows, vec![(1, Some("gold".to_string())), (2, None)]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn static_table_core<S, K, V>(
        &mut self,
        source: S,
        row: impl FnMut(S::Item) -> Option<(K, V)> + 'static,
    ) -> StaticTable<'scope, K, V>
    where
        S: Source,
        K: ExchangeData + Hash + Ord + Debug + Clone,
        V: ExchangeData + Ord + Debug + Clone,
    {
        let rows = read_table(self.scope, &self.job, source, row).as_collection();
        StaticTable {
            table: ArrangedTable::arrange(rows),
        }
    }
}

/// A live count of the records a job's sources have read in this process, from
/// [`Flow::records_in`]; it can be cloned and sent to any thread.
#[derive(Clone)]
pub struct RecordsInHandle(Arc<SharedJob>);

impl RecordsInHandle {
    /// The records read so far.
    pub fn get(&self) -> u64 {
        self.0.records_in.load(Ordering::Relaxed)
    }
}
