//! Addresses as a user writes them: `tcp://[::1]:3234`, `127.0.0.1:3234`, `localhost`,
//! `/tmp/echo.sock`, `@name`, `unix-dgram:///tmp/x.sock`, `raw://127.0.0.1`, `raw6://::1`,
//! parsed into an [`Endpoint`].

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU8, Ordering};

use serde::Serialize;

use crate::choice::{Choice, from_str_by_name};
use crate::error::{Subject, UsageError};

mod subuid;
pub(crate) use subuid::person_of;

/// The port of the socket-programming lesson netecho comes from; used when an address has none.
pub(crate) const DEFAULT_PORT: u16 = 3234;

/// A protocol: a socket family and type, as `--proto` and URL schemes name them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Proto {
    /// SOCK_STREAM over AF_INET or AF_INET6.
    Tcp,
    /// SOCK_DGRAM over AF_INET or AF_INET6 (recvfrom/sendto).
    Udp,
    /// AF_UNIX SOCK_STREAM, at a path or an @abstract name.
    Unix,
    /// AF_UNIX SOCK_DGRAM.
    UnixDgram,
    /// AF_UNIX SOCK_SEQPACKET: connected, reliable, and keeps message boundaries.
    UnixSeqpacket,
    /// SOCK_RAW over AF_INET or AF_INET6: whole IP packets of one protocol (--ip-proto), no ports.
    Raw,
    /// QUIC over UDP (quinn): TLS 1.3 inside, a stream per message, or datagrams.
    Quic,
}

/// How a socket type carries messages, which decides how the service reads and replies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SocketKind {
    /// A connected byte stream: no message boundaries, a read of 0 bytes means the peer closed.
    Stream,
    /// Connected, one message per read, boundaries kept.
    SeqPacket,
    /// Unconnected messages, each with its sender's address.
    Datagram,
}

impl SocketKind {
    /// The socket type as socket(2) names it.
    pub(crate) fn name(self) -> &'static str {
        match self {
            SocketKind::Stream => "SOCK_STREAM",
            SocketKind::Datagram => "SOCK_DGRAM",
            SocketKind::SeqPacket => "SOCK_SEQPACKET",
        }
    }
}

impl Proto {
    pub(crate) const ALL: [Proto; 7] = [
        Proto::Tcp,
        Proto::Udp,
        Proto::Unix,
        Proto::UnixDgram,
        Proto::UnixSeqpacket,
        Proto::Raw,
        Proto::Quic,
    ];

    /// The name used by `--proto`, URL schemes and the `listening` line.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
            Proto::Unix => "unix",
            Proto::UnixDgram => "unix-dgram",
            Proto::UnixSeqpacket => "unix-seqpacket",
            Proto::Raw => "raw",
            Proto::Quic => "quic",
        }
    }

    pub(crate) fn from_name(name: &str) -> Option<Proto> {
        Proto::ALL.into_iter().find(|p| p.name() == name)
    }

    pub(crate) fn kind(self) -> SocketKind {
        match self {
            Proto::Tcp | Proto::Unix => SocketKind::Stream,
            // QUIC's default, a stream per message, is connected, reliable and keeps
            // boundaries; --framing and --quic-datagrams change it (QuicMode::kind).
            Proto::UnixSeqpacket | Proto::Quic => SocketKind::SeqPacket,
            // A raw socket is message-based and unconnected, as a datagram socket is.
            Proto::Udp | Proto::UnixDgram | Proto::Raw => SocketKind::Datagram,
        }
    }

    pub(crate) fn is_unix(self) -> bool {
        matches!(self, Proto::Unix | Proto::UnixDgram | Proto::UnixSeqpacket)
    }

    /// The address `serve` uses when `--addr` is left out: loopback, never every interface.
    pub(crate) fn default_address(self) -> Address {
        match self {
            Proto::Tcp | Proto::Udp | Proto::Quic => Address::Ip(SocketAddr::new(
                IpAddr::V4(Ipv4Addr::LOCALHOST),
                DEFAULT_PORT,
            )),
            Proto::Unix => Address::UnixPath("/tmp/netecho.sock".into()),
            Proto::UnixDgram => Address::UnixPath("/tmp/netecho-dgram.sock".into()),
            Proto::UnixSeqpacket => Address::UnixPath("/tmp/netecho-seqpacket.sock".into()),
            // Raw IP has no ports: the port of the address is unused (0).
            Proto::Raw => Address::Ip(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0)),
        }
    }
}

impl Choice for Proto {
    const ALL: &'static [Proto] = &Proto::ALL;

    fn name(self) -> &'static str {
        Proto::name(self)
    }

    fn help(self) -> &'static str {
        match self {
            Proto::Tcp => "SOCK_STREAM over AF_INET or AF_INET6",
            Proto::Udp => "SOCK_DGRAM over AF_INET or AF_INET6 (recvfrom/sendto)",
            Proto::Unix => "AF_UNIX SOCK_STREAM, at a path or an @abstract name",
            Proto::UnixDgram => "AF_UNIX SOCK_DGRAM",
            Proto::UnixSeqpacket => {
                "AF_UNIX SOCK_SEQPACKET: connected, reliable, and keeps message boundaries"
            }
            Proto::Raw => {
                "SOCK_RAW over AF_INET or AF_INET6: whole IP packets of one protocol \
                 (--ip-proto), no ports; every payload starts with netecho's 12-byte header \
                 (README 'Raw IP': NECH, type 1 request or 2 reply, identifier, sequence \
                 number), and the client takes as its reply only a packet with it, type 2"
            }
            Proto::Quic => {
                "QUIC over UDP (quinn, TLS 1.3): a stream per message, one stream with \
                 --framing, datagrams with --quic-datagrams"
            }
        }
    }
}

from_str_by_name!(Proto);

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Where a socket lives, before any name is resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Address {
    /// A numeric IP address and port.
    Ip(SocketAddr),
    /// A host name and port, resolved with getaddrinfo when used.
    Host(String, u16),
    /// A Unix socket file.
    UnixPath(PathBuf),
    /// A Linux abstract Unix name (`@name`): no file, gone when the last socket closes.
    UnixAbstract(Vec<u8>),
}

