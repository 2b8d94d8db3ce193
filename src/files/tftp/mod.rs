//! TFTP (RFC 1350, octet mode, with the options of RFC 2347, 2348, 2349 and 7440) inside
//! `serve --files DIR` over datagrams, so curl, tftp-hpa and atftp download and upload as
//! they do from any TFTP server, under the same directory rules as netecho's own protocol.
//!
//! The two are told apart by the first datagram's third byte. netecho's READ and WRITE
//! carry the window there (a u16 of at most 1024: its high byte is 0 to 4); TFTP's RRQ and
//! WRQ carry the file name, whose first byte is a printable character.
//!
//! No DATA goes to an address before it has answered. A request with options gets an
//! OACK no larger than itself, and DATA 1 only once ACK 0 comes back from the same address
//! and port. That port is one of some 28,000 a blind sender could spray, so a source that
//! may be forged gets DATA 1 alone until it is acknowledged, and every block cut to the
//! request's size for the whole transfer (a short block would end it; a request without blksize, or whose OACK cannot fit, gets RFC 2347's
//! ERROR 8 asking for one). A request without options (RFC 1350's plain form, as
//! tftp-hpa sends it) would get DATA 1 at once, a reflection amplifier for a forged
//! source: so only a loopback or Unix source, which cannot be forged from outside this
//! host, gets that (or any source with `--tftp-rfc1350`, which lifts the block cut too);
//! others get a small ERROR asking for an option. An upload's first answer (ACK 0 or
//! OACK) is no larger than its request, and the temporary file is created only once
//! DATA 1 comes from the client's address.

pub(crate) mod codec;
mod options;
mod transfer;

use std::fs::File;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use tracing::debug;

use crate::transport::{DatagramSocket, PeerAddr};

use super::admit;
use super::store::{Kind, Partial, Store};
use codec::Packet;
use options::Agreed;
use transfer::{Heard, Wire};

/// A netecho request's window is at most MAX_WINDOW, so its high byte (the datagram's third) is
/// a control character, which no TFTP client puts first in a file name.
const _: () = assert!(super::datagram::MAX_WINDOW >> 8 < 0x20);

/// Whether the first datagram of a request is TFTP's RRQ or WRQ rather than netecho's
/// READ or WRITE (see the module's note).
pub(crate) fn is_tftp(first: &[u8]) -> bool {
    matches!(first, [0, 1 | 2, c, ..] if *c >= 0x20)
}

/// The ERROR code for a refusal of `kind`: the one place the server's reasons meet TFTP's
/// codes.
pub(crate) fn code(kind: Kind) -> u16 {
    match kind {
        Kind::NotFound => codec::NOT_FOUND,
        Kind::Access => codec::ACCESS,
        Kind::DiskFull => codec::DISK_FULL,
        Kind::Exists => codec::EXISTS,
        Kind::Illegal => codec::ILLEGAL,
        Kind::Other => codec::NOT_DEFINED,
    }
}

/// An ERROR that tells the client why its transfer failed on the server (a full disk, a
/// name taken meanwhile), the whole chain of causes cut to one 512-byte block.
pub(crate) fn error_of(e: &anyhow::Error) -> Vec<u8> {
    codec::error_within(code(Kind::of(e)), &format!("{e:#}"), 512).unwrap_or_default()
}

/// How long the first answer (OACK, or an upload's ACK 0), sent once to an address not yet
/// proven, waits for the client's answer. It is never sent again: what is sent before the
/// proof is, all told, no larger than the request (a client that heard nothing sends its
/// request again, and that request gets an answer of its own).
const PROOF_WAIT: Duration = Duration::from_secs(3);
/// The longest refusal sent whole to a source on this host (loopback, Unix), which cannot
/// be forged from outside: an ERROR that fits one 512-byte block.
const WHOLE_REFUSAL: usize = 516;

/// What a TFTP request is served with.
pub(crate) struct Tftp<'a> {
    pub store: &'a Store,
    /// --drop and --reorder.
    pub impair: (f64, f64),
    /// --tftp-rfc1350: DATA 1 at once for a request without options from any source.
    pub rfc1350: bool,
    /// The source is on this host (loopback, Unix), which nobody outside can forge: a
    /// refusal of the file comes whole, not cut to the request's size.
    pub whole_refusals: bool,
}

