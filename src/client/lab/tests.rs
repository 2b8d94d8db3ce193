//! The lab's output pinned against an exact expected text: the table with its sentences and
//! the boundaries table, the table across namespaces, and the CSV.

use crate::endpoint::Family;
use crate::report::{Format, Percentiles};

use super::render;
use super::rows::{BoundaryRow, Row, TcpInfoRow};

fn p(base: u64) -> Percentiles {
    Percentiles {
        p50: base,
        p90: base * 2,
        p99: base * 3,
        p99_9: base * 4,
        max: base * 5,
        mean: base as f64 + 0.5,
    }
}

fn row(proto: &str, family: Family, socket_type: &'static str, why: &'static str) -> Row {
    Row {
        proto: proto.into(),
        family: Some(family),
        socket_type,
        address: "127.0.0.1:5000".into(),
        setup_us: 8,
        latency_us: p(10),
        messages_per_s: 90000.0,
        mb_per_s: 92.16,
        sent: 90010,
        lost: 7,
        boundaries_kept: true,
        burst_reads: 50,
        ordered: false,
        why,
        tcp_info: None,
        latency: None,
    }
}

fn rows() -> Vec<Row> {
    let tcp = Row {
        address: "[::1]:4000".into(),
        setup_us: 31,
        latency_us: p(12),
        messages_per_s: 123456.4,
        mb_per_s: 126.44,
        sent: 130000,
        lost: 0,
        boundaries_kept: false,
        burst_reads: 3,
        ordered: true,
        tcp_info: Some(TcpInfoRow {
            connections: 4,
            retransmits: 2,
            rtt_us: 40,
            cwnd: 10,
        }),
        ..row("tcp", Family::Inet6, "SOCK_STREAM", "tcp, with \"quotes\"")
    };
    let seqpacket = Row {
        address: "/tmp/a,b.sock".into(),
        setup_us: 9,
        latency_us: p(5),
        messages_per_s: 200000.0,
        mb_per_s: 204.8,
        sent: 200100,
        lost: 0,
        ordered: true,
        ..row(
            "unix-seqpacket",
            Family::Unix,
            "SOCK_SEQPACKET",
            "seqpacket",
        )
    };
    vec![
        tcp,
        seqpacket,
        row("udp", Family::Inet, "SOCK_DGRAM", "udp"),
    ]
}

fn boundaries() -> Vec<BoundaryRow> {
    let b = |proto: &str, framing: &str, reads, messages| BoundaryRow {
        proto: proto.into(),
        framing: framing.into(),
        sends: 50,
        reads,
        messages,
    };
    vec![b("tcp", "none", 2, 0), b("unix", "length", 1, 50)]
}

#[test]
fn table_with_sentences_and_boundaries() {
    let expected = "\
proto           family    type            setup_us  p50_us  p99_us  p99.9_us  msgs/s   MB/s      lost      boundaries  ordered
tcp             AF_INET6  SOCK_STREAM           31      12      36        48  123456  126.4  0/130000    no (3 reads)      yes
unix-seqpacket  AF_UNIX   SOCK_SEQPACKET         9       5      15        20  200000  204.8  0/200100  yes (50 reads)      yes
udp             AF_INET   SOCK_DGRAM             8      10      30        40   90000   92.2   7/90010  yes (50 reads)       no

- tcp, with \"quotes\"
- seqpacket
- udp

Message boundaries: 50 sends of 16 bytes back to back on a stream
proto  framing  sends  reads  messages
tcp    none     50         2         0
unix   length   50         1        50
- without framing a stream returns whatever bytes have arrived: several sends can come back in one read; a line or length framing recovers every message
";
    assert_eq!(
        render::on_this_machine(Format::Table, &rows(), &boundaries()),
        expected
    );
}

#[test]
fn table_across_namespaces() {
    let expected = "\
proto           family    type            setup_us  p50_us  p99_us  p99.9_us  msgs/s   MB/s      lost      boundaries  ordered
tcp             AF_INET6  SOCK_STREAM           31      12      36        48  123456  126.4  0/130000    no (3 reads)      yes
unix-seqpacket  AF_UNIX   SOCK_SEQPACKET         9       5      15        20  200000  204.8  0/200100  yes (50 reads)      yes
udp             AF_INET   SOCK_DGRAM             8      10      30        40   90000   92.2   7/90010  yes (50 reads)       no

- tcp, with \"quotes\"
- seqpacket
- udp

- loss 5% each way
- tcp: 2 retransmits over 4 connections (TCP_INFO), smoothed rtt 40 us, cwnd 10 segments; nothing lost to the program, the loss shows as latency: p50 12 us, p99.9 48 us
- unix-seqpacket: 0 of 200100 datagrams lost, and nobody sent them again: the gaps are the program's to handle
- udp: 7 of 90010 datagrams lost, and nobody sent them again: the gaps are the program's to handle
";
    let notes = vec!["loss 5% each way".to_string()];
    assert_eq!(
        render::across_namespaces(Format::Table, &rows(), &notes),
        expected
    );
}

#[test]
fn csv() {
    let expected = "\
proto,family,type,setup_us,p50_us,p99_us,p99_9_us,messages_per_s,mb_per_s,sent,lost,boundaries_kept,burst_reads,ordered
tcp,AF_INET6,SOCK_STREAM,31,12,36,48,123456,126.44,130000,0,false,3,true
unix-seqpacket,AF_UNIX,SOCK_SEQPACKET,9,5,15,20,200000,204.80,200100,0,true,50,true
udp,AF_INET,SOCK_DGRAM,8,10,30,40,90000,92.16,90010,7,true,50,false
";
    assert_eq!(
        render::on_this_machine(Format::Csv, &rows(), &boundaries()),
        expected
    );
    assert_eq!(
        render::across_namespaces(Format::Csv, &rows(), &[]),
        expected
    );
}

#[test]
fn json_keeps_its_fields() {
    let text = render::on_this_machine(Format::Json, &rows(), &boundaries());
    let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(doc["schema"], "netecho-lab/1");
    assert_eq!(doc["rows"][0]["family"], "AF_INET6");
    assert_eq!(doc["rows"][0]["tcp_info"]["retransmits"], 2);
    assert!(doc["rows"][1].get("tcp_info").is_none());
    assert!(doc["rows"][1].get("latency").is_none());
    assert_eq!(doc["boundaries"][1]["messages"], 50);
    let notes = vec!["veth".to_string()];
    let text = render::across_namespaces(Format::Json, &rows(), &notes);
    let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(doc["netns"][0], "veth");
    assert_eq!(doc["rows"][2]["family"], "AF_INET");
}
