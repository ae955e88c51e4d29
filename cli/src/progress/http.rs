//! A minimal HTTP/1.1 server for Prometheus scrapes: `GET /metrics` answers the latest
//! progress report in the text exposition format, each connection closed after its response.
//! It is meant for a scraper on a trusted network (by default, localhost).
//!
//! Each connection is served on a thread of its own, so a client that connects and says
//! nothing (or sends its request a byte at a time) delays no other: it has
//! [`REQUEST_DEADLINE`] to send its request, then it is dropped (and as long again for each
//! write of the answer). At most
//! [`MAX_CONNECTIONS`] are served at once; one more is closed at once, unanswered (the
//! scrape fails and is retried at the next interval, as for a server that is down).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tideflow::Progress;

use super::lock;

/// The content type of the Prometheus text exposition format.
const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The longest request head read; a longer one is refused.
const MAX_HEAD_BYTES: u64 = 16 * 1024;

/// How long a client may take to send its request head (and each write of the answer).
const REQUEST_DEADLINE: Duration = Duration::from_secs(5);

/// The most connections served at once.
const MAX_CONNECTIONS: usize = 32;

/// The stack of a connection's thread (it reads a request head and writes a few kB).
const CONNECTION_STACK: usize = 256 * 1024;

/// How many connections are served at once, and how long each may take.
#[derive(Clone, Copy, Debug)]
struct Limits {
    connections: usize,
    deadline: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            connections: MAX_CONNECTIONS,
            deadline: REQUEST_DEADLINE,
        }
    }
}

/// The latest report, shared by the reporter (writer) and the server (reader).
pub(crate) type Latest = Arc<Mutex<Option<Progress>>>;

/// A running metrics server; stops accepting when dropped (a connection being served ends by
/// its deadline).
pub(crate) struct MetricsServer {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl MetricsServer {
    /// Serves `latest` on `listener` (already bound) from a thread of its own, and each
    /// connection from a thread of its own.
    pub(crate) fn start(listener: TcpListener, latest: Latest) -> std::io::Result<MetricsServer> {
        Self::start_with(listener, latest, Limits::default())
    }

    /// [`start`](Self::start) within `limits`.
    fn start_with(
        listener: TcpListener,
        latest: Latest,
        limits: Limits,
    ) -> std::io::Result<MetricsServer> {
        listener.set_nonblocking(true)?;
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("tideflow-metrics".into())
            .spawn(move || {
                let open = Arc::new(AtomicUsize::new(0));
                while !stopped.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((stream, _)) => serve(stream, &latest, &open, limits),
                        // Nothing waiting, or a connection gone before it was taken.
                        Err(_) => std::thread::sleep(Duration::from_millis(20)),
                    }
                }
            })?;
        Ok(MetricsServer {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// One connection served: counts it in `open` while its thread runs.
struct Served(Arc<AtomicUsize>);

impl Drop for Served {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Serves `stream` on a thread of its own, or closes it if `open` connections are already
/// served (or no thread can be had). Only the accepting thread adds to `open`.
fn serve(stream: TcpStream, latest: &Latest, open: &Arc<AtomicUsize>, limits: Limits) {
    if open.load(Ordering::SeqCst) >= limits.connections {
        return;
    }
    open.fetch_add(1, Ordering::SeqCst);
    let served = Served(Arc::clone(open));
    let latest = Arc::clone(latest);
    // Without a thread, the closure and so the stream are dropped: closed.
    let _ = std::thread::Builder::new()
        .name("tideflow-metrics-connection".into())
        .stack_size(CONNECTION_STACK)
        .spawn(move || {
            let _served = served;
            // A client that misbehaves only loses its own response.
            let _ = respond(stream, &latest, limits.deadline);
        });
}

/// Reads a stream until a deadline: each read waits at most for the time left.
struct Deadline<'a> {
    stream: &'a TcpStream,
    until: Instant,
}

impl Read for Deadline<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let left = self.until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(std::io::ErrorKind::TimedOut.into());
        }
        self.stream.set_read_timeout(Some(left))?;
        (&mut &*self.stream).read(buf)
    }
}

/// Reads one request and answers it.
fn respond(stream: TcpStream, latest: &Latest, deadline: Duration) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_write_timeout(Some(deadline))?;
    let deadline = Deadline {
        stream: &stream,
        until: Instant::now() + deadline,
    };
    let mut reader = BufReader::new(deadline.take(MAX_HEAD_BYTES));
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    // Skip the headers, up to the blank line.
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header)? == 0 || header.trim_end().is_empty() {
            break;
        }
    }
    let mut parts = request_line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    let (status, content_type, body) = match (method, path) {
        ("GET" | "HEAD", "/metrics") => {
            // Before the first report, an empty exposition.
            let body = lock(latest)
                .as_ref()
                .map(Progress::to_prometheus)
                .unwrap_or_default();
            ("200 OK", CONTENT_TYPE, body)
        }
        ("GET" | "HEAD", _) => (
            "404 Not Found",
            "text/plain; charset=utf-8",
            "not found; try /metrics\n".to_string(),
        ),
        _ => (
            "405 Method Not Allowed\r\nAllow: GET, HEAD",
            "text/plain; charset=utf-8",
            "only GET /metrics is served\n".to_string(),
        ),
    };
    let mut response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    if method != "HEAD" {
        response.push_str(&body);
    }
    let mut stream = stream;
    stream.write_all(response.as_bytes())?;
    stream.flush()
}

