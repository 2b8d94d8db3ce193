//! Helpers for tests that start the real `netecho` binary and talk to it over real sockets.
//! Every wait here is bounded: a hung server fails the test instead of hanging it.
#![allow(dead_code)]

pub mod netns;
pub mod strace;

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// The longest any single step of a test may take before it counts as hung.
pub const STEP: Duration = Duration::from_secs(20);
/// One whole `lab --quick` run, tls and quic rows and a queue wait among them, on a loaded
/// 2-core machine (a debug build's quic row alone has taken most of a minute there).
pub const LAB_RUN: Duration = Duration::from_secs(120);

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_netecho")
}

/// How the server's log line ends a connection whose peer closed: on seqpacket a 0-byte
/// read may as well be an empty message, and the log says so.
pub fn peer_closed(proto: &str) -> &'static str {
    match proto {
        "unix-seqpacket" => "closed: a 0-byte read (an empty message or the peer's close)",
        _ => "closed by peer",
    }
}

/// A running `netecho serve`, killed when dropped.
pub struct Server {
    child: Child,
    /// The protocol and address of its `listening` line, e.g. `tcp` and `127.0.0.1:40001`.
    pub proto: String,
    pub addr: String,
    stdout: Receiver<String>,
    stderr: Log,
}

impl Server {
    /// Starts `netecho serve ARGS` and waits for its `listening` line.
    pub fn start(args: &[&str]) -> Server {
        Server::start_with(Command::new(bin()).arg("serve").args(args))
    }

    /// Starts a prepared command (for a different user, say) and waits for `listening`.
    pub fn start_with(cmd: &mut Command) -> Server {
        let mut child = with_sigint(cmd, false)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start netecho serve");
        // Killed when dropped from here on, a start that fails too.
        let mut server = Server {
            stdout: lines(child.stdout.take().unwrap()),
            stderr: collect(child.stderr.take().unwrap()),
            child,
            proto: String::new(),
            addr: String::new(),
        };
        let Ok(first) = server.stdout.recv_timeout(STEP) else {
            panic!(
                "server printed no listening line; stderr:\n{}",
                server.stderr.text()
            );
        };
        let mut parts = first.splitn(3, ' ');
        assert_eq!(parts.next(), Some("listening"), "first line: {first}");
        server.proto = parts.next().expect("proto").to_string();
        // What follows the address (a TLS fingerprint) is not part of it.
        let addr = parts.next().expect("address");
        server.addr = addr.split(' ').next().unwrap_or(addr).to_string();
        server
    }

    /// `proto://addr`, which sets the protocol for a client.
    pub fn url(&self) -> String {
        format!("{}://{}", self.proto, self.addr)
    }

