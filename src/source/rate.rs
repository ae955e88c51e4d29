//! The rate generator: a deterministic synthetic stream of keyed events.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tideflow_operators::key_hash;

use super::{Position, Source, SourceBatch, SourceContext, SourceStatus};
use crate::duration::millis;
use crate::error::Error;

/// Records generated per call at most.
const BATCH: u64 = 4096;

/// One generated event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RateRecord {
    /// Event time in ms since the epoch.
    pub ts: u64,
    /// Key, from 0 to `keys - 1`.
    pub key: u64,
    /// A value from 0 to 999.
    pub value: i64,
}

/// Generates `rows_per_sec` events per second over `keys` keys, with event times that run up to
/// `max_disorder` out of order. Record `i` is a function of the seed and `i` alone: its event
/// time is `start + i * 1000 / rows_per_sec` minus a pseudo-random disorder, its key and value
/// are pseudo-random. Records are split into partitions by index stride (record `i` belongs to
/// partition `i % partitions`).
///
/// Paced (the default), record `i` is released when the wall clock reaches its undisturbed
/// event time, so event time follows the wall clock; unpaced, records come as fast as the
/// dataflow takes them. Paced from its start ([`RateSource::paced_from_start`]), records come
/// at `rows_per_sec` from when the source starts reading, whatever their event times: the
/// pace for a fixed [`RateSource::start_time`].
///
/// With a fixed start time the source is replayable ([`Source::replayable`]): a record's
/// [`Position`] is its index (`offset`; `line` is 0), and a partition's position is the index
/// of its next record (past [`RateSource::count`] once it is exhausted).
///
/// # Examples
/// ```
/// use std::time::Duration;
/// use tideflow::source::RateSource;
/// let source = RateSource::new(1_000_000)
///     .keys(1_000)
///     .max_disorder(Duration::from_millis(20))
///     .count(10_000_000)
///     .unpaced();
/// assert_eq!(source.record(0), source.record(0)); // deterministic
/// ```
#[derive(Clone, Debug)]
pub struct RateSource {
    rows_per_sec: u64,
    keys: u64,
    max_disorder: u64,
    seed: u64,
    count: Option<u64>,
    start_ms: Option<u64>,
    partitions: usize,
    pacing: Pacing,
    /// Per local partition, the next record index.
    cursors: Vec<u64>,
    /// The global partition of each local one.
    local: Vec<usize>,
    start: u64,
    /// Paced from the start: the instant of the first read and the smallest cursor then,
    /// whose record is due at that instant.
    origin: Option<(Instant, u64)>,
}

/// When records are released.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Pacing {
    /// As fast as the dataflow takes them.
    Unpaced,
    /// Record `i` when the wall clock reaches its undisturbed event time.
    WallClock,
    /// Record `i` at `(i - j) * 1000 / rows_per_sec` ms after the first read, on the monotonic
    /// clock, where `j` is the smallest cursor then.
    FromStart,
}

impl RateSource {
    /// `rows_per_sec` events per second (at least 1). By default: 1 key, no disorder, seed 0,
    /// endless, starting at the wall clock, one partition, paced.
    pub fn new(rows_per_sec: u64) -> Self {
        RateSource {
            rows_per_sec: rows_per_sec.max(1),
            keys: 1,
            max_disorder: 0,
            seed: 0,
            count: None,
            start_ms: None,
            partitions: 1,
            pacing: Pacing::WallClock,
            cursors: Vec::new(),
            local: Vec::new(),
            start: 0,
            origin: None,
        }
    }

    /// Spreads events over `keys` keys (at least 1). By default, 1.
    pub fn keys(mut self, keys: u64) -> Self {
        self.keys = keys.max(1);
        self
    }

    /// Moves each event's time back by up to `disorder`. By default, zero.
    pub fn max_disorder(mut self, disorder: Duration) -> Self {
        self.max_disorder = millis(disorder);
        self
    }

    /// The seed of the keys, values and disorder. By default, 0.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Stops after `count` events in all. By default, never.
    pub fn count(mut self, count: u64) -> Self {
        self.count = Some(count);
        self
    }

    /// Stops after `duration` worth of events (`rows_per_sec * duration`).
    pub fn duration(self, duration: Duration) -> Self {
        let count = (self.rows_per_sec as u128 * duration.as_millis() / 1_000) as u64;
        self.count(count)
    }

