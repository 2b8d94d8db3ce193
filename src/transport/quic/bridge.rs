//! The QUIC thread's half of each connection: pumps between a quinn connection and the
//! Unix socket pair whose other end netecho reads and writes as a [`super::Conn`].
//!
//! A stream per message: each stream the peer opens is read to its end (at most
//! [`MAX_MESSAGE`] bytes) and goes to netecho as one SOCK_SEQPACKET message; each message
//! netecho writes back answers the oldest stream still waiting, on that stream. The client
//! does the mirror image: a stream per message it is given, each reply read to the stream's
//! end. Streams finish in any order, so one held up by a lost packet holds up only itself.

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use socket2::{Domain, Socket, Type};
use tokio::io::AsyncWriteExt;
use tokio::io::unix::AsyncFd;
use tokio::sync::{Semaphore, mpsc};
use tracing::{debug, info, warn};

use super::{
    MAX_STREAMS, Place, Places, QuicMode, SERVER_HANDSHAKE, Sources, hand_off, handoff_message,
    refuse,
};
use crate::transport::MAX_MESSAGE;

/// Application error codes a netecho endpoint closes or resets with.
const NO_ERROR: u32 = 0;
const TOO_LONG: u32 = 2;
const UNFINISHED: u32 = 3;
/// A client closes with this when a reply stream failed (its reason told to netecho).
const STREAM_FAILED: u32 = 4;
/// A stream past the first where a connection carries one (`--framing`, files, exec).
const ONE_STREAM: u32 = 5;

/// Why a client's exchanges ended, set once by the QUIC thread before it hangs up the pair,
/// so that netecho reads the reason with the end instead of a bare close.
pub(super) type Failure = Arc<OnceLock<String>>;

/// A socket pair for a connection of `mode`: netecho's end and the QUIC thread's.
pub(super) fn pair(mode: QuicMode) -> io::Result<(Socket, Socket)> {
    let ty = match mode {
        QuicMode::Stream => Type::STREAM,
        QuicMode::Messages | QuicMode::Datagrams => Type::SEQPACKET,
    };
    let (ours, theirs) = Socket::pair(Domain::UNIX, ty, None)?;
    theirs.set_nonblocking(true)?;
    theirs.set_cloexec(true)?;
    ours.set_cloexec(true)?;
    Ok((ours, theirs))
}

/// The largest message a connection of `mode` carries whole.
pub(super) fn max_message(conn: &quinn::Connection, mode: QuicMode) -> usize {
    match mode {
        QuicMode::Datagrams => conn.max_datagram_size().unwrap_or(0),
        _ => MAX_MESSAGE,
    }
}

/// The QUIC thread's end of a SOCK_SEQPACKET pair: whole messages, asynchronously.
struct Packets(AsyncFd<Socket>);

/// What one receive on the pair gave.
enum Got {
    Message(usize),
    /// netecho closed its end.
    End,
    /// A message longer than the buffer: not passed on.
    TooLong(usize),
}

impl Packets {
    fn new(sock: Socket) -> io::Result<Packets> {
        // Safety: the socket owns its descriptor, open until the AsyncFd drops it.
        unsafe { AsyncFd::register(sock) }
            .map(Packets)
            .map_err(io::Error::from)
    }

    async fn recv(&self, buf: &mut [u8]) -> io::Result<Got> {
        use nix::sys::socket::{MsgFlags, recv};
        use std::os::fd::AsRawFd;
        loop {
            let mut guard = self.0.readable().await?;
            // A 0-byte read is the end only when the peer hung up; else an empty message.
            let hung_up = guard.ready().is_read_closed();
            let got = guard.try_io(|fd| {
                recv(fd.get_ref().as_raw_fd(), buf, MsgFlags::MSG_TRUNC).map_err(io::Error::from)
            });
            match got {
                Ok(Ok(0)) if hung_up => return Ok(Got::End),
                Ok(Ok(n)) if n > buf.len() => return Ok(Got::TooLong(n)),
                Ok(Ok(n)) => return Ok(Got::Message(n)),
                Ok(Err(e)) if e.kind() == io::ErrorKind::ConnectionReset => return Ok(Got::End),
                Ok(Err(e)) => return Err(e),
                Err(_would_block) => {}
            }
        }
    }

