//! `serve --proto udp --files DIR` speaks TFTP too: curl, tftp-hpa's `tftp` and atftp
//! download and upload through it, while netecho's own `get` and `put` keep working on the
//! same port. A request without options from an address that could be forged gets one small
//! ERROR and no DATA (proven from a second network namespace, where the client's address is
//! not loopback).

mod common;

use std::fs;
use std::net::UdpSocket;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::netns::Pair;
use common::{Server, bin, files_server, have, netecho, ok, run, tempdir};
use tempfile::TempDir;

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A file of `len` bytes that no two blocks share.
fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
}

/// What a test serves: DIR holding one file of [`pattern`]'s bytes (`body`), OUT for what
/// the clients write, and a file server on DIR.
struct Served {
    dir: TempDir,
    out: TempDir,
    body: Vec<u8>,
    server: Server,
}

/// DIR with `name` of `len` bytes, served with `extra` flags, and an empty OUT.
fn serving(name: &str, len: usize, extra: &[&str]) -> Served {
    let (dir, out) = (tempdir(), tempdir());
    let body = pattern(len);
    fs::write(dir.path().join(name), &body).unwrap();
    let server = files_server("udp", dir.path(), extra);
    Served {
        dir,
        out,
        body,
        server,
    }
}

/// Runs a client program to its end, bounded in time by `run`.
fn client(program: &str, args: &[&str]) -> Output {
    run(Command::new(program).args(args), b"")
}

