//! `netecho lab`: the one command a newcomer runs. Starts its own echo server for every
//! protocol it can use here, measures each the same way, and prints one comparison table
//! with a sentence per row on why it differs; then removes everything it made.
//!
//! The room: [`plan`] (what is measured, for how long), [`measure`] and [`raw`] (a row's
//! numbers), [`rows`] (the rows as data), [`why`] (the sentences), [`render`] (the rows as
//! text), [`netns`] (two namespaces and real loss); this file runs them in order.

mod measure;
mod models;
pub(crate) mod netns;
mod page;
mod path;
mod pin;
mod plan;
mod raw;
mod remote;
mod render;
pub(crate) mod rows;
mod why;

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Result;
use serde_json::{Map, Value};
use tracing::{Level, debug, info, warn};

use crate::client::local::LocalServers;
use crate::endpoint::{Proto, SockProto, Target};
use crate::files::store::{Output, check_output, write_output};
use crate::logging;
use crate::packet::DEFAULT_IP_PROTO;
use crate::report::{self, Format, Layout, Meta, progress};
use crate::transport;
use crate::transport::framing::Framing;
use crate::wrap;

use measure::{LOAD_SIZE, PING_SIZE, TIMEOUT, boundary_row, head_of_line, measure};
use netns::{Netns, SERVER_IP, SERVER_IP6};
use pin::{Cores, pin};
use plan::{BURST, BURST_SIZE, CASES, Plan, SETUPS, case_name};
use raw::measure_raw;
use render::Lab;
use rows::{BoundaryRow, Row};

/// What `lab` measures and how it prints it.
pub(crate) struct LabConfig {
    /// A short run (under 5 seconds) with fewer samples.
    pub quick: bool,
    /// Table, JSON or CSV: the lab prints one table at the end, never ndjson.
    pub format: Format,
    /// The table within 80 columns, or every column on one line per row.
    pub layout: Layout,
    /// Also draw the latency distribution of every protocol into this SVG file.
    pub plot: Option<PathBuf>,
    /// Also write the whole report as one self-contained HTML page.
    pub html: Option<PathBuf>,
    /// Replace the --plot and --html files if they exist.
    pub force: bool,
    /// The server models side by side instead of the protocols.
    pub models: bool,
    /// Across two network namespaces, with real loss and rate limits; `None`: on loopback.
    pub netns: Option<NetnsConfig>,
    /// Against the lab server (`serve --lab`) at HOST[:PORT] instead of servers of its own.
    pub remote: Option<String>,
    /// TLS on the control connection to a lab server started with --tls.
    pub tls: Option<crate::transport::tls::cert::TlsConfig>,
    /// The longest to wait in a lab server's queue for a turn.
    pub wait: std::time::Duration,
}

/// `lab --netns`: the conditions of the veth pair, each direction.
pub(crate) struct NetnsConfig {
    /// The fraction of packets each side drops (nftables).
    pub loss: f64,
    /// Bytes per second each direction is limited to (tc tbf).
    pub rate: Option<u64>,
}

/// Runs the lab of `settings` and prints it.
pub(crate) fn run(settings: LabConfig) -> Result<()> {
    let settings = &settings;
    // Before anything is measured: a turn on a class's lab server is not spent for a path.
    for (flag, path, name) in outputs(settings) {
        check_output(Output { flag, path }, settings.force, name)?;
    }
    let started = Instant::now();
    let plan = Plan::new(settings.quick);
    let cores = Cores::choose();
    let meta = Meta::now(parameters(settings, &plan, cores));
    let mut failed = None;
    let (text, removed) = if let Some(host) = &settings.remote {
        let (text, gone) = remote::run(settings, host, &plan)?;
        failed = gone;
        (text, "")
    } else if let Some(netns) = &settings.netns {
        let text = across_namespaces(settings, netns, &plan, cores, &meta)?;
        (text, "; namespaces removed")
    } else if settings.models {
        let servers = LocalServers::new()?;
        let rows = models::measure_models(&servers, &plan, cores)?;
        progress("");
        (models::render(settings.format, &rows, &meta), "")
    } else {
        (on_this_machine(settings, &plan, cores, &meta)?, "")
    };
    crate::error::write_stdout(text.as_bytes())?;
    if let Some(e) = failed {
        return Err(e);
    }
    say(
        Level::INFO,
        &format!(
            "lab finished in {:.1} s{removed}",
            started.elapsed().as_secs_f64()
        ),
    );
    Ok(())
}

