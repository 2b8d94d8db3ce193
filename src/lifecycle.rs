//! What every long-running command (serve, relay) shares: its lines on stdout, the accept
//! loop that watches the stop signal beside the listener, and enough file descriptors for a
//! classroom of clients.

use std::io::{self, Write};
use std::os::fd::AsFd;
use std::time::Duration;

use anyhow::{Context, Result};
use nix::sys::resource::{Resource, getrlimit, setrlimit};
use tracing::{debug, warn};

use crate::signal::{Shutdown, Signal, Wake};
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
                    accept_failed(&e);
                    break;
                }
            };
            if let Some(signal) = on_conn(Some(conn)) {
                return Ok(signal);
            }
        }
    }
}

/// An accept error concerns one connection, or a limit: log it and go on, pausing when the
/// process is out of file descriptors so the loop does not spin.
pub(crate) fn accept_failed(err: &io::Error) {
    warn!("accept: {err}");
    if matches!(err.raw_os_error(), Some(libc::EMFILE | libc::ENFILE)) {
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A line on stdout, flushed at once: scripts and tests wait for it.
pub(crate) fn announce(line: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}")
        .and_then(|_| out.flush())
        .context("write to stdout")
}

/// The signal that ended a model's loop, for the closing lines.
pub(crate) fn stopped(wake: Wake) -> Option<Signal> {
    match wake {
        Wake::Stop(signal) => Some(signal),
        _ => None,
    }
}

/// File descriptors a server uses besides its connections: the listener, signalfd, epoll
/// instances, stdio.
const SPARE_FDS: u64 = 64;

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
    let needed = max_conns as u64 + SPARE_FDS;
    if now < needed {
        warn!(
            "--max-conns {max_conns} needs {needed} file descriptors, but the limit is {now}: \
             connections past about {} will fail; raise it (ulimit -Hn {needed}, as root) or \
             lower --max-conns",
            now.saturating_sub(SPARE_FDS)
        );
    }
}
