//! `netecho relay`: across protocols, byte for byte, and with simulated conditions that a
//! client measures for itself.

mod common;

use std::io::{Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::Instant;

use common::{Server, netecho, ok, relay};

/// Bytes that are not all the same, so a shifted or dropped byte shows.
fn pattern(len: usize, salt: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_be_bytes()[0] ^ salt)
        .collect()
}

/// Writes `data` in bursts of several writes on one thread while reading it all back.
fn round_trip_stream<S: Read + Write + Send + 'static>(
    mut writer: S,
    mut reader: impl Read,
    data: &[u8],
) {
    let sent = data.to_vec();
    let feeder = thread::spawn(move || {
        for chunk in sent.chunks(7919) {
            writer.write_all(chunk).unwrap();
        }
        writer
    });
    let mut back = vec![0u8; data.len()];
    reader.read_exact(&mut back).unwrap();
    assert!(back == data, "the bytes came back changed");
    drop(feeder.join().unwrap());
}

#[test]
fn tcp_to_unix_carries_a_burst_byte_for_byte() {
    let dir = common::tempdir();
    let path = dir.path().join("echo.sock");
    let server = common::echo_server("unix", path.to_str().unwrap(), None);
    let relay = relay(&["tcp://127.0.0.1:0", &server.url()]);
    assert_eq!(relay.proto, "tcp");
    let stream = TcpStream::connect(&relay.addr).unwrap();
    stream.set_read_timeout(Some(common::STEP)).unwrap();
    round_trip_stream(stream.try_clone().unwrap(), stream, &pattern(1 << 20, 1));
    let (status, out, _) = relay.stop("INT");
    assert!(status.success());
    assert!(out.contains("flow 1 tcp 127.0.0.1:"), "{out}");
    assert!(out.contains("1048576 bytes in"), "{out}");
    assert!(out.contains("stopped by SIGINT: 1 flows"), "{out}");
}

#[test]
fn unix_to_tcp_carries_a_burst_byte_for_byte() {
    let server = common::echo_server("tcp", "127.0.0.1:0", None);
    let dir = common::tempdir();
    let path = dir.path().join("relay.sock");
    let relay = relay(&[&format!("unix://{}", path.display()), &server.url()]);
    assert_eq!(relay.proto, "unix");
    let stream = UnixStream::connect(&path).unwrap();
    stream.set_read_timeout(Some(common::STEP)).unwrap();
    round_trip_stream(stream.try_clone().unwrap(), stream, &pattern(1 << 20, 2));
    drop(relay);
}

/// Sends `count` numbered datagrams through `sock` in windows of 32 and checks every reply.
fn datagram_round_trips(sock: &UdpSocket, count: usize, salt: u8) {
    sock.set_read_timeout(Some(common::STEP)).unwrap();
    let mut buf = vec![0u8; 65536];
    for window in 0..count.div_ceil(32) {
        let first = window * 32;
        let last = (first + 32).min(count);
        for i in first..last {
            sock.send(&numbered(i, salt)).unwrap();
        }
        for i in first..last {
            let n = sock.recv(&mut buf).unwrap();
            assert_eq!(&buf[..n], &numbered(i, salt)[..], "datagram {i}");
        }
    }
}

/// Datagram `i` of a sender: its number, then a pattern of a size that varies with `i`.
fn numbered(i: usize, salt: u8) -> Vec<u8> {
    let mut d = (i as u32).to_be_bytes().to_vec();
    d.extend(pattern(1 + (i * 37) % 1400, salt));
    d
}

#[test]
fn udp_to_unix_dgram_routes_each_reply_to_its_sender() {
    let dir = common::tempdir();
    let path = dir.path().join("echo.sock");
    let server = common::echo_server("unix-dgram", path.to_str().unwrap(), None);
    let relay = relay(&["udp://127.0.0.1:0", &server.url()]);
    assert_eq!(relay.proto, "udp");
    // Two senders at once: each must get only its own replies back.
    let senders: Vec<_> = (0..2u8)
        .map(|salt| {
            let addr = relay.addr.clone();
            thread::spawn(move || {
                let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
                sock.connect(&addr).unwrap();
                datagram_round_trips(&sock, 500, salt);
            })
        })
        .collect();
    for s in senders {
        s.join().unwrap();
    }
    let (_, out, _) = relay.stop("TERM");
    assert!(out.contains("stopped by SIGTERM: 2 flows"), "{out}");
    // In and out, up and down, for each of the two flows.
    assert_eq!(out.matches("500 messages").count(), 8, "{out}");
}

