//! A datagram socket under every model: echo answers each datagram in the thread that reads
//! it (in batches under the event model); a service that takes requests (files, exec) gets a
//! thread per request, at most [`REQUEST_THREADS`] at once (and --max-conns requests).

use std::io;
use std::net::SocketAddr;
use std::os::fd::AsFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use tracing::{debug, warn};

use crate::access::Identity;
use crate::endpoint::Proto;
use crate::service::datagram::DatagramEcho;
use crate::service::guard::{self, Guard, Verdict};
use crate::service::stats::Stats;
use crate::service::{Requests, Screen, Service, Unproven};
use crate::signal::{Shutdown, Signal, Wake};
use crate::transport::batch::{self, Batch};
use crate::transport::pktinfo::Arrival;
use crate::transport::unix::ReplyPath;
use crate::transport::{DatagramSocket, MAX_MESSAGE, PeerAddr, Received, Told};

use super::Server;
use super::admission::{SourceSlot, Sources};

/// Datagram requests served at once, whatever --max-conns says: each is a thread (and for
/// exec a program), and one source can send thousands of requests a second.
pub(crate) const REQUEST_THREADS: usize = 32;
/// Of those, the most for sources that have not proven themselves (TFTP's, until the
/// client's first answer): a flood of forged requests holds these and no more, so proven
/// transfers and netecho's own protocol (which proves a source before any thread) go on.
pub(crate) const UNPROVEN_THREADS: usize = 8;
/// Of those, the most one source holds at once, proven or not: an address (an IPv6
/// address's /64), or on this host a user, as connections are counted ([`Sources`]).
pub(crate) const REQUESTS_PER_SOURCE: usize = 8;

/// How often a datagram server blocked in recvfrom looks for a stop signal.
const SIGNAL_CHECK: Duration = Duration::from_millis(200);

/// Answers datagrams until a stop signal (every model but fork's parent; batched under the
/// event model); returns the signal.
///
/// The socket blocks in recvfrom (or recvmmsg) with a short SO_RCVTIMEO instead of a
/// poll before every read: two system calls per datagram, not three, which is most of a
/// loopback round trip. The signalfd is looked at between reads, at least every
/// [`SIGNAL_CHECK`], so a stop signal is noticed within that, even under load.
pub(crate) fn answer(
    sock: &DatagramSocket,
    mut echo: DatagramEcho,
    stats: &Stats,
    shutdown: &Shutdown,
    batched: bool,
) -> Result<Signal> {
    sock.set_nonblocking(false)?;
    sock.set_read_timeout(Some(SIGNAL_CHECK))?;
    say_reply_source(sock);
    let mut buf = Vec::new();
    let mut batch = None;
    if batched {
        batch = Some(glued_batch(sock));
    } else {
        buf = crate::service::datagram::buffer();
    }
    let mut next_check = Instant::now() + SIGNAL_CHECK;
    loop {
        // One clock read per turn, shared with the batch's peers (a datagram at a time in a
        // ping-pong: a read fewer per datagram), compared with the next check's time (no
        // subtraction per datagram).
        let now = Instant::now();
        if now >= next_check {
            if let Some(signal) = shutdown.wait_signal(Some(Duration::ZERO))? {
                echo.finish();
                return Ok(signal);
            }
            next_check = now + SIGNAL_CHECK;
            echo.peers.expire();
            echo.report_drops(false);
        }
        let answered = match batch.as_deref_mut() {
            Some(batch) => echo.answer_batch(sock, batch, stats, now),
            None => echo.answer_each(sock, &mut buf, stats),
        };
        if let Err(e) = answered {
            warn!("recvfrom: {e}");
            thread::sleep(Duration::from_millis(10));
        }
    }
}

/// The batch a batched server reads into: on UDP, glued receives (UDP_GRO) where the kernel
/// has them, so a burst from one sender costs one receive and its replies one send.
fn glued_batch(sock: &DatagramSocket) -> Box<Batch> {
    let mut batch = Box::<Batch>::default();
    if sock.proto() == Proto::Udp {
        match batch::receive_glued(sock.socket(), true) {
            Ok(()) => batch.set_glued(true),
            Err(e) => debug!("UDP_GRO: {e}; each datagram is read on its own"),
        }
    }
    batch
}

