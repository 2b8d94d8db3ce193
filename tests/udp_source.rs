//! A udp server on every address (0.0.0.0, [::]) answers each datagram from the address it
//! was sent to: a client *connected* to 127.0.0.2 (nc -u, Python, `netecho send`, `get`,
//! `exec`) drops a reply from 127.0.0.1, so without IP_PKTINFO it hears nothing. Under every
//! server model, the batched one included; IPv6 inside a network namespace the test makes.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::process::{Command, Stdio};

use common::netns::Pair;
use common::{STEP, Server, have, netecho, ok, output_within};

const MODELS: [&str; 5] = ["event", "threads", "iterative", "fork", "uring"];

/// What a client connected to `to` hears back for `msg`, in Rust: the reply, or `None`
/// after STEP of silence (the reply came from elsewhere and the kernel dropped it). The
/// tests expect a reply: a long wait costs only a failing run its time.
fn connected_exchange(bind: &str, to: SocketAddr, msg: &[u8]) -> Option<Vec<u8>> {
    let sock = UdpSocket::bind(bind).expect("bind the client");
    sock.connect(to).expect("connect");
    sock.set_read_timeout(Some(STEP)).unwrap();
    sock.send(msg).expect("send");
    let mut buf = [0u8; 2048];
    sock.recv(&mut buf).ok().map(|n| buf[..n].to_vec())
}

