//! The checkpoint directory's files: parts, manifests, commit records and the execution number,
//! each written to a temporary file, fsynced and renamed, and read back with their checksums
//! verified.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tideflow_operators::snapshot::Frame;

use super::fault::Fault;
use crate::error::Error;
use crate::source::Position;

/// The first bytes of every part file.
const PART_MAGIC: &[u8; 8] = b"TFPART1\n";
/// The manifest format's version (2: parts and operators named by the operators' ids).
pub(crate) const MANIFEST_VERSION: u32 = 2;
/// The manifest's file name inside a snapshot directory.
pub(crate) const MANIFEST: &str = "MANIFEST.json";
/// The prefix of snapshot directories.
const SNAPSHOT_PREFIX: &str = "snapshot-";

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

/// A sink's entry in a manifest: the file its committed output is appended to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SinkInfo {
    /// The sink's name (`sink0`, ...), also its part's and commit record's name.
    pub(crate) name: String,
    /// The output file.
    pub(crate) output: PathBuf,
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
    pub(crate) parts: Vec<PartInfo>,
    pub(crate) sinks: Vec<SinkInfo>,
}

/// A sink's commit record: what of its output file is committed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct CommitRecord {
    /// The epoch committed: the rows stamped below it are in the file.
    pub(crate) epoch: u64,
    /// The committed length of the output file.
    pub(crate) length: u64,
    /// The execution that committed it.
    pub(crate) execution: u64,
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

/// The directory of the snapshot at `epoch` written by `execution`.
pub(crate) fn snapshot_dir(dir: &Path, epoch: u64, execution: u64) -> PathBuf {
    dir.join(format!("{SNAPSHOT_PREFIX}{epoch:020}-e{execution}"))
}

/// The snapshot directories in `dir`, newest first (by epoch, then execution).
pub(crate) fn list_snapshots(dir: &Path) -> Result<Vec<(u64, u64, PathBuf)>, Error> {
    let entries = fs::read_dir(dir).map_err(|e| {
        Error::io(
            format!("cannot list the checkpoint directory {}", dir.display()),
            e,
        )
    })?;
    let mut found = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(SNAPSHOT_PREFIX)) else {
            continue;
        };
        let Some((epoch, execution)) = rest.split_once("-e") else {
            continue;
        };
        if let (Ok(epoch), Ok(execution)) = (epoch.parse::<u64>(), execution.parse::<u64>()) {
            found.push((epoch, execution, entry.path()));
        }
    }
    found.sort_by_key(|b| std::cmp::Reverse((b.0, b.1)));
    Ok(found)
}

/// Writes `bytes` to `path` atomically: a temporary file beside it, fsync, rename, fsync of
/// the directory. The temporary file is removed if anything fails.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8], fault: &Fault) -> io::Result<()> {
    let temporary = temporary_path(path);
    let written = (|| {
        fault.before_write(path)?;
        let mut file = File::create(&temporary)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&temporary, path)?;
        sync_dir(path.parent().unwrap_or(Path::new(".")))
    })();
    if written.is_err() {
        let _ = fs::remove_file(&temporary);
    }
    written
}

fn temporary_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    path.with_file_name(name)
}

/// Fsyncs a directory, so that renames in it are durable.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Writes a part file named `name` into `dir` and returns its manifest entry.
pub(crate) fn write_part(
    dir: &Path,
    name: &str,
    kind: &str,
    body: &PartBody,
    fault: &Fault,
) -> Result<PartInfo, Error> {
    let file = format!("{name}.part");
    let path = dir.join(&file);
    let mut bytes = PART_MAGIC.to_vec();
    bincode::serialize_into(&mut bytes, body)
        .map_err(|e| Error::Internal(format!("cannot encode snapshot part {file}: {e}")))?;
    write_atomic(&path, &bytes, fault)
        .map_err(|e| Error::io(format!("cannot write snapshot part {}", path.display()), e))?;
    Ok(PartInfo {
        file,
        kind: kind.to_string(),
        operator: None,
        worker: None,
        size: bytes.len() as u64,
        crc32: crc32fast::hash(&bytes),
    })
}

/// Reads the part `info` of the snapshot in `dir`, checking its size and checksum.
pub(crate) fn read_part(dir: &Path, info: &PartInfo) -> Result<PartBody, Error> {
    let path = dir.join(&info.file);
    let bytes = verified_bytes(&path, info)?;
    bincode::deserialize(&bytes[PART_MAGIC.len()..])
        .map_err(|e| Error::Snapshot(format!("{}: cannot decode the part: {e}", path.display())))
}

/// The bytes of the part file at `path`, if its size, checksum and header are right.
fn verified_bytes(path: &Path, info: &PartInfo) -> Result<Vec<u8>, Error> {
    let mut bytes = Vec::with_capacity(info.size as usize);
    File::open(path)
        .and_then(|mut file| file.read_to_end(&mut bytes))
        .map_err(|e| Error::Snapshot(format!("{}: cannot read the part: {e}", path.display())))?;
    if bytes.len() as u64 != info.size {
        return Err(Error::Snapshot(format!(
            "{}: {} bytes, the manifest says {} (truncated or overwritten)",
            path.display(),
            bytes.len(),
            info.size
        )));
    }
    if crc32fast::hash(&bytes) != info.crc32 {
        return Err(Error::Snapshot(format!(
            "{}: checksum mismatch (the file is damaged)",
            path.display()
        )));
    }
    if !bytes.starts_with(PART_MAGIC) {
        return Err(Error::Snapshot(format!(
            "{}: not a tideflow snapshot part of version 1",
            path.display()
        )));
    }
    Ok(bytes)
}

