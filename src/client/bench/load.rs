//! The load loop, written once for every protocol: C clients, each keeping up to W requests
//! of L bytes in flight, on a few threads with epoll (never a thread per client). Every reply
//! is checked byte for byte; datagram replies are matched by sequence number, so loss,
//! duplication and reordering are counted, not guessed.
//!
//! A thread left with one client waits in that client's recv instead (SO_RCVTIMEO is the
//! loop's tick): a ping-pong then costs a send and a recv, as a hand-written client's does.

use std::collections::VecDeque;
use std::io;
use std::ops::Range;
use std::os::fd::AsFd;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use hdrhistogram::Histogram;
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};

use crate::client::bench::interval::{Board, Interval, Snapshot};
use crate::client::bench::loss::{Counters, Loss};
use crate::client::bench::silence::{Silence, Watch};
use crate::endpoint::{SockProto, Target};
use crate::error::{Call, PeerFault, socket_error};
use crate::impair::TokenBucket;
use crate::report::{latency_histogram, record_latency};
use crate::service::echo::Transform;
use crate::transport::batch;
use crate::transport::framing::{Framing, LENGTH_HEADER};
use crate::transport::message::Carrier;
use crate::transport::{self, Conn, MAX_MESSAGE, Received, SocketOptions};

/// Bytes at the start of each request that carry its sequence number, as decimal digits
/// (which no transform changes).
pub(crate) const SEQ_DIGITS: usize = 8;
/// Events taken from one epoll_wait.
const EVENTS: usize = 256;
/// Bytes a load client reads from a stream at once.
const STREAM_READ: usize = 256 * 1024;
/// --timeout unless given, over datagrams: a request unanswered this long is lost.
pub(crate) const DATAGRAM_TIMEOUT: Duration = Duration::from_secs(1);
/// --timeout unless given, over a stream: a reply this late fails its client.
pub(crate) const STREAM_STALL: Duration = Duration::from_secs(30);
/// How often datagram requests are checked for having waited past the loss timeout, and
/// each thread for a silence (requests waiting, no reply since the last check).
const LOSS_CHECK: Duration = Duration::from_millis(20);
/// How long a load thread waits for news before it checks the clock (the run's end, loss
/// timeouts, intervals): epoll_wait's timeout, or a lone client's SO_RCVTIMEO.
const TICK: Duration = Duration::from_millis(10);
/// After a stop signal (Ctrl-C), how long replies still in flight are awaited: the report of
/// what ran comes a moment after the signal, whatever --timeout says.
const STOP_DRAIN: Duration = Duration::from_secs(1);
/// The most request bytes in flight that a lone stream client sends on a blocking socket: it
/// does not read while it sends, so everything in flight must fit in the socket buffers.
const BLOCKING_STREAM_MAX: usize = 16 * 1024;

/// When a run stops sending.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Limit {
    /// Send for this long.
    Duration(Duration),
    /// Send this many requests per client.
    Count(u64),
}

/// What to measure.
#[derive(Clone, Debug)]
pub(crate) struct LoadSpec {
    pub target: Target,
    pub clients: usize,
    pub size: usize,
    pub window: usize,
    pub limit: Limit,
    pub threads: usize,
    /// A datagram request unanswered this long counts as lost.
    pub timeout: Duration,
    /// A stream loses nothing: a reply awaited this long is a stall, which fails its client.
    /// Generous by default, so a busy machine or a server paused for a while never trips it.
    pub stall: Duration,
    /// What the server does to each message, to check replies against.
    pub expect: Transform,
    /// Connect and hold the clients without sending anything.
    pub idle: bool,
    /// Message boundaries on a stream, written and checked by the load loop itself.
    pub framing: Framing,
    pub opts: SocketOptions,
    /// Pacing: each client sends at most this many request bytes per second (--rate).
    pub rate: Option<u64>,
}

impl LoadSpec {
    /// What a message is on the target's socket before the load loop's own framing: the
    /// loop writes and checks a stream's frames itself, byte for byte.
    pub(crate) fn carrier(&self) -> Carrier {
        Carrier::of(self.opts.kind(self.target.proto), Framing::None)
    }

    /// How long after the end of a timed run what is still in flight is waited for: a
    /// datagram's loss timeout, or a stream's stall bound.
    fn drain(&self) -> Duration {
        if self.carrier().may_lose() {
            self.timeout
        } else {
            self.stall
        }
    }

    /// What a message is with the load loop's framing: a framed stream carries an empty
    /// message as a frame of its own (an empty line, a length of 0).
    fn framed_carrier(&self) -> Carrier {
        Carrier::of(self.opts.kind(self.target.proto), self.framing)
    }
}

/// TCP_INFO summed over a run's connections.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct TcpTotals {
    pub conns: u64,
    pub retransmits: u64,
    pub rtt_us: u64,
    pub cwnd: u64,
}

impl TcpTotals {
    pub(crate) fn mean_rtt_us(&self) -> u64 {
        self.rtt_us / self.conns.max(1)
    }

    pub(crate) fn mean_cwnd(&self) -> u64 {
        self.cwnd / self.conns.max(1)
    }
}

/// What a run measured.
#[derive(Debug)]
pub(crate) struct LoadResult {
    pub elapsed: Duration,
    pub sent: u64,
    pub answered: u64,
    /// Reply bytes received and checked.
    pub bytes: u64,
    /// Round-trip time of each answered request, in nanoseconds.
    pub latency: Histogram<u64>,
    /// Time for each client's connect(2), in nanoseconds.
    pub connect: Histogram<u64>,
    pub lost: u64,
    pub duplicated: u64,
    pub reordered: u64,
    pub late: u64,
    pub mismatched: u64,
    /// Bytes a stream brought with no request waiting for them: the server sent more than
    /// it was sent.
    pub extra_bytes: u64,
    /// Datagrams the kernel dropped at bench's own full receive buffers (SO_RXQ_OVFL).
    pub rxq_overflow: u64,
    /// Datagrams the kernel refused to send (ENOBUFS): lost before they left.
    pub send_errors: u64,
    /// The most datagram requests one send carried (UDP_SEGMENT; 1 without): a receive
    /// queue that drops such a packet whole counts one RcvbufError for all of them.
    pub segments: u64,
    /// The machine's UDP error counters' rise during a datagram run.
    pub machine: Option<Counters>,
    /// TCP_INFO of every TCP client, read at the end of the run.
    pub tcp: Option<TcpTotals>,
    /// Clients that ended with an error (reset, closed by the server, ...).
    pub failed_clients: u64,
    pub first_error: Option<String>,
    /// The longest stretch in which requests waited and no reply came (every thread's).
    pub silence: Option<Silence>,
}

