//! Watermark arithmetic: bounded out-of-orderness per source partition, minimum over partitions.
//!
//! A source partition (a file, a generator stride, a Kafka partition) has seen event times up to
//! `max_seen`; its watermark is `max_seen - delay`. A source's watermark is the minimum over its
//! partitions that have not finished; it is held as the source operator's capability, so it is
//! the frontier downstream. A record is stamped with the larger of its event time and its
//! partition's watermark *before* the record, so the stamp depends only on the records before it
//! in its partition, never on how partitions interleave or on timing.

use std::time::Duration;

/// How a source derives its watermark.
///
/// # Examples
/// ```
/// use std::time::Duration;
/// use tideflow_operators::watermark::WatermarkStrategy;
/// let strategy = WatermarkStrategy::bounded_delay(Duration::from_secs(5));
/// assert_eq!(strategy.delay_ms(), 5_000);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WatermarkStrategy {
    /// How far behind the largest event time seen in a partition its watermark stays: the
    /// out-of-orderness the stream is allowed. By default, zero (events in order).
    pub delay: Duration,
}

impl WatermarkStrategy {
    /// Watermarks that trail the largest event time seen by `delay`.
    pub fn bounded_delay(delay: Duration) -> Self {
        WatermarkStrategy { delay }
    }

    /// The delay in whole milliseconds (saturating).
    pub fn delay_ms(&self) -> u64 {
        u64::try_from(self.delay.as_millis()).unwrap_or(u64::MAX)
    }
}

impl From<Duration> for WatermarkStrategy {
    fn from(delay: Duration) -> Self {
        WatermarkStrategy::bounded_delay(delay)
    }
}

/// Per-partition watermark state of one source instance.
///
/// # Examples
/// ```
/// use tideflow_operators::watermark::PartitionWatermarks;
/// let mut wm = PartitionWatermarks::new(2, 100);
/// assert_eq!(wm.stamp(0, 1_000), 1_000);   // first record of partition 0
/// assert_eq!(wm.stamp(0, 850), 900);       // behind its partition's watermark (1000 - 100)
/// assert_eq!(wm.watermark(), Some(0));     // partition 1 has seen nothing yet
/// assert_eq!(wm.stamp(1, 2_000), 2_000);
/// assert_eq!(wm.watermark(), Some(900));
/// wm.finish(0);
/// assert_eq!(wm.watermark(), Some(1_900));
/// wm.finish(1);
/// assert_eq!(wm.watermark(), None);        // every partition done: the input is over
/// ```
#[derive(Clone, Debug)]
pub struct PartitionWatermarks {
    delay: u64,
    partitions: Vec<PartitionState>,
}

#[derive(Clone, Copy, Debug)]
struct PartitionState {
    /// Largest event time seen, or `None` before the first record.
    max_seen: Option<u64>,
    finished: bool,
}

impl PartitionWatermarks {
    /// State for `partitions` partitions with out-of-orderness `delay_ms`.
    pub fn new(partitions: usize, delay_ms: u64) -> Self {
        let fresh = PartitionState {
            max_seen: None,
            finished: false,
        };
        PartitionWatermarks {
            delay: delay_ms,
            partitions: vec![fresh; partitions],
        }
    }

    /// Adds a partition (a new file in a watched directory, say) and returns its index. Until it
    /// sees its first record it holds the watermark where it is.
    pub fn add_partition(&mut self) -> usize {
        self.partitions.push(PartitionState {
            max_seen: None,
            finished: false,
        });
        self.partitions.len() - 1
    }

    /// The number of partitions, finished or not.
    pub fn len(&self) -> usize {
        self.partitions.len()
    }

    /// Whether there are no partitions at all.
    pub fn is_empty(&self) -> bool {
        self.partitions.is_empty()
    }

    /// The watermark of one partition: `max_seen - delay`, or 0 before its first record.
    pub fn partition_watermark(&self, partition: usize) -> u64 {
        self.partitions[partition]
            .max_seen
            .map_or(0, |m| m.saturating_sub(self.delay))
    }

    /// Records an event of `partition` and returns its stamp: the larger of its event time and
    /// the partition's watermark before it. A stamp above the event time marks a late arrival.
    ///
    /// # Panics
    /// If `partition` is out of range: the source broke its own partition numbering.
    #[inline]
    pub fn stamp(&mut self, partition: usize, event_time: u64) -> u64 {
        let state = &mut self.partitions[partition];
        let before = state.max_seen.map_or(0, |m| m.saturating_sub(self.delay));
        state.max_seen = Some(state.max_seen.map_or(event_time, |m| m.max(event_time)));
        event_time.max(before)
    }

    /// Marks a partition as exhausted: it no longer holds the watermark back.
    pub fn finish(&mut self, partition: usize) {
        self.partitions[partition].finished = true;
    }

    /// The source's watermark: the minimum over unfinished partitions, or `None` once every
    /// partition has finished (the input is over and every window may close).
    pub fn watermark(&self) -> Option<u64> {
        self.partitions
            .iter()
            .filter(|p| !p.finished)
            .map(|p| p.max_seen.map_or(0, |m| m.saturating_sub(self.delay)))
            .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn no_partitions_means_no_watermark() {
        assert_eq!(PartitionWatermarks::new(0, 10).watermark(), None);
    }

    #[test]
    fn delay_larger_than_event_time_saturates_at_zero() {
        let mut wm = PartitionWatermarks::new(1, 5_000);
        assert_eq!(wm.stamp(0, 1_000), 1_000);
        assert_eq!(wm.watermark(), Some(0));
    }

    proptest! {
        /// The stamp depends only on the partition's own history, not on how partitions
        /// interleave, and the watermark never decreases.
        #[test]
        fn stamps_ignore_interleaving(
            a in proptest::collection::vec(0u64..10_000, 0..50),
            b in proptest::collection::vec(0u64..10_000, 0..50),
            order in proptest::collection::vec(any::<bool>(), 0..100),
            delay in 0u64..2_000,
        ) {
            let alone = |events: &[u64]| {
                let mut wm = PartitionWatermarks::new(1, delay);
                events.iter().map(|&t| wm.stamp(0, t)).collect::<Vec<_>>()
            };
            let mut wm = PartitionWatermarks::new(2, delay);
            let (mut ia, mut ib) = (0, 0);
            let (mut sa, mut sb) = (Vec::new(), Vec::new());
            let mut last = wm.watermark();
            let mut choices = order.iter().copied().chain(std::iter::repeat(true));
            while ia < a.len() || ib < b.len() {
                let take_a = ib == b.len() || (ia < a.len() && choices.next().unwrap_or(true));
                if take_a { sa.push(wm.stamp(0, a[ia])); ia += 1; } else { sb.push(wm.stamp(1, b[ib])); ib += 1; }
                let now = wm.watermark();
                prop_assert!(now >= last);
                last = now;
            }
            prop_assert_eq!(sa, alone(&a));
            prop_assert_eq!(sb, alone(&b));
        }
    }
}
