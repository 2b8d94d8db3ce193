//! What a `--exec` program starts outside its process group (`setsid cmd &`, `setpgid`, a
//! daemon's double fork) ends too. The server is a child subreaper (PR_SET_CHILD_SUBREAPER): a
//! process whose parent dies is re-parented to the server instead of to init, so whatever a
//! program started becomes the server's child once the process that started it has ended. A
//! child the server did not start as a program, and that is not in a running program's
//! process group (that one ends with the group), has escaped its program: it is killed
//! (SIGKILL) and reaped, and so are the zombies of a killed group's orphans.
//!
//! Only pids found this way are reaped, each by its pid: the programs' own exit statuses are
//! read by the threads that run them (`waitid` on their pid), never taken by a `waitpid(-1)`.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::process::{Child, Command};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::{Pid, getpgid};
use tracing::warn;

/// How often the server's children are looked over while a process may escape.
const SWEEP: Duration = Duration::from_secs(1);
/// Sweeps that find nothing, with no program running, before the watcher rests until the
/// next program: a killed group's members may die, and their children be re-parented, a
/// moment after the program is reaped.
const CALM: u32 = 3;
/// The least time between two sweeps, however many programs end.
const GAP: Duration = Duration::from_millis(100);
/// Processes killed in one sweep; the rest wait for the next.
const MAX_KILLS: usize = 1024;
/// Groups killed lately, remembered so their dying members are not logged as escaped.
const ENDED: usize = 64;
/// Pids named in the log line.
const NAMED: usize = 8;

/// The programs the server started, and the thread that ends what escapes them.
#[derive(Debug)]
pub(crate) struct Reaper {
    state: Mutex<State>,
    wake: Condvar,
    /// This server is PID 1: orphans from anywhere come to it, so none is killed.
    init: bool,
}

#[derive(Debug, Default)]
struct State {
    /// Programs started and not yet reaped, by pid (their process group's id too). A count:
    /// a reaped program's pid may be the next one's before the first is forgotten.
    programs: HashMap<u32, u32>,
    /// Sweeps in a row that found nothing since a program ended.
    calm: u32,
    /// The process groups of the programs that ended last (killed with them).
    ended: VecDeque<u32>,
}

/// A program the server started, known as one until dropped (after it is reaped).
pub(crate) struct Known<'a> {
    reaper: &'a Reaper,
    pid: u32,
}

