//! `netecho bench`: runs the load loop against any echo server, or against servers it starts
//! for each protocol, and prints what it measured.

pub(crate) mod interval;
pub(crate) mod load;
pub(crate) mod loss;
pub(crate) mod silence;
pub(crate) mod summary;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Result, bail};
use serde_json::{Map, Value};
use tracing::warn;

use crate::client::bench::interval::{Board, Interval};
use crate::client::bench::load::{DATAGRAM_TIMEOUT, Limit, LoadResult, LoadSpec, STREAM_STALL};
use crate::endpoint::{Address, SockProto, Target};
use crate::files::store::{Output, check_output, write_output};
use crate::report;
use crate::report::progress::Progress;
use crate::report::{Format, Layout, Meta, Run};
use crate::service::echo::Transform;
use crate::signal;
use crate::transport::SocketOptions;
use crate::transport::framing::Framing;
use crate::transport::quic::QuicMode;

use crate::client::local::LocalServers;

/// The least a timed run's replies still in flight are awaited over a stream, unless
/// --timeout says otherwise: a server paused for a moment is not a stall.
const DRAIN_FLOOR: Duration = Duration::from_secs(5);

/// Which servers `bench` measures.
pub(crate) enum Servers {
    /// Servers already running: one target per protocol measured.
    Given(Vec<Target>),
    /// Servers bench starts for itself, one per protocol, and stops at the end.
    Local(Vec<SockProto>),
}

/// What `bench` measures, against which servers, and how it reports.
pub(crate) struct BenchConfig {
    pub servers: Servers,
    pub clients: usize,
    /// Bytes per message; within what every protocol measured carries.
    pub size: usize,
    pub window: usize,
    pub limit: Limit,
    pub threads: usize,
    /// A datagram request unanswered this long counts as lost, and over a stream a reply
    /// awaited this long is a stall; unset, [`DATAGRAM_TIMEOUT`] and [`STREAM_STALL`].
    pub timeout: Option<Duration>,
    pub expect: Transform,
    pub idle: bool,
    pub framing: Framing,
    /// Pacing: each client sends at most this many request bytes per second.
    pub rate: Option<u64>,
    pub opts: SocketOptions,
    /// Whether `opts.tls` is for every stream (--tls), not only for QUIC, which always has it.
    pub tls: bool,
    pub format: Format,
    /// The table within 80 columns, or every column on one line per run.
    pub layout: Layout,
    /// How often an ndjson line is written while a run goes on: set exactly when `format`
    /// is ndjson.
    pub every: Option<Duration>,
    /// Also draw the latency distribution of every run into this SVG file.
    pub plot: Option<PathBuf>,
    /// Replace the --plot file if it exists.
    pub force: bool,
}

impl BenchConfig {
    /// What to measure against `target`.
    pub(crate) fn spec(&self, target: Target) -> LoadSpec {
        LoadSpec {
            clients: self.clients,
            size: self.size,
            window: self.window,
            limit: self.limit,
            threads: self.threads,
            timeout: self.timeout.unwrap_or(DATAGRAM_TIMEOUT),
            stall: self.stall(),
            expect: self.expect,
            idle: self.idle,
            framing: self.framing,
            rate: self.rate,
            opts: self.opts_for(&target),
            target,
        }
    }
}

impl BenchConfig {
    /// How long a stream's reply may be awaited: --timeout; unless given, [`STREAM_STALL`],
    /// or for a timed run its duration within [`DRAIN_FLOOR`] and [`STREAM_STALL`], so a
    /// short run against a server that stopped answering ends soon after its time.
    pub(crate) fn stall(&self) -> Duration {
        match (self.timeout, self.limit) {
            (Some(timeout), _) => timeout,
            (None, Limit::Duration(d)) => d.clamp(DRAIN_FLOOR, STREAM_STALL),
            (None, Limit::Count(_)) => STREAM_STALL,
        }
    }

    /// The socket options for `target`: TLS where asked, or QUIC, and a local server's
    /// certificate pinned.
    fn opts_for(&self, target: &Target) -> SocketOptions {
        let mut opts = self.opts.clone();
        if target.proto != SockProto::Quic && !self.tls {
            opts.tls = None;
        }
        crate::client::local::options_for(target, &opts)
    }
}

