//! Every bad input gets one clear error line naming the bad part, and the right exit code:
//! 2 for a mistake on the command line, 1 for a failure at run time. Servers and clients
//! are the real binary; peers the test needs are real kernel sockets.

mod common;

use std::fs;
use std::net::UdpSocket;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::time::{Duration, Instant};

use common::netns::Pair;
use common::{
    Server, as_nobody, assert_mentions, fails, files_server, netecho, nobody_can_run, ok, run,
    tempdir,
};

const UNIX_PROTOS: [&str; 3] = ["unix", "unix-dgram", "unix-seqpacket"];

/// The error line of `netecho ARGS`, asserting exit `code` and that it is the only one.
fn error_of(args: &[&str], code: i32) -> String {
    fails(&netecho(args, b""), code)
}

fn show(path: &Path) -> String {
    path.to_str().expect("temp paths are UTF-8").to_string()
}

#[test]
fn unparsable_addresses_are_usage_errors_that_name_the_bad_part() {
    for cmd in [&["send"][..], &["serve", "--addr"][..]] {
        let with = |addr: &str| {
            let mut args = cmd.to_vec();
            args.push(addr);
            if cmd[0] == "send" {
                args.push("x");
            }
            error_of(&args, 2)
        };
        let line = with("ho st:5");
        assert_mentions(&line, &["'ho st'", "not an IP address or a host name"]);
        let line = with("127.0.0.1:99999");
        assert_mentions(&line, &["bad port '99999'", "0 to 65535"]);
        let line = with("127.0.0.1:http");
        assert_mentions(&line, &["bad port 'http'"]);
        let line = with("[::1:5");
        assert_mentions(&line, &["'[::1:5'", "[IPv6]:PORT"]);
        let line = with("");
        assert_mentions(&line, &["empty address"]);
    }
}

