//! `serve --exec` and `netecho exec` through the real binary: a program per client, its
//! arguments passed literally, its output whole, its time and place bounded.

mod common;

use std::path::Path;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use common::{STEP, Server, fails, netecho, ok, tempdir};

const PROTOS: [&str; 5] = ["tcp", "udp", "unix", "unix-dgram", "unix-seqpacket"];

/// An exec server for `proto` (its socket, if any, in `dir`) running PROGRAM ARGS.
fn exec_server(proto: &str, dir: &Path, extra: &[&str], program: &[&str]) -> Server {
    let sock = dir.join(format!("{proto}.sock"));
    let addr = match proto {
        "tcp" | "udp" => "127.0.0.1:0".to_string(),
        _ => sock.to_str().unwrap().to_string(),
    };
    let mut args = vec!["--proto", proto, "--addr", &addr];
    args.extend_from_slice(extra);
    args.push("--exec");
    args.extend_from_slice(program);
    Server::start(&args)
}

fn exec(server: &Server, stdin: &[u8]) -> std::process::Output {
    netecho(&["exec", &server.url()], stdin)
}

#[test]
fn tr_is_the_uppercase_service_again_over_every_transport() {
    for proto in PROTOS {
        let dir = tempdir();
        let server = exec_server(proto, dir.path(), &[], &["tr", "a-z", "A-Z"]);
        let out = exec(&server, b"hello, world\n");
        assert_eq!(ok(&out), "HELLO, WORLD\n", "{proto}");
        server.wait_log("exit status 0");
    }
}

#[test]
fn arguments_reach_the_program_literally_never_through_a_shell() {
    let dir = tempdir();
    let canary = dir.path().join("canary");
    std::fs::write(&canary, b"still here").unwrap();
    let hostile = format!("'; rm -rf {} ;'", canary.display());
    for proto in ["tcp", "unix-dgram"] {
        let server = exec_server(
            proto,
            dir.path(),
            &[],
            &["printf", "[%s]\\n", "';' rm -rf", &hostile, "$HOME", "*"],
        );
        let out = ok(&exec(&server, b""));
        assert_eq!(
            out,
            format!("[';' rm -rf]\n[{hostile}]\n[$HOME]\n[*]\n"),
            "{proto}"
        );
    }
    assert_eq!(std::fs::read(&canary).unwrap(), b"still here");
}

#[test]
fn a_megabyte_of_output_comes_back_whole_on_streams() {
    let expected = Command::new("seq").arg("180000").output().unwrap().stdout;
    assert!(
        expected.len() > 1 << 20,
        "seq gave {} bytes",
        expected.len()
    );
    for proto in ["tcp", "unix", "unix-seqpacket"] {
        let dir = tempdir();
        let server = exec_server(proto, dir.path(), &[], &["seq", "180000"]);
        let out = exec(&server, b"");
        ok(&out);
        assert!(
            out.stdout == expected,
            "{proto}: {} bytes back",
            out.stdout.len()
        );
    }
    // And a megabyte in, through cat, comes back the same.
    let input: Vec<u8> = (0..(1u32 << 20)).map(|i| (i * 7 % 251) as u8).collect();
    let dir = tempdir();
    let server = exec_server("unix", dir.path(), &[], &["cat"]);
    let out = exec(&server, &input);
    ok(&out);
    assert!(
        out.stdout == input,
        "cat returned {} bytes",
        out.stdout.len()
    );
}

