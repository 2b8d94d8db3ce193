//! Results as CSV (RFC 4180): a header row, then a row per result, with the same columns as
//! the table; a field holding a comma, a quote or a line break is quoted.

use super::column::{Column, cells};

/// `items` in `columns`, a row each.
#[cfg(test)]
pub(crate) fn render<T>(columns: &[Column<T>], items: &[T]) -> String {
    render_with(columns, items, &[])
}

/// `items` in `columns`, a row each, every row ending in the same `extra` fields (a run's
/// metadata, so that any one row says where it came from).
pub(crate) fn render_with<T>(
    columns: &[Column<T>],
    items: &[T],
    extra: &[(String, String)],
) -> String {
    let heads = columns
        .iter()
        .map(|c| c.head)
        .chain(extra.iter().map(|e| e.0.as_str()));
    let mut text = row(heads);
    for cells in cells(columns, items) {
        text.push_str(&row(cells
            .iter()
            .map(String::as_str)
            .chain(extra.iter().map(|e| e.1.as_str()))));
    }
    text
}

fn row<I>(fields: I) -> String
where
    I: Iterator,
    I::Item: AsRef<str>,
{
    let fields: Vec<String> = fields.map(|f| quote(f.as_ref())).collect();
    fields.join(",") + "\n"
}

/// Quotes a field that holds a comma, a quote or a line break, doubling its quotes.
fn quote(field: &str) -> String {
    if field.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", field.replace('"', "\"\""))
    } else {
        field.to_string()
    }
}
