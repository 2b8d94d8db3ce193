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
    let mut text = serde_json::to_string_pretty(&Document {
        schema: SCHEMA,
        runs,
    })
    .expect("a report always serializes");
    text.push('\n');
    text
}
