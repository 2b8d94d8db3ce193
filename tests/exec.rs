//! `serve --exec` and `netecho exec` through the real binary: a program per client, its
//! arguments passed literally, its output whole, its time and place bounded.

mod common;

use std::path::Path;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use common::{STEP, Server, eventually, fails, netecho, ok, tempdir};

const PROTOS: [&str; 5] = ["tcp", "udp", "unix", "unix-dgram", "unix-seqpacket"];

/// An exec server for `proto` (its socket, if any, in `dir`) running PROGRAM ARGS.
fn exec_server(proto: &str, dir: &Path, extra: &[&str], program: &[&str]) -> Server {
    let sock = dir.join(format!("{proto}.sock"));
    let addr = match proto {
        "tcp" | "udp" | "quic" => "127.0.0.1:0".to_string(),
        _ => sock.to_str().unwrap().to_string(),
    };
    let mut args = vec!["--proto", proto, "--addr", &addr];
    args.extend_from_slice(extra);
    args.push("--exec");
    args.extend_from_slice(program);
    Server::start(&args)
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn exec(server: &Server, stdin: &[u8]) -> std::process::Output {
    common::run(Command::new(common::bin()).args(exec_args(server)), stdin)
}

/// `exec URL`, and over QUIC the server's certificate pinned.
fn exec_args(server: &Server) -> Vec<String> {
    let mut args = vec!["exec".to_string(), server.url()];
    if server.proto == "quic" {
        args.extend(["--pin".to_string(), server.pin()]);
    }
    args
}

#[test]
fn tr_is_the_uppercase_service_again_over_every_transport() {
    for proto in PROTOS {
        let dir = tempdir();
        let server = exec_server(proto, dir.path(), &[], &["tr", "a-z", "A-Z"]);
        let out = exec(&server, b"hello, world\n");
        assert_eq!(ok(&out), "HELLO, WORLD\n", "{proto}");
        server.wait_log("exit status 0");
    }
}

#[test]
fn arguments_reach_the_program_literally_never_through_a_shell() {
    let dir = tempdir();
    let canary = dir.path().join("canary");
    std::fs::write(&canary, b"still here").unwrap();
    let hostile = format!("'; rm -rf {} ;'", canary.display());
    for proto in ["tcp", "unix-dgram"] {
        let server = exec_server(
            proto,
            dir.path(),
            &[],
            &["printf", "[%s]\\n", "';' rm -rf", &hostile, "$HOME", "*"],
        );
        let out = ok(&exec(&server, b""));
        assert_eq!(
            out,
            format!("[';' rm -rf]\n[{hostile}]\n[$HOME]\n[*]\n"),
            "{proto}"
        );
    }
    assert_eq!(std::fs::read(&canary).unwrap(), b"still here");
}

#[test]
fn a_megabyte_of_output_comes_back_whole_on_streams() {
    let expected = Command::new("seq").arg("180000").output().unwrap().stdout;
    assert!(
        expected.len() > 1 << 20,
        "seq gave {} bytes",
        expected.len()
    );
    for proto in ["tcp", "unix", "unix-seqpacket"] {
        let dir = tempdir();
        let server = exec_server(proto, dir.path(), &[], &["seq", "180000"]);
        let out = exec(&server, b"");
        ok(&out);
        assert!(
            out.stdout == expected,
            "{proto}: {} bytes back",
            out.stdout.len()
        );
    }
    // And a megabyte in, through cat, comes back the same.
    let input: Vec<u8> = (0..(1u32 << 20)).map(|i| (i * 7 % 251) as u8).collect();
    let dir = tempdir();
    let server = exec_server("unix", dir.path(), &[], &["cat"]);
    let out = exec(&server, &input);
    ok(&out);
    assert!(
        out.stdout == input,
        "cat returned {} bytes",
        out.stdout.len()
    );
}

#[test]
fn exit_status_and_marked_stderr_reach_the_client() {
    for proto in ["tcp", "udp", "unix-seqpacket"] {
        let dir = tempdir();
        let script = "echo out; echo oops >&2; exit 3";
        let server = exec_server(proto, dir.path(), &[], &["sh", "-c", script]);
        let out = exec(&server, b"");
        assert_eq!(out.status.code(), Some(3), "{proto}");
        assert_eq!(String::from_utf8_lossy(&out.stdout), "out\n", "{proto}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("oops"), "{proto}: {err}");
        assert!(err.contains("exit status 3"), "{proto}: {err}");
    }
}

/// Whether a process whose command line contains `needle` is running.
fn running(needle: &str) -> bool {
    let out = Command::new("pgrep").args(["-f", needle]).output().unwrap();
    out.status.success()
}

fn wait_gone(needle: &str) {
    let deadline = Instant::now() + STEP;
    while running(needle) {
        assert!(Instant::now() < deadline, "{needle} still running");
        thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_program_past_its_timeout_is_killed_and_reported() {
    // A sleep no other test runs, so pgrep finds only this one.
    let marker = "3141.5";
    for proto in ["tcp", "udp"] {
        let dir = tempdir();
        let server = exec_server(
            proto,
            dir.path(),
            &["--exec-timeout", "1s"],
            &["sleep", marker],
        );
        let started = Instant::now();
        let out = exec(&server, b"");
        assert_ne!(out.status.code(), Some(0), "{proto}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("killed") && err.contains("--exec-timeout"),
            "{err}"
        );
        // A hang guard, not a speed: the process would sleep for 1618 s.
        assert!(started.elapsed() < Duration::from_secs(60), "{proto}");
        server.wait_log("killed");
        wait_gone(&format!("^sleep {marker}$"));
    }
}

#[test]
fn a_program_that_outlives_its_connection_is_killed() {
    let marker = "2718.2";
    let dir = tempdir();
    let server = exec_server("unix", dir.path(), &[], &["sleep", marker]);
    let sock = dir.path().join("unix.sock");
    let conn = std::os::unix::net::UnixStream::connect(&sock).unwrap();
    let deadline = Instant::now() + STEP;
    while !running(&format!("^sleep {marker}$")) {
        assert!(Instant::now() < deadline, "the program never started");
        thread::sleep(Duration::from_millis(20));
    }
    drop(conn);
    wait_gone(&format!("^sleep {marker}$"));
    server.wait_log("killed");
}

#[test]
fn exec_on_a_non_loopback_address_needs_the_flag() {
    for addr in ["0.0.0.0:0", "[::]:0"] {
        let out = netecho(&["serve", "--addr", addr, "--exec", "cat"], b"");
        let line = fails(&out, 2);
        assert!(line.contains("--allow-remote-exec"), "{line}");
    }
    // With the flag it serves, and warns; the test still talks to it over loopback only.
    let server = Server::start(&[
        "--addr",
        "0.0.0.0:0",
        "--allow-remote-exec",
        "--exec",
        "tr",
        "a-z",
        "A-Z",
    ]);
    assert!(server.wait_log("WARN").contains("--allow-remote-exec"));
    let port = server.port().to_string();
    let out = netecho(&["exec", &format!("127.0.0.1:{port}")], b"abc");
    assert_eq!(ok(&out), "ABC");
}

/// Written last, a serve option would silently be the program's argument (a --deny not
/// applied, an --addr not bound): refused in one line, unless the program's ARGS say `--`.
#[test]
fn a_serve_option_after_exec_is_refused_not_passed_to_the_program() {
    for option in [
        "--deny",
        "--addr=127.0.0.1:1",
        "--proto",
        "--allow-remote-exec",
    ] {
        let args = [
            "serve",
            "--addr",
            "127.0.0.1:0",
            "--exec",
            "printf",
            "%s",
            option,
            "x",
        ];
        let line = fails(&netecho(&args, b""), 2);
        let name = option.split('=').next().unwrap();
        assert!(
            line.contains(&format!("{name} after --exec printf")),
            "{line}"
        );
        assert!(line.contains("before --exec"), "{line}");
    }
    // After a `--` the program gets them, the `--` too; after ';' they are serve's again.
    let dir = tempdir();
    let program = [
        "printf",
        "[%s]",
        "a",
        "--",
        "--deny",
        ";",
        "--max-children",
        "2",
    ];
    let server = exec_server("tcp", dir.path(), &[], &program);
    assert_eq!(ok(&exec(&server, b"")), "[a][--][--deny]");
}

#[test]
fn a_program_that_cannot_start_is_one_clear_error() {
    let line = fails(
        &netecho(
            &[
                "serve",
                "--addr",
                "127.0.0.1:0",
                "--exec",
                "/no/such/program",
            ],
            b"",
        ),
        1,
    );
    assert!(line.contains("/no/such/program"), "{line}");
}

#[test]
fn a_process_left_behind_does_not_hold_the_reply() {
    // The program ends at once, but leaves a process in a session of its own holding its
    // stdout: the client still gets the answer and the exit status without waiting for it.
    let marker = "1618.03";
    let dir = tempdir();
    // It holds stdin too, and never reads it: a megabyte of input cannot all go in. Its pid
    // goes to a file, so a failing test stops that process and no other.
    let pidfile = dir.path().join("left-behind.pid");
    let script = format!(
        "setsid sleep {marker} <&0 & echo $! > {}; echo started",
        pidfile.display()
    );
    let server = exec_server("tcp", dir.path(), &[], &["sh", "-c", &script]);
    let started = Instant::now();
    let out = exec(&server, &vec![b'x'; 1 << 20]);
    assert_eq!(ok(&out), "started\n");
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "waited for the process left behind (it sleeps for 1618 s)"
    );
    server.wait_log("exit status 0");
    let pid: u32 = std::fs::read_to_string(&pidfile)
        .expect("the script wrote the pid")
        .trim()
        .parse()
        .expect("a pid");
    // Ended by the server (see what_a_program_starts_outside_its_group_ends_with_it_too);
    // stopped here if not, and only while it is the test's sleep.
    drop(LeftBehind(vec![(pid, marker)]));
}

/// The arguments of process `pid`, empty once it is gone.
fn cmdline(pid: u32) -> Vec<String> {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .unwrap_or_default()
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect()
}

/// Whether `pid` runs: it exists and is no zombie waiting for its parent.
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        !stat
            .rsplit_once(") ")
            .is_some_and(|(_, r)| r.starts_with('Z'))
    })
}

