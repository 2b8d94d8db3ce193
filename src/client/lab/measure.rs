//! A row measured through the load loop and the exchange client: connect(2) times, ping-pong
//! round trips, pipelined load, and a burst of small sends to see whether boundaries hold.

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use hdrhistogram::Histogram;

use crate::client::bench::load::{self, Limit, LoadResult, LoadSpec, STREAM_STALL, TcpTotals};
use crate::client::bench::loss::Loss;
use crate::client::exchange::{Burst, ClientConfig, Exchanger};
use crate::client::local;
use crate::endpoint::{Address, Family, SockProto, SocketKind, Target};
use crate::report::{Percentiles, latency_histogram, p50_of_rounds};
use crate::service::echo::Transform;
use crate::transport::framing::{DEFAULT_MAX_FRAME, Framing};
use crate::transport::{self, Conn, Received, SocketOptions};

use super::plan::{BURST, BURST_SIZE, HOL_MESSAGES, HOL_SIZE, Plan, SETUPS};
use super::rows::{BoundaryRow, HeadOfLine, Row, TcpInfoRow, Waits, on_loopback};
use super::why::{self, why};

/// How long the lab waits for a reply before it counts the request as lost.
pub(super) const TIMEOUT: Duration = Duration::from_millis(500);
/// Bytes of each message under pipelined load, and of each ping-pong message.
pub(super) const LOAD_SIZE: usize = 1024;
pub(super) const PING_SIZE: usize = 64;
/// Round trips a round needs for its p50 to count among the rounds'.
pub(super) const MIN_ROUND_SAMPLES: u64 = 20;
/// Replies that may come back changed, one per this many that matched (a bit flipped past
/// the checksums on a long path), before the lab calls the server no echo.
const MISMATCH_SHARE: u64 = 100;

/// A row of `target`: every column measured, ping-pong and load in [`Plan::rounds`] rounds.
pub(super) fn measure(target: &Target, plan: &Plan) -> Result<Row> {
    // Its warning names the row as the table does (a tls row is "tls", not "tcp").
    let what = format!("{} {}", target_name(target), target.addr);
    once_more(&what, || {
        measure_once(target, plan).map_err(|e| through_loss(e, target, plan.set_loss))
    })
}

/// `e`, or, when it is a handshake nobody answered through the loss this lab set itself
/// (`set_loss`), that loss named as its likely cause and what to do: the lab made the path,
/// so no firewall or host that is down is to blame.
fn through_loss(e: anyhow::Error, target: &Target, set_loss: Option<f64>) -> anyhow::Error {
    let Some(loss) = set_loss else { return e };
    let stalled = transport::handshake_unanswered(&e);
    if !stalled && !transport::carries::<crate::error::NoAnswer>(&e) {
        return e;
    }
    let said = format!(
        "the {} handshake with {} got no answer through the --loss {}% this lab set: use a \
         lower --loss",
        target_name(target),
        target.addr,
        // In nftables' steps of 0.01%, as the lab set it.
        (loss * 10_000.0).round() / 100.0
    );
    // A TLS or QUIC handshake stays one that got no answer (not measured once more).
    match stalled {
        true => crate::error::NoHandshake(said).into(),
        false => anyhow!(said),
    }
}

/// A measurement taken again once when it fails: on a loaded machine one reply can miss
/// [`TIMEOUT`], and a class's lab should not end on it. A second failure is the lab's error.
pub(super) fn once_more<T>(
    what: &dyn std::fmt::Display,
    mut measure: impl FnMut() -> Result<T>,
) -> Result<T> {
    measure().or_else(|e| {
        // Stopped by Ctrl-C: the clean-up removed what was being measured; no retry to tell.
        // A server that does not echo would not echo the second time either.
        // Nor a lab server that went away: its ports closed with it.
        // Nor a row this machine's firewall refuses: the same rule refuses it again.
        // Nor a TLS or QUIC handshake that got no answer in its seconds: the server stalled
        // (a lab server's row says so, once), and a second wait would only repeat it.
        if local::stopping()
            || e.is::<NotEcho>()
            || super::remote::server_gone()
            || refused_here(&e).is_some()
            || transport::handshake_unanswered(&e)
        {
            return Err(e);
        }
        // A question ends its own sentence: no "?;".
        let said = format!("{e:#}");
        let then = match said.ends_with('?') {
            true => " Measuring it once more",
            false => "; measuring it once more",
        };
        super::say(tracing::Level::WARN, &format!("lab: {what}: {said}{then}"));
        measure()
    })
}

