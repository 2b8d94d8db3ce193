//! IP_PKTINFO and IPV6_RECVPKTINFO: which address of ours a datagram was sent to, so that
//! its reply leaves from that address. A socket bound to 0.0.0.0 or [::] otherwise answers
//! from whichever address the kernel's route picks: a client that sent to 127.0.0.2 hears
//! from 127.0.0.1, and a connected client (nc -u, `netecho send`) drops that reply. A
//! datagram sent to a multicast group or a broadcast address is answered unicast, from the
//! receiving interface's own address, never from the group.

use std::io;
use std::mem;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::AsRawFd;
use std::ptr;

use socket2::Socket;

use super::{Address, DatagramSocket, PeerAddr, Received, Told, calls};

/// Room for the control messages of one datagram: one in6_pktinfo (larger than a ucred)
/// with its header, and slack for another the kernel may add.
pub(crate) const CONTROL: usize = 128;

/// A control message buffer, aligned as cmsghdr needs.
#[derive(Clone, Copy)]
#[repr(C, align(8))]
pub(crate) struct Control(pub [u8; CONTROL]);

impl Default for Control {
    fn default() -> Self {
        Control([0; CONTROL])
    }
}

/// Where a datagram arrived, as IP_PKTINFO or IPV6_PKTINFO reported it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Arrival {
    /// `to`: the destination in the IP header; `local`: the kernel's ipi_spec_dst, the
    /// address of ours a reply should come from (`to` itself for a unicast address of
    /// ours; the receiving interface's address for a group or a broadcast).
    V4 { to: Ipv4Addr, local: Ipv4Addr },
    /// The destination (IPv4-mapped for an IPv4 datagram on a dual-stack socket) and the
    /// receiving interface, which a link-local or group destination needs.
    V6 { to: Ipv6Addr, ifindex: u32 },
}

impl Arrival {
    /// The address the datagram was sent to.
    pub(crate) fn to(&self) -> IpAddr {
        match *self {
            Arrival::V4 { to, .. } => to.into(),
            Arrival::V6 { to, .. } => IpAddr::V6(to).to_canonical(),
        }
    }

    /// Whether it was sent to many: a multicast group, or a broadcast address (which
    /// IP_PKTINFO tells by a spec_dst other than the destination).
    pub(crate) fn sent_to_many(&self) -> bool {
        match *self {
            Arrival::V4 { to, local } => to.is_multicast() || to.is_broadcast() || to != local,
            Arrival::V6 { .. } => match self.to() {
                IpAddr::V4(to) => to.is_multicast() || to.is_broadcast(),
                IpAddr::V6(to) => to.is_multicast(),
            },
        }
    }

    /// The address a reply leaves from, as a socket address with `port`: what a socket of
    /// the request's own (a file transfer's) binds. Unspecified when the kernel must pick
    /// (a group destination over IPv6).
    pub(crate) fn reply_address(&self, port: u16) -> SocketAddr {
        match *self {
            Arrival::V4 { local, .. } => SocketAddr::new(local.into(), port),
            Arrival::V6 { ifindex, .. } => match self.reply_source() {
                IpAddr::V4(ip) => SocketAddr::new(ip.into(), port),
                IpAddr::V6(ip) => {
                    let scope = if needs_scope(&ip) { ifindex } else { 0 };
                    SocketAddr::V6(std::net::SocketAddrV6::new(ip, port, 0, scope))
                }
            },
        }
    }

    /// The reply's source: the destination when it is one of ours, else unspecified.
    fn reply_source(&self) -> IpAddr {
        match *self {
            Arrival::V4 { local, .. } => local.into(),
            Arrival::V6 { to, .. } if !self.sent_to_many() => IpAddr::V6(to).to_canonical(),
            Arrival::V6 { to, .. } if to.to_ipv4_mapped().is_some() => Ipv4Addr::UNSPECIFIED.into(),
            Arrival::V6 { .. } => Ipv6Addr::UNSPECIFIED.into(),
        }
    }

