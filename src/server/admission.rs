//! Who gets served: --allow/--deny, and room under --max-conns. Connections (and datagram
//! requests) in service are counted here, from admission until their slot is released; a
//! refused connection is told why and closed here, without a reset.

use std::net::SocketAddr;
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::eventfd::{EfdFlags, EventFd};
use tracing::warn;

use crate::access::{Access, Identity};
use crate::endpoint::Proto;
use crate::logging::Throttle;
use crate::service::stats::Stats;
use crate::slots::{Counts, Slot};
use crate::transport::quic::{Place, Places};
use crate::transport::{Conn, PeerAddr, Received, Told};

pub(crate) struct Admission {
    proto: Proto,
    access: Arc<Access>,
    /// Clients served at once; more are refused, never queued without bound.
    max_conns: usize,
    active: AtomicUsize,
    stats: &'static Stats,
}

impl Admission {
    pub(crate) fn new(
        proto: Proto,
        access: Arc<Access>,
        max_conns: usize,
        stats: &'static Stats,
    ) -> Self {
        Admission {
            proto,
            access,
            max_conns,
            active: AtomicUsize::new(0),
            stats,
        }
    }

    /// Whether a new connection is served: allowed, and there is room. Counts it if so; a
    /// refusal is logged and its reason returned, for the peer (the caller drops, and so
    /// closes, the connection).
    pub(crate) fn conn(&self, conn: &Conn) -> Result<(), String> {
        self.access.judge_conn(self.proto, conn)?;
        self.room_for(conn)
    }

    /// [`Admission::conn`] for a connection whose peer was told already, as `identity`.
    pub(crate) fn conn_as(&self, conn: &Conn, identity: &Identity) -> Result<(), String> {
        self.access.judge(self.proto, &conn.peer(), identity)?;
        self.room_for(conn)
    }

    /// Who `conn`'s peer is, its user asked for when on this host: told once, for
    /// [`Admission::conn_as`] and a count by user ([`Sources::take`]).
    pub(crate) fn identify(&self, conn: &Conn) -> Identity {
        self.access.identify_conn(self.proto, conn, true)
    }

    /// Counts an admitted connection if there is room under --max-conns; else the refusal.
    fn room_for(&self, conn: &Conn) -> Result<(), String> {
        if !self.take() {
            // A flood of clients causes this line at will: throttled.
            static LOG: Throttle = Throttle::new();
            if let Some(more) = LOG.allow() {
                warn!(
                    "{} {}: refused, {} already (--max-conns){more}",
                    self.proto,
                    conn.peer(),
                    crate::units::count(self.max_conns, "connection")
                );
            }
            return Err(format!(
                "busy: {} already (--max-conns)",
                crate::units::count(self.max_conns, "client")
            ));
        }
        Ok(())
    }

    /// Who a datagram's sender is, received on a socket bound to `local` with what recvmsg
    /// told of it, its user asked for when on this host: told once, for the rules
    /// ([`Admission::admits`]) and a count by user ([`Sources::take_request`]).
    pub(crate) fn identify_sender(
        &self,
        from: &PeerAddr,
        local: Option<SocketAddr>,
        told: Told,
    ) -> Identity {
        self.access
            .identify_datagram(self.proto, from, local, told.cred, true)
    }

    /// Whether --allow and --deny let in a datagram's sender told as `identity`: asked before
    /// anything is answered, a COOKIE or a busy reply included.
    pub(crate) fn admits(&self, from: &PeerAddr, identity: &Identity) -> bool {
        self.access.judge(self.proto, from, identity).is_ok()
    }

    /// Whether an admitted sender's request gets a thread: there is room under --max-conns.
    pub(crate) fn request(&self, from: &PeerAddr) -> bool {
        if !self.take() {
            static LOG: Throttle = Throttle::new();
            if let Some(more) = LOG.allow() {
                warn!(
                    "{from}: refused, {} requests running (--max-conns){more}",
                    self.max_conns
                );
            }
            return false;
        }
        true
    }

    fn take(&self) -> bool {
        if self.active.fetch_add(1, Ordering::Relaxed) >= self.max_conns {
            self.active.fetch_sub(1, Ordering::Relaxed);
            return false;
        }
        self.stats.client();
        true
    }

    /// Frees the slot of a client that was admitted.
    pub(crate) fn release(&self) {
        self.active.fetch_sub(1, Ordering::Relaxed);
    }

    /// Frees the slot of a client that was admitted when the guard is dropped: after what
    /// ends the client, and during a panic in it too.
    pub(crate) fn releasing(&self) -> Releasing<'_> {
        Releasing(self)
    }
}

