//! `lab --html`: the lab as one page: the table (the terminal's columns, which its legend
//! explains) with each row's sentence under it, the latency plot, the boundaries table,
//! what was set up across namespaces, the metadata and the exact command.

use crate::report::html;

use super::plan::{BURST, BURST_SIZE};
use super::render::{FRAMING_NOTES, Lab, PINNED, boundary_columns, legend, narrow_columns};
use super::why::consequence;

/// The page of `lab`, with `svg` as its plot and `notes` on what was set up (namespaces, a
/// lab server and the path to it) under `heading`.
pub(super) fn render(lab: &Lab, svg: &str, notes: &[String], heading: &str) -> String {
    let mut body = html::section(
        "protocols",
        "Protocols side by side",
        &(html::table(&narrow_columns(), lab.rows, Some(|r| r.why.clone()))
            + &html::paragraphs([legend(lab.rounds)])
            + &html::paragraphs(lab.pinned.then_some(PINNED))
            + &html::paragraphs(lab.left_out)),
    );
    if !notes.is_empty() {
        let consequences: Vec<String> = lab.rows.iter().map(consequence).collect();
        let text = html::paragraphs(notes) + &html::paragraphs(consequences);
        body.push_str(&html::section("netns", heading, &text));
    }
    body.push_str(&html::section(
        "plot",
        "Ping-pong latency",
        &format!(
            "{}{}",
            html::inline_svg(svg),
            html::paragraphs([
                "Each nine of the percentile axis gets as much height as the first 90%: \
                 the tails are where protocols differ."
            ])
        ),
    ));
    if !lab.boundaries.is_empty() {
        let text = html::paragraphs([format!(
            "{BURST} sends of {BURST_SIZE} bytes back to back on a stream."
        )]) + &html::table(&boundary_columns(), lab.boundaries, None)
            + &html::paragraphs(FRAMING_NOTES);
        body.push_str(&html::section("boundaries", "Message boundaries", &text));
    }
    html::page("netecho lab", lab.meta, &body)
}
