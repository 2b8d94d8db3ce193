//! `netecho bench` against the real server: every reply checked, numbers that add up.

mod common;

use common::netns::Pair;
use common::{Server, netecho, ok};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::thread::JoinHandle;
use std::time::Duration;

/// Runs `netecho bench ARGS --format json` and returns its one run.
fn bench(args: &[&str]) -> serde_json::Value {
    let mut all = vec!["bench"];
    all.extend_from_slice(args);
    all.extend(["--format", "json"]);
    let doc: serde_json::Value =
        serde_json::from_str(&ok(&netecho(&all, b""))).expect("bench prints JSON");
    assert_eq!(doc["schema"], "netecho-bench/2");
    let run = doc["runs"][0].clone();
    // The echo server answers each request once and nothing is lost on loopback here:
    // a duplicate or a differing reply is a bug, in any run.
    assert_eq!(run["duplicated"], 0, "{run}");
    assert_eq!(run["mismatched"], 0, "{run}");
    run
}

#[test]
fn bench_counts_every_reply_over_each_protocol() {
    let cases = [
        ("tcp", "127.0.0.1:0".to_string()),
        ("udp", "[::1]:0".to_string()),
        ("unix", common::abstract_name("bench-unix")),
        ("unix-dgram", common::abstract_name("bench-dgram")),
        ("unix-seqpacket", common::abstract_name("bench-seq")),
    ];
    for (proto, addr) in cases {
        let server = Server::start(&["--proto", proto, "--addr", &addr]);
        let url = server.url();
        // Nothing is lost on loopback: a reply held up past bench's 1 s loss timeout (a
        // loaded machine) is still a reply, so the wait is long.
        let run = bench(&[
            &url,
            "-P",
            "8",
            "-s",
            "100",
            "-n",
            "200",
            "-w",
            "4",
            "--timeout",
            "20s",
        ]);
        assert_eq!(run["proto"], proto);
        assert_eq!(run["sent"], 1600, "{proto}: {run}");
        assert_eq!(run["answered"], 1600, "{proto}: {run}");
        assert_eq!(run["mismatched"], 0, "{proto}: {run}");
        assert!(run["requests_per_s"].as_f64().unwrap() > 0.0);
        assert!(run["latency_us"]["p50"].as_f64().unwrap() >= 1.0);
    }
}

#[test]
fn bench_pipelines_large_messages_over_a_stream() {
    let server = Server::start(&["--addr", "127.0.0.1:0"]);
    // A count over a stream fails a client whose oldest request waited --timeout (1 s
    // unless told): 200 kB replies take longer than that on a loaded machine.
    let run = bench(&[
        &server.addr,
        "-P",
        "4",
        "-s",
        "200000",
        "-n",
        "20",
        "-w",
        "3",
        "--timeout",
        "20s",
    ]);
    assert_eq!(run["answered"], 80, "{run}");
    assert_eq!(run["bytes"], 80 * 200_000, "{run}");
}

#[test]
fn table_and_csv_have_a_row_per_run() {
    let server = Server::start(&["--addr", "127.0.0.1:0"]);
    let narrow = ok(&netecho(&["bench", &server.addr, "-n", "3"], b""));
    let wide_lines: Vec<&str> = narrow.lines().filter(|l| l.chars().count() > 80).collect();
    assert!(wide_lines.is_empty(), "{narrow}");
    assert!(
        narrow.starts_with("proto  cl  size  win  req/s"),
        "{narrow}"
    );
    assert!(
        narrow.contains(&format!("    at {}", server.addr)),
        "{narrow}"
    );
    let table = ok(&netecho(&["bench", &server.addr, "-n", "3", "--wide"], b""));
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 2, "{table}");
    assert!(lines[0].starts_with("proto  address"), "{table}");
    assert!(lines[1].starts_with("tcp    127.0.0.1:"), "{table}");
    let csv = ok(&netecho(
        &["bench", &server.addr, "-n", "3", "--format", "csv"],
        b"",
    ));
    let rows: Vec<&str> = csv.lines().collect();
    assert_eq!(rows.len(), 2, "{csv}");
    assert!(rows[0].starts_with("proto,address,clients,size,window,requests_per_s"));
    assert!(
        rows[1].starts_with(&format!("tcp,{},1,64,1,", server.addr)),
        "{csv}"
    );
}

#[test]
fn a_reply_that_differs_is_reported_and_fails_the_run() {
    // The server echoes without upper-casing, but bench expects upper case.
    let server = Server::start(&["--addr", "127.0.0.1:0", "--transform", "echo"]);
    let out = netecho(&["bench", &server.addr, "-n", "5"], b"");
    let line = common::fails(&out, 1);
    assert!(line.contains("did not match"), "{line}");
    assert!(line.contains("--expect echo"), "{line}");
    // Nothing matched, so nothing was measured: no table of zeros above the error.
    assert_eq!(String::from_utf8_lossy(&out.stdout), "");
    // Told what the server does, the same run passes.
    let run = bench(&[&server.addr, "-n", "5", "--expect", "echo"]);
    assert_eq!(run["answered"], 5);
}

