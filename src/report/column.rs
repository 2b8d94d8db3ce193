//! A column of a table or a CSV file: its header, the side its cells keep to, and how one
//! result shows in it. One list of columns serves every text format of a kind of result.

/// Which side of its column a cell keeps to in a table: text to the left, numbers to the right.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Align {
    Left,
    Right,
}

/// A column over results of type `T`.
pub(crate) struct Column<T> {
    pub head: &'static str,
    pub align: Align,
    pub cell: fn(&T) -> String,
}

impl<T> Column<T> {
    /// A text column.
    pub(crate) fn left(head: &'static str, cell: fn(&T) -> String) -> Column<T> {
        Column {
            head,
            align: Align::Left,
            cell,
        }
    }

    /// A number column.
    pub(crate) fn right(head: &'static str, cell: fn(&T) -> String) -> Column<T> {
        Column {
            head,
            align: Align::Right,
            cell,
        }
    }
}

/// Each item's cells, a row per item.
pub(crate) fn cells<T>(columns: &[Column<T>], items: &[T]) -> Vec<Vec<String>> {
    items
        .iter()
        .map(|item| columns.iter().map(|c| (c.cell)(item)).collect())
        .collect()
}
