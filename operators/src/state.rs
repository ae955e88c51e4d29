//! How much keyed state an operator holds: a gauge each stateful operator keeps up to date,
//! given to it in its [`StateConfig`](crate::stateful::StateConfig).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Rows of state held by one operator on one worker: now, and the most ever.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StateCount {
    /// Rows held now.
    pub rows: u64,
    /// The most rows held at any time so far.
    pub peak: u64,
}

/// A shared gauge of the rows of state an operator holds. The operator sets it after each
/// activation (never per record); whoever holds a clone reads it, from any thread (two relaxed
/// atomics: a reader on another thread may see a new `rows` with the previous `peak`).
///
/// # Examples
/// ```
/// use tideflow_operators::state::StateRows;
/// let gauge = StateRows::default();
/// let reader = gauge.clone();
/// gauge.set(10);
/// gauge.set(4);
/// assert_eq!((reader.get().rows, reader.get().peak), (4, 10));
/// ```
#[derive(Clone, Debug, Default)]
pub struct StateRows {
    count: Arc<Gauge>,
}

/// The atomics behind a [`StateRows`].
#[derive(Debug, Default)]
struct Gauge {
    rows: AtomicU64,
    peak: AtomicU64,
}

impl StateRows {
    /// Records that the operator now holds `rows` rows.
    #[inline]
    pub fn set(&self, rows: u64) {
        self.count.rows.store(rows, Ordering::Relaxed);
        // Only its operator sets a gauge: a plain load and store keep the peak exact.
        if rows > self.count.peak.load(Ordering::Relaxed) {
            self.count.peak.store(rows, Ordering::Relaxed);
        }
    }

    /// The rows held now and at most.
    pub fn get(&self) -> StateCount {
        let rows = self.count.rows.load(Ordering::Relaxed);
        let peak = self.count.peak.load(Ordering::Relaxed);
        StateCount {
            rows,
            peak: peak.max(rows),
        }
    }
}