/// The errno ("EPERM", "EACCES") of `e` when it is this machine refusing the row's packets:
/// a netfilter OUTPUT rule's verdict, reported to the sender of a send or a connect.
pub(super) fn refused_here(e: &anyhow::Error) -> Option<&'static str> {
    let io = e
        .chain()
        .filter_map(|cause| cause.downcast_ref::<std::io::Error>())
        .find_map(std::io::Error::raw_os_error);
    // A failed connect or send says the errno by name, as text.
    let said = format!("{e:#}");
    refused_errno(io).or_else(|| {
        ["EPERM", "EACCES"]
            .into_iter()
            .find(|name| said.contains(&format!("({name})")))
    })
}

/// "EPERM" or "EACCES" when `errno` is one.
pub(super) fn refused_errno(errno: Option<i32>) -> Option<&'static str> {
    match errno? {
        libc::EPERM => Some("EPERM"),
        libc::EACCES => Some("EACCES"),
        _ => None,
    }
}

/// When a row last finished a step (a round's run, the burst, one connection set up), on
/// whichever thread measures it: a lab server's row is waited for while its steps go on
/// ([`last_step`]), so a slow server is measured and one that stopped is not waited for.
static LAST_STEP: Mutex<Option<Instant>> = Mutex::new(None);

/// A step of the row under way is done.
fn stepped() {
    *LAST_STEP.lock().unwrap_or_else(PoisonError::into_inner) = Some(Instant::now());
}

/// When a row last finished a step, if one has.
pub(super) fn last_step() -> Option<Instant> {
    *LAST_STEP.lock().unwrap_or_else(PoisonError::into_inner)
}

fn measure_once(target: &Target, plan: &Plan) -> Result<Row> {
    let mut rounds = Rounds::new()?;
    for _ in 0..plan.rounds {
        let ping: LoadResult = load::run(&spec(target, 1, PING_SIZE, 1, plan.ping))?;
        stepped();
        let bulk = spec(target, plan.clients, LOAD_SIZE, plan.window, plan.load);
        rounds.add(&ping, &load::run(&bulk)?)?;
        stepped();
    }
    rounds.echoed(target)?;
    let got = send_burst(target, Framing::None)?;
    stepped();
    let mut row = Row {
        proto: row_name(target),
        family: target.addr.family(),
        socket_type: socket_type(target.proto),
        address: target.addr.to_string(),
        setup_us: setup_time(target)?,
        latency_us: Percentiles::of(&rounds.ping),
        p50_rounds_us: Vec::new(),
        rounds_left_out: plan.rounds - rounds.p50s.len(),
        median_round_p50_us: 0.0,
        messages_per_s: median(&rounds.rates).0.round(),
        messages_per_s_rounds: per_round(&rounds.rates),
        in_flight: plan.clients * plan.window,
        mb_per_s: (median(&rounds.rates).1 * 100.0).round() / 100.0,
        sent: rounds.sent,
        lost: rounds.loss.lost,
        loss_cause: rounds.loss.cause(),
        boundaries_kept: got.replies.iter().all(|r| r.len() == BURST_SIZE),
        burst_reads: got.reads,
        burst_lost: got.missing,
        ordered: rounds.ordered,
        why: String::new(),
        tcp_info: rounds.tcp.map(|t| TcpInfoRow {
            connections: t.conns,
            retransmits: t.retransmits,
            rtt_us: t.mean_rtt_us(),
            cwnd: t.mean_cwnd(),
        }),
        latency: None,
        lossless: plan.lossless || on_loopback(&target.addr.to_string()),
    };
    let (p50, p50s) = p50_of_rounds(rounds.p50s);
    row.median_round_p50_us = p50.unwrap_or(row.latency_us.p50);
    row.p50_rounds_us = p50s;
    row.latency = Some(rounds.ping);
    row.why = why(target.proto.proto(), v6(&target.addr), &row);
    Ok(row)
}

/// A row's name: its protocol, or "tls" for a stream whose server has a certificate.
fn row_name(target: &Target) -> String {
    match (target.proto, local::trust(target)) {
        (SockProto::Quic, _) | (_, None) => target.proto.to_string(),
        (_, Some(_)) => "tls".into(),
    }
}

/// The name the table will give `target`'s row, for the progress line.
pub(super) fn target_name(target: &Target) -> String {
    match v6(&target.addr) {
        true => format!("{}6", row_name(target)),
        false => row_name(target),
    }
}

/// The socket a row's client opens: QUIC runs over a UDP socket.
fn socket_type(proto: SockProto) -> &'static str {
    match proto {
        SockProto::Quic => SocketKind::Datagram.name(),
        other => other.kind().name(),
    }
}

/// The socket options for a client of `target`: a local server's certificate pinned.
fn options(target: &Target) -> SocketOptions {
    local::options_for(target, &SocketOptions::default())
}

/// Whether `addr` is reached over IPv6.
pub(super) fn v6(addr: &Address) -> bool {
    addr.family() == Some(Family::Inet6)
}