    /// Event time of the first event, in ms. By default, the wall clock when the source starts.
    /// A fixed start time makes the source replayable: every run generates the same records.
    pub fn start_time(mut self, start_ms: u64) -> Self {
        self.start_ms = Some(start_ms);
        self
    }

    /// Splits events into `partitions` partitions by index stride, read in parallel. By
    /// default, 1.
    pub fn partitions(mut self, partitions: usize) -> Self {
        self.partitions = partitions.max(1);
        self
    }

    /// Generates as fast as the dataflow consumes instead of following the wall clock.
    pub fn unpaced(mut self) -> Self {
        self.pacing = Pacing::Unpaced;
        self
    }

    /// Generates `rows_per_sec` records per second from when the source starts reading,
    /// whatever their event times (which a fixed [`RateSource::start_time`] makes independent
    /// of the wall clock): record `i` is released `(i - j) * 1000 / rows_per_sec` ms after the
    /// first read, on the monotonic clock, where `j` is the smallest index any of this
    /// worker's partitions starts at (0, or where [`Source::seek`] resumed them). A resumed
    /// source thus goes on at its rate instead of catching up in a burst.
    pub fn paced_from_start(mut self) -> Self {
        self.pacing = Pacing::FromStart;
        self
    }

    /// The undisturbed event time of record `index`: when it is due.
    fn due_time(&self, index: u64) -> u64 {
        self.start + (index as u128 * 1_000 / self.rows_per_sec as u128) as u64
    }

    /// Record `index`, a function of the seed and the index alone.
    pub fn record(&self, index: u64) -> RateRecord {
        let bits = key_hash(&(self.seed, index));
        let disorder = if self.max_disorder == 0 {
            0
        } else {
            (bits >> 32) % (self.max_disorder + 1)
        };
        RateRecord {
            ts: self.due_time(index).saturating_sub(disorder),
            key: key_hash(&(bits, self.seed)) % self.keys,
            value: (bits % 1_000) as i64,
        }
    }
}

fn wall_clock_ms() -> u64 {
    wall_clock_us() / 1_000
}

fn wall_clock_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| {
            u64::try_from(since.as_micros()).unwrap_or(u64::MAX)
        })
}

impl RateSource {
    /// The index up to which (excluded) records are due now, not capped by the count. Paced
    /// from the start, the first call sets the pacing origin.
    fn due(&mut self) -> u64 {
        let elapsed_ms = match self.pacing {
            Pacing::Unpaced => return u64::MAX,
            Pacing::WallClock => {
                let now = wall_clock_ms();
                if now < self.start {
                    return 0;
                }
                now - self.start
            }
            Pacing::FromStart => {
                let (since, _) = *self.origin.get_or_insert_with(|| {
                    (
                        Instant::now(),
                        self.cursors.iter().copied().min().unwrap_or(0),
                    )
                });
                u64::try_from(since.elapsed().as_millis()).unwrap_or(u64::MAX)
            }
        };
        // The records of millisecond `m` (their due time, before disorder) are due from the
        // moment `m` begins.
        let due = (u128::from(elapsed_ms) + 1) * u128::from(self.rows_per_sec);
        let due = u64::try_from(due.div_ceil(1_000)).unwrap_or(u64::MAX);
        due.saturating_add(self.base())
    }

    /// The index due at the pacing origin: 0, or paced from the start, the smallest cursor.
    fn base(&self) -> u64 {
        match (self.pacing, self.origin) {
            (Pacing::FromStart, Some((_, base))) => base,
            _ => 0,
        }
    }

    /// How long to wait, in microseconds, until record `next` is due.
    fn wait_us(&self, next: u64) -> u64 {
        match (self.pacing, self.origin) {
            (Pacing::Unpaced, _) => 0,
            (Pacing::FromStart, Some((since, base))) => {
                let offset = (u128::from(next.saturating_sub(base)) * 1_000
                    / u128::from(self.rows_per_sec)) as u64;
                let elapsed_us = u64::try_from(since.elapsed().as_micros()).unwrap_or(u64::MAX);
                offset.saturating_mul(1_000).saturating_sub(elapsed_us)
            }
            _ => self
                .due_time(next)
                .saturating_mul(1_000)
                .saturating_sub(wall_clock_us()),
        }
    }