impl LoadResult {
    fn new() -> LoadResult {
        LoadResult {
            elapsed: Duration::ZERO,
            sent: 0,
            answered: 0,
            bytes: 0,
            latency: latency_histogram(),
            connect: latency_histogram(),
            lost: 0,
            duplicated: 0,
            reordered: 0,
            late: 0,
            mismatched: 0,
            extra_bytes: 0,
            rxq_overflow: 0,
            send_errors: 0,
            segments: 1,
            machine: None,
            tcp: None,
            failed_clients: 0,
            first_error: None,
            silence: None,
        }
    }

    fn merge(&mut self, other: LoadResult) {
        self.sent += other.sent;
        self.answered += other.answered;
        self.bytes += other.bytes;
        self.latency.add(&other.latency).expect("same bounds");
        self.connect.add(&other.connect).expect("same bounds");
        self.lost += other.lost;
        self.duplicated += other.duplicated;
        self.reordered += other.reordered;
        self.late += other.late;
        self.mismatched += other.mismatched;
        self.extra_bytes += other.extra_bytes;
        self.rxq_overflow += other.rxq_overflow;
        self.send_errors += other.send_errors;
        self.segments = self.segments.max(other.segments);
        if let Some(t) = other.tcp {
            let mine = self.tcp.get_or_insert_with(TcpTotals::default);
            mine.conns += t.conns;
            mine.retransmits += t.retransmits;
            mine.rtt_us += t.rtt_us;
            mine.cwnd += t.cwnd;
        }
        self.failed_clients += other.failed_clients;
        self.elapsed = self.elapsed.max(other.elapsed);
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }

    pub(crate) fn requests_per_sec(&self) -> f64 {
        self.answered as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// What the run lost and what the kernel saw of it.
    pub(crate) fn loss(&self) -> Loss {
        Loss {
            lost: self.lost,
            rxq_overflow: self.rxq_overflow,
            send_errors: self.send_errors,
            segments: self.segments,
            machine: self.machine,
        }
    }

    /// Reply bytes per second, in megabytes (10^6).
    pub(crate) fn mb_per_sec(&self) -> f64 {
        self.bytes as f64 / 1e6 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Load threads a run uses: as asked, but never more than clients.
pub(crate) fn threads(spec: &LoadSpec) -> usize {
    spec.threads.clamp(1, spec.clients.max(1))
}

/// Runs the load and returns what it measured.
pub(crate) fn run(spec: &LoadSpec) -> Result<LoadResult> {
    run_with(spec, None)
}

/// A udp message of `size` bytes must fit one datagram of the target's family: refused
/// before any client starts, rather than each failing its first send.
fn fits_a_datagram(size: usize, target: &Target) -> Result<()> {
    let (SockProto::Udp, crate::endpoint::Address::Ip(addr)) = (target.proto, &target.addr) else {
        return Ok(());
    };
    let max = transport::udp::max_payload(*addr);
    if size > max {
        return Err(anyhow!(
            "--size {size}: a udp datagram to {addr} holds at most {max} bytes; give --size \
             {max} or less"
        ));
    }
    Ok(())
}

/// Runs the load, reporting each interval to `board` as the run goes on.
pub(crate) fn run_with(spec: &LoadSpec, board: Option<&Board>) -> Result<LoadResult> {
    if spec.size == 0 && !spec.framed_carrier().carries_empty() {
        return Err(anyhow!(
            "--size 0: a bare stream or seqpacket socket cannot carry an empty message: give \
             a --size of 1 or more, or over a stream --framing line or length (an empty frame)"
        ));
    }
    let targets = transport::target_candidates(&spec.target)?;
    let target = targets.first().context("no address")?.clone();
    fits_a_datagram(spec.size, &target)?;
    let threads = threads(spec);
    // Every thread connects its clients first; the clock starts when all are connected, so
    // connection set-up (measured apart) does not dilute requests/s.
    let connected = Gate::new(threads);
    let before = if spec.carrier().may_lose() {
        Counters::read()
    } else {
        None
    };
    let results: Vec<Result<LoadResult>> = thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                // Clients are spread evenly: thread t gets every threads-th client.
                let mine = (t..spec.clients).step_by(threads).count();
                let (target, connected) = (&target, &connected);
                thread::Builder::new()
                    .name("load".into())
                    .spawn_scoped(scope, move || {
                        let runner = Runner::new(spec, target, mine);
                        connected.wait();
                        let result = runner.and_then(|r| r.run(board.map(|b| (b, t))));
                        if let Some(board) = board {
                            board.finish(t);
                        }
                        result
                    })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| match h {
                Ok(h) => h
                    .join()
                    .unwrap_or_else(|_| Err(anyhow!("a load thread panicked"))),
                Err(e) => {
                    connected.forfeit();
                    Err(anyhow!("cannot start a load thread: {e}"))
                }
            })
            .collect()
    });
    let mut total = LoadResult::new();
    let mut silences = Vec::with_capacity(threads);
    for result in results {
        let result = result?;
        silences.push(result.silence);
        total.merge(result);
    }
    total.silence = Silence::common(&silences);
    if let (Some(before), Some(after)) = (before, Counters::read()) {
        total.machine = Some(before.delta(&after));
    }
    Ok(total)
}

/// The request a client sends as its `seq`-th message, and the reply it expects, as they
/// go on the wire (framed, on a framed stream).
struct Payload {
    request: Vec<u8>,
    reply: Vec<u8>,
    /// Where the message starts in a request (after a length header).
    offset: usize,
    size: usize,
    /// Whether the reply after its sequence digits repeats every [`PERIOD`] bytes: then a
    /// long piece of it is checked against its own first period (see [`matches_body`]).
    periodic: bool,
}

/// A repeat of the 26-letter message that is also a whole number of cache lines.
const PERIOD: usize = 26 * 32;

impl Payload {
    fn new(size: usize, expect: Transform, framing: Framing) -> Payload {
        let message: Vec<u8> = (0..size).map(|i| b'a' + (i % 26) as u8).collect();
        let mut answer = message.clone();
        expect.apply(&mut answer);
        let (mut request, mut reply) = (Vec::new(), Vec::new());
        framing.encode(&message, &mut request);
        framing.encode(&answer, &mut reply);
        let offset = if framing == Framing::Length {
            LENGTH_HEADER
        } else {
            0
        };
        let body = (offset + size.min(SEQ_DIGITS)).min(reply.len());
        let periodic = reply.len() - body > PERIOD
            && reply[body + PERIOD..] == reply[body..reply.len() - PERIOD];
        Payload {
            request,
            reply,
            offset,
            size,
            periodic,
        }
    }

