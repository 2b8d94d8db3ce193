//! Runs as CSV (RFC 4180): a header row, then one row per run, with the table's columns.

use super::{Run, columns};

pub fn render(runs: &[Run]) -> String {
    let cols = columns();
    let mut text = cols
        .iter()
        .map(|(head, _)| *head)
        .collect::<Vec<_>>()
        .join(",");
    text.push('\n');
    for run in runs {
        let row: Vec<String> = cols.iter().map(|(_, value)| quote(&value(run))).collect();
        text.push_str(&row.join(","));
        text.push('\n');
    }
    text
}

/// Quotes a field that holds a comma, a quote or a line break; doubles its quotes.
fn quote(field: &str) -> String {
    if field.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", field.replace('"', "\"\""))
    } else {
        field.to_string()
    }
}
