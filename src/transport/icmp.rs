//! ICMP sockets for `ping`: a raw ICMP or ICMPv6 socket when this process has CAP_NET_RAW,
//! and otherwise the unprivileged ICMP datagram socket ("ping socket"), which Linux allows
//! to the groups in net.ipv4.ping_group_range (for IPv6 too).

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsFd, BorrowedFd};

use anyhow::{Result, anyhow};
use nix::errno::Errno;
use socket2::{Domain, Socket, Type};

use crate::error::{Call, Subject, UsageError, need_net_raw, socket_error};

use super::calls;

/// Which kind of ICMP socket ping got.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum IcmpKind {
    /// SOCK_RAW: the whole ICMP message is ours (and, over IPv4, the IP header is read too).
    Raw,
    /// SOCK_DGRAM with IPPROTO_ICMP(V6): the kernel sets the identifier and delivers only
    /// this socket's replies, without an IP header.
    Datagram,
}

/// An ICMP error about one of our requests: who sent it, its type and code, and the
/// identifier and sequence number of the echo request it quotes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct IcmpError {
    pub from: IpAddr,
    pub kind: u8,
    pub code: u8,
    pub id: u16,
    pub seq: u16,
}

/// One message of the error queue: its extended error and sender (none for a message
/// without them), and how many bytes of the request it quotes.
pub(crate) type Queued = (Option<(libc::sock_extended_err, IpAddr)>, usize);

/// An ICMP socket connected to the host being pinged.
pub(crate) struct IcmpSocket {
    sock: Socket,
    pub kind: IcmpKind,
    pub v6: bool,
}

fn protocol(v6: bool) -> i32 {
    if v6 {
        libc::IPPROTO_ICMPV6
    } else {
        libc::IPPROTO_ICMP
    }
}

fn denied(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error().map(Errno::from_raw),
        Some(Errno::EPERM | Errno::EACCES)
    )
}

/// A raw ICMP socket if allowed, else a datagram one; connected to `target`, with the
/// TTL or hop limit of each packet reported beside it.
pub(crate) fn open(target: SocketAddr) -> Result<IcmpSocket> {
    let v6 = target.is_ipv6();
    let domain = if v6 { Domain::IPV6 } else { Domain::IPV4 };
    let (sock, kind) = match calls::socket_for_protocol(domain, Type::RAW, protocol(v6)) {
        Ok(sock) => (sock, IcmpKind::Raw),
        Err(raw) if denied(&raw) => {
            match calls::socket_for_protocol(domain, Type::DGRAM, protocol(v6)) {
                Ok(sock) => (sock, IcmpKind::Datagram),
                Err(dgram) => return Err(anyhow!("{}", no_socket(&dgram))),
            }
        }
        Err(e) => return Err(anyhow!("socket for ICMP: {e}")),
    };
    let configured = (|| {
        // ICMP errors quoting a request (unreachable, time exceeded) queued with their
        // sender and the request's echo header, so ping can say which request they answer.
        if v6 {
            calls::setsockopt(&sock, "IPV6_RECVERR", true, |s, on| {
                nix::sys::socket::setsockopt(s, nix::sys::socket::sockopt::Ipv6RecvErr, &on)
                    .map_err(io::Error::from)
            })?;
        } else {
            calls::setsockopt(&sock, "IP_RECVERR", true, |s, on| {
                nix::sys::socket::setsockopt(s, nix::sys::socket::sockopt::Ipv4RecvErr, &on)
                    .map_err(io::Error::from)
            })?;
        }
        if v6 {
            calls::setsockopt(
                &sock,
                "IPV6_RECVHOPLIMIT",
                true,
                Socket::set_recv_hoplimit_v6,
            )?;
        } else if kind == IcmpKind::Datagram {
            // A raw IPv4 socket reads the TTL in the IP header; a datagram one asks for it.
            calls::setsockopt(&sock, "IP_RECVTTL", true, |s, on| {
                nix::sys::socket::setsockopt(s, nix::sys::socket::sockopt::Ipv4RecvTtl, &on)
                    .map_err(io::Error::from)
            })?;
        }
        // The time the kernel received each reply, as iputils' ping reads it: a round trip
        // that ends there leaves out how long this process took to wake and read it.
        calls::setsockopt(&sock, "SO_TIMESTAMPNS", true, |s, on| {
            nix::sys::socket::setsockopt(s, nix::sys::socket::sockopt::ReceiveTimestampns, &on)
                .map_err(io::Error::from)
        })
    })();
    configured.map_err(|e| anyhow!("ICMP socket towards {}: {e}", target.ip()))?;
    calls::connect(&sock, &target.into()).map_err(|e| {
        let line = socket_error(Call::Connect, Subject::ip(target.ip().to_string()), &e);
        let errno = e.raw_os_error().map(Errno::from_raw);
        match errno {
            // No route to the host: as iputils' ping, an address that cannot be pinged from
            // here at all ends the run with exit 2.
            Some(Errno::ENETUNREACH | Errno::EHOSTUNREACH) => {
                UsageError::new(line.to_string()).into()
            }
            _ => line,
        }
    })?;
    Ok(IcmpSocket { sock, kind, v6 })
}

