//! Messages over a connected socket, decided in this one place for every socket kind: a
//! stream has no boundaries (a message is what one read returned, unless a framing cuts the
//! bytes into frames), seqpacket keeps boundaries and reads 0 bytes only at the end, a
//! datagram keeps boundaries, may be empty, may be truncated (MSG_TRUNC) and may be lost.
//!
//! [`Carrier`] names the rule a connection follows; [`MessageRecv`] and [`MessageSend`]
//! are its two halves (two, because a relay or a large request reads on one thread while
//! another writes the same socket). The implementations here are [`Bytes`] (a stream as
//! it comes), [`Frames`] (a stream, or any reliable socket, cut by a framing), [`Packets`]
//! (seqpacket) and [`Datagrams`] (a connected datagram socket). The ones this seam is
//! meant to take next: a TLS stream over tcp or unix (its reads and writes pass through a
//! TLS session, both halves sharing it, before [`Frames`] or [`Bytes`] rules apply), and a
//! completion-based (io_uring) socket, whose receive completes into a buffer handed over
//! beforehand instead of a recv(2) that may say "would block".
//!
//! Everything works on a non-blocking socket: a receive that would block returns
//! `WouldBlock` and keeps what it had (a partial frame stays in the decoder), so an event
//! loop pumps a socket until EAGAIN and comes back.

use std::fmt;
use std::io;
use std::time::{Duration, Instant};

use tracing::debug;

use crate::endpoint::SocketKind;

use super::framing::{Decoder, FrameError, Framing};
use super::{Conn, MAX_MESSAGE, Received};

/// What a message is on one connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Carrier {
    /// A byte stream as it comes: a message is whatever one read returned.
    Bytes,
    /// Bytes cut into frames by a framing (on a stream; the file protocol frames seqpacket too).
    Frames(Framing),
    /// Seqpacket: one message per read, reliable, a read of 0 bytes is the end.
    Packets,
    /// A connected datagram socket: one message per read, which may be empty, cut short
    /// (MSG_TRUNC) or never come.
    Datagrams,
}

impl Carrier {
    /// The rule for a socket of `kind` with the framing a user asked for: a framing cuts
    /// streams only, since message sockets keep their own boundaries.
    pub(crate) fn of(kind: SocketKind, framing: Framing) -> Carrier {
        match kind {
            SocketKind::Stream if framing == Framing::None => Carrier::Bytes,
            SocketKind::Stream => Carrier::Frames(framing),
            SocketKind::SeqPacket => Carrier::Packets,
            SocketKind::Datagram => Carrier::Datagrams,
        }
    }

    /// Whether a message arrives as it was sent, or as bytes that may stick together.
    pub(crate) fn keeps_boundaries(self) -> bool {
        self != Carrier::Bytes
    }

    /// Whether the socket itself hands over each message whole in one read (seqpacket,
    /// datagrams), so that one message is at most what one read takes.
    pub(crate) fn whole_messages(self) -> bool {
        matches!(self, Carrier::Packets | Carrier::Datagrams)
    }

    /// Whether a message may never arrive: nobody resends a lost datagram.
    pub(crate) fn may_lose(self) -> bool {
        !self.reliable()
    }

    /// Whether every message arrives (once, in order) unless the connection fails: a failed
    /// send ends a reliable connection, and a datagram that does not come is lost.
    pub(crate) fn reliable(self) -> bool {
        self != Carrier::Datagrams
    }

    /// Whether an empty message reaches the peer as one: on a bare stream 0 bytes are
    /// nothing, and seqpacket reads an empty message as the end of the connection.
    pub(crate) fn carries_empty(self) -> bool {
        matches!(self, Carrier::Frames(_) | Carrier::Datagrams)
    }

    /// The framing messages are written in, [`Framing::None`] when the socket keeps
    /// boundaries itself or there are none.
    pub(crate) fn framing(self) -> Framing {
        match self {
            Carrier::Frames(framing) => framing,
            _ => Framing::None,
        }
    }

