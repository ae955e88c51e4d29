//! Opening and closing the files a job writes (file sinks, dead-letter files): shared by
//! `sink/` and `source/` (which dead-letters bad records), below both.
//!
//! Every write error of an output stops the job. A `BufWriter` or `File` that is dropped
//! discards the error of its last write (and of `close`), so an output is flushed explicitly
//! and, when its input ends, synced with [`sync`], which also reports what the file system
//! deferred.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Creates (or truncates) `path` for writing. A new file gets `mode` (e.g. 0o600 for files of
/// raw input: owner read and write only, whatever the umask); an existing one keeps its
/// permissions.
pub(crate) fn create(path: &Path, mode: u32) -> io::Result<File> {
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(path)
}

/// The mode of a file a sink creates by default: 0o666, less the umask (as `File::create`).
pub(crate) const DEFAULT_MODE: u32 = 0o666;

/// The mode of a file that holds raw input records (dead letters, late records): owner only.
pub(crate) const PRIVATE_MODE: u32 = 0o600;

/// Syncs `file` to its device, which reports a write error the file system deferred. A file
/// that cannot be synced (a pipe, a terminal, a character device such as `/dev/null`: `EINVAL`)
/// has nothing to sync.
pub(crate) fn sync(file: &File) -> io::Result<()> {
    match file.sync_all() {
        Err(e) if e.kind() == io::ErrorKind::InvalidInput => Ok(()),
        other => other,
    }
}
