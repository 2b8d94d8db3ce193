//! Multicast and broadcast between two network namespaces the tests make (servers in one,
//! clients in the other, joined by a veth pair), IPv4 and IPv6: a server joins a group with
//! --join, each member answers unicast from its own address, and `send` prints every answer
//! with its source. Addresses that need a flag are refused with a hint, before any traffic.

mod common;

use common::netns::Pair;
use common::{Server, fails, netecho, ok, run};

/// `send` from the client namespace; its stdout and whether it succeeded. A send to a group
/// or a broadcast address prints the answers of one --timeout, however many come: 3 s, so
/// that every member's answer is in it on a loaded machine too.
fn send(ns: &Pair, args: &[&str]) -> std::process::Output {
    let mut full = vec!["send", "--timeout", "3s"];
    full.extend_from_slice(args);
    run(&mut ns.client_cmd(&full), b"")
}

#[test]
fn ipv4_group_members_answer_from_their_own_addresses() {
    let Some(ns) = Pair::new("m4", "ipv4_group_members_answer_from_their_own_addresses") else {
        return;
    };
    let server = Server::start_with(&mut ns.server_cmd(&[
        "serve",
        "--proto",
        "udp",
        "--addr",
        "239.1.2.3:0",
        "--join",
        "239.1.2.3",
        "--iface",
        &ns.server_if,
    ]));
    let port = server.port().to_string();
    let group = format!("udp://239.1.2.3:{port}");
    let out = send(&ns, &["--iface", &ns.client_if, &group, "hello"]);
    assert_eq!(ok(&out), format!("{}:{port} HELLO\n", Pair::SERVER_V4));
    // A member on the sender's own host hears the group too (IP_MULTICAST_LOOP), unless
    // --no-loop: then only the other namespace's member answers.
    let here = Server::start_with(&mut ns.client_cmd(&[
        "serve",
        "--proto",
        "udp",
        "--addr",
        &format!("0.0.0.0:{port}"),
        "--join",
        "239.1.2.3",
        "--iface",
        &ns.client_if,
    ]));
    let out = send(
        &ns,
        &["--iface", &ns.client_if, "--ttl", "1", &group, "two"],
    );
    let mut lines: Vec<String> = ok(&out).lines().map(String::from).collect();
    lines.sort();
    assert_eq!(
        lines,
        [
            format!("{}:{port} TWO", Pair::SERVER_V4),
            format!("{}:{port} TWO", Pair::CLIENT_V4)
        ]
    );
    let out = send(&ns, &["--iface", &ns.client_if, "--no-loop", &group, "one"]);
    assert_eq!(ok(&out), format!("{}:{port} ONE\n", Pair::SERVER_V4));
    drop(here);
    // A server bound to the group without joining it would hear nothing: refused.
    let out = run(
        &mut ns.server_cmd(&["serve", "--proto", "udp", "--addr", "239.1.2.4:0"]),
        b"",
    );
    assert!(fails(&out, 2).contains("--join 239.1.2.4"));
}

#[test]
fn ipv6_group_members_answer_from_their_own_addresses() {
    let Some(ns) = Pair::new("m6", "ipv6_group_members_answer_from_their_own_addresses") else {
        return;
    };
    let server = Server::start_with(&mut ns.server_cmd(&[
        "serve",
        "--proto",
        "udp",
        "--addr",
        "[::]:0",
        "--join",
        "ff05::1:3",
        "--join",
        "239.1.2.3",
        "--iface",
        &ns.server_if,
    ]));
    let port = server.port().to_string();
    let group = format!("udp://[ff05::1:3]:{port}");
    let out = send(&ns, &["--iface", &ns.client_if, &group, "hello"]);
    assert_eq!(ok(&out), format!("[{}]:{port} HELLO\n", Pair::SERVER_V6));
    // A link-local group needs its link, as a zone or --iface.
    let link = format!("udp://[ff02::1:3]:{port}");
    assert!(fails(&send(&ns, &[&link, "x"]), 2).contains("--iface"));
    // An IPv4 group joined by the dual-stack socket answers over IPv4.
    let v4 = format!("udp://239.1.2.3:{port}");
    let out = send(&ns, &["--iface", &ns.client_if, &v4, "four"]);
    assert_eq!(ok(&out), format!("{}:{port} FOUR\n", Pair::SERVER_V4));
}

#[test]
fn broadcast_needs_the_flag_and_then_hears_every_host() {
    let Some(ns) = Pair::new("bc", "broadcast_needs_the_flag_and_then_hears_every_host") else {
        return;
    };
    let server =
        Server::start_with(&mut ns.server_cmd(&["serve", "--proto", "udp", "--addr", "0.0.0.0:0"]));
    let port = server.port().to_string();
    let to = format!("udp://{}:{port}", Pair::BROADCAST_V4);
    let out = send(&ns, &["--broadcast", &to, "hello"]);
    assert_eq!(ok(&out), format!("{}:{port} HELLO\n", Pair::SERVER_V4));
    // The kernel refuses a subnet's broadcast address without SO_BROADCAST (EACCES).
    let err = fails(&send(&ns, &[&to, "hello"]), 1);
    assert!(
        err.contains("EACCES") && err.contains("--broadcast"),
        "{err}"
    );
    // A dual-stack server tells the broadcast from its own address by IP_PKTINFO too.
    for model in ["event", "threads"] {
        let dual = Server::start_with(&mut ns.server_cmd(&[
            "serve", "--proto", "udp", "--addr", "[::]:0", "--model", model,
        ]));
        let port = dual.port().to_string();
        let to = format!("udp://{}:{port}", Pair::BROADCAST_V4);
        let out = send(&ns, &["--broadcast", &to, "dual"]);
        assert_eq!(
            ok(&out),
            format!("{}:{port} DUAL\n", Pair::SERVER_V4),
            "{model}"
        );
    }
}