    /// shutdown(2) both ways: netecho reads the end, and so does [`Packets::recv`] here.
    fn hang_up(&self) {
        let _ = self.0.get_ref().shutdown(std::net::Shutdown::Both);
    }

    async fn send(&self, msg: &[u8]) -> io::Result<()> {
        use nix::sys::socket::{MsgFlags, send};
        use std::os::fd::AsRawFd;
        loop {
            let mut guard = self.0.writable().await?;
            let sent = guard.try_io(|fd| {
                send(fd.get_ref().as_raw_fd(), msg, MsgFlags::MSG_NOSIGNAL).map_err(io::Error::from)
            });
            if let Ok(result) = sent {
                return result.map(|_| ());
            }
        }
    }
}

/// The next message netecho wrote on the pair, its length; `None` once netecho closed its
/// end or the connection is gone. One over [`MAX_MESSAGE`] is said and dropped.
async fn next_message(
    pair: &Packets,
    buf: &mut [u8],
    conn: &quinn::Connection,
) -> io::Result<Option<usize>> {
    loop {
        let got = tokio::select! {
            got = pair.recv(buf) => got?,
            _ = conn.closed() => return Ok(None),
        };
        match got {
            Got::Message(n) => return Ok(Some(n)),
            Got::End => return Ok(None),
            Got::TooLong(n) => warn!(
                "quic {}: a {n}-byte message is over {MAX_MESSAGE} bytes; dropped",
                conn.remote_address()
            ),
        }
    }
}

/// Accepts QUIC connections until the endpoint closes: each handshake within
/// [`SERVER_HANDSHAKE`], then handed to the server's model and pumped; a stream per
/// message has `message_time` from its first byte to its end. A source `sources` refuses
/// is dropped with no packet sent back; one holding its limit of `places` is refused.
pub(super) async fn accept_loop(
    endpoint: quinn::Endpoint,
    handoff: Socket,
    (mode, message_time): (QuicMode, Option<Duration>),
    (sources, places): (Option<Sources>, Option<Places>),
) {
    let handoff = Arc::new(handoff);
    // Unknown, a port no peer reached: a rule asking who owns a peer's socket refuses it.
    let bound = endpoint
        .local_addr()
        .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
    while let Some(incoming) = endpoint.accept().await {
        if let Some(Sources(admits)) = &sources
            && !admits(incoming.remote_address().ip())
        {
            incoming.ignore();
            continue;
        }
        let Some(incoming) = proven(incoming, sources.is_some()) else {
            continue;
        };
        let Some((incoming, place)) = placed(places.as_ref(), incoming, bound) else {
            continue;
        };
        let handoff = Arc::clone(&handoff);
        tokio::spawn(async move {
            let remote = incoming.remote_address();
            let done = tokio::time::timeout(SERVER_HANDSHAKE, incoming).await;
            static LOG: crate::logging::Throttle = crate::logging::Throttle::new();
            let conn = match done {
                Ok(Ok(conn)) => conn,
                Ok(Err(e)) => {
                    return if let Some(more) = LOG.allow() {
                        warn!("quic {remote}: handshake failed: {}{more}", failure(&e))
                    };
                }
                Err(_) => {
                    return if let Some(more) = LOG.allow() {
                        warn!(
                            "quic {remote}: no handshake within {SERVER_HANDSHAKE:?}; dropped{more}"
                        )
                    };
                }
            };
            if let Err(e) = serve(conn.clone(), &handoff, (mode, message_time), bound).await {
                debug!("quic {remote}: {e}");
            }
            drop(place);
        });
    }
}

