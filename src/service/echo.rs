//! The echo service, written once for every transport: read a message, apply the
//! [`Transform`], send the result back to whoever sent it.

use std::fmt;
use std::io;

use clap::ValueEnum;
use tracing::{debug, trace, warn};

use crate::endpoint::Proto;
use crate::transport::{Conn, DatagramSocket, MAX_MESSAGE, Received};

use super::peers::PeerTable;
use super::stats::{Stats, Tally};

/// What the server does to each message.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum Transform {
    /// ASCII letters made upper case; every other byte (UTF-8, binary) unchanged.
    #[default]
    Upper,
    /// The bytes unchanged: the plain echo service of RFC 862.
    Echo,
}

impl Transform {
    /// Transforms in place. Byte by byte, so a message split across reads comes out the same.
    pub fn apply(self, buf: &mut [u8]) {
        if self == Transform::Upper {
            buf.make_ascii_uppercase();
        }
    }
}

/// How a connection ended, for its log line.
#[derive(Debug)]
pub enum ConnEnd {
    /// The peer closed (a read of 0 bytes) and every reply was sent.
    PeerClosed,
    /// A seqpacket message larger than the buffer; the connection is closed rather than
    /// answering with a cut message.
    Truncated(usize),
    /// A socket error, such as a reset by the peer.
    Failed(io::Error),
}

impl fmt::Display for ConnEnd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnEnd::PeerClosed => f.write_str("closed by peer"),
            ConnEnd::Truncated(len) => write!(
                f,
                "closed: a {len}-byte message is larger than the {MAX_MESSAGE}-byte buffer"
            ),
            ConnEnd::Failed(e) if e.kind() == io::ErrorKind::ConnectionReset => {
                f.write_str("reset by peer")
            }
            ConnEnd::Failed(e) if e.kind() == io::ErrorKind::BrokenPipe => {
                f.write_str("peer went away before reading its replies")
            }
            ConnEnd::Failed(e) => write!(f, "error: {e}"),
        }
    }
}

/// The echo loop for a connected socket (stream or seqpacket): recv, transform, send all,
/// until the peer closes. Blocking; one call per connection.
pub fn serve_conn(conn: &Conn, transform: Transform, stats: &Stats, tally: &mut Tally) -> ConnEnd {
    let mut buf = vec![0u8; MAX_MESSAGE];
    loop {
        let n = match conn.recv(&mut buf) {
            Ok(Received::Data(n)) => n,
            Ok(Received::Closed) => return ConnEnd::PeerClosed,
            Ok(Received::Truncated(len)) => return ConnEnd::Truncated(len),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return ConnEnd::Failed(e),
        };
        trace!("{}: read {n} bytes", conn.peer());
        transform.apply(&mut buf[..n]);
        if let Err(e) = conn.send_all(&buf[..n]) {
            return ConnEnd::Failed(e);
        }
        stats.message(tally, n, n);
    }
}

/// Answers every datagram waiting on a non-blocking socket, then returns. Each datagram is
/// its own message: its reply goes back to its sender, one datagram for one datagram.
pub fn answer_datagrams(
    sock: &DatagramSocket,
    buf: &mut [u8],
    transform: Transform,
    stats: &Stats,
    peers: &mut PeerTable,
) -> io::Result<()> {
    let proto: Proto = sock.proto();
    loop {
        let (received, from) = match sock.recv_from(buf) {
            Ok(got) => got,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            // An ICMP error for an earlier reply can surface here on some kernels; it concerns
            // that peer only.
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => continue,
            Err(e) => return Err(e),
        };
        let n = match received {
            Received::Data(n) => n,
            Received::Truncated(len) => {
                warn!(
                    "{proto} {from}: dropped a {len}-byte datagram, larger than the \
                     {MAX_MESSAGE}-byte receive buffer (MSG_TRUNC); not answered"
                );
                continue;
            }
            Received::Closed => continue,
        };
        if !from.can_reply() {
            warn!(
                "{proto}: a {n}-byte datagram came from a socket with no address (not bound); \
                 cannot reply, dropped"
            );
            continue;
        }
        transform.apply(&mut buf[..n]);
        let sent = match sock.send_to(&buf[..n], &from) {
            Ok(()) => n,
            Err(e) => {
                debug!("{proto} {from}: reply not sent: {e}");
                0
            }
        };
        let tally = peers.tally(&from, stats);
        stats.message(tally, n, sent);
    }
}