/// Serves one TFTP request that came to the well-known socket, on `sock` (a socket of its
/// own, RFC 1350's transfer identifier); the log line's text.
pub(crate) fn serve_request(
    sock: &DatagramSocket,
    peer: PeerAddr,
    request: &[u8],
    tftp: &Tftp<'_>,
    unproven: Option<crate::service::Unproven>,
) -> Result<String> {
    let Some(Packet::Request {
        write,
        name,
        mode,
        options,
    }) = Packet::decode(request)
    else {
        bail!("a malformed TFTP request; ignored")
    };
    let name = name.to_string();
    let whole = if tftp.whole_refusals {
        WHOLE_REFUSAL
    } else {
        request.len()
    };
    let first = First {
        wire: Wire::new(sock, peer.clone(), tftp.impair),
        limit: request.len(),
        whole,
    };
    if !mode.eq_ignore_ascii_case("octet") {
        // The hint first: cut to the request's size, it still tells the student what to type.
        return first.refuse_file(
            codec::NOT_DEFINED,
            &format!("use -m binary: only octet mode is served, not {mode}"),
        );
    }
    let Some(mut pending) = admit::pending(&peer) else {
        bail!(
            "ignored a TFTP request: {} requests from this address (or {} in all) await proof already",
            admit::PENDING_PER_SOURCE,
            admit::PENDING_IN_ALL
        )
    };
    super::datagram::connect(sock, &peer)?;
    // The place among unproven requests is given back with the proof.
    pending.hold(unproven);
    if write {
        serve_write(first, pending, &name, &options, tftp)
    } else {
        serve_read(first, pending, &name, &options, tftp)
    }
}

/// A transfer before its peer has answered: every answer at most `limit` bytes, and a
/// refusal of the file at most `whole` (the request's size too, unless the source is on
/// this host).
struct First<'a> {
    wire: Wire<'a>,
    limit: usize,
    whole: usize,
}

impl First<'_> {
    /// An ERROR no larger than the request with the longest of `texts` that fits whole.
    fn refuse_fitting(&self, code: u16, texts: &[&str]) {
        if let Some(error) = codec::error_fitting(code, texts, self.limit) {
            let _ = self.wire.send_plain(&error);
        }
    }

    /// An ERROR about the file or mode asked for: whole to a source on this host, else no
    /// larger than the request.
    fn refuse_file<T>(&self, code: u16, message: &str) -> Result<T> {
        if let Some(error) = codec::error_within(code, message, self.whole) {
            let _ = self.wire.send_plain(&error);
        }
        bail!("TFTP request refused: {message}")
    }

    /// Sends `answer` once and waits for the client to answer from its address: ACK 0 to a
    /// download's OACK, DATA 1 to an upload's ACK 0 or OACK (whose data is returned).
    fn prove(&mut self, answer: &[u8], write: bool) -> Result<Option<Vec<u8>>> {
        debug_assert!(answer.len() <= self.limit);
        self.wire.send_plain(answer)?;
        let deadline = Instant::now() + PROOF_WAIT;
        while let Heard::Packet(n) = self.wire.recv(deadline)? {
            match self.wire.packet(n) {
                Some(Packet::Ack { block: 0 }) if !write => return Ok(None),
                Some(Packet::Data { block: 1, data }) if write => {
                    return Ok(Some(data.to_vec()));
                }
                Some(Packet::Error { code, message }) => bail!(
                    "the client refused the server's answer: error {code}: {}",
                    crate::wrap::printable(message)
                ),
                _ => debug!("a packet before the client answered; ignored"),
            }
        }
        bail!(
            "ignored a TFTP request: no answer within {PROOF_WAIT:?} (a forged source \
             address, or a client gone); nothing but one answer no larger than the request \
             was sent"
        )
    }
}

/// What an option-less request from a source that may be forged is told: the longest that
/// fits whole in an ERROR no larger than the request.
const SEND_OPTIONS: [&str; 3] = [
    "send an option such as blksize 512 (curl does; atftp --option \"blksize 512\"): a \
     server answers a plain request only from this host",
    "send blksize 512",
    "send blksize",
];

/// What a request with options is told when they leave its DATA 1 larger than it (no
/// blksize, or an OACK that cannot fit): RFC 2347's code 8, with the longest that fits.
const ADD_BLKSIZE: [&str; 3] = [
    "ask for blksize too: no block larger than the request goes to an unproven address",
    "add blksize 512",
    "add blksize",
];

/// A download: OACK and ACK 0 first when there are options; DATA 1 at once otherwise,
/// only to a source that cannot be forged (or with --tftp-rfc1350).
///
/// ACK 0 on the transfer's port is a weak proof: a blind sender can spray ACK 0 at every
/// ephemeral port (some 28,000). So to a source that may be forged (not this host, no
/// --tftp-rfc1350) the block is cut to the request's size, and DATA 1 goes alone until
/// ACK 1 ([`transfer::send_file`]): before that, an address is sent no more than it sent.
fn serve_read(
    mut first: First<'_>,
    pending: admit::Pending,
    name: &str,
    asked: &[(&str, &str)],
    tftp: &Tftp<'_>,
) -> Result<String> {
    let (file, size) = match tftp.store.open_file(name) {
        Ok(found) => found,
        // "not found" first: a short request leaves room for few words.
        Err(refused) if refused.kind == Kind::NotFound => {
            return first.refuse_file(codec::NOT_FOUND, &format!("not found: '{name}'"));
        }
        Err(refused) => return first.refuse_file(code(refused.kind), &refused.text),
    };
    let trusted = first.wire.peer.unforgeable() || tftp.rfc1350;
    let (mut agreed, mut oack) = options::negotiate(asked, Some(size));
    if !trusted {
        options::cap_block(&mut agreed, &mut oack, first.limit.saturating_sub(4));
    }
    options::fit(&mut agreed, &mut oack, first.limit);
    let data_1 = 4 + size.min(u64::from(agreed.block)) as usize;
    if !trusted && (oack.is_empty() || data_1 > first.limit) {
        return refuse_unproven(&first, asked.is_empty());
    }
    if !oack.is_empty() {
        first.prove(&oack_bytes(&oack), false)?;
    }
    drop(pending);
    send(first.wire, &file, size, agreed, name, !trusted)
}