    fn seq_len(&self) -> usize {
        self.size.min(SEQ_DIGITS)
    }

    /// Bytes of one request on the wire (framing included).
    fn request_len(&self) -> usize {
        self.request.len()
    }

    /// Makes `out` request number `seq` alone: only its sequence digits written when `out`
    /// holds one request already (no copy of a large request per request).
    fn renew_request(&self, seq: u64, out: &mut Vec<u8>) {
        if out.len() != self.request.len() {
            out.clear();
            out.extend_from_slice(&self.request);
        }
        let start = self.offset;
        write_seq(&mut out[start..start + self.seq_len()], seq);
    }

    /// Writes request number `seq` into `out`.
    fn write_request(&self, seq: u64, out: &mut Vec<u8>) {
        let start = out.len() + self.offset;
        out.extend_from_slice(&self.request);
        write_seq(&mut out[start..start + self.seq_len()], seq);
    }
}

fn write_seq(digits: &mut [u8], mut seq: u64) {
    for d in digits.iter_mut().rev() {
        *d = b'0' + (seq % 10) as u8;
        seq /= 10;
    }
}

fn read_seq(digits: &[u8]) -> Option<u64> {
    digits.iter().try_fold(0u64, |acc, &d| {
        d.is_ascii_digit().then(|| acc * 10 + u64::from(d - b'0'))
    })
}

/// One client connection and its requests in flight.
struct Client {
    conn: Conn,
    next_seq: u64,
    /// Requests in flight, oldest first: (sequence number, when sent).
    in_flight: VecDeque<(u64, Instant)>,
    /// Request bytes not yet taken by the socket (streams), or the message waiting for room.
    out: Vec<u8>,
    out_pos: usize,
    /// Stream: bytes of the current reply already checked, and whether they all matched.
    reply_pos: usize,
    reply_ok: bool,
    /// Datagrams: the highest sequence number answered, and recent answers (for duplicates).
    highest: Option<u64>,
    answered: VecDeque<u64>,
    lost: VecDeque<u64>,
    done: bool,
    interest: EpollFlags,
    /// The latest SO_RXQ_OVFL count on this client's socket (cumulative).
    kernel_drops: u32,
    /// --rate: the client's token bucket, and when its next request, already paid for, may go.
    pace: Option<TokenBucket>,
    paced_until: Option<Instant>,
    /// Datagram requests one send may carry (UDP_SEGMENT; 1 without), and those written
    /// into `out` and not yet sent.
    segments: usize,
    gathered: usize,
    /// UDP_GRO is on: replies may come glued, several to a receive.
    glued: bool,
}

impl Client {
    /// A connected client with nothing sent yet.
    fn new(conn: Conn, spec: &LoadSpec) -> Client {
        Client {
            conn,
            next_seq: 0,
            in_flight: VecDeque::new(),
            out: Vec::new(),
            out_pos: 0,
            reply_pos: 0,
            reply_ok: true,
            highest: None,
            answered: VecDeque::new(),
            lost: VecDeque::new(),
            done: false,
            interest: EpollFlags::EPOLLIN,
            kernel_drops: 0,
            pace: spec.rate.map(|rate| pacer(rate, spec.size)),
            paced_until: None,
            segments: 1,
            glued: false,
            gathered: 0,
        }
    }
}

/// Recent answered or lost sequence numbers remembered per datagram client.
const REMEMBER: usize = 1024;

/// One thread's intervals for --interval: the interval under way (its number and the
/// totals when it began), reported to the board as each ends.
struct IntervalClock<'b, 'e> {
    board: &'b Board<'e>,
    thread: usize,
    start: Instant,
    /// A timed run's length: the interval that ends there is the last one.
    length: Option<Duration>,
    index: u64,
    before: Snapshot,
}

impl<'b, 'e> IntervalClock<'b, 'e> {
    fn new(
        board: &'b Board<'e>,
        thread: usize,
        start: Instant,
        length: Option<Duration>,
        result: &LoadResult,
    ) -> IntervalClock<'b, 'e> {
        IntervalClock {
            board,
            thread,
            start,
            length,
            index: 0,
            before: Snapshot::of(result),
        }
    }

    /// Reports the interval under way if its time is over. One that ends where a timed run
    /// ends is left to [`IntervalClock::last`], with the replies that drain after it: cut
    /// there, the run's end would begin an interval of nothing, over next to no time.
    fn tick(&mut self, result: &LoadResult) {
        let every = self.board.every;
        let end = every * (self.index as u32 + 1);
        if self.length.is_some_and(|length| end >= length) {
            return;
        }
        if self.start.elapsed() >= end {
            let begin = every * self.index as u32;
            let interval = Interval::between(self.index, begin, end, &self.before, result);
            self.board.report(self.thread, interval);
            self.before = Snapshot::of(result);
            self.index += 1;
        }
    }

    /// Reports the interval under way, ended now.
    fn last(&self, result: &LoadResult) {
        let begin = self.board.every * self.index as u32;
        let end = self.start.elapsed().max(begin);
        let interval = Interval::between(self.index, begin, end, &self.before, result);
        self.board.report(self.thread, interval);
    }
}

/// One load thread: its clients, its epoll, its share of the result.
struct Runner<'a> {
    spec: &'a LoadSpec,
    payload: Payload,
    /// The socket's own carrier: the load loop frames a stream's messages itself.
    carrier: Carrier,
    epoll: Epoll,
    clients: Vec<Client>,
    result: LoadResult,
    buf: Vec<u8>,
    /// A lone client on a blocking socket (see [`Runner::blocks`]).
    blocking: bool,
    /// When this thread saw a stop signal: nothing more is sent, what is in flight is
    /// awaited for [`STOP_DRAIN`], and a client failing then is not counted.
    stopped_at: Option<Instant>,
    /// Stretches with requests waiting and no reply, checked with the loss timeouts.
    silence: Watch,
}

