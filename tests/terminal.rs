//! What netecho writes to stderr, read on an 80-column terminal (`script` gives it one, `stty`
//! sets its width) and through a pipe: every line fits the terminal, wrapped at spaces with
//! a command kept whole, a Chinese character taking two columns; a pipe or a file still
//! gets one line per event and per error.

mod common;

use std::process::{Command, Stdio};

use common::{Server, columns, fails, netecho, screen_lines};

/// The width of the class's terminal.
const COLUMNS: usize = 80;

/// `netecho ARGS` run on an 80-column terminal: what the terminal shows, a line each.
fn on_terminal(args: &[&str]) -> Vec<String> {
    let child = Command::new("script")
        .args(["-qfec", &terminal_command(args), "/dev/null"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("script (bsdutils)");
    let out = common::output_within(child, "netecho on a terminal", common::STEP);
    screen_lines(&String::from_utf8_lossy(&out.stdout))
}

/// The shell command `script` runs: the terminal set to [`COLUMNS`], then netecho itself
/// (exec, so that it is script's child).
fn terminal_command(args: &[&str]) -> String {
    format!(
        "stty cols {COLUMNS}; exec {} {}",
        common::bin(),
        args.join(" ")
    )
}

/// Fails naming the lines wider than the terminal, in the columns it shows them in.
fn all_fit(lines: &[String]) {
    let wide: Vec<&String> = lines.iter().filter(|l| columns(l) > COLUMNS).collect();
    assert!(wide.is_empty(), "wider than {COLUMNS} columns: {wide:#?}");
}

/// The lines from the one starting with `start`, up to the next one that does not start
/// with `tag` followed by the indent of a wrapped line, joined back into one.
fn unwrapped(lines: &[String], start: &str, tag: &str) -> String {
    let first = lines
        .iter()
        .position(|l| l.starts_with(start))
        .unwrap_or_else(|| panic!("no line starts with {start:?}: {lines:#?}"));
    let indent = format!("{tag}  ");
    let mut text = lines[first].clone();
    for line in lines[first + 1..].iter() {
        let Some(rest) = line.strip_prefix(&indent) else {
            break;
        };
        text.push(' ');
        text.push_str(rest.trim_start());
    }
    text
}

/// A server `netecho ARGS` on an 80-column terminal, stopped (SIGTERM) once its screen
/// shows `until` (within 40 lines): what the terminal showed, a line each.
fn server_on_terminal(args: &[&str], until: &str) -> Vec<String> {
    let mut script = Command::new("script");
    script.args(["-qfec", &terminal_command(args), "/dev/null"]);
    let server = Server::start_with(&mut script);
    let mut screen = String::new();
    for _ in 0..40 {
        screen.push_str(&server.next_line());
        screen.push('\n');
        if screen.contains(until) {
            break;
        }
    }
    let netecho = common::child_pids(server.pid());
    assert_eq!(netecho.len(), 1, "script's children: {netecho:?}");
    common::signal(netecho[0], "TERM");
    let (_, rest, _) = server.finish();
    screen.push_str(&rest);
    screen_lines(&screen)
}

/// A server on a terminal whose start fails (its first line is not `listening`: --explain
/// narrates the calls before it) leaves nothing running: neither `script` nor the netecho
/// in the session `script` made for it.
#[test]
fn a_server_that_fails_to_start_on_a_terminal_leaves_nothing_running() {
    let dir = common::tempdir();
    let path = dir.path().join("never-listening.sock");
    let path = path.to_str().unwrap();
    let failed = std::panic::catch_unwind(|| {
        let mut script = Command::new("script");
        let args = ["serve", "--explain", "--addr", path];
        script.args(["-qfec", &terminal_command(&args), "/dev/null"]);
        Server::start_with(&mut script)
    });
    assert!(failed.is_err(), "the start should have failed");
    common::eventually("no process left with the socket's path", || {
        let running = std::fs::read_dir("/proc").unwrap().flatten().any(|p| {
            std::fs::read(p.path().join("cmdline"))
                .is_ok_and(|line| String::from_utf8_lossy(&line).contains(path))
        });
        (!running).then_some(())
    });
}

#[test]
fn serve_s_first_lines_fit_an_80_column_terminal_and_stay_one_line_each_in_a_pipe() {
    let lines = server_on_terminal(&["serve", "--addr", "127.0.0.1:0"], "model event");
    all_fit(&lines);
    let model = unwrapped(&lines, " INFO model event:", " INFO");
    assert!(model.ends_with("not a thread"), "{lines:#?}");

    // To a pipe: the same line whole, as scripts read it.
    let server = Server::start(&["--addr", "127.0.0.1:0"]);
    let log = server.wait_log("model event");
    let line = log.lines().find(|l| l.contains("model event")).unwrap();
    assert!(line.ends_with("not a thread"), "{log}");
    assert!(line.chars().count() > COLUMNS, "{line}");
}

/// `serve --lab`'s announcement: wrapped under each line's first on a terminal, one line per
/// port to a pipe (a script greps `lab tls:` for the fingerprint on the same line).
#[test]
fn the_lab_servers_announcement_wraps_on_a_terminal_and_is_one_line_each_in_a_pipe() {
    let args = ["serve", "--lab", "--addr", "127.0.0.1:0"];
    let lines = server_on_terminal(&args, "lab unix");
    all_fit(&lines);
    let tls = unwrapped(&lines, "lab tls: port ", "");
    assert!(tls.contains("certificate sha256 "), "{lines:#?}");

    // To a pipe: each port's line whole.
    let server = Server::start(&args[1..]);
    let mut piped = Vec::new();
    while !piped
        .last()
        .is_some_and(|l: &String| l.starts_with("lab unix"))
    {
        assert!(piped.len() < 40, "no end to the announcement: {piped:#?}");
        piped.push(server.next_line());
    }
    assert!(piped.iter().all(|l| l.starts_with("lab ")), "{piped:#?}");
    let tls = piped
        .iter()
        .find(|l| l.starts_with("lab tls: port "))
        .unwrap();
    assert!(tls.contains("certificate sha256 "), "{piped:#?}");
    assert!(tls.chars().count() > COLUMNS, "{tls}");
}

#[test]
fn a_client_s_error_fits_an_80_column_terminal_and_is_one_line_in_a_pipe() {
    let (_held, addr) = common::refused_port("127.0.0.1");
    let lines = on_terminal(&["send", &addr, "hi"]);
    all_fit(&lines);
    let error = unwrapped(&lines, "error: ", "");
    assert!(
        error.contains("connection refused (ECONNREFUSED)"),
        "{error}"
    );
    assert!(error.ends_with("needs --proto udp here too)"), "{lines:#?}");

    let line = fails(&netecho(&["send", &addr, "hi"], b""), 1);
    assert_eq!(line, error);
}

#[test]
fn a_habit_s_advice_fits_an_80_column_terminal_with_its_command_whole() {
    let lines = on_terminal(&["-l", "5000"]);
    all_fit(&lines);
    let advice = "`netecho serve --addr :5000`";
    assert!(lines.iter().any(|l| l.contains(advice)), "{lines:#?}");
    let error = unwrapped(&lines, "error: ", "");

    let line = fails(&netecho(&["-l", "5000"], b""), 2);
    assert_eq!(line, error);
    assert!(line.chars().count() > COLUMNS, "{line}");
}

/// A socket file's name of twenty Chinese characters: forty columns on a terminal.
const CHINESE: &str = "服务器在这个中文名字的套接字文件上听着呢";

#[test]
fn a_log_line_naming_a_chinese_socket_file_fits_80_columns_of_two_for_each_character() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(format!("{CHINESE}.sock"));
    let lines = server_on_terminal(&["serve", "--addr", path.to_str().unwrap()], "model event");
    all_fit(&lines);
    // Chinese breaks between characters, without a space: the words read back whole.
    let closing = unwrapped(&lines, " INFO SIGTERM: closing", " INFO").replace(' ', "");
    assert!(closing.ends_with(&format!("{CHINESE}.sock")), "{lines:#?}");
}

#[test]
fn an_error_naming_a_chinese_socket_file_fits_80_columns_and_is_one_line_in_a_pipe() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(format!("{CHINESE}.sock"));
    let path = path.to_str().unwrap();
    let lines = on_terminal(&["send", path, "hi"]);
    all_fit(&lines);
    let error = unwrapped(&lines, "error: ", "");
    assert!(error.replace(' ', "").contains(CHINESE), "{lines:#?}");

    let line = fails(&netecho(&["send", path, "hi"], b""), 1);
    assert!(line.contains(CHINESE), "{line}");
    assert_eq!(line.replace(' ', ""), error.replace(' ', ""));
}

