//! A peer that can no longer be reached is noticed in bounded time. A peer that dies closes its
//! connections and its peers learn of it at once; but when the network between two processes
//! goes down without a word (a cut cable, a link set down, a host that froze), nothing arrives
//! on the connection, and timely's network threads would wait for it for ever.
//!
//! So each connection to a peer, before timely takes it, gets TCP keepalive and (on Linux)
//! `TCP_USER_TIMEOUT`: a connection that carried nothing for [`KEEPALIVE_IDLE`] is probed every
//! [`KEEPALIVE_INTERVAL`], and one whose peer has acknowledged nothing, neither data nor probe,
//! for [`PEER_TIMEOUT`] fails. Reading and writing it then fail with "connection timed out",
//! timely's network thread panics, and [`PeerWatch`](super::PeerWatch) turns that into the
//! job's lost peer. Both sides of a cut link time out alike, so every process stops naming
//! the peer it lost.

use std::io;
use std::net::TcpStream;
use std::time::Duration;

use socket2::{SockRef, TcpKeepalive};

/// How long a connection to a peer may go unanswered before it fails, whether it is idle
/// (keepalive probes go unanswered) or sending (its data stays unacknowledged). A peer that
/// takes no data for that long while there is data for it (a process paused under a debugger
/// or by `SIGSTOP`, once its receive buffer is full) is lost too: its kernel answers, but
/// acknowledges no more data.
///
/// An idle connection is probed after 5 s without traffic, then every 2 s. Where
/// `TCP_USER_TIMEOUT` is missing (outside Linux), an idle connection still fails after 5
/// unanswered probes, at the same time; a sending one fails when the system gives up
/// retransmitting, which can take many minutes.
pub const PEER_TIMEOUT: Duration = Duration::from_secs(15);

/// How long a connection carries nothing before its first keepalive probe.
const KEEPALIVE_IDLE: Duration = Duration::from_secs(5);

/// The time between two keepalive probes.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(2);

/// How many probes go unanswered before an idle connection fails, where the system counts
/// them (Linux stops at [`PEER_TIMEOUT`] instead): [`KEEPALIVE_IDLE`] and this many
/// [`KEEPALIVE_INTERVAL`]s make [`PEER_TIMEOUT`].
const KEEPALIVE_PROBES: u32 = 5;

/// Sets up `socket` to fail once its peer has been unreachable for [`PEER_TIMEOUT`] (see the
/// module docs), and to send small messages at once (timely's progress updates).
pub(super) fn bound_unreachable_time(socket: &TcpStream) -> io::Result<()> {
    socket.set_nodelay(true)?;
    let socket = SockRef::from(socket);
    let keepalive = TcpKeepalive::new().with_time(KEEPALIVE_IDLE);
    #[cfg(any(
        target_os = "linux",
        target_os = "android",
        target_os = "macos",
        target_os = "freebsd",
        target_os = "windows"
    ))]
    let keepalive = keepalive
        .with_interval(KEEPALIVE_INTERVAL)
        .with_retries(KEEPALIVE_PROBES);
    socket.set_tcp_keepalive(&keepalive)?;
    #[cfg(any(target_os = "linux", target_os = "android"))]
    socket.set_tcp_user_timeout(Some(PEER_TIMEOUT))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::net::TcpListener;

    use super::*;

    #[test]
    fn the_keepalive_probes_end_at_the_peer_timeout() {
        assert_eq!(
            KEEPALIVE_IDLE + KEEPALIVE_INTERVAL * KEEPALIVE_PROBES,
            PEER_TIMEOUT
        );
    }

    #[test]
    fn a_connection_gets_keepalive_and_a_user_timeout() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a free port");
        let socket =
            TcpStream::connect(listener.local_addr().expect("an address")).expect("a connection");
        bound_unreachable_time(&socket).expect("the options are set");
        let options = SockRef::from(&socket);
        assert!(options.keepalive().expect("SO_KEEPALIVE"));
        assert!(socket.nodelay().expect("TCP_NODELAY"));
        #[cfg(any(target_os = "linux", target_os = "android"))]
        {
            assert_eq!(options.tcp_keepalive_time().expect("idle"), KEEPALIVE_IDLE);
            assert_eq!(
                options.tcp_keepalive_interval().expect("interval"),
                KEEPALIVE_INTERVAL
            );
            assert_eq!(
                options.tcp_keepalive_retries().expect("probes"),
                KEEPALIVE_PROBES
            );
            assert_eq!(
                options.tcp_user_timeout().expect("user timeout"),
                Some(PEER_TIMEOUT)
            );
        }
    }
}
