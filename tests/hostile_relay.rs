//! The relay against clients that hold it: more connections than --max-conns, a silent
//! connection past --idle-timeout, a crowd of one-datagram senders that would fill its table
//! of datagram senders, a user or an address holding its share of flows, and large
//! datagrams held by --delay.

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream, UdpSocket};
use std::process::Command;
use std::time::Duration;

use common::netns::Pair;
use common::{STEP, Server, bin};

/// `relay ARGS UPSTREAM` (ARGS: flags, then FROM) to an echo server for `proto` on
/// 127.0.0.1, both on this host or both in `pair`'s server namespace. Returns the relay,
/// then the echo server (which must outlive it).
fn relay_to_echo(pair: Option<&Pair>, proto: &str, args: &[&str]) -> (Server, Server) {
    let echo = common::echo_server(proto, "127.0.0.1:0", pair);
    let upstream = echo.url();
    let mut all = vec!["relay"];
    all.extend_from_slice(args);
    all.push(&upstream);
    (
        Server::start_with(&mut common::netecho_in(pair, &all)),
        echo,
    )
}

fn connect(addr: &str) -> TcpStream {
    let conn = TcpStream::connect(addr).unwrap();
    conn.set_read_timeout(Some(STEP)).unwrap();
    conn
}

#[test]
fn relay_refuses_connections_past_max_conns() {
    let (relay, _upstream) = relay_to_echo(None, "tcp", &["--max-conns", "2", "tcp://127.0.0.1:0"]);
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut conn = connect(&relay.addr);
        conn.write_all(b"hi").unwrap();
        let mut back = [0u8; 2];
        conn.read_exact(&mut back).unwrap();
        held.push(conn);
    }
    let mut third = connect(&relay.addr);
    let mut buf = [0u8; 8];
    let _ = third.write_all(b"hi");
    // Closed without a byte relayed (EOF, or a reset for the bytes it sent).
    assert!(matches!(third.read(&mut buf), Ok(0) | Err(_)));
    relay.wait_log("(--max-conns)");
}

#[test]
fn relay_closes_a_silent_connection_after_idle_timeout() {
    let (relay, _upstream) = relay_to_echo(
        None,
        "tcp",
        &["--idle-timeout", "300ms", "tcp://127.0.0.1:0"],
    );
    let mut conn = connect(&relay.addr);
    let mut buf = [0u8; 8];
    // Bounded by the read timeout: a relay that never closes fails here with an error.
    let got = conn.read(&mut buf);
    assert!(
        matches!(got, Ok(0)),
        "the relay kept a silent connection: {got:?}"
    );
    relay.wait_log("idle for --idle-timeout");
}

/// Writes to `conn` until a write takes nothing for a second (the relay and the server
/// behind it hold all they will) or fails; at most 1 GiB.
fn fill(conn: &mut TcpStream) {
    conn.set_write_timeout(Some(Duration::from_secs(1)))
        .unwrap();
    let chunk = vec![b'x'; 64 * 1024];
    let mut sent = 0;
    while sent < 1 << 30 {
        match conn.write(&chunk) {
            Ok(n) => sent += n,
            Err(_) => break,
        }
    }
}

#[test]
fn relay_ends_a_flow_whose_client_never_reads_and_gives_its_slot_back() {
    let (relay, _upstream) = relay_to_echo(
        None,
        "tcp",
        &[
            "--max-conns",
            "1",
            "--idle-timeout",
            "1s",
            "tcp://127.0.0.1:0",
        ],
    );
    // Fills its upload, shuts down writing, never reads: the echoes back up to it, the
    // server stops reading, and both directions of the flow stand still.
    let mut hog = connect(&relay.addr);
    fill(&mut hog);
    let _ = hog.shutdown(Shutdown::Write);
    let log = relay.wait_log("took nothing for --idle-timeout (it does not read); closed");
    assert_eq!(log.matches("; closed").count(), 1, "one line: {log}");
    // The slot is back while the hog still holds its socket: another client is relayed.
    common::eventually("a second client relayed", || {
        let mut next = TcpStream::connect(&relay.addr).ok()?;
        next.set_read_timeout(Some(Duration::from_secs(1))).ok()?;
        next.write_all(b"hi").ok()?;
        let mut back = [0u8; 2];
        next.read_exact(&mut back).ok()?;
        (&back == b"hi").then_some(())
    });
    drop(hog);
}

