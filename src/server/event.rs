//! The `event` model: a fixed number of threads, each with an epoll instance that waits on
//! many non-blocking sockets at once. An idle connection costs its socket and a small
//! session (an `EchoConn` for echo), not a thread. Only services that never block come here
//! (see `server::plan`).
//!
//! The listener is shared: every thread registers it with EPOLLEXCLUSIVE, so the kernel wakes
//! one thread per new connection rather than all of them. One shared listener works for
//! every protocol (SO_REUSEPORT, the alternative, does not exist for Unix sockets). The thread
//! that accepts hands the connection to the loop holding the fewest (through that loop's
//! inbox and eventfd): a burst of 50 clients accepted by one thread would otherwise all be
//! served by that one thread while the other waits.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::panic::{self, AssertUnwindSafe};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use nix::sys::eventfd::{EfdFlags, EventFd};
use tracing::warn;

use crate::service::echo::SHARED_BUFFER;
use crate::service::{ConnEnd, Drive, Service, Session, Step};
use crate::signal::{Shutdown, Signal};
use crate::transport::Listener;

use super::{Sched, Server};
use crate::lifecycle::accept_failed;

const LISTENER: u64 = u64::MAX;
const STOP: u64 = u64::MAX - 1;
const INBOX: u64 = u64::MAX - 2;
/// Events taken from one epoll_wait.
const EVENTS: usize = 256;
/// Connections accepted per wake-up, so one thread does not take a whole burst alone.
const ACCEPTS_PER_WAKE: usize = 64;
/// How often idle connections are looked for, when --idle-timeout is set.
const SWEEP: Duration = Duration::from_millis(250);

/// Serves with `threads` event loops until a stop signal; returns the signal.
pub(crate) fn serve<S: Service>(
    listener: &Listener,
    server: &Server<S>,
    shutdown: &Shutdown,
    threads: usize,
    sched: Sched,
) -> Result<Signal> {
    listener.set_nonblocking(true)?;
    run_loops("event", threads, server, shutdown, |n, stop, loops| {
        super::sched::enter(sched, "event");
        Worker::new(listener, server, stop, loops, n)?.run()
    })
}

/// "an event loop", "a uring loop" ("u" sounds as "you" there).
fn article(kind: &str) -> &'static str {
    match kind.starts_with(['a', 'e', 'i', 'o']) {
        true => "an",
        false => "a",
    }
}

/// A panic's message, as the loop's failure.
fn panicked(payload: Box<dyn std::any::Any + Send>) -> anyhow::Error {
    let message = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned());
    match message {
        Some(message) => anyhow::anyhow!("it panicked: {message}"),
        None => anyhow::anyhow!("it panicked"),
    }
}

/// Runs `threads` loops (`run(n, stop, loops)` on a thread each, named KIND-n) until a stop
/// signal, then wakes them through `stop` and waits for them; returns the signal. A loop
/// that fails is retired and the others serve on; when the last one fails the server ends
/// with that failure as its error. A connection handed to a loop as it stopped is closed
/// here, with its log line, instead of silently.
pub(crate) fn run_loops<S: Service>(
    kind: &str,
    threads: usize,
    server: &Server<S>,
    shutdown: &Shutdown,
    run: impl Fn(usize, &EventFd, &Loops<S::Session>) -> Result<()> + Sync,
) -> Result<Signal> {
    let stop =
        EventFd::from_flags(EfdFlags::EFD_NONBLOCK | EfdFlags::EFD_CLOEXEC).context("eventfd")?;
    let loops = Loops::<S::Session>::new(threads)?;
    let failures = Failures::new(threads)?;
    let signal = thread::scope(|scope| {
        let served = (|| {
            for n in 0..threads {
                let (stop, loops, run, failures) = (&stop, &loops, &run, &failures);
                thread::Builder::new()
                    .name(format!("{kind}-{n}"))
                    .spawn_scoped(scope, move || {
                        // A loop that panics has failed as one that returns an error has.
                        let ran = panic::catch_unwind(AssertUnwindSafe(|| run(n, stop, loops)));
                        if let Err(e) = ran.unwrap_or_else(|p| Err(panicked(p))) {
                            retire_loop(loops, n, server);
                            failures.failed(kind, n, e, server);
                        }
                    })
                    .with_context(|| format!("start {} {kind} loop thread", article(kind)))?;
            }
            shutdown.wait_signal_or(failures.last.as_fd())
        })();
        // Whatever ends the wait (a signal, or no thread to start or signal to read), the
        // started loops are woken to return, or the scope would wait for them forever.
        if !matches!(served, Ok(None)) {
            server.stopping.store(true, Ordering::Relaxed);
            // Never read, so every loop sees it (level-triggered epoll, a polled ring) and
            // returns.
            stop.write(1)
                .with_context(|| format!("wake the {kind} loops"))?;
        }
        served
    });
    for n in 0..threads {
        retire_loop(&loops, n, server);
    }
    match (signal?, failures.take_last()) {
        (_, Some(lost)) => Err(lost),
        (Some(signal), None) => Ok(signal),
        (None, None) => Err(anyhow::anyhow!("every {kind} loop ended")),
    }
}

