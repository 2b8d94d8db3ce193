//! Sockets for every protocol behind three small types: a [`Listener`] that accepts
//! connections, a [`Conn`] (a connected stream, seqpacket or datagram socket) and a
//! [`DatagramSocket`] that answers whoever sent. All are thin wrappers over one
//! `socket2::Socket`; what differs per family lives in `tcp.rs`, `udp.rs` and `unix.rs`.
//! Raw IP sockets (`raw.rs`) carry packets with headers netecho writes itself, so they are
//! a type of their own, [`raw::RawSocket`].

pub(crate) mod batch;
pub(crate) mod calls;
pub(crate) mod framing;
pub(crate) mod icmp;
pub(crate) mod ip;
pub(crate) mod message;
pub(crate) mod multicast;
pub(crate) mod pktinfo;
pub(crate) mod quic;
pub(crate) mod raw;
pub(crate) mod sock_diag;
pub(crate) mod tcp;
pub(crate) mod tls;
pub(crate) mod udp;
pub(crate) mod unix;
pub(crate) mod within;

use std::fmt;
use std::io;
use std::mem::MaybeUninit;
use std::net::SocketAddr;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, Result};
use socket2::{SockAddr, Socket};

use crate::endpoint::{
    Address, Endpoint, Proto, Share, SockProto, SocketKind, Target, escape_name, share_key,
};
use crate::error::{Call, NoHandshake, socket_error};

/// The largest message a datagram or seqpacket socket reads in one call. UDP's own limit
/// (65,507 bytes over IPv4, 65,527 over IPv6) fits; a larger Unix datagram is reported as
/// truncated (MSG_TRUNC), never silently cut.
pub(crate) const MAX_MESSAGE: usize = 65536;

/// How long a connect waits for its answer where the command has no --timeout for it (the
/// kernel alone waits about two minutes for a host that drops SYNs).
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Whether `e` is a connect whose handshake got no answer in time ([`NoHandshake`]), as
/// connect returned it or as [`socket_error`] worded it.
pub(crate) fn handshake_unanswered(e: &anyhow::Error) -> bool {
    carries::<NoHandshake>(e)
}

/// Whether `e` has a `T` among its causes, itself or carried in an [`io::Error`].
pub(crate) fn carries<T: std::error::Error + 'static>(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| {
        let carried = cause
            .downcast_ref::<io::Error>()
            .and_then(io::Error::get_ref);
        cause.is::<T>() || carried.is_some_and(|c| c.is::<T>())
    })
}

/// Socket options a lab asks about, as `serve` and `send` flags set them.
#[derive(Clone, Debug)]
pub(crate) struct SocketOptions {
    /// listen(2) backlog: connections the kernel queues before accept.
    pub backlog: i32,
    /// SO_REUSEADDR on TCP listeners: rebind while old connections sit in TIME_WAIT.
    pub reuseaddr: bool,
    /// IPV6_V6ONLY: an IPv6 socket on `[::]` refuses IPv4 clients.
    pub v6only: bool,
    /// TCP_NODELAY: send small writes at once instead of waiting to coalesce them (Nagle).
    pub nodelay: bool,
    /// The IP protocol number of a raw socket.
    pub ip_proto: u8,
    /// IP_HDRINCL: a raw IPv4 client writes the IP header itself.
    pub hdrincl: bool,
    /// The TTL (IPv4) or hop limit (IPv6) of a raw client's packets.
    pub ttl: Option<u8>,
    /// SO_RCVBUF and SO_SNDBUF, in bytes, when asked for; else the kernel's defaults.
    pub rcvbuf: Option<usize>,
    pub sndbuf: Option<usize>,
    /// QUIC: how messages travel (its certificate rules are `tls`'s).
    pub quic: quic::QuicOptions,
    /// TLS over the connections of a stream socket: a listener's certificate, or what a
    /// client trusts.
    pub tls: Option<tls::TlsEnd>,
    /// UDP: the groups a server joins; a sender's multicast and broadcast options.
    pub multicast: multicast::Multicast,
    /// The bound of a client's connect over a stream (tcp, tls, unix): see [`connect_within`].
    pub connect_timeout: Duration,
    /// A udp client takes replies from its peer's IP on any port and sends to the port the
    /// latest came from ([`udp::Follow`]): a relay's socket to TO.
    pub follow_reply_port: bool,
}

impl Default for SocketOptions {
    fn default() -> Self {
        SocketOptions {
            backlog: 1024,
            reuseaddr: true,
            v6only: false,
            nodelay: false,
            ip_proto: crate::packet::DEFAULT_IP_PROTO,
            hdrincl: false,
            ttl: None,
            rcvbuf: None,
            sndbuf: None,
            quic: quic::QuicOptions::default(),
            tls: None,
            multicast: multicast::Multicast::default(),
            connect_timeout: CONNECT_TIMEOUT,
            follow_reply_port: false,
        }
    }
}

impl SocketOptions {
    /// The socket type connections of `proto` reach netecho as: a QUIC connection's depends
    /// on how it carries messages (a stream each, one stream, datagrams).
    pub(crate) fn kind(&self, proto: SockProto) -> SocketKind {
        match proto {
            SockProto::Quic => self.quic.mode.kind(),
            other => other.kind(),
        }
    }
}

/// SO_RCVBUF and SO_SNDBUF as `opts` asks, on a new socket (before connect or listen, so TCP
/// picks its window scale with the buffer it will have).
pub(crate) fn set_buffers(sock: &Socket, opts: &SocketOptions) -> io::Result<()> {
    if let Some(bytes) = opts.rcvbuf {
        calls::set_buffer(sock, "SO_RCVBUF", bytes)?;
    }
    if let Some(bytes) = opts.sndbuf {
        calls::set_buffer(sock, "SO_SNDBUF", bytes)?;
    }
    Ok(())
}

/// A socket bound by `serve`: either it accepts connections or it answers datagrams.
pub(crate) enum Bound {
    Listener(Listener),
    Datagram(DatagramSocket),
    Raw(raw::RawSocket),
}

impl Bound {
    /// The bound address, with the real port when port 0 was asked for.
    pub(crate) fn local(&self) -> &Address {
        match self {
            Bound::Listener(l) => &l.local,
            Bound::Datagram(d) => &d.local,
            Bound::Raw(r) => r.local(),
        }
    }
}

