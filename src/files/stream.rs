//! Files over a stream or seqpacket socket. Every message is a length-prefixed frame:
//!
//! ```text
//! client: "BLAKE3 GET <name>"               client: "BLAKE3 PUT <size> <name>"
//! server: "OK <size>" | "ERR <reason>"      server: "OK" | "ERR <reason>"
//! sender: data frames (at most 60 KiB each), then an empty frame, then the
//!         32-byte BLAKE3 of the data
//! PUT only, server: "OK stored" | "ERR <reason>"
//! ```
//!
//! The request names the hash. A request without one (`GET <name>`, `PUT <size> <name>`,
//! as netecho sent before BLAKE3) is served with SHA-256, so an older client still works;
//! an older server answers the new request "unknown request", which the client explains.

use std::fs::File;
use std::io::Read;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use tracing::{info, warn};

use crate::endpoint::SocketKind;
use crate::hexdump::{self, Way};
use crate::transport::framing::{FrameError, Framing, LENGTH_HEADER};
use crate::transport::message::{Carrier, MessageReader, RecvError, send_frame};
use crate::transport::{Conn, Received};
use crate::wrap::printable;

use super::admit;
use super::download::Download;
use super::hash::{Algo, Hasher};
use super::store::{Partial, Store};
use super::{CHUNK, Transfer, hex, shrank, write_file, write_or_tell};

/// The largest control frame (a request line or a reply).
const MAX_CONTROL: usize = 4096;

/// Every message of the file protocol is a length-prefixed frame, on seqpacket too.
fn frames() -> MessageReader {
    MessageReader::new(Carrier::Frames(Framing::Length), CHUNK.max(MAX_CONTROL))
}

/// A reader of control frames only (a request, a reply): at most [`MAX_CONTROL`] bytes.
fn control() -> MessageReader {
    MessageReader::new(Carrier::Frames(Framing::Length), MAX_CONTROL)
}

/// The slowest a server's transfer may go, on average over each idle timeout (30 s by
/// default): a client that trickles a byte now and then to stay within the idle timeout
/// would otherwise keep its thread, slot and temporary file for as long as it likes.
pub(crate) const MIN_RATE: u64 = 1024;

/// Bytes moved in each period of a transfer, checked against [`MIN_RATE`]; a period of
/// None never cuts (a client's transfer, which its user watches).
struct Pace {
    period: Option<Duration>,
    since: Instant,
    at: u64,
}

impl Pace {
    fn new(period: Option<Duration>) -> Pace {
        Pace {
            period,
            since: Instant::now(),
            at: 0,
        }
    }

    /// After `total` bytes of `size`: an error once a period ended with fewer bytes moved
    /// in it than [`MIN_RATE`] asks (or than were left).
    fn check(&mut self, total: u64, size: u64) -> Result<()> {
        let Some(period) = self.period else {
            return Ok(());
        };
        let elapsed = self.since.elapsed();
        if elapsed < period {
            return Ok(());
        }
        let moved = total - self.at;
        let need = (MIN_RATE * elapsed.as_secs()).min(size.saturating_sub(self.at));
        if moved < need {
            bail!(
                "too slow: {moved} bytes in {:.0} s, under the {MIN_RATE} bytes/s a transfer \
                 must keep up (after {total} of {size} bytes)",
                elapsed.as_secs_f64()
            );
        }
        self.since = Instant::now();
        self.at = total;
        Ok(())
    }
}

/// No data for the idle timeout (SO_RCVTIMEO) during what it names, or a frame not whole
/// within it: a client words it as a server silent for its --timeout.
#[derive(Debug)]
pub(crate) struct Idle(pub(crate) String);

impl std::fmt::Display for Idle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "no data for the idle timeout during {}, or not all of it within the idle timeout",
            self.0
        )
    }
}

impl std::error::Error for Idle {}

