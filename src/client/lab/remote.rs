//! `lab HOST[:PORT]`: the lab against a lab server on another machine (`serve --lab`). The
//! control connection says hello, waits its turn (told its place in the queue), learns the
//! echo ports, and the rows of the plan whose protocol the server offers, in the control
//! connection's family, are measured as the local lab measures them; then Done, and the
//! server's account: how many other runs measured meanwhile, how long this one waited.
//! The report names the server, the path to it and how it was shared. With `--tls` the
//! control connection speaks TLS (every byte through the connection's session); the tcp
//! and udp echo ports it measures stay plain, and the tls and quic ones trust only the
//! certificate the offer names, which proves the lab server's only when the control
//! connection's certificate was checked.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use serde::Serialize;
use serde_json::{Map, Value};
use tracing::Level;

use crate::client::local;
use crate::endpoint::{Address, Endpoint, Proto, SockProto, Target};
use crate::labwire::{self, Account, LAB_PORT, Msg, Offer, ReadError, WireError};
use crate::report::{self, Format, Meta};
use crate::transport::tls::cert::Fingerprint;
use crate::transport::within::Within;
use crate::transport::{self, Conn, SocketOptions};
use crate::wrap::printable;

use super::measure::once_more;
use super::path::Path;
use super::plan::{CASES, Plan, case_name};
use super::raw::measure_raw_once;
use super::render::{self, Lab};
use super::rows::{Row, SCHEMA};
use super::{LabConfig, measure::measure, progress, say, write_files};

/// The longest the server may stay silent while this run waits (it speaks every 2 s).
const QUEUE_SILENCE: Duration = Duration::from_secs(15);
/// How far the server's clock of a wait or a measurement may run past this run's.
const ACCOUNT_SLACK: Duration = Duration::from_millis(250);
/// The longest a single control step (hello, account) may take.
const STEP: Duration = Duration::from_secs(10);
/// How long a failed run waits to see whether the server closed the control connection,
/// in milliseconds.
const GONE_WAIT: u16 = 1000;

/// What the server told this run, and the path to it.
struct Shared {
    offer: Offer,
    account: Account,
    /// Whether the account is the server's: none came when it stopped answering (a row
    /// stalled), and this run's own times stand in it.
    accounted: bool,
    /// The first place this run had in the queue, if it waited.
    first_place: Option<u16>,
    /// Whether the control connection proved it reached the lab server: TLS with the
    /// server's certificate checked (--pin or --ca, not --insecure).
    proven: bool,
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
    #[serde(serialize_with = "super::rows::observed")]
    rows: &'a [Row],
    /// A sentence for each row the run did not measure, and why.
    left_out: &'a [String],
}

/// Measures against the lab server at `host` and renders the report; with it, the error
/// of a server that went away after some rows were measured (they are printed, the run
/// fails).
pub(super) fn run(
    settings: &LabConfig,
    host: &str,
    plan: &Plan,
) -> Result<(String, Option<anyhow::Error>)> {
    let conn = connect(settings, host)?;
    let local = socket_addr(conn.socket().local_addr())?;
    let server = socket_addr(conn.socket().peer_addr())?;
    let hello = Msg::Hello {
        version: labwire::VERSION,
    };
    let queued = Instant::now();
    step(&conn, |wire| labwire::write_msg(wire, &hello)).map_err(|e| {
        match closed_unanswered(&e) {
            true => unanswered(host),
            false => e.context(format!("say hello to the lab server {host}")),
        }
    })?;
    let (offer, first_place) = wait_turn(&conn, host, settings.wait)?;
    let offer = known_services(offer, host);
    let (waited, turn) = (queued.elapsed(), Instant::now());
    let udp = port_of(&offer, SockProto::Udp);
    // The run itself may teach the kernel a smaller path MTU (a router's ICMP "too big"):
    // read before, and the path after the rows.
    let mtu_before = udp.and_then(|port| super::path::path_mtu(with_port(server, port)));
    let done = Arc::new(AtomicBool::new(false));
    let watcher = (conn.socket().try_clone().ok()).and_then(|s| watch(s, Arc::clone(&done)));
    let measured = measure_offered(&offer, (server, mtu_before), plan, &conn);
    done.store(true, Ordering::Relaxed);
    if let Some(watcher) = watcher {
        let _ = watcher.join();
    }
    let path = Path::of(local, server, udp).before(mtu_before);
    // The table says it under it; the other formats in their data.
    if settings.format != Format::Table {
        say(Level::INFO, &path.describe());
    }
    let (gone, over) = turn_left(&measured);
    // The turn ends whatever the rows did: the next run waits for it (a server that went
    // away has no turn to end).
    let done = match gone || over {
        true => Ok(()),
        false => step(&conn, |wire| labwire::write_msg(wire, &Msg::Done)),
    };
    let measured = measured.map_err(|e| gone_or(e, &conn, host))?;
    let stalled = measured.stalled.is_some();
    // A server that stopped answering a row may not answer Done either: what was measured
    // stands, with no account of the sharing.
    let told = match done {
        _ if gone || over => None,
        Err(_) if stalled => None,
        done => {
            done.with_context(|| format!("tell the lab server {host} the run is done"))
                .map_err(|e| gone_or(e, &conn, host))?;
            account(&conn, host, stalled)
        }
    };
    progress("");
    let (measured_for, accounted) = (turn.elapsed(), told.is_some());
    let account = match told {
        Some(told) => plausible(told, &offer, waited, measured_for, host),
        None => Account {
            shared_with: 0,
            most_at_once: 0,
            waited_ms: u32::try_from(waited.as_millis()).unwrap_or(u32::MAX),
            measured_ms: u32::try_from(measured_for.as_millis()).unwrap_or(u32::MAX),
        },
    };
    let shared = Shared {
        offer,
        account,
        accounted,
        first_place,
        proven: settings.tls.as_ref().is_some_and(|t| !t.insecure),
    };
    let (rows, left_out) = (measured.rows, measured.left_out);
    let report = render_remote(settings, host, plan, &path, &shared, (&rows, &left_out))?;
    // The rows measured before it went away stand; the run still failed.
    Ok((report, gone.then(|| went_away(host))))
}

