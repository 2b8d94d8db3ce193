//! The lab's tcp, tls and quic echo, bound to turns: an echo connection serves only while
//! a run of its address holds its turn. The gate is checked on accept, and again on a connection's next
//! bytes once any address's last turn has ended (one atomic load per read otherwise), so a
//! connection opened during a turn gets no echo after it. One address holds at most
//! [`RUN_CONNS`] connections on a port for each turn it holds: a run holding its turn
//! cannot take the port's connections from the runs measuring beside it.

use std::net::IpAddr;
use std::sync::Arc;

use crate::server::admission::{share_key, share_name};
use crate::service::echo::{Echo, EchoSession};
use crate::service::{ConnEnd, Datagrams, Drive, NoRequests, Service, Session, Step};
use crate::slots::{Counts, Slot};
use crate::transport::Conn;

use super::class::Class;

/// Echo connections at once on one port per turn an address holds: more than a lab run
/// opens (the 50 connects its set-up column times, each closed before the next, may reach
/// the server's loop together; then a few clients of the load).
pub(crate) const RUN_CONNS: usize = 64;

/// The echo service, its connections ended when their address's turn ends.
pub(crate) struct TurnBound {
    pub echo: Echo,
    pub class: Arc<Class>,
    /// Connections open now per address.
    pub held: Held,
}

/// Connections open per client ([`share_key`]) on one port.
pub(crate) type Held = Counts<IpAddr>;

/// One echo connection and the turn it was opened in.
pub(crate) struct TurnSession {
    inner: EchoSession,
    ip: Option<IpAddr>,
    class: Arc<Class>,
    /// [`Class::turns_ended`] when last checked.
    seen: u64,
    _place: Option<Slot<IpAddr>>,
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

/// The client `conn` counts for: its address as turns and the cap count it ([`share_key`]).
fn client(conn: &Conn) -> Option<IpAddr> {
    conn.remote().map(|a| share_key(a.ip()))
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

    /// Room while the address holds fewer than [`RUN_CONNS`] for each of its turns (the
    /// count is taken at open: loops accepting at once may pass it by one each).
    fn room(&self, conn: &Conn) -> Result<(), String> {
        let Some(ip) = client(conn) else {
            return Ok(());
        };
        let limit = RUN_CONNS * self.class.turns_of(ip).max(1);
        let now = self.held.count(&ip);
        if now < limit {
            return Ok(());
        }
        static LOG: crate::logging::Throttle = crate::logging::Throttle::new();
        if let Some(more) = LOG.allow() {
            tracing::warn!(
                "{}: refused, {now} echo connections from {} already (at most {RUN_CONNS} \
                 for each turn it holds){more}",
                conn.peer(),
                share_name(ip)
            );
        }
        Err(format!(
            "busy: {now} echo connections from your address already, more than a lab run opens"
        ))
    }

    fn open(&self, conn: Conn, drive: Drive) -> TurnSession {
        let ip = client(&conn);
        let seen = self.class.turns_ended();
        TurnSession {
            _place: ip.map(|ip| self.held.hold(ip)),
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