/// An error of the transfer's body, with how far it got.
fn after(e: anyhow::Error, got: u64, size: u64) -> anyhow::Error {
    let far = format!("(after {got} of {size} bytes)");
    match e.downcast::<Idle>() {
        Ok(Idle(what)) => Idle(format!("{what} {far}")).into(),
        Err(e) => anyhow!("{e} {far}"),
    }
}

fn read(conn: &Conn, frames: &mut MessageReader, what: &str) -> Result<Vec<u8>> {
    conn.start_frame();
    match frames.read(conn) {
        Ok(Some(frame)) => {
            hexdump::dump_if(Way::In, &conn.peer(), &frame);
            Ok(frame)
        }
        Ok(None) => Err(unreadable(None, what)),
        Err(e) => Err(unreadable(Some(e), what)),
    }
}

/// Why `what` could not be read: the connection closed, went idle, or sent what netecho's
/// file protocol never sends.
fn unreadable(e: Option<RecvError>, what: &str) -> anyhow::Error {
    match e {
        None => anyhow!("the connection closed during {what}"),
        Some(RecvError::Io(e)) if e.kind() == std::io::ErrorKind::WouldBlock => {
            Idle(what.into()).into()
        }
        Some(RecvError::Frame(e @ FrameError::TooLong { .. })) => anyhow!(
            "{what}: {e}: the peer does not speak netecho's file protocol (netecho get and \
             put speak it with a netecho serve --files)"
        ),
        // The error itself kept, not only its words: `not_stored` looks for it.
        Some(RecvError::Io(e))
            if matches!(
                e.kind(),
                std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe
            ) =>
        {
            anyhow::Error::new(e).context(what.to_string())
        }
        Some(e) => anyhow!("{what}: {e}"),
    }
}

fn text(frame: &[u8]) -> String {
    String::from_utf8_lossy(frame).into_owned()
}

/// Sends `file`'s data (`size` bytes), the end mark and its hash; counts what was sent.
fn send_body(
    conn: &Conn,
    file: &mut File,
    (size, algo): (u64, Algo),
    pace: &mut Pace,
    progress: &dyn Fn(u64),
) -> Result<u64> {
    let mut hash = Hasher::new(algo);
    // Each frame is read into place behind its length header and sent from there: one
    // buffer for the whole transfer, no copy between the file and the socket.
    let mut buf = vec![0u8; LENGTH_HEADER + CHUNK];
    let mut sent = 0u64;
    while sent < size {
        let want = ((size - sent) as usize).min(CHUNK);
        let n = file
            .read(&mut buf[LENGTH_HEADER..LENGTH_HEADER + want])
            .context("read the file")?;
        if n == 0 {
            // No end mark nor hash: the receiver sees the connection close short of the
            // size announced, and says so.
            return Err(shrank(sent, size));
        }
        buf[..LENGTH_HEADER].copy_from_slice(&(n as u32).to_be_bytes());
        let frame = &buf[..LENGTH_HEADER + n];
        hash.update(&frame[LENGTH_HEADER..]);
        hexdump::dump_if(Way::Out, &conn.peer(), &frame[LENGTH_HEADER..]);
        send_paced(conn, frame, pace, (sent, size)).context("send data")?;
        sent += n as u64;
        progress(sent);
    }
    send_frame(conn, b"").context("send the end mark")?;
    send_frame(conn, &hash.digest()).context("send the hash")?;
    Ok(sent)
}

/// One data frame; on a stream in pieces, [`Pace`] checked after each, so that a receiver
/// that reads a little now and then cannot hold the sender in one frame for long.
fn send_paced(conn: &Conn, frame: &[u8], pace: &mut Pace, (sent, size): (u64, u64)) -> Result<()> {
    if conn.kind() != SocketKind::Stream || pace.period.is_none() {
        return Ok(conn.send_all(frame)?);
    }
    let mut done = 0;
    while done < frame.len() {
        match conn.send_some(&frame[done..]) {
            Ok(n) => done += n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                bail!("the receiver took nothing for the idle timeout")
            }
            Err(e) => return Err(e.into()),
        }
        let body = done.saturating_sub(LENGTH_HEADER) as u64;
        pace.check(sent + body, size)?;
    }
    Ok(())
}