    /// The port of an IP server.
    pub fn port(&self) -> u16 {
        self.addr.rsplit(':').next().unwrap().parse().expect("port")
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything the server logged so far.
    pub fn stderr(&self) -> String {
        self.stderr.text()
    }

    /// The fingerprint a server with a certificate made at start logs for clients to pin.
    pub fn pin(&self) -> String {
        let log = self.wait_log("--pin ");
        let at = log.find("--pin ").unwrap() + 6;
        let word = log[at..].split_whitespace().next().unwrap();
        word.trim_end_matches('`').to_string()
    }

    /// Waits until the server's log contains `needle`; panics with the log after [`STEP`].
    pub fn wait_log(&self, needle: &str) -> String {
        let deadline = Instant::now() + STEP;
        loop {
            let log = self.stderr();
            if log.contains(needle) {
                return log;
            }
            assert!(
                Instant::now() < deadline,
                "server log never showed {needle:?}; log:\n{log}"
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until `needle` appears `count` times in the server's log.
    pub fn wait_log_count(&self, needle: &str, count: usize) -> String {
        let deadline = Instant::now() + STEP;
        loop {
            let log = self.stderr();
            let seen = log.matches(needle).count();
            if seen >= count {
                return log;
            }
            assert!(
                Instant::now() < deadline,
                "server log showed {needle:?} {seen} times, not {count}; log:\n{log}"
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// The next line the server prints on stdout after `listening`; panics after [`STEP`].
    pub fn next_line(&self) -> String {
        self.stdout
            .recv_timeout(STEP)
            .unwrap_or_else(|_| panic!("no further line on stdout; log:\n{}", self.stderr()))
    }

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// Waits for the server to end on its own (at most [`STEP`]): its status and stderr.
    pub fn wait_exit(&mut self) -> (ExitStatus, String) {
        let status = wait_exit(&mut self.child, "the server");
        (status, self.stderr.whole())
    }

    /// Sends `signal` and waits for the exit: status, the rest of stdout, and stderr.
    pub fn stop(self, signal: &str) -> (ExitStatus, String, String) {
        let status = Command::new("kill")
            .args(["-s", signal, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        self.finish()
    }

    /// Waits for the exit the test caused: status, the rest of stdout, and stderr.
    pub fn finish(mut self) -> (ExitStatus, String, String) {
        let status = wait_child(&mut self.child);
        // Everything the process wrote: both pipes read to their end (the exit closed them).
        let deadline = Instant::now() + STEP;
        let mut rest = String::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stdout.recv_timeout(left) {
                Ok(line) => {
                    rest.push_str(&line);
                    rest.push('\n');
                }
                Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => {
                    panic!("stdout still open {STEP:?} after the exit (a process holds it?)")
                }
            }
        }
        (status, rest, self.stderr.whole())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // Only while it runs: the pid of a child already waited for may be another's now.
        if let Ok(None) = self.child.try_wait() {
            kill_sessions_under(self.child.id());
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Kills the process group of each child of `pid` that leads one: `script` starts the
/// program it runs in a session of its own, which killing `script` leaves running.
fn kill_sessions_under(pid: u32) {
    use nix::unistd::{Pid, getpgid, getpgrp};
    for child in child_pids(pid) {
        let child = Pid::from_raw(child as i32);
        if getpgid(Some(child)) == Ok(child) && child != getpgrp() {
            let _ = nix::sys::signal::killpg(child, nix::sys::signal::Signal::SIGKILL);
        }
    }
}

fn lines(out: impl Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// A process's stderr as it is read, and whether the pipe has reached its end.
#[derive(Clone)]
struct Log {
    text: Arc<Mutex<String>>,
    ended: Arc<AtomicBool>,
}

impl Log {
    fn text(&self) -> String {
        self.text.lock().unwrap().clone()
    }

    /// All of it: waits (bounded by [`STEP`]) until the writer closed the pipe, which the
    /// process's exit does.
    fn whole(&self) -> String {
        let deadline = Instant::now() + STEP;
        while !self.ended.load(Ordering::Acquire) {
            assert!(
                Instant::now() < deadline,
                "stderr still open {STEP:?} after the exit (a process holds it?); so far:\n{}",
                self.text()
            );
            thread::sleep(Duration::from_millis(5));
        }
        self.text()
    }
}

fn collect(mut out: impl Read + Send + 'static) -> Log {
    let log = Log {
        text: Arc::new(Mutex::new(String::new())),
        ended: Arc::new(AtomicBool::new(false)),
    };
    let sink = log.clone();
    thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = out.read(&mut buf) {
            if n == 0 {
                break;
            }
            sink.text
                .lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
        sink.ended.store(true, Ordering::Release);
    });
    log
}

fn wait_child(child: &mut Child) -> ExitStatus {
    wait_exit(child, "the process")
}

/// Waits for `child` to exit, for at most [`STEP`]; past it kills it and fails, naming `what`.
pub fn wait_exit(child: &mut Child, what: &str) -> ExitStatus {
    wait_exit_within(child, what, STEP)
}

/// Waits for `child` to exit, for at most `limit`; past it kills it and fails.
pub fn wait_exit_within(child: &mut Child, what: &str, limit: Duration) -> ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} did not exit within {limit:?}; killed");
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// The first line a child with piped stdout writes ("" when it exits first), waited for at
/// most [`STEP`]: `None` past it.
pub fn first_line(child: &mut Child) -> Option<String> {
    let stdout = child.stdout.take()?;
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    rx.recv_timeout(STEP).ok()
}

/// Waits for a spawned child with piped stdout and stderr, for at most `limit`: its output,
/// as `wait_with_output` gives it. Past the limit it is killed and the test fails with what
/// it wrote on stderr.
pub fn output_within(mut child: Child, what: &str, limit: Duration) -> Output {
    let (mut out, mut err) = (child.stdout.take(), child.stderr.take());
    let out = thread::spawn(move || {
        let mut v = Vec::new();
        if let Some(out) = out.as_mut() {
            let _ = out.read_to_end(&mut v);
        }
        v
    });
    let err = thread::spawn(move || {
        let mut v = Vec::new();
        if let Some(err) = err.as_mut() {
            let _ = err.read_to_end(&mut v);
        }
        v
    });
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            let err = err.join().unwrap_or_default();
            panic!(
                "{what} did not exit within {limit:?}; killed. Its stderr:\n{}",
                String::from_utf8_lossy(&err)
            );
        }
        thread::sleep(Duration::from_millis(10));
    };
    Output {
        status,
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    }
}

/// Runs `netecho ARGS` with `stdin` as its input, bounded by [`STEP`].
pub fn netecho(args: &[&str], stdin: &[u8]) -> Output {
    run(Command::new(bin()).args(args), stdin)
}

/// Runs a prepared command with `stdin` as its input, bounded by [`STEP`].
pub fn run(cmd: &mut Command, stdin: &[u8]) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start netecho");
    let mut input = child.stdin.take().unwrap();
    let stdin = stdin.to_vec();
    let feeder = thread::spawn(move || {
        let _ = input.write_all(&stdin);
    });
    let (mut out, mut err) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let out = thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out.read_to_end(&mut v);
        v
    });
    let err = thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err.read_to_end(&mut v);
        v
    });
    let status = wait_child(&mut child);
    let _ = feeder.join();
    Output {
        status,
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    }
}

/// Asserts success and returns stdout as text.
pub fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Asserts failure with exit code `code` and one error line on stderr; returns that line.
pub fn fails(out: &Output, code: i32) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        out.status.code(),
        Some(code),
        "expected exit {code}; stdout: {}\nstderr: {stderr}",
        String::from_utf8_lossy(&out.stdout)
    );
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error")).collect();
    assert_eq!(errors.len(), 1, "expected one error line, got:\n{stderr}");
    errors[0].to_string()
}

/// Asserts that `line` (an error line, say) contains every one of `parts`.
pub fn assert_mentions(line: &str, parts: &[&str]) {
    for part in parts {
        assert!(line.contains(part), "{part:?} missing from: {line}");
    }
}

/// A process's status as a shell's `$?` shows it: its exit code, or 128 plus the number of
/// the signal that ended it (130 for SIGINT, 143 for SIGTERM).
pub fn shell_status(status: &ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .or(status.signal().map(|signal| 128 + signal))
        .expect("an exit code or a signal")
}

/// Gives `cmd` a stdout whose reader is gone before it starts (`| head` that already
/// quit): the write end of a pipe whose read end is closed, both made in the child between
/// fork and exec. Made here, the read end could be copied into a child that another test's
/// thread starts meanwhile and stay open there (until that child's exec, or for good
/// without close-on-exec): the writes would go into the pipe, and the reader never leave.
pub fn with_closed_stdout(cmd: &mut Command) -> &mut Command {
    use std::os::unix::process::CommandExt;
    // SAFETY: pipe2(2), close(2) and dup2(2) are async-signal-safe, and the child alone
    // runs them.
    unsafe {
        cmd.pre_exec(|| {
            let mut ends = [0; 2];
            if libc::pipe2(ends.as_mut_ptr(), libc::O_CLOEXEC) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            libc::close(ends[0]);
            // fd 1 is the write end, kept across exec; ends[1] closes at exec.
            if libc::dup2(ends[1], 1) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        })
    }
}

/// Gives `cmd` `/dev/full` as its stdout: every write there fails with ENOSPC.
pub fn with_full_stdout(cmd: &mut Command) -> &mut Command {
    cmd.stdout(std::fs::File::create("/dev/full").unwrap())
}

/// What gives a child its stdout: [`with_closed_stdout`], [`with_full_stdout`].
pub type SetStdout = fn(&mut Command) -> &mut Command;

/// `netecho ARGS`, its stdout as `stdout` gives it: its status and stderr.
pub fn written_to(args: &[&str], stdout: SetStdout) -> (ExitStatus, String) {
    let mut cmd = Command::new(bin());
    cmd.args(args).stdin(Stdio::null()).stderr(Stdio::piped());
    let child = stdout(&mut cmd).spawn().unwrap();
    let out = output_within(child, "netecho writing to a closed or full stdout", STEP);
    (
        out.status,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// An RFC 862 echo server (`--transform echo`: bytes back unchanged, so what comes back must
/// equal what went) for `proto` at `addr`: on this host, or in `pair`'s server namespace.
pub fn echo_server(proto: &str, addr: &str, pair: Option<&netns::Pair>) -> Server {
    let args = [
        "serve",
        "--proto",
        proto,
        "--addr",
        addr,
        "--transform",
        "echo",
    ];
    Server::start_with(&mut netecho_in(pair, &args))
}

/// `netecho ARGS` on this host, or in `pair`'s server namespace.
pub fn netecho_in(pair: Option<&netns::Pair>, args: &[&str]) -> Command {
    match pair {
        Some(pair) => pair.server_cmd(args),
        None => {
            let mut cmd = Command::new(bin());
            cmd.args(args);
            cmd
        }
    }
}

/// `serve --model MODEL --proto PROTO --addr ADDR`: the default service under one model.
pub fn serve_model(model: &str, proto: &str, addr: &str) -> Server {
    Server::start(&["--model", model, "--proto", proto, "--addr", addr])
}

/// A file server over `proto` on loopback serving `dir` (over udp, TFTP too), with `extra`
/// flags.
pub fn files_server(proto: &str, dir: &std::path::Path, extra: &[&str]) -> Server {
    let dir = dir.to_str().expect("a UTF-8 path");
    let mut args = vec!["--proto", proto, "--addr", "127.0.0.1:0", "--files", dir];
    args.extend_from_slice(extra);
    Server::start(&args)
}

/// The bytes waiting in the receive queue of the udp socket of this namespace on `port`
/// (/proc/net/udp's rx_queue).
pub fn unread_udp(port: u16) -> u64 {
    let table = std::fs::read_to_string("/proc/net/udp").unwrap();
    let local = format!(":{port:04X}");
    table
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .filter(|cols| cols.len() > 4 && cols[1].ends_with(&local))
        .map(|cols| u64::from_str_radix(cols[4].split(':').nth(1).unwrap(), 16).unwrap())
        .sum()
}

/// Starts `netecho relay ARGS` and waits for its `listening` line.
pub fn relay(args: &[&str]) -> Server {
    Server::start_with(Command::new(bin()).arg("relay").args(args))
}

/// A fresh temporary directory for Unix socket paths.
pub fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("netecho-test")
        .tempdir()
        .expect("temp dir")
}

/// Bytes an unprivileged user may still write on the file system of `dir` (statvfs
/// f_bavail), as a file server counts them.
pub fn free_space(dir: &std::path::Path) -> u64 {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).unwrap();
    // Safety: statvfs is plain data, filled in by the call on a valid C string.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    assert_eq!(unsafe { libc::statvfs(path.as_ptr(), &mut st) }, 0);
    st.f_bavail as u64 * st.f_frsize as u64
}

/// A tmpfs of 1 MiB and `inodes` inodes, mounted on a directory of its own and unmounted
/// when dropped; `None` where mount(2) is refused (no root, or a container without
/// CAP_SYS_ADMIN).
pub struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    pub fn mount(inodes: u32) -> Option<Tmpfs> {
        let dir = tempdir();
        let options = format!("size=1m,nr_inodes={inodes},mode=0755");
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &options, "tmpfs"])
            .arg(dir.path())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        mounted.then_some(Tmpfs { dir })
    }

    pub fn path(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// Takes every free inode with empty files; returns how many.
    pub fn fill_inodes(&self) -> usize {
        // Bounded: a tmpfs that never runs out of inodes ends the loop too.
        (0..100_000)
            .take_while(|i| std::fs::write(self.path().join(format!("fill{i}")), b"").is_ok())
            .count()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

/// Makes `cmd`'s process write files of at most `bytes` (RLIMIT_FSIZE), a write past that
/// failing with EFBIG ("File too large") rather than killing it with SIGXFSZ: a disk that
/// fills, without a small file system to mount, and a bound on what a server that ought
/// to refuse an upload writes if it does not.
pub fn limit_file_size(cmd: &mut Command, bytes: u64) -> &mut Command {
    use std::os::unix::process::CommandExt;
    // Safety: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            let limit = libc::rlimit {
                rlim_cur: bytes,
                rlim_max: bytes,
            };
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            if libc::setrlimit(libc::RLIMIT_FSIZE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        })
    }
}

