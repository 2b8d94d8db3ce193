//! `netecho send`: one message from the command line, an interactive prompt on a terminal,
//! or, when stdin is a pipe, its bytes as they are over an unframed stream (as nc sends
//! them) and one message per line elsewhere.

use std::io::{self, BufRead, IsTerminal, Read, Write};

use anyhow::{Context, Result, bail};
use tracing::{debug, info, warn};

use crate::endpoint::{Endpoint, Proto, SocketKind, Target};
use crate::error::{Call, socket_error};
use crate::hexdump::{self, Way};

use super::exchange::{AlertWatch, ClientConfig, Session};
use super::pipeline::{self, Cut};
use super::raw::RawClient;
use super::unconnected::Unconnected;
use crate::transport::{Conn, Received};

/// The prompt of the lesson's client.
pub(crate) const PROMPT: &str = ">>> ";
/// The longest input line read as one message.
pub(crate) const MAX_LINE: usize = 16 * 1024 * 1024;
/// The most of stdin read (and sent) at once when its bytes go out as they are.
const CHUNK: usize = 64 * 1024;

/// What `send` does: to whom, over which socket, and which messages.
pub(crate) struct SendConfig {
    pub endpoint: Endpoint,
    pub client: ClientConfig,
    /// The one message to send; without it, messages come from stdin.
    pub message: Option<Vec<u8>>,
    /// Prompt with `>>> ` even when stdin is not a terminal.
    pub interactive: bool,
    /// Send each message this many times back to back, then read the replies (not raw).
    pub burst: Option<usize>,
    /// Dump every message both ways on stderr, as xxd does.
    pub hex: bool,
    /// udp and unix-dgram: sendto and recvfrom on a socket that never calls connect().
    pub unconnected: bool,
}

pub(crate) fn run(config: SendConfig) -> Result<()> {
    let endpoint = &config.endpoint;
    // A raw packet carries headers the raw client writes itself: no Session message.
    let Some(target) = endpoint.target() else {
        let mut client = RawClient::open(endpoint, &config.client)?;
        return each_message(&config, |msg, out| {
            show(config.hex, Way::Out, endpoint, msg);
            let reply = client.exchange(msg)?;
            show(config.hex, Way::In, endpoint, &reply);
            print_reply(out, &reply)
        });
    };
    if Unconnected::reaches_many(endpoint, &config.client.opts) {
        let mut client = Unconnected::open(endpoint, &config.client)?;
        return each_message(&config, |msg, out| {
            show(config.hex, Way::Out, endpoint, msg);
            client.gather(msg, config.hex, out)
        });
    }
    if config.unconnected {
        let mut client = Unconnected::open(endpoint, &config.client)?;
        return each_message(&config, |msg, out| {
            show(config.hex, Way::Out, endpoint, msg);
            let reply = client.exchange(msg)?;
            show(config.hex, Way::In, endpoint, &reply);
            print_reply(out, &reply)
        });
    }
    let mut session = Session::open(&target, config.client.clone())?;
    if let Some((conn, target)) = session.connection().filter(|_| streams(&config)) {
        return stream(&config, conn, target);
    }
    each_message(&config, |msg, out| answer(&mut session, msg, &config, out))?;
    match session.connection() {
        Some((conn, target)) if config.message.is_none() && config.burst.is_none() => {
            finish(conn, target, &config)
        }
        _ => Ok(()),
    }
}

