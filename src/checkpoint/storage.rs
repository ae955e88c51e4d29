//! Where snapshots are kept: the [`CheckpointStorage`] trait, the operations the coordinator
//! and committers use, and [`LocalDir`], a local checkpoint directory (the only store today;
//! object stores can follow behind the same trait).
//!
//! The store moves bytes; what they mean (parts, manifests, commit records, their formats and
//! checksums) is `files.rs`'s. Every write is atomic: a reader sees the old file or the new
//! one, whole.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::fault::Fault;

/// The prefix of snapshot directories.
const SNAPSHOT_PREFIX: &str = "snapshot-";

/// A snapshot: its epoch and the execution that took it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct SnapshotId {
    /// The epoch.
    pub(crate) epoch: u64,
    /// The execution that wrote it.
    pub(crate) execution: u64,
}

/// A file in the store: at its top (the execution number, commit records) or in a snapshot.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Location<'a> {
    /// A file beside the snapshots.
    Top(&'a str),
    /// A file of a snapshot.
    In(SnapshotId, &'a str),
    /// A snapshot itself.
    Snapshot(SnapshotId),
}

/// The operations of a checkpoint store. Errors are I/O errors; callers name the file with
/// [`CheckpointStorage::describe`].
pub(crate) trait CheckpointStorage: Send + Sync {
    /// Creates the store if it does not exist.
    fn create(&self) -> io::Result<()>;

    /// The snapshots in the store, complete or not, newest first (by epoch, then execution).
    fn snapshots(&self) -> io::Result<Vec<SnapshotId>>;

    /// Creates the (empty) snapshot `id`.
    fn create_snapshot(&self, id: SnapshotId) -> io::Result<()>;

    /// Writes a file atomically and durably (fault injection may fail it: `write-fail`).
    fn write(&self, at: Location<'_>, bytes: &[u8]) -> io::Result<()>;

    /// Reads a whole file.
    fn read(&self, at: Location<'_>) -> io::Result<Vec<u8>>;

    /// Whether a file exists.
    fn exists(&self, at: Location<'_>) -> bool;

    /// Makes the store's list of snapshots durable (after a manifest was written).
    fn sync(&self) -> io::Result<()>;

    /// Removes a snapshot (quietly: a leftover is removed again next time).
    fn remove_snapshot(&self, id: SnapshotId);

    /// How to name a file, or the store itself (`None`), in a message.
    fn describe(&self, at: Option<Location<'_>>) -> String;
}

/// A local checkpoint directory: `DIR/snapshot-EPOCH-eEXECUTION/FILE` and `DIR/FILE`, each
/// written to a temporary file, fsynced, renamed, with the directory fsynced.
pub(crate) struct LocalDir {
    dir: PathBuf,
    fault: Arc<Fault>,
}

impl LocalDir {
    /// The directory `dir`, with the crash tests' `fault`.
    pub(crate) fn new(dir: PathBuf, fault: Arc<Fault>) -> Self {
        LocalDir { dir, fault }
    }

    fn snapshot_dir(&self, id: SnapshotId) -> PathBuf {
        self.dir.join(format!(
            "{SNAPSHOT_PREFIX}{:020}-e{}",
            id.epoch, id.execution
        ))
    }

    fn path(&self, at: Location<'_>) -> PathBuf {
        match at {
            Location::Top(file) => self.dir.join(file),
            Location::In(id, file) => self.snapshot_dir(id).join(file),
            Location::Snapshot(id) => self.snapshot_dir(id),
        }
    }
}

impl CheckpointStorage for LocalDir {
    fn create(&self) -> io::Result<()> {
        fs::create_dir_all(&self.dir)
    }

    fn snapshots(&self) -> io::Result<Vec<SnapshotId>> {
        let mut found = Vec::new();
        for entry in fs::read_dir(&self.dir)?.flatten() {
            let name = entry.file_name();
            let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(SNAPSHOT_PREFIX)) else {
                continue;
            };
            let Some((epoch, execution)) = rest.split_once("-e") else {
                continue;
            };
            if let (Ok(epoch), Ok(execution)) = (epoch.parse::<u64>(), execution.parse::<u64>()) {
                found.push(SnapshotId { epoch, execution });
            }
        }
        found.sort_by_key(|id| std::cmp::Reverse((id.epoch, id.execution)));
        Ok(found)
    }

    fn create_snapshot(&self, id: SnapshotId) -> io::Result<()> {
        fs::create_dir_all(self.snapshot_dir(id))
    }

    fn write(&self, at: Location<'_>, bytes: &[u8]) -> io::Result<()> {
        write_atomic(&self.path(at), bytes, &self.fault)
    }

    fn read(&self, at: Location<'_>) -> io::Result<Vec<u8>> {
        fs::read(self.path(at))
    }

    fn exists(&self, at: Location<'_>) -> bool {
        self.path(at).exists()
    }

    fn sync(&self) -> io::Result<()> {
        sync_dir(&self.dir)
    }

    fn remove_snapshot(&self, id: SnapshotId) {
        let _ = fs::remove_dir_all(self.snapshot_dir(id));
    }

    fn describe(&self, at: Option<Location<'_>>) -> String {
        match at {
            Some(at) => self.path(at).display().to_string(),
            None => self.dir.display().to_string(),
        }
    }
}

/// Writes `bytes` to `path` atomically: a temporary file beside it, fsync, rename, fsync of
/// the directory. The temporary file is removed if anything fails.
fn write_atomic(path: &Path, bytes: &[u8], fault: &Fault) -> io::Result<()> {
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
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}
