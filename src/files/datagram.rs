//! Files over datagrams: nothing below delivers every datagram, once, in order, so this
//! protocol does (packets in `packet.rs`). The sender keeps up to `window` numbered blocks in
//! flight; the receiver acknowledges the highest block it has in order (cumulative ACK),
//! keeps early blocks of the window, and counts duplicates; on a timeout the sender sends
//! every unacknowledged block again (go-back-N) and doubles its timeout. A FIN with the
//! SHA-256 ends the transfer. Each transfer runs on a socket of its own (a TFTP "transfer
//! ID"), so the server's well-known socket only takes requests.

use std::collections::{BTreeMap, VecDeque};
use std::fs::File;
use std::io::{self, Read, Write};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use sha2::{Digest, Sha256};
use tracing::{debug, info, warn};

use std::os::fd::AsFd;

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

use crate::transport::{DatagramSocket, MAX_MESSAGE, PeerAddr, Received};

use super::impair::Impaired;
use super::packet::{DATA_HEADER, Packet};
use super::store::{Partial, Store};
use super::{Transfer, hex};

/// Data bytes per block by default: a block and its header fit a 1500-byte Ethernet frame.
pub const DEFAULT_BLOCK: u16 = 1408;
/// The largest window and block a server accepts (as the client's flags allow), and the most
/// data one transfer keeps in flight.
pub const MAX_WINDOW: u16 = 1024;
pub const MAX_BLOCK: u16 = 60_000;
const MAX_IN_FLIGHT: usize = 8 << 20;
/// The retransmission timeout before any round trip was measured.
const INITIAL_RTO: Duration = Duration::from_millis(200);
const MIN_RTO: Duration = Duration::from_millis(10);
const MAX_RTO: Duration = Duration::from_secs(2);
/// Timeouts in a row without progress before a transfer is given up.
const MAX_STALLS: u32 = 10;
/// The longest a transfer goes without progress, whatever else arrives: a peer that sends
/// junk (or the same packet) cannot hold a transfer, and its thread, open.
const NO_PROGRESS: Duration = Duration::from_secs(20);

/// How a side of a transfer behaves.
#[derive(Clone, Copy, Debug)]
pub struct Settings {
    pub window: u16,
    pub block_size: u16,
    pub drop: f64,
    pub reorder: f64,
    /// How long a receiver stays after its verdict to answer a repeated FIN (its FINACK may
    /// be lost). A server lingers in a thread of its own, so longer than any sender's RTO;
    /// a client that already holds its verified file, briefly.
    pub linger: Duration,
}

/// A server's linger: past the longest retransmission timeout, so a sender that lost the
/// FINACK hears it again.
pub const SERVER_LINGER: Duration = Duration::from_millis(4500);
/// A client's linger after a verified download.
pub const CLIENT_LINGER: Duration = Duration::from_millis(300);

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
}

/// One side of a transfer: a socket, its peer, simulated impairments.
pub struct Link<'a> {
    pub sock: &'a DatagramSocket,
    pub peer: PeerAddr,
    pub impaired: Impaired,
    buf: Vec<u8>,
}

impl<'a> Link<'a> {
    /// Asks for socket buffers that hold a whole window, within the kernel's limits
    /// (net.core.rmem_max).
    pub fn new(sock: &'a DatagramSocket, peer: PeerAddr, settings: &Settings) -> Link<'a> {
        let window_bytes = usize::from(settings.window.max(1))
            * (usize::from(settings.block_size) + DATA_HEADER)
            * 2;
        let _ = sock
            .socket()
            .set_recv_buffer_size(window_bytes.min(8 << 20));
        let _ = sock
            .socket()
            .set_send_buffer_size(window_bytes.min(8 << 20));
        Link {
            sock,
            peer,
            impaired: Impaired::new(settings.drop, settings.reorder),
            buf: vec![0u8; MAX_MESSAGE],
        }
    }

    fn send(&mut self, packet: &Packet<'_>) -> Result<()> {
        let bytes = packet.to_vec();
        match self.impaired.send(self.sock, &self.peer, &bytes) {
            // A Unix datagram peer that closed its socket refuses at once.
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                bail!("the peer went away (its socket is closed)")
            }
            sent => sent.context("sendto"),
        }
    }

