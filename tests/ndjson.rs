//! `bench --format ndjson`: a line per interval while the run goes on, then the summary.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Instant;

use common::{STEP, Server, bin, netecho};

#[test]
fn intervals_stream_while_the_run_goes_on_and_add_up_to_the_summary() {
    let server = Server::start(&["--addr", "127.0.0.1:0"]);
    let mut child = Command::new(bin())
        .args([
            "bench",
            "-P",
            "2",
            "-d",
            "2.5s",
            "--format",
            "ndjson",
            "--interval",
            "500ms",
        ])
        .arg(&server.addr)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let all = every_line(&mut child);
    let status = common::wait_exit_within(&mut child, "bench", STEP);
    assert!(status.success());
    intervals_add_up_to_the_summary(&all);
}

/// Every line `child` prints on stdout, each as it comes (each wait bounded), up to the end.
fn every_line(child: &mut std::process::Child) -> Vec<String> {
    // Lines come through a channel, so every wait for one is bounded.
    let (tx, lines) = mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let first = lines.recv_timeout(STEP).unwrap_or_else(|_| {
        let _ = child.kill();
        panic!("bench printed no first line within {STEP:?}")
    });
    let mut all = vec![first];
    let deadline = Instant::now() + STEP;
    loop {
        match lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(line) => all.push(line),
            Err(mpsc::RecvTimeoutError::Disconnected) => return all,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let _ = child.kill();
                panic!("bench's output did not end within {STEP:?}: {all:?}");
            }
        }
    }
}

/// The lines of a 2.5 s run of two clients, intervals of 0.5 s: five intervals at least,
/// each spanning time within the run, and a summary that stands alone and counts what
/// they sent.
fn intervals_add_up_to_the_summary(all: &[String]) {
    let objects: Vec<serde_json::Value> = all
        .iter()
        .map(|l| serde_json::from_str(l).expect("a JSON object per line"))
        .collect();
    let (summary, intervals) = objects.split_last().unwrap();
    assert!(
        objects
            .iter()
            .all(|o| o["schema"] == "netecho-bench-ndjson/3")
    );
    assert_eq!(summary["type"], "summary");
    // The summary stands alone: what ran, where and how.
    assert_eq!(
        summary["meta"]["netecho_version"],
        env!("CARGO_PKG_VERSION")
    );
    assert_eq!(summary["meta"]["parameters"]["clients"], 2, "{summary}");
    assert_eq!(
        summary["meta"]["parameters"]["interval_s"], 0.5,
        "{summary}"
    );
    assert!(intervals.len() >= 5, "{all:?}");
    let mut sent = 0;
    for (i, o) in intervals.iter().enumerate() {
        assert_eq!(o["type"], "interval");
        assert_eq!(o["interval"], i as u64, "{o}");
        assert!(o["latency_us"]["p50"].as_f64().is_some(), "{o}");
        // Every interval spans time: none reports a few replies over no time at all, and
        // none begins where the run ends (2.5 s, five intervals: an empty sixth would read
        // as an outage on a graph).
        assert!(
            o["end_s"].as_f64().unwrap() > o["start_s"].as_f64().unwrap(),
            "{o}"
        );
        assert!(o["start_s"].as_f64().unwrap() < 2.5, "{all:?}");
        sent += o["sent"].as_u64().unwrap();
    }
    assert_eq!(sent, summary["sent"].as_u64().unwrap(), "{all:?}");
    assert!(sent > 0);
}

#[test]
fn the_first_interval_comes_out_while_a_long_run_goes_on() {
    // A run of 10 minutes: a line that is written only at the run's end never comes within
    // the wait here, and a line written as its interval ends does, however slow the machine.
    let server = Server::start(&["--addr", "127.0.0.1:0"]);
    let mut child = Command::new(bin())
        .args([
            "bench",
            "-d",
            "600s",
            "--format",
            "ndjson",
            "--interval",
            "200ms",
        ])
        .arg(&server.addr)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, lines) = mpsc::channel();
    thread::spawn(move || {
        let first = BufReader::new(stdout).lines().next();
        let _ = tx.send(first);
    });
    let first = lines.recv_timeout(STEP * 2);
    let running = child.try_wait().unwrap().is_none();
    let _ = child.kill();
    let _ = child.wait();
    let first = match first {
        Ok(Some(Ok(line))) => line,
        other => panic!("no interval line within {:?}: {other:?}", STEP * 2),
    };
    assert!(running, "bench ended before its 600 s: {first}");
    let line: serde_json::Value = serde_json::from_str(&first).expect("a JSON object");
    assert_eq!(line["type"], "interval", "{line}");
    assert_eq!(line["interval"], 0, "{line}");
}

#[test]
fn an_interval_without_ndjson_is_a_usage_error() {
    let line = common::fails(
        &netecho(&["bench", "--interval", "1s", "127.0.0.1:9"], b""),
        2,
    );
    assert!(line.contains("--format ndjson"), "{line}");
    let line = common::fails(&netecho(&["lab", "--format", "ndjson"], b""), 2);
    assert!(line.contains("use --format json"), "{line}");
}