impl Address {
    /// The address family a socket for this address has; `None` for a host name, whose
    /// family is known only once getaddrinfo has answered.
    pub(crate) fn family(&self) -> Option<Family> {
        match self {
            Address::Ip(a) if a.is_ipv6() => Some(Family::Inet6),
            Address::Ip(_) => Some(Family::Inet),
            Address::Host(..) => None,
            Address::UnixPath(_) | Address::UnixAbstract(_) => Some(Family::Unix),
        }
    }

    /// An IP address other than loopback (127.0.0.0/8, ::1, and ::ffff:127.x.y.z).
    pub(crate) fn off_loopback(&self) -> bool {
        match self {
            Address::Ip(a) => !a.ip().to_canonical().is_loopback(),
            _ => false,
        }
    }
}

/// An address family, named as socket(2) names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub(crate) enum Family {
    #[serde(rename = "AF_INET")]
    Inet,
    #[serde(rename = "AF_INET6")]
    Inet6,
    #[serde(rename = "AF_UNIX")]
    Unix,
}

impl Family {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Family::Inet => "AF_INET",
            Family::Inet6 => "AF_INET6",
            Family::Unix => "AF_UNIX",
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::Ip(addr) => write!(f, "{addr}"),
            Address::Host(host, port) => write!(f, "{host}:{port}"),
            // A path as typed, so a listening line reads back (a backslash too), unless it
            // holds what a line cannot: a control character, a byte of no UTF-8 character.
            Address::UnixPath(path) => {
                let bytes = path.as_os_str().as_bytes();
                match std::str::from_utf8(bytes) {
                    Ok(text) if !text.chars().any(char::is_control) => f.write_str(text),
                    _ => f.write_str(&escape_name(bytes)),
                }
            }
            Address::UnixAbstract(name) => write!(f, "@{}", escape_name(name)),
        }
    }
}

/// A name a client or user chose (a socket file, an abstract name) as one printable line
/// that reads back: printable UTF-8 as it is, a backslash doubled, a control character as
/// Rust escapes it (`\n`, `\u{1b}`), a byte of no UTF-8 character as `\xNN`. Two names
/// never look the same, and `@` and an escaped abstract name is that address again.
pub(crate) fn escape_name(name: &[u8]) -> String {
    let mut out = String::with_capacity(name.len());
    for chunk in name.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                c if c.is_control() => out.extend(c.escape_default()),
                c => out.push(c),
            }
        }
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

/// The bytes of a name [`escape_name`] wrote; `None` for a backslash that starts none of its
/// escapes.
fn unescape_name(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len());
    let mut rest = text;
    while let Some((plain, after)) = rest.split_once('\\') {
        out.extend_from_slice(plain.as_bytes());
        let (byte, len): (Vec<u8>, usize) = match after.as_bytes().first()? {
            b'\\' => (vec![b'\\'], 1),
            b'n' => (vec![b'\n'], 1),
            b'r' => (vec![b'\r'], 1),
            b't' => (vec![b'\t'], 1),
            b'x' => (
                vec![u8::from_str_radix(hex(after.get(1..3)?)?, 16).ok()?],
                3,
            ),
            b'u' => {
                let (digits, _) = after.strip_prefix("u{")?.split_once('}')?;
                let c = char::from_u32(u32::from_str_radix(hex(digits)?, 16).ok()?)?;
                (c.to_string().into_bytes(), digits.len() + 3)
            }
            _ => return None,
        };
        out.extend_from_slice(&byte);
        rest = &after[len..];
    }
    out.extend_from_slice(rest.as_bytes());
    Some(out)
}

/// `digits` when they are hex digits and nothing else (from_str_radix takes a sign too).
fn hex(digits: &str) -> Option<&str> {
    (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_hexdigit())).then_some(digits)
}

/// A protocol and an address: everything needed to bind or connect a socket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Endpoint {
    pub proto: Proto,
    pub addr: Address,
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.proto, &self.addr) {
            // Raw IP has no ports, so none is shown.
            (Proto::Raw, Address::Ip(addr)) => write!(f, "raw {}", addr.ip()),
            (Proto::Raw, Address::Host(host, _)) => write!(f, "raw {host}"),
            (proto, addr) => write!(f, "{proto} {addr}"),
        }
    }
}

/// A protocol whose sockets connect, or answer whoever sent: every protocol but raw IP, whose
/// packets carry headers netecho writes itself (`transport::raw`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum SockProto {
    Tcp,
    Udp,
    Unix,
    UnixDgram,
    UnixSeqpacket,
    Quic,
}

impl SockProto {
    pub(crate) fn proto(self) -> Proto {
        match self {
            SockProto::Tcp => Proto::Tcp,
            SockProto::Udp => Proto::Udp,
            SockProto::Unix => Proto::Unix,
            SockProto::UnixDgram => Proto::UnixDgram,
            SockProto::UnixSeqpacket => Proto::UnixSeqpacket,
            SockProto::Quic => Proto::Quic,
        }
    }

    pub(crate) fn name(self) -> &'static str {
        self.proto().name()
    }

    pub(crate) fn kind(self) -> SocketKind {
        self.proto().kind()
    }

    pub(crate) fn is_unix(self) -> bool {
        self.proto().is_unix()
    }
}

impl From<SockProto> for Proto {
    fn from(p: SockProto) -> Proto {
        p.proto()
    }
}

impl fmt::Display for SockProto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.proto().name())
    }
}

impl Proto {
    /// This protocol as a [`SockProto`], or a usage error when it is raw: raw sockets serve
    /// `serve`, `send` and `ping` only.
    pub(crate) fn not_raw(self, command: &str) -> Result<SockProto, UsageError> {
        self.sock().ok_or_else(|| {
            UsageError::new(format!(
                "{command} does not work over raw sockets; use --proto raw with serve and \
                 send, or netecho ping, and another protocol (udp, say) for {command}"
            ))
        })
    }

