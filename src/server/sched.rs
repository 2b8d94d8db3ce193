//! How the kernel schedules the threads of the event loops and io_uring rings.
//!
//! Under SCHED_BATCH (unprivileged, nice level unchanged) a loop woken by a client's request
//! does not preempt the program running on that core, often the load client itself on a
//! machine it shares: the loop runs a moment later and finds more requests ready, so it
//! serves more per wake-up, and both sides switch less. The price is that moment: a lone
//! request on a busy core waits for the running program's turn to end.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};

use tracing::warn;

use crate::choice::{Choice, from_str_by_name};

/// The scheduling policy of a server's loop threads.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum Sched {
    /// SCHED_BATCH: more served per wake-up, fewer context switches
    Batch,
    /// The process's own policy (SCHED_OTHER unless started under another)
    #[default]
    Normal,
}

impl Choice for Sched {
    const ALL: &'static [Sched] = &[Sched::Batch, Sched::Normal];

    fn name(self) -> &'static str {
        match self {
            Sched::Batch => "batch",
            Sched::Normal => "normal",
        }
    }

    fn help(self) -> &'static str {
        match self {
            Sched::Batch => {
                "SCHED_BATCH: a woken loop waits for the running program's turn instead of \
                 preempting it, and serves more requests per wake-up (throughput over latency)"
            }
            Sched::Normal => "The process's own policy: a woken loop may preempt at once",
        }
    }
}

from_str_by_name!(Sched);

/// Said once per server: every loop thread meets the same refusal.
static REFUSED: AtomicBool = AtomicBool::new(false);

/// Puts the calling thread under `sched`. A kernel or sandbox that refuses (a seccomp
/// filter, a container's policy) leaves the thread as it was, said in one line.
pub(crate) fn enter(sched: Sched, kind: &str) {
    if sched == Sched::Normal {
        return;
    }
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: pid 0 is the calling thread on Linux; `param` lives across the call.
    if unsafe { libc::sched_setscheduler(0, libc::SCHED_BATCH, &param) } == 0 {
        return;
    }
    let e = io::Error::last_os_error();
    if !REFUSED.swap(true, Ordering::Relaxed) {
        warn!(
            "--sched batch: the kernel refused SCHED_BATCH for the {kind} threads \
             (sched_setscheduler: {e}); they run under the normal policy"
        );
    }
}
