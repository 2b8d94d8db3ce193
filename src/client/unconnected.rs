//! `send --unconnected`: the lesson's datagram client. Its socket never calls connect():
//! every message goes out with sendto(2) naming the server, and every reply comes in with
//! recvfrom(2) saying who sent it, so `--explain` shows the calls the lesson teaches.

use std::io;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use tracing::debug;

use crate::endpoint::Endpoint;
use crate::transport::{self, DatagramSocket, MAX_MESSAGE, PeerAddr, Received};

use super::exchange::ClientConfig;

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
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return Ok(None);
                }
                Err(e) => return Err(e).with_context(|| format!("recvfrom {}", self.target)),
            }
        }
    }
}
