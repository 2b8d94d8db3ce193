//! Every service under every server model, over every socket kind, through the real binary:
//! echo, `--files` (get and put) and `--exec`, each under iterative, threads, event and fork,
//! over tcp, unix, unix-seqpacket, udp and unix-dgram. Any model drives any service.

mod common;

use std::fs;
use std::path::Path;

use common::{Plain, Server, message, netecho, summary, tempdir};

const MODELS: [&str; 5] = ["iterative", "threads", "event", "fork", "uring"];
const PROTOS: [&str; 5] = ["tcp", "unix", "unix-seqpacket", "udp", "unix-dgram"];
/// A few KiB per transfer: enough for more than one read, small enough for a datagram.
const SIZE: usize = 3000;

/// `netecho serve --model MODEL --proto PROTO` with `extra`, its Unix socket (if any) in
/// `dir`.
fn start(model: &str, proto: &str, dir: &Path, extra: &[&str]) -> Server {
    let sock = dir.join("s.sock");
    let addr = match proto {
        "tcp" | "udp" => "127.0.0.1:0".to_string(),
        _ => sock.to_str().expect("UTF-8 temp path").to_string(),
    };
    let mut args = vec!["--model", model, "--proto", proto, "--addr", &addr];
    args.extend_from_slice(extra);
    Server::start(&args)
}

/// Every model and protocol, named the way a failure message names them.
fn cases() -> impl Iterator<Item = (&'static str, &'static str, String)> {
    MODELS.into_iter().flat_map(|model| {
        PROTOS
            .into_iter()
            .map(move |proto| (model, proto, format!("--model {model} over {proto}")))
    })
}

/// Asserts a client run succeeded; shows the case, its output and the server's log if not.
fn succeeded(out: &std::process::Output, case: &str, server: &Server) {
    assert!(
        out.status.success(),
        "{case}: exit {:?}\nstdout: {}\nstderr: {}\nserver log:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        server.stderr()
    );
}

#[test]
fn echo_answers_under_every_model_over_every_socket_kind() {
    for (model, proto, case) in cases() {
        let dir = tempdir();
        let server = start(model, proto, dir.path(), &[]);
        let client = Plain::connect(proto, &server.addr);
        let msg = message(1, 1, SIZE);
        client.send(&msg);
        let got = client.reply(msg.len());
        assert!(
            got == msg.to_ascii_uppercase(),
            "{case}: echo replied {} bytes, not the {SIZE} upper-cased",
            got.len()
        );
        drop(client);
        let (status, out, log) = server.stop("TERM");
        assert!(status.success(), "{case}: server exit {status:?}\n{log}");
        let (signal, _, _, bytes_in, bytes_out) = summary(&out);
        assert_eq!(signal, "SIGTERM", "{case}");
        assert_eq!(
            (bytes_in, bytes_out),
            (SIZE as u64, SIZE as u64),
            "{case}: {out}"
        );
    }
}

/// Deterministic bytes of every value.
fn data(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

#[test]
fn files_get_and_put_under_every_model_over_every_socket_kind() {
    let content = data(SIZE, 3);
    for (model, proto, case) in cases() {
        let (root, local, dir) = (tempdir(), tempdir(), tempdir());
        fs::write(root.path().join("a.bin"), &content).unwrap();
        let root_arg = root.path().to_str().unwrap();
        let server = start(model, proto, dir.path(), &["--files", root_arg, "--upload"]);
        let got = local.path().join("got.bin");
        let got_arg = got.to_str().unwrap();
        let get = [
            "get",
            "--proto",
            proto,
            &server.addr,
            "a.bin",
            "-o",
            got_arg,
        ];
        succeeded(&netecho(&get, b""), &format!("get, {case}"), &server);
        assert!(
            fs::read(&got).unwrap() == content,
            "get, {case}: the file differs"
        );
        let put = ["put", "--proto", proto, &server.addr, got_arg, "up.bin"];
        succeeded(&netecho(&put, b""), &format!("put, {case}"), &server);
        assert!(
            fs::read(root.path().join("up.bin")).unwrap() == content,
            "put, {case}: the stored file differs"
        );
        let (status, _, log) = server.stop("TERM");
        assert!(status.success(), "{case}: server exit {status:?}\n{log}");
    }
}

#[test]
fn exec_runs_the_program_under_every_model_over_every_socket_kind() {
    let input = message(2, 2, SIZE);
    for (model, proto, case) in cases() {
        let dir = tempdir();
        let server = start(model, proto, dir.path(), &["--exec", "tr", "a-z", "A-Z"]);
        let out = netecho(&["exec", &server.url()], &input);
        succeeded(&out, &case, &server);
        assert!(
            out.stdout == input.to_ascii_uppercase(),
            "{case}: the program's output came back as {} bytes, not {SIZE} upper-cased",
            out.stdout.len()
        );
        server.wait_log("exit status 0");
        let (status, _, log) = server.stop("TERM");
        assert!(status.success(), "{case}: server exit {status:?}\n{log}");
    }
}

#[test]
fn an_iterative_server_busy_with_a_program_still_stops_on_sigterm() {
    let dir = tempdir();
    // `cat` runs until its client half-closes, which this client never does.
    let server = start("iterative", "unix", dir.path(), &["--exec", "cat"]);
    let client = Plain::connect("unix", &server.addr);
    client.send(b"still typing");
    // The program's first stdout frame (4-byte length, tag 1): it is running. Empty
    // frames are heartbeats.
    let mut sock = &client.sock;
    for frame in 0.. {
        assert!(frame < 100, "no output from the program");
        let mut head = [0u8; 5];
        std::io::Read::read_exact(&mut sock, &mut head).expect("a frame from the server");
        let len = u32::from_be_bytes(head[..4].try_into().unwrap()) as usize;
        let mut body = vec![0u8; len - 1];
        std::io::Read::read_exact(&mut sock, &mut body).expect("the frame's payload");
        if !body.is_empty() {
            assert_eq!((head[4], &body[..]), (1, &b"still typing"[..]));
            break;
        }
    }
    let (status, out, log) = server.stop("TERM");
    assert!(status.success(), "server exit {status:?}\n{log}");
    assert_eq!(summary(&out).0, "SIGTERM", "{out}");
}
