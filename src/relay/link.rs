//! One direction of a flow through the relay: a reader pushes messages in, a writer thread
//! passes each through the simulated conditions (loss, duplication, reordering, delay,
//! rate) and writes it to the other side. The queue between them is bounded, in messages
//! and in bytes, so a slow or rate-limited side pushes back on a stream and drops (counted)
//! on datagrams, as a router's queue does.

use crate::hexdump::{self, Way};
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use tracing::{debug, trace, warn};

use crate::endpoint::Target;
use crate::impair::{Chaos, Conditions, Counts, Rng, TokenBucket};
use crate::transport::message::{Carrier, MessageSend};
use crate::transport::{Conn, DatagramSocket, PeerAddr};
use crate::units;

use super::flow::{Flow, TICK};
use super::redial::{Again, Redial};

/// Messages waiting in one direction; past it a datagram is dropped (counted as a full
/// queue) and a stream reader waits.
pub(crate) const QUEUE: usize = 1024;
/// Bytes waiting in one direction (a held message included): --delay and --rate hold what
/// comes meanwhile, and a datagram may be 64 KiB, so a count of messages alone would let
/// one flow hold 64 MiB. Past it, as past [`QUEUE`], a datagram is dropped and a reader of
/// a stream waits. A direction holding nothing always takes the message its reader holds.
pub(crate) const QUEUED_PER_DIRECTION: usize = 4 << 20;
/// Bytes waiting in every direction of every flow together, under the same rule: a relay
/// holds at most this, plus one message per direction that held nothing.
pub(crate) const QUEUED_IN_ALL: usize = 64 << 20;
/// Bytes waiting in all directions now (see [`QUEUED_IN_ALL`]).
static QUEUED_NOW: AtomicUsize = AtomicUsize::new(0);
/// A message held back for reordering goes out alone after this long without a successor.
const HOLD: Duration = Duration::from_millis(50);

/// What a direction saw, counted as it happens and read for the flow's summary line.
#[derive(Debug, Default)]
pub(crate) struct DirStats {
    pub messages_in: AtomicU64,
    pub bytes_in: AtomicU64,
    pub messages_out: AtomicU64,
    pub bytes_out: AtomicU64,
    pub dropped: AtomicU64,
    pub duplicated: AtomicU64,
    pub reordered: AtomicU64,
    /// Messages held back for reordering that went out alone, no next message having come
    /// within [`HOLD`] (a request-reply flow's every one): delayed, not reordered.
    pub alone: AtomicU64,
    pub delayed: AtomicU64,
    /// Messages, and their bytes, still held (queued, waiting out --delay or --rate, held
    /// back for reordering) when the flow closed: never sent.
    pub unsent: AtomicU64,
    pub unsent_bytes: AtomicU64,
    /// Datagrams that found the queue full (real loss inside the relay, not simulated).
    pub queue_full: AtomicU64,
    /// Datagrams the kernel dropped at the relay's socket this direction reads from, its
    /// receive buffer full, before the relay read them (real loss on this host): counted for
    /// the socket to TO, whose replies only its flow reads.
    pub kernel_dropped: AtomicU64,
    /// Messages the kernel refused to send (e.g. ECONNREFUSED from a datagram server).
    pub send_errors: AtomicU64,
    /// Replies not sent to a datagram sender off this host: they would have made what it got
    /// more than what it sent, and its source address is unproven (it may be forged).
    pub over_credit: AtomicU64,
    /// Datagrams from another port of TO's address, TO on this host, that a socket of
    /// another user than TO's (or root) sent: left out, and the flow not moved to that port.
    pub others: AtomicU64,
}

