//! `serve --sched`: the event loops' and rings' threads under the process's own policy by
//! default and SCHED_BATCH with `--sched batch`, a refusal by the kernel said once and served
//! through, and the flag refused where there are no loops to schedule.

mod common;

use std::process::Command;

use common::{Plain, Server, message};

/// SCHED_BATCH's number (sched.h), as /proc/PID/task/TID/stat's 41st field shows it.
const SCHED_BATCH: &str = "3";
const SCHED_OTHER: &str = "0";

/// The scheduling policy of each of the server's threads named `prefix`-N.
fn loop_policies(pid: u32, prefix: &str) -> Vec<String> {
    let mut policies = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let path = task.unwrap().path();
        let comm = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
        if !comm.starts_with(&format!("{prefix}-")) {
            continue;
        }
        let stat = std::fs::read_to_string(path.join("stat")).unwrap_or_default();
        // The fields after the command's closing parenthesis start at the third (state).
        let rest = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
        if let Some(policy) = rest.split_whitespace().nth(41 - 3) {
            policies.push(policy.to_string());
        }
    }
    policies
}

/// Waits until process `pid` has `threads` loop threads, each under `policy`. A loop
/// thread has its name from its first instruction and takes its policy a moment later, so
/// the wait is for both; a policy never taken fails it after [`common::STEP`], with what the
/// threads had.
fn wait_policies(pid: u32, prefix: &str, threads: usize, policy: &str) {
    let deadline = std::time::Instant::now() + common::STEP;
    loop {
        let policies = loop_policies(pid, prefix);
        if policies.len() == threads && policies.iter().all(|p| p == policy) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{threads} {prefix} threads under policy {policy}: not within {:?}; {policies:?}",
            common::STEP
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// A few clients, each a few messages, every reply checked.
fn echoes(server: &Server) {
    let clients: Vec<Plain> = (0..4)
        .map(|_| Plain::connect("tcp", &server.addr))
        .collect();
    for round in 0..3 {
        for (n, client) in clients.iter().enumerate() {
            client.exchange(&message(n, round, 512));
        }
    }
}

#[test]
fn event_loops_and_rings_run_under_sched_batch_when_asked_and_normal_by_default() {
    for model in ["event", "uring"] {
        let base = ["--model", model, "--addr", "127.0.0.1:0", "--threads", "2"];
        for (extra, policy) in [
            (&[][..], SCHED_OTHER),
            (&["--sched", "batch"][..], SCHED_BATCH),
            (&["--sched", "normal"][..], SCHED_OTHER),
        ] {
            let mut args = base.to_vec();
            args.extend_from_slice(extra);
            let server = Server::start(&args);
            wait_policies(server.pid(), model, 2, policy);
            echoes(&server);
        }
    }
}

/// Sends SIGTERM to a process when dropped.
struct Terminate(u32);

impl Drop for Terminate {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-s", "TERM", &self.0.to_string()])
            .status();
    }
}

/// Where the kernel refuses SCHED_BATCH (injected by strace: EPERM, as a seccomp filter
/// would), the server says so in one line and serves under the normal policy.
#[test]
fn a_refused_sched_batch_is_said_once_and_the_server_serves_on() {
    let test = "a_refused_sched_batch_is_said_once_and_the_server_serves_on";
    if !common::have("strace", test) {
        return;
    }
    for model in ["event", "uring"] {
        let server = Server::start_with(
            Command::new("strace")
                .args(["-f", "-qq", "-o", "/dev/null", "-e"])
                .arg("inject=sched_setscheduler:error=EPERM")
                .args([common::bin(), "serve", "--model", model, "--sched", "batch"])
                .args(["--addr", "127.0.0.1:0", "--threads", "2"]),
        );
        // The server is strace's child, and strace's end would leave it running.
        let children = format!("/proc/{0}/task/{0}/children", server.pid());
        let children = std::fs::read_to_string(children).unwrap();
        let pid = children.split_whitespace().next().unwrap().parse().unwrap();
        let _stop = Terminate(pid);
        let line = server.wait_log("refused SCHED_BATCH");
        assert!(line.contains("normal policy"), "{line}");
        echoes(&server);
        wait_policies(pid, model, 2, SCHED_OTHER);
        let log = server.stderr();
        assert_eq!(log.matches("refused SCHED_BATCH").count(), 1, "{log}");
    }
}

#[test]
fn sched_is_refused_where_no_loop_serves_connections() {
    let dir = common::tempdir();
    let dir = dir.path().to_str().unwrap();
    let cases: [(&[&str], &str); 6] = [
        (
            &["--model", "threads", "--sched", "batch"],
            "--sched applies to",
        ),
        (
            &["--model", "fork", "--sched", "normal"],
            "--sched applies to",
        ),
        (
            &["--model", "event", "--proto", "udp", "--sched", "batch"],
            "--sched applies to",
        ),
        // Files and exec are served by a thread per connection, whatever --model says.
        (&["--files", dir, "--sched", "batch"], "leave out --sched"),
        (&["--sched", "batch", "--exec", "cat"], "leave out --sched"),
        // The lab server's echo ports run as every lab run expects.
        (&["--lab", "--sched", "batch"], "--sched"),
    ];
    for (args, want) in cases {
        let mut all = vec!["serve", "--addr", "127.0.0.1:0"];
        all.extend_from_slice(args);
        let out = common::netecho(&all, b"");
        let line = common::fails(&out, 2);
        assert!(line.contains(want), "{args:?}: {line}");
        assert!(out.stdout.is_empty(), "nothing was bound: {out:?}");
    }
}