    /// Reads what is due into `batch` as [`Source::read`] does, turning each record into an
    /// item with `map`: a source of another item type can wrap a `RateSource` without a batch
    /// of its own.
    pub fn read_mapped<T>(
        &mut self,
        batch: &mut SourceBatch<T>,
        mut map: impl FnMut(RateRecord) -> T,
    ) -> Result<SourceStatus, Error> {
        let end = self.count.unwrap_or(u64::MAX);
        let due = self.due().min(end);
        let per_partition = (BATCH / self.local.len().max(1) as u64).max(1);
        let stride = self.partitions as u64;
        let mut live = false;
        for local in 0..self.local.len() {
            let mut cursor = self.cursors[local];
            if cursor >= end {
                continue;
            }
            let stop = due.min(cursor.saturating_add(per_partition * stride));
            while cursor < stop {
                let position = Position {
                    offset: cursor,
                    line: 0,
                };
                batch.push_at(local, map(self.record(cursor)), position);
                cursor = cursor.saturating_add(stride);
            }
            self.cursors[local] = cursor;
            if cursor >= end {
                batch.finish_partition(local);
            } else {
                live = true;
            }
        }
        if !live {
            return Ok(SourceStatus::Done);
        }
        let next = self
            .cursors
            .iter()
            .copied()
            .filter(|&c| c < end)
            .min()
            .unwrap_or(end);
        if self.pacing == Pacing::Unpaced || next < due {
            return Ok(SourceStatus::Ready);
        }
        // Sleep until the millisecond of the next record begins.
        Ok(SourceStatus::Wait(Duration::from_micros(
            self.wait_us(next).clamp(1, 100_000),
        )))
    }
}

impl Source for RateSource {
    type Item = RateRecord;

    fn on_start(&mut self, context: &SourceContext) -> Result<(), Error> {
        self.start = self.start_ms.unwrap_or_else(wall_clock_ms);
        self.local = context.local_partitions(self.partitions).collect();
        self.cursors = self.local.iter().map(|&p| p as u64).collect();
        self.origin = None;
        Ok(())
    }

    fn partitions(&self) -> usize {
        self.local.len()
    }

    fn read(&mut self, batch: &mut SourceBatch<RateRecord>) -> Result<SourceStatus, Error> {
        self.read_mapped(batch, |record| record)
    }

    /// Replayable with a fixed [`RateSource::start_time`]: without one, event times follow the
    /// wall clock at start, so a rerun generates other records.
    fn replayable(&self) -> bool {
        self.start_ms.is_some()
    }

    fn position(&self, partition: usize) -> Position {
        let offset = self.cursors.get(partition).copied().unwrap_or(0);
        Position { offset, line: 0 }
    }