/// The pid of the process running `program` started by the server `server_pid`.
fn program_pid(server_pid: u32, program: &[&str]) -> u32 {
    eventually(&format!("{program:?} started by the server"), || {
        std::fs::read_dir("/proc")
            .ok()?
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
            .find(|&pid| {
                let parent = std::fs::read_to_string(format!("/proc/{pid}/stat"))
                    .ok()
                    .and_then(|s| s.rsplit_once(") ")?.1.split(' ').nth(1)?.parse().ok());
                parent == Some(server_pid) && cmdline(pid) == program
            })
    })
}

/// A `Status:`-style field of /proc/PID/status, e.g. `SigBlk`.
fn status_field(pid: u32, field: &str) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status:\n{status}"))
        .trim()
        .to_string()
}

#[test]
fn a_program_can_be_stopped_by_sigterm_and_sigint_like_any_other() {
    // The server blocks SIGINT and SIGTERM for itself (it reads them from a signalfd); the
    // programs it starts must not inherit that, or `kill` and Ctrl-C could not stop them.
    for (signal, number, marker) in [("TERM", 15, "1414.2"), ("INT", 2, "1732.0")] {
        let dir = tempdir();
        let server = exec_server("unix", dir.path(), &[], &["sleep", marker]);
        let conn = std::os::unix::net::UnixStream::connect(dir.path().join("unix.sock")).unwrap();
        let pid = program_pid(server.pid(), &["sleep", marker]);
        assert_eq!(
            status_field(pid, "SigBlk"),
            "0000000000000000",
            "the program starts with signals blocked"
        );
        let ignored = u64::from_str_radix(&status_field(pid, "SigIgn"), 16).unwrap();
        assert_eq!(ignored & (1 << 1 | 1 << 14), 0, "SIGINT or SIGTERM ignored");
        common::signal(pid, signal);
        eventually(&format!("the program ended by SIG{signal}"), || {
            (!alive(pid)).then_some(())
        });
        server.wait_log(&format!("killed by signal {number}"));
        drop(conn);
    }
}

