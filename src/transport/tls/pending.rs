//! Server handshakes in progress, bounded in all and per client address. A handshake's
//! record under way is held whole by rustls until its last byte (up to 16 KiB and more of
//! buffer), outside every frame budget: a client sending most of a large record and then
//! nothing would otherwise cost the server ~19 KB a connection, as many connections as it
//! can open, each renewed at its handshake deadline.

use std::collections::HashMap;
use std::io;
use std::net::IpAddr;
use std::sync::{LazyLock, Mutex};

use tracing::warn;

use crate::endpoint::share_key;

/// Handshakes a server runs at once: far more than real clients keep in progress (a
/// handshake is two round trips), while 256 partial records cost at most ~5 MB.
pub(crate) const MAX_HANDSHAKES: usize = 256;
/// Of them, from one address (an IPv6 /64, which one host may hold whole): a busy client
/// host or a NAT still gets many, and no one source takes them all.
pub(crate) const MAX_HANDSHAKES_PER_SOURCE: usize = 64;

/// Handshakes in progress: in all, and per source.
struct Counts {
    total: usize,
    by_source: HashMap<Source, usize>,
}

static COUNTS: LazyLock<Mutex<Counts>> = LazyLock::new(|| {
    Mutex::new(Counts {
        total: 0,
        by_source: HashMap::new(),
    })
});

/// Where handshakes are counted: an IPv4 address or an IPv6 /64 ([`share_key`]), or no
/// address (Unix sockets). Peers on this host are counted by address here too, not by the
/// user owning their socket as --files and --exec connections are: this bound keeps memory
/// in check, not each user's place. It is taken at every TLS accept, echo's included, where
/// a sock_diag query per connection would cost every client; a slot lasts one handshake
/// (at most [`super::session::HANDSHAKE_TIME`]); and any four sources, a remote host's as
/// much as a local user's, can fill [`MAX_HANDSHAKES`] whatever the key, so counting by user
/// would promise a local user no place.
type Source = Option<IpAddr>;

/// One handshake's place, given back when dropped (the handshake done, or the connection
/// gone).
pub(crate) struct Slot(Source);

impl Slot {
    /// A place for a handshake with a client at `ip`, or an error (said in a throttled line)
    /// when the server or that source has too many in progress.
    pub(crate) fn take(ip: Option<IpAddr>, peer: &str) -> io::Result<Slot> {
        let source = ip.map(share_key);
        let mut counts = COUNTS.lock().unwrap_or_else(|e| e.into_inner());
        let from_source = counts.by_source.get(&source).copied().unwrap_or(0);
        let full = counts.total >= MAX_HANDSHAKES
            || (source.is_some() && from_source >= MAX_HANDSHAKES_PER_SOURCE);
        if full {
            drop(counts);
            refused(peer, from_source);
            return Err(io::Error::other(HandshakesFull));
        }
        counts.total += 1;
        *counts.by_source.entry(source).or_insert(0) += 1;
        Ok(Slot(source))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut counts = COUNTS.lock().unwrap_or_else(|e| e.into_inner());
        counts.total = counts.total.saturating_sub(1);
        if let Some(n) = counts.by_source.get_mut(&self.0) {
            *n -= 1;
            if *n == 0 {
                counts.by_source.remove(&self.0);
            }
        }
    }
}

/// The line for a refused connection: a client can cause it at will, so throttled.
fn refused(peer: &str, from_source: usize) {
    static LOG: crate::logging::Throttle = crate::logging::Throttle::new();
    if let Some(more) = LOG.allow() {
        let why = if from_source >= MAX_HANDSHAKES_PER_SOURCE {
            format!(
                "{from_source} TLS handshakes from its address are in progress (at most {MAX_HANDSHAKES_PER_SOURCE})"
            )
        } else {
            format!("{MAX_HANDSHAKES} TLS handshakes are in progress (at most that many at once)")
        };
        warn!("{peer}: refused: {why}; it may try again once they end{more}");
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