/// How many loops have failed, and the failure of the last one (the server's end).
struct Failures {
    threads: usize,
    count: AtomicUsize,
    /// Written when no loop is left, to wake the thread waiting for a stop signal.
    last: EventFd,
    error: Mutex<Option<anyhow::Error>>,
}

impl Failures {
    fn new(threads: usize) -> Result<Failures> {
        let last = EventFd::from_flags(EfdFlags::EFD_NONBLOCK | EfdFlags::EFD_CLOEXEC)
            .context("eventfd")?;
        Ok(Failures {
            threads,
            count: AtomicUsize::new(0),
            last,
            error: Mutex::new(None),
        })
    }

    /// Loop `n` failed with `e`: said while others serve on (or the server stops); the
    /// last one's failure becomes the server's error.
    fn failed<S>(&self, kind: &str, n: usize, e: anyhow::Error, server: &Server<S>) {
        if self.count.fetch_add(1, Ordering::Relaxed) + 1 < self.threads {
            return warn!("{kind} loop {n} failed: {e:#}; the others serve on");
        }
        if server.stopping.load(Ordering::Relaxed) {
            return warn!("{kind} loop {n} failed: {e:#}");
        }
        let lost = no_loop_left(kind, n, e, server.model_asked);
        *lock(&self.error) = Some(lost);
        if let Err(e) = self.last.write(1) {
            warn!("wake the server after its last {kind} loop failed: {e}");
        }
    }

    fn take_last(&self) -> Option<anyhow::Error> {
        lock(&self.error).take()
    }
}

/// The server's error when its last loop failed with `e`: what the user can do about it,
/// another model only where the user picks the model.
fn no_loop_left(kind: &str, n: usize, e: anyhow::Error, model_asked: bool) -> anyhow::Error {
    let advice = match model_asked {
        true => "restart the server, or serve with --model threads",
        false => "restart the server",
    };
    anyhow::anyhow!(
        "{kind} loop {n} failed: {e:#}; no {kind} loop is left to serve connections: {advice}"
    )
}

/// What the event loops share: how many connections each holds, each one's inbox for
/// connections another loop accepted (`None` once the loop has ended: nothing waits there),
/// and the connections each one left while it unwound from a panic, to be ended after.
pub(crate) struct Loops<T> {
    pub(crate) loads: Vec<AtomicUsize>,
    inboxes: Vec<(Mutex<Option<Vec<T>>>, EventFd)>,
    parked: Vec<Mutex<Vec<(T, ConnEnd)>>>,
}

impl<T> Loops<T> {
    pub(crate) fn new(threads: usize) -> Result<Loops<T>> {
        let inboxes = (0..threads)
            .map(|_| {
                let wake = EventFd::from_flags(EfdFlags::EFD_NONBLOCK | EfdFlags::EFD_CLOEXEC)
                    .context("eventfd")?;
                Ok((Mutex::new(Some(Vec::new())), wake))
            })
            .collect::<Result<_>>()?;
        Ok(Loops {
            loads: (0..threads).map(|_| AtomicUsize::new(0)).collect(),
            inboxes,
            parked: (0..threads).map(|_| Mutex::default()).collect(),
        })
    }

    /// Ends loop `n`'s connection `conn` with `end` through `finish`, or, while the loop
    /// unwinds from a panic, parks it to be ended once the unwinding is over: ending it in
    /// the middle (its goodbye, its line) could panic a second time, which aborts the server.
    pub(crate) fn end(&self, n: usize, conn: T, end: ConnEnd, finish: impl FnOnce(T, &ConnEnd)) {
        match thread::panicking() {
            true => lock(&self.parked[n]).push((conn, end)),
            false => finish(conn, &end),
        }
    }

