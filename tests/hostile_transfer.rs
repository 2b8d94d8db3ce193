//! `get`, `put` and the stream file service against what an attacker (or a careless user)
//! tries: OUT a device, a FIFO or a directory, a pipe uploaded, a server announcing more
//! than the disk holds, one client holding every thread, a transfer trickled to stay under
//! the idle timeout, an oversized request, overlong names, and the start-up sweep of
//! temporary files.

mod common;

use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileTypeExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Server, fails, netecho, ok, tempdir};

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A tcp file server on loopback for `root`, with `extra` flags.
fn file_server(root: &Path, extra: &[&str]) -> Server {
    let mut args = vec!["--addr", "127.0.0.1:0", "--files", s(root)];
    args.extend_from_slice(extra);
    Server::start(&args)
}

/// One length-prefixed frame.
fn frame(payload: &[u8]) -> Vec<u8> {
    let mut out = (payload.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(payload);
    out
}

/// The next frame's payload, or None when the connection ends first.
fn read_frame(conn: &mut TcpStream) -> Option<Vec<u8>> {
    let mut len = [0u8; 4];
    conn.read_exact(&mut len).ok()?;
    let mut payload = vec![0u8; u32::from_be_bytes(len) as usize];
    conn.read_exact(&mut payload).ok()?;
    Some(payload)
}

#[test]
fn get_never_replaces_a_fifo_a_device_or_a_directory() {
    let (root, here) = (tempdir(), tempdir());
    fs::write(root.path().join("ok1.txt"), [b'x'; 100]).unwrap();
    let server = file_server(root.path(), &[]);
    let fifo = here.path().join("myfifo");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    // A symlink to one, as /dev/stdout is: neither it nor what it leads to is replaced.
    let link = here.path().join("mylink");
    std::os::unix::fs::symlink(&fifo, &link).unwrap();
    let mut nodes = vec![fifo, link];
    // A character device like /dev/null, where this user may make one.
    let null = here.path().join("mynull");
    if Command::new("mknod")
        .args([s(&null), "c", "1", "3"])
        .status()
        .is_ok_and(|st| st.success())
    {
        nodes.push(null);
    }
    for node in &nodes {
        let line = fails(
            &netecho(
                &["get", &server.addr, "ok1.txt", "-o", s(node), "--force"],
                b"",
            ),
            1,
        );
        assert!(line.contains("not a regular file"), "{line}");
        let kind = fs::symlink_metadata(node).unwrap().file_type();
        assert!(
            kind.is_fifo() || kind.is_char_device() || kind.is_symlink(),
            "{node:?} was replaced"
        );
    }
    let dir = here.path().join("d1");
    fs::create_dir(&dir).unwrap();
    let with_slash = format!("{}/", s(&dir));
    for (out, force) in [(s(&dir), true), (&with_slash, false), (&with_slash, true)] {
        let mut args = vec!["get", &server.addr, "ok1.txt", "-o", out];
        if force {
            args.push("--force");
        }
        let line = fails(&netecho(&args, b""), 1);
        assert!(line.contains("is a directory"), "{out}: {line}");
    }
    // Refused before connecting: the server saw nobody.
    let log = server.stderr();
    assert!(
        !log.contains("ok1.txt") && !log.contains("127.0.0.1:"),
        "{log}"
    );
    assert_eq!(fs::read_dir(&dir).unwrap().count(), 0);
}

#[test]
fn put_refuses_a_pipe_a_device_and_a_directory_before_connecting() {
    let (root, here) = (tempdir(), tempdir());
    let server = file_server(root.path(), &["--upload"]);
    for (local, why) in [
        ("/dev/stdin", "not a regular file"),
        // `get -o -` is stdout; `put -` is no file, and is told put reads no stdin.
        ("-", "put reads no stdin (-)"),
        ("/dev/zero", "not a regular file"),
        (s(here.path()), "is a directory"),
    ] {
        let line = fails(
            &netecho(&["put", &server.addr, local, "up.bin"], b"some data\n"),
            1,
        );
        assert!(line.contains(why), "{local}: {line}");
    }
    assert_eq!(
        fs::read_dir(root.path()).unwrap().count(),
        0,
        "nothing stored"
    );
    let log = server.stderr();
    assert!(
        !log.contains("up.bin") && !log.contains("127.0.0.1:"),
        "{log}"
    );
}

/// Connections held by one user of this host on 127.0.0.1, .2 and .3: loopback addresses
/// are one host, so they all count in that user's share.
fn hold_sixteen(server: &Server, socket: impl Fn() -> socket2::Socket) -> Vec<TcpStream> {
    (0..16)
        .map(|i| {
            common::tcp_from(
                socket(),
                ["127.0.0.1", "127.0.0.2", "127.0.0.3"][i % 3],
                &server.addr,
            )
        })
        .collect()
}

/// What the server tells a connection from `source` made by `sock`, up to its close.
fn told_from(sock: socket2::Socket, source: &str, server: &Server) -> String {
    let mut conn = common::tcp_from(sock, source, &server.addr);
    let mut told = Vec::new();
    let _ = conn.read_to_end(&mut told);
    String::from_utf8_lossy(&told).into_owned()
}

fn stream_socket() -> socket2::Socket {
    socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap()
}

/// A local user's connections count by the user owning their sockets, on every loopback
/// address at once: a 17th from any of them is told busy, and served once one ends.
#[test]
fn one_local_user_holds_a_few_connections_and_the_next_is_told_busy() {
    let root = tempdir();
    fs::write(root.path().join("ok1.txt"), b"hello").unwrap();
    let server = file_server(root.path(), &[]);
    let held = hold_sixteen(&server, stream_socket);
    let out = tempdir();
    let got = out.path().join("ok1.txt");
    let line = common::eventually("a busy refusal", || {
        let out = netecho(&["get", &server.addr, "ok1.txt", "-o", s(&got)], b"");
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        err.contains("busy").then_some(err)
    });
    let uid = nix::unistd::geteuid();
    let mine = format!("16 connections from your user (uid {uid}) on this host already");
    assert!(line.contains(&mine), "{line}");
    // Another loopback address is the same host and the same user.
    let told = told_from(stream_socket(), "127.0.0.4", &server);
    assert!(told.contains(&mine), "from 127.0.0.4: {told}");
    server.wait_log(&format!(
        "16 connections from uid {uid} on this host already"
    ));
    drop(held);
    common::eventually("a get once the connections closed", || {
        netecho(&["get", &server.addr, "ok1.txt", "-o", s(&got)], b"")
            .status
            .success()
            .then_some(())
    });
}

/// Every local user comes from 127.0.0.1: another user holding its 16 connections (on
/// 127.0.0.2 and .3 as well, one share) is refused a 17th, and root is served meanwhile.
#[test]
fn another_local_user_holding_its_connections_leaves_root_served() {
    let test = "another_local_user_holding_its_connections_leaves_root_served";
    if !nix::unistd::Uid::effective().is_root() {
        let why = "root, to make sockets owned by nobody";
        common::skip(test, why, common::Lacks::Provided);
        return;
    }
    let root = tempdir();
    fs::write(root.path().join("ok1.txt"), b"hello").unwrap();
    let server = file_server(root.path(), &[]);
    let nobody = || common::nobody_socket(socket2::Type::STREAM);
    let held = hold_sixteen(&server, nobody);
    let told = told_from(nobody(), "127.0.0.1", &server);
    let busy = "busy: 16 connections from your user (uid 65534) on this host already";
    assert!(told.contains(busy), "nobody's 17th: {told}");
    let out = tempdir();
    let got = out.path().join("ok1.txt");
    ok(&netecho(
        &["get", &server.addr, "ok1.txt", "-o", s(&got)],
        b"",
    ));
    assert_eq!(fs::read(&got).unwrap(), b"hello");
    drop(held);
}

/// Over a Unix socket every user may open, a user is one source, as over TCP: nobody holding
/// its 16 connections is refused a 17th, and another user (daemon) gets its file meanwhile.
#[test]
fn over_a_unix_socket_one_user_holding_its_connections_leaves_another_served() {
    let test = "over_a_unix_socket_one_user_holding_its_connections_leaves_another_served";
    if !common::nobody_can_run(test) || !common::have("/usr/bin/python3", test) {
        return;
    }
    let (root, dir) = (tempdir(), tempdir());
    fs::write(root.path().join("ok1.txt"), b"hello").unwrap();
    let sock = dir.path().join("files.sock");
    let server = Server::start(&[
        "--proto",
        "unix",
        "--addr",
        s(&sock),
        "--files",
        s(root.path()),
    ]);
    common::open_to_all(&sock);
    let _held = common::unix_held_by(65534, &sock, 16);
    let get = |uid| {
        common::run(
            &mut common::as_user(uid, &["get", &server.url(), "ok1.txt", "-o", "-"]),
            b"",
        )
    };
    let line = fails(&get(65534), 1);
    let busy = "busy: 16 connections from your user (uid 65534) on this host already";
    assert!(line.contains(busy), "nobody's 17th: {line}");
    assert_eq!(ok(&get(1)), "hello");
}

#[test]
fn an_upload_trickled_under_the_idle_timeout_is_cut() {
    let root = tempdir();
    let server = file_server(root.path(), &["--upload", "--idle-timeout", "2s"]);
    let mut conn = TcpStream::connect(&server.addr).unwrap();
    conn.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    conn.write_all(&frame(b"BLAKE3 PUT 1000000 slow.bin"))
        .unwrap();
    let started = Instant::now();
    let mut reply = Vec::new();
    // A byte every 0.25 s, far under 1 KiB/s: an eighth of the idle timeout, so a byte
    // held up a second on a loaded machine still comes within it (the cut must be for
    // the pace, not idleness). Bounded: 40 s is many periods of 2 s.
    while started.elapsed() < Duration::from_secs(40) {
        if conn.write_all(&frame(b"x")).is_err() {
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
        let mut buf = [0u8; 256];
        match conn.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => reply.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(_) => break,
        }
    }
    let log = server.wait_log("too slow");
    assert!(log.contains("slow.bin"), "{log}");
    assert_eq!(
        fs::read_dir(root.path()).unwrap().count(),
        0,
        "no file left"
    );
}

#[test]
fn a_slow_but_steady_upload_is_stored() {
    let root = tempdir();
    let server = file_server(root.path(), &["--upload", "--idle-timeout", "2s"]);
    let mut conn = TcpStream::connect(&server.addr).unwrap();
    conn.set_read_timeout(Some(common::STEP)).unwrap();
    let data = vec![7u8; 24 * 2048];
    conn.write_all(&frame(
        format!("BLAKE3 PUT {} steady.bin", data.len()).as_bytes(),
    ))
    .unwrap();
    assert_eq!(read_frame(&mut conn).as_deref(), Some(&b"OK"[..]));
    // 2 KiB every quarter second for three periods of the idle timeout: 8 KiB/s, slow, and
    // far over the 1 KiB/s asked. A pause is an eighth of the idle timeout, so a piece held
    // up a second on a loaded machine still comes within it.
    for piece in data.chunks(2048) {
        conn.write_all(&frame(piece)).unwrap();
        std::thread::sleep(Duration::from_millis(250));
    }
    conn.write_all(&frame(b"")).unwrap();
    conn.write_all(&frame(blake3::hash(&data).as_bytes()))
        .unwrap();
    assert_eq!(read_frame(&mut conn).as_deref(), Some(&b"OK stored"[..]));
    assert_eq!(fs::read(root.path().join("steady.bin")).unwrap(), data);
}

/// A fake file server: answers any request `OK <size>`, then sends up to `frames` data
/// frames of 60 KiB while the client takes them; returns the frames it got out.
fn fake_server(size: u64, frames: usize) -> (String, std::thread::JoinHandle<usize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let handle = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        conn.set_read_timeout(Some(common::STEP)).unwrap();
        conn.set_write_timeout(Some(common::STEP)).unwrap();
        read_frame(&mut conn);
        conn.write_all(&frame(format!("OK {size}").as_bytes()))
            .unwrap();
        let chunk = frame(&[0u8; 60 * 1024]);
        (0..frames)
            .take_while(|_| conn.write_all(&chunk).is_ok())
            .count()
    });
    (addr, handle)
}

