//! The lab's output pinned against an exact expected text: the table with its sentences and
//! the boundaries table, the table across namespaces, and the CSV.

use serde_json::{Map, Value};

use crate::endpoint::Family;
use crate::report::{Format, Layout, Meta, Percentiles};

use super::render::{self, Lab};
use super::rows::{BoundaryRow, Row, TcpInfoRow};

fn meta() -> Meta {
    let mut parameters = Map::new();
    parameters.insert("rounds".into(), Value::from(3));
    Meta {
        netecho_version: "0.1.0",
        host: "lab1".into(),
        kernel: "Linux 6.1.0".into(),
        cores: 2,
        date_utc: "2026-11-30T17:03:41Z".into(),
        command: "netecho lab --format csv".into(),
        parameters,
    }
}

/// The lab of `rows` and `boundaries`, rendered by `f`.
fn with<T>(rows: &[Row], boundaries: &[BoundaryRow], f: impl FnOnce(&Lab) -> T) -> T {
    let meta = meta();
    f(&Lab {
        rows,
        left_out: &[],
        boundaries,
        meta: &meta,
        rounds: 3,
        pinned: false,
    })
}

fn p(base: u64) -> Percentiles {
    Percentiles {
        p50: base as f64,
        p90: (base * 2) as f64,
        p99: (base * 3) as f64,
        p99_9: (base * 4) as f64,
        max: (base * 5) as f64,
        mean: base as f64 + 0.5,
    }
}

pub(super) fn row(proto: &str, family: Family, socket_type: &'static str, why: &str) -> Row {
    Row {
        proto: proto.into(),
        family: Some(family),
        socket_type,
        address: "127.0.0.1:5000".into(),
        setup_us: 8,
        latency_us: p(10),
        p50_rounds_us: vec![9, 10, 12],
        rounds_left_out: 0,
        median_round_p50_us: 10.0,
        messages_per_s: 90000.0,
        messages_per_s_rounds: vec![89000.0, 90000.0, 91000.0],
        in_flight: 16,
        mb_per_s: 92.16,
        sent: 90010,
        lost: 7,
        loss_cause: Some(crate::report::Cause::ReceiveBuffer),
        boundaries_kept: true,
        burst_reads: 50,
        burst_lost: 0,
        ordered: false,
        why: why.into(),
        tcp_info: None,
        latency: None,
        lossless: true,
    }
}

fn rows() -> Vec<Row> {
    let tcp = Row {
        address: "[::1]:4000".into(),
        setup_us: 31,
        latency_us: p(12),
        median_round_p50_us: 12.0,
        messages_per_s: 123456.4,
        mb_per_s: 126.44,
        sent: 130000,
        lost: 0,
        loss_cause: None,
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
        median_round_p50_us: 5.0,
        messages_per_s: 200000.0,
        mb_per_s: 204.8,
        sent: 200100,
        lost: 0,
        loss_cause: None,
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
        bytes: 800,
    };
    vec![b("tcp", "none", 2, 0), b("unix", "length", 1, 50)]
}

#[test]
fn table_with_sentences_and_boundaries() {
    let expected = "\
proto           family    type            setup_us  p50_us  p99_us  p99.9_us  msgs/s   MB/s      lost      boundaries  ordered
tcp             AF_INET6  SOCK_STREAM           31    12.0    36.0      48.0  123456  126.4  0/130000    no (3 reads)      yes
unix-seqpacket  AF_UNIX   SOCK_SEQPACKET         9     5.0    15.0      20.0  200000  204.8  0/200100  yes (50 reads)      yes
udp             AF_INET   SOCK_DGRAM             8    10.0    30.0      40.0   90000   92.2   7/90010  yes (50 reads)       no

- tcp, with \"quotes\"
- seqpacket
- udp

Message boundaries: 50 sends of 16 bytes back to back on a stream
proto  framing  sends  reads  bytes  messages
tcp    none     50         2    800         0
unix   length   50         1    800        50
- without framing a stream returns whatever bytes have arrived: several sends can come back in one read, every byte there (bytes) but no send told apart from the next (messages counts only reads that held exactly one); a line or length framing recovers every message
- each line is a burst of its own, sent after the rows' bursts: how sends merge depends on the moment, so its reads can differ from a row's sentence
";
    assert_eq!(
        with(&rows(), &boundaries(), |lab| render::on_this_machine(
            Format::Table,
            Layout::Wide,
            lab
        )),
        expected
    );
}

