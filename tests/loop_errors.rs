//! An event loop (`--model event`) or io_uring ring (`--model uring`) whose wait fails: the
//! connections it held end with their log line and give their `--max-conns` slots back, and
//! the other loops serve on; when no loop is left the server ends, with one line saying so.
//! The failure is the real kernel call's, made to fail by strace (counted per thread).

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;

use common::{STEP, Server};

/// A client's request-reply rounds at most; the loop's wait fails long before (its 150th
/// call), and the idle loop's wait (uring: a tick every 200 ms) reaches it only after 30 s.
const ROUNDS: usize = 2000;
const FAILING_CALL: &str = "150";

/// Serves `model` with `threads` loops and one slot, strace making the [`FAILING_CALL`]th
/// waiting call `call` of each loop fail; `None` when strace cannot be had here.
fn failing(test: &str, model: &str, call: &str, threads: &str) -> Option<(Server, common::Peer)> {
    let server = Server::start(&[
        "--model",
        model,
        "--threads",
        threads,
        "--max-conns",
        "1",
        "--addr",
        "127.0.0.1:0",
    ]);
    let inject = format!("inject={call}:error=EIO:when={FAILING_CALL}");
    let trace = format!("trace={call}");
    let strace = common::strace::attach(test, server.pid(), &["-e", &trace, "-e", &inject])?;
    Some((server, strace))
}

/// A client of loop 0 exchanging bytes until its loop fails (the connection then ends).
fn serve_until_the_loop_fails(server: &Server, model: &str) {
    let mut first = TcpStream::connect(&server.addr).unwrap();
    first.set_read_timeout(Some(STEP)).unwrap();
    let served = common::echo_until_closed(&mut first, ROUNDS);
    assert!(served > 0, "{model}: not one round answered");
}

/// Serves `model` with two loops and one slot; makes the waiting call `call` of the loop
/// holding a client fail, then checks that the slot came back.
fn a_failed_loop_gives_back_its_slot(test: &str, model: &str, call: &str) {
    let Some((server, _strace)) = failing(test, model, call, "2") else {
        return;
    };
    // The first client goes to loop 0, which wakes once per round at least.
    serve_until_the_loop_fails(&server, model);
    let log = server.wait_log("; the others serve on");
    assert!(log.contains("loop 0 failed"), "{model}: {log}");
    // Its slot was given back: the next client is served by the other loop, not refused.
    let mut second = TcpStream::connect(&server.addr).unwrap();
    second.set_read_timeout(Some(STEP)).unwrap();
    second.write_all(b"hello").unwrap();
    let mut echoed = [0u8; 5];
    second
        .read_exact(&mut echoed)
        .unwrap_or_else(|e| panic!("{model}: no echo ({e}); log:\n{}", server.stderr()));
    assert_eq!(&echoed, b"HELLO", "{model}");
    // And the first client's session ended with its line, saying why.
    let log = server.stderr();
    assert!(
        log.contains("; error: the loop serving it ended on an error"),
        "{model}: {log}"
    );
    assert!(!log.contains("refused"), "{model}: {log}");
}

#[test]
fn an_event_loop_whose_epoll_wait_fails_gives_back_its_connections_slots() {
    let test = "an_event_loop_whose_epoll_wait_fails_gives_back_its_connections_slots";
    a_failed_loop_gives_back_its_slot(test, "event", "epoll_wait");
}

#[test]
fn a_uring_loop_whose_io_uring_enter_fails_gives_back_its_connections_slots() {
    let test = "a_uring_loop_whose_io_uring_enter_fails_gives_back_its_connections_slots";
    a_failed_loop_gives_back_its_slot(test, "uring", "io_uring_enter");
}

