//! sock_diag (NETLINK_SOCK_DIAG): what the kernel tells of this host's sockets, in the
//! caller's network namespace, without privileges. The netlink plumbing every lookup shares
//! (a request sent, its answers read whole, its messages split and its end told from an
//! error); who owns a TCP connection's peer socket (for the rules of crate::access and the
//! count of TLS handshakes), an abstract Unix name, the UDP sockets on a port (a datagram's
//! sender, for crate::access and a relay's udp flow to TO) and the UDP socket a datagram
//! reaches (TO's, for that flow).

use std::io;
use std::net::{IpAddr, SocketAddr};

/// SOCK_DIAG_BY_FAMILY, the sock_diag request and reply type.
const SOCK_DIAG_BY_FAMILY: u16 = 20;
/// Netlink's error message and the end of a dump.
const NLMSG_ERROR: u16 = libc::NLMSG_ERROR as u16;
const NLMSG_DONE: u16 = libc::NLMSG_DONE as u16;
/// The netlink message header, before the request or reply.
const NLMSG_HEADER: usize = 16;
/// A dump's answers are read into this much room: netlink sizes them to the reader's, up
/// to 32 KiB.
const DUMP_ROOM: usize = 32 * 1024;

/// A netlink header for a sock_diag request of `len` bytes in all (`flags`: one socket,
/// or a dump); the request's own fields follow it.
pub(crate) fn header(len: u32, flags: u16) -> Vec<u8> {
    let mut req = Vec::with_capacity(len as usize);
    req.extend_from_slice(&len.to_ne_bytes());
    req.extend_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    req.extend_from_slice(&flags.to_ne_bytes());
    req.extend_from_slice(&1u32.to_ne_bytes()); // sequence
    req.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel's
    req
}

/// A sock_diag socket that has sent `request`, its answers to be read within a second.
pub(crate) fn ask(request: &[u8]) -> io::Result<socket2::Socket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let sock = Socket::new(
        Domain::from(libc::AF_NETLINK),
        Type::DGRAM,
        Some(Protocol::from(libc::NETLINK_SOCK_DIAG)),
    )?;
    sock.set_read_timeout(Some(std::time::Duration::from_secs(1)))?;
    sock.send(request)?;
    Ok(sock)
}

/// One answer read from `sock`, at most `room` bytes: a longer one, cut short, is an error.
pub(crate) fn recv(sock: &socket2::Socket, room: usize) -> io::Result<Vec<u8>> {
    let mut buf = vec![std::mem::MaybeUninit::<u8>::uninit(); room];
    // MSG_TRUNC: netlink tells an answer's whole length, so one cut short is seen.
    let n = sock.recv_with_flags(&mut buf, libc::MSG_TRUNC)?;
    if n > room {
        return Err(io::Error::other(format!(
            "a sock_diag answer longer than {room} bytes"
        )));
    }
    // Safety: recv initialised the first n bytes.
    Ok(buf[..n]
        .iter()
        .map(|b| unsafe { b.assume_init() })
        .collect())
}

/// The first netlink message of `answer`: its type, its body, and the messages after it.
pub(crate) fn message(answer: &[u8]) -> io::Result<(u16, &[u8], &[u8])> {
    let head = answer.get(..NLMSG_HEADER).ok_or_else(short)?;
    let len = u32::from_ne_bytes([head[0], head[1], head[2], head[3]]) as usize;
    let kind = u16::from_ne_bytes([head[4], head[5]]);
    let body = answer.get(NLMSG_HEADER..len).ok_or_else(short)?;
    // Messages start on 4-byte boundaries.
    let next = answer.get(len.next_multiple_of(4)..).unwrap_or_default();
    Ok((kind, body, next))
}

