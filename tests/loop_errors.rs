//! An event loop (`--model event`) or io_uring ring (`--model uring`) whose wait fails: the
//! connections it held end with their log line and give their `--max-conns` slots back, and
//! the other loops serve on. The failure is the real kernel call's, made to fail by strace.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;

use common::{STEP, Server};

/// A client's request-reply rounds at most; the loop's wait fails long before (its 150th
/// call), and the idle loop's wait (uring: a tick every 200 ms) reaches it only after 30 s.
const ROUNDS: usize = 2000;
const FAILING_CALL: &str = "150";

/// Serves `model` with two loops and one slot; makes the waiting call `call` of the loop
/// holding a client fail, then checks that the slot came back.
fn a_failed_loop_gives_back_its_slot(test: &str, model: &str, call: &str) {
    let server = Server::start(&[
        "--model",
        model,
        "--threads",
        "2",
        "--max-conns",
        "1",
        "--addr",
        "127.0.0.1:0",
    ]);
    let inject = format!("inject={call}:error=EIO:when={FAILING_CALL}");
    let trace = format!("trace={call}");
    let Some(_strace) = common::strace::attach(test, server.pid(), &["-e", &trace, "-e", &inject])
    else {
        return;
    };
    // The first client goes to loop 0, which wakes once per round at least.
    let mut first = TcpStream::connect(&server.addr).unwrap();
    first.set_read_timeout(Some(STEP)).unwrap();
    let mut reply = [0u8; 1];
    let served = (0..ROUNDS)
        .take_while(|_| first.write_all(b"x").is_ok() && matches!(first.read(&mut reply), Ok(1)))
        .count();
    assert!(served < ROUNDS, "{model}: the loop never failed");
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
        log.contains(" reads; error: the loop serving it ended on an error"),
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