    /// The connections loop `n` parked while it unwound.
    fn take_parked(&self, n: usize) -> Vec<(T, ConnEnd)> {
        std::mem::take(&mut *lock(&self.parked[n]))
    }

    /// Loop `n` has ended: it gets no more connections (its load is made too high to be
    /// picked, its inbox is closed), and those waiting in its inbox are handed to another
    /// loop, or to `finish` when none takes them.
    pub(crate) fn retire(&self, n: usize, mut finish: impl FnMut(T)) {
        self.loads[n].store(usize::MAX / 2, Ordering::Relaxed);
        let left = self.inbox(n).take().unwrap_or_default();
        for conn in left {
            let target = self.pick();
            if let Err(conn) = self.hand(target, conn) {
                finish(conn);
            }
        }
    }

    /// The loop that holds the fewest connections, counted as holding one more.
    pub(crate) fn pick(&self) -> usize {
        let (n, load) = self
            .loads
            .iter()
            .enumerate()
            .min_by_key(|(_, load)| load.load(Ordering::Relaxed))
            .expect("at least one loop");
        load.fetch_add(1, Ordering::Relaxed);
        n
    }

    /// Puts a connection loop `from` accepted in the inbox of the loop holding the fewest;
    /// gives it back (counted in `from`'s load) when that is `from`, or a loop that has
    /// just ended.
    pub(crate) fn hand_over(&self, from: usize, conn: T) -> Option<T> {
        let target = self.pick();
        if target == from {
            return Some(conn);
        }
        let conn = self.hand(target, conn).err()?;
        self.loads[from].fetch_add(1, Ordering::Relaxed);
        Some(conn)
    }

    /// Puts `conn` in loop `target`'s inbox and wakes it; gives `conn` back when that loop
    /// has ended (picked just before it retired).
    fn hand(&self, target: usize, conn: T) -> Result<(), T> {
        match self.inbox(target).as_mut() {
            Some(inbox) => inbox.push(conn),
            None => return Err(conn),
        }
        if let Err(e) = self.inboxes[target].1.write(1) {
            warn!("wake loop {target}: {e}");
        }
        Ok(())
    }

    /// The connections waiting in loop `n`'s inbox.
    pub(crate) fn take(&self, n: usize) -> Vec<T> {
        self.inbox(n)
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default()
    }

    /// The eventfd written when a connection is put in loop `n`'s inbox.
    pub(crate) fn wake(&self, n: usize) -> &EventFd {
        &self.inboxes[n].1
    }

    fn inbox(&self, n: usize) -> std::sync::MutexGuard<'_, Option<Vec<T>>> {
        lock(&self.inboxes[n].0)
    }
}

/// A lock that a loop's panic did not make unusable: what it guards stays whole.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// What [`ctl`] does to a file descriptor's place in an epoll set.
#[derive(Clone, Copy)]
enum Ctl {
    Add,
    Mod,
    Del,
}

/// epoll_ctl: `fd` into the set watched for `flags` (its events carry `token`), its flags
/// changed, or out of it. Narrated under --explain: registering each socket once is how one
/// thread waits on many.
fn ctl(
    epoll: &Epoll,
    op: Ctl,
    fd: BorrowedFd<'_>,
    flags: EpollFlags,
    token: u64,
) -> nix::Result<()> {
    let mut event = EpollEvent::new(flags, token);
    let result = match op {
        Ctl::Add => epoll.add(fd, event),
        Ctl::Mod => epoll.modify(fd, &mut event),
        Ctl::Del => epoll.delete(fd),
    };
    if crate::explain::on() {
        let (epfd, fd) = (epoll.0.as_raw_fd(), fd.as_raw_fd());
        let op = match op {
            Ctl::Add => "EPOLL_CTL_ADD",
            Ctl::Mod => "EPOLL_CTL_MOD",
            Ctl::Del => "EPOLL_CTL_DEL",
        };
        let watched = match flags.is_empty() {
            true => String::new(),
            false => format!(", {}", flag_names(flags)),
        };
        let said = result.map_err(io::Error::from);
        crate::explain::zero(
            format_args!("epoll_ctl(fd {epfd}, {op}, fd {fd}{watched})"),
            &said,
        );
    }
    result
}

