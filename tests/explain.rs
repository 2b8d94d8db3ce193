//! `--explain`: the socket calls, narrated in the order each thread makes them.

mod common;

use common::{Server, netecho, ok};

/// The narrated calls in `stderr`, by name (`socket`, `bind`, ...), in order, without the
/// `[pid N]` each line starts with.
fn calls(stderr: &str) -> Vec<String> {
    stderr
        .lines()
        .filter(|l| l.contains(") = "))
        .map(|l| l.split_once("] ").map_or(l, |(_, call)| call))
        .map(|l| l.split('(').next().unwrap().trim().to_string())
        .collect()
}

/// Whether `want` appears in `got` in this order (other calls may come between).
fn in_order(got: &[String], want: &[&str]) -> bool {
    let mut it = got.iter();
    want.iter().all(|w| it.any(|g| g == w))
}

#[test]
fn a_tcp_exchange_narrates_every_call_in_order() {
    let server = Server::start(&["--explain", "--model", "threads", "--addr", "127.0.0.1:0"]);
    let out = netecho(&["send", "--explain", &server.addr, "hello"], b"");
    assert_eq!(ok(&out), "HELLO\n");
    let client = String::from_utf8_lossy(&out.stderr).into_owned();
    // --timeout bounds connect (SO_SNDTIMEO, set before it and cleared after) and the wait
    // for the reply: the socket's own timeouts, set after connect.
    assert_eq!(
        calls(&client),
        [
            "socket",
            "setsockopt",
            "connect",
            "setsockopt",
            "setsockopt",
            "setsockopt",
            "send",
            "recv",
            "close"
        ],
        "{client}"
    );
    assert!(
        client.contains("setsockopt(fd 3, SO_RCVTIMEO, 2.000s) = 0"),
        "{client}"
    );
    assert!(
        client.contains("socket(AF_INET, SOCK_STREAM, 0) = fd "),
        "{client}"
    );
    assert!(
        client.contains(&format!("connect(fd 3, {}) = 0", server.addr)),
        "{client}"
    );
    assert!(client.contains("send(fd 3, 5 bytes) = 5"), "{client}");

    let log = server.wait_log("close(fd");
    let got = calls(&log);
    assert!(
        in_order(
            &got,
            &[
                "socket",
                "setsockopt",
                "bind",
                "listen",
                "accept",
                "recv",
                "send",
                "recv",
                "close"
            ]
        ),
        "{log}"
    );
    assert!(log.contains(", SO_REUSEADDR, 1) = 0"), "{log}");
    assert!(log.contains(", 1024) = 0"), "{log}");
    assert!(log.contains("= 0 (end of stream"), "{log}");
}

/// A udp server of the threads model at `addr`, narrating its calls.
fn explained_udp(addr: &str) -> Server {
    Server::start(&[
        "--explain",
        "--model",
        "threads",
        "--proto",
        "udp",
        "--addr",
        addr,
    ])
}

#[test]
fn a_udp_exchange_shows_recvfrom_and_sendto() {
    let server = explained_udp("[::1]:0");
    let out = netecho(&["send", "--explain", &server.url(), "hello"], b"");
    assert_eq!(ok(&out), "HELLO\n");
    let client = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        in_order(
            &calls(&client),
            &["socket", "connect", "send", "setsockopt", "recv", "close"]
        ),
        "{client}"
    );
    assert!(
        client.contains("socket(AF_INET6, SOCK_DGRAM, 0)"),
        "{client}"
    );
    let log = server.wait_log("sendto(");
    assert!(
        in_order(
            &calls(&log),
            &["socket", "setsockopt", "bind", "recvfrom", "sendto"]
        ),
        "{log}"
    );
    assert!(log.contains(", IPV6_V6ONLY, 0) = 0"), "{log}");
    assert!(log.contains(", 65536) = 5 bytes from [::1]:"), "{log}");
}