/// Datagrams sent to a relay held (SIGSTOP) with small receive buffers (--rcvbuf) are
/// dropped by the kernel before the relay reads them, at FROM and at a flow's socket to TO:
/// the stop line counts FROM's and names --rcvbuf, the flow's line counts its own.
#[test]
fn datagrams_the_kernel_dropped_before_the_relay_read_them_are_counted() {
    // TO is a socket of the test's own, so it can send to the flow's socket at will.
    let to = UdpSocket::bind("127.0.0.1:0").unwrap();
    to.set_read_timeout(Some(common::STEP)).unwrap();
    let to_url = format!("udp://{}", to.local_addr().unwrap());
    let relay = relay(&["--rcvbuf", "1", "udp://127.0.0.1:0", &to_url]);
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    client.connect(&relay.addr).unwrap();
    client.send(b"first").unwrap();
    let mut buf = [0u8; 64];
    let (_, flow_sock) = to.recv_from(&mut buf).unwrap();
    common::hold(relay.pid());
    // Far more than the smallest receive buffer Linux allows holds (a few KiB).
    for i in 0..200u32 {
        let datagram = [i.to_be_bytes().as_slice(), &[7u8; 996]].concat();
        client.send(&datagram).unwrap();
        to.send_to(&datagram, flow_sock).unwrap();
    }
    common::signal(relay.pid(), "CONT");
    let (status, out, log) = relay.stop("TERM");
    assert!(status.success(), "{log}");
    let last = out.lines().last().unwrap_or_default();
    let at_from = "datagrams dropped by the kernel at FROM before the relay read them (its \
                   receive buffer,";
    assert!(last.contains(at_from), "{out}");
    assert!(last.contains("a larger --rcvbuf"), "{out}");
    let dropped: u64 = last
        .split("; ")
        .nth(1)
        .and_then(|part| part.split(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("a count in {last:?}"));
    assert!((150..=200).contains(&dropped), "{out}");
    let flow = out
        .lines()
        .find(|l| l.starts_with("flow 1 "))
        .expect("a flow line");
    let (_, down) = flow.split_once(". down ").expect("both directions");
    assert!(
        down.contains(
            "dropped by the kernel before the relay read them (its receive buffer was full)"
        ),
        "{out}"
    );
}

#[test]
fn a_stream_meets_datagrams_through_a_framing() {
    let server = Server::start(&["--proto", "udp", "--addr", "127.0.0.1:0"]);
    for framing in ["line", "length"] {
        let relay = relay(&["--framing", framing, "tcp://127.0.0.1:0", &server.url()]);
        let out = netecho(
            &[
                "send",
                "--framing",
                framing,
                "--burst",
                "20",
                &relay.addr,
                "hello",
            ],
            b"",
        );
        assert_eq!(ok(&out), "HELLO\n".repeat(20), "{framing}");
    }
    let out = netecho(&["relay", "tcp://127.0.0.1:0", &server.url()], b"");
    let line = common::fails(&out, 2);
    assert!(
        line.contains("--framing line or --framing length"),
        "{line}"
    );
}

#[test]
fn datagrams_into_a_stream_are_framed_one_by_one() {
    let server = Server::start(&["--addr", "127.0.0.1:0", "--framing", "length"]);
    let relay = relay(&["--framing", "length", "udp://127.0.0.1:0", &server.url()]);
    let out = netecho(&["send", "--burst", "10", &relay.url(), "hi"], b"");
    assert_eq!(ok(&out), "HI\n".repeat(10));
}

/// Runs `netecho bench ARGS --format json` and returns its one run.
fn bench(args: &[&str]) -> serde_json::Value {
    let mut all = vec!["bench"];
    all.extend(args);
    all.extend(["--format", "json"]);
    let doc: serde_json::Value =
        serde_json::from_str(&ok(&netecho(&all, b""))).expect("bench prints JSON");
    doc["runs"][0].clone()
}

#[test]
fn simulated_loss_shows_as_gaps_and_what_arrives_is_intact() {
    let server = Server::start(&["--proto", "udp", "--addr", "127.0.0.1:0"]);
    let relay = relay(&[
        "--loss",
        "up:20%",
        "--seed",
        "7",
        "udp://127.0.0.1:0",
        &server.url(),
    ]);
    let run = bench(&[
        "-n",
        "2000",
        "-w",
        "32",
        "-s",
        "200",
        "--timeout",
        "300ms",
        &relay.url(),
    ]);
    let (sent, lost, late) = (
        run["sent"].as_u64().unwrap(),
        run["lost"].as_u64().unwrap(),
        run["late"].as_u64().unwrap(),
    );
    assert_eq!(sent, 2000, "{run}");
    let loss = lost as f64 / sent as f64;
    eprintln!("measured loss through --loss up:20%: {lost} of {sent}");
    // 2,000 draws of 20%: one standard deviation is 0.9 points; the band is over 5 of them.
    assert!((0.15..=0.25).contains(&loss), "measured loss {loss}: {run}");
    // Every reply that came is byte for byte the request, upper-cased (bench checks).
    assert_eq!(run["mismatched"], 0, "{run}");
    // A reply past the 300 ms timeout (a loaded machine) is counted late, not lost.
    assert_eq!(
        run["answered"].as_u64().unwrap() + lost + late,
        sent,
        "{run}"
    );
    let (_, out, log) = relay.stop("INT");
    assert!(
        log.contains("simulated conditions (seed 7): up (FROM to TO) loss 20%"),
        "{log}"
    );
    let dropped: u64 = out
        .split("simulated: ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no simulated count: {out}"));
    assert!((300..=500).contains(&dropped), "{out}");
}

