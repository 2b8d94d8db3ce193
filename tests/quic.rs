//! QUIC (`--proto quic`): netecho's client and server with each other, a stream per message,
//! one stream per connection (--framing), datagrams (--quic-datagrams), files, bench, every
//! server model; and with a QUIC stack that is not netecho's (Python's aioquic,
//! tests/peers/quic_peer.py) both ways. Bad input: garbage datagrams, a plain udp client, a
//! wrong pin, a server that does not speak QUIC.

mod common;

use std::io::{BufRead, BufReader};
use std::net::UdpSocket;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{Server, fails, netecho, ok, openssl_certs, openssl_fingerprint, tempdir};
use std::path::Path;

/// A quic echo server on `addr` with `extra` flags, and the fingerprint its clients pin.
fn serve(addr: &str, extra: &[&str]) -> (Server, String) {
    let mut args = vec!["--proto", "quic", "--addr", addr];
    args.extend_from_slice(extra);
    let server = Server::start(&args);
    let pin = server.pin();
    (server, pin)
}

/// `netecho send --proto quic ADDR --pin PIN ARGS`, with `stdin`.
fn send(server: &Server, pin: &str, args: &[&str], stdin: &[u8]) -> std::process::Output {
    let mut all = vec!["send", "--proto", "quic", &server.addr, "--pin", pin];
    all.extend_from_slice(args);
    netecho(&all, stdin)
}

#[test]
fn a_message_per_stream_over_ipv4_and_ipv6() {
    for addr in ["127.0.0.1:0", "[::1]:0"] {
        let (server, pin) = serve(addr, &[]);
        assert!(server.addr.starts_with(&addr[..3]), "{}", server.addr);
        assert_eq!(
            ok(&send(&server, &pin, &["hello", "quic"], b"")),
            "HELLO QUIC\n"
        );
        let burst = ok(&send(&server, &pin, &["--burst", "20", "abc"], b""));
        assert_eq!(burst, "ABC\n".repeat(20), "each message on its own stream");
        let piped = ok(&send(&server, &pin, &[], b"one\ntwo\n"));
        assert_eq!(piped, "ONE\nTWO\n");
        server.wait_log("messages; closed by peer");
    }
}

#[test]
fn a_dual_stack_server_answers_ipv4_and_ipv6_clients() {
    let (server, pin) = serve("[::]:0", &[]);
    for host in ["127.0.0.1", "[::1]"] {
        let to = format!("{host}:{}", server.port());
        let out = netecho(&["send", "--proto", "quic", &to, "--pin", &pin, "hi"], b"");
        assert_eq!(ok(&out), "HI\n", "{to}");
    }
    // Alive and well: an IPv4 datagram's control messages fit what quinn reads them into.
    assert!(!server.stderr().contains("panicked"), "{}", server.stderr());
}

#[test]
fn framing_carries_frames_on_one_stream() {
    for framing in ["line", "length"] {
        let (server, pin) = serve("127.0.0.1:0", &["--framing", framing]);
        let out = send(&server, &pin, &["--framing", framing], b"first\nsecond\n");
        assert_eq!(ok(&out), "FIRST\nSECOND\n", "--framing {framing}");
        let log = server.wait_log("closed by peer");
        assert!(log.contains("2 frames"), "{log}");
    }
}

#[test]
fn quic_datagrams_carry_messages_and_refuse_what_does_not_fit() {
    let (server, pin) = serve("127.0.0.1:0", &["--quic-datagrams"]);
    let out = send(&server, &pin, &["--quic-datagrams", "a", "datagram"], b"");
    assert_eq!(ok(&out), "A DATAGRAM\n");
    let big = "x".repeat(5000);
    let out = send(&server, &pin, &["--quic-datagrams", &big], b"");
    let line = fails(&out, 1);
    assert!(line.contains("does not fit"), "{line}");
    let out = netecho(
        &[
            "send",
            "--proto",
            "tcp",
            "--quic-datagrams",
            "127.0.0.1:1",
            "x",
        ],
        b"",
    );
    assert!(fails(&out, 2).contains("--quic-datagrams applies to --proto quic"));
}