/// Refuses a link-local client that has not proven its address: its Retry would fail (the
/// token it echoes names no zone, so it never matches), so a refusal, smaller than the
/// Initial, tells the client at once, and the log says why.
fn refuse_link_local(incoming: quinn::Incoming) {
    static REFUSED: crate::logging::Throttle = crate::logging::Throttle::new();
    if let Some(more) = REFUSED.allow() {
        warn!(
            "quic {}: refused: a link-local client cannot prove its address (a Retry token \
             keeps no zone); give clients this host's global or ULA address{more}",
            incoming.remote_address()
        );
    }
    incoming.refuse();
}

/// `incoming` once its source proved its address; else it is asked to (a Retry) or, a
/// link-local source that cannot be, refused. `gated`: the lab's gate admitted the source.
fn proven(incoming: quinn::Incoming, gated: bool) -> Option<quinn::Incoming> {
    // A source proves its address first (a Retry token: one packet smaller than the
    // Initial, and no state kept): the server's first flight, about three times an
    // Initial, goes only to an address that can receive, so a forged Initial is never
    // answered with more than it carried and cannot pile up handshakes.
    // A link-local source's token cannot be checked (a Retry token keeps no zone, so
    // the address it names never equals the source's): one the gate admitted has proven
    // its address already, by the TCP handshake of its lab run.
    let link_local = matches!(incoming.remote_address(), SocketAddr::V6(a) if a.scope_id() != 0);
    let gated_link_local = gated && link_local;
    if !incoming.remote_address_validated() && link_local && !gated_link_local {
        refuse_link_local(incoming);
        return None;
    }
    if !incoming.remote_address_validated() && !gated_link_local {
        // A sender can cause this line at will: throttled, and with -v only.
        static RETRIED: crate::logging::Throttle = crate::logging::Throttle::new();
        if tracing::enabled!(tracing::Level::DEBUG)
            && let Some(more) = RETRIED.allow()
        {
            debug!(
                "quic {}: a Retry asks it to prove its address first{more}",
                incoming.remote_address()
            );
        }
        let _ = incoming.retry();
        return None;
    }
    Some(incoming)
}

/// A proven peer's place in its source's count (none without `places`), or `None` once it
/// was refused: at once, before the handshake costs anything, in a packet smaller than its
/// Initial (the refusal was logged where it was counted).
fn placed(
    places: Option<&Places>,
    incoming: quinn::Incoming,
    bound: SocketAddr,
) -> Option<(quinn::Incoming, Option<Place>)> {
    let Some(Places(take)) = places else {
        return Some((incoming, None));
    };
    let reached = SocketAddr::new(incoming.local_ip().unwrap_or(bound.ip()), bound.port());
    match take(incoming.remote_address(), reached) {
        Ok(place) => Some((incoming, Some(place))),
        Err(_) => {
            incoming.refuse();
            None
        }
    }
}

/// Why a handshake failed, in words the server's user can act on: a TLS alert in the
/// words of `--tls`. The reason phrase a client sends is left out: it is the client's text
/// (its TLS stack's debug output, or whatever a stranger wants written into this log).
fn failure(e: &quinn::ConnectionError) -> String {
    use quinn::ConnectionError::{ApplicationClosed, ConnectionClosed, TransportError};
    match e {
        ConnectionClosed(close) => match tls_alert(close.error_code) {
            Some(alert) => crate::transport::tls::alert_received(alert, false),
            None => format!(
                "the client closed the connection (QUIC error {:#x})",
                u64::from(close.error_code)
            ),
        },
        // An alert this server sent; QUIC has no handshake without ALPN (RFC 9001 8.1).
        TransportError(t) if tls_alert(t.code) == Some(120.into()) => {
            "the client offered no ALPN protocol netecho speaks: a QUIC client must offer \
             \"netecho\" (aioquic: alpn_protocols=[\"netecho\"])"
                .into()
        }
        ApplicationClosed(close) => format!(
            "the client closed the connection (application code {})",
            close.error_code
        ),
        other => other.to_string(),
    }
}

