//! Counters the service keeps: one [`Tally`] per client, summed into the server's [`Stats`].

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use tracing::info;

use crate::endpoint::Proto;
use crate::transport::framing::Framing;
use crate::transport::message::Carrier;

/// Bytes and messages of one client (a connection, or a datagram peer).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Tally {
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// Messages: reads on an unframed stream, frames on a framed one, datagrams or packets.
    pub messages: u64,
    /// recv calls that returned data, on connected sockets.
    pub reads: u64,
    /// Whether messages are frames cut from a stream (--framing line|length).
    pub framed: bool,
    /// At the close: bytes read of a frame that never came whole, and what it lacked ("line",
    /// "frame"); they are bytes in, though no message.
    pub unfinished: Option<(u64, &'static str)>,
}

impl Tally {
    /// Counts one message in and the reply out on this client alone.
    pub(crate) fn message(&mut self, bytes_in: usize, bytes_out: usize) {
        self.messages += 1;
        self.bytes_in += bytes_in as u64;
        self.bytes_out += bytes_out as u64;
    }
}

/// Totals for the whole server, shared by every thread that serves a client.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    clients: AtomicU64,
    messages: AtomicU64,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
}

impl Stats {
    /// Counters in memory shared with child processes, so that the `fork` model's children
    /// count into the parent's summary. Lives as long as the process.
    pub(crate) fn shared() -> &'static Stats {
        let len = std::num::NonZeroUsize::new(std::mem::size_of::<Stats>()).expect("not empty");
        // Safety: a fresh anonymous mapping is zero-filled and page-aligned, and all-zero
        // AtomicU64s are valid counters. The mapping is never unmapped, so the reference
        // stays valid for the rest of the process (and in children, which inherit it).
        unsafe {
            let ptr = nix::sys::mman::mmap_anonymous(
                None,
                len,
                nix::sys::mman::ProtFlags::PROT_READ | nix::sys::mman::ProtFlags::PROT_WRITE,
                nix::sys::mman::MapFlags::MAP_SHARED,
            )
            .expect("mmap a page for the server's counters");
            &*ptr.as_ptr().cast::<Stats>()
        }
    }

    pub(crate) fn client(&self) {
        self.clients.fetch_add(1, Relaxed);
    }

    /// Counts one message in and the reply out, on the client's tally and the totals.
    pub(crate) fn message(&self, tally: &mut Tally, bytes_in: usize, bytes_out: usize) {
        tally.message(bytes_in, bytes_out);
        self.messages.fetch_add(1, Relaxed);
        self.bytes_in.fetch_add(bytes_in as u64, Relaxed);
        self.bytes_out.fetch_add(bytes_out as u64, Relaxed);
    }

    /// Adds a finished client's tally, counted on the tally alone as it went, to the totals.
    pub(crate) fn settle(&self, tally: &Tally) {
        self.messages.fetch_add(tally.messages, Relaxed);
        self.bytes_in.fetch_add(tally.bytes_in, Relaxed);
        self.bytes_out.fetch_add(tally.bytes_out, Relaxed);
    }
}

impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "clients {}, messages {}, bytes in {}, bytes out {}",
            self.clients.load(Relaxed),
            self.messages.load(Relaxed),
            self.bytes_in.load(Relaxed),
            self.bytes_out.load(Relaxed)
        )
    }
}

/// The one log line per client: who, how much, and how it ended.
pub(crate) fn log_client(proto: Proto, peer: &str, tally: &Tally, ended: &dyn fmt::Display) {
    info!("{}", client_line(proto, peer, tally, ended));
}

/// [`log_client`], or at debug level when `quiet` (a server whose clients say their own
/// ends, as a lab server's runs do).
pub(crate) fn log_client_as(
    quiet: bool,
    proto: Proto,
    peer: &str,
    tally: &Tally,
    ended: &dyn fmt::Display,
) {
    match quiet {
        true => tracing::debug!("{}", client_line(proto, peer, tally, ended)),
        false => log_client(proto, peer, tally, ended),
    }
}

/// What one client did, in one line: bytes both ways, and reads or messages.
pub(crate) fn client_line(
    proto: Proto,
    peer: &str,
    tally: &Tally,
    ended: &dyn fmt::Display,
) -> String {
    // On a stream the number of reads is the lesson: several messages can arrive in one.
    let carrier = Carrier::of(proto.kind(), Framing::None);
    // QUIC with a framing is one stream: frames in reads, as on tcp.
    let boundaries = carrier.keeps_boundaries() && !(proto == Proto::Quic && tally.framed);
    let n = crate::units::count;
    let count = match (boundaries, tally.framed) {
        (false, true) => format!(
            "{} in {}",
            n(tally.messages, "frame"),
            n(tally.reads, "read")
        ),
        (false, false) => n(tally.reads, "read"),
        (true, _) => n(tally.messages, "message"),
    };
    let bytes_in = match tally.unfinished {
        Some((have, what)) if tally.messages == 0 => {
            format!(
                "{} in (no complete {what})",
                n(tally.bytes_in + have, "byte")
            )
        }
        Some((have, what)) => format!(
            "{} in ({have} of them no complete {what})",
            n(tally.bytes_in + have, "byte")
        ),
        None => format!("{} in", n(tally.bytes_in, "byte")),
    };
    format!(
        "{proto} {peer}: {bytes_in}, {} out, {count}; {ended}",
        n(tally.bytes_out, "byte")
    )
}