#[test]
fn multicast_and_broadcast_addresses_without_what_they_need_are_refused_with_a_hint() {
    let cases: [(&[&str], &str); 9] = [
        (
            &["serve", "--proto", "udp", "--addr", ":0", "--iface", "lo"],
            "add --join GROUP",
        ),
        (
            &["serve", "--proto", "udp", "--addr", "239.1.2.3:0"],
            "add --join 239.1.2.3",
        ),
        (
            &["serve", "--proto", "udp", "--addr", "[ff05::7]:0"],
            "add --join ff05::7",
        ),
        (
            &[
                "serve",
                "--proto",
                "udp",
                "--addr",
                "127.0.0.1:0",
                "--join",
                "239.1.2.3",
            ],
            "--addr :PORT",
        ),
        (
            &[
                "serve",
                "--proto",
                "udp",
                "--addr",
                "0.0.0.0:0",
                "--join",
                "10.0.0.1",
            ],
            "not a multicast group",
        ),
        (
            // Bound to one group, joined to another: it would hear neither.
            &[
                "serve",
                "--proto",
                "udp",
                "--addr",
                "239.1.1.2:0",
                "--join",
                "239.1.1.1",
            ],
            "add --join 239.1.1.2",
        ),
        (&["send", "udp://255.255.255.255:9", "x"], "add --broadcast"),
        (&["send", "239.1.2.3:9", "x"], "--proto udp"),
        (&["send", "udp://[ff02::1]:9", "x"], "--iface NAME"),
    ];
    for (args, hint) in cases {
        let err = fails(&netecho(args, b""), 2);
        assert!(err.contains(hint), "{args:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{args:?}: {err}");
    }
}

#[test]
fn programs_and_files_ignore_a_request_sent_to_a_group() {
    let test = "programs_and_files_ignore_a_request_sent_to_a_group";
    let Some(ns) = Pair::new("mx", test) else {
        return;
    };
    let exec = Server::start_with(&mut ns.server_cmd(&[
        "serve",
        "--proto",
        "udp",
        "--addr",
        "0.0.0.0:0",
        "--join",
        "239.1.2.5",
        "--iface",
        &ns.server_if,
        "--allow-remote-exec",
        "--exec",
        "tr",
        "a-z",
        "A-Z",
    ]));
    let group = format!("udp://239.1.2.5:{}", exec.port());
    let err = fails(&send(&ns, &["--iface", &ns.client_if, &group, "run"]), 1);
    assert!(err.contains("no answer from any host"), "{err}");
    exec.wait_log("(a group or broadcast) ignored");
}

#[test]
fn no_answer_to_a_broadcast_gets_broadcast_advice() {
    let port = common::free_port().to_string();
    let to = format!("udp://127.255.255.255:{port}");
    let out = netecho(
        &["send", "--timeout", "300ms", "--broadcast", &to, "x"],
        b"",
    );
    let line = fails(&out, 1);
    assert!(line.contains("--addr 0.0.0.0:PORT"), "{line}");
    assert!(!line.contains("--join"), "{line}");
}

/// A group member that answers one message from two sockets: `HELLO` 50 times from the
/// socket that joined, then once from another; prints its port once listening.
const COPIER: &str = r#"
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(('0.0.0.0', 0))
s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP,
             socket.inet_aton('239.1.2.5') + socket.inet_aton(sys.argv[1]))
print(s.getsockname()[1], flush=True)
d, a = s.recvfrom(65535)
for _ in range(50): s.sendto(b'HELLO', a)
other = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
other.sendto(b'HELLO', a)
"#;

#[test]
fn a_member_sending_copies_gets_one_line_with_their_count() {
    let test = "a_member_sending_copies_gets_one_line_with_their_count";
    if !common::have("python3", test) {
        return;
    }
    let Some(ns) = Pair::new("mc", test) else {
        return;
    };
    let mut copier = std::process::Command::new("ip")
        .args([
            "netns",
            "exec",
            &ns.server,
            "python3",
            "-c",
            COPIER,
            Pair::SERVER_V4,
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("start python3");
    let mut port = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(copier.stdout.take().unwrap()),
        &mut port,
    )
    .expect("the member's port");
    let group = format!("udp://239.1.2.5:{}", port.trim());
    let out = send(&ns, &["--iface", &ns.client_if, &group, "hello"]);
    let _ = copier.kill();
    let _ = copier.wait();
    let text = ok(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    let first = format!("{}:{} HELLO (50 copies)", Pair::SERVER_V4, port.trim());
    assert_eq!(lines[0], first, "{text}");
    assert!(
        lines[1].starts_with(Pair::SERVER_V4) && lines[1].ends_with(" HELLO"),
        "{text}"
    );
}