/// A socket bound for a protocol that connects or answers senders (every one but raw).
pub(crate) enum BoundSock {
    Listener(Listener),
    Datagram(DatagramSocket),
}

impl BoundSock {
    /// The bound address, with the real port when port 0 was asked for.
    pub(crate) fn local(&self) -> &Address {
        match self {
            BoundSock::Listener(l) => &l.local,
            BoundSock::Datagram(d) => &d.local,
        }
    }
}

impl From<BoundSock> for Bound {
    fn from(b: BoundSock) -> Bound {
        match b {
            BoundSock::Listener(l) => Bound::Listener(l),
            BoundSock::Datagram(d) => Bound::Datagram(d),
        }
    }
}

/// Binds a server socket for `endpoint`.
pub(crate) fn bind(endpoint: &Endpoint, opts: &SocketOptions) -> Result<Bound> {
    match endpoint.target() {
        Some(target) => bind_sock(&target, opts).map(Bound::from),
        None => raw::bind(&endpoint.addr, opts).map(Bound::Raw),
    }
}

/// Binds a listener or a datagram socket for `target`.
pub(crate) fn bind_sock(target: &Target, opts: &SocketOptions) -> Result<BoundSock> {
    let endpoint = target.endpoint();
    let tls = |mut l: Listener| {
        l.tls = opts.tls.clone();
        BoundSock::Listener(l)
    };
    match target.proto {
        SockProto::Tcp => tcp::bind(&target.addr, opts).map(tls),
        SockProto::Udp => udp::bind(&target.addr, opts).map(BoundSock::Datagram),
        SockProto::Unix | SockProto::UnixSeqpacket => unix::bind_listener(&endpoint, opts).map(tls),
        SockProto::UnixDgram => unix::bind_datagram(&endpoint, opts).map(BoundSock::Datagram),
        SockProto::Quic => quic::bind(&target.addr, opts).map(BoundSock::Listener),
    }
}

/// connect(2) on a client socket, bounded by `within`: SO_SNDTIMEO bounds a blocking connect
/// of a TCP socket (a SYN nobody answers) and of a Unix one (a full backlog) alike, and the
/// kernel says EINPROGRESS or EAGAIN at the bound, which `no_answer` words.
pub(crate) fn connect_within(
    sock: &Socket,
    addr: &SockAddr,
    within: Duration,
    no_answer: impl FnOnce(Duration) -> crate::error::NoAnswer,
) -> io::Result<()> {
    // A zero timeout would mean none at all to the kernel.
    let within = within.max(Duration::from_millis(1));
    calls::set_timeout(sock, "SO_SNDTIMEO", Some(within))?;
    match calls::connect(sock, addr) {
        Ok(()) => calls::set_timeout(sock, "SO_SNDTIMEO", None),
        Err(e) if matches!(e.raw_os_error(), Some(libc::EINPROGRESS | libc::EAGAIN)) => {
            Err(io::Error::new(io::ErrorKind::TimedOut, no_answer(within)))
        }
        Err(e) => Err(e),
    }
}

/// The addresses to try, in order: every address a host name resolves to, or the Unix
/// address itself.
fn addresses(unix: bool, addr: &Address) -> Result<Vec<Address>> {
    if unix {
        return Ok(vec![addr.clone()]);
    }
    Ok(ip::resolve(addr)?.into_iter().map(Address::Ip).collect())
}

/// The concrete endpoints to try, in order, for a client of any protocol (raw included).
pub(crate) fn candidates(endpoint: &Endpoint) -> Result<Vec<Endpoint>> {
    Ok(addresses(endpoint.proto.is_unix(), &endpoint.addr)?
        .into_iter()
        .map(|addr| Endpoint {
            proto: endpoint.proto,
            addr,
        })
        .collect())
}

/// The concrete targets to try, in order, for a client that connects.
pub(crate) fn target_candidates(target: &Target) -> Result<Vec<Target>> {
    Ok(addresses(target.proto.is_unix(), &target.addr)?
        .into_iter()
        .map(|addr| Target {
            proto: target.proto,
            addr,
        })
        .collect())
}

/// A client socket connected to the first address of `target` that accepts.
pub(crate) fn connect_first(target: &Target, opts: &SocketOptions) -> Result<Conn> {
    let mut last = None;
    for candidate in target_candidates(target)? {
        match connect_named(&candidate, opts, host_name(&target.addr)) {
            Ok(conn) => return Ok(conn),
            Err(e) => last = Some(socket_error(Call::Connect, &candidate, &e)),
        }
    }
    Err(last.unwrap_or_else(|| anyhow::anyhow!("{target}: no address to connect to")))
}

/// The socket address of a concrete endpoint, for sendto(2).
pub(crate) fn peer_addr(endpoint: &Endpoint) -> Result<PeerAddr> {
    Ok(PeerAddr(match &endpoint.addr {
        Address::UnixPath(_) | Address::UnixAbstract(_) => unix::sockaddr_of(&endpoint.addr)?,
        addr => SockAddr::from(*ip::resolve(addr)?.first().context("no address")?),
    }))
}

/// Opens a client socket connected to one concrete target (see [`target_candidates`]).
///
/// The error is the kernel's, so a caller can decide whether the next candidate is worth a
/// try; [`crate::error::socket_error`] words it for the user.
pub(crate) fn connect(target: &Target, opts: &SocketOptions) -> io::Result<Conn> {
    connect_named(target, opts, None)
}

/// The host name a user gave, if the address is one.
fn host_name(addr: &Address) -> Option<String> {
    match addr {
        Address::Host(name, _) => Some(name.clone()),
        _ => None,
    }
}

