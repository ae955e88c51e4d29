//! A Parquet output directory and its commit log, in the manner of Spark's `_spark_metadata`:
//! the files a reader may read are the ones the log lists.
//!
//! Layout of an output directory `DIR`:
//! - `DIR/part-NNNNN-TOKEN.parquet`: committed files (`TOKEN` tells the runs of a job apart).
//! - `DIR/_tideflow_log/NNNNNNNNNNNNNNNNNNNN.json`: one entry per commit, numbered from 0
//!   ([`LogEntry`]: the epoch, the files with their rows and bytes, the job). An entry is
//!   written to a temporary name, synced and renamed, after its files are in place: a reader
//!   that lists the log and reads the files it names never sees a partial or uncommitted file.
//! - `DIR/_tideflow_staging/`: files being written or pre-committed, renamed into `DIR` by
//!   the commit; what a crashed run left there is removed when the next run recovers.
//!
//! Readers that list the directory itself (pyarrow, Spark, DuckDB's globs) skip names that
//! start with `_` or `.`, so they see the committed files too, and only whole files.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::Error;

/// The commit log's folder in an output directory.
pub const LOG_DIR: &str = "_tideflow_log";
/// The folder of files not yet committed.
pub(crate) const STAGING_DIR: &str = "_tideflow_staging";

/// One commit in the log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogEntry {
    /// The snapshot's epoch whose output this commit published (the rows stamped below it);
    /// `None` for a job without snapshots.
    pub epoch: Option<u64>,
    /// The files the commit made visible, in the output directory.
    pub files: Vec<LoggedFile>,
    /// The checkpoint directory's id of the job that committed (`None` without snapshots).
    pub job: Option<String>,
    /// The execution (run) that committed.
    pub execution: u64,
}

/// A committed file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoggedFile {
    /// Its name in the output directory.
    pub name: String,
    /// Its number of rows.
    pub rows: u64,
    /// Its size in bytes.
    pub bytes: u64,
}

/// The entries of the commit log of `dir`, in commit order (none if it has no log).
pub fn read_log(dir: &Path) -> Result<Vec<LogEntry>, Error> {
    Ok(read_numbered(dir)?
        .into_iter()
        .map(|(_, entry)| entry)
        .collect())
}

/// The committed files of the Parquet output directory `dir`, in commit order: the files its
/// commit log lists. A reader that reads these never sees a partial or uncommitted file.
pub fn committed_files(dir: &Path) -> Result<Vec<PathBuf>, Error> {
    Ok(read_log(dir)?
        .iter()
        .flat_map(|entry| entry.files.iter().map(|file| dir.join(&file.name)))
        .collect())
}

/// The log entries of `dir` with their numbers, in order.
fn read_numbered(dir: &Path) -> Result<Vec<(u64, LogEntry)>, Error> {
    let log = dir.join(LOG_DIR);
    let listing = match fs::read_dir(&log) {
        Ok(listing) => listing,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(format!("cannot list {}", log.display()), e)),
    };
    let mut entries = Vec::new();
    for item in listing {
        let item = item.map_err(|e| Error::io(format!("cannot list {}", log.display()), e))?;
        let name = item.file_name();
        let Some(number) = name
            .to_str()
            .and_then(|name| name.strip_suffix(".json"))
            .and_then(|stem| stem.parse::<u64>().ok())
        else {
            continue;
        };
        let path = item.path();
        let bytes =
            fs::read(&path).map_err(|e| Error::io(format!("cannot read {}", path.display()), e))?;
        let entry = serde_json::from_slice(&bytes).map_err(|e| {
            Error::Snapshot(format!(
                "{}: not a valid Parquet commit log entry: {e}",
                path.display()
            ))
        })?;
        entries.push((number, entry));
    }
    entries.sort_by_key(|(number, _)| *number);
    Ok(entries)
}

/// The output directory `dir` and what its commit log holds.
pub(crate) struct OutputDir {
    dir: PathBuf,
    /// The log's entries, in order.
    entries: Vec<LogEntry>,
    /// The number of the next entry.
    next: u64,
}

impl OutputDir {
    /// Opens `dir` (created if missing) and reads its log.
    pub(crate) fn open(dir: &Path) -> Result<Self, Error> {
        fs::create_dir_all(dir.join(STAGING_DIR))
            .map_err(|e| Error::io(format!("cannot create {}", dir.display()), e))?;
        let numbered = read_numbered(dir)?;
        let next = numbered.last().map_or(0, |(number, _)| number + 1);
        Ok(OutputDir {
            dir: dir.to_path_buf(),
            entries: numbered.into_iter().map(|(_, entry)| entry).collect(),
            next,
        })
    }