impl DirStats {
    pub(crate) fn line(&self) -> String {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let alone = match get(&self.alone) {
            0 => String::new(),
            n => format!(
                ", {n} held up to {} ms and sent alone (no next message)",
                HOLD.as_millis()
            ),
        };
        let mut line = format!(
            "{} messages {} bytes in, {} messages {} bytes out; simulated: {} dropped, {} \
             duplicated, {} reordered{alone}, {} delayed",
            get(&self.messages_in),
            get(&self.bytes_in),
            get(&self.messages_out),
            get(&self.bytes_out),
            get(&self.dropped),
            get(&self.duplicated),
            get(&self.reordered),
            get(&self.delayed),
        );
        if get(&self.unsent) > 0 {
            line += &format!(
                "; {}",
                unsent(get(&self.unsent), get(&self.unsent_bytes), "flow")
            );
        }
        if get(&self.queue_full) > 0 {
            line += &format!("; {} lost to a full queue", get(&self.queue_full));
        }
        if get(&self.kernel_dropped) > 0 {
            line += &format!(
                "; {} dropped by the kernel before the relay read them (its receive buffer was \
                 full)",
                get(&self.kernel_dropped)
            );
        }
        if get(&self.send_errors) > 0 {
            line += &format!("; {} send errors", get(&self.send_errors));
        }
        if get(&self.over_credit) > 0 {
            line += &format!(
                "; {} not sent: more than the sender sent",
                get(&self.over_credit)
            );
        }
        if get(&self.others) > 0 {
            line += &format!(
                "; {} left out: from another port of TO's address, not TO's user's or root's socket",
                get(&self.others)
            );
        }
        line
    }
}

/// Messages still held when their flow (or every flow, at the stop) closed, in the words of
/// the flow lines and the stop line.
pub(crate) fn unsent(messages: u64, bytes: u64, whose: &str) -> String {
    format!("{messages} messages {bytes} bytes still held when the {whose} closed: not sent")
}

/// Where a direction writes.
pub(crate) enum Sink {
    /// A connected socket (the client's connection, or the relay's socket to TO) and what
    /// a message is on it.
    Conn(Arc<Conn>, Carrier),
    /// A datagram sender on FROM, answered through a handle on the bound socket that all
    /// senders share.
    Peer(Box<PeerSink>),
}

/// A datagram sender on FROM as a direction's sink.
pub(crate) struct PeerSink {
    /// The handle on the bound socket that all senders share.
    pub sock: Arc<DatagramSocket>,
    pub to: PeerAddr,
    /// The sender's socket file, when at a path (see [`crate::transport::unix::reply_addr`]).
    pub held: Option<crate::transport::unix::ReplyPath>,
    /// Whether the sender's address needs no proof: this host's own, a Unix name, or in a
    /// network of --trust (the user's word for it). Any other source address may be forged,
    /// so what it is sent is held to what it sent, and the relay never multiplies a
    /// forger's datagrams toward a victim.
    pub proven: bool,
}

