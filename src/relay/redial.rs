//! A unix-dgram TO whose server restarted at the same name: the flow's socket stays
//! connected to the old, dead one, and the kernel says so on the next send (ECONNREFUSED,
//! its peer gone, then ENOTCONN, the socket disconnected). Connected again to TO's name, the
//! socket reaches the new server, as a client starting afresh would.

use std::io;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use socket2::SockAddr;

use crate::endpoint::{SockProto, Target};
use crate::transport::Conn;

/// How often a flow connects to TO again: a server that keeps dying costs the relay a
/// connect(2) a second, not one per datagram.
const AT_MOST_EVERY: Duration = Duration::from_secs(1);

/// A flow's way back to a unix-dgram TO.
pub(crate) struct Redial {
    to: SockAddr,
    last: Option<Instant>,
    /// The owner of the socket file at TO's path when the relay started: a socket another
    /// user bound there since (TO's server gone, its directory writable to others) gets no
    /// flow.
    owner: Option<u32>,
}

/// What a send that found TO gone leads to.
pub(crate) enum Again {
    /// Connected to TO's name again: send the message once more.
    Connected,
    /// Connected again less than [`AT_MOST_EVERY`] ago: this message is lost.
    TooSoon,
    /// Nothing takes a connect at TO's name now: the flow ends.
    Failed(io::Error),
}

impl Redial {
    /// A way back to `to`, when it is a unix-dgram socket, whose socket file `owner` held
    /// when the relay started.
    pub(crate) fn to(to: &Target, owner: Option<u32>) -> Option<Redial> {
        if to.proto != SockProto::UnixDgram {
            return None;
        }
        let to = crate::transport::unix::sockaddr_of(&to.addr).ok()?;
        Some(Redial {
            to,
            last: None,
            owner,
        })
    }

    /// Whether `e`, from a send on the flow's socket to TO, says TO's socket is gone.
    pub(crate) fn gone(e: &io::Error) -> bool {
        matches!(
            e.raw_os_error().map(Errno::from_raw),
            Some(Errno::ECONNREFUSED | Errno::ENOTCONN)
        )
    }

    /// Connects `conn` to TO's name again, at most once each [`AT_MOST_EVERY`].
    pub(crate) fn again(&mut self, conn: &Conn) -> Again {
        let now = Instant::now();
        if self.last.is_some_and(|last| now - last < AT_MOST_EVERY) {
            return Again::TooSoon;
        }
        self.last = Some(now);
        let connected = vetted(self.owner, owner_at(&self.to))
            .and_then(|()| crate::transport::calls::connect(conn.socket(), &self.to));
        match connected {
            Ok(()) => Again::Connected,
            Err(e) => Again::Failed(e),
        }
    }
}

/// The owner of the socket file at a Unix TO's path; None for an abstract name, another
/// family, or when nothing is there.
pub(crate) fn owner_of(to: &Target) -> Option<u32> {
    let unix = matches!(
        to.proto,
        SockProto::Unix | SockProto::UnixDgram | SockProto::UnixSeqpacket
    );
    owner_at(
        &crate::transport::unix::sockaddr_of(&to.addr)
            .ok()
            .filter(|_| unix)?,
    )
}

/// Whether the socket file at TO's path is still `was`'s (the relay's start), before a
/// flow connects to it: refused, with the reason, when another user's socket took it.
pub(crate) fn same_owner(to: &Target, was: Option<u32>) -> anyhow::Result<()> {
    vetted(was, owner_of(to))
        .map_err(|e| crate::error::socket_error(crate::error::Call::Connect, to, &e))
}

fn vetted(was: Option<u32>, now: Option<u32>) -> io::Result<()> {
    match (was, now) {
        (Some(was), Some(now)) if was != now => Err(crate::error::Advised::io(
            Errno::EACCES,
            format!(
                "the socket at TO's path belongs to uid {now}, not uid {was} as when the relay \
                 started: another user bound there after TO's server went away, and gets no \
                 flow (keep TO's socket in a directory only its user may write, and start the \
                 relay again)"
            ),
        )),
        _ => Ok(()),
    }
}

/// Following symlinks, as connect(2) does: the owner of the socket a connect would reach.
fn owner_at(to: &SockAddr) -> Option<u32> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(to.as_pathname()?).ok().map(|m| m.uid())
}
