//! One request, one reply, over any transport, as its [`Carrier`] says a message goes: a bare
//! stream reads until it has at least as many bytes as it sent (or the server closed or fell
//! silent) and takes what else has already come, a framed stream or seqpacket reads one
//! message, a datagram waits with a timeout and retries. And a burst: many requests back to
//! back, replies as they come.

use std::io;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow};
use tracing::debug;

use crate::endpoint::Target;
use crate::error::{Call, socket_error};
use crate::transport::framing::{Framing, LENGTH_HEADER};
use crate::transport::message::{Carrier, MessageReader, MessageSend, RecvError};
use crate::transport::{self, Conn, MAX_MESSAGE, SocketOptions};

/// What a client says of a connected server silent for its --timeout.
const SILENT_ADVICE: &str = "is it a server that answers each message, as an echo server does? \
                             One started with --framing line or length answers only a whole \
                             frame: send with the same --framing. For a slow one, or one busy \
                             with another client (`serve --model iterative` serves one \
                             connection at a time; the kernel queues the rest), raise --timeout";

/// The most taken of what has already come, past the bytes a bare stream's reply waits for.
const MORE_AT_MOST: usize = 16 * 1024 * 1024;

/// Messages up to this size are sent before the reply is read; larger ones are sent from a
/// second thread while this one reads, or both sides could block with full socket buffers.
const SEND_THEN_READ: usize = 64 * 1024;

/// How a client talks: socket options, datagram patience, stream framing.
#[derive(Clone, Debug)]
pub(crate) struct ClientConfig {
    pub opts: SocketOptions,
    /// How long a datagram client waits for a reply; over a connection, the longest silence
    /// of the server (no byte sent or taken) while a reply is owed.
    pub timeout: Duration,
    /// How often it sends again when none comes.
    pub retries: u32,
    pub framing: Framing,
    pub max_frame: usize,
}

/// Why an exchange failed: `NoAnswer` means another address of the same host is worth a try.
#[derive(Debug)]
pub enum Failure {
    NoAnswer(anyhow::Error),
    Fatal(anyhow::Error),
}

impl From<Failure> for anyhow::Error {
    fn from(f: Failure) -> anyhow::Error {
        match f {
            Failure::NoAnswer(e) | Failure::Fatal(e) => e,
        }
    }
}

/// What a burst got back: each entry is what one read (or one message) returned.
#[derive(Debug, Default)]
pub(crate) struct Burst {
    pub replies: Vec<Vec<u8>>,
    /// recv calls it took to get them.
    pub reads: usize,
    /// Datagram replies that never came.
    pub missing: usize,
}

/// A client connected to one server address.
pub(crate) struct Exchanger {
    conn: Conn,
    target: Target,
    config: ClientConfig,
    /// What a message is on this connection.
    carrier: Carrier,
    sender: Box<dyn MessageSend>,
    replies: MessageReader,
}

impl Exchanger {
    pub(crate) fn connect(target: &Target, config: &ClientConfig) -> Result<Self, Failure> {
        match transport::connect(target, &config.opts) {
            Ok(conn) => {
                let carrier = conn.carrier(config.framing);
                // SO_RCVTIMEO and SO_SNDTIMEO: no wait for a connected server outlasts
                // --timeout (a datagram's wait has its own deadline).
                if carrier.reliable() {
                    let silence = Some(config.timeout);
                    conn.set_read_timeout(silence)
                        .and_then(|()| conn.set_write_timeout(silence))
                        .map_err(|e| Failure::Fatal(socket_error(Call::Recv, target, &e)))?;
                }
                Ok(Exchanger {
                    carrier,
                    sender: carrier.sender(),
                    replies: MessageReader::new(carrier, config.max_frame),
                    conn,
                    target: target.clone(),
                    config: config.clone(),
                })
            }
            Err(e) => {
                let err = socket_error(Call::Connect, target, &e);
                Err(if e.kind() == io::ErrorKind::InvalidInput {
                    Failure::Fatal(err)
                } else {
                    Failure::NoAnswer(err)
                })
            }
        }
    }

    pub(crate) fn target(&self) -> &Target {
        &self.target
    }

