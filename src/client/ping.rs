//! `netecho ping HOST`: ICMP (IPv4) or ICMPv6 echo requests, a line per reply with its
//! size, sequence number, TTL and round-trip time, and the summary ping users know. It uses
//! a raw socket when it may and the unprivileged ICMP datagram socket when it may not.

use std::collections::VecDeque;
use std::io::{self, Write};
use std::net::{SocketAddr, ToSocketAddrs};
use std::os::fd::AsFd;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Result, anyhow};
use tracing::debug;

use crate::error::{Call, Subject, UsageError, socket_error};
use crate::packet::{icmp, ipv4};
use crate::signal::{Shutdown, Wake};
use crate::transport::MAX_MESSAGE;
use crate::transport::icmp::{IcmpError, IcmpKind, IcmpSocket};

/// The largest -s: an IPv4 packet of 65,535 bytes less the 20-byte IP header and the 8-byte
/// ICMP header. Over IPv6 (no IP header in the 16-bit length) 20 bytes more would fit.
pub(crate) const MAX_SIZE_V4: usize = 65_507;
pub(crate) const MAX_SIZE_V6: usize = 65_527;

/// The shortest -i: a request a millisecond, with the replies read between requests. Below
/// it the requests are a flood; iputils' ping refuses under 2 ms to users and paces a flood
/// (-f) by the replies, which netecho does not offer.
pub(crate) const MIN_INTERVAL: Duration = Duration::from_millis(1);

/// Messages read from the socket at a time before the signals and the schedule are looked
/// at again: other programs' ICMP arriving faster than ping reads cannot hold it.
const READS_AT_A_TIME: usize = 64;

/// Round trips measured, for the summary.
#[derive(Debug, Default)]
pub(crate) struct Summary {
    pub transmitted: u64,
    pub received: u64,
    /// Replies to a request already answered (ping's "+N duplicates").
    pub duplicates: u64,
    /// Replies whose data is not the request's: not echoes.
    pub wrong: u64,
    /// ICMP errors quoting a request (unreachable, time exceeded).
    pub errors: u64,
    /// Requests the kernel refused to send (a firewall's EPERM): counted among the requests
    /// made and lost, as iputils' ping counts them, and named as the reason.
    pub refused: u64,
    /// The last refusal, in words, for the closing message.
    last_refusal: Option<String>,
    /// The last error's line, for the closing message.
    last_error: Option<String>,
    rtts_ms: Vec<f64>,
    /// ICMP messages the kernel dropped at this ping's own full receive buffer (the count
    /// SO_RXQ_OVFL reports): replies among them are lost on this host, not on the path.
    pub dropped_here: u64,
}

impl Summary {
    /// The requests made: those sent and those this host refused to send. "% packet loss"
    /// is of them, so a path a firewall here blocks reads as lost, not clean.
    pub(crate) fn requests(&self) -> u64 {
        self.transmitted + self.refused
    }

    pub(crate) fn loss_percent(&self) -> f64 {
        let requests = self.requests();
        if requests == 0 {
            return 0.0;
        }
        requests.saturating_sub(self.received) as f64 * 100.0 / requests as f64
    }

    /// min, avg, max and mdev (the standard deviation, as ping computes it) in milliseconds.
    pub(crate) fn rtt(&self) -> Option<(f64, f64, f64, f64)> {
        if self.rtts_ms.is_empty() {
            return None;
        }
        let n = self.rtts_ms.len() as f64;
        let min = self.rtts_ms.iter().copied().fold(f64::INFINITY, f64::min);
        let max = self.rtts_ms.iter().copied().fold(0.0, f64::max);
        let avg = self.rtts_ms.iter().sum::<f64>() / n;
        let sq = self.rtts_ms.iter().map(|r| r * r).sum::<f64>() / n;
        Some((min, avg, max, (sq - avg * avg).max(0.0).sqrt()))
    }

