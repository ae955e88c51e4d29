//! The accepting side of cluster formation: a process takes the connections of its higher
//! peers at its cluster port, handshaking each on a thread of its own, so that no connection
//! (a stranger's that stays silent, sends garbage or another cluster's hello) delays another.
//!
//! Strangers cost the cluster nothing but a thread each while they handshake: a handshake
//! that has not ended after [`HANDSHAKE_TIMEOUT`] is dropped, at most [`MAX_PENDING`]
//! handshakes run at once (a connection beyond that drops the oldest one; a real peer whose
//! connection is dropped connects again), and once every peer has arrived the handshakes
//! still running are dropped. The listener keeps accepting until every peer has arrived or
//! the cluster's connect timeout has passed. What was turned away is counted and reported in
//! one line when formation ends, after the first few refusals, each in a line of its own.

use std::collections::VecDeque;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::handshake::HANDSHAKE_TIMEOUT;
use super::Cluster;
use crate::error::Error;

/// The most handshakes a process runs at once.
pub(super) const MAX_PENDING: usize = 64;
/// How many refusals are reported one line each; the rest only count.
const REFUSALS_SHOWN: usize = 8;
/// The stack of a handshake thread (it hashes and copies a few hundred bytes).
const HANDSHAKE_STACK: usize = 256 * 1024;
/// How long the listener sleeps when no connection is waiting.
const POLL: Duration = Duration::from_millis(20);

/// A handshake in progress: the connection's number, a handle to drop it by, and when and
/// from where it came.
struct Pending {
    id: u64,
    stream: TcpStream,
    since: Instant,
}

/// The outcome of the handshake on connection `id`.
type Outcome = (u64, SocketAddr, Result<(usize, TcpStream), String>);

/// The connections that were not a peer's, by what became of them.
#[derive(Default)]
struct Strangers {
    refused: usize,
    timed_out: usize,
    over_cap: usize,
    unfinished: usize,
}

impl Strangers {
    /// Reports a refused connection, one line each for the first few.
    fn refused(&mut self, process: usize, from: SocketAddr, reason: &str) {
        self.refused += 1;
        if self.refused <= REFUSALS_SHOWN {
            note!(
                "tideflow: warning: process {process}: refused a cluster connection from {from}: {reason}"
            );
        }
    }

    /// Reports them all in one line, if there were any.
    fn report(&self, process: usize) {
        let total = self.refused + self.timed_out + self.over_cap + self.unfinished;
        if total == 0 {
            return;
        }
        let parts = [
            (self.refused, "refused".to_string()),
            (
                self.timed_out,
                format!("silent past the {HANDSHAKE_TIMEOUT:?} handshake timeout"),
            ),
            (
                self.over_cap,
                format!("dropped over the limit of {MAX_PENDING} handshakes at once"),
            ),
            (
                self.unfinished,
                "still handshaking when the cluster formed".to_string(),
            ),
        ];
        let parts: Vec<String> = parts
            .iter()
            .filter(|(count, _)| *count > 0)
            .map(|(count, what)| format!("{count} {what}"))
            .collect();
        note!(
            "tideflow: warning: process {process}: {total} cluster connections were not from its peers ({})",
            parts.join(", ")
        );
    }
}

/// Drops a connection at once: its handshake thread's next read or write fails.
fn drop_connection(pending: Pending) {
    let _ = pending.stream.shutdown(Shutdown::Both);
}

