//! Window assignment: which windows an event time belongs to, and how sessions merge.
//!
//! Pure functions and data structures, shared by the window operators and tested on their own.

/// The end (exclusive) of the tumbling window of `size` ms that contains `time`.
///
/// # Examples
/// ```
/// use tideflow_operators::window::assign::tumbling_end;
/// assert_eq!(tumbling_end(0, 1_000), 1_000);
/// assert_eq!(tumbling_end(999, 1_000), 1_000);
/// assert_eq!(tumbling_end(1_000, 1_000), 2_000);
/// ```
#[inline]
pub fn tumbling_end(time: u64, size: u64) -> u64 {
    (time - time % size).saturating_add(size)
}

/// The ends of the sliding windows `[k * slide, k * slide + size)` that contain `time`, latest
/// first. Windows that would start before the epoch are left out. Requires
/// `0 < slide <= size`.
///
/// # Examples
/// ```
/// use tideflow_operators::window::assign::sliding_ends;
/// let ends: Vec<u64> = sliding_ends(12_500, 10_000, 5_000).collect();
/// assert_eq!(ends, vec![20_000, 15_000]); // [10s, 20s) and [5s, 15s)
/// ```
#[inline]
pub fn sliding_ends(time: u64, size: u64, slide: u64) -> impl Iterator<Item = u64> {
    let last_start = time - time % slide;
    let mut next = Some(last_start);
    std::iter::from_fn(move || {
        let start = next?;
        if start.saturating_add(size) <= time {
            return None;
        }
        next = start.checked_sub(slide);
        Some(start.saturating_add(size))
    })
}

/// The window ends of sliding windows: `size + k * slide` for `k >= 0`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Grid {
    pub(crate) size: u64,
    pub(crate) slide: u64,
}

impl Grid {
    /// The smallest window end above `time`: the first window containing it, if it is `time`.
    pub(crate) fn first_end_after(&self, time: u64) -> u64 {
        if time < self.size {
            self.size
        } else {
            self.size + ((time - self.size) / self.slide + 1) * self.slide
        }
    }

    /// The first window containing `time` that a record stamped `stamp` is not late for under
    /// `lateness` (its end: `end + lateness > stamp`). Above [`last_end`](Self::last_end) when
    /// the record is late for every window containing it.
    pub(crate) fn first_open_end(&self, time: u64, stamp: u64, lateness: u64) -> u64 {
        match stamp.checked_sub(lateness) {
            Some(bound) => self.first_end_after(time).max(self.first_end_after(bound)),
            None => self.first_end_after(time),
        }
    }

    /// The end of the last window containing `time`.
    pub(crate) fn last_end(&self, time: u64) -> u64 {
        (time - time % self.slide).saturating_add(self.size)
    }
}

/// One session: `[start, end)` with `end = last_event + gap`, its accumulator, and the end at
/// which its close timer is registered.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Session<Acc> {
    /// The first event time.
    pub start: u64,
    /// The last event time plus the gap.
    pub end: u64,
    /// The aggregate so far.
    pub acc: Acc,
    /// Where the session's close timer is registered (at or before `end`).
    pub timer: u64,
}

/// The open sessions of one key, sorted by start. Two sessions merge when they touch:
/// `[a, b)` and `[c, d)` with `c <= b` (as Spark's `session_window` and Flink's merging windows do).
///
/// # Examples
/// ```
/// use tideflow_operators::window::assign::Sessions;
/// let mut sessions = Sessions::default();
/// let gap = 10;
/// for t in [0u64, 5, 30, 15] {
///     let (session, _new) = sessions.insert(t, t + gap, || 0u32, |a, b| *a += b);
///     session.acc += 1;
/// }
/// let spans: Vec<(u64, u64, u32)> = sessions.iter().map(|s| (s.start, s.end, s.acc)).collect();
/// // 15 touches [0, 15): the first session grows to [0, 25); 30 stands alone.
/// assert_eq!(spans, vec![(0, 25, 3), (30, 40, 1)]);
/// ```
#[derive(Clone, Debug)]
pub struct Sessions<Acc> {
    list: Vec<Session<Acc>>,
}

impl<Acc> Default for Sessions<Acc> {
    fn default() -> Self {
        Sessions { list: Vec::new() }
    }
}

impl<Acc> Sessions<Acc> {
    /// Adds the window `[start, end)`, merging every session it touches into one, and returns
    /// that session and whether it is new (its timer is then `end`). `init` makes the
    /// accumulator of a new session; `merge` folds one accumulator into another.
    pub fn insert(
        &mut self,
        start: u64,
        end: u64,
        init: impl FnOnce() -> Acc,
        mut merge: impl FnMut(&mut Acc, Acc),
    ) -> (&mut Session<Acc>, bool) {
        // Sessions are sorted and pairwise apart, so the ones touching [start, end] are a run.
        let first = self.list.partition_point(|s| s.end < start);
        let last = first + self.list[first..].partition_point(|s| s.start <= end);
        if first == last {
            if self.list.capacity() == 0 {
                // Most keys have one open session: room for one, not the four `Vec` starts
                // with (it doubles from there).
                self.list.reserve_exact(1);
            }
            self.list.insert(
                first,
                Session {
                    start,
                    end,
                    acc: init(),
                    timer: end,
                },
            );
            return (&mut self.list[first], true);
        }
        let merged: Vec<Session<Acc>> = self.list.drain(first + 1..last).collect();
        let session = &mut self.list[first];
        session.start = session.start.min(start);
        session.end = session.end.max(end);
        for other in merged {
            session.end = session.end.max(other.end);
            session.timer = session.timer.min(other.timer);
            merge(&mut session.acc, other.acc);
        }
        (session, false)
    }

