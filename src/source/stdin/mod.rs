//! The standard input source: JSON lines read from the process's standard input.
//!
//! Worker 0 reads standard input as one partition (every other worker has none); a background
//! thread reads lines into a bounded channel (see `lines.rs`). The input ends at end of file.
//!
//! Delivery is at-least-once and the source is not replayable: a restarted job reads only
//! what is piped in from then on.

use std::io::BufReader;

use super::lines::LineChannel;
use super::{JsonLines, OnError, Source, SourceBatch, SourceContext, SourceStatus};
use crate::error::Error;

/// Reads JSON lines from standard input, until end of file.
///
/// Bad lines follow the source's [`OnError`] policy, as in [`FileSource`](super::FileSource),
/// and are named `stdin:LINE`. Use one per process: standard input has one reader.
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
    /// Reads `format` from standard input.
    pub fn new(format: JsonLines<T>) -> Self {
        StdinSource {
            lines: LineChannel::new("stdin".to_string(), format.decoder()),
        }
    }

    /// Sets what to do with a line that cannot be decoded. By default, [`OnError::Fail`].
    pub fn on_error(mut self, policy: OnError) -> Self {
        self.lines.set_on_error(policy);
        self
    }

    /// Sets the longest line accepted, in bytes; a longer one is a bad record. By default,
    /// 1 MiB ([`DEFAULT_MAX_RECORD_BYTES`](super::DEFAULT_MAX_RECORD_BYTES)).
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
