//! A flow: one client of the relay (a connection, or a datagram sender) and the relay's own
//! socket to TO, joined by two directions ([`Link`]s). Readers push what they read into a
//! direction; the flow ends when both writers are done, with one summary line.

use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tracing::{debug, info, warn};

use crate::endpoint::{Proto, SocketKind, Target};
use crate::error::{Call, Subject, socket_error};
use crate::transport::Conn;
use crate::transport::framing::FrameError;
use crate::transport::message::{MessageRecv, Next, Receiver, RecvError};

use super::link::{DirStats, Link};

/// How often a blocked reader looks up to see whether its flow is closing.
pub(crate) const TICK: Duration = Duration::from_millis(200);
/// Once a datagram side has nothing more to send, how long the flow waits for late replies.
const LINGER: Duration = Duration::from_secs(1);
/// Bytes one read takes from a socket.
const READ: usize = 64 * 1024;

/// One client's passage through the relay.
pub(crate) struct Flow {
    pub id: u64,
    /// Who the client is and where the flow goes, for the summary line.
    pub name: String,
    pub up: Arc<DirStats>,
    pub down: Arc<DirStats>,
    closing: AtomicBool,
    /// A datagram side will send no more (its sender is done); replies may still come.
    datagram_done: AtomicBool,
    writers_left: AtomicUsize,
    finished: AtomicBool,
    /// The flow's sockets, shut down when it is closed early and released when it ends.
    socks: Mutex<Vec<Arc<Conn>>>,
    started: Instant,
    /// Milliseconds since `started` of the last message either way.
    last_active: AtomicU64,
    /// --idle-timeout in milliseconds (0: none).
    idle_limit: AtomicU64,
    /// TO, as an error names it.
    to: Subject,
    /// TO refused a datagram of this flow, and it was said (once a flow).
    refused: AtomicBool,
}

impl Flow {
    pub(crate) fn new(id: u64, from: Proto, client: &str, to: &Target) -> Arc<Flow> {
        Arc::new(Flow {
            id,
            name: format!("flow {id} {from} {client} -> {to}"),
            up: Arc::default(),
            down: Arc::default(),
            closing: AtomicBool::new(false),
            datagram_done: AtomicBool::new(false),
            writers_left: AtomicUsize::new(2),
            finished: AtomicBool::new(false),
            socks: Mutex::new(Vec::new()),
            started: Instant::now(),
            last_active: AtomicU64::new(0),
            idle_limit: AtomicU64::new(0),
            to: to.into(),
            refused: AtomicBool::new(false),
        })
    }

    /// TO, as an error names it.
    pub(crate) fn to(&self) -> Subject {
        self.to.clone()
    }

    /// Says that TO refused a datagram (`e`, from a send or a recv on the flow's socket to
    /// TO: ICMP port unreachable, nothing listening there), once a flow, not once a datagram:
    /// the flow goes on, as a server may yet start there. Only while TO has not answered the
    /// flow: a port that stops answering later, as a TFTP transfer's does at its end, is said
    /// at -v. At most ten lines a second in all: forged sources make flows at will.
    pub(crate) fn refused(&self, e: &io::Error) {
        let answered = self.down.messages_in.load(Ordering::Relaxed) > 0;
        if answered || self.refused.swap(true, Ordering::Relaxed) {
            return debug!("{}: {e}", self.name);
        }
        static LOG: crate::logging::Throttle = crate::logging::Throttle::new();
        if let Some(more) = LOG.allow() {
            warn!(
                "{}: {:#} (said once a flow: its datagrams are lost until a server is \
                 there){more}",
                self.name,
                socket_error(Call::Send, self.to(), e)
            );
        }
    }

    pub(crate) fn hold(&self, conn: &Arc<Conn>) {
        self.socks.lock().unwrap().push(Arc::clone(conn));
    }

    /// Ends the flow early: readers and writers blocked on its sockets return. False when
    /// it was closing already.
    pub(crate) fn close(&self) -> bool {
        if self.closing.swap(true, Ordering::Relaxed) {
            return false;
        }
        let socks = self.socks.lock().unwrap();
        self.count_at_sockets(&socks);
        for conn in socks.iter() {
            let _ = conn.socket().shutdown(std::net::Shutdown::Both);
        }
        true
    }

    /// Counts what the kernel dropped at the flow's datagram socket to TO, its receive buffer
    /// full (SO_MEMINFO's drop count, the one SO_RXQ_OVFL reports): replies lost before the
    /// relay read them; and what that socket left out as another user's (TO on this host).
    /// Read once, as the flow ends, so reading costs nothing per message. A client on FROM
    /// held here is a connection, never a datagram socket.
    fn count_at_sockets(&self, socks: &[Arc<Conn>]) {
        let datagram = || (socks.iter()).filter(|conn| conn.kind() == SocketKind::Datagram);
        let dropped: u64 = datagram()
            .filter_map(|conn| conn.drops().ok())
            .map(u64::from)
            .sum();
        self.down
            .kernel_dropped
            .fetch_max(dropped, Ordering::Relaxed);
        let others: u64 = datagram().map(|conn| conn.left_out_as_others()).sum();
        self.down.others.fetch_max(others, Ordering::Relaxed);
    }