/// Connections served at once from one source by a service that blocks (files, exec), each
/// holding a thread: one client may not take all [`super::BLOCKING_MAX_CONNS`].
pub(crate) const PER_SOURCE: usize = 16;

/// Connections one source may hold at once from `service`, a service that blocks: at most
/// [`PER_SOURCE`], fewer when the service says so.
pub(crate) fn per_source<S: crate::service::Service>(service: &S) -> usize {
    service
        .per_source()
        .map_or(PER_SOURCE, |n| n.min(PER_SOURCE))
}

/// Connections held per source ([`Share::of_any`]): a Unix peer by its user too, since
/// several users may share an --exec or --files socket (--allow uid:N and its mode).
pub(crate) struct Sources {
    held: Counts<Share>,
    limit: usize,
}

pub(crate) use crate::endpoint::{Share, share_key, share_name};

impl Share {
    /// The share of any peer told as `identity`: on this host, the user owning its socket
    /// (as told once, for the rules too), a Unix peer's as its credentials name (SO_PEERCRED,
    /// SCM_CREDENTIALS), with this host's other peers of that user; elsewhere its address.
    /// `None`: a Unix peer whose credentials were not told.
    pub(crate) fn of_any(identity: &Identity) -> Option<Share> {
        let Some(ip) = identity.ip() else {
            return Some(Share::local(Some(identity.unix_uid()?)));
        };
        Some(match identity.local_user() {
            Some(user) => Share::local(user),
            None => Share::Address(share_key(ip)),
        })
    }

    /// Whose share it is, in the words of a refusal.
    fn whose(self) -> String {
        match self {
            Share::Address(_) => "from your address".to_string(),
            Share::Local(Some(uid)) => format!("from your user (uid {uid}) on this host"),
            Share::Local(None) => "from this host whose user cannot be told".to_string(),
        }
    }

    /// The refusal told to a peer holding `limit` connections.
    fn busy(self, limit: usize) -> String {
        let whose = self.whose();
        format!("busy: {limit} connections {whose} already; wait for one to end")
    }
}

/// One connection's place in its source's count, given back when dropped.
pub(crate) type SourceSlot = Slot<Share>;

impl Sources {
    /// At most `limit` at once from one source.
    pub(crate) fn new(limit: usize) -> Sources {
        Sources {
            held: Counts::default(),
            limit,
        }
    }

    /// A place for a connection from `peer`, told as `identity`, or the refusal to tell it when its
    /// source has its limit of connections already.
    pub(crate) fn take(
        &self,
        peer: impl std::fmt::Display,
        identity: &Identity,
    ) -> Result<Option<SourceSlot>, String> {
        let Some(share) = Share::of_any(identity) else {
            return Ok(None);
        };
        match self.take_share(share) {
            Some(slot) => Ok(Some(slot)),
            None => {
                let limit = self.limit;
                static LOG: Throttle = Throttle::new();
                if let Some(more) = LOG.allow() {
                    warn!("{peer}: refused, {limit} connections from {share} already{more}");
                }
                Err(share.busy(limit))
            }
        }
    }

    /// A place for one more request from a sender told as `identity` (by its source
    /// address, or on this host by its user, as connections are counted), or, when its source
    /// holds its limit, whose requests those are ("from your address").
    pub(crate) fn take_request(&self, identity: &Identity) -> Result<Option<SourceSlot>, String> {
        let Some(share) = Share::of_any(identity) else {
            return Ok(None);
        };
        self.take_share(share)
            .map(Some)
            .ok_or_else(|| share.whose())
    }

    /// Sources at once are bounded by the connections (or request threads) at once.
    fn take_share(&self, share: Share) -> Option<SourceSlot> {
        self.held.take(share, self.limit, usize::MAX)
    }
}

/// QUIC connections held at once from one source by the echo service: each costs the
/// endpoint tens of KB and a socket pair, so one client may not take all of --max-conns.
pub(crate) const QUIC_PER_SOURCE: usize = 256;

/// Counts a server's QUIC connections per source as [`Sources::take`] counts its tcp ones
/// (the peer told by `access`, on this host by its user), `limit` at once.
pub(crate) fn quic_places(access: Arc<Access>, limit: usize) -> Places {
    let sources = Sources::new(limit);
    Places(Arc::new(move |peer, reached| {
        let from = PeerAddr(peer.into());
        let identity = access.identify_datagram(Proto::Quic, &from, Some(reached), None, true);
        let place = sources.take(peer, &identity)?;
        Ok(Box::new(place) as Place)
    }))
}

