//! A row measured through the load loop and the exchange client: connect(2) times, ping-pong
//! round trips, pipelined load, and a burst of small sends to see whether boundaries hold.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::client::bench::load::{self, Limit, LoadResult, LoadSpec};
use crate::client::exchange::{Burst, ClientConfig, Exchanger};
use crate::endpoint::{Endpoint, SocketKind};
use crate::report::Percentiles;
use crate::service::echo::Transform;
use crate::service::framing::{DEFAULT_MAX_FRAME, Framing};
use crate::transport::{self, SocketOptions};

use super::plan::{BURST, BURST_SIZE, Plan, SETUPS};
use super::rows::{BoundaryRow, Row, TcpInfoRow};
use super::why::why;

/// How long the lab waits for a reply before it counts the request as lost.
const TIMEOUT: Duration = Duration::from_millis(500);
/// Bytes of each message under pipelined load.
const LOAD_SIZE: usize = 1024;

/// A row of `target`: every column measured.
pub fn measure(target: &Endpoint, plan: &Plan) -> Result<Row> {
    let ping: LoadResult = load::run(&spec(target, 1, 64, 1, plan.ping))?;
    let bulk = spec(target, plan.clients, LOAD_SIZE, plan.window, plan.load);
    let bulk: LoadResult = load::run(&bulk)?;
    let (boundaries_kept, burst_reads) = burst(target)?;
    Ok(Row {
        proto: target.proto.to_string(),
        family: target.addr.family(),
        socket_type: match target.proto.kind() {
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

/// A timed run of `clients` clients, `window` messages of `size` bytes each in flight.
fn spec(target: &Endpoint, clients: usize, size: usize, window: usize, time: Duration) -> LoadSpec {
    LoadSpec {
        target: target.clone(),
        clients,
        size,
        window,
        limit: Limit::Duration(time),
        threads: clients.min(2),
        timeout: TIMEOUT,
        expect: Transform::Upper,
        idle: false,
        framing: Framing::None,
        opts: SocketOptions::default(),
        rate: None,
    }
}

/// The exchange client's settings for one burst: no retries, so what comes back is what the
/// socket gave.
pub fn client_config(framing: Framing) -> ClientConfig {
    ClientConfig {
        opts: SocketOptions::default(),
        timeout: TIMEOUT,
        retries: 0,
        framing,
        max_frame: DEFAULT_MAX_FRAME as usize,
    }
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

/// Sends [`BURST`] small messages back to back, unframed; whether they came back as exactly
/// that many reads of one message each, and how many reads it took.
fn burst(target: &Endpoint) -> Result<(bool, usize)> {
    let got = send_burst(target, Framing::None)?;
    let kept = got.replies.len() == BURST && got.replies.iter().all(|r| r.len() == BURST_SIZE);
    Ok((kept && got.reads == BURST, got.reads))
}

fn send_burst(target: &Endpoint, framing: Framing) -> Result<Burst> {
    let mut client =
        Exchanger::connect(target, &client_config(framing)).map_err(anyhow::Error::from)?;
    client.burst(&[b'b'; BURST_SIZE], BURST)
}

/// The boundaries burst over a stream with `framing`: reads taken, messages recovered.
pub fn boundary_row(target: &Endpoint, framing: Framing) -> Result<BoundaryRow> {
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
