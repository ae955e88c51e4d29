//! Fuzzing the snapshot reader's files: part files (`read_part`), manifests
//! (`verify_snapshot`, and recovery's search for the newest usable snapshot) and the execution
//! number, over arbitrary bytes and over valid files with bit flips, truncations and
//! insertions. Nothing may panic: a damaged file is an error naming it. Valid files read back
//! what was written.

use std::path::PathBuf;
use std::sync::Arc;

use proptest::prelude::*;
use tideflow_operators::snapshot::Frame;

use super::fault::Fault;
use super::files::{
    self, Manifest, OperatorInfo, PartBody, PartInfo, PartitionCursor, SinkInfo, MANIFEST_VERSION,
};
use super::job::JobFingerprint;
use super::recovery::newest_usable;
use super::storage::{CheckpointStorage, LocalDir, Location, SnapshotId};
use crate::position::Position;

use crate::mutate;

const ID: SnapshotId = SnapshotId {
    epoch: 7,
    execution: 1,
};

/// A checkpoint directory with the empty snapshot [`ID`].
fn store() -> (tempfile::TempDir, LocalDir) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let storage = LocalDir::new(dir.path().to_path_buf(), Arc::new(Fault::none()));
    storage.create().expect("creates");
    storage.create_snapshot(ID).expect("a snapshot directory");
    (dir, storage)
}

fn frame() -> impl Strategy<Value = Frame> {
    (
        any::<u16>(),
        any::<u64>(),
        prop::collection::vec(any::<u8>(), 0..16),
    )
        .prop_map(|(group, count, bytes)| Frame {
            group,
            count,
            bytes,
        })
}

fn cursor() -> impl Strategy<Value = PartitionCursor> {
    (
        any::<u64>(),
        any::<u64>(),
        any::<u64>(),
        any::<Option<u64>>(),
        any::<bool>(),
    )
        .prop_map(
            |(partition, offset, line, max_seen, finished)| PartitionCursor {
                partition,
                position: Position { offset, line },
                max_seen,
                finished,
            },
        )
}

fn body() -> impl Strategy<Value = PartBody> {
    prop_oneof![
        prop::collection::vec(frame(), 0..4).prop_map(PartBody::Operator),
        prop::collection::vec(cursor(), 0..4).prop_map(PartBody::Source),
        prop::collection::vec(any::<u8>(), 0..32).prop_map(PartBody::Sink),
    ]
}

fn manifest(parts: Vec<PartInfo>) -> impl Strategy<Value = Manifest> {
    (
        any::<u64>(),
        1usize..8,
        any::<bool>(),
        prop::collection::vec(("[a-z#0-9]{1,8}", "[a-z]{1,8}"), 0..3),
        prop::collection::vec(("sink[0-9]", any::<Option<String>>()), 0..3),
        prop::option::of(prop::collection::vec(("[a-z-]{1,8}", ".{0,8}"), 0..3)),
    )
        .prop_map(
            move |(execution, peers, is_final, operators, sinks, job)| Manifest {
                version: MANIFEST_VERSION,
                epoch: ID.epoch,
                execution,
                peers,
                is_final,
                operators: operators
                    .into_iter()
                    .map(|(id, kind)| OperatorInfo { id, kind })
                    .collect(),
                parts: parts.clone(),
                sinks: sinks
                    .into_iter()
                    .map(|(name, output)| SinkInfo {
                        name,
                        output: output.map(PathBuf::from),
                        reopen: None,
                    })
                    .collect(),
                job: job.map(|fields| {
                    let job = fields
                        .into_iter()
                        .fold(JobFingerprint::new(), |job, (name, value)| {
                            job.field(name, value)
                        });
                    super::job::to_manifest(&job)
                }),
            },
        )
}

/// Writes `bytes` as part `name` of [`ID`] and returns its manifest entry (right size and
/// checksum, so that its decoding is reached).
fn raw_part(storage: &LocalDir, name: &str, bytes: &[u8]) -> PartInfo {
    storage
        .write(Location::In(ID, name), bytes)
        .expect("writes the part");
    PartInfo {
        file: name.to_string(),
        kind: "fuzz".into(),
        operator: None,
        worker: None,
        size: bytes.len() as u64,
        crc32: crc32fast::hash(bytes),
    }
}

/// The bytes of the part `body` as `write_part` writes it.
fn part_bytes(storage: &LocalDir, body: &PartBody) -> (PartInfo, Vec<u8>) {
    let info = files::write_part(storage, ID, "valid", "fuzz", body).expect("writes");
    let bytes = storage
        .read(Location::In(ID, &info.file))
        .expect("reads the part");
    (info, bytes)
}

proptest! {
    #![proptest_config(mutate::config(32))]

    #[test]
    fn fuzz_snapshot_files_round_trip(body in body(), manifest in manifest(Vec::new())) {
        let (_dir, storage) = store();
        let (info, _) = part_bytes(&storage, &body);
        let back = files::read_part(&storage, ID, &info).expect("reads back");
        prop_assert_eq!(format!("{back:?}"), format!("{body:?}"));
        let manifest = Manifest { parts: vec![info], ..manifest };
        files::write_manifest(&storage, ID, &manifest).expect("writes the manifest");
        prop_assert_eq!(&files::verify_snapshot(&storage, ID).expect("verifies"), &manifest);
        let found = newest_usable(&storage).expect("recovers").expect("a snapshot");
        prop_assert_eq!(found.id, ID);
    }

    #[test]
    fn fuzz_snapshot_files_never_panic_when_damaged(
        body in body(),
        manifest in manifest(Vec::new()),
        mutations in mutate::mutations(),
    ) {
        let (_dir, storage) = store();
        let (info, bytes) = part_bytes(&storage, &body);
        let damaged = mutate::mutate(&bytes, &mutations);
        // With the manifest's size and checksum: refused unless unchanged.
        storage.write(Location::In(ID, &info.file), &damaged).expect("writes");
        let read = files::read_part(&storage, ID, &info);
        prop_assert!(read.is_err() || damaged == bytes);
        // With its own size and checksum: decoded, or refused, never a panic.
        let own = raw_part(&storage, "own.part", &damaged);
        let _ = files::read_part(&storage, ID, &own);
        // A damaged manifest.
        let manifest = Manifest { parts: vec![info], ..manifest };
        files::write_manifest(&storage, ID, &manifest).expect("writes the manifest");
        let text = storage.read(Location::In(ID, files::MANIFEST)).expect("reads");
        storage
            .write(Location::In(ID, files::MANIFEST), &mutate::mutate(&text, &mutations))
            .expect("writes");
        let _ = files::verify_snapshot(&storage, ID);
        let _ = newest_usable(&storage);
    }

    #[test]
    fn fuzz_snapshot_files_never_panic_on_arbitrary_bytes(
        bytes in mutate::arbitrary_bytes(96),
    ) {
        let (_dir, storage) = store();
        let mut part = b"TFPART1\n".to_vec();
        part.extend_from_slice(&bytes);
        let info = raw_part(&storage, "arbitrary.part", &part);
        let _ = files::read_part(&storage, ID, &info);
        let info = raw_part(&storage, "bare.part", &bytes);
        let _ = files::read_part(&storage, ID, &info);
        storage.write(Location::In(ID, files::MANIFEST), &bytes).expect("writes");
        let _ = files::verify_snapshot(&storage, ID);
        let _ = newest_usable(&storage);
        storage.write(Location::Top(files::EXECUTION), &bytes).expect("writes");
        let _ = files::read_execution(&storage);
    }
}