/// [`connect`], with the host name the user gave (for TLS: the name the server's
/// certificate must carry; without it, the address connected to).
fn connect_named(target: &Target, opts: &SocketOptions, host: Option<String>) -> io::Result<Conn> {
    // QUIC has its TLS inside: the handshake is the connection's own.
    if let (Address::Ip(addr), SockProto::Quic) = (&target.addr, target.proto) {
        return quic::connect(*addr, host.as_deref(), opts).map_err(|e| {
            match e.downcast::<NoHandshake>() {
                Ok(no) => io::Error::new(io::ErrorKind::ConnectionAborted, no),
                Err(e) => io::Error::new(io::ErrorKind::ConnectionAborted, format!("{e:#}")),
            }
        });
    }
    let mut conn = connect_plain(target, opts)?;
    if let Some(tls::TlsEnd::Client(client)) = &opts.tls {
        let host = host.or_else(|| match &target.addr {
            Address::Ip(addr) => Some(addr.ip().to_string()),
            _ => None,
        });
        let name = tls::cert::server_name(&client.tls, host.as_deref())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
        let session = tls::Session::client(client.config.clone(), name, &conn.peer)?;
        session.handshake(&conn.sock)?;
        conn.tls = Some(Box::new(session));
    }
    Ok(conn)
}

fn connect_plain(target: &Target, opts: &SocketOptions) -> io::Result<Conn> {
    match (&target.addr, target.proto) {
        (Address::Ip(addr), SockProto::Tcp) => tcp::connect(*addr, opts),
        (Address::Ip(addr), SockProto::Udp) => udp::connect(*addr, opts),
        (Address::Ip(_) | Address::Host(..), _)
        | (_, SockProto::Tcp | SockProto::Udp | SockProto::Quic) => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{target} is not a concrete address"),
        )),
        (_, proto) => unix::connect(proto.into(), &target.addr, opts),
    }
}

/// An unconnected client datagram socket (udp or unix-dgram) and the server's address, for
/// the lesson's sendto and recvfrom: the server is named in every send, and every reply says
/// who sent it. A udp socket gets its port from the first sendto; a unix-dgram one
/// autobinds a name so the server can answer.
pub(crate) fn unconnected(
    endpoint: &Endpoint,
    opts: &SocketOptions,
) -> Result<(DatagramSocket, PeerAddr)> {
    match (&endpoint.addr, endpoint.proto) {
        (Address::Ip(addr), Proto::Udp) => {
            let sock = ip::socket_for(*addr, socket2::Type::DGRAM, opts)
                .map_err(|e| socket_error(Call::Socket, endpoint, &e))?;
            multicast::sender(&sock, *addr, &opts.multicast, opts.ttl)?;
            let any = std::net::SocketAddr::new(
                match addr {
                    std::net::SocketAddr::V4(_) => std::net::Ipv4Addr::UNSPECIFIED.into(),
                    std::net::SocketAddr::V6(_) => std::net::Ipv6Addr::UNSPECIFIED.into(),
                },
                0,
            );
            let sock = DatagramSocket {
                sock,
                proto: Proto::Udp,
                local: Address::Ip(any),
                _file: None,
                reply: pktinfo::ReplyFrom::Kernel,
                passcred: false,
                held: None,
            };
            Ok((sock, PeerAddr((*addr).into())))
        }
        (addr, Proto::UnixDgram) => {
            let to = unix::sockaddr_of(addr)?;
            Ok((unix::bind_autobound(Proto::UnixDgram)?, PeerAddr(to)))
        }
        _ => anyhow::bail!("{endpoint}: an unconnected client is for udp and unix-dgram"),
    }
}

/// What one read from a socket gave.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Received {
    /// A message (or, on a stream, a chunk of bytes) of this length. A datagram may be empty.
    Data(usize),
    /// The peer closed: on a stream or seqpacket socket a read of 0 bytes means this.
    Closed,
    /// A message longer than the buffer, of this real length (MSG_TRUNC); its bytes are lost.
    Truncated(usize),
}

impl Received {
    /// A datagram of real length `n` (MSG_TRUNC) read into a buffer of `room` bytes.
    fn of(n: usize, room: usize) -> Received {
        if n > room {
            Received::Truncated(n)
        } else {
            Received::Data(n)
        }
    }
}

/// A connected socket: an accepted or connected stream or seqpacket, or a connected datagram
/// socket on the client side.
pub(crate) struct Conn {
    sock: Socket,
    kind: SocketKind,
    peer: String,
    max_message: Option<usize>,
    /// How long one frame may take to arrive whole, in ms (0: no limit): a client that sends
    /// a byte now and then cannot hold the connection past it.
    frame_time: AtomicU64,
    /// When the frame being read must be whole, in ms since `born` (0: none).
    deadline: AtomicU64,
    born: std::time::Instant,
    /// The peer's address when the socket stands for a connection of another transport
    /// (QUIC, through a socket pair), for access rules and log lines.
    remote: Option<std::net::SocketAddr>,
    /// With `remote`, the address of ours the peer reached (the QUIC packets' destination),
    /// by which sock_diag finds the peer's own socket.
    reached: Option<std::net::SocketAddr>,
    /// A QUIC client's connection, closed when this is dropped.
    link: Option<quic::Link>,
    /// The TLS session its bytes pass through, when it has one; boxed, since a session is
    /// over a KiB and most connections have none (an idle connection costs its Conn).
    tls: Option<Box<tls::Session>>,
    /// A udp socket that follows the port its peer answers from ([`udp::Follow`]).
    follow: Option<Box<udp::Follow>>,
}

impl Conn {
    fn new(sock: Socket, kind: SocketKind, peer: String, max_message: Option<usize>) -> Conn {
        Conn {
            sock,
            kind,
            peer,
            max_message,
            frame_time: AtomicU64::new(0),
            deadline: AtomicU64::new(0),
            born: std::time::Instant::now(),
            remote: None,
            reached: None,
            link: None,
            tls: None,
            follow: None,
        }
    }

    /// This socket as one end of a pair standing for a connection (QUIC) from `reached`, an
    /// address of ours, to `remote`.
    fn bridged(
        mut self,
        (remote, reached): (Option<SocketAddr>, Option<SocketAddr>),
        link: Option<quic::Link>,
    ) -> Conn {
        self.remote = remote;
        self.reached = reached;
        self.link = link;
        self
    }

    /// The address of ours its peer reached, where it has one: a bridged connection's, or
    /// its socket's own (getsockname).
    pub(crate) fn local(&self) -> Option<SocketAddr> {
        self.reached
            .or_else(|| self.sock.local_addr().ok()?.as_socket())
    }

