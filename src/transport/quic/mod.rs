//! QUIC (RFC 9000) with quinn: a server is one UDP socket carrying many connections, each a
//! TLS 1.3 handshake (ALPN "netecho") and then streams or datagrams.
//!
//! quinn is asynchronous; netecho is not. Everything QUIC runs on a tokio runtime of its own
//! thread, and each connection reaches the rest of netecho as an ordinary [`Conn`]: one end
//! of a Unix socket pair whose other end the QUIC thread pumps (`bridge.rs`). So every server
//! model, service and client works unchanged, with the socket pair's type saying what a
//! message is:
//! - a stream per message (the default): SOCK_SEQPACKET, one message per stream, the reply on
//!   the stream that asked;
//! - one stream per connection (`--framing`, files, exec): SOCK_STREAM, bytes both ways;
//! - datagrams (`--quic-datagrams`, RFC 9221): messages that may be lost.
//!
//! A server's connections are handed to the model through its [`Listener`]: a SOCK_SEQPACKET
//! pair over which the QUIC thread passes each new connection's socket (SCM_RIGHTS), so
//! accept(2)'s place is taken by recvmsg(2) and every model (a forked child too) maps onto
//! the one endpoint.

mod bridge;
mod guard;
mod process;
mod refused;

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use socket2::{Domain, Socket, Type};
use tracing::warn;

use crate::endpoint::{Address, Proto, SocketKind};

use super::tls::cert::{self, TlsConfig};
use super::tls::{self, TlsEnd};
use super::{Conn, Listener, MAX_MESSAGE, SocketOptions, calls, udp};

/// Streams a peer may have open at once on one connection: requests in flight beyond it
/// wait for the peer's credit (MAX_STREAMS frames), not in netecho's memory.
pub(crate) const MAX_STREAMS: u32 = 256;
/// How long a server waits for a handshake to complete before it drops the connection.
pub(crate) const SERVER_HANDSHAKE: Duration = Duration::from_secs(10);
/// How long a client waits for the handshake, unless told otherwise.
pub(crate) const CLIENT_HANDSHAKE: Duration = Duration::from_secs(5);
/// A connection with no packet for this long is gone (QUIC's idle timeout, both ends).
const IDLE: Duration = Duration::from_secs(30);
/// Bytes a peer may have unread on one connection (all its streams together).
const CONN_WINDOW: u32 = 8 * 1024 * 1024;
/// How long a client's close waits for its CONNECTION_CLOSE to go out (quinn sends it at
/// once; the rest of the draining period is not worth waiting for).
const CLOSING: Duration = Duration::from_millis(2);
const CLOSE_TURNS: usize = 4;
/// Unread datagrams kept per connection, in bytes; past it the oldest are dropped.
const DATAGRAM_BUFFER: usize = 1024 * 1024;

/// How messages travel on a QUIC connection.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum QuicMode {
    /// Each message its own bidirectional stream, the reply on the same stream.
    #[default]
    Messages,
    /// One bidirectional stream for the whole connection, carrying bytes (frames, files).
    Stream,
    /// QUIC DATAGRAM frames (RFC 9221): boundaries kept, never retransmitted.
    Datagrams,
}

impl QuicMode {
    /// The socket type a connection of this mode reaches netecho as.
    pub(crate) fn kind(self) -> SocketKind {
        match self {
            QuicMode::Messages => SocketKind::SeqPacket,
            QuicMode::Stream => SocketKind::Stream,
            QuicMode::Datagrams => SocketKind::Datagram,
        }
    }

    fn code(self) -> u8 {
        self as u8
    }

    fn from_code(code: u8) -> Option<QuicMode> {
        [QuicMode::Messages, QuicMode::Stream, QuicMode::Datagrams]
            .into_iter()
            .find(|m| m.code() == code)
    }

    /// The mode a user's flags ask for: datagrams, a stream when a framing cuts it, else a
    /// stream per message.
    pub(crate) fn asked(framing: super::framing::Framing, datagrams: bool) -> QuicMode {
        match (datagrams, framing) {
            (true, _) => QuicMode::Datagrams,
            (false, super::framing::Framing::None) => QuicMode::Messages,
            (false, _) => QuicMode::Stream,
        }
    }
}

