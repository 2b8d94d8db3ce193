//! Runs as one JSON document: `{"schema": "netecho-bench/1", "runs": [...]}` (README: "JSON
//! output" documents every field).

use serde::Serialize;

use super::{Run, SCHEMA};

#[derive(Serialize)]
struct Document<'a> {
    schema: &'static str,
    runs: &'a [Run],
}

pub fn render(runs: &[Run]) -> String {
    document(&Document {
        schema: SCHEMA,
        runs,
    })
}

/// Any report document as indented JSON, ending in a line break.
pub fn document(doc: &impl Serialize) -> String {
    // Reports hold numbers, strings and lists only: nothing that JSON cannot express.
    serde_json::to_string_pretty(doc).expect("a report always serializes") + "\n"
}
