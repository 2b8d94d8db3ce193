//! `serve --lab` and `lab HOST`: a lab server in one network namespace, students in another,
//! joined by a veth pair with loss (nftables) and a rate limit (tc tbf) on it; a class of thirty at
//! once; garbage, silence and an old version on the control port; the echo ports closed to
//! anyone whose run does not hold its turn; turns shared fairly between client addresses (a
//! second students' namespace is a second address), silent connections bounded per address;
//! TLS on the control connection, and the deadline on waiting for a turn. Namespaces are
//! made per test and removed at the end, also when the test fails; the other tests use
//! loopback only.

mod common;

use std::io::{Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{Lacks, Server, bin, output_within, skip};

/// One `lab --quick` against a lab server, with its queue wait, on a loaded machine.
const RUN: Duration = common::LAB_RUN;
/// Thirty of them at once, two measuring at a time.
const CLASS: Duration = Duration::from_secs(300);

/// Two namespaces joined by a veth pair, IPv4 and IPv6 on it; deleted when dropped.
struct Pair {
    server: String,
    client: String,
    veth_server: String,
    veth_client: String,
}

const SERVER_V4: &str = "10.234.0.1";
const SERVER_V6: &str = "fd00:234::1";

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .map_err(|e| format!("{}: {e}", args[0]))?;
    if out.status.success() {
        return Ok(());
    }
    Err(format!(
        "{}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    ))
}

impl Pair {
    /// The pair for test `tag`, or what this machine lacks to make it.
    fn create(tag: &str) -> Result<Pair, (String, Lacks)> {
        if !nix::unistd::Uid::effective().is_root() {
            return Err(("root to create network namespaces".into(), Lacks::Provided));
        }
        let id = format!("{}{tag}", std::process::id());
        let pair = Pair {
            server: format!("nelr-{id}-s"),
            client: format!("nelr-{id}-c"),
            veth_server: format!("nl{id}s"),
            veth_client: format!("nl{id}c"),
        };
        pair.build().map_err(|e| (e, Lacks::Environment))?;
        Ok(pair)
    }

    fn build(&self) -> Result<(), String> {
        ip(&["ip", "netns", "add", &self.server])?;
        ip(&["ip", "netns", "add", &self.client])?;
        ip(&[
            "ip",
            "link",
            "add",
            &self.veth_server,
            "netns",
            &self.server,
            "type",
            "veth",
            "peer",
            "name",
            &self.veth_client,
            "netns",
            &self.client,
        ])?;
        for (ns, veth, v4, v6) in [
            (&self.server, &self.veth_server, SERVER_V4, SERVER_V6),
            (&self.client, &self.veth_client, "10.234.0.2", "fd00:234::2"),
        ] {
            ip(&[
                "ip",
                "-n",
                ns,
                "addr",
                "add",
                &format!("{v4}/24"),
                "dev",
                veth,
            ])?;
            let v6 = format!("{v6}/64");
            ip(&[
                "ip", "-n", ns, "-6", "addr", "add", &v6, "dev", veth, "nodad",
            ])?;
            ip(&["ip", "-n", ns, "link", "set", veth, "up"])?;
            ip(&["ip", "-n", ns, "link", "set", "lo", "up"])?;
        }
        Ok(())
    }

    /// On both ends: `loss_per_10000` of the packets arriving on the veth dropped, packet by
    /// packet, as `lab --netns` does ([`common::netns::lose_on`]), and a token bucket (tc
    /// tbf) holding what each side sends to `rate`.
    fn impair(&self, loss_per_10000: u32, rate: &str) -> Result<(), String> {
        for (ns, veth) in [
            (&self.server, &self.veth_server),
            (&self.client, &self.veth_client),
        ] {
            common::netns::lose_on(ns, veth, loss_per_10000)?;
            ip(&[
                "tc", "-n", ns, "qdisc", "add", "dev", veth, "root", "tbf", "rate", rate, "burst",
                "64kbit", "latency", "400ms",
            ])?;
        }
        Ok(())
    }

    /// `serve --lab` in the server's namespace, on every address, `extra` flags added.
    fn lab_server(&self, extra: &[&str]) -> Server {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.server, bin(), "serve", "--lab"])
            .args(extra)
            .env("RUST_LOG", RUNS_TOLD);
        Server::start_with(&mut cmd)
    }

    /// `lab ARGS` from the clients' namespace, started.
    fn student(&self, args: &[&str]) -> std::process::Child {
        student_in(&self.client, args)
    }
}

/// `lab ARGS` from namespace `ns`, started, its output piped.
fn student_in(ns: &str, args: &[&str]) -> std::process::Child {
    Command::new("ip")
        .args(["netns", "exec", ns, bin(), "lab"])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start lab")
}

impl Drop for Pair {
    fn drop(&mut self) {
        for ns in [&self.server, &self.client] {
            let _ = ip(&["ip", "netns", "del", ns]);
        }
    }
}

/// The lines `serve --lab` announces after `listening`, as printed, to its last (the Unix
/// protocols', never offered).
fn announcement(server: &Server) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    while !lines.last().is_some_and(|l| l.starts_with("lab unix")) {
        assert!(lines.len() < 40, "no end to the announcement: {lines:?}");
        lines.push(server.next_line());
    }
    lines
}

/// The announcement, one entry per protocol (a wrapped line joined again), and the tcp and
/// udp echo ports.
fn announced(server: &Server) -> (Vec<String>, u16, u16) {
    let mut lines: Vec<String> = Vec::new();
    for line in announcement(server) {
        match (line.strip_prefix("  "), lines.last_mut()) {
            (Some(more), Some(last)) => *last = format!("{last} {more}"),
            _ => lines.push(line),
        }
    }
    let (tcp, udp) = (port_in(&lines, "tcp"), port_in(&lines, "udp"));
    (lines, tcp, udp)
}

/// The port `serve --lab`'s line for `proto` announces.
fn port_in(lines: &[String], proto: &str) -> u16 {
    let line = lines
        .iter()
        .find(|l| l.starts_with(&format!("lab {proto}: port ")))
        .unwrap_or_else(|| panic!("no {proto} line: {lines:?}"));
    line.split_whitespace()
        .nth(3)
        .unwrap()
        .trim_end_matches(',')
        .parse()
        .unwrap()
}

fn ok_output(child: std::process::Child, what: &str, limit: Duration) -> (String, String) {
    let out = output_within(child, what, limit);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert!(out.status.success(), "{what}: {stderr}\n{stdout}");
    (stdout, stderr)
}

#[test]
fn every_row_over_ipv4_and_ipv6_through_loss_and_a_rate_limit() {
    let test = "every_row_over_ipv4_and_ipv6_through_loss_and_a_rate_limit";
    let pair = match Pair::create("r") {
        Ok(pair) => pair,
        Err((needs, lacks)) => return skip(test, &needs, lacks),
    };
    let impaired = pair.impair(200, "50mbit");
    if let Err(e) = &impaired {
        skip(
            &format!("{test} (loss and rate)"),
            &format!("nftables and tc tbf: {e}"),
            Lacks::Environment,
        );
    }
    let server = pair.lab_server(&["--addr", "[::]:3235"]);
    assert_eq!(server.addr, "[::]:3235");
    opens_what_it_announced(&pair, &server);
    let mut udp_lost = 0;
    for (host, family) in [(SERVER_V4, "AF_INET"), (SERVER_V6, "AF_INET6")] {
        udp_lost += every_row_over(&pair, host, family);
    }
    if impaired.is_ok() {
        assert!(udp_lost > 0, "2% dropped each way, and udp never resends");
    }
    table_names_the_server_the_path_and_the_sharing(&pair);
}

/// The lab server's announcement (root here: the raw echo too, on IP protocol 254), and
/// the ports it opens in its namespace: those it announced, and no other.
fn opens_what_it_announced(pair: &Pair, server: &Server) {
    let (lines, tcp_port, udp_port) = announced(server);
    let (tls_port, quic_port) = (port_in(&lines, "tls"), port_in(&lines, "quic"));
    assert!(
        lines[0].starts_with("lab control: tcp [::]:3235, control protocol 1"),
        "{lines:?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("lab raw: IP protocol 254")),
        "{lines:?}"
    );
    let ss = Command::new("ip")
        .args(["netns", "exec", &pair.server, "ss", "-lntupH"])
        .output()
        .unwrap();
    let listening = String::from_utf8_lossy(&ss.stdout).into_owned();
    let mut ports: Vec<String> = listening
        .lines()
        .filter_map(|l| {
            l.split_whitespace()
                .nth(4)?
                .rsplit(':')
                .next()
                .map(String::from)
        })
        .collect();
    ports.sort();
    let mut expected: Vec<String> = [3235, tcp_port, udp_port, tls_port, quic_port]
        .iter()
        .map(u16::to_string)
        .collect();
    expected.sort();
    assert_eq!(
        ports, expected,
        "ss -lntup in the server's namespace:\n{listening}"
    );
}

/// `lab --quick --format json` to the lab server at `host`: every row, of `family`, and
/// the path in the metadata; the datagrams the udp row lost.
fn every_row_over(pair: &Pair, host: &str, family: &str) -> u64 {
    let host_arg = if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_string()
    };
    let child = pair.student(&["--quick", "--format", "json", &host_arg]);
    let (stdout, _) = ok_output(child, "lab --quick --format json", RUN);
    let doc: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let rows = doc["rows"].as_array().unwrap();
    let protos: Vec<&str> = rows.iter().map(|r| r["proto"].as_str().unwrap()).collect();
    assert_eq!(protos, ["tcp", "udp", "tls", "quic", "raw"], "{doc}");
    for r in rows {
        assert_eq!(r["family"], family, "{r}");
        assert!(r["address"].as_str().unwrap().contains(host), "{r}");
        assert!(r["sent"].as_u64().unwrap() > 0, "{r}");
        assert!(r["why"].as_str().unwrap().len() > 20, "{r}");
    }
    let tcp = &rows[0];
    assert_eq!(tcp["lost"], 0, "TCP resends what the rule drops: {tcp}");
    let p = &doc["meta"]["parameters"];
    assert_eq!(p["gateway"], serde_json::Value::Null, "{p}");
    assert_eq!(p["dev"], pair.veth_client.as_str(), "{p}");
    assert_eq!(p["dev_mtu"], 1500, "{p}");
    assert!(p["path_mtu"].as_u64().unwrap() >= 1280, "{p}");
    assert_eq!(p["shared_with"], 0, "{p}");
    let notes = doc["remote"].as_array().unwrap();
    assert!(
        notes
            .iter()
            .any(|n| n.as_str().unwrap().starts_with("path: ")),
        "{doc}"
    );
    rows[1]["lost"].as_u64().unwrap()
}

/// The table names the server, the path and the sharing under the rows.
fn table_names_the_server_the_path_and_the_sharing(pair: &Pair) {
    let child = pair.student(&["--quick", &format!("[{SERVER_V6}]:3235")]);
    let (table, _) = ok_output(child, "lab --quick (table)", RUN);
    let table = table.split_whitespace().collect::<Vec<_>>().join(" ");
    for needle in [
        " tcp6 ",
        " udp6 ",
        " tls6 ",
        " quic6 ",
        &format!("lab server [{SERVER_V6}]:3235"),
        &format!("path: fd00:234::2 -> {SERVER_V6}, dev {}", pair.veth_client),
        "directly connected",
        "had the server to itself while measuring",
        "waited",
    ] {
        assert!(table.contains(needle), "{needle:?} missing:\n{table}");
    }
}

