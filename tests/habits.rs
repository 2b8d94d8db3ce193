//! The flags users bring from nc, ncat, socat, iperf3 and ping, through the binary: every row
//! of README's table either works as there or is refused with one line naming the netecho way.

mod common;

use common::netns::Pair;

use common::{Server, can_open_raw, fails, netecho, ok};

/// The "you type" column of README's table of habits.
fn readme_rows() -> Vec<String> {
    let readme = include_str!("../README.md");
    let table = readme
        .split("| in | you type | in netecho |")
        .nth(1)
        .expect("README has the table of habits");
    table
        .lines()
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .map(|l| l.split('|').nth(2).unwrap().trim().to_string())
        .collect()
}

/// Runs `netecho ARGS` and expects the refusal: exit 2, one error line containing `advice`.
fn refused(args: &[&str], advice: &str) {
    let line = fails(&netecho(args, b""), 2);
    assert!(line.contains(advice), "netecho {args:?}: {line}");
}

/// Runs a row's check; false for a row this test does not know.
fn check(row: &str, server: &Server) -> bool {
    let port = server.port().to_string();
    let addr = format!("127.0.0.1:{port}");
    match row {
        "`nc -l -p 4000`" => {
            refused(&["send", "-l"], "`netecho serve --addr :PORT`");
            // What was typed stays in the advice: there is where to listen.
            refused(
                &["send", "-l", &addr],
                &format!("`netecho serve --addr {addr}`"),
            );
            refused(&["send", "-p", &port, "127.0.0.1"], "HOST PORT");
            refused(&["send", "--port", &port, "127.0.0.1"], "HOST PORT");
            let any = Server::start(&["--addr", ":0"]);
            assert!(any.addr.starts_with("[::]:"), "{}", any.addr);
            let v4 = ["send", "127.0.0.1", &any.port().to_string(), "dual"];
            assert_eq!(ok(&netecho(&v4, b"")), "DUAL\n");
        }
        "`nc 127.0.0.1 4000`" => {
            let out = ok(&netecho(&["send", "127.0.0.1", &port, "hello"], b""));
            assert_eq!(out, "HELLO\n");
            refused(&["send", &port], "a port alone");
            refused(&["send", "-i", "1", "127.0.0.1"], "-i takes no value");
        }
        "`-u`" => refused(&["send", "-u", &addr], "--proto udp"),
        "`-U /tmp/s`" => refused(&["send", "-U", "/tmp/s"], "a path is a Unix socket"),
        "`-4`, `-6`" => {
            assert_eq!(
                ok(&netecho(&["-4", "send", "localhost", &port, "four"], b"")),
                "FOUR\n"
            );
            let line = fails(&netecho(&["-6", "send", &addr, "six"], b""), 1);
            assert!(line.contains("-6"), "{line}");
        }
        "`-k`" => refused(&["serve", "-k"], "keeps listening"),
        "`-w 5`" => refused(&["send", "-w", "5", &addr], "--timeout 5s"),
        "`-v`" => assert_eq!(ok(&netecho(&["send", "-v", &addr, "v"], b"")), "V\n"),
        "`-z`" => refused(&["send", "-z", &addr], "scans no ports"),
        "`-n`" => refused(&["send", "-n", &addr], "never looks up"),
        "`-s ADDR`" => refused(&["send", "-s", "127.0.0.1", &addr], "source address"),
        "`-N`" => refused(&["send", "-N", &addr], "shuts down its writing side"),
        "`-C`" => refused(&["send", "-C", &addr], "--framing line"),
        "`-e PROG`, `-c CMD`" => {
            refused(&["serve", "-e", "/bin/cat"], "netecho serve --exec");
            refused(&["send", "-c", "tr a-z A-Z", &addr], "--exec sh -c");
        }
        "`-x FILE`, `--hex-dump`" => {
            refused(&["send", "-x", "dump", &addr], "--hex");
            // ncat writes the dump to FILE; netecho's goes to stderr.
            refused(
                &["send", "-x", "dump", &addr],
                &format!("--hex {addr} 2>dump`"),
            );
            let out = netecho(&["send", "--hex", &addr, "hi"], b"");
            assert_eq!(ok(&out), "HI\n");
            let dump = String::from_utf8_lossy(&out.stderr);
            assert!(dump.contains("00000000: 6869"), "{dump}");
            assert!(dump.contains("00000000: 4849"), "{dump}");
        }
        _ => return check_socat(row, server),
    }
    true
}

/// [`check`] for the rows of ncat's TLS, socat and openssl.
fn check_socat(row: &str, server: &Server) -> bool {
    let addr = format!("127.0.0.1:{}", server.port());
    match row {
        "`--ssl`" => {
            refused(&["send", "--ssl", &addr], "no TLS");
            refused(&["send", "--ssl", &addr], "`--tls`");
        }
        "`OPENSSL:HOST:4000,verify=0`" => refused(
            &["send", "OPENSSL:127.0.0.1:4000,verify=0"],
            "`netecho send --tls --insecure 127.0.0.1 4000`",
        ),
        "`DTLS:HOST:4000`" => refused(
            &["send", "DTLS:127.0.0.1:4000"],
            "`netecho send quic://127.0.0.1:4000`",
        ),
        "`OPENSSL-LISTEN:4000,cert=C,key=K`" => refused(
            &[
                "serve",
                "--addr",
                "OPENSSL-LISTEN:4000,cert=c.pem,key=k.pem",
            ],
            "`netecho serve --tls --addr :4000`",
        ),
        "`s_client -connect HOST:4000`" => {
            let tls = Server::start(&["--tls", "--addr", "127.0.0.1:0"]);
            let out = netecho(
                &["send", "--tls", "--insecure", &tls.url(), "like s_client"],
                b"",
            );
            assert_eq!(ok(&out), "LIKE S_CLIENT\n");
        }
        "`TCP-LISTEN:4000`" => refused(
            &["serve", "--addr", "TCP-LISTEN:4000"],
            "`netecho serve --addr :4000`",
        ),
        "`TCP:HOST:4000`" => refused(
            &["send", "TCP:127.0.0.1:4000"],
            "`netecho send 127.0.0.1 4000`",
        ),
        "`UNIX-CONNECT:/tmp/s`" => {
            refused(&["send", "UNIX-CONNECT:/tmp/s"], "`netecho send /tmp/s`")
        }
        _ => return check_new_habits(row, server),
    }
    true
}

