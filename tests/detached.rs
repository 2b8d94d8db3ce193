//! A netecho left behind by its terminal or its reader: SIGHUP (a closed terminal, a dropped
//! ssh session) stops it as SIGTERM does, cleaning up, unless it came ignored (nohup); a
//! stdout closed before a server could say where it listens; a stdin at its end.

mod common;

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use common::{Plain, Server, bin, eventually, listing, shell_status, tempdir, wait_exit};

/// `netecho ARGS` with SIGINT and SIGHUP at their default actions, or SIGHUP `ignored`.
fn netecho_cmd(args: &[&str], hup_ignored: bool) -> Command {
    let mut cmd = Command::new(bin());
    cmd.args(args);
    common::with_sigint(&mut cmd, false);
    common::with_sighup(&mut cmd, hup_ignored);
    cmd
}

/// A file server on 127.0.0.1 for `root` (uploads allowed), and a relay in front of it at
/// 1 mbit/s, so a transfer of a few megabytes is still running when the test signals it.
fn slow_file_server(root: &Path) -> (Server, Server) {
    let root = root.to_str().unwrap();
    let server = Server::start(&["--addr", "127.0.0.1:0", "--files", root, "--upload"]);
    let to = server.url();
    let relay = Server::start_with(Command::new(bin()).args([
        "relay",
        "--rate",
        "1mbit",
        "tcp://127.0.0.1:0",
        &to,
    ]));
    (server, relay)
}

/// Sends SIGHUP to `child` once `started` holds, and returns its status and stderr.
fn hang_up_when(mut child: Child, what: &str, started: impl Fn() -> bool) -> (i32, String) {
    eventually(&format!("{what} under way"), || started().then_some(()));
    common::signal(child.id(), "HUP");
    let status = wait_exit(&mut child, &format!("{what} after SIGHUP"));
    let mut log = String::new();
    let _ = std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut log);
    (shell_status(&status), log)
}

