//! A sink that hands each record to a closure of yours, on the worker that holds it.

use tideflow_operators::Event;

use super::Sink;
use crate::error::Error;

/// The closure a [`ForeachSink`] calls with each batch.
type BatchFn<D> = Box<dyn FnMut(&mut Vec<Event<D>>)>;

/// Calls a closure with each record ([`ForeachSink::new`]) or each batch of events
/// ([`ForeachSink::batch`]), on the worker that holds them ([`Parallelism::PerWorker`]): build
/// one per worker, inside the job's closure, and share what it writes to with `Arc`s.
///
/// Delivery is at-least-once: the closure has run for every record that reached the sink, and
/// a job rerun after a failure calls it again for records it had already seen.
///
/// [`Parallelism::PerWorker`]: super::Parallelism::PerWorker
///
/// # Examples
/// ```
/// use std::sync::{atomic::{AtomicU64, Ordering}, Arc};
/// use std::time::Duration;
/// use tideflow::{sink::ForeachSink, source::MemorySource, Config};
///
/// let total = Arc::new(AtomicU64::new(0));
/// let batches = Arc::new(AtomicU64::new(0));
/// let (sum, calls) = (Arc::clone(&total), Arc::clone(&batches));
/// tideflow::execute(Config::workers(2), move |flow| {
///     let stream = flow
///         .source(MemorySource::new(vec![1u64, 2, 3, 4]))
///         .with_event_time(|t| *t)
///         .with_watermark(Duration::ZERO);
///     let sum = Arc::clone(&sum);
///     stream.clone().sink(ForeachSink::new(move |t: u64| {
///         sum.fetch_add(t, Ordering::Relaxed);
///     }));
///     let calls = Arc::clone(&calls);
///     stream.sink(ForeachSink::batch(move |events: &mut Vec<_>| {
///         calls.fetch_add(1, Ordering::Relaxed);
///         events.clear();
///     }));
///     Ok(())
/// })?;
/// assert_eq!(total.load(Ordering::Relaxed), 10);
/// assert!(batches.load(Ordering::Relaxed) >= 1);
/// # Ok::<(), tideflow::Error>(())
/// ```
pub struct ForeachSink<D> {
    call: BatchFn<D>,
}

impl<D: 'static> ForeachSink<D> {
    /// Calls `each` with every record.
    pub fn new(mut each: impl FnMut(D) + 'static) -> Self {
        ForeachSink {
            call: Box::new(move |batch: &mut Vec<Event<D>>| {
                for event in batch.drain(..) {
                    each(event.data);
                }
            }),
        }
    }

    /// Calls `each_batch` with every batch of events (records with their event times); it may
    /// drain the vector, and what it leaves is dropped.
    pub fn batch(each_batch: impl FnMut(&mut Vec<Event<D>>) + 'static) -> Self {
        ForeachSink {
            call: Box::new(each_batch),
        }
    }
}

impl<D: 'static> Sink<D> for ForeachSink<D> {
    fn write(&mut self, batch: &mut Vec<Event<D>>) -> Result<(), Error> {
        (self.call)(batch);
        batch.clear();
        Ok(())
    }
}
