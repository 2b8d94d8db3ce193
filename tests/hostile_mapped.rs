//! IPv6 datagrams from another host with a source that reads as this host's: an IPv4-mapped
//! one (::ffff:127.0.0.1), which on a dual-stack socket would read as 127.0.0.1, past access
//! rules and the checks that trust loopback; and one of this host's own IPv6 addresses, which
//! Linux delivers from the wire. Sent from a client namespace (root).

mod common;

use std::process::Command;

use common::Server;
use common::netns::Pair;

/// The MAC address of `dev` in the namespace `space`.
fn mac(space: &str, dev: &str) -> String {
    let out = Command::new("ip")
        .args([
            "netns",
            "exec",
            space,
            "cat",
            &format!("/sys/class/net/{dev}/address"),
        ])
        .output()
        .expect("ip netns exec");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[test]
fn a_forged_ipv4_mapped_source_from_another_host_is_dropped() {
    let test = "a_forged_ipv4_mapped_source_from_another_host_is_dropped";
    let Some(pair) = Pair::new("mp", test) else {
        return;
    };
    let server = Server::start_with(
        &mut pair.server_cmd(&["serve", "--proto", "udp", "--addr", "[::]:0", "-vv"]),
    );
    let port = server.port().to_string();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peers/forge_mapped.py");
    let dest = mac(&pair.server, &pair.server_if);
    let forged = Command::new("ip")
        .args([
            "netns",
            "exec",
            &pair.client,
            "python3",
            script,
            &pair.client_if,
            &dest,
        ])
        .args([
            "::ffff:127.0.0.1",
            "40000",
            Pair::SERVER_V6,
            &port,
            "forged",
        ])
        .status()
        .expect("python3");
    assert!(forged.success(), "the forged frame was not sent");
    // A real client after it: once it is answered, the forged datagram (read first, from
    // the same socket) was dropped or answered.
    let client = pair.client_udp();
    client
        .set_read_timeout(Some(common::STEP))
        .expect("SO_RCVTIMEO");
    client
        .send_to(b"real", (Pair::SERVER_V4, server.port()))
        .unwrap();
    let mut buf = [0u8; 16];
    let n = client.recv(&mut buf).expect("the real client's reply");
    assert_eq!(&buf[..n], b"REAL");
    let log = server.stderr();
    assert!(
        !log.contains("127.0.0.1:40000") && !log.contains("forged"),
        "the forged datagram was taken:\n{log}"
    );
}

/// Sends one datagram "LOOP" from [ADDR]:FROM to [ADDR]:TO, ADDR not this namespace's own:
/// IPV6_TRANSPARENT (root) lets a socket send from any address.
const FORGE_OWN: &str = r#"
import socket, sys
addr, sport, dport = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IPV6, 75, 1)
s.bind((addr, sport))
s.sendto(b"LOOP", (addr, dport))
"#;

/// Sends [`FORGE_OWN`]'s datagram from the client's namespace, from the server's own IPv6
/// address and port `from` to its port `to`.
fn forge_own(pair: &Pair, from: u16, to: u16) {
    // The server's link address is set, not asked for: the one datagram goes out at once.
    let lladdr = mac(&pair.server, &pair.server_if);
    let neigh = Command::new("ip")
        .args([
            "-n",
            &pair.client,
            "neigh",
            "replace",
            Pair::SERVER_V6,
            "lladdr",
        ])
        .args([lladdr.as_str(), "dev", &pair.client_if, "nud", "permanent"])
        .status()
        .expect("ip neigh");
    assert!(neigh.success(), "ip neigh replace failed");
    let forged = Command::new("ip")
        .args(["netns", "exec", &pair.client, "python3", "-c", FORGE_OWN])
        .args([Pair::SERVER_V6, &from.to_string(), &to.to_string()])
        .status()
        .expect("python3");
    assert!(forged.success(), "the forged datagram was not sent");
}