#[cfg(test)]
mod tests {
    use std::io::Read;
    use std::sync::atomic::AtomicBool;

    use super::*;

    /// How long a test waits for an answer before it fails: a guard against a hang only.
    const GUARD: Duration = Duration::from_secs(60);

    /// A server of an empty report on a free loopback port, and its address.
    fn server() -> (MetricsServer, String) {
        server_with(Limits::default())
    }

    fn server_with(limits: Limits) -> (MetricsServer, String) {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a free port");
        let address = listener.local_addr().expect("an address").to_string();
        let server = MetricsServer::start_with(listener, Latest::default(), limits)
            .expect("the server starts");
        (server, address)
    }

    /// The answer to a scrape of `address`, or the error of a closed connection.
    fn try_scrape(address: &str) -> std::io::Result<String> {
        let mut scrape = TcpStream::connect(address)?;
        scrape.write_all(b"GET /metrics HTTP/1.1\r\nHost: test\r\n\r\n")?;
        received(&scrape)
    }

    fn scrape(address: &str) -> String {
        try_scrape(address).expect("an answer")
    }

    /// Everything `stream` receives until the server closes it.
    fn received(mut stream: &TcpStream) -> std::io::Result<String> {
        stream.set_read_timeout(Some(GUARD))?;
        let mut bytes = Vec::new();
        stream.read_to_end(&mut bytes)?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    /// Connections that send the start of a request a byte at a time and never end it, until
    /// the returned flag is set.
    fn tricklers(address: &str, count: usize) -> (Vec<TcpStream>, Arc<AtomicBool>) {
        let streams: Vec<TcpStream> = (0..count)
            .map(|_| TcpStream::connect(address).expect("connects"))
            .collect();
        let stop = Arc::new(AtomicBool::new(false));
        let writers: Vec<TcpStream> = streams
            .iter()
            .map(|s| s.try_clone().expect("a clone"))
            .collect();
        let stopped = Arc::clone(&stop);
        std::thread::spawn(move || {
            let mut writers = writers;
            while !stopped.load(Ordering::Relaxed) {
                for writer in &mut writers {
                    // A writer the server dropped fails; the others go on.
                    let _ = writer.write_all(b"G");
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        (streams, stop)
    }

    #[test]
    fn a_scrape_is_answered_while_idle_and_trickling_connections_are_open() {
        let (_server, address) = server();
        let idle: Vec<TcpStream> = (0..10)
            .map(|_| TcpStream::connect(&address).expect("connects"))
            .collect();
        let (trickling, stop) = tricklers(&address, 10);
        let answer = scrape(&address);
        assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
        assert!(answer.contains(CONTENT_TYPE), "{answer}");
        stop.store(true, Ordering::Relaxed);
        drop((idle, trickling));
    }

    #[test]
    fn a_request_that_never_ends_is_dropped_at_its_deadline() {
        let (_server, address) = server();
        let (trickling, stop) = tricklers(&address, 1);
        // The server closes it (a reset, as the client still sends, is a close too).
        match received(&trickling[0]) {
            Ok(answer) => assert!(answer.is_empty(), "{answer}"),
            Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}"),
        }
        stop.store(true, Ordering::Relaxed);
    }

    #[test]
    fn a_connection_beyond_the_limit_is_closed_at_once() {
        let (_server, address) = server_with(Limits {
            connections: 2,
            deadline: Duration::from_secs(600),
        });
        let idle: Vec<TcpStream> = (0..2)
            .map(|_| TcpStream::connect(&address).expect("connects"))
            .collect();
        match try_scrape(&address) {
            Ok(answer) => assert!(answer.is_empty(), "{answer}"),
            Err(e) => assert!(
                matches!(
                    e.kind(),
                    std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe
                ),
                "{e}"
            ),
        }
        // Once the idle ones leave, scrapes are served again.
        drop(idle);
        let started = Instant::now();
        loop {
            let answer = try_scrape(&address);
            if answer
                .as_ref()
                .is_ok_and(|a| a.starts_with("HTTP/1.1 200 OK\r\n"))
            {
                break;
            }
            assert!(started.elapsed() < GUARD, "{answer:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
