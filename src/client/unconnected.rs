//! `send --unconnected`: the lesson's datagram client. Its socket never calls connect():
//! every message goes out with sendto(2) naming the server, and every reply comes in with
//! recvfrom(2) saying who sent it, so `--explain` shows the calls the lesson teaches.
//! `send` to a multicast group or a broadcast address is this client too: a connected
//! socket would hear only the group's address, which never answers, while each member
//! answers from its own.

use std::io::{self, Write};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use tracing::{debug, warn};

use crate::endpoint::{Address, Endpoint};
use crate::hexdump::{self, Way};
use crate::transport::SocketOptions;
use crate::transport::{self, DatagramSocket, MAX_MESSAGE, PeerAddr, Received};

use super::exchange::ClientConfig;

/// The most sources whose answers are kept for one message to a group or a broadcast
/// address: a network full of members cannot print without end. Copies from a source are
/// counted, not kept, so one member sending many cannot crowd out the others.
const MAX_SOURCES: usize = 4096;

/// The answers of one message to many hosts: each source's first answer and how many
/// copies it sent, in the order sources first answered.
#[derive(Default)]
struct Answers {
    sources: Vec<(String, Vec<u8>, u64)>,
    index: std::collections::HashMap<String, usize>,
    /// Sources past [`MAX_SOURCES`], heard and not kept.
    unkept: u64,
}

impl Answers {
    /// Counts an answer from `from`; true when it is the first from there (and kept).
    fn add(&mut self, from: String, answer: &[u8]) -> bool {
        if let Some(&at) = self.index.get(&from) {
            self.sources[at].2 += 1;
            return false;
        }
        if self.sources.len() == MAX_SOURCES {
            self.unkept += 1;
            return false;
        }
        self.index.insert(from.clone(), self.sources.len());
        self.sources.push((from, answer.to_vec(), 1));
        true
    }

    /// One line per source ("10.0.0.7:4000 HELLO", and " (N copies)" after it when it
    /// answered more than once), and a warning when sources were left out.
    fn print(&self, what: &str, out: &mut impl Write) -> Result<()> {
        for (from, answer, copies) in &self.sources {
            let copies = match copies {
                1 => String::new(),
                n => format!(" ({n} copies)"),
            };
            out.write_all(format!("{from} ").as_bytes())
                .and_then(|_| out.write_all(answer))
                .and_then(|_| out.write_all(format!("{copies}\n").as_bytes()))
                .map_err(crate::error::stdout_write)?;
        }
        out.flush().map_err(crate::error::stdout_write)?;
        if self.unkept > 0 {
            warn!(
                "{what}: answers from more than {MAX_SOURCES} sources; {} answer(s) from \
                 further sources are not listed",
                self.unkept
            );
        }
        Ok(())
    }
}

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

    /// Sends `msg` once to a group or a broadcast address and prints the answers that come
    /// within the timeout, once it is over: each source's first answer after its address
    /// ("10.0.0.7:4000 HELLO") and how many copies it sent if more than one. One deadline
    /// for all members, as there is no telling how many there are. Fails when none
    /// answered.
    pub(crate) fn gather(&mut self, msg: &[u8], hex: bool, out: &mut impl Write) -> Result<()> {
        let what = self.target.to_string();
        // The server's address, as the user named it: a symlink there is theirs to follow.
        transport::calls::send_to(self.sock.socket(), msg, &self.server.0)
            .map_err(|e| transport_error(&self.target, &e))?;
        let mut buf = vec![0u8; MAX_MESSAGE];
        let deadline = Instant::now() + self.timeout;
        let mut answers = Answers::default();
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            self.sock
                .set_read_timeout(Some(left.max(Duration::from_millis(1))))?;
            match self.sock.recv_from(&mut buf) {
                Ok((Received::Data(n), from)) if buf[..n].eq_ignore_ascii_case(msg) => {
                    if answers.add(from.to_string(), &buf[..n]) && hex {
                        hexdump::dump(Way::In, &from, &buf[..n]);
                    }
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
        answers.print(&what, out)?;
        if answers.sources.is_empty() {
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
            transport::calls::send_to(self.sock.socket(), msg, &self.server.0)
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
            "send {target}: {}; no route says which interface carries this group: add \
             --iface NAME (see `ip -br link`)",
            crate::error::kernel_says(e)
        );
    }
    crate::error::socket_error(crate::error::Call::Send, target, e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_are_counted_and_sources_past_the_cap_are_told() {
        let mut answers = Answers::default();
        assert!(answers.add("10.0.0.1:4000".into(), b"HELLO"));
        for _ in 0..20_000 {
            assert!(!answers.add("10.0.0.1:4000".into(), b"HELLO"));
        }
        for n in 1..MAX_SOURCES + 3 {
            answers.add(format!("10.1.{}.{}:4000", n / 256, n % 256), b"HI");
        }
        assert_eq!(answers.sources.len(), MAX_SOURCES);
        assert_eq!(answers.unkept, 3);
        let mut out = Vec::new();
        answers.print("group", &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("10.0.0.1:4000 HELLO (20001 copies)\n10.1.0.1:4000 HI\n"));
        assert_eq!(text.lines().count(), MAX_SOURCES);
    }
}