/// Each datagram is a request, handled on a thread of its own so a long transfer or a slow
/// program never holds up the next one. Threads are not waited for at a stop: a transfer has
/// its own socket and may take long, and programs end with the server.
pub(crate) fn requests<S: Service, R: Requests>(
    sock: &DatagramSocket,
    server: &Arc<Server<S>>,
    requests: R,
    shutdown: &Shutdown,
) -> Result<Signal> {
    sock.set_nonblocking(true)?;
    say_reply_source(sock);
    let requests = Arc::new(requests);
    // Request threads reply on a handle of their own; the socket file stays with `sock`.
    let replies = Arc::new(sock.try_clone().context("dup the datagram socket")?);
    let mut buf = vec![0u8; MAX_MESSAGE];
    let mut guard = Guard::new(server.request_guard, guard::own_address(sock));
    let running = Running::default();
    let bound = sock.local_sockaddr().ok().and_then(|a| a.as_socket());
    loop {
        if let Wake::Stop(signal) = shutdown.wait(sock.as_fd(), Some(Duration::from_secs(1)))? {
            return Ok(signal);
        }
        while let Some((from, n, mut told)) = next_request(sock, &mut buf) {
            let (arrival, held) = (told.arrival, told.held.take().map(Arc::new));
            if let Err(verdict) = guard.check(&from, told.cred.map(|(uid, _)| uid), &buf[..n]) {
                debug!("{from}: request dropped: {}", verdict.explain());
                warn_once(&from, verdict);
                continue;
            }
            // The address the datagram was sent to (a wildcard socket reads it with
            // IP_PKTINFO): a client connected to it names it, and sock_diag finds it by it.
            let local = match (arrival, bound) {
                (Some(arrival), Some(bound)) => Some(SocketAddr::new(arrival.to(), bound.port())),
                _ => bound,
            };
            // Told once: the rules and the count per source (by user on this host) both read it.
            let identity = server.admission.identify_sender(&from, local, told);
            if !server.admission.admits(&from, &identity) {
                continue;
            }
            let request = Request {
                from,
                arrival,
                held,
                data: buf[..n].to_vec(),
                running: Arc::clone(&running.all),
                unproven: None,
                source: None,
            };
            take(server, &requests, &replies, (request, &identity), &running);
        }
    }
}

/// Requests running: all of them, and those whose source has not proven itself.
struct Running {
    all: Arc<AtomicUsize>,
    unproven: Arc<AtomicUsize>,
    /// Requests running per source (an address, an IPv6 address's /64, or on this host the
    /// user owning the sender's socket): a proven source may still not take every thread.
    sources: Sources,
}

impl Default for Running {
    fn default() -> Running {
        Running {
            all: Arc::default(),
            unproven: Arc::default(),
            sources: Sources::new(REQUESTS_PER_SOURCE),
        }
    }
}

/// One request as the receive loop takes it, its sender told as `identity`: screened by the
/// service (answered at once, ignored, or given a thread), then started if the pool, its
/// source's share, and for a source not yet proven that pool's share, have room.
fn take<S: Service, R: Requests>(
    server: &Arc<Server<S>>,
    requests: &Arc<R>,
    replies: &Arc<DatagramSocket>,
    (mut request, identity): (Request, &Identity),
    running: &Running,
) {
    let from = &request.from;
    let unproven = match requests.screen(from, &request.data) {
        Screen::Serve => false,
        Screen::Unproven => true,
        Screen::Answer(reply) => {
            let flags = libc::MSG_DONTWAIT;
            let held = request.held.as_deref();
            let _ = replies.reply_to(&reply, from, request.arrival.as_ref(), held, flags);
            return;
        }
        Screen::Ignore(why) => {
            debug!("{from}: request ignored: {why}");
            return;
        }
    };
    let wire = (from, request.data.as_slice());
    let how = (request.arrival, request.held.as_deref());
    if running.all.load(Ordering::Relaxed) >= REQUEST_THREADS {
        return busy(requests, replies, wire, how, "too many requests at once");
    }
    if unproven && running.unproven.load(Ordering::Relaxed) >= UNPROVEN_THREADS {
        let why = "too many requests from sources not yet proven at once";
        return busy(requests, replies, wire, how, why);
    }
    let source = match running.sources.take_request(identity) {
        Ok(slot) => slot,
        Err(whose) => {
            let why = format!("too many requests {whose} at once");
            return busy(requests, replies, wire, how, &why);
        }
    };
    if server.admission.request(from) {
        request.unproven = unproven.then(|| Unproven::take(&running.unproven));
        request.source = source;
        start(server, requests, replies, request);
    }
}

/// On a socket bound to many addresses, the calls differ from the lesson's: said once, at
/// -v (a teacher's screen has nothing to do about it).
fn say_reply_source(sock: &DatagramSocket) {
    if sock.replies_from_destination() {
        debug!(
            "{}: bound to more than one address, so each datagram is read with its destination \
             (recvmsg, IP_PKTINFO) and answered from it (sendmsg), in place of recvfrom and sendto",
            sock.local()
        );
    }
}