/// A unique abstract Unix name for this test process.
pub fn abstract_name(tag: &str) -> String {
    format!("@netecho-test-{}-{tag}", std::process::id())
}

/// Whether this process may run commands as another user (root, with setpriv present).
pub fn can_switch_user() -> bool {
    let root = nix::unistd::Uid::effective().is_root();
    let setpriv = Command::new("setpriv")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    root && setpriv
}

/// Whether `as_nobody` can run the binary here: root, setpriv, and a binary nobody may
/// execute. Prints why not, so a skipped test says so.
pub fn nobody_can_run(test: &str) -> bool {
    if !can_switch_user() {
        skip(
            test,
            "root and setpriv (util-linux) to run the binary as nobody",
            Lacks::Provided,
        );
        return false;
    }
    let out = run(&mut as_nobody(&["--version"]), b"");
    if !out.status.success() {
        skip(
            test,
            &format!(
                "a binary the user nobody may execute; nobody cannot run {} ({})",
                bin(),
                String::from_utf8_lossy(&out.stderr).trim()
            ),
            Lacks::Environment,
        );
        return false;
    }
    true
}

/// An IPv4 socket of `ty` owned by nobody (uid 65534), as [`socket_of`] makes one.
pub fn nobody_socket(ty: socket2::Type) -> socket2::Socket {
    socket_of(65534, ty)
}