impl Cluster {
    /// Accepts the connections of every higher process on `listener` (non-blocking) until all
    /// have arrived, `deadline` passes, or `abandoned` is set (the connecting side failed; its
    /// error is the one to report). The result has the socket of process `j` at index `j`.
    pub(super) fn accept_peers(
        &self,
        listener: &TcpListener,
        deadline: Instant,
        abandoned: &AtomicBool,
    ) -> Result<Vec<Option<TcpStream>>, Error> {
        let me = self.process;
        let mut sockets: Vec<Option<TcpStream>> = (0..self.processes()).map(|_| None).collect();
        let missing = |sockets: &[Option<TcpStream>]| {
            sockets
                .iter()
                .enumerate()
                .filter(|(p, s)| *p > me && s.is_none())
                .map(|(p, _)| p)
                .collect::<Vec<usize>>()
        };
        let mut strangers = Strangers::default();
        let (outcomes, finished) = mpsc::channel::<Outcome>();
        let mut pending: VecDeque<Pending> = VecDeque::new();
        let mut next_id = 0u64;
        let formed = std::thread::scope(|scope| {
            let formed = loop {
                while let Ok((id, from, outcome)) = finished.try_recv() {
                    // A handshake already dropped (its outcome is its failure) was counted.
                    let Some(index) = pending.iter().position(|p| p.id == id) else {
                        continue;
                    };
                    pending.remove(index);
                    match outcome {
                        Ok((peer, stream)) if sockets[peer].is_none() => {
                            sockets[peer] = Some(stream)
                        }
                        Ok((peer, _)) => strangers.refused(
                            me,
                            from,
                            &format!("a second connection from process {peer}"),
                        ),
                        Err(reason) => strangers.refused(me, from, &reason),
                    }
                }
                if missing(&sockets).is_empty() || abandoned.load(Ordering::SeqCst) {
                    break Ok(());
                }
                if Instant::now() > deadline {
                    break Err(());
                }
                while pending
                    .front()
                    .is_some_and(|p| p.since.elapsed() > HANDSHAKE_TIMEOUT)
                {
                    drop_connection(pending.pop_front().expect("a pending handshake"));
                    strangers.timed_out += 1;
                }
                let (stream, from) = match listener.accept() {
                    Ok(accepted) => accepted,
                    // Nothing waiting, or a connection that went away (or too many open files)
                    // before it was taken: look again after a while.
                    Err(_) => {
                        std::thread::sleep(POLL);
                        continue;
                    }
                };
                if pending.len() >= MAX_PENDING {
                    drop_connection(pending.pop_front().expect("a pending handshake"));
                    strangers.over_cap += 1;
                }
                let Ok(handle) = stream.try_clone() else {
                    strangers.over_cap += 1;
                    continue;
                };
                let id = next_id;
                next_id += 1;
                let outcomes = outcomes.clone();
                let handshake = move || {
                    let _ = outcomes.send((id, from, self.answer(stream)));
                };
                let started = std::thread::Builder::new()
                    .name("tideflow-handshake".into())
                    .stack_size(HANDSHAKE_STACK)
                    .spawn_scoped(scope, handshake);
                if started.is_err() {
                    // No thread for it (the handshake went with the closure): dropped.
                    strangers.over_cap += 1;
                    continue;
                }
                pending.push_back(Pending {
                    id,
                    stream: handle,
                    since: Instant::now(),
                });
            };
            // Formation is over: the handshakes still running are strangers' (or too late).
            for stranger in pending.drain(..) {
                drop_connection(stranger);
                strangers.unfinished += 1;
            }
            formed
        });
        strangers.report(me);
        match formed {
            Ok(()) => Ok(sockets),
            Err(()) => {
                let missing: Vec<String> = missing(&sockets)
                    .into_iter()
                    .map(|p| format!("process {p} ({})", self.addresses[p]))
                    .collect();
                Err(Error::Cluster(format!(
                    "timed out after {:?} waiting for {} to connect to {}",
                    self.connect_timeout,
                    missing.join(", "),
                    self.addresses[me]
                )))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    #[test]
    fn more_idle_strangers_than_the_cap_delay_no_peer_and_are_dropped() {
        let addresses: Vec<String> = (0..2)
            .map(|_| {
                let listener = TcpListener::bind("127.0.0.1:0").expect("a free port");
                listener.local_addr().expect("an address").to_string()
            })
            .collect();
        let cluster = |process| Cluster::new(process, addresses.clone(), "unit", "s3cret");
        let first = cluster(0);
        std::thread::scope(|scope| {
            let accepting = scope.spawn(|| first.connect());
            // More silent strangers than handshakes run at once, all before the peer.
            let mut strangers = Vec::new();
            while strangers.len() < MAX_PENDING + 6 {
                match TcpStream::connect(&addresses[0]) {
                    Ok(stream) => strangers.push(stream),
                    Err(_) => std::thread::sleep(POLL),
                }
            }
            let second = cluster(1).connect().expect("process 1 connects");
            let first = accepting
                .join()
                .expect("no panic")
                .expect("process 0 accepts");
            assert!(first[1].is_some() && second[0].is_some());
            // Every stranger was dropped without a word.
            for mut stranger in strangers {
                stranger
                    .set_read_timeout(Some(Duration::from_secs(60)))
                    .expect("a timeout");
                let mut received = Vec::new();
                let _ = stranger.read_to_end(&mut received);
                assert!(received.is_empty(), "{received:?}");
            }
        });
    }
}
