//! One request, one reply, over any transport: a stream reads until it has as many bytes as
//! it sent (or, framed, one whole frame), seqpacket reads one message, a datagram waits with a
//! timeout and retries. And a burst: many requests back to back, replies as they come.

use std::io;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow};
use tracing::debug;

use crate::endpoint::{Endpoint, SocketKind};
use crate::error::{Call, socket_error};
use crate::service::framing::{FrameReadError, FrameReader, Framing};
use crate::transport::{self, Conn, MAX_MESSAGE, Received, SocketOptions};

/// Messages up to this size are sent before the reply is read; larger ones are sent from a
/// second thread while this one reads, or both sides could block with full socket buffers.
const SEND_THEN_READ: usize = 64 * 1024;

/// How a client talks: socket options, datagram patience, stream framing.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    pub opts: SocketOptions,
    /// How long a datagram client waits for a reply.
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
pub struct Burst {
    pub replies: Vec<Vec<u8>>,
    /// recv calls it took to get them.
    pub reads: usize,
    /// Datagram replies that never came.
    pub missing: usize,
}

/// A client connected to one server address.
pub struct Exchanger {
    conn: Conn,
    target: Endpoint,
    config: ClientConfig,
    /// Cuts replies into frames on a framed stream.
    decoder: Option<FrameReader>,
}

impl Exchanger {
    pub fn connect(target: &Endpoint, config: &ClientConfig) -> Result<Self, Failure> {
        match transport::connect(target, &config.opts) {
            Ok(conn) => {
                let framed = config.framing != Framing::None && conn.kind() == SocketKind::Stream;
                Ok(Exchanger {
                    decoder: framed.then(|| FrameReader::new(config.framing, config.max_frame)),
                    conn,
                    target: target.clone(),
                    config: config.clone(),
                })
            }
            Err(e) => {
                let err = socket_error(Call::Connect, &target.to_string(), &e);
                Err(if e.kind() == io::ErrorKind::InvalidInput {
                    Failure::Fatal(err)
                } else {
                    Failure::NoAnswer(err)
                })
            }
        }
    }

    pub fn target(&self) -> &Endpoint {
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
        Failure::Fatal(socket_error(call, &self.target.to_string(), &e))
    }

    /// Sends `msg` and returns the reply.
    pub fn exchange(&mut self, msg: &[u8]) -> Result<Vec<u8>, Failure> {
        self.check_size(msg)?;
        match self.conn.kind() {
            SocketKind::Stream if self.decoder.is_some() => {
                let mut wire = Vec::with_capacity(msg.len() + 4);
                self.config.framing.encode(msg, &mut wire);
                let Exchanger {
                    conn,
                    decoder,
                    target,
                    ..
                } = self;
                let decoder = decoder.as_mut().expect("framed");
                send_while(conn, &wire, || next_frame(conn, decoder, target))
                    .map_err(Failure::Fatal)
            }
            SocketKind::Stream => {
                let (conn, target) = (&self.conn, &self.target);
                send_while(conn, msg, || read_exactly(conn, msg.len(), target))
                    .map_err(Failure::Fatal)
            }
            SocketKind::SeqPacket => {
                self.conn
                    .send_all(msg)
                    .map_err(|e| self.fatal(Call::Send, e))?;
                self.recv_message()
            }
            SocketKind::Datagram => self.exchange_datagram(msg),
        }
    }

    /// One message from a seqpacket socket.
    fn recv_message(&self) -> Result<Vec<u8>, Failure> {
        let what = &self.target;
        let mut buf = vec![0u8; MAX_MESSAGE];
        match self
            .conn
            .recv(&mut buf)
            .map_err(|e| self.fatal(Call::Recv, e))?
        {
            Received::Data(n) => Ok(buf[..n].to_vec()),
            Received::Closed => Err(Failure::Fatal(anyhow!(
                "{what}: the server closed the connection without replying"
            ))),
            Received::Truncated(n) => Err(Failure::Fatal(anyhow!(
                "{what}: a {n}-byte reply is larger than the {MAX_MESSAGE}-byte buffer"
            ))),
        }
    }

