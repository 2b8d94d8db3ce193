//! A frame has `--frame-timeout` to complete once it started: a client trickling one byte
//! now and then of a line it never ends is closed, with one log line naming it, under every
//! server model, while other clients are served; a client sending whole frames slowly stays.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::Server;

/// The deadline the servers here run with.
const DEADLINE: &str = "2s";
/// How long a trickling client is given to be closed, far past the deadline.
const BOUND: Duration = Duration::from_secs(20);
/// A byte this often: the idle timeout alone would never end such a client.
const TRICKLE: Duration = Duration::from_millis(250);

/// A server with the frame deadline and an idle timeout longer than it: the trickling client
/// is never idle that long, even when a loaded machine holds its thread back for a while, so
/// only the deadline can end it.
fn serve(model: &str, framing: &str) -> Server {
    serve_with(model, framing, &["--idle-timeout", "3s"])
}

/// A tcp server of `model` and `framing` with the frame deadline [`DEADLINE`], and `extra`.
fn serve_with(model: &str, framing: &str, extra: &[&str]) -> Server {
    let mut args = vec!["--proto", "tcp", "--addr", "127.0.0.1:0", "--model", model];
    args.extend(["--framing", framing, "--frame-timeout", DEADLINE]);
    args.extend_from_slice(extra);
    Server::start(&args)
}

/// Sends the first bytes of a frame that never ends, then a byte every [`TRICKLE`] until
/// the server closes the connection (or [`BOUND`]); says on `closed` when it saw the close.
fn trickle(
    addr: &str,
    framing: &str,
    closed: mpsc::Sender<Instant>,
) -> std::thread::JoinHandle<()> {
    let mut conn = TcpStream::connect(addr).unwrap();
    conn.set_read_timeout(Some(TRICKLE)).unwrap();
    let start: &[u8] = match framing {
        // A length prefix of 100 bytes, of which a few come.
        "length" => &[0, 0, 0, 100, b'a'],
        _ => b"a",
    };
    conn.write_all(start).unwrap();
    std::thread::Builder::new()
        .name("trickle".into())
        .spawn(move || {
            let started = Instant::now();
            let mut buf = [0u8; 64];
            while started.elapsed() < BOUND {
                match conn.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => panic!("a reply to an unfinished frame: {:?}", &buf[..n]),
                    Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                    Err(_) => break,
                }
                if conn.write_all(b"b").is_err() {
                    break;
                }
            }
            let _ = closed.send(Instant::now());
        })
        .unwrap()
}

/// One whole frame out and its reply back.
fn exchange(conn: &mut TcpStream, framing: &str, msg: &[u8]) -> Vec<u8> {
    let mut wire = Vec::new();
    match framing {
        "length" => {
            wire.extend_from_slice(&(msg.len() as u32).to_be_bytes());
            wire.extend_from_slice(msg);
        }
        _ => {
            wire.extend_from_slice(msg);
            wire.push(b'\n');
        }
    }
    conn.write_all(&wire).unwrap();
    let mut reply = vec![0u8; wire.len()];
    conn.read_exact(&mut reply).unwrap();
    reply
}

fn a_trickled_frame_is_closed_at_its_deadline(model: &str, framing: &str) {
    let server = serve(model, framing);
    let (tx, closed) = mpsc::channel();
    let trickler = trickle(&server.addr, framing, tx);
    // Another client is served meanwhile (under iterative, once the trickler is gone).
    let mut other = TcpStream::connect(&server.addr).unwrap();
    other.set_read_timeout(Some(BOUND)).unwrap();
    let reply = exchange(&mut other, framing, b"hello");
    assert!(reply.ends_with(b"HELLO") || reply.starts_with(b"HELLO"));
    if model != "iterative" {
        assert!(
            closed.try_recv().is_err(),
            "{model}: the other client was answered only after the trickler was closed"
        );
    }
    let at = closed.recv_timeout(BOUND + Duration::from_secs(1));
    trickler.join().unwrap();
    at.unwrap_or_else(|_| panic!("{model} {framing}: the trickling client was never closed"));
    let log = server.wait_log("unfinished");
    let line = log
        .lines()
        .find(|l| l.contains("unfinished"))
        .expect("the line");
    assert!(
        line.contains("127.0.0.1:"),
        "the line names no peer: {line}"
    );
    assert!(line.contains("--frame-timeout"), "{line}");
    assert_eq!(log.matches("unfinished").count(), 1, "{log}");
}

#[test]
fn a_trickled_line_is_closed_at_its_deadline_under_iterative() {
    a_trickled_frame_is_closed_at_its_deadline("iterative", "line");
}