    /// The two summary lines.
    pub(crate) fn lines(&self, host: &str, elapsed: Duration) -> String {
        let loss = self.loss_percent();
        let loss = if loss.fract() == 0.0 {
            format!("{loss:.0}")
        } else {
            format!("{loss:.1}")
        };
        let mut more = String::new();
        for (n, what) in [
            (self.duplicates, "duplicates"),
            (self.wrong, "wrong data"),
            (self.errors, "errors"),
            (self.refused, "refused by this host"),
        ] {
            if n > 0 {
                more.push_str(&format!(", +{n} {what}"));
            }
        }
        let mut text = format!(
            "--- {host} ping statistics ---\n{} packets transmitted, {} received{more}, \
             {loss}% packet loss, time {}ms\n",
            self.requests(),
            self.received,
            elapsed.as_millis()
        );
        if let Some((min, avg, max, mdev)) = self.rtt() {
            text.push_str(&format!(
                "rtt min/avg/max/mdev = {min:.3}/{avg:.3}/{max:.3}/{mdev:.3} ms\n"
            ));
        }
        let dropped = self.dropped_here;
        if dropped > 0 && self.received < self.transmitted {
            let were = if dropped == 1 {
                "message was"
            } else {
                "messages were"
            };
            text.push_str(&format!(
                "{dropped} ICMP {were} dropped at this ping's own full receive buffer \
                 (SO_RXQ_OVFL): the lost replies may be among them, lost on this host and not \
                 on the path\n"
            ));
        }
        text
    }
}

/// The address to ping: an IP (brackets allowed) or a host name, its first address.
fn target(host: &str) -> Result<SocketAddr> {
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if let Some(addr) = crate::endpoint::ip_host(bare)? {
        return match addr {
            SocketAddr::V6(v6) if v6.ip().is_unicast_link_local() && v6.scope_id() == 0 => {
                Err(UsageError::new(format!(
                    "{bare} is link-local: every interface has its fe80:: network, so name the \
                     one to ping through with a zone, such as {bare}%eth0 (`ip -br link` lists \
                     them)"
                ))
                .into())
            }
            addr if addr.ip().to_canonical().is_multicast() => Err(group(addr.ip()).into()),
            addr => Ok(addr),
        };
    }
    let valid = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
    if !valid {
        return Err(UsageError::new(format!(
            "'{host}' is not an IP address or a host name; ping takes a host alone, such as \
             127.0.0.1, ::1 or localhost (no port, no URL)"
        ))
        .into());
    }
    (host, 0)
        .to_socket_addrs()
        .map_err(|e| anyhow!("cannot resolve '{host}': {e}; check the spelling, or give an IP"))?
        .find(crate::endpoint::family_allows)
        .ok_or_else(|| match crate::endpoint::family_flag() {
            "-6" => anyhow!(
                "cannot resolve '{host}' to an IPv6 address, as -6 asks: it has only IPv4 \
                 ones; ping ::1 (or another IPv6 address), or leave -6 out"
            ),
            "-4" => anyhow!(
                "cannot resolve '{host}' to an IPv4 address, as -4 asks: it has only IPv6 \
                 ones; ping 127.0.0.1 (or another IPv4 address), or leave -4 out"
            ),
            _ => anyhow!("cannot resolve '{host}': it has no address"),
        })
}

/// Refusal of a group: ping counts replies from the host it sent to, and a group's members
/// answer from their own addresses (if at all).
fn group(ip: std::net::IpAddr) -> UsageError {
    let how = match ip {
        std::net::IpAddr::V4(_) => {
            "and Linux hosts ignore group echoes by default (net.ipv4.icmp_echo_ignore_broadcasts)"
        }
        std::net::IpAddr::V6(_) => "never from the group's",
    };
    UsageError::new(format!(
        "ping sends to one host; {ip} is a multicast group: members answer from their own \
         addresses, {how}; ping a member, or ask the group with `netecho send --iface NAME \
         udp://GROUP:PORT`"
    ))
}

/// A reply that belongs to this ping.
struct Reply {
    seq: u16,
    bytes: usize,
    ttl: Option<u8>,
    /// When the kernel received it (SO_TIMESTAMPNS), on the wall clock.
    stamp: Option<SystemTime>,
    /// Its data is the request's, byte for byte: an echo.
    echoed: bool,
}

/// Sequence numbers, one bit each (all 65,536 of them in 8 KiB).
struct Seqs(Vec<u64>);