#[test]
fn datagrams_to_a_server_without_them_are_refused_at_the_handshake() {
    let (server, pin) = serve("127.0.0.1:0", &[]);
    let out = send(&server, &pin, &["--quic-datagrams", "x"], b"");
    // Said at the handshake, not after the retries of a datagram that was never answered.
    let line = fails(&out, 1);
    assert!(line.contains("takes no QUIC datagrams"), "{line}");
}

#[test]
fn files_go_over_one_quic_stream() {
    let dir = tempdir();
    let body: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(dir.path().join("served.bin"), &body).unwrap();
    let dir_arg = dir.path().to_str().unwrap();
    let (server, pin) = serve("127.0.0.1:0", &["--files", dir_arg, "--upload"]);
    let got = dir.path().join("got.bin");
    let url = format!("quic://{}", server.addr);
    let get = [
        "get",
        &url,
        "served.bin",
        "-o",
        got.to_str().unwrap(),
        "--pin",
        &pin,
    ];
    ok(&netecho(&get, b""));
    assert_eq!(std::fs::read(&got).unwrap(), body);
    let put = [
        "put",
        &url,
        got.to_str().unwrap(),
        "back.bin",
        "--pin",
        &pin,
    ];
    ok(&netecho(&put, b""));
    assert_eq!(std::fs::read(dir.path().join("back.bin")).unwrap(), body);
}

#[test]
fn bench_measures_quic_as_any_protocol() {
    let (server, pin) = serve("127.0.0.1:0", &[]);
    let args = [
        "bench",
        "--proto",
        "quic",
        &server.addr,
        "--pin",
        &pin,
        "-n",
        "200",
        "-P",
        "2",
        "--window",
        "8",
        "--format",
        "csv",
    ];
    let csv = ok(&netecho(&args, b""));
    assert!(csv.contains("quic"), "{csv}");
    // Bench starting its own quic server pins the certificate that server printed.
    let own = ["bench", "--proto", "quic", "-n", "100", "--format", "csv"];
    let csv = ok(&netecho(&own, b""));
    assert!(csv.lines().count() >= 2, "{csv}");
}

#[test]
fn every_server_model_serves_quic_connections() {
    for model in ["iterative", "threads", "event", "fork"] {
        let (server, pin) = serve("127.0.0.1:0", &["--model", model]);
        for round in 0..2 {
            let out = send(&server, &pin, &[&format!("{model}{round}")], b"");
            assert_eq!(ok(&out), format!("{}{round}\n", model.to_uppercase()));
        }
    }
}

/// Under --model fork each QUIC client has a process of its own, which ends with its
/// client: its slot comes back, so clients past --max-conns, one after another, are all
/// answered, and no child outlives its client.
#[test]
fn fork_children_end_with_their_quic_clients_and_give_their_slots_back() {
    let (server, pin) = serve("127.0.0.1:0", &["--model", "fork", "--max-conns", "3"]);
    for n in 0..5 {
        let out = send(&server, &pin, &[&format!("hi{n}")], b"");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            format!("HI{n}\n"),
            "client {n}: {}\nserver log:\n{}",
            String::from_utf8_lossy(&out.stderr),
            server.stderr()
        );
    }
    // The QUIC endpoint's own process is the one child left once every client has gone.
    common::eventually("every client's child ended", || {
        (children(server.pid()).len() <= 1).then_some(())
    });
}

#[test]
fn a_server_whose_quic_endpoint_ended_ends_with_one_line_not_a_line_a_second() {
    let (mut server, _pin) = serve("127.0.0.1:0", &["--model", "fork"]);
    // Under fork the endpoint is the server's one child before any client came.
    let endpoint = common::eventually("the endpoint's process", || {
        let kids = children(server.pid());
        (kids.len() == 1).then(|| kids[0])
    });
    let killed = Command::new("kill")
        .args(["-KILL", &endpoint.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let (status, log) = server.wait_exit();
    assert_eq!(status.code(), Some(1), "{log}");
    assert_eq!(
        log.matches("the QUIC endpoint ended").count(),
        1,
        "one line:\n{log}"
    );
    assert!(log.contains("restart the server"), "{log}");
}

/// The child processes of `pid` (from /proc/PID/task/*/children).
fn children(pid: u32) -> Vec<u32> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    tasks
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("children")).ok())
        .flat_map(|c| {
            c.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect::<Vec<u32>>()
        })
        .collect()
}

