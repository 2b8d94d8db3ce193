//! Before any data, each side learns the other is where it claims to be. The server's
//! transfer socket sends one HELLO (the request's nonce and a token of its own, never
//! larger than the request) and waits for it to come back from the request's address: a
//! request from a forged address reflects one small datagram, and nothing more. The client
//! takes the first HELLO only from the server's host and only with its own nonce: a third
//! party that answers first is ignored.

use std::fs::File;
use std::io::{self, Read};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use tracing::debug;

use crate::transport::{DatagramSocket, MAX_MESSAGE, PeerAddr, Received};

use super::super::impair::Impaired;
use super::super::packet::{HELLO_LEN, Packet};
use super::{Link, Settings, connect};

/// How long a server's transfer socket waits for its HELLO to come back.
pub(super) const PROOF_WAIT: Duration = Duration::from_secs(3);
/// How often a client sends the HELLO back until the transfer begins: within the server's
/// wait, many times over.
const PROOF_RETRY: Duration = Duration::from_millis(250);

/// Eight bytes from the kernel's random source: a nonce or a token nobody can guess.
pub(super) fn random() -> Result<u64> {
    let mut bytes = [0u8; 8];
    File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .context("read /dev/urandom for a transfer's nonce")?;
    Ok(u64::from_be_bytes(bytes))
}

/// The server's side: one HELLO, then silence until the same HELLO comes back from the
/// peer (the socket is connected to it, so only the peer's datagrams arrive). A request
/// shorter than the HELLO gets nothing at all.
pub(super) fn challenge(link: &mut Link<'_>, nonce: u64, request_len: usize) -> Result<()> {
    if request_len < HELLO_LEN {
        bail!("ignored: a {request_len}-byte request, shorter than the {HELLO_LEN}-byte answer");
    }
    let hello = Packet::Hello {
        nonce,
        token: random()?,
    };
    // Sent as is, never lost or held back on purpose: the server never sends it twice.
    let wire = hello.to_vec();
    crate::hexdump::dump_if(crate::hexdump::Way::Out, &link.peer, &wire);
    link.sock
        .send_to(&wire, &link.peer)
        .context("send the HELLO")?;
    let deadline = Instant::now() + PROOF_WAIT;
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match link.recv(left)? {
            Some(n) if link.packet(n).as_ref() == Some(&hello) => return Ok(()),
            Some(_) => debug!("a packet before the HELLO came back; ignored"),
            None => break,
        }
    }
    bail!(
        "ignored: the HELLO did not come back within {PROOF_WAIT:?} \
         (a forged source address, or a client gone); nothing else was sent"
    )
}

/// The server's HELLO as the client took it: the transfer's address and the packet to
/// send back.
pub(super) struct Hello {
    pub tid: PeerAddr,
    nonce: u64,
    token: u64,
}

/// Whether `from` may be the server at `server`: the same IP (the transfer socket has a
/// port of its own). A Unix datagram transfer socket has an autobound name that says
/// nothing, so there the nonce alone decides: only the process that received the request
/// on the server's socket has seen it, as no other process can read a Unix datagram.
fn same_host(from: &PeerAddr, server: &PeerAddr) -> bool {
    match (from.0.as_socket(), server.0.as_socket()) {
        (Some(a), Some(b)) => a.ip() == b.ip(),
        (None, None) => true,
        _ => false,
    }
}

/// Sends `request` to the server's well-known address until a HELLO with our nonce comes
/// from the server's host; connects the socket to the transfer's address it came from.
pub(super) fn start(
    sock: &DatagramSocket,
    server: &PeerAddr,
    request: &[u8],
    nonce: u64,
    settings: &Settings,
    (timeout, retries): (Duration, u32),
) -> Result<Hello> {
    let mut impaired = Impaired::new(settings.drop, settings.reorder);
    for attempt in 0..=retries {
        if attempt > 0 {
            debug!("no answer to the request; sending it again ({attempt} of {retries})");
        }
        impaired.send(sock, server, request).context("sendto")?;
        if let Some(hello) = wait_hello(sock, server, nonce, timeout)? {
            connect(sock, &hello.tid)?;
            return Ok(hello);
        }
    }
    Err(anyhow!(
        "no answer from the server after {} tries (on a lossy path, raise --retries; a \
         netecho server older than this client ignores its requests, which ask for BLAKE3 \
         and SACK: run the same version at both ends)",
        retries + 1
    ))
}

/// The server's HELLO within `timeout`; anything else, or from anyone else, is ignored.
fn wait_hello(
    sock: &DatagramSocket,
    server: &PeerAddr,
    nonce: u64,
    timeout: Duration,
) -> Result<Option<Hello>> {
    let mut buf = vec![0u8; MAX_MESSAGE];
    let deadline = Instant::now() + timeout;
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        sock.set_read_timeout(Some(left.max(Duration::from_millis(1))))?;
        let (n, from) = match sock.recv_from(&mut buf) {
            Ok((Received::Data(n), from)) => (n, from),
            Ok(_) => continue,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                break;
            }
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => bail!(
                "nothing is listening there (ICMP port unreachable); is the server running with --files?"
            ),
            Err(e) => return Err(e).context("recvfrom"),
        };
        match Packet::decode(&buf[..n]) {
            Some(Packet::Hello { nonce: n, token }) if n == nonce && same_host(&from, server) => {
                return Ok(Some(Hello {
                    tid: from,
                    nonce,
                    token,
                }));
            }
            _ => debug!("ignored a datagram from {from}: not the server's answer to our request"),
        }
    }
    Ok(None)
}

/// The client's side: sends the HELLO back until the transfer's first packet comes (DATA
/// for a download, ACK 0 for an upload, or ERROR), and returns that packet.
pub(super) fn prove(link: &mut Link<'_>, hello: &Hello) -> Result<Vec<u8>> {
    let back = Packet::Hello {
        nonce: hello.nonce,
        token: hello.token,
    };
    let tries = PROOF_WAIT.as_millis() / PROOF_RETRY.as_millis();
    for _ in 0..tries {
        link.send(&back)?;
        match link.recv(PROOF_RETRY)? {
            Some(n) if matches!(link.packet(n), Some(Packet::Hello { .. })) => {}
            Some(n) => return Ok(link.buf[..n].to_vec()),
            None => {}
        }
    }
    bail!("the server's transfer socket did not begin the transfer within {PROOF_WAIT:?}")
}
