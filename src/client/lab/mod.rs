//! `netecho lab`: the one command a newcomer runs. Starts its own echo server for every
//! protocol it can use here, measures each the same way, and prints one comparison table
//! with a sentence per row on why it differs; then removes everything it made.

pub mod netns;

use std::io::Write;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use hdrhistogram::Histogram;
use serde::Serialize;
use tracing::{info, warn};

use crate::cli::LabArgs;
use crate::endpoint::{Address, Endpoint, Proto, SocketKind};
use crate::packet::DEFAULT_IP_PROTO;
use crate::report::{self, Format, Percentiles};
use crate::service::echo::Transform;
use crate::service::framing::{DEFAULT_MAX_FRAME, Framing};
use crate::transport::{self, SocketOptions};

use crate::client::bench::load::{self, Limit, LoadResult, LoadSpec};
use crate::client::exchange::{ClientConfig, Exchanger};
use crate::client::local::{LocalServers, family};
use crate::client::raw::RawClient;
use netns::{Netns, SERVER_IP};

/// The layout of `--format json`.
pub const SCHEMA: &str = "netecho-lab/1";

/// Messages in the boundaries burst, and their size.
const BURST: usize = 50;
const BURST_SIZE: usize = 16;
/// connect() calls timed for the set-up column.
const SETUPS: usize = 50;

/// One protocol's row.
#[derive(Debug, Serialize)]
pub struct Row {
    pub proto: String,
    pub family: &'static str,
    pub socket_type: &'static str,
    pub address: String,
    /// connect(2) time, p50, in microseconds.
    pub setup_us: u64,
    /// Ping-pong round trips (one client, one message in flight).
    pub latency_us: Percentiles,
    /// Pipelined load (several clients, a window of messages in flight).
    pub messages_per_s: f64,
    pub mb_per_s: f64,
    pub sent: u64,
    pub lost: u64,
    /// A burst of small sends came back as exactly as many reads of one message each.
    pub boundaries_kept: bool,
    pub burst_reads: usize,
    /// Replies came back in the order sent (measured by sequence number).
    pub ordered: bool,
    pub why: &'static str,
    /// TCP rows: what TCP_INFO said of the pipelined connections at the end.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tcp_info: Option<TcpInfoRow>,
    #[serde(skip)]
    pub latency: Option<hdrhistogram::Histogram<u64>>,
}

/// TCP_INFO of a row's connections: how TCP turned loss into latency.
#[derive(Debug, Serialize)]
pub struct TcpInfoRow {
    pub connections: u64,
    /// Segments sent again, all connections together (tcpi_total_retrans).
    pub retransmits: u64,
    /// Mean smoothed round-trip time, microseconds (tcpi_rtt).
    pub rtt_us: u64,
    /// Mean congestion window, in segments (tcpi_snd_cwnd).
    pub cwnd: u64,
}

/// One burst over a stream with a framing: how many reads, how many messages recovered.
#[derive(Debug, Serialize)]
pub struct BoundaryRow {
    pub proto: String,
    pub framing: String,
    pub sends: usize,
    pub reads: usize,
    pub messages: usize,
}

#[derive(Debug, Serialize)]
struct Document<'a> {
    schema: &'static str,
    rows: &'a [Row],
    boundaries: &'a [BoundaryRow],
}

/// How long each measurement runs.
struct Plan {
    ping: Duration,
    load: Duration,
    clients: usize,
    window: usize,
}

