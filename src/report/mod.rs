//! Measurement results as plain data, and the formats that render them: a table for people,
//! JSON and CSV for lab reports and notebooks. Each format is one small file; none of them
//! knows who measured.

pub(crate) mod column;
pub(crate) mod csv;
pub(crate) mod html;
pub(crate) mod json;
pub(crate) mod meta;
pub(crate) mod ndjson;
pub(crate) mod progress;
pub(crate) mod run;
pub(crate) mod svg;
pub(crate) mod table;

use crate::choice::{Choice, from_str_by_name};

pub(crate) use column::Column;
pub(crate) use meta::Meta;
pub(crate) use run::{
    Cause, Interval, Percentiles, Run, Stall, latency_histogram, p50_of_rounds, record_latency,
};

/// The version of the JSON document's layout; bumped when a field changes meaning or goes.
pub(crate) const SCHEMA: &str = "netecho-bench/2";

/// How `bench` prints its results.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum Format {
    #[default]
    Table,
    Json,
    Csv,
    /// One JSON object per line: intervals as the run goes on (bench), then the summary
    Ndjson,
}

impl Choice for Format {
    const ALL: &'static [Format] = &[Format::Table, Format::Json, Format::Csv, Format::Ndjson];

    fn name(self) -> &'static str {
        match self {
            Format::Table => "table",
            Format::Json => "json",
            Format::Csv => "csv",
            Format::Ndjson => "ndjson",
        }
    }

    fn help(self) -> &'static str {
        match self {
            Format::Ndjson => {
                "One JSON object per line: intervals as the run goes on (bench), then the summary"
            }
            Format::Table | Format::Json | Format::Csv => "",
        }
    }
}

from_str_by_name!(Format);

/// The columns of a run in the table and the CSV, in order.
pub(crate) fn columns() -> Vec<Column<Run>> {
    vec![
        Column::left("proto", |r| r.proto.clone()),
        Column::left("address", |r| r.address.clone()),
        Column::right("clients", |r| r.clients.to_string()),
        Column::right("size", |r| r.size.to_string()),
        Column::right("window", |r| r.window.to_string()),
        Column::right("requests_per_s", |r| format!("{:.0}", r.requests_per_s)),
        Column::right("mb_per_s", |r| format!("{:.2}", r.mb_per_s)),
        Column::right("mean_us", |r| latency_cell(r, |p| format!("{:.1}", p.mean))),
        Column::right("p50_us", |r| latency_cell(r, |p| p.p50.to_string())),
        Column::right("p99_us", |r| latency_cell(r, |p| p.p99.to_string())),
        Column::right("p99_9_us", |r| latency_cell(r, |p| p.p99_9.to_string())),
        Column::right("max_us", |r| latency_cell(r, |p| p.max.to_string())),
        Column::right("connect_p50_us", |r| r.connect_us.p50.to_string()),
        Column::right("sent", |r| r.sent.to_string()),
        Column::right("answered", |r| r.answered.to_string()),
        Column::right("lost", |r| r.lost.to_string()),
        Column::right("duplicated", |r| r.duplicated.to_string()),
        Column::right("reordered", |r| r.reordered.to_string()),
        Column::right("mismatched", |r| r.mismatched.to_string()),
        Column::right("failed_clients", |r| r.failed_clients.to_string()),
    ]
}

/// Every column of a run in the CSV: the table's, then the rest of the JSON's fields.
pub(crate) fn csv_columns() -> Vec<Column<Run>> {
    let mut all = columns();
    all.extend::<[Column<Run>; 19]>([
        Column::right("duration_s", |r| {
            r.duration_s.map_or(String::new(), |d| d.to_string())
        }),
        Column::right("count", |r| {
            r.count.map_or(String::new(), |c| c.to_string())
        }),
        Column::right("elapsed_s", |r| r.elapsed_s.to_string()),
        Column::right("bytes", |r| r.bytes.to_string()),
        Column::right("p90_us", |r| latency_cell(r, |p| p.p90.to_string())),
        Column::right("connect_p90_us", |r| r.connect_us.p90.to_string()),
        Column::right("connect_p99_us", |r| r.connect_us.p99.to_string()),
        Column::right("connect_p99_9_us", |r| r.connect_us.p99_9.to_string()),
        Column::right("connect_max_us", |r| r.connect_us.max.to_string()),
        Column::right("connect_mean_us", |r| format!("{:.1}", r.connect_us.mean)),
        Column::right("late", |r| r.late.to_string()),
        Column::right("rxq_overflow", |r| r.rxq_overflow.to_string()),
        Column::right("rcvbuf_errors", |r| {
            r.rcvbuf_errors.map_or(String::new(), |v| v.to_string())
        }),
        Column::right("send_errors", |r| r.send_errors.to_string()),
        Column::left("loss_cause", |r| {
            r.loss_cause.map_or(String::new(), |c| {
                serde_json::to_value(c)
                    .ok()
                    .and_then(|v| v.as_str().map(String::from))
                    .unwrap_or_default()
            })
        }),
        Column::left("stopped", |r| r.stopped.clone().unwrap_or_default()),
        Column::right("stall_silent_s", |r| stall_cell(r, |s| s.silent_s)),
        Column::right("stall_from_s", |r| stall_cell(r, |s| s.from_s)),
        Column::right("stall_to_s", |r| stall_cell(r, |s| s.to_s)),
    ]);
    all
}