/// Neither socket: what is missing, and the three ways to get it.
fn no_socket(dgram: &io::Error) -> String {
    let range = std::fs::read_to_string("/proc/sys/net/ipv4/ping_group_range")
        .map(|r| r.split_whitespace().collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into());
    let gid = nix::unistd::getegid();
    format!(
        "ping: no raw ICMP socket (no CAP_NET_RAW) and no ICMP datagram socket ({}: group \
         {gid} is outside net.ipv4.ping_group_range \"{range}\"); {}, or let your group use \
         ICMP datagram sockets with `sudo sysctl -w net.ipv4.ping_group_range=\"0 2147483647\"`",
        dgram.raw_os_error().map_or_else(
            || dgram.to_string(),
            |e| format!("{:?}", Errno::from_raw(e))
        ),
        need_net_raw()
    )
}

impl IcmpSocket {
    /// send(2) of one ICMP message.
    pub(crate) fn send(&self, message: &[u8]) -> io::Result<()> {
        calls::send(&self.sock, message).map(|_| ())
    }

    /// recvmsg(2): one message (with the IPv4 header on a raw IPv4 socket) and its TTL.
    pub(crate) fn recv(&self, buf: &mut [u8]) -> io::Result<calls::Message> {
        calls::recv_msg(&self.sock, buf)
    }

    /// The next ICMP error waiting in the error queue (MSG_ERRQUEUE) that quotes a request,
    /// if any. Local errors (a message too big for the route, say) are passed over: the
    /// send that caused them already said so.
    pub(crate) fn recv_error(&self, buf: &mut [u8]) -> io::Result<Option<IcmpError>> {
        loop {
            let Some((found, len)) = queued(&self.sock, buf)? else {
                return Ok(None);
            };
            let quoted = buf.get(..len.min(8)).filter(|q| q.len() == 8);
            let icmp = [libc::SO_EE_ORIGIN_ICMP, libc::SO_EE_ORIGIN_ICMP6];
            if let (Some((ee, from)), Some(q)) = (found, quoted)
                && icmp.contains(&ee.ee_origin)
            {
                return Ok(Some(IcmpError {
                    from,
                    kind: ee.ee_type,
                    code: ee.ee_code,
                    id: u16::from_be_bytes([q[4], q[5]]),
                    seq: u16::from_be_bytes([q[6], q[7]]),
                }));
            }
        }
    }

    pub(crate) fn set_nonblocking(&self, nonblocking: bool) -> io::Result<()> {
        calls::set_nonblocking(&self.sock, nonblocking)
    }

    /// The messages the kernel has dropped on this socket for a full receive buffer: on a
    /// raw socket any ICMP this host received, our own requests looped back included.
    pub(crate) fn drops(&self) -> io::Result<u32> {
        calls::drops(&self.sock)
    }
}

impl AsFd for IcmpSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.sock.as_fd()
    }
}

impl Drop for IcmpSocket {
    fn drop(&mut self) {
        calls::closing(&self.sock);
    }
}

/// One message of `sock`'s error queue (IP_RECVERR): the extended error and its sender,
/// and the length of the quoted packet in `buf`; None when the queue is empty.
pub(crate) fn queued(
    sock: &impl std::os::fd::AsRawFd,
    buf: &mut [u8],
) -> io::Result<Option<Queued>> {
    use nix::sys::socket::{ControlMessageOwned, MsgFlags, SockaddrStorage, recvmsg};
    // Room for every control message the socket may carry beside the error: on IPv6 the
    // kernel adds the hop limit asked for ttl=, SO_TIMESTAMPNS a receive time, and a cut
    // list reads as ENOBUFS.
    let mut cmsg = nix::cmsg_space!(
        libc::sock_extended_err,
        libc::sockaddr_in6,
        libc::c_int,
        libc::c_int,
        libc::in6_pktinfo,
        libc::timespec
    );
    let mut iov = [io::IoSliceMut::new(buf)];
    let flags = MsgFlags::MSG_ERRQUEUE | MsgFlags::MSG_DONTWAIT;
    let fd = sock.as_raw_fd();
    let msg = match recvmsg::<SockaddrStorage>(fd, &mut iov, Some(&mut cmsg), flags) {
        Ok(msg) => msg,
        Err(Errno::EAGAIN) => return Ok(None),
        Err(Errno::EINTR) => return queued(sock, buf),
        Err(e) => return Err(e.into()),
    };
    let mut found = None;
    let Ok(controls) = msg.cmsgs() else {
        // An entry whose control messages did not fit is taken off the queue unread: one
        // error the run cannot place, never the end of the run.
        tracing::debug!("an ICMP error's control messages were cut (MSG_CTRUNC); skipped");
        return Ok(Some((None, msg.bytes)));
    };
    for control in controls {
        found = match control {
            ControlMessageOwned::Ipv4RecvErr(ee, Some(a)) => Some((
                ee,
                IpAddr::from(u32::from_be(a.sin_addr.s_addr).to_be_bytes()),
            )),
            ControlMessageOwned::Ipv6RecvErr(ee, Some(a)) => {
                Some((ee, IpAddr::from(a.sin6_addr.s6_addr)))
            }
            _ => continue,
        };
    }
    Ok(Some((found, msg.bytes)))
}