/// Refused connections whose clients are still being heard out, at most: a newer refusal
/// ends the oldest's hearing (what it sent so far is read first), so a flood of clients that
/// never close cannot keep the next refused client from its line.
const REFUSING: usize = 64;
/// Refusals handed over and not yet heard out or ended, at most; past it (a flood faster than
/// one tick of the hearing thread) a refused connection is closed at once, and its client may
/// see a reset instead of the line.
const REFUSALS_QUEUED: usize = 4 * REFUSING;
/// How long a refused client has to read its line and close.
const REFUSAL_TIME: Duration = Duration::from_secs(2);
/// Bytes of a refused client's request read and dropped, at most.
const REFUSAL_BYTES: usize = 64 * 1024;
/// How often the thread hearing out refused clients looks for new ones while it has some.
const REFUSAL_TICK: Duration = Duration::from_millis(50);
/// Refused TLS clients a second whose handshake is finished so that they read the busy line:
/// each handshake costs the server a signature, which a flood of connections would otherwise
/// multiply. Past it a refused TLS client's handshake is closed unanswered.
const TLS_REFUSALS: u32 = 32;

/// Refusals handed over and not yet closed.
static REFUSALS: AtomicUsize = AtomicUsize::new(0);

/// A refused connection being heard out.
struct Refused {
    conn: Conn,
    until: Instant,
    read: usize,
    /// Its TLS handshake goes on: the busy line waits in the session for its end.
    handshake: bool,
}

/// Tells a refused client `line` (the busy line of the service's protocol; `None`: a bare
/// close) and closes without a reset. Closing with the client's request unread would make
/// the kernel answer with a reset, which may reach the client before it read the line, so
/// the line is sent, the writing half shut, and the connection handed to one thread that
/// reads and drops what the client sends until it closes: at most [`REFUSING`] at once (the
/// newest), each for [`REFUSAL_TIME`] and [`REFUSAL_BYTES`]. Never blocks the accept loop:
/// the line goes on a non-blocking socket (a fresh connection's buffer takes it whole). Over
/// TLS the line waits in the session, and that thread finishes the handshake within the same
/// bounds before it goes out, for at most [`TLS_REFUSALS`] clients a second.
pub(crate) fn refuse(conn: Conn, line: Option<&[u8]>) {
    let Some(line) = line else { return };
    if conn.set_nonblocking(true).is_err() {
        return;
    }
    static HANDSHAKES: Throttle = Throttle::at_most(TLS_REFUSALS);
    let handshake = conn.is_tls() && HANDSHAKES.allow().is_some();
    if handshake || !conn.is_tls() {
        crate::hexdump::dump_if(crate::hexdump::Way::Out, &conn.peer(), line);
        let sent = matches!(conn.send_some(line), Ok(n) if n == line.len());
        if !sent {
            return;
        }
    }
    if !handshake && conn.shutdown_write().is_err() {
        return;
    }
    if REFUSALS.fetch_add(1, Ordering::Relaxed) >= REFUSALS_QUEUED {
        REFUSALS.fetch_sub(1, Ordering::Relaxed);
        return;
    }
    let refused = Refused {
        conn,
        until: Instant::now() + REFUSAL_TIME,
        read: 0,
        handshake,
    };
    if !hand_over(refused) {
        REFUSALS.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The thread that hears refused clients out: its queue, and what wakes it from poll(2).
struct Hearer {
    queue: Mutex<Sender<Refused>>,
    wake: Arc<EventFd>,
}

/// Gives a refused connection to the thread that hears them out (started with the first) and
/// wakes it, so it makes room at once; false, and the connection closed, when there is no
/// such thread.
fn hand_over(refused: Refused) -> bool {
    static HEARER: OnceLock<Option<Hearer>> = OnceLock::new();
    let hearer = HEARER.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel();
        let started = EventFd::from_flags(EfdFlags::EFD_NONBLOCK | EfdFlags::EFD_CLOEXEC)
            .map_err(std::io::Error::from)
            .map(Arc::new)
            .and_then(|wake| {
                let woken = Arc::clone(&wake);
                std::thread::Builder::new()
                    .name("refusals".into())
                    .spawn(move || hear_out(&rx, &woken))
                    .map(|_| wake)
            });
        match started {
            Ok(wake) => Some(Hearer {
                queue: Mutex::new(tx),
                wake,
            }),
            Err(e) => {
                warn!("cannot start a thread for refused clients ({e}); each is closed at once");
                None
            }
        }
    });
    hearer.as_ref().is_some_and(|hearer| {
        let queue = hearer.queue.lock().unwrap_or_else(|e| e.into_inner());
        let sent = queue.send(refused).is_ok();
        let _ = hearer.wake.write(1);
        sent
    })
}

