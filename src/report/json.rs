//! Runs as one JSON document: `{"schema": "netecho-bench/2", "runs": [...]}` (README: "JSON
//! output" documents every field).

use serde::Serialize;

use super::{Meta, Run, SCHEMA};

#[derive(Serialize)]
struct Document<'a> {
    schema: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    meta: Option<&'a Meta>,
    runs: &'a [Run],
}

/// `runs`, after the metadata of the command that measured them when given.
pub(crate) fn render(runs: &[Run], meta: Option<&Meta>) -> String {
    document(&Document {
        schema: SCHEMA,
        meta,
        runs,
    })
}

/// Any report document as indented JSON, ending in a line break.
pub(crate) fn document(doc: &impl Serialize) -> String {
    // Reports hold numbers, strings and lists only: nothing that JSON cannot express.
    serde_json::to_string_pretty(doc).expect("a report always serializes") + "\n"
}