/// What a QUIC endpoint is asked besides its certificate rules (which are TLS's, in
/// [`SocketOptions::tls`]).
#[derive(Clone, Debug, Default)]
pub(crate) struct QuicOptions {
    pub mode: QuicMode,
    /// How long a client waits for the handshake (None: [`CLIENT_HANDSHAKE`]).
    pub handshake: Option<Duration>,
    /// Fresh handshakes a client tries, each within `handshake`, when one gets no answer
    /// (0 or 1: one). For a server known to be up across a lossy path: each new try
    /// starts again from QUIC's first retransmission timeout, not its backed-off one.
    pub handshake_tries: u32,
    /// A server's stream per message: how long a stream may take from its first byte to
    /// its end, past which that stream is reset (None: no limit). netecho sees a
    /// message only once its stream ended, so a peer trickling one shows nothing begun.
    pub message_time: Option<Duration>,
    /// A server's endpoint runs in a process of its own instead of a thread (the fork
    /// model, whose parent must run one thread only; see `process.rs`).
    pub own_process: bool,
    /// The source addresses a server answers at all (None: every one).
    pub sources: Option<Sources>,
    /// A server's count of connections per source (None: no count).
    pub places: Option<Places>,
}

/// A connection's place in its source's count, held while the connection lives.
pub(crate) type Place = Box<dyn std::any::Any + Send>;

/// The server's per-source admission, asked with a peer that proved its address and the
/// address of ours it reached: its [`Place`], or the refusal when its source holds its limit.
#[derive(Clone)]
pub(crate) struct Places(
    pub Arc<dyn Fn(SocketAddr, SocketAddr) -> Result<Place, String> + Send + Sync>,
);

impl std::fmt::Debug for Places {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Places(..)")
    }
}

/// Which source addresses a server's endpoint answers (the lab's turns): a packet from any
/// other is dropped unanswered, before even a Retry, so a refused address learns nothing.
#[derive(Clone)]
pub(crate) struct Sources(pub Arc<dyn Fn(std::net::IpAddr) -> bool + Send + Sync>);

impl std::fmt::Debug for Sources {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sources(..)")
    }
}

/// The runtime every QUIC endpoint of this process runs on, started on first use on a
/// thread of its own named "quic".
fn runtime() -> Result<&'static tokio::runtime::Handle> {
    static RUNTIME: OnceLock<tokio::runtime::Handle> = OnceLock::new();
    if let Some(handle) = RUNTIME.get() {
        return Ok(handle);
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the QUIC runtime")?;
    let handle = rt.handle().clone();
    std::thread::Builder::new()
        .name("quic".into())
        .spawn(move || rt.block_on(std::future::pending::<()>()))
        .context("starting the QUIC thread")?;
    Ok(RUNTIME.get_or_init(|| handle))
}

/// Runs `work` on the QUIC thread and waits for its result.
fn block_on<T: Send + 'static>(work: impl Future<Output = T> + Send + 'static) -> Result<T> {
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    runtime()?.spawn(async move {
        let _ = tx.send(work.await);
    });
    rx.recv().map_err(|_| anyhow!("the QUIC thread is gone"))
}

/// The quinn transport settings both ends use: bounded streams and windows, and datagrams
/// only where `mode` carries them, so a client asking for datagrams from a server without
/// them learns it at the handshake.
fn transport_config(mode: QuicMode) -> quinn::TransportConfig {
    let mut t = quinn::TransportConfig::default();
    t.max_concurrent_bidi_streams(MAX_STREAMS.into())
        .max_concurrent_uni_streams(0u8.into())
        .receive_window(CONN_WINDOW.into())
        .stream_receive_window(((MAX_MESSAGE * 2) as u32).into())
        .datagram_receive_buffer_size((mode == QuicMode::Datagrams).then_some(DATAGRAM_BUFFER))
        .max_idle_timeout(Some(IDLE.try_into().expect("30 s is a valid idle timeout")));
    t
}

