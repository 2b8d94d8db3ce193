//! Before any data, each side learns the other is where it claims to be. The server's
//! well-known socket answers a request with one COOKIE (the request's nonce and a token
//! made from the source's address, never larger than the request) from its receive loop,
//! keeping nothing and starting no thread: a request from a forged address reflects one
//! small datagram, and nothing more. The client sends the request again in a PROOF with
//! that token; a PROOF whose token fits its source gets a transfer socket, which sends a
//! HELLO of its own and waits for it to come back, so the client learns the transfer's
//! port from a packet with its nonce. The client takes a HELLO only from the server's host and only
//! with its own nonce: a third party that answers first is ignored.

use std::fs::File;
use std::io::{self, Read};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use tracing::debug;

use crate::transport::{DatagramSocket, MAX_MESSAGE, PeerAddr, Received};

use super::super::impair::Impaired;
use super::super::packet::{HELLO_LEN, Packet};
use super::{Link, Request, Settings, connect, cookie};

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

/// What the well-known socket's receive loop does with a datagram of netecho's protocol,
/// before any thread: a request gets a COOKIE (nothing if it is shorter than that), a PROOF
/// whose token fits its source gets a transfer, anything else nothing.
pub(crate) fn screen(from: &PeerAddr, bytes: &[u8]) -> crate::service::Screen {
    use crate::service::Screen;
    match Packet::decode(bytes) {
        Some(Packet::Proof { token, request }) => match Request::decode(request) {
            Some(req) if cookie::valid(from, req.nonce, token) => Screen::Serve,
            Some(_) => Screen::Ignore("a PROOF whose token does not fit its source"),
            None => Screen::Ignore("a PROOF of no request"),
        },
        Some(Packet::Read { nonce, .. } | Packet::Write { nonce, .. }) => {
            if bytes.len() < HELLO_LEN {
                return Screen::Ignore("a request shorter than the COOKIE that would answer it");
            }
            match cookie::token(from, nonce) {
                Some(token) => Screen::Answer(Packet::Cookie { nonce, token }.to_vec()),
                None => Screen::Ignore("no key for the COOKIE's token: /dev/urandom unreadable"),
            }
        }
        _ => Screen::Ignore("not a file request"),
    }
}

/// Sends `request` to the server's well-known address until its COOKIE (or, from a server
/// without the COOKIE, the transfer socket's HELLO) with our nonce comes from the server's
/// host; after a COOKIE, sends the request again with its token in a PROOF until the
/// transfer socket's HELLO comes. Connects the socket to the transfer's address.
pub(super) fn start(
    sock: &DatagramSocket,
    server: &PeerAddr,
    request: &[u8],
    nonce: u64,
    settings: &Settings,
    (timeout, retries): (Duration, u32),
) -> Result<Hello> {
    let mut impaired = Impaired::new(settings.drop, settings.reorder);
    let tries = (timeout, retries);
    hear_unreachable(sock, true);
    let Some(first) = ask(sock, (server, request), nonce, &mut impaired, tries)? else {
        bail!(
            "no answer from the server after {} tries (on a lossy path, raise --retries; a \
             netecho server older than this client ignores its requests, which ask for BLAKE3 \
             and SACK: run the same version at both ends)",
            retries + 1
        )
    };
    let hello = match first {
        Answer::Hello(hello) => hello,
        Answer::Cookie(token) => {
            let proof = Packet::Proof { token, request }.to_vec();
            let again = (server, proof.as_slice());
            match ask(sock, again, nonce, &mut impaired, tries)? {
                Some(Answer::Hello(hello)) => hello,
                _ => bail!(
                    "the server answered the request but started no transfer after {} tries \
                     of its proof (on a lossy path, raise --retries; a relay or NAT that takes \
                     replies only from the port it sent to drops the transfer's, which come \
                     from a port of their own)",
                    retries + 1
                ),
            }
        }
    };
    hear_unreachable(sock, false);
    connect(sock, &hello.tid)?;
    Ok(hello)
}

/// The request goes out on an unconnected socket (the transfer answers from another port),
/// where Linux keeps an ICMP port unreachable to itself unless IP_RECVERR is on: with it, the
/// next recvfrom fails with ECONNREFUSED, as on send's connected socket, rather than the
/// client waiting out every try. Turned off once the transfer is found, which also empties
/// the error queue. A socket that refuses it (not IP) only waits as before.
fn hear_unreachable(sock: &DatagramSocket, on: bool) {
    if !crate::transport::udp::hear_unreachable(sock.socket(), on) {
        debug!("IP_RECVERR: not on this socket; an unreachable port shows as no answer");
    }
}

/// What the server's host answered a request with.
enum Answer {
    /// The well-known socket's token, for the PROOF.
    Cookie(u64),
    /// The transfer socket's HELLO.
    Hello(Hello),
}

/// Sends `request` until an answer with `nonce` comes from the server's host (after a
/// PROOF, the transfer's HELLO only: a COOKIE then is the request's, seen twice); `None`
/// after every try.
fn ask(
    sock: &DatagramSocket,
    (server, request): (&PeerAddr, &[u8]),
    nonce: u64,
    impaired: &mut Impaired,
    (timeout, retries): (Duration, u32),
) -> Result<Option<Answer>> {
    let proof = matches!(Packet::decode(request), Some(Packet::Proof { .. }));
    for attempt in 0..=retries {
        if attempt > 0 {
            debug!("no answer to the request; sending it again ({attempt} of {retries})");
        }
        impaired.send(sock, server, request).context("sendto")?;
        let deadline = Instant::now() + timeout;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match wait_answer(sock, server, nonce, left)? {
                Some(Answer::Cookie(_)) if proof => {}
                Some(answer) => return Ok(Some(answer)),
                None => break,
            }
        }
    }
    Ok(None)
}

/// The server's COOKIE or HELLO within `timeout`; anything else, or from anyone else, is
/// ignored.
fn wait_answer(
    sock: &DatagramSocket,
    server: &PeerAddr,
    nonce: u64,
    timeout: Duration,
) -> Result<Option<Answer>> {
    let mut buf = vec![0u8; MAX_MESSAGE];
    let deadline = Instant::now() + timeout;
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        sock.set_read_timeout(Some(left.max(Duration::from_millis(1))))?;
        let (n, from) = match sock.recv_from(&mut buf) {
            Ok((Received::Data(n), from)) => (n, from),
            Ok(_) => continue,
            Err(e) if crate::transport::is_timeout(&e) => {
                break;
            }
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                // get's and put's line names the server already.
                bail!("{}", crate::error::nothing_listening(None))
            }
            Err(e) => return Err(e).context("recvfrom"),
        };
        let ours = |n: u64| n == nonce && same_host(&from, server);
        match Packet::decode(&buf[..n]) {
            Some(Packet::Cookie { nonce: n, token }) if ours(n) => {
                return Ok(Some(Answer::Cookie(token)));
            }
            Some(Packet::Hello { nonce: n, token }) if ours(n) => {
                return Ok(Some(Answer::Hello(Hello {
                    tid: from,
                    nonce,
                    token,
                })));
            }
            // The server's refusal from its own port (busy: every request thread taken).
            Some(Packet::Error { message }) if from == *server => {
                bail!("the server refused: {}", crate::wrap::printable(message))
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