impl<'a> Runner<'a> {
    /// Whether a thread with `count` clients waits in its one client's recv, SO_RCVTIMEO
    /// set to the tick, instead of in epoll_wait: two system calls per request instead of
    /// three, as a ping-pong client written by hand makes. Not for paced runs (they wake on
    /// the pace), TLS or QUIC (their reads are not one recv), or a stream window too large
    /// to sit in the socket buffers while the client is not reading.
    fn blocks(spec: &LoadSpec, count: usize) -> bool {
        let in_flight = spec.window.saturating_mul(spec.size + LENGTH_HEADER);
        count == 1
            && spec.rate.is_none()
            && !spec.idle
            && spec.opts.tls.is_none()
            && spec.target.proto != SockProto::Quic
            && (spec.carrier().whole_messages() || in_flight <= BLOCKING_STREAM_MAX)
    }

    fn new(spec: &'a LoadSpec, target: &Target, count: usize) -> Result<Self> {
        let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC).context("epoll_create")?;
        let mut result = LoadResult::new();
        let mut clients = Vec::with_capacity(count);
        let carrier = spec.carrier();
        let blocking = Self::blocks(spec, count);
        let opts = connect_options(&spec.opts, spec.window);
        for token in 0..count {
            let start = Instant::now();
            let conn = transport::connect(target, &opts)
                .map_err(|e| socket_error(Call::Connect, target, &e))?;
            record_latency(&mut result.connect, start.elapsed());
            if blocking {
                conn.set_read_timeout(Some(TICK))?;
                conn.set_write_timeout(Some(TICK))?;
            } else {
                conn.set_nonblocking(true)?;
            }
            // A window of one: replies come one at a time, each read with a plain recv, and
            // the kernel's drop count is read once at the end (SO_MEMINFO).
            if carrier.may_lose()
                && spec.window > 1
                && let Err(e) = conn.count_drops()
            {
                tracing::debug!("SO_RXQ_OVFL: {e}; drops at bench's sockets go uncounted");
            }
            let mut client = Client::new(conn, spec);
            if target.proto == SockProto::Udp {
                (client.segments, client.glued) = offloads(&client.conn, spec);
            }
            epoll
                .add(
                    client.conn.as_fd(),
                    EpollEvent::new(EpollFlags::EPOLLIN, token as u64),
                )
                .context("epoll_ctl add")?;
            clients.push(client);
        }
        Ok(Runner {
            spec,
            payload: Payload::new(
                spec.size,
                spec.expect,
                if carrier.keeps_boundaries() {
                    Framing::None
                } else {
                    spec.framing
                },
            ),
            carrier,
            epoll,
            clients,
            result,
            // A stream's replies are read in large pieces: fewer system calls per byte.
            buf: vec![0u8; MAX_MESSAGE.max(spec.size).max(STREAM_READ)],
            blocking,
            stopped_at: None,
            silence: Watch::default(),
        })
    }

    fn run(mut self, board: Option<(&Board, usize)>) -> Result<LoadResult> {
        let start = Instant::now();
        let stop_at = match self.spec.limit {
            Limit::Duration(d) => Some(start + d),
            Limit::Count(_) => None,
        };
        if self.spec.idle {
            // Held until the time is up, or a stop signal comes.
            while stop_at.is_some_and(|t| Instant::now() < t) && !self.stop_seen() {
                thread::sleep(TICK);
            }
            // How long they were held, which the run's note says.
            self.result.elapsed = start.elapsed();
            return Ok(self.result);
        }
        let length = match self.spec.limit {
            Limit::Duration(d) => Some(d),
            Limit::Count(_) => None,
        };
        let mut clock = board
            .map(|(board, thread)| IntervalClock::new(board, thread, start, length, &self.result));
        for token in 0..self.clients.len() {
            self.fill(token, start);
        }
        let mut events = vec![EpollEvent::empty(); EVENTS];
        let mut last_loss_check = Instant::now();
        loop {
            // One clock read per turn, for the run's end and the loss check both (a
            // request's own times are read at its send and its reply): a ping-pong's turn
            // is one round trip, and a read fewer in each.
            let now = Instant::now();
            if !self.goes_on(stop_at, now) {
                break;
            }
            if self.blocking {
                self.serve_alone();
            } else {
                self.serve_ready(&mut events)?;
            }
            self.send_paced();
            if now.duration_since(last_loss_check) >= LOSS_CHECK {
                last_loss_check = now;
                self.watch_silence(start);
                if self.carrier.may_lose() {
                    self.expire_lost();
                } else if stop_at.is_none() {
                    self.fail_unanswered();
                }
            }
            if let Some(clock) = &mut clock {
                // Once every client has sent its last request (time up, or its count sent),
                // what drains belongs to the interval under way: cutting a new one there
                // would report a few replies over next to no time.
                if self.clients.iter().any(|c| !c.done) {
                    clock.tick(&self.result);
                }
            }
        }
        // The last interval, cut short by the end of the run.
        if let Some(clock) = &clock {
            clock.last(&self.result);
        }
        Ok(self.conclude(start))
    }

    /// Whether the run goes on. Once its time is up every client stops sending; it ends
    /// when nothing is in flight, or one loss timeout after the last send (what is still
    /// in flight then is lost).
    /// A stop signal ends the run as its time would, with a drain of [`STOP_DRAIN`] at most.
    /// `now`: the turn's clock read.
    fn goes_on(&mut self, stop_at: Option<Instant>, now: Instant) -> bool {
        if stop_at.is_some_and(|t| now >= t) || self.stop_seen() {
            for client in &mut self.clients {
                client.done = true;
            }
        }
        let in_flight = self.clients.iter().any(|c| !c.in_flight.is_empty());
        let all_done = self.clients.iter().all(|c| c.done);
        if all_done && !in_flight {
            return false;
        }
        let drained = |since: Instant, drain: Duration| now > since + drain;
        if let Some(t) = self.stopped_at
            && drained(t, STOP_DRAIN)
        {
            // Cut short by the user: what is still in flight is neither lost nor a failure.
            for client in &mut self.clients {
                client.in_flight.clear();
            }
            return false;
        }
        if let Some(t) = stop_at
            && drained(t, self.spec.drain())
        {
            self.give_up_in_flight();
            return false;
        }
        true
    }

    /// Whether a stop signal came (SIGINT, SIGTERM); notes when this thread first saw it.
    fn stop_seen(&mut self) -> bool {
        if self.stopped_at.is_none() && crate::signal::stop_asked().is_some() {
            self.stopped_at = Some(Instant::now());
        }
        self.stopped_at.is_some()
    }

    /// Waits a tick at most for readiness, and serves each client that is ready.
    fn serve_ready(&mut self, events: &mut [EpollEvent]) -> Result<()> {
        // A paced run wakes often enough to send on time.
        let tick = if self.spec.rate.is_some() {
            1u16
        } else {
            TICK.as_millis() as u16
        };
        let n = match self.epoll.wait(events, EpollTimeout::from(tick)) {
            Ok(n) => n,
            Err(nix::errno::Errno::EINTR) => 0,
            Err(e) => return Err(e).context("epoll_wait"),
        };
        for event in &events[..n] {
            let token = event.data() as usize;
            self.on_ready(token, event.events());
        }
        Ok(())
    }

    /// The lone client of a blocking thread: what is left of a request that did not go out
    /// whole, the window filled again, then one recv, which waits a tick at most. The loop's
    /// own work (the run's end, loss timeouts, intervals, and their clock reads) falls
    /// between a reply and the next request, never between a request's send and its
    /// reply's recv: the round trip measured holds the two calls and the server, as a
    /// ping-pong client written by hand measures it.
    fn serve_alone(&mut self) {
        if self.clients[0].out_pos < self.clients[0].out.len() {
            self.flush(0);
        }
        self.fill(0, Instant::now());
        if !self.clients[0].in_flight.is_empty() {
            self.read_once(0);
        }
    }

    /// Paced clients whose wait is over send again.
    fn send_paced(&mut self) {
        if self.spec.rate.is_none() {
            return;
        }
        let now = Instant::now();
        for token in 0..self.clients.len() {
            if self.clients[token].paced_until.is_some_and(|t| now >= t) {
                self.fill(token, now);
            }
        }
    }

    /// Notes whether any reply came since the last check, and whether requests wait.
    fn watch_silence(&mut self, start: Instant) {
        let r = &self.result;
        let replies = r.answered + r.late + r.duplicated + r.mismatched;
        let waiting = self.clients.iter().any(|c| !c.in_flight.is_empty());
        self.silence.check(start.elapsed(), replies, waiting);
    }

    /// The thread's result, with what the kernel says about its sockets at the end.
    fn conclude(mut self, start: Instant) -> LoadResult {
        self.result.elapsed = start.elapsed();
        self.result.silence = std::mem::take(&mut self.silence).longest();
        if self.spec.target.proto == SockProto::Tcp {
            self.result.tcp = Some(self.tcp_totals());
        }
        if self.carrier.may_lose() {
            self.result.rxq_overflow = self
                .clients
                .iter()
                .map(|c| u64::from(c.kernel_drops.max(c.conn.drops().unwrap_or(0))))
                .sum();
            let most = self.clients.iter().map(|c| c.segments).max();
            self.result.segments = most.unwrap_or(1).max(1) as u64;
        }
        self.result
    }

    /// TCP_INFO summed over the clients' connections.
    fn tcp_totals(&self) -> TcpTotals {
        let mut totals = TcpTotals::default();
        for c in &self.clients {
            if let Ok(info) = transport::tcp::info(c.conn.socket()) {
                totals.conns += 1;
                totals.retransmits += u64::from(info.retransmits);
                totals.rtt_us += u64::from(info.rtt_us);
                totals.cwnd += u64::from(info.cwnd);
            }
        }
        totals
    }

    fn on_ready(&mut self, token: usize, events: EpollFlags) {
        if events.intersects(EpollFlags::EPOLLIN | EpollFlags::EPOLLERR | EpollFlags::EPOLLHUP) {
            self.read(token);
        }
        if events.contains(EpollFlags::EPOLLOUT) {
            self.flush(token);
        }
        self.fill(token, Instant::now());
    }

    /// Sends requests until the window is full.
    fn fill(&mut self, token: usize, now: Instant) {
        let window = self.spec.window;
        let count_limit = match self.spec.limit {
            Limit::Count(n) => Some(n),
            Limit::Duration(_) => None,
        };
        loop {
            let client = &mut self.clients[token];
            // Requests waiting for room in the socket: nothing more until they are sent.
            let waiting = client.gathered == 0 && client.out_pos < client.out.len();
            if client.done || client.in_flight.len() >= window || waiting {
                break;
            }
            if count_limit.is_some_and(|n| client.next_seq >= n) {
                client.done = true;
                break;
            }
            // Pacing: a request waits until the bucket has paid for it.
            match client.paced_until {
                Some(t) if now < t => break,
                Some(_) => client.paced_until = None,
                None => {
                    let size = self.payload.request_len();
                    if let Some(wait) = client.pace.as_mut().map(|b| b.take(size, now))
                        && !wait.is_zero()
                    {
                        client.paced_until = Some(now + wait);
                        break;
                    }
                }
            }
            let seq = client.next_seq;
            client.next_seq += 1;
            if client.gathered == 0 && client.segments == 1 {
                // One request at a time: the last one's bytes are this one's but its number.
                self.payload.renew_request(seq, &mut client.out);
                client.out_pos = 0;
            } else {
                if client.gathered == 0 {
                    client.out.clear();
                    client.out_pos = 0;
                }
                self.payload.write_request(seq, &mut client.out);
            }
            client.in_flight.push_back((seq, now));
            client.gathered += 1;
            self.result.sent += 1;
            // With UDP_SEGMENT, datagrams gather until a send's worth (or the window) is in.
            if client.gathered >= client.segments {
                self.flush(token);
            }
        }
        if self.clients[token].gathered > 0 {
            self.flush(token);
        }
        self.update_interest(token);
    }

    /// Writes what is left of the current request (or the datagram requests gathered: as
    /// many per send as UDP_SEGMENT carries).
    fn flush(&mut self, token: usize) {
        let client = &mut self.clients[token];
        client.gathered = 0;
        let request = self.payload.request_len();
        while client.out_pos < client.out.len() {
            let rest = &client.out[client.out_pos..];
            let (sent, datagrams) = if self.carrier.whole_messages() {
                let chunk = &rest[..rest.len().min(request * client.segments)];
                (
                    send_datagrams(&client.conn, chunk, request),
                    chunk.len() / request.max(1),
                )
            } else {
                (client.conn.send_some(rest), 0)
            };
            match sent {
                Ok(n) => client.out_pos += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if client.segments > 1 && batch::no_segmentation(&e) => {
                    tracing::debug!("UDP_SEGMENT: {e}; one datagram per send from now on");
                    client.segments = 1;
                }
                // A datagram that cannot be sent now (ENOBUFS) is a datagram lost.
                Err(e) if self.carrier.may_lose() && e.raw_os_error() == Some(libc::ENOBUFS) => {
                    client.out_pos += request * datagrams.max(1);
                    self.result.send_errors += datagrams.max(1) as u64;
                }
                Err(e) => {
                    self.fail(token, Call::Send, e);
                    return;
                }
            }
        }
    }

    fn read(&mut self, token: usize) {
        // Bounded, so one busy client cannot starve the others of this thread.
        for _ in 0..16 {
            if !self.read_once(token) {
                return;
            }
        }
    }

    /// One recv; whether more may be read now.
    fn read_once(&mut self, token: usize) -> bool {
        let client = &mut self.clients[token];
        let mut segment = 0;
        let got = if client.glued {
            batch::recv_glued(client.conn.socket(), &mut self.buf, 0).map(|glued| {
                client.kernel_drops = client.kernel_drops.max(glued.drops.unwrap_or(0));
                segment = glued.segment;
                glued.received
            })
        } else if self.carrier.may_lose() && self.spec.window > 1 {
            client
                .conn
                .recv_counting_drops(&mut self.buf)
                .map(|(got, drops)| {
                    client.kernel_drops = client.kernel_drops.max(drops.unwrap_or(0));
                    got
                })
        } else {
            client.conn.recv(&mut self.buf)
        };
        match got {
            Ok(Received::Data(n)) => {
                // Replies glued (UDP_GRO): each datagram checked as its own.
                for piece in batch::datagrams(n, segment) {
                    self.on_reply_bytes(token, piece);
                }
                // Nothing more is due, or a plain stream's read came short of the buffer
                // (the socket is empty for now): skip the recv that would only say EAGAIN
                // (epoll is level-triggered, so anything that comes later still wakes us).
                let emptied = n < self.buf.len() && self.short_read_empties();
                !emptied && !self.clients[token].in_flight.is_empty()
            }
            Ok(Received::Closed) => {
                let e =
                    io::Error::new(io::ErrorKind::UnexpectedEof, "server closed the connection");
                self.fail(token, Call::Recv, e);
                false
            }
            Ok(Received::Truncated(_)) => {
                self.result.mismatched += 1;
                true
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => false,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => true,
            Err(e) => {
                self.fail(token, Call::Recv, e);
                false
            }
        }
    }

    /// Whether a read shorter than the buffer means the socket is empty: on a plain stream,
    /// yes; TLS and QUIC may hold what they decrypted, and datagrams come one at a time.
    fn short_read_empties(&self) -> bool {
        !self.carrier.keeps_boundaries()
            && self.spec.opts.tls.is_none()
            && self.spec.target.proto != SockProto::Quic
    }

    /// Checks the bytes just read into `read` of the scratch buffer against the expected
    /// replies.
    fn on_reply_bytes(&mut self, token: usize, read: Range<usize>) {
        let now = Instant::now();
        let (first, n) = (read.start, read.len());
        if !self.carrier.keeps_boundaries() {
            let mut pos = 0;
            while pos < n {
                let client = &mut self.clients[token];
                let Some(&(seq, sent)) = client.in_flight.front() else {
                    self.result.mismatched += 1;
                    self.result.extra_bytes += (n - pos) as u64;
                    return;
                };
                let reply_len = self.payload.reply.len();
                let take = (reply_len - client.reply_pos).min(n - pos);
                let got = &self.buf[first + pos..first + pos + take];
                if !matches_reply(&self.payload, seq, client.reply_pos, got) {
                    client.reply_ok = false;
                }
                client.reply_pos += take;
                pos += take;
                if client.reply_pos == reply_len {
                    client.in_flight.pop_front();
                    let ok = std::mem::replace(&mut client.reply_ok, true);
                    client.reply_pos = 0;
                    self.record(seq, sent, now, ok);
                }
            }
            return;
        }
        // A message: one whole reply, found by its sequence number.
        let reply = &self.buf[read];
        let seq_len = self.payload.seq_len();
        let client = &mut self.clients[token];
        let seq = if seq_len == SEQ_DIGITS {
            read_seq(&reply[..seq_len.min(n)])
        } else {
            client.in_flight.front().map(|&(s, _)| s)
        };
        let Some(seq) = seq else {
            self.result.mismatched += 1;
            return;
        };
        let ok = n == self.spec.size && matches_reply(&self.payload, seq, 0, reply);
        if let Some(i) = client.in_flight.iter().position(|&(s, _)| s == seq) {
            let (_, sent) = client.in_flight.remove(i).expect("found");
            if client.highest.is_some_and(|h| seq < h) {
                self.result.reordered += 1;
            }
            client.highest = Some(client.highest.map_or(seq, |h| h.max(seq)));
            remember(&mut client.answered, seq);
            self.record(seq, sent, now, ok);
        } else if client.answered.contains(&seq) {
            self.result.duplicated += 1;
        } else if let Some(i) = client.lost.iter().position(|&s| s == seq) {
            client.lost.remove(i);
            self.result.lost -= 1;
            self.result.late += 1;
        } else {
            self.result.mismatched += 1;
        }
    }

    fn record(&mut self, _seq: u64, sent: Instant, now: Instant, ok: bool) {
        if !ok {
            self.result.mismatched += 1;
            return;
        }
        self.result.answered += 1;
        self.result.bytes += self.spec.size as u64;
        record_latency(&mut self.result.latency, now.duration_since(sent));
    }

    /// Datagram requests unanswered for the loss timeout are lost; their window slots free up.
    fn expire_lost(&mut self) {
        let now = Instant::now();
        let timeout = self.spec.timeout;
        for token in 0..self.clients.len() {
            let client = &mut self.clients[token];
            while let Some(&(seq, sent)) = client.in_flight.front() {
                if now.duration_since(sent) < timeout {
                    break;
                }
                client.in_flight.pop_front();
                remember(&mut client.lost, seq);
                self.result.lost += 1;
            }
            self.fill(token, now);
        }
    }

    /// A run of a count over a stream or seqpacket: a client whose oldest request has
    /// waited the stall bound (--timeout, 30 s unless given) fails, so a server that stops
    /// answering cannot hold the run forever (a timed run gives up at its end instead).
    fn fail_unanswered(&mut self) {
        let now = Instant::now();
        let stall = self.spec.stall;
        for token in 0..self.clients.len() {
            let waiting = self.clients[token].in_flight.front();
            if waiting.is_some_and(|&(_, sent)| now.duration_since(sent) >= stall) {
                // A server that never answered is not slow: more --timeout would not help.
                let e = match self.never_answered() {
                    Some(never) => io::Error::other(PeerFault(never)),
                    None => io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!(
                            "no reply within {stall:?} (--timeout): the stream stalled with {} \
                             request(s) of client {token} unanswered; a stream loses nothing, \
                             so a slow server needs a longer --timeout",
                            self.clients[token].in_flight.len()
                        ),
                    ),
                };
                self.fail(token, Call::Recv, e);
            }
        }
    }

    /// What to say of a server that never gave one matching reply (iperf3's server, a port
    /// that says one byte and no more, or takes bytes and says nothing): not that it stopped,
    /// nor that it is slow. Said after the target's name.
    fn never_answered(&self) -> Option<String> {
        if self.result.answered > 0 {
            return None;
        }
        let what = match self.result.mismatched {
            0 => "nothing",
            _ => "nothing that matched a request",
        };
        Some(format!(
            "answered {what} from the start: is it an echo server? (iperf3's server is not: \
             iperf3 -s -> netecho serve)"
        ))
    }

    fn give_up_in_flight(&mut self) {
        let never = self.never_answered();
        let never = never.map(|never| format!("{}: {never}", self.spec.target));
        let missing = never.unwrap_or_else(|| {
            format!(
                "{}: replies still missing {:?} after the end of the run (the server stopped \
                 answering; a slow one needs a longer --timeout)",
                self.spec.target, self.spec.stall
            )
        });
        for client in &mut self.clients {
            if self.carrier.may_lose() {
                self.result.lost += client.in_flight.len() as u64;
            } else if !client.in_flight.is_empty() {
                self.result.failed_clients += 1;
                self.result
                    .first_error
                    .get_or_insert_with(|| missing.clone());
            }
            client.in_flight.clear();
        }
    }

    fn fail(&mut self, token: usize, call: Call, err: io::Error) {
        let client = &mut self.clients[token];
        if client.done && client.in_flight.is_empty() {
            return;
        }
        let _ = self.epoll.delete(client.conn.as_fd());
        client.done = true;
        client.in_flight.clear();
        // After a stop signal, a failure is the stop's (a local server stopped by the same
        // Ctrl-C), not the server's.
        if self.stopped_at.is_some() {
            return;
        }
        self.result.failed_clients += 1;
        if self.result.first_error.is_none() {
            let err = socket_error(call, &self.spec.target, &err);
            self.result.first_error = Some(format!("{err:#}"));
        }
    }

    fn update_interest(&mut self, token: usize) {
        let client = &mut self.clients[token];
        if client.done && client.in_flight.is_empty() {
            return;
        }
        let mut interest = EpollFlags::EPOLLIN;
        interest.set(EpollFlags::EPOLLOUT, client.out_pos < client.out.len());
        if interest != client.interest {
            let mut event = EpollEvent::new(interest, token as u64);
            if self.epoll.modify(client.conn.as_fd(), &mut event).is_ok() {
                client.interest = interest;
            }
        }
    }
}

