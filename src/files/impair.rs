//! Loss and reordering on purpose (`--drop P`, `--reorder P`), so a lab sees retransmission
//! at work on a perfect loopback. Applied to the datagrams this side sends, and logged as
//! simulated.

use std::io;
use std::time::{SystemTime, UNIX_EPOCH};

use tracing::debug;

use crate::transport::{DatagramSocket, PeerAddr};

/// A datagram socket's sending side with simulated loss and reordering.
pub struct Impaired {
    drop: f64,
    reorder: f64,
    rng: u64,
    /// A datagram held back, sent after the next one (reordering).
    held: Option<Vec<u8>>,
    pub dropped: u64,
}

impl Impaired {
    pub fn new(drop: f64, reorder: f64) -> Impaired {
        let seed = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
            ^ u64::from(std::process::id()) << 32;
        Impaired {
            drop,
            reorder,
            rng: seed | 1,
            held: None,
            dropped: 0,
        }
    }

    /// A uniform number in [0, 1) (xorshift64*: plenty for simulated loss).
    fn chance(&mut self) -> f64 {
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        (self.rng.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Sends `packet` to `to`, unless chance drops it or holds it back.
    pub fn send(&mut self, sock: &DatagramSocket, to: &PeerAddr, packet: &[u8]) -> io::Result<()> {
        if self.drop > 0.0 && self.chance() < self.drop {
            self.dropped += 1;
            debug!(
                "simulated loss: dropped a {}-byte datagram to {to}",
                packet.len()
            );
            return Ok(());
        }
        if self.reorder > 0.0 && self.held.is_none() && self.chance() < self.reorder {
            debug!(
                "simulated reordering: holding a {}-byte datagram to {to}",
                packet.len()
            );
            self.held = Some(packet.to_vec());
            return Ok(());
        }
        sock.send_to(packet, to)?;
        self.release(sock, to)
    }

    /// Sends the datagram held back, if any (also when nothing else is sent for a while).
    pub fn release(&mut self, sock: &DatagramSocket, to: &PeerAddr) -> io::Result<()> {
        match self.held.take() {
            Some(held) => sock.send_to(&held, to),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chance_is_roughly_uniform() {
        let mut i = Impaired::new(0.0, 0.0);
        let below = (0..10_000).filter(|_| i.chance() < 0.1).count();
        assert!((800..1200).contains(&below), "{below}");
    }
}