#[test]
fn thirty_students_at_once_each_get_a_complete_report_that_says_it_shared() {
    let test = "thirty_students_at_once_each_get_a_complete_report_that_says_it_shared";
    let pair = match Pair::create("c") {
        Ok(pair) => pair,
        Err((needs, lacks)) => return skip(test, &needs, lacks),
    };
    // The thirty come from one namespace, so from one address, as a class behind one NAT
    // address does: the teacher raises --lab-per-address for them. Two measure at once: the
    // quic rows of all runs share the server's one QUIC thread, which a debug build on a
    // loaded machine cannot keep within a row's time for four.
    let server = pair.lab_server(&[
        "--addr",
        "[::]:3235",
        "--lab-runs",
        "2",
        "--lab-per-address",
        "32",
    ]);
    let _ = announced(&server);
    let students: Vec<_> = (0..30)
        .map(|_| pair.student(&["--quick", SERVER_V4]))
        .collect();
    let reports: Vec<(String, String)> = students
        .into_iter()
        .map(|child| ok_output(child, "one of thirty lab --quick runs", CLASS))
        .collect();
    let mut waited = 0;
    let mut shared = 0;
    for (report, log) in &reports {
        assert!(
            report.contains("\ntcp ") && report.contains("\nudp ") && report.contains("\nraw "),
            "{report}"
        );
        // The notes are wrapped at 80 columns: read them as one line.
        let line = report.split_whitespace().collect::<Vec<_>>().join(" ");
        let n: u32 = match line.contains("had the server to itself") {
            true => 0,
            false => line
                .split("shared the server with ")
                .nth(1)
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("no sharing note:\n{report}")),
        };
        shared += n;
        assert!(
            line.contains("the server lets 2 measure at once"),
            "{report}"
        );
        if line.contains(" at first)") {
            waited += 1;
            assert!(log.contains("in its queue and waits its turn"), "{log}");
        }
    }
    // Two turns for thirty runs: most of them waited, and runs measured side by side.
    assert!(waited > 0, "no run waited in the queue");
    assert!(shared > 0, "no run shared the server");
    server.wait_log_count("lab run ", 60);
    let (_, stdout, _) = server.stop("TERM");
    assert!(
        stdout.contains("30 runs: 30 measured; 0 refused"),
        "{stdout}"
    );
}

/// `serve --lab` on loopback: the control port and the two echo ports.
fn loopback_lab(extra: &[&str]) -> (Server, u16, u16) {
    let server = Server::start(&[&["--lab", "--addr", "127.0.0.1:0"], extra].concat());
    let (_, tcp, udp) = announced(&server);
    (server, tcp, udp)
}

/// [`loopback_lab`], its log telling each run's start and first place in the queue too
/// (debug level: by default a run has one line, its end).
fn loopback_lab_told(extra: &[&str]) -> (Server, u16, u16) {
    let args = [&["serve", "--lab", "--addr", "127.0.0.1:0"], extra].concat();
    let server = Server::start_with(Command::new(bin()).args(args).env("RUST_LOG", RUNS_TOLD));
    let (_, tcp, udp) = announced(&server);
    (server, tcp, udp)
}

/// The filter of a lab server's log that tells each run's start and place as well.
const RUNS_TOLD: &str = "netecho=info,netecho::server::lab::control=debug";

/// Everything the server sends on a control connection after `bytes` (and the end of
/// this side's sending when `end`), to its close.
fn control_reply(port: u16, bytes: &[u8], end: bool) -> Vec<u8> {
    let mut conn = TcpStream::connect(("127.0.0.1", port)).unwrap();
    conn.set_read_timeout(Some(common::STEP)).unwrap();
    conn.write_all(bytes).unwrap();
    if end {
        conn.shutdown(std::net::Shutdown::Write).unwrap();
    }
    let mut reply = Vec::new();
    conn.read_to_end(&mut reply)
        .expect("the server closes within STEP");
    reply
}

#[test]
fn garbage_silence_and_another_version_get_one_error_and_the_server_serves_on() {
    let (server, _, _) = loopback_lab(&[]);
    let port = server.port();
    let reply = String::from_utf8(control_reply(port, b"GET / HTTP/1.0\r\n\r\n", false)).unwrap();
    assert_eq!(reply.lines().count(), 1, "{reply:?}");
    assert!(
        reply.starts_with("this is a netecho lab server (control protocol 1)"),
        "{reply:?}"
    );
    assert!(reply.contains("not that protocol"), "{reply:?}");
    assert!(
        !reply.contains("bytes"),
        "no frame length for a typed line: {reply:?}"
    );
    // Nothing at all: dropped after the hello deadline, with the line saying so.
    let reply = String::from_utf8(control_reply(port, b"", false)).unwrap();
    assert!(reply.contains("nothing said within 5 s"), "{reply:?}");
    // A lab client of another version: the error frame names both versions.
    let reply = control_reply(port, &[0, 6, 1, b'N', b'E', b'L', b'B', 9], false);
    let text = String::from_utf8_lossy(&reply);
    assert!(
        text.contains("version 9; this side speaks version 1"),
        "{text:?}"
    );
    // `netecho send` at the control port: the server's line is plain words, no error.
    let out = common::netecho(&["send", "127.0.0.1", &port.to_string(), "hello"], b"");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("speaks only to `netecho lab HOST`"), "{said}");
    assert!(!said.contains("error") && !said.contains("bytes"), "{said}");
    // A frame cut short, then the end: nothing but the close comes back.
    let reply = control_reply(port, &[0, 6, 1, b'N'], true);
    assert!(reply.is_empty(), "{reply:?}");
    // The server still serves a run.
    let (report, _) = lab_here(&[&format!("127.0.0.1:{port}")]);
    assert!(says_how_it_shared(&report), "{report}");
}

/// Sends `msg` to the udp echo port; the reply, or `None` when none came within a second.
fn udp_echo(port: u16, msg: &[u8]) -> Option<Vec<u8>> {
    udp_echo_within(port, msg, Duration::from_secs(1))
}

/// Sends `msg` to the udp echo port; the reply, or `None` when none came within `wait`.
fn udp_echo_within(port: u16, msg: &[u8], wait: Duration) -> Option<Vec<u8>> {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(wait)).unwrap();
    sock.send_to(msg, ("127.0.0.1", port)).unwrap();
    let mut buf = [0u8; 64];
    sock.recv(&mut buf).ok().map(|n| buf[..n].to_vec())
}

/// Reads one control frame: its type byte and body.
fn frame(conn: &mut TcpStream) -> Vec<u8> {
    let mut len = [0u8; 2];
    conn.read_exact(&mut len).unwrap();
    let mut body = vec![0u8; u16::from_be_bytes(len) as usize];
    conn.read_exact(&mut body).unwrap();
    body
}

#[test]
fn the_echo_ports_answer_only_a_run_holding_its_turn() {
    let (server, tcp, udp) = loopback_lab(&[]);
    assert_eq!(udp_echo(udp, b"before"), None, "no run holds a turn yet");
    let mut control = TcpStream::connect(("127.0.0.1", server.port())).unwrap();
    control.set_read_timeout(Some(common::STEP)).unwrap();
    control
        .write_all(&[0, 6, 1, b'N', b'E', b'L', b'B', 1])
        .unwrap();
    assert_eq!(frame(&mut control)[0], 3, "Go");
    // An answer that must come is waited for as long as any step of a test.
    let during = udp_echo_within(udp, b"during", common::STEP);
    assert_eq!(during.as_deref(), Some(&b"DURING"[..]));
    let mut data = TcpStream::connect(("127.0.0.1", tcp)).unwrap();
    data.set_read_timeout(Some(common::STEP)).unwrap();
    data.write_all(b"abc").unwrap();
    let mut echoed = [0u8; 3];
    data.read_exact(&mut echoed).unwrap();
    assert_eq!(&echoed, b"ABC");
    drop(data);
    control.write_all(&[0, 1, 4]).unwrap();
    assert_eq!(frame(&mut control)[0], 5, "Account");
    assert_eq!(udp_echo(udp, b"after"), None, "the turn is over");
}

/// The certificate fingerprint `serve --lab` announces for its tls and quic ports.
fn offered_pin(lines: &[String]) -> String {
    let line = lines
        .iter()
        .find(|l| l.starts_with("lab tls: port "))
        .unwrap_or_else(|| panic!("no tls line: {lines:?}"));
    let at = line.find("certificate sha256 ").expect("a fingerprint") + 19;
    line[at..].split_whitespace().next().unwrap().to_string()
}

/// `send hello` to the secure echo `port` (tls, or quic), trusting `pin`: the reply, or
/// the error line.
fn secure_echo(proto: &str, port: u16, pin: &str) -> Result<String, String> {
    let to = format!("127.0.0.1:{port}");
    let mut args = match proto {
        "tls" => vec!["send", "--proto", "tcp", "--tls"],
        _ => vec!["send", "--proto", proto],
    };
    args.extend(["--pin", pin, &to, "hello"]);
    let out = common::netecho(&args, b"");
    match out.status.success() {
        true => Ok(String::from_utf8_lossy(&out.stdout).into_owned()),
        false => Err(String::from_utf8_lossy(&out.stderr).into_owned()),
    }
}

#[test]
fn the_tls_and_quic_ports_answer_only_a_run_holding_its_turn() {
    let server = Server::start(&["--lab", "--addr", "127.0.0.1:0"]);
    let (lines, _, _) = announced(&server);
    let pin = offered_pin(&lines);
    let (tls, quic) = (port_in(&lines, "tls"), port_in(&lines, "quic"));
    // No run holds a turn: the tls port closes the connection in the handshake (a reset
    // when the ClientHello is still unread), the quic port sends nothing back at all (not
    // even a Retry), so the client's handshake runs out of time.
    let refused = secure_echo("tls", tls, &pin).unwrap_err();
    assert!(
        refused.contains("closed the connection during the TLS handshake")
            || refused.contains("(ECONNRESET)"),
        "{refused}"
    );
    let unanswered = secure_echo("quic", quic, &pin).unwrap_err();
    assert!(
        unanswered.contains("no QUIC handshake within"),
        "{unanswered}"
    );
    let mut control = take_turn(server.port());
    assert_eq!(secure_echo("tls", tls, &pin).unwrap(), "HELLO\n");
    assert_eq!(secure_echo("quic", quic, &pin).unwrap(), "HELLO\n");
    control.write_all(&DONE).unwrap();
    assert_eq!(frame(&mut control)[0], 5, "Account");
    assert!(secure_echo("tls", tls, &pin).is_err(), "the turn is over");
    assert!(secure_echo("quic", quic, &pin).is_err(), "the turn is over");
}

