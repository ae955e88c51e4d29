//! Listing a file source's input: the file itself, or the regular files of a directory, in
//! name order. Symbolic links are followed to the regular files they name, as Spark's file
//! source does; a hidden entry (a name starting with `.`) and a subdirectory whose name starts
//! with `_` (a table's metadata) are skipped silently; any other entry
//! (a subdirectory, a FIFO, a socket, a device, a link to a directory or a dangling link) is
//! skipped with a warning on standard error, once per path.

use std::collections::HashSet;
use std::fs::FileType;
use std::path::{Path, PathBuf};

use crate::error::Error;

/// What a listing of an input found.
pub(crate) struct Listing {
    /// The files read, in name order.
    pub(crate) files: Vec<PathBuf>,
    /// The entries skipped for not being regular files, with what each is.
    pub(crate) skipped: Vec<(PathBuf, &'static str)>,
}

impl Listing {
    /// Warns on standard error of each skipped entry not in `warned`, and adds it there.
    pub(crate) fn warn_skipped(&self, warned: &mut HashSet<PathBuf>) {
        for (path, what) in &self.skipped {
            if warned.insert(path.clone()) {
                note!(
                    "tideflow: warning: skipping {}: {what}, not a file (an input directory's regular files, and symbolic links to them, are read)",
                    path.display()
                );
            }
        }
    }
}

/// The files a file source reads from `path` at start: itself, or the visible regular files
/// of a directory (following symbolic links), sorted by name.
///
/// # Examples
/// ```
/// let dir = tempfile::tempdir()?;
/// std::fs::write(dir.path().join("b.jsonl"), "")?;
/// std::fs::write(dir.path().join("a.jsonl"), "")?;
/// std::fs::write(dir.path().join(".hidden"), "")?;
/// std::fs::create_dir(dir.path().join("sub"))?;
/// let files = tideflow::source::input_files(dir.path())?;
/// assert_eq!(files, vec![dir.path().join("a.jsonl"), dir.path().join("b.jsonl")]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn input_files(path: &Path) -> Result<Vec<PathBuf>, Error> {
    Ok(list(path)?.files)
}

/// Lists `path` (see the module docs).
pub(crate) fn list(path: &Path) -> Result<Listing, Error> {
    let metadata = std::fs::metadata(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => {
            Error::Config(format!("input {} does not exist", path.display()))
        }
        _ => Error::io(format!("cannot read input {}", path.display()), e),
    })?;
    if !metadata.is_dir() {
        return Ok(Listing {
            files: vec![path.to_path_buf()],
            skipped: Vec::new(),
        });
    }
    let entries = std::fs::read_dir(path)
        .map_err(|e| Error::io(format!("cannot list directory {}", path.display()), e))?;
    let mut files = Vec::new();
    let mut skipped = Vec::new();
    for entry in entries {
        let entry =
            entry.map_err(|e| Error::io(format!("cannot list directory {}", path.display()), e))?;
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        let path = entry.path();
        let Ok(kind) = entry.file_type() else {
            skipped.push((path, "cannot be examined"));
            continue;
        };
        let kind = if kind.is_symlink() {
            match std::fs::metadata(&path) {
                Ok(target) if target.is_file() => {
                    files.push(path);
                    continue;
                }
                Ok(target) if target.is_dir() => "a symbolic link to a directory",
                Ok(_) => "a symbolic link to a special file",
                Err(_) => "a dangling symbolic link",
            }
        } else if kind.is_file() {
            files.push(path);
            continue;
        } else if kind.is_dir() && entry.file_name().to_string_lossy().starts_with('_') {
            // A table's metadata (`_tideflow_log`, `_delta_log`, `_spark_metadata`), as Spark
            // skips it.
            continue;
        } else {
            describe(kind)
        };
        skipped.push((path, kind));
    }
    files.sort();
    skipped.sort();
    Ok(Listing { files, skipped })
}

/// What an entry that is neither a regular file nor a symbolic link is, for the warning.
fn describe(kind: FileType) -> &'static str {
    if kind.is_dir() {
        return "a directory";
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if kind.is_fifo() {
            return "a FIFO";
        }
        if kind.is_socket() {
            return "a socket";
        }
        if kind.is_block_device() || kind.is_char_device() {
            return "a device";
        }
    }
    "a special file"
}
