//! `netecho send` as a user drives it: the interactive prompt, piped input, host names.

mod common;

use std::process::Command;

use common::{Server, netecho, ok, run};

/// What `send` to `server` shows on a terminal, typed `input`: `script` runs it on a
/// pseudo-terminal, so stdin really is a terminal.
fn send_on_a_terminal(server: &Server, input: &[u8]) -> String {
    let cmd = format!("{} send {}", common::bin(), server.url());
    ok(&run(
        Command::new("script").args(["-qec", &cmd, "/dev/null"]),
        input,
    ))
}

#[test]
fn interactive_prompt_skips_empty_lines_and_ends_at_eof() {
    let server = Server::start(&["--addr", "127.0.0.1:0"]);
    let out = netecho(&["send", "-i", &server.url()], b"hello\n\n   \nworld\n");
    // The empty line and the line of spaces are skipped (a prompt each, no message), as
    // the lesson's client (`input().strip()`) skips them. The prompts go to stderr: one per
    // line read, and one answered by the end of input.
    assert_eq!(ok(&out), "HELLO\nWORLD\n");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.matches(">>> ").count(), 5, "{stderr}");
    let log = server.wait_log("bytes in");
    assert!(log.contains("10 bytes in, 10 bytes out"), "{log}");
}

#[test]
fn a_blank_line_is_skipped_on_a_terminal_and_kept_from_a_pipe() {
    let server = Server::start(&["--addr", "127.0.0.1:0"]);
    let text = send_on_a_terminal(&server, b"hello\n \t \nworld\n\x04");
    assert!(text.contains("WORLD"), "no reply in {text:?}");
    let log = server.wait_log("bytes in");
    assert!(
        log.contains("10 bytes in, 10 bytes out"),
        "the blank line was sent: {log}"
    );
    // From a pipe the same line is a message, its bytes as they are.
    let piped = Server::start(&["--proto", "udp", "--addr", "127.0.0.1:0"]);
    let out = netecho(&["send", &piped.url()], b"hello\n \t \nworld\n");
    assert_eq!(ok(&out), "HELLO\n \t \nWORLD\n");
}

#[test]
fn a_terminal_gets_the_prompt_without_asking() {
    let server = Server::start(&["--addr", "127.0.0.1:0"]);
    let text = send_on_a_terminal(&server, b"hello\n\x04");
    assert!(text.contains(">>> "), "no prompt in {text:?}");
    assert!(text.contains("HELLO"), "no reply in {text:?}");
}

#[test]
fn the_prompt_stays_out_of_a_redirected_stdout_on_a_terminal() {
    let server = Server::start(&["--addr", "127.0.0.1:0"]);
    let dir = common::tempdir();
    let file = dir.path().join("replies");
    let cmd = format!(
        "{} send {} > {}",
        common::bin(),
        server.url(),
        file.display()
    );
    let out = run(
        Command::new("script").args(["-qec", &cmd, "/dev/null"]),
        b"hello\n\x04",
    );
    let shown = ok(&out);
    assert!(
        shown.contains(">>> "),
        "no prompt on the terminal: {shown:?}"
    );
    let replies = std::fs::read_to_string(&file).unwrap();
    assert_eq!(replies, "HELLO\n", "stdout holds more than the replies");
}

#[test]
fn piped_input_is_lines_over_message_sockets_and_bytes_over_streams() {
    let dir = common::tempdir();
    let path = dir.path().join("p.sock").display().to_string();
    let cases = [
        ("tcp", "[::1]:0".to_string()),
        ("udp", "127.0.0.1:0".to_string()),
        ("unix", path.clone()),
        ("unix-dgram", common::abstract_name("pipe-dgram")),
        ("unix-seqpacket", common::abstract_name("pipe-seq")),
    ];
    for (proto, addr) in cases {
        let server = Server::start(&["--proto", proto, "--addr", &addr]);
        let out = netecho(
            &["send", "--proto", proto, &server.addr],
            b"a\nb\r\n\nthird line\n",
        );
        // A stream takes stdin's bytes as they are, as nc does; a message socket gets a
        // message per line (an empty line is none, a CR before the newline is the ending).
        let want = match proto {
            "tcp" | "unix" => "A\nB\r\n\nTHIRD LINE\n",
            _ => "A\nB\nTHIRD LINE\n",
        };
        assert_eq!(ok(&out), want, "{proto}");
    }
}

#[test]
fn piped_bytes_come_back_as_they_are_over_tcp_unix_and_tls() {
    let data = common::awkward_bytes();
    let dir = common::tempdir();
    let path = dir.path().join("bytes.sock").display().to_string();
    let echo = ["--transform", "echo"];
    let tcp = Server::start(&[&echo[..], &["--addr", "127.0.0.1:0"]].concat());
    let _unix = Server::start(&[&echo[..], &["--addr", &path]].concat());
    let tls = Server::start(&[&echo[..], &["--tls", "--addr", "127.0.0.1:0"]].concat());
    let (pin, port) = (tls.pin(), tcp.port().to_string());
    let cases = [
        ("tcp", vec!["send", "127.0.0.1", &port]),
        ("unix", vec!["send", &path]),
        ("tls", vec!["send", "--tls", "--pin", &pin, &tls.addr]),
        ("tcp --hex", vec!["send", "--hex", &tcp.addr]),
    ];
    for (what, args) in cases {
        let out = netecho(&args, &data);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{what}: {stderr}");
        common::same_bytes(&out.stdout, &data, what);
    }
    // --hex dumps both ways on stderr and leaves stdout to the bytes.
    let out = netecho(&["send", "--hex", &tcp.addr], b"a\r\n\n");
    assert_eq!(ok(&out), "a\r\n\n");
    let dump = String::from_utf8_lossy(&out.stderr);
    assert!(
        dump.contains("> 4 bytes to") && dump.contains("< 4 bytes from"),
        "{dump}"
    );
}

