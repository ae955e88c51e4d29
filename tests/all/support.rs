//! Helpers shared by the library's tests: a seedable generator and a sink that keeps events.

#[path = "net.rs"]
mod net;
#[path = "rng.rs"]
mod rng;

pub use net::{free_hosts, free_hosts_of};
pub use rng::SplitMix64;

/// A sink that keeps every event with its event time, on every worker.
#[derive(Clone)]
pub struct EventSink<D> {
    pub events: std::sync::Arc<std::sync::Mutex<Vec<tideflow::Event<D>>>>,
}

impl<D> Default for EventSink<D> {
    fn default() -> Self {
        EventSink {
            events: Default::default(),
        }
    }
}

impl<D: Send + 'static> tideflow::sink::Sink<D> for EventSink<D> {
    fn write(&mut self, batch: &mut Vec<tideflow::Event<D>>) -> tideflow::Result<()> {
        self.events.lock().expect("no panics").append(batch);
        Ok(())
    }
}

/// What a [`Gated`] source does at a read.
pub enum Gate {
    /// Read on.
    Read,
    /// Read nothing now; ask again after this long.
    Wait(std::time::Duration),
    /// Stop the job with an error ("the test stopped the job").
    Stop,
}

/// Decides, before each read of a [`Gated`] source, whether it reads.
pub trait ReadGate: 'static {
    /// The source starts (on its worker).
    fn on_start(&mut self) {}
    /// Before each read.
    fn before_read(&mut self) -> Gate;
}

/// A replayable source `inner` whose reads `gate` lets through, holds back or turns into an
/// error: how a test stops a job at a chosen moment (after a snapshot, after a commit).
pub struct Gated<S, G> {
    pub inner: S,
    pub gate: G,
}

impl<S: tideflow::source::Source, G: ReadGate> tideflow::source::Source for Gated<S, G> {
    type Item = S::Item;

    fn read(
        &mut self,
        batch: &mut tideflow::source::SourceBatch<S::Item>,
    ) -> Result<tideflow::source::SourceStatus, tideflow::Error> {
        match self.gate.before_read() {
            Gate::Read => self.inner.read(batch),
            Gate::Wait(wait) => Ok(tideflow::source::SourceStatus::Wait(wait)),
            Gate::Stop => Err(tideflow::Error::Config("the test stopped the job".into())),
        }
    }
    fn on_start(
        &mut self,
        context: &tideflow::source::SourceContext,
    ) -> Result<(), tideflow::Error> {
        self.gate.on_start();
        self.inner.on_start(context)
    }
    fn partitions(&self) -> usize {
        self.inner.partitions()
    }
    fn replayable(&self) -> bool {
        self.inner.replayable()
    }
    fn position(&self, partition: usize) -> tideflow::source::Position {
        self.inner.position(partition)
    }
    fn seek(
        &mut self,
        partition: usize,
        position: tideflow::source::Position,
    ) -> Result<(), tideflow::Error> {
        self.inner.seek(partition, position)
    }
    fn on_available_now(&mut self) {
        self.inner.on_available_now()
    }
    fn report_offsets(&mut self, gauges: &tideflow::source::PartitionGauges) {
        self.inner.report_offsets(gauges)
    }
}
