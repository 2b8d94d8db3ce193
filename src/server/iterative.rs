//! The `iterative` model: one client at a time, the accept loop around the service, as a
//! first socket lesson writes it. A second client is accepted only when the first leaves.
//!
//! A service that does not block (echo) is pumped on a non-blocking socket polled beside the
//! signalfd. One that blocks (files, exec) runs on a blocking socket in a thread of its own
//! while this thread waits beside the signalfd: a stop signal shuts its connection down.

use std::os::fd::AsFd;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::Result;
use nix::sys::eventfd::{EfdFlags, EventFd};
use tracing::warn;

use crate::service::{ConnEnd, Drive, Service, Session, Step};
use crate::signal::{Shutdown, Signal, Wake};
use crate::transport::{Listener, MAX_MESSAGE};

use super::Server;
use crate::lifecycle::accept_loop;

/// How long a session gets to finish after a stop signal shut its connection down.
const GRACE: Duration = Duration::from_secs(2);

/// Accepts and serves one connection after another until a stop signal. `blocking`: the
/// service blocks, and each session gets a thread (see `server::plan`).
pub(crate) fn serve<S: Service>(
    listener: &Listener,
    server: &Arc<Server<S>>,
    shutdown: &Shutdown,
    blocking: bool,
) -> Result<Signal> {
    let mut buf = vec![0u8; MAX_MESSAGE];
    accept_loop(listener, shutdown, None, |conn| {
        let conn = conn?;
        if blocking {
            let session = server.admit(conn, Drive::Blocking)?;
            return on_a_thread(server, session, shutdown);
        }
        let session = server.admit(conn, Drive::Polled)?;
        polled(server, session, shutdown, &mut buf)
    })
}

/// Serves a session on its non-blocking socket, polled beside the signalfd so SIGTERM is
/// noticed even while a client holds the server.
fn polled<S: Service>(
    server: &Server<S>,
    mut session: S::Session,
    shutdown: &Shutdown,
    buf: &mut [u8],
) -> Option<Signal> {
    if let Err(e) = session.conn().set_nonblocking(true) {
        server.finish(session, &ConnEnd::Failed(e));
        return None;
    }
    let mut stop = None;
    let ended = loop {
        let (read, write) = match session.pump(buf) {
            Step::Done(end) => break end,
            Step::Yield { .. } => continue,
            Step::Wait { read, write } => (read, write),
        };
        // A started frame's deadline may come before the idle timeout: then the pump after
        // the wait ends the connection, not the idle rule. A TLS handshake's may come first.
        let (wait, frame_due) = until_due(server.idle_timeout, session.deadline());
        let limit = session.conn().wait_limit(wait);
        match shutdown.wait_for(session.conn().as_fd(), read, write, limit) {
            Ok(Wake::Ready) => {}
            Ok(Wake::Timeout) => match session.conn().handshake_timeout() {
                Some(e) => break ConnEnd::Failed(e),
                None if frame_due || limit != wait => {}
                None => break ConnEnd::Idle,
            },
            Ok(Wake::Stop(signal)) => {
                stop = Some(signal);
                break ConnEnd::Stopped;
            }
            Err(e) => break ConnEnd::Failed(std::io::Error::other(e)),
        }
    };
    server.finish(session, &ended);
    stop
}

/// How long to wait on a client: the idle timeout, or less when a frame's deadline comes
/// first (and then true).
fn until_due(idle: Option<Duration>, deadline: Option<Instant>) -> (Option<Duration>, bool) {
    let Some(deadline) = deadline else {
        return (idle, false);
    };
    // Rounded up past the poll's millisecond, so the wait does not end just before it.
    let left = deadline.saturating_duration_since(Instant::now()) + Duration::from_millis(1);
    match idle {
        Some(idle) if idle < left => (Some(idle), false),
        _ => (Some(left), true),
    }
}

/// Serves a session that blocks on a thread of its own, and waits for it beside the
/// signalfd; on a stop signal its connection is shut down, so the session ends.
fn on_a_thread<S: Service>(
    server: &Arc<Server<S>>,
    session: S::Session,
    shutdown: &Shutdown,
) -> Option<Signal> {
    let handle = session.conn().socket().try_clone();
    let done = match EventFd::from_flags(EfdFlags::EFD_NONBLOCK | EfdFlags::EFD_CLOEXEC) {
        Ok(done) => Arc::new(done),
        Err(e) => {
            server.finish(session, &ConnEnd::Failed(e.into()));
            return None;
        }
    };
    let (mine, finished) = (Arc::clone(server), Arc::clone(&done));
    let started = thread::Builder::new().name("conn".into()).spawn(move || {
        mine.run_blocking(session);
        let _ = finished.write(1);
    });
    if let Err(e) = started {
        server.admission.release();
        warn!("cannot start a thread for a connection ({e}); it was closed");
        return None;
    }
    loop {
        match shutdown.wait(done.as_fd(), None) {
            Ok(Wake::Ready) => return None,
            Ok(Wake::Timeout) => {}
            Ok(Wake::Stop(signal)) => {
                server.stopping.store(true, Ordering::Relaxed);
                if let Ok(sock) = &handle {
                    let _ = sock.shutdown(std::net::Shutdown::Both);
                }
                wait_done(&done);
                return Some(signal);
            }
            Err(e) => {
                warn!("{e:#}");
                wait_done(&done);
                return None;
            }
        }
    }
}

/// Waits at most [`GRACE`] for a session's thread to say it is done.
fn wait_done(done: &EventFd) {
    let deadline = Instant::now() + GRACE;
    while Instant::now() < deadline {
        let mut fds = [nix::poll::PollFd::new(
            done.as_fd(),
            nix::poll::PollFlags::POLLIN,
        )];
        if let Ok(n) = nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(100u16))
            && n > 0
        {
            return;
        }
    }
}