/// The server's account of the run, read after Done. None, when a row stalled and the
/// server stays silent for [`AFTER_STALL`] (it stopped answering: its account is not waited
/// for), and when anything else ends the run instead (silence for [`STEP`], the server's
/// Error, a frame that is not one, its close): said in one warning, and the rows measured
/// stand, as they were measured before it.
fn account(conn: &Conn, host: &str, stalled: bool) -> Option<Account> {
    let wait = if stalled { AFTER_STALL } else { STEP };
    let account = match conn.within(Instant::now() + wait) {
        Ok(mut wire) => labwire::read_msg(&mut wire),
        Err(e) => Err(ReadError::Io(e)),
    };
    let instead = match account {
        Ok(Msg::Account(account)) => return Some(account),
        Err(_) if stalled => return None,
        Ok(Msg::Error(why)) => format!("answered Done with an error, \"{}\"", words(&why)),
        Ok(other) => format!("answered Done with a {} message", other.name()),
        Err(ReadError::Wire(e)) => format!("answered Done with {e}"),
        Err(ReadError::Timeout) if !closed(conn) => format!(
            "sent no account of the run within {}s: it stopped answering (busy or stopped)",
            STEP.as_secs()
        ),
        Err(ReadError::Io(e)) if !is_close(&e) && !closed(conn) => {
            format!("sent no account of the run: {e}")
        }
        Err(_) => "went away (it closed the control connection) instead of sending its account"
            .to_string(),
    };
    say(
        Level::WARN,
        &format!("lab: the lab server {host} {instead}; the rows measured stand"),
    );
    None
}

/// A server's words as this run says them: escaped ([`printable`]), and cut to
/// [`WORDS`] columns.
fn words(text: &str) -> String {
    let text = printable(text);
    match crate::wrap::columns(&text) <= WORDS {
        true => text.into_owned(),
        false => format!("{}...", super::within(text.chars(), WORDS - 3)),
    }
}

/// The most columns of a server's words a warning repeats.
const WORDS: usize = 80;

/// How long a run whose row stalled waits for the server's account.
const AFTER_STALL: Duration = Duration::from_secs(2);

/// The server's account held to what this run can tell: no longer a wait or a measurement
/// than this run saw (`waited`, `measured`, give or take [`ACCOUNT_SLACK`]; past it, this
/// run's own), no more runs at once than the server lets measure, none shared with while it
/// measured alone, and at most ten other runs a second for each other place (a run's hello,
/// turn and Done take longer). A server that says more is said once in the log.
fn plausible(
    told: Account,
    offer: &Offer,
    waited: Duration,
    measured: Duration,
    host: &str,
) -> Account {
    // A time within the slack of this run's stands; one past it is replaced by this run's.
    let ms = |told: u32, seen: Duration| {
        let within = |d: Duration| u32::try_from(d.as_millis()).unwrap_or(u32::MAX);
        match told <= within(seen + ACCOUNT_SLACK) {
            true => told,
            false => within(seen),
        }
    };
    let most_at_once = told.most_at_once.min(offer.max_runs.max(1));
    let places = u64::from(most_at_once.saturating_sub(1));
    let others = places.saturating_mul(10 * (1 + measured.as_secs()));
    let bounded = Account {
        shared_with: told
            .shared_with
            .min(u32::try_from(others).unwrap_or(u32::MAX)),
        most_at_once,
        waited_ms: ms(told.waited_ms, waited),
        measured_ms: ms(told.measured_ms, measured),
    };
    if bounded != told {
        let claims = format!(
            "{} other runs, at most {} at once, {} ms waited, {} ms measured",
            told.shared_with, told.most_at_once, told.waited_ms, told.measured_ms
        );
        say(
            Level::WARN,
            &format!(
                "lab: the lab server {host}'s account of the run is not plausible ({claims}): \
                 the report shows it bounded by what this run saw"
            ),
        );
    }
    bounded
}

/// The control connection, in TLS when asked (the handshake done before anything is said).
fn connect(settings: &LabConfig, host: &str) -> Result<Conn> {
    let target = control_target(host)?;
    let tls = settings
        .tls
        .as_ref()
        .map(crate::transport::tls::TlsEnd::client)
        .transpose()?;
    let opts = SocketOptions {
        tls,
        ..SocketOptions::default()
    };
    transport::connect_first(&target, &opts).map_err(|e| match settings.tls {
        // The TLS handshake ended by a close or a reset.
        Some(_) if closed_unanswered(&e) => unanswered(host),
        Some(_) => e.context(format!("connect to the lab server {host} with TLS")),
        None if refused(&e) => anyhow!(
            "connect to the lab server {host}: connection refused (ECONNREFUSED): nothing \
             listens on that port there; is `netecho serve --lab` running, and is this the \
             port on its `lab control:` line (3235 unless --addr says another)?"
        ),
        None => e.context(format!(
            "connect to the lab server {host} (is `netecho serve --lab` running there?)"
        )),
    })
}

/// Whether `e` is a refused connect: `serve --lab` listens on every address by default,
/// so the advice of a server bound to 127.0.0.1 only is not this one's.
fn refused(e: &anyhow::Error) -> bool {
    e.chain()
        .filter_map(|cause| cause.downcast_ref::<std::io::Error>())
        .any(|e| e.kind() == std::io::ErrorKind::ConnectionRefused)
        || e.to_string().contains("(ECONNREFUSED)")
}

/// Whether `e` is the peer closing or resetting the connection: what a lab server does, with
/// nothing said, to a connection past its bound of connections not yet past Hello.
fn closed_unanswered(e: &anyhow::Error) -> bool {
    // A failed connect (the TLS handshake's end) says the errno by name, as text.
    let said = e.to_string();
    let by_name = ["(ECONNRESET)", "(ECONNABORTED)", "(EPIPE)"]
        .iter()
        .any(|name| said.contains(name))
        || said.contains("closed the connection during the TLS handshake");
    by_name
        || e.chain()
            .filter_map(|cause| cause.downcast_ref::<std::io::Error>())
            .any(is_close)
}

fn is_close(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::{BrokenPipe, ConnectionAborted, ConnectionReset, UnexpectedEof};
    matches!(
        e.kind(),
        BrokenPipe | ConnectionAborted | ConnectionReset | UnexpectedEof
    )
}

/// The one line for a connection the lab server closed before saying anything.
fn unanswered(host: &str) -> anyhow::Error {
    anyhow!(
        "the lab server {host} closed the connection unanswered: its --allow or --deny may \
         leave this address out (ask the teacher), this may be one of its echo ports rather \
         than the control port its `lab control:` line names, or it takes only so many new \
         connections at once, from one address and in all (then try again in a moment)"
    )
}

/// `e`, unless the lab server closed the control connection meanwhile (its process ended,
/// say): then the one line saying it went away, which is the cause whatever failed first
/// (an echo port's refusal, a reset, the missing account).
fn gone_or(e: anyhow::Error, conn: &Conn, host: &str) -> anyhow::Error {
    match closed(conn) {
        true => went_away(host),
        false => e,
    }
}

/// The one line for a lab server that closed the control connection of a run under way.
fn went_away(host: &str) -> anyhow::Error {
    anyhow!(
        "the lab server {host} went away in the middle of this run (it closed the control \
         connection); check that `netecho serve --lab` is still running there, then run the \
         lab again"
    )
}