impl Seqs {
    fn new() -> Seqs {
        Seqs(vec![0; 1 << 10])
    }

    fn set(&mut self, seq: u16, on: bool) {
        let (word, bit) = (usize::from(seq) / 64, seq % 64);
        match on {
            true => self.0[word] |= 1 << bit,
            false => self.0[word] &= !(1 << bit),
        }
    }

    fn has(&self, seq: u16) -> bool {
        self.0[usize::from(seq) / 64] & (1 << (seq % 64)) != 0
    }
}

/// What an ICMP error says, as ping prints it.
fn error_text(v6: bool, kind: u8, code: u8) -> String {
    let text = match (v6, kind, code) {
        (false, 3, 0) => "Destination Net Unreachable",
        (false, 3, 1) => "Destination Host Unreachable",
        (false, 3, 2) => "Destination Protocol Unreachable",
        (false, 3, 3) => "Destination Port Unreachable",
        (false, 3, 4) => "Frag needed and DF set",
        (false, 3, 9 | 10 | 13) => "Communication administratively prohibited",
        (false, 11, 0) => "Time to live exceeded",
        (false, 11, 1) => "Frag reassembly time exceeded",
        (true, 1, 0) => "Destination unreachable: No route",
        (true, 1, 1) => "Destination unreachable: Administratively prohibited",
        (true, 1, 3) => "Destination unreachable: Address unreachable",
        (true, 1, 4) => "Destination unreachable: Port unreachable",
        (true, 2, _) => "Packet too big",
        (true, 3, 0) => "Time exceeded: Hop limit",
        (true, 3, _) => "Time exceeded: Defragmentation failure",
        _ => return format!("ICMP error type {kind} code {code}"),
    };
    text.to_string()
}

/// What `ping` sends, to whom, and for how long.
pub(crate) struct PingConfig {
    /// An IPv4 or IPv6 address, or a name (its first address).
    pub host: String,
    /// Stop after this many requests; without it, at Ctrl-C.
    pub count: Option<u64>,
    /// Time between requests.
    pub interval: Duration,
    /// Data bytes per request, after the 8-byte ICMP header.
    pub size: u32,
    /// How long to wait for each reply; a later one counts as lost.
    pub timeout: Duration,
    /// Only the summary, as ping -q: no line per reply.
    pub quiet: bool,
}

pub(crate) fn run(args: PingConfig) -> Result<()> {
    let to = target(&args.host)?;
    check_size(to, args.size)?;
    check_interval(args.interval)?;
    // Before the socket, so Ctrl-C during the run ends in the summary, as with ping.
    let shutdown = Shutdown::install()?;
    let sock = crate::transport::icmp::open(to)?;
    sock.set_nonblocking(true)?;
    let mut out = io::stdout().lock();
    announce(&mut out, &args.host, to, args.size, sock.kind)?;
    let schedule = Schedule {
        count: args.count,
        interval: args.interval,
        timeout: args.timeout,
    };
    let mut pinger = Pinger::new(sock, to, args.size, schedule);
    match args.quiet {
        true => pinger.run(&shutdown, &mut io::sink())?,
        false => pinger.run(&shutdown, &mut out)?,
    }
    // Read now, so drops after the last reply read count too.
    pinger.summary.dropped_here = pinger.sock.drops().map_or(0, u64::from);
    conclude(
        &mut out,
        &args.host,
        to,
        &pinger.summary,
        pinger.started.elapsed(),
    )
}

/// -s within what one echo request to `to` can carry.
fn check_size(to: SocketAddr, size: u32) -> Result<()> {
    let max = if to.is_ipv6() {
        MAX_SIZE_V6
    } else {
        MAX_SIZE_V4
    };
    if size as usize > max {
        return Err(UsageError::new(format!(
            "-s {size}: an ICMP echo to {} carries at most {max} data bytes",
            to.ip()
        ))
        .into());
    }
    Ok(())
}

