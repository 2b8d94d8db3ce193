//! `lab` against a lab server that is not netecho's (tests/peers/fake_lab.py): it speaks the
//! control protocol, but its echo ports answer garbage or nothing, its tls port presents a
//! certificate other than the one it offers, and its account of the run claims billions of
//! other runs and of milliseconds waited. It offers what a server before tls and quic did
//! (tcp and udp), so a run against it is also a run against such a server.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::bin;

/// A whole quick lab, with a second try of a row that fails.
const RUN: Duration = common::LAB_RUN;

/// The fake lab server, killed when dropped.
struct FakeLab(Child, u16);

impl Drop for FakeLab {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn fake_lab(mode: &str) -> FakeLab {
    fake_lab_with(&[mode])
}

/// The fake lab server with its arguments (MODE, then what the mode takes).
fn fake_lab_with(args: &[&str]) -> FakeLab {
    let script = format!("{}/tests/peers/fake_lab.py", env!("CARGO_MANIFEST_DIR"));
    let mut child = Command::new("python3")
        .arg(&script)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the fake lab server");
    let mut line = String::new();
    let _ = BufReader::new(child.stdout.take().unwrap()).read_line(&mut line);
    let port = line
        .strip_prefix("ready ")
        .and_then(|p| p.trim().parse().ok())
        .unwrap_or_else(|| panic!("the fake lab server's ready line: {line:?}"));
    FakeLab(child, port)
}

fn lab(server: &FakeLab, extra: &[&str]) -> std::process::Output {
    let child = Command::new(bin())
        .arg("lab")
        .args(extra)
        .args(["--quick", &format!("127.0.0.1:{}", server.1)])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start netecho lab");
    common::output_within(child, "lab against the fake lab server", RUN)
}

#[test]
fn a_lab_server_whose_ports_do_not_echo_gets_one_error_and_no_table() {
    let out = lab(&fake_lab("garbage"), &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        out.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error")).collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(errors[0].contains("does not echo"), "{stderr}");
    // Nothing the server sent reaches the terminal.
    assert!(!stderr.contains('\u{1b}'), "{stderr}");
}

#[test]
fn loss_is_a_share_of_both_runs_and_the_servers_account_is_bounded() {
    let out = lab(&fake_lab("udp-silent"), &["--format", "json"]);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stderr}\n{stdout}");
    let doc: serde_json::Value = serde_json::from_str(&stdout).expect("json");
    let rows = doc["rows"].as_array().unwrap();
    // A server that offers tcp and udp only (as one before tls and quic did): their rows,
    // and no others, with no word of the missing ones.
    let protos: Vec<&str> = rows.iter().map(|r| r["proto"].as_str().unwrap()).collect();
    assert_eq!(protos, ["tcp", "udp"], "{doc}");
    assert!(!doc["remote"].to_string().contains("secure rows"), "{doc}");
    let udp = rows
        .iter()
        .find(|r| r["proto"] == "udp")
        .expect("a udp row");
    // Every request lost, ping-pong and load alike: all that was sent, not more.
    let (sent, lost) = (udp["sent"].as_u64().unwrap(), udp["lost"].as_u64().unwrap());
    assert!(sent > 0 && lost == sent, "{udp}");
    let p = &doc["meta"]["parameters"];
    // The server lets one run measure at once: none shared it with this one, and nobody
    // waited longer than this whole run.
    assert_eq!(p["shared_with"], 0, "{p}");
    assert!(p["most_at_once"].as_u64().unwrap() <= 1, "{p}");
    assert!(
        p["waited_ms"].as_u64().unwrap() < RUN.as_millis() as u64,
        "{p}"
    );
    assert!(
        p["measured_ms"].as_u64().unwrap() < RUN.as_millis() as u64,
        "{p}"
    );
    assert!(stderr.contains("not plausible"), "{stderr}");
}

#[test]
fn a_tls_port_whose_certificate_is_not_the_offered_one_ends_the_run_in_one_line() {
    // A real TLS echo server, whose certificate the fake's offer does not name.
    let tls = common::Server::start(&["--tls", "--addr", "127.0.0.1:0"]);
    let port = tls.port().to_string();
    let out = lab(&fake_lab_with(&["pin-mismatch", &port]), &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(out.stdout.is_empty(), "no table: {stderr}");
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error")).collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    let line = errors[0];
    assert!(
        line.contains(&format!(
            "the tls port 127.0.0.1:{port} presents a certificate"
        )),
        "{line}"
    );
    assert!(
        line.contains("other than the one the lab server offered"),
        "{line}"
    );
    // It names the certificate it met: the one the TLS server printed.
    let printed = tls.pin();
    assert!(line.contains(&printed), "{printed}: {line}");
    // Measured once: a certificate does not change on a second try.
    assert!(!stderr.contains("once more"), "{stderr}");
}

/// Stderr of a finished run, as text.
fn stderr_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn service_names_the_client_does_not_know_are_left_out_with_one_escaped_warning() {
    let dir = common::tempdir();
    let page = dir.path().join("lab.html");
    let server = fake_lab("names");
    let out = lab(&server, &["--html", page.to_str().unwrap()]);
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), stderr_of(&out));
    assert!(out.status.success(), "{stderr}\n{stdout}");
    let html = std::fs::read_to_string(&page).unwrap();
    for (what, text) in [("stdout", &*stdout), ("stderr", &*stderr), ("html", &*html)] {
        assert!(!text.contains('\u{1b}'), "{what}: {text:?}");
        assert!(!text.contains('\u{7}'), "{what}: {text:?}");
    }
    let warned: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("offers services this netecho"))
        .collect();
    assert_eq!(warned.len(), 1, "{stderr}");
    assert!(!stdout.contains("PWNED"), "{stdout}");
    assert!(!html.contains("PWNED"), "{html}");
}

