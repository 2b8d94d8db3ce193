//! `netecho bench` against the real server: every reply checked, numbers that add up.

mod common;

use common::{Server, netecho, ok};

/// The value of `key` in bench's table.
fn field(table: &str, key: &str) -> f64 {
    table
        .lines()
        .find_map(|l| l.trim_start().strip_prefix(key).map(str::trim))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {key} in:\n{table}"))
}

#[test]
fn bench_counts_every_reply_over_each_protocol() {
    let cases = [
        ("tcp", "127.0.0.1:0".to_string()),
        ("udp", "[::1]:0".to_string()),
        ("unix", common::abstract_name("bench-unix")),
        ("unix-dgram", common::abstract_name("bench-dgram")),
        ("unix-seqpacket", common::abstract_name("bench-seq")),
    ];
    for (proto, addr) in cases {
        let server = Server::start(&["--proto", proto, "--addr", &addr]);
        let out = netecho(
            &[
                "bench",
                &server.url(),
                "--clients",
                "8",
                "--size",
                "100",
                "--count",
                "200",
                "--window",
                "4",
            ],
            b"",
        );
        let table = ok(&out);
        assert_eq!(field(&table, "sent"), 1600.0, "{proto}:\n{table}");
        assert_eq!(field(&table, "answered"), 1600.0, "{proto}:\n{table}");
        assert_eq!(field(&table, "mismatched"), 0.0, "{proto}:\n{table}");
        assert!(field(&table, "requests/s") > 0.0);
        assert!(field(&table, "p50 us") >= 1.0);
    }
}

#[test]
fn bench_pipelines_large_messages_over_a_stream() {
    let server = Server::start(&["--addr", "127.0.0.1:0"]);
    let out = netecho(
        &[
            "bench",
            &server.addr,
            "-c",
            "4",
            "-s",
            "200000",
            "-n",
            "20",
            "-w",
            "3",
        ],
        b"",
    );
    let table = ok(&out);
    assert_eq!(field(&table, "answered"), 80.0, "{table}");
}

#[test]
fn a_reply_that_differs_is_reported_and_fails_the_run() {
    // The server echoes without upper-casing, but bench expects upper case.
    let server = Server::start(&["--addr", "127.0.0.1:0", "--transform", "echo"]);
    let out = netecho(&["bench", &server.addr, "-n", "5"], b"");
    let line = common::fails(&out, 1);
    assert!(line.contains("did not match"), "{line}");
    assert!(line.contains("--expect echo"), "{line}");
    // Told what the server does, the same run passes.
    let out = netecho(&["bench", &server.addr, "-n", "5", "--expect", "echo"], b"");
    assert_eq!(field(&ok(&out), "answered"), 5.0);
}

#[test]
fn bench_against_nothing_says_so() {
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = free.local_addr().unwrap().to_string();
    drop(free);
    let out = netecho(&["bench", &addr, "-n", "1"], b"");
    let line = common::fails(&out, 1);
    assert!(line.contains("nothing is listening"), "{line}");
}
