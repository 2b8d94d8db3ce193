//! One source spending what every source shares: a host sending each datagram from a new
//! address of its IPv6 /64, against the echo's per-source reply budgets and the relay's
//! budget of new connections to TO; one local user's flood of Unix datagrams against
//! another user's replies under --rate-limit. Each flood runs while a client from elsewhere
//! (or another user) asks, and that client is answered.

mod common;

use std::process::{Command, Stdio};

use common::netns::Pair;
use common::{Peer, STEP, Server};

/// The /48 the flooding host answers for (a local route on its loopback), reached from the
/// server's namespace through the client's end of the veth.
const FLOOD_NET: &str = "fd00:a11::/48";
/// Its first three groups.
const FLOOD_PREFIX: &str = "fd00:a11:0";

/// python3: sends one-byte datagrams to [ADDR]:PORT (argv 1, 2), each from a new random
/// address of one of the first argv 5 /64s of the /48 argv 3 names (its first three
/// groups), in turn, until killed: without pause, or about argv 4 a second (a relay reading
/// each new sender slowly keeps up, and its queue never drops another client's datagram).
const V6_FLOOD: &str = r#"
import random, socket, struct, sys
dst = (sys.argv[1], int(sys.argv[2]))
base, rate, nets = sys.argv[3], float(sys.argv[4]), int(sys.argv[5])
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IPV6, 78, 1)  # IPV6_FREEBIND
s.setblocking(False)
import time
sent, start = 0, time.time()
while True:
    sent += 1
    if rate and sent % 5 == 0:
        time.sleep(max(0, start + sent / rate - time.time()))
    low = tuple(random.getrandbits(16) for _ in range(4))
    src = base + ":%x:%x:%x:%x:%x" % ((sent % nets,) + low)
    info = struct.pack("16sI", socket.inet_pton(socket.AF_INET6, src), 0)
    try:
        s.sendmsg([b"x"], [(socket.IPPROTO_IPV6, socket.IPV6_PKTINFO, info)], 0, dst)
    except OSError:
        pass
"#;

/// python3: COUNT (argv 3) requests to ADDR (argv 1; `[v6]:port`, or an abstract Unix name
/// `@name`) of family argv 2 (`inet6` from the address argv 4, or `unix`), each from a new
/// socket after a pause longer than the echo's budgets stay idle before they may be
/// forgotten (a second), each waiting up to 10 s to be sent (a Unix server's queue full of a
/// flood blocks sendto) and 10 s for its reply: prints how many came back. A request over a
/// budget is dropped, never answered late, so the long wait hides no refusal; it only lets
/// a heavily loaded machine (load averages of 30 and more) run the server in between.
const ASK: &str = r#"
import socket, sys, time
addr, family, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
if family == "unix":
    dst = "\0" + addr[1:]
else:
    host, port = addr.rsplit(":", 1)
    dst = (host.strip("[]"), int(port))
answered = 0
for i in range(count):
    time.sleep(1.2)
    if family == "unix":
        s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        s.bind("")
    else:
        s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        s.bind((sys.argv[4], 0))
    s.settimeout(10)
    try:
        s.sendto(b"asking %d\n" % i, dst)
        s.recv(100)
        answered += 1
    except socket.timeout:
        pass
    s.close()
print(answered)
"#;

/// python3: one-byte datagrams from one Unix socket to the abstract name argv 1 (`@name`),
/// until killed. A send waits while the server's queue is full rather than trying again at
/// once, which would take the CPU the server needs to empty it; replies are read as they
/// come, without waiting for one.
const UNIX_FLOOD: &str = r#"
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind("")
dst = "\0" + sys.argv[1][1:]
while True:
    try:
        s.sendto(b"x", dst)
    except OSError:
        pass
    try:
        while True:
            s.recv(10, socket.MSG_DONTWAIT)
    except OSError:
        pass
"#;

fn ip(args: &[&str]) {
    let status = Command::new("ip")
        .args(args)
        .status()
        .expect("ip (iproute2)");
    assert!(status.success(), "ip {}", args.join(" "));
}