#[test]
fn get_refuses_a_size_over_max_file_or_the_free_space_before_writing() {
    let here = tempdir();
    let out = here.path().join("big.bin");
    for (size, max, why) in [
        (100_000_000_000_000u64, None, "bytes are free"),
        (1_000_000, Some("100K"), "over the 102400-byte limit"),
    ] {
        let (addr, fake) = fake_server(size, 2000);
        let mut args = vec!["get", &addr, "big.bin", "-o", s(&out)];
        if let Some(max) = max {
            args.extend(["--max-file", max]);
        }
        let line = fails(&netecho(&args, b""), 1);
        assert!(line.contains(why), "{line}");
        // The client closed at once: the fake server could not push 120 MB into it.
        assert!(fake.join().unwrap() < 2000);
        assert_eq!(
            fs::read_dir(here.path()).unwrap().count(),
            0,
            "nothing written"
        );
    }
}

/// A udp file server that answers a request with ERROR (busy: every request thread
/// taken) from its own port: the client says what it said, not "no answer".
#[test]
fn get_over_udp_says_the_server_s_refusal_of_a_request() {
    let fake = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    fake.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let addr = fake.local_addr().unwrap().to_string();
    let answering = std::thread::spawn(move || {
        let mut buf = [0u8; 2048];
        // Every datagram the client sends (request, proof, tries) gets the refusal.
        while let Ok((_, from)) = fake.recv_from(&mut buf) {
            let _ = fake.send_to(b"\x00\x05busy: too many requests at once", from);
        }
    });
    let here = tempdir();
    let out = here.path().join("f");
    let args = [
        "get",
        "--proto",
        "udp",
        &addr,
        "f",
        "-o",
        s(&out),
        "--timeout",
        "2s",
    ];
    let line = fails(&netecho(&args, b""), 1);
    assert!(
        line.contains("the server refused: busy: too many requests at once"),
        "{line}"
    );
    drop(answering);
}