#[test]
fn a_wrong_pin_is_one_line_on_each_side() {
    let (server, pin) = serve("127.0.0.1:0", &[]);
    let wrong = format!(
        "{}{}",
        if pin.starts_with('0') { "1" } else { "0" },
        &pin[1..]
    );
    let out = send(&server, &wrong, &["hi"], b"");
    let line = fails(&out, 1);
    assert!(line.contains("fingerprint"), "{line}");
    let log = server.wait_log("handshake failed");
    // The server says what to check, not the client's TLS stack's debug text.
    assert!(
        log.contains("does not trust this server's certificate"),
        "{log}"
    );
    assert!(!log.contains("PinMismatch"), "{log}");
    assert_eq!(ok(&send(&server, &pin, &["still"], b"")), "STILL\n");
    let out = netecho(
        &[
            "send",
            "--proto",
            "quic",
            &server.addr,
            "--tls-version",
            "1.2",
            "x",
        ],
        b"",
    );
    assert!(fails(&out, 2).contains("TLS 1.3"));
}

/// The certificate rules of `--tls`, in its words: an expired certificate is named at the
/// server's start and refused by a client checking it, with the date (not rustls' UNIX
/// seconds); a wrong name lists the names the certificate has; an untrusted one shows the
/// fingerprint to pin; the server's log says what the client's alert means.
#[test]
fn certificate_refusals_read_as_over_tls_on_both_sides() {
    if !common::have("openssl", "quic_certificate_refusals") {
        return;
    }
    let dir = tempdir();
    let (ca, cert, key) = openssl_certs(dir.path(), "good", false);
    let (old_ca, old, old_key) = openssl_certs(dir.path(), "old", true);
    let (cert, key, old, old_key) = (
        cert.to_str().unwrap(),
        key.to_str().unwrap(),
        old.to_str().unwrap(),
        old_key.to_str().unwrap(),
    );
    let quic = ["--proto", "quic", "--addr", "127.0.0.1:0"];
    let expired = Server::start(&[&quic[..], &["--cert", old, "--key", old_key]].concat());
    let warned = expired.wait_log("WARN");
    assert!(
        warned.contains("certificate of --cert expired on 20"),
        "{warned}"
    );
    let old_ca = old_ca.to_str().unwrap();
    let out = netecho(
        &[
            "send",
            "--proto",
            "quic",
            "--ca",
            old_ca,
            &expired.addr,
            "x",
        ],
        b"",
    );
    let line = fails(&out, 1);
    // openssl's certificate ends before it begins (-days -1), a date webpki does not give.
    assert!(line.contains("certificate has expired"), "{line}");
    assert!(
        line.contains("renew it") && !line.contains("UNIX"),
        "{line}"
    );
    let log = expired.wait_log("handshake failed");
    assert!(
        log.contains("expired or not yet valid (alert certificate_expired)"),
        "{log}"
    );
    assert!(!log.contains("--pin or --ca must match"), "{log}");

    let good = Server::start(&[&quic[..], &["--cert", cert, "--key", key]].concat());
    let ca = ca.to_str().unwrap();
    let named = ["send", "--proto", "quic", "--ca", ca, &good.addr];
    let out = netecho(
        &[&named[..], &["--server-name", "nope.example", "x"]].concat(),
        b"",
    );
    let line = fails(&out, 1);
    assert!(
        line.contains("localhost") && line.contains("not nope.example"),
        "{line}"
    );
    assert!(!line.contains("DnsName"), "{line}");
    good.wait_log("alert bad_certificate");
    // Trusting another CA: the refusal shows the fingerprint met, which the server printed.
    let out = netecho(
        &["send", "--proto", "quic", "--ca", old_ca, &good.addr, "x"],
        b"",
    );
    let line = fails(&out, 1);
    let fingerprint = openssl_fingerprint(Path::new(cert));
    let fingerprint = fingerprint.as_str();
    assert!(line.contains(&format!("--pin {fingerprint}")), "{line}");
    // -v shows what the handshake settled and the certificate met, as over --tls.
    let out = netecho(
        &[
            "-v",
            "send",
            "--proto",
            "quic",
            "--pin",
            fingerprint,
            &good.addr,
            "v",
        ],
        b"",
    );
    assert_eq!(ok(&out), "V\n");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains(&format!(
            "ALPN netecho, peer certificate CN=localhost (SHA-256 {fingerprint})"
        )),
        "{said}"
    );
}

