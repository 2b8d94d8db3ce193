//! Results as an aligned table for people: a header line, a line per result, columns two
//! spaces apart and padded to their widest cell; and notes under a table, each wrapped to
//! [`WIDTH`] columns.

use super::column::{Align, Column, cells};

/// `items` in `columns`, each column to its side; an empty cell (nothing measured: null in
/// the JSON, empty in the CSV) as `-`, so that no blank reads as a misaligned column.
pub(crate) fn render<T>(columns: &[Column<T>], items: &[T]) -> String {
    let mut rows = cells(columns, items);
    for cell in rows.iter_mut().flatten().filter(|c| c.is_empty()) {
        cell.push('-');
    }
    let widths: Vec<usize> = columns
        .iter()
        .enumerate()
        .map(|(i, c)| {
            rows.iter()
                .map(|row| row[i].len())
                .fold(c.head.len(), usize::max)
        })
        .collect();
    let line = |row: Vec<&str>| {
        let padded: Vec<String> = row
            .iter()
            .zip(columns.iter().zip(&widths))
            .map(|(cell, (c, &w))| match c.align {
                Align::Left => format!("{cell:<w$}"),
                Align::Right => format!("{cell:>w$}"),
            })
            .collect();
        padded.join("  ").trim_end().to_string() + "\n"
    };
    let mut text = line(columns.iter().map(|c| c.head).collect());
    for row in &rows {
        text.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    text
}

/// The width every table and note fits by default: a terminal's, a printed page's.
pub(crate) const WIDTH: usize = 80;

/// Notes for under a table: a list, each note wrapped to [`WIDTH`] columns.
pub(crate) fn notes<I>(notes: I) -> String
where
    I: IntoIterator,
    I::Item: AsRef<str>,
{
    notes
        .into_iter()
        .map(|note| crate::wrap::paragraph(note.as_ref(), "- ", "  ", WIDTH))
        .collect()
}

/// Notes for under a table that may be as wide as it likes: a line each, as a list.
pub(crate) fn long_notes<I>(notes: I) -> String
where
    I: IntoIterator,
    I::Item: AsRef<str>,
{
    notes
        .into_iter()
        .map(|note| format!("- {}\n", note.as_ref()))
        .collect()
}
