//! Complete output mode: the whole result table, again and again.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tideflow_operators::keyed::running::{Change, KeyedChange};
use tideflow_operators::window::{UpdateKind, WindowResult, WindowUpdate};
use tideflow_operators::Event;

use super::{Parallelism, Sink, SinkContext};
use crate::error::Error;

/// One row of a complete-mode table.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TableRow<K, O> {
    /// The table this row belongs to: 0 for the first one written, then 1, 2, ...
    pub batch: u64,
    /// The window and its result.
    pub result: WindowResult<K, O>,
    /// Whether the window has closed (its value no longer changes).
    pub is_final: bool,
}

/// One row of a complete-mode table of running aggregates.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct KeyTableRow<K, O> {
    /// The table this row belongs to: 0 for the first one written, then 1, 2, ...
    pub batch: u64,
    /// The key.
    pub key: K,
    /// Its result.
    pub value: O,
}

/// A change to a result table, as complete mode folds it: update-mode window rows
/// ([`WindowUpdate`], one table row per (window, key)) and running-aggregate changes
/// ([`KeyedChange`], one table row per key).
pub trait TableChange: 'static {
    /// What identifies a table row; the table is written in its order.
    type Key: Ord + Clone + 'static;
    /// What the table keeps per row.
    type Value: Clone + 'static;
    /// A row as the inner sink receives it.
    type Row: 'static;
    /// The row this change is about, and its new value, or `None` to delete it.
    fn into_entry(self) -> (Self::Key, Option<Self::Value>);
    /// The row of table number `batch` for `key` holding `value`.
    fn row(batch: u64, key: &Self::Key, value: &Self::Value) -> Event<Self::Row>;
}

impl<K: Ord + Clone + 'static, O: Clone + 'static> TableChange for WindowUpdate<K, O> {
    /// (window start, window end, key).
    type Key = (u64, u64, K);
    /// The result and whether it is final.
    type Value = (O, bool);
    type Row = TableRow<K, O>;

    fn into_entry(self) -> (Self::Key, Option<Self::Value>) {
        let WindowUpdate { result, kind } = self;
        let window = (result.start, result.end, result.key);
        match kind {
            UpdateKind::Retract => (window, None),
            UpdateKind::Early => (window, Some((result.value, false))),
            UpdateKind::Final => (window, Some((result.value, true))),
        }
    }

    fn row(
        batch: u64,
        (start, end, key): &Self::Key,
        (value, is_final): &Self::Value,
    ) -> Event<Self::Row> {
        let result = WindowResult {
            key: key.clone(),
            start: *start,
            end: *end,
            value: value.clone(),
        };
        Event::new(
            end - 1,
            TableRow {
                batch,
                result,
                is_final: *is_final,
            },
        )
    }
}

impl<K: Ord + Clone + 'static, O: Clone + 'static> TableChange for KeyedChange<K, O> {
    type Key = K;
    type Value = O;
    type Row = KeyTableRow<K, O>;

    fn into_entry(self) -> (K, Option<O>) {
        match self.change {
            Change::Retract => (self.key, None),
            Change::Insert => (self.key, Some(self.value)),
        }
    }

    fn row(batch: u64, key: &K, value: &O) -> Event<Self::Row> {
        Event::new(
            0,
            KeyTableRow {
                batch,
                key: key.clone(),
                value: value.clone(),
            },
        )
    }
}

