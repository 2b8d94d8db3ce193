//! A server the OS refuses threads to (RLIMIT_NPROC, lowered for a user of its own) answers
//! "busy" and goes on serving: it never panics.

mod common;

use std::net::UdpSocket;
use std::process::Command;

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
    // Room for the server and its exec-reaper thread, a request's thread, its program and
    // two threads beside it: the third thread a program needs is refused, every time.
    // The test's user is not the server's: a rule lets it run the program from this host.
    let me = format!("uid:{}", nix::unistd::geteuid());
    let server = Server::start_with(&mut starved(
        6,
        &[
            "--proto",
            "udp",
            "--addr",
            "127.0.0.1:0",
            "--allow",
            &me,
            "--exec",
            "cat",
        ],
    ));
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    client.set_read_timeout(Some(common::STEP)).unwrap();
    for round in 0..3 {
        client.send_to(b"hi", &server.addr).unwrap();
        let mut buf = [0u8; 512];
        let n = client
            .recv(&mut buf)
            .unwrap_or_else(|e| panic!("no answer to request {round} ({e}):\n{}", server.stderr()));
        let answer = String::from_utf8_lossy(&buf[..n]).into_owned();
        assert!(answer.contains("busy"), "answer {round}: {answer:?}");
    }
    let log = server.stderr();
    assert!(!log.contains("panicked"), "the server panicked:\n{log}");
}

#[test]
fn a_file_request_sent_a_byte_at_a_time_is_closed_at_the_idle_timeout() {
    use std::io::{Read, Write};
    let dir = common::tempdir();
    let server = common::files_server("tcp", dir.path(), &["--idle-timeout", "1s"]);
    let mut conn = std::net::TcpStream::connect(&server.addr).unwrap();
    conn.set_nonblocking(true).unwrap();
    // A length prefix for a 100-byte request, then its bytes one every 250 ms: each recv
    // comes well within the idle timeout, the request never whole.
    let mut request = vec![0, 0, 0, 100];
    request.extend_from_slice(&[b'G'; 100]);
    let mut closed = false;
    for byte in request.iter().take(60) {
        if conn.write_all(&[*byte]).is_err() {
            closed = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(250));
        match conn.read(&mut [0u8; 64]) {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            _ => {
                closed = true;
                break;
            }
        }
    }
    assert!(
        closed,
        "15 s of one byte per 250 ms kept the connection:\n{}",
        server.stderr()
    );
    server.wait_log("within the idle timeout");
}
