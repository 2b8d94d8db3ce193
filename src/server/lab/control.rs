//! The lab server's control port: a thread per control connection, each one run's
//! dialogue: Hello, its place in the queue, its turn (the offer), Done, its account. Every
//! wait has a deadline; anything not understood gets one error and the connection closes.
//!
//! Connections that have not said Hello yet are counted apart ([`Greeters`]): per client
//! address at most [`GREETING_PER_ADDRESS`] or the runs one address may hold
//! (--lab-per-address), whichever is more (a class behind one NAT address starts its runs
//! at once), and [`MAX_GREETING`] in all; past that a new one is closed at once with nothing
//! sent, so silent connections from one address can neither fill the slots of runs that
//! said Hello nor lock other addresses out. With
//! `serve --lab --tls` every byte of the dialogue passes through the connection's TLS
//! session ([`crate::transport::Conn::within`]).

use std::collections::HashMap;
use std::net::IpAddr;
use std::os::fd::AsFd;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Result;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use tracing::{info, warn};

use crate::access::Access;
use crate::endpoint::Proto;
use crate::labwire::{self, Msg, Offer, ReadError, WireError};
use crate::lifecycle::accept_loop;
use crate::logging::Throttle;
use crate::signal::{Shutdown, Signal};
use crate::transport::Conn;

use super::Lab;
use super::class::{Ticket, Turn, millis};

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
/// The most a refused peer's leftover bytes are read for before the close.
const DRAIN: usize = 64 * 1024;
/// Control connection threads need little stack: a frame is at most 1 KiB.
const STACK: usize = 128 * 1024;

/// Connections that have not said Hello yet, per address and in all.
#[derive(Default)]
pub(crate) struct Greeters {
    per_ip: Mutex<HashMap<IpAddr, usize>>,
}

impl Greeters {
    /// Counts a new connection from `ip`; false when its address (`cap` of them), or
    /// the server, has as many as it takes.
    fn enter(&self, ip: IpAddr, cap: usize) -> bool {
        let mut per_ip = self.per_ip.lock().unwrap_or_else(|e| e.into_inner());
        let total: usize = per_ip.values().sum();
        let mine = per_ip.entry(ip).or_default();
        if *mine >= cap || total >= MAX_GREETING {
            if *mine == 0 {
                per_ip.remove(&ip);
            }
            return false;
        }
        *mine += 1;
        true
    }

    /// The connection from `ip` said Hello, or ended.
    fn leave(&self, ip: IpAddr) {
        let mut per_ip = self.per_ip.lock().unwrap_or_else(|e| e.into_inner());
        match per_ip.get_mut(&ip) {
            Some(n) if *n > 1 => *n -= 1,
            _ => {
                per_ip.remove(&ip);
            }
        }
    }
}