/// An IPv4 socket of `ty` owned by `uid`: made on a thread of its own whose file system uid
/// is `uid`, as the kernel tells a socket's owner (sock_diag), as if a process of that user
/// had made it. Needs root.
pub fn socket_of(uid: u32, ty: socket2::Type) -> socket2::Socket {
    made_as(uid, move || {
        socket2::Socket::new(socket2::Domain::IPV4, ty, None).unwrap()
    })
}

/// What `make` makes on a thread of its own whose file system uid is `uid`: a socket made
/// there is `uid`'s, as the kernel tells (sock_diag). Needs root.
pub fn made_as<T: Send + 'static>(uid: u32, make: impl FnOnce() -> T + Send + 'static) -> T {
    thread::spawn(move || {
        nix::unistd::setfsuid(nix::unistd::Uid::from_raw(uid));
        make()
    })
    .join()
    .unwrap()
}

/// `sock`, a TCP socket, bound to `source` (an address of this host) and connected to `to`;
/// its reads wait at most [`STEP`].
pub fn tcp_from(sock: socket2::Socket, source: &str, to: &str) -> std::net::TcpStream {
    let to: std::net::SocketAddr = to.parse().unwrap();
    let from: std::net::SocketAddr = format!("{source}:0").parse().unwrap();
    sock.bind(&from.into()).unwrap();
    sock.connect(&to.into()).unwrap();
    let stream: std::net::TcpStream = sock.into();
    stream.set_read_timeout(Some(STEP)).unwrap();
    stream
}

/// A command that runs `netecho ARGS` as the unprivileged user nobody.
pub fn as_nobody(args: &[&str]) -> Command {
    as_user(65534, args)
}

/// A command that runs `netecho ARGS` as the user `uid` (its group the same number).
pub fn as_user(uid: u32, args: &[&str]) -> Command {
    let mut cmd = Command::new("setpriv");
    cmd.args([&format!("--reuid={uid}"), &format!("--regid={uid}")])
        .args(["--clear-groups", "--inh-caps=-all", "--", bin()])
        .args(args);
    cmd
}

/// Lets every user of this host connect to the socket file at `path`: it 0666, its
/// directory 0755 (as an operator sharing a server's socket does).
pub fn open_to_all(path: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt;
    let mode = |path: &std::path::Path, mode| {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap()
    };
    mode(path.parent().unwrap(), 0o755);
    mode(path, 0o666);
}

/// `n` connections to the Unix stream socket at `path` made by a process of the user `uid`
/// (python3 under setpriv), held open until the peer is dropped (at most 120 s): once this
/// returns, each has been made, so the server accepts them before any made after.
pub fn unix_held_by(uid: u32, path: &std::path::Path, n: usize) -> Peer {
    let script = "import socket, sys, time\n\
                  held = []\n\
                  for _ in range(int(sys.argv[2])):\n\
                  \x20   s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)\n\
                  \x20   s.connect(sys.argv[1]); held.append(s)\n\
                  print('held', len(held), flush=True)\n\
                  time.sleep(120)\n";
    let mut cmd = Command::new("setpriv");
    cmd.args([&format!("--reuid={uid}"), &format!("--regid={uid}")])
        .args(["--clear-groups", "--"])
        // The system python3: a per-user one (pyenv under /root) is not nobody's to run.
        .args(["/usr/bin/python3", "-c", script])
        .arg(path)
        .arg(n.to_string());
    let (peer, said) = started(&mut cmd);
    assert_eq!(said, format!("held {n}"), "the connections of uid {uid}");
    peer
}

/// Whether this process may give a command a network and mount namespace of its own
/// (`unshare -nm`: root and util-linux); says why not when it cannot.
pub fn can_unshare(test: &str) -> bool {
    let can = Command::new("unshare")
        .args(["-nm", "true"])
        .status()
        .is_ok_and(|s| s.success());
    if !can {
        let needs = "root and unshare (util-linux) for a namespace of its own";
        skip(test, needs, Lacks::Provided);
    }
    can
}

/// Whether this process may open raw sockets (CAP_NET_RAW, which root has). When not, says
/// so on stderr with the test's name, so a skipped test never passes silently.
pub fn can_open_raw(test: &str) -> bool {
    match socket2::Socket::new(
        socket2::Domain::IPV4,
        socket2::Type::RAW,
        Some(socket2::Protocol::from(253)),
    ) {
        Ok(_) => true,
        Err(e) => {
            skip(
                test,
                &format!("CAP_NET_RAW to open a raw socket (root; here: {e})"),
                Lacks::Provided,
            );
            false
        }
    }
}