#[test]
fn unknown_protocols_are_usage_errors() {
    // In a URL: netecho's own message, listing what exists.
    let line = error_of(&["send", "sctp://127.0.0.1:5", "x"], 2);
    assert_mentions(
        &line,
        &["unknown protocol 'sctp'", "tcp, udp, unix, unix-dgram"],
    );
    let line = error_of(&["serve", "--addr", "sctp://127.0.0.1:0"], 2);
    assert_mentions(&line, &["unknown protocol 'sctp'"]);
    // As --proto: clap's own error.
    for args in [
        &["send", "--proto", "sctp", "127.0.0.1:5", "x"][..],
        &["serve", "--proto", "sctp", "--addr", "127.0.0.1:0"][..],
    ] {
        let out = netecho(args, b"");
        let line = fails(&out, 2);
        assert_mentions(&line, &["'sctp'", "--proto"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("possible values"), "{stderr}");
    }
}

/// The whole of stderr for a usage error: exit 2 (exec: 255, its own failures' status) and
/// exactly one line, "error: ...".
fn one_line(args: &[&str]) -> String {
    let out = netecho(args, b"");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let code = if args.first() == Some(&"exec") {
        255
    } else {
        2
    };
    assert_eq!(out.status.code(), Some(code), "netecho {args:?}: {stderr}");
    assert_eq!(stderr.lines().count(), 1, "netecho {args:?}:\n{stderr}");
    assert!(stderr.starts_with("error: "), "netecho {args:?}: {stderr}");
    assert!(out.stdout.is_empty(), "netecho {args:?}");
    stderr.trim_end().to_string()
}

/// A newline or an escape sequence typed in an argument is shown escaped, on the one line.
#[test]
fn what_was_typed_is_shown_escaped_on_one_line() {
    for args in [
        &["serve", "--bogus\nsecond line"][..],
        &["serve", "--max-conns", "1\x1b[31m"],
        &["serve", "--transform", "up\nper"],
    ] {
        let line = one_line(args);
        assert!(!line.contains('\x1b'), "{line:?}");
    }
    // netecho's own refusals (not clap's) too: exit 2 for a bad address.
    let line = one_line(&["serve", "--addr", "a\nb"]);
    assert!(line.contains("'a\\nb'"), "{line}");
}

#[test]
fn clap_usage_errors_are_one_line_naming_the_subcommand_s_help() {
    for sub in common::SUBCOMMANDS {
        // Between the two, a tip of clap's where it has one (send: `-- --bogus`).
        let line = one_line(&[sub, "--bogus"]);
        let start = format!("error: unexpected argument '--bogus' for 'netecho {sub}'");
        let end = format!("; see 'netecho {sub} --help'");
        assert!(line.starts_with(&start) && line.ends_with(&end), "{line}");
    }
    assert_eq!(
        one_line(&["serve", "--bogus"]),
        "error: unexpected argument '--bogus' for 'netecho serve'; see 'netecho serve --help'"
    );
    assert_eq!(
        one_line(&["--bogus"]),
        "error: unexpected argument '--bogus' for 'netecho'; see 'netecho --help'"
    );
}

/// Each kind of usage error, and what its one line keeps of clap's suggestions.
const CLAP_CASES: &[(&[&str], &[&str])] = &[
    (
        &["send", "--proto", "tcpp", "x"],
        &[
            "invalid value 'tcpp' for 'netecho send --proto'",
            "a similar value exists: 'tcp'",
            "possible values: tcp, udp, unix, unix-dgram, unix-seqpacket, raw, quic",
            "see 'netecho send --help'",
        ],
    ),
    (
        &["lab", "--quik"],
        &[
            "'--quik' for 'netecho lab'",
            "a similar flag exists: '--quick'",
        ],
    ),
    (
        &["sned", "127.0.0.1:9", "x"],
        &[
            "'sned'",
            "a similar subcommand exists: 'send'",
            "'netecho --help'",
        ],
    ),
    (
        &["serve", "4000"],
        &[
            "unexpected argument '4000' for 'netecho serve'",
            "`netecho serve --addr 4000`",
        ],
    ),
    (
        &["get"],
        &[
            "needs <ADDR> and <NAME>",
            "usage: netecho get <ADDR> <NAME>",
        ],
    ),
    (
        &["serve", "--model"],
        &[
            "'netecho serve --model' needs a value",
            "iterative, threads",
        ],
    ),
    (
        &["bench", "--clients", "abc", "127.0.0.1:9"],
        &[
            "'abc'",
            "--clients",
            "not a whole number",
            "'netecho bench --help'",
        ],
    ),
    (
        &["send", "--timeout", "5", "127.0.0.1:9", "x"],
        &["'5'", "write 5ms or 5s", "'netecho send --help'"],
    ),
    (
        &["serve", "--tls", "--tls"],
        &[
            "'--tls' cannot be used multiple times",
            "'netecho serve --help'",
        ],
    ),
    (
        &["completions", "zsh2"],
        &[
            "'zsh2'",
            "a similar value exists: 'zsh'",
            "'netecho completions --help'",
        ],
    ),
];

/// Each kind of usage error keeps what clap suggests, on the one line.
#[test]
fn clap_usage_errors_keep_clap_s_suggestions() {
    for (args, parts) in CLAP_CASES {
        let line = one_line(args);
        assert_mentions(&line, parts);
    }
}

#[test]
fn help_and_version_still_print_to_stdout_and_exit_0() {
    for sub in common::SUBCOMMANDS {
        let run = netecho(&[sub, "--help"], b"");
        assert!(run.stderr.is_empty(), "{sub} --help wrote to stderr");
        let out = ok(&run);
        assert!(out.contains(&format!("Usage: netecho {sub}")), "{out}");
    }
    let out = ok(&netecho(&["--version"], b""));
    assert!(out.starts_with("netecho "), "{out}");
}

#[test]
fn an_address_of_the_wrong_kind_for_the_protocol_is_a_usage_error() {
    let dir = tempdir();
    let sock = show(&dir.path().join("x.sock"));
    for proto in ["tcp", "udp"] {
        let line = error_of(&["send", "--proto", proto, &sock, "x"], 2);
        assert_mentions(
            &line,
            &[&sock, "Unix socket address", proto, "--proto unix"],
        );
        let line = error_of(&["serve", "--proto", proto, "--addr", &sock], 2);
        assert_mentions(&line, &[&sock, "Unix socket address", proto]);
    }
    for proto in UNIX_PROTOS {
        let line = error_of(&["send", "--proto", proto, "127.0.0.1:5", "x"], 2);
        assert_mentions(&line, &["'127.0.0.1:5'", "is an IP address", proto]);
        let line = error_of(&["serve", "--proto", proto, "--addr", "[::1]:0"], 2);
        assert_mentions(&line, &["'[::1]:0'", "is an IP address", proto]);
    }
    // A URL and --proto that disagree.
    let line = error_of(&["send", "--proto", "tcp", "udp://127.0.0.1:5", "x"], 2);
    assert_mentions(&line, &["says udp", "--proto says tcp"]);
    assert!(
        !dir.path().join("x.sock").exists(),
        "nothing may be created for a rejected address"
    );
}

#[test]
fn tcp_and_udp_port_in_use_names_the_address_and_suggests_port_0() {
    for proto in ["tcp", "udp"] {
        let first = Server::start(&["--proto", proto, "--addr", "127.0.0.1:0"]);
        let line = error_of(&["serve", "--proto", proto, "--addr", &first.addr], 1);
        assert_mentions(
            &line,
            &[
                &format!("bind {proto} {}", first.addr),
                "EADDRINUSE",
                "pick another port, or port 0",
            ],
        );
        // The first server was not disturbed.
        assert_eq!(
            ok(&netecho(&["send", &first.url(), "still"], b"")),
            "STILL\n"
        );
    }
}

#[test]
fn a_privileged_port_without_permission_says_what_is_needed() {
    let test = "a_privileged_port_without_permission_says_what_is_needed";
    let start = fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start")
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok());
    match start {
        Some(port) if port >= 1024 => {}
        other => {
            common::skip(
                test,
                &format!(
                    "net.ipv4.ip_unprivileged_port_start >= 1024 (here {other:?}: anyone may \
                     bind port 80)"
                ),
                common::Lacks::Environment,
            );
            return;
        }
    }
    if !nobody_can_run(test) {
        return;
    }
    for proto in ["tcp", "udp"] {
        let out = run(
            &mut as_nobody(&["serve", "--proto", proto, "--addr", "127.0.0.1:80"]),
            b"",
        );
        let line = fails(&out, 1);
        assert_mentions(
            &line,
            &[
                &format!("{proto} 127.0.0.1:80"),
                "EACCES",
                "ports below 1024 need root or CAP_NET_BIND_SERVICE",
            ],
        );
    }
}

#[test]
fn a_unix_path_longer_than_sun_path_is_a_usage_error() {
    let dir = tempdir();
    // sun_path holds 108 bytes with the terminating NUL: 107 is the longest path.
    let base = show(dir.path()) + "/";
    let of_len = |len: usize| format!("{base}{}", "p".repeat(len - base.len()));
    let too_long = of_len(108);
    let abstract_too_long = format!("@{}", "a".repeat(107));
    for proto in UNIX_PROTOS {
        for addr in [&too_long, &abstract_too_long] {
            let line = error_of(&["serve", "--proto", proto, "--addr", addr], 2);
            assert_mentions(&line, &[addr, "at most 107", "@abstract"]);
            let line = error_of(&["send", "--proto", proto, addr, "x"], 2);
            assert_mentions(&line, &[addr, "at most 107"]);
        }
        assert!(!Path::new(&too_long).exists());
    }
    // The longest path that fits works.
    let longest = of_len(107);
    let server = Server::start(&["--proto", "unix", "--addr", &longest]);
    assert_eq!(ok(&netecho(&["send", &longest, "fits"], b"")), "FITS\n");
    drop(server);
}