#[test]
fn the_readme_pipe_command_works() {
    let server = Server::start(&["--addr", "[::1]:0"]);
    let addr = format!("[::1]:{}", server.port());
    let out = netecho(&["send", "--proto", "tcp", &addr], b"a\nb\n");
    assert_eq!(ok(&out), "A\nB\n");
}

#[test]
fn host_names_are_resolved() {
    let server = Server::start(&["--addr", "localhost:0"]);
    let addr = format!("localhost:{}", server.port());
    assert_eq!(ok(&netecho(&["send", &addr, "by name"], b"")), "BY NAME\n");
}

#[test]
fn a_message_of_many_lines_from_a_pipe_keeps_its_order() {
    let server = Server::start(&["--proto", "udp", "--addr", "127.0.0.1:0"]);
    let input: String = (0..200).map(|i| format!("line {i}\n")).collect();
    let out = netecho(&["send", &server.url()], input.as_bytes());
    assert_eq!(ok(&out), input.to_uppercase());
}

#[test]
fn ctrl_d_on_a_terminal_shuts_down_writing_and_prints_what_the_server_says_last() {
    // A server that is not netecho: it answers what it reads, and at the end of its input
    // says BYE and closes, as `sort` or `wc` answer only at the end.
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        conn.set_read_timeout(Some(std::time::Duration::from_secs(20)))
            .unwrap();
        let mut buf = [0u8; 1024];
        while let Ok(n @ 1..) = conn.read(&mut buf) {
            conn.write_all(&buf[..n].to_ascii_uppercase()).unwrap();
        }
        conn.write_all(b"BYE\n").ok();
    });
    let cmd = format!("{} send 127.0.0.1:{port}", common::bin());
    let out = run(
        Command::new("script").args(["-qec", &cmd, "/dev/null"]),
        b"hello\n\x04",
    );
    let text = ok(&out);
    assert!(text.contains("HELLO"), "no reply in {text:?}");
    assert!(text.contains("BYE"), "the last words were lost: {text:?}");
}

#[test]
fn plain_send_to_a_tls_port_says_add_tls_for_every_message_length() {
    let tls = Server::start(&["--tls", "--addr", "127.0.0.1:0"]);
    let long = "a".repeat(100_000);
    for msg in ["h", "hi", "abcd", "hello", "hello world", &long] {
        let line = common::fails(&netecho(&["send", &tls.url(), msg], b""), 1);
        assert!(line.contains("add --tls"), "{} bytes: {line}", msg.len());
    }
    for input in [&b"hi\n"[..], b"abcd\n", b"hello world\n"] {
        let out = netecho(&["send", &tls.url()], input);
        let line = common::fails(&out, 1);
        assert!(line.contains("add --tls"), "piped {input:?}: {line}");
        assert!(out.stdout.is_empty(), "piped {input:?}: {:?}", out.stdout);
    }
    for msg in ["hi", "hello"] {
        let out = netecho(&["send", "--burst", "3", &tls.url(), msg], b"");
        let line = common::fails(&out, 1);
        assert!(line.contains("add --tls"), "burst of {msg:?}: {line}");
        assert!(out.stdout.is_empty(), "burst of {msg:?}: {:?}", out.stdout);
    }
    // An echo of bytes shaped like the start of an alert is still an echo.
    let plain = Server::start(&["--addr", "127.0.0.1:0"]);
    let out = netecho(&["send", &plain.url(), "\x15\x03"], b"");
    assert_eq!(ok(&out), "\x15\x03\n");
    // A bare stream's two echoes come in one read or two; each read is one line.
    let out = netecho(&["send", "--burst", "2", &plain.url(), "\x15\x03"], b"");
    assert_eq!(ok(&out).replace('\n', ""), "\x15\x03\x15\x03");
}

#[test]
fn a_burst_cut_short_by_a_tls_server_closing_still_says_add_tls() {
    let test = "a_burst_cut_short_by_a_tls_server_closing_still_says_add_tls";
    if !common::have("strace", test) {
        return;
    }
    let probe = Command::new("strace")
        .args(["-f", "-qq", "-o", "/dev/null", "true"])
        .output();
    if !probe.is_ok_and(|o| o.status.success()) {
        let needs = "ptrace allowed, for strace to hold a send back";
        common::skip(test, needs, common::Lacks::Environment);
        return;
    }
    let tls = Server::start(&["--tls", "--addr", "127.0.0.1:0"]);
    // The burst's second send is held back half a second (strace): meanwhile the server
    // read the first message, answered it with its alert and closed, so the sends after it
    // fail (EPIPE). What the server said is still the error.
    for msg in ["hi", "hello"] {
        let out = run(
            Command::new("strace")
                .args(["-f", "-qq", "-o", "/dev/null", "-e", "trace=sendto"])
                .args(["-e", "inject=sendto:delay_enter=500000:when=2"])
                .args([common::bin(), "send", "--burst", "3", &tls.url(), msg]),
            b"",
        );
        let line = common::fails(&out, 1);
        assert!(line.contains("add --tls"), "burst of {msg:?}: {line}");
    }
}

#[test]
fn a_mistyped_port_is_refused_not_sent_as_the_message() {
    for (host, port) in [("127.0.0.1", "70000"), ("::1", "0"), ("localhost", "65536")] {
        let line = common::fails(&netecho(&["send", host, port, "hi"], b""), 2);
        assert!(line.contains(&format!("'{port}' is not a port")), "{line}");
        let advice = format!(":3234 {port}`");
        assert!(
            line.contains(&advice),
            "no way to send it as a message: {line}"
        );
    }
}
