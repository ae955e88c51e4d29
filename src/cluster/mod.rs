//! Multi-process clusters (DESIGN.md "Multi-worker and multi-process"): the processes of a
//! job connect to each other over TCP, prove to each other that they belong to the same
//! cluster, and hand the sockets to timely, whose workers then exchange data and progress
//! across processes exactly as between threads.
//!
//! **Handshake.** Process `i` connects to every process `j < i` and accepts connections from
//! every `j > i` (timely's own order), retrying a refused connection every 200 ms. On each new
//! connection, before timely sees it:
//! 1. the connecting side sends a hello: the magic `TIDEFLOW`, the protocol version, the
//!    cluster id, its process index, the number of processes and a random nonce;
//! 2. the accepting side checks the magic, version, cluster id, count and index, and answers
//!    either a refusal with its reason, or its own nonce with an HMAC-SHA256, keyed by the
//!    cluster secret, over both nonces, the cluster id and its index;
//! 3. the connecting side checks that proof and answers with its own HMAC over the same data
//!    from its side; the accepting side checks it and confirms.
//!
//! A stranger, a process of another cluster or one with the wrong secret is refused with a
//! one-line reason on both sides; the accepting process keeps waiting for the right peer, so
//! the cluster keeps its shape. The secret never crosses the wire. It only proves membership:
//! the connection is not encrypted, so the cluster port must not face an untrusted network.
//!
//! **Lost peers.** Once running, a peer that dies closes its sockets; timely's network threads
//! then panic ("timely communication error"). The job's [`PeerWatch`] (in `peers.rs`) records
//! that as its lost peer (and keeps timely's panic message and backtrace off the terminal);
//! the runtime stops the job with an error naming the peer.

mod peers;

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::error::Error;

pub(crate) use peers::{PanicRouting, PeerWatch};