/// A message that carries no socket: `Ok` for no such socket (ENOENT, a dump's end), else
/// the error it tells.
pub(crate) fn no_socket(kind: u16, body: &[u8]) -> io::Result<()> {
    let errno = match body.get(..4) {
        Some(w) => i32::from_ne_bytes([w[0], w[1], w[2], w[3]]).wrapping_neg(),
        None => return Err(short()),
    };
    match (kind, errno) {
        (NLMSG_ERROR | NLMSG_DONE, 0 | libc::ENOENT) => Ok(()),
        (NLMSG_ERROR | NLMSG_DONE, errno) => Err(io::Error::from_raw_os_error(errno)),
        _ => Err(io::Error::other(format!("sock_diag answered type {kind}"))),
    }
}

/// The error of an answer that ends before what it says it holds.
pub(crate) fn short() -> io::Error {
    io::Error::other("a short sock_diag answer")
}

/// unix_diag_req's udiag_show: UDIAG_SHOW_NAME | UDIAG_SHOW_UID.
const UDIAG_SHOW: u32 = 0x01 | 0x40;
/// The attributes after a unix_diag_msg that say its name and its owner.
const UNIX_DIAG_NAME: u16 = 0;
const UNIX_DIAG_UID: u16 = 7;
/// A unix_diag_msg before its attributes: family, type, state, pad, inode, cookie.
const UNIX_DIAG_MSG: usize = 16;
/// At most this many Unix sockets are walked to find a name: past it the owner is unknown.
const MAX_UNIX_SOCKETS: usize = 1 << 16;

/// A Unix datagram socket as unix_diag tells it: what names it for a single-socket request
/// (its inode and cookie), and its owner.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct UnixSocket {
    ino: u32,
    cookie: [u8; 8],
    pub(crate) uid: u32,
}

/// A unix_diag request: a dump of every socket, or the one `socket` names.
fn unix_request(socket: Option<UnixSocket>) -> Vec<u8> {
    let (more, ino, cookie) = match socket {
        Some(s) => (0, s.ino, s.cookie),
        None => (libc::NLM_F_DUMP, 0, [0xff; 8]), // any inode, no cookie
    };
    let mut req = header(
        NLMSG_HEADER as u32 + 24,
        (libc::NLM_F_REQUEST | more) as u16,
    );
    req.extend_from_slice(&[libc::AF_UNIX as u8, 0, 0, 0]);
    req.extend_from_slice(&u32::MAX.to_ne_bytes()); // every state
    req.extend_from_slice(&ino.to_ne_bytes());
    req.extend_from_slice(&UDIAG_SHOW.to_ne_bytes());
    req.extend_from_slice(&cookie);
    req
}

/// The datagram socket bound at the abstract `name` (without its leading NUL) in this
/// network namespace, where a datagram sent to that name goes: one sock_diag dump of the
/// namespace's Unix sockets, read until that name or its end. Only a datagram socket
/// counts: a stream or seqpacket socket of another user may hold the same name (the kernel
/// keeps abstract names apart by socket type) and gets no datagram sent to it. `Ok(None)`:
/// no datagram socket is bound at it. An error: the kernel cannot tell (no unix_diag, or no
/// UNIX_DIAG_UID before Linux 5.3), or more than [`MAX_UNIX_SOCKETS`] sockets came first.
pub(crate) fn abstract_socket(name: &[u8]) -> io::Result<Option<UnixSocket>> {
    let too_many = || io::Error::other(format!("more than {MAX_UNIX_SOCKETS} Unix sockets here"));
    walk_dump(&unix_request(None), MAX_UNIX_SOCKETS, too_many, |body| {
        datagram_named(body, name)
    })
}

/// The first of `visit`'s answers for the sockets a dump `request` tells of, each its
/// message's body, in the order they come: `Ok(None)` once the dump ends without one.
/// Past `cap` sockets, the error `too_many` makes.
fn walk_dump<T>(
    request: &[u8],
    cap: usize,
    too_many: impl Fn() -> io::Error,
    mut visit: impl FnMut(&[u8]) -> io::Result<Option<T>>,
) -> io::Result<Option<T>> {
    let sock = ask(request)?;
    let mut seen = 0;
    // Each answer but the last holds a socket or more: this many hold more than the cap.
    for _ in 0..=cap {
        let answer = recv(&sock, DUMP_ROOM)?;
        let mut rest = &answer[..];
        while !rest.is_empty() {
            let (kind, body, next) = message(rest)?;
            rest = next;
            if kind != SOCK_DIAG_BY_FAMILY {
                // The end of the dump (NLMSG_DONE), or an error.
                return no_socket(kind, body).map(|()| None);
            }
            seen += 1;
            if seen > cap {
                return Err(too_many());
            }
            if let Some(found) = visit(body)? {
                return Ok(Some(found));
            }
        }
    }
    Err(too_many())
}

