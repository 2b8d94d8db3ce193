//! `serve --files`, `get` and `put` through the real binary: byte-exact over every transport,
//! with simulated loss and reordering on datagrams, and every refusal leaving nothing behind.

mod common;

use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::thread;
use std::time::Duration;

use common::netns::Pair;
use common::{Lacks, Server, fails, listing, netecho, ok, skip, tempdir};
use sha2::{Digest, Sha256};

const PROTOS: [&str; 5] = ["tcp", "udp", "unix", "unix-dgram", "unix-seqpacket"];

/// Deterministic pseudo-random bytes (xorshift), so a failure can be reproduced.
fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

fn s(path: &Path) -> &str {
    path.to_str().expect("temp paths are UTF-8")
}

/// A file server for `proto`, its socket (if any) in `sockdir`, serving `root`.
fn file_server(proto: &str, sockdir: &Path, root: &Path, extra: &[&str]) -> Server {
    let sock = sockdir.join(format!("{proto}.sock"));
    let addr = match proto {
        "tcp" | "udp" => "127.0.0.1:0".to_string(),
        _ => s(&sock).to_string(),
    };
    let mut args = vec!["--proto", proto, "--addr", &addr, "--files", s(root)];
    args.extend_from_slice(extra);
    Server::start(&args)
}

#[test]
fn a_random_file_round_trips_byte_exact_over_every_transport() {
    let data = random_bytes(3 << 20, 7);
    for proto in PROTOS {
        let (root, local, sockdir) = (tempdir(), tempdir(), tempdir());
        fs::write(root.path().join("data.bin"), &data).unwrap();
        let server = file_server(proto, sockdir.path(), root.path(), &["--upload"]);
        let out = local.path().join("got.bin");
        let window: &[&str] = if proto.contains("dgram") || proto == "udp" {
            &["--window", "16"]
        } else {
            &[]
        };
        let mut get = vec![
            "get",
            "--proto",
            proto,
            &server.addr,
            "data.bin",
            "-o",
            s(&out),
        ];
        get.extend_from_slice(window);
        ok(&netecho(&get, b""));
        assert!(fs::read(&out).unwrap() == data, "{proto}: get differs");

        let mut put = vec!["put", "--proto", proto, &server.addr, s(&out), "up.bin"];
        put.extend_from_slice(window);
        let summary = netecho(&put, b"");
        ok(&summary);
        assert!(
            fs::read(root.path().join("up.bin")).unwrap() == data,
            "{proto}: put differs"
        );
        assert_eq!(listing(root.path()), ["data.bin", "up.bin"], "{proto}");
        assert_eq!(listing(local.path()), ["got.bin"], "{proto}");
        let log = String::from_utf8_lossy(&summary.stderr);
        assert!(log.contains("blake3 matches"), "{proto}: {log}");
        if !(proto == "udp" || proto == "unix-dgram") {
            // The server's summary counts the file bytes it sent and received.
            let (_, out, _) = server.stop("TERM");
            let n = data.len();
            assert!(
                out.contains(&format!("bytes in {n}, bytes out {n}")),
                "{proto}: {out}"
            );
        }
    }
}

#[test]
fn datagram_transfers_survive_loss_and_reordering() {
    let data = random_bytes(512 << 10, 11);
    for proto in ["udp", "unix-dgram"] {
        for impair in [["--drop", "0.1"], ["--reorder", "0.1"]] {
            let (root, local, sockdir) = (tempdir(), tempdir(), tempdir());
            fs::write(root.path().join("data.bin"), &data).unwrap();
            // Both sides impair what they send: data and acknowledgements alike.
            let mut extra = vec!["--upload"];
            extra.extend_from_slice(&impair);
            let server = file_server(proto, sockdir.path(), root.path(), &extra);
            let out = local.path().join("got.bin");
            // The request and its HELLO cross two 10% drops each try: three tries all fail
            // about once in 150 transfers, seven about once in 100,000.
            let common = [
                "--proto",
                proto,
                "--window",
                "8",
                "--timeout",
                "5s",
                "--retries",
                "6",
            ];
            let mut get = vec!["get", "-v"];
            get.extend_from_slice(&common);
            get.extend_from_slice(&impair);
            get.extend_from_slice(&[&server.addr, "data.bin", "-o", s(&out)]);
            let got = netecho(&get, b"");
            ok(&got);
            assert!(
                fs::read(&out).unwrap() == data,
                "{proto} {impair:?}: get differs"
            );
            let log = String::from_utf8_lossy(&got.stderr);
            assert!(log.contains("blocks sent"), "{proto}: no summary: {log}");
            if impair[0] == "--drop" {
                assert!(
                    log.contains("simulated"),
                    "{proto}: drops not logged: {log}"
                );
                assert!(
                    !log.contains("retransmitted 0,"),
                    "{proto}: 10% loss but nothing retransmitted: {log}"
                );
            }

            let mut put = vec!["put"];
            put.extend_from_slice(&common);
            put.extend_from_slice(&impair);
            put.extend_from_slice(&[&server.addr, s(&out), "up.bin"]);
            ok(&netecho(&put, b""));
            assert!(
                fs::read(root.path().join("up.bin")).unwrap() == data,
                "{proto} {impair:?}: put differs"
            );
        }
    }
}

/// A udp transfer answers from a port of its own: through a udp relay, whose flow follows
/// it there, it arrives whole, with no loss and with 5% each way.
#[test]
fn udp_transfers_pass_a_udp_relay_with_and_without_loss() {
    let data = random_bytes(384 << 10, 23);
    let (root, local, sockdir) = (tempdir(), tempdir(), tempdir());
    fs::write(root.path().join("data.bin"), &data).unwrap();
    let server = file_server("udp", sockdir.path(), root.path(), &[]);
    for loss in [&[][..], &["--loss", "5%", "--seed", "5"]] {
        let mut args = loss.to_vec();
        let to = server.url();
        args.extend_from_slice(&["udp://127.0.0.1:0", &to]);
        let relay = common::relay(&args);
        let out = local.path().join(format!("got{}.bin", loss.len()));
        let get = [
            "get",
            "--proto",
            "udp",
            "--retries",
            "10",
            &relay.addr,
            "data.bin",
        ];
        ok(&netecho(&[&get[..], &["-o", s(&out)]].concat(), b""));
        assert!(fs::read(&out).unwrap() == data, "{loss:?}: get differs");
    }
}

