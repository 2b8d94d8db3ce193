//! The sentences of the table: why a row differs from the others, and, across namespaces,
//! what loss did to it. A sentence starts with what the protocol is, then says what this
//! row measured: loss and its cause, order, the burst's reads (merged or lost), TCP's
//! retransmissions, how steady the rounds were. Nothing in it can contradict its row.

use std::time::Duration;

use crate::client::bench::{loss, silence};
use crate::endpoint::Proto;
use crate::report::Cause;
use crate::transport::framing::Framing;
use crate::transport::message::Carrier;

use super::measure::{LOAD_SIZE, MIN_ROUND_SAMPLES, TIMEOUT};
use super::plan::BURST;
use super::rows::{HeadOfLine, Row, over_a_link};

/// Round p50s within this share of the median, or within [`STEADY_US`], count as steady:
/// the histograms resolve a microsecond, and a class compares tens of them.
const STEADY: f64 = 0.10;
const STEADY_US: u64 = 2;

/// Why the row of `proto` (over IPv6 when `v6`) differs from the others.
pub(super) fn why(proto: Proto, v6: bool, r: &Row) -> String {
    let nature = match r.proto.as_str() {
        "tls" => TLS,
        _ => nature(proto, v6),
    };
    if r.unanswered() {
        return format!("{nature}; {}", unanswered(r));
    }
    let mut parts = vec![nature.to_string()];
    parts.extend(loss(proto, r));
    parts.extend(rate(r));
    parts.extend(stopped(r));
    parts.extend(order(proto, r));
    parts.push(burst(proto, r));
    parts.extend(steadiness(r));
    parts.extend(stalled_rounds(r));
    parts.join("; ")
}

/// A row that got no reply at all: it observed no time, order or read.
fn unanswered(r: &Row) -> String {
    format!(
        "no reply to any of {} requests: nothing was measured",
        r.sent
    )
}

/// What TLS over tcp is, true whatever was measured.
const TLS: &str = "tcp with TLS 1.3 on it: the tcp handshake, then TLS's, before the first \
    message; records on a stream, so messages merge as on tcp";

/// What the protocol is, true whatever was measured.
fn nature(proto: Proto, v6: bool) -> &'static str {
    match (proto, v6) {
        (Proto::Tcp, false) => "a byte stream after a handshake; the kernel retransmits and orders",
        (Proto::Tcp, true) => "tcp over IPv6: the same stream, a 40-byte IP header instead of 20",
        (Proto::Udp, false) => "datagrams: no handshake, no retransmission, no promised order",
        (Proto::Udp, true) => "udp over IPv6, where the UDP checksum is mandatory",
        (Proto::Unix, _) => "a stream like tcp without the IP stack: no checksums, no congestion",
        (Proto::UnixDgram, _) => {
            "datagrams without the IP stack: nothing is lost in flight, but a reply that \
             finds the client's queue full is dropped"
        }
        (Proto::UnixSeqpacket, _) => "connected and reliable like a stream, one read per send",
        (Proto::Quic, _) => {
            "QUIC over UDP: netecho's server asks each new client to prove its address \
             first (a Retry), then the handshake with TLS 1.3 in it: two round trips of \
             setup, its crypto in user space; a stream per message, each stream ordered on \
             its own"
        }
        (Proto::Raw, false) => {
            "whole IP packets, no ports: a netecho header tells requests from replies; \
             msg/s one message at a time (no raw load loop)"
        }
        (Proto::Raw, true) => {
            "raw over IPv6: the kernel keeps the IP header and hands over the payload; \
             msg/s one message at a time"
        }
    }
}

/// What was lost, and why; TCP's retransmissions, which hide loss as latency.
fn loss(proto: Proto, r: &Row) -> Vec<String> {
    let mut parts = Vec::new();
    if let Some(t) = r.tcp_info.as_ref().filter(|t| t.retransmits > 0) {
        parts.push(match r.lossless {
            true => format!(
                "{}; the waits show in the tail (p99.9 {:.0} us)",
                resent_here(t.retransmits),
                r.latency_us.p99_9
            ),
            false => format!(
                "TCP resent {}, so the loss shows as latency (p99.9 {:.0} us)",
                crate::units::count(t.retransmits, "segment"),
                r.latency_us.p99_9
            ),
        });
    }
    if r.lost == 0 {
        parts.push(format!("nothing lost of {} requests", r.sent));
        return parts;
    }
    let lost = format!("{} of {} lost ({})", r.lost, r.sent, r.lost_share());
    parts.push(if carrier(proto).may_lose() {
        // Unseen loss is the path's only when nothing else explains it: a server or a path
        // that stopped answering for a while leaves requests unanswered too.
        let why = match r.loss_cause {
            Some(Cause::Unseen) if stalls(r) => UNSEEN_IN_A_STALL,
            cause_found => cause(cause_found),
        };
        format!("{lost}, never sent again: {why}")
    } else {
        format!("{lost}: requests unanswered within the timeout")
    });
    parts
}