/// Whether this process can run a command with CAP_NET_RAW taken away (root, setpriv);
/// says why not when it cannot.
pub fn can_drop_net_raw(test: &str) -> bool {
    if !can_switch_user() {
        skip(
            test,
            "root and setpriv (util-linux) to run the binary without CAP_NET_RAW",
            Lacks::Provided,
        );
        return false;
    }
    true
}

/// What a skipped test lacks.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Lacks {
    /// A command or privilege that `.ci/run` provides (it installs the packages and runs
    /// as root): under `CI=true` its absence fails the test instead.
    Provided,
    /// Something of this machine no script can promise (a free well-known port, IPv6 on
    /// loopback, a quiet counter).
    Environment,
}

/// The file every skip is appended to: `$NETECHO_SKIP_LOG`, or one under target/tmp.
pub fn skip_log() -> std::path::PathBuf {
    match std::env::var_os("NETECHO_SKIP_LOG") {
        Some(path) => path.into(),
        None => std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("skipped-tests.txt"),
    }
}

/// Records that `test` (or part of it) did not run because it `needs` something: on
/// stderr, and as a line of [`skip_log`], which `.ci/run` counts and lists at the end (cargo
/// test hides a passing test's stderr). Under `CI=true` a missing command or privilege that
/// `.ci/run` provides fails the test.
pub fn skip(test: &str, needs: &str, lacks: Lacks) {
    // One line per skip, however many lines `needs` quotes.
    let needs = needs.split_whitespace().collect::<Vec<_>>().join(" ");
    let line = format!("{test}: skipped: needs {needs}");
    eprintln!("{line}");
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    if ci && lacks == Lacks::Provided {
        panic!("{line}; .ci/run should have provided it (CI=true)");
    }
    let path = skip_log();
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    // One write of one line with O_APPEND: tests skipping at once do not mix their lines.
    let appended = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .and_then(|mut f| f.write_all(format!("{line}\n").as_bytes()));
    if let Err(e) = appended {
        eprintln!("cannot record the skip in {}: {e}", path.display());
    }
}

/// setpriv's arguments that run the command after them as root but without CAP_NET_RAW:
/// removed from the bounding set, so the exec'd binary cannot have it.
pub const NO_NET_RAW: [&str; 3] = ["--bounding-set=-net_raw", "--inh-caps=-net_raw", "--"];

/// A command that runs `netecho ARGS` as root but without CAP_NET_RAW ([`NO_NET_RAW`]).
pub fn without_net_raw(args: &[&str]) -> Command {
    let mut cmd = Command::new("setpriv");
    cmd.args(NO_NET_RAW).arg(bin()).args(args);
    cmd
}

/// A plain socket in the test, of any protocol, connected to a server's address: what a
/// client in another language would do, without netecho's own client in the way.
pub struct Plain {
    pub sock: socket2::Socket,
    pub proto: String,
}

/// The socket2 address of a server address as its `listening` line shows it.
pub fn sockaddr(proto: &str, addr: &str) -> socket2::SockAddr {
    use std::os::unix::ffi::OsStrExt;
    if proto.starts_with("unix") {
        let bytes = match addr.strip_prefix('@') {
            Some(name) => [&[0u8][..], name.as_bytes()].concat(),
            None => addr.as_bytes().to_vec(),
        };
        socket2::SockAddr::unix(std::ffi::OsStr::from_bytes(&bytes)).expect("unix address")
    } else {
        let ip: std::net::SocketAddr = addr.parse().expect("IP address");
        ip.into()
    }
}

impl Plain {
    /// A socket of `proto` connected to `addr`, every read bounded by [`STEP`]. A datagram
    /// socket binds an address of its own first (port 0, or an autobound abstract name) so
    /// the server can answer it.
    pub fn connect(proto: &str, addr: &str) -> Plain {
        Plain::try_connect(proto, addr).unwrap_or_else(|e| panic!("connect {proto} {addr}: {e}"))
    }

    pub fn try_connect(proto: &str, addr: &str) -> std::io::Result<Plain> {
        use socket2::{Domain, Socket, Type};
        let to = sockaddr(proto, addr);
        let (domain, ty) = match proto {
            "tcp" => (Domain::for_address(to.as_socket().unwrap()), Type::STREAM),
            "udp" => (Domain::for_address(to.as_socket().unwrap()), Type::DGRAM),
            "unix" => (Domain::UNIX, Type::STREAM),
            "unix-dgram" => (Domain::UNIX, Type::DGRAM),
            "unix-seqpacket" => (Domain::UNIX, Type::SEQPACKET),
            other => panic!("unknown protocol {other}"),
        };
        let sock = Socket::new(domain, ty, None)?;
        match proto {
            "udp" => {
                let any: std::net::SocketAddr = if to.is_ipv6() {
                    "[::1]:0".parse().unwrap()
                } else {
                    "127.0.0.1:0".parse().unwrap()
                };
                sock.bind(&any.into())?;
            }
            "unix-dgram" => sock.bind(&socket2::SockAddr::unix("")?)?,
            _ => {}
        }
        sock.connect(&to)?;
        sock.set_read_timeout(Some(STEP))?;
        sock.set_write_timeout(Some(STEP))?;
        Ok(Plain {
            sock,
            proto: proto.to_string(),
        })
    }

    /// Whether the socket keeps message boundaries (one send, one reply).
    pub fn is_message(&self) -> bool {
        !matches!(self.proto.as_str(), "tcp" | "unix")
    }

    /// Sends all of `msg` (one datagram or packet on a message socket).
    pub fn send(&self, msg: &[u8]) {
        let mut sock = &self.sock;
        if self.is_message() {
            let n = sock.write(msg).expect("send");
            assert_eq!(n, msg.len(), "short send of a message");
        } else {
            sock.write_all(msg).expect("send");
        }
    }