/// The end of typed input (Ctrl-D) on a connection: shut down writing, as nc does, and
/// print what the server still says until it closes, or for at most --timeout of silence.
/// A server that answers only at the end of its input (`sort`, `wc`) is heard this way.
fn finish(conn: &Conn, target: &Target, config: &SendConfig) -> Result<()> {
    if conn.kind() == SocketKind::Datagram {
        return Ok(());
    }
    let quiet = |e: &io::Error| {
        matches!(
            e.kind(),
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::NotConnected
        )
    };
    match conn.shutdown_write() {
        Err(e) if quiet(&e) || e.kind() == io::ErrorKind::BrokenPipe => return Ok(()),
        other => other.map_err(|e| socket_error(Call::Send, target, &e))?,
    }
    conn.set_read_timeout(Some(config.client.timeout))
        .map_err(|e| socket_error(Call::Recv, target, &e))?;
    let mut out = io::stdout().lock();
    let mut buf = vec![0; 64 * 1024];
    let mut last = b'\n';
    loop {
        let got = match conn.recv(&mut buf) {
            Ok(Received::Data(n)) if n > 0 => n,
            Ok(_) => break,
            Err(e) if quiet(&e) || e.kind() == io::ErrorKind::ConnectionReset => break,
            Err(e) => return Err(socket_error(Call::Recv, target, &e)),
        };
        show(config.hex, Way::In, target, &buf[..got]);
        out.write_all(&buf[..got])
            .map_err(crate::error::stdout_write)?;
        last = buf[got - 1];
    }
    if last != b'\n' {
        out.write_all(b"\n").map_err(crate::error::stdout_write)?;
    }
    out.flush().map_err(crate::error::stdout_write)
}

/// Whether send talks as nc does (see [`pipeline`]): over a connected socket, with the
/// messages from a pipe. MESSAGE on the command line is one request and one reply, as
/// --explain narrates it; a prompt and --burst go message by message.
fn streams(config: &SendConfig) -> bool {
    let piped = config.message.is_none() && !(config.interactive || io::stdin().is_terminal());
    piped && config.burst.is_none() && config.endpoint.proto.kind() != SocketKind::Datagram
}

/// The input out from a second thread, what comes back printed as it comes, the writing
/// side shut down at the end of input. Over an unframed stream both are bytes as they are,
/// as nc passes them; elsewhere each line is a message and each reply a line.
fn stream(config: &SendConfig, conn: &Conn, target: &Target) -> Result<()> {
    let cut = Cut::of(conn.kind(), config.client.framing, config.client.max_frame);
    let hex = config.hex;
    let max = conn.max_message();
    // Read on a thread nobody waits for (see pipeline::run): it owns what it uses.
    let to = target.clone();
    let next = move || -> Result<Option<Vec<u8>>> {
        let msg = match cut {
            Cut::Bytes => read_chunk(&mut io::stdin().lock())?,
            _ => next_line(max, &to)?,
        };
        if let Some(msg) = &msg {
            show(hex, Way::Out, &to, msg);
        }
        Ok(msg)
    };
    let mut out = io::stdout().lock();
    let mut first = true;
    let mut reply = |data: &[u8]| -> Result<()> {
        if std::mem::take(&mut first) {
            hint_framed(data);
        }
        show(hex, Way::In, target, data);
        match cut {
            Cut::Bytes => out
                .write_all(data)
                .and_then(|()| out.flush())
                .map_err(crate::error::stdout_write),
            _ => print_reply(&mut out, data),
        }
    };
    let plain = config.client.opts.tls.is_none();
    pipeline::run(
        conn,
        target,
        cut,
        plain,
        config.client.timeout,
        next,
        &mut reply,
    )
}

/// The next line of stdin that is a message: not empty, and within `max` bytes where the
/// socket has a largest message.
fn next_line(max: Option<usize>, target: &Target) -> Result<Option<Vec<u8>>> {
    loop {
        let Some(msg) = read_line(&mut io::stdin().lock())? else {
            return Ok(None);
        };
        match max {
            _ if msg.is_empty() => continue,
            Some(max) if msg.len() > max => bail!(
                "a {}-byte message does not fit in one {} message (at most {max} bytes \
                 here); send less",
                msg.len(),
                target.proto
            ),
            _ => return Ok(Some(msg)),
        }
    }
}