#[test]
fn a_run_measures_tls_and_quic_trusting_the_certificate_its_offer_names() {
    let server = Server::start(&["--lab", "--addr", "127.0.0.1:0"]);
    let (lines, _, _) = announced(&server);
    let pin = offered_pin(&lines);
    let control = format!("127.0.0.1:{}", server.port());
    let (json, log) = lab_here(&["--format", "json", &control]);
    let doc: serde_json::Value = serde_json::from_str(&json).unwrap();
    let rows = doc["rows"].as_array().unwrap();
    for proto in ["tls", "quic"] {
        let row = rows
            .iter()
            .find(|r| r["proto"] == proto)
            .unwrap_or_else(|| panic!("no {proto} row: {doc}\n{log}"));
        assert!(row["sent"].as_u64().unwrap() > 0, "{row}");
        assert!(row["setup_us"].as_u64().unwrap() > 0, "{row}");
        assert!(row["latency_us"]["p50"].as_f64().unwrap() > 0.0, "{row}");
        assert!(row["messages_per_s"].as_f64().unwrap() > 0.0, "{row}");
    }
    // The offer came over plain TCP: the report says what trusting it shows, and not.
    let notes = doc["remote"].to_string();
    assert!(notes.contains(&format!("sha256 {pin}")), "{notes}");
    assert!(
        notes.contains("nothing shows it was the lab server"),
        "{notes}"
    );
}

#[test]
fn a_denied_student_is_refused_at_the_control_port() {
    for (rule, logged) in [
        ("--deny", "refused by --deny 127.0.0.0/8"),
        ("--allow", "refused: no --allow rule matches (10.0.0.0/8)"),
    ] {
        let range = if rule == "--deny" {
            "127.0.0.0/8"
        } else {
            "10.0.0.0/8"
        };
        let (server, _, _) = loopback_lab(&[rule, range]);
        let out = common::netecho(
            &["lab", "--quick", &format!("127.0.0.1:{}", server.port())],
            b"",
        );
        let line = common::fails(&out, 1);
        assert!(line.contains("the lab server 127.0.0.1"), "{line}");
        // The client cannot tell a rule from a wrong port or a full server: it names all,
        // the rule first, and trying again last.
        assert!(
            line.contains("its --allow or --deny may leave this address out"),
            "{line}"
        );
        server.wait_log(logged);
    }
}

/// A control connection that said Hello and got its turn (the Go frame read).
fn take_turn(port: u16) -> TcpStream {
    let mut control = TcpStream::connect(("127.0.0.1", port)).unwrap();
    control.set_read_timeout(Some(common::STEP)).unwrap();
    control
        .write_all(&[0, 6, 1, b'N', b'E', b'L', b'B', 1])
        .unwrap();
    assert_eq!(frame(&mut control)[0], 3, "Go");
    control
}

#[test]
fn a_run_past_its_time_loses_its_turn_and_a_full_queue_refuses_with_a_reason() {
    let (server, _, udp) = loopback_lab(&[
        "--lab-runs",
        "1",
        "--lab-queue",
        "0",
        "--lab-max-time",
        "2s",
    ]);
    let mut silent = take_turn(server.port());
    // The turn is held: another run is refused at once, and says why.
    let out = common::netecho(
        &["lab", "--quick", &format!("127.0.0.1:{}", server.port())],
        b"",
    );
    let line = common::fails(&out, 1);
    assert!(line.contains("the lab server is busy"), "{line}");
    // The silent run never says Done: past --lab-max-time the server takes the turn back.
    let error = frame(&mut silent);
    assert_eq!(error[0], 6, "Error");
    let text = String::from_utf8_lossy(&error);
    assert!(text.contains("took longer than 2 s"), "{text}");
    assert_eq!(udp_echo(udp, b"late"), None, "the turn is over");
    // The next run gets the turn (its Go; a whole lab run here would have to fit the 2 s
    // limit, which a loaded machine need not give it).
    common::eventually("the turn given to the next run", || {
        let (_, first) = hello_from("127.0.0.1", server.port(), None);
        (first[0] == 3).then_some(())
    });
}

#[test]
fn a_turn_that_reaches_no_echo_port_ends_while_another_run_waits() {
    let (server, _, _) = loopback_lab(&["--lab-runs", "1"]);
    let port = server.port();
    let (mut idle, go) = hello_from("127.0.0.1", port, Some("127.0.0.30"));
    assert_eq!(go[0], 3, "Go");
    let (mut waiting, queued) = hello_from("127.0.0.1", port, Some("127.0.0.31"));
    assert_eq!(place_of(&queued), 1);
    // Told every 2 s while it waits: far fewer frames than --lab-max-time (120 s) takes.
    let go = (0..40).any(|_| frame(&mut waiting)[0] == 3);
    assert!(
        go,
        "the waiting run's turn before the idle one's time ran out"
    );
    let error = frame(&mut idle);
    assert_eq!(error[0], 6, "Error");
    let text = String::from_utf8_lossy(&error);
    assert!(text.contains("reached no echo port for 30 s"), "{text}");
}

#[test]
fn a_turn_that_comes_to_a_run_that_left_goes_on_to_the_next() {
    let (server, _, _) = loopback_lab_told(&["--lab-runs", "1"]);
    let port = server.port();
    let (mut first, go) = hello_from("127.0.0.1", port, Some("127.0.0.40"));
    assert_eq!(go[0], 3, "Go");
    let (gone, queued) = hello_from("127.0.0.1", port, Some("127.0.0.41"));
    assert_eq!(place_of(&queued), 1);
    let (mut third, queued) = hello_from("127.0.0.1", port, Some("127.0.0.42"));
    assert_eq!(place_of(&queued), 2);
    // The second leaves just as the first ends its turn.
    drop(gone);
    first.write_all(&DONE).unwrap();
    assert_eq!(frame(&mut first)[0], 5, "Account");
    let go = (0..10).any(|_| frame(&mut third)[0] == 3);
    assert!(go, "the third run's turn");
    // Each measuring line names the run's address with its port.
    let log = server.wait_log_count(": measuring beside", 2);
    let line_of = |a: &str, b: &str| log.lines().position(|l| l.contains(a) && l.contains(b));
    assert!(
        line_of("from 127.0.0.41:", ": measuring").is_none(),
        "{log}"
    );
    // The first run's end is said before the turn it freed is given.
    let ended = line_of("from 127.0.0.40", "measured");
    let next = line_of("from 127.0.0.42:", ": measuring");
    assert!(ended.is_some() && ended < next, "{log}");
}

#[test]
fn lab_at_an_echo_server_says_it_is_not_a_lab_server() {
    let echo = Server::start(&["--addr", "127.0.0.1:0"]);
    let out = common::netecho(&["lab", "--quick", &echo.addr], b"");
    let line = common::fails(&out, 1);
    assert!(line.contains("not a lab server"), "{line}");
    assert!(line.contains("serve --lab"), "{line}");
}

/// The Hello frame of control protocol version 1, and Done.
const HELLO: [u8; 8] = [0, 6, 1, b'N', b'E', b'L', b'B', 1];
const DONE: [u8; 3] = [0, 1, 4];

/// A control connection from `source` (None: the kernel's choice) that said Hello, and the
/// first frame it got back.
fn hello_from(server: &str, port: u16, source: Option<&str>) -> (TcpStream, Vec<u8>) {
    let addr: std::net::SocketAddr = format!("{server}:{port}").parse().unwrap();
    let domain = socket2::Domain::for_address(addr);
    let sock = socket2::Socket::new(domain, socket2::Type::STREAM, None).unwrap();
    if let Some(source) = source {
        let from: std::net::SocketAddr = format!("{source}:0").parse().unwrap();
        sock.bind(&from.into()).unwrap();
    }
    sock.connect_timeout(&addr.into(), common::STEP).unwrap();
    let mut conn: TcpStream = sock.into();
    conn.set_read_timeout(Some(common::STEP)).unwrap();
    conn.write_all(&HELLO).unwrap();
    let first = frame(&mut conn);
    (conn, first)
}

/// The place a Queued frame says.
fn place_of(queued: &[u8]) -> u16 {
    assert_eq!(queued[0], 2, "Queued: {queued:?}");
    u16::from_be_bytes([queued[1], queued[2]])
}

/// Runs `f` on a thread inside the network namespace `ns`: the sockets it makes stay there.
fn in_namespace<T: Send>(ns: &str, f: impl FnOnce() -> T + Send) -> T {
    let path = format!("/var/run/netns/{ns}");
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let file = std::fs::File::open(&path).expect("open the namespace");
                // Safety: a valid descriptor of a network namespace, for this thread only.
                let r = unsafe {
                    libc::setns(std::os::fd::AsRawFd::as_raw_fd(&file), libc::CLONE_NEWNET)
                };
                assert_eq!(r, 0, "setns: {}", std::io::Error::last_os_error());
                f()
            })
            .join()
            .unwrap()
    })
}

/// A second students' namespace, joined to the server's by a veth pair of its own: a
/// second client address (10.235.0.2) for the lab server to tell apart from 10.234.0.2.
struct Second {
    ns: String,
}

const SECOND_SERVER_V4: &str = "10.235.0.1";

impl Pair {
    fn second(&self) -> Result<Second, String> {
        let second = Second {
            ns: format!("{}2", self.client),
        };
        ip(&["ip", "netns", "add", &second.ns])?;
        let (veth_server, veth_client) = (
            format!("{}t", self.veth_server),
            format!("{}d", self.veth_client),
        );
        ip(&[
            "ip",
            "link",
            "add",
            &veth_server,
            "netns",
            &self.server,
            "type",
            "veth",
            "peer",
            "name",
            &veth_client,
            "netns",
            &second.ns,
        ])?;
        for (ns, veth, v4) in [
            (&self.server, &veth_server, "10.235.0.1/24"),
            (&second.ns, &veth_client, "10.235.0.2/24"),
        ] {
            ip(&["ip", "-n", ns, "addr", "add", v4, "dev", veth])?;
            ip(&["ip", "-n", ns, "link", "set", veth, "up"])?;
            ip(&["ip", "-n", ns, "link", "set", "lo", "up"])?;
        }
        Ok(second)
    }
}

impl Second {
    /// `lab ARGS` from the second students' namespace, started.
    fn student(&self, args: &[&str]) -> std::process::Child {
        student_in(&self.ns, args)
    }
}

impl Drop for Second {
    fn drop(&mut self) {
        let _ = ip(&["ip", "netns", "del", &self.ns]);
    }
}

/// The pair and a second students' namespace for `tag`, or a skip saying what is missing.
fn two_addresses(tag: &str, test: &str) -> Option<(Pair, Second)> {
    let pair = match Pair::create(tag) {
        Ok(pair) => pair,
        Err((needs, lacks)) => {
            skip(test, &needs, lacks);
            return None;
        }
    };
    match pair.second() {
        Ok(second) => Some((pair, second)),
        Err(e) => panic!("a second students' namespace: {e}"),
    }
}

