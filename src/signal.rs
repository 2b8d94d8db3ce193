//! SIGINT, SIGTERM and SIGHUP as a file descriptor (signalfd), so a server waits for "a
//! client is ready" and "stop" in one poll(2) instead of being interrupted at a random point.
//! SIGHUP (a closed terminal, a dropped ssh session) stops as SIGTERM does, cleaning up.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Duration;

use anyhow::{Context, Result};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::SigSet;
use nix::sys::signalfd::{SfdFlags, SignalFd};

/// A signal, as a stop is told: SIGINT, SIGTERM or SIGHUP. Displays as its name ("SIGTERM").
pub(crate) use nix::sys::signal::Signal;

/// What woke a waiting server.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Wake {
    /// The socket is ready: something to read (a connection, a datagram), or room to write.
    Ready,
    /// SIGINT, SIGTERM or SIGHUP arrived.
    Stop(Signal),
    /// The timeout passed.
    Timeout,
}

pub(crate) struct Shutdown {
    fd: SignalFd,
}

impl Shutdown {
    /// Blocks the stop signals and opens a signalfd for them. Call before starting any
    /// thread: threads inherit the blocked mask, so the signals only ever reach the fd.
    pub(crate) fn install() -> Result<Shutdown> {
        let fd = SignalFd::with_flags(
            &Self::signals(),
            SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC,
        )
        .context("signalfd")?;
        Self::signals()
            .thread_block()
            .context("block SIGINT, SIGTERM and SIGHUP")?;
        Ok(Shutdown { fd })
    }

    /// A Shutdown no signal reaches, for loops inside a server whose own loop watches the
    /// signals and ends the process (`serve --lab`'s echo ports).
    pub(crate) fn never() -> Result<Shutdown> {
        let fd = SignalFd::with_flags(
            &SigSet::empty(),
            SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC,
        )
        .context("signalfd")?;
        Ok(Shutdown { fd })
    }

    /// SIGTERM, and SIGINT and SIGHUP unless they came ignored: a background job of a
    /// script inherits SIGINT (and SIGQUIT, never caught here) ignored so that a Ctrl-C meant
    /// for the job in the foreground spares it, and shells keep it so; nohup(1) ignores
    /// SIGHUP so that a closed terminal spares its program. A blocked signal is queued even
    /// when ignored, so such a signal is then neither blocked nor read.
    fn signals() -> SigSet {
        let mut mask = SigSet::empty();
        for signal in [Signal::SIGINT, Signal::SIGHUP] {
            if !inherited_ignored(signal) {
                mask.add(signal);
            }
        }
        mask.add(Signal::SIGTERM);
        mask
    }

    /// Lets the stop signals end this thread's process again, as they do by default: for a
    /// child process that has no loop to notice them.
    pub(crate) fn restore_default() {
        let _ = Self::signals().thread_unblock();
    }

    /// Waits for a stop signal and returns it; `None` when `timeout` passed first.
    pub(crate) fn wait_signal(&self, timeout: Option<Duration>) -> Result<Option<Signal>> {
        let timeout = match timeout {
            Some(t) => PollTimeout::try_from(t).unwrap_or(PollTimeout::MAX),
            None => PollTimeout::NONE,
        };
        self.signal_within(
            &mut [PollFd::new(self.fd.as_fd(), PollFlags::POLLIN)],
            timeout,
        )
    }

    /// Waits for a stop signal and returns it; `None` once `other` is readable (a
    /// server's own reason to end), unnarrated as a wait for the signal alone is.
    pub(crate) fn wait_signal_or(&self, other: BorrowedFd<'_>) -> Result<Option<Signal>> {
        loop {
            let mut fds = [
                PollFd::new(self.fd.as_fd(), PollFlags::POLLIN),
                PollFd::new(other, PollFlags::POLLIN),
            ];
            if let Some(signal) = self.signal_within(&mut fds, PollTimeout::NONE)? {
                return Ok(Some(signal));
            }
            if fds[1].any().unwrap_or(false) {
                return Ok(None);
            }
        }
    }

    /// Polls `fds` (the signalfd first) for up to `timeout`; the signal, if one came.
    fn signal_within(
        &self,
        fds: &mut [PollFd<'_>],
        timeout: PollTimeout,
    ) -> Result<Option<Signal>> {
        match poll(fds, timeout) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(e).context("poll"),
        }
        Ok(self
            .fd
            .read_signal()
            .context("read signalfd")?
            .map(|info| Signal::try_from(info.ssi_signo as i32).unwrap_or(Signal::SIGTERM)))
    }

    /// Waits until `socket` is readable, a stop signal arrives, or `timeout` passes.
    pub(crate) fn wait(&self, socket: BorrowedFd<'_>, timeout: Option<Duration>) -> Result<Wake> {
        self.wait_for(socket, true, false, timeout)
    }