/// A std UDP socket bound as `serve --proto udp` would bind it (dual-stack on `[::]`), but
/// without netecho's IP_PKTINFO: quinn asks for what it needs itself, and one control
/// message more (IP_PKTINFO beside IPV6_PKTINFO and IP_TOS, on an IPv4 datagram at a
/// dual-stack socket) overflows the buffer quinn reads them into, cutting the last short.
fn udp_socket(addr: &Address, opts: &SocketOptions) -> Result<(std::net::UdpSocket, SocketAddr)> {
    let bound = udp::bind_plain(addr, opts)?;
    let local = match bound.local() {
        Address::Ip(a) => *a,
        other => return Err(anyhow!("{other}: QUIC needs an IP address")),
    };
    let sock = calls::dup(bound.socket())?;
    sock.set_nonblocking(true)?;
    Ok((sock.into(), local))
}

/// Binds a QUIC server on `addr`: its UDP socket, its certificate, and the listener its
/// connections are accepted from.
pub(crate) fn bind(addr: &Address, opts: &SocketOptions) -> Result<Listener> {
    let (sock, local) = udp_socket(addr, opts)?;
    let tls = match &opts.tls {
        Some(TlsEnd::Server(tls)) => tls.clone(),
        _ => cert::made_for(local.ip())?,
    };

    let crypto = QuicServerConfig::try_from(tls.config.clone())
        .map_err(|e| anyhow!("the certificate cannot serve QUIC (TLS 1.3 only): {e}"))?;
    let mut server = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    server.transport_config(Arc::new(transport_config(opts.quic.mode)));
    // Connections still handshaking, bounded (quinn's default is 65,536).
    server.max_incoming(1024);
    let (accepted, handoff) = Socket::pair(Domain::UNIX, Type::SEQPACKET, None)
        .context("socketpair for QUIC connections")?;
    handoff.set_nonblocking(true)?;
    let (mode, message_time) = (opts.quic.mode, opts.quic.message_time);
    let gates = (opts.quic.sources.clone(), opts.quic.places.clone());
    let endpoint = if opts.quic.own_process {
        let end = process::Endpoint {
            sock,
            server,
            handoff,
            mode,
            message_time,
            places: gates.1,
        };
        process::spawn(end, &accepted).with_context(|| format!("quic {local}"))?;
        None
    } else {
        let endpoint = block_on(start(sock, server, handoff, (mode, message_time), gates))?
            .with_context(|| format!("quic {local}: cannot start the endpoint"))?;
        Some(Arc::new(endpoint))
    };
    Ok(Listener {
        sock: accepted,
        proto: Proto::Quic,
        local: Address::Ip(local),
        nodelay: false,
        _file: None,
        _quic: endpoint,
        // The QUIC thread did the handshake: accepted connections are plaintext pairs.
        tls: None,
    })
}

/// Starts the endpoint on the running runtime and its loop handing connections over.
async fn start(
    sock: std::net::UdpSocket,
    server: quinn::ServerConfig,
    handoff: Socket,
    (mode, message_time): (QuicMode, Option<Duration>),
    gates: (Option<Sources>, Option<Places>),
) -> io::Result<quinn::Endpoint> {
    let udp = guard::Watched::wrap(sock)?;
    let endpoint = quinn::Endpoint::new_with_abstract_socket(
        quinn::EndpointConfig::default(),
        Some(server),
        udp,
        Arc::new(quinn::TokioRuntime),
    )?;
    let accepting = bridge::accept_loop(endpoint.clone(), handoff, (mode, message_time), gates);
    tokio::spawn(accepting);
    Ok(endpoint)
}

/// Room for a hand-off message: its mode and size, and two socket addresses as text.
const HANDOFF_MESSAGE: usize = 160;

/// The message that goes with a connection's socket over the hand-off pair: its mode, the
/// largest message it carries, the peer's address and, after a space, the address of ours
/// it reached (the endpoint's own when the kernel did not say).
fn handoff_message(mode: QuicMode, max: usize, peer: SocketAddr, reached: SocketAddr) -> Vec<u8> {
    let mut msg = vec![mode.code()];
    msg.extend_from_slice(&(max as u32).to_be_bytes());
    msg.extend_from_slice(format!("{peer} {reached}").as_bytes());
    msg
}

