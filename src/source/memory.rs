//! A source over records held in memory, for tests, examples and benchmarks.

use std::sync::Arc;

use super::{Position, Source, SourceBatch, SourceContext, SourceStatus};
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
/// It is replayable ([`Source::replayable`]): a record's [`Position`] is its index in the
/// `Vec` (`offset`; `line` is 0), and a partition's position once it is exhausted is the index
/// its next record would have.
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
    /// The global partition of each local one.
    local: Vec<usize>,
    /// Per local partition, the index of its next record (at or past the end once exhausted).
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
                let position = Position {
                    offset: *cursor as u64,
                    line: 0,
                };
                batch.push_at(local, record.clone(), position);
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

    fn replayable(&self) -> bool {
        true
    }

    fn position(&self, partition: usize) -> Position {
        let offset = self.cursors.get(partition).map_or(0, |&c| c as u64);
        Position { offset, line: 0 }
    }

    fn seek(&mut self, partition: usize, position: Position) -> Result<(), Error> {
        let Some(&global) = self.local.get(partition) else {
            return Err(Error::Internal(format!(
                "MemorySource::seek: no local partition {partition}"
            )));
        };
        let index = usize::try_from(position.offset).unwrap_or(usize::MAX);
        if index % self.partitions != global {
            return Err(Error::Config(format!(
                "cannot resume in-memory partition {global} at record {index}: it holds the records whose index is {global} modulo {}",
                self.partitions
            )));
        }
        self.cursors[partition] = index;
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::time::Duration;

    use super::*;

    /// What reading a source to its end gave: each record with its local partition and
    /// position, and the local partitions finished, in order.
    pub(crate) struct Read<T> {
        pub(crate) records: Vec<(usize, Position, T)>,
        pub(crate) finished: Vec<usize>,
    }

    /// Starts `source` as worker `index` of `peers`, seeks each local partition to its
    /// position in `seeks`, and reads it to its end (waiting as it asks).
    pub(crate) fn read_all<S: Source>(
        source: &mut S,
        index: usize,
        peers: usize,
        seeks: &[(usize, Position)],
    ) -> Result<Read<S::Item>, Error> {
        source.on_start(&SourceContext {
            worker_index: index,
            peers,
        })?;
        for &(partition, position) in seeks {
            source.seek(partition, position)?;
        }
        let mut batch = SourceBatch::new();
        let mut read = Read {
            records: Vec::new(),
            finished: Vec::new(),
        };
        for _ in 0..100_000 {
            let status = source.read(&mut batch)?;
            assert_eq!(
                batch.positions.len(),
                batch.records.len(),
                "push_at for all"
            );
            let positions = batch.positions.drain(..);
            for ((partition, record), position) in batch.records.drain(..).zip(positions) {
                read.records.push((partition, position, record));
            }
            read.finished.append(&mut batch.finished);
            match status {
                SourceStatus::Ready => {}
                SourceStatus::Wait(delay) => {
                    std::thread::sleep(delay.min(Duration::from_millis(5)))
                }
                SourceStatus::Done | SourceStatus::Halt => return Ok(read),
            }
        }
        panic!("the source did not finish");
    }

    #[test]
    fn a_source_sought_to_a_position_reads_the_records_from_there() {
        let records: Vec<u32> = (0..23).map(|i| i * 10).collect();
        let source = MemorySource::partitioned(records, 3).batch_size(4);
        let mut first = source.clone();
        let all = read_all(&mut first, 0, 1, &[]).unwrap();
        assert_eq!(all.records.len(), 23);
        for (partition, position, record) in &all.records {
            assert_eq!(*record, position.offset as u32 * 10);
            assert_eq!(position.offset % 3, *partition as u64);
        }
        let mut finished = all.finished.clone();
        finished.sort();
        assert_eq!(finished, vec![0, 1, 2]);
        for partition in 0..3 {
            let of = |read: &Read<u32>| -> Vec<(Position, u32)> {
                let records = read.records.iter().filter(|(p, ..)| *p == partition);
                records.map(|&(_, at, r)| (at, r)).collect()
            };
            let expected = of(&all);
            let end = first.position(partition);
            assert!(end.offset >= 23);
            let mut positions: Vec<Position> = expected.iter().map(|(at, _)| *at).collect();
            positions.push(end);
            for (skip, &at) in positions.iter().enumerate() {
                let mut resumed = source.clone();
                let read = read_all(&mut resumed, 0, 1, &[(partition, at)]).unwrap();
                assert_eq!(
                    of(&read),
                    expected[skip..],
                    "partition {partition} from {at:?}"
                );
                // Each partition is finished once, the sought one too.
                assert_eq!(read.finished.iter().filter(|&&p| p == partition).count(), 1);
                assert_eq!(resumed.position(partition), end);
            }
        }
    }

    #[test]
    fn local_partitions_of_two_workers_are_the_global_ones() {
        let source = MemorySource::partitioned((0..20).collect::<Vec<u64>>(), 4);
        for worker in 0..2 {
            let mut mine = source.clone();
            let read = read_all(&mut mine, worker, 2, &[]).unwrap();
            assert_eq!(mine.partitions(), 2);
            for (local, position, record) in read.records {
                assert_eq!(position.offset, record);
                assert_eq!(record % 4, (worker + local * 2) as u64);
            }
        }
        // Worker 1's local partition 1 is global partition 3: it resumes at 3 + 4k only.
        let mut mine = source.clone();
        let at = |offset| Position { offset, line: 0 };
        let read = read_all(&mut mine, 1, 2, &[(1, at(11))]).unwrap();
        let resumed: Vec<u64> = read
            .records
            .iter()
            .filter(|r| r.0 == 1)
            .map(|r| r.2)
            .collect();
        assert_eq!(resumed, vec![11, 15, 19]);
        let error = read_all(&mut source.clone(), 1, 2, &[(1, at(12))])
            .err()
            .unwrap();
        assert!(
            error.to_string().contains("partition 3 at record 12"),
            "{error}"
        );
    }
}
