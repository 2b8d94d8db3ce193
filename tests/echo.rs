//! The echo service over every protocol and family: what `netecho send` prints, and what a
//! plain socket in the test gets back from the real server.

mod common;

use std::io::{Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::thread;

use common::netns::Pair;
use common::{Server, abstract_name, netecho, ok, run, tempdir};

/// `netecho send` of one message to `server` (URL form, so the protocol comes from it).
fn send_one(server: &Server, message: &str) -> String {
    ok(&netecho(&["send", &server.url(), message], b""))
}

#[test]
fn every_protocol_and_family_echoes_upper_case() {
    let dir = tempdir();
    let path = |name: &str| dir.path().join(name).display().to_string();
    let cases: Vec<(&str, String)> = vec![
        ("tcp", "127.0.0.1:0".into()),
        ("tcp", "[::1]:0".into()),
        ("udp", "127.0.0.1:0".into()),
        ("udp", "[::1]:0".into()),
        ("unix", path("stream.sock")),
        ("unix", abstract_name("stream")),
        ("unix-dgram", path("dgram.sock")),
        ("unix-dgram", abstract_name("dgram")),
        ("unix-seqpacket", path("seqpacket.sock")),
        ("unix-seqpacket", abstract_name("seqpacket")),
    ];
    for (proto, addr) in cases {
        let server = Server::start(&["--proto", proto, "--addr", &addr]);
        assert_eq!(server.proto, proto);
        if !addr.ends_with(":0") {
            assert_eq!(server.addr, addr, "listening line shows the address");
        }
        // With --proto and the bare address, as a user types it.
        let out = netecho(
            &["send", "--proto", proto, &server.addr, "hello", "world"],
            b"",
        );
        assert_eq!(ok(&out), "HELLO WORLD\n", "{proto} {addr}");
        // With the URL form, which sets the protocol itself.
        assert_eq!(
            send_one(&server, "url form"),
            "URL FORM\n",
            "{proto} {addr}"
        );
    }
}

#[test]
fn listening_line_shows_the_real_port() {
    let server = Server::start(&["--addr", "127.0.0.1:0"]);
    assert_eq!(server.proto, "tcp");
    assert!(server.addr.starts_with("127.0.0.1:"));
    assert_ne!(server.port(), 0);
}

#[test]
fn dual_stack_any_address_serves_ipv4_clients() {
    for proto in ["udp", "tcp"] {
        let server = Server::start(&["--proto", proto, "--addr", "[::]:0"]);
        assert!(server.addr.starts_with("[::]:"), "{}", server.addr);
        let v4 = format!("127.0.0.1:{}", server.port());
        let v6 = format!("[::1]:{}", server.port());
        for addr in [v4, v6] {
            let out = netecho(&["send", "--proto", proto, &addr, "hello"], b"");
            assert_eq!(ok(&out), "HELLO\n", "{proto} {addr}");
        }
    }
}

#[test]
fn the_commands_of_the_lesson_work_as_written() {
    // The exact commands from the README, on the default port when it is free here.
    if UdpSocket::bind("[::]:3234").is_err() {
        common::skip(
            "the_commands_of_the_lesson_work_as_written",
            "udp port 3234 free on [::] (the README's port; something here holds it)",
            common::Lacks::Environment,
        );
        return;
    }
    let server = Server::start(&["--proto", "udp", "--addr", "[::]:3234"]);
    assert_eq!(server.addr, "[::]:3234");
    let out = netecho(&["send", "--proto", "udp", "127.0.0.1:3234", "hello"], b"");
    assert_eq!(ok(&out), "HELLO\n");
    // A missing port is 3234.
    let out = netecho(&["send", "--proto", "udp", "127.0.0.1", "hi"], b"");
    assert_eq!(ok(&out), "HI\n");
}

#[test]
fn echo_transform_keeps_the_bytes() {
    let server = Server::start(&["--addr", "127.0.0.1:0", "--transform", "echo"]);
    assert_eq!(send_one(&server, "Hello, World"), "Hello, World\n");
}

#[test]
fn only_ascii_letters_change() {
    let server = Server::start(&["--proto", "udp", "--addr", "127.0.0.1:0"]);
    assert_eq!(
        send_one(&server, "héllo wörld ß 123!"),
        "HéLLO WöRLD ß 123!\n"
    );
}

/// Every byte value, ASCII lower case upper-cased and nothing else touched.
fn all_bytes() -> (Vec<u8>, Vec<u8>) {
    let sent: Vec<u8> = (0..=255u8).cycle().take(4096).collect();
    let expected = sent.iter().map(|b| b.to_ascii_uppercase()).collect();
    (sent, expected)
}

#[test]
fn binary_bytes_pass_through_tcp_and_udp() {
    let (sent, expected) = all_bytes();
    let tcp = Server::start(&["--addr", "127.0.0.1:0"]);
    let mut stream = TcpStream::connect(&tcp.addr).unwrap();
    stream.set_read_timeout(Some(common::STEP)).unwrap();
    stream.write_all(&sent).unwrap();
    let mut got = vec![0u8; sent.len()];
    stream.read_exact(&mut got).unwrap();
    assert_eq!(got, expected);

    let udp = Server::start(&["--proto", "udp", "--addr", "[::1]:0"]);
    let sock = UdpSocket::bind("[::1]:0").unwrap();
    sock.set_read_timeout(Some(common::STEP)).unwrap();
    sock.send_to(&sent, &udp.addr).unwrap();
    let mut buf = [0u8; 65536];
    let n = sock.recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], &expected[..]);
}