    /// This protocol when it connects or answers senders; `None` for raw IP.
    pub(crate) fn sock(self) -> Option<SockProto> {
        match self {
            Proto::Tcp => Some(SockProto::Tcp),
            Proto::Udp => Some(SockProto::Udp),
            Proto::Unix => Some(SockProto::Unix),
            Proto::UnixDgram => Some(SockProto::UnixDgram),
            Proto::UnixSeqpacket => Some(SockProto::UnixSeqpacket),
            Proto::Quic => Some(SockProto::Quic),
            Proto::Raw => None,
        }
    }
}

/// An endpoint of a [`SockProto`]: what a client connects to, and what a relay listens on
/// and connects to. Raw IP never gets here: it is refused where the user names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Target {
    pub proto: SockProto,
    pub addr: Address,
}

impl Target {
    /// The target as a user types it to a client, for advice to paste: the address, after
    /// `--proto` when the address alone would mean another protocol (tcp for an IP address
    /// or a host, unix for a path or an @name).
    pub(crate) fn typed(&self) -> String {
        match (self.proto, &self.addr) {
            (SockProto::Tcp, Address::Ip(_) | Address::Host(..))
            | (SockProto::Unix, Address::UnixPath(_) | Address::UnixAbstract(_)) => {
                self.addr.to_string()
            }
            (proto, addr) => format!("--proto {proto} {addr}"),
        }
    }

    pub(crate) fn endpoint(&self) -> Endpoint {
        Endpoint {
            proto: self.proto.into(),
            addr: self.addr.clone(),
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.proto, self.addr)
    }
}

impl From<&Target> for Subject {
    fn from(t: &Target) -> Subject {
        Subject::new(t.to_string(), t.addr.family())
            .datagram(t.proto.proto().kind() == SocketKind::Datagram)
            .off_loopback(t.addr.off_loopback())
    }
}

impl From<&Endpoint> for Subject {
    fn from(e: &Endpoint) -> Subject {
        Subject::new(e.to_string(), e.addr.family())
            .datagram(e.proto.kind() == SocketKind::Datagram)
            .off_loopback(e.addr.off_loopback())
    }
}

impl Endpoint {
    /// Parses `text`, taking the protocol from a URL scheme, else from `proto`, else from the
    /// form of the address (a path or @name is `unix`, anything else `tcp`).
    pub(crate) fn parse(text: &str, proto: Option<Proto>) -> Result<Endpoint, UsageError> {
        if let Some(advice) = socat_address(text, "") {
            return Err(UsageError::new(advice));
        }
        let (scheme, rest) = match text.split_once("://") {
            // raw6:// is raw:// restricted to IPv6.
            Some(("raw6", rest)) => (Some(Proto::Raw), rest),
            Some((scheme, rest)) => {
                let from_url = Proto::from_name(scheme).ok_or_else(|| {
                    UsageError::new(format!(
                        "unknown protocol '{scheme}' in '{text}'; use one of: {}",
                        proto_names()
                    ))
                })?;
                (Some(from_url), rest)
            }
            None => (None, text),
        };
        let proto = match (scheme, proto) {
            (Some(url), Some(flag)) if url != flag => {
                return Err(UsageError::new(format!(
                    "'{text}' says {url} but --proto says {flag}; drop one of them"
                )));
            }
            (Some(p), _) | (None, Some(p)) => p,
            (None, None) if looks_unix(rest) => Proto::Unix,
            (None, None) => Proto::Tcp,
        };
        let addr = if proto.is_unix() {
            parse_unix(rest, proto, text)?
        } else {
            if looks_unix(rest) {
                let needs = match proto {
                    Proto::Raw => "an IP address or HOST (no port)",
                    _ => "IP:PORT, [IPv6]:PORT or HOST:PORT",
                };
                return Err(UsageError::new(format!(
                    "'{text}' is a Unix socket address, but {proto} needs {needs}; use \
                     --proto unix (or unix-dgram, unix-seqpacket) for it"
                )));
            }
            if proto == Proto::Raw {
                parse_raw(rest, text.starts_with("raw6://"), text)?
            } else {
                parse_inet(rest, text)?
            }
        };
        Ok(Endpoint { proto, addr })
    }

    /// This endpoint as a [`Target`]; `None` when it is raw.
    pub(crate) fn target(&self) -> Option<Target> {
        Some(Target {
            proto: self.proto.sock()?,
            addr: self.addr.clone(),
        })
    }

    /// This endpoint as a [`Target`], or a usage error when it is raw: raw sockets serve
    /// `serve`, `send` and `ping` only (a raw packet has no port to tell a transfer or a
    /// load run apart).
    pub(crate) fn not_raw(self, command: &str) -> Result<Target, UsageError> {
        Ok(Target {
            proto: self.proto.not_raw(command)?,
            addr: self.addr,
        })
    }
}

impl Endpoint {
    /// Parses an address to listen on: as [`Endpoint::parse`], and a port alone (`4000` or
    /// `:4000`) is that port on every address, IPv6 and IPv4 alike (`[::]`, dual-stack).
    pub(crate) fn parse_listen(text: &str, proto: Option<Proto>) -> Result<Endpoint, UsageError> {
        let (scheme, rest) = match text.split_once("://") {
            Some((scheme, rest)) => (Proto::from_name(scheme), rest),
            None => (None, text),
        };
        let ip = scheme
            .or(proto)
            .is_none_or(|p| !p.is_unix() && p != Proto::Raw);
        if ip && is_port_alone(rest) {
            let every = format!("[::]:{}", rest.trim_start_matches(':'));
            return Endpoint::parse(&text.replacen(rest, &every, 1), proto);
        }
        Endpoint::parse(text, proto)
    }
}

/// `HOST PORT` as nc takes them: `Some("HOST:PORT")` when `host` is an IP address or a name
/// without a port and `word` is a port number (1 to 65535); otherwise `None`, and `word` is
/// not a port (a message, a file name).
pub(crate) fn join_port(host: &str, word: &str) -> Option<String> {
    let port_like = !word.is_empty() && word.len() <= 5 && word.bytes().all(|b| b.is_ascii_digit());
    if !port_like || !matches!(word.parse::<u16>(), Ok(1..)) {
        return None;
    }
    if host.contains("://") || looks_unix(host) || is_port_alone(host) {
        return None;
    }
    let bare = host
        .strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
        .unwrap_or(host);
    if bare.contains(':') {
        // An IPv6 address (with or without a zone) has colons but no port when it parses
        // whole; anything else with a colon already has its port.
        let ip = parse_ip(bare, host).ok().flatten();
        return ip.map(|_| format!("[{bare}]:{word}"));
    }
    Some(format!("{host}:{word}"))
}

