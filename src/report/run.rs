//! What a measurement produced, as plain data: a run of the load loop against one server, its
//! latency percentiles, the main cause of its loss, and the intervals it reported on the way.
//! Whoever measures fills these in; the formats beside this file render them.

use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

/// Latency percentiles in microseconds.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub(crate) struct Percentiles {
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p99_9: u64,
    pub max: u64,
    pub mean: f64,
}

impl Percentiles {
    pub(crate) fn of(h: &Histogram<u64>) -> Percentiles {
        Percentiles {
            p50: h.value_at_quantile(0.5),
            p90: h.value_at_quantile(0.9),
            p99: h.value_at_quantile(0.99),
            p99_9: h.value_at_quantile(0.999),
            max: h.max(),
            mean: (h.mean() * 10.0).round() / 10.0,
        }
    }
}

/// The main cause of a run's datagram loss, as the JSON report names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Cause {
    /// The measuring client's own receive buffers overflowed (SO_RXQ_OVFL).
    ReceiveBuffer,
    /// Another receive buffer on this machine overflowed (the server's, a relay's).
    OtherReceiveBuffer,
    /// The kernel refused sends (ENOBUFS).
    SendBuffer,
    /// No counter on this machine saw it: simulated by a relay, or lost in flight.
    Unseen,
}

/// One run of the load loop against one server.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub(crate) struct Run {
    pub proto: String,
    pub address: String,
    pub clients: usize,
    pub size: usize,
    pub window: usize,
    /// The run's length as asked: seconds, or requests per client.
    pub duration_s: Option<f64>,
    pub count: Option<u64>,
    pub elapsed_s: f64,
    pub sent: u64,
    pub answered: u64,
    pub bytes: u64,
    pub requests_per_s: f64,
    pub mb_per_s: f64,
    pub latency_us: Percentiles,
    pub connect_us: Percentiles,
    pub lost: u64,
    pub duplicated: u64,
    pub reordered: u64,
    pub late: u64,
    pub mismatched: u64,
    pub failed_clients: u64,
    /// Datagrams dropped at bench's full receive buffers (SO_RXQ_OVFL).
    pub rxq_overflow: u64,
    /// The rise of the machine's UDP RcvbufErrors during the run (null: not read).
    pub rcvbuf_errors: Option<u64>,
    /// Sends refused with ENOBUFS.
    pub send_errors: u64,
    /// What explains most of the loss (null: nothing lost).
    pub loss_cause: Option<Cause>,
}

/// What all of a run's threads did in one interval of it (`bench --interval`).
#[derive(Debug)]
pub(crate) struct Interval {
    /// 0 for the first interval.
    pub index: u64,
    /// Since the start of the run.
    pub start: Duration,
    pub end: Duration,
    pub sent: u64,
    pub answered: u64,
    pub bytes: u64,
    pub lost: u64,
    /// Round trips answered in this interval, in microseconds.
    pub latency: Histogram<u64>,
}

/// `v` rounded to `places` decimal places, as the reports print and store numbers.
pub(crate) fn round(v: f64, places: i32) -> f64 {
    let f = 10f64.powi(places);
    (v * f).round() / f
}
