//! A `--files` or `--exec` server past --max-conns says "busy" in its protocol, and a client
//! that sent its request first still reads it: the refused connection is closed without a
//! reset. A flood of refused connections that never close costs the server no thread each.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;

use common::{STEP, Server, tempdir};

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
    let root = dir.path().to_str().unwrap();
    let server = Server::start(&[
        "--proto",
        "tcp",
        "--addr",
        "127.0.0.1:0",
        "--files",
        root,
        "--max-conns",
        "1",
    ]);
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
    let flood: Vec<TcpStream> = (0..300)
        .filter_map(|_| {
            let mut conn = TcpStream::connect(&server.addr).ok()?;
            let _ = conn.write_all(&[b'x'; 512]);
            Some(conn)
        })
        .collect();
    server.wait_log_count("(--max-conns)", ROUNDS + flood.len());
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