    /// Reads the reply to a `len`-byte message: `len` bytes of a stream, or one message.
    pub fn reply(&self, len: usize) -> Vec<u8> {
        self.try_reply(len).expect("read the reply")
    }

    pub fn try_reply(&self, len: usize) -> std::io::Result<Vec<u8>> {
        let mut sock = &self.sock;
        if self.is_message() {
            let mut buf = vec![0u8; len.max(1) + 65536];
            let n = sock.read(&mut buf)?;
            buf.truncate(n);
            Ok(buf)
        } else {
            let mut buf = vec![0u8; len];
            sock.read_exact(&mut buf)?;
            Ok(buf)
        }
    }

    /// Sends `msg` and checks the reply is it, ASCII letters upper-cased, byte for byte.
    pub fn exchange(&self, msg: &[u8]) {
        self.send(msg);
        let got = self.reply(msg.len());
        assert!(
            got == msg.to_ascii_uppercase(),
            "{}: reply of {} bytes differs from the {}-byte message",
            self.proto,
            got.len(),
            msg.len()
        );
    }

    /// The local port of an IP socket.
    pub fn local_port(&self) -> u16 {
        self.sock.local_addr().unwrap().as_socket().unwrap().port()
    }

    /// Closes with a reset: SO_LINGER 0 makes close(2) send RST instead of FIN on TCP.
    pub fn reset(self) {
        self.sock
            .set_linger(Some(Duration::ZERO))
            .expect("SO_LINGER 0");
        drop(self.sock);
    }
}

/// Sends one byte and reads its one-byte echo over `stream`, at most `rounds` times, until
/// the server ends the connection: the rounds answered. Panics when the rounds stop for any
/// other reason (a read timeout, `rounds` all answered). `write_all` and `read_exact` retry
/// an interrupted call: a recv with a timeout fails with EINTR when this process is stopped
/// and continued, even without a signal handler.
pub fn echo_until_closed(stream: &mut std::net::TcpStream, rounds: usize) -> usize {
    let mut reply = [0u8; 1];
    for served in 0..rounds {
        let ended = match stream.write_all(b"x") {
            Ok(()) => stream.read_exact(&mut reply).err(),
            Err(e) => Some(e),
        };
        let Some(e) = ended else { continue };
        let closed = [
            std::io::ErrorKind::UnexpectedEof,
            std::io::ErrorKind::ConnectionReset,
            std::io::ErrorKind::BrokenPipe,
        ];
        assert!(
            closed.contains(&e.kind()),
            "round {served}: {e} (not a close)"
        );
        return served;
    }
    panic!("{rounds} rounds answered: the server never ended the connection");
}

/// The log's lines containing `needle`, and how many more like them its lines say were
/// left out ("(K more like it left out of the log)").
pub fn logged(log: &str, needle: &str) -> (usize, usize) {
    let lines: Vec<&str> = log.lines().filter(|l| l.contains(needle)).collect();
    let left_out = lines
        .iter()
        .filter_map(|l| l.split(" more like it left out").next()?.rsplit('(').next())
        .filter_map(|k| k.parse::<usize>().ok())
        .sum();
    (lines.len(), left_out)
}