/// A QUIC client offering an ALPN protocol netecho does not speak (aioquic's h3) is told
/// apart in the server's log in netecho's words, not as "error 120".
#[test]
fn a_client_offering_another_alpn_is_named_in_the_servers_log() {
    if !common::have_aioquic("a_client_offering_another_alpn_is_named_in_the_servers_log") {
        return;
    }
    let (server, _) = serve("127.0.0.1:0", &[]);
    let port = server.port().to_string();
    let out = peer(&["client", "127.0.0.1", &port, "streams", "alpn=h3", "x"]);
    assert!(!out.status.success());
    let log = server.wait_log("handshake failed");
    assert!(
        log.contains("a QUIC client must offer \"netecho\""),
        "{log}"
    );
    assert!(!log.contains("error 120"), "{log}");
}

/// A QUIC client to a port nothing listens on hears the kernel's ICMP port unreachable and
/// says so, in udp's words, rather than waiting out its handshake's deadline.
#[test]
fn a_port_nothing_listens_on_is_named_from_the_icmp_port_unreachable() {
    for host in ["127.0.0.1", "[::1]"] {
        let closed = UdpSocket::bind(format!("{host}:0")).unwrap();
        let to = closed.local_addr().unwrap().to_string();
        drop(closed);
        for command in ["send", "get"] {
            let out = netecho(&[command, "--proto", "quic", "--insecure", &to, "x"], b"");
            let line = fails(&out, 1);
            assert!(
                line.contains("nothing is listening there"),
                "{command} {to}: {line}"
            );
            assert!(
                line.contains("ICMP port unreachable"),
                "{command} {to}: {line}"
            );
        }
    }
}

#[test]
fn garbage_and_plain_udp_at_a_quic_port_are_said_once_and_others_are_served() {
    let (server, pin) = serve("127.0.0.1:0", &[]);
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    for _ in 0..5 {
        sock.send_to(b"\x00garbage", &server.addr).unwrap();
    }
    let log = server.wait_log("that is not QUIC");
    assert_eq!(
        log.matches("that is not QUIC").count(),
        1,
        "once per sender:\n{log}"
    );
    let udp = netecho(
        &[
            "send",
            "--proto",
            "udp",
            "--timeout",
            "200ms",
            "--retries",
            "0",
            &server.addr,
            "plain",
        ],
        b"",
    );
    assert!(fails(&udp, 1).contains("no reply"));
    server.wait_log_count("that is not QUIC", 2);
    assert_eq!(ok(&send(&server, &pin, &["served"], b"")), "SERVED\n");
}

#[test]
fn garbage_from_many_ports_is_said_at_most_ten_lines_a_second() {
    let (server, _pin) = serve("127.0.0.1:0", &[]);
    let started = std::time::Instant::now();
    for _ in 0..300 {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.send_to(b"\x00garbage", &server.addr).unwrap();
    }
    // A sender after a pause is said, with the count of those left out: a lone sender
    // every 250 ms from 1.1 s on, until the server (maybe still behind with the flood on
    // a loaded machine) has begun a second of its own and said one.
    std::thread::sleep(Duration::from_millis(1100));
    let deadline = std::time::Instant::now() + common::STEP;
    let log = loop {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.send_to(b"\x00garbage", &server.addr).unwrap();
        std::thread::sleep(Duration::from_millis(250));
        let log = server.stderr();
        if log.contains("more like it left out of the log") {
            break log;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no line with the count left out:\n{log}"
        );
    };
    // At most ten lines in each second the flood and the senders after it took.
    let seconds = started.elapsed().as_secs() + 1;
    let lines = log.matches("that is not QUIC").count() as u64;
    assert!(lines <= 10 * (seconds + 1), "{lines} lines:\n{log}");
}