/// -i no shorter than [`MIN_INTERVAL`].
fn check_interval(interval: Duration) -> Result<()> {
    if interval >= MIN_INTERVAL {
        return Ok(());
    }
    let nanos = interval.as_nanos();
    let shown = match nanos % 1000 {
        0 => format!("{}us", nanos / 1000),
        _ => format!("{nanos}ns"),
    };
    Err(UsageError::new(format!(
        "-i {shown}: ping sends at most one request a millisecond, so that it reads the \
         replies between its requests; give -i 1ms or more"
    ))
    .into())
}

/// The first line: what is pinged, how much, and through which kind of socket.
fn announce(
    out: &mut impl Write,
    host: &str,
    to: SocketAddr,
    size: u32,
    kind: IcmpKind,
) -> Result<()> {
    let how = match kind {
        IcmpKind::Raw => "raw socket",
        IcmpKind::Datagram => "ICMP datagram socket (no CAP_NET_RAW)",
    };
    writeln!(out, "PING {host} ({}): {size} data bytes, {how}", to.ip())
        .and_then(|_| out.flush())
        .map_err(crate::error::stdout_write)
}

/// The summary; an error when nothing answered.
fn conclude(
    out: &mut impl Write,
    host: &str,
    to: SocketAddr,
    summary: &Summary,
    elapsed: Duration,
) -> Result<()> {
    writeln!(out)?;
    write!(out, "{}", summary.lines(host, elapsed))?;
    out.flush().map_err(crate::error::stdout_write)?;
    if summary.received == 0
        && let Some(last) = &summary.last_error
    {
        return Err(anyhow!(
            "no echo reply from {}: the network answered with {} ICMP error(s) instead (the \
             last: {last}); the lines above say where the requests stopped",
            to.ip(),
            summary.errors
        ));
    }
    if summary.received == 0 && summary.wrong > 0 {
        return Err(anyhow!(
            "no echo reply from {}: {} reply(ies) carried other data than the request, so \
             they are not echoes; something on the way, or the host, rewrites them",
            to.ip(),
            summary.wrong
        ));
    }
    if summary.received == 0
        && let Some(last) = &summary.last_refusal
    {
        return Err(anyhow!(
            "no echo reply from {}: {} of {} echo request(s) never went out (the last: {last})",
            to.ip(),
            summary.refused,
            summary.requests()
        ));
    }
    if summary.received == 0 && summary.dropped_here > 0 {
        return Err(anyhow!(
            "no reply read from {}: this ping's own receive buffer overflowed ({} ICMP \
             message(s) dropped there), so the replies may have come and been dropped on this \
             host; ping again, when this process is not held up and no ICMP flood comes in",
            to.ip(),
            summary.dropped_here
        ));
    }
    if summary.received == 0 {
        return Err(anyhow!(
            "no reply from {}: {} echo request(s) lost (is the host up, and does it answer \
             ICMP echo? A firewall may drop them)",
            to.ip(),
            summary.transmitted
        ));
    }
    Ok(())
}

/// When requests go and how long each waits: -c, -i and -W.
#[derive(Clone, Copy, Debug)]
struct Schedule {
    count: Option<u64>,
    interval: Duration,
    timeout: Duration,
}

/// When a request was sent, on both clocks: the monotonic one, for -W and the schedule,
/// and the wall clock (CLOCK_REALTIME), which the kernel's receive times are read on.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Sent {
    at: Instant,
    wall: SystemTime,
}

impl Sent {
    /// Now; the monotonic clock read first, so that a wall-clock round trip is never the
    /// longer of the two unless the wall clock stepped.
    fn now() -> Sent {
        let at = Instant::now();
        Sent {
            at,
            wall: SystemTime::now(),
        }
    }

    /// The round trip of a reply read now that the kernel received at `stamp`: up to that
    /// stamp, as iputils' ping measures, so the time this process took to wake and read it is
    /// left out. Up to now on the monotonic clock (as `ping -U`) when no stamp came, or when
    /// the wall clock stepped between the send and the reply (the stamp falls before the send,
    /// or after now). The second value says whether the kernel's stamp was used.
    fn round_trip(&self, stamp: Option<SystemTime>) -> (Duration, bool) {
        let read = self.at.elapsed();
        let kernel = stamp.and_then(|stamp| stamp.duration_since(self.wall).ok());
        match kernel.filter(|rtt| *rtt <= read) {
            Some(rtt) => (rtt, true),
            None => (read, false),
        }
    }
}