/// Whether `text` is a port and nothing else (`4000`, `:4000`): never an IP address here,
/// though getaddrinfo would read `1` as 0.0.0.1.
fn is_port_alone(text: &str) -> bool {
    let digits = text.strip_prefix(':').unwrap_or(text);
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}

/// An IP address, IPv6 with an optional zone (`fe80::1%eth0`, `fe80::1%2`) as link-local
/// addresses need; the zone is the interface's index. `Ok(None)` when `text` is no IP
/// address; an error for a zone that names no interface, or that the address has no use for.
fn parse_ip(text: &str, whole: &str) -> Result<Option<(IpAddr, u32)>, UsageError> {
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Ok(Some((ip, 0)));
    }
    let Some((ip, zone)) = text.split_once('%') else {
        return Ok(None);
    };
    let Ok(ip) = ip.parse::<Ipv6Addr>() else {
        return Ok(None);
    };
    let index = match zone.parse::<u32>() {
        Ok(n) => n,
        Err(_) => nix::net::if_::if_nametoindex(zone).map_err(|_| bad_zone(whole, zone))?,
    };
    if !needs_zone(&ip) {
        return Err(UsageError::new(format!(
            "'{whole}': a zone (%{zone}) picks the interface of a link-local address \
             (fe80::/10, ff02::/16), but {ip} is the same on every interface; drop %{zone}"
        )));
    }
    Ok(Some((IpAddr::V6(ip), index)))
}

/// Whether the kernel needs an interface to tell which `ip` is meant (sin6_scope_id):
/// link-local unicast, and multicast of interface-local or link-local scope.
fn needs_zone(ip: &Ipv6Addr) -> bool {
    ip.is_unicast_link_local() || (ip.is_multicast() && matches!(ip.segments()[0] & 0xf, 1 | 2))
}

/// A host written as an IP address, IPv6 with an optional zone (`fe80::1%eth0`), with port 0:
/// `None` when it is not an address (a name, or nonsense), an error for a zone that names no
/// interface.
pub(crate) fn ip_host(text: &str) -> Result<Option<SocketAddr>, UsageError> {
    Ok(parse_ip(text, text)?.map(|(ip, zone)| socket_addr(ip, zone, 0)))
}

fn socket_addr(ip: IpAddr, zone: u32, port: u16) -> SocketAddr {
    match ip {
        IpAddr::V6(v6) => SocketAddr::V6(SocketAddrV6::new(v6, port, 0, zone)),
        v4 => SocketAddr::new(v4, port),
    }
}

/// The family `-4` or `-6` asks host names to resolve to: 0 either, 4 or 6.
static FAMILY: AtomicU8 = AtomicU8::new(0);

/// Makes names resolve to IPv4 only (`-4`), IPv6 only (`-6`), or either (`None`).
pub(crate) fn choose_family(family: Option<Family>) {
    let v = match family {
        Some(Family::Inet) => 4,
        Some(Family::Inet6) => 6,
        _ => 0,
    };
    FAMILY.store(v, Ordering::Relaxed);
}

/// Whether `addr` is of the family `-4` or `-6` chose (any, without them).
pub(crate) fn family_allows(addr: &SocketAddr) -> bool {
    match FAMILY.load(Ordering::Relaxed) {
        4 => addr.is_ipv4(),
        6 => addr.is_ipv6(),
        _ => true,
    }
}

/// The flag that chose the family, for errors: "-4", "-6" or "".
pub(crate) fn family_flag() -> &'static str {
    match FAMILY.load(Ordering::Relaxed) {
        4 => "-4",
        6 => "-6",
        _ => "",
    }
}

/// socat's address words (`TCP-LISTEN:4000`, `TCP:HOST:4000`, `UNIX-CONNECT:/tmp/s`), which
/// would otherwise read as a host named TCP: the netecho way to write them, with the host,
/// port and options (`,fork`, `,ip-multicast-ttl=2`) the user gave carried over, and `said`
/// (the message, " hi", or "") after a send's address.
pub(crate) fn socat_address(text: &str, said: &str) -> Option<String> {
    let (kind, rest) = text.split_once(':')?;
    let scheme = kind.to_ascii_lowercase();
    if let Some(proto) = rest
        .starts_with('/')
        .then(|| Proto::from_name(&scheme))
        .flatten()
    {
        // `tcp:/127.0.0.1:4000`: a URL short of a slash, never a Unix path.
        let path = match proto.is_unix() {
            true => rest,
            false => rest.trim_start_matches('/'),
        };
        return (!rest.starts_with("//")).then(|| {
            format!("'{text}' is short of a slash: a netecho address is written {scheme}://{path}")
        });
    }
    let (target, options) = rest.split_once(',').unwrap_or((rest, ""));
    let here = socat_here(&kind.to_ascii_uppercase(), target, options, said)?;
    if target.is_empty() {
        return Some(format!(
            "'{text}' is a socat address without its target; in netecho an address is HOST \
             PORT, HOST:PORT, a path, or a URL such as udp://HOST:PORT"
        ));
    }
    Some(format!("'{text}' is a socat address; in netecho: {here}"))
}

