//! ICMP sockets for `ping`: a raw ICMP or ICMPv6 socket when this process has CAP_NET_RAW,
//! and otherwise the unprivileged ICMP datagram socket ("ping socket"), which Linux allows
//! to the groups in net.ipv4.ping_group_range (for IPv6 too).

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsFd, BorrowedFd};

use anyhow::{Result, anyhow};
use nix::errno::Errno;
use socket2::{Domain, Socket, Type};

use crate::error::need_net_raw;

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
        calls::connect(&sock, &target.into())
    })();
    configured.map_err(|e| anyhow!("ICMP socket towards {}: {e}", target.ip()))?;
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

    pub(crate) fn set_nonblocking(&self, nonblocking: bool) -> io::Result<()> {
        calls::set_nonblocking(&self.sock, nonblocking)
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