/// The socket options of a load connection. With a window of more than one request, the
/// next request goes out before the last one is answered, and Nagle's algorithm would hold
/// its last partial segment (a 64 KiB request is one full segment and a few bytes on
/// loopback) until the one before is acknowledged: a wait of the client's making, charged to
/// the server. So a window sets TCP_NODELAY, as sockperf and wrk do; with a window of one,
/// nothing is unacknowledged when a request goes, and `--nodelay` decides.
fn connect_options(asked: &SocketOptions, window: usize) -> SocketOptions {
    let mut opts = asked.clone();
    opts.nodelay |= window > 1;
    opts
}

/// Sends datagram requests of `size` bytes each, back to back in `chunk`: one send for one,
/// one UDP_SEGMENT send for more. How many bytes went (all, or an error).
fn send_datagrams(conn: &Conn, chunk: &[u8], size: usize) -> io::Result<usize> {
    if chunk.len() <= size {
        return conn.send_some(chunk).map(|_| chunk.len());
    }
    // `size` fits a u16: offloads() allows segments only then.
    batch::send_segments(conn.socket(), chunk, size as u16, None).map(|()| chunk.len())
}

/// UDP offloads on a load client's socket: the datagram requests one send may carry
/// (UDP_SEGMENT; 1 is a send per datagram), and whether its replies are received glued
/// (UDP_GRO, where the kernel can).
fn offloads(conn: &Conn, spec: &LoadSpec) -> (usize, bool) {
    // A glued receive is charged to the receive buffer whole, so a --rcvbuf chosen to see
    // where datagrams overflow is measured with one datagram per receive, as a plain
    // receiver has it. A window of one has one reply at a time: nothing to glue.
    let glued = spec.opts.rcvbuf.is_none()
        && spec.window > 1
        && batch::receive_glued(conn.socket(), true)
            .inspect_err(|e| {
                tracing::debug!("UDP_GRO: {e}; replies are read one datagram at a time");
            })
            .is_ok();
    if spec.size == 0 || spec.size > batch::MAX_SEGMENTED / 2 {
        return (1, glued);
    }
    let segments = (batch::MAX_SEGMENTED / spec.size)
        .min(batch::MAX_SEGMENTS)
        .min(spec.window)
        .max(1);
    (segments, glued)
}

