//! TCP: SOCK_STREAM over AF_INET and AF_INET6.

use std::io;
use std::net::SocketAddr;

use anyhow::Result;
use socket2::{Socket, Type};

use crate::endpoint::{Address, Proto, SocketKind};
use crate::error::{Call, socket_error};

use super::{Conn, Listener, SocketOptions, calls, ip};

/// socket, setsockopt(SO_REUSEADDR), bind and listen.
pub fn bind(addr: &Address, opts: &SocketOptions) -> Result<Listener> {
    let (sock, local) = ip::bind_first(Proto::Tcp, addr, Type::STREAM, opts, |sock| {
        calls::setsockopt(
            sock,
            "SO_REUSEADDR",
            opts.reuseaddr,
            Socket::set_reuse_address,
        )
    })?;
    calls::listen(&sock, opts.backlog)
        .map_err(|e| socket_error(Call::Listen, &format!("tcp {local}"), &e))?;
    Ok(Listener {
        sock,
        proto: Proto::Tcp,
        local: Address::Ip(local),
        nodelay: opts.nodelay,
        _file: None,
    })
}

/// socket and connect (the three-way handshake) to one address.
pub fn connect(addr: SocketAddr, opts: &SocketOptions) -> io::Result<Conn> {
    let sock: Socket = ip::socket_for(addr, Type::STREAM, opts)?;
    calls::connect(&sock, &addr.into())?;
    if opts.nodelay {
        calls::setsockopt(&sock, "TCP_NODELAY", true, Socket::set_tcp_nodelay)?;
    }
    Ok(Conn::new(sock, SocketKind::Stream, addr.to_string(), None))
}