    fn check_size(&self, msg: &[u8]) -> Result<(), Failure> {
        match self.conn.max_message() {
            Some(max) if msg.len() > max => Err(Failure::Fatal(anyhow!(
                "a {}-byte message does not fit in one {} message (at most {max} bytes here); \
                 send less",
                msg.len(),
                self.target.proto
            ))),
            _ => Ok(()),
        }
    }

    fn fatal(&self, call: Call, e: io::Error) -> Failure {
        Failure::Fatal(socket_error(call, &self.target, &e))
    }

    /// `msg` as it goes on the wire.
    fn wire(&self, msg: &[u8]) -> Vec<u8> {
        let mut wire = Vec::with_capacity(msg.len() + LENGTH_HEADER);
        self.sender.encode(msg, &mut wire);
        wire
    }

    /// Sends `msg` and returns the reply: one message where boundaries are kept, on a bare
    /// stream every byte the server said in answer (see [`read_answer`]), and with patience
    /// and retries where a datagram may be lost.
    pub(crate) fn exchange(&mut self, msg: &[u8]) -> Result<Vec<u8>, Failure> {
        self.check_size(msg)?;
        if !self.carrier.reliable() {
            return self.exchange_datagram(msg);
        }
        let wire = self.wire(msg);
        let Exchanger {
            conn,
            replies,
            target,
            carrier,
            config,
            ..
        } = self;
        let silence = config.timeout;
        let reply = if carrier.keeps_boundaries() {
            send_while(conn, &wire, target, silence, || {
                next_message(conn, replies, *carrier, target, silence)
            })
        } else {
            let plain = config.opts.tls.is_none();
            send_while(conn, &wire, target, silence, || {
                let mut reply = Vec::with_capacity(msg.len());
                let read = read_answer(conn, replies, msg.len(), target, silence, &mut reply);
                if plain {
                    heed_alert(conn, replies, msg, &mut reply, silence)?;
                }
                read.map(|()| reply)
            })
        };
        reply.map_err(Failure::Fatal)
    }

    fn exchange_datagram(&mut self, msg: &[u8]) -> Result<Vec<u8>, Failure> {
        let what = self.target.to_string();
        let (timeout, retries) = (self.config.timeout, self.config.retries);
        for attempt in 0..=retries {
            if attempt > 0 {
                debug!(
                    "{what}: no reply within {timeout:?}; sending again ({attempt} of {retries})"
                );
            }
            match self.sender.send(&self.conn, msg) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                    return Err(self.refused());
                }
                Err(e) => return Err(self.fatal(Call::Send, e)),
            }
            let deadline = Instant::now() + timeout;
            // A reply that does not match is a late answer to an earlier try.
            let wanted = |reply: &[u8]| reply.eq_ignore_ascii_case(msg);
            let (conn, replies, target) = (&self.conn, &mut self.replies, &self.target);
            if let Some(reply) = recv_datagram(conn, replies, target, deadline, wanted)? {
                return Ok(reply);
            }
        }
        Err(Failure::NoAnswer(anyhow!(
            "no reply from {what} after {} tries, {timeout:?} each. Nobody retransmits a lost \
             datagram: the request or the reply may have been lost, or no server is there. \
             Check the server, or raise --timeout / --retries",
            retries + 1
        )))
    }

    fn refused(&self) -> Failure {
        refused(&self.target)
    }

    /// Sends `msg` `count` times back to back, each its own send, without waiting; then
    /// collects the replies as the socket delivers them. On a bare stream one entry is
    /// what one read returned, which is how a lab sees several messages stick together.
    pub(crate) fn burst(&mut self, msg: &[u8], count: usize) -> Result<Burst> {
        let mut replies = Vec::new();
        let mut burst = self.burst_each(msg, count, &mut |reply| {
            replies.push(reply.to_vec());
            Ok(())
        })?;
        burst.replies = replies;
        Ok(burst)
    }

    /// [`Exchanger::burst`], handing each reply to `on_reply` as it comes (the returned
    /// `Burst` has the counts, not the replies). Datagram replies are awaited under one
    /// deadline: the burst ends when every reply came or when `timeout` passes with none,
    /// so lost replies cost one timeout in all, not one each.
    pub(crate) fn burst_each(
        &mut self,
        msg: &[u8],
        count: usize,
        on_reply: &mut dyn FnMut(&[u8]) -> Result<()>,
    ) -> Result<Burst> {
        self.check_size(msg)?;
        let wire = self.wire(msg);
        let Exchanger {
            conn,
            replies,
            target,
            config,
            carrier,
            sender,
        } = self;
        let silence = config.timeout;
        let send_all = || -> io::Result<()> { (0..count).try_for_each(|_| sender.send(conn, msg)) };
        let before = replies.reads();
        let len = wire.len() * count;
        let mut got = 0;
        let mut each = |reply: &[u8]| {
            got += 1;
            on_reply(reply)
        };
        let mut burst = Burst::default();
        if !carrier.reliable() {
            send_all().map_err(|e| socket_error(Call::Send, &*target, &e))?;
            burst.missing =
                recv_datagrams(conn, replies, target, count, config.timeout, &mut each)?;
        } else {
            let whole = carrier.keeps_boundaries();
            send_while_io(len, target, silence, send_all, || match whole {
                true => (0..count).try_for_each(|_| {
                    each(&next_message(conn, replies, *carrier, target, silence)?)
                }),
                false => read_chunks(conn, replies, count * msg.len(), target, silence, &mut each),
            })?;
        }
        burst.reads = if carrier.reliable() && carrier.keeps_boundaries() {
            replies.reads() - before
        } else {
            got
        };
        Ok(burst)
    }
}