/// Every setting of the run by name, for the reports' metadata.
fn parameters(settings: &LabConfig, plan: &Plan, cores: Option<Cores>) -> Map<String, Value> {
    let ms = |d: std::time::Duration| Value::from(d.as_millis() as u64);
    let path = |p: &Option<PathBuf>| {
        p.as_ref()
            .map_or(Value::Null, |p| p.display().to_string().into())
    };
    let mut p = Map::new();
    p.insert("quick".into(), settings.quick.into());
    p.insert("rounds".into(), plan.rounds.into());
    p.insert("ping_ms_per_round".into(), ms(plan.ping));
    p.insert("load_ms_per_round".into(), ms(plan.load));
    p.insert("load_clients".into(), plan.clients.into());
    p.insert("load_window".into(), plan.window.into());
    p.insert("load_size".into(), LOAD_SIZE.into());
    p.insert("ping_size".into(), PING_SIZE.into());
    p.insert("burst".into(), BURST.into());
    p.insert("burst_size".into(), BURST_SIZE.into());
    p.insert("setups".into(), SETUPS.into());
    p.insert("timeout_ms".into(), ms(TIMEOUT));
    p.insert("client_core".into(), cores.map(|c| c.client).into());
    p.insert("server_core".into(), cores.map(|c| c.server).into());
    p.insert(
        "format".into(),
        format!("{:?}", settings.format).to_lowercase().into(),
    );
    p.insert("wide".into(), (settings.layout == Layout::Wide).into());
    p.insert("plot".into(), path(&settings.plot));
    p.insert("html".into(), path(&settings.html));
    let netns = settings.netns.as_ref();
    p.insert("netns".into(), netns.is_some().into());
    p.insert("models".into(), settings.models.into());
    p.insert("loss".into(), netns.map_or(0.0, |n| n.loss).into());
    p.insert("rate_bytes_per_s".into(), netns.and_then(|n| n.rate).into());
    p
}

/// Starts a server on the servers' core, then puts this thread back on the client's.
fn start_pinned<T>(start: impl FnOnce() -> Result<T>, cores: Option<Cores>) -> Result<T> {
    let Some(cores) = cores else {
        return start();
    };
    pin(cores.server)?;
    let target = start();
    pin(cores.client)?;
    target
}

/// Every protocol on loopback, then the boundaries burst; the rows as text in `format`.
fn on_this_machine(
    settings: &LabConfig,
    plan: &Plan,
    cores: Option<Cores>,
    meta: &Meta,
) -> Result<String> {
    let servers = LocalServers::new()?;
    unix_paths_fit(&servers)?;
    let mut rows = Vec::new();
    // One count for every row the status line names, the raw rows among them.
    let raw = raw_allowed();
    let total = CASES.len() + if raw.is_ok() { RAW_ROWS.len() } else { 0 };
    for (i, case) in CASES.iter().enumerate() {
        let (proto, ipv6, flags) = case;
        let addr = servers.address_for(proto.proto(), *ipv6);
        let shown = addr.strip_suffix(":0").unwrap_or(&addr);
        progress(&format!("[{}/{total}] {} {shown}", i + 1, case_name(case)));
        let target = start_pinned(|| servers.start(*proto, &addr, flags), cores)?;
        rows.push(measure(&target, plan)?);
    }
    let left_out: Vec<String> = match raw {
        Ok(()) => {
            rows.extend(raw_rows(&servers, plan, cores, total)?);
            Vec::new()
        }
        Err(note) => vec![note],
    };
    progress("boundaries");
    let boundaries = boundary_rows(&servers)?;
    progress("");
    drop(servers);
    let lab = Lab {
        rows: &rows,
        left_out: &left_out,
        boundaries: &boundaries,
        meta,
        rounds: plan.rounds,
        pinned: cores.is_some(),
    };
    write_files(settings, &lab, &[], "")?;
    Ok(render::on_this_machine(
        settings.format,
        settings.layout,
        &lab,
    ))
}

/// The plot and the page, where asked; `notes` on the page under `heading`.
fn write_files(settings: &LabConfig, lab: &Lab, notes: &[String], heading: &str) -> Result<()> {
    let series: Vec<(String, &hdrhistogram::Histogram<u64>)> = lab
        .rows
        .iter()
        .filter_map(|r| Some((label(r), r.latency.as_ref()?)))
        .collect();
    let svg = report::svg::render(PLOT_TITLE, &plot_caption(lab.rounds), &series);
    for (flag, path, _) in outputs(settings) {
        let text = match flag {
            "--plot" => svg.clone(),
            _ => page::render(lab, &svg, notes, heading),
        };
        write_output(Output { flag, path }, settings.force, text.as_bytes())?;
    }
    Ok(())
}

