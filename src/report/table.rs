//! Runs as an aligned table, one row per run, numbers right-aligned.

use super::{Run, columns};

pub fn render(runs: &[Run]) -> String {
    let cols = columns();
    let cells: Vec<Vec<String>> = runs
        .iter()
        .map(|run| cols.iter().map(|(_, value)| value(run)).collect())
        .collect();
    let widths: Vec<usize> = cols
        .iter()
        .enumerate()
        .map(|(i, (head, _))| {
            cells
                .iter()
                .map(|row| row[i].len())
                .fold(head.len(), usize::max)
        })
        .collect();
    let mut text = String::new();
    let line = |text: &mut String, row: Vec<&str>| {
        let cells: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(i, cell)| {
                // Text columns (proto, address) to the left, numbers to the right.
                if i < 2 {
                    format!("{cell:<w$}", w = widths[i])
                } else {
                    format!("{cell:>w$}", w = widths[i])
                }
            })
            .collect();
        text.push_str(cells.join("  ").trim_end());
        text.push('\n');
    };
    line(&mut text, cols.iter().map(|(head, _)| *head).collect());
    for row in &cells {
        line(&mut text, row.iter().map(String::as_str).collect());
    }
    text
}
