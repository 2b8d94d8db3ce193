//! Where datagram loss comes from, as far as the kernel can tell: bench's own receive
//! buffers (SO_RXQ_OVFL on its sockets), any UDP receive buffer on this machine (RcvbufErrors
//! in /proc/net/snmp and snmp6, read before and after a run), sends the kernel refused
//! (ENOBUFS, SndbufErrors), and what no counter here saw (a relay's simulated loss, a real
//! network). Each cause comes with what to change. Also what else bounds a run's numbers:
//! lost requests holding window places for --timeout, and TCP's resends.

use std::time::Duration;

use crate::report::Cause;

/// UDP counters of the whole machine (this network namespace), IPv4 and IPv6 together.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Counters {
    pub rcvbuf_errors: u64,
    pub sndbuf_errors: u64,
}

impl Counters {
    /// The counters now; `None` when /proc/net/snmp cannot be read.
    pub(crate) fn read() -> Option<Counters> {
        let snmp = std::fs::read_to_string("/proc/net/snmp").ok()?;
        let snmp6 = std::fs::read_to_string("/proc/net/snmp6").unwrap_or_default();
        Some(Counters::parse(&snmp, &snmp6))
    }

    /// /proc/net/snmp has a header line and a value line per protocol ("Udp: InDatagrams ..."
    /// then "Udp: 12 ..."); snmp6 has a "Udp6RcvbufErrors  3" line per counter.
    fn parse(snmp: &str, snmp6: &str) -> Counters {
        let udp: Vec<&str> = snmp.lines().filter(|l| l.starts_with("Udp: ")).collect();
        let v4 = |name: &str| -> u64 {
            let [head, values] = udp[..] else { return 0 };
            let at = head.split_whitespace().position(|h| h == name);
            at.and_then(|i| values.split_whitespace().nth(i))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        let v6 = |name: &str| -> u64 {
            snmp6
                .lines()
                .find_map(|l| {
                    let mut parts = l.split_whitespace();
                    (parts.next() == Some(name)).then(|| parts.next()?.parse().ok())?
                })
                .unwrap_or(0)
        };
        Counters {
            rcvbuf_errors: v4("RcvbufErrors") + v6("Udp6RcvbufErrors"),
            sndbuf_errors: v4("SndbufErrors") + v6("Udp6SndbufErrors"),
        }
    }

    /// What rose between `self` (before) and `after`.
    pub(crate) fn delta(&self, after: &Counters) -> Counters {
        Counters {
            rcvbuf_errors: after.rcvbuf_errors.saturating_sub(self.rcvbuf_errors),
            sndbuf_errors: after.sndbuf_errors.saturating_sub(self.sndbuf_errors),
        }
    }
}

/// What a datagram run lost and what the kernel saw of it.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Loss {
    pub lost: u64,
    /// Drops at bench's sockets (SO_RXQ_OVFL).
    pub rxq_overflow: u64,
    /// Sends refused with ENOBUFS.
    pub send_errors: u64,
    /// The most datagram requests one send carried (UDP GSO; 1 without).
    pub segments: u64,
    /// The machine's counters' rise during the run, if they could be read.
    pub machine: Option<Counters>,
}

impl Loss {
    /// RcvbufErrors beyond bench's own sockets' drops: packets, not datagrams (the
    /// machine's counter also counts bench's sockets, and other programs').
    fn other_packets(&self) -> u64 {
        let machine = self.machine.unwrap_or_default();
        machine.rcvbuf_errors.saturating_sub(self.rxq_overflow)
    }

    /// The loss split by cause, each share at most what is left of the loss: bench's own
    /// buffers, other buffers on this machine, refused sends, and what no counter saw. A
    /// receive queue drops a GSO packet of bench's whole and counts it once, so each other
    /// RcvbufError may stand for as many datagrams as one of bench's sends carried.
    fn shares(&self) -> [(u64, Cause); 4] {
        let own = self.rxq_overflow.min(self.lost);
        let mut left = self.lost - own;
        let other = self
            .other_packets()
            .saturating_mul(self.segments.max(1))
            .min(left);
        left -= other;
        let send = self.send_errors.min(left);
        left -= send;
        [
            (own, Cause::ReceiveBuffer),
            (other, Cause::OtherReceiveBuffer),
            (send, Cause::SendBuffer),
            (left, Cause::Unseen),
        ]
    }

    /// The cause that explains most of the loss.
    pub(crate) fn cause(&self) -> Option<Cause> {
        self.shares()
            .into_iter()
            .filter(|(n, _)| *n > 0)
            .max_by_key(|(n, _)| *n)
            .map(|(_, cause)| cause)
    }