/// Over datagrams the size comes only with the last block: --max-file stops the download
/// as the bytes pass it, and nothing is left behind.
#[test]
fn get_over_udp_stops_at_max_file() {
    let (root, here) = (tempdir(), tempdir());
    fs::write(root.path().join("big.bin"), vec![7u8; 300_000]).unwrap();
    let server = common::files_server("udp", root.path(), &[]);
    let out = here.path().join("big.bin");
    let get = |max: &str| {
        let args = [
            "get",
            "--proto",
            "udp",
            &server.addr,
            "big.bin",
            "-o",
            s(&out),
            "--max-file",
            max,
        ];
        netecho(&args, b"")
    };
    let line = fails(&get("100K"), 1);
    assert!(line.contains("over the 102400-byte limit"), "{line}");
    assert_eq!(
        fs::read_dir(here.path()).unwrap().count(),
        0,
        "nothing left"
    );
    ok(&get("1M"));
    assert_eq!(fs::read(&out).unwrap().len(), 300_000);
}

#[test]
fn a_request_is_at_most_4_kib_and_never_logged_whole_past_that() {
    let root = tempdir();
    let server = file_server(root.path(), &[]);
    let mut conn = TcpStream::connect(&server.addr).unwrap();
    conn.set_read_timeout(Some(common::STEP)).unwrap();
    let name = "n".repeat(60_000);
    let _ = conn.write_all(&frame(format!("BLAKE3 GET {name}").as_bytes()));
    assert!(read_frame(&mut conn).is_none_or(|f| f.starts_with(b"ERR")));
    let log = server.wait_log(&format!("127.0.0.1:{}", conn.local_addr().unwrap().port()));
    assert!(
        log.len() < 8_000,
        "{} bytes logged:\n{}",
        log.len(),
        &log[..200]
    );
    // A long name the server cannot find is logged once, not once per layer.
    let name = "m".repeat(4000);
    let mut conn = TcpStream::connect(&server.addr).unwrap();
    conn.set_read_timeout(Some(common::STEP)).unwrap();
    conn.write_all(&frame(format!("BLAKE3 GET {name}").as_bytes()))
        .unwrap();
    assert!(read_frame(&mut conn).is_some_and(|f| f.starts_with(b"ERR")));
    let log = server.wait_log(&format!("127.0.0.1:{}", conn.local_addr().unwrap().port()));
    assert_eq!(log.matches(&name).count(), 1, "{}", &log[..300]);
}