/// The lines a server's throttles left out that no later line counted, as it says when it
/// stops ("N more log lines like those above were left out"); 0 when it says nothing.
pub fn left_out_at_stop(log: &str) -> usize {
    log.lines()
        .find(|l| l.contains("more log lines like those above were left out"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

/// A message that differs for every client and every round, with every byte value in it.
pub fn message(client: usize, round: usize, len: usize) -> Vec<u8> {
    let mut msg = format!("client {client} round {round}: ").into_bytes();
    let mut i = client * 7 + round * 13;
    while msg.len() < len {
        msg.push((i % 256) as u8);
        i += 1;
    }
    msg.truncate(len.max(1));
    msg
}

/// Bytes no line rule keeps: CRLF and a lone CR, empty lines, NULs, every byte value x64,
/// and no newline at the end (about 17 KB).
pub fn awkward_bytes() -> Vec<u8> {
    let mut data = b"GET / HTTP/1.0\r\n\r\none\n\n\ntwo\r\n\r".to_vec();
    for _ in 0..64 {
        data.extend(0..=255u8);
    }
    data.extend([0u8; 1000]);
    data.extend(b"\n\r\n\x00\xffno newline at the end");
    data
}

/// Asserts that `got` is `want` byte for byte, naming the first difference (not the bytes).
pub fn same_bytes(got: &[u8], want: &[u8], what: &str) {
    let at = got.iter().zip(want).position(|(g, w)| g != w);
    assert!(
        got == want,
        "{what}: got {} bytes, want {}; first difference at byte {:?}",
        got.len(),
        want.len(),
        at.unwrap_or(got.len().min(want.len()))
    );
}

/// The summary line `stopped by SIGNAL: clients N, messages N, bytes in N, bytes out N`,
/// parsed: (signal, clients, messages, bytes in, bytes out).
pub fn summary(stdout: &str) -> (String, u64, u64, u64, u64) {
    let line = stdout
        .lines()
        .find(|l| l.starts_with("stopped by "))
        .unwrap_or_else(|| panic!("no summary line on stdout:\n{stdout}"));
    let rest = line.strip_prefix("stopped by ").unwrap();
    let (signal, counts) = rest.split_once(": ").expect("summary: signal and counts");
    let fields: Vec<u64> = counts
        .split(", ")
        .zip(["clients ", "messages ", "bytes in ", "bytes out "])
        .map(|(field, name)| {
            field
                .strip_prefix(name)
                .unwrap_or_else(|| panic!("summary field {field:?} is not {name:?}: {line}"))
                .parse()
                .expect("a number")
        })
        .collect();
    assert_eq!(fields.len(), 4, "summary line: {line}");
    (
        signal.to_string(),
        fields[0],
        fields[1],
        fields[2],
        fields[3],
    )
}

/// Resident memory of a process and its child processes, in KiB (VmRSS of /proc/PID/status).
pub fn rss_kib(pid: u32) -> u64 {
    let own = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0);
    let children = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|c| c.parse::<u32>().ok())
        .map(rss_kib)
        .sum::<u64>();
    own + children
}

/// How many file descriptors process `pid` has open (entries of /proc/PID/fd).
pub fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// Starts `cmd`'s program with SIGINT ignored (`true`), as a background job of a script
/// inherits it, or with its default action (`false`), whichever way the test harness itself
/// was started: a program keeps an inherited ignored SIGINT, so a test of what SIGINT does
/// sets it.
pub fn with_sigint(cmd: &mut Command, ignored: bool) -> &mut Command {
    with_signal(cmd, nix::sys::signal::Signal::SIGINT, ignored)
}

/// Starts `cmd`'s program with SIGHUP ignored (`true`), as `nohup` starts it, or with its
/// default action (`false`), whichever way the test harness itself was started.
pub fn with_sighup(cmd: &mut Command, ignored: bool) -> &mut Command {
    with_signal(cmd, nix::sys::signal::Signal::SIGHUP, ignored)
}

/// Starts `cmd`'s program with `signal` ignored or with its default action.
fn with_signal(cmd: &mut Command, signal: nix::sys::signal::Signal, ignored: bool) -> &mut Command {
    use nix::sys::signal::SigHandler;
    use std::os::unix::process::CommandExt;
    let action = if ignored {
        SigHandler::SigIgn
    } else {
        SigHandler::SigDfl
    };
    // SAFETY: signal(2) is async-signal-safe, and installs no handler of ours.
    unsafe {
        cmd.pre_exec(move || {
            nix::sys::signal::signal(signal, action)
                .map(drop)
                .map_err(std::io::Error::from)
        })
    }
}

/// Sends a signal (`STOP`, `CONT`, ...) to a process.
pub fn signal(pid: u32, name: &str) {
    let status = Command::new("kill")
        .args(["-s", name, &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill -s {name} {pid}");
}

/// Stops a process (SIGSTOP) and waits until each of its threads has stopped: what is sent
/// to it from then on waits in its sockets, unread, until SIGCONT.
pub fn hold(pid: u32) {
    signal(pid, "STOP");
    eventually("each thread stopped", || {
        let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
        tasks
            .flatten()
            .all(|task| {
                std::fs::read_to_string(task.path().join("stat")).is_ok_and(|stat| {
                    stat.rsplit_once(')')
                        .is_some_and(|(_, rest)| rest.trim_start().starts_with('T'))
                })
            })
            .then_some(())
    });
}

/// What a test plants where netecho is asked to write a file: `link` to the file `victim`,
/// `dangling` to `created` (which does not exist), and `mine`, a file of the user's own.
pub struct Planted(pub tempfile::TempDir);

impl Planted {
    pub fn new() -> Planted {
        let planted = Planted(tempdir());
        std::fs::write(planted.at("victim"), "precious").unwrap();
        std::fs::write(planted.at("mine"), "my own work").unwrap();
        std::os::unix::fs::symlink(planted.at("victim"), planted.at("link")).unwrap();
        std::os::unix::fs::symlink(planted.at("created"), planted.at("dangling")).unwrap();
        planted
    }

    pub fn at(&self, name: &str) -> std::path::PathBuf {
        self.0.path().join(name)
    }

    /// Asserts that nothing was written through a link.
    pub fn untouched(&self) {
        let victim = std::fs::read_to_string(self.at("victim")).unwrap();
        assert_eq!(victim, "precious", "written through a symlink");
        assert!(
            !self.at("created").exists(),
            "a dangling link's target made"
        );
    }
}

/// Names in `dir`, sorted: what a transfer or a server left behind.
pub fn listing(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// The temporary directory a lab or bench process `pid` made in `tmp` (`netecho-XXXXXX`,
/// known by the mark the run writes in it), while it is there.
pub fn run_dir(tmp: &std::path::Path, pid: u32) -> Option<std::path::PathBuf> {
    let mark = format!("netecho lab or bench, pid {pid}\n");
    std::fs::read_dir(tmp)
        .ok()?
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("netecho-"))
        .map(|e| e.path())
        .find(|dir| std::fs::read_to_string(dir.join(".netecho-run")).is_ok_and(|m| m == mark))
}

/// Retries `attempt` every 50 ms until it returns Some, for at most [`STEP`].
pub fn eventually<T>(what: &str, mut attempt: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + STEP;
    loop {
        if let Some(value) = attempt() {
            return value;
        }
        assert!(Instant::now() < deadline, "{what}: not within {STEP:?}");
        thread::sleep(Duration::from_millis(50));
    }
}

/// Whether `tool` is installed; a skip, listed at the end of .ci/run (and a failure under
/// CI=true, since .ci/run installs it), when it is not.
pub fn have(tool: &str, test: &str) -> bool {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        skip(
            test,
            &format!("{tool} (.ci/run installs it)"),
            Lacks::Provided,
        );
    }
    found
}

/// A CA and a server certificate it signed (for 127.0.0.1, ::1 and localhost), made with
/// openssl in `dir`; `expired` makes one whose time has passed. Returns (ca, cert, key).
pub fn openssl_certs(
    dir: &std::path::Path,
    tag: &str,
    expired: bool,
) -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
    let p = |name: &str| dir.join(format!("{tag}-{name}"));
    let sh = |script: String| {
        let out = std::process::Command::new("sh")
            .args(["-c", &script])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{script}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    sh(format!(
        "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
         -subj /CN=test-ca-{tag} -keyout {ca_key} -out {ca} 2>/dev/null",
        ca_key = p("ca.key").display(),
        ca = p("ca.pem").display()
    ));
    // OpenSSL 3.0 has no -not_after: -days -1 ends the certificate a day before it begins.
    let dates = if expired { "-days -1" } else { "-days 30" };
    sh(format!(
        "openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=localhost \
         -keyout {key} -out {csr} 2>/dev/null && \
         printf 'subjectAltName=IP:127.0.0.1,IP:::1,DNS:localhost\\n' > {ext} && \
         openssl x509 -req -in {csr} -CA {ca} -CAkey {ca_key} -CAcreateserial {dates} \
         -extfile {ext} -out {cert} 2>/dev/null",
        key = p("key.pem").display(),
        csr = p("csr").display(),
        ext = p("ext").display(),
        ca = p("ca.pem").display(),
        ca_key = p("ca.key").display(),
        cert = p("cert.pem").display(),
    ));
    (p("ca.pem"), p("cert.pem"), p("key.pem"))
}

/// A certificate's SHA-256 fingerprint as openssl prints it (AB:CD:...).
pub fn openssl_fingerprint(cert: &std::path::Path) -> String {
    let out = run(
        Command::new("openssl")
            .args(["x509", "-noout", "-fingerprint", "-sha256", "-in"])
            .arg(cert),
        b"",
    );
    let text = String::from_utf8_lossy(&out.stdout);
    text.trim()
        .split('=')
        .nth(1)
        .expect("openssl's fingerprint")
        .to_string()
}

/// A peer program (socat, ncat, openssl), killed when dropped.
pub struct Peer(pub Child);

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts a peer that says one line once its connections are open: the peer (killed when
/// dropped) and that line.
pub fn started(cmd: &mut Command) -> (Peer, String) {
    use std::io::BufRead;
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .expect("the peer");
    let stdout = child.stdout.take().unwrap();
    let peer = Peer(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = std::io::BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx.recv_timeout(2 * STEP).expect("the peer's line");
    (peer, line.trim().to_string())
}

/// A TCP port free a moment ago: socat and ncat cannot print the port they were given 0 for.
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind port 0");
    listener.local_addr().unwrap().port()
}

/// A socat server on a free port of 127.0.0.1 that connects each client to `address`
/// (`EXEC:cat`, `OPEN:/dev/null`), `options` (`-u`) before its addresses, waited for (20 s at
/// most: a loaded machine starts programs slowly) until it accepts: the server and its port.
pub fn socat_listener(options: &[&str], address: &str) -> (Peer, String) {
    let port = free_port();
    let listen = format!("TCP-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork");
    let socat = Command::new("socat")
        .args(options)
        .args([listen.as_str(), address])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start socat");
    let peer = Peer(socat);
    eventually("socat listening", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).ok()
    });
    (peer, port.to_string())
}

/// A TCP port on `ip` that refuses connections for as long as the socket returned is held:
/// bound and never listening, so no other socket can take the port meanwhile (a port closed
/// again may be bound by a test running beside). Its address as `ip:port` (`[ip]:port`).
pub fn refused_port(ip: &str) -> (socket2::Socket, String) {
    let ip: std::net::IpAddr = ip.parse().expect("an IP address");
    let addr = std::net::SocketAddr::new(ip, 0);
    let sock = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        None,
    )
    .expect("a tcp socket");
    sock.bind(&addr.into()).expect("bind port 0");
    let bound = sock.local_addr().unwrap().as_socket().unwrap();
    (sock, bound.to_string())
}

