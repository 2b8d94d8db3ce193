//! `netecho send` against servers that are not netecho: socat and ncat running `tr a-z A-Z`,
//! a filter that buffers its output and answers only once its input ends, `cat`, and servers
//! whose answers are no echo (a banner, a short word). send shuts down its writing side at
//! the end of its input, as nc does, and prints what comes back.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::thread;
use std::time::Duration;

use common::{Peer, free_port, have, netecho, ok, socat_listener, tempdir};

/// Starts `cmd` and waits (at most 20 s: a loaded machine starts programs slowly) until
/// `ready` says it listens.
fn start(cmd: &mut Command, ready: impl Fn() -> bool) -> Peer {
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the peer");
    let peer = Peer(child);
    for _ in 0..200 {
        if ready() {
            return peer;
        }
        thread::sleep(Duration::from_millis(100));
    }
    panic!("the peer did not start listening within 20 s");
}

fn tcp_ready(port: u16) -> impl Fn() -> bool {
    move || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
}

fn path_ready(path: &Path) -> impl Fn() -> bool + '_ {
    move || path.exists()
}

/// `printf 'one\ntwo\n' | netecho send ARGS`: both lines come back upper-cased.
fn lines_come_back(args: &[&str]) {
    let mut all = vec!["send"];
    all.extend_from_slice(args);
    assert_eq!(
        ok(&netecho(&all, b"one\ntwo\n")),
        "ONE\nTWO\n",
        "send {args:?}"
    );
}

/// `netecho send --framing line ARGS` with its input a pipe that gives `one`, then `two`
/// once `ONE` came back, and ends once `TWO` came: both lines come back upper-cased. ncat
/// closes the connection at send's shutdown, and under load it may start its program late,
/// later than the moment send waits at the end of its input; here nothing is owed by then.
fn lines_come_back_one_at_a_time(args: &[&str]) {
    let mut send = Command::new(common::bin())
        .args(["send", "--framing", "line", "--timeout", "20s"])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = send.stdin.take().unwrap();
    let replies = std::io::BufReader::new(send.stdout.take().unwrap());
    let mut replies = std::io::BufRead::lines(replies);
    for (line, reply) in [("one", "ONE"), ("two", "TWO")] {
        writeln!(input, "{line}").unwrap();
        let got = replies.next().expect("a reply line").unwrap();
        assert_eq!(got, reply, "send {args:?}");
    }
    drop(input);
    assert!(
        replies.next().is_none(),
        "send {args:?}: more than the two replies"
    );
    let status = common::wait_exit(&mut send, "send, after its input ended,");
    assert!(status.success(), "send {args:?}: {status:?}");
}

#[test]
fn socat_exec_filter_answers_send_over_tcp_unix_and_seqpacket() {
    let test = "socat_exec_filter_answers_send_over_tcp_unix_and_seqpacket";
    if !have("socat", test) {
        return;
    }
    let (_tcp, port) = socat_listener(&[], "EXEC:tr a-z A-Z");
    lines_come_back(&["127.0.0.1", &port]);
    lines_come_back(&["--framing", "line", "127.0.0.1", &port]);

    let dir = tempdir();
    let stream = dir.path().join("stream.sock");
    let listen = format!("UNIX-LISTEN:{},fork", stream.display());
    let _unix = start(
        Command::new("socat").args([listen.as_str(), "EXEC:tr a-z A-Z"]),
        path_ready(&stream),
    );
    lines_come_back(&[stream.to_str().unwrap()]);

    // type=5 is SOCK_SEQPACKET: socat hands tr the messages and sends its output back as one
    // message once tr ends, so the two lines come back as one reply.
    let seq = dir.path().join("seq.sock");
    let listen = format!("UNIX-LISTEN:{},type=5,fork", seq.display());
    let _seq = start(
        Command::new("socat").args([listen.as_str(), "EXEC:tr a-z A-Z"]),
        path_ready(&seq),
    );
    let out = netecho(
        &["send", "--proto", "unix-seqpacket", seq.to_str().unwrap()],
        b"one\ntwo\n",
    );
    assert_eq!(ok(&out), "ONETWO\n");
}