#[test]
fn one_mib_over_tcp_comes_back_whole_whatever_the_chunking() {
    let server = Server::start(&["--addr", "127.0.0.1:0"]);
    let message: Vec<u8> = (0..1 << 20).map(|i| b'a' + (i % 26) as u8).collect();
    let expected = message.to_ascii_uppercase();

    // Written in odd-sized chunks while another thread reads.
    let stream = TcpStream::connect(&server.addr).unwrap();
    stream.set_read_timeout(Some(common::STEP)).unwrap();
    let mut writer = stream.try_clone().unwrap();
    let to_send = message.clone();
    let sender = thread::spawn(move || {
        for chunk in to_send.chunks(7919) {
            writer.write_all(chunk).unwrap();
        }
    });
    let mut got = vec![0u8; message.len()];
    (&stream).read_exact(&mut got).unwrap();
    sender.join().unwrap();
    assert!(got == expected, "1 MiB reply differs");

    // Through the client: one 1 MiB line on stdin, one 1 MiB line out.
    let mut input = message.clone();
    input.push(b'\n');
    let out = netecho(&["send", &server.url()], &input);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut want = expected;
    want.push(b'\n');
    assert!(
        out.stdout == want,
        "client printed {} bytes",
        out.stdout.len()
    );
}

#[test]
fn zero_length_datagram_gets_an_empty_datagram_back() {
    let server = Server::start(&["--proto", "udp", "--addr", "127.0.0.1:0"]);
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(common::STEP)).unwrap();
    sock.send_to(b"", &server.addr).unwrap();
    let mut buf = [0u8; 16];
    let (n, from) = sock.recv_from(&mut buf).unwrap();
    assert_eq!((n, from.to_string()), (0, server.addr.clone()));
    // Through the client: an empty argument is an empty datagram, and an empty line back.
    assert_eq!(send_one(&server, ""), "\n");

    let dir = tempdir();
    let path = dir.path().join("d.sock");
    let server = Server::start(&["--proto", "unix-dgram", "--addr", path.to_str().unwrap()]);
    let client = UnixDatagram::bind(dir.path().join("client.sock")).unwrap();
    client.set_read_timeout(Some(common::STEP)).unwrap();
    client.send_to(b"", &path).unwrap();
    assert_eq!(client.recv(&mut buf).unwrap(), 0);
    drop(server);
}