/// [`check`] for the rows of socat's stdio address and s_client's flags.
fn check_new_habits(row: &str, server: &Server) -> bool {
    let addr = format!("127.0.0.1:{}", server.port());
    match row {
        "`socat - TCP:HOST:4000`" => {
            let tcp = format!("TCP:{addr}");
            let port = server.port().to_string();
            refused(
                &["send", "-", &tcp],
                &format!("`netecho send 127.0.0.1 {port}`"),
            );
            let out = netecho(&["send", "127.0.0.1", &port], b"stdin\n");
            assert_eq!(ok(&out), "STDIN\n");
        }
        "`-servername N`, `-CAfile F`, `-tls1_2`, `-showcerts`, `-quiet`" => {
            for (flag, here) in [
                (&["-servername", "localhost"][..], "--server-name localhost"),
                (&["-CAfile", "ca.pem"], "--ca ca.pem"),
                (&["-tls1_2"], "--tls-version 1.2"),
                (&["-showcerts"], "--tls -v"),
                (&["-quiet"], "leave -quiet out"),
            ] {
                let mut args = vec!["send", "--tls"];
                args.extend_from_slice(flag);
                args.push(&addr);
                refused(&args, here);
            }
            let tls = Server::start(&["--tls", "--tls-version", "1.2", "--addr", "127.0.0.1:0"]);
            let pin = tls.pin();
            let args = [
                "--tls-version",
                "1.2",
                "--server-name",
                "localhost",
                "--pin",
            ];
            let mut send = vec!["send", "--tls"];
            send.extend(
                args.iter()
                    .chain([&pin.as_str(), &tls.addr.as_str(), &"v12"]),
            );
            assert_eq!(ok(&netecho(&send, b"")), "V12\n");
        }
        _ => return check_iperf3_and_ping(row, server),
    }
    true
}

/// [`check`] for the rows of iperf3's and ping's letters that mean something else in netecho.
fn check_iperf3_and_ping(row: &str, server: &Server) -> bool {
    let addr = format!("127.0.0.1:{}", server.port());
    match row {
        "`-w 256K`" => {
            refused(
                &["bench", "-w", "256K", &addr],
                "`netecho bench --rcvbuf 256K --sndbuf",
            );
            let args = [
                "bench", "-n", "5", "--rcvbuf", "256K", "--sndbuf", "256K", &addr,
            ];
            ok(&netecho(&args, b""));
        }
        "`-n 10M`" => refused(
            &["bench", "-n", "10M", &addr],
            "`netecho bench -s 64k -n 160`",
        ),
        "`-i 1`" => {
            refused(
                &["bench", "-i", "1", &addr],
                "`netecho bench --format ndjson --interval 1s`",
            );
            let args = [
                "bench",
                "--format",
                "ndjson",
                "--interval",
                "100ms",
                "-t",
                "300ms",
            ];
            let lines = ok(&netecho(&[&args[..], &[addr.as_str()]].concat(), b""));
            assert!(lines.lines().count() >= 2, "{lines}");
        }
        "`--bidir`, `-O 2`, `-V`" => {
            refused(&["bench", "--bidir", &addr], "leave --bidir out");
            refused(
                &["bench", "-O", "2", &addr],
                "(iperf3: leave out the first seconds)",
            );
            refused(&["bench", "-V", &addr], "more detail is `-v`");
        }
        "`-t 5`, `-M do`, `-I eth0`, `-D`, `-n`" => {
            refused(&["ping", "-t", "5", "127.0.0.1"], "`netecho send --ttl 5`");
            for flag in [&["-M", "do"][..], &["-I", "eth0"], &["-D"], &["-n"]] {
                let args = [&["ping"], flag, &["127.0.0.1"]].concat();
                refused(
                    &args,
                    &format!("{} is not a netecho flag here (ping: ", flag[0]),
                );
            }
        }
        _ => return check_tools(row, server),
    }
    true
}

/// [`check`] for the rows of iperf3, ping, curl, tftp and the broadcast and multicast rows.
fn check_tools(row: &str, server: &Server) -> bool {
    check_iperf3(row, server) || check_ping_and_tftp(row) || check_groups(row, server)
}

/// [`check`] for the rows of iperf3.
fn check_iperf3(row: &str, server: &Server) -> bool {
    let port = server.port().to_string();
    let addr = format!("127.0.0.1:{port}");
    let bench = |extra: &[&str]| {
        let mut args = vec!["bench", "-n", "5"];
        args.extend_from_slice(extra);
        ok(&netecho(&args, b""))
    };
    match row {
        "`-s`" => refused(&["serve", "-s"], "`netecho serve`"),
        "`-c HOST`" => {
            bench(&["-c", "127.0.0.1", &port]);
            refused(&["bench", "-c", "2", &addr], "-P 2");
        }
        "`-p 5201`" => refused(&["bench", "-p", &port, "-c", "127.0.0.1"], "HOST PORT"),
        "`-P 8`" => drop(bench(&["-P", "2", &addr])),
        "`-t 10`" => {
            refused(&["bench", "-t", "10", &addr], "10 what?");
            ok(&netecho(&["bench", "-t", "300ms", &addr], b""));
        }
        "`-J`" => {
            let json = bench(&["-J", &addr]);
            serde_json::from_str::<serde_json::Value>(&json).expect("bench -J prints JSON");
        }
        "`-l 1K`" => drop(bench(&["-l", "1K", &addr])),
        "`-b 10M`" => {
            refused(&["bench", "-b", "10M", &addr], "10mbit");
            bench(&["-b", "10mbit", &addr]);
        }
        "`-R`" => refused(&["bench", "-R", &addr], "both ways"),
        _ => return false,
    }
    true
}

/// [`check`] for the rows of ping, curl and tftp.
fn check_ping_and_tftp(row: &str) -> bool {
    match row {
        "`-c 3`, `-s 1000`" => drop(ping(&["-c", "1", "-s", "1000"], "1008 bytes from")),
        "`-i 0.2`, `-W 2`" => {
            refused(&["ping", "-i", "0.2", "127.0.0.1"], "0.2 what?");
            refused(&["ping", "-W", "2", "127.0.0.1"], "2 what?");
            drop(ping(&["-c", "1", "-i", "200ms", "-W", "2s"], "1 received"));
        }
        "`ping -w 5`" => refused(
            &["ping", "-w", "5", "127.0.0.1"],
            "`netecho ping -c 5 127.0.0.1`",
        ),
        "`ping -f`" => {
            refused(&["ping", "-f", "127.0.0.1"], "`-i 1ms`");
            drop(ping(&["-c", "3", "-i", "1ms"], "3 received"));
        }
        "`-q`" => {
            let out = ping(&["-q", "-c", "2", "-i", "100ms"], "2 received");
            assert!(!out.contains("icmp_seq"), "ping -q printed replies:\n{out}");
        }
        "`curl tftp://HOST:PORT/name -o out`" => {
            tftp_row("curl", &["-sS", "tftp://127.0.0.1:PORT/name", "-o", "OUT"])
        }
        "`tftp HOST PORT -m binary -c get name out`" => tftp_row(
            "tftp",
            &[
                "127.0.0.1",
                "PORT",
                "-m",
                "binary",
                "-c",
                "get",
                "name",
                "OUT",
            ],
        ),
        _ => return false,
    }
    true
}