#[test]
fn udp_transfers_through_real_loss_on_a_veth_arrive_whole() {
    let test = "udp_transfers_through_real_loss_on_a_veth_arrive_whole";
    let Some(pair) = Pair::new("fl", test) else {
        return;
    };
    if let Err(e) = pair.lose(500) {
        skip(
            test,
            &format!("nftables for real loss: {e}"),
            Lacks::Provided,
        );
        return;
    }
    let data = random_bytes(4 << 20, 13);
    let (root, local) = (tempdir(), tempdir());
    fs::write(root.path().join("data.bin"), &data).unwrap();
    let server = Server::start_with(&mut pair.server_cmd(&[
        "serve",
        "--proto",
        "udp",
        "--addr",
        &format!("{}:0", Pair::SERVER_V4),
        "--files",
        s(root.path()),
        "--upload",
    ]));
    // 5% of every packet each way, ACKs included: the sender's probes, SACKs and timeouts
    // still bring every block, and the hash proves it.
    // The request and its HELLO cross 5% each way too: seven tries, not three, so the
    // start of a transfer never decides the test.
    let transfer = |what: &str, args: &[&str]| {
        let udp = [what, "--proto", "udp", "--window", "64", "--retries", "6"];
        common::run(&mut pair.client_cmd(&[&udp[..], args].concat()), b"")
    };
    let out = local.path().join("got.bin");
    let got = transfer("get", &[&server.addr, "data.bin", "-o", s(&out)]);
    ok(&got);
    assert!(fs::read(&out).unwrap() == data, "get differs");
    let log = String::from_utf8_lossy(&got.stderr);
    assert!(
        !log.contains("retransmitted 0,"),
        "5% loss, nothing resent: {log}"
    );
    let put = transfer("put", &[&server.addr, s(&out), "up.bin"]);
    ok(&put);
    assert!(
        fs::read(root.path().join("up.bin")).unwrap() == data,
        "put differs"
    );
}

/// A path narrower than a block (MTU 1280, IPv6's minimum, as on tunnels): the kernel
/// refuses a UDP_SEGMENT send of 1408-byte blocks (EMSGSIZE), where one datagram at a time
/// it fragments them. The transfer falls back to that, over IPv4 and IPv6, and so does
/// bench's batched udp load; before, both ended at the first batch.
#[test]
fn a_path_narrower_than_a_block_still_carries_udp_transfers_and_bench() {
    let test = "a_path_narrower_than_a_block_still_carries_udp_transfers_and_bench";
    let Some(pair) = Pair::new("mt", test) else {
        return;
    };
    pair.mtu(1280).expect("ip link set mtu");
    let data = random_bytes(300 << 10, 17);
    let (root, local) = (tempdir(), tempdir());
    fs::write(root.path().join("data.bin"), &data).unwrap();
    for ip in [
        Pair::SERVER_V4.to_string(),
        format!("[{}]", Pair::SERVER_V6),
    ] {
        let server = Server::start_with(&mut pair.server_cmd(&[
            "serve",
            "--proto",
            "udp",
            "--addr",
            &format!("{ip}:0"),
            "--files",
            s(root.path()),
        ]));
        let out = local.path().join("got.bin");
        let _ = fs::remove_file(&out);
        let get = [
            "get",
            "--proto",
            "udp",
            "--window",
            "8",
            &server.addr,
            "data.bin",
        ];
        ok(&common::run(
            &mut pair.client_cmd(&[&get[..], &["-o", s(&out)]].concat()),
            b"",
        ));
        assert!(fs::read(&out).unwrap() == data, "get over {ip} differs");
    }
    let echo = common::echo_server("udp", &format!("{}:0", Pair::SERVER_V4), Some(&pair));
    let bench = [
        "bench", "--proto", "udp", "--expect", "echo", "-s", "1300", "-w", "16", "-n", "2000",
    ];
    ok(&common::run(
        &mut pair.client_cmd(&[&bench[..], &[echo.addr.as_str()]].concat()),
        b"",
    ));
}

#[test]
fn names_outside_the_directory_are_refused_and_logged() {
    let (root, local, sockdir, outside) = (tempdir(), tempdir(), tempdir(), tempdir());
    fs::write(outside.path().join("secret"), b"secret").unwrap();
    fs::write(root.path().join("ok.txt"), b"ok").unwrap();
    fs::create_dir(root.path().join("sub")).unwrap();
    std::os::unix::fs::symlink(outside.path().join("secret"), root.path().join("escape")).unwrap();
    std::os::unix::fs::symlink("/dev/null", root.path().join("device")).unwrap();
    nix::unistd::mkfifo(&root.path().join("fifo"), nix::sys::stat::Mode::S_IRWXU).unwrap();
    let secret = format!(
        "../{}/secret",
        outside.path().file_name().unwrap().to_string_lossy()
    );
    let absolute = outside.path().join("secret");
    for proto in ["tcp", "udp"] {
        let server = file_server(proto, sockdir.path(), root.path(), &[]);
        for name in [
            secret.as_str(),
            s(&absolute),
            "escape",
            "device",
            "fifo",
            "sub",
            "missing",
        ] {
            let out = local.path().join("out");
            let line = fails(
                &netecho(
                    &["get", "--proto", proto, &server.addr, name, "-o", s(&out)],
                    b"",
                ),
                1,
            );
            assert!(line.contains(name), "{proto} {name}: {line}");
            assert!(!out.exists(), "{proto} {name}: a file was left at OUT");
            assert!(
                listing(local.path()).is_empty(),
                "{proto} {name}: leftovers"
            );
            server.wait_log(&format!("refused: '{name}'"));
        }
        // The same server still serves what it may.
        let out = local.path().join("ok.txt");
        ok(&netecho(
            &[
                "get",
                "--proto",
                proto,
                &server.addr,
                "ok.txt",
                "-o",
                s(&out),
            ],
            b"",
        ));
        assert_eq!(fs::read(&out).unwrap(), b"ok");
        fs::remove_file(&out).unwrap();
    }
    assert_eq!(fs::read(outside.path().join("secret")).unwrap(), b"secret");
}