/// Receives data frames into `out` until the end mark, then checks size and hash.
fn receive_body(
    conn: &Conn,
    frames: &mut MessageReader,
    out: &mut File,
    (size, max, algo): (u64, u64, Algo),
    pace: &mut Pace,
    progress: &dyn Fn(u64),
) -> Result<u64> {
    let mut hash = Hasher::new(algo);
    let mut got = 0u64;
    loop {
        let frame = read(conn, frames, "the transfer").map_err(|e| after(e, got, size))?;
        if frame.is_empty() {
            break;
        }
        got += frame.len() as u64;
        if got > size.min(max) {
            bail!("the sender sent more than the {size} bytes it announced");
        }
        pace.check(got, size)?;
        hash.update(&frame);
        // The error reply of whoever receives (serve_put) tells the sender every error.
        write_or_tell(out, &frame, |_| {})?;
        progress(got);
    }
    if got != size {
        bail!("short transfer: {got} of {size} bytes");
    }
    let expected = read(conn, frames, "the hash")?;
    let actual = hash.digest();
    if expected[..] != actual[..] {
        bail!(
            "{} mismatch: the sender says {}, the data received is {}",
            algo.label(),
            hex(&expected),
            hex(&actual)
        );
    }
    Ok(got)
}

/// Serves one connection's request (a blocking socket). Errors are the client's and are
/// logged; they never stop the server.
/// Serves one request on `conn`; returns the file bytes received and sent, for the
/// server's summary.
/// `idle` is the period over which a transfer must keep up [`MIN_RATE`].
pub(crate) fn serve(conn: &Conn, store: &Store, idle: Duration) -> (u64, u64) {
    let peer = conn.peer().to_string();
    let start = Instant::now();
    let request = match read_control(conn, &mut control(), "the request") {
        Ok(r) => text(&r),
        Err(e) => {
            warn!("{peer}: {}", printable(&e.to_string()));
            // A client of another protocol (exec's stdin, nc) hears what this server is, in
            // the file protocol's words, which `netecho exec` recognises; a silent one is
            // only closed, as every idle connection is.
            if e.downcast_ref::<Idle>().is_none() {
                let said = format!("ERR {e}: this server runs --files (netecho get, put)");
                let _ = send_frame(conn, said.as_bytes());
            }
            return (0, 0);
        }
    };
    let mut moved = (0, 0);
    let (algo, request) = match request.strip_prefix(V2) {
        Some(rest) => (Algo::Blake3, rest.to_string()),
        None => (Algo::Sha256, request),
    };
    let mut pace = Pace::new(Some(idle));
    let result = if let Some(name) = request.strip_prefix("GET ") {
        serve_get(conn, store, name, (algo, &mut pace)).map(|bytes| {
            moved.1 = bytes;
            format!("sent '{name}'; {}", crate::units::count(bytes, "byte"))
        })
    } else if let Some(rest) = request.strip_prefix("PUT ") {
        serve_put(conn, store, rest, (algo, &mut pace)).map(|(bytes, name)| {
            moved.0 = bytes;
            format!("stored '{name}'; {}", crate::units::count(bytes, "byte"))
        })
    } else {
        let _ = send_frame(
            conn,
            b"ERR unknown request; send GET <name> or PUT <size> <name>",
        );
        Err(anyhow!("unknown request {request:?}"))
    };
    // The names in these lines are the client's: escaped, so the log stays one line each.
    match result {
        Ok(done) => info!(
            "{peer}: {} in {}",
            printable(&done),
            crate::units::took(start.elapsed())
        ),
        Err(e) => warn!("{peer}: {}", printable(&format!("{e:#}"))),
    }
    moved
}

