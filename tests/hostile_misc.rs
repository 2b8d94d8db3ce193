//! Smaller defences against hostile peers and crashes: temporary files a dead process left,
//! names that would forge log lines, a flood of datagram sources that would flood the log,
//! what a program run by exec inherits.

mod common;

use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;

use common::{STEP, Server, tempdir};

/// A pid no process has now.
fn dead_pid() -> u32 {
    (100_000..4_000_000)
        .rev()
        .find(|pid| !std::path::Path::new(&format!("/proc/{pid}")).exists())
        .expect("a free pid")
}

#[test]
fn temporary_files_of_a_dead_netecho_are_removed_at_start_and_no_others() {
    let dir = tempdir();
    let dead = dead_pid();
    let alive = std::process::id();
    fs::create_dir(dir.path().join("sub")).unwrap();
    let stale = [
        format!(".a.txt.netecho-{dead}-0.part"),
        format!("sub/.d.bin.netecho-{dead}-3.part"),
    ];
    let kept = [
        format!(".b.txt.netecho-{alive}-0.part"),
        ".c.txt.netecho-x.part".to_string(),
        format!("a.txt.netecho-{dead}-0.part"),
        "plain.txt".to_string(),
    ];
    for name in stale.iter().chain(&kept) {
        fs::write(dir.path().join(name), b"x").unwrap();
    }
    // The sweep is a server's that writes into DIR (a read-only one removes nothing).
    let server = common::files_server("tcp", dir.path(), &["--upload"]);
    for name in &stale {
        assert!(!dir.path().join(name).exists(), "{name} was left");
    }
    for name in &kept {
        assert!(dir.path().join(name).exists(), "{name} was removed");
    }
    server.wait_log(&format!("left by netecho process {dead}"));
}

#[test]
fn a_file_name_with_a_newline_cannot_forge_a_log_line() {
    let dir = tempdir();
    let server = common::files_server("tcp", dir.path(), &[]);
    let mut conn = TcpStream::connect(&server.addr).unwrap();
    conn.set_read_timeout(Some(STEP)).unwrap();
    let request = b"GET nothing\n WARN 10.0.0.1:4242: FORGED sent 'passwd'";
    conn.write_all(&(request.len() as u32).to_be_bytes())
        .unwrap();
    conn.write_all(request).unwrap();
    let mut reply = Vec::new();
    let _ = conn.read_to_end(&mut reply);
    let log = server.wait_log("FORGED");
    assert!(
        !log.lines()
            .any(|l| l.trim_start().starts_with("WARN 10.0.0.1")),
        "a forged line in the log:\n{log}"
    );
}

#[test]
fn exec_programs_get_a_small_environment_and_what_exec_env_names() {
    let env_of = |extra: &[&str]| {
        let mut args = vec!["serve", "--proto", "tcp", "--addr", "127.0.0.1:0"];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["--exec", "env"]);
        let mut cmd = std::process::Command::new(common::bin());
        cmd.args(&args).env("NETECHO_TEST_SECRET", "hunter2");
        let server = Server::start_with(&mut cmd);
        common::ok(&common::netecho(&["exec", &server.url()], b""))
    };
    let plain = env_of(&[]);
    assert!(plain.contains("PATH="), "{plain}");
    assert!(
        !plain.contains("hunter2"),
        "the secret was passed on:\n{plain}"
    );
    let named = env_of(&["--exec-env", "NETECHO_TEST_SECRET"]);
    assert!(named.contains("NETECHO_TEST_SECRET=hunter2"), "{named}");
}

#[test]
fn the_fork_model_serves_at_most_256_clients_unless_told() {
    let server = Server::start(&["--proto", "tcp", "--addr", "127.0.0.1:0", "--model", "fork"]);
    server.wait_log("at most 256 at once (--max-conns)");
    let told = Server::start(&[
        "--proto",
        "tcp",
        "--addr",
        "127.0.0.1:0",
        "--model",
        "fork",
        "--max-conns",
        "1000",
    ]);
    told.wait_log("at most 1000 at once (--max-conns)");
}