/// Runs every measurement and prints the report; a stop signal ends the run under way, and
/// the report holds what ran, marked as stopped (exit status 130 or 143).
pub(crate) fn run(args: BenchConfig) -> Result<ExitCode> {
    // Before anything is measured: a run is not spent for a path.
    let plot = args.plot.as_deref().map(|path| Output {
        flag: "--plot",
        path,
    });
    if let Some(plot) = plot {
        check_output(plot, args.force, "bench.svg")?;
    }
    // Local servers (and their temporary directory) live for the whole run.
    let mut local = None;
    let targets = match &args.servers {
        Servers::Given(targets) => {
            signal::stop_gently(|| {})?;
            targets.clone()
        }
        Servers::Local(protos) => {
            let servers = local.insert(LocalServers::unwatched()?);
            signal::stop_gently(servers.stopper())?;
            start_local(servers, protos, args.framing.name(), args.opts.quic.mode)?
        }
    };
    let meta = Meta::now(parameters(&args));
    let Measured {
        runs,
        latencies,
        problems,
        left_out,
    } = measure_all(&args, targets, &meta)?;
    drop(local);
    if let Some(plot) = plot {
        let series: Vec<(String, &hdrhistogram::Histogram<u64>)> = latencies
            .iter()
            .map(|(name, h)| (name.clone(), h))
            .collect();
        let svg = report::svg::render("round-trip latency", &[], &series);
        write_output(plot, args.force, svg.as_bytes())?;
    }
    // Runs that all failed with nothing answered: their errors are the whole report, not a
    // table of zeros that reads as a clean run.
    let all_failed = runs.is_empty() && !problems.is_empty();
    // What was found of each run: under the table, as its notes (a run left out of it, just
    // after); with JSON, CSV or ndjson, whose stdout a program reads, on stderr just before
    // the report (--interval: before each run's summary), so that `2>&1 | tail -n 1` still
    // ends at its last line.
    let table = args.format == Format::Table;
    let whole = args.every.is_none();
    if !table && whole {
        say(runs.iter().flat_map(|r| &r.found).chain(&left_out));
    }
    if whole && !all_failed {
        print(&report::report(args.format, args.layout, &runs, &meta))?;
    }
    if table || !whole {
        say(&left_out);
    }
    if let Some(signal) = signal::stop_asked() {
        // Said, but the exit status is the signal's, as for any stopped command.
        for problem in &problems {
            warn!("{problem}");
        }
        warn!("stopped by {signal}; the report holds what ran until then");
        return Ok(ExitCode::from(signal::exit_status(signal)));
    }
    if !problems.is_empty() {
        bail!("{}", problems.join("; "));
    }
    Ok(ExitCode::SUCCESS)
}

/// What the runs measured: their summaries and round trips for the report, and what
/// failed them.
struct Measured {
    runs: Vec<Run>,
    latencies: Vec<(String, hdrhistogram::Histogram<u64>)>,
    problems: Vec<String>,
    /// What was found of the runs left out of the report (see [`found`]).
    left_out: Vec<String>,
}

/// Measures each target in turn until a stop signal, each run's summary printed after its
/// intervals with `--interval`. A run that failed with nothing answered (a server refusing
/// datagrams, one that answers something else), out of step (a server that sent more
/// than it was sent) or whose every client failed has no numbers: it is left out of the report, and its problem said.
fn measure_all(args: &BenchConfig, targets: Vec<Target>, meta: &Meta) -> Result<Measured> {
    let mut all = Measured {
        runs: Vec::new(),
        latencies: Vec::new(),
        problems: Vec::new(),
        left_out: Vec::new(),
    };
    for target in targets {
        if signal::stop_asked().is_some() {
            break;
        }
        let spec = args.spec(target);
        let result = match measure(&spec, args.every) {
            Ok(result) => result,
            // A stop that failed the run (a local server stopped by the same Ctrl-C as we
            // were): the report holds the runs before it.
            Err(_) if signal::stop_asked().is_some() => break,
            Err(e) => return Err(e),
        };
        let found = found(&spec, &result);
        let problems = problems_in(&spec, &result);
        // Nothing answered, replies out of step (bytes past the echo: which reply ends
        // where is unknown), or every client failed (a firewall refusing sends midway): no
        // figure of the run can be trusted, and a table of it would read as a clean run.
        let all_died =
            result.failed_clients >= spec.clients as u64 && signal::stop_asked().is_none();
        let failed =
            (result.answered == 0 || result.extra_bytes > 0 || all_died) && !problems.is_empty();
        all.problems.extend(problems);
        if failed {
            all.left_out.extend(found);
            continue;
        }
        let run = summary::run(&spec, &result, signal::stop_asked(), found);
        if args.every.is_some() {
            // Each run's summary right after its intervals, while later runs go on.
            say(&run.found);
            print(&report::ndjson::render(
                std::slice::from_ref(&run),
                Some(meta),
            ))?;
        }
        all.runs.push(run);
        all.latencies
            .push((format!("{}", spec.target), result.latency));
    }
    Ok(all)
}

