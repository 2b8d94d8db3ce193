//! A TFTP transfer once its peer is known to live at its address: DATA blocks a window at a
//! time (RFC 7440; one block is RFC 1350's lock-step), ACKs, and retransmission on silence
//! only. A duplicate ACK never sends anything (the Sorcerer's Apprentice bug of RFC 1350,
//! where each duplicate doubled every block after it); the tries and each wait are bounded.
//! Block numbers are 16 bits on the wire and roll over from 65535 to 0, as curl, tftp-hpa
//! and atftp expect; here they are counted in 64 bits.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use tracing::debug;

use crate::files::impair::Impaired;
use crate::files::store::{Kind, Partial};
use crate::files::{Transfer, shrank, write_or_tell};
use crate::hexdump::{self, Way};
use crate::transport::{DatagramSocket, MAX_MESSAGE, PeerAddr, Received};

use super::codec::{self, Packet};
use super::options::Agreed;

/// Retransmissions in a row without progress before a transfer is given up.
pub(crate) const MAX_TRIES: u32 = 5;

/// A transfer's connected socket and its peer (RFC 1350's transfer identifiers).
pub(crate) struct Wire<'a> {
    pub sock: &'a DatagramSocket,
    pub peer: PeerAddr,
    pub impaired: Impaired,
    pub buf: Vec<u8>,
}

/// What came from the peer within a wait.
pub(crate) enum Heard {
    Packet(usize),
    Silence,
}

impl<'a> Wire<'a> {
    pub(crate) fn new(sock: &'a DatagramSocket, peer: PeerAddr, impair: (f64, f64)) -> Wire<'a> {
        Wire {
            sock,
            peer,
            impaired: Impaired::new(impair.0, impair.1),
            buf: vec![0u8; MAX_MESSAGE],
        }
    }

    /// DATA and ACK: subject to --drop and --reorder.
    pub(crate) fn send(&mut self, packet: &Packet<'_>) -> Result<()> {
        let bytes = packet.to_vec();
        hexdump::dump_if(Way::Out, &self.peer, &bytes);
        self.impaired
            .send(self.sock, &self.peer, &bytes)
            .map_err(went_away)
    }

    /// OACK and ERROR: sent as they are, never lost on purpose.
    pub(crate) fn send_plain(&self, bytes: &[u8]) -> Result<()> {
        hexdump::dump_if(Way::Out, &self.peer, bytes);
        self.sock.send_to(bytes, &self.peer).map_err(went_away)
    }

    /// The next datagram from the peer before `deadline`. An ICMP port unreachable (the
    /// socket is connected) ends the transfer.
    pub(crate) fn recv(&mut self, deadline: Instant) -> Result<Heard> {
        loop {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                self.impaired
                    .release(self.sock, &self.peer)
                    .map_err(went_away)?;
                return Ok(Heard::Silence);
            };
            self.sock
                .set_read_timeout(Some(left.max(Duration::from_millis(1))))?;
            match self.sock.recv_from(&mut self.buf) {
                Ok((Received::Data(n), from)) if from == self.peer => {
                    hexdump::dump_if(Way::In, &from, &self.buf[..n]);
                    return Ok(Heard::Packet(n));
                }
                Ok((_, from)) => debug!("a datagram from {from}, not this transfer's peer"),
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock
                            | io::ErrorKind::TimedOut
                            | io::ErrorKind::Interrupted
                    ) => {}
                Err(e) => return Err(went_away(e)),
            }
        }
    }

    pub(crate) fn packet(&self, n: usize) -> Option<Packet<'_>> {
        Packet::decode(&self.buf[..n])
    }
}

fn went_away(e: io::Error) -> anyhow::Error {
    match e.kind() {
        io::ErrorKind::ConnectionRefused | io::ErrorKind::ConnectionReset => {
            anyhow::anyhow!("the client went away (ICMP port unreachable)")
        }
        _ => anyhow::Error::new(e).context("sendto/recvfrom"),
    }
}

/// The block on the wire for block `n` counted from 1.
fn wire_block(n: u64) -> u16 {
    n as u16
}

/// When to send a window again: soon after a round trip (measured on windows sent once,
/// as Karn says), doubling on each silence, never later than the agreed timeout. Giving up
/// is a matter of the agreed timeout alone: [`MAX_TRIES`] of them without progress.
struct Clock {
    srtt: Option<Duration>,
    rto: Duration,
    agreed: Duration,
    progress: Instant,
}