/// Requests in a row below which its loss share is called a small sample.
const SMALL_SAMPLE: u64 = 100;

/// The reply bytes a second of a row over a link (an IP address that is not loopback; raw
/// rows send one message at a time) whose every load round, the best too, moved fewer
/// messages than round trips allow one client ([`stalled`]), and none stalled (under a
/// quarter of the median round, [`stopped`]): a steady bound, the link's bytes a second.
fn link_bound(r: &Row) -> Option<f64> {
    let (Some(&lo), Some(&hi)) = (
        r.messages_per_s_rounds.first(),
        r.messages_per_s_rounds.last(),
    ) else {
        return None;
    };
    let steady = lo > 0.0 && lo * STALL >= r.messages_per_s;
    let best_too = stalled(1, r.median_round_p50_us, hi).is_some();
    let loaded = r.socket_type != "SOCK_RAW";
    (steady && best_too && loaded && over_a_link(&r.address))
        .then_some(r.messages_per_s * LOAD_SIZE as f64)
}

/// Bytes a second as people read them: "227 kB/s", "1.2 MB/s" (powers of 1000).
fn per_second(bytes: f64) -> String {
    match bytes {
        b if b >= 1e6 => format!("{:.1} MB/s", b / 1e6),
        b if b >= 1e3 => format!("{:.0} kB/s", b / 1e3),
        b => format!("{b:.0} B/s"),
    }
}

/// What bounds the row's msg/s, when its own numbers say it is not the protocol: lost
/// requests, each holding its place in flight for the lab's [`TIMEOUT`] before it counts as
/// lost (udp's msg/s under loss is then the timeout's), or a few long waits its p50
/// contradicts ([`stalled`]); and a loss share of a few dozen requests called a small sample.
fn rate(r: &Row) -> Vec<String> {
    let mut parts = Vec::new();
    // A row keeps no elapsed time: its load sent its requests at its msg/s (at 0 msg/s,
    // for ever: nothing said).
    let elapsed =
        Duration::try_from_secs_f64(r.sent as f64 / r.messages_per_s).unwrap_or(Duration::MAX);
    let measures = format!("msg/s measures those waits, not {}", r.proto);
    let timeout = (TIMEOUT, "the lab's timeout");
    let places = r.in_flight as u64;
    if let Some(held) = loss::held_places(r.lost, places, elapsed, timeout, &measures) {
        parts.push(held);
    } else if let Some(allows) = stalled(1, r.median_round_p50_us, r.messages_per_s) {
        parts.push(match link_bound(r) {
            Some(bytes) => format!(
                "msg/s measures the path's bytes a second, not round trips: the median load \
                 round moved {} of replies ({:.1} Mbit/s) and as many requests the other way, \
                 no round under a quarter of that and the best far under what round trips \
                 allow (at p50 {:.0} us one client, one message at a time, moves \
                 {allows:.0} a second): a link this slow, or a rate limit on it, carries no \
                 more",
                per_second(bytes),
                bytes * 8.0 / 1e6,
                r.median_round_p50_us
            ),
            None => format!(
                "compare msg/s with care: at p50 {:.0} us one client, one message at a time, \
                 moves {allows:.0} a second, more than four times this row's {:.0}: something \
                 other than round trips held the load back (a resend timer's waits, a busy \
                 machine, a rate limit)",
                r.median_round_p50_us, r.messages_per_s
            ),
        });
    }
    if r.lost > 0 && r.sent < SMALL_SAMPLE {
        parts.push(format!(
            "{} requests in all: a small sample, so the share lost is rough",
            r.sent
        ));
    }
    parts
}

