//! sock_diag (NETLINK_SOCK_DIAG): what the kernel tells of this host's sockets, in the
//! caller's network namespace, without privileges. The netlink plumbing the IP lookups
//! (crate::access) and the Unix one below share: a request sent, its answers read whole,
//! its messages split and its end told from an error.

use std::io;

/// SOCK_DIAG_BY_FAMILY, the sock_diag request and reply type.
pub(crate) const SOCK_DIAG_BY_FAMILY: u16 = 20;
/// Netlink's error message and the end of a dump.
const NLMSG_ERROR: u16 = libc::NLMSG_ERROR as u16;
const NLMSG_DONE: u16 = libc::NLMSG_DONE as u16;
/// The netlink message header, before the request or reply.
const NLMSG_HEADER: usize = 16;
/// A dump's answers are read into this much room: netlink sizes them to the reader's, up
/// to 32 KiB.
pub(crate) const DUMP_ROOM: usize = 32 * 1024;

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

/// The user that owns the Unix socket bound at the abstract `name` (without its leading
/// NUL) in this network namespace, where a datagram sent to that name goes: one sock_diag
/// dump of the namespace's Unix sockets, read until that name (there is at most one) or
/// its end. `Ok(None)`: no socket is bound at it. An error: the kernel cannot tell
/// (no unix_diag, or no UNIX_DIAG_UID before Linux 5.3), or more than
/// [`MAX_UNIX_SOCKETS`] sockets came first.
pub(crate) fn abstract_owner(name: &[u8]) -> io::Result<Option<u32>> {
    let flags = (libc::NLM_F_REQUEST | libc::NLM_F_DUMP) as u16;
    let mut req = header(NLMSG_HEADER as u32 + 24, flags);
    req.extend_from_slice(&[libc::AF_UNIX as u8, 0, 0, 0]);
    req.extend_from_slice(&u32::MAX.to_ne_bytes()); // every state
    req.extend_from_slice(&0u32.to_ne_bytes()); // any inode
    req.extend_from_slice(&UDIAG_SHOW.to_ne_bytes());
    req.extend_from_slice(&[0xff; 8]); // no cookie
    let sock = ask(&req)?;
    let too_many = || io::Error::other(format!("more than {MAX_UNIX_SOCKETS} Unix sockets here"));
    let mut seen = 0;
    // Each answer but the last holds a socket or more: this many hold more than the cap.
    for _ in 0..=MAX_UNIX_SOCKETS {
        let answer = recv(&sock, DUMP_ROOM)?;
        let mut rest = &answer[..];
        while !rest.is_empty() {
            let (kind, body, next) = message(rest)?;
            rest = next;
            if kind != SOCK_DIAG_BY_FAMILY {
                return no_socket(kind, body).map(|()| None);
            }
            seen += 1;
            if seen > MAX_UNIX_SOCKETS {
                return Err(too_many());
            }
            if let Some(uid) = owner_if_named(body, name)? {
                return Ok(Some(uid));
            }
        }
    }
    Err(too_many())
}

/// The owner of the socket a unix_diag_msg describes, if it is bound at the abstract
/// `name`.
fn owner_if_named(msg: &[u8], name: &[u8]) -> io::Result<Option<u32>> {
    let mut attrs = msg.get(UNIX_DIAG_MSG..).ok_or_else(short)?;
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
        (true, Some(uid)) => Ok(Some(uid)),
        (true, None) => Err(io::Error::other(
            "this kernel does not tell who owns a Unix socket (UNIX_DIAG_UID, Linux 5.3+)",
        )),
    }
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
        assert_eq!(abstract_owner(name.as_bytes()).unwrap(), Some(me));
        // A name is matched whole: a prefix of a bound one is free.
        let prefix = &name.as_bytes()[..name.len() - 1];
        assert_eq!(abstract_owner(prefix).unwrap(), None);
    }
}