    /// Whether a read of 0 bytes may be an empty message as well as the peer's close: on a
    /// Unix seqpacket socket both read the same (a QUIC connection through a socket pair,
    /// which has a remote address, passes no empty message).
    pub(crate) fn zero_read_is_ambiguous(&self) -> bool {
        self.kind() == SocketKind::SeqPacket && self.remote.is_none()
    }

    /// The peer's IP address and port, where it has one.
    pub(crate) fn remote(&self) -> Option<std::net::SocketAddr> {
        self.remote
            .or_else(|| self.follow.as_ref().map(|f| f.peer()))
            .or_else(|| self.sock.peer_addr().ok()?.as_socket())
    }

    /// From now on each frame read after [`Conn::start_frame`] must arrive whole within
    /// `limit` (None: only the idle timeout of each recv applies).
    pub(crate) fn set_frame_time(&self, limit: Option<Duration>) {
        let ms = limit.map_or(0, |d| d.as_millis().clamp(1, u64::MAX.into()) as u64);
        self.frame_time.store(ms, Ordering::Relaxed);
    }

    /// A frame begins: its deadline is the frame time from now.
    pub(crate) fn start_frame(&self) {
        let limit = self.frame_time.load(Ordering::Relaxed);
        if limit > 0 {
            let now = self.born.elapsed().as_millis() as u64;
            self.deadline.store(now + limit, Ordering::Relaxed);
        }
    }