/// Requests waiting for their reply, oldest first. Sequence numbers go up by one a request,
/// so a reply's place is its number less the oldest's, and the oldest is the first to be
/// given up: each step costs the same however many wait. At most 65,536, one per number.
#[derive(Default)]
struct InFlight(VecDeque<(u16, Option<Sent>)>);

impl InFlight {
    /// A request just sent; its number follows the last one's.
    fn push(&mut self, seq: u16, sent: Sent) {
        // The number came round again: the request that had it is given up.
        if self.0.len() == 1 << 16 {
            self.0.pop_front();
            self.forget_answered();
        }
        self.0.push_back((seq, Some(sent)));
    }

    /// When request `seq` was sent, if it is still waiting; it waits no more.
    fn take(&mut self, seq: u16) -> Option<Sent> {
        let oldest = self.0.front()?.0;
        let sent = self
            .0
            .get_mut(usize::from(seq.wrapping_sub(oldest)))?
            .1
            .take();
        self.forget_answered();
        sent
    }

    /// Gives up the requests sent `timeout` or longer before `now`.
    fn expire(&mut self, now: Instant, timeout: Duration) {
        while let Some((_, sent)) = self.0.front() {
            if sent.is_some_and(|sent| now.duration_since(sent.at) < timeout) {
                return;
            }
            self.0.pop_front();
        }
    }

    /// Keeps the oldest entry a waiting request.
    fn forget_answered(&mut self) {
        while self.0.front().is_some_and(|(_, sent)| sent.is_none()) {
            self.0.pop_front();
        }
    }

