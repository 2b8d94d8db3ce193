//! A `--files` or `--exec` server past --max-conns says "busy" in its protocol, and a client
//! that sent its request first still reads it: the refused connection is closed without a
//! reset. A flood of refused connections that never close costs the server no thread each,
//! and a flood of refusals costs its log a few lines a second. Over --tls the refused
//! client's handshake is finished, and netecho's clients and openssl s_client read the same
//! line.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{Plain, STEP, Server, eventually, logged, tempdir};

/// Refused clients per test: enough that a reset, when the server closes with the request
/// unread, shows up in some of them.
const ROUNDS: usize = 40;

/// Sends `request` in pieces, as a client with a long request does, then reads to the end.
fn reply_after(addr: &str, request: &[u8]) -> Result<Vec<u8>, String> {
    let mut conn = TcpStream::connect(addr).map_err(|e| format!("connect: {e}"))?;
    conn.set_read_timeout(Some(STEP)).unwrap();
    conn.set_write_timeout(Some(STEP)).unwrap();
    for piece in request.chunks(4096) {
        conn.write_all(piece).map_err(|e| format!("send: {e}"))?;
    }
    let mut got = Vec::new();
    match conn.read_to_end(&mut got) {
        Ok(_) => Ok(got),
        Err(e) => Err(format!("read, after {} bytes: {e}", got.len())),
    }
}

/// Waits until the server refused `conn`: its busy line read, or the connection closed
/// (a refusal past those the server hears out may close it with a reset).
fn refused(mut conn: &TcpStream) {
    conn.set_read_timeout(Some(STEP)).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 512];
    loop {
        match conn.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                panic!("no refusal within {STEP:?}: read {got:?}")
            }
            Err(_) => return,
        }
        if String::from_utf8_lossy(&got).contains("busy") {
            return;
        }
    }
}

/// Each of [`ROUNDS`] clients, past the server's one slot, sends 16 KiB and reads "busy".
fn each_refused_client_reads_busy(server: &Server) {
    let request = vec![b'x'; 16 * 1024];
    for round in 0..ROUNDS {
        let got = reply_after(&server.addr, &request)
            .unwrap_or_else(|e| panic!("refused client {round}: {e}"));
        let text = String::from_utf8_lossy(&got);
        assert!(
            text.contains("busy"),
            "refused client {round} read {text:?}"
        );
    }
}

#[test]
fn a_files_server_past_max_conns_says_busy_to_a_client_that_sent_first() {
    let dir = tempdir();
    let server = common::files_server("tcp", dir.path(), &["--max-conns", "1"]);
    // Holds the one slot: accepted first, it waits for its request.
    let _held = TcpStream::connect(&server.addr).unwrap();
    each_refused_client_reads_busy(&server);
    server.wait_log("(--max-conns)");
}

#[test]
fn an_exec_server_past_max_conns_says_busy_to_a_client_that_sent_first() {
    let server = Server::start(&[
        "--proto",
        "tcp",
        "--addr",
        "127.0.0.1:0",
        "--max-conns",
        "1",
        "--exec",
        "cat",
    ]);
    let _held = TcpStream::connect(&server.addr).unwrap();
    each_refused_client_reads_busy(&server);
}

#[test]
fn a_flood_of_refused_clients_that_never_close_costs_no_thread_each() {
    // A files server: the held connection's thread waits for its request and starts no
    // other (an exec program's readers would start in their own time and blur the count).
    let dir = tempdir();
    let server = Server::start(&[
        "--proto",
        "tcp",
        "--addr",
        "127.0.0.1:0",
        "--max-conns",
        "1",
        "--files",
        dir.path().to_str().unwrap(),
    ]);
    let _held = TcpStream::connect(&server.addr).unwrap();
    // The first refusal starts what hears refused clients out.
    each_refused_client_reads_busy(&server);
    let before = common::threads(server.pid());
    // Fewer than the refusals queued for the thread that hears them out (256): past that a
    // refusal is closed at once, and the clients after the flood could meet a full queue
    // on a loaded machine.
    let flood: Vec<TcpStream> = (0..200)
        .filter_map(|_| {
            let mut conn = TcpStream::connect(&server.addr).ok()?;
            let _ = conn.write_all(&[b'x'; 512]);
            Some(conn)
        })
        .collect();
    // Each was refused (its refusals' log lines are throttled, so counted here instead).
    for conn in &flood {
        refused(conn);
    }
    let during = common::threads(server.pid());
    assert!(
        during <= before + 2,
        "{} refused clients held open: {before} threads before, {during} during",
        flood.len()
    );
    // Still served, and still saying busy, while they hold their sockets.
    each_refused_client_reads_busy(&server);
    drop(flood);
}

/// Refused connections in a flood: far more than the log takes in a second.
const FLOOD: usize = 200;

/// Lines a second the server logs from one place a peer can make it log at will.
const LINES_A_SECOND: u64 = 10;

