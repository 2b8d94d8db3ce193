//! Files over datagrams: nothing below delivers every datagram, once, in order, so this
//! protocol does (packets in `packet.rs`). Before any data, the server's well-known socket
//! answers a request with one COOKIE no larger than it and keeps nothing; the client sends
//! the request again with the COOKIE's token, which proves its address, and only then does
//! a transfer socket (and a thread) exist (`handshake.rs`, `cookie.rs`): a forged source
//! gets one small datagram and holds nothing.
//! The sender starts with two blocks in flight and grows towards `window` as ACKs come;
//! the receiver acknowledges the highest block it has in order (cumulative ACK), keeps
//! early blocks of the window, and counts duplicates; after a silence of two round trips
//! the sender probes with the oldest block the receiver lacks (twice at most, each probe
//! restarting the timeout), and on a timeout sends that block again, with one block allowed
//! in flight, and doubles its timeout. A FIN with the file's hash (BLAKE3; SHA-256 with a
//! version 1 peer) ends the transfer. Each transfer runs on a socket of its own (a TFTP
//! "transfer ID"), connected to its peer, so the server's well-known socket only takes
//! requests and an ICMP port unreachable ends a transfer.

use std::collections::{BTreeMap, VecDeque};
use std::fs::File;
use std::io::{self, Read};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use tracing::{debug, info, warn};

use std::os::fd::AsFd;

use nix::poll::{PollFd, PollFlags, ppoll};
use nix::sys::time::TimeSpec;

use crate::hexdump::{self, Way};
use crate::transport::{DatagramSocket, MAX_MESSAGE, PeerAddr, Received, batch};
use crate::wrap::printable;

use super::admit;
use super::download::Download;
use super::hash::Hasher;
use super::impair::Impaired;
use super::packet::{DATA_HEADER, MAX_SACK_BYTES, Packet, Version};
use super::store::{Partial, Store};
use super::{Transfer, hex, shrank, write_or_tell};

/// Data bytes per block by default: a block and its header fit a 1500-byte Ethernet frame.
pub(crate) const DEFAULT_BLOCK: u16 = 1408;
/// The largest window and block a server accepts (as the client's flags allow), and the most
/// data one transfer keeps in flight.
pub(crate) const MAX_WINDOW: u16 = 1024;
pub(crate) const MAX_BLOCK: u16 = 60_000;
const MAX_IN_FLIGHT: usize = 8 << 20;
/// Blocks in flight when a transfer starts, before any ACK (RFC 5681's initial window,
/// in blocks).
const INITIAL_WINDOW: f64 = 2.0;
/// The retransmission timeout before any round trip was measured.
const INITIAL_RTO: Duration = Duration::from_millis(200);
const MIN_RTO: Duration = Duration::from_millis(10);
const MAX_RTO: Duration = Duration::from_secs(2);
/// The shortest wait before a tail loss probe: a receiver that is only slow to be scheduled
/// costs one block sent twice, never a window.
const MIN_PROBE: Duration = Duration::from_millis(1);
/// Timeouts in a row without progress before a transfer is given up. A silent peer gets
/// [`MAX_PROBES`] probes, two smoothed round trips apart, then a timeout one RTO after the
/// last of them, and a timeout per RTO (doubled each time, up to [`MAX_RTO`]), each with one
/// block, until timeout `MAX_STALLS + 1` ends the transfer: after a 20 ms round trip (an RTO
/// of 60 ms) about 14 s after the last ACK, and never more than [`NO_PROGRESS`] and one RTO
/// after it.
const MAX_STALLS: u32 = 10;
/// The longest a transfer goes without progress, whatever else arrives: a peer that sends
/// junk (or the same packet) cannot hold a transfer, and its thread, open.
const NO_PROGRESS: Duration = Duration::from_secs(20);

/// How a side of a transfer behaves.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Settings {
    pub window: u16,
    pub block_size: u16,
    pub drop: f64,
    pub reorder: f64,
    /// How long a receiver stays after its verdict to answer a repeated FIN (its FINACK may
    /// be lost). A server lingers in a thread of its own, so longer than any sender's RTO;
    /// a client that already holds its verified file, briefly.
    pub linger: Duration,
    /// The protocol version: the hash, and whether the receiver sends SACKs.
    pub version: Version,
}

/// A server's linger: past the longest retransmission timeout, so a sender that lost the
/// FINACK hears it again.
pub(crate) const SERVER_LINGER: Duration = Duration::from_millis(4500);
/// A client's linger after a verified download.
pub(crate) const CLIENT_LINGER: Duration = Duration::from_millis(300);

/// Round-trip estimate and retransmission timeout (RFC 6298, simplified).
struct Rto {
    srtt: Option<f64>,
    rttvar: f64,
    rto: Duration,
}

impl Rto {
    fn new() -> Rto {
        Rto {
            srtt: None,
            rttvar: 0.0,
            rto: INITIAL_RTO,
        }
    }

    fn sample(&mut self, rtt: Duration) {
        let r = rtt.as_secs_f64();
        let srtt = match self.srtt {
            None => {
                self.rttvar = r / 2.0;
                r
            }
            Some(s) => {
                self.rttvar = 0.75 * self.rttvar + 0.25 * (s - r).abs();
                0.875 * s + 0.125 * r
            }
        };
        self.srtt = Some(srtt);
        self.rto = Duration::from_secs_f64(srtt + 4.0 * self.rttvar).clamp(MIN_RTO, MAX_RTO);
    }

    fn back_off(&mut self) {
        self.rto = (self.rto * 2).min(MAX_RTO);
    }

    /// How long a silence must last before a tail loss probe (RFC 8985's PTO: two smoothed
    /// round trips); none before a round trip was measured, and never past the timeout.
    fn probe(&self) -> Option<Duration> {
        let srtt = Duration::from_secs_f64(self.srtt?);
        Some((srtt * 2).max(MIN_PROBE)).filter(|&p| p < self.rto)
    }
}

/// One side of a transfer: a socket, its peer, simulated impairments.
pub(crate) struct Link<'a> {
    pub sock: &'a DatagramSocket,
    pub peer: PeerAddr,
    pub impaired: Impaired,
    buf: Vec<u8>,
    /// New blocks leave in one sendmsg(2) with UDP_SEGMENT, cut by the kernel: UDP only,
    /// without simulated impairments (which act on each datagram), and only while the
    /// kernel takes it (false after its first refusal).
    gso: bool,
    segments: Vec<u8>,
    /// Receives glued (UDP_GRO, see [`Link::receive_glued`]), and what is left of the last
    /// one: where the next datagram starts, where the receive ends, its segment size.
    glued: bool,
    left: Option<(usize, usize, usize)>,
}