fn serve_get(
    conn: &Conn,
    store: &Store,
    name: &str,
    (algo, pace): (Algo, &mut Pace),
) -> Result<u64> {
    let (mut file, size) = match store.open_file(name) {
        Ok(found) => found,
        Err(refused) => {
            let _ = send_frame(conn, format!("ERR {refused}").as_bytes());
            // The refusal names the file already: a long name is logged once.
            bail!("get refused: {refused}");
        }
    };
    let sent = send_frame(conn, format!("OK {size}").as_bytes())
        .map_err(anyhow::Error::from)
        .and_then(|()| send_body(conn, &mut file, (size, algo), pace, &|_| ()))
        .with_context(|| format!("get '{name}'"))?;
    if let Some(grew) = super::grew(&file, size) {
        warn!("{}: '{}': {grew}", conn.peer(), printable(name));
    }
    Ok(sent)
}

fn serve_put(
    conn: &Conn,
    store: &Store,
    rest: &str,
    (algo, pace): (Algo, &mut Pace),
) -> Result<(u64, String)> {
    let Some((size, name)) = rest
        .split_once(' ')
        .and_then(|(size, name)| Some((size.parse::<u64>().ok()?, name.to_string())))
    else {
        let _ = send_frame(conn, b"ERR malformed request; send PUT <size> <name>");
        bail!("malformed PUT {rest:?}");
    };
    let target = match store.upload_path(&name, size) {
        Ok(path) => path,
        Err(refused) => {
            let _ = send_frame(conn, format!("ERR {refused}").as_bytes());
            bail!("refused upload: {refused}");
        }
    };
    let mut partial = match Partial::create(&target, false) {
        Ok(partial) => partial,
        Err(e) => {
            // The client hears why, instead of a closed connection.
            let _ = send_frame(conn, format!("ERR {e:#}").as_bytes());
            return Err(e.context(format!("put '{name}'")));
        }
    };
    let proto = crate::access::conn_proto(conn);
    let owner = admit::owner(conn.remote(), proto, || crate::access::conn_user(conn));
    if let Err(refused) = partial.reserve_upload(&name, size, owner) {
        let _ = send_frame(conn, format!("ERR {refused}").as_bytes());
        bail!("refused upload: {refused}");
    }
    send_frame(conn, b"OK")?;
    // Read only after OK: the request's reader took nothing past the request.
    match receive_body(
        conn,
        &mut frames(),
        &mut partial.file,
        (size, store.max_file, algo),
        pace,
        &|_| {},
    ) {
        Ok(bytes) => match partial.commit(false) {
            Ok(()) => {
                send_frame(conn, b"OK stored")?;
                Ok((bytes, name))
            }
            Err(e) => {
                // The client hears why its verified upload was not kept.
                let _ = send_frame(conn, format!("ERR {e:#}").as_bytes());
                Err(e.context(format!("put '{name}'")))
            }
        },
        Err(e) => {
            // The whole chain: "write the file" alone would not say the disk is full.
            let _ = send_frame(conn, format!("ERR {e:#}").as_bytes());
            Err(e.context(format!("put '{name}'")))
        }
    }
}

/// Downloads `name` into `out` (a file never left under its final name unless verified).
pub(crate) fn get(
    conn: &Conn,
    name: &str,
    mut out: Download,
    (force, max): (bool, Option<u64>),
    progress: &dyn Fn(u64, u64),
) -> Result<Transfer> {
    let start = Instant::now();
    let request = format!("{V2}GET {name}");
    send_frame(conn, request.as_bytes()).context("send the request")?;
    let mut frames = frames();
    let reply = text(&read_control(conn, &mut frames, "the reply")?);
    let size: u64 = match reply.strip_prefix("OK ") {
        Some(size) => size
            .parse()
            .with_context(|| format!("malformed reply {reply:?}"))?,
        None => return Err(refused(conn, &request, &reply)),
    };
    out.check_room(size, max)?;
    let bytes = if conn.kind() == SocketKind::Stream {
        direct::receive(conn, out.file(), size, &|got| progress(got, size))?
    } else {
        receive_body(
            conn,
            &mut frames,
            out.file(),
            (size, u64::MAX, Algo::Blake3),
            &mut Pace::new(None),
            &|got| progress(got, size),
        )?
    };
    out.commit(force)?;
    Ok(Transfer {
        bytes,
        elapsed: start.elapsed(),
        hash: Some(Algo::Blake3),
        ..Transfer::default()
    })
}

