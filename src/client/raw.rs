//! The raw echo client: each message goes out behind a netecho header (and, with
//! `--hdrincl`, behind an IPv4 header built here), and the reply is the packet that comes
//! back with the same identifier and sequence number marked as a reply. Everything else the
//! socket reads (its own request, looped back; others' packets) is passed over.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow};
use tracing::debug;

use crate::endpoint::{Address, Endpoint};
use crate::error::{Call, Subject, UsageError, socket_error};
use crate::packet::header::{HEADER_LEN, Header, Kind};
use crate::packet::ipv4::{self, Ipv4Header};
use crate::transport::raw::{self, MAX_PAYLOAD_V4, MAX_PAYLOAD_V6, RawSocket};
use crate::transport::{self, MAX_MESSAGE};

use super::exchange::ClientConfig;

/// A raw client talking to one address.
pub(crate) struct RawClient {
    sock: RawSocket,
    target: Endpoint,
    /// The source address written into a hand-built IPv4 header (`--hdrincl`).
    hdrincl_source: Option<std::net::Ipv4Addr>,
    ttl: u8,
    id: u16,
    seq: u32,
    timeout: Duration,
    retries: u32,
    /// Packets of the protocol read while awaiting the reply to the current message that
    /// were neither a netecho reply nor this client's own request looped back: a server
    /// that answers without netecho's header.
    unmarked: u64,
}

/// The TTL of a hand-built header when --ttl is not given: Linux's default
/// (net.ipv4.ip_default_ttl).
const DEFAULT_TTL: u8 = 64;

impl RawClient {
    /// Opens a raw socket towards the first address `endpoint` stands for. A raw exchange
    /// mostly fails by silence, so trying the next address would only multiply the wait.
    pub(crate) fn open(endpoint: &Endpoint, config: &ClientConfig) -> Result<RawClient> {
        let candidates = transport::candidates(endpoint)?;
        // A hand-built header is IPv4: a name with both families takes its IPv4 address.
        let v4 = |t: &&Endpoint| matches!(t.addr, Address::Ip(SocketAddr::V4(_)));
        let target = match config.opts.hdrincl {
            true => candidates.iter().find(v4).or(candidates.first()),
            false => candidates.first(),
        }
        .cloned()
        .ok_or_else(|| anyhow!("{endpoint}: no address"))?;
        let Address::Ip(addr) = target.addr else {
            return Err(anyhow!("{target}: not an IP address"));
        };
        let opts = &config.opts;
        let hdrincl_source = match (opts.hdrincl, addr.ip()) {
            (false, _) => None,
            (true, IpAddr::V6(ip)) => {
                return Err(UsageError::new(format!(
                    "--hdrincl builds an IPv4 header, and {ip} is IPv6 (an IPv6 raw socket \
                     never reads its header); drop --hdrincl, or use an IPv4 address"
                ))
                .into());
            }
            (true, IpAddr::V4(ip)) => Some(raw::route_source(ip).map_err(|e| {
                socket_error(Call::Connect, Subject::ip(format!("route to {ip}")), &e)
            })?),
        };
        // Port 0 (raw has none), the zone of a link-local address kept.
        let mut to = addr;
        to.set_port(0);
        let sock = raw::connect(to, opts)?;
        Ok(RawClient {
            sock,
            target,
            hdrincl_source,
            ttl: opts.ttl.unwrap_or(DEFAULT_TTL),
            // Tells this client's replies from those of another client on the same host.
            id: std::process::id() as u16,
            seq: 0,
            timeout: config.timeout,
            retries: config.retries,
            unmarked: 0,
        })
    }

    /// The largest message that fits one packet after the headers.
    fn max_message(&self) -> usize {
        if self.sock.is_v6() {
            MAX_PAYLOAD_V6 - HEADER_LEN
        } else {
            MAX_PAYLOAD_V4 - HEADER_LEN
        }
    }

    /// Sends `msg` and returns the reply's message, sending again on silence.
    pub(crate) fn exchange(&mut self, msg: &[u8]) -> Result<Vec<u8>> {
        let what = self.target.to_string();
        if msg.len() > self.max_message() {
            return Err(anyhow!(
                "a {}-byte message does not fit in one raw packet (at most {} bytes here after \
                 the netecho header); send less",
                msg.len(),
                self.max_message()
            ));
        }
        self.seq = self.seq.wrapping_add(1);
        let header = Header {
            kind: Kind::Request,
            id: self.id,
            seq: self.seq,
        };
        let packet = self.packet(&header, msg)?;
        let mut buf = vec![0u8; MAX_MESSAGE];
        self.unmarked = 0;
        for attempt in 0..=self.retries {
            if attempt > 0 {
                debug!(
                    "{what}: no reply within {:?}; sending again ({attempt} of {})",
                    self.timeout, self.retries
                );
            }
            debug!("{what}: sending {header}, {} message bytes", msg.len());
            self.sock
                .send(&packet)
                .map_err(|e| socket_error(Call::Send, Subject::ip(&what), &e))?;
            let deadline = Instant::now() + self.timeout;
            let wanted = |h: &Header| h.id == header.id && h.seq == header.seq;
            if let Some((_, reply)) = self.await_reply(wanted, msg, &mut buf, deadline)? {
                return Ok(reply);
            }
        }
        Err(self.no_reply())
    }