/// ncat closes the whole connection when the client shuts down writing, before a
/// block-buffered program has answered (`nc -N` gets nothing back either); so ncat runs tr
/// line-buffered, send sends lines (--framing line: each message ends with \n), and hears
/// each line's answer before it shuts down.
#[test]
fn ncat_exec_answers_send_over_tcp_and_unix() {
    let test = "ncat_exec_answers_send_over_tcp_and_unix";
    if !have("ncat", test) {
        return;
    }
    let port = free_port();
    let _tcp = start(
        Command::new("ncat").args([
            "-l",
            "-k",
            "127.0.0.1",
            &port.to_string(),
            "--exec",
            "/usr/bin/stdbuf -oL /usr/bin/tr a-z A-Z",
        ]),
        tcp_ready(port),
    );
    lines_come_back_one_at_a_time(&["127.0.0.1", &port.to_string()]);

    let dir = tempdir();
    let path = dir.path().join("ncat.sock");
    let _unix = start(
        Command::new("ncat").args([
            "-l",
            "-k",
            "-U",
            path.to_str().unwrap(),
            "--exec",
            "/usr/bin/stdbuf -oL /usr/bin/tr a-z A-Z",
        ]),
        path_ready(&path),
    );
    lines_come_back_one_at_a_time(&[path.to_str().unwrap()]);
}

#[test]
fn a_framed_exec_reply_names_the_command_to_use() {
    let server = common::Server::start(&["--addr", "127.0.0.1:0", "--exec", "cat"]);
    let out = netecho(&["send", &server.url(), "hello"], b"");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("`netecho exec ADDR`"), "{stderr}");
}

#[test]
fn a_banner_longer_than_the_message_is_printed_whole() {
    let test = "a_banner_longer_than_the_message_is_printed_whole";
    if !have("socat", test) {
        return;
    }
    let dir = tempdir();
    let banner = dir.path().join("banner.txt");
    std::fs::write(&banner, "220 hello world banner\r\n").unwrap();
    let (_server, port) = socat_listener(
        &[],
        &format!("SYSTEM:cat {}; cat >/dev/null", banner.display()),
    );
    // A message on the command line: the whole banner, then the newline after a reply.
    let out = netecho(&["send", "127.0.0.1", &port, "hi"], b"");
    assert_eq!(ok(&out), "220 hello world banner\r\n\n");
    // From a pipe: the banner byte for byte, nothing cut or added.
    let out = netecho(&["send", "127.0.0.1", &port], b"hi\nthere\n");
    assert_eq!(ok(&out), "220 hello world banner\r\n");
}

#[test]
fn a_reply_shorter_than_the_message_is_printed_when_the_server_closes() {
    let test = "a_reply_shorter_than_the_message_is_printed_when_the_server_closes";
    if !have("socat", test) {
        return;
    }
    let (_server, port) = socat_listener(&[], "SYSTEM:head -c 5 >/dev/null; echo OK");
    let out = netecho(&["send", "127.0.0.1", &port, "hello world"], b"");
    assert_eq!(ok(&out), "OK\n\n");
}

#[test]
fn any_bytes_from_a_pipe_come_back_from_socat_cat_as_they_were() {
    let test = "any_bytes_from_a_pipe_come_back_from_socat_cat_as_they_were";
    if !have("socat", test) {
        return;
    }
    let data = common::awkward_bytes();
    let (_tcp, port) = socat_listener(&[], "EXEC:cat");
    let dir = tempdir();
    let path = dir.path().join("cat.sock");
    let listen = format!("UNIX-LISTEN:{},fork", path.display());
    let _unix = start(
        Command::new("socat").args([listen.as_str(), "EXEC:cat"]),
        path_ready(&path),
    );
    for (what, args) in [
        ("tcp", vec!["send", "127.0.0.1", &port]),
        ("unix", vec!["send", path.to_str().unwrap()]),
    ] {
        let out = netecho(&args, &data);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{what}: {stderr}");
        common::same_bytes(&out.stdout, &data, what);
    }
}