/// Uploads `file` (`size` bytes) as `name`, telling `progress` the bytes sent so far.
pub(crate) fn put(
    conn: &Conn,
    file: &mut File,
    size: u64,
    name: &str,
    progress: &dyn Fn(u64),
) -> Result<Transfer> {
    let start = Instant::now();
    let request = format!("{V2}PUT {size} {name}");
    send_frame(conn, request.as_bytes()).context("send the request")?;
    let mut frames = frames();
    let reply = text(&read(conn, &mut frames, "the reply")?);
    if reply != "OK" {
        return Err(refused(conn, &request, &reply));
    }
    let bytes = send_body(
        conn,
        file,
        (size, Algo::Blake3),
        &mut Pace::new(None),
        progress,
    )
    .map_err(|e| why_cut(conn, &mut frames, e))?;
    let done = text(&read(conn, &mut frames, "the server's verdict").map_err(not_stored)?);
    if done != "OK stored" {
        bail!(
            "the server did not store it: {}",
            done.strip_prefix("ERR ").unwrap_or(&done)
        );
    }
    Ok(Transfer {
        bytes,
        elapsed: start.elapsed(),
        hash: Some(Algo::Blake3),
        ..Transfer::default()
    })
}

/// A send that failed because the server closed the connection (a reset, a broken pipe)
/// as the server's reason: a server that gives up on an upload sends "ERR why" and closes
/// with the client's data unread, which resets the connection, and the reason waits in the
/// client's receive queue.
fn why_cut(conn: &Conn, frames: &mut MessageReader, e: anyhow::Error) -> anyhow::Error {
    if closed_by_peer(&e).is_none() {
        return e;
    }
    match read(conn, frames, "the server's reason") {
        Ok(frame) => match text(&frame).strip_prefix("ERR ") {
            Some(why) => anyhow!("the server stopped the upload: {}", printable(why)),
            None => not_stored(e),
        },
        Err(_) => not_stored(e),
    }
}

/// The reset or broken pipe in `e`'s causes: the peer closed the connection.
fn closed_by_peer(e: &anyhow::Error) -> Option<&std::io::Error> {
    e.chain().find_map(|cause| {
        cause.downcast_ref::<std::io::Error>().filter(|io| {
            matches!(
                io.kind(),
                std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe
            )
        })
    })
}

/// An upload cut before the server's verdict, by a closed or reset connection, as what it
/// means for the file: not stored, as far as anyone can tell.
fn not_stored(e: anyhow::Error) -> anyhow::Error {
    match closed_by_peer(&e) {
        Some(io) => anyhow!(
            "the server closed the connection ({}) before saying the file was stored: take it \
             as not stored, and look at the server's log",
            crate::error::kernel_says(io)
        ),
        None => e,
    }
}

/// A control frame that data may follow at once: the server's reply to a GET, a client's
/// request. On a stream, read a byte at a time: the data frames after it are read by
/// [`direct::receive`] or another reader, so `frames` must not hold any of them.
fn read_control(conn: &Conn, frames: &mut MessageReader, what: &str) -> Result<Vec<u8>> {
    if conn.kind() != SocketKind::Stream {
        return read(conn, frames, what);
    }
    conn.start_frame();
    match frames.read_at_most(conn, 1) {
        Ok(Some(frame)) => {
            hexdump::dump_if(Way::In, &conn.peer(), &frame);
            Ok(frame)
        }
        Ok(None) => Err(unreadable(None, what)),
        Err(e) => Err(unreadable(Some(e), what)),
    }
}

/// What a request of this version starts with: the hash it asks for.
const V2: &str = "BLAKE3 ";

