//! What the lab measures and for how long: the protocols of its rows, the boundaries burst,
//! and the lengths of the quick and the full run.

use std::time::Duration;

use crate::endpoint::SockProto;

/// Messages in the boundaries burst, and their size.
pub(super) const BURST: usize = 50;
pub(super) const BURST_SIZE: usize = 16;
/// connect() calls timed for the set-up column.
pub(super) const SETUPS: usize = 50;

/// A row of the lab: a protocol, whether over IPv6, and what its server is told besides
/// (`--tls`: the tls row is tcp with TLS 1.3 on it).
pub(super) type Case = (SockProto, bool, &'static [&'static str]);

/// The rows of a lab on this machine, in order: each protocol, and IPv6 beside IPv4 where
/// the protocol has both; TLS over tcp and QUIC, the secure transports, last. Raw rows come
/// after, when raw sockets may be opened.
pub(super) const CASES: [Case; 9] = [
    (SockProto::Tcp, false, &[]),
    (SockProto::Tcp, true, &[]),
    (SockProto::Udp, false, &[]),
    (SockProto::Udp, true, &[]),
    (SockProto::Unix, false, &[]),
    (SockProto::UnixDgram, false, &[]),
    (SockProto::UnixSeqpacket, false, &[]),
    (SockProto::Tcp, false, &["--tls"]),
    (SockProto::Quic, false, &[]),
];

/// A case's name as its row in the table will have it: tls for tcp with `--tls`, a 6 over
/// IPv6.
pub(super) fn case_name((proto, v6, flags): &Case) -> String {
    match (flags.contains(&"--tls"), v6) {
        (true, _) => "tls".into(),
        (false, true) => format!("{proto}6"),
        (false, false) => proto.to_string(),
    }
}

/// Head-of-line blocking across namespaces: this many messages sent at once, each big
/// enough to fill a packet of its own, on one tcp connection and as as many quic streams.
pub(super) const HOL_MESSAGES: usize = 16;
pub(super) const HOL_SIZE: usize = 1000;

/// How long each measurement runs, and how often: a row's numbers are the median of its
/// rounds, their range its spread.
#[derive(Clone, Debug)]
pub(super) struct Plan {
    /// Each round's ping-pong and load.
    pub ping: Duration,
    pub load: Duration,
    pub rounds: usize,
    pub clients: usize,
    pub window: usize,
    /// Bursts of [`HOL_MESSAGES`] for the head-of-line comparison, per protocol.
    pub hol_rounds: usize,
    /// Nothing between the ends drops a packet (namespaces without --loss); loopback is
    /// told by the address.
    pub lossless: bool,
    /// The loss this lab set itself (`--netns --loss`), a fraction: a handshake nobody
    /// answered is likelier its doing than a firewall's.
    pub set_loss: Option<f64>,
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
                hol_rounds: 8,
                lossless: false,
                set_loss: None,
            }
        } else {
            // Eleven rows as root (two of them raw, two secure): about 30 s in all.
            Plan {
                ping: Duration::from_millis(240),
                load: Duration::from_millis(300),
                rounds: 5,
                clients: 4,
                window: 16,
                hol_rounds: 30,
                lossless: false,
                set_loss: None,
            }
        }
    }
}
