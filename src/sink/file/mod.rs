//! A sink that writes records to one file, and its committer for exactly-once output
//! (`commit.rs`).

pub(crate) mod commit;

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::PathBuf;

use tideflow_operators::Event;

use super::{
    encode_batch, Committer, CsvEncoder, Encoder, JsonLinesEncoder, Parallelism, Recovered, Sink,
};
use crate::error::Error;
use crate::output_file;
use commit::FileCommitter;

/// Writes records to one file (created or truncated at start), from worker 0: records of all
/// workers are gathered there, so the file has a single writer. What was written is flushed
/// to the file each time the watermark advances, so a continuous job's results show up as
/// their windows close, and synced when the input ends. Every write, flush or sync error
/// stops the job, naming the file.
///
/// # Examples
/// ```
/// use tideflow::sink::FileSink;
/// let jsonl = FileSink::jsonl("results.jsonl");
/// let csv = FileSink::csv("results.csv");
/// # let _ = (jsonl, csv);
/// ```
pub struct FileSink<E> {
    path: PathBuf,
    encoder: E,
    writer: Option<BufWriter<File>>,
    buffer: Vec<u8>,
    /// Whether records were written since the last flush.
    unflushed: bool,
    /// Whether each write replaces the file.
    replace: bool,
    /// Exactly-once output: the encoded rows not yet pre-committed.
    staged: Option<Vec<u8>>,
    /// The permission bits of a file this sink creates.
    mode: u32,
}

impl<E> FileSink<E> {
    /// Writes records encoded by `encoder` to `path`.
    pub fn new(path: impl Into<PathBuf>, encoder: E) -> Self {
        FileSink {
            path: path.into(),
            encoder,
            writer: None,
            buffer: Vec::new(),
            unflushed: false,
            replace: false,
            staged: None,
            mode: output_file::DEFAULT_MODE,
        }
    }

    /// Creates the file with mode 0600 (owner read and write only, whatever the umask), for
    /// output that holds raw input records. An existing file keeps its permissions. By
    /// default, a new file gets 0666 less the umask.
    pub fn owner_only(mut self) -> Self {
        self.mode = output_file::PRIVATE_MODE;
        self
    }

    /// Makes each `write` replace the file's contents with its batch, atomically: the batch is
    /// written to a temporary file beside it (`PATH.tmp`), which is then renamed over it. A
    /// reader sees either the previous batch or the new one, whole (complete mode writes its
    /// table this way).
    pub fn replace_on_write(mut self) -> Self {
        self.replace = true;
        self
    }

    /// Writes `bytes` to a temporary file and renames it over the file. A path that is not a
    /// regular file (a device such as `/dev/stdout`, a FIFO) cannot be replaced: the bytes are
    /// written to it.
    fn replace_with(&self, bytes: &[u8]) -> Result<(), Error> {
        if std::fs::metadata(&self.path).is_ok_and(|m| !m.is_file() && !m.is_dir()) {
            let failed = |e| Error::io(format!("cannot write {}", self.path.display()), e);
            let mut file = OpenOptions::new()
                .write(true)
                .open(&self.path)
                .map_err(failed)?;
            file.write_all(bytes).map_err(failed)?;
            return file.flush().map_err(failed);
        }
        let mut temporary = self.path.clone().into_os_string();
        temporary.push(".tmp");
        let temporary = PathBuf::from(temporary);
        let failed = |e| Error::io(format!("cannot write {}", temporary.display()), e);
        let mut file = output_file::create(&temporary, self.mode).map_err(failed)?;
        file.write_all(bytes).map_err(failed)?;
        file.sync_data().map_err(failed)?;
        std::fs::rename(&temporary, &self.path).map_err(|e| {
            Error::io(
                format!(
                    "cannot rename {} to {}",
                    temporary.display(),
                    self.path.display()
                ),
                e,
            )
        })
    }

    fn writer(&mut self) -> Result<&mut BufWriter<File>, Error> {
        if self.writer.is_none() {
            let file = output_file::create(&self.path, self.mode)
                .map_err(|e| Error::io(format!("cannot create {}", self.path.display()), e))?;
            self.writer = Some(BufWriter::new(file));
        }
        Ok(self.writer.as_mut().expect("writer opened above"))
    }
}

impl FileSink<JsonLinesEncoder> {
    /// Writes records as JSON lines.
    pub fn jsonl(path: impl Into<PathBuf>) -> Self {
        Self::new(path, JsonLinesEncoder)
    }
}

impl FileSink<CsvEncoder> {
    /// Writes flat records as CSV with a header row.
    pub fn csv(path: impl Into<PathBuf>) -> Self {
        Self::new(path, CsvEncoder::default())
    }
}

