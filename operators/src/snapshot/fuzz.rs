//! Fuzzing the snapshot reader's operator side: [`Snapshots::restore`] over frames of arbitrary
//! bytes, and over the frames [`Snapshots::save`] wrote with bit flips, truncations and
//! insertions, must never panic (a frame that does not decode is reported through the port);
//! unchanged frames restore what was saved.

use std::cell::RefCell;
use std::rc::Rc;

use proptest::prelude::*;

use super::{Ahead, Frame, Resumed, SnapshotPort, Snapshots};

#[path = "../../../tests/all/mutate.rs"]
mod mutate;

/// An operator's state entry with the shapes state has: strings, integers, floats, options and
/// vectors (whose lengths a damaged frame may make huge).
type Entry = (String, u64, Vec<Option<i64>>, f64, Vec<u8>);

/// A port that restores the frames it is given and records a failure instead of panicking.
#[derive(Default)]
struct Port {
    restore: RefCell<Vec<Frame>>,
    saved: RefCell<Vec<Frame>>,
    failed: RefCell<Option<String>>,
}

impl SnapshotPort for Port {
    fn pending(&self) -> Option<u64> {
        Some(1)
    }
    fn save(&self, _epoch: u64, frames: Vec<Frame>) {
        *self.saved.borrow_mut() = frames;
    }
    fn finish(&self) {}
    fn take_restored(&self) -> Vec<Frame> {
        std::mem::take(&mut *self.restore.borrow_mut())
    }
    fn resumed(&self) -> Option<Resumed> {
        None
    }
    fn fail(&self, message: String) {
        *self.failed.borrow_mut() = Some(message);
    }
    fn note_sent(&self, _time: u64) -> Ahead {
        Ahead::Nothing
    }
}

fn entry() -> impl Strategy<Value = Entry> {
    (
        ".{0,12}",
        any::<u64>(),
        prop::collection::vec(any::<Option<i64>>(), 0..4),
        any::<f64>(),
        prop::collection::vec(any::<u8>(), 0..8),
    )
}

/// Restores `frames`: the entries, or the failure reported.
fn restore(frames: Vec<Frame>) -> Result<Vec<Entry>, String> {
    let port = Rc::new(Port::default());
    *port.restore.borrow_mut() = frames;
    let entries = Snapshots::new(port.clone()).restore::<Entry>();
    let failed = port.failed.borrow_mut().take();
    match failed {
        Some(message) => Err(message),
        None => Ok(entries),
    }
}

/// The frames `save` writes for `entries`, spread over a few key groups.
fn saved(entries: &[Entry]) -> Vec<Frame> {
    let port = Rc::new(Port::default());
    let mut snapshots = Snapshots::new(port.clone());
    snapshots.save(
        1,
        entries.iter().enumerate().map(|(i, e)| (i as u64 % 3, e)),
    );
    let frames = port.saved.borrow().clone();
    frames
}

/// Compares entries with floats by their bits (NaN included).
fn same(a: &[Entry], b: &[Entry]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(x, y)| {
            (&x.0, x.1, &x.2, x.3.to_bits(), &x.4) == (&y.0, y.1, &y.2, y.3.to_bits(), &y.4)
        })
}

proptest! {
    #![proptest_config(mutate::config(64))]

    #[test]
    fn fuzz_snapshot_restore_round_trips_saved_frames(
        entries in prop::collection::vec(entry(), 0..12),
    ) {
        let frames = saved(&entries);
        let back = restore(frames).expect("saved frames restore");
        // Restored by key group: entry i went to group i % 3.
        let mut expected: Vec<Entry> = Vec::new();
        for group in 0..3 {
            expected.extend(entries.iter().enumerate().filter(|(i, _)| *i as u64 % 3 == group).map(|(_, e)| e.clone()));
        }
        prop_assert!(same(&back, &expected));
    }

    #[test]
    fn fuzz_snapshot_restore_never_panics_on_damaged_frames(
        entries in prop::collection::vec(entry(), 1..6),
        mutations in mutate::mutations(),
        extra_count in 0u64..3,
    ) {
        let mut frames = saved(&entries);
        for frame in &mut frames {
            frame.bytes = mutate::mutate(&frame.bytes, &mutations);
            frame.count += extra_count;
        }
        let _ = restore(frames);
    }

    #[test]
    fn fuzz_snapshot_restore_never_panics_on_arbitrary_frames(
        bytes in mutate::arbitrary_bytes(96),
        count in prop_oneof![0u64..4, Just(u64::MAX)],
        group in any::<u16>(),
    ) {
        let _ = restore(vec![Frame { group, count, bytes }]);
    }
}

#[test]
fn fuzz_snapshot_restore_refuses_a_huge_length_without_allocating_it() {
    // A string length of 2^62 in the first entry: an error, not an allocation.
    let mut bytes = (1u64 << 62).to_le_bytes().to_vec();
    bytes.extend_from_slice(b"abc");
    let restored = restore(vec![Frame {
        group: 0,
        count: 1,
        bytes,
    }]);
    assert!(restored.is_err(), "{restored:?}");
}