    /// When the oldest waiting request was sent.
    fn oldest(&self) -> Option<Instant> {
        self.0.front().and_then(|(_, sent)| sent.map(|s| s.at))
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// One ping run: requests sent on schedule, replies matched to them, one poll for both
/// the socket and the signals.
struct Pinger {
    sock: IcmpSocket,
    to: SocketAddr,
    schedule: Schedule,
    id: u16,
    data: Vec<u8>,
    started: Instant,
    summary: Summary,
    in_flight: InFlight,
    /// Requests sent, and those answered (a second answer is a duplicate).
    sent: Seqs,
    answered: Seqs,
    next_send: Instant,
    seq: u16,
    buf: Vec<u8>,
}

impl Pinger {
    fn new(sock: IcmpSocket, to: SocketAddr, size: u32, schedule: Schedule) -> Pinger {
        let started = Instant::now();
        Pinger {
            sock,
            to,
            schedule,
            id: std::process::id() as u16,
            // A pattern, so a reply's data can be told from another ping's.
            data: (0..size).map(|i| (i % 256) as u8).collect(),
            started,
            summary: Summary::default(),
            in_flight: InFlight::default(),
            sent: Seqs::new(),
            answered: Seqs::new(),
            next_send: started,
            seq: 0,
            buf: vec![0u8; MAX_MESSAGE],
        }
    }

    /// Sends and receives until the count is sent and answered (or timed out), or a signal.
    /// Between any two requests it looks at the signals and reads the replies, even when
    /// the next request is already due.
    fn run(&mut self, shutdown: &Shutdown, out: &mut impl Write) -> Result<()> {
        loop {
            let now = Instant::now();
            // A request unanswered within -W is lost.
            self.in_flight.expire(now, self.schedule.timeout);
            if !self.done_sending() && now >= self.next_send {
                self.send_request(now, out)?;
            }
            // Checked after the send: a last request refused leaves nothing to wait for.
            if self.done_sending() && self.in_flight.is_empty() {
                return Ok(());
            }
            let wait = self.wait(Instant::now());
            if let Wake::Stop(signal) = shutdown.wait(self.sock.as_fd(), Some(wait))? {
                debug!("stopped by {}", signal.as_str());
                return Ok(());
            }
            self.take_replies(out)?;
        }
    }

    fn done_sending(&self) -> bool {
        self.schedule
            .count
            .is_some_and(|c| self.summary.requests() >= c)
    }

    fn send_request(&mut self, now: Instant, out: &mut impl Write) -> Result<()> {
        self.seq = self.seq.wrapping_add(1);
        let message = icmp::echo_request(self.sock.v6, self.id, self.seq, &self.data);
        // Read just before the send: the round trip starts as the request leaves.
        let sent = Sent::now();
        if let Err(e) = self.sock.send(&message) {
            let line = socket_error(Call::Send, Subject::ip(self.to.ip().to_string()), &e);
            writeln!(out, "{line}")?;
            // Never sent: not in flight, but lost all the same (the summary says why).
            self.summary.refused += 1;
            self.summary.last_refusal = Some(line.to_string());
            self.next_send = (self.next_send + self.schedule.interval).max(now);
            return Ok(());
        }
        self.summary.transmitted += 1;
        self.in_flight.push(self.seq, sent);
        self.sent.set(self.seq, true);
        self.answered.set(self.seq, false);
        // Behind schedule (the process was held up), the next request goes now, not a burst
        // of the ones missed: as iputils' ping, it never tries to catch up.
        self.next_send = (self.next_send + self.schedule.interval).max(now);
        Ok(())
    }

    /// How long to wait for a reply: until the next request is due or the oldest one is
    /// given up.
    fn wait(&self, now: Instant) -> Duration {
        let timeout = self.schedule.timeout;
        let mut wait = self.in_flight.oldest().map_or(timeout, |sent| {
            (sent + timeout).saturating_duration_since(now)
        });
        if !self.done_sending() {
            wait = wait.min(self.next_send.saturating_duration_since(now));
        }
        // poll(2) counts whole milliseconds: rounded down, a wait under one would spin.
        Duration::from_millis(wait.as_micros().div_ceil(1000) as u64)
    }

    /// Prints a line for every reply and ICMP error waiting on the socket that answers a
    /// request of this ping, up to [`READS_AT_A_TIME`] messages.
    fn take_replies(&mut self, out: &mut impl Write) -> Result<()> {
        for _ in 0..READS_AT_A_TIME {
            let line = if let Some(error) = self.sock.recv_error(&mut self.buf)? {
                self.on_error(error)
            } else {
                match read_reply(&self.sock, &mut self.buf, self.id, &self.data)? {
                    Read::Empty => return Ok(()),
                    Read::Other => None,
                    Read::Reply(got) => self.on_reply(got),
                }
            };
            if let Some(line) = line {
                writeln!(out, "{line}")
                    .and_then(|_| out.flush())
                    .map_err(crate::error::stdout_write)?;
            }
        }
        Ok(())
    }

    /// The line for an ICMP error quoting one of our requests; the request is over.
    fn on_error(&mut self, error: IcmpError) -> Option<String> {
        // A datagram socket's identifier is the kernel's, which delivers only its own.
        let ours = self.sock.kind == IcmpKind::Datagram || error.id == self.id;
        if !ours || !self.sent.has(error.seq) {
            debug!(
                "passed over an ICMP error quoting id {} seq {}",
                error.id, error.seq
            );
            return None;
        }
        self.in_flight.take(error.seq);
        self.summary.errors += 1;
        let line = format!(
            "From {} icmp_seq={} {}",
            error.from,
            error.seq,
            error_text(self.sock.v6, error.kind, error.code)
        );
        self.summary.last_error = Some(line.clone());
        Some(line)
    }

    /// The line for a reply: an echo, a duplicate, or one whose data is not the request's.
    fn on_reply(&mut self, got: Reply) -> Option<String> {
        let ttl = got.ttl.map(|t| format!(" ttl={t}")).unwrap_or_default();
        let head = format!(
            "{} bytes from {}: icmp_seq={}{ttl}",
            got.bytes,
            self.to.ip(),
            got.seq
        );
        if !self.sent.has(got.seq) {
            debug!("a reply to icmp_seq={}, never sent", got.seq);
            return None;
        }
        if !got.echoed {
            self.summary.wrong += 1;
            let sent = self.data.len() + icmp::HEADER_LEN;
            return Some(format!("{head} (wrong data: not the {sent} bytes sent)"));
        }
        if self.answered.has(got.seq) {
            self.summary.duplicates += 1;
            return Some(format!("{head} (DUP!)"));
        }
        let Some(sent) = self.in_flight.take(got.seq) else {
            debug!("a reply to icmp_seq={} that came too late", got.seq);
            return None;
        };
        self.answered.set(got.seq, true);
        let (rtt, stamped) = sent.round_trip(got.stamp);
        if !stamped {
            debug!(
                "icmp_seq={}: no kernel receive time, or the wall clock stepped: the round \
                 trip ends when ping read the reply",
                got.seq
            );
        }
        let rtt = rtt.as_secs_f64() * 1000.0;
        self.summary.received += 1;
        self.summary.rtts_ms.push(rtt);
        Some(format!("{head} time={rtt:.3} ms"))
    }
}

/// What one read from the socket gave.
enum Read {
    /// Nothing is waiting.
    Empty,
    /// A message that is not a reply to this ping: our own requests looped back, other
    /// pings' replies, errors, malformed packets.
    Other,
    Reply(Reply),
}

/// One message waiting on the socket, and whether it is an echo reply for this ping.
fn read_reply(sock: &IcmpSocket, buf: &mut [u8], id: u16, data: &[u8]) -> Result<Read> {
    let got = match sock.recv(buf) {
        Ok(got) => got,
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Read::Empty),
        Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(Read::Other),
        // An ICMP error for an earlier request (host unreachable, say): not a reply.
        Err(e) => {
            debug!("recvmsg: {e}");
            return Ok(Read::Empty);
        }
    };
    let packet = &buf[..got.len.min(buf.len())];
    let (message, ttl) = if sock.kind == IcmpKind::Raw && !sock.v6 {
        match ipv4::parse(packet) {
            Ok((header, message)) => (message, Some(header.ttl)),
            Err(why) => {
                debug!("dropped a malformed packet: {why}");
                return Ok(Read::Other);
            }
        }
    } else {
        (packet, got.ttl)
    };
    let Some(echo) = icmp::parse(message) else {
        debug!("dropped a {}-byte ICMP message: too short", message.len());
        return Ok(Read::Other);
    };
    let reply_type = if sock.v6 {
        icmp::ECHO_REPLY_V6
    } else {
        icmp::ECHO_REPLY_V4
    };
    // A datagram socket's identifier is the kernel's choice, and it delivers only
    // this socket's replies; a raw socket sees every ping's.
    let ours = sock.kind == IcmpKind::Datagram || echo.id == id;
    if echo.kind != reply_type || !ours {
        debug!(
            "passed over ICMP type {} id {} seq {}",
            echo.kind, echo.id, echo.seq
        );
        return Ok(Read::Other);
    }
    // Truncated (bigger than any request) or rewritten, it is not an echo.
    let echoed = got.len == packet.len() && message.get(icmp::HEADER_LEN..) == Some(data);
    Ok(Read::Reply(Reply {
        seq: echo.seq,
        bytes: message.len(),
        ttl,
        stamp: got.stamp,
        echoed,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_figures() {
        let s = Summary {
            transmitted: 4,
            received: 3,
            rtts_ms: vec![1.0, 2.0, 3.0],
            ..Summary::default()
        };
        assert_eq!(s.loss_percent(), 25.0);
        let (min, avg, max, mdev) = s.rtt().unwrap();
        assert_eq!((min, avg, max), (1.0, 2.0, 3.0));
        assert!((mdev - (2.0f64 / 3.0).sqrt()).abs() < 1e-9);
        let text = s.lines("h", Duration::from_millis(3001));
        assert!(text.contains("4 packets transmitted, 3 received, 25% packet loss, time 3001ms"));
        assert!(text.contains("rtt min/avg/max/mdev = 1.000/2.000/3.000/0.816 ms"));
        let third = Summary {
            transmitted: 3,
            received: 2,
            rtts_ms: vec![1.0, 1.0],
            duplicates: 4,
            ..Summary::default()
        };
        assert!(
            third
                .lines("h", Duration::ZERO)
                .contains("3 packets transmitted, 2 received, +4 duplicates, 33.3% packet loss")
        );
        // A firewall here refused 13 of 200: they are among the requests, and lost.
        let refused = Summary {
            transmitted: 187,
            received: 182,
            refused: 13,
            ..Summary::default()
        };
        assert!(refused.lines("h", Duration::ZERO).contains(
            "200 packets transmitted, 182 received, +13 refused by this host, 9% packet loss"
        ));
        let blocked = Summary {
            refused: 3,
            ..Summary::default()
        };
        assert_eq!(blocked.loss_percent(), 100.0);
        let none = Summary {
            transmitted: 2,
            received: 0,
            ..Summary::default()
        };
        assert!(!none.lines("h", Duration::ZERO).contains("rtt"));
    }

    #[test]
    fn drops_at_the_own_socket_are_named_only_when_replies_are_missing() {
        let mut s = Summary {
            transmitted: 3,
            received: 3,
            rtts_ms: vec![1.0; 3],
            dropped_here: 7,
            ..Summary::default()
        };
        assert!(!s.lines("h", Duration::ZERO).contains("SO_RXQ_OVFL"));
        s.received = 2;
        assert!(s.lines("h", Duration::ZERO).contains(
            "7 ICMP messages were dropped at this ping's own full receive buffer (SO_RXQ_OVFL)"
        ));
    }

    #[test]
    fn requests_in_flight_are_matched_and_given_up_oldest_first() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        // Only the monotonic time matters here.
        let at = |at| Sent {
            at,
            wall: SystemTime::UNIX_EPOCH,
        };
        let mut f = InFlight::default();
        for seq in 65_534..=65_535 {
            f.push(seq, at(t0));
        }
        f.push(0, at(t0 + ms(1)));
        f.push(1, at(t0 + ms(2)));
        // A reply in the middle, across the wrap; a number never sent, or answered, is none.
        assert_eq!(f.take(0), Some(at(t0 + ms(1))));
        assert_eq!(f.take(0), None);
        assert_eq!(f.take(7), None);
        assert_eq!(f.oldest(), Some(t0));
        f.expire(t0 + ms(1), ms(1));
        assert_eq!(f.oldest(), Some(t0 + ms(2)), "the answered 0 is passed too");
        assert_eq!(f.take(1), Some(at(t0 + ms(2))));
        assert!(f.is_empty());
        // Bounded: the 65,537th request takes the number, and the place, of the first.
        for i in 0..=u16::MAX {
            f.push(i, at(t0));
        }
        f.push(0, at(t0 + ms(1)));
        assert_eq!(f.0.len(), 1 << 16);
        assert_eq!(f.take(0), Some(at(t0 + ms(1))));
    }

    #[test]
    fn a_round_trip_ends_at_the_kernels_stamp_unless_the_wall_clock_stepped() {
        let ms = Duration::from_millis;
        // Sent 50 ms ago on both clocks.
        let sent = Sent {
            at: Instant::now() - ms(50),
            wall: SystemTime::now() - ms(50),
        };
        assert_eq!(sent.round_trip(Some(sent.wall + ms(3))), (ms(3), true));
        // No stamp; a stamp before the send, or later than now: the wall clock stepped.
        for stamp in [None, Some(sent.wall - ms(1)), Some(sent.wall + ms(60_000))] {
            let (rtt, stamped) = sent.round_trip(stamp);
            assert!(!stamped && rtt >= ms(50), "{stamp:?}: {rtt:?}");
        }
    }

    #[test]
    fn intervals_under_a_millisecond_are_refused() {
        assert!(check_interval(MIN_INTERVAL).is_ok());
        let line = check_interval(Duration::from_nanos(1))
            .unwrap_err()
            .to_string();
        assert!(line.starts_with("-i 1ns: "), "{line}");
        let line = check_interval(Duration::from_micros(10))
            .unwrap_err()
            .to_string();
        assert!(line.starts_with("-i 10us: "), "{line}");
    }

    #[test]
    fn hosts_are_addresses_or_names_without_ports() {
        assert_eq!(target("::1").unwrap(), "[::1]:0".parse().unwrap());
        assert_eq!(target("[::1]").unwrap(), "[::1]:0".parse().unwrap());
        assert!(
            target("127.0.0.1:80")
                .unwrap_err()
                .to_string()
                .contains("no port")
        );
        assert!(target("raw://x").is_err());
    }
}
