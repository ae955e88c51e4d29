//! The standard input source: JSON lines (or any text decoded line by line) or CSV, read from
//! the process's standard input.
//!
//! Worker 0 reads standard input as one partition (every other worker has none); a background
//! thread cuts it into records and sends them through a bounded channel (see `lines.rs`). The
//! input ends at end of file.
//!
//! Delivery is at-least-once and the source is not replayable: a restarted job reads only
//! what is piped in from then on.

use std::io::BufReader;

use super::lines::{LineChannel, LiveFormat};
use super::{Csv, JsonLines, OnError, Source, SourceBatch, SourceContext, SourceStatus};
use crate::error::Error;

/// Reads JSON lines ([`StdinSource::new`]) or CSV ([`StdinSource::csv`]) from standard input,
/// until end of file.
///
/// Bad records follow the source's [`OnError`] policy, as in
/// [`FileSource`](super::FileSource), and are named `stdin:LINE`. Use one per process:
/// standard input has one reader.
///
/// # Examples
/// ```no_run
/// use std::time::Duration;
/// use tideflow::{sink::ConsoleSink, source::{JsonLines, StdinSource}, Config};
///
/// tideflow::execute(Config::default(), |flow| {
///     flow.source(StdinSource::new(JsonLines::<u64>::serde()))
///         .with_event_time(|t| *t)
///         .with_watermark(Duration::from_secs(1))
///         .sink(ConsoleSink::json());
///     Ok(())
/// })?;
/// # Ok::<(), tideflow::Error>(())
/// ```
pub struct StdinSource<T> {
    lines: LineChannel<T>,
}

impl<T: 'static> StdinSource<T> {
    /// Reads JSON lines, or any text one record per line, in `format` from standard input.
    /// Blank lines are skipped.
    pub fn new(format: JsonLines<T>) -> Self {
        Self::with_format(LiveFormat::Lines(format.decoder()))
    }

    /// Reads CSV in `format` from standard input: the first record is the header, and each
    /// later one a row, read as [`FileSource`](super::FileSource) reads a CSV file (a quoted
    /// field may span lines; a record is named by the line it starts on; blank lines are
    /// skipped). A header that `format` rejects stops the job with an
    /// [`Error::Input`](crate::Error::Input) naming `stdin` and the header's line, whatever
    /// the [`OnError`] policy. An input that ends before the header is empty.
    ///
    /// # Examples
    /// ```no_run
    /// use std::time::Duration;
    /// use tideflow::{sink::ConsoleSink, source::{Csv, StdinSource}, Config};
    ///
    /// #[derive(serde::Deserialize, serde::Serialize, Clone)]
    /// struct Click { user: String, ts: u64 }
    ///
    /// tideflow::execute(Config::default(), |flow| {
    ///     flow.source(StdinSource::csv(Csv::<Click>::serde()))
    ///         .with_event_time(|click| click.ts)
    ///         .with_watermark(Duration::from_secs(1))
    ///         .sink(ConsoleSink::json());
    ///     Ok(())
    /// })?;
    /// # Ok::<(), tideflow::Error>(())
    /// ```
    pub fn csv(format: Csv<T>) -> Self {
        Self::with_format(LiveFormat::Csv(format))
    }

    fn with_format(format: LiveFormat<T>) -> Self {
        StdinSource {
            lines: LineChannel::new("stdin".to_string(), format),
        }
    }

    /// Sets what to do with a record that cannot be decoded. By default, [`OnError::Fail`].
    pub fn on_error(mut self, policy: OnError) -> Self {
        self.lines.set_on_error(policy);
        self
    }

    /// Sets the longest record accepted, in bytes (a line without its line terminator, or a
    /// CSV record, however many lines it spans); a longer one is a bad record, and only its
    /// first `max` bytes are held. By default, 1 MiB
    /// ([`DEFAULT_MAX_RECORD_BYTES`](super::DEFAULT_MAX_RECORD_BYTES)).
    pub fn max_record_bytes(mut self, max: usize) -> Self {
        self.lines.set_max_record_bytes(max);
        self
    }
}

impl<T: 'static> Source for StdinSource<T> {
    type Item = T;

    fn on_start(&mut self, context: &SourceContext) -> Result<(), Error> {
        if !LineChannel::<T>::is_reader(context) {
            return Ok(());
        }
        self.lines.start("tideflow-stdin", || {
            BufReader::with_capacity(64 * 1024, std::io::stdin())
        })
    }

    fn partitions(&self) -> usize {
        self.lines.partitions()
    }

    fn read(&mut self, batch: &mut SourceBatch<T>) -> Result<SourceStatus, Error> {
        self.lines.read(batch)
    }
}
