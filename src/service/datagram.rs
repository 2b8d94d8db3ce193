//! The echo service on an unconnected datagram socket: each datagram is its own message and
//! its reply goes back to its sender, from the address the datagram was sent to. One decision per datagram ([`DatagramEcho::admit`]),
//! used by the one-at-a-time path (recvfrom/sendto) and the batched one (recvmmsg/sendmmsg).

use crate::hexdump::{self, Way};
use std::collections::HashMap;
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use socket2::SockAddr;
use tracing::{debug, warn};

use crate::access::Access;
use crate::endpoint::{Proto, Share};
use crate::transport::batch::{self, Batch, datagrams};
use crate::transport::{DatagramSocket, MAX_MESSAGE, PeerAddr, Received};

use super::echo::Transform;
use super::guard::{Guard, GuardRules, Verdict, source_of};
use super::peers::PeerTable;
use super::stats::Stats;

/// Reads (or batches) per call of `answer_each`/`answer_batch`, and the time they may take:
/// then the caller gets a turn (to look for a stop signal).
const ROUNDS: usize = 64;
const TURN: Duration = Duration::from_millis(100);

/// Why a datagram got no reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Drop {
    Truncated,
    NoAddress,
    Guarded(Verdict),
    Refused,
    /// Refused by a lab server's gate: the sender's address holds no turn.
    NoTurn,
    /// Refused by --allow/--deny or by the gate.
    RefusedOrNoTurn,
}

impl Drop {
    fn explain(self) -> &'static str {
        match self {
            Drop::Truncated => {
                "larger than the 65536-byte receive buffer (MSG_TRUNC): dropped, never answered cut short"
            }
            Drop::NoAddress => {
                "from a socket with no address of its own (not bound), or at a name that is not \
                 its sender's here (a path whose socket file is another user's, as a relative \
                 one resolved from the server's directory may be; an abstract name whose socket \
                 here is another user's): cannot reply (-v says which)"
            }
            Drop::Guarded(verdict) => verdict.explain(),
            Drop::Refused => "refused by --allow/--deny",
            Drop::NoTurn => {
                "from addresses holding no turn (a run's whose turn had ended, or a stranger's)"
            }
            Drop::RefusedOrNoTurn => {
                "refused by --allow/--deny, or from addresses holding no turn (a run's whose \
                 turn had ended, or a stranger's)"
            }
        }
    }
}

/// Why `access` refused a datagram: its rules, or (`serve --lab`) its gate of turns, whose
/// refusals are no --allow or --deny the operator gave.
fn refused(access: &crate::access::Access) -> Drop {
    match (access.is_gated(), access.is_open()) {
        (false, _) => Drop::Refused,
        (true, true) => Drop::NoTurn,
        (true, false) => Drop::RefusedOrNoTurn,
    }
}

/// Settings of the datagram service, from `serve`'s flags.
#[derive(Clone, Debug)]
pub(crate) struct DatagramRules {
    pub transform: Transform,
    /// Answer datagrams from port 0 and the small-service ports too.
    pub allow_loop_ports: bool,
    /// Replies per second per source address.
    pub rate_limit: Option<u32>,
    /// The limit for sources off this host without `rate_limit`; none: no limit.
    pub default_rate: Option<u32>,
    /// --allow and --deny, shared with the rest of the server (each refused peer is logged
    /// once).
    pub access: Arc<Access>,
}

/// The datagram service of one thread: rules, peers seen, and per-source reply budgets.
pub(crate) struct DatagramEcho {
    proto: Proto,
    rules: DatagramRules,
    pub peers: PeerTable,
    guard: Guard,
    dropped: HashMap<Drop, u64>,
    /// The sources of the datagrams over the rate since the last report (an address, an
    /// IPv6 /64, a Unix sender's user): the first, and whether others came too (the report
    /// names who was limited).
    limited: Option<(Share, bool)>,
    last_report: Instant,
    replies: Vec<(usize, usize)>,
}

impl DatagramEcho {
    /// The service for a socket bound to `own` (its getsockname, never answered).
    pub(crate) fn new(proto: Proto, rules: DatagramRules, own: Option<SockAddr>) -> DatagramEcho {
        let guard = Guard::new(
            GuardRules {
                allow_loop_ports: rules.allow_loop_ports,
                rate: rules.rate_limit,
                default_rate: rules.default_rate,
                repeats: true,
                replies_upper: rules.transform == Transform::Upper,
            },
            own,
        );
        DatagramEcho {
            proto,
            rules,
            peers: PeerTable::new(proto),
            guard,
            dropped: HashMap::new(),
            limited: None,
            last_report: Instant::now(),
            replies: Vec::new(),
        }
    }

