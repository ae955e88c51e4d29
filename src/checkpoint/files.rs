//! The checkpoint's files and their formats: parts, manifests, the execution number and the
//! directory's id, written through the [`CheckpointStorage`] and read back with their
//! checksums verified.
//! (Sinks' commit records are their committers': `sink/file/commit.rs`.)

use std::io;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use tideflow_operators::snapshot::Frame;

use super::job::JobField;
use super::storage::{CheckpointStorage, Location, SnapshotId};
use crate::error::Error;
use crate::position::Position;

/// The first bytes of every part file.
const PART_MAGIC: &[u8; 8] = b"TFPART1\n";
/// The manifest format's version (2: parts and operators named by the operators' ids; 3: and
/// the job's fingerprint).
pub(crate) const MANIFEST_VERSION: u32 = 3;
/// The oldest manifest version read: a version 2 manifest has no job fingerprint, and its
/// snapshot is resumed without comparing the job (`job.rs`).
const OLDEST_MANIFEST_VERSION: u32 = 2;
/// The manifest's file name inside a snapshot directory.
pub(crate) const MANIFEST: &str = "MANIFEST.json";
/// The execution number's file name.
pub(crate) const EXECUTION: &str = "EXECUTION";
/// The file that names the checkpoint directory: a random id made once, when a job first takes
/// the directory over, and kept as long as the directory (`CommitContext::checkpoint_id`).
pub(crate) const CHECKPOINT_ID: &str = "ID";

/// Where a source partition resumes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct PartitionCursor {
    /// The global partition number.
    pub(crate) partition: u64,
    /// The position of the first record to replay.
    pub(crate) position: Position,
    /// The partition's largest event time before that record.
    pub(crate) max_seen: Option<u64>,
    /// Whether the partition had ended.
    pub(crate) finished: bool,
}

/// What a part holds.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum PartBody {
    /// A stateful operator's state, by key group.
    Operator(Vec<Frame>),
    /// A source's partitions.
    Source(Vec<PartitionCursor>),
    /// A sink's output for the epochs since its previous part, encoded.
    Sink(#[serde(with = "serde_bytes")] Vec<u8>),
}

/// A part as the manifest lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct PartInfo {
    /// The file name inside the snapshot directory.
    pub(crate) file: String,
    /// The operator kind (`tumbling`, `source`, `sink`...).
    pub(crate) kind: String,
    /// A stateful operator's part: the operator's id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) operator: Option<String>,
    /// A stateful operator's or a source's part: the worker that wrote it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) worker: Option<usize>,
    /// The file's size in bytes.
    pub(crate) size: u64,
    /// CRC-32 of the whole file.
    pub(crate) crc32: u32,
}

/// A stateful operator as a manifest lists it: its id and kind.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub(crate) struct OperatorInfo {
    /// The operator's id (`tumbling`, `session#2`, or the name the job gave it).
    pub(crate) id: String,
    /// Its kind.
    pub(crate) kind: String,
}

/// A sink's entry in a manifest: its name and, for a file sink, the file its committed output
/// is appended to (so that recovery can finish its commit before the job is built).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SinkInfo {
    /// The sink's name (`sink0`, ...), also its part's and commit record's name.
    pub(crate) name: String,
    /// The output file of a file sink.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) output: Option<PathBuf>,
    /// How to reopen another sink's committer from the manifest alone
    /// ([`CommitTarget::Reopen`](super::commit::CommitTarget::Reopen): a Kafka sink's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) reopen: Option<ReopenInfo>,
}

/// A committer's description in the manifest: its kind and what it needs to reopen (free
/// text, the committer's own format).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ReopenInfo {
    pub(crate) kind: String,
    pub(crate) spec: String,
}

