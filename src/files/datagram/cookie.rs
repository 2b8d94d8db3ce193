//! The server's stateless challenge, in the manner of SYN cookies and QUIC's Retry: the
//! COOKIE's token is a keyed hash (BLAKE3, keyed with a secret drawn when the process first
//! needs it) of the source's address and port, the request's nonce and a coarse clock. The
//! receive loop answers a request with it and keeps nothing; a request that comes back with
//! a token that matches proves that its source reads what is sent to it, and only then gets
//! a thread. A token lasts one to two [`SLOT`]s.

use std::sync::LazyLock;
use std::time::{Duration, Instant};

use crate::transport::PeerAddr;

/// The clock's tick: a token made in one slot is taken in it and the next.
const SLOT: Duration = Duration::from_secs(10);

/// The key and the clock's start; `None` when the kernel's random source cannot be read,
/// and then no request is answered.
static KEY: LazyLock<Option<([u8; 32], Instant)>> = LazyLock::new(|| {
    let mut key = [0u8; 32];
    for part in key.chunks_mut(8) {
        part.copy_from_slice(&super::handshake::random().ok()?.to_be_bytes());
    }
    Some((key, Instant::now()))
});

/// The token for `peer` and `nonce` now; `None` without a key.
pub(super) fn token(peer: &PeerAddr, nonce: u64) -> Option<u64> {
    let (key, start) = KEY.as_ref()?;
    Some(mac(key, slot(start), peer, nonce))
}

/// Whether `token` was made for `peer` and `nonce`, in this slot or the one before.
pub(super) fn valid(peer: &PeerAddr, nonce: u64, token: u64) -> bool {
    let Some((key, start)) = KEY.as_ref() else {
        return false;
    };
    let now = slot(start);
    [Some(now), now.checked_sub(1)]
        .into_iter()
        .flatten()
        .any(|at| mac(key, at, peer, nonce) == token)
}

fn slot(start: &Instant) -> u64 {
    start.elapsed().as_secs() / SLOT.as_secs()
}

fn mac(key: &[u8; 32], slot: u64, peer: &PeerAddr, nonce: u64) -> u64 {
    let mut h = blake3::Hasher::new_keyed(key);
    h.update(&slot.to_be_bytes());
    h.update(&nonce.to_be_bytes());
    match peer.0.as_socket() {
        Some(addr) => {
            let ip = match addr.ip() {
                std::net::IpAddr::V4(v4) => v4.to_ipv6_mapped(),
                std::net::IpAddr::V6(v6) => v6,
            };
            h.update(&ip.octets());
            h.update(&addr.port().to_be_bytes());
        }
        // A Unix datagram sender's name, which it cannot forge.
        None => {
            h.update(peer.to_string().as_bytes());
        }
    }
    let mut out = [0u8; 8];
    out.copy_from_slice(&h.finalize().as_bytes()[..8]);
    u64::from_be_bytes(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(addr: &str) -> PeerAddr {
        let addr: std::net::SocketAddr = addr.parse().unwrap();
        PeerAddr(addr.into())
    }

    #[test]
    fn a_token_fits_only_its_address_port_and_nonce() {
        let a = peer("192.0.2.1:4000");
        let t = token(&a, 7).expect("a key");
        assert!(valid(&a, 7, t));
        assert!(!valid(&a, 8, t), "another nonce");
        assert!(!valid(&peer("192.0.2.1:4001"), 7, t), "another port");
        assert!(!valid(&peer("192.0.2.2:4000"), 7, t), "another address");
        assert!(!valid(&a, 7, t ^ 1), "a guess");
    }
}