    /// Whether a datagram gets a reply; counts and (at most once a second) logs those that
    /// do not.
    /// `uid`: a Unix sender's user, whose rate budget it spends.
    fn admit(
        &mut self,
        received: Received,
        data: &[u8],
        (from, uid): (&PeerAddr, Option<u32>),
    ) -> Option<usize> {
        let verdict = match received {
            Received::Truncated(_) => Err(Drop::Truncated),
            Received::Closed => Err(Drop::NoAddress),
            Received::Data(_) if !from.can_reply() => Err(Drop::NoAddress),
            Received::Data(_)
                if !self
                    .rules
                    .access
                    .admits_datagram(self.proto, from, None, None) =>
            {
                Err(refused(&self.rules.access))
            }
            Received::Data(n) => match self.guard.check(from, uid, &data[..n.min(data.len())]) {
                Ok(()) => Ok(n),
                Err(verdict) => Err(Drop::Guarded(verdict)),
            },
        };
        match verdict {
            Ok(n) => Some(n),
            Err(why) => {
                let size = match received {
                    Received::Data(n) | Received::Truncated(n) => n,
                    Received::Closed => 0,
                };
                debug!(
                    "{} {from}: dropped a {size}-byte datagram: {}",
                    self.proto,
                    why.explain()
                );
                *self.dropped.entry(why).or_default() += 1;
                if why == Drop::Guarded(Verdict::RateLimited) {
                    self.note_limited(from, uid);
                }
                self.report_drops(false);
                None
            }
        }
    }

    /// Logs what was dropped since the last report: at most once a second, or now if `force`.
    pub(crate) fn report_drops(&mut self, force: bool) {
        if self.dropped.is_empty()
            || (!force && self.last_report.elapsed() < Duration::from_secs(1))
        {
            return;
        }
        self.last_report = Instant::now();
        let limited = self.limited.take();
        for (why, count) in self.dropped.drain() {
            let from = match (why, limited) {
                (Drop::Guarded(Verdict::RateLimited), Some((source, others))) => {
                    format!(" ({source}{})", if others { " and others" } else { "" })
                }
                _ => String::new(),
            };
            warn!(
                "{}: dropped {count} datagram(s) {}{from}",
                self.proto,
                why.explain()
            );
        }
    }

    /// Remembers a source over the rate, for the report to name: `from`'s address, or a
    /// Unix sender's user `uid`.
    fn note_limited(&mut self, from: &PeerAddr, uid: Option<u32>) {
        let ip = from.0.as_socket().map(|a| a.ip());
        let source = source_of(ip, uid);
        match &mut self.limited {
            None => self.limited = Some((source, false)),
            Some((first, others)) => *others |= *first != source,
        }
    }

    /// Answers datagrams one recvfrom and one sendto each, as a first socket lesson writes
    /// it: until the socket has none (at once on a non-blocking socket, after SO_RCVTIMEO on
    /// a blocking one), [`ROUNDS`] of them, or [`TURN`] has passed.
    pub(crate) fn answer_each(
        &mut self,
        sock: &DatagramSocket,
        buf: &mut [u8],
        stats: &Stats,
    ) -> io::Result<()> {
        // Bounded, so a server under constant load still returns to look for a stop signal.
        let started = Instant::now();
        // Retries for full queues, shared by the whole turn (see room_soon).
        let mut tries = 0;
        for _ in 0..ROUNDS {
            if started.elapsed() >= TURN {
                break;
            }
            let (received, from, told) = match sock.recv_request(buf) {
                Ok(got) => got,
                Err(e) if is_transient(&e) => return ignore_transient(e),
                Err(e) => return Err(e),
            };
            let uid = told.cred.map(|(uid, _)| uid);
            let Some(n) = self.admit(received, buf, (&from, uid)) else {
                continue;
            };
            hexdump::dump_if(Way::In, &from, &buf[..n]);
            hexdump::log_received(&from, &buf[..n]);
            self.rules.transform.apply(&mut buf[..n]);
            hexdump::dump_if(Way::Out, &from, &buf[..n]);
            // Never blocks for long: a client whose queue stays full loses its reply.
            let sent = loop {
                let how = (told.arrival.as_ref(), told.held.as_ref());
                match sock.reply_to(&buf[..n], &from, how.0, how.1, libc::MSG_DONTWAIT) {
                    Ok(()) => break n,
                    Err(e) if room_soon(&e, &mut tries) => {}
                    Err(e) => {
                        debug!("{} {from}: reply not sent: {e}", self.proto);
                        break 0;
                    }
                }
            };
            self.peers.message(&from, stats, (n, sent));
        }
        Ok(())
    }