/// `pair` with [`FLOOD_NET`] answered in the client's namespace and routed to it from the
/// server's.
fn flooding_host(tag: &str, test: &str) -> Option<Pair> {
    let pair = Pair::new(tag, test)?;
    ip(&[
        "-n",
        &pair.client,
        "-6",
        "route",
        "add",
        "local",
        FLOOD_NET,
        "dev",
        "lo",
    ]);
    let via = ["-6", "route", "add", FLOOD_NET, "via", Pair::CLIENT_V6];
    ip(&[&["-n", pair.server.as_str()][..], &via[..]].concat());
    Some(pair)
}

/// [`V6_FLOOD`] from `nets` /64s in the client's namespace at `to` (`[v6]:port`), `rate` a
/// second in all (0: as fast as it can), killed when dropped.
fn v6_flood(pair: &Pair, to: &str, rate: u32, nets: u32) -> Peer {
    let (host, port) = to.rsplit_once(':').unwrap();
    let child = Command::new("ip")
        .args(["netns", "exec", &pair.client, "python3", "-c", V6_FLOOD])
        .args([
            host.trim_matches(['[', ']']),
            port,
            FLOOD_PREFIX,
            &rate.to_string(),
            &nets.to_string(),
        ])
        .stdin(Stdio::null())
        .spawn()
        .expect("python3");
    Peer(child)
}

/// Stops a flood, which must have lasted (a script that failed proves nothing).
fn still_flooding(mut flood: Peer) {
    assert!(
        flood.0.try_wait().unwrap().is_none(),
        "the flood ended early"
    );
}

/// Runs [`ASK`] (`cmd`: how python3 is started, its arguments after the script's): how many
/// of `count` were answered.
fn answered(mut cmd: Command, args: &[&str]) -> usize {
    cmd.args(["python3", "-c", ASK]).args(args);
    let child = cmd.stdout(Stdio::piped()).spawn().expect("python3");
    // Each of at most 16 requests waits 1.2 s, then up to 10 s to send and 10 s to hear.
    let out = common::output_within(child, "the asking client", STEP * 18);
    let text = String::from_utf8_lossy(&out.stdout);
    text.trim()
        .parse()
        .unwrap_or_else(|_| panic!("a count: {text:?}"))
}

/// [`answered`] for `count` requests to `to` from the client's own address, in its namespace.
fn answered_from_elsewhere(pair: &Pair, to: &str, count: usize) -> usize {
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", &pair.client]);
    answered(cmd, &[to, "inet6", &count.to_string(), Pair::CLIENT_V6])
}

/// A host sending each datagram from a new address of its /64 (16,000 a second: the
/// budgets' table of 4096 sources, were each address its own source, would be full most of
/// every second) spends its /64's budget alone: a client at another address, asking from a
/// new port after a second's pause each time, is answered. --rate-limit 1000: all but 1,000
/// of the flood's datagrams a second are dropped unanswered, which costs the server little;
/// --rcvbuf 4M: the kernel queues what arrives while a loaded machine runs something else,
/// so no request is lost to a full receive queue.
#[test]
fn one_64_cycling_its_addresses_never_shuts_other_udp_clients_out() {
    let test = "one_64_cycling_its_addresses_never_shuts_other_udp_clients_out";
    let Some(pair) = flooding_host("rs", test) else {
        return;
    };
    let listen = format!("[{}]:0", Pair::SERVER_V6);
    let server = Server::start_with(&mut pair.server_cmd(&[
        "serve",
        "--proto",
        "udp",
        "--rate-limit",
        "1000",
        "--rcvbuf",
        "4M",
        "--addr",
        &listen,
    ]));
    let flood = v6_flood(&pair, &server.addr, 16000, 1);
    let got = answered_from_elsewhere(&pair, &server.addr, 16);
    still_flooding(flood);
    let (_, _, log) = server.stop("TERM");
    assert!(got >= 12, "{got} of 16 answered during the flood:\n{log}");
}

