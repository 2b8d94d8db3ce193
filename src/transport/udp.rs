//! UDP: SOCK_DGRAM over AF_INET and AF_INET6, with recvfrom/sendto on the server.

use std::io;
use std::net::SocketAddr;

use anyhow::Result;
use socket2::Type;

use crate::endpoint::{Address, Proto, SocketKind};

use super::{Conn, DatagramSocket, SocketOptions, calls, ip};

/// The largest UDP payload over IPv4: 65,535 (IP total length) - 20 (IP header) - 8 (UDP).
pub(crate) const MAX_PAYLOAD_V4: usize = 65_507;
/// The largest UDP payload over IPv6: 65,535 (payload length, which excludes the 40-byte
/// IPv6 header) - 8 (UDP header).
pub(crate) const MAX_PAYLOAD_V6: usize = 65_527;

/// socket and bind. SO_REUSEADDR is left off on purpose: on UDP it would let a second
/// server bind the same port and silently take its datagrams.
pub(crate) fn bind(addr: &Address, opts: &SocketOptions) -> Result<DatagramSocket> {
    let (sock, local) = ip::bind_first(Proto::Udp, addr, Type::DGRAM, opts, |_| Ok(()))?;
    Ok(DatagramSocket {
        sock,
        proto: Proto::Udp,
        local: Address::Ip(local),
        _file: None,
    })
}

/// A connected UDP socket. connect(2) sends nothing on UDP: it fixes the peer, so the kernel
/// filters replies from others and reports an ICMP port unreachable as ECONNREFUSED.
pub(crate) fn connect(addr: SocketAddr, opts: &SocketOptions) -> io::Result<Conn> {
    let sock = ip::socket_for(addr, Type::DGRAM, opts)?;
    calls::connect(&sock, &addr.into())?;
    let max = if addr.is_ipv4() {
        MAX_PAYLOAD_V4
    } else {
        MAX_PAYLOAD_V6
    };
    Ok(Conn::new(
        sock,
        SocketKind::Datagram,
        addr.to_string(),
        Some(max),
    ))
}