impl<'a> Link<'a> {
    /// Asks for socket buffers that hold a whole window, within the kernel's limits
    /// (net.core.rmem_max).
    pub(crate) fn new(sock: &'a DatagramSocket, peer: PeerAddr, settings: &Settings) -> Link<'a> {
        let window_bytes = usize::from(settings.window.max(1))
            * (usize::from(settings.block_size) + DATA_HEADER)
            * 2;
        let _ = sock
            .socket()
            .set_recv_buffer_size(window_bytes.min(8 << 20));
        let _ = sock
            .socket()
            .set_send_buffer_size(window_bytes.min(8 << 20));
        let udp = sock
            .socket()
            .local_addr()
            .is_ok_and(|a| a.as_socket().is_some());
        Link {
            sock,
            peer,
            impaired: Impaired::new(settings.drop, settings.reorder),
            buf: vec![0u8; MAX_MESSAGE],
            gso: udp && settings.drop == 0.0 && settings.reorder == 0.0,
            segments: Vec::new(),
            glued: false,
            left: None,
        }
    }

    /// A receiver's link reads UDP datagrams glued where the kernel can (UDP_GRO): a burst
    /// of blocks in one system call, each then taken as its own packet.
    pub(crate) fn receive_glued(&mut self) {
        if self.sock.proto() != crate::endpoint::Proto::Udp {
            return;
        }
        match batch::receive_glued(self.sock.socket(), true) {
            Ok(()) => self.glued = true,
            Err(e) => debug!("UDP_GRO: {e}; one datagram per receive"),
        }
    }

    /// The next datagram of the last glued receive, moved to the start of the buffer.
    fn next_glued(&mut self) -> Option<usize> {
        let (start, end, segment) = self.left.take()?;
        let n = segment.min(end - start);
        // The first datagram was taken already, so this one never overlaps its new place.
        self.buf.copy_within(start..start + n, 0);
        if start + n < end {
            self.left = Some((start + n, end, segment));
        }
        hexdump::dump_if(Way::In, &self.peer, &self.buf[..n]);
        Some(n)
    }

    /// One receive that never waits: a datagram (or, glued, the first of them) and its
    /// sender.
    fn try_recv(&mut self) -> io::Result<(Received, PeerAddr)> {
        if !self.glued {
            return self.sock.try_recv_from(&mut self.buf);
        }
        let got = batch::recv_glued(self.sock.socket(), &mut self.buf, libc::MSG_DONTWAIT)?;
        if let Received::Data(n) = got.received
            && got.segment > 0
            && n > got.segment
        {
            self.left = Some((got.segment, n, got.segment));
            return Ok((Received::Data(got.segment), got.from));
        }
        Ok((got.received, got.from))
    }

    /// Sends DATA packets, each `size` bytes but the last (which may be shorter): with
    /// UDP_SEGMENT, as few system calls as the kernel allows; else one by one.
    fn send_data<'d>(&mut self, blocks: impl Iterator<Item = (u32, &'d [u8])>) -> Result<()> {
        if !self.gso {
            for (block, data) in blocks {
                self.send(&Packet::Data { block, data })?;
            }
            return Ok(());
        }
        let mut segments = std::mem::take(&mut self.segments);
        let mut segment = 0;
        let mut count = 0;
        for (block, data) in blocks {
            let size = DATA_HEADER + data.len();
            let full = count == batch::MAX_SEGMENTS || segments.len() + size > batch::MAX_SEGMENTED;
            if count > 0 && (full || size > segment) {
                self.send_segments(&segments, segment)?;
                segments.clear();
                count = 0;
            }
            if count == 0 {
                segment = size;
            }
            Packet::Data { block, data }.encode(&mut segments);
            count += 1;
        }
        if count > 0 {
            self.send_segments(&segments, segment)?;
        }
        segments.clear();
        self.segments = segments;
        Ok(())
    }

    /// One UDP_SEGMENT send; on the kernel's first refusal, the datagrams one by one, and
    /// never UDP_SEGMENT again on this link.
    fn send_segments(&mut self, buf: &[u8], segment: usize) -> Result<()> {
        let Ok(seg) = u16::try_from(segment) else {
            bail!("a {segment}-byte block cannot be segmented");
        };
        // Dumped as the datagrams the kernel makes of it.
        for datagram in buf.chunks(segment) {
            hexdump::dump_if(Way::Out, &self.peer, datagram);
        }
        match self.sock.send_segments(buf, seg, &self.peer) {
            Ok(()) => return Ok(()),
            Err(e) if batch::no_segmentation(&e) => {
                debug!("UDP_SEGMENT refused ({e}); sending one datagram per block");
                self.gso = false;
            }
            Err(e) if gone(&e) => bail!("the peer went away (its socket is closed)"),
            Err(e) => return Err(e).context("sendmsg with UDP_SEGMENT"),
        }
        for datagram in buf.chunks(segment) {
            match self.sock.send_to(datagram, &self.peer) {
                Err(e) if gone(&e) => bail!("the peer went away (its socket is closed)"),
                sent => sent.context("sendto")?,
            }
        }
        Ok(())
    }

    fn send(&mut self, packet: &Packet<'_>) -> Result<()> {
        let bytes = packet.to_vec();
        hexdump::dump_if(Way::Out, &self.peer, &bytes);
        match self.impaired.send(self.sock, &self.peer, &bytes) {
            // A Unix datagram peer that closed its socket refuses at once; a UDP peer's
            // ICMP port unreachable fails the next send on the connected socket.
            Err(e) if gone(&e) => bail!("the peer went away (its socket is closed)"),
            sent => sent.context("sendto"),
        }
    }

    /// The next packet from the peer within `timeout` (its bytes stay in the link's buffer);
    /// `None` on timeout. Datagrams from anyone else (only possible before the socket was
    /// connected) are ignored, never answered: two transfers must not talk to each other.
    fn recv(&mut self, timeout: Duration) -> Result<Option<usize>> {
        if let Some(n) = self.next_glued() {
            return Ok(Some(n));
        }
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            // Tried first without waiting, and poll(2) only when nothing is queued: one
            // system call per packet while data flows. Sends stay blocking, so a full
            // Unix datagram receiver slows the sender down instead of failing it.
            match self.try_recv() {
                Ok((Received::Data(n), from)) if from == self.peer => {
                    hexdump::dump_if(Way::In, &from, &self.buf[..n]);
                    return Ok(Some(n));
                }
                Ok((_, from)) => {
                    self.left = None;
                    debug!("a datagram from {from}, not this transfer's peer; ignored");
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if left.is_zero() {
                        self.impaired.release(self.sock, &self.peer)?;
                        return Ok(None);
                    }
                    // ppoll(2): to the microsecond, so a wait of a round trip or two
                    // neither spins through poll's last millisecond nor sleeps one more.
                    let timeout = TimeSpec::from_duration(left);
                    let mut fds = [PollFd::new(self.sock.as_fd(), PollFlags::POLLIN)];
                    match ppoll(&mut fds, Some(timeout), None) {
                        Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                        Err(e) => return Err(e).context("poll"),
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if gone(&e) => {
                    bail!("the peer went away (ICMP port unreachable, or its socket closed)")
                }
                Err(e) => return Err(e).context("recvfrom"),
            }
        }
    }

    fn packet(&self, n: usize) -> Option<Packet<'_>> {
        Packet::decode(&self.buf[..n])
    }
}

