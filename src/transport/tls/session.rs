//! The TLS session of one connection: rustls between the socket's bytes and the plaintext
//! the message rules ([`crate::transport::message::Carrier`]'s `Bytes` and `Frames`) cut
//! into messages. It works on blocking and non-blocking sockets alike: ciphertext is read
//! and written with the connection's own recv(2) and send(2), and a send that would block
//! keeps its encrypted bytes until the caller offers the same plaintext again.
//!
//! Two threads may share a connection (one reads while the other writes): the rustls state
//! is locked only while bytes pass through it, never across a blocking system call, and
//! sends are serialised by a lock of their own so records leave in the order made.

use std::io::{self, Read, Write};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use socket2::Socket;
use tracing::debug;

use super::describe_error;
use super::records::Records;
use crate::transport::calls;

/// How long a handshake may take before the connection is closed.
pub(crate) const HANDSHAKE_TIME: Duration = Duration::from_secs(10);

/// Why a server ends a client's connection in the handshake, as far as the client can tell:
/// a server refusing a source at its cap of handshakes in progress closes at accept (a
/// reset when the ClientHello arrived first), as a server stopping does.
const ENDED_IN_HANDSHAKE: &str = "it may be refusing this source for too many TLS handshakes \
    in progress from it (or by another of its limits or rules), it may not speak TLS, or it \
    stopped; its log says which";

/// Ciphertext read per recv(2): one full record (16 KiB of data and its overhead), so the
/// plaintext one read yields always fits rustls's receive buffer.
const READ_SIZE: usize = 16 * 1024 + 512;

/// Plaintext encrypted per send: one record's worth.
const WRITE_CHUNK: usize = 16 * 1024;

/// A connection's TLS state.
pub(crate) struct Session {
    state: Mutex<State>,
    /// Held by whoever is sending, so records go out in the order they were made.
    sending: Mutex<Outgoing>,
    /// When the handshake must be done.
    deadline: Instant,
    peer: String,
}

struct State {
    tls: rustls::Connection,
    /// Whether the handshake's result was logged.
    told: bool,
    /// The peer's ciphertext ended (recv returned 0).
    eof: bool,
    /// SO_RCVTIMEO before the handshake shortened it to the handshake's deadline.
    saved_timeout: Option<Option<Duration>>,
    /// Where the peer's ciphertext is within its records.
    records_in: Records,
    records_out: Records,
    /// When the peer's record under way began (its first byte came): none of its plaintext
    /// is readable before its last byte, however slowly the bytes between come.
    record_began: Option<Instant>,
    /// When the first record the last read finished began: the plaintext it yielded was
    /// under way since then.
    finished_began: Option<Instant>,
    /// How long a record may take from its first byte to its last, once the handshake is
    /// done (the handshake has its own deadline).
    record_limit: Option<RecordLimit>,
    /// Ciphertext read and not yet taken by rustls (at most one read's).
    unread: Vec<u8>,
    /// A server's place among the handshakes in progress, given back once it is done.
    slot: Option<super::pending::Slot>,
}

/// A server's bound on a record under way.
#[derive(Clone, Copy)]
struct RecordLimit {
    limit: Duration,
    /// A blocking socket: each read while a record is under way waits no longer than its
    /// deadline.
    blocking: bool,
    /// The flag the limit comes from, for the line that ends a connection.
    flag: &'static str,
}

/// Encrypted bytes made and not yet taken by the socket, and how much of the plaintext the
/// caller offered they stand for.
#[derive(Default)]
struct Outgoing {
    wire: Vec<u8>,
    sent: usize,
    owed: usize,
}

impl Session {
    /// A server's session with the client of `sock`, counted as `source`: refused (an
    /// error) when too many handshakes are in progress (see [`super::pending`]).
    pub(crate) fn server(
        config: Arc<rustls::ServerConfig>,
        peer: &str,
        source: crate::endpoint::Share,
        sock: &Socket,
    ) -> io::Result<Session> {
        let slot = super::pending::take(source, sock, peer)?;
        let tls = rustls::ServerConnection::new(config).map_err(io::Error::other)?;
        let session = Session::new(tls.into(), peer);
        session.state().slot = Some(slot);
        Ok(session)
    }