    /// Before a recv with a frame deadline: SO_RCVTIMEO to the time left, or TimedOut.
    #[inline]
    fn before_recv(&self) -> io::Result<()> {
        let deadline = self.deadline.load(Ordering::Relaxed);
        if deadline == 0 {
            return Ok(());
        }
        let now = self.born.elapsed().as_millis() as u64;
        if now >= deadline {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "a frame did not arrive whole within the idle timeout (a byte now and then \
                 does not keep a connection)",
            ));
        }
        self.sock
            .set_read_timeout(Some(Duration::from_millis(deadline - now)))
    }

    /// The kind of socket its messages follow: TLS makes any socket a stream of records.
    pub(crate) fn kind(&self) -> SocketKind {
        match self.tls {
            Some(_) => SocketKind::Stream,
            None => self.kind,
        }
    }

    /// A TLS connection's close_notify, sent if the socket takes it now (a server ending
    /// a connection); nothing on a plain one.
    pub(crate) fn goodbye(&self) {
        if let Some(tls) = &self.tls {
            tls.goodbye(&self.sock);
        }
    }

    /// A TLS handshake still unfinished past its deadline: the server closes it.
    pub(crate) fn handshake_overdue(&self) -> bool {
        self.tls.as_deref().is_some_and(tls::Session::overdue)
    }

    /// How long a server waits for this connection: `idle`, or less while a TLS handshake
    /// has less time left.
    #[inline]
    pub(crate) fn wait_limit(&self, idle: Option<Duration>) -> Option<Duration> {
        match self.tls.as_deref().and_then(tls::Session::handshake_left) {
            Some(left) => Some(idle.map_or(left, |idle| idle.min(left))),
            None => idle,
        }
    }

    /// Why a wait for this connection ended without news: its handshake's deadline, or
    /// the idle timeout.
    pub(crate) fn handshake_timeout(&self) -> Option<io::Error> {
        self.handshake_overdue().then(|| {
            io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "TLS handshake not finished within {}s",
                    tls::session::HANDSHAKE_TIME.as_secs()
                ),
            )
        })
    }

    /// Whether its bytes pass through TLS.
    pub(crate) fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// A refused client's bytes: one recv(2) of what it sent, plaintext or ciphertext alike,
    /// never through TLS (see [`Conn::feed_handshake`]).
    pub(crate) fn recv_raw(&self, buf: &mut [u8]) -> io::Result<Received> {
        recv_message(&self.sock, self.kind, buf)
    }

    /// A refused TLS client's ciphertext `bytes` (read with [`Conn::recv_raw`]) handed to
    /// its handshake, the answer sent at once: true once the handshake is done, and with it
    /// the plaintext written before (the busy line) sent. True on a plain connection.
    pub(crate) fn feed_handshake(&self, bytes: &[u8]) -> io::Result<bool> {
        match &self.tls {
            Some(tls) => tls.feed(&self.sock, bytes),
            None => Ok(true),
        }
    }

    /// On a TLS connection, every record the peer sends must be whole within `limit` of its
    /// first byte (`flag` names the setting when it ends a connection): a record's plaintext
    /// comes only with its last byte, so a peer trickling one shows no frame begun. On a
    /// `blocking` socket a read waits no longer than the record's deadline. Nothing on a
    /// plain connection.
    pub(crate) fn limit_records(&self, limit: Duration, blocking: bool, flag: &'static str) {
        if let Some(tls) = &self.tls {
            tls.limit_records(limit, blocking, flag);
        }
    }

    /// When the TLS record under way must be whole, if one is and it is limited.
    #[inline]
    pub(crate) fn record_deadline(&self) -> Option<std::time::Instant> {
        self.tls.as_deref().and_then(tls::Session::record_deadline)
    }

    /// On a TLS connection, when the first record whose plaintext the last read yielded
    /// began: a frame that plaintext starts counts its time from then.
    pub(crate) fn plaintext_since(&self) -> Option<std::time::Instant> {
        self.tls.as_deref().and_then(tls::Session::plaintext_since)
    }

    /// What a message is on this connection, with the framing a user asked for (which
    /// applies to streams only).
    pub(crate) fn carrier(&self, framing: framing::Framing) -> message::Carrier {
        message::Carrier::of(self.kind(), framing)
    }

    /// Who is on the other end, for log lines (for Unix sockets with the peer's pid and uid).
    pub(crate) fn peer(&self) -> &str {
        &self.peer
    }

    /// The largest message this socket can send in one piece, for message-based sockets.
    pub(crate) fn max_message(&self) -> Option<usize> {
        self.max_message
    }

    pub(crate) fn socket(&self) -> &Socket {
        &self.sock
    }

    /// Whether something waits unread in the socket now (bytes, the peer's close or an
    /// error), without waiting. A server held up (SIGSTOP, a loaded machine) asks before it
    /// calls a client idle: what came while it was not looking counts as activity.
    pub(crate) fn unread_now(&self) -> bool {
        ready_now(&self.sock, libc::POLLIN) != 0
    }

    /// One recv(2): a chunk of a stream, or one whole message.
    #[inline(always)]
    pub(crate) fn recv(&self, buf: &mut [u8]) -> io::Result<Received> {
        self.before_recv()?;
        if let Some(tls) = &self.tls {
            return Ok(match tls.recv(&self.sock, buf)? {
                0 if !buf.is_empty() => Received::Closed,
                n => Received::Data(n),
            });
        }
        let got = match &self.follow {
            Some(follow) => follow
                .recv(&self.sock, buf)
                .inspect_err(|e| self.forget_errors(e))?,
            None => recv_message(&self.sock, self.kind, buf)?,
        };
        // QUIC datagrams come over a socket pair, which, unlike a datagram socket, has an
        // end: a 0-byte read once the QUIC thread hung up.
        if got == Received::Data(0) && self.remote.is_some() && hung_up(&self.sock) {
            return self.closed();
        }
        match got {
            Received::Closed => self.closed(),
            got => Ok(got),
        }
    }

    /// The end of the connection: said as the peer's fault when a QUIC client's exchange
    /// failed (the QUIC thread then hung up with the reason), else a plain end.
    #[cold]
    fn closed(&self) -> io::Result<Received> {
        match self.link.as_ref().and_then(quic::Link::failure) {
            Some(why) => Err(io::Error::other(crate::error::PeerFault(why.to_string()))),
            None => Ok(Received::Closed),
        }
    }

    /// SO_RXQ_OVFL: from now on every datagram read with [`Conn::recv_counting_drops`] carries
    /// the number of datagrams the kernel has dropped on this socket for a full receive buffer.
    pub(crate) fn count_drops(&self) -> io::Result<()> {
        calls::setsockopt(&self.sock, "SO_RXQ_OVFL", true, |s, on| {
            nix::sys::socket::setsockopt(s, nix::sys::socket::sockopt::RxqOvfl, &i32::from(on))
                .map_err(io::Error::from)
        })
    }

    /// The datagrams the kernel has dropped on this socket for a full receive buffer, now
    /// (SO_MEMINFO's SK_MEMINFO_DROPS): also the drops after the last datagram read, which
    /// SO_RXQ_OVFL only reports along with a later one.
    pub(crate) fn drops(&self) -> io::Result<u32> {
        calls::drops(&self.sock)
    }

    /// recvmsg(2): one message, and the socket's SO_RXQ_OVFL drop count when the kernel sent
    /// it along (see [`Conn::count_drops`]).
    pub(crate) fn recv_counting_drops(
        &self,
        buf: &mut [u8],
    ) -> io::Result<(Received, Option<u32>)> {
        use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg};
        use std::os::fd::AsRawFd;
        let mut cmsg = nix::cmsg_space!(u32);
        let len = buf.len();
        let mut iov = [io::IoSliceMut::new(buf)];
        let msg = recvmsg::<()>(
            self.sock.as_raw_fd(),
            &mut iov,
            Some(&mut cmsg),
            MsgFlags::MSG_TRUNC,
        )
        .map_err(io::Error::from)?;
        let drops = msg.cmsgs().ok().and_then(|mut c| {
            c.find_map(|m| match m {
                ControlMessageOwned::RxqOvfl(n) => Some(n),
                _ => None,
            })
        });
        let received = if msg.flags.contains(MsgFlags::MSG_TRUNC) {
            Received::Truncated(msg.bytes)
        } else {
            Received::Data(msg.bytes.min(len))
        };
        Ok((received, drops))
    }

    /// Sends all of `buf`: send(2) until every byte is written (what Python calls sendall).
    /// On a message socket that is one send of one message.
    pub(crate) fn send_all(&self, mut buf: &[u8]) -> io::Result<()> {
        if let Some(tls) = &self.tls {
            return tls.send_all(&self.sock, buf);
        }
        if self.kind != SocketKind::Stream {
            let sent = self.send_once(buf)?;
            return if sent == buf.len() {
                Ok(())
            } else {
                Err(io::Error::other(format!(
                    "sent {sent} of a {}-byte message",
                    buf.len()
                )))
            };
        }
        while !buf.is_empty() {
            match calls::send(&self.sock, buf) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => buf = &buf[n..],
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// One send(2): on a stream it may take only part of `buf` (returns how much); on a
    /// message socket it sends the whole message or fails.
    #[inline(always)]
    pub(crate) fn send_some(&self, buf: &[u8]) -> io::Result<usize> {
        if let Some(tls) = &self.tls {
            return tls.send_some(&self.sock, buf);
        }
        loop {
            match self.send_once(buf) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                other => return other,
            }
        }
    }

    /// A udp socket that follows its peer's reply port ([`udp::Follow`]) sends to the port
    /// of the latest datagram it read from now on, if it has not moved yet: called once that
    /// datagram reached the relay's client. Nothing on any other socket.
    pub(crate) fn follow_latest_reply(&self) {
        if let Some(follow) = &self.follow {
            follow.take_seen();
        }
    }

    /// The datagrams a udp socket that follows its peer's reply port left out as another
    /// user's ([`udp::Follow`]); 0 on any other socket.
    pub(crate) fn left_out_as_others(&self) -> u64 {
        self.follow.as_ref().map_or(0, |follow| follow.left_out())
    }

    /// One send(2), or a sendto(2) to the port a following udp socket's peer answers from.
    #[inline(always)]
    fn send_once(&self, buf: &[u8]) -> io::Result<usize> {
        match &self.follow {
            Some(follow) => follow
                .send(&self.sock, buf)
                .inspect_err(|e| self.forget_errors(e)),
            None => calls::send(&self.sock, buf),
        }
    }

    /// A following udp socket hears ICMP errors ([`udp::hear_unreachable`]): one reported
    /// (`e`, e.g. ECONNREFUSED) is forgotten from its error queue too.
    #[cold]
    fn forget_errors(&self, e: &io::Error) {
        if e.raw_os_error().is_some() && !is_timeout(e) && e.kind() != io::ErrorKind::Interrupted {
            udp::forget_errors(&self.sock);
        }
    }

    pub(crate) fn set_nonblocking(&self, nonblocking: bool) -> io::Result<()> {
        calls::set_nonblocking(&self.sock, nonblocking)
    }

    /// SO_RCVTIMEO: how long a blocking recv waits (None: forever).
    pub(crate) fn set_read_timeout(&self, timeout: Option<std::time::Duration>) -> io::Result<()> {
        calls::set_timeout(&self.sock, "SO_RCVTIMEO", timeout)
    }

    /// SO_SNDTIMEO: how long a blocking send waits (None: forever).
    pub(crate) fn set_write_timeout(&self, timeout: Option<std::time::Duration>) -> io::Result<()> {
        calls::set_timeout(&self.sock, "SO_SNDTIMEO", timeout)
    }

    /// shutdown(2) of the sending half: on a stream, the peer reads end-of-file.
    pub(crate) fn shutdown_write(&self) -> io::Result<()> {
        if let Some(tls) = &self.tls {
            tls.close_notify(&self.sock);
        }
        calls::shutdown(&self.sock, std::net::Shutdown::Write)
    }
}

