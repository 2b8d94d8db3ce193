//! The echo service over a raw IP socket. Each packet is decoded by hand: on IPv4 the IP
//! header the kernel hands over (checked before any field is trusted), then the netecho
//! header. Requests are answered with the message transformed, sent back to the packet's
//! source; everything else is counted and passed over. On loopback the socket also sees
//! every reply, its own included, which is why the header says which is which.

use std::fmt;
use std::io;
use std::os::fd::AsFd;
use std::time::Duration;

use anyhow::Result;
use tracing::{debug, info, warn};

use crate::endpoint::Proto;
use crate::packet::header::{Header, Kind, NotNetecho};
use crate::packet::ipv4;
use crate::signal::{Shutdown, Signal, Wake};
use crate::transport::raw::RawSocket;
use crate::transport::{MAX_MESSAGE, PeerAddr};

use super::echo::Transform;
use super::guard::{Guard, GuardRules};
use super::peers::PeerTable;
use super::stats::Stats;

/// What became of the packets a raw echo server read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct RawCounts {
    pub answered: u64,
    /// Packets of the protocol without the netecho magic: someone else's.
    pub no_magic: u64,
    /// IPv4 headers that do not hold up (short, bad version, IHL, length or checksum) and
    /// netecho headers of an unknown type.
    pub malformed: u64,
    /// Replies, seen because loopback delivers them to every raw socket of the protocol.
    pub replies: u64,
    /// Requests past their source's replies per second (see [`RawRules`]).
    pub limited: u64,
}

impl fmt::Display for RawCounts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "answered {} request(s); ignored {} packet(s) without the netecho magic; dropped {} \
             malformed; passed over {} reply packet(s)",
            self.answered, self.no_magic, self.malformed, self.replies
        )?;
        if self.limited > 0 {
            write!(
                f,
                "; left {} request(s) unanswered, over their source's replies per second \
                 (--rate-limit)",
                self.limited
            )?;
        }
        Ok(())
    }
}

/// What to do with one packet.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Send this payload back to the sender (netecho header and message).
    Reply(Vec<u8>),
    /// Nothing to send; the counts say why.
    Pass,
}

/// The raw echo service of one socket: its rules and counts.
pub(crate) struct RawEcho {
    pub transform: Transform,
    pub v6: bool,
    pub counts: RawCounts,
}

impl RawEcho {
    /// Decides about one packet as read from the socket (with the IPv4 header on IPv4;
    /// `hops` is the hop limit an IPv6 socket reports beside the payload).
    pub(crate) fn handle(&mut self, packet: &[u8], from: &PeerAddr, hops: Option<u8>) -> Verdict {
        let from = from.show(Proto::Raw);
        let payload = if self.v6 {
            let hops = hops.map_or("unknown".to_string(), |h| h.to_string());
            debug!(
                "raw {from}: IPv6, hop limit {hops}, {} payload bytes (an IPv6 raw socket \
                 reads no IP header)",
                packet.len()
            );
            packet
        } else {
            match ipv4::parse(packet) {
                Ok((header, payload)) => {
                    debug!("raw {from}: {header}");
                    payload
                }
                Err(why) => {
                    debug!("raw {from}: dropped a malformed packet: {why}");
                    self.counts.malformed += 1;
                    return Verdict::Pass;
                }
            }
        };
        let (header, message) = match Header::parse(payload) {
            Ok(parsed) => parsed,
            Err(why) => {
                debug!("raw {from}: ignored {} bytes: {why}", payload.len());
                match why {
                    NotNetecho::NoMagic => self.counts.no_magic += 1,
                    NotNetecho::BadType(_) => self.counts.malformed += 1,
                }
                return Verdict::Pass;
            }
        };
        if header.kind == Kind::Reply {
            debug!("raw {from}: {header}: a reply, not answered");
            self.counts.replies += 1;
            return Verdict::Pass;
        }
        debug!("raw {from}: {header}, {} message bytes", message.len());
        let mut reply = Vec::with_capacity(payload.len());
        Header {
            kind: Kind::Reply,
            ..header
        }
        .write(&mut reply);
        let start = reply.len();
        reply.extend_from_slice(message);
        self.transform.apply(&mut reply[start..]);
        self.counts.answered += 1;
        Verdict::Reply(reply)
    }
}

/// The raw echo's settings: its transform, and the replies per second a source gets, as
/// udp's (`--rate-limit`, or [`super::guard::DEFAULT_ECHO_RATE`] off this host): a raw request's
/// source is never proven, so a forged one is answered no faster than that.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RawRules {
    pub transform: Transform,
    pub rate: Option<u32>,
    pub default_rate: Option<u32>,
}

/// Serves a raw socket until a stop signal; returns the signal.
pub(crate) fn serve(
    sock: &RawSocket,
    rules: RawRules,
    stats: &Stats,
    shutdown: &Shutdown,
) -> Result<Signal> {
    serve_gated(sock, rules, stats, shutdown, None)
}

/// The reply guard of a raw echo: rates only, since raw has no ports to loop through and a
/// reply is marked as one.
fn raw_guard(rules: &RawRules) -> Guard {
    Guard::new(
        GuardRules {
            allow_loop_ports: true,
            rate: rules.rate,
            default_rate: rules.default_rate,
            repeats: false,
            replies_upper: false,
        },
        None,
    )
}

