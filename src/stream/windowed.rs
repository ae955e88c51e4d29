//! [`WindowedStream`]: a keyed stream grouped into windows (a [`Window`] spec), and its
//! aggregations into window rows, in append or update mode, with late records dropped and
//! counted or routed to a stream of their own ([`ResultsAndLate`]).

use std::hash::Hash;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tideflow_operators::aggregate::Aggregator;
use tideflow_operators::stateful::StateConfig;
use tideflow_operators::window::{
    fold_locally, Folding, LateRecord, SessionWindow, SlidingWindow, TumblingWindow, WindowResult,
    WindowRow, WindowStreams, WindowUpdate,
};
use tideflow_operators::Event;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::{Inspect, Operator};
use timely::dataflow::StreamVec;
use timely::ExchangeData;

use crate::context::{count_window, WindowCount};
use crate::duration::millis;
use crate::stream::{KeyedStream, Stream};
use crate::window::Window;
use crate::worker::WorkerJob;

/// The window rows (results in append mode, [`WindowUpdate`]s in update mode) and the late
/// records of [`WindowedStream::aggregate_with_late`] and
/// [`WindowedStream::aggregate_updates_with_late`].
pub type ResultsAndLate<'scope, K, D, R> = (Stream<'scope, R>, Stream<'scope, LateRecord<K, D>>);

/// A keyed stream grouped into windows.
pub struct WindowedStream<'scope, K, D> {
    pub(super) keyed: KeyedStream<'scope, K, D>,
    pub(super) window: Window,
    pub(super) lateness: u64,
}

