//! `netecho lesson`: the lesson walked on real sockets, its demonstrations, both languages,
//! 80 columns, and the pause for Enter on a terminal.

mod common;

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use common::{Server, columns, netecho, ok};

const DEMOS: [&str; 9] = [
    "empty-send",
    "short-recv",
    "sticky",
    "reset",
    "half-close",
    "reuseaddr",
    "backlog",
    "disconnect",
    "loops",
];

fn lesson(args: &[&str]) -> String {
    let mut all = vec!["lesson", "--auto"];
    all.extend_from_slice(args);
    let text = ok(&netecho(&all, b""));
    for line in text.lines() {
        assert!(columns(line) <= 80, "wider than 80 columns: {line:?}");
    }
    text
}

#[test]
fn the_whole_lesson_names_each_step_with_its_call_and_python_line() {
    let text = lesson(&[]);
    for want in [
        "server: buy a phone: socket()",
        "socket(AF_INET, SOCK_STREAM, 0) = fd ",
        "python: phone = socket.socket(socket.AF_INET, socket.SOCK_STREAM)",
        "plug in the card: bind()",
        "switch it on: listen()",
        "wait for a call: accept()",
        "python: conn, addr = phone.accept()",
        "recv(fd 5, 1024) = 5 b'hello'",
        "recv(fd 4, 1024) = 5 b'HELLO'",
        "recv(fd 5, 1024) = 0 b''",
        "switch off: close()",
    ] {
        assert!(text.contains(want), "no {want:?} in\n{text}");
    }
    let prose = text.replace('\n', " ");
    // The words a student meets first are said: a file descriptor, loopback, FIN.
    assert!(prose.contains("fd 3 is a file descriptor"), "{text}");
    assert!(
        prose.contains("loopback (127.0.0.1: this machine"),
        "{text}"
    );
    assert!(
        prose.contains("close() makes the kernel send a FIN"),
        "{text}"
    );
    let zh = lesson(&["--lang", "zh"]);
    for want in [
        "买手机：socket()",
        "插卡：bind()",
        "开机：listen()",
        "等电话：accept()",
    ] {
        assert!(zh.contains(want), "no {want:?} in\n{zh}");
    }
    assert!(zh.contains("收消息") && zh.contains("挂电话"), "{zh}");
}

#[test]
fn every_demonstration_runs_in_both_languages() {
    for demo in DEMOS {
        let en = lesson(&[demo]);
        let zh = lesson(&[demo, "--lang", "zh"]);
        assert!(en.contains("Step 1."), "{demo}: {en}");
        assert!(zh.contains("第 1 步"), "{demo}: {zh}");
        assert!(
            zh.contains("注意："),
            "{demo} has a note on other systems: {zh}"
        );
    }
}

#[test]
fn the_demonstrations_show_what_really_happened() {
    let empty = lesson(&["empty-send"]);
    assert!(empty.contains("send(fd 4, b'') = 0"), "{empty}");
    assert!(empty.contains("= -1 EAGAIN"), "tcp sends nothing: {empty}");
    let short = lesson(&["short-recv"]);
    assert!(short.contains("1024 + 976 = 2000 bytes"), "{short}");
    // The datagram's rest is gone: the second recv finds nothing, said as EAGAIN, not 0.
    let rest = short.replace('\n', " ");
    assert!(
        rest.contains("found nothing (-1, EAGAIN; Python raises BlockingIOError)"),
        "{short}"
    );
    let sticky = lesson(&["sticky"]);
    assert!(
        sticky.contains("= 10 b'helloworld'") && sticky.contains("One recv returned both")
            || sticky.contains("delivered them separately"),
        "{sticky}"
    );
    let reset = lesson(&["reset"]);
    assert!(reset.contains("= -1 ECONNRESET"), "{reset}");
    assert!(
        reset.contains("SO_LINGER says what close() does"),
        "{reset}"
    );
    let half = lesson(&["half-close"]);
    assert!(half.contains("SHUT_WR) = 0"), "{half}");
    assert!(half.contains("recv(fd 4, 1024) = 5 b'HELLO'"), "{half}");
    let reuse = lesson(&["reuseaddr"]);
    let in_use = reuse.find("= -1 EADDRINUSE").expect(&reuse);
    let success = reuse.rfind(") = 0\n  python: phone.bind").expect(&reuse);
    assert!(in_use < success, "EADDRINUSE, then success: {reuse}");
    let backlog = lesson(&["backlog"]);
    assert!(backlog.contains("listen(fd 3, 1) = 0"), "{backlog}");
    assert!(backlog.contains("(connected)"), "{backlog}");
    assert!(backlog.contains("c1.setblocking(False);"), "{backlog}");
    assert!(
        backlog.contains("python: select.select([], [c1], [], 0.2)"),
        "{backlog}"
    );
    let gone = lesson(&["disconnect"]);
    assert!(gone.contains("= 0 b''"), "{gone}");
    // b'' is the end of the peer's sending, which half-close shows without a close.
    let said = gone
        .replace("\n", " ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    assert!(
        said.contains("it closed, or shut down its sending side (netecho lesson half-close)"),
        "{gone}"
    );
    let zh = lesson(&["disconnect", "--lang", "zh"]);
    assert!(zh.contains("netecho lesson half-close"), "{zh}");
}