/// `nc -u` (netcat-openbsd) sends `line` to HOST PORT from a connected socket and prints
/// what comes back within its 2-second idle wait. `prefix` runs it in a namespace.
fn nc(prefix: &[&str], extra: &[&str], host: &str, port: u16, line: &str) -> String {
    let mut cmd = Command::new(prefix.first().copied().unwrap_or("nc.openbsd"));
    let args: Vec<&str> = prefix.iter().skip(1).copied().collect();
    cmd.args(&args);
    if !prefix.is_empty() {
        cmd.arg("nc.openbsd");
    }
    let port = port.to_string();
    cmd.args(["-u", "-w", "2"])
        .args(extra)
        .args([host, &port])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("start nc");
    use std::io::Write;
    let _ = child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{line}\n").as_bytes());
    let out = output_within(child, "nc -u", STEP);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Python's socket module, connected, as a script would do it.
fn python(prefix: &[&str], bind: &str, host: &str, port: u16) -> String {
    let script = format!(
        "import socket\n\
         s = socket.socket(socket.AF_INET6 if ':' in {host:?} else socket.AF_INET, socket.SOCK_DGRAM)\n\
         s.bind(({bind:?}, 0))\n\
         s.connect(({host:?}, {port}))\n\
         s.settimeout(10)\n\
         s.send(b'python')\n\
         try:\n    print(s.recv(2048).decode())\n\
         except socket.timeout:\n    print('timeout')\n"
    );
    let mut cmd = match prefix.split_first() {
        Some((first, rest)) => {
            let mut c = Command::new(first);
            c.args(rest).arg("python3");
            c
        }
        None => Command::new("python3"),
    };
    let child = cmd
        .args(["-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start python3");
    let out = output_within(child, "python3", STEP);
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn a_server_on_0_0_0_0_answers_from_127_0_0_2_under_every_model() {
    let test = "a_server_on_0_0_0_0_answers_from_127_0_0_2_under_every_model";
    let tools = have("nc.openbsd", test) & have("python3", test);
    for model in MODELS {
        let server = Server::start(&["--proto", "udp", "--addr", "0.0.0.0:0", "--model", model]);
        let port = server.port();
        let to: SocketAddr = format!("127.0.0.2:{port}").parse().unwrap();
        assert_eq!(
            connected_exchange("127.0.0.1:0", to, b"rust").as_deref(),
            Some(&b"RUST"[..]),
            "--model {model}: a connected client got no reply from 127.0.0.2"
        );
        let out = netecho(
            &[
                "send",
                "--timeout",
                "5s",
                "--retries",
                "1",
                &format!("udp://{to}"),
                "hello",
            ],
            b"",
        );
        assert_eq!(ok(&out), "HELLO\n", "--model {model}");
        if tools {
            assert_eq!(
                nc(&[], &[], "127.0.0.2", port, "nc"),
                "NC\n",
                "--model {model}"
            );
            assert_eq!(python(&[], "127.0.0.1", "127.0.0.2", port), "PYTHON");
        }
    }
}

#[test]
fn a_dual_stack_server_answers_an_ipv4_mapped_request_from_its_destination() {
    let test = "a_dual_stack_server_answers_an_ipv4_mapped_request_from_its_destination";
    let tools = have("nc.openbsd", test);
    for model in ["event", "threads"] {
        let server = Server::start(&["--proto", "udp", "--addr", "[::]:0", "--model", model]);
        let port = server.port();
        let to: SocketAddr = format!("127.0.0.2:{port}").parse().unwrap();
        assert_eq!(
            connected_exchange("127.0.0.1:0", to, b"mapped").as_deref(),
            Some(&b"MAPPED"[..]),
            "--model {model}"
        );
        let six: SocketAddr = format!("[::1]:{port}").parse().unwrap();
        assert_eq!(
            connected_exchange("[::1]:0", six, b"six").as_deref(),
            Some(&b"SIX"[..])
        );
        if tools {
            assert_eq!(
                nc(&[], &[], "127.0.0.2", port, "nc"),
                "NC\n",
                "--model {model}"
            );
        }
    }
}

#[test]
fn file_transfers_and_programs_answer_from_the_address_asked() {
    let dir = common::tempdir();
    std::fs::write(dir.path().join("f.txt"), b"a file\n").unwrap();
    // A dual-stack server's transfer socket is IPv6 too, bound to ::ffff:127.0.0.2.
    for (bind, to) in [
        ("0.0.0.0:0", "127.0.0.2"),
        ("[::]:0", "127.0.0.2"),
        ("[::]:0", "[::1]"),
    ] {
        let dir_arg = dir.path().to_str().unwrap();
        let files = Server::start(&["--proto", "udp", "--addr", bind, "--files", dir_arg]);
        let got = dir.path().join("got.txt");
        let _ = std::fs::remove_file(&got);
        let url = format!("udp://{to}:{}", files.port());
        let out = netecho(
            &[
                "get",
                "--timeout",
                "5s",
                &url,
                "f.txt",
                "-o",
                got.to_str().unwrap(),
            ],
            b"",
        );
        ok(&out);
        assert_eq!(std::fs::read(&got).unwrap(), b"a file\n", "{bind} {to}");
    }
    let exec = Server::start(&[
        "--proto",
        "udp",
        "--addr",
        "[::]:0",
        "--allow-remote-exec",
        "--exec",
        "tr",
        "a-z",
        "A-Z",
    ]);
    let out = netecho(
        &[
            "exec",
            "--timeout",
            "10s",
            &format!("udp://127.0.0.2:{}", exec.port()),
        ],
        b"program\n",
    );
    assert_eq!(ok(&out), "PROGRAM\n");
}

#[test]
fn ipv6_replies_come_from_the_address_the_client_sent_to() {
    let test = "ipv6_replies_come_from_the_address_the_client_sent_to";
    let Some(ns) = Pair::new("u6", test) else {
        return;
    };
    let tools = have("nc.openbsd", test) & have("python3", test);
    // fd00:234::1/112 is the address the kernel picks to reach the client on its own (the
    // longer prefix); the client sends to fd00:234::4.
    for model in ["event", "threads"] {
        let server = Server::start_with(&mut ns.server_cmd(&[
            "serve", "--proto", "udp", "--addr", "[::]:0", "--model", model,
        ]));
        let port = server.port();
        let to = format!("udp://[{}]:{port}", Pair::SERVER_V6_OTHER);
        let out = common::run(
            &mut ns.client_cmd(&["send", "--timeout", "5s", "--retries", "1", &to, "hello"]),
            b"",
        );
        assert_eq!(ok(&out), "HELLO\n", "--model {model}");
        if tools {
            let prefix = ["ip", "netns", "exec", &ns.client];
            let host = Pair::SERVER_V6_OTHER;
            assert_eq!(
                nc(&prefix, &[], host, port, "nc"),
                "NC\n",
                "--model {model}"
            );
            assert_eq!(python(&prefix, "::", host, port), "PYTHON");
        }
    }
}