/// [`check`] for the broadcast and multicast rows.
fn check_groups(row: &str, server: &Server) -> bool {
    let addr = format!("127.0.0.1:{}", server.port());
    match row {
        "`nc -u -b 10.0.0.255 4000`" => {
            refused(&["send", "-b", &addr], "--broadcast");
            in_namespaces(|_, port| {
                let to = format!("udp://{}:{port}", Pair::BROADCAST_V4);
                vec!["--broadcast".into(), to]
            });
        }
        "`-M 5`" => {
            // A tcp connection has no --ttl here: the advice stays on tcp, udp gets it.
            refused(
                &["send", "-M", "5", &addr],
                &format!("TTL: `netecho send {addr}`"),
            );
            refused(&["send", "-u", "-M", "5", &addr], &format!("udp://{addr}"));
            refused(
                &["send", "-M", "5", &format!("udp://{addr}")],
                &format!("--ttl 5 udp://{addr}"),
            );
            let udp = Server::start(&["--proto", "udp", "--addr", "127.0.0.1:0"]);
            let to = format!("udp://127.0.0.1:{}", udp.port());
            assert_eq!(ok(&netecho(&["send", "--ttl", "5", &to, "m"], b"")), "M\n");
        }
        "`UDP4-RECVFROM:4000,ip-add-membership=239.1.2.3:eth0,fork`" => {
            refused(
                &["serve", "--proto", "udp", "--addr", "239.1.2.3:0"],
                "--join 239.1.2.3",
            );
            in_namespaces(|ns, port| vec!["--iface".into(), ns.client_if.clone(), group(port)]);
        }
        "`UDP4-DATAGRAM:239.1.2.3:4000,ip-multicast-ttl=2`" => {
            in_namespaces(|_, port| vec!["--ttl".into(), "2".into(), group(port)]);
        }
        "`UDP4-DATAGRAM:255.255.255.255:4000,broadcast`" => {
            refused(&["send", "udp://255.255.255.255:9", "x"], "add --broadcast");
            in_namespaces(|_, port| {
                vec![
                    "--broadcast".into(),
                    format!("udp://255.255.255.255:{port}"),
                ]
            });
        }
        _ => return false,
    }
    true
}

/// The group of the multicast rows, at `port`.
fn group(port: u16) -> String {
    format!("udp://239.1.2.3:{port}")
}

/// A broadcast or multicast row, run where its datagrams cannot leave: a server joined to
/// 239.1.2.3 in one network namespace, and `send ARGS(ns, port) x` in the other, whose
/// one answer comes from the server's address.
fn in_namespaces(args: impl Fn(&Pair, u16) -> Vec<String>) {
    let Some(ns) = Pair::new("hb", "every_habit_in_the_readme_table") else {
        return;
    };
    let server = Server::start_with(&mut ns.server_cmd(&[
        "serve",
        "--proto",
        "udp",
        "--addr",
        "0.0.0.0:0",
        "--join",
        "239.1.2.3",
        "--iface",
        &ns.server_if,
    ]));
    let port = server.port();
    // The answers of one --timeout are printed: 3 s, for the answer to be in it on a loaded
    // machine too.
    let mut all: Vec<String> = vec!["send".into(), "--timeout".into(), "3s".into()];
    all.extend(args(&ns, port));
    all.push("x".into());
    let all: Vec<&str> = all.iter().map(String::as_str).collect();
    let out = common::run(&mut ns.client_cmd(&all), b"");
    assert_eq!(
        ok(&out),
        format!("{}:{port} X\n", Pair::SERVER_V4),
        "{all:?}"
    );
}

/// A TFTP client's row: `program ARGS` (PORT and OUT filled in) downloads `name` from
/// `serve --proto udp --files`.
fn tftp_row(program: &str, args: &[&str]) {
    let installed = std::process::Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .is_ok_and(|o| o.status.success());
    if !installed {
        let needs = format!("{program} (.ci/run installs it)");
        common::skip(
            "every_habit_in_the_readme_table",
            &needs,
            common::Lacks::Provided,
        );
        return;
    }
    let (dir, out) = (common::tempdir(), common::tempdir());
    std::fs::write(dir.path().join("name"), b"tftp row").unwrap();
    let server = common::files_server("udp", dir.path(), &[]);
    let (port, file) = (server.port().to_string(), out.path().join("out"));
    let out_arg = file.to_str().unwrap();
    let args: Vec<String> = args
        .iter()
        .map(|a| a.replace("PORT", &port).replace("OUT", out_arg))
        .collect();
    let got = common::run(std::process::Command::new(program).args(&args), b"");
    assert_eq!(
        std::fs::read(&file).unwrap_or_default(),
        b"tftp row",
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&got.stderr)
    );
}

/// `netecho ping ARGS 127.0.0.1`, when this process may: its stdout, which contains `want`.
fn ping(args: &[&str], want: &str) -> String {
    if !can_open_raw("every_habit_in_the_readme_table") {
        return String::new();
    }
    let mut all = vec!["ping"];
    all.extend_from_slice(args);
    all.push("127.0.0.1");
    let out = ok(&netecho(&all, b""));
    assert!(out.contains(want), "netecho {all:?}:\n{out}");
    out
}

#[test]
fn every_habit_in_the_readme_table() {
    let server = Server::start(&["--addr", "127.0.0.1:0"]);
    let rows = readme_rows();
    assert!(rows.len() >= 30, "README's table has {} rows", rows.len());
    for row in &rows {
        assert!(check(row, &server), "README row {row} has no check here");
    }
}

#[test]
fn serve_and_relay_dump_what_they_carry_with_hex() {
    let server = Server::start(&["--hex", "--addr", "127.0.0.1:0"]);
    let relay = Server::start_with(std::process::Command::new(common::bin()).args([
        "relay",
        "--hex",
        "udp://127.0.0.1:0",
        &server.url(),
        "--framing",
        "line",
    ]));
    assert_eq!(ok(&netecho(&["send", &relay.url(), "hex"], b"")), "HEX\n");
    // The server sees the line and answers it; the relay dumps both directions.
    let log = server.wait_log("00000000: 4845 580a");
    assert!(
        log.contains("00000000: 6865 780a                                hex."),
        "{log}"
    );
    let log = relay.wait_log("00000000: 4845 58 ");
    assert!(log.contains("> 4 bytes to 127.0.0.1:"), "{log}");
}

