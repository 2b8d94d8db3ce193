//! What a datagram file server lets unproven and proven peers hold. A request costs a
//! thread and a socket until its source proves it exists (the HELLO exchange), so requests
//! awaiting proof are capped per source (an address, a local user) and in all; a proven
//! transfer keeps a window of blocks in memory, so the bytes in flight are capped too: per
//! source, so that a few addresses cannot hold them all, and in all.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{LazyLock, Mutex};

use crate::endpoint::share_key;
use crate::slots::{Counts, Slot};
use crate::transport::PeerAddr;

/// Whose uploads a promise of room is counted with (store::PROMISED): a source elsewhere by
/// its address (an IPv6 address's /64), a peer on this host by the user owning its socket
/// (`local_uid`, asked of the kernel only then: every local user has 127.0.0.1), a Unix
/// socket's client by none (the socket file's permissions say who may connect). `proto`
/// says how much its source proves ([`crate::access::on_this_host`]).
pub(crate) fn owner(
    peer: Option<std::net::SocketAddr>,
    proto: crate::endpoint::Proto,
    local_uid: impl FnOnce() -> Option<u32>,
) -> Option<String> {
    let ip = peer?.ip();
    Some(match crate::access::on_this_host(proto, ip) {
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
    owner(from, crate::endpoint::Proto::Udp, || {
        let local = sock.socket().local_addr().ok()?.as_socket()?;
        crate::access::datagram_user(from?, local)
    })
}

/// Requests from one source awaiting proof at once: an address (an IPv6 address's /64), or
/// the user owning a Unix sender's socket file.
pub(crate) const PENDING_PER_SOURCE: usize = 4;
/// Requests awaiting proof at once from Unix senders whose user is not known here (unnamed,
/// root's abstract names, a name forgotten), together: a quarter of all, so they never hold
/// every place.
pub(crate) const PENDING_NAMELESS: usize = 16;
/// Requests awaiting proof at once, from everyone.
pub(crate) const PENDING_IN_ALL: usize = 64;
/// Bytes of blocks in flight across every transfer of the process.
pub(crate) const IN_FLIGHT_IN_ALL: usize = 64 << 20;
/// Of those, the most one source (an IPv6 address's /64; Unix datagram clients together)
/// holds across its transfers: a few addresses keeping slow transfers barely alive hold
/// no more than their shares, not the whole budget for as long as they keep ACKing.
pub(crate) const IN_FLIGHT_PER_SOURCE: usize = IN_FLIGHT_IN_ALL / 8;
/// What a source holding less may always take, however full the budget (at least one of
/// the largest blocks): a client is never refused because others hold everything. The
/// sources holding at once are bounded by the request threads, so the budget is overrun by
/// at most that many floors.
pub(crate) const IN_FLIGHT_FLOOR: usize = 256 << 10;
const _: () = assert!(IN_FLIGHT_FLOOR > super::datagram::MAX_BLOCK as usize + 64);

/// Who a request awaiting proof is counted against.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Source {
    /// An address ([`share_key`]: an IPv6 address's /64).
    Net(IpAddr),
    /// A Unix sender at a path: the person owning its socket file (checked to be the
    /// sender's own when it came, see `transport::unix::vouched`).
    User(u32),
    /// Unix senders whose owner is not known here, together.
    Nameless,
}

/// Requests awaiting proof: per [`Source`], and the total.
static PENDING: LazyLock<Counts<Source>> = LazyLock::new(Counts::default);

static IN_FLIGHT: LazyLock<Mutex<InFlight>> = LazyLock::new(Mutex::default);

/// A request awaiting proof, counted until dropped.
pub(crate) struct Pending {
    _slot: Slot<Source>,
    /// The request's place among the server's threads for unproven sources, given back
    /// with this count.
    unproven: Option<crate::service::Unproven>,
}

/// Counts a request from `peer` as awaiting proof; `None` if its source, or everyone, is
/// at the cap: such a request gets no answer at all.
pub(crate) fn pending(peer: &PeerAddr) -> Option<Pending> {
    let source = source_of(peer);
    let limit = match source {
        Source::Nameless => PENDING_NAMELESS,
        _ => PENDING_PER_SOURCE,
    };
    Some(Pending {
        _slot: PENDING.take(source, limit, PENDING_IN_ALL)?,
        unproven: None,
    })
}

/// The source `peer` is counted as: its address, or the person owning its socket file
/// (not following a symlink: a link's owner is who made it) or its abstract name.
fn source_of(peer: &PeerAddr) -> Source {
    use std::os::unix::fs::MetadataExt;
    if let Some(addr) = peer.0.as_socket() {
        return Source::Net(share_key(addr.ip()));
    }
    let uid = match (peer.0.as_pathname(), peer.0.as_abstract_namespace()) {
        (Some(path), _) => std::fs::symlink_metadata(path).ok().map(|m| m.uid()),
        (_, Some(name)) => crate::transport::unix::abstract_sender(name),
        _ => None,
    };
    match uid {
        Some(uid) => Source::User(crate::endpoint::person_of(uid)),
        None => Source::Nameless,
    }
}

impl Pending {
    /// Gives `unproven` back when this request proves its source (or ends).
    pub(crate) fn hold(&mut self, unproven: Option<crate::service::Unproven>) {
        self.unproven = unproven;
    }
}

/// Bytes of blocks in flight: per source and the total.
#[derive(Default)]
struct InFlight {
    by_source: HashMap<Option<IpAddr>, usize>,
    total: usize,
}

impl InFlight {
    /// Up to `wanted` bytes for `source`, at least `at_least`: within the source's share,
    /// and within what is left of the budget or the source's floor, whichever is more.
    fn take(&mut self, source: Option<IpAddr>, wanted: usize, at_least: usize) -> Option<usize> {
        let held = self.by_source.get(&source).copied().unwrap_or(0);
        let left = IN_FLIGHT_IN_ALL.saturating_sub(self.total);
        let room = left
            .max(IN_FLIGHT_FLOOR.saturating_sub(held))
            .min(IN_FLIGHT_PER_SOURCE.saturating_sub(held));
        let take = wanted.min(room);
        if take < at_least || take == 0 {
            return None;
        }
        *self.by_source.entry(source).or_default() += take;
        self.total += take;
        Some(take)
    }

    fn give(&mut self, source: Option<IpAddr>, bytes: usize) {
        self.total = self.total.saturating_sub(bytes);
        if let Some(held) = self.by_source.get_mut(&source) {
            *held = held.saturating_sub(bytes);
            if *held == 0 {
                self.by_source.remove(&source);
            }
        }
    }
}

/// Bytes a transfer may keep in flight, given back when dropped.
pub(crate) struct Reservation {
    bytes: usize,
    source: Option<IpAddr>,
    table: &'static Mutex<InFlight>,
}

impl Reservation {
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }
}