/// Sends `sock` to the server's accept side, without waiting: a full queue means the server
/// is behind, and the connection is refused instead.
fn hand_off(handoff: &Socket, sock: &Socket, msg: &[u8]) -> io::Result<()> {
    use nix::sys::socket::{ControlMessage, MsgFlags, sendmsg};
    let fds = [sock.as_raw_fd()];
    let iov = [io::IoSlice::new(msg)];
    sendmsg::<()>(
        handoff.as_raw_fd(),
        &iov,
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_NOSIGNAL,
        None,
    )
    .map(|_| ())
    .map_err(io::Error::from)
}

/// A QUIC listener whose endpoint ended: no connection will come again, so the server
/// ends rather than wait on a listener that stays readable.
#[derive(Debug)]
pub(crate) struct EndpointGone;

impl std::fmt::Display for EndpointGone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the QUIC endpoint ended, so no connection can come; restart the server")
    }
}

impl std::error::Error for EndpointGone {}

/// Whether an accept error says the QUIC endpoint is gone for good.
pub(crate) fn endpoint_gone(e: &io::Error) -> bool {
    e.get_ref().is_some_and(|inner| inner.is::<EndpointGone>())
}

/// recvmsg(2) on a QUIC listener: the next connection the QUIC thread handed over.
pub(super) fn accept(listener: &Socket) -> io::Result<Conn> {
    use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg};
    let mut buf = [0u8; HANDOFF_MESSAGE];
    let mut cmsg = nix::cmsg_space!([RawFd; 1]);
    let (n, fd) = {
        let mut iov = [io::IoSliceMut::new(&mut buf)];
        let msg = recvmsg::<()>(
            listener.as_raw_fd(),
            &mut iov,
            Some(&mut cmsg),
            MsgFlags::MSG_CMSG_CLOEXEC,
        )
        .map_err(io::Error::from)?;
        let fd = msg.cmsgs()?.find_map(|c| match c {
            ControlMessageOwned::ScmRights(fds) => fds.first().copied(),
            _ => None,
        });
        (msg.bytes, fd)
    };
    // Safety: the kernel just installed this descriptor in this process for us alone.
    let fd = fd.map(|fd| unsafe { OwnedFd::from_raw_fd(fd) });
    if n == 0 && fd.is_none() {
        // The endpoint (its thread, or its process under fork) is gone for good.
        return Err(io::Error::other(EndpointGone));
    }
    let (Some(fd), true) = (fd, n >= 5) else {
        return Err(io::Error::other("a QUIC hand-off without its socket"));
    };
    let mode = QuicMode::from_code(buf[0]).unwrap_or_default();
    let max = u32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]) as usize;
    let addrs = std::str::from_utf8(&buf[5..n]).unwrap_or_default();
    let mut addrs = addrs.split(' ').map(|a| a.parse::<SocketAddr>().ok());
    let (peer, reached) = (addrs.next().flatten(), addrs.next().flatten());
    let name = peer.map_or_else(|| "(quic peer)".to_string(), |p| p.to_string());
    let conn = Conn::new(Socket::from(fd), mode.kind(), name, Some(max));
    Ok(conn.bridged((peer, reached), None))
}

/// The client end of a connection, kept by its [`Conn`]: dropping it closes the QUIC
/// connection with a CONNECTION_CLOSE the peer sees at once, instead of an idle timeout.
pub(crate) struct Link {
    conn: quinn::Connection,
    endpoint: quinn::Endpoint,
    failure: bridge::Failure,
}

impl Link {
    /// Why the QUIC thread ended the exchanges, when a reply stream failed.
    pub(crate) fn failure(&self) -> Option<&str> {
        self.failure.get().map(String::as_str)
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        let (conn, endpoint) = (self.conn.clone(), self.endpoint.clone());
        let _ = block_on(async move {
            conn.close(0u32.into(), b"done");
            // close() wakes the connection's driver, which hands the CONNECTION_CLOSE to
            // the endpoint's, which sends it: a few turns of the runtime, not the draining
            // period (three probe timeouts) wait_idle() would wait out.
            let _ = tokio::time::timeout(CLOSING, async {
                for _ in 0..CLOSE_TURNS {
                    tokio::task::yield_now().await;
                }
                endpoint.wait_idle().await;
            })
            .await;
        });
    }
}

