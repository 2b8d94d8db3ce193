//! The relay's datagram side against loops and floods that make new senders at will: relays
//! looping through this host's own IPv6 addresses, one sender changing its port for every
//! datagram, forged sources each costing a connection to a stream TO, and closed flows whose
//! queues --delay holds full.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::UdpSocket;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::netns::Pair;
use common::{STEP, Server, bin};

/// `python3 -c SCRIPT ARGS` inside the network namespace `space`.
fn python_in(space: &str, script: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", space, "python3", "-c", script])
        .args(args);
    cmd
}

/// Runs `cmd` to its end (at most [`STEP`] and a half): its stdout, trimmed.
fn output_of(cmd: &mut Command, what: &str) -> String {
    let child = cmd.stdout(Stdio::piped()).spawn().expect("python3");
    let out = common::output_within(child, what, STEP + STEP / 2);
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Adds `addrs` (each with its prefix) to the client's end of `pair`.
fn add_client_addrs(pair: &Pair, addrs: impl Iterator<Item = String>) {
    let mut batch = Command::new("ip")
        .args(["-n", &pair.client, "-batch", "-"])
        .stdin(Stdio::piped())
        .spawn()
        .expect("ip (iproute2)");
    let mut stdin = batch.stdin.take().unwrap();
    for addr in addrs {
        writeln!(stdin, "addr add {addr} dev {}", pair.client_if).unwrap();
    }
    drop(stdin);
    assert!(common::wait_exit(&mut batch, "ip -batch").success());
}

/// The `flow ` lines of a relay's stop output whose client is `source` (an IP address).
fn flows_from(out: &str, source: &str) -> usize {
    let from = format!(" udp {source}:");
    out.lines()
        .filter(|l| l.starts_with("flow ") && l.contains(&from))
        .count()
}

/// N in a relay's `stopped by SIG: N flows` line.
fn flows_in_all(out: &str) -> usize {
    let line = out.lines().find(|l| l.starts_with("stopped by ")).unwrap();
    let words: Vec<&str> = line.split_whitespace().collect();
    let at = words.iter().position(|w| w.starts_with("flows")).unwrap();
    words[at - 1].parse().unwrap()
}

/// Two relays on one host pointed at each other through two of its own global IPv6
/// addresses, in different /64s, neither TO's source at the other: every hop a new flow
/// from a new port of the host's own address. Each relay refuses the hop past 128 flows
/// from it (this host's address, never let in by forgetting an idle flow), so the chain
/// ends; a --delay of 20 ms a hop lets the first flows idle a second before the cap, which
/// a relay counting this host's IPv6 addresses as elsewhere forgets to let the chain go on.
#[test]
fn relays_looping_through_this_hosts_own_ipv6_addresses_are_cut() {
    let test = "relays_looping_through_this_hosts_own_ipv6_addresses_are_cut";
    let Some(pair) = Pair::new("r6", test) else {
        return;
    };
    let own = "2001:db8:6::1";
    pair.add_server_v6(&format!("{own}/64")).unwrap();
    let (a_url, b_url) = (
        format!("udp://[{own}]:4001"),
        format!("udp://[{}]:4002", Pair::SERVER_V6),
    );
    let relay = |from: &str, to: &str| {
        Server::start_with(&mut pair.server_cmd(&["relay", "--delay", "up:20ms", from, to]))
    };
    let a = relay(&a_url, &b_url);
    let b = relay(&b_url, &a_url);
    // One datagram from the host itself starts the chain.
    let _ = pair
        .server_cmd(&["send", "--timeout", "100ms", &a_url, "hop"])
        .output();
    // 256 hops of 20 ms and a new flow each: a hang guard of a minute on a loaded machine.
    let cut = "refused, 128 flows from";
    let guard = Instant::now() + 3 * STEP;
    while !(a.stderr().contains(cut) || b.stderr().contains(cut)) {
        assert!(
            Instant::now() < guard,
            "the chain never cut:\n{}",
            a.stderr()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // A loop answers no one, but a real client off the host is still relayed: its datagram
    // goes on from B (and A, at its cap, refuses that hop too).
    let real = format!("udp://[{}]:4002", Pair::SERVER_V6);
    let _ = pair
        .client_cmd(&["send", "--timeout", "1s", &real, "real"])
        .output();
    let (_, a_out, a_log) = a.stop("TERM");
    let (_, b_out, b_log) = b.stop("TERM");
    // Each holds the 128 flows from the other's address; B one more, the real client's.
    for (name, out, log) in [("A", &a_out, &a_log), ("B", &b_out, &b_log)] {
        assert!(flows_in_all(out) <= 130, "relay {name}:\n{out}\n{log}");
    }
    let client = format!("[{}]", Pair::CLIENT_V6);
    let relayed = b_out
        .lines()
        .find(|l| l.contains(&format!(" udp {client}:")))
        .unwrap_or_else(|| panic!("no flow of the real client:\n{b_out}\n{b_log}"));
    // As many messages and bytes out as in (send may have asked more than once).
    let up = relayed.split(": up ").nth(1).unwrap();
    let mut parts = up.split(", ");
    let (came, went) = (parts.next().unwrap(), parts.next().unwrap());
    assert!(!came.starts_with("0 "), "{relayed}");
    assert_eq!(
        came.trim_end_matches(" in"),
        went.split(" out").next().unwrap(),
        "{relayed}"
    );
}

/// python3: argv[2] datagrams to argv[1] (host:port), each from a socket of its own on a new
/// port of one of argv[3] (addresses, comma-separated) in turn, one every argv[4] seconds;
/// stops after argv[5] seconds (15 unless given) on a machine too slow for them all.
const NEW_PORT_EACH: &str = r#"
import socket, sys, time
host, port = sys.argv[1].rsplit(":", 1)
sources = sys.argv[3].split(",")
end = time.time() + float(sys.argv[5] if len(sys.argv) > 5 else 15)
for i in range(int(sys.argv[2])):
    if time.time() > end:
        break
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((sources[i % len(sources)], 0))
    s.sendto(b"n%d" % i, (host, int(port)))
    s.close()
    time.sleep(float(sys.argv[4]))
"#;

/// python3: "real" to argv[1] (host:port) from argv[2], once a second until it comes back
/// (at most 20 times); prints the reply.
const ASK_FROM: &str = r#"
import socket, sys
host, port = sys.argv[1].rsplit(":", 1)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[2], 0))
s.settimeout(1)
for _ in range(20):
    s.sendto(b"real", (host, int(port)))
    try:
        print(s.recv(100).decode())
        break
    except socket.timeout:
        pass
"#;

/// A namespace pair for `test` (`None`, the skip said, without one) whose client end has
/// `senders` (IPv4 addresses of its /24) besides its own, and in its server end
/// `relay FLAGS FROM TO`: FROM udp on that end's address, TO the address `upstream` gives
/// of what it starts there (kept, with the pair and the relay, as long as the test runs).
fn relay_in_pair<U>(
    tag: &str,
    test: &str,
    senders: &[String],
    flags: &[&str],
    upstream: impl FnOnce(&Pair) -> (U, String),
) -> Option<(Pair, Server, U)> {
    let pair = Pair::new(tag, test)?;
    add_client_addrs(&pair, senders.iter().map(|a| format!("{a}/24")));
    let (kept, to) = upstream(&pair);
    let from = format!("udp://{}:0", Pair::SERVER_V4);
    let mut args = vec!["relay"];
    args.extend_from_slice(flags);
    args.extend([from.as_str(), to.as_str()]);
    let relay = Server::start_with(&mut pair.server_cmd(&args));
    Some((pair, relay, kept))
}

/// An echo server on 127.0.0.1 in `pair`'s server end, and its address.
fn udp_echo(pair: &Pair) -> (Server, String) {
    let echo = common::echo_server("udp", "127.0.0.1:0", Some(pair));
    let url = echo.url();
    (echo, url)
}

/// One sender off the host sending each datagram from a new port (3,000 of them, as fast as
/// python3 makes sockets) holds at most its address's 128 flows, each let go only after a second
/// idle: not a flow per datagram. A sender at another address is served meanwhile.
#[test]
fn a_sender_changing_its_port_for_every_datagram_holds_only_its_sources_flows() {
    let test = "a_sender_changing_its_port_for_every_datagram_holds_only_its_sources_flows";
    let other = "10.234.0.3";
    let Some((pair, relay, _echo)) = relay_in_pair("rp", test, &[other.into()], &[], udp_echo)
    else {
        return;
    };
    let started = Instant::now();
    let args = [relay.addr.as_str(), "3000", Pair::CLIENT_V4, "0"];
    output_of(
        &mut python_in(&pair.client, NEW_PORT_EACH, &args),
        "the sender changing ports",
    );
    relay.wait_log(&format!("refused, 128 flows from {}", Pair::CLIENT_V4));
    let ask = [relay.addr.as_str(), other];
    let reply = output_of(&mut python_in(&pair.client, ASK_FROM, &ask), "the other");
    assert_eq!(reply, "real", "the sender at {other} was not served");
    let (_, out, log) = relay.stop("TERM");
    // A place of the source's 128 changes hands at most once a second (its flow idle that
    // long first): never near a flow per datagram.
    let most = 128 * (started.elapsed().as_secs() as usize + 2);
    let flows = flows_from(&out, Pair::CLIENT_V4);
    assert!(
        flows <= most.min(1500),
        "{flows} flows for 3000 datagrams of one sender:\n{log}"
    );
}

/// python3: a TCP server on 127.0.0.1 (its port printed) sending back what each connection
/// sends; for each line of its stdin it prints how many connections are open, at its end how
/// many it accepted.
const COUNTING_ECHO: &str = r#"
import resource, selectors, socket, sys
hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
srv = socket.socket()
srv.bind(("127.0.0.1", 0))
srv.listen(4096)
srv.setblocking(False)
print(srv.getsockname()[1], flush=True)
sel = selectors.DefaultSelector()
sel.register(srv, selectors.EVENT_READ)
sel.register(sys.stdin, selectors.EVENT_READ)
accepted = 0
while True:
    for key, _ in sel.select():
        if key.fileobj is sys.stdin:
            if sys.stdin.readline():
                print(len(sel.get_map()) - 2, flush=True)
                continue
            print(accepted, flush=True)
            sys.exit(0)
        if key.fileobj is srv:
            try:
                conn, _ = srv.accept()
            except BlockingIOError:
                continue
            accepted += 1
            conn.setblocking(False)
            sel.register(conn, selectors.EVENT_READ)
            continue
        try:
            data = key.fileobj.recv(65536)
            if data:
                key.fileobj.send(data)
                continue
        except OSError:
            pass
        sel.unregister(key.fileobj)
        key.fileobj.close()
"#;

/// The TCP server of [`COUNTING_ECHO`] in `space`: the process and its port.
fn counting_echo(space: &str) -> (common::Peer, BufReader<std::process::ChildStdout>, u16) {
    let mut child: Child = python_in(space, COUNTING_ECHO, &[])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3");
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut port = String::new();
    out.read_line(&mut port).unwrap();
    (
        common::Peer(child),
        out,
        port.trim().parse().expect("a port"),
    )
}

/// A udp -> tcp relay opens a connection to TO for each new sender, and one forged
/// datagram makes one: 2,000 senders off the host, each a new port of one of 50 addresses,
/// cost TO at most the burst of 128 connections and 100 a second after it, the rest dropped
/// and counted in the stop line; a real client is still relayed.
#[test]
fn forged_senders_open_connections_to_a_stream_to_at_a_bounded_rate() {
    let test = "forged_senders_open_connections_to_a_stream_to_at_a_bounded_rate";
    let forged: Vec<String> = (10..60).map(|i| format!("10.234.0.{i}")).collect();
    let counting = |pair: &Pair| {
        let (server, counted, port) = counting_echo(&pair.server);
        ((server, counted), format!("tcp://127.0.0.1:{port}"))
    };
    let flags = ["--framing", "line"];
    let Some((pair, relay, (mut server, mut counted))) =
        relay_in_pair("rh", test, &forged, &flags, counting)
    else {
        return;
    };
    let started = Instant::now();
    let sources = forged.join(",");
    let args = [relay.addr.as_str(), "2000", sources.as_str(), "0.0005"];
    output_of(
        &mut python_in(&pair.client, NEW_PORT_EACH, &args),
        "the forged senders",
    );
    let ask = [relay.addr.as_str(), Pair::CLIENT_V4];
    let reply = output_of(&mut python_in(&pair.client, ASK_FROM, &ask), "the client");
    assert_eq!(reply, "real", "the real client was not relayed");
    let (_, out, log) = relay.stop("TERM");
    let secs = started.elapsed().as_secs() as usize;
    drop(server.0.stdin.take());
    let mut accepted = String::new();
    counted.read_line(&mut accepted).unwrap();
    let accepted: usize = accepted.trim().parse().expect("a count");
    let most = 128 + 100 * (secs + 1);
    assert!(
        accepted <= most.min(1000),
        "TO accepted {accepted} connections in {secs} s:\n{log}"
    );
    assert!(
        out.contains("off this host not relayed: past 100 new connections to TO a second"),
        "{out}"
    );
}

/// Two senders off the host changing their port for every datagram, past the rate of new
/// connections to a stream TO, for 8 s (each fills its 128 flows at its share of the
/// rate, in about 2 s, more on a loaded machine): once each holds its source's 128 flows, a
/// new port dropped for the rate costs none of them its place (only a new port given a flow
/// takes an idle one's), so TO keeps all 256 connections open. A drop that forgot an idle
/// flow first leaves its source a flow short, closed for nothing.
#[test]
fn a_sender_dropped_for_the_rate_costs_no_other_flow_its_place() {
    let test = "a_sender_dropped_for_the_rate_costs_no_other_flow_its_place";
    let Some(pair) = Pair::new("rv", test) else {
        return;
    };
    let other = "10.234.0.3";
    add_client_addrs(&pair, std::iter::once(format!("{other}/24")));
    let (mut server, mut counted, port) = counting_echo(&pair.server);
    let listen = format!("udp://{}:0", Pair::SERVER_V4);
    let to = format!("tcp://127.0.0.1:{port}");
    let relay =
        Server::start_with(&mut pair.server_cmd(&["relay", "--framing", "line", &listen, &to]));
    let sources = format!("{},{other}", Pair::CLIENT_V4);
    let args = [relay.addr.as_str(), "100000", &sources, "0", "8"];
    output_of(
        &mut python_in(&pair.client, NEW_PORT_EACH, &args),
        "the sender changing ports",
    );
    // The flows forgotten close their connections within a tick: the count read once it
    // holds still.
    let stdin = server.0.stdin.as_mut().unwrap();
    let mut open = |counted: &mut BufReader<_>| {
        writeln!(stdin).unwrap();
        let mut line = String::new();
        counted.read_line(&mut line).unwrap();
        line.trim().parse::<usize>().expect("a count")
    };
    let started = Instant::now();
    let mut last = open(&mut counted);
    loop {
        std::thread::sleep(Duration::from_millis(500));
        let now = open(&mut counted);
        if now == last || started.elapsed() > STEP {
            break;
        }
        last = now;
    }
    let (_, out, log) = relay.stop("TERM");
    assert!(out.contains("off this host not relayed"), "{out}");
    assert!(
        last >= 256,
        "{last} connections open to TO after the flood of new ports:\n{log}"
    );
}

/// A flow closed while --delay holds its queue full never holds up the loop that serves
/// every other sender: 120 senders each fill their queue (1,024 datagrams) under a 20 s
/// delay and go silent; 120 new senders then take their places in a full table (each
/// closing one), while another client's round trips go on. Every reply comes within the
/// delay and 6 s (a loop waiting up to a tick on each closed writer stalls 12 s or more).
#[test]
fn closing_flows_with_full_queues_never_holds_up_other_senders() {
    let test = "closing_flows_with_full_queues_never_holds_up_other_senders";
    let echo = Server::start(&[
        "--proto",
        "udp",
        "--addr",
        "127.0.0.1:0",
        "--transform",
        "echo",
    ]);
    let mut cmd = Command::new(bin());
    cmd.args(["relay", "--delay", "up:20s", "--max-conns", "121"])
        .args(["--rcvbuf", "8M", "udp://127.0.0.1:0", &echo.url()]);
    let relay = Server::start_with(&mut cmd);
    let senders = |n: usize| -> Vec<UdpSocket> {
        (0..n)
            .map(|_| UdpSocket::bind("127.0.0.1:0").unwrap())
            .collect()
    };
    let fillers = senders(120);
    let filling = Instant::now();
    for round in 0..1100u32 {
        for filler in &fillers {
            filler.send_to(&round.to_be_bytes(), &relay.addr).unwrap();
        }
        // Paced so that the relay, not its socket's buffer, takes them all.
        if round % 20 == 19 {
            common::eventually("the relay read every datagram", || {
                (common::unread_udp(relay.port()) == 0).then_some(())
            });
        }
    }
    // The queues are full only until the delay lets their first datagrams go.
    if filling.elapsed() > Duration::from_secs(12) {
        let why = format!(
            "a machine filling 120 queues well within a 20 s delay (it took {:?})",
            filling.elapsed()
        );
        common::skip(test, &why, common::Lacks::Environment);
        return;
    }
    // Pacing, not a timed assertion: the fillers idle a second, so new senders may take
    // their places.
    std::thread::sleep(Duration::from_millis(1200));
    let addr = relay.addr.clone();
    let trips = std::thread::spawn(move || round_trips(&addr, 40, Duration::from_secs(26)));
    std::thread::sleep(Duration::from_millis(300));
    for newcomer in senders(120) {
        newcomer.send_to(b"new", &relay.addr).unwrap();
    }
    let (missing, worst) = trips.join().unwrap();
    let (_, out, log) = relay.stop("TERM");
    assert!(
        missing.is_empty(),
        "replies {missing:?} never came (worst round trip of the others {worst:?}):\n{out}\n{log}"
    );
    let full = out
        .lines()
        .filter(|l| l.contains("lost to a full queue"))
        .count();
    assert!(full >= 100, "{full} flows with a full queue:\n{out}\n{log}");
    assert!(
        worst < Duration::from_secs(26),
        "worst round trip {worst:?}"
    );
}

/// `count` datagrams to `to`, one every 100 ms from a new client, each awaited for at most
/// `limit` after it was sent: those never answered, and the worst round trip of the others.
fn round_trips(to: &str, count: u32, limit: Duration) -> (Vec<u32>, Duration) {
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    let sender = client.try_clone().unwrap();
    let to = to.to_string();
    let sent = std::thread::spawn(move || {
        (0..count)
            .map(|i| {
                sender.send_to(&i.to_be_bytes(), &to).unwrap();
                let at = Instant::now();
                std::thread::sleep(Duration::from_millis(100));
                at
            })
            .collect::<Vec<Instant>>()
    });
    let last_due = Instant::now() + Duration::from_millis(100) * count + limit;
    client
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut back = vec![None; count as usize];
    let mut buf = [0u8; 16];
    while back.iter().any(Option::is_none) && Instant::now() < last_due {
        if let Ok(4) = client.recv(&mut buf) {
            let i = u32::from_be_bytes(buf[..4].try_into().unwrap()) as usize;
            back[i] = back[i].or(Some(Instant::now()));
        }
    }
    let sent = sent.join().unwrap();
    let missing = (0..count).filter(|&i| back[i as usize].is_none()).collect();
    let worst = (sent.iter().zip(&back))
        .filter_map(|(at, came)| Some(came.as_ref()?.duration_since(*at)))
        .max()
        .unwrap_or_default();
    (missing, worst)
}
