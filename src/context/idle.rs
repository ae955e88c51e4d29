//! Idle source instances: each instance of a source (one per worker) publishes its watermark
//! here after every poll, unless all its partitions are idle; an instance whose partitions are
//! all idle raises its watermark to the smallest one its peers published, so that a worker
//! with only quiet partitions (a Kafka partition nobody writes to) does not hold back every
//! window (DESIGN.md "Time"; Flink marks such a source subtask idle). Only the instances of
//! this process are seen: in a cluster, the other processes' instances do not raise it.
//! Built only for sources whose watermark strategy has an idle timeout.

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
    /// An instance that does not hold its peers back: all idle, ended, or not seen (in
    /// another process).
    const NOT_HOLDING: u64 = u64::MAX;

    /// Publishes this instance's watermark (`None` if it does not hold its peers back) and
    /// returns the smallest of the others' (`None` if none holds).
    #[inline]
    pub(crate) fn exchange(&self, own: Option<u64>) -> Option<u64> {
        if let Some(slot) = self.slots.get(self.worker) {
            let own = own.map_or(Self::NOT_HOLDING, |w| w.min(Self::NOT_HOLDING - 1));
            slot.store(own, Ordering::Relaxed);
        }
        self.slots
            .iter()
            .enumerate()
            .filter(|&(worker, _)| worker != self.worker)
            .map(|(_, slot)| slot.load(Ordering::Relaxed))
            .filter(|&watermark| watermark != Self::NOT_HOLDING)
            .min()
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
        assert_eq!(floors[0].exchange(None), None, "no peer has published");
        assert_eq!(floors[1].exchange(Some(700)), None);
        assert_eq!(floors[2].exchange(Some(400)), Some(700));
        assert_eq!(floors[0].exchange(None), Some(400));
        assert_eq!(floors[2].exchange(None), Some(700), "worker 2 went idle");
        assert_eq!(other.exchange(None), None, "another source's slots");
    }
}