/// Every `..` is refused, and the refusal says so truly: a name whose `..` stays inside the
/// directory is shown without it; one that leaves is told it may not. An upload's name that
/// exists is told with the command that puts it under another.
#[test]
fn a_refused_dot_dot_or_existing_name_says_what_to_type_instead() {
    let (root, local, sockdir) = (tempdir(), tempdir(), tempdir());
    fs::write(root.path().join("ok.txt"), b"ok").unwrap();
    fs::create_dir(root.path().join("sub")).unwrap();
    let mine = local.path().join("ok.txt");
    fs::write(&mine, b"mine").unwrap();
    for proto in ["tcp", "udp"] {
        let server = file_server(proto, sockdir.path(), root.path(), &["--upload"]);
        let get = |name: &str| {
            let out = local.path().join("out");
            let args = ["get", "--proto", proto, &server.addr, name, "-o", s(&out)];
            fails(&netecho(&args, b""), 1)
        };
        let line = get("sub/../ok.txt");
        assert!(line.contains("give it as 'ok.txt'"), "{proto}: {line}");
        assert!(!line.contains("may not leave"), "{proto}: {line}");
        let line = get("sub/../../ok.txt");
        assert!(line.contains("may not leave"), "{proto}: {line}");
        let put = ["put", "--proto", proto, &server.addr, s(&mine)];
        let line = fails(&netecho(&put, b""), 1);
        let typed = match proto {
            "tcp" => server.addr.clone(),
            _ => format!("--proto {proto} {}", server.addr),
        };
        let again = format!("`netecho put {typed} {} NEWNAME`", s(&mine));
        assert!(line.contains(&again), "{proto}: {line}");
    }
    assert_eq!(fs::read(root.path().join("ok.txt")).unwrap(), b"ok");
}

/// scp's `HOST:PORT:NAME` and a URL with a path, as curl and tftp take them: get shows the
/// command with NAME a word of its own, flags kept.
#[test]
fn get_with_the_name_inside_the_address_shows_the_command_to_type() {
    let cases: [(&[&str], &str); 3] = [
        (
            &["127.0.0.1:33651:notes.txt"],
            "netecho get 127.0.0.1:33651 notes.txt",
        ),
        (
            &["tcp://127.0.0.1:33651/notes.txt"],
            "netecho get tcp://127.0.0.1:33651 notes.txt",
        ),
        (
            &["--proto", "udp", "[::1]:33651:sub/a.txt"],
            "netecho get --proto udp '[::1]:33651' sub/a.txt",
        ),
    ];
    for (words, command) in cases {
        let mut args = vec!["get"];
        args.extend_from_slice(words);
        let line = fails(&netecho(&args, b""), 2);
        assert!(line.contains(&format!("`{command}`")), "{line}");
    }
}

#[test]
fn an_existing_output_is_kept_unless_forced() {
    let (root, local, sockdir) = (tempdir(), tempdir(), tempdir());
    fs::write(root.path().join("new.txt"), b"new contents").unwrap();
    let out = local.path().join("mine.txt");
    for proto in ["tcp", "unix-dgram"] {
        fs::write(&out, b"my own work").unwrap();
        let server = file_server(proto, sockdir.path(), root.path(), &[]);
        let get = [
            "get",
            "--proto",
            proto,
            &server.addr,
            "new.txt",
            "-o",
            s(&out),
        ];
        let line = fails(&netecho(&get, b""), 1);
        assert!(
            line.contains("already exists") && line.contains("--force"),
            "{line}"
        );
        assert_eq!(fs::read(&out).unwrap(), b"my own work");
        let mut forced = get.to_vec();
        forced.push("--force");
        ok(&netecho(&forced, b""));
        assert_eq!(fs::read(&out).unwrap(), b"new contents");
        assert_eq!(listing(local.path()), ["mine.txt"]);
    }
}

/// `get ARGS` run in `cwd` with its stdout into the file `into`.
fn get_into(cwd: &Path, args: &[&str], into: &Path) -> std::process::Output {
    let mut cmd = std::process::Command::new(common::bin());
    cmd.current_dir(cwd).arg("get").args(args);
    let out = common::run(&mut cmd, b"");
    fs::write(into, &out.stdout).unwrap();
    out
}

#[test]
fn get_o_dash_writes_the_file_to_stdout_and_never_a_file_named_dash() {
    let (root, cwd, sockdir, mine) = (tempdir(), tempdir(), tempdir(), tempdir());
    let file = root.path().join("bin.dat");
    fs::write(&file, random_bytes(300_000, 3)).unwrap();
    for proto in ["tcp", "udp"] {
        let server = file_server(proto, sockdir.path(), root.path(), &[]);
        let got = mine.path().join(format!("{proto}.out"));
        let args = ["--proto", proto, &server.addr, "bin.dat", "-o", "-"];
        ok(&get_into(cwd.path(), &args, &got));
        let cmp = std::process::Command::new("cmp")
            .args([&file, &got])
            .status()
            .unwrap();
        assert!(cmp.success(), "{proto}: stdout differs from the file");
        assert!(listing(cwd.path()).is_empty(), "{:?}", listing(cwd.path()));
    }
    // A wrong hash: the bytes went out, then one error line and a non-zero exit.
    let mut wrong_hash = frame(b"OK 10");
    wrong_hash.extend(frame(b"0123456789"));
    wrong_hash.extend(frame(b""));
    wrong_hash.extend(frame(blake3::hash(b"something else").as_bytes()));
    let (addr, server) = fake_server(wrong_hash);
    let got = mine.path().join("wrong.out");
    let line = fails(&get_into(cwd.path(), &[&addr, "f", "-o", "-"], &got), 1);
    server.join().unwrap();
    assert!(line.contains("BLAKE3 mismatch"), "{line}");
    assert_eq!(fs::read(&got).unwrap(), b"0123456789");
    assert!(listing(cwd.path()).is_empty(), "{:?}", listing(cwd.path()));
}