/// A figure of the run's round trips; empty (null in the JSON, `-` in a table) when none
/// was measured.
fn latency_cell(r: &Run, figure: fn(&Percentiles) -> String) -> String {
    r.latency_us.as_ref().map_or(String::new(), figure)
}

/// A figure of the run's stall for the CSV; empty when it had none.
fn stall_cell(r: &Run, figure: fn(&Stall) -> f64) -> String {
    r.stall
        .as_ref()
        .map_or(String::new(), |s| figure(s).to_string())
}

/// The 80-column table's columns; [`NARROW_LEGEND`] gives their units.
pub(crate) fn narrow_columns() -> Vec<Column<Run>> {
    vec![
        Column::left("proto", |r| r.proto.clone()),
        Column::right("cl", |r| r.clients.to_string()),
        Column::right("size", |r| r.size.to_string()),
        Column::right("win", |r| r.window.to_string()),
        Column::right("req/s", |r| format!("{:.0}", r.requests_per_s)),
        Column::right("MB/s", |r| format!("{:.2}", r.mb_per_s)),
        Column::right("p50", |r| latency_cell(r, |p| p.p50.to_string())),
        Column::right("p99", |r| latency_cell(r, |p| p.p99.to_string())),
        Column::right("p99.9", |r| latency_cell(r, |p| p.p99_9.to_string())),
        Column::right("lost", |r| r.lost.to_string()),
    ]
}

/// Under the 80-column table: what its short columns mean.
pub(crate) const NARROW_LEGEND: &str = "cl = clients, size = bytes per message, win = requests in \
    flight per client; p50/p99/p99.9 = round trip in us; lost = requests unanswered \
    within --timeout; --wide or --format csv for every column";

/// How a table is laid out: within 80 columns, or every column on one long line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum Layout {
    #[default]
    Narrow,
    Wide,
}

/// Renders `runs` in `format`, the table as `--wide` shows it, without metadata.
#[cfg(test)]
pub(crate) fn render(format: Format, runs: &[Run]) -> String {
    match format {
        Format::Table => table::render(&columns(), runs),
        Format::Json => json::render(runs, None),
        Format::Csv => csv::render(&csv_columns(), runs),
        Format::Ndjson => ndjson::render(runs, None),
    }
}

/// Renders `runs` in `format` as bench prints them: the table in `layout`, every other
/// format with the run's metadata.
pub(crate) fn report(format: Format, layout: Layout, runs: &[Run], meta: &Meta) -> String {
    let notes = || table::notes(runs.iter().flat_map(Run::notes));
    match (format, layout) {
        (Format::Table, Layout::Wide) => table::render(&columns(), runs) + &notes(),
        (Format::Table, Layout::Narrow) => narrow(runs) + &notes(),
        (Format::Json, _) => json::render(runs, Some(meta)),
        (Format::Csv, _) => csv::render_with(&csv_columns(), runs, &meta.fields()),
        (Format::Ndjson, _) => ndjson::render(runs, Some(meta)),
    }
}

/// The 80-column table: each run's line with its address under it, the legend last.
fn narrow(runs: &[Run]) -> String {
    let text = table::render(&narrow_columns(), runs);
    let mut lines = text.lines();
    let mut out = format!("{}\n", lines.next().unwrap_or_default());
    for (line, run) in lines.zip(runs) {
        out.push_str(line);
        out.push('\n');
        out.push_str(&crate::wrap::paragraph(
            &format!("at {}", run.address),
            "    ",
            "    ",
            table::WIDTH,
        ));
    }
    out.push_str(&crate::wrap::paragraph(NARROW_LEGEND, "", "", table::WIDTH));
    out
}

#[cfg(test)]
mod tests;
