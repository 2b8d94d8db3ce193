//! Who gets served: --allow/--deny, and room under --max-conns. Connections (and datagram
//! requests) in service are counted here, from admission until their slot is released.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tracing::warn;

use crate::access::Access;
use crate::endpoint::Proto;
use crate::service::stats::Stats;
use crate::transport::{Conn, PeerAddr};

pub struct Admission {
    proto: Proto,
    access: Arc<Access>,
    /// Clients served at once; more are refused, never queued without bound.
    max_conns: usize,
    active: AtomicUsize,
    stats: &'static Stats,
}

impl Admission {
    pub fn new(proto: Proto, access: Arc<Access>, max_conns: usize, stats: &'static Stats) -> Self {
        Admission {
            proto,
            access,
            max_conns,
            active: AtomicUsize::new(0),
            stats,
        }
    }

    /// Whether a new connection is served: allowed, and there is room. Counts it if so; a
    /// refusal is logged (the caller drops, and so closes, the connection).
    pub fn conn(&self, conn: &Conn) -> bool {
        if !self.access.admits_conn(self.proto, conn) {
            return false;
        }
        if !self.take() {
            warn!(
                "{} {}: refused, {} connections already (--max-conns)",
                self.proto,
                conn.peer(),
                self.max_conns
            );
            return false;
        }
        true
    }

    /// Whether a datagram request is served, as [`Admission::conn`] decides for connections.
    pub fn request(&self, from: &PeerAddr) -> bool {
        if !self.access.admits_datagram(self.proto, from) {
            return false;
        }
        if !self.take() {
            warn!(
                "{from}: refused, {} requests running (--max-conns)",
                self.max_conns
            );
            return false;
        }
        true
    }

    fn take(&self) -> bool {
        if self.active.fetch_add(1, Ordering::Relaxed) >= self.max_conns {
            self.active.fetch_sub(1, Ordering::Relaxed);
            return false;
        }
        self.stats.client();
        true
    }

    /// Frees the slot of a client that was admitted.
    pub fn release(&self) {
        self.active.fetch_sub(1, Ordering::Relaxed);
    }
}