#[test]
fn file_and_exec_servers_dump_what_they_carry_with_hex() {
    let dir = common::tempdir();
    std::fs::write(dir.path().join("note.txt"), "hexdump me").unwrap();
    let root = dir.path().display().to_string();
    let out_dir = common::tempdir();
    for proto in ["tcp", "udp"] {
        let server = Server::start(
            &["--hex", "--proto", proto, "--addr", "127.0.0.1:0"]
                .into_iter()
                .chain(["--files", &root])
                .collect::<Vec<_>>(),
        );
        let saved = out_dir.path().join(format!("note-{proto}.txt"));
        let saved = saved.display().to_string();
        ok(&netecho(
            &["get", &server.url(), "note.txt", "-o", &saved],
            b"",
        ));
        // The request in, and the file's bytes out.
        let log = server.wait_log("6865 7864 756d 7020 6d65");
        assert!(log.contains("< "), "{proto}: {log}");
        assert!(log.contains("note.txt"), "{proto}: {log}");
    }
    for proto in ["tcp", "udp"] {
        let server = Server::start(&[
            "--hex",
            "--proto",
            proto,
            "--addr",
            "127.0.0.1:0",
            "--exec",
            "tr",
            "a-z",
            "A-Z",
        ]);
        let out = netecho(&["exec", &server.url()], b"hi\n");
        assert_eq!(ok(&out), "HI\n", "{proto}");
        // What the client sent, and the program's output (over udp in its frames, as the
        // datagram went).
        let log = server.wait_log("HI.");
        assert!(log.contains("00000000: 6869 0a"), "{proto}: {log}");
        assert!(
            log.contains("4849 0a") || log.contains("48 490a"),
            "{proto}: {log}"
        );
    }
}

#[test]
fn a_flag_after_send_s_addr_is_refused_rather_than_sent() {
    let server = Server::start(&["--addr", "127.0.0.1:0"]);
    let url = server.url();
    refused(
        &["send", &url, "hi", "--timeout", "1s"],
        "put flags before ADDR",
    );
    refused(&["send", "127.0.0.1", "-p", "4000"], "HOST PORT");
    refused(&["send", "127.0.0.1", "-p", "4000"], "`--`");
    let udp = Server::start(&["--proto", "udp", "--addr", "127.0.0.1:0"]);
    let args = [
        "send",
        "--unconnected",
        &udp.url(),
        "hi",
        "--timeout",
        "300ms",
    ];
    refused(&args, "put flags before ADDR");
    // After `--`, and in the middle of the words, a dash is the message's.
    assert_eq!(
        ok(&netecho(&["send", &url, "--", "-p", "x"], b"")),
        "-P X\n"
    );
    let out = netecho(&["send", &url, "hello", "-x", "world"], b"");
    assert_eq!(ok(&out), "HELLO -X WORLD\n");
    let out = netecho(&["send", "--timeout", "1s", &url, "hi"], b"");
    assert_eq!(ok(&out), "HI\n");
}

#[test]
fn a_habit_s_advice_is_for_the_subcommand_it_was_typed_to() {
    refused(&["serve", "-u"], "`netecho serve --proto udp");
    let line = fails(&netecho(&["serve", "-u"], b""), 2);
    assert!(!line.contains("netecho send"), "{line}");
    refused(&["bench", "-p", "5201"], "`netecho bench -c HOST 5201`");
    let line = fails(&netecho(&["bench", "-p", "5201"], b""), 2);
    assert!(!line.contains("netecho send"), "{line}");
    refused(&["ping", "-w", "2", "127.0.0.1"], "-c");
    let line = fails(&netecho(&["ping", "-w", "2", "127.0.0.1"], b""), 2);
    assert!(!line.contains("--timeout"), "{line}");
    // nc's -w to send still means nc's time-out.
    refused(&["send", "-w", "5", "127.0.0.1"], "--timeout 5s");
    // A server's port, and iperf3's -s typed to the server it asks for.
    for flag in ["-p", "--port"] {
        let line = fails(&netecho(&["serve", flag, "4000"], b""), 2);
        assert!(line.contains("`netecho serve --addr :4000`"), "{line}");
        assert!(!line.contains("netecho send"), "{line}");
    }
    let line = fails(&netecho(&["serve", "-s"], b""), 2);
    assert!(line.contains("leave -s out"), "{line}");
    assert!(!line.contains("source address"), "{line}");
}

#[test]
fn a_habit_s_advice_carries_the_port_host_and_protocol_typed() {
    // Pasted, the advice listens where nc was asked to, and over udp when -u said so.
    let line = fails(&netecho(&["-l", "5000"], b""), 2);
    assert!(line.contains("`netecho serve --addr :5000`"), "{line}");
    let line = fails(&netecho(&["-lu", "4070"], b""), 2);
    assert!(
        line.contains("`netecho serve --proto udp --addr :4070`"),
        "{line}"
    );
    let line = fails(&netecho(&["serve", "-p", "4070"], b""), 2);
    assert!(line.contains("`netecho serve --addr :4070`"), "{line}");
    let line = fails(&netecho(&["send", "-u", "10.1.1.1", "5000"], b""), 2);
    assert!(
        line.contains("`netecho send udp://10.1.1.1:5000`"),
        "{line}"
    );
    let line = fails(&netecho(&["send", "-p", "4070", "::1"], b""), 2);
    assert!(line.contains("`netecho send ::1 4070`"), "{line}");
    // What the advice says works: a udp server there answers the send it names.
    let udp = Server::start(&["--proto", "udp", "--addr", "127.0.0.1:0"]);
    let port = udp.port().to_string();
    let line = fails(&netecho(&["send", "-u", "127.0.0.1", &port], b""), 2);
    let advice = line.split('`').nth(3).expect("a command in backticks");
    let words: Vec<&str> = advice.split(' ').skip(1).chain(["pasted"]).collect();
    assert_eq!(ok(&netecho(&words, b"")), "PASTED\n", "{line}");
}