    /// Writes the IP_PKTINFO or IPV6_PKTINFO message that makes sendmsg(2) send from
    /// [`Arrival::reply_source`]; returns its length for msg_controllen.
    pub(crate) fn encode(&self, control: &mut Control) -> usize {
        match *self {
            Arrival::V4 { local, .. } => {
                let info = libc::in_pktinfo {
                    // No interface: the route to the client picks it, as for any reply.
                    ipi_ifindex: 0,
                    ipi_spec_dst: in_addr(local),
                    ipi_addr: in_addr(Ipv4Addr::UNSPECIFIED),
                };
                put(control, libc::IPPROTO_IP, libc::IP_PKTINFO, &info)
            }
            Arrival::V6 { to, ifindex } => {
                let source = match self.reply_source() {
                    IpAddr::V4(ip) => ip.to_ipv6_mapped(),
                    IpAddr::V6(ip) => ip,
                };
                // A link-local source, or a group's reply, leaves by the interface it came
                // in on; any other by the route to the client.
                let scoped = needs_scope(&to) || self.sent_to_many();
                let info = libc::in6_pktinfo {
                    ipi6_addr: libc::in6_addr {
                        s6_addr: source.octets(),
                    },
                    ipi6_ifindex: if scoped { ifindex } else { 0 },
                };
                put(control, libc::IPPROTO_IPV6, libc::IPV6_PKTINFO, &info)
            }
        }
    }

    /// The arrival recorded in a received message's control data, if any.
    ///
    /// # Safety
    /// `hdr` must be a msghdr recvmsg(2) or recvmmsg(2) has just filled: its msg_control
    /// points to at least msg_controllen valid bytes.
    pub(crate) unsafe fn decode(hdr: &libc::msghdr) -> Option<Arrival> {
        if hdr.msg_control.is_null() || hdr.msg_flags & libc::MSG_CTRUNC != 0 {
            return None;
        }
        // An IPv4 datagram on a dual-stack socket carries both: IP_PKTINFO's spec_dst is
        // the one that tells a subnet's broadcast from an address of ours, so it wins.
        let mut v6 = None;
        // Safety: the kernel wrote well-formed control messages within msg_controllen, and
        // the CMSG macros never step past it; each payload is read unaligned.
        unsafe {
            let mut cmsg = libc::CMSG_FIRSTHDR(hdr);
            while !cmsg.is_null() {
                let data = libc::CMSG_DATA(cmsg);
                match ((*cmsg).cmsg_level, (*cmsg).cmsg_type) {
                    (libc::IPPROTO_IP, libc::IP_PKTINFO) => {
                        let info = ptr::read_unaligned(data.cast::<libc::in_pktinfo>());
                        return Some(Arrival::V4 {
                            to: ipv4(info.ipi_addr),
                            local: ipv4(info.ipi_spec_dst),
                        });
                    }
                    (libc::IPPROTO_IPV6, libc::IPV6_PKTINFO) => {
                        let info = ptr::read_unaligned(data.cast::<libc::in6_pktinfo>());
                        v6 = Some(Arrival::V6 {
                            to: Ipv6Addr::from(info.ipi6_addr.s6_addr),
                            ifindex: info.ipi6_ifindex,
                        });
                    }
                    _ => {}
                }
                cmsg = libc::CMSG_NXTHDR(hdr, cmsg);
            }
        }
        v6
    }
}

/// Link-local addresses (fe80::/10, and groups of link scope) mean something only with the
/// interface they belong to.
fn needs_scope(ip: &Ipv6Addr) -> bool {
    ip.is_unicast_link_local() || (ip.is_multicast() && ip.segments()[0] & 0x000f <= 2)
}

fn in_addr(ip: Ipv4Addr) -> libc::in_addr {
    libc::in_addr {
        s_addr: u32::from(ip).to_be(),
    }
}

fn ipv4(addr: libc::in_addr) -> Ipv4Addr {
    Ipv4Addr::from(u32::from_be(addr.s_addr))
}

