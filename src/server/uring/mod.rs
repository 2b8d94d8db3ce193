//! The `uring` model: io_uring rings, one per core, each on a thread of its own. A ring is
//! told once what to do and then reports completions: a multishot accept takes every new
//! connection, a multishot receive per connection fills buffers from a ring of provided
//! buffers registered with the kernel, and the replies of everything one wake-up completed
//! go out as sends in the next submission. One `io_uring_enter` per wake-up, however many
//! messages it carried: no system call per message in the steady state. Each connection is
//! put in the ring's registered file table, so its receives and sends skip the process's
//! descriptor table (shared by every thread: a reference count taken and dropped per send).
//!
//! Sessions are driven through `Session::received`: the bytes a receive completed with are
//! handed over and the replies come back as bytes to send, through the same echo transform,
//! framing decoder, stats and admission as every other model. On a bare stream the reply is
//! the request transformed where it came in (`Session::received_in_place`): it is sent from
//! that provided buffer, not copied, and the buffer goes back once the send is done; at most
//! half a ring's buffers are lent so, since a peer that does not read holds its one.
//!
//! Streams: every ring keeps a multishot accept on the one shared listener (Unix sockets have
//! no SO_REUSEPORT, and one listener keeps the address the server announced); the ring whose
//! accept completes hands the connection to the ring holding the fewest (an inbox and an
//! eventfd, as the event model does), so a burst of clients is spread over the cores.
//! Datagrams: one ring on the one socket, a multishot recvmsg into provided buffers, each
//! reply sent from the buffer it came in (no copy), which returns to the kernel once sent.

mod bufring;
mod conns;
mod datagrams;

use std::io;
use std::time::Duration;

use anyhow::Result;
use io_uring::{IoUring, types};

use crate::error::UsageError;

pub(crate) use conns::serve;
pub(crate) use datagrams::answer;

/// Submission queue entries per ring; completions get four times as many slots.
const ENTRIES: u32 = 1024;
/// How often a ring looks at idle connections and its datagram peers.
const TICK: Duration = Duration::from_millis(200);
/// How long a busy ring waits for a batch of completions before it takes what it has: one
/// microsecond per connection it holds, within these bounds. A ring holding hundreds has
/// hundreds of replies queued ahead of any one client's, so a longer wait adds little to a
/// round trip and spares the ring and the load client wake-ups; a few clients wait little.
const BATCH_WAIT: (Duration, Duration) = (Duration::from_micros(100), Duration::from_micros(500));

/// What a completion is about: the top byte of its user_data, the rest a connection's slot
/// or a buffer's id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
enum Op {
    Accept = 1,
    Recv = 2,
    Send = 3,
    Stop = 4,
    Inbox = 5,
    Tick = 6,
    Cancel = 7,
}

impl Op {
    fn data(self, index: usize) -> u64 {
        ((self as u64) << 56) | index as u64
    }

    fn of(data: u64) -> (Option<Op>, usize) {
        let index = (data & ((1 << 56) - 1)) as usize;
        let op = match data >> 56 {
            1 => Op::Accept,
            2 => Op::Recv,
            3 => Op::Send,
            4 => Op::Stop,
            5 => Op::Inbox,
            6 => Op::Tick,
            7 => Op::Cancel,
            _ => return (None, index),
        };
        (Some(op), index)
    }
}

/// A ring of the size every worker uses, or why io_uring cannot be had here. Made on the
/// thread that uses it: completions are then run only when that thread asks for them
/// (DEFER_TASKRUN, Linux 6.1), not by interrupting it; an older kernel gets a plain ring.
fn ring() -> io::Result<IoUring> {
    let deferred = IoUring::builder()
        .setup_cqsize(ENTRIES * 4)
        .setup_single_issuer()
        .setup_submit_all()
        .setup_defer_taskrun()
        .build(ENTRIES);
    match deferred {
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => IoUring::builder()
            .setup_cqsize(ENTRIES * 4)
            .setup_submit_all()
            .build(ENTRIES),
        ring => ring,
    }
}

/// Whether this kernel lets the process use io_uring with what the model needs (multishot
/// receive and provided-buffer rings: Linux 6.0); a usage error (exit 2) in one line if not.
pub(crate) fn available() -> Result<()> {
    let model = "--model uring";
    let disabled = std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled")
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok())
        .unwrap_or(0);
    if disabled == 2 {
        return Err(UsageError::new(format!(
            "{model}: io_uring is disabled on this machine (kernel.io_uring_disabled = 2); \
             use --model event"
        ))
        .into());
    }
    if let Err(e) = ring() {
        let why = match e.raw_os_error() {
            Some(libc::ENOSYS) => "this kernel has no io_uring (io_uring_setup: ENOSYS)".into(),
            Some(libc::EPERM) => "io_uring is not allowed to this process (io_uring_setup: \
                 EPERM: kernel.io_uring_disabled, or a seccomp filter)"
                .into(),
            _ => format!("io_uring_setup failed: {e}"),
        };
        return Err(UsageError::new(format!("{model}: {why}; use --model event")).into());
    }
    let release = nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut parts = release
        .split(['.', '-'])
        .map(|p| p.parse::<u32>().unwrap_or(0));
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    if (major, minor) < (6, 0) {
        return Err(UsageError::new(format!(
            "{model}: Linux {release} is too old (multishot receive and provided-buffer \
             rings need 6.0); use --model event"
        ))
        .into());
    }
    Ok(())
}

/// Pushes an entry, submitting what is queued first when the submission queue is full.
fn push(ring: &mut IoUring, entry: &io_uring::squeue::Entry) -> io::Result<()> {
    loop {
        // SAFETY: every buffer an entry points at (provided buffers, send buffers, msghdrs,
        // timespecs, eventfd words) is owned by the worker and outlives its completion.
        if unsafe { ring.submission().push(entry) }.is_ok() {
            return Ok(());
        }
        ring.submit()?;
    }
}

/// The batch wait of a ring holding `conns` connections (see BATCH_WAIT).
fn batch_wait(conns: usize) -> Duration {
    let (least, most) = BATCH_WAIT;
    Duration::from_micros(conns as u64).clamp(least, most)
}

/// Waits for at least one completion and returns every one ready: (user_data, result, flags).
/// With `want` above one (a busy ring, on a kernel with min_wait: Linux 6.12), it waits up to
/// `wait` for that many first: a ring asleep until then is not woken by each request, and
/// every wake-up costs the thread that sent the request as much as the ring.
fn complete(
    ring: &mut IoUring,
    out: &mut Vec<(u64, i32, u32)>,
    want: usize,
    wait: Duration,
) -> io::Result<()> {
    out.clear();
    let waited = if want > 1 {
        let tick = types::Timespec::from(TICK);
        let args = types::SubmitArgs::new()
            .min_wait_usec(wait.as_micros() as u32)
            .timespec(&tick);
        ring.submitter().submit_with_args(want, &args)
    } else {
        ring.submit_and_wait(1)
    };
    match waited {
        Ok(_) => {}
        // Nothing at all within the tick: the loop waits again.
        Err(e) if e.raw_os_error() == Some(libc::ETIME) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINTR) => {}
        Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {}
        Err(e) => return Err(e),
    }
    out.extend(
        ring.completion()
            .map(|c| (c.user_data(), c.result(), c.flags())),
    );
    Ok(())
}

/// The errno of a failed completion, as an io::Error.
fn failed(result: i32) -> io::Error {
    io::Error::from_raw_os_error(-result)
}