/// The TLS alert a QUIC error code carries: crypto errors are 0x100 + alert (RFC 9001
/// section 4.8).
pub(super) fn tls_alert(code: quinn::TransportErrorCode) -> Option<rustls::AlertDescription> {
    let code = u64::from(code);
    let alert = code.checked_sub(0x100).filter(|alert| *alert < 0x100)?;
    Some(rustls::AlertDescription::from(alert as u8))
}

/// Hands a new connection to the server's model and pumps it until either side ends it.
/// The model is told the address of ours the peer reached: on an endpoint `bound` to a
/// wildcard address, the destination of its packets (which quinn reads, IP_PKTINFO).
async fn serve(
    conn: quinn::Connection,
    handoff: &Socket,
    (mode, message_time): (QuicMode, Option<Duration>),
    bound: SocketAddr,
) -> io::Result<()> {
    let (service, ours) = pair(mode)?;
    let reached = conn
        .local_ip()
        .map_or(bound, |ip| SocketAddr::new(ip, bound.port()));
    let msg = handoff_message(
        mode,
        max_message(&conn, mode),
        conn.remote_address(),
        reached,
    );
    if let Err(e) = hand_off(handoff, &service, &msg) {
        let why = match e.kind() {
            io::ErrorKind::WouldBlock => "refused: the server has too many connections waiting",
            _ => "refused: the server is stopping",
        };
        refuse(&conn, why);
        return Ok(());
    }
    drop(service);
    let peer = conn.remote_address();
    match mode {
        QuicMode::Messages => serve_messages(conn, Packets::new(ours)?, peer, message_time).await,
        QuicMode::Stream => serve_stream(conn, ours).await,
        QuicMode::Datagrams => datagrams(conn, Packets::new(ours)?).await,
    }
}

/// A stream per message, server side: messages to netecho as their streams end, each reply
/// on the oldest stream still waiting for one.
async fn serve_messages(
    conn: quinn::Connection,
    pair: Packets,
    peer: SocketAddr,
    message_time: Option<Duration>,
) -> io::Result<()> {
    let pair = Arc::new(pair);
    let (waiting_tx, mut waiting) = mpsc::channel::<quinn::SendStream>(MAX_STREAMS as usize);
    let incoming = {
        let (conn, pair) = (conn.clone(), Arc::clone(&pair));
        let taking = take_streams(conn, pair, waiting_tx, peer, message_time);
        tokio::spawn(taking)
    };
    let mut buf = vec![0u8; MAX_MESSAGE];
    loop {
        let Some(n) = next_message(&pair, &mut buf, &conn).await? else {
            break;
        };
        let Some(mut stream) = waiting.recv().await else {
            break;
        };
        let reply = buf[..n].to_vec();
        tokio::spawn(async move {
            if stream.write_all(&reply).await.is_ok() {
                let _ = stream.finish();
            }
        });
    }
    incoming.abort();
    conn.close(NO_ERROR.into(), b"closed");
    Ok(())
}

