//! The stream API: stateless operators on [`Stream`], keying with [`Stream::key_by`], windows
//! on [`KeyedStream`], aggregation on [`WindowedStream`], and sinks.
//!
//! A `Stream<D>` is a timely stream of [`Event<D>`]: every record keeps its event time through
//! `map`, `filter` and `flat_map`, as a Flink record keeps its timestamp. Operators consume the
//! stream (timely 0.31 style); `clone` a stream to use it twice.
//!
//! One file (or folder) per API type: [`Stream`] here, [`KeyedStream`] in `keyed/` (the type in
//! `keyed/mod.rs`, each keyed-state operator in a file of its own), [`WindowedStream`] in
//! `windowed.rs`. The three refer to one another (`key_by`, `window`, `into_stream`), so they
//! are one module of the crate's layers (docs/ARCHITECTURE.md "Layers").

mod keyed;
mod windowed;

use std::rc::Rc;

use tideflow_operators::Event;
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::vec::Map;
use timely::dataflow::operators::{Concat, Inspect, Operator};
use timely::dataflow::StreamVec;
use timely::ExchangeData;

use crate::sink::Sink;
use crate::worker::WorkerJob;

pub use keyed::static_join::StaticTable;
pub use keyed::KeyedStream;
pub(crate) use windowed::drop_late;
pub use windowed::{ResultsAndLate, WindowedStream};

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
            done: job.sink_terminal(),
            sources: job.source_probe.clone(),
            stop_at_snapshot: job.checkpointer.is_some()
                && job.trigger != tideflow_operators::Trigger::Once,
            wakers: std::rc::Rc::clone(&job.sink_wakers),
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
