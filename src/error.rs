//! Error wording shared by every command: usage errors (exit 2) and socket call failures
//! worded as advice, each written once here so every transport says the same thing.

use std::fmt;
use std::io::{self, Write};

use nix::errno::Errno;

use crate::endpoint::{Family, Target};

/// A mistake in the command line (exit code 2), as opposed to a failure at run time (exit 1).
#[derive(Debug)]
pub(crate) struct UsageError(String);

impl UsageError {
    pub(crate) fn new(message: impl Into<String>) -> UsageError {
        UsageError(message.into())
    }
}

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// A connect nobody answered within its bound, worded whole: what the kernel says at the
/// bound (EINPROGRESS, or EAGAIN for a Unix socket) would tell the user nothing.
#[derive(Debug)]
pub(crate) struct NoAnswer(String);

impl NoAnswer {
    /// An IP peer that did not answer the SYN: from here a host that is down, a wrong
    /// address and a firewall that drops the port look the same.
    pub(crate) fn ip(peer: std::net::SocketAddr, within: std::time::Duration) -> NoAnswer {
        NoAnswer(format!(
            "no answer from {peer} within {} s: the host is down, the address is wrong, or a \
             firewall drops port {} (the likeliest in a classroom)",
            within.as_secs_f64(),
            peer.port()
        ))
    }

    /// A Unix server whose backlog stayed full: it does not accept.
    pub(crate) fn unix(name: &str, within: std::time::Duration) -> NoAnswer {
        NoAnswer(format!(
            "no answer from unix {name} within {} s: its server's backlog stayed full (a \
             server that does not accept connections?)",
            within.as_secs_f64()
        ))
    }
}

impl fmt::Display for NoAnswer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for NoAnswer {}

/// A TLS or QUIC handshake that got no answer in time, worded whole ("no TLS handshake
/// within 10s: ..."): nothing refused or closed the connection, and nothing answered on it.
/// Carried in an [`io::Error`] from connect and kept as itself by [`socket_error`], so a
/// caller tells it from other failures by its type (the lab: a row that stalled).
#[derive(Debug)]
pub(crate) struct NoHandshake(pub(crate) String);

impl fmt::Display for NoHandshake {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for NoHandshake {}

/// A connected peer that sent nothing (`call` Recv) or took nothing (`call` Send) for a
/// client's whole --timeout: what the client waited for, and `advice`, in one line.
pub(crate) fn silent_peer(
    call: Call,
    peer: impl fmt::Display,
    waited: &str,
    timeout: std::time::Duration,
    advice: &str,
) -> anyhow::Error {
    let did = match call {
        Call::Send => "took nothing",
        _ => "sent nothing",
    };
    let line = format!("{peer} {did} for {timeout:?} (--timeout) while {waited}; {advice}");
    anyhow::Error::new(SilentPeer(line))
}

/// A peer silent for --timeout (see [`silent_peer`]): told apart, so that a caller can add
/// the advice its case calls for.
#[derive(Debug)]
pub(crate) struct SilentPeer(String);

impl fmt::Display for SilentPeer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SilentPeer {}

/// Whether `err` is (or was caused by) a peer silent for --timeout.
pub(crate) fn is_silent(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| cause.is::<SilentPeer>())
}

/// What the peer did wrong, already worded for the user (a QUIC server's reply stream too
/// long, or reset): carried in an [`io::Error`] from a recv, and said after the socket's
/// name instead of as a failed call.
#[derive(Debug)]
pub(crate) struct PeerFault(pub(crate) String);

impl fmt::Display for PeerFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for PeerFault {}

/// The exit code for an error: 2 when the user asked for something malformed, 1 otherwise.
pub(crate) fn exit_code(err: &anyhow::Error) -> u8 {
    if err.chain().any(|cause| cause.is::<UsageError>()) {
        2
    } else {
        1
    }
}

/// The advice for a directory this process may not enter (EACCES on a path through it).
pub(crate) fn may_not_enter(dir: &str) -> String {
    format!(
        "permission denied (EACCES): you may not enter {dir}; choose a directory you own, \
         such as /tmp"
    )
}

/// Whether `reply` is `request` sent back, as it was or upper-cased: an echo server (netecho's
/// own upper-cases) where a server of another kind was meant.
pub(crate) fn sent_back(request: &[u8], reply: &[u8]) -> bool {
    reply == request || reply == request.to_ascii_uppercase()
}