    /// What one unit of received data is called in a summary line (singular).
    pub(crate) fn unit(self) -> &'static str {
        match self {
            Carrier::Bytes => "read",
            Carrier::Frames(_) => "frame",
            Carrier::Packets | Carrier::Datagrams => "message",
        }
    }

    /// The receiving half; frames are bounded by `max_frame`.
    pub(crate) fn receiver(self, max_frame: usize) -> Receiver {
        match self {
            Carrier::Bytes => Receiver::Bytes(Bytes::default()),
            Carrier::Frames(framing) => Receiver::Frames(Box::new(Frames::new(framing, max_frame))),
            Carrier::Packets => Receiver::Packets(Packets::default()),
            Carrier::Datagrams => Receiver::Datagrams(Datagrams::default()),
        }
    }

    /// The sending half.
    pub(crate) fn sender(self) -> Box<dyn MessageSend> {
        match self {
            Carrier::Bytes => Box::new(Bytes::default()),
            Carrier::Frames(framing) => Box::new(Frames::new(framing, 0)),
            Carrier::Packets => Box::new(Packets::default()),
            Carrier::Datagrams => Box::new(Datagrams::default()),
        }
    }
}

/// What a receive gave.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Next<'a> {
    /// One message (on a bare stream, what one read returned), lent until the next receive.
    Message(&'a mut [u8]),
    /// The peer closed between messages.
    Closed,
    /// A message longer than the buffer, of this real length; its bytes are lost.
    Truncated(usize),
}

/// Why no message could be received.
#[derive(Debug)]
pub(crate) enum RecvError {
    /// The socket call failed (`WouldBlock` on a non-blocking socket: nothing complete yet).
    Io(io::Error),
    /// A frame over the limit, or the peer closed in the middle of one.
    Frame(FrameError),
    /// A message larger than the reader's buffer, of this length.
    Truncated(usize),
}

impl From<io::Error> for RecvError {
    fn from(e: io::Error) -> Self {
        RecvError::Io(e)
    }
}

impl From<FrameError> for RecvError {
    fn from(e: FrameError) -> Self {
        RecvError::Frame(e)
    }
}

impl fmt::Display for RecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecvError::Io(e) => write!(f, "{e}"),
            RecvError::Frame(e) => write!(f, "{e}"),
            RecvError::Truncated(n) => write!(
                f,
                "a {n}-byte message is larger than the {MAX_MESSAGE}-byte buffer"
            ),
        }
    }
}

impl std::error::Error for RecvError {}

/// The receiving half of a connection's messages.
pub(crate) trait MessageRecv: Send {
    /// The next message: one already read if there is one, else one recv(2) into `buf`
    /// (repeated on a framed stream until a frame is complete). Message sockets read at
    /// most [`MAX_MESSAGE`] bytes at a time, so truncation means the same everywhere.
    fn recv<'a>(&'a mut self, conn: &Conn, buf: &'a mut [u8]) -> Result<Next<'a>, RecvError>;

    /// A message already read and not yet returned, without a system call: the second
    /// frame of a read that held two.
    fn buffered(&mut self) -> Result<Option<&mut [u8]>, FrameError> {
        Ok(None)
    }

    /// recv(2) calls that returned data.
    fn reads(&self) -> usize;

    /// A completion model's receive: `data` is what one receive completed with (empty when
    /// the peer closed), cut as [`MessageRecv::recv`] would cut it; the further frames of it
    /// through [`MessageRecv::buffered`]. `WouldBlock` when no message is complete yet.
    fn handed<'a>(&'a mut self, data: &'a mut [u8]) -> Result<Next<'a>, RecvError>;

    /// Whether the last read emptied the socket as far as can be told: a stream read
    /// shorter than its buffer. Message sockets never tell.
    fn drained(&self) -> bool {
        false
    }

    /// Gives every frame `limit` to complete once its first byte came; past it a recv fails
    /// with [`FrameError::Unfinished`]. On a `blocking` socket each read while a frame is
    /// unfinished waits at most until the deadline. Messages that come whole (a bare
    /// stream's reads, seqpacket, datagrams) have nothing to finish.
    fn limit_frames(&mut self, _limit: Duration, _blocking: bool) {}

    /// When the frame under way must be complete, if one is under way and limited.
    fn deadline(&self) -> Option<Instant> {
        None
    }

    /// The error of a frame past its deadline, if one is: for a caller that will not read
    /// now (its peer's replies wait) and must still end the connection on time.
    fn expired(&self) -> Option<FrameError> {
        None
    }
}

/// The sending half of a connection's messages. Stateless, so a writer thread and a reader
/// thread each hold their own half of one socket.
pub(crate) trait MessageSend: Send + Sync {
    /// Appends `msg` as it goes on the wire (a frame header and all) to `out`.
    fn encode(&self, msg: &[u8], out: &mut Vec<u8>);