#[test]
fn table_across_namespaces() {
    let expected = "\
proto           family    type            setup_us  p50_us  p99_us  p99.9_us  msgs/s   MB/s      lost      boundaries  ordered
tcp             AF_INET6  SOCK_STREAM           31    12.0    36.0      48.0  123456  126.4  0/130000    no (3 reads)      yes
unix-seqpacket  AF_UNIX   SOCK_SEQPACKET         9     5.0    15.0      20.0  200000  204.8  0/200100  yes (50 reads)      yes
udp             AF_INET   SOCK_DGRAM             8    10.0    30.0      40.0   90000   92.2   7/90010  yes (50 reads)       no

- tcp, with \"quotes\"
- seqpacket
- udp

- loss 5% each way
- tcp6: 2 retransmits over 4 connections (TCP_INFO); smoothed rtt 40 us, cwnd 10 segments; nothing lost to the program, the loss shows as latency: p50 12 us, p99.9 48 us
- unix-seqpacket: none of 200100 datagrams lost; one lost would stay lost, nobody sends it again
- udp: 7 of 90010 datagrams lost, and nobody sent them again: the gaps are the program's to handle
";
    let notes = vec!["loss 5% each way".to_string()];
    // Across namespaces with --loss: a resend is loss, and each note names its table row.
    let rows: Vec<Row> = rows()
        .into_iter()
        .map(|r| Row {
            lossless: false,
            ..r
        })
        .collect();
    assert_eq!(
        with(&rows, &[], |lab| render::across_namespaces(
            Format::Table,
            Layout::Wide,
            lab,
            &notes
        )),
        expected
    );
}

#[test]
fn narrow_table_fits_eighty_columns_with_each_sentence_under_its_row() {
    let long = "a sentence long enough to need a second line under its row, so that the \
                table wraps it at a space before the eightieth column";
    let rows = vec![row("udp", Family::Inet6, "SOCK_DGRAM", long)];
    let text = with(&rows, &boundaries(), |lab| {
        render::on_this_machine(Format::Table, Layout::Narrow, lab)
    });
    let expected = "\
proto  setup  p50  +-  p99  p99.9  msg/s   lost  bounds  order
udp6       8   10   2   30     40  90000  0.01%     yes     no
    a sentence long enough to need a second line under its row, so that the
    table wraps it at a space before the eightieth column

times in us: setup = connect(2), p50/p99/p99.9 = ping-pong round trip; p50 is
the median of 3 rounds' p50s (of two, their mean; a round of fewer than 20 round
trips stalled and has none: its row says so) and +- half their range; p99 and
p99.9 are of all rounds' round trips together, so a slow round can lift p50
above them; msg/s = 1 KiB messages under pipelined load (median round; the
sentence says when lost requests, each waited for 500 ms, long waits, or a
link's bytes a second bound it); lost = share of requests; bounds = each read of
a 50-send burst held one message (a lost datagram is not a merged one); order =
replies in the order sent

Message boundaries: 50 sends of 16 bytes back to back on a stream
proto  framing  sends  reads  bytes  messages
tcp    none     50         2    800         0
unix   length   50         1    800        50
- without framing a stream returns whatever bytes have arrived: several sends
  can come back in one read, every byte there (bytes) but no send told apart
  from the next (messages counts only reads that held exactly one); a line or
  length framing recovers every message
- each line is a burst of its own, sent after the rows' bursts: how sends merge
  depends on the moment, so its reads can differ from a row's sentence
";
    assert_eq!(text, expected);
}

#[test]
fn csv() {
    let head = "kind,proto,family,type,address,setup_us,p50_us,p90_us,p99_us,p99_9_us,max_us,\
mean_us,p50_rounds_us,rounds_left_out,median_round_p50_us,messages_per_s,messages_per_s_rounds,\
in_flight,mb_per_s,sent,lost,loss_cause,boundaries_kept,burst_reads,\
burst_lost,ordered,why,tcp_connections,tcp_retransmits,tcp_rtt_us,tcp_cwnd,framing,sends,reads,\
messages,bytes,netecho_version,host,kernel,cores,date_utc,command,param_rounds\n";
    let meta = ",0.1.0,lab1,Linux 6.1.0,2,2026-11-30T17:03:41Z,netecho lab --format csv,3\n";
    let protocols = [
        "protocol,tcp,AF_INET6,SOCK_STREAM,[::1]:4000,31,12,24,36,48,60,12.5,9 10 12,0,12,123456,\
89000 90000 91000,16,126.44,\
130000,0,,false,3,0,true,\"tcp, with \"\"quotes\"\"\",4,2,40,10,,,,,",
        "protocol,unix-seqpacket,AF_UNIX,SOCK_SEQPACKET,\"/tmp/a,b.sock\",9,5,10,15,20,25,5.5,\
9 10 12,0,5,200000,89000 90000 91000,16,204.80,200100,0,,true,50,0,true,seqpacket,,,,,,,,,",
        "protocol,udp,AF_INET,SOCK_DGRAM,127.0.0.1:5000,8,10,20,30,40,50,10.5,9 10 12,0,10,\
90000,89000 90000 91000,16,92.16,\
90010,7,receive-buffer,true,50,0,false,udp,,,,,,,,,",
    ];
    let bounds = [
        "boundary,tcp,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,none,50,2,0,800",
        "boundary,unix,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,length,50,1,50,800",
    ];
    let with_meta =
        |lines: &[&str]| -> String { lines.iter().map(|l| format!("{l}{meta}")).collect() };
    let all: Vec<&str> = protocols.iter().chain(&bounds).copied().collect();
    assert_eq!(
        with(&rows(), &boundaries(), |lab| render::on_this_machine(
            Format::Csv,
            Layout::Narrow,
            lab
        )),
        format!("{head}{}", with_meta(&all))
    );
    assert_eq!(
        with(&rows(), &[], |lab| render::across_namespaces(
            Format::Csv,
            Layout::Narrow,
            lab,
            &[]
        )),
        format!("{head}{}", with_meta(&protocols))
    );
}

