//! The echo service, written once for every transport and every server model: read a
//! message, apply the [`Transform`], send the result back to whoever sent it.
//!
//! [`EchoConn`] is the whole per-connection echo loop as a state machine. On a blocking
//! socket (threads, fork) one [`EchoConn::pump`] call runs until the peer closes; on a
//! non-blocking one (event, iterative) it runs until the socket would block and says which
//! readiness it waits for. Replies the peer has not read yet are buffered up to a bound; past
//! it the connection is not read from until the peer catches up.

use crate::hexdump::{self, Way};
use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::choice::{Choice, from_str_by_name};
use crate::transport::framing::{FrameError, Framing};
use crate::transport::message::{MessageRecv, MessageSend, Next, Receiver, RecvError};
use crate::transport::{Conn, MAX_MESSAGE};

use super::InPlace;
use super::stats::{Stats, Tally};

/// What the server does to each message.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum Transform {
    /// ASCII letters made upper case; every other byte (UTF-8, binary) unchanged.
    #[default]
    Upper,
    /// The bytes unchanged: the plain echo service of RFC 862.
    Echo,
}

impl Choice for Transform {
    const ALL: &'static [Transform] = &[Transform::Upper, Transform::Echo];

    fn name(self) -> &'static str {
        match self {
            Transform::Upper => "upper",
            Transform::Echo => "echo",
        }
    }

    fn help(self) -> &'static str {
        match self {
            Transform::Upper => {
                "ASCII letters made upper case; every other byte (UTF-8, binary) unchanged"
            }
            Transform::Echo => "The bytes unchanged: the plain echo service of RFC 862",
        }
    }
}

from_str_by_name!(Transform);

impl Transform {
    /// Transforms in place. Byte by byte, so a message split across reads comes out the same.
    pub(crate) fn apply(self, buf: &mut [u8]) {
        if self == Transform::Upper {
            upper_case(buf);
        }
    }
}

/// ASCII letters made upper case, 32 bytes an instruction where the CPU has AVX2 (chosen at
/// run time): at gigabytes a second the loop the default x86-64 target compiles (16 bytes
/// an instruction) costs a core a fifth of its time.
fn upper_case(buf: &mut [u8]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2, as just checked.
        unsafe { upper_case_avx2(buf) };
        return;
    }
    buf.make_ascii_uppercase();
}

/// The same loop, compiled for AVX2: the compiler vectorizes it with 256-bit registers.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn upper_case_avx2(buf: &mut [u8]) {
    buf.make_ascii_uppercase();
}

/// Messages one call to [`EchoConn::pump`] may read before it yields to other connections.
const READS_PER_PUMP: usize = 16;

/// The scratch buffer an event loop shares among its connections: large reads mean fewer
/// system calls per byte on a busy stream. (Message sockets still read at most
/// [`MAX_MESSAGE`] at a time, so truncation means the same in every model.)
pub(crate) const SHARED_BUFFER: usize = 256 * 1024;

/// Encoded replies a framed connection keeps room for between reads; a larger burst's
/// buffer is given back.
const FRAMES_KEPT: usize = 64 * 1024;

/// The default bound on replies a connection has not read yet.
pub(crate) const DEFAULT_MAX_PENDING: usize = 1 << 20;

/// Connections' worth of --max-pending that replies waiting on slow readers may hold in the
/// whole process (64 MiB at the default): past it, the connections holding more than their
/// fair part of it are not read from until their peers read.
pub(crate) const PENDING_BUDGET_CONNS: usize = 64;

/// Replies a connection may always hold and still be read from, however far the process is
/// over its budget; the process-wide counts move in steps of this, so a connection whose
/// replies go out at once never touches them.
pub(crate) const PENDING_GRAIN: usize = 16 * 1024;

/// Bytes of replies waiting on slow readers, all connections of the process together.
static WAITING: AtomicUsize = AtomicUsize::new(0);