/// A request for a thread: its sender, where it arrived, its sender's socket file when at a
/// path, its bytes, and the count of requests running.
struct Request {
    from: PeerAddr,
    arrival: Option<Arrival>,
    held: Option<Arc<ReplyPath>>,
    data: Vec<u8>,
    running: Arc<AtomicUsize>,
    /// Its place among requests from sources not yet proven, if it holds one.
    unproven: Option<Unproven>,
    /// Its place in its source's count (none for a Unix socket's sender).
    source: Option<SourceSlot>,
}

/// Logs a dropped request: every one from the server's own address (it would loop), the
/// others at most once a second.
fn warn_once(from: &PeerAddr, verdict: Verdict) {
    static LAST: std::sync::Mutex<Option<Instant>> = std::sync::Mutex::new(None);
    let mut last = LAST.lock().unwrap_or_else(|e| e.into_inner());
    if verdict == Verdict::Own || last.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
        *last = Some(Instant::now());
        warn!("{from}: request dropped, {}", verdict.explain());
    }
}

/// Answers "busy" to a request that cannot be served now, when the service has such an
/// answer and it is no larger than the request: the source has not proven itself, and a
/// larger answer would make this server an amplifier for a forged one.
fn busy<R: Requests>(
    requests: &Arc<R>,
    replies: &Arc<DatagramSocket>,
    (from, request): (&PeerAddr, &[u8]),
    (arrival, held): (Option<Arrival>, Option<&ReplyPath>),
    why: &str,
) {
    static LOG: crate::logging::Throttle = crate::logging::Throttle::new();
    if let Some(more) = LOG.allow() {
        warn!("{from}: busy: {why}{more}");
    }
    let reply = requests.busy_for(why, request);
    if let Some(reply) = reply.filter(|r| r.len() <= request.len()) {
        let _ = replies.reply_to(&reply, from, arrival.as_ref(), held, libc::MSG_DONTWAIT);
    }
}

/// The next datagram that can be a request: its sender, length and arrival; `None` when
/// none waits. A request sent to a group or a broadcast address is dropped: a transfer or
/// a program per member for one datagram, all answering the same sender, is an amplifier.
fn next_request(sock: &DatagramSocket, buf: &mut [u8]) -> Option<(PeerAddr, usize, Told)> {
    loop {
        let (received, from, told) = match sock.recv_request(buf) {
            Ok(got) => got,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return None,
            Err(e) => {
                warn!("recvfrom: {e}");
                return None;
            }
        };
        if let Some(to) = told.arrival.filter(|a| a.sent_to_many()).map(|a| a.to()) {
            // At most a line a second: a flood to the group must not flood the log.
            static LAST: std::sync::Mutex<Option<Instant>> = std::sync::Mutex::new(None);
            let mut last = LAST.lock().unwrap_or_else(|e| e.into_inner());
            if last.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
                *last = Some(Instant::now());
                warn!(
                    "{from}: a request sent to {to} (a group or broadcast) ignored: files and \
                     exec answer requests sent to this host alone"
                );
            }
            continue;
        }
        match received {
            Received::Data(n) if from.can_reply() => return Some((from, n, told)),
            _ => warn!("{from}: a request that is too large, or from an unbound socket; ignored"),
        }
    }
}

/// Starts an admitted request's thread; when none can be made, the client hears "busy".
fn start<S: Service, R: Requests>(
    server: &Arc<Server<S>>,
    requests: &Arc<R>,
    replies: &Arc<DatagramSocket>,
    request: Request,
) {
    let (mine, handler) = (Arc::clone(server), Arc::clone(requests));
    let (from, data, arrival) = (request.from.clone(), request.data.clone(), request.arrival);
    let held = request.held.clone();
    let running = Arc::clone(&request.running);
    running.fetch_add(1, Ordering::Relaxed);
    // The request's own handle: its replies leave from the address the request was sent to.
    let started = replies.for_request(arrival, held.clone()).and_then(|sock| {
        thread::Builder::new()
            .name("request".into())
            .spawn(move || {
                // Held until the request ends (a closure takes only the fields it names).
                let _source = request.source;
                match request.unproven {
                    Some(unproven) => {
                        handler.handle_unproven(&sock, &request.from, &request.data, unproven)
                    }
                    None => handler.handle(&sock, &request.from, &request.data),
                }
                mine.admission.release();
                request.running.fetch_sub(1, Ordering::Relaxed);
            })
    });
    if let Err(e) = started {
        running.fetch_sub(1, Ordering::Relaxed);
        let why = format!("the server cannot start a thread for it now ({e})");
        busy(
            requests,
            replies,
            (&from, &data),
            (arrival, held.as_deref()),
            &why,
        );
        server.admission.release();
    }
}
