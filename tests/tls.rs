//! TLS through the real programs: `serve --tls` answering openssl s_client, socat and ncat,
//! `send --tls` talking to openssl s_server and socat, netecho on both ends over every
//! stream transport and model, and what goes wrong (an untrusted, expired or unpinned
//! certificate, plaintext on either side, a handshake that never ends, garbage), each
//! one line on the side that saw it while the server goes on serving.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{
    Peer, Server, fails, free_port, have, netecho, ok, openssl_certs, openssl_fingerprint, run,
    tempdir,
};

/// Starts a peer and waits (at most 20 s: a loaded machine starts programs slowly) until
/// its port accepts.
fn start_peer(cmd: &mut Command, port: u16) -> Peer {
    let peer = Peer(
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the peer"),
    );
    for _ in 0..200 {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return peer;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("the peer never listened on {port}");
}

/// The `listening` line of `netecho serve ARGS` (the server is stopped after it).
fn listening_line(args: &[&str]) -> String {
    use std::io::BufRead;
    let mut child = Command::new(common::bin())
        .arg("serve")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    let _ = std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut line);
    let _ = child.kill();
    let _ = child.wait();
    line.trim_end().to_string()
}

/// Runs `sh -c script` with `stdin`, bounded; its stdout.
fn shell(script: &str, stdin: &[u8]) -> String {
    let out = run(Command::new("sh").args(["-c", script]), stdin);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `openssl s_client -quiet -no_ign_eof ARGS` sending `line`: what it printed. It stops at
/// the end of its input, so the input is held open until an answer came (at most 15 s),
/// never for a fixed time an answer on a loaded machine may miss.
fn s_client(args: &str, line: &str) -> String {
    let dir = tempdir();
    let out = dir.path().join("answer");
    shell(
        &format!(
            "(printf '{line}\\n'; i=0; while [ $i -lt 150 ] && [ ! -s {out} ]; do sleep 0.1; \
             i=$((i+1)); done) | openssl s_client -quiet -no_ign_eof {args} >{out} 2>/dev/null; \
             cat {out}",
            out = out.display()
        ),
        b"",
    )
}

/// serve's flags for TLS presenting `cert` and `key`, then `rest` (an --addr, say).
fn with_cert<'a>(cert: &'a Path, key: &'a Path, rest: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["--tls", "--cert", cert.to_str().unwrap()];
    args.extend(["--key", key.to_str().unwrap()]);
    args.extend_from_slice(rest);
    args
}

/// `netecho send --tls ARGS`, with `stdin`.
fn send_tls(args: &[&str], stdin: &[u8]) -> std::process::Output {
    netecho(&[&["send", "--tls"], args].concat(), stdin)
}

#[test]
fn netecho_talks_tls_to_itself_over_every_stream_transport_and_model() {
    let dir = tempdir();
    for model in ["event", "threads", "iterative", "fork"] {
        let addrs = [
            "127.0.0.1:0".to_string(),
            "[::1]:0".to_string(),
            format!("unix://{}/{model}.sock", dir.path().display()),
            format!("unix-seqpacket://{}/{model}-sp.sock", dir.path().display()),
        ];
        for addr in &addrs {
            let server = Server::start(&["--tls", "--model", model, "--addr", addr]);
            let pin = server.pin();
            let out = send_tls(&["--pin", &pin, &server.url(), "hello tls"], b"");
            assert_eq!(ok(&out), "HELLO TLS\n", "{model} {addr}");
            // Many lines through one connection, framed, both ways at once.
            let input: String = (0..200).map(|i| format!("line {i}\n")).collect();
            let out = send_tls(
                &["--pin", &pin, "--framing", "line", &server.url()],
                input.as_bytes(),
            );
            assert_eq!(ok(&out), input.to_uppercase(), "{model} {addr} lines");
        }
    }
}

#[test]
fn tls_1_2_when_both_ends_ask_and_a_clear_line_when_they_differ() {
    let server = Server::start(&["--tls", "--tls-version", "1.2", "--addr", "127.0.0.1:0"]);
    let pin = server.pin();
    let out = netecho(
        &[
            "-v",
            "send",
            "--tls",
            "--pin",
            &pin,
            "--tls-version",
            "1.2",
            &server.url(),
            "old",
        ],
        b"",
    );
    assert_eq!(ok(&out), "OLD\n");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("TLS 1.2"),
        "-v names the version"
    );
    let line = fails(&send_tls(&["--pin", &pin, &server.url(), "new"], b""), 1);
    assert!(line.contains("--tls-version"), "{line}");
    let out = send_tls(
        &[
            "--pin",
            &pin,
            "--tls-version",
            "1.2",
            &server.url(),
            "still",
        ],
        b"",
    );
    assert_eq!(ok(&out), "STILL\n", "the server goes on");
}