impl<D: 'static, E: Encoder<D>> Sink<D> for FileSink<E> {
    fn on_start(&mut self, _context: &super::SinkContext) -> Result<(), Error> {
        if self.staged.is_some() {
            return Ok(());
        }
        self.writer().map(|_| ())
    }

    fn write(&mut self, batch: &mut Vec<Event<D>>) -> Result<(), Error> {
        let mut buffer = std::mem::take(&mut self.buffer);
        if self.replace {
            self.encoder.begin_file();
            encode_batch(&mut self.encoder, batch, &mut buffer)?;
            let result = self.replace_with(&buffer);
            self.buffer = buffer;
            return result;
        }
        if let Some(staged) = self.staged.as_mut() {
            encode_batch(&mut self.encoder, batch, &mut buffer)?;
            staged.extend_from_slice(&buffer);
            self.buffer = buffer;
            return Ok(());
        }
        encode_batch(&mut self.encoder, batch, &mut buffer)?;
        let path = self.path.display().to_string();
        let result = self
            .writer()?
            .write_all(&buffer)
            .map_err(|e| Error::io(format!("cannot write {path}"), e));
        self.buffer = buffer;
        self.unflushed = true;
        result
    }

    fn on_watermark(&mut self, _watermark: u64) -> Result<(), Error> {
        if !std::mem::take(&mut self.unflushed) || self.staged.is_some() {
            return Ok(());
        }
        let path = self.path.display().to_string();
        self.writer()?
            .flush()
            .map_err(|e| Error::io(format!("cannot write {path}"), e))
    }

    /// Flushes and syncs the file: dropping it would discard the error of its last write.
    fn on_close(&mut self) -> Result<(), Error> {
        if self.staged.is_some() || self.replace {
            return Ok(());
        }
        let path = self.path.display().to_string();
        let writer = self.writer()?;
        writer
            .flush()
            .and_then(|()| output_file::sync(writer.get_ref()))
            .map_err(|e| Error::io(format!("cannot write {path}"), e))
    }

    fn parallelism(&self) -> Parallelism {
        Parallelism::Single
    }

    /// Appends to the file, unless it is replaced on each write (complete mode).
    fn committer(&mut self) -> Option<Box<dyn Committer>> {
        (!self.replace).then(|| Box::new(FileCommitter::new(self.path.clone(), self.mode)) as _)
    }

    fn begin_staging(&mut self, recovered: &Recovered) {
        self.staged = Some(Vec::new());
        if recovered.resumed {
            self.encoder.continue_file();
        }
    }

    /// The encoded rows staged since the last call: appended to the file by the commit.
    fn pre_commit(&mut self, _epoch: u64) -> Result<Vec<u8>, Error> {
        Ok(self.staged.as_mut().map(std::mem::take).unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows() -> Vec<Event<String>> {
        vec![Event::new(1, "a".to_string())]
    }

    #[test]
    fn write_errors_stop_the_sink_and_name_the_file() {
        let context = crate::sink::SinkContext {
            worker_index: 0,
            peers: 1,
        };
        // Appending: the rows fit in the buffer, so the flush at the end meets the full disk.
        let mut sink = FileSink::jsonl("/dev/full");
        Sink::<String>::on_start(&mut sink, &context).unwrap();
        sink.write(&mut rows()).unwrap();
        let err = Sink::<String>::on_close(&mut sink).unwrap_err().to_string();
        assert_eq!(
            err,
            "cannot write /dev/full: No space left on device (os error 28)"
        );

        // Replacing: a device is written in place, not renamed over (here through a link,
        // which a rename would replace).
        let dir = tempfile::tempdir().unwrap();
        let link = dir.path().join("full.jsonl");
        std::os::unix::fs::symlink("/dev/full", &link).unwrap();
        let mut sink = FileSink::jsonl(&link).replace_on_write();
        Sink::<String>::on_start(&mut sink, &context).unwrap();
        let err = sink.write(&mut rows()).unwrap_err().to_string();
        assert!(
            err.ends_with("full.jsonl: No space left on device (os error 28)"),
            "{err}"
        );
        assert!(link.is_symlink());
    }

    #[test]
    fn an_owner_only_file_has_mode_0600() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("late.jsonl");
        let mut sink = FileSink::jsonl(&path).owner_only();
        Sink::<String>::on_start(
            &mut sink,
            &crate::sink::SinkContext {
                worker_index: 0,
                peers: 1,
            },
        )
        .unwrap();
        sink.write(&mut rows()).unwrap();
        Sink::<String>::on_close(&mut sink).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "\"a\"\n");
    }
}