#[test]
fn many_runs_from_one_address_do_not_keep_another_address_waiting_behind_them() {
    let test = "many_runs_from_one_address_do_not_keep_another_address_waiting_behind_them";
    let Some((pair, second)) = two_addresses("f", test) else {
        return;
    };
    let server = pair.lab_server(&[
        "--addr",
        "[::]:3235",
        "--lab-runs",
        "1",
        "--lab-per-address",
        "16",
    ]);
    let _ = announced(&server);
    // Address A (10.234.0.2) holds the one turn and has eight more runs waiting.
    let (mut held, waiting) = in_namespace(&pair.client, || {
        let (held, go) = hello_from(SERVER_V4, 3235, None);
        assert_eq!(go[0], 3, "Go");
        let waiting: Vec<TcpStream> = (1..=8)
            .map(|n| {
                let (conn, queued) = hello_from(SERVER_V4, 3235, None);
                assert_eq!(place_of(&queued), n);
                conn
            })
            .collect();
        (held, waiting)
    });
    // Address B's run comes last, and is next.
    let mut b = second.student(&["--quick", SECOND_SERVER_V4]);
    let log = common::eventually("B's run in the server's log", || {
        if let Ok(Some(_)) = b.try_wait() {
            return Some(None);
        }
        Some(Some(server.stderr()))
            .filter(|log| log.as_ref().is_none_or(|l| l.contains("10.235.0.2")))
    });
    let Some(log) = log else {
        let out = output_within(b, "B", RUN);
        panic!("B ended early: {}", String::from_utf8_lossy(&out.stderr));
    };
    let line = log
        .lines()
        .find(|l| l.contains("from 10.235.0.2") || l.contains("from [::ffff:10.235.0.2]"))
        .unwrap();
    assert!(line.contains("number 1 in the queue"), "{line}");
    held.write_all(&DONE).unwrap();
    assert_eq!(frame(&mut held)[0], 5, "Account");
    let (report, log) = ok_output(b, "lab --quick from the second address", RUN);
    assert!(log.contains("this run is number 1 in its queue"), "{log}");
    let line = report.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(line.contains("(number 1 at first)"), "{report}");
    // A's runs waited on meanwhile, the first of them now measuring or next.
    drop(waiting);
}

#[test]
fn silent_connections_from_one_address_do_not_lock_another_out() {
    let test = "silent_connections_from_one_address_do_not_lock_another_out";
    let Some((pair, second)) = two_addresses("q", test) else {
        return;
    };
    let server = pair.lab_server(&["--addr", "[::]:3235", "--lab-runs", "1", "--lab-queue", "3"]);
    let _ = announced(&server);
    // Twenty connections from A that never say Hello.
    let silent: Vec<TcpStream> = in_namespace(&pair.client, || {
        (0..20)
            .map(|_| TcpStream::connect((SERVER_V4, 3235)).unwrap())
            .collect()
    });
    let b = second.student(&["--quick", SECOND_SERVER_V4]);
    let (report, _) = ok_output(b, "lab --quick beside twenty silent connections", RUN);
    assert!(says_how_it_shared(&report), "{report}");
    // Past the eight runs one address may hold, they were closed at once, with nothing sent
    // back.
    let (closed, held) = heard_to_the_close(silent);
    assert_eq!(
        (closed, held),
        (12, 8),
        "20 silent connections from one address"
    );
}

/// Connections that never said Hello, read to their close: how many were closed at once
/// (nothing sent back) and how many were held to the Hello deadline (the server's line
/// why, then the close). What was said tells them apart, however late each close comes.
fn heard_to_the_close(silent: Vec<TcpStream>) -> (usize, usize) {
    let heard: Vec<String> = silent
        .into_iter()
        .map(|mut conn| {
            conn.set_read_timeout(Some(common::STEP)).unwrap();
            let mut said = Vec::new();
            let _ = conn.read_to_end(&mut said);
            String::from_utf8_lossy(&said).into_owned()
        })
        .collect();
    let closed = heard.iter().filter(|said| said.is_empty()).count();
    let held = heard
        .iter()
        .filter(|said| said.contains("nothing said within 5 s of connecting"))
        .count();
    assert_eq!(closed + held, heard.len(), "{heard:?}");
    (closed, held)
}

#[test]
fn one_address_holds_at_most_lab_per_address_runs_and_the_ninth_is_told_why() {
    let (server, _, _) = loopback_lab(&["--lab-runs", "1", "--lab-queue", "64"]);
    let port = server.port();
    let (_held, go) = hello_from("127.0.0.1", port, None);
    assert_eq!(go[0], 3, "Go");
    let _waiting: Vec<TcpStream> = (1..=7)
        .map(|n| {
            let (conn, queued) = hello_from("127.0.0.1", port, None);
            assert_eq!(place_of(&queued), n);
            conn
        })
        .collect();
    let out = common::netecho(&["lab", "--quick", &format!("127.0.0.1:{port}")], b"");
    let line = common::fails(&out, 1);
    assert!(line.contains("8 runs from 127.0.0.1"), "{line}");
    assert!(line.contains("raises --lab-per-address"), "{line}");
    // Another address still gets in line, and is next.
    let (_other, queued) = hello_from("127.0.0.1", port, Some("127.0.0.2"));
    assert_eq!(place_of(&queued), 1);
}

#[test]
fn a_run_waiting_past_wait_stops_and_says_the_place_it_reached() {
    let (server, _, _) = loopback_lab(&["--lab-runs", "1"]);
    let port = server.port();
    let _held = take_turn(port);
    let out = common::netecho(
        &[
            "lab",
            "--quick",
            "--wait",
            "2s",
            &format!("127.0.0.1:{port}"),
        ],
        b"",
    );
    let line = common::fails(&out, 1);
    assert!(line.contains("waited 2 s (--wait)"), "{line}");
    assert!(line.contains("still number 1 in its queue"), "{line}");
    assert!(line.contains("give a longer --wait"), "{line}");
}

#[test]
fn a_tls_lab_runs_with_the_pinned_fingerprint_and_refuses_another() {
    let (server, _, _) = loopback_lab(&["--tls"]);
    let host = format!("127.0.0.1:{}", server.port());
    let pin = server.pin();
    let (report, _) = lab_here(&["--tls", "--pin", &pin, &host]);
    for row in ["tcp", "udp", "tls", "quic"] {
        assert!(report.contains(&format!("\n{row} ")), "{row}: {report}");
    }
    // The secure rows trust the control port's own certificate, which the run checked.
    let line = report.split_whitespace().collect::<Vec<_>>().join(" ");
    let named = pin.replace(':', "");
    assert!(
        line.contains(&format!("sha256 {named}, which came over the TLS control")),
        "{report}"
    );
    assert!(
        report.contains("had the server to itself while measuring"),
        "{report}"
    );
    let wrong = "00".repeat(32);
    let out = common::netecho(&["lab", "--quick", "--tls", "--pin", &wrong, &host], b"");
    let line = common::fails(&out, 1);
    assert!(line.contains("not the pinned"), "{line}");
    // The line writes fingerprints with colons, as openssl does; the pin may have none.
    assert!(line.replace(':', "").contains(&named), "{line}");
}

#[test]
fn plain_and_tls_lab_mismatches_say_what_to_add_or_leave_out() {
    let (tls, _, _) = loopback_lab(&["--tls"]);
    let out = common::netecho(
        &["lab", "--quick", &format!("127.0.0.1:{}", tls.port())],
        b"",
    );
    let line = common::fails(&out, 1);
    assert!(
        line.contains("speaks TLS (serve --lab --tls): add --tls"),
        "{line}"
    );
    let (plain, _, _) = loopback_lab(&[]);
    let out = common::netecho(
        &[
            "lab",
            "--quick",
            "--tls",
            "--insecure",
            &format!("127.0.0.1:{}", plain.port()),
        ],
        b"",
    );
    let line = common::fails(&out, 1);
    assert!(line.contains("leave out --tls"), "{line}");
    // The plain server says what it got, and serves on.
    plain.wait_log("a TLS ClientHello, but this server speaks plain TCP");
    lab_here(&[&format!("127.0.0.1:{}", plain.port())]);
}

#[test]
fn addresses_that_come_and_go_do_not_keep_a_waiting_run_from_its_turn() {
    let (server, _, _) = loopback_lab(&["--lab-runs", "1"]);
    let port = server.port();
    let lab = "127.0.0.1";
    // C has had a turn and waits with a second run; A and B take short turns in rotation,
    // each joining while the other measures.
    let (mut holder, go) = hello_from(lab, port, Some("127.0.0.4"));
    assert_eq!(go[0], 3, "Go");
    let (mut waiting, queued) = hello_from(lab, port, Some("127.0.0.4"));
    assert_eq!(queued[0], 2, "Queued");
    for turn in 0..6 {
        let source = ["127.0.0.2", "127.0.0.3"][turn % 2];
        let (mut next, queued) = hello_from(lab, port, Some(source));
        assert_eq!(queued[0], 2, "Queued");
        holder.write_all(&DONE).unwrap();
        assert_eq!(frame(&mut holder)[0], 5, "Account");
        // The turn went to `next` (Go) or to C (`next` hears only its place, every 2 s).
        let to_next = (0..3).any(|_| frame(&mut next)[0] == 3);
        if !to_next {
            let go = (0..4).any(|_| frame(&mut waiting)[0] == 3);
            assert!(go, "C's turn after {turn} turns of others");
            return;
        }
        holder = next;
    }
    panic!("C still waits after six turns of two addresses that came and went");
}

/// A connection from `source` to `port` on 127.0.0.1 that has said nothing yet.
fn silent_from(port: u16, source: &str) -> TcpStream {
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    let from: std::net::SocketAddr = format!("{source}:0").parse().unwrap();
    sock.bind(&from.into()).unwrap();
    let to: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    sock.connect_timeout(&to.into(), common::STEP).unwrap();
    sock.into()
}

/// Sources on this host are users (every local user has all of 127.0.0.0/8): seventeen
/// users, eight silent connections each, are more than the server holds.
#[test]
fn silent_connections_filling_the_server_from_many_sources_do_not_lock_a_student_out() {
    let test = "silent_connections_filling_the_server_from_many_sources_do_not_lock_a_student_out";
    if !nix::unistd::Uid::effective().is_root() {
        return skip(
            test,
            "root, to make sockets other users own",
            Lacks::Provided,
        );
    }
    let (server, _, _) = loopback_lab(&[]);
    let to = format!("127.0.0.1:{}", server.port());
    let silent: Vec<TcpStream> = (1..=17)
        .flat_map(|n| (0..8).map(move |_| 60_000 + n))
        .map(|uid| {
            common::tcp_from(
                common::socket_of(uid, socket2::Type::STREAM),
                "127.0.0.1",
                &to,
            )
        })
        .collect();
    server.wait_log("closed the oldest of 8 from uid 600");
    let port = server.port();
    let (report, _) = lab_here(&[&format!("127.0.0.1:{port}")]);
    assert!(says_how_it_shared(&report), "{report}");
    drop(silent);
}

#[test]
fn an_echo_connection_opened_during_a_turn_gets_no_echo_after_it() {
    let (server, tcp, _) = loopback_lab(&["--lab-runs", "1"]);
    let port = server.port();
    let (mut control, go) = hello_from("127.0.0.1", port, Some("127.0.0.5"));
    assert_eq!(go[0], 3, "Go");
    let mut data = silent_from(tcp, "127.0.0.5");
    data.set_read_timeout(Some(common::STEP)).unwrap();
    data.write_all(b"abc").unwrap();
    let mut echoed = [0u8; 3];
    data.read_exact(&mut echoed).unwrap();
    assert_eq!(&echoed, b"ABC");
    control.write_all(&DONE).unwrap();
    assert_eq!(frame(&mut control)[0], 5, "Account");
    let (_other, go) = hello_from("127.0.0.1", port, Some("127.0.0.6"));
    assert_eq!(go[0], 3, "Go for another address");
    // The connection is still open, but the turn it was opened in is over.
    let _ = data.write_all(b"xyz");
    let mut buf = [0u8; 16];
    match data.read(&mut buf) {
        Ok(0) | Err(_) => {}
        Ok(n) => panic!("echoed after the turn ended: {:?}", &buf[..n]),
    }
}