/// One control message of `level` and `kind` carrying `value`, at the start of `control`.
fn put<T>(control: &mut Control, level: libc::c_int, kind: libc::c_int, value: &T) -> usize {
    let size = mem::size_of::<T>() as libc::c_uint;
    // Safety: CMSG_SPACE of an in6_pktinfo (40 bytes) fits in CONTROL; the msghdr below only
    // tells CMSG_FIRSTHDR where the buffer is, and the header and payload are written
    // within it, unaligned where the payload may be.
    unsafe {
        let space = libc::CMSG_SPACE(size) as usize;
        assert!(space <= CONTROL, "a control message larger than its buffer");
        let mut hdr: libc::msghdr = mem::zeroed();
        hdr.msg_control = control.0.as_mut_ptr().cast();
        hdr.msg_controllen = space as _;
        let cmsg = libc::CMSG_FIRSTHDR(&hdr);
        (*cmsg).cmsg_level = level;
        (*cmsg).cmsg_type = kind;
        (*cmsg).cmsg_len = libc::CMSG_LEN(size) as _;
        ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<T>(), ptr::read(value));
        space
    }
}

/// IP_PKTINFO (IPv4) or IPV6_RECVPKTINFO (IPv6): each datagram read with recvmsg then
/// says where it was sent. A dual-stack socket asks for both, for its IPv4 datagrams.
pub(crate) fn enable(sock: &Socket, v6: bool) -> io::Result<()> {
    if v6 {
        set_int(
            sock,
            libc::IPPROTO_IPV6,
            libc::IPV6_RECVPKTINFO,
            "IPV6_RECVPKTINFO",
        )?;
        if !sock.only_v6()? {
            set_int(sock, libc::IPPROTO_IP, libc::IP_PKTINFO, "IP_PKTINFO")?;
        }
        return Ok(());
    }
    set_int(sock, libc::IPPROTO_IP, libc::IP_PKTINFO, "IP_PKTINFO")
}

/// An int option set to 1, narrated by its C name.
fn set_int(sock: &Socket, level: libc::c_int, name: libc::c_int, shown: &str) -> io::Result<()> {
    calls::setsockopt(sock, shown, true, |s, on| {
        let value = libc::c_int::from(on);
        // Safety: an int option of the size given, on a socket we own.
        let rc = unsafe {
            libc::setsockopt(
                s.as_raw_fd(),
                level,
                name,
                ptr::addr_of!(value).cast(),
                mem::size_of_val(&value) as libc::socklen_t,
            )
        };
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    })
}

/// Where a datagram socket's replies leave from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum ReplyFrom {
    /// The kernel's choice: a socket bound to one address answers from it.
    #[default]
    Kernel,
    /// Each datagram's destination (a socket on a wildcard address or a group): read with
    /// recvmsg, answered with sendmsg.
    Destination,
    /// One request's destination: the handle a request's thread answers on.
    Request(Arrival),
}

impl DatagramSocket {
    /// From now on each reply leaves from its request's destination (IP_PKTINFO,
    /// IPV6_RECVPKTINFO).
    pub(crate) fn reply_from_destination(&mut self, v6: bool) -> io::Result<()> {
        enable(&self.sock, v6)?;
        self.reply = ReplyFrom::Destination;
        Ok(())
    }

    /// Whether each reply leaves from its datagram's destination.
    pub(crate) fn replies_from_destination(&self) -> bool {
        self.reply == ReplyFrom::Destination
    }