    fn exchange_datagram(&self, msg: &[u8]) -> Result<Vec<u8>, Failure> {
        let what = self.target.to_string();
        let (timeout, retries) = (self.config.timeout, self.config.retries);
        let mut buf = vec![0u8; MAX_MESSAGE];
        for attempt in 0..=retries {
            if attempt > 0 {
                debug!(
                    "{what}: no reply within {timeout:?}; sending again ({attempt} of {retries})"
                );
            }
            match self.conn.send_all(msg) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                    return Err(self.refused());
                }
                Err(e) => return Err(self.fatal(Call::Send, e)),
            }
            let deadline = Instant::now() + timeout;
            // A reply that does not match is a late answer to an earlier try.
            let wanted = |reply: &[u8]| reply.eq_ignore_ascii_case(msg);
            match recv_datagram(&self.conn, &self.target, &mut buf, deadline, wanted)? {
                Some(n) => return Ok(buf[..n].to_vec()),
                None => continue,
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
    /// collects the replies as the socket delivers them. On an unframed stream one entry is
    /// what one read returned, which is how a lab sees several messages stick together.
    pub fn burst(&mut self, msg: &[u8], count: usize) -> Result<Burst> {
        self.check_size(msg)?;
        let mut wire = Vec::with_capacity(msg.len() + 4);
        match &self.decoder {
            Some(_) => self.config.framing.encode(msg, &mut wire),
            None => wire.extend_from_slice(msg),
        }
        let kind = self.conn.kind();
        let Exchanger {
            conn,
            decoder,
            target,
            config,
        } = self;
        let send_all = || -> io::Result<()> {
            for _ in 0..count {
                conn.send_all(&wire)?;
            }
            Ok(())
        };
        let mut burst = Burst::default();
        let what = target.to_string();
        match (kind, decoder.as_mut()) {
            (SocketKind::Stream, Some(decoder)) => {
                let before = decoder.reads;
                burst.replies = send_while_io(wire.len() * count, send_all, || {
                    (0..count)
                        .map(|_| next_frame(conn, decoder, target))
                        .collect()
                })?;
                burst.reads = decoder.reads - before;
            }
            (SocketKind::Stream, None) => {
                burst.replies = send_while_io(wire.len() * count, send_all, || {
                    read_chunks(conn, count * msg.len(), target)
                })?;
                burst.reads = burst.replies.len();
            }
            (SocketKind::SeqPacket | SocketKind::Datagram, _) => {
                send_all().map_err(|e| socket_error(Call::Send, &what, &e))?;
                let mut buf = vec![0u8; MAX_MESSAGE];
                for _ in 0..count {
                    let got = if kind == SocketKind::SeqPacket {
                        match conn
                            .recv(&mut buf)
                            .map_err(|e| socket_error(Call::Recv, &what, &e))?
                        {
                            Received::Data(n) => Some(n),
                            _ => return Err(anyhow!("{what}: the server closed the connection")),
                        }
                    } else {
                        let deadline = Instant::now() + config.timeout;
                        recv_datagram(conn, target, &mut buf, deadline, |_| true)?
                    };
                    match got {
                        Some(n) => {
                            burst.reads += 1;
                            burst.replies.push(buf[..n].to_vec());
                        }
                        None => burst.missing += 1,
                    }
                }
            }
        }
        Ok(burst)
    }
}

/// Waits until `deadline` for a datagram that `wanted` accepts; `None` when none came.
fn recv_datagram(
    conn: &Conn,
    target: &Endpoint,
    buf: &mut [u8],
    deadline: Instant,
    wanted: impl Fn(&[u8]) -> bool,
) -> Result<Option<usize>, Failure> {
    let fatal = |e| Failure::Fatal(socket_error(Call::Recv, &target.to_string(), &e));
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(None);
        }
        conn.set_read_timeout(Some(left)).map_err(fatal)?;
        match conn.recv(buf) {
            Ok(Received::Data(n)) if wanted(&buf[..n]) => return Ok(Some(n)),
            Ok(_) => debug!("{target}: ignored a reply that does not match"),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return Ok(None);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => return Err(refused(target)),
            Err(e) => return Err(fatal(e)),
        }
    }
}