#[test]
fn simulated_delay_raises_the_median_round_trip() {
    let server = Server::start(&["--proto", "udp", "--addr", "127.0.0.1:0"]);
    let to = server.url();
    let p50 = |extra: &[&str]| {
        let mut args = extra.to_vec();
        args.extend(["udp://127.0.0.1:0", &to]);
        let relay = relay(&args);
        let run = bench(&["-n", "40", "-w", "1", &relay.url()]);
        assert_eq!(run["lost"], 0, "{run}");
        run["latency_us"]["p50"].as_f64().unwrap() / 1000.0
    };
    let (plain, delayed) = (p50(&[]), p50(&["--delay", "up:50ms"]));
    eprintln!("p50 {plain:.2} ms without delay, {delayed:.2} ms with --delay up:50ms");
    // Every request waits 50 ms in the relay, so the median round trip is 50 ms at least.
    // No bound above: a loaded machine wakes a sleeping thread late, never early (how close
    // to 50 ms it stays is bench/impair.sh's figure).
    assert!(delayed >= 50.0, "p50 {plain} ms -> {delayed} ms");
}

#[test]
fn a_rate_never_lets_throughput_past_its_target() {
    let server = common::echo_server("tcp", "127.0.0.1:0", None);
    // 8 mbit/s is 1 MB/s: 2 MB take 2 s through the bucket, which holds 20 ms of bytes.
    let relay = relay(&["--rate", "up:8mbit", "tcp://127.0.0.1:0", &server.url()]);
    let stream = TcpStream::connect(&relay.addr).unwrap();
    stream.set_read_timeout(Some(common::STEP)).unwrap();
    let start = Instant::now();
    round_trip_stream(stream.try_clone().unwrap(), stream, &pattern(2_000_000, 3));
    let rate = 2.0 / start.elapsed().as_secs_f64();
    eprintln!("2 MB through --rate up:8mbit at {rate:.3} MB/s");
    // No faster than the rate allows (the bucket's 20 ms and the clock's grain are inside
    // 5%); how near 1 MB/s it comes on an idle machine is bench/impair.sh's figure, as a
    // loaded machine only slows it.
    assert!(
        rate <= 1.05,
        "{rate} MB/s, past the 1 MB/s of --rate up:8mbit"
    );
}

#[test]
fn a_stream_relay_refuses_loss_and_says_why() {
    for flag in ["--loss", "--duplicate", "--reorder"] {
        let out = netecho(
            &[
                "relay",
                flag,
                "5%",
                "tcp://127.0.0.1:0",
                "unix:///tmp/nowhere.sock",
            ],
            b"",
        );
        let line = common::fails(&out, 2);
        assert!(line.contains("never lose, duplicate or reorder"), "{line}");
        // Loss below TCP between the user's own peers, as commands to paste (lab --netns
        // puts loss between its own servers and clients only).
        common::assert_mentions(
            &line,
            &["sudo ip netns add lossy", "numgen random mod 100 < 5 drop"],
        );
        assert!(!line.contains("lab --netns"), "{line}");
    }
    // Delay and rate do apply to a stream.
    let server = common::echo_server("tcp", "127.0.0.1:0", None);
    let relay = relay(&[
        "--delay",
        "10ms",
        "--rate",
        "100mbit",
        "tcp://127.0.0.1:0",
        &server.url(),
    ]);
    let out = netecho(&["send", &relay.addr, "hello"], b"");
    assert_eq!(ok(&out), "hello\n");
}

/// A datagram the relay's flow sent to a unix-dgram TO, answered: sent again, a few times,
/// until its echo comes back; false if none came.
fn answered_through(client: &UdpSocket, message: &[u8]) -> bool {
    client
        .set_read_timeout(Some(std::time::Duration::from_secs(2)))
        .unwrap();
    let mut buf = [0u8; 64];
    (0..10).any(|_| {
        client.send(message).unwrap();
        matches!(client.recv(&mut buf), Ok(n) if &buf[..n] == message)
    })
}

