//! UDP segmentation and receive offload (UDP_SEGMENT, UDP_GRO) through the real binary:
//! `bench --proto udp` sends its requests many per sendmsg(2) and reads the server's
//! replies glued, each checked as its own datagram; the echo server reads bursts glued and
//! answers each datagram of mixed sizes intact (a Python peer checks every reply); and where
//! the kernel refuses either (strace injects the error an old kernel gives) the same traffic
//! goes one datagram at a time and every reply still arrives.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::{Server, ok, strace, tempdir};

/// `strace -f -o TRACE -e trace=CALLS EXTRA... netecho ARGS...`; `None` (with the skip
/// said) when strace is missing or may not trace here.
fn straced(
    test: &str,
    trace: &Path,
    calls: &str,
    extra: &[&str],
    args: &[&str],
) -> Option<Command> {
    if !common::have("strace", test) {
        return None;
    }
    let probe = Command::new("strace")
        .args(["-f", "-qq", "-o", "/dev/null", "true"])
        .output()
        .expect("run strace");
    if !probe.status.success() {
        let why = String::from_utf8_lossy(&probe.stderr).into_owned();
        common::skip(
            test,
            &format!("ptrace allowed: {why}"),
            common::Lacks::Environment,
        );
        return None;
    }
    let mut cmd = Command::new("strace");
    cmd.args([
        "-f",
        "-qq",
        "-s",
        "64",
        "-e",
        &format!("trace={calls}"),
        "-o",
    ])
    .arg(trace)
    .args(extra)
    .arg(common::bin())
    .args(args);
    Some(cmd)
}

/// A udp echo server, under strace when `calls` is given (its trace in the returned path).
fn udp_server(test: &str, calls: Option<(&str, &[&str])>, dir: &Path) -> Option<(Server, PathBuf)> {
    let args = ["serve", "--proto", "udp", "--addr", "127.0.0.1:0"];
    let trace = dir.join("server.trace");
    let server = match calls {
        None => Server::start(&args[1..]),
        Some((calls, extra)) => {
            Server::start_with(&mut straced(test, &trace, calls, extra, &args)?)
        }
    };
    Some((server, trace))
}

/// `bench --proto udp` of 3,000 requests of 1400 bytes, window 64, against `addr` (under
/// strace with `extra` when `trace` is given); its csv row's answered, lost and mismatched.
fn bench(test: &str, addr: &str, trace: Option<(&Path, &[&str])>) -> Option<(u64, u64, u64)> {
    let args = [
        "bench",
        "--proto",
        "udp",
        "--size",
        "1400",
        "--window",
        "64",
        "--count",
        "3000",
        "--timeout",
        "5s",
        "--format",
        "csv",
        addr,
    ];
    let mut cmd = match trace {
        Some((trace, extra)) => straced(test, trace, "sendmsg,sendto,recvmsg", extra, &args)?,
        None => {
            let mut cmd = Command::new(common::bin());
            cmd.args(args);
            cmd
        }
    };
    let out = common::run(cmd.stdin(Stdio::null()), b"");
    let stdout = ok(&out);
    let header: Vec<&str> = stdout.lines().next().unwrap().split(',').collect();
    let row: Vec<&str> = stdout.lines().nth(1).unwrap().split(',').collect();
    let field = |name: &str| -> u64 {
        let i = header.iter().position(|h| *h == name).expect(name);
        row[i].parse().unwrap()
    };
    assert_eq!(field("sent"), 3000, "{stdout}");
    Some((field("answered"), field("lost"), field("mismatched")))
}

/// Stops a server started under strace: SIGTERM to the server itself, so that strace sees
/// it end and writes out its whole trace before it exits too.
fn stop_traced(server: Server) {
    let children = format!("/proc/{0}/task/{0}/children", server.pid());
    let netecho = std::fs::read_to_string(children).unwrap();
    let netecho: u32 = netecho.split_whitespace().next().unwrap().parse().unwrap();
    common::signal(netecho, "TERM");
    let (status, _, stderr) = server.stop("CONT");
    assert!(status.success(), "{stderr}");
}

