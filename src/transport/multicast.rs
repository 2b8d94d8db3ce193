//! Multicast and broadcast on UDP sockets. A server receives a group's datagrams only once
//! it joins the group (IP_ADD_MEMBERSHIP, IPV6_JOIN_GROUP) on an interface; binding the
//! group's address alone receives nothing. A sender picks the interface its group datagrams
//! leave by (IP_MULTICAST_IF, IPV6_MULTICAST_IF), how many routers they may cross
//! (IP_MULTICAST_TTL, IPV6_MULTICAST_HOPS: 1 by default, this network only) and whether this
//! host's own members hear them too (IP_MULTICAST_LOOP, on). Broadcast needs SO_BROADCAST
//! on the sender: without it the kernel refuses with EACCES.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use anyhow::{Result, bail};
use socket2::{InterfaceIndexOrAddress, Socket};

use crate::explain;

use super::calls;

/// What `serve --join` and `send --ttl --iface --no-loop --broadcast` ask of a socket.
#[derive(Clone, Debug, Default)]
pub(crate) struct Multicast {
    /// Groups a server joins (--join).
    pub join: Vec<IpAddr>,
    /// The interface, by name, a server joins on or a sender's group datagrams leave by.
    pub iface: Option<String>,
    /// A sender's group datagrams stay off this host's own members (IP_MULTICAST_LOOP off).
    pub no_loop: bool,
    /// SO_BROADCAST: a sender may send to a broadcast address.
    pub broadcast: bool,
}

/// Whether datagrams to `ip` reach many hosts: a group, or the IPv4 limited broadcast.
/// A subnet's broadcast address (10.0.0.255 on a /24) looks like any other address; the
/// kernel tells it apart when it refuses to send there without --broadcast.
pub(crate) fn reaches_many(ip: IpAddr) -> bool {
    match ip.to_canonical() {
        IpAddr::V4(v4) => v4.is_multicast() || v4.is_broadcast(),
        IpAddr::V6(v6) => v6.is_multicast(),
    }
}

/// The index of interface `name` (if_nametoindex), or an error that says how to list them.
pub(crate) fn index(name: &str) -> Result<u32> {
    nix::net::if_::if_nametoindex(name).map_err(|e| {
        anyhow::anyhow!("--iface {name}: no such interface here ({e}); `ip -br link` lists them")
    })
}

/// Joins every group of `m` on a bound server socket (`local` is its address). A
/// socket on the wildcard address that joins also stops hearing the groups other sockets
/// of this host joined (IP_MULTICAST_ALL off).
pub(crate) fn join_all(sock: &Socket, local: SocketAddr, m: &Multicast) -> Result<()> {
    let ifindex = m.iface.as_deref().map(index).transpose()?.unwrap_or(0);
    for &group in &m.join {
        let done = match group.to_canonical() {
            IpAddr::V4(v4) => join_v4(sock, v4, ifindex),
            IpAddr::V6(v6) if local.is_ipv4() => {
                bail!(
                    "--join {v6}: an IPv6 group needs an IPv6 socket; serve on [::] or on the group"
                )
            }
            IpAddr::V6(v6) => {
                let result = sock.join_multicast_v6(&v6, ifindex);
                narrate(sock, "IPV6_JOIN_GROUP", v6.into(), ifindex, &result);
                result
            }
        };
        done.map_err(|e| join_error(group, m.iface.as_deref(), &e))?;
    }
    if !m.join.is_empty() && local.ip().is_unspecified() {
        let all = match local {
            SocketAddr::V4(_) => calls::setsockopt(sock, "IP_MULTICAST_ALL", false, |s, on| {
                s.set_multicast_all_v4(on)
            }),
            SocketAddr::V6(_) => calls::setsockopt(sock, "IPV6_MULTICAST_ALL", false, |s, on| {
                s.set_multicast_all_v6(on)
            }),
        };
        // Older kernels lack IPV6_MULTICAST_ALL: the socket then hears more, never less.
        if let Err(e) = all {
            tracing::debug!("IP_MULTICAST_ALL: {e} (ignored)");
        }
    }
    Ok(())
}

fn join_v4(sock: &Socket, group: Ipv4Addr, ifindex: u32) -> io::Result<()> {
    // ip_mreqn with the interface's index, whatever its addresses (0: the route's choice).
    let result = sock.join_multicast_v4_n(&group, &InterfaceIndexOrAddress::Index(ifindex));
    narrate(sock, "IP_ADD_MEMBERSHIP", group.into(), ifindex, &result);
    result
}