/// The median of `values` by their first number: the middle one, or of an even count the
/// mean of the middle two (the upper one alone would hide a stalled round's neighbour).
pub(super) fn median(values: &[(f64, f64)]) -> (f64, f64) {
    let mut sorted = values.to_vec();
    sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
    let n = sorted.len();
    match (n % 2, sorted.get(n / 2)) {
        (_, None) => (0.0, 0.0),
        (1, Some(&middle)) => middle,
        (_, Some(&(a, b))) => {
            let (c, d) = sorted[n / 2 - 1];
            ((a + c) / 2.0, (b + d) / 2.0)
        }
    }
}

/// Each round's msg/s, whole, lowest first.
fn per_round(rates: &[(f64, f64)]) -> Vec<f64> {
    let mut each: Vec<f64> = rates.iter().map(|r| r.0.round()).collect();
    each.sort_by(f64::total_cmp);
    each
}

/// A server whose replies are not its requests: measuring it again would not change that.
#[derive(Debug)]
struct NotEcho(String);

impl std::fmt::Display for NotEcho {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for NotEcho {}

/// What a row's rounds measured together.
struct Rounds {
    /// Every round's ping-pong round trips.
    ping: Histogram<u64>,
    /// Each round's ping-pong p50, in nanoseconds.
    p50s: Vec<u64>,
    /// Each round's load: messages and megabytes per second.
    rates: Vec<(f64, f64)>,
    sent: u64,
    /// Replies that matched their requests, and those that did not.
    answered: u64,
    mismatched: u64,
    loss: Loss,
    ordered: bool,
    tcp: Option<TcpTotals>,
}

impl Rounds {
    fn new() -> Result<Rounds> {
        Ok(Rounds {
            ping: latency_histogram(),
            p50s: Vec::new(),
            rates: Vec::new(),
            sent: 0,
            answered: 0,
            mismatched: 0,
            loss: Loss::default(),
            ordered: true,
            tcp: None,
        })
    }

    /// Whether the server echoed: most replies matched their requests, upper-cased, byte
    /// for byte. A server that answers something else has no round trips worth a table.
    fn echoed(&self, target: &Target) -> Result<()> {
        if self.mismatched > self.answered / MISMATCH_SHARE {
            return Err(NotEcho(format!(
                "{target}: {} of {} replies did not match their requests: the server does not \
                 echo (upper-cased), so its numbers would mean nothing; point the lab at a \
                 netecho lab server",
                self.mismatched,
                self.mismatched + self.answered
            ))
            .into());
        }
        Ok(())
    }