/// The netecho command for socat's address `KIND:TARGET,OPTIONS`, a send's with `said`.
fn socat_here(kind: &str, target: &str, options: &str, said: &str) -> Option<String> {
    let option = |name: &str| {
        options
            .split(',')
            .find_map(|o| o.strip_prefix(name)?.strip_prefix('='))
            .filter(|value| !value.is_empty())
    };
    let (host, port) = socat_split(target);
    let here = match kind.trim_end_matches(['4', '6']) {
        "TCP-LISTEN" | "TCP4-LISTEN" | "TCP6-LISTEN" => format!("`netecho serve --addr :{target}`"),
        "UDP-LISTEN" | "UDP4-LISTEN" | "UDP6-LISTEN" | "UDP-RECV" | "UDP-RECVFROM"
        | "UDP4-RECVFROM" | "UDP6-RECVFROM" | "UDP4-RECV" | "UDP6-RECV" => {
            socat_udp_server(target, option("ip-add-membership"))
        }
        "TCP" => format!("`netecho send {host} {port}{said}`"),
        "UDP" | "UDP-CONNECT" => format!("`netecho send --proto udp {host} {port}{said}`"),
        "UDP-DATAGRAM" | "UDP4-DATAGRAM" | "UDP6-DATAGRAM" | "UDP-SENDTO" | "UDP4-SENDTO"
        | "UDP6-SENDTO" => {
            let ttl = option("ip-multicast-ttl").map(|n| format!("--ttl {n} "));
            let broadcast = options.split(',').any(|o| o == "broadcast");
            let broadcast = if broadcast { "--broadcast " } else { "" };
            let to = join_port(&host, &port).unwrap_or_else(|| target.to_string());
            format!(
                "`netecho send {broadcast}{}udp://{to}{said}`",
                ttl.unwrap_or_default()
            )
        }
        "UNIX-CONNECT" | "UNIX-CLIENT" => format!("`netecho send {target}{said}`"),
        "UNIX-LISTEN" => format!("`netecho serve --addr {target}`"),
        "ABSTRACT-CONNECT" | "ABSTRACT-CLIENT" => format!("`netecho send @{target}{said}`"),
        "ABSTRACT-LISTEN" => format!("`netecho serve --addr @{target}`"),
        // verify=0 trusts any certificate: netecho's --insecure, which says so when it runs.
        "OPENSSL" | "OPENSSL-CONNECT" | "SSL" if option("verify") == Some("0") => format!(
            "`netecho send --tls --insecure {host} {port}{said}` (verify=0 is --insecure: any \
             certificate is trusted; --pin the fingerprint serve printed checks it)"
        ),
        "OPENSSL" | "OPENSSL-CONNECT" | "SSL" => format!(
            "`netecho send --tls {host} {port}{said}` (--pin the fingerprint serve printed, or \
             --ca FILE)"
        ),
        "OPENSSL-LISTEN" | "SSL-LISTEN" => format!(
            "`netecho serve --tls --addr :{target}` (--cert FILE --key FILE, or one made at start)"
        ),
        // socat's TLS over udp; netecho's is QUIC.
        "DTLS" | "OPENSSL-DTLS-CLIENT" => {
            format!("`netecho send quic://{target}{said}` (QUIC: TLS 1.3 over udp; --pin or --ca)")
        }
        _ => return None,
    };
    Some(here)
}

/// A udp server of socat's: `PORT` with `ip-add-membership=GROUP:IFACE` joining a group.
fn socat_udp_server(port: &str, membership: Option<&str>) -> String {
    match membership.map(|m| m.split_once(':').unwrap_or((m, ""))) {
        Some((group, "")) => {
            format!("`netecho serve --proto udp --addr {group}:{port} --join {group}`")
        }
        Some((group, iface)) => format!(
            "`netecho serve --proto udp --addr {group}:{port} --join {group} --iface {iface}`"
        ),
        None => format!("`netecho serve --proto udp --addr :{port}`"),
    }
}

/// socat's `HOST:PORT` (`[::1]:4000` too) as netecho's two words, HOST without brackets.
pub(crate) fn socat_split(target: &str) -> (String, String) {
    if let Some(inner) = target.strip_prefix('[') {
        return match inner.split_once("]:") {
            Some((host, port)) => (host.to_string(), port.to_string()),
            None => (target.to_string(), DEFAULT_PORT.to_string()),
        };
    }
    match target.rsplit_once(':') {
        Some((host, port)) => {
            let bare = host.strip_prefix('[').and_then(|h| h.strip_suffix(']'));
            (bare.unwrap_or(host).to_string(), port.to_string())
        }
        None => (target.to_string(), DEFAULT_PORT.to_string()),
    }
}

fn proto_names() -> String {
    Proto::ALL.map(Proto::name).join(", ")
}

/// Whether `text` names a Unix socket: a path, or an abstract @name.
pub(crate) fn looks_unix(text: &str) -> bool {
    text.starts_with('@') || text.contains('/')
}

fn parse_unix(text: &str, proto: Proto, whole: &str) -> Result<Address, UsageError> {
    if let Some(name) = text.strip_prefix('@') {
        if name.is_empty() {
            return Err(UsageError::new(format!(
                "'{whole}': an abstract name needs at least one character after '@'"
            )));
        }
        return unescape_name(name)
            .map(Address::UnixAbstract)
            .ok_or_else(|| {
                UsageError::new(format!(
                    "'{whole}': a backslash in an @name starts an escape, as the log writes names \
                 (\\\\ for a backslash, \\xNN for a byte, \\n, \\t, \\r, \\u{{NN}})"
                ))
            });
    }
    if text.is_empty() {
        return Err(UsageError::new(format!(
            "'{whole}': {proto} needs a socket path such as /tmp/echo.sock or an @abstract name"
        )));
    }
    if text.parse::<SocketAddr>().is_ok() || text.parse::<IpAddr>().is_ok() {
        return Err(UsageError::new(format!(
            "'{whole}' is an IP address, but {proto} needs a socket path such as \
             /tmp/echo.sock or an @abstract name; use --proto tcp or udp for IP"
        )));
    }
    Ok(Address::UnixPath(PathBuf::from(text)))
}

/// An IP address or host name without a port: raw IP packets have no ports.
fn parse_raw(text: &str, v6_only: bool, whole: &str) -> Result<Address, UsageError> {
    let bare = text
        .strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
        .unwrap_or(text);
    let addr = match parse_ip(bare, whole)? {
        Some((ip, zone)) => Address::Ip(socket_addr(ip, zone, 0)),
        None if text.parse::<SocketAddr>().is_ok() || text.contains(':') => {
            return Err(UsageError::new(format!(
                "'{whole}': raw IP packets have no ports; give the address alone, such as \
                 127.0.0.1 or ::1 (--ip-proto chooses the IP protocol)"
            )));
        }
        None => match parse_inet(text, whole)? {
            Address::Host(host, _) => Address::Host(host, 0),
            other => other,
        },
    };
    if v6_only && !matches!(addr, Address::Ip(SocketAddr::V6(_))) {
        return Err(UsageError::new(format!(
            "'{whole}': raw6:// needs an IPv6 address such as ::1; use raw:// for IPv4 \
             addresses and host names"
        )));
    }
    Ok(addr)
}

