//! Datagram services against one forged datagram that would start an endless loop: a source
//! that is the server's own address, and two echo servers made to answer each other. The
//! forged source is written by hand in an IPv4 header on a raw socket (root only).

mod common;

use std::net::Ipv4Addr;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{Server, can_open_raw, output_within, summary};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

/// IPPROTO_RAW: the socket sends whole IPv4 packets, header included (IP_HDRINCL).
const IPPROTO_RAW: i32 = 255;

/// Sends one UDP datagram on loopback as if it came from `from_port` on 127.0.0.1.
fn forge(from_port: u16, to_port: u16, payload: &[u8]) {
    let sock = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::from(IPPROTO_RAW)))
        .expect("raw socket");
    let udp_len = 8 + payload.len();
    let mut packet = vec![0x45, 0];
    packet.extend_from_slice(&((20 + udp_len) as u16).to_be_bytes());
    // Identification, fragment offset, TTL 64, protocol 17 (UDP), checksum left to the kernel.
    packet.extend_from_slice(&[0, 0, 0, 0, 64, 17, 0, 0]);
    packet.extend_from_slice(&[127, 0, 0, 1, 127, 0, 0, 1]);
    packet.extend_from_slice(&from_port.to_be_bytes());
    packet.extend_from_slice(&to_port.to_be_bytes());
    // UDP checksum 0: none, which IPv4 allows.
    packet.extend_from_slice(&(udp_len as u16).to_be_bytes());
    packet.extend_from_slice(&[0, 0]);
    packet.extend_from_slice(payload);
    let to = SockAddr::from(std::net::SocketAddr::from((Ipv4Addr::LOCALHOST, to_port)));
    sock.send_to(&packet, &to)
        .expect("send the forged datagram");
}

fn udp_echo() -> Server {
    Server::start(&["--proto", "udp", "--addr", "127.0.0.1:0", "-v"])
}

#[test]
fn a_datagram_from_the_servers_own_address_is_not_answered() {
    if !can_open_raw("a_datagram_from_the_servers_own_address_is_not_answered") {
        return;
    }
    let server = udp_echo();
    let port = server.port();
    forge(port, port, b"who is there");
    server.wait_log("the server's own address");
    let (_, out, log) = server.stop("TERM");
    let (_, _, messages, _, _) = summary(&out);
    assert_eq!(messages, 0, "the server answered itself; log:\n{log}");
}

#[test]
fn a_datagram_to_the_wildcard_from_its_own_port_on_loopback_is_not_answered() {
    if !can_open_raw("a_datagram_to_the_wildcard_from_its_own_port_on_loopback_is_not_answered") {
        return;
    }
    let server = Server::start(&["--proto", "udp", "--addr", "0.0.0.0:0"]);
    let port = server.port();
    forge(port, port, b"who is there");
    server.wait_log("the server's own address");
    let (_, out, log) = server.stop("TERM");
    assert_eq!(
        summary(&out).2,
        0,
        "the server answered itself; log:\n{log}"
    );
}

#[test]
fn two_echo_servers_made_to_answer_each_other_stop() {
    if !can_open_raw("two_echo_servers_made_to_answer_each_other_stop") {
        return;
    }
    let (a, b) = (udp_echo(), udp_echo());
    forge(a.port(), b.port(), b"ping-pong");
    // One of them sees its own reply come back again and again, and drops it.
    common::eventually("a reflected reply dropped", || {
        let seen = |s: &Server| s.stderr().contains("its own reply");
        (seen(&a) || seen(&b)).then_some(())
    });
    let (_, out_a, log_a) = a.stop("TERM");
    let (_, out_b, log_b) = b.stop("TERM");
    // Each server answers at most one streak (1000 repeats) before it drops one.
    let total = summary(&out_a).2 + summary(&out_b).2;
    assert!(
        total <= 2 * 1000 + 2,
        "{total} replies between two servers; logs:\n{log_a}\n{log_b}"
    );
}