#[test]
fn a_hangup_in_the_middle_of_a_get_or_put_cleans_up_as_sigterm_does() {
    let (root, local) = (tempdir(), tempdir());
    let data: Vec<u8> = (0..4u32 << 20).map(|i| (i * 7 + i / 4099) as u8).collect();
    fs::write(root.path().join("big"), &data).unwrap();
    fs::write(local.path().join("mine"), &data).unwrap();
    let (_server, relay) = slow_file_server(root.path());
    let to = relay.addr.clone();
    let part = |dir: &Path| listing(dir).iter().any(|n| n.ends_with(".part"));

    let get = netecho_cmd(&["get", "--timeout", "60s", &to, "big", "-o", "got"], false)
        .current_dir(local.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (status, log) = hang_up_when(get, "get", || part(local.path()));
    assert_eq!(status, 129, "get: {log}");
    assert!(log.contains("SIGHUP: transfer stopped"), "get: {log}");
    assert_eq!(listing(local.path()), ["mine"], "get left its partial file");

    let mine = local.path().join("mine");
    let put = netecho_cmd(&["put", "--timeout", "60s", &to], false)
        .arg(&mine)
        .arg("up")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // put leaves nothing of its own to remove: it ends as SIGTERM ends it.
    let (status, log) = hang_up_when(put, "put", || part(root.path()));
    assert_eq!(status, 129, "put: {log}");
    assert_eq!(
        fs::read(&mine).unwrap(),
        data,
        "put changed the file it sent"
    );
    // The server removes the upload's partial file once its client is gone: the relay
    // would first pass on what it holds at 1 mbit/s, so it is stopped.
    relay.stop("TERM");
    eventually("the server's partial upload removed", || {
        (listing(root.path()) == ["big"]).then_some(())
    });
}

#[test]
fn a_hangup_stops_a_server_with_its_summary_and_removes_its_socket_file() {
    let dir = tempdir();
    let path = dir.path().join("hup.sock");
    let url = format!("unix://{}", path.display());
    let server = Server::start_with(&mut netecho_cmd(&["serve", "--addr", &url], false));
    Plain::connect("unix", path.to_str().unwrap()).exchange(b"hello");
    let (status, stdout, log) = server.stop("HUP");
    assert!(status.success(), "{status:?}\n{log}");
    assert!(
        stdout.starts_with("stopped by SIGHUP: clients 1"),
        "{stdout}"
    );
    assert!(!path.exists(), "the socket file is still there");
}

#[test]
fn a_server_started_under_nohup_keeps_serving_after_a_hangup() {
    let dir = tempdir();
    let path = dir.path().join("nohup.sock");
    let url = format!("unix://{}", path.display());
    let mut server = Server::start_with(&mut netecho_cmd(&["serve", "--addr", &url], true));
    common::signal(server.pid(), "HUP");
    // Served after the signal: a connection made after it is answered.
    Plain::connect("unix", path.to_str().unwrap()).exchange(b"still there");
    assert!(
        server.alive(),
        "SIGHUP ended a server started with it ignored"
    );
    let (status, stdout, _) = server.stop("TERM");
    assert!(status.success());
    assert!(
        stdout.starts_with("stopped by SIGTERM: clients 1"),
        "{stdout}"
    );
    assert!(!path.exists());
}

#[test]
fn a_server_that_cannot_write_its_listening_line_says_so_and_fails() {
    let dir = tempdir();
    for command in ["serve", "relay"] {
        let path = dir.path().join(format!("{command}.sock"));
        let url = format!("unix://{}", path.display());
        let args: Vec<&str> = match command {
            "serve" => vec!["serve", "--addr", &url],
            _ => vec!["relay", &url, "tcp://127.0.0.1:9"],
        };
        let stdouts: [(common::SetStdout, &str); 2] = [
            (common::with_closed_stdout, "stdout is closed (EPIPE)"),
            (common::with_full_stdout, "stdout is full (ENOSPC)"),
        ];
        for (stdout, said) in stdouts {
            let mut cmd = Command::new(bin());
            cmd.args(&args).stdin(Stdio::null()).stderr(Stdio::piped());
            let child = stdout(&mut cmd).spawn().unwrap();
            let out = common::output_within(child, command, common::STEP);
            let line = common::fails(&out, 1);
            common::assert_mentions(&line, &[said, "`listening "]);
            assert!(!line.contains("write the file"), "{command}: {line}");
            assert!(!path.exists(), "{command} left its socket file");
        }
    }
}

/// `netecho ARGS | python3 -c 'one line, then close'`, as `| head -1`: the line python3
/// read, and netecho, running on with its reader gone.
fn read_one_line_of(args: &[&str]) -> (String, Child) {
    let mut netecho = Command::new(bin())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let reader = Command::new("python3")
        .args(["-c", "import sys; print(sys.stdin.readline(), end='')"])
        .stdin(Stdio::from(netecho.stdout.take().unwrap()))
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3");
    let out = common::output_within(reader, "python3 reading one line", common::STEP);
    (String::from_utf8_lossy(&out.stdout).into_owned(), netecho)
}

/// `serve | head -1` took the `listening` line it wanted: the lines after it (the lab's,
/// the summary) find no reader, and a stop still ends as a stop does, in every server.
#[test]
fn a_server_whose_reader_left_after_the_listening_line_stops_as_usual() {
    let dir = tempdir();
    let root = dir.path().to_str().unwrap();
    let servers: [&[&str]; 4] = [
        &["serve", "--addr", "127.0.0.1:0"],
        &["serve", "--lab", "--addr", "127.0.0.1:0"],
        &["serve", "--files", root, "--addr", "127.0.0.1:0"],
        &["relay", "udp://127.0.0.1:0", "udp://127.0.0.1:9"],
    ];
    for args in servers {
        let (first, server) = read_one_line_of(args);
        assert!(first.starts_with("listening "), "{args:?}: {first:?}");
        // python3 has exited: the summary the stop writes meets a closed pipe.
        common::signal(server.id(), "TERM");
        let out = common::output_within(server, "a server whose reader left", common::STEP);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {err}");
        assert!(!err.contains("error"), "{args:?}: {err}");
    }
}

#[test]
fn a_client_whose_reader_took_one_line_ends_quietly() {
    let server = Server::start(&["--addr", "127.0.0.1:0"]);
    let lines = "a line\n".repeat(100_000);
    let input = tempdir();
    fs::write(input.path().join("in"), &lines).unwrap();
    let mut send = Command::new(bin())
        .args(["send", &server.addr])
        .stdin(fs::File::open(input.path().join("in")).unwrap())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // As `| head -1`: one line read, then the pipe closed.
    let mut first = String::new();
    BufReader::new(send.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert_eq!(first, "A LINE\n");
    let out = common::output_within(send, "send with its reader gone", common::STEP);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(!log.contains("error"), "{log}");
    // As `yes | head -1` ends: killed by SIGPIPE, 141 to a shell.
    assert_eq!(shell_status(&out.status), 141, "{log}");
}

/// CPU time, user and system, in clock ticks, that process `pid` has used.
/// How many of `pid`'s threads are running or waiting to run (state R) at this moment.
fn runnable_threads(pid: u32) -> usize {
    let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    tasks
        .filter_map(|t| fs::read_to_string(t.ok()?.path().join("stat")).ok())
        // The state follows the command's `)` (a command name may hold spaces).
        .filter(|stat| stat.rfind(") R ").is_some())
        .count()
}

/// Asserts that process `pid` stays up and idle: at 30 looks 100 ms apart, a thread runs or
/// waits to run at no more than a third of them. A loop spinning on a stdin at its end is
/// runnable at every look, however little CPU a loaded machine grants it (so no CPU time is
/// compared with the clock).
fn stays_idle(pid: u32, what: &str) {
    let mut busy = 0;
    for _ in 0..30 {
        assert!(fs::metadata(format!("/proc/{pid}")).is_ok(), "{what} ended");
        busy += usize::from(runnable_threads(pid) > 0);
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(
        busy <= 10,
        "{what} was runnable at {busy} of 30 looks: spinning?"
    );
}

/// `netecho ARGS` started with its stdin closed (`<&-`).
fn without_stdin(args: &[&str]) -> Command {
    use std::os::unix::process::CommandExt;
    let mut cmd = netecho_cmd(args, false);
    // SAFETY: close(2) is async-signal-safe. Runs after the stdio set-up, so fd 0 stays
    // closed.
    unsafe {
        cmd.pre_exec(|| {
            libc::close(0);
            Ok(())
        });
    }
    cmd
}

#[test]
fn long_running_commands_with_stdin_closed_serve_and_stay_idle() {
    let dir = tempdir();
    let server = Server::start_with(&mut without_stdin(&["serve", "--addr", "127.0.0.1:0"]));
    Plain::connect("tcp", &server.addr).exchange(b"hello");
    stays_idle(server.pid(), "serve");
    let to = server.url();
    let relay = Server::start_with(&mut without_stdin(&["relay", "tcp://127.0.0.1:0", &to]));
    Plain::connect("tcp", &relay.addr).exchange(b"through");
    stays_idle(relay.pid(), "relay");
    let lab = Server::start_with(&mut without_stdin(&[
        "serve",
        "--lab",
        "--addr",
        "127.0.0.1:0",
    ]));
    stays_idle(lab.pid(), "serve --lab");
    let sock = dir.path().join("exec.sock");
    let url = format!("unix://{}", sock.display());
    let exec = Server::start(&["--addr", &url, "--exec", "sleep", "600"]);
    let mut client = without_stdin(&["exec", &url])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let tasks = format!("/proc/{}/task", exec.pid());
    let started = || {
        fs::read_dir(&tasks).unwrap().flatten().any(|task| {
            fs::read_to_string(task.path().join("children")).is_ok_and(|c| !c.trim().is_empty())
        })
    };
    eventually("the program started", || started().then_some(()));
    stays_idle(client.id(), "exec");
    assert!(client.try_wait().unwrap().is_none(), "exec ended at once");
    common::signal(client.id(), "TERM");
    assert_eq!(shell_status(&wait_exit(&mut client, "exec")), 143);
}
