//! Paths a job writes that would destroy what it reads: checked while the Plan is built, before
//! anything is opened. An output (`--output`, `--late-output`, a dead-letter file, a
//! `--progress` file) may not be an input file (one named by `--input`, or already in an
//! `--input` directory), the `--join-static` table, or another output; nor may it be in a
//! `--watch`ed directory, where it would be read as a new input file. Paths are compared
//! resolved (symbolic links, `.` and `..`) and, for files that exist, by identity (device and
//! inode: hard links too).

use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use tideflow::Error;

/// A path a job reads or writes, with the flag that gave it.
pub(super) type FlagPath = (&'static str, PathBuf);

/// A path resolved for comparison.
struct Resolved<'a> {
    flag: &'static str,
    given: &'a Path,
    /// The absolute path with links resolved as far as the path exists.
    path: PathBuf,
    /// Device and inode, for a file that exists.
    identity: Option<(u64, u64)>,
    is_dir: bool,
}

impl<'a> Resolved<'a> {
    fn new((flag, given): &'a FlagPath) -> Result<Self, Error> {
        let metadata = std::fs::metadata(given).ok();
        let path = resolve(given).map_err(|e| {
            Error::Config(format!("{flag}: cannot resolve {}: {e}", given.display()))
        })?;
        Ok(Resolved {
            flag,
            given,
            path,
            identity: metadata.as_ref().map(|m| (m.dev(), m.ino())),
            is_dir: metadata.as_ref().is_some_and(|m| m.is_dir()),
        })
    }

    /// Whether `self` and `other` name the same file.
    fn same_file(&self, other: &Resolved<'_>) -> bool {
        self.path == other.path || self.identity.is_some() && self.identity == other.identity
    }

    /// Whether `self` is inside the directory `dir`.
    fn inside(&self, dir: &Resolved<'_>) -> bool {
        dir.is_dir && self.path.starts_with(&dir.path)
    }

    /// Whether `self` exists.
    fn exists(&self) -> bool {
        self.identity.is_some()
    }
}

/// `path` absolute, with links resolved: the whole path if it exists, else its parent (a file
/// about to be created) with the file name joined.
pub(super) fn resolve(path: &Path) -> io::Result<PathBuf> {
    if let Ok(resolved) = path.canonicalize() {
        return Ok(resolved);
    }
    let absolute = std::path::absolute(path)?;
    match (absolute.parent(), absolute.file_name()) {
        (Some(parent), Some(name)) => Ok(parent
            .canonicalize()
            .map(|parent| parent.join(name))
            .unwrap_or(absolute.clone())),
        _ => Ok(absolute),
    }
}

/// Refuses any of `outputs` that is one of `reads` (a file, or a file in a directory, the job
/// reads), a file in a directory of `reads` that is `watched`, or another of `outputs`, naming
/// both flags.
pub(super) fn check_outputs(
    reads: &[FlagPath],
    outputs: &[FlagPath],
    watched: bool,
) -> Result<(), Error> {
    let reads = reads
        .iter()
        .map(Resolved::new)
        .collect::<Result<Vec<_>, _>>()?;
    let outputs = outputs
        .iter()
        .map(Resolved::new)
        .collect::<Result<Vec<_>, _>>()?;
    for (index, output) in outputs.iter().enumerate() {
        let (flag, path) = (output.flag, output.given);
        for read in &reads {
            if output.same_file(read) {
                return Err(Error::Config(format!(
                    "{flag}: {} is the {} file {}: refusing to overwrite what the job reads",
                    path.display(),
                    read.flag,
                    read.given.display()
                )));
            }
            if output.inside(read) && output.exists() {
                return Err(Error::Config(format!(
                    "{flag}: {} is a file of the {} directory {}: refusing to overwrite what the job reads",
                    path.display(),
                    read.flag,
                    read.given.display()
                )));
            }
            if output.inside(read) && watched {
                return Err(Error::Config(format!(
                    "{flag}: {} is inside the --watch'ed {} directory {}, where it would be read as input: write it elsewhere",
                    path.display(),
                    read.flag,
                    read.given.display()
                )));
            }
        }
        if let Some(earlier) = outputs[..index].iter().find(|o| output.same_file(o)) {
            return Err(Error::Config(format!(
                "{flag}: {} is also the {} file: give each output its own path",
                path.display(),
                earlier.flag
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(flag: &'static str, path: &Path) -> FlagPath {
        (flag, path.to_path_buf())
    }

    #[test]
    fn outputs_that_are_inputs_or_each_other_are_refused_by_any_name() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let input = dir.path().join("in.jsonl");
        std::fs::write(&input, "{}\n").expect("write the input");
        let linked = dir.path().join("hard-link.jsonl");
        std::fs::hard_link(&input, &linked).expect("a hard link");
        let dotted = dir.path().join(".").join("in.jsonl");
        let fresh = dir.path().join("out.jsonl");
        let reads = [at("--input", &input)];

        for (name, output) in [
            ("same", &input),
            ("dotted", &dotted),
            ("hard link", &linked),
        ] {
            let error = check_outputs(&reads, &[at("--output", output)], false).expect_err(name);
            assert!(error.to_string().starts_with("--output: "), "{error}");
            assert!(error.to_string().contains("the --input file"), "{error}");
        }
        let twice = [at("--output", &fresh), at("--late-output", &fresh)];
        let error = check_outputs(&reads, &twice, false).expect_err("two outputs, one file");
        assert!(
            error.to_string().contains("--late-output: ")
                && error.to_string().contains("also the --output file"),
            "{error}"
        );

        let directory = [at("--input", dir.path())];
        let existing = check_outputs(&directory, &[at("--output", &input)], false)
            .expect_err("a file of the input directory");
        assert!(
            existing
                .to_string()
                .contains("a file of the --input directory"),
            "{existing}"
        );
        let watched = check_outputs(&directory, &[at("--output", &fresh)], true)
            .expect_err("a new file in a watched directory");
        assert!(watched.to_string().contains("--watch'ed"), "{watched}");
        // A new file beside the inputs of a directory read once is not an input.
        assert!(check_outputs(&directory, &[at("--output", &fresh)], false).is_ok());
        assert!(check_outputs(&reads, &[at("--output", &fresh)], false).is_ok());
    }
}