/// README's example: a dual-stack wildcard server (`[::]`) and an IPv4 client. It answers
/// from the address asked (recvmsg/sendmsg with PKTINFO), and names the client as the
/// kernel gave it, an IPv4-mapped address, as strace does.
#[test]
fn a_wildcard_udp_server_narrates_pktinfo_and_the_mapped_address() {
    let server = explained_udp("[::]:0");
    let to = format!("udp://127.0.0.1:{}", server.port());
    assert_eq!(ok(&netecho(&["send", &to, "hello"], b"")), "HELLO\n");
    let log = server.wait_log("sendmsg(");
    assert!(
        log.contains(", 65536) = 5 bytes from [::ffff:127.0.0.1]:"),
        "{log}"
    );
    assert!(log.contains(" to 127.0.0.1\n"), "{log}");
    assert!(log.contains("5 bytes, [::ffff:127.0.0.1]:"), "{log}");
}

#[test]
fn without_the_flag_nothing_is_narrated() {
    let server = Server::start(&["--addr", "127.0.0.1:0"]);
    let out = netecho(&["send", &server.addr, "quiet"], b"");
    assert_eq!(ok(&out), "QUIET\n");
    assert!(!String::from_utf8_lossy(&out.stderr).contains(") = "));
    assert!(!server.stderr().contains(") = "));
}

/// What strace traces: every call `--explain` narrates, under the kernel's names.
const TRACED: &str = "trace=network,poll,ppoll,epoll_wait,epoll_pwait,epoll_ctl,close,fcntl,ioctl";

/// One call: the thread that made it, its name, and the file descriptor it was about.
#[derive(Debug, Clone, PartialEq)]
struct Call {
    tid: u32,
    name: String,
    fd: i64,
}