/// Whether a connection from `source` to the tcp echo port `tcp` echoes a byte.
fn echoes_from(tcp: u16, source: &str) -> Option<TcpStream> {
    let mut data = silent_from(tcp, source);
    data.set_read_timeout(Some(common::STEP)).unwrap();
    data.write_all(b"a").ok()?;
    let mut echoed = [0u8; 1];
    data.read_exact(&mut echoed).ok()?;
    (&echoed == b"A").then_some(data)
}

#[test]
fn a_run_holding_its_turn_cannot_take_the_echo_ports_connections_from_the_others() {
    let (server, tcp, _) = loopback_lab(&[]);
    let port = server.port();
    let (_hog, go) = hello_from("127.0.0.1", port, Some("127.0.0.20"));
    assert_eq!(go[0], 3, "Go");
    // One connection at a time, each answered before the next: the count is exact.
    let held: Vec<TcpStream> = (0..100)
        .filter_map(|_| echoes_from(tcp, "127.0.0.20"))
        .collect();
    assert_eq!(held.len(), 64, "one turn's share of the tcp port");
    server.wait_log("echo connections from 127.0.0.20 already");
    // Another student measures beside it, every row.
    let (report, _) = lab_here(&[&format!("127.0.0.1:{port}")]);
    assert!(
        report.contains("shared the server with 1 other run"),
        "{report}"
    );
    drop(held);
}

#[test]
fn a_connection_closed_at_once_says_so_in_one_line_over_plain_and_tls() {
    for tls in [false, true] {
        let (server, _, _) = loopback_lab(if tls { &["--tls"] } else { &[] });
        let host = format!("127.0.0.1:{}", server.port());
        // Eight silent connections: as many as one address may have.
        let _silent: Vec<TcpStream> = (0..8)
            .map(|_| silent_from(server.port(), "127.0.0.1"))
            .collect();
        let pin = if tls { server.pin() } else { String::new() };
        let mut args = vec!["lab", "--quick", &host];
        if tls {
            args.extend(["--tls", "--pin", &pin]);
        }
        let out = common::netecho(&args, b"");
        let line = common::fails(&out, 1);
        assert!(
            line.contains("closed the connection unanswered")
                && line.contains("--allow or --deny")
                && line.contains("try again in a moment)"),
            "tls {tls}: {line}"
        );
        server.wait_log("8 connections from uid 0 on this host have not said Hello yet");
    }
}

/// Silent connections that `uid` keeps open to the lab server on `port` from 127.0.0.1,
/// each opened again when the server closes it (at once, or at the Hello deadline): the
/// holder, killed when dropped, once it said it holds `count`.
fn silent_as(uid: u32, port: u16, count: usize) -> common::Peer {
    const HOLD: &str = "import select, socket, sys, time
port, count = int(sys.argv[1]), int(sys.argv[2])
def opened():
    return socket.create_connection(('127.0.0.1', port), timeout=10)
held = [opened() for _ in range(count)]
print('held', count, flush=True)
end = time.monotonic() + 90
while time.monotonic() < end:
    ready, _, _ = select.select(held, [], [], 0.5)
    for conn in ready:
        try:
            said = conn.recv(4096)
        except OSError:
            said = b''
        if not said:
            held.remove(conn)
            conn.close()
            held.append(opened())
    time.sleep(0.05)
";
    let mut holder = Command::new("setpriv");
    holder
        .args([&format!("--reuid={uid}"), &format!("--regid={uid}")])
        .args(["--clear-groups", "--", "/usr/bin/python3", "-c", HOLD])
        .args([port.to_string(), count.to_string()]);
    let (holder, said) = common::started(&mut holder);
    assert_eq!(said, format!("held {count}"));
    holder
}

/// Every user of this host shares 127.0.0.1: one user's silent connections, as many as a
/// source may have and more, shut that user's newcomers out, never another user's run.
#[test]
fn one_local_user_s_silent_connections_shut_no_other_user_out() {
    let test = "one_local_user_s_silent_connections_shut_no_other_user_out";
    if !common::can_switch_user() {
        let needs = "root and setpriv (util-linux) to connect as another user";
        return skip(test, needs, Lacks::Provided);
    }
    let (server, _, _) = loopback_lab(&[]);
    let port = server.port();
    let _silent = silent_as(65534, port, 16);
    server.wait_log("8 connections from uid 65534 on this host have not said Hello yet");
    // Root's run, from the same 127.0.0.1: measured.
    let (report, _) = lab_here(&[&format!("127.0.0.1:{port}")]);
    assert!(report.contains("\ntcp "), "{report}");
}

#[test]
fn the_addresses_of_one_ipv6_64_count_as_one_address() {
    let test = "the_addresses_of_one_ipv6_64_count_as_one_address";
    let pair = match Pair::create("6") {
        Ok(pair) => pair,
        Err((needs, lacks)) => return skip(test, &needs, lacks),
    };
    for n in 10..16 {
        let v6 = format!("fd00:234::{n}/64");
        let dev = &pair.veth_client;
        ip(&[
            "ip",
            "-n",
            &pair.client,
            "-6",
            "addr",
            "add",
            &v6,
            "dev",
            dev,
            "nodad",
        ])
        .unwrap();
    }
    let server = pair.lab_server(&[
        "--addr",
        "[::]:3235",
        "--lab-runs",
        "1",
        "--lab-per-address",
        "2",
    ]);
    let _ = announced(&server);
    let lab = "[fd00:234::1]";
    in_namespace(&pair.client, || {
        // Two runs from two addresses of the /64 are all it may hold: a third is refused.
        let (_measuring, go) = hello_from(lab, 3235, Some("[fd00:234::10]"));
        assert_eq!(go[0], 3, "Go");
        let (_waiting, queued) = hello_from(lab, 3235, Some("[fd00:234::11]"));
        assert_eq!(queued[0], 2, "Queued");
        let (_, refused) = hello_from(lab, 3235, Some("[fd00:234::12]"));
        let text = String::from_utf8_lossy(&refused);
        assert!(text.contains("2 runs from fd00:234::/64"), "{text}");
        // The turns go round by client as the cap counts them: a run of another client
        // goes before the /64's second, whichever of its addresses that one came from.
        let (_other, queued) = hello_from(SERVER_V4, 3235, None);
        assert_eq!(place_of(&queued), 1, "another client's place");
        // Six silent connections from six addresses of the /64: past four, closed at once.
        let silent = (10..16)
            .map(|n| {
                let from: std::net::SocketAddr = format!("[fd00:234::{n}]:0").parse().unwrap();
                let to: std::net::SocketAddr = format!("{lab}:3235").parse().unwrap();
                let sock = socket2::Socket::new(socket2::Domain::IPV6, socket2::Type::STREAM, None)
                    .unwrap();
                sock.bind(&from.into()).unwrap();
                sock.connect_timeout(&to.into(), common::STEP).unwrap();
                TcpStream::from(sock)
            })
            .collect();
        let (closed, held) = heard_to_the_close(silent);
        assert_eq!((closed, held), (2, 4), "6 silent connections from one /64");
    });
}

