//! The rate search of `tideflow bench throughput`.

/// The search of `bench throughput`: doubling (or halving) from the first rate until one rate
/// is sustained and another is not, then bisecting until they are within 5%.
pub(super) struct RateSearch {
    next: Option<u64>,
    max_rate: u64,
    good: Option<u64>,
    bad: Option<u64>,
}

impl RateSearch {
    /// The lowest rate tried when even the first one is not sustained.
    const MIN_RATE: u64 = 1_000;

    pub(super) fn new(first: u64, max_rate: u64) -> Self {
        RateSearch {
            next: Some(first),
            max_rate,
            good: None,
            bad: None,
        }
    }

    /// The next rate to probe, or `None` when the search is over.
    pub(super) fn next(&self) -> Option<u64> {
        self.next
    }

    /// Records whether `rate` was sustained, and picks the next rate.
    pub(super) fn record(&mut self, rate: u64, sustained: bool) {
        if sustained {
            self.good = Some(self.good.map_or(rate, |good| good.max(rate)));
        } else {
            self.bad = Some(self.bad.map_or(rate, |bad| bad.min(rate)));
        }
        self.next = match (self.good, self.bad) {
            (Some(good), None) if good < self.max_rate => {
                Some(good.saturating_mul(2).min(self.max_rate))
            }
            (None, Some(bad)) if bad > Self::MIN_RATE => Some((bad / 2).max(Self::MIN_RATE)),
            (Some(good), Some(bad)) if bad - good > good / 20 => Some(good + (bad - good) / 2),
            _ => None,
        };
    }

    /// The highest sustained rate found.
    pub(super) fn sustained(&self) -> Option<u64> {
        self.good
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs a search from `first` against an engine that sustains up to `capacity`.
    fn search(first: u64, capacity: u64) -> (Vec<u64>, Option<u64>) {
        let mut search = RateSearch::new(first, 256_000_000);
        let mut probed = Vec::new();
        while let Some(rate) = search.next() {
            probed.push(rate);
            search.record(rate, rate <= capacity);
        }
        (probed, search.sustained())
    }

    #[test]
    fn rate_search_doubles_then_bisects_to_within_five_percent() {
        let (probed, found) = search(1_000_000, 5_500_000);
        assert_eq!(&probed[..4], &[1_000_000, 2_000_000, 4_000_000, 8_000_000]);
        let found = found.unwrap();
        assert!(
            found <= 5_500_000 && found * 20 >= 5_500_000 * 19,
            "{found}"
        );
        assert!(probed.len() <= 10, "{probed:?}");
    }

    #[test]
    fn rate_search_halves_when_the_first_rate_fails() {
        let (probed, found) = search(1_000_000, 300_000);
        assert_eq!(&probed[..3], &[1_000_000, 500_000, 250_000]);
        assert!(found.unwrap() <= 300_000);
        let (_, nothing) = search(1_000_000, 10);
        assert_eq!(nothing, None);
    }

    #[test]
    fn rate_search_stops_at_the_maximum() {
        let mut search = RateSearch::new(200_000_000, 256_000_000);
        search.record(200_000_000, true);
        assert_eq!(search.next(), Some(256_000_000));
        search.record(256_000_000, true);
        assert_eq!(search.next(), None);
        assert_eq!(search.sustained(), Some(256_000_000));
    }
}
