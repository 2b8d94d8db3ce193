//! A server's life (issue 2): how it stops (SIGTERM, SIGINT: summary, socket file removed),
//! what it survives (resets, half-closes, garbage), what it logs about its peers, the messages
//! too large for it, and the socket options of a restart (SO_REUSEADDR, IPV6_V6ONLY).

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixDatagram;
use std::process::Command;

use common::{
    Plain, STEP, Server, abstract_name, as_nobody, bin, can_switch_user, eventually, fails,
    message, netecho, ok, run, summary, tempdir,
};

const MODELS: [&str; 5] = ["iterative", "threads", "event", "fork", "uring"];

fn path_in(dir: &tempfile::TempDir, name: &str) -> String {
    dir.path().join(name).display().to_string()
}

#[test]
fn sigterm_and_sigint_print_the_summary_and_remove_the_socket_file() {
    let dir = tempdir();
    let mut cases = Vec::new();
    for signal in ["TERM", "INT"] {
        for proto in ["unix", "unix-dgram", "unix-seqpacket"] {
            cases.push((signal, proto, "event"));
        }
    }
    cases.push(("TERM", "unix", "fork"));
    cases.push(("INT", "unix-seqpacket", "threads"));
    cases.push(("TERM", "unix-dgram", "fork"));
    cases.push(("TERM", "unix", "uring"));
    cases.push(("INT", "unix-seqpacket", "uring"));
    cases.push(("TERM", "unix-dgram", "uring"));
    for (signal, proto, model) in cases {
        let path = path_in(&dir, &format!("{signal}-{proto}-{model}.sock"));
        let server = common::serve_model(model, proto, &path);
        assert!(std::path::Path::new(&path).exists());
        let raw = Plain::connect(proto, &path);
        raw.exchange(b"hello");
        drop(raw);
        if proto != "unix-dgram" {
            server.wait_log(common::peer_closed(proto));
        }
        let (status, stdout, log) = server.stop(signal);
        assert!(
            status.success(),
            "{signal} {proto} {model}: {status:?}\n{log}"
        );
        assert_eq!(
            stdout,
            format!("stopped by SIG{signal}: clients 1, messages 1, bytes in 5, bytes out 5\n"),
            "{proto} {model}"
        );
        assert!(
            log.contains(&format!("SIG{signal}: closing {proto} {path}")),
            "{log}"
        );
        assert!(
            !std::path::Path::new(&path).exists(),
            "{signal} {proto} {model}: {path} is still there"
        );
    }
}

#[test]
fn a_connection_open_at_the_stop_signal_is_closed_with_its_log_line() {
    // Fork children are ended by the signal itself, without a line of their own.
    for model in ["iterative", "threads", "event"] {
        for proto in ["tcp", "unix-seqpacket"] {
            let addr = match proto {
                "tcp" => "127.0.0.1:0".to_string(),
                _ => abstract_name(&format!("open-at-stop-{model}")),
            };
            let server = common::serve_model(model, proto, &addr);
            let raw = Plain::connect(proto, &server.addr);
            raw.exchange(b"still connected");
            let (status, stdout, log) = server.stop("INT");
            assert!(status.success(), "{model} {proto}: {status:?}\n{log}");
            assert!(
                log.contains("15 bytes in, 15 bytes out")
                    && log.contains("closed: server stopping"),
                "{model} {proto}:\n{log}"
            );
            assert!(
                stdout.starts_with("stopped by SIGINT: clients 1, messages 1, bytes in 15"),
                "{stdout}"
            );
            let mut buf = [0u8; 8];
            let n = (&raw.sock).read(&mut buf);
            assert!(
                matches!(n, Ok(0))
                    || matches!(&n, Err(e) if e.kind() == ErrorKind::ConnectionReset),
                "{model} {proto}: {n:?}"
            );
        }
    }
}

#[test]
fn an_abstract_name_leaves_no_file_and_is_free_again_at_once() {
    for proto in ["unix", "unix-dgram", "unix-seqpacket"] {
        let cwd = tempdir();
        let name = abstract_name(&format!("gone-{proto}"));
        let start = || {
            Server::start_with(
                Command::new(bin())
                    .current_dir(cwd.path())
                    .args(["serve", "--proto", proto, "--addr", &name]),
            )
        };
        let server = start();
        Plain::connect(proto, &name).exchange(b"abstract");
        let (status, stdout, _) = server.stop("TERM");
        assert!(status.success());
        assert!(
            stdout.starts_with("stopped by SIGTERM: clients 1"),
            "{stdout}"
        );
        let left: Vec<_> = std::fs::read_dir(cwd.path()).unwrap().collect();
        assert!(left.is_empty(), "{proto}: files left behind: {left:?}");
        // Nothing holds the name any more: a new server binds it straight away.
        let again = start();
        Plain::connect(proto, &name).exchange(b"again");
        drop(again);
    }
}