/// Accepts the peer's streams, reads each to its end (within `message_time` of its first
/// byte, which opened it), and passes the message on with the stream that waits for its
/// reply (in the order they go to netecho).
async fn take_streams(
    conn: quinn::Connection,
    pair: Arc<Packets>,
    waiting: mpsc::Sender<quinn::SendStream>,
    peer: SocketAddr,
    message_time: Option<Duration>,
) {
    let (done_tx, mut done) = mpsc::channel(MAX_STREAMS as usize);
    let reader = tokio::spawn(async move {
        while let Some((send, msg)) = done.recv().await {
            let msg: Vec<u8> = msg;
            if waiting.send(send).await.is_err() || pair.send(&msg).await.is_err() {
                break;
            }
        }
        // The connection is gone or netecho closed: netecho reads the end.
        drop(pair);
    });
    loop {
        let (send, mut recv) = match conn.accept_bi().await {
            Ok(streams) => streams,
            Err(e) => {
                debug!("quic {peer}: {e}");
                break;
            }
        };
        let done_tx = done_tx.clone();
        tokio::spawn(async move {
            let Some(read) = within(message_time, recv.read_to_end(MAX_MESSAGE)).await else {
                unfinished(peer, message_time, &mut recv, send);
                return;
            };
            match read {
                Ok(msg) if msg.is_empty() => {
                    debug!("quic {peer}: an empty stream carries no message; reset");
                    let mut send = send;
                    let _ = send.reset(NO_ERROR.into());
                }
                Ok(msg) => {
                    let _ = done_tx.send((send, msg)).await;
                }
                Err(quinn::ReadToEndError::TooLong) => {
                    warn!(
                        "quic {peer}: a stream longer than {MAX_MESSAGE} bytes (one stream is one \
                         message; --framing makes one stream per connection); reset"
                    );
                    let _ = recv.stop(TOO_LONG.into());
                    let mut send = send;
                    let _ = send.reset(TOO_LONG.into());
                }
                Err(e) => debug!("quic {peer}: a stream ended early: {e}"),
            }
        });
    }
    drop(done_tx);
    let _ = reader.await;
}

/// `work`'s result, or None when it takes longer than `limit`.
async fn within<T>(limit: Option<Duration>, work: impl Future<Output = T>) -> Option<T> {
    match limit {
        Some(limit) => tokio::time::timeout(limit, work).await.ok(),
        None => Some(work.await),
    }
}

/// Drops a message whose stream did not end within its time, as a frame past its deadline
/// is: netecho sees a message only once its stream ends, so a peer sending a byte now and
/// then of one would hold the stream, and its buffer, for ever. Only that stream is stopped
/// and reset; the connection's other streams are messages of their own and go on.
fn unfinished(
    peer: SocketAddr,
    limit: Option<Duration>,
    recv: &mut quinn::RecvStream,
    mut send: quinn::SendStream,
) {
    // A peer can cause this line at will, a stream at a time.
    static LOG: crate::logging::Throttle = crate::logging::Throttle::new();
    if let Some(more) = LOG.allow() {
        let limit = limit.unwrap_or_default();
        warn!(
            "quic {peer}: a message's stream was still unfinished {limit:?} after its first \
             byte came (--frame-timeout, or --idle-timeout when it is off); that stream is \
             reset, the connection's others go on{more}"
        );
    }
    let _ = recv.stop(UNFINISHED.into());
    let _ = send.reset(UNFINISHED.into());
}

/// One stream per connection, server side: the first stream the peer opens, as bytes.
async fn serve_stream(conn: quinn::Connection, ours: Socket) -> io::Result<()> {
    let (send, recv) = match conn.accept_bi().await {
        Ok(streams) => streams,
        Err(e) => {
            debug!("quic {}: {e}", conn.remote_address());
            return Ok(());
        }
    };
    let refusing = tokio::spawn(refuse_more_streams(conn.clone()));
    let pumped = pump_stream(send, recv, ours).await;
    refusing.abort();
    // The peer closes once it has read everything; a peer that never does times out. A
    // service that answered and closed with the input unread (exec's busy line) ends the
    // pump with an error once the peer has its answer: the peer is given a moment to read
    // it, not the idle time, so the place it holds (its source's share) is soon free.
    let wait = match pumped {
        Ok(()) => super::IDLE,
        Err(_) => ANSWERED_WAIT,
    };
    let _ = tokio::time::timeout(wait, conn.closed()).await;
    pumped
}

