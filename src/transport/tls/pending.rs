//! Server handshakes in progress, bounded in all and per source. A handshake's
//! record under way is held whole by rustls until its last byte (up to 16 KiB and more of
//! buffer), outside every frame budget: a client sending most of a large record and then
//! nothing would otherwise cost the server ~19 KB a connection, as many connections as it
//! can open, each renewed at its handshake deadline.

use std::io;
use std::os::fd::AsFd;
use std::sync::LazyLock;

use socket2::Socket;
use tracing::warn;

use crate::endpoint::Share;
use crate::slots::{Evicting, Place, Refused, Shut};

/// Handshakes a server runs at once: far more than real clients keep in progress (a
/// handshake is two round trips), while 256 partial records cost at most ~5 MB.
pub(crate) const MAX_HANDSHAKES: usize = 256;
/// Of them, from one source: a busy client host or a NAT still gets many, and no one source
/// takes them all.
pub(crate) const MAX_HANDSHAKES_PER_SOURCE: usize = 64;

/// Handshakes in progress per source: a peer elsewhere by its IPv4 address or its IPv6
/// address's /64 (which one host may hold whole); a peer on this host by its user, as
/// --files and --exec connections are counted: over TCP the user owning its socket (one
/// sock_diag query, far less than a handshake, asked only of this host's addresses; its
/// address when the user cannot be told), over a Unix socket the user its credentials name
/// (SO_PEERCRED). Every local user shares 127.0.0.1: counted by address, one of them holding
/// its cap would refuse all the others. Sources holding all [`MAX_HANDSHAKES`] (four at their
/// cap) lock no one out: a newcomer from a source holding fewer than the most takes the place
/// of that source's oldest handshake.
static HANDSHAKES: LazyLock<Evicting<Share>> = LazyLock::new(Evicting::default);

/// One handshake's place, given back when dropped (the handshake done, or the connection
/// gone).
pub(crate) type Slot = Place<Share>;

/// A place for a handshake with the client of `sock` (`peer`, counted as `source`), or an
/// error (said in a throttled line) when its source holds its cap, or every place is taken
/// and its source holds as many as any. Making room shuts another source's oldest handshake.
pub(crate) fn take(source: Share, sock: &Socket, peer: &str) -> io::Result<Slot> {
    // Kept with the place, to shut this connection should it be the one making room.
    let handle = sock.as_fd().try_clone_to_owned()?;
    match HANDSHAKES.take(source, handle, MAX_HANDSHAKES_PER_SOURCE, MAX_HANDSHAKES) {
        Ok((slot, shut)) => {
            if let Some(shut) = shut {
                made_room(peer, &shut);
            }
            Ok(slot)
        }
        Err(why) => {
            refused(peer, source, why);
            Err(io::Error::other(HandshakesFull))
        }
    }
}

/// The line for a refused connection: a client can cause it at will, so throttled.
fn refused(peer: &str, source: Share, why: Refused) {
    static LOG: crate::logging::Throttle = crate::logging::Throttle::new();
    if let Some(more) = LOG.allow() {
        let why = match why {
            Refused::Limit(held) => format!(
                "{held} TLS handshakes from {source} are in progress, the most one source may \
                 have"
            ),
            Refused::All(held) => format!(
                "{MAX_HANDSHAKES} TLS handshakes are in progress, the most the server runs, and \
                 {source} has {held} of them, as many as any source"
            ),
        };
        warn!("{peer}: refused: {why}; it may try again once they end{more}");
    }
}

/// The line for a handshake closed to make room for `peer`'s: throttled as a refusal.
fn made_room(peer: &str, shut: &Shut<Share>) {
    static LOG: crate::logging::Throttle = crate::logging::Throttle::new();
    if let Some(more) = LOG.allow() {
        let Shut { key, had } = shut;
        warn!(
            "{peer}: {MAX_HANDSHAKES} TLS handshakes are in progress, the most the server runs: \
             closed the oldest of the {had} from {key} to make room{more}"
        );
    }
}

/// An accepted connection closed at once for too many handshakes in progress: said already.
#[derive(Debug)]
pub(crate) struct HandshakesFull;

impl std::fmt::Display for HandshakesFull {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("too many TLS handshakes in progress")
    }
}

impl std::error::Error for HandshakesFull {}

/// Whether an accept error is a connection refused for too many handshakes (said already).
pub(crate) fn is_full(e: &io::Error) -> bool {
    e.get_ref()
        .is_some_and(|inner| inner.is::<HandshakesFull>())
}
