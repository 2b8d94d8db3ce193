//! TCP: SOCK_STREAM over AF_INET and AF_INET6.

use std::io;
use std::net::SocketAddr;

use anyhow::Result;
use socket2::{Socket, Type};

use crate::endpoint::{Address, Proto, SocketKind};
use crate::error::{Call, socket_error};

use super::{Conn, Listener, SocketOptions, ip};

/// socket, setsockopt(SO_REUSEADDR), bind and listen.
pub fn bind(addr: &Address, opts: &SocketOptions) -> Result<Listener> {
    let (sock, local) = ip::bind_first(Proto::Tcp, addr, Type::STREAM, opts, |sock| {
        sock.set_reuse_address(opts.reuseaddr)
    })?;
    sock.listen(opts.backlog)
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
    sock.connect(&addr.into())?;
    if opts.nodelay {
        sock.set_tcp_nodelay(true)?;
    }
    Ok(Conn::new(sock, SocketKind::Stream, addr.to_string(), None))
}