/// The client's quinn configuration: whom it trusts, as TLS's flags say (the system's
/// roots when none was given), with the witness that keeps its refusal for this connection.
fn client_config(
    tls: &Option<TlsEnd>,
    mode: QuicMode,
) -> Result<(quinn::ClientConfig, TlsConfig, Arc<cert::Witness>)> {
    let client = match tls {
        Some(TlsEnd::Client(client)) => Arc::clone(client),
        _ => match TlsEnd::client(&TlsConfig::default())? {
            TlsEnd::Client(client) => client,
            TlsEnd::Server(_) => unreachable!("TlsEnd::client makes a client's"),
        },
    };
    let (rustls, witness) = cert::Witness::around(&client.config, &client.verifier);
    let crypto =
        QuicClientConfig::try_from(rustls).map_err(|e| anyhow!("QUIC needs TLS 1.3: {e}"))?;
    let mut config = quinn::ClientConfig::new(Arc::new(crypto));
    config.transport_config(Arc::new(transport_config(mode)));
    Ok((config, client.tls.clone(), witness))
}

/// Connects to a QUIC server at `addr`: the handshake within its deadline (tried again
/// afresh as [`QuicOptions::handshake_tries`] says), then the connection as a [`Conn`] of
/// its mode's socket type.
pub(crate) fn connect(addr: SocketAddr, host: Option<&str>, opts: &SocketOptions) -> Result<Conn> {
    let tries = opts.quic.handshake_tries.max(1);
    let mut tried = 1;
    loop {
        match connect_once(addr, host, opts) {
            Err(e) if tried < tries && e.is::<crate::error::NoHandshake>() => {
                tracing::debug!("quic {addr}: {e}; trying a fresh handshake ({tried} of {tries})");
                tried += 1;
            }
            done => return done,
        }
    }
}