#[test]
fn a_server_that_does_not_speak_quic_ends_the_handshake_at_its_deadline() {
    let udp = Server::start(&["--proto", "udp", "--addr", "127.0.0.1:0"]);
    let out = netecho(
        &["send", "--proto", "quic", &udp.addr, "--insecure", "hello"],
        b"",
    );
    let line = fails(&out, 1);
    assert!(line.contains("no QUIC handshake"), "{line}");
}

#[test]
fn a_client_that_never_finishes_its_handshake_is_dropped_at_the_deadline_and_others_are_served() {
    if !common::have_aioquic(
        "a_client_that_never_finishes_its_handshake_is_dropped_at_the_deadline",
    ) {
        return;
    }
    let (server, pin) = serve("127.0.0.1:0", &[]);
    // A real client's Initial from a socket that then stays silent.
    let mut staller = stall(&server, 1);
    // Served meanwhile, and the stalled handshake ends in one line at the deadline (10 s).
    assert_eq!(ok(&send(&server, &pin, &["meanwhile"], b"")), "MEANWHILE\n");
    let log = server.wait_log("no handshake within");
    assert_eq!(log.matches("no handshake within").count(), 1, "{log}");
    let _ = staller.kill();
    let _ = staller.wait();
    assert_eq!(ok(&send(&server, &pin, &["after"], b"")), "AFTER\n");
}

#[test]
fn an_access_rule_refuses_a_quic_peer_by_its_address() {
    let (server, pin) = serve("127.0.0.1:0", &["--deny", "127.0.0.0/8"]);
    let out = send(&server, &pin, &["hi"], b"");
    assert!(!out.status.success());
    server.wait_log("refused");
}

/// Real clients' Initials sent to `server` from `count` sockets that then stay silent (15 s),
/// each a handshake in progress until the server's deadline (10 s).
fn stall(server: &Server, count: usize) -> Child {
    let (port, count) = (server.port().to_string(), count.to_string());
    let mut staller = Command::new("python3")
        .args([&peer_script(), "stall", "127.0.0.1", &port, &count])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the stalling client");
    let mut line = String::new();
    let _ = BufReader::new(staller.stdout.take().unwrap()).read_line(&mut line);
    assert_eq!(line.trim(), "sent");
    staller
}

/// The aioquic client's exchange of `msg` with `server`: its reply, and the Retry packets it
/// followed (it checks the server's retry_source_connection_id, RFC 9000 section 7.3).
fn retried(server: &Server, pin: &str, msg: &str) -> (String, String) {
    let port = server.port().to_string();
    let pinned = format!("pin={pin}");
    let out = peer(&["retried", "127.0.0.1", &port, "streams", &pinned, msg]);
    let text = ok(&out);
    let (reply, retries) = text.split_once('\n').expect("a reply line");
    (reply.to_string(), retries.trim().to_string())
}

#[test]
fn every_client_proves_its_address_with_a_retry_and_is_then_served() {
    if !common::have_aioquic("every_client_proves_its_address_with_a_retry_and_is_then_served") {
        return;
    }
    let (server, pin) = serve("127.0.0.1:0", &["-v"]);
    let retry_line = "a Retry asks it to prove its address first";
    // netecho's client and aioquic follow the Retry's token and are served as before.
    let out = send(&server, &pin, &["through", "retry"], b"");
    assert_eq!(ok(&out), "THROUGH RETRY\n");
    server.wait_log(retry_line);
    let (reply, retries) = retried(&server, &pin, "aioquic");
    assert_eq!((reply.as_str(), retries.as_str()), ("AIOQUIC", "retries 1"));
    // Handshakes that stall after their Retry hold their place until the deadline, and
    // others are served meanwhile, through a Retry each.
    let mut stalled = stall(&server, 64);
    let (reply, retries) = retried(&server, &pin, "meanwhile");
    assert_eq!(
        (reply.as_str(), retries.as_str()),
        ("MEANWHILE", "retries 1")
    );
    assert_eq!(
        ok(&send(&server, &pin, &["and", "netecho"], b"")),
        "AND NETECHO\n"
    );
    let _ = stalled.kill();
    let _ = stalled.wait();
}