    /// Sends `msg` whole, waiting on a blocking socket until it is all taken.
    fn send(&self, conn: &Conn, msg: &[u8]) -> io::Result<()> {
        conn.send_all(msg)
    }
}

/// The receiving half of a connection's carrier, one variant per carrier, held in the
/// connection itself: a loop receiving message after message calls the carrier's own
/// receive, which inlines into the loop (a blocking server returns through fewer frames after
/// each wake-up).
#[derive(Debug)]
pub(crate) enum Receiver {
    Bytes(Bytes),
    /// Boxed: a framed stream's state is several times a bare one's, and every idle
    /// connection would hold the larger size.
    Frames(Box<Frames>),
    Packets(Packets),
    Datagrams(Datagrams),
}

/// `$body` with `$r` bound to the carrier's own receiver, whichever it is.
macro_rules! each {
    ($receiver:expr, $r:ident => $body:expr) => {
        match $receiver {
            Receiver::Bytes($r) => $body,
            Receiver::Frames($r) => $body,
            Receiver::Packets($r) => $body,
            Receiver::Datagrams($r) => $body,
        }
    };
}

impl MessageRecv for Receiver {
    #[inline(always)]
    fn recv<'a>(&'a mut self, conn: &Conn, buf: &'a mut [u8]) -> Result<Next<'a>, RecvError> {
        each!(self, r => r.recv(conn, buf))
    }

    fn buffered(&mut self) -> Result<Option<&mut [u8]>, FrameError> {
        each!(self, r => r.buffered())
    }

    fn reads(&self) -> usize {
        each!(self, r => r.reads())
    }

    fn handed<'a>(&'a mut self, data: &'a mut [u8]) -> Result<Next<'a>, RecvError> {
        each!(self, r => r.handed(data))
    }

    #[inline]
    fn drained(&self) -> bool {
        each!(self, r => r.drained())
    }

    fn limit_frames(&mut self, limit: Duration, blocking: bool) {
        each!(self, r => r.limit_frames(limit, blocking))
    }

    fn deadline(&self) -> Option<Instant> {
        each!(self, r => r.deadline())
    }

    fn expired(&self) -> Option<FrameError> {
        each!(self, r => r.expired())
    }
}

/// One read, interrupted calls retried; `-v` logs the size of every read (how a stream cuts
/// what was sent is the lesson).
#[inline(always)]
fn recv_once(conn: &Conn, buf: &mut [u8]) -> io::Result<Received> {
    loop {
        match conn.recv(buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Ok(Received::Data(n)) => {
                debug!("{}: read {n} bytes", conn.peer());
                crate::hexdump::log_received(&conn.peer(), &buf[..n]);
                return Ok(Received::Data(n));
            }
            other => return other,
        }
    }
}

/// A byte stream as it comes: a message is what one read returned.
#[derive(Debug, Default)]
pub(crate) struct Bytes {
    reads: usize,
    drained: bool,
}

impl MessageRecv for Bytes {
    #[inline(always)]
    fn recv<'a>(&'a mut self, conn: &Conn, buf: &'a mut [u8]) -> Result<Next<'a>, RecvError> {
        match recv_once(conn, buf)? {
            Received::Data(n) => {
                self.reads += 1;
                self.drained = n < buf.len();
                Ok(Next::Message(&mut buf[..n]))
            }
            Received::Closed | Received::Truncated(_) => Ok(Next::Closed),
        }
    }

    fn reads(&self) -> usize {
        self.reads
    }

    fn handed<'a>(&'a mut self, data: &'a mut [u8]) -> Result<Next<'a>, RecvError> {
        if data.is_empty() {
            return Ok(Next::Closed);
        }
        self.reads += 1;
        Ok(Next::Message(data))
    }

    fn drained(&self) -> bool {
        self.drained
    }
}

impl MessageSend for Bytes {
    fn encode(&self, msg: &[u8], out: &mut Vec<u8>) {
        out.extend_from_slice(msg);
    }
}

/// Bytes cut into frames: a [`Decoder`] between the reads and the messages.
#[derive(Debug)]
pub(crate) struct Frames {
    framing: Framing,
    decoder: Decoder,
    reads: usize,
    drained: bool,
    /// How long a started frame may take ([`MessageRecv::limit_frames`]).
    limit: Option<Duration>,
    blocking: bool,
    /// When the unfinished frame was first seen unfinished.
    started: Option<Instant>,
    /// When the bytes of the last read began to come, if before the read: over TLS, the
    /// first byte of the oldest record the read finished ([`Conn::plaintext_since`]).
    since: Option<Instant>,
    /// The socket's own receive timeout, while a shorter one waits for a frame's deadline.
    saved_timeout: Option<Option<Duration>>,
}