    /// One datagram, its sender, and what recvmsg told of it: where it arrived when the
    /// socket answers from the destination, its sender's credentials when it passes them;
    /// else recvfrom(2) as [`DatagramSocket::recv_from`].
    pub(crate) fn recv_request(&self, buf: &mut [u8]) -> io::Result<(Received, PeerAddr, Told)> {
        if self.reply != ReplyFrom::Destination && !self.passcred {
            let (received, from) = self.recv_from(buf)?;
            return Ok((received, from, Told::default()));
        }
        let mut control = Control::default();
        let len = buf.len();
        let mut iov = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: len,
        };
        // Safety: all zeroes is a valid sockaddr_storage and msghdr.
        let mut name: libc::sockaddr_storage = unsafe { mem::zeroed() };
        let mut hdr: libc::msghdr = unsafe { mem::zeroed() };
        hdr.msg_name = ptr::addr_of_mut!(name).cast();
        hdr.msg_namelen = mem::size_of_val(&name) as libc::socklen_t;
        hdr.msg_iov = &mut iov;
        hdr.msg_iovlen = 1;
        hdr.msg_control = control.0.as_mut_ptr().cast();
        hdr.msg_controllen = CONTROL as _;
        // Close-on-exec for any descriptor a sender passed (SCM_RIGHTS), so none reaches a
        // program run meanwhile; `credentials` closes them.
        let flags = libc::MSG_TRUNC | libc::MSG_CMSG_CLOEXEC;
        // Safety: every pointer in `hdr` refers to a live local or to `buf`, with its length.
        let got = unsafe { libc::recvmsg(self.sock.as_raw_fd(), &mut hdr, flags) };
        let result = if got < 0 {
            Err(io::Error::last_os_error())
        } else {
            // Safety: the kernel wrote msg_namelen bytes of an address into `name`, and
            // control messages within msg_controllen.
            let mut from = unsafe { super::batch::sockaddr(&name, hdr.msg_namelen) };
            let cred = unsafe { super::unix::credentials(&hdr) };
            let mut told = Told {
                arrival: unsafe { Arrival::decode(&hdr) },
                cred: cred.map(|c| (c.uid, c.gid)),
                held: None,
            };
            if self.passcred {
                (from, told.held) = super::unix::vouched(from, cred);
            }
            Ok((got as usize, from, told))
        };
        narrate_recv(&self.sock, len, &result);
        let (n, from, told) = result?;
        Ok((Received::of(n, len), from, told))
    }

    /// One reply to `to`, from where its request arrived (sendmsg with IP_PKTINFO or
    /// IPV6_PKTINFO), or from the kernel's choice without an arrival (sendto; to a Unix path
    /// through `held`, its sender's socket file: see [`DatagramSocket::send_via`]). A source
    /// the kernel refuses (EINVAL: a link-local address reached over another interface) gets
    /// the kernel's choice instead.
    pub(crate) fn reply_to(
        &self,
        buf: &[u8],
        to: &PeerAddr,
        arrival: Option<&Arrival>,
        held: Option<&super::unix::ReplyPath>,
        flags: libc::c_int,
    ) -> io::Result<()> {
        let Some(arrival) = arrival else {
            return self.send_via(buf, to, held, flags);
        };
        let mut control = Control::default();
        let mut iov = libc::iovec {
            iov_base: buf.as_ptr().cast_mut().cast(),
            iov_len: buf.len(),
        };
        // Safety: all zeroes is a valid msghdr; every pointer set below outlives the call,
        // and the kernel only reads through them.
        let mut hdr: libc::msghdr = unsafe { mem::zeroed() };
        hdr.msg_name = to.0.as_ptr().cast_mut().cast();
        hdr.msg_namelen = to.0.len();
        hdr.msg_iov = &mut iov;
        hdr.msg_iovlen = 1;
        hdr.msg_control = control.0.as_mut_ptr().cast();
        hdr.msg_controllen = arrival.encode(&mut control) as _;
        let sent =
            unsafe { libc::sendmsg(self.sock.as_raw_fd(), &hdr, flags | libc::MSG_NOSIGNAL) };
        let result = if sent < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(sent as usize)
        };
        if crate::explain::on() {
            let (fd, n, source) = (self.sock.as_raw_fd(), buf.len(), arrival.reply_source());
            crate::explain::say(
                format_args!(
                    "sendmsg(fd {fd}, {}, {to:#}, from {source})",
                    crate::units::count(n, "byte")
                ),
                &result,
                |n| n.to_string(),
            );
        }
        match result {
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                calls::send_to_flags(&self.sock, buf, &to.0, flags).map(|_| ())
            }
            other => other.map(|_| ()),
        }
    }

    /// A handle for one request's thread: its replies leave from where the request
    /// arrived, and its local address is that one (a transfer socket binds near it).
    pub(crate) fn for_request(
        &self,
        arrival: Option<Arrival>,
        held: Option<std::sync::Arc<super::unix::ReplyPath>>,
    ) -> io::Result<DatagramSocket> {
        let mut handle = self.try_clone()?;
        handle.held = held;
        if let Some(arrival) = arrival {
            handle.reply = ReplyFrom::Request(arrival);
            if let Address::Ip(local) = self.local {
                let mut at = arrival.reply_address(local.port());
                // A dual-stack socket's IPv4 peers are IPv4-mapped: a socket of the request's
                // own must be IPv6 as well to reach them.
                if let (SocketAddr::V4(v4), true) = (at, local.is_ipv6()) {
                    at = SocketAddr::new(v4.ip().to_ipv6_mapped().into(), v4.port());
                }
                handle.local = Address::Ip(at);
            }
        }
        Ok(handle)
    }
}