fn remember(list: &mut VecDeque<u64>, seq: u64) {
    if list.len() >= REMEMBER {
        list.pop_front();
    }
    list.push_back(seq);
}

/// Whether `got`, found at `offset` in the reply to request `seq`, is what the server should
/// have sent. Compares whole slices (memcmp), with the sequence digits apart.
fn matches_reply(payload: &Payload, seq: u64, offset: usize, got: &[u8]) -> bool {
    let end = offset + got.len();
    let Some(expected) = payload.reply.get(offset..end) else {
        return false;
    };
    let seq_len = payload.seq_len();
    let (seq_start, seq_end) = (payload.offset, payload.offset + seq_len);
    if end <= seq_start {
        return got == expected;
    }
    if offset >= seq_end {
        return matches_body(payload, offset, got);
    }
    let mut digits = [0u8; SEQ_DIGITS];
    write_seq(&mut digits[..seq_len], seq);
    // Before the digits, the digits themselves, after them.
    let (lo, hi) = (seq_start.max(offset), seq_end.min(end));
    got[..lo - offset] == expected[..lo - offset]
        && got[lo - offset..hi - offset] == digits[lo - seq_start..hi - seq_start]
        && matches_body(payload, hi, &got[hi - offset..])
}

/// Whether `got`, found at `offset` in a reply at or past its sequence digits (and within
/// the reply), is what the server should have sent. Where the reply repeats every
/// [`PERIOD`] bytes, `got` matches when its first period does and every byte equals the one
/// a period before it: that second compare reads what it has just read, so a check streams
/// the received bytes once instead of them and a copy of the reply.
fn matches_body(payload: &Payload, offset: usize, got: &[u8]) -> bool {
    let expected = &payload.reply[offset..offset + got.len()];
    if !payload.periodic || got.len() <= 2 * PERIOD {
        return got == expected;
    }
    got[..PERIOD] == expected[..PERIOD] && got[PERIOD..] == got[..got.len() - PERIOD]
}