#[test]
fn a_habit_s_advice_carries_the_path_program_and_message_typed() {
    for (args, want) in [
        (
            &["send", "-U", "/tmp/nu.sock", "hi"][..],
            "`netecho send /tmp/nu.sock hi`",
        ),
        (
            &["send", "-e", "/bin/sh", "127.0.0.1", "4100"],
            "--exec /bin/sh`",
        ),
        (
            &["serve", "-e", "/bin/sh"],
            "`netecho serve --exec /bin/sh`",
        ),
        // nc's whole line, whichever flag netecho meets first.
        (
            &["-l", "-p", "4000", "-e", "/bin/cat"],
            "`netecho serve --addr 127.0.0.1:4000 --exec /bin/cat`",
        ),
        (
            &["-e", "/bin/cat", "-l", "-p", "4000"],
            "`netecho serve --addr 127.0.0.1:4000 --exec /bin/cat`",
        ),
        (
            &["-lu", "-p", "4000", "-e", "/bin/cat"],
            "`netecho serve --proto udp --addr 127.0.0.1:4000 --exec /bin/cat`",
        ),
        (
            &["send", "TCP:127.0.0.1:4100", "a[b]"],
            "`netecho send 127.0.0.1 4100 'a[b]'`",
        ),
        (
            &["ping", "-c", "2", "-w", "5", "127.0.0.1"],
            "`netecho ping -c 5 127.0.0.1`",
        ),
        (
            &["send", "-u", "127.0.0.1", "4101", "hi"],
            "`netecho send udp://127.0.0.1:4101 hi`",
        ),
        (
            &["send", "TCP:127.0.0.1:4100", "hi"],
            "`netecho send 127.0.0.1 4100 hi`",
        ),
        (
            &["send", "UNIX-CONNECT:/tmp/s", "hi", "there"],
            "`netecho send /tmp/s hi there`",
        ),
    ] {
        let line = fails(&netecho(args, b""), 2);
        assert!(line.contains(want), "netecho {args:?}: {line}");
    }
    // What a shell would read as more than a word stays out: the table's words instead.
    for (args, want) in [
        (&["serve", "-e", "sh;id"][..], "--exec PROGRAM ARGS`"),
        (&["send", "-U", "/tmp/a b"], "`netecho send /tmp/echo.sock`"),
        (
            &["send", "-u", "127.0.0.1", "4101", "$(id)"],
            "`netecho send udp://127.0.0.1:4101`",
        ),
        (
            &["send", "TCP:127.0.0.1:4100", "a;b"],
            "`netecho send 127.0.0.1 4100`",
        ),
    ] {
        let line = fails(&netecho(args, b""), 2);
        assert!(line.contains(want), "netecho {args:?}: {line}");
    }
    // Pasted, the advice sends the message typed.
    let udp = Server::start(&["--proto", "udp", "--addr", "127.0.0.1:0"]);
    let port = udp.port().to_string();
    let line = fails(&netecho(&["send", "-u", "127.0.0.1", &port, "hi"], b""), 2);
    let advice = line.split('`').nth(3).expect("a command in backticks");
    let words: Vec<&str> = advice.split(' ').skip(1).collect();
    assert_eq!(ok(&netecho(&words, b"")), "HI\n", "{line}");
}

/// A message word a shell would expand (a glob's brackets) is quoted in the advice: pasted
/// into sh where a file matches the glob, it sends the word as typed, not the file's name.
#[test]
fn a_habit_s_advice_quotes_a_message_word_a_shell_would_expand() {
    let udp = Server::start(&["--proto", "udp", "--addr", "127.0.0.1:0"]);
    let port = udp.port().to_string();
    let line = fails(
        &netecho(&["send", "-u", "127.0.0.1", &port, "a[b]"], b""),
        2,
    );
    let advice = line.split('`').nth(3).expect("a command in backticks");
    let dir = common::tempdir();
    std::fs::write(dir.path().join("ab"), "").unwrap();
    let pasted = advice.replacen("netecho", "\"$NETECHO\"", 1);
    let mut sh = std::process::Command::new("sh");
    sh.args(["-c", &pasted]).current_dir(dir.path());
    let out = common::run(sh.env("NETECHO", common::bin()), b"");
    assert_eq!(ok(&out), "A[B]\n", "{line}");
}

#[test]
fn openssl_s_client_s_connect_gets_the_tls_send() {
    let line = fails(
        &netecho(&["send", "--tls", "-connect", "127.0.0.1:4433"], b""),
        2,
    );
    assert!(
        line.contains("`netecho send --tls 127.0.0.1 4433`"),
        "{line}"
    );
    assert!(!line.contains("ping"), "{line}");
}

#[test]
fn socat_addresses_keep_the_host_port_and_options_typed() {
    for (args, want) in [
        (
            &["serve", "--addr", "TCP-LISTEN:4000,reuseaddr,fork"][..],
            "`netecho serve --addr :4000`",
        ),
        (
            &["send", "TCP:127.0.0.1:4000,crlf"],
            "`netecho send 127.0.0.1 4000`",
        ),
        (&["send", "TCP6:[::1]:4000"], "`netecho send ::1 4000`"),
        (
            &["send", "UDP6:[::1]:4001"],
            "`netecho send --proto udp ::1 4001`",
        ),
        (
            &["send", "UDP4-DATAGRAM:239.1.2.3:4000,ip-multicast-ttl=2"],
            "`netecho send --ttl 2 udp://239.1.2.3:4000`",
        ),
        (
            &["send", "UDP-SENDTO:127.0.0.1:4000"],
            "`netecho send udp://127.0.0.1:4000`",
        ),
        (
            &[
                "serve",
                "--addr",
                "UDP4-RECVFROM:4000,ip-add-membership=239.1.2.3:eth0,fork",
            ],
            "`netecho serve --proto udp --addr 239.1.2.3:4000 --join 239.1.2.3 --iface eth0`",
        ),
        (&["send", "ABSTRACT-CONNECT:echo"], "`netecho send @echo`"),
        (&["send", "tcp:/127.0.0.1:4000"], "tcp://127.0.0.1:4000"),
        (&["TCP-LISTEN:4000"], "`netecho serve --addr :4000`"),
        (
            &["serve", "TCP-LISTEN:4005"],
            "`netecho serve --addr :4005`",
        ),
        (
            &["127.0.0.1", "4000"],
            "`netecho send 127.0.0.1 4000 hello`",
        ),
    ] {
        let line = fails(&netecho(args, b""), 2);
        assert!(line.contains(want), "netecho {args:?}: {line}");
        assert!(!line.contains("--addr TCP-LISTEN"), "{line}");
    }
    // The advice, pasted, reaches the server the socat address named.
    let server = Server::start(&["--addr", "127.0.0.1:0"]);
    let socat = format!("TCP:127.0.0.1:{},crlf", server.port());
    let line = fails(&netecho(&["send", &socat], b""), 2);
    let advice = line.split('`').nth(1).unwrap();
    let words: Vec<&str> = advice.split(' ').skip(1).chain(["pasted"]).collect();
    assert_eq!(ok(&netecho(&words, b"")), "PASTED\n", "{line}");
}

#[test]
fn nc_s_quit_delay_and_ping_s_seconds_are_read_as_those_tools_meant() {
    let line = fails(&netecho(&["send", "-q", "1", "127.0.0.1", "4000"], b""), 2);
    assert!(line.contains("`netecho send 127.0.0.1 4000`"), "{line}");
    assert!(!line.contains("port alone"), "{line}");
    for (args, want) in [
        (&["ping", "-i", "0.2", "127.0.0.1"][..], "write 0.2s"),
        (&["bench", "-t", "1", "127.0.0.1:1"], "write 1s"),
    ] {
        let line = fails(&netecho(args, b""), 2);
        assert!(line.contains(want), "netecho {args:?}: {line}");
    }
}

/// Runs `netecho ARGS` and expects exit 2 with exactly the error line `want`.
fn refused_as(args: &[&str], want: &str) {
    let line = fails(&netecho(args, b""), 2);
    assert_eq!(line, format!("error: {want}"), "netecho {args:?}");
}