    /// Waits until `socket` is readable (if `read`) or writable (if `write`), a stop signal
    /// arrives, or `timeout` passes.
    pub(crate) fn wait_for(
        &self,
        socket: BorrowedFd<'_>,
        read: bool,
        write: bool,
        timeout: Option<Duration>,
    ) -> Result<Wake> {
        let timeout = match timeout {
            Some(t) => PollTimeout::try_from(t).unwrap_or(PollTimeout::MAX),
            None => PollTimeout::NONE,
        };
        let mut interest = PollFlags::empty();
        interest.set(PollFlags::POLLIN, read);
        interest.set(PollFlags::POLLOUT, write);
        let mut fds = [
            PollFd::new(self.fd.as_fd(), PollFlags::POLLIN),
            PollFd::new(socket, interest),
        ];
        match poll(&mut fds, timeout) {
            Ok(0) => return Ok(Wake::Timeout),
            Ok(n) if crate::explain::on() => narrate_poll(&fds, n, timeout),
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
            Wake::Ready
        } else {
            Wake::Timeout
        })
    }
}

/// Whether `signal` is ignored (SIG_IGN), as a parent may leave it to an exec'd program.
fn inherited_ignored(signal: Signal) -> bool {
    // SAFETY: an all-zero sigaction is a valid value to be written over; with a null new
    // action, sigaction(2) only reads the current one.
    let mut now: libc::sigaction = unsafe { std::mem::zeroed() };
    let read = unsafe { libc::sigaction(signal as libc::c_int, std::ptr::null(), &mut now) };
    read == 0 && now.sa_sigaction == libc::SIG_IGN
}

/// The first stop signal that [`stop_gently`] saw (its number; 0 before one came).
static ASKED: AtomicI32 = AtomicI32::new(0);

/// Watches the stop signals from a thread of its own, for work that ends in its own time
/// (bench ends its load, then prints what ran): the first is only noted, for
/// [`stop_asked`]; a second ends the process at once, after `last` (the clean-up that
/// cannot wait), with the first's exit status. Call before starting any other thread.
pub(crate) fn stop_gently(last: impl Fn() + Send + 'static) -> Result<()> {
    let shutdown = Shutdown::install()?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            while let Ok(got) = shutdown.wait_signal(None) {
                let Some(signal) = got else { continue };
                match stop_asked() {
                    None => ASKED.store(signal as i32, Ordering::SeqCst),
                    Some(first) => {
                        last();
                        // Not eprintln: stderr may be a closed pipe, and the exit must come.
                        let line = format!("netecho: {signal} again: stopped at once\n");
                        let _ = std::io::Write::write_all(&mut std::io::stderr(), line.as_bytes());
                        std::process::exit(exit_status(first).into());
                    }
                }
            }
        })
        .context("cannot start the thread that watches for Ctrl-C")?;
    Ok(())
}

/// The stop signal [`stop_gently`] noted, if one came.
pub(crate) fn stop_asked() -> Option<Signal> {
    match ASKED.load(Ordering::SeqCst) {
        0 => None,
        n => Signal::try_from(n).ok(),
    }
}

/// The exit status of a process that `signal` stopped, as a shell reports one it killed:
/// 128 + its number (130 for SIGINT, 143 for SIGTERM, 129 for SIGHUP).
pub(crate) fn exit_status(signal: Signal) -> u8 {
    128 + signal as u8
}

/// Ends the process as `signal` ends a program that does not catch it, once a client has
/// cleaned up after it: killed by it, so a shell sees 128 plus its number (130, 143), as
/// for a client that never caught it, and a script that was sent Ctrl-C stops too.
pub(crate) fn die_of(signal: Signal) -> ! {
    // Its default action again, and unblocked in this thread: raise(3) delivers it here.
    // SAFETY: SIG_DFL installs no handler of ours.
    let _ = unsafe { nix::sys::signal::signal(signal, nix::sys::signal::SigHandler::SigDfl) };
    Shutdown::restore_default();
    let _ = nix::sys::signal::raise(signal);
    std::process::exit(128 + signal as i32)
}

/// Ends a command whose stdout's reader has gone (`netecho ping HOST | head -2`) as a
/// coreutils filter ends (`yes | head -1`): quietly, killed by SIGPIPE, which Rust programs
/// ignore and so never die of themselves; a shell sees 141, and `set -o pipefail` a failure,
/// as for `yes`. (socat and ncat say `Broken pipe` and exit 1 or 2: a word nobody needs.)
pub(crate) fn reader_left() -> ! {
    die_of(Signal::SIGPIPE)
}

/// Narrates a poll(2) that woke, with what woke it: `poll([fd 4, fd 3], 100 ms) = 1 (fd 3
/// readable)`. Waits that time out are not narrated: an idle server would print one a tick.
fn narrate_poll(fds: &[PollFd<'_>], n: i32, timeout: PollTimeout) {
    let fd = |p: &PollFd<'_>| p.as_fd().as_raw_fd();
    let all: Vec<String> = fds.iter().map(|p| format!("fd {}", fd(p))).collect();
    let woke: Vec<String> = fds
        .iter()
        .filter_map(|p| {
            let r = p.revents()?;
            let what = if r.contains(PollFlags::POLLIN) {
                "readable"
            } else if r.contains(PollFlags::POLLOUT) {
                "writable"
            } else if r.is_empty() {
                return None;
            } else {
                "hung up or failed"
            };
            Some(format!("fd {} {what}", fd(p)))
        })
        .collect();
    let wait = match i32::from(timeout) {
        -1 => "no timeout".to_string(),
        ms => format!("{ms} ms"),
    };
    crate::explain::line(format_args!(
        "poll([{}], {wait}) = {n} ({})",
        all.join(", "),
        woke.join(", ")
    ));
}