/// Whether python3 can import aioquic; a skip (a failure under CI=true) when not.
pub fn have_aioquic(test: &str) -> bool {
    let found = Command::new("python3")
        .args(["-c", "import aioquic"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        skip(
            test,
            "python3 with aioquic (.ci/run installs it)",
            Lacks::Provided,
        );
    }
    found
}

/// Every subcommand netecho has, as `netecho --help` lists them, each with its own --help.
pub const SUBCOMMANDS: [&str; 12] = [
    "serve",
    "send",
    "bench",
    "get",
    "put",
    "exec",
    "lab",
    "ping",
    "relay",
    "lesson",
    "completions",
    "manpage",
];

/// Processes whose parent is `pid`: the children of each of its threads.
pub fn child_pids(pid: u32) -> Vec<u32> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    tasks
        .flatten()
        .flat_map(|task| {
            std::fs::read_to_string(task.path().join("children"))
                .unwrap_or_default()
                .split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect::<Vec<u32>>()
        })
        .collect()
}

/// Threads of process `pid` (the Threads line of /proc/PID/status); 0 once it is gone.
pub fn threads(pid: u32) -> usize {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Threads:"))
                .and_then(|n| n.trim().parse().ok())
        })
        .unwrap_or(0)
}

/// A process's start time (field 22 of /proc/PID/stat), while it runs: `None` once it is
/// gone or a zombie (dead, waiting to be reaped by whoever inherited it).
pub fn running_since(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    (fields.first() != Some(&"Z")).then(|| fields.get(19)?.parse().ok())?
}

/// The columns a terminal shows `line` in: two for a Chinese or full-width character, none
/// for a combining mark or a zero-width character.
pub fn columns(line: &str) -> usize {
    unicode_width::UnicodeWidthStr::width(line)
}

/// What a terminal shows of `raw`: each line, and each status line a carriage return
/// replaces, with colour and erase sequences taken out.
pub fn screen_lines(raw: &str) -> Vec<String> {
    let mut plain = String::new();
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            // CSI: ESC [ parameters, then a letter.
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
            continue;
        }
        plain.push(c);
    }
    plain
        .split(['\r', '\n'])
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect()
}