#[test]
fn many_clients_at_once_each_get_their_own_replies() {
    let server = Server::start(&["--addr", "127.0.0.1:0"]);
    let clients: Vec<_> = (0..50)
        .map(|id| {
            let addr = server.addr.clone();
            thread::spawn(move || {
                let mut stream = TcpStream::connect(&addr).unwrap();
                stream.set_read_timeout(Some(common::STEP)).unwrap();
                for n in 0..20 {
                    let msg = format!("client {id} message {n};");
                    stream.write_all(msg.as_bytes()).unwrap();
                    let mut got = vec![0u8; msg.len()];
                    stream.read_exact(&mut got).unwrap();
                    assert_eq!(got, msg.to_uppercase().as_bytes());
                }
            })
        })
        .collect();
    for client in clients {
        client.join().expect("a client failed");
    }
    // One log line per connection.
    server.wait_log_count("closed by peer", 50);
}

#[test]
fn an_idle_client_never_blocks_another() {
    let dir = tempdir();
    let path = dir.path().join("s.sock").display().to_string();
    for (proto, addr) in [
        ("tcp", "127.0.0.1:0"),
        ("unix", path.as_str()),
        ("unix-seqpacket", "@x"),
    ] {
        let addr = if addr == "@x" {
            abstract_name("idle")
        } else {
            addr.to_string()
        };
        let server = Server::start(&["--proto", proto, "--addr", &addr]);
        let fds = common::open_fds(server.pid());
        // Connected and silent: the lesson's first server would wait on it forever.
        let _idle_tcp = (proto == "tcp").then(|| TcpStream::connect(&server.addr).unwrap());
        let _idle_unix = (proto == "unix").then(|| UnixStream::connect(&server.addr).unwrap());
        let _idle_seq = (proto == "unix-seqpacket").then(|| {
            let s = socket2::Socket::new(socket2::Domain::UNIX, socket2::Type::SEQPACKET, None)
                .unwrap();
            let name = format!("\0{}", &server.addr[1..]);
            let addr = socket2::SockAddr::unix(std::ffi::OsStr::new(&name)).unwrap();
            s.connect(&addr).unwrap();
            s
        });
        // The server has accepted it (one more descriptor) before the other client comes.
        common::eventually(&format!("{proto}: the idle connection accepted"), || {
            (common::open_fds(server.pid()) > fds).then_some(())
        });
        assert_eq!(
            send_one(&server, "still served"),
            "STILL SERVED\n",
            "{proto}"
        );
    }
}

#[test]
fn an_empty_seqpacket_message_is_logged_as_what_was_seen_not_as_a_close() {
    for model in ["iterative", "threads", "event", "fork", "uring"] {
        let name = abstract_name(&format!("empty-seq-{model}"));
        let server = common::serve_model(model, "unix-seqpacket", &name);
        let client = common::Plain::connect("unix-seqpacket", &server.addr);
        client.exchange(b"hi");
        // An empty message, the connection still open: seqpacket reads it as 0 bytes, as
        // it would read the close, and the log says it cannot tell which.
        client.send(b"");
        let log = server.wait_log("2 bytes in, 2 bytes out");
        let line = log.lines().find(|l| l.contains("2 bytes in")).unwrap();
        assert!(
            line.ends_with("closed: a 0-byte read (an empty message or the peer's close)"),
            "{model}: {log}"
        );
        drop(client);
    }
}

/// `-vv` shows each message as the lesson's Python server prints it (`b'...'`), escaped so
/// one message is one log line; `-v` shows the sizes only.
#[test]
fn double_verbose_shows_each_message_as_python_prints_bytes() {
    // What -v logs once the message was read: a stream's read, a datagram's first sender.
    for (proto, read) in [("tcp", " bytes"), ("udp", "first datagram")] {
        let server = Server::start(&["-vv", "--proto", proto, "--addr", "127.0.0.1:0"]);
        ok(&netecho(&["send", &server.url(), "it's\tok"], b""));
        server.wait_log(r"received b'it\'s\tok'");
        let quiet = Server::start(&["-v", "--proto", proto, "--addr", "127.0.0.1:0"]);
        ok(&netecho(&["send", &quiet.url(), "hidden"], b""));
        let log = quiet.wait_log(read);
        assert!(
            !log.contains("received b'"),
            "{proto}: -v showed contents:\n{log}"
        );
    }
}