#[test]
fn upload_names_too_long_or_ending_in_a_slash_are_refused_before_ok() {
    let (root, here) = (tempdir(), tempdir());
    let server = file_server(root.path(), &["--upload"]);
    let local = here.path().join("a.txt");
    fs::write(&local, b"data").unwrap();
    let long = "n".repeat(300);
    let deep = format!("{}/x", "d".repeat(300));
    for (name, why) in [
        (long.as_str(), "at most 1024, and 255 between slashes"),
        (deep.as_str(), "at most 1024, and 255 between slashes"),
        ("dir/", "ends with '/'"),
    ] {
        let line = fails(&netecho(&["put", &server.addr, s(&local), name], b""), 1);
        assert!(line.contains(why), "{name}: {line}");
        let root = fs::canonicalize(root.path()).unwrap();
        assert!(!line.contains(s(&root)), "the server's path shown: {line}");
    }
    assert_eq!(
        fs::read_dir(root.path()).unwrap().count(),
        0,
        "nothing stored"
    );
}

/// A temporary file's name as netecho makes them, of a pid no process has (above the
/// kernel's pid_max limit).
const DEAD: &str = ".t.netecho-4194305-7.part";

#[test]
fn only_an_upload_server_sweeps_and_only_its_own_unlocked_files() {
    let root = tempdir();
    fs::create_dir(root.path().join("sub")).unwrap();
    let stale = root.path().join("sub").join(DEAD);
    fs::write(&stale, b"important").unwrap();
    // A read-only server removes nothing.
    let server = file_server(root.path(), &[]);
    drop(server);
    assert!(stale.exists(), "a read-only server removed a file");
    // Locked: another namespace's transfer still writing it, whatever its pid says here.
    let locked = root.path().join(".u.netecho-4194305-8.part");
    let held = fs::File::create(&locked).unwrap();
    // Safety: a valid descriptor for the call.
    assert_eq!(unsafe { libc::flock(held.as_raw_fd(), libc::LOCK_EX) }, 0);
    // Not exactly netecho's pattern.
    let others = [
        ".netecho-4194305-9.part",
        ".v.netecho-+4194305-9.part",
        ".w.netecho-4194305-9.part.keep",
    ];
    for name in others {
        fs::write(root.path().join(name), b"x").unwrap();
    }
    let server = file_server(root.path(), &["--upload"]);
    server.wait_log("removed");
    drop(server);
    assert!(!stale.exists(), "the stale file stayed");
    assert!(locked.exists(), "a locked temporary file was removed");
    for name in others {
        assert!(root.path().join(name).exists(), "{name} was removed");
    }
}