#[test]
fn the_server_survives_a_client_reset() {
    let dir = tempdir();
    for model in MODELS {
        // TCP: SO_LINGER 0, so close sends RST while the server waits in recv.
        let server = Server::start(&["--model", model, "--addr", "127.0.0.1:0"]);
        let raw = Plain::connect("tcp", &server.addr);
        raw.exchange(b"before the reset");
        let port = raw.local_port();
        raw.reset();
        let line =
            format!("tcp 127.0.0.1:{port}: 16 bytes in, 16 bytes out, 1 read; reset by peer");
        server.wait_log(&line);
        Plain::connect("tcp", &server.addr).exchange(b"next client");

        // Unix stream: closing with a reply still unread resets the server's side.
        let path = path_in(&dir, &format!("reset-{model}.sock"));
        let server = common::serve_model(model, "unix", &path);
        let raw = Plain::connect("unix", &path);
        raw.send(b"unread");
        let mut peek = [std::mem::MaybeUninit::new(0u8); 6];
        assert_eq!(raw.sock.peek(&mut peek).unwrap(), 6, "the reply arrived");
        drop(raw);
        server.wait_log("6 bytes in, 6 bytes out, 1 read; reset by peer");
        Plain::connect("unix", &path).exchange(b"next client");
    }
}

#[test]
fn a_half_closed_client_still_gets_its_reply() {
    let dir = tempdir();
    for model in MODELS {
        for proto in ["tcp", "unix", "unix-seqpacket"] {
            let addr = match proto {
                "tcp" => "127.0.0.1:0".to_string(),
                _ => path_in(&dir, &format!("half-{model}-{proto}.sock")),
            };
            let server = common::serve_model(model, proto, &addr);
            let raw = Plain::connect(proto, &server.addr);
            let msg = message(1, 0, 3000);
            raw.send(&msg);
            // Nothing more from this side: the server reads end of stream after the message.
            raw.sock.shutdown(std::net::Shutdown::Write).unwrap();
            let mut got = Vec::new();
            for _ in 0..100 {
                let mut buf = vec![0u8; 65536];
                let n = (&raw.sock).read(&mut buf).expect("read after shutdown");
                if n == 0 {
                    break;
                }
                got.extend_from_slice(&buf[..n]);
            }
            assert!(
                got == msg.to_ascii_uppercase(),
                "{model} {proto}: {} bytes came back",
                got.len()
            );
            server.wait_log("3000 bytes in, 3000 bytes out");
            server.wait_log(common::peer_closed(proto));
            Plain::connect(proto, &server.addr).exchange(b"next client");
        }
    }
}

#[test]
fn garbage_and_binary_input_pass_through_unchanged_but_for_ascii_letters() {
    let dir = tempdir();
    let garbage: Vec<u8> = [
        &b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"[..], // a TLS ClientHello's start
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        b"\xff\xfe\xfd\x00\x00\xc3\x28\xa0\xa1\xe2\x28\xa1", // invalid UTF-8, NULs
        "ünïcödé ß".as_bytes(),
    ]
    .concat();
    let every_byte: Vec<u8> = (0..=255u8).cycle().take(8192).collect();
    for proto in ["tcp", "unix", "unix-dgram", "unix-seqpacket", "udp"] {
        let addr = match proto {
            "tcp" | "udp" => "127.0.0.1:0".to_string(),
            _ => path_in(&dir, &format!("garbage-{proto}.sock")),
        };
        let server = Server::start(&["--proto", proto, "--addr", &addr]);
        let raw = Plain::connect(proto, &server.addr);
        for msg in [&garbage, &every_byte] {
            raw.send(msg);
            let got = raw.reply(msg.len());
            let want: Vec<u8> = msg
                .iter()
                .map(|&b| if b.is_ascii_lowercase() { b - 32 } else { b })
                .collect();
            assert!(got == want, "{proto}: garbage came back changed");
        }
        drop(raw);
        // The server goes on.
        Plain::connect(proto, &server.addr).exchange(b"still serving");
        let out = netecho(&["send", &server.url(), "ok"], b"");
        assert_eq!(ok(&out), "OK\n");
    }
}

