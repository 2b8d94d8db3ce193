//! A raw row, measured with the raw client one message at a time: the load loop has no raw
//! sockets, so the row's `why` says its msgs/s are sequential.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use hdrhistogram::Histogram;

use crate::client::exchange::ClientConfig;
use crate::client::raw::RawClient;
use crate::endpoint::{Address, Endpoint};
use crate::report::{Percentiles, latency_histogram, p50_of_rounds, record_latency};
use crate::transport::framing::Framing;

use super::measure::{MIN_ROUND_SAMPLES, client_config, once_more, v6};
use super::plan::{BURST, BURST_SIZE, Plan, SETUPS};
use super::rows::Row;
use super::why::why;

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
    /// Exchanges `msg` over and over for `time`, the round trips into `latency` when given.
    fn for_time(
        client: &mut RawClient,
        msg: &[u8],
        time: Duration,
        mut latency: Option<&mut Histogram<u64>>,
    ) -> RawRun {
        let mut run = RawRun::default();
        let started = Instant::now();
        while started.elapsed() < time {
            run.one(client, msg, latency.as_deref_mut());
        }
        run
    }

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
                    record_latency(h, start.elapsed());
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

/// The raw row of `target`, over IP protocol `ip_proto`.
pub(super) fn measure_raw(target: &Endpoint, plan: &Plan, ip_proto: u8) -> Result<Row> {
    once_more(target, || measure_raw_once(target, plan, ip_proto))
}

pub(super) fn measure_raw_once(target: &Endpoint, plan: &Plan, ip_proto: u8) -> Result<Row> {
    let mut config = client_config(Framing::None);
    config.opts.ip_proto = ip_proto;
    let setup_us = setup_time(target, &config)?;
    let mut client = RawClient::open(target, &config)?;
    let (latency, p50s_ns, ping) = ping_rounds(&mut client, plan)?;
    let left_out = plan.rounds - p50s_ns.len();
    let (p50, p50s) = p50_of_rounds(p50s_ns);
    let latency_us = Percentiles::of(&latency);
    let started = Instant::now();
    let load = RawRun::for_time(
        &mut client,
        &[b'b'; 1024],
        plan.load * plan.rounds as u32,
        None,
    );
    let elapsed = started.elapsed().as_secs_f64();
    let replies = client.burst(&[b'b'; BURST_SIZE], BURST)?;
    let kept = replies.iter().all(|(_, r)| r.len() == BURST_SIZE);
    let in_order = replies.windows(2).all(|w| w[0].0 < w[1].0);
    let mut row = Row {
        proto: target.proto.to_string(),
        family: target.addr.family(),
        socket_type: "SOCK_RAW",
        address: match &target.addr {
            Address::Ip(a) => a.ip().to_string(),
            other => other.to_string(),
        },
        setup_us,
        median_round_p50_us: p50.unwrap_or(latency_us.p50),
        latency_us,
        p50_rounds_us: p50s,
        rounds_left_out: left_out,
        messages_per_s: (load.answered as f64 / elapsed).round(),
        // One load run, not rounds: nothing to compare it with.
        messages_per_s_rounds: Vec::new(),
        in_flight: 1,
        mb_per_s: (load.bytes as f64 / elapsed / 1e6 * 100.0).round() / 100.0,
        sent: ping.sent + load.sent,
        lost: ping.lost + load.lost,
        loss_cause: None,
        boundaries_kept: kept,
        burst_reads: replies.len(),
        burst_lost: BURST.saturating_sub(replies.len()),
        ordered: in_order && ping.mismatched + load.mismatched == 0,
        why: String::new(),
        latency: Some(latency),
        tcp_info: None,
        // Raw rows have no TCP to resend; nothing in their sentence hangs on it.
        lossless: plan.lossless,
    };
    row.why = why(target.proto, v6(&target.addr), &row);
    Ok(row)
}

/// The ping-pong in [`Plan::rounds`] rounds: every round trip, each round's p50 (in
/// nanoseconds), and the exchanges of all rounds.
fn ping_rounds(client: &mut RawClient, plan: &Plan) -> Result<(Histogram<u64>, Vec<u64>, RawRun)> {
    let mut all = latency_histogram();
    let mut p50s = Vec::new();
    let mut total = RawRun::default();
    for _ in 0..plan.rounds {
        let mut round = latency_histogram();
        let run = RawRun::for_time(client, &[b'p'; 64], plan.ping, Some(&mut round));
        total.sent += run.sent;
        total.lost += run.lost;
        total.mismatched += run.mismatched;
        if round.len() >= MIN_ROUND_SAMPLES {
            p50s.push(round.value_at_quantile(0.5));
        }
        all.add(&round).context("merge the rounds' round trips")?;
    }
    Ok((all, p50s, total))
}

/// socket(2) and connect(2), which on a raw socket only records the peer, timed [`SETUPS`]
/// times; the median, in microseconds.
fn setup_time(target: &Endpoint, config: &ClientConfig) -> Result<u64> {
    let mut setups = Vec::with_capacity(SETUPS);
    for _ in 0..SETUPS {
        let start = Instant::now();
        let client = RawClient::open(target, config)?;
        setups.push(start.elapsed().as_micros() as u64);
        drop(client);
    }
    setups.sort_unstable();
    Ok(setups[SETUPS / 2].max(1))
}