#[test]
fn a_missing_directory_is_named() {
    let dir = tempdir();
    let missing = dir.path().join("no").join("such");
    let path = show(&missing.join("x.sock"));
    for proto in UNIX_PROTOS {
        let line = error_of(&["serve", "--proto", proto, "--addr", &path], 1);
        assert_mentions(
            &line,
            &[&format!("directory {} does not exist", show(&missing))],
        );
    }
    assert!(!missing.exists(), "netecho must not create directories");
}

#[test]
fn a_file_where_the_path_needs_a_directory_is_named() {
    let dir = tempdir();
    let file = dir.path().join("notes.txt");
    fs::write(&file, "precious\n").unwrap();
    let path = show(&file.join("x.sock"));
    for proto in UNIX_PROTOS {
        let line = error_of(&["serve", "--proto", proto, "--addr", &path], 1);
        assert_mentions(&line, &[&format!("{} is not a directory", show(&file))]);
    }
    assert_eq!(fs::read_to_string(&file).unwrap(), "precious\n");
}

#[test]
fn a_directory_without_write_permission_is_named() {
    let test = "a_directory_without_write_permission_is_named";
    if !nobody_can_run(test) {
        return;
    }
    let dir = tempdir();
    // tempfile makes 0700 directories: nobody could not even look inside. 0755 lets nobody
    // reach the directory but not create a file in it, which is the case under test.
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let path = dir.path().join("x.sock");
    for proto in UNIX_PROTOS {
        let out = run(
            &mut as_nobody(&["serve", "--proto", proto, "--addr", &show(&path)]),
            b"",
        );
        let line = fails(&out, 1);
        assert_mentions(
            &line,
            &[
                "permission denied",
                &format!("you may not create files in {}", show(dir.path())),
            ],
        );
        assert!(!path.exists());
    }
}

#[test]
fn a_live_server_behind_the_socket_file_is_left_serving() {
    let dir = tempdir();
    for proto in UNIX_PROTOS {
        let path = show(&dir.path().join(format!("{proto}.sock")));
        let first = Server::start(&["--proto", proto, "--addr", &path]);
        let line = error_of(&["serve", "--proto", proto, "--addr", &path], 1);
        assert_mentions(&line, &["already listening", &path]);
        // A server of another type at that path is refused too, and says so.
        let other = if proto == "unix" {
            "unix-dgram"
        } else {
            "unix"
        };
        let line = error_of(&["serve", "--proto", other, "--addr", &path], 1);
        assert_mentions(&line, &["another socket type", &path]);
        // The first server still has its file and still serves.
        let out = netecho(&["send", "--proto", proto, &path, "still here"], b"");
        assert_eq!(ok(&out), "STILL HERE\n", "{proto}");
        drop(first);
    }
}

#[test]
fn an_abstract_name_in_use_is_refused() {
    for proto in UNIX_PROTOS {
        let name = common::abstract_name(&format!("taken-{proto}"));
        let first = Server::start(&["--proto", proto, "--addr", &name]);
        let line = error_of(&["serve", "--proto", proto, "--addr", &name], 1);
        assert_mentions(&line, &[&name, "EADDRINUSE", "already has this name"]);
        let out = netecho(&["send", "--proto", proto, &name, "still"], b"");
        assert_eq!(ok(&out), "STILL\n", "{proto}");
        drop(first);
    }
}

#[test]
fn a_stale_socket_file_is_replaced() {
    let dir = tempdir();
    for proto in UNIX_PROTOS {
        let path = dir.path().join(format!("stale-{proto}.sock"));
        // A socket file whose socket is closed: what a killed server leaves behind.
        drop(UnixListener::bind(&path).unwrap());
        assert!(path.exists());
        let server = Server::start(&["--proto", proto, "--addr", &show(&path)]);
        let log = server.wait_log("stale");
        assert!(log.contains(&show(&path)), "{log}");
        let out = netecho(&["send", "--proto", proto, &show(&path), "fresh"], b"");
        assert_eq!(ok(&out), "FRESH\n", "{proto}");
    }
}

#[test]
fn what_is_not_a_socket_is_refused_and_left_untouched() {
    let dir = tempdir();
    let file = dir.path().join("notes.txt");
    fs::write(&file, "precious\n").unwrap();
    let subdir = dir.path().join("subdir");
    fs::create_dir(&subdir).unwrap();
    fs::write(subdir.join("inside"), "also precious\n").unwrap();
    let link = dir.path().join("link");
    std::os::unix::fs::symlink(&file, &link).unwrap();
    for proto in UNIX_PROTOS {
        for path in [&file, &subdir, &link] {
            let line = error_of(&["serve", "--proto", proto, "--addr", &show(path)], 1);
            assert_mentions(&line, &[&show(path), "is not a socket"]);
        }
        assert_eq!(fs::read_to_string(&file).unwrap(), "precious\n");
        assert!(fs::metadata(&subdir).unwrap().is_dir());
        assert_eq!(
            fs::read_to_string(subdir.join("inside")).unwrap(),
            "also precious\n"
        );
        assert!(fs::symlink_metadata(&link).unwrap().is_symlink());
        assert_eq!(fs::read_link(&link).unwrap(), file);
    }
}

#[test]
fn a_stale_socket_file_of_another_user_is_left_to_its_owner() {
    let test = "a_stale_socket_file_of_another_user_is_left_to_its_owner";
    if !nix::unistd::Uid::effective().is_root() {
        common::skip(
            test,
            "root to own a socket file as another user",
            common::Lacks::Provided,
        );
        return;
    }
    let dir = tempdir();
    let path = dir.path().join("theirs.sock");
    drop(UnixListener::bind(&path).unwrap());
    std::os::unix::fs::chown(&path, Some(65534), Some(65534)).unwrap();
    for proto in UNIX_PROTOS {
        let line = error_of(&["serve", "--proto", proto, "--addr", &show(&path)], 1);
        assert_mentions(
            &line,
            &[&show(&path), "owned by uid 65534", "remove it yourself"],
        );
        assert!(fs::symlink_metadata(&path).is_ok(), "{proto}: removed");
    }
}

