//! `send --unconnected`: the lesson's datagram client. Its socket never calls connect():
//! every message goes out with sendto(2) naming the server, and every reply comes in with
//! recvfrom(2) saying who sent it, so `--explain` shows the calls the lesson teaches.
//! `send` to a multicast group or a broadcast address is this client too: a connected
//! socket would hear only the group's address, which never answers, while each member
//! answers from its own.

use std::io::{self, Write};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use tracing::debug;

use crate::endpoint::{Address, Endpoint};
use crate::hexdump::{self, Way};
use crate::transport::SocketOptions;
use crate::transport::{self, DatagramSocket, MAX_MESSAGE, PeerAddr, Received};

use super::exchange::ClientConfig;

/// The most answers printed for one message to a group or a broadcast address: a
/// network full of members, or someone sending copies, cannot print without end.
const MAX_ANSWERS: usize = 4096;

/// An unconnected datagram socket and the server it sends to.
pub(crate) struct Unconnected {
    sock: DatagramSocket,
    server: PeerAddr,
    target: Endpoint,
    timeout: Duration,
    retries: u32,
}

impl Unconnected {
    /// A socket for the first address `endpoint` resolves to.
    pub(crate) fn open(endpoint: &Endpoint, config: &ClientConfig) -> Result<Unconnected> {
        let target = transport::candidates(endpoint)?
            .into_iter()
            .next()
            .ok_or_else(|| anyhow!("{endpoint}: no address to send to"))?;
        let (sock, server) = transport::unconnected(&target, &config.opts)?;
        Ok(Unconnected {
            sock,
            server,
            target,
            timeout: config.timeout,
            retries: config.retries,
        })
    }

    /// Whether datagrams to `endpoint` reach many hosts, each answering from its own
    /// address: a multicast group, or a broadcast address (--broadcast).
    pub(crate) fn reaches_many(endpoint: &Endpoint, opts: &SocketOptions) -> bool {
        match &endpoint.addr {
            Address::Ip(addr) => {
                opts.multicast.broadcast || transport::multicast::reaches_many(addr.ip())
            }
            _ => opts.multicast.broadcast,
        }
    }

    /// Sends `msg` once to a group or a broadcast address and prints every answer that
    /// comes within the timeout, each after its source ("10.0.0.7:4000 HELLO"): one
    /// deadline for all members, as there is no telling how many there are. Fails when
    /// none answered.
    pub(crate) fn gather(&mut self, msg: &[u8], hex: bool, out: &mut impl Write) -> Result<()> {
        let what = self.target.to_string();
        self.sock
            .send_to(msg, &self.server)
            .map_err(|e| transport_error(&self.target, &e))?;
        let mut buf = vec![0u8; MAX_MESSAGE];
        let deadline = Instant::now() + self.timeout;
        let mut answers = 0usize;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            if answers == MAX_ANSWERS {
                debug!("{what}: {MAX_ANSWERS} answers; the rest are not read");
                break;
            }
            self.sock
                .set_read_timeout(Some(left.max(Duration::from_millis(1))))?;
            match self.sock.recv_from(&mut buf) {
                Ok((Received::Data(n), from)) if buf[..n].eq_ignore_ascii_case(msg) => {
                    answers += 1;
                    if hex {
                        hexdump::dump(Way::In, &from, &buf[..n]);
                    }
                    out.write_all(format!("{from} ").as_bytes())
                        .and_then(|_| out.write_all(&buf[..n]))
                        .and_then(|_| out.write_all(b"\n"))
                        .and_then(|_| out.flush())
                        .context("write to stdout")?;
                }
                Ok((_, from)) => debug!("a datagram from {from}, not an answer to ours: skipped"),
                Err(e) if crate::transport::is_timeout(&e) => {
                    break;
                }
                // An ICMP error from one host says nothing of the others.
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {}
                Err(e) => return Err(e).with_context(|| format!("recvfrom {what}")),
            }
        }
        if answers == 0 {
            bail!(
                "no answer from any host at {what} within {:?}: {} Raise --timeout to wait \
                 longer",
                self.timeout,
                self.who_answers()
            );
        }
        Ok(())
    }

    /// Who would have answered: a member of the group, or a server that hears broadcasts.
    fn who_answers(&self) -> &'static str {
        match &self.target.addr {
            Address::Ip(addr) if addr.ip().is_multicast() => {
                "is a server there joined to the group (serve --join), on this port?"
            }
            _ => {
                "is a udp server on this port on that network, bound to every address \
                 (serve --proto udp --addr 0.0.0.0:PORT)? One bound to a single host address \
                 does not hear broadcasts."
            }
        }
    }

    /// Sends `msg` to the server and waits for its reply, sending again on silence; a
    /// datagram from anyone else, or a late reply to another message, is skipped.
    pub(crate) fn exchange(&mut self, msg: &[u8]) -> Result<Vec<u8>> {
        let what = self.target.to_string();
        let mut buf = vec![0u8; MAX_MESSAGE];
        for attempt in 0..=self.retries {
            if attempt > 0 {
                debug!("{what}: no reply within {:?}; sending again", self.timeout);
            }
            self.sock
                .send_to(msg, &self.server)
                .with_context(|| format!("sendto {what}"))?;
            if let Some(reply) = self.reply(msg, &mut buf)? {
                return Ok(reply);
            }
        }
        bail!(
            "no reply from {what} after {} tries, {:?} each: the request or the reply may \
             have been lost, or no server is there. Check the server, or raise --timeout / \
             --retries",
            self.retries + 1,
            self.timeout
        )
    }

    /// The server's reply to `msg` within the timeout, or `None`.
    fn reply(&self, msg: &[u8], buf: &mut [u8]) -> Result<Option<Vec<u8>>> {
        let deadline = Instant::now() + self.timeout;
        let server = self.server.to_string();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            self.sock.set_read_timeout(Some(left))?;
            match self.sock.recv_from(buf) {
                Ok((Received::Data(n), from)) if from.to_string() == server => {
                    if buf[..n].eq_ignore_ascii_case(msg) {
                        return Ok(Some(buf[..n].to_vec()));
                    }
                }
                Ok((Received::Truncated(n), _)) => {
                    bail!(
                        "{}: a reply of {n} bytes was cut to {}",
                        self.target,
                        buf.len()
                    )
                }
                Ok((_, from)) => debug!("a datagram from {from}, not the server: skipped"),
                Err(e) if crate::transport::is_timeout(&e) => {
                    return Ok(None);
                }
                Err(e) => return Err(e).with_context(|| format!("recvfrom {}", self.target)),
            }
        }
    }
}

/// A failed sendto, with the advice of a failed send (EACCES: a broadcast address without
/// --broadcast); a group no route leads to needs the interface named.
fn transport_error(target: &Endpoint, e: &io::Error) -> anyhow::Error {
    let group = matches!(&target.addr, Address::Ip(a) if a.ip().to_canonical().is_multicast());
    if group && e.raw_os_error() == Some(libc::ENETUNREACH) {
        return anyhow!(
            "send {target}: {e}; no route says which interface carries this group: add \
             --iface NAME (see `ip -br link`)"
        );
    }
    crate::error::socket_error(crate::error::Call::Send, target, e)
}
