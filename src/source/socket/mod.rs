//! The TCP socket source: JSON lines (or any text decoded line by line) or CSV, read from a
//! server this source connects to.
//!
//! Worker 0 connects when the job starts and reads the connection as one partition (every
//! other worker has none); a background thread cuts it into records and sends them through a
//! bounded channel (see `lines.rs`). The input ends when the peer closes the connection.
//!
//! Delivery is at-least-once and the source is not replayable: what was read before a crash
//! is gone from the socket, so a restarted job reads only what the peer sends from then on, and
//! a peer that resends after reconnecting delivers some records twice (DESIGN.md "Snapshots").

use std::io::BufReader;
use std::net::{Shutdown, TcpStream};

use super::lines::{LineChannel, LiveFormat};
use super::{Csv, JsonLines, OnError, Source, SourceBatch, SourceContext, SourceStatus};
use crate::error::Error;

/// Reads JSON lines ([`SocketSource::connect`]) or CSV ([`SocketSource::connect_csv`]) from a
/// TCP connection, as a client.
///
/// Bad records follow the source's [`OnError`] policy, as in
/// [`FileSource`](super::FileSource), and are named `tcp://ADDR:LINE`. A failure to connect or
/// to read is an [`Error::Io`] naming the address.
///
/// # Examples
/// ```
/// use std::io::Write;
/// use std::time::Duration;
/// use tideflow::{sink::MemorySink, source::{JsonLines, SocketSource}, Config};
///
/// let server = std::net::TcpListener::bind("127.0.0.1:0")?;
/// let address = server.local_addr()?.to_string();
/// let feeder = std::thread::spawn(move || -> std::io::Result<()> {
///     let (mut peer, _) = server.accept()?;
///     peer.write_all(b"3\n1\n2\n")
/// });
/// let sink = MemorySink::new();
/// let output = sink.clone();
/// tideflow::execute(Config::default(), move |flow| {
///     flow.source(SocketSource::connect(address.clone(), JsonLines::<u64>::serde()))
///         .with_event_time(|t| *t)
///         .with_watermark(Duration::ZERO)
///         .sink(output.clone());
///     Ok(())
/// })?;
/// feeder.join().unwrap()?;
/// let mut seen = sink.take();
/// seen.sort();
/// assert_eq!(seen, vec![1, 2, 3]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct SocketSource<T> {
    address: String,
    lines: LineChannel<T>,
    /// The connection, kept to shut it down (which wakes the reading thread) when the source
    /// is dropped.
    stream: Option<TcpStream>,
}

impl<T: 'static> SocketSource<T> {
    /// Reads JSON lines, or any text one record per line, in `format` from `address`
    /// (`HOST:PORT`). Blank lines are skipped. The connection is made when the job starts, by
    /// worker 0.
    pub fn connect(address: impl Into<String>, format: JsonLines<T>) -> Self {
        Self::with_format(address.into(), LiveFormat::Lines(format.decoder()))
    }

    /// Reads CSV in `format` from `address` (`HOST:PORT`): the first record is the header,
    /// and each later one a row, read as [`FileSource`](super::FileSource) reads a CSV file (a
    /// quoted field may span lines; a record is named by the line it starts on; blank lines
    /// are skipped). A header that `format` rejects stops the job with an [`Error::Input`]
    /// naming the address and the header's line, whatever the [`OnError`] policy. A
    /// connection closed before the header is an empty input. The connection is made when the
    /// job starts, by worker 0.
    ///
    /// # Examples
    /// ```
    /// use std::io::Write;
    /// use std::time::Duration;
    /// use tideflow::{sink::MemorySink, source::{Csv, SocketSource}, Config};
    ///
    /// #[derive(serde::Deserialize, serde::Serialize, Clone, Debug, PartialEq)]
    /// struct Click { user: String, ts: u64 }
    ///
    /// let server = std::net::TcpListener::bind("127.0.0.1:0")?;
    /// let address = server.local_addr()?.to_string();
    /// let feeder = std::thread::spawn(move || -> std::io::Result<()> {
    ///     let (mut peer, _) = server.accept()?;
    ///     peer.write_all(b"ts,user\n1000,ann\n2000,\"bob, jr\"\n")
    /// });
    /// let sink = MemorySink::new();
    /// let output = sink.clone();
    /// tideflow::execute(Config::default(), move |flow| {
    ///     flow.source(SocketSource::connect_csv(address.clone(), Csv::<Click>::serde()))
    ///         .with_event_time(|click| click.ts)
    ///         .with_watermark(Duration::ZERO)
    ///         .sink(output.clone());
    ///     Ok(())
    /// })?;
    /// feeder.join().unwrap()?;
    /// let mut users: Vec<String> = sink.take().into_iter().map(|click| click.user).collect();
    /// users.sort();
    /// assert_eq!(users, ["ann", "bob, jr"]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn connect_csv(address: impl Into<String>, format: Csv<T>) -> Self {
        Self::with_format(address.into(), LiveFormat::Csv(format))
    }

    fn with_format(address: String, format: LiveFormat<T>) -> Self {
        SocketSource {
            lines: LineChannel::new(format!("tcp://{address}"), format),
            address,
            stream: None,
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

impl<T: 'static> Source for SocketSource<T> {
    type Item = T;

    fn on_start(&mut self, context: &SourceContext) -> Result<(), Error> {
        if !LineChannel::<T>::is_reader(context) {
            return Ok(());
        }
        let cannot = |e| Error::io(format!("cannot connect to {}", self.lines.name()), e);
        let stream = TcpStream::connect(&self.address).map_err(cannot)?;
        let reader = stream.try_clone().map_err(cannot)?;
        self.stream = Some(stream);
        self.lines
            .start("tideflow-socket", move || BufReader::new(reader))
    }

    fn partitions(&self) -> usize {
        self.lines.partitions()
    }

    fn read(&mut self, batch: &mut SourceBatch<T>) -> Result<SourceStatus, Error> {
        self.lines.read(batch)
    }
}

impl<T> Drop for SocketSource<T> {
    fn drop(&mut self) {
        if let Some(stream) = &self.stream {
            // The connection may already be closed; there is nothing left to do then.
            let _ = stream.shutdown(Shutdown::Both);
        }
    }
}