/// Where every load thread waits until all have connected their clients; a thread the OS
/// refused forfeits its place, so the others do not wait for it forever.
struct Gate {
    left: std::sync::Mutex<usize>,
    open: std::sync::Condvar,
}

impl Gate {
    fn new(threads: usize) -> Gate {
        Gate {
            left: std::sync::Mutex::new(threads),
            open: std::sync::Condvar::new(),
        }
    }

    fn forfeit(&self) {
        let mut left = self.left.lock().unwrap_or_else(|e| e.into_inner());
        *left = left.saturating_sub(1);
        self.open.notify_all();
    }

    fn wait(&self) {
        self.forfeit();
        let mut left = self.left.lock().unwrap_or_else(|e| e.into_inner());
        while *left > 0 {
            left = self.open.wait(left).unwrap_or_else(|e| e.into_inner());
        }
    }
}

/// How much a paced client may send late: what a wake-up up to this late owes goes at once.
const CATCH_UP: Duration = Duration::from_millis(100);

/// A client's pace for `--rate`: one request at the start, then the rate on average, the
/// loop's late ticks (a busy machine) caught up within [`CATCH_UP`].
fn pacer(rate: u64, size: usize) -> TokenBucket {
    TokenBucket::catching_up(rate, size as u64, CATCH_UP)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A paced client whose loop wakes 0.3 ms late every millisecond (a busy machine) still
    /// sends the rate asked, as `fill` takes from the pace: 10 Mbit/s of 1,000-byte requests.
    #[test]
    fn a_paced_client_woken_late_keeps_the_rate_asked() {
        let (rate, size) = (1_250_000, 1000);
        let mut pace = pacer(rate, size);
        let mut paced_until: Option<Instant> = None;
        let start = Instant::now();
        let (mut now, mut sent) = (start, 0u64);
        while now < start + Duration::from_secs(1) {
            loop {
                match paced_until {
                    Some(t) if now < t => break,
                    Some(_) => paced_until = None,
                    None => {
                        let wait = pace.take(size, now);
                        if !wait.is_zero() {
                            paced_until = Some(now + wait);
                            break;
                        }
                    }
                }
                sent += 1;
            }
            now += Duration::from_micros(1300);
        }
        // 1,250 asked in the second; the first tick's request is the only one early.
        assert!((1240..=1252).contains(&sent), "sent {sent} of 1250");
    }

    #[test]
    fn a_window_over_one_request_sets_tcp_nodelay_and_one_leaves_it_to_the_flag() {
        let plain = SocketOptions::default();
        assert!(connect_options(&plain, 4).nodelay, "window 4");
        assert!(connect_options(&plain, 2).nodelay, "window 2");
        assert!(
            !connect_options(&plain, 1).nodelay,
            "window 1, no --nodelay"
        );
        let asked = SocketOptions {
            nodelay: true,
            ..SocketOptions::default()
        };
        assert!(connect_options(&asked, 1).nodelay, "window 1, --nodelay");
    }

    #[test]
    fn sequence_numbers_round_trip_through_the_payload() {
        let payload = Payload::new(32, Transform::Upper, Framing::None);
        let mut out = Vec::new();
        payload.write_request(1234, &mut out);
        assert_eq!(&out[..8], b"00001234");
        assert_eq!(read_seq(&out[..8]), Some(1234));
        let mut reply = out.clone();
        Transform::Upper.apply(&mut reply);
        assert!(matches_reply(&payload, 1234, 0, &reply));
        assert!(matches_reply(&payload, 1234, 10, &reply[10..]));
        assert!(!matches_reply(&payload, 1235, 0, &reply));
        assert!(!matches_reply(&payload, 1234, 0, &out), "not upper-cased");
        // Pieces that start or end inside the digits.
        assert!(matches_reply(&payload, 1234, 3, &reply[3..6]));
        assert!(matches_reply(&payload, 1234, 6, &reply[6..20]));
        assert!(!matches_reply(&payload, 1234, 6, &out[6..20]));
        assert!(
            !matches_reply(&payload, 1234, 30, &reply[..5]),
            "past the end"
        );
    }

    #[test]
    fn a_long_reply_is_checked_in_every_byte_from_any_starting_point() {
        for framing in [Framing::None, Framing::Length, Framing::Line] {
            let payload = Payload::new(10_000, Transform::Upper, framing);
            assert_eq!(payload.periodic, framing != Framing::Line, "{framing:?}");
            let mut reply = Vec::new();
            payload.write_request(42, &mut reply);
            let header = payload.offset;
            reply[header..header + 10_000].make_ascii_uppercase();
            reply[header..header + SEQ_DIGITS].copy_from_slice(b"00000042");
            for start in [0, 3, header + SEQ_DIGITS, 500, 2 * PERIOD + 7] {
                for end in [start + 2 * PERIOD + 1, 7000, reply.len()] {
                    let piece = &reply[start..end];
                    assert!(matches_reply(&payload, 42, start, piece), "{start}..{end}");
                    for wrong in [start, start + PERIOD - 1, start + PERIOD, end - 1] {
                        let mut bad = piece.to_vec();
                        bad[wrong - start] ^= 0x20;
                        assert!(
                            !matches_reply(&payload, 42, start, &bad),
                            "{framing:?} {start}..{end}: byte {wrong} wrong"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn framed_requests_carry_the_sequence_after_the_header() {
        let payload = Payload::new(10, Transform::Upper, Framing::Length);
        let mut out = Vec::new();
        payload.write_request(7, &mut out);
        assert_eq!(&out[..4], &[0, 0, 0, 10]);
        assert_eq!(&out[4..12], b"00000007");
        let mut reply = out.clone();
        reply[12..].make_ascii_uppercase();
        assert!(matches_reply(&payload, 7, 0, &reply));
    }
}