impl AsFd for Conn {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.sock.as_fd()
    }
}

/// A bound listening socket (TCP, Unix stream or seqpacket), or a QUIC endpoint's queue of
/// connections.
pub(crate) struct Listener {
    sock: Socket,
    proto: Proto,
    local: Address,
    nodelay: bool,
    /// The socket file this listener created, removed when the listener is dropped.
    _file: Option<unix::SocketFile>,
    /// The QUIC endpoint whose connections this listener accepts, closed with it.
    _quic: Option<std::sync::Arc<quinn::Endpoint>>,
    /// The TLS every accepted connection speaks, when it has one.
    tls: Option<tls::TlsEnd>,
}

impl Listener {
    /// accept(2): the next queued connection (for QUIC, the next one handed over).
    pub(crate) fn accept(&self) -> io::Result<Conn> {
        if self.proto == Proto::Quic {
            return quic::accept(&self.sock);
        }
        let (sock, addr) = calls::accept(&self.sock)?;
        self.accepted(sock, addr)
    }

    /// A connection accepted by other means (an io_uring accept): its peer asked for.
    pub(crate) fn adopt(&self, fd: std::os::fd::OwnedFd) -> io::Result<Conn> {
        let sock = Socket::from(fd);
        let addr = sock.peer_addr()?;
        self.accepted(sock, addr)
    }

    /// The kind of socket this listener accepts.
    pub(crate) fn kind(&self) -> SocketKind {
        self.proto.kind()
    }

    pub(crate) fn proto(&self) -> Proto {
        self.proto
    }

    fn accepted(&self, sock: Socket, addr: SockAddr) -> io::Result<Conn> {
        let from = addr.as_socket();
        let peer = if self.proto.is_unix() {
            unix::describe_peer(&sock, &addr)
        } else {
            if self.nodelay {
                calls::setsockopt(&sock, "TCP_NODELAY", true, Socket::set_tcp_nodelay)?;
            }
            PeerAddr(addr).to_string()
        };
        let mut conn = Conn::new(sock, self.proto.kind(), peer, None);
        if let Some(tls::TlsEnd::Server(server)) = &self.tls {
            conn.tls = Some(Box::new(tls::Session::server(
                server.config.clone(),
                &conn.peer,
                handshake_source(from, &conn.sock),
                &conn.sock,
            )?));
        }
        Ok(conn)
    }

    pub(crate) fn set_nonblocking(&self, nonblocking: bool) -> io::Result<()> {
        calls::set_nonblocking(&self.sock, nonblocking)
    }
}

/// Whose handshakes an accepted TLS connection counts with. A peer on this host (any of
/// its addresses, which every local user shares) by the user that owns its socket, as one
/// sock_diag query tells (far less than the handshake costs, and asked of no peer from
/// elsewhere), so one local user's handshakes never refuse another's; by its address (an
/// IPv6 /64) when that user cannot be told, and for a peer elsewhere. A Unix peer by the
/// user its credentials name (SO_PEERCRED).
fn handshake_source(peer: Option<SocketAddr>, sock: &Socket) -> Share {
    let Some(peer) = peer else {
        return Share::local(unix::peer_cred(sock).ok().map(|(uid, _)| uid));
    };
    let owner = || {
        let local = sock.local_addr().ok()?.as_socket()?;
        sock_diag::tcp_owner(peer, local).ok().flatten()
    };
    match ip::is_this_host(peer.ip()).then(owner).flatten() {
        Some(uid) => Share::local(Some(uid)),
        None => Share::Address(share_key(peer.ip())),
    }
}

impl AsFd for Listener {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.sock.as_fd()
    }
}

/// An unconnected datagram socket bound by a server (UDP or Unix datagram).
pub(crate) struct DatagramSocket {
    sock: Socket,
    proto: Proto,
    local: Address,
    _file: Option<unix::SocketFile>,
    /// Where its replies leave from (see [`pktinfo`]).
    reply: pktinfo::ReplyFrom,
    /// SO_PASSCRED is on: each datagram is read with recvmsg, for its SCM_CREDENTIALS.
    passcred: bool,
    /// A request's handle: its sender's socket file, when that is at a path (see
    /// [`unix::reply_addr`]).
    held: Option<std::sync::Arc<unix::ReplyPath>>,
}

/// What recvmsg(2) told of a datagram beyond its bytes and sender, in control messages.
#[derive(Debug, Default)]
pub(crate) struct Told {
    /// Where it arrived (IP_PKTINFO), on a socket that answers from the destination.
    pub arrival: Option<pktinfo::Arrival>,
    /// Its sender's uid and gid (SCM_CREDENTIALS), on a Unix socket that passes them.
    pub cred: Option<(u32, u32)>,
    /// Its sender's socket file, held for the reply, when it is at a path.
    pub held: Option<unix::ReplyPath>,
}

/// A datagram's sender, as recvfrom(2) reported it.
#[derive(Clone, Debug, Eq)]
pub(crate) struct PeerAddr(pub SockAddr);

/// As SockAddr hashes: the bytes the kernel wrote (equal addresses, equal hashes).
impl std::hash::Hash for PeerAddr {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.bytes().hash(state);
    }
}