/// The files asked for: the flag, the path, and a name for the file in a directory.
fn outputs(settings: &LabConfig) -> impl Iterator<Item = (&'static str, &Path, &'static str)> {
    [
        ("--plot", &settings.plot, "lab.svg"),
        ("--html", &settings.html, "lab.html"),
    ]
    .into_iter()
    .filter_map(|(flag, path, name)| Some((flag, path.as_deref()?, name)))
}

/// The title of the latency plot, in its file and on the page.
const PLOT_TITLE: &str = "ping-pong latency by protocol";

/// What the plot's curves are, under it: every round trip of every round together, as the
/// table's p99 and p99.9, while the table's p50 is the median of the rounds' p50s.
fn plot_caption(rounds: usize) -> Vec<String> {
    vec![
        format!(
            "Each curve: every ping-pong round trip of the row's {rounds} rounds together, as \
             the table's p99 and p99.9 are."
        ),
        "The table's p50 is the median of the rounds' p50s (of two, their mean): a curve's \
         50% can differ from it."
            .to_string(),
    ]
}

/// A row's name in the plot: its protocol and family.
fn label(r: &Row) -> String {
    match r.family {
        Some(family) => format!("{} {family}", r.proto),
        None => r.proto.clone(),
    }
}

/// The raw rows' families: IPv4, then IPv6.
const RAW_ROWS: [bool; 2] = [false, true];

/// Raw rows need CAP_NET_RAW: without it the lab says so, measures the rest, and the note
/// for under the table is the error.
fn raw_allowed() -> Result<(), String> {
    match transport::raw::open(false, i32::from(DEFAULT_IP_PROTO), "raw 127.0.0.1") {
        Ok(_) => Ok(()),
        Err(e) => Err(without_raw("raw, raw6", &e)),
    }
}

/// The raw rows, the last of the `total` rows the status line counts.
fn raw_rows(
    servers: &LocalServers,
    plan: &Plan,
    cores: Option<Cores>,
    total: usize,
) -> Result<Vec<Row>> {
    let first = total - RAW_ROWS.len();
    RAW_ROWS
        .into_iter()
        .enumerate()
        .map(|(i, ipv6)| {
            let addr = servers.address_for(Proto::Raw, ipv6);
            progress(&format!("[{}/{total}] raw {addr}", first + i + 1));
            let target = start_pinned(|| servers.start_raw(&addr), cores)?;
            measure_raw(&target, plan, DEFAULT_IP_PROTO)
        })
        .collect()
}

/// Raw rows (`names`) this run cannot measure, as `e` says: a warning on stderr, and the
/// note returned for under the table, so that a report saved from stdout names them too.
fn without_raw(names: &str, e: &anyhow::Error) -> String {
    let why = format!("this run cannot open raw sockets: {e:#}");
    say(Level::WARN, &format!("lab: raw rows skipped: {why}"));
    why::left_out(names, &why)
}

/// Fails, before anything is measured, when a socket file the lab makes in its directory
/// (in TMPDIR) would not fit a Unix socket address: the directory is the lab's own, so the
/// way out is a shorter TMPDIR.
fn unix_paths_fit(servers: &LocalServers) -> Result<()> {
    let cases = CASES.iter().map(|(proto, _, _)| proto.proto());
    let streams = BOUNDARY_FRAMINGS.iter().map(|f| boundary_socket(f.name()));
    let longest = cases
        .filter(|p| p.is_unix())
        .map(|p| format!("{}.sock", p.name()))
        .chain(streams)
        .map(|name| servers.path(&name).as_os_str().len())
        .max()
        .unwrap_or(0);
    if longest > crate::transport::unix::MAX_PATH {
        anyhow::bail!(
            "TMPDIR is too long for Unix socket paths (the lab's would take {longest} bytes, \
             {} fit): run with TMPDIR=/tmp",
            crate::transport::unix::MAX_PATH
        );
    }
    Ok(())
}

/// The framings of the boundaries burst.
const BOUNDARY_FRAMINGS: [Framing; 3] = [Framing::None, Framing::Line, Framing::Length];