#[test]
fn get_help_names_the_hash_it_uses() {
    let help = ok(&netecho(&["get", "--help"], b""));
    assert!(help.contains("BLAKE3"), "{help}");
    assert!(!help.contains("SHA-256 check"), "{help}");
}

/// An upload server on loopback for `root` whose files end at 512 KiB (see
/// common::limit_file_size), with `extra` flags.
fn limited_upload_server(root: &Path, extra: &[&str]) -> Server {
    let mut cmd = Command::new(common::bin());
    cmd.args([
        "serve",
        "--addr",
        "127.0.0.1:0",
        "--upload",
        "--files",
        s(root),
    ])
    .args(extra);
    Server::start_with(common::limit_file_size(&mut cmd, 512 * 1024))
}

/// A PUT of `size` bytes on a connection of its own: the server's reply and the connection.
fn announce(server: &Server, size: u64, name: &str) -> (Vec<u8>, TcpStream) {
    let conn = TcpStream::connect(&server.addr).unwrap();
    conn.set_read_timeout(Some(common::STEP)).unwrap();
    announce_on(conn, size, name)
}

/// A PUT of `size` bytes on `conn`: the server's reply and the connection.
fn announce_on(mut conn: TcpStream, size: u64, name: &str) -> (Vec<u8>, TcpStream) {
    conn.write_all(&frame(format!("BLAKE3 PUT {size} {name}").as_bytes()))
        .unwrap();
    (read_frame(&mut conn).unwrap_or_default(), conn)
}