#[test]
fn the_loops_lesson_shows_two_messages_on_one_connection_and_a_second_client() {
    let text = lesson(&["loops"]);
    for want in [
        "# the connection loop",
        "# the communication loop",
        "b'HELLO'",
        "b'AGAIN'",
        "b'HI'",
        "backlog", // the second client waits there while the first is served
        "one client at a time",
    ] {
        assert!(text.contains(want), "no {want:?} in\n{text}");
    }
    // One accept for the two messages of client 1, a second one for client 2.
    assert_eq!(
        text.matches("conn, addr = phone.accept()").count(),
        3,
        "{text}"
    );
    let accepts: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("= fd ") && l.contains("accept("))
        .collect();
    assert_eq!(accepts.len(), 2, "{text}");
    // Client 2 connected before client 1 was done, and was answered after it left.
    let dialed = text.find("connect(fd 6").expect("client 2's connect");
    let again = text.find("b'AGAIN'").unwrap();
    let hi = text.find("b'HI'").unwrap();
    assert!(dialed < again && again < hi, "{text}");
    let walk = lesson(&[]);
    assert!(walk.contains("netecho lesson loops"), "{walk}");
}

#[test]
fn the_sticky_lesson_shows_the_cure_and_gives_commands_that_run_as_pasted() {
    let text = lesson(&["sticky"]);
    // The cure on the same connection: newline-ended messages, cut back out at each newline.
    for want in [
        "send(fd 4, b'hello\\n') = 6",
        "# msg = b'hello'",
        "# msg = b'world'",
    ] {
        assert!(text.contains(want), "no {want:?} in\n{text}");
    }
    assert!(text.contains("2 messages came out"), "{text}");
    // Each command line, as it would be pasted (a shell drops the comment).
    let commands: Vec<Vec<&str>> = text
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("netecho serve") || l.starts_with("netecho send "))
        .map(|l| {
            l.split('#')
                .next()
                .unwrap()
                .split_whitespace()
                .skip(1)
                .collect()
        })
        .collect();
    assert_eq!(commands.len(), 4, "{text}");
    let (mut server, mut replies) = (None, Vec::new());
    for args in &commands {
        if args[0] == "serve" {
            // On port 0 here, where the lesson's reader has 3234.
            let mut serve = args[1..].to_vec();
            serve.extend(["--addr", "127.0.0.1:0"]);
            server = Some(Server::start(&serve));
            continue;
        }
        let at = &server.as_ref().expect("a server before the client").addr;
        let send: Vec<&str> = args
            .iter()
            .map(|w| {
                if *w == "127.0.0.1:3234" {
                    at.as_str()
                } else {
                    w
                }
            })
            .collect();
        assert!(send.contains(&at.as_str()), "no address in {args:?}");
        replies.push(ok(&netecho(&send, b"")));
    }
    assert_eq!(replies[0].matches("HELLO").count(), 5, "{replies:?}");
    assert_eq!(replies[1], "HELLO\n".repeat(5), "one reply per line");
}

#[test]
fn the_python_names_the_socket_each_call_is_made_on() {
    // Client 2's round is on fd 6, client2 in the Python (client 1 is closed by then).
    let loops = lesson(&["loops"]);
    assert!(loops.contains("python: client2.send(b'hi')"), "{loops}");
    assert!(
        loops.contains("python: data = client2.recv(1024)"),
        "{loops}"
    );
    assert!(!loops.contains("client.send(b'hi')"), "{loops}");
    // The UDP client of short-recv is made on its own line, and its payload shown as the
    // others are.
    let short = lesson(&["short-recv"]);
    let sendto = short
        .lines()
        .find(|l| l.contains("sendto(fd "))
        .expect(&short);
    let fd = sendto.split("sendto(fd ").nth(1).unwrap();
    let fd = &fd[..fd.find(',').unwrap()];
    assert!(
        short.contains(&format!("socket(AF_INET, SOCK_DGRAM, 0) = fd {fd}\n")),
        "{short}"
    );
    assert!(
        short.contains("udp_client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)"),
        "{short}"
    );
    assert!(
        sendto.contains("b'xxxxxxxxxxxxxxxx'... (2000 bytes), 127.0.0.1:"),
        "{sendto}"
    );
    assert!(
        short.contains("python: udp_client.sendto(b'xxxxxxxxxxxxxxxx'... (2000"),
        "{short}"
    );
    // A half-close is how rsh and nc -N end a request; HTTP/1.0 ends one at its blank line.
    let half = lesson(&["half-close"]).replace('\n', " ");
    assert!(!half.contains("HTTP/1.0"), "{half}");
    assert!(half.contains("rsh, nc -N and netecho send"), "{half}");
}