fn parse_inet(text: &str, whole: &str) -> Result<Address, UsageError> {
    if text.is_empty() {
        return Err(UsageError::new(
            "empty address; give IP:PORT, [IPv6]:PORT or HOST:PORT (port 0 picks a free port)",
        ));
    }
    if is_port_alone(text) {
        return Err(UsageError::new(format!(
            "'{whole}' is a port alone, never an IP address: give the host too, as \
             `127.0.0.1 {p}` (HOST PORT) or 127.0.0.1:{p}",
            p = text.trim_start_matches(':')
        )));
    }
    // std reads a numeric zone too (`[::1%1]:80`); parse_ip checks that one is wanted.
    if let Some(addr) = text
        .parse::<SocketAddr>()
        .ok()
        .filter(|_| !text.contains('%'))
    {
        return scoped(addr, whole).map(Address::Ip);
    }
    v6_without_brackets(text, whole)?;
    // A bare IP (v4, or v6 with or without brackets, with or without a zone) takes the
    // default port.
    let bare = text
        .strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
        .unwrap_or(text);
    if let Some((ip, zone)) = parse_ip(bare, whole)? {
        if bare == text {
            port_in_v6(text, whole)?;
        }
        return scoped(socket_addr(ip, zone, DEFAULT_PORT), whole).map(Address::Ip);
    }
    if let Some(inner) = text.strip_prefix('[') {
        return parse_bracketed(inner, whole);
    }
    let (host, port) = match text.rsplit_once(':') {
        Some((host, port)) => (host, parse_port(port, whole)?),
        None => (text, DEFAULT_PORT),
    };
    let valid_host = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
    if !valid_host {
        return Err(UsageError::new(format!(
            "cannot parse '{whole}': '{host}' is not an IP address or a host name; \
             expected IP:PORT, [IPv6]:PORT or HOST:PORT"
        )));
    }
    Ok(Address::Host(host.to_string(), port))
}

/// IPv6 and a port without brackets, which no IPv6 address reads as (`:::4000`,
/// `::ffff:127.0.0.1:4000`, `fe80::1%eth0:4000`): the brackets that part them.
fn v6_without_brackets(text: &str, whole: &str) -> Result<(), UsageError> {
    let Some((host, port)) = text.rsplit_once(':') else {
        return Ok(());
    };
    let ip = host.split_once('%').map_or(host, |(ip, _)| ip);
    let port_like = !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit());
    let Some(v6) = ip.parse::<Ipv6Addr>().ok().filter(|_| port_like) else {
        return Ok(());
    };
    if text.parse::<Ipv6Addr>().is_ok() {
        return Ok(());
    }
    // The advice parses as it is: the scheme kept, a zone only where one belongs.
    let host = match needs_zone(&v6) {
        true => host,
        false => ip,
    };
    Err(UsageError::new(format!(
        "'{whole}' is IPv6 with a port: brackets tell the two apart, so write {}[{host}]:{port}",
        scheme_of(text, whole)
    )))
}

/// What `whole` holds before `text`: its URL scheme (`udp://`), or nothing.
fn scheme_of<'a>(text: &str, whole: &'a str) -> &'a str {
    whole.strip_suffix(text).unwrap_or("")
}

/// An IPv6 address without brackets whose last group reads as a port (`::1:4000`): it is
/// an address (`::1:4000` at port 3234), but hardly ever the one meant.
fn port_in_v6(text: &str, whole: &str) -> Result<(), UsageError> {
    let Some((ip, port)) = text.rsplit_once(':') else {
        return Ok(());
    };
    let digits = !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit());
    let (addr, zone) = ip.split_once('%').unwrap_or((ip, ""));
    let Some(v6) = addr.parse::<Ipv6Addr>().ok().filter(|_| digits) else {
        return Ok(());
    };
    let zone = match (v6.is_unicast_link_local(), zone) {
        (true, "") => "%eth0".to_string(),
        (_, "") => String::new(),
        (_, zone) => format!("%{zone}"),
    };
    let link = match zone.as_str() {
        "%eth0" => " (a link-local address also names its interface: `ip -br link` lists them)",
        _ => "",
    };
    let scheme = scheme_of(text, whole);
    Err(UsageError::new(format!(
        "'{whole}' reads as the IPv6 address {text} at port {DEFAULT_PORT}: if {port} is the \
         port, write {scheme}[{addr}{zone}]:{port} or `{addr}{zone} {port}`{link}; for that \
         address itself, write {scheme}[{text}]:{DEFAULT_PORT}"
    )))
}

/// `addr`, unless it is link-local without a zone: every interface has its own fe80::
/// network, so the kernel cannot tell which one is meant (EINVAL).
pub(crate) fn scoped(addr: SocketAddr, whole: &str) -> Result<SocketAddr, UsageError> {
    match addr {
        SocketAddr::V6(v6) if v6.ip().is_unicast_link_local() && v6.scope_id() == 0 => {
            Err(UsageError::new(format!(
                "'{whole}' is link-local: every interface has its fe80:: network, so name the \
                 one to use with a zone, such as [{}%eth0]:{} (`ip -br link` lists them)",
                v6.ip(),
                v6.port()
            )))
        }
        addr => Ok(addr),
    }
}

/// `[IPv6%zone]:PORT` (what std's parser is not given: a zone, or a malformed address).
fn parse_bracketed(inner: &str, whole: &str) -> Result<Address, UsageError> {
    let bad = || {
        UsageError::new(format!(
            "cannot parse '{whole}': expected [IPv6]:PORT, such as [::1]:3234"
        ))
    };
    let (ip, port) = inner.split_once("]:").ok_or_else(bad)?;
    let port = parse_port(port, whole)?;
    match parse_ip(ip, whole)? {
        Some((ip, zone)) => scoped(socket_addr(ip, zone, port), whole).map(Address::Ip),
        None => Err(bad()),
    }
}