/// The line for an echo server at `peer` where the server `serve_flags` starts was meant
/// (`--files DIR`).
pub(crate) fn echo_server_at(peer: &str, serve_flags: &str) -> anyhow::Error {
    anyhow::anyhow!(
        "{peer} sent the request back: it is an echo server; start the server with `netecho \
         serve {serve_flags}`"
    )
}

/// A netecho server of the other service where a client's own was meant: `get` or `put` at
/// a `serve --exec` (its first frame is a program's output), `exec` at a `serve --files` (its
/// first frame an `ERR` of the file protocol). Raised where the frame is read; worded by
/// [`Runs::at`] where the address the user typed is known.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Runs {
    Exec,
    Files,
}

impl Runs {
    /// The line for the server at `target`: what it runs, and the command that speaks to it
    /// with the address as the user would type it.
    pub(crate) fn at(self, target: &Target) -> anyhow::Error {
        let typed = target.typed();
        let addr = &target.addr;
        match self {
            Runs::Exec => anyhow::anyhow!(
                "the server at {addr} runs --exec, not --files (it sent a program's output): \
                 use `netecho exec {typed}`, or start the server with `netecho serve --files DIR`"
            ),
            Runs::Files => anyhow::anyhow!(
                "the server at {addr} runs --files, not --exec (it answered with the file \
                 protocol's ERR): use `netecho get {typed} NAME` or `netecho put {typed} FILE`, \
                 or start the server with `netecho serve --exec PROGRAM`"
            ),
        }
    }
}

impl fmt::Display for Runs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Runs::Exec => f.write_str("the server runs --exec, not --files"),
            Runs::Files => f.write_str("the server runs --files, not --exec"),
        }
    }
}

impl std::error::Error for Runs {}

/// A failed write to standard output, told apart from a socket's: only a closed stdout
/// (`netecho ... | head`) is a quiet end, while a socket's EPIPE is a peer gone mid-transfer
/// and must be said (a `put` whose server closed early never stored the file).
#[derive(Debug)]
pub(crate) struct StdoutWrite(io::Error);

impl std::fmt::Display for StdoutWrite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let errno = self.0.raw_os_error().map(Errno::from_raw);
        match errno {
            // /dev/full, a full disk or quota: the file stdout is redirected to has no room.
            Some(errno @ (Errno::ENOSPC | Errno::EDQUOT | Errno::EFBIG)) => write!(
                f,
                "stdout is full ({errno:?}): {}, so netecho's output cannot be written; \
                 free space where stdout is redirected, or redirect it elsewhere",
                errno.desc().to_lowercase()
            ),
            _ => write!(
                f,
                "stdout cannot be written: {}; check where it is redirected",
                kernel_says(&self.0)
            ),
        }
    }
}

impl std::error::Error for StdoutWrite {}

/// `e`, from a write to standard output, as an error [`is_broken_pipe`] recognises.
pub(crate) fn stdout_write(e: io::Error) -> anyhow::Error {
    StdoutWrite(e).into()
}

/// Writes `bytes` to stdout and flushes them: a failure is stdout's, so a reader gone
/// (`| head`) ends the command as SIGPIPE ends a filter, and a full disk is one line.
pub(crate) fn write_stdout(bytes: &[u8]) -> anyhow::Result<()> {
    let mut out = io::stdout().lock();
    out.write_all(bytes)
        .and_then(|()| out.flush())
        .map_err(stdout_write)
}

/// Whether standard output is a pipe whose reader has gone (a write there fails with EPIPE):
/// for a command whose writes to stdout and to sockets meet in one error path.
pub(crate) fn stdout_reader_gone() -> bool {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    use std::os::fd::AsFd;
    let stdout = io::stdout();
    let mut fds = [PollFd::new(stdout.as_fd(), PollFlags::POLLOUT)];
    poll(&mut fds, PollTimeout::ZERO).is_ok()
        && fds[0]
            .revents()
            .is_some_and(|r| r.contains(PollFlags::POLLERR))
}

/// Whether the error is a closed stdout (`netecho ... | head`): not worth a word. EPIPE on
/// a socket is not: it is an error like any other.
pub(crate) fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<StdoutWrite>()
            .is_some_and(|e| e.0.kind() == io::ErrorKind::BrokenPipe)
    })
}

