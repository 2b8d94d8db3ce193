//! The server's UDP socket as quinn sees it, with one addition: a datagram that cannot be
//! QUIC (a plain udp client at a quic port, garbage) is said in one line per sender (at most
//! [`Throttle::PER_SECOND`](crate::logging::Throttle) lines a second), since quinn drops it
//! without a word. quinn still gets every datagram and decides for itself.

use std::collections::HashSet;
use std::fmt;
use std::io::{self, IoSliceMut};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use quinn::udp::{RecvMeta, Transmit};
use quinn::{AsyncUdpSocket, Runtime, UdpPoller};
use tracing::warn;

/// Senders of non-QUIC datagrams remembered, so each is said once; past it, no more lines.
const MAX_SENDERS: usize = 1024;
/// The shortest datagram a short-header packet to this server fits in: the first byte, an
/// 8-byte connection ID (quinn's), and the 16 bytes of header protection's sample plus at
/// least a byte of packet number.
const SHORTEST: usize = 1 + 8 + 1 + 16;
/// A client's Initial packet comes in a datagram of at least this many bytes (RFC 9000
/// section 14.1), so that a server never answers more than it was sent before it knows the
/// client's address is real.
const INITIAL_DATAGRAM: usize = 1200;

/// The QUIC versions quinn speaks: 1 (RFC 9000) and the drafts 29 to 34.
fn spoken(version: u32) -> bool {
    version == 1 || (0xff00_001d..=0xff00_0022).contains(&version)
}

/// Why `datagram` cannot be a QUIC packet to this server, if it cannot.
pub(super) fn not_quic(datagram: &[u8]) -> Option<&'static str> {
    let Some(&first) = datagram.first() else {
        return Some("it is empty");
    };
    // The fixed bit (0x40) says nothing: peers may grease it (RFC 9287), quinn does.
    let long = first & 0x80 != 0;
    if !long {
        return (datagram.len() < SHORTEST)
            .then_some("it is shorter than any QUIC packet to this server");
    }
    let Some(&[a, b, c, d]) = datagram.get(1..5) else {
        return Some("it is shorter than any QUIC packet");
    };
    let version = u32::from_be_bytes([a, b, c, d]);
    if version == 0 {
        return Some("a Version Negotiation packet, which only a server sends");
    }
    if !spoken(version) {
        return Some("a QUIC version this server does not speak (it answers Version Negotiation)");
    }
    let v1_initial = version == 1 && first & 0x30 == 0;
    if v1_initial && datagram.len() < INITIAL_DATAGRAM {
        return Some("a QUIC Initial comes in a datagram of at least 1200 bytes");
    }
    None
}

/// quinn's own tokio socket, with the non-QUIC datagrams it receives said.
pub(super) struct Watched {
    inner: Arc<dyn AsyncUdpSocket>,
    said: Mutex<HashSet<SocketAddr>>,
}

impl fmt::Debug for Watched {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.fmt(f)
    }
}

impl Watched {
    /// Wraps `sock` (on the QUIC thread: tokio registers it there).
    pub(super) fn wrap(sock: std::net::UdpSocket) -> io::Result<Arc<dyn AsyncUdpSocket>> {
        let inner = quinn::TokioRuntime.wrap_udp_socket(sock)?;
        Ok(Arc::new(Watched {
            inner,
            said: Mutex::new(HashSet::new()),
        }))
    }

    fn look(&self, datagram: &[u8], from: SocketAddr) {
        let Some(why) = not_quic(datagram) else {
            return;
        };
        // Senders are cheap to make (a port each): past once per sender, at most a few
        // lines a second, so a flood from many ports cannot fill the log.
        static LOG: crate::logging::Throttle = crate::logging::Throttle::new();
        let mut said = self.said.lock().unwrap_or_else(|e| e.into_inner());
        if said.len() < MAX_SENDERS
            && said.insert(from)
            && let Some(more) = LOG.allow()
        {
            warn!(
                "quic {from}: a {}-byte datagram that is not QUIC ({why}), ignored: a plain \
                 udp client at a quic port? (said once per sender){more}",
                datagram.len()
            );
        }
    }
}

impl AsyncUdpSocket for Watched {
    fn create_io_poller(self: Arc<Self>) -> Pin<Box<dyn UdpPoller>> {
        Arc::clone(&self.inner).create_io_poller()
    }

    fn try_send(&self, transmit: &Transmit) -> io::Result<()> {
        self.inner.try_send(transmit)
    }

    fn poll_recv(
        &self,
        cx: &mut Context,
        bufs: &mut [IoSliceMut<'_>],
        meta: &mut [RecvMeta],
    ) -> Poll<io::Result<usize>> {
        let got = self.inner.poll_recv(cx, bufs, meta);
        if let Poll::Ready(Ok(n)) = &got {
            for (buf, meta) in bufs.iter().zip(meta.iter()).take(*n) {
                // With GRO one buffer holds several datagrams, `stride` bytes apart.
                for datagram in buf[..meta.len].chunks(meta.stride.max(1)) {
                    self.look(datagram, meta.addr);
                }
            }
        }
        got
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    fn max_transmit_segments(&self) -> usize {
        self.inner.max_transmit_segments()
    }

    fn max_receive_segments(&self) -> usize {
        self.inner.max_receive_segments()
    }

    fn may_fragment(&self) -> bool {
        self.inner.may_fragment()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_cannot_be_quic_is_told_apart() {
        assert!(not_quic(b"").is_some());
        assert!(not_quic(b"\x00garbage").is_some(), "too short");
        assert!(not_quic(b"hello").is_some(), "a plain client's message");
        let mut other = vec![0xc0, 0xde, 0xad, 0xbe, 0xef];
        other.resize(1200, 0);
        assert!(not_quic(&other).is_some(), "an unknown version");
        let mut initial = vec![0xc0, 0, 0, 0, 1];
        initial.resize(300, 0);
        assert!(not_quic(&initial).is_some(), "an Initial under 1200 bytes");
        initial.resize(1200, 0);
        assert_eq!(not_quic(&initial), None);
        assert_eq!(not_quic(&[0x40; 40]), None, "a short header packet");
        assert_eq!(not_quic(&[0x00; 40]), None, "its fixed bit greased");
    }
}
