//! Multi-process clusters (DESIGN.md "Multi-worker and multi-process"): the processes of a
//! job connect to each other over TCP, prove to each other that they belong to the same
//! cluster, and hand the sockets to timely, whose workers then exchange data and progress
//! across processes exactly as between threads.
//!
//! **Handshake.** Process `i` connects to every process `j < i` and accepts connections from
//! every `j > i` (timely's own order), both at once, retrying every 200 ms a connection that is
//! refused or breaks before its handshake ends. On each new connection, before timely sees it:
//! 1. the connecting side sends a hello: the magic `TIDEFLOW`, the protocol version, the
//!    cluster id, its process index, the number of processes and a random nonce;
//! 2. the accepting side checks the magic, version, cluster id, count and index, and answers
//!    either a refusal with its reason, or its own nonce with an HMAC-SHA256, keyed by the
//!    cluster secret, over both nonces, the cluster id and its index;
//! 3. the connecting side checks that proof and answers with its own HMAC over the same data
//!    from its side; the accepting side checks it and confirms.
//!
//! A stranger, a process of another cluster or one with the wrong secret is refused with a
//! one-line reason on both sides (the refusal never tells this cluster's id); the accepting
//! process keeps waiting for the right peer, so the cluster keeps its shape. Each connection
//! is handshaken on its own thread, with a timeout and a cap on how many run at once
//! (`accept.rs`): strangers that stay silent or send garbage delay no peer. The secret never
//! crosses the wire. It only proves membership: the connection is not encrypted, so the
//! cluster port must not face an untrusted network.
//!
//! **Lost peers.** Once running, a peer that dies closes its sockets; timely's network threads
//! then panic ("timely communication error"). A peer that cannot be reached any more (a cut
//! link: nothing closes anything) is noticed within [`PEER_TIMEOUT`]: the connections get TCP
//! keepalive and a user timeout before timely takes them (`liveness.rs`), so they fail too.
//! The job's [`PeerWatch`] (in `peers.rs`) records that as its lost peer (and keeps timely's
//! panic message and backtrace off the terminal); the runtime stops the job with an error
//! naming the peer.

mod accept;
mod handshake;
mod liveness;
mod peers;
mod startup;

use std::net::{TcpListener, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::error::Error;
use handshake::Failure;

pub use liveness::PEER_TIMEOUT;
pub(crate) use peers::{PanicRouting, PeerWatch};
pub(crate) use startup::{announce, receive, SnapshotStart, StartUp};

/// How long a process waits before it connects to a peer again.
const RETRY: Duration = Duration::from_millis(200);
/// The environment variable that holds the cluster secret.
pub const SECRET_VAR: &str = "TIDEFLOW_CLUSTER_SECRET";

/// One process's view of its cluster.
#[derive(Clone, PartialEq, Eq)]
pub struct Cluster {
    /// This process's index, from 0.
    pub process: usize,
    /// Every process's `HOST:PORT`, in process order; this process listens on its own.
    pub addresses: Vec<String>,
    /// The cluster's name: processes of different clusters refuse each other.
    pub cluster_id: String,
    /// The shared secret each process proves it knows.
    pub secret: String,
    /// How long to wait for every peer to connect. By default, 60 s.
    pub connect_timeout: Duration,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("process", &self.process)
            .field("addresses", &self.addresses)
            .field("cluster_id", &self.cluster_id)
            .field("secret", &"<hidden>")
            .finish()
    }
}

impl Cluster {
    /// Process `process` of the processes at `addresses`, in cluster `cluster_id`, proving
    /// `secret`.
    pub fn new(
        process: usize,
        addresses: Vec<String>,
        cluster_id: impl Into<String>,
        secret: impl Into<String>,
    ) -> Self {
        Cluster {
            process,
            addresses,
            cluster_id: cluster_id.into(),
            secret: secret.into(),
            connect_timeout: Duration::from_secs(60),
        }
    }

    /// The number of processes.
    pub fn processes(&self) -> usize {
        self.addresses.len()
    }

