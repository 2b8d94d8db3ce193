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
use std::io::{Read, Write};
use std::time::Instant;

use anyhow::{Context, Result, anyhow, bail};
use tracing::{info, warn};

use crate::endpoint::SocketKind;
use crate::hexdump::{self, Way};
use crate::transport::framing::{Framing, LENGTH_HEADER};
use crate::transport::message::{Carrier, MessageReader, RecvError, send_frame};
use crate::transport::{Conn, Received};

use super::hash::{Algo, Hasher};
use super::store::{Partial, Store};
use super::{CHUNK, Transfer, hex};

/// The largest control frame (a request line or a reply).
const MAX_CONTROL: usize = 4096;

/// Every message of the file protocol is a length-prefixed frame, on seqpacket too.
fn frames() -> MessageReader {
    MessageReader::new(Carrier::Frames(Framing::Length), CHUNK.max(MAX_CONTROL))
}

fn read(conn: &Conn, frames: &mut MessageReader, what: &str) -> Result<Vec<u8>> {
    conn.start_frame();
    match frames.read(conn) {
        Ok(Some(frame)) => {
            hexdump::dump_if(Way::In, &conn.peer(), &frame);
            Ok(frame)
        }
        Ok(None) => Err(anyhow!("the connection closed during {what}")),
        Err(RecvError::Io(e)) if e.kind() == std::io::ErrorKind::WouldBlock => Err(anyhow!(
            "no data for the idle timeout during {what}, or not all of it within the idle timeout"
        )),
        Err(e) => Err(anyhow!("{what}: {e}")),
    }
}

fn text(frame: &[u8]) -> String {
    String::from_utf8_lossy(frame).into_owned()
}

/// Sends `file`'s data (`size` bytes), the end mark and its hash; counts what was sent.
fn send_body(
    conn: &Conn,
    file: &mut File,
    size: u64,
    algo: Algo,
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
            break; // The file shrank: the receiver sees a short transfer and says so.
        }
        buf[..LENGTH_HEADER].copy_from_slice(&(n as u32).to_be_bytes());
        let frame = &buf[..LENGTH_HEADER + n];
        hash.update(&frame[LENGTH_HEADER..]);
        hexdump::dump_if(Way::Out, &conn.peer(), &frame[LENGTH_HEADER..]);
        conn.send_all(frame).context("send data")?;
        sent += n as u64;
        progress(sent);
    }
    send_frame(conn, b"").context("send the end mark")?;
    send_frame(conn, &hash.digest()).context("send the hash")?;
    Ok(sent)
}

