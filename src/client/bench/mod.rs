//! `netecho bench`: runs the load loop against any echo server, or against servers it starts
//! for each protocol, and prints what it measured.

pub mod interval;
pub mod load;
pub mod loss;

use std::io::Write;

use anyhow::{Context, Result, bail};
use tracing::warn;

use std::time::Duration;

use crate::cli::BenchArgs;
use crate::client::bench::interval::{Board, Interval};
use crate::client::bench::load::Limit;
use crate::endpoint::{Proto, SocketKind};
use crate::error::UsageError;
use crate::report::Format;
use crate::report::progress::Progress;
use crate::report::{self, Run};

use crate::client::local::LocalServers;

pub fn run(args: &BenchArgs) -> Result<()> {
    // Without ADDR, local servers (and their temporary directory) live for the whole run.
    let mut local = None;
    let targets = match args.targets()? {
        Some(targets) => targets,
        None => {
            let servers = local.insert(LocalServers::new()?);
            let protos = if args.proto.is_empty() {
                vec![Proto::Tcp]
            } else {
                args.proto.clone()
            };
            let framing = args.framing.framing.name();
            protos
                .iter()
                .map(|p| {
                    servers.start(*p, &servers.address_for(*p, false), &["--framing", framing])
                })
                .collect::<Result<Vec<_>>>()?
        }
    };
    let every = match (args.format, args.interval) {
        (Format::Ndjson, every) => Some(every.unwrap_or(Duration::from_secs(1))),
        (_, Some(_)) => {
            return Err(UsageError::new(
                "--interval writes a line per interval: it needs --format ndjson",
            )
            .into());
        }
        _ => None,
    };
    let mut runs = Vec::new();
    let mut latencies = Vec::new();
    let mut problems = Vec::new();
    for target in targets {
        let spec = args.spec(target)?;
        let result = {
            let _bar = match spec.limit {
                Limit::Duration(d) => Some(Progress::start(spec.target.to_string(), d)),
                Limit::Count(_) => None,
            };
            match every {
                Some(every) => {
                    let (proto, address) =
                        (spec.target.proto.to_string(), spec.target.addr.to_string());
                    let emit = |i: &Interval| {
                        // A closed stdout ends the run at the summary; nothing to do here.
                        let mut out = std::io::stdout().lock();
                        let _ = out
                            .write_all(report::ndjson::interval(&proto, &address, i).as_bytes())
                            .and_then(|_| out.flush());
                    };
                    let board = Board::new(every, load::threads(&spec), &emit);
                    load::run_with(&spec, Some(&board))?
                }
                None => load::run(&spec)?,
            }
        };
        if result.lost > 0 && spec.target.proto.kind() == SocketKind::Datagram {
            warn!(
                "{}: {} of {} datagrams lost: nobody retransmits them",
                spec.target, result.lost, result.sent
            );
            for line in result.loss().explain(spec.opts.rcvbuf, spec.window) {
                warn!("{}: {line}", spec.target);
            }
        }
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
        runs.push(Run::new(&spec, &result));
        if every.is_some() {
            // Each run's summary right after its intervals, while later runs go on.
            let mut out = std::io::stdout().lock();
            out.write_all(report::ndjson::render(&runs[runs.len() - 1..]).as_bytes())
                .and_then(|_| out.flush())
                .context("write to stdout")?;
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
        let text = report::render(args.format, &runs);
        let mut out = std::io::stdout().lock();
        out.write_all(text.as_bytes())
            .and_then(|_| out.flush())
            .context("write to stdout")?;
    }
    if !problems.is_empty() {
        bail!("{}", problems.join("; "));
    }
    Ok(())
}