#[test]
fn openssl_s_client_trusts_serve_through_a_ca_and_the_printed_fingerprint_is_openssls() {
    if !have("openssl", "openssl_s_client") {
        return;
    }
    let dir = tempdir();
    let (ca, cert, key) = openssl_certs(dir.path(), "good", false);
    let server = Server::start(&with_cert(&cert, &key, &["--addr", "127.0.0.1:0"]));
    let want = openssl_fingerprint(&cert);
    let v12 = Server::start(&with_cert(
        &cert,
        &key,
        &["--tls-version", "1.2", "--addr", "[::1]:0"],
    ));
    for (version, port, host) in [
        ("-tls1_3", server.port(), "127.0.0.1"),
        ("-tls1_2", v12.port(), "[::1]"),
    ] {
        let got = s_client(
            &format!(
                "-verify_return_error -CAfile {} {version} -connect {host}:{port}",
                ca.display(),
            ),
            "hello from openssl",
        );
        assert_eq!(got, "HELLO FROM OPENSSL\n", "{version}");
    }
    // Over a Unix socket: s_client -unix.
    let path = dir.path().join("tls.sock");
    let _unix = Server::start(&with_cert(
        &cert,
        &key,
        &["--addr", &format!("unix://{}", path.display())],
    ));
    let got = s_client(
        &format!(
            "-CAfile {} -verify_return_error -verify_hostname localhost -unix {}",
            ca.display(),
            path.display()
        ),
        "over unix",
    );
    assert_eq!(got, "OVER UNIX\n");
    // --ca with the CA openssl made: netecho checks the chain and the address.
    let out = send_tls(
        &["--ca", ca.to_str().unwrap(), &server.url(), "via ca"],
        b"",
    );
    assert_eq!(ok(&out), "VIA CA\n");
    // The pin openssl computes is the one netecho checks.
    let out = send_tls(
        &[
            "--pin",
            &want.to_lowercase().replace(':', ""),
            &server.url(),
            "pinned",
        ],
        b"",
    );
    assert_eq!(ok(&out), "PINNED\n");
    let line = listening_line(&with_cert(&cert, &key, &["--addr", "127.0.0.1:0"]));
    assert!(
        line.ends_with(&format!(" tls sha256 {want}")),
        "{line} vs {want}"
    );
}

#[test]
fn socat_and_ncat_are_clients_of_serve_tls() {
    if !have("socat", "socat_openssl") || !have("ncat", "ncat_ssl") {
        return;
    }
    let server = Server::start(&["--tls", "--addr", "127.0.0.1:0"]);
    // socat ends once the server closes after socat's close_notify (timeout: a hang guard).
    let got = shell(
        &format!(
            "timeout 20 socat - OPENSSL:127.0.0.1:{},verify=0; echo \"rc=$?\"",
            server.port()
        ),
        b"from socat\n",
    );
    assert_eq!(got, "FROM SOCAT\nrc=0\n");
    let got = shell(
        &format!("ncat --ssl 127.0.0.1 {}", server.port()),
        b"from ncat\n",
    );
    assert_eq!(got, "FROM NCAT\n");
}

/// ALPN that does not match, each side told what it must offer: netecho's client against
/// an h2 server, and curl (offering h2, http/1.1) against `serve --tls`.
#[test]
fn an_alpn_mismatch_says_what_each_side_must_offer() {
    if !have("openssl", "tls_alpn_mismatch") || !have("curl", "tls_alpn_curl") {
        return;
    }
    let dir = tempdir();
    let (_, cert, key) = openssl_certs(dir.path(), "alpn", false);
    let port = free_port();
    let _h2 = start_peer(
        Command::new("openssl")
            .args(["s_server", "-quiet", "-alpn", "h2", "-accept"])
            .arg(port.to_string())
            .arg("-cert")
            .arg(&cert)
            .arg("-key")
            .arg(&key),
        port,
    );
    let out = send_tls(&["--insecure", &format!("127.0.0.1:{port}"), "hi"], b"");
    let line = fails(&out, 1);
    assert!(
        line.contains("none of the ALPN protocols netecho offers"),
        "{line}"
    );
    assert!(!line.contains("NoApplicationProtocol"), "{line}");
    // The server names what the client offered, under a model that handshakes on its loop
    // thread and one with a thread per connection.
    for model in ["event", "threads"] {
        let server = Server::start(&["--tls", "--model", model, "--addr", "127.0.0.1:0"]);
        let url = format!("https://{}/", server.addr);
        let out = run(
            Command::new("curl").args(["-sk", "--max-time", "20", &url]),
            b"",
        );
        assert!(!out.status.success());
        let log =
            server.wait_log("a client must offer \"netecho\" or no ALPN at all (curl --no-alpn");
        assert!(log.contains("the client offered ALPN "), "{model}: {log}");
        assert!(
            log.contains("http/1.1, none of them netecho's"),
            "{model}: {log}"
        );
    }
}