/// One try of [`connect`].
fn connect_once(addr: SocketAddr, host: Option<&str>, opts: &SocketOptions) -> Result<Conn> {
    let (config, settings, witness) = client_config(&opts.tls, opts.quic.mode)?;
    let ip = addr.ip().to_string();
    let name = cert::server_name(&settings, host.or(Some(&ip)))?;
    let any: SocketAddr = match addr {
        SocketAddr::V4(_) => (std::net::Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (std::net::Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let (sock, _) = udp_socket(&Address::Ip(any), &SocketOptions::default())?;
    let mode = opts.quic.mode;
    let wait = opts.quic.handshake.unwrap_or(CLIENT_HANDSHAKE);
    let server = name.to_str().into_owned();
    let (ours, theirs) = bridge::pair(mode)?;
    let failure = bridge::Failure::default();
    let failed = Arc::clone(&failure);
    let (conn, endpoint, max) = block_on(async move {
        let watched = refused::watch(&sock);
        let after = watched.as_ref().and_then(|w| w.try_clone().ok());
        let endpoint = quinn::Endpoint::new(
            quinn::EndpointConfig::default(),
            None,
            sock,
            Arc::new(quinn::TokioRuntime),
        )?;
        let connecting = endpoint.connect_with(config, addr, &server)?;
        let handshake = tokio::select! {
            done = tokio::time::timeout(wait, connecting) => done,
            () = refused::unreachable(watched, addr.ip()) => {
                return Err(anyhow!("{}", crate::error::nothing_listening(None)));
            }
        };
        refused::unwatch(after);
        let conn = match handshake {
            Ok(conn) => conn.map_err(|e| anyhow!(advice(&e, addr, witness.refusal())))?,
            Err(_) => {
                return Err(crate::error::NoHandshake(format!(
                    "no QUIC handshake within {wait:?}: is a QUIC server there (a udp server \
                     or none answers nothing a QUIC client understands)?"
                ))
                .into());
            }
        };
        if mode == QuicMode::Datagrams && conn.max_datagram_size().is_none() {
            conn.close(0u32.into(), b"no datagrams");
            return Err(anyhow!(
                "the server at {addr} takes no QUIC datagrams: leave out --quic-datagrams (a \
                 stream per message), or start it with serve --quic-datagrams"
            ));
        }
        tracing::debug!("{addr}: {}", settled(&conn));
        let max = bridge::max_message(&conn, mode);
        tokio::spawn(bridge::client(conn.clone(), theirs, mode, failed));
        Ok((conn, endpoint, max))
    })??;
    let peer = Some(addr);
    let conn_ = Conn::new(ours, mode.kind(), addr.to_string(), Some(max));
    let link = Link {
        conn,
        endpoint,
        failure,
    };
    Ok(conn_.bridged((peer, None), Some(link)))
}

/// A failed handshake as one line of advice for the client: the certificate's refusal
/// (`refused`, kept by the witness) or the server's alert in the words of `--tls`.
fn advice(e: &quinn::ConnectionError, addr: SocketAddr, refused: Option<rustls::Error>) -> String {
    use quinn::ConnectionError::{ConnectionClosed, TransportError};
    let text = e.to_string();
    let link_local = matches!(addr, SocketAddr::V6(a) if a.scope_id() != 0);
    let refused_retry = matches!(e, ConnectionClosed(c)
        if c.error_code == quinn::TransportErrorCode::CONNECTION_REFUSED
            || c.error_code == quinn::TransportErrorCode::INVALID_TOKEN);
    if link_local && refused_retry {
        return format!(
            "a QUIC server that asks new clients to prove their address (a Retry, as netecho \
             serve does) cannot check a link-local client's proof, whose token keeps no zone: \
             connect to the server's global or ULA address ({text})"
        );
    }
    // A server refuses at once, before the handshake, a connection past its share for the
    // source (a quarter of --max-children for --exec) or its bound in all.
    if matches!(e, quinn::ConnectionError::ConnectionClosed(c)
        if c.error_code == quinn::TransportErrorCode::CONNECTION_REFUSED)
    {
        return format!(
            "busy: the server at {addr} refused a new connection (QUIC CONNECTION_REFUSED): \
             it holds as many as it takes from your user or address, or in all; try again \
             once one ends"
        );
    }
    if let Some(refused) = refused {
        return tls::describe_error(&refused, true);
    }
    match e {
        ConnectionClosed(c) => match bridge::tls_alert(c.error_code) {
            Some(alert) => tls::alert_received(alert, true),
            None => text,
        },
        TransportError(t) if bridge::tls_alert(t.code) == Some(120.into()) => {
            tls::describe_error(&rustls::Error::NoApplicationProtocol, true)
        }
        _ => text,
    }
}

/// What the QUIC handshake settled, as `--tls` prints it at -v (quinn names no cipher suite).
fn settled(conn: &quinn::Connection) -> String {
    let alpn = conn
        .handshake_data()
        .and_then(|data| data.downcast::<quinn::crypto::rustls::HandshakeData>().ok())
        .and_then(|data| data.protocol);
    let chain = conn
        .peer_identity()
        .and_then(|id| id.downcast::<Vec<rustls::pki_types::CertificateDer>>().ok());
    let peer = chain.as_ref().and_then(|chain| chain.first());
    tls::settled_line(
        "TLS 1.3 (QUIC)",
        alpn.as_deref(),
        peer.map(|der| der.as_ref()),
    )
}

/// A connection the server could not hand over: said once, and closed with the reason.
fn refuse(conn: &quinn::Connection, why: &str) {
    static LOG: crate::logging::Throttle = crate::logging::Throttle::new();
    if let Some(more) = LOG.allow() {
        warn!("quic {}: {why}{more}", conn.remote_address());
    }
    conn.close(1u32.into(), why.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    /// The source ports of what reached `silent` (which answers nothing): one per try.
    fn tries_seen(silent: &std::net::UdpSocket) -> usize {
        let mut ports = HashSet::new();
        let mut buf = [0u8; 2048];
        while let Ok((_, from)) = silent.recv_from(&mut buf) {
            ports.insert(from.port());
        }
        ports.len()
    }

    #[test]
    fn an_unanswered_handshake_is_tried_afresh_as_often_as_asked_and_no_more() {
        for tries in [1, 3] {
            let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            silent
                .set_read_timeout(Some(Duration::from_millis(200)))
                .unwrap();
            let mut opts = SocketOptions::default();
            opts.quic.handshake = Some(Duration::from_millis(300));
            opts.quic.handshake_tries = tries;
            let e = connect(silent.local_addr().unwrap(), None, &opts)
                .err()
                .expect("nothing answered, yet the handshake was made");
            assert!(e.is::<crate::error::NoHandshake>(), "{e:#}");
            assert_eq!(tries_seen(&silent), tries as usize);
        }
    }
}