/// Whether `known`, found by [`abstract_socket`], is still open and bound at `name`: one
/// single-socket request (by inode and cookie, so a socket made since under a reused inode
/// is not it), not a dump. Any error is a no: the name is then looked up afresh.
pub(crate) fn still_bound(known: UnixSocket, name: &[u8]) -> bool {
    let asked = || -> io::Result<bool> {
        let reply = recv(&ask(&unix_request(Some(known)))?, 4096)?;
        let (kind, body, _) = message(&reply)?;
        if kind != SOCK_DIAG_BY_FAMILY {
            return no_socket(kind, body).map(|()| false);
        }
        Ok(datagram_named(body, name)? == Some(known))
    };
    asked().unwrap_or(false)
}

/// The datagram socket a unix_diag_msg describes, if it is one bound at the abstract
/// `name`.
fn datagram_named(msg: &[u8], name: &[u8]) -> io::Result<Option<UnixSocket>> {
    let head = msg.get(..UNIX_DIAG_MSG).ok_or_else(short)?;
    if head[1] != libc::SOCK_DGRAM as u8 {
        return Ok(None);
    }
    let ino = u32::from_ne_bytes([head[4], head[5], head[6], head[7]]);
    let cookie: [u8; 8] = head[8..16].try_into().map_err(|_| short())?;
    let mut attrs = &msg[UNIX_DIAG_MSG..];
    let (mut named, mut uid) = (false, None);
    while attrs.len() >= 4 {
        let len = u16::from_ne_bytes([attrs[0], attrs[1]]) as usize;
        let kind = u16::from_ne_bytes([attrs[2], attrs[3]]);
        let value = attrs.get(4..len).ok_or_else(short)?;
        match kind {
            // An abstract name is told with its leading NUL; a path without one.
            UNIX_DIAG_NAME => named = value.split_first() == Some((&0, name)),
            UNIX_DIAG_UID => {
                uid = value
                    .get(..4)
                    .map(|w| u32::from_ne_bytes([w[0], w[1], w[2], w[3]]))
            }
            _ => {}
        }
        attrs = attrs.get(len.next_multiple_of(4)..).unwrap_or_default();
    }
    match (named, uid) {
        (false, _) => Ok(None),
        (true, Some(uid)) => Ok(Some(UnixSocket { ino, cookie, uid })),
        (true, None) => Err(io::Error::other(
            "this kernel does not tell who owns a Unix socket (UNIX_DIAG_UID, Linux 5.3+)",
        )),
    }
}

/// Where the owner's uid lies in an inet_diag_msg: family, state, timer, retrans (4 bytes),
/// the socket id (48), expires, rqueue, wqueue (12).
const IDIAG_UID: usize = 64;
/// And the socket's inode, 0 for a socket no process holds.
const IDIAG_INODE: usize = 68;

/// The user that owns the TCP socket at `peer` connected to `local`, if that socket is on
/// this host: one sock_diag query (NETLINK_SOCK_DIAG, inet_diag_req_v2) for exactly that
/// connection, seen from the peer's side. `Ok(None)`: no such socket here.
pub(crate) fn tcp_owner(peer: SocketAddr, local: SocketAddr) -> io::Result<Option<u32>> {
    either_family(peer, local, |peer, local| {
        let found = diag_one(libc::IPPROTO_TCP, peer, local)?;
        // The lookup falls back to a listening socket on the peer's address and port: only
        // a socket of exactly this connection says who owns it.
        Ok(found
            .filter(|f| f.ports == (peer.port(), local.port()))
            .map(|f| f.uid))
    })
}