#[test]
fn send_tls_talks_to_openssl_s_server_and_socat() {
    if !have("openssl", "openssl_s_server") || !have("socat", "socat_openssl_listen") {
        return;
    }
    let dir = tempdir();
    let (ca, cert, key) = openssl_certs(dir.path(), "peer", false);
    let port = free_port();
    let _socat = start_peer(
        Command::new("socat")
            .arg(format!(
                "OPENSSL-LISTEN:{port},reuseaddr,fork,cert={},key={},verify=0",
                cert.display(),
                key.display()
            ))
            .arg("EXEC:tr a-z A-Z"),
        port,
    );
    let out = send_tls(
        &["--ca", ca.to_str().unwrap(), &format!("127.0.0.1:{port}")],
        b"to socat\n",
    );
    assert_eq!(ok(&out), "TO SOCAT\n");
    for version in ["1.3", "1.2"] {
        let port = free_port();
        let flag = if version == "1.3" {
            "-tls1_3"
        } else {
            "-tls1_2"
        };
        let _s = start_peer(
            Command::new("openssl")
                .args(["s_server", "-quiet", "-rev", flag, "-accept"])
                .arg(port.to_string())
                .arg("-cert")
                .arg(&cert)
                .arg("-key")
                .arg(&key),
            port,
        );
        let out = send_tls(
            &[
                "--ca",
                ca.to_str().unwrap(),
                "--tls-version",
                version,
                // s_server never closes: send ends after this long without a byte, so the
                // reply must come within it.
                "--timeout",
                "3s",
                &format!("127.0.0.1:{port}"),
            ],
            b"abc\n",
        );
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            text.contains("cba"),
            "openssl s_server -rev over TLS {version}: {text:?} {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// A --cert that does not name the address served is warned about at start, with the names
/// it has and the --server-name that reaches it; one that names it is not.
#[test]
fn a_cert_for_other_names_than_the_address_served_is_warned_about_at_start() {
    if !have("openssl", "a_cert_for_other_names_than_the_address_served") {
        return;
    }
    let dir = tempdir();
    let (ca, cert, key) = openssl_certs(dir.path(), "names", false);
    let elsewhere = Server::start(&with_cert(&cert, &key, &["--addr", "127.0.0.2:0"]));
    let warned = elsewhere.wait_log("WARN");
    assert!(
        warned.contains("is for 127.0.0.1, ::1, localhost, not 127.0.0.2")
            && warned.contains("--server-name 127.0.0.1"),
        "{warned}"
    );
    // The advice works as given.
    let args = ["--ca", ca.to_str().unwrap(), "--server-name", "127.0.0.1"];
    let out = send_tls(&[&args[..], &[&elsewhere.url(), "x"]].concat(), b"");
    assert_eq!(ok(&out), "X\n");
    let named = Server::start(&with_cert(&cert, &key, &["--addr", "127.0.0.1:0"]));
    let out = send_tls(&["--ca", ca.to_str().unwrap(), &named.url(), "y"], b"");
    assert_eq!(ok(&out), "Y\n");
    let (_, _, log) = named.stop("TERM");
    assert!(!log.contains("is for"), "{log}");
}

#[test]
fn a_client_that_does_not_trust_the_server_says_why_and_the_server_goes_on() {
    if !have("openssl", "tls_bad_certificates") {
        return;
    }
    let dir = tempdir();
    let (ca, cert, key) = openssl_certs(dir.path(), "one", false);
    let (other_ca, _, _) = openssl_certs(dir.path(), "two", false);
    let (ca_old, old, old_key) = openssl_certs(dir.path(), "old", true);
    let server = Server::start(&with_cert(&cert, &key, &["--addr", "127.0.0.1:0"]));
    let line = fails(
        &send_tls(
            &["--ca", other_ca.to_str().unwrap(), &server.url(), "x"],
            b"",
        ),
        1,
    );
    assert!(
        line.contains("not signed by a CA this client trusts"),
        "{line}"
    );
    // With the fingerprint met, which a student can check against the server's and pin.
    let printed = listening_line(&with_cert(&cert, &key, &["--addr", "127.0.0.1:0"]));
    let fingerprint = printed.split("sha256 ").nth(1).unwrap();
    assert!(
        line.contains(&format!("--pin {fingerprint}")),
        "{line}\n{printed}"
    );
    let line = fails(
        &send_tls(
            &[
                "--ca",
                ca.to_str().unwrap(),
                "--server-name",
                "nope.example",
                &server.url(),
                "x",
            ],
            b"",
        ),
        1,
    );
    assert!(
        line.contains("localhost") && line.contains("not nope.example"),
        "{line}"
    );
    let line = fails(
        &send_tls(&["--pin", &"AB".repeat(32), &server.url(), "x"], b""),
        1,
    );
    assert!(line.contains("not the pinned"), "{line}");
    let line = fails(&send_tls(&[&server.url(), "x"], b""), 1);
    assert!(line.contains("--pin") || line.contains("CA"), "{line}");
    server.wait_log("does not trust this server");
    let expired = Server::start(&with_cert(&old, &old_key, &["--addr", "127.0.0.1:0"]));
    let warned = expired.wait_log("WARN");
    assert!(
        warned.contains("certificate of --cert expired on 20"),
        "{warned}"
    );
    let line = fails(
        &send_tls(
            &["--ca", ca_old.to_str().unwrap(), &expired.url(), "x"],
            b"",
        ),
        1,
    );
    assert!(line.contains("certificate has expired"), "{line}");
    expired.wait_log("alert certificate_expired");
    // Still serving.
    let out = send_tls(&["--insecure", &server.url(), "after"], b"");
    assert_eq!(ok(&out), "AFTER\n");
}

#[test]
fn plaintext_on_a_tls_port_and_tls_on_a_plaintext_port_are_named() {
    let tls = Server::start(&["--tls", "--addr", "127.0.0.1:0"]);
    let mut plain = TcpStream::connect(("127.0.0.1", tls.port())).unwrap();
    plain.write_all(b"hello in the clear\n").unwrap();
    plain
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut got = Vec::new();
    let _ = plain.read_to_end(&mut got);
    assert!(
        !got.windows(5).any(|w| w == b"HELLO"),
        "no cleartext answer"
    );
    tls.wait_log("a plaintext client on a TLS port?");
    // netecho's own clients without --tls hear the alert and say what to add.
    for args in [
        vec!["send", &tls.url(), "hello"],
        vec!["get", &tls.url(), "x.txt"],
    ] {
        let line = fails(&netecho(&args, b""), 1);
        assert!(line.contains("add --tls"), "{args:?}: {line}");
    }
    let line = fails(&netecho(&["send", &tls.url()], b"hello\n"), 1);
    assert!(line.contains("add --tls"), "piped: {line}");
    let plain_server = Server::start(&["--addr", "127.0.0.1:0"]);
    let line = fails(&send_tls(&["--insecure", &plain_server.url(), "x"], b""), 1);
    assert!(line.contains("without TLS"), "{line}");
    // An echo server that does not upper-case (RFC 862) sends the hello back as it was.
    let rfc862 = Server::start(&["--addr", "127.0.0.1:0", "--transform", "echo"]);
    let line = fails(&send_tls(&["--insecure", &rfc862.url(), "x"], b""), 1);
    assert!(line.contains("without TLS"), "{line}");
    // Garbage that looks like a record header, then more garbage.
    let mut junk = TcpStream::connect(("127.0.0.1", tls.port())).unwrap();
    junk.write_all(&[0x16, 0x03, 0x01, 0x00, 0x05, 0xff, 0xff, 0xff, 0xff, 0xff])
        .unwrap();
    let _ = junk.read_to_end(&mut got);
    tls.wait_log_count("error:", 2);
    let out = send_tls(&["--insecure", &tls.url(), "still here"], b"");
    assert_eq!(ok(&out), "STILL HERE\n");
}

#[test]
fn a_handshake_that_never_ends_is_closed_at_its_deadline_while_others_are_served() {
    for model in ["event", "threads", "fork"] {
        let server = Server::start(&["--tls", "--model", model, "--addr", "127.0.0.1:0"]);
        let pin = server.pin();
        // Half a ClientHello: a record header promising more than comes.
        let mut stalled = TcpStream::connect(("127.0.0.1", server.port())).unwrap();
        stalled
            .write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01])
            .unwrap();
        let silent = TcpStream::connect(("127.0.0.1", server.port())).unwrap();
        let out = send_tls(&["--pin", &pin, &server.url(), "meanwhile"], b"");
        assert_eq!(ok(&out), "MEANWHILE\n", "{model}");
        let log = server.wait_log_count("TLS handshake not finished within", 2);
        assert!(
            log.contains("TLS handshake not finished within 10s"),
            "{model}: {log}"
        );
        drop((stalled, silent));
    }
}