impl<'scope, K, D> WindowedStream<'scope, K, D>
where
    K: ExchangeData + Hash + Eq + Clone,
    D: ExchangeData,
{
    /// Keeps each window open for records stamped up to `lateness` after its end (Flink's
    /// `allowedLateness`): a window's result leaves once, when the watermark passes
    /// `window_end + lateness`, and includes the records that arrived late but within it. By
    /// default, zero.
    pub fn allowed_lateness(mut self, lateness: Duration) -> Self {
        self.lateness = millis(lateness);
        self
    }

    /// Names the window operator, as [`KeyedStream::named`] does. By default, it is named by
    /// its kind (`tumbling`, `sliding`, `sliding-update` in update mode, `session`), then
    /// `kind#2`, ... for later ones.
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.keyed.name = Some(name.into());
        self
    }

    /// Aggregates each key's records per window with `aggregator` (a built-in such as
    /// [`Count`](crate::aggregate::Count), a tuple of several, or your own
    /// [`Aggregator`]). A window's result leaves as soon as the watermark passes its end (plus
    /// the allowed lateness) and carries event time `window_end - 1`. Records that arrive after
    /// every window they belong to has closed are dropped and counted in
    /// [`JobReport::late_dropped`](crate::JobReport).
    ///
    /// With several workers, tumbling and sliding windows aggregate in two phases: each worker
    /// folds the records it read per key and stamp, and the key's worker merges these
    /// accumulators ([`Aggregator::merge`], which must therefore give what adding the other's
    /// records would have, in any order).
    pub fn aggregate<A: Aggregator<D>>(
        self,
        aggregator: A,
    ) -> Stream<'scope, WindowResult<K, A::Output>> {
        self.rows(aggregator)
    }

    /// Aggregates like [`aggregate`](Self::aggregate), in update mode: each time the watermark
    /// advances, an early row ([`UpdateKind::Early`](crate::UpdateKind)) for every (key, window)
    /// whose result changed, and when a window closes its final row
    /// ([`UpdateKind::Final`](crate::UpdateKind)). With allowed lateness, records that arrive
    /// after the window's end but within the lateness produce corrected early rows. A session
    /// that grows or merges makes its earlier rows obsolete: a [`UpdateKind::Retract`] row
    /// deletes each. Upserting the rows on (key, start, end), and deleting retracted ones, gives
    /// exactly the [`aggregate`](Self::aggregate) results once the input ends.
    ///
    /// [`UpdateKind::Retract`]: crate::UpdateKind::Retract
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    /// use tideflow::{aggregate::Count, sink::MemorySink, source::MemorySource, Config, Window};
    ///
    /// let rows = MemorySink::new();
    /// let output = rows.clone();
    /// tideflow::execute(Config::default(), move |flow| {
    ///     flow.source(MemorySource::new(vec![1_000u64, 2_000, 3_000]).batch_size(1))
    ///         .with_event_time(|t| *t)
    ///         .with_watermark(Duration::ZERO)
    ///         .key_by(|_| "all".to_string())
    ///         .window(Window::tumbling(Duration::from_secs(10))?)
    ///         .aggregate_updates(Count)
    ///         .sink(output.clone());
    ///     Ok(())
    /// })?;
    /// let rows = rows.take();
    /// // Early counts as the watermark moves through the window, then the final count.
    /// let last = rows.last().unwrap();
    /// assert!(last.is_final() && last.result.value == 3);
    /// assert!(rows.len() > 1 && rows[..rows.len() - 1].iter().all(|row| !row.is_final()));
    /// # Ok::<(), tideflow::Error>(())
    /// ```
    pub fn aggregate_updates<A: Aggregator<D>>(
        self,
        aggregator: A,
    ) -> Stream<'scope, WindowUpdate<K, A::Output>> {
        self.rows(aggregator)
    }

    /// Update-mode rows like [`aggregate_updates`](Self::aggregate_updates), and the late
    /// records like [`aggregate_with_late`](Self::aggregate_with_late).
    pub fn aggregate_updates_with_late<A: Aggregator<D>>(
        self,
        aggregator: A,
    ) -> ResultsAndLate<'scope, K, D, WindowUpdate<K, A::Output>> {
        self.rows_with_late(aggregator)
    }

    /// The rows `R` of the window operator, late records dropped and counted. With several
    /// workers, each worker first folds the records it read per key and stamp for tumbling and
    /// sliding windows, and only the accumulators cross to the key's worker
    /// (`tideflow_operators::window::fold`).
    fn rows<A: Aggregator<D>, R: WindowRow<K, A::Output>>(
        self,
        aggregator: A,
    ) -> Stream<'scope, R> {
        let window = self.window;
        let (job, input) = self.input(R::UPDATES);
        let width = match window {
            Window::Tumbling { size } => Some(size),
            Window::Sliding { size, slide } => Some(gcd(size, slide)),
            // A session's windows depend on each record's exact time.
            Window::Session { .. } => None,
        };
        let results = match width.filter(|_| input.inner.scope().peers() > 1) {
            Some(width) => {
                let aggregator = Rc::new(aggregator);
                let pieces = fold_locally(input.inner, width, Rc::clone(&aggregator));
                let input = WindowInput {
                    inner: pieces,
                    lateness: input.lateness,
                    config: input.config,
                };
                let WindowStreams { results, late } = input.operator(window, Folding(aggregator));
                drop_late(&job, late, |late| late.data.data.records());
                results
            }
            None => {
                let WindowStreams { results, late } = input.operator(window, aggregator);
                drop_late(&job, late, |_| 1);
                results
            }
        };
        Stream {
            inner: count_window(&job.shared, results, WindowCount::Rows),
            job,
        }
    }

    /// Like [`aggregate`](Self::aggregate), but records too late for every window they belong
    /// to come out on a second stream instead of being dropped (Flink's `sideOutputLateData`),
    /// each with the watermark it arrived behind and the end of the window it missed; they are
    /// counted in [`JobReport::late_routed`](crate::JobReport).
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    /// use tideflow::{aggregate::Count, sink::MemorySink, source::MemorySource, Config, Window};
    ///
    /// let (rows, late) = (MemorySink::new(), MemorySink::new());
    /// let (rows_out, late_out) = (rows.clone(), late.clone());
    /// let report = tideflow::execute(Config::default(), move |flow| {
    ///     let (results, too_late) = flow
    ///         .source(MemorySource::new(vec![1_000u64, 12_000, 9_000, 30_000, 5_000]))
    ///         .with_event_time(|t| *t)
    ///         .with_watermark(Duration::ZERO)
    ///         .key_by(|_| "all".to_string())
    ///         .window(Window::tumbling(Duration::from_secs(10))?)
    ///         .allowed_lateness(Duration::from_secs(5))
    ///         .aggregate_with_late(Count);
    ///     results.sink(rows_out.clone());
    ///     too_late.sink(late_out.clone());
    ///     Ok(())
    /// })?;
    /// // 9_000 arrives behind watermark 12_000, within [0, 10 s) + 5 s: it is counted.
    /// // 5_000 arrives behind watermark 30_000, past 10 s + 5 s: it is late.
    /// let mut counts: Vec<(u64, u64)> = rows.take().iter().map(|r| (r.start, r.value)).collect();
    /// counts.sort();
    /// assert_eq!(counts, vec![(0, 2), (10_000, 1), (30_000, 1)]);
    /// let late = late.take();
    /// assert_eq!((late[0].data, late[0].watermark, late[0].window_end), (5_000, 30_000, 10_000));
    /// assert_eq!((report.late_routed, report.late_dropped), (1, 0));
    /// # Ok::<(), tideflow::Error>(())
    /// ```
    pub fn aggregate_with_late<A: Aggregator<D>>(
        self,
        aggregator: A,
    ) -> ResultsAndLate<'scope, K, D, WindowResult<K, A::Output>> {
        self.rows_with_late(aggregator)
    }

    /// The rows `R` of the window operator and its late records, counted.
    fn rows_with_late<A: Aggregator<D>, R: WindowRow<K, A::Output>>(
        self,
        aggregator: A,
    ) -> ResultsAndLate<'scope, K, D, R> {
        let window = self.window;
        let (job, input) = self.input(R::UPDATES);
        let WindowStreams { results, late } = input.operator(window, aggregator);
        let results = count_window(&job.shared, results, WindowCount::Rows);
        let counter = Rc::clone(&job);
        let late = late.inspect_batch(move |_, records| {
            counter
                .shared
                .late_routed
                .fetch_add(records.len() as u64, Ordering::Relaxed);
        });
        (
            Stream {
                inner: results,
                job: Rc::clone(&job),
            },
            Stream { inner: late, job },
        )
    }

    /// The window operator's input, counted, and its settings.
    fn input(self, updates: bool) -> (Rc<WorkerJob>, WindowInput<'scope, K, D>) {
        let mut keyed = self.keyed;
        let kind = match self.window {
            Window::Tumbling { .. } => "tumbling",
            Window::Sliding { .. } if updates => "sliding-update",
            Window::Sliding { .. } => "sliding",
            Window::Session { .. } => "session",
        };
        let config = keyed.state_config(kind, true);
        let KeyedStream { inner, job, .. } = keyed;
        // Progress reports (src/metrics): records into and rows out of the window operator.
        let inner = count_window(&job.shared, inner, WindowCount::Input);
        let input = WindowInput {
            inner,
            lateness: self.lateness,
            config,
        };
        (job, input)
    }
}

