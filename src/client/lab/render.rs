//! The lab's rows as text: the comparison table with a sentence per row, the boundaries
//! table, CSV and JSON. The table and CSV writers are the reports' own; this file only says
//! which columns the lab shows.

use crate::report::{self, Column, Format};

use super::plan::{BURST, BURST_SIZE};
use super::rows::{BoundaryRow, Document, NetnsDocument, Row, SCHEMA};
use super::why::consequence;

/// Under the boundaries table: what it shows.
const FRAMING_NOTE: &str = "without framing a stream returns whatever bytes have arrived: \
    several sends can come back in one read; a line or length framing recovers every message";

fn yes(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

fn family(r: &Row) -> String {
    r.family.map_or("-", |f| f.name()).to_string()
}

/// The comparison table's columns: what a row is to the left, what it measured to the right.
fn table_columns() -> Vec<Column<Row>> {
    vec![
        Column::left("proto", |r| r.proto.clone()),
        Column::left("family", family),
        Column::left("type", |r| r.socket_type.to_string()),
        Column::right("setup_us", |r| r.setup_us.to_string()),
        Column::right("p50_us", |r| r.latency_us.p50.to_string()),
        Column::right("p99_us", |r| r.latency_us.p99.to_string()),
        Column::right("p99.9_us", |r| r.latency_us.p99_9.to_string()),
        Column::right("msgs/s", |r| format!("{:.0}", r.messages_per_s)),
        Column::right("MB/s", |r| format!("{:.1}", r.mb_per_s)),
        Column::right("lost", |r| format!("{}/{}", r.lost, r.sent)),
        Column::right("boundaries", |r| {
            format!("{} ({} reads)", yes(r.boundaries_kept), r.burst_reads)
        }),
        Column::right("ordered", |r| yes(r.ordered).to_string()),
    ]
}

/// The CSV's columns: one value per field, numbers unformatted, booleans as true/false.
fn csv_columns() -> Vec<Column<Row>> {
    vec![
        Column::left("proto", |r| r.proto.clone()),
        Column::left("family", family),
        Column::left("type", |r| r.socket_type.to_string()),
        Column::right("setup_us", |r| r.setup_us.to_string()),
        Column::right("p50_us", |r| r.latency_us.p50.to_string()),
        Column::right("p99_us", |r| r.latency_us.p99.to_string()),
        Column::right("p99_9_us", |r| r.latency_us.p99_9.to_string()),
        Column::right("messages_per_s", |r| format!("{:.0}", r.messages_per_s)),
        Column::right("mb_per_s", |r| format!("{:.2}", r.mb_per_s)),
        Column::right("sent", |r| r.sent.to_string()),
        Column::right("lost", |r| r.lost.to_string()),
        Column::right("boundaries_kept", |r| r.boundaries_kept.to_string()),
        Column::right("burst_reads", |r| r.burst_reads.to_string()),
        Column::right("ordered", |r| r.ordered.to_string()),
    ]
}

/// The boundaries table's columns.
fn boundary_columns() -> Vec<Column<BoundaryRow>> {
    vec![
        Column::left("proto", |b| b.proto.clone()),
        Column::left("framing", |b| b.framing.clone()),
        Column::left("sends", |b| b.sends.to_string()),
        Column::right("reads", |b| b.reads.to_string()),
        Column::right("messages", |b| b.messages.to_string()),
    ]
}

/// A lab on this machine in `format`.
pub fn on_this_machine(format: Format, rows: &[Row], boundaries: &[BoundaryRow]) -> String {
    match format {
        Format::Table => table(rows, boundaries),
        Format::Csv => csv(rows),
        Format::Json => report::json::document(&Document {
            schema: SCHEMA,
            rows,
            boundaries,
        }),
        Format::Ndjson => unreachable!("the command line refuses lab --format ndjson"),
    }
}

/// A lab across namespaces in `format`: the table gets what was set up, and what loss did to
/// each row, under it.
pub fn across_namespaces(format: Format, rows: &[Row], notes: &[String]) -> String {
    match format {
        Format::Table => {
            let mut text = table(rows, &[]);
            text.push('\n');
            text.push_str(&report::table::notes(notes));
            text.push_str(&report::table::notes(rows.iter().map(consequence)));
            text
        }
        Format::Csv => csv(rows),
        Format::Json => report::json::document(&NetnsDocument {
            schema: SCHEMA,
            netns: notes,
            rows,
        }),
        Format::Ndjson => unreachable!("the command line refuses lab --format ndjson"),
    }
}

/// The rows as a table, their sentences under it, then the boundaries table when measured.
fn table(rows: &[Row], boundaries: &[BoundaryRow]) -> String {
    let mut text = report::table::render(&table_columns(), rows);
    text.push('\n');
    text.push_str(&report::table::notes(rows.iter().map(|r| r.why)));
    if boundaries.is_empty() {
        return text;
    }
    text.push_str(&format!(
        "\nMessage boundaries: {BURST} sends of {BURST_SIZE} bytes back to back on a stream\n"
    ));
    text.push_str(&report::table::render(&boundary_columns(), boundaries));
    text.push_str(&report::table::notes([FRAMING_NOTE]));
    text
}

/// The rows as CSV.
fn csv(rows: &[Row]) -> String {
    report::csv::render(&csv_columns(), rows)
}