#[test]
fn unix_stream_and_seqpacket_peers_are_logged_with_pid_uid_and_gid() {
    let (uid, gid) = (nix::unistd::getuid(), nix::unistd::getgid());
    for (proto, count) in [("unix", "1 read"), ("unix-seqpacket", "1 message")] {
        let name = abstract_name(&format!("cred-{proto}"));
        let server = Server::start(&["--proto", proto, "--addr", &name]);
        // This test process as the peer.
        Plain::connect(proto, &name).exchange(b"whoami");
        let me = std::process::id();
        server.wait_log(&format!(
            "{proto} (unnamed) pid {me} uid {uid} gid {gid}: 6 bytes in, 6 bytes out, {count}; {}",
            common::peer_closed(proto)
        ));
        // Another process, another user: the kernel's credentials, not a guess.
        if can_switch_user() {
            let out = run(
                &mut as_nobody(&["send", "--proto", proto, &name, "hi"]),
                b"",
            );
            assert_eq!(ok(&out), "HI\n");
            server.wait_log("uid 65534 gid 65534: 2 bytes in, 2 bytes out");
            let log = server.stderr();
            let line = log
                .lines()
                .find(|l| l.contains("uid 65534 gid 65534"))
                .unwrap();
            let pid: u32 = line
                .split("pid ")
                .nth(1)
                .and_then(|r| r.split(' ').next())
                .and_then(|p| p.parse().ok())
                .unwrap_or_else(|| panic!("no pid in {line}"));
            assert_ne!(pid, me, "{line}");
        } else {
            common::skip(
                "unix_stream_and_seqpacket_peers_are_logged_with_pid_uid_and_gid (other-user half)",
                "root and setpriv (util-linux) to connect as nobody",
                common::Lacks::Provided,
            );
        }
    }
}

#[test]
fn an_unbound_unix_datagram_sender_is_logged_as_unanswerable_and_the_server_goes_on() {
    let dir = tempdir();
    for model in ["threads", "fork", "event", "uring"] {
        let path = path_in(&dir, &format!("unbound-{model}.sock"));
        let server = common::serve_model(model, "unix-dgram", &path);
        let unbound = UnixDatagram::unbound().unwrap();
        unbound.send_to(b"who am I", &path).unwrap();
        server.wait_log(
            "unix-dgram: dropped 1 datagram(s) from a socket with no address of its own (not bound)",
        );
        Plain::connect("unix-dgram", &path).exchange(b"a bound client");
        let (status, stdout, _) = server.stop("TERM");
        assert!(status.success());
        assert_eq!(
            summary(&stdout),
            ("SIGTERM".into(), 1, 1, 14, 14),
            "{model}: only the bound client counts"
        );
    }
}

#[test]
fn a_unix_datagram_over_the_buffer_is_logged_and_dropped_never_cut() {
    let dir = tempdir();
    for model in ["event", "threads", "fork", "uring"] {
        let path = path_in(&dir, &format!("big-{model}.sock"));
        let server = common::serve_model(model, "unix-dgram", &path);
        let raw = Plain::connect("unix-dgram", &path);
        raw.sock.set_send_buffer_size(1 << 20).unwrap();
        raw.send(&vec![b'a'; 100 * 1024]);
        // The next message's reply is the first thing back: nothing cut was sent before it.
        raw.exchange(b"small");
        server.wait_log(
            "dropped 1 datagram(s) larger than the 65536-byte receive buffer (MSG_TRUNC): dropped, never answered cut short",
        );
        raw.sock.set_nonblocking(true).unwrap();
        let mut buf = [0u8; 16];
        assert!(
            matches!((&raw.sock).read(&mut buf), Err(e) if e.kind() == ErrorKind::WouldBlock),
            "{model}: a second reply came"
        );
        let (_, stdout, _) = server.stop("TERM");
        assert_eq!(summary(&stdout), ("SIGTERM".into(), 1, 1, 5, 5), "{model}");
    }
}

#[test]
fn a_seqpacket_message_over_the_buffer_closes_that_connection_with_a_log_line() {
    let dir = tempdir();
    for model in MODELS {
        let path = path_in(&dir, &format!("bigseq-{model}.sock"));
        let server = common::serve_model(model, "unix-seqpacket", &path);
        let raw = Plain::connect("unix-seqpacket", &path);
        raw.sock.set_send_buffer_size(1 << 20).unwrap();
        raw.exchange(b"first");
        raw.send(&vec![b'a'; 100 * 1024]);
        // No cut reply: the connection ends instead.
        let mut buf = vec![0u8; 200 * 1024];
        let n = (&raw.sock).read(&mut buf);
        assert!(
            matches!(n, Ok(0)) || matches!(&n, Err(e) if e.kind() == ErrorKind::ConnectionReset),
            "{model}: {n:?}"
        );
        server.wait_log(
            "5 bytes in, 5 bytes out, 1 message; closed: a 102400-byte message is larger than the 65536-byte buffer",
        );
        Plain::connect("unix-seqpacket", &path).exchange(b"next client");
    }
}