/// Whether the peer closed the control connection with nothing left to read: waited for a
/// moment (its end may reach this side just after its echo ports refused), and not at all
/// when the server answered (the Done just sent is answered at once).
fn closed(conn: &Conn) -> bool {
    closed_within(conn, GONE_WAIT)
}

/// Whether the peer closed `conn` within `wait` milliseconds.
fn closed_within(conn: &Conn, wait: u16) -> bool {
    heard(conn.socket(), wait) == Some(true)
}

/// What the control connection's peer did within `wait` milliseconds: `None`, nothing;
/// `Some(true)`, it closed (nothing left to read); `Some(false)`, it sent something.
fn heard(sock: &socket2::Socket, wait: u16) -> Option<bool> {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    use std::os::fd::AsFd;
    let mut fds = [PollFd::new(sock.as_fd(), PollFlags::POLLIN)];
    if !matches!(poll(&mut fds, PollTimeout::from(wait)), Ok(n) if n > 0) {
        return None;
    }
    let mut byte = [std::mem::MaybeUninit::uninit()];
    Some(match sock.peek(&mut byte) {
        Ok(n) => n == 0,
        Err(e) => is_close(&e),
    })
}

/// Set once the lab server closed the control connection while the rows ran: a row that
/// fails then is not measured again (its ports closed with it), and the run ends at once.
static GONE: AtomicBool = AtomicBool::new(false);

/// Whether the lab server went away during this run's rows.
pub(super) fn server_gone() -> bool {
    GONE.load(Ordering::Relaxed)
}

/// Watches the control connection (a second handle on its socket) while the rows run and
/// nothing reads it: its close sets [`GONE`]. Ends at `done`, or at anything the server says.
fn watch(control: socket2::Socket, done: Arc<AtomicBool>) -> Option<JoinHandle<()>> {
    let spawned = std::thread::Builder::new()
        .name("lab-watch".into())
        .spawn(move || {
            while !done.load(Ordering::Relaxed) {
                if let Some(closed) = heard(&control, WATCH_EVERY) {
                    GONE.store(closed, Ordering::Relaxed);
                    return;
                }
            }
        });
    spawned.ok()
}

/// How often, in milliseconds, the watch looks whether it should end.
const WATCH_EVERY: u16 = 200;

/// One write on the control connection, within [`STEP`].
fn step(conn: &Conn, write: impl FnOnce(&mut Within) -> std::io::Result<()>) -> Result<()> {
    let mut wire = conn.within(Instant::now() + STEP)?;
    Ok(write(&mut wire)?)
}