#[test]
fn a_letter_means_what_the_subcommand_s_own_tool_means_by_it() {
    // ping's letters are ping's, not iperf3's or nc's.
    refused_as(
        &["ping", "-t", "5", "-c", "1", "127.0.0.1"],
        "-t is not a netecho flag here (ping: the TTL): netecho ping sends with the system's \
         default TTL; a udp or raw packet's TTL is `netecho send --ttl 5`",
    );
    refused_as(
        &["ping", "-M", "do", "-s", "2000", "127.0.0.1"],
        "-M is not a netecho flag here (ping: path MTU discovery): netecho ping leaves path \
         MTU discovery at the system's default; `-s SIZE` sets how big each request is",
    );
    refused_as(
        &["ping", "-I", "lo", "127.0.0.1"],
        "-I is not a netecho flag here (ping: the interface or source address): netecho ping \
         goes the way the route says (`ip route get HOST` shows it); it takes no interface",
    );
    for (flag, there) in [
        ("-f", "ping: flood, paced by the replies"),
        ("-D", "ping: a timestamp per line"),
        ("-n", "ping: numeric addresses"),
    ] {
        let line = fails(&netecho(&["ping", flag, "127.0.0.1"], b""), 2);
        assert!(line.contains(&format!("({there})")), "{line}");
    }
    // bench's are iperf3's: the same letter with another meaning says so.
    refused_as(
        &["bench", "-c", "127.0.0.1", "47001", "-w", "256K"],
        "invalid value '256K' for 'netecho bench --window': not a whole number; -w here is \
         not iperf3's (iperf3: the socket buffer): a socket buffer is `netecho bench --rcvbuf \
         256K --sndbuf 256K`; bench's -w is how many requests each client keeps in flight \
         (`-w 4`)",
    );
    refused_as(
        &["bench", "-c", "127.0.0.1", "47001", "-n", "10M"],
        "invalid value '10M' for 'netecho bench --count': not a whole number; -n here is not \
         iperf3's (iperf3: how many bytes): bench counts requests of -s bytes each: 10M bytes \
         is `netecho bench -s 64k -n 160` (or time it: -t 10s)",
    );
    refused_as(
        &["bench", "-c", "127.0.0.1", "47001", "-i", "1"],
        "-i is not a netecho flag here (iperf3: a report every so often): a line per interval \
         is `netecho bench --format ndjson --interval 1s`",
    );
    refused_as(
        &["bench", "-c", "127.0.0.1", "47001", "-b", "10M"],
        "invalid value '10M' for 'netecho bench --rate': '10M' is not a rate; write e.g. \
         10mbit, 500kbit or 2MB/s; -b here is not iperf3's (iperf3: the bitrate, M for \
         Mbit/s): iperf3's -b 10M is `netecho bench -c 127.0.0.1 47001 -b 10mbit` (--rate; also \
         MB/s)",
    );
    refused_as(
        &["bench", "-s"],
        "'netecho bench --size' needs a value; -s here is not iperf3's (iperf3: be the \
         server): the server is `netecho serve --addr :5201`; bench's -s is the message size \
         (`-s 1k`)",
    );
    refused_as(
        &["bench", "-s", "-p", "5201"],
        "-p is not a netecho flag here (iperf3: the port): iperf3's server (-s) is `netecho \
         serve --addr :5201`; bench is the client: `netecho bench -c HOST PORT`",
    );
    // A plain number is bench's own flag given a wrong one: no iperf3 there.
    let line = fails(
        &netecho(&["bench", "-c", "127.0.0.1", "1", "-n", "0"], b""),
        2,
    );
    assert!(!line.contains("iperf3"), "{line}");
    for (flag, there) in [
        ("--bidir", "iperf3: both directions at once"),
        ("-O", "iperf3: leave out the first seconds"),
        ("-V", "iperf3: more detail"),
    ] {
        let line = fails(&netecho(&["bench", "-c", "127.0.0.1", "1", flag], b""), 2);
        assert!(
            line.contains(&format!("{flag} is not a netecho flag here ({there})")),
            "{line}"
        );
    }
}

#[test]
fn openssl_s_client_s_one_dash_flags_get_send_s_tls_flags() {
    fn tls<'a>(flag: &[&'a str]) -> Vec<&'a str> {
        let mut args = vec!["send", "--tls"];
        args.extend_from_slice(flag);
        args.extend(["127.0.0.1", "47443", "hi"]);
        args
    }
    refused_as(
        &tls(&["-servername", "localhost"]),
        "-servername is not a netecho flag here (openssl s_client: the name sent in SNI): the \
         name is --server-name: `netecho send --tls --server-name localhost 127.0.0.1 47443 hi`",
    );
    refused_as(
        &tls(&["-CAfile", "/tmp/c.pem"]),
        "-CAfile is not a netecho flag here (openssl s_client: the CA certificates to trust): \
         a CA to trust is --ca: `netecho send --tls --ca /tmp/c.pem 127.0.0.1 47443 hi`",
    );
    refused_as(
        &tls(&["-tls1_2"]),
        "-tls1_2 is not a netecho flag here (openssl s_client: TLS 1.2 only): TLS 1.2 is \
         --tls-version 1.2: `netecho send --tls --tls-version 1.2 127.0.0.1 47443 hi`",
    );
    for (flag, want) in [
        ("-tls1_3", "out: `netecho send --tls 127.0.0.1 47443 hi`"),
        ("-showcerts", "`netecho send --tls -v 127.0.0.1 47443 hi`"),
        ("-quiet", "out: `netecho send --tls 127.0.0.1 47443 hi`"),
    ] {
        let line = fails(&netecho(&tls(&[flag]), b""), 2);
        assert!(
            line.contains(&format!("{flag} is not a netecho flag here (openssl")),
            "{line}"
        );
        assert!(line.contains(want), "{line}");
    }
    // `openssl s_client -connect` with netecho in openssl's place.
    refused_as(
        &["s_client", "-connect", "127.0.0.1:47443"],
        "'s_client' is not a subcommand of 'netecho'; -connect is not a netecho flag here \
         (openssl s_client: the server to connect to): `netecho send --tls 127.0.0.1 47443` \
         (--pin the fingerprint serve printed, --ca FILE, or --insecure)",
    );
}

#[test]
fn socat_s_stdio_address_first_gets_the_same_translation() {
    let want = "'TCP:127.0.0.1:47001' is a socat address; in netecho: `netecho send 127.0.0.1 \
                47001`";
    refused_as(&["send", "TCP:127.0.0.1:47001"], want);
    refused_as(&["send", "-", "TCP:127.0.0.1:47001"], want);
    refused_as(
        &["-", "TCP:127.0.0.1:47001"],
        &format!("'-' is not a subcommand of 'netecho'; {want}; see 'netecho --help'"),
    );
}

