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
    /// A way back to `to`, when it is a unix-dgram socket.
    pub(crate) fn to(to: &Target) -> Option<Redial> {
        if to.proto != SockProto::UnixDgram {
            return None;
        }
        let to = crate::transport::unix::sockaddr_of(&to.addr).ok()?;
        Some(Redial { to, last: None })
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
        match crate::transport::calls::connect(conn.socket(), &self.to) {
            Ok(()) => Again::Connected,
            Err(e) => Again::Failed(e),
        }
    }
}