/// `flags` as strace writes them: EPOLLIN|EPOLLEXCLUSIVE.
fn flag_names(flags: EpollFlags) -> String {
    let names = [
        (EpollFlags::EPOLLIN, "EPOLLIN"),
        (EpollFlags::EPOLLOUT, "EPOLLOUT"),
        (EpollFlags::EPOLLEXCLUSIVE, "EPOLLEXCLUSIVE"),
    ];
    let set: Vec<&str> = names
        .iter()
        .filter(|(flag, _)| flags.contains(*flag))
        .map(|(_, name)| *name)
        .collect();
    set.join("|")
}

/// A connection and what its loop knows of it.
struct Slot<T> {
    session: T,
    last_active: Instant,
    interest: EpollFlags,
    /// Whether the connection has a deadline now: a TLS handshake under way or a frame
    /// started (see [`Worker::timed`]).
    timed: bool,
}

/// One event loop: its epoll instance, its connections, and a scratch buffer they share.
struct Worker<'a, S: Service> {
    listener: &'a Listener,
    server: &'a Server<S>,
    loops: &'a Loops<S::Session>,
    /// This loop's place in `loops`.
    index: usize,
    epoll: Epoll,
    slots: Vec<Option<Slot<S::Session>>>,
    free: Vec<usize>,
    buf: Vec<u8>,
    /// --idle-timeout: every connection can go idle, so the sweep runs while any is held.
    idle: Option<Duration>,
    /// Connections with a deadline now ([`Slot::timed`]): without --idle-timeout, the loop
    /// wakes for the sweep only while there are some, and otherwise waits for events alone.
    timed: usize,
    /// Out of file descriptors: the listener is out of the epoll set until the next sweep.
    accept_paused: bool,
}