impl Frames {
    pub(crate) fn new(framing: Framing, max_frame: usize) -> Frames {
        Frames {
            framing,
            decoder: Decoder::new(framing, max_frame),
            reads: 0,
            drained: false,
            limit: None,
            blocking: false,
            started: None,
            since: None,
            saved_timeout: None,
        }
    }

    /// Before a read while a frame is unfinished: its deadline checked, and on a blocking
    /// socket the read made to wait no longer than the deadline.
    fn before_read(&mut self, conn: &Conn) -> Result<(), RecvError> {
        let Some(limit) = self.limit else {
            return Ok(());
        };
        if self.decoder.unfinished() == 0 {
            return Ok(());
        }
        let since = self.since;
        let started = *self
            .started
            .get_or_insert_with(|| since.unwrap_or_else(Instant::now));
        let left = limit.saturating_sub(started.elapsed());
        if left.is_zero() {
            return Err(self.unfinished().into());
        }
        if self.blocking {
            let own = match self.saved_timeout {
                Some(own) => own,
                None => *self.saved_timeout.insert(conn.socket().read_timeout()?),
            };
            conn.set_read_timeout(Some(own.map_or(left, |own| own.min(left))))?;
        }
        Ok(())
    }

    /// What is left after the whole frames is a frame under way: its deadline runs from
    /// now, or from when its bytes began to come (see limit_frames), though no read may
    /// follow soon (a loop that waits for the socket after a short read, or a completion
    /// that brought it behind a whole frame).
    fn begun(&mut self) {
        if self.limit.is_some() && self.decoder.unfinished() > 0 {
            let since = self.since;
            self.started
                .get_or_insert_with(|| since.unwrap_or_else(Instant::now));
        }
    }

    /// A frame came whole: the next one's deadline starts with its first byte.
    fn frame_done(&mut self, conn: &Conn) -> io::Result<()> {
        self.started = None;
        match self.saved_timeout.take() {
            Some(own) => conn.set_read_timeout(own),
            None => Ok(()),
        }
    }

    fn overdue(&self) -> bool {
        self.deadline().is_some_and(|d| d <= Instant::now())
    }

    fn unfinished(&self) -> FrameError {
        FrameError::Unfinished {
            have: self.decoder.unfinished(),
            after: self.limit.unwrap_or_default(),
        }
    }
}

impl MessageRecv for Frames {
    fn recv<'a>(&'a mut self, conn: &Conn, buf: &'a mut [u8]) -> Result<Next<'a>, RecvError> {
        loop {
            if let Some(range) = self.decoder.next_range()? {
                if self.started.is_some() {
                    self.frame_done(conn)?;
                }
                return Ok(Next::Message(self.decoder.frame(range)));
            }
            // No frame is lent out any more: the bytes already returned can go.
            self.decoder.reclaim();
            self.before_read(conn)?;
            let received = match recv_once(conn, buf) {
                // A blocking read that waited until the frame's deadline.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && self.overdue() => {
                    return Err(self.unfinished().into());
                }
                received => received?,
            };
            let n = match received {
                Received::Data(n) => n,
                Received::Closed | Received::Truncated(_) => {
                    self.decoder.finish()?;
                    return Ok(Next::Closed);
                }
            };
            self.reads += 1;
            self.drained = n < buf.len();
            self.since = conn.plaintext_since();
            self.decoder.feed(&buf[..n]);
        }
    }

    fn buffered(&mut self) -> Result<Option<&mut [u8]>, FrameError> {
        match self.decoder.next_range()? {
            Some(range) => Ok(Some(self.decoder.frame(range))),
            None => {
                // The frames of this read are served: their bytes (and a large frame's room)
                // go now, not at the next read, which an idle peer may never send.
                self.decoder.reclaim();
                self.begun();
                Ok(None)
            }
        }
    }

    fn reads(&self) -> usize {
        self.reads
    }

    fn handed<'a>(&'a mut self, data: &'a mut [u8]) -> Result<Next<'a>, RecvError> {
        if let Some(e) = self.expired() {
            return Err(e.into());
        }
        self.decoder.reclaim();
        if data.is_empty() {
            self.decoder.finish()?;
            return Ok(Next::Closed);
        }
        self.reads += 1;
        self.decoder.feed(data);
        match self.decoder.next_range()? {
            Some(range) => {
                self.started = None;
                Ok(Next::Message(self.decoder.frame(range)))
            }
            None => {
                self.begun();
                Err(RecvError::Io(io::ErrorKind::WouldBlock.into()))
            }
        }
    }

    fn drained(&self) -> bool {
        self.drained
    }

    fn limit_frames(&mut self, limit: Duration, blocking: bool) {
        self.limit = Some(limit);
        self.blocking = blocking;
    }

    fn deadline(&self) -> Option<Instant> {
        let (started, limit) = (self.started?, self.limit?);
        (self.decoder.unfinished() > 0).then_some(started + limit)
    }

    fn expired(&self) -> Option<FrameError> {
        self.overdue().then(|| self.unfinished())
    }
}