/// Stops and resets every stream a peer opens past the first on a connection that carries
/// one: unanswered, it would wait for a reply that never comes. Said once per connection
/// (a peer may open hundreds).
async fn refuse_more_streams(conn: quinn::Connection) {
    let mut said = false;
    while let Ok((mut send, mut recv)) = conn.accept_bi().await {
        let _ = recv.stop(ONE_STREAM.into());
        let _ = send.reset(ONE_STREAM.into());
        if !std::mem::replace(&mut said, true) {
            info!(
                "quic {}: a second stream on a connection that carries one (--framing, files, \
                 exec): reset with code {ONE_STREAM}, as is every further one; open a \
                 connection per stream, or serve without --framing for a stream per message",
                conn.remote_address()
            );
        }
    }
}

/// How long a connection whose service ended with its input unread waits for the peer to
/// close, once the peer acknowledged the answer, before it is closed.
const ANSWERED_WAIT: Duration = Duration::from_secs(1);

/// Bytes both ways between a QUIC stream and a SOCK_STREAM pair: an end of one side
/// (FIN, or shutdown on the pair) is passed to the other.
async fn pump_stream(
    mut send: quinn::SendStream,
    mut recv: quinn::RecvStream,
    ours: Socket,
) -> io::Result<()> {
    let std: std::os::unix::net::UnixStream =
        std::os::unix::net::UnixStream::from(std::os::fd::OwnedFd::from(ours));
    let pair = tokio::net::UnixStream::from_std(std)?;
    let (mut from_netecho, mut to_netecho) = pair.into_split();
    let up = async {
        let result = tokio::io::copy(&mut from_netecho, &mut send).await;
        let _ = send.finish();
        // Ended by a reset (a service that closed with input unread after answering): the
        // answer is in the stream, and waits for the peer's acknowledgement before the
        // connection may close, which would discard it.
        if result.is_err() {
            let _ = tokio::time::timeout(super::IDLE, send.stopped()).await;
        }
        result
    };
    let down = async {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match recv.read(&mut buf).await {
                Ok(Some(n)) => to_netecho.write_all(&buf[..n]).await?,
                Ok(None) => break,
                Err(e) => return Err(io::Error::other(e)),
            }
        }
        to_netecho.shutdown().await
    };
    let (up, down) = tokio::join!(up, down);
    up.and(down).map(|_| ())
}

/// Datagrams both ways between the connection and a SOCK_SEQPACKET pair.
async fn datagrams(conn: quinn::Connection, pair: Packets) -> io::Result<()> {
    let pair = Arc::new(pair);
    let down = {
        let (conn, pair) = (conn.clone(), Arc::clone(&pair));
        tokio::spawn(async move {
            while let Ok(datagram) = conn.read_datagram().await {
                if pair.send(&datagram).await.is_err() {
                    break;
                }
            }
        })
    };
    let mut buf = vec![0u8; MAX_MESSAGE];
    while let Some(n) = next_message(&pair, &mut buf, &conn).await? {
        if let Err(e) = conn.send_datagram(Bytes::copy_from_slice(&buf[..n])) {
            info!("quic {}: a datagram not sent: {e}", conn.remote_address());
        }
    }
    down.abort();
    conn.close(NO_ERROR.into(), b"closed");
    Ok(())
}

/// A client connection: a stream per message, one stream, or datagrams, as `mode` says.
/// A reply stream that fails ends them all, its reason in `failure`.
pub(super) async fn client(
    conn: quinn::Connection,
    theirs: Socket,
    mode: QuicMode,
    failure: Failure,
) {
    let result = match mode {
        QuicMode::Messages => match Packets::new(theirs) {
            Ok(pair) => client_messages(conn.clone(), pair, failure).await,
            Err(e) => Err(e),
        },
        QuicMode::Stream => match conn.open_bi().await {
            Ok((send, recv)) => pump_stream(send, recv, theirs).await,
            Err(e) => Err(io::Error::other(e)),
        },
        QuicMode::Datagrams => match Packets::new(theirs) {
            Ok(pair) => datagrams(conn.clone(), pair).await,
            Err(e) => Err(e),
        },
    };
    if let Err(e) = result {
        debug!("quic {}: {e}", conn.remote_address());
    }
}

