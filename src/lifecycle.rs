//! What every long-running command (serve, relay) shares: its lines on stdout, the accept
//! loop that watches the stop signal beside the listener, and enough file descriptors for a
//! classroom of clients.

use std::io::{self, IsTerminal, Write};
use std::os::fd::AsFd;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use nix::sys::resource::{Resource, getrlimit, setrlimit};
use tracing::{debug, warn};

use crate::logging::INDENT;
use crate::report::table::WIDTH;
use crate::signal::{Shutdown, Signal, Wake};
use crate::transport::tls::TlsEnd;
use crate::transport::{Conn, Listener};

/// Waits for connections and hands each to `on_conn` (and, every `tick`, `None`), until a
/// stop signal or until `on_conn` returns one; returns the signal.
pub(crate) fn accept_loop(
    listener: &Listener,
    shutdown: &Shutdown,
    tick: Option<Duration>,
    mut on_conn: impl FnMut(Option<Conn>) -> Option<Signal>,
) -> Result<Signal> {
    // Non-blocking, so a connection that vanishes between poll and accept cannot stall us.
    listener.set_nonblocking(true)?;
    loop {
        let wake = shutdown.wait(listener.as_fd(), tick)?;
        let ticked = wake == Wake::Timeout;
        if let Some(signal) = stopped(wake) {
            return Ok(signal);
        }
        if let Some(signal) = on_conn(None) {
            return Ok(signal);
        }
        // A tick is for on_conn's chores: no connection woke the wait, none to accept.
        if ticked {
            continue;
        }
        loop {
            let conn = match listener.accept() {
                Ok(conn) => conn,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if crate::transport::quic::endpoint_gone(&e) => return Err(e.into()),
                Err(e) => {
                    // This thread only accepts: it may wait out a lack of descriptors.
                    if accept_failed(&e) {
                        std::thread::sleep(ACCEPT_PAUSE);
                    }
                    break;
                }
            };
            if let Some(signal) = on_conn(Some(conn)) {
                return Ok(signal);
            }
        }
    }
}

/// How long the accepting thread, out of file descriptors, waits before it tries again
/// (event and uring loops leave their listener alone until their next sweep or tick).
pub(crate) const ACCEPT_PAUSE: Duration = Duration::from_millis(100);

/// The out-of-descriptors warning at most this often, however many loops meet it.
const FDS_WARN_EVERY: Duration = Duration::from_secs(10);

/// An accept error concerns one connection, or a limit: logs it (the process out of file
/// descriptors once in [`FDS_WARN_EVERY`]); true when out of descriptors, for the caller to
/// stop accepting for [`ACCEPT_PAUSE`] instead of meeting the error again at once.
pub(crate) fn accept_failed(err: &io::Error) -> bool {
    // Refused for too many TLS handshakes in progress: said already, in a throttled line.
    if crate::transport::tls::pending::is_full(err) {
        return false;
    }
    if !matches!(err.raw_os_error(), Some(libc::EMFILE | libc::ENFILE)) {
        warn!("accept: {err}");
        return false;
    }
    static LAST: Mutex<Option<Instant>> = Mutex::new(None);
    static SINCE: AtomicU64 = AtomicU64::new(0);
    let mut last = LAST.lock().unwrap_or_else(|e| e.into_inner());
    if last.is_some_and(|at| at.elapsed() < FDS_WARN_EVERY) {
        SINCE.fetch_add(1, Ordering::Relaxed);
        return true;
    }
    *last = Some(Instant::now());
    let more = match SINCE.swap(0, Ordering::Relaxed) {
        0 => String::new(),
        n => format!(" ({n} more times since the last such line)"),
    };
    warn!(
        "accept: {err}: out of file descriptors; new clients wait in the listen queue, \
         accepted as connections close{more}; raise ulimit -n or lower --max-conns"
    );
    true
}

/// What a server's reader gone means for one of its lines on stdout.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Reader {
    /// The `listening` line, which scripts and tests wait for: a server whose address nobody
    /// can read must say so, and fail.
    Needed,
    /// A line after it (what a lab serves, a stop's summary): a reader that took the line it
    /// wanted and left (`serve | head -1`) is a quiet end of this line, never an error.
    MayHaveLeft,
}