/// Accepts control connections until a stop signal; returns it.
pub(super) fn accept(
    listener: &crate::transport::Listener,
    lab: &Arc<Lab>,
    access: &Arc<Access>,
    shutdown: &Shutdown,
) -> Result<Signal> {
    static CLOSED: Throttle = Throttle::new();
    accept_loop(listener, shutdown, None, |conn| {
        let conn = conn?;
        if !access.admits_conn(Proto::Tcp, &conn) {
            lab.refused.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        let ip = conn.remote()?.ip().to_canonical();
        let cap = GREETING_PER_ADDRESS.max(lab.class.limits.per_address);
        if !lab.greeters.enter(ip, cap) {
            lab.refused.fetch_add(1, Ordering::Relaxed);
            if let Some(more) = CLOSED.allow() {
                warn!(
                    "lab {}: closed at once: {cap} connections from {ip} (or {MAX_GREETING} \
                     in all) have not said Hello yet{more}",
                    conn.peer()
                );
            }
            return None;
        }
        if lab.control.fetch_add(1, Ordering::Relaxed) >= lab.max_control() {
            lab.control.fetch_sub(1, Ordering::Relaxed);
            lab.greeters.leave(ip);
            lab.refused.fetch_add(1, Ordering::Relaxed);
            warn!(
                "lab {}: refused, {} control connections open",
                conn.peer(),
                lab.max_control()
            );
            refuse_quickly(&conn, "the lab server is full; try again in a minute");
            return None;
        }
        spawn_dialogue(conn, lab, ip);
        None
    })
}

fn spawn_dialogue(conn: Conn, lab: &Arc<Lab>, ip: IpAddr) {
    let lab_run = Arc::clone(lab);
    let spawned = std::thread::Builder::new()
        .name("lab-control".into())
        .stack_size(STACK)
        .spawn(move || {
            dialogue(&conn, &lab_run, ip);
            lab_run.control.fetch_sub(1, Ordering::Relaxed);
        });
    if let Err(e) = spawned {
        lab.control.fetch_sub(1, Ordering::Relaxed);
        lab.greeters.leave(ip);
        warn!("lab: cannot start a control thread: {e}");
    }
}

/// One line to a client past the limit, without waiting on it: the accept loop must not.
fn refuse_quickly(conn: &Conn, why: &str) {
    let _ = conn.set_nonblocking(true);
    let _ = conn.send_some(&Msg::Error(why.into()).encode());
}

/// One control connection, start to end. `ip` is the connection's own peer address (what
/// the kernel says, never what the client claims).
fn dialogue(conn: &Conn, lab: &Lab, ip: IpAddr) {
    let peer = conn.peer().to_string();
    let said = hello(conn);
    lab.greeters.leave(ip);
    if let Err(why) = said {
        info!("lab {peer}: {why}");
        return;
    }
    let ticket = match lab.class.join(ip) {
        Ok(ticket) => ticket,
        Err(why) => {
            lab.refused.fetch_add(1, Ordering::Relaxed);
            warn!("lab {peer}: refused: {why}");
            send(conn, &Msg::Error(why));
            return;
        }
    };
    let ended = run(conn, lab, &ticket, ip);
    let account = lab.class.leave(&ticket);
    match (ended, account) {
        (Ok(()), Some(account)) => {
            lab.runs.fetch_add(1, Ordering::Relaxed);
            info!(
                "lab run {} from {peer}: waited {:.1} s, measured {:.1} s beside {} other runs \
                 (at most {} at once)",
                ticket.run,
                f64::from(account.waited_ms) / 1000.0,
                f64::from(account.measured_ms) / 1000.0,
                account.shared_with,
                account.most_at_once
            );
            send(conn, &Msg::Account(account));
        }
        (Ok(()), None) => {}
        (Err(why), _) => {
            info!("lab run {} from {peer}: {why}", ticket.run);
            send(conn, &Msg::Error(why));
        }
    }
}

/// Reads the first frame. A lab client of another version gets an Error frame naming both
/// versions; anything else (an HTTP request, nc, silence) gets one line of text, which is
/// what such a peer can read.
fn hello(conn: &Conn) -> Result<(), String> {
    let mut wire = conn
        .within(Instant::now() + HELLO_TIME)
        .map_err(|e| e.to_string())?;
    let refusal = match labwire::read_frame(&mut wire) {
        Ok(body) => match Msg::decode_hello(&body) {
            Ok(_) => return Ok(()),
            Err(WireError::Version(v)) => {
                let why = WireError::Version(v).to_string();
                send(conn, &Msg::Error(why.clone()));
                return Err(why);
            }
            Err(e) => e.to_string(),
        },
        Err(ReadError::Wire(WireError::Tls)) => "a TLS ClientHello, and it speaks plain TCP \
                                                 (leave out --tls, or serve --lab --tls)"
            .into(),
        Err(ReadError::Wire(e)) => e.to_string(),
        Err(ReadError::Timeout) => format!(
            "nothing said within {} s of connecting",
            HELLO_TIME.as_secs()
        ),
        Err(e) => return Err(e.to_string()),
    };
    let line = format!(
        "error: this is a netecho lab server (control protocol {}) and it got {refusal}; \
         measure with `netecho lab HOST`\n",
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
fn run(conn: &Conn, lab: &Lab, ticket: &Ticket, ip: IpAddr) -> Result<(), String> {
    let (others, waited) = wait_turn(conn, lab, ticket)?;
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
    write(conn, &Msg::Go(offer))?;
    info!(
        "lab run {} from {ip}: measuring beside {others} other runs, after {:.1} s in the queue",
        ticket.run,
        waited.as_secs_f64()
    );
    let mut wire = conn
        .within(Instant::now() + limits.max_time)
        .map_err(|e| e.to_string())?;
    match labwire::read_msg(&mut wire) {
        Ok(Msg::Done) => Ok(()),
        Ok(other) => Err(format!("a control message out of turn ({other:?})")),
        Err(ReadError::Timeout) => Err(format!(
            "the run took longer than {} s (serve --lab-max-time); its turn went to the next run",
            limits.max_time.as_secs()
        )),
        Err(e) => Err(e.to_string()),
    }
}

/// Tells a waiting run its place whenever it changes and every [`QUEUE_TICK`]; gives up
/// when the client is gone or says anything.
fn wait_turn(conn: &Conn, lab: &Lab, ticket: &Ticket) -> Result<(usize, Duration), String> {
    let mut told = None;
    let mut last = Instant::now();
    loop {
        match lab.class.wait_turn(ticket, Duration::from_millis(500)) {
            Turn::Go { others, waited } => return Ok((others, waited)),
            Turn::Waiting { place, measuring } => {
                if told.is_none() {
                    info!(
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
    let mut fds = [PollFd::new(conn.as_fd(), PollFlags::POLLIN)];
    matches!(poll(&mut fds, PollTimeout::ZERO), Ok(n) if n > 0)
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