fn refused(target: &Endpoint) -> Failure {
    Failure::NoAnswer(anyhow!(
        "nothing is listening on {target}: the kernel reported the datagram undeliverable (ICMP \
         port unreachable, or no Unix socket bound); is the server running?"
    ))
}

/// Sends `wire` while `read` collects the reply.
fn send_while<T>(conn: &Conn, wire: &[u8], read: impl FnOnce() -> Result<T>) -> Result<T> {
    send_while_io(wire.len(), || conn.send_all(wire), read)
}

/// Runs `send` (of `len` bytes) and `read`: one after the other when the bytes fit in the
/// socket buffers, at the same time otherwise.
fn send_while_io<T>(
    len: usize,
    send: impl FnOnce() -> io::Result<()> + Send,
    read: impl FnOnce() -> Result<T>,
) -> Result<T> {
    if len <= SEND_THEN_READ {
        send().map_err(|e| anyhow!("send: {e}"))?;
        return read();
    }
    thread::scope(|scope| {
        let writer = scope.spawn(send);
        let got = read();
        let sent = writer.join().expect("sender thread panicked");
        let got = got?;
        sent.map_err(|e| anyhow!("send: {e}"))?;
        Ok(got)
    })
}

/// Reads until `len` bytes have come back: on a stream, one reply may arrive in many reads,
/// and one read may hold parts of two replies.
fn read_exactly(conn: &Conn, len: usize, target: &Endpoint) -> Result<Vec<u8>> {
    Ok(read_chunks(conn, len, target)?.concat())
}

/// Reads `len` bytes, keeping what each read returned apart.
fn read_chunks(conn: &Conn, len: usize, target: &Endpoint) -> Result<Vec<Vec<u8>>> {
    let mut chunks = Vec::new();
    let mut got = 0;
    let mut buf = vec![0u8; len.clamp(1, MAX_MESSAGE)];
    while got < len {
        let want = (len - got).min(buf.len());
        match conn.recv(&mut buf[..want]) {
            Ok(Received::Data(n)) => {
                got += n;
                chunks.push(buf[..n].to_vec());
            }
            Ok(Received::Closed | Received::Truncated(_)) => {
                return Err(anyhow!(
                    "{target}: the server closed the connection after {got} of {len} reply bytes"
                ));
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(socket_error(Call::Recv, &target.to_string(), &e)),
        }
    }
    Ok(chunks)
}

/// The next reply frame, or an error that says the server closed first.
fn next_frame(conn: &Conn, frames: &mut FrameReader, target: &Endpoint) -> Result<Vec<u8>> {
    match frames.read(conn) {
        Ok(Some(frame)) => Ok(frame),
        Ok(None) => Err(anyhow!(
            "{target}: the server closed the connection before replying"
        )),
        Err(FrameReadError::Io(e)) => Err(socket_error(Call::Recv, &target.to_string(), &e)),
        Err(e) => Err(anyhow!("{target}: {e}")),
    }
}

/// A client for an endpoint that may stand for several addresses: each is tried in turn
/// until one answers; after that the client stays with it.
pub struct Session {
    candidates: Vec<Endpoint>,
    next: usize,
    current: Option<Exchanger>,
    answered: bool,
    config: ClientConfig,
}

impl Session {
    /// Resolves `endpoint` and connects to the first address that accepts.
    pub fn open(endpoint: &Endpoint, config: ClientConfig) -> Result<Session> {
        let mut session = Session {
            candidates: transport::candidates(endpoint)?,
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

    pub fn exchange(&mut self, msg: &[u8]) -> Result<Vec<u8>> {
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

    pub fn burst(&mut self, msg: &[u8], count: usize) -> Result<Burst> {
        self.client().burst(msg, count)
    }

    pub fn target(&self) -> &Endpoint {
        self.current.as_ref().expect("connected").target()
    }

    /// Whether replies are cut into frames (a framing on a stream).
    pub fn framed(&self) -> bool {
        self.current.as_ref().is_some_and(|c| c.decoder.is_some())
    }
}