/// One length-prefixed frame of the stream file protocol.
fn frame(conn: &mut TcpStream, body: &[u8]) {
    conn.write_all(&(body.len() as u32).to_be_bytes()).unwrap();
    conn.write_all(body).unwrap();
}

fn read_frame(conn: &mut TcpStream) -> String {
    let mut len = [0u8; 4];
    conn.read_exact(&mut len).expect("a reply frame");
    let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
    conn.read_exact(&mut body).unwrap();
    String::from_utf8_lossy(&body).into_owned()
}

#[test]
fn an_upload_that_cannot_be_kept_tells_the_client_why() {
    use sha2::{Digest, Sha256};
    let dir = tempdir();
    let server = common::files_server("tcp", dir.path(), &["--upload"]);
    let mut malformed = TcpStream::connect(&server.addr).unwrap();
    malformed.set_read_timeout(Some(STEP)).unwrap();
    frame(&mut malformed, b"PUT lots up.txt");
    assert!(read_frame(&mut malformed).starts_with("ERR "));

    let mut conn = TcpStream::connect(&server.addr).unwrap();
    conn.set_read_timeout(Some(STEP)).unwrap();
    frame(&mut conn, b"PUT 5 up.txt");
    assert_eq!(read_frame(&mut conn), "OK");
    // Someone else's file appears under the name while the upload goes on.
    fs::write(dir.path().join("up.txt"), b"theirs").unwrap();
    frame(&mut conn, b"hello");
    frame(&mut conn, b"");
    frame(&mut conn, &Sha256::digest(b"hello"));
    let verdict = read_frame(&mut conn);
    assert!(
        verdict.contains("appeared during the transfer"),
        "{verdict}"
    );
    assert_eq!(fs::read(dir.path().join("up.txt")).unwrap(), b"theirs");
}

/// Datagram sources past the peer table's 1024: each new one makes the server forget the
/// longest-silent peer. A source costs nothing to change, so those lines are throttled: at
/// most ten a second, and every one a line or counted.
fn a_flood_of_new_sources_gives_a_few_log_lines(model: &str) {
    const SOURCES: usize = 1500;
    const FORGOTTEN: usize = SOURCES - 1024;
    let server = Server::start(&["--proto", "udp", "--model", model, "--addr", "127.0.0.1:0"]);
    let start = std::time::Instant::now();
    for n in 0..SOURCES {
        // An address of its own each (127.1.0.0/16 is loopback too): a port the kernel
        // gives a closed socket's successor could repeat a source.
        let source = std::net::Ipv4Addr::new(127, 1, (n / 256) as u8, (n % 256) as u8);
        let sock = std::net::UdpSocket::bind((source, 0)).unwrap();
        sock.set_read_timeout(Some(STEP)).unwrap();
        sock.send_to(b"hi", &server.addr).unwrap();
        let mut reply = [0u8; 8];
        let got = sock.recv(&mut reply);
        assert!(matches!(got, Ok(2)), "source {n}: {got:?}");
    }
    let seconds = start.elapsed().as_secs();
    let (_, _, log) = server.stop("TERM");
    let (lines, left_out) = common::logged(&log, "forgotten: peer table full");
    assert!(
        lines as u64 <= 10 * (seconds + 2) + 1,
        "{lines} lines for {FORGOTTEN} sources forgotten in {seconds} s:\n{log}"
    );
    let at_stop = common::left_out_at_stop(&log);
    assert_eq!(
        lines + left_out + at_stop,
        FORGOTTEN,
        "every one a line or a count:\n{log}"
    );
}

#[test]
fn an_event_udp_server_flooded_with_sources_logs_a_few_lines() {
    a_flood_of_new_sources_gives_a_few_log_lines("event");
}

#[test]
fn a_uring_udp_server_flooded_with_sources_logs_a_few_lines() {
    a_flood_of_new_sources_gives_a_few_log_lines("uring");
}
