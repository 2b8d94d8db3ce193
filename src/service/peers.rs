//! Datagram peers: a datagram server has no connections, so it keeps a bounded table of who
//! sent what, to log one line per peer as a stream server does per connection.

use std::time::{Duration, Instant};

use tracing::debug;

use crate::endpoint::Proto;
use crate::logging::Throttle;
use crate::transport::PeerAddr;

use super::stats::{Stats, Tally, log_client, log_client_as};
use super::table_hash::{TableMap, recent_slot};

/// Peers remembered at once; past this the longest-silent one is forgotten, and logged (at
/// most [`Throttle::PER_SECOND`] lines a second).
pub(crate) const MAX_PEERS: usize = 1024;
/// A peer silent this long is logged and forgotten.
pub(crate) const PEER_IDLE: Duration = Duration::from_secs(60);

struct Peer {
    tally: Tally,
    last_seen: Instant,
}

pub(crate) struct PeerTable {
    proto: Proto,
    peers: TableMap<PeerAddr, Peer>,
    /// The slot of the last peer counted (a hint, see [`recent_slot`]).
    last: usize,
    /// Each peer's line at debug level: a lab server's runs each say their own end, and a
    /// line per flow, a minute late and naming no run, would bury them.
    pub quiet: bool,
}

impl PeerTable {
    pub(crate) fn new(proto: Proto) -> PeerTable {
        PeerTable {
            proto,
            peers: TableMap::default(),
            last: 0,
            quiet: false,
        }
    }

    /// Counts a datagram of `bytes_in` from `peer` and the `bytes_out` of its reply sent,
    /// on the peer's tally and the totals; the peer is created (and counted as a client) on
    /// its first datagram.
    pub(crate) fn message(&mut self, peer: &PeerAddr, stats: &Stats, bytes: (usize, usize)) {
        self.message_at(peer, stats, Instant::now(), bytes);
    }

    /// [`PeerTable::message`], the peer seen at `now` (a batch's clock read, not one per
    /// datagram).
    pub(crate) fn message_at(
        &mut self,
        peer: &PeerAddr,
        stats: &Stats,
        now: Instant,
        (bytes_in, bytes_out): (usize, usize),
    ) {
        // A peer seen before costs one look-up (the one before, one comparison), and its
        // address is not copied.
        if let Some(slot) = recent_slot(&self.peers, peer, &mut self.last) {
            let known = &mut self.peers[slot];
            known.last_seen = now;
            stats.message(&mut known.tally, bytes_in, bytes_out);
            return;
        }
        let tally = self.first_datagram(peer, stats, now);
        stats.message(tally, bytes_in, bytes_out);
    }

    /// A new peer's entry, counted as a client; the longest-silent peer goes first when
    /// the table is full.
    fn first_datagram(&mut self, peer: &PeerAddr, stats: &Stats, now: Instant) -> &mut Tally {
        if self.peers.len() >= MAX_PEERS {
            self.evict_oldest();
        }
        stats.client();
        debug!("{} {}: first datagram", self.proto, peer.show(self.proto));
        let entry = self.peers.entry(peer.clone()).or_insert(Peer {
            tally: Tally::default(),
            last_seen: now,
        });
        &mut entry.tally
    }

    /// Logs and forgets peers silent for [`PEER_IDLE`].
    pub(crate) fn expire(&mut self) {
        let (proto, quiet) = (self.proto, self.quiet);
        self.peers.retain(|addr, peer| {
            let keep = peer.last_seen.elapsed() < PEER_IDLE;
            if !keep {
                log_client_as(
                    quiet,
                    proto,
                    &addr.show(proto),
                    &peer.tally,
                    &"silent for 60s",
                );
            }
            keep
        });
    }

    fn evict_oldest(&mut self) {
        let oldest = self
            .peers
            .iter()
            .min_by_key(|(_, p)| p.last_seen)
            .map(|(a, _)| a.clone());
        // A datagram's source costs nothing to change (or forge), so a flood of new
        // sources would otherwise write a log line per datagram.
        static FORGOTTEN: Throttle = Throttle::new();
        if let Some(addr) = oldest {
            let peer = self.peers.swap_remove(&addr).expect("peer just found");
            if let Some(more) = FORGOTTEN.allow() {
                log_client(
                    self.proto,
                    &addr.show(self.proto),
                    &peer.tally,
                    &format_args!("forgotten: peer table full{more}"),
                );
            }
        }
    }

    /// Logs every remembered peer, when the server stops.
    pub(crate) fn finish(&mut self) {
        for (addr, peer) in self.peers.drain(..) {
            log_client_as(
                self.quiet,
                self.proto,
                &addr.show(self.proto),
                &peer.tally,
                &"server stopped",
            );
        }
    }
}
