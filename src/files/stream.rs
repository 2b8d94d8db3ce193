//! Files over a stream or seqpacket socket. Every message is a length-prefixed frame:
//!
//! ```text
//! client: "GET <name>"                      client: "PUT <size> <name>"
//! server: "OK <size>" | "ERR <reason>"      server: "OK" | "ERR <reason>"
//! sender: data frames (at most 60 KiB each), then an empty frame, then the
//!         32-byte SHA-256 of the data
//! PUT only, server: "OK stored" | "ERR <reason>"
//! ```

use std::fs::File;
use std::io::{Read, Write};
use std::time::Instant;

use anyhow::{Context, Result, anyhow, bail};
use sha2::{Digest, Sha256};
use tracing::{info, warn};

use crate::hexdump::{self, Way};
use crate::transport::Conn;
use crate::transport::framing::Framing;
use crate::transport::message::{Carrier, MessageReader, RecvError, send_frame};

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
fn send_body(conn: &Conn, file: &mut File, size: u64, progress: &dyn Fn(u64)) -> Result<u64> {
    let mut hash = Sha256::new();
    let mut buf = vec![0u8; CHUNK];
    let mut sent = 0u64;
    while sent < size {
        let want = ((size - sent) as usize).min(CHUNK);
        let n = file.read(&mut buf[..want]).context("read the file")?;
        if n == 0 {
            break; // The file shrank: the receiver sees a short transfer and says so.
        }
        hash.update(&buf[..n]);
        send_frame(conn, &buf[..n]).context("send data")?;
        sent += n as u64;
        progress(sent);
    }
    send_frame(conn, b"").context("send the end mark")?;
    send_frame(conn, &hash.finalize()).context("send the hash")?;
    Ok(sent)
}

/// Receives data frames into `out` until the end mark, then checks size and hash.
fn receive_body(
    conn: &Conn,
    frames: &mut MessageReader,
    out: &mut File,
    size: u64,
    max: u64,
    progress: &dyn Fn(u64),
) -> Result<u64> {
    let mut hash = Sha256::new();
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
    let actual = hash.finalize();
    if expected[..] != actual[..] {
        bail!(
            "SHA-256 mismatch: the sender says {}, the data received is {}",
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
    let result = if let Some(name) = request.strip_prefix("GET ") {
        serve_get(conn, store, name)
            .map(|bytes| {
                moved.1 = bytes;
                format!("sent '{name}'; {bytes} bytes")
            })
            .with_context(|| format!("get '{name}'"))
    } else if let Some(rest) = request.strip_prefix("PUT ") {
        serve_put(conn, &mut frames, store, rest).map(|(bytes, name)| {
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

fn serve_get(conn: &Conn, store: &Store, name: &str) -> Result<u64> {
    let (mut file, size) = match store.open_file(name) {
        Ok(found) => found,
        Err(refused) => {
            let _ = send_frame(conn, format!("ERR {refused}").as_bytes());
            bail!("refused: {refused}");
        }
    };
    send_frame(conn, format!("OK {size}").as_bytes())?;
    send_body(conn, &mut file, size, &|_| ())
}

fn serve_put(
    conn: &Conn,
    frames: &mut MessageReader,
    store: &Store,
    rest: &str,
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
        store.max_file,
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
    send_frame(conn, format!("GET {name}").as_bytes()).context("send the request")?;
    let mut frames = frames();
    let reply = text(&read(conn, &mut frames, "the reply")?);
    let size: u64 = match reply.strip_prefix("OK ") {
        Some(size) => size
            .parse()
            .with_context(|| format!("malformed reply {reply:?}"))?,
        None => bail!(
            "the server refused: {}",
            reply.strip_prefix("ERR ").unwrap_or(&reply)
        ),
    };
    let bytes = receive_body(
        conn,
        &mut frames,
        &mut partial.file,
        size,
        u64::MAX,
        &|got| progress(got, size),
    )?;
    partial.commit(force)?;
    Ok(Transfer {
        bytes,
        elapsed: start.elapsed(),
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
    send_frame(conn, format!("PUT {size} {name}").as_bytes()).context("send the request")?;
    let mut frames = frames();
    let reply = text(&read(conn, &mut frames, "the reply")?);
    if reply != "OK" {
        bail!(
            "the server refused: {}",
            reply.strip_prefix("ERR ").unwrap_or(&reply)
        );
    }
    let bytes = send_body(conn, file, size, progress)?;
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
        ..Transfer::default()
    })
}