/// The Python peer's bursts of mixed sizes against `addr`: its verdict line.
fn bursts(test: &str, addr: &str) -> Option<String> {
    bursts_pausing(test, addr, "0")
}

/// [`bursts`], pausing `pause` seconds after the first burst.
fn bursts_pausing(test: &str, addr: &str, pause: &str) -> Option<String> {
    if !common::have("python3", test) {
        return None;
    }
    let (host, port) = addr.rsplit_once(':').unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peers/udp_bursts.py");
    let out = common::run(
        Command::new("python3").args([script, host, port, pause]),
        b"",
    );
    Some(ok(&out))
}

#[test]
fn bench_sends_requests_segmented_and_reads_replies_glued() {
    let test = "bench_sends_requests_segmented_and_reads_replies_glued";
    let dir = tempdir();
    let (server, _) = udp_server(test, None, dir.path()).unwrap();
    let trace = dir.path().join("bench.trace");
    let Some((answered, lost, mismatched)) = bench(test, &server.addr, Some((&trace, &[]))) else {
        return;
    };
    assert_eq!((answered, lost, mismatched), (3000, 0, 0));
    let trace = std::fs::read_to_string(&trace).unwrap();
    let sent = strace::with_cmsg(&trace, "sendmsg", 103);
    assert!(
        sent.iter().any(|l| strace::result(l) > 1400),
        "no request sent segmented:\n{trace}"
    );
    // A glued reply proves the server answered segmented too: loopback glues nothing itself.
    let glued = strace::with_cmsg(&trace, "recvmsg", 104);
    assert!(
        glued.iter().any(|l| strace::result(l) > 1400),
        "no reply read glued:\n{trace}"
    );
}

#[test]
fn the_server_reads_bursts_glued_and_answers_each_datagram_intact() {
    let test = "the_server_reads_bursts_glued_and_answers_each_datagram_intact";
    let dir = tempdir();
    let Some((server, trace)) = udp_server(test, Some(("recvmmsg,sendmmsg", &[])), dir.path())
    else {
        return;
    };
    let Some(verdict) = bursts(test, &server.addr) else {
        return;
    };
    assert_eq!(verdict.trim(), "ok 213");
    stop_traced(server);
    let trace = std::fs::read_to_string(&trace).unwrap();
    assert!(
        !strace::with_cmsg(&trace, "recvmmsg", 104).is_empty(),
        "no burst read glued:\n{trace}"
    );
    assert!(
        !strace::with_cmsg(&trace, "sendmmsg", 103).is_empty(),
        "no reply sent segmented:\n{trace}"
    );
}

#[test]
fn bench_without_udp_segment_sends_one_datagram_at_a_time() {
    let test = "bench_without_udp_segment_sends_one_datagram_at_a_time";
    let dir = tempdir();
    let (server, _) = udp_server(test, None, dir.path()).unwrap();
    let trace = dir.path().join("bench.trace");
    let inject: &[&str] = &["-e", "inject=sendmsg:error=EIO"];
    let Some(counts) = bench(test, &server.addr, Some((&trace, inject))) else {
        return;
    };
    assert_eq!(counts, (3000, 0, 0));
    let trace = std::fs::read_to_string(&trace).unwrap();
    let refused = strace::with_cmsg(&trace, "sendmsg", 103);
    assert_eq!(refused.len(), 1, "UDP_SEGMENT tried again after a refusal");
    let sendto = trace.lines().filter(|l| l.contains("sendto(")).count();
    assert!(sendto >= 2990, "{sendto} sendto calls for 3000 requests");
}