    /// The log's entries, in order.
    pub(crate) fn entries(&self) -> &[LogEntry] {
        &self.entries
    }

    /// The newest committed epoch, if any.
    pub(crate) fn last_epoch(&self) -> Option<u64> {
        self.entries.iter().rev().find_map(|entry| entry.epoch)
    }

    /// Where a staged file named `name` is written.
    pub(crate) fn staged(dir: &Path, name: &str) -> PathBuf {
        dir.join(STAGING_DIR).join(name)
    }

    /// Removes the output of another job (or of an earlier run of a job without snapshots):
    /// the files the log lists, then the log. Other files of the directory are left alone.
    pub(crate) fn clear(&mut self) -> Result<(), Error> {
        for entry in &self.entries {
            for file in &entry.files {
                remove_if_present(&self.dir.join(&file.name))?;
            }
        }
        let log = self.dir.join(LOG_DIR);
        match fs::remove_dir_all(&log) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(format!("cannot remove {}", log.display()), e)),
        }
        self.entries.clear();
        self.next = 0;
        sync_dir(&self.dir)
    }

    /// Removes what is not committed: every staged file, a log entry's temporary file, and
    /// any `part-*.parquet` file of the directory that the log does not list (renamed by a
    /// commit that a crash interrupted before its entry: the recovery commits it again from
    /// the staged names, so the file is made again).
    pub(crate) fn remove_uncommitted(&self) -> Result<(), Error> {
        let logged: std::collections::HashSet<&str> = self
            .entries
            .iter()
            .flat_map(|entry| entry.files.iter().map(|file| file.name.as_str()))
            .collect();
        let part = |name: &str| name.starts_with("part-") && name.ends_with(".parquet");
        let mut removed = remove_where(&self.dir, |name| part(name) && !logged.contains(name))?;
        removed |= remove_where(&self.dir.join(STAGING_DIR), |_| true)?;
        removed |= remove_where(&self.dir.join(LOG_DIR), |name| name.ends_with(".tmp"))?;
        if removed {
            sync_dir(&self.dir)?;
        }
        Ok(())
    }

    /// Fails if a file the log lists is missing: committed output was deleted or moved.
    pub(crate) fn check_files(&self) -> Result<(), Error> {
        for file in self.entries.iter().flat_map(|entry| &entry.files) {
            let path = self.dir.join(&file.name);
            if !path.exists() {
                return Err(Error::Snapshot(format!(
                    "{} is missing, but the commit log {} lists it as committed: it was deleted or moved after the job wrote it; restore it, or run the job anew with a new checkpoint directory",
                    path.display(),
                    self.dir.join(LOG_DIR).display()
                )));
            }
        }
        Ok(())
    }

    /// Publishes `entry`: renames its staged files into the directory (a file already renamed
    /// by an interrupted commit stays), syncs the directory, calls `before_log` (fault
    /// injection), then writes the log entry. Idempotent up to the entry.
    pub(crate) fn publish(
        &mut self,
        entry: LogEntry,
        before_log: impl FnOnce(),
    ) -> Result<(), Error> {
        rename_staged(&self.dir, &entry.files)?;
        before_log();
        let log = self.dir.join(LOG_DIR);
        fs::create_dir_all(&log)
            .map_err(|e| Error::io(format!("cannot create {}", log.display()), e))?;
        let name = format!("{:020}.json", self.next);
        let temporary = log.join(format!(".{name}.tmp"));
        let path = log.join(&name);
        let failed = |e| Error::io(format!("cannot write {}", path.display()), e);
        let bytes = serde_json::to_vec(&entry)
            .map_err(|e| Error::Internal(format!("cannot encode a commit log entry: {e}")))?;
        let mut file = fs::File::create(&temporary).map_err(failed)?;
        file.write_all(&bytes).map_err(failed)?;
        file.sync_all().map_err(failed)?;
        fs::rename(&temporary, &path).map_err(failed)?;
        sync_dir(&log)?;
        self.entries.push(entry);
        self.next += 1;
        Ok(())
    }
}

/// Renames the staged `files` into `dir` (a file renamed already by an interrupted commit
/// stays) and syncs `dir`.
pub(crate) fn rename_staged(dir: &Path, files: &[LoggedFile]) -> Result<(), Error> {
    for file in files {
        let staged = OutputDir::staged(dir, &file.name);
        let visible = dir.join(&file.name);
        match fs::rename(&staged, &visible) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound && visible.exists() => {}
            Err(e) => {
                return Err(Error::io(
                    format!(
                        "cannot commit Parquet file {} to {}",
                        staged.display(),
                        visible.display()
                    ),
                    e,
                ))
            }
        }
    }
    sync_dir(dir)
}