#[test]
fn a_stdin_that_is_not_a_terminal_runs_through_without_waiting() {
    let text = ok(&netecho(&["lesson", "half-close"], b""));
    assert!(text.contains("Step 7."), "{text}");
    assert!(!text.contains("[Enter]"), "{text}");
}

#[test]
fn list_names_every_demonstration() {
    let text = ok(&netecho(&["lesson", "--list"], b""));
    for demo in DEMOS {
        assert!(
            text.lines().any(|l| l.starts_with(demo)),
            "{demo} not in\n{text}"
        );
    }
    let zh = ok(&netecho(&["lesson", "--list", "--lang", "zh"], b""));
    assert!(zh.contains("粘包"), "{zh}");
}

/// Collects what `script` prints until `want` appears `times` times, for at most 20 s.
fn wait_for(rx: &mpsc::Receiver<Vec<u8>>, seen: &mut String, want: &str, times: usize) -> bool {
    let deadline = Instant::now() + Duration::from_secs(20);
    while seen.matches(want).count() < times {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(chunk) => seen.push_str(&String::from_utf8_lossy(&chunk)),
            Err(_) => return false,
        }
    }
    true
}

#[test]
fn on_a_terminal_it_waits_for_enter_between_steps() {
    // `script` runs the lesson on a pseudo-terminal, so its stdin really is a terminal.
    let cmd = format!("{} lesson sticky", common::bin());
    let mut child = Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("script (bsdutils)");
    let mut out = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = out.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let mut seen = String::new();
    let waited = wait_for(&rx, &mut seen, "[Enter]", 1);
    if !waited {
        let _ = child.kill();
        let _ = child.wait();
    }
    assert!(waited, "no [Enter] prompt: {seen}");
    // Whatever comes in a moment more, the next step does not come before Enter.
    while let Ok(chunk) = rx.recv_timeout(Duration::from_millis(300)) {
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(!seen.contains("Step 2."), "went on without Enter: {seen}");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"\n").unwrap();
    let next = wait_for(&rx, &mut seen, "Step 2.", 1);
    // Enter for every step left, a bounded number of times, until it ends.
    for _ in 0..20 {
        if child.try_wait().unwrap().is_some() || stdin.write_all(b"\n").is_err() {
            break;
        }
        thread::sleep(Duration::from_millis(100));
    }
    drop(stdin);
    let status = common::wait_exit(&mut child, "the lesson under script");
    assert!(next, "Enter did not bring the next step: {seen}");
    assert!(status.success(), "{status}: {seen}");
}

#[test]
fn each_demonstration_ends_with_the_command_for_the_next() {
    for (i, demo) in DEMOS.iter().enumerate() {
        let text = lesson(&[demo]);
        let last = text.trim_end().lines().last().unwrap_or_default();
        match DEMOS.get(i + 1) {
            Some(next) => {
                let want = format!("next: netecho lesson {next}: ");
                assert!(last.starts_with(&want), "{demo}: {last:?}");
            }
            None => assert!(text.contains("That was the last one"), "{demo}: {text}"),
        }
    }
}

/// How many times each command meets a closed stdout: a run of the suite once saw 0 where
/// 141 was due.
const ROUNDS: usize = 20;

/// A reader gone before the lesson writes (`| head` that already quit) is no error worth a
/// word and no crash: SIGPIPE ends it, as it ends `yes | head -1`, every time; a full disk
/// is one line and exit 1.
#[test]
fn a_closed_or_full_stdout_ends_the_lesson_without_a_crash() {
    let cases = [
        &["lesson", "--auto"][..],
        &["lesson", "--auto", "sticky"],
        &["lesson", "--list"],
        &["completions", "bash"],
    ];
    let guard = Instant::now() + Duration::from_secs(60);
    for args in cases {
        for _ in 0..ROUNDS {
            let (status, err) = common::written_to(args, common::with_closed_stdout);
            assert_eq!(common::shell_status(&status), 141, "{args:?}: {err}");
            assert!(err.is_empty(), "{args:?}: {err}");
            if Instant::now() > guard {
                break;
            }
        }
        let (status, err) = common::written_to(args, common::with_full_stdout);
        assert_eq!(status.code(), Some(1), "{args:?}: {err}");
        assert!(err.contains("stdout is full (ENOSPC)"), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
    }
}

/// A terminal on stdin but a pipe on stdout: nobody reads the steps as they come, so the
/// lesson does not wait for Enter (and no prompt goes into the pipe).
#[test]
fn output_to_a_pipe_does_not_wait_for_enter_even_from_a_terminal() {
    let cmd = format!("{} lesson sticky | cat", common::bin());
    let child = Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("script (bsdutils)");
    let out = common::output_within(child, "the lesson piped under script", common::STEP);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("next: netecho lesson reset"), "{text}");
    assert!(!text.contains("[Enter]"), "{text}");
}
