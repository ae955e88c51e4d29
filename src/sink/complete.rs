//! Complete output mode: the whole result table, again and again.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
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

/// Complete output mode (Spark's `outputMode("complete")`): keeps the result table of an
/// update-mode stream ([`WindowedStream::aggregate_updates`]) and hands the whole table to the
/// inner sink at each trigger: every `interval` of processing time while results change, and
/// once more when the input ends. Each table is one `write` call, sorted by (window start,
/// window end, key), its rows numbered by [`TableRow::batch`]; the last table holds exactly the
/// append-mode results. Closed windows stay in the table, as in Spark, so the table grows with
/// the number of windows seen.
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
pub struct CompleteSink<S, K, O> {
    inner: S,
    interval: Duration,
    /// Per (start, end, key): the latest value and whether it is final.
    table: BTreeMap<(u64, u64, K), (O, bool)>,
    changed: bool,
    last_table: Instant,
    batch: u64,
    rows: Vec<Event<TableRow<K, O>>>,
}

impl<S, K, O> CompleteSink<S, K, O> {
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

impl<S, K, O> CompleteSink<S, K, O>
where
    S: Sink<TableRow<K, O>>,
    K: Ord + Clone + 'static,
    O: Clone + 'static,
{
    /// Hands the whole table to the inner sink.
    fn write_table(&mut self, now: Instant) -> Result<(), Error> {
        let batch = self.batch;
        self.rows.extend(
            self.table
                .iter()
                .map(|((start, end, key), (value, is_final))| {
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
                }),
        );
        self.batch += 1;
        self.changed = false;
        self.last_table = now;
        let written = self.inner.write(&mut self.rows);
        self.rows.clear();
        written
    }
}

impl<S, K, O> Sink<WindowUpdate<K, O>> for CompleteSink<S, K, O>
where
    S: Sink<TableRow<K, O>>,
    K: Ord + Clone + 'static,
    O: Clone + 'static,
{
    fn write(&mut self, batch: &mut Vec<Event<WindowUpdate<K, O>>>) -> Result<(), Error> {
        for event in batch.drain(..) {
            let WindowUpdate { result, kind } = event.data;
            let window = (result.start, result.end, result.key);
            match kind {
                UpdateKind::Retract => {
                    self.table.remove(&window);
                }
                UpdateKind::Early => {
                    self.table.insert(window, (result.value, false));
                }
                UpdateKind::Final => {
                    self.table.insert(window, (result.value, true));
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
