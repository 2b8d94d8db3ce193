//! TCP: SOCK_STREAM over AF_INET and AF_INET6.

use std::io;
use std::net::SocketAddr;

use anyhow::Result;
use socket2::{Socket, Type};

use crate::endpoint::{Address, Proto, SocketKind};
use crate::error::{Call, NoAnswer, Subject, socket_error};

use super::{Conn, Listener, SocketOptions, calls, ip};

/// socket, setsockopt(SO_REUSEADDR), bind and listen.
pub(crate) fn bind(addr: &Address, opts: &SocketOptions) -> Result<Listener> {
    let (sock, local) = ip::bind_first(Proto::Tcp, addr, Type::STREAM, opts, |sock| {
        calls::setsockopt(
            sock,
            "SO_REUSEADDR",
            opts.reuseaddr,
            Socket::set_reuse_address,
        )
    })?;
    calls::listen(&sock, opts.backlog)
        .map_err(|e| socket_error(Call::Listen, Subject::ip(format!("tcp {local}")), &e))?;
    Ok(Listener {
        sock,
        proto: Proto::Tcp,
        local: Address::Ip(local),
        nodelay: opts.nodelay,
        _file: None,
        _quic: None,
        tls: None,
    })
}

/// socket and connect (the three-way handshake) to one address, within
/// `opts.connect_timeout`.
pub(crate) fn connect(addr: SocketAddr, opts: &SocketOptions) -> io::Result<Conn> {
    let sock: Socket = ip::socket_for(addr, Type::STREAM, opts)?;
    super::connect_within(&sock, &addr.into(), opts.connect_timeout, |within| {
        NoAnswer::ip(addr, within)
    })?;
    if opts.nodelay {
        calls::setsockopt(&sock, "TCP_NODELAY", true, Socket::set_tcp_nodelay)?;
    }
    Ok(Conn::new(sock, SocketKind::Stream, addr.to_string(), None))
}

/// What TCP_INFO says of a connection: how TCP turned loss into latency.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct TcpInfo {
    /// Segments sent again over the connection's life (tcpi_total_retrans).
    pub retransmits: u32,
    /// Smoothed round-trip time, in microseconds (tcpi_rtt).
    pub rtt_us: u32,
    /// Congestion window, in segments (tcpi_snd_cwnd).
    pub cwnd: u32,
}

/// getsockopt(TCP_INFO) on a TCP socket.
pub(crate) fn info(sock: &Socket) -> io::Result<TcpInfo> {
    use std::os::fd::AsRawFd;
    // Safety: tcp_info is plain integers, so all zeroes is a valid value.
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    // Safety: the kernel writes at most `len` bytes into `info`, which is that large, and an
    // older kernel writing fewer leaves the rest zero.
    let rc = unsafe {
        libc::getsockopt(
            sock.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&mut info as *mut libc::tcp_info).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(TcpInfo {
        retransmits: info.tcpi_total_retrans,
        rtt_us: info.tcpi_rtt,
        cwnd: info.tcpi_snd_cwnd,
    })
}