/// The last file of a snapshot: without it the snapshot does not exist.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Manifest {
    pub(crate) version: u32,
    /// The epoch: every part holds the effects of the records stamped below it.
    pub(crate) epoch: u64,
    /// The execution that wrote it.
    pub(crate) execution: u64,
    /// The number of workers that wrote it.
    pub(crate) peers: usize,
    /// Whether this is the end of the job: every source had ended.
    #[serde(rename = "final")]
    pub(crate) is_final: bool,
    /// The job's stateful operators, by id.
    pub(crate) operators: Vec<OperatorInfo>,
    /// The job's fingerprint (`None` in a version 2 manifest).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) job: Option<Vec<JobField>>,
    pub(crate) parts: Vec<PartInfo>,
    pub(crate) sinks: Vec<SinkInfo>,
}

/// The part file stem of operator `id` on `worker`: `op-ID-wN`, the id's bytes other than
/// ASCII letters, digits, `_`, `-` and `.` written `%XX` (so that two ids never share a file).
pub(crate) fn operator_stem(id: &str, worker: usize) -> String {
    let mut stem = String::from("op-");
    for byte in id.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'_' | b'-' | b'.') {
            stem.push(char::from(byte));
        } else {
            stem.push_str(&format!("%{byte:02X}"));
        }
    }
    stem.push_str(&format!("-w{worker}"));
    stem
}

/// Writes a part file named `name` into snapshot `id` and returns its manifest entry.
pub(crate) fn write_part(
    storage: &dyn CheckpointStorage,
    id: SnapshotId,
    name: &str,
    kind: &str,
    body: &PartBody,
) -> Result<PartInfo, Error> {
    let file = format!("{name}.part");
    let mut bytes = PART_MAGIC.to_vec();
    bincode::serialize_into(&mut bytes, body)
        .map_err(|e| Error::Internal(format!("cannot encode snapshot part {file}: {e}")))?;
    let at = Location::In(id, &file);
    storage.write(at, &bytes).map_err(|e| {
        Error::io(
            format!("cannot write snapshot part {}", storage.describe(Some(at))),
            e,
        )
    })?;
    Ok(PartInfo {
        kind: kind.to_string(),
        operator: None,
        worker: None,
        size: bytes.len() as u64,
        crc32: crc32fast::hash(&bytes),
        file,
    })
}

/// Reads the part `info` of snapshot `id`, checking its size and checksum.
pub(crate) fn read_part(
    storage: &dyn CheckpointStorage,
    id: SnapshotId,
    info: &PartInfo,
) -> Result<PartBody, Error> {
    let bytes = verified_bytes(storage, id, info)?;
    bincode::deserialize(&bytes[PART_MAGIC.len()..]).map_err(|e| {
        Error::Snapshot(format!(
            "{}: cannot decode the part: {e}",
            storage.describe(Some(Location::In(id, &info.file)))
        ))
    })
}

/// The bytes of the part `info` of snapshot `id`, if its size, checksum and header are right.
fn verified_bytes(
    storage: &dyn CheckpointStorage,
    id: SnapshotId,
    info: &PartInfo,
) -> Result<Vec<u8>, Error> {
    let at = Location::In(id, &info.file);
    let path = storage.describe(Some(at));
    let bytes = storage
        .read(at)
        .map_err(|e| Error::Snapshot(format!("{path}: cannot read the part: {e}")))?;
    if bytes.len() as u64 != info.size {
        return Err(Error::Snapshot(format!(
            "{path}: {} bytes, the manifest says {} (truncated or overwritten)",
            bytes.len(),
            info.size
        )));
    }
    if crc32fast::hash(&bytes) != info.crc32 {
        return Err(Error::Snapshot(format!(
            "{path}: checksum mismatch (the file is damaged)"
        )));
    }
    if !bytes.starts_with(PART_MAGIC) {
        return Err(Error::Snapshot(format!(
            "{path}: not a tideflow snapshot part of version 1"
        )));
    }
    Ok(bytes)
}

