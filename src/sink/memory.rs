//! A sink that collects records in memory, for tests and embedding.

use std::sync::{Arc, Mutex, MutexGuard};

use tideflow_operators::Event;

use super::Sink;
use crate::error::Error;

/// Collects every record it receives into a shared `Vec`. Clones share the same `Vec`, so keep
/// one clone outside [`execute`](crate::execute) and read it with [`MemorySink::take`] after.
///
/// # Examples
/// ```
/// use tideflow::sink::MemorySink;
/// let sink = MemorySink::<u32>::new();
/// assert!(sink.take().is_empty());
/// ```
pub struct MemorySink<D> {
    records: Arc<Mutex<Vec<D>>>,
}

impl<D> Clone for MemorySink<D> {
    fn clone(&self) -> Self {
        MemorySink {
            records: Arc::clone(&self.records),
        }
    }
}

impl<D> Default for MemorySink<D> {
    fn default() -> Self {
        MemorySink {
            records: Arc::new(Mutex::new(Vec::new())),
        }
    }
}

impl<D> MemorySink<D> {
    /// An empty sink.
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes the records collected so far (from all workers, in no particular order).
    pub fn take(&self) -> Vec<D> {
        std::mem::take(&mut *self.lock())
    }

    /// The number of records collected so far.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no records have been collected.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    fn lock(&self) -> MutexGuard<'_, Vec<D>> {
        // A worker that panicked while holding the lock leaves complete records behind.
        self.records
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl<D: 'static> Sink<D> for MemorySink<D> {
    fn write(&mut self, batch: &mut Vec<Event<D>>) -> Result<(), Error> {
        self.lock().extend(batch.drain(..).map(|event| event.data));
        Ok(())
    }
}