#[test]
fn exec_warnings_name_the_port_bound_not_port_0() {
    let server = Server::start(&["--addr", "[::]:0", "--allow-remote-exec", "--exec", "id"]);
    let line = server.wait_log("anyone who can reach");
    let bound = format!("[::]:{}", server.port());
    assert!(line.contains(&bound), "{line}");
    assert!(!line.contains("[::]:0 "), "{line}");
}

#[test]
fn a_udp_client_over_ipv6_gets_as_much_output_as_an_ipv6_datagram_holds() {
    // A reply is one datagram with 256 bytes kept for its frames: over IPv6, 65,527 - 256
    // bytes of output (20 more than IPv4's 65,507 would allow).
    let program = ["head", "-c", "65271", "/dev/zero"];
    let mut args = vec!["--proto", "udp", "--addr", "[::1]:0", "--exec"];
    args.extend_from_slice(&program);
    let server = Server::start(&args);
    let out = exec(&server, b"");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.stdout.len(), 65_271);
    server.wait_log("exit status 0");
}

/// The server's threads reading a program's output (named `exec-output`).
fn output_threads(server_pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{server_pid}/task"))
        .map(|tasks| {
            tasks
                .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
                .filter(|name| name.trim() == "exec-output")
                .count()
        })
        .unwrap_or(0)
}