/// Reads and drops what refused clients send until each closes, sends too much or has had
/// its time; sleeps in recv while there are none, in poll(2) while there are.
fn hear_out(rx: &Receiver<Refused>, wake: &EventFd) {
    let mut held: Vec<Refused> = Vec::new();
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        if held.is_empty() {
            match rx.recv() {
                Ok(refused) => held.push(refused),
                Err(_) => return,
            }
        }
        let _ = wake.read();
        held.extend(rx.try_iter());
        // The oldest make room for the newest: each has had its line.
        let over = held.len().saturating_sub(REFUSING);
        for mut oldest in held.drain(..over) {
            oldest.heard(&mut buf);
            REFUSALS.fetch_sub(1, Ordering::Relaxed);
        }
        let mut fds: Vec<PollFd> = held
            .iter()
            .map(|r| PollFd::new(r.conn.as_fd(), PollFlags::POLLIN))
            .collect();
        fds.push(PollFd::new(wake.as_fd(), PollFlags::POLLIN));
        let tick = PollTimeout::try_from(REFUSAL_TICK).unwrap_or(PollTimeout::ZERO);
        let _ = poll(&mut fds, tick);
        let ready: Vec<bool> = fds
            .iter()
            .map(|fd| fd.revents().is_some_and(|r| !r.is_empty()))
            .collect();
        drop(fds);
        let now = Instant::now();
        let mut ready = ready.into_iter();
        held.retain_mut(|refused| {
            let heard = ready.next() == Some(true) && refused.heard(&mut buf);
            if heard {
                REFUSALS.fetch_sub(1, Ordering::Relaxed);
                return false;
            }
            if now < refused.until {
                return true;
            }
            // Its time is up: what came since the poll is read too, so the close is no reset.
            refused.heard(&mut buf);
            REFUSALS.fetch_sub(1, Ordering::Relaxed);
            false
        });
    }
}

impl Refused {
    /// Reads what is there (a TLS client's ciphertext, counted as it came, fed to its
    /// handshake until that is done); true when the client is done (it closed, failed, or
    /// sent more than [`REFUSAL_BYTES`]).
    fn heard(&mut self, buf: &mut [u8]) -> bool {
        loop {
            match self.conn.recv_raw(buf) {
                Ok(Received::Data(n) | Received::Truncated(n)) => {
                    self.read += n.max(1);
                    let came = &buf[..n.min(buf.len())];
                    if self.read > REFUSAL_BYTES || self.handshaken(came).is_err() {
                        return true;
                    }
                }
                Ok(Received::Closed) => return true,
                Err(e) if crate::transport::is_timeout(&e) => return false,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => return true,
            }
        }
    }

    /// Feeds `came` to the handshake still going on; once it is done (the line sent with
    /// its end), the writing half is shut.
    fn handshaken(&mut self, came: &[u8]) -> std::io::Result<()> {
        if self.handshake && self.conn.feed_handshake(came)? {
            self.handshake = false;
            self.conn.shutdown_write()?;
        }
        Ok(())
    }
}

/// See [`Admission::releasing`].
pub(crate) struct Releasing<'a>(&'a Admission);

impl Drop for Releasing<'_> {
    fn drop(&mut self) {
        self.0.release();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(port: u16) -> PeerAddr {
        let addr: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
        PeerAddr(addr.into())
    }

    #[test]
    fn past_max_conns_a_client_is_refused_until_a_slot_is_released() {
        let access = Arc::new(Access::new(Proto::Udp, &[], &[]).unwrap());
        let admission = Admission::new(Proto::Udp, access, 2, Stats::shared());
        assert!(admission.request(&peer(4000)));
        assert!(admission.request(&peer(4001)));
        assert!(!admission.request(&peer(4002)), "a third at once");
        admission.release();
        assert!(admission.request(&peer(4002)), "a slot was freed");
    }

    #[test]
    fn a_slot_comes_back_when_what_ends_its_client_panics() {
        let access = Arc::new(Access::new(Proto::Udp, &[], &[]).unwrap());
        let admission = Admission::new(Proto::Udp, access, 1, Stats::shared());
        assert!(admission.request(&peer(4000)));
        let ended = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _slot = admission.releasing();
            panic!("a session's end");
        }));
        assert!(ended.is_err());
        assert!(admission.request(&peer(4001)), "the slot was freed");
    }

    #[test]
    fn a_denied_peer_is_refused_and_takes_no_slot() {
        let deny = ["127.0.0.0/8".parse().unwrap()];
        let access = Arc::new(Access::new(Proto::Udp, &[], &deny).unwrap());
        let admission = Admission::new(Proto::Udp, access, 1, Stats::shared());
        let sender = admission.identify_sender(&peer(4000), None, Told::default());
        assert!(!admission.admits(&peer(4000), &sender));
        assert_eq!(admission.active.load(Ordering::Relaxed), 0);
    }
}