    /// Why no reply came: packets without netecho's reply header came instead, or nothing.
    fn no_reply(&self) -> anyhow::Error {
        let what = &self.target;
        let proto = self.sock.protocol();
        if self.unmarked > 0 {
            return anyhow!(
                "no reply from {what}: {} of protocol {proto} came back without netecho's \
                 reply header (type 2): the server is not netecho's? README 'Raw IP' \
                 describes the header (12 bytes: NECH, type, identifier, sequence number)",
                crate::units::count(self.unmarked, "packet")
            );
        }
        anyhow!(
            "no reply from {what} (IP protocol {proto}) after {} tries, {:?} each: is `netecho \
             serve --proto raw --ip-proto {proto}` running there? (A host with no raw socket \
             for the protocol answers ICMP protocol unreachable, but on loopback this client's \
             own raw socket takes its request, so silence is all it gets.) Or raise --timeout \
             / --retries",
            self.retries + 1,
            self.timeout,
        )
    }

    /// The bytes to send: the netecho header and message, behind an IPv4 header of our own
    /// with --hdrincl.
    fn packet(&self, header: &Header, msg: &[u8]) -> Result<Vec<u8>> {
        let mut payload = Vec::with_capacity(HEADER_LEN + msg.len());
        header.write(&mut payload);
        payload.extend_from_slice(msg);
        let Some(source) = self.hdrincl_source else {
            return Ok(payload);
        };
        let IpAddr::V4(destination) = self.sock_target_ip() else {
            unreachable!("--hdrincl is refused for IPv6 when the client opens");
        };
        let ip = Ipv4Header::new(
            source,
            destination,
            self.sock.protocol(),
            self.ttl,
            // The identification only has to differ between packets in flight.
            self.seq as u16,
            payload.len(),
        )
        .ok_or_else(|| {
            anyhow!(
                "a {}-byte payload does not fit an IPv4 packet",
                payload.len()
            )
        })?;
        debug!("{}: built the header: {ip}", self.target);
        let mut packet = ip.to_bytes().to_vec();
        packet.extend_from_slice(&payload);
        Ok(packet)
    }

    fn sock_target_ip(&self) -> IpAddr {
        match self.sock.local() {
            Address::Ip(addr) => addr.ip(),
            _ => unreachable!("a raw socket has an IP address"),
        }
    }

    /// Sends `msg` `count` times back to back without waiting, then collects the replies
    /// as they come, for up to the timeout: each with its sequence number, in arrival order.
    pub(crate) fn burst(&mut self, msg: &[u8], count: usize) -> Result<Vec<(u32, Vec<u8>)>> {
        let what = self.target.to_string();
        let first = self.seq.wrapping_add(1);
        for _ in 0..count {
            self.seq = self.seq.wrapping_add(1);
            let header = Header {
                kind: Kind::Request,
                id: self.id,
                seq: self.seq,
            };
            let packet = self.packet(&header, msg)?;
            self.sock
                .send(&packet)
                .map_err(|e| socket_error(Call::Send, Subject::ip(&what), &e))?;
        }
        let (id, last) = (self.id, self.seq);
        // Sequence numbers of this burst only (wrapping: first may be above last).
        let ours = |h: &Header| h.id == id && h.seq.wrapping_sub(first) <= last.wrapping_sub(first);
        let mut buf = vec![0u8; MAX_MESSAGE];
        let mut replies = Vec::with_capacity(count);
        // Every raw socket of the protocol gets a copy of each packet: with two raw echo
        // servers on this host each request is answered twice. The first answer counts.
        let mut seen = std::collections::HashSet::with_capacity(count);
        let deadline = Instant::now() + self.timeout;
        while replies.len() < count {
            match self.await_reply(ours, msg, &mut buf, deadline)? {
                Some((h, message)) if seen.insert(h.seq) => replies.push((h.seq, message)),
                Some((h, _)) => debug!("{what}: a second reply to request {}; ignored", h.seq),
                None => break,
            }
        }
        Ok(replies)
    }

    /// Reads until `deadline` for a reply whose header `wanted` accepts; `None` on silence.
    /// Other packets are passed over, and counted unless they are netecho replies or this
    /// client's own request of `sent`.
    fn await_reply(
        &mut self,
        wanted: impl Fn(&Header) -> bool,
        sent: &[u8],
        buf: &mut [u8],
        deadline: Instant,
    ) -> Result<Option<(Header, Vec<u8>)>> {
        let what = self.target.to_string();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            self.sock
                .set_read_timeout(Some(left))
                .map_err(|e| socket_error(Call::Recv, Subject::ip(&what), &e))?;
            let got = match self.sock.recv(buf) {
                Ok(got) => got,
                Err(e) if crate::transport::is_timeout(&e) => {
                    return Ok(None);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(socket_error(Call::Recv, Subject::ip(&what), &e)),
            };
            let packet = &buf[..got.len.min(buf.len())];
            let payload = if self.sock.is_v6() {
                packet
            } else {
                match ipv4::parse(packet) {
                    Ok((ip, payload)) => {
                        debug!("{what}: read {ip}");
                        payload
                    }
                    Err(why) => {
                        debug!("{what}: dropped a malformed packet: {why}");
                        continue;
                    }
                }
            };
            match Header::parse(payload) {
                Ok((h, message)) if h.kind == Kind::Reply && wanted(&h) => {
                    let hops = got
                        .ttl
                        .map(|t| format!(", hop limit {t}"))
                        .unwrap_or_default();
                    debug!("{what}: {h}{hops}, {} message bytes", message.len());
                    return Ok(Some((h, message.to_vec())));
                }
                // Our own request looped back, an earlier try's late reply, or another
                // client's reply.
                Ok((h, message))
                    if h.kind == Kind::Reply || (h.id == self.id && message == sent) =>
                {
                    debug!("{what}: passed over {h}")
                }
                Ok((h, _)) => {
                    self.unmarked += 1;
                    debug!("{what}: passed over {h}, not a reply");
                }
                Err(why) => {
                    self.unmarked += 1;
                    debug!("{what}: passed over a packet: {why}");
                }
            }
        }
    }
}