/// Connects and waits until the server refused the connection (an echo server refuses with
/// a bare close).
fn closed_at_once(addr: &str) {
    refused(&TcpStream::connect(addr).unwrap());
}

#[test]
fn a_flood_of_refused_clients_gives_a_few_log_lines() {
    let server = Server::start(&["--addr", "127.0.0.1:0", "--max-conns", "1"]);
    let held = Plain::connect("tcp", &server.addr);
    held.exchange(b"the one client served");
    // A single refusal is logged as it is.
    closed_at_once(&server.addr);
    let log = server.wait_log("(--max-conns)");
    assert_eq!(logged(&log, "(--max-conns)"), (1, 0), "{log}");
    let start = Instant::now();
    for _ in 0..FLOOD {
        closed_at_once(&server.addr);
    }
    let seconds = start.elapsed().as_secs();
    // The first line after the log's second is over says how many were left out.
    std::thread::sleep(Duration::from_millis(1100));
    closed_at_once(&server.addr);
    let (lines, left_out) = eventually("every refusal in the log, line or count", || {
        let counts = logged(&server.stderr(), "(--max-conns)");
        (counts.0 + counts.1 == FLOOD + 2).then_some(counts)
    });
    let log = server.stderr();
    assert!(left_out > 0, "{lines} lines for {FLOOD} refusals:\n{log}");
    assert!(
        lines as u64 <= LINES_A_SECOND * (seconds + 2) + 1,
        "{lines} lines for {FLOOD} refusals in {seconds} s:\n{log}"
    );
    held.exchange(b"still served");
    // A flood that no later line follows is counted when the server stops.
    for _ in 0..FLOOD {
        closed_at_once(&server.addr);
    }
    drop(held);
    let (_, _, log) = server.stop("TERM");
    let (lines, left_out) = logged(&log, "(--max-conns)");
    let at_stop = common::left_out_at_stop(&log);
    assert_eq!(
        lines + left_out + at_stop,
        2 * FLOOD + 2,
        "every refusal a line or a count:\n{log}"
    );
}

/// A `serve --tls -v ARGS` server past its one slot: the slot is held by an `openssl s_client`
/// whose handshake is done (a connection still handshaking would be closed after 10 s and
/// free it), with a long --idle-timeout so its request may wait.
fn tls_server_held(args: &[&str]) -> (Server, common::Peer) {
    let mut all = vec!["-v", "--tls", "--proto", "tcp", "--addr", "127.0.0.1:0"];
    all.extend(["--max-conns", "1", "--idle-timeout", "5m"]);
    all.extend_from_slice(args);
    let server = Server::start(&all);
    let held = std::process::Command::new("openssl")
        .args(["s_client", "-quiet", "-connect", &server.addr])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start openssl s_client");
    // The server's line for a finished handshake (-v).
    server.wait_log("TLS 1.3");
    (server, common::Peer(held))
}

/// `openssl s_client` past the server's slot: what it printed (its request sent, it reads
/// to the end).
fn s_client_reply(server: &Server) -> String {
    let out = common::run(
        std::process::Command::new("openssl").args([
            "s_client",
            "-quiet",
            "-connect",
            &server.addr,
        ]),
        b"GET a.txt\n",
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_tls_files_server_past_max_conns_says_busy_to_get_and_to_openssl() {
    if !common::have("openssl", "a_tls_files_server_past_max_conns_says_busy") {
        return;
    }
    let dir = tempdir();
    std::fs::write(dir.path().join("a.txt"), b"contents\n").unwrap();
    let (server, _held) = tls_server_held(&["--files", dir.path().to_str().unwrap()]);
    for round in 0..4 {
        let out = common::netecho(&["get", "--tls", "--insecure", &server.url(), "a.txt"], b"");
        let line = common::fails(&out, 1);
        assert!(
            line.contains("busy: 1 client already"),
            "get {round}: {line}"
        );
        let got = s_client_reply(&server);
        assert!(
            got.contains("busy: 1 client already"),
            "openssl {round}: {got:?}"
        );
    }
}

#[test]
fn a_tls_exec_server_past_max_conns_says_busy_to_exec_and_send() {
    if !common::have("openssl", "a_tls_exec_server_past_max_conns_says_busy") {
        return;
    }
    let (server, _held) = tls_server_held(&["--exec", "cat"]);
    let url = server.url();
    let out = common::netecho(&["exec", "--tls", "--insecure", &url], b"run me\n");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("busy: 1 client already"), "exec: {err}");
    // send writes the reply as it comes (stdin's lines, not one message, which it would
    // read back only as long as it was).
    let out = common::netecho(&["send", "--tls", "--insecure", &url], b"hi\n");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("busy: 1 client already"), "send: {said:?}");
    let got = s_client_reply(&server);
    assert!(got.contains("busy: 1 client already"), "openssl: {got:?}");
}
