//! Measurement results as plain data, and the formats that render them: a table for people,
//! JSON and CSV for lab reports and notebooks. Each format is one small file; none of them
//! knows who measured.

pub mod column;
pub mod csv;
pub mod json;
pub mod ndjson;
pub mod progress;
pub mod run;
pub mod svg;
pub mod table;

use crate::choice::{Choice, from_str_by_name};

pub use column::{Align, Column};
pub use run::{Cause, Interval, Percentiles, Run};

/// The version of the JSON document's layout; bumped when a field changes meaning or goes.
pub const SCHEMA: &str = "netecho-bench/1";

/// How `bench` prints its results.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Format {
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
pub fn columns() -> Vec<Column<Run>> {
    vec![
        Column::left("proto", |r| r.proto.clone()),
        Column::left("address", |r| r.address.clone()),
        Column::right("clients", |r| r.clients.to_string()),
        Column::right("size", |r| r.size.to_string()),
        Column::right("window", |r| r.window.to_string()),
        Column::right("requests_per_s", |r| format!("{:.0}", r.requests_per_s)),
        Column::right("mb_per_s", |r| format!("{:.2}", r.mb_per_s)),
        Column::right("mean_us", |r| format!("{:.1}", r.latency_us.mean)),
        Column::right("p50_us", |r| r.latency_us.p50.to_string()),
        Column::right("p99_us", |r| r.latency_us.p99.to_string()),
        Column::right("p99_9_us", |r| r.latency_us.p99_9.to_string()),
        Column::right("max_us", |r| r.latency_us.max.to_string()),
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

/// Renders `runs` in `format`.
pub fn render(format: Format, runs: &[Run]) -> String {
    match format {
        Format::Table => table::render(&columns(), runs),
        Format::Json => json::render(runs),
        Format::Csv => csv::render(&columns(), runs),
        Format::Ndjson => ndjson::render(runs),
    }
}

#[cfg(test)]
mod tests;