pub fn run(args: &LabArgs) -> Result<()> {
    if args.format == Format::Ndjson {
        return Err(crate::error::UsageError::new(
            "lab --format ndjson: the lab prints one table at the end; use --format json \
             (ndjson streams bench's intervals)",
        )
        .into());
    }
    let started = Instant::now();
    let plan = plan(args.quick);
    if args.netns {
        return run_netns(args, &plan, started);
    }
    let servers = LocalServers::new()?;
    let mut rows = measure_protocols(&servers, &plan)?;
    // Raw rows need CAP_NET_RAW: without it the lab says so and measures the rest.
    match transport::raw::open(false, i32::from(DEFAULT_IP_PROTO), "raw 127.0.0.1") {
        Ok(_) => rows.extend(measure_raw_rows(&servers, &plan)?),
        Err(e) => warn!("lab: raw rows skipped: {e:#}"),
    }
    progress("boundaries");
    let boundaries = measure_boundaries(&servers)?;
    progress("");
    drop(servers);
    if let Some(path) = &args.plot {
        let series: Vec<(String, &hdrhistogram::Histogram<u64>)> = rows
            .iter()
            .filter_map(|r| Some((format!("{} {}", r.proto, r.family), r.latency.as_ref()?)))
            .collect();
        report::svg::write(path, "ping-pong latency by protocol", &series)?;
    }
    let text = match args.format {
        Format::Json => {
            let doc = Document {
                schema: SCHEMA,
                rows: &rows,
                boundaries: &boundaries,
            };
            serde_json::to_string_pretty(&doc).context("JSON")? + "\n"
        }
        Format::Csv => render_csv(&rows),
        Format::Ndjson => unreachable!("refused above"),
        Format::Table => render_table(&rows, &boundaries),
    };
    print(&text)?;
    info!("lab finished in {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}

/// A row for every protocol and family with no privilege needed, each against a server
/// of its own.
fn measure_protocols(servers: &LocalServers, plan: &Plan) -> Result<Vec<Row>> {
    let cases: Vec<(Proto, bool)> = vec![
        (Proto::Tcp, false),
        (Proto::Tcp, true),
        (Proto::Udp, false),
        (Proto::Udp, true),
        (Proto::Unix, false),
        (Proto::UnixDgram, false),
        (Proto::UnixSeqpacket, false),
    ];
    let mut rows = Vec::new();
    for (i, (proto, ipv6)) in cases.iter().enumerate() {
        let addr = servers.address_for(*proto, *ipv6);
        progress(&format!("[{}/{}] {proto} {addr}", i + 1, cases.len()));
        let target = servers.start(*proto, &addr, &[])?;
        rows.push(measure(&target, plan)?);
    }
    Ok(rows)
}

/// The raw IPv4 and IPv6 rows.
fn measure_raw_rows(servers: &LocalServers, plan: &Plan) -> Result<Vec<Row>> {
    let mut rows = Vec::new();
    for ipv6 in [false, true] {
        let addr = servers.address_for(Proto::Raw, ipv6);
        progress(&format!("raw {addr}"));
        let target = servers.start(Proto::Raw, &addr, &[])?;
        rows.push(measure_raw(&target, plan)?);
    }
    Ok(rows)
}

/// One burst through each stream and framing.
fn measure_boundaries(servers: &LocalServers) -> Result<Vec<BoundaryRow>> {
    let mut boundaries = Vec::new();
    for proto in [Proto::Tcp, Proto::Unix] {
        for framing in [Framing::None, Framing::Line, Framing::Length] {
            let name = format!("{}-{}", proto.name(), framing.name());
            let addr = match proto {
                Proto::Tcp => "127.0.0.1:0".to_string(),
                _ => servers.path(&format!("{name}.sock")).display().to_string(),
            };
            let target = servers.start(proto, &addr, &["--framing", framing.name()])?;
            boundaries.push(boundary_row(&target, framing)?);
        }
    }
    Ok(boundaries)
}

fn print(text: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|_| out.flush())
        .context("write to stdout")
}

/// How long each measurement runs: `--quick` or the full run.
fn plan(quick: bool) -> Plan {
    if quick {
        Plan {
            ping: Duration::from_millis(150),
            load: Duration::from_millis(250),
            clients: 2,
            window: 8,
        }
    } else {
        // Nine rows as root (two of them raw): about 25 s in all, under the 30 s promised.
        Plan {
            ping: Duration::from_millis(1200),
            load: Duration::from_millis(1500),
            clients: 4,
            window: 16,
        }
    }
}

/// `lab --netns`: tcp and udp between two network namespaces, through real loss and rate
/// limits when asked; the table, then what the kernel did about the loss.
fn run_netns(args: &LabArgs, plan: &Plan, started: Instant) -> Result<()> {
    let servers = LocalServers::new()?;
    let ns = Netns::create(servers.namespaces(), args.loss.unwrap_or(0.0), args.rate)?;
    for note in &ns.notes {
        info!("{note}");
    }
    let prefix = ns.server_prefix();
    let addr = format!("{SERVER_IP}:0");
    let targets = [Proto::Tcp, Proto::Udp]
        .into_iter()
        .map(|proto| servers.start_in(&prefix, proto, &addr, &[]))
        .collect::<Result<Vec<_>>>()?;
    // The measuring thread moves into the clients' namespace; every load thread it starts
    // is born there. This thread stays where it was, free to clean up.
    let rows = std::thread::scope(|scope| {
        scope
            .spawn(|| -> Result<Vec<Row>> {
                ns.enter_client()?;
                targets
                    .iter()
                    .enumerate()
                    .map(|(i, target)| {
                        progress(&format!(
                            "[{}/{}] {target} across namespaces",
                            i + 1,
                            targets.len()
                        ));
                        measure(target, plan)
                    })
                    .collect()
            })
            .join()
            .unwrap_or_else(|_| Err(anyhow::anyhow!("the measuring thread panicked")))
    })?;
    progress("");
    drop(servers);
    let text = match args.format {
        Format::Json => {
            #[derive(Serialize)]
            struct NetnsDocument<'a> {
                schema: &'static str,
                netns: &'a [String],
                rows: &'a [Row],
            }
            serde_json::to_string_pretty(&NetnsDocument {
                schema: SCHEMA,
                netns: &ns.notes,
                rows: &rows,
            })
            .context("JSON")?
                + "\n"
        }
        Format::Csv => render_csv(&rows),
        Format::Ndjson => unreachable!("refused above"),
        Format::Table => {
            let mut text = render_table(&rows, &[]);
            text.push('\n');
            for note in &ns.notes {
                text.push_str(&format!("- {note}\n"));
            }
            for r in &rows {
                text.push_str(&format!("- {}\n", consequence(r)));
            }
            text
        }
    };
    print(&text)?;
    info!(
        "lab finished in {:.1} s; namespaces removed",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// What loss did to a row: TCP hides it as retransmissions and a tail, UDP shows it.
fn consequence(r: &Row) -> String {
    match &r.tcp_info {
        Some(t) => format!(
            "{}: {} retransmits over {} connections (TCP_INFO), smoothed rtt {} us, cwnd {} \
             segments; nothing lost to the program, the loss shows as latency: p50 {} us, p99.9 \
             {} us",
            r.proto,
            t.retransmits,
            t.connections,
            t.rtt_us,
            t.cwnd,
            r.latency_us.p50,
            r.latency_us.p99_9
        ),
        None => format!(
            "{}: {} of {} datagrams lost, and nobody sent them again: the gaps are the program's \
             to handle",
            r.proto, r.lost, r.sent
        ),
    }
}

/// A status line on stderr, only when it is a terminal.
fn progress(what: &str) {
    use std::io::IsTerminal;
    let mut err = std::io::stderr();
    if err.is_terminal() {
        let _ = write!(err, "\r\x1b[2Klab: {what}");
        if what.is_empty() {
            let _ = write!(err, "\r\x1b[2K");
        }
        let _ = err.flush();
    }
}

fn spec(target: &Endpoint, clients: usize, size: usize, window: usize, time: Duration) -> LoadSpec {
    LoadSpec {
        target: target.clone(),
        clients,
        size,
        window,
        limit: Limit::Duration(time),
        threads: clients.min(2),
        timeout: Duration::from_millis(500),
        expect: Transform::Upper,
        idle: false,
        framing: Framing::None,
        opts: SocketOptions::default(),
        rate: None,
    }
}

fn measure(target: &Endpoint, plan: &Plan) -> Result<Row> {
    let ping: LoadResult = load::run(&spec(target, 1, 64, 1, plan.ping))?;
    let size = 1024;
    let bulk: LoadResult = load::run(&spec(target, plan.clients, size, plan.window, plan.load))?;
    let (boundaries_kept, burst_reads) = burst(target, Framing::None)?;
    let kind = target.proto.kind();
    Ok(Row {
        proto: target.proto.to_string(),
        family: family(target),
        socket_type: match kind {
            SocketKind::Stream => "SOCK_STREAM",
            SocketKind::Datagram => "SOCK_DGRAM",
            SocketKind::SeqPacket => "SOCK_SEQPACKET",
        },
        address: target.addr.to_string(),
        setup_us: setup_time(target)?,
        latency_us: Percentiles::of(&ping.latency),
        messages_per_s: (bulk.requests_per_sec()).round(),
        mb_per_s: (bulk.mb_per_sec() * 100.0).round() / 100.0,
        sent: bulk.sent,
        lost: bulk.lost + ping.lost,
        boundaries_kept,
        burst_reads,
        ordered: bulk.reordered == 0 && ping.reordered == 0 && bulk.mismatched == 0,
        why: why(target),
        tcp_info: bulk.tcp.map(|t| TcpInfoRow {
            connections: t.conns,
            retransmits: t.retransmits,
            rtt_us: t.mean_rtt_us(),
            cwnd: t.mean_cwnd(),
        }),
        latency: Some(ping.latency),
    })
}

/// Exchanges of one raw measurement.
#[derive(Default)]
struct RawRun {
    sent: u64,
    answered: u64,
    lost: u64,
    mismatched: u64,
    bytes: u64,
}

impl RawRun {
    /// One request and its reply, checked against the upper-cased request; its round trip
    /// into `latency` when given. Silence counts as lost.
    fn one(&mut self, client: &mut RawClient, msg: &[u8], latency: Option<&mut Histogram<u64>>) {
        let start = Instant::now();
        self.sent += 1;
        match client.exchange(msg) {
            Ok(reply) if reply == msg.to_ascii_uppercase() => {
                self.answered += 1;
                self.bytes += reply.len() as u64;
                if let Some(h) = latency {
                    let _ = h.record((start.elapsed().as_micros() as u64).max(1));
                }
            }
            Ok(_) => self.mismatched += 1,
            Err(e) => {
                tracing::debug!("raw: {e:#}");
                self.lost += 1;
            }
        }
    }
}

/// A raw row, measured with the raw client: the load loop has no raw sockets, so the
/// throughput here is one message at a time, and the `why` says so.
fn measure_raw(target: &Endpoint, plan: &Plan) -> Result<Row> {
    let config = ClientConfig {
        opts: SocketOptions::default(),
        timeout: Duration::from_millis(500),
        retries: 0,
        framing: Framing::None,
        max_frame: DEFAULT_MAX_FRAME as usize,
    };
    // Set-up: socket(2) and connect(2), which on a raw socket only records the peer.
    let mut setups = Vec::with_capacity(SETUPS);
    for _ in 0..SETUPS {
        let start = Instant::now();
        let client = RawClient::open(target, &config)?;
        setups.push(start.elapsed().as_micros() as u64);
        drop(client);
    }
    setups.sort_unstable();
    let mut client = RawClient::open(target, &config)?;
    let mut latency =
        Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).context("histogram bounds")?;
    let mut ping = RawRun::default();
    let end = Instant::now() + plan.ping;
    while Instant::now() < end {
        ping.one(&mut client, &[b'p'; 64], Some(&mut latency));
    }
    let mut load = RawRun::default();
    let started = Instant::now();
    while started.elapsed() < plan.load {
        load.one(&mut client, &[b'b'; 1024], None);
    }
    let elapsed = started.elapsed().as_secs_f64();
    let replies = client.burst(&[b'b'; BURST_SIZE], BURST)?;
    let kept = replies.len() == BURST && replies.iter().all(|(_, r)| r.len() == BURST_SIZE);
    let in_order = replies.windows(2).all(|w| w[0].0 < w[1].0);
    Ok(Row {
        proto: target.proto.to_string(),
        family: family(target),
        socket_type: "SOCK_RAW",
        address: match &target.addr {
            Address::Ip(a) => a.ip().to_string(),
            other => other.to_string(),
        },
        setup_us: setups[SETUPS / 2].max(1),
        latency_us: Percentiles::of(&latency),
        messages_per_s: (load.answered as f64 / elapsed).round(),
        mb_per_s: (load.bytes as f64 / elapsed / 1e6 * 100.0).round() / 100.0,
        sent: load.sent,
        lost: ping.lost + load.lost,
        boundaries_kept: kept,
        burst_reads: replies.len(),
        ordered: in_order && ping.mismatched + load.mismatched == 0,
        why: why(target),
        latency: Some(latency),
        tcp_info: None,
    })
}

/// connect(2) timed [`SETUPS`] times; the median, in microseconds.
fn setup_time(target: &Endpoint) -> Result<u64> {
    let mut times = Vec::with_capacity(SETUPS);
    for _ in 0..SETUPS {
        let start = Instant::now();
        let conn = transport::connect(target, &SocketOptions::default())
            .with_context(|| format!("connect to the local {target}"))?;
        times.push(start.elapsed().as_micros() as u64);
        drop(conn);
    }
    times.sort_unstable();
    Ok(times[SETUPS / 2].max(1))
}

/// Sends [`BURST`] small messages back to back; whether they came back as exactly that many
/// reads of one message each, and how many reads it took.
fn burst(target: &Endpoint, framing: Framing) -> Result<(bool, usize)> {
    let got = send_burst(target, framing)?;
    let kept = got.replies.len() == BURST && got.replies.iter().all(|r| r.len() == BURST_SIZE);
    Ok((kept && got.reads == BURST, got.reads))
}

fn send_burst(target: &Endpoint, framing: Framing) -> Result<crate::client::exchange::Burst> {
    let config = ClientConfig {
        opts: SocketOptions::default(),
        timeout: Duration::from_millis(500),
        retries: 0,
        framing,
        max_frame: DEFAULT_MAX_FRAME as usize,
    };
    let mut client = Exchanger::connect(target, &config).map_err(anyhow::Error::from)?;
    client.burst(&[b'b'; BURST_SIZE], BURST)
}

fn boundary_row(target: &Endpoint, framing: Framing) -> Result<BoundaryRow> {
    let got = send_burst(target, framing)?;
    // Unframed, the client can only take each read for a message.
    let messages = got.replies.iter().filter(|r| r.len() == BURST_SIZE).count();
    Ok(BoundaryRow {
        proto: target.proto.to_string(),
        framing: framing.name().to_string(),
        sends: BURST,
        reads: got.reads,
        messages,
    })
}

/// One sentence on why a row differs from the others.
fn why(target: &Endpoint) -> &'static str {
    let v6 = family(target) == "AF_INET6";
    match (target.proto, v6) {
        (Proto::Tcp, false) => {
            "tcp: a handshake before the first byte; the kernel retransmits, \
            orders and paces a byte stream, so small messages can merge into one read"
        }
        (Proto::Tcp, true) => {
            "tcp over IPv6: the same protocol with a 40-byte IP header instead \
            of 20; on loopback the difference is in the noise"
        }
        (Proto::Udp, false) => {
            "udp: no handshake, no retransmission, no ordering: each datagram \
            stands alone, and a full receive buffer drops it"
        }
        (Proto::Udp, true) => {
            "udp over IPv6: as udp over IPv4; the kernel still checksums \
            (a UDP checksum is mandatory over IPv6)"
        }
        (Proto::Unix, _) => {
            "unix: a stream like tcp that skips the IP stack: no handshake on a \
            wire, no checksums, no congestion control"
        }
        (Proto::UnixDgram, _) => {
            "unix-dgram: datagrams that are never lost in flight: a full \
            receiver makes the sender wait (or fail) instead"
        }
        (Proto::UnixSeqpacket, _) => {
            "unix-seqpacket: connected and reliable like a stream, yet \
            every send is one read: message boundaries are kept"
        }
        (Proto::Raw, true) => {
            "raw over IPv6: the reader gets the payload alone (the kernel keeps the IPv6 \
            header; the hop limit comes beside it)"
        }
        (Proto::Raw, false) => {
            "raw: whole IP packets of one protocol and no ports: the kernel hands each to \
            every raw socket for it, so a netecho header tells requests from replies \
            (msgs/s one message at a time: the load loop has no raw client)"
        }
    }
}