#[test]
fn one_datagram_senders_do_not_lock_out_a_real_one() {
    let (relay, _upstream) = relay_to_echo(None, "udp", &["--max-conns", "8", "udp://127.0.0.1:0"]);
    // Twice as many senders as there is room for, each sending one datagram and leaving:
    // what a flood of forged sources does.
    for i in 0..16u8 {
        let one = UdpSocket::bind("127.0.0.1:0").unwrap();
        one.send_to(&[i], &relay.addr).unwrap();
    }
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    client.set_read_timeout(Some(STEP / 10)).unwrap();
    let answered = common::eventually("the real sender relayed", || {
        client.send_to(b"real", &relay.addr).unwrap();
        let mut buf = [0u8; 16];
        client.recv(&mut buf).ok().filter(|&n| &buf[..n] == b"real")
    });
    assert_eq!(answered, 4);
}

/// A flood of one-datagram senders, each from an address of its own in 127.0.0.0/8 as
/// forged sources come: the lines each flow causes under -v (forgotten to make room, its
/// line as it ends) come at most ten a second, the rest counted in one line.
#[test]
fn a_flood_of_forged_sources_logs_at_most_ten_lines_a_second_of_each_kind() {
    let started = std::time::Instant::now();
    let (relay, _upstream) = relay_to_echo(
        None,
        "udp",
        &["-v", "--max-conns", "8", "udp://127.0.0.1:0"],
    );
    for i in 0..1000u32 {
        let source = format!("127.0.{}.{}", 1 + i / 250, 1 + i % 250);
        let one = UdpSocket::bind((source.as_str(), 0)).unwrap();
        one.send_to(b"x", &relay.addr).unwrap();
    }
    // Answered once the relay has read every datagram before it (or dropped it unread).
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    client.set_read_timeout(Some(STEP / 10)).unwrap();
    common::eventually("the real sender relayed", || {
        client.send_to(b"real", &relay.addr).unwrap();
        let mut buf = [0u8; 16];
        client.recv(&mut buf).ok().filter(|&n| &buf[..n] == b"real")
    });
    let (_, out, log) = relay.stop("TERM");
    let most = 10 * (started.elapsed().as_secs() as usize + 1);
    let flows = out.lines().filter(|l| l.starts_with("flow ")).count();
    let lines = |kind: &str| log.lines().filter(|l| l.contains(kind)).count();
    for kind in ["forgotten to make room", "-> udp 127.0.0.1"] {
        assert!(
            lines(kind) <= most,
            "{} {kind:?} lines:\n{log}",
            lines(kind)
        );
    }
    if flows > most {
        assert!(
            log.contains("left out"),
            "{flows} flows, none left out:\n{log}"
        );
    }
}

/// Two relays pointed at each other: every message from one arrives at the other from a
/// new socket, a new flow, hop after hop. The bound on flows per source address ends the
/// chain, and each relay's threads and sockets (read from /proc) stay bounded.
#[test]
fn two_relays_pointed_at_each_other_stay_bounded() {
    for proto in ["udp", "tcp"] {
        let (a, b) = facing_relays(proto);
        match proto {
            "udp" => {
                let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
                sock.send_to(b"hi", &a.addr).unwrap();
            }
            _ => drop(connect(&a.addr)),
        }
        // Until the chain is cut, and once more after: at most 128 flows from one user,
        // each of four threads over a stream (its two readers, its two writers), three over
        // datagrams, and a socket or two.
        let per_flow = if proto == "tcp" { 4 } else { 3 };
        let cut = "128 flows from uid";
        let mut was_cut = false;
        common::eventually(&format!("{proto}: the chain cut"), || {
            let done = was_cut;
            was_cut = a.stderr().contains(cut) || b.stderr().contains(cut);
            for relay in [&a, &b] {
                let (threads, fds) = (common::threads(relay.pid()), common::open_fds(relay.pid()));
                assert!(
                    threads <= per_flow * 128 + 16 && fds <= 2 * 128 + 32,
                    "{proto}: {threads} threads, {fds} fds; log:\n{}",
                    relay.stderr()
                );
            }
            done.then_some(())
        });
        a.stop("TERM");
        b.stop("TERM");
    }
}