/// An error that says the peer's socket is no more: ECONNREFUSED (an ICMP port unreachable
/// on a connected UDP socket, a closed Unix datagram peer) or ECONNRESET (a connected Unix
/// datagram peer that closed).
fn gone(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused | io::ErrorKind::ConnectionReset
    )
}

/// Connects a transfer's socket to its peer: the kernel then delivers only the peer's
/// datagrams, and reports its ICMP errors to us. A Unix path peer is reached through its
/// socket file as its request's receive held it (see [`DatagramSocket::answer_as`]).
pub(crate) fn connect(sock: &DatagramSocket, peer: &PeerAddr) -> Result<()> {
    sock.connect_to(peer)
        .with_context(|| format!("connect the transfer socket to {peer}"))
}

/// A block in flight: its number, its data, when it was last sent, and whether it was ever
/// sent again (Karn: the ACK of a block sent twice says nothing about the round trip).
struct InFlight {
    block: u32,
    data: Vec<u8>,
    sent: Instant,
    again: bool,
    /// Given up for lost at a timeout: sent again as the congestion window allows, and
    /// not counted in flight until then.
    lost: bool,
    /// The receiver holds it (a SACK said so): never sent again, not counted in flight,
    /// kept until the cumulative ACK passes it.
    sacked: bool,
}

impl InFlight {
    fn send_again(&mut self, link: &mut Link<'_>, t: &mut Transfer) -> Result<()> {
        link.send(&Packet::Data {
            block: self.block,
            data: &self.data,
        })?;
        self.sent = Instant::now();
        self.again = true;
        self.lost = false;
        t.retransmitted += 1;
        t.blocks += 1;
        Ok(())
    }
}

/// The sending side of a transfer: `size` bytes of a file as numbered blocks, a window of
/// them in flight, then the FIN with the file's hash.
pub(crate) struct Sender<'l, 'a> {
    link: &'l mut Link<'a>,
    file: &'l mut File,
    size: u64,
    block_size: usize,
    window: usize,
    /// The last block is shorter than a full one, empty if the size is a multiple.
    last: u32,
    next: u32,
    flight: VecDeque<InFlight>,
    hash: Hasher,
    t: Transfer,
    rto: Rto,
    stalls: u32,
    last_progress: Instant,
    acked_bytes: u64,
    /// Blocks allowed in flight: two at first, grown by each ACK up to the asked window,
    /// shrunk on a loss and one after a timeout (TCP's congestion window, simplified): a
    /// peer that never acknowledges gets two blocks, and a window that overflows the
    /// receiver's socket buffer shrinks to what fits.
    cwnd: f64,
    ssthresh: f64,
    /// ACKs in a row that did not advance: three mean the oldest block was lost (fast
    /// retransmit), without waiting for the timeout.
    dup_acks: u32,
    /// After a loss found by SACK, the window shrinks once until the cumulative ACK
    /// reaches this block (one loss event per window, as TCP's recovery).
    recovery: Option<u32>,
    /// Tail loss probes sent since anything was last delivered: after [`MAX_PROBES`], the
    /// next silence is a timeout, so a peer that stopped answering gets that many blocks
    /// more, then one per timeout.
    probed: u32,
    /// When the last of those probes went: the timeout counts from it (RFC 8985 re-arms the
    /// RTO at a probe), so each probe gets its round trip before the timeout can come.
    probed_at: Option<Instant>,
    /// Probes sent and timeouts taken, for the debug log.
    probes: u64,
    timeouts: u64,
    start: Instant,
    progress: &'l dyn Fn(u64),
}

/// A block is taken for lost when a block this many numbers past it, sent after it, was
/// SACKed (TCP's three duplicate ACKs, by block number).
const REORDER_SLACK: u32 = 3;

/// Tail loss probes in a row before a silence is a timeout: a probe or its answer is lost
/// as often as anything else (1 in 20 each at 5% loss), and a second probe turns most of
/// those timeouts into one more round trip. Each probe restarts the timeout and is due two
/// round trips after the last send (only when that is shorter than the timeout), so the
/// second comes before the timeout on any path, and each puts the timeout off by its two
/// round trips.
const MAX_PROBES: u32 = 2;

/// What a loss event leaves of the congestion window (CUBIC's 0.7, RFC 9438): a response to
/// congestion still, once per window of blocks, and gentler than halving on a path that
/// loses packets at random.
const LOSS_BACKOFF: f64 = 0.7;

impl<'l, 'a> Sender<'l, 'a> {
    pub(crate) fn new(
        link: &'l mut Link<'a>,
        file: &'l mut File,
        size: u64,
        settings: &Settings,
        progress: &'l dyn Fn(u64),
    ) -> Result<Sender<'l, 'a>> {
        let block_size = usize::from(settings.block_size);
        let window = usize::from(settings.window.max(1));
        let last = last_block(size, settings.block_size)?;
        Ok(Sender {
            link,
            file,
            size,
            block_size,
            window,
            last,
            next: 1,
            flight: VecDeque::new(),
            hash: Hasher::new(settings.version.hash()),
            t: Transfer {
                hash: Some(settings.version.hash()),
                ..Transfer::default()
            },
            rto: Rto::new(),
            stalls: 0,
            last_progress: Instant::now(),
            acked_bytes: 0,
            cwnd: INITIAL_WINDOW.min(window as f64),
            ssthresh: window as f64,
            dup_acks: 0,
            recovery: None,
            probed: 0,
            probed_at: None,
            probes: 0,
            timeouts: 0,
            start: Instant::now(),
            progress,
        })
    }

    /// Sends every block, then the FIN; returns what it took.
    pub(crate) fn run(mut self) -> Result<Transfer> {
        loop {
            self.fill_window()?;
            if self.flight.is_empty() {
                break;
            }
            if self.last_progress.elapsed() > NO_PROGRESS {
                bail!("no block acknowledged for {NO_PROGRESS:?}; giving up");
            }
            self.step()?;
        }
        self.finish()
    }

    /// Blocks sent, not given up for lost and not held by the receiver.
    fn outstanding(&self) -> usize {
        self.flight.iter().filter(|f| !f.lost && !f.sacked).count()
    }

