//! A source over records held in memory, for tests, examples and benchmarks.

use std::sync::Arc;

use super::{Source, SourceBatch, SourceContext, SourceStatus};
use crate::error::Error;

/// Records read at most this many at a time, by default.
const BATCH: usize = 1024;

/// Reads a `Vec` of records, split into partitions: record `i` belongs to partition
/// `i % partitions`, and partition `p` is read by worker `p % workers`.
///
/// [`MemorySource::new`] makes one partition (read by worker 0, in order);
/// [`MemorySource::partitioned`] spreads the records over several, read in parallel. Cloning is
/// cheap: the records are shared.
///
/// # Examples
/// ```
/// use tideflow::source::MemorySource;
/// let source = MemorySource::partitioned(vec![1, 2, 3, 4], 2);
/// assert_eq!(source.len(), 4);
/// ```
#[derive(Clone)]
pub struct MemorySource<T> {
    records: Arc<Vec<T>>,
    partitions: usize,
    local: Vec<usize>,
    /// Per local partition, the index of its next record.
    cursors: Vec<usize>,
    finished: Vec<bool>,
    next_local: usize,
    batch: usize,
}

impl<T> MemorySource<T> {
    /// One partition holding `records` in order.
    pub fn new(records: impl Into<Arc<Vec<T>>>) -> Self {
        Self::partitioned(records, 1)
    }

    /// `partitions` partitions; record `i` goes to partition `i % partitions`.
    pub fn partitioned(records: impl Into<Arc<Vec<T>>>, partitions: usize) -> Self {
        MemorySource {
            records: records.into(),
            partitions: partitions.max(1),
            local: Vec::new(),
            cursors: Vec::new(),
            finished: Vec::new(),
            next_local: 0,
            batch: BATCH,
        }
    }

    /// Reads at most `records` records per read (by default 1024), shared among this worker's
    /// partitions (at least one each). The watermark can advance after every read, so a small
    /// batch makes a job see its input arrive in many steps, as a live source's would.
    pub fn batch_size(mut self, records: usize) -> Self {
        self.batch = records.max(1);
        self
    }

    /// The number of records over all partitions.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether there are no records at all.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }
}

impl<T: Clone + 'static> Source for MemorySource<T> {
    type Item = T;

    fn on_start(&mut self, context: &SourceContext) -> Result<(), Error> {
        self.local = context.local_partitions(self.partitions).collect();
        self.cursors = self.local.clone();
        self.finished = vec![false; self.local.len()];
        Ok(())
    }

    fn partitions(&self) -> usize {
        self.local.len()
    }

    fn read(&mut self, batch: &mut SourceBatch<T>) -> Result<SourceStatus, Error> {
        // Round-robin over unfinished local partitions, a slice of each per call.
        let mut live = 0;
        for _ in 0..self.local.len() {
            let local = self.next_local;
            self.next_local = (self.next_local + 1) % self.local.len();
            if self.finished[local] {
                continue;
            }
            live += 1;
            let cursor = &mut self.cursors[local];
            let per_partition = (self.batch / self.local.len()).max(1);
            for _ in 0..per_partition {
                let Some(record) = self.records.get(*cursor) else {
                    break;
                };
                batch.push(local, record.clone());
                *cursor += self.partitions;
            }
            if *cursor >= self.records.len() {
                self.finished[local] = true;
                batch.finish_partition(local);
            }
        }
        Ok(if live == 0 {
            SourceStatus::Done
        } else {
            SourceStatus::Ready
        })
    }
}