/// As [`serve`], answering only sources `gate` lets through (`serve --lab`: runs holding
/// their turn); the others' packets are read and dropped.
pub(crate) fn serve_gated(
    sock: &RawSocket,
    rules: RawRules,
    stats: &Stats,
    shutdown: &Shutdown,
    gate: Option<&crate::access::Gate>,
) -> Result<Signal> {
    sock.set_nonblocking(true)?;
    let mut echo = RawEcho {
        transform: rules.transform,
        v6: sock.is_v6(),
        counts: RawCounts::default(),
    };
    let mut guard = raw_guard(&rules);
    let mut peers = PeerTable::new(Proto::Raw);
    // A lab server's runs say their own ends: their flows' lines at debug level.
    peers.quiet = gate.is_some();
    let mut buf = vec![0u8; MAX_MESSAGE];
    loop {
        match shutdown.wait(sock.as_fd(), Some(Duration::from_secs(1)))? {
            Wake::Stop(signal) => {
                peers.finish();
                info!("raw: {}", echo.counts);
                return Ok(signal);
            }
            // An idle tick: nothing to read (a read now would only say EAGAIN).
            Wake::Timeout => {
                peers.expire();
                continue;
            }
            Wake::Ready => {}
        }
        loop {
            let got = match sock.recv(&mut buf) {
                Ok(got) => got,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    warn!("recvmsg: {e}");
                    break;
                }
            };
            let from = PeerAddr(got.from);
            let source = from.0.as_socket().map(|a| a.ip().to_canonical());
            if gate.is_some_and(|gate| !source.is_some_and(|ip| gate(ip))) {
                continue;
            }
            // An IP packet is at most 65,535 bytes, so it always fits the buffer; the
            // bound still keeps a slice in range whatever the kernel reports.
            let packet = &buf[..got.len.min(buf.len())];
            let Verdict::Reply(reply) = echo.handle(packet, &from, got.ttl) else {
                continue;
            };
            if let Err(verdict) = guard.check(&from, None, &reply) {
                debug!(
                    "raw {}: not answered: {}",
                    from.show(Proto::Raw),
                    verdict.explain()
                );
                echo.counts.answered -= 1;
                echo.counts.limited += 1;
                continue;
            }
            let message = reply.len() - crate::packet::header::HEADER_LEN;
            let sent = match sock.send_to(&reply, &from) {
                Ok(()) => message,
                Err(e) => {
                    debug!("raw {}: reply not sent: {e}", from.show(Proto::Raw));
                    0
                }
            };
            peers.message(&from, stats, (message, sent));
        }
        peers.expire();
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, SocketAddr};

    use super::*;
    use crate::packet::ipv4::Ipv4Header;

    fn from() -> PeerAddr {
        PeerAddr(SocketAddr::from(([127, 0, 0, 1], 0)).into())
    }

    fn ipv4_packet(payload: &[u8]) -> Vec<u8> {
        let h = Ipv4Header::new(
            Ipv4Addr::LOCALHOST,
            Ipv4Addr::LOCALHOST,
            253,
            64,
            1,
            payload.len(),
        )
        .unwrap();
        let mut p = h.to_bytes().to_vec();
        p.extend_from_slice(payload);
        p
    }

    fn request(kind: Kind, msg: &[u8]) -> Vec<u8> {
        let mut p = Vec::new();
        Header {
            kind,
            id: 7,
            seq: 9,
        }
        .write(&mut p);
        p.extend_from_slice(msg);
        p
    }

    #[test]
    fn requests_are_answered_and_the_rest_counted() {
        let mut echo = RawEcho {
            transform: Transform::Upper,
            v6: false,
            counts: RawCounts::default(),
        };
        let verdict = echo.handle(&ipv4_packet(&request(Kind::Request, b"hi!")), &from(), None);
        assert_eq!(verdict, Verdict::Reply(request(Kind::Reply, b"HI!")));
        let reply = ipv4_packet(&request(Kind::Reply, b"HI!"));
        assert_eq!(echo.handle(&reply, &from(), None), Verdict::Pass);
        assert_eq!(
            echo.handle(&ipv4_packet(b"XXXX\x01\0\0\0\0\0\0\0"), &from(), None),
            Verdict::Pass
        );
        let whole = ipv4_packet(&request(Kind::Request, b"hi"));
        assert_eq!(
            echo.handle(&whole[..whole.len() - 1], &from(), None),
            Verdict::Pass
        );
        assert_eq!(echo.handle(&whole[..3], &from(), None), Verdict::Pass);
        assert_eq!(
            echo.counts,
            RawCounts {
                answered: 1,
                no_magic: 1,
                malformed: 2,
                replies: 1,
                limited: 0
            }
        );
    }

    #[test]
    fn ipv6_payloads_have_no_ip_header() {
        let mut echo = RawEcho {
            transform: Transform::Echo,
            v6: true,
            counts: RawCounts::default(),
        };
        let verdict = echo.handle(&request(Kind::Request, b"hi"), &from(), Some(64));
        assert_eq!(verdict, Verdict::Reply(request(Kind::Reply, b"hi")));
    }
}