/// HOST, HOST:PORT, IP, [IPv6] or [IPv6]:PORT, IPv6 link-local with its zone (fe80::1%eth0,
/// [fe80::1%eth0]:PORT) as everywhere an address is taken; the port is [`LAB_PORT`] when not
/// given.
pub(crate) fn control_target(text: &str) -> Result<Target> {
    let bare = text
        .strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
        .unwrap_or(text);
    let addr = if let Some(ip) = crate::endpoint::ip_host(bare)? {
        Address::Ip(crate::endpoint::scoped(with_port(ip, LAB_PORT), text)?)
    } else if text.starts_with('[') || text.parse::<SocketAddr>().is_ok() {
        crate::endpoint::Endpoint::parse(text, Some(crate::endpoint::Proto::Tcp))?.addr
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

/// `addr` at `port`, its IPv6 zone kept: a link-local server's echo ports are on the
/// interface its control connection took.
fn with_port(mut addr: SocketAddr, port: u16) -> SocketAddr {
    addr.set_port(port);
    addr
}

fn socket_addr(addr: std::io::Result<socket2::SockAddr>) -> Result<SocketAddr> {
    addr.ok()
        .and_then(|a| a.as_socket())
        .ok_or_else(|| anyhow!("the control connection has no IP address"))
}

/// Reads the server's messages until the turn comes, for at most `wait`; says the place
/// in the queue as it changes. The offer, and the first place this run had, if it waited.
fn wait_turn(conn: &Conn, host: &str, wait: Duration) -> Result<(Offer, Option<u16>)> {
    let until = Instant::now() + wait;
    let mut first = None;
    let mut told = Told::default();
    loop {
        let deadline = until.min(Instant::now() + QUEUE_SILENCE);
        let msg = match conn.within(deadline) {
            Ok(mut wire) => labwire::read_msg(&mut wire),
            Err(e) => Err(ReadError::Io(e)),
        };
        match msg {
            Ok(Msg::Go(offer)) => return Ok((offer, first)),
            Ok(Msg::Queued { place, measuring }) => {
                first.get_or_insert(place);
                told.queued(place, measuring, host);
            }
            Err(ReadError::Timeout) if Instant::now() >= until => {
                bail!("{}", gave_up(host, wait, told.latest))
            }
            Err(e) if first.is_some() && closed_read(&e) => {
                return Err(gone_while_waiting(host, told.latest));
            }
            other => return Err(not_a_turn(other, host, first.is_some())),
        }
    }
}

/// The longest a changed place in the queue waits to be said: a server may tell it often.
const QUEUED_EVERY: Duration = Duration::from_secs(5);

/// What this run said of its place in the queue.
#[derive(Default)]
struct Told {
    /// The place the server told last, and the place last said.
    latest: Option<u16>,
    place: Option<u16>,
    /// When it was said.
    at: Option<Instant>,
}

impl Told {
    /// Says `place` when it changed, at most once every [`QUEUED_EVERY`]: as it goes down,
    /// and, with why, when it went up (fair queueing puts another address's run first).
    fn queued(&mut self, place: u16, measuring: u16, host: &str) {
        let latest = self.latest.replace(place);
        let due = self.at.is_none_or(|at| at.elapsed() >= QUEUED_EVERY);
        if let Some(last) = latest
            && place > last
            && due
        {
            say(Level::INFO, &moved_back(host, last, place));
            (self.place, self.at) = (Some(place), Some(Instant::now()));
            return;
        }
        if self.place.is_some_and(|said| place >= said) || !due {
            return;
        }
        let runs = crate::units::count(measuring, "run");
        say(
            Level::INFO,
            &format!(
                "lab: this run is number {place} in its queue and waits its turn (the server \
                 {host} is measuring {runs})"
            ),
        );
        progress(&format!("number {place} in the queue of {host}"));
        (self.place, self.at) = (Some(place), Some(Instant::now()));
    }
}

/// What a run moved back in its queue is told: the fair order the server keeps, not a fault.
fn moved_back(host: &str, last: u16, place: u16) -> String {
    format!(
        "lab: this run is now number {place} in the queue of {host} (it was {last}): turns go \
         round by address, so a run from an address holding fewer turns goes first (fair \
         queueing)"
    )
}

/// Whether a read of the control connection ended with the peer's close (or reset).
fn closed_read(e: &ReadError) -> bool {
    match e {
        ReadError::Closed => true,
        ReadError::Io(e) => is_close(e),
        _ => false,
    }
}

/// The one line for a lab server that closed the control connection while this run waited
/// its turn (at `place`, when told): it never measured.
fn gone_while_waiting(host: &str, place: Option<u16>) -> anyhow::Error {
    let at = place.map_or(String::new(), |place| format!(", number {place}"));
    anyhow!(
        "the lab server {host} went away while this run waited its turn{at} (it closed the \
         control connection); check that `netecho serve --lab` is still running there, then \
         run the lab again"
    )
}

/// The line of a run whose --wait ran out in the queue.
fn gave_up(host: &str, wait: Duration, place: Option<u16>) -> String {
    let reached = match place {
        Some(place) => format!("and was still number {place} in its queue"),
        None => "and heard no place in its queue".to_string(),
    };
    format!(
        "waited {} s (--wait) for a turn on the lab server {host} {reached}; try again later, \
         give a longer --wait, or ask the teacher for more turns (serve --lab-runs)",
        wait.as_secs_f64()
    )
}

/// Why a message where a turn or a place belongs ends the run; `heard`: whether the server
/// had said anything before.
fn not_a_turn(msg: Result<Msg, ReadError>, host: &str, heard: bool) -> anyhow::Error {
    match msg {
        Ok(Msg::Error(why)) => {
            anyhow!("the lab server {host} refused the run: {}", printable(&why))
        }
        // A Hello coming back is an echo server at that port, not a lab server.
        Ok(Msg::Hello { .. }) => anyhow!(
            "{host} sent this run's Hello back: it is an echo server, not a lab server; \
             point lab at the control port of `netecho serve --lab` (3235 by default)"
        ),
        Ok(other) => anyhow!(
            "the lab server {host} answered out of turn ({}); is it a netecho of another \
             version?",
            other.name()
        ),
        Err(ReadError::Wire(WireError::Tls)) => anyhow!(
            "the lab server {host} speaks TLS (serve --lab --tls): add --tls, with --pin and \
             the fingerprint its listening line shows (or --ca)"
        ),
        // A lab server closes at once, unanswered, what comes past its bound of connections
        // that have not said Hello yet (per address and in all): a close or a reset.
        Err(ReadError::Closed) if !heard => unanswered(host),
        Err(ReadError::Io(e)) if !heard && is_close(&e) => unanswered(host),
        // A run waiting its turn is closed only by the server's end.
        Err(ReadError::Closed) => went_away(host),
        // Connected, and not a word: something else listens there (nc, a web server).
        Err(ReadError::Timeout) if !heard => {
            let at = control_target(host).map_or(host.to_string(), |t| t.addr.to_string());
            anyhow!(
                "{at} answered nothing in {} s: not a netecho lab server (or a proxy or \
                 firewall in the way)? Check that `netecho serve --lab` runs there and that \
                 this is the port on its `lab control:` line (3235 by default)",
                QUEUE_SILENCE.as_secs()
            )
        }
        Err(e) => anyhow!("the lab server {host}: {e}"),
    }
}

/// Services this client knows by name besides the plan's protocols.
const OTHER_SERVICES: [&str; 2] = ["raw", "tls"];

/// The offer without the services whose names this client does not know (a server of
/// another version, or one that is not netecho's): they are neither measured nor listed,
/// and one warning names them, escaped, as everything a server says.
fn known_services(mut offer: Offer, host: &str) -> Offer {
    let known = |name: &str| {
        OTHER_SERVICES.contains(&name) || CASES.iter().any(|(proto, _, _)| proto.name() == name)
    };
    let unknown: Vec<String> = offer
        .services
        .iter()
        .filter(|s| !known(&s.proto))
        .map(|s| format!("'{}'", printable(&s.proto)))
        .collect();
    if !unknown.is_empty() {
        offer.services.retain(|s| known(&s.proto));
        say(
            Level::WARN,
            &format!(
                "lab: the lab server {host} offers services this netecho does not know, left \
                 out: {}",
                unknown.join(", ")
            ),
        );
    }
    offer
}

fn port_of(offer: &Offer, proto: SockProto) -> Option<u16> {
    port_of_name(offer, proto.name())
}

fn port_of_name(offer: &Offer, name: &str) -> Option<u16> {
    offer
        .services
        .iter()
        .find(|s| s.proto == name)
        .map(|s| s.port)
}

/// The plan's rows the server offers, in the family of the control connection: each
/// protocol at its announced port, a secure one (tls, quic) trusting only the certificate
/// the offer names. A server that offers no tls or quic (an older one) yields no such rows.
fn offered_targets(offer: &Offer, server: SocketAddr) -> Result<Vec<Target>> {
    let v6 = server.ip().to_canonical().is_ipv6();
    let mut targets = Vec::new();
    for case @ (proto, ipv6, flags) in CASES.iter() {
        // The local lab measures the secure rows over IPv4 only; here they take the
        // control connection's family as every other row does.
        let secure = flags.contains(&"--tls") || *proto == SockProto::Quic;
        if !secure && *ipv6 != v6 {
            continue;
        }
        let name = match secure {
            true => case_name(case),
            false => proto.name().to_string(),
        };
        let Some(service) = offer.services.iter().find(|s| s.proto == name) else {
            continue;
        };
        let addr = Address::Ip(with_port(server, service.port));
        match (secure, &service.sha256) {
            (true, Some(fp)) => {
                let pin = Fingerprint::parse(fp).map_err(|e| {
                    anyhow!("the lab server offered {name} with a fingerprint that is not one: {e}")
                })?;
                local::trust_at(&addr, pin);
            }
            // A certificate nothing says to trust: not a port to measure.
            (true, None) => continue,
            (false, _) => {}
        }
        targets.push(Target {
            proto: *proto,
            addr,
        });
    }
    Ok(targets)
}

/// A secure row's first connection: a certificate other than the one offered ends the run
/// with one line, as measuring again would meet the same certificate.
fn offered_certificate(target: &Target) -> Result<()> {
    let opts = local::options_for(target, &SocketOptions::default());
    let Err(e) = transport::connect(target, &opts) else {
        return Ok(());
    };
    let e = anyhow::Error::from(e);
    // Nothing answered the handshake: the row stalls now, not after two more waits.
    if transport::handshake_unanswered(&e) {
        return Err(e);
    }
    // TLS and QUIC both say a pin that does not match as "has fingerprint SEEN, not the
    // pinned PIN"; any other failure is the measurement's to retry and report.
    let text = format!("{e:#}");
    let Some(rest) = text.split("has fingerprint ").nth(1) else {
        return Ok(());
    };
    // Without colons, as the notes name it: 64 columns, whole on a line of 80.
    let seen = rest
        .split([',', ' '])
        .next()
        .unwrap_or_default()
        .replace(':', "");
    bail!(
        "the {} port {} presents a certificate (sha256 {seen}) other than the one the lab \
         server offered: another program answers there, or something on the path in the \
         server's place; the lab stops rather than measure it",
        super::measure::target_name(target),
        target.addr
    )
}

/// The rows measured, the notes of those left out, and the row that stalled, if one did.
#[derive(Default)]
struct Measured {
    rows: Vec<Row>,
    left_out: Vec<String>,
    /// The row (named as the table names it) the server stopped answering during: the rows
    /// after it are not tried.
    stalled: Option<String>,
    /// Its port's address, for the one line said when no row was measured.
    stalled_at: Option<String>,
    /// Why the last row the lab could not reach was left out.
    unreachable: Option<String>,
    /// Whether the lab server went away (closed the control connection) during the rows:
    /// the rows after are not tried.
    gone: bool,
    /// The note of the rows not measured because this run's turn ended under way.
    turn: Option<String>,
}

impl Measured {
    /// Row `name` at `addr` stalled (`e`): the lab server stopped answering it.
    fn stall(&mut self, name: &str, addr: String, e: &Stalled) {
        say(Level::WARN, &format!("lab: {e}"));
        self.left_out.push(super::why::left_out(name, STOPPED));
        self.stalled = Some(name.to_string());
        self.stalled_at = Some(addr);
    }

    /// Row `name` is left out: its port could not be reached (`why`).
    fn unreachable(&mut self, name: &str, why: String) {
        say(Level::WARN, &format!("lab: {why}; its row is left out"));
        self.left_out.push(super::why::left_out(name, &why));
        self.unreachable = Some(why);
    }

    /// Whether a row stalled or the server went away before `name`, which is then left
    /// out untried.
    fn after_stall(&mut self, name: &str) -> bool {
        if let Some(note) = &self.turn {
            self.left_out.push(super::why::left_out(name, note));
            return true;
        }
        let why = match (&self.stalled, self.gone) {
            (_, true) => WENT_AWAY.to_string(),
            (Some(stalled), _) => {
                format!("not tried: the lab server stopped answering the {stalled} row")
            }
            (None, false) => return false,
        };
        self.left_out.push(super::why::left_out(name, &why));
        true
    }

    /// Row `name` of `target` failed (`e`): a stall, the server gone, a port that closed
    /// the row's connections, or this machine's firewall leave it out; anything else is
    /// the run's error.
    fn failed(
        &mut self,
        name: &str,
        target: &Target,
        e: anyhow::Error,
        control: &Conn,
    ) -> Result<()> {
        match e {
            e if Stalled::is(&e) && !closed(control) => {
                self.stall(name, target.addr.to_string(), &Stalled::of(name, &e));
            }
            _ if closed(control) => self.went_away(name),
            e if closed_unanswered(&e) || format!("{e:#}").contains("closed the conn") => {
                self.unreachable(name, full_port(target, &e));
            }
            e => match super::measure::refused_here(&e) {
                Some(errno) => self.unreachable(name, firewall_here(name, &target.addr, errno)),
                None => return Err(e),
            },
        }
        Ok(())
    }

    /// The lab server went away during row `name`: it and the rows after are left out.
    fn went_away(&mut self, name: &str) {
        self.gone = true;
        self.after_stall(name);
    }
}

/// The turn the server offered ran out while a row measured: its ports answer this address
/// no more, so the row measured nothing true.
#[derive(Debug)]
struct TurnOver;

impl std::fmt::Display for TurnOver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "this run's turn on the lab server ended")
    }
}