/// A stream per message, client side: each message netecho sends on a stream of its own,
/// each reply passed back as its stream ends; at most [`MAX_STREAMS`] at once. A stream
/// that fails (its reply too long, or reset) ends the connection with its reason in
/// `failure`: netecho would otherwise wait for a reply that will not come.
async fn client_messages(
    conn: quinn::Connection,
    pair: Packets,
    failure: Failure,
) -> io::Result<()> {
    let pair = Arc::new(pair);
    let slots = Arc::new(Semaphore::new(MAX_STREAMS as usize));
    let mut buf = vec![0u8; MAX_MESSAGE];
    loop {
        let slot = Arc::clone(&slots)
            .acquire_owned()
            .await
            .map_err(io::Error::other)?;
        let Some(n) = next_message(&pair, &mut buf, &conn).await? else {
            break;
        };
        let (conn, pair, msg) = (conn.clone(), Arc::clone(&pair), buf[..n].to_vec());
        let failure = Arc::clone(&failure);
        tokio::spawn(async move {
            let _slot = slot;
            match exchange(&conn, &msg).await {
                Ok(reply) => {
                    let _ = pair.send(&reply).await;
                }
                Err(e) => match stream_fault(&e) {
                    Some(why) => {
                        let _ = failure.set(why);
                        pair.hang_up();
                        conn.close(STREAM_FAILED.into(), b"a reply stream failed");
                    }
                    // The connection's end, which netecho reads as such.
                    None => debug!("quic {}: a stream failed: {e}", conn.remote_address()),
                },
            }
        });
    }
    conn.close(NO_ERROR.into(), b"done");
    Ok(())
}

/// What went wrong with one exchange's streams, worded for the user; None when the
/// connection itself ended (which netecho reads as the end).
fn stream_fault(e: &io::Error) -> Option<String> {
    use quinn::{ReadError, ReadToEndError, WriteError};
    let inner = e.get_ref()?;
    if let Some(read) = inner.downcast_ref::<ReadToEndError>() {
        return match read {
            ReadToEndError::TooLong => Some(format!(
                "the server's reply stream passed {MAX_MESSAGE} bytes (a message is one \
                 stream; not a netecho server?)"
            )),
            ReadToEndError::Read(ReadError::Reset(code)) => Some(format!(
                "the server reset the reply stream ({})",
                code_meaning(*code)
            )),
            _ => None,
        };
    }
    match inner.downcast_ref::<WriteError>()? {
        WriteError::Stopped(code) => Some(format!(
            "the server stopped reading the request's stream ({})",
            code_meaning(*code)
        )),
        _ => None,
    }
}

/// A stream's error code, with what a netecho server means by it.
fn code_meaning(code: quinn::VarInt) -> String {
    let meaning = match u32::try_from(code.into_inner()) {
        Ok(NO_ERROR) => "a stream that carried no message".to_string(),
        Ok(TOO_LONG) => format!("a message over {MAX_MESSAGE} bytes"),
        Ok(UNFINISHED) => "a message not whole within its --frame-timeout".to_string(),
        _ => return format!("code {code}"),
    };
    format!("code {code}: a netecho server resets so {meaning}")
}

/// One request on a stream of its own, and the reply read to that stream's end.
async fn exchange(conn: &quinn::Connection, msg: &[u8]) -> io::Result<Vec<u8>> {
    let (mut send, mut recv) = conn.open_bi().await.map_err(io::Error::other)?;
    send.write_all(msg).await.map_err(io::Error::other)?;
    let _ = send.finish();
    recv.read_to_end(MAX_MESSAGE)
        .await
        .map_err(io::Error::other)
}