/// The socket file of the boundaries burst over unix with `framing`.
fn boundary_socket(framing: &str) -> String {
    format!("unix-{framing}.sock")
}

/// The boundaries burst over each stream, with each framing.
fn boundary_rows(servers: &LocalServers) -> Result<Vec<BoundaryRow>> {
    let mut rows = Vec::new();
    for proto in [SockProto::Tcp, SockProto::Unix] {
        for framing in BOUNDARY_FRAMINGS {
            let addr = match proto {
                SockProto::Tcp => "127.0.0.1:0".to_string(),
                _ => servers
                    .path(&boundary_socket(framing.name()))
                    .display()
                    .to_string(),
            };
            let target = servers.start(proto, &addr, &["--framing", framing.name()])?;
            rows.push(boundary_row(&target, framing)?);
        }
    }
    Ok(rows)
}

/// `lab --netns`: tcp and udp, over IPv4 and IPv6, between two network namespaces, through real loss (a fraction)
/// and a rate limit (bytes per second) when asked; the table, then what the kernel did
/// about the loss.
fn across_namespaces(
    settings: &LabConfig,
    netns: &NetnsConfig,
    plan: &Plan,
    cores: Option<Cores>,
    meta: &Meta,
) -> Result<String> {
    let servers = LocalServers::new()?;
    let ns = Netns::create(servers.namespaces(), netns.loss, netns.rate)?;
    // The table repeats them under it; the other formats carry them only in their data.
    if settings.format != Format::Table {
        for note in &ns.notes {
            say(Level::INFO, note);
        }
    }
    let prefix = ns.server_prefix();
    // The rows of the plan that cross machines, IPv4 and IPv6 (tls and quic among them).
    let targets = CASES
        .iter()
        .filter(|(proto, _, _)| !proto.is_unix())
        .map(|(proto, v6, flags)| {
            let addr = match v6 {
                true => format!("[{SERVER_IP6}]:0"),
                false => format!("{SERVER_IP}:0"),
            };
            start_pinned(|| servers.start_in(&prefix, *proto, &addr, flags), cores)
        })
        .collect::<Result<Vec<_>>>()?;
    let plan = &Plan {
        // A rate limit's queue drops what overflows it: loss too.
        lossless: netns.loss == 0.0 && netns.rate.is_none(),
        set_loss: (netns.loss > 0.0).then_some(netns.loss),
        ..plan.clone()
    };
    let (rows, hol) = measure_from_client_side(&ns, &targets, plan)?;
    let mut notes = ns.notes.clone();
    notes.extend(hol);
    progress("");
    notes.extend(about_clients(servers.stop(), !plan.lossless));
    drop(servers);
    let lab = Lab {
        rows: &rows,
        left_out: &[],
        boundaries: &[],
        meta,
        rounds: plan.rounds,
        pinned: cores.is_some(),
    };
    write_files(settings, &lab, &notes, "Across namespaces")?;
    Ok(render::across_namespaces(
        settings.format,
        settings.layout,
        &lab,
        &notes,
    ))
}

/// Measures each target from the clients' namespace, then head-of-line blocking on tcp
/// and quic (its sentence).
fn measure_from_client_side(
    ns: &Netns,
    targets: &[Target],
    plan: &Plan,
) -> Result<(Vec<Row>, Option<String>)> {
    // The measuring thread moves into the clients' namespace; every load thread it starts
    // is born there. This thread stays where it was, free to clean up.
    std::thread::scope(|scope| {
        scope
            .spawn(|| -> Result<(Vec<Row>, Option<String>)> {
                ns.enter_client()?;
                let rows = targets
                    .iter()
                    .enumerate()
                    .map(|(i, target)| {
                        progress(&format!(
                            "[{}/{}] {} {} across namespaces",
                            i + 1,
                            targets.len(),
                            measure::target_name(target),
                            target.addr
                        ));
                        measure(target, plan)
                    })
                    .collect::<Result<Vec<_>>>()?;
                progress("head-of-line blocking: tcp and quic");
                Ok((rows, head_of_line(targets, plan.hol_rounds)?))
            })
            .join()
            .unwrap_or_else(|_| Err(anyhow::anyhow!("the measuring thread panicked")))
    })
}

/// The lab's status line on stderr, only when it is a terminal ([`progress::status`] owns
/// it, and clears it before any log line): one line narrower than the terminal (a long
/// path cut in the middle), so the carriage return that replaces it, or clears it before
/// the table, clears all of it; `""` clears it.
fn progress(what: &str) {
    match what.is_empty() {
        true => progress::status(""),
        false => {
            let width = logging::width().saturating_sub(1);
            progress::status(&fit(&format!("lab: {what}"), width));
        }
    }
}