impl std::error::Error for TurnOver {}

/// The turn the server offers a run, as its notes say it: "4 s".
fn turn_of(offer: &Offer) -> String {
    format!(
        "{} s",
        Duration::from_millis(offer.max_ms.into()).as_secs_f64()
    )
}

/// Whether row error `e` came of the turn ending: past it by this run's clock (`until`).
fn ran_out(e: &anyhow::Error, until: Instant) -> bool {
    e.is::<TurnOver>() || Instant::now() >= until
}

/// [`ran_out`], or the server said something on the control connection meanwhile: the
/// error it ends a turn with (its echo ports stop answering just before it comes).
fn turn_over(e: &anyhow::Error, until: Instant, control: &Conn) -> bool {
    ran_out(e, until) || heard(control.socket(), GONE_WAIT) == Some(false)
}

/// Whether the server has said something on the control connection by now, not waiting:
/// during the rows it speaks only to end the turn.
fn taken_now(control: &Conn) -> bool {
    heard(control.socket(), 0) == Some(false)
}

/// Says before the rows when the turn the server offers is shorter than this plan takes
/// for `rows` rows: the rows past its end will not be measured, and what to do.
fn short_turn(offer: &Offer, plan: &Plan, rows: usize) {
    let turn = Duration::from_millis(offer.max_ms.into());
    let rounds = u32::try_from(plan.rounds * rows).unwrap_or(u32::MAX);
    let planned = (plan.ping + plan.load).saturating_mul(rounds);
    if planned <= turn {
        return;
    }
    say(
        Level::WARN,
        &format!(
            "lab: the lab server allows a run {} (serve --lab-max-time), and this run's {rows} \
             rows take about {:.0} s: those past the turn's end will not be measured; use lab \
             --quick, or ask the teacher to raise --lab-max-time",
            turn_of(offer),
            planned.as_secs_f64()
        ),
    );
}

/// Whether the lab server went away during the rows, and whether the run's turn ended under
/// way: either way there is no turn left to end with Done, nor an account to hear.
fn turn_left(measured: &Result<Measured>) -> (bool, bool) {
    match measured {
        Ok(m) => (m.gone, m.turn.is_some()),
        Err(_) => (false, false),
    }
}

impl Measured {
    /// Row `name`'s result, when it stands: not when it failed (said as [`Measured::failed`]
    /// says, or as the turn's end when that is why), nor when the server went away or ended
    /// the turn while it measured (it measured their going, not the path).
    fn kept(
        &mut self,
        name: &str,
        target: &Target,
        row: Result<Row>,
        (offer, until): (&Offer, Instant),
        control: &Conn,
    ) -> Result<Option<Row>> {
        match row {
            Err(e) if turn_over(&e, until, control) => self.turn_ended(name, offer),
            Err(e) => self.failed(name, target, e, control)?,
            Ok(_) if gone_now(control) => self.went_away(name),
            Ok(_) if taken_now(control) => self.turn_ended(name, offer),
            Ok(row) => return Ok(Some(row)),
        }
        Ok(None)
    }