#[test]
fn a_server_without_udp_gro_answers_bursts_one_datagram_at_a_time() {
    let test = "a_server_without_udp_gro_answers_bursts_one_datagram_at_a_time";
    let dir = tempdir();
    // The server's setsockopt calls, in order per thread, to find UDP_GRO's.
    let Some((server, trace)) = udp_server(test, Some(("setsockopt", &[])), dir.path()) else {
        return;
    };
    stop_traced(server);
    let trace = std::fs::read_to_string(&trace).unwrap();
    let gro = trace
        .lines()
        .find(|l| l.contains("SOL_UDP"))
        .expect("no UDP_GRO setsockopt");
    let pid = gro.split_whitespace().next().unwrap();
    let nth = trace
        .lines()
        .filter(|l| l.split_whitespace().next() == Some(pid) && l.contains("setsockopt("))
        .position(|l| l == gro)
        .unwrap()
        + 1;
    let when = format!("inject=setsockopt:error=ENOPROTOOPT:when={nth}");
    let calls = Some(("setsockopt,recvmmsg", &["-e", when.as_str()][..]));
    let (server, trace) = udp_server(test, calls, dir.path()).unwrap();
    let verdict = bursts(test, &server.addr).unwrap();
    assert_eq!(verdict.trim(), "ok 213");
    let (answered, lost, mismatched) = bench(test, &server.addr, None).unwrap();
    assert_eq!((answered, lost, mismatched), (3000, 0, 0));
    stop_traced(server);
    let trace = std::fs::read_to_string(&trace).unwrap();
    assert!(
        trace.contains("ENOPROTOOPT (Protocol not available) (INJECTED)"),
        "{trace}"
    );
    assert!(
        strace::with_cmsg(&trace, "recvmmsg", 104).is_empty(),
        "read glued without UDP_GRO"
    );
}

#[test]
fn bursts_queued_while_udp_segment_is_refused_are_still_answered_datagram_by_datagram() {
    let test = "bursts_queued_while_udp_segment_is_refused_are_still_answered_datagram_by_datagram";
    let dir = tempdir();
    // The first reply's sendmmsg waits 1 s and is refused (EIO, as on a path without
    // checksum offload); the bursts sent meanwhile queue glued, and each of their datagrams
    // must still come back alone, never merged into one reply larger than its request.
    let inject: &[&str] = &["-e", "inject=sendmmsg:error=EIO:delay_enter=1000000:when=1"];
    let Some((server, trace)) = udp_server(test, Some(("sendmmsg", inject)), dir.path()) else {
        return;
    };
    let Some(verdict) = bursts_pausing(test, &server.addr, "0.3") else {
        return;
    };
    assert_eq!(verdict.trim(), "ok 213");
    stop_traced(server);
    let trace = std::fs::read_to_string(&trace).unwrap();
    assert!(trace.contains("(INJECTED)"), "{trace}");
}

#[test]
fn a_udp_upload_is_read_glued_and_arrives_whole() {
    let test = "a_udp_upload_is_read_glued_and_arrives_whole";
    let (root, local) = (tempdir(), tempdir());
    let body: Vec<u8> = (0..2_000_000u32)
        .map(|i| (i * 7 + i / 1409) as u8)
        .collect();
    let mine = local.path().join("mine");
    std::fs::write(&mine, &body).unwrap();
    let trace = local.path().join("server.trace");
    let args = [
        "serve",
        "--proto",
        "udp",
        "--addr",
        "127.0.0.1:0",
        "--files",
        root.path().to_str().unwrap(),
        "--upload",
    ];
    let Some(mut cmd) = straced(test, &trace, "recvmsg", &[], &args) else {
        return;
    };
    let server = Server::start_with(&mut cmd);
    let put = ["put", "--proto", "udp", "--window", "64", &server.addr];
    let out = common::run(
        Command::new(common::bin())
            .args(put)
            .arg(&mine)
            .arg("up.bin"),
        b"",
    );
    ok(&out);
    stop_traced(server);
    assert!(
        std::fs::read(root.path().join("up.bin")).unwrap() == body,
        "the upload differs"
    );
    let trace = std::fs::read_to_string(&trace).unwrap();
    let glued = strace::with_cmsg(&trace, "recvmsg", 104);
    assert!(
        glued.iter().any(|l| strace::result(l) > 1414),
        "no blocks read glued:\n{trace}"
    );
}