#[test]
fn get_put_and_exec_over_tls() {
    let dir = tempdir();
    let files = dir.path().join("files");
    std::fs::create_dir(&files).unwrap();
    std::fs::write(files.join("a.txt"), b"contents\n").unwrap();
    let server = Server::start(&[
        "--tls",
        "--files",
        files.to_str().unwrap(),
        "--upload",
        "--addr",
        "127.0.0.1:0",
    ]);
    let pin = server.pin();
    let out_path = dir.path().join("got.txt");
    ok(&netecho(
        &[
            "get",
            "--tls",
            "--pin",
            &pin,
            &server.url(),
            "a.txt",
            "-o",
            out_path.to_str().unwrap(),
        ],
        b"",
    ));
    assert_eq!(std::fs::read(&out_path).unwrap(), b"contents\n");
    let local = dir.path().join("up.bin");
    let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(&local, &data).unwrap();
    ok(&netecho(
        &[
            "put",
            "--tls",
            "--pin",
            &pin,
            &server.url(),
            local.to_str().unwrap(),
            "up.bin",
        ],
        b"",
    ));
    assert_eq!(std::fs::read(files.join("up.bin")).unwrap(), data);
    let exec = Server::start(&[
        "--tls",
        "--addr",
        "127.0.0.1:0",
        "--exec",
        "tr",
        "a-z",
        "A-Z",
    ]);
    let pin = exec.pin();
    let out = netecho(&["exec", "--tls", "--pin", &pin, &exec.url()], b"run me\n");
    assert_eq!(ok(&out), "RUN ME\n");
}