#[test]
fn an_initial_from_an_unproven_address_gets_fewer_bytes_back_than_it_carried() {
    if !common::have_aioquic("an_initial_from_an_unproven_address_gets_fewer_bytes_back") {
        return;
    }
    for addr in ["127.0.0.1:0", "[::1]:0"] {
        let (server, _pin) = serve(addr, &[]);
        let host = server
            .addr
            .rsplit_once(':')
            .unwrap()
            .0
            .trim_matches(['[', ']']);
        let out = peer(&["probe", host, &server.port().to_string()]);
        let line = ok(&out);
        let counts: Vec<usize> = line
            .split_whitespace()
            .filter_map(|w| w.parse().ok())
            .collect();
        let [sent, received] = counts[..] else {
            panic!("{line}");
        };
        // An answer came (the Retry), and no more than the Initial carried.
        assert!(0 < received && received <= sent, "{addr}: {line}");
    }
}

fn peer_script() -> String {
    format!("{}/tests/peers/quic_peer.py", env!("CARGO_MANIFEST_DIR"))
}

/// Runs the aioquic peer with `args` to its end, bounded by [`common::STEP`].
fn peer(args: &[&str]) -> std::process::Output {
    common::run(Command::new("python3").arg(peer_script()).args(args), b"")
}

/// An aioquic server, killed when dropped.
struct PeerServer {
    child: Child,
    port: String,
    pin: String,
}

impl Drop for PeerServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An aioquic server on `host` in `mode` (echo, flood, reset: see quic_peer.py).
fn peer_server(host: &str, mode: &str) -> PeerServer {
    let mut child = Command::new("python3")
        .args([&peer_script(), "server", host, mode])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the aioquic server");
    let line = common::first_line(&mut child).expect("the aioquic server's ready line");
    let mut words = line.split_whitespace();
    assert_eq!(words.next(), Some("ready"), "{line}");
    let port = words.next().expect("port").to_string();
    let pin = words.next().expect("fingerprint").to_string();
    PeerServer { child, port, pin }
}

#[test]
fn an_aioquic_client_exchanges_with_serve() {
    if !common::have_aioquic("an_aioquic_client_exchanges_with_serve") {
        return;
    }
    for (addr, host) in [("127.0.0.1:0", "127.0.0.1"), ("[::1]:0", "::1")] {
        let (server, pin) = serve(addr, &[]);
        let port = server.port().to_string();
        let pinned = format!("pin={pin}");
        let out = peer(&[
            "client", host, &port, "streams", &pinned, "hello", "aioquic",
        ]);
        assert_eq!(ok(&out), "HELLO\nAIOQUIC\n");
        let wrong = format!("pin={}", "AB".repeat(32));
        assert!(
            !peer(&["client", host, &port, "streams", &wrong, "x"])
                .status
                .success()
        );
    }
    let (server, pin) = serve("127.0.0.1:0", &["--quic-datagrams"]);
    let port = server.port().to_string();
    let pinned = format!("pin={pin}");
    let out = peer(&["client", "127.0.0.1", &port, "datagrams", &pinned, "dg"]);
    assert_eq!(ok(&out), "DG\n");
}

/// `serve --exec` judges an aioquic client on this host by the user that owns its UDP
/// socket (sock_diag), as it judges netecho's: the server's own user runs the program, and
/// is refused at the connection once --allow names another user alone.
/// One source holds at most its share of a blocking service's QUIC connections, as of its
/// tcp ones: past it a proven client is refused before its handshake costs the server.
#[test]
fn a_source_past_its_share_of_quic_connections_is_refused_before_the_handshake() {
    if !common::have_aioquic("a_source_past_its_share_of_quic_connections_is_refused") {
        return;
    }
    let (server, _pin) = serve("127.0.0.1:0", &["--exec", "cat"]);
    let port = server.port().to_string();
    // exec's share (a quarter of --max-children, 16) from this user is held; the next two
    // are refused.
    let out = peer(&["hold", "127.0.0.1", &port, "6"]);
    assert_eq!(ok(&out).trim(), "held 4 refused 2");
    server.wait_log("refused, 4 connections from uid");
}