/// python3: a tcp server on 127.0.0.1:argv[1] that answers each read with it upper-cased
/// three times: more bytes than it was sent.
const TRIPLING: &str = r#"
import socket, sys, threading
ls = socket.socket()
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("127.0.0.1", int(sys.argv[1])))
ls.listen(16)
def answer(c):
    try:
        while (d := c.recv(65536)):
            c.sendall(d.upper() * 3)
    except OSError:
        pass
while True:
    threading.Thread(target=answer, args=(ls.accept()[0],), daemon=True).start()
"#;

#[test]
fn a_server_that_sends_more_than_it_was_sent_is_said_so_not_told_to_use_expect() {
    let port = common::free_port();
    let _server = common::Peer(
        std::process::Command::new("python3")
            .args(["-c", TRIPLING, &port.to_string()])
            .spawn()
            .expect("python3"),
    );
    let addr = format!("127.0.0.1:{port}");
    common::eventually("the python3 server listening", || {
        std::net::TcpStream::connect(&addr).ok()
    });
    let out = netecho(&["bench", &addr, "-n", "20", "-P", "2"], b"");
    let line = common::fails(&out, 1);
    assert!(line.contains("bytes more than it was sent"), "{line}");
    assert!(!line.contains("--expect"), "{line}");
    // Replies out of step give no figure worth printing: no table row, only the error.
    assert!(
        String::from_utf8_lossy(&out.stdout).trim().is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn a_count_run_against_a_server_that_never_answers_ends_at_its_timeout() {
    // Accepts and never reads: bench must give up after --timeout, not wait forever.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap().to_string();
    for clients in ["1", "2"] {
        let args = ["bench", &addr, "-n", "5", "-P", clients, "--timeout", "1s"];
        let line = common::fails(&netecho(&args, b""), 1);
        // Nothing came from the start: the question is whether it echoes at all.
        assert!(
            line.contains("answered nothing from the start: is it an echo server?"),
            "{clients}: {line}"
        );
    }
    drop(silent);
}

#[test]
fn a_short_timed_run_against_a_server_that_never_answers_waits_no_longer_than_5s_after_it() {
    // Accepts and never reads: a 1 s run waits for its replies in flight 5 s (not 30 s) after
    // its time, and says so; the JSON's stall_s is that wait.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap().to_string();
    let child = std::process::Command::new(common::bin())
        .args(["bench", &addr, "-d", "1s", "--format", "json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let out = common::output_within(child, "bench -d 1s at a silent server", common::STEP);
    let line = common::fails(&out, 1);
    assert!(line.contains("answered nothing from the start"), "{line}");
    // Nothing answered: no document of a run that reads as a clean one with 0 lost.
    assert_eq!(String::from_utf8_lossy(&out.stdout), "");
    drop(silent);
    // The wait is the run's parameter, whatever the server does.
    let server = Server::start(&["--addr", "127.0.0.1:0"]);
    let args = ["bench", &server.addr, "-d", "1s", "--format", "json"];
    let doc: serde_json::Value = serde_json::from_str(&ok(&netecho(&args, b""))).unwrap();
    assert_eq!(doc["meta"]["parameters"]["stall_s"], 5.0, "{doc}");
}

/// A udp run at a port where nothing listens: ICMP port unreachable fails its client, and
/// nothing was answered. Its error is the whole output, in every format: no table of
/// zeros ("lost 0") above it.
#[test]
fn a_run_that_nothing_answered_prints_its_error_and_no_table() {
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    for format in ["table", "json", "csv"] {
        let args = [
            "bench", "--proto", "udp", &addr, "-d", "1s", "--format", format,
        ];
        let out = netecho(&args, b"");
        let line = common::fails(&out, 1);
        assert!(line.contains("connection refused"), "{format}: {line}");
        assert_eq!(String::from_utf8_lossy(&out.stdout), "", "{format}");
    }
}

#[test]
fn bench_against_nothing_says_so() {
    let (_held, addr) = common::refused_port("127.0.0.1");
    let out = netecho(&["bench", &addr, "-n", "1"], b"");
    let line = common::fails(&out, 1);
    assert!(line.contains("nothing is listening"), "{line}");
}

#[test]
fn bench_starts_its_own_servers_for_a_list_of_protocols() {
    let dir = common::tempdir();
    let plot = dir.path().join("b.svg");
    let out = netecho(
        &[
            "bench",
            "--proto",
            "tcp,udp,unix-seqpacket",
            "-n",
            "50",
            "-w",
            "2",
            "--timeout",
            "20s",
            "--format",
            "json",
            "--plot",
            plot.to_str().unwrap(),
        ],
        b"",
    );
    let doc: serde_json::Value = serde_json::from_str(&ok(&out)).unwrap();
    let runs = doc["runs"].as_array().unwrap();
    let protos: Vec<&str> = runs.iter().map(|r| r["proto"].as_str().unwrap()).collect();
    assert_eq!(protos, ["tcp", "udp", "unix-seqpacket"]);
    for run in runs {
        assert_eq!(run["answered"], 50, "{run}");
        assert_eq!(run["duplicated"], 0, "{run}");
        assert_eq!(run["mismatched"], 0, "{run}");
    }
    let svg = std::fs::read_to_string(&plot).unwrap();
    let doc = roxmltree::Document::parse(&svg).expect("well-formed SVG");
    assert_eq!(
        doc.descendants()
            .filter(|n| n.has_tag_name("polyline"))
            .count(),
        3
    );
}

#[test]
fn bench_with_a_framing_checks_framed_replies() {
    for framing in ["line", "length"] {
        let server = Server::start(&["--addr", "127.0.0.1:0", "--framing", framing]);
        let run = bench(&[
            &server.addr,
            "--framing",
            framing,
            "-P",
            "3",
            "-w",
            "8",
            "-n",
            "100",
        ]);
        assert_eq!(run["answered"], 300, "{framing}: {run}");
    }
}

/// A udp echo server, and a relay in front of it that loses a tenth of the requests.
fn lossy_udp_path() -> (Server, Server) {
    let server = Server::start(&["--proto", "udp", "--addr", "127.0.0.1:0"]);
    let relay = Server::start_with(std::process::Command::new(common::bin()).args([
        "relay",
        "--loss",
        "up:10%",
        "udp://127.0.0.1:0",
        &server.url(),
    ]));
    (server, relay)
}

#[test]
fn a_lone_client_waits_in_its_recv_and_still_counts_every_reply_and_loss() {
    // One client on one load thread waits in a blocking recv, not in epoll_wait.
    let (_server, relay) = lossy_udp_path();
    // A window of one reads each reply with a plain recv; a larger one, glued (UDP_GRO).
    for (window, count) in [("1", 150), ("4", 400)] {
        let n = count.to_string();
        let args = ["-P", "1", "-w", window, "-n", &n, "--timeout", "200ms"];
        let mut all = vec![relay.url()];
        all.extend(args.iter().map(|a| a.to_string()));
        let run = bench(&all.iter().map(String::as_str).collect::<Vec<_>>());
        let (sent, answered, lost, late) = (
            run["sent"].as_u64().unwrap(),
            run["answered"].as_u64().unwrap(),
            run["lost"].as_u64().unwrap(),
            run["late"].as_u64().unwrap(),
        );
        assert_eq!(sent, count, "window {window}: {run}");
        assert!(lost > 0 && answered > 0, "window {window}: {run}");
        // A reply past the 200 ms timeout (a loaded machine) is counted late, not lost.
        assert_eq!(
            answered + lost + late,
            sent,
            "window {window}: every request answered, lost or late: {run}"
        );
    }
    // The same over tcp: each of its replies read and checked, in pieces or whole.
    let tcp = Server::start(&["--addr", "127.0.0.1:0"]);
    for window in ["1", "4"] {
        let run = bench(&[
            &tcp.addr, "-P", "1", "-w", window, "-s", "1000", "-n", "300",
        ]);
        assert_eq!(run["answered"], 300, "window {window}: {run}");
    }
}

/// An empty message is a frame of its own on a framed stream (an empty line, a length of
/// 0): bench carries it, and the server echoes each one, under either kind of model. A bare
/// stream has no empty message: bench still refuses it there.
#[test]
fn bench_size_0_over_a_framed_stream_sends_empty_frames() {
    for framing in ["line", "length"] {
        for model in ["event", "threads"] {
            let server = Server::start(&[
                "--addr",
                "127.0.0.1:0",
                "--framing",
                framing,
                "--model",
                model,
            ]);
            let run = bench(&[
                &server.addr,
                "--framing",
                framing,
                "--size",
                "0",
                "-P",
                "2",
                "-w",
                "4",
                "-n",
                "50",
            ]);
            assert_eq!(run["sent"], 100, "{framing} {model}: {run}");
            assert_eq!(run["answered"], 100, "{framing} {model}: {run}");
            let header = if framing == "length" { 4 } else { 1 };
            let line = format!(" {0} bytes in, {0} bytes out, 50 frames", 50 * header);
            // Each connection's line comes once the server read its end, maybe after bench
            // exited: both are waited for before the stop.
            server.wait_log_count(&line, 2);
            let (_, _, log) = server.stop("TERM");
            assert_eq!(log.matches(&line).count(), 2, "{framing} {model}: {log}");
        }
    }
    let server = Server::start(&["--addr", "127.0.0.1:0"]);
    let out = netecho(&["bench", &server.addr, "--size", "0", "-n", "5"], b"");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("cannot carry an empty message"), "{stderr}");
    assert!(stderr.contains("--framing line or length"), "{stderr}");
}

/// A stand-in server on loopback: upper-cases a stream as `netecho serve` does, but turns
/// one byte of each `size`-byte reply wrong, at a place that moves from reply to reply
/// (early, deep inside, the last byte). It serves one connection, then ends.
fn one_wrong_byte_per_reply(size: usize, wrong_at: &'static [usize]) -> (String, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let addr = listener.local_addr().unwrap().to_string();
    let server = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().expect("bench connects");
        conn.set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let mut buf = vec![0u8; 64 * 1024];
        let mut at = 0usize;
        while let Ok(n @ 1..) = conn.read(&mut buf) {
            for b in &mut buf[..n] {
                b.make_ascii_uppercase();
                let (reply, pos) = (at / size, at % size);
                if pos == wrong_at[reply % wrong_at.len()] {
                    *b ^= 0x01;
                }
                at += 1;
            }
            if conn.write_all(&buf[..n]).is_err() {
                break;
            }
        }
    });
    (addr, server)
}

#[test]
fn a_wrong_byte_anywhere_in_a_long_stream_reply_fails_the_run() {
    // Replies checked piece by piece as reads cut them: a byte in the first kilobyte, deep
    // inside, at a period's edge and the very last must each make its reply a mismatch.
    let size = 65536;
    const WRONG_AT: &[usize] = &[100, 832, 1664, 40_000, 65_535];
    let (addr, server) = one_wrong_byte_per_reply(size, WRONG_AT);
    let requests = 20;
    let out = netecho(
        &[
            "bench",
            &addr,
            "-n",
            &requests.to_string(),
            "--window",
            "4",
            "--size",
            "65536",
            // A reply held up past 1 s (the default) on a loaded machine would fail the run
            // as unanswered, not as differing.
            "--timeout",
            "20s",
            "--format",
            "json",
        ],
        b"",
    );
    let line = common::fails(&out, 1);
    assert!(
        line.contains(&format!("{requests} replies did not match")),
        "{line}"
    );
    // Not one reply matched: the error is the report, with no run of zeros beside it.
    assert_eq!(String::from_utf8_lossy(&out.stdout), "");
    server.join().unwrap();
}

#[test]
fn a_stream_server_paused_for_two_seconds_is_a_stall_not_a_failure() {
    // A stream loses nothing: a reply that comes late is waited for. The server is stopped
    // (SIGSTOP) for 2.5 s in the middle of a counted run, longer than a datagram's 1 s
    // loss timeout, and the run still ends with every reply.
    let server = Server::start(&["--addr", "127.0.0.1:0"]);
    // Paced to 10 requests a second: 40 requests take 4 s at least, so the pause, which
    // begins at the first interval line, falls inside the run however slow the machine.
    let mut child = std::process::Command::new(common::bin())
        .args([
            "bench",
            &server.addr,
            "-n",
            "40",
            "-s",
            "64",
            "--rate",
            "5120bit",
        ])
        .args(["--format", "ndjson", "--interval", "200ms"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    std::io::BufRead::read_line(&mut stdout, &mut first).unwrap();
    assert!(first.contains("\"interval\""), "{first}");
    common::signal(server.pid(), "STOP");
    std::thread::sleep(Duration::from_millis(2500));
    common::signal(server.pid(), "CONT");
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    let status = common::wait_exit_within(&mut child, "bench", common::STEP * 3);
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(status.success(), "{err}");
    let summary: serde_json::Value =
        serde_json::from_str(rest.lines().last().expect("a summary line")).unwrap();
    assert_eq!(summary["type"], "summary", "{summary}");
    assert_eq!(summary["answered"], 40, "{summary}");
    assert_eq!(summary["failed_clients"], 0, "{summary}");
}

/// The pid of a process that has ended.
fn gone_pid() -> u32 {
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    pid
}

/// `bench --proto unix --clients 1 --duration DURATION [FLAGS]` with its local server's
/// directory under `tmp`; stderr piped.
fn unix_bench_in(tmp: &std::path::Path, duration_and_flags: &[&str]) -> std::process::Child {
    std::process::Command::new(common::bin())
        .args(["bench", "--proto", "unix", "--clients", "1", "--duration"])
        .args(duration_and_flags)
        .env("TMPDIR", tmp)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn a_run_clears_only_what_a_killed_run_marked_and_never_a_users_own_directory() {
    let tmp = common::tempdir();
    // A user's own directory with the name of a run's, of a pid that is gone: left as it is.
    let users = tmp.path().join(format!("netecho-{}", gone_pid()));
    std::fs::create_dir_all(users.join("important")).unwrap();
    std::fs::write(users.join("important/data.txt"), "precious").unwrap();
    // What a killed run left: its mark and a socket file.
    let pid = gone_pid();
    let left = tmp.path().join("netecho-Xq3zLw");
    std::fs::create_dir(&left).unwrap();
    std::fs::write(
        left.join(".netecho-run"),
        format!("netecho lab or bench, pid {pid}\n"),
    )
    .unwrap();
    let socket = std::os::unix::net::UnixListener::bind(left.join("unix.sock")).unwrap();
    drop(socket);
    let child = unix_bench_in(tmp.path(), &["1s"]);
    let out = common::output_within(child, "bench --proto unix", Duration::from_secs(60));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let data = std::fs::read_to_string(users.join("important/data.txt"));
    assert_eq!(
        data.ok().as_deref(),
        Some("precious"),
        "a user's file was removed"
    );
    assert!(!left.exists(), "{} was left", left.display());
}

#[test]
fn a_run_whose_stderr_was_closed_still_cleans_up_when_stopped() {
    let tmp = common::tempdir();
    let mut child = unix_bench_in(tmp.path(), &["60s", "-v"]);
    // Its reader gone, every log line meets a closed pipe (as under `| head`).
    drop(child.stderr.take());
    let dir = common::eventually("the run's socket", || {
        common::run_dir(tmp.path(), child.id()).filter(|dir| dir.join("unix.sock").exists())
    });
    std::thread::sleep(Duration::from_millis(300));
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
    let status = common::wait_exit(&mut child, "bench, after SIGTERM,");
    assert_eq!(common::shell_status(&status), 143, "{status:?}");
    assert!(!dir.exists(), "{} was left", dir.display());
}

/// `bench -d 600s ARGS` against a real server, sent `signals` in turn once the server has
/// answered a few requests, started with SIGINT ignored or not: bench's exit status, stdout
/// and stderr.
fn stopped_bench(
    signals: &[&str],
    sigint_ignored: bool,
    args: &[&str],
) -> (Option<i32>, String, String) {
    let server = Server::start(&["-v", "--addr", "127.0.0.1:0"]);
    let mut cmd = std::process::Command::new(common::bin());
    cmd.args(["bench", "-d", "600s"])
        .args(args)
        .arg(&server.addr)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let child = common::with_sigint(&mut cmd, sigint_ignored)
        .spawn()
        .unwrap();
    // Mid-run: the server has read requests (its -v log says each read).
    server.wait_log_count("read 64 bytes", 3);
    for signal in signals {
        common::signal(child.id(), signal);
    }
    // A run of 600 s not ended by the signal runs into this bound.
    let out = common::output_within(child, "bench, after the signal,", Duration::from_secs(30));
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.code(), text(&out.stdout), text(&out.stderr))
}

#[test]
fn a_run_stopped_by_sigint_prints_the_json_of_what_ran_marked_stopped() {
    let (code, stdout, stderr) = stopped_bench(&["INT"], false, &["--format", "json"]);
    assert_eq!(code, Some(130), "{stderr}");
    let doc: serde_json::Value = serde_json::from_str(&stdout).expect("the JSON report");
    let run = &doc["runs"][0];
    assert_eq!(run["stopped"], "SIGINT", "{run}");
    assert!(run["answered"].as_u64().unwrap() > 0, "{run}");
    assert!(run["elapsed_s"].as_f64().unwrap() < 600.0, "{run}");
    // Requests cut short by the stop are neither lost nor a failure.
    assert_eq!(run["lost"], 0, "{run}");
    assert_eq!(run["failed_clients"], 0, "{run}");
    assert!(stderr.contains("stopped by SIGINT"), "{stderr}");
}

/// A bench started with SIGINT ignored, as a background job of a script is, keeps it
/// ignored: the Ctrl-C meant for the job in the foreground neither stops it nor counts as
/// the first of two signals, and the SIGTERM after it stops the run as a first signal does.
#[test]
fn a_run_started_with_sigint_ignored_is_stopped_by_sigterm_alone() {
    let (code, stdout, stderr) = stopped_bench(&["INT", "TERM"], true, &["--format", "json"]);
    assert_eq!(code, Some(143), "{stderr}");
    let doc: serde_json::Value = serde_json::from_str(&stdout).expect("the JSON report");
    assert_eq!(doc["runs"][0]["stopped"], "SIGTERM", "{doc}");
    assert!(!stderr.contains("SIGINT"), "{stderr}");
}

#[test]
fn a_run_stopped_by_sigterm_says_so_under_the_table_and_in_the_csv() {
    let (code, stdout, stderr) = stopped_bench(&["TERM"], false, &[]);
    assert_eq!(code, Some(143), "{stderr}");
    assert!(stdout.starts_with("proto"), "{stdout}");
    let note = stdout
        .lines()
        .find(|l| l.contains("stopped by SIGTERM after"))
        .unwrap_or_else(|| panic!("no note of the stop under the table:\n{stdout}"));
    assert!(note.contains("of 600 s"), "{note}");
    let (code, stdout, stderr) = stopped_bench(&["TERM"], false, &["--format", "csv"]);
    assert_eq!(code, Some(143), "{stderr}");
    assert_eq!(csv_cell(&stdout, "stopped"), "SIGTERM", "{stdout}");
}

/// The cell under `column` in the first row of a one-run CSV (no quoted fields).
fn csv_cell(csv: &str, column: &str) -> String {
    let mut rows = csv.lines();
    let head: Vec<&str> = rows.next().expect("a header").split(',').collect();
    let row: Vec<&str> = rows.next().expect("a row of what ran").split(',').collect();
    let at = head
        .iter()
        .position(|h| *h == column)
        .unwrap_or_else(|| panic!("no {column} column: {csv}"));
    row[at].to_string()
}

#[test]
fn plot_never_writes_through_a_symlink_nor_over_a_file_unless_forced() {
    let planted = common::Planted::new();
    let run = |plot: &str, force: bool| {
        let path = planted.at(plot);
        let mut args = vec!["bench", "--proto", "unix", "--clients", "1"];
        args.extend(["--duration", "1s", "--plot", path.to_str().unwrap()]);
        args.extend(force.then_some("--force"));
        netecho(&args, b"")
    };
    for plot in ["link", "dangling", "mine"] {
        let line = common::fails(&run(plot, false), 1);
        assert!(line.contains("already exists"), "{plot}: {line}");
        assert!(line.contains("--force"), "{plot}: {line}");
    }
    planted.untouched();
    let mine = std::fs::read_to_string(planted.at("mine")).unwrap();
    assert_eq!(mine, "my own work");
    // --force replaces the file, and a symlink itself, never what it points to.
    for plot in ["mine", "link"] {
        ok(&run(plot, true));
        let meta = std::fs::symlink_metadata(planted.at(plot)).unwrap();
        assert!(meta.file_type().is_file(), "{plot}: {meta:?}");
        let svg = std::fs::read_to_string(planted.at(plot)).unwrap();
        assert!(svg.contains("<svg"), "{plot}: {svg}");
    }
    planted.untouched();
}

#[test]
fn a_plot_into_a_missing_directory_fails_before_anything_is_measured() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let dir = common::tempdir();
    let plot = dir.path().join("missing").join("b.svg");
    let args = ["bench", &addr, "--duration", "30s", "--plot"];
    let out = netecho(&[&args[..], &[plot.to_str().unwrap()]].concat(), b"");
    let line = common::fails(&out, 1);
    assert!(line.contains("does not exist; create it"), "{line}");
    assert!(
        listener.accept().is_err(),
        "bench connected before checking --plot"
    );
}

#[test]
fn a_runs_directory_is_private_and_its_name_unpredictable_whatever_the_umask() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = common::tempdir();
    let script = format!(
        "umask 000; exec {} bench --proto unix --clients 1 --duration 60s",
        common::bin()
    );
    // Killed when dropped, should an assertion fail first.
    let mut run = common::Peer(
        std::process::Command::new("sh")
            .args(["-c", &script])
            .env("TMPDIR", tmp.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let pid = run.0.id();
    // Not netecho-PID, which another user could make first.
    let dir = common::eventually("the run's socket in netecho-XXXXXX", || {
        common::run_dir(tmp.path(), pid).filter(|dir| dir.join("unix.sock").exists())
    });
    let mode = std::fs::metadata(&dir).unwrap().permissions().mode();
    common::signal(pid, "TERM");
    common::wait_exit(&mut run.0, "bench, after SIGTERM,");
    assert_eq!(mode & 0o777, 0o700, "{}", dir.display());
    let name = dir.file_name().unwrap().to_string_lossy().into_owned();
    assert_ne!(name, format!("netecho-{pid}"));
    assert_eq!(name.len(), "netecho-XXXXXX".len(), "{name}");
}

/// `netecho bench -d 8s -P 4 URL ARGS` against `server`, which is stopped (SIGSTOP) for
/// 3 s from about 1.5 s into the run: the run's exit status, stdout and stderr. However
/// slow the start, the pause falls within the 8 s (or before the first reply, which is a
/// silence too).
fn frozen_bench(server: &Server, args: &[&str]) -> (Option<i32>, String, String) {
    let child = std::process::Command::new(common::bin())
        .args(["bench", "-d", "8s", "-P", "4"])
        .args(args)
        .arg(server.url())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    common::signal(server.pid(), "STOP");
    std::thread::sleep(Duration::from_secs(3));
    common::signal(server.pid(), "CONT");
    let out = common::output_within(child, "bench of a frozen server", Duration::from_secs(60));
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.code(), text(&out.stdout), text(&out.stderr))
}

/// The seconds in "answered nothing for 3.0 s" of `note`.
fn silent_seconds(note: &str) -> f64 {
    let rest = note
        .split("answered nothing for ")
        .nth(1)
        .unwrap_or_else(|| panic!("no silence in: {note}"));
    rest.split(' ').next().unwrap().parse().unwrap()
}

#[test]
fn a_server_frozen_for_3s_of_a_run_is_said_under_the_table() {
    let server = Server::start(&["--addr", "127.0.0.1:0"]);
    let (code, stdout, stderr) = frozen_bench(&server, &[]);
    // A stall is a measurement, not an error.
    assert_eq!(code, Some(0), "{stderr}");
    let flat = stdout.split_whitespace().collect::<Vec<_>>().join(" ");
    let note = flat
        .split("- tcp: ")
        .nth(1)
        .unwrap_or_else(|| panic!("no note of the stall under the table:\n{stdout}"));
    // 3 s; generous either way for a loaded machine.
    let seconds = silent_seconds(note);
    assert!((2.0..8.0).contains(&seconds), "{note}");
    assert!(
        note.contains("s into the run): req/s and the percentiles average over it"),
        "{note}"
    );
}

#[test]
fn a_udp_server_frozen_for_3s_has_its_silence_and_late_replies_in_the_json() {
    let server = Server::start(&["--proto", "udp", "--addr", "127.0.0.1:0"]);
    let (code, stdout, stderr) = frozen_bench(&server, &["--format", "json"]);
    assert_eq!(code, Some(0), "{stderr}");
    let doc: serde_json::Value = serde_json::from_str(&stdout).expect("the JSON report");
    let run = &doc["runs"][0];
    let stall = &run["stall"];
    let seconds = stall["silent_s"]
        .as_f64()
        .unwrap_or_else(|| panic!("{run}"));
    assert!((2.0..8.0).contains(&seconds), "{run}");
    let (from, to) = (
        stall["from_s"].as_f64().unwrap(),
        stall["to_s"].as_f64().unwrap(),
    );
    assert!(
        from < to && to <= run["elapsed_s"].as_f64().unwrap(),
        "{run}"
    );
    // The requests the server held past the 1 s loss timeout were answered after it: late,
    // neither answered nor lost, and every request is one of the three.
    let n = |field: &str| run[field].as_u64().unwrap();
    assert!(n("late") > 0, "{run}");
    assert_eq!(n("sent"), n("answered") + n("lost") + n("late"), "{run}");
}

#[test]
fn late_replies_are_explained_under_the_table() {
    let server = Server::start(&["--proto", "udp", "--addr", "127.0.0.1:0"]);
    let (code, stdout, stderr) = frozen_bench(&server, &["--wide"]);
    assert_eq!(code, Some(0), "{stderr}");
    let flat = stdout.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        flat.contains(
            "answered after the loss timeout (--timeout): counted late, neither answered nor lost"
        ),
        "{stdout}"
    );
}

/// A firewall OUTPUT rule refuses sends with EPERM: send, bench and ping say so and what to
/// check; bench prints no table of a run whose every client died of it, and ping counts
/// refused requests among those made and lost, as iputils' ping does, naming why.
#[test]
fn sends_a_firewall_refuses_are_named_and_never_counted_as_a_clean_run() {
    let test = "sends_a_firewall_refuses_are_named_and_never_counted_as_a_clean_run";
    let Some(pair) = Pair::new("fwo", test) else {
        return;
    };
    let rules = [
        "udp dport 4002",
        "udp dport 4003 numgen random mod 10 == 0",
        "icmp type echo-request",
    ];
    for rule in rules {
        common::netns::refuse_out(&pair.client, rule).expect("nftables OUTPUT rule");
    }
    let listen = format!("{}:4003", Pair::SERVER_V4);
    let server =
        Server::start_with(&mut pair.server_cmd(&["serve", "--proto", "udp", "--addr", &listen]));
    let advice = ["EPERM", "this host's firewall", "nft list ruleset"];
    let refused = format!("{}:4002", Pair::SERVER_V4);
    let send = ["send", "--proto", "udp", &refused, "hi"];
    let line = common::fails(&common::run(&mut pair.client_cmd(&send), b""), 1);
    common::assert_mentions(&line, &advice);
    // One request in ten refused: each client dies within a few dozen requests, after
    // some were answered.
    let bench = ["bench", "--proto", "udp", &listen, "-d", "3s", "-P", "2"];
    let out = common::run(&mut pair.client_cmd(&bench), b"");
    let line = common::fails(&out, 1);
    common::assert_mentions(&line, &advice);
    assert!(
        out.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let ping = ["ping", "-c", "2", "-i", "200ms", Pair::SERVER_V4];
    let out = common::run(&mut pair.client_cmd(&ping), b"");
    let line = common::fails(&out, 1);
    common::assert_mentions(
        &line,
        &["2 of 2 echo request(s) never went out", "nft list ruleset"],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!stdout.contains("os error"), "{stdout}");
    // A blocked path is 100% lost, as a script parsing "% packet loss" must read it.
    assert!(
        stdout.contains(
            "2 packets transmitted, 0 received, +2 refused by this host, 100% packet loss"
        ),
        "{stdout}"
    );
    drop(server);
}

/// Every sentence about a run comes under its table, in its notes, and none on stderr before
/// it: a datagram run through a relay that loses a tenth of the requests says there what
/// was lost, where it went and what the losses held up. With JSON they come on stderr.
#[test]
fn a_runs_loss_is_told_under_its_table_never_before_it() {
    let (_server, relay) = lossy_udp_path();
    let args = ["bench", "-n", "500", "-w", "4", "--timeout", "300ms"];
    let out = netecho(&[&args[..], &[&relay.url()]].concat(), b"");
    let table = ok(&out);
    let log = String::from_utf8_lossy(&out.stderr);
    let legend = table.find("lost = requests unanswered").expect(&table);
    let lost = table.find("\n- udp: ").expect(&table);
    assert!(legend < lost, "{table}");
    assert!(
        table[lost..].contains("datagrams lost: nobody retransmits them"),
        "{table}"
    );
    assert!(!log.contains("lost"), "{log}");
    let json = netecho(
        &[&args[..], &["--format", "json", &relay.url()]].concat(),
        b"",
    );
    let said = String::from_utf8_lossy(&json.stderr);
    assert!(said.contains("udp: "), "{said}");
    assert!(said.contains("datagrams lost"), "{said}");
    let doc: serde_json::Value = serde_json::from_str(&ok(&json)).expect("bench prints JSON");
    assert!(doc["runs"][0]["lost"].as_u64().unwrap() > 0, "{doc}");
}

/// A server that accepts, says one byte (as iperf3's server says its state) and no more:
/// not an echo server from the start, which the error asks rather than blaming a stop.
#[test]
fn a_server_that_never_echoed_is_asked_whether_it_is_an_echo_server() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let peer = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        conn.write_all(b"\x09").unwrap();
        let _ = std::io::copy(&mut conn, &mut std::io::sink());
    });
    let line = common::fails(&netecho(&["bench", &addr, "-t", "1s"], b""), 1);
    assert!(
        line.contains("answered nothing from the start: is it an echo server?"),
        "{line}"
    );
    assert!(line.contains("iperf3 -s -> netecho serve"), "{line}");
    assert!(!line.contains("--timeout"), "{line}");
    peer.join().unwrap();
}