#[test]
fn tls_flags_that_do_not_go_together_are_refused_in_one_line() {
    let cases: [(&[&str], &str); 8] = [
        // serve --lab --tls now protects the lab's control connection; lab --tls needs the
        // lab server it speaks to.
        (&["lab", "--tls", "--insecure"], "lab --tls goes with HOST"),
        (&["serve", "--tls", "--model", "uring"], "--model event"),
        (&["bench", "--tls", "-n", "1"], "give its ADDR"),
        (
            &["send", "--proto", "udp", "--tls", "127.0.0.1:9", "x"],
            "use --proto quic",
        ),
        (
            &["send", "--pin", &"AB".repeat(32), "127.0.0.1:9", "x"],
            "goes with --tls",
        ),
        (
            &[
                "send",
                "--tls",
                "--pin",
                &"AB".repeat(32),
                "--insecure",
                "127.0.0.1:9",
                "x",
            ],
            "cannot be used with",
        ),
        (
            &["serve", "--tls", "--pin", &"AB".repeat(32)],
            "is for clients",
        ),
        (&["serve", "--tls", "--cert", "/nonexistent.pem"], "--key"),
    ];
    for (args, want) in cases {
        let out = netecho(args, b"");
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(want), "{args:?}: {err}");
    }
}

/// A --key, --cert or --ca that is a device or a directory is refused in one line before a
/// byte is read (/dev/zero read to its end would fill memory); a FIFO with no writer is read
/// as empty, never waited for; a key other users may read is said at start.
#[test]
fn pem_paths_that_are_not_files_are_refused_and_a_shared_key_is_named() {
    if !have(
        "openssl",
        "pem_paths_that_are_not_files_are_refused_and_a_shared_key_is_named",
    ) {
        return;
    }
    let dir = tempdir();
    let (_, cert, key) = openssl_certs(dir.path(), "pem", false);
    let fifo = dir.path().join("fifo.pem");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
    let (cert, key, fifo) = (
        cert.to_str().unwrap(),
        key.to_str().unwrap(),
        fifo.to_str().unwrap(),
    );
    let addr = ["--addr", "127.0.0.1:0"];
    let cases: [(Vec<&str>, &str); 5] = [
        (
            [
                &["serve"],
                &with_cert(Path::new(cert), Path::new("/dev/zero"), &addr)[..],
            ]
            .concat(),
            "/dev/zero is a device, not a PEM file; give the file that holds the key",
        ),
        (
            [
                &["serve"],
                &with_cert(Path::new("/dev/zero"), Path::new(key), &addr)[..],
            ]
            .concat(),
            "is a device, not a PEM file; give the file that holds the certificate",
        ),
        (
            [
                &["serve"],
                &with_cert(Path::new(cert), Path::new(fifo), &addr)[..],
            ]
            .concat(),
            "no private key read from it",
        ),
        (
            [
                &["serve"],
                &with_cert(Path::new(cert), Path::new("/tmp"), &addr)[..],
            ]
            .concat(),
            "/tmp is a directory, not a PEM file",
        ),
        (
            vec!["send", "--tls", "--ca", "/dev/zero", "127.0.0.1:9", "x"],
            "/dev/zero is a device, not a PEM file",
        ),
    ];
    for (args, want) in cases {
        let err = fails(&netecho(&args, b""), 2);
        assert!(err.contains(want), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
    }
    // A key kept private is loaded without a word; one readable by others is named.
    let private = Server::start(&with_cert(Path::new(cert), Path::new(key), &addr));
    let (_, _, log) = private.stop("TERM");
    assert!(!log.contains("chmod 600"), "{log}");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let shared = Server::start(&with_cert(Path::new(cert), Path::new(key), &addr));
    shared.wait_log(&format!("{key} may be read by other users (mode 0644)"));
}

/// Starts `netecho relay ARGS`; its listening line's address and fingerprint.
fn start_relay(args: &[&str]) -> (Peer, String, Option<String>) {
    use std::io::BufRead;
    let mut child = Command::new(common::bin())
        .arg("relay")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    let _ = std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut line);
    let words: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(words.first(), Some(&"listening"), "{line}");
    let addr = format!("{}://{}", words[1], words[2]);
    (Peer(child), addr, words.get(5).map(|w| w.to_string()))
}