impl<'a, S: Service> Worker<'a, S> {
    fn new(
        listener: &'a Listener,
        server: &'a Server<S>,
        stop: &EventFd,
        loops: &'a Loops<S::Session>,
        index: usize,
    ) -> Result<Self> {
        let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC).context("epoll_create")?;
        let listen = EpollFlags::EPOLLIN | EpollFlags::EPOLLEXCLUSIVE;
        ctl(&epoll, Ctl::Add, listener.as_fd(), listen, LISTENER)
            .context("epoll_ctl add listener")?;
        ctl(&epoll, Ctl::Add, stop.as_fd(), EpollFlags::EPOLLIN, STOP)
            .context("epoll_ctl add eventfd")?;
        let inbox = loops.wake(index).as_fd();
        ctl(&epoll, Ctl::Add, inbox, EpollFlags::EPOLLIN, INBOX).context("epoll_ctl add inbox")?;
        Ok(Worker {
            listener,
            server,
            loops,
            index,
            epoll,
            slots: Vec::new(),
            free: Vec::new(),
            buf: vec![0u8; SHARED_BUFFER],
            idle: server.idle_timeout,
            timed: 0,
            accept_paused: false,
        })
    }

    fn run(mut self) -> Result<()> {
        let mut events = vec![EpollEvent::empty(); EVENTS];
        let mut last_sweep = Instant::now();
        loop {
            // Connections are swept for the idle timeout, TLS handshakes and frames past
            // their deadline; a loop whose connections have none waits without a timer.
            let sweeps = self.sweeps();
            let timeout = match sweeps {
                true => EpollTimeout::try_from(SWEEP).expect("small timeout"),
                false => EpollTimeout::NONE,
            };
            let n = match self.epoll.wait(&mut events, timeout) {
                Ok(n) => n,
                // A server stopped and continued (SIGSTOP, SIGCONT) gets EINTR whatever came
                // meanwhile: wait again to see it before any sweep calls a client idle.
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(e).context("epoll_wait"),
            };
            if n > 0 && crate::explain::on() {
                self.narrate_wait(&events[..n]);
            }
            for event in &events[..n] {
                match event.data() {
                    STOP => {
                        self.close_all(|| ConnEnd::Stopped);
                        return Ok(());
                    }
                    LISTENER => self.accept()?,
                    INBOX => self.take_inbox(),
                    token => self.pump(token as usize),
                }
            }
            // Only what is due is swept, so a sweep soon after a wait without a timer costs
            // a look at each connection and nothing else.
            if sweeps && last_sweep.elapsed() >= SWEEP {
                last_sweep = Instant::now();
                self.sweep();
            }
        }
    }

    /// Whether the loop must wake for the sweep: --idle-timeout with any connection held, a
    /// connection with a deadline now, or the listener to watch again.
    fn sweeps(&self) -> bool {
        let held = self.loops.loads[self.index].load(Ordering::Relaxed) > 0;
        (self.idle.is_some() && held) || self.timed > 0 || self.accept_paused
    }

    /// Whether `session` has a deadline now: a TLS handshake under way, or a frame started.
    fn timed(session: &S::Session) -> bool {
        session.conn().wait_limit(None).is_some() || session.deadline().is_some()
    }

    /// Narrates an epoll_wait that woke, with what woke it (waits that time out for the
    /// idle sweep are not narrated).
    fn narrate_wait(&self, events: &[EpollEvent]) {
        let woke: Vec<String> = events
            .iter()
            .map(|e| {
                let flags = e.events();
                let what = if flags.contains(EpollFlags::EPOLLIN) {
                    "readable"
                } else if flags.contains(EpollFlags::EPOLLOUT) {
                    "writable"
                } else {
                    "hung up or failed"
                };
                match e.data() {
                    STOP => "the stop eventfd".to_string(),
                    INBOX => "the inbox eventfd: a connection handed over".to_string(),
                    LISTENER => {
                        let fd = self.listener.as_fd().as_raw_fd();
                        format!("fd {fd} {what}: a connection to accept")
                    }
                    token => match self.slots.get(token as usize).and_then(Option::as_ref) {
                        Some(slot) => {
                            format!("fd {} {what}", slot.session.conn().as_fd().as_raw_fd())
                        }
                        None => format!("a closed connection ({what})"),
                    },
                }
            })
            .collect();
        let epfd = self.epoll.0.as_raw_fd();
        crate::explain::line(format_args!(
            "epoll_wait(fd {epfd}, {EVENTS}) = {} ({})",
            events.len(),
            woke.join(", ")
        ));
    }

    /// Accepts what waits; an error only when the listener can never accept again (its
    /// QUIC endpoint ended), which ends the loop.
    fn accept(&mut self) -> Result<()> {
        for _ in 0..ACCEPTS_PER_WAKE {
            let conn = match self.listener.accept() {
                Ok(conn) => conn,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if crate::transport::quic::endpoint_gone(&e) => return Err(e.into()),
                Err(e) => {
                    if accept_failed(&e) {
                        self.pause_accept();
                    }
                    return Ok(());
                }
            };
            if let Err(e) = conn.set_nonblocking(true) {
                warn!("{}: {e}; closed", conn.peer());
                continue;
            }
            let Some(session) = self.server.admit(conn, Drive::Epoll) else {
                continue;
            };
            if let Some(session) = self.loops.hand_over(self.index, session) {
                self.register(session);
            }
        }
        Ok(())
    }

    /// Out of file descriptors: the listener leaves this loop's epoll set until the next
    /// sweep, so the loop serves its connections instead of meeting the error at each wait.
    fn pause_accept(&mut self) {
        let (epoll, listener) = (&self.epoll, self.listener.as_fd());
        self.accept_paused = ctl(epoll, Ctl::Del, listener, EpollFlags::empty(), 0).is_ok();
    }

    /// The listener back in the epoll set after [`Worker::pause_accept`].
    fn resume_accept(&mut self) {
        if !self.accept_paused {
            return;
        }
        let listen = EpollFlags::EPOLLIN | EpollFlags::EPOLLEXCLUSIVE;
        match ctl(
            &self.epoll,
            Ctl::Add,
            self.listener.as_fd(),
            listen,
            LISTENER,
        ) {
            Ok(()) => self.accept_paused = false,
            Err(e) => warn!("watch the listener again: {e}; trying at the next sweep"),
        }
    }

    /// Connections another loop accepted for this one.
    fn take_inbox(&mut self) {
        let _ = self.loops.wake(self.index).read();
        for session in self.loops.take(self.index) {
            self.register(session);
        }
    }

    /// Adds an admitted connection (already counted in this loop's load) to the epoll set.
    fn register(&mut self, mut session: S::Session) {
        // Every session ends before the server's summary (close_all): counting on its own
        // tally keeps the loops off the shared totals' cache line for every message.
        session.count_at_end();
        let token = self.free.pop().unwrap_or_else(|| {
            self.slots.push(None);
            self.slots.len() - 1
        });
        let interest = EpollFlags::EPOLLIN;
        if let Err(e) = ctl(
            &self.epoll,
            Ctl::Add,
            session.conn().as_fd(),
            interest,
            token as u64,
        ) {
            self.free.push(token);
            self.loops.loads[self.index].fetch_sub(1, Ordering::Relaxed);
            self.server.finish(session, &ConnEnd::Failed(e.into()));
            return;
        }
        let timed = Self::timed(&session);
        self.timed += usize::from(timed);
        self.slots[token] = Some(Slot {
            session,
            last_active: Instant::now(),
            interest,
            timed,
        });
    }

    fn pump(&mut self, token: usize) {
        let Some(slot) = self.slots.get_mut(token).and_then(Option::as_mut) else {
            return;
        };
        if self.idle.is_some() {
            slot.last_active = Instant::now();
        }
        let (read, write) = match slot.session.pump(&mut self.buf) {
            Step::Done(end) => return self.close(token, end),
            // Level-triggered: what is left to read is reported again on the next wait.
            Step::Yield { write } => (true, write),
            Step::Wait { read, write } => (read, write),
        };
        let timed = Self::timed(&slot.session);
        if timed != slot.timed {
            slot.timed = timed;
            match timed {
                true => self.timed += 1,
                false => self.timed -= 1,
            }
        }
        let mut interest = EpollFlags::empty();
        interest.set(EpollFlags::EPOLLIN, read);
        interest.set(EpollFlags::EPOLLOUT, write);
        if interest != slot.interest {
            let conn = slot.session.conn().as_fd();
            if let Err(e) = ctl(&self.epoll, Ctl::Mod, conn, interest, token as u64) {
                return self.close(token, ConnEnd::Failed(e.into()));
            }
            slot.interest = interest;
        }
    }

    fn close(&mut self, token: usize, end: ConnEnd) {
        if let Some(slot) = self.slots[token].take() {
            // Closing the socket removes it from the epoll set too; deleting first keeps the
            // set exact even if another process still holds the socket.
            let conn = slot.session.conn().as_fd();
            let _ = ctl(&self.epoll, Ctl::Del, conn, EpollFlags::empty(), 0);
            self.timed -= usize::from(slot.timed);
            let server = self.server;
            self.loops
                .end(self.index, slot.session, end, |s, e| server.finish(s, e));
            self.free.push(token);
            self.loops.loads[self.index].fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Closes connections idle for `idle` and TLS handshakes past their deadline, and pumps
    /// those whose frame is past its deadline (the pump ends them) and those idle by the
    /// clock with bytes waiting unread.
    fn sweep(&mut self) {
        self.resume_accept();
        let (now, idle) = (Instant::now(), self.idle);
        let due: Vec<(usize, Option<ConnEnd>)> = self
            .slots
            .iter()
            .enumerate()
            .filter_map(|(token, slot)| {
                let slot = slot.as_ref()?;
                if let Some(e) = slot.session.conn().handshake_timeout() {
                    return Some((token, Some(ConnEnd::Failed(e))));
                }
                if slot.session.deadline().is_some_and(|d| d <= now) {
                    return Some((token, None));
                }
                if idle.is_none_or(|idle| now.duration_since(slot.last_active) < idle) {
                    return None;
                }
                // Bytes that came while the loop was held up after its wait (SIGSTOP, a
                // loaded machine) are activity: read now, never called idle unread.
                let reading = slot.interest.contains(EpollFlags::EPOLLIN);
                match reading && slot.session.conn().unread_now() {
                    true => Some((token, None)),
                    false => Some((token, Some(ConnEnd::Idle))),
                }
            })
            .collect();
        for (token, end) in due {
            match end {
                None => self.pump(token),
                Some(end) => self.close(token, end),
            }
        }
    }

    fn close_all(&mut self, end: fn() -> ConnEnd) {
        // Handed over but not yet registered: closed like the rest.
        self.take_inbox();
        for token in 0..self.slots.len() {
            self.close(token, end());
        }
    }
}

impl<S: Service> Drop for Worker<'_, S> {
    /// However the loop ends, every connection it still holds ends with its log line and
    /// gives its --max-conns slot back, once: after the stop none is left, and a loop that
    /// failed (or panicked) leaves them here.
    fn drop(&mut self) {
        let end = retire_loop(self.loops, self.index, self.server);
        self.close_all(end);
    }
}