impl MessageSend for Frames {
    fn encode(&self, msg: &[u8], out: &mut Vec<u8>) {
        self.framing.encode(msg, out);
    }

    fn send(&self, conn: &Conn, msg: &[u8]) -> io::Result<()> {
        let mut wire = Vec::with_capacity(msg.len() + super::framing::LENGTH_HEADER);
        self.encode(msg, &mut wire);
        conn.send_all(&wire)
    }
}

/// Seqpacket: one message per read, a read of 0 bytes is the end.
#[derive(Debug, Default)]
pub(crate) struct Packets {
    reads: usize,
}

impl MessageRecv for Packets {
    fn recv<'a>(&'a mut self, conn: &Conn, buf: &'a mut [u8]) -> Result<Next<'a>, RecvError> {
        recv_whole(&mut self.reads, conn, buf)
    }

    fn reads(&self) -> usize {
        self.reads
    }

    fn handed<'a>(&'a mut self, data: &'a mut [u8]) -> Result<Next<'a>, RecvError> {
        Ok(handed_packet(&mut self.reads, data))
    }
}

/// One whole message read from `conn` (seqpacket, datagram): at most [`MAX_MESSAGE`].
fn recv_whole<'a>(
    reads: &mut usize,
    conn: &Conn,
    buf: &'a mut [u8],
) -> Result<Next<'a>, RecvError> {
    let room = buf.len().min(MAX_MESSAGE);
    Ok(match recv_once(conn, &mut buf[..room])? {
        Received::Data(n) => {
            *reads += 1;
            Next::Message(&mut buf[..n])
        }
        Received::Closed => Next::Closed,
        Received::Truncated(n) => Next::Truncated(n),
    })
}

/// A whole message handed over by a completion: empty is the end, one longer than
/// [`MAX_MESSAGE`] is cut short as recv(2) would cut it.
fn handed_packet<'a>(reads: &mut usize, data: &'a mut [u8]) -> Next<'a> {
    match data.len() {
        0 => Next::Closed,
        n if n > MAX_MESSAGE => Next::Truncated(n),
        _ => {
            *reads += 1;
            Next::Message(data)
        }
    }
}

impl MessageSend for Packets {
    fn encode(&self, msg: &[u8], out: &mut Vec<u8>) {
        out.extend_from_slice(msg);
    }
}

/// A connected datagram socket: one message per read, possibly empty or cut short; one
/// that never comes is the caller's to wait for (a timeout) and to ask again.
#[derive(Debug, Default)]
pub(crate) struct Datagrams {
    reads: usize,
}

impl MessageRecv for Datagrams {
    fn recv<'a>(&'a mut self, conn: &Conn, buf: &'a mut [u8]) -> Result<Next<'a>, RecvError> {
        // QUIC datagrams come over a socket pair, which ends when the connection does
        // (`Conn::recv` tells); a datagram socket itself never reports an end.
        recv_whole(&mut self.reads, conn, buf)
    }

    fn reads(&self) -> usize {
        self.reads
    }

    fn handed<'a>(&'a mut self, data: &'a mut [u8]) -> Result<Next<'a>, RecvError> {
        // A datagram socket has no end: an empty completion is an empty datagram.
        if data.is_empty() {
            self.reads += 1;
            return Ok(Next::Message(data));
        }
        Ok(handed_packet(&mut self.reads, data))
    }
}

impl MessageSend for Datagrams {
    fn encode(&self, msg: &[u8], out: &mut Vec<u8>) {
        out.extend_from_slice(msg);
    }
}