impl Sink {
    fn write(&self, message: &[u8], flow: &Flow) -> io::Result<()> {
        match self {
            Sink::Conn(conn, _) => {
                hexdump::dump_if(Way::Out, &conn.peer(), message);
                send_watched(conn, message, flow)
            }
            Sink::Peer(peer) => {
                let PeerSink { sock, to, held, .. } = &**peer;
                hexdump::dump_if(Way::Out, to, message);
                // The bound socket is non-blocking (its reader polls it): a full send queue
                // is waited out briefly rather than turned into loss.
                for _ in 0..1000 {
                    match sock.send_via(message, to, held.as_ref(), 0) {
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                            std::thread::sleep(Duration::from_millis(1))
                        }
                        other => return other,
                    }
                }
                Err(io::ErrorKind::WouldBlock.into())
            }
        }
    }

    /// What a message is where this sink writes.
    fn carrier(&self) -> Carrier {
        match self {
            Sink::Conn(_, carrier) => *carrier,
            Sink::Peer(_) => Carrier::Datagrams,
        }
    }

    /// The bytes and the datagrams this sink may still be sent, after `sent` (bytes,
    /// datagrams): what the sender sent minus that, for a datagram sender whose address is
    /// unproven; `None` when there is no such bound. Datagrams count as well as bytes: an
    /// empty datagram carries no payload but costs a packet on the wire.
    fn credit(&self, flow: &Flow, (bytes, datagrams): (u64, u64)) -> Option<(u64, u64)> {
        match self {
            Sink::Peer(peer) if !peer.proven => {
                let got = |c: &AtomicU64, used: u64| c.load(Ordering::Relaxed).saturating_sub(used);
                Some((
                    got(&flow.up.bytes_in, bytes),
                    got(&flow.up.messages_in, datagrams),
                ))
            }
            _ => None,
        }
    }

    /// The IP address a datagram sender's replies go to.
    fn ip(&self) -> Option<std::net::IpAddr> {
        match self {
            Sink::Peer(peer) => peer.to.0.as_socket().map(|a| a.ip().to_canonical()),
            Sink::Conn(..) => None,
        }
    }

    /// Whether a failed write ends the flow: on a connection yes, a datagram is one loss.
    fn fatal(&self) -> bool {
        self.carrier().reliable()
    }

    /// The end of this direction: a connection is half-closed (the peer reads end of file).
    fn finish(&self, flow: &Flow) {
        match self {
            Sink::Conn(conn, carrier) if carrier.reliable() => {
                let _ = conn.shutdown_write();
            }
            _ => flow.datagram_side_done(),
        }
    }
}