/// Receives data frames into `out` until the end mark, then checks size and hash.
fn receive_body(
    conn: &Conn,
    frames: &mut MessageReader,
    out: &mut File,
    size: u64,
    max: (u64, Algo),
    progress: &dyn Fn(u64),
) -> Result<u64> {
    let (max, algo) = max;
    let mut hash = Hasher::new(algo);
    let mut got = 0u64;
    loop {
        let frame = read(conn, frames, "the transfer")
            .map_err(|e| anyhow!("{e} (after {got} of {size} bytes)"))?;
        if frame.is_empty() {
            break;
        }
        got += frame.len() as u64;
        if got > size.min(max) {
            bail!("the sender sent more than the {size} bytes it announced");
        }
        hash.update(&frame);
        out.write_all(&frame).context("write the file")?;
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
pub(crate) fn serve(conn: &Conn, store: &Store) -> (u64, u64) {
    let peer = conn.peer().to_string();
    let start = Instant::now();
    let mut frames = frames();
    let request = match read(conn, &mut frames, "the request") {
        Ok(r) => text(&r),
        Err(e) => {
            warn!("{peer}: {e}");
            return (0, 0);
        }
    };
    let mut moved = (0, 0);
    let (algo, request) = match request.strip_prefix(V2) {
        Some(rest) => (Algo::Blake3, rest.to_string()),
        None => (Algo::Sha256, request),
    };
    let result = if let Some(name) = request.strip_prefix("GET ") {
        serve_get(conn, store, name, algo)
            .map(|bytes| {
                moved.1 = bytes;
                format!("sent '{name}'; {bytes} bytes")
            })
            .with_context(|| format!("get '{name}'"))
    } else if let Some(rest) = request.strip_prefix("PUT ") {
        serve_put(conn, &mut frames, store, rest, algo).map(|(bytes, name)| {
            moved.0 = bytes;
            format!("stored '{name}'; {bytes} bytes")
        })
    } else {
        let _ = send_frame(
            conn,
            b"ERR unknown request; send GET <name> or PUT <size> <name>",
        );
        Err(anyhow!("unknown request {request:?}"))
    };
    match result {
        Ok(done) => info!("{peer}: {done} in {:.2} s", start.elapsed().as_secs_f64()),
        Err(e) => warn!("{peer}: {e:#}"),
    }
    moved
}

fn serve_get(conn: &Conn, store: &Store, name: &str, algo: Algo) -> Result<u64> {
    let (mut file, size) = match store.open_file(name) {
        Ok(found) => found,
        Err(refused) => {
            let _ = send_frame(conn, format!("ERR {refused}").as_bytes());
            bail!("refused: {refused}");
        }
    };
    send_frame(conn, format!("OK {size}").as_bytes())?;
    send_body(conn, &mut file, size, algo, &|_| ())
}

fn serve_put(
    conn: &Conn,
    frames: &mut MessageReader,
    store: &Store,
    rest: &str,
    algo: Algo,
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
    send_frame(conn, b"OK")?;
    match receive_body(
        conn,
        frames,
        &mut partial.file,
        size,
        (store.max_file, algo),
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
            let _ = send_frame(conn, format!("ERR {e}").as_bytes());
            Err(e.context(format!("put '{name}'")))
        }
    }
}

/// Downloads `name` into `out` (never left under its final name unless verified).
pub(crate) fn get(
    conn: &Conn,
    name: &str,
    out: &std::path::Path,
    force: bool,
    progress: &dyn Fn(u64, u64),
) -> Result<Transfer> {
    let start = Instant::now();
    let mut partial = Partial::create(out, force)?;
    send_frame(conn, format!("{V2}GET {name}").as_bytes()).context("send the request")?;
    let mut frames = frames();
    let reply = text(&read_reply(conn, &mut frames)?);
    let size: u64 = match reply.strip_prefix("OK ") {
        Some(size) => size
            .parse()
            .with_context(|| format!("malformed reply {reply:?}"))?,
        None => return Err(refused(&reply)),
    };
    let bytes = if conn.kind() == SocketKind::Stream {
        direct::receive(conn, &mut partial.file, size, &|got| progress(got, size))?
    } else {
        receive_body(
            conn,
            &mut frames,
            &mut partial.file,
            size,
            (u64::MAX, Algo::Blake3),
            &|got| progress(got, size),
        )?
    };
    partial.commit(force)?;
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
    send_frame(conn, format!("{V2}PUT {size} {name}").as_bytes()).context("send the request")?;
    let mut frames = frames();
    let reply = text(&read(conn, &mut frames, "the reply")?);
    if reply != "OK" {
        return Err(refused(&reply));
    }
    let bytes = send_body(conn, file, size, Algo::Blake3, progress)?;
    let done = text(&read(conn, &mut frames, "the server's verdict")?);
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

/// The server's reply to a GET. On a stream, read a byte at a time: the data frames follow
/// at once, and they are read by [`direct::receive`], not by `frames`, which must not
/// hold any of them.
fn read_reply(conn: &Conn, frames: &mut MessageReader) -> Result<Vec<u8>> {
    if conn.kind() != SocketKind::Stream {
        return read(conn, frames, "the reply");
    }
    conn.start_frame();
    match frames.read_at_most(conn, 1) {
        Ok(Some(frame)) => {
            hexdump::dump_if(Way::In, &conn.peer(), &frame);
            Ok(frame)
        }
        Ok(None) => Err(anyhow!("the connection closed during the reply")),
        Err(e) => Err(anyhow!("the reply: {e}")),
    }
}

/// What a request of this version starts with: the hash it asks for.
const V2: &str = "BLAKE3 ";

/// The server's refusal as an error; an older server's "unknown request" is explained.
fn refused(reply: &str) -> anyhow::Error {
    let why = reply.strip_prefix("ERR ").unwrap_or(reply);
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
            let frame = r
                .frame(conn)
                .map_err(|e| anyhow!("{e} (after {got} of {size} bytes)"))?;
            if frame.is_empty() {
                break;
            }
            got += frame.len() as u64;
            if got > size {
                bail!("the sender sent more than the {size} bytes it announced");
            }
            hash.update(frame);
            out.write_all(frame).context("write the file")?;
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
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Err(anyhow!(
                    "no data for the idle timeout during the transfer, or not all of it \
                     within the idle timeout"
                )),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => Ok(()),
                Err(e) => Err(anyhow!("the transfer: {e}")),
            }
        }
    }
}
