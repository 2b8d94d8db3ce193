//! `netecho exec`: stdin to a `serve --exec` program, its output back: stdout to stdout,
//! stderr to stderr, and its exit status as ours. As ssh does, exec's own failures exit
//! [`FAILED`] (255), which no program's `exit 1` can be taken for.

use std::io::{self, Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};

use crate::endpoint::Target;
use crate::error::{Call, silent_peer};
use crate::service::exec::{EXIT, STDERR, STDOUT};
use crate::transport::framing::{Decoder, Framing};
use crate::transport::message::{Carrier, MessageReader, RecvError};
use crate::transport::quic::{QuicMode, QuicOptions};
use crate::transport::{self, Conn, MAX_MESSAGE, Received, SocketOptions};

/// exec's exit status for a failure of its own (no server, a usage error, a silent server),
/// as ssh's: a remote program's status is anything else.
pub(crate) const FAILED: u8 = 255;

/// What exec tells of a server silent for its --timeout over a connection.
const SILENT_ADVICE: &str = "a server sends an empty frame every 500 ms while its program \
                             is silent, so the server or the path to it stopped: is it \
                             still running?";

/// Where the `serve --exec` server is.
pub(crate) struct ExecConfig {
    pub endpoint: Target,
    /// How long the connect may take.
    pub connect_timeout: Duration,
    /// The longest silence of the server (no byte sent or taken) before exec gives up: on a
    /// stream while the program runs, over datagrams for the reply. None: no bound.
    pub timeout: Option<Duration>,
    /// Streams: TLS, and whom it trusts.
    pub tls: Option<crate::transport::tls::TlsEnd>,
}

/// Runs the remote program and returns its exit status.
pub(crate) fn run(config: ExecConfig) -> Result<u8> {
    // TCP_NODELAY: the last small write before the shutdown goes at once, not after the
    // server's delayed ACK.
    let opts = SocketOptions {
        nodelay: true,
        quic: QuicOptions {
            mode: QuicMode::Stream,
            ..QuicOptions::default()
        },
        tls: config.tls.clone(),
        connect_timeout: config.connect_timeout,
        ..SocketOptions::default()
    };
    let conn = transport::connect_first(&config.endpoint, &opts)?;
    conn.set_read_timeout(config.timeout)
        .and_then(|()| conn.set_write_timeout(config.timeout))
        .context("setsockopt SO_RCVTIMEO, SO_SNDTIMEO")?;
    let mut output = Output {
        stdout: io::stdout().lock(),
        stderr: io::stderr(),
    };
    let code = if !conn.carrier(Framing::None).reliable() {
        run_datagram(&conn, &config.endpoint, config.timeout, &mut output)?
    } else {
        let started = Instant::now();
        run_stream(conn, &config.endpoint, config.timeout, &mut output)
            .inspect(|_| tracing::debug!("ran in {:.2} s", started.elapsed().as_secs_f64()))?
    };
    io::stdout().flush().ok();
    // Not a status a program can have: the server's "busy" (-1).
    Ok(u8::try_from(code).unwrap_or(FAILED))
}

/// Where the program's tagged frames go: its output to ours, its exit status back.
struct Output {
    stdout: io::StdoutLock<'static>,
    stderr: io::Stderr,
}

impl Output {
    /// Writes an output frame where it belongs; the exit status once its frame comes.
    fn take(&mut self, frame: &[u8]) -> Result<Option<i32>> {
        let (&tag, payload) = frame
            .split_first()
            .ok_or_else(|| anyhow!("an empty frame"))?;
        match tag {
            STDOUT => self
                .stdout
                .write_all(payload)
                .map_err(crate::error::stdout_write)?,
            STDERR => self.stderr.write_all(payload).context("write to stderr")?,
            EXIT => {
                let code =
                    i32::from_be_bytes(payload.get(..4).context("short exit frame")?.try_into()?);
                let note = String::from_utf8_lossy(&payload[4..]);
                let note = crate::wrap::printable(&note);
                if code != 0 {
                    tracing::warn!("remote program: {note}");
                }
                return Ok(Some(code));
            }
            other => bail!("unknown frame tag {other}"),
        }
        Ok(None)
    }
}

/// One datagram of input, one datagram of framed reply, awaited `timeout` (SO_RCVTIMEO).
fn run_datagram(
    conn: &Conn,
    target: &Target,
    timeout: Option<Duration>,
    output: &mut Output,
) -> Result<i32> {
    let mut input = Vec::new();
    io::stdin()
        .take(MAX_MESSAGE as u64 + 1)
        .read_to_end(&mut input)
        .context("read stdin")?;
    let max = conn.max_message().unwrap_or(MAX_MESSAGE);
    if input.len() > max {
        let size = match input.len() > MAX_MESSAGE {
            true => format!("over {MAX_MESSAGE}"),
            false => input.len().to_string(),
        };
        bail!(
            "stdin is {size} bytes; over {} a request is one datagram (at most {max} bytes \
             here): run exec over tcp (or unix) for more input",
            target.proto
        );
    }
    conn.send_all(&input).context("send")?;
    let timeout = timeout.unwrap_or_default();
    let mut buf = vec![0u8; MAX_MESSAGE];
    let n = match conn.recv(&mut buf) {
        Ok(Received::Data(n)) => n,
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => bail!(
            "nothing is listening on {}: the kernel reported the datagram undeliverable; is the \
             server running?",
            conn.peer()
        ),
        Err(e) if !crate::transport::is_timeout(&e) => {
            bail!("no reply from {}: {e}", conn.peer())
        }
        Ok(_) | Err(_) => bail!(
            "no reply from {} within {timeout:?}: the request or the reply was lost, no server \
             is there, the reply was larger than the request, which an --exec server sends no \
             client off its host over datagrams (run exec over tcp), the server was busy and \
             the request too short to carry even \"busy\" (an empty request always is; send \
             some input, or run exec over tcp), or the server on this host admits only its own \
             user (serve --allow uid:N admits another; its log says whom it refused)",
            conn.peer()
        ),
    };
    let mut frames = Decoder::new(Framing::Length, MAX_MESSAGE);
    frames.feed(&buf[..n]);
    let mut code = None;
    while let Some(frame) = frames.next_frame()? {
        if let Some(c) = output.take(frame)? {
            code = Some(c);
        }
    }
    code.ok_or_else(|| anyhow!("the reply had no exit status"))
}

