//! A server out of file descriptors (RLIMIT_NOFILE lowered with prlimit, a crowd of
//! connections past it): its start-up line estimates the connections it can hold, it says so
//! in a warning or two rather than one a loop pass, its clients keep being served, and it
//! accepts again once connections close.

mod common;

use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Plain, Server};

/// The limit the server runs under: a few dozen connections.
const NOFILE: &str = "--nofile=64:64";
/// Connections opened past it.
const CROWD: usize = 120;
/// How long the held client keeps exchanging while the crowd waits (at most this many round
/// trips too): long enough for a loop that met the error on every pass to log it hundreds of
/// times.
const EXCHANGING: Duration = Duration::from_millis(1500);
const MAX_ROUNDS: usize = 100_000;

fn have_prlimit(test: &str) -> bool {
    if Command::new("prlimit").arg("--version").output().is_ok() {
        return true;
    }
    common::skip(test, "prlimit (util-linux)", common::Lacks::Provided);
    false
}

/// The number in "connections past about N will fail".
fn estimate(log: &str) -> u64 {
    let at = log.find("connections past about ").expect("the estimate") + 23;
    let n: String = log[at..].chars().take_while(char::is_ascii_digit).collect();
    n.parse().expect("a number")
}

fn out_of_fds(model: &str) {
    let server = Server::start_with(Command::new("prlimit").args([
        NOFILE,
        "--",
        common::bin(),
        "serve",
        "--model",
        model,
        "--threads",
        "1",
        "--addr",
        "127.0.0.1:0",
    ]));
    // The estimate counts what the server holds at start, not a fixed 64.
    let about = estimate(&server.wait_log("connections past about"));
    assert!((20..64).contains(&about), "{model}: estimate {about}");
    let held = Plain::connect("tcp", &server.addr);
    held.exchange(b"before the crowd");
    let crowd: Vec<TcpStream> = (0..CROWD)
        .map(|_| TcpStream::connect(&server.addr).expect("connect (the listen queue takes it)"))
        .collect();
    server.wait_log("Too many open files");
    let start = Instant::now();
    let mut rounds = 0;
    while start.elapsed() < EXCHANGING && rounds < MAX_ROUNDS {
        held.exchange(b"while the crowd waits");
        rounds += 1;
    }
    let log = server.stderr();
    let warnings = log.matches("Too many open files").count();
    assert!(
        warnings <= 3,
        "{model}: {warnings} warnings in {rounds} round trips; log:\n{}",
        log.lines().take(20).collect::<Vec<_>>().join("\n")
    );
    // Those waiting are accepted (and end) as descriptors free up; then a new client is served.
    drop(crowd);
    let late = Plain::connect("tcp", &server.addr);
    late.exchange(b"after the crowd");
    held.exchange(b"the first client still served");
}

#[test]
fn an_event_loop_out_of_descriptors_keeps_serving_and_warns_once() {
    if have_prlimit("an_event_loop_out_of_descriptors_keeps_serving_and_warns_once") {
        out_of_fds("event");
    }
}

#[test]
fn a_uring_loop_out_of_descriptors_keeps_serving_and_warns_once() {
    if have_prlimit("a_uring_loop_out_of_descriptors_keeps_serving_and_warns_once") {
        out_of_fds("uring");
    }
}

#[test]
fn the_threads_model_out_of_descriptors_warns_once_and_accepts_again() {
    if have_prlimit("the_threads_model_out_of_descriptors_warns_once_and_accepts_again") {
        out_of_fds("threads");
    }
}