/// Up to `count` datagram replies, each handed to `each`, until `timeout` passes with none;
/// returns how many never came.
fn recv_datagrams(
    conn: &Conn,
    replies: &mut MessageReader,
    target: &Target,
    count: usize,
    timeout: Duration,
    each: &mut dyn FnMut(&[u8]) -> Result<()>,
) -> Result<usize> {
    for got in 0..count {
        let deadline = Instant::now() + timeout;
        match recv_datagram(conn, replies, target, deadline, |_| true)? {
            Some(reply) => each(&reply)?,
            None => return Ok(count - got),
        }
    }
    Ok(0)
}

/// Waits until `deadline` for a datagram that `wanted` accepts; `None` when none came.
fn recv_datagram(
    conn: &Conn,
    replies: &mut MessageReader,
    target: &Target,
    deadline: Instant,
    wanted: impl Fn(&[u8]) -> bool,
) -> Result<Option<Vec<u8>>, Failure> {
    let fatal = |e| Failure::Fatal(socket_error(Call::Recv, target, &e));
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(None);
        }
        conn.set_read_timeout(Some(left)).map_err(fatal)?;
        match replies.read(conn) {
            Ok(Some(reply)) if wanted(&reply) => return Ok(Some(reply)),
            // Datagrams over a QUIC connection end with it.
            Ok(None) => {
                return Err(Failure::Fatal(anyhow!("{target}: the connection closed")));
            }
            Ok(Some(_)) | Err(RecvError::Truncated(_) | RecvError::Frame(_)) => {
                debug!("{target}: ignored a reply that does not match")
            }
            Err(RecvError::Io(e)) if crate::transport::is_timeout(&e) => {
                return Ok(None);
            }
            Err(RecvError::Io(e)) if e.kind() == io::ErrorKind::ConnectionRefused => {
                return Err(refused(target));
            }
            Err(RecvError::Io(e)) => return Err(fatal(e)),
        }
    }
}

fn refused(target: &Target) -> Failure {
    Failure::NoAnswer(anyhow!("{}", crate::error::nothing_listening(Some(target))))
}

/// Sends `wire` while `read` collects the reply.
fn send_while<T>(
    conn: &Conn,
    wire: &[u8],
    target: &Target,
    silence: Duration,
    read: impl FnOnce() -> Result<T>,
) -> Result<T> {
    send_while_io(wire.len(), target, silence, || conn.send_all(wire), read)
}