/// `text` within `width` columns: its middle left out (`...`) when wider, so both the start
/// (what is measured) and the end (a socket file's name) stay.
fn fit(text: &str, width: usize) -> String {
    if wrap::columns(text) <= width {
        return text.to_string();
    }
    let keep = width.saturating_sub(3);
    let head = within(text.chars(), keep / 2);
    let tail = within(text.chars().rev(), keep - keep / 2);
    format!("{head}...{}", tail.chars().rev().collect::<String>())
}

/// The first of `chars` that take at most `width` columns.
pub(super) fn within(chars: impl Iterator<Item = char>, width: usize) -> String {
    let mut out = String::new();
    for c in chars {
        out.push(c);
        if wrap::columns(&out) > width {
            out.pop();
            break;
        }
    }
    out
}

/// A message of the lab's on stderr at `level`, as log lines that fit 80 columns with
/// their tag: wrapped at spaces, a word longer than a line (a path) cut, each line after
/// the first indented. A class reads the lab on a terminal that wide.
pub(super) fn say(level: Level, text: &str) {
    for line in log_lines(text, report::table::WIDTH - logging::LEVEL_TAG) {
        match level {
            Level::ERROR | Level::WARN => warn!("{line}"),
            _ => info!("{line}"),
        }
    }
}

/// A line a server the lab started wrote on its stderr, as the lab's own: a log line under
/// its level's tag through [`say`], anything else (its last `error:`) wrapped the same way.
/// A warning about one client is not shown (`-v` shows it) and `false` returned, for the
/// caller to count: the lab's servers have no clients but the lab's own, and what befalls
/// them (a QUIC handshake the client gave up on under `--loss`) is the measurement's to
/// report, in words a student can act on, not a server's log line naming an address and a
/// QUIC error code. A warning about the server itself (a loop that failed) is shown.
pub(crate) fn relay(line: &str) -> bool {
    let level = |tag| match tag {
        "ERROR" => Some(Level::ERROR),
        "WARN" => Some(Level::WARN),
        "INFO" => Some(Level::INFO),
        _ => None,
    };
    let tagged = line
        .trim_start()
        .split_once(' ')
        .and_then(|(tag, text)| Some((level(tag)?, text)));
    match tagged {
        Some((Level::WARN, text)) if about_a_client(text) => {
            debug!("a lab server: {text}");
            return false;
        }
        Some((level, text)) => say(level, text),
        None => progress::above(|| {
            for part in log_lines(line, report::table::WIDTH) {
                eprintln!("{part}");
            }
        }),
    }
    true
}

/// Whether a server's log message is about one client: it begins with the client's
/// address, after the protocol's name or not (`quic 10.233.0.2:53886: handshake failed`,
/// `127.0.0.1:40000: busy`).
fn about_a_client(text: &str) -> bool {
    let text = match text.split_once(' ') {
        Some((proto, rest)) if Proto::from_name(proto).is_some() => rest,
        _ => text,
    };
    text.split_once(": ")
        .is_some_and(|(addr, _)| addr.parse::<std::net::SocketAddr>().is_ok())
}

/// The sentence for the warnings about one client that [`relay`] left out, of the servers
/// a lab or bench started for itself; `None` when there were none.
pub(crate) fn about_clients(count: usize, loss: bool) -> Option<String> {
    let why = match loss {
        true => " under the simulated loss (such as a QUIC handshake a client gave up on)",
        false => "",
    };
    (count > 0).then(|| {
        format!(
            "this run's own servers warned {} about its clients{why}; -v shows each \
             warning",
            crate::units::count(count, "time")
        )
    })
}

/// `text` as lines of at most `width` columns, the ones after the first indented; a word
/// longer than a line (a path) cut, so that every line fits even in a file.
fn log_lines(text: &str, width: usize) -> Vec<String> {
    let piece = width - logging::INDENT.len();
    let words: Vec<String> = text
        .split_whitespace()
        .flat_map(|word| {
            let chars: Vec<char> = word.chars().collect();
            chars
                .chunks(piece)
                .map(|c| c.iter().collect::<String>())
                .collect::<Vec<_>>()
        })
        .collect();
    logging::lines(&words.join(" "), width)
}

#[cfg(test)]
mod tests;
