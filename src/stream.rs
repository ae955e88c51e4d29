//! The stream API: stateless operators on [`Stream`], keying with [`Stream::key_by`], windows
//! on [`KeyedStream`], aggregation on [`WindowedStream`], and sinks.
//!
//! A `Stream<D>` is a timely stream of [`Event<D>`]: every record keeps its event time through
//! `map`, `filter` and `flat_map`, as a Flink record keeps its timestamp. Operators consume the
//! stream (timely 0.31 style); `clone` a stream to use it twice.

use std::hash::Hash;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tideflow_operators::aggregate::Aggregator;
use tideflow_operators::window::{
    LateRecord, SessionWindow, SlidingWindow, TumblingWindow, WindowResult, WindowRow,
    WindowStreams, WindowUpdate,
};
use tideflow_operators::Event;
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::vec::Map;
use timely::dataflow::operators::{Concat, Inspect, Operator};
use timely::dataflow::StreamVec;
use timely::ExchangeData;

use crate::context::{count_window, WindowCount};
use crate::duration::millis;
use crate::runtime::WorkerJob;
use crate::sink::Sink;
use crate::window::Window;

/// A stream of records of type `D`, each with its event time.
pub struct Stream<'scope, D> {
    pub(crate) inner: StreamVec<'scope, u64, Event<D>>,
    pub(crate) job: Rc<WorkerJob>,
}

impl<D: Clone + 'static> Clone for Stream<'_, D> {
    fn clone(&self) -> Self {
        Stream {
            inner: self.inner.clone(),
            job: Rc::clone(&self.job),
        }
    }
}