fn yes(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

fn render_table(rows: &[Row], boundaries: &[BoundaryRow]) -> String {
    let head = [
        "proto",
        "family",
        "type",
        "setup_us",
        "p50_us",
        "p99_us",
        "p99.9_us",
        "msgs/s",
        "MB/s",
        "lost",
        "boundaries",
        "ordered",
    ];
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.proto.clone(),
                r.family.to_string(),
                r.socket_type.to_string(),
                r.setup_us.to_string(),
                r.latency_us.p50.to_string(),
                r.latency_us.p99.to_string(),
                r.latency_us.p99_9.to_string(),
                format!("{:.0}", r.messages_per_s),
                format!("{:.1}", r.mb_per_s),
                format!("{}/{}", r.lost, r.sent),
                format!("{} ({} reads)", yes(r.boundaries_kept), r.burst_reads),
                yes(r.ordered).to_string(),
            ]
        })
        .collect();
    let mut text = align(&head, &cells);
    text.push('\n');
    for r in rows {
        text.push_str(&format!("- {}\n", r.why));
    }
    if boundaries.is_empty() {
        return text;
    }
    text.push_str(&format!(
        "\nMessage boundaries: {BURST} sends of {BURST_SIZE} bytes back to back on a stream\n"
    ));
    let cells: Vec<Vec<String>> = boundaries
        .iter()
        .map(|b| {
            vec![
                b.proto.clone(),
                b.framing.clone(),
                b.sends.to_string(),
                b.reads.to_string(),
                b.messages.to_string(),
            ]
        })
        .collect();
    text.push_str(&align(
        &["proto", "framing", "sends", "reads", "messages"],
        &cells,
    ));
    text.push_str(
        "- without framing a stream returns whatever bytes have arrived: several sends can \
         come back in one read; a line or length framing recovers every message\n",
    );
    text
}

