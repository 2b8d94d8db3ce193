//! `lab HOST[:PORT]`: the lab against a lab server on another machine (`serve --lab`). The
//! control connection says hello, waits its turn (told its place in the queue), learns the
//! echo ports, and the rows of the plan whose protocol the server offers, in the control
//! connection's family, are measured as the local lab measures them; then Done, and the
//! server's account: how many other runs measured meanwhile, how long this one waited.
//! The report names the server, the path to it and how it was shared.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use serde::Serialize;
use serde_json::{Map, Value};
use tracing::{info, warn};

use crate::endpoint::{Address, Endpoint, Proto, SockProto, Target};
use crate::labwire::{self, Account, LAB_PORT, Msg, Offer, ReadError};
use crate::report::{self, Format, Meta};
use crate::transport::{self, Conn, SocketOptions};

use super::path::Path;
use super::plan::{CASES, Plan};
use super::raw::measure_raw;
use super::render::{self, Lab};
use super::rows::{Row, SCHEMA};
use super::{LabConfig, measure::measure, progress, write_files};

/// The longest the server may stay silent while this run waits (it speaks every 2 s).
const QUEUE_SILENCE: Duration = Duration::from_secs(15);
/// The longest a single control step (hello, account) may take.
const STEP: Duration = Duration::from_secs(10);

/// What the server told this run, and the path to it.
struct Shared {
    offer: Offer,
    account: Account,
    /// The first place this run had in the queue, if it waited.
    first_place: Option<u16>,
}

/// `--format json` of a lab against a lab server.
#[derive(Serialize)]
struct RemoteDocument<'a> {
    schema: &'static str,
    meta: &'a Meta,
    server: &'a str,
    path: &'a Path,
    /// What the report says under the table: the server, the path, the sharing.
    remote: &'a [String],
    rows: &'a [Row],
}

/// Measures against the lab server at `host` and renders the report.
pub(super) fn run(settings: &LabConfig, host: &str, plan: &Plan) -> Result<String> {
    let target = control_target(host)?;
    let conn = transport::connect_first(&target, &SocketOptions::default()).with_context(|| {
        format!("connect to the lab server {host} (is `netecho serve --lab` running there?)")
    })?;
    let sock = conn.socket();
    let local = socket_addr(sock.local_addr())?;
    let server = socket_addr(sock.peer_addr())?;
    labwire::write_msg(
        sock,
        &Msg::Hello {
            version: labwire::VERSION,
        },
        STEP,
    )
    .with_context(|| format!("say hello to the lab server {host}"))?;
    let (offer, first_place) = wait_turn(&conn, host)?;
    let udp = port_of(&offer, SockProto::Udp);
    let path = Path::of(local, server, udp);
    info!("{}", path.describe());
    let rows = measure_offered(&offer, server, plan);
    // The turn ends whatever the rows did: the next run waits for it.
    let done = labwire::write_msg(sock, &Msg::Done, STEP);
    let rows = rows?;
    done.with_context(|| format!("tell the lab server {host} the run is done"))?;
    let account = match labwire::read_msg(sock, Instant::now() + STEP) {
        Ok(Msg::Account(account)) => account,
        Ok(Msg::Error(why)) => bail!("the lab server {host}: {why}"),
        Ok(other) => bail!("the lab server {host} answered Done with {other:?}"),
        Err(e) => bail!("the lab server {host} sent no account of the run: {e}"),
    };
    progress("");
    let shared = Shared {
        offer,
        account,
        first_place,
    };
    render_remote(settings, host, plan, &path, &shared, &rows)
}

/// HOST, HOST:PORT, IP, [IPv6] or [IPv6]:PORT; the port is [`LAB_PORT`] when not given.
pub(crate) fn control_target(text: &str) -> Result<Target> {
    let addr = if let Ok(a) = text.parse::<SocketAddr>() {
        Address::Ip(a)
    } else if let Ok(ip) = text.trim_start_matches('[').trim_end_matches(']').parse() {
        Address::Ip(SocketAddr::new(ip, LAB_PORT))
    } else {
        match text.rsplit_once(':') {
            Some((host, port)) if !host.is_empty() && !host.contains(':') => {
                let port = port.parse().map_err(|_| {
                    anyhow!("lab {text}: '{port}' is not a port; write HOST or HOST:PORT")
                })?;
                Address::Host(host.to_string(), port)
            }
            _ if !text.is_empty() && !text.contains(['/', ' ']) => {
                Address::Host(text.to_string(), LAB_PORT)
            }
            _ => bail!("lab {text}: not a host; write HOST or HOST:PORT (e.g. lab 10.0.0.1)"),
        }
    };
    Ok(Target {
        proto: SockProto::Tcp,
        addr,
    })
}