#[test]
fn a_habit_s_advice_keeps_the_address_and_value_typed_and_invents_no_port() {
    refused_as(
        &["send", "-b", "udp://127.0.0.255:4000", "hi"],
        "-b is not a netecho flag here (iperf3: the bitrate; nc: broadcast): a broadcast is \
         `netecho send --broadcast udp://127.0.0.255:4000 hi`",
    );
    refused_as(
        &["send", "-M", "5", "udp://127.0.0.1:47001", "hi"],
        "-M is not a netecho flag here (nc: the TTL; ncat: the TTL): the TTL is `netecho send \
         --ttl 5 udp://127.0.0.1:47001 hi` (udp and raw; to a group, IP_MULTICAST_TTL)",
    );
    refused_as(
        &["send", "-l"],
        "-l is not a netecho flag here (nc, ncat: listen): netecho listens with `netecho serve \
         --addr :PORT`",
    );
}

#[test]
fn a_count_below_its_least_says_the_least() {
    refused_as(
        &["bench", "-n", "0", "127.0.0.1:1"],
        "invalid value '0' for 'netecho bench --count': 0 is too small: give a number at least \
         1; see 'netecho bench --help'",
    );
    // A negative count is a wrong number too, not iperf3's -n (bytes) typed here.
    let line = fails(&netecho(&["bench", "-n", "-3", "127.0.0.1:1"], b""), 2);
    assert!(
        line.contains("'-3' for 'netecho bench --count': a negative number")
            && !line.contains("iperf3"),
        "{line}"
    );
}

#[test]
fn the_top_level_help_names_where_to_start() {
    let help = ok(&netecho(&["--help"], b""));
    let help = help.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        help.contains("Start with `netecho lab` (every socket type measured on this machine")
            && help.contains("or `netecho lesson`"),
        "{help}"
    );
}

#[test]
fn a_port_a_listener_holds_names_ss_not_time_wait() {
    let server = Server::start(&["--addr", "127.0.0.1:0"]);
    let port = server.port();
    let line = fails(&netecho(&["serve", "--addr", &server.addr], b""), 1);
    assert!(
        line.contains(&format!(
            "a listening socket holds this port (`ss -ltnp 'sport = :{port}'` shows which \
             program)"
        )),
        "{line}"
    );
    assert!(!line.contains("TIME_WAIT"), "{line}");
}

#[test]
fn a_udp_server_on_every_address_says_its_calls_only_at_v() {
    let jargon = "IP_PKTINFO";
    let quiet = Server::start(&["--proto", "udp", "--addr", "[::]:0"]);
    assert_eq!(ok(&netecho(&["send", &quiet.url(), "a"], b"")), "A\n");
    let (_, _, log) = quiet.stop("TERM");
    assert!(!log.contains(jargon), "{log}");
    let verbose = Server::start(&["-v", "--proto", "udp", "--addr", "[::]:0"]);
    verbose.wait_log(jargon);
}

#[test]
fn get_over_udp_hears_an_unreachable_port_as_send_does() {
    // A port nothing listens on: the ICMP port unreachable answers at once.
    let free = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let to = format!("127.0.0.1:{}", free.local_addr().unwrap().port());
    drop(free);
    let dir = common::tempdir();
    let out = dir.path().join("x");
    let get = [
        "get",
        "--proto",
        "udp",
        &to,
        "x",
        "-o",
        out.to_str().unwrap(),
    ];
    let got = fails(&netecho(&get, b""), 1);
    let sent = fails(&netecho(&["send", &format!("udp://{to}"), "hi"], b""), 1);
    let said = "the kernel reported the datagram undeliverable (ICMP port unreachable, or no \
                Unix socket bound); is the server running?";
    assert!(got.ends_with(said), "get: {got}");
    assert!(sent.ends_with(said), "send: {sent}");
}

#[test]
fn an_unreachable_group_names_its_errno_as_every_error_does() {
    // A namespace of its own with loopback only: no route to any group.
    if !common::can_unshare("an_unreachable_group_names_its_errno_as_every_error_does") {
        return;
    }
    let script = format!(
        "ip link set lo up && exec '{}' send --ttl 2 udp://239.1.2.3:4000 hi",
        common::bin()
    );
    let out = common::run(
        std::process::Command::new("unshare").args(["-n", "sh", "-c", &script]),
        b"",
    );
    let line = fails(&out, 1);
    assert!(
        line.contains("network is unreachable (ENETUNREACH)"),
        "{line}"
    );
    assert!(!line.contains("os error"), "{line}");
}

/// The first command in a line's backticks (`netecho ...`, or `CMD | netecho ...`).
fn advised(line: &str) -> &str {
    let commands = line.split('`').skip(1).step_by(2);
    let whole = |c: &&str| c.starts_with("netecho ") || c.contains("| netecho ");
    commands
        .clone()
        .find(whole)
        .unwrap_or_else(|| panic!("no command: {line}"))
}

/// The advice refused for `args`, pasted into sh in `dir` with `stdin`: its output.
fn paste(args: &[&str], dir: &std::path::Path, stdin: &[u8]) -> (String, std::process::Output) {
    let line = fails(&netecho(args, b""), 2);
    let pasted = advised(&line).replace("netecho ", "\"$NETECHO\" ");
    let mut sh = std::process::Command::new("sh");
    sh.args(["-c", &pasted]).current_dir(dir);
    (line, common::run(sh.env("NETECHO", common::bin()), stdin))
}

