//! Measured rows fed into the sentences: each sentence follows its row's numbers.

use crate::endpoint::{Family, Proto};
use crate::report::{Cause, Percentiles};

use super::super::rows::{Row, TcpInfoRow};
use super::why;

/// The lab's row (super::super::tests) as these sentences measure it: nothing lost, in
/// order, a steady p50 of 20 us with a long tail.
fn row(proto: &str) -> Row {
    Row {
        latency_us: Percentiles {
            p50: 20.0,
            p90: 30.0,
            p99: 40.0,
            p99_9: 900.0,
            max: 1000.0,
            mean: 21.0,
        },
        p50_rounds_us: vec![19, 20, 21],
        median_round_p50_us: 20.0,
        messages_per_s: 100000.0,
        messages_per_s_rounds: vec![99000.0, 100000.0, 101000.0],
        mb_per_s: 1.0,
        sent: 1000,
        lost: 0,
        loss_cause: None,
        ordered: true,
        ..super::super::tests::row(proto, Family::Inet, "SOCK_DGRAM", "")
    }
}

#[test]
fn udp_that_lost_nothing_and_kept_order_says_so() {
    let s = why(Proto::Udp, false, &row("udp"));
    assert!(s.contains("nothing lost of 1000"), "{s}");
    assert!(
        s.contains("came in order, though nothing promised it"),
        "{s}"
    );
    assert!(s.contains("50 reads: boundaries kept"), "{s}");
    assert!(s.contains("p50 steady over 3 rounds (19-21 us)"), "{s}");
    assert!(!s.contains("lost ("), "{s}");
}

#[test]
fn a_loss_too_small_for_one_decimal_is_not_rounded_to_nothing() {
    let few = Row {
        lost: 2,
        sent: 10_000,
        loss_cause: Some(Cause::ReceiveBuffer),
        ..row("udp")
    };
    let s = why(Proto::Udp, false, &few);
    assert!(s.contains("2 of 10000 lost (0.02%)"), "{s}");
    assert_eq!(few.lost_share(), "0.02%");
}

#[test]
fn lost_datagrams_are_counted_as_lost_with_their_cause() {
    let lossy = Row {
        lost: 702,
        loss_cause: Some(Cause::ReceiveBuffer),
        burst_reads: 43,
        burst_lost: 7,
        ..row("unix-dgram")
    };
    let s = why(Proto::UnixDgram, false, &lossy);
    assert!(s.contains("702 of 1000 lost (70%)"), "{s}");
    assert!(s.contains("receive queue overflowed"), "{s}");
    assert!(
        s.contains("7 of 50 burst datagrams lost, none merged"),
        "{s}"
    );
    assert!(!s.contains("nothing lost"), "{s}");
    assert!(
        !s.contains("nothing is lost in flight") || s.contains("dropped"),
        "{s}"
    );
    let unseen = Row {
        lost: 3,
        loss_cause: Some(Cause::Unseen),
        ..row("udp")
    };
    assert!(why(Proto::Udp, false, &unseen).contains("lost on the way"));
    let unknown = Row {
        lost: 3,
        ..row("udp")
    };
    assert!(why(Proto::Udp, false, &unknown).contains("no cause found"));
}

#[test]
fn a_stream_that_merged_or_reordered_says_so() {
    let merged = Row {
        boundaries_kept: false,
        burst_reads: 2,
        ordered: false,
        ..row("tcp")
    };
    let s = why(Proto::Tcp, false, &merged);
    assert!(
        s.contains("came back in 2 reads: the stream merged them"),
        "{s}"
    );
    assert!(s.contains("out of order"), "{s}");
    let apart = why(Proto::Unix, false, &row("unix"));
    assert!(apart.contains("by timing alone"), "{apart}");
    assert!(!apart.contains("in order, though"), "{apart}");
}

#[test]
fn retransmits_and_unsteady_rounds_are_named() {
    let resent = Row {
        tcp_info: Some(TcpInfoRow {
            connections: 2,
            retransmits: 12,
            rtt_us: 300,
            cwnd: 10,
        }),
        p50_rounds_us: vec![10, 20, 60],
        ..row("tcp")
    };
    let s = why(Proto::Tcp, true, &resent);
    assert!(s.starts_with("tcp over IPv6"), "{s}");
    assert!(s.contains("TCP resent 12 segments"), "{s}");
    assert!(s.contains("p99.9 900 us"), "{s}");
    assert!(s.contains("unsteady over 3 rounds (10-60 us)"), "{s}");
    let clean = why(Proto::Tcp, false, &row("tcp"));
    assert!(!clean.contains("resent"), "{clean}");
    let stalled = Row {
        p50_rounds_us: Vec::new(),
        ..row("tcp")
    };
    let s = why(Proto::Tcp, false, &stalled);
    assert!(s.contains("no round had 20 round trips"), "{s}");
}