    pub(crate) fn client(
        config: Arc<rustls::ClientConfig>,
        name: rustls::pki_types::ServerName<'static>,
        peer: &str,
    ) -> io::Result<Session> {
        let tls = rustls::ClientConnection::new(config, name).map_err(io::Error::other)?;
        Ok(Session::new(tls.into(), peer))
    }

    fn new(tls: rustls::Connection, peer: &str) -> Session {
        Session {
            state: Mutex::new(State {
                tls,
                told: false,
                eof: false,
                saved_timeout: None,
                records_in: Records::default(),
                records_out: Records::default(),
                record_began: None,
                finished_began: None,
                record_limit: None,
                unread: Vec::new(),
                slot: None,
            }),
            sending: Mutex::new(Outgoing::default()),
            deadline: Instant::now() + HANDSHAKE_TIME,
            peer: peer.to_string(),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether the handshake is still going on past its deadline (a peer that connected
    /// and sent nothing, or half a hello).
    pub(crate) fn overdue(&self) -> bool {
        Instant::now() >= self.deadline && self.state().tls.is_handshaking()
    }

    /// How long the handshake may still take; None once it is done.
    pub(crate) fn handshake_left(&self) -> Option<Duration> {
        self.state()
            .tls
            .is_handshaking()
            .then(|| self.deadline.saturating_duration_since(Instant::now()))
    }

    /// From now on every record the peer sends must be whole within `limit` of its first
    /// byte (`flag` names the setting in the line that ends a connection); on a `blocking`
    /// socket each read while a record is under way waits no longer than its deadline.
    pub(crate) fn limit_records(&self, limit: Duration, blocking: bool, flag: &'static str) {
        self.state().record_limit = Some(RecordLimit {
            limit,
            blocking,
            flag,
        });
    }

    /// When the peer's record under way must be whole, if one is under way and limited
    /// (and the handshake, which has its own deadline, is done).
    pub(crate) fn record_deadline(&self) -> Option<Instant> {
        record_deadline(&self.state())
    }

    /// When the first record whose plaintext the last read yielded began: a frame that
    /// plaintext starts counts its time from then.
    pub(crate) fn plaintext_since(&self) -> Option<Instant> {
        self.state().finished_began
    }

    /// Runs the handshake to its end on a blocking socket (a client right after connect).
    pub(crate) fn handshake(&self, sock: &Socket) -> io::Result<()> {
        let before = sock.read_timeout()?;
        sock.set_read_timeout(Some(HANDSHAKE_TIME))?;
        // Whether the server sent anything: silence is a server that stopped answering (or
        // a path that drops), bytes that make no handshake another protocol.
        let mut heard = false;
        let result = (|| {
            while self.state().tls.is_handshaking() {
                self.flush(sock, true)?;
                if !self.state().tls.is_handshaking() {
                    break;
                }
                if !self.read_more(sock)? {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!(
                            "the server closed the connection during the TLS handshake: \
                             {ENDED_IN_HANDSHAKE}"
                        ),
                    ));
                }
                heard = true;
            }
            self.flush(sock, true)
        })();
        sock.set_read_timeout(before.map(calls::timeout_value))?;
        result.map_err(|e| match e.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => {
                let said = handshake_timed_out(heard);
                match heard {
                    // Nothing came back: a stall (the lab leaves such a row out).
                    false => {
                        io::Error::new(io::ErrorKind::TimedOut, crate::error::NoHandshake(said))
                    }
                    true => io::Error::new(io::ErrorKind::TimedOut, said),
                }
            }
            _ => ended_by_server(e),
        })
    }