/// Writes the manifest of the snapshot in `dir`.
pub(crate) fn write_manifest(dir: &Path, manifest: &Manifest, fault: &Fault) -> Result<(), Error> {
    let path = dir.join(MANIFEST);
    let bytes = serde_json::to_vec_pretty(manifest)
        .map_err(|e| Error::Internal(format!("cannot encode a manifest: {e}")))?;
    write_atomic(&path, &bytes, fault).map_err(|e| {
        Error::io(
            format!("cannot write snapshot manifest {}", path.display()),
            e,
        )
    })
}

/// Reads and checks the snapshot in `dir`: its manifest and every part's size and checksum.
pub(crate) fn verify_snapshot(dir: &Path) -> Result<Manifest, Error> {
    let path = dir.join(MANIFEST);
    let text = fs::read(&path).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => Error::Snapshot(format!(
            "{}: missing (the snapshot was never completed)",
            path.display()
        )),
        _ => Error::Snapshot(format!("{}: cannot read: {e}", path.display())),
    })?;
    let manifest: Manifest = serde_json::from_slice(&text)
        .map_err(|e| Error::Snapshot(format!("{}: not a valid manifest: {e}", path.display())))?;
    if manifest.version != MANIFEST_VERSION {
        return Err(Error::Snapshot(format!(
            "{}: manifest version {} (this tideflow reads version {MANIFEST_VERSION})",
            path.display(),
            manifest.version
        )));
    }
    for part in &manifest.parts {
        verified_bytes(&dir.join(&part.file), part)?;
    }
    Ok(manifest)
}

/// The path of a sink's commit record.
pub(crate) fn commit_path(dir: &Path, sink: &str) -> PathBuf {
    dir.join(format!("commit-{sink}.json"))
}

/// A sink's commit record, or the empty one if it never committed.
pub(crate) fn read_commit(dir: &Path, sink: &str) -> Result<CommitRecord, Error> {
    let path = commit_path(dir, sink);
    match fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
            Error::Snapshot(format!(
                "{}: not a valid commit record: {e}",
                path.display()
            ))
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(CommitRecord::default()),
        Err(e) => Err(Error::io(format!("cannot read {}", path.display()), e)),
    }
}

/// Every sink's commit record in `dir`, by sink name.
pub(crate) fn read_commits(dir: &Path) -> Result<BTreeMap<String, CommitRecord>, Error> {
    let entries = fs::read_dir(dir).map_err(|e| {
        Error::io(
            format!("cannot list the checkpoint directory {}", dir.display()),
            e,
        )
    })?;
    let mut commits = BTreeMap::new();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(sink) = name
            .to_str()
            .and_then(|n| n.strip_prefix("commit-"))
            .and_then(|n| n.strip_suffix(".json"))
        else {
            continue;
        };
        commits.insert(sink.to_string(), read_commit(dir, sink)?);
    }
    Ok(commits)
}

/// Appends `bytes` to `output` after truncating it to `record.length` (which removes what a
/// commit interrupted half-way had appended), fsyncs it, and records the new commit.
pub(crate) fn commit_output(
    dir: &Path,
    sink: &str,
    output: &Path,
    record: CommitRecord,
    bytes: &[u8],
    next: (u64, u64),
    fault: &Fault,
) -> Result<CommitRecord, Error> {
    let failed =
        |e: io::Error| Error::io(format!("cannot commit output to {}", output.display()), e);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(output)
        .map_err(failed)?;
    file.set_len(record.length).map_err(failed)?;
    file.sync_all().map_err(failed)?;
    let mut file = OpenOptions::new()
        .append(true)
        .open(output)
        .map_err(failed)?;
    let half = bytes.len() / 2;
    file.write_all(&bytes[..half]).map_err(failed)?;
    fault.mid_commit(&mut file);
    file.write_all(&bytes[half..]).map_err(failed)?;
    file.sync_all().map_err(failed)?;
    let (epoch, execution) = next;
    let committed = CommitRecord {
        epoch,
        length: record.length + bytes.len() as u64,
        execution,
    };
    let encoded = serde_json::to_vec(&committed)
        .map_err(|e| Error::Internal(format!("cannot encode a commit record: {e}")))?;
    let path = commit_path(dir, sink);
    write_atomic(&path, &encoded, fault)
        .map_err(|e| Error::io(format!("cannot write commit record {}", path.display()), e))?;
    Ok(committed)
}

/// The execution number file.
fn execution_path(dir: &Path) -> PathBuf {
    dir.join("EXECUTION")
}

/// The execution number recorded in `dir` (0 if none).
pub(crate) fn read_execution(dir: &Path) -> Result<u64, Error> {
    let path = execution_path(dir);
    match fs::read_to_string(&path) {
        Ok(text) => text
            .trim()
            .parse()
            .map_err(|_| Error::Snapshot(format!("{}: not an execution number", path.display()))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(0),
        Err(e) => Err(Error::io(format!("cannot read {}", path.display()), e)),
    }
}

/// Records `execution` as the one that owns `dir`.
pub(crate) fn write_execution(dir: &Path, execution: u64) -> Result<(), Error> {
    let path = execution_path(dir);
    write_atomic(&path, format!("{execution}\n").as_bytes(), &Fault::none())
        .map_err(|e| Error::io(format!("cannot write {}", path.display()), e))
}

/// Removes a snapshot directory (quietly: a leftover is removed again next time).
pub(crate) fn remove_snapshot(path: &Path) {
    let _ = fs::remove_dir_all(path);
}
