//! What TCP and UDP share: name resolution, creating and binding an AF_INET or AF_INET6
//! socket with the options both care about, and which addresses are this host's.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use socket2::{Domain, Socket, Type};
use tracing::warn;

use crate::endpoint::{Address, Proto};
use crate::error::{Call, Subject, socket_error};

use super::{SocketOptions, calls};

/// Resolves an IP address or host name (getaddrinfo) into every address it stands for.
pub(crate) fn resolve(addr: &Address) -> Result<Vec<SocketAddr>> {
    match addr {
        Address::Ip(addr) if !crate::endpoint::family_allows(addr) => Err(anyhow!(
            "{addr} is not of the family {} asks for; drop the flag or give the other address",
            crate::endpoint::family_flag()
        )),
        Address::Ip(addr) => Ok(vec![*addr]),
        Address::Host(host, port) => {
            let addrs: Vec<SocketAddr> = (host.as_str(), *port)
                .to_socket_addrs()
                .map_err(|e| {
                    anyhow!(
                        "cannot resolve '{host}': name not resolved ({e}); \
                         check the spelling, or give an IP address"
                    )
                })?
                .filter(crate::endpoint::family_allows)
                .collect();
            if addrs.is_empty() {
                return Err(anyhow!(
                    "cannot resolve '{host}': it has no address{}",
                    match crate::endpoint::family_flag() {
                        "" => String::new(),
                        flag => format!(" of the family {flag} asks for"),
                    }
                ));
            }
            Ok(addrs)
        }
        Address::UnixPath(_) | Address::UnixAbstract(_) => {
            Err(anyhow!("{addr} is not an IP address"))
        }
    }
}

/// A socket filter (classic BPF) for IPv6 datagram sockets: an IPv6 packet whose source is
/// an IPv4-mapped address (::ffff:a.b.c.d) is dropped. On a dual-stack socket an IPv4 client
/// shows as exactly that address, so a packet from another host forged with the source
/// ::ffff:127.0.0.1 would pass as this host: past --allow 127.0.0.0/8, a loopback peer's
/// whole reply, the log's 127.0.0.1. The kernel takes such a packet over UDP (it drops a SYN
/// from one); real IPv4 datagrams arrive as IPv4 (their protocol 0x0800) and pass.
const NO_MAPPED_SOURCE: [socket2::SockFilter; 10] = {
    use socket2::SockFilter as F;
    // BPF_LD|BPF_H|BPF_ABS, BPF_LD|BPF_W|BPF_ABS, BPF_JMP|BPF_JEQ|BPF_K, BPF_RET|BPF_K.
    const LDH: u16 = 0x28;
    const LDW: u16 = 0x20;
    const JEQ: u16 = 0x15;
    const RET: u16 = 0x06;
    // SKF_AD_OFF + SKF_AD_PROTOCOL: the packet's ethertype; SKF_NET_OFF: the IP header.
    const PROTOCOL: u32 = (-0x1000i32) as u32;
    const NET: u32 = (-0x10_0000i32) as u32;
    [
        F::new(LDH, 0, 0, PROTOCOL),
        F::new(JEQ, 0, 6, 0x86dd),   // not IPv6: keep
        F::new(LDW, 0, 0, NET + 8),  // the source's first 32 bits
        F::new(JEQ, 0, 4, 0),        // not zero: keep
        F::new(LDW, 0, 0, NET + 12), // the next 32
        F::new(JEQ, 0, 2, 0),        // not zero: keep
        F::new(LDW, 0, 0, NET + 16), // the next 32
        F::new(JEQ, 1, 0, 0xffff),   // 0000:ffff: mapped, drop
        F::new(RET, 0, 0, u32::MAX), // keep the whole datagram
        F::new(RET, 0, 0, 0),        // drop it
    ]
};

/// A new AF_INET or AF_INET6 socket of type `ty` for `addr`, with IPV6_V6ONLY set as asked.
pub(crate) fn socket_for(
    addr: SocketAddr,
    ty: Type,
    opts: &SocketOptions,
) -> std::io::Result<Socket> {
    let sock = calls::socket(Domain::for_address(addr), ty)?;
    if addr.is_ipv6() {
        // Set IPV6_V6ONLY explicitly: its default comes from net.ipv6.bindv6only and differs
        // between machines, and `[::]` must be dual-stack unless --v6only says otherwise.
        calls::setsockopt(&sock, "IPV6_V6ONLY", opts.v6only, Socket::set_only_v6)?;
        if ty == Type::DGRAM {
            sock.attach_filter(&NO_MAPPED_SOURCE)?;
        }
    }
    super::set_buffers(&sock, opts)?;
    Ok(sock)
}

/// Creates, configures (`setup`) and binds a socket on the first address of `addr` that
/// works, returning it with the address it really got (port 0 becomes a real port).
pub(crate) fn bind_first(
    proto: Proto,
    addr: &Address,
    ty: Type,
    opts: &SocketOptions,
    setup: impl Fn(&Socket) -> std::io::Result<()>,
) -> Result<(Socket, SocketAddr)> {
    if opts.v6only && matches!(addr, Address::Ip(SocketAddr::V4(_))) {
        warn!("--v6only applies to IPv6 addresses only; ignored for {addr}");
    }
    let mut last = None;
    for candidate in resolve(addr)? {
        let what = format!("{proto} {candidate}");
        let sock = socket_for(candidate, ty, opts).with_context(|| format!("socket for {what}"))?;
        setup(&sock).with_context(|| format!("setsockopt on {what}"))?;
        match calls::bind(&sock, &candidate.into()) {
            Ok(()) => {
                let local = sock
                    .local_addr()?
                    .as_socket()
                    .context("bound IP socket has no IP address")?;
                return Ok((sock, local));
            }
            Err(e) => {
                let on = Subject::ip(&what).datagram(ty == Type::DGRAM);
                last = Some(socket_error(Call::Bind, on, &e));
            }
        }
    }
    Err(last.unwrap_or_else(|| anyhow!("{addr} has no address to bind")))
}

/// Whether `ip` is one of this host's addresses (loopback among them): a connected peer
/// there is a program of this host, as a handshake answered from outside never completes.
/// A datagram's source proves less: see the guard's `datagram_from_this_host`.
pub(crate) fn is_this_host(ip: IpAddr) -> bool {
    let ip = ip.to_canonical();
    ip.is_loopback() || local_ips().contains(&ip)
}

/// The addresses of this host's interfaces, read again at most once a second: a datagram
/// request from elsewhere asks for them, and each reading is a netlink dump.
pub(crate) fn local_ips() -> Vec<IpAddr> {
    static READ: std::sync::Mutex<Option<(Instant, Vec<IpAddr>)>> = std::sync::Mutex::new(None);
    let mut read = READ.lock().unwrap_or_else(|e| e.into_inner());
    match &*read {
        Some((at, ips)) if at.elapsed() < Duration::from_secs(1) => ips.clone(),
        _ => {
            let ips = read_local_ips();
            *read = Some((Instant::now(), ips.clone()));
            ips
        }
    }
}

/// The addresses of this host's interfaces (getifaddrs).
fn read_local_ips() -> Vec<IpAddr> {
    let Ok(addrs) = nix::ifaddrs::getifaddrs() else {
        return Vec::new();
    };
    addrs
        .filter_map(|a| a.address)
        .filter_map(|a| {
            a.as_sockaddr_in()
                .map(|v4| IpAddr::V4(v4.ip()))
                .or_else(|| a.as_sockaddr_in6().map(|v6| IpAddr::V6(v6.ip())))
        })
        .map(|ip| ip.to_canonical())
        .collect()
}