    /// This run's turn ended during row `name`: it and the rows after are left out, named
    /// for the server's limit, and one warning says what to do.
    fn turn_ended(&mut self, name: &str, offer: &Offer) {
        say(
            Level::WARN,
            &format!(
                "lab: this run's turn ended during the {name} row (the lab server allows {} a \
                 run: --lab-max-time): the rows measured before it stand; use lab --quick, or \
                 ask the teacher to raise --lab-max-time",
                turn_of(offer)
            ),
        );
        let note = format!(
            "the turn ended (the server allows {} a run: --lab-max-time)",
            turn_of(offer)
        );
        self.turn = Some(note);
        self.after_stall(name);
    }
}

/// The note of a row not measured because the lab server went away.
const WENT_AWAY: &str = "the lab server went away (it closed the control connection: \
    stopped or restarted)";

/// What a row that stalled says: a lab server that answered the rows before it and stops
/// answering is paused or overloaded, not another program.
const STOPPED: &str = "the lab server stopped answering (busy or stopped): run again later";

/// The plan's rows the server offers, each measured against its announced port. A stream
/// port that takes no connection, a udp port that answers nothing and a row whose port
/// closed its connections (full: the server's share for a run taken) are said in a warning
/// each, and the rows measured stand, with a note for each row left out; so does a row the
/// server stopped answering (stalled), the rows after it not tried. The control connection
/// is looked at before each row and at each failure: a server that went away ends the run
/// at once, in one line.
fn measure_offered(
    offer: &Offer,
    (server, mtu): (SocketAddr, Option<u32>),
    plan: &Plan,
    control: &Conn,
) -> Result<Measured> {
    let targets = offered_targets(offer, server)?;
    if targets.is_empty() {
        bail!("the lab server offers no protocol this lab measures over {server}");
    }
    let until = Instant::now() + Duration::from_millis(offer.max_ms.into()).min(MAX_RUN);
    // The raw row counts too, when offered: the status line's count is of every row.
    let count = targets.len() + usize::from(port_of_name(offer, "raw").is_some());
    short_turn(offer, plan, count);
    let mut m = Measured::default();
    for (i, target) in targets.iter().enumerate() {
        let name = super::measure::target_name(target);
        if m.after_stall(&name) {
            continue;
        }
        progress(&format!("[{}/{count}] {name} {}", i + 1, target.addr));
        if gone_now(control) {
            m.went_away(&name);
            continue;
        }
        if let Some(why) = under_quic_minimum(target, mtu) {
            m.unreachable(&name, why);
            continue;
        }
        if let Err(why) = connects(target) {
            match closed(control) {
                true => m.went_away(&name),
                false => m.unreachable(&name, why),
            }
            continue;
        }
        let (measured, plan_row) = (target.clone(), plan.clone());
        let row = within_run(&name, until, plan, move || {
            if local::trust(&measured).is_some() {
                offered_certificate(&measured)?;
            }
            measure(&measured, &plan_row)
        });
        let Some(mut row) = m.kept(&name, target, row, (offer, until), control)? else {
            continue;
        };
        if row.unanswered() {
            row.why = no_reply(&row, target);
            say(Level::WARN, &format!("lab: {}: {}", row.name(), row.why));
        }
        super::why::under_limit(&mut row, offer.rate);
        m.rows.push(row);
    }
    measure_raw(offer, server, plan, until, count, &mut m)?;
    match (&m.stalled, &m.unreachable) {
        _ if m.turn.is_some() && m.rows.is_empty() => bail!(
            "this run's turn on the lab server ended before its first row was measured (the \
             server allows {} a run: --lab-max-time): use lab --quick, or ask the teacher to \
             raise --lab-max-time",
            turn_of(offer)
        ),
        // Nothing measured: the one line saying it went away.
        _ if m.gone && m.rows.is_empty() => bail!("the lab server closed the control connection"),
        // The first row: the port may never have answered at all, as no lab server's does.
        (Some(name), _) if m.rows.is_empty() => bail!(
            "the {name} row at {} stalled, not measured: the lab server stopped answering \
             (busy or stopped), or what answers that port is not a netecho lab server; run \
             again later",
            m.stalled_at.as_deref().unwrap_or("its port")
        ),
        (_, Some(why)) if m.rows.is_empty() => bail!("{why}"),
        _ => Ok(m),
    }
}

/// The raw row, when the server offers it: measured, left out with its note, or (a row
/// before it stalled) not tried.
fn measure_raw(
    offer: &Offer,
    server: SocketAddr,
    plan: &Plan,
    until: Instant,
    count: usize,
    m: &mut Measured,
) -> Result<()> {
    let name = match server.ip().to_canonical().is_ipv6() {
        true => "raw6",
        false => "raw",
    };
    match raw_offered(offer, server) {
        Some(Ok(_)) if m.after_stall(name) => {}
        Some(Ok((target, ip_proto))) => {
            let (plan_raw, step) = (plan.clone(), format!("[{count}/{count}]"));
            let at = target.addr.to_string();
            let row = within_run(name, until, plan, move || {
                raw_row(&target, ip_proto, &plan_raw, &step)
            });
            match row {
                Ok(mut row) => {
                    super::why::under_limit(&mut row, offer.rate);
                    m.rows.push(row);
                }
                Err(e) if ran_out(&e, until) => m.turn_ended(name, offer),
                Err(e) if Stalled::is(&e) => m.stall(name, at, &Stalled::of(name, &e)),
                Err(_) if server_gone() => m.went_away(name),
                Err(e) => match super::measure::refused_here(&e) {
                    Some(errno) => m.unreachable(name, firewall_here(name, &at, errno)),
                    None => return Err(e),
                },
            }
        }
        Some(Err(note)) => m.left_out.push(note),
        None => {}
    }
    Ok(())
}

/// Why row `name` to `at` is left out when this machine's firewall refuses its packets
/// (`errno`, EPERM or EACCES on a send or a connect): a rule here, not the teacher's.
fn firewall_here(name: &str, at: &dyn std::fmt::Display, errno: &str) -> String {
    format!(
        "this machine's firewall refuses the {name} row's packets to {at} ({errno}: an \
         nftables/iptables OUTPUT rule here, not the lab server's); check `nft list ruleset` \
         on this machine"
    )
}

/// The smallest datagram QUIC sends while it proves a path (RFC 9000, 14.1): the UDP
/// payload of a client's first packet.
const QUIC_MINIMUM: u32 = 1200;