/// Processes a test started through a server, killed at the end if still there (a failed
/// assertion included), and only while they run the test's marker.
struct LeftBehind(Vec<(u32, &'static str)>);

impl Drop for LeftBehind {
    fn drop(&mut self) {
        for &(pid, marker) in &self.0 {
            if alive(pid) && cmdline(pid) == ["sleep", marker] {
                common::signal(pid, "KILL");
            }
        }
    }
}

#[test]
fn what_a_program_leaves_running_ends_with_it() {
    // The shell ends at once; its background sleep holds the output pipe and would run on,
    // past --exec-timeout, --max-children and the server.
    let marker = "3141.59";
    let dir = tempdir();
    let server = exec_server(
        "tcp",
        dir.path(),
        &["--exec-timeout", "3s", "--max-children", "2"],
        &["sh", "-c", &format!("sleep {marker} & echo $!")],
    );
    let mut left = LeftBehind(Vec::new());
    for _ in 0..3 {
        let pid = ok(&exec(&server, b"")).trim().parse().expect("a pid");
        left.0.push((pid, marker));
    }
    for &(pid, _) in &left.0 {
        eventually(&format!("sleep {marker} (pid {pid}) ended"), || {
            (!alive(pid)).then_some(())
        });
    }
    eventually("the servers's output readers ended", || {
        (output_threads(server.pid()) == 0).then_some(())
    });
}

#[test]
fn what_a_program_starts_outside_its_group_ends_with_it_too() {
    // setsid, and a double fork into a session of their own, take sleeps out of the
    // program's process group, past the group's kill; the server, their subreaper, ends them,
    // however many one client starts. Each script prints the pids of its sleeps.
    let dir = tempdir();
    let scripts = [
        ("300", "setsid sleep 300 & echo $!".to_string()),
        // The subshell waits for the new session's shell, which prints its sleep's pid and
        // ends, so the pid is in the output before the program ends.
        (
            "301",
            "( setsid sh -c 'sleep 301 & echo $!' & wait )".to_string(),
        ),
        (
            "302",
            "for i in 1 2 3 4 5 6 7 8 9 10 11 12; do setsid sleep 302 & echo $!; done".to_string(),
        ),
    ];
    let server = exec_server("tcp", dir.path(), &[], &["sh"]);
    let mut left = LeftBehind(Vec::new());
    for (marker, script) in &scripts {
        let out = ok(&exec(&server, script.as_bytes()));
        left.0.extend(
            out.lines()
                .map(|pid| (pid.parse().expect("a pid"), *marker)),
        );
    }
    for &(pid, marker) in &left.0 {
        eventually(&format!("sleep {marker} (pid {pid}) ended"), || {
            (!alive(pid) || cmdline(pid) != ["sleep", marker]).then_some(())
        });
    }
    server.wait_log("outside its process group");
    assert_eq!(ok(&exec(&server, b"echo still serving")), "still serving\n");
    eventually("the server's output readers ended", || {
        (output_threads(server.pid()) == 0).then_some(())
    });
}

/// exec pointed at a plain echo server hears no output and no exit status, only its input
/// back (or, with none, the close): it says an echo server does that and how to start an
/// exec server.
#[test]
fn exec_at_an_echo_server_says_what_it_heard_and_how_to_start_an_exec_server() {
    let echo = Server::start(&["--addr", "127.0.0.1:0"]);
    for input in [&b""[..], b"hi\n", b"a longer line of input\n"] {
        let line = fails(&netecho(&["exec", &echo.addr], input), 255);
        assert!(line.contains("as an echo server does"), "{line}");
        assert!(line.contains("`netecho serve --exec PROGRAM`"), "{line}");
    }
}

/// exec at a `serve --files` server, and get and put at a `serve --exec` one: each client
/// knows the other service's first frame and names the command that speaks to the server,
/// with the address as it is typed (`--proto` where the address alone does not say it).
#[test]
fn exec_at_a_files_server_and_get_or_put_at_an_exec_server_name_the_command_to_use() {
    let (root, here) = (tempdir(), tempdir());
    let files = Server::start(&["--addr", "127.0.0.1:0", "--files", s(root.path())]);
    let get_there = format!("`netecho get {} NAME`", files.addr);
    for input in [&b""[..], b"hi\n", b"a longer line of input\n"] {
        let line = fails(&netecho(&["exec", &files.addr], input), 255);
        common::assert_mentions(&line, &["runs --files, not --exec", &get_there]);
    }
    let local = here.path().join("mine.txt");
    std::fs::write(&local, b"data").unwrap();
    let out = here.path().join("got.txt");
    for (proto, program) in [
        ("tcp", &["cat"][..]),
        ("tcp", &["true"]),
        ("unix-seqpacket", &["cat"]),
    ] {
        let server = exec_server(proto, here.path(), &[], program);
        let typed = match proto {
            "tcp" => server.addr.clone(),
            _ => format!("--proto {proto} {}", server.addr),
        };
        let exec_there = format!("`netecho exec {typed}`");
        let url = server.url();
        for args in [
            vec!["get", &url, "notes.txt", "-o", s(&out)],
            vec!["put", &url, s(&local)],
        ] {
            let line = fails(&netecho(&args, b""), 1);
            common::assert_mentions(&line, &["runs --exec, not --files", &exec_there]);
            assert!(!line.contains("\\u{"), "{program:?}: {line}");
        }
    }
    assert!(!out.exists());
}

/// ssh's habit, `exec HOST COMMAND ARGS`: exec takes no command, and says that the server
/// runs the program it was started with, with the two lines to type; no server is needed to
/// hear it, and a mistyped port is still told as one.
#[test]
fn exec_with_a_command_says_the_server_runs_its_own_program() {
    let cases: [(&[&str], &str, &str); 4] = [
        (&["127.0.0.1:42851", "ls", "-l"], "ls -l", "127.0.0.1:42851"),
        (&["127.0.0.1:42851", "ls"], "ls", "127.0.0.1:42851"),
        (
            &["--timeout", "5s", "127.0.0.1", "4000", "uname", "-a"],
            "uname -a",
            "127.0.0.1:4000",
        ),
        (
            &["127.0.0.1:42851", "cat", "notes.txt"],
            "cat notes.txt",
            "127.0.0.1:42851",
        ),
    ];
    for (words, program, addr) in cases {
        let mut args = vec!["exec"];
        args.extend_from_slice(words);
        let line = fails(&netecho(&args, b""), 255);
        common::assert_mentions(
            &line,
            &[
                "exec takes no command",
                &format!("`netecho serve --exec {program}`"),
                &format!("`netecho exec {addr}`"),
            ],
        );
        assert!(!line.contains("listen"), "{line}");
    }
    let line = fails(&netecho(&["exec", "127.0.0.1", "70000"], b""), 255);
    assert!(line.contains("not a port"), "{line}");
}

/// Over udp a request is one datagram: more stdin than one holds is told in one line, with
/// the limit and the transport that carries more, never the kernel's EMSGSIZE.
#[test]
fn exec_over_udp_with_more_stdin_than_a_datagram_says_the_limit() {
    let dir = tempdir();
    let server = exec_server("udp", dir.path(), &[], &["wc", "-c"]);
    for size in [70_000, 100_000] {
        let line = fails(&exec(&server, &vec![b'a'; size]), 255);
        common::assert_mentions(&line, &["one datagram", "at most 65507 bytes", "over tcp"]);
        assert!(!line.contains("os error"), "{line}");
    }
    assert_eq!(ok(&exec(&server, &[b'a'; 1000])).trim(), "1000");
}

/// --framing is the echo service's: serve refuses it with --exec or --files, whose protocols
/// frame their messages themselves, rather than ignoring it.
#[test]
fn serve_refuses_framing_with_exec_or_files() {
    let dir = tempdir();
    for service in [&["--exec", "cat"][..], &["--files", s(dir.path())]] {
        let mut args = vec!["serve", "--addr", "127.0.0.1:0", "--framing", "line"];
        args.extend_from_slice(service);
        let line = fails(&netecho(&args, b""), 2);
        common::assert_mentions(&line, &["--framing is for the echo service", service[0]]);
    }
}

/// Over a connection the server sends an empty frame every 500 ms while its program is
/// silent, so a program quiet for longer than exec's --timeout still ends with its output.
#[test]
fn a_program_quiet_past_exec_s_timeout_is_not_cut_off() {
    let dir = tempdir();
    let server = exec_server("tcp", dir.path(), &[], &["sh", "-c", "sleep 3; echo done"]);
    let out = netecho(&["exec", "--timeout", "1s", &server.addr], b"");
    assert_eq!(ok(&out), "done\n");
}

/// exec pointed at a plain stream server (one that runs the command and writes its output
/// as it is, then closes, as a lesson's ssh-like server does) says what came back instead of
/// taking the output's first bytes for a frame's length or blaming an echo server.
#[test]
fn exec_at_a_plain_stream_server_shows_its_first_bytes_and_how_to_read_them() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let plain = thread::spawn(move || {
        use std::io::{Read, Write};
        let (mut conn, _) = listener.accept().unwrap();
        let mut command = [0u8; 1024];
        let _ = conn.read(&mut command);
        conn.write_all(b"hi from server\n").unwrap();
    });
    let line = fails(&netecho(&["exec", &addr], b"echo hi from server\n"), 255);
    plain.join().unwrap();
    assert!(line.contains("not netecho's exec framing"), "{line}");
    assert!(line.contains("first bytes are b'hi f'"), "{line}");
    assert!(line.contains(&format!("`netecho send {addr}`")), "{line}");
    assert!(!line.contains("as an echo server does"), "{line}");
}

/// As PID 1 (a container's first process) every orphan of the namespace comes to the server,
/// not only what escaped a program: it says so and kills none of them, and still serves.
#[test]
fn as_pid_1_the_server_kills_no_orphan_and_says_why() {
    let test = "as_pid_1_the_server_kills_no_orphan_and_says_why";
    if !nix::unistd::Uid::effective().is_root() {
        common::skip(
            test,
            "root for a PID namespace (unshare --pid)",
            common::Lacks::Provided,
        );
        return;
    }
    let server = Server::start_with(Command::new("unshare").args([
        "--pid",
        "--fork",
        "--kill-child",
        "--mount-proc",
        common::bin(),
        "serve",
        "--addr",
        "127.0.0.1:0",
        "--exec",
        "sh",
        "-c",
        "setsid sleep 300 & echo started",
    ]));
    server.wait_log("this server is PID 1");
    let out = netecho(&["exec", &server.url()], b"");
    assert_eq!(ok(&out), "started\n");
    // The escaped sleep is the namespace's orphan: still there after a few sweeps.
    thread::sleep(Duration::from_millis(1500));
    let log = server.stderr();
    assert!(!log.contains("left running outside"), "{log}");
}

/// As ssh does: the remote program's status passes through, whatever it is, and exec's own
/// failures (no server, a bad command line, a busy or silent server) are 255, which no
/// remote `exit 1` or `exit 2` can be taken for.
#[test]
fn exec_passes_the_programs_status_through_and_fails_with_255_itself() {
    let dir = tempdir();
    let server = exec_server("tcp", dir.path(), &[], &["sh", "-c", "read n; exit $n"]);
    for code in [0, 1, 2, 124, 254] {
        let out = exec(&server, format!("{code}\n").as_bytes());
        assert_eq!(out.status.code(), Some(code), "{out:?}");
    }
    let (_held, refused) = common::refused_port("127.0.0.1");
    let line = fails(&netecho(&["exec", &refused], b""), 255);
    assert!(line.contains("refused"), "{line}");
    // Usage errors: netecho's own (a raw address) and clap's (an unknown flag).
    fails(&netecho(&["exec", "raw://127.0.0.1"], b""), 255);
    fails(&netecho(&["exec", "--no-such-flag", &refused], b""), 255);
    // Other commands keep 2 for a usage error.
    fails(&netecho(&["send", "--no-such-flag", &refused], b""), 2);
}

/// A program place is scarce (--max-children): one user of this host holds at most a quarter
/// of them, so its programs, each renewed as it ends, never keep another user's from running.
#[test]
fn one_source_holds_at_most_a_quarter_of_the_program_places() {
    let test = "one_source_holds_at_most_a_quarter_of_the_program_places";
    if !nix::unistd::Uid::effective().is_root() {
        let why = "root, to make sockets owned by nobody";
        return common::skip(test, why, common::Lacks::Provided);
    }
    let dir = tempdir();
    let allow = [
        "--allow",
        "uid:65534",
        "--allow",
        "uid:0",
        "--max-children",
        "8",
    ];
    let server = exec_server("tcp", dir.path(), &allow, &["cat"]);
    let connect = || {
        let sock = common::nobody_socket(socket2::Type::STREAM);
        common::tcp_from(sock, "127.0.0.1", &server.addr)
    };
    // Two programs of nobody's run (cat, waiting for input that never comes).
    // Accepted in turn, they take their source's places before the third comes.
    let held: Vec<std::net::TcpStream> = (0..2).map(|_| connect()).collect();
    // The third is told why, and no program starts for it.
    let mut third = connect();
    let mut told = Vec::new();
    let _ = std::io::Read::read_to_end(&mut third, &mut told);
    let told = String::from_utf8_lossy(&told);
    assert!(
        told.contains("busy: 2 connections from your user (uid 65534) on this host already"),
        "{told}"
    );
    // Root's program runs meanwhile.
    assert_eq!(ok(&exec(&server, b"mine\n")), "mine\n");
    drop(held);
}

/// A busy server (its one program place taken, --max-children 1; or the quarter of them one
/// user holds) tells a refused client so over QUIC as over tcp, a large input unread: never
/// the silence of an echo server.
#[test]
fn a_busy_exec_server_says_busy_over_quic_as_over_tcp() {
    let test = "a_busy_exec_server_says_busy_over_quic_as_over_tcp";
    let dir = tempdir();
    let input = vec![b'x'; 300_000];
    let others = common::can_switch_user();
    if !others {
        common::skip(
            &format!("{test} (the --max-children half)"),
            "root and setpriv, to run a client as another user",
            common::Lacks::Provided,
        );
    }
    for proto in ["tcp", "quic"] {
        let allow = [
            "--allow",
            "uid:0",
            "--allow",
            "uid:65534",
            "--max-children",
            "1",
        ];
        let server = exec_server(proto, dir.path(), &allow, &["cat"]);
        let held = program_held(&server);
        // The quarter of one place: this user holds it.
        let told = busy_line(&exec(&server, &input), proto);
        assert!(told.contains("busy"), "{proto}: {told}");
        if others {
            // Another user's program finds no place left.
            let mut nobody = common::as_nobody(&[]);
            nobody.args(exec_args(&server));
            let told = busy_line(&common::run(&mut nobody, &input), proto);
            assert!(
                told.contains("busy: 1 programs running (--max-children)"),
                "{proto}: {told}"
            );
        }
        drop(held);
    }
}

/// A `netecho exec` to `server` whose program runs (cat has echoed its first line), and its
/// input, open until dropped.
fn program_held(server: &Server) -> (common::Peer, std::process::ChildStdin) {
    let mut child = Command::new(common::bin())
        .args(exec_args(server))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start netecho exec");
    let mut input = child.stdin.take().unwrap();
    std::io::Write::write_all(&mut input, b"held\n").unwrap();
    let line = common::first_line(&mut child);
    let held = common::Peer(child);
    assert_eq!(line.as_deref(), Some("held\n"), "the held program's output");
    (held, input)
}

/// The one line a refused exec client says (exit 255): its warning or its error.
fn busy_line(out: &std::process::Output, proto: &str) -> String {
    assert_eq!(out.status.code(), Some(255), "{proto}: {out:?}");
    let said = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!said.contains("echo server"), "{proto}: {said}");
    said
}

