//! UDP: SOCK_DGRAM over AF_INET and AF_INET6, with recvfrom/sendto on the server.

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};

use anyhow::{Context, Result};
use socket2::{Socket, Type};
use tracing::{debug, warn};

use crate::endpoint::{Address, Proto, SocketKind};

use super::{Conn, DatagramSocket, Received, SocketOptions, calls, ip, multicast, sock_diag};

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
    // A group's replies come from its members, never from its address: nothing to follow.
    if opts.follow_reply_port && !addr.ip().is_multicast() {
        return connect_following(addr, opts);
    }
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

/// A udp socket to `addr` that follows the port `addr`'s host answers from ([`Follow`]):
/// bound to the address a connect would pick, and left unconnected, so that the kernel
/// hands it datagrams from any port (a connected one refuses them with ICMP port
/// unreachable).
fn connect_following(addr: SocketAddr, opts: &SocketOptions) -> io::Result<Conn> {
    let probe = ip::socket_for(addr, Type::DGRAM, &SocketOptions::default())?;
    calls::connect(&probe, &addr.into())?;
    let mut local = probe
        .local_addr()?
        .as_socket()
        .ok_or(io::ErrorKind::InvalidData)?;
    drop(probe);
    local.set_port(0);
    let sock = ip::socket_for(addr, Type::DGRAM, opts)?;
    multicast::sender(&sock, addr, &opts.multicast, opts.ttl).map_err(io::Error::other)?;
    calls::bind(&sock, &local.into())?;
    // Unconnected, it hears of a port unreachable only so: "nothing listens at TO".
    hear_unreachable(&sock, true);
    let mut conn = Conn::new(
        sock,
        SocketKind::Datagram,
        addr.to_string(),
        Some(max_payload(addr)),
    );
    conn.follow = Some(Box::new(Follow {
        to: addr,
        seen: AtomicU16::new(addr.port()),
        port: AtomicU16::new(addr.port()),
        vetting: ip::is_this_host(addr.ip()).then(Mutex::default),
        left_out: AtomicU64::new(0),
    }));
    Ok(conn)
}

/// IP_RECVERR (and IPV6_RECVERR) on or off: with it on, an unconnected socket hears of an
/// ICMP error about a datagram it sent (port unreachable: the next recv or send fails with
/// ECONNREFUSED), as a connected one does without it. Turning it off empties the socket's
/// error queue. False when neither option took (not an IP socket).
pub(crate) fn hear_unreachable(sock: &Socket, on: bool) -> bool {
    use nix::sys::socket::{setsockopt, sockopt};
    let v4 = setsockopt(sock, sockopt::Ipv4RecvErr, &on);
    let v6 = setsockopt(sock, sockopt::Ipv6RecvErr, &on);
    v4.is_ok() || v6.is_ok()
}

/// Empties the error queue of a socket that hears ICMP errors ([`hear_unreachable`]): each
/// error waits there, charged to the receive buffer, until read, so errors never read would
/// crowd out the datagrams.
pub(crate) fn forget_errors(sock: &Socket) {
    hear_unreachable(sock, false);
    hear_unreachable(sock, true);
}

/// The peer of a udp socket that follows the port its peer answers from, as a NAT with a
/// TFTP helper does: a server that answers from a port of its own (TFTP's new TID, the
/// transfer socket of netecho's udp files) is then sent the next datagrams there, as a
/// client talking to it directly would send them. Datagrams from the peer's IP address on
/// any port are taken, from any other address never: no one elsewhere can slip a datagram
/// in or steer the socket (a program on the peer's host could answer for it anyway). When
/// the peer is on this host, where any user can send from its address, a datagram from
/// another of its ports is taken only from a socket of the user whose socket the peer is,
/// or of root ([`Vetting`]).
pub(crate) struct Follow {
    /// The address connected to; its port is the first one sent to.
    to: SocketAddr,
    /// The port of the latest datagram read from `to`'s IP address.
    seen: AtomicU16,
    /// Where sends go: `to`'s port, until [`Follow::take_seen`] moves it, once.
    port: AtomicU16,
    /// Who may answer from another port, when `to` is on this host.
    vetting: Option<Mutex<Vetting>>,
    /// Datagrams from another port of `to`'s address left out: another user's socket sent
    /// them, or whose it was could not be told.
    left_out: AtomicU64,
}

/// Ports of a peer on this host judged at most: a transfer or two answer from a few; past
/// it the oldest is forgotten (and judged again if it sends again).
const MAX_JUDGED: usize = 16;

/// What a [`Follow`] to a peer on this host knows of who answers for it, each piece asked
/// of the kernel (sock_diag) once: the first datagram from a port costs a lookup, its
/// next ones nothing.
#[derive(Default)]
struct Vetting {
    /// The user that owns the peer's socket (the one its address and port reach), once told.
    owner: Option<u32>,
    /// Ports judged, and whether a socket that may answer sends from each.
    judged: VecDeque<(u16, bool)>,
    /// Whether the first datagram left out was logged: one line per flow.
    logged: bool,
}

impl Follow {
    /// Where the next datagram goes.
    pub(crate) fn peer(&self) -> SocketAddr {
        let mut peer = self.to;
        peer.set_port(self.port.load(Ordering::Relaxed));
        peer
    }

    /// Sends go to the port of the latest datagram read from now on, if they still go to
    /// `to`'s own. Called once that datagram reached the client: one lost on the way (a TFTP
    /// DATA, netecho's HELLO) was never seen, and the client's next try must reach the port
    /// it asked before. Moved once only: a second transfer a retried request started, or a
    /// late answer from `to`'s own port, must not pull the flow away from the one the client
    /// talks to.
    pub(crate) fn take_seen(&self) {
        let seen = self.seen.load(Ordering::Relaxed);
        let first = self.to.port();
        let _ = (self.port).compare_exchange(first, seen, Ordering::Relaxed, Ordering::Relaxed);
    }