#[test]
fn relay_speaks_tls_on_either_end_or_both() {
    let plain = Server::start(&["--addr", "127.0.0.1:0"]);
    let tls = Server::start(&["--tls", "--addr", "127.0.0.1:0"]);
    let pin = tls.pin();
    // TLS on FROM only: a TLS client, a plaintext server.
    let (_r1, addr, fp) = start_relay(&["--tls-from", "127.0.0.1:0", &plain.url()]);
    let fp = fp.expect("a fingerprint beside listening");
    let out = send_tls(&["--pin", &fp, &addr, "into the relay"], b"");
    assert_eq!(ok(&out), "INTO THE RELAY\n");
    // TLS on TO only: a plaintext client, a TLS server.
    let (_r2, addr, fp) = start_relay(&["--tls-to", "--pin", &pin, "127.0.0.1:0", &tls.url()]);
    assert_eq!(fp, None);
    let out = netecho(&["send", &addr, "out of the relay"], b"");
    assert_eq!(ok(&out), "OUT OF THE RELAY\n");
    // Both, over a Unix socket on FROM.
    let dir = tempdir();
    let from = format!("unix://{}/relay.sock", dir.path().display());
    let (_r3, addr, fp) =
        start_relay(&["--tls-from", "--tls-to", "--pin", &pin, &from, &tls.url()]);
    let out = send_tls(&["--pin", &fp.unwrap(), &addr, "both ends"], b"");
    assert_eq!(ok(&out), "BOTH ENDS\n");
    let out = netecho(&["relay", "--tls", "127.0.0.1:0", &plain.url()], b"");
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn bench_over_tls_checks_every_reply_while_the_socket_pushes_back() {
    for model in ["event", "threads", "fork"] {
        let server = Server::start(&["--tls", "--model", model, "--addr", "127.0.0.1:0"]);
        let pin = server.pin();
        // Large messages, many in flight, a small receive buffer: sends that would block.
        for (framing, size) in [("none", "256k"), ("length", "100k")] {
            let out = netecho(
                &[
                    "bench",
                    "--tls",
                    "--pin",
                    &pin,
                    "--framing",
                    framing,
                    "-s",
                    size,
                    "-w",
                    "8",
                    "-P",
                    "2",
                    "-n",
                    "40",
                    // A reply held up past 1 s (the default) on a loaded machine would fail
                    // the run as unanswered.
                    "--timeout",
                    "20s",
                    "--rcvbuf",
                    "16k",
                    &server.url(),
                ],
                b"",
            );
            ok(&out);
        }
    }
}

#[test]
fn explain_narrates_the_handshake_records() {
    let server = Server::start(&["--tls", "--addr", "127.0.0.1:0"]);
    let pin = server.pin();
    for (version, cleartext) in [("1.3", "encrypted"), ("1.2", "Certificate")] {
        let server = Server::start(&["--tls", "--tls-version", version, "--addr", "127.0.0.1:0"]);
        let pin = server.pin();
        let out = send_tls(
            &[
                "--explain",
                "--tls-version",
                version,
                "--pin",
                &pin,
                &server.url(),
                "x",
            ],
            b"",
        );
        assert_eq!(ok(&out), "X\n");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("tls sending record: handshake (22)"), "{err}");
        assert!(err.contains("ClientHello"), "{err}");
        assert!(err.contains("received record: handshake (22)"), "{err}");
        assert!(err.contains("ServerHello"), "{err}");
        assert!(err.contains(cleartext), "TLS {version}: {err}");
        if version == "1.2" {
            assert!(
                err.contains("change_cipher_spec (20), TLS 1.2 on the record, 1 byte\n"),
                "{err}"
            );
        }
        // A count of one is singular, as ChangeCipherSpec's one byte.
        assert!(!err.contains(" 1 bytes"), "{err}");
    }
    let out = netecho(
        &["-v", "send", "--tls", "--pin", &pin, &server.url(), "x"],
        b"",
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("TLS 1.3, TLS13_"), "{err}");
    assert!(err.contains("ALPN netecho"), "{err}");
    assert!(err.contains("peer certificate CN=netecho"), "{err}");
}

/// Whether `help` lists `flag` (a line of its options starts with it).
fn lists(help: &str, flag: &str) -> bool {
    help.lines()
        .any(|l| l.split_whitespace().next() == Some(flag))
}

