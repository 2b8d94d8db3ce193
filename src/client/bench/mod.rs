//! `netecho bench`: runs the load loop against any echo server, or against servers it starts
//! for each protocol, and prints what it measured.

pub mod interval;
pub mod load;
pub mod loss;
pub mod summary;

use std::io::Write;

use anyhow::{Context, Result, bail};
use tracing::warn;

use std::time::Duration;

use crate::cli::BenchArgs;
use crate::client::bench::interval::{Board, Interval};
use crate::client::bench::load::{Limit, LoadResult, LoadSpec};
use crate::endpoint::{Endpoint, Proto, SocketKind};
use crate::error::UsageError;
use crate::report;
use crate::report::Format;
use crate::report::progress::Progress;

use crate::client::local::LocalServers;

pub fn run(args: &BenchArgs) -> Result<()> {
    // Without ADDR, local servers (and their temporary directory) live for the whole run.
    let mut local = None;
    let targets = match args.targets()? {
        Some(targets) => targets,
        None => {
            let servers = local.insert(LocalServers::new()?);
            start_local(servers, &args.proto, args.framing.framing.name())?
        }
    };
    let every = interval_of(args.format, args.interval)?;
    let mut runs = Vec::new();
    let mut latencies = Vec::new();
    let mut problems = Vec::new();
    for target in targets {
        let spec = args.spec(target)?;
        let result = measure(&spec, every)?;
        warn_of_loss(&spec, &result);
        problems.extend(problems_in(&spec, &result));
        runs.push(summary::run(&spec, &result));
        if every.is_some() {
            // Each run's summary right after its intervals, while later runs go on.
            print(&report::ndjson::render(&runs[runs.len() - 1..]))?;
        }
        latencies.push((format!("{}", spec.target), result.latency));
    }
    drop(local);
    if let Some(path) = &args.plot {
        let series: Vec<(String, &hdrhistogram::Histogram<u64>)> = latencies
            .iter()
            .map(|(name, h)| (name.clone(), h))
            .collect();
        report::svg::write(path, "round-trip latency", &series)?;
    }
    if every.is_none() {
        print(&report::render(args.format, &runs))?;
    }
    if !problems.is_empty() {
        bail!("{}", problems.join("; "));
    }
    Ok(())
}

/// A local echo server for each protocol asked (TCP when none is), with `framing`.
fn start_local(servers: &LocalServers, protos: &[Proto], framing: &str) -> Result<Vec<Endpoint>> {
    let protos = if protos.is_empty() {
        &[Proto::Tcp][..]
    } else {
        protos
    };
    protos
        .iter()
        .map(|p| servers.start(*p, &servers.address_for(*p, false), &["--framing", framing]))
        .collect()
}

/// How often an interval line is written: every second by default with ndjson, never
/// otherwise.
fn interval_of(format: Format, interval: Option<Duration>) -> Result<Option<Duration>> {
    match (format, interval) {
        (Format::Ndjson, every) => Ok(Some(every.unwrap_or(Duration::from_secs(1)))),
        (_, Some(_)) => Err(UsageError::new(
            "--interval writes a line per interval: it needs --format ndjson",
        )
        .into()),
        _ => Ok(None),
    }
}

/// One load run against `spec`'s target, with a progress bar for a timed run and, with
/// `every`, an ndjson line per interval.
fn measure(spec: &LoadSpec, every: Option<Duration>) -> Result<LoadResult> {
    let _bar = match spec.limit {
        Limit::Duration(d) => Some(Progress::start(spec.target.to_string(), d)),
        Limit::Count(_) => None,
    };
    let Some(every) = every else {
        return load::run(spec);
    };
    let (proto, address) = (spec.target.proto.to_string(), spec.target.addr.to_string());
    let emit = |i: &Interval| {
        // A closed stdout ends the run at the summary; nothing to do here.
        let mut out = std::io::stdout().lock();
        let _ = out
            .write_all(report::ndjson::interval(&proto, &address, i).as_bytes())
            .and_then(|_| out.flush());
    };
    let board = Board::new(every, load::threads(spec), &emit);
    load::run_with(spec, Some(&board))
}

/// Datagrams lost in a run, and where they went, as warnings: nobody resends them.
fn warn_of_loss(spec: &LoadSpec, result: &LoadResult) {
    if result.lost == 0 || spec.target.proto.kind() != SocketKind::Datagram {
        return;
    }
    warn!(
        "{}: {} of {} datagrams lost: nobody retransmits them",
        spec.target, result.lost, result.sent
    );
    for line in result.loss().explain(spec.opts.rcvbuf, spec.window) {
        warn!("{}: {line}", spec.target);
    }
}

/// What makes a run fail: replies that did not match, clients that failed.
fn problems_in(spec: &LoadSpec, result: &LoadResult) -> Vec<String> {
    let mut problems = Vec::new();
    if result.mismatched > 0 {
        problems.push(format!(
            "{}: {} replies did not match their requests byte for byte (use --expect echo \
             against a server that does not upper-case)",
            spec.target, result.mismatched
        ));
    }
    if let Some(err) = &result.first_error {
        problems.push(format!(
            "{} client(s) failed; the first: {err}",
            result.failed_clients
        ));
    }
    problems
}

fn print(text: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|_| out.flush())
        .context("write to stdout")
}