    /// The next packet from the peer within `timeout` (its bytes stay in the link's buffer);
    /// `None` on timeout. Datagrams from anyone else are answered with an error and ignored.
    fn recv(&mut self, timeout: Duration) -> Result<Option<usize>> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            // Tried first without waiting, and poll(2) only when nothing is queued: one
            // system call per packet while data flows. Sends stay blocking, so a full
            // Unix datagram receiver slows the sender down instead of failing it.
            match self.sock.try_recv_from(&mut self.buf) {
                Ok((Received::Data(n), from)) if from == self.peer => return Ok(Some(n)),
                Ok((_, from)) => {
                    debug!("a datagram from {from}, not this transfer's peer; refused");
                    let refusal = Packet::Error {
                        message: "unknown transfer",
                    }
                    .to_vec();
                    let _ = self.sock.send_to(&refusal, &from);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if left.is_zero() {
                        self.impaired.release(self.sock, &self.peer)?;
                        return Ok(None);
                    }
                    let timeout = PollTimeout::try_from(left).unwrap_or(PollTimeout::MAX);
                    let mut fds = [PollFd::new(self.sock.as_fd(), PollFlags::POLLIN)];
                    match poll(&mut fds, timeout) {
                        Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                        Err(e) => return Err(e).context("poll"),
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                    bail!("the peer went away (ICMP port unreachable)")
                }
                Err(e) => return Err(e).context("recvfrom"),
            }
        }
    }

    fn packet(&self, n: usize) -> Option<Packet<'_>> {
        Packet::decode(&self.buf[..n])
    }
}