/// Complete output mode (Spark's `outputMode("complete")`): keeps the result table of an
/// update-mode stream ([`WindowedStream::aggregate_updates`], or a running aggregate's
/// changelog, [`KeyedStream::running_aggregate`]) and hands the whole table to the inner sink
/// at each trigger: every `interval` of processing time while results change, and once more
/// when the input ends. Each table is one `write` call, sorted by its rows' keys ((window
/// start, window end, key) for windows), numbered by its rows' `batch`; the last window table
/// holds exactly the append-mode results. Closed windows stay in the table, as in Spark, so
/// the table grows with the number of windows seen.
///
/// [`KeyedStream::running_aggregate`]: crate::KeyedStream::running_aggregate
///
/// Runs on worker 0, which receives every row.
///
/// [`WindowedStream::aggregate_updates`]: crate::WindowedStream::aggregate_updates
///
/// # Examples
/// ```
/// use std::time::Duration;
/// use tideflow::sink::{CompleteSink, MemorySink};
/// use tideflow::{aggregate::Count, source::MemorySource, Config, Window};
///
/// let tables = MemorySink::new();
/// let output = tables.clone();
/// tideflow::execute(Config::default(), move |flow| {
///     flow.source(MemorySource::new(vec![1_000u64, 2_000, 15_000]))
///         .with_event_time(|t| *t)
///         .with_watermark(Duration::ZERO)
///         .key_by(|_| "all".to_string())
///         .window(Window::tumbling(Duration::from_secs(10))?)
///         .aggregate_updates(Count)
///         .sink(CompleteSink::new(Duration::from_secs(1), output.clone()));
///     Ok(())
/// })?;
/// let rows = tables.take();
/// let last = rows.iter().map(|row| row.batch).max().unwrap();
/// let table: Vec<(u64, u64)> = rows
///     .iter()
///     .filter(|row| row.batch == last)
///     .map(|row| (row.result.start, row.result.value))
///     .collect();
/// assert_eq!(table, vec![(0, 2), (10_000, 1)]);
/// # Ok::<(), tideflow::Error>(())
/// ```
pub struct CompleteSink<S, C: TableChange> {
    inner: S,
    interval: Duration,
    table: BTreeMap<C::Key, C::Value>,
    changed: bool,
    last_table: Instant,
    batch: u64,
    rows: Vec<Event<C::Row>>,
}

impl<S, C: TableChange> CompleteSink<S, C> {
    /// Writes the whole table to `inner` every `interval` while it changes, and at the end.
    pub fn new(interval: Duration, inner: S) -> Self {
        CompleteSink {
            inner,
            interval,
            table: BTreeMap::new(),
            changed: false,
            last_table: Instant::now(),
            batch: 0,
            rows: Vec::new(),
        }
    }
}

impl<S: Sink<C::Row>, C: TableChange> CompleteSink<S, C> {
    /// Hands the whole table to the inner sink.
    fn write_table(&mut self, now: Instant) -> Result<(), Error> {
        let batch = self.batch;
        self.rows.extend(
            self.table
                .iter()
                .map(|(key, value)| C::row(batch, key, value)),
        );
        self.batch += 1;
        self.changed = false;
        self.last_table = now;
        let written = self.inner.write(&mut self.rows);
        self.rows.clear();
        written
    }
}

impl<S: Sink<C::Row>, C: TableChange> Sink<C> for CompleteSink<S, C> {
    fn write(&mut self, batch: &mut Vec<Event<C>>) -> Result<(), Error> {
        for event in batch.drain(..) {
            match event.data.into_entry() {
                (key, None) => {
                    self.table.remove(&key);
                }
                (key, Some(value)) => {
                    self.table.insert(key, value);
                }
            }
            self.changed = true;
        }
        Ok(())
    }

    fn on_start(&mut self, context: &SinkContext) -> Result<(), Error> {
        self.last_table = Instant::now();
        self.inner.on_start(context)
    }

    fn on_watermark(&mut self, watermark: u64) -> Result<(), Error> {
        self.inner.on_watermark(watermark)
    }

    fn on_tick(&mut self, now: Instant) -> Result<Option<Duration>, Error> {
        if !self.changed {
            return Ok(None);
        }
        let since = now.saturating_duration_since(self.last_table);
        if since >= self.interval {
            self.write_table(now)?;
            return Ok(None);
        }
        Ok(Some(self.interval - since))
    }

    fn on_close(&mut self) -> Result<(), Error> {
        self.write_table(Instant::now())?;
        self.inner.on_close()
    }

    fn parallelism(&self) -> Parallelism {
        Parallelism::Single
    }
}