    /// Sentences for the user: each cause seen, its count, and what to change. `loopback`:
    /// bench and the server are both on this host's loopback.
    pub(crate) fn explain(
        &self,
        rcvbuf: Option<usize>,
        window: usize,
        loopback: bool,
    ) -> Vec<String> {
        let mut lines = Vec::new();
        if self.lost == 0 {
            return lines;
        }
        let now = rcvbuf.map_or("the default, net.core.rmem_default".into(), |b| {
            b.to_string()
        });
        let machine = self.machine.unwrap_or_default();
        if self.rxq_overflow > 0 {
            lines.push(format!(
                "cause: receive-buffer overflow: the kernel dropped {} replies at bench's own full \
                 receive buffers (SO_RXQ_OVFL; RcvbufErrors rose by {} on this machine). Change: \
                 a larger --rcvbuf (now {now}; Linux caps it at net.core.rmem_max), fewer \
                 requests in flight (--window {window} now), or pacing with --rate",
                self.rxq_overflow, machine.rcvbuf_errors
            ));
        }
        let [_, (other, _), _, (unseen, _)] = self.shares();
        if other > 0 {
            lines.push(self.elsewhere());
        }
        if self.send_errors > 0 {
            lines.push(format!(
                "cause: {} sends failed with ENOBUFS (SndbufErrors rose by {}): the send queue \
                 was full. Change: a larger --sndbuf, a smaller --window, or pacing with --rate",
                self.send_errors, machine.sndbuf_errors
            ));
        }
        if unseen > 0 {
            lines.push(unseen_here(unseen, loopback));
        }
        lines
    }

    /// The sentence for RcvbufErrors beyond bench's own sockets, in datagrams where bench
    /// sent several in one packet.
    fn elsewhere(&self) -> String {
        let packets = self.other_packets();
        let datagrams = match self.segments {
            0 | 1 => String::new(),
            n => format!(
                "; it counts packets, and bench sent up to {n} requests in one (UDP GSO), \
                 which a full queue drops whole: up to {} datagrams",
                packets.saturating_mul(n)
            ),
        };
        format!(
            "cause: receive-buffer overflow elsewhere on this machine: RcvbufErrors rose by \
             {packets} beyond bench's own sockets during the run (/proc/net/snmp, snmp6; other \
             programs count there too){datagrams}: the server's or a relay's socket could not \
             keep up. Change: its --rcvbuf, a smaller --window, or pacing with --rate"
        )
    }
}

/// The sentence for `unseen` datagrams no counter saw: on loopback, nothing is in flight
/// on a network or in another namespace; a firewall rule drops unseen anywhere.
fn unseen_here(unseen: u64, loopback: bool) -> String {
    const FIREWALL: &str = "a firewall rule on this host (`nft list ruleset`, `iptables -L`)";
    if loopback {
        format!(
            "{unseen} lost on this host's loopback where no counter saw them: dropped by \
             {FIREWALL}, or by a relay between bench and the server if one runs (its summary \
             line counts them); nothing here retransmits"
        )
    } else {
        format!(
            "{unseen} lost where no counter on this machine saw them: dropped by {FIREWALL}, \
             simulated by a relay (its summary line counts them), dropped in another network \
             namespace, or in flight on a real network; nothing here retransmits"
        )
    }
}

/// A share of the load's time lost requests may hold their places in flight before a
/// sentence says that the run's rate measures those waits (bench's and the lab's).
const WAITED: f64 = 0.25;

/// The sentence for a run whose `lost` requests each held one of its `places` in flight
/// (clients x window) for `timeout` (which the reader knows as `called`) before counting as
/// lost, when that is a sizeable share of the run's `elapsed` time: the places were not in
/// use for that share, and `measures` (what the rate measures, "those waits, not ...")
/// ends it.
pub(crate) fn held_places(
    lost: u64,
    places: u64,
    elapsed: Duration,
    (timeout, called): (Duration, &str),
    measures: &str,
) -> Option<String> {
    let held = lost as f64 * timeout.as_secs_f64();
    let share = held / (places.max(1) as f64 * elapsed.as_secs_f64().max(1e-9));
    (lost > 0 && share >= WAITED).then(|| {
        format!(
            "each lost request held its place for {} ms ({called}) before it counted as \
             lost, about {:.0}% of the load's time ({} in flight): {measures}",
            timeout.as_millis(),
            100.0 * share.min(1.0),
            crate::units::count(places, "place")
        )
    })
}