/// Sends `size` bytes of `file` as blocks, then the FIN; returns what it took.
pub fn send_file(
    link: &mut Link<'_>,
    file: &mut File,
    size: u64,
    settings: &Settings,
    progress: &dyn Fn(u64),
) -> Result<Transfer> {
    let start = Instant::now();
    let bs = settings.block_size as usize;
    let window = settings.window.max(1) as usize;
    // The last block is shorter than a full one, empty if the size is a multiple.
    let last =
        u32::try_from(size / bs as u64 + 1).context("file too large for 32-bit block numbers")?;
    let mut hash = Sha256::new();
    let mut t = Transfer::default();
    let mut rto = Rto::new();
    // Blocks in flight: number, data, when last sent, whether ever sent again (Karn).
    let mut flight: VecDeque<(u32, Vec<u8>, Instant, bool)> = VecDeque::new();
    let mut next = 1u32;
    let mut stalls = 0;
    let mut last_progress = Instant::now();
    let mut acked_bytes = 0u64;
    // Blocks allowed in flight: the asked window until a loss, then halved and grown back
    // (TCP's congestion window, simplified): a window that overflows the receiver's socket
    // buffer shrinks to what fits instead of losing the same blocks again and again.
    let mut cwnd = window as f64;
    let mut ssthresh = window as f64;
    // ACKs in a row that did not advance: three mean the oldest block was lost (fast
    // retransmit), without waiting for the timeout.
    let mut dup_acks = 0u32;
    loop {
        while next <= last && flight.len() < cwnd as usize {
            // Never past the size announced: a file that grows meanwhile still ends where
            // the receiver expects (a short last block), and the hash says if it changed.
            let offset = u64::from(next - 1) * bs as u64;
            let mut data = vec![0u8; (size.saturating_sub(offset)).min(bs as u64) as usize];
            let n = read_full(file, &mut data).context("read the file")?;
            data.truncate(n);
            hash.update(&data);
            link.send(&Packet::Data {
                block: next,
                data: &data,
            })?;
            t.blocks += 1;
            flight.push_back((next, data, Instant::now(), false));
            next += 1;
        }
        let Some(&(_, _, oldest, _)) = flight.front() else {
            break;
        };
        if last_progress.elapsed() > NO_PROGRESS {
            bail!("no block acknowledged for {NO_PROGRESS:?}; giving up");
        }
        let wait = (oldest + rto.rto).saturating_duration_since(Instant::now());
        match link.recv(wait)? {
            Some(n) => match link.packet(n) {
                Some(Packet::Ack { block }) if flight.front().is_some_and(|f| block >= f.0) => {
                    stalls = 0;
                    last_progress = Instant::now();
                    dup_acks = 0;
                    let mut advanced = 0.0;
                    while let Some(front) = flight.front() {
                        if front.0 > block {
                            break;
                        }
                        let (_, data, sent, again) = flight.pop_front().expect("front");
                        if !again {
                            rto.sample(sent.elapsed());
                        }
                        acked_bytes += data.len() as u64;
                        advanced += 1.0;
                    }
                    cwnd += if cwnd < ssthresh {
                        advanced
                    } else {
                        advanced / cwnd
                    };
                    cwnd = cwnd.min(window as f64);
                    progress(acked_bytes);
                }
                Some(Packet::Ack { .. }) => {
                    t.duplicates += 1;
                    dup_acks += 1;
                    if dup_acks == 3
                        && let Some((block, data, sent, again)) = flight.front_mut()
                    {
                        debug!("three duplicate ACKs: sending block {block} again");
                        link.send(&Packet::Data {
                            block: *block,
                            data,
                        })?;
                        *sent = Instant::now();
                        *again = true;
                        t.retransmitted += 1;
                        t.blocks += 1;
                        ssthresh = (cwnd / 2.0).max(1.0);
                        cwnd = ssthresh;
                    }
                }
                Some(Packet::Error { message }) => bail!("the peer gave up: {message}"),
                _ => debug!("ignored an unexpected packet"),
            },
            None => {
                stalls += 1;
                if stalls > MAX_STALLS {
                    bail!("the peer stopped answering ({MAX_STALLS} timeouts in a row)");
                }
                rto.back_off();
                ssthresh = (cwnd / 2.0).max(1.0);
                cwnd = 1.0;
                dup_acks = 0;
                debug!(
                    "timeout: sending {} blocks again from block {}",
                    flight.len(),
                    flight[0].0
                );
                for (block, data, sent, again) in flight.iter_mut() {
                    link.send(&Packet::Data {
                        block: *block,
                        data,
                    })?;
                    *sent = Instant::now();
                    *again = true;
                    t.retransmitted += 1;
                    t.blocks += 1;
                }
            }
        }
    }
    let sha256: [u8; 32] = hash.finalize().into();
    let fin = Packet::Fin {
        size,
        sha256,
        blocks: t.blocks,
        retransmitted: t.retransmitted,
    };
    for attempt in 0..=MAX_STALLS {
        if attempt > 0 {
            rto.back_off();
        }
        link.send(&fin)?;
        if let Some(n) = link.recv(rto.rto)? {
            match link.packet(n) {
                Some(Packet::FinAck { ok: true }) => {
                    t.bytes = size;
                    t.elapsed = start.elapsed();
                    t.dropped = link.impaired.dropped;
                    return Ok(t);
                }
                Some(Packet::FinAck { ok: false }) => {
                    bail!("the receiver's SHA-256 does not match")
                }
                Some(Packet::Error { message }) => bail!("the peer gave up: {message}"),
                _ => {}
            }
        }
    }
    bail!("no answer to the final hash check")
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

/// Receives blocks into `partial` until the FIN, which it checks; the verified file is
/// committed before the sender hears it is done. `first` is a packet already received (the
/// client's first DATA).
pub fn receive_file(
    link: &mut Link<'_>,
    partial: Partial,
    overwrite: bool,
    settings: &Settings,
    max: u64,
    first: Option<Vec<u8>>,
    progress: &dyn Fn(u64),
) -> Result<Transfer> {
    let mut partial = Some(partial);
    let start = Instant::now();
    let bs = settings.block_size as usize;
    let window = settings.window.max(1) as u32;
    let mut t = Transfer::default();
    let mut hash = Sha256::new();
    let mut expected = 1u32;
    let mut early: BTreeMap<u32, Vec<u8>> = BTreeMap::new();
    let mut got = 0u64;
    let mut complete = false;
    let mut stalls = 0;
    let mut pending = first;
    let patience = Duration::from_millis(500);
    let mut last_progress = Instant::now();
    loop {
        let bytes = match pending.take() {
            Some(bytes) => bytes,
            None => match link.recv(patience)? {
                Some(n) => link.buf[..n].to_vec(),
                None => {
                    stalls += 1;
                    if stalls > MAX_STALLS {
                        bail!(
                            "the sender stopped sending ({MAX_STALLS} timeouts in a row, {got} bytes in)"
                        );
                    }
                    // Our last ACK may have been lost: say again where we are.
                    link.send(&Packet::Ack {
                        block: expected - 1,
                    })?;
                    continue;
                }
            },
        };
        stalls = 0;
        if last_progress.elapsed() > NO_PROGRESS {
            bail!("no new block for {NO_PROGRESS:?} ({got} bytes in); giving up");
        }
        match Packet::decode(&bytes) {
            Some(Packet::Data { block, data }) => {
                if data.len() > bs {
                    bail!("a {}-byte block is larger than the agreed {bs}", data.len());
                }
                if block == expected && !complete {
                    last_progress = Instant::now();
                    let mut data = data.to_vec();
                    loop {
                        got += data.len() as u64;
                        if got > max {
                            link.send(&Packet::Error {
                                message: "file over the size limit",
                            })?;
                            bail!("the file is over the {max}-byte limit");
                        }
                        hash.update(&data);
                        let out = &mut partial.as_mut().context("already committed")?.file;
                        out.write_all(&data).context("write the file")?;
                        complete = data.len() < bs;
                        expected += 1;
                        match early.remove(&expected) {
                            Some(next) if !complete => data = next,
                            _ => break,
                        }
                    }
                    t.blocks += 1;
                    progress(got);
                } else if block > expected && block < expected + window && !complete {
                    if early.insert(block, data.to_vec()).is_some() {
                        t.duplicates += 1;
                    }
                } else {
                    t.duplicates += 1;
                }
                link.send(&Packet::Ack {
                    block: expected - 1,
                })?;
            }
            Some(Packet::Fin {
                size,
                sha256,
                blocks,
                retransmitted,
            }) if complete => {
                let actual: [u8; 32] = hash.clone().finalize().into();
                let ok = size == got && sha256 == actual;
                if ok
                    && let Some(partial) = partial.take()
                    && let Err(e) = partial.commit(overwrite)
                {
                    // The sender hears why, instead of waiting for a FINACK.
                    let message = format!("{e:#}");
                    let _ = link.send(&Packet::Error { message: &message });
                    return Err(e);
                }
                link.send(&Packet::FinAck { ok })?;
                if !ok {
                    bail!(
                        "SHA-256 mismatch: the sender says {} ({size} bytes), the data received is {} ({got} bytes)",
                        hex(&sha256),
                        hex(&actual)
                    );
                }
                t.bytes = got;
                t.elapsed = start.elapsed();
                // Linger: if our FINACK is lost, the sender sends FIN again. The file is
                // verified and in place, so nothing that goes wrong now is an error.
                if let Err(e) = dally(link, &Packet::FinAck { ok }, settings.linger) {
                    debug!("after the transfer: {e:#}");
                }
                t.blocks = blocks;
                t.retransmitted = retransmitted;
                t.dropped = link.impaired.dropped;
                return Ok(t);
            }
            Some(Packet::Error { message }) => bail!("the peer gave up: {message}"),
            _ => debug!("ignored an unexpected packet"),
        }
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

/// Serves one request that came to the well-known socket, on a socket of its own.
pub fn serve_request(
    sock: &DatagramSocket,
    peer: PeerAddr,
    request: &[u8],
    store: &Store,
    impair: (f64, f64),
) -> Result<String> {
    let Some(packet) = Packet::decode(request) else {
        bail!("not a file request");
    };
    let (window, block_size) = match packet {
        Packet::Read {
            window, block_size, ..
        }
        | Packet::Write {
            window, block_size, ..
        } => (window, block_size),
        _ => bail!("not a file request"),
    };
    // What a client asks for is bounded here, not only by the client's own flags: a window
    // holds window × block size bytes in memory on both sides, and sends that much at once.
    let block_size = block_size.clamp(1, MAX_BLOCK);
    let fits = u16::try_from(MAX_IN_FLIGHT / usize::from(block_size)).unwrap_or(u16::MAX);
    let window = window.clamp(1, MAX_WINDOW).min(fits);
    let settings = Settings {
        window: window.max(1),
        block_size,
        drop: impair.0,
        reorder: impair.1,
        linger: SERVER_LINGER,
    };
    let mut link = Link::new(sock, peer, &settings);
    match packet {
        Packet::Read { name, .. } => {
            let (mut file, size) = match store.open_file(name) {
                Ok(found) => found,
                Err(refused) => {
                    link.send(&Packet::Error {
                        message: &refused.0,
                    })?;
                    bail!("refused: {refused}");
                }
            };
            let t = send_file(&mut link, &mut file, size, &settings, &|_| {})?;
            Ok(t.summary(&format!("sent '{name}'")))
        }
        Packet::Write { name, size, .. } => {
            let target = match store.upload_path(name, size) {
                Ok(path) => path,
                Err(refused) => {
                    link.send(&Packet::Error {
                        message: &refused.0,
                    })?;
                    bail!("refused upload: {refused}");
                }
            };
            let partial = match Partial::create(&target, false) {
                Ok(partial) => partial,
                Err(e) => {
                    let message = format!("{e:#}");
                    let _ = link.send(&Packet::Error { message: &message });
                    return Err(e);
                }
            };
            link.send(&Packet::Ack { block: 0 })?;
            let t = receive_file(
                &mut link,
                partial,
                false,
                &settings,
                size.min(store.max_file),
                None,
                &|_| {},
            )?;
            Ok(t.summary(&format!("stored '{name}'")))
        }
        _ => unreachable!("checked above"),
    }
}

/// Sends `request` to the server's well-known address until the first answer comes from
/// the transfer's own address; returns that address and the answer.
fn start(
    sock: &DatagramSocket,
    server: &PeerAddr,
    request: &[u8],
    settings: &Settings,
    timeout: Duration,
    retries: u32,
) -> Result<(PeerAddr, Vec<u8>)> {
    let mut impaired = Impaired::new(settings.drop, settings.reorder);
    let mut buf = vec![0u8; MAX_MESSAGE];
    for attempt in 0..=retries {
        if attempt > 0 {
            debug!("no answer to the request; sending it again ({attempt} of {retries})");
        }
        impaired.send(sock, server, request).context("sendto")?;
        let deadline = Instant::now() + timeout;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            sock.set_read_timeout(Some(left.max(Duration::from_millis(1))))?;
            match sock.recv_from(&mut buf) {
                Ok((Received::Data(n), from)) => return Ok((from, buf[..n].to_vec())),
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                    bail!(
                        "nothing is listening there (ICMP port unreachable); is the server running with --files?"
                    )
                }
                Err(e) => return Err(e).context("recvfrom"),
            }
        }
    }
    Err(anyhow!(
        "no answer from the server after {} tries",
        retries + 1
    ))
}

/// Downloads `name` over a datagram socket.
#[allow(clippy::too_many_arguments)]
pub fn get(
    sock: &DatagramSocket,
    server: &PeerAddr,
    name: &str,
    out: &std::path::Path,
    force: bool,
    settings: &Settings,
    timeout: Duration,
    retries: u32,
    progress: &dyn Fn(u64),
) -> Result<Transfer> {
    let partial = Partial::create(out, force)?;
    let request = Packet::Read {
        window: settings.window,
        block_size: settings.block_size,
        name,
    }
    .to_vec();
    let (tid, first) = start(sock, server, &request, settings, timeout, retries)?;
    if let Some(Packet::Error { message }) = Packet::decode(&first) {
        bail!("the server refused: {message}");
    }
    let mut link = Link::new(sock, tid, settings);
    receive_file(
        &mut link,
        partial,
        force,
        settings,
        u64::MAX,
        Some(first),
        progress,
    )
}

/// Uploads `file` (`size` bytes) as `name` over a datagram socket.
#[allow(clippy::too_many_arguments)]
pub fn put(
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
    let request = Packet::Write {
        window: settings.window,
        block_size: settings.block_size,
        size,
        name,
    }
    .to_vec();
    let (tid, first) = start(sock, server, &request, settings, timeout, retries)?;
    match Packet::decode(&first) {
        Some(Packet::Ack { block: 0 }) => {}
        Some(Packet::Error { message }) => bail!("the server refused: {message}"),
        _ => bail!("the server answered the request with something unexpected"),
    }
    let mut link = Link::new(sock, tid, settings);
    send_file(&mut link, file, size, settings, progress)
}

/// The log line for a finished or failed request.
pub fn log_request(peer: &PeerAddr, result: Result<String>) {
    match result {
        Ok(done) => info!("{peer}: {done}"),
        Err(e) => warn!("{peer}: {e:#}"),
    }
}

/// Bytes of a DATA packet with `block_size` data bytes: must fit one datagram.
pub fn datagram_size(block_size: u16) -> usize {
    DATA_HEADER + block_size as usize
}
