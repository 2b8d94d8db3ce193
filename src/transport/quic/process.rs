//! A server's QUIC endpoint in a process of its own, for the fork model. The parent that
//! forks a child per connection then runs no other thread: a child of a multi-threaded
//! parent may find a lock (the allocator's, stderr's, a runtime's) held forever by a thread
//! that does not exist in it, and it inherits every socket those threads hold. Here the
//! children inherit none of the QUIC side's sockets, so each one reads the end of its
//! connection as soon as the endpoint process closes its side of the pair.

use std::os::fd::{AsRawFd, RawFd};
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use nix::sys::signal::Signal;
use nix::unistd::{ForkResult, Pid, fork, getpid, getppid};
use socket2::Socket;
use tokio::io::unix::AsyncFd;

use super::QuicMode;

/// How long the parent waits for the endpoint process to say it is ready.
const READY: Duration = Duration::from_secs(10);
/// The first message on the hand-off pair: the endpoint runs (else an error's text follows
/// another byte).
const STARTED: u8 = 0;

/// What the endpoint process needs to run the endpoint.
pub(super) struct Endpoint {
    /// The server's count of connections per source, kept in this process.
    pub places: Option<super::Places>,
    pub sock: std::net::UdpSocket,
    pub server: quinn::ServerConfig,
    pub handoff: Socket,
    pub mode: QuicMode,
    /// A stream's limit from its first byte to its end (see `QuicOptions::message_time`).
    pub message_time: Option<Duration>,
}

/// Forks the endpoint process, which serves QUIC and hands each connection over `accepted`'s
/// pair; returns once it runs. Refused when this process already runs another thread.
pub(super) fn spawn(end: Endpoint, accepted: &Socket) -> Result<Pid> {
    let threads = std::fs::read_dir("/proc/self/task").map_or(1, Iterator::count);
    if threads > 1 {
        return Err(anyhow!(
            "the QUIC endpoint of the fork model must start before any other thread ({threads} \
             run); use --model threads or event for QUIC"
        ));
    }
    let parent = getpid();
    // Safety: this process runs one thread (checked above), so the child starts with a
    // consistent copy of every lock and of the allocator.
    match unsafe { fork() }.context("fork for the QUIC endpoint")? {
        ForkResult::Child => run(end, parent, accepted.as_raw_fd()),
        ForkResult::Parent { child } => {
            // The parent keeps none of the endpoint's sockets.
            drop(end);
            wait_ready(accepted).map(|()| child)
        }
    }
}

/// The endpoint process: serves until the server closes its end of the hand-off pair (it
/// stopped, or died), or a signal ends it as it ends the server's other children.
fn run(end: Endpoint, parent: Pid, accepted: RawFd) -> ! {
    crate::signal::Shutdown::restore_default();
    let _ = nix::sys::prctl::set_pdeathsig(Signal::SIGTERM);
    if getppid() != parent {
        leave(0);
    }
    // Safety: the server's end of the pair is the parent's; this process never uses it.
    unsafe { libc::close(accepted) };
    let code = match serve(end) {
        Ok(()) => 0,
        Err(e) => {
            tracing::warn!("the QUIC endpoint process: {e:#}");
            1
        }
    };
    leave(code)
}

fn serve(end: Endpoint) -> Result<()> {
    let watch = end.handoff.try_clone()?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the QUIC runtime")?;
    rt.block_on(async move {
        let started = super::start(
            end.sock,
            end.server,
            end.handoff,
            (end.mode, end.message_time),
            // The fork model serves every source: only the lab's endpoint is gated.
            (None, end.places),
        );
        let started = started.await;
        let endpoint = match started {
            Ok(endpoint) => endpoint,
            Err(e) => {
                let mut msg = vec![STARTED + 1];
                msg.extend_from_slice(e.to_string().as_bytes());
                let _ = watch.send(&msg);
                return Err(e.into());
            }
        };
        watch.send(&[STARTED])?;
        // The server never writes on the pair: readable means its end is closed.
        // Safety: the socket owns its descriptor, open until the AsyncFd drops it.
        let watch = unsafe { AsyncFd::register(watch) }?;
        let _ = watch.readable().await?;
        endpoint.close(0u32.into(), b"server stopped");
        Ok(())
    })
}

/// Waits for the endpoint process's first message: it runs, or why it does not.
fn wait_ready(accepted: &Socket) -> Result<()> {
    accepted.set_read_timeout(Some(READY))?;
    let mut buf = [0u8; 512];
    let n = std::io::Read::read(&mut &*accepted, &mut buf)
        .context("the QUIC endpoint process did not start")?;
    accepted.set_read_timeout(None)?;
    match buf[..n] {
        [STARTED] => Ok(()),
        [] => Err(anyhow!("the QUIC endpoint process ended at start")),
        _ => Err(anyhow!("{}", String::from_utf8_lossy(&buf[1..n]))),
    }
}

/// Ends the endpoint process without running the server's destructors (its socket file,
/// its temporary files are the parent's).
fn leave(code: i32) -> ! {
    // Safety: _exit ends the process at once; nothing runs after it.
    unsafe { libc::_exit(code) }
}