/// Runs `send` (of `len` bytes) and `read`: one after the other when the bytes fit in the
/// socket buffers, at the same time otherwise. A send that `silence` (SO_SNDTIMEO) ended
/// says the server took nothing.
fn send_while_io<T>(
    len: usize,
    target: &Target,
    silence: Duration,
    send: impl FnOnce() -> io::Result<()> + Send,
    read: impl FnOnce() -> Result<T>,
) -> Result<T> {
    let sent = |e| waited(Call::Send, target, silence, e);
    if len <= SEND_THEN_READ {
        // A server that answered the first message and closed (a TLS server's alert to a
        // plaintext client) fails the sends after it: what it said comes first, as below.
        // Only a closed connection has something to read first; a send that timed out
        // says so at once.
        if let Err(e) = send() {
            if matches!(
                e.kind(),
                io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
            ) {
                read()?;
            }
            return Err(sent(e));
        }
        return read();
    }
    thread::scope(|scope| {
        let writer = thread::Builder::new()
            .name("send".into())
            .spawn_scoped(scope, send)
            .map_err(|e| anyhow!("cannot start the sending thread: {e}"))?;
        let got = read();
        let result = writer.join().expect("sender thread panicked");
        let got = got?;
        result.map_err(sent)?;
        Ok(got)
    })
}

/// Reads `len` bytes from a bare stream, handing what each read returned to `each`: one
/// reply may arrive in many reads, and one read may hold parts of two replies.
fn read_chunks(
    conn: &Conn,
    replies: &mut MessageReader,
    len: usize,
    target: &Target,
    silence: Duration,
    each: &mut dyn FnMut(&[u8]) -> Result<()>,
) -> Result<()> {
    let mut got = 0;
    while got < len {
        match replies.read_at_most(conn, len - got) {
            Ok(Some(chunk)) => {
                got += chunk.len();
                each(&chunk)?;
            }
            Ok(None) | Err(RecvError::Truncated(_) | RecvError::Frame(_)) => {
                return Err(anyhow!(
                    "{target}: the server closed the connection after {got} of {len} reply bytes"
                ));
            }
            Err(RecvError::Io(e)) => return Err(waited(Call::Recv, target, silence, e)),
        }
    }
    Ok(())
}

/// A failed send or recv on a connection, or its timeout (SO_SNDTIMEO, SO_RCVTIMEO at
/// `silence`): the server took or sent nothing for --timeout.
pub(crate) fn waited(
    call: Call,
    target: &Target,
    silence: Duration,
    e: io::Error,
) -> anyhow::Error {
    if !crate::transport::is_timeout(&e) {
        return socket_error(call, target, &e);
    }
    let waited = match call {
        Call::Send => "sending",
        _ => "waiting for a reply",
    };
    crate::error::silent_peer(call, target, waited, silence, SILENT_ADVICE)
}

/// A bare stream's answer to a `len`-byte message, into `reply`: what comes until at least
/// `len` bytes came (an echo's whole answer), the server closed, or a read timed out with
/// something said; then what else has already come, without waiting (the rest of a banner
/// longer than the message). An error when nothing came at all.
fn read_answer(
    conn: &Conn,
    replies: &mut MessageReader,
    len: usize,
    target: &Target,
    silence: Duration,
    reply: &mut Vec<u8>,
) -> Result<()> {
    while reply.len() < len {
        let said = !reply.is_empty();
        match replies.read_at_most(conn, MAX_MESSAGE) {
            Ok(Some(chunk)) => reply.extend_from_slice(&chunk),
            Ok(None) | Err(RecvError::Truncated(_) | RecvError::Frame(_)) if said => return Ok(()),
            Ok(None) | Err(RecvError::Truncated(_) | RecvError::Frame(_)) => {
                return Err(closed_first(target, Carrier::Bytes));
            }
            Err(RecvError::Io(e)) if crate::transport::is_timeout(&e) && said => return Ok(()),
            Err(RecvError::Io(e)) => return Err(waited(Call::Recv, target, silence, e)),
        }
    }
    take_ready(conn, replies, reply);
    Ok(())
}

/// Adds to `reply` what had already come by the last read, at most [`MORE_AT_MOST`] bytes:
/// nothing when that read was short of its buffer (it emptied the socket), else non-blocking
/// reads until one is. Whatever ends them (the server closing too) ends the reply only.
fn take_ready(conn: &Conn, replies: &mut MessageReader, reply: &mut Vec<u8>) {
    if replies.drained() || conn.set_nonblocking(true).is_err() {
        return;
    }
    let mut more = 0;
    while more < MORE_AT_MOST && !replies.drained() {
        match replies.read_at_most(conn, MAX_MESSAGE) {
            Ok(Some(chunk)) => {
                more += chunk.len();
                reply.extend_from_slice(&chunk);
            }
            _ => break,
        }
    }
    let _ = conn.set_nonblocking(false);
}

