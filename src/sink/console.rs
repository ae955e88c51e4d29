//! A sink that prints records on standard output.

use std::io::Write;

use tideflow_operators::Event;

use super::{
    encode_batch, DebugEncoder, DisplayEncoder, Encoder, JsonLinesEncoder, Parallelism, Sink,
};
use crate::error::Error;

/// Prints records to standard output, one per line, from worker 0 (records of all workers are
/// gathered there). At-least-once: what was printed before a crash stays printed.
///
/// A write error stops the job ("writing to standard output: Broken pipe" when the reader of
/// a pipe has gone), and so does a standard output that is closed when the sink starts (Rust
/// would otherwise discard what is written to it).
///
/// # Examples
/// ```
/// use tideflow::sink::ConsoleSink;
/// let json = ConsoleSink::json();   // serde records as JSON lines
/// let debug = ConsoleSink::debug(); // any `Debug` record
/// let text = ConsoleSink::display(); // any `Display` record, e.g. formatted strings
/// # let _ = (json, debug, text);
/// ```
pub struct ConsoleSink<E> {
    encoder: E,
    buffer: Vec<u8>,
}

impl<E> ConsoleSink<E> {
    /// Prints records encoded by `encoder`.
    pub fn new(encoder: E) -> Self {
        ConsoleSink {
            encoder,
            buffer: Vec::new(),
        }
    }
}

impl ConsoleSink<JsonLinesEncoder> {
    /// Prints records as JSON lines.
    pub fn json() -> Self {
        Self::new(JsonLinesEncoder)
    }
}

impl ConsoleSink<DisplayEncoder> {
    /// Prints records in their `Display` form (strings as they are).
    pub fn display() -> Self {
        Self::new(DisplayEncoder)
    }
}

impl ConsoleSink<DebugEncoder> {
    /// Prints records in their `Debug` form.
    pub fn debug() -> Self {
        Self::new(DebugEncoder)
    }
}

impl<D: 'static, E: Encoder<D>> Sink<D> for ConsoleSink<E> {
    fn on_start(&mut self, _context: &super::SinkContext) -> Result<(), Error> {
        stdout_is_open()
    }

    fn write(&mut self, batch: &mut Vec<Event<D>>) -> Result<(), Error> {
        encode_batch(&mut self.encoder, batch, &mut self.buffer)?;
        let mut stdout = std::io::stdout().lock();
        stdout
            .write_all(&self.buffer)
            .and_then(|()| stdout.flush())
            .map_err(|e| Error::io("writing to standard output", e))
    }

    fn parallelism(&self) -> Parallelism {
        Parallelism::Single
    }
}

/// Checks that standard output is open, so that what is written there is not lost without an
/// error ("writing to standard output: Bad file descriptor"): Rust's `stdout()` discards what
/// is written to a closed file descriptor 1 (`EBADF`), and duplicating it fails then.
///
/// A program started with descriptor 1 closed (`>&-`) finds `/dev/null` there instead (the
/// Rust runtime opens it on Linux before `main`), which this cannot tell from a chosen
/// `/dev/null`; the `tideflow` command line looks at descriptor 1 before the runtime does.
///
/// # Examples
/// ```
/// // Under `cargo test`, standard output is open.
/// tideflow::sink::stdout_is_open().unwrap();
/// ```
pub fn stdout_is_open() -> Result<(), Error> {
    use std::os::fd::AsFd;
    std::io::stdout()
        .as_fd()
        .try_clone_to_owned()
        .map(drop)
        .map_err(|e| Error::io("writing to standard output", e))
}
