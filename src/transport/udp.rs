//! UDP: SOCK_DGRAM over AF_INET and AF_INET6, with recvfrom/sendto on the server.

use std::io;
use std::net::SocketAddr;

use anyhow::{Context, Result};
use socket2::Type;

use crate::endpoint::{Address, Proto, SocketKind};

use super::{Conn, DatagramSocket, SocketOptions, calls, ip, multicast};

/// The largest UDP payload over IPv4: 65,535 (IP total length) - 20 (IP header) - 8 (UDP).
pub(crate) const MAX_PAYLOAD_V4: usize = 65_507;
/// The largest UDP payload over IPv6: 65,535 (payload length, which excludes the 40-byte
/// IPv6 header) - 8 (UDP header).
pub(crate) const MAX_PAYLOAD_V6: usize = 65_527;

/// A server's socket: bound, joined to the groups of --join, and answering each datagram
/// from the address it was sent to when bound to more than one address (the wildcard, a
/// group, the broadcast address; see `pktinfo.rs`). A socket bound to one address of ours
/// answers from it anyway.
pub(crate) fn bind(addr: &Address, opts: &SocketOptions) -> Result<DatagramSocket> {
    let mut sock = bind_plain(addr, opts)?;
    let Address::Ip(local) = sock.local else {
        unreachable!("a UDP socket has an IP address");
    };
    multicast::join_all(&sock.sock, local, &opts.multicast)?;
    if local.ip().is_unspecified() || multicast::reaches_many(local.ip()) {
        sock.reply_from_destination(local.is_ipv6())
            .context("ask for each datagram's destination (IP_PKTINFO)")?;
    }
    Ok(sock)
}

/// socket and bind. SO_REUSEADDR is left off on purpose: on UDP it would let a second
/// server bind the same port and silently take its datagrams.
pub(crate) fn bind_plain(addr: &Address, opts: &SocketOptions) -> Result<DatagramSocket> {
    let (sock, local) = ip::bind_first(Proto::Udp, addr, Type::DGRAM, opts, |_| Ok(()))?;
    Ok(DatagramSocket {
        sock,
        proto: Proto::Udp,
        local: Address::Ip(local),
        _file: None,
        reply: super::pktinfo::ReplyFrom::Kernel,
        passcred: false,
        held: None,
    })
}

/// A connected UDP socket. connect(2) sends nothing on UDP: it fixes the peer, so the kernel
/// filters replies from others and reports an ICMP port unreachable as ECONNREFUSED.
pub(crate) fn connect(addr: SocketAddr, opts: &SocketOptions) -> io::Result<Conn> {
    let sock = ip::socket_for(addr, Type::DGRAM, opts)?;
    multicast::sender(&sock, addr, &opts.multicast, opts.ttl).map_err(io::Error::other)?;
    calls::connect(&sock, &addr.into())?;
    Ok(Conn::new(
        sock,
        SocketKind::Datagram,
        addr.to_string(),
        Some(max_payload(addr)),
    ))
}

/// The largest UDP payload to or from `addr`: IPv4's for an IPv4 address (also one mapped
/// into IPv6, as a dual-stack socket sees an IPv4 peer), IPv6's otherwise.
pub(crate) fn max_payload(addr: SocketAddr) -> usize {
    let v4 = match addr {
        SocketAddr::V4(_) => true,
        SocketAddr::V6(a) => a.ip().to_ipv4_mapped().is_some(),
    };
    if v4 { MAX_PAYLOAD_V4 } else { MAX_PAYLOAD_V6 }
}