/// The first whole number in `text`.
fn number(text: &str) -> Option<i64> {
    let start = text.find(|c: char| c.is_ascii_digit())?;
    let digits: String = text[start..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// The narrated calls: `[pid P tid T] name(fd N, ...) = ...` (a socket's fd is its
/// result, a poll's its first fd). Calls about no fd (fork) are left out.
fn narrated(stderr: &str) -> Vec<(Call, String)> {
    let mut out = Vec::new();
    for line in stderr.lines().filter(|l| l.starts_with("[pid ")) {
        let (who, call) = line[1..].split_once("] ").unwrap();
        let ids: Vec<i64> = who.split(' ').filter_map(|w| w.parse().ok()).collect();
        let tid = *ids.last().unwrap() as u32;
        let name = call.split('(').next().unwrap().to_string();
        let fd = match name.as_str() {
            "socket" => call.split_once(" = fd ").and_then(|(_, r)| number(r)),
            "fork" => None,
            "poll" => call.split_once("([fd ").and_then(|(_, r)| number(r)),
            _ => call.split_once("(fd ").and_then(|(_, r)| number(r)),
        };
        if let Some(fd) = fd {
            out.push((Call { tid, name, fd }, line.to_string()));
        }
    }
    out
}

/// strace -f's lines: `TID name(FD, ...) = R`, a call still blocked as `<unfinished ...>`
/// (its resumption is left out: the call was counted where it began).
fn traced(strace: &str) -> Vec<Call> {
    let mut out = Vec::new();
    for line in strace.lines() {
        let Some((tid, call)) = line.split_once(' ') else {
            continue;
        };
        let (Ok(tid), Some((name, args))) = (tid.parse(), call.trim_start().split_once('(')) else {
            continue;
        };
        let fd = match name {
            "socket" => call.rsplit_once(" = ").and_then(|(_, r)| number(r)),
            "poll" | "ppoll" => args.split_once("fd=").and_then(|(_, r)| number(r)),
            // `close(5 <unfinished ...>`: the fd is the first word.
            _ => args
                .split([',', ')', ' '])
                .next()
                .and_then(|a| a.parse().ok()),
        };
        if let Some(fd) = fd {
            let name = name.to_string();
            out.push(Call { tid, name, fd });
        }
    }
    out
}

/// The system calls a narrated name may be made with (glibc's send is sendto, ...).
fn syscalls(name: &str) -> Vec<&str> {
    match name {
        "send" => vec!["sendto", "send"],
        "recv" => vec!["recvfrom", "recv"],
        "accept" => vec!["accept4", "accept"],
        "poll" => vec!["poll", "ppoll"],
        "epoll_wait" => vec!["epoll_wait", "epoll_pwait"],
        "fcntl" => vec!["fcntl", "ioctl"],
        other => vec![other],
    }
}

/// Checks every narrated call against strace's: per thread, in the same order, on the
/// same fd (strace may show more: calls netecho does not narrate).
fn same_calls(stderr: &str, strace: &str) {
    let traced = traced(strace);
    let said = narrated(stderr);
    assert!(!said.is_empty(), "nothing narrated:\n{stderr}");
    let mut at: std::collections::HashMap<u32, usize> = Default::default();
    for (call, line) in &said {
        let names = syscalls(&call.name);
        let mine: Vec<&Call> = traced.iter().filter(|c| c.tid == call.tid).collect();
        let from = at.get(&call.tid).copied().unwrap_or(0);
        let found = mine[from.min(mine.len())..]
            .iter()
            .position(|c| names.contains(&c.name.as_str()) && c.fd == call.fd);
        match found {
            Some(i) => at.insert(call.tid, from + i + 1),
            None => panic!(
                "narrated {line:?}, but strace shows no {names:?} on fd {} in thread {} \
                 after the calls before it:\n{strace}\nnarration:\n{stderr}",
                call.fd, call.tid
            ),
        };
    }
}

/// strace -f on `args`, its trace in `file`; `None` (with the skip said) when strace is
/// missing or may not trace here.
fn strace(test: &str, file: &std::path::Path) -> Option<std::process::Command> {
    let probe = std::process::Command::new("strace")
        .args(["-f", "-qq", "-o", "/dev/null", "true"])
        .output();
    match probe {
        Err(_) => {
            common::skip(
                test,
                "strace (Debian package strace)",
                common::Lacks::Provided,
            );
            return None;
        }
        Ok(out) if !out.status.success() => {
            let why = String::from_utf8_lossy(&out.stderr).into_owned();
            common::skip(
                test,
                &format!("ptrace allowed: {why}"),
                common::Lacks::Environment,
            );
            return None;
        }
        Ok(_) => {}
    }
    let mut cmd = std::process::Command::new("strace");
    cmd.args(["-f", "-qq", "-e", TRACED, "-o"])
        .arg(file)
        .arg(common::bin());
    Some(cmd)
}

/// Starts `netecho serve ARGS --explain` under strace; stops it with SIGTERM (sent to
/// netecho, whose pid its narration gives) and returns its narration and its trace.
fn traced_server(
    test: &str,
    args: &[&str],
    client: impl FnOnce(&Server),
) -> Option<(String, String)> {
    let dir = common::tempdir();
    let file = dir.path().join("server.strace");
    let mut cmd = strace(test, &file)?;
    cmd.args(["serve", "--explain"]).args(args);
    let mut server = Server::start_with(&mut cmd);
    client(&server);
    let first = server.wait_log("[pid ");
    let pid = first.split("[pid ").nth(1).and_then(number).unwrap();
    let killed = std::process::Command::new("kill")
        .args(["-s", "TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    // Its whole narration: strace ends with it, and the pipe is read to its end.
    let (_, log) = server.wait_exit();
    let trace = std::fs::read_to_string(&file).unwrap();
    Some((log, trace))
}

/// Runs `netecho ARGS` under strace: its output and its trace.
fn traced_client(test: &str, args: &[&str]) -> Option<(std::process::Output, String)> {
    traced_client_with(test, args, b"")
}

/// Runs `netecho ARGS` under strace with `stdin` piped in: its output and its trace.
fn traced_client_with(
    test: &str,
    args: &[&str],
    stdin: &[u8],
) -> Option<(std::process::Output, String)> {
    let dir = common::tempdir();
    let file = dir.path().join("client.strace");
    let mut cmd = strace(test, &file)?;
    let out = common::run(cmd.args(args), stdin);
    Some((out, std::fs::read_to_string(&file).unwrap()))
}

/// Checks that every call named in `names` that strace saw is narrated, as many times on
/// each fd: the narration leaves none of them out.
fn none_left_out(stderr: &str, strace: &str, names: &[&str]) {
    let said = narrated(stderr);
    for name in names {
        let mut seen: Vec<i64> = traced(strace)
            .into_iter()
            .filter(|c| c.name == *name)
            .map(|c| c.fd)
            .collect();
        let mut told: Vec<i64> = said
            .iter()
            .filter(|(c, _)| syscalls(&c.name).contains(name))
            .map(|(c, _)| c.fd)
            .collect();
        seen.sort_unstable();
        told.sort_unstable();
        assert_eq!(
            told, seen,
            "{name}: narrated on these fds, strace on those:\n{strace}\nnarration:\n{stderr}"
        );
    }
}

#[test]
fn the_narration_of_client_and_threads_server_matches_strace_call_by_call() {
    let test = "the_narration_of_client_and_threads_server_matches_strace_call_by_call";
    let mut client_side = None;
    let Some((log, trace)) = traced_server(
        test,
        &["--model", "threads", "--addr", "127.0.0.1:0"],
        |server| {
            client_side = traced_client(test, &["send", "--explain", &server.addr, "hello"]);
            server.wait_log("close(fd 5)");
        },
    ) else {
        return;
    };
    let (out, client_trace) = client_side.unwrap();
    assert_eq!(ok(&out), "HELLO\n");
    same_calls(&String::from_utf8_lossy(&out.stderr), &client_trace);
    same_calls(&log, &trace);
    assert!(log.contains(" tid "), "a thread per connection: {log}");
}

#[test]
fn an_unconnected_udp_client_matches_strace_with_sendto_and_recvfrom() {
    let test = "an_unconnected_udp_client_matches_strace_with_sendto_and_recvfrom";
    let server = Server::start(&[
        "--model",
        "threads",
        "--proto",
        "udp",
        "--addr",
        "127.0.0.1:0",
    ]);
    let args = ["send", "--explain", "--unconnected", &server.url(), "hello"];
    let Some((out, trace)) = traced_client(test, &args) else {
        return;
    };
    assert_eq!(ok(&out), "HELLO\n");
    let said = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        calls(&said),
        ["socket", "sendto", "setsockopt", "recvfrom", "close"],
        "{said}"
    );
    same_calls(&said, &trace);
}

#[test]
fn the_event_server_narrates_epoll_wait_and_eagain() {
    let test = "the_event_server_narrates_epoll_wait_and_eagain";
    let Some((log, trace)) = traced_server(test, &["--addr", "127.0.0.1:0"], |server| {
        let out = netecho(&["send", &server.addr, "hello"], b"");
        assert_eq!(ok(&out), "HELLO\n");
        server.wait_log("(end of stream)");
    }) else {
        return;
    };
    assert!(log.contains(": a connection to accept)"), "{log}");
    assert!(
        log.lines()
            .any(|l| l.contains("epoll_wait(fd ") && l.ends_with(" readable)")),
        "what woke the wait: {log}"
    );
    assert!(log.contains("accept(fd 4) = -1 EAGAIN"), "{log}");
    // Each socket joins the epoll set once (the listener shared, one waker at a time) and
    // leaves it before its close.
    assert!(
        log.contains("EPOLL_CTL_ADD, fd 4, EPOLLIN|EPOLLEXCLUSIVE) = 0"),
        "{log}"
    );
    assert!(log.contains("EPOLL_CTL_DEL, fd "), "{log}");
    same_calls(&log, &trace);
    none_left_out(&log, &trace, &["epoll_ctl"]);
}

#[test]
fn under_fork_each_line_names_its_process() {
    let server = Server::start(&["--explain", "--model", "fork", "--addr", "127.0.0.1:0"]);
    let out = netecho(&["send", &server.addr, "hello"], b"");
    assert_eq!(ok(&out), "HELLO\n");
    server.wait_log("(end of stream)");
    // The parent says its fork once fork returns there, which may be after the child's
    // whole exchange.
    let log = server.wait_log("fork() = pid ");
    let fork = log
        .lines()
        .find(|l| l.contains("fork() = pid "))
        .expect(&log);
    let child = fork.split("fork() = pid ").nth(1).and_then(number).unwrap();
    let parent = number(fork).unwrap();
    assert_ne!(parent, child);
    assert!(
        log.contains(&format!("[pid {child}] recv(fd 5, 65536) = 5 bytes")),
        "the child's recv: {log}"
    );
    // The parent closes its copy after the fork in its own time: its line may come after
    // the child's, whose exchange ran meanwhile.
    server.wait_log(&format!("[pid {parent}] close(fd 5) = 0"));
}

#[test]
fn the_words_fit_the_socket() {
    let server = Server::start(&["--explain", "--model", "threads", "--addr", "127.0.0.1:0"]);
    let out = netecho(&["send", &server.addr, ""], b"");
    let warning = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(warning.contains("sends nothing at all"), "{warning}");
    assert!(!warning.contains("end of connection"), "{warning}");
    let out = netecho(&["send", "--explain", &server.addr, "bye"], b"");
    assert_eq!(ok(&out), "BYE\n");
    let log = server.wait_log("(end of stream)");
    assert!(!log.contains("empty message"), "tcp has no messages: {log}");
    let out = netecho(&["send", "--unconnected", &server.addr, "x"], b"");
    let refused = common::fails(&out, 2);
    assert!(
        refused.contains("--unconnected is for udp and unix-dgram"),
        "{refused}"
    );
}

#[test]
fn the_fork_servers_narration_matches_strace_in_parent_and_child() {
    let test = "the_fork_servers_narration_matches_strace_in_parent_and_child";
    let Some((log, trace)) = traced_server(
        test,
        &["--model", "fork", "--addr", "127.0.0.1:0"],
        |server| {
            let out = netecho(&["send", &server.addr, "hello"], b"");
            assert_eq!(ok(&out), "HELLO\n");
            server.wait_log("(end of stream)");
        },
    ) else {
        return;
    };
    assert!(log.contains("fork() = pid "), "{log}");
    same_calls(&log, &trace);
}

#[test]
fn piped_input_narrates_the_half_close_and_the_connect_timeout_as_strace_sees_them() {
    let test = "piped_input_narrates_the_half_close_and_the_connect_timeout_as_strace_sees_them";
    let server = Server::start(&["--addr", "127.0.0.1:0"]);
    let args = ["send", "--explain", &server.addr];
    let Some((out, trace)) = traced_client_with(test, &args, b"a\nb\n") else {
        return;
    };
    assert_eq!(ok(&out), "A\nB\n");
    let said = String::from_utf8_lossy(&out.stderr).into_owned();
    same_calls(&said, &trace);
    // Every shutdown and setsockopt strace saw is narrated: the half-close the server reads
    // as its end of stream, and SO_SNDTIMEO, set to bound connect and cleared after it.
    none_left_out(&said, &trace, &["shutdown", "setsockopt"]);
    assert!(
        said.contains("SHUT_WR) = 0 (a FIN: the peer's recv returns 0, end of stream)"),
        "{said}"
    );
    // The writer thread sends and shuts down; the reader receives and closes: each thread's
    // lines in order (a thread's line may come late beside the other's on a loaded machine).
    let writer = [
        "socket",
        "setsockopt",
        "connect",
        "setsockopt",
        "send",
        "shutdown",
    ];
    assert!(in_order(&calls(&said), &writer), "{said}");
    let reader = ["socket", "connect", "recv", "close"];
    assert!(in_order(&calls(&said), &reader), "{said}");
    assert!(said.contains(", SO_SNDTIMEO, 0 (none)) = 0"), "{said}");
}