/// A link-local address with a zone binds and connects on the interface the zone names
/// (sin6_scope_id): a server on fe80::a of one end of a veth pair answers a client that
/// names its own end, for TCP and UDP alike.
#[test]
fn a_link_local_address_is_served_and_reached_on_the_interface_its_zone_names() {
    let test = "a_link_local_address_is_served_and_reached_on_the_interface_its_zone_names";
    let Some(ns) = Pair::new("ll", test) else {
        return;
    };
    ns.add_server_v6("fe80::a/64")
        .expect("a link-local address");
    for proto in ["tcp", "udp"] {
        let at = format!("[fe80::a%{}]:0", ns.server_if);
        let server =
            Server::start_with(&mut ns.server_cmd(&["serve", "--proto", proto, "--addr", &at]));
        assert!(
            server.addr.starts_with("[fe80::a%"),
            "{proto}: {}",
            server.addr
        );
        let port = server.port().to_string();
        let zoned = format!("fe80::a%{}", ns.client_if);
        let out = run(
            &mut ns.client_cmd(&["send", "--proto", proto, &zoned, &port, "near"]),
            b"",
        );
        assert!(ok(&out).contains("NEAR"), "{proto}");
    }
}

/// A client's abstract name that is not UTF-8 is logged escaped (`\xNN`, a backslash
/// doubled): two names never log the same, and the logged form given to --addr is that
/// name again.
#[test]
fn a_name_that_is_not_utf8_is_logged_escaped_and_reads_back() {
    use std::os::unix::ffi::OsStrExt;
    let raw = |name: &str, tail: &[u8]| {
        let bytes = [&[0u8][..], &name.as_bytes()[1..], tail].concat();
        socket2::SockAddr::unix(std::ffi::OsStr::from_bytes(&bytes)).expect("abstract name")
    };
    let base = abstract_name("esc");
    let written = format!("{base}\\xff\\\\");
    let server = Server::start(&["--addr", &written]);
    assert_eq!(
        server.addr, written,
        "the listening line shows the name as given"
    );
    let at = raw(&base, b"\xff\\");
    // Replacing bad bytes with U+FFFD would log these two clients the same.
    let clients = [
        (&b"-cl\xfe"[..], "-cl\\xfe "),
        ("-cl\u{fffd}".as_bytes(), "-cl\u{fffd} "),
    ];
    for (tail, logged) in clients {
        let sock = socket2::Socket::new(socket2::Domain::UNIX, socket2::Type::STREAM, None)
            .expect("socket");
        sock.bind(&raw(&base, tail))
            .expect("bind the client's name");
        sock.connect(&at).expect("connect by the bytes of the name");
        let mut stream = UnixStream::from(sock);
        stream.write_all(b"hi\n").unwrap();
        let mut reply = [0u8; 3];
        stream.read_exact(&mut reply).unwrap();
        assert_eq!(&reply, b"HI\n");
        drop(stream);
        server.wait_log(&format!("{base}{logged}"));
    }
}

/// A socket path with a backslash is printed as typed on the listening line, and that
/// line's address reaches the server: a path is written as it is, not escaped.
#[test]
fn a_path_with_a_backslash_reads_back_from_the_listening_line() {
    let dir = common::tempdir();
    let path = dir.path().join("a\\x41.sock");
    let path = path.to_str().unwrap();
    let server = Server::start(&["--addr", path]);
    assert_eq!(
        server.addr, path,
        "the listening line shows the path as typed"
    );
    assert!(
        std::path::Path::new(path).exists(),
        "the socket file {path}"
    );
    let out = netecho(&["send", &server.addr, "hi"], b"");
    assert_eq!(ok(&out), "HI\n");
}
