//! `netecho lab`: the one command a newcomer runs. Starts its own echo server for every
//! protocol it can use here, measures each the same way, and prints one comparison table
//! with a sentence per row on why it differs; then removes everything it made.
//!
//! The room: [`plan`] (what is measured, for how long), [`measure`] and [`raw`] (a row's
//! numbers), [`rows`] (the rows as data), [`why`] (the sentences), [`render`] (the rows as
//! text), [`netns`] (two namespaces and real loss); this file runs them in order.

mod measure;
pub mod netns;
mod plan;
mod raw;
mod render;
pub mod rows;
mod why;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use tracing::{info, warn};

use crate::client::local::LocalServers;
use crate::endpoint::{Endpoint, Proto};
use crate::packet::DEFAULT_IP_PROTO;
use crate::report::{self, Format};
use crate::service::framing::Framing;
use crate::transport;

use measure::{boundary_row, measure};
use netns::{Netns, SERVER_IP};
use plan::{CASES, Plan};
use raw::measure_raw;
use rows::{BoundaryRow, Row};

/// What `lab` measures and how it prints it.
pub struct LabConfig {
    /// A short run (under 5 seconds) with fewer samples.
    pub quick: bool,
    /// Table, JSON or CSV: the lab prints one table at the end, never ndjson.
    pub format: Format,
    /// Also draw the latency distribution of every protocol into this SVG file.
    pub plot: Option<PathBuf>,
    /// Across two network namespaces, with real loss and rate limits; `None`: on loopback.
    pub netns: Option<NetnsConfig>,
}

/// `lab --netns`: the conditions of the veth pair, each direction.
pub struct NetnsConfig {
    /// The fraction of packets each side drops (nftables).
    pub loss: f64,
    /// Bytes per second each direction is limited to (tc tbf).
    pub rate: Option<u64>,
}

pub fn run(args: LabConfig) -> Result<()> {
    let started = Instant::now();
    let plan = Plan::new(args.quick);
    let (text, removed) = if let Some(netns) = &args.netns {
        let text = across_namespaces(&plan, netns.loss, netns.rate, args.format)?;
        (text, "; namespaces removed")
    } else {
        (
            on_this_machine(&plan, args.format, args.plot.as_deref())?,
            "",
        )
    };
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|_| out.flush())
        .context("write to stdout")?;
    info!(
        "lab finished in {:.1} s{removed}",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Every protocol on loopback, then the boundaries burst; the rows as text in `format`.
fn on_this_machine(plan: &Plan, format: Format, plot: Option<&Path>) -> Result<String> {
    let servers = LocalServers::new()?;
    let mut rows = Vec::new();
    for (i, (proto, ipv6)) in CASES.iter().enumerate() {
        let addr = servers.address_for(*proto, *ipv6);
        progress(&format!("[{}/{}] {proto} {addr}", i + 1, CASES.len()));
        let target = servers.start(*proto, &addr, &[])?;
        rows.push(measure(&target, plan)?);
    }
    rows.extend(raw_rows(&servers, plan)?);
    progress("boundaries");
    let boundaries = boundary_rows(&servers)?;
    progress("");
    drop(servers);
    if let Some(path) = plot {
        let series: Vec<(String, &hdrhistogram::Histogram<u64>)> = rows
            .iter()
            .filter_map(|r| Some((label(r), r.latency.as_ref()?)))
            .collect();
        report::svg::write(path, "ping-pong latency by protocol", &series)?;
    }
    Ok(render::on_this_machine(format, &rows, &boundaries))
}

/// A row's name in the plot: its protocol and family.
fn label(r: &Row) -> String {
    match r.family {
        Some(family) => format!("{} {family}", r.proto),
        None => r.proto.clone(),
    }
}

/// Raw rows need CAP_NET_RAW: without it the lab says so and measures the rest.
fn raw_rows(servers: &LocalServers, plan: &Plan) -> Result<Vec<Row>> {
    if let Err(e) = transport::raw::open(false, i32::from(DEFAULT_IP_PROTO), "raw 127.0.0.1") {
        warn!("lab: raw rows skipped: {e:#}");
        return Ok(Vec::new());
    }
    [false, true]
        .into_iter()
        .map(|ipv6| {
            let addr = servers.address_for(Proto::Raw, ipv6);
            progress(&format!("raw {addr}"));
            let target = servers.start(Proto::Raw, &addr, &[])?;
            measure_raw(&target, plan)
        })
        .collect()
}

/// The boundaries burst over each stream, with each framing.
fn boundary_rows(servers: &LocalServers) -> Result<Vec<BoundaryRow>> {
    let mut rows = Vec::new();
    for proto in [Proto::Tcp, Proto::Unix] {
        for framing in [Framing::None, Framing::Line, Framing::Length] {
            let name = format!("{}-{}", proto.name(), framing.name());
            let addr = match proto {
                Proto::Tcp => "127.0.0.1:0".to_string(),
                _ => servers.path(&format!("{name}.sock")).display().to_string(),
            };
            let target = servers.start(proto, &addr, &["--framing", framing.name()])?;
            rows.push(boundary_row(&target, framing)?);
        }
    }
    Ok(rows)
}

/// `lab --netns`: tcp and udp between two network namespaces, through real loss (`loss`, a
/// fraction) and a rate limit (bytes per second) when asked; the table, then what the
/// kernel did about the loss.
fn across_namespaces(plan: &Plan, loss: f64, rate: Option<u64>, format: Format) -> Result<String> {
    let servers = LocalServers::new()?;
    let ns = Netns::create(servers.namespaces(), loss, rate)?;
    for note in &ns.notes {
        info!("{note}");
    }
    let prefix = ns.server_prefix();
    let addr = format!("{SERVER_IP}:0");
    let targets = [Proto::Tcp, Proto::Udp]
        .into_iter()
        .map(|proto| servers.start_in(&prefix, proto, &addr, &[]))
        .collect::<Result<Vec<_>>>()?;
    let rows = measure_from_client_side(&ns, &targets, plan)?;
    progress("");
    drop(servers);
    Ok(render::across_namespaces(format, &rows, &ns.notes))
}

/// Measures each target from the clients' namespace.
fn measure_from_client_side(ns: &Netns, targets: &[Endpoint], plan: &Plan) -> Result<Vec<Row>> {
    // The measuring thread moves into the clients' namespace; every load thread it starts
    // is born there. This thread stays where it was, free to clean up.
    std::thread::scope(|scope| {
        scope
            .spawn(|| -> Result<Vec<Row>> {
                ns.enter_client()?;
                targets
                    .iter()
                    .enumerate()
                    .map(|(i, target)| {
                        progress(&format!(
                            "[{}/{}] {target} across namespaces",
                            i + 1,
                            targets.len()
                        ));
                        measure(target, plan)
                    })
                    .collect()
            })
            .join()
            .unwrap_or_else(|_| Err(anyhow::anyhow!("the measuring thread panicked")))
    })
}

/// A status line on stderr, only when it is a terminal.
fn progress(what: &str) {
    use std::io::IsTerminal;
    let mut err = std::io::stderr();
    if err.is_terminal() {
        let _ = write!(err, "\r\x1b[2Klab: {what}");
        if what.is_empty() {
            let _ = write!(err, "\r\x1b[2K");
        }
        let _ = err.flush();
    }
}

#[cfg(test)]
mod tests;
