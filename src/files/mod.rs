//! The lesson's file-download chapter: `serve --files DIR`, `get` and `put`. Over streams
//! (tcp, unix, unix-seqpacket) the kernel already delivers every byte in order, so a request,
//! length-prefixed chunks and a hash (BLAKE3, `hash.rs`) suffice (`stream.rs`); over datagrams nothing does,
//! so a small TFTP-like protocol numbers, acknowledges and retransmits blocks
//! (`datagram.rs`, packets in `packet.rs`).

pub(crate) mod admit;
pub(crate) mod datagram;
pub(crate) mod download;
pub(crate) mod hash;
pub(crate) mod impair;
pub(crate) mod packet;
pub(crate) mod service;
pub(crate) mod store;
pub(crate) mod stream;
pub(crate) mod tftp;

use std::time::Duration;

/// Bytes of file data per stream chunk: one frame, which fits one seqpacket message.
pub(crate) const CHUNK: usize = 60 * 1024;
/// The default bound on a file's size.
pub(crate) const DEFAULT_MAX_FILE: u64 = 4 << 30;

/// What a finished transfer did, for its summary line.
#[derive(Clone, Debug, Default)]
pub(crate) struct Transfer {
    pub bytes: u64,
    pub elapsed: Duration,
    /// Datagram transfers: blocks sent, sent again, and received twice.
    pub blocks: u64,
    pub retransmitted: u64,
    pub duplicates: u64,
    /// Datagrams dropped or held back on purpose (--drop, --reorder).
    pub dropped: u64,
    /// ACKs for blocks never sent, ignored (a receiver claiming what it cannot have).
    pub unsent_acks: u64,
    /// The hash that checked it.
    pub hash: Option<hash::Algo>,
}

/// What the hash check at the end of a transfer shows, from where each side stands: the
/// bytes are the ones the sender hashed (integrity). Who the sender is, the hash cannot
/// tell.
pub(crate) const GOT: &str = "matches what the server sent";
pub(crate) const PUT: &str = "matches at the server";
pub(crate) const SENT: &str = "matches at the client";
pub(crate) const STORED: &str = "matches what the client sent";

impl Transfer {
    /// The summary line; `check` is one of [`GOT`], [`PUT`], [`SENT`], [`STORED`].
    pub(crate) fn summary(&self, what: &str, check: &str) -> String {
        let secs = self.elapsed.as_secs_f64().max(1e-6);
        // TFTP carries no hash: its `check` says so alone.
        let hash = self
            .hash
            .map(|h| format!("{} ", h.name()))
            .unwrap_or_default();
        let mut line = format!(
            "{what}: {} in {} ({:.1} MB/s), {hash}{check}",
            crate::units::count(self.bytes, "byte"),
            crate::units::took(self.elapsed),
            self.bytes as f64 / 1e6 / secs,
        );
        if self.blocks > 0 {
            line.push_str(&format!(
                "; blocks sent {}, retransmitted {}, duplicates {}, simulated drops {}",
                self.blocks, self.retransmitted, self.duplicates, self.dropped
            ));
        }
        if self.unsent_acks > 0 {
            line.push_str(&format!(
                "; ignored {} ACKs for blocks never sent",
                self.unsent_acks
            ));
        }
        line
    }
}

/// What a sender says of a file that grew past the `size` it announced: the copy holds the
/// first `size` bytes (what the hash covers), not the file as it is now. `None` otherwise.
pub(crate) fn grew(file: &std::fs::File, size: u64) -> Option<String> {
    let now = file.metadata().ok()?.len();
    (now > size).then(|| {
        format!(
            "the file grew during the transfer, to {now} bytes: the copy holds the {size} it \
             had when the transfer began"
        )
    })
}

/// The error of a sender whose file ended before the size it announced: the transfer ends
/// there, as a short block or frame would pass for the last one.
pub(crate) fn shrank(at: u64, size: u64) -> anyhow::Error {
    anyhow::anyhow!(
        "the file shrank during the transfer: a read at byte {at} of the {size} announced came \
         short"
    )
}

/// Writes `data` to the file being received. A write that fails (a full disk) is handed to
/// `tell`, which sends it to the peer in its protocol's words, so that it hears why instead
/// of waiting out its tries; the log gets the same words.
pub(crate) fn write_or_tell(
    out: &mut std::fs::File,
    data: &[u8],
    tell: impl FnOnce(&anyhow::Error),
) -> anyhow::Result<()> {
    let written = write_file(out, data);
    if let Err(e) = &written {
        tell(e);
    }
    written
}

/// A failed write to the file being received (a full disk), told apart from a socket's
/// failure: to `get -o -` the file is stdout, and the failure stdout's.
#[derive(Debug)]
pub(crate) struct FileWrite(pub(crate) std::io::Error);

impl std::fmt::Display for FileWrite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "write the file: {}", self.0)
    }
}

impl std::error::Error for FileWrite {}

/// Writes `data` to the file being received; a failure is a [`FileWrite`].
pub(crate) fn write_file(out: &mut std::fs::File, data: &[u8]) -> anyhow::Result<()> {
    std::io::Write::write_all(out, data).map_err(|e| FileWrite(e).into())
}

/// A digest as lowercase hex, for messages.
pub(crate) fn hex(digest: &[u8]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}