/// One local user holding 128 idle connections (each a flow, with no idle timeout) holds
/// its own share of the relay's flows, not the share of every user of this host, which all
/// come from 127.0.0.1: root's client is relayed meanwhile, and the user's 129th is refused.
#[test]
fn a_local_user_holding_its_flows_leaves_other_users_relayed() {
    let test = "a_local_user_holding_its_flows_leaves_other_users_relayed";
    if !nix::unistd::Uid::effective().is_root() {
        let why = "root, to make sockets owned by nobody";
        common::skip(test, why, common::Lacks::Provided);
        return;
    }
    let (relay, _upstream) = relay_to_echo(None, "tcp", &["tcp://127.0.0.1:0"]);
    let nobody = || common::nobody_socket(socket2::Type::STREAM);
    let held: Vec<TcpStream> = (0..128)
        .map(|_| common::tcp_from(nobody(), "127.0.0.1", &relay.addr))
        .collect();
    let mut root = connect(&relay.addr);
    root.write_all(b"hi").unwrap();
    let mut back = [0u8; 2];
    root.read_exact(&mut back).unwrap();
    assert_eq!(&back, b"hi");
    let mut extra = common::tcp_from(nobody(), "127.0.0.1", &relay.addr);
    let _ = extra.write_all(b"hi");
    // Closed without a byte relayed (EOF, or a reset for the bytes it sent).
    assert!(matches!(extra.read(&mut back), Ok(0) | Err(_)));
    relay.wait_log("128 flows from uid 65534 on this host already");
    drop(held);
}

/// 128 one-datagram senders with a victim's address (here the victim's own host, as a
/// forger's datagrams look), each answered, do not shut the victim out: its new sender
/// takes the place of the idlest of them, none of which is in a conversation.
#[test]
fn senders_holding_an_address_flows_do_not_shut_out_a_new_one() {
    let test = "senders_holding_an_address_flows_do_not_shut_out_a_new_one";
    let Some(pair) = Pair::new("rf", test) else {
        return;
    };
    let listen = format!("udp://{}:0", Pair::SERVER_V4);
    let (relay, _upstream) = relay_to_echo(Some(&pair), "udp", &[&listen]);
    let mut buf = [0u8; 16];
    for i in 0..128u32 {
        let one = pair.client_udp();
        one.set_read_timeout(Some(STEP)).unwrap();
        one.send_to(&i.to_be_bytes(), &relay.addr).unwrap();
        // Answered: its flow lives on (for 30 s) after the datagram.
        assert_eq!(one.recv(&mut buf).unwrap(), 4, "sender {i} not answered");
    }
    let victim = pair.client_udp();
    victim.set_read_timeout(Some(STEP / 10)).unwrap();
    common::eventually("the new sender relayed", || {
        victim.send_to(b"real", &relay.addr).unwrap();
        victim.recv(&mut buf).ok().filter(|&n| &buf[..n] == b"real")
    });
    drop(relay);
}

/// Unix datagram senders are counted by the user their credentials name, not all as one:
/// nobody's 128 senders, each with a name of its own (and a flow that outlives it for the
/// relay's 30 s), leave root's sender relayed.
#[test]
fn a_user_holding_unix_datagram_flows_leaves_other_users_relayed() {
    let test = "a_user_holding_unix_datagram_flows_leaves_other_users_relayed";
    if !common::can_switch_user() {
        let why = "root and setpriv, to send as nobody";
        common::skip(test, why, common::Lacks::Provided);
        return;
    }
    let from = format!("unix-dgram://{}", common::abstract_name("dgram-holder"));
    let (relay, _upstream) = relay_to_echo(None, "udp", &[&from]);
    for i in 0..128 {
        let out = common::as_nobody(&["send", "--timeout", "5s", &relay.url(), &i.to_string()])
            .output()
            .unwrap();
        assert_eq!(common::ok(&out), format!("{i}\n"), "nobody's sender {i}");
    }
    let root = common::netecho(&["send", "--timeout", "5s", &relay.url(), "root"], b"");
    assert_eq!(common::ok(&root), "root\n");
}

/// `relay proto://A proto://B` and `relay proto://B proto://A`, on ports free a moment ago.
fn facing_relays(proto: &str) -> (Server, Server) {
    let url = |port: u16| format!("{proto}://127.0.0.1:{port}");
    for _ in 0..5 {
        let (p, q) = (common::free_port(), common::free_port());
        let started = |from: u16, to: u16| {
            let mut cmd = Command::new(bin());
            cmd.args(["relay", &url(from), &url(to)]);
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                Server::start_with(&mut cmd)
            }))
            .ok()
        };
        if let (Some(a), Some(b)) = (started(p, q), started(q, p)) {
            return (a, b);
        }
    }
    panic!("no two free ports for {proto} relays");
}

/// Sends `count` datagrams of `len` bytes from `sock` to `to`, and counts the bytes of
/// every reply until half a second passes without one (at most 20 s in all).
fn bytes_back(sock: &UdpSocket, to: &str, count: usize, len: usize) -> usize {
    sock.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut buf = vec![0u8; 65536];
    let (mut got, started) = (0, std::time::Instant::now());
    for i in 0..count {
        sock.send_to(&vec![b'a' + i as u8; len], to).unwrap();
        while let Ok((n, _)) = sock.recv_from(&mut buf) {
            got += n;
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "replies never end"
            );
        }
    }
    got
}

