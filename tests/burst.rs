//! `send --burst` over datagrams: replies printed as they come, and lost replies cost one
//! timeout in all, not one each.

mod common;

use std::net::UdpSocket;
use std::process::{Command, Stdio};
use std::thread;
use std::time::Duration;

use common::{bin, output_within};

/// A udp server that is not netecho: it answers the first `answers` datagrams upper-cased
/// and then reads the rest without answering, as a server that drops would.
fn answers_only(answers: usize, total: usize) -> (u16, thread::JoinHandle<()>) {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let port = sock.local_addr().unwrap().port();
    let handle = thread::spawn(move || {
        let mut buf = [0u8; 2048];
        let mut seen = 0;
        while seen < total {
            let Ok((n, from)) = sock.recv_from(&mut buf) else {
                break;
            };
            if seen < answers {
                sock.send_to(&buf[..n].to_ascii_uppercase(), from).unwrap();
            }
            seen += 1;
        }
    });
    (port, handle)
}

/// `send --proto udp --burst COUNT --timeout WAIT 127.0.0.1:PORT MSG`, to its end.
fn burst(port: u16, count: &str, wait: &str, msg: &str) -> std::process::Output {
    let addr = format!("127.0.0.1:{port}");
    let child = Command::new(bin())
        .args([
            "send",
            "--proto",
            "udp",
            "--burst",
            count,
            "--timeout",
            wait,
        ])
        .args([addr.as_str(), msg])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    output_within(child, "send --burst", Duration::from_secs(40))
}

#[test]
fn a_burst_whose_replies_are_lost_waits_one_timeout_and_counts_them() {
    // 300 lost replies at 3 s each would take 15 minutes, past the 40 s bound of `burst`;
    // one deadline takes 3 s. (3 s, not less: the three answers must all come before it on
    // a loaded machine too.)
    let (port, _server) = answers_only(3, 303);
    let out = burst(port, "303", "3s", "hello");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(stdout.lines().collect::<Vec<_>>(), ["HELLO"; 3], "{stderr}");
    assert!(stderr.contains("300 replies missing"), "{stderr}");
}

#[test]
fn a_burst_prints_each_reply_before_the_burst_ends() {
    // The server answers one and then nothing: the reply must reach stdout while the
    // client still waits for the others, not only at the end.
    let (port, _server) = answers_only(1, 2);
    let addr = format!("127.0.0.1:{port}");
    let mut child = Command::new(bin())
        .args(["send", "--proto", "udp", "--burst", "2", "--timeout", "10s"])
        .args([addr.as_str(), "first"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    thread::spawn(move || {
        use std::io::Read;
        let mut line = [0u8; 6];
        let got = stdout.read_exact(&mut line).map(|_| line);
        tx.send(got.ok()).ok();
    });
    let got = rx.recv_timeout(Duration::from_secs(8));
    child.kill().ok();
    child.wait().ok();
    assert_eq!(got.ok().flatten().as_ref(), Some(b"FIRST\n"));
}

#[test]
fn a_burst_with_no_reply_at_all_fails() {
    let (port, _server) = answers_only(0, 20);
    let out = burst(port, "20", "300ms", "anyone");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("no reply to any of them"), "{stderr}");
}

#[test]
fn one_of_a_thing_is_counted_in_the_singular() {
    // A one-byte echo: the burst's line, the explained recv and the server's line for the
    // client all count one byte, one read, one message.
    let server = common::Server::start(&["--addr", "127.0.0.1:0"]);
    let out = common::netecho(
        &["send", "--burst", "1", "--explain", &server.addr, "x"],
        b"",
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(common::ok(&out), "X\n", "{stderr}");
    let line = "burst: sent 1 message of 1 byte back to back; got 1 byte back in 1 read";
    assert!(stderr.contains(line), "{stderr}");
    assert!(stderr.contains("send(fd 3, 1 byte) = 1\n"), "{stderr}");
    assert!(stderr.contains("recv(fd 3, 1) = 1 byte\n"), "{stderr}");
    server.wait_log("1 byte in, 1 byte out, 1 read; closed by peer");
}
