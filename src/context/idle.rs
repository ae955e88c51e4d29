//! Idle source instances: each instance of a source (one per worker) publishes its watermark
//! here after every poll, and whether all its partitions are idle. An instance whose
//! partitions are all idle raises its watermark to the smallest one of its peers that are not
//! all idle, or if all are idle, to the largest of theirs: the instances' partitions together
//! follow the rule of one instance's (the minimum over partitions that are not idle, the
//! largest if all are), so that a worker with only quiet partitions (a Kafka partition nobody
//! writes to) does not hold back every window (Flink marks such a source subtask idle). Only
//! the instances of this process are seen: in a cluster, the other processes' instances do
//! not raise it. Built only for sources whose watermark strategy has an idle timeout.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::lock;

/// The published watermarks of every source with an idle timeout, by the order in which each
/// worker builds its sources (the same on every worker).
#[derive(Default)]
pub(crate) struct IdleSources {
    sources: Mutex<Vec<Arc<[AtomicU64]>>>,
}

impl IdleSources {
    /// Worker `worker`'s handle on the `ordinal`-th source built, among `peers` workers.
    pub(crate) fn peer_floor(&self, ordinal: usize, worker: usize, peers: usize) -> PeerFloor {
        let mut sources = lock(&self.sources);
        while sources.len() <= ordinal {
            sources.push(
                (0..peers.max(1))
                    .map(|_| AtomicU64::new(PeerFloor::NOT_HOLDING))
                    .collect(),
            );
        }
        PeerFloor {
            slots: Arc::clone(&sources[ordinal]),
            worker,
        }
    }
}

/// One source instance's view of its peers' watermarks.
pub(crate) struct PeerFloor {
    slots: Arc<[AtomicU64]>,
    worker: usize,
}

impl PeerFloor {
    /// An instance that has ended or has not published (in another process).
    const NOT_HOLDING: u64 = u64::MAX;
    /// The flag of an all-idle instance's published watermark.
    const IDLE: u64 = 1 << 63;

    /// Publishes this instance's watermark (`None` once it has ended) and whether all its
    /// partitions are idle, and returns the floor for it: the smallest watermark of the others
    /// that are not all idle, else the largest of the all-idle ones, else `None`.
    #[inline]
    pub(crate) fn exchange(&self, own: Option<u64>, idle: bool) -> Option<u64> {
        if let Some(slot) = self.slots.get(self.worker) {
            let own = own.map_or(Self::NOT_HOLDING, |w| {
                w.min(Self::IDLE - 1) | if idle { Self::IDLE } else { 0 }
            });
            slot.store(own, Ordering::Relaxed);
        }
        let mut active_min: Option<u64> = None;
        let mut idle_max: Option<u64> = None;
        for (worker, slot) in self.slots.iter().enumerate() {
            let published = slot.load(Ordering::Relaxed);
            if worker == self.worker || published == Self::NOT_HOLDING {
                continue;
            }
            let watermark = published & !Self::IDLE;
            if published & Self::IDLE == 0 {
                active_min = Some(active_min.map_or(watermark, |m| m.min(watermark)));
            } else {
                idle_max = Some(idle_max.map_or(watermark, |m| m.max(watermark)));
            }
        }
        active_min.or(idle_max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_instance_sees_the_smallest_watermark_of_its_holding_peers() {
        let sources = IdleSources::default();
        let floors: Vec<PeerFloor> = (0..3).map(|w| sources.peer_floor(0, w, 3)).collect();
        let other = sources.peer_floor(1, 0, 3);
        assert_eq!(
            floors[0].exchange(Some(0), true),
            None,
            "no peer has published"
        );
        assert_eq!(floors[1].exchange(Some(700), false), Some(0));
        assert_eq!(floors[2].exchange(Some(400), false), Some(700));
        assert_eq!(floors[0].exchange(Some(0), true), Some(400));
        assert_eq!(
            floors[0].exchange(Some(400), true),
            Some(400),
            "the smallest of the active"
        );
        assert_eq!(
            floors[2].exchange(Some(900), true),
            Some(700),
            "worker 2 idle"
        );
        assert_eq!(
            floors[1].exchange(Some(700), true),
            Some(900),
            "all idle: the largest"
        );
        assert_eq!(floors[2].exchange(None, false), Some(700), "worker 2 ended");
        assert_eq!(
            other.exchange(Some(5), false),
            None,
            "another source's slots"
        );
    }
}