    /// Answers waiting datagrams [`crate::transport::batch::BATCH`] at a time: one recvmmsg
    /// and one sendmmsg for a whole batch (recvmsg and sendto while they come one at a
    /// time). On a socket that glues (UDP_GRO) a receive may hold many datagrams of one
    /// sender: each is decided and transformed as its own, and those answered leave
    /// together, cut at the same size (UDP_SEGMENT). `started`: the clock read just before.
    pub(crate) fn answer_batch(
        &mut self,
        sock: &DatagramSocket,
        batch: &mut Batch,
        stats: &Stats,
        started: Instant,
    ) -> io::Result<()> {
        // One clock read per round: the peers' last-seen times are kept to within a turn.
        let mut now = started;
        let mut tries = 0;
        for round in 0..ROUNDS {
            if round > 0 {
                now = Instant::now();
                if now.duration_since(started) >= TURN {
                    break;
                }
            }
            match sock.recv_batch(batch) {
                Ok(_) => {}
                Err(e) if is_transient(&e) => return ignore_transient(e),
                Err(e) => return Err(e),
            }
            let mut replies = std::mem::take(&mut self.replies);
            replies.clear();
            for i in 0..batch.len() {
                if let Some(n) = self.take_received(batch, i) {
                    replies.push((i, n));
                }
            }
            let went = self.send_replies(sock, batch, &replies, &mut tries);
            for (k, &(i, n)) in replies.iter().enumerate() {
                let from = batch.peer(i);
                let sent = went & (1 << k) != 0;
                for piece in datagrams(n, batch.segment(i)) {
                    let bytes = (piece.len(), if sent { piece.len() } else { 0 });
                    self.peers.message_at(from, stats, now, bytes);
                }
            }
            let full = batch.len() == crate::transport::batch::BATCH;
            self.replies = replies;
            if !full {
                return Ok(());
            }
        }
        Ok(())
    }

    /// Receive `i` of a batch decided, datagram by datagram: those answered transformed and
    /// moved together at its start; the length of their replies, `None` for none.
    fn take_received(&mut self, batch: &mut Batch, i: usize) -> Option<usize> {
        let (segment, uid) = (batch.segment(i), batch.uid(i));
        let (received, data, from) = batch.get_mut(i);
        // A receive cut short (or not data) is decided whole: dropped, never answered in part.
        if segment == 0 || !matches!(received, Received::Data(_)) {
            let n = self.answer_in_place(received, data, (from, uid))?;
            return Some(n);
        }
        // Glued: only the last datagram may be shorter than the segment, so the answered
        // ones moved together still cut at the same size.
        let mut end = 0;
        for piece in datagrams(data.len(), segment) {
            let len = piece.len();
            let Some(n) =
                self.answer_in_place(Received::Data(len), &mut data[piece.clone()], (from, uid))
            else {
                continue;
            };
            data.copy_within(piece.start..piece.start + n, end);
            end += n;
        }
        (end > 0).then_some(end)
    }

    /// sendmmsg of a batch's replies; which of them went, a bit each (reply `k` is bit `k`:
    /// a batch holds at most [`batch::BATCH`], within a u64, so no Vec is filled per
    /// datagram). sendmmsg stops at the first reply that fails (a Unix datagram client gone,
    /// or one whose queue is full): that reply is dropped, the rest of the batch still goes.
    fn send_replies(
        &mut self,
        sock: &DatagramSocket,
        batch: &mut Batch,
        replies: &[(usize, usize)],
        tries: &mut u32,
    ) -> u64 {
        const { assert!(batch::BATCH <= 64) };
        let mut sent = 0u64;
        let mut start = 0;
        while start < replies.len() {
            match sock.send_batch(batch, &replies[start..]) {
                Ok(0) => start += 1,
                Ok(k) => {
                    // Bits start..start + k.
                    sent |= (u64::MAX >> (64 - k)) << start;
                    start += k;
                }
                Err(e) if room_soon(&e, tries) => {}
                Err(e) => {
                    let (i, n) = replies[start];
                    sent |= u64::from(self.send_alone(sock, batch, (i, n), &e)) << start;
                    start += 1;
                }
            }
        }
        sent
    }