/// Messages from a blocking connection, each returned as its own bytes: for a dialogue of
/// a few messages (requests, replies, file chunks), not for a hot loop.
pub(crate) struct MessageReader {
    recv: Receiver,
    buf: Vec<u8>,
}

impl MessageReader {
    pub(crate) fn new(carrier: Carrier, max_frame: usize) -> MessageReader {
        MessageReader {
            recv: carrier.receiver(max_frame),
            buf: vec![0u8; MAX_MESSAGE],
        }
    }

    /// The next message; `None` when the peer closed cleanly between messages.
    pub(crate) fn read(&mut self, conn: &Conn) -> Result<Option<Vec<u8>>, RecvError> {
        self.read_at_most(conn, MAX_MESSAGE)
    }

    /// The next message, reading at most `limit` bytes from a bare stream (so a read never
    /// takes bytes of a reply not yet asked for).
    pub(crate) fn read_at_most(
        &mut self,
        conn: &Conn,
        limit: usize,
    ) -> Result<Option<Vec<u8>>, RecvError> {
        let room = limit.clamp(1, self.buf.len());
        match self.recv.recv(conn, &mut self.buf[..room])? {
            Next::Message(msg) => Ok(Some(msg.to_vec())),
            Next::Closed => Ok(None),
            Next::Truncated(n) => Err(RecvError::Truncated(n)),
        }
    }

    /// Whether the last read emptied the socket as far as can be told (a bare stream's read
    /// shorter than its buffer; never on message sockets).
    pub(crate) fn drained(&self) -> bool {
        self.recv.drained()
    }

    /// recv(2) calls that returned data.
    pub(crate) fn reads(&self) -> usize {
        self.recv.reads()
    }

    /// A framed stream's bytes read and not yet a whole frame: after a frame error, what
    /// the peer sent instead of a frame. Empty for the other carriers.
    pub(crate) fn pending(&self) -> &[u8] {
        match &self.recv {
            Receiver::Frames(frames) => frames.decoder.pending(),
            _ => &[],
        }
    }
}