/// Why the quic row cannot be measured over a path of MTU `mtu`: its IP packets of a
/// [`QUIC_MINIMUM`] payload do not fit (a handshake that would never finish).
fn under_quic_minimum(target: &Target, mtu: Option<u32>) -> Option<String> {
    let mtu = mtu.filter(|_| target.proto == SockProto::Quic)?;
    // IP and UDP headers around the payload.
    let headers = if super::measure::v6(&target.addr) {
        48
    } else {
        28
    };
    (mtu < QUIC_MINIMUM + headers).then(|| {
        format!(
            "the path MTU ({mtu} bytes) is under QUIC's minimum: it sends {QUIC_MINIMUM}-byte \
             datagrams, {} bytes with their IP and UDP headers, which this path cannot carry",
            QUIC_MINIMUM + headers
        )
    })
}

/// The warning of a row whose echo port closed its connections while the control
/// connection stands: the lab server holds a run's connections to a share, and closes
/// those past it.
fn full_port(target: &Target, e: &anyhow::Error) -> String {
    format!(
        "{} {}: {e:#}: the lab server closed this row's connections while this run held its \
         turn (is another program using its address, a run beside it on the same machine?)",
        super::measure::target_name(target),
        target.addr
    )
}

/// Whether the lab server has closed the control connection by now, not waiting.
fn gone_now(conn: &Conn) -> bool {
    server_gone() || closed_within(conn, 0)
}

/// How long the lab waits for an announced tcp port to take a connection before it leaves
/// the row out: three SYNs, the third a second past the first two's timers.
const CONNECT_WAIT: Duration = Duration::from_secs(5);

/// Whether an announced stream port takes a connection within [`CONNECT_WAIT`]: one whose
/// SYNs a firewall drops would otherwise hold the row until the kernel gives up (minutes).
/// Datagram ports are told by their replies ([`no_reply`]).
fn connects(target: &Target) -> Result<(), String> {
    let Address::Ip(addr) = &target.addr else {
        return Ok(());
    };
    if target.proto != SockProto::Tcp {
        return Ok(());
    }
    std::net::TcpStream::connect_timeout(addr, CONNECT_WAIT)
        .map(drop)
        .map_err(|e| {
            let reach = "the teacher must let the class reach the control port and the ports \
                         `serve --lab` announces";
            let (what, why) = match e.kind() {
                std::io::ErrorKind::TimedOut => (
                    format!("no answer in {} s", CONNECT_WAIT.as_secs()),
                    format!("a firewall on the way drops it; {reach}"),
                ),
                // A reset: nothing listens there now, or a firewall rule that rejects.
                std::io::ErrorKind::ConnectionRefused => (
                    "refused".to_string(),
                    format!("the port is closed now, or a firewall rejects it; {reach}"),
                ),
                _ => (e.to_string(), "the connect itself failed".to_string()),
            };
            format!(
                "could not connect to the announced {} port {} of {} ({what}): {why}",
                super::measure::target_name(target),
                addr.port(),
                addr.ip()
            )
        })
}

/// The sentence of a row that got no reply at all: nothing measured, and the likely why.
fn no_reply(row: &Row, target: &Target) -> String {
    let port = match &target.addr {
        Address::Ip(addr) => addr.port().to_string(),
        other => other.to_string(),
    };
    format!(
        "no reply at all to port {port} ({} requests): a firewall on the server, or the port \
         unreachable; the teacher must let the class reach the ports `serve --lab` announces",
        row.sent
    )
}

/// The longest a run against a lab server may measure, whatever time the server offers.
const MAX_RUN: Duration = Duration::from_secs(600);
/// What a row may take past its plan's own time (connections, bursts, one retry) before
/// it counts as stalled; and how long a row past that time is waited for after its last
/// step (a round, the burst, a connection set up: a slow server's handshakes go on).
const ROW_SLACK: Duration = Duration::from_secs(20);

/// A row that brought no result within its time ([`within_run`]), or whose TLS or QUIC
/// handshake got no answer: the lab server, which answered the control connection and
/// offered the port, stopped answering it.
#[derive(Debug, Clone)]
struct Stalled {
    row: String,
    /// What ran out: "not measured within 21 s".
    what: String,
}

impl Stalled {
    /// Whether the row's error `e` is a stall.
    fn is(e: &anyhow::Error) -> bool {
        e.is::<Stalled>() || transport::handshake_unanswered(e)
    }

    /// Row `row`'s stall `e` (see [`Stalled::is`]).
    fn of(row: &str, e: &anyhow::Error) -> Stalled {
        e.downcast_ref::<Stalled>()
            .cloned()
            .unwrap_or_else(|| Stalled {
                row: row.to_string(),
                what: "its handshake got no answer".to_string(),
            })
    }
}

impl std::fmt::Display for Stalled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}: {STOPPED}", self.row, self.what)
    }
}

impl std::error::Error for Stalled {}

/// Measures one row (`what`, as the table names it) on a thread of its own, for what its
/// plan takes (twice, for a retry) and [`ROW_SLACK`], or while its steps go on (each a
/// round, the burst or a connection set up, [`ROW_SLACK`] apart at most: a busy server's
/// fifty handshakes), never past `until` (the time the server offered): an echo port that
/// accepts and stops answering is [`Stalled`], instead of holding the run. A stalled row's
/// thread is left behind.
fn within_run<T: Send + 'static>(
    what: &str,
    until: Instant,
    plan: &Plan,
    row: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    let planned = (plan.ping + plan.load) * u32::try_from(plan.rounds).unwrap_or(u32::MAX);
    let start = Instant::now();
    let budget = start + planned * 2 + ROW_SLACK;
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    std::thread::Builder::new()
        .name("lab-row".into())
        .spawn(move || {
            let _ = tx.send(row());
        })
        .context("cannot start a thread to measure a row")?;
    loop {
        let stepping = (super::measure::last_step())
            .filter(|&at| at > start)
            .map(|at| at + ROW_SLACK);
        let deadline = stepping.map_or(budget, |d| d.max(budget)).min(until);
        let Some(left) = deadline.checked_duration_since(Instant::now()) else {
            if Instant::now() >= until {
                return Err(anyhow::Error::new(TurnOver));
            }
            let idle = match deadline > budget {
                true => format!(", no step done in its last {} s", ROW_SLACK.as_secs()),
                false => String::new(),
            };
            return Err(anyhow::Error::new(Stalled {
                row: what.to_string(),
                what: format!(
                    "not measured within {:.0} s{idle}",
                    start.elapsed().as_secs_f64()
                ),
            }));
        };
        match rx.recv_timeout(left) {
            Ok(done) => return done,
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                bail!("measuring the {what} row ended without a result")
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
        }
    }
}