fn socket_addr(addr: std::io::Result<socket2::SockAddr>) -> Result<SocketAddr> {
    addr.ok()
        .and_then(|a| a.as_socket())
        .ok_or_else(|| anyhow!("the control connection has no IP address"))
}

/// Reads the server's messages until the turn comes; says the place in the queue as it
/// changes. The offer, and the first place this run had, if it waited.
fn wait_turn(conn: &Conn, host: &str) -> Result<(Offer, Option<u16>)> {
    let mut first = None;
    let mut told = None;
    loop {
        match labwire::read_msg(conn.socket(), Instant::now() + QUEUE_SILENCE) {
            Ok(Msg::Go(offer)) => return Ok((offer, first)),
            Ok(Msg::Queued { place, measuring }) => {
                first.get_or_insert(place);
                if told != Some(place) {
                    info!(
                        "lab: the server {host} is measuring {measuring} runs; this run is \
                         number {place} in its queue and waits its turn"
                    );
                    progress(&format!("number {place} in the queue of {host}"));
                    told = Some(place);
                }
            }
            Ok(Msg::Error(why)) => bail!("the lab server {host} refused the run: {why}"),
            // A Hello coming back is an echo server at that port, not a lab server.
            Ok(Msg::Hello { .. }) => bail!(
                "{host} sent this run's Hello back: it is an echo server, not a lab server; \
                 point lab at the control port of `netecho serve --lab` (3235 by default)"
            ),
            Ok(other) => bail!(
                "the lab server {host} answered out of turn ({}); is it a netecho of another \
                 version?",
                other.name()
            ),
            Err(ReadError::Closed) => bail!("the lab server {host} closed the connection"),
            Err(e) => bail!("the lab server {host}: {e}"),
        }
    }
}

fn port_of(offer: &Offer, proto: SockProto) -> Option<u16> {
    offer
        .services
        .iter()
        .find(|s| s.proto == proto.name())
        .map(|s| s.port)
}

/// The plan's rows the server offers, in the family of the control connection, each
/// measured against its announced port.
fn measure_offered(offer: &Offer, server: SocketAddr, plan: &Plan) -> Result<Vec<Row>> {
    let v6 = server.ip().to_canonical().is_ipv6();
    let targets: Vec<Target> = CASES
        .iter()
        // A row whose server takes flags (tls) is not one a lab server offers.
        .filter(|(_, ipv6, flags)| *ipv6 == v6 && flags.is_empty())
        .filter_map(|(proto, _, _)| {
            let port = port_of(offer, *proto)?;
            Some(Target {
                proto: *proto,
                addr: Address::Ip(SocketAddr::new(server.ip(), port)),
            })
        })
        .collect();
    if targets.is_empty() {
        bail!("the lab server offers no protocol this lab measures over {server}");
    }
    let mut rows = targets
        .iter()
        .enumerate()
        .map(|(i, target)| {
            progress(&format!("[{}/{}] {target}", i + 1, targets.len()));
            measure(target, plan)
        })
        .collect::<Result<Vec<_>>>()?;
    rows.extend(raw_row(offer, server, plan)?);
    Ok(rows)
}

/// The raw row, when the server offers raw (its "port" is the IP protocol) and this
/// process may open raw sockets; without, the lab says so and measures the rest.
fn raw_row(offer: &Offer, server: SocketAddr, plan: &Plan) -> Result<Option<Row>> {
    let Some(ip_proto) = offer
        .services
        .iter()
        .find(|s| s.proto == "raw")
        .and_then(|s| u8::try_from(s.port).ok())
    else {
        return Ok(None);
    };
    let ip = server.ip().to_canonical();
    if let Err(e) = transport::raw::open(ip.is_ipv6(), i32::from(ip_proto), "raw") {
        warn!("lab: the server offers raw, but this run cannot open raw sockets: {e:#}");
        return Ok(None);
    }
    let target = Endpoint {
        proto: Proto::Raw,
        addr: Address::Ip(SocketAddr::new(ip, 0)),
    };
    progress(&format!("raw {ip}"));
    measure_raw(&target, plan, ip_proto).map(Some)
}