/// `lookup` of IPv4 addresses as they are, then (found nothing) as IPv4-mapped IPv6: the
/// socket may be an IPv6 one that reached an IPv4-mapped address.
fn either_family(
    peer: SocketAddr,
    local: SocketAddr,
    lookup: impl Fn(SocketAddr, SocketAddr) -> io::Result<Option<u32>>,
) -> io::Result<Option<u32>> {
    let canonical = |a: SocketAddr| SocketAddr::new(a.ip().to_canonical(), a.port());
    let (peer, local) = (canonical(peer), canonical(local));
    let found = lookup(peer, local)?;
    if found.is_some() || !peer.is_ipv4() {
        return Ok(found);
    }
    let mapped = |a: SocketAddr| match a.ip() {
        IpAddr::V4(v4) => SocketAddr::new(IpAddr::V6(v4.to_ipv6_mapped()), a.port()),
        IpAddr::V6(_) => a,
    };
    lookup(mapped(peer), mapped(local))
}

/// A live socket sock_diag found: its owner and its ports (its own, its peer's).
struct Found {
    uid: u32,
    ports: (u16, u16),
}

/// One sock_diag query for the one socket of `proto` the kernel finds for `src` and `dst`
/// (TCP: the socket whose own end is `src` and whose peer is `dst`, else a listener on
/// `src`); `None` when there is none, or it has closed (time-wait, orphaned: no inode).
fn diag_one(proto: i32, src: SocketAddr, dst: SocketAddr) -> io::Result<Option<Found>> {
    let sock = ask(&diag_request(proto, src, dst, libc::NLM_F_REQUEST as u16))?;
    let reply = recv(&sock, 4096)?;
    let (kind, body, _) = message(&reply)?;
    match kind {
        SOCK_DIAG_BY_FAMILY => diag_found(body),
        _ => diag_error(kind, body),
    }
}

/// The user that owns the UDP socket on this host that a datagram from `from` to `to`
/// reaches: one sock_diag query, answered by the kernel's own lookup, the one that delivers
/// such a datagram (a socket bound to `to`'s address or to the wildcard, connected to
/// `from` or to no one). `Ok(None)`: no socket here takes it.
pub(crate) fn udp_receiver(to: SocketAddr, from: SocketAddr) -> io::Result<Option<u32>> {
    let canonical = |a: SocketAddr| SocketAddr::new(a.ip().to_canonical(), a.port());
    let (to, from) = (canonical(to), canonical(from));
    if to.is_ipv4() != from.is_ipv4() {
        return Ok(None);
    }
    // A UDP query names the datagram's source first, where a TCP one names the socket's own
    // end (the kernel keeps it so "for historical reasons").
    Ok(diag_one(libc::IPPROTO_UDP, from, to)?.map(|found| found.uid))
}

/// At most this many UDP sockets on one port are read from a dump: a port has a few; more
/// leave the sender unknown.
const MAX_PORT_SOCKETS: usize = 64;

/// The user that owns the UDP socket on this host that sends from `port` (IPv4 ones too when
/// `v4`, the sender's address an IPv4 one). Any UDP socket of this host on that port may
/// have sent from it, whatever address it is bound to: IP_PKTINFO sends from any of this
/// host's addresses, and SO_REUSEADDR lets sockets of several users share one address and
/// port. So every one is asked for (a sock_diag dump of that port, IPv4 and IPv6, any
/// state): one owner among them all is the sender's, several are an error saying so.
/// `Ok(None)`: no socket here holds that port.
pub(crate) fn udp_port_owner(port: u16, v4: bool) -> io::Result<Option<u32>> {
    let mut owners = Vec::new();
    // An IPv6 socket sends from IPv4 addresses too (v4-mapped); an IPv4 one never from IPv6.
    if v4 {
        udp_port_owners(IpAddr::from([0u8; 4]), port, &mut owners)?;
    }
    udp_port_owners(IpAddr::from([0u16; 8]), port, &mut owners)?;
    match owners[..] {
        [] => Ok(None),
        [uid] => Ok(Some(uid)),
        _ => {
            let uids: Vec<String> = owners.iter().map(u32::to_string).collect();
            Err(io::Error::other(format!(
                "port {port} on this host is shared by sockets of several users (uids {}), \
                 so which one sent cannot be told",
                uids.join(", ")
            )))
        }
    }
}

