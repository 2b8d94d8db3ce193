//! A server the OS refuses threads to (RLIMIT_NPROC, lowered for a user of its own) answers
//! "busy" and goes on serving: it never panics.

mod common;

use std::net::UdpSocket;
use std::process::Command;
use std::time::Duration;

use common::{Server, bin, can_switch_user, skip};

/// A user id no other test runs as, so RLIMIT_NPROC counts this server's threads only.
const UID: &str = "65533";

fn starved(nproc: u32, args: &[&str]) -> Command {
    let mut cmd = Command::new("prlimit");
    cmd.arg(format!("--nproc={nproc}:{nproc}")).args([
        "setpriv",
        &format!("--reuid={UID}"),
        &format!("--regid={UID}"),
        "--clear-groups",
        "--",
        bin(),
        "serve",
    ]);
    cmd.args(args);
    cmd
}

#[test]
fn exec_over_udp_without_threads_answers_busy_and_goes_on() {
    if !can_switch_user() {
        skip(
            "exec_over_udp_without_threads_answers_busy_and_goes_on",
            "root and setpriv to run the server as a user with a low RLIMIT_NPROC",
            common::Lacks::Provided,
        );
        return;
    }
    let server = Server::start_with(&mut starved(
        6,
        &["--proto", "udp", "--addr", "127.0.0.1:0", "--exec", "cat"],
    ));
    // Each request wants a thread, a program and three threads beside it: most are refused.
    let senders: Vec<UdpSocket> = (0..30)
        .map(|_| {
            let s = UdpSocket::bind("127.0.0.1:0").unwrap();
            s.set_read_timeout(Some(Duration::from_millis(200)))
                .unwrap();
            s.send_to(b"hi", &server.addr).unwrap();
            s
        })
        .collect();
    let log = server.wait_log("busy");
    assert!(!log.contains("panicked"), "the server panicked:\n{log}");
    drop(senders);
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(1)))
        .unwrap();
    common::eventually("an answer once the crowd is gone", || {
        client.send_to(b"again", &server.addr).ok()?;
        let mut buf = [0u8; 512];
        let n = client.recv(&mut buf).ok()?;
        buf[..n].windows(5).any(|w| w == b"again").then_some(())
    });
    let log = server.stderr();
    assert!(!log.contains("panicked"), "the server panicked:\n{log}");
}