fn bad_zone(whole: &str, zone: &str) -> UsageError {
    UsageError::new(format!(
        "'{whole}': no interface is named '{zone}' (the zone after %); `ip -br link` lists \
         them, and a zone names one, as in fe80::1%eth0 or [fe80::1%2]:80"
    ))
}

fn parse_port(port: &str, whole: &str) -> Result<u16, UsageError> {
    port.parse().map_err(|_| {
        UsageError::new(format!(
            "bad port '{port}' in '{whole}': a port is a number from 0 to 65535 (0 picks a free one)"
        ))
    })
}

/// What a client's share is counted by (a lab run's turn, --files and --exec connections,
/// TLS handshakes in progress): an IPv6 address's /64 (one host, or one site, holds a whole
/// /64), an IPv4 address (IPv4-mapped IPv6 as IPv4) itself.
pub(crate) fn share_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !(u64::MAX as u128))),
        v4 => v4,
    }
}

/// [`share_key`] as a person reads it: `10.0.0.1`, `2001:db8:1:2::/64`.
pub(crate) fn share_name(ip: IpAddr) -> String {
    match share_key(ip) {
        IpAddr::V6(net) => format!("{net}/64"),
        v4 => v4.to_string(),
    }
}

/// Whose share a connection counts against. On this host every user has the same addresses
/// (127.0.0.1 above all, and all of 127.0.0.0/8): counted by address, one local user holding
/// its share would turn every other away, root's own client included, and each loopback
/// address would give it a share more. So a peer on this host is counted by the user that
/// owns its socket, as the kernel tells (sock_diag), on all of the host's addresses at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Share {
    /// A source elsewhere: its address, an IPv6 address's /64 ([`share_key`]).
    Address(IpAddr),
    /// A user of this host: an IP peer's on this host as sock_diag tells, a Unix peer's as
    /// its credentials tell (SO_PEERCRED); `None`: its socket was gone when asked (or the
    /// kernel would not say), all such counted together. Made by [`Share::local`].
    Local(Option<u32>),
}

impl Share {
    /// The share of `uid`, a user of this host (`None`: not told): a subordinate uid
    /// (/etc/subuid) counts with its owner's ([`person_of`]), so a person's many uids hold
    /// one share, not one each.
    pub(crate) fn local(uid: Option<u32>) -> Share {
        Share::Local(uid.map(person_of))
    }
}