/// The raw row's target and IP protocol, when the server offers raw (its "port" is the IP
/// protocol); when this process may not open raw sockets, the lab says so and the note for
/// under the table comes instead.
fn raw_offered(offer: &Offer, server: SocketAddr) -> Option<Result<(Endpoint, u8), String>> {
    let ip_proto = port_of_name(offer, "raw").and_then(|p| u8::try_from(p).ok())?;
    let ip = server.ip().to_canonical();
    // An IPv4-mapped address as IPv4; an IPv6 one with its zone.
    let at = match ip.is_ipv6() {
        true => with_port(server, 0),
        false => SocketAddr::new(ip, 0),
    };
    if let Err(e) = transport::raw::open(ip.is_ipv6(), i32::from(ip_proto), "raw") {
        let name = if ip.is_ipv6() { "raw6" } else { "raw" };
        return Some(Err(super::without_raw(name, &e)));
    }
    let target = Endpoint {
        proto: Proto::Raw,
        addr: Address::Ip(at),
    };
    Some(Ok((target, ip_proto)))
}

/// The raw row of `target`, over IP protocol `ip_proto`.
fn raw_row(target: &Endpoint, ip_proto: u8, plan: &Plan, step: &str) -> Result<Row> {
    let addr = target.addr.to_string();
    progress(&format!(
        "{step} raw {}",
        addr.strip_suffix(":0").unwrap_or(&addr)
    ));
    once_more(target, || {
        measure_raw_once(target, plan, ip_proto).map_err(|e| stopped_raw(e, ip_proto))
    })
}

/// `e`, or, when the server's host answered ICMP protocol unreachable, that the lab server
/// stopped answering raw: it offered raw itself, so `serve --proto raw` is not the advice.
fn stopped_raw(e: anyhow::Error, ip_proto: u8) -> anyhow::Error {
    match format!("{e:#}").contains("(ENOPROTOOPT)") {
        true => anyhow!(
            "the lab server stopped answering raw IP protocol {ip_proto} (its host answered \
             ICMP protocol unreachable: has `netecho serve --lab` stopped?)"
        ),
        false => e,
    }
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
    // The address the host stood for, unless it is what was typed.
    let at = match path.server.to_string() == host {
        true => String::new(),
        false => format!(" ({})", path.server),
    };
    let sharing = match a.shared_with {
        _ if !shared.accounted => "heard no account of the run from the server: whether other \
                                   runs shared it is not known"
            .to_string(),
        0 => format!(
            "had the server to itself while measuring (the server lets {} measure at once)",
            offer.max_runs
        ),
        n => format!(
            "shared the server with {n} other {} while measuring (at most {} at once; the \
             server lets {} measure at once)",
            if n == 1 { "run" } else { "runs" },
            a.most_at_once,
            offer.max_runs
        ),
    };
    let mut notes = vec![
        format!(
            "lab server {host}{at}, control protocol {}, run {}: {}",
            labwire::VERSION,
            offer.run,
            ports.join(", ")
        ),
        path.describe(),
        sharing,
    ];
    notes.extend(trusted(shared));
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

/// What the secure rows trusted, and what that proves: a certificate named over a plain
/// control connection is whoever answered's, not necessarily the lab server's.
fn trusted(shared: &Shared) -> Option<String> {
    let mut named: Vec<String> = shared
        .offer
        .services
        .iter()
        .filter_map(|s| s.sha256.as_deref())
        // Without colons, so a note wrapped at 80 columns keeps each whole.
        .map(|fp| fp.replace(':', ""))
        .collect();
    named.dedup();
    if named.is_empty() {
        return None;
    }
    let fps = named.join(" and ");
    let how = match shared.proven {
        true => {
            "which came over the TLS control connection, its certificate checked: the \
                 rows measured the lab server's own ports"
        }
        false => {
            "which came over a control connection whose server nothing checked (plain \
                  TCP, or --insecure): the rows reached whoever sent the offer, encrypted, \
                  but nothing shows it was the lab server; serve --lab --tls with lab --tls \
                  --pin shows that"
        }
    };
    Some(format!(
        "the secure rows trusted only the certificate the offer named, sha256 {fps}, {how}"
    ))
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
    // Unknown when the server sent no account.
    let told = |n: u32| match shared.accounted {
        true => Value::from(n),
        false => Value::Null,
    };
    p.insert("shared_with".into(), told(a.shared_with));
    p.insert("most_at_once".into(), told(a.most_at_once.into()));
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
    (rows, left_out): (&[Row], &[String]),
) -> Result<String> {
    let mut params = super::parameters(settings, plan, None);
    params.extend(parameters(host, path, shared));
    let meta = Meta::now(params);
    let notes = notes(host, path, shared);
    let lab = Lab {
        rows,
        left_out,
        boundaries: &[],
        meta: &meta,
        rounds: plan.rounds,
        // The lab server's host chose its own cores.
        pinned: false,
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
            left_out,
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
        // Link-local with its zone, bracketed with a port or bare; without one, advice.
        assert_eq!(addr("[fe80::1%lo]:4000").unwrap(), "[fe80::1%1]:4000");
        assert_eq!(addr("fe80::1%lo").unwrap(), "[fe80::1%1]:3235");
        let zoneless = control_target("fe80::1").unwrap_err().to_string();
        assert!(zoneless.contains("[fe80::1%eth0]:3235"), "{zoneless}");
        // An echo port of a link-local server keeps the zone.
        let server: SocketAddr = "[fe80::1%1]:3235".parse().unwrap();
        assert_eq!(with_port(server, 40000).to_string(), "[fe80::1%1]:40000");
    }

    /// A tls port that takes connections (its kernel does, for a lab server stopped with
    /// SIGSTOP) and never answers a handshake: the row, its retry included, is a stall the
    /// run goes on from, whichever wait ends first, never the lab's error.
    #[test]
    fn a_tls_port_that_never_answers_a_handshake_is_a_stalled_row() {
        // Listening, never accepting: the kernel completes each connect.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let target = Target {
            proto: SockProto::Tcp,
            addr: Address::Ip(listener.local_addr().unwrap()),
        };
        local::trust_at(&target.addr, Fingerprint([7; 32]));
        let e = offered_certificate(&target).unwrap_err();
        assert!(Stalled::is(&e), "{e:#}");
        let e = measure(&target, &Plan::new(true)).unwrap_err();
        assert!(Stalled::is(&e), "{e:#}");
        let said = Stalled::of("tls", &e).to_string();
        assert!(
            said.starts_with("tls: its handshake got no answer: "),
            "{said}"
        );
        assert!(said.contains(STOPPED), "{said}");
    }
}