/// The same bytes, as SockAddr compares them, read eight at a time in place: a sender is
/// the key the per-datagram tables (peers, the guard's) look up, where a memcmp call each
/// cost more than the rest of the comparison.
impl PartialEq for PeerAddr {
    fn eq(&self, other: &PeerAddr) -> bool {
        let (a, b) = (self.bytes(), other.bytes());
        if a.len() != b.len() {
            return false;
        }
        let (mut wa, mut wb) = (a.chunks_exact(8), b.chunks_exact(8));
        let word = |w: &[u8]| u64::from_ne_bytes(w.try_into().expect("eight bytes"));
        wa.by_ref()
            .zip(wb.by_ref())
            .all(|(x, y)| word(x) == word(y))
            // Byte by byte: a slice comparison calls memcmp, even for none.
            && wa.remainder().iter().zip(wb.remainder()).all(|(x, y)| x == y)
    }
}

impl PeerAddr {
    /// The address as the kernel wrote it, its length's worth.
    fn bytes(&self) -> &[u8] {
        // Safety: the storage holds at least `len` initialised bytes (SockAddr's own
        // comparison reads the same).
        unsafe { std::slice::from_raw_parts(self.0.as_ptr().cast::<u8>(), self.0.len() as usize) }
    }

    /// The sender as a log line names it for `proto`: raw IP has no ports, so the address
    /// alone.
    pub(crate) fn show(&self, proto: Proto) -> String {
        match self.0.as_socket() {
            Some(addr) if proto == Proto::Raw => addr.ip().to_string(),
            _ => self.to_string(),
        }
    }

    /// Whether this sender cannot be a forged address from outside this host: a loopback
    /// address (the kernel drops packets from the wire with such a source) or a Unix socket.
    pub(crate) fn unforgeable(&self) -> bool {
        match self.0.as_socket() {
            None => true,
            Some(a) => match a.ip() {
                std::net::IpAddr::V4(ip) => ip.is_loopback(),
                std::net::IpAddr::V6(ip) => {
                    ip.is_loopback() || ip.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
                }
            },
        }
    }

    /// A Unix sender with no address: one nothing can be sent to (see [`Self::can_reply`]).
    pub(crate) fn unnamed() -> PeerAddr {
        let mut storage = socket2::SockAddrStorage::zeroed();
        // Safety: socket2's storage is a sockaddr_storage; its family set, the rest zero.
        unsafe {
            storage.view_as::<libc::sockaddr_storage>().ss_family = libc::AF_UNIX as _;
            let family_only = std::mem::size_of::<libc::sa_family_t>() as libc::socklen_t;
            PeerAddr(SockAddr::new(storage, family_only))
        }
    }

    /// A Unix datagram sent from a socket with no address of its own cannot be answered.
    /// recvfrom and recvmmsg report such a sender with an address length of 0 (the family
    /// bytes are then not written, so they cannot be trusted), or with the family alone.
    pub(crate) fn can_reply(&self) -> bool {
        let family_only = std::mem::size_of::<libc::sa_family_t>() as libc::socklen_t;
        self.0.len() > family_only && !(self.0.is_unix() && self.0.is_unnamed())
    }
}

/// Whether a socket call ended for its timeout (SO_RCVTIMEO, SO_SNDTIMEO, a non-blocking
/// socket with nothing to do), not for the peer.
pub(crate) fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

impl fmt::Display for PeerAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.len() as usize <= std::mem::size_of::<libc::sa_family_t>() {
            f.write_str("(unnamed)")
        } else if let Some(addr) = self.0.as_socket() {
            // A dual-stack socket's IPv4 peer as IPv4 (127.0.0.2:5000, not
            // [::ffff:127.0.0.2]:5000): the form an --allow rule or a firewall names it by.
            // `{:#}` writes it as the kernel gave it, as --explain and strace show a call.
            if f.alternate() {
                return write!(f, "{addr}");
            }
            let canonical = std::net::SocketAddr::new(addr.ip().to_canonical(), addr.port());
            write!(f, "{canonical}")
        } else if let Some(path) = self.0.as_pathname() {
            f.write_str(&escape_name(path.as_os_str().as_bytes()))
        } else if let Some(name) = self.0.as_abstract_namespace() {
            write!(f, "@{}", escape_name(name))
        } else {
            f.write_str("(unnamed)")
        }
    }
}

impl DatagramSocket {
    pub(crate) fn proto(&self) -> Proto {
        self.proto
    }

    pub(crate) fn local(&self) -> &Address {
        &self.local
    }

    /// getsockname(2): the address as bound (the port the kernel chose for port 0).
    pub(crate) fn local_sockaddr(&self) -> io::Result<SockAddr> {
        self.sock.local_addr()
    }

    /// recvfrom(2): one datagram and who sent it.
    pub(crate) fn recv_from(&self, buf: &mut [u8]) -> io::Result<(Received, PeerAddr)> {
        let (n, from) = calls::recv_from(&self.sock, as_uninit(buf))?;
        Ok((Received::of(n, buf.len()), PeerAddr(from)))
    }

    /// recvfrom(2) that never blocks: WouldBlock when nothing is queued.
    pub(crate) fn try_recv_from(&self, buf: &mut [u8]) -> io::Result<(Received, PeerAddr)> {
        let (n, from) = calls::try_recv_from(&self.sock, as_uninit(buf))?;
        Ok((Received::of(n, buf.len()), PeerAddr(from)))
    }

    /// sendto(2): one datagram to `to` (from the request's destination, on a request's
    /// handle: see [`DatagramSocket::for_request`]).
    pub(crate) fn send_to(&self, buf: &[u8], to: &PeerAddr) -> io::Result<()> {
        match self.reply {
            pktinfo::ReplyFrom::Request(arrival) => self.reply_to(buf, to, Some(&arrival), None, 0),
            _ => self.send_via(buf, to, None, 0),
        }
    }

    /// sendto(2) that never blocks: WouldBlock when `to` cannot take it now.
    pub(crate) fn try_send_to(&self, buf: &[u8], to: &PeerAddr) -> io::Result<()> {
        match self.reply {
            pktinfo::ReplyFrom::Request(arrival) => {
                self.reply_to(buf, to, Some(&arrival), None, libc::MSG_DONTWAIT)
            }
            _ => self.send_via(buf, to, None, libc::MSG_DONTWAIT),
        }
    }