/// Serves `model` with `threads` loops (one or two) and makes each one's waiting call `call`
/// fail in turn, a client on it: the first of two says the other serves on; once none is
/// left the server ends, exit 1, with one line naming the last failure and that no loop is
/// left; each client's session ended with its line first.
fn a_server_with_no_loop_left_ends(test: &str, model: &str, call: &str, threads: usize) {
    let Some((mut server, _strace)) = failing(test, model, call, &threads.to_string()) else {
        return;
    };
    for n in 0..threads {
        // With loop 0 retired, the next client goes to loop 1.
        serve_until_the_loop_fails(&server, model);
        if n + 1 < threads {
            server.wait_log(&format!("{model} loop {n} failed: {call}: "));
        }
    }
    let (status, log) = server.wait_exit();
    assert_eq!(status.code(), Some(1), "{model}: {log}");
    let last = log.lines().last().unwrap_or_default();
    let n = threads - 1;
    assert!(
        last.starts_with(&format!("error: {model} loop {n} failed: {call}: ")),
        "{model}: {log}"
    );
    let left = format!(
        "; no {model} loop is left to serve connections: restart the server, or serve with \
         --model threads"
    );
    assert!(last.ends_with(&left), "{model}: {log}");
    assert_eq!(log.matches(" failed: ").count(), threads, "{model}: {log}");
    assert_eq!(
        log.matches("; the others serve on").count(),
        threads - 1,
        "{model}: {log}"
    );
    let ended = "; error: the loop serving it ended on an error";
    assert_eq!(log.matches(ended).count(), threads, "{model}: {log}");
}

#[test]
fn an_event_server_whose_only_loop_fails_ends_with_one_error_line() {
    let test = "an_event_server_whose_only_loop_fails_ends_with_one_error_line";
    a_server_with_no_loop_left_ends(test, "event", "epoll_wait", 1);
}

#[test]
fn a_uring_server_whose_only_ring_fails_ends_with_one_error_line() {
    let test = "a_uring_server_whose_only_ring_fails_ends_with_one_error_line";
    a_server_with_no_loop_left_ends(test, "uring", "io_uring_enter", 1);
}

#[test]
fn an_event_server_ends_when_its_second_loop_fails_too() {
    let test = "an_event_server_ends_when_its_second_loop_fails_too";
    a_server_with_no_loop_left_ends(test, "event", "epoll_wait", 2);
}

#[test]
fn a_uring_server_ends_when_its_second_ring_fails_too() {
    let test = "a_uring_server_ends_when_its_second_ring_fails_too";
    a_server_with_no_loop_left_ends(test, "uring", "io_uring_enter", 2);
}

/// Serves `model` with two loops under strace, which makes the second loop thread's start
/// (`clone3`) fail: the server ends on its own, exit 1, with one line saying which thread it
/// could not start, instead of waiting for a signal it no longer reads.
fn a_loop_thread_that_cannot_start_ends_the_server(test: &str, model: &str) {
    if !common::have("strace", test) {
        return;
    }
    let mut cmd = std::process::Command::new("strace");
    cmd.args(["-f", "-qq", "-o", "/dev/null", "-e", "trace=clone3"])
        .args(["-e", "inject=clone3:error=EAGAIN:when=2", common::bin()])
        .args(["serve", "--model", model, "--threads", "2"])
        .args(["--addr", "127.0.0.1:0"]);
    let mut server = Server::start_with(&mut cmd);
    let (status, log) = server.wait_exit();
    assert_eq!(status.code(), Some(1), "{model}: {log}");
    let last = log.lines().last().unwrap_or_default();
    let article = if model == "event" { "an" } else { "a" };
    assert!(
        last.starts_with(&format!("error: start {article} {model} loop thread: ")),
        "{model}: {log}"
    );
}

#[test]
fn an_event_loop_thread_that_cannot_start_ends_the_server() {
    let test = "an_event_loop_thread_that_cannot_start_ends_the_server";
    a_loop_thread_that_cannot_start_ends_the_server(test, "event");
}

#[test]
fn a_uring_loop_thread_that_cannot_start_ends_the_server() {
    let test = "a_uring_loop_thread_that_cannot_start_ends_the_server";
    a_loop_thread_that_cannot_start_ends_the_server(test, "uring");
}