    /// While the congestion window has room: blocks given up for lost go again, oldest
    /// first, then new blocks, never more than `window` past the oldest unacknowledged
    /// block (what the receiver keeps, and what this transfer's memory was reserved for).
    fn fill_window(&mut self) -> Result<()> {
        let mut room = (self.cwnd as usize).saturating_sub(self.outstanding());
        while room > 0
            && let Some(lost) = self.flight.iter_mut().find(|f| f.lost && !f.sacked)
        {
            lost.send_again(self.link, &mut self.t)?;
            room -= 1;
        }
        let mut fresh = 0;
        for _ in 0..room {
            if self.next > self.last || self.flight.len() >= self.window {
                break;
            }
            let data = self.read_block()?;
            self.hash.update(&data);
            self.t.blocks += 1;
            fresh += 1;
            self.flight.push_back(InFlight {
                block: self.next,
                data,
                sent: Instant::now(),
                again: false,
                lost: false,
                sacked: false,
            });
            self.next += 1;
        }
        let first = self.flight.len() - fresh;
        let blocks = self.flight.range(first..).map(|f| (f.block, &f.data[..]));
        self.link.send_data(blocks)
    }

    /// The next block's data. Never past the size announced: a file that grows meanwhile
    /// still ends where the receiver expects (a short last block), and the hash says if it
    /// changed.
    fn read_block(&mut self) -> Result<Vec<u8>> {
        let offset = u64::from(self.next - 1) * self.block_size as u64;
        let len = self.size.saturating_sub(offset).min(self.block_size as u64) as usize;
        let mut data = vec![0u8; len];
        let n = read_full(self.file, &mut data).context("read the file")?;
        if n < len {
            return Err(shrank(offset, self.size));
        }
        Ok(data)
    }

    /// Waits for the peer's next packet until the timeout of the block longest in
    /// flight (or, first, a tail loss probe's turn), and acts on it.
    fn step(&mut self) -> Result<()> {
        let waiting = |f: &&InFlight| !f.sacked;
        let in_flight = self.flight.iter().filter(waiting).filter(|f| !f.lost);
        let oldest = in_flight.map(|f| f.sent).min();
        // Every block in flight held by the receiver yet none acknowledged: no ACK the
        // sender takes can say so (stale ones are ignored), and should one, it waits out a
        // timeout (bounded by NO_PROGRESS), never a loop that does not wait.
        let oldest = oldest
            .or(self.flight.iter().filter(waiting).map(|f| f.sent).min())
            .unwrap_or_else(Instant::now);
        // A probe restarts the timeout (RFC 8985, section 7.3; RFC 6298 on a retransmission).
        let armed = self.probed_at.map_or(oldest, |at| at.max(oldest));
        let timeout = armed + self.rto.rto;
        let probe = self.probe_at().filter(|&p| p < timeout);
        let wait = probe
            .unwrap_or(timeout)
            .saturating_duration_since(Instant::now());
        let Some(n) = self.link.recv(wait)? else {
            return match probe {
                Some(_) => self.on_probe(),
                None => self.on_timeout(),
            };
        };
        let mut bits = [0u8; MAX_SACK_BYTES];
        let (block, sack) = match self.link.packet(n) {
            Some(Packet::Ack { block }) => (block, &bits[..0]),
            Some(Packet::Sack { block, bits: b }) => {
                let len = b.len();
                bits[..len].copy_from_slice(b);
                (block, &bits[..len])
            }
            Some(Packet::Error { message }) => bail!("the peer gave up: {}", printable(message)),
            _ => {
                debug!("ignored an unexpected packet");
                return Ok(());
            }
        };
        self.on_ack_packet(block, sack)
    }

    /// An ACK, with the blocks past its gap that a SACK bitmap says arrived. Every block
    /// it claims must have been sent: the highest is `next - 1`, and an ACK past it claims
    /// what never was (an optimistic ACK, to make the sender go faster than the path
    /// allows): the whole packet is ignored and counted.
    fn on_ack_packet(&mut self, block: u32, sack: &[u8]) -> Result<()> {
        let highest = sacked_blocks(block, sack).last().unwrap_or(block);
        if block >= self.next || highest >= self.next {
            self.t.unsent_acks += 1;
            debug!("ignored an ACK for block {highest}, never sent");
            return Ok(());
        }
        if self
            .flight
            .front()
            .is_some_and(|f| block.saturating_add(1) < f.block)
        {
            // Older than what is already acknowledged (reordered, or made up): as TCP with
            // an ACK below snd_una, nothing in it counts. Its SACK bits were measured from
            // an older ACK and could name the oldest block as held, which no honest
            // receiver says, and a flight held whole would leave nothing to wait for.
            self.t.duplicates += 1;
            return Ok(());
        }
        let advances = self.flight.front().is_some_and(|f| block >= f.block);
        if advances {
            self.on_ack(block);
        }
        let newly = self.on_sack(block, sack);
        if !advances && newly == 0 {
            if sack.is_empty() {
                return self.on_duplicate_ack();
            }
            self.t.duplicates += 1;
        }
        self.find_holes();
        Ok(())
    }

    /// Marks the blocks a SACK names as held by the receiver; counts those new to it as
    /// delivered (they grow the window as an ACK would).
    fn on_sack(&mut self, block: u32, sack: &[u8]) -> usize {
        let mut newly = 0;
        let Some(front) = self.flight.front().map(|f| f.block) else {
            return 0;
        };
        for b in sacked_blocks(block, sack) {
            if let Some(f) = b
                .checked_sub(front)
                .and_then(|i| self.flight.get_mut(i as usize))
                && !f.sacked
            {
                f.sacked = true;
                f.lost = false;
                newly += 1;
            }
        }
        if newly > 0 {
            self.stalls = 0;
            self.probed = 0;
            self.probed_at = None;
            self.last_progress = Instant::now();
            self.grow(newly as f64);
        }
        newly
    }

    /// Blocks not held by the receiver while a block well past them, sent after them, is:
    /// lost, and sent again by `fill_window` as the window allows. The window shrinks once
    /// per window of blocks in which losses are found.
    fn find_holes(&mut self) {
        let Some((highest, newest)) = self
            .flight
            .iter()
            .filter(|f| f.sacked)
            .map(|f| (f.block, f.sent))
            .reduce(|a, b| (a.0.max(b.0), a.1.max(b.1)))
        else {
            return;
        };
        let mut found = false;
        for f in self.flight.iter_mut() {
            if !f.sacked && !f.lost && f.block + REORDER_SLACK <= highest && f.sent < newest {
                debug!("SACK: block {} is missing; sending it again", f.block);
                f.lost = true;
                found = true;
            }
        }
        if found && self.recovery.is_none() {
            self.ssthresh = (self.cwnd * LOSS_BACKOFF).max(1.0);
            self.cwnd = self.ssthresh;
            self.recovery = Some(self.next);
        }
    }

    /// Slow start below the threshold, one block per window above it.
    fn grow(&mut self, delivered: f64) {
        self.cwnd += if self.cwnd < self.ssthresh {
            delivered
        } else {
            delivered / self.cwnd
        };
        self.cwnd = self.cwnd.min(self.window as f64);
    }