/// Narrates a recvmsg as recvfrom is narrated, with the destination or the sender's uid.
fn narrate_recv(sock: &Socket, len: usize, result: &io::Result<(usize, PeerAddr, Told)>) {
    // EAGAIN from a blocking socket is its SO_RCVTIMEO passing: the server's tick.
    let tick = matches!(result, Err(e) if e.kind() == io::ErrorKind::WouldBlock);
    if crate::explain::on() && !tick {
        crate::explain::say(
            format_args!("recvmsg(fd {}, {len})", sock.as_raw_fd()),
            result,
            |(n, from, told)| {
                let bytes = crate::units::count(*n, "byte");
                match (told.arrival, told.cred) {
                    (Some(a), _) => format!("{bytes} from {from:#} to {}", a.to()),
                    (None, Some((uid, _))) => format!("{bytes} from {from:#} (uid {uid})"),
                    (None, None) => format!("{bytes} from {from:#}"),
                }
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v6(s: &str, ifindex: u32) -> Arrival {
        Arrival::V6 {
            to: s.parse().unwrap(),
            ifindex,
        }
    }

    #[test]
    fn a_reply_comes_from_the_destination_unless_it_was_sent_to_many() {
        let local = Arrival::V4 {
            to: Ipv4Addr::new(127, 0, 0, 2),
            local: Ipv4Addr::new(127, 0, 0, 2),
        };
        assert!(!local.sent_to_many());
        assert_eq!(local.reply_address(7), "127.0.0.2:7".parse().unwrap());
        let group = Arrival::V4 {
            to: Ipv4Addr::new(239, 1, 2, 3),
            local: Ipv4Addr::new(10, 0, 0, 1),
        };
        assert!(group.sent_to_many());
        assert_eq!(group.reply_address(7), "10.0.0.1:7".parse().unwrap());
        let subnet_broadcast = Arrival::V4 {
            to: Ipv4Addr::new(10, 0, 0, 255),
            local: Ipv4Addr::new(10, 0, 0, 1),
        };
        assert!(subnet_broadcast.sent_to_many());
        let mapped = v6("::ffff:127.0.0.2", 1);
        assert_eq!(mapped.to(), IpAddr::from([127, 0, 0, 2]));
        assert_eq!(mapped.reply_address(7), "127.0.0.2:7".parse().unwrap());
        assert!(v6("::ffff:239.1.2.3", 1).sent_to_many());
        let group6 = v6("ff05::1234", 3);
        assert!(group6.sent_to_many());
        assert_eq!(group6.reply_address(7), "[::]:7".parse().unwrap());
        let link = v6("fe80::1", 3);
        assert_eq!(link.reply_address(7), "[fe80::1%3]:7".parse().unwrap());
    }

    #[test]
    fn encode_then_decode_gives_the_reply_source() {
        for arrival in [
            Arrival::V4 {
                to: Ipv4Addr::new(127, 0, 0, 2),
                local: Ipv4Addr::new(127, 0, 0, 2),
            },
            v6("fd00::2", 0),
            v6("fe80::1", 4),
        ] {
            let mut control = Control::default();
            let len = arrival.encode(&mut control);
            // Safety: a msghdr over the buffer just written.
            let back = unsafe {
                let mut hdr: libc::msghdr = mem::zeroed();
                hdr.msg_control = control.0.as_mut_ptr().cast();
                hdr.msg_controllen = len as _;
                Arrival::decode(&hdr)
            };
            let source = match back.expect("decoded") {
                Arrival::V4 { local, .. } => IpAddr::V4(local),
                Arrival::V6 { to, .. } => IpAddr::V6(to),
            };
            assert_eq!(source, arrival.reply_source(), "{arrival:?}");
        }
    }
}