#[test]
fn each_command_help_lists_only_its_own_side_of_the_tls_flags() {
    let trust = ["--ca", "--pin", "--insecure", "--server-name"];
    let presents = ["--cert", "--key"];
    for command in ["send", "bench", "get", "put", "exec"] {
        let help = ok(&netecho(&[command, "--help"], b""));
        for flag in ["--tls", "--tls-version"].iter().chain(&trust) {
            assert!(lists(&help, flag), "{command}: {flag} missing:\n{help}");
        }
        for flag in presents {
            assert!(!lists(&help, flag), "{command}: {flag} listed:\n{help}");
        }
    }
    let help = ok(&netecho(&["serve", "--help"], b""));
    for flag in ["--tls", "--tls-version"].iter().chain(&presents) {
        assert!(lists(&help, flag), "serve: {flag} missing:\n{help}");
    }
    for flag in trust {
        assert!(!lists(&help, flag), "serve: {flag} listed:\n{help}");
    }
    // The relay presents a certificate on FROM and checks one on TO: it takes both.
    let help = ok(&netecho(&["relay", "--help"], b""));
    for flag in trust.iter().chain(&presents) {
        assert!(lists(&help, flag), "relay: {flag} missing:\n{help}");
    }
}

#[test]
fn the_other_sides_tls_flags_given_anyway_are_refused_with_the_reason() {
    let pin = "AB".repeat(32);
    let addr = "127.0.0.1:9";
    let client: [&[&str]; 8] = [
        &["send", "--tls", "--cert", "c.pem", addr, "x"],
        &["send", "--cert", "c.pem", "--key", "k.pem", addr, "x"],
        &["bench", "--tls", "--cert", "c.pem", addr],
        &["bench", "--cert", "c.pem", "-n", "1"],
        &["get", "--tls", "--cert", "c.pem", addr, "f"],
        &["put", "--tls", "--cert", "c.pem", addr, "Cargo.toml"],
        &["exec", "--tls", "--cert", "c.pem", addr],
        &["send", "--proto", "quic", "--key", "k.pem", addr, "x"],
    ];
    for args in client {
        // exec's own failures, usage errors too, are 255: its status is the program's.
        let code = if args[0] == "exec" { 255 } else { 2 };
        let line = fails(&netecho(args, b""), code);
        let flag = args.iter().find(|a| ["--cert", "--key"].contains(a));
        let want = format!(
            "error: {} is for serve: a client checks the server's certificate (--ca, --pin)",
            flag.unwrap()
        );
        assert_eq!(line, want, "{args:?}");
    }
    // A client's own TLS flags without --tls are refused too, with or without ADDR (bench
    // without ADDR starts its own plain servers, which no pin or CA can check).
    for args in [
        &["bench", "--pin", &pin, "-n", "1"][..],
        &["bench", "--insecure", "-n", "1"],
        &["bench", "--pin", &pin, "-n", "1", addr],
    ] {
        let line = fails(&netecho(args, b""), 2);
        assert!(line.contains("--tls"), "{args:?}: {line}");
    }
    for flag in [&["--pin", &pin][..], &["--ca", "ca.pem"], &["--insecure"]] {
        let args = [&["serve", "--tls"], flag].concat();
        let line = fails(&netecho(&args, b""), 2);
        let want = format!(
            "error: {} is for clients: a server presents its certificate (--cert, --key)",
            flag[0]
        );
        assert_eq!(line, want, "{args:?}");
    }
}

/// Records back to back in both directions, 64 KiB messages with several in flight: a read
/// that finishes one record and all of the next holds more plaintext than rustls takes at
/// once, and the rest of the read waits for it (lost, every later record would fail its
/// MAC). Every message comes back whole, framed or not, under each model that takes it.
#[test]
fn large_messages_several_in_flight_come_back_whole() {
    for (model, framing) in [
        ("event", "length"),
        ("threads", "length"),
        ("event", "none"),
    ] {
        let server = Server::start(&[
            "--proto",
            "tcp",
            "--addr",
            "127.0.0.1:0",
            "--tls",
            "--model",
            model,
            "--framing",
            framing,
        ]);
        let args = [
            "bench",
            "--tls",
            "--insecure",
            "--framing",
            framing,
            "--size",
            "65536",
            "--window",
            "4",
            "--clients",
            "2",
            "-n",
            "200",
            // A reply held up past 1 s (the default) on a loaded machine would fail the run
            // as unanswered.
            "--timeout",
            "20s",
            &server.addr,
        ];
        let out = netecho(&args, b"");
        ok(&out);
        let log = server.stderr();
        assert!(!log.contains("error"), "{model} {framing}: {log}");
    }
}