/// A socket another user binds at TO's path once TO's server is gone gets no flow: not the
/// open flow's redial, not a new one; both are refused with the owners named, TO named
/// through a symlink too.
#[test]
fn another_users_socket_at_tos_path_gets_no_flow() {
    let test = "another_users_socket_at_tos_path_gets_no_flow";
    if !common::nobody_can_run(test) {
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let dir = common::tempdir();
    // A directory every user may write, as /tmp is.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let path = dir.path().join("ud.sock");
    let path = path.to_str().unwrap();
    let root = common::echo_server("unix-dgram", path, None);
    // TO named through a symlink, as connect(2) follows it: the owner held is the socket's.
    let link = dir.path().join("link.sock");
    std::os::unix::fs::symlink(path, &link).unwrap();
    let to = format!("unix-dgram://{}", link.display());
    let relay = relay(&["udp://127.0.0.1:0", &to]);
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    client.connect(&relay.addr).unwrap();
    assert!(answered_through(&client, b"one"), "{}", relay.stderr());
    root.stop("TERM");
    let args = ["serve", "--proto", "unix-dgram", "--addr", path];
    let nobody = Server::start_with(&mut common::as_nobody(&args));
    let refused = "not uid 0 as when the relay started";
    // The open flow's redial, then a new flow's connect: both refused.
    let log = common::eventually("the open flow's redial refused", || {
        client.send(b"two").unwrap();
        let log = relay.stderr();
        log.contains("connecting to TO again failed").then_some(log)
    });
    assert!(log.contains(refused), "{log}");
    common::eventually("a new flow refused", || {
        client.send(b"three").unwrap();
        (relay.stderr().matches(refused).count() >= 2).then_some(())
    });
    let (_, out, log) = nobody.stop("TERM");
    assert!(
        !log.contains("bytes in"),
        "nobody's server got a datagram: {log}"
    );
    assert!(out.contains("clients 0, messages 0"), "{out}");
}

/// A unix-dgram server restarted at the same path gets the datagrams of a flow that was
/// open before, as a client starting afresh would reach it; with no server there, the flow
/// closes with one warning naming TO, and the sender's next datagram opens a new flow.
#[test]
fn a_flow_to_a_unix_dgram_server_reaches_it_again_after_a_restart() {
    let dir = common::tempdir();
    let path = dir.path().join("ud.sock");
    let path = path.to_str().unwrap();
    let first = common::echo_server("unix-dgram", path, None);
    let relay = relay(&["udp://127.0.0.1:0", &first.url()]);
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    client.connect(&relay.addr).unwrap();
    assert!(answered_through(&client, b"one"), "{}", relay.stderr());
    first.stop("TERM");
    let second = common::echo_server("unix-dgram", path, None);
    assert!(
        answered_through(&client, b"two"),
        "the restarted server never answered the open flow; relay log:\n{}",
        relay.stderr()
    );
    second.stop("TERM");
    // Sent until the relay gives up on TO: it connects again at most once a second.
    let log = common::eventually("a warning that TO is gone", || {
        client.send(b"three").unwrap();
        let log = relay.stderr();
        log.contains("connecting to TO again failed").then_some(log)
    });
    assert!(log.contains(&format!("unix-dgram {path}")), "{log}");
    // The flow is closed: the sender's next datagram opens a new one (which finds no server).
    common::eventually("a new flow for the sender", || {
        client.send(b"four").unwrap();
        relay.stderr().contains("flow 2 from").then_some(())
    });
    let (_, out, log) = relay.stop("TERM");
    assert_eq!(
        log.matches("connecting to TO again failed").count(),
        1,
        "{log}"
    );
    assert!(out.contains("flow 1 udp"), "{out}");
}

/// A udp TO where nothing listens: one warning a flow, naming TO, the errno and what to do,
/// however many datagrams the flow sends there.
#[test]
fn a_udp_to_where_nothing_listens_is_one_warning_a_flow() {
    let port = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let to = format!("udp://127.0.0.1:{port}");
    let relay = relay(&["udp://127.0.0.1:0", &to]);
    let clients: Vec<UdpSocket> = (0..2)
        .map(|_| UdpSocket::bind("127.0.0.1:0").unwrap())
        .collect();
    for client in &clients {
        client.send_to(b"anyone?", &relay.addr).unwrap();
    }
    relay.wait_log_count("ECONNREFUSED", 2);
    for _ in 0..5 {
        for client in &clients {
            client.send_to(b"anyone?", &relay.addr).unwrap();
        }
    }
    let (_, _, log) = relay.stop("TERM");
    let warnings: Vec<&str> = log.lines().filter(|l| l.contains("ECONNREFUSED")).collect();
    assert_eq!(warnings.len(), 2, "{log}");
    for line in warnings {
        common::assert_mentions(
            line,
            &[
                "WARN",
                &format!("udp 127.0.0.1:{port}"),
                "nothing is listening there",
            ],
        );
    }
}

/// What --delay still holds when the relay stops is counted, in the flow's line and the
/// stop line, as not sent.
#[test]
fn messages_still_held_at_the_stop_are_counted_as_not_sent() {
    let server = common::echo_server("udp", "127.0.0.1:0", None);
    let relay = relay(&["--delay", "60s", "udp://127.0.0.1:0", &server.url()]);
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    client.send_to(b"held!", &relay.addr).unwrap();
    // Read by the relay (its socket empty): queued, or held by its flow's writer.
    common::eventually("the relay read the datagram", || {
        (common::unread_udp(relay.port()) == 0).then_some(())
    });
    let (_, out, _) = relay.stop("TERM");
    assert!(
        out.contains("0 delayed; 1 messages 5 bytes still held when the flow closed: not sent"),
        "{out}"
    );
    assert!(
        out.contains("1 flows; 1 messages 5 bytes still held when the flows closed: not sent"),
        "{out}"
    );
}

/// In a request-reply flow a --reorder has no next message to go behind: each held message
/// goes alone, counted as such, not as reordered.
#[test]
fn a_reorder_with_no_next_message_is_counted_apart() {
    let server = common::echo_server("udp", "127.0.0.1:0", None);
    let relay = relay(&["--reorder", "100%", "udp://127.0.0.1:0", &server.url()]);
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    client.connect(&relay.addr).unwrap();
    client.set_read_timeout(Some(common::STEP)).unwrap();
    let mut buf = [0u8; 16];
    for _ in 0..3 {
        client.send(b"ping").unwrap();
        let n = client.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"ping");
    }
    let (_, out, _) = relay.stop("TERM");
    // Up, then down: each sent its three alone.
    let alone = "0 reordered, 3 held up to 50 ms and sent alone (no next message)";
    assert_eq!(out.matches(alone).count(), 2, "{out}");
}