#[test]
fn json_keeps_its_fields() {
    let text = with(&rows(), &boundaries(), |lab| {
        render::on_this_machine(Format::Json, Layout::Narrow, lab)
    });
    let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(doc["schema"], "netecho-lab/3");
    assert_eq!(doc["meta"]["host"], "lab1");
    assert_eq!(doc["meta"]["parameters"]["rounds"], 3);
    assert_eq!(doc["rows"][2]["loss_cause"], "receive-buffer");
    assert_eq!(doc["rows"][0]["p50_rounds_us"][2], 12);
    assert_eq!(doc["rows"][0]["family"], "AF_INET6");
    assert_eq!(doc["rows"][0]["tcp_info"]["retransmits"], 2);
    assert!(doc["rows"][1].get("tcp_info").is_none());
    assert!(doc["rows"][1].get("latency").is_none());
    assert_eq!(doc["boundaries"][1]["messages"], 50);
    let notes = vec!["veth".to_string()];
    let text = with(&rows(), &[], |lab| {
        render::across_namespaces(Format::Json, Layout::Narrow, lab, &notes)
    });
    let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(doc["netns"][0], "veth");
    assert_eq!(doc["rows"][2]["family"], "AF_INET");
}

/// A busy machine's rounds: their p50s (the table's p50, a median of medians) above the
/// p90 of all round trips together. The JSON and CSV keep each under its own name, so
/// `latency_us` stays the percentiles of one distribution.
#[test]
fn the_median_rounds_p50_has_its_own_name_beside_the_pooled_percentiles() {
    let busy = Row {
        latency_us: p(10),
        p50_rounds_us: vec![9, 35, 40],
        median_round_p50_us: 35.0,
        ..row("udp", Family::Inet, "SOCK_DGRAM", "udp")
    };
    let rows = [busy];
    let json = with(&rows, &[], |lab| {
        render::on_this_machine(Format::Json, Layout::Narrow, lab)
    });
    let doc: serde_json::Value = serde_json::from_str(&json).unwrap();
    let r = &doc["rows"][0];
    assert_eq!(r["latency_us"]["p50"], 10, "{r}");
    assert_eq!(r["latency_us"]["p90"], 20, "{r}");
    assert_eq!(r["median_round_p50_us"], 35, "{r}");
    let csv = with(&rows, &[], |lab| {
        render::on_this_machine(Format::Csv, Layout::Narrow, lab)
    });
    assert!(csv.contains(",10,20,30,40,50,10.5,9 35 40,0,35,"), "{csv}");
    // The table shows the rounds' median, as its legend says.
    let table = with(&rows, &[], |lab| {
        render::on_this_machine(Format::Table, Layout::Narrow, lab)
    });
    let line = table.lines().nth(1).unwrap();
    assert_eq!(line.split_whitespace().nth(2), Some("35"), "{table}");
}

#[test]
fn a_failed_measurement_is_taken_once_more_and_a_second_failure_is_the_error() {
    use super::measure::once_more;
    let mut tries = 0;
    let got = once_more(&"tcp 127.0.0.1:1", || {
        tries += 1;
        match tries {
            1 => Err(anyhow::anyhow!("no reply in time")),
            _ => Ok(tries),
        }
    });
    assert_eq!(got.unwrap(), 2);
    let mut tries = 0;
    let got: anyhow::Result<()> = once_more(&"udp 127.0.0.1:1", || {
        tries += 1;
        Err(anyhow::anyhow!("try {tries} failed"))
    });
    assert_eq!(tries, 2, "measured twice, not more");
    assert_eq!(got.unwrap_err().to_string(), "try 2 failed");
}

