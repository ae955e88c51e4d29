//! The cluster handshake on one connection (the protocol is in the [module docs](super)): the
//! connecting side's [`Cluster::greet`] and the accepting side's [`Cluster::answer`].
//!
//! What the accepting side sends to a peer it has not yet authenticated is only what that peer
//! could know already: a refusal names the peer's own cluster id, never this cluster's, and a
//! connection that does not start with the magic gets no answer at all.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::Cluster;

/// The first bytes of every cluster connection.
const MAGIC: &[u8; 8] = b"TIDEFLOW";
/// The handshake's protocol version.
const PROTOCOL: u32 = 1;
/// How long either side waits for one answer of the other during the handshake.
pub(super) const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a handshake on the connecting side did not succeed.
#[derive(Debug)]
pub(super) enum Failure {
    /// The peer refused this process, or is not a tideflow peer of this cluster: final.
    Refused(String),
    /// The connection broke or went quiet before the handshake ended (the peer may have
    /// dropped it, being busy or restarting): worth another try.
    Broken(String),
}

impl Cluster {
    /// The connecting side of the handshake, with process `peer`.
    pub(super) fn greet(&self, peer: usize, mut stream: TcpStream) -> Result<TcpStream, Failure> {
        let broken = |e: io::Error| Failure::Broken(format!("the handshake failed: {e}"));
        set_timeouts(&stream).map_err(broken)?;
        let nonce = nonce().map_err(broken)?;
        let mut hello = MAGIC.to_vec();
        hello.extend_from_slice(&PROTOCOL.to_be_bytes());
        hello.push(self.cluster_id.len() as u8);
        hello.extend_from_slice(self.cluster_id.as_bytes());
        hello.extend_from_slice(&(self.process as u64).to_be_bytes());
        hello.extend_from_slice(&(self.processes() as u64).to_be_bytes());
        hello.extend_from_slice(&nonce);
        stream.write_all(&hello).map_err(broken)?;
        match read_u8(&mut stream).map_err(broken)? {
            b'R' => return Err(Failure::Refused(read_reason(&mut stream))),
            b'C' => {}
            other => {
                return Err(Failure::Refused(format!(
                    "not a tideflow cluster peer (answered {other:#x})"
                )))
            }
        }
        let mut their_nonce = [0u8; 16];
        stream.read_exact(&mut their_nonce).map_err(broken)?;
        self.check_proof(&mut stream, b"accept", peer, &nonce, &their_nonce)
            .map_err(Failure::Refused)?;
        let mut proof = vec![b'P'];
        proof.extend_from_slice(&self.proof(b"connect", self.process, &their_nonce, &nonce));
        stream.write_all(&proof).map_err(broken)?;
        match read_u8(&mut stream).map_err(broken)? {
            b'K' => Ok(stream),
            b'R' => Err(Failure::Refused(read_reason(&mut stream))),
            other => Err(Failure::Refused(format!("unexpected answer {other:#x}"))),
        }
    }

    /// The accepting side of the handshake: the peer's index and the stream, or why it was
    /// refused, for this process's log (the peer is told only what it knows already).
    pub(super) fn answer(&self, mut stream: TcpStream) -> Result<(usize, TcpStream), String> {
        let failed = |e: io::Error| format!("the handshake failed: {e}");
        stream.set_nonblocking(false).map_err(failed)?;
        set_timeouts(&stream).map_err(failed)?;
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
            // Their id only: this cluster's is not told to a peer that does not know it.
            let theirs = String::from_utf8_lossy(&id);
            return Err(refuse(
                &mut stream,
                format!("cluster id {theirs:?} is another cluster's"),
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

/// Bounds each read and write of the handshake.
fn set_timeouts(stream: &TcpStream) -> io::Result<()> {
    stream.set_read_timeout(Some(HANDSHAKE_TIMEOUT))?;
    stream.set_write_timeout(Some(HANDSHAKE_TIMEOUT))
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