/// Whether /proc/net/tcp shows a connection in TIME_WAIT on local port `port`.
fn time_wait_on(port: u16) -> bool {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
    table.lines().skip(1).any(|l| {
        let cols: Vec<&str> = l.split_whitespace().collect();
        cols.len() > 3 && cols[1].ends_with(&format!(":{port:04X}")) && cols[3] == "06"
    })
}

/// Runs a server with `flags`, has it close a connection first (it is stopping), and waits
/// until that connection sits in TIME_WAIT on the server's port; returns the address.
fn leave_time_wait(flags: &[&str]) -> String {
    let mut args = flags.to_vec();
    args.extend(["--addr", "127.0.0.1:0"]);
    let server = Server::start(&args);
    let addr = server.addr.clone();
    let port = server.port();
    let client = TcpStream::connect(&addr).unwrap();
    client.set_read_timeout(Some(STEP)).unwrap();
    (&client).write_all(b"hi").unwrap();
    let mut buf = [0u8; 2];
    (&client).read_exact(&mut buf).unwrap();
    // The server closes first, so its side waits in TIME_WAIT once the client closes too.
    let (status, _, _) = server.stop("TERM");
    assert!(status.success());
    assert_eq!((&client).read(&mut buf).unwrap(), 0);
    drop(client);
    eventually("TIME_WAIT on the server's port", || {
        time_wait_on(port).then_some(())
    });
    addr
}

#[test]
fn a_restart_on_a_port_in_time_wait_needs_so_reuseaddr() {
    // Without SO_REUSEADDR the restart fails, and the error says why.
    let addr = leave_time_wait(&["--no-reuseaddr"]);
    let out = netecho(&["serve", "--no-reuseaddr", "--addr", &addr], b"");
    let line = fails(&out, 1);
    assert!(
        line.contains(&addr)
            && line.contains("address already in use")
            && line.contains("TIME_WAIT")
            && line.contains("only when both set SO_REUSEADDR"),
        "{line}"
    );
    let port: u16 = addr.rsplit(':').next().unwrap().parse().unwrap();
    assert!(
        time_wait_on(port),
        "the TIME_WAIT lasted through the restart"
    );

    // With it (the default), the same restart binds the port at once. (Linux wants
    // SO_REUSEADDR on both: the old connection's socket and the new listener.)
    let addr = leave_time_wait(&[]);
    let again = Server::start(&["--addr", &addr]);
    assert_eq!(again.addr, addr);
    Plain::connect("tcp", &addr).exchange(b"restarted");
}

#[test]
fn v6only_on_the_any_address_refuses_ipv4_clients_and_dual_stack_serves_them() {
    if std::net::UdpSocket::bind("[::1]:0").is_err() {
        common::skip(
            "v6only_on_the_any_address_refuses_ipv4_clients_and_dual_stack_serves_them",
            "an IPv6 loopback (::1) on this machine",
            common::Lacks::Environment,
        );
        return;
    }
    for proto in ["tcp", "udp"] {
        let only6 = Server::start(&["--v6only", "--proto", proto, "--addr", "[::]:0"]);
        let port = only6.port();
        let v4 = format!("127.0.0.1:{port}");
        let v6 = format!("[::1]:{port}");
        let out = netecho(&["send", "--proto", proto, &v6, "six"], b"");
        assert_eq!(ok(&out), "SIX\n", "{proto}");
        let out = netecho(
            &[
                "send",
                "--proto",
                proto,
                "--retries",
                "0",
                "--timeout",
                "1s",
                &v4,
                "four",
            ],
            b"",
        );
        let line = fails(&out, 1);
        let refused = match proto {
            "tcp" => line.contains("refused"),
            _ => line.contains("nothing is listening"),
        };
        assert!(refused && line.contains(&v4), "{proto}: {line}");
        drop(only6);

        let dual = Server::start(&["--proto", proto, "--addr", "[::]:0"]);
        let v4 = format!("127.0.0.1:{}", dual.port());
        let out = netecho(&["send", "--proto", proto, &v4, "four"], b"");
        assert_eq!(ok(&out), "FOUR\n", "{proto}");
    }
}
