//! Triggers: when a source lets its watermark advance, and when a bounded read finishes.
//!
//! The window operators close windows when the frontier passes them, and a source's frontier is
//! its capability. A trigger therefore needs no operator of its own: it decides when the source
//! downgrades its capability to its watermark (DESIGN.md "Triggers": micro-batches are batched
//! epochs). Records keep their stamps whatever the trigger, so which records are late, and every
//! window's final result, are the same under every trigger; only when results leave differs.

use std::time::Duration;

/// When a source advances its capability (its watermark, as downstream operators see it).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Trigger {
    /// As soon as the watermark moves: results leave the moment the watermark passes them.
    #[default]
    Continuous,
    /// Only at processing-time boundaries every `interval` from the start (Spark's
    /// `ProcessingTime` trigger): results leave in micro-batches.
    Interval(Duration),
    /// Like continuous, but the source finishes as soon as no input is ready: it reads the input
    /// available at start (for a watched directory, the files already there) and ends the job
    /// (Spark's `AvailableNow`).
    AvailableNow,
    /// The input available at start as one batch: the capability stays where it started until
    /// the source finishes, as soon as no input is ready (Spark's `Once`).
    Once,
}

impl Trigger {
    /// Whether the source finishes once no input is ready.
    pub fn finishes_when_idle(self) -> bool {
        matches!(self, Trigger::AvailableNow | Trigger::Once)
    }
}

/// The capability-release schedule of a [`Trigger`], driven by the source's monotonic clock.
#[derive(Clone, Debug)]
pub(crate) struct Schedule {
    trigger: Trigger,
    /// For [`Trigger::Interval`]: the interval in ms and the next boundary (monotonic ms).
    interval_ms: u64,
    next_boundary: u64,
}

impl Schedule {
    pub(crate) fn new(trigger: Trigger) -> Self {
        let interval_ms = match trigger {
            Trigger::Interval(interval) => u64::try_from(interval.as_millis())
                .unwrap_or(u64::MAX)
                .max(1),
            _ => 0,
        };
        Schedule {
            trigger,
            interval_ms,
            next_boundary: interval_ms,
        }
    }

    /// Whether the capability may advance at monotonic time `now_ms`; an interval boundary is
    /// consumed when it is reached.
    pub(crate) fn release(&mut self, now_ms: u64) -> bool {
        match self.trigger {
            Trigger::Continuous | Trigger::AvailableNow => true,
            Trigger::Once => false,
            Trigger::Interval(_) => {
                if now_ms < self.next_boundary {
                    return false;
                }
                self.next_boundary = (now_ms / self.interval_ms + 1) * self.interval_ms;
                true
            }
        }
    }

    /// How long after `now_ms` the next release is due, for a source that holds back a
    /// watermark advance; `None` when no timed release will come.
    pub(crate) fn wait(&self, now_ms: u64) -> Option<Duration> {
        match self.trigger {
            Trigger::Interval(_) => Some(Duration::from_millis(
                self.next_boundary.saturating_sub(now_ms),
            )),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interval_releases_once_per_boundary() {
        let mut schedule = Schedule::new(Trigger::Interval(Duration::from_millis(100)));
        assert!(!schedule.release(0));
        assert!(!schedule.release(99));
        assert_eq!(schedule.wait(40), Some(Duration::from_millis(60)));
        assert!(schedule.release(100));
        assert!(!schedule.release(150));
        // A late look skips the boundaries it missed: one release, the next one ahead.
        assert!(schedule.release(420));
        assert!(!schedule.release(499));
        assert!(schedule.release(500));
    }

    #[test]
    fn continuous_and_once() {
        assert!(Schedule::new(Trigger::Continuous).release(0));
        assert!(Schedule::new(Trigger::AvailableNow).release(0));
        assert!(!Schedule::new(Trigger::Once).release(u64::MAX));
        assert_eq!(Schedule::new(Trigger::Continuous).wait(5), None);
    }
}