/// Where the server or the path stopped answering for a while, which the table's columns
/// leave out: one round trip over a second and far above the p99.9 (bench's measure of a
/// stall), or a load round that moved a fraction of the median round's msg/s.
fn stopped(r: &Row) -> Vec<String> {
    let mut parts = Vec::new();
    let longest = Duration::from_secs_f64(r.latency_us.max.max(0.0) / 1e6);
    if silence::long_enough(longest, r.latency_us.p99_9) {
        parts.push(format!(
            "one round trip took {:.1} s: the server or the path stopped answering for that \
             long (p99.9 {:.0} us leaves it out)",
            longest.as_secs_f64(),
            r.latency_us.p99_9
        ));
    }
    let slow: Vec<f64> = (r.messages_per_s_rounds.iter().copied())
        .filter(|&m| m * STALL < r.messages_per_s)
        .collect();
    if let Some(least) = slow.first() {
        parts.push(format!(
            "{} of {} load rounds moved as little as {least:.0} msg/s, under a quarter of the \
             median round's {:.0}: the server or the path stopped answering for part of it, \
             and msg/s, the median round, leaves it out",
            slow.len(),
            r.messages_per_s_rounds.len(),
            r.messages_per_s
        ));
    }
    parts
}

/// How far below what its p50 allows a run's msg/s may fall before its sentence calls the
/// run stalled.
const STALL: f64 = 4.0;

/// The messages per second `clients` clients, one message in flight each, move when every
/// round trip takes `p50`; `None` when the run moved that many or near: `Some` when most of
/// its time went to a few long waits (a busy machine, a retransmission), so its msg/s
/// tells of those, not of what was measured. A pipelined load moves more than this.
pub(super) fn stalled(clients: usize, p50: f64, per_s: f64) -> Option<f64> {
    let allows = clients as f64 * 1e6 / p50.max(1.0);
    (per_s * STALL < allows).then_some(allows.round())
}

/// TCP's resends where nothing drops a segment (loopback, namespaces without --loss): its
/// timer ran out before the acknowledgment came (the other side waited for a core, or a
/// queue of this machine was full), a wait, not loss in flight.
fn resent_here(retransmits: u64) -> String {
    format!(
        "TCP resent {}: with nothing here to drop one, its timer ran out before the \
         acknowledgment came (a busy core, a full queue)",
        crate::units::count(retransmits, "segment")
    )
}

/// The share of the limit at which a row's msg/s is the limit's: a limited run moves just
/// under it.
const AT_LIMIT: f64 = 0.9;

/// A datagram row (udp, raw: the lab server limits both) measured against a lab server that
/// announced a rate limit of `rate` datagrams a second per address: loss no counter here saw
/// (raw has none to see it: "no cause found") is the limit's when the row
/// moved about as many or more ([`AT_LIMIT`]), and may be at any rate (the limit's bucket
/// cuts a burst, and each request it dropped held its place in flight for the lab's
/// timeout, so a run losing to it moves less than the limit); never only "on the way".
pub(super) fn under_limit(r: &mut Row, rate: u32) {
    // Raw's loss has no counter to find its cause; any other row's "no cause found" is not
    // a datagram's loss.
    let raw = r.socket_type == "SOCK_RAW";
    let Some(unseen) = [cause(Some(Cause::Unseen)), UNSEEN_IN_A_STALL, cause(None)]
        .into_iter()
        .find(|said| r.why.contains(said) && (raw || *said != cause(None)))
    else {
        return;
    };
    let limit = f64::from(rate);
    if rate == 0 {
        return;
    }
    let (over, moved) = (
        r.messages_per_s >= limit * AT_LIMIT,
        r.messages_per_s.round(),
    );
    let said = format!(
        "the lab server's rate limit {}dropped them (it answers at most {rate} datagrams a \
         second per address; this row moved {moved} msg/s){}",
        if over { "" } else { "may have " },
        if over {
            ""
        } else {
            ", or they were lost on the way"
        }
    );
    r.why = r.why.replace(unseen, &said);
}

/// Unseen loss of a row that stalled for a while.
const UNSEEN_IN_A_STALL: &str = "no counter here saw it, and the server or the path stopped \
    answering for a while (below), which leaves requests unanswered as a loss on the way would";

