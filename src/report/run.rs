//! What a measurement produced, as plain data: a run of the load loop against one server, its
//! latency percentiles, the main cause of its loss, and the intervals it reported on the way.
//! Whoever measures fills these in; the formats beside this file render them.

use std::time::Duration;

use hdrhistogram::Histogram;
use serde::{Serialize, Serializer};

/// The longest latency a histogram tells apart, in nanoseconds (a minute): longer ones are
/// recorded as this.
pub(crate) const MAX_LATENCY_NS: u64 = 60_000_000_000;

/// An empty latency histogram: nanoseconds from 1 ns to [`MAX_LATENCY_NS`], to three
/// significant digits (16 ns apart at 20 us). Its size is fixed, about 220 KiB, however many
/// samples it takes.
pub(crate) fn latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_NS, 3).expect("histogram bounds")
}

/// Records `d` in a histogram from [`latency_histogram`], at least 1 ns, at most its top.
pub(crate) fn record_latency(h: &mut Histogram<u64>, d: Duration) {
    let ns = d.as_nanos().clamp(1, u128::from(MAX_LATENCY_NS)) as u64;
    h.saturating_record(ns);
}

/// `ns` in whole microseconds, to the nearest.
fn whole_micros(ns: u64) -> u64 {
    ns.saturating_add(500) / 1000
}

/// The rounds' p50s (nanoseconds, any order): their median in microseconds to a tenth,
/// rounded as every percentile is (so a row's p50 never passes its p90 by rounding), and
/// all of them in whole microseconds, lowest first (the spread between rounds). Of an even
/// count the median is the mean of the middle two: of two rounds, one stalled, the upper
/// one would be the stalled round's alone.
pub(crate) fn p50_of_rounds(mut ns: Vec<u64>) -> (Option<f64>, Vec<u64>) {
    ns.sort_unstable();
    let middle = median_of_sorted(&ns).map(|v| round(v / 1e3, 1));
    (middle, ns.into_iter().map(whole_micros).collect())
}

/// The median of `sorted` (lowest first): the middle value, or the mean of the middle two.
fn median_of_sorted(sorted: &[u64]) -> Option<f64> {
    let upper = *sorted.get(sorted.len() / 2)?;
    Some(match sorted.len() % 2 {
        1 => upper as f64,
        _ => (sorted[sorted.len() / 2 - 1] as f64 + upper as f64) / 2.0,
    })
}

/// Latency percentiles in microseconds, to a tenth, from a histogram in nanoseconds.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub(crate) struct Percentiles {
    #[serde(serialize_with = "tenths")]
    pub p50: f64,
    #[serde(serialize_with = "tenths")]
    pub p90: f64,
    #[serde(serialize_with = "tenths")]
    pub p99: f64,
    #[serde(serialize_with = "tenths")]
    pub p99_9: f64,
    #[serde(serialize_with = "tenths")]
    pub max: f64,
    pub mean: f64,
}

impl Percentiles {
    /// The percentiles of `h`, whose samples are nanoseconds.
    pub(crate) fn of(h: &Histogram<u64>) -> Percentiles {
        let us = |ns: u64| round(ns as f64 / 1e3, 1);
        Percentiles {
            p50: us(h.value_at_quantile(0.5)),
            p90: us(h.value_at_quantile(0.9)),
            p99: us(h.value_at_quantile(0.99)),
            p99_9: us(h.value_at_quantile(0.999)),
            max: us(h.max()),
            mean: round(h.mean() / 1e3, 1),
        }
    }

    /// The percentiles of `h`, or `None` (null in JSON, an empty cell in the CSV) when it
    /// holds no sample: nothing was measured, and zeros would read as the fastest.
    pub(crate) fn measured(h: &Histogram<u64>) -> Option<Percentiles> {
        (!h.is_empty()).then(|| Percentiles::of(h))
    }
}

