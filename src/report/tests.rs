//! Every format pinned against an exact expected text.

use super::*;

fn run() -> Run {
    let p = |base: u64| Percentiles {
        p50: base,
        p90: base * 2,
        p99: base * 3,
        p99_9: base * 4,
        max: base * 5,
        mean: base as f64 + 0.5,
    };
    Run {
        proto: "udp".into(),
        address: "[::1]:3234".into(),
        clients: 2,
        size: 64,
        window: 1,
        duration_s: Some(1.0),
        count: None,
        elapsed_s: 1.001,
        sent: 1000,
        answered: 998,
        bytes: 63872,
        requests_per_s: 997.0,
        mb_per_s: 0.06,
        latency_us: p(10),
        connect_us: p(3),
        lost: 2,
        duplicated: 0,
        reordered: 1,
        late: 0,
        mismatched: 0,
        failed_clients: 0,
        rxq_overflow: 0,
        rcvbuf_errors: Some(0),
        send_errors: 0,
        loss_cause: Some(crate::client::bench::loss::Cause::Unseen),
    }
}

#[test]
fn table() {
    let expected = "\
proto  address     clients  size  window  requests_per_s  mb_per_s  mean_us  p50_us  p99_us  p99_9_us  max_us  connect_p50_us  sent  answered  lost  duplicated  reordered  mismatched  failed_clients
udp    [::1]:3234        2    64       1             997      0.06     10.5      10      30        40      50               3  1000       998     2           0          1           0               0
";
    assert_eq!(render(Format::Table, &[run()]), expected);
}

#[test]
fn csv() {
    let expected = "\
proto,address,clients,size,window,requests_per_s,mb_per_s,mean_us,p50_us,p99_us,p99_9_us,max_us,connect_p50_us,sent,answered,lost,duplicated,reordered,mismatched,failed_clients
udp,[::1]:3234,2,64,1,997,0.06,10.5,10,30,40,50,3,1000,998,2,0,1,0,0
";
    assert_eq!(render(Format::Csv, &[run()]), expected);
    let mut odd = run();
    odd.address = "/tmp/a,\"b\".sock".into();
    assert!(render(Format::Csv, &[odd]).contains(",\"/tmp/a,\"\"b\"\".sock\","));
}

#[test]
fn json() {
    let text = render(Format::Json, &[run()]);
    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(value["schema"], "netecho-bench/1");
    let r = &value["runs"][0];
    assert_eq!(r["proto"], "udp");
    assert_eq!(r["address"], "[::1]:3234");
    assert_eq!(r["duration_s"], 1.0);
    assert_eq!(r["count"], serde_json::Value::Null);
    assert_eq!(r["latency_us"]["p99_9"], 40);
    assert_eq!(r["latency_us"]["mean"], 10.5);
    assert_eq!(r["lost"], 2);
    assert_eq!(r["loss_cause"], "unseen");
    let keys: Vec<&str> = r.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "proto",
            "address",
            "clients",
            "size",
            "window",
            "duration_s",
            "count",
            "elapsed_s",
            "sent",
            "answered",
            "bytes",
            "requests_per_s",
            "mb_per_s",
            "latency_us",
            "connect_us",
            "lost",
            "duplicated",
            "reordered",
            "late",
            "mismatched",
            "failed_clients",
            "rxq_overflow",
            "rcvbuf_errors",
            "send_errors",
            "loss_cause"
        ]
    );
}
