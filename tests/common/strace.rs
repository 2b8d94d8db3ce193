//! Reading strace(1) output: the UDP control messages a call carried, and what it returned.

/// The lines of a trace that call `call` with a UDP control message of `kind` (103
/// UDP_SEGMENT, 104 UDP_GRO, as strace may name them or not).
pub fn with_cmsg<'t>(trace: &'t str, call: &str, kind: u32) -> Vec<&'t str> {
    let names = [
        format!("cmsg_type=0x{kind:x}"),
        if kind == 103 {
            "UDP_SEGMENT"
        } else {
            "UDP_GRO"
        }
        .to_string(),
    ];
    trace
        .lines()
        .filter(|l| l.contains(&format!("{call}(")) && l.contains("SOL_UDP"))
        .filter(|l| names.iter().any(|n| l.contains(n.as_str())))
        .collect()
}

/// The bytes a line's result says went out or came in.
pub fn result(line: &str) -> usize {
    line.rsplit("= ")
        .next()
        .and_then(|r| r.trim().parse().ok())
        .unwrap_or(0)
}

/// Attaches `strace -f` with `options` (an `-e inject=...`, say) to the running process
/// `pid`, every thread of it, and returns once all are traced; `None` (with the skip said)
/// when strace is missing or may not trace here. Killed when dropped, which detaches it.
pub fn attach(test: &str, pid: u32, options: &[&str]) -> Option<super::Peer> {
    attach_logging(test, pid, "/dev/null", options)
}

/// [`attach`], writing the trace to the file `log`.
pub fn attach_logging(test: &str, pid: u32, log: &str, options: &[&str]) -> Option<super::Peer> {
    if !super::have("strace", test) {
        return None;
    }
    let child = std::process::Command::new("strace")
        .args(["-f", "-qq", "-o", log])
        .args(options)
        .args(["-p", &pid.to_string()])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start strace");
    let mut strace = super::Peer(child);
    let deadline = std::time::Instant::now() + super::STEP;
    while !all_traced(pid) {
        if let Some(status) = strace.0.try_wait().unwrap() {
            let mut why = String::new();
            let _ = std::io::Read::read_to_string(strace.0.stderr.as_mut().unwrap(), &mut why);
            let needs = format!("ptrace allowed (strace -p: {status}: {why})");
            super::skip(test, &needs, super::Lacks::Environment);
            return None;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "strace did not attach to {pid} within {:?}",
            super::STEP
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    Some(strace)
}

/// Stops `server` (SIGTERM; it must end well) and returns the whole trace `strace` wrote to
/// `log`: strace ends with the process it traces, its trace written out.
pub fn stop_with(server: super::Server, strace: &mut super::Peer, log: &str) -> String {
    let (status, _, err) = server.stop("TERM");
    assert!(status.success(), "{err}");
    let deadline = std::time::Instant::now() + super::STEP;
    while strace.0.try_wait().unwrap().is_none() {
        assert!(
            std::time::Instant::now() < deadline,
            "strace did not end with the server"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    std::fs::read_to_string(log).unwrap()
}

/// Whether every thread of `pid` has a tracer.
fn all_traced(pid: u32) -> bool {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return false;
    };
    tasks.flatten().all(|task| {
        std::fs::read_to_string(task.path().join("status")).is_ok_and(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("TracerPid:"))
                .is_some_and(|t| t.trim() != "0")
        })
    })
}