    /// An ACK that advances: every block up to `block` has arrived.
    fn on_ack(&mut self, block: u32) {
        self.stalls = 0;
        self.probed = 0;
        self.probed_at = None;
        self.last_progress = Instant::now();
        self.dup_acks = 0;
        let mut advanced = 0.0;
        while let Some(acked) = self.flight.pop_front_if(|f| f.block <= block) {
            if !acked.again && !acked.sacked {
                self.rto.sample(acked.sent.elapsed());
            }
            self.acked_bytes += acked.data.len() as u64;
            if !acked.sacked {
                advanced += 1.0;
            }
        }
        if self.recovery.is_some_and(|r| block >= r) {
            self.recovery = None;
        }
        self.grow(advanced);
        (self.progress)(self.acked_bytes);
    }

    /// An ACK that does not advance: the receiver got a block past a gap.
    fn on_duplicate_ack(&mut self) -> Result<()> {
        self.t.duplicates += 1;
        self.dup_acks += 1;
        if self.dup_acks == 3
            && let Some(oldest) = self.flight.front_mut()
        {
            debug!("three duplicate ACKs: sending block {} again", oldest.block);
            oldest.send_again(self.link, &mut self.t)?;
            self.ssthresh = (self.cwnd / 2.0).max(1.0);
            self.cwnd = self.ssthresh;
        }
        Ok(())
    }

    /// When a tail loss probe is due: two smoothed round trips after the newest block sent
    /// (a probe included), unless [`MAX_PROBES`] went and nothing was delivered since.
    fn probe_at(&self) -> Option<Instant> {
        if self.probed >= MAX_PROBES {
            return None;
        }
        let newest = self
            .flight
            .iter()
            .filter(|f| !f.sacked)
            .map(|f| f.sent)
            .max()?;
        Some(newest + self.rto.probe()?)
    }

    /// Silence for two round trips (RFC 8985's tail loss probe): the oldest block the
    /// receiver lacks goes again, beyond the congestion window and without shrinking it.
    /// Whatever was lost (the last blocks, a block sent again, the ACK of a whole flight),
    /// the receiver answers a block with an ACK, and the transfer goes on after a round
    /// trip instead of a timeout that starts again from one block.
    fn on_probe(&mut self) -> Result<()> {
        self.probed += 1;
        self.probes += 1;
        if let Some(oldest) = self.flight.iter_mut().find(|f| !f.sacked) {
            debug!("tail loss probe: sending block {} again", oldest.block);
            oldest.send_again(self.link, &mut self.t)?;
        }
        self.probed_at = Some(Instant::now());
        Ok(())
    }

    /// No ACK within the timeout: every block in flight is given up for lost, one block may
    /// be in flight (the oldest goes again, by `fill_window`), and the timeout doubles.
    /// Never the whole flight at once: a peer that stopped answering gets one block per
    /// timeout.
    fn on_timeout(&mut self) -> Result<()> {
        self.stalls += 1;
        if self.stalls > MAX_STALLS {
            bail!("the peer stopped answering ({MAX_STALLS} timeouts in a row)");
        }
        self.timeouts += 1;
        self.rto.back_off();
        self.ssthresh = (self.cwnd / 2.0).max(1.0);
        self.cwnd = 1.0;
        self.dup_acks = 0;
        debug!(
            "timeout: sending block {} again",
            self.flight.front().map_or(0, |f| f.block)
        );
        for block in self.flight.iter_mut().filter(|f| !f.sacked) {
            // Karn: a block given up for lost says nothing about the round trip if its
            // first copy is acknowledged after all.
            block.lost = true;
            block.again = true;
        }
        Ok(())
    }

    fn link_hash(&self) -> &'static str {
        self.t.hash.map_or("hash", |h| h.label())
    }

    /// Sends the FIN with the hash until the receiver's verdict comes.
    fn finish(mut self) -> Result<Transfer> {
        let fin = Packet::Fin {
            size: self.size,
            digest: self.hash.digest(),
            blocks: self.t.blocks,
            retransmitted: self.t.retransmitted,
        };
        debug!(
            "sent every block: {} tail loss probes, {} timeouts",
            self.probes, self.timeouts
        );
        for attempt in 0..=MAX_STALLS {
            if attempt > 0 {
                self.rto.back_off();
            }
            self.link.send(&fin)?;
            if self.verdict(Instant::now() + self.rto.rto)? {
                self.t.bytes = self.size;
                self.t.elapsed = self.start.elapsed();
                self.t.dropped = self.link.impaired.dropped;
                return Ok(self.t);
            }
        }
        bail!("no answer to the final hash check")
    }

    /// Waits until `deadline` for the receiver's verdict on the FIN: true when it matches,
    /// false on silence. What else comes meanwhile (a late or duplicate ACK of data, still
    /// queued behind the last one) is passed over within the same wait: only silence means
    /// the FIN or its answer was lost, and costs an attempt and a doubled wait.
    fn verdict(&mut self, deadline: Instant) -> Result<bool> {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let Some(n) = self.link.recv(left)? else {
                return Ok(false);
            };
            match self.link.packet(n) {
                Some(Packet::FinAck { ok: true }) => return Ok(true),
                Some(Packet::FinAck { ok: false }) => {
                    let hash = self.link_hash();
                    bail!("the receiver's {hash} does not match")
                }
                Some(Packet::Error { message }) => {
                    bail!("the peer gave up: {}", printable(message))
                }
                _ => {
                    debug!("a packet other than the FIN's answer while waiting for it; passed over")
                }
            }
        }
    }
}

/// The blocks a SACK bitmap names, in order: bit k is block `ack + 2 + k`.
fn sacked_blocks(ack: u32, bits: &[u8]) -> impl Iterator<Item = u32> + '_ {
    (0..bits.len() * 8)
        .filter(|k| bits[k / 8] & (1 << (k % 8)) != 0)
        .filter_map(move |k| ack.checked_add(2)?.checked_add(k as u32))
}

/// The number of the last block of a `size`-byte file (a shorter, maybe empty, block ends
/// every file), refused when block numbers would wrap past 2^32.
pub(crate) fn last_block(size: u64, block_size: u16) -> Result<u32> {
    let bs = u64::from(block_size.max(1));
    u32::try_from(size / bs + 1).map_err(|_| {
        let least = size / (u64::from(u32::MAX) - 1) + 1;
        anyhow!(
            "a {size}-byte file needs more than 2^32 blocks of {bs} bytes; \
             a --block-size of {least} or more numbers it (at most {MAX_BLOCK})"
        )
    })
}