/// A kernel error and advice only the transport could find out (what is at a Unix path,
/// which socket type holds an abstract name), carried inside an `io::Error` to
/// [`socket_error`], which words the errno and gives this advice instead of its own.
#[derive(Debug)]
pub(crate) struct Advised {
    errno: Errno,
    advice: String,
}

impl Advised {
    /// `errno` (its `io::ErrorKind` kept) with `advice`.
    pub(crate) fn io(errno: Errno, advice: String) -> io::Error {
        let kind = io::Error::from_raw_os_error(errno as i32).kind();
        io::Error::new(kind, Advised { errno, advice })
    }
}

impl fmt::Display for Advised {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}; {}", self.errno.desc(), self.advice)
    }
}

impl std::error::Error for Advised {}

/// The socket calls netecho reports failures of.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Call {
    Socket,
    Bind,
    Listen,
    Connect,
    Send,
    Recv,
}

impl Call {
    fn name(self) -> &'static str {
        match self {
            Call::Socket => "socket",
            Call::Bind => "bind",
            Call::Listen => "listen",
            Call::Connect => "connect",
            Call::Send => "send",
            Call::Recv => "recv",
        }
    }
}

/// What a raw socket needs and how to grant it, naming this binary.
pub(crate) fn need_net_raw() -> String {
    let exe = std::env::current_exe()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| "netecho".into());
    format!(
        "raw sockets need CAP_NET_RAW, which this process does not have: run as root, or \
         grant it to the binary once with `sudo setcap cap_net_raw+ep {exe}`"
    )
}

/// The socket a failed call was made on: how a message names it (`tcp 127.0.0.1:3234`,
/// `unix /tmp/echo.sock`), and its address family, which decides the advice (a Unix
/// socket's name is a file, an IP socket's a port).
#[derive(Clone, Debug)]
pub(crate) struct Subject {
    name: String,
    /// `None` for a host name getaddrinfo has not resolved yet.
    family: Option<Family>,
    /// A datagram socket (udp, quic's udp, unix-dgram): no connections, no TIME_WAIT.
    datagram: bool,
    /// An IP address other than loopback, which a server bound to 127.0.0.1 never hears.
    off_loopback: bool,
}

impl Subject {
    pub(crate) fn new(name: impl Into<String>, family: Option<Family>) -> Subject {
        Subject {
            name: name.into(),
            family,
            datagram: false,
            off_loopback: false,
        }
    }

    /// The same subject, a datagram socket when `datagram`.
    pub(crate) fn datagram(mut self, datagram: bool) -> Subject {
        self.datagram = datagram;
        self
    }

    /// The same subject, at an IP address other than loopback when `off`.
    pub(crate) fn off_loopback(mut self, off: bool) -> Subject {
        self.off_loopback = off;
        self
    }

    /// An IP socket (tcp, udp, raw), named as `name`: AF_INET or AF_INET6 gets the same
    /// advice.
    pub(crate) fn ip(name: impl Into<String>) -> Subject {
        Subject::new(name, None)
    }
}

/// Words a failed socket call for the user: the call, where, what the kernel said (with the
/// errno name a man page uses), and what to do about it.
pub(crate) fn socket_error(call: Call, on: impl Into<Subject>, err: &io::Error) -> anyhow::Error {
    let on = on.into();
    let what = &on.name;
    // A usage error found on the way to the call (a Unix name too long for sun_path) stays
    // one: its message already names the address, and it exits with 2.
    if let Some(usage) = err.get_ref().and_then(|e| e.downcast_ref::<UsageError>()) {
        return UsageError::new(usage.to_string()).into();
    }
    if let Some(fault) = err.get_ref().and_then(|e| e.downcast_ref::<PeerFault>()) {
        return anyhow::anyhow!("{what}: {fault}");
    }
    // Kept as itself, so a caller that knows more of the path (the lab's own --loss) can
    // tell it by its type.
    if let Some(no) = err.get_ref().and_then(|e| e.downcast_ref::<NoAnswer>()) {
        return NoAnswer(no.0.clone()).into();
    }
    if let Some(no) = err.get_ref().and_then(|e| e.downcast_ref::<NoHandshake>()) {
        return NoHandshake(format!("{} {what}: {no}", call.name())).into();
    }
    let advised = err.get_ref().and_then(|e| e.downcast_ref::<Advised>());
    let errno = err
        .raw_os_error()
        .map(Errno::from_raw)
        .or(advised.map(|a| a.errno));
    let cause = errno.map_or_else(|| err.to_string(), errno_says);
    if call == Call::Socket && matches!(errno, Some(Errno::EPERM | Errno::EACCES)) {
        return anyhow::anyhow!("socket {what}: {cause}; {}", need_net_raw());
    }
    let held = (call == Call::Bind && errno == Some(Errno::EADDRINUSE))
        .then(|| held_by_listener(&on))
        .flatten();
    let advice = match (advised, &held) {
        (Some(a), _) => a.advice.as_str(),
        (None, Some(held)) => held.as_str(),
        (None, None) => advice(call, errno, &on),
    };
    let call = call.name();
    if advice.is_empty() {
        anyhow::anyhow!("{call} {what}: {cause}")
    } else {
        anyhow::anyhow!("{call} {what}: {cause}; {advice}")
    }
}