#[test]
fn a_status_line_with_a_chinese_path_is_cut_to_the_columns_it_takes() {
    let line = format!("lab: [3/9] unix /tmp/{}.sock", "中文".repeat(30));
    let cut = super::fit(&line, 79);
    assert!(crate::wrap::columns(&cut) <= 79, "{cut}");
    assert!(crate::wrap::columns(&cut) >= 77, "{cut}");
    assert!(cut.starts_with("lab: [3/9] unix /tmp/"), "{cut}");
    assert!(cut.contains("...") && cut.ends_with("中文.sock"), "{cut}");
    assert_eq!(super::fit("lab: short", 79), "lab: short");
}

/// A lab server's warning about one of the lab's own clients is kept out of the output
/// and counted; one about the server itself, or its last error, is shown.
#[test]
fn a_warning_about_one_client_is_counted_and_one_about_the_server_shown() {
    for line in [
        " WARN quic 10.233.0.2:53886: handshake failed: the client closed the connection \
         (QUIC error 0xc)",
        " WARN quic [fd00::2]:40000: no handshake within 10s; dropped",
        " WARN 127.0.0.1:40000: busy: too many clients",
    ] {
        assert!(!super::relay(line), "{line}");
    }
    for line in [
        " WARN tcp loop 0 failed: out of memory; the others serve on",
        " WARN recvfrom: Connection refused",
        "ERROR quic 10.233.0.2:53886: what the lab must hear",
        "error: bind 127.0.0.1:0: address in use",
    ] {
        assert!(super::relay(line), "{line}");
    }
    assert_eq!(super::about_clients(0, true), None);
    let said = super::about_clients(3, true).unwrap();
    assert!(
        said.starts_with("this run's own servers warned 3 times about its clients"),
        "{said}"
    );
    assert!(said.contains("under the simulated loss"), "{said}");
}

#[test]
fn a_pinned_lab_says_under_its_table_that_round_trips_cross_cores() {
    let rows = [row("tcp", Family::Inet, "SOCK_STREAM", "a byte stream")];
    let table = |pinned| {
        with(&rows, &[], |lab| {
            let lab = Lab { pinned, ..*lab };
            render::on_this_machine(Format::Table, Layout::Wide, &lab)
        })
    };
    let text = table(true);
    assert!(text.contains(render::PINNED), "{text}");
    let unpinned = table(false);
    assert!(!unpinned.contains("different cores"), "{unpinned}");
}

#[test]
fn the_median_of_two_load_rounds_is_their_mean() {
    use super::measure::median;
    assert_eq!(median(&[(1000.0, 1.0), (100.0, 0.1)]), (550.0, 0.55));
    assert_eq!(median(&[(3.0, 3.0), (1.0, 1.0), (2.0, 2.0)]), (2.0, 2.0));
    assert_eq!(median(&[]), (0.0, 0.0));
}

/// A udp row no request of which got a reply (a firewall on the server): its JSON and CSV
/// say null (empty) where the table shows "-", never a 0 us or a kept boundary.
#[test]
fn a_row_with_no_reply_is_null_where_the_table_shows_a_dash() {
    let silent = Row {
        lost: 51,
        sent: 51,
        latency_us: p(0),
        p50_rounds_us: Vec::new(),
        median_round_p50_us: 0.0,
        messages_per_s: 0.0,
        messages_per_s_rounds: vec![0.0; 3],
        mb_per_s: 0.0,
        burst_reads: 0,
        burst_lost: 50,
        ..row("udp", Family::Inet, "SOCK_DGRAM", "no reply at all")
    };
    let rows = [silent];
    let json = with(&rows, &[], |lab| {
        render::on_this_machine(Format::Json, Layout::Narrow, lab)
    });
    let doc: serde_json::Value = serde_json::from_str(&json).unwrap();
    let r = &doc["rows"][0];
    for field in [
        "latency_us",
        "median_round_p50_us",
        "messages_per_s",
        "mb_per_s",
        "boundaries_kept",
        "ordered",
    ] {
        assert!(r[field].is_null(), "{field}: {r}");
    }
    assert_eq!(r["burst_lost"], 50, "{r}");
    let csv = with(&rows, &[], |lab| {
        render::on_this_machine(Format::Csv, Layout::Narrow, lab)
    });
    let line = csv.lines().nth(1).unwrap();
    // setup_us, then nothing from p50_us to mb_per_s but the rounds left out and the
    // requests in flight, then sent and lost.
    assert!(line.contains(",8,,,,,,,,0,,,,16,,51,51,"), "{line}");
    assert!(!line.contains("true"), "{line}");
}