/// A relay in `pair`'s server namespace listening on `listen`, with `flags`, to an echo
/// server there; it duplicates every message both ways, so each datagram a sender sends
/// comes back as four. Returns the relay, then the echo server (which must outlive it).
fn duplicating_relay(pair: &Pair, listen: &str, flags: &[&str]) -> (Server, Server) {
    let mut args = vec!["--duplicate", "100%", "--seed", "1"];
    args.extend_from_slice(flags);
    args.push(listen);
    relay_to_echo(Some(pair), "udp", &args)
}

/// A sender off the relay's host, whose address may be forged, is sent no more bytes than
/// it sent, however many the other side answers with (here the relay's own duplication in
/// both directions turns each datagram into four replies); one on the relay's host gets
/// them all.
#[test]
fn a_sender_off_this_host_is_sent_no_more_than_it_sent() {
    let test = "a_sender_off_this_host_is_sent_no_more_than_it_sent";
    let Some(pair) = Pair::new("rc", test) else {
        return;
    };
    let listen = format!("udp://{}:0", Pair::SERVER_V4);
    let (relay, _echo) = duplicating_relay(&pair, &listen, &[]);
    let far = bytes_back(&pair.client_udp(), &relay.addr, 5, 100);
    assert!(far > 0, "the far sender got nothing back");
    assert!(far <= 500, "a sender off this host got {far} bytes for 500");
    relay.wait_log("more than the 100 bytes in 1 datagram it sent");
    // The same relay answers a sender on its own host with every copy.
    let near = Command::new("ip")
        .args(["netns", "exec", &pair.server, "python3", "-c"])
        .arg(NEAR_SENDER)
        .arg(&relay.addr)
        .output()
        .unwrap();
    let near: usize = String::from_utf8_lossy(&near.stdout)
        .trim()
        .parse()
        .unwrap_or(0);
    assert!(
        near > 500,
        "a sender on the relay's host got {near} bytes for 500"
    );
}

/// `--trust NET` gives senders in NET every reply. The far sender of the test above reaches
/// a dual-stack FROM as ::ffff:10.234.0.2, which an IPv4 network covers; a network that does
/// not cover it leaves it held to what it sent, and the line saying so names --trust.
#[test]
fn a_trusted_sender_off_this_host_gets_every_reply_and_no_other_does() {
    let test = "a_trusted_sender_off_this_host_gets_every_reply_and_no_other_does";
    let Some(pair) = Pair::new("rt", test) else {
        return;
    };
    let far = |trust: &str| {
        let (relay, echo) = duplicating_relay(&pair, "udp://[::]:0", &["--trust", trust]);
        let to = format!("{}:{}", Pair::SERVER_V4, relay.port());
        (bytes_back(&pair.client_udp(), &to, 5, 100), relay, echo)
    };
    let (trusted, ..) = far("10.234.0.0/24");
    assert!(
        trusted > 500,
        "a sender in --trust got {trusted} bytes for 500"
    );
    let (untrusted, relay, _echo) = far("10.235.0.0/16");
    assert!(untrusted > 0, "the far sender got nothing back");
    assert!(
        untrusted <= 500,
        "a sender outside --trust got {untrusted} bytes for 500"
    );
    let log = relay.wait_log("more than the 100 bytes in 1 datagram it sent");
    assert!(log.contains("--trust"), "{log}");
}