    /// A reply sendmmsg refused, tried once more on its own: one reply from a source the
    /// kernel refuses goes from its choice; a glued reply on a path without segmentation
    /// offload goes datagram by datagram, every piece tried. The socket keeps gluing: the
    /// kernel refuses UDP_SEGMENT per path (EINVAL past one peer's MTU), and a receive
    /// already glued must still be cut into its datagrams, which only gluing's control
    /// message tells.
    fn send_alone(
        &mut self,
        sock: &DatagramSocket,
        batch: &mut Batch,
        (i, n): (usize, usize),
        e: &io::Error,
    ) -> bool {
        let segment = batch.segment(i);
        let glued = segment > 0 && n > segment;
        let pktinfo = batch.arrival(i).is_some();
        let arrival = batch.arrival(i).copied();
        let (_, data, from) = batch.get_mut(i);
        let went = if glued && batch::no_segmentation(e) {
            static LOG: crate::logging::Throttle = crate::logging::Throttle::new();
            if let Some(more) = LOG.allow_debug() {
                debug!(
                    "{} {from}: UDP_SEGMENT refused ({e}): answered datagram by datagram{more}",
                    self.proto
                );
            }
            datagrams(n, segment).fold(true, |all, piece| {
                let piece = &data[piece];
                let sent = sock.reply_to(piece, from, arrival.as_ref(), None, libc::MSG_DONTWAIT);
                sent.is_ok() && all
            })
        } else {
            e.raw_os_error() == Some(libc::EINVAL)
                && pktinfo
                && sock.try_send_to(&data[..n], from).is_ok()
        };
        if !went {
            debug!("{} {from}: reply not sent: {e}", self.proto);
        }
        went
    }

    /// One datagram a completion model received: decided, and when answered transformed in
    /// place; the reply's length, `None` for no reply. [`DatagramEcho::count`] once sent.
    /// `uid`: a Unix sender's user, as for [`DatagramEcho::admit`].
    pub(crate) fn answer_in_place(
        &mut self,
        received: Received,
        data: &mut [u8],
        (from, uid): (&PeerAddr, Option<u32>),
    ) -> Option<usize> {
        let n = self.admit(received, data, (from, uid))?;
        let data = &mut data[..n];
        hexdump::dump_if(Way::In, from, data);
        hexdump::log_received(from, data);
        self.rules.transform.apply(data);
        hexdump::dump_if(Way::Out, from, data);
        Some(n)
    }

    /// Counts a reply of `n` bytes to `from`, `sent` of them sent.
    pub(crate) fn count(&mut self, from: &PeerAddr, n: usize, sent: usize, stats: &Stats) {
        self.peers.message(from, stats, (n, sent));
    }

    /// Logs the peers and drops still unreported, when the server stops.
    pub(crate) fn finish(&mut self) {
        self.report_drops(true);
        self.peers.finish();
    }
}

/// Whether a reply the kernel could not take now (EAGAIN: the client's queue, or the server's
/// send buffer, is full) is worth another try: a client that reads is usually a few
/// microseconds from making room. Waits briefly and counts the try against the turn's
/// budget: at most about a millisecond of waiting per 100 ms turn, so a client that does not
/// read costs the others about 1%.
fn room_soon(e: &io::Error, tries: &mut u32) -> bool {
    if e.kind() != io::ErrorKind::WouldBlock || *tries >= REPLY_TRIES {
        return false;
    }
    *tries += 1;
    std::thread::sleep(Duration::from_micros(50));
    true
}

const REPLY_TRIES: u32 = 20;

/// Nothing more to read, or an error that concerns one earlier peer (an ICMP error for a
/// reply surfaces on the next read on some kernels): not the server's problem.
fn is_transient(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted | io::ErrorKind::ConnectionRefused
    )
}

fn ignore_transient(e: io::Error) -> io::Result<()> {
    if e.kind() != io::ErrorKind::WouldBlock {
        debug!("recvfrom: {e} (ignored)");
    }
    Ok(())
}

/// The scratch buffer for [`DatagramEcho::answer_each`].
pub(crate) fn buffer() -> Vec<u8> {
    vec![0u8; MAX_MESSAGE]
}
