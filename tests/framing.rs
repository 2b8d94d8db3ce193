//! Message boundaries on a stream (the "sticky packet" lesson): bursts, framings, and frames
//! a hostile client sends.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;

use common::{Server, netecho, ok};

#[test]
fn a_burst_over_tcp_can_merge_but_datagrams_never_do() {
    let tcp = Server::start(&["-v", "--addr", "127.0.0.1:0"]);
    let out = netecho(&["send", "--burst", "20", &tcp.addr, "hello"], b"");
    let text = ok(&out);
    // Whatever the reads, all 20 replies are there, in order.
    assert_eq!(text.replace('\n', ""), "HELLO".repeat(20));
    assert!(text.lines().count() <= 20);
    let log = tcp.wait_log("100 bytes in");
    assert!(log.contains("read "), "-v logs every read's size: {log}");

    for proto in ["udp", "unix-dgram", "unix-seqpacket"] {
        let addr = if proto == "udp" {
            "127.0.0.1:0".to_string()
        } else {
            common::abstract_name(proto)
        };
        let server = Server::start(&["--proto", proto, "--addr", &addr]);
        let out = netecho(&["send", "--burst", "20", &server.url(), "hello"], b"");
        assert_eq!(
            ok(&out),
            "HELLO\n".repeat(20),
            "{proto}: one reply per message"
        );
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(err.contains("in 20 messages"), "{proto}: {err}");
    }
}

#[test]
fn with_a_framing_a_tcp_burst_comes_back_as_separate_replies() {
    for framing in ["line", "length"] {
        let server = Server::start(&["--addr", "127.0.0.1:0", "--framing", framing]);
        let out = netecho(
            &[
                "send",
                "--framing",
                framing,
                "--burst",
                "30",
                &server.addr,
                "hi there",
            ],
            b"",
        );
        assert_eq!(ok(&out), "HI THERE\n".repeat(30), "{framing}");
        let log = server.wait_log("30 frames in");
        assert!(log.contains("closed by peer"), "{log}");
        // Piped lines over a framed connection, one reply each.
        let out = netecho(
            &["send", "--framing", framing, &server.addr],
            b"a\nbb\nccc\n",
        );
        assert_eq!(ok(&out), "A\nBB\nCCC\n", "{framing}");
    }
}

/// Asserts that the server closed `stream`: a read returns end of stream (or a reset, when
/// the server closed with bytes of ours unread). A read that times out means the server
/// logged the bad frame but kept the connection open, and fails the test.
fn assert_closed(stream: &mut TcpStream, what: &str) {
    let mut buf = [0u8; 16];
    match stream.read(&mut buf) {
        Ok(0) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        Ok(n) => panic!("{what}: the server sent {n} bytes instead of closing"),
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
            panic!(
                "{what}: the connection is still open after {:?}",
                common::STEP
            )
        }
        Err(e) => panic!("{what}: read: {e}"),
    }
}

/// A raw TCP client for sending frames by hand.
fn connect(server: &Server) -> TcpStream {
    let stream = TcpStream::connect(&server.addr).unwrap();
    stream.set_read_timeout(Some(common::STEP)).unwrap();
    stream
}

#[test]
fn a_frame_split_across_reads_is_put_back_together() {
    let server = Server::start(&[
        "-v",
        "--addr",
        "127.0.0.1:0",
        "--framing",
        "length",
        "--nodelay",
    ]);
    let mut stream = connect(&server);
    stream.set_nodelay(true).unwrap();
    // One frame in three pieces, the length prefix itself split, each sent once the server
    // has read the one before (-v logs every read), so they arrive as separate reads; then
    // two frames in one write.
    let mut frame = 11u32.to_be_bytes().to_vec();
    frame.extend_from_slice(b"hello world");
    for (i, piece) in [&frame[..2], &frame[2..7], &frame[7..]]
        .into_iter()
        .enumerate()
    {
        stream.write_all(piece).unwrap();
        server.wait_log(&format!(": read {} bytes", piece.len()));
        assert_eq!(server.stderr().matches(": read ").count(), i + 1);
    }
    let mut two = Vec::new();
    for msg in [&b"ab"[..], b"cde"] {
        two.extend_from_slice(&(msg.len() as u32).to_be_bytes());
        two.extend_from_slice(msg);
    }
    stream.write_all(&two).unwrap();
    let mut reply = vec![0u8; 4 + 11 + 4 + 2 + 4 + 3];
    stream.read_exact(&mut reply).unwrap();
    let mut want = 11u32.to_be_bytes().to_vec();
    want.extend_from_slice(b"HELLO WORLD");
    want.extend_from_slice(&2u32.to_be_bytes());
    want.extend_from_slice(b"AB");
    want.extend_from_slice(&3u32.to_be_bytes());
    want.extend_from_slice(b"CDE");
    assert_eq!(reply, want);
    drop(stream);
    server.wait_log("3 frames in");
}

