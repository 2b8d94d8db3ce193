//! What the lab measured, as plain data: a row per protocol, a row per framing of the
//! boundaries burst, and the documents `--format json` writes.

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::endpoint::Family;
use crate::report::{Cause, Meta, Percentiles};

/// The layout of `--format json`; bumped when a field changes meaning or goes (2:
/// `latency_us.p50` of all round trips, the rounds' median as `median_round_p50_us`; 3: what
/// a row did not observe is null, as the table's "-").
pub(crate) const SCHEMA: &str = "netecho-lab/3";

/// One protocol's row.
#[derive(Debug, Serialize)]
pub(crate) struct Row {
    pub proto: String,
    /// `null` only for a host name, which the lab's own servers never have.
    pub family: Option<Family>,
    pub socket_type: &'static str,
    pub address: String,
    /// connect(2) time, p50, in microseconds.
    pub setup_us: u64,
    /// Ping-pong round trips (one client, one message in flight), all rounds together.
    pub latency_us: Percentiles,
    /// The p50s of the rounds of 20 round trips or more, lowest to highest: their range is
    /// the p50's spread.
    pub p50_rounds_us: Vec<u64>,
    /// Rounds whose ping-pong had fewer than 20 round trips, so no p50 among the rounds':
    /// each a stall (at least 15 ms a round trip in a round of 300 ms).
    pub rounds_left_out: usize,
    /// The table's p50: the median of the rounds' p50s (of two, their mean) (`latency_us.p50` when no round had
    /// 20 round trips). A median of medians, not a percentile of `latency_us`: on a busy
    /// machine it can lie above `latency_us.p90`.
    #[serde(serialize_with = "crate::report::run::tenths")]
    pub median_round_p50_us: f64,
    /// Pipelined load (several clients, a window of messages in flight): the median round.
    pub messages_per_s: f64,
    /// Each load round's msg/s, lowest first: a round far below the others stalled.
    pub messages_per_s_rounds: Vec<f64>,
    /// Requests the load kept in flight at once (clients times window; 1 for raw, whose
    /// msg/s is one request at a time): each lost one held a place for the lab's timeout.
    pub in_flight: usize,
    pub mb_per_s: f64,
    pub sent: u64,
    pub lost: u64,
    /// What explains most of the loss (null: nothing lost, or a stream).
    pub loss_cause: Option<Cause>,
    /// A burst of small sends came back as reads of one message each (none merged); null
    /// in the JSON when no reply of the burst came ([`Row::bounds`]).
    pub boundaries_kept: bool,
    pub burst_reads: usize,
    /// Replies of the burst that never came (lost datagrams, not merged ones).
    pub burst_lost: usize,
    /// Replies came back in the order sent (measured by sequence number); null in the JSON
    /// when none came.
    pub ordered: bool,
    /// Why the row differs from the others, from what it is and what it measured.
    pub why: String,
    /// TCP rows: what TCP_INFO said of the pipelined connections at the end.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tcp_info: Option<TcpInfoRow>,
    /// The ping-pong round trips, for the plot.
    #[serde(skip)]
    pub latency: Option<Histogram<u64>>,
    /// Nothing between the ends drops a packet (loopback, or namespaces without --loss):
    /// a TCP resend there is a timer's, not loss.
    #[serde(skip)]
    pub lossless: bool,
}

impl Row {
    /// The share of requests lost, short and never rounded to nothing: 0, 0.04%, 1.5%, 70%.
    /// The table's column and the sentence under it say the same.
    pub(crate) fn lost_share(&self) -> String {
        if self.lost == 0 {
            return "0".into();
        }
        let share = 100.0 * self.lost as f64 / self.sent.max(1) as f64;
        match share {
            s if s < 1.0 => format!("{s:.2}%"),
            s if s < 10.0 => format!("{s:.1}%"),
            s => format!("{s:.0}%"),
        }
    }

    /// The row's name as the table shows it: its protocol, with a 6 over IPv6 (as raw6://
    /// names it), so every note about the row names it the same way.
    pub(crate) fn name(&self) -> String {
        match self.family {
            Some(Family::Inet6) => format!("{}6", self.proto),
            _ => self.proto.clone(),
        }
    }

    /// Whether no request got a reply: the row observed no time, order or read, and the
    /// table shows "-" for them.
    pub(crate) fn unanswered(&self) -> bool {
        self.sent > 0 && self.lost >= self.sent
    }

    /// Whether each read of the burst held one message; `None` when no reply of the burst
    /// came back: a lost datagram is neither a merged one nor a kept one.
    pub(crate) fn bounds(&self) -> Option<bool> {
        (!self.unanswered() && self.burst_reads > 0).then_some(self.boundaries_kept)
    }