/// `serve --proto udp --addr [::]:0 --allow-remote-exec` and `rest` in the server's
/// namespace.
fn udp_exec(pair: &Pair, rest: &[&str]) -> Server {
    let mut args = vec![
        "serve",
        "--proto",
        "udp",
        "--addr",
        "[::]:0",
        "--allow-remote-exec",
    ];
    args.extend_from_slice(rest);
    Server::start_with(&mut pair.server_cmd(&args))
}

/// The `messages N` of a server's closing line.
fn messages(log: &str) -> u64 {
    let at = log
        .rfind("messages ")
        .expect("a closing line with the counts")
        + 9;
    let digits: String = log[at..].chars().take_while(char::is_ascii_digit).collect();
    digits.parse().unwrap()
}

/// One datagram from another host that claims the servers' own IPv6 address, sent from one
/// echo server's port to another's: Linux delivers it, so the loop it starts between them is
/// cut as for a source elsewhere (16 repeats in a row), not as for one on this host (1000).
#[test]
fn a_forged_own_ipv6_source_from_another_host_is_not_this_host() {
    let test = "a_forged_own_ipv6_source_from_another_host_is_not_this_host";
    let Some(pair) = Pair::new("o6", test) else {
        return;
    };
    let echo = || common::echo_server("udp", "[::]:0", Some(&pair));
    let (a, b) = (echo(), echo());
    forge_own(&pair, b.port(), a.port());
    let deadline = std::time::Instant::now() + common::STEP;
    while !(a.stderr().contains("dropped") || b.stderr().contains("dropped")) {
        assert!(
            std::time::Instant::now() < deadline,
            "the loop was never cut:\n{}\n{}",
            a.stderr(),
            b.stderr()
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // The counts close stdout.
    let (_, a_log, _) = a.stop("INT");
    let (_, b_log, _) = b.stop("INT");
    let total = messages(&a_log) + messages(&b_log);
    assert!(
        total < 100,
        "one forged datagram made {total} echoes:\n{a_log}\n{b_log}"
    );
}

/// `--exec` with `--allow uid:0` looks up who sent a datagram from this host by the socket
/// on its port; a datagram from another host claiming the server's own IPv6 address and a
/// port root holds must not pass as root's.
#[test]
fn a_forged_own_ipv6_source_does_not_pass_as_a_local_user_for_exec() {
    let test = "a_forged_own_ipv6_source_does_not_pass_as_a_local_user_for_exec";
    let Some(pair) = Pair::new("o7", test) else {
        return;
    };
    let dir = common::tempdir();
    let ran = dir.path().join("ran");
    // A socket of root's on a port of the server's host, as any root daemon holds.
    let holder =
        Server::start_with(&mut pair.server_cmd(&["serve", "--proto", "udp", "--addr", "[::]:0"]));
    let exec = udp_exec(
        &pair,
        &["--allow", "uid:0", "--exec", "touch", ran.to_str().unwrap()],
    );
    forge_own(&pair, holder.port(), exec.port());
    let deadline = std::time::Instant::now() + common::STEP;
    let log = loop {
        let log = exec.stderr();
        if log.contains("refused") || log.contains(" ran ") {
            break log;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no word of the datagram:\n{log}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    assert!(
        !ran.exists(),
        "a forged source ran the program as root:\n{log}"
    );
    assert!(log.contains("refused"), "{log}");
}

/// `--exec` over udp and a client on the server's host that sends from the host's own IPv6
/// address: refused (another host may forge that source), with the advice to send from
/// loopback, where the sender's user can be told.
#[test]
fn exec_from_this_hosts_own_ipv6_address_is_told_to_send_from_loopback() {
    let test = "exec_from_this_hosts_own_ipv6_address_is_told_to_send_from_loopback";
    let Some(pair) = Pair::new("o8", test) else {
        return;
    };
    let exec = udp_exec(&pair, &["--exec", "true"]);
    let to = format!("udp://[{}]:{}", Pair::SERVER_V6, exec.port());
    let out = pair
        .server_cmd(&["exec", "--timeout", "1s", &to])
        .output()
        .expect("netecho exec");
    assert!(!out.status.success(), "a sender that may be forged ran it");
    exec.wait_log("this host's own IPv6 address may come from any host");
    exec.wait_log("send from ::1 or 127.0.0.1");
}