/// One local user announces, over two connections, nearly all the free space and sends
/// nothing: together its uploads hold back half of it, so another user's upload of 40 % is
/// still taken, and one of 60 % refused. Nothing is written: each is only announced.
#[test]
fn one_owner_announcing_the_whole_disk_holds_back_only_half_of_it() {
    let test = "one_owner_announcing_the_whole_disk_holds_back_only_half_of_it";
    if !nix::unistd::Uid::effective().is_root() {
        let why = "root, to make sockets owned by nobody";
        common::skip(test, why, common::Lacks::Provided);
        return;
    }
    let root = tempdir();
    let free = common::free_space(root.path());
    let max = (free * 4).to_string();
    let server = limited_upload_server(root.path(), &["--max-file", &max]);
    // Root's: each fits, as the first holds back at most half.
    let (first, _one) = announce(&server, free / 100 * 45, "one.bin");
    assert_eq!(first, b"OK");
    let (second, _two) = announce(&server, free / 100 * 45, "two.bin");
    assert_eq!(second, b"OK");
    let nobody = || {
        let sock = common::nobody_socket(socket2::Type::STREAM);
        common::tcp_from(sock, "127.0.0.1", &server.addr)
    };
    let (over, _) = announce_on(nobody(), free / 100 * 60, "three.bin");
    let over = String::from_utf8_lossy(&over).into_owned();
    assert!(
        over.starts_with("ERR ") && over.contains("MB free"),
        "{over}"
    );
    let (taken, _four) = announce_on(nobody(), free / 100 * 40, "four.bin");
    assert_eq!(String::from_utf8_lossy(&taken), "OK");
}

#[test]
fn a_put_larger_than_the_free_space_is_refused_and_parallel_puts_never_overcommit() {
    let (root, here) = (tempdir(), tempdir());
    let free = common::free_space(root.path());
    let max = (free * 4).to_string();
    let server = limited_upload_server(root.path(), &["--max-file", &max]);
    // A sparse file: announced whole, taking no room here.
    let local = here.path().join("huge.bin");
    fs::File::create(&local)
        .unwrap()
        .set_len(free * 2 + (1 << 30))
        .unwrap();
    let line = fails(&netecho(&["put", &server.addr, s(&local)], b""), 1);
    assert!(line.contains("MB free"), "{line}");
    // Each fits alone; two together do not: the second is refused while the first is
    // under way, and taken once the first has gone.
    let part = free / 10 * 6;
    let (first, held) = announce(&server, part, "one.bin");
    assert_eq!(first, b"OK");
    let (second, _) = announce(&server, part, "two.bin");
    let second = String::from_utf8_lossy(&second).into_owned();
    assert!(
        second.starts_with("ERR ") && second.contains("MB free"),
        "{second}"
    );
    drop(held);
    common::eventually("the first upload's room given back", || {
        let (third, _conn) = announce(&server, part, "three.bin");
        (third == b"OK").then_some(())
    });
    assert!(fs::read_dir(root.path()).unwrap().all(|e| {
        let name = e.unwrap().file_name();
        !["one.bin", "two.bin", "three.bin"].contains(&name.to_str().unwrap())
    }));
}

#[test]
fn a_write_that_fails_on_the_server_reaches_put_as_its_reason() {
    let (root, here) = (tempdir(), tempdir());
    // Sparse, and larger than the socket buffers hold: the server gives up while put is
    // still sending.
    let local = here.path().join("big.bin");
    fs::File::create(&local).unwrap().set_len(64 << 20).unwrap();
    for proto in ["tcp", "udp"] {
        let server = limited_upload_server(root.path(), &["--proto", proto]);
        let put = ["put", "--proto", proto, &server.addr, s(&local)];
        let line = fails(&netecho(&put, b""), 1);
        assert!(line.contains("File too large"), "{proto}: {line}");
        assert!(!line.contains("reset"), "{proto}: {line}");
        server.wait_log("File too large");
    }
}