/// What the report says under the table: the server, the path, how it was shared.
fn notes(host: &str, path: &Path, shared: &Shared) -> Vec<String> {
    let offer = &shared.offer;
    let a = &shared.account;
    let ports: Vec<String> = offer
        .services
        .iter()
        .map(|s| match s.proto.as_str() {
            "raw" => format!("raw IP protocol {}", s.port),
            proto => format!("{proto} port {}", s.port),
        })
        .collect();
    let mut notes = vec![
        format!(
            "lab server {host} ({}), control protocol {}, run {}: {}",
            path.server,
            labwire::VERSION,
            offer.run,
            ports.join(", ")
        ),
        path.describe(),
        format!(
            "shared the server with {} other runs while measuring (at most {} at once; the \
             server lets {} measure at once)",
            a.shared_with, a.most_at_once, offer.max_runs
        ),
    ];
    notes.push(match shared.first_place {
        Some(place) => format!(
            "waited {:.1} s in the queue (number {place} at first)",
            f64::from(a.waited_ms) / 1000.0
        ),
        None => format!(
            "waited {:.1} s in the queue (a turn was free)",
            f64::from(a.waited_ms) / 1000.0
        ),
    });
    if offer.rate > 0 {
        notes.push(format!(
            "the server answers at most {} datagrams per second per address: udp loss past \
             that is its limit, not the network's",
            offer.rate
        ));
    }
    notes
}

/// The run's facts as metadata: in the JSON's meta and on every CSV line.
fn parameters(host: &str, path: &Path, shared: &Shared) -> Map<String, Value> {
    let a = &shared.account;
    let mut p = Map::new();
    p.insert("server".into(), host.into());
    p.insert("server_address".into(), path.server.to_string().into());
    p.insert("local_address".into(), path.local.to_string().into());
    p.insert("dev".into(), path.dev.clone().into());
    p.insert("dev_mtu".into(), path.dev_mtu.into());
    p.insert("gateway".into(), path.gateway.map(|g| g.to_string()).into());
    p.insert("path_mtu".into(), path.path_mtu.into());
    p.insert("run".into(), shared.offer.run.into());
    p.insert("shared_with".into(), a.shared_with.into());
    p.insert("most_at_once".into(), a.most_at_once.into());
    p.insert("max_runs".into(), shared.offer.max_runs.into());
    p.insert("waited_ms".into(), a.waited_ms.into());
    p.insert("measured_ms".into(), a.measured_ms.into());
    p.insert("server_rate".into(), shared.offer.rate.into());
    p
}

fn render_remote(
    settings: &LabConfig,
    host: &str,
    plan: &Plan,
    path: &Path,
    shared: &Shared,
    rows: &[Row],
) -> Result<String> {
    let mut params = super::parameters(settings, plan, None);
    params.extend(parameters(host, path, shared));
    let meta = Meta::now(params);
    let notes = notes(host, path, shared);
    let lab = Lab {
        rows,
        boundaries: &[],
        meta: &meta,
        rounds: plan.rounds,
    };
    write_files(settings, &lab, &notes, "Across the network")?;
    Ok(match settings.format {
        Format::Json => report::json::document(&RemoteDocument {
            schema: SCHEMA,
            meta: &meta,
            server: host,
            path,
            remote: &notes,
            rows,
        }),
        format => render::across_namespaces(format, settings.layout, &lab, &notes),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_forms_take_the_lab_port_unless_they_name_one() {
        let addr = |text: &str| control_target(text).map(|t| t.addr.to_string());
        assert_eq!(addr("10.0.0.1").unwrap(), "10.0.0.1:3235");
        assert_eq!(addr("10.0.0.1:4000").unwrap(), "10.0.0.1:4000");
        assert_eq!(addr("fd00::1").unwrap(), "[fd00::1]:3235");
        assert_eq!(addr("[fd00::1]").unwrap(), "[fd00::1]:3235");
        assert_eq!(addr("[fd00::1]:4000").unwrap(), "[fd00::1]:4000");
        assert_eq!(addr("lab.example").unwrap(), "lab.example:3235");
        assert_eq!(addr("lab.example:4000").unwrap(), "lab.example:4000");
        assert!(addr("lab.example:http").is_err());
        assert!(addr("").is_err());
        assert!(addr("/tmp/x.sock").is_err());
    }
}