/// Every setting of the run by name, for the reports' metadata.
fn parameters(args: &BenchConfig) -> Map<String, Value> {
    let mut p = Map::new();
    let (protos, addrs): (Vec<String>, Vec<String>) = match &args.servers {
        Servers::Given(targets) => targets
            .iter()
            .map(|t| (t.proto.to_string(), t.addr.to_string()))
            .unzip(),
        Servers::Local(protos) => (protos.iter().map(|p| p.to_string()).collect(), vec![]),
    };
    p.insert("proto".into(), protos.join(",").into());
    p.insert("addr".into(), addrs.join(",").into());
    p.insert("clients".into(), args.clients.into());
    p.insert("size".into(), args.size.into());
    p.insert("window".into(), args.window.into());
    let (duration, count) = match args.limit {
        Limit::Duration(d) => (Value::from(d.as_secs_f64()), Value::Null),
        Limit::Count(n) => (Value::Null, Value::from(n)),
    };
    p.insert("duration_s".into(), duration);
    p.insert("count".into(), count);
    p.insert("threads".into(), args.threads.into());
    let timeout = args.timeout.unwrap_or(DATAGRAM_TIMEOUT);
    p.insert("timeout_s".into(), timeout.as_secs_f64().into());
    let stall = args.stall();
    p.insert("stall_s".into(), stall.as_secs_f64().into());
    let expect = format!("{:?}", args.expect).to_lowercase();
    p.insert("expect".into(), expect.into());
    p.insert("idle".into(), args.idle.into());
    p.insert("nodelay".into(), args.opts.nodelay.into());
    p.insert("framing".into(), args.framing.name().into());
    p.insert("rcvbuf".into(), args.opts.rcvbuf.into());
    p.insert("sndbuf".into(), args.opts.sndbuf.into());
    p.insert("rate_bytes_per_s".into(), args.rate.into());
    let format = format!("{:?}", args.format).to_lowercase();
    p.insert("format".into(), format.into());
    p.insert(
        "interval_s".into(),
        args.every.map(|d| d.as_secs_f64()).into(),
    );
    p.insert("wide".into(), (args.layout == Layout::Wide).into());
    let plot = args.plot.as_ref().map(|p| p.display().to_string());
    p.insert("plot".into(), plot.into());
    p
}

/// A local echo server for each protocol, with `framing`.
fn start_local(
    servers: &LocalServers,
    protos: &[SockProto],
    framing: &str,
    quic: QuicMode,
) -> Result<Vec<Target>> {
    protos
        .iter()
        .map(|p| {
            let addr = servers.address_for(p.proto(), false);
            let mut flags = vec!["--framing", framing];
            if *p == SockProto::Quic && quic == QuicMode::Datagrams {
                flags.push("--quic-datagrams");
            }
            servers.start(*p, &addr, &flags)
        })
        .collect()
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

/// Sentences about the runs that the report does not carry, on stderr.
fn say<'a>(lines: impl IntoIterator<Item = &'a String>) {
    for line in lines {
        warn!("{line}");
    }
}

/// What a run's counters do not say by themselves, a sentence each named by its protocol as
/// every note is, for the notes under its row: datagrams lost and where they went (nobody resends them), then what bounds its
/// numbers other than the server (lost requests holding window places for --timeout,
/// TCP's resends).
fn found(spec: &LoadSpec, result: &LoadResult) -> Vec<String> {
    let mut lines = Vec::new();
    if result.lost > 0 && spec.carrier().may_lose() {
        lines.push(format!(
            "{} of {} datagrams lost: nobody retransmits them",
            result.lost, result.sent
        ));
        let loopback =
            matches!(spec.target.addr, Address::Ip(a) if a.ip().to_canonical().is_loopback());
        let loss = result.loss();
        lines.extend(loss.explain(spec.opts.rcvbuf, spec.window, loopback));
    }
    let places = (spec.clients * spec.window) as u64;
    // Over a stream, nothing waits for --timeout to count as lost.
    let lost = match spec.carrier().may_lose() {
        true => result.lost,
        false => 0,
    };
    lines.extend(loss::held_places(
        lost,
        places,
        result.elapsed,
        (spec.timeout, "--timeout"),
        "req/s and latency measure those waits, not the server",
    ));
    lines.extend(result.tcp.and_then(|t| {
        let p99_9 = report::Percentiles::of(&result.latency).p99_9;
        loss::resent(t.retransmits, p99_9)
    }));
    lines
        .into_iter()
        .map(|line| format!("{}: {line}", spec.target.proto))
        .collect()
}

/// What makes a run fail: replies that did not match, clients that failed.
fn problems_in(spec: &LoadSpec, result: &LoadResult) -> Vec<String> {
    let mut problems = Vec::new();
    if result.extra_bytes > 0 {
        // The replies after the first extra byte are out of step: their count says nothing.
        problems.push(format!(
            "{}: the server sent {} bytes more than it was sent (not an echo server?)",
            spec.target, result.extra_bytes
        ));
    } else if result.mismatched > 0 {
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
    crate::error::write_stdout(text.as_bytes())
}