/// A percentile as JSON: a whole number of microseconds without a decimal point, any other
/// with its tenth, as the table and the CSV print them (Rust's `Display`).
pub(crate) fn tenths<S: Serializer>(us: &f64, s: S) -> Result<S::Ok, S::Error> {
    if us.fract() == 0.0 && (0.0..=u64::MAX as f64).contains(us) {
        s.serialize_u64(*us as u64)
    } else {
        s.serialize_f64(*us)
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

/// A stretch of a run in which requests waited and the server answered nothing, in seconds
/// from the start of the run: the run's averages are over it.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub(crate) struct Stall {
    pub silent_s: f64,
    pub from_s: f64,
    pub to_s: f64,
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
    /// Round trips; `None` when none was measured (an --idle run, a run stopped before its
    /// first reply).
    pub latency_us: Option<Percentiles>,
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
    /// The longest stretch with requests waiting and no reply, when long enough to tell of
    /// (null: none was).
    pub stall: Option<Stall>,
    /// The signal that stopped the run before its end ("SIGINT"); absent from a whole run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopped: Option<String>,
    /// What the measuring found beyond the counters, a sentence each: where the datagrams
    /// went and what to change, what held the window, TCP's resends. Notes only: the JSON
    /// and CSV hold the counters they come from.
    #[serde(skip)]
    pub found: Vec<String>,
    /// Clients connected and held without traffic (--idle): the traffic columns are zero by
    /// design. Not in the JSON, where `sent` 0 and the run's spec say it.
    #[serde(skip)]
    pub idle: bool,
}

impl Run {
    /// What to say under a table of the run, in the order its reader needs it: how a signal
    /// stopped it (the numbers are of part of it), how long the server answered nothing
    /// (they average over that), what was lost and why and what held the window
    /// ([`Run::found`]), then what its counters hold beside answered and lost.
    pub(crate) fn notes(&self) -> Vec<String> {
        [self.idle_note(), self.stop_note(), self.stall_note()]
            .into_iter()
            .flatten()
            .chain(self.found.iter().cloned())
            .chain(self.late_note())
            .chain(self.duplicate_note())
            .collect()
    }

    /// What an --idle run measured, which its row of zeros and dashes does not say: how many
    /// clients connected, how fast, and for how long they were held.
    fn idle_note(&self) -> Option<String> {
        if !self.idle {
            return None;
        }
        let connected = (self.clients as u64).saturating_sub(self.failed_clients);
        Some(format!(
            "{}: --idle: {connected} of {} connected (connect p50 {} us, p99 {} us; {} \
             failed) and held {:.1} s without traffic, so the traffic columns are zero and the \
             round-trip ones - (none measured); what they cost the server is its memory \
             (VmRSS in /proc/PID/status; bench/idle.sh)",
            self.proto,
            crate::units::count(self.clients as u64, "client"),
            self.connect_us.p50,
            self.connect_us.p99,
            self.failed_clients,
            self.elapsed_s
        ))
    }

    /// "tcp: the server answered nothing for 3.0 s (2.0-5.0 s into the run): ...".
    fn stall_note(&self) -> Option<String> {
        let s = self.stall?;
        Some(format!(
            "{}: the server answered nothing for {:.1} s ({:.1}-{:.1} s into the run): req/s \
             and the percentiles average over it",
            self.proto, s.silent_s, s.from_s, s.to_s
        ))
    }

    /// Replies after the loss timeout, which the table's columns do not show: sent is then
    /// more than answered and lost together.
    fn late_note(&self) -> Option<String> {
        if self.late == 0 {
            return None;
        }
        let sum = match self.sent == self.answered + self.lost + self.late {
            true => format!(
                " (sent {} = answered {} + lost {} + late {})",
                self.sent, self.answered, self.lost, self.late
            ),
            false => String::new(),
        };
        Some(format!(
            "{}: {} answered after the loss timeout (--timeout): counted late, neither \
             answered nor lost{sum}",
            self.proto,
            crate::units::count(self.late, "request")
        ))
    }

    /// Requests answered twice: the second copies are not counted as answered.
    fn duplicate_note(&self) -> Option<String> {
        (self.duplicated > 0).then(|| {
            format!(
                "{}: {} came a second time: counted duplicated, not answered",
                self.proto,
                crate::units::count(self.duplicated, "reply")
            )
        })
    }

    /// Under a table, for a run a signal stopped: "tcp: stopped by SIGINT after 2.5 s of
    /// 10 s; the numbers are of what ran".
    pub(crate) fn stop_note(&self) -> Option<String> {
        let signal = self.stopped.as_ref()?;
        let of = match (self.duration_s, self.count) {
            (Some(d), _) => format!(" of {} s", round(d, 1)),
            (None, Some(n)) => format!(
                " ({} of {} requests sent)",
                self.sent,
                n * self.clients as u64
            ),
            (None, None) => String::new(),
        };
        Some(format!(
            "{}: stopped by {signal} after {} s{of}; the numbers are of what ran",
            self.proto,
            round(self.elapsed_s, 1)
        ))
    }
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
    /// Round trips answered in this interval, in nanoseconds.
    pub latency: Histogram<u64>,
}

/// `v` rounded to `places` decimal places, as the reports print and store numbers.
pub(crate) fn round(v: f64, places: i32) -> f64 {
    let f = 10f64.powi(places);
    (v * f).round() / f
}