impl<'scope, D: 'static> Stream<'scope, D> {
    /// Transforms each record; the event time is kept.
    ///
    /// # Examples
    /// ```
    /// use tideflow::{sink::MemorySink, source::MemorySource, Config};
    /// let sink = MemorySink::new();
    /// let output = sink.clone();
    /// tideflow::execute(Config::default(), move |flow| {
    ///     flow.source(MemorySource::new(vec![1u64, 2, 3]))
    ///         .with_event_time(|n| *n)
    ///         .with_watermark(std::time::Duration::ZERO)
    ///         .map(|n| format!("#{n}"))
    ///         .sink(output.clone());
    ///     Ok(())
    /// })?;
    /// let mut seen = sink.take();
    /// seen.sort();
    /// assert_eq!(seen, ["#1", "#2", "#3"]);
    /// # Ok::<(), tideflow::Error>(())
    /// ```
    pub fn map<D2: 'static>(self, mut logic: impl FnMut(D) -> D2 + 'static) -> Stream<'scope, D2> {
        self.map_events(move |event| event.map(&mut logic))
    }

    /// Keeps the records for which `predicate` holds.
    ///
    /// # Examples
    /// ```
    /// use tideflow::{sink::MemorySink, source::MemorySource, Config};
    /// let sink = MemorySink::new();
    /// let output = sink.clone();
    /// tideflow::execute(Config::workers(2), move |flow| {
    ///     flow.source(MemorySource::partitioned((0..100u64).collect::<Vec<_>>(), 4))
    ///         .with_event_time(|n| *n)
    ///         .with_watermark(std::time::Duration::ZERO)
    ///         .filter(|n| n % 10 == 0)
    ///         .sink(output.clone());
    ///     Ok(())
    /// })?;
    /// assert_eq!(sink.len(), 10);
    /// # Ok::<(), tideflow::Error>(())
    /// ```
    pub fn filter(self, mut predicate: impl FnMut(&D) -> bool + 'static) -> Stream<'scope, D> {
        self.map_containers("Filter", move |events| {
            events.retain(|event| predicate(&event.data));
            std::mem::take(events)
        })
    }

    /// Turns each record into any number of records with the same event time.
    ///
    /// # Examples
    /// ```
    /// use tideflow::{sink::MemorySink, source::MemorySource, Config};
    /// let sink = MemorySink::new();
    /// let output = sink.clone();
    /// tideflow::execute(Config::default(), move |flow| {
    ///     flow.source(MemorySource::new(vec!["to be".to_string(), "or not".to_string()]))
    ///         .with_event_time(|_| 0)
    ///         .with_watermark(std::time::Duration::ZERO)
    ///         .flat_map(|line| line.split(' ').map(str::to_string).collect::<Vec<_>>())
    ///         .sink(output.clone());
    ///     Ok(())
    /// })?;
    /// let mut words = sink.take();
    /// words.sort();
    /// assert_eq!(words, ["be", "not", "or", "to"]);
    /// # Ok::<(), tideflow::Error>(())
    /// ```
    pub fn flat_map<I>(self, mut logic: impl FnMut(D) -> I + 'static) -> Stream<'scope, I::Item>
    where
        I: IntoIterator,
        I::Item: 'static,
    {
        self.with_inner(|inner| {
            inner.flat_map(move |event| {
                let time = event.time;
                logic(event.data)
                    .into_iter()
                    .map(move |data| Event::new(time, data))
            })
        })
    }

    /// Calls `observe` on each record as it passes.
    ///
    /// # Examples
    /// ```
    /// use std::sync::atomic::{AtomicU64, Ordering};
    /// use std::sync::Arc;
    /// use tideflow::{sink::MemorySink, source::MemorySource, Config};
    /// let total = Arc::new(AtomicU64::new(0));
    /// let seen = Arc::clone(&total);
    /// tideflow::execute(Config::default(), move |flow| {
    ///     let seen = Arc::clone(&seen);
    ///     flow.source(MemorySource::new(vec![5u64, 7]))
    ///         .with_event_time(|n| *n)
    ///         .with_watermark(std::time::Duration::ZERO)
    ///         .inspect(move |n| { seen.fetch_add(*n, Ordering::Relaxed); })
    ///         .sink(MemorySink::new());
    ///     Ok(())
    /// })?;
    /// assert_eq!(total.load(Ordering::Relaxed), 12);
    /// # Ok::<(), tideflow::Error>(())
    /// ```
    pub fn inspect(self, mut observe: impl FnMut(&D) + 'static) -> Stream<'scope, D> {
        self.with_inner(|inner| inner.inspect(move |event| observe(&event.data)))
    }

    /// Merges two streams of the same type; the watermark is the smaller of the two.
    ///
    /// # Examples
    /// ```
    /// use tideflow::{sink::MemorySink, source::MemorySource, Config};
    /// let sink = MemorySink::new();
    /// let output = sink.clone();
    /// tideflow::execute(Config::default(), move |flow| {
    ///     let evens = flow.source(MemorySource::new(vec![0u64, 2]))
    ///         .with_event_time(|n| *n)
    ///         .with_watermark(std::time::Duration::ZERO);
    ///     let odds = flow.source(MemorySource::new(vec![1u64, 3]))
    ///         .with_event_time(|n| *n)
    ///         .with_watermark(std::time::Duration::ZERO);
    ///     evens.union(odds).sink(output.clone());
    ///     Ok(())
    /// })?;
    /// let mut all = sink.take();
    /// all.sort();
    /// assert_eq!(all, [0, 1, 2, 3]);
    /// # Ok::<(), tideflow::Error>(())
    /// ```
    pub fn union(self, other: Stream<'scope, D>) -> Stream<'scope, D> {
        self.with_inner(|inner| inner.concat(other.inner))
    }

    /// Names each record's key. Records move to the worker that owns their key (by a
    /// well-mixed hash, [`tideflow_operators::key_hash`]) at the first keyed operator, so a
    /// `key_by` followed by a window exchanges each record once.
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    /// use tideflow::{aggregate::{Count, Sum}, sink::MemorySink, source::MemorySource, Config, Window};
    ///
    /// #[derive(Clone)]
    /// struct Order { shop: &'static str, cents: i64, ts: u64 }
    /// let orders = vec![
    ///     Order { shop: "north", cents: 250, ts: 100 },
    ///     Order { shop: "south", cents: 100, ts: 200 },
    ///     Order { shop: "north", cents: 50, ts: 1_100 },
    /// ];
    /// let sink = MemorySink::new();
    /// let output = sink.clone();
    /// tideflow::execute(Config::workers(2), move |flow| {
    ///     flow.source(MemorySource::new(orders.clone()))
    ///         .with_event_time(|o| o.ts)
    ///         .with_watermark(Duration::ZERO)
    ///         .map(|o| (o.shop.to_string(), o.cents))
    ///         .key_by(|(shop, _)| shop.clone())
    ///         .window(Window::tumbling(Duration::from_secs(1))?)
    ///         .aggregate((Count, Sum::of(|(_, cents): &(String, i64)| *cents)))
    ///         .sink(output.clone());
    ///     Ok(())
    /// })?;
    /// let mut rows: Vec<_> = sink.take().into_iter().map(|r| (r.key, r.start, r.value)).collect();
    /// rows.sort();
    /// assert_eq!(rows, vec![
    ///     ("north".to_string(), 0, (1, 250)),
    ///     ("north".to_string(), 1_000, (1, 50)),
    ///     ("south".to_string(), 0, (1, 100)),
    /// ]);
    /// # Ok::<(), tideflow::Error>(())
    /// ```
    pub fn key_by<K: 'static>(self, key: impl Fn(&D) -> K + 'static) -> KeyedStream<'scope, K, D> {
        let Stream { inner, job } = self.map_events(move |event| {
            let key = key(&event.data);
            event.map(|data| (key, data))
        });
        KeyedStream {
            inner,
            job,
            name: None,
        }
    }

    /// Writes every record to `sink`.
    ///
    /// A [`Parallelism::PerWorker`] sink receives each worker's records on that worker; a
    /// [`Parallelism::Single`] sink (a file, the console) receives all records on worker 0.
    /// An error from the sink stops the job and is returned by [`execute`](crate::execute).
    /// The operator that drives it is the sink driver (`sink/driver.rs`).
    ///
    /// [`Parallelism::PerWorker`]: crate::sink::Parallelism::PerWorker
    /// [`Parallelism::Single`]: crate::sink::Parallelism::Single
    pub fn sink<S: Sink<D>>(self, sink: S)
    where
        D: ExchangeData,
    {
        let job = self.job;
        let driver = crate::sink::SinkDriver {
            context: crate::sink::SinkContext {
                worker_index: job.index,
                peers: job.peers,
            },
            shared: std::sync::Arc::clone(&job.shared),
            checkpointer: job.checkpointer.clone(),
            done: job.terminal(),
        };
        crate::sink::drive(self.inner, driver, sink);
    }

    /// The underlying timely stream of events, for raw timely operators.
    pub fn into_inner(self) -> StreamVec<'scope, u64, Event<D>> {
        self.inner
    }

    fn with_inner<D2>(
        self,
        logic: impl FnOnce(StreamVec<'scope, u64, Event<D>>) -> StreamVec<'scope, u64, Event<D2>>,
    ) -> Stream<'scope, D2> {
        Stream {
            inner: logic(self.inner),
            job: self.job,
        }
    }

    /// Maps each event, a whole container at a time.
    fn map_events<D2: 'static>(
        self,
        mut logic: impl FnMut(Event<D>) -> Event<D2> + 'static,
    ) -> Stream<'scope, D2> {
        self.map_containers("Map", move |events| {
            events.drain(..).map(&mut logic).collect()
        })
    }

    /// Turns each incoming container into an outgoing one: one allocation per batch, where
    /// timely's record-at-a-time `map` pushes each record into a new container.
    fn map_containers<D2: 'static>(
        self,
        name: &str,
        mut logic: impl FnMut(&mut Vec<Event<D>>) -> Vec<Event<D2>> + 'static,
    ) -> Stream<'scope, D2> {
        self.with_inner(|inner| {
            inner.unary::<CapacityContainerBuilder<Vec<Event<D2>>>, _, _, _>(
                Pipeline,
                name,
                move |_, _| {
                    move |input, output| {
                        input.for_each(|time, data| {
                            let mut events = logic(data);
                            if !events.is_empty() {
                                output.session(&time).give_container(&mut events);
                            }
                        });
                    }
                },
            )
        })
    }
}