/// `get -o - | head -c 100`: the reader took what it wanted and left; a quiet end, as any
/// command's under `| head` (killed by SIGPIPE, as `yes | head -1`), though get writes to a
/// socket too (whose EPIPE is an error).
#[test]
fn get_o_dash_to_a_reader_that_left_ends_quietly() {
    let (root, sockdir) = (tempdir(), tempdir());
    fs::write(root.path().join("big.dat"), random_bytes(8 << 20, 5)).unwrap();
    for proto in ["tcp", "udp"] {
        let server = file_server(proto, sockdir.path(), root.path(), &[]);
        let child = common::with_closed_stdout(
            std::process::Command::new(common::bin())
                .args(["get", "--proto", proto, &server.addr, "big.dat", "-o", "-"])
                .stdin(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped()),
        )
        .spawn()
        .unwrap();
        let out = common::output_within(child, "get -o - to a closed pipe", common::STEP);
        let err = String::from_utf8_lossy(&out.stderr);
        let status = common::shell_status(&out.status);
        assert_eq!(status, 141, "{proto}: {err}");
        assert!(!err.contains("error"), "{proto}: {err}");
    }
}

/// `get -o - > /dev/full`: stdout is what could not be written, in one line, never "the
/// file"; the server hears of it too, and goes on.
#[test]
fn get_o_dash_into_a_full_stdout_says_stdout_is_full() {
    let (root, sockdir) = (tempdir(), tempdir());
    fs::write(root.path().join("a.txt"), b"hello").unwrap();
    for proto in ["tcp", "udp"] {
        let server = file_server(proto, sockdir.path(), root.path(), &[]);
        let child = std::process::Command::new(common::bin())
            .args(["get", "--proto", proto, &server.addr, "a.txt", "-o", "-"])
            .stdin(std::process::Stdio::null())
            .stdout(fs::File::create("/dev/full").unwrap())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let out = common::output_within(child, "get -o - into /dev/full", common::STEP);
        let line = fails(&out, 1);
        common::assert_mentions(&line, &["stdout is full (ENOSPC)", "redirect it elsewhere"]);
        assert!(!line.contains("the file"), "{proto}: {line}");
    }
}

#[test]
fn dev_stdout_is_refused_at_once_with_the_advice_to_use_o_dash() {
    let (root, cwd, sockdir) = (tempdir(), tempdir(), tempdir());
    fs::write(root.path().join("a.txt"), b"hi").unwrap();
    let server = file_server("tcp", sockdir.path(), root.path(), &[]);
    // Through a pipe, and into a regular file (where /dev/stdout leads to a file, which
    // --force would have replaced the link with).
    let got = cwd.path().join("stdout.txt");
    for force in [false, true] {
        let mut args = vec![server.addr.as_str(), "a.txt", "-o", "/dev/stdout"];
        args.extend(force.then_some("--force"));
        let line = fails(&netecho(&[&["get"], &args[..]].concat(), b""), 1);
        assert!(line.contains("give -o - for standard output"), "{line}");
        assert!(!line.contains("add --force"), "{line}");
        if !force {
            let file = fs::File::create(&got).unwrap();
            let mut child = std::process::Command::new(common::bin())
                .arg("get")
                .args(&args)
                .stdout(file)
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap();
            let status = common::wait_exit(&mut child, "get -o /dev/stdout into a file");
            assert_eq!(status.code(), Some(1));
        }
    }
    assert!(fs::read(&got).unwrap().is_empty());
    let link = fs::symlink_metadata("/dev/stdout").unwrap();
    assert!(link.file_type().is_symlink(), "/dev/stdout was replaced");
}

#[test]
fn uploads_need_upload_and_never_replace_a_served_file() {
    let (root, local, sockdir) = (tempdir(), tempdir(), tempdir());
    fs::write(root.path().join("kept.txt"), b"original").unwrap();
    let mine = local.path().join("kept.txt");
    fs::write(&mine, b"replacement").unwrap();
    for proto in ["tcp", "udp"] {
        let server = file_server(proto, sockdir.path(), root.path(), &[]);
        let line = fails(
            &netecho(&["put", "--proto", proto, &server.addr, s(&mine)], b""),
            1,
        );
        assert!(line.contains("--upload"), "{proto}: {line}");
        let server = file_server(proto, sockdir.path(), root.path(), &["--upload"]);
        let line = fails(
            &netecho(&["put", "--proto", proto, &server.addr, s(&mine)], b""),
            1,
        );
        assert!(line.contains("exists"), "{proto}: {line}");
        let line = fails(
            &netecho(
                &["put", "--proto", proto, &server.addr, s(&mine), "../up.txt"],
                b"",
            ),
            1,
        );
        assert!(line.contains("../up.txt"), "{proto}: {line}");
    }
    assert_eq!(fs::read(root.path().join("kept.txt")).unwrap(), b"original");
    assert_eq!(listing(root.path()), ["kept.txt"]);
}

#[test]
fn files_over_max_file_are_refused_both_ways() {
    let (root, local, sockdir) = (tempdir(), tempdir(), tempdir());
    fs::write(root.path().join("big"), vec![b'x'; 2000]).unwrap();
    let server = file_server(
        "tcp",
        sockdir.path(),
        root.path(),
        &["--upload", "--max-file", "1000"],
    );
    let out = local.path().join("big");
    let line = fails(
        &netecho(&["get", &server.addr, "big", "-o", s(&out)], b""),
        1,
    );
    assert!(line.contains("--max-file"), "{line}");
    assert!(!out.exists());
    let mine = local.path().join("mine");
    fs::write(&mine, vec![b'y'; 2000]).unwrap();
    let line = fails(&netecho(&["put", &server.addr, s(&mine)], b""), 1);
    assert!(line.contains("--max-file"), "{line}");
    assert_eq!(listing(root.path()), ["big"]);
}

