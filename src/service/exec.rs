//! The lesson's remote-command chapter, done safely: `serve --exec PROGRAM ARGS...` runs the
//! program for each connection (or datagram) with the client's bytes on its stdin. No shell
//! ever sees the arguments. The reply is framed, so output of any size arrives whole:
//!
//! ```text
//! frame = length (4 bytes, big-endian), tag (1 byte), payload
//! tag 1: stdout bytes    tag 2: stderr bytes
//! tag 3: the end: exit code (i32, big-endian; 128+N for signal N), then a note (UTF-8)
//! ```
//!
//! While the program is silent the server sends an empty stdout frame now and then: that is
//! how it learns that a client which closed its connection is gone (a TCP peer answers the
//! frame with a reset), so the program is killed instead of running on for nobody.

use std::ffi::OsString;
use std::io::{self, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use tracing::{info, warn};

use crate::hexdump::{self, Way};
use crate::transport::{Conn, DatagramSocket, MAX_MESSAGE, PeerAddr, Received};

use super::reaper::{Known, Reaper};
use super::stats::{Stats, Tally};
use crate::transport::framing::Framing;

pub(crate) const STDOUT: u8 = 1;
pub(crate) const STDERR: u8 = 2;
pub(crate) const EXIT: u8 = 3;

/// The program and its limits.
#[derive(Debug)]
pub(crate) struct Exec {
    pub program: OsString,
    pub args: Vec<OsString>,
    pub timeout: Duration,
    pub max_output: u64,
    pub max_children: usize,
    /// --exec-env: variables passed on beside [`EXEC_ENV`].
    pub env: Vec<OsString>,
    pub running: AtomicUsize,
    /// Ends what a program starts outside its process group.
    pub reaper: Arc<Reaper>,
}

/// The variables of the server's environment every program gets; anything else (tokens,
/// passwords a service manager set) only when --exec-env names it.
pub(crate) const EXEC_ENV: [&str; 7] = ["PATH", "HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "TZ"];

/// One tagged frame.
pub(crate) fn frame(tag: u8, payload: &[u8], out: &mut Vec<u8>) {
    let mut body = Vec::with_capacity(1 + payload.len());
    body.push(tag);
    body.extend_from_slice(payload);
    Framing::Length.encode(&body, out);
}

/// The end frame: exit code and a note.
pub(crate) fn exit_frame(code: i32, note: &str, out: &mut Vec<u8>) {
    let mut payload = code.to_be_bytes().to_vec();
    payload.extend_from_slice(note.as_bytes());
    frame(EXIT, &payload, out);
}

/// What a finished program did.
struct Outcome {
    code: i32,
    note: String,
}

/// How long a finished program's connection is drained of what the client still sends.
const DRAIN: Duration = Duration::from_secs(1);
/// How often a silent program's connection is checked for a client that left.
const HEARTBEAT: Duration = Duration::from_millis(500);

/// Finds PROGRAM as `Command` will: a name with a slash as it is, others on PATH. Checked at
/// start, so a typo is one error line instead of a failure for every client.
pub(crate) fn find_program(program: &std::ffi::OsStr) -> anyhow::Result<std::path::PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let runnable = |p: &std::path::Path| {
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    let path = std::path::Path::new(program);
    if program.as_encoded_bytes().contains(&b'/') {
        if runnable(path) {
            return Ok(path.to_path_buf());
        }
        anyhow::bail!(
            "--exec {}: no such program, or not executable; check the path",
            path.display()
        );
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join(path))
        .find(|p| runnable(p))
        .ok_or_else(|| {
            anyhow::anyhow!(
                "--exec {}: not found on PATH; give the program's full path",
                path.display()
            )
        })
}

/// A running slot, freed when dropped.
struct Slot<'a>(&'a AtomicUsize);

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Exec {
    fn take_slot(&self) -> Option<Slot<'_>> {
        if self.running.fetch_add(1, Ordering::Relaxed) >= self.max_children {
            self.running.fetch_sub(1, Ordering::Relaxed);
            return None;
        }
        Some(Slot(&self.running))
    }

    fn spawn(&self) -> io::Result<(Child, Known<'_>)> {
        let mut cmd = Command::new(&self.program);
        cmd.args(&self.args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own process group, so a timeout kills whatever it started too.
            .process_group(0)
            .env_clear();
        let names = EXEC_ENV
            .iter()
            .map(OsString::from)
            .chain(self.env.iter().cloned());
        for name in names {
            if let Some(value) = std::env::var_os(&name) {
                cmd.env(name, value);
            }
        }
        // Killed if the server dies (even by SIGKILL) while it runs: a program never outlives
        // its server. The thread that spawns it waits for it, so the thread's end (which
        // also fires PDEATHSIG) comes only after the program's.
        // The server blocks SIGINT, SIGTERM and SIGHUP for its signalfd; the program gets them
        // back, SIGINT and SIGTERM with their default action, so `kill` and Ctrl-C stop it as
        // they stop any program (SIGHUP as it came: ignored under nohup).
        // Safety: prctl, signal and sigprocmask are async-signal-safe, and nothing else runs
        // between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == -1 {
                    return Err(io::Error::last_os_error());
                }
                for sig in [libc::SIGINT, libc::SIGTERM] {
                    if libc::signal(sig, libc::SIG_DFL) == libc::SIG_ERR {
                        return Err(io::Error::last_os_error());
                    }
                }
                let mut none = std::mem::MaybeUninit::<libc::sigset_t>::uninit();
                libc::sigemptyset(none.as_mut_ptr());
                if libc::sigprocmask(libc::SIG_SETMASK, none.as_ptr(), std::ptr::null_mut()) == -1 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
        self.reaper.spawn(&mut cmd)
    }

    fn shown(&self) -> String {
        std::iter::once(&self.program)
            .chain(&self.args)
            .map(|a| a.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Runs the program for one connection: the client's bytes to its stdin until the client
    /// half-closes, its output back as frames, then the exit status. Returns the bytes the
    /// client sent and the output bytes sent back.
    pub(crate) fn serve_conn(&self, conn: &Conn) -> (u64, u64) {
        let peer = conn.peer().to_string();
        let Some(_slot) = self.take_slot() else {
            let mut out = Vec::new();
            exit_frame(
                -1,
                &format!(
                    "busy: {} programs running (--max-children)",
                    self.max_children
                ),
                &mut out,
            );
            let _ = conn.send_all(&out);
            warn!(
                "{peer}: refused, {} programs running (--max-children)",
                self.max_children
            );
            return (0, 0);
        };
        let (outcome, bytes_in, bytes_out) = self.run(conn);
        info!("{peer}: ran {}: {}", self.shown(), outcome.note);
        (bytes_in, bytes_out)
    }

    fn run(&self, conn: &Conn) -> (Outcome, u64, u64) {
        // A client that stops reading cannot hold a send, and so the program, past the
        // time limit.
        if let Err(e) = conn.set_write_timeout(Some(self.timeout)) {
            warn!("{}: cannot set a send timeout: {e}", conn.peer());
        }
        // Known as a program until `_known` drops, after the program is reaped.
        let (mut child, _known) = match self.spawn() {
            Ok(spawned) => spawned,
            Err(e) => return (self.cannot_run(&e, &mut |out| conn.send_all(out)), 0, 0),
        };
        let stdin = child.stdin.take();
        let mut bytes_out = 0u64;
        let done = AtomicBool::new(false);
        // The reader below wakes this often to see whether the program is done.
        if let Err(e) = conn.set_read_timeout(Some(Duration::from_millis(200))) {
            warn!("{}: cannot set a receive timeout: {e}", conn.peer());
        }
        let (outcome, bytes_in) = thread::scope(|scope| {
            // The client's bytes to the program's stdin; its end of input closes stdin. Once
            // the program is done, what the client still sends is read and dropped until it
            // closes (at most DRAIN): closing a TCP socket with unread data would reset the
            // connection, and the client could lose the exit status it has not read yet.
            let feed = || {
                thread::Builder::new()
                    .name("exec-stdin".into())
                    .spawn_scoped(scope, || feed_from(conn, stdin, &done))
            };
            let (rx, feeder) = match started(&mut child, feed) {
                Ok(threads) => threads,
                Err(e) => {
                    done.store(true, Ordering::Relaxed);
                    let outcome = busy(&mut child, &e);
                    let mut out = Vec::new();
                    exit_frame(outcome.code, &outcome.note, &mut out);
                    let _ = conn.send_all(&out);
                    return (outcome, 0);
                }
            };
            let mut heartbeat = Vec::new();
            frame(STDOUT, b"", &mut heartbeat);
            let outcome = self.relay(
                &mut |tag, data| {
                    hexdump::dump_if(Way::Out, &conn.peer(), data);
                    let mut out = Vec::with_capacity(data.len() + 5);
                    frame(tag, data, &mut out);
                    bytes_out += out.len() as u64;
                    conn.send_all(&out)
                },
                &mut || conn.send_all(&heartbeat).is_ok(),
                self.max_output,
                &mut child,
                &rx,
            );
            let mut out = Vec::new();
            exit_frame(outcome.code, &outcome.note, &mut out);
            let _ = conn.send_all(&out);
            let _ = conn.shutdown_write();
            // Stops the stdin thread's feeding; it drains, then ends.
            done.store(true, Ordering::Relaxed);
            (outcome, feeder.join().unwrap_or(0))
        });
        (outcome, bytes_in, bytes_out)
    }

    fn cannot_run(&self, e: &io::Error, send: &mut dyn FnMut(&[u8]) -> io::Result<()>) -> Outcome {
        let note = format!("cannot run {}: {e}", self.shown());
        let mut out = Vec::new();
        exit_frame(127, &note, &mut out);
        let _ = send(&out);
        Outcome { code: 127, note }
    }

    /// Sends the program's output as frames as it comes, within the time and size limits;
    /// returns how it ended. While the program is silent, `client_there` is asked now and
    /// then whether anyone still listens.
    fn relay(
        &self,
        send: &mut dyn FnMut(u8, &[u8]) -> io::Result<()>,
        client_there: &mut dyn FnMut() -> bool,
        max_output: u64,
        child: &mut Child,
        outputs: &Outputs,
    ) -> Outcome {
        let deadline = Instant::now() + self.timeout;
        let mut sent = 0u64;
        let mut killed = None;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                killed = Some(self.timed_out());
                break;
            }
            match outputs.rx.recv_timeout(left.min(HEARTBEAT)) {
                Ok((tag, data)) => {
                    sent += data.len() as u64;
                    if sent > max_output {
                        killed = Some(format!("killed: output over {max_output} bytes"));
                        break;
                    }
                    match send(tag, &data) {
                        Ok(()) => {}
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                            killed = Some(format!(
                                "killed: the client read nothing for {:?}",
                                self.timeout
                            ));
                            break;
                        }
                        Err(_) => {
                            killed = Some("killed: the client went away".to_string());
                            break;
                        }
                    }
                }
                Err(RecvTimeoutError::Timeout) if Instant::now() >= deadline => {
                    killed = Some(self.timed_out());
                    break;
                }
                Err(RecvTimeoutError::Timeout) => {
                    if !client_there() {
                        killed = Some("killed: the client went away".to_string());
                        break;
                    }
                    // The program ended but something it started holds its output open:
                    // the program's own answer is complete.
                    if exited(child) {
                        break;
                    }
                }
                Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        self.reap(child, deadline, killed)
    }

    /// How a program whose output closed ended: its exit status, or the reason it is
    /// killed (`killed`, or the deadline passing while it ignores its pipes). Either way its
    /// process group is killed before the program is reaped: what it left running in the
    /// background (`sleep 60 &`) ends with it, within every limit and with the server,
    /// and the group's id is still the program's own while its zombie holds it.
    fn reap(&self, child: &mut Child, deadline: Instant, mut killed: Option<String>) -> Outcome {
        // Output closed: the program has ended, or is about to, or ignores its pipes.
        while killed.is_none() && !exited(child) {
            if Instant::now() >= deadline {
                killed = Some(self.timed_out());
            } else {
                thread::sleep(Duration::from_millis(5));
            }
        }
        kill_group(child);
        let status = child.wait();
        if let Some(note) = killed {
            return Outcome { code: 124, note };
        }
        let (code, note) = match status.map(|s| (s.code(), s.signal())) {
            Ok((Some(code), _)) => (code, format!("exit status {code}")),
            Ok((None, Some(sig))) => (128 + sig, format!("killed by signal {sig}")),
            _ => (-1, "ended".to_string()),
        };
        Outcome { code, note }
    }

    fn timed_out(&self) -> String {
        format!(
            "killed: still running after {:?} (--exec-timeout)",
            self.timeout
        )
    }

    /// Runs the program once with `input` as its stdin, for a datagram from `peer`; the
    /// whole reply, as frames, fits in `max` bytes.
    pub(crate) fn run_once(&self, peer: &str, input: &[u8], max: usize) -> Vec<u8> {
        let mut out = Vec::new();
        let Some(_slot) = self.take_slot() else {
            warn!(
                "{peer}: refused, {} programs running (--max-children)",
                self.max_children
            );
            exit_frame(-1, "busy (--max-children)", &mut out);
            return out;
        };
        let (mut child, _known) = match self.spawn() {
            Ok(spawned) => spawned,
            Err(e) => {
                let outcome = self.cannot_run(&e, &mut |frame| {
                    out.extend_from_slice(frame);
                    Ok(())
                });
                warn!("{peer}: {}", outcome.note);
                return out;
            }
        };
        let stdin = child.stdin.take();
        let mut gathered = [Vec::new(), Vec::new()];
        let done = AtomicBool::new(false);
        let outcome = thread::scope(|scope| {
            let done = &done;
            let feeder = || {
                thread::Builder::new()
                    .name("exec-stdin".into())
                    .spawn_scoped(scope, move || {
                        if let Some(stdin) = stdin {
                            feed(&stdin, input, done);
                        }
                    })
            };
            let rx = match started(&mut child, feeder) {
                Ok((rx, _)) => rx,
                Err(e) => {
                    done.store(true, Ordering::Relaxed);
                    return busy(&mut child, &e);
                }
            };
            // Room for the frame headers and the end frame.
            let budget = (max as u64).saturating_sub(256).min(self.max_output);
            // A datagram client has no connection to lose: only the timeout ends it early.
            // Output is gathered per stream and framed once, so many small writes cost three
            // frame headers, not one each, and the reply fits the datagram.
            let outcome = self.relay(
                &mut |tag, data| {
                    gathered[usize::from(tag == STDERR)].extend_from_slice(data);
                    Ok(())
                },
                &mut || true,
                budget,
                &mut child,
                &rx,
            );
            done.store(true, Ordering::Relaxed);
            outcome
        });
        info!("{peer}: ran {}: {}", self.shown(), outcome.note);
        for (tag, data) in [(STDOUT, &gathered[0]), (STDERR, &gathered[1])] {
            if !data.is_empty() {
                frame(tag, data, &mut out);
            }
        }
        exit_frame(outcome.code, &outcome.note, &mut out);
        out
    }
}

/// What the program's output readers pass on, tagged; dropping it stops the readers.
struct Outputs {
    rx: mpsc::Receiver<(u8, Vec<u8>)>,
    stop: Arc<AtomicBool>,
}

impl Drop for Outputs {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// How often a reader with nothing to read looks whether its program's reply is over.
const READER_CHECK: u16 = 200;

/// Threads that read the program's stdout and stderr and pass what they read, tagged.
///
/// They are not joined: a process the program left behind in a session of its own
/// (`setsid cmd &`) may hold a pipe open after the program ended, until the [`Reaper`] ends
/// it, and its connection must not wait for it. A reader ends when its pipe closes or once its [`Outputs`] is
/// dropped (within [`READER_CHECK`] milliseconds), so no such process keeps a thread.
fn read_outputs(child: &mut Child) -> io::Result<Outputs> {
    // Bounded: a client that reads slowly fills it, then the pipes, and the program waits.
    let (tx, rx) = mpsc::sync_channel(4);
    let stop = Arc::new(AtomicBool::new(false));
    let outputs = Outputs {
        rx,
        stop: Arc::clone(&stop),
    };
    let stdout = child.stdout.take().map(OwnedFd::from);
    let stderr = child.stderr.take().map(OwnedFd::from);
    for (tag, pipe) in [(STDOUT, stdout), (STDERR, stderr)] {
        let (tx, stop) = (tx.clone(), Arc::clone(&stop));
        thread::Builder::new()
            .name("exec-output".into())
            .spawn(move || {
                if let Some(pipe) = pipe {
                    read_pipe(tag, &pipe, &tx, &stop);
                }
            })?;
    }
    Ok(outputs)
}

/// Reads one of the program's pipes until it closes, nobody takes what it read, or `stop`.
fn read_pipe(tag: u8, pipe: &OwnedFd, tx: &mpsc::SyncSender<(u8, Vec<u8>)>, stop: &AtomicBool) {
    let mut buf = vec![0u8; 32 * 1024];
    while !stop.load(Ordering::Relaxed) {
        let mut fds = [PollFd::new(pipe.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::from(READER_CHECK)) {
            Ok(0) | Err(nix::errno::Errno::EINTR) => continue,
            Ok(_) => {}
            Err(_) => return,
        }
        match nix::unistd::read(pipe, &mut buf) {
            Ok(0) => return,
            Ok(n) => {
                if tx.send((tag, buf[..n].to_vec())).is_err() {
                    return;
                }
            }
            Err(nix::errno::Errno::EINTR) => {}
            Err(_) => return,
        }
    }
}

/// The program's output readers, then its stdin feeder (from `feed`): the readers first,
/// since they wait for output while a feeder with little to feed may end at once, so a
/// refused thread is refused whatever the timing.
fn started<'s, T>(
    child: &mut Child,
    feed: impl FnOnce() -> io::Result<thread::ScopedJoinHandle<'s, T>>,
) -> io::Result<(Outputs, thread::ScopedJoinHandle<'s, T>)> {
    let outputs = read_outputs(child)?;
    Ok((outputs, feed()?))
}

/// A program whose threads the OS refused (RLIMIT_NPROC, memory): it is killed and the
/// client hears "busy"; the server goes on.
fn busy(child: &mut Child, e: &io::Error) -> Outcome {
    kill_group(child);
    let _ = child.wait();
    let note = format!("busy: the server cannot start a thread now ({e}); try again later");
    warn!("{note}");
    Outcome { code: -1, note }
}

/// The client's bytes to the program's stdin; its end of input closes stdin. Once the
/// program is done, what the client still sends is read and dropped until it closes (at
/// most DRAIN): closing a TCP socket with unread data would reset the connection, and the
/// client could lose the exit status it has not read yet. Returns the bytes fed.
fn feed_from(conn: &Conn, mut stdin: Option<ChildStdin>, done: &AtomicBool) -> u64 {
    let mut fed = 0u64;
    let mut buf = vec![0u8; MAX_MESSAGE];
    let mut drain_until = None;
    loop {
        match conn.recv(&mut buf) {
            Ok(Received::Data(n)) => {
                hexdump::dump_if(Way::In, &conn.peer(), &buf[..n]);
                match &stdin {
                    Some(pipe) if feed(pipe, &buf[..n], done) => fed += n as u64,
                    // The program stopped reading: drop the pipe, keep draining.
                    Some(_) => stdin = None,
                    None => {}
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                ) => {}
            _ => return fed,
        }
        if done.load(Ordering::Relaxed) {
            stdin = None;
            let until = *drain_until.get_or_insert_with(|| Instant::now() + DRAIN);
            if Instant::now() >= until {
                return fed;
            }
        }
    }
}

/// Writes `data` to the program's stdin; false once that is over (the pipe closed, or `done`
/// was set). The pipe is non-blocking and polled, so a process that holds the pipe open and
/// never reads it (one the program left behind) cannot keep this thread, and the reply
/// waiting for it, past the end of the program.
fn feed(stdin: &ChildStdin, mut data: &[u8], done: &AtomicBool) -> bool {
    let fd = stdin.as_fd();
    // Safety: F_GETFL/F_SETFL on a descriptor this function borrows; no memory is touched.
    unsafe {
        let flags = libc::fcntl(fd.as_raw_fd(), libc::F_GETFL);
        libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK);
    }
    let mut pipe = stdin;
    while !data.is_empty() {
        match pipe.write(data) {
            Ok(n) => data = &data[n..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if done.load(Ordering::Relaxed) {
                    return false;
                }
                let mut fds = [PollFd::new(fd, PollFlags::POLLOUT)];
                let _ = poll(&mut fds, PollTimeout::from(100u16));
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return false,
        }
    }
    true
}

/// Whether the program has ended, without reaping it: its zombie keeps its pid, and so its
/// process group's id, from being reused until [`kill_group`] has run.
fn exited(child: &Child) -> bool {
    let mut info = std::mem::MaybeUninit::<libc::siginfo_t>::zeroed();
    // Safety: waitid fills `info`, which is zeroed first, so si_pid reads 0 when no child
    // changed state (WNOHANG).
    unsafe {
        let flags = libc::WEXITED | libc::WNOHANG | libc::WNOWAIT;
        libc::waitid(libc::P_PID, child.id(), info.as_mut_ptr(), flags) == 0
            && info.assume_init().si_pid() != 0
    }
}

/// The end frame that tells a client off this host its reply was too large to send over
/// datagrams, when one fits in `room` bytes (the request's size): the longest note that does.
fn too_large(room: usize) -> Option<Vec<u8>> {
    end_within(
        room,
        &[
            "reply not sent: larger than the request, to a datagram source off the server's \
             host that is unproven; run exec over tcp",
            "reply larger than the request; use tcp",
            "use tcp",
        ],
    )
}

/// An end frame (exit status -1) with the first of `notes`, longest first, that fits in
/// `room` bytes; `None` when none does.
fn end_within(room: usize, notes: &[&str]) -> Option<Vec<u8>> {
    notes
        .iter()
        .map(|note| {
            let mut out = Vec::new();
            exit_frame(-1, note, &mut out);
            out
        })
        .find(|out| out.len() <= room)
}

/// Kills the program and everything in its process group.
fn kill_group(child: &Child) {
    let pgid = nix::unistd::Pid::from_raw(-(child.id() as i32));
    let _ = nix::sys::signal::kill(pgid, nix::sys::signal::Signal::SIGKILL);
}

/// The exec service: a program per connection or datagram request. Programs block, so
/// connections get blocking sockets and a thread each.
#[derive(Clone, Debug)]
pub(crate) struct ExecService {
    pub exec: Arc<Exec>,
    pub stats: &'static Stats,
}

/// One connection of the exec service.
pub(crate) struct ExecSession {
    conn: Conn,
    service: ExecService,
}

impl super::Service for ExecService {
    type Session = ExecSession;
    type Requests = ExecService;

    fn blocks(&self) -> bool {
        true
    }

    /// A quarter of --max-children (at least one): one source, its programs renewed as
    /// each ends, never holds every program place.
    fn per_source(&self) -> Option<usize> {
        Some((self.exec.max_children / 4).max(1))
    }

    /// The end frame, with the reason as its note: the client prints it and exits non-zero.
    fn refusal(&self, why: &str) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        exit_frame(-1, why, &mut out);
        Some(out)
    }

    fn open(&self, conn: Conn, _: super::Drive) -> ExecSession {
        ExecSession {
            conn,
            service: self.clone(),
        }
    }

    fn datagrams(&self) -> super::Datagrams<ExecService> {
        super::Datagrams::Requests(self.clone())
    }
}

impl super::Session for ExecSession {
    fn conn(&self) -> &Conn {
        &self.conn
    }

    /// Runs the program for the whole connection (a blocking socket).
    fn pump(&mut self, _: &mut [u8]) -> super::Step {
        let (bytes_in, bytes_out) = self.service.exec.serve_conn(&self.conn);
        let stats = self.service.stats;
        stats.message(&mut Tally::default(), bytes_in as usize, bytes_out as usize);
        super::Step::Done(super::ConnEnd::PeerClosed)
    }

    /// The program's line ("ran ...") was the connection's log line.
    fn end(self, _: &super::ConnEnd) {}
}

impl super::Requests for ExecService {
    fn handle(&self, sock: &DatagramSocket, from: &PeerAddr, request: &[u8]) {
        let peer = from.to_string();
        hexdump::dump_if(Way::In, from, request);
        // The reply is one datagram: udp's limit for the sender's family.
        let max = from.0.as_socket().map_or(
            crate::transport::udp::MAX_PAYLOAD_V4,
            crate::transport::udp::max_payload,
        );
        let reply = self.exec.run_once(&peer, request, max);
        self.stats
            .message(&mut Tally::default(), request.len(), reply.len());
        // A datagram's source can be forged from outside this host: a reply larger than the
        // request would let anyone aim this server's output at a victim.
        if reply.len() > request.len() && !from.unforgeable() {
            warn!(
                "{from}: a {}-byte reply to a {}-byte request not sent: the source of a datagram \
                 from off this host is unproven; run exec over tcp for remote clients",
                reply.len(),
                request.len()
            );
            if let Some(short) = too_large(request.len()) {
                let _ = sock.send_to(&short, from);
            }
            return;
        }
        hexdump::dump_if(Way::Out, from, &reply);
        if let Err(e) = sock.send_to(&reply, from) {
            warn!("{from}: reply not sent: {e}");
        }
    }

    fn busy(&self, why: &str) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        exit_frame(-1, &format!("busy: {why}"), &mut out);
        Some(out)
    }

    /// The busy line cut to the request's size: the receive loop sends nothing larger (the
    /// source is unproven there), so a request too short for the whole line hears "busy"
    /// alone, and one shorter than that (an empty request: no end frame has fewer than 9
    /// bytes) hears nothing, which the client's advice names.
    fn busy_for(&self, why: &str, request: &[u8]) -> Option<Vec<u8>> {
        end_within(request.len(), &[&format!("busy: {why}"), "busy"])
    }
}
