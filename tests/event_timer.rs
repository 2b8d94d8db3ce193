//! The event loop wakes for its sweep (idle timeout, TLS handshakes, frames past their
//! deadline) only while one of its connections can be due: a loop holding only bare streams
//! without --idle-timeout waits in epoll_wait for events alone, with no timer armed per wait.
//! What each wait asked the kernel is read from strace(1), not from a clock.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{STEP, Server};

/// Serves with one event loop and `extra`, runs `client` against it (its address, and the
/// trace so far), stops the server, and returns the timeouts (ms, -1 for none) of every
/// epoll_wait the server made meanwhile; `None` when strace cannot be had here.
fn wait_timeouts(test: &str, extra: &[&str], client: impl FnOnce(&str, &str)) -> Option<Vec<i64>> {
    let mut args = vec![
        "--model",
        "event",
        "--threads",
        "1",
        "--addr",
        "127.0.0.1:0",
    ];
    args.extend_from_slice(extra);
    let server = Server::start(&args);
    let dir = common::tempdir();
    let log = dir.path().join("trace");
    let log = log.to_str().unwrap();
    let options = ["-e", "trace=epoll_wait", "-e", "signal=none"];
    let mut strace = common::strace::attach_logging(test, server.pid(), log, &options)?;
    client(&server.addr, log);
    let trace = common::strace::stop_with(server, &mut strace, log);
    Some(trace.lines().filter_map(timeout_of).collect())
}

/// The timeout argument of a finished epoll_wait line (`epoll_wait(5, [...], 64, 250) = 1`,
/// or its `<... epoll_wait resumed>` end; strace pads short calls before the `=`).
fn timeout_of(line: &str) -> Option<i64> {
    if !line.contains("epoll_wait") {
        return None;
    }
    let (call, _) = line.rsplit_once(" = ")?;
    let args = call.trim_end().strip_suffix(')')?;
    args.rsplit(", ").next()?.trim().parse().ok()
}

/// Sends `request`, reads `reply.len()` bytes, and checks they are `reply`.
fn round(conn: &mut TcpStream, request: &[u8], reply: &[u8]) {
    conn.write_all(request).unwrap();
    let mut got = vec![0u8; reply.len()];
    conn.read_exact(&mut got).unwrap();
    assert_eq!(got, reply);
}

fn connect(addr: &str) -> TcpStream {
    let conn = TcpStream::connect(addr).unwrap();
    conn.set_read_timeout(Some(STEP)).unwrap();
    conn
}

#[test]
fn an_event_loop_holding_bare_streams_waits_without_a_timer() {
    let test = "an_event_loop_holding_bare_streams_waits_without_a_timer";
    let Some(timeouts) = wait_timeouts(test, &[], |addr, _| {
        let mut conn = connect(addr);
        for _ in 0..5 {
            round(&mut conn, b"ping", b"PING");
        }
    }) else {
        return;
    };
    // The loop woke for the connection, each request and the stop: several waits.
    assert!(timeouts.len() >= 5, "{timeouts:?}");
    assert!(timeouts.iter().all(|&t| t == -1), "{timeouts:?}");
}

#[test]
fn an_event_loop_wakes_for_the_sweep_under_idle_timeout() {
    let test = "an_event_loop_wakes_for_the_sweep_under_idle_timeout";
    let Some(timeouts) = wait_timeouts(test, &["--idle-timeout", "60s"], |addr, _| {
        let mut conn = connect(addr);
        for _ in 0..5 {
            round(&mut conn, b"ping", b"PING");
        }
    }) else {
        return;
    };
    assert!(timeouts.contains(&250), "{timeouts:?}");
}

#[test]
fn an_event_loop_wakes_for_the_sweep_only_while_a_frame_is_started() {
    let test = "an_event_loop_wakes_for_the_sweep_only_while_a_frame_is_started";
    let Some(timeouts) = wait_timeouts(test, &["--framing", "line"], |addr, trace| {
        let mut conn = connect(addr);
        round(&mut conn, b"whole\n", b"WHOLE\n");
        // Half a line: its frame deadline arms the sweep, and a wait with the timer that
        // saw nothing (strace writes it when it returns) shows the loop holds the half line.
        conn.write_all(b"ha").unwrap();
        let deadline = Instant::now() + STEP;
        let swept = || {
            let trace = std::fs::read_to_string(trace).unwrap();
            trace.lines().any(|l| timeout_of(l) == Some(250))
        };
        while !swept() {
            assert!(
                Instant::now() < deadline,
                "no sweep while a frame was started"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        round(&mut conn, b"lf\n", b"HALF\n");
        round(&mut conn, b"again\n", b"AGAIN\n");
    }) else {
        return;
    };
    assert!(timeouts.contains(&250), "{timeouts:?}");
    // After the line ended no connection was due: the last waits (the next request's, the
    // stop's) had no timer.
    let last = &timeouts[timeouts.len() - 2..];
    assert!(last.iter().all(|&t| t == -1), "{timeouts:?}");
}