/// Reads until `buf` is full or the file ends.
fn read_full(file: &mut File, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match file.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// The most blocks in order a version 2 receiver takes before it acknowledges them.
const ACK_EVERY: u32 = 16;

/// How long a receiver waits for the next packet before it says again where it is.
const PATIENCE: Duration = Duration::from_millis(500);

/// The receiving side of a transfer: blocks into a [`Download`] until the FIN, which it
/// checks; the verified file is committed before the sender hears it is done.
pub(crate) struct Receiver<'l, 'a> {
    link: &'l mut Link<'a>,
    partial: Option<Download>,
    overwrite: bool,
    block_size: usize,
    window: u32,
    linger: Duration,
    /// The most bytes this file may have.
    max: u64,
    hash: Hasher,
    /// Tell the sender which early blocks are in, and acknowledge blocks in order in
    /// groups (version 2).
    sack: bool,
    /// Blocks taken in order and not acknowledged yet.
    owed: u32,
    /// The next block in order; `expected - 1` is what the ACKs say.
    expected: u32,
    /// Blocks that came before a gap, kept while within the window.
    early: BTreeMap<u32, Vec<u8>>,
    got: u64,
    /// A short block arrived in order: every block is in.
    complete: bool,
    stalls: u32,
    last_progress: Instant,
    start: Instant,
    t: Transfer,
    /// The server's share of the in-flight budget for this window, given back once the
    /// verdict is sent ([`Receiver::holding`]).
    budget: Option<admit::Reservation>,
    progress: &'l dyn Fn(u64),
}

impl<'l, 'a> Receiver<'l, 'a> {
    pub(crate) fn new(
        link: &'l mut Link<'a>,
        partial: impl Into<Download>,
        overwrite: bool,
        settings: &Settings,
        max: u64,
        progress: &'l dyn Fn(u64),
    ) -> Receiver<'l, 'a> {
        link.receive_glued();
        Receiver {
            link,
            partial: Some(partial.into()),
            overwrite,
            block_size: usize::from(settings.block_size),
            window: u32::from(settings.window.max(1)),
            linger: settings.linger,
            max,
            hash: Hasher::new(settings.version.hash()),
            sack: settings.version.sack(),
            owed: 0,
            expected: 1,
            early: BTreeMap::new(),
            got: 0,
            complete: false,
            stalls: 0,
            last_progress: Instant::now(),
            start: Instant::now(),
            t: Transfer {
                hash: Some(settings.version.hash()),
                ..Transfer::default()
            },
            progress,
            budget: None,
        }
    }

    /// The receiver holding `budget`, the window's share of the server's bytes in flight,
    /// until its verdict is sent.
    pub(crate) fn holding(mut self, budget: admit::Reservation) -> Self {
        self.budget = Some(budget);
        self
    }

    /// Receives until the FIN is verified and answered. `first` is a packet already
    /// received (the client's first DATA).
    pub(crate) fn run(mut self, first: Option<Vec<u8>>) -> Result<Transfer> {
        let mut pending = first;
        loop {
            let bytes = match pending.take() {
                Some(bytes) => bytes,
                None => match self.next_packet()? {
                    Some(n) => self.link.buf[..n].to_vec(),
                    None => {
                        self.on_silence()?;
                        continue;
                    }
                },
            };
            self.stalls = 0;
            if self.last_progress.elapsed() > NO_PROGRESS {
                let got = self.got;
                bail!("no new block for {NO_PROGRESS:?} ({got} bytes in); giving up");
            }
            if let Some(done) = self.on_packet(&bytes)? {
                return Ok(done);
            }
        }
    }

    /// The next packet within `PATIENCE`. An ACK still owed goes out before any wait: a
    /// version 2 receiver acknowledges blocks in order once the socket holds no more (or
    /// every [`ACK_EVERY`]), so the sender gets room for many blocks at once and sends them
    /// in one system call.
    fn next_packet(&mut self) -> Result<Option<usize>> {
        if self.owed > 0 {
            if let Some(n) = self.link.recv(Duration::ZERO)? {
                return Ok(Some(n));
            }
            self.ack()?;
        }
        self.link.recv(PATIENCE)
    }

    /// Acts on one packet from the sender; the finished transfer once the FIN is verified.
    fn on_packet(&mut self, bytes: &[u8]) -> Result<Option<Transfer>> {
        match Packet::decode(bytes) {
            Some(Packet::Data { block, data }) => {
                self.on_data(block, data)?;
                Ok(None)
            }
            Some(Packet::Fin {
                size,
                digest,
                blocks,
                retransmitted,
            }) if self.complete => self.on_fin(size, digest, blocks, retransmitted).map(Some),
            // The client sends its HELLO again until the transfer begins: our ACK 0 was
            // lost (or held back), so say again where we are. The client keeps sending, so
            // waiting for silence would never come to it.
            Some(Packet::Hello { .. }) => self.ack().map(|()| None),
            Some(Packet::Error { message }) => bail!("the peer gave up: {}", printable(message)),
            _ => {
                debug!("ignored an unexpected packet");
                Ok(None)
            }
        }
    }

    /// Nothing came for a while: our last ACK may have been lost, so say again where we are.
    fn on_silence(&mut self) -> Result<()> {
        self.stalls += 1;
        if self.stalls > MAX_STALLS {
            let got = self.got;
            bail!("the sender stopped sending ({MAX_STALLS} timeouts in a row, {got} bytes in)");
        }
        self.ack()
    }

    /// The cumulative ACK, with a SACK bitmap of the early blocks held (version 2).
    fn ack(&mut self) -> Result<()> {
        self.owed = 0;
        let block = self.expected - 1;
        if !self.sack || self.early.is_empty() {
            return self.link.send(&Packet::Ack { block });
        }
        let mut bits = [0u8; MAX_SACK_BYTES];
        let mut len = 0;
        for &early in self.early.keys() {
            // Early blocks are past `expected` and within the window (at most 1024).
            let k = (early - self.expected - 1) as usize;
            if k / 8 >= MAX_SACK_BYTES {
                break;
            }
            bits[k / 8] |= 1 << (k % 8);
            len = k / 8 + 1;
        }
        self.link.send(&Packet::Sack {
            block,
            bits: &bits[..len],
        })
    }

    /// A block: written if it is the next in order (with the early ones it frees), kept if
    /// it is early, counted if it is a duplicate; answered with a cumulative ACK each time.
    fn on_data(&mut self, block: u32, data: &[u8]) -> Result<()> {
        let bs = self.block_size;
        if data.len() > bs {
            bail!("a {}-byte block is larger than the agreed {bs}", data.len());
        }
        let in_window = block > self.expected && block < self.expected.saturating_add(self.window);
        if block == self.expected && !self.complete {
            self.take_in_order(data.to_vec())?;
            if self.sack && self.early.is_empty() && !self.complete {
                self.owed += 1;
                if self.owed < ACK_EVERY {
                    return Ok(());
                }
            }
        } else if in_window && !self.complete {
            if self.early.insert(block, data.to_vec()).is_some() {
                self.t.duplicates += 1;
            }
        } else {
            self.t.duplicates += 1;
        }
        self.ack()
    }

    /// Writes the expected block and every early block that now follows it in order.
    fn take_in_order(&mut self, mut data: Vec<u8>) -> Result<()> {
        self.last_progress = Instant::now();
        loop {
            self.write(&data)?;
            self.complete = data.len() < self.block_size;
            self.expected = self
                .expected
                .checked_add(1)
                .context("more than 2^32 blocks: block numbers would wrap")?;
            match self.early.remove(&self.expected) {
                Some(next) if !self.complete => data = next,
                _ => break,
            }
        }
        self.t.blocks += 1;
        (self.progress)(self.got);
        Ok(())
    }

    fn write(&mut self, data: &[u8]) -> Result<()> {
        self.got += data.len() as u64;
        if self.got > self.max {
            self.link.send(&Packet::Error {
                message: "file over the size limit",
            })?;
            bail!("the file is over the {}-byte limit", self.max);
        }
        self.hash.update(data);
        let out = self.partial.as_mut().context("already committed")?.file();
        let link = &mut self.link;
        write_or_tell(out, data, |e| {
            let _ = link.send(&Packet::Error {
                message: &format!("{e:#}"),
            });
        })
    }

    /// The FIN: the file is checked against the sender's size and hash, committed, and
    /// the verdict sent; then the receiver lingers for a repeated FIN.
    fn on_fin(
        &mut self,
        size: u64,
        digest: [u8; 32],
        blocks: u64,
        retransmitted: u64,
    ) -> Result<Transfer> {
        let actual = self.hash.digest();
        let ok = size == self.got && digest == actual;
        if ok {
            self.commit()?;
        }
        self.link.send(&Packet::FinAck { ok })?;
        if !ok {
            bail!(
                "{} mismatch: the sender says {} ({size} bytes), the data received is {} ({} bytes)",
                self.t.hash.map_or("hash", |h| h.label()),
                hex(&digest),
                hex(&actual),
                self.got
            );
        }
        let mut t = std::mem::take(&mut self.t);
        t.bytes = self.got;
        t.elapsed = self.start.elapsed();
        // No window is in flight any more: its share of the budget goes back before the
        // linger, so the same sender's next transfer is not refused for it.
        self.budget = None;
        // Linger: if our FINACK is lost, the sender sends FIN again. The file is verified
        // and in place, so nothing that goes wrong now is an error.
        if let Err(e) = dally(self.link, &Packet::FinAck { ok }, self.linger) {
            debug!("after the transfer: {e:#}");
        }
        t.blocks = blocks;
        t.retransmitted = retransmitted;
        t.dropped = self.link.impaired.dropped;
        Ok(t)
    }

    /// Moves the verified file into place; if that fails, the sender hears why instead of
    /// waiting for a FINACK.
    fn commit(&mut self) -> Result<()> {
        if let Some(partial) = self.partial.take()
            && let Err(e) = partial.commit(self.overwrite)
        {
            let message = format!("{e:#}");
            let _ = self.link.send(&Packet::Error { message: &message });
            return Err(e);
        }
        Ok(())
    }
}

/// After the last word, answers repeats of the peer's last packet for a short while.
fn dally(link: &mut Link<'_>, answer: &Packet<'_>, linger: Duration) -> Result<()> {
    // Never past four lingers in all, however many FINs come: a peer cannot hold it open.
    let last = Instant::now() + linger * 4;
    let mut until = Instant::now() + linger;
    while let Some(left) = until.checked_duration_since(Instant::now()) {
        match link.recv(left)? {
            // The sender has not heard us yet: answer, and stay as long again.
            Some(n) if matches!(link.packet(n), Some(Packet::Fin { .. })) => {
                link.send(answer)?;
                until = (Instant::now() + linger).min(last);
            }
            Some(_) => {}
            None => break,
        }
    }
    Ok(())
}

/// A READ or WRITE, as the server takes it.
struct Request<'a> {
    version: Version,
    window: u16,
    block_size: u16,
    nonce: u64,
    name: &'a str,
    /// A WRITE's size; `None` for a READ.
    upload: Option<u64>,
}