#[test]
fn a_hostile_length_prefix_closes_that_connection_only() {
    let server = Server::start(&["--addr", "127.0.0.1:0", "--framing", "length"]);
    let pid = server.pid();
    let rss = || -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let line = status
            .lines()
            .find(|l| l.starts_with("VmRSS"))
            .unwrap()
            .to_string();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    };
    let before = rss();
    // 4 GiB - 1 announced, then a few bytes: refused at the header, nothing allocated.
    let mut stream = connect(&server);
    stream.write_all(&u32::MAX.to_be_bytes()).unwrap();
    stream.write_all(b"xyz").unwrap();
    assert_closed(&mut stream, "a 4 GiB length prefix");
    let log = server.wait_log("over the 16777216-byte limit");
    assert!(log.contains("4294967295"), "{log}");
    assert!(
        rss() < before + 64 * 1024,
        "the announced size was not allocated"
    );

    // Closed in the middle of a frame: logged, and the server goes on.
    let mut stream = connect(&server);
    stream.write_all(&[0, 0, 0, 100, b'a', b'b']).unwrap();
    drop(stream);
    server.wait_log("in the middle of a frame (6 of 104 bytes)");
    server.wait_log("6 bytes in (no complete frame)");
    let out = netecho(
        &["send", "--framing", "length", &server.addr, "still here"],
        b"",
    );
    assert_eq!(ok(&out), "STILL HERE\n");

    // --max-frame is the bound.
    let small = Server::start(&[
        "--addr",
        "127.0.0.1:0",
        "--framing",
        "line",
        "--max-frame",
        "8",
    ]);
    let mut stream = TcpStream::connect(&small.addr).unwrap();
    stream.set_read_timeout(Some(common::STEP)).unwrap();
    stream.write_all(b"0123456789abcdef").unwrap();
    assert_closed(&mut stream, "a line over --max-frame");
    small.wait_log("over the 8-byte limit");
}

/// A frame one byte over --max-frame closes its connection under every model and both
/// framings, after the frames before it were answered; the next client is served.
/// A client that sends a line framed server bytes without a newline is told the server may
/// want a framing, and the server's close line counts the bytes it read: they came in, though
/// no line did.
#[test]
fn bytes_with_no_complete_line_are_counted_in_and_the_client_hears_of_framing() {
    for model in ["event", "threads"] {
        let server = Server::start(&[
            "--addr",
            "127.0.0.1:0",
            "--framing",
            "line",
            "--model",
            model,
        ]);
        let out = netecho(
            &[
                "send",
                "--timeout",
                "1s",
                &server.addr,
                "--burst",
                "3",
                "hi",
            ],
            b"",
        );
        let line = common::fails(&out, 1);
        assert!(line.contains("send with the same --framing"), "{line}");
        let log = server.wait_log("no complete line");
        assert!(
            log.contains("6 bytes in (no complete line)"),
            "{model}: {log}"
        );
        assert!(log.contains("(6 bytes, no newline)"), "{model}: {log}");
    }
}

/// A client that sends plain or line-framed bytes to a length-framed server, which reads
/// "hell" as a frame's length past its --max-frame and closes, is told of the framing too.
#[test]
fn a_length_framed_servers_close_tells_a_plain_or_line_client_of_framing() {
    let server = Server::start(&["--addr", "127.0.0.1:0", "--framing", "length"]);
    for framing in ["none", "line"] {
        let out = netecho(&["send", "--framing", framing, &server.addr, "hello"], b"");
        let line = common::fails(&out, 1);
        assert!(
            line.contains("closed the connection before replying"),
            "{line}"
        );
        assert!(
            line.contains("send with the same --framing"),
            "{framing}: {line}"
        );
    }
    let out = netecho(&["send", "--framing", "length", &server.addr, "hello"], b"");
    assert_eq!(ok(&out), "HELLO\n", "the same framing is answered");
}

#[test]
fn a_frame_over_max_frame_closes_its_connection_under_every_model() {
    for model in ["event", "threads", "fork", "iterative", "uring"] {
        for framing in ["line", "length"] {
            let case = format!("--model {model} --framing {framing}");
            let server = Server::start(&[
                "--addr",
                "127.0.0.1:0",
                "--model",
                model,
                "--framing",
                framing,
                "--max-frame",
                "8",
            ]);
            let (good, reply, over): (&[u8], &[u8], &[u8]) = if framing == "line" {
                (b"fits\n", b"FITS\n", b"123456789\n")
            } else {
                (
                    &[0, 0, 0, 4, b'f', b'i', b't', b's'],
                    &[0, 0, 0, 4, b'F', b'I', b'T', b'S'],
                    &[
                        0, 0, 0, 9, b'1', b'2', b'3', b'4', b'5', b'6', b'7', b'8', b'9',
                    ],
                )
            };
            let mut stream = connect(&server);
            stream.write_all(good).unwrap();
            let mut got = vec![0u8; reply.len()];
            stream.read_exact(&mut got).unwrap();
            assert_eq!(got, reply, "{case}: a frame within the limit is answered");
            stream.write_all(over).unwrap();
            assert_closed(&mut stream, &format!("{case}: a frame of 9 bytes"));
            server.wait_log("over the 8-byte limit");
            let out = netecho(&["send", "--framing", framing, &server.addr, "next"], b"");
            assert_eq!(ok(&out), "NEXT\n", "{case}: the next client is served");
        }
    }
}

/// A newline ends a frame under --framing line, so a message that holds one would go out as
/// two messages and earn two replies: send refuses it in one line, and --framing length
/// carries the same message whole.
#[test]
fn a_message_with_a_newline_is_refused_under_line_framing_and_whole_under_length() {
    let server = Server::start(&["--addr", "127.0.0.1:0", "--framing", "line"]);
    for burst in [None, Some("3")] {
        let mut args = vec!["send", "--framing", "line"];
        args.extend(burst.iter().flat_map(|n| ["--burst", *n]));
        args.extend([server.addr.as_str(), "a\nb"]);
        let line = common::fails(&netecho(&args, b""), 2);
        common::assert_mentions(&line, &["cannot hold a newline", "--framing length"]);
    }
    let length = Server::start(&["--addr", "127.0.0.1:0", "--framing", "length"]);
    let out = netecho(&["send", "--framing", "length", &length.addr, "a\nb"], b"");
    assert_eq!(ok(&out), "A\nB\n");
}
