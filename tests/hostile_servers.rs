//! Clients against a hostile server: what a server says reaches the terminal escaped and on
//! one line, and a server that accepts and never answers cannot hold a client past its
//! --timeout (a burst) or a lab run past its rows' time.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Output, Stdio};
use std::thread;
use std::time::Duration;

use common::{STEP, Server, bin, output_within};

/// What a hostile server puts in its error text: a window title, a screen clear, a colour,
/// and a forged second error line.
const ESCAPES: &[u8] = b"\x1b]0;PWNED\x07\x1b[2J\x1b[31mred\nerror: forged second line\r\x1b[K";

/// A one-connection server on loopback: `answer` gets the accepted stream.
fn one_connection(answer: impl FnOnce(TcpStream) + Send + 'static) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    thread::spawn(move || {
        if let Ok((stream, _)) = listener.accept() {
            stream.set_read_timeout(Some(STEP)).unwrap();
            answer(stream);
        }
    });
    port
}

/// Runs `netecho ARGS` (stdin empty, in a directory of its own) for at most `limit`.
fn netecho_within(args: &[&str], limit: Duration) -> Output {
    let dir = common::tempdir();
    let child = Command::new(bin())
        .args(args)
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    output_within(child, &format!("netecho {}", args.join(" ")), limit)
}

/// The client failed, and what the server said reached stderr escaped, in one error line.
fn escaped_in_one_line(out: &Output, said: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        !stderr.chars().any(|c| c.is_control() && c != '\n'),
        "a control character reached the terminal: {stderr:?}"
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr:?}");
    assert!(stderr.contains(said), "{stderr:?}");
    assert!(stderr.contains("\\u{1b}]0;PWNED"), "{stderr:?}");
}

/// A frame of the file service: 4-byte big-endian length, then the body.
fn file_frame(body: &[u8]) -> Vec<u8> {
    let mut out = (body.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(body);
    out
}

fn read_file_frame(stream: &mut TcpStream) -> Vec<u8> {
    let mut len = [0u8; 4];
    stream.read_exact(&mut len).unwrap();
    let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
    stream.read_exact(&mut body).unwrap();
    body
}

#[test]
fn a_file_servers_refusal_reaches_the_terminal_escaped() {
    let port = one_connection(|mut stream| {
        read_file_frame(&mut stream);
        let mut refusal = b"ERR ".to_vec();
        refusal.extend_from_slice(ESCAPES);
        stream.write_all(&file_frame(&refusal)).unwrap();
    });
    let out = netecho_within(&["get", &format!("127.0.0.1:{port}"), "zz.txt"], STEP);
    escaped_in_one_line(&out, "the server refused");
}

/// A frame of the lab's control protocol: 2-byte big-endian length, then the body.
fn lab_frame(body: &[u8]) -> Vec<u8> {
    let mut out = (body.len() as u16).to_be_bytes().to_vec();
    out.extend_from_slice(body);
    out
}

/// Reads the lab client's Hello.
fn read_lab_frame(stream: &mut TcpStream) -> Vec<u8> {
    let mut len = [0u8; 2];
    stream.read_exact(&mut len).unwrap();
    let mut body = vec![0u8; u16::from_be_bytes(len) as usize];
    stream.read_exact(&mut body).unwrap();
    body
}

#[test]
fn a_lab_servers_error_reaches_the_terminal_escaped() {
    let port = one_connection(|mut stream| {
        read_lab_frame(&mut stream);
        // Error (type 6): a 2-byte length, then the text.
        let mut error = vec![6];
        error.extend_from_slice(&(ESCAPES.len() as u16).to_be_bytes());
        error.extend_from_slice(ESCAPES);
        stream.write_all(&lab_frame(&error)).unwrap();
    });
    let out = netecho_within(&["lab", &format!("127.0.0.1:{port}")], STEP);
    escaped_in_one_line(&out, "refused the run");
}

#[test]
fn an_exec_servers_note_reaches_the_terminal_escaped() {
    let port = one_connection(|mut stream| {
        // The end frame: tag 3, exit code 1, the note.
        let mut end = vec![3, 0, 0, 0, 1];
        end.extend_from_slice(ESCAPES);
        stream.write_all(&file_frame(&end)).unwrap();
        let _ = stream.shutdown(std::net::Shutdown::Write);
        let _ = stream.read(&mut [0u8; 64]);
    });
    let out = netecho_within(&["exec", &format!("127.0.0.1:{port}")], STEP);
    escaped_in_one_line(&out, "remote program");
}

/// A server that accepts every connection and reads what comes, and never answers.
fn silent_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    thread::spawn(move || {
        for stream in listener.incoming().take(64) {
            let Ok(mut stream) = stream else { return };
            thread::spawn(move || {
                stream.set_read_timeout(Some(STEP * 3)).unwrap();
                let mut buf = [0u8; 65536];
                while matches!(stream.read(&mut buf), Ok(n) if n > 0) {}
            });
        }
    });
    port
}