/// Creates `dir`'s staging folder, removing what an earlier run left in it.
pub(crate) fn clear_staging(dir: &Path) -> Result<(), Error> {
    let staging = dir.join(STAGING_DIR);
    fs::create_dir_all(&staging)
        .map_err(|e| Error::io(format!("cannot create {}", staging.display()), e))?;
    if remove_where(&staging, |_| true)? {
        sync_dir(&staging)?;
    }
    Ok(())
}

/// Removes the files of `folder` (if it exists) whose names `matches`; returns whether it
/// removed any.
fn remove_where(folder: &Path, matches: impl Fn(&str) -> bool) -> Result<bool, Error> {
    let listing = match fs::read_dir(folder) {
        Ok(listing) => listing,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(Error::io(format!("cannot list {}", folder.display()), e)),
    };
    let mut removed = false;
    for item in listing {
        let item = item.map_err(|e| Error::io(format!("cannot list {}", folder.display()), e))?;
        if item.file_name().to_str().is_some_and(&matches) {
            remove_if_present(&item.path())?;
            removed = true;
        }
    }
    Ok(removed)
}

/// Removes `path`; a missing file is fine.
fn remove_if_present(path: &Path) -> Result<(), Error> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io(format!("cannot remove {}", path.display()), e)),
    }
}

/// Syncs a directory, so that the renames and creations in it are durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), Error> {
    fs::File::open(dir)
        .and_then(|file| file.sync_all())
        .map_err(|e| Error::io(format!("cannot sync {}", dir.display()), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(epoch: u64, names: &[&str]) -> LogEntry {
        LogEntry {
            epoch: Some(epoch),
            files: names
                .iter()
                .map(|name| LoggedFile {
                    name: name.to_string(),
                    rows: 1,
                    bytes: 1,
                })
                .collect(),
            job: Some("j".into()),
            execution: 1,
        }
    }

    #[test]
    fn publish_renames_then_logs_and_cleanup_keeps_only_logged_files() {
        let dir = tempfile::tempdir().unwrap();
        let mut out = OutputDir::open(dir.path()).unwrap();
        fs::write(OutputDir::staged(dir.path(), "part-00000-a.parquet"), b"x").unwrap();
        out.publish(entry(5, &["part-00000-a.parquet"]), || {})
            .unwrap();
        // Published again after a crash before the entry: the renamed file stays.
        fs::write(OutputDir::staged(dir.path(), "part-00001-a.parquet"), b"y").unwrap();
        let mut again = OutputDir::open(dir.path()).unwrap();
        let second = entry(9, &["part-00001-a.parquet"]);
        fs::rename(
            OutputDir::staged(dir.path(), "part-00001-a.parquet"),
            dir.path().join("part-00001-a.parquet"),
        )
        .unwrap();
        again.publish(second, || {}).unwrap();
        assert_eq!(again.last_epoch(), Some(9));
        assert_eq!(
            committed_files(dir.path()).unwrap(),
            vec![
                dir.path().join("part-00000-a.parquet"),
                dir.path().join("part-00001-a.parquet")
            ]
        );

        // Uncommitted: a staged file, an unlogged part file, a log entry's temporary file.
        fs::write(OutputDir::staged(dir.path(), "part-00002-b.parquet"), b"z").unwrap();
        fs::write(dir.path().join("part-00003-b.parquet"), b"z").unwrap();
        fs::write(dir.path().join(LOG_DIR).join(".x.json.tmp"), b"{").unwrap();
        fs::write(dir.path().join("notes.txt"), b"mine").unwrap();
        let out = OutputDir::open(dir.path()).unwrap();
        out.remove_uncommitted().unwrap();
        out.check_files().unwrap();
        let mut names: Vec<String> = fs::read_dir(dir.path())
            .unwrap()
            .map(|item| item.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(
            names,
            [
                "_tideflow_log",
                "_tideflow_staging",
                "notes.txt",
                "part-00000-a.parquet",
                "part-00001-a.parquet"
            ]
        );
        assert_eq!(read_log(dir.path()).unwrap().len(), 2);

        // A logged file deleted since: refused, naming it.
        fs::remove_file(dir.path().join("part-00000-a.parquet")).unwrap();
        let message = out.check_files().unwrap_err().to_string();
        assert!(
            message.contains("part-00000-a.parquet is missing"),
            "{message}"
        );

        // Clearing removes the logged files and the log, nothing else.
        let mut out = OutputDir::open(dir.path()).unwrap();
        out.clear().unwrap();
        assert!(read_log(dir.path()).unwrap().is_empty());
        assert!(!dir.path().join("part-00001-a.parquet").exists());
        assert!(dir.path().join("notes.txt").exists());
    }
}