/// Sends `payload` as one length-prefixed frame (one message on a seqpacket socket).
pub(crate) fn send_frame(conn: &Conn, payload: &[u8]) -> io::Result<()> {
    crate::hexdump::dump_if(crate::hexdump::Way::Out, &conn.peer(), payload);
    Frames::new(Framing::Length, 0).send(conn, payload)
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, SocketAddr};

    use socket2::{Domain, Socket, Type};

    use super::*;

    #[test]
    fn each_carrier_says_what_its_messages_are() {
        let cases = [
            (SocketKind::Stream, Framing::None, Carrier::Bytes),
            (
                SocketKind::Stream,
                Framing::Line,
                Carrier::Frames(Framing::Line),
            ),
            (SocketKind::SeqPacket, Framing::Line, Carrier::Packets),
            (SocketKind::Datagram, Framing::Length, Carrier::Datagrams),
        ];
        for (kind, framing, carrier) in cases {
            assert_eq!(Carrier::of(kind, framing), carrier);
        }
        // (keeps boundaries, whole messages, reliable, may lose, carries empty)
        let said = |c: Carrier| {
            (
                c.keeps_boundaries(),
                c.whole_messages(),
                c.reliable(),
                c.may_lose(),
                c.carries_empty(),
            )
        };
        assert_eq!(said(Carrier::Bytes), (false, false, true, false, false));
        let framed = Carrier::Frames(Framing::Length);
        assert_eq!(said(framed), (true, false, true, false, true));
        assert_eq!(said(Carrier::Packets), (true, true, true, false, false));
        assert_eq!(said(Carrier::Datagrams), (true, true, false, true, true));
    }

    fn conn(sock: Socket, kind: SocketKind) -> Conn {
        Conn::new(sock, kind, "pair".into(), None)
    }

    fn pair(ty: Type, kind: SocketKind) -> (Conn, Conn) {
        let (a, b) = Socket::pair(Domain::UNIX, ty, None).expect("socketpair");
        (conn(a, kind), conn(b, kind))
    }

    /// Two UDP sockets on 127.0.0.1 connected to each other.
    fn udp_pair() -> (Conn, Conn) {
        let bound = || {
            let s = Socket::new(Domain::IPV4, Type::DGRAM, None).expect("udp socket");
            s.bind(&SocketAddr::from((Ipv4Addr::LOCALHOST, 0)).into())
                .expect("bind 127.0.0.1");
            s
        };
        let (a, b) = (bound(), bound());
        a.connect(&b.local_addr().unwrap()).unwrap();
        b.connect(&a.local_addr().unwrap()).unwrap();
        (conn(a, SocketKind::Datagram), conn(b, SocketKind::Datagram))
    }

    /// Every message `rx` has complete now, on a non-blocking socket.
    fn drain(rx: &mut dyn MessageRecv, conn: &Conn, buf: &mut [u8]) -> Vec<Vec<u8>> {
        let mut got = Vec::new();
        loop {
            match rx.recv(conn, buf) {
                Ok(Next::Message(m)) => got.push(m.to_vec()),
                Err(RecvError::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => return got,
                other => panic!("unexpected {other:?}"),
            }
        }
    }

    #[test]
    fn frames_come_whole_from_any_chunking_of_a_stream() {
        let payloads: [&[u8]; 4] = [b"hello", b"", b"stream of bytes", b"x"];
        for framing in [Framing::Line, Framing::Length] {
            let carrier = Carrier::of(SocketKind::Stream, framing);
            assert_eq!(carrier, Carrier::Frames(framing));
            let mut wire = Vec::new();
            for p in payloads {
                carrier.sender().encode(p, &mut wire);
            }
            for chunk in [1, 2, 3, 5, 7, wire.len()] {
                let (tx, rx) = pair(Type::STREAM, SocketKind::Stream);
                rx.set_nonblocking(true).unwrap();
                let mut frames = carrier.receiver(1024);
                // A buffer smaller than most frames: one frame takes several reads too.
                let mut buf = [0u8; 4];
                let mut got = Vec::new();
                for piece in wire.chunks(chunk) {
                    tx.send_all(piece).unwrap();
                    got.extend(drain(&mut frames, &rx, &mut buf));
                }
                assert_eq!(got, payloads, "{framing:?} in chunks of {chunk}");
                drop(tx);
                assert_eq!(frames.recv(&rx, &mut buf).unwrap(), Next::Closed);
            }
        }
    }

    #[test]
    fn frames_of_one_read_are_lent_without_another_read() {
        let (tx, rx) = pair(Type::STREAM, SocketKind::Stream);
        let carrier = Carrier::Frames(Framing::Line);
        tx.send_all(b"one\ntwo\nthr").unwrap();
        let mut frames = carrier.receiver(64);
        let mut buf = [0u8; 64];
        assert_eq!(
            frames.recv(&rx, &mut buf).unwrap(),
            Next::Message(&mut b"one".to_vec())
        );
        assert_eq!(frames.buffered().unwrap().unwrap(), b"two");
        assert_eq!(frames.buffered().unwrap(), None, "'thr' is not a frame yet");
        assert_eq!(frames.reads(), 1);
        assert!(frames.drained(), "a read shorter than the buffer");
    }

    #[test]
    fn a_frame_begun_behind_whole_ones_in_one_read_has_its_deadline() {
        let (tx, rx) = pair(Type::STREAM, SocketKind::Stream);
        let mut frames = Carrier::Frames(Framing::Line).receiver(64);
        frames.limit_frames(Duration::from_secs(10), false);
        tx.send_all(b"one\ntwo\nthr").unwrap();
        let mut buf = [0u8; 64];
        assert!(matches!(frames.recv(&rx, &mut buf), Ok(Next::Message(_))));
        assert_eq!(frames.buffered().unwrap().unwrap(), b"two");
        assert_eq!(frames.buffered().unwrap(), None);
        assert!(
            frames.deadline().is_some(),
            "'thr' is under way, read again or not"
        );
        // The same from a completion (the uring loop's receive).
        let mut frames = Carrier::Frames(Framing::Line).receiver(64);
        frames.limit_frames(Duration::from_secs(10), false);
        let mut data = b"one\nthr".to_vec();
        assert!(matches!(frames.handed(&mut data), Ok(Next::Message(_))));
        assert_eq!(frames.buffered().unwrap(), None);
        assert!(frames.deadline().is_some());
    }

    #[test]
    fn a_stream_closed_inside_a_frame_is_reported() {
        let (tx, rx) = pair(Type::STREAM, SocketKind::Stream);
        let mut frames = Carrier::Frames(Framing::Length).receiver(1024);
        tx.send_all(&[0, 0, 0, 9, b'a']).unwrap();
        drop(tx);
        let mut buf = [0u8; 64];
        match frames.recv(&rx, &mut buf) {
            Err(RecvError::Frame(FrameError::Incomplete { have: 5, .. })) => {}
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn a_bare_stream_gives_what_each_read_returned() {
        let (tx, rx) = pair(Type::STREAM, SocketKind::Stream);
        let carrier = rx.carrier(Framing::None);
        assert_eq!(carrier, Carrier::Bytes);
        assert!(!carrier.keeps_boundaries() && !carrier.carries_empty());
        carrier.sender().send(&tx, b"ab").unwrap();
        carrier.sender().send(&tx, b"cd").unwrap();
        let mut bytes = carrier.receiver(0);
        let mut buf = [0u8; 3];
        let mut got = Vec::new();
        while got.len() < 4 {
            match bytes.recv(&rx, &mut buf).unwrap() {
                Next::Message(m) => got.extend_from_slice(m),
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(got, b"abcd");
        assert!(bytes.reads() >= 2, "a 3-byte buffer needs two reads");
        drop(tx);
        assert_eq!(bytes.recv(&rx, &mut buf).unwrap(), Next::Closed);
    }

    #[test]
    fn seqpacket_keeps_each_boundary_and_ends_with_the_peer() {
        let (tx, rx) = pair(Type::SEQPACKET, SocketKind::SeqPacket);
        let carrier = rx.carrier(Framing::Line);
        assert_eq!(
            carrier,
            Carrier::Packets,
            "a framing applies to streams only"
        );
        assert!(carrier.reliable() && !carrier.carries_empty());
        let send = carrier.sender();
        for msg in [&b"one"[..], b"two words", b"3"] {
            send.send(&tx, msg).unwrap();
        }
        send.send(&tx, &[7u8; 100]).unwrap();
        let mut packets = carrier.receiver(0);
        let mut buf = [0u8; 64];
        for want in [&b"one"[..], b"two words", b"3"] {
            assert_eq!(
                packets.recv(&rx, &mut buf).unwrap(),
                Next::Message(&mut want.to_vec())
            );
        }
        assert_eq!(packets.recv(&rx, &mut buf).unwrap(), Next::Truncated(100));
        drop(tx);
        assert_eq!(packets.recv(&rx, &mut buf).unwrap(), Next::Closed);
        assert_eq!(packets.reads(), 3);
    }

    #[test]
    fn a_datagram_may_be_empty_or_truncated() {
        let (a, b) = udp_pair();
        let carrier = b.carrier(Framing::Length);
        assert_eq!(carrier, Carrier::Datagrams);
        assert!(!carrier.reliable() && carrier.carries_empty());
        let send = carrier.sender();
        send.send(&a, b"").unwrap();
        send.send(&a, &[1u8; 300]).unwrap();
        send.send(&a, b"after").unwrap();
        let mut datagrams = carrier.receiver(0);
        let mut buf = [0u8; 100];
        assert_eq!(
            datagrams.recv(&b, &mut buf).unwrap(),
            Next::Message(&mut [])
        );
        assert_eq!(datagrams.recv(&b, &mut buf).unwrap(), Next::Truncated(300));
        assert_eq!(
            datagrams.recv(&b, &mut buf).unwrap(),
            Next::Message(&mut b"after".to_vec())
        );
    }

    #[test]
    fn a_lost_datagram_is_a_wait_that_ends() {
        let (_a, b) = udp_pair();
        b.set_read_timeout(Some(std::time::Duration::from_millis(20)))
            .unwrap();
        let mut datagrams = Carrier::Datagrams.receiver(0);
        let mut buf = [0u8; 16];
        match datagrams.recv(&b, &mut buf) {
            Err(RecvError::Io(e)) if crate::transport::is_timeout(&e) => {}
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn the_reader_returns_owned_messages_and_reports_truncation() {
        let (tx, rx) = pair(Type::SEQPACKET, SocketKind::SeqPacket);
        send_frame(&tx, b"framed on seqpacket").unwrap();
        let mut frames = MessageReader::new(Carrier::Frames(Framing::Length), 1024);
        assert_eq!(frames.read(&rx).unwrap().unwrap(), b"framed on seqpacket");
        let (tx, rx) = pair(Type::DGRAM, SocketKind::Datagram);
        tx.send_all(&vec![0u8; MAX_MESSAGE + 1]).unwrap();
        let mut datagrams = MessageReader::new(Carrier::Datagrams, 0);
        assert!(matches!(
            datagrams.read(&rx),
            Err(RecvError::Truncated(n)) if n == MAX_MESSAGE + 1
        ));
    }
}