#[test]
fn exit_status_and_marked_stderr_reach_the_client() {
    for proto in ["tcp", "udp", "unix-seqpacket"] {
        let dir = tempdir();
        let script = "echo out; echo oops >&2; exit 3";
        let server = exec_server(proto, dir.path(), &[], &["sh", "-c", script]);
        let out = exec(&server, b"");
        assert_eq!(out.status.code(), Some(3), "{proto}");
        assert_eq!(String::from_utf8_lossy(&out.stdout), "out\n", "{proto}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("oops"), "{proto}: {err}");
        assert!(err.contains("exit status 3"), "{proto}: {err}");
    }
}

/// Whether a process whose command line contains `needle` is running.
fn running(needle: &str) -> bool {
    let out = Command::new("pgrep").args(["-f", needle]).output().unwrap();
    out.status.success()
}

fn wait_gone(needle: &str) {
    let deadline = Instant::now() + STEP;
    while running(needle) {
        assert!(Instant::now() < deadline, "{needle} still running");
        thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_program_past_its_timeout_is_killed_and_reported() {
    // A sleep no other test runs, so pgrep finds only this one.
    let marker = "3141.5";
    for proto in ["tcp", "udp"] {
        let dir = tempdir();
        let server = exec_server(
            proto,
            dir.path(),
            &["--exec-timeout", "1s"],
            &["sleep", marker],
        );
        let started = Instant::now();
        let out = exec(&server, b"");
        assert_ne!(out.status.code(), Some(0), "{proto}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("killed") && err.contains("--exec-timeout"),
            "{err}"
        );
        assert!(started.elapsed() < Duration::from_secs(15), "{proto}");
        server.wait_log("killed");
        wait_gone(&format!("^sleep {marker}$"));
    }
}

#[test]
fn a_program_that_outlives_its_connection_is_killed() {
    let marker = "2718.2";
    let dir = tempdir();
    let server = exec_server("unix", dir.path(), &[], &["sleep", marker]);
    let sock = dir.path().join("unix.sock");
    let conn = std::os::unix::net::UnixStream::connect(&sock).unwrap();
    let deadline = Instant::now() + STEP;
    while !running(&format!("^sleep {marker}$")) {
        assert!(Instant::now() < deadline, "the program never started");
        thread::sleep(Duration::from_millis(20));
    }
    drop(conn);
    wait_gone(&format!("^sleep {marker}$"));
    server.wait_log("killed");
}

#[test]
fn exec_on_a_non_loopback_address_needs_the_flag() {
    for addr in ["0.0.0.0:0", "[::]:0"] {
        let out = netecho(&["serve", "--addr", addr, "--exec", "cat"], b"");
        let line = fails(&out, 2);
        assert!(line.contains("--allow-remote-exec"), "{line}");
    }
    // With the flag it serves, and warns; the test still talks to it over loopback only.
    let server = Server::start(&[
        "--addr",
        "0.0.0.0:0",
        "--allow-remote-exec",
        "--exec",
        "tr",
        "a-z",
        "A-Z",
    ]);
    assert!(server.wait_log("WARN").contains("--allow-remote-exec"));
    let port = server.port().to_string();
    let out = netecho(&["exec", &format!("127.0.0.1:{port}")], b"abc");
    assert_eq!(ok(&out), "ABC");
}

#[test]
fn a_program_that_cannot_start_is_one_clear_error() {
    let line = fails(
        &netecho(
            &[
                "serve",
                "--addr",
                "127.0.0.1:0",
                "--exec",
                "/no/such/program",
            ],
            b"",
        ),
        1,
    );
    assert!(line.contains("/no/such/program"), "{line}");
}

#[test]
fn a_process_left_behind_does_not_hold_the_reply() {
    // The program ends at once, but leaves a process in a session of its own holding its
    // stdout: the client still gets the answer and the exit status without waiting for it.
    let marker = "1618.03";
    let dir = tempdir();
    // It holds stdin too, and never reads it: a megabyte of input cannot all go in.
    let script = format!("setsid sleep {marker} <&0 & echo started");
    let server = exec_server("tcp", dir.path(), &[], &["sh", "-c", &script]);
    let started = Instant::now();
    let out = exec(&server, &vec![b'x'; 1 << 20]);
    assert_eq!(ok(&out), "started\n");
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "waited for the process left behind"
    );
    server.wait_log("exit status 0");
    let _ = Command::new("pkill")
        .args(["-f", &format!("^sleep {marker}$")])
        .status();
}