impl<'scope, K: 'static, D: 'static> Stream<'scope, (K, D)> {
    /// Treats the first element of each pair as its key, without copying it (where
    /// [`Stream::key_by`] derives the key from a reference to the record).
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    /// use tideflow::{aggregate::Sum, sink::MemorySink, source::MemorySource, Config, Window};
    /// let sink = MemorySink::new();
    /// let output = sink.clone();
    /// let sales = vec![("tea".to_string(), 3i64, 10u64), ("tea".to_string(), 4, 20)];
    /// tideflow::execute(Config::default(), move |flow| {
    ///     flow.source(MemorySource::new(sales.clone()))
    ///         .with_event_time(|(_, _, ts)| *ts)
    ///         .with_watermark(Duration::ZERO)
    ///         .map(|(item, amount, _)| (item, amount))
    ///         .into_keyed()
    ///         .window(Window::session(Duration::from_millis(50))?)
    ///         .aggregate(Sum::of(|amount: &i64| *amount))
    ///         .sink(output.clone());
    ///     Ok(())
    /// })?;
    /// let rows = sink.take();
    /// assert_eq!((rows[0].key.as_str(), rows[0].start, rows[0].end, rows[0].value), ("tea", 10, 70, 7));
    /// # Ok::<(), tideflow::Error>(())
    /// ```
    pub fn into_keyed(self) -> KeyedStream<'scope, K, D> {
        KeyedStream {
            inner: self.inner,
            job: self.job,
            name: None,
        }
    }
}