/// Adds to `owners` (each once) the users that own the live UDP sockets of `any`'s family
/// on `port`: one sock_diag dump, which the kernel filters by that port. Past
/// [`MAX_PORT_SOCKETS`], or an answer cut short, is an error.
fn udp_port_owners(any: IpAddr, port: u16, owners: &mut Vec<u32>) -> io::Result<()> {
    let src = SocketAddr::new(any, port);
    let flags = (libc::NLM_F_REQUEST | libc::NLM_F_DUMP) as u16;
    let request = diag_request(libc::IPPROTO_UDP, src, SocketAddr::new(any, 0), flags);
    let too_many = || {
        io::Error::other(format!(
            "more than {MAX_PORT_SOCKETS} sockets hold port {port}"
        ))
    };
    let every = walk_dump(&request, MAX_PORT_SOCKETS, too_many, |body| {
        if let Some(found) = diag_found(body)?
            && !owners.contains(&found.uid)
        {
            owners.push(found.uid);
        }
        Ok(None::<()>)
    });
    every.map(|_| ())
}

/// A message that carries no socket: no such socket (ENOENT, a done) or an error.
fn diag_error(kind: u16, body: &[u8]) -> io::Result<Option<Found>> {
    no_socket(kind, body).map(|()| None)
}

/// The live socket an inet_diag_msg describes; `None` for one that has closed
/// (time-wait, orphaned: uid 0, no inode), which is nobody's.
fn diag_found(msg: &[u8]) -> io::Result<Option<Found>> {
    let word = |at: usize| -> io::Result<[u8; 4]> {
        msg.get(at..at + 4)
            .and_then(|w| w.try_into().ok())
            .ok_or_else(short)
    };
    let ports = word(4)?;
    if u32::from_ne_bytes(word(IDIAG_INODE)?) == 0 {
        return Ok(None);
    }
    Ok(Some(Found {
        uid: u32::from_ne_bytes(word(IDIAG_UID)?),
        ports: (
            u16::from_be_bytes([ports[0], ports[1]]),
            u16::from_be_bytes([ports[2], ports[3]]),
        ),
    }))
}