/// Connections holding a grain of replies or more: [`WAITING`] is shared among them.
static HOLDERS: AtomicUsize = AtomicUsize::new(0);

/// Whether replies waiting on slow readers hold more than the process's budget.
#[inline]
fn over_budget(budget: usize) -> bool {
    WAITING.load(Ordering::Relaxed) > budget
}

/// Each holder's fair part of what is left of twice the budget, never less than a grain:
/// the budget shared among the holders as the process reaches it, less as more waits, so
/// that what waits stays under twice the budget (a grain a connection aside) however the
/// holders came.
#[inline]
fn fair_share(budget: usize) -> usize {
    let left = budget
        .saturating_mul(2)
        .saturating_sub(WAITING.load(Ordering::Relaxed));
    (left / HOLDERS.load(Ordering::Relaxed).max(1)).max(PENDING_GRAIN)
}

/// One connection's replies waiting on its peer, as counted against the process's budget
/// for them ([`PENDING_BUDGET_CONNS`] times --max-pending).
///
/// Over budget, only the connections holding more than their fair share wait for their
/// peers: a client that reads is still served beside many that never do. What the process
/// holds stays bounded: a connection is read from over budget only while it holds at most
/// its share, and a stream's read then takes at most what is left of it or a grain
/// ([`PendingShare::stream_read`]), so it ends within a grain past its share (a seqpacket
/// connection: one message). When the holders filled up together, as a flood of clients
/// that never read does, that is about the budget plus a grain per holder; however they
/// came, the shares shrink to a grain as what waits nears twice the budget, so it stays
/// under twice the budget plus a grain and one read per connection.
#[derive(Debug)]
pub(crate) struct PendingShare {
    max_pending: usize,
    budget: usize,
    /// This connection's part of [`WAITING`] (0: not one of the [`HOLDERS`]).
    counted: usize,
}

impl PendingShare {
    pub(crate) fn new(max_pending: usize) -> PendingShare {
        PendingShare {
            max_pending,
            budget: max_pending.saturating_mul(PENDING_BUDGET_CONNS),
            counted: 0,
        }
    }

    /// Records that the connection holds `now` bytes of replies its peer has not taken.
    #[inline]
    pub(crate) fn hold(&mut self, now: usize) {
        let target = if now < PENDING_GRAIN { 0 } else { now };
        if target == self.counted || (target > 0 && target.abs_diff(self.counted) < PENDING_GRAIN) {
            return;
        }
        if target > self.counted {
            WAITING.fetch_add(target - self.counted, Ordering::Relaxed);
        } else {
            WAITING.fetch_sub(self.counted - target, Ordering::Relaxed);
        }
        match (self.counted, target) {
            (0, _) => HOLDERS.fetch_add(1, Ordering::Relaxed),
            (_, 0) => HOLDERS.fetch_sub(1, Ordering::Relaxed),
            _ => 0,
        };
        self.counted = target;
    }

    /// Whether a connection holding `now` bytes of replies waits for its peer to read
    /// before it is read from again: past --max-pending, or past its fair share while the
    /// process is over its budget (the others, holding less, are still served).
    #[inline]
    pub(crate) fn throttled(&self, now: usize) -> bool {
        now >= self.max_pending
            || (now > PENDING_GRAIN && over_budget(self.budget) && now > fair_share(self.budget))
    }

    /// Whether reads are kept small: the process is over its budget, so each connection
    /// still read from adds at most a little to what waits.
    #[inline]
    pub(crate) fn reads_small(&self) -> bool {
        over_budget(self.budget)
    }

    /// The most a stream's read may take while reads are kept small, holding `now` bytes:
    /// what is left of its fair share, at least a grain and at most one message, so a
    /// connection read from over budget ends within a grain past its share.
    #[inline]
    pub(crate) fn stream_read(&self, now: usize) -> usize {
        fair_share(self.budget)
            .saturating_sub(now)
            .clamp(PENDING_GRAIN, MAX_MESSAGE)
    }
}