    /// Sessions from `list`, sorted by start and pairwise apart (as [`Sessions::iter`] gave
    /// them).
    pub fn from_list(list: Vec<Session<Acc>>) -> Self {
        Sessions { list }
    }

    /// The sessions, sorted by start.
    pub fn iter(&self) -> impl Iterator<Item = &Session<Acc>> {
        self.list.iter()
    }

    /// Whether there are no open sessions.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// Removes and returns the sessions whose timer is `timer`, for which `is_done` holds; the
    /// others with that timer are re-armed at their end, and `rearm` is told each new timer.
    pub fn fire(
        &mut self,
        timer: u64,
        mut rearm: impl FnMut(u64),
        mut closed: impl FnMut(Session<Acc>),
    ) {
        let mut index = 0;
        while index < self.list.len() {
            let session = &mut self.list[index];
            if session.timer != timer {
                index += 1;
            } else if session.end <= timer {
                closed(self.list.remove(index));
            } else {
                session.timer = session.end;
                rearm(session.end);
                index += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Sessions as a batch engine computes them: sort, then merge while `next <= current end`.
    fn batch_sessions(mut times: Vec<u64>, gap: u64) -> Vec<(u64, u64, usize)> {
        times.sort_unstable();
        let mut out: Vec<(u64, u64, usize)> = Vec::new();
        for t in times {
            match out.last_mut() {
                Some(last) if t <= last.1 => {
                    last.1 = last.1.max(t + gap);
                    last.2 += 1;
                }
                _ => out.push((t, t + gap, 1)),
            }
        }
        out
    }

    proptest! {
        #[test]
        fn sessions_match_batch_merging_in_any_order(
            times in proptest::collection::vec(0u64..500, 0..60),
            gap in 1u64..40,
        ) {
            let mut sessions = Sessions::default();
            for &t in &times {
                let (session, _) = sessions.insert(t, t + gap, || 0usize, |a, b| *a += b);
                session.acc += 1;
            }
            let got: Vec<_> = sessions.iter().map(|s| (s.start, s.end, s.acc)).collect();
            prop_assert_eq!(got, batch_sessions(times, gap));
        }

        #[test]
        fn tumbling_window_contains_time(time in 0u64..u64::MAX / 2, size in 1u64..1_000_000) {
            let end = tumbling_end(time, size);
            prop_assert!(end - size <= time && time < end);
            prop_assert_eq!(end % size, 0);
        }

        #[test]
        fn sliding_windows_are_exactly_those_containing_time(
            time in 0u64..100_000, slide in 1u64..2_000, factor in 1u64..6, extra in 0u64..1_000,
        ) {
            let size = slide * factor + extra % slide;
            let ends: Vec<u64> = sliding_ends(time, size, slide).collect();
            let expected: Vec<u64> = (0..=time / slide)
                .rev()
                .map(|k| k * slide + size)
                .filter(|&end| end - size <= time && time < end)
                .collect();
            prop_assert_eq!(ends, expected);
        }
    }

    #[test]
    fn fire_closes_done_sessions_and_rearms_extended_ones() {
        let mut sessions = Sessions::default();
        sessions.insert(0, 10, || (), |_, _| ());
        sessions.insert(20, 30, || (), |_, _| ());
        sessions.insert(25, 35, || (), |_, _| ()); // extends [20, 30) to [20, 35), timer stays 30
        let mut rearmed = Vec::new();
        let mut closed = Vec::new();
        sessions.fire(30, |t| rearmed.push(t), |s| closed.push((s.start, s.end)));
        assert_eq!(rearmed, vec![35]);
        assert!(closed.is_empty());
        sessions.fire(10, |t| rearmed.push(t), |s| closed.push((s.start, s.end)));
        assert_eq!(closed, vec![(0, 10)]);
    }

    proptest! {
        /// The grid brackets exactly the windows the assigner says contain a time: the first
        /// end after it and the last end containing it, every `slide` between.
        #[test]
        fn grid_matches_the_sliding_assigner(
            time in 0u64..200_000, slide in 1u64..3_000, factor in 1u64..8, extra in 0u64..3_000,
        ) {
            let size = slide * factor + extra % slide;
            let grid = Grid { size, slide };
            let mut ends: Vec<u64> = sliding_ends(time, size, slide).collect();
            ends.reverse();
            let bracketed: Vec<u64> =
                (grid.first_end_after(time)..=grid.last_end(time)).step_by(slide as usize).collect();
            prop_assert_eq!(ends, bracketed);
        }
    }

    #[test]
    fn grid_ends_bracket_the_windows_containing_a_time() {
        let grid = Grid {
            size: 1_000,
            slide: 300,
        };
        // Windows containing 1_250: [300, 1300), [600, 1600), [900, 1900), [1200, 2200).
        assert_eq!(grid.first_end_after(1_250), 1_300);
        assert_eq!(grid.last_end(1_250), 2_200);
        assert_eq!(grid.first_end_after(10), 1_000);
        assert_eq!(grid.last_end(10), 1_000);
        // An end is not after itself.
        assert_eq!(grid.first_end_after(1_300), 1_600);
    }
}