    /// One round: a ping-pong run and a load run.
    fn add(&mut self, ping: &LoadResult, bulk: &LoadResult) -> Result<()> {
        self.ping
            .add(&ping.latency)
            .context("merge the rounds' round trips")?;
        // A round of a few round trips (a lost SYN, a retransmission timeout taking most
        // of it) has no median worth comparing; its round trips still count in the tails.
        if ping.latency.len() >= MIN_ROUND_SAMPLES {
            self.p50s.push(ping.latency.value_at_quantile(0.5));
        }
        self.rates
            .push((bulk.requests_per_sec(), bulk.mb_per_sec()));
        for r in [ping, bulk] {
            // Lost counts both runs' requests, so sent does too (a share, never over 100%).
            self.sent += r.sent;
            self.answered += r.answered;
            self.mismatched += r.mismatched;
            self.loss.lost += r.lost;
            self.loss.rxq_overflow += r.rxq_overflow;
            self.loss.send_errors += r.send_errors;
            if let Some(m) = r.machine {
                let seen = self.loss.machine.get_or_insert_with(Default::default);
                seen.rcvbuf_errors += m.rcvbuf_errors;
                seen.sndbuf_errors += m.sndbuf_errors;
            }
        }
        self.ordered &= bulk.reordered == 0 && ping.reordered == 0 && bulk.mismatched == 0;
        if let Some(t) = &bulk.tcp {
            let sum = self.tcp.get_or_insert(TcpTotals::default());
            sum.conns += t.conns;
            sum.retransmits += t.retransmits;
            sum.rtt_us += t.rtt_us;
            sum.cwnd += t.cwnd;
        }
        Ok(())
    }
}

/// A timed run of `clients` clients, `window` messages of `size` bytes each in flight.
pub(super) fn spec(
    target: &Target,
    clients: usize,
    size: usize,
    window: usize,
    time: Duration,
) -> LoadSpec {
    LoadSpec {
        target: target.clone(),
        clients,
        size,
        window,
        limit: Limit::Duration(time),
        threads: clients.min(2),
        timeout: TIMEOUT,
        // A stream row loses nothing: a late reply on a busy machine is a wait, not a failure.
        stall: STREAM_STALL,
        expect: Transform::Upper,
        idle: false,
        framing: Framing::None,
        opts: options(target),
        rate: None,
    }
}

/// The exchange client's settings for one burst: no retries, so what comes back is what the
/// socket gave.
pub(super) fn client_config(framing: Framing) -> ClientConfig {
    ClientConfig {
        opts: SocketOptions::default(),
        timeout: TIMEOUT,
        retries: 0,
        framing,
        max_frame: DEFAULT_MAX_FRAME as usize,
    }
}

/// connect(2) timed [`SETUPS`] times; the median, in microseconds.
fn setup_time(target: &Target) -> Result<u64> {
    let mut times = Vec::with_capacity(SETUPS);
    for _ in 0..SETUPS {
        let start = Instant::now();
        let conn = transport::connect(target, &options(target))
            .with_context(|| format!("connect to the local {target}"))?;
        times.push(start.elapsed().as_micros() as u64);
        drop(conn);
        // Fifty TLS or QUIC handshakes take seconds from a busy server: each is a step.
        stepped();
    }
    times.sort_unstable();
    Ok(times[SETUPS / 2].max(1))
}

fn send_burst(target: &Target, framing: Framing) -> Result<Burst> {
    let config = ClientConfig {
        opts: options(target),
        ..client_config(framing)
    };
    let mut client = Exchanger::connect(target, &config).map_err(anyhow::Error::from)?;
    client.burst(&[b'b'; BURST_SIZE], BURST)
}

/// The boundaries burst over a stream with `framing`: reads taken, messages recovered.
pub(super) fn boundary_row(target: &Target, framing: Framing) -> Result<BoundaryRow> {
    let got = once_more(target, || send_burst(target, framing))?;
    // Unframed, the client can only take each read for a message.
    let messages = got.replies.iter().filter(|r| r.len() == BURST_SIZE).count();
    Ok(BoundaryRow {
        proto: target.proto.to_string(),
        framing: framing.name().to_string(),
        sends: BURST,
        reads: got.reads,
        messages,
        bytes: got.replies.iter().map(Vec::len).sum(),
    })
}

/// Head-of-line blocking, from the clients' side of `lab --netns`: [`HOL_MESSAGES`] messages
/// at once on one tcp connection, and as as many streams of one quic connection, `rounds`
/// times each; the sentence the waits make. `None` without both a plain tcp and a quic
/// target.
pub(super) fn head_of_line(targets: &[Target], rounds: usize) -> Result<Option<String>> {
    let tcp = targets
        .iter()
        .find(|t| t.proto == SockProto::Tcp && local::trust(t).is_none());
    let quic = targets.iter().find(|t| t.proto == SockProto::Quic);
    let (Some(tcp), Some(quic)) = (tcp, quic) else {
        return Ok(None);
    };
    let hol = HeadOfLine {
        messages: HOL_MESSAGES,
        size: HOL_SIZE,
        rounds,
        tcp: Waits::of(&mut burst_waits(tcp, rounds)?),
        quic: Waits::of(&mut burst_waits(quic, rounds)?),
    };
    Ok(Some(why::head_of_line(&hol)))
}

/// How long each message of `rounds` bursts waited for its reply, in microseconds from the
/// burst's start: on a stream, the moment its last byte came back.
fn burst_waits(target: &Target, rounds: usize) -> Result<Vec<u64>> {
    let opts = SocketOptions {
        nodelay: true,
        ..options(target)
    };
    let conn = transport::connect_first(target, &opts)?;
    conn.set_read_timeout(Some(TIMEOUT * 20))?;
    let whole = conn.carrier(Framing::None).keeps_boundaries();
    let message = vec![b'h'; HOL_SIZE];
    let mut buf = vec![0u8; transport::MAX_MESSAGE];
    let mut waits = Vec::with_capacity(rounds * HOL_MESSAGES);
    for _ in 0..rounds {
        let start = Instant::now();
        for _ in 0..HOL_MESSAGES {
            conn.send_all(&message)
                .with_context(|| format!("{target}: send"))?;
        }
        let (mut bytes, mut done) = (0, 0);
        while done < HOL_MESSAGES {
            let n = read_some(&conn, &mut buf, target)?;
            bytes += n;
            let complete = if whole { done + 1 } else { bytes / HOL_SIZE };
            for _ in done..complete.min(HOL_MESSAGES) {
                waits.push(start.elapsed().as_micros() as u64);
            }
            done = complete;
        }
    }
    Ok(waits)
}

/// One read of replies: its length, or why there is none.
fn read_some(conn: &Conn, buf: &mut [u8], target: &Target) -> Result<usize> {
    match conn
        .recv(buf)
        .with_context(|| format!("{target}: no reply in time"))?
    {
        Received::Data(n) => Ok(n),
        Received::Closed | Received::Truncated(_) => {
            anyhow::bail!("{target}: the server closed the connection")
        }
    }
}