/// Writes the manifest of snapshot `id`.
pub(crate) fn write_manifest(
    storage: &dyn CheckpointStorage,
    id: SnapshotId,
    manifest: &Manifest,
) -> Result<(), Error> {
    let at = Location::In(id, MANIFEST);
    let bytes = serde_json::to_vec_pretty(manifest)
        .map_err(|e| Error::Internal(format!("cannot encode a manifest: {e}")))?;
    storage.write(at, &bytes).map_err(|e| {
        Error::io(
            format!(
                "cannot write snapshot manifest {}",
                storage.describe(Some(at))
            ),
            e,
        )
    })
}

/// Reads and checks snapshot `id`: its manifest and every part's size and checksum.
pub(crate) fn verify_snapshot(
    storage: &dyn CheckpointStorage,
    id: SnapshotId,
) -> Result<Manifest, Error> {
    let path = storage.describe(Some(Location::In(id, MANIFEST)));
    let text = storage
        .read(Location::In(id, MANIFEST))
        .map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => Error::Snapshot(format!(
                "{path}: missing (the snapshot was never completed)"
            )),
            _ => Error::Snapshot(format!("{path}: cannot read: {e}")),
        })?;
    let manifest: Manifest = serde_json::from_slice(&text)
        .map_err(|e| Error::Snapshot(format!("{path}: not a valid manifest: {e}")))?;
    if !(OLDEST_MANIFEST_VERSION..=MANIFEST_VERSION).contains(&manifest.version) {
        return Err(Error::Snapshot(format!(
            "{path}: manifest version {} (this tideflow reads versions {OLDEST_MANIFEST_VERSION} to {MANIFEST_VERSION})",
            manifest.version
        )));
    }
    for part in &manifest.parts {
        verified_bytes(storage, id, part)?;
    }
    Ok(manifest)
}

/// The execution number recorded in the store (0 if none).
pub(crate) fn read_execution(storage: &dyn CheckpointStorage) -> Result<u64, Error> {
    let at = Location::Top(EXECUTION);
    // As `fs::read_to_string` would: text that is not UTF-8 cannot be read.
    let text = storage.read(at).and_then(|bytes| {
        String::from_utf8(bytes).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                "stream did not contain valid UTF-8",
            )
        })
    });
    match text {
        Ok(text) => text.trim().parse().map_err(|_| {
            Error::Snapshot(format!(
                "{}: not an execution number",
                storage.describe(Some(at))
            ))
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(0),
        Err(e) => Err(Error::io(
            format!("cannot read {}", storage.describe(Some(at))),
            e,
        )),
    }
}

/// Records `execution` as the one that owns the store.
pub(crate) fn write_execution(
    storage: &dyn CheckpointStorage,
    execution: u64,
) -> Result<(), Error> {
    let at = Location::Top(EXECUTION);
    storage
        .write(at, format!("{execution}\n").as_bytes())
        .map_err(|e| Error::io(format!("cannot write {}", storage.describe(Some(at))), e))
}

/// The checkpoint directory's id (`CHECKPOINT_ID`), made (16 random hex digits) and written
/// if it is missing.
pub(crate) fn checkpoint_id(storage: &dyn CheckpointStorage) -> Result<String, Error> {
    let at = Location::Top(CHECKPOINT_ID);
    match storage.read(at) {
        Ok(bytes) => {
            let id = String::from_utf8_lossy(&bytes).trim().to_string();
            if id.is_empty() || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
                return Err(Error::Snapshot(format!(
                    "{}: not a checkpoint id",
                    storage.describe(Some(at))
                )));
            }
            Ok(id)
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            use std::hash::{BuildHasher, Hasher};
            // `RandomState` is seeded from the OS's randomness; the time and the process make
            // two directories created at once differ even if it were not.
            let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
            hasher.write_u128(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos()),
            );
            hasher.write_u32(std::process::id());
            let id = format!("{:016x}", hasher.finish());
            storage
                .write(at, format!("{id}\n").as_bytes())
                .map_err(|e| {
                    Error::io(format!("cannot write {}", storage.describe(Some(at))), e)
                })?;
            Ok(id)
        }
        Err(e) => Err(Error::io(
            format!("cannot read {}", storage.describe(Some(at))),
            e,
        )),
    }
}