impl Reaper {
    /// Makes this process the subreaper of its descendants and starts the thread that sweeps.
    pub(crate) fn start() -> Arc<Reaper> {
        const UNREACHED: &str = "what a program starts outside its process group may outlive it";
        let reaper = Arc::new(Reaper {
            state: Mutex::new(State {
                calm: CALM,
                ..State::default()
            }),
            wake: Condvar::new(),
            init: std::process::id() == 1,
        });
        if reaper.init {
            warn!(
                "this server is PID 1 (a container's first process?): every orphan comes to \
                 it, so what a program starts outside its process group is reaped when it \
                 ends, not killed; run netecho under an init (docker --init) to end them"
            );
        }
        if let Err(e) = nix::sys::prctl::set_child_subreaper(true) {
            warn!("prctl(PR_SET_CHILD_SUBREAPER): {e}; {UNREACHED}");
            return reaper;
        }
        if children().is_none() {
            warn!(
                "cannot list this server's children (/proc/self/task/TID/children needs a \
                 kernel with CONFIG_PROC_CHILDREN): {UNREACHED}"
            );
        }
        let watcher = Arc::clone(&reaper);
        if let Err(e) = thread::Builder::new()
            .name("exec-reaper".into())
            .spawn(move || watcher.watch())
        {
            warn!("cannot start the exec-reaper thread ({e}): {UNREACHED}");
        }
        reaper
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts a program, known as one from the moment it exists: a sweep that sees the new
    /// child waits for this lock, and then finds it known.
    pub(crate) fn spawn(&self, cmd: &mut Command) -> io::Result<(Child, Known<'_>)> {
        let mut state = self.lock();
        let child = cmd.spawn()?;
        let pid = child.id();
        *state.programs.entry(pid).or_default() += 1;
        if state.programs.len() == 1 {
            self.wake.notify_one();
        }
        Ok((child, Known { reaper: self, pid }))
    }

    /// Sweeps while a process may escape: while a program runs, and for a few sweeps after
    /// one ended or a sweep killed something (the killed process's children come next).
    fn watch(&self) {
        loop {
            let mut state = self.lock();
            while state.programs.is_empty() && state.calm >= CALM {
                state = self.wake.wait(state).unwrap_or_else(|e| e.into_inner());
            }
            // A program's end wakes this at once; otherwise the next sweep is due.
            let (state, _) = self
                .wake
                .wait_timeout(state, SWEEP)
                .unwrap_or_else(|e| e.into_inner());
            drop(state);
            let found = self.sweep();
            let mut state = self.lock();
            state.calm = if found {
                0
            } else {
                state.calm.saturating_add(1)
            };
            drop(state);
            thread::sleep(GAP);
        }
    }

    /// Kills and reaps the server's children that are neither programs nor in a running
    /// program's group; whether it found any.
    fn sweep(&self) -> bool {
        // Listed before the lock is taken: a program being started then is known after it.
        let children = children().unwrap_or_default();
        let (found, ended) = {
            let state = self.lock();
            let found: Vec<u32> = children
                .into_iter()
                .filter(|pid| !state.programs.contains_key(pid))
                .filter(|&pid| group(pid).is_none_or(|pgid| !state.programs.contains_key(&pgid)))
                .take(MAX_KILLS)
                .collect();
            (found, state.ended.clone())
        };
        let mut escaped = Vec::new();
        for &pid in &found {
            if dead(pid) || self.init {
                // As PID 1 (a container's first process) every orphan of the container is
                // this server's child, not only what escaped a program: reaped once dead,
                // never killed.
                continue;
            }
            let leader = group(pid);
            let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
            // Reaped now, or in the next sweep if it has not died yet.
            dead(pid);
            if leader.is_none_or(|pgid| !ended.contains(&pgid)) {
                escaped.push(pid);
            }
        }
        log_escaped(&escaped);
        !found.is_empty()
    }
}

impl Drop for Known<'_> {
    /// The program has been reaped: it is forgotten, and the sweeps that follow catch what
    /// it left.
    fn drop(&mut self) {
        let mut state = self.reaper.lock();
        if let Some(count) = state.programs.get_mut(&self.pid) {
            *count -= 1;
            if *count == 0 {
                state.programs.remove(&self.pid);
            }
        }
        if state.ended.len() == ENDED {
            state.ended.pop_front();
        }
        state.ended.push_back(self.pid);
        state.calm = 0;
        self.reaper.wake.notify_one();
    }
}

/// The server's children, as every thread lists them (a child belongs to the thread that
/// started it, or to the one it was re-parented to); `None` when they cannot be listed.
fn children() -> Option<Vec<u32>> {
    let tasks = std::fs::read_dir("/proc/self/task").ok()?;
    let mut listed = false;
    let mut pids = Vec::new();
    for task in tasks.flatten() {
        if let Ok(list) = std::fs::read_to_string(task.path().join("children")) {
            listed = true;
            pids.extend(
                list.split_whitespace()
                    .filter_map(|p| p.parse::<u32>().ok()),
            );
        }
    }
    listed.then_some(pids)
}

/// The process group of `pid`, while it exists.
fn group(pid: u32) -> Option<u32> {
    getpgid(Some(Pid::from_raw(pid as i32)))
        .ok()
        .map(|g| g.as_raw() as u32)
}

/// Reaps `pid` if it has ended (it is a child of this server that no other thread waits for);
/// whether it had.
fn dead(pid: u32) -> bool {
    !matches!(
        waitpid(Pid::from_raw(pid as i32), Some(WaitPidFlag::WNOHANG)),
        Ok(WaitStatus::StillAlive)
    )
}

/// One line for the processes a sweep killed, throttled: a client can make many.
fn log_escaped(pids: &[u32]) {
    static LOG: crate::logging::Throttle = crate::logging::Throttle::new();
    if pids.is_empty() {
        return;
    }
    let Some(more) = LOG.allow() else {
        return;
    };
    let mut named: Vec<String> = pids.iter().take(NAMED).map(u32::to_string).collect();
    if pids.len() > NAMED {
        named.push("...".into());
    }
    warn!(
        "killed {} process{} (pid {}) a --exec program left running outside its process \
         group: nothing a program starts outlives it{more}",
        pids.len(),
        if pids.len() == 1 { "" } else { "es" },
        named.join(", ")
    );
}