#[test]
fn bad_impairments_are_one_clear_error() {
    for (flag, value, says) in [
        ("--loss", "150%", "not a fraction"),
        ("--loss", "sideways:5%", "not a direction"),
        ("--rate", "10 furlongs", "not a rate"),
        ("--delay", "up:soon", "not a duration"),
    ] {
        let out = netecho(
            &[
                "relay",
                flag,
                value,
                "udp://127.0.0.1:0",
                "udp://127.0.0.1:9",
            ],
            b"",
        );
        let line = common::fails(&out, 2);
        assert!(line.contains(says), "{flag} {value}: {line}");
    }
}

/// --trust takes an address or a prefix as --allow does, and nothing else: a wrong one is
/// one line that says what to write, and so is a --trust where no reply is ever held back,
/// or one of a family FROM never hears from.
#[test]
fn a_bad_trust_is_one_clear_error() {
    for (value, from, says) in [
        (
            "fd00::/64",
            "udp://127.0.0.1:0",
            "never matches: a socket bound to 127.0.0.1 receives IPv4 only",
        ),
        (
            "10.0.0.0/8",
            "udp://[::1]:0",
            "never matches: a socket bound to ::1 receives IPv6 only",
        ),
        ("10.0.0.1/8", "udp://127.0.0.1:0", "write 10.0.0.0/8"),
        ("uid:0", "udp://127.0.0.1:0", "'uid:0' is not a network"),
        ("10.0.0.0/33", "udp://127.0.0.1:0", "is not a network"),
        ("fe80::1%eth0", "udp://127.0.0.1:0", "write fe80::1"),
        (
            "10.0.0.0/8",
            "tcp://127.0.0.1:0",
            "--trust is for a udp FROM",
        ),
    ] {
        let to = from.replace(":0", ":9");
        let out = netecho(&["relay", "--trust", value, from, &to], b"");
        let line = common::fails(&out, 2);
        assert!(line.contains(says), "--trust {value} on {from}: {line}");
        assert!(
            line.contains("--trust"),
            "--trust {value} on {from}: {line}"
        );
    }
}

/// Trusting every address gives up the relay's bound for everyone, so it is said at start,
/// once, in either family: with a /0, or with blocks that together hold the family.
#[test]
fn trusting_every_address_is_a_warning_at_start() {
    for (every, from) in [
        (&["0.0.0.0/0"][..], "udp://127.0.0.1:0"),
        (&["::/0"], "udp://[::1]:0"),
        (&["0.0.0.0/1", "128.0.0.0/1"], "udp://127.0.0.1:0"),
        (&["8000::/1", "::/2", "4000::/2"], "udp://[::]:0"),
    ] {
        let mut args: Vec<&str> = every.iter().flat_map(|net| ["--trust", net]).collect();
        let to = from.replace(":0", ":9").replace("[::]", "[::1]");
        args.extend([from, &to]);
        let relay = relay(&args);
        let log = relay.wait_log(&format!("--trust {}:", every.join(", ")));
        let lines = log.lines().filter(|l| l.contains("--trust")).count();
        assert_eq!(lines, 1, "{log}");
    }
    // Blocks that leave a gap give nobody outside them every reply: no warning.
    let relay = relay(&[
        "--trust",
        "0.0.0.0/1",
        "udp://127.0.0.1:0",
        "udp://127.0.0.1:9",
    ]);
    let log = relay.wait_log("relaying");
    assert!(!log.contains("--trust"), "{log}");
}

#[test]
fn duplicates_and_reordering_reach_the_client_and_are_counted() {
    let server = Server::start(&["--proto", "udp", "--addr", "127.0.0.1:0"]);
    let relay = relay(&[
        "--duplicate",
        "up:5%",
        "--reorder",
        "up:5%",
        "--seed",
        "3",
        "udp://127.0.0.1:0",
        &server.url(),
    ]);
    let run = bench(&["-n", "1000", "-w", "16", "--timeout", "500ms", &relay.url()]);
    assert!(run["duplicated"].as_u64().unwrap() > 0, "{run}");
    assert!(run["reordered"].as_u64().unwrap() > 0, "{run}");
    assert_eq!(run["mismatched"], 0, "{run}");
    let (_, out, _) = relay.stop("INT");
    // The up direction's counts, before "down".
    let up = out.split(". down").next().unwrap();
    assert!(
        !up.contains(" 0 duplicated") && !up.contains(" 0 reordered"),
        "{out}"
    );
}

#[test]
fn a_seqpacket_relay_keeps_messages_and_logs_each_flow_with_v() {
    let server = Server::start(&["--proto", "udp", "--addr", "127.0.0.1:0"]);
    let name = common::abstract_name("seqpacket-relay");
    let relay = relay(&["-v", &format!("unix-seqpacket://{name}"), &server.url()]);
    let out = netecho(&["send", "--burst", "10", &relay.url(), "one message"], b"");
    assert_eq!(ok(&out), "ONE MESSAGE\n".repeat(10));
    // The flow ends when the client leaves (and replies stop): its line is logged.
    let log = relay.wait_log("flow 1 unix-seqpacket");
    assert!(log.contains("10 messages 110 bytes in"), "{log}");
}