impl std::fmt::Display for Share {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Share::Address(ip) => f.write_str(&share_name(*ip)),
            Share::Local(Some(uid)) => write!(f, "uid {uid} on this host"),
            Share::Local(None) => f.write_str("this host, user unknown"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Endpoint {
        Endpoint::parse(text, None).unwrap()
    }

    #[test]
    fn forms() {
        assert_eq!(
            parse("127.0.0.1:80").addr,
            Address::Ip("127.0.0.1:80".parse().unwrap())
        );
        assert_eq!(
            parse("[::1]:80").addr,
            Address::Ip("[::1]:80".parse().unwrap())
        );
        assert_eq!(
            parse("::1").addr,
            Address::Ip("[::1]:3234".parse().unwrap())
        );
        assert_eq!(
            parse("[::]").addr,
            Address::Ip("[::]:3234".parse().unwrap())
        );
        assert_eq!(
            parse("localhost:7").addr,
            Address::Host("localhost".into(), 7)
        );
        assert_eq!(
            parse("localhost").addr,
            Address::Host("localhost".into(), 3234)
        );
        assert_eq!(parse("/tmp/x.sock").proto, Proto::Unix);
        assert_eq!(parse("@name").addr, Address::UnixAbstract(b"name".to_vec()));
        let e = parse("unix-dgram:///tmp/x.sock");
        assert_eq!(
            (e.proto, e.addr),
            (Proto::UnixDgram, Address::UnixPath("/tmp/x.sock".into()))
        );
        assert_eq!(parse("udp://[::1]:9").proto, Proto::Udp);
        assert_eq!(parse("unix-seqpacket://@s").proto, Proto::UnixSeqpacket);
        let raw = parse("raw://127.0.0.1");
        assert_eq!(
            (raw.proto, raw.to_string()),
            (Proto::Raw, "raw 127.0.0.1".into())
        );
        assert_eq!(parse("raw6://::1").to_string(), "raw ::1");
        assert_eq!(
            parse("raw6://[::1]").addr,
            Address::Ip("[::1]:0".parse().unwrap())
        );
        assert_eq!(
            parse("raw://localhost").addr,
            Address::Host("localhost".into(), 0)
        );
        let flag = Endpoint::parse("::1", Some(Proto::Raw)).unwrap();
        assert_eq!(flag.addr, Address::Ip("[::1]:0".parse().unwrap()));
    }

    #[test]
    fn raw_addresses_have_no_ports() {
        let err = |t: &str| Endpoint::parse(t, None).unwrap_err().to_string();
        assert!(err("raw://127.0.0.1:80").contains("no ports"));
        assert!(err("raw://[::1]:80").contains("no ports"));
        assert!(err("raw://localhost:80").contains("no ports"));
        assert!(err("raw6://127.0.0.1").contains("needs an IPv6 address"));
        assert!(err("raw6://localhost").contains("needs an IPv6 address"));
        assert!(err("raw:///tmp/x").contains("Unix socket address"));
    }

    #[test]
    fn mistakes_name_the_bad_part() {
        let err = |t: &str, p| Endpoint::parse(t, p).unwrap_err().to_string();
        assert!(err("sctp://1.2.3.4:5", None).contains("unknown protocol 'sctp'"));
        assert!(err("127.0.0.1:99999", None).contains("bad port '99999'"));
        assert!(err("1.2.3.4:x", None).contains("bad port 'x'"));
        assert!(err("/tmp/x", Some(Proto::Tcp)).contains("Unix socket address"));
        assert!(err("127.0.0.1:5", Some(Proto::Unix)).contains("is an IP address"));
        assert!(err("udp://1.2.3.4:5", Some(Proto::Tcp)).contains("--proto says tcp"));
        assert!(err("ho st:5", None).contains("'ho st' is not"));
        assert!(err("[::1:5", None).contains("[IPv6]:PORT"));
        assert!(err("@", Some(Proto::Unix)).contains("abstract name"));
    }

    #[test]
    fn the_family_follows_the_address() {
        let family = |text: &str| parse(text).addr.family();
        assert_eq!(family("127.0.0.1:5"), Some(Family::Inet));
        assert_eq!(family("[::1]:5"), Some(Family::Inet6));
        assert_eq!(family("raw6://::1"), Some(Family::Inet6));
        assert_eq!(family("/tmp/x.sock"), Some(Family::Unix));
        assert_eq!(family("@name"), Some(Family::Unix));
        assert_eq!(family("localhost:5"), None);
        assert_eq!(Family::Inet6.to_string(), "AF_INET6");
    }

    #[test]
    fn a_port_alone_is_never_an_address() {
        let err = |t: &str| Endpoint::parse(t, None).unwrap_err().to_string();
        assert!(err("1").contains("a port alone"));
        assert!(err(":4000").contains("`127.0.0.1 4000`"));
        let listen = |t: &str| Endpoint::parse_listen(t, None).unwrap();
        assert_eq!(
            listen("4000").addr,
            Address::Ip("[::]:4000".parse().unwrap())
        );
        assert_eq!(
            listen(":4000").addr,
            Address::Ip("[::]:4000".parse().unwrap())
        );
        assert_eq!(listen("udp://:53").proto, Proto::Udp);
        assert_eq!(listen("127.0.0.1:5").addr, parse("127.0.0.1:5").addr);
        let unix = Endpoint::parse_listen("4000", Some(Proto::Unix)).unwrap();
        assert_eq!(unix.addr, Address::UnixPath("4000".into()));
    }

    #[test]
    fn host_and_port_as_two_words() {
        assert_eq!(
            join_port("127.0.0.1", "4000").as_deref(),
            Some("127.0.0.1:4000")
        );
        assert_eq!(
            join_port("localhost", "80").as_deref(),
            Some("localhost:80")
        );
        assert_eq!(join_port("::1", "80").as_deref(), Some("[::1]:80"));
        assert_eq!(join_port("[::1]", "80").as_deref(), Some("[::1]:80"));
        assert_eq!(
            join_port("fe80::1%1", "80").as_deref(),
            Some("[fe80::1%1]:80")
        );
        // The first word has a port, or the second is no port: a message.
        assert_eq!(join_port("127.0.0.1:3234", "4000"), None);
        assert_eq!(join_port("[::1]:3234", "80"), None);
        assert_eq!(join_port("127.0.0.1", "hello"), None);
        assert_eq!(join_port("127.0.0.1", "70000"), None);
        assert_eq!(join_port("127.0.0.1", "0"), None);
        assert_eq!(join_port("/tmp/x.sock", "80"), None);
        assert_eq!(join_port("udp://127.0.0.1", "80"), None);
    }

    #[test]
    fn link_local_addresses_keep_their_zone() {
        let scoped = |t: &str| match parse(t).addr {
            Address::Ip(SocketAddr::V6(a)) => (a.port(), a.scope_id()),
            other => panic!("{other:?}"),
        };
        assert_eq!(scoped("fe80::1%2"), (3234, 2));
        assert_eq!(scoped("[fe80::1%2]:80"), (80, 2));
        let lo = nix::net::if_::if_nametoindex("lo").unwrap();
        assert_eq!(scoped("fe80::1%lo"), (3234, lo));
        assert_eq!(scoped("[fe80::1%lo]:80"), (80, lo));
        assert_eq!(scoped("raw6://fe80::1%lo"), (0, lo));
        let err = |t: &str| Endpoint::parse(t, None).unwrap_err().to_string();
        assert!(err("[fe80::1%nosuchif0]:80").contains("no interface is named 'nosuchif0'"));
        assert!(err("fe80::1%nosuchif0").contains("no interface is named 'nosuchif0'"));
        assert!(err("[::1%lo]:80").contains("drop %lo"));
        assert!(err(":::80").contains("[::]:80"));
    }

    #[test]
    fn escaped_names_read_back() {
        let names: [&[u8]; 5] = [
            b"plain",
            b"a\\b\\xff",
            b"\xff\xfe\x00",
            b"new\nline\x1b",
            "\u{85}é".as_bytes(),
        ];
        for name in names {
            let shown = escape_name(name);
            assert!(!shown.chars().any(char::is_control), "{shown}");
            assert_eq!(unescape_name(&shown).as_deref(), Some(name), "{shown}");
        }
        assert_eq!(escape_name(b"a\xff"), "a\\xff");
        assert_ne!(escape_name(b"a\xff"), escape_name("a\u{fffd}".as_bytes()));
        for bad in ["\\q", "\\x+f", "\\xf", "\\u{}", "\\u{d800}", "end\\"] {
            assert_eq!(unescape_name(bad), None, "{bad}");
        }
    }

    #[test]
    fn socat_addresses_get_their_netecho_form() {
        let err = |t: &str| Endpoint::parse(t, None).unwrap_err().to_string();
        assert!(err("TCP-LISTEN:4000").contains("`netecho serve --addr :4000`"));
        assert!(err("tcp:127.0.0.1:4000").contains("`netecho send 127.0.0.1 4000`"));
        assert!(err("UNIX-CONNECT:/tmp/s").contains("`netecho send /tmp/s`"));
        let tls = err("OPENSSL:127.0.0.1:4000,verify=0");
        assert!(
            tls.contains("`netecho send --tls --insecure 127.0.0.1 4000`"),
            "{tls}"
        );
        let tls = err("OPENSSL:127.0.0.1:4000");
        assert!(tls.contains("`netecho send --tls 127.0.0.1 4000`"), "{tls}");
        let listen = err("OPENSSL-LISTEN:4000,fork");
        assert!(
            listen.contains("`netecho serve --tls --addr :4000`"),
            "{listen}"
        );
    }
}
