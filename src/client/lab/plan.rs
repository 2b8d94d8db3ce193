//! What the lab measures and for how long: the protocols of its rows, the boundaries burst,
//! and the lengths of the quick and the full run.

use std::time::Duration;

use crate::endpoint::SockProto;

/// Messages in the boundaries burst, and their size.
pub(super) const BURST: usize = 50;
pub(super) const BURST_SIZE: usize = 16;
/// connect() calls timed for the set-up column.
pub(super) const SETUPS: usize = 50;

/// The rows of a lab on this machine, in order: each protocol, and IPv6 beside IPv4 where
/// the protocol has both. Raw rows come after, when raw sockets may be opened.
pub(super) const CASES: [(SockProto, bool); 7] = [
    (SockProto::Tcp, false),
    (SockProto::Tcp, true),
    (SockProto::Udp, false),
    (SockProto::Udp, true),
    (SockProto::Unix, false),
    (SockProto::UnixDgram, false),
    (SockProto::UnixSeqpacket, false),
];

/// How long each measurement runs, and how often: a row's numbers are the median of its
/// rounds, their range its spread.
pub(super) struct Plan {
    /// Each round's ping-pong and load.
    pub ping: Duration,
    pub load: Duration,
    pub rounds: usize,
    pub clients: usize,
    pub window: usize,
}

impl Plan {
    /// `--quick` or the full run.
    pub(super) fn new(quick: bool) -> Plan {
        if quick {
            Plan {
                ping: Duration::from_millis(50),
                load: Duration::from_millis(80),
                rounds: 3,
                clients: 2,
                window: 8,
            }
        } else {
            // Nine rows as root (two of them raw): about 25 s in all, under the 30 s promised.
            Plan {
                ping: Duration::from_millis(240),
                load: Duration::from_millis(300),
                rounds: 5,
                clients: 4,
                window: 16,
            }
        }
    }
}
