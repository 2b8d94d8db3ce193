//! Clients against a hostile server: what a server says reaches the terminal escaped and on
//! one line, and a server that accepts and never answers (or never reads) cannot hold a
//! client past its --timeout (send, get, put, exec) or a lab run past its rows' time; a
//! client stopped while it waits ends as its signal says.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

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

/// A reply frame far over the file protocol's limit: get says the peer does not speak the
/// protocol, and names no option it does not have (--max-frame is serve's and send's).
#[test]
fn a_giant_reply_frame_is_not_the_file_protocol_and_names_no_foreign_option() {
    let port = one_connection(|mut stream| {
        read_file_frame(&mut stream);
        let _ = stream.write_all(&10_000_000u32.to_be_bytes());
    });
    let out = netecho_within(&["get", &format!("127.0.0.1:{port}"), "zz.txt"], STEP);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("does not speak netecho's file protocol"),
        "{stderr}"
    );
    assert!(!stderr.contains("--max-frame"), "{stderr}");
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

/// A server that accepts every connection and reads what comes (if `reads`), and never
/// answers; each accepted connection is told on the receiver.
fn quiet_server(reads: bool) -> (u16, mpsc::Receiver<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (accepted, told) = mpsc::channel();
    thread::spawn(move || {
        for stream in listener.incoming().take(64) {
            let Ok(mut stream) = stream else { return };
            let _ = accepted.send(());
            thread::spawn(move || {
                stream.set_read_timeout(Some(STEP * 3)).unwrap();
                let mut buf = [0u8; 65536];
                // Held open after the client's end of input too.
                if reads {
                    while matches!(stream.read(&mut buf), Ok(n) if n > 0) {}
                }
                thread::sleep(STEP * 3);
            });
        }
    });
    (port, told)
}

