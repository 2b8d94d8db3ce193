//! Results as an aligned table for people: a header line, a line per result, columns two
//! spaces apart and padded to their widest cell; and notes under a table, each wrapped to
//! [`WIDTH`] columns.

use super::column::{Align, Column, cells};

/// `items` in `columns`, each column to its side.
pub(crate) fn render<T>(columns: &[Column<T>], items: &[T]) -> String {
    let rows = cells(columns, items);
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
        .map(|note| wrap(note.as_ref(), "- ", "  ", WIDTH))
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

/// `text` broken at spaces into lines of at most `width` characters (a longer word keeps its
/// own line): the first line after `first`, the others after `rest`; each line ends in a
/// line break. A `backquoted command` stays on one line when it fits one, so that it can be
/// copied as typed.
pub(crate) fn wrap(text: &str, first: &str, rest: &str, width: usize) -> String {
    let mut out = String::new();
    let mut line = first.to_string();
    let mut empty = true;
    let whole = width.saturating_sub(first.chars().count().max(rest.chars().count()));
    for piece in pieces(text, whole) {
        let len = line.chars().count();
        if !empty && len + 1 + piece.chars().count() > width {
            out.push_str(line.trim_end());
            out.push('\n');
            line = rest.to_string();
            empty = true;
        }
        if !empty {
            line.push(' ');
        }
        line.push_str(&piece);
        empty = false;
    }
    out.push_str(line.trim_end());
    out.push('\n');
    out
}

/// The words of `text`, the words of a backquoted span joined into one piece when it is at
/// most `whole` characters long. A word with an odd number of backquotes opens or closes a
/// span (`` `netecho ``, `` 5000`, ``).
fn pieces(text: &str, whole: usize) -> Vec<String> {
    let odd = |word: &str| word.matches('`').count() % 2 == 1;
    let mut out = Vec::new();
    let mut span: Vec<&str> = Vec::new();
    for word in text.split_whitespace() {
        match (span.is_empty(), odd(word)) {
            (true, false) => out.push(word.to_string()),
            (true, true) | (false, false) => span.push(word),
            (false, true) => {
                span.push(word);
                let joined = span.join(" ");
                match joined.chars().count() <= whole {
                    true => out.push(joined),
                    false => out.extend(span.iter().map(|w| w.to_string())),
                }
                span.clear();
            }
        }
    }
    // A span never closed is words like any others.
    out.extend(span.iter().map(|w| w.to_string()));
    out
}