/// `send --explain` over TLS: on a terminal each call's line wrapped under its `[pid N]`
/// within 80 columns, what an application_data record hides said once; through a pipe one
/// line per call, whatever its length (scripts, and the strace tests, read it so).
#[test]
fn an_explained_tls_exchange_fits_80_columns_on_a_terminal_and_is_a_line_per_call_in_a_pipe() {
    let server = Server::start(&["--tls", "--addr", "127.0.0.1:0"]);
    let pin = server.pin();
    let args = [
        "send",
        "--explain",
        "--tls",
        "--pin",
        &pin,
        &server.addr,
        "hello",
    ];
    let lines = on_terminal(&args);
    all_fit(&lines);
    assert!(lines.iter().any(|l| l == "HELLO"), "{lines:#?}");
    // Wrapped lines are indented under the call's words, never under a `[pid N]` of their own.
    let continued: Vec<&String> = lines.iter().filter(|l| l.starts_with("    ")).collect();
    assert!(!continued.is_empty(), "nothing was wrapped: {lines:#?}");
    let hides = "TLS 1.3 hides its handshake here too";
    let screen = lines
        .join(" ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    assert_eq!(screen.matches(hides).count(), 1, "{lines:#?}");

    let out = netecho(&args, b"");
    assert!(out.status.success(), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let calls: Vec<&str> = stderr.lines().filter(|l| !l.starts_with(' ')).collect();
    assert!(
        calls.iter().all(|l| l.starts_with("[pid ")),
        "a line not a call's: {stderr}"
    );
    assert!(
        calls
            .iter()
            .any(|l| columns(l) > COLUMNS && l.contains("tls ")),
        "no record's line is whole in the pipe: {stderr}"
    );
    assert_eq!(stderr.matches(hides).count(), 1, "{stderr}");
    assert!(stderr.contains("bytes: encrypted\n"), "{stderr}");
}

/// The hint of `serve --tls` with a certificate made at start: `--pin` and the fingerprint
/// to copy together, whole, on one line of an 80-column terminal.
/// A TLS server's `listening` line: on an 80-column terminal its fingerprint (95 columns)
/// comes in two halves under it, cut after a colon, the same the `--pin` hint gives; to a
/// pipe the line is whole, as scripts read it.
#[test]
fn the_listening_line_of_a_tls_server_fits_an_80_column_terminal_and_is_whole_in_a_pipe() {
    let lines = server_on_terminal(&["serve", "--tls", "--addr", "127.0.0.1:0"], "model event");
    all_fit(&lines);
    let halves: Vec<&str> = lines.iter().take(2).map(|l| l.trim()).collect();
    let fingerprint = halves.concat();
    let hint = lines
        .iter()
        .find_map(|l| l.split_once("`--pin ")?.1.split_once('`'))
        .unwrap_or_else(|| panic!("no line holds `--pin FP`: {lines:#?}"))
        .0;
    assert_eq!(fingerprint.replace(':', ""), hint, "{lines:#?}");
    assert!(halves[0].ends_with(':'), "{lines:#?}");

    let mut server = Command::new(common::bin())
        .args(["serve", "--tls", "--addr", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let line = common::first_line(&mut server);
    let _ = server.kill();
    let _ = server.wait();
    let line = line.expect("a listening line");
    let line = line.trim_end();
    let words: Vec<&str> = line.split(' ').collect();
    assert_eq!(words[..2], ["listening", "tcp"], "{line}");
    assert_eq!(words[3..5], ["tls", "sha256"], "{line}");
    assert_eq!(words[5].len(), 95, "{line}");
}

#[test]
fn the_pin_hint_keeps_the_fingerprint_whole_after_pin_on_an_80_column_terminal() {
    let lines = server_on_terminal(&["serve", "--tls", "--addr", "127.0.0.1:0"], "model event");
    all_fit(&lines);
    let hint = lines
        .iter()
        .find_map(|l| l.split_once("`--pin ")?.1.split_once('`'))
        .unwrap_or_else(|| panic!("no line holds `--pin FP`: {lines:#?}"))
        .0;
    assert!(
        hint.len() == 64 && hint.chars().all(|c| c.is_ascii_hexdigit()),
        "not a whole fingerprint: {hint:?} in {lines:#?}"
    );
}
