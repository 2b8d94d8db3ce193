//! Newline-delimited JSON (`bench --format ndjson`): one object per interval while a run goes
//! on, then one summary object per run, each on its own line with `schema` and `type`
//! (README: "NDJSON output" documents every field).

use serde::Serialize;

use super::meta::Meta;
use super::run::{Interval, Percentiles, Run, round};

/// The version of the NDJSON lines' layout.
pub(crate) const SCHEMA: &str = "netecho-bench-ndjson/3";

#[derive(Serialize)]
struct IntervalLine<'a> {
    schema: &'static str,
    r#type: &'static str,
    proto: &'a str,
    address: &'a str,
    interval: u64,
    start_s: f64,
    end_s: f64,
    sent: u64,
    answered: u64,
    bytes: u64,
    requests_per_s: f64,
    mb_per_s: f64,
    lost: u64,
    /// `None` (null) for an interval that answered nothing: no round trip was measured, and
    /// zeros would read as the fastest interval of the run.
    latency_us: Option<Percentiles>,
}

#[derive(Serialize)]
struct SummaryLine<'a> {
    schema: &'static str,
    r#type: &'static str,
    #[serde(flatten)]
    run: &'a Run,
    #[serde(skip_serializing_if = "Option::is_none")]
    meta: Option<&'a Meta>,
}

/// One interval of the run against `proto` `address`, as a line.
pub(crate) fn interval(proto: &str, address: &str, i: &Interval) -> String {
    let secs = (i.end - i.start).as_secs_f64().max(1e-9);
    let line = IntervalLine {
        schema: SCHEMA,
        r#type: "interval",
        proto,
        address,
        interval: i.index,
        start_s: round(i.start.as_secs_f64(), 3),
        end_s: round(i.end.as_secs_f64(), 3),
        sent: i.sent,
        answered: i.answered,
        bytes: i.bytes,
        requests_per_s: round(i.answered as f64 / secs, 0),
        mb_per_s: round(i.bytes as f64 / 1e6 / secs, 2),
        lost: i.lost,
        latency_us: Percentiles::measured(&i.latency),
    };
    serde_json::to_string(&line).expect("a line always serializes") + "\n"
}

/// The summary of each run, a line each, with the metadata of the command when given.
pub(crate) fn render(runs: &[Run], meta: Option<&Meta>) -> String {
    runs.iter()
        .map(|run| {
            serde_json::to_string(&SummaryLine {
                schema: SCHEMA,
                r#type: "summary",
                run,
                meta,
            })
            .expect("a line always serializes")
                + "\n"
        })
        .collect()
}