fn hol(tcp_mean: u64, quic_mean: u64) -> super::super::rows::HeadOfLine {
    use super::super::rows::{HeadOfLine, Waits};
    let waits = |mean| Waits {
        mean,
        p50: mean / 2,
        p90: mean * 2,
        max: mean * 10,
    };
    HeadOfLine {
        messages: 16,
        size: 1000,
        rounds: 30,
        tcp: waits(tcp_mean),
        quic: waits(quic_mean),
    }
}

#[test]
fn the_head_of_line_sentence_names_the_protocol_whose_messages_waited() {
    let s = super::head_of_line(&hol(30_000, 10_000));
    assert!(s.contains("tcp's messages waited 3.0x as long"), "{s}");
    assert!(s.contains("on average (p90 60000, max 300000)"), "{s}");
    assert!(s.contains("only its own stream"), "{s}");
    let s = super::head_of_line(&hol(10_000, 25_000));
    assert!(s.contains("quic's messages waited 2.5x as long"), "{s}");
    let s = super::head_of_line(&hol(10_000, 11_000));
    assert!(s.contains("about the same wait"), "{s}");
    assert!(!s.contains("x as long"), "{s}");
}

#[test]
fn the_tls_and_quic_rows_say_what_they_are() {
    let mut tls = row("tls");
    tls.boundaries_kept = false;
    tls.burst_reads = 2;
    let s = why(Proto::Tcp, false, &tls);
    assert!(s.starts_with("tcp with TLS 1.3"), "{s}");
    assert!(s.contains("the stream merged them"), "{s}");
    let mut quic = row("quic");
    quic.ordered = false;
    let s = why(Proto::Quic, false, &quic);
    assert!(s.starts_with("QUIC over UDP"), "{s}");
    // netecho's QUIC servers send every new client a Retry before the handshake.
    assert!(s.contains("(a Retry)"), "{s}");
    assert!(s.contains("two round trips of setup"), "{s}");
    assert!(!s.contains("one round trip"), "{s}");
    assert!(s.contains("not the streams among themselves"), "{s}");
    assert!(s.contains("boundaries kept"), "{s}");
}

#[test]
fn resends_are_loss_only_where_a_wire_lies_between_the_ends() {
    let tcp = |address: &str, lossless| Row {
        family: Some(Family::Inet6),
        address: address.into(),
        lossless,
        tcp_info: Some(TcpInfoRow {
            connections: 6,
            retransmits: 1,
            rtt_us: 50,
            cwnd: 10,
        }),
        ..row("tcp")
    };
    let here = tcp("[::1]:4000", true);
    let s = why(Proto::Tcp, true, &here);
    assert!(
        s.contains("TCP resent 1 segment: with nothing here to drop"),
        "{s}"
    );
    assert!(!s.contains("loss"), "{s}");
    let note = super::consequence(&here);
    assert!(note.starts_with("tcp6: 1 retransmit over 6"), "{note}");
    assert!(!note.contains("loss"), "{note}");
    let across = tcp("[fd00:233::1]:4000", false);
    let s = why(Proto::Tcp, true, &across);
    assert!(s.contains("so the loss shows as latency"), "{s}");
    let note = super::consequence(&across);
    assert!(note.starts_with("tcp6: 1 retransmit over"), "{note}");
    let udp6 = Row {
        family: Some(Family::Inet6),
        ..row("udp")
    };
    assert!(super::consequence(&udp6).starts_with("udp6: none of"));
}