#[test]
fn serve_lab_with_a_proto_says_the_lab_server_speaks_its_own_protocol_over_tcp() {
    for proto in ["udp", "tcp", "unix"] {
        let out = common::netecho(&["serve", "--lab", "--proto", proto], b"");
        let line = common::fails(&out, 2);
        assert!(
            line.contains(&format!(
                "serve --lab --proto {proto}: the lab server speaks its own protocol over tcp"
            )),
            "{line}"
        );
        assert!(line.contains("leave out --proto"), "{line}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(out.stdout.is_empty(), "nothing was bound: {out:?}");
    }
}

/// `lab --quick` against the lab server on loopback at `port`, as a process.
fn lab_run(port: u16) -> std::process::Child {
    Command::new(bin())
        .args(["lab", "--quick", &format!("127.0.0.1:{port}")])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn runs_whose_lab_server_goes_away_midway_say_so_in_one_line() {
    for signal in ["KILL", "TERM"] {
        let (server, _, _) = loopback_lab_told(&["--lab-runs", "1"]);
        let measuring = lab_run(server.port());
        server.wait_log("measuring beside 0 other runs");
        let waiting = lab_run(server.port());
        server.wait_log("number 1 in the queue");
        server.stop(signal);
        for (run, what) in [(measuring, "measuring"), (waiting, "waiting")] {
            let out = output_within(run, &format!("lab {what} ({signal})"), RUN);
            // The server's ports closed with it: a closed port, never a firewall.
            let log = String::from_utf8_lossy(&out.stderr).into_owned();
            assert!(!log.contains("firewall"), "{what} ({signal}): {log}");
            let line = common::fails(&out, 1);
            // The waiting run never measured: it is told so, with its place.
            let said = match what {
                "measuring" => "went away in the middle of this run",
                _ => "went away while this run waited its turn, number 1",
            };
            assert!(line.contains(said), "{what} ({signal}): {line}");
            assert!(
                line.contains("check that `netecho serve --lab` is still running there"),
                "{what} ({signal}): {line}"
            );
        }
    }
}

/// The lab's tcp port whose only event loop fails stops serving, with advice the user can
/// follow: `serve --lab` takes no --model. The failure is epoll_wait's own, made to fail by
/// strace (the tcp port's loop is the lab's only caller).
#[test]
fn a_lab_tcp_port_whose_loop_fails_advises_a_restart_and_no_other_model() {
    let test = "a_lab_tcp_port_whose_loop_fails_advises_a_restart_and_no_other_model";
    let (server, tcp, _) = loopback_lab(&["--threads", "1"]);
    let inject = [
        "-e",
        "trace=epoll_wait",
        "-e",
        "inject=epoll_wait:error=EIO:when=150",
    ];
    let Some(_strace) = common::strace::attach(test, server.pid(), &inject) else {
        return;
    };
    let _control = take_turn(server.port());
    let mut data = TcpStream::connect(("127.0.0.1", tcp)).unwrap();
    data.set_read_timeout(Some(common::STEP)).unwrap();
    assert!(
        common::echo_until_closed(&mut data, 2000) > 0,
        "not one round answered"
    );
    let log = server.wait_log("the port stopped serving");
    assert!(
        log.contains("no event loop is left to serve connections: restart the server;"),
        "{log}"
    );
    assert!(!log.contains("--model"), "{log}");
}

#[test]
fn a_run_that_sends_no_message_where_done_belongs_is_logged_as_what_it_sent() {
    let (server, _, _) = loopback_lab(&[]);
    let hello = [0, 6, 1, b'N', b'E', b'L', b'B', 1];
    // A Hello without the lab's mark, and a length past any frame, each after a valid Hello.
    for (sent, logged) in [
        (
            &[0, 6, 1, b'x', b'y', b'z', b'w', 1][..],
            "a malformed Hello",
        ),
        (
            &[0xff, 0xff, 0, 0][..],
            "a control frame length of 65535 bytes",
        ),
    ] {
        let mut conn = TcpStream::connect(("127.0.0.1", server.port())).unwrap();
        conn.set_read_timeout(Some(common::STEP)).unwrap();
        conn.write_all(&hello).unwrap();
        // The turn comes at once: the offer (Go, type 3).
        assert_eq!(frame(&mut conn).first(), Some(&3));
        conn.write_all(sent).unwrap();
        let line = server.wait_log(logged);
        assert!(!line.contains("no lab Hello"), "{line}");
    }
}

/// `lab --quick ARGS` on this host, to its end (within [`RUN`]: a whole run's rows, tls and
/// quic among them, on a loaded machine): stdout and stderr.
/// Whether a report says how the run shared the server (its notes read as one line).
fn says_how_it_shared(report: &str) -> bool {
    let line = report.split_whitespace().collect::<Vec<_>>().join(" ");
    line.contains("had the server to itself while measuring")
        || line.contains("shared the server with")
}

fn lab_here(args: &[&str]) -> (String, String) {
    let child = Command::new(bin())
        .args(["lab", "--quick"])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start lab");
    ok_output(child, &format!("lab --quick {args:?}"), RUN)
}

#[test]
fn a_run_on_the_servers_own_host_hears_of_a_rate_limit_only_when_one_was_given() {
    // The default rate spares this host's own addresses: no limit to tell of.
    let (server, _, _) = loopback_lab(&[]);
    let control = format!("127.0.0.1:{}", server.port());
    let (json, _) = lab_here(&["--format", "json", &control]);
    let doc: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(doc["meta"]["parameters"]["server_rate"], 0, "{doc}");
    let notes = doc["remote"].to_string();
    assert!(!notes.contains("per second"), "{notes}");
    // The table and everything said on stderr fit 80 columns; each note about a row names
    // it as the table does, once.
    let (table, log) = lab_here(&[&control]);
    let wide: Vec<&str> = table
        .lines()
        .chain(log.lines())
        .filter(|l| l.chars().count() > 80)
        .collect();
    assert!(
        wide.is_empty(),
        "wider than 80 columns: {wide:#?}\n{table}{log}"
    );
    assert!(!table.contains("per second per address"), "{table}");
    for row in ["tcp", "udp"] {
        let notes = table
            .lines()
            .filter(|l| l.starts_with(&format!("- {row}:")))
            .count();
        assert_eq!(notes, 1, "{row}:\n{table}");
    }
    assert!(
        !table.contains("the loss shows"),
        "loopback loses nothing:\n{table}"
    );
    drop(server);
    // Given, the rate binds this host too, and the run is told.
    let (server, _, _) = loopback_lab(&["--rate-limit", "100000"]);
    let control = format!("127.0.0.1:{}", server.port());
    let (json, _) = lab_here(&["--format", "json", &control]);
    let doc: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(doc["meta"]["parameters"]["server_rate"], 100000, "{doc}");
    let notes = doc["remote"].to_string();
    assert!(
        notes.contains("at most 100000 datagrams per second per address"),
        "{notes}"
    );
}

/// A student who may not open raw sockets against a lab server that offers raw: the
/// warning on stderr, and the report on stdout (a file a student hands in) names the row.
#[test]
fn a_raw_row_a_student_cannot_measure_is_named_under_the_table() {
    let test = "a_raw_row_a_student_cannot_measure_is_named_under_the_table";
    if !common::can_drop_net_raw(test) {
        return;
    }
    let (server, _, _) = loopback_lab(&[]);
    let control = format!("127.0.0.1:{}", server.port());
    let run = common::without_net_raw(&["lab", "--quick", &control])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start lab");
    let (table, log) = ok_output(run, "lab without CAP_NET_RAW", RUN);
    assert!(log.contains("WARN lab: raw rows skipped"), "{log}");
    assert!(!table.lines().any(|l| l.starts_with("raw ")), "{table}");
    let joined = table.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        joined.contains("- raw: not measured: this run cannot open raw sockets"),
        "{table}"
    );
    assert!(joined.contains("CAP_NET_RAW"), "{table}");
}

#[test]
fn a_run_over_the_rate_limit_is_named_in_the_servers_warning() {
    let (server, _, udp) = loopback_lab(&["--rate-limit", "100"]);
    let _control = take_turn(server.port());
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    for i in 0..1000u32 {
        sock.send_to(&i.to_be_bytes(), ("127.0.0.1", udp)).unwrap();
    }
    let line = server.wait_log("over --rate-limit");
    assert!(line.contains("(127.0.0.1)"), "{line}");
}

impl Pair {
    /// nftables in the server's namespace dropping what arrives for `proto` port `port`
    /// (its SYNs, or its datagrams), replacing the rule set before.
    fn firewall(&self, proto: &str, port: u16) -> Result<(), String> {
        firewall_in(&self.server, "input", proto, port)
    }
}

/// nftables in namespace `ns` dropping `proto` port `port` at `hook` (input: what arrives;
/// output: what this namespace sends), replacing the rule set before.
fn firewall_in(ns: &str, hook: &str, proto: &str, port: u16) -> Result<(), String> {
    let rules = format!(
        "flush ruleset\ntable inet netecho_fw {{\n  chain {hook} {{\n    type filter hook \
         {hook} priority 0; policy accept;\n    {proto} dport {port} drop\n  }}\n}}\n"
    );
    let mut nft = Command::new("ip")
        .args(["netns", "exec", ns, "nft", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("nft: {e}"))?;
    let _ = nft.stdin.take().unwrap().write_all(rules.as_bytes());
    let out = nft.wait_with_output().map_err(|e| format!("nft: {e}"))?;
    match out.status.success() {
        true => Ok(()),
        false => Err(String::from_utf8_lossy(&out.stderr).trim().to_string()),
    }
}

/// The namespaces, the lab server, its announced lines and ports, and its control address.
type Served = (Pair, Server, (Vec<String>, u16, u16), String);

/// A lab server on the server's IPv4 address (its control port chosen by the kernel) in the
/// namespaces of `tag`; `None` after a skip.
fn served_v4(tag: &str, test: &str) -> Option<Served> {
    let pair = match Pair::create(tag) {
        Ok(pair) => pair,
        Err((needs, lacks)) => {
            skip(test, &needs, lacks);
            return None;
        }
    };
    let server = pair.lab_server(&["--addr", &format!("{SERVER_V4}:0")]);
    let announced = announced(&server);
    let control = format!("{SERVER_V4}:{}", server.port());
    Some((pair, server, announced, control))
}

#[test]
fn a_link_local_lab_server_is_reached_with_its_zone_and_advised_without_one() {
    let test = "a_link_local_lab_server_is_reached_with_its_zone_and_advised_without_one";
    let pair = match Pair::create("l") {
        Ok(pair) => pair,
        Err((needs, lacks)) => return skip(test, &needs, lacks),
    };
    let _server = pair.lab_server(&["--addr", "[::]:3235"]);
    let server = common::netns::link_local(&pair.server, &pair.veth_server);
    common::netns::link_local(&pair.client, &pair.veth_client);
    let zoned = format!("{server}%{}", pair.veth_client);
    // Bracketed with the port, and bare: the zone reaches the control port and every
    // announced echo port.
    for host in [format!("[{zoned}]:3235"), zoned.clone()] {
        let (table, log) = ok_output(pair.student(&["--quick", &host]), &host, RUN);
        assert!(
            table.lines().any(|l| l.starts_with("tcp6 ")),
            "{host}: {table}"
        );
        assert!(
            table.lines().any(|l| l.starts_with("udp6 ")),
            "{host}: {table}"
        );
        assert!(!log.contains("could not connect"), "{host}: {log}");
    }
    // Without a zone: which interface is meant cannot be told, and the line says how to.
    let out = output_within(
        pair.student(&["--quick", &server]),
        "lab without a zone",
        RUN,
    );
    let line = common::fails(&out, 2);
    assert!(line.contains("is link-local"), "{line}");
    assert!(line.contains(&format!("[{server}%eth0]:3235")), "{line}");
}

/// A student's namespace, a router's, and a teacher's: student 10.236.0.2 -> router ->
/// teacher 10.237.0.2 on a link of MTU 1400; deleted when dropped.
struct Routed {
    names: [String; 3],
}

impl Routed {
    fn create() -> Result<Routed, (String, Lacks)> {
        if !nix::unistd::Uid::effective().is_root() {
            return Err(("root to create network namespaces".into(), Lacks::Provided));
        }
        let id = std::process::id();
        let routed = Routed {
            names: ["s", "r", "t"].map(|n| format!("nelr-{id}m-{n}")),
        };
        routed.build().map_err(|e| (e, Lacks::Environment))?;
        Ok(routed)
    }

    fn build(&self) -> Result<(), String> {
        let [student, router, teacher] = &self.names;
        for ns in &self.names {
            ip(&["ip", "netns", "add", ns])?;
            ip(&["ip", "-n", ns, "link", "set", "lo", "up"])?;
        }
        let id = std::process::id();
        let links = [
            (
                student,
                "10.236.0.2/24",
                router,
                "10.236.0.1/24",
                "1500",
                "a",
            ),
            (
                teacher,
                "10.237.0.2/24",
                router,
                "10.237.0.1/24",
                "1400",
                "b",
            ),
        ];
        for (end, end_ip, hop, hop_ip, mtu, tag) in links {
            let (e, h) = (format!("nm{id}{tag}e"), format!("nm{id}{tag}h"));
            let add = [
                "ip", "link", "add", &e, "netns", end, "type", "veth", "peer", "name",
            ];
            ip(&[&add[..], &[&h, "netns", hop]].concat())?;
            for (ns, dev, addr) in [(end, &e, end_ip), (hop, &h, hop_ip)] {
                ip(&["ip", "-n", ns, "addr", "add", addr, "dev", dev])?;
                ip(&["ip", "-n", ns, "link", "set", dev, "mtu", mtu, "up"])?;
            }
            let gateway = hop_ip.split('/').next().unwrap_or_default();
            ip(&["ip", "-n", end, "route", "add", "default", "via", gateway])?;
        }
        ip(&[
            "ip",
            "netns",
            "exec",
            router,
            "sysctl",
            "-qw",
            "net.ipv4.ip_forward=1",
        ])
    }
}

impl Drop for Routed {
    fn drop(&mut self) {
        for ns in &self.names {
            let _ = ip(&["ip", "netns", "del", ns]);
        }
    }
}

#[test]
fn the_path_mtu_is_read_after_the_run_that_teaches_it_to_the_kernel() {
    let test = "the_path_mtu_is_read_after_the_run_that_teaches_it_to_the_kernel";
    let routed = match Routed::create() {
        Ok(routed) => routed,
        Err((needs, lacks)) => return skip(test, &needs, lacks),
    };
    let [student, _, teacher] = &routed.names;
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", teacher, bin(), "serve", "--lab"])
        .args(["--addr", "10.237.0.2:0"]);
    let server = Server::start_with(&mut cmd);
    let child = Command::new("ip")
        .args([
            "netns",
            "exec",
            student,
            bin(),
            "lab",
            "--quick",
            "--format",
            "json",
        ])
        .arg(format!("10.237.0.2:{}", server.port()))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start lab");
    let (stdout, _) = ok_output(child, "lab --quick across a router", RUN);
    let doc: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    // The student's own link is 1500; the router's link to the teacher 1400, which the run's
    // packets taught the kernel (ICMP "fragmentation needed").
    assert_eq!(doc["path"]["dev_mtu"], 1500, "{}", doc["path"]);
    assert_eq!(doc["path"]["path_mtu"], 1400, "{}", doc["path"]);
    assert_eq!(doc["path"]["path_mtu_before"], 1500, "{}", doc["path"]);
    // A port nothing listens on: `serve --lab` binds every address by default, so the
    // advice of a server bound to 127.0.0.1 only is not given.
    let out = common::run(
        Command::new("ip").args(["netns", "exec", student, bin(), "lab", "10.237.0.2:9"]),
        b"",
    );
    let line = common::fails(&out, 1);
    assert!(
        line.contains("nothing listens on that port there"),
        "{line}"
    );
    assert!(!line.contains("127.0.0.1 only"), "{line}");
}

#[test]
fn a_students_udp_row_measures_the_network_not_a_rate_limit() {
    let test = "a_students_udp_row_measures_the_network_not_a_rate_limit";
    let Some((pair, server, (lines, _, _), control)) = served_v4("u", test) else {
        return;
    };
    assert!(
        lines.iter().any(|l| l.contains("as fast as a run sends")),
        "{lines:?}"
    );
    let child = pair.student(&["--quick", "--format", "json", &control]);
    let (stdout, _) = ok_output(child, "lab --quick --format json", RUN);
    let doc: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(doc["meta"]["parameters"]["server_rate"], 0, "{doc}");
    let notes = doc["remote"].to_string();
    assert!(!notes.contains("per second"), "{notes}");
    let log = server.stderr();
    assert!(!log.contains("over --rate-limit"), "{log}");
}

#[test]
fn a_firewalled_echo_port_is_said_and_the_other_rows_are_measured() {
    let test = "a_firewalled_echo_port_is_said_and_the_other_rows_are_measured";
    let Some((pair, _server, (_, tcp, udp), control)) = served_v4("f", test) else {
        return;
    };
    if let Err(e) = pair.firewall("udp", udp) {
        return skip(test, &format!("nftables: {e}"), Lacks::Environment);
    }
    // No reply at all: "-" for what was not observed, one sentence and a warning.
    let (table, log) = ok_output(pair.student(&["--quick", &control]), "lab, udp shut", RUN);
    let row = table
        .lines()
        .find(|l| l.starts_with("udp "))
        .unwrap_or_else(|| panic!("no udp row:\n{table}"));
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(cells[2], "-", "p50: {row}");
    assert_eq!(
        &cells[cells.len() - 2..],
        ["-", "-"],
        "bounds, order: {row}"
    );
    let joined = table.split_whitespace().collect::<Vec<_>>().join(" ");
    // The row's sentence is that one alone (no order, no reads, no loss "on the way").
    assert!(
        joined.contains(&format!(
            "100% - - no reply at all to port {udp} (51 requests): a firewall on the server"
        )),
        "{table}"
    );
    assert!(!joined.contains("lost on the way"), "{table}");
    assert!(
        log.contains("WARN lab: udp: no reply at all to port"),
        "{log}"
    );
    // The tcp port's SYNs dropped: said in seconds, and the udp row still measured.
    pair.firewall("tcp", tcp).unwrap();
    let (table, log) = ok_output(pair.student(&["--quick", &control]), "lab, tcp shut", RUN);
    // The log's lines joined again, without the level each wrapped line repeats.
    let log = log
        .lines()
        .map(|l| {
            l.trim_start()
                .trim_start_matches("WARN")
                .trim_start_matches("INFO")
        })
        .flat_map(str::split_whitespace)
        .collect::<Vec<_>>()
        .join(" ");
    assert!(
        log.contains(&format!(
            "could not connect to the announced tcp port {tcp} of {SERVER_V4} (no answer in 5 s)"
        )),
        "{log}"
    );
    assert!(log.contains("a firewall on the way drops it;"), "{log}");
    assert!(table.lines().any(|l| l.starts_with("udp ")), "{table}");
    assert!(!table.lines().any(|l| l.starts_with("tcp ")), "{table}");
    // The report on stdout says so too: saved to a file, it names the row it lacks.
    let joined = table.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        joined.contains(&format!(
            "- tcp: not measured: could not connect to the announced tcp port {tcp}"
        )),
        "{table}"
    );
}

/// A student whose own machine drops its outgoing udp (sendto: EPERM, an OUTPUT rule) on a
/// path whose MTU (1000) is under QUIC's 1200-byte minimum: the udp and quic rows are left
/// out, each with its reason, udp not measured twice, and the rows measured stand, exit 0.
#[test]
fn a_students_own_firewall_and_a_path_under_quics_minimum_leave_those_rows_out() {
    let test = "a_students_own_firewall_and_a_path_under_quics_minimum_leave_those_rows_out";
    let Some((pair, _server, (_, _, udp), control)) = served_v4("o", test) else {
        return;
    };
    for (ns, veth) in [
        (&pair.server, &pair.veth_server),
        (&pair.client, &pair.veth_client),
    ] {
        ip(&["ip", "-n", ns, "link", "set", veth, "mtu", "1000"]).unwrap();
    }
    if let Err(e) = firewall_in(&pair.client, "output", "udp", udp) {
        return skip(test, &format!("nftables: {e}"), Lacks::Environment);
    }
    let child = pair.student(&["--quick", "--format", "json", &control]);
    let (stdout, log) = ok_output(child, "lab, udp refused here, path MTU 1000", RUN);
    let doc: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let rows: Vec<&str> = (doc["rows"].as_array().unwrap().iter())
        .map(|r| r["proto"].as_str().unwrap())
        .collect();
    assert!(rows.contains(&"tcp") && rows.contains(&"tls"), "{rows:?}");
    assert!(
        !rows.contains(&"udp") && !rows.contains(&"quic"),
        "{rows:?}"
    );
    let left_out = doc["left_out"].to_string();
    assert!(
        left_out.contains(
            "udp: not measured: this machine's firewall refuses the udp row's packets to \
             10.234.0.1:"
        ),
        "{left_out}"
    );
    assert!(left_out.contains("(EPERM: an nftables/iptables OUTPUT rule here"));
    assert!(
        left_out.contains("quic: not measured: the path MTU (1000 bytes) is under QUIC's minimum"),
        "{left_out}"
    );
    let again = log.lines().filter(|l| l.contains("once more"));
    assert!(again.clone().all(|l| !l.contains("EPERM")), "{log}");
}

/// Whether a raw socket of IP protocol 254 is open in namespace `ns` (/proc/net/raw: the
/// protocol is the local address's port).
fn raw_254_open(ns: &str) -> bool {
    let out = Command::new("ip")
        .args(["netns", "exec", ns, "cat", "/proc/net/raw"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).lines().any(|l| {
        l.split_whitespace()
            .nth(1)
            .is_some_and(|a| a.ends_with(":00FE"))
    })
}

#[test]
fn a_lab_server_gone_during_the_raw_row_is_said_as_such_not_as_a_raw_server_to_start() {
    let test = "a_lab_server_gone_during_the_raw_row_is_said_as_such_not_as_a_raw_server_to_start";
    let Some((pair, server, _, control)) = served_v4("w", test) else {
        return;
    };
    let run = pair.student(&["--quick", &control]);
    // The student's raw socket: the raw row is under way. Its next request meets ICMP
    // protocol unreachable (or, when the kill lands late, only the closed control
    // connection): either way no advice to start a raw server.
    let raw_row = (0..20_000).any(|_| raw_254_open(&pair.client));
    assert!(raw_row, "the run never opened its raw socket");
    server.stop("KILL");
    let out = output_within(run, "lab, its server killed during the raw row", RUN);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("serve --proto raw"), "{stderr}");
    assert!(stderr.contains("went away"), "{stderr}");
}

/// `lab --quick 127.0.0.1:PORT` on an 80-column terminal (`script`), its status lines read
/// as they come: the server is stopped (SIGSTOP) once the `row` row has begun, and continued
/// after the run ended. What the terminal showed, a line each, and the run's exit code.
fn run_stopped_at_row(server: &Server, row: &str) -> (Vec<String>, i32) {
    let run = run_signalled_at_row(server, row, "STOP");
    common::signal(server.pid(), "CONT");
    run
}

/// `lab --quick 127.0.0.1:PORT` on an 80-column terminal, the server sent `signal` once the
/// `row` row has begun: what the terminal showed, a line each, and the run's exit code.
fn run_signalled_at_row(server: &Server, row: &str, signal: &str) -> (Vec<String>, i32) {
    run_at_row(server, row, || common::signal(server.pid(), signal))
}

/// `lab --quick 127.0.0.1:PORT` on an 80-column terminal, `begun` called once the `row` row
/// has begun: what the terminal showed, a line each, and the run's exit code.
fn run_at_row(server: &Server, row: &str, begun: impl FnOnce()) -> (Vec<String>, i32) {
    let command = format!(
        "stty cols 80; exec {} lab --quick 127.0.0.1:{}",
        bin(),
        server.port()
    );
    let mut child = Command::new("script")
        .args(["-qfec", &command, "/dev/null"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("script (bsdutils)");
    let mut terminal = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<Vec<u8>>();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n @ 1..) = terminal.read(&mut buf) {
            let _ = tx.send(buf[..n].to_vec());
        }
    });
    let (mut seen, mut begun) = (Vec::new(), Some(begun));
    let status_line = format!("] {row} 127.0.0.1");
    while let Ok(bytes) = rx.recv_timeout(Duration::from_secs(120)) {
        seen.extend(bytes);
        if String::from_utf8_lossy(&seen).contains(&status_line)
            && let Some(begun) = begun.take()
        {
            begun();
        }
    }
    let status = common::wait_exit(&mut child, "lab against a stopped server");
    assert!(begun.is_none(), "{}", String::from_utf8_lossy(&seen));
    let code = common::shell_status(&status);
    (common::screen_lines(&String::from_utf8_lossy(&seen)), code)
}

