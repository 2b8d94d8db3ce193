//! `--allow` and `--deny`: refused peers are closed or ignored, and logged once with the rule.

mod common;

use std::io::{Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::process::Command;
use std::time::Duration;

use common::{Server, bin, netecho, ok};

/// A TCP connection from a chosen loopback source address.
fn connect_from(source: &str, to: &str) -> TcpStream {
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    common::tcp_from(sock, source, to)
}

/// Sends `hello` and returns what came back before the server closed (empty if refused).
fn hello(mut stream: TcpStream) -> Vec<u8> {
    let _ = stream.write_all(b"hello");
    let _ = stream.shutdown(std::net::Shutdown::Write);
    let mut back = Vec::new();
    let _ = stream.read_to_end(&mut back);
    back
}

#[test]
fn a_denied_ipv4_peer_is_closed_and_logged_once() {
    let server = Server::start(&["--addr", "127.0.0.1:0", "--deny", "127.0.0.1/32"]);
    assert!(hello(connect_from("127.0.0.1", &server.addr)).is_empty());
    assert!(hello(connect_from("127.0.0.1", &server.addr)).is_empty());
    // Another loopback address is not covered by the rule.
    assert_eq!(hello(connect_from("127.0.0.2", &server.addr)), b"HELLO");
    let log = server.wait_log("refused by --deny 127.0.0.1/32");
    assert_eq!(log.matches("refused by").count(), 1, "{log}");
}

#[test]
fn a_datagram_peer_outside_allow_is_ignored() {
    let server = Server::start(&[
        "--proto",
        "udp",
        "--addr",
        "127.0.0.1:0",
        "--allow",
        "127.0.0.2",
    ]);
    // A refused datagram gets no answer: a short wait shows it. The served one may take
    // longer on a loaded machine: it is waited for up to STEP.
    let refused = ask_udp("127.0.0.1", &server.addr, Duration::from_millis(500));
    assert_eq!(refused, None);
    let served = ask_udp("127.0.0.2", &server.addr, common::STEP);
    assert_eq!(served.as_deref(), Some(&b"HELLO"[..]));
    let log = server.wait_log("no --allow rule matches (127.0.0.2/32)");
    assert!(log.contains("127.0.0.1:"), "{log}");
}

#[test]
fn a_unix_peer_is_refused_by_uid() {
    if !common::can_switch_user() {
        common::skip(
            "a_unix_peer_is_refused_by_uid",
            "root and setpriv (util-linux) to connect as a second user (nobody)",
            common::Lacks::Provided,
        );
        return;
    }
    let as_nobody = |url: &str| common::run(&mut common::as_nobody(&["send", url, "hello"]), b"");
    // An abstract name: no file permissions stand between nobody and the socket. Without a
    // rule nobody is served, so below only the rule can explain a failure.
    let name = common::abstract_name("uid");
    let open = Server::start(&["--addr", &format!("unix://{name}-open")]);
    assert_eq!(ok(&as_nobody(&open.url())), "HELLO\n");
    let url = format!("unix://{name}");
    let server = Server::start(&["--addr", &url, "--deny", "uid:65534"]);
    let out = as_nobody(&url);
    assert!(!out.status.success(), "nobody was served");
    assert_eq!(ok(&netecho(&["send", &url, "hello"], b"")), "HELLO\n");
    server.wait_log("refused by --deny uid:65534");

    // The same rule on a relay in front of a server that answers: root gets through it.
    let upstream = Server::start(&["--proto", "udp", "--addr", "127.0.0.1:0"]);
    let relay = Server::start_with(Command::new(bin()).args([
        "relay",
        "--deny",
        "uid:65534",
        &format!("unix-seqpacket://{}-relay", name),
        &upstream.url(),
    ]));
    assert_eq!(
        ok(&netecho(&["send", &relay.url(), "hello"], b"")),
        "HELLO\n"
    );
    let out = as_nobody(&relay.url());
    assert!(!out.status.success(), "nobody was relayed");
    relay.wait_log("refused by --deny uid:65534");
}

#[test]
fn a_relay_refuses_a_denied_peer() {
    let server = Server::start(&["--addr", "127.0.0.1:0"]);
    let relay = Server::start_with(Command::new(bin()).args([
        "relay",
        "--deny",
        "127.0.0.1/32",
        "tcp://127.0.0.1:0",
        &server.url(),
    ]));
    assert!(hello(connect_from("127.0.0.1", &relay.addr)).is_empty());
    assert_eq!(hello(connect_from("127.0.0.2", &relay.addr)), b"HELLO");
    relay.wait_log("refused by --deny 127.0.0.1/32");
}

#[test]
fn a_rule_that_cannot_apply_is_one_clear_error() {
    for (args, says) in [
        (
            vec![
                "serve",
                "--proto",
                "unix",
                "--addr",
                "@x",
                "--allow",
                "10.0.0.0/8",
            ],
            "CIDR blocks apply to tcp and udp",
        ),
        (
            vec!["serve", "--addr", "127.0.0.1:0", "--deny", "uid:0"],
            "SO_PEERCRED",
        ),
        (
            vec![
                "serve",
                "--proto",
                "unix-dgram",
                "--addr",
                "@x",
                "--deny",
                "uid:0",
            ],
            "no credentials",
        ),
        (vec!["serve", "--allow", "300.1.1.1"], "not a rule"),
    ] {
        let line = common::fails(&netecho(&args, b""), 2);
        assert!(line.contains(says), "{args:?}: {line}");
    }
}

#[test]
fn a_rule_that_never_matches_or_reads_as_another_is_one_clear_error() {
    for (addr, rule, says) in [
        ("127.0.0.1:0", "2001:db8::/64", "receives IPv4 only"),
        ("0.0.0.0:0", "::1", "receives IPv4 only"),
        ("[::1]:0", "127.0.0.0/8", "receives IPv6 only"),
        ("127.0.0.1:0", "::127.0.0.1", "write 127.0.0.1"),
        ("127.0.0.1:0", "10.0.0.1/8", "is the block 10.0.0.0/8"),
        (
            "[::]:0",
            "fe80::1%eth0",
            "a rule has no zone: write fe80::1",
        ),
    ] {
        let args = ["serve", "--addr", addr, "--deny", rule];
        let line = common::fails(&netecho(&args, b""), 2);
        assert!(line.contains(says), "{args:?}: {line}");
        assert_eq!(line.trim().lines().count(), 1, "{line}");
    }
    // --v6only: the socket hears IPv6 alone.
    let args = [
        "serve",
        "--addr",
        "[::]:0",
        "--v6only",
        "--allow",
        "10.0.0.0/8",
    ];
    let line = common::fails(&netecho(&args, b""), 2);
    assert!(line.contains("without --v6only"), "{line}");
}

#[test]
fn a_rule_with_a_port_says_to_write_the_address_alone() {
    for (rule, write) in [
        ("127.0.0.1:5000", "write 127.0.0.1"),
        ("[::1]:5000", "write ::1"),
        ("[::ffff:127.0.0.2]:5000", "write 127.0.0.2"),
    ] {
        let line = common::fails(&netecho(&["serve", "--deny", rule], b""), 2);
        assert!(
            line.contains("has a port") && line.contains(write),
            "{rule}: {line}"
        );
    }
}

/// A datagram from `source` to `to`; the reply, or `None` when none came within `wait`.
fn ask_udp(source: &str, to: &str, wait: Duration) -> Option<Vec<u8>> {
    let sock = UdpSocket::bind(format!("{source}:0")).unwrap();
    sock.set_read_timeout(Some(wait)).unwrap();
    sock.send_to(b"hello", to).unwrap();
    let mut buf = [0u8; 64];
    sock.recv(&mut buf).ok().map(|n| buf[..n].to_vec())
}

/// Checks that `served` gets its answer from `server` (reached at `to`) and `refused` does
/// not, and that the server's log names the refusal: the answer to one proves the server
/// and the path work, so only the rule explains the other's silence.
fn served_and_refused(proto: &str, server: &Server, to: &str, served: &str, refused: &str) {
    let what = format!("{proto} {} {to}", server.url());
    if proto == "tcp" {
        assert_eq!(
            hello(connect_from(served, to)),
            b"HELLO",
            "{what}: {served}"
        );
        assert!(
            hello(connect_from(refused, to)).is_empty(),
            "{what}: {refused} was served"
        );
    } else {
        let got = ask_udp(served, to, common::STEP);
        assert_eq!(got.as_deref(), Some(&b"HELLO"[..]), "{what}: {served}");
        // A refused datagram gets no answer: a short wait, then the log says why.
        let got = ask_udp(refused, to, Duration::from_millis(500));
        assert_eq!(got, None, "{what}: {refused} was served");
    }
    let log = server.wait_log("refused");
    // Each refusal line names its peer before ": refused".
    let peers: Vec<&str> = log
        .lines()
        .filter_map(|l| l.split_once(": refused").map(|(peer, _)| peer))
        .collect();
    assert!(
        peers
            .iter()
            .all(|p| p.contains(refused) && !p.contains(served)),
        "{what}: {log}"
    );
}

/// Rules written as IPv4-mapped IPv6 blocks, the client that each lets through and the one
/// it keeps out.
const MAPPED: [(&[&str], &[&str], &str, &str); 4] = [
    (&["::ffff:127.0.0.2"], &[], "127.0.0.2", "127.0.0.1"),
    (&["::ffff:127.0.0.0/120"], &[], "127.0.0.1", "127.0.1.1"),
    (
        &["[::ffff:127.0.0.0]/104"],
        &["::ffff:127.0.0.3/128"],
        "127.0.0.1",
        "127.0.0.3",
    ),
    (&[], &["::ffff:127.0.0.0/120"], "127.0.1.1", "127.0.0.5"),
];

fn rule_args(allow: &[&str], deny: &[&str]) -> Vec<String> {
    let mut args = Vec::new();
    for (flag, rules) in [("--allow", allow), ("--deny", deny)] {
        for rule in rules {
            args.extend([flag.to_string(), rule.to_string()]);
        }
    }
    args
}

#[test]
fn ipv4_mapped_rules_match_their_ipv4_block_on_every_server() {
    for (allow, deny, served, refused) in MAPPED {
        let rules = rule_args(allow, deny);
        for (proto, listen) in [
            ("tcp", "127.0.0.1:0"),
            ("udp", "127.0.0.1:0"),
            // Dual-stack: IPv4 clients arrive as ::ffff:a.b.c.d.
            ("tcp", "[::]:0"),
            ("udp", "[::]:0"),
        ] {
            let mut args = vec!["--proto", proto, "--addr", listen];
            args.extend(rules.iter().map(String::as_str));
            let server = Server::start(&args);
            let to = format!("127.0.0.1:{}", server.port());
            served_and_refused(proto, &server, &to, served, refused);
        }
    }
}

#[test]
fn ipv4_mapped_rules_match_their_ipv4_block_on_a_relay() {
    for (allow, deny, served, refused) in MAPPED {
        let rules = rule_args(allow, deny);
        for proto in ["tcp", "udp"] {
            let upstream = Server::start(&["--proto", proto, "--addr", "127.0.0.1:0"]);
            let (from, url) = (format!("{proto}://127.0.0.1:0"), upstream.url());
            let mut args = vec!["relay"];
            args.extend(rules.iter().map(String::as_str));
            args.extend([from.as_str(), url.as_str()]);
            let relay = Server::start_with(Command::new(bin()).args(&args));
            let to = relay.addr.clone();
            served_and_refused(proto, &relay, &to, served, refused);
        }
    }
}

#[test]
fn an_ipv4_mapped_rule_shorter_than_96_bits_is_one_clear_error() {
    for rule in ["::ffff:127.0.0.1/95", "::ffff:0.0.0.0/0"] {
        let line = common::fails(
            &netecho(&["serve", "--addr", "127.0.0.1:0", "--allow", rule], b""),
            2,
        );
        assert!(line.contains(rule) && line.contains("96"), "{rule}: {line}");
    }
}

/// A denied sender of a file request over udp is answered nothing at all: no COOKIE, no
/// busy reply, as if nothing listened.
#[test]
fn a_denied_udp_file_request_gets_no_answer() {
    let dir = common::tempdir();
    std::fs::write(dir.path().join("f"), b"data").unwrap();
    let root = dir.path().to_str().unwrap();
    let args = [
        "--proto",
        "udp",
        "--addr",
        "127.0.0.1:0",
        "--files",
        root,
        "--deny",
        "127.0.0.1/32",
    ];
    let server = Server::start(&args);
    let out = dir.path().join("out");
    let get = [
        "get",
        "--proto",
        "udp",
        &server.addr,
        "f",
        "-o",
        out.to_str().unwrap(),
    ];
    let quick = ["--timeout", "1s", "--retries", "1"];
    let line = common::fails(&netecho(&[&get[..], &quick[..]].concat(), b""), 1);
    assert!(line.contains("no answer from the server"), "{line}");
    server.wait_log("refused by --deny 127.0.0.1/32");
}
