//! The rate generator: a deterministic synthetic stream of keyed events.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tideflow_operators::key_hash;

use super::{Source, SourceBatch, SourceContext, SourceStatus};
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
/// dataflow takes them.
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
    paced: bool,
    /// Per local partition, the next record index.
    cursors: Vec<u64>,
    local: Vec<usize>,
    start: u64,
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
            paced: true,
            cursors: Vec::new(),
            local: Vec::new(),
            start: 0,
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
        self.paced = false;
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

impl Source for RateSource {
    type Item = RateRecord;

    fn on_start(&mut self, context: &SourceContext) -> Result<(), Error> {
        self.start = self.start_ms.unwrap_or_else(wall_clock_ms);
        self.local = context.local_partitions(self.partitions).collect();
        self.cursors = self.local.iter().map(|&p| p as u64).collect();
        Ok(())
    }

    fn partitions(&self) -> usize {
        self.local.len()
    }

    fn read(&mut self, batch: &mut SourceBatch<RateRecord>) -> Result<SourceStatus, Error> {
        let end = self.count.unwrap_or(u64::MAX);
        // Paced, the records of millisecond `m` (their due time, before disorder) are read from
        // the moment `m` begins on the wall clock.
        let due = if self.paced {
            let now = wall_clock_ms();
            if now < self.start {
                0
            } else {
                ((now - self.start + 1) as u128 * self.rows_per_sec as u128)
                    .div_ceil(1_000)
                    .min(end as u128) as u64
            }
        } else {
            end
        };
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
                batch.push(local, self.record(cursor));
                cursor += stride;
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
        if !self.paced || next < due {
            return Ok(SourceStatus::Ready);
        }
        // Sleep until the millisecond of the next record begins.
        let wait_us = (self.due_time(next) * 1_000).saturating_sub(wall_clock_us());
        Ok(SourceStatus::Wait(Duration::from_micros(
            wait_us.clamp(1, 100_000),
        )))
    }
}