/// The bytes of a TLS alert record: type 21, version 3.x, a 2-byte alert. A TLS server sends
/// one to a client that spoke plaintext to it, then closes.
const ALERT: usize = 7;
/// How long a reply that starts as an alert does is given to come whole: the server sent the
/// alert in one write.
const ALERT_WAIT: Duration = Duration::from_millis(500);

/// How much of a TLS alert record some bytes are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Alert {
    No,
    /// Its start, as far as the bytes go.
    Start,
    Whole,
}

pub(crate) fn alert_shape(bytes: &[u8]) -> Alert {
    let fits = |(i, &b): (usize, &u8)| match i {
        0 => b == 21,
        1 => b == 3,
        2 => b <= 4,
        3 => b == 0,
        4 => b == 2,
        _ => true,
    };
    match bytes.len() {
        0 => Alert::No,
        _ if !bytes.iter().enumerate().all(fits) => Alert::No,
        n if n >= ALERT => Alert::Whole,
        _ => Alert::Start,
    }
}

/// What a plaintext client of a TLS server is told.
pub(crate) fn tls_alert_error() -> anyhow::Error {
    anyhow!(
        "the server answered with a TLS alert: it speaks TLS; add --tls (and --pin with the \
         fingerprint its listening line shows, or --ca)"
    )
}

/// Refuses a reply over a bare plaintext stream that is a TLS alert where the echo of `msg`
/// belongs. A short message's reply holds only the alert's start: the rest is read, waiting
/// at most [`ALERT_WAIT`]; what comes is kept in `reply` when it makes no alert.
fn heed_alert(
    conn: &Conn,
    replies: &mut MessageReader,
    msg: &[u8],
    reply: &mut Vec<u8>,
    silence: Duration,
) -> Result<()> {
    let echoed = msg.starts_with(&reply[..reply.len().min(ALERT)]);
    if echoed || alert_shape(reply) == Alert::No {
        return Ok(());
    }
    if alert_shape(reply) == Alert::Start {
        let _ = conn.set_read_timeout(Some(ALERT_WAIT));
        while alert_shape(reply) == Alert::Start {
            match replies.read_at_most(conn, ALERT - reply.len()) {
                Ok(Some(chunk)) => reply.extend_from_slice(&chunk),
                _ => break,
            }
        }
        let _ = conn.set_read_timeout(Some(silence));
    }
    match alert_shape(reply) {
        Alert::Whole => Err(tls_alert_error()),
        _ => Ok(()),
    }
}

/// The first reply bytes of a burst over a bare plaintext stream, held while they may be
/// the start of a TLS alert where the echo of the message belongs (a plaintext client at a
/// TLS port), as [`heed_alert`] judges a single reply.
pub(crate) struct AlertWatch {
    head: Vec<u8>,
    watching: bool,
}

impl AlertWatch {
    /// Watching only when `plain_stream`: a bare stream without TLS.
    pub(crate) fn new(plain_stream: bool) -> AlertWatch {
        AlertWatch {
            head: Vec::new(),
            watching: plain_stream,
        }
    }

    /// What of the replies may be shown now, `chunk` the latest read: nothing while the
    /// bytes so far may still be an alert's start, the error once they are one.
    pub(crate) fn pass<'c>(
        &mut self,
        msg: &[u8],
        chunk: &'c [u8],
    ) -> Result<Option<std::borrow::Cow<'c, [u8]>>> {
        if !self.watching {
            return Ok(Some(chunk.into()));
        }
        self.head.extend_from_slice(chunk);
        let echoed = msg.starts_with(&self.head[..self.head.len().min(ALERT)]);
        match alert_shape(&self.head) {
            Alert::Whole if !echoed => Err(tls_alert_error()),
            Alert::Start if !echoed => Ok(None),
            _ => {
                self.watching = false;
                Ok(Some(std::mem::take(&mut self.head).into()))
            }
        }
    }

    /// At the burst's end: bytes still held are an alert's start where no echo came (the
    /// burst's bytes were fewer than an alert's seven).
    pub(crate) fn finish(self) -> Result<()> {
        match self.head.is_empty() {
            true => Ok(()),
            false => Err(tls_alert_error()),
        }
    }
}

