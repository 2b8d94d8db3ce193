//! The sentences under the table: why a row differs from the others, and, across namespaces,
//! what loss did to it. Each is computed from what the row is or what it measured.

use crate::endpoint::{Endpoint, Family, Proto};

use super::rows::Row;

/// One sentence on why a row differs from the others.
pub fn why(target: &Endpoint) -> &'static str {
    let v6 = target.addr.family() == Some(Family::Inet6);
    match (target.proto, v6) {
        (Proto::Tcp, false) => {
            "tcp: a handshake before the first byte; the kernel retransmits, \
            orders and paces a byte stream, so small messages can merge into one read"
        }
        (Proto::Tcp, true) => {
            "tcp over IPv6: the same protocol with a 40-byte IP header instead \
            of 20; on loopback the difference is in the noise"
        }
        (Proto::Udp, false) => {
            "udp: no handshake, no retransmission, no ordering: each datagram \
            stands alone, and a full receive buffer drops it"
        }
        (Proto::Udp, true) => {
            "udp over IPv6: as udp over IPv4; the kernel still checksums \
            (a UDP checksum is mandatory over IPv6)"
        }
        (Proto::Unix, _) => {
            "unix: a stream like tcp that skips the IP stack: no handshake on a \
            wire, no checksums, no congestion control"
        }
        (Proto::UnixDgram, _) => {
            "unix-dgram: datagrams that are never lost in flight: a full \
            receiver makes the sender wait (or fail) instead"
        }
        (Proto::UnixSeqpacket, _) => {
            "unix-seqpacket: connected and reliable like a stream, yet \
            every send is one read: message boundaries are kept"
        }
        (Proto::Raw, true) => {
            "raw over IPv6: the reader gets the payload alone (the kernel keeps the IPv6 \
            header; the hop limit comes beside it)"
        }
        (Proto::Raw, false) => {
            "raw: whole IP packets of one protocol and no ports: the kernel hands each to \
            every raw socket for it, so a netecho header tells requests from replies \
            (msgs/s one message at a time: the load loop has no raw client)"
        }
    }
}

/// What loss did to a row: TCP hides it as retransmissions and a tail, UDP shows it.
pub fn consequence(r: &Row) -> String {
    match &r.tcp_info {
        Some(t) => format!(
            "{}: {} retransmits over {} connections (TCP_INFO), smoothed rtt {} us, cwnd {} \
             segments; nothing lost to the program, the loss shows as latency: p50 {} us, p99.9 \
             {} us",
            r.proto,
            t.retransmits,
            t.connections,
            t.rtt_us,
            t.cwnd,
            r.latency_us.p50,
            r.latency_us.p99_9
        ),
        None => format!(
            "{}: {} of {} datagrams lost, and nobody sent them again: the gaps are the program's \
             to handle",
            r.proto, r.lost, r.sent
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_family_of_the_address_picks_the_sentence() {
        let v4 = Endpoint::parse("udp://127.0.0.1:9", None).unwrap();
        let v6 = Endpoint::parse("udp://[::1]:9", None).unwrap();
        assert!(why(&v4).starts_with("udp: no handshake"));
        assert!(why(&v6).starts_with("udp over IPv6"));
        let raw6 = Endpoint::parse("raw6://::1", None).unwrap();
        assert!(why(&raw6).starts_with("raw over IPv6"));
    }
}