/// Retires loop `n` (see [`Loops::retire`]): what waited in its inbox and no live loop takes
/// ends with its line and gives its slot back, and so do the connections it parked while it
/// unwound from a panic, once the unwinding is over. Returns how the connections the loop
/// still holds end: stopped while the server stops (one handed over as the loop stopped),
/// else the loop ended on an error.
pub(crate) fn retire_loop<S: Service>(
    loops: &Loops<S::Session>,
    n: usize,
    server: &Server<S>,
) -> fn() -> ConnEnd {
    let end: fn() -> ConnEnd = match server.stopping.load(Ordering::Relaxed) {
        true => || ConnEnd::Stopped,
        false => || ConnEnd::Failed(io::Error::other("the loop serving it ended on an error")),
    };
    loops.retire(n, |session| {
        loops.end(n, session, end(), |s, e| server.finish(s, e))
    });
    if !thread::panicking() {
        for (session, ended) in loops.take_parked(n) {
            // The session may be what panicked: if its end panics too, the server lives on
            // (and finish gives its slot back all the same).
            let _ = panic::catch_unwind(AssertUnwindSafe(|| server.finish(session, &ended)));
        }
    }
    end
}

#[cfg(test)]
mod tests {
    use std::panic::{self, AssertUnwindSafe};