/// Input goes while output comes: a program may answer before its input ends. A server
/// silent for `timeout` (SO_RCVTIMEO, SO_SNDTIMEO on `conn`) while exec reads or sends ends it.
fn run_stream(
    conn: Conn,
    target: &Target,
    timeout: Option<Duration>,
    output: &mut Output,
) -> Result<i32> {
    let conn = Arc::new(conn);
    let stalled = Arc::new(AtomicBool::new(false));
    // The thread is not waited for: once the exit status is in, a stdin that never ends (a
    // terminal, a slow pipe) does not keep exec running.
    let sent = Arc::new(Mutex::new(Vec::new()));
    let (input, stuck, told) = (Arc::clone(&conn), Arc::clone(&stalled), Arc::clone(&sent));
    std::thread::Builder::new()
        .name("stdin".into())
        .spawn(move || send_stdin(&input, &stuck, &told))
        .context("cannot start the thread that sends stdin")?;
    let silent = |call, waited| {
        silent_peer(
            call,
            conn.peer(),
            waited,
            timeout.unwrap_or_default(),
            SILENT_ADVICE,
        )
    };
    // The program's output comes as length frames, on seqpacket as on a stream.
    let mut frames = MessageReader::new(Carrier::Frames(Framing::Length), MAX_MESSAGE);
    let mut heard = false;
    loop {
        let failed = match frames.read(&conn) {
            // A `serve --files` server's refusal of what it took for a request.
            Ok(Some(frame)) if !heard && frame.starts_with(b"ERR ") => {
                return Err(crate::error::Runs::Files.at(target));
            }
            Ok(Some(frame)) => {
                heard |= matches!(frame.first(), Some(&(STDOUT | STDERR | EXIT)));
                match output.take(&frame) {
                    Ok(Some(code)) => return Ok(code),
                    Ok(None) => continue,
                    Err(e) => e,
                }
            }
            _ if stalled.load(Ordering::Relaxed) => {
                return Err(silent(Call::Send, "exec sent the program its input"));
            }
            Err(RecvError::Io(e)) if transport::is_timeout(&e) => {
                return Err(silent(Call::Recv, "exec waited for the program's output"));
            }
            Ok(None) => anyhow!("the server closed the connection before the exit status"),
            Err(RecvError::Io(e)) => anyhow!("recv: {e}"),
            Err(e) => anyhow!("{e}"),
        };
        let sent = sent.lock().unwrap_or_else(|e| e.into_inner());
        return Err(not_exec(&conn, heard, failed, frames.pending(), &sent));
    }
}

/// The first bytes of stdin kept to tell an echo server's reply from another server's.
const KEPT: usize = 16;

/// An exec server's first words are a frame of output or the exit status. A server that
/// closes without one, or sends back the start of the input (`seen` begins as `sent`
/// does, in either case: netecho's own server uppercases), is likely an echo server; other bytes come from a server that is no exec server,
/// a plain stream server that writes its output as it is, which `send` reads.
fn not_exec(
    conn: &Conn,
    heard: bool,
    failed: anyhow::Error,
    seen: &[u8],
    sent: &[u8],
) -> anyhow::Error {
    if heard {
        return failed;
    }
    let peer = conn.peer();
    let common = seen.len().min(sent.len());
    if seen.is_empty() || seen[..common].eq_ignore_ascii_case(&sent[..common]) {
        return anyhow!(
            "{failed}: {peer} sent no output and no exit status, as an echo server does (it \
             sends back only the input); start the server with `netecho serve --exec PROGRAM`"
        );
    }
    anyhow!(
        "{peer}'s reply is not netecho's exec framing (a 4-byte length, then a tag byte): its \
         first bytes are {} (printable-escaped): a plain stream server? read it with \
         `netecho send {peer}`; an exec server is started with `netecho serve --exec PROGRAM`",
        crate::hexdump::literal(&seen[..seen.len().min(4)])
    )
}

/// Our stdin to the connection; at its end, the program's stdin closes. A server that took
/// nothing for the timeout (SO_SNDTIMEO) is marked `stalled`, and the connection shut down
/// both ways, which ends the wait for output too.
fn send_stdin(conn: &Conn, stalled: &AtomicBool, sent: &Mutex<Vec<u8>>) {
    let mut buf = vec![0u8; 64 * 1024];
    let mut stdin = io::stdin().lock();
    while let Ok(n) = stdin.read(&mut buf) {
        if n == 0 {
            break;
        }
        // Kept before it goes, so it is there when the reply to it comes.
        let mut kept = sent.lock().unwrap_or_else(|e| e.into_inner());
        let more = KEPT.saturating_sub(kept.len()).min(n);
        kept.extend_from_slice(&buf[..more]);
        drop(kept);
        match conn.send_all(&buf[..n]) {
            Ok(()) => {}
            Err(e) if transport::is_timeout(&e) => {
                stalled.store(true, Ordering::Relaxed);
                let _ = socket2::SockRef::from(conn).shutdown(std::net::Shutdown::Both);
                return;
            }
            Err(_) => break,
        }
    }
    let _ = conn.shutdown_write();
}
