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
    /// Only at processing-time boundaries: wall-clock multiples of `interval` since the epoch,
    /// as Spark's `ProcessingTime` trigger aligns its batches. Results leave in micro-batches;
    /// a window whose end is such a multiple (a 1 s window under a 100 ms interval) leaves one
    /// interval after the watermark passes it.
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

/// The capability-release schedule of a [`Trigger`], driven by the source's wall clock.
#[derive(Clone, Debug)]
pub(crate) struct Schedule {
    trigger: Trigger,
    /// For [`Trigger::Interval`]: the interval in ms and the next boundary (wall-clock ms since
    /// the epoch; 0 until the first release).
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
            next_boundary: 0,
        }
    }

    /// Whether the capability follows the watermark after every poll (continuous and
    /// available-now).
    pub(crate) fn follows_polls(&self) -> bool {
        matches!(self.trigger, Trigger::Continuous | Trigger::AvailableNow)
    }

    /// For an interval trigger, whether a boundary has been reached at wall-clock time
    /// `now_ms` (the first call always says yes, at the job's start); the boundary is consumed.
    /// Always `false` for the other triggers.
    pub(crate) fn boundary_due(&mut self, now_ms: u64) -> bool {
        if !matches!(self.trigger, Trigger::Interval(_)) || now_ms < self.next_boundary {
            return false;
        }
        self.next_boundary = (now_ms / self.interval_ms + 1) * self.interval_ms;
        true
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
        assert!(!schedule.follows_polls());
        // The first look releases and aligns the boundaries to multiples of the interval.
        assert!(schedule.boundary_due(30));
        assert!(!schedule.boundary_due(31));
        assert!(!schedule.boundary_due(99));
        assert_eq!(schedule.wait(40), Some(Duration::from_millis(60)));
        assert!(schedule.boundary_due(100));
        assert!(!schedule.boundary_due(150));
        // A late look skips the boundaries it missed: one release, the next one ahead.
        assert!(schedule.boundary_due(420));
        assert!(!schedule.boundary_due(499));
        assert!(schedule.boundary_due(500));
    }

    #[test]
    fn continuous_available_now_and_once() {
        for trigger in [Trigger::Continuous, Trigger::AvailableNow] {
            let mut schedule = Schedule::new(trigger);
            assert!(schedule.follows_polls() && !schedule.boundary_due(0));
            assert_eq!(schedule.wait(5), None);
        }
        let mut once = Schedule::new(Trigger::Once);
        assert!(!once.follows_polls() && !once.boundary_due(u64::MAX));
    }
}