/// What stdin has now, at most [`CHUNK`] bytes, as it is; `None` at end of input.
fn read_chunk(input: &mut impl Read) -> Result<Option<Vec<u8>>> {
    let mut buf = vec![0; CHUNK];
    loop {
        match input.read(&mut buf) {
            Ok(0) => return Ok(None),
            Ok(n) => {
                buf.truncate(n);
                return Ok(Some(buf));
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e).context("read stdin"),
        }
    }
}

/// A warning when the reply is framed as `netecho exec` or the file service frames theirs:
/// the server runs --exec or --files, and another command talks to it.
fn hint_framed(reply: &[u8]) {
    let Some((head, rest)) = reply.split_first_chunk::<4>() else {
        return;
    };
    // The length of a frame, which the first reply may hold only the start of.
    let len = u32::from_be_bytes(*head) as usize;
    let Some(&tag) = rest.first().filter(|_| (1..=16 << 20).contains(&len)) else {
        return;
    };
    let payload = rest;
    if matches!(
        tag,
        crate::service::exec::STDOUT..=crate::service::exec::EXIT
    ) {
        warn!(
            "the reply is framed as an --exec server frames its program's output; talk to it \
             with `netecho exec ADDR`"
        );
    } else if payload.starts_with(b"ERR ") || payload.starts_with(b"OK ") {
        warn!(
            "the reply is framed as a --files server frames its answers; talk to it with \
             `netecho get ADDR NAME` or `netecho put ADDR FILE`"
        );
    }
}

/// The hex dump of one message, when --hex asked for it.
fn show(hex: bool, way: Way, endpoint: &dyn std::fmt::Display, data: &[u8]) {
    if hex {
        hexdump::dump(way, endpoint, data);
    }
}

