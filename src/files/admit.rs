//! What a datagram file server lets unproven and proven peers hold. A request costs a
//! thread and a socket until its source proves it exists (the HELLO exchange), so requests
//! awaiting proof are capped per source IP and in all; a proven transfer keeps a window of
//! blocks in memory, so the bytes in flight across every transfer are capped too.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{LazyLock, Mutex};

use crate::transport::PeerAddr;

/// Whose uploads a promise of room is counted with (store::PROMISED): a source elsewhere by
/// its address (an IPv6 address's /64), a peer on this host by the user owning its socket
/// (`local_uid`, asked of the kernel only then: every local user has 127.0.0.1), a Unix
/// socket's client by none (the socket file's permissions say who may connect).
pub(crate) fn owner(
    peer: Option<std::net::SocketAddr>,
    local_uid: impl FnOnce() -> Option<u32>,
) -> Option<String> {
    let ip = peer?.ip();
    Some(match crate::service::guard::is_this_host(ip) {
        true => match local_uid() {
            Some(uid) => format!("uid {uid} on this host"),
            None => "this host, user unknown".to_string(),
        },
        false => crate::endpoint::share_name(ip),
    })
}

/// The [`owner`] of a datagram transfer's peer, talking to the server's `sock`.
pub(crate) fn datagram_owner(
    sock: &crate::transport::DatagramSocket,
    peer: &PeerAddr,
) -> Option<String> {
    let from = peer.0.as_socket();
    owner(from, || {
        let local = sock.socket().local_addr().ok()?.as_socket()?;
        crate::access::datagram_user(from?, local)
    })
}

/// Requests from one IP address awaiting proof at once.
pub(crate) const PENDING_PER_SOURCE: usize = 4;
/// Requests awaiting proof at once, from everyone.
pub(crate) const PENDING_IN_ALL: usize = 64;
/// Bytes of blocks in flight across every transfer of the process.
pub(crate) const IN_FLIGHT_IN_ALL: usize = 64 << 20;

/// Requests awaiting proof: per source IP (Unix datagram senders, which cannot forge their
/// address, count in all only) and the total.
struct PendingTable {
    by_source: HashMap<IpAddr, usize>,
    total: usize,
}

static PENDING: LazyLock<Mutex<PendingTable>> = LazyLock::new(|| {
    Mutex::new(PendingTable {
        by_source: HashMap::new(),
        total: 0,
    })
});

static IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);

/// A request awaiting proof, counted until dropped.
pub(crate) struct Pending {
    source: Option<IpAddr>,
    /// The request's place among the server's threads for unproven sources, given back
    /// with this count.
    unproven: Option<crate::service::Unproven>,
}

/// Counts a request from `peer` as awaiting proof; `None` if its source, or everyone, is
/// at the cap: such a request gets no answer at all.
pub(crate) fn pending(peer: &PeerAddr) -> Option<Pending> {
    let source = peer.0.as_socket().map(|a| a.ip());
    let mut table = PENDING.lock().unwrap_or_else(|e| e.into_inner());
    if table.total >= PENDING_IN_ALL {
        return None;
    }
    if let Some(ip) = source {
        let count = table.by_source.entry(ip).or_default();
        if *count >= PENDING_PER_SOURCE {
            return None;
        }
        *count += 1;
    }
    table.total += 1;
    Some(Pending {
        source,
        unproven: None,
    })
}

impl Pending {
    /// Gives `unproven` back when this request proves its source (or ends).
    pub(crate) fn hold(&mut self, unproven: Option<crate::service::Unproven>) {
        self.unproven = unproven;
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        let mut table = PENDING.lock().unwrap_or_else(|e| e.into_inner());
        table.total = table.total.saturating_sub(1);
        if let Some(ip) = self.source
            && let Some(count) = table.by_source.get_mut(&ip)
        {
            *count -= 1;
            if *count == 0 {
                table.by_source.remove(&ip);
            }
        }
    }
}

/// Bytes a transfer may keep in flight, given back when dropped.
#[derive(Debug)]
pub(crate) struct Reservation(usize);

impl Reservation {
    pub(crate) fn bytes(&self) -> usize {
        self.0
    }
}

/// Up to `wanted` bytes of the process's in-flight budget, at least `at_least`; `None` when
/// not even that much is left.
pub(crate) fn reserve(wanted: usize, at_least: usize) -> Option<Reservation> {
    let mut taken = IN_FLIGHT.load(Ordering::Relaxed);
    loop {
        let take = wanted.min(IN_FLIGHT_IN_ALL.saturating_sub(taken));
        if take < at_least || take == 0 {
            return None;
        }
        match IN_FLIGHT.compare_exchange_weak(
            taken,
            taken + take,
            Ordering::AcqRel,
            Ordering::Relaxed,
        ) {
            Ok(_) => return Some(Reservation(take)),
            Err(now) => taken = now,
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        IN_FLIGHT.fetch_sub(self.0, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(ip: &str) -> PeerAddr {
        let addr: std::net::SocketAddr = format!("{ip}:9").parse().unwrap();
        PeerAddr(addr.into())
    }

    #[test]
    fn one_source_holds_at_most_its_share_of_pending_requests() {
        // An address no other test uses: the table is the process's.
        let held: Vec<Pending> = (0..PENDING_PER_SOURCE)
            .map(|_| pending(&peer("127.9.9.9")).expect("under the cap"))
            .collect();
        assert!(pending(&peer("127.9.9.9")).is_none(), "over the cap");
        let other = pending(&peer("127.9.9.8")).expect("another source has its own share");
        drop(other);
        drop(held);
        assert!(pending(&peer("127.9.9.9")).is_some(), "freed when dropped");
    }

    #[test]
    fn the_bytes_in_flight_are_capped_in_all() {
        let big = reserve(IN_FLIGHT_IN_ALL, 1).expect("a budget");
        assert!(reserve(1, 1).is_none(), "the whole budget is taken");
        drop(big);
        let part = reserve(8 << 20, 1).expect("given back");
        assert_eq!(part.bytes(), 8 << 20);
    }
}