/// The first bytes of every cluster connection.
const MAGIC: &[u8; 8] = b"TIDEFLOW";
/// The handshake's protocol version.
const PROTOCOL: u32 = 1;
/// How long a peer may take to answer during the handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
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
    /// socket to process `j` at index `j`, and `None` at this process's index.
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
        let mut sockets: Vec<Option<TcpStream>> = (0..self.processes()).map(|_| None).collect();
        for (peer, address) in self.addresses.iter().enumerate().take(me) {
            sockets[peer] = Some(self.dial(peer, address, deadline)?);
        }
        while sockets
            .iter()
            .enumerate()
            .any(|(p, s)| p > me && s.is_none())
        {
            match listener.accept() {
                Ok((stream, from)) => match self.answer(stream) {
                    Ok((peer, stream)) if sockets[peer].is_none() => sockets[peer] = Some(stream),
                    Ok((peer, _)) => eprintln!(
                        "tideflow: warning: refused a second connection from process {peer} ({from})"
                    ),
                    Err(reason) => eprintln!(
                        "tideflow: warning: refused a cluster connection from {from}: {reason}"
                    ),
                },
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if Instant::now() > deadline {
                        let missing: Vec<String> = sockets
                            .iter()
                            .enumerate()
                            .filter(|(p, s)| *p > me && s.is_none())
                            .map(|(p, _)| format!("process {p} ({})", self.addresses[p]))
                            .collect();
                        return Err(Error::Cluster(format!(
                            "timed out after {:?} waiting for {} to connect to {}",
                            self.connect_timeout,
                            missing.join(", "),
                            self.addresses[me]
                        )));
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => return Err(Error::io("cannot accept cluster connections", e)),
            }
        }
        for socket in sockets.iter().flatten() {
            let _ = socket.set_read_timeout(None);
            let _ = socket.set_write_timeout(None);
            let _ = socket.set_nodelay(true);
        }
        Ok(sockets)
    }

    /// Connects to process `peer` at `address` (retrying until `deadline`) and handshakes.
    fn dial(&self, peer: usize, address: &str, deadline: Instant) -> Result<TcpStream, Error> {
        loop {
            match TcpStream::connect(address) {
                Ok(stream) => {
                    return self.greet(peer, stream).map_err(|reason| {
                        Error::Cluster(format!(
                            "process {}: refused by process {peer} at {address}: {reason}",
                            self.process
                        ))
                    })
                }
                Err(error) if Instant::now() > deadline => {
                    return Err(Error::Cluster(format!(
                        "process {}: cannot connect to process {peer} at {address} within {:?}: {error}",
                        self.process, self.connect_timeout
                    )))
                }
                Err(_) => std::thread::sleep(Duration::from_millis(200)),
            }
        }
    }

    /// The connecting side of the handshake.
    fn greet(&self, peer: usize, mut stream: TcpStream) -> Result<TcpStream, String> {
        let failed = |e: io::Error| format!("the handshake failed: {e}");
        stream
            .set_read_timeout(Some(HANDSHAKE_TIMEOUT))
            .map_err(failed)?;
        stream
            .set_write_timeout(Some(HANDSHAKE_TIMEOUT))
            .map_err(failed)?;
        let nonce = nonce().map_err(failed)?;
        let mut hello = MAGIC.to_vec();
        hello.extend_from_slice(&PROTOCOL.to_be_bytes());
        hello.push(self.cluster_id.len() as u8);
        hello.extend_from_slice(self.cluster_id.as_bytes());
        hello.extend_from_slice(&(self.process as u64).to_be_bytes());
        hello.extend_from_slice(&(self.processes() as u64).to_be_bytes());
        hello.extend_from_slice(&nonce);
        stream.write_all(&hello).map_err(failed)?;
        match read_u8(&mut stream).map_err(failed)? {
            b'R' => return Err(read_reason(&mut stream)),
            b'C' => {}
            other => return Err(format!("not a tideflow cluster peer (answered {other:#x})")),
        }
        let mut their_nonce = [0u8; 16];
        stream.read_exact(&mut their_nonce).map_err(failed)?;
        self.check_proof(&mut stream, b"accept", peer, &nonce, &their_nonce)?;
        let mut proof = vec![b'P'];
        proof.extend_from_slice(&self.proof(b"connect", self.process, &their_nonce, &nonce));
        stream.write_all(&proof).map_err(failed)?;
        match read_u8(&mut stream).map_err(failed)? {
            b'K' => Ok(stream),
            b'R' => Err(read_reason(&mut stream)),
            other => Err(format!("unexpected answer {other:#x}")),
        }
    }

    /// The accepting side of the handshake: the peer's index and the stream, or why it was
    /// refused (the peer is told).
    fn answer(&self, mut stream: TcpStream) -> Result<(usize, TcpStream), String> {
        let failed = |e: io::Error| format!("the handshake failed: {e}");
        stream.set_nonblocking(false).map_err(failed)?;
        stream
            .set_read_timeout(Some(HANDSHAKE_TIMEOUT))
            .map_err(failed)?;
        stream
            .set_write_timeout(Some(HANDSHAKE_TIMEOUT))
            .map_err(failed)?;
        let mut magic = [0u8; 8];
        stream.read_exact(&mut magic).map_err(failed)?;
        if &magic != MAGIC {
            return Err("not a tideflow cluster peer (wrong magic)".into());
        }
        let mut version = [0u8; 4];
        stream.read_exact(&mut version).map_err(failed)?;
        let version = u32::from_be_bytes(version);
        if version != PROTOCOL {
            return Err(refuse(
                &mut stream,
                format!("protocol version {version}, this process speaks {PROTOCOL}"),
            ));
        }
        let id_len = read_u8(&mut stream).map_err(failed)? as usize;
        let mut id = vec![0u8; id_len];
        stream.read_exact(&mut id).map_err(failed)?;
        let peer = read_u64(&mut stream).map_err(failed)? as usize;
        let count = read_u64(&mut stream).map_err(failed)? as usize;
        let mut their_nonce = [0u8; 16];
        stream.read_exact(&mut their_nonce).map_err(failed)?;
        if id != self.cluster_id.as_bytes() {
            let theirs = String::from_utf8_lossy(&id).into_owned();
            return Err(refuse(
                &mut stream,
                format!(
                    "cluster id {theirs:?}, this is cluster {:?}",
                    self.cluster_id
                ),
            ));
        }
        if count != self.processes() || peer <= self.process || peer >= count {
            return Err(refuse(
                &mut stream,
                format!(
                    "process {peer} of {count}, but this cluster has {} processes and process {} accepts only higher ones",
                    self.processes(),
                    self.process
                ),
            ));
        }
        let nonce = nonce().map_err(failed)?;
        let mut challenge = vec![b'C'];
        challenge.extend_from_slice(&nonce);
        challenge.extend_from_slice(&self.proof(b"accept", self.process, &their_nonce, &nonce));
        stream.write_all(&challenge).map_err(failed)?;
        match read_u8(&mut stream).map_err(failed)? {
            b'P' => {}
            b'R' => return Err(format!("process {peer}: {}", read_reason(&mut stream))),
            other => return Err(format!("unexpected answer {other:#x}")),
        }
        self.check_proof(&mut stream, b"connect", peer, &nonce, &their_nonce)?;
        stream.write_all(b"K").map_err(failed)?;
        Ok((peer, stream))
    }

    /// The HMAC of `role`, the cluster id, `index` and the two nonces (the verifier's first).
    fn proof(&self, role: &[u8], index: usize, verifier: &[u8], prover: &[u8]) -> [u8; 32] {
        self.mac(role, index, verifier, prover)
            .finalize()
            .into_bytes()
            .into()
    }

    fn mac(&self, role: &[u8], index: usize, verifier: &[u8], prover: &[u8]) -> Hmac<Sha256> {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(self.secret.as_bytes())
            .expect("HMAC takes keys of any length");
        mac.update(role);
        mac.update(self.cluster_id.as_bytes());
        mac.update(&(index as u64).to_be_bytes());
        mac.update(verifier);
        mac.update(prover);
        mac
    }

    /// Reads the peer's proof for `role` (made with its `index` over `verifier`, this side's
    /// nonce, and `prover`, its own) and checks it in constant time; a wrong one refuses the
    /// peer.
    fn check_proof(
        &self,
        stream: &mut TcpStream,
        role: &[u8],
        index: usize,
        verifier: &[u8],
        prover: &[u8],
    ) -> Result<(), String> {
        let mut proof = [0u8; 32];
        stream
            .read_exact(&mut proof)
            .map_err(|e| format!("the handshake failed: {e}"))?;
        match self.mac(role, index, verifier, prover).verify_slice(&proof) {
            Ok(()) => Ok(()),
            Err(_) => Err(refuse(
                stream,
                "the cluster secrets differ (wrong Cluster::secret)".into(),
            )),
        }
    }
}

