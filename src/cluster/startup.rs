//! The start-up message: once every connection is made and handshaken, and before the sockets
//! are handed to timely, process 0 tells every other process how the job starts. With a
//! checkpoint directory that is the execution number process 0 took the directory over with and
//! the snapshot every process resumes from (only process 0 takes the directory over, so that
//! all processes agree on both); or why process 0 refused to start (a job that does not match
//! its snapshot), so that every process reports it.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::Error;

/// Begins every start-up message.
const MAGIC: &[u8; 8] = b"TFSTART1";
/// The largest body accepted (a refusal's message is the longest).
const MAX_BODY: u32 = 1 << 20;

/// What process 0 tells the others.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum StartUp {
    /// Start the job.
    Start {
        /// With a checkpoint directory: how its snapshots start.
        snapshots: Option<SnapshotStart>,
    },
    /// Process 0 refused to start, with its error.
    Refused(String),
}

/// How the snapshots of a cluster job start.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SnapshotStart {
    /// The execution number process 0 took the checkpoint directory over with.
    pub(crate) execution: u64,
    /// The snapshot to resume from: its epoch and the execution that wrote it.
    pub(crate) resume: Option<(u64, u64)>,
    /// The directory holds a completed job: nothing is run.
    pub(crate) complete: bool,
}

/// Process 0 sends `message` on every socket (to every other process).
pub(crate) fn announce(sockets: &[Option<TcpStream>], message: &StartUp) -> Result<(), Error> {
    let body = serde_json::to_vec(message)
        .map_err(|e| Error::Internal(format!("cannot encode the start-up message: {e}")))?;
    let mut bytes = Vec::with_capacity(MAGIC.len() + 4 + body.len());
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(&(body.len() as u32).to_le_bytes());
    bytes.extend_from_slice(&body);
    for (peer, socket) in sockets.iter().enumerate() {
        if let Some(mut socket) = socket.as_ref() {
            socket.write_all(&bytes).map_err(|e| {
                Error::Cluster(format!(
                    "cannot send the start-up message to process {peer}: {e}"
                ))
            })?;
        }
    }
    Ok(())
}

/// Another process reads process 0's start-up message from `socket`, waiting at most `wait`
/// (process 0 may first have to recover the checkpoint directory).
pub(crate) fn receive(socket: &TcpStream, wait: Duration) -> Result<StartUp, Error> {
    let broken = |e: std::io::Error| {
        Error::Cluster(format!(
            "process 0 did not say how to start within {wait:?}: {e}"
        ))
    };
    socket.set_read_timeout(Some(wait)).map_err(broken)?;
    let mut reader = socket;
    let mut head = [0u8; 12];
    reader.read_exact(&mut head).map_err(broken)?;
    if &head[..8] != MAGIC {
        return Err(Error::Cluster(
            "process 0 sent no start-up message: is it a tideflow of the same version?".into(),
        ));
    }
    let length = u32::from_le_bytes([head[8], head[9], head[10], head[11]]);
    if length > MAX_BODY {
        return Err(Error::Cluster(format!(
            "process 0's start-up message is too long ({length} bytes)"
        )));
    }
    let mut body = vec![0u8; length as usize];
    reader.read_exact(&mut body).map_err(broken)?;
    socket.set_read_timeout(None).map_err(broken)?;
    serde_json::from_slice(&body)
        .map_err(|e| Error::Cluster(format!("process 0's start-up message does not decode: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn a_start_up_message_arrives_whole() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a port");
        let address = listener.local_addr().expect("an address");
        let sender = std::thread::spawn(move || {
            let (socket, _) = listener.accept().expect("a connection");
            let message = StartUp::Start {
                snapshots: Some(SnapshotStart {
                    execution: 7,
                    resume: Some((1_500, 6)),
                    complete: false,
                }),
            };
            announce(&[None, Some(socket)], &message).expect("sent");
            message
        });
        let socket = TcpStream::connect(address).expect("connects");
        let received = receive(&socket, Duration::from_secs(30)).expect("received");
        assert_eq!(received, sender.join().expect("the sender"));
    }
}