/// A socat server that takes every byte and says nothing, measured by a count: the run
/// fails as the timed one does, asking whether it is an echo server, not asking for more
/// --timeout (which could never bring a reply).
#[test]
fn a_counted_run_asks_a_silent_server_whether_it_is_an_echo_server() {
    let test = "a_counted_run_asks_a_silent_server_whether_it_is_an_echo_server";
    if !common::have("socat", test) {
        return;
    }
    let (_socat, port) = common::socat_listener(&["-u"], "OPEN:/dev/null");
    let addr = format!("127.0.0.1:{port}");
    let args = ["bench", "-n", "5", "--timeout", "1s", &addr];
    let line = common::fails(&netecho(&args, b""), 1);
    assert!(
        line.contains("answered nothing from the start: is it an echo server?"),
        "{line}"
    );
    assert!(line.contains("iperf3 -s -> netecho serve"), "{line}");
    assert!(!line.contains("--timeout"), "{line}");
}

/// iperf3's own server, measured as README's table says iperf3 users will try it.
#[test]
fn iperf3_s_server_is_named_as_no_echo_server() {
    if !common::have("iperf3", "iperf3_s_server_is_named_as_no_echo_server") {
        return;
    }
    let port = common::free_port().to_string();
    let args = ["-s", "-B", "127.0.0.1", "-p", &port];
    let mut iperf3 = std::process::Command::new("iperf3");
    // iperf3 says on stderr what it makes of bench's requests: not this test's output.
    iperf3.stdout(std::process::Stdio::null());
    let child = iperf3.args(args).stderr(std::process::Stdio::null());
    let _iperf3 = common::Peer(child.spawn().unwrap());
    let addr = format!("127.0.0.1:{port}");
    common::eventually("iperf3 -s listening", || {
        std::net::TcpStream::connect(&addr).ok()
    });
    let line = common::fails(
        &netecho(&["bench", "-c", "127.0.0.1", &port, "-t", "1s"], b""),
        1,
    );
    assert!(line.contains("is it an echo server?"), "{line}");
}

