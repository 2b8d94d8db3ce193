//! `--explain`: the socket calls, narrated in the order the kernel sees them.

mod common;

use common::{Server, netecho, ok};

/// The narrated calls in `stderr`, by name (`socket`, `bind`, ...), in order.
fn calls(stderr: &str) -> Vec<String> {
    stderr
        .lines()
        .filter(|l| l.contains(") = "))
        .map(|l| l.split('(').next().unwrap().trim().to_string())
        .collect()
}

/// Whether `want` appears in `got` in this order (other calls may come between).
fn in_order(got: &[String], want: &[&str]) -> bool {
    let mut it = got.iter();
    want.iter().all(|w| it.any(|g| g == w))
}

#[test]
fn a_tcp_exchange_narrates_every_call_in_order() {
    let server = Server::start(&["--explain", "--model", "threads", "--addr", "127.0.0.1:0"]);
    let out = netecho(&["send", "--explain", &server.addr, "hello"], b"");
    assert_eq!(ok(&out), "HELLO\n");
    let client = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        calls(&client),
        ["socket", "connect", "send", "recv", "close"],
        "{client}"
    );
    assert!(
        client.contains("socket(AF_INET, SOCK_STREAM, 0) = fd "),
        "{client}"
    );
    assert!(
        client.contains(&format!("connect(fd 3, {}) = 0", server.addr)),
        "{client}"
    );
    assert!(client.contains("send(fd 3, 5 bytes) = 5"), "{client}");

    let log = server.wait_log("close(fd");
    let got = calls(&log);
    assert!(
        in_order(
            &got,
            &[
                "socket",
                "setsockopt",
                "bind",
                "listen",
                "accept",
                "recv",
                "send",
                "recv",
                "close"
            ]
        ),
        "{log}"
    );
    assert!(log.contains(", SO_REUSEADDR, 1) = 0"), "{log}");
    assert!(log.contains(", 1024) = 0"), "{log}");
    assert!(log.contains("= 0 (end of stream"), "{log}");
}

#[test]
fn a_udp_exchange_shows_recvfrom_and_sendto() {
    let server = Server::start(&[
        "--explain",
        "--model",
        "threads",
        "--proto",
        "udp",
        "--addr",
        "[::1]:0",
    ]);
    let out = netecho(&["send", "--explain", &server.url(), "hello"], b"");
    assert_eq!(ok(&out), "HELLO\n");
    let client = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        in_order(
            &calls(&client),
            &["socket", "connect", "send", "setsockopt", "recv", "close"]
        ),
        "{client}"
    );
    assert!(
        client.contains("socket(AF_INET6, SOCK_DGRAM, 0)"),
        "{client}"
    );
    let log = server.wait_log("sendto(");
    assert!(
        in_order(
            &calls(&log),
            &["socket", "setsockopt", "bind", "recvfrom", "sendto"]
        ),
        "{log}"
    );
    assert!(log.contains(", IPV6_V6ONLY, 0) = 0"), "{log}");
    assert!(log.contains(", 65536) = 5 bytes from [::1]:"), "{log}");
}

#[test]
fn without_the_flag_nothing_is_narrated() {
    let server = Server::start(&["--addr", "127.0.0.1:0"]);
    let out = netecho(&["send", &server.addr, "quiet"], b"");
    assert_eq!(ok(&out), "QUIET\n");
    assert!(!String::from_utf8_lossy(&out.stderr).contains(") = "));
    assert!(!server.stderr().contains(") = "));
}