/// Under loss each lost request holds its place in flight for the lab's timeout: a udp row
/// of 5% loss moves a few hundred msg/s, and its sentence says the figure is those waits.
/// A raw row of twenty requests is a small sample. A tcp row whose msg/s its own p50
/// contradicts (a busy machine's resend timer) is flagged; a healthy row is neither.
#[test]
fn what_bounds_msg_s_is_said_when_it_is_not_the_protocol() {
    let lossy = Row {
        sent: 1121,
        lost: 51,
        messages_per_s: 399.0,
        loss_cause: Some(Cause::Unseen),
        ..row("udp")
    };
    let s = why(Proto::Udp, false, &lossy);
    assert!(
        s.contains("each lost request held its place for 500 ms (the lab's timeout)"),
        "{s}"
    );
    assert!(s.contains("msg/s measures those waits, not udp"), "{s}");
    assert!(!s.contains("small sample"), "{s}");
    let raw = Row {
        sent: 20,
        lost: 4,
        messages_per_s: 8.0,
        in_flight: 1,
        ..row("raw")
    };
    let s = why(Proto::Raw, false, &raw);
    assert!(s.contains("msg/s measures those waits, not raw"), "{s}");
    assert!(s.contains("20 requests in all: a small sample"), "{s}");
    let stalled = Row {
        median_round_p50_us: 57.0,
        messages_per_s: 170.0,
        ..row("tcp")
    };
    let s = why(Proto::Tcp, false, &stalled);
    assert!(
        s.contains("compare msg/s with care: at p50 57 us one client, one message at a time, moves 17544 a second"),
        "{s}"
    );
    let healthy = why(Proto::Udp, false, &row("udp"));
    assert!(!healthy.contains("msg/s"), "{healthy}");
}

#[test]
fn a_round_trip_of_seconds_far_above_the_p99_9_is_told_as_a_stop() {
    let mut frozen = row("tcp");
    frozen.latency_us.max = 2_001_731.6;
    frozen.latency_us.p99_9 = 66.9;
    let s = why(Proto::Tcp, false, &frozen);
    assert!(
        s.contains(
            "one round trip took 2.0 s: the server or the path stopped answering for that long"
        ),
        "{s}"
    );
    // A server whose every reply takes a second or more has no stall to tell of.
    frozen.latency_us.p99_9 = 1_500_000.0;
    let s = why(Proto::Tcp, false, &frozen);
    assert!(!s.contains("stopped answering"), "{s}");
    // Nor a row whose longest round trip is short.
    assert!(!why(Proto::Tcp, false, &row("tcp")).contains("stopped answering"));
}

#[test]
fn a_load_round_far_below_the_median_round_is_told() {
    let mut stalled = row("tcp");
    stalled.messages_per_s_rounds = vec![8000.0, 100000.0, 101000.0];
    let s = why(Proto::Tcp, false, &stalled);
    assert!(
        s.contains("1 of 3 load rounds moved as little as 8000 msg/s"),
        "{s}"
    );
    assert!(s.contains("stopped answering for part of it"), "{s}");
    assert!(!why(Proto::Tcp, false, &row("tcp")).contains("load rounds moved"));
}

#[test]
fn a_round_left_out_for_too_few_round_trips_is_named_a_stall() {
    let mut two = row("unix-seqpacket");
    two.p50_rounds_us = vec![76, 1018];
    two.rounds_left_out = 1;
    two.median_round_p50_us = 547.0;
    two.messages_per_s = 300.0;
    two.messages_per_s_rounds = vec![290.0, 300.0, 310.0];
    let s = why(Proto::UnixSeqpacket, false, &two);
    assert!(
        s.contains(
            "1 of 3 rounds left out of p50, with fewer than 20 round trips each: they stalled"
        ),
        "{s}"
    );
    // The mean of the two rounds' p50s, not the stalled one, is what msg/s is checked against.
    assert!(s.contains("compare msg/s with care: at p50 547 us"), "{s}");
    assert!(s.contains("p50 unsteady over 2 rounds (76-1018 us)"), "{s}");
    assert!(!why(Proto::Udp, false, &row("udp")).contains("left out"));
}

/// A lab server's rate limit binds raw as it binds udp: raw's loss, which no counter finds a
/// cause for, may be the limit's; a stream row's never is.
#[test]
fn raw_loss_under_a_servers_rate_limit_may_be_the_limits_and_a_streams_is_not() {
    let lossy = |proto: Proto, name: &str, socket_type: &'static str| {
        let mut r = Row {
            socket_type,
            lost: 10,
            messages_per_s: 500.0,
            lossless: false,
            ..row(name)
        };
        r.why = why(proto, false, &r);
        super::under_limit(&mut r, 2000);
        r.why
    };
    let raw = lossy(Proto::Raw, "raw", "SOCK_RAW");
    assert!(
        raw.contains("the lab server's rate limit may have dropped them"),
        "{raw}"
    );
    assert!(!raw.contains("no cause found"), "{raw}");
    let tcp = lossy(Proto::Tcp, "tcp", "SOCK_STREAM");
    assert!(!tcp.contains("the lab server's rate limit"), "{tcp}");
}