#[test]
fn a_trickled_line_is_closed_at_its_deadline_under_threads() {
    a_trickled_frame_is_closed_at_its_deadline("threads", "line");
}

#[test]
fn a_trickled_line_is_closed_at_its_deadline_under_event() {
    a_trickled_frame_is_closed_at_its_deadline("event", "line");
}

#[test]
fn a_trickled_line_is_closed_at_its_deadline_under_fork() {
    a_trickled_frame_is_closed_at_its_deadline("fork", "line");
}

#[test]
fn a_trickled_length_frame_is_closed_at_its_deadline_under_threads_and_event() {
    a_trickled_frame_is_closed_at_its_deadline("threads", "length");
    a_trickled_frame_is_closed_at_its_deadline("event", "length");
}

#[test]
fn a_trickled_frame_is_closed_at_its_deadline_under_uring() {
    a_trickled_frame_is_closed_at_its_deadline("uring", "line");
    a_trickled_frame_is_closed_at_its_deadline("uring", "length");
}

/// Whole frames, each well within the deadline, for longer than the deadline in all: the
/// connection stays and every frame is answered.
#[test]
fn whole_frames_sent_slowly_are_never_cut() {
    for model in ["iterative", "threads", "event", "fork", "uring"] {
        let server = serve(model, "line");
        let mut conn = TcpStream::connect(&server.addr).unwrap();
        conn.set_read_timeout(Some(BOUND)).unwrap();
        let started = Instant::now();
        let mut frames = 0;
        // Past the 2 s deadline in all and five lines at least, each sent whole, a pause
        // between them well within the 3 s idle timeout. Counted, so a slow machine sends
        // as many, only later.
        while frames < 5 || started.elapsed() < Duration::from_millis(2_600) {
            assert_eq!(exchange(&mut conn, "line", b"slow"), b"SLOW\n", "{model}");
            frames += 1;
            std::thread::sleep(Duration::from_millis(200));
        }
        let log = server.stderr();
        assert!(!log.contains("unfinished"), "{model}: {log}");
    }
}

#[test]
fn a_frame_timeout_on_datagrams_is_refused_with_the_reason() {
    for (proto, addr) in [
        ("udp", "127.0.0.1:0"),
        ("unix-dgram", "@netecho-frame-timeout"),
    ] {
        let args = [
            "serve",
            "--proto",
            proto,
            "--frame-timeout",
            "5s",
            "--addr",
            addr,
        ];
        let out = common::netecho(&args, b"");
        let line = common::fails(&out, 2);
        assert!(line.contains("--frame-timeout"), "{proto}: {line}");
        assert!(line.contains("leave it out"), "{proto}: {line}");
    }
}

/// The first bytes of a line, then nothing, on a server without --idle-timeout: only the
/// frame's deadline ends the connection (an event loop whose connections have no other
/// deadline wakes for this one), whether or not a whole line came before them in the same
/// read.
fn a_begun_line_then_silence_is_closed_at_its_deadline(model: &str, sent: &[u8]) {
    let server = serve_with(model, "line", &[]);
    let mut conn = TcpStream::connect(&server.addr).unwrap();
    conn.set_read_timeout(Some(BOUND)).unwrap();
    conn.write_all(sent).unwrap();
    let whole = sent
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |at| at + 1);
    let mut reply = vec![0u8; whole];
    conn.read_exact(&mut reply).unwrap();
    assert_eq!(reply, sent[..whole].to_ascii_uppercase(), "{model}");
    let mut rest = [0u8; 64];
    match conn.read(&mut rest) {
        Ok(0) => {}
        Ok(n) => panic!("{model}: a reply to an unfinished frame: {:?}", &rest[..n]),
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
            panic!("{model}: {sent:?} was never closed")
        }
        // Reset: closed as well.
        Err(_) => {}
    }
    let log = server.wait_log("unfinished");
    assert!(log.contains("--frame-timeout"), "{model}: {log}");
}

#[test]
fn a_begun_line_then_silence_is_closed_at_its_deadline_without_an_idle_timeout() {
    for model in ["event", "uring", "threads"] {
        a_begun_line_then_silence_is_closed_at_its_deadline(model, b"wor");
    }
}

#[test]
fn a_line_begun_behind_a_whole_one_in_the_same_read_is_closed_at_its_deadline() {
    for model in ["event", "uring", "threads"] {
        a_begun_line_then_silence_is_closed_at_its_deadline(model, b"hello\nwor");
    }
}