/// Whether the row stalled for a while ([`stopped`], [`stalled_rounds`]). Rounds cut short
/// on a path that loses packets (`--loss`) were held by their lost requests' timeouts.
fn stalls(r: &Row) -> bool {
    !stopped(r).is_empty() || (stalled_rounds(r).is_some() && !held_by_loss(r))
}

/// Whether the row lost requests on a path that drops packets: each held its round for the
/// lab's timeout, so a round with few round trips is that wait, not a stall.
fn held_by_loss(r: &Row) -> bool {
    !r.lossless && r.lost > 0
}

/// Where a datagram row's loss went, as far as the counters tell.
fn cause(cause: Option<Cause>) -> &'static str {
    match cause {
        Some(Cause::ReceiveBuffer) => "the client's receive queue overflowed (SO_RXQ_OVFL)",
        Some(Cause::OtherReceiveBuffer) => "a receive queue on this machine overflowed",
        Some(Cause::SendBuffer) => "the kernel refused sends (ENOBUFS)",
        Some(Cause::Unseen) => "no counter here saw it, so it was lost on the way",
        None => "no cause found",
    }
}

/// Order: only worth a word where it is not promised, or where it failed.
fn order(proto: Proto, r: &Row) -> Option<String> {
    if proto == Proto::Quic && !r.ordered {
        return Some(
            "replies came back in another order than sent: QUIC orders each stream, not the \
             streams among themselves"
                .into(),
        );
    }
    match (r.ordered, !carrier(proto).reliable()) {
        (true, true) => Some("replies came in order, though nothing promised it".into()),
        (true, false) => None,
        (false, true) => Some("replies came out of order, as datagrams may".into()),
        (false, false) => Some("replies came out of order or changed".into()),
    }
}

/// The burst of small sends: one read each, merged into fewer reads, or lost.
fn burst(proto: Proto, r: &Row) -> String {
    // Nothing back says nothing of boundaries; the table shows "-".
    if r.bounds().is_none() {
        return format!(
            "none of the {BURST} burst datagrams came back, so nothing was seen of boundaries"
        );
    }
    if !r.boundaries_kept {
        let reads = crate::units::count(r.burst_reads, "read");
        return format!("{BURST} small sends came back in {reads}: the stream merged them");
    }
    if r.burst_lost > 0 {
        return format!(
            "{} of {BURST} burst datagrams lost, none merged: each read held one message",
            r.burst_lost
        );
    }
    if carrier(proto).keeps_boundaries() {
        format!("{BURST} small sends came back as {BURST} reads: boundaries kept")
    } else {
        format!("{BURST} small sends came back in {BURST} reads, by timing alone")
    }
}

/// What a message is on `proto`'s socket, unframed as the lab's rows measure it.
fn carrier(proto: Proto) -> Carrier {
    Carrier::of(proto.kind(), Framing::None)
}

/// How far apart the rounds' p50s were.
fn steadiness(r: &Row) -> Option<String> {
    let (Some(&lo), Some(&hi)) = (r.p50_rounds_us.first(), r.p50_rounds_us.last()) else {
        return Some(format!(
            "no round had {MIN_ROUND_SAMPLES} round trips, so p50 is of all of them, \
             without a spread"
        ));
    };
    let rounds = r.p50_rounds_us.len();
    if rounds < 2 {
        return None;
    }
    let spread = hi - lo;
    if spread == 0 {
        return Some(format!("p50 {lo} us in each of {rounds} rounds"));
    }
    Some(
        if spread <= STEADY_US || spread as f64 <= STEADY * r.median_round_p50_us {
            format!("p50 steady over {rounds} rounds ({lo}-{hi} us)")
        } else {
            format!("p50 unsteady over {rounds} rounds ({lo}-{hi} us): compare with care")
        },
    )
}

/// Rounds left out of the p50 for too few round trips, named as what they were: stalls.
fn stalled_rounds(r: &Row) -> Option<String> {
    // Without a round kept, steadiness already says that none had enough.
    if r.rounds_left_out == 0 || r.p50_rounds_us.is_empty() {
        return None;
    }
    let rounds = r.rounds_left_out + r.p50_rounds_us.len();
    let why = match held_by_loss(r) {
        true => "a request lost on the way held each for the lab's timeout",
        false => "they stalled (the server or the path stopped answering for most of the round)",
    };
    Some(format!(
        "{} of {rounds} rounds left out of p50, with fewer than {MIN_ROUND_SAMPLES} round trips \
         each: {why}; their round trips still count in p99 and p99.9",
        r.rounds_left_out
    ))
}

