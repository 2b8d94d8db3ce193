//! Where datagram loss comes from, as far as the kernel can tell: bench's own receive
//! buffers (SO_RXQ_OVFL on its sockets), any UDP receive buffer on this machine (RcvbufErrors
//! in /proc/net/snmp and snmp6, read before and after a run), sends the kernel refused
//! (ENOBUFS, SndbufErrors), and what no counter here saw (a relay's simulated loss, a real
//! network). Each cause comes with what to change.

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
    /// The machine's counters' rise during the run, if they could be read.
    pub machine: Option<Counters>,
}

impl Loss {
    /// The loss split by cause, each share at most what is left of the loss: bench's own
    /// buffers, other buffers on this machine (the machine's counter also counts bench's
    /// sockets, and other programs'), refused sends, and what no counter saw.
    fn shares(&self) -> [(u64, Cause); 4] {
        let machine = self.machine.unwrap_or_default();
        let own = self.rxq_overflow.min(self.lost);
        let mut left = self.lost - own;
        let other = machine
            .rcvbuf_errors
            .saturating_sub(self.rxq_overflow)
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

    /// Sentences for the user: each cause seen, its count, and what to change.
    pub(crate) fn explain(&self, rcvbuf: Option<usize>, window: usize) -> Vec<String> {
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
            lines.push(format!(
                "cause: receive-buffer overflow elsewhere on this machine: RcvbufErrors rose by {} \
                 beyond bench's own sockets during the run (/proc/net/snmp, snmp6; other programs \
                 count there too): the server's or a relay's socket could not keep up. Change: \
                 its --rcvbuf, a smaller --window, or pacing with --rate",
                machine.rcvbuf_errors.saturating_sub(self.rxq_overflow)
            ));
        }
        if self.send_errors > 0 {
            lines.push(format!(
                "cause: {} sends failed with ENOBUFS (SndbufErrors rose by {}): the send queue \
                 was full. Change: a larger --sndbuf, a smaller --window, or pacing with --rate",
                self.send_errors, machine.sndbuf_errors
            ));
        }
        if unseen > 0 {
            lines.push(format!(
                "{unseen} lost where no counter on this machine saw them: simulated by a relay \
                 (its summary line counts them), dropped in another network namespace, or in \
                 flight on a real network; nothing here retransmits"
            ));
        }
        lines
    }
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
            machine: Some(Counters {
                rcvbuf_errors: 95,
                sndbuf_errors: 0,
            }),
        };
        assert_eq!(loss.cause(), Some(Cause::ReceiveBuffer));
        let lines = loss.explain(Some(4096), 256);
        assert!(lines[0].contains("--rcvbuf (now 4096"), "{lines:?}");
        assert!(lines[1].contains("rose by 5 beyond"), "{lines:?}");
        let relayed = Loss {
            lost: 40,
            ..Loss::default()
        };
        assert_eq!(relayed.cause(), Some(Cause::Unseen));
    }
}