impl Drop for PendingShare {
    fn drop(&mut self) {
        if self.counted > 0 {
            WAITING.fetch_sub(self.counted, Ordering::Relaxed);
            HOLDERS.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// How a connection ended, for its log line.
#[derive(Debug)]
pub(crate) enum ConnEnd {
    /// The peer closed (a read of 0 bytes) and every reply was sent.
    PeerClosed,
    /// A read of 0 bytes where that is an empty message or the peer's close alike (Unix
    /// seqpacket), every reply sent: the log says what was seen, not which of the two.
    ZeroRead,
    /// A seqpacket message larger than the buffer; the connection is closed rather than
    /// answering with a cut message.
    Truncated(usize),
    /// A frame over the limit, or the peer closed in the middle of one.
    BadFrame(FrameError),
    /// Nothing moved for the idle timeout.
    Idle,
    /// The server is stopping.
    Stopped,
    /// A socket error, such as a reset by the peer.
    Failed(io::Error),
}

impl fmt::Display for ConnEnd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnEnd::PeerClosed => f.write_str("closed by peer"),
            ConnEnd::ZeroRead => {
                f.write_str("closed: a 0-byte read (an empty message or the peer's close)")
            }
            ConnEnd::Truncated(len) => write!(
                f,
                "closed: a {len}-byte message is larger than the {MAX_MESSAGE}-byte buffer"
            ),
            ConnEnd::BadFrame(e) => write!(f, "closed: {e}{}", e.max_frame_hint()),
            ConnEnd::Idle => f.write_str("closed: idle timeout"),
            ConnEnd::Stopped => f.write_str("closed: server stopping"),
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

/// What a connection waits for after a [`EchoConn::pump`].
#[derive(Debug)]
pub(crate) enum Step {
    /// The socket would block: wait until it is readable (`read`) or writable (`write`).
    Wait { read: bool, write: bool },
    /// More may be ready; pump again after serving others.
    Yield { write: bool },
    /// The connection is over.
    Done(ConnEnd),
}

/// One connection of the echo service: the socket, replies not yet sent, and its tally.
pub(crate) struct EchoConn {
    pub conn: Conn,
    pub tally: Tally,
    /// The messages of this connection, as its carrier cuts them (frames when a framing is on
    /// a stream).
    messages: Receiver,
    sender: Box<dyn MessageSend>,
    outbox: Outbox,
    read_closed: bool,
    /// The peer closed in the middle of a frame: said once the replies before it are sent.
    cut_short: Option<FrameError>,
    /// Whether replies are frames: those one read completed go out together, from here.
    framed: bool,
    frames_out: Vec<u8>,
    /// On a non-blocking plain stream in a level-triggered event loop: a read shorter than
    /// the buffer means the socket is empty for now, so wait instead of trying a recv that
    /// can only say EAGAIN (as tokio does). One system call less per message.
    pub short_read_waits: bool,
    /// Messages counted on the tally alone, and into the totals at the end
    /// ([`super::Session::count_at_end`]).
    pub counts_at_end: bool,
}

/// Replies the peer has not taken yet, bounded.
struct Outbox {
    /// Replies not yet sent, in order; a chunk is one read (one message on seqpacket).
    pending: VecDeque<Vec<u8>>,
    /// Bytes of the front chunk already sent (streams can send part of a chunk).
    sent: usize,
    pending_bytes: usize,
    share: PendingShare,
    /// Whether the connection is a byte stream (any read size keeps its bytes whole).
    stream: bool,
}

impl EchoConn {
    /// A connection with nothing pending. `framing` applies to streams only: seqpacket keeps
    /// message boundaries itself.
    pub(crate) fn new(
        conn: Conn,
        max_pending: usize,
        framing: Framing,
        max_frame: usize,
    ) -> EchoConn {
        let carrier = conn.carrier(framing);
        let framed = carrier.framing() != Framing::None;
        let stream = conn.kind() == crate::endpoint::SocketKind::Stream;
        EchoConn {
            messages: carrier.receiver(max_frame),
            sender: carrier.sender(),
            short_read_waits: false,
            counts_at_end: false,
            conn,
            tally: Tally {
                framed,
                ..Tally::default()
            },
            outbox: Outbox {
                pending: VecDeque::new(),
                sent: 0,
                pending_bytes: 0,
                share: PendingShare::new(max_pending),
                stream,
            },
            read_closed: false,
            cut_short: None,
            framed,
            frames_out: Vec::new(),
        }
    }

    /// Reads, transforms and replies until the socket would block, the peer closes, or
    /// [`READS_PER_PUMP`] messages were read. `buf` is scratch space of at least
    /// [`MAX_MESSAGE`] bytes, shared by all connections of a thread.
    pub(crate) fn pump(&mut self, buf: &mut [u8], transform: Transform, stats: &Stats) -> Step {
        // A frame past its deadline ends the connection even when it is not read from (its
        // peer does not read its replies). A TLS record's time restarts when the peer
        // takes a reply, so its deadline is checked at the read after the replies go.
        if let Some(e) = self.messages.expired() {
            return Step::Done(ConnEnd::BadFrame(e));
        }
        let step = self.pump_messages(buf, transform, stats);
        self.tally.reads = self.messages.reads() as u64;
        step
    }

    fn pump_messages(&mut self, buf: &mut [u8], transform: Transform, stats: &Stats) -> Step {
        // The totals a message counts into as it is served: none while they wait for the end.
        let totals = (!self.counts_at_end).then_some(stats);
        for _ in 0..READS_PER_PUMP {
            match self.outbox.flush(&self.conn) {
                Ok(true) => {}
                Ok(false) if self.outbox.throttled() || self.read_closed => {
                    // Throttled: a peer that does not read its replies is not read from.
                    return Step::Wait {
                        read: false,
                        write: true,
                    };
                }
                Ok(false) => {}
                Err(e) => return Step::Done(ConnEnd::Failed(e)),
            }
            if self.read_closed {
                return Step::Done(match self.cut_short.take() {
                    Some(e) => ConnEnd::BadFrame(e),
                    None => self.closed(),
                });
            }
            let msg = match self.messages.recv(&self.conn, self.outbox.room(buf)) {
                Ok(Next::Message(msg)) => msg,
                Ok(Next::Closed) => {
                    self.read_closed = true;
                    continue;
                }
                Err(RecvError::Frame(e @ FrameError::Incomplete { .. })) => {
                    self.cut_short = Some(e);
                    self.read_closed = true;
                    continue;
                }
                Err(RecvError::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => {
                    return self.wait_readable();
                }
                Ok(Next::Truncated(len)) => return Step::Done(ConnEnd::Truncated(len)),
                Err(e) => return Step::Done(end_of(e)),
            };
            hexdump::dump_if(Way::In, &self.conn.peer(), msg);
            transform.apply(msg);
            hexdump::dump_if(Way::Out, &self.conn.peer(), msg);
            let replied = if self.framed {
                self.frames_out.clear();
                encode_frame(
                    &*self.sender,
                    msg,
                    &mut self.frames_out,
                    &mut self.tally,
                    totals,
                );
                if let Err(e) = self.more_frames(transform, stats) {
                    // The frames before the bad one were counted: their replies go out first,
                    // then the connection ends with the bad frame's reason.
                    self.cut_short = Some(e);
                    self.read_closed = true;
                }
                let sent = self.outbox.reply(&self.conn, &self.frames_out);
                if self.frames_out.capacity() > FRAMES_KEPT {
                    // What the socket did not take was queued as its own copy.
                    self.frames_out = Vec::new();
                }
                sent
            } else {
                count(totals, &mut self.tally, msg.len());
                self.outbox.reply(&self.conn, msg)
            };
            if let Err(e) = replied {
                return Step::Done(ConnEnd::Failed(e));
            }
            if self.short_read_waits && self.messages.drained() && !self.read_closed {
                return self.wait_readable();
            }
        }
        Step::Yield {
            write: self.outbox.pending_bytes > 0,
        }
    }

    /// How a connection whose read returned 0 bytes ended, as far as the socket tells.
    fn closed(&self) -> ConnEnd {
        closed_end(&self.conn)
    }

    fn wait_readable(&self) -> Step {
        Step::Wait {
            read: true,
            write: self.outbox.pending_bytes > 0,
        }
    }

    /// Transforms and encodes the other frames the last read completed, after the first.
    fn more_frames(&mut self, transform: Transform, stats: &Stats) -> Result<(), FrameError> {
        let totals = (!self.counts_at_end).then_some(stats);
        while let Some(frame) = self.messages.buffered()? {
            hexdump::dump_if(Way::In, &self.conn.peer(), frame);
            transform.apply(frame);
            hexdump::dump_if(Way::Out, &self.conn.peer(), frame);
            encode_frame(
                &*self.sender,
                frame,
                &mut self.frames_out,
                &mut self.tally,
                totals,
            );
        }
        Ok(())
    }
}

impl EchoConn {
    /// The same echo for a completion model: `data` is what one receive completed with
    /// (empty: the peer closed), cut into messages by this connection's carrier, transformed
    /// in place and appended to `out` as the replies go on the wire. `None` while the
    /// connection goes on; else how it ended, the replies before the end already in `out`.
    pub(crate) fn take(
        &mut self,
        data: &mut [u8],
        transform: Transform,
        stats: &Stats,
        out: &mut Vec<u8>,
    ) -> Option<ConnEnd> {
        let totals = (!self.counts_at_end).then_some(stats);
        let msg = match message(self.messages.handed(data)) {
            Ok(msg) => msg,
            // A 0-byte read: the peer's close, or an empty message where the two look alike.
            Err(Some(ConnEnd::PeerClosed)) => return Some(closed_end(&self.conn)),
            Err(end) => return end,
        };
        answer(&self.conn, transform, msg);
        encode_frame(&*self.sender, msg, out, &mut self.tally, totals);
        self.tally.reads = self.messages.reads() as u64;
        if self.framed {
            std::mem::swap(out, &mut self.frames_out);
            let more = self.more_frames(transform, stats);
            std::mem::swap(out, &mut self.frames_out);
            return more.err().map(ConnEnd::BadFrame);
        }
        None
    }
}

impl EchoConn {
    /// [`EchoConn::take`] sending from the receive's own buffer where the reply is the
    /// message as it came (a bare stream: one receive, one message, no frame header), so
    /// nothing is copied; other carriers' replies are appended to `out` as `take` does.
    pub(crate) fn take_in_place(
        &mut self,
        data: &mut [u8],
        transform: Transform,
        stats: &Stats,
        out: &mut Vec<u8>,
    ) -> InPlace {
        let Receiver::Bytes(bytes) = &mut self.messages else {
            return InPlace::Appended(self.take(data, transform, stats, out));
        };
        let totals = (!self.counts_at_end).then_some(stats);
        let msg = match message(bytes.handed(data)) {
            Ok(msg) => msg,
            Err(end) => return InPlace::Appended(end),
        };
        answer(&self.conn, transform, msg);
        let len = msg.len();
        count(totals, &mut self.tally, len);
        self.tally.reads = bytes.reads() as u64;
        InPlace::Reply(len)
    }
}

/// How a 0-byte read ends `conn`: its peer's close, or, where an empty message reads the
/// same (seqpacket), either.
fn closed_end(conn: &Conn) -> ConnEnd {
    match conn.zero_read_is_ambiguous() {
        true => ConnEnd::ZeroRead,
        false => ConnEnd::PeerClosed,
    }
}

/// The message a completion handed over, or, when there is none, how the connection ended
/// (`None`: it goes on).
#[inline(always)]
fn message(next: Result<Next<'_>, RecvError>) -> Result<&mut [u8], Option<ConnEnd>> {
    match next {
        Ok(Next::Message(msg)) => Ok(msg),
        Ok(Next::Closed) => Err(Some(ConnEnd::PeerClosed)),
        Ok(Next::Truncated(len)) => Err(Some(ConnEnd::Truncated(len))),
        Err(RecvError::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => Err(None),
        Err(e) => Err(Some(end_of(e))),
    }
}

/// Transforms a message into its reply where it lies, hex-dumped both ways when asked.
#[inline(always)]
fn answer(conn: &Conn, transform: Transform, msg: &mut [u8]) {
    hexdump::dump_if(Way::In, &conn.peer(), msg);
    transform.apply(msg);
    hexdump::dump_if(Way::Out, &conn.peer(), msg);
}

/// Appends `frame` to `out` as it goes on the wire, and counts it.
fn encode_frame(
    sender: &dyn MessageSend,
    frame: &[u8],
    out: &mut Vec<u8>,
    tally: &mut Tally,
    totals: Option<&Stats>,
) {
    let before = out.len();
    sender.encode(frame, out);
    count(totals, tally, out.len() - before);
}

/// Counts a message of `len` bytes and its reply of as many on the tally, and on the
/// totals when given.
fn count(totals: Option<&Stats>, tally: &mut Tally, len: usize) {
    match totals {
        Some(stats) => stats.message(tally, len, len),
        None => tally.message(len, len),
    }
}

/// How a connection ends on a receive that failed.
fn end_of(e: RecvError) -> ConnEnd {
    match e {
        RecvError::Io(e) => ConnEnd::Failed(e),
        RecvError::Frame(e) => ConnEnd::BadFrame(e),
        RecvError::Truncated(len) => ConnEnd::Truncated(len),
    }
}

impl Outbox {
    fn throttled(&self) -> bool {
        self.pending_bytes > 0 && self.share.throttled(self.pending_bytes)
    }

    /// The part of the scratch buffer a read may fill: while the process is over its budget
    /// for waiting replies, a read's worth of them is at most one message, and on a stream
    /// at most what is left of this connection's share (a grain at the least).
    #[inline]
    fn room<'b>(&self, buf: &'b mut [u8]) -> &'b mut [u8] {
        if !self.share.reads_small() {
            return buf;
        }
        let most = match self.stream {
            true => self.share.stream_read(self.pending_bytes),
            false => MAX_MESSAGE,
        };
        let len = buf.len().min(most);
        &mut buf[..len]
    }

    /// Sends a reply at once when nothing is queued before it; queues what the socket does
    /// not take.
    #[inline]
    fn reply(&mut self, conn: &Conn, data: &[u8]) -> io::Result<()> {
        let mut done = 0;
        if self.pending.is_empty() {
            done = match conn.send_some(data) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => 0,
                Err(e) => return Err(e),
            };
        }
        if done < data.len() {
            self.pending.push_back(data[done..].to_vec());
            self.pending_bytes += data.len() - done;
            self.share.hold(self.pending_bytes);
        }
        Ok(())
    }

    /// Sends queued replies; true when the queue is empty.
    fn flush(&mut self, conn: &Conn) -> io::Result<bool> {
        while let Some(front) = self.pending.front() {
            match conn.send_some(&front[self.sent..]) {
                Ok(n) => {
                    self.sent += n;
                    self.pending_bytes -= n;
                    self.share.hold(self.pending_bytes);
                    if self.sent == front.len() {
                        self.pending.pop_front();
                        self.sent = 0;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) => return Err(e),
            }
        }
        if self.pending.capacity() > 4 {
            // A burst is over: give its queue's memory back.
            self.pending = VecDeque::new();
        }
        Ok(true)
    }
}

/// The echo service: its settings, the same for every connection.
#[derive(Clone, Debug)]
pub(crate) struct Echo {
    pub proto: crate::endpoint::Proto,
    pub transform: Transform,
    pub stats: &'static Stats,
    /// On a blocking socket, SO_RCVTIMEO and SO_SNDTIMEO: a recv or send that waits this
    /// long ends the connection.
    pub idle_timeout: Option<std::time::Duration>,
    /// How long a frame (--framing line or length) may take from its first byte to its
    /// last; past it the connection is closed (`None`: no limit).
    pub frame_timeout: Option<std::time::Duration>,
    pub max_pending: usize,
    pub framing: Framing,
    pub max_frame: usize,
    pub datagram: super::DatagramRules,
    /// Each connection's closing line only with -v (a lab server's measuring connections,
    /// dozens per run, would bury its run lines).
    pub quiet_clients: bool,
}

/// One connection of the echo service, with what its pump needs.
pub(crate) struct EchoSession {
    echo: EchoConn,
    transform: Transform,
    stats: &'static Stats,
    proto: crate::endpoint::Proto,
    quiet: bool,
}

impl super::Service for Echo {
    type Session = EchoSession;
    type Requests = super::NoRequests;

    fn blocks(&self) -> bool {
        false
    }

    fn open(&self, conn: Conn, drive: super::Drive) -> EchoSession {
        if drive == super::Drive::Blocking
            && let Some(idle) = self.idle_timeout
            && let Err(e) = conn
                .set_read_timeout(Some(idle))
                .and_then(|_| conn.set_write_timeout(Some(idle)))
        {
            tracing::warn!("{}: cannot set the idle timeout: {e}", conn.peer());
        }
        let mut echo = EchoConn::new(conn, self.max_pending, self.framing, self.max_frame);
        // Not over TLS: its session holds what one socket read brought (more records, a
        // close_notify), so the socket may be empty while a read would still return.
        echo.short_read_waits = drive == super::Drive::Epoll && !echo.conn.is_tls();
        let blocking = drive == super::Drive::Blocking;
        if let Some(limit) = self.frame_timeout {
            echo.messages.limit_frames(limit, blocking);
        }
        // A TLS record under way is a frame begun, framed or not; with --frame-timeout off
        // the idle timeout bounds it, counted from its first byte.
        match (self.frame_timeout, self.idle_timeout) {
            (Some(limit), _) => echo.conn.limit_records(limit, blocking, "--frame-timeout"),
            (None, Some(idle)) => echo.conn.limit_records(idle, blocking, "--idle-timeout"),
            (None, None) => {}
        }
        EchoSession {
            echo,
            transform: self.transform,
            stats: self.stats,
            proto: self.proto,
            quiet: self.quiet_clients,
        }
    }

    fn datagrams(&self) -> super::Datagrams<super::NoRequests> {
        super::Datagrams::Answered(self.datagram.clone())
    }
}

impl super::Session for EchoSession {
    fn conn(&self) -> &Conn {
        &self.echo.conn
    }

    #[inline]
    fn pump(&mut self, buf: &mut [u8]) -> Step {
        self.echo.pump(buf, self.transform, self.stats)
    }

    #[inline]
    fn deadline(&self) -> Option<std::time::Instant> {
        // A TLS record has no deadline while its peer's replies wait past --max-pending:
        // the server does not read then, and its rest may wait in the socket (the idle
        // timeout bounds a peer that never reads, as over plain TCP).
        let record = match self.echo.outbox.throttled() {
            true => None,
            false => self.echo.conn.record_deadline(),
        };
        let (frame, record) = (self.echo.messages.deadline(), record);
        match (frame, record) {
            (Some(f), Some(r)) => Some(f.min(r)),
            (f, r) => f.or(r),
        }
    }

    fn received(&mut self, data: &mut [u8], out: &mut Vec<u8>) -> Option<ConnEnd> {
        self.echo.take(data, self.transform, self.stats, out)
    }

    fn received_in_place(&mut self, data: &mut [u8], out: &mut Vec<u8>) -> super::InPlace {
        self.echo
            .take_in_place(data, self.transform, self.stats, out)
    }

    fn count_at_end(&mut self) {
        self.echo.counts_at_end = true;
    }

    fn end(mut self, ended: &ConnEnd) {
        self.settle();
        let (peer, mut tally) = (self.echo.conn.peer(), self.echo.tally);
        if let ConnEnd::BadFrame(FrameError::Incomplete { have, need }) = ended {
            let what = if need.is_some() { "frame" } else { "line" };
            tally.unfinished = Some((*have as u64, what));
        }
        let tally = &tally;
        if let ConnEnd::BadFrame(FrameError::Budget { .. }) = ended {
            // The server refused a client for want of room: the operator should see it, but
            // a flood of clients causes the line at will, so at most a few a second.
            static LOG: crate::logging::Throttle = crate::logging::Throttle::new();
            if let Some(more) = LOG.allow() {
                let line = super::stats::client_line(self.proto, peer, tally, ended);
                tracing::warn!("{line}{more}");
            }
            return;
        }
        super::stats::log_client_as(self.quiet, self.proto, peer, tally, ended);
    }
}

impl EchoSession {
    /// Adds a tally kept apart to the server's totals, once.
    fn settle(&mut self) {
        if std::mem::take(&mut self.echo.counts_at_end) {
            self.stats.settle(&self.echo.tally);
        }
    }
}

impl Drop for EchoSession {
    /// A session dropped without its end (a panic while serving) still counts what it served.
    fn drop(&mut self) {
        self.settle();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reference: one byte at a time, as the ASCII table says (not through the
    /// standard library's loop, which the fast path is built on).
    #[allow(clippy::manual_is_ascii_check)]
    fn plain(buf: &mut [u8]) {
        for b in buf {
            if (b'a'..=b'z').contains(b) {
                *b -= 32;
            }
        }
    }

    /// Every byte value, at every offset a vector loop can start at, in lengths around
    /// the vector widths (the tail loop and the vector loop both run).
    #[test]
    fn upper_case_matches_the_byte_loop_for_every_byte_offset_and_length() {
        let data: Vec<u8> = (0..1200usize).map(|i| (i * 7 + i / 256) as u8).collect();
        for start in 0..64 {
            for len in [
                0, 1, 15, 16, 17, 31, 32, 33, 63, 64, 65, 127, 129, 255, 256, 257, 1000,
            ] {
                let mut fast = data.clone();
                let mut slow = data.clone();
                upper_case(&mut fast[start..start + len]);
                plain(&mut slow[start..start + len]);
                assert_eq!(fast, slow, "start {start}, length {len}");
            }
        }
        // Each of the 256 byte values in every lane of a vector.
        for shift in 0..64 {
            let mut fast: Vec<u8> = (0..512 + shift).map(|i| (i + shift) as u8).collect();
            let mut slow = fast.clone();
            upper_case(&mut fast[shift..]);
            plain(&mut slow[shift..]);
            assert_eq!(fast, slow, "shift {shift}");
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn the_avx2_loop_matches_the_byte_loop_where_the_cpu_has_avx2() {
        if !std::arch::is_x86_feature_detected!("avx2") {
            return;
        }
        for start in 0..40 {
            let mut fast: Vec<u8> = (0..1100usize).map(|i| (i * 13) as u8).collect();
            let mut slow = fast.clone();
            let end = fast.len() - start / 3;
            // SAFETY: the CPU has AVX2, as just checked.
            unsafe { upper_case_avx2(&mut fast[start..end]) };
            plain(&mut slow[start..end]);
            assert_eq!(fast, slow, "start {start}");
        }
    }

    #[test]
    fn echo_leaves_every_byte_as_it_is() {
        let mut buf: Vec<u8> = (0..=255).collect();
        Transform::Echo.apply(&mut buf);
        assert_eq!(buf, (0..=255).collect::<Vec<u8>>());
    }
}