/// A stream server that closed before its reply. Sent unframed or line by line, the likely
/// cause is a server started with `--framing length`: it reads the first four bytes as a
/// frame's length and closes on one past its --max-frame.
fn closed_first(target: &Target, carrier: Carrier) -> anyhow::Error {
    match carrier {
        Carrier::Bytes | Carrier::Frames(Framing::Line) => anyhow!(
            "{target}: the server closed the connection before replying; a server started \
             with --framing length closes on bytes that are not its frames: send with the same \
             --framing"
        ),
        _ => anyhow!("{target}: the server closed the connection before replying"),
    }
}

/// The next reply message, or an error that says the server closed first, or was silent
/// for `silence`.
fn next_message(
    conn: &Conn,
    replies: &mut MessageReader,
    carrier: Carrier,
    target: &Target,
    silence: Duration,
) -> Result<Vec<u8>> {
    match replies.read(conn) {
        Ok(Some(reply)) => Ok(reply),
        Ok(None) => Err(closed_first(target, carrier)),
        Err(RecvError::Io(e)) => Err(waited(Call::Recv, target, silence, e)),
        Err(RecvError::Truncated(n)) => Err(anyhow!(
            "{target}: a {n}-byte reply is larger than the {MAX_MESSAGE}-byte buffer"
        )),
        Err(e) => Err(anyhow!("{target}: {e}")),
    }
}

/// A client for an endpoint that may stand for several addresses: each is tried in turn
/// until one answers; after that the client stays with it.
pub(crate) struct Session {
    candidates: Vec<Target>,
    next: usize,
    current: Option<Exchanger>,
    answered: bool,
    config: ClientConfig,
}

impl Session {
    /// Resolves `endpoint` and connects to the first address that accepts.
    pub(crate) fn open(target: &Target, config: ClientConfig) -> Result<Session> {
        let mut session = Session {
            candidates: transport::target_candidates(target)?,
            next: 0,
            current: None,
            answered: false,
            config,
        };
        session.advance()?;
        Ok(session)
    }

    /// Connects to the next candidate that accepts a connection.
    fn advance(&mut self) -> Result<()> {
        let mut last = None;
        while let Some(target) = self.candidates.get(self.next) {
            self.next += 1;
            match Exchanger::connect(target, &self.config) {
                Ok(client) => {
                    debug!("connected to {target}");
                    self.current = Some(client);
                    return Ok(());
                }
                Err(Failure::NoAnswer(e)) => {
                    debug!("{e:#}");
                    last = Some(e);
                }
                Err(Failure::Fatal(e)) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| anyhow!("no address to connect to")))
    }

    fn client(&mut self) -> &mut Exchanger {
        self.current
            .as_mut()
            .expect("a session is always connected")
    }

    pub(crate) fn exchange(&mut self, msg: &[u8]) -> Result<Vec<u8>> {
        loop {
            match self.client().exchange(msg) {
                Ok(reply) => {
                    self.answered = true;
                    return Ok(reply);
                }
                Err(Failure::NoAnswer(e))
                    if !self.answered && self.next < self.candidates.len() =>
                {
                    debug!("{e:#}; trying the next address");
                    self.advance()?;
                }
                Err(failure) => return Err(failure.into()),
            }
        }
    }

    pub(crate) fn burst_each(
        &mut self,
        msg: &[u8],
        count: usize,
        on_reply: &mut dyn FnMut(&[u8]) -> Result<()>,
    ) -> Result<Burst> {
        self.client().burst_each(msg, count, on_reply)
    }

    pub(crate) fn target(&self) -> &Target {
        self.current.as_ref().expect("connected").target()
    }

    /// What a message is on the connection in use.
    pub(crate) fn carrier(&self) -> Carrier {
        self.current.as_ref().expect("connected").carrier
    }

    /// The connected socket and its address, for a client that streams its input.
    pub(crate) fn connection(&self) -> Option<(&Conn, &Target)> {
        self.current.as_ref().map(|c| (&c.conn, &c.target))
    }
}