/// A udp -> tcp relay's budget of new connections to TO: a host making a new sender of
/// each datagram from its /64 spends its own share of it, and a new sender elsewhere is
/// still relayed.
#[test]
fn one_64_cycling_its_addresses_never_spends_other_senders_new_connections() {
    let test = "one_64_cycling_its_addresses_never_spends_other_senders_new_connections";
    relayed_during_flood("rn", test, 1);
}

/// Twelve busy sources (twelve /64s, each making a new sender of every datagram) share the
/// budget of new connections to TO among them, and a share is left for a source that was
/// not asking: its new senders are still relayed.
#[test]
fn twelve_busy_sources_never_spend_a_new_sources_connections() {
    let test = "twelve_busy_sources_never_spend_a_new_sources_connections";
    relayed_during_flood("rd", test, 12);
}

/// A udp -> tcp relay flooded by [`V6_FLOOD`] from `nets` /64s (2,000 new senders a second
/// in all, twenty times its budget of new connections) while a new sender elsewhere asks 8
/// times, a new port each time, so each is a new connection: most of them are relayed.
fn relayed_during_flood(tag: &str, test: &str, nets: u32) {
    let Some(pair) = flooding_host(tag, test) else {
        return;
    };
    let echo = Server::start_with(&mut pair.server_cmd(&["serve", "--addr", "127.0.0.1:0"]));
    let listen = format!("udp://[{}]:0", Pair::SERVER_V6);
    let to = echo.url();
    let relay =
        Server::start_with(&mut pair.server_cmd(&["relay", "--framing", "line", &listen, &to]));
    let flood = v6_flood(&pair, &relay.addr, 2000, nets);
    relay.wait_log("not relayed, 100 new senders off this host a second");
    let got = answered_from_elsewhere(&pair, &relay.addr, 8);
    still_flooding(flood);
    let (_, out, log) = relay.stop("TERM");
    assert!(
        got >= 6,
        "{got} of 8 relayed during the flood from {nets} /64s:\n{out}\n{log}"
    );
}

/// Under --rate-limit a Unix datagram sender spends its user's budget: nobody's flood
/// leaves root's requests answered, and the server's warning names nobody's uid as a udp
/// one names the address. --rate-limit 5 is under the 11 datagrams the server's queue holds
/// (net.unix.max_dgram_qlen, 10 by default, and one): each time the server has been kept
/// waiting it finds the queue full and empties it at once, more than its budget, so the
/// flood goes over it however seldom a loaded machine runs the server. A budget above the
/// queue is spent only by a flood faster than it, and a loaded machine can let fewer than ten
/// datagrams a second through for seconds on end: the warning would then wait on the load.
/// Root's 8 requests, 1.2 s apart, stay within a budget of their own.
#[test]
fn one_local_users_unix_datagram_flood_leaves_another_users_replies() {
    let test = "one_local_users_unix_datagram_flood_leaves_another_users_replies";
    if !common::can_switch_user() {
        common::skip(
            test,
            "root and setpriv, to send as nobody",
            common::Lacks::Provided,
        );
        return;
    }
    let name = common::abstract_name("rate-users");
    let server = Server::start(&[
        "--proto",
        "unix-dgram",
        "--rate-limit",
        "5",
        "--addr",
        &name,
    ]);
    let child = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        // The system's python3: nobody may not reach a user's own (pyenv's shims).
        .args(["/usr/bin/python3", "-c", UNIX_FLOOD, &name])
        .stdin(Stdio::null())
        .spawn()
        .expect("setpriv");
    let flood = Peer(child);
    let log = server.wait_log("over --rate-limit");
    let warning = log
        .lines()
        .find(|l| l.contains("over --rate-limit"))
        .unwrap();
    assert!(warning.contains("(uid 65534 on this host)"), "{warning}");
    let got = answered(Command::new("env"), &[&name, "unix", "8"]);
    drop(flood);
    let (_, _, log) = server.stop("TERM");
    assert!(
        got >= 6,
        "{got} of 8 answered during nobody's flood:\n{log}"
    );
}