fn render_csv(rows: &[Row]) -> String {
    let mut text = String::from(
        "proto,family,type,setup_us,p50_us,p99_us,p99_9_us,messages_per_s,mb_per_s,sent,lost,boundaries_kept,burst_reads,ordered\n",
    );
    for r in rows {
        text.push_str(&format!(
            "{},{},{},{},{},{},{},{:.0},{:.2},{},{},{},{},{}\n",
            r.proto,
            r.family,
            r.socket_type,
            r.setup_us,
            r.latency_us.p50,
            r.latency_us.p99,
            r.latency_us.p99_9,
            r.messages_per_s,
            r.mb_per_s,
            r.sent,
            r.lost,
            r.boundaries_kept,
            r.burst_reads,
            r.ordered
        ));
    }
    text
}

/// Columns padded to their widest cell; the first three to the left, numbers to the right.
fn align(head: &[&str], cells: &[Vec<String>]) -> String {
    let widths: Vec<usize> = head
        .iter()
        .enumerate()
        .map(|(i, h)| {
            cells
                .iter()
                .map(|row| row[i].len())
                .fold(h.len(), usize::max)
        })
        .collect();
    let line = |row: Vec<&str>| {
        let cells: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(i, c)| {
                if i < 3 {
                    format!("{c:<w$}", w = widths[i])
                } else {
                    format!("{c:>w$}", w = widths[i])
                }
            })
            .collect();
        cells.join("  ").trim_end().to_string() + "\n"
    };
    let mut text = line(head.to_vec());
    for row in cells {
        text.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    text
}