/// Tells the peer why it is refused, and returns the reason.
fn refuse(stream: &mut TcpStream, reason: String) -> String {
    let bytes = reason.as_bytes();
    let len = bytes.len().min(u16::MAX as usize);
    let mut message = vec![b'R'];
    message.extend_from_slice(&(len as u16).to_be_bytes());
    message.extend_from_slice(&bytes[..len]);
    let _ = stream.write_all(&message);
    reason
}

/// Reads a refusal's reason.
fn read_reason(stream: &mut TcpStream) -> String {
    let mut len = [0u8; 2];
    if stream.read_exact(&mut len).is_err() {
        return "refused".into();
    }
    let mut reason = vec![0u8; u16::from_be_bytes(len) as usize];
    match stream.read_exact(&mut reason) {
        Ok(()) => String::from_utf8_lossy(&reason).into_owned(),
        Err(_) => "refused".into(),
    }
}

fn read_u8(stream: &mut TcpStream) -> io::Result<u8> {
    let mut byte = [0u8; 1];
    stream.read_exact(&mut byte)?;
    Ok(byte[0])
}

fn read_u64(stream: &mut TcpStream) -> io::Result<u64> {
    let mut bytes = [0u8; 8];
    stream.read_exact(&mut bytes)?;
    Ok(u64::from_be_bytes(bytes))
}

/// 16 random bytes from the operating system.
fn nonce() -> io::Result<[u8; 16]> {
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(bytes)
}