#[test]
fn a_file_that_shrinks_during_a_download_is_no_success() {
    let root = tempdir();
    let path = root.path().join("big.bin");
    let size = 64u64 << 20;
    // Sparse: larger than the socket buffers hold, taking no room.
    fs::File::create(&path).unwrap().set_len(size).unwrap();
    let server = file_server(root.path(), &[]);
    let mut conn = TcpStream::connect(&server.addr).unwrap();
    conn.set_read_timeout(Some(common::STEP)).unwrap();
    conn.write_all(&frame(b"BLAKE3 GET big.bin")).unwrap();
    assert_eq!(
        read_frame(&mut conn),
        Some(format!("OK {size}").into_bytes())
    );
    // A slow reader: one frame, then the file is cut while the server waits for room in
    // the socket's buffers.
    read_frame(&mut conn).unwrap();
    fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(100_000)
        .unwrap();
    let (mut got, mut end_mark) = (0u64, false);
    while let Some(payload) = read_frame(&mut conn) {
        end_mark |= payload.is_empty();
        got += payload.len() as u64;
    }
    assert!(!end_mark, "an end mark after {got} of {size} bytes");
    assert!(got < size);
    let log = server.wait_log("shrank");
    assert!(!log.contains("sent 'big.bin'"), "{log}");
}