    /// A refused client's ciphertext, read by the caller, handed to rustls and what the
    /// handshake makes in answer sent without waiting: true once the handshake is done,
    /// when plaintext written before it (the busy line) has gone out too. Its plaintext is
    /// never read: the caller reads the socket itself, so every byte counts against its
    /// bounds however the client frames its records.
    pub(crate) fn feed(&self, sock: &Socket, bytes: &[u8]) -> io::Result<bool> {
        {
            let mut state = self.state();
            note_records(&mut state, bytes);
            self.take_ciphertext(sock, &mut state, bytes)?;
        }
        self.flush(sock, false)?;
        Ok(!self.state().tls.is_handshaking())
    }

    /// Plaintext into `buf`: what rustls holds already, else one recv(2) of ciphertext.
    /// Ok(0) is the end of the peer's data.
    pub(crate) fn recv(&self, sock: &Socket, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            {
                let mut state = self.state();
                match state.tls.reader().read(buf) {
                    Ok(n) if n > 0 && !state.unread.is_empty() => {
                        return self.read_on(sock, &mut state, buf, n);
                    }
                    Ok(n) => return Ok(n),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    // No close_notify: many peers (nc, socat) just close the socket.
                    Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(0),
                    Err(e) => return Err(e),
                }
                if state.eof {
                    return Ok(0);
                }
                if state.tls.is_handshaking() && Instant::now() >= self.deadline {
                    return Err(self.too_slow());
                }
                if record_deadline(&state).is_some_and(|due| Instant::now() >= due) {
                    return Err(record_too_slow(&state));
                }
            }
            // Handshake replies (and alerts) leave before waiting for more.
            self.flush(sock, false)?;
            if !self.read_more(sock)? {
                self.state().eof = true;
            }
        }
    }

    fn too_slow(&self) -> io::Error {
        io::Error::new(
            io::ErrorKind::TimedOut,
            format!(
                "TLS handshake not finished within {}s",
                HANDSHAKE_TIME.as_secs()
            ),
        )
    }

    /// Ciphertext an earlier read left over, else one recv(2) of it, handed to rustls;
    /// false when the peer closed.
    fn read_more(&self, sock: &Socket) -> io::Result<bool> {
        {
            let mut state = self.state();
            if !state.unread.is_empty() {
                let waiting = std::mem::take(&mut state.unread);
                self.take_ciphertext(sock, &mut state, &waiting)?;
                return Ok(true);
            }
        }
        self.limit_wait(sock)?;
        let mut raw = [0u8; READ_SIZE];
        let n = self.recv_ciphertext(sock, &mut raw)?;
        let mut state = self.state();
        note_records(&mut state, &raw[..n]);
        self.take_ciphertext(sock, &mut state, &raw[..n])?;
        Ok(n > 0)
    }

    /// Plaintext `n` bytes into `buf` already, and ciphertext left over: taken as far as
    /// `buf` has room, so a read shorter than its buffer leaves nothing behind that the
    /// socket's readiness would not show.
    fn read_on(
        &self,
        sock: &Socket,
        state: &mut State,
        buf: &mut [u8],
        mut n: usize,
    ) -> io::Result<usize> {
        while n < buf.len() && !state.unread.is_empty() {
            let waiting = std::mem::take(&mut state.unread);
            self.take_ciphertext(sock, state, &waiting)?;
            match state.tls.reader().read(&mut buf[n..]) {
                Ok(more) => n += more,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                // The end, or an error: the next recv returns it.
                Err(_) => break,
            }
        }
        Ok(n)
    }

    /// Hands ciphertext to rustls. What it cannot take yet, while the plaintext it holds
    /// is over its limit (16 KiB: a read may finish one record and all of the next), is
    /// kept in `unread` until that plaintext is read.
    fn take_ciphertext(&self, sock: &Socket, state: &mut State, bytes: &[u8]) -> io::Result<()> {
        let mut rest = bytes;
        loop {
            let read = state.tls.read_tls(&mut rest);
            let waiting = match state.tls.process_new_packets() {
                Ok(io) => io.plaintext_bytes_to_read(),
                Err(e) => return Err(self.refuse(sock, state, &e)),
            };
            match read {
                Err(_) if !rest.is_empty() && waiting > 0 => {
                    state.unread.extend_from_slice(rest);
                    break;
                }
                Err(_) if rest.is_empty() => break,
                Err(e) => return Err(e),
                // After the peer's close_notify nothing more is read.
                Ok(0) => break,
                _ if rest.is_empty() => break,
                _ => {}
            }
        }
        self.settled(sock, state)
    }

    /// Sends the alert rustls queued for `e`, which tells the peer why before the
    /// connection ends; the error, worded for this side.
    fn refuse(&self, sock: &Socket, state: &mut State, e: &rustls::Error) -> io::Error {
        let mut wire = Vec::new();
        while state.tls.wants_write() && state.tls.write_tls(&mut wire).is_ok() {}
        if crate::explain::on() {
            state.records_out.narrate("sending", &wire);
        }
        let _ = sock.send_with_flags(&wire, libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT);
        let why = match e {
            // Past the handshake the peer spoke TLS: a bad record is not a plaintext peer.
            rustls::Error::InvalidMessage(_) if !state.tls.is_handshaking() => format!(
                "a malformed TLS record after the handshake ({e}); the connection ends with an \
                 alert"
            ),
            _ => describe_error(e, matches!(state.tls, rustls::Connection::Client(_))),
        };
        io::Error::new(io::ErrorKind::InvalidData, why)
    }

    /// Once the handshake is done: its result logged, and the receive timeout it
    /// shortened put back.
    fn settled(&self, sock: &Socket, state: &mut State) -> io::Result<()> {
        if !state.told && !state.tls.is_handshaking() {
            state.told = true;
            state.slot = None;
            debug!("{}: {}", self.peer, negotiated(&state.tls));
            if let Some(before) = state.saved_timeout.take() {
                sock.set_read_timeout(before.map(calls::timeout_value))?;
            }
        }
        Ok(())
    }

    /// One recv(2) of ciphertext; on a blocking socket, while a record is under way, the
    /// wait is cut to the record's deadline (the socket's own timeout put back after).
    fn recv_ciphertext(&self, sock: &Socket, raw: &mut [u8]) -> io::Result<usize> {
        let put_back = self.record_wait(sock)?;
        let got = loop {
            match calls::recv(sock, as_uninit(raw), 0) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                other => break other,
            }
        };
        if let Some(own) = put_back {
            sock.set_read_timeout(own.map(calls::timeout_value))?;
        }
        // A blocking recv's timeout was set to a deadline (it may wake a tick early); a
        // non-blocking one just has nothing yet.
        let soon = Instant::now() + Duration::from_millis(50);
        match got {
            Err(e) if crate::transport::is_timeout(&e) && self.state().tls.is_handshaking() => {
                if soon >= self.deadline {
                    return Err(self.too_slow());
                }
                Err(e)
            }
            Err(e) if crate::transport::is_timeout(&e) => {
                let state = self.state();
                match record_deadline(&state) {
                    Some(due) if soon >= due => Err(record_too_slow(&state)),
                    _ => Err(e),
                }
            }
            other => other,
        }
    }

    /// On a blocking socket with a limited record under way: SO_RCVTIMEO cut to the time
    /// the record has left. Returns the timeout to put back after the read, if it was cut.
    fn record_wait(&self, sock: &Socket) -> io::Result<Option<Option<Duration>>> {
        let due = {
            let state = self.state();
            match (state.record_limit, record_deadline(&state)) {
                (Some(limit), Some(due)) if limit.blocking => due,
                _ => return Ok(None),
            }
        };
        let left = due.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(record_too_slow(&self.state()));
        }
        let own = sock.read_timeout()?;
        if own.is_some_and(|own| own <= left) {
            return Ok(None);
        }
        // At least a millisecond: a timeout of 0 would mean no timeout at all.
        sock.set_read_timeout(Some(calls::timeout_value(left)))?;
        Ok(Some(own))
    }

    /// During the handshake a blocking recv waits no longer than the handshake's deadline
    /// (the timeout a server set before is put back once the handshake is done).
    fn limit_wait(&self, sock: &Socket) -> io::Result<()> {
        let mut state = self.state();
        if !state.tls.is_handshaking() {
            return Ok(());
        }
        if state.saved_timeout.is_none() {
            state.saved_timeout = Some(sock.read_timeout()?);
        }
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(self.too_slow());
        }
        sock.set_read_timeout(Some(calls::timeout_value(left)))
    }

    /// Sends what rustls has made (handshake messages, alerts). `wait`: on a blocking socket
    /// wait until it is all taken; else leave what does not fit for the next send.
    fn flush(&self, sock: &Socket, wait: bool) -> io::Result<()> {
        let Ok(mut out) = self.sending.try_lock() else {
            // A sender is at work: it takes these records along with its own.
            return Ok(());
        };
        self.take_wire(&mut out);
        match write_out(sock, &mut out) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock && !wait => Ok(()),
            other => other,
        }
    }

    /// Moves the records rustls made into `out`, narrated when --explain is on.
    fn take_wire(&self, out: &mut Outgoing) {
        let mut state = self.state();
        let state = &mut *state;
        let start = out.wire.len();
        while state.tls.wants_write() {
            if state.tls.write_tls(&mut out.wire).is_err() {
                break;
            }
        }
        if crate::explain::on() && out.wire.len() > start {
            state.records_out.narrate("sending", &out.wire[start..]);
        }
    }

    /// Encrypts and sends some of `buf`: how many of its bytes went out. On a socket that
    /// would block, `WouldBlock` with the records kept; the caller offers the same bytes
    /// again, and they count as sent once their records are all out.
    pub(crate) fn send_some(&self, sock: &Socket, buf: &[u8]) -> io::Result<usize> {
        let mut out = self.sending.lock().unwrap_or_else(|e| e.into_inner());
        self.take_wire(&mut out);
        write_out(sock, &mut out)?;
        if out.owed > 0 {
            self.replies_taken();
            return Ok(std::mem::take(&mut out.owed).min(buf.len()));
        }
        let chunk = &buf[..buf.len().min(WRITE_CHUNK)];
        let taken = {
            let mut state = self.state();
            if state.tls.is_handshaking() && Instant::now() >= self.deadline {
                return Err(self.too_slow());
            }
            state.tls.writer().write(chunk)?
        };
        self.take_wire(&mut out);
        match write_out(sock, &mut out) {
            Ok(()) => {
                self.replies_taken();
                Ok(taken)
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                out.owed = taken;
                Err(e)
            }
            Err(e) => Err(e),
        }
    }

    /// The peer took a reply: a record under way has its time from now. A server whose
    /// replies wait (its peer reads them late) does not read meanwhile, and the rest of
    /// the record may wait in the socket. Replies come only from records whole, so a peer
    /// gains this only while replies to what it sent before wait.
    fn replies_taken(&self) {
        let mut state = self.state();
        if state.record_began.is_some() {
            state.record_began = Some(Instant::now());
        }
    }

    /// Encrypts and sends all of `buf`, waiting on a blocking socket.
    pub(crate) fn send_all(&self, sock: &Socket, mut buf: &[u8]) -> io::Result<()> {
        while !buf.is_empty() {
            match self.send_some(sock, buf) {
                Ok(n) => buf = &buf[n..],
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Says goodbye (close_notify) before the sending half shuts.
    pub(crate) fn close_notify(&self, sock: &Socket) {
        self.state().tls.send_close_notify();
        let _ = self.flush(sock, false);
    }

    /// close_notify before the socket closes, if the socket takes it at once: a server
    /// ending a connection never waits for a peer that does not read.
    pub(crate) fn goodbye(&self, sock: &Socket) {
        let Ok(mut out) = self.sending.try_lock() else {
            return;
        };
        self.state().tls.send_close_notify();
        self.take_wire(&mut out);
        let _ = sock.send_with_flags(
            &out.wire[out.sent..],
            libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT,
        );
    }
}

/// Follows the peer's records through `bytes` (narrated with --explain): when the record
/// under way began, and when the first record these bytes finished began.
/// Why a client's handshake ran out of time: the server sent nothing at all (it stopped
/// answering, or something on the path drops its packets), or bytes that never made a TLS
/// handshake (another protocol's answer, shorter than a record's header).
fn handshake_timed_out(heard: bool) -> String {
    let secs = HANDSHAKE_TIME.as_secs();
    match heard {
        false => format!(
            "no TLS handshake within {secs}s: the server sent nothing back (busy or stopped, \
             or something on the path drops its packets)"
        ),
        true => format!(
            "no whole TLS handshake within {secs}s, only bytes that make none: is the server \
             speaking TLS?"
        ),
    }
}

fn note_records(state: &mut State, bytes: &[u8]) {
    let way = crate::explain::on().then_some("received");
    let began = state.record_began;
    let ended = state.records_in.pass(way, bytes);
    if bytes.is_empty() {
        return;
    }
    let now = Instant::now();
    if ended > 0 {
        state.finished_began = Some(began.unwrap_or(now));
    }
    state.record_began = match state.records_in.under_way() {
        false => None,
        // A record that began in these bytes, after the last one they finished.
        true if ended > 0 => Some(now),
        true => Some(began.unwrap_or(now)),
    };
}

/// A client's handshake error `e`, with why the server may have reset the connection when
/// it did (ECONNRESET, or EPIPE: the reset came first).
fn ended_by_server(e: io::Error) -> io::Error {
    use nix::errno::Errno;
    match e.raw_os_error().map(Errno::from_raw) {
        Some(errno @ (Errno::ECONNRESET | Errno::EPIPE)) => crate::error::Advised::io(
            errno,
            format!(
                "the server ended the connection during the TLS handshake: {ENDED_IN_HANDSHAKE}"
            ),
        ),
        _ => e,
    }
}

/// When the record under way must be whole: limited, begun, and past the handshake.
fn record_deadline(state: &State) -> Option<Instant> {
    let limit = state.record_limit?;
    let began = state.record_began?;
    (!state.tls.is_handshaking()).then_some(began + limit.limit)
}

fn record_too_slow(state: &State) -> io::Error {
    let limit = state.record_limit.map_or(Duration::ZERO, |l| l.limit);
    let flag = state.record_limit.map_or("--frame-timeout", |l| l.flag);
    io::Error::new(
        io::ErrorKind::TimedOut,
        format!(
            "a TLS record was still unfinished {limit:?} after its first byte came (its \
             plaintext comes only with its last byte; a byte now and then does not hold a \
             connection; {flag})"
        ),
    )
}

/// Writes `out`'s records to the socket until all are taken or it would block.
fn write_out(sock: &Socket, out: &mut Outgoing) -> io::Result<()> {
    while out.sent < out.wire.len() {
        match calls::send(sock, &out.wire[out.sent..]) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => out.sent += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    out.wire.clear();
    out.sent = 0;
    Ok(())
}

/// What the handshake settled: version, cipher suite, ALPN, the peer's certificate.
fn negotiated(tls: &rustls::Connection) -> String {
    let version = tls
        .protocol_version()
        .map_or("TLS".to_string(), |v| match v {
            rustls::ProtocolVersion::TLSv1_3 => "TLS 1.3".to_string(),
            rustls::ProtocolVersion::TLSv1_2 => "TLS 1.2".to_string(),
            other => format!("{other:?}"),
        });
    let suite = tls
        .negotiated_cipher_suite()
        .map_or("(no suite)".to_string(), |s| format!("{:?}", s.suite()));
    let peer = tls
        .peer_certificates()
        .and_then(|c| c.first())
        .map(|der| der.as_ref());
    super::settled_line(&format!("{version}, {suite}"), tls.alpn_protocol(), peer)
}

fn as_uninit(buf: &mut [u8]) -> &mut [std::mem::MaybeUninit<u8>] {
    // Safety: `MaybeUninit<u8>` has the layout of `u8`, and the kernel only ever writes
    // initialised bytes into the slice, so it stays valid as `[u8]` afterwards.
    unsafe { &mut *(buf as *mut [u8] as *mut [std::mem::MaybeUninit<u8>]) }
}
