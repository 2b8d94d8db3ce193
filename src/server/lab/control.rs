//! The lab server's control port: a thread per control connection, each one run's
//! dialogue: Hello, its place in the queue, its turn (the offer), Done, its account. Every
//! wait has a deadline; anything not understood gets one error and the connection closes.
//!
//! Connections that have not said Hello yet are counted apart ([`Greeters`]): per client
//! address (an IPv6 address's /64; on this host, per user: every local user shares
//! 127.0.0.1) at most [`GREETING_PER_ADDRESS`] or the runs one address
//! may hold (--lab-per-address), whichever is more (a class behind one NAT address starts its
//! runs at once) but never more than 16; past that a new one is closed at once with nothing
//! sent. At most [`MAX_GREETING`] in all: past that the oldest silent connection of the
//! address holding the most is closed to make room, so silent connections can neither fill
//! the slots of runs that said Hello nor lock anyone out. With
//! `serve --lab --tls` every byte of the dialogue passes through the connection's TLS
//! session ([`crate::transport::Conn::within`]).

use std::net::IpAddr;
use std::os::fd::AsFd;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::Result;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

use tracing::{debug, info, warn};

use crate::access::Access;
use crate::endpoint::Proto;
use crate::labwire::{self, Msg, Offer, ReadError, WireError};
use crate::lifecycle::accept_loop;
use crate::logging::Throttle;
use crate::signal::{Shutdown, Signal};
use crate::slots::{Evicting, Place, Room, Shut};
use crate::transport::Conn;

use super::Lab;
use super::class::{Ticket, Turn, millis};
use crate::server::admission::{Share, share_key};

/// How long a new control connection has to say Hello.
pub(crate) const HELLO_TIME: Duration = Duration::from_secs(5);
/// Connections from one address that have not said Hello yet, unless the address may hold
/// more runs than this; more are closed at once.
pub(crate) const GREETING_PER_ADDRESS: usize = 4;
/// Connections from all addresses that have not said Hello yet.
pub(crate) const MAX_GREETING: usize = 128;
/// A waiting run hears from the server at least this often, and is checked for being gone.
const QUEUE_TICK: Duration = Duration::from_secs(2);
/// Any one write to a client; a client that reads nothing is dropped past it.
const WRITE_TIME: Duration = Duration::from_secs(5);
/// A turn whose address reaches no echo port for this long ends while other runs wait.
const IDLE_TURN: Duration = Duration::from_secs(30);
/// How often a turn is looked at for that.
const IDLE_CHECK: Duration = Duration::from_secs(1);
/// The most a refused peer's leftover bytes are read for before the close.
const DRAIN: usize = 64 * 1024;
/// How soon a client that vanished without closing loses its place.
const VANISHED: Duration = Duration::from_secs(30);
/// Control connection threads need little stack: a frame is at most 1 KiB.
const STACK: usize = 128 * 1024;

/// Connections that have not said Hello yet, per source ([`Share`]: an address, an IPv6
/// address's /64, a user of this host) and in all, each source's oldest first. When the server holds [`MAX_GREETING`] the oldest silent
/// connection of the address holding the most is shut for any newcomer, its own address's
/// too: a flood delays a client by at most one Hello deadline, never locks it out.
pub(crate) type Greeters = Evicting<Share>;

/// No silent connections yet.
pub(super) fn greeters() -> Greeters {
    Evicting::new(Room::ForAny)
}

/// A place among the silent connections for `conn` from `source`, which may hold `cap`;
/// `None` (counted as refused, said in a throttled line) when it holds that many already.
fn greet(lab: &Lab, source: Share, cap: usize, conn: &Conn) -> Option<Place<Share>> {
    static CLOSED: Throttle = Throttle::new();
    let taken = conn
        .as_fd()
        .try_clone_to_owned()
        .ok()
        .and_then(|socket| lab.greeters.take(source, socket, cap, MAX_GREETING).ok());
    let Some((place, shut)) = taken else {
        lab.refused.fetch_add(1, Ordering::Relaxed);
        if let Some(more) = CLOSED.allow() {
            warn!(
                "lab {}: closed at once: {cap} connections from {source} have not said Hello \
                 yet, the most one source may have{more}",
                conn.peer(),
            );
        }
        return None;
    };
    if let Some(Shut { key, had }) = shut
        && let Some(more) = CLOSED.allow()
    {
        warn!(
            "lab: {MAX_GREETING} connections have not said Hello yet, the most the server \
             holds: closed the oldest of {had} from {key}{more}",
        );
    }
    Some(place)
}