/// The run against a server stopped during `row`: exit 0, the rows before it printed, `row`
/// left out as stopped (`said`, the terminal's words on one line), all on 80 columns.
fn stopped_at(row: &str, before: &[&str]) -> String {
    let (server, _, _) = loopback_lab(&[]);
    let (lines, code) = run_stopped_at_row(&server, row);
    let shown = lines.join("\n");
    assert_eq!(code, 0, "{shown}");
    for measured in before {
        let start = format!("{measured} ");
        assert!(lines.iter().any(|l| l.starts_with(&start)), "{shown}");
    }
    assert!(lines.iter().all(|l| common::columns(l) <= 80), "{shown}");
    // No wrong guess: it is a lab server that answered until then.
    let said = shown.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(!said.contains("as a netecho lab server does"), "{shown}");
    said
}

#[test]
fn a_lab_server_that_stops_answering_midway_leaves_that_row_out_and_the_rest_stand() {
    if !common::have("script", "a_lab_server_that_stops_answering_midway") {
        return;
    }
    // Whether its row's time or its TLS handshake's wait runs out first, the row stalled.
    let said = stopped_at("tls", &["tcp", "udp"]);
    assert!(
        said.contains(
            "tls: not measured: the lab server stopped answering (busy or stopped): run again \
             later"
        ),
        "{said}"
    );
    assert!(said.contains("quic: not measured: not tried"), "{said}");
}

