//! Raw IP echo through the real binary over loopback: IPv4 and IPv6, with and without a
//! hand-built IPv4 header, packets without the netecho magic ignored and counted, and the
//! one-line error without CAP_NET_RAW. Raw sockets need root: each test says when it skips.
//!
//! Every raw socket of a protocol sees every packet of it, so each test uses an IP protocol
//! number of its own (from the unassigned 143-252 and the experimental 253-254) and tests
//! running at once never answer each other's requests.

mod common;

use std::net::SocketAddr;

use common::{Server, can_drop_net_raw, can_open_raw, fails, netecho, ok, run, without_net_raw};

fn serve_raw(addr: &str, ip_proto: u8, extra: &[&str]) -> Server {
    let n = ip_proto.to_string();
    let mut args = vec!["--proto", "raw", "--addr", addr, "--ip-proto", &n];
    args.extend_from_slice(extra);
    Server::start(&args)
}

/// `netecho send --ip-proto N FLAGS URL WORDS` to `server`; its stdout.
fn send(server: &Server, ip_proto: u8, flags: &[&str], words: &[&str], stdin: &[u8]) -> String {
    let n = ip_proto.to_string();
    let url = server.url();
    let mut args = vec!["send", "--ip-proto", &n];
    args.extend_from_slice(flags);
    args.push(&url);
    args.extend_from_slice(words);
    ok(&netecho(&args, stdin))
}

#[test]
fn raw_echo_over_ipv4_and_ipv6() {
    if !can_open_raw("raw_echo_over_ipv4_and_ipv6") {
        return;
    }
    for (addr, ip_proto, shown) in [("127.0.0.1", 201, "raw 127.0.0.1"), ("::1", 202, "raw ::1")] {
        let server = serve_raw(addr, ip_proto, &[]);
        assert_eq!(format!("{} {}", server.proto, server.addr), shown);
        assert_eq!(
            send(&server, ip_proto, &[], &["hello", "raw"], b""),
            "HELLO RAW\n"
        );
        // Piped lines: one packet each, one reply line each; bytes other than ASCII
        // letters come back as they went.
        let piped = send(
            &server,
            ip_proto,
            &[],
            &[],
            "one\nZwei drei\nüber 42\n".as_bytes(),
        );
        assert_eq!(piped, "ONE\nZWEI DREI\nüBER 42\n");
        let (status, out, log) = server.stop("TERM");
        assert!(status.success(), "{log}");
        assert!(out.contains("messages 4"), "{out}");
        assert!(log.contains("answered 4 request(s)"), "{log}");
    }
    // The URL forms name the family: raw6:// takes IPv6 only.
    let server = serve_raw("::1", 203, &[]);
    let out = ok(&netecho(
        &["send", "--ip-proto", "203", "raw6://[::1]", "six"],
        b"",
    ));
    assert_eq!(out, "SIX\n");
    drop(server);
}

#[test]
fn raw_echo_with_a_hand_built_ipv4_header() {
    if !can_open_raw("raw_echo_with_a_hand_built_ipv4_header") {
        return;
    }
    let server = serve_raw("127.0.0.1", 204, &["-v"]);
    let hdrincl = ["--hdrincl", "--ttl", "7"];
    let out = send(&server, 204, &hdrincl, &["built", "by", "hand"], b"");
    assert_eq!(out, "BUILT BY HAND\n");
    // The server's -v line shows the header as it arrived: the TTL we wrote, not the
    // kernel's 64, and the protocol we chose.
    let log = server.wait_log("ttl 7 protocol 204");
    assert!(log.contains("IPv4 version 4 ihl 5 (20 bytes)"), "{log}");
    assert!(log.contains("netecho request id"), "{log}");
    // Without --hdrincl, --ttl sets IP_TTL and the kernel writes it into its header.
    assert_eq!(send(&server, 204, &["--ttl", "9"], &["k"], b""), "K\n");
    server.wait_log("ttl 9 protocol 204");
    // A -v client shows the reply's header, which the server's kernel built.
    let n = "204".to_string();
    let url = server.url();
    let out = netecho(
        &["-v", "send", "--ip-proto", &n, "--hdrincl", &url, "x"],
        b"",
    );
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(ok(&out), "X\n");
    assert!(err.contains("built the header: IPv4"), "{err}");
    assert!(err.contains("netecho reply id"), "{err}");
    // --explain names the calls the lesson names: a raw socket for the protocol, and
    // IP_HDRINCL before anything is sent.
    let out = netecho(
        &[
            "send",
            "--explain",
            "--ip-proto",
            &n,
            "--hdrincl",
            &url,
            "y",
        ],
        b"",
    );
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(ok(&out), "Y\n");
    let socket = err.find("socket(AF_INET, SOCK_RAW, 204) = fd").expect(&err);
    let hdrincl = err.find(", IP_HDRINCL, 1) = 0").expect(&err);
    let send = err.find("send(fd ").expect(&err);
    assert!(socket < hdrincl && hdrincl < send, "{err}");
}

