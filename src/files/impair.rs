//! Loss and reordering on purpose (`--drop P`, `--reorder P`), so a lab sees retransmission
//! at work on a perfect loopback. Applied to the datagrams this side sends, and logged as
//! simulated. The chance itself is [`crate::impair::Chaos`], shared with the relay.

use std::io;

use tracing::debug;

use crate::impair::{Chaos, Conditions, Rng};
use crate::transport::{DatagramSocket, PeerAddr};

/// A datagram socket's sending side with simulated loss and reordering.
pub(crate) struct Impaired {
    chaos: Chaos,
    out: Vec<Vec<u8>>,
    pub dropped: u64,
}

impl Impaired {
    pub(crate) fn new(drop: f64, reorder: f64) -> Impaired {
        Impaired::seeded(drop, reorder, Rng::clock_seed())
    }

    /// The same chances from a chosen seed: the same run of drops and holds every time.
    pub(crate) fn seeded(drop: f64, reorder: f64, seed: u64) -> Impaired {
        let cond = Conditions {
            loss: drop,
            reorder,
            ..Conditions::default()
        };
        Impaired {
            chaos: Chaos::new(cond, Rng::seeded(seed)),
            out: Vec::new(),
            dropped: 0,
        }
    }

    /// Sends `packet` to `to`, unless chance drops it or holds it back.
    pub(crate) fn send(
        &mut self,
        sock: &DatagramSocket,
        to: &PeerAddr,
        packet: &[u8],
    ) -> io::Result<()> {
        let before = self.chaos.counts;
        self.chaos.pass(packet.to_vec(), &mut self.out);
        let after = self.chaos.counts;
        if after.dropped > before.dropped {
            debug!(
                "simulated loss: dropped a {}-byte datagram to {to}",
                packet.len()
            );
        } else if after.held > before.held {
            debug!(
                "simulated reordering: holding a {}-byte datagram to {to}",
                packet.len()
            );
        }
        self.dropped = after.dropped;
        for packet in self.out.drain(..) {
            sock.send_to(&packet, to)?;
        }
        Ok(())
    }

    /// Sends the datagram held back, if any (also when nothing else is sent for a while).
    pub(crate) fn release(&mut self, sock: &DatagramSocket, to: &PeerAddr) -> io::Result<()> {
        match self.chaos.release() {
            Some(held) => sock.send_to(&held, to),
            None => Ok(()),
        }
    }
}