/// One length-prefixed frame, as netecho's stream file protocol writes it.
fn frame(payload: &[u8]) -> Vec<u8> {
    let mut out = (payload.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(payload);
    out
}

fn read_frame(conn: &mut TcpStream) -> Vec<u8> {
    let mut len = [0u8; 4];
    conn.read_exact(&mut len).unwrap();
    let mut payload = vec![0u8; u32::from_be_bytes(len) as usize];
    conn.read_exact(&mut payload).unwrap();
    payload
}

/// Accepts one connection, waiting at most [`common::STEP`] for it.
fn accept_one(listener: &TcpListener) -> TcpStream {
    listener.set_nonblocking(true).unwrap();
    let conn = common::eventually("a client connects to the fake server", || {
        listener.accept().ok().map(|(conn, _)| conn)
    });
    conn.set_nonblocking(false).unwrap();
    conn
}

/// A one-shot fake file server that answers a GET with `reply` and then closes.
fn fake_server(reply: Vec<u8>) -> (String, thread::JoinHandle<Vec<u8>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let handle = thread::spawn(move || {
        let mut conn = accept_one(&listener);
        conn.set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let request = read_frame(&mut conn);
        conn.write_all(&reply).unwrap();
        request
    });
    (addr, handle)
}

#[test]
fn a_short_transfer_or_a_wrong_hash_leaves_nothing_under_the_name() {
    let body = b"0123456789";
    let mut short = frame(b"OK 100");
    short.extend(frame(body));
    let mut wrong_hash = frame(b"OK 10");
    wrong_hash.extend(frame(body));
    wrong_hash.extend(frame(b""));
    wrong_hash.extend(frame(blake3::hash(b"something else").as_bytes()));
    let mut right_hash = frame(b"OK 10");
    right_hash.extend(frame(body));
    right_hash.extend(frame(b""));
    right_hash.extend(frame(blake3::hash(body).as_bytes()));
    for (reply, expect) in [(short, "closed"), (wrong_hash, "BLAKE3"), (right_hash, "")] {
        let local = tempdir();
        let out = local.path().join("f");
        let (addr, server) = fake_server(reply);
        let result = netecho(&["get", &addr, "f", "-o", s(&out)], b"");
        assert_eq!(server.join().unwrap(), b"BLAKE3 GET f");
        if expect.is_empty() {
            // The control case: the fake server speaks the protocol correctly.
            ok(&result);
            assert_eq!(fs::read(&out).unwrap(), body);
            continue;
        }
        let line = fails(&result, 1);
        assert!(line.contains(expect), "{line}");
        assert!(
            listing(local.path()).is_empty(),
            "left behind: {:?}",
            listing(local.path())
        );
    }
}

/// A datagram of netecho's datagram file protocol: its type, then its fields.
fn packet(kind: u16, fields: &[&[u8]]) -> Vec<u8> {
    let mut out = kind.to_be_bytes().to_vec();
    for field in fields {
        out.extend_from_slice(field);
    }
    out
}

/// A request without the NUL bytes that pad it to 32.
fn unpadded(request: &[u8]) -> Vec<u8> {
    let end = request.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    request[..end].to_vec()
}

/// What the fake datagram server saw: the client's request and its FINACK verdict.
struct Seen {
    request: Vec<u8>,
    hash_ok: Option<bool>,
}

/// A one-shot fake datagram file server. A request gets a HELLO (its nonce, a token); when
/// the client sends it back, a READ (of version 2: BLAKE3) gets `body` as one short DATA
/// block, then a FIN that says `sha256` (the hash, whichever it is); a WRITE gets its blocks acknowledged and its FIN
/// a FINACK of `verdict`, after `late_acks` copies of the last block's ACK (late ones, as a
/// loaded receiver's queue holds them). It ends at the client's FINACK (or when it answered
/// the FIN), within STEP.
fn fake_datagram_server(
    body: Vec<u8>,
    sha256: Vec<u8>,
    (verdict, late_acks): (bool, usize),
) -> (String, thread::JoinHandle<Seen>) {
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = sock.local_addr().unwrap().to_string();
    let handle = thread::spawn(move || {
        sock.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let deadline = std::time::Instant::now() + common::STEP;
        let mut seen = Seen {
            request: Vec::new(),
            hash_ok: None,
        };
        let mut buf = vec![0u8; 70000];
        let mut got = 0u64;
        // What the client's HELLO, once back, begins: DATA 1 for a READ, ACK 0 for a WRITE.
        let mut begin = Vec::new();
        while std::time::Instant::now() < deadline {
            let Ok((n, client)) = sock.recv_from(&mut buf) else {
                continue;
            };
            let d = &buf[..n];
            let send = |p: Vec<u8>| sock.send_to(&p, client).unwrap();
            match u16::from_be_bytes([d[0], d[1]]) {
                // READ: a HELLO; then the file in one block shorter than the block size.
                9 => {
                    seen.request = unpadded(d);
                    send(packet(8, &[&d[6..14], &7u64.to_be_bytes()]));
                    begin = packet(3, &[&1u32.to_be_bytes(), &body]);
                }
                // WRITE: a HELLO; then ready for block 1.
                10 => {
                    seen.request = unpadded(d);
                    send(packet(8, &[&d[14..22], &7u64.to_be_bytes()]));
                    begin = packet(4, &[&0u32.to_be_bytes()]);
                }
                // The HELLO back: the client's address is proven.
                8 => {
                    send(begin.clone());
                }
                // DATA: acknowledged.
                3 => {
                    got += (n - 6) as u64;
                    send(packet(4, &[&d[2..6]]));
                    begin = packet(4, &[&d[2..6]]);
                }
                // ACK of block 1: the FIN, with the size and the hash this server claims.
                4 if d[2..6] == 1u32.to_be_bytes() => {
                    let size = (body.len() as u64).to_be_bytes();
                    send(packet(6, &[&size, &sha256, &1u64.to_be_bytes(), &[0; 8]]));
                }
                // FIN of an upload: the verdict, and the end.
                6 => {
                    assert_eq!(got, u64::from_be_bytes(d[2..10].try_into().unwrap()));
                    for _ in 0..late_acks {
                        send(begin.clone());
                    }
                    send(packet(7, &[&[u8::from(!verdict)]]));
                    seen.hash_ok = Some(verdict);
                    return seen;
                }
                // FINACK of a download: the client's verdict on the hash.
                7 => {
                    seen.hash_ok = Some(d[2] == 0);
                    return seen;
                }
                _ => {}
            }
        }
        seen
    });
    (addr, handle)
}

#[test]
fn a_wrong_hash_over_datagrams_leaves_nothing_and_the_client_says_so() {
    let body = b"0123456789".to_vec();
    for (hash, expect) in [
        (blake3::hash(b"something else"), "BLAKE3"),
        (blake3::hash(&body), ""),
    ] {
        let local = tempdir();
        let out = local.path().join("f");
        let (addr, server) =
            fake_datagram_server(body.clone(), hash.as_bytes().to_vec(), (true, 0));
        let result = netecho(
            &[
                "get",
                "--proto",
                "udp",
                "--timeout",
                "5s",
                &addr,
                "f",
                "-o",
                s(&out),
            ],
            b"",
        );
        let seen = server.join().unwrap();
        assert!(seen.request.ends_with(b"f"), "{:?}", seen.request);
        if expect.is_empty() {
            // The control case: the fake server speaks the protocol correctly.
            ok(&result);
            assert_eq!(seen.hash_ok, Some(true));
            assert_eq!(fs::read(&out).unwrap(), body);
            continue;
        }
        let line = fails(&result, 1);
        assert!(line.contains(expect), "{line}");
        assert_eq!(seen.hash_ok, Some(false), "the client told the server");
        assert!(
            listing(local.path()).is_empty(),
            "left behind: {:?}",
            listing(local.path())
        );
    }
    // An upload the receiver finds corrupt: the sender says so and fails.
    let local = tempdir();
    fs::write(local.path().join("mine"), &body).unwrap();
    let (addr, server) = fake_datagram_server(Vec::new(), Vec::new(), (false, 0));
    let mine = local.path().join("mine");
    let result = netecho(
        &[
            "put",
            "--proto",
            "udp",
            "--timeout",
            "5s",
            &addr,
            s(&mine),
            "up",
        ],
        b"",
    );
    assert_eq!(server.join().unwrap().hash_ok, Some(false));
    let line = fails(&result, 1);
    assert!(line.contains("BLAKE3 does not match"), "{line}");
}

#[test]
fn late_acks_of_data_behind_the_fin_do_not_use_up_its_attempts() {
    let local = tempdir();
    let mine = local.path().join("mine");
    fs::write(&mine, b"0123456789").unwrap();
    // More late ACKs than the FIN has attempts: each would have counted as a lost FIN. A
    // window of 64 makes the client's SO_RCVBUF room for them all.
    let (addr, server) = fake_datagram_server(Vec::new(), Vec::new(), (true, 16));
    let put = ["put", "--proto", "udp", "--timeout", "5s", "--window", "64"];
    let result = netecho(&[&put[..], &[&addr, s(&mine), "up"]].concat(), b"");
    assert_eq!(server.join().unwrap().hash_ok, Some(true));
    ok(&result);
}

#[test]
fn an_upload_cut_short_leaves_nothing_on_the_server() {
    let (root, sockdir) = (tempdir(), tempdir());
    let server = file_server("tcp", sockdir.path(), root.path(), &["--upload"]);
    let mut conn = TcpStream::connect(&server.addr).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    conn.write_all(&frame(b"PUT 100000 cut.bin")).unwrap();
    assert_eq!(read_frame(&mut conn), b"OK");
    conn.write_all(&frame(&[7u8; 5000])).unwrap();
    drop(conn);
    server.wait_log("cut.bin");
    // The server gives up on the upload and removes its temporary file.
    let deadline = std::time::Instant::now() + common::STEP;
    while !listing(root.path()).is_empty() && std::time::Instant::now() < deadline {
        thread::sleep(Duration::from_millis(20));
    }
    assert!(
        listing(root.path()).is_empty(),
        "{:?}",
        listing(root.path())
    );
}

#[test]
fn a_client_that_stops_reading_does_not_hold_up_the_next() {
    let (root, local, sockdir) = (tempdir(), tempdir(), tempdir());
    fs::write(root.path().join("big"), random_bytes(16 << 20, 3)).unwrap();
    fs::write(root.path().join("small"), b"small").unwrap();
    let server = file_server("tcp", sockdir.path(), root.path(), &[]);
    // Asks for 16 MiB and reads none of it: its sender blocks on a full socket buffer.
    let mut stalled = TcpStream::connect(&server.addr).unwrap();
    stalled.write_all(&frame(b"GET big")).unwrap();
    let out = local.path().join("small");
    ok(&netecho(
        &["get", &server.addr, "small", "-o", s(&out)],
        b"",
    ));
    assert_eq!(fs::read(&out).unwrap(), b"small");
    drop(stalled);
}

#[test]
fn a_bad_files_directory_is_one_clear_error() {
    let dir = tempdir();
    let missing: PathBuf = dir.path().join("nope");
    let line = fails(
        &netecho(
            &["serve", "--addr", "127.0.0.1:0", "--files", s(&missing)],
            b"",
        ),
        1,
    );
    assert!(line.contains("nope"), "{line}");
    let out = netecho(&["serve", "--addr", "127.0.0.1:0", "--upload"], b"");
    fails(&out, 2);
    assert!(String::from_utf8_lossy(&out.stderr).contains("--files <DIR>"));
}

#[test]
fn a_silent_connection_is_closed_after_the_idle_timeout() {
    let (root, sockdir) = (tempdir(), tempdir());
    let server = file_server(
        "tcp",
        sockdir.path(),
        root.path(),
        &["--idle-timeout", "1s"],
    );
    // Taken before the connect: the server's clock starts at its accept, which comes after
    // it, however long this thread is held up in between.
    let started = std::time::Instant::now();
    let mut conn = TcpStream::connect(&server.addr).unwrap();
    conn.set_read_timeout(Some(common::STEP)).unwrap();
    let mut buf = [0u8; 16];
    // The server closes the connection: a read returns end of stream, not a timeout.
    assert_eq!(conn.read(&mut buf).unwrap(), 0);
    assert!(started.elapsed() >= Duration::from_millis(900));
    server.wait_log("idle timeout");
}

/// Waits until `dir` holds a transfer's temporary file.
fn wait_for_part(dir: &Path) {
    let deadline = std::time::Instant::now() + common::STEP;
    while !listing(dir).iter().any(|n| n.ends_with(".part")) {
        assert!(
            std::time::Instant::now() < deadline,
            "no .part file appeared"
        );
        thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn a_stop_in_the_middle_of_a_transfer_leaves_no_temporary_file() {
    let (root, local, sockdir) = (tempdir(), tempdir(), tempdir());
    let data = random_bytes(48 << 20, 5);
    fs::write(root.path().join("big"), &data).unwrap();
    fs::write(local.path().join("mine"), &data).unwrap();
    // A server stopped while an upload comes in.
    let server = file_server("udp", sockdir.path(), root.path(), &["--upload"]);
    let mut put = std::process::Command::new(common::bin())
        .args(["put", "--proto", "udp", "--block-size", "512", &server.addr])
        .arg(local.path().join("mine"))
        .arg("up")
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_for_part(root.path());
    let (status, _, _) = server.stop("TERM");
    assert!(status.success());
    assert_eq!(listing(root.path()), ["big"]);
    let _ = put.kill();
    common::wait_exit(&mut put, "put, killed,");
    // A client interrupted while a download comes in.
    let server = file_server("udp", sockdir.path(), root.path(), &[]);
    let out = tempdir();
    let mut get = common::with_sigint(&mut std::process::Command::new(common::bin()), false)
        .args([
            "get",
            "--proto",
            "udp",
            "--block-size",
            "512",
            &server.addr,
            "big",
            "-o",
        ])
        .arg(out.path().join("big"))
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_for_part(out.path());
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(get.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let status = common::wait_exit(&mut get, "get, after SIGINT,");
    assert_eq!(common::shell_status(&status), 130, "{status:?}");
    assert!(listing(out.path()).is_empty(), "{:?}", listing(out.path()));
}

/// Reads a stream download's reply, data and trailer: the data and the 32-byte hash.
fn read_download(conn: &mut TcpStream) -> (Vec<u8>, Vec<u8>) {
    let reply = read_frame(conn);
    assert!(reply.starts_with(b"OK "), "{reply:?}");
    let mut data = Vec::new();
    loop {
        let chunk = read_frame(conn);
        if chunk.is_empty() {
            break;
        }
        data.extend(chunk);
    }
    (data, read_frame(conn))
}

#[test]
fn a_request_names_its_hash_and_one_that_names_none_gets_sha256() {
    let (root, sockdir) = (tempdir(), tempdir());
    let body = random_bytes(200_000, 9);
    fs::write(root.path().join("data.bin"), &body).unwrap();
    let server = file_server("tcp", sockdir.path(), root.path(), &[]);
    for (request, digest) in [
        (&b"GET data.bin"[..], Sha256::digest(&body).to_vec()),
        (
            b"BLAKE3 GET data.bin",
            blake3::hash(&body).as_bytes().to_vec(),
        ),
    ] {
        let mut conn = TcpStream::connect(&server.addr).unwrap();
        conn.set_read_timeout(Some(common::STEP)).unwrap();
        conn.write_all(&frame(request)).unwrap();
        let (data, hash) = read_download(&mut conn);
        assert!(data == body, "{request:?}: the data differs");
        assert_eq!(hash, digest, "{request:?}");
    }
}

#[test]
fn a_server_that_knows_no_blake3_is_explained() {
    let reply = frame(b"ERR unknown request; send GET <name> or PUT <size> <name>");
    let local = tempdir();
    let (addr, server) = fake_server(reply);
    let result = netecho(&["get", &addr, "f", "-o", s(&local.path().join("f"))], b"");
    assert_eq!(server.join().unwrap(), b"BLAKE3 GET f");
    let line = fails(&result, 1);
    assert!(
        line.contains("older netecho") && line.contains("SHA-256"),
        "{line}"
    );
}

/// The next datagram on `sock` within `wait`: its bytes, or `None`.
fn next_datagram(sock: &std::net::UdpSocket, wait: Duration) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; 70000];
    sock.set_read_timeout(Some(wait)).unwrap();
    let (n, _) = sock.recv_from(&mut buf).ok()?;
    buf.truncate(n);
    Some(buf)
}

/// The block number of a DATA packet; `None` for anything else.
fn data_block(p: &[u8]) -> Option<u32> {
    (p.len() >= 6 && p[..2] == [0, 3]).then(|| u32::from_be_bytes(p[2..6].try_into().unwrap()))
}

/// What a sender logs (-v) when its retransmission timer fires.
const TIMED_OUT: &str = "timeout: sending block";

/// Whether `server` logged its retransmission timer firing (its log read for up to 2 s).
fn timer_fired(server: &Server) -> bool {
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    while std::time::Instant::now() < deadline {
        if server.stderr().contains(TIMED_OUT) {
            return true;
        }
        thread::sleep(Duration::from_millis(20));
    }
    false
}

/// One READ of `f` (100 blocks) from a server of its own, the client ACKing block 2 and
/// then SACKing 4, 5 and 6 (block 3 "lost"): the DATA blocks up to the SACK, and those
/// after it until 7 and 8 came (20 at most). `None` when the blocks were not the ones
/// asked for and the server's retransmission timer fired meanwhile: a test thread held
/// up past the timeout (200 ms at first, as little as 10 ms once a round trip was
/// measured) makes the server send again with its window shrunk, as it should.
fn sack_exchange(root: &Path, sockdir: &Path) -> Option<(Vec<u32>, Vec<u32>)> {
    let server = file_server("udp", sockdir, root, &["-v"]);
    let client = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    // READ of version 2: window 16, block size 512, nonce 5, name, padded to 32 bytes.
    let mut read = packet(
        9,
        &[
            &16u16.to_be_bytes(),
            &512u16.to_be_bytes(),
            &5u64.to_be_bytes(),
            b"f",
        ],
    );
    read.resize(32, 0);
    client.send_to(&read, &server.addr).unwrap();
    client.set_read_timeout(Some(common::STEP)).unwrap();
    let mut buf = vec![0u8; 70000];
    // The well-known socket's COOKIE; its token goes back with the READ in a PROOF.
    let (n, _) = client.recv_from(&mut buf).expect("a COOKIE within STEP");
    assert_eq!(buf[..2], [0, 12], "a COOKIE first");
    let proof = packet(11, &[&buf[10..n], &read]);
    client.send_to(&proof, &server.addr).unwrap();
    let (n, tid) = client.recv_from(&mut buf).expect("a HELLO within STEP");
    let hello = buf[..n].to_vec();
    assert_eq!(hello[..2], [0, 8], "a HELLO first");
    // The HELLO goes back to the transfer socket that sent it.
    client.send_to(&hello, tid).unwrap();
    // Blocks as they come, until `enough` says so or `most` datagrams were read.
    let blocks = |most: usize, enough: &dyn Fn(&[u32]) -> bool| {
        let mut got = Vec::new();
        for _ in 0..most {
            if enough(&got) {
                break;
            }
            let Some(p) = next_datagram(&client, Duration::from_secs(3)) else {
                break;
            };
            got.extend(data_block(&p));
        }
        got
    };
    let mut before = blocks(8, &|got| got.len() == 2);
    client
        .send_to(&packet(4, &[&2u32.to_be_bytes()]), tid)
        .unwrap();
    before.extend(blocks(8, &|got| got.len() == 4));
    // Block 3 "lost": the SACK says 4, 5 and 6 arrived (bits 0, 1, 2 past ACK 2 + 2).
    client
        .send_to(&packet(4, &[&2u32.to_be_bytes(), &[0b111]]), tid)
        .unwrap();
    let after = blocks(20, &|got| got.contains(&7) && got.contains(&8));
    let as_asked = before == [1, 2, 3, 4, 5, 6] && after.contains(&7) && after.contains(&8);
    if !as_asked && timer_fired(&server) {
        return None;
    }
    Some((before, after))
}

#[test]
fn a_server_sends_again_only_the_blocks_a_sack_says_are_missing() {
    let (root, sockdir) = (tempdir(), tempdir());
    fs::write(root.path().join("f"), random_bytes(100 * 512, 4)).unwrap();
    // An attempt the server's timer cut into proves nothing: another, five in all at most.
    let mut attempts = 1;
    let (before, after) = loop {
        if let Some(blocks) = sack_exchange(root.path(), sockdir.path()) {
            break blocks;
        }
        assert!(
            attempts < 5,
            "the server's timer fired in {attempts} attempts"
        );
        attempts += 1;
    };
    assert!(
        before.starts_with(&[1, 2]),
        "two blocks before any ACK: {before:?}"
    );
    assert_eq!(before[2..], [3, 4, 5, 6], "the ACK grew the window");
    assert!(
        after.contains(&7) && after.contains(&8),
        "no new blocks after the SACK: {after:?}"
    );
    assert!(after.contains(&3), "the hole was not sent again: {after:?}");
    assert!(
        !after.iter().any(|b| (4..=6).contains(b)),
        "blocks the SACK named were sent again: {after:?}"
    );
}

#[test]
fn put_and_get_refuse_a_directory_or_device_before_anything_goes_out() {
    let (root, local, sockdir) = (tempdir(), tempdir(), tempdir());
    fs::write(root.path().join("notes.txt"), b"served").unwrap();
    let server = file_server("tcp", sockdir.path(), root.path(), &["--upload"]);
    let put = |path: &str| fails(&netecho(&["put", &server.addr, path], b""), 1);
    let line = put(s(local.path()));
    assert!(
        line.contains("is a directory; put uploads one file"),
        "{line}"
    );
    let line = put("/dev/null");
    assert!(line.contains("not a regular file"), "{line}");
    let line = put(s(&local.path().join("missing.txt")));
    assert!(line.contains("no such file; give the path"), "{line}");
    assert_eq!(listing(root.path()), ["notes.txt"]);
    // -o naming a directory: the file's path in it is the answer, not --force.
    fs::write(local.path().join("keep.txt"), b"mine").unwrap();
    let dir = s(local.path());
    let get = ["get", &server.addr, "notes.txt", "-o", dir, "--force"];
    let line = fails(&netecho(&get, b""), 1);
    let want = format!("is a directory: give -o the file's own path (-o {dir}/notes.txt)");
    assert!(line.contains(&want), "{line}");
    assert_eq!(listing(local.path()), ["keep.txt"]);
    // A device is never replaced, so the first answer says so instead of advising --force.
    for force in [&[][..], &["--force"]] {
        let get = [
            &["get", &server.addr, "notes.txt", "-o", "/dev/null"][..],
            force,
        ]
        .concat();
        let line = fails(&netecho(&get, b""), 1);
        assert!(line.contains("/dev/null is not a regular file"), "{line}");
        assert!(line.contains("even with --force"), "{line}");
    }
    // None of them reached the server.
    let (_, stdout, _) = server.stop("TERM");
    assert!(stdout.contains("clients 0,"), "{stdout}");
}

/// get and put pointed at a plain echo server hear their request come back upper-cased: they
/// say it is an echo server and how to start a file server, instead of quoting it as a
/// refusal.
#[test]
fn get_and_put_at_an_echo_server_say_it_sent_the_request_back() {
    let echo = Server::start(&["--addr", "127.0.0.1:0"]);
    let dir = tempdir();
    let local = dir.path().join("up.txt");
    fs::write(&local, b"hi").unwrap();
    let out = dir.path().join("notes.txt");
    let runs = [
        vec!["get", &echo.addr, "notes.txt", "-o", out.to_str().unwrap()],
        vec!["put", &echo.addr, local.to_str().unwrap()],
    ];
    for args in runs {
        let line = fails(&netecho(&args, b""), 1);
        let want = format!("{} sent the request back: it is an echo server", echo.addr);
        assert!(line.contains(&want), "{line}");
        assert!(line.contains("`netecho serve --files DIR`"), "{line}");
    }
}