    /// Ends the flow for --idle-timeout, with one line saying `why`, whichever of its
    /// threads notices first.
    pub(crate) fn close_idle(&self, why: std::fmt::Arguments<'_>) {
        if self.close() {
            info!("{}: {why}; closed", self.name);
        }
    }

    /// Whether a writer blocked this long, taking nothing, has passed --idle-timeout: a
    /// peer that does not read holds the flow no longer than one that sends nothing.
    pub(crate) fn stalled(&self, blocked: Duration) -> bool {
        let limit = self.idle_limit.load(Ordering::Relaxed);
        limit > 0 && blocked >= Duration::from_millis(limit)
    }

    pub(crate) fn closing(&self) -> bool {
        self.closing.load(Ordering::Relaxed)
    }

    pub(crate) fn finished(&self) -> bool {
        self.finished.load(Ordering::Relaxed)
    }

    pub(crate) fn datagram_side_done(&self) {
        self.datagram_done.store(true, Ordering::Relaxed);
    }

    pub(crate) fn touch(&self) {
        let ms = self.started.elapsed().as_millis() as u64;
        self.last_active.store(ms, Ordering::Relaxed);
    }

    /// Closes the flow once nothing went either way for `limit`: no message read, no byte
    /// written, no writer unblocked.
    pub(crate) fn limit_idle(&self, limit: Option<Duration>) {
        let ms = limit.map_or(0, |d| d.as_millis().max(1) as u64);
        self.idle_limit.store(ms, Ordering::Relaxed);
    }

    fn idle_expired(&self) -> bool {
        let limit = self.idle_limit.load(Ordering::Relaxed);
        limit > 0 && self.idle_for() >= Duration::from_millis(limit)
    }

    pub(crate) fn idle_for(&self) -> Duration {
        let last = Duration::from_millis(self.last_active.load(Ordering::Relaxed));
        self.started.elapsed().saturating_sub(last)
    }

    /// Called by each writer as it stops; the last one ends the flow.
    pub(crate) fn writer_done(&self) {
        if self.writers_left.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.closing.store(true, Ordering::Relaxed);
            let mut socks = self.socks.lock().unwrap();
            self.count_at_sockets(&socks);
            socks.clear();
            drop(socks);
            self.finished.store(true, Ordering::Relaxed);
            // A line per flow, and forged sources make flows at will: at most ten a second.
            static ENDED: crate::logging::Throttle = crate::logging::Throttle::new();
            if let Some(more) = ENDED.allow_debug() {
                debug!("{}{more}", self.summary());
            }
        }
    }

    /// The flow's line: what went each way and what the simulated conditions did to it.
    pub(crate) fn summary(&self) -> String {
        format!(
            "{}: up {}. down {}.",
            self.name,
            self.up.line(),
            self.down.line()
        )
    }

    /// Whether a reader should stop: the flow is closing, or a datagram side is done and
    /// nothing came for a while.
    pub(crate) fn over(&self) -> bool {
        self.closing() || (self.datagram_done.load(Ordering::Relaxed) && self.idle_for() > LINGER)
    }
}

/// Reads `conn` until its end and pushes each message its carrier cuts (a read on a bare
/// stream, a frame on a framed one) into `link`; then ends the link.
pub(crate) fn read_into(conn: &Conn, mut messages: Receiver, link: &Link, flow: &Flow) {
    if let Err(e) = conn.set_read_timeout(Some(TICK)) {
        warn!("{}: SO_RCVTIMEO: {e}", flow.name);
    }
    let mut buf = vec![0u8; READ];
    while !flow.over() {
        let message = match messages.recv(conn, &mut buf) {
            Ok(Next::Message(message)) => message,
            Ok(Next::Closed) => break,
            Ok(Next::Truncated(n)) => {
                warn!(
                    "{}: a {n}-byte message was truncated; not relayed",
                    flow.name
                );
                continue;
            }
            Err(RecvError::Io(e))
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) =>
            {
                if flow.idle_expired() {
                    flow.close_idle(format_args!("idle for --idle-timeout"));
                    break;
                }
                continue;
            }
            // A datagram server that is not there (ICMP port unreachable): not the end.
            Err(RecvError::Io(e)) if e.kind() == io::ErrorKind::ConnectionRefused => {
                flow.refused(&e);
                continue;
            }
            // On a datagram socket an error reports an earlier datagram's fate (an ICMP
            // error: a host or network unreachable, a packet too big for the path), once: a
            // loss, not the end.
            Err(RecvError::Io(e))
                if conn.kind() == SocketKind::Datagram && e.raw_os_error().is_some() =>
            {
                debug!("{}: recv: {e}", flow.name);
                continue;
            }
            Err(RecvError::Io(e)) => {
                debug!("{}: recv: {e}", flow.name);
                break;
            }
            Err(RecvError::Frame(e @ FrameError::TooLong { .. })) => {
                warn!("{}: {e}{}; closing the flow", flow.name, e.max_frame_hint());
                flow.close();
                break;
            }
            Err(e) => {
                warn!("{}: {e}", flow.name);
                break;
            }
        };
        if flow.closing() {
            break;
        }
        flow.touch();
        if !link.push(message.to_vec()) {
            break;
        }
    }
    link.end();
}