/// A loopback udp port with nothing bound to it: bound by the test, then closed.
fn closed_udp_port(ip: &str) -> u16 {
    UdpSocket::bind((ip, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn tcp_connection_refused_names_the_address() {
    for ip in ["127.0.0.1", "::1"] {
        let (_held, addr) = common::refused_port(ip);
        let line = error_of(&["send", &addr, "x"], 1);
        assert_mentions(
            &line,
            &[
                &format!("connect tcp {addr}"),
                "ECONNREFUSED",
                "nothing is listening",
            ],
        );
        // Loopback is this machine: a server bound to 127.0.0.1 would have answered.
        assert!(!line.contains("127.0.0.1 only"), "{line}");
    }
}

/// serve binds 127.0.0.1 unless told: it says so once, and a client on another machine,
/// refused, hears that a server bound to loopback only refuses it.
#[test]
fn a_loopback_only_server_says_so_and_a_refused_client_elsewhere_hears_of_it() {
    let server = Server::start(&["--addr", "127.0.0.1:0"]);
    let port = server.port();
    let (_, _, stderr) = server.stop("TERM");
    let note = format!("only this machine can reach it; --addr :{port} (or [::]:{port})");
    assert_eq!(stderr.matches(&note).count(), 1, "{stderr}");
    let line = stderr.lines().find(|l| l.contains(&note)).unwrap();
    assert!(
        line.contains("INFO") && line.chars().count() <= 80,
        "{line}"
    );
    let server = Server::start(&["--addr", ":0"]);
    let (_, _, stderr) = server.stop("TERM");
    assert!(!stderr.contains("only this machine"), "{stderr}");

    let test = "a_loopback_only_server_says_so_and_a_refused_client_elsewhere_hears_of_it";
    let Some(pair) = Pair::new("lbo", test) else {
        return;
    };
    let server = Server::start_with(&mut pair.server_cmd(&["serve", "--addr", "127.0.0.1:4100"]));
    let addr = format!("{}:4100", Pair::SERVER_V4);
    let line = fails(&run(&mut pair.client_cmd(&["send", &addr, "hi"]), b""), 1);
    assert_mentions(&line, &["ECONNREFUSED", "a server bound to 127.0.0.1 only"]);
    drop(server);
}

#[test]
fn a_tcp_get_refused_by_a_files_server_is_told_of_proto_udp() {
    let dir = tempdir();
    fs::write(dir.path().join("f"), b"x").unwrap();
    let server = files_server("udp", dir.path(), &[]);
    let out = dir.path().join("out");
    let line = error_of(&["get", &server.addr, "f", "-o", out.to_str().unwrap()], 1);
    assert_mentions(&line, &["ECONNREFUSED", "--proto udp"]);
    assert!(!line.contains("bound to 127.0.0.1"), "{line}");
}

#[test]
fn unix_clients_name_a_missing_path_and_a_stale_socket_file() {
    let dir = tempdir();
    let missing = show(&dir.path().join("missing.sock"));
    let stale = dir.path().join("stale.sock");
    drop(UnixListener::bind(&stale).unwrap());
    let stale = show(&stale);
    for proto in UNIX_PROTOS {
        let line = error_of(&["send", "--proto", proto, &missing, "x"], 1);
        assert_mentions(&line, &[&missing, "ENOENT", "no socket file there"]);
        let line = error_of(&["send", "--proto", proto, &stale, "x"], 1);
        assert_mentions(
            &line,
            &[&stale, "ECONNREFUSED", "nothing is listening on it"],
        );
    }
}

#[test]
fn unix_clients_say_what_a_path_is_when_it_is_not_a_socket() {
    let dir = tempdir();
    let file = dir.path().join("notes.txt");
    fs::write(&file, "not a socket\n").unwrap();
    for proto in UNIX_PROTOS {
        for (path, what) in [
            (&file, "is a regular file"),
            (&dir.path().to_path_buf(), "is a directory"),
        ] {
            let path = show(path);
            let line = error_of(&["send", "--proto", proto, &path, "x"], 1);
            assert_mentions(&line, &[&path, what, "not a socket", "listening line"]);
            assert!(!line.contains("left behind"), "{line}");
        }
    }
}

#[test]
fn an_abstract_name_nobody_holds_has_no_file_to_blame() {
    let name = common::abstract_name("nobody-holds");
    for proto in UNIX_PROTOS {
        let line = error_of(&["send", "--proto", proto, &name, "x"], 1);
        assert_mentions(
            &line,
            &[&format!("no server holds the abstract name {name}")],
        );
        assert!(!line.contains("file"), "{line}");
    }
}

/// A client of the wrong Unix type is told the server's, at an abstract name (where the
/// kernel says ECONNREFUSED) and at a path (EPROTOTYPE) alike.
#[test]
fn a_unix_socket_held_by_another_socket_type_names_the_servers_proto() {
    let dir = tempdir();
    for served in UNIX_PROTOS {
        let path = show(&dir.path().join(format!("typed-{served}.sock")));
        for name in [common::abstract_name(&format!("typed-{served}")), path] {
            let server = Server::start(&["--proto", served, "--addr", &name]);
            for proto in UNIX_PROTOS.iter().filter(|&&p| p != served) {
                let line = error_of(&["send", "--proto", proto, &name, "x"], 1);
                assert_mentions(&line, &[&name, &format!("use --proto {served}")]);
            }
            drop(server);
        }
    }
}

/// Telling a client the server's type never makes it the server's client: an `--exec`
/// server at the path runs no program for a client of the wrong type.
#[test]
fn a_client_of_the_wrong_type_runs_no_exec_program() {
    let dir = tempdir();
    let ran = dir.path().join("ran");
    let program = format!("echo ran >> {}; cat", show(&ran));
    for served in ["unix", "unix-seqpacket"] {
        let path = show(&dir.path().join(format!("exec-{served}.sock")));
        let server = Server::start(&[
            "--proto", served, "--addr", &path, "--exec", "sh", "-c", &program,
        ]);
        for proto in UNIX_PROTOS.iter().filter(|&&p| p != served) {
            let line = error_of(&["send", "--proto", proto, &path, "x"], 1);
            assert_mentions(&line, &[&format!("use --proto {served}")]);
        }
        drop(server);
    }
    assert!(!ran.exists(), "a wrong-type client ran the program");
}

#[test]
fn udp_with_nothing_listening_says_so_at_once() {
    for (ip, shown) in [("127.0.0.1", "127.0.0.1"), ("::1", "[::1]")] {
        let addr = format!("{shown}:{}", closed_udp_port(ip));
        let began = Instant::now();
        // A long timeout: waiting it out instead of hearing the ICMP error would take 90 s,
        // so a bound of 30 s (a hang guard a loaded machine never reaches) tells them apart.
        let out = netecho(
            &[
                "send",
                "--proto",
                "udp",
                "--timeout",
                "30s",
                "--retries",
                "2",
                &addr,
                "x",
            ],
            b"",
        );
        let took = began.elapsed();
        let line = fails(&out, 1);
        assert_mentions(
            &line,
            &["nothing is listening", &addr, "ICMP port unreachable"],
        );
        assert!(!line.contains("no reply"), "{line}");
        assert!(
            took < Duration::from_secs(30),
            "took {took:?}: waited for a timeout"
        );
    }
}

/// get and put over udp to a port nothing holds: one line, naming the address once.
#[test]
fn get_and_put_with_nothing_listening_name_the_address_once() {
    let dir = common::tempdir();
    let local = dir.path().join("f");
    std::fs::write(&local, b"x").unwrap();
    let addr = format!("127.0.0.1:{}", closed_udp_port("127.0.0.1"));
    let local = show(&local);
    for (verb, what) in [("get", "f"), ("put", local.as_str())] {
        let line = error_of(&[verb, "--proto", "udp", &addr, what], 1);
        assert_mentions(
            &line,
            &["nothing is listening there", "ICMP port unreachable"],
        );
        assert_eq!(line.matches(&addr).count(), 1, "{line}");
        assert_eq!(line.lines().count(), 1, "{line}");
    }
}

#[test]
fn a_host_name_that_does_not_resolve_is_named() {
    for proto in ["tcp", "udp"] {
        let line = error_of(
            &["send", "--proto", proto, "no-such-host.invalid:5", "x"],
            1,
        );
        assert_mentions(&line, &["cannot resolve 'no-such-host.invalid'"]);
    }
}

#[test]
fn a_udp_server_that_never_replies_gets_exactly_the_tries_asked_for() {
    // A silent peer: it reads what comes and never answers.
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap().to_string();
    let out = netecho(
        &[
            "send",
            "--proto",
            "udp",
            "--timeout",
            "200ms",
            "--retries",
            "1",
            &addr,
            "anyone?",
        ],
        b"",
    );
    let line = fails(&out, 1);
    assert_mentions(
        &line,
        &[
            &format!("no reply from udp {addr} after 2 tries"),
            "200ms each",
            "Nobody retransmits a lost datagram",
        ],
    );
    // The client has exited, so everything it sent is already queued on the socket.
    silent.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 64];
    let mut got = Vec::new();
    for _ in 0..10 {
        match silent.recv(&mut buf) {
            Ok(n) => got.push(buf[..n].to_vec()),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
            Err(e) => panic!("recv: {e}"),
        }
    }
    assert_eq!(got, vec![b"anyone?".to_vec(), b"anyone?".to_vec()]);
}

#[test]
fn udp_messages_over_the_datagram_limit_fail_before_sending() {
    // IPv4: 65,535 - 20 (IP header) - 8 (UDP header) = 65,507 bytes.
    let v4 = Server::start(&["--proto", "udp", "--addr", "127.0.0.1:0"]);
    let over = "a".repeat(65_508);
    let line = error_of(&["send", "--proto", "udp", &v4.addr, &over], 1);
    assert_mentions(&line, &["65508-byte message", "at most 65507 bytes"]);
    // The same line from a pipe.
    let out = netecho(
        &["send", "--proto", "udp", &v4.addr],
        format!("{over}\n").as_bytes(),
    );
    let line = fails(&out, 1);
    assert_mentions(&line, &["at most 65507 bytes"]);
    // The largest that fits goes through.
    let fits = "b".repeat(65_507);
    let out = netecho(&["send", "--proto", "udp", &v4.addr, &fits], b"");
    assert_eq!(ok(&out), format!("{}\n", fits.to_uppercase()));
    // The server only ever got the one that fits.
    let (status, stdout, _) = v4.stop("TERM");
    assert!(status.success());
    assert!(
        stdout.contains("clients 1, messages 1, bytes in 65507, bytes out 65507"),
        "{stdout}"
    );

    // IPv6: the payload length excludes the 40-byte header, 65,535 - 8 = 65,527 bytes.
    let v6 = Server::start(&["--proto", "udp", "--addr", "[::1]:0"]);
    let fits = "c".repeat(65_527);
    let out = netecho(&["send", "--proto", "udp", &v6.addr, &fits], b"");
    assert_eq!(ok(&out), format!("{}\n", fits.to_uppercase()));
    let over = "d".repeat(65_528);
    let line = error_of(&["send", "--proto", "udp", &v6.addr, &over], 1);
    assert_mentions(&line, &["65528-byte message", "at most 65527 bytes"]);
    let (status, stdout, _) = v6.stop("TERM");
    assert!(status.success());
    assert!(
        stdout.contains("clients 1, messages 1, bytes in 65527, bytes out 65527"),
        "{stdout}"
    );
}

#[test]
fn unix_datagram_messages_over_the_buffer_fail_before_sending() {
    let dir = tempdir();
    let path = show(&dir.path().join("d.sock"));
    for proto in ["unix-dgram", "unix-seqpacket"] {
        let server = Server::start(&["--proto", proto, "--addr", &path]);
        let over = "e".repeat(65_537);
        let line = error_of(&["send", "--proto", proto, &path, &over], 1);
        assert_mentions(&line, &["65537-byte message", "at most 65536 bytes"]);
        let fits = "f".repeat(65_536);
        let out = netecho(&["send", "--proto", proto, &path, &fits], b"");
        assert_eq!(ok(&out), format!("{}\n", fits.to_uppercase()), "{proto}");
        let (status, stdout, _) = server.stop("TERM");
        assert!(status.success());
        assert!(stdout.contains("messages 1, bytes in 65536,"), "{stdout}");
    }
}

#[test]
fn malformed_durations_and_numbers_are_usage_errors() {
    let line = error_of(&["send", "--timeout", "bogus", "127.0.0.1:5", "x"], 2);
    assert_mentions(&line, &["'bogus'", "--timeout"]);
    let line = error_of(&["send", "--timeout", "0s", "127.0.0.1:5", "x"], 2);
    assert_mentions(&line, &["'0s'", "--timeout"]);
    let line = error_of(
        &["serve", "--idle-timeout", "soon", "--addr", "127.0.0.1:0"],
        2,
    );
    assert_mentions(&line, &["'soon'", "--idle-timeout"]);
    let line = error_of(&["send", "--retries", "many", "127.0.0.1:5", "x"], 2);
    assert_mentions(&line, &["'many'", "--retries"]);
}

#[test]
fn a_negative_duration_gets_the_duration_line_from_every_command() {
    let cases: [&[&str]; 5] = [
        &["send", "--timeout", "-1s", "127.0.0.1:5", "x"],
        &["bench", "--timeout", "-1s", "127.0.0.1:5"],
        &["bench", "-t", "-2s", "127.0.0.1:5"],
        &["ping", "--timeout", "-1s", "127.0.0.1"],
        &["serve", "--idle-timeout", "-500ms", "--addr", "127.0.0.1:0"],
    ];
    for args in cases {
        let line = error_of(args, 2);
        assert_mentions(&line, &["a duration here is more than 0"]);
    }
    // A message word that starts with a dash is still a message.
    let server = Server::start(&["--addr", "127.0.0.1:0"]);
    let out = netecho(&["send", &server.addr, "--", "-1s"], b"");
    assert_eq!(ok(&out), "-1S\n");
}

#[test]
fn a_negative_number_is_refused_by_what_the_flag_takes_not_by_clap_dash_advice() {
    // clap's "to pass '-1' as a value, use '-- -1'" fails when pasted: the flag is left
    // without its value.
    for count in [
        &["-c", "-1"][..],
        &["-c=-1"],
        &["--count", "-1"],
        &["-c", "0"],
    ] {
        let args = [&["ping"], count, &["127.0.0.1"]].concat();
        let line = error_of(&args, 2);
        assert_mentions(&line, &["-c takes a whole number of requests, at least 1"]);
        assert!(!line.contains("'--"), "{line}");
    }
    let line = error_of(&["bench", "-P", "-2", "127.0.0.1:5"], 2);
    assert_mentions(&line, &["'-2'", "--clients", "from 1 to 100000"]);
    assert!(!line.contains("'--"), "{line}");
}

#[test]
fn a_server_stopped_under_a_streaming_send_is_named_with_advice() {
    let server = Server::start(&["-v", "--addr", "127.0.0.1:0"]);
    let mut send = std::process::Command::new(common::bin())
        .args(["send", &server.addr])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // `yes |`: lines for as long as send takes them.
    let mut input = send.stdin.take().unwrap();
    let feeder = std::thread::spawn(move || {
        let lines = b"y\n".repeat(4096);
        while std::io::Write::write_all(&mut input, &lines).is_ok() {}
    });
    server.wait_log(": read ");
    server.stop("TERM");
    let out = common::output_within(send, "send, after its server stopped,", common::STEP);
    let _ = feeder.join();
    // EPIPE, or ECONNRESET when the server closed with lines unread: the advice either way.
    let line = fails(&out, 1);
    assert_mentions(
        &line,
        &["check that it is still running, and its log for why"],
    );
}

#[test]
fn a_usage_error_sends_nothing() {
    // A silent peer sees no datagram when the command line is wrong after the address.
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap().to_string();
    error_of(
        &["send", "--proto", "udp", "--timeout", "0s", &addr, "x"],
        2,
    );
    // The client has exited: anything it sent would already be queued.
    silent.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 16];
    let got = silent.recv(&mut buf);
    assert!(
        matches!(&got, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "{got:?}"
    );
    // And a usage error about a Unix path creates no file.
    let dir = tempdir();
    let sock = dir.path().join("x.sock");
    error_of(
        &[
            "serve",
            "--proto",
            "unix-dgram",
            "--addr",
            &show(&sock),
            "--threads",
            "0",
        ],
        2,
    );
    assert!(!sock.exists());
}

/// Empty datagrams are all alike: no reply can be told from another, and a netecho server
/// takes a run of them from one sender for an echo loop. So bench refuses --size 0 over
/// datagrams before it sends anything, and --size 1 measures the same server.
#[test]
fn bench_size_0_over_datagrams_is_a_usage_error_and_sends_nothing() {
    let dir = tempdir();
    let path = dir.path().join("dgram.sock");
    for (proto, addr) in [
        ("udp", "127.0.0.1:0"),
        ("unix-dgram", path.to_str().unwrap()),
    ] {
        let server = Server::start(&["--proto", proto, "--addr", addr]);
        let url = server.url();
        let line = error_of(&["bench", "--size", "0", "-n", "5", &url], 2);
        assert_mentions(
            &line,
            &[&format!("--size 0 over {proto}"), "--size 1 or more"],
        );
        let report = ok(&netecho(&["bench", "--size", "1", "-n", "5", &url], b""));
        assert!(report.contains(proto), "{report}");
        let (_, _, log) = server.stop("TERM");
        assert!(
            log.contains(" 5 bytes in, 5 bytes out, 5 messages"),
            "{log}"
        );
        assert_eq!(log.matches(" messages;").count(), 1, "{log}");
    }
    // Without ADDR, bench's own udp server is refused the same way.
    let line = error_of(&["bench", "--proto", "udp", "--size", "0", "-n", "5"], 2);
    assert_mentions(&line, &["--size 0 over udp"]);
}

#[test]
fn bench_refuses_a_udp_size_over_the_family_s_datagram_before_it_starts() {
    let v6 = Server::start(&["--proto", "udp", "--addr", "[::1]:0"]);
    let fits = [
        "bench", "--proto", "udp", "--size", "65527", "-n", "3", &v6.addr,
    ];
    let out = ok(&netecho(&fits, b""));
    assert!(out.contains("65527"), "{out}");
    let over = [
        "bench", "--proto", "udp", "--size", "65528", "-n", "3", &v6.addr,
    ];
    let out = netecho(&over, b"");
    let line = fails(&out, 1);
    assert_mentions(&line, &["--size 65528", "at most 65527 bytes"]);
    assert!(
        out.stdout.is_empty(),
        "no table for a run that never started"
    );
    let v4 = Server::start(&["--proto", "udp", "--addr", "127.0.0.1:0"]);
    let over = [
        "bench", "--proto", "udp", "--size", "65508", "-n", "3", &v4.addr,
    ];
    let line = error_of(&over, 1);
    assert_mentions(&line, &["--size 65508", "at most 65507 bytes"]);
}

#[test]
fn an_ipv6_address_without_brackets_says_where_the_port_goes() {
    let line = error_of(&["send", "::1:4000", "hi"], 2);
    assert_mentions(&line, &["[::1]:4000", "`::1 4000`"]);
    let line = error_of(&["serve", "--addr", "::1:4000"], 2);
    assert_mentions(&line, &["[::1]:4000"]);
    let line = error_of(&["send", "fe80::1:4000", "hi"], 2);
    assert_mentions(&line, &["[fe80::1%eth0]:4000", "ip -br link"]);
    let line = error_of(&["send", "[fe80::1]:4000", "hi"], 2);
    assert_mentions(&line, &["link-local", "[fe80::1%eth0]:4000"]);
    // Written as the advice says, the address works.
    let server = Server::start(&["--addr", "[::1]:0"]);
    let port = server.port().to_string();
    let out = netecho(&["send", "::1", &port, "six"], b"");
    assert_eq!(ok(&out), "SIX\n");
}

#[test]
fn ipv6_that_no_address_reads_as_gets_the_brackets_its_port_needs() {
    let line = error_of(&["serve", "--addr", ":::4000"], 2);
    assert_mentions(&line, &["':::4000'", "write [::]:4000"]);
    let line = error_of(&["send", "::ffff:127.0.0.1:4000", "hi"], 2);
    assert_mentions(&line, &["write [::ffff:127.0.0.1]:4000"]);
    let line = error_of(&["send", "fe80::1%lo:4000", "hi"], 2);
    assert_mentions(&line, &["write [fe80::1%lo]:4000"]);
    // The advice keeps the scheme, and a zone only where one belongs, so it parses.
    let line = error_of(&["serve", "--addr", "udp://:::0"], 2);
    assert_mentions(&line, &["write udp://[::]:0"]);
    let line = error_of(&["send", "::1%lo:4000", "hi"], 2);
    assert_mentions(&line, &["write [::1]:4000"]);
    let line = error_of(&["send", "udp://::1:4000", "hi"], 2);
    assert_mentions(&line, &["write udp://[::1]:4000"]);
    // Written as the advice says, the address works.
    let server = Server::start(&["--addr", "[::]:0"]);
    let to = format!("[::ffff:127.0.0.1]:{}", server.port());
    assert_eq!(ok(&netecho(&["send", &to, "mapped"], b"")), "MAPPED\n");
    let server = Server::start(&["--addr", "udp://[::]:0"]);
    assert_eq!(server.proto, "udp");
}

/// Under another name (a link, a copy), usage and its errors say netecho, as the advice
/// written by hand in other errors does.
#[test]
fn usage_errors_name_netecho_whatever_the_binary_is_called() {
    let dir = tempdir();
    let link = dir.path().join("ne");
    std::os::unix::fs::symlink(common::bin(), &link).unwrap();
    let line = fails(&run(std::process::Command::new(&link).arg("sned"), b""), 2);
    assert_mentions(&line, &["of 'netecho'", "'netecho --help'"]);
    assert!(!line.contains("'ne'") && !line.contains("'ne "), "{line}");
    let help = run(std::process::Command::new(&link).arg("--help"), b"");
    assert!(ok(&help).contains("Usage: netecho "), "{}", ok(&help));
}

#[test]
fn a_zone_is_kept_or_refused_with_the_reason_never_dropped() {
    // Only a link-local address is one per interface; elsewhere a zone means nothing.
    for addr in ["::%lo", "[::%lo]:4000", "[::1%1]:0", "udp://[::1%lo]:0"] {
        let line = error_of(&["serve", "--addr", addr], 2);
        assert_mentions(&line, &[addr, "link-local", "drop %"]);
    }
    let line = error_of(&["send", "::1%lo", "4000", "hi"], 2);
    assert_mentions(&line, &["drop %lo"]);
    for addr in ["fe80::1%nosuchif0", "[fe80::1%nosuchif0]:4000"] {
        let line = error_of(&["send", addr, "hi"], 2);
        assert_mentions(&line, &["'nosuchif0'", "`ip -br link`"]);
    }
    let line = error_of(&["ping", "-c", "1", "fe80::1%nosuchif0"], 2);
    assert_mentions(&line, &["'nosuchif0'", "`ip -br link`"]);
}

#[test]
fn a_directory_nobody_may_enter_or_a_kernel_file_system_is_named_with_advice() {
    // /proc exists and takes no files: not a missing directory.
    let line = error_of(&["serve", "--addr", "/proc/netecho-test.sock"], 1);
    assert_mentions(&line, &["/proc takes no socket files", "/tmp"]);
    assert!(!line.contains("does not exist"), "{line}");
    let line = error_of(&["serve", "--addr", "/sys/netecho-test.sock"], 1);
    assert_mentions(&line, &["/tmp"]);
    let test = "a_directory_nobody_may_enter_or_a_kernel_file_system_is_named_with_advice";
    if !nobody_can_run(test) {
        return;
    }
    // tempfile's 0700 directory: nobody cannot even look inside.
    let dir = tempdir();
    let path = show(&dir.path().join("x.sock"));
    let out = run(&mut as_nobody(&["serve", "--addr", &path]), b"");
    let line = fails(&out, 1);
    assert_mentions(
        &line,
        &["permission denied", &show(dir.path()), "such as /tmp"],
    );
}

#[test]
fn ping_6_of_a_name_without_an_ipv6_address_says_what_to_do() {
    let out = netecho(&["ping", "-6", "-c", "1", "localhost"], b"");
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !stderr.contains("cannot resolve") {
        let needs = "a localhost without an IPv6 address in /etc/hosts";
        common::skip("ping_6_of_a_name", needs, common::Lacks::Environment);
        return;
    }
    let line = fails(&out, 1);
    assert_mentions(&line, &["-6", "::1", "leave -6 out"]);
}

/// A host whose firewall drops SYNs answers nothing, and the kernel alone would wait about
/// two minutes: the connect ends at --timeout (send, get) or at the 10 s default (lab's
/// control connection), in one line that names what to suspect.
#[test]
fn a_connect_nobody_answers_ends_at_its_bound_and_names_a_firewall() {
    let test = "a_connect_nobody_answers_ends_at_its_bound_and_names_a_firewall";
    let Some(pair) = Pair::new("cto", test) else {
        return;
    };
    // Every packet into the server's namespace is dropped, SYNs included: nothing answers.
    common::netns::lose_on(&pair.server, &pair.server_if, 10_000).expect("nftables drop rule");
    let host = Pair::SERVER_V4;
    let addr = format!("{host}:4100");
    let dir = tempdir();
    let out_file = show(&dir.path().join("notes.txt"));
    let runs: [(&[&str], &str); 3] = [
        (&["send", "--timeout", "2s", &addr, "hi"], "within 2 s"),
        (
            &[
                "get",
                "--timeout",
                "2s",
                &addr,
                "notes.txt",
                "-o",
                &out_file,
            ],
            "within 2 s",
        ),
        (&["lab", "--quick", host], "within 10 s"),
    ];
    for (args, within) in runs {
        let line = fails(&run(&mut pair.client_cmd(args), b""), 1);
        assert_mentions(
            &line,
            &[
                &format!("no answer from {host}:"),
                within,
                "a firewall drops port",
                "classroom",
            ],
        );
    }
}

/// `serve --files` at a directory that is missing, or that the user may not enter, is
/// advised as a socket path is: what to create or where to go instead.
#[test]
fn serve_files_at_a_missing_or_forbidden_directory_says_what_to_do() {
    let dir = tempdir();
    let missing = show(&dir.path().join("missing"));
    let line = error_of(&["serve", "--files", &missing], 1);
    assert_mentions(&line, &[&missing, "does not exist; create it first"]);
    let test = "serve_files_at_a_missing_or_forbidden_directory_says_what_to_do";
    if !nobody_can_run(test) {
        return;
    }
    // A directory of root's, 0700: nobody may not enter it.
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o700)).unwrap();
    let forbidden = show(dir.path());
    let out = run(&mut as_nobody(&["serve", "--files", &forbidden]), b"");
    let line = fails(&out, 1);
    assert_mentions(
        &line,
        &[&format!("you may not enter {forbidden}"), "such as /tmp"],
    );
}

