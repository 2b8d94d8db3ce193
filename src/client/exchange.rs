//! One request, one reply, over any transport: the stream reads until it has as many bytes
//! as it sent, seqpacket reads one message, a datagram waits with a timeout and retries.

use std::io;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow};
use tracing::debug;

use crate::endpoint::{Endpoint, SocketKind};
use crate::error::{Call, socket_error};
use crate::transport::{self, Conn, MAX_MESSAGE, Received, SocketOptions};

/// Messages up to this size are sent before the reply is read; larger ones are sent from a
/// second thread while this one reads, or both sides could block with full socket buffers.
const SEND_THEN_READ: usize = 64 * 1024;

/// How long a datagram client waits for a reply, and how often it sends again.
#[derive(Clone, Copy, Debug)]
pub struct Patience {
    pub timeout: Duration,
    pub retries: u32,
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

/// A client connected to one server address.
pub struct Exchanger {
    conn: Conn,
    target: Endpoint,
    patience: Patience,
}

impl Exchanger {
    pub fn connect(
        target: &Endpoint,
        opts: &SocketOptions,
        patience: Patience,
    ) -> Result<Self, Failure> {
        match transport::connect(target, opts) {
            Ok(conn) => Ok(Exchanger {
                conn,
                target: target.clone(),
                patience,
            }),
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

    /// Sends `msg` and returns the reply.
    pub fn exchange(&self, msg: &[u8]) -> Result<Vec<u8>, Failure> {
        let what = self.target.to_string();
        if let Some(max) = self.conn.max_message()
            && msg.len() > max
        {
            return Err(Failure::Fatal(anyhow!(
                "a {}-byte message does not fit in one {} message (at most {max} bytes \
                 here); send less",
                msg.len(),
                self.target.proto
            )));
        }
        let fatal = |call, e: io::Error| Failure::Fatal(socket_error(call, &what, &e));
        match self.conn.kind() {
            SocketKind::Stream => self.exchange_stream(msg).map_err(Failure::Fatal),
            SocketKind::SeqPacket => {
                self.conn.send_all(msg).map_err(|e| fatal(Call::Send, e))?;
                let mut buf = vec![0u8; MAX_MESSAGE];
                match self.conn.recv(&mut buf).map_err(|e| fatal(Call::Recv, e))? {
                    Received::Data(n) => Ok(buf[..n].to_vec()),
                    Received::Closed => Err(Failure::Fatal(anyhow!(
                        "{what}: the server closed the connection without replying"
                    ))),
                    Received::Truncated(n) => Err(Failure::Fatal(anyhow!(
                        "{what}: a {n}-byte reply is larger than the {MAX_MESSAGE}-byte buffer"
                    ))),
                }
            }
            SocketKind::Datagram => self.exchange_datagram(msg),
        }
    }

    fn exchange_stream(&self, msg: &[u8]) -> Result<Vec<u8>> {
        let what = self.target.to_string();
        if msg.len() <= SEND_THEN_READ {
            self.conn
                .send_all(msg)
                .map_err(|e| socket_error(Call::Send, &what, &e))?;
            return self.read_reply(msg.len());
        }
        thread::scope(|scope| {
            let writer = scope.spawn(|| self.conn.send_all(msg));
            let reply = self.read_reply(msg.len());
            let sent = writer.join().expect("sender thread panicked");
            let reply = reply?;
            sent.map_err(|e| socket_error(Call::Send, &what, &e))?;
            Ok(reply)
        })
    }

    /// Reads until `len` bytes have come back: on a stream, one reply may arrive in many
    /// reads, and one read may hold parts of two replies.
    fn read_reply(&self, len: usize) -> Result<Vec<u8>> {
        let mut reply = vec![0u8; len];
        let mut got = 0;
        while got < len {
            match self.conn.recv(&mut reply[got..]) {
                Ok(Received::Data(n)) => got += n,
                Ok(Received::Closed | Received::Truncated(_)) => {
                    return Err(anyhow!(
                        "{}: the server closed the connection after {got} of {len} reply bytes",
                        self.target
                    ));
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(socket_error(Call::Recv, &self.target.to_string(), &e)),
            }
        }
        Ok(reply)
    }

    fn exchange_datagram(&self, msg: &[u8]) -> Result<Vec<u8>, Failure> {
        let what = self.target.to_string();
        let Patience { timeout, retries } = self.patience;
        let refused = || {
            Failure::NoAnswer(anyhow!(
                "nothing is listening on {what}: the kernel reported the datagram \
                 undeliverable (ICMP port unreachable, or no Unix socket bound); is the server \
                 running?"
            ))
        };
        let mut buf = vec![0u8; MAX_MESSAGE];
        for attempt in 0..=retries {
            if attempt > 0 {
                debug!(
                    "{what}: no reply within {timeout:?}; sending again ({attempt} of {retries})"
                );
            }
            match self.conn.send_all(msg) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => return Err(refused()),
                Err(e) => return Err(Failure::Fatal(socket_error(Call::Send, &what, &e))),
            }
            let deadline = Instant::now() + timeout;
            loop {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                self.conn
                    .socket()
                    .set_read_timeout(Some(left))
                    .map_err(|e| Failure::Fatal(e.into()))?;
                match self.conn.recv(&mut buf) {
                    // A reply that does not match is a late answer to an earlier try.
                    Ok(Received::Data(n)) if buf[..n].eq_ignore_ascii_case(msg) => {
                        return Ok(buf[..n].to_vec());
                    }
                    Ok(_) => debug!("{what}: ignored a reply that does not match this message"),
                    Err(e)
                        if matches!(
                            e.kind(),
                            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                        ) =>
                    {
                        break;
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => return Err(refused()),
                    Err(e) => return Err(Failure::Fatal(socket_error(Call::Recv, &what, &e))),
                }
            }
        }
        Err(Failure::NoAnswer(anyhow!(
            "no reply from {what} after {} tries, {timeout:?} each. Nobody retransmits a lost \
             datagram: the request or the reply may have been lost, or no server is there. \
             Check the server, or raise --timeout / --retries",
            retries + 1
        )))
    }
}

/// A client for an endpoint that may stand for several addresses: each is tried in turn
/// until one answers; after that the client stays with it.
pub struct Session {
    candidates: Vec<Endpoint>,
    next: usize,
    current: Option<Exchanger>,
    answered: bool,
    opts: SocketOptions,
    patience: Patience,
}

impl Session {
    /// Resolves `endpoint` and connects to the first address that accepts.
    pub fn open(endpoint: &Endpoint, opts: SocketOptions, patience: Patience) -> Result<Session> {
        let mut session = Session {
            candidates: transport::candidates(endpoint)?,
            next: 0,
            current: None,
            answered: false,
            opts,
            patience,
        };
        session.advance()?;
        Ok(session)
    }

    /// Connects to the next candidate that accepts a connection.
    fn advance(&mut self) -> Result<()> {
        let mut last = None;
        while let Some(target) = self.candidates.get(self.next) {
            self.next += 1;
            match Exchanger::connect(target, &self.opts, self.patience) {
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

    pub fn exchange(&mut self, msg: &[u8]) -> Result<Vec<u8>> {
        loop {
            let client = self
                .current
                .as_ref()
                .expect("a session is always connected");
            match client.exchange(msg) {
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

    pub fn target(&self) -> &Endpoint {
        self.current.as_ref().expect("connected").target()
    }
}