/// The server's refusal as an error; an older server's "unknown request" is explained, and
/// so are an echo server's sending `request` back and a `serve --exec` server's first frame
/// (a tag byte, then the program's output, or its exit status).
fn refused(conn: &Conn, request: &str, reply: &str) -> anyhow::Error {
    if crate::error::sent_back(request.as_bytes(), reply.as_bytes()) {
        return crate::error::echo_server_at(conn.peer(), "--files DIR");
    }
    use crate::service::exec::{EXIT, STDERR, STDOUT};
    if let Some(STDOUT | STDERR | EXIT) = reply.as_bytes().first().copied() {
        return crate::error::Runs::Exec.into();
    }
    let why = printable(reply.strip_prefix("ERR ").unwrap_or(reply));
    if why.starts_with("unknown request") {
        return anyhow!(
            "the server refused: {why} (an older netecho, which checks files with SHA-256 \
             only: run the same netecho version at both ends)"
        );
    }
    anyhow!("the server refused: {why}")
}

/// A download's body on a stream socket without a reader in between: large reads into one
/// buffer, frames cut where they lie, hashed and written from there (a byte is copied once
/// from the socket and once into the file, as `socat` does).
mod direct {
    use super::*;

    /// Bytes asked of each recv(2).
    const READ: usize = 1 << 20;

    /// The data frames up to the end mark, then the hash; checks size and hash.
    pub(super) fn receive(
        conn: &Conn,
        out: &mut File,
        size: u64,
        progress: &dyn Fn(u64),
    ) -> Result<u64> {
        let mut r = Reader {
            buf: vec![0u8; READ + LENGTH_HEADER + CHUNK],
            start: 0,
            end: 0,
        };
        let mut hash = Hasher::new(Algo::Blake3);
        let mut got = 0u64;
        loop {
            let frame = r.frame(conn).map_err(|e| after(e, got, size))?;
            if frame.is_empty() {
                break;
            }
            got += frame.len() as u64;
            if got > size {
                bail!("the sender sent more than the {size} bytes it announced");
            }
            hash.update(frame);
            write_file(out, frame)?;
            progress(got);
        }
        if got != size {
            bail!("short transfer: {got} of {size} bytes");
        }
        let expected = r.frame(conn)?.to_vec();
        let actual = hash.digest();
        if expected[..] != actual[..] {
            bail!(
                "BLAKE3 mismatch: the sender says {}, the data received is {}",
                hex(&expected),
                hex(&actual)
            );
        }
        Ok(got)
    }

    /// Bytes received and not yet taken: `buf[start..end]`.
    struct Reader {
        buf: Vec<u8>,
        start: usize,
        end: usize,
    }

    impl Reader {
        /// The next frame's payload, read as needed.
        fn frame(&mut self, conn: &Conn) -> Result<&[u8]> {
            conn.start_frame();
            let len = loop {
                if let Some(header) = self.buf.get(self.start..self.start + LENGTH_HEADER)
                    && self.end - self.start >= LENGTH_HEADER
                {
                    let len = u32::from_be_bytes(header.try_into().expect("4 bytes")) as usize;
                    if len > CHUNK {
                        bail!("a {len}-byte frame, over the {CHUNK}-byte chunk");
                    }
                    if self.end - self.start >= LENGTH_HEADER + len {
                        break len;
                    }
                }
                self.fill(conn)?;
            };
            let at = self.start + LENGTH_HEADER;
            self.start = at + len;
            hexdump::dump_if(Way::In, &conn.peer(), &self.buf[at..at + len]);
            Ok(&self.buf[at..at + len])
        }

        /// One recv(2) after what is held, moved to the front first when a whole read
        /// and the largest frame would not fit behind it.
        fn fill(&mut self, conn: &Conn) -> Result<()> {
            if self.buf.len() - self.end < READ {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            }
            match conn.recv(&mut self.buf[self.end..]) {
                Ok(Received::Data(n)) => {
                    self.end += n;
                    Ok(())
                }
                Ok(_) => Err(anyhow!("the connection closed during the transfer")),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    Err(Idle("the transfer".into()).into())
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => Ok(()),
                Err(e) => Err(anyhow!("the transfer: {e}")),
            }
        }
    }
}