/// A udp row during which the lab server was paused: a load round moved nothing, the loss
/// no counter saw and the whole burst lost. The stall explains the loss (never "lost on the
/// way" beside it), and a burst with nothing back says nothing of boundaries.
#[test]
fn a_row_the_server_paused_during_blames_the_pause_and_shows_no_boundaries() {
    let paused = Row {
        lost: 129,
        sent: 649070,
        loss_cause: Some(Cause::Unseen),
        messages_per_s_rounds: vec![0.0, 100000.0, 101000.0],
        burst_reads: 0,
        burst_lost: 50,
        ..row("udp")
    };
    let s = why(Proto::Udp, false, &paused);
    assert!(!s.contains("lost on the way"), "{s}");
    assert!(s.contains("stopped answering for part of it"), "{s}");
    assert!(
        s.contains("none of the 50 burst datagrams came back, so nothing was seen of boundaries"),
        "{s}"
    );
    assert!(!s.contains("none merged"), "{s}");
    assert_eq!(paused.bounds(), None);
    let bounds = super::super::render::narrow_columns()
        .into_iter()
        .find(|c| c.head == "bounds")
        .map(|c| (c.cell)(&paused));
    assert_eq!(bounds.as_deref(), Some("-"));
    // Without the stall, the same loss was lost on the way.
    let lossy = Row {
        messages_per_s_rounds: vec![99000.0, 100000.0, 101000.0],
        ..paused
    };
    assert!(why(Proto::Udp, false, &lossy).contains("lost on the way"));
}

/// Under --loss a ping-pong round whose request was lost waits out the lab's timeout: a
/// round cut to a few round trips is that wait, not a stall, and the loss is the path's.
#[test]
fn rounds_cut_short_by_the_paths_loss_are_not_called_stalls() {
    let lossy = Row {
        lost: 51,
        sent: 515,
        loss_cause: Some(Cause::Unseen),
        p50_rounds_us: vec![99],
        rounds_left_out: 2,
        lossless: false,
        ..row("udp")
    };
    let s = why(Proto::Udp, false, &lossy);
    assert!(s.contains("lost on the way"), "{s}");
    assert!(
        s.contains("a request lost on the way held each for the lab's timeout"),
        "{s}"
    );
    assert!(!s.contains("stalled"), "{s}");
    // Where nothing drops a packet, the same rounds stalled.
    let s = why(
        Proto::Udp,
        false,
        &Row {
            lossless: true,
            ..lossy
        },
    );
    assert!(s.contains("they stalled"), "{s}");
}

#[test]
fn a_steady_rate_over_a_link_far_under_its_round_trips_names_the_links_bytes_a_second() {
    // 1 KiB messages through a 2 Mbit/s link: about 220 a second, round after round.
    let measured = |address: &str, rounds: [f64; 3]| Row {
        address: address.into(),
        socket_type: "SOCK_STREAM",
        median_round_p50_us: 500.0,
        messages_per_s: 220.0,
        messages_per_s_rounds: rounds.to_vec(),
        ..row("tcp")
    };
    let s = why(
        Proto::Tcp,
        false,
        &measured("10.233.0.1:4000", [200.0, 220.0, 230.0]),
    );
    assert!(
        s.contains("msg/s measures the path's bytes a second, not round trips"),
        "{s}"
    );
    assert!(
        s.contains("round moved 225 kB/s of replies (1.8 Mbit/s)"),
        "{s}"
    );
    assert!(s.contains("moves 2000 a second"), "{s}");
    assert!(!s.contains("compare msg/s with care"), "{s}");
    // The same numbers on loopback (no link), with a round that stalled (under a quarter of
    // the median: not a link's steady bytes), or with a round that moved what round trips
    // allow: no link is named.
    for not_a_link in [
        measured("127.0.0.1:4000", [200.0, 220.0, 230.0]),
        measured("10.233.0.1:4000", [50.0, 220.0, 230.0]),
        measured("10.233.0.1:4000", [200.0, 220.0, 1900.0]),
    ] {
        let s = why(Proto::Tcp, false, &not_a_link);
        assert!(s.contains("compare msg/s with care"), "{s}");
        assert!(!s.contains("bytes a second"), "{s}");
    }
}