/// A netlink header (`flags`: one socket, or a dump) and an inet_diag_req_v2 for sockets
/// of `proto` in any state, of `src`'s family, at `src` and `dst` (a dump of UDP sockets
/// matches their ports, 0 for any).
fn diag_request(proto: i32, src: SocketAddr, dst: SocketAddr, flags: u16) -> Vec<u8> {
    let family = if src.is_ipv4() {
        libc::AF_INET
    } else {
        libc::AF_INET6
    };
    let addr = |a: SocketAddr| -> [u8; 16] {
        let mut out = [0u8; 16];
        match a.ip() {
            IpAddr::V4(v4) => out[..4].copy_from_slice(&v4.octets()),
            IpAddr::V6(v6) => out = v6.octets(),
        }
        out
    };
    let mut req = header(72, flags);
    req.extend_from_slice(&[family as u8, proto as u8, 0, 0]);
    req.extend_from_slice(&u32::MAX.to_ne_bytes()); // every state
    req.extend_from_slice(&src.port().to_be_bytes());
    req.extend_from_slice(&dst.port().to_be_bytes());
    req.extend_from_slice(&addr(src));
    req.extend_from_slice(&addr(dst));
    req.extend_from_slice(&0u32.to_ne_bytes()); // any interface
    req.extend_from_slice(&[0xff; 8]); // INET_DIAG_NOCOOKIE
    req
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::net::{SocketAddr, UnixDatagram};

    #[test]
    fn the_kernel_tells_who_owns_an_abstract_name_here_and_that_a_free_one_is_nobodys() {
        let name = format!("netecho-unit-{}-owner", std::process::id());
        let bound = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let _sock = UnixDatagram::bind_addr(&bound).unwrap();
        let me = nix::unistd::geteuid().as_raw();
        let found = abstract_socket(name.as_bytes()).unwrap().unwrap();
        assert_eq!(found.uid, me);
        assert!(still_bound(found, name.as_bytes()));
        // A name is matched whole: a prefix of a bound one is free.
        let prefix = &name.as_bytes()[..name.len() - 1];
        assert_eq!(abstract_socket(prefix).unwrap(), None);
        assert!(!still_bound(found, prefix));
        drop(_sock);
        assert!(
            !still_bound(found, name.as_bytes()),
            "a closed socket is not still bound"
        );
    }

    #[test]
    fn only_a_datagram_socket_at_an_abstract_name_is_its_owner() {
        use std::os::unix::net::{UnixListener, UnixStream};
        let name = format!("netecho-unit-{}-types", std::process::id());
        let bound = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let stream = UnixListener::bind_addr(&bound).unwrap();
        // A stream socket at the name, and one connected to it (accepted: named too).
        let _client = UnixStream::connect_addr(&bound).unwrap();
        let _accepted = stream.accept().unwrap();
        assert_eq!(abstract_socket(name.as_bytes()).unwrap(), None);
        let dgram = UnixDatagram::bind_addr(&bound).unwrap();
        let found = abstract_socket(name.as_bytes()).unwrap().unwrap();
        let ino = nix::sys::stat::fstat(&dgram).unwrap().st_ino;
        assert_eq!(u64::from(found.ino), ino);
    }

    #[test]
    fn the_kernel_tells_whose_udp_socket_a_datagram_reaches_and_who_holds_a_port() {
        let me = nix::unistd::geteuid().as_raw();
        for (host, any) in [("127.0.0.1:0", "0.0.0.0:0"), ("[::1]:0", "[::]:0")] {
            for bind in [host, any] {
                let server = std::net::UdpSocket::bind(bind).unwrap();
                let client = std::net::UdpSocket::bind(host).unwrap();
                let from = client.local_addr().unwrap();
                let mut to = from;
                to.set_port(server.local_addr().unwrap().port());
                assert_eq!(udp_receiver(to, from).unwrap(), Some(me), "{bind}");
                assert_eq!(udp_port_owner(to.port(), to.is_ipv4()).unwrap(), Some(me));
                // A datagram to a port no socket holds reaches no one, from any socket: the
                // query asks for the socket at `to`, not at `from`.
                drop(server);
                assert_eq!(udp_receiver(to, from).unwrap(), None, "{bind} closed");
                assert_eq!(udp_port_owner(to.port(), to.is_ipv4()).unwrap(), None);
            }
        }
    }

    #[test]
    fn the_owner_of_a_loopback_connection_is_told_by_the_kernel() {
        let me = nix::unistd::geteuid().as_raw();
        for host in ["127.0.0.1:0", "[::1]:0"] {
            let listener = std::net::TcpListener::bind(host).unwrap();
            let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
            let (served, peer) = listener.accept().unwrap();
            let local = served.local_addr().unwrap();
            assert_eq!(tcp_owner(peer, local).unwrap(), Some(me), "{host}");
            // No socket here has a connection from the listener's port to itself.
            assert_eq!(tcp_owner(local, local).unwrap(), None, "{host}");
            // A client that closed (time-wait or orphaned, uid 0 in the kernel's answer) is
            // nobody's.
            drop(client);
            assert_eq!(tcp_owner(peer, local).unwrap(), None, "{host} closed");
            drop(served);
            std::thread::sleep(std::time::Duration::from_millis(50));
            assert_eq!(tcp_owner(peer, local).unwrap(), None, "{host} time-wait");
        }
    }
}
