//! Where datagram loss comes from: bench names the cause the kernel saw, and what to change.

mod common;

use std::process::Command;
use std::sync::Mutex;

use common::{Server, bin, netecho};

/// Runs `netecho bench ARGS --format json`; returns the run and stderr. Loss is no failure
/// (bench exits 0 with it), but a reply that differs from its request is, on any run.
fn bench(args: &[&str]) -> (serde_json::Value, String) {
    let mut all = vec!["bench"];
    all.extend(args);
    all.extend(["--format", "json"]);
    let out = netecho(&all, b"");
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "bench {args:?}: exit {:?}\n{log}",
        out.status.code()
    );
    let doc: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|_| panic!("no JSON: {log}"));
    let run = doc["runs"][0].clone();
    assert_eq!(run["mismatched"], 0, "a reply differs: {run}\n{log}");
    (run, log)
}

/// The machine's UDP counters are shared: tests that read them run one at a time.
static COUNTERS: Mutex<()> = Mutex::new(());

#[test]
fn a_window_that_overflows_a_small_rcvbuf_is_named_as_the_cause() {
    let _one = COUNTERS.lock().unwrap_or_else(|e| e.into_inner());
    let server = Server::start(&["--proto", "udp", "--addr", "127.0.0.1:0"]);
    // 64 replies of 1,000 bytes at once into a receive buffer of a few datagrams.
    let (run, log) = bench(&[
        "-n",
        "3000",
        "-w",
        "64",
        "-s",
        "1000",
        "--rcvbuf",
        "4096",
        "--timeout",
        "300ms",
        &server.url(),
    ]);
    let lost = run["lost"].as_u64().unwrap();
    assert!(lost > 0, "nothing lost: {run}");
    assert_eq!(run["loss_cause"], "receive-buffer", "{run}\n{log}");
    let overflow = run["rxq_overflow"].as_u64().unwrap();
    assert!(overflow > 0 && overflow <= lost, "{run}");
    assert!(log.contains("cause: receive-buffer overflow"), "{log}");
    assert!(log.contains("a larger --rcvbuf (now 4096"), "{log}");
}

#[test]
fn pacing_with_rate_keeps_a_small_rcvbuf_from_overflowing() {
    let _one = COUNTERS.lock().unwrap_or_else(|e| e.into_inner());
    let server = Server::start(&["--proto", "udp", "--addr", "127.0.0.1:0"]);
    // The same window and buffer that overflow above, without and with the requests spaced
    // out. On a loaded machine a paced run may still lose a reply or two (bench itself waits
    // for a core while replies arrive), so the measure is the difference.
    let run_with = |rate: &[&str]| {
        let mut args = vec![
            "-n",
            "400",
            "-w",
            "64",
            "-s",
            "1000",
            "--rcvbuf",
            "4096",
            "--timeout",
            "300ms",
        ];
        args.extend_from_slice(rate);
        let url = server.url();
        args.push(&url);
        bench(&args)
    };
    let lost = |r: &serde_json::Value| r["lost"].as_u64().unwrap();
    // Up to three pairs, in turns: a core taken away from bench for a few milliseconds costs
    // a paced run a dozen replies, but broken pacing loses as much as the burst every time.
    let mut tries = Vec::new();
    let run = loop {
        let (burst, _) = run_with(&[]);
        let (run, log) = run_with(&["--rate", "1MB/s"]);
        assert!(lost(&burst) >= 20, "the unpaced run lost little: {burst}");
        if lost(&run) * 5 <= lost(&burst) {
            break run;
        }
        tries.push((lost(&burst), lost(&run)));
        assert!(
            tries.len() < 3,
            "pacing did not cut the loss fivefold in 3 tries (unpaced, paced): {tries:?}\n\
             last paced run: {run}\n{log}"
        );
    };
    // 400 kB at 1 MB/s takes about 0.4 s: the pace held.
    let elapsed = run["elapsed_s"].as_f64().unwrap_or(0.0);
    assert!(elapsed >= 0.3, "not paced: {elapsed} s\n{run}");
}

#[test]
fn loss_in_a_relay_is_seen_by_no_kernel_counter() {
    let _one = COUNTERS.lock().unwrap_or_else(|e| e.into_inner());
    let server = Server::start(&["--proto", "udp", "--addr", "127.0.0.1:0"]);
    let relay = Server::start_with(Command::new(bin()).args([
        "relay",
        "--loss",
        "up:10%",
        "udp://127.0.0.1:0",
        &server.url(),
    ]));
    let (run, log) = bench(&["-n", "500", "-w", "8", "--timeout", "300ms", &relay.url()]);
    assert!(run["lost"].as_u64().unwrap() > 0, "{run}");
    assert_eq!(run["rxq_overflow"], 0, "{run}");
    if run["rcvbuf_errors"] != 0 {
        // Another program on this machine overflowed a buffer meanwhile: the counter is shared.
        common::skip(
            "loss_in_a_relay_is_seen_by_no_kernel_counter (the cause)",
            &format!(
                "a quiet RcvbufErrors counter; another program overflowed a buffer meanwhile: {log}"
            ),
            common::Lacks::Environment,
        );
        return;
    }
    assert_eq!(run["loss_cause"], "unseen", "{run}");
    // On loopback the sentence names a relay (and a firewall), never a network or another
    // namespace.
    assert!(
        log.contains("by a relay between bench and the server"),
        "{log}"
    );
    assert!(!log.contains("real network"), "{log}");
}

#[test]
fn buffer_sizes_are_set_and_narrated() {
    let server = Server::start(&["--proto", "udp", "--addr", "127.0.0.1:0", "--rcvbuf", "64k"]);
    let out = netecho(
        &[
            "send",
            "--explain",
            "--rcvbuf",
            "32k",
            "--sndbuf",
            "16k",
            &server.url(),
            "hi",
        ],
        b"",
    );
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("SO_RCVBUF, 32768)"), "{text}");
    assert!(text.contains("SO_SNDBUF, 16384)"), "{text}");
    let line = common::fails(
        &netecho(&["send", "--rcvbuf", "lots", &server.url(), "hi"], b""),
        2,
    );
    assert!(line.contains("not a byte count"), "{line}");
}