/// Up to `wanted` bytes of the process's in-flight budget for a transfer to `peer`, at
/// least `at_least`; `None` when its source holds its share already, or the budget is
/// spent and the source holds its floor.
pub(crate) fn reserve(peer: &PeerAddr, wanted: usize, at_least: usize) -> Option<Reservation> {
    let source = peer.0.as_socket().map(|a| share_key(a.ip()));
    reserve_in(&IN_FLIGHT, source, wanted, at_least)
}

fn reserve_in(
    table: &'static Mutex<InFlight>,
    source: Option<IpAddr>,
    wanted: usize,
    at_least: usize,
) -> Option<Reservation> {
    let mut t = table.lock().unwrap_or_else(|e| e.into_inner());
    let bytes = t.take(source, wanted, at_least)?;
    Some(Reservation {
        bytes,
        source,
        table,
    })
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let mut t = self.table.lock().unwrap_or_else(|e| e.into_inner());
        t.give(self.source, self.bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(ip: &str) -> PeerAddr {
        let addr = std::net::SocketAddr::new(ip.parse().unwrap(), 9);
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

    /// A Unix sender at a path counts as the user owning its socket file, and holds no
    /// more than its share; senders whose user is not known (unnamed here) share a quarter
    /// of all; an IPv6 /64 is one source.
    #[test]
    fn unix_senders_count_by_their_socket_files_owner_and_a_64_as_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("client.sock");
        let _bound = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
        let at_path = PeerAddr(socket2::SockAddr::unix(&path).unwrap());
        let uid = nix::unistd::geteuid().as_raw();
        assert_eq!(source_of(&at_path), Source::User(uid));
        assert_eq!(source_of(&PeerAddr::unnamed()), Source::Nameless);
        assert_eq!(
            source_of(&peer("2001:db8::1")),
            source_of(&peer("2001:db8::2:3"))
        );
        assert_ne!(
            source_of(&peer("2001:db8::1")),
            source_of(&peer("2001:db9::1"))
        );
        // The only test counting nameless senders: the table is the process's.
        let held: Vec<Pending> = (0..PENDING_NAMELESS)
            .map(|_| pending(&PeerAddr::unnamed()).expect("under the cap"))
            .collect();
        assert!(
            pending(&PeerAddr::unnamed()).is_none(),
            "nameless over their quarter"
        );
        let mine: Vec<Pending> = (0..PENDING_PER_SOURCE)
            .map(|_| pending(&at_path).expect("a user has its own share"))
            .collect();
        assert!(pending(&at_path).is_none(), "a user over its share");
        drop((held, mine));
    }

    /// A table of its own, not the process's, which other tests use at the same time.
    fn table() -> &'static Mutex<InFlight> {
        Box::leak(Box::default())
    }

    fn ip(n: u8) -> Option<IpAddr> {
        Some(IpAddr::from([10, 0, 0, n]))
    }

    #[test]
    fn one_source_holds_at_most_its_share_in_flight() {
        let t = table();
        let big = reserve_in(t, ip(1), IN_FLIGHT_IN_ALL, 1).expect("a budget");
        assert_eq!(big.bytes(), IN_FLIGHT_PER_SOURCE);
        assert!(reserve_in(t, ip(1), 1, 1).is_none(), "its share is taken");
        let other = reserve_in(t, ip(2), IN_FLIGHT_IN_ALL, 1).expect("another source");
        assert_eq!(other.bytes(), IN_FLIGHT_PER_SOURCE);
        drop(big);
        let again = reserve_in(t, ip(1), 8 << 20, 1).expect("given back");
        assert_eq!(again.bytes(), 8 << 20);
    }

    #[test]
    fn with_the_budget_spent_a_new_source_still_gets_its_floor() {
        let t = table();
        let sources = IN_FLIGHT_IN_ALL / IN_FLIGHT_PER_SOURCE;
        let held: Vec<Reservation> = (1..=sources as u8)
            .map(|n| reserve_in(t, ip(n), IN_FLIGHT_PER_SOURCE, 1).expect("a share"))
            .collect();
        let fresh = reserve_in(t, ip(200), 4 << 20, 60_004).expect("admitted");
        assert_eq!(fresh.bytes(), IN_FLIGHT_FLOOR);
        assert!(
            reserve_in(t, ip(200), 60_004, 60_004).is_none(),
            "past its floor, over budget"
        );
        drop(held);
        assert!(reserve_in(t, ip(200), 60_004, 60_004).is_some());
    }
}