/// Over a Unix socket several users may share (--allow uid:N, the file 0666), a user is one
/// source, as over TCP: nobody holds at most a quarter of the program places, and another
/// user's program runs meanwhile.
#[test]
fn over_a_unix_socket_one_user_holds_at_most_a_quarter_of_the_program_places() {
    let test = "over_a_unix_socket_one_user_holds_at_most_a_quarter_of_the_program_places";
    if !common::nobody_can_run(test) || !common::have("/usr/bin/python3", test) {
        return;
    }
    let dir = tempdir();
    let allow = ["--allow", "uid:65534", "--allow", "uid:1"];
    let server = exec_server(
        "unix",
        dir.path(),
        &[&allow[..], &["--max-children", "8"]].concat(),
        &["cat"],
    );
    common::open_to_all(&dir.path().join("unix.sock"));
    // Two of nobody's, accepted in turn before the third comes, take its places.
    let _held = common::unix_held_by(65534, &dir.path().join("unix.sock"), 2);
    let third = common::run(&mut common::as_nobody(&["exec", &server.url()]), b"mine\n");
    let told = String::from_utf8_lossy(&third.stderr);
    assert_eq!(third.status.code(), Some(255), "{told}");
    let busy = "busy: 2 connections from your user (uid 65534) on this host already";
    assert!(told.contains(busy), "{told}");
    // Another user (daemon, uid 1) runs its program meanwhile.
    let theirs = common::run(
        &mut common::as_user(1, &["exec", &server.url()]),
        b"theirs\n",
    );
    assert_eq!(ok(&theirs), "theirs\n");
}