/// The relay's flow lines on exit, added up: (up bytes in, down messages out, down bytes
/// out), and how many flow lines there were.
fn flow_totals(stdout: &str) -> (u64, u64, u64, usize) {
    // "N messages M bytes in, N messages M bytes out" of one direction.
    let counts = |dir: &str| -> [u64; 4] {
        let numbers: Vec<u64> = dir
            .split([' ', ','])
            .filter_map(|w| w.parse().ok())
            .take(4)
            .collect();
        numbers
            .try_into()
            .unwrap_or_else(|_| panic!("counts in {dir:?}"))
    };
    let (mut up_in, mut down_msgs, mut down_bytes, mut flows) = (0, 0, 0, 0);
    for line in stdout.lines().filter(|l| l.starts_with("flow ")) {
        let (_, rest) = line.split_once(": up ").expect("a flow line");
        let (up, down) = rest.split_once(". down ").expect("both directions");
        up_in += counts(up)[1];
        let down = counts(down);
        down_msgs += down[2];
        down_bytes += down[3];
        flows += 1;
    }
    (up_in, down_msgs, down_bytes, flows)
}

#[test]
fn the_summary_on_sigterm_counts_every_message_a_client_got_under_load() {
    for proto in ["udp", "tcp"] {
        let server = Server::start(&["--proto", proto, "--addr", "127.0.0.1:0"]);
        let relay = relay(&[&format!("{proto}://127.0.0.1:0"), &server.url()]);
        let clients = 16;
        let load = Arc::new(Load::default());
        let threads: Vec<_> = (0..clients)
            .map(|id| {
                let (proto, addr, load) = (proto.to_string(), relay.addr.clone(), load.clone());
                thread::spawn(move || load_client(id, &proto, &addr, &load))
            })
            .collect();
        common::eventually(&format!("{proto}: every client answered"), || {
            (load.busy.load(Ordering::Relaxed) >= clients as u64).then_some(())
        });
        let (status, out, log) = relay.stop("TERM");
        load.stopped.store(true, Ordering::Relaxed);
        for client in threads {
            client.join().expect("a client of the relay failed");
        }
        assert!(status.success(), "{proto}: {status:?}\n{log}");
        assert!(!log.contains("panicked"), "{log}");
        flow_lines_count_the_load(&out, proto, clients, &load);
    }
}

/// What the clients of [`the_summary_on_sigterm_counts_every_message_a_client_got_under_load`]
/// tell the test: the replies and bytes that came back, the clients answered once at
/// least, and whether the relay was stopped.
#[derive(Default)]
struct Load {
    replies: AtomicU64,
    bytes: AtomicU64,
    busy: AtomicU64,
    stopped: AtomicBool,
}

/// One client of 100-byte messages through the relay, each reply checked, until the relay
/// ends.
fn load_client(id: usize, proto: &str, addr: &str, load: &Load) {
    let raw = common::Plain::connect(proto, addr);
    // A datagram client looks up every 200 ms for the end of the test. A stream client
    // learns it from the relay's close: its wait is only a hang guard, since a reply cut
    // by a timeout cannot be read on (a loaded machine may take longer than 200 ms).
    let wait = match raw.is_message() {
        true => std::time::Duration::from_millis(200),
        false => common::STEP * 3,
    };
    raw.sock.set_read_timeout(Some(wait)).unwrap();
    let started = Instant::now();
    for round in 0..1_000_000 {
        let msg = common::message(id, round, 100);
        if (&raw.sock).write(&msg).is_err() {
            return;
        }
        let got = loop {
            match raw.try_reply(msg.len()) {
                Ok(got) => break got,
                Err(_) if load.stopped.load(Ordering::Relaxed) => return,
                Err(_) if started.elapsed() > common::STEP * 3 => {
                    panic!("client {id}: no reply, and the test never ended")
                }
                Err(_) if raw.is_message() => {}
                Err(_) => return,
            }
        };
        if got.is_empty() {
            return;
        }
        assert!(got == msg.to_ascii_uppercase(), "a reply differs");
        if round == 0 {
            load.busy.fetch_add(1, Ordering::Relaxed);
        }
        load.replies.fetch_add(1, Ordering::Relaxed);
        load.bytes.fetch_add(got.len() as u64, Ordering::Relaxed);
    }
}

/// The relay's lines on exit: a flow line per client, the summary, and at least every
/// byte (and, over udp, every reply) the clients got.
fn flow_lines_count_the_load(out: &str, proto: &str, clients: usize, load: &Load) {
    let (up_in, down_msgs, down_bytes, flows) = flow_totals(out);
    assert_eq!(flows, clients, "{proto}: {out}");
    assert!(
        out.contains(&format!("stopped by SIGTERM: {clients} flows")),
        "{out}"
    );
    let (replies, bytes) = (
        load.replies.load(Ordering::Relaxed),
        load.bytes.load(Ordering::Relaxed),
    );
    assert!(
        down_bytes >= bytes && up_in >= bytes,
        "{proto}: the clients got {bytes} bytes back, the relay says {up_in} in and \
         {down_bytes} out:\n{out}"
    );
    if proto == "udp" {
        assert!(
            down_msgs >= replies,
            "{proto}: the clients got {replies} replies, the relay says it sent \
             {down_msgs}:\n{out}"
        );
    }
}