/// Hands `exchange` the message on the command line, or each line of stdin but the empty
/// ones; after a prompt (on a terminal, or with -i) the blank ones are skipped too, as the
/// lesson's client (`input().strip()`) does, while from a pipe a line of spaces is a message
/// as it is. The prompt goes to stderr: stdout carries only what the server said, also when
/// it is redirected.
fn each_message(
    config: &SendConfig,
    mut exchange: impl FnMut(&[u8], &mut io::StdoutLock<'static>) -> Result<()>,
) -> Result<()> {
    let mut out = io::stdout().lock();
    if let Some(msg) = &config.message {
        return exchange(msg, &mut out).map_err(|e| pipe_it_in(e, config, msg));
    }
    let stdin = io::stdin();
    let interactive = config.interactive || stdin.is_terminal();
    let mut input = stdin.lock();
    // Not locked for the loop: a sending thread may log while the reply is awaited.
    let mut prompt = io::stderr();
    loop {
        if interactive {
            write!(prompt, "{PROMPT}").and_then(|_| prompt.flush())?;
        }
        let Some(line) = read_line(&mut input)? else {
            if interactive {
                writeln!(prompt)?;
            }
            return Ok(());
        };
        if line.is_empty() || interactive && line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        exchange(&line, &mut out)?;
    }
}

/// A message on the command line that a stream server left unanswered for --timeout: one
/// that answers at the end of its input (socat's EXEC:'tr a-z A-Z', sort) answers it piped
/// in, as send then shuts down its writing side when the input ends (nc -N); a longer
/// --timeout never would.
fn pipe_it_in(err: anyhow::Error, config: &SendConfig, msg: &[u8]) -> anyhow::Error {
    let endpoint = &config.endpoint;
    let stream = matches!(endpoint.proto, Proto::Tcp | Proto::Unix);
    if !stream || config.client.opts.tls.is_some() || !crate::error::is_silent(&err) {
        return err;
    }
    let text = std::str::from_utf8(msg)
        .ok()
        .map(|m| m.trim_end_matches('\n'));
    let word = text.filter(|m| !m.is_empty() && !m.chars().any(char::is_control));
    let word = word.map_or("MESSAGE".into(), crate::report::meta::shell_quote);
    anyhow::anyhow!(
        "{err:#}; a server that answers only at the end of its input (socat's EXEC:'tr a-z \
         A-Z', sort) never answers a message on the command line: pipe it in, and send shuts \
         down its writing side when the input ends, as nc -N does: `printf '%s\\n' {word} | \
         netecho send {}`",
        endpoint.addr
    )
}

/// Exchanges one message, or says why an empty one is not sent where the connection cannot
/// carry it (see [`crate::transport::message::Carrier::carries_empty`]).
fn answer(
    session: &mut Session,
    msg: &[u8],
    config: &SendConfig,
    out: &mut impl Write,
) -> Result<()> {
    let carrier = session.carrier();
    let proto = session.target().proto;
    let target = &config.endpoint;
    if msg.is_empty() && !carrier.carries_empty() {
        warn!("{}", empty_not_sent(proto.proto()));
        return Ok(());
    }
    show(config.hex, Way::Out, target, msg);
    let Some(count) = config.burst else {
        let reply = session.exchange(msg)?;
        hint_framed(&reply);
        show(config.hex, Way::In, target, &reply);
        return print_reply(out, &reply);
    };
    let (mut bytes, mut replies) = (0, 0);
    let plain_stream = !carrier.keeps_boundaries() && config.client.opts.tls.is_none();
    let mut watch = AlertWatch::new(carrier.reliable() && plain_stream);
    let got = session.burst_each(msg, count, &mut |chunk| {
        let Some(reply) = watch.pass(msg, chunk)? else {
            return Ok(());
        };
        bytes += reply.len();
        replies += 1;
        show(config.hex, Way::In, target, &reply);
        print_reply(out, &reply)
    });
    // First what the bytes held back say, also when the burst was cut short (a server
    // that closed after its first answer fails the sends after it).
    watch.finish()?;
    let got = got?;
    let line = format!(
        "burst: sent {} of {} back to back; got {} back in {}",
        crate::units::count(count, "message"),
        crate::units::count(msg.len(), "byte"),
        crate::units::count(bytes, "byte"),
        crate::units::count(replies, carrier.unit()),
    );
    match got.missing {
        0 => info!("{line}"),
        missing if missing == count => bail!(
            "{line}: no reply to any of them within --timeout ({:?}); is the server running?",
            config.client.timeout
        ),
        missing => warn!("{line}, {} missing", crate::units::count(missing, "reply")),
    }
    Ok(())
}

/// One line of input without its line ending, as bytes (not necessarily UTF-8); `None` at
/// end of input.
fn read_line(input: &mut impl BufRead) -> Result<Option<Vec<u8>>> {
    let mut line = Vec::new();
    let n = input
        .take(MAX_LINE as u64 + 1)
        .read_until(b'\n', &mut line)
        .context("read stdin")?;
    if n == 0 {
        return Ok(None);
    }
    if line.len() > MAX_LINE {
        bail!("an input line is longer than {MAX_LINE} bytes; split it");
    }
    if line.last() == Some(&b'\n') {
        line.pop();
        if line.last() == Some(&b'\r') {
            line.pop();
        }
    }
    debug!("read a {}-byte line", line.len());
    Ok(Some(line))
}

/// Why an empty message is not sent over a connection: on a stream it would send nothing
/// at all, on seqpacket the server would read it as the end of the connection.
fn empty_not_sent(proto: Proto) -> String {
    if proto.kind() == SocketKind::Stream {
        format!(
            "empty message not sent: {proto} is a stream of bytes, and sending zero bytes \
             sends nothing at all (no reply would ever come)"
        )
    } else {
        format!(
            "empty message not sent: over {proto} an empty message reads as 0 bytes, which \
             the server takes for the end of the connection"
        )
    }
}

fn print_reply(out: &mut impl Write, reply: &[u8]) -> Result<()> {
    out.write_all(reply)
        .and_then(|_| out.write_all(b"\n"))
        .and_then(|_| out.flush())
        .map_err(crate::error::stdout_write)
}