#[test]
fn a_server_that_floods_queued_frames_gets_a_few_lines_not_thousands() {
    let out = lab(&fake_lab("queued"), &["--wait", "5s"]);
    let stderr = stderr_of(&out);
    let line = common::fails(&out, 1);
    assert!(line.contains("--wait"), "{line}");
    // One place at first, then one every 5 s at most as it changes (going up, with why),
    // each wrapped over two lines at most.
    let lines = stderr.lines().count();
    assert!(lines <= 12, "{lines} lines:\n{stderr}");
    let went_up = stderr.matches("(fair queueing)").count();
    assert!(went_up <= 1, "{stderr}");
}

/// A tcp port that accepts and never says a word (nc -l, a web server waiting for its
/// request), and the connections it took, counted when the test asks.
fn silent_port() -> (std::net::TcpListener, u16) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    (listener, port)
}

#[test]
fn a_port_that_accepts_and_says_nothing_is_named_with_what_to_check() {
    let (_listener, port) = silent_port();
    let child = Command::new(bin())
        .args(["lab", "--quick", &format!("127.0.0.1:{port}")])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start netecho lab");
    let out = common::output_within(child, "lab against a silent port", RUN);
    let line = common::fails(&out, 1);
    assert!(
        line.contains(&format!("127.0.0.1:{port} answered nothing in 15 s")),
        "{line}"
    );
    assert!(line.contains("not a netecho lab server"), "{line}");
    assert!(line.contains("`netecho serve --lab`"), "{line}");
}

#[test]
fn a_bad_output_path_is_said_before_the_lab_server_is_asked_for_a_turn() {
    let dir = common::tempdir();
    let (listener, port) = silent_port();
    listener.set_nonblocking(true).unwrap();
    let control = format!("127.0.0.1:{port}");
    let missing = dir.path().join("missing").join("x.html");
    let folder = dir.path().to_str().unwrap().to_string();
    for (flag, path, said) in [
        (
            "--html",
            missing.to_str().unwrap(),
            "does not exist; create it",
        ),
        (
            "--plot",
            &folder,
            "is a directory: give --plot the file's own path",
        ),
    ] {
        let out = common::netecho(&["lab", "--quick", flag, path, &control], b"");
        let line = common::fails(&out, 1);
        assert!(line.contains(&format!("{flag} {path}")), "{line}");
        assert!(line.contains(said), "{line}");
    }
    assert!(!missing.parent().unwrap().exists());
    // The lab server never heard of these runs.
    assert!(
        listener.accept().is_err(),
        "the run connected before checking"
    );
}

#[test]
fn a_server_gone_after_its_offer_is_said_to_have_gone_not_to_have_a_firewall() {
    let server = fake_lab("gone");
    let out = lab(&server, &[]);
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    // Its ports refuse (an RST from a closed port): the control connection, closed too,
    // says why, at once, and no firewall is guessed at.
    assert!(!log.contains("firewall"), "{log}");
    let line = common::fails(&out, 1);
    assert!(
        line.contains("went away in the middle of this run"),
        "{line}"
    );
}

#[test]
fn a_port_that_closes_a_runs_connections_is_that_rows_failure_and_the_rest_are_measured() {
    let server = fake_lab("full");
    let out = lab(&server, &[]);
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{log}\n{report}");
    let said = log.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(said.contains("its row is left out"), "{log}");
    assert!(report.lines().any(|l| l.starts_with("udp ")), "{report}");
    assert!(!report.lines().any(|l| l.starts_with("tcp ")), "{report}");
}

/// A lab server that answers the run's Done with an Error (its turn taken back as the run
/// finished, or a hostile server's words), or with a frame past the protocol's bounds (a
/// text of 600 bytes): the rows measured stand, printed, and what ended the run is one
/// warning, the server's words escaped and cut to 80 columns; exit 0, as when no account
/// comes. The row is a real `netecho serve`'s tcp port.
#[test]
fn an_error_in_place_of_the_account_leaves_the_rows_measured_standing() {
    let echo = common::Server::start(&["--addr", "127.0.0.1:0"]);
    let port = echo.port().to_string();
    let hostile = format!("\u{1b}]0;PWNED\u{7}\u{1b}[2Jturn over {}", "z".repeat(120));
    let long = "x".repeat(600);
    for (text, warned) in [
        (
            &hostile,
            "answered Done with an error, \"\\u{1b}]0;PWNED\\u{7}",
        ),
        (
            &long,
            "answered Done with a malformed control message (text too long)",
        ),
    ] {
        let out = lab(&fake_lab_with(&["error-after-done", &port, text]), &[]);
        let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), stderr_of(&out));
        assert!(out.status.success(), "{stderr}\n{stdout}");
        assert!(stdout.lines().any(|l| l.starts_with("tcp ")), "{stdout}");
        // The warning's lines as one, their tags left out.
        let said = stderr
            .lines()
            .map(|l| l.trim_start().trim_start_matches("WARN"))
            .flat_map(str::split_whitespace)
            .collect::<Vec<_>>()
            .join(" ");
        assert!(said.contains(warned), "{stderr}");
        assert!(said.contains("the rows measured stand"), "{stderr}");
        assert!(!said.contains("went away"), "{stderr}");
        assert!(!said.contains(&"z".repeat(100)), "{stderr}");
        assert!(
            !stderr.contains('\u{1b}') && !stderr.contains('\u{7}'),
            "{stderr:?}"
        );
        assert!(stderr.lines().all(|l| common::columns(l) <= 80), "{stderr}");
    }
}
