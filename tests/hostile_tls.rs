//! A TLS record's plaintext comes only with its last byte, so a peer sending one a byte at a
//! time shows the server no frame begun while every byte resets the idle timer. A record
//! under way counts as a frame begun: it must be whole `--frame-timeout` after its first
//! byte (the idle timeout's worth with `--frame-timeout off`), under every model that takes
//! --tls, framed or not; a client sending whole records slowly stays. The peer is Python's
//! ssl over memory BIOs (tests/peers/tls_trickle.py), which hands over the record bytes to
//! send as slowly as a test likes; a QUIC peer (aioquic) trickles a message's stream, or
//! sends half a message (or half a frame) and no more of it. A file server gives a record
//! its idle timeout.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::{Server, ok};

/// The deadlines the servers here run with: each byte of a trickle comes well within the
/// idle timeout (16 times as often, so a loaded machine's stalls of the peer do not look
/// like silence), so only the record's deadline can end it.
const FRAME: &str = "1s";
const IDLE: &str = "4s";
/// A byte this often (seconds): a record of the shortest text here (26 bytes before its
/// last) takes longer to trickle than the idle timeout.
const EVERY: &str = "0.25";
/// How long a trickling client waits to be closed before it says it is still open.
const BOUND: &str = "12";

/// A TLS server of `model` with `extra` (its framing and deadlines).
fn serve(model: &str, extra: &[&str]) -> Server {
    let mut args = vec!["--proto", "tcp", "--addr", "127.0.0.1:0", "--tls"];
    args.extend(["--model", model]);
    args.extend_from_slice(extra);
    Server::start(&args)
}

/// A TLS server of `model` framing lines, with the frame deadline and the idle timeout.
fn line_server(model: &str) -> Server {
    serve(
        model,
        &[
            "--framing",
            "line",
            "--frame-timeout",
            FRAME,
            "--idle-timeout",
            IDLE,
        ],
    )
}