fn narrate(sock: &Socket, name: &str, group: IpAddr, ifindex: u32, result: &io::Result<()>) {
    if explain::on() {
        use std::os::fd::AsRawFd;
        let fd = sock.as_raw_fd();
        explain::zero(
            format_args!("setsockopt(fd {fd}, {name}, {group}, ifindex {ifindex})"),
            result,
        );
    }
}

/// A failed join, with what to do about it.
fn join_error(group: IpAddr, iface: Option<&str>, e: &io::Error) -> anyhow::Error {
    let advice = match (e.raw_os_error(), iface) {
        (Some(libc::ENODEV), None) => {
            "no route says which interface carries this group: add --iface NAME (see `ip -br link`)"
        }
        (Some(libc::EINVAL), _) if !reaches_many(group) => "that is not a multicast group",
        (Some(libc::EADDRINUSE), _) => "this socket has already joined that group",
        (Some(libc::ENOBUFS), _) => {
            "the kernel's limit of groups per socket is reached (net.ipv4.igmp_max_memberships)"
        }
        _ => "",
    };
    let on = iface.map(|i| format!(" on {i}")).unwrap_or_default();
    match advice {
        "" => anyhow::anyhow!("join {group}{on}: {e}"),
        advice => anyhow::anyhow!("join {group}{on}: {e}; {advice}"),
    }
}

/// A sender's options, for a socket about to send to `to`: SO_BROADCAST, and for a group
/// the interface, the TTL or hop limit and loopback; `ttl` outside a group is the unicast
/// TTL (IP_TTL, IPV6_UNICAST_HOPS).
pub(crate) fn sender(sock: &Socket, to: SocketAddr, m: &Multicast, ttl: Option<u8>) -> Result<()> {
    if m.broadcast {
        calls::setsockopt(sock, "SO_BROADCAST", true, Socket::set_broadcast)?;
    }
    let group = to.ip().to_canonical().is_multicast();
    let v6 = to.is_ipv6();
    if !group {
        if let Some(ttl) = ttl {
            match v6 {
                false => calls::setsockopt_u32(sock, "IP_TTL", ttl.into(), Socket::set_ttl_v4)?,
                true => calls::setsockopt_u32(sock, "IPV6_UNICAST_HOPS", ttl.into(), |s, n| {
                    s.set_unicast_hops_v6(n)
                })?,
            }
        }
        return Ok(());
    }
    // An IPv4 group over a dual-stack IPv6 socket is still IPv4 multicast.
    let v4 = !v6 || to.ip().to_canonical().is_ipv4();
    if let Some(name) = &m.iface {
        let ifindex = index(name)?;
        match v4 {
            true => {
                let result = multicast_if_v4(sock, ifindex);
                narrate(sock, "IP_MULTICAST_IF", to.ip(), ifindex, &result);
                result?
            }
            false => calls::setsockopt_u32(sock, "IPV6_MULTICAST_IF", ifindex, |s, n| {
                s.set_multicast_if_v6(n)
            })?,
        }
    }
    if let Some(ttl) = ttl {
        match v4 {
            true => calls::setsockopt_u32(sock, "IP_MULTICAST_TTL", ttl.into(), |s, n| {
                s.set_multicast_ttl_v4(n)
            })?,
            false => calls::setsockopt_u32(sock, "IPV6_MULTICAST_HOPS", ttl.into(), |s, n| {
                s.set_multicast_hops_v6(n)
            })?,
        }
    }
    let looped = !m.no_loop;
    match v4 {
        true => calls::setsockopt(sock, "IP_MULTICAST_LOOP", looped, |s, on| {
            s.set_multicast_loop_v4(on)
        })?,
        false => calls::setsockopt(sock, "IPV6_MULTICAST_LOOP", looped, |s, on| {
            s.set_multicast_loop_v6(on)
        })?,
    }
    Ok(())
}

/// IP_MULTICAST_IF by interface index (an ip_mreqn): the interface needs no address.
fn multicast_if_v4(sock: &Socket, ifindex: u32) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let mreqn = libc::ip_mreqn {
        imr_multiaddr: libc::in_addr { s_addr: 0 },
        imr_address: libc::in_addr { s_addr: 0 },
        imr_ifindex: ifindex as libc::c_int,
    };
    // Safety: an ip_mreqn of the size given, on a socket we own.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_MULTICAST_IF,
            std::ptr::addr_of!(mreqn).cast(),
            std::mem::size_of_val(&mreqn) as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}