/// A server that accepts every connection and reads what comes, and never answers.
fn silent_server() -> u16 {
    quiet_server(true).0
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
            line.contains("sent nothing") && line.contains("--timeout"),
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

/// A file of `size` bytes in `dir`, for put.
fn file_of(dir: &std::path::Path, size: usize) -> String {
    let path = dir.join("upload.bin");
    std::fs::write(&path, vec![b'u'; size]).unwrap();
    path.to_str().unwrap().to_string()
}

/// Each client command's line for a server that stays silent: it names the wait and
/// --timeout, and comes alone, with exit 1 (exec: 255, its own failures' status).
fn ends_at_its_timeout(out: &Output, what: &str) {
    let code = if what.contains("\"exec\"") { 255 } else { 1 };
    let line = common::fails(out, code);
    assert!(line.contains("--timeout"), "{what}: {line}");
    assert!(
        line.contains("sent nothing") || line.contains("took nothing"),
        "{what}: {line}"
    );
}

/// send MESSAGE, get, put and exec against a server that accepts and then says nothing
/// (reading what comes, or not even that): each ends after its --timeout of silence with
/// one line, where it waited for ever before. The bound is a hang guard, not a speed.
#[test]
fn every_client_command_ends_when_a_connected_server_says_nothing_for_its_timeout() {
    let dir = common::tempdir();
    let file = file_of(dir.path(), 1000);
    for reads in [true, false] {
        let (port, _accepted) = quiet_server(reads);
        let to = format!("127.0.0.1:{port}");
        let commands: [&[&str]; 5] = [
            &["send", "--timeout", "1s", &to, "hi"],
            &["get", "--timeout", "1s", &to, "notes.txt"],
            &["put", "--timeout", "1s", &to, &file],
            &["exec", "--timeout", "1s", &to],
            &["send", "--timeout", "1s", "--framing", "length", &to, "hi"],
        ];
        for args in commands {
            let out = netecho_within(args, STEP);
            ends_at_its_timeout(&out, &format!("reads {reads}: {args:?}"));
        }
    }
}

/// Lines piped to send while their input is still open (`(printf 'hi\n'; sleep 30) | netecho
/// send`): the reply owed and not coming for --timeout ends send, without waiting for the
/// input to end.
#[test]
fn piped_send_ends_when_the_reply_to_a_line_never_comes() {
    let port = silent_server();
    let mut child = Command::new(bin())
        .args(["send", "--timeout", "1s", &format!("127.0.0.1:{port}")])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Held open until the test ends: the input never ends on its own.
    let mut input = child.stdin.take().unwrap();
    input.write_all(b"hi\n").unwrap();
    let out = output_within(child, "netecho send from an open pipe", STEP);
    drop(input);
    ends_at_its_timeout(&out, "piped send");
}

/// A server that says OK to an upload and then closes never stored the file: put fails with
/// a line, never a silent success (a broken pipe on a socket is not a closed stdout), so a
/// script's `put ... && rm FILE` keeps the only copy. Five runs: whether the write meets
/// EPIPE or a reset is the kernel's timing.
#[test]
fn an_upload_whose_server_closes_after_ok_fails_with_a_line() {
    let dir = common::tempdir();
    let file = file_of(dir.path(), 1 << 20);
    for run in 0..5 {
        let port = one_connection(|mut stream| {
            read_file_frame(&mut stream);
            stream.write_all(&file_frame(b"OK")).unwrap();
        });
        let out = netecho_within(&["put", &format!("127.0.0.1:{port}"), &file], STEP);
        let line = common::fails(&out, 1);
        assert!(
            line.contains("before saying the file was stored"),
            "run {run}: {line}"
        );
    }
}

/// A peer that takes nothing bounds the writes too: put to a file server that says OK and
/// then never reads, and lines piped to send, more than the socket buffers hold, to a
/// server that never reads, each end after --timeout with the line that says so.
#[test]
fn a_server_that_takes_nothing_ends_the_upload_at_its_timeout() {
    let dir = common::tempdir();
    // More than loopback's socket buffers hold.
    let big = file_of(dir.path(), 32 << 20);
    let port = one_connection(|mut stream| {
        read_file_frame(&mut stream);
        stream.write_all(&file_frame(b"OK")).unwrap();
        thread::sleep(STEP * 3);
    });
    let out = netecho_within(
        &["put", "--timeout", "1s", &format!("127.0.0.1:{port}"), &big],
        STEP,
    );
    ends_at_its_timeout(&out, "put");
    assert!(common::fails(&out, 1).contains("took nothing"));
    let (port, _accepted) = quiet_server(false);
    let mut line = vec![b'x'; 1 << 20];
    line.push(b'\n');
    let out = common::run(
        Command::new(bin()).args(["send", "--timeout", "1s", &format!("127.0.0.1:{port}")]),
        &line.repeat(32),
    );
    ends_at_its_timeout(&out, "send of long lines");
    assert!(common::fails(&out, 1).contains("took nothing"));
}

/// A client command stopped by SIGINT or SIGTERM while it waits for a server ends as the
/// signal ends a program: a shell sees 130 and 143, whichever command it was (get cleans
/// up its partial file first, and must not say 130 for a SIGTERM).
#[test]
fn every_client_command_stopped_while_waiting_ends_as_its_signal_says() {
    let dir = common::tempdir();
    let (port, accepted) = quiet_server(true);
    for args in client_commands(dir.path(), port) {
        for (signal, shell) in [(Signal::SIGINT, 130), (Signal::SIGTERM, 143)] {
            let mut child = client(&args, dir.path(), false);
            accepted.recv_timeout(STEP).expect("the client connected");
            kill(Pid::from_raw(child.id() as i32), signal).unwrap();
            let status = common::wait_exit(&mut child, &format!("{args:?} after {signal}"));
            assert_eq!(
                common::shell_status(&status),
                shell,
                "{args:?} {signal}: {status:?}"
            );
        }
    }
}

/// A client command started with SIGINT ignored, as a background job of a script is, keeps
/// it ignored: the Ctrl-C meant for the job in the foreground does not stop it, and it ends
/// on its own when the server hangs up (get read SIGINT from its signalfd and died of it).
#[test]
fn a_client_command_started_with_sigint_ignored_is_not_stopped_by_it() {
    let dir = common::tempdir();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    for args in client_commands(dir.path(), port) {
        let mut child = client(&args, dir.path(), true);
        let conn = common::eventually("the client's connection", || listener.accept().ok());
        kill(Pid::from_raw(child.id() as i32), Signal::SIGINT).unwrap();
        drop(conn);
        let status = common::wait_exit(&mut child, &format!("{args:?} after SIGINT"));
        assert_eq!(status.signal(), None, "{args:?}: {status:?}");
        assert!(
            !matches!(status.code(), Some(0 | 130)),
            "{args:?}: {status:?}"
        );
    }
}

/// The client commands that wait for a server, each with its arguments, to `port`.
fn client_commands(dir: &std::path::Path, port: u16) -> Vec<Vec<String>> {
    let file = file_of(dir, 1000);
    let to = format!("127.0.0.1:{port}");
    let commands: [&[&str]; 4] = [
        &["send", &to, "hi"],
        &["get", &to, "notes.txt"],
        &["put", &to, &file],
        &["exec", &to],
    ];
    let owned = |args: &[&str]| args.iter().map(|a| a.to_string()).collect();
    commands.into_iter().map(owned).collect()
}

/// Starts client command `args` in `dir`, SIGINT ignored or not.
fn client(args: &[String], dir: &std::path::Path, sigint_ignored: bool) -> std::process::Child {
    let mut cmd = Command::new(bin());
    cmd.args([&args[0], "--timeout", "60s"])
        .args(&args[1..])
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    common::with_sigint(&mut cmd, sigint_ignored)
        .spawn()
        .unwrap()
}