fn script(name: &str) -> String {
    format!("{}/tests/peers/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// A Python peer's whole dialogue on a loaded machine (its start, a handshake with a debug
/// build, seconds of trickling, each of its own waits bounded shorter): past this it hung.
const PEER_RUN: Duration = Duration::from_secs(90);

/// Runs the Python peer `cmd` to its end (within [`PEER_RUN`]): what it printed.
fn peer_said(cmd: &mut Command) -> String {
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start python3");
    ok(&common::output_within(child, &format!("{cmd:?}"), PEER_RUN))
}

/// Runs the TLS peer with `what` and `args` against `server`: its one line of output.
fn peer(server: &Server, what: &str, args: &[&str]) -> String {
    let port = server.port().to_string();
    let mut cmd = Command::new("python3");
    cmd.arg(script("tls_trickle.py"))
        .args([what, "127.0.0.1", &port])
        .args(args);
    peer_said(&mut cmd).trim().to_string()
}

/// After the handshake, `text` as one record a byte every [`EVERY`], never its last byte:
/// the server closes the connection, and says why in one line naming the peer and `flag`.
fn a_trickled_record_is_closed(server: &Server, text: &str, flag: &str) {
    let said = peer(server, "trickle", &[EVERY, BOUND, text]);
    assert!(said.starts_with("closed after"), "{said}");
    let log = server.wait_log("a TLS record was still unfinished");
    let line = log
        .lines()
        .find(|l| l.contains("a TLS record was still unfinished"))
        .expect("the line");
    assert!(line.contains("127.0.0.1:"), "no peer: {line}");
    assert!(line.contains(flag), "{line}");
    assert_eq!(log.matches("still unfinished").count(), 1, "{log}");
}

fn a_trickled_line_is_closed_at_the_frame_deadline(model: &str) {
    let server = line_server(model);
    a_trickled_record_is_closed(&server, "hello\n", "--frame-timeout");
}

#[test]
fn a_trickled_record_is_closed_at_the_frame_deadline_under_event() {
    a_trickled_line_is_closed_at_the_frame_deadline("event");
}

#[test]
fn a_trickled_record_is_closed_at_the_frame_deadline_under_threads() {
    a_trickled_line_is_closed_at_the_frame_deadline("threads");
}

#[test]
fn a_trickled_record_is_closed_at_the_frame_deadline_under_fork() {
    a_trickled_line_is_closed_at_the_frame_deadline("fork");
}

#[test]
fn a_trickled_record_is_closed_at_the_frame_deadline_under_iterative() {
    a_trickled_line_is_closed_at_the_frame_deadline("iterative");
}

/// Without --framing each read is a message, but a record's plaintext is not read until
/// the record is whole: the record still has the frame's deadline.
#[test]
fn a_trickled_record_on_a_bare_stream_is_closed_at_the_frame_deadline() {
    for model in ["event", "threads"] {
        let server = serve(model, &["--frame-timeout", FRAME, "--idle-timeout", IDLE]);
        a_trickled_record_is_closed(&server, "hello", "--frame-timeout");
    }
}

/// With --frame-timeout off, the idle timeout counted from the record's first byte.
#[test]
fn with_the_frame_timeout_off_the_idle_timeout_bounds_a_record() {
    for model in ["event", "threads"] {
        let server = serve(model, &["--frame-timeout", "off", "--idle-timeout", IDLE]);
        a_trickled_record_is_closed(&server, "hello", "--idle-timeout");
    }
}

/// A record begun and then nothing, on a server without --idle-timeout: a blocking read
/// waits no longer than the record's deadline, and an event loop wakes for it.
#[test]
fn a_record_begun_then_silence_is_closed_without_an_idle_timeout() {
    for model in ["threads", "event", "iterative"] {
        let server = serve(model, &["--framing", "line", "--frame-timeout", FRAME]);
        // A byte, then a wait longer than the bound for the next: only the deadline ends it.
        let said = peer(&server, "trickle", &[BOUND, BOUND, "hello\n"]);
        assert!(said.starts_with("closed after"), "{model}: {said}");
        server.wait_log("a TLS record was still unfinished");
    }
}

/// Whole records, a line every half second (well within the idle timeout, past the frame
/// deadline in all): every line is answered and nothing is cut.
fn whole_records_sent_slowly_are_never_cut(model: &str) {
    let server = line_server(model);
    let said = peer(&server, "whole", &["0.5", "4", "slow\n"]);
    assert_eq!(said, "SLOW\nSLOW\nSLOW\nSLOW", "{model}");
    let log = server.stderr();
    assert!(!log.contains("unfinished"), "{model}: {log}");
}

#[test]
fn whole_records_sent_slowly_are_never_cut_under_event_and_iterative() {
    whole_records_sent_slowly_are_never_cut("event");
    whole_records_sent_slowly_are_never_cut("iterative");
}

#[test]
fn whole_records_sent_slowly_are_never_cut_under_threads_and_fork() {
    whole_records_sent_slowly_are_never_cut("threads");
    whole_records_sent_slowly_are_never_cut("fork");
}

/// A bulk client that reads its replies only after a pause past the frame deadline: the
/// server stops reading from it (its replies wait, small buffers both sides), maybe in the
/// middle of a record whose rest waits in the socket. The server was behind, not the
/// client: every byte is echoed and nothing is cut, as over plain TCP. The frame deadline
/// is longer here, so that a peer held up mid-record by a loaded machine (a client truly
/// behind, rightly cut) is not what the test sees; the pause is twice past it.
fn a_client_reading_its_replies_late_is_never_cut(model: &str) {
    let server = serve(
        model,
        &[
            "--frame-timeout",
            "3s",
            "--max-pending",
            "64k",
            "--sndbuf",
            "64k",
            "--rcvbuf",
            "64k",
        ],
    );
    let said = peer(&server, "late", &["6", "2000000"]);
    assert_eq!(said, "echoed 1998848", "{model}: {}", server.stderr());
    let log = server.stderr();
    assert!(!log.contains("unfinished"), "{model}: {log}");
}

#[test]
fn a_client_reading_its_replies_late_is_never_cut_under_event_and_iterative() {
    a_client_reading_its_replies_late_is_never_cut("event");
    a_client_reading_its_replies_late_is_never_cut("iterative");
}

#[test]
fn a_client_reading_its_replies_late_is_never_cut_under_threads_and_fork() {
    a_client_reading_its_replies_late_is_never_cut("threads");
    a_client_reading_its_replies_late_is_never_cut("fork");
}

/// A file server wants each request whole within the idle timeout; a record trickled
/// under it has the idle timeout from its first byte too.
#[test]
fn a_trickled_record_to_a_file_server_is_closed_at_the_idle_timeout() {
    let dir = common::tempdir();
    let files = dir.path().to_str().unwrap();
    let server = Server::start(&[
        "--proto",
        "tcp",
        "--addr",
        "127.0.0.1:0",
        "--tls",
        "--files",
        files,
        "--idle-timeout",
        IDLE,
    ]);
    let said = peer(&server, "trickle", &[EVERY, BOUND, "a request never ended"]);
    assert!(said.starts_with("closed after"), "{said}");
    let log = server.wait_log("a TLS record was still unfinished");
    assert!(log.contains("--idle-timeout"), "{log}");
}

/// A ClientHello a byte at a time: the handshake's own deadline (10 s from the accept)
/// ends it, however often the bytes come.
#[test]
fn a_trickled_handshake_is_closed_at_the_handshake_deadline() {
    for model in ["event", "threads"] {
        let server = line_server(model);
        let said = peer(&server, "hello", &[EVERY, "15"]);
        assert!(said.starts_with("closed after"), "{model}: {said}");
        server.wait_log("TLS handshake not finished within 10s");
    }
}

/// `quic_peer.py WHAT ARGS` (its port given) against a QUIC echo server with the frame
/// deadline and `extra`: what it printed, once the server said what was unfinished and
/// the setting that bounds it.
fn quic_peer(extra: &[&str], what: &str, args: &[&str]) -> String {
    let mut all = vec!["--proto", "quic", "--addr", "127.0.0.1:0"];
    all.extend(["--frame-timeout", FRAME]);
    all.extend_from_slice(extra);
    let server = Server::start(&all);
    let port = server.port().to_string();
    let mut cmd = Command::new("python3");
    cmd.arg(script("quic_peer.py"))
        .args([what, "127.0.0.1", &port])
        .args(args);
    let said = peer_said(&mut cmd);
    let log = server.wait_log("unfinished");
    assert!(log.contains("--frame-timeout"), "{log}");
    said
}

/// QUIC's stream per message: netecho sees a message once its stream ends, so a stream
/// trickled a byte at a time has the frame's deadline from its first byte.
#[test]
fn a_trickled_quic_message_stream_is_closed_at_the_frame_deadline() {
    let test = "a_trickled_quic_message_stream_is_closed_at_the_frame_deadline";
    if !common::have_aioquic(test) {
        return;
    }
    let said = quic_peer(&[], "trickle", &[EVERY, BOUND]);
    assert!(said.starts_with("closed after"), "{said}");
}

/// A stream per message: half a message past the frame deadline is that stream's end alone
/// (stopped and reset); the connection's streams before and after it are served.
#[test]
fn a_half_quic_message_is_reset_at_the_frame_deadline_and_its_connection_serves_on() {
    if !common::have_aioquic("a_half_quic_message_is_reset_at_the_frame_deadline") {
        return;
    }
    let said = quic_peer(&[], "half", &["streams"]);
    assert_eq!(said, "BEFORE\nhalf reset\nAFTER\n");
}

/// --framing line: the one stream's bytes reach the frame as they come, and half a line
/// past the frame deadline ends the connection's stream, as over tcp.
#[test]
fn a_half_frame_on_the_one_quic_stream_of_framing_is_dropped_at_the_frame_deadline() {
    if !common::have_aioquic("a_half_frame_on_the_one_quic_stream_of_framing_is_dropped") {
        return;
    }
    let said = quic_peer(&["--framing", "line"], "half", &["line"]);
    assert_eq!(said, "WHOLE\nhalf: stream ended\n");
}

#[test]
fn a_malformed_record_after_the_handshake_is_said_as_such_not_as_a_plaintext_client() {
    let server = serve("event", &[]);
    // An application-data record that declares 65,535 bytes: over TLS's limit.
    let said = peer(&server, "raw", &["10", "170303ffff00"]);
    assert_eq!(said, "closed");
    let log = server.wait_log("malformed TLS record");
    assert!(log.contains("after the handshake"), "{log}");
    assert!(!log.contains("plaintext client"), "{log}");
}

/// `tls_trickle.py ARGS` run as the user `uid` (setpriv), or `None` (said as a skip of
/// `test`) when this process cannot switch users: peers on this host count by their user.
fn trickle_as(uid: u32, test: &str, args: &[&str]) -> Option<Command> {
    if !common::can_switch_user() {
        let needs = "root and setpriv (util-linux) to connect as other users";
        common::skip(test, needs, common::Lacks::Provided);
        return None;
    }
    let mut cmd = Command::new("setpriv");
    cmd.args([&format!("--reuid={uid}"), &format!("--regid={uid}")])
        .args(["--clear-groups", "--"])
        // The system python3: a per-user one (pyenv under /root) is not nobody's to run.
        .args(["/usr/bin/python3", &script("tls_trickle.py")])
        .args(args);
    Some(cmd)
}

/// The line a server logs refusing a handshake from `source` at its cap.
fn at_cap(source: &str) -> String {
    format!("refused: 64 TLS handshakes from {source} are in progress")
}

/// The user `uid` holding 64 begun handshakes with `server` from 127.0.0.1, each opened
/// again as it is closed at its deadline, once its 65th was refused at its cap (the peer,
/// killed when dropped); `None` as [`trickle_as`].
fn holding(server: &Server, uid: u32, test: &str) -> Option<common::Peer> {
    let port = server.port().to_string();
    let hold = ["hold", "127.0.0.1", &port, "127.0.0.1", "65", "120"];
    let (holder, said) = common::started(&mut trickle_as(uid, test, &hold)?);
    assert_eq!(said, "held 65");
    server.wait_log(&at_cap(&format!("uid {uid} on this host")));
    Some(holder)
}

/// `send --tls` to `server` as root: its echo of `text`.
fn root_send(server: &Server, text: &str) -> String {
    let out = common::netecho(&["send", "--tls", "--insecure", &server.addr, text], b"");
    ok(&out)
}

/// Connections that each send most of a large handshake record (16,000 of 16,384 bytes)
/// and then wait hold ~19 KB each in the server: from one source (here a user of this
/// host, nobody, from one address) only 64 are let in at once, the rest refused in a
/// line, so the server's memory does not grow with them, and another source is served.
#[test]
fn half_sent_handshake_records_from_one_source_are_bounded() {
    let test = "half_sent_handshake_records_from_one_source_are_bounded";
    let server = serve("event", &[]);
    let port = server.port().to_string();
    let halves = ["halves", "127.0.0.1", &port, "127.0.0.2", "1500"];
    let Some(mut halves) = trickle_as(65534, test, &halves) else {
        return;
    };
    let before = common::rss_kib(server.pid());
    let (_halves, said) = common::started(&mut halves);
    assert_eq!(said, "sent 1500");
    server.wait_log(&format!(
        "{}, the most one source may have",
        at_cap("uid 65534 on this host")
    ));
    // Accepted after all of them, from root.
    assert_eq!(root_send(&server, "after"), "AFTER\n");
    let grown = common::rss_kib(server.pid()).saturating_sub(before);
    assert!(grown < 12 * 1024, "the server grew by {grown} KiB");
}

/// Four users of this host, each holding 64 begun handshakes (as many as one source may)
/// and opening each again as it is closed at its deadline, hold every place the server has
/// (256): a fifth user's client is still served, in the place of the oldest of one of theirs.
#[test]
fn four_users_holding_every_handshake_place_lock_no_one_out() {
    let test = "four_users_holding_every_handshake_place_lock_no_one_out";
    let server = serve("event", &[]);
    let mut holders = Vec::new();
    for uid in 65531..=65534 {
        let Some(holder) = holding(&server, uid, test) else {
            return;
        };
        holders.push(holder);
    }
    assert_eq!(root_send(&server, "fifth"), "FIFTH\n");
    let log = server.wait_log("to make room");
    assert!(
        log.contains("closed the oldest of the 64 from uid 6553"),
        "{log}"
    );
}

/// Over TCP a peer on this host counts with its user, as the kernel tells who owns its
/// socket (sock_diag), not with its address, which every local user shares: one user
/// (nobody) holding 64 idle handshakes from 127.0.0.1 is refused its 65th, and root's
/// client is served. Nobody's own client is refused too, in a line that says why the
/// server may have closed it.
#[test]
fn one_user_holding_handshakes_from_loopback_locks_no_one_out() {
    let test = "one_user_holding_handshakes_from_loopback_locks_no_one_out";
    let server = serve("event", &[]);
    let Some(_holder) = holding(&server, 65534, test) else {
        return;
    };
    let log = server.stderr();
    assert!(!log.contains(&at_cap("127.0.0.1")), "{log}");
    assert_eq!(root_send(&server, "root"), "ROOT\n");
    let send = ["send", "--tls", "--insecure", &server.addr, "65th"];
    // A held handshake reaches its deadline (10 s) and is opened again: a client coming
    // just then takes its place, so a few tries.
    let refused = (0..5)
        .map(|_| common::run(&mut common::as_nobody(&send), b""))
        .find(|out| !out.status.success())
        .expect("nobody's client refused at its cap");
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(
        said.contains("too many TLS handshakes in progress"),
        "{said}"
    );
}

/// Over a Unix socket a peer's handshakes count with its user's (SO_PEERCRED): one user
/// (nobody) opening 300 holds 64 of them, and root's client is served.
#[test]
fn one_user_holding_handshakes_on_a_unix_socket_locks_no_one_out() {
    let test = "one_user_holding_handshakes_on_a_unix_socket_locks_no_one_out";
    let name = common::abstract_name("tlshold");
    let hold = ["hold", "unix", &name, "-", "300", "120"];
    let Some(mut hold) = trickle_as(65534, test, &hold) else {
        return;
    };
    let server = Server::start(&["--addr", &format!("unix://{name}"), "--tls"]);
    let (_holders, said) = common::started(&mut hold);
    assert_eq!(said, "held 300");
    let log = server.wait_log(&at_cap("uid 65534 on this host"));
    assert!(!log.contains("from its address"), "{log}");
    let out = common::netecho(&["send", "--tls", "--insecure", &server.url(), "root"], b"");
    assert_eq!(ok(&out), "ROOT\n");
}
