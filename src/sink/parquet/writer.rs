//! Writing an encoder's rows into Parquet files under an output directory's
//! `_tideflow_staging/` folder, closed and synced on demand: the part of the Parquet and
//! Delta sinks that makes files; each sink commits them its own way.

use std::fs::File;
use std::path::{Path, PathBuf};

use arrow_schema::SchemaRef;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

use super::log::{sync_dir, LoggedFile, OutputDir, STAGING_DIR};
use super::{ArrowEncoder, ParquetCompression};
use crate::error::Error;

/// The rows appended to the encoder are written to the file in batches of this many.
const BATCH_ROWS: usize = 8192;

/// A staged file being written.
struct OpenFile {
    name: String,
    writer: ArrowWriter<File>,
    rows: u64,
}

/// Writes rows encoded by `E` into staged Parquet files of a directory.
pub(crate) struct ParquetWriter<D, E> {
    dir: PathBuf,
    encoder: E,
    compression: ParquetCompression,
    row_group_rows: usize,
    /// Rows appended to the encoder and not yet written to the file.
    buffered: usize,
    /// The file being written.
    open: Option<OpenFile>,
    /// Files closed and not yet taken.
    closed: Vec<LoggedFile>,
    /// The number of the next file of this run.
    next_file: u64,
    /// Tells this run's file names from other runs' (`part-NNNNN-TOKEN.parquet`).
    token: String,
    _records: std::marker::PhantomData<fn(D)>,
}

impl<D: 'static, E: ArrowEncoder<D>> ParquetWriter<D, E> {
    /// Writes into `dir`'s staging folder, snappy-compressed, in row groups of 1,048,576 rows.
    pub(crate) fn new(dir: PathBuf, encoder: E) -> Self {
        ParquetWriter {
            dir,
            encoder,
            compression: ParquetCompression::default(),
            row_group_rows: 1 << 20,
            buffered: 0,
            open: None,
            closed: Vec::new(),
            next_file: 0,
            token: run_token(),
            _records: std::marker::PhantomData,
        }
    }

    /// The output directory.
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// The files' schema.
    pub(crate) fn schema(&self) -> SchemaRef {
        self.encoder.schema()
    }

    pub(crate) fn set_compression(&mut self, compression: ParquetCompression) {
        self.compression = compression;
    }

    pub(crate) fn set_row_group_rows(&mut self, rows: usize) {
        self.row_group_rows = rows.max(1);
    }

    fn properties(&self) -> WriterProperties {
        let compression = match self.compression {
            ParquetCompression::None => Compression::UNCOMPRESSED,
            ParquetCompression::Snappy => Compression::SNAPPY,
            ParquetCompression::Zstd(level) => {
                Compression::ZSTD(ZstdLevel::try_new(level).unwrap_or_default())
            }
        };
        WriterProperties::builder()
            .set_compression(compression)
            .set_max_row_group_row_count(Some(self.row_group_rows))
            .set_created_by(format!("tideflow {}", env!("CARGO_PKG_VERSION")))
            .build()
    }

    /// Appends a row (written to the open file in batches).
    pub(crate) fn append(&mut self, record: &D) -> Result<(), Error> {
        self.encoder.append(record)?;
        self.buffered += 1;
        if self.buffered >= BATCH_ROWS {
            self.write_buffered()?;
        }
        Ok(())
    }

    /// Writes the rows buffered in the encoder to the open file (opened if need be).
    fn write_buffered(&mut self) -> Result<(), Error> {
        if self.buffered == 0 {
            return Ok(());
        }
        let batch = self.encoder.finish()?;
        self.buffered = 0;
        if self.open.is_none() {
            let name = format!("part-{:05}-{}.parquet", self.next_file, self.token);
            self.next_file += 1;
            let path = OutputDir::staged(&self.dir, &name);
            let file = File::create(&path)
                .map_err(|e| Error::io(format!("cannot create {}", path.display()), e))?;
            let writer = ArrowWriter::try_new(file, self.encoder.schema(), Some(self.properties()))
                .map_err(|e| parquet_error(&path, e))?;
            self.open = Some(OpenFile {
                name,
                writer,
                rows: 0,
            });
        }
        let open = self.open.as_mut().expect("opened above");
        open.writer
            .write(&batch)
            .map_err(|e| parquet_error(&OutputDir::staged(&self.dir, &open.name), e))?;
        open.rows += batch.num_rows() as u64;
        Ok(())
    }

    /// Writes what is buffered, then closes and syncs the open file, if any.
    pub(crate) fn close_file(&mut self) -> Result<(), Error> {
        self.write_buffered()?;
        let Some(open) = self.open.take() else {
            return Ok(());
        };
        let path = OutputDir::staged(&self.dir, &open.name);
        let file = open
            .writer
            .into_inner()
            .map_err(|e| parquet_error(&path, e))?;
        let failed = |e| Error::io(format!("cannot write {}", path.display()), e);
        file.sync_all().map_err(failed)?;
        let bytes = file.metadata().map_err(failed)?.len();
        self.closed.push(LoggedFile {
            name: open.name,
            rows: open.rows,
            bytes,
        });
        Ok(())
    }

    /// The files closed since the last call, their names made durable in the staging folder.
    pub(crate) fn take_closed(&mut self) -> Result<Vec<LoggedFile>, Error> {
        if !self.closed.is_empty() {
            sync_dir(&self.dir.join(STAGING_DIR))?;
        }
        Ok(std::mem::take(&mut self.closed))
    }
}

/// A token that tells this run's file names from another run's: the process id and the clock.
fn run_token() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_nanos() as u64);
    format!(
        "{:08x}",
        (nanos ^ u64::from(std::process::id()).rotate_left(32)) as u32
    )
}

/// A Parquet or Arrow error writing `path` (most often an I/O error underneath).
fn parquet_error(path: &Path, error: impl std::fmt::Display) -> Error {
    Error::io(
        format!("cannot write Parquet file {}", path.display()),
        std::io::Error::other(error.to_string()),
    )
}