/// Refuses a download from a source that may be forged whose DATA 1 would be larger than
/// its request: without options (RFC 1350's plain form) with code 0 asking for one; with
/// options but no blksize that fits, with code 8.
fn refuse_unproven(first: &First<'_>, plain: bool) -> Result<String> {
    if plain {
        first.refuse_fitting(codec::NOT_DEFINED, &SEND_OPTIONS);
        bail!(
            "refused a TFTP request without options from an address that may be forged: DATA \
             before it answers could flood someone else (serve --tftp-rfc1350 allows it)"
        );
    }
    first.refuse_fitting(codec::OPTIONS, &ADD_BLKSIZE);
    bail!(
        "refused a TFTP request from an address that may be forged: its options (no blksize, \
         or none fitting an answer no larger than the request) leave DATA 1 larger than the \
         request, which could flood someone else (serve --tftp-rfc1350 allows it)"
    )
}

/// Sends the file within the process's budget of bytes in flight; to a peer proven by
/// ACK 0 alone (`unproven`), DATA 1 alone until its ACK.
fn send(
    mut wire: Wire<'_>,
    file: &File,
    size: u64,
    mut agreed: Agreed,
    name: &str,
    unproven: bool,
) -> Result<String> {
    let block = usize::from(agreed.block) + 4;
    let wanted = usize::from(agreed.window) * block;
    let Some(budget) = admit::reserve(&wire.peer, wanted, block) else {
        let e = codec::error_within(
            codec::NOT_DEFINED,
            "busy: too much data in flight (to this address, or in all); try again later",
            512,
        );
        let _ = wire.send_plain(&e.unwrap_or_default());
        bail!("refused: the server has too much data in flight (to this address, or in all)");
    };
    // Fewer blocks a window than agreed only slows the client down (it waits, then ACKs).
    agreed.window = u16::try_from(budget.bytes() / block)
        .unwrap_or(u16::MAX)
        .clamp(1, agreed.window);
    let t = transfer::send_file(&mut wire, file, size, &agreed, unproven)?;
    Ok(t.summary(&format!("sent '{name}' over TFTP"), &describe(&agreed)))
}

/// An upload: refused before anything is created if the store would refuse it; the
/// temporary file only once DATA 1 comes from the client's address.
fn serve_write(
    mut first: First<'_>,
    pending: admit::Pending,
    name: &str,
    asked: &[(&str, &str)],
    tftp: &Tftp<'_>,
) -> Result<String> {
    let (mut agreed, mut oack) = options::negotiate(asked, None);
    options::fit(&mut agreed, &mut oack, first.limit);
    let target = match tftp.store.upload_path(name, agreed.tsize.unwrap_or(0)) {
        Ok(target) => target,
        Err(refused) => return first.refuse_file(code(refused.kind), &refused.text),
    };
    let answer = if oack.is_empty() {
        Packet::Ack { block: 0 }.to_vec()
    } else {
        oack_bytes(&oack)
    };
    let data = first.prove(&answer, true)?.unwrap_or_default();
    drop(pending);
    let mut wire = first.wire;
    let partial = match Partial::create(&target, false) {
        Ok(partial) => partial,
        Err(e) => {
            let _ = wire.send_plain(&error_of(&e));
            return Err(e.context("TFTP upload refused"));
        }
    };
    // Only a size announced (tsize) is promised; without one the writes say if the disk fills.
    let owner = admit::datagram_owner(wire.sock, &wire.peer);
    if let Err(refused) = partial.reserve_upload(name, agreed.tsize.unwrap_or(0), owner) {
        let refused = anyhow::Error::new(refused);
        let _ = wire.send_plain(&error_of(&refused));
        return Err(refused.context("TFTP upload refused"));
    }
    let t = transfer::receive_file(&mut wire, partial, &data, &agreed, tftp.store.max_file)?;
    Ok(t.summary(&format!("stored '{name}' over TFTP"), &describe(&agreed)))
}

fn oack_bytes(oack: &[(String, String)]) -> Vec<u8> {
    Packet::Oack {
        options: oack.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect(),
    }
    .to_vec()
}

/// The transfer's terms, for its log line (TFTP carries no checksum to report).
fn describe(a: &Agreed) -> String {
    format!(
        "no checksum (TFTP has none); blksize {}, windowsize {}",
        a.block, a.window
    )
}

#[cfg(test)]
mod tests;