/// A wait under a microsecond is a timeval of {0, 0} to SO_RCVTIMEO, which the kernel reads
/// as "forever": a `--timeout 500ns` against a server that never answers must still end, in
/// one line, for streams and datagrams alike.
#[test]
fn a_timeout_under_a_microsecond_still_ends_against_a_silent_server() {
    // A listener that never accepts: the kernel completes the handshake, nobody answers.
    let silent_tcp = std::net::TcpListener::bind("127.0.0.1:0").expect("bind tcp");
    let silent_udp = UdpSocket::bind("127.0.0.1:0").expect("bind udp");
    let tcp = silent_tcp.local_addr().unwrap().to_string();
    let udp = silent_udp.local_addr().unwrap().to_string();
    // exec's own failures exit 255, as ssh's do.
    for (args, what, code) in [
        (
            vec!["send", "--timeout", "500ns", &tcp, "hello"],
            "send tcp",
            1,
        ),
        (
            vec![
                "send",
                "--proto",
                "udp",
                "--retries",
                "0",
                "--timeout",
                "1us",
                &udp,
                "hi",
            ],
            "send udp",
            1,
        ),
        (vec!["exec", "--timeout", "999ns", &tcp], "exec", 255),
    ] {
        let line = fails(&netecho(&args, b""), code);
        assert!(line.contains("127.0.0.1"), "{what}: {line}");
    }
}

/// A message on the command line to a server that answers only at the end of its input
/// (socat EXEC:'tr a-z A-Z'): the timeout names the fix that works, piping it in, and that
/// line pasted gets the answer.
#[test]
fn a_server_that_answers_at_end_of_input_is_told_to_get_the_message_piped() {
    if !common::have(
        "socat",
        "a_server_that_answers_at_end_of_input_is_told_to_get_the_message_piped",
    ) {
        return;
    }
    let (_socat, port) = common::socat_listener(&[], "EXEC:tr a-z A-Z");
    let addr = format!("127.0.0.1:{port}");
    let line = error_of(&["send", "--timeout", "1s", "127.0.0.1", &port, "hello"], 1);
    let pipe = format!("`printf '%s\\n' hello | netecho send {addr}`");
    assert!(line.contains(&pipe), "{line}");
    let pasted = pipe.trim_matches('`').replace("netecho ", "\"$NETECHO\" ");
    let mut sh = std::process::Command::new("sh");
    sh.args(["-c", &pasted]).env("NETECHO", common::bin());
    assert_eq!(ok(&run(&mut sh, b"")), "HELLO\n", "{line}");
}