/// tftp-hpa's `tftp` to 127.0.0.1 `port` in `mode`, running one `command` (its words).
fn tftp_hpa(port: &str, mode: &str, command: &[&str]) -> Output {
    let mut args = vec!["127.0.0.1", port, "-m", mode, "-c"];
    args.extend_from_slice(command);
    client("tftp", &args)
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn curl_downloads_with_and_without_blksize_and_with_no_options() {
    let test = "curl_downloads_with_and_without_blksize_and_with_no_options";
    if !have("curl", test) {
        return;
    }
    let Served {
        dir: _dir,
        out,
        body,
        server,
    } = serving("f.bin", 100_000, &[]);
    let url = format!("tftp://127.0.0.1:{}/f.bin", server.port());
    for (i, flags) in [
        &[][..],
        &["--tftp-blksize", "1428"],
        &["--tftp-blksize", "8"],
        &["--tftp-no-options"],
    ]
    .iter()
    .enumerate()
    {
        let file = out.path().join(format!("out{i}"));
        let mut args = vec!["-sS", &url, "-o", s(&file)];
        args.extend_from_slice(flags);
        let got = client("curl", &args);
        assert!(got.status.success(), "curl {flags:?}: {}", text(&got));
        assert_eq!(fs::read(&file).unwrap(), body, "curl {flags:?}");
    }
    let log = server.wait_log("blksize 1428");
    assert!(log.contains("sent 'f.bin' over TFTP"), "{log}");
}

/// TFTP answers from a new port (its TID): through a udp relay, whose flow follows it
/// there, curl and tftp-hpa download whole.
#[test]
fn tftp_clients_download_through_a_udp_relay() {
    let test = "tftp_clients_download_through_a_udp_relay";
    if !have("curl", test) || !have("tftp", test) {
        return;
    }
    let Served {
        dir: _dir,
        out,
        body,
        server,
    } = serving("f.bin", 100_000, &[]);
    let relay = common::relay(&["udp://127.0.0.1:0", &server.url()]);
    let relayed = relay.port().to_string();
    let file = out.path().join("curl");
    let url = format!("tftp://127.0.0.1:{relayed}/f.bin");
    let got = client("curl", &["-sS", &url, "-o", s(&file)]);
    assert!(got.status.success(), "curl: {}", text(&got));
    assert_eq!(fs::read(&file).unwrap(), body, "curl");
    let file = out.path().join("tftp");
    let got = tftp_hpa(&relayed, "binary", &["get", "f.bin", s(&file)]);
    assert_eq!(fs::read(&file).unwrap_or_default(), body, "{}", text(&got));
}

/// A TFTP server of another user (nobody) answers from transfer ports of that user's: a
/// root relay to it on this host follows them, its socket to TO's user's, and curl
/// downloads whole, with nothing left out.
#[test]
fn a_tftp_server_of_another_user_on_this_host_passes_a_udp_relay() {
    let test = "a_tftp_server_of_another_user_on_this_host_passes_a_udp_relay";
    if !common::nobody_can_run(test) || !have("curl", test) {
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let (dir, out) = (tempdir(), tempdir());
    let body = pattern(100_000);
    let served = dir.path().join("f.bin");
    fs::write(&served, &body).unwrap();
    // tempfile's directory is 0700: nobody may read it and the file once they are 0755, 0644.
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    fs::set_permissions(&served, fs::Permissions::from_mode(0o644)).unwrap();
    let args = ["serve", "--proto", "udp", "--addr", "127.0.0.1:0"];
    let server = Server::start_with(&mut common::as_nobody(
        &[&args[..], &["--files", s(dir.path())]].concat(),
    ));
    let relay = common::relay(&["udp://127.0.0.1:0", &server.url()]);
    let file = out.path().join("curl");
    let url = format!("tftp://127.0.0.1:{}/f.bin", relay.port());
    let got = client("curl", &["-sS", &url, "-o", s(&file)]);
    assert!(got.status.success(), "curl: {}", text(&got));
    assert_eq!(fs::read(&file).unwrap(), body, "curl");
    let (status, out, err) = relay.stop("TERM");
    assert!(status.success(), "{err}");
    assert!(out.contains("stopped by SIGTERM: 1 flows"), "{out}");
    assert!(!out.contains("left out"), "{out}");
}

#[test]
fn curl_uploads_where_allowed_never_over_a_file_and_is_refused_where_not() {
    let test = "curl_uploads_where_allowed_never_over_a_file_and_is_refused_where_not";
    if !have("curl", test) {
        return;
    }
    let (dir, src) = (tempdir(), tempdir());
    let body = pattern(70_000);
    let local = src.path().join("up.bin");
    fs::write(&local, &body).unwrap();
    fs::write(dir.path().join("taken"), b"mine").unwrap();
    let server = files_server("udp", dir.path(), &["--upload"]);
    let base = format!("tftp://127.0.0.1:{}", server.port());
    let up = client(
        "curl",
        &["-sS", "-T", s(&local), &format!("{base}/new.bin")],
    );
    assert!(up.status.success(), "{}", text(&up));
    assert_eq!(fs::read(dir.path().join("new.bin")).unwrap(), body);
    // CURLE_REMOTE_FILE_EXISTS: TFTP's error 6.
    let over = client("curl", &["-sS", "-T", s(&local), &format!("{base}/taken")]);
    assert_eq!(over.status.code(), Some(73), "{}", text(&over));
    assert_eq!(fs::read(dir.path().join("taken")).unwrap(), b"mine");
    drop(server);

    // Over --max-file: curl announces the size (tsize) and is refused before any data
    // (CURLE_REMOTE_DISK_FULL: TFTP's error 3).
    let small = files_server("udp", dir.path(), &["--upload", "--max-file", "1000"]);
    let url = format!("tftp://127.0.0.1:{}/large.bin", small.port());
    let large = client("curl", &["-sS", "-T", s(&local), &url]);
    assert_eq!(large.status.code(), Some(70), "{}", text(&large));
    assert!(!dir.path().join("large.bin").exists());
    small.wait_log("over the 1000-byte limit (--max-file)");
    drop(small);

    let read_only = files_server("udp", dir.path(), &[]);
    let url = format!("tftp://127.0.0.1:{}/other.bin", read_only.port());
    let refused = client("curl", &["-sS", "-T", s(&local), &url]);
    // CURLE_TFTP_PERM: TFTP's error 2, access violation.
    assert_eq!(refused.status.code(), Some(69), "{}", text(&refused));
    assert!(!dir.path().join("other.bin").exists());
    read_only.wait_log("uploads are off");
}

#[test]
fn tftp_hpa_downloads_and_uploads_in_binary_mode_and_netascii_is_refused() {
    let test = "tftp_hpa_downloads_and_uploads_in_binary_mode_and_netascii_is_refused";
    if !have("tftp", test) {
        return;
    }
    let Served {
        dir,
        out,
        body,
        server,
    } = serving("f.bin", 50_000, &["--upload"]);
    let port = server.port().to_string();
    let got = out.path().join("got");
    let o = tftp_hpa(&port, "binary", &["get", "f.bin", s(&got)]);
    assert_eq!(fs::read(&got).unwrap_or_default(), body, "{}", text(&o));
    let o = tftp_hpa(&port, "binary", &["put", s(&got), "back.bin"]);
    assert_eq!(
        fs::read(dir.path().join("back.bin")).unwrap_or_default(),
        body,
        "{}",
        text(&o)
    );
    // tftp-hpa's default mode is netascii, which changes line ends: refused, with what to
    // type, whole to this host (no forged source to amplify from).
    let ascii = out.path().join("ascii");
    let o = client(
        "tftp",
        &["127.0.0.1", &port, "-c", "get", "f.bin", s(&ascii)],
    );
    assert!(text(&o).contains("use -m binary"), "{}", text(&o));
    assert!(text(&o).contains("not netascii"), "{}", text(&o));
}

#[test]
fn atftp_downloads_and_uploads_with_blksize_and_windowsize() {
    let test = "atftp_downloads_and_uploads_with_blksize_and_windowsize";
    if !have("atftp", test) {
        return;
    }
    let Served {
        dir,
        out,
        body,
        server,
    } = serving("f.bin", 300_000, &["--upload"]);
    let port = server.port().to_string();
    let got = out.path().join("got");
    let o = client(
        "atftp",
        &[
            "--option",
            "blksize 1428",
            "--option",
            "windowsize 8",
            "-g",
            "-r",
            "f.bin",
            "-l",
            s(&got),
            "127.0.0.1",
            &port,
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(fs::read(&got).unwrap(), body);
    let log = server.wait_log("windowsize 8");
    assert!(log.contains("blksize 1428"), "{log}");
    let o = client(
        "atftp",
        &[
            "--option",
            "blksize 1428",
            "--option",
            "windowsize 8",
            "--option",
            "tsize 300000",
            "-p",
            "-l",
            s(&got),
            "-r",
            "back",
            "127.0.0.1",
            &port,
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(fs::read(dir.path().join("back")).unwrap(), body);
}

#[test]
fn block_numbers_roll_over_past_65535_blocks_both_ways() {
    let test = "block_numbers_roll_over_past_65535_blocks_both_ways";
    if !have("curl", test) || !have("tftp", test) {
        return;
    }
    // 66,000 blocks of 512 bytes and a short one: block numbers wrap from 65535 to 0.
    let Served {
        dir,
        out,
        body,
        server,
    } = serving("big", 512 * 66_000 + 100, &["--upload"]);
    let got = out.path().join("got");
    let url = format!("tftp://127.0.0.1:{}/big", server.port());
    let o = client("curl", &["-sS", &url, "-o", s(&got)]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(fs::read(&got).unwrap() == body, "the download differs");
    let port = server.port().to_string();
    let o = tftp_hpa(&port, "binary", &["put", s(&got), "big2"]);
    assert!(
        fs::read(dir.path().join("big2")).unwrap_or_default() == body,
        "the upload differs: {}",
        text(&o)
    );
}

#[test]
fn a_missing_file_is_tftp_error_1_and_the_clients_say_so() {
    let test = "a_missing_file_is_tftp_error_1_and_the_clients_say_so";
    if !have("curl", test) || !have("tftp", test) {
        return;
    }
    let (dir, out) = (tempdir(), tempdir());
    let server = files_server("udp", dir.path(), &[]);
    let url = format!("tftp://127.0.0.1:{}/missing", server.port());
    // CURLE_TFTP_NOTFOUND.
    let o = client("curl", &["-sS", &url, "-o", s(&out.path().join("x"))]);
    assert_eq!(o.status.code(), Some(68), "{}", text(&o));
    let port = server.port().to_string();
    let o = tftp_hpa(
        &port,
        "binary",
        &["get", "missing", s(&out.path().join("y"))],
    );
    assert!(text(&o).contains("Error code 1: not found"), "{}", text(&o));
}

#[test]
fn paths_outside_dir_are_refused_as_netecho_get_refuses_them() {
    let test = "paths_outside_dir_are_refused_as_netecho_get_refuses_them";
    if !have("curl", test) || !have("tftp", test) {
        return;
    }
    let (root, out) = (tempdir(), tempdir());
    let dir = root.path().join("served");
    fs::create_dir(&dir).unwrap();
    fs::write(root.path().join("secret"), b"SECRET").unwrap();
    std::os::unix::fs::symlink(root.path().join("secret"), dir.join("out")).unwrap();
    let server = files_server("udp", &dir, &[]);
    let port = server.port().to_string();
    for (name, why) in [
        ("../secret", "'..' may not leave the served directory"),
        ("out", "a symlink that leads out of the served directory"),
        (s(&root.path().join("secret")), "absolute paths are refused"),
    ] {
        let file = out.path().join("got");
        let o = tftp_hpa(&port, "binary", &["get", name, s(&file)]);
        assert!(text(&o).contains("Error code 2"), "{name}: {}", text(&o));
        assert!(
            !fs::read(&file).unwrap_or_default().starts_with(b"SECRET"),
            "{name}"
        );
        // The same words as netecho's own protocol gives for the same name.
        let own = netecho(
            &[
                "get",
                "--proto",
                "udp",
                &server.addr,
                name,
                "-o",
                s(&out.path().join("own")),
            ],
            b"",
        );
        assert!(String::from_utf8_lossy(&own.stderr).contains(why), "{name}");
        server.wait_log(&format!("TFTP request refused: '{name}': {why}"));
    }
    let url = format!("tftp://127.0.0.1:{port}/../secret");
    let o = client(
        "curl",
        &["-sS", "--path-as-is", &url, "-o", s(&out.path().join("c"))],
    );
    assert!(!o.status.success(), "{}", text(&o));
}

#[test]
fn netecho_get_and_put_keep_working_beside_tftp_clients() {
    let test = "netecho_get_and_put_keep_working_beside_tftp_clients";
    if !have("curl", test) {
        return;
    }
    let Served {
        dir,
        out,
        body,
        server,
    } = serving("f", 200_000, &["--upload"]);
    let url = format!("tftp://127.0.0.1:{}/f", server.port());
    let o = client("curl", &["-sS", &url, "-o", s(&out.path().join("c"))]);
    assert!(o.status.success(), "{}", text(&o));
    let got = out.path().join("n");
    ok(&netecho(
        &["get", "--proto", "udp", &server.addr, "f", "-o", s(&got)],
        b"",
    ));
    assert_eq!(fs::read(&got).unwrap(), body);
    ok(&netecho(
        &["put", "--proto", "udp", &server.addr, s(&got), "g"],
        b"",
    ));
    assert_eq!(fs::read(dir.path().join("g")).unwrap(), body);
    assert_eq!(fs::read(out.path().join("c")).unwrap(), body);
}

#[test]
fn a_download_survives_loss_by_retransmitting_on_silence() {
    let test = "a_download_survives_loss_by_retransmitting_on_silence";
    if !have("curl", test) {
        return;
    }
    // 293 blocks: at a 10% chance each, the odds of not one dropped are 1 in 10^13 (with 59
    // blocks they were 1 in 500, and a run did see none).
    let Served {
        dir: _dir,
        out,
        body,
        server,
    } = serving("f", 300_000, &["--drop", "0.1"]);
    let url = format!("tftp://127.0.0.1:{}/f", server.port());
    let got = out.path().join("got");
    let o = client(
        "curl",
        &["-sS", "--tftp-blksize", "1024", &url, "-o", s(&got)],
    );
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(fs::read(&got).unwrap(), body);
    let log = server.wait_log("sent 'f' over TFTP");
    assert!(!log.contains("simulated drops 0"), "{log}");
}

/// Every datagram that reaches `sock` within `wait` (at most 100).
fn heard(sock: &UdpSocket, wait: Duration) -> Vec<Vec<u8>> {
    let deadline = Instant::now() + wait;
    let mut got = Vec::new();
    let mut buf = [0u8; 2048];
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        sock.set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .unwrap();
        match sock.recv_from(&mut buf) {
            Ok((n, _)) if got.len() < 100 => got.push(buf[..n].to_vec()),
            Ok(_) => break,
            Err(_) => break,
        }
    }
    got
}

/// The first datagram that reaches `sock` within STEP (an answer that must come), then
/// every other one within `more` of it (at most 100 in all).
fn heard_after_one(sock: &UdpSocket, more: Duration) -> Vec<Vec<u8>> {
    let mut buf = [0u8; 2048];
    sock.set_read_timeout(Some(common::STEP)).unwrap();
    let Ok((n, _)) = sock.recv_from(&mut buf) else {
        return Vec::new();
    };
    let mut got = vec![buf[..n].to_vec()];
    got.extend(heard(sock, more).into_iter().take(99));
    got
}

/// RFC 1350's plain request: one ERROR no larger than it, and no DATA.
fn a_plain_request_gets_one_small_error(sock: &UdpSocket, to: &str, server: &Server) {
    refusal_of(sock, to, b"\x00\x01f\x00octet\x00");
    server.wait_log("without options from an address that may be forged");
}

/// tftp-hpa's default mode: an ERROR no larger than the request, the hint first in it.
fn a_refused_mode_is_cut_to_the_request_hint_first(sock: &UdpSocket, to: &str) {
    let ascii = b"\x00\x01notes.txt\x00netascii\x00";
    sock.send_to(ascii, to).unwrap();
    let answers = heard_after_one(sock, Duration::from_secs(3));
    assert_eq!(answers.len(), 1, "{answers:?}");
    let error = &answers[0];
    assert!(error.len() <= ascii.len(), "{error:?}");
    assert!(
        error.starts_with(b"\x00\x05\x00\x00use -m binary"),
        "{error:?}"
    );
}

/// With an option: OACKs no larger than the request (three at most) and nothing else while
/// the client is silent; once it answers ACK 0 from its address, DATA 1 alone, no larger
/// than the request (the port ACK 0 came to could have been guessed), sent again only for
/// ACK 0 again, never on silence; after ACK 1, the rest.
fn a_request_with_options_gets_data_only_after_ack_0(sock: &UdpSocket, to: &str, server: &Server) {
    let asking = b"\x00\x01f\x00octet\x00blksize\x00512\x00tsize\x000\x00";
    sock.send_to(asking, to).unwrap();
    // The first OACK within a step, however loaded the machine; those sent again after it.
    let answers = heard_after_one(sock, Duration::from_secs(4));
    assert!((1..=3).contains(&answers.len()), "{answers:?}");
    for a in &answers {
        assert!(
            a.starts_with(b"\x00\x06") && a.len() <= asking.len(),
            "{a:?}"
        );
    }
    server.wait_log("no answer within");

    sock.send_to(asking, to).unwrap();
    let mut buf = [0u8; 2048];
    sock.set_read_timeout(Some(common::STEP)).unwrap();
    let (_, tid) = sock.recv_from(&mut buf).expect("an OACK within STEP");
    sock.send_to(b"\x00\x04\x00\x00", tid).unwrap();
    // An OACK sent again before the ACK arrived (a loaded machine) may come first.
    let data: Vec<_> = heard_after_one(sock, Duration::from_secs(2))
        .into_iter()
        .filter(|a| !a.starts_with(b"\x00\x06"))
        .collect();
    let seen: Vec<_> = data.iter().map(|d| (&d[..4], d.len())).collect();
    assert_eq!(
        data.len(),
        1,
        "DATA 1 alone, not again on silence: {seen:?}"
    );
    let data_1 = &data[0];
    assert!(
        data_1.starts_with(b"\x00\x03\x00\x01") && data_1.len() <= asking.len(),
        "{seen:?}"
    );
    sock.send_to(b"\x00\x04\x00\x00", tid).unwrap();
    let again = heard_after_one(sock, Duration::ZERO);
    assert_eq!(again.first(), Some(data_1), "ACK 0 again: DATA 1 again");
    sock.send_to(b"\x00\x04\x00\x01", tid).unwrap();
    let next = heard_after_one(sock, Duration::ZERO);
    assert!(next[0].starts_with(b"\x00\x03\x00\x02"), "{next:?}");
    sock.send_to(b"\x00\x05\x00\x00stop\x00", tid).unwrap();
}

/// A client that sends ACK 0 six times, a second apart, and prints how many DATA 1 came
/// (counted until 3 s after the last ACK 0); then gives up with an ERROR.
const REPEAT_ACK_0: &str = r#"
import socket, sys
server = (sys.argv[1], int(sys.argv[2]))
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(20)
s.sendto(b"\x00\x01f\x00octet\x00blksize\x00512\x00", server)
oack, tid = s.recvfrom(2048)
assert oack[:2] == b"\x00\x06", oack
data_1 = 0
for ack in range(6):
    s.sendto(b"\x00\x04\x00\x00", tid)
    s.settimeout(3 if ack == 5 else 1)
    try:
        while True:
            got, _ = s.recvfrom(2048)
            data_1 += got[:4] == b"\x00\x03\x00\x01"
    except socket.timeout:
        pass
s.sendto(b"\x00\x05\x00\x00stop\x00", tid)
print(data_1)
"#;

/// ACK 0 again and again from an address that could be forged (a blind sender who guessed
/// the transfer's port): DATA 1 comes twice at most, not once per ACK 0.
fn a_repeated_ack_0_gets_data_1_twice_at_most(pair: &Pair, port: u16) {
    let out = Command::new("ip")
        .args(["netns", "exec", &pair.client, "python3", "-c", REPEAT_ACK_0])
        .args([Pair::SERVER_V4, &port.to_string()])
        .output()
        .expect("python3");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", text(&out));
    let data_1: u32 = said.trim().parse().expect("a count");
    assert!((1..=2).contains(&data_1), "DATA 1 came {data_1} times");
}

/// The text of the ERROR `request` gets (at most one answer, within 3 s), and its code.
fn refusal_of(sock: &UdpSocket, to: &str, request: &[u8]) -> (u16, String) {
    sock.send_to(request, to).unwrap();
    let answers = heard_after_one(sock, Duration::from_secs(3));
    assert_eq!(answers.len(), 1, "{answers:?}");
    let error = &answers[0];
    assert!(
        error.starts_with(b"\x00\x05") && error.len() <= request.len(),
        "{error:?}"
    );
    let code = u16::from_be_bytes([error[2], error[3]]);
    let text = String::from_utf8_lossy(&error[4..]);
    (code, text.trim_end_matches('\0').to_string())
}

/// Requests whose options leave DATA 1 larger than them (tsize alone, timeout out of
/// range) get RFC 2347's ERROR 8 asking for blksize, and a plain request asks for an
/// option, each in whole words that fit.
fn requests_without_a_fitting_blksize_hear_whole_words(sock: &UdpSocket, to: &str) {
    let (code, text) = refusal_of(sock, to, b"\x00\x01f\x00octet\x00tsize\x000\x00");
    assert_eq!((code, text.as_str()), (8, "add blksize"));
    let (code, text) = refusal_of(sock, to, b"\x00\x01f\x00octet\x00timeout\x00255\x00");
    assert_eq!((code, text.as_str()), (8, "add blksize 512"));
    let (code, text) = refusal_of(sock, to, b"\x00\x01notes.txt\x00octet\x00");
    assert_eq!((code, text.as_str()), (0, "send blksize"));
}

#[test]
fn from_an_address_that_could_be_forged_nothing_but_small_answers_comes_before_the_client_answers()
{
    let test = "from_an_address_that_could_be_forged_nothing_but_small_answers_comes_before_the_client_answers";
    let Some(pair) = Pair::new("tf", test) else {
        return;
    };
    let dir = tempdir();
    fs::write(dir.path().join("f"), pattern(100_000)).unwrap();
    fs::write(dir.path().join("notes.txt"), pattern(100_000)).unwrap();
    let start = |extra: &[&str]| {
        let mut cmd = Command::new("ip");
        cmd.args([
            "netns",
            "exec",
            &pair.server,
            bin(),
            "serve",
            "--proto",
            "udp",
        ]);
        cmd.args([
            "--addr",
            &format!("{}:0", Pair::SERVER_V4),
            "--files",
            s(dir.path()),
        ]);
        cmd.args(extra);
        Server::start_with(&mut cmd)
    };
    let sock = pair.client_udp();
    let server = start(&[]);
    let to = format!("{}:{}", Pair::SERVER_V4, server.port());
    a_plain_request_gets_one_small_error(&sock, &to, &server);
    a_refused_mode_is_cut_to_the_request_hint_first(&sock, &to);
    a_request_with_options_gets_data_only_after_ack_0(&sock, &to, &server);
    a_repeated_ack_0_gets_data_1_twice_at_most(&pair, server.port());
    requests_without_a_fitting_blksize_hear_whole_words(&sock, &to);
    drop(server);

    // The admin's choice: RFC 1350's DATA at once, to any source.
    let open = start(&["--tftp-rfc1350"]);
    let to = format!("{}:{}", Pair::SERVER_V4, open.port());
    sock.send_to(b"\x00\x01f\x00octet\x00", to).unwrap();
    let mut buf = [0u8; 2048];
    let (n, _) = sock.recv_from(&mut buf).unwrap();
    assert!(
        buf[..n].starts_with(b"\x00\x03\x00\x01"),
        "{:?}",
        &buf[..n.min(8)]
    );
}

#[test]
fn with_every_request_thread_taken_a_tftp_client_hears_a_tftp_error_no_larger_than_its_request() {
    let test = "with_every_request_thread_taken_a_tftp_client_hears_a_tftp_error_no_larger_than_its_request";
    if !common::can_switch_user() {
        let needs = "root, to send as ten local users (a source on this host is a user)";
        return common::skip(test, needs, common::Lacks::Provided);
    }
    let dir = tempdir();
    fs::write(dir.path().join("f"), b"x").unwrap();
    let server = files_server("udp", dir.path(), &[]);
    let to = format!("127.0.0.1:{}", server.port());
    // Ten sources (four requests each may await proof) that never answer their OACK: more
    // requests than the server has threads for, each held for its proof wait. Requests
    // awaiting proof are counted by address, requests running on this host by user: ten
    // addresses, and ten users.
    let silent: Vec<UdpSocket> = (2..12)
        .map(|i| {
            let sock = common::socket_of(20_000 + i, socket2::Type::DGRAM);
            let from = std::net::SocketAddr::from(([127, 0, 0, i as u8], 0));
            sock.bind(&from.into()).unwrap();
            sock.into()
        })
        .collect();
    for sock in &silent {
        for _ in 0..4 {
            sock.send_to(b"\x00\x01f\x00octet\x00blksize\x00512\x00", &to)
                .unwrap();
        }
    }
    server.wait_log("busy: too many requests at once");
    let asking = UdpSocket::bind("127.0.0.99:0").unwrap();
    let request = b"\x00\x01f\x00octet\x00blksize\x00512\x00";
    asking.send_to(request, &to).unwrap();
    let answers = heard_after_one(&asking, Duration::from_secs(1));
    assert_eq!(answers.len(), 1, "{answers:?}");
    let answer = &answers[0];
    assert!(answer.starts_with(b"\x00\x05\x00\x00busy"), "{answer:?}");
    assert!(answer.len() <= request.len(), "{answer:?}");
}

#[test]
fn an_upload_without_a_size_stops_at_max_file_and_leaves_nothing() {
    let test = "an_upload_without_a_size_stops_at_max_file_and_leaves_nothing";
    if !have("tftp", test) {
        return;
    }
    let (dir, src) = (tempdir(), tempdir());
    let local = src.path().join("up");
    fs::write(&local, pattern(5000)).unwrap();
    let server = files_server("udp", dir.path(), &["--upload", "--max-file", "2000"]);
    let port = server.port().to_string();
    // tftp-hpa sends no tsize: the limit is met in the middle of the data.
    let o = tftp_hpa(&port, "binary", &["put", s(&local), "up"]);
    assert!(text(&o).contains("Error code 3"), "{}", text(&o));
    server.wait_log("over the size limit (--max-file)");
    let left: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn garbage_that_looks_like_tftp_gets_nothing_larger_than_itself_and_the_server_lives() {
    let test = "garbage_that_looks_like_tftp_gets_nothing_larger_than_itself_and_the_server_lives";
    if !have("curl", test) {
        return;
    }
    let Served {
        dir: _dir,
        out,
        mut server,
        ..
    } = serving("f", 3000, &["--upload"]);
    let to = format!("127.0.0.1:{}", server.port());
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    // Requests cut short, with modes other than octet, odd options, and random tails: all
    // TFTP by their third byte, none a request for data.
    let whole = b"\x00\x01f\x00octet\x00blksize\x00512\x00windowsize\x0064\x00";
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut longest = 0;
    for i in 0..2000usize {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        // Cut before the mode's NUL, or inside the first option: never a whole request.
        let cut = if i % 2 == 0 { 3 + i % 7 } else { 11 + i % 10 };
        let mut d = match i % 50 {
            1 => b"\x00\x02x\x00NETASCII\x00".to_vec(),
            2 => b"\x00\x01f\x00mail\x00blksize\x00".to_vec(),
            n if n % 3 == 0 => state.to_be_bytes().repeat(1 + i % 5),
            _ => whole[..cut].to_vec(),
        };
        d[0] = 0;
        d[1] = d[1].clamp(1, 2);
        d[2] = d[2].max(b' ');
        longest = longest.max(d.len());
        sock.send_to(&d, &to).unwrap();
    }
    let answers = heard(&sock, Duration::from_secs(2));
    for answer in answers {
        // A refused mode is told whole to this host, which nobody outside can forge.
        let mode_refusal = answer.starts_with(b"\x00\x05\x00\x00use -m binary");
        assert!(answer.len() <= longest || mode_refusal, "{answer:?}");
        assert!(
            !answer.starts_with(b"\x00\x03"),
            "DATA to garbage: {answer:?}"
        );
    }
    assert!(server.alive());
    let url = format!("tftp://127.0.0.1:{}/f", server.port());
    let o = client("curl", &["-sS", &url, "-o", s(&out.path().join("f"))]);
    assert!(o.status.success(), "{}", text(&o));
}

#[test]
fn a_flood_of_refused_requests_writes_a_line_a_second_not_a_line_each() {
    let dir = tempdir();
    let server = files_server("udp", dir.path(), &[]);
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let started = Instant::now();
    for i in 0..2000 {
        let rrq = format!("\x00\x01missing-{i}\x00octet\x00blksize\x00512\x00");
        sock.send_to(rrq.as_bytes(), &server.addr).unwrap();
    }
    // The count of lines left out comes with the next line, a second later at the earliest.
    let mut log = String::new();
    for i in 0..40 {
        sock.send_to(
            format!("\x00\x01late-{i}\x00octet\x00blksize\x00512\x00").as_bytes(),
            &server.addr,
        )
        .unwrap();
        std::thread::sleep(Duration::from_millis(250));
        log = server.stderr();
        if log.contains("left out of the log") {
            break;
        }
    }
    assert!(log.contains("left out of the log"), "{log}");
    let seconds = started.elapsed().as_secs() as usize;
    let lines = log.matches("TFTP request refused").count();
    assert!(
        (1..=10 * (seconds + 2)).contains(&lines),
        "{lines} lines in {seconds} s:\n{log}"
    );
}

#[test]
fn a_wrq_name_with_control_characters_is_refused_and_nothing_is_stored() {
    let dir = tempdir();
    let server = files_server("udp", dir.path(), &["--upload"]);
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    for name in [&b"a\nINFO forged"[..], b"a\x1b[31mred"] {
        let mut wrq = b"\x00\x02".to_vec();
        wrq.extend_from_slice(name);
        wrq.extend_from_slice(b"\x00octet\x00");
        sock.send_to(&wrq, &server.addr).unwrap();
        let answers = heard_after_one(&sock, Duration::ZERO);
        let error = answers.first().expect("an answer");
        // ERROR 2, access violation, saying why.
        assert!(error.starts_with(b"\x00\x05\x00\x02"), "{error:?}");
        let message = String::from_utf8_lossy(&error[4..]);
        assert!(message.contains("control characters"), "{message}");
        assert!(
            !message.contains('\n') && !message.contains('\x1b'),
            "{message}"
        );
    }
    assert_eq!(
        fs::read_dir(dir.path()).unwrap().count(),
        0,
        "nothing stored"
    );
}

#[test]
fn an_upload_announcing_more_than_the_free_space_is_error_3_before_any_data() {
    let test = "an_upload_announcing_more_than_the_free_space_is_error_3_before_any_data";
    if !have("curl", test) {
        return;
    }
    let (dir, src) = (tempdir(), tempdir());
    let free = common::free_space(dir.path());
    // Sparse: announced whole (curl sends tsize), taking no room here.
    let local = src.path().join("huge.bin");
    fs::File::create(&local)
        .unwrap()
        .set_len(free * 2 + (1 << 30))
        .unwrap();
    let max = (free * 4).to_string();
    // A server that took it would stop at 512 KiB, not fill the disk.
    let server = limited_upload_server(dir.path(), &["--max-file", &max]);
    let url = format!("tftp://127.0.0.1:{}/huge.bin", server.port());
    let up = client("curl", &["-sS", "-T", s(&local), &url]);
    // CURLE_REMOTE_DISK_FULL: TFTP's error 3.
    assert_eq!(up.status.code(), Some(70), "{}", text(&up));
    server.wait_log("MB free");
    assert_eq!(
        fs::read_dir(dir.path()).unwrap().count(),
        0,
        "nothing stored"
    );
}

/// An upload server over udp on loopback for `dir` whose files end at 512 KiB (see
/// common::limit_file_size), with `extra` flags.
fn limited_upload_server(dir: &Path, extra: &[&str]) -> Server {
    let mut cmd = Command::new(bin());
    cmd.args([
        "serve",
        "--proto",
        "udp",
        "--addr",
        "127.0.0.1:0",
        "--upload",
    ])
    .args(["--files", s(dir)])
    .args(extra);
    Server::start_with(common::limit_file_size(&mut cmd, 512 * 1024))
}

#[test]
fn a_write_that_fails_on_the_server_is_told_to_the_client() {
    let test = "a_write_that_fails_on_the_server_is_told_to_the_client";
    if !have("curl", test) {
        return;
    }
    let (dir, src) = (tempdir(), tempdir());
    let local = src.path().join("big.bin");
    fs::write(&local, pattern(1 << 20)).unwrap();
    let server = limited_upload_server(dir.path(), &[]);
    let url = format!("tftp://127.0.0.1:{}/big.bin", server.port());
    let up = client("curl", &["-sS", "-T", s(&local), &url]);
    // CURLE_REMOTE_DISK_FULL: TFTP's error 3, with the cause.
    assert_eq!(up.status.code(), Some(70), "{}", text(&up));
    server.wait_log("File too large");
    assert!(!dir.path().join("big.bin").exists());
}

/// The ERROR code of a WRQ for `name` (octet, no options) sent to `to` from loopback.
fn write_refused_with(to: &str, name: &str) -> (u16, String) {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let request = [&b"\x00\x02"[..], name.as_bytes(), b"\x00octet\x00"].concat();
    sock.send_to(&request, to).unwrap();
    let answers = heard_after_one(&sock, Duration::from_millis(200));
    let error = answers.first().expect("an answer to the WRQ");
    assert_eq!(error[..2], [0, 5], "an ERROR: {error:?}");
    let message = String::from_utf8_lossy(&error[4..]);
    (
        u16::from_be_bytes([error[2], error[3]]),
        message.trim_end_matches('\0').to_string(),
    )
}

/// RFC 1350's codes for an upload refused: 6 for a name taken, 3 for a file system with no
/// free inode (refused at once, as for space, and in one line to netecho's own put).
#[test]
fn an_existing_name_is_error_6_and_a_file_system_without_inodes_error_3() {
    let test = "an_existing_name_is_error_6_and_a_file_system_without_inodes_error_3";
    let dir = tempdir();
    fs::write(dir.path().join("taken"), b"mine").unwrap();
    let server = files_server("udp", dir.path(), &["--upload"]);
    let to = format!("127.0.0.1:{}", server.port());
    let (code, message) = write_refused_with(&to, "taken");
    assert_eq!(code, 6, "{message}");
    drop(server);

    let Some(tmpfs) = common::Tmpfs::mount(16) else {
        let why = "mount -t tmpfs (root with CAP_SYS_ADMIN)";
        common::skip(test, why, common::Lacks::Environment);
        return;
    };
    let server = files_server("udp", tmpfs.path(), &["--upload"]);
    assert!(tmpfs.fill_inodes() > 0);
    let to = format!("127.0.0.1:{}", server.port());
    let (code, message) = write_refused_with(&to, "new.bin");
    assert_eq!(code, 3, "{message}");
    assert!(message.contains("no free inodes"), "{message}");
    let src = tempdir();
    let local = src.path().join("new.bin");
    fs::write(&local, b"hello").unwrap();
    let put = netecho(&["put", "--proto", "udp", &server.addr, s(&local)], b"");
    let line = common::fails(&put, 1);
    assert!(line.contains("no free inodes"), "{line}");
    assert!(!tmpfs.path().join("new.bin").exists());
}

#[test]
fn a_transfer_given_up_says_how_much_the_client_acknowledged() {
    let Served {
        dir: _dir,
        out: _out,
        body: _,
        server,
    } = serving("f", 2000, &[]);
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let to = format!("127.0.0.1:{}", server.port());
    sock.send_to(
        b"\x00\x01f\x00octet\x00blksize\x00512\x00timeout\x001\x00",
        to,
    )
    .unwrap();
    let mut buf = [0u8; 2048];
    sock.set_read_timeout(Some(common::STEP)).unwrap();
    let (n, tid) = sock.recv_from(&mut buf).unwrap();
    assert!(buf[..n].starts_with(b"\x00\x06"), "{:?}", &buf[..n]);
    sock.send_to(b"\x00\x04\x00\x00", tid).unwrap();
    let (n, _) = sock.recv_from(&mut buf).unwrap();
    assert!(buf[..n].starts_with(b"\x00\x03\x00\x01"), "{:?}", &buf[..n]);
    sock.send_to(b"\x00\x04\x00\x01", tid).unwrap();
    // Then silence: the server gives up after its tries.
    server.wait_log("(512 bytes acknowledged)");
}

/// A transfer of `big` from `sock`, proven (OACK, ACK 0) and never acknowledged again:
/// its window stays in flight until the server gives up (5 times the 10 s timeout). The
/// request is sent again, as a client does, while no OACK comes: loopback drops datagrams
/// too when the other transfers' windows fill its queue.
fn hold_a_window(sock: &UdpSocket, to: &str) -> bool {
    let request =
        b"\x00\x01big\x00octet\x00blksize\x0060000\x00windowsize\x0064\x00timeout\x0010\x00";
    sock.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let mut buf = [0u8; 2048];
    for _ in 0..10 {
        sock.send_to(request, to).unwrap();
        if let Ok((n, tid)) = sock.recv_from(&mut buf) {
            assert!(buf[..n].starts_with(b"\x00\x06"), "{:?}", &buf[..n]);
            sock.send_to(b"\x00\x04\x00\x00", tid).unwrap();
            return true;
        }
    }
    false
}

#[test]
fn clients_holding_slow_transfers_leave_room_for_a_new_one() {
    if !nix::unistd::Uid::effective().is_root() {
        common::skip(
            "clients_holding_slow_transfers_leave_room_for_a_new_one",
            "root, to hold transfers as three users",
            common::Lacks::Provided,
        );
        return;
    }
    let (dir, out) = (tempdir(), tempdir());
    // Sparse: its blocks read as zeros and take no disk.
    fs::File::create(dir.path().join("big"))
        .unwrap()
        .set_len(1 << 30)
        .unwrap();
    fs::write(dir.path().join("small"), pattern(300_000)).unwrap();
    let server = files_server("udp", dir.path(), &[]);
    let to = format!("127.0.0.1:{}", server.port());
    // Three addresses, eight windows of 64 blocks of 60,000 bytes each: more than all the
    // bytes the server keeps in flight. Each address a user of its own, as the server
    // counts a local client's requests by the user owning its socket.
    let holders: Vec<UdpSocket> = (2..5)
        .flat_map(|i| {
            (0..8).map(move |_| {
                let sock = common::socket_of(2000 + i, socket2::Type::DGRAM);
                let at: std::net::SocketAddr = format!("127.0.0.{i}:0").parse().unwrap();
                sock.bind(&at.into()).unwrap();
                UdpSocket::from(sock)
            })
        })
        .collect();
    for sock in &holders {
        assert!(hold_a_window(sock, &to), "{}", server.stderr());
    }
    server.wait_log("too much data in flight");
    let got = out.path().join("small");
    ok(&netecho(
        &[
            "get",
            "--proto",
            "udp",
            &server.addr,
            "small",
            "-o",
            s(&got),
        ],
        b"",
    ));
    assert_eq!(fs::read(&got).unwrap(), pattern(300_000));
}