    /// Checks the description before anything connects: at least 2 addresses, each a
    /// `HOST:PORT`, this process among them, a secret, and an id and secret of bounded length.
    /// [`execute`](crate::execute) checks it too; call it to fail early, before opening
    /// anything else.
    pub fn validate(&self) -> Result<(), Error> {
        if self.addresses.len() < 2 {
            return Err(Error::Config(
                "Cluster::addresses: a cluster needs the addresses of at least 2 processes".into(),
            ));
        }
        if self.process >= self.addresses.len() {
            return Err(Error::Config(format!(
                "Cluster::process: {} is not below the number of processes ({})",
                self.process,
                self.addresses.len()
            )));
        }
        if self.cluster_id.len() > 255 || self.secret.len() > 4096 {
            return Err(Error::Config(
                "Cluster::cluster_id: at most 255 bytes (and the secret at most 4096)".into(),
            ));
        }
        for address in &self.addresses {
            if address.to_socket_addrs().is_err() {
                return Err(Error::Config(format!(
                    "Cluster::addresses: {address:?} is not a HOST:PORT address"
                )));
            }
        }
        if self.secret.is_empty() {
            return Err(Error::Config("Cluster::secret: must not be empty".into()));
        }
        Ok(())
    }

    /// Connects to every other process, handshaking each connection; the result has the
    /// socket to process `j` at index `j`, and `None` at this process's index. The lower
    /// processes are dialled while the higher ones' connections are accepted (`accept.rs`).
    pub(crate) fn connect(&self) -> Result<Vec<Option<TcpStream>>, Error> {
        self.validate()?;
        let me = self.process;
        let deadline = Instant::now() + self.connect_timeout;
        let listener = TcpListener::bind(&self.addresses[me]).map_err(|e| {
            Error::io(
                format!("cannot listen on {} (process {me})", self.addresses[me]),
                e,
            )
        })?;
        listener
            .set_nonblocking(true)
            .map_err(|e| Error::io("cannot set up the cluster listener", e))?;
        let abandoned = AtomicBool::new(false);
        let (dialled, accepted) = std::thread::scope(|scope| {
            let accepting = std::thread::Builder::new()
                .name("tideflow-cluster-accept".into())
                .spawn_scoped(scope, || {
                    let accepted = self.accept_peers(&listener, deadline, &abandoned);
                    if accepted.is_err() {
                        abandoned.store(true, Ordering::SeqCst);
                    }
                    accepted
                })
                .map_err(|e| Error::io("cannot start the cluster listener's thread", e))?;
            let dialled: Result<Vec<TcpStream>, Error> = self.addresses[..me]
                .iter()
                .enumerate()
                .map(|(peer, address)| self.dial(peer, address, deadline, &abandoned))
                .collect();
            if dialled.is_err() {
                abandoned.store(true, Ordering::SeqCst);
            }
            let accepted = accepting
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            Ok::<_, Error>((dialled, accepted))
        })?;
        // The first failure is the one to report: dialling fails only on its own.
        let dialled = dialled?;
        let mut sockets = accepted?;
        for (peer, stream) in dialled.into_iter().enumerate() {
            sockets[peer] = Some(stream);
        }
        for (peer, socket) in sockets.iter().enumerate() {
            let Some(socket) = socket else { continue };
            socket
                .set_read_timeout(None)
                .and_then(|()| socket.set_write_timeout(None))
                .and_then(|()| liveness::bound_unreachable_time(socket))
                .map_err(|e| {
                    Error::io(
                        format!(
                            "cannot set up the connection to process {peer} ({})",
                            self.addresses[peer]
                        ),
                        e,
                    )
                })?;
        }
        Ok(sockets)
    }

    /// Connects to process `peer` at `address` and handshakes, trying again until `deadline`
    /// while nothing listens there or the connection breaks before the handshake ends (the
    /// peer dropped it); a refusal is final, and so is `abandoned`.
    fn dial(
        &self,
        peer: usize,
        address: &str,
        deadline: Instant,
        abandoned: &AtomicBool,
    ) -> Result<TcpStream, Error> {
        let me = self.process;
        loop {
            let failure = match TcpStream::connect(address) {
                Ok(stream) => match self.greet(peer, stream) {
                    Ok(stream) => return Ok(stream),
                    Err(Failure::Refused(reason)) => {
                        return Err(Error::Cluster(format!(
                            "process {me}: refused by process {peer} at {address}: {reason}"
                        )))
                    }
                    Err(Failure::Broken(reason)) => reason,
                },
                Err(error) => error.to_string(),
            };
            if Instant::now() > deadline || abandoned.load(Ordering::SeqCst) {
                return Err(Error::Cluster(format!(
                    "process {me}: cannot connect to process {peer} at {address} within {:?}: {failure}",
                    self.connect_timeout
                )));
            }
            std::thread::sleep(RETRY);
        }
    }
}