#[test]
fn hdrincl_is_ipv4_only_and_raw_addresses_have_no_ports() {
    let line = fails(&netecho(&["send", "--hdrincl", "raw6://::1", "x"], b""), 2);
    assert!(line.contains("--hdrincl builds an IPv4 header"), "{line}");
    let line = fails(
        &netecho(&["send", "--hdrincl", "udp://127.0.0.1:9", "x"], b""),
        2,
    );
    assert!(line.contains("--hdrincl applies to --proto raw"), "{line}");
    let line = fails(&netecho(&["send", "raw://127.0.0.1:80", "x"], b""), 2);
    assert!(line.contains("no ports"), "{line}");
    let line = fails(&netecho(&["serve", "--addr", "raw6://127.0.0.1"], b""), 2);
    assert!(line.contains("needs an IPv6 address"), "{line}");
    let line = fails(
        &netecho(&["serve", "--proto", "tcp", "--ip-proto", "9"], b""),
        2,
    );
    assert!(line.contains("--ip-proto applies to --proto raw"), "{line}");
    for cmd in [
        &["bench", "--proto", "raw"][..],
        &["get", "raw://127.0.0.1", "f"][..],
    ] {
        let line = fails(&netecho(cmd, b""), 2);
        assert!(line.contains("does not work over raw sockets"), "{line}");
    }
}

/// A raw socket of the test's own, to send what netecho never would.
fn raw_sender(v6: bool, ip_proto: u8) -> socket2::Socket {
    let domain = if v6 {
        socket2::Domain::IPV6
    } else {
        socket2::Domain::IPV4
    };
    socket2::Socket::new(domain, socket2::Type::RAW, Some(i32::from(ip_proto).into()))
        .expect("raw socket")
}

#[test]
fn packets_without_the_magic_are_ignored_and_counted() {
    if !can_open_raw("packets_without_the_magic_are_ignored_and_counted") {
        return;
    }
    for (addr, ip_proto) in [("127.0.0.1", 205u8), ("::1", 206)] {
        let server = serve_raw(addr, ip_proto, &["-v"]);
        let sender = raw_sender(addr.contains(':'), ip_proto);
        let to: SocketAddr = SocketAddr::new(addr.parse().unwrap(), 0);
        // Wrong magic, a packet too short for the header, and the magic with an unknown type.
        for payload in [
            &b"NECX\x01\x00\x00\x01\x00\x00\x00\x01hello"[..],
            b"NEC",
            b"NECH\x09\x00\x00\x01\x00\x00\x00\x01hello",
        ] {
            sender.send_to(payload, &to.into()).expect("sendto");
        }
        // Sent after them, so answered after they were read: the server still serves.
        assert_eq!(
            send(&server, ip_proto, &[], &["still", "here"], b""),
            "STILL HERE\n"
        );
        let (status, out, log) = server.stop("TERM");
        assert!(status.success(), "{log}");
        assert!(out.contains("messages 1,"), "{out}");
        assert!(
            log.contains(
                "answered 1 request(s); ignored 2 packet(s) without the netecho magic; \
                 dropped 1 malformed"
            ),
            "{log}"
        );
        assert!(log.contains("no netecho magic"), "{log}");
    }
}

#[test]
fn without_cap_net_raw_one_line_says_what_is_missing() {
    let test = "without_cap_net_raw_one_line_says_what_is_missing";
    if !can_drop_net_raw(test) {
        return;
    }
    let cases: [&[&str]; 3] = [
        &["serve", "--proto", "raw", "--addr", "127.0.0.1"],
        &["send", "--proto", "raw", "127.0.0.1", "x"],
        &["send", "raw6://::1", "x"],
    ];
    for args in cases {
        let out = run(&mut without_net_raw(args), b"");
        let line = fails(&out, 1);
        for part in [
            "EPERM",
            "CAP_NET_RAW",
            "run as root",
            "setcap cap_net_raw+ep",
        ] {
            assert!(line.contains(part), "{part:?} missing from: {line}");
        }
        assert!(out.stdout.is_empty(), "no listening line without a socket");
    }
}