#[test]
fn a_lab_server_stopped_during_the_quic_row_leaves_it_out_and_the_rest_stand() {
    if !common::have("script", "a_lab_server_stopped_during_the_quic_row") {
        return;
    }
    // Its QUIC handshake unanswered, twice, was the lab's error.
    let said = stopped_at("quic", &["tcp", "udp", "tls"]);
    assert!(
        said.contains(
            "quic: not measured: the lab server stopped answering (busy or stopped): run again \
             later"
        ),
        "{said}"
    );
}

/// A lab server stopped in the middle of the tls row's setup column (its fifty handshakes,
/// after the rounds' eleven): the handshake under way gets no answer at all, which is the
/// stall the run says, once, never a question of whether the server speaks TLS, and the
/// row is not measured twice to hear it again.
#[test]
fn a_tls_handshake_a_stopped_lab_server_never_answers_is_said_as_the_stall_alone() {
    // -v: the server logs each handshake it finished.
    let (server, _, _) = loopback_lab(&["-v"]);
    let run = lab_run(server.port());
    server.wait_log("TLS 1.3, ");
    server.wait_log_count("TLS 1.3, ", 20);
    common::signal(server.pid(), "STOP");
    let out = output_within(run, "lab, its server stopped during the tls row", RUN);
    common::signal(server.pid(), "CONT");
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    let said = log.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(out.status.success(), "{log}");
    assert!(said.contains("the lab server stopped answering"), "{log}");
    for question in [
        "speaking TLS",
        "is a QUIC server there",
        "measuring it once more",
    ] {
        assert!(!said.contains(question), "{log}");
    }
}

/// A lab server slowed from the quic row on (stopped and continued, 1 ms of every 100 ms
/// running, as a machine busy with other work leaves it): its fifty QUIC handshakes of the
/// setup column take tens of seconds, past the rounds' own time, and each is answered, so
/// the row is measured, not left out as stalled; the run ends with exit 0.
#[test]
fn a_lab_server_slow_to_answer_the_quic_handshakes_gets_its_quic_row_measured() {
    if !common::have("script", "a_lab_server_slow_to_answer_the_quic_handshakes") {
        return;
    }
    let (server, _, _) = loopback_lab(&[]);
    let done = std::sync::atomic::AtomicBool::new(false);
    let (lines, code) = std::thread::scope(|s| {
        let throttle = || {
            let pid = nix::unistd::Pid::from_raw(server.pid() as i32);
            let done = &done;
            s.spawn(move || {
                use nix::sys::signal::{Signal, kill};
                // Bounded by count too: 1,200 cycles of 100 ms at most.
                for _ in 0..1200 {
                    if done.load(std::sync::atomic::Ordering::Relaxed) {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(1));
                    let _ = kill(pid, Signal::SIGSTOP);
                    std::thread::sleep(Duration::from_millis(99));
                    let _ = kill(pid, Signal::SIGCONT);
                }
            });
        };
        let run = run_at_row(&server, "quic", throttle);
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        run
    });
    common::signal(server.pid(), "CONT");
    let shown = lines.join("\n");
    assert_eq!(code, 0, "{shown}");
    let said = shown.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(!said.contains("quic: not measured"), "{shown}");
    assert!(lines.iter().any(|l| l.starts_with("quic ")), "{shown}");
}

/// A lab server that goes away (killed, say to be restarted) once a row was measured: the
/// row stands, printed, the one under way and those after are named not measured for it,
/// and the run ends with the one line saying it went away, exit 1.
#[test]
fn a_lab_server_gone_after_a_row_keeps_it_and_says_it_went_away() {
    if !common::have("script", "a_lab_server_gone_after_a_row_keeps_it") {
        return;
    }
    let (server, _, _) = loopback_lab(&[]);
    let (lines, code) = run_signalled_at_row(&server, "udp", "KILL");
    let shown = lines.join("\n");
    assert_eq!(code, 1, "{shown}");
    assert!(lines.iter().any(|l| l.starts_with("tcp ")), "{shown}");
    assert!(!lines.iter().any(|l| l.starts_with("udp ")), "{shown}");
    let said = shown.split_whitespace().collect::<Vec<_>>().join(" ");
    for row in ["udp", "tls", "quic"] {
        assert!(
            said.contains(&format!("{row}: not measured: the lab server went away")),
            "{shown}"
        );
    }
    assert!(
        said.contains("went away in the middle of this run"),
        "{shown}"
    );
    assert!(lines.iter().all(|l| common::columns(l) <= 80), "{shown}");
}

/// The last row, raw (root only): the server stopped before its account of the run, the rows
/// measured stand, and raw's loss is a share of what it sent.
#[test]
fn a_lab_server_stopped_during_the_last_row_leaves_its_account_out_and_the_rows_stand() {
    if !nix::unistd::Uid::effective().is_root() {
        common::skip(
            "a_lab_server_stopped_during_the_last_row",
            "root for the raw row",
            common::Lacks::Provided,
        );
        return;
    }
    if !common::have("script", "a_lab_server_stopped_during_the_last_row") {
        return;
    }
    // No account came, and the run ended on that, with nothing measured shown.
    let said = stopped_at("raw", &["tcp", "udp", "tls", "quic"]);
    // The warning's two lines may have the status line between them on the terminal.
    assert!(said.contains("sent no account of the run within"), "{said}");
    assert!(said.contains("the rows measured stand"), "{said}");
    assert!(said.contains("heard no account of the run"), "{said}");
    let raw = said.split(" raw ").nth(1).expect("a raw row");
    let lost = raw.split_whitespace().find_map(|w| w.strip_suffix('%'));
    if let Some(lost) = lost {
        assert!(lost.parse::<f64>().unwrap() <= 100.0, "{said}");
    }
}

#[test]
fn udp_loss_under_the_servers_rate_limit_is_said_to_be_the_limits() {
    // The limit binds this host's addresses when given: a loopback udp row moves more.
    let (server, _, _) = loopback_lab(&["--rate-limit", "2000"]);
    let control = format!("127.0.0.1:{}", server.port());
    let (json, _) = lab_here(&["--format", "json", &control]);
    let doc: serde_json::Value = serde_json::from_str(&json).unwrap();
    let rows = doc["rows"].as_array().unwrap();
    let udp = rows
        .iter()
        .find(|r| r["proto"] == "udp")
        .expect("a udp row");
    let (lost, why) = (udp["lost"].as_u64().unwrap(), udp["why"].to_string());
    // What the limit dropped is its, as the note under the table says, not the path's.
    // (or, on a loaded machine, what a receive queue here dropped, which a counter saw).
    if lost > 0 {
        assert!(
            [
                "the lab server's rate limit",
                "receive queue",
                "refused sends"
            ]
            .iter()
            .any(|cause| why.contains(cause)),
            "{udp}"
        );
        assert!(!why.contains("so it was lost on the way"), "{udp}");
    }
    // Whatever it lost, no row the limit does not bind blames it (raw's it binds too; any
    // row's msg/s sentence may name "a rate limit" among the causes of a slow load).
    for row in rows
        .iter()
        .filter(|r| !["udp", "raw"].contains(&r["proto"].as_str().unwrap()))
    {
        assert!(
            !row["why"]
                .to_string()
                .contains("the lab server's rate limit"),
            "{row}"
        );
    }
}

/// The words of `text` on one line, without the level each wrapped log line starts with.
fn said_as_one(text: &str) -> String {
    let words = text.split_whitespace();
    let words: Vec<&str> = words.filter(|w| !matches!(*w, "WARN" | "INFO")).collect();
    words.join(" ")
}

/// A full run (about 14 s of rows) against a server allowing 8 s: the rows measured before
/// the turn ended are printed, the rest named for the server's limit, with advice that works
/// (said before the run starts too); neither a server that stopped answering nor a turn
/// given to a next run nobody was waiting for; the teacher's log blames no --allow/--deny.
#[test]
fn a_run_longer_than_its_turn_keeps_the_rows_measured_and_advises_lab_quick() {
    let (server, _, _) = loopback_lab(&["--lab-max-time", "8s"]);
    let child = Command::new(bin())
        .args(["lab", &format!("127.0.0.1:{}", server.port())])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = output_within(child, "lab past its turn", RUN);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let said = said_as_one(&format!(
        "{}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    ));
    assert!(
        said.contains("allows a run 8 s (serve --lab-max-time)"),
        "{said}"
    );
    assert!(
        said.contains("use lab --quick, or ask the teacher to raise --lab-max-time"),
        "{said}"
    );
    assert!(!said.contains("lab server stopped answering"), "{said}");
    assert!(!said.contains("went to the next run"), "{said}");
    match out.status.code() {
        Some(0) => {
            assert!(stdout.lines().any(|l| l.starts_with("tcp ")), "{stdout}");
            let note = "not measured: the turn ended (the server allows 8 s a run: --lab-max-time)";
            assert!(said.contains(note), "{said}");
        }
        // A loaded machine may not finish even the first row within the turn.
        _ => {
            let line = common::fails(&out, 1);
            assert!(line.contains("ended before its first row"), "{line}");
        }
    }
    server.wait_log("took longer than 8 s");
    let (_, stdout, log) = server.stop("INT");
    // One line for the run at the default level, its end; no line per udp flow.
    assert_eq!(log.matches("lab run ").count(), 1, "{log}");
    assert!(!log.contains("udp 127.0.0.1:"), "{log}");
    assert!(!log.contains("--allow/--deny"), "{log}");
    assert!(!log.contains("went to the next run"), "{log}");
    assert!(
        stdout.contains("1 run: 0 measured, 1 lost their turn"),
        "{stdout}"
    );
}

/// The stop line counts every run the server took: those that left while measuring or
/// waiting, and those measuring or waiting when it stopped; a run that closed mid-measure
/// is logged as that, and one beside another measures beside "1 other run".
#[test]
fn the_stop_line_counts_runs_that_left_or_were_cut_short() {
    let (server, _, _) = loopback_lab_told(&["--lab-runs", "2"]);
    let port = server.port();
    let (_first, go) = hello_from("127.0.0.1", port, Some("127.0.0.60"));
    assert_eq!(go[0], 3, "Go");
    let (left, go) = hello_from("127.0.0.1", port, Some("127.0.0.61"));
    assert_eq!(go[0], 3, "Go");
    server.wait_log("from 127.0.0.61:");
    let (waiting, queued) = hello_from("127.0.0.1", port, Some("127.0.0.62"));
    assert_eq!(place_of(&queued), 1);
    drop(waiting);
    server.wait_log("the client left the queue");
    drop(left);
    let log = server.wait_log("left while measuring, after");
    assert!(log.contains("its report was not finished"), "{log}");
    let (_third, go) = hello_from("127.0.0.1", port, Some("127.0.0.63"));
    assert_eq!(go[0], 3, "Go");
    let (_last, queued) = hello_from("127.0.0.1", port, Some("127.0.0.64"));
    assert_eq!(place_of(&queued), 1);
    let (_, stdout, log) = server.stop("INT");
    let measuring = log.lines().find(|l| l.contains("from 127.0.0.61:"));
    let measuring = measuring.expect("the second run's measuring line");
    assert!(measuring.contains("beside 1 other run,"), "{log}");
    assert!(
        stdout.contains(
            "5 runs: 0 measured, 1 left while measuring, 1 left the queue, 2 measuring when \
             stopped, 1 waiting when stopped; 0 refused"
        ),
        "{stdout}"
    );
}