/// The note of rows the lab did not measure (`names`, as the table would name them), and
/// why: under the table, as a measured row's sentence is, so that a report saved from
/// stdout names every row it could have had.
pub(super) fn left_out(names: &str, why: &str) -> String {
    format!("{names}: not measured: {why}")
}

/// What loss did to a row, named as its table row is: TCP hides it as retransmissions and a
/// tail, UDP shows it; on loopback, where nothing is lost, what the resends were.
pub(super) fn consequence(r: &Row) -> String {
    let name = r.name();
    // Whole microseconds, as the table shows them.
    let (p50, p99_9) = (r.median_round_p50_us.round(), r.latency_us.p99_9.round());
    match &r.tcp_info {
        Some(t) if t.retransmits == 0 => format!(
            "{name}: no retransmits over {} connections (TCP_INFO), smoothed rtt {} us, cwnd {} \
             segments; nothing was lost: p50 {p50} us, p99.9 {p99_9} us",
            t.connections, t.rtt_us, t.cwnd
        ),
        Some(t) => format!(
            "{name}: {} {} over {} connections (TCP_INFO){}; smoothed rtt {} us, cwnd {} \
             segments; nothing lost to the program{}: p50 {p50} us, p99.9 {p99_9} us",
            t.retransmits,
            if t.retransmits == 1 {
                "retransmit"
            } else {
                "retransmits"
            },
            t.connections,
            match r.lossless {
                true =>
                    ", with nothing here to drop a segment: TCP's timer ran out before \
                         the acknowledgment came (a busy core, a full queue)",
                false => "",
            },
            t.rtt_us,
            t.cwnd,
            match r.lossless {
                true => ", the waits show in the tail",
                false => ", the loss shows as latency",
            },
        ),
        None if r.proto == "quic" => format!(
            "{name}: {} of {} requests unanswered; QUIC resends what is lost itself, so the \
             loss shows as latency: p50 {p50} us, p99.9 {p99_9} us",
            r.lost, r.sent
        ),
        // The row's sentence: the lab against a lab server says why there.
        None if r.unanswered() => format!("{name}: {}", r.why),
        None if r.lost == 0 => format!(
            "{name}: none of {} datagrams lost; one lost would stay lost, nobody sends it again",
            r.sent
        ),
        None => format!(
            "{name}: {} of {} datagrams lost, and nobody sent them again: the gaps are the \
             program's to handle",
            r.lost, r.sent
        ),
    }
}

/// Head-of-line blocking as the waits measured it: which protocol's messages waited longer,
/// and by how much.
pub(super) fn head_of_line(h: &HeadOfLine) -> String {
    let (tcp, quic) = (&h.tcp, &h.quic);
    let measured = format!(
        "head-of-line blocking, {} messages of {} bytes at once, {} times: on one tcp \
         connection a message waited {} us on average (p90 {}, max {}), as {} quic streams {} \
         us (p90 {}, max {})",
        h.messages,
        h.size,
        h.rounds,
        tcp.mean,
        tcp.p90,
        tcp.max,
        h.messages,
        quic.mean,
        quic.p90,
        quic.max
    );
    let ratio = |a: u64, b: u64| a as f64 / b.max(1) as f64;
    let verdict = if ratio(tcp.mean, quic.mean) >= HOL_DIFFERENT {
        format!(
            "tcp's messages waited {:.1}x as long: a lost tcp segment holds up every message \
             behind it, a lost quic packet only its own stream",
            ratio(tcp.mean, quic.mean)
        )
    } else if ratio(quic.mean, tcp.mean) >= HOL_DIFFERENT {
        format!(
            "quic's messages waited {:.1}x as long: its streams did not spare them here (its \
             recovery, or its user-space stack, cost more than tcp's blocking)",
            ratio(quic.mean, tcp.mean)
        )
    } else {
        "about the same wait: the losses of these bursts delayed tcp and quic alike".to_string()
    };
    format!("{measured}: {verdict}")
}

/// How much longer one protocol's mean wait must be for the sentence to call it longer.
const HOL_DIFFERENT: f64 = 1.2;

#[cfg(test)]
#[path = "why_tests.rs"]
mod tests;
