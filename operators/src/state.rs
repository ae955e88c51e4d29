//! How much keyed state an operator holds: a gauge each stateful operator keeps up to date.

use std::cell::Cell;
use std::rc::Rc;

/// Rows of state held by one operator on one worker: now, and the most ever.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StateCount {
    /// Rows held now.
    pub rows: u64,
    /// The most rows held at any time so far.
    pub peak: u64,
}

/// A shared gauge of the rows of state an operator holds. The operator sets it after each
/// activation (never per record); whoever holds a clone reads it.
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
    count: Rc<Cell<StateCount>>,
}

impl StateRows {
    /// Records that the operator now holds `rows` rows.
    #[inline]
    pub fn set(&self, rows: u64) {
        let StateCount { peak, .. } = self.count.get();
        self.count.set(StateCount {
            rows,
            peak: peak.max(rows),
        });
    }

    /// The rows held now and at most.
    pub fn get(&self) -> StateCount {
        self.count.get()
    }
}
