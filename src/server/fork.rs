//! The `fork` model: a process per connection, as inetd and `socat ... fork` do. The parent
//! only accepts; each child serves one client and exits. Counters live in shared memory
//! (`Stats::shared`) so the parent's summary includes the children's work.

use std::collections::HashSet;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::time::{Duration, Instant};

use anyhow::Result;
use nix::sys::prctl::set_pdeathsig;
use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::{ForkResult, Pid, fork, getpid, getppid};
use tracing::{debug, warn};

use crate::service::datagram::{DatagramEcho, DatagramRules};
use crate::service::stats::Stats;
use crate::service::{ConnEnd, Drive, Service, Session};
use crate::signal::Shutdown;
use crate::transport::{DatagramSocket, Listener};

use super::{Admission, Server};
use crate::lifecycle::accept_loop;

/// How often the parent collects exited children.
const REAP: Duration = Duration::from_millis(200);
/// How long children get to finish after SIGTERM before SIGKILL.
const GRACE: Duration = Duration::from_secs(2);

/// Accepts and forks a child per connection until a stop signal.
pub(crate) fn serve<S: Service>(
    listener: &Listener,
    server: &Server<S>,
    shutdown: &Shutdown,
) -> Result<Signal> {
    let mut children = Children::default();
    let signal = accept_loop(listener, shutdown, Some(REAP), |conn| {
        children.reap(Some(&server.admission));
        let session = server.admit(conn?, Drive::Blocking)?;
        let parent = getpid();
        // Safety: the fork model's parent runs no other thread (a QUIC endpoint runs in a
        // process of its own under fork), so the child starts with a consistent copy of
        // every lock and of the allocator, and inherits no socket another thread holds.
        match unsafe { fork() } {
            Ok(ForkResult::Child) => {
                Shutdown::restore_default();
                die_with_parent(parent);
                close_in_child(listener.as_fd().as_raw_fd());
                server.run_blocking(session);
                exit_child();
            }
            Ok(ForkResult::Parent { child }) => {
                narrate_fork(child);
                debug!("{}: served by process {child}", session.conn().peer());
                children.pids.insert(child);
                // The child has its own copy of the socket; the parent's is closed here.
                drop(session);
            }
            Err(e) => {
                warn!("fork: {e}; connection closed");
                server.finish(session, &ConnEnd::Failed(e.into()));
            }
        }
        None
    })?;
    children.stop(Some(&server.admission));
    Ok(signal)
}

/// A child process serves the datagram socket; the parent starts another if it dies.
pub(crate) fn serve_datagrams(
    sock: &DatagramSocket,
    rules: DatagramRules,
    stats: &Stats,
    shutdown: &Shutdown,
) -> Result<Signal> {
    let mut children = Children::default();
    let mut last_start = Instant::now() - Duration::from_secs(1);
    loop {
        children.reap_quietly();
        if children.pids.is_empty() {
            if last_start.elapsed() < Duration::from_secs(1) {
                warn!("the datagram child exited; starting another in a second");
                std::thread::sleep(Duration::from_secs(1));
            }
            last_start = Instant::now();
            let parent = getpid();
            // Safety: as above, the parent runs no other thread.
            match unsafe { fork() } {
                Ok(ForkResult::Child) => {
                    die_with_parent(parent);
                    // The child keeps the blocked signals and the inherited signalfd, which
                    // reads the signals sent to the child: it stops cleanly on SIGTERM.
                    let echo = DatagramEcho::new(
                        sock.proto(),
                        rules.clone(),
                        crate::service::guard::own_address(sock),
                    );
                    if let Err(e) = super::datagrams::answer(sock, echo, stats, shutdown, false) {
                        warn!("datagram child: {e:#}");
                    }
                    exit_child();
                }
                Ok(ForkResult::Parent { child }) => {
                    narrate_fork(child);
                    children.pids.insert(child);
                }
                Err(e) => warn!("fork: {e}"),
            }
        }
        if let Some(signal) = shutdown.wait_signal(Some(REAP))? {
            children.stop(None);
            return Ok(signal);
        }
    }
}

/// Narrates a fork in the parent: the child's own lines carry its pid from here on.
fn narrate_fork(child: nix::unistd::Pid) {
    if crate::explain::on() {
        crate::explain::line(format_args!("fork() = pid {child} (the child)"));
    }
}

/// A child gets SIGTERM when its parent ends, however it ends (SIGKILL, a crash): without
/// this a datagram child would serve the socket, and hold its port, forever after.
fn die_with_parent(parent: Pid) {
    if let Err(e) = set_pdeathsig(Signal::SIGTERM) {
        warn!("prctl(PR_SET_PDEATHSIG): {e}");
    }
    // The parent may have ended before the line above.
    if getppid() != parent {
        exit_child();
    }
}

/// Ends a child without running the parent's destructors, which would, for one, remove the
/// server's socket file. Output is flushed first.
fn exit_child() -> ! {
    use std::io::Write;
    let _ = std::io::stdout().flush();
    // Safety: _exit ends the process at once; nothing runs after it.
    unsafe { libc::_exit(0) }
}

/// The listener is the parent's: a child closes its copy so that only the parent accepts.
fn close_in_child(fd: RawFd) {
    // Safety: the child never uses or drops the listener again; it leaves with _exit.
    unsafe {
        libc::close(fd);
    }
    if crate::explain::on() {
        crate::explain::line(format_args!(
            "close(fd {fd}) = 0 (the child's copy of the listener)"
        ));
    }
}

#[derive(Default)]
struct Children {
    pids: HashSet<Pid>,
}

impl Children {
    /// Collects exited children, freeing their connection slots (if they hold any).
    fn reap(&mut self, admission: Option<&Admission>) {
        let before = self.pids.len();
        self.reap_quietly();
        for _ in self.pids.len()..before {
            if let Some(admission) = admission {
                admission.release();
            }
        }
    }

    fn reap_quietly(&mut self) {
        loop {
            match waitpid(None::<Pid>, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) | Err(_) => return,
                Ok(status) => {
                    if let Some(pid) = status.pid() {
                        self.pids.remove(&pid);
                    }
                    if !matches!(status, WaitStatus::Exited(_, 0)) {
                        debug!("child {status:?}");
                    }
                }
            }
        }
    }

    /// SIGTERM to every child, then SIGKILL to those still running after [`GRACE`].
    fn stop(&mut self, admission: Option<&Admission>) {
        for pid in &self.pids {
            let _ = kill(*pid, Signal::SIGTERM);
        }
        let deadline = Instant::now() + GRACE;
        while !self.pids.is_empty() && Instant::now() < deadline {
            self.reap(admission);
            std::thread::sleep(Duration::from_millis(10));
        }
        for pid in &self.pids {
            let _ = kill(*pid, Signal::SIGKILL);
        }
        self.reap(admission);
    }
}