/// A stream whose records have a key of type `K`; windows and keyed state start here.
pub struct KeyedStream<'scope, K, D> {
    pub(crate) inner: StreamVec<'scope, u64, Event<(K, D)>>,
    pub(crate) job: Rc<WorkerJob>,
    /// The id of the stateful operator built on this stream, if the job gave one.
    pub(crate) name: Option<String>,
}

impl<'scope, K: 'static, D: 'static> KeyedStream<'scope, K, D> {
    /// Groups each key's records into windows; finish with [`WindowedStream::aggregate`].
    pub fn window(self, window: Window) -> WindowedStream<'scope, K, D> {
        WindowedStream {
            keyed: self,
            window,
            lateness: 0,
        }
    }

    /// Back to a plain stream of `(key, record)` pairs.
    pub fn into_stream(self) -> Stream<'scope, (K, D)> {
        Stream {
            inner: self.inner,
            job: self.job,
        }
    }
}

/// The window rows (results in append mode, [`WindowUpdate`]s in update mode) and the late
/// records of [`WindowedStream::aggregate_with_late`] and
/// [`WindowedStream::aggregate_updates_with_late`].
pub type ResultsAndLate<'scope, K, D, R> = (Stream<'scope, R>, Stream<'scope, LateRecord<K, D>>);

/// A keyed stream grouped into windows.
pub struct WindowedStream<'scope, K, D> {
    keyed: KeyedStream<'scope, K, D>,
    window: Window,
    lateness: u64,
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

    /// The rows `R` of the window operator, late records dropped and counted.
    fn rows<A: Aggregator<D>, R: WindowRow<K, A::Output>>(
        self,
        aggregator: A,
    ) -> Stream<'scope, R> {
        let (job, WindowStreams { results, late }) = self.windows(aggregator);
        drop_late(&job, late);
        Stream {
            inner: results,
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
        let (job, WindowStreams { results, late }) = self.windows(aggregator);
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

    /// Builds the window operator of this stream's kind.
    fn windows<A: Aggregator<D>, R: WindowRow<K, A::Output>>(
        self,
        aggregator: A,
    ) -> (Rc<WorkerJob>, WindowStreams<'scope, K, D, R>) {
        let mut keyed = self.keyed;
        let kind = match self.window {
            Window::Tumbling { .. } => "tumbling",
            Window::Sliding { .. } if R::UPDATES => "sliding-update",
            Window::Sliding { .. } => "sliding",
            Window::Session { .. } => "session",
        };
        let config = keyed.state_config(kind, true);
        let KeyedStream { inner, job, .. } = keyed;
        let lateness = self.lateness;
        // Progress reports (src/metrics): records into and rows out of the window operator.
        let inner = count_window(&job.shared, inner, WindowCount::Input);
        let mut streams = match self.window {
            Window::Tumbling { size } => {
                inner.tumbling_window_rows(size, lateness, aggregator, config)
            }
            Window::Sliding { size, slide } => {
                inner.sliding_window_rows(size, slide, lateness, aggregator, config)
            }
            Window::Session { gap } => inner.session_window_rows(gap, lateness, aggregator, config),
        };
        streams.results = count_window(&job.shared, streams.results, WindowCount::Rows);
        (job, streams)
    }
}

/// Drops the records of `late`, counting them in the job's `late_dropped`.
pub(crate) fn drop_late<T: 'static>(job: &Rc<WorkerJob>, late: StreamVec<'_, u64, Event<T>>) {
    let done = job.terminal();
    let counter = Rc::clone(job);
    late.sink(Pipeline, "LateRecords", move |(input, frontier)| {
        input.for_each(|_, data| {
            counter
                .shared
                .late_dropped
                .fetch_add(data.len() as u64, Ordering::Relaxed);
            data.clear();
        });
        done.set(frontier.is_empty());
    });
}