/// Empty replies carry no bytes but cost a packet each: a sender off this host is sent no
/// more datagrams than it sent, as well as no more bytes, however many empty datagrams the
/// other side answers with.
#[test]
fn a_sender_off_this_host_is_sent_no_more_datagrams_than_it_sent() {
    let test = "a_sender_off_this_host_is_sent_no_more_datagrams_than_it_sent";
    let Some(pair) = Pair::new("re", test) else {
        return;
    };
    let mut upstream = Command::new("ip")
        .args([
            "netns",
            "exec",
            &pair.server,
            "python3",
            "-c",
            EMPTY_ANSWERS,
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3");
    let mut port = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(upstream.stdout.take().unwrap()),
        &mut port,
    )
    .unwrap();
    let to = format!("udp://127.0.0.1:{}", port.trim());
    let listen = format!("udp://{}:0", Pair::SERVER_V4);
    let relay = Server::start_with(&mut pair.server_cmd(&["relay", &listen, &to]));
    let sock = pair.client_udp();
    sock.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let (mut datagrams, mut buf) = (0, [0u8; 64]);
    for _ in 0..3 {
        sock.send_to(b"x", &relay.addr).unwrap();
        while datagrams < 1000 && sock.recv_from(&mut buf).is_ok() {
            datagrams += 1;
        }
    }
    let _ = upstream.kill();
    let _ = upstream.wait();
    assert!(
        (1..=3).contains(&datagrams),
        "3 one-byte datagrams got {datagrams} back"
    );
    relay.wait_log("more than the 1 byte in 1 datagram it sent");
}

/// python3: a udp server on 127.0.0.1 (its port printed) answering each datagram with 50
/// empty ones, for at most 30 s.
const EMPTY_ANSWERS: &str = r#"
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1], flush=True)
s.settimeout(1)
end = time.time() + 30
while time.time() < end:
    try:
        _, peer = s.recvfrom(65536)
    except socket.timeout:
        continue
    for _ in range(50):
        s.sendto(b"", peer)
"#;

/// python3: five 100-byte datagrams to argv[1] (host:port) from this host's loopback, each
/// followed by its replies until half a second passes without one; prints the bytes back.
const NEAR_SENDER: &str = r#"
import socket, sys, time
host, port = sys.argv[1].rsplit(":", 1)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(0.5)
got, end = 0, time.time() + 20
for i in range(5):
    s.sendto(bytes([97 + i]) * 100, (host, int(port)))
    while time.time() < end:
        try:
            got += len(s.recv(65536))
        except socket.timeout:
            break
print(got)
"#;

/// A relay holding datagrams for --delay holds at most its byte budget: 64 MiB in all
/// (4 MiB a direction), plus a message per direction. 32 senders of 6 MB each in 60,000-byte
/// datagrams (192 MB, three times the budget) into a 60 s delay leave it under 96 MiB more
/// than it started with (the budget, and room for the allocator), and the datagrams past the budget are counted as lost to a full
/// queue, as a router drops them.
#[test]
fn datagrams_held_by_delay_are_bounded_in_bytes() {
    let (relay, _upstream) = relay_to_echo(
        None,
        "udp",
        &["--delay", "60s", "--rcvbuf", "4M", "udp://127.0.0.1:0"],
    );
    let before = common::rss_kib(relay.pid());
    let senders: Vec<UdpSocket> = (0..32)
        .map(|_| UdpSocket::bind("127.0.0.1:0").unwrap())
        .collect();
    let datagram = vec![b'x'; 60_000];
    for _ in 0..100 {
        for sender in &senders {
            sender.send_to(&datagram, &relay.addr).unwrap();
            // Paced so that the relay, not its socket's buffer, is what drops.
            std::thread::sleep(Duration::from_micros(300));
        }
    }
    // Once the relay has read what came (its socket empty), its memory is what it holds.
    std::thread::sleep(Duration::from_secs(1));
    let grown = common::rss_kib(relay.pid()).saturating_sub(before);
    let (_, out, log) = relay.stop("TERM");
    assert!(
        grown < 96 << 10,
        "the relay grew by {grown} KiB holding delayed datagrams; lines:\n{out}\n{log}"
    );
    assert!(
        out.contains("lost to a full queue"),
        "nothing lost past the budget:\n{out}"
    );
}

/// A closed flow's writers end with it, however long --delay would hold what they hold: 600
/// one-datagram senders, a hundred at a time, each flow closed by a 1 s --idle-timeout
/// while its datagram waits out a 10 s delay, leave the relay with the threads of the flows
/// still open (at most 128 from this address, three threads each), not of every one so far.
#[test]
fn writers_of_closed_flows_end_under_a_long_delay() {
    let (relay, _upstream) = relay_to_echo(
        None,
        "udp",
        &[
            "--delay",
            "10s",
            "--idle-timeout",
            "1s",
            "udp://127.0.0.1:0",
        ],
    );
    let bound = 128 * 3 + 64;
    let mut most = 0;
    for round in 0..6 {
        for _ in 0..100 {
            let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
            sender.send_to(b"held", &relay.addr).unwrap();
        }
        // Pacing, not a timed assertion: the flows idle out meanwhile.
        std::thread::sleep(Duration::from_millis(1500));
        let now = common::threads(relay.pid());
        most = most.max(now);
        assert!(
            now < bound,
            "{now} relay threads after round {round}: closed flows' writers live on"
        );
    }
    drop(relay);
    assert!(most > 0, "the relay's threads were never read");
}
