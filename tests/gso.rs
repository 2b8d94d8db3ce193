//! UDP segmentation offload in the datagram file protocol, through the real binary: a `put`
//! over udp sends its blocks in sendmsg(2) calls that carry UDP_SEGMENT and many blocks at
//! once, and when the kernel refuses UDP_SEGMENT (strace injects the error an old kernel
//! gives), the same upload goes one datagram per block and arrives just as whole.

mod common;

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};

use common::{ok, tempdir};

/// Deterministic pseudo-random bytes (xorshift).
fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// `strace -f` with `extra` options around `netecho ARGS`, its trace in `trace`; `None`
/// (with the skip said) when strace is missing or may not trace here.
fn straced(test: &str, trace: &Path, extra: &[&str], args: &[&str]) -> Option<Command> {
    let probe = Command::new("strace")
        .args(["-f", "-qq", "-o", "/dev/null", "true"])
        .output();
    match probe {
        Err(_) => {
            let needs = "strace (Debian package strace)";
            common::skip(test, needs, common::Lacks::Provided);
            return None;
        }
        Ok(out) if !out.status.success() => {
            let why = String::from_utf8_lossy(&out.stderr).into_owned();
            let needs = format!("ptrace allowed: {why}");
            common::skip(test, &needs, common::Lacks::Environment);
            return None;
        }
        Ok(_) => {}
    }
    let mut cmd = Command::new("strace");
    cmd.args(["-f", "-qq", "-e", "trace=sendmsg,sendto", "-o"])
        .arg(trace)
        .args(extra)
        .arg(common::bin())
        .args(args);
    Some(cmd)
}

/// Uploads 2 MB over udp under strace (with `extra` options) and checks it arrived whole;
/// returns the trace.
fn upload_traced(test: &str, extra: &[&str]) -> Option<String> {
    let (root, local) = (tempdir(), tempdir());
    let body = random_bytes(2_000_000, 5);
    let mine = local.path().join("mine");
    fs::write(&mine, &body).unwrap();
    let server = common::files_server("udp", root.path(), &["--upload"]);
    let trace = local.path().join("trace");
    let args = ["put", "--proto", "udp", "--window", "64", &server.addr];
    let mut cmd = straced(test, &trace, extra, &args)?;
    cmd.arg(&mine).arg("up.bin").stdin(Stdio::null());
    let out = common::run(&mut cmd, b"");
    ok(&out);
    assert!(
        fs::read(root.path().join("up.bin")).unwrap() == body,
        "the upload differs"
    );
    Some(fs::read_to_string(&trace).unwrap())
}

#[test]
fn a_udp_upload_sends_many_blocks_per_system_call() {
    let Some(trace) = upload_traced("a_udp_upload_sends_many_blocks_per_system_call", &[]) else {
        return;
    };
    let calls = common::strace::with_cmsg(&trace, "sendmsg", 103);
    assert!(!calls.is_empty(), "no sendmsg with UDP_SEGMENT:\n{trace}");
    // The default block is 1408 bytes and a 6-byte header: more than that is two or more.
    let most = calls
        .iter()
        .map(|l| common::strace::result(l))
        .max()
        .unwrap_or(0);
    assert!(
        most > 1414,
        "no call carried two blocks (at most {most} bytes)"
    );
}

#[test]
fn a_kernel_that_refuses_udp_segment_gets_one_datagram_per_block() {
    let inject = ["-e", "inject=sendmsg:error=EIO"];
    let test = "a_kernel_that_refuses_udp_segment_gets_one_datagram_per_block";
    let Some(trace) = upload_traced(test, &inject) else {
        return;
    };
    let refused = common::strace::with_cmsg(&trace, "sendmsg", 103);
    assert_eq!(refused.len(), 1, "UDP_SEGMENT tried again after a refusal");
    assert!(refused[0].contains("EIO"), "{}", refused[0]);
    let datagrams = trace.lines().filter(|l| l.contains("sendto(")).count();
    assert!(datagrams > 1400, "{datagrams} sendto calls for 1421 blocks");
}
