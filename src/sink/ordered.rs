//! A sink adapter that releases records in a deterministic order.

use std::time::{Duration, Instant};

use tideflow_operators::Event;

use super::{Committer, Parallelism, Recovered, Sink, SinkContext};
use crate::error::Error;

/// Holds records until the watermark passes their event time, then hands them to the inner
/// sink sorted by (event time, record). Output order then no longer depends on the worker count
/// or on timing, at no cost in latency for windowed results (they leave when the watermark
/// passes anyway).
///
/// # Examples
/// ```
/// use tideflow::sink::{ConsoleSink, OrderedSink};
/// let sink = OrderedSink::<_, String>::new(ConsoleSink::json());
/// # let _ = sink;
/// ```
pub struct OrderedSink<S, D> {
    inner: S,
    pending: Vec<Event<D>>,
    ready: Vec<Event<D>>,
}

impl<S, D> OrderedSink<S, D> {
    /// Orders the records `inner` receives.
    pub fn new(inner: S) -> Self {
        OrderedSink {
            inner,
            pending: Vec::new(),
            ready: Vec::new(),
        }
    }
}

impl<D: Ord + 'static, S: Sink<D>> OrderedSink<S, D> {
    /// Passes on, sorted, the pending records whose event time is below `watermark`.
    fn release(&mut self, watermark: Option<u64>) -> Result<(), Error> {
        let below = |event: &Event<D>| watermark.is_none_or(|w| event.time < w);
        let mut index = 0;
        while index < self.pending.len() {
            if below(&self.pending[index]) {
                self.ready.push(self.pending.swap_remove(index));
            } else {
                index += 1;
            }
        }
        if self.ready.is_empty() {
            return Ok(());
        }
        self.ready.sort_unstable();
        self.inner.write(&mut self.ready)?;
        self.ready.clear();
        Ok(())
    }
}

impl<D: Ord + 'static, S: Sink<D>> Sink<D> for OrderedSink<S, D> {
    fn write(&mut self, batch: &mut Vec<Event<D>>) -> Result<(), Error> {
        self.pending.append(batch);
        Ok(())
    }

    fn on_start(&mut self, context: &SinkContext) -> Result<(), Error> {
        self.inner.on_start(context)
    }

    fn on_watermark(&mut self, watermark: u64) -> Result<(), Error> {
        self.release(Some(watermark))?;
        self.inner.on_watermark(watermark)
    }

    fn on_close(&mut self) -> Result<(), Error> {
        self.release(None)?;
        self.inner.on_close()
    }

    fn on_tick(&mut self, now: Instant) -> Result<Option<Duration>, Error> {
        self.inner.on_tick(now)
    }

    fn parallelism(&self) -> Parallelism {
        self.inner.parallelism()
    }

    fn committer(&mut self) -> Option<Box<dyn Committer>> {
        self.inner.committer()
    }

    fn begin_staging(&mut self, recovered: &Recovered) {
        self.inner.begin_staging(recovered);
    }

    fn pre_commit(&mut self, epoch: u64) -> Result<Vec<u8>, Error> {
        self.inner.pre_commit(epoch)
    }
}