/// python3: a raw IPv4 echo server for the protocol argv[1] that is not netecho's, as a
/// student writes one: recvfrom, the payload upper-cased, sendto, header and all. (Its own
/// replies, which it reads too on loopback, are upper-case already: it leaves them alone.)
const UPPER_RAW: &str = r#"
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, int(sys.argv[1]))
print("ready", flush=True)
while True:
    data, (addr, _) = s.recvfrom(65535)
    payload = data[(data[0] & 15) * 4:]
    if payload.upper() != payload:
        s.sendto(payload.upper(), (addr, 0))
"#;

#[test]
fn replies_without_the_netecho_header_are_counted_and_the_server_named() {
    let test = "replies_without_the_netecho_header_are_counted_and_the_server_named";
    if !can_open_raw(test) || !common::have("python3", test) {
        return;
    }
    let mut child = std::process::Command::new("python3")
        .args(["-c", UPPER_RAW, "207"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3");
    let mut ready = String::new();
    let stdout = child.stdout.take().unwrap();
    let _server = common::Peer(child);
    std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut ready).unwrap();
    assert_eq!(ready, "ready\n");
    let out = netecho(
        &[
            "send",
            "--ip-proto",
            "207",
            "--retries",
            "2",
            "raw://127.0.0.1",
            "hello",
        ],
        b"",
    );
    let line = fails(&out, 1);
    // An answer to each of the 3 tries, however late within the last try's wait: at least one.
    let (count, rest) = line
        .split_once(" packet")
        .and_then(|(head, rest)| Some((head.rsplit(' ').next()?.parse::<u32>().ok()?, rest)))
        .unwrap_or_else(|| panic!("no count of packets: {line}"));
    assert!((1..=3).contains(&count), "{line}");
    assert!(
        rest.contains(
            "of protocol 207 came back without netecho's reply header (type 2): the server is \
             not netecho's?"
        ),
        "{line}"
    );
    assert!(line.contains("README 'Raw IP'"), "{line}");
    assert!(!line.contains("is `netecho serve"), "{line}");
}

/// A raw request's source is never proven: as udp's, its replies are limited per second
/// (`--rate-limit`), so a forged source is answered no faster, and the stop line counts
/// what went unanswered.
#[test]
fn a_source_over_its_replies_per_second_is_left_unanswered() {
    if !can_open_raw("a_source_over_its_replies_per_second_is_left_unanswered") {
        return;
    }
    let ip_proto = 208;
    let server = serve_raw("127.0.0.1", ip_proto, &["--rate-limit", "3"]);
    let sender = raw_sender(false, ip_proto);
    let to: SocketAddr = "127.0.0.1:0".parse().unwrap();
    for seq in 1..=20u8 {
        let request = [
            b"NECH\x01\x00\x00\x01\x00\x00\x00".as_slice(),
            &[seq],
            b"hi",
        ]
        .concat();
        sender.send_to(&request, &to.into()).expect("sendto");
    }
    // A request sent after them is read after them: all 20 were judged by then (answered
    // or not: the run is well within the limit's refills either way).
    let _ = netecho(&["send", "--ip-proto", "208", &server.url(), "x"], b"");
    let (status, _, log) = server.stop("TERM");
    assert!(status.success(), "{log}");
    let unanswered = log
        .split("left ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse::<u32>().ok())
        .unwrap_or(0);
    assert!(
        unanswered >= 10,
        "expected most of 20 requests over 3 a second unanswered:\n{log}"
    );
}

/// An idle raw server wakes each second to forget old peers; `--explain` narrates the calls it
/// makes, and it makes no read on such a tick: a recvmsg answered EAGAIN once a second would
/// show a read retried with nothing that woke it.
#[test]
fn an_idle_raw_server_reads_only_when_something_came() {
    if !can_open_raw("an_idle_raw_server_reads_only_when_something_came") {
        return;
    }
    let server = serve_raw("127.0.0.1", 229, &["--explain"]);
    // Three ticks at least, however loaded the machine: each is a poll of one second.
    std::thread::sleep(std::time::Duration::from_millis(3500));
    assert_eq!(send(&server, 229, &[], &["tick"], b""), "TICK\n");
    let (status, _, log) = server.stop("TERM");
    assert!(status.success(), "{log}");
    // A drain after a wake ends at EAGAIN; a tick reads nothing.
    let woken = log.matches("(fd 4 readable)").count();
    assert!(woken >= 1, "the request's wake is narrated: {log}");
    assert!(log.matches("EAGAIN").count() <= woken, "{log}");
}
