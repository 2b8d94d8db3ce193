//! The lab's tcp, tls and quic echo, bound to turns: an echo connection serves only while
//! a run of its address holds its turn. The gate is checked on accept, and again on a connection's next
//! bytes once any address's last turn has ended (one atomic load per read otherwise), so a
//! connection opened during a turn gets no echo after it.

use std::net::IpAddr;
use std::sync::Arc;

use crate::service::echo::{Echo, EchoSession};
use crate::service::{ConnEnd, Datagrams, Drive, NoRequests, Service, Session, Step};
use crate::transport::Conn;

use super::class::Class;

/// The echo service, its connections ended when their address's turn ends.
pub(crate) struct TurnBound {
    pub echo: Echo,
    pub class: Arc<Class>,
}

/// One echo connection and the turn it was opened in.
pub(crate) struct TurnSession {
    inner: EchoSession,
    ip: Option<IpAddr>,
    class: Arc<Class>,
    /// [`Class::turns_ended`] when last checked.
    seen: u64,
}

impl TurnSession {
    /// Whether the address no longer holds a turn.
    fn turn_over(&mut self) -> bool {
        let ended = self.class.turns_ended();
        if ended == self.seen {
            return false;
        }
        self.seen = ended;
        !self.ip.is_some_and(|ip| self.class.admits(ip))
    }
}

fn turn_ended() -> ConnEnd {
    ConnEnd::Failed(std::io::Error::new(
        std::io::ErrorKind::PermissionDenied,
        "the run's turn ended",
    ))
}

impl Service for TurnBound {
    type Session = TurnSession;
    type Requests = NoRequests;

    fn blocks(&self) -> bool {
        self.echo.blocks()
    }

    fn open(&self, conn: Conn, drive: Drive) -> TurnSession {
        let ip = conn.remote().map(|a| a.ip());
        let seen = self.class.turns_ended();
        TurnSession {
            inner: self.echo.open(conn, drive),
            ip,
            class: Arc::clone(&self.class),
            seen,
        }
    }

    fn refusal(&self, why: &str) -> Option<Vec<u8>> {
        self.echo.refusal(why)
    }

    fn datagrams(&self) -> Datagrams<NoRequests> {
        self.echo.datagrams()
    }
}

impl Session for TurnSession {
    fn conn(&self) -> &Conn {
        self.inner.conn()
    }

    fn pump(&mut self, buf: &mut [u8]) -> Step {
        if self.turn_over() {
            return Step::Done(turn_ended());
        }
        self.inner.pump(buf)
    }

    fn deadline(&self) -> Option<std::time::Instant> {
        self.inner.deadline()
    }

    fn received(&mut self, data: &mut [u8], out: &mut Vec<u8>) -> Option<ConnEnd> {
        if self.turn_over() {
            return Some(turn_ended());
        }
        self.inner.received(data, out)
    }

    fn end(self, ended: &ConnEnd) {
        self.inner.end(ended);
    }
}