/// Over udp the server's sender tells the client why it stopped (an ERROR), so `get` says
/// the file shrank on the server rather than blaming the network for a peer that went away.
#[test]
fn a_file_that_shrinks_during_a_udp_download_is_told_to_get() {
    let (root, here) = (tempdir(), tempdir());
    let path = root.path().join("big.bin");
    fs::File::create(&path).unwrap().set_len(64 << 20).unwrap();
    let server = file_server(root.path(), &["--proto", "udp"]);
    let out = here.path().join("big.bin");
    let get = Command::new(common::bin())
        .args([
            "get",
            "--proto",
            "udp",
            &server.addr,
            "big.bin",
            "-o",
            s(&out),
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Data has come (the server holds the file open at its 64 MiB), and stop-and-wait keeps
    // the server a block ahead of the client: held, it reads nothing more until let go.
    common::eventually("data in the download's temporary file", || {
        let part = common::listing(here.path())
            .into_iter()
            .find(|n| n.ends_with(".part"))?;
        let len = fs::metadata(here.path().join(part)).ok()?.len();
        (len > 0).then_some(())
    });
    common::hold(get.id());
    fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(1000)
        .unwrap();
    common::signal(get.id(), "CONT");
    let done = common::output_within(get, "get of a shrinking file", common::STEP);
    let line = fails(&done, 1);
    common::assert_mentions(
        &line,
        &["the file shrank during the transfer", "came short"],
    );
    assert!(!line.contains("ICMP"), "{line}");
    assert!(
        common::listing(here.path()).is_empty(),
        "{:?}",
        common::listing(here.path())
    );
    server.wait_log("shrank");
}

/// A file that grows while put sends it is copied up to the size put announced (what the
/// hash covers), and put says so in a WARN rather than reporting a clean copy of the file.
#[test]
fn a_file_that_grows_during_a_put_is_said_to_have_grown() {
    let (root, here) = (tempdir(), tempdir());
    let local = here.path().join("log.txt");
    fs::write(&local, vec![b'a'; 100_000]).unwrap();
    let mut server = file_server(root.path(), &["--upload"]);
    // Held, the server takes no request: put has announced the size it read at its start
    // once it holds the file and its connection.
    common::hold(server.pid());
    let put = Command::new(common::bin())
        .args(["put", &server.addr, s(&local)])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    common::eventually("put holding its file and a socket", || {
        let fds = fs::read_dir(format!("/proc/{}/fd", put.id())).ok()?;
        let links: Vec<_> = fds
            .flatten()
            .filter_map(|fd| fs::read_link(fd.path()).ok())
            .collect();
        let socket = links
            .iter()
            .any(|l| l.to_string_lossy().starts_with("socket:"));
        (socket && links.contains(&local)).then_some(())
    });
    fs::OpenOptions::new()
        .append(true)
        .open(&local)
        .unwrap()
        .write_all(&[b'b'; 50_000])
        .unwrap();
    common::signal(server.pid(), "CONT");
    let out = common::output_within(put, "put of a growing file", common::STEP);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("WARN"), "{stderr}");
    common::assert_mentions(
        &stderr,
        &["grew during the transfer, to 150000 bytes", "100000"],
    );
    assert_eq!(
        fs::read(root.path().join("log.txt")).unwrap(),
        vec![b'a'; 100_000]
    );
    assert!(server.alive());
}

#[test]
fn temporary_names_taken_by_someone_else_are_skipped() {
    let (root, here) = (tempdir(), tempdir());
    fs::write(root.path().join("a.txt"), b"hello").unwrap();
    let server = file_server(root.path(), &["--upload"]);
    // The names the server's next upload and the client's download would take (the
    // shell's pid is the client's: it execs netecho).
    for n in 0..5 {
        fs::write(
            root.path()
                .join(format!(".up.netecho-{}-{n}.part", server.pid())),
            b"",
        )
        .unwrap();
    }
    let local = here.path().join("up");
    fs::write(&local, b"data").unwrap();
    ok(&netecho(&["put", &server.addr, s(&local)], b""));
    assert_eq!(fs::read(root.path().join("up")).unwrap(), b"data");
    let out = here.path().join("x");
    let script = "for n in 0 1 2 3 4; do : > \"$1/.x.netecho-$$-$n.part\"; done; \
                  exec \"$2\" get \"$3\" a.txt -o \"$1/x\"";
    let get = Command::new("sh")
        .args([
            "-c",
            script,
            "sh",
            s(here.path()),
            common::bin(),
            &server.addr,
        ])
        .output()
        .unwrap();
    assert!(
        get.status.success(),
        "{}",
        String::from_utf8_lossy(&get.stderr)
    );
    assert_eq!(fs::read(&out).unwrap(), b"hello");
}

#[test]
fn a_missing_output_directory_and_a_file_named_as_a_directory_get_advice() {
    let root = tempdir();
    fs::write(root.path().join("a.txt"), b"hello").unwrap();
    let server = file_server(root.path(), &[]);
    let line = fails(
        &netecho(
            &["get", &server.addr, "a.txt", "-o", "/nonexistent/dir/x"],
            b"",
        ),
        1,
    );
    assert!(
        line.contains(
            "-o /nonexistent/dir/x: directory /nonexistent/dir does not exist; create it"
        ),
        "{line}"
    );
    let mut conn = TcpStream::connect(&server.addr).unwrap();
    conn.set_read_timeout(Some(common::STEP)).unwrap();
    conn.write_all(&frame(b"BLAKE3 GET a.txt/")).unwrap();
    let reply = String::from_utf8(read_frame(&mut conn).unwrap()).unwrap();
    assert!(reply.contains("name the file without it"), "{reply}");
    assert!(!reply.contains("os error"), "{reply}");
}

#[test]
fn upload_names_with_control_characters_are_refused() {
    let (root, here) = (tempdir(), tempdir());
    let server = file_server(root.path(), &["--upload"]);
    let local = here.path().join("a.txt");
    fs::write(&local, b"data").unwrap();
    let names = [
        "evil\nINFO forged line",
        "esc\x1b[31mred",
        "del\x7f",
        "txt.\u{202E}exe",
        "a\u{200B}b",
    ];
    for name in names {
        let line = fails(&netecho(&["put", &server.addr, s(&local), name], b""), 1);
        assert!(line.contains("control characters"), "{line}");
        assert!(!line.contains('\n') && !line.contains('\x1b'), "{line}");
        assert!(
            !line.contains('\u{202E}') && !line.contains('\u{200B}'),
            "{line}"
        );
    }
    assert_eq!(
        fs::read_dir(root.path()).unwrap().count(),
        0,
        "nothing stored"
    );
}