/// Advice for a tcp connection refused, its parenthesis left open for more.
macro_rules! tcp_refused {
    () => {
        "nothing is listening there over tcp; is the server running, on this address and port, \
         and over tcp? (a server over udp, as `serve --proto udp --files` is, needs --proto udp \
         here too"
    };
}

/// Why a server elsewhere may refuse what one on this host takes.
macro_rules! loopback_only {
    () => {
        "a server bound to 127.0.0.1 only, as serve is by default, refuses other machines"
    };
}

/// What to do about a refusal: ECONNREFUSED from connect, or from send or recv on a
/// connected datagram socket (an ICMP port unreachable).
fn refused(call: Call, on: &Subject) -> &'static str {
    let connect = matches!(call, Call::Connect);
    let unix = on.family == Some(Family::Unix);
    match (connect, unix, on.datagram, on.off_loopback) {
        (true, true, ..) => {
            "nothing is listening on it (a socket file left behind by a stopped server?)"
        }
        // tcp refused: a server of the same port over udp (as a --files server for TFTP
        // clients often is) refuses it too.
        (true, false, false, true) => concat!(tcp_refused!(), "; ", loopback_only!(), ")"),
        (true, false, false, false) => concat!(tcp_refused!(), ")"),
        (.., true) => concat!(
            "nothing is listening there; is the server running, on this address and port? (",
            loopback_only!(),
            ")"
        ),
        _ => "nothing is listening there; is the server running, on this address and port?",
    }
}

/// The advice for a TCP port a listening socket holds (a LISTEN entry for it in
/// /proc/net/tcp or tcp6): who holds it, not TIME_WAIT, which cannot be the cause then.
fn held_by_listener(on: &Subject) -> Option<String> {
    if on.datagram || on.family == Some(Family::Unix) {
        return None;
    }
    let port: u16 = on.name.rsplit(':').next()?.parse().ok()?;
    let listens = |table: String| {
        table.lines().skip(1).any(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let local = fields.get(1).and_then(|l| l.rsplit(':').next());
            let held = local.and_then(|p| u16::from_str_radix(p, 16).ok()) == Some(port);
            held && fields.get(3) == Some(&"0A")
        })
    };
    let tables = ["/proc/net/tcp", "/proc/net/tcp6"].map(std::fs::read_to_string);
    tables.into_iter().flatten().any(listens).then(|| {
        format!(
            "a listening socket holds this port (`ss -ltnp 'sport = :{port}'` shows which \
             program): stop that server, or pick another port, or port 0 for any free one"
        )
    })
}

/// A datagram's ICMP port unreachable, reported by the kernel as ECONNREFUSED: send's and
/// get's one sentence for it, naming `target` (`None`: the line names it already).
pub(crate) fn nothing_listening(target: Option<&dyn fmt::Display>) -> String {
    let at = target.map_or_else(|| "there".to_string(), |t| format!("on {t}"));
    format!(
        "nothing is listening {at}: the kernel reported the datagram undeliverable (ICMP port \
         unreachable, or no Unix socket bound); is the server running?"
    )
}

/// What the kernel said, with the errno name a man page uses: "network is unreachable
/// (ENETUNREACH)", never "(os error 101)".
pub(crate) fn kernel_says(err: &io::Error) -> String {
    err.raw_os_error()
        .map(Errno::from_raw)
        .map_or_else(|| err.to_string(), errno_says)
}

/// An errno in words, and its name.
fn errno_says(errno: Errno) -> String {
    format!("{} ({errno:?})", errno.desc().to_lowercase())
}