#[test]
fn exec_judges_an_aioquic_client_by_the_user_owning_its_socket() {
    if !common::have_aioquic("exec_judges_an_aioquic_client_by_the_user_owning_its_socket") {
        return;
    }
    let me = nix::unistd::geteuid().as_raw();
    let other = format!("uid:{}", if me == 65534 { 65533 } else { 65534 });
    for (addr, host) in [("127.0.0.1:0", "127.0.0.1"), ("[::1]:0", "::1")] {
        let (server, pin) = serve(addr, &["--exec", "id", "-u"]);
        let (port, pinned) = (server.port().to_string(), format!("pin={pin}"));
        let out = peer(&["client", host, &port, "streams", &pinned, "hello"]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(stdout.contains(&format!("{me}\n")), "{addr}: {stdout}");
        let deny = format!("uid:{me}");
        let (server, pin) = serve(addr, &["--allow", &other, "--deny", &deny, "--exec", "id"]);
        let (port, pinned) = (server.port().to_string(), format!("pin={pin}"));
        let out = peer(&["client", host, &port, "streams", &pinned, "hello"]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(stdout.contains("refused by --deny"), "{addr}: {stdout}");
        let log = server.wait_log(&format!("(uid {me}): refused by --deny uid:{me}"));
        assert!(!log.contains("ran id"), "{addr}: {log}");
    }
}

#[test]
fn an_aioquic_client_verifies_the_certificate_of_cert_and_key() {
    if !common::have_aioquic("an_aioquic_client_verifies_the_certificate_of_cert_and_key") {
        return;
    }
    let dir = tempdir();
    let made = peer(&["cert", dir.path().to_str().unwrap()]);
    let fingerprint = ok(&made).trim().to_string();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let server = Server::start(&[
        "--proto",
        "quic",
        "--addr",
        "127.0.0.1:0",
        "--cert",
        cert.to_str().unwrap(),
        "--key",
        key.to_str().unwrap(),
    ]);
    let ca_file = dir.path().join("ca.pem");
    let ca = format!("ca={}", ca_file.display());
    let port = server.port().to_string();
    let out = peer(&["client", "127.0.0.1", &port, "streams", &ca, "verified"]);
    assert_eq!(ok(&out), "VERIFIED\n");
    // netecho's own client trusts the same CA, and the certificate's fingerprint as a pin.
    let url = format!("quic://{}", server.addr);
    let ca = ca_file.to_str().unwrap();
    let by_ca = netecho(
        &["send", &url, "--ca", ca, "--server-name", "localhost", "ca"],
        b"",
    );
    assert_eq!(ok(&by_ca), "CA\n");
    assert_eq!(
        ok(&netecho(&["send", &url, "--pin", &fingerprint, "pin"], b"")),
        "PIN\n"
    );
}

#[test]
fn send_talks_to_an_aioquic_server() {
    if !common::have_aioquic("send_talks_to_an_aioquic_server") {
        return;
    }
    let peer = peer_server("127.0.0.1", "echo");
    let url = format!("quic://127.0.0.1:{}", peer.port);
    let out = netecho(&["send", &url, "--pin", &peer.pin, "hello", "peer"], b"");
    assert_eq!(ok(&out), "HELLO PEER\n");
    let out = netecho(&["send", &url, "--pin", &peer.pin], b"piped\nlines\n");
    assert_eq!(ok(&out), "PIPED\nLINES\n");
    let out = netecho(
        &[
            "send",
            &url,
            "--pin",
            &peer.pin,
            "--quic-datagrams",
            "datagram",
        ],
        b"",
    );
    assert_eq!(ok(&out), "DATAGRAM\n");
    let out = netecho(&["send", &url, "--pin", &"00".repeat(32), "x"], b"");
    assert!(fails(&out, 1).contains("fingerprint"));
    // The server is still there for the next client.
    std::thread::sleep(Duration::from_millis(50));
    let out = netecho(&["send", &url, "--pin", &peer.pin, "again"], b"");
    assert_eq!(ok(&out), "AGAIN\n");
}

/// A server whose reply stream fails (too long, or reset) ends `send` and `bench` at once
/// with that reason, not a wait for the idle timeout and a word of a closed connection.
#[test]
fn a_failed_reply_stream_ends_send_and_bench_with_its_reason() {
    if !common::have_aioquic("a_failed_reply_stream_ends_send_and_bench_with_its_reason") {
        return;
    }
    let cases = [
        ("flood", "the server's reply stream passed 65536 bytes"),
        ("reset", "the server reset the reply stream (code 7)"),
    ];
    for (mode, reason) in cases {
        let peer = peer_server("127.0.0.1", mode);
        let url = format!("quic://127.0.0.1:{}", peer.port);
        let out = netecho(&["send", &url, "--pin", &peer.pin, "hello"], b"");
        let line = fails(&out, 1);
        assert!(line.contains(reason), "{mode}: {line}");
        let bench = ["bench", &url, "--pin", &peer.pin, "-d", "2s", "-P", "2"];
        let line = fails(&netecho(&bench, b""), 1);
        assert!(line.contains(reason), "{mode}: {line}");
    }
}

#[test]
fn relay_refuses_quic_and_says_how_to_impair_it() {
    let out = netecho(
        &["relay", "tcp://127.0.0.1:0", "quic://127.0.0.1:4433"],
        b"",
    );
    let line = fails(&out, 2);
    assert!(line.contains("relay udp://"), "{line}");
}

#[test]
fn the_uring_model_is_refused_for_quic_in_one_line() {
    let out = netecho(&["serve", "--proto", "quic", "--model", "uring"], b"");
    assert!(fails(&out, 2).contains("--model event"));
}

/// A link-local client's Retry token cannot be checked (it keeps no zone), so its handshake
/// would end in "invalid Retry Token": the server refuses it at once instead, with the
/// reason in its log, and the client's error says which address to use.
#[test]
fn a_link_local_client_is_refused_with_advice_not_a_bad_token() {
    let test = "a_link_local_client_is_refused_with_advice_not_a_bad_token";
    let Some(ns) = common::netns::Pair::new("lq", test) else {
        return;
    };
    let server_ll = common::netns::link_local(&ns.server, &ns.server_if);
    common::netns::link_local(&ns.client, &ns.client_if);
    let server =
        Server::start_with(&mut ns.server_cmd(&["serve", "--proto", "quic", "--addr", "[::]:0"]));
    let zoned = format!("[{server_ll}%{}]:{}", ns.client_if, server.port());
    let pin = server.pin();
    let out = common::run(
        &mut ns.client_cmd(&["send", "--proto", "quic", &zoned, "--pin", &pin, "near"]),
        b"",
    );
    let err = fails(&out, 1);
    assert!(
        err.contains("connect to the server's global or ULA address"),
        "{err}"
    );
    server.wait_log("refused: a link-local client cannot prove its address");
    // A global address on the same link passes its Retry and is served.
    let global = format!("[{}]:{}", common::netns::Pair::SERVER_V6, server.port());
    let out = common::run(
        &mut ns.client_cmd(&["send", "--proto", "quic", &global, "--pin", &pin, "far"]),
        b"",
    );
    assert_eq!(ok(&out), "FAR\n");
}

/// Under --framing a connection carries one stream: a client's second is stopped and reset
/// at once (code 5), said once in the log, and the first goes on.
#[test]
fn a_second_stream_under_framing_is_reset_and_the_first_goes_on() {
    if !common::have_aioquic("a_second_stream_under_framing_is_reset_and_the_first_goes_on") {
        return;
    }
    let (server, _pin) = serve("127.0.0.1:0", &["--framing", "line"]);
    let port = server.port().to_string();
    let out = peer(&["second", "127.0.0.1", &port]);
    assert_eq!(ok(&out), "ONE\nsecond reset\nTWO\n");
    server.wait_log("a second stream on a connection that carries one");
}
