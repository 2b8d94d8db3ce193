//! Measurement results as one data type, and the formats that render it: a table for people,
//! JSON and CSV for lab reports and notebooks. Each format is one small file.

pub mod csv;
pub mod json;
pub mod ndjson;
pub mod progress;
pub mod svg;
pub mod table;

use clap::ValueEnum;
use hdrhistogram::Histogram;
use serde::Serialize;

use crate::client::bench::load::{Limit, LoadResult, LoadSpec};
use crate::client::bench::loss::Cause;

/// The version of the JSON document's layout; bumped when a field changes meaning or goes.
pub const SCHEMA: &str = "netecho-bench/1";

/// How `bench` prints its results.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum Format {
    #[default]
    Table,
    Json,
    Csv,
    /// One JSON object per line: intervals as the run goes on (bench), then the summary
    Ndjson,
}

/// Latency percentiles in microseconds.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Percentiles {
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p99_9: u64,
    pub max: u64,
    pub mean: f64,
}

impl Percentiles {
    pub fn of(h: &Histogram<u64>) -> Percentiles {
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

/// One run of the load loop against one server.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Run {
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

impl Run {
    pub fn new(spec: &LoadSpec, r: &LoadResult) -> Run {
        let round = |v: f64, places: i32| {
            let f = 10f64.powi(places);
            (v * f).round() / f
        };
        Run {
            proto: spec.target.proto.to_string(),
            address: spec.target.addr.to_string(),
            clients: spec.clients,
            size: spec.size,
            window: spec.window,
            duration_s: match spec.limit {
                Limit::Duration(d) => Some(d.as_secs_f64()),
                Limit::Count(_) => None,
            },
            count: match spec.limit {
                Limit::Count(n) => Some(n),
                Limit::Duration(_) => None,
            },
            elapsed_s: round(r.elapsed.as_secs_f64(), 3),
            sent: r.sent,
            answered: r.answered,
            bytes: r.bytes,
            requests_per_s: round(r.requests_per_sec(), 0),
            mb_per_s: round(r.mb_per_sec(), 2),
            latency_us: Percentiles::of(&r.latency),
            connect_us: Percentiles::of(&r.connect),
            lost: r.lost,
            duplicated: r.duplicated,
            reordered: r.reordered,
            late: r.late,
            mismatched: r.mismatched,
            failed_clients: r.failed_clients,
            rxq_overflow: r.rxq_overflow,
            rcvbuf_errors: r.machine.map(|m| m.rcvbuf_errors),
            send_errors: r.send_errors,
            loss_cause: r.loss().cause(),
        }
    }
}

/// A column of the table and the CSV: its header, and how a run shows in it.
pub type Column = (&'static str, fn(&Run) -> String);

/// The columns of the table and the CSV, in order.
pub fn columns() -> Vec<Column> {
    vec![
        ("proto", |r| r.proto.clone()),
        ("address", |r| r.address.clone()),
        ("clients", |r| r.clients.to_string()),
        ("size", |r| r.size.to_string()),
        ("window", |r| r.window.to_string()),
        ("requests_per_s", |r| format!("{:.0}", r.requests_per_s)),
        ("mb_per_s", |r| format!("{:.2}", r.mb_per_s)),
        ("mean_us", |r| format!("{:.1}", r.latency_us.mean)),
        ("p50_us", |r| r.latency_us.p50.to_string()),
        ("p99_us", |r| r.latency_us.p99.to_string()),
        ("p99_9_us", |r| r.latency_us.p99_9.to_string()),
        ("max_us", |r| r.latency_us.max.to_string()),
        ("connect_p50_us", |r| r.connect_us.p50.to_string()),
        ("sent", |r| r.sent.to_string()),
        ("answered", |r| r.answered.to_string()),
        ("lost", |r| r.lost.to_string()),
        ("duplicated", |r| r.duplicated.to_string()),
        ("reordered", |r| r.reordered.to_string()),
        ("mismatched", |r| r.mismatched.to_string()),
        ("failed_clients", |r| r.failed_clients.to_string()),
    ]
}

/// Renders `runs` in `format`.
pub fn render(format: Format, runs: &[Run]) -> String {
    match format {
        Format::Table => table::render(runs),
        Format::Json => json::render(runs),
        Format::Csv => csv::render(runs),
        Format::Ndjson => ndjson::render(runs),
    }
}

#[cfg(test)]
mod tests;