impl<'a> Request<'a> {
    fn decode(bytes: &'a [u8]) -> Option<Request<'a>> {
        match Packet::decode(bytes)? {
            Packet::Read {
                version,
                window,
                block_size,
                nonce,
                name,
            } => Some(Request {
                version,
                window,
                block_size,
                nonce,
                name,
                upload: None,
            }),
            Packet::Write {
                version,
                window,
                block_size,
                size,
                nonce,
                name,
            } => Some(Request {
                version,
                window,
                block_size,
                nonce,
                name,
                upload: Some(size),
            }),
            _ => None,
        }
    }
}

/// Serves one request that came to the well-known socket in a PROOF (whose token the
/// receive loop found fitting, see [`screen`]), on a socket of its own: one HELLO from it,
/// which tells the client the transfer's port, and nothing more until it comes back; only
/// then is a file opened or created.
pub(crate) fn serve_request(
    sock: &DatagramSocket,
    peer: PeerAddr,
    proof: &[u8],
    store: &Store,
    impair: (f64, f64),
) -> Result<String> {
    let Some(Packet::Proof { request, .. }) = Packet::decode(proof) else {
        bail!("not a file request with its proof; ignored")
    };
    let Some(req) = Request::decode(request) else {
        bail!("not a file request; ignored")
    };
    let Some(pending) = admit::pending(&peer) else {
        bail!(
            "ignored: {} requests from this source (address, /64 or local user), or {} in all, \
             await proof already",
            admit::PENDING_PER_SOURCE,
            admit::PENDING_IN_ALL
        )
    };
    connect(sock, &peer)?;
    let mut settings = server_settings(req.window, req.block_size, impair);
    settings.version = req.version;
    let mut link = Link::new(sock, peer, &settings);
    handshake::challenge(&mut link, req.nonce, request.len())?;
    drop(pending);
    let Some(budget) = reserve_window(&link.peer, &mut settings) else {
        return refuse(
            &mut link,
            "the server has too much data in flight (to this address, or in all); try again later",
        );
    };
    match req.upload {
        None => {
            let sent = serve_read(&mut link, req.name, store, &settings);
            drop(budget);
            sent
        }
        Some(size) => serve_write(&mut link, req.name, size, store, &settings, budget),
    }
}

/// The server's side of a transfer as the client asks for it, bounded here, not only by the
/// client's own flags: a window holds window × block size bytes in memory on both sides,
/// and sends that much at once.
fn server_settings(window: u16, block_size: u16, impair: (f64, f64)) -> Settings {
    let block_size = block_size.clamp(1, MAX_BLOCK);
    let fits = u16::try_from(MAX_IN_FLIGHT / usize::from(block_size)).unwrap_or(u16::MAX);
    let window = window.clamp(1, MAX_WINDOW).min(fits);
    Settings {
        window: window.max(1),
        block_size,
        drop: impair.0,
        reorder: impair.1,
        linger: SERVER_LINGER,
        version: Version::V1,
    }
}

/// Takes the transfer's window from the process's budget of bytes in flight (and its
/// source's share of it), shrunk to what is left; `None` when not even one block fits.
fn reserve_window(peer: &PeerAddr, settings: &mut Settings) -> Option<admit::Reservation> {
    let block = usize::from(settings.block_size) + DATA_HEADER;
    let reserved = admit::reserve(peer, usize::from(settings.window) * block, block)?;
    settings.window = u16::try_from(reserved.bytes() / block)
        .unwrap_or(u16::MAX)
        .max(1);
    Some(reserved)
}

/// Tells a proven peer why its request is refused, and ends the transfer with that reason.
/// Sent as is, never lost or held back on purpose: it is the only word the client gets.
fn refuse<T>(link: &mut Link<'_>, message: &str) -> Result<T> {
    tell(link, message);
    bail!("refused: {message}")
}

fn tell(link: &mut Link<'_>, message: &str) {
    let _ = link
        .sock
        .send_to(&Packet::Error { message }.to_vec(), &link.peer);
}

/// A download: the named file from the store, or the reason it is refused.
fn serve_read(
    link: &mut Link<'_>,
    name: &str,
    store: &Store,
    settings: &Settings,
) -> Result<String> {
    let (mut file, size) = match store.open_file(name) {
        Ok(found) => found,
        Err(refused) => return refuse(link, &refused.text),
    };
    if let Err(e) = last_block(size, settings.block_size) {
        return refuse(link, &format!("'{name}': {e:#}"));
    }
    let t = told(link, |link| {
        Sender::new(link, &mut file, size, settings, &|_| {})?.run()
    })?;
    if let Some(grew) = super::grew(&file, size) {
        warn!("{}: '{}': {grew}", link.peer, printable(name));
    }
    Ok(t.summary(&format!("sent '{name}'"), super::SENT))
}

/// An upload: accepted with ACK 0 once its temporary file exists, or refused with why.
fn serve_write(
    link: &mut Link<'_>,
    name: &str,
    size: u64,
    store: &Store,
    settings: &Settings,
    budget: admit::Reservation,
) -> Result<String> {
    if let Err(e) = last_block(size, settings.block_size) {
        return refuse(link, &format!("'{name}': {e:#}"));
    }
    let target = match store.upload_path(name, size) {
        Ok(path) => path,
        Err(refused) => {
            tell(link, &refused.text);
            bail!("refused upload: {refused}");
        }
    };
    let partial = match Partial::create(&target, false) {
        Ok(partial) => partial,
        Err(e) => return refuse(link, &format!("{e:#}")),
    };
    let owner = admit::datagram_owner(link.sock, &link.peer);
    if let Err(refused) = partial.reserve_upload(name, size, owner) {
        return refuse(link, &refused.text);
    }
    link.send(&Packet::Ack { block: 0 })?;
    let max = size.min(store.max_file);
    let t = Receiver::new(link, partial, false, settings, max, &|_| {})
        .holding(budget)
        .run(None)?;
    Ok(t.summary(&format!("stored '{name}'"), super::STORED))
}

/// Downloads `name` over a datagram socket.
#[allow(clippy::too_many_arguments)]
pub(crate) fn get(
    sock: &DatagramSocket,
    server: &PeerAddr,
    name: &str,
    out: Download,
    (force, max_file): (bool, Option<u64>),
    settings: &Settings,
    timeout: Duration,
    retries: u32,
    progress: &dyn Fn(u64),
) -> Result<Transfer> {
    let nonce = handshake::random()?;
    let request = Packet::Read {
        version: settings.version,
        window: settings.window,
        block_size: settings.block_size,
        nonce,
        name,
    }
    .to_vec();
    let hello = handshake::start(sock, server, &request, nonce, settings, (timeout, retries))?;
    let mut link = Link::new(sock, hello.tid.clone(), settings);
    let first = handshake::prove(&mut link, &hello)?;
    if let Some(Packet::Error { message }) = Packet::decode(&first) {
        bail!("the server refused: {}", printable(message));
    }
    // The size comes only with the FIN: --max-file bounds the bytes as they come.
    let max = max_file.unwrap_or(u64::MAX);
    Receiver::new(&mut link, out, force, settings, max, progress).run(Some(first))
}

/// Uploads `file` (`size` bytes) as `name` over a datagram socket.
#[allow(clippy::too_many_arguments)]
pub(crate) fn put(
    sock: &DatagramSocket,
    server: &PeerAddr,
    file: &mut File,
    size: u64,
    name: &str,
    settings: &Settings,
    timeout: Duration,
    retries: u32,
    progress: &dyn Fn(u64),
) -> Result<Transfer> {
    last_block(size, settings.block_size)?;
    let nonce = handshake::random()?;
    let request = Packet::Write {
        version: settings.version,
        window: settings.window,
        block_size: settings.block_size,
        size,
        nonce,
        name,
    }
    .to_vec();
    let hello = handshake::start(sock, server, &request, nonce, settings, (timeout, retries))?;
    let mut link = Link::new(sock, hello.tid.clone(), settings);
    let first = handshake::prove(&mut link, &hello)?;
    match Packet::decode(&first) {
        Some(Packet::Ack { block: 0 }) => {}
        Some(Packet::Error { message }) => bail!("the server refused: {}", printable(message)),
        _ => bail!("the server answered the request with something unexpected"),
    }
    told(&mut link, |link| {
        Sender::new(link, file, size, settings, progress)?.run()
    })
}

/// A sending side's transfer, whose failure (a file that shrank, a read error) is told to
/// the receiver in an ERROR: without it, the receiver hears only silence, or an ICMP port
/// unreachable once the transfer socket closes, and would blame the network.
fn told(
    link: &mut Link<'_>,
    send: impl FnOnce(&mut Link<'_>) -> Result<Transfer>,
) -> Result<Transfer> {
    send(link).inspect_err(|e| tell(link, &format!("{e:#}")))
}

/// The log line for a finished or failed request.
pub(crate) fn log_request(peer: &PeerAddr, result: Result<String>) {
    match result {
        // The names in these lines are the client's: escaped, so the log stays one line each.
        Ok(done) => info!("{peer}: {}", printable(&done)),
        Err(e) => {
            // A refusal a forged source can cause at will: at most a line a second.
            static LOG: crate::logging::Throttle = crate::logging::Throttle::new();
            if let Some(more) = LOG.allow() {
                warn!("{peer}: {}{more}", printable(&format!("{e:#}")));
            }
        }
    }
}

mod cookie;
mod handshake;
pub(crate) use handshake::screen;
#[cfg(test)]
mod tests;