/// A TLS server whose certificate chain is over the size rustls takes (300 copies of the CA,
/// 170 KB) is said as that, not as a plaintext server; a server that answers in plaintext
/// still is.
#[test]
fn a_too_large_handshake_message_is_named_and_plaintext_still_is() {
    if !have("openssl", "openssl_s_server_long_chain") || !have("socat", "socat_plaintext") {
        return;
    }
    let dir = tempdir();
    let (ca, cert, key) = openssl_certs(dir.path(), "chain", false);
    let chain = dir.path().join("chain.pem");
    let one = std::fs::read(&ca).unwrap();
    std::fs::write(&chain, one.repeat(300)).unwrap();
    let port = free_port();
    let _s = start_peer(
        Command::new("openssl")
            .args(["s_server", "-quiet", "-alpn", "netecho", "-accept"])
            .arg(port.to_string())
            .arg("-cert")
            .arg(&cert)
            .arg("-key")
            .arg(&key)
            .arg("-cert_chain")
            .arg(&chain),
        port,
    );
    let out = send_tls(&["--insecure", &format!("127.0.0.1:{port}"), "hi"], b"");
    let line = fails(&out, 1);
    assert!(line.contains("handshake message was too large"), "{line}");
    assert!(!line.contains("plaintext"), "{line}");
    let (_plain, port) = common::socat_listener(&[], "SYSTEM:echo hello in the clear; sleep 5");
    let out = send_tls(&["--insecure", &format!("127.0.0.1:{port}"), "hi"], b"");
    let line = fails(&out, 1);
    assert!(line.contains("a plaintext server?"), "{line}");
}

/// A TLS client's handshake that runs out of time: a server that sent nothing back is said
/// as silence (stopped, busy, or dropped on the way), never as a question of its protocol;
/// one that sent bytes that make no handshake (a record's header begun, never finished) is
/// asked whether it speaks TLS. (Plaintext is named at once: a plaintext server?)
#[test]
fn a_handshake_no_one_answers_is_silence_and_stray_bytes_ask_whether_it_speaks_tls() {
    let lines: Vec<String> = std::thread::scope(|s| {
        let runs: Vec<_> = [&b""[..], &[0x16, 0x03, 0x03]]
            .into_iter()
            .map(|greeting| {
                let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
                let at = listener.local_addr().unwrap().to_string();
                // The greeting, then the connection held until the client gives up.
                s.spawn(move || {
                    let (mut conn, _) = listener.accept().unwrap();
                    conn.write_all(greeting).unwrap();
                    conn.set_read_timeout(Some(common::STEP * 3)).unwrap();
                    let _ = conn.read_to_end(&mut Vec::new());
                });
                s.spawn(move || fails(&send_tls(&["--insecure", &at, "hi"], b""), 1))
            })
            .collect();
        runs.into_iter().map(|run| run.join().unwrap()).collect()
    });
    let (silent, stray) = (&lines[0], &lines[1]);
    assert!(silent.contains("no TLS handshake within 10s"), "{silent}");
    assert!(silent.contains("the server sent nothing back"), "{silent}");
    assert!(!silent.contains("speaking TLS"), "{silent}");
    assert!(stray.contains("is the server speaking TLS?"), "{stray}");
    assert!(!stray.contains("sent nothing back"), "{stray}");
}

/// A TLS client that sends its last data and its close_notify in one write, as socat often
/// does, then reads until the server closes (or 20 s pass): prints the plaintext it got and
/// "closed" or "open".
const DATA_AND_CLOSE_IN_ONE_WRITE: &str = r#"
import socket, ssl, sys
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
raw = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
raw.settimeout(20)
inb, outb = ssl.MemoryBIO(), ssl.MemoryBIO()
tls = ctx.wrap_bio(inb, outb)
while True:
    try:
        tls.do_handshake(); break
    except ssl.SSLWantReadError:
        raw.sendall(outb.read()); got = raw.recv(65536)
        if not got: sys.exit("closed in the handshake")
        inb.write(got)
raw.sendall(outb.read())
tls.write(b"last words\n")
try: tls.unwrap()
except ssl.SSLWantReadError: pass
raw.sendall(outb.read())
state = "open"
try:
    while True:
        got = raw.recv(65536)
        if not got: state = "closed"; break
        inb.write(got)
except socket.timeout: pass
text = b""
try:
    while True: text += tls.read(65536)
except (ssl.SSLError, ssl.SSLZeroReturnError): pass
print(text.decode(errors="replace").strip(), state)
"#;

#[test]
fn a_close_notify_in_the_same_read_as_the_last_data_closes_the_connection_in_each_tls_model() {
    if !have("python3", "python3_tls_close") {
        return;
    }
    for model in ["event", "threads", "fork", "iterative"] {
        let server = Server::start(&["--tls", "--addr", "127.0.0.1:0", "--model", model]);
        let out = Command::new("python3")
            .args([
                "-c",
                DATA_AND_CLOSE_IN_ONE_WRITE,
                &server.port().to_string(),
            ])
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            "LAST WORDS closed",
            "--model {model}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