/// Sends all of `message`, each send(2) waiting at most [`TICK`] (SO_SNDTIMEO, set when the
/// direction starts): a peer that stops reading holds its writer until the flow closes or
/// --idle-timeout passes with not a byte taken, never for good. Bytes taken are the flow's
/// progress.
fn send_watched(conn: &Conn, mut message: &[u8], flow: &Flow) -> io::Result<()> {
    let mut blocked = Instant::now();
    while !message.is_empty() {
        match conn.send_some(message) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                message = &message[n..];
                blocked = Instant::now();
                flow.touch();
            }
            Err(e) if crate::transport::is_timeout(&e) => {
                if flow.closing() {
                    return Err(io::ErrorKind::BrokenPipe.into());
                }
                if flow.stalled(blocked.elapsed()) {
                    flow.close_idle(format_args!(
                        "{} took nothing for --idle-timeout (it does not read)",
                        conn.peer()
                    ));
                    return Err(e);
                }
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The bytes waiting in one direction, within [`QUEUED_PER_DIRECTION`] and, with every
/// other direction's, [`QUEUED_IN_ALL`].
#[derive(Default)]
struct Budget {
    held: Mutex<usize>,
    /// Signalled as bytes are given back, for a stream's reader waiting for room.
    room: Condvar,
    /// The writer has stopped: nothing will be taken from the queue again.
    stopped: AtomicBool,
}

impl Budget {
    /// `len` bytes more in this direction, or `None` when it or the relay holds its most
    /// already (a direction holding nothing always takes one message: it is read already).
    fn take(self: &Arc<Self>, len: usize) -> Option<Queued> {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        let in_all = QUEUED_NOW.fetch_add(len, Ordering::Relaxed) + len;
        if *held > 0 && (*held + len > QUEUED_PER_DIRECTION || in_all > QUEUED_IN_ALL) {
            QUEUED_NOW.fetch_sub(len, Ordering::Relaxed);
            return None;
        }
        *held += len;
        Some(Queued {
            bytes: len,
            budget: Arc::clone(self),
        })
    }

    /// Waits at most `limit` for bytes to be given back.
    fn wait(&self, limit: Duration) {
        let held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        let _ = self.room.wait_timeout(held, limit);
    }

    fn stop(&self) {
        self.stopped.store(true, Ordering::Relaxed);
        self.room.notify_all();
    }
}

/// A queued message's bytes, given back to its direction's budget when dropped: once the
/// writer is done with it, or the queue is dropped with it.
struct Queued {
    bytes: usize,
    budget: Arc<Budget>,
}

impl Drop for Queued {
    fn drop(&mut self) {
        let mut held = self.budget.held.lock().unwrap_or_else(|e| e.into_inner());
        *held -= self.bytes;
        QUEUED_NOW.fetch_sub(self.bytes, Ordering::Relaxed);
        self.budget.room.notify_all();
    }
}

enum Item {
    Message(Vec<u8>, Instant, Queued),
    End,
}

/// The sending end of a direction, held by its reader.
pub(crate) struct Link {
    tx: SyncSender<Item>,
    stats: Arc<DirStats>,
    budget: Arc<Budget>,
    writer: std::thread::JoinHandle<()>,
}

/// How a direction is built.
pub(crate) struct LinkSpec {
    /// Where messages go, framed as the sink's carrier says (a message socket into a stream).
    pub sink: Sink,
    pub cond: Conditions,
    pub rng: Rng,
    pub queue: usize,
    /// The socket to TO whose replies this direction carries: a udp one sends to the port
    /// of the first reply from another port once the client got it
    /// ([`Conn::follow_latest_reply`]).
    pub replies_of: Option<Arc<Conn>>,
    /// TO, when this direction writes to it (up): a datagram TO refusing one is said once a
    /// flow, and a unix-dgram one whose server restarted is connected to again.
    pub to: Option<Target>,
    /// The owner of the socket file at TO's path when the relay started (Route::to_owner).
    pub to_owner: Option<u32>,
}

impl Link {
    /// Starts the writer thread of a direction of `flow`.
    pub(crate) fn spawn(spec: LinkSpec, stats: Arc<DirStats>, flow: Arc<Flow>) -> io::Result<Link> {
        if let Sink::Conn(conn, _) = &spec.sink {
            conn.set_write_timeout(Some(TICK))?;
        }
        let (tx, rx) = mpsc::sync_channel(spec.queue);
        let writer_stats = Arc::clone(&stats);
        let budget = Arc::new(Budget::default());
        let writer_budget = Arc::clone(&budget);
        let writer = std::thread::Builder::new()
            .name("relay-writer".into())
            .spawn(move || {
                Writer::new(spec, writer_stats).run(rx, &flow);
                // What is still queued is given back as the queue is dropped, here.
                writer_budget.stop();
                flow.writer_done();
            })?;
        Ok(Link {
            tx,
            stats,
            budget,
            writer,
        })
    }

    /// Waits for the writer to deliver what was queued before [`Link::end`] and stop.
    pub(crate) fn join(self) {
        drop(self.tx);
        let _ = self.writer.join();
    }

    fn count_in(&self, len: usize) {
        self.stats.messages_in.fetch_add(1, Ordering::Relaxed);
        self.stats.bytes_in.fetch_add(len as u64, Ordering::Relaxed);
    }

    /// Queues a message, waiting for room, in messages and in bytes (streams:
    /// back-pressure). False once the writer has stopped.
    pub(crate) fn push(&self, message: Vec<u8>) -> bool {
        self.count_in(message.len());
        let queued = loop {
            if let Some(queued) = self.budget.take(message.len()) {
                break queued;
            }
            if self.budget.stopped.load(Ordering::Relaxed) {
                return false;
            }
            // Others' bytes given back do not signal this direction: looked at each tick.
            self.budget.wait(TICK);
        };
        let item = Item::Message(message, Instant::now(), queued);
        self.tx.send(item).is_ok()
    }

    /// Queues a message if there is room, in messages and in bytes, else counts it lost
    /// (datagrams), as a router's full queue drops a packet.
    pub(crate) fn try_push(&self, message: Vec<u8>) -> bool {
        self.count_in(message.len());
        let Some(queued) = self.budget.take(message.len()) else {
            self.stats.queue_full.fetch_add(1, Ordering::Relaxed);
            return !self.budget.stopped.load(Ordering::Relaxed);
        };
        match self
            .tx
            .try_send(Item::Message(message, Instant::now(), queued))
        {
            Ok(()) => true,
            Err(TrySendError::Full(_)) => {
                self.stats.queue_full.fetch_add(1, Ordering::Relaxed);
                true
            }
            Err(TrySendError::Disconnected(_)) => false,
        }
    }

    /// No more messages: the writer delivers what is queued, then finishes the sink. Waits
    /// for room in a full queue (the end comes after every message), so only a flow's own
    /// reader calls it; a closed flow is let go with [`Link::abandon`].
    pub(crate) fn end(&self) {
        let _ = self.tx.send(Item::End);
    }

    /// Lets the writer of a closed flow go without waiting: it drops what is queued at its
    /// next look at the flow (within a [`TICK`]), and the queue's end, dropped here, wakes
    /// it if it waits for a message. Never waits for room, as [`Link::end`] does in a full
    /// queue, so the loop that closes one sender's flow goes on serving the others at once.
    pub(crate) fn abandon(self) {
        drop(self.tx);
    }
}

struct Writer {
    sink: Sink,
    encode: Box<dyn MessageSend>,
    chaos: Chaos,
    bucket: Option<TokenBucket>,
    delays: bool,
    last_due: Instant,
    stats: Arc<DirStats>,
    failed: bool,
    frame: Vec<u8>,
    replies_of: Option<Arc<Conn>>,
    /// What chance had done when last copied to the stats ([`Writer::note_chaos`]).
    noted: Counts,
    /// Whether the sink is the flow's socket to TO.
    writes_to: bool,
    /// A unix-dgram TO's way back after its server restarted.
    redial: Option<Redial>,
}

impl Writer {
    fn new(spec: LinkSpec, stats: Arc<DirStats>) -> Writer {
        Writer {
            encode: spec.sink.carrier().sender(),
            sink: spec.sink,
            chaos: Chaos::new(spec.cond, spec.rng),
            bucket: spec.cond.rate.map(TokenBucket::new),
            delays: !spec.cond.delay.is_zero() || !spec.cond.jitter.is_zero(),
            last_due: Instant::now(),
            stats,
            failed: false,
            frame: Vec::new(),
            replies_of: spec.replies_of,
            noted: Counts::default(),
            writes_to: spec.to.is_some(),
            redial: spec
                .to
                .as_ref()
                .and_then(|to| Redial::to(to, spec.to_owner)),
        }
    }

    fn run(mut self, rx: mpsc::Receiver<Item>, flow: &Flow) {
        let mut out = Vec::new();
        loop {
            // A closed flow is sent nothing more: what is queued is dropped (its bytes given
            // back) as the thread ends, not delivered to sockets already shut down.
            if flow.closing() {
                return self.count_unsent(&rx);
            }
            let item = if self.chaos.holding() {
                match rx.recv_timeout(HOLD) {
                    Ok(item) => item,
                    Err(RecvTimeoutError::Timeout) => {
                        self.send_held(flow);
                        continue;
                    }
                    Err(RecvTimeoutError::Disconnected) => Item::End,
                }
            } else {
                rx.recv().unwrap_or(Item::End)
            };
            match item {
                // Its bytes count as queued until delivered: --delay holds them here.
                Item::Message(message, arrived, _queued) => {
                    let len = message.len();
                    self.chaos.pass(message, &mut out);
                    self.note_chaos(len);
                    for message in out.drain(..) {
                        self.deliver(message, arrived, flow);
                    }
                }
                Item::End => {
                    self.send_held(flow);
                    if !self.failed {
                        self.sink.finish(flow);
                    }
                    return;
                }
            }
        }
    }

    /// Sends the message held back for reordering, if any, alone: no next message came.
    fn send_held(&mut self, flow: &Flow) {
        if let Some(held) = self.chaos.release() {
            self.note_chaos(held.len());
            self.deliver(held, Instant::now(), flow);
        }
    }

    /// Counts what a closed flow's direction still holds, never to be sent: its queue and
    /// the message held back for reordering.
    fn count_unsent(&mut self, rx: &mpsc::Receiver<Item>) {
        let queued = rx.try_iter().filter_map(|item| match item {
            Item::Message(message, ..) => Some(message.len()),
            Item::End => None,
        });
        let held = self.chaos.abandon().map(|message| message.len());
        for len in queued.chain(held).collect::<Vec<_>>() {
            self.unsent(len);
        }
    }

    /// Counts a message not sent because its flow closed first.
    fn unsent(&self, len: usize) {
        self.stats.unsent.fetch_add(1, Ordering::Relaxed);
        (self.stats.unsent_bytes).fetch_add(len as u64, Ordering::Relaxed);
    }

    /// Copies chance's counts into the shared stats, logging what it just did to a
    /// `len`-byte message.
    fn note_chaos(&mut self, len: usize) {
        let (now, was) = (self.chaos.counts, self.noted);
        self.noted = now;
        for (what, now, was) in [
            ("dropped", now.dropped, was.dropped),
            ("duplicated", now.duplicated, was.duplicated),
            ("held back (reordering)", now.held, was.held),
            ("sent alone (held, no next message)", now.alone, was.alone),
        ] {
            if now != was {
                debug!("simulated: {what} a {len}-byte message");
            }
        }
        let s = &self.stats;
        for (shared, now) in [
            (&s.dropped, now.dropped),
            (&s.duplicated, now.duplicated),
            (&s.reordered, now.reordered),
            (&s.alone, now.alone),
        ] {
            shared.store(now, Ordering::Relaxed);
        }
    }

    /// Writes one message once its delay and the rate allow.
    fn deliver(&mut self, message: Vec<u8>, arrived: Instant, flow: &Flow) {
        // A flow that failed (closed by its sink or its close) sends nothing more.
        if self.failed {
            return self.unsent(message.len());
        }
        if self.delays {
            // Never before an earlier message: jitter varies delays, it does not reorder.
            let due = (arrived + self.chaos.delay()).max(self.last_due);
            self.last_due = due;
            if !sleep_until(due, flow) {
                self.failed = true;
                return self.unsent(message.len());
            }
            self.stats.delayed.fetch_add(1, Ordering::Relaxed);
        }
        self.frame.clear();
        self.encode.encode(&message, &mut self.frame);
        if !self.within_credit(self.frame.len(), flow) {
            return;
        }
        if let Some(bucket) = &mut self.bucket {
            let wait = bucket.take(self.frame.len(), Instant::now());
            if !sleep_until(Instant::now() + wait, flow) {
                self.failed = true;
                return self.unsent(message.len());
            }
        }
        self.write_frame(flow);
    }

    /// Writes the frame encoded last to the sink.
    fn write_frame(&mut self, flow: &Flow) {
        // Counted before the write: once written, the peer may answer (and the relay be
        // stopped and print its lines) before this thread runs again.
        let len = self.frame.len() as u64;
        self.stats.messages_out.fetch_add(1, Ordering::Relaxed);
        self.stats.bytes_out.fetch_add(len, Ordering::Relaxed);
        // Before the write too: the client's answer may reach TO before this thread runs again.
        if let Some(to) = &self.replies_of {
            to.follow_latest_reply();
        }
        let mut written = self.sink.write(&self.frame, flow);
        if let Err(e) = &written
            && Redial::gone(e)
            && let (Some(redial), Sink::Conn(conn, _)) = (&mut self.redial, &self.sink)
        {
            written = match redial.again(conn) {
                Again::Connected => self.sink.write(&self.frame, flow),
                Again::TooSoon => written,
                Again::Failed(e) => return self.lost_to(&e, flow),
            };
        }
        match written {
            Ok(()) => trace!("relayed {len} bytes"),
            Err(e) => self.send_failed(&e, flow),
        }
    }

    /// Takes back the count of the frame encoded last, not sent after all: a send error.
    /// Returns its length.
    fn uncount(&self) -> u64 {
        let len = self.frame.len() as u64;
        self.stats.messages_out.fetch_sub(1, Ordering::Relaxed);
        self.stats.bytes_out.fetch_sub(len, Ordering::Relaxed);
        self.stats.send_errors.fetch_add(1, Ordering::Relaxed);
        len
    }

    /// Says why a message was not sent (`e`); a connection, or a message too long for any
    /// datagram, ends the flow.
    fn send_failed(&mut self, e: &io::Error, flow: &Flow) {
        let len = self.uncount();
        if self.sink.fatal() {
            debug!("flow {}: send: {e}; closing the flow", flow.id);
            self.failed = true;
            flow.close();
        } else if e.raw_os_error() == Some(libc::EMSGSIZE) {
            // Every later message could be lost the same way, unseen: end the flow.
            warn!(
                "{}: a {len}-byte message does not fit in one datagram ({e}); closing the flow",
                flow.name
            );
            self.failed = true;
            flow.close();
        } else if self.writes_to && e.kind() == io::ErrorKind::ConnectionRefused {
            flow.refused(e);
        } else {
            debug!("flow {}: send: {e}", flow.id);
        }
    }

    /// Ends the flow, whose unix-dgram TO is gone and takes no connect again (`e`): the
    /// sender's next datagram opens a new flow, which finds TO as it is then.
    fn lost_to(&mut self, e: &io::Error, flow: &Flow) {
        self.uncount();
        self.failed = true;
        flow.close();
        static LOG: crate::logging::Throttle = crate::logging::Throttle::new();
        if let Some(more) = LOG.allow() {
            warn!(
                "{}: TO's server went away and connecting to TO again failed, so the flow is \
                 closed (the sender's next datagram opens a new one): {:#}{more}",
                flow.name,
                crate::error::socket_error(crate::error::Call::Connect, flow.to(), e)
            );
        }
    }

    /// Whether a `len`-byte message may go to the sink: within what an unproven datagram
    /// sender has sent (see [`PeerSink::proven`]). A message past it is counted and left
    /// out; the first one of a flow is logged.
    fn within_credit(&self, len: usize, flow: &Flow) -> bool {
        let sent = (
            self.stats.bytes_out.load(Ordering::Relaxed),
            self.stats.messages_out.load(Ordering::Relaxed),
        );
        let Some((bytes, datagrams)) = self.sink.credit(flow, sent) else {
            return true;
        };
        if len as u64 <= bytes && datagrams >= 1 {
            return true;
        }
        if self.stats.over_credit.fetch_add(1, Ordering::Relaxed) == 0 {
            static LOG: crate::logging::Throttle = crate::logging::Throttle::new();
            if let Some(more) = LOG.allow() {
                warn!(
                    "{}: a {len}-byte reply not sent, nor any that would make what the sender \
                     got more than the {} in {} it sent: its address is not this \
                     host's and may be forged, and the relay never multiplies what a source \
                     sends; if no one can forge addresses on its network, --trust a block \
                     holding {} to send it every reply{more}",
                    flow.name,
                    units::count(flow.up.bytes_in.load(Ordering::Relaxed), "byte"),
                    units::count(flow.up.messages_in.load(Ordering::Relaxed), "datagram"),
                    self.sink
                        .ip()
                        .map_or("its address".into(), |ip| ip.to_string()),
                );
            }
        }
        false
    }
}

/// Waits until `due` in slices of at most [`TICK`], looking up between them: a closed
/// flow's writer stops waiting out a long --delay or a slow --rate, so its thread and its
/// queue end with the flow. False when the flow closed meanwhile.
fn sleep_until(due: Instant, flow: &Flow) -> bool {
    loop {
        if flow.closing() {
            return false;
        }
        let now = Instant::now();
        if due <= now {
            return true;
        }
        std::thread::sleep((due - now).min(TICK));
    }
}
