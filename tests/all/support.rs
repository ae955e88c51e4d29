//! Helpers shared by the library's tests: a seedable generator and a sink that keeps events.

#[path = "net.rs"]
mod net;
#[path = "rng.rs"]
mod rng;

pub use net::free_hosts;
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
