//! The record envelope that flows through every Tideflow stream, and the key hash that routes
//! keyed records to workers.

use std::hash::{Hash, Hasher};

use serde::{Deserialize, Serialize};

/// A record with its event time, in milliseconds since the Unix epoch.
///
/// The event time travels with the record (as Flink's record timestamp does) so that stateless
/// operators keep it and windowed results can carry their own (`window_end - 1`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Event<D> {
    /// Event time in milliseconds since the Unix epoch.
    pub time: u64,
    /// The record itself.
    pub data: D,
}

impl<D> Event<D> {
    /// Wraps `data` with event time `time`.
    pub fn new(time: u64, data: D) -> Self {
        Event { time, data }
    }

    /// Applies `f` to the record and keeps the event time.
    pub fn map<D2>(self, f: impl FnOnce(D) -> D2) -> Event<D2> {
        Event {
            time: self.time,
            data: f(self.data),
        }
    }
}

/// A well-mixed 64-bit hash of a key, the same in every process of a cluster.
///
/// Timely routes a record to worker `hash & (peers - 1)` when the worker count is a power of
/// two, so the low bits must depend on every bit of the key: the Fx hash is finished with the
/// MurmurHash3 64-bit mixer. The hash has no random seed, so all processes agree on it.
///
/// # Examples
/// ```
/// use tideflow_operators::key_hash;
/// assert_eq!(key_hash("user-1"), key_hash(&"user-1".to_string()));
/// // Consecutive integers differ in their low bits after mixing.
/// assert_ne!(key_hash(&2u64) & 1, key_hash(&4u64) & 1);
/// ```
pub fn key_hash<K: Hash + ?Sized>(key: &K) -> u64 {
    let mut hasher = rustc_hash::FxHasher::default();
    key.hash(&mut hasher);
    fmix64(hasher.finish())
}

/// MurmurHash3's 64-bit finaliser: every input bit affects every output bit.
fn fmix64(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^= h >> 33;
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_hash_spreads_sequential_keys_over_low_bits() {
        let mut buckets = [0usize; 4];
        for k in 0u64..4000 {
            buckets[(key_hash(&k) & 3) as usize] += 1;
        }
        for count in buckets {
            assert!(
                (800..1200).contains(&count),
                "unbalanced buckets {buckets:?}"
            );
        }
    }
}