    /// Whether the replies came in the order sent; `None` when none came.
    pub(crate) fn order(&self) -> Option<bool> {
        (!self.unanswered()).then_some(self.ordered)
    }
}

/// The fields of a row that got no reply at all: it observed no time, rate or order.
const UNOBSERVED: [&str; 5] = [
    "latency_us",
    "median_round_p50_us",
    "messages_per_s",
    "messages_per_s_rounds",
    "mb_per_s",
];

/// The rows of a document, with null for what each did not observe (where the table
/// shows "-"), never a 0 us that reads as the fastest row.
pub(crate) fn observed<S: serde::Serializer>(rows: &&[Row], s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::{Error, SerializeSeq};
    let mut seq = s.serialize_seq(Some(rows.len()))?;
    for row in rows.iter() {
        let mut value = serde_json::to_value(row).map_err(S::Error::custom)?;
        if let Some(fields) = value.as_object_mut() {
            if row.unanswered() {
                for name in UNOBSERVED {
                    fields.insert(name.into(), serde_json::Value::Null);
                }
            }
            if row.messages_per_s_rounds.is_empty() {
                // Raw's load is one run: no rounds observed, not rounds of nothing.
                fields.insert("messages_per_s_rounds".into(), serde_json::Value::Null);
            }
            fields.insert("boundaries_kept".into(), row.bounds().into());
            fields.insert("ordered".into(), row.order().into());
        }
        seq.serialize_element(&value)?;
    }
    seq.end()
}

/// Whether `address` (IP:PORT or a bare IP) is on loopback, where no wire lies between the
/// ends.
pub(crate) fn on_loopback(address: &str) -> bool {
    ip_of(address).is_some_and(|ip| ip.to_canonical().is_loopback())
}

/// Whether a row's `address` is reached over a link: an IP address, not loopback (a Unix
/// socket's path crosses none).
pub(crate) fn over_a_link(address: &str) -> bool {
    ip_of(address).is_some_and(|ip| !ip.to_canonical().is_loopback())
}

/// The IP address of a row's `address` (with a port, or bare as a raw row's).
fn ip_of(address: &str) -> Option<std::net::IpAddr> {
    match address.parse::<std::net::SocketAddr>() {
        Ok(a) => Some(a.ip()),
        Err(_) => address.parse::<std::net::IpAddr>().ok(),
    }
}

/// TCP_INFO of a row's connections: how TCP turned loss into latency.
#[derive(Debug, Serialize)]
pub(crate) struct TcpInfoRow {
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
pub(crate) struct BoundaryRow {
    pub proto: String,
    pub framing: String,
    pub sends: usize,
    pub reads: usize,
    /// Sends told apart on the way back: unframed, reads that held exactly one.
    pub messages: usize,
    /// Bytes of the replies, all reads together: what came back, told apart or not.
    pub bytes: usize,
}

/// `--format json` of a lab on this machine.
#[derive(Debug, Serialize)]
pub(crate) struct Document<'a> {
    pub schema: &'static str,
    pub meta: &'a Meta,
    #[serde(serialize_with = "observed")]
    pub rows: &'a [Row],
    /// A sentence for each row, or group of rows, not measured, and why.
    pub left_out: &'a [String],
    pub boundaries: &'a [BoundaryRow],
}

/// `--format json` of a lab across namespaces: what was set up, then the rows.
#[derive(Debug, Serialize)]
pub(crate) struct NetnsDocument<'a> {
    pub schema: &'static str,
    pub meta: &'a Meta,
    pub netns: &'a [String],
    #[serde(serialize_with = "observed")]
    pub rows: &'a [Row],
}

/// Head-of-line blocking: one burst of messages on one tcp connection against the same as
/// streams of one quic connection, under the same loss.
#[derive(Clone, Debug)]
pub(crate) struct HeadOfLine {
    pub messages: usize,
    pub size: usize,
    pub rounds: usize,
    pub tcp: Waits,
    pub quic: Waits,
}

/// How long the messages of a burst waited for their replies, in microseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct Waits {
    pub mean: u64,
    pub p50: u64,
    pub p90: u64,
    pub max: u64,
}

impl Waits {
    /// Of every message's wait (sorted in place).
    pub(crate) fn of(waits: &mut [u64]) -> Waits {
        if waits.is_empty() {
            return Waits::default();
        }
        waits.sort_unstable();
        let at = |q: f64| waits[((waits.len() - 1) as f64 * q).round() as usize];
        Waits {
            mean: waits.iter().sum::<u64>() / waits.len() as u64,
            p50: at(0.5),
            p90: at(0.9),
            max: waits[waits.len() - 1],
        }
    }
}