#[test]
fn a_counted_run_reports_every_interval_over_time_and_adds_up() {
    let server = Server::start(&["--addr", "127.0.0.1:0"]);
    let out = netecho(
        &[
            "bench",
            "-P",
            "2",
            "-n",
            "5000",
            "--format",
            "ndjson",
            "--interval",
            "20ms",
            &server.addr,
        ],
        b"",
    );
    let text = common::ok(&out);
    let objects: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON object per line"))
        .collect();
    let (summary, intervals) = objects.split_last().unwrap();
    assert_eq!(summary["sent"], 10000, "{text}");
    let mut sent = 0;
    for o in intervals {
        assert!(
            o["end_s"].as_f64().unwrap() > o["start_s"].as_f64().unwrap(),
            "{o}"
        );
        sent += o["sent"].as_u64().unwrap();
    }
    assert_eq!(sent, 10000, "{text}");
}

#[test]
fn a_run_stopped_by_sigterm_ends_with_its_summary_line_and_cleans_up() {
    // bench's own server (a Unix socket in a directory of its own), for 600 s.
    let tmp = common::tempdir();
    let mut child = Command::new(bin())
        .args([
            "bench", "--proto", "unix", "-d", "600s", "--format", "ndjson",
        ])
        .args(["--interval", "200ms"])
        .env("TMPDIR", tmp.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let dir = tmp.path().join(format!("netecho-{}", child.id()));
    let stdout = child.stdout.take().unwrap();
    let (tx, lines) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    // Mid-run: an interval came out.
    let first = lines.recv_timeout(STEP * 2).unwrap_or_else(|_| {
        let _ = child.kill();
        panic!("no interval line within {:?}", STEP * 2)
    });
    common::signal(child.id(), "TERM");
    let status = common::wait_exit_within(&mut child, "bench, after SIGTERM,", STEP);
    assert_eq!(status.code(), Some(143), "{status:?}");
    let mut all = vec![first];
    all.extend(lines.recv_timeout(STEP).into_iter().chain(lines.iter()));
    let summary: serde_json::Value =
        serde_json::from_str(all.last().unwrap()).expect("a JSON object");
    assert_eq!(summary["type"], "summary", "{all:?}");
    assert_eq!(summary["stopped"], "SIGTERM", "{summary}");
    assert!(summary["answered"].as_u64().unwrap() > 0, "{summary}");
    assert!(!dir.exists(), "{} was left", dir.display());
}

/// A udp server stopped past bench's 1 s loss timeout: the requests it held count as lost in
/// the interval their timeout ran out, and when their replies come late after all, no later
/// interval takes them back (it wrapped to 2^64 - 1). The intervals' lost add up to the
/// summary's lost and late together.
#[test]
fn late_replies_never_make_an_interval_s_lost_wrap() {
    let server = Server::start(&["--proto", "udp", "--addr", "127.0.0.1:0"]);
    // 10 requests a second, 40 in all: the pause, from the first interval line, falls in.
    let mut child = Command::new(bin())
        .args([
            "bench",
            "--proto",
            "udp",
            &server.addr,
            "-n",
            "40",
            "-s",
            "64",
        ])
        .args([
            "--rate",
            "5120bit",
            "--format",
            "ndjson",
            "--interval",
            "200ms",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    common::signal(server.pid(), "STOP");
    thread::sleep(std::time::Duration::from_millis(2500));
    common::signal(server.pid(), "CONT");
    // Its end first (bounded), then the lines it left in the pipe (a few kB).
    common::wait_exit_within(&mut child, "bench", STEP);
    let mut all = vec![first];
    all.extend(stdout.lines().map_while(Result::ok));
    let objects: Vec<serde_json::Value> = all
        .iter()
        .map(|l| serde_json::from_str(l).expect("a JSON object per line"))
        .collect();
    let (summary, intervals) = objects.split_last().unwrap();
    let lost: u64 = intervals.iter().map(|o| o["lost"].as_u64().unwrap()).sum();
    for o in intervals {
        assert!(o["lost"].as_u64().unwrap() <= 40, "{o}");
    }
    let timed_out = summary["lost"].as_u64().unwrap() + summary["late"].as_u64().unwrap();
    assert!(timed_out > 0, "the pause lost nothing: {summary}");
    assert_eq!(lost, timed_out, "{all:?}");
    // An interval of the pause answered nothing: no percentiles (zeros read as the fastest).
    let silent = intervals.iter().filter(|o| o["answered"] == 0).count();
    assert!(silent > 0, "no interval fell in the pause: {all:?}");
    for o in intervals {
        let answered = o["answered"].as_u64().unwrap() > 0;
        assert_eq!(o["latency_us"]["p50"].is_number(), answered, "{o}");
        assert_eq!(o["latency_us"].is_null(), !answered, "{o}");
    }
}