    fn seek(&mut self, partition: usize, position: Position) -> Result<(), Error> {
        let Some(&global) = self.local.get(partition) else {
            return Err(Error::Internal(format!(
                "RateSource::seek: no local partition {partition}"
            )));
        };
        let stride = self.partitions as u64;
        if position.offset % stride != global as u64 {
            return Err(Error::Config(format!(
                "cannot resume rate partition {global} at record {}: it generates the records whose index is {global} modulo {stride}",
                position.offset
            )));
        }
        self.cursors[partition] = position.offset;
        self.origin = None;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;
    use crate::source::memory::tests::read_all;

    fn source() -> RateSource {
        RateSource::new(1_000)
            .keys(7)
            .seed(3)
            .max_disorder(Duration::from_millis(50))
            .start_time(1_000_000)
            .partitions(3)
            .count(40)
            .unpaced()
    }

    #[test]
    fn a_source_sought_to_a_position_reads_the_records_from_there() {
        let mut first = source();
        assert!(first.replayable());
        assert!(
            !RateSource::new(1).replayable(),
            "event times follow the wall clock"
        );
        let all = read_all(&mut first, 0, 1, &[]).unwrap();
        assert_eq!(all.records.len(), 40);
        for (partition, position, record) in &all.records {
            assert_eq!(*record, first.record(position.offset));
            assert_eq!((position.offset % 3, position.line), (*partition as u64, 0));
        }
        for partition in 0..3 {
            let of = |records: &[(usize, Position, RateRecord)]| -> Vec<(Position, RateRecord)> {
                let records = records.iter().filter(|(p, ..)| *p == partition);
                records.map(|&(_, at, r)| (at, r)).collect()
            };
            let expected = of(&all.records);
            let end = first.position(partition);
            assert!(end.offset >= 40 && end.offset % 3 == partition as u64);
            let mut positions: Vec<Position> = expected.iter().map(|(at, _)| *at).collect();
            positions.push(end);
            for (skip, &at) in positions.iter().enumerate().step_by(3) {
                let mut resumed = source();
                let read = read_all(&mut resumed, 0, 1, &[(partition, at)]).unwrap();
                assert_eq!(of(&read.records), expected[skip..], "from {at:?}");
                assert_eq!(read.finished.iter().filter(|&&p| p == partition).count(), 1);
                assert_eq!(resumed.position(partition), end);
            }
        }
    }

    #[test]
    fn local_partitions_of_two_workers_are_the_global_ones() {
        let mut seen = Vec::new();
        for worker in 0..2 {
            let mut mine = source().partitions(4);
            let read = read_all(&mut mine, worker, 2, &[]).unwrap();
            assert_eq!(Source::partitions(&mine), 2);
            for (local, position, _) in read.records {
                assert_eq!(position.offset % 4, (worker + local * 2) as u64);
                seen.push(position.offset);
            }
        }
        seen.sort();
        assert_eq!(seen, (0..40).collect::<Vec<_>>());
        let at = |offset| Position { offset, line: 0 };
        let mut mine = source().partitions(4);
        let read = read_all(&mut mine, 1, 2, &[(1, at(31))]).unwrap();
        let resumed: Vec<u64> = read
            .records
            .iter()
            .filter(|r| r.0 == 1)
            .map(|r| r.1.offset)
            .collect();
        assert_eq!(resumed, vec![31, 35, 39]);
        let error = read_all(&mut source().partitions(4), 1, 2, &[(1, at(30))])
            .err()
            .unwrap();
        assert!(
            error.to_string().contains("rate partition 3 at record 30"),
            "{error}"
        );
    }

    #[test]
    fn paced_from_start_a_resumed_source_goes_on_at_its_rate() {
        // 1000 rows per second: records 600..660 take 60 ms from the first read, not a burst
        // (unpaced) nor 660 ms (paced from index 0).
        let paced = || source().count(660).partitions(2).paced_from_start();
        let at = |offset| Position { offset, line: 0 };
        let mut resumed = paced();
        let started = Instant::now();
        let read = read_all(&mut resumed, 0, 1, &[(0, at(600)), (1, at(601))]).unwrap();
        let elapsed = started.elapsed();
        assert_eq!(read.records.len(), 60);
        assert_eq!(read.records[0].1.offset, 600);
        // Paced: at least 50 ms for the 60 records (a loaded machine only makes it longer).
        assert!(elapsed >= Duration::from_millis(50), "{elapsed:?}");
        // Paced from the first record read, not from index 0: the first read after the seek
        // waits at most a record's interval (1 ms), not 600 ms. (A slow machine only shortens
        // the wait, so this does not depend on timing.)
        let mut sought = paced();
        sought
            .on_start(&SourceContext {
                worker_index: 0,
                peers: 1,
            })
            .unwrap();
        sought.seek(0, at(600)).unwrap();
        sought.seek(1, at(601)).unwrap();
        let mut batch = SourceBatch::new();
        match sought.read(&mut batch) {
            Ok(SourceStatus::Ready) => {}
            Ok(SourceStatus::Wait(wait)) => {
                assert!(wait <= Duration::from_millis(100), "waits {wait:?}")
            }
            other => panic!("{other:?}"),
        }
        // Unsought, the first records are due at once.
        let mut fresh = paced();
        fresh
            .on_start(&SourceContext {
                worker_index: 0,
                peers: 1,
            })
            .unwrap();
        let mut batch = SourceBatch::new();
        assert!(matches!(
            fresh.read(&mut batch),
            Ok(SourceStatus::Wait(_) | SourceStatus::Ready)
        ));
        assert!(!batch.is_empty());
    }

    #[test]
    fn read_mapped_maps_each_record() {
        let mut mapped = source();
        mapped
            .on_start(&SourceContext {
                worker_index: 0,
                peers: 1,
            })
            .unwrap();
        let mut batch = SourceBatch::new();
        mapped.read_mapped(&mut batch, |r| r.value).unwrap();
        let reference = source();
        assert_eq!(batch.len(), 40);
        for ((_, value), position) in batch.records.iter().zip(&batch.positions) {
            assert_eq!(*value, reference.record(position.offset).value);
        }
    }
}
