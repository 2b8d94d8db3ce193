//! Raw IP: SOCK_RAW over AF_INET or AF_INET6 for one IP protocol (`--ip-proto`). No ports
//! and no connections: the kernel hands every packet of that protocol addressed to the bound
//! address to every raw socket for it. A raw IPv4 socket reads the IP header in front of
//! the payload; a raw IPv6 socket reads the payload alone. Opening one needs CAP_NET_RAW.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::fd::{AsFd, BorrowedFd};

use anyhow::{Result, anyhow};
use socket2::{Domain, Socket, Type};

use crate::endpoint::{Address, Endpoint, Proto};
use crate::error::{Call, Subject, socket_error};

use super::{PeerAddr, SocketOptions, calls, ip};

/// The most an IPv4 raw socket sends after the header: 65,535 (total length) - 20.
pub(crate) const MAX_PAYLOAD_V4: usize = 65_515;
/// The most an IPv6 raw socket sends: the payload length field is 16 bits and excludes the
/// 40-byte header (jumbograms aside).
pub(crate) const MAX_PAYLOAD_V6: usize = 65_535;

/// A raw socket for one IP protocol, bound (server) or connected (client).
pub(crate) struct RawSocket {
    sock: Socket,
    local: Address,
    v6: bool,
    protocol: u8,
}

/// socket(AF_INET or AF_INET6, SOCK_RAW, protocol); without CAP_NET_RAW the error says
/// what is missing and how to grant it.
pub(crate) fn open(v6: bool, protocol: i32, what: &str) -> Result<Socket> {
    let domain = if v6 { Domain::IPV6 } else { Domain::IPV4 };
    calls::socket_for_protocol(domain, Type::RAW, protocol)
        .map_err(|e| socket_error(Call::Socket, Subject::ip(what), &e))
}

/// A server socket: bind(2) on a raw socket filters by destination address, so it sees the
/// packets of `opts.ip_proto` sent to `addr` (to any of this host's, for 0.0.0.0 or ::).
pub(crate) fn bind(addr: &Address, opts: &SocketOptions) -> Result<RawSocket> {
    let mut last = None;
    for candidate in ip::resolve(addr)? {
        let ip = candidate.ip();
        let what = Endpoint {
            proto: Proto::Raw,
            addr: Address::Ip(candidate),
        }
        .to_string();
        let sock = open(ip.is_ipv6(), i32::from(opts.ip_proto), &what)?;
        if ip.is_ipv6() {
            // The kernel gives a raw IPv6 socket no header; the hop limit comes aside.
            calls::setsockopt(
                &sock,
                "IPV6_RECVHOPLIMIT",
                true,
                Socket::set_recv_hoplimit_v6,
            )
            .map_err(|e| anyhow!("setsockopt on {what}: {e}"))?;
        }
        match calls::bind(&sock, &SocketAddr::new(ip, 0).into()) {
            Ok(()) => {
                return Ok(RawSocket {
                    sock,
                    local: Address::Ip(SocketAddr::new(ip, 0)),
                    v6: ip.is_ipv6(),
                    protocol: opts.ip_proto,
                });
            }
            Err(e) => last = Some(socket_error(Call::Bind, Subject::ip(&what), &e)),
        }
    }
    Err(last.unwrap_or_else(|| anyhow!("{addr} has no address to bind")))
}

/// A client socket for `target`. connect(2) sends nothing: it fixes the destination and
/// filters what is read to packets from `target`. With `opts.hdrincl` (IPv4) the caller
/// writes the IP header itself (IP_HDRINCL); otherwise `opts.ttl` sets IP_TTL or
/// IPV6_UNICAST_HOPS for the header the kernel writes.
pub(crate) fn connect(target: SocketAddr, opts: &SocketOptions) -> Result<RawSocket> {
    let what = Endpoint {
        proto: Proto::Raw,
        addr: Address::Ip(target),
    }
    .to_string();
    let v6 = target.is_ipv6();
    let sock = open(v6, i32::from(opts.ip_proto), &what)?;
    let configured = (|| {
        if opts.hdrincl {
            calls::setsockopt(&sock, "IP_HDRINCL", true, Socket::set_header_included_v4)?;
        } else if let Some(ttl) = opts.ttl {
            let (name, set): (_, fn(&Socket, u32) -> io::Result<()>) = if v6 {
                ("IPV6_UNICAST_HOPS", Socket::set_unicast_hops_v6)
            } else {
                ("IP_TTL", Socket::set_ttl_v4)
            };
            calls::setsockopt_u32(&sock, name, u32::from(ttl), set)?;
        }
        if v6 {
            calls::setsockopt(
                &sock,
                "IPV6_RECVHOPLIMIT",
                true,
                Socket::set_recv_hoplimit_v6,
            )?;
        }
        io::Result::Ok(())
    })();
    configured.map_err(|e| anyhow!("setsockopt on {what}: {e}"))?;
    calls::connect(&sock, &target.into())
        .map_err(|e| socket_error(Call::Connect, Subject::ip(&what), &e))?;
    Ok(RawSocket {
        sock,
        local: Address::Ip(target),
        v6,
        protocol: opts.ip_proto,
    })
}

/// The source address the kernel would use towards `dest`, for a header built by hand:
/// connect(2) on a UDP socket looks up the route and sends nothing.
pub(crate) fn route_source(dest: Ipv4Addr) -> io::Result<Ipv4Addr> {
    let probe = calls::socket(Domain::IPV4, Type::DGRAM)?;
    // Any port will do: nothing is sent.
    calls::connect(&probe, &SocketAddr::new(IpAddr::V4(dest), 9).into())?;
    let local = probe.local_addr()?;
    calls::closing(&probe);
    match local.as_socket() {
        Some(SocketAddr::V4(a)) => Ok(*a.ip()),
        _ => Err(io::Error::other(
            "the route lookup gave no IPv4 source address",
        )),
    }
}

impl RawSocket {
    /// The bound address (server) or the target (client).
    pub(crate) fn local(&self) -> &Address {
        &self.local
    }

    pub(crate) fn is_v6(&self) -> bool {
        self.v6
    }

    /// The IP protocol number this socket sends and receives.
    pub(crate) fn protocol(&self) -> u8 {
        self.protocol
    }

    /// recvmsg(2): one packet (with its IPv4 header on an IPv4 socket), its sender, and on
    /// IPv6 the hop limit it came with.
    pub(crate) fn recv(&self, buf: &mut [u8]) -> io::Result<calls::Message> {
        calls::recv_msg(&self.sock, buf)
    }

    /// sendto(2): one packet to `to`.
    pub(crate) fn send_to(&self, buf: &[u8], to: &PeerAddr) -> io::Result<()> {
        calls::send_to(&self.sock, buf, &to.0).map(|_| ())
    }

    /// send(2) to the connected target.
    pub(crate) fn send(&self, buf: &[u8]) -> io::Result<()> {
        calls::send(&self.sock, buf).map(|_| ())
    }

    pub(crate) fn set_nonblocking(&self, nonblocking: bool) -> io::Result<()> {
        calls::set_nonblocking(&self.sock, nonblocking)
    }

    /// SO_RCVTIMEO: how long a blocking recv waits.
    pub(crate) fn set_read_timeout(&self, timeout: Option<std::time::Duration>) -> io::Result<()> {
        calls::set_timeout(&self.sock, "SO_RCVTIMEO", timeout)
    }
}

impl AsFd for RawSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.sock.as_fd()
    }
}

impl Drop for RawSocket {
    fn drop(&mut self) {
        calls::closing(&self.sock);
    }
}