/// Each habit's advice is a whole command with the address, message and values typed:
/// pasted, it does what the other tool's line meant (or says what netecho has not).
#[test]
fn a_habit_s_advice_pasted_does_what_the_line_typed_meant() {
    let tcp = Server::start(&["--addr", "127.0.0.1:0"]);
    let port = tcp.port().to_string();
    let dir = common::tempdir();
    let send = |flags: &[&str], stdin: &[u8]| {
        let mut args = vec!["send"];
        args.extend_from_slice(flags);
        args.extend(["127.0.0.1", &port]);
        paste(&args, dir.path(), stdin)
    };
    // nc -w 5: the wait is --timeout, and the line keeps its address and message.
    let (line, out) = send(&["-w", "5"], b"hi\n");
    assert!(line.contains("--timeout 5s 127.0.0.1"), "{line}");
    assert_eq!(ok(&out), "HI\n", "{line}");
    // nc -M: tcp has no --ttl here; the advice stays on tcp.
    let (line, out) = send(&["-M", "5"], b"hi\n");
    assert!(!line.contains("udp://") && line.contains("tcp"), "{line}");
    assert_eq!(ok(&out), "HI\n", "{line}");
    // ncat -x FILE: --hex with stderr kept in FILE.
    let (line, out) = send(&["-x", "dump.txt"], b"hi\n");
    assert_eq!(ok(&out), "HI\n", "{line}");
    let dump = std::fs::read_to_string(dir.path().join("dump.txt")).unwrap();
    assert!(dump.contains("6869"), "{line}: {dump}");
    // ncat -c CMD: what CMD prints goes in through a pipe.
    let (line, out) = send(&["-c", "cat"], b"hello\n");
    assert_eq!(ok(&out), "HELLO\n", "{line}");
    // ncat --ssl, openssl -servername: the TLS send, with the address typed.
    let (line, _) = send(&["--ssl"], b"");
    assert!(
        line.contains(&format!("`netecho send --tls 127.0.0.1 {port}`")),
        "{line}"
    );
    let line = fails(
        &netecho(
            &[
                "send",
                "--tls",
                "-servername",
                "foo",
                "127.0.0.1",
                &port,
                "hi",
            ],
            b"",
        ),
        2,
    );
    let want = format!("`netecho send --tls --server-name foo 127.0.0.1 {port} hi`");
    assert!(line.contains(&want), "{line}");
    // socat's verify=0 trusts any certificate: --insecure, which a new certificate passes.
    let tls = Server::start(&["--tls", "--addr", "127.0.0.1:0"]);
    let to = format!("OPENSSL:127.0.0.1:{},verify=0", tls.port());
    let (line, out) = paste(&["send", &to, "hi"], dir.path(), b"");
    assert!(line.contains("--insecure"), "{line}");
    assert_eq!(ok(&out), "HI\n", "{line}");
}

/// A udp echo server on 127.0.0.1 that prints its port, then the TTL each datagram arrived
/// with (IP_RECVTTL), as `ttl N`.
const TTL_TELLER: &str = r#"
import socket, sys
IP_RECVTTL = getattr(socket, 'IP_RECVTTL', 12)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(('127.0.0.1', 0))
s.setsockopt(socket.IPPROTO_IP, IP_RECVTTL, 1)
print(s.getsockname()[1], flush=True)
while True:
    d, anc, _, a = s.recvmsg(65535, socket.CMSG_SPACE(4))
    ttl = [int.from_bytes(c[:4], sys.byteorder) for l, t, c in anc if t == socket.IP_TTL]
    print('ttl', ttl[0], flush=True)
    s.sendto(d, a)
"#;

/// nc's `-u -M 5` (udp, TTL 5), either way round and clustered: the advice, pasted, sends
/// over udp with that TTL, as a server that reads each datagram's TTL tells.
#[test]
fn nc_s_udp_with_a_ttl_keeps_the_ttl_in_the_advice() {
    let test = "nc_s_udp_with_a_ttl_keeps_the_ttl_in_the_advice";
    if !common::have("python3", test) {
        return;
    }
    let mut teller = std::process::Command::new("python3");
    teller.args(["-c", TTL_TELLER]);
    let mut teller = teller.stdout(std::process::Stdio::piped()).spawn().unwrap();
    let mut told = std::io::BufReader::new(teller.stdout.take().unwrap());
    let _teller = common::Peer(teller);
    let mut next = || {
        let mut line = String::new();
        std::io::BufRead::read_line(&mut told, &mut line).unwrap();
        line.trim().to_string()
    };
    let port = next();
    let dir = common::tempdir();
    for flags in [&["-u", "-M", "5"][..], &["-M", "5", "-u"], &["-uM", "5"]] {
        let mut args = vec!["send"];
        args.extend_from_slice(flags);
        args.extend(["127.0.0.1", &port, "hi"]);
        let (line, out) = paste(&args, dir.path(), b"");
        assert!(line.contains("--ttl 5 udp://127.0.0.1:"), "{line}");
        assert_eq!(ok(&out), "hi\n", "{line}");
        assert_eq!(next(), "ttl 5", "{line}");
    }
}

/// netecho's own flags typed beside a habit (`--timeout 2s -u`): their values are never
/// read as the host or the port, and the advice, pasted, keeps them and is answered.
#[test]
fn netecho_s_own_flags_beside_a_habit_stay_flags_in_the_advice() {
    let udp = Server::start(&["--proto", "udp", "--addr", "127.0.0.1:0"]);
    let port = udp.port().to_string();
    let dir = common::tempdir();
    let typed: [(&[&str], &str); 4] = [
        (&["--timeout", "2s", "-u"], "--timeout 2s"),
        (&["-u", "--timeout", "2s"], "--timeout 2s"),
        (&["--timeout=2s", "-u"], "--timeout 2s"),
        (&["--ttl", "7", "-u"], "--ttl 7"),
    ];
    for (flags, kept) in typed {
        let mut args = vec!["send"];
        args.extend_from_slice(flags);
        args.extend(["127.0.0.1", &port, "hi"]);
        let (line, out) = paste(&args, dir.path(), b"");
        let want = format!("`netecho send {kept} udp://127.0.0.1:{port} hi`");
        assert!(line.contains(&want), "{line}");
        assert_eq!(ok(&out), "HI\n", "{line}");
    }
    // A value netecho would refuse (a duration with no unit) is left out: pasted, it runs.
    let args = ["send", "--timeout", "5", "-u", "127.0.0.1", &port, "hi"];
    let (line, out) = paste(&args, dir.path(), b"");
    assert!(
        line.contains(&format!("`netecho send udp://127.0.0.1:{port} hi`")),
        "{line}"
    );
    assert_eq!(ok(&out), "HI\n", "{line}");
}

/// iperf3's line to bench keeps its rate and duration in bench's units, and iperf3's port
/// 5201 when none was typed: no placeholder.
#[test]
fn iperf3_s_line_to_bench_keeps_its_rate_duration_and_port() {
    let line = fails(
        &netecho(
            &["bench", "-c", "127.0.0.1", "-u", "-b", "10M", "-t", "1s"],
            b"",
        ),
        2,
    );
    assert!(
        line.contains("`netecho bench --proto udp -c 127.0.0.1 5201 -t 1s -b 10mbit`"),
        "{line}"
    );
    let line = fails(
        &netecho(&["bench", "-c", "127.0.0.1", "-p", "5201", "-t", "1"], b""),
        2,
    );
    assert!(
        line.contains("`netecho bench -c 127.0.0.1 5201 -t 1s`"),
        "{line}"
    );
    let udp = Server::start(&["--proto", "udp", "--addr", "127.0.0.1:0"]);
    let port = udp.port().to_string();
    let dir = common::tempdir();
    let args = [
        "bench",
        "-c",
        "127.0.0.1",
        "-u",
        "-p",
        &port,
        "-b",
        "1M",
        "-t",
        "1",
        "-l",
        "100",
    ];
    let (line, out) = paste(&args, dir.path(), b"");
    assert!(line.contains("-t 1s -b 1mbit -l 100`"), "{line}");
    let table = ok(&out);
    assert!(
        table.contains("udp") && table.contains("100"),
        "{line}: {table}"
    );
}
