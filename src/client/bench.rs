//! `netecho bench`: runs the load loop against any echo server and prints what it measured.

use std::io::Write;

use anyhow::{Context, Result, bail};

use crate::cli::BenchArgs;

use super::load::{self, Limit, LoadResult, LoadSpec};

pub fn run(args: &BenchArgs) -> Result<()> {
    let spec = args.spec()?;
    let result = load::run(&spec)?;
    let mut out = std::io::stdout().lock();
    out.write_all(render_table(&spec, &result).as_bytes())
        .and_then(|_| out.flush())
        .context("write to stdout")?;
    if result.mismatched > 0 {
        bail!(
            "{} replies did not match their requests byte for byte (use --expect echo against a \
             server that does not upper-case)",
            result.mismatched
        );
    }
    if let Some(err) = &result.first_error {
        bail!(
            "{} client(s) failed; the first: {err}",
            result.failed_clients
        );
    }
    Ok(())
}

/// The result as an aligned table with a heading line.
pub fn render_table(spec: &LoadSpec, r: &LoadResult) -> String {
    let limit = match spec.limit {
        Limit::Duration(d) => format!("{:.1} s", d.as_secs_f64()),
        Limit::Count(n) => format!("{n} requests per client"),
    };
    let mut text = format!(
        "bench {}: {} client(s), {}-byte messages, window {}, {limit}\n",
        spec.target, spec.clients, spec.size, spec.window
    );
    let q = |p: f64| r.latency.value_at_quantile(p);
    let rows = [
        ("requests/s", format!("{:.0}", r.requests_per_sec())),
        ("MB/s", format!("{:.2}", r.mb_per_sec())),
        ("p50 us", q(0.5).to_string()),
        ("p99 us", q(0.99).to_string()),
        ("p99.9 us", q(0.999).to_string()),
        ("max us", r.latency.max().to_string()),
        (
            "connect p50 us",
            r.connect.value_at_quantile(0.5).to_string(),
        ),
        ("sent", r.sent.to_string()),
        ("answered", r.answered.to_string()),
        ("lost", r.lost.to_string()),
        ("duplicated", r.duplicated.to_string()),
        ("reordered", r.reordered.to_string()),
        ("late", r.late.to_string()),
        ("mismatched", r.mismatched.to_string()),
        ("failed clients", r.failed_clients.to_string()),
    ];
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    for (key, value) in rows {
        text.push_str(&format!("  {key:<width$}  {value}\n"));
    }
    text
}