/// The shortest wait before a window goes again.
const MIN_RTO: Duration = Duration::from_millis(20);

impl Clock {
    fn new(agreed: Duration) -> Clock {
        Clock {
            srtt: None,
            rto: agreed.min(Duration::from_secs(1)),
            agreed,
            progress: Instant::now(),
        }
    }

    fn acked(&mut self, sent: Instant, again: bool) {
        self.progress = Instant::now();
        if again {
            return;
        }
        let sample = sent.elapsed();
        let srtt = self.srtt.map_or(sample, |s| (s * 7 + sample) / 8);
        self.srtt = Some(srtt);
        self.rto = (srtt * 4).clamp(MIN_RTO, self.agreed);
    }

    /// A silence: `false` once the transfer has gone too long without progress.
    fn silence(&mut self) -> bool {
        self.rto = (self.rto * 2).min(self.agreed);
        self.progress.elapsed() < self.agreed * MAX_TRIES
    }
}

/// Sends `size` bytes of `file` to a peer that has shown it lives at its address; one
/// shown by ACK 0 alone (`unproven`) gets DATA 1 alone until it is acknowledged.
pub(crate) fn send_file(
    wire: &mut Wire<'_>,
    file: &File,
    size: u64,
    a: &Agreed,
    unproven: bool,
) -> Result<Transfer> {
    let start = Instant::now();
    let block = u64::from(a.block);
    // The last block is shorter than a full one, empty if the size is a multiple of it.
    let last = size / block + 1;
    let window = u64::from(a.window.max(1));
    let mut t = Transfer::default();
    let mut data = vec![0u8; usize::from(a.block)];
    let first = match unproven {
        true => first_block(wire, file, size, a, &mut t).map(|()| 1)?,
        false => 0,
    };
    let mut clock = Clock::new(a.timeout);
    let (mut acked, mut sent, mut burst) = (first, first, window);
    while acked < last {
        // Go back to the block after the last one acknowledged (RFC 7440): after an ACK,
        // a window from there; after a silence, that oldest block alone, never the whole
        // flight again.
        let (at_send, again) = (Instant::now(), sent > acked);
        for n in acked + 1..=(acked + burst).min(last) {
            let at = (n - 1) * block;
            let len = read_block(file, (at, size), (size - at).min(block) as usize, &mut data)?;
            wire.send(&Packet::Data {
                block: wire_block(n),
                data: &data[..len],
            })?;
            t.blocks += 1;
            if n <= sent {
                t.retransmitted += 1;
            }
            sent = sent.max(n);
        }
        match wait_ack(wire, acked, sent, clock.rto, &mut t)? {
            Some(n) => {
                acked = n;
                burst = window;
                clock.acked(at_send, again);
            }
            None if clock.silence() => burst = 1,
            None => bail!(
                "no ACK for {:?} ({} bytes acknowledged)",
                a.timeout * MAX_TRIES,
                (acked * block).min(size)
            ),
        }
    }
    t.bytes = size;
    t.elapsed = start.elapsed();
    t.dropped = wire.impaired.dropped;
    Ok(t)
}

/// The least time DATA 1 alone waits for its ACK: past two of a client's usual 5 s timeouts.
const FIRST_ACK_WAIT: std::time::Duration = std::time::Duration::from_secs(11);

/// Times DATA 1 goes again before ACK 1, each for an ACK 0 that came again (the client's
/// own retransmission: DATA 1 was lost). A blind sender spraying ACK 0 at a port it guessed
/// so gets DATA 1, no larger than its request, twice at most, however often it repeats.
const FIRST_RESENDS: u32 = 1;

