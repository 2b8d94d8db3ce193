//! Measured rows fed into the sentences: each sentence follows its row's numbers.

use crate::endpoint::{Family, Proto};
use crate::report::{Cause, Percentiles};

use super::super::rows::{Row, TcpInfoRow};
use super::why;

fn row(proto: &str) -> Row {
    Row {
        proto: proto.into(),
        family: Some(Family::Inet),
        socket_type: "SOCK_DGRAM",
        address: "127.0.0.1:9".into(),
        setup_us: 5,
        latency_us: Percentiles {
            p50: 20,
            p90: 30,
            p99: 40,
            p99_9: 900,
            max: 1000,
            mean: 21.0,
        },
        p50_rounds_us: vec![19, 20, 21],
        messages_per_s: 1000.0,
        mb_per_s: 1.0,
        sent: 1000,
        lost: 0,
        loss_cause: None,
        boundaries_kept: true,
        burst_reads: 50,
        burst_lost: 0,
        ordered: true,
        why: String::new(),
        tcp_info: None,
        latency: None,
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
fn lost_datagrams_are_counted_as_lost_with_their_cause() {
    let lossy = Row {
        lost: 702,
        loss_cause: Some(Cause::ReceiveBuffer),
        burst_reads: 43,
        burst_lost: 7,
        ..row("unix-dgram")
    };
    let s = why(Proto::UnixDgram, false, &lossy);
    assert!(s.contains("702 of 1000 lost (70.2%)"), "{s}");
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