/// EPERM from connect or send over IP: a netfilter OUTPUT rule dropped the packet.
pub(crate) const FIREWALL_REFUSED: &str = "refused by this host's firewall (an \
    nftables/iptables OUTPUT rule); check `nft list ruleset`";

/// What to do about `errno` from `call` on `on`; empty when there is nothing to add.
fn advice(call: Call, errno: Option<Errno>, on: &Subject) -> &'static str {
    let unix = on.family == Some(Family::Unix);
    match (call, errno) {
        (Call::Bind, Some(Errno::EADDRINUSE)) if unix => {
            "another socket already has this name; stop that server or choose another name"
        }
        (Call::Bind, Some(Errno::EADDRINUSE)) if on.datagram => {
            "another socket is using this port (udp and quic share the port numbers of udp, and \
             both default to 3234): stop the other server, or pick another port, or port 0 for \
             any free one"
        }
        (Call::Bind, Some(Errno::EADDRINUSE)) => {
            "another socket is using this port, or a recent connection on it is still in \
             TIME_WAIT (about a minute); Linux lets a new socket share the port with one in \
             TIME_WAIT only when both set SO_REUSEADDR, as netecho serve does unless \
             --no-reuseaddr: stop the other server, wait for the TIME_WAIT to end, or pick \
             another port, or port 0 for any free one"
        }
        (Call::Bind, Some(Errno::EACCES)) if unix => {
            "you may not create files in that directory; choose a path in a directory you own"
        }
        (Call::Bind, Some(Errno::EACCES)) => {
            "ports below 1024 need root or CAP_NET_BIND_SERVICE; use a port above 1023"
        }
        (Call::Bind, Some(Errno::ENOENT)) => {
            "the directory does not exist; create it first or choose another path"
        }
        (Call::Bind, Some(Errno::EADDRNOTAVAIL)) => {
            "this machine has no such address; use 127.0.0.1, ::1, 0.0.0.0 or [::]"
        }
        (Call::Connect | Call::Recv | Call::Send, Some(Errno::ECONNREFUSED)) => refused(call, on),
        (Call::Connect, Some(Errno::ENOENT)) => {
            "no socket file there; is the server running, and is the path right?"
        }
        (Call::Connect | Call::Send, Some(Errno::EACCES)) if !unix => {
            "that is a broadcast address, and sending there needs SO_BROADCAST: add --broadcast"
        }
        (Call::Connect, Some(Errno::EACCES)) => "you may not open that socket file",
        // netfilter's verdict on an outgoing packet, reported to the sender.
        (Call::Connect | Call::Send, Some(Errno::EPERM)) if !unix => FIREWALL_REFUSED,
        (Call::Connect, Some(Errno::EPROTOTYPE)) => {
            "the socket there is of another type; use the --proto the server was started with"
        }
        // A raw socket's ICMP "protocol unreachable", as the kernel reports it.
        (Call::Recv | Call::Send, Some(Errno::ENOPROTOOPT)) => {
            "the host answered ICMP protocol unreachable: nothing there takes this IP \
             protocol; is `netecho serve --proto raw` running there, with the same --ip-proto?"
        }
        (_, Some(Errno::EHOSTUNREACH | Errno::ENETUNREACH)) => {
            "there is no route to that host from here; check the address, and the routes \
             this host has (`ip route`)"
        }
        (_, Some(Errno::ETIMEDOUT)) => "the host did not answer; check the address",
        // send and recv are said of a client's calls only: the peer is a server.
        (Call::Send, Some(Errno::EPIPE)) => {
            "the server closed the connection while data was still being sent to it (it was \
             stopped, or ended the connection on purpose): check that it is still running, \
             and its log for why"
        }
        (Call::Send | Call::Recv, Some(Errno::ECONNRESET)) => {
            "the server reset the connection (RST): it closed with bytes sent to it still \
             unread, or aborted it (it was stopped, or ended the connection on purpose): check \
             that it is still running, and its log for why"
        }
        (_, Some(Errno::ECONNRESET)) => "the peer reset the connection",
        (_, Some(Errno::EMSGSIZE)) => "the message is too large for this socket; send less",
        (_, Some(Errno::EMFILE | Errno::ENFILE)) => {
            "too many open files; raise the limit with ulimit -n"
        }
        _ => "",
    }
}