/// DATA 1 to a peer whose only proof is ACK 0 on a port a blind sender could guess: sent
/// alone, and again only when ACK 0 comes again ([`FIRST_RESENDS`] times at most), never on
/// silence. Its block no larger than the request, a forged address is so sent no more than
/// twice what was sent in its name. Returns once ACK 1 comes.
fn first_block(
    wire: &mut Wire<'_>,
    file: &File,
    size: u64,
    a: &Agreed,
    t: &mut Transfer,
) -> Result<()> {
    let mut data = vec![0u8; size.min(u64::from(a.block)) as usize];
    let len = read_block(file, (0, size), data.len(), &mut data)?;
    let data_1 = Packet::Data {
        block: 1,
        data: &data[..len],
    };
    // A client that asked for a window waits its own timeout (often 5 s) for the rest of
    // it before it ACKs DATA 1 alone: the wait here outlasts two of those.
    let wait = (a.timeout * MAX_TRIES).max(FIRST_ACK_WAIT);
    let deadline = Instant::now() + wait;
    wire.send(&data_1)?;
    t.blocks += 1;
    let mut resends = 0;
    loop {
        let Heard::Packet(n) = wire.recv(deadline)? else {
            bail!("no ACK of the first block for {wait:?} (0 bytes acknowledged)");
        };
        match wire.packet(n) {
            Some(Packet::Ack { block: 1 }) => return Ok(()),
            Some(Packet::Ack { block: 0 }) if resends < FIRST_RESENDS => {
                resends += 1;
                wire.send(&data_1)?;
                t.blocks += 1;
                t.retransmitted += 1;
            }
            Some(Packet::Ack { block: 0 }) => {
                debug!(
                    "ACK 0 again: DATA 1 went {} times already",
                    FIRST_RESENDS + 1
                )
            }
            Some(Packet::Error { code, message }) => return Err(gave_up(code, message)),
            _ => debug!("ignored a packet that is not an ACK of block 0 or 1"),
        }
    }
}

/// The client's ERROR, which ends a transfer.
fn gave_up(code: u16, message: &str) -> anyhow::Error {
    anyhow::anyhow!(
        "the client gave up: error {code}: {}",
        crate::wrap::printable(message)
    )
}

fn read_block(file: &File, (at, size): (u64, u64), len: usize, buf: &mut [u8]) -> Result<usize> {
    match file.read_exact_at(&mut buf[..len], at) {
        Ok(()) => Ok(len),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Err(shrank(at, size)),
        Err(e) => Err(e).context("read the file"),
    }
}

/// The highest block in `(acked, sent]` the peer acknowledges within `timeout`; `None` on
/// silence. An ACK of `acked` again (a duplicate) or of a block never sent is counted and
/// answered with nothing.
fn wait_ack(
    wire: &mut Wire<'_>,
    acked: u64,
    sent: u64,
    timeout: Duration,
    t: &mut Transfer,
) -> Result<Option<u64>> {
    let deadline = Instant::now() + timeout;
    loop {
        let n = match wire.recv(deadline)? {
            Heard::Packet(n) => n,
            Heard::Silence => return Ok(None),
        };
        match wire.packet(n) {
            Some(Packet::Ack { block }) => {
                // Within a window (at most 64 blocks) a 16-bit number names one block.
                if let Some(k) = (acked + 1..=sent).rev().find(|&k| wire_block(k) == block) {
                    return Ok(Some(k));
                }
                if block == wire_block(acked) {
                    t.duplicates += 1;
                } else {
                    t.unsent_acks += 1;
                }
            }
            Some(Packet::Error { code, message }) => return Err(gave_up(code, message)),
            _ => debug!("ignored a packet that is not an ACK"),
        }
    }
}

/// What the receiving side heard while waiting for the next block.
enum Next {
    Data(Vec<u8>),
    /// The block before the expected one again: the sender missed our ACK.
    Again,
    Silence,
}

