//! Datagram peers: a datagram server has no connections, so it keeps a bounded table of who
//! sent what, to log one line per peer as a stream server does per connection.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use tracing::debug;

use crate::endpoint::Proto;
use crate::logging::Throttle;
use crate::transport::PeerAddr;

use super::stats::{Stats, Tally, log_client};

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
    peers: HashMap<PeerAddr, Peer>,
}

impl PeerTable {
    pub(crate) fn new(proto: Proto) -> PeerTable {
        PeerTable {
            proto,
            peers: HashMap::new(),
        }
    }

    /// The tally of `peer`, creating it (and counting a new client) on its first datagram.
    pub(crate) fn tally(&mut self, peer: &PeerAddr, stats: &Stats) -> &mut Tally {
        self.tally_at(peer, stats, Instant::now())
    }

    /// [`PeerTable::tally`], the peer seen at `now` (a batch's clock read, not one per
    /// datagram).
    pub(crate) fn tally_at(&mut self, peer: &PeerAddr, stats: &Stats, now: Instant) -> &mut Tally {
        // A full table is looked up twice (to make room for a new peer first); otherwise
        // one hash per datagram (the address copy is a few cache lines, no allocation).
        if self.peers.len() >= MAX_PEERS && !self.peers.contains_key(peer) {
            self.evict_oldest();
        }
        let entry = self.peers.entry(peer.clone()).or_insert_with(|| {
            stats.client();
            debug!("{} {}: first datagram", self.proto, peer.show(self.proto));
            Peer {
                tally: Tally::default(),
                last_seen: now,
            }
        });
        entry.last_seen = now;
        &mut entry.tally
    }

    /// Logs and forgets peers silent for [`PEER_IDLE`].
    pub(crate) fn expire(&mut self) {
        let proto = self.proto;
        self.peers.retain(|addr, peer| {
            let keep = peer.last_seen.elapsed() < PEER_IDLE;
            if !keep {
                log_client(proto, &addr.show(proto), &peer.tally, &"silent for 60s");
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
            let peer = self.peers.remove(&addr).expect("peer just found");
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
        for (addr, peer) in self.peers.drain() {
            log_client(
                self.proto,
                &addr.show(self.proto),
                &peer.tally,
                &"server stopped",
            );
        }
    }
}
