//! The lab's rows as text: the comparison table with a sentence per row, the boundaries
//! table, CSV and JSON. The table and CSV writers are the reports' own; this file only says
//! which columns the lab shows.

use crate::report::{self, Cause, Column, Format, Layout, Meta, Percentiles};

use super::measure::{MIN_ROUND_SAMPLES, TIMEOUT};
use super::plan::{BURST, BURST_SIZE};
use super::rows::{BoundaryRow, Document, NetnsDocument, Row, SCHEMA, TcpInfoRow};
use super::why::consequence;

/// Under the boundaries table: what it shows, and why its counts may differ from the rows'.
pub(super) const FRAMING_NOTES: [&str; 2] = [
    "without framing a stream returns whatever bytes have arrived: several sends can come \
     back in one read, every byte there (bytes) but no send told apart from the next \
     (messages counts only reads that held exactly one); a line or length framing \
     recovers every message",
    "each line is a burst of its own, sent after the rows' bursts: how sends merge depends \
     on the moment, so its reads can differ from a row's sentence",
];

fn yes(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

/// `cell` of `r`, or "-" where the row observed nothing (no reply came at all).
fn seen(r: &Row, cell: impl Fn(&Row) -> String) -> String {
    seen_or(r, "-", cell)
}

/// `cell` of `r`, or `none` where the row observed nothing.
fn seen_or(r: &Row, none: &str, cell: impl Fn(&Row) -> String) -> String {
    match r.unanswered() {
        true => none.into(),
        false => cell(r),
    }
}

/// A yes or no the row observed, or "-".
fn seen_yes(observed: Option<bool>) -> String {
    observed.map_or("-", yes).into()
}

/// `cell` of `r` in the CSV, empty (as JSON's null) where the row observed nothing.
fn csv_seen(r: &Row, cell: impl Fn(&Row) -> String) -> String {
    seen_or(r, "", cell)
}

/// A yes or no in the CSV: true, false, or empty where not observed.
fn csv_yes(observed: Option<bool>) -> String {
    observed.map_or(String::new(), |b| b.to_string())
}

fn family(r: &Row) -> String {
    r.family.map_or("-", |f| f.name()).to_string()
}

/// The p50's spread over the rounds: half their range.
fn spread(r: &Row) -> String {
    match (r.p50_rounds_us.first(), r.p50_rounds_us.last()) {
        (Some(lo), Some(hi)) => format!("{}", (hi - lo).div_ceil(2)),
        _ => "-".into(),
    }
}

/// The 80-column table's columns; [`LEGEND`] gives their units.
pub(super) fn narrow_columns() -> Vec<Column<Row>> {
    vec![
        Column::left("proto", Row::name),
        Column::right("setup", |r| r.setup_us.to_string()),
        // Whole microseconds keep the table within 80 columns.
        Column::right("p50", |r| {
            seen(r, |r| format!("{:.0}", r.median_round_p50_us))
        }),
        Column::right("+-", |r| seen(r, spread)),
        Column::right("p99", |r| seen(r, |r| format!("{:.0}", r.latency_us.p99))),
        Column::right("p99.9", |r| {
            seen(r, |r| format!("{:.0}", r.latency_us.p99_9))
        }),
        Column::right("msg/s", |r| seen(r, |r| format!("{:.0}", r.messages_per_s))),
        Column::right("lost", Row::lost_share),
        // A datagram that never came back is lost, not merged: the sentence counts it.
        Column::right("bounds", |r| seen_yes(r.bounds())),
        Column::right("order", |r| seen_yes(r.order())),
    ]
}

/// Under the 80-column table: what its short columns mean.
pub(super) fn legend(rounds: usize) -> String {
    format!(
        "times in us: setup = connect(2), p50/p99/p99.9 = ping-pong round trip; p50 is the \
         median of {rounds} rounds' p50s (of two, their mean; a round of fewer than \
         {MIN_ROUND_SAMPLES} round trips stalled and has none: its row says so) and +- half \
         their range; p99 and p99.9 are of all rounds' round trips together, so a slow \
         round can lift p50 above them; msg/s = 1 KiB messages under \
         pipelined load (median round; the sentence says when lost requests, each waited \
         for {} ms, long waits, or a link's bytes a second bound it); lost = share of requests; bounds = each read \
         of a {BURST}-send burst held one message (a lost datagram is not a merged one); \
         order = replies in the order sent",
        TIMEOUT.as_millis()
    )
}

/// The comparison table's columns as `--wide` shows them: what a row is to the left, what
/// it measured to the right.
pub(super) fn table_columns() -> Vec<Column<Row>> {
    vec![
        Column::left("proto", |r| r.proto.clone()),
        Column::left("family", family),
        Column::left("type", |r| r.socket_type.to_string()),
        Column::right("setup_us", |r| r.setup_us.to_string()),
        // One decimal in every row, so 95 never stands beside 77.1.
        Column::right("p50_us", |r| {
            seen(r, |r| format!("{:.1}", r.median_round_p50_us))
        }),
        Column::right("p99_us", |r| {
            seen(r, |r| format!("{:.1}", r.latency_us.p99))
        }),
        Column::right("p99.9_us", |r| {
            seen(r, |r| format!("{:.1}", r.latency_us.p99_9))
        }),
        Column::right("msgs/s", |r| {
            seen(r, |r| format!("{:.0}", r.messages_per_s))
        }),
        Column::right("MB/s", |r| seen(r, |r| format!("{:.1}", r.mb_per_s))),
        Column::right("lost", |r| format!("{}/{}", r.lost, r.sent)),
        Column::right("boundaries", |r| {
            r.bounds().map_or("-".into(), |kept| {
                let reads = crate::units::count(r.burst_reads, "read");
                format!("{} ({reads})", yes(kept))
            })
        }),
        Column::right("ordered", |r| seen_yes(r.order())),
    ]
}

/// A line of the lab's CSV: a protocol's row or a row of the boundaries table, told apart
/// by the `kind` column ("protocol" or "boundary"); each leaves the other's columns empty.
pub(super) enum Line<'a> {
    Protocol(&'a Row),
    Boundary(&'a BoundaryRow),
}

/// A protocol row's cell, empty on a boundary line.
fn p(line: &Line, cell: fn(&Row) -> String) -> String {
    match line {
        Line::Protocol(r) => cell(r),
        Line::Boundary(_) => String::new(),
    }
}

/// A boundary row's cell, empty on a protocol line.
fn b(line: &Line, cell: fn(&BoundaryRow) -> String) -> String {
    match line {
        Line::Protocol(_) => String::new(),
        Line::Boundary(b) => cell(b),
    }
}

/// The CSV's columns: every field of the JSON, numbers unformatted, booleans as true/false.
fn csv_columns<'a>() -> Vec<Column<Line<'a>>> {
    let mut columns = vec![
        Column::left("kind", |l| match l {
            Line::Protocol(_) => "protocol".into(),
            Line::Boundary(_) => "boundary".into(),
        }),
        Column::left("proto", |l| match l {
            Line::Protocol(r) => r.proto.clone(),
            Line::Boundary(b) => b.proto.clone(),
        }),
    ];
    columns.extend(row_csv_columns());
    columns.extend([
        Column::left("framing", |l| b(l, |b| b.framing.clone())),
        Column::right("sends", |l| b(l, |b| b.sends.to_string())),
        Column::right("reads", |l| b(l, |b| b.reads.to_string())),
        Column::right("messages", |l| b(l, |b| b.messages.to_string())),
        Column::right("bytes", |l| b(l, |b| b.bytes.to_string())),
    ]);
    columns
}

/// A protocol row's columns in the CSV, in the JSON's order.
fn row_csv_columns<'a>() -> Vec<Column<Line<'a>>> {
    vec![
        Column::left("family", |l| p(l, family)),
        Column::left("type", |l| p(l, |r| r.socket_type.to_string())),
        Column::left("address", |l| p(l, |r| r.address.clone())),
        Column::right("setup_us", |l| p(l, |r| r.setup_us.to_string())),
        Column::right("p50_us", |l| latency_csv(l, |t| t.p50)),
        Column::right("p90_us", |l| latency_csv(l, |t| t.p90)),
        Column::right("p99_us", |l| latency_csv(l, |t| t.p99)),
        Column::right("p99_9_us", |l| latency_csv(l, |t| t.p99_9)),
        Column::right("max_us", |l| latency_csv(l, |t| t.max)),
        Column::right("mean_us", |l| latency_csv(l, |t| t.mean)),
        Column::left("p50_rounds_us", |l| p(l, |r| join(&r.p50_rounds_us))),
        Column::right("rounds_left_out", |l| {
            p(l, |r| r.rounds_left_out.to_string())
        }),
        Column::right("median_round_p50_us", |l| {
            p(l, |r| csv_seen(r, |r| r.median_round_p50_us.to_string()))
        }),
        Column::right("messages_per_s", |l| {
            p(l, |r| csv_seen(r, |r| format!("{:.0}", r.messages_per_s)))
        }),
        Column::left("messages_per_s_rounds", |l| {
            p(l, |r| csv_seen(r, |r| join(&r.messages_per_s_rounds)))
        }),
        Column::right("in_flight", |l| p(l, |r| r.in_flight.to_string())),
        Column::right("mb_per_s", |l| {
            p(l, |r| csv_seen(r, |r| format!("{:.2}", r.mb_per_s)))
        }),
        Column::right("sent", |l| p(l, |r| r.sent.to_string())),
        Column::right("lost", |l| p(l, |r| r.lost.to_string())),
        Column::left("loss_cause", |l| {
            p(l, |r| r.loss_cause.map_or(String::new(), cause_name))
        }),
        Column::right("boundaries_kept", |l| p(l, |r| csv_yes(r.bounds()))),
        Column::right("burst_reads", |l| p(l, |r| r.burst_reads.to_string())),
        Column::right("burst_lost", |l| p(l, |r| r.burst_lost.to_string())),
        Column::right("ordered", |l| p(l, |r| csv_yes(r.order()))),
        Column::left("why", |l| p(l, |r| r.why.clone())),
        Column::right("tcp_connections", |l| {
            p(l, |r| tcp_cell(r, |t| t.connections))
        }),
        Column::right("tcp_retransmits", |l| {
            p(l, |r| tcp_cell(r, |t| t.retransmits))
        }),
        Column::right("tcp_rtt_us", |l| p(l, |r| tcp_cell(r, |t| t.rtt_us))),
        Column::right("tcp_cwnd", |l| p(l, |r| tcp_cell(r, |t| t.cwnd))),
    ]
}

/// A protocol row's latency percentile in the CSV, unformatted: empty on a boundary line
/// and where the row observed nothing.
fn latency_csv(line: &Line, pick: fn(&Percentiles) -> f64) -> String {
    match line {
        Line::Protocol(r) => csv_seen(r, |r| pick(&r.latency_us).to_string()),
        Line::Boundary(_) => String::new(),
    }
}

/// A TCP_INFO field, empty on a row without TCP_INFO.
fn tcp_cell(r: &Row, f: fn(&TcpInfoRow) -> u64) -> String {
    r.tcp_info
        .as_ref()
        .map_or(String::new(), |t| f(t).to_string())
}

/// Numbers in one CSV field, space-separated.
fn join<T: ToString>(values: &[T]) -> String {
    values
        .iter()
        .map(T::to_string)
        .collect::<Vec<_>>()
        .join(" ")
}

/// A loss cause as the JSON names it.
fn cause_name(c: Cause) -> String {
    serde_json::to_value(c)
        .ok()
        .and_then(|v| v.as_str().map(String::from))
        .unwrap_or_default()
}

/// The boundaries table's columns.
pub(super) fn boundary_columns() -> Vec<Column<BoundaryRow>> {
    vec![
        Column::left("proto", |b| b.proto.clone()),
        Column::left("framing", |b| b.framing.clone()),
        Column::left("sends", |b| b.sends.to_string()),
        Column::right("reads", |b| b.reads.to_string()),
        Column::right("bytes", |b| b.bytes.to_string()),
        Column::right("messages", |b| b.messages.to_string()),
    ]
}

/// What the lab renders: its rows, its boundaries table, its run's metadata.
pub(super) struct Lab<'a> {
    pub rows: &'a [Row],
    /// A note for each row, or group of rows, left out ([`super::why::left_out`]).
    pub left_out: &'a [String],
    pub boundaries: &'a [BoundaryRow],
    pub meta: &'a Meta,
    pub rounds: usize,
    /// Client and servers ran pinned to cores of their own ([`PINNED`]).
    pub pinned: bool,
}

/// Under the table of a pinned lab: why its p50s are above bench's and sockperf's.
pub(super) const PINNED: &str = "client and servers on different cores: each round trip \
    includes a wake-up across cores; bench and sockperf, unpinned, show less";

/// A lab on this machine in `format`.
pub(super) fn on_this_machine(format: Format, layout: Layout, lab: &Lab) -> String {
    match format {
        Format::Table => table(layout, lab),
        Format::Csv => csv(lab),
        Format::Json => report::json::document(&Document {
            schema: SCHEMA,
            meta: lab.meta,
            rows: lab.rows,
            left_out: lab.left_out,
            boundaries: lab.boundaries,
        }),
        Format::Ndjson => unreachable!("the command line refuses lab --format ndjson"),
    }
}

/// A lab across namespaces in `format`: the table gets what was set up, and what loss did to
/// each row, under it.
pub(super) fn across_namespaces(
    format: Format,
    layout: Layout,
    lab: &Lab,
    notes: &[String],
) -> String {
    match format {
        Format::Table => {
            let mut text = table(layout, lab);
            text.push('\n');
            text.push_str(&list(layout, notes));
            text.push_str(&list(layout, lab.rows.iter().map(consequence)));
            text
        }
        Format::Csv => csv(lab),
        Format::Json => report::json::document(&NetnsDocument {
            schema: SCHEMA,
            meta: lab.meta,
            netns: notes,
            rows: lab.rows,
        }),
        Format::Ndjson => unreachable!("the command line refuses lab --format ndjson"),
    }
}

/// The rows as a table with their sentences, then the boundaries table when measured.
fn table(layout: Layout, lab: &Lab) -> String {
    let mut text = match layout {
        Layout::Narrow => narrow(lab),
        Layout::Wide => {
            let mut text = report::table::render(&table_columns(), lab.rows);
            text.push('\n');
            text.push_str(&list(layout, lab.rows.iter().map(|r| &r.why)));
            text
        }
    };
    if lab.pinned {
        text.push('\n');
        text.push_str(&list(layout, [PINNED]));
    }
    if !lab.left_out.is_empty() {
        text.push('\n');
        text.push_str(&list(layout, lab.left_out));
    }
    if lab.boundaries.is_empty() {
        return text;
    }
    text.push_str(&format!(
        "\nMessage boundaries: {BURST} sends of {BURST_SIZE} bytes back to back on a stream\n"
    ));
    text.push_str(&report::table::render(&boundary_columns(), lab.boundaries));
    text.push_str(&list(layout, FRAMING_NOTES));
    text
}

/// Notes as a list: wrapped to 80 columns, or a line each with `--wide`.
fn list<I>(layout: Layout, notes: I) -> String
where
    I: IntoIterator,
    I::Item: AsRef<str>,
{
    match layout {
        Layout::Narrow => report::table::notes(notes),
        Layout::Wide => report::table::long_notes(notes),
    }
}

/// The 80-column table: each row's line, its sentence wrapped under it, the legend last.
fn narrow(lab: &Lab) -> String {
    let table = report::table::render(&narrow_columns(), lab.rows);
    let mut lines = table.lines();
    let mut text = format!("{}\n", lines.next().unwrap_or_default());
    for (line, row) in lines.zip(lab.rows) {
        text.push_str(line);
        text.push('\n');
        text.push_str(&crate::wrap::paragraph(
            &row.why,
            "    ",
            "    ",
            report::table::WIDTH,
        ));
    }
    text.push('\n');
    text.push_str(&crate::wrap::paragraph(
        &legend(lab.rounds),
        "",
        "",
        report::table::WIDTH,
    ));
    text
}

/// The protocol rows, then the boundaries table's rows, with the run's metadata on each.
fn csv(lab: &Lab) -> String {
    let lines: Vec<Line> = lab
        .rows
        .iter()
        .map(Line::Protocol)
        .chain(lab.boundaries.iter().map(Line::Boundary))
        .collect();
    report::csv::render_with(&csv_columns(), &lines, &lab.meta.fields())
}