/// Receives an upload into `partial` (already holding `first`, DATA 1's data), ACKing each
/// window; commits it once the short last block is in, then acknowledges it.
pub(crate) fn receive_file(
    wire: &mut Wire<'_>,
    mut partial: Partial,
    first: &[u8],
    a: &Agreed,
    max: u64,
) -> Result<Transfer> {
    let start = Instant::now();
    let block = usize::from(a.block);
    let mut t = Transfer::default();
    let (mut got, mut expected, mut since_ack) = (0u64, 1u64, 0u16);
    let mut progress = Instant::now();
    let mut pending = Some(first.to_vec());
    loop {
        let heard = match pending.take() {
            Some(data) => Next::Data(data),
            None => next_data(wire, expected, a.timeout, &mut t)?,
        };
        let data = match heard {
            Next::Data(data) => data,
            again => {
                // Silence, or the sender repeating itself: say again where we are, for as
                // long as the tries allow without a new block.
                if progress.elapsed() > a.timeout * (MAX_TRIES + 1) {
                    bail!(
                        "no new block for {:?} ({got} bytes in)",
                        a.timeout * (MAX_TRIES + 1)
                    );
                }
                if matches!(again, Next::Silence) {
                    t.retransmitted += 1;
                }
                wire.send(&Packet::Ack {
                    block: wire_block(expected - 1),
                })?;
                since_ack = 0;
                continue;
            }
        };
        progress = Instant::now();
        got += data.len() as u64;
        if let Some(why) = oversized(data.len(), block, got, max) {
            let error = codec::error_within(super::code(why.0), why.1, 64);
            let _ = wire.send_plain(&error.unwrap_or_default());
            bail!(
                "{} (block {} bytes, {got} bytes in, limit {max})",
                why.1,
                data.len()
            );
        }
        write_block(wire, &mut partial, &data)?;
        t.blocks += 1;
        expected += 1;
        since_ack += 1;
        if data.len() < block {
            break;
        }
        if since_ack >= a.window {
            wire.send(&Packet::Ack {
                block: wire_block(expected - 1),
            })?;
            since_ack = 0;
        }
    }
    finish(wire, partial)?;
    t.bytes = got;
    t.elapsed = start.elapsed();
    dally(wire, expected - 1, a.timeout);
    t.dropped = wire.impaired.dropped;
    Ok(t)
}

/// Writes a block; a write that fails is told to the client (error 3 for a full disk)
/// instead of leaving it to wait out its tries.
fn write_block(wire: &Wire<'_>, partial: &mut Partial, data: &[u8]) -> Result<()> {
    write_or_tell(&mut partial.file, data, |e| {
        let _ = wire.send_plain(&super::error_of(e));
    })
}

/// Why a block cannot be taken: larger than agreed, or past the size limit.
fn oversized(len: usize, block: usize, got: u64, max: u64) -> Option<(Kind, &'static str)> {
    if len > block {
        Some((Kind::Illegal, "a block larger than the agreed blksize"))
    } else if got > max {
        Some((Kind::DiskFull, "over the size limit (--max-file)"))
    } else {
        None
    }
}

/// The next DATA in order within `timeout`, the previous block again, or silence.
fn next_data(
    wire: &mut Wire<'_>,
    expected: u64,
    timeout: Duration,
    t: &mut Transfer,
) -> Result<Next> {
    let deadline = Instant::now() + timeout;
    loop {
        let n = match wire.recv(deadline)? {
            Heard::Packet(n) => n,
            Heard::Silence => return Ok(Next::Silence),
        };
        match wire.packet(n) {
            Some(Packet::Data { block, data }) if block == wire_block(expected) => {
                return Ok(Next::Data(data.to_vec()));
            }
            Some(Packet::Data { block, .. }) => {
                t.duplicates += 1;
                if block == wire_block(expected - 1) {
                    return Ok(Next::Again);
                }
            }
            Some(Packet::Error { code, message }) => return Err(gave_up(code, message)),
            _ => debug!("ignored a packet that is not the next DATA"),
        }
    }
}

/// Commits the upload; a commit that fails is told to the client as an ERROR instead of
/// the last ACK.
fn finish(wire: &mut Wire<'_>, partial: Partial) -> Result<()> {
    let Err(e) = partial.commit(false) else {
        return Ok(());
    };
    let e = e.context("store the upload");
    let _ = wire.send_plain(&super::error_of(&e));
    Err(e)
}

/// ACKs the last block, and answers that block again while the client sends it (its copy
/// of the ACK was lost): at most [`MAX_TRIES`] times, and never past one quiet wait of the
/// client's retransmission interval. The file is in place, so nothing here is an error.
fn dally(wire: &mut Wire<'_>, last: u64, timeout: Duration) {
    let ack = Packet::Ack {
        block: wire_block(last),
    }
    .to_vec();
    for _ in 0..=MAX_TRIES {
        if wire.send_plain(&ack).is_err() {
            return;
        }
        let deadline = Instant::now() + timeout + Duration::from_millis(500);
        loop {
            match wire.recv(deadline) {
                Ok(Heard::Packet(n)) => {
                    if matches!(wire.packet(n), Some(Packet::Data { block, .. }) if block == wire_block(last))
                    {
                        break;
                    }
                }
                _ => return,
            }
        }
    }
}