/// The input of a window operator: its keyed events `(K, D)` and its settings.
struct WindowInput<'scope, K, D> {
    inner: StreamVec<'scope, u64, Event<(K, D)>>,
    lateness: u64,
    config: StateConfig,
}

impl<'scope, K, D> WindowInput<'scope, K, D>
where
    K: ExchangeData + Hash + Eq + Clone,
    D: ExchangeData,
{
    /// The window operator of `window`'s kind, aggregating with `aggregator`.
    fn operator<A: Aggregator<D>, R: WindowRow<K, A::Output>>(
        self,
        window: Window,
        aggregator: A,
    ) -> WindowStreams<'scope, K, D, R> {
        let WindowInput {
            inner,
            lateness,
            config,
        } = self;
        match window {
            Window::Tumbling { size } => {
                inner.tumbling_window_rows(size, lateness, aggregator, config)
            }
            Window::Sliding { size, slide } => {
                inner.sliding_window_rows(size, slide, lateness, aggregator, config)
            }
            Window::Session { gap } => inner.session_window_rows(gap, lateness, aggregator, config),
        }
    }
}

/// The greatest common divisor.
fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// Drops the records of `late`, counting them in the job's `late_dropped` (`records` of each).
pub(crate) fn drop_late<T: 'static>(
    job: &Rc<WorkerJob>,
    late: StreamVec<'_, u64, Event<T>>,
    records: impl Fn(&Event<T>) -> u64 + 'static,
) {
    let done = job.terminal();
    let counter = Rc::clone(job);
    late.sink(Pipeline, "LateRecords", move |(input, frontier)| {
        input.for_each(|_, data| {
            counter
                .shared
                .late_dropped
                .fetch_add(data.iter().map(&records).sum(), Ordering::Relaxed);
            data.clear();
        });
        done.set(frontier.is_empty());
    });
}