/// The sentence for TCP's resends over a run's connections (tcpi_total_retrans), which
/// lose nothing a program sees: each waits for a resend timer, so loss shows as latency.
pub(crate) fn resent(retransmits: u64, p99_9_us: f64) -> Option<String> {
    (retransmits > 0).then(|| {
        format!(
            "TCP resent {} (TCP_INFO), so the loss shows as latency (p99.9 {p99_9_us:.0} us) \
             and fewer req/s, not as lost requests",
            crate::units::count(retransmits, "segment")
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_come_from_both_files() {
        let snmp = "Ip: Forwarding\nIp: 1\nUdp: InDatagrams NoPorts InErrors OutDatagrams \
            RcvbufErrors SndbufErrors\nUdp: 10 0 5 10 5 2\n";
        let snmp6 = "Udp6InDatagrams  4\nUdp6RcvbufErrors   3\nUdp6SndbufErrors 1\n";
        assert_eq!(
            Counters::parse(snmp, snmp6),
            Counters {
                rcvbuf_errors: 8,
                sndbuf_errors: 3
            }
        );
    }

    #[test]
    fn the_largest_share_is_the_cause() {
        let loss = Loss {
            lost: 100,
            rxq_overflow: 90,
            send_errors: 0,
            segments: 1,
            machine: Some(Counters {
                rcvbuf_errors: 95,
                sndbuf_errors: 0,
            }),
        };
        assert_eq!(loss.cause(), Some(Cause::ReceiveBuffer));
        let lines = loss.explain(Some(4096), 256, false);
        assert!(lines[0].contains("--rcvbuf (now 4096"), "{lines:?}");
        assert!(lines[1].contains("rose by 5 beyond"), "{lines:?}");
        let relayed = Loss {
            lost: 40,
            ..Loss::default()
        };
        assert_eq!(relayed.cause(), Some(Cause::Unseen));
    }

    /// A server's full receive queue drops a GSO packet of bench's whole and counts one
    /// RcvbufError for its 7 datagrams: that is the server's queue, not loss unseen.
    #[test]
    fn a_gso_packet_dropped_whole_counts_its_datagrams() {
        let loss = Loss {
            lost: 231,
            rxq_overflow: 24,
            send_errors: 0,
            segments: 7,
            machine: Some(Counters {
                rcvbuf_errors: 57,
                sndbuf_errors: 0,
            }),
        };
        assert_eq!(loss.cause(), Some(Cause::OtherReceiveBuffer));
        let lines = loss.explain(Some(16384), 256, true).join("\n");
        assert!(lines.contains("up to 7 requests in one"), "{lines}");
        assert!(lines.contains("up to 231 datagrams"), "{lines}");
        assert!(!lines.contains("real network"), "{lines}");
    }

    /// Loss no counter saw names a firewall rule here, and on loopback neither another
    /// namespace nor a real network.
    #[test]
    fn unseen_loss_names_a_firewall_and_on_loopback_no_network() {
        let loss = Loss {
            lost: 6,
            segments: 1,
            ..Loss::default()
        };
        let far = loss.explain(None, 1, false).join("\n");
        assert!(far.contains("nft list ruleset"), "{far}");
        assert!(far.contains("real network"), "{far}");
        let here = loss.explain(None, 1, true).join("\n");
        assert!(here.contains("nft list ruleset"), "{here}");
        assert!(here.contains("loopback"), "{here}");
        assert!(!here.contains("real network"), "{here}");
        assert!(!here.contains("namespace"), "{here}");
    }

    /// A window whose places lost requests held for most of the run is said; a few losses
    /// in a long run are not.
    #[test]
    fn lost_requests_holding_the_window_are_said() {
        let second = Duration::from_secs(1);
        // 510 lost, 1 s each, in 2 clients x 256 over 2 s: half the places' time.
        let timeout = (second, "--timeout");
        let said = |lost, places, elapsed| held_places(lost, places, elapsed, timeout, "waits");
        let line = said(510, 512, 2 * second).expect("said");
        assert!(line.contains("about 50% of the load's time"), "{line}");
        assert!(line.contains("1000 ms (--timeout)"), "{line}");
        assert!(line.contains("(512 places in flight): waits"), "{line}");
        assert_eq!(said(3, 512, 10 * second), None);
        assert_eq!(said(0, 1, second), None);
    }

    #[test]
    fn tcp_resends_are_said_as_latency() {
        let line = resent(12, 211550.2).expect("said");
        assert!(line.contains("TCP resent 12 segments"), "{line}");
        assert!(line.contains("p99.9 211550 us"), "{line}");
        assert_eq!(resent(0, 10.0), None);
    }
}