    /// sendto(2), to a Unix path only through its sender's socket file as its datagram's
    /// receive held it (`held`, or this request handle's own), never by resolving the path
    /// again: see [`unix::reply_addr`].
    pub(crate) fn send_via(
        &self,
        buf: &[u8],
        to: &PeerAddr,
        held: Option<&unix::ReplyPath>,
        flags: libc::c_int,
    ) -> io::Result<()> {
        self.through(to, held, |addr| {
            calls::send_to_flags(&self.sock, buf, addr, flags).map(|_| ())
        })
    }

    /// connect(2) to `to`, a Unix path as [`DatagramSocket::send_via`] reaches it.
    pub(crate) fn connect_to(&self, to: &PeerAddr) -> io::Result<()> {
        self.through(to, None, |addr| calls::connect(&self.sock, addr))
    }

    /// `call` with the address that reaches `to`. A socket that answers senders (its
    /// datagrams' credentials read, or a request's socket file held) reaches a Unix path only
    /// through the held file; a client's socket sends where its user said, the path opened
    /// for the call alone.
    fn through<R>(
        &self,
        to: &PeerAddr,
        held: Option<&unix::ReplyPath>,
        call: impl FnOnce(&SockAddr) -> io::Result<R>,
    ) -> io::Result<R> {
        let held = held.or(self.held.as_deref());
        let opened = if held.is_none() && !self.passcred {
            unix::named_path(to)?
        } else {
            None
        };
        call(unix::reply_addr(to, held.or(opened.as_ref()))?)
    }

    /// This socket answers as `handle` does: through the socket file of the request it was
    /// made for (a transfer socket, connected to that sender).
    pub(crate) fn answer_as(&mut self, handle: &DatagramSocket) {
        self.held = handle.held.clone();
    }

    /// The socket itself, for options this type does not wrap.
    pub(crate) fn socket(&self) -> &Socket {
        &self.sock
    }

    pub(crate) fn set_nonblocking(&self, nonblocking: bool) -> io::Result<()> {
        calls::set_nonblocking(&self.sock, nonblocking)
    }

    /// SO_RCVTIMEO: how long a blocking recvfrom waits (None: forever).
    pub(crate) fn set_read_timeout(&self, timeout: Option<std::time::Duration>) -> io::Result<()> {
        calls::set_timeout(&self.sock, "SO_RCVTIMEO", timeout)
    }

    /// A second handle on the same socket (dup(2)), for another thread to send from. The
    /// socket file stays with the original, which removes it when dropped.
    pub(crate) fn try_clone(&self) -> io::Result<DatagramSocket> {
        Ok(DatagramSocket {
            sock: self.sock.try_clone()?,
            proto: self.proto,
            local: self.local.clone(),
            _file: None,
            reply: self.reply,
            passcred: self.passcred,
            held: self.held.clone(),
        })
    }
}

/// A datagram socket of `proto` bound to a fresh address of the kernel's choosing: port 0
/// on `near`'s IP (or the unspecified address of its family), or an autobound Unix name.
/// A file transfer gets one of these on each side, as a TFTP transfer gets its own port.
pub(crate) fn ephemeral_datagram(
    proto: Proto,
    near: &Address,
    any_ip: bool,
) -> Result<DatagramSocket> {
    match near {
        Address::UnixPath(_) | Address::UnixAbstract(_) => unix::bind_autobound(proto),
        _ => {
            let addr = *ip::resolve(near)?.first().context("no address")?;
            let ip = if any_ip {
                match addr {
                    std::net::SocketAddr::V4(_) => std::net::Ipv4Addr::UNSPECIFIED.into(),
                    std::net::SocketAddr::V6(_) => std::net::Ipv6Addr::UNSPECIFIED.into(),
                }
            } else {
                addr.ip()
            };
            udp::bind_plain(
                &Address::Ip(std::net::SocketAddr::new(ip, 0)),
                &SocketOptions::default(),
            )
        }
    }
}

impl AsFd for DatagramSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.sock.as_fd()
    }
}

/// Whether the other end of `sock` hung up (POLLRDHUP), without waiting.
fn hung_up(sock: &Socket) -> bool {
    ready_now(sock, libc::POLLRDHUP) & (libc::POLLRDHUP | libc::POLLHUP) != 0
}

/// What `sock` has of `events` now (and POLLHUP, POLLERR): one poll(2) that never waits.
fn ready_now(sock: &Socket, events: libc::c_short) -> libc::c_short {
    use std::os::fd::AsRawFd;
    let mut fd = libc::pollfd {
        fd: sock.as_raw_fd(),
        events,
        revents: 0,
    };
    // Safety: one pollfd, valid for the call; a timeout of 0 never waits.
    let n = unsafe { libc::poll(&mut fd, 1, 0) };
    if n > 0 { fd.revents } else { 0 }
}

/// One recv(2) on a connected socket, telling end-of-stream and truncation apart from data.
#[inline(always)]
fn recv_message(sock: &Socket, kind: SocketKind, buf: &mut [u8]) -> io::Result<Received> {
    // With MSG_TRUNC a message socket returns the message's real length even when the
    // buffer is shorter, which is how truncation is detected.
    let flags = if kind == SocketKind::Stream {
        0
    } else {
        libc::MSG_TRUNC
    };
    let n = calls::recv(sock, as_uninit(buf), flags)?;
    Ok(if n > buf.len() {
        Received::Truncated(n)
    } else if n == 0 && kind != SocketKind::Datagram {
        Received::Closed
    } else {
        Received::Data(n)
    })
}

impl Drop for Conn {
    fn drop(&mut self) {
        // No close_notify here: a forked server's parent drops its copy of a connection
        // its child serves, and the two share the socket.
        calls::closing(&self.sock);
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        calls::closing(&self.sock);
    }
}

impl Drop for DatagramSocket {
    fn drop(&mut self) {
        calls::closing(&self.sock);
    }
}

/// socket2 reads into `MaybeUninit` buffers; netecho's buffers are always initialised.
fn as_uninit(buf: &mut [u8]) -> &mut [MaybeUninit<u8>] {
    // Safety: `MaybeUninit<u8>` has the layout of `u8`, and the kernel (through socket2) only
    // ever writes initialised bytes into the slice, so it stays valid as `[u8]` afterwards.
    unsafe { &mut *(buf as *mut [u8] as *mut [MaybeUninit<u8>]) }
}