    use super::{Loops, no_loop_left};
    use crate::service::ConnEnd;

    #[test]
    fn a_server_with_no_loop_left_advises_another_model_only_where_one_can_be_picked() {
        let lost = |asked| no_loop_left("event", 1, anyhow::anyhow!("epoll_wait: EIO"), asked);
        let serve = lost(true).to_string();
        assert!(
            serve.contains("event loop 1 failed: epoll_wait: EIO"),
            "{serve}"
        );
        assert!(serve.ends_with(": restart the server, or serve with --model threads"));
        let lab = lost(false).to_string();
        assert!(lab.ends_with(": restart the server"), "{lab}");
        assert!(!lab.contains("--model"), "{lab}");
    }

    /// A loop's connection, ended when the loop is dropped, as a worker's are.
    struct Holding<'a>(&'a Loops<u32>, &'a mut Vec<u32>);

    impl Drop for Holding<'_> {
        fn drop(&mut self) {
            let finished = &mut *self.1;
            self.0
                .end(0, 7, ConnEnd::Idle, |conn, _| finished.push(conn));
        }
    }

    #[test]
    fn a_retired_loops_waiting_connections_go_to_a_live_loop() {
        let loops = Loops::<u32>::new(2).unwrap();
        assert!(loops.hand(1, 7).is_ok());
        let mut finished = Vec::new();
        loops.retire(1, |conn| finished.push(conn));
        assert_eq!(loops.take(0), vec![7]);
        assert!(finished.is_empty());
        // Picked just before it retired: the connection comes back to its acceptor.
        assert_eq!(loops.hand(1, 8), Err(8));
        assert_eq!(loops.hand_over(0, 9), Some(9));
    }

    #[test]
    fn with_no_live_loop_left_waiting_connections_are_finished() {
        let loops = Loops::<u32>::new(2).unwrap();
        loops.retire(0, |_| panic!("nothing waited"));
        assert!(loops.hand(1, 7).is_ok());
        let mut finished = Vec::new();
        loops.retire(1, |conn| finished.push(conn));
        assert_eq!(finished, vec![7]);
        assert!(loops.take(1).is_empty());
    }

    #[test]
    fn a_connection_is_ended_in_place_when_its_loop_ends_without_a_panic() {
        let loops = Loops::<u32>::new(1).unwrap();
        let mut finished = Vec::new();
        drop(Holding(&loops, &mut finished));
        assert_eq!(finished, vec![7]);
        assert!(loops.take_parked(0).is_empty());
    }

    #[test]
    fn a_connection_left_by_a_panicking_loop_is_ended_after_the_unwinding() {
        let loops = Loops::<u32>::new(1).unwrap();
        let mut finished = Vec::new();
        let ran = panic::catch_unwind(AssertUnwindSafe(|| {
            let _held = Holding(&loops, &mut finished);
            panic!("the loop");
        }));
        assert!(ran.is_err());
        assert!(finished.is_empty(), "ended in the middle of the unwinding");
        let parked = loops.take_parked(0);
        assert_eq!(parked.len(), 1);
        assert!(matches!(parked[0], (7, ConnEnd::Idle)));
    }
}