#[test]
fn a_burst_over_tcp_to_a_silent_server_ends_at_its_timeout() {
    let port = silent_server();
    let to = format!("127.0.0.1:{port}");
    for framing in ["none", "length"] {
        let out = netecho_within(
            &[
                "send",
                "--burst",
                "5",
                "--timeout",
                "1s",
                "--framing",
                framing,
                &to,
                "hi",
            ],
            STEP,
        );
        let line = common::fails(&out, 1);
        assert!(
            line.contains("said nothing") && line.contains("--timeout"),
            "{framing}: {line}"
        );
    }
}

/// The offer of a run (Go, type 3) naming one tcp echo port, and the longest time the
/// protocol can say.
fn offer(port: u16) -> Vec<u8> {
    let mut go = vec![3];
    for field in [1u32, 0] {
        go.extend_from_slice(&field.to_be_bytes());
    }
    go.extend_from_slice(&[0, 1, 0, 1]);
    go.extend_from_slice(&u32::MAX.to_be_bytes());
    go.extend_from_slice(&0u32.to_be_bytes());
    go.push(1);
    go.extend_from_slice(&3u16.to_be_bytes());
    go.extend_from_slice(b"tcp");
    go.extend_from_slice(&port.to_be_bytes());
    lab_frame(&go)
}

#[test]
fn a_lab_server_whose_echo_port_never_answers_ends_the_run_naming_the_row() {
    let echo = silent_server();
    let port = one_connection(move |mut stream| {
        read_lab_frame(&mut stream);
        stream.write_all(&offer(echo)).unwrap();
        // Holds the control connection open, saying nothing, as long as the test may last.
        let _ = stream.read(&mut [0u8; 64]);
        thread::sleep(STEP * 3);
    });
    let out = netecho_within(&["lab", "--quick", &format!("127.0.0.1:{port}")], STEP * 2);
    let line = common::fails(&out, 1);
    assert!(line.contains(&format!("127.0.0.1:{echo}")), "{line}");
}

#[test]
fn names_a_client_gives_reach_the_files_servers_log_escaped() {
    let dir = common::tempdir();
    let server = Server::start(&[
        "--addr",
        "127.0.0.1:0",
        "--files",
        dir.path().to_str().unwrap(),
    ]);
    let mut stream = TcpStream::connect(format!("127.0.0.1:{}", server.port())).unwrap();
    stream.set_read_timeout(Some(STEP)).unwrap();
    // SO, ENQ, VT, CAN, SUB and NUL: what tracing passes on as they are.
    stream
        .write_all(&file_frame(b"BLAKE3 GET a\x0e\x05\x0b\x18\x1a\x00b.txt"))
        .unwrap();
    let _ = stream.read(&mut [0u8; 256]);
    let line = server.wait_log("a\\u{e}\\u{5}\\u{b}\\u{18}\\u{1a}\\u{0}b.txt");
    assert!(
        !line.contains(['\x0e', '\x05', '\x0b', '\x18', '\x1a', '\0']),
        "{line:?}"
    );
}

#[test]
fn a_dual_stack_server_logs_an_ipv4_client_as_ipv4() {
    let server = Server::start(&["--addr", "[::]:0", "--deny", "127.0.0.2"]);
    let client = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    client
        .bind(
            &"127.0.0.2:0"
                .parse::<std::net::SocketAddr>()
                .unwrap()
                .into(),
        )
        .unwrap();
    let to: std::net::SocketAddr = format!("127.0.0.1:{}", server.port()).parse().unwrap();
    let _ = client.connect(&to.into());
    let line = server.wait_log("127.0.0.2:");
    assert!(!line.contains("::ffff:"), "{line}");
}

/// An echo server (uppercase, as the lab expects) that answers a connection opening with
/// the lab's burst (all `b`) a byte every 300 ms: never silent for the burst's timeout,
/// and never done.
fn trickling_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    thread::spawn(move || {
        for stream in listener.incoming().take(256) {
            let Ok(mut stream) = stream else { return };
            thread::spawn(move || {
                stream.set_read_timeout(Some(STEP * 3)).unwrap();
                let mut buf = [0u8; 65536];
                let mut first = true;
                while let Ok(n) = stream.read(&mut buf) {
                    if n == 0 {
                        return;
                    }
                    if std::mem::take(&mut first) && buf[..n].iter().all(|&b| b == b'b') {
                        for _ in 0..1000 {
                            thread::sleep(Duration::from_millis(300));
                            if stream.write_all(b"B").is_err() {
                                return;
                            }
                        }
                        return;
                    }
                    if stream.write_all(&buf[..n].to_ascii_uppercase()).is_err() {
                        return;
                    }
                }
            });
        }
    });
    port
}

#[test]
fn a_lab_row_that_never_finishes_ends_the_run_naming_the_row() {
    let echo = trickling_server();
    let port = one_connection(move |mut stream| {
        read_lab_frame(&mut stream);
        stream.write_all(&offer(echo)).unwrap();
        let _ = stream.read(&mut [0u8; 64]);
        thread::sleep(STEP * 3);
    });
    let out = netecho_within(&["lab", "--quick", &format!("127.0.0.1:{port}")], STEP * 3);
    let line = common::fails(&out, 1);
    assert!(
        line.contains("stalled") && line.contains(&format!("127.0.0.1:{echo}")),
        "{line}"
    );
}