#[test]
fn a_frame_too_long_for_a_datagram_ends_its_flow_with_a_warning() {
    let server = Server::start(&["--proto", "udp", "--addr", "127.0.0.1:0"]);
    let relay = relay(&["--framing", "line", "tcp://127.0.0.1:0", &server.url()]);
    relay.wait_log("--max-frame 65507");
    let mut client = TcpStream::connect(("127.0.0.1", relay.port())).unwrap();
    client
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let mut big = vec![b'a'; 100_000];
    big.extend_from_slice(b"\nsmall\n");
    let _ = client.write_all(&big);
    let mut got = Vec::new();
    let _ = client.read_to_end(&mut got);
    assert!(got.is_empty(), "nothing after a lost frame: {got:?}");
    let log = relay.wait_log("closing the flow");
    assert!(log.contains("flow 1"), "{log}");
    // A frame that fits still goes.
    let mut client = TcpStream::connect(("127.0.0.1", relay.port())).unwrap();
    client.write_all(b"small\n").unwrap();
    let mut line = [0; 6];
    client.read_exact(&mut line).unwrap();
    assert_eq!(&line, b"SMALL\n");
}

#[test]
fn frames_to_a_udp_server_over_ipv6_reach_ipv6_s_limit_and_no_further() {
    // IPv6's largest udp payload is 65,527 bytes (IPv4's 65,507): a frame of that many goes
    // out as one datagram to ::1 and comes back; one byte more closes its flow.
    let server = common::echo_server("udp", "[::1]:0", None);
    let relay = relay(&["--framing", "line", "tcp://127.0.0.1:0", &server.url()]);
    relay.wait_log("--max-frame 65527");
    let mut fits = pattern(65_527, 7);
    fits.iter_mut()
        .filter(|b| **b == b'\n')
        .for_each(|b| *b = b'.');
    fits.push(b'\n');
    let mut client = TcpStream::connect(&relay.addr).unwrap();
    client.set_read_timeout(Some(common::STEP)).unwrap();
    client.write_all(&fits).unwrap();
    let mut back = vec![0u8; fits.len()];
    client.read_exact(&mut back).unwrap();
    assert!(back == fits, "the 65527-byte frame came back changed");

    let mut over = vec![b'o'; 65_528];
    over.push(b'\n');
    let mut client = TcpStream::connect(&relay.addr).unwrap();
    client.set_read_timeout(Some(common::STEP)).unwrap();
    let _ = client.write_all(&over);
    let mut got = Vec::new();
    let _ = client.read_to_end(&mut got);
    assert!(got.is_empty(), "nothing back for a frame over the limit");
    let log = relay.wait_log("closing the flow");
    assert!(log.contains("over the 65527-byte limit"), "{log}");
}

#[test]
fn a_udp_client_over_ipv6_gets_a_reply_frame_as_large_as_ipv6_carries() {
    // The frame comes back from a stream server and goes to the client as one datagram:
    // to an IPv6 client, up to IPv6's 65,527 bytes.
    let server = Server::start(&[
        "--proto",
        "tcp",
        "--addr",
        "[::1]:0",
        "--framing",
        "line",
        "--transform",
        "echo",
    ]);
    let relay = relay(&["--framing", "line", "udp://[::1]:0", &server.url()]);
    let client = UdpSocket::bind("[::1]:0").unwrap();
    client.connect(&relay.addr).unwrap();
    client.set_read_timeout(Some(common::STEP)).unwrap();
    let fits = vec![b'f'; 65_527];
    client.send(&fits).unwrap();
    let mut buf = vec![0u8; 70_000];
    let n = client.recv(&mut buf).expect("the 65527-byte reply");
    assert!(
        n == fits.len() && buf[..n] == fits[..],
        "{n} bytes came back"
    );
    let (status, out, err) = relay.stop("TERM");
    assert!(status.success(), "{err}");
    assert!(!err.contains("closing the flow"), "{err}");
    assert!(out.contains("stopped by SIGTERM: 1 flows"), "{out}");
}

