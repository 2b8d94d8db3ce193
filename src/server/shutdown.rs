//! SIGINT and SIGTERM as a file descriptor (signalfd), so a server waits for "a client is
//! ready" and "stop" in one poll(2) instead of being interrupted at a random point.

use std::os::fd::{AsFd, BorrowedFd};
use std::time::Duration;

use anyhow::{Context, Result};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};

/// What woke a waiting server.
#[derive(Debug, PartialEq, Eq)]
pub enum Wake {
    /// The socket has something to read (a connection to accept, a datagram).
    Readable,
    /// SIGINT or SIGTERM arrived.
    Stop(Signal),
    /// The timeout passed.
    Timeout,
}

pub struct Shutdown {
    fd: SignalFd,
}

impl Shutdown {
    /// Blocks SIGINT and SIGTERM and opens a signalfd for them. Call before starting any
    /// thread: threads inherit the blocked mask, so the signals only ever reach the fd.
    pub fn install() -> Result<Shutdown> {
        let mut mask = SigSet::empty();
        mask.add(Signal::SIGINT);
        mask.add(Signal::SIGTERM);
        mask.thread_block().context("block SIGINT and SIGTERM")?;
        let fd = SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
            .context("signalfd")?;
        Ok(Shutdown { fd })
    }

    /// Waits until `socket` is readable, a stop signal arrives, or `timeout` passes.
    pub fn wait(&self, socket: BorrowedFd<'_>, timeout: Option<Duration>) -> Result<Wake> {
        let timeout = match timeout {
            Some(t) => PollTimeout::try_from(t).unwrap_or(PollTimeout::MAX),
            None => PollTimeout::NONE,
        };
        let mut fds = [
            PollFd::new(self.fd.as_fd(), PollFlags::POLLIN),
            PollFd::new(socket, PollFlags::POLLIN),
        ];
        match poll(&mut fds, timeout) {
            Ok(0) => return Ok(Wake::Timeout),
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => return Ok(Wake::Timeout),
            Err(e) => return Err(e).context("poll"),
        }
        if fds[0].any().unwrap_or(false)
            && let Some(info) = self.fd.read_signal().context("read signalfd")?
        {
            let signal = Signal::try_from(info.ssi_signo as i32).unwrap_or(Signal::SIGTERM);
            return Ok(Wake::Stop(signal));
        }
        Ok(if fds[1].any().unwrap_or(false) {
            Wake::Readable
        } else {
            Wake::Timeout
        })
    }
}