/// Two echo servers made to answer each other with several payloads in turn (each forged
/// datagram puts one more in the loop): a server drops one datagram after every 1000 in a
/// row that repeat what it recently answered, so each payload leaves the loop in its turn,
/// under every model.
#[test]
fn two_echo_servers_made_to_answer_each_other_with_payloads_in_turn_stop() {
    if !can_open_raw("two_echo_servers_made_to_answer_each_other_with_payloads_in_turn_stop") {
        return;
    }
    for model in ["event", "threads", "uring", "fork", "iterative"] {
        for payloads in [2, 3, 8] {
            payloads_in_turn_stop(model, payloads);
        }
    }
}

fn payloads_in_turn_stop(model: &str, payloads: usize) {
    let start = || {
        Server::start(&[
            "--proto",
            "udp",
            "--addr",
            "127.0.0.1:0",
            "--model",
            model,
            "-v",
        ])
    };
    let (a, b) = (start(), start());
    for n in 0..payloads {
        forge(a.port(), b.port(), format!("PAYLOAD {n}").as_bytes());
    }
    // Each dropped datagram is one payload out of the loop (a line each, at -v).
    let dropped = "-byte datagram: its sender's last datagrams";
    let what = format!("{model}, {payloads} payloads: each dropped once");
    common::eventually(&what, || {
        let seen = a.stderr().matches(dropped).count() + b.stderr().matches(dropped).count();
        (seen >= payloads).then_some(())
    });
    let (_, out_a, log_a) = a.stop("TERM");
    let (_, out_b, log_b) = b.stop("TERM");
    // Each payload is answered at most one streak (1000, the datagrams are forged from
    // this host's loopback) by each server before it goes.
    let total = summary(&out_a).2 + summary(&out_b).2;
    let bound = 2 * (1000 + 1) * payloads as u64;
    assert!(
        total <= bound,
        "{what}: {total} replies between two servers; logs:\n{log_a}\n{log_b}"
    );
}

#[test]
fn exec_over_udp_does_not_run_a_program_for_its_own_address() {
    if !can_open_raw("exec_over_udp_does_not_run_a_program_for_its_own_address") {
        return;
    }
    let server = Server::start(&[
        "--proto",
        "udp",
        "--addr",
        "127.0.0.1:0",
        "--exec",
        "cat",
        "-v",
    ]);
    let port = server.port();
    forge(port, port, b"loop");
    let log = server.wait_log("the server's own address");
    assert!(!log.contains("started"), "a program ran; log:\n{log}");
}

#[test]
fn a_relay_whose_upstream_is_its_own_listening_address_is_refused() {
    for (proto, from_ip, to_host) in [
        ("udp", "127.0.0.1", "127.0.0.1"),
        ("udp", "0.0.0.0", "127.0.0.1"),
        ("tcp", "127.0.0.1", "localhost"),
    ] {
        // A port free a moment ago may be taken by another test meanwhile: then another.
        let mut tries = 0;
        let err = loop {
            let free = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            let port = free.local_addr().unwrap().port();
            drop(free);
            let (from, to) = (
                format!("{proto}://{from_ip}:{port}"),
                format!("{proto}://{to_host}:{port}"),
            );
            let child = Command::new(common::bin())
                .args(["relay", &from, &to])
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            let out = output_within(child, "relay to itself", common::STEP);
            let err = String::from_utf8_lossy(&out.stderr).into_owned();
            tries += 1;
            if err.contains("in use") && tries < 5 {
                continue;
            }
            assert_eq!(out.status.code(), Some(2), "{from} -> {to}: {err}");
            break err;
        };
        assert!(
            err.contains("itself"),
            "{proto} {from_ip} -> {to_host}: {err}"
        );
    }
}

/// The loop breaker looks for replies coming back; a client sending one lower-case message
/// many times in a row (a burst of `hello`) is never one, and every message is answered.
#[test]
fn a_client_repeating_one_message_is_answered_every_time() {
    let server = udp_echo();
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.connect(("127.0.0.1", server.port())).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = [0u8; 16];
    for n in 0..2500 {
        sock.send(b"hello").unwrap();
        let got = sock
            .recv(&mut buf)
            .unwrap_or_else(|e| panic!("message {n} got no reply ({e}):\n{}", server.stderr()));
        assert_eq!(&buf[..got], b"HELLO");
    }
    assert!(
        !server.stderr().contains("its own reply"),
        "{}",
        server.stderr()
    );
}