/// An --idle run sends nothing: under its row of zeros, a note says what it measured.
#[test]
fn an_idle_run_says_what_it_held_under_its_table() {
    let server = Server::start(&["--addr", "127.0.0.1:0"]);
    let args = ["bench", "--idle", "-P", "3", "-d", "1s", &server.addr];
    let table = ok(&netecho(&args, b""));
    let text = table.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(text.contains("--idle: 3 of 3 clients connected"), "{table}");
    assert!(text.contains("0 failed) and held 1."), "{table}");
    assert!(text.contains("traffic columns are zero"), "{table}");
}

/// An --idle run measures no round trip: its latency is null in the JSON and empty in the
/// CSV, not zeros that a script would read as the fastest run; a run that sent has numbers.
#[test]
fn an_idle_run_has_no_latency_and_a_measured_run_has_one() {
    let server = Server::start(&["--addr", "127.0.0.1:0"]);
    let idle = ["--idle", "-P", "2", "-d", "1s", &server.addr];
    let run = bench(&idle);
    assert_eq!(run["sent"], 0, "{run}");
    assert!(run["latency_us"].is_null(), "{run}");
    assert!(run["connect_us"]["p50"].is_number(), "{run}");
    let csv = ok(&netecho(
        &[&["bench"][..], &idle[..], &["--format", "csv"][..]].concat(),
        b"",
    ));
    assert_eq!(csv_cell(&csv, "p50_us"), "", "{csv}");
    assert_eq!(csv_cell(&csv, "mean_us"), "", "{csv}");
    let measured = bench(&["-n", "20", "--timeout", "20s", &server.addr]);
    assert!(measured["latency_us"]["p50"].is_number(), "{measured}");
    assert!(measured["latency_us"]["mean"].is_number(), "{measured}");
}

/// iperf3's letters that bench reads the same way are named in its help, on their lines.
#[test]
fn bench_help_names_iperf3_s_letters() {
    let help = ok(&netecho(&["bench", "--help"], b""));
    let text = help.split_whitespace().collect::<Vec<_>>().join(" ");
    for letter in [
        "-t as iperf3's",
        "-l as iperf3's",
        "-b, as iperf3's -b",
        "-P as in iperf3",
    ] {
        assert!(text.contains(letter), "{letter}: {help}");
    }
}