    pub(crate) fn send(&self, sock: &Socket, buf: &[u8]) -> io::Result<usize> {
        calls::send_to(sock, buf, &self.peer().into())
    }

    /// One datagram from the peer's IP address, whose port is noted. One from elsewhere is
    /// left out and read as EINTR: the caller tries again, looking up between reads as after
    /// any, so a flood from elsewhere cannot hold it in here.
    pub(crate) fn recv(&self, sock: &Socket, buf: &mut [u8]) -> io::Result<Received> {
        let room = buf.len();
        let (n, from) = calls::recv_from(sock, super::as_uninit(buf))?;
        let Some(addr) = from.as_socket() else {
            // No sender: the empty read of a socket shut down as its flow closes.
            return Ok(Received::of(n, room));
        };
        if addr.ip().to_canonical() == self.to.ip().to_canonical() {
            if !self.may_answer(sock, addr) {
                return Err(io::ErrorKind::Interrupted.into());
            }
            self.seen.store(addr.port(), Ordering::Relaxed);
            return Ok(Received::of(n, room));
        }
        // One line per datagram and anyone can send them: ten lines a second.
        static LOG: crate::logging::Throttle = crate::logging::Throttle::new();
        if let Some(more) = LOG.allow_debug() {
            debug!(
                "{addr}: a datagram to the socket to {} from another address; left out{more}",
                self.to
            );
        }
        Err(io::ErrorKind::Interrupted.into())
    }

    /// Whether a datagram from `from`, at the peer's address, may be taken: always from the
    /// peer's own port or from a peer elsewhere; from another port of a peer on this host,
    /// when a socket of the peer's user or of root sent it ([`Follow::judge`], once a port).
    /// One left out is counted, and the flow's first logged.
    fn may_answer(&self, sock: &Socket, from: SocketAddr) -> bool {
        let Some(vetting) = &self.vetting else {
            return true;
        };
        if from.port() == self.to.port() {
            return true;
        }
        let mut vetting = vetting.lock().unwrap_or_else(|e| e.into_inner());
        let port = from.port();
        let known = vetting.judged.iter().find(|(p, _)| *p == port);
        let may = match known.map(|&(_, may)| may) {
            Some(may) => may,
            None => {
                let verdict = self.judge(&mut vetting.owner, sock, from);
                if vetting.judged.len() == MAX_JUDGED {
                    vetting.judged.pop_front();
                }
                vetting.judged.push_back((port, verdict.is_ok()));
                if let Err(why) = &verdict
                    && !std::mem::replace(&mut vetting.logged, true)
                {
                    self.log_left_out(from, why);
                }
                verdict.is_ok()
            }
        };
        if !may {
            self.left_out.fetch_add(1, Ordering::Relaxed);
        }
        may
    }

    /// Whether the socket at `from`, another port of the peer's address on this host, is
    /// the peer's user's or root's: the owner of the peer's socket (asked once), and the
    /// one owner of the sockets on `from`'s port. `Err`: why not, or why it cannot be told.
    fn judge(
        &self,
        owner: &mut Option<u32>,
        sock: &Socket,
        from: SocketAddr,
    ) -> Result<(), String> {
        let local = sock.local_addr().ok().and_then(|a| a.as_socket());
        let Some(local) = local.filter(|l| l.port() != from.port()) else {
            // Only the relay's socket holds its port on its address: a sender on another
            // address of this host, its socket closed at once, would leave it as the owner.
            return Err(format!(
                "it came from port {}, the relay socket's own, so who sent it cannot be told",
                from.port()
            ));
        };
        let owner = match *owner {
            Some(uid) => uid,
            None => match sock_diag::udp_receiver(self.to, local) {
                Ok(Some(uid)) => *owner.insert(uid),
                Ok(None) => {
                    return Err(format!(
                        "no socket at {} takes datagrams now, so whose TO is cannot be told",
                        self.to
                    ));
                }
                Err(e) => {
                    return Err(format!(
                        "who owns the socket at {} cannot be told ({e})",
                        self.to
                    ));
                }
            },
        };
        match sock_diag::udp_port_owner(from.port(), from.ip().to_canonical().is_ipv4()) {
            Ok(Some(uid)) if uid == owner || uid == 0 => Ok(()),
            Ok(Some(uid)) => Err(format!(
                "a socket of uid {uid} sent it, not TO's user's (uid {owner}) or root's"
            )),
            Ok(None) => Err("no socket holds its port now, so who sent it cannot be told".into()),
            Err(e) => Err(e.to_string()),
        }
    }

    /// The line for a flow's first datagram left out: at most ten a second in all, as
    /// local users can make flows leave them out at will.
    fn log_left_out(&self, from: SocketAddr, why: &str) {
        static LOG: crate::logging::Throttle = crate::logging::Throttle::new();
        if let Some(more) = LOG.allow() {
            warn!(
                "{from}: a datagram to the relay's socket to {} from another port of TO's \
                 address left out, and the flow does not follow it there: {why}. TO is on this \
                 host, where any user can send from its address; if TO answers from sockets \
                 of another user, run them as TO's user (the flow's line counts those left \
                 out){more}",
                self.to
            );
        }
    }

    /// Datagrams left out as another user's (see [`Follow::may_answer`]).
    pub(crate) fn left_out(&self) -> u64 {
        self.left_out.load(Ordering::Relaxed)
    }
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