/// Writes `text` and a newline on stdout, flushed at once; a reader gone is an error or a
/// quiet end as `reader` says, and any other failure (a full disk) is stdout's, in one line.
fn write_line(text: &str, reader: Reader) -> Result<()> {
    let mut out = std::io::stdout().lock();
    let first = text.lines().next().unwrap_or_default();
    match writeln!(out, "{text}").and_then(|_| out.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe && reader == Reader::MayHaveLeft => Ok(()),
        // Not a client's quiet end (`| head -1`): said, and the server fails.
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => bail!(
            "stdout is closed (EPIPE), so `{first}` cannot be written; give netecho's output \
             a reader that stays open (a terminal, a file, `| cat`)"
        ),
        Err(e) => {
            Err(crate::error::stdout_write(e)).with_context(|| format!("cannot write `{first}`"))
        }
    }
}

/// `text` as a server's line shows it: to a pipe or a file whole, for scripts and grep; on
/// a terminal within [`WIDTH`] columns, wrapped at spaces, the lines after the first
/// indented.
fn fitted(text: &str) -> String {
    match io::stdout().is_terminal() {
        true => crate::wrap::lines(text, "", INDENT, WIDTH).join("\n"),
        false => text.to_string(),
    }
}

/// A server's line after its `listening` line (a lab port it announces, a stop's summary),
/// [`fitted`]: a reader that took what it wanted and left is a quiet end of it, so a stop
/// ends as it always does (`serve | head -1` stopped by SIGTERM exits 0).
pub(crate) fn announce(text: &str) -> Result<()> {
    write_line(&fitted(text), Reader::MayHaveLeft)
}

/// The `listening <proto> <address>` line (`what` is the protocol and the address), with the
/// SHA-256 fingerprint of a TLS server's certificate after `tls sha256`, as `openssl x509
/// -fingerprint -sha256` prints it: whole to a pipe or a file, where scripts read the
/// address and the fingerprint; on a terminal [`fitted`], the fingerprint (95 columns) in
/// two halves cut after a colon. A reader gone before it is an error: nobody learns where
/// the server is.
pub(crate) fn announce_listening(what: &str, tls: Option<&TlsEnd>) -> Result<()> {
    let Some((fingerprint, _)) = tls.and_then(|t| t.fingerprint()) else {
        return write_line(&fitted(&format!("listening {what}")), Reader::Needed);
    };
    let fingerprint = fingerprint.to_string();
    if !io::stdout().is_terminal() {
        let line = format!("listening {what} tls sha256 {fingerprint}");
        return write_line(&line, Reader::Needed);
    }
    let mut lines = crate::wrap::lines(&format!("listening {what} tls sha256"), "", INDENT, WIDTH);
    // Sixteen bytes of the 32 a line: `AB:` each.
    let (first, second) = fingerprint.split_at(16 * 3);
    lines.extend([format!("{INDENT}{first}"), format!("{INDENT}{second}")]);
    write_line(&lines.join("\n"), Reader::Needed)
}

/// The signal that ended a model's loop, for the closing lines.
pub(crate) fn stopped(wake: Wake) -> Option<Signal> {
    match wake {
        Wake::Stop(signal) => Some(signal),
        _ => None,
    }
}

/// File descriptors a server uses besides its connections: those open now (stdio, the
/// signalfd, a log file), its listeners, and each loop's epoll instance or ring and eventfds.
fn spare_fds() -> u64 {
    let open = std::fs::read_dir("/proc/self/fd").map_or(16, |dir| dir.count() as u64);
    let loops = std::thread::available_parallelism().map_or(1, |n| n.get() as u64);
    open + 4 + 3 * loops
}

/// Raises RLIMIT_NOFILE's soft limit to the hard limit, and says so in one line when even
/// that is too low for `max_conns` connections.
pub(crate) fn raise_nofile(max_conns: usize) {
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return;
    };
    if soft < hard {
        match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
            Ok(()) => debug!("RLIMIT_NOFILE raised from {soft} to {hard}"),
            Err(e) => warn!("cannot raise RLIMIT_NOFILE from {soft} to {hard}: {e}"),
        }
    }
    let (now, _) = getrlimit(Resource::RLIMIT_NOFILE).unwrap_or((soft, hard));
    let spare = spare_fds();
    let needed = max_conns as u64 + spare;
    if now < needed {
        warn!(
            "--max-conns {max_conns} needs {needed} file descriptors, but the limit is {now}: \
             connections past about {} will fail; raise it (ulimit -Hn {needed}, as root) or \
             lower --max-conns",
            now.saturating_sub(spare)
        );
    }
}