/// Accepts control connections until a stop signal; returns it.
pub(super) fn accept(
    listener: &crate::transport::Listener,
    lab: &Arc<Lab>,
    access: &Arc<Access>,
    shutdown: &Shutdown,
) -> Result<Signal> {
    accept_loop(listener, shutdown, None, |conn| {
        let conn = conn?;
        if !access.admits_conn(Proto::Tcp, &conn) {
            lab.refused.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        let ip = conn.remote()?.ip().to_canonical();
        // A peer on this host by its user (one sock_diag query), so one local user's silent
        // connections shut no other user out.
        let who = access.identify_conn(Proto::Tcp, &conn, true);
        let source = Share::of_any(&who).unwrap_or(Share::Address(share_key(ip)));
        let greeting = greet(
            lab,
            source,
            greeting_cap(lab.class.limits.per_address),
            &conn,
        )?;
        if lab.control.fetch_add(1, Ordering::Relaxed) >= lab.max_control() {
            lab.control.fetch_sub(1, Ordering::Relaxed);
            drop(greeting);
            lab.refused.fetch_add(1, Ordering::Relaxed);
            // A flood of clients causes this line at will: throttled.
            static LOG: Throttle = Throttle::new();
            if let Some(more) = LOG.allow() {
                warn!(
                    "lab {}: refused, {} control connections open{more}",
                    conn.peer(),
                    lab.max_control()
                );
            }
            let busy = Msg::Error("the lab server is full; try again in a minute".into());
            crate::server::admission::refuse(conn, Some(&busy.encode()));
            return None;
        }
        spawn_dialogue(conn, lab, ip, greeting);
        None
    })
}

/// Connections from one address that may be silent at once: enough for a class behind one
/// NAT address to start its runs together, never a large part of [`MAX_GREETING`].
fn greeting_cap(per_address: usize) -> usize {
    GREETING_PER_ADDRESS.max(per_address).min(MAX_GREETING / 8)
}

/// Runs the dialogue of `conn` from `ip` on a thread of its own; `greeting`, its place among
/// the silent connections, is given back once its Hello came or did not (or when no thread
/// starts).
fn spawn_dialogue(conn: Conn, lab: &Arc<Lab>, ip: IpAddr, greeting: Place<Share>) {
    notice_vanishing(&conn);
    let lab_run = Arc::clone(lab);
    let spawned = std::thread::Builder::new()
        .name("lab-control".into())
        .stack_size(STACK)
        .spawn(move || {
            dialogue(&conn, &lab_run, ip, greeting);
            lab_run.control.fetch_sub(1, Ordering::Relaxed);
        });
    if let Err(e) = spawned {
        lab.control.fetch_sub(1, Ordering::Relaxed);
        warn!("lab: cannot start a control thread: {e}");
    }
}

/// A client that vanishes without closing (a laptop shut, a cable pulled) gives up its place
/// within [`VANISHED`]: keepalive probes while it waits silently, and a bound on unacknowledged
/// data while the server writes to it, instead of the kernel's quarter of an hour.
fn notice_vanishing(conn: &Conn) {
    let socket = conn.socket();
    let probes = socket2::TcpKeepalive::new()
        .with_time(VANISHED / 3)
        .with_interval(VANISHED / 6)
        .with_retries(2);
    if let Err(e) = socket
        .set_tcp_keepalive(&probes)
        .and_then(|()| socket.set_tcp_user_timeout(Some(VANISHED)))
    {
        warn!("lab {}: keepalive: {e}", conn.peer());
    }
}

/// One control connection, start to end. `ip` is the connection's own peer address (what
/// the kernel says, never what the client claims).
fn dialogue(conn: &Conn, lab: &Lab, ip: IpAddr, greeting: Place<Share>) {
    let peer = conn.peer().to_string();
    let said = hello(conn);
    drop(greeting);
    if let Err(why) = said {
        info!("lab {peer}: {why}");
        return;
    }
    let ticket = match lab.class.join(ip) {
        Ok(ticket) => ticket,
        Err(why) => {
            lab.refused.fetch_add(1, Ordering::Relaxed);
            static LOG: Throttle = Throttle::new();
            if let Some(more) = LOG.allow() {
                warn!("lab {peer}: refused: {why}{more}");
            }
            send(conn, &Msg::Error(why));
            return;
        }
    };
    let ended = run(conn, lab, &ticket);
    // Said before the turn goes on, so the log never shows the next run measuring first.
    let account = lab
        .class
        .leave_saying(&ticket, |account| match (&ended, account) {
            (Ok(()), Some(account)) => info!(
                "lab run {} from {peer}: waited {:.1} s, measured {:.1} s beside {} (at most \
                 {} at once)",
                ticket.run,
                f64::from(account.waited_ms) / 1000.0,
                f64::from(account.measured_ms) / 1000.0,
                crate::units::count(account.shared_with, "other run"),
                account.most_at_once
            ),
            (Ok(()), None) => {}
            (Err((_, why)), _) => info!("lab run {} from {peer}: {why}", ticket.run),
        });
    match (ended, account) {
        (Ok(()), Some(account)) => {
            lab.runs.fetch_add(1, Ordering::Relaxed);
            send(conn, &Msg::Account(account));
        }
        (Ok(()), None) => {}
        (Err((how, why)), _) => {
            lab.unfinished[how as usize].fetch_add(1, Ordering::Relaxed);
            send(conn, &Msg::Error(why));
        }
    }
}

/// How a run that did not finish ended, as the server's stop line counts it.
#[derive(Clone, Copy, Debug)]
pub(super) enum Unfinished {
    /// It left (or could not be reached) while it waited its turn.
    Queue = 0,
    /// It left, or broke the dialogue, while it measured: its report was not finished.
    Measuring = 1,
    /// The server took its turn back: past --lab-max-time, or idle while others waited.
    Turn = 2,
}

/// A run's end: finished, or how and why not.
type Ended = Result<(), (Unfinished, String)>;

/// What a peer that sent something other than the lab's Hello is told it sent.
const NOT_LAB: &str = "what came is not that protocol, and nothing else is answered here";

/// Reads the first frame. A lab client of another version gets an Error frame naming both
/// versions; anything else (an HTTP request, nc, silence) gets one line of text, which is
/// what such a peer can read.
fn hello(conn: &Conn) -> Result<(), String> {
    let mut wire = conn
        .within(Instant::now() + HELLO_TIME)
        .map_err(|e| e.to_string())?;
    // The log's reason, and the peer's: plain words for whoever typed at the port (nc,
    // `netecho send`, a browser), no frame lengths.
    let (refusal, heard) = match labwire::read_frame(&mut wire) {
        Ok(body) => match Msg::decode_hello(&body) {
            Ok(_) => return Ok(()),
            Err(WireError::Version(v)) => {
                let why = WireError::Version(v).to_string();
                send(conn, &Msg::Error(why.clone()));
                return Err(why);
            }
            Err(e) => (e.to_string(), NOT_LAB.to_string()),
        },
        Err(ReadError::Wire(WireError::Tls)) => {
            let why = "a TLS ClientHello, but this server speaks plain TCP (leave out --tls, or \
                       serve --lab --tls)";
            (why.to_string(), format!("it got {why}"))
        }
        Err(ReadError::Wire(e)) => (e.to_string(), NOT_LAB.to_string()),
        Err(ReadError::Timeout) => {
            let why = format!(
                "nothing said within {} s of connecting",
                HELLO_TIME.as_secs()
            );
            (why.clone(), why)
        }
        Err(e) => return Err(e.to_string()),
    };
    let line = format!(
        "this is a netecho lab server (control protocol {}): it speaks only to `netecho lab \
         HOST`, which measures the network to it; {heard}\n",
        labwire::VERSION
    );
    if let Ok(mut wire) = conn.within(Instant::now() + WRITE_TIME) {
        let _ = std::io::Write::write_all(&mut wire, line.as_bytes());
    }
    close_gently(conn);
    Err(refusal)
}

/// Bytes the peer sent that are past what was read (the rest of an HTTP request, say)
/// would make the close a reset, and a reset can throw away the line just sent: the
/// sending side is shut first, and what still comes is read and dropped, for at most
/// [`DRAIN`] bytes and a second.
fn close_gently(conn: &Conn) {
    let _ = conn.shutdown_write();
    let Ok(mut wire) = conn.within(Instant::now() + Duration::from_secs(1)) else {
        return;
    };
    let mut buf = [0u8; 4096];
    let mut drained = 0;
    while drained < DRAIN {
        match std::io::Read::read(&mut wire, &mut buf) {
            Ok(n) if n > 0 => drained += n,
            _ => break,
        }
    }
}

/// Waits for the run's turn (telling it its place), gives it the offer, and waits for Done
/// within the longest run allowed.
fn run(conn: &Conn, lab: &Lab, ticket: &Ticket) -> Ended {
    let (others, waited) = wait_turn(conn, lab, ticket).map_err(|why| (Unfinished::Queue, why))?;
    let limits = lab.class.limits;
    let offer = Offer {
        run: ticket.run,
        waited_ms: millis(waited),
        measuring: others.min(u16::MAX as usize) as u16,
        max_runs: limits.runs.min(u16::MAX as usize) as u16,
        max_ms: millis(limits.max_time),
        rate: lab.rate,
        services: lab.services.clone(),
    };
    write(conn, &Msg::Go(offer)).map_err(|why| (Unfinished::Measuring, why))?;
    // At debug level, as its place in the queue: a class's log has one line per run, its
    // end, which says both.
    debug!(
        "lab run {} from {}: measuring beside {}, after {:.1} s in the queue",
        ticket.run,
        conn.peer(),
        crate::units::count(others, "other run"),
        waited.as_secs_f64()
    );
    let started = Instant::now();
    let until = started + limits.max_time;
    let late = || (Unfinished::Turn, too_long(lab));
    loop {
        let left = until.saturating_duration_since(Instant::now());
        if readable_within(conn, IDLE_CHECK.min(left)) {
            break;
        }
        if left.is_zero() {
            return Err(late());
        }
        if lab.class.idle_while_others_wait(ticket, IDLE_TURN) {
            return Err((
                Unfinished::Turn,
                format!(
                    "the run reached no echo port for {} s while other runs waited; its turn \
                     went to the next run",
                    IDLE_TURN.as_secs()
                ),
            ));
        }
    }
    let broke = |why: String| (Unfinished::Measuring, why);
    let mut wire = conn
        .within(Instant::now() + WRITE_TIME)
        .map_err(|e| broke(e.to_string()))?;
    match labwire::read_msg(&mut wire) {
        Ok(Msg::Done) => Ok(()),
        Ok(other) => Err(broke(format!("a control message out of turn ({other:?})"))),
        Err(ReadError::Timeout) => Err(late()),
        Err(ReadError::Closed) => Err(broke(format!(
            "left while measuring, after {:.1} s: its report was not finished",
            started.elapsed().as_secs_f64()
        ))),
        Err(e) => Err(broke(out_of_turn(e))),
    }
}

/// What a run past --lab-max-time is told (and the log says): the limit, advice a student
/// can follow, and that its turn went on only when a run was waiting for it.
fn too_long(lab: &Lab) -> String {
    let next = match lab.class.waiting() {
        0 => "",
        _ => "; its turn went to the next run",
    };
    format!(
        "the run took longer than {} s, the turn this server allows (serve --lab-max-time): \
         use lab --quick, or ask the teacher to raise --lab-max-time{next}",
        lab.class.limits.max_time.as_secs()
    )
}

/// What a client that said a valid Hello sent where Done belongs, when it is no message:
/// worded for a run under way, not for a stranger at the port.
fn out_of_turn(e: ReadError) -> String {
    match e {
        ReadError::Wire(WireError::NotLab) => {
            "a malformed Hello (without the lab's mark) where Done belongs".into()
        }
        ReadError::Wire(WireError::Length(n)) => format!(
            "a control frame length of {n} bytes where Done belongs (at most {})",
            labwire::MAX_FRAME
        ),
        e => e.to_string(),
    }
}

/// Tells a waiting run its place whenever it changes and every [`QUEUE_TICK`]; gives up
/// when the client is gone or says anything.
fn wait_turn(conn: &Conn, lab: &Lab, ticket: &Ticket) -> Result<(usize, Duration), String> {
    let mut told = None;
    let mut last = Instant::now();
    loop {
        match lab.class.wait_turn(ticket, Duration::from_millis(500)) {
            // A client that left while its turn came: the turn goes on to the next run.
            Turn::Go { .. } if spoke(conn) => return Err("the client left the queue".into()),
            Turn::Go { others, waited } => return Ok((others, waited)),
            Turn::Waiting { place, measuring } => {
                if told.is_none() {
                    debug!(
                        "lab run {} from {}: number {place} in the queue",
                        ticket.run,
                        conn.peer()
                    );
                }
                if told != Some(place) || last.elapsed() >= QUEUE_TICK {
                    let queued = Msg::Queued {
                        place: place.min(u16::MAX as usize) as u16,
                        measuring: measuring.min(u16::MAX as usize) as u16,
                    };
                    write(conn, &queued)?;
                    told = Some(place);
                    last = Instant::now();
                }
                if spoke(conn) {
                    return Err("the client left the queue".into());
                }
            }
        }
    }
}

/// Whether a waiting client closed or sent something (it has nothing to say while it waits).
fn spoke(conn: &Conn) -> bool {
    readable_within(conn, Duration::ZERO)
}

/// Whether the client closed or sent something within `wait`.
fn readable_within(conn: &Conn, wait: Duration) -> bool {
    let ms = u16::try_from(wait.as_millis()).unwrap_or(u16::MAX);
    let mut fds = [PollFd::new(conn.as_fd(), PollFlags::POLLIN)];
    matches!(poll(&mut fds, PollTimeout::from(ms)), Ok(n) if n > 0)
}

fn write(conn: &Conn, msg: &Msg) -> Result<(), String> {
    conn.within(Instant::now() + WRITE_TIME)
        .and_then(|mut wire| labwire::write_msg(&mut wire, msg))
        .map_err(|e| format!("cannot reach the client: {e}"))
}

/// A last message, whatever becomes of it.
fn send(conn: &Conn, msg: &Msg) {
    let _ = write(conn, msg);
}