/// A udp flow's socket to TO takes datagrams from any port of TO's address, as a server that
/// answers from a port of its own (TFTP, netecho's udp files) sends them, and the client's
/// next datagrams go to the first such port it got a reply from; a datagram from another
/// address is never relayed.
#[test]
fn a_udp_flow_follows_the_port_to_answers_from_and_nothing_from_elsewhere_passes() {
    let to = UdpSocket::bind("127.0.0.1:0").unwrap();
    let transfer = UdpSocket::bind("127.0.0.1:0").unwrap();
    let stranger = UdpSocket::bind("127.0.0.2:0").unwrap();
    let to_url = format!("udp://{}", to.local_addr().unwrap());
    let relay = relay(&["udp://127.0.0.1:0", &to_url]);
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    client.connect(&relay.addr).unwrap();
    for sock in [&to, &transfer, &client] {
        sock.set_read_timeout(Some(common::STEP)).unwrap();
    }
    let mut buf = [0u8; 64];
    // Every datagram the client reads is checked: a relayed "forged" would come before the
    // last, which comes after several round trips.
    let mut client_reads = |what: &[u8]| {
        let n = client.recv(&mut buf).expect("a datagram through the relay");
        let (got, wanted) = (
            String::from_utf8_lossy(&buf[..n]),
            String::from_utf8_lossy(what),
        );
        assert_eq!(got, wanted);
    };
    client.send(b"request").unwrap();
    let mut at_to = [0u8; 64];
    let (n, flow_sock) = to.recv_from(&mut at_to).unwrap();
    assert_eq!(&at_to[..n], b"request");
    stranger.send_to(b"forged", flow_sock).unwrap();
    transfer
        .send_to(b"from the transfer port", flow_sock)
        .unwrap();
    client_reads(b"from the transfer port");
    client.send(b"to the transfer port").unwrap();
    let (n, from) = transfer.recv_from(&mut at_to).unwrap();
    assert_eq!(
        (&at_to[..n], from),
        (&b"to the transfer port"[..], flow_sock)
    );
    // A late answer from the first port still reaches the client, and moves nothing: the
    // client talks to the transfer port.
    stranger.send_to(b"forged", flow_sock).unwrap();
    to.send_to(b"late, from the first port", flow_sock).unwrap();
    client_reads(b"late, from the first port");
    client.send(b"still to the transfer port").unwrap();
    let (n, _) = transfer.recv_from(&mut at_to).unwrap();
    assert_eq!(&at_to[..n], b"still to the transfer port");
    drop(relay);
}

/// When TO is on this host, any user here can send from TO's address: a udp flow takes a
/// datagram from another port of it only from a socket of the user whose socket TO is, or
/// of root. Another user's datagram, sent before TO's own reply from its transfer port, is
/// left out (counted in the flow's line, logged once), the flow follows the transfer port,
/// and the other user's port is never sent to.
#[test]
fn a_udp_flow_to_this_host_takes_nothing_from_another_users_socket_at_tos_address() {
    let test = "a_udp_flow_to_this_host_takes_nothing_from_another_users_socket_at_tos_address";
    if !nix::unistd::Uid::effective().is_root() {
        let why = "root, to make sockets owned by other users";
        common::skip(test, why, common::Lacks::Provided);
        return;
    }
    // (TO's user, its transfer socket's, the intruder's): root's TO and nobody intruding;
    // nobody's TO answering from nobody's and from root's transfer port, another user
    // intruding.
    for (to_uid, transfer_uid, intruder_uid) in
        [(0, 0, 65534), (65534, 65534, 65533), (65534, 0, 65533)]
    {
        let case = format!("TO uid {to_uid}, transfer uid {transfer_uid}");
        let bound = |uid: u32| -> UdpSocket {
            let sock = common::socket_of(uid, socket2::Type::DGRAM);
            let any: std::net::SocketAddr = "127.0.0.1:0".parse().unwrap();
            sock.bind(&any.into()).unwrap();
            let sock = UdpSocket::from(sock);
            sock.set_read_timeout(Some(common::STEP)).unwrap();
            sock
        };
        let (to, transfer, intruder) = (bound(to_uid), bound(transfer_uid), bound(intruder_uid));
        let relay = relay(&[
            "udp://127.0.0.1:0",
            &format!("udp://{}", to.local_addr().unwrap()),
        ]);
        let client = UdpSocket::bind("127.0.0.1:0").unwrap();
        client.connect(&relay.addr).unwrap();
        client.set_read_timeout(Some(common::STEP)).unwrap();
        let mut buf = [0u8; 64];
        let client_reads = |what: &str| {
            let mut got = [0u8; 64];
            let n = client.recv(&mut got).expect("a datagram through the relay");
            assert_eq!(String::from_utf8_lossy(&got[..n]), what, "{case}");
        };
        client.send(b"request").unwrap();
        let (_, flow_sock) = to.recv_from(&mut buf).unwrap();
        // Before TO's reply, and again after the flow moved: the reply is what comes first.
        intruder.send_to(b"injected", flow_sock).unwrap();
        intruder.send_to(b"injected again", flow_sock).unwrap();
        transfer.send_to(b"reply", flow_sock).unwrap();
        client_reads("reply");
        client.send(b"ack").unwrap();
        let (n, _) = transfer.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"ack", "{case}");
        intruder.send_to(b"injected late", flow_sock).unwrap();
        transfer.send_to(b"second reply", flow_sock).unwrap();
        client_reads("second reply");
        intruder.set_nonblocking(true).unwrap();
        assert!(
            intruder.recv(&mut buf).is_err(),
            "{case}: the intruder was sent to"
        );
        let (status, out, err) = relay.stop("TERM");
        assert!(status.success(), "{case}: {err}");
        assert!(
            out.contains(
                "3 left out: from another port of TO's address, not TO's user's or root's socket"
            ),
            "{case}: {out}"
        );
        let warned = err.matches(&format!("uid {intruder_uid}")).count();
        assert_eq!(warned, 1, "{case}: one line per flow: {err}");
    }
}
