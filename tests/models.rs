//! Server models (issue 3): every model over every protocol, many clients at once, and a
//! server that holds a classroom: throttling, idle timeout, max-conns, resets, SIGTERM under
//! load, the UDP loop guard and rate limit, recvmmsg batches.

mod common;

use std::io::{ErrorKind, Write};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use common::{
    Plain, STEP, Server, abstract_name, eventually, message, netecho, ok, rss_kib, signal, summary,
    tempdir,
};

const MODELS: [&str; 5] = ["iterative", "threads", "event", "fork", "uring"];

/// A server of `model` for `proto` at a fresh address (`dir` holds Unix paths).
fn start(model: &str, proto: &str, dir: &tempfile::TempDir, extra: &[&str]) -> Server {
    // The tests of this file run at once and several serve the same model over seqpacket:
    // each server gets a name of its own.
    static NAMES: AtomicU64 = AtomicU64::new(0);
    let addr = match proto {
        "tcp" | "udp" => "127.0.0.1:0".to_string(),
        "unix-seqpacket" => {
            let n = NAMES.fetch_add(1, Ordering::Relaxed);
            abstract_name(&format!("{model}-{n}"))
        }
        _ => dir
            .path()
            .join(format!("{model}-{proto}.sock"))
            .display()
            .to_string(),
    };
    let mut args = vec!["--model", model, "--proto", proto, "--addr", &addr];
    args.extend_from_slice(extra);
    Server::start(&args)
}

#[test]
fn every_model_echoes_over_every_protocol_and_counts_every_byte() {
    let dir = tempdir();
    for model in MODELS {
        for proto in ["tcp", "udp", "unix", "unix-dgram", "unix-seqpacket"] {
            let server = start(model, proto, &dir, &[]);
            server.wait_log(&format!("model {model}"));
            let mut bytes = 0;
            // Two clients one after the other (iterative serves one at a time), three messages
            // each, every byte value among them.
            for client in 0..2 {
                let raw = Plain::connect(proto, &server.addr);
                for round in 0..3 {
                    let msg = message(client, round, 300 + round * 100);
                    raw.exchange(&msg);
                    bytes += msg.len() as u64;
                }
            }
            let out = netecho(&["send", &server.url(), "hello", "model"], b"");
            assert_eq!(ok(&out), "HELLO MODEL\n", "{model} {proto}");
            bytes += "hello model".len() as u64;
            let (status, stdout, log) = server.stop("TERM");
            assert!(status.success(), "{model} {proto}: {status:?}\n{log}");
            let (sig, clients, _, bytes_in, bytes_out) = summary(&stdout);
            assert_eq!(sig, "SIGTERM");
            assert_eq!(clients, 3, "{model} {proto}: {stdout}");
            assert_eq!(
                (bytes_in, bytes_out),
                (bytes, bytes),
                "{model} {proto}: {stdout}"
            );
        }
    }
}

/// `clients` clients connect, wait for each other, then each exchanges `rounds` messages and
/// checks every reply byte for byte.
fn crowd(proto: &str, addr: &str, clients: usize, rounds: usize) {
    let barrier = Arc::new(Barrier::new(clients));
    let handles: Vec<_> = (0..clients)
        .map(|id| {
            let (proto, addr, barrier) = (proto.to_string(), addr.to_string(), barrier.clone());
            thread::Builder::new()
                .stack_size(128 * 1024)
                .spawn(move || {
                    let raw = Plain::connect(&proto, &addr);
                    barrier.wait();
                    let mut sent_again = Vec::new();
                    for round in 0..rounds {
                        let msg = message(id, round, 200 + (id * 31 + round) % 900);
                        if raw.is_message() {
                            datagram_exchange(&raw, &msg, &mut sent_again);
                        } else {
                            raw.exchange(&msg);
                        }
                    }
                })
                .unwrap()
        })
        .collect();
    let failed = handles
        .into_iter()
        .map(|h| h.join())
        .filter(Result::is_err)
        .count();
    assert_eq!(failed, 0, "{failed} of {clients} {proto} clients failed");
}

/// One datagram exchange that tolerates loss (sent again up to 4 times) but no wrong reply:
/// anything that arrives is the upper-cased message, byte for byte, or the answer to a copy
/// sent again in an earlier round whose first answer came late (a loaded machine): each
/// copy in `sent_again` may be answered once more, and is skipped then.
fn datagram_exchange(raw: &Plain, msg: &[u8], sent_again: &mut Vec<Vec<u8>>) {
    raw.sock
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let want = msg.to_ascii_uppercase();
    for attempt in 0..5 {
        if attempt > 0 {
            sent_again.push(want.clone());
        }
        raw.send(msg);
        loop {
            match raw.try_reply(msg.len()) {
                Ok(got) if got == want => return,
                Ok(got) => {
                    let copy = sent_again.iter().position(|c| *c == got);
                    let copy = copy.unwrap_or_else(|| {
                        panic!("{}: a reply differs from its message", raw.proto)
                    });
                    sent_again.swap_remove(copy);
                }
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    break;
                }
                Err(e) => panic!("{}: {e}", raw.proto),
            }
        }
    }
    panic!("{}: no reply after 5 tries", raw.proto);
}

#[test]
fn two_hundred_clients_at_once_each_get_their_own_bytes_back() {
    let dir = tempdir();
    for model in MODELS {
        let server = start(model, "tcp", &dir, &[]);
        crowd("tcp", &server.addr, 200, 5);
        server.wait_log_count("closed by peer", 200);
    }
    for (model, proto) in [
        ("event", "unix"),
        ("threads", "unix-seqpacket"),
        ("event", "udp"),
        ("threads", "udp"),
        ("event", "unix-dgram"),
        ("fork", "unix-dgram"),
        ("uring", "unix"),
        ("uring", "unix-seqpacket"),
        ("uring", "udp"),
        ("uring", "unix-dgram"),
    ] {
        let server = start(model, proto, &dir, &[]);
        crowd(proto, &server.addr, 200, 3);
    }
}

#[test]
fn the_event_model_runs_the_threads_asked_for() {
    let dir = tempdir();
    for threads in ["1", "3"] {
        let server = start("event", "tcp", &dir, &["--threads", threads]);
        server.wait_log(&format!("model event: {threads} thread(s)"));
        let event_threads = || {
            std::fs::read_dir(format!("/proc/{}/task", server.pid()))
                .unwrap()
                .filter_map(Result::ok)
                .filter(|t| {
                    std::fs::read_to_string(t.path().join("comm"))
                        .is_ok_and(|c| c.starts_with("event-"))
                })
                .count()
        };
        // The log line comes before the threads start.
        eventually(&format!("{threads} event-loop threads"), || {
            (event_threads().to_string() == threads).then_some(())
        });
        crowd("tcp", &server.addr, 50, 3);
    }
}

#[test]
fn the_file_descriptor_limit_is_raised_and_a_limit_too_low_is_named() {
    if Command::new("prlimit").arg("--version").output().is_err() {
        common::skip(
            "the_file_descriptor_limit_is_raised_and_a_limit_too_low_is_named",
            "prlimit (util-linux)",
            common::Lacks::Provided,
        );
        return;
    }
    // A soft limit below the hard one is raised to it.
    let server = Server::start_with(Command::new("prlimit").args([
        "--nofile=256:4096",
        "--",
        common::bin(),
        "serve",
        "--addr",
        "127.0.0.1:0",
    ]));
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", server.pid())).unwrap();
    let open_files = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    assert_eq!(
        open_files.split_whitespace().collect::<Vec<_>>()[3..5],
        ["4096", "4096"],
        "{open_files}"
    );
    drop(server);
    // A hard limit too low for --max-conns is named in one line, with the number needed.
    let server = Server::start_with(Command::new("prlimit").args([
        "--nofile=256:256",
        "--",
        common::bin(),
        "serve",
        "--max-conns",
        "1000",
        "--addr",
        "127.0.0.1:0",
    ]));
    // Needed: the connections and what the server holds besides them (its descriptors open
    // at start, a few per loop), and the connections that fit in the limit once those are
    // counted.
    let log = server.wait_log("--max-conns 1000 needs ");
    let number_after = |words: &str| -> u64 {
        let at = log.find(words).expect(words) + words.len();
        let digits: String = log[at..].chars().take_while(char::is_ascii_digit).collect();
        digits.parse().expect("a number")
    };
    let needed = number_after("--max-conns 1000 needs ");
    let spare = needed - 1000;
    assert!((8..64).contains(&spare), "{log}");
    assert!(
        log.contains(&format!("{needed} file descriptors, but the limit is 256")),
        "{log}"
    );
    assert_eq!(
        number_after("connections past about "),
        256 - spare,
        "{log}"
    );
    Plain::connect("tcp", &server.addr).exchange(b"served anyway");
}

/// The child processes of `pid`.
fn children(pid: u32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|c| c.parse().ok())
        .collect()
}

/// Whether a process is gone (or only a zombie left for its new parent to reap).
fn gone(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|stat| {
            stat.rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .starts_with('Z')
        })
        .unwrap_or(true)
}

#[test]
fn fork_children_end_with_their_parent_even_when_it_is_killed() {
    let dir = tempdir();
    // A datagram child would otherwise serve the port forever; a connection child its client.
    for proto in ["udp", "tcp"] {
        let server = start("fork", proto, &dir, &[]);
        let raw = Plain::connect(proto, &server.addr);
        raw.exchange(b"served by a child");
        let kids = eventually("a child process", || {
            let kids = children(server.pid());
            (!kids.is_empty()).then_some(kids)
        });
        signal(server.pid(), "KILL");
        for kid in kids {
            eventually(&format!("{proto}: child {kid} ends"), || {
                gone(kid).then_some(())
            });
        }
        if proto == "udp" {
            // Nobody holds the port any more.
            eventually("the port free again", || {
                std::net::UdpSocket::bind(&server.addr).ok()
            });
        } else {
            let mut buf = [0u8; 8];
            let n = std::io::Read::read(&mut &raw.sock, &mut buf);
            assert!(
                matches!(n, Ok(0))
                    || matches!(&n, Err(e) if e.kind() == ErrorKind::ConnectionReset),
                "{n:?}"
            );
        }
    }
}

#[test]
fn iterative_serves_one_client_at_a_time() {
    let dir = tempdir();
    let server = start("iterative", "tcp", &dir, &[]);
    let first = Plain::connect("tcp", &server.addr);
    first.exchange(b"first");
    // The second connects (the kernel queues it in the backlog) but waits for an answer.
    let second = Plain::connect("tcp", &server.addr);
    second.send(b"second");
    second
        .sock
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let waited = second.try_reply(6);
    assert!(
        matches!(&waited, Err(e) if e.kind() == ErrorKind::WouldBlock),
        "the second client was answered while the first held the server: {waited:?}"
    );
    first.exchange(b"still mine");
    // netecho's own client, waiting its turn past --timeout, is told that may be why.
    let out = common::netecho(&["send", "--timeout", "1s", &server.addr, "third"], b"");
    let line = common::fails(&out, 1);
    assert!(line.contains("busy with another client"), "{line}");
    assert!(line.contains("--model iterative"), "{line}");
    drop(first);
    second.sock.set_read_timeout(Some(STEP)).unwrap();
    assert_eq!(second.reply(6), b"SECOND");
}

#[test]
fn a_client_that_never_reads_is_throttled_and_others_are_still_served() {
    let dir = tempdir();
    thread::scope(|scope| {
        for (model, proto) in [
            ("event", "tcp"),
            ("threads", "tcp"),
            ("fork", "tcp"),
            ("event", "unix"),
            ("uring", "tcp"),
            ("uring", "unix"),
        ] {
            let dir = &dir;
            scope.spawn(move || never_reading_case(model, proto, dir));
        }
    });
}

fn never_reading_case(model: &str, proto: &str, dir: &tempfile::TempDir) {
    let server = start(model, proto, dir, &[]);
    let before = rss_kib(server.pid());
    let hog = Plain::connect(proto, &server.addr);
    hog.sock
        .set_write_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    // Write until the writes stall (the server stopped reading), at most 256 MiB.
    let chunk = vec![b'x'; 64 * 1024];
    let mut sent = 0usize;
    let mut stalls = 0;
    let deadline = Instant::now() + Duration::from_secs(30);
    while sent < 256 << 20 && stalls < 3 && Instant::now() < deadline {
        match std::io::Write::write(&mut &hog.sock, &chunk) {
            Ok(n) => sent += n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                stalls += 1
            }
            Err(e) => panic!("{model} {proto}: the never-reading client's write failed: {e}"),
        }
    }
    assert!(
        stalls >= 3,
        "{model} {proto}: {sent} bytes sent and the server still reads from a client that never reads"
    );
    let rss = rss_kib(server.pid());
    assert!(
        rss < before + 64 * 1024,
        "{model} {proto}: resident memory grew from {before} KiB to {rss} KiB after {sent} bytes"
    );
    // Another client is served while the first still holds its connection.
    let other = Plain::connect(proto, &server.addr);
    other.exchange(&message(1, 0, 4000));
    assert!(rss_kib(server.pid()) < before + 64 * 1024);
    // A stop signal ends it all promptly, the stalled client included.
    let (status, stdout, log) = server.stop("TERM");
    assert!(status.success(), "{model} {proto}: {status:?}\n{log}");
    assert_eq!(summary(&stdout).1, 2, "{model} {proto}: {stdout}");
    drop(hog);
}

#[test]
fn an_idle_connection_is_closed_after_the_idle_timeout_and_a_talking_one_is_not() {
    let dir = tempdir();
    // The cases wait on clocks, not on the CPU: run side by side.
    let cases = [
        ("iterative", "tcp"),
        ("threads", "tcp"),
        ("event", "tcp"),
        ("fork", "tcp"),
        ("event", "unix"),
        ("threads", "unix-seqpacket"),
        ("uring", "tcp"),
        ("uring", "unix-seqpacket"),
    ];
    thread::scope(|scope| {
        for (model, proto) in cases {
            let dir = &dir;
            scope.spawn(move || idle_case(model, proto, dir));
        }
    });
}

/// The bytes queued unread on the server's side of a loopback tcp connection, (server
/// port, client port), as /proc/net/tcp shows them (its rx_queue column, hex).
fn received_unread((server, client): (u16, u16)) -> u64 {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
    table
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .filter(|c| c.len() > 4)
        .filter(|c| c[1].ends_with(&format!(":{server:04X}")))
        .filter(|c| c[2].ends_with(&format!(":{client:04X}")))
        .find_map(|c| u64::from_str_radix(c[4].split(':').nth(1)?, 16).ok())
        .unwrap_or(0)
}

/// A server held (SIGSTOP) past a client's idle timeout, the client's bytes sent meanwhile:
/// on waking the server finds the bytes before it looks for idle clients, so it answers.
#[test]
fn bytes_that_came_while_the_server_stalled_count_before_the_idle_timeout() {
    let dir = tempdir();
    for model in ["threads", "event", "uring"] {
        let server = start(model, "tcp", &dir, &["--idle-timeout", "1s"]);
        let client = Plain::connect("tcp", &server.addr);
        client.exchange(b"first");
        common::signal(server.pid(), "STOP");
        thread::sleep(Duration::from_millis(1500));
        client.send(b"second");
        // Loopback delivers in a softirq, which a loaded machine may run after the CONT: the
        // bytes must be in the server's queue before it wakes, or they came late, not early.
        let ports = (
            server.port(),
            client
                .sock
                .local_addr()
                .unwrap()
                .as_socket()
                .unwrap()
                .port(),
        );
        common::eventually("the bytes in the stopped server's receive queue", || {
            (received_unread(ports) >= 6).then_some(())
        });
        common::signal(server.pid(), "CONT");
        let reply = client.try_reply(6);
        assert!(
            matches!(&reply, Ok(r) if r == b"SECOND"),
            "{model}: {reply:?}; log:\n{}",
            server.stderr()
        );
    }
}

fn idle_case(model: &str, proto: &str, dir: &tempfile::TempDir) {
    // 2 s: a talker held up for a second on a loaded machine is still within it.
    let server = start(model, proto, dir, &["--idle-timeout", "2s"]);
    // A client that talks every 100 ms for 2.5 s outlives the 2 s timeout.
    let talker = Plain::connect(proto, &server.addr);
    let started = Instant::now();
    let mut round = 0;
    while started.elapsed() < Duration::from_millis(2500) {
        talker.exchange(&message(0, round, 50));
        round += 1;
        thread::sleep(Duration::from_millis(100));
    }
    drop(talker);
    // A silent one is closed: its read returns end of stream. The clock is taken before
    // the connect, so the server's (from its accept) cannot start before it.
    let started = Instant::now();
    let idle = Plain::connect(proto, &server.addr);
    let mut buf = [0u8; 16];
    let n = std::io::Read::read(&mut &idle.sock, &mut buf)
        .unwrap_or_else(|e| panic!("{model} {proto}: an idle client read {e}"));
    assert_eq!(n, 0, "{model} {proto}: not closed");
    assert!(
        started.elapsed() >= Duration::from_millis(1900),
        "{model} {proto}: closed after {:?}, before the timeout",
        started.elapsed()
    );
    server.wait_log("closed: idle timeout");
    assert_eq!(
        server.stderr().matches("closed: idle timeout").count(),
        1,
        "{model} {proto}: only the idle client timed out:\n{}",
        server.stderr()
    );
}

#[test]
fn connections_past_max_conns_are_refused_with_a_log_line_and_closed() {
    let dir = tempdir();
    for (model, proto) in [
        ("threads", "tcp"),
        ("event", "tcp"),
        ("fork", "tcp"),
        ("event", "unix"),
        ("uring", "tcp"),
        ("uring", "unix"),
    ] {
        let server = start(model, proto, &dir, &["--max-conns", "2"]);
        let held: Vec<Plain> = (0..2)
            .map(|i| {
                let raw = Plain::connect(proto, &server.addr);
                raw.exchange(&message(i, 0, 20));
                raw
            })
            .collect();
        // The third is accepted by the kernel, then refused and closed at once by the server.
        let extra = Plain::connect(proto, &server.addr);
        let _ = std::io::Write::write(&mut &extra.sock, b"let me in");
        let mut buf = [0u8; 16];
        match std::io::Read::read(&mut &extra.sock, &mut buf) {
            Ok(0) => {}
            Err(e) if e.kind() == ErrorKind::ConnectionReset => {}
            other => panic!("{model} {proto}: the extra connection got {other:?}"),
        }
        server.wait_log("refused, 2 connections already (--max-conns)");
        // The held ones are still served; when one leaves, its slot is free again.
        held[1].exchange(b"still here");
        drop(held);
        eventually(&format!("{model} {proto}: a freed slot"), || {
            let raw = Plain::connect(proto, &server.addr);
            raw.sock
                .set_read_timeout(Some(Duration::from_secs(2)))
                .unwrap();
            raw.send(b"again");
            match raw.try_reply(5) {
                Ok(got) if got == b"AGAIN" => Some(()),
                _ => None,
            }
        });
    }
}

/// A client that connects, sends and resets while the server is held (SIGSTOP) is gone
/// before the server takes it: each model says so in a line, and serves the next client.
#[test]
fn a_client_reset_before_it_was_served_is_said_and_the_next_is_served() {
    let dir = tempdir();
    for model in ["threads", "event", "uring"] {
        let server = start(model, "tcp", &dir, &[]);
        common::signal(server.pid(), "STOP");
        let raw = Plain::connect("tcp", &server.addr);
        raw.send(b"gone before it was read");
        let port = raw.local_port();
        raw.reset();
        common::signal(server.pid(), "CONT");
        // threads and event still know the address accept gave them; uring's multishot
        // accept gives none, and the kernel forgets it at the reset (unless the ring's
        // accept ran before the reset, in the kernel's own worker).
        let known = format!("tcp 127.0.0.1:{port}: ");
        let gone = "a client reset its connection before it was served";
        common::eventually(&format!("{model}: a line for the reset client"), || {
            let log = server.stderr();
            (log.contains(&known) || (model == "uring" && log.contains(gone))).then_some(())
        });
        Plain::connect("tcp", &server.addr).exchange(b"the next one");
    }
}

#[test]
fn a_client_reset_in_the_middle_of_a_message_leaves_the_others_untouched() {
    let dir = tempdir();
    for model in ["threads", "event", "fork", "uring"] {
        let server = start(model, "tcp", &dir, &[]);
        let stop = Arc::new(AtomicBool::new(false));
        let others: Vec<_> = (0..8)
            .map(|id| {
                let (addr, stop) = (server.addr.clone(), stop.clone());
                thread::spawn(move || {
                    let raw = Plain::connect("tcp", &addr);
                    let mut round = 0;
                    while !stop.load(Ordering::Relaxed) && round < 10_000 {
                        raw.exchange(&message(id, round, 3000));
                        round += 1;
                    }
                    round
                })
            })
            .collect();
        let mut resetters = Vec::new();
        for _ in 0..5 {
            // Half of a 6000-byte message, then RST, once the server is serving it (the
            // echo's first byte back): a reset before then leaves no address to log.
            let raw = Plain::connect("tcp", &server.addr);
            raw.send(&message(99, 0, 6000)[..3000]);
            resetters.push(raw.local_port());
            raw.reply(1);
            raw.reset();
        }
        // The others keep going until the server has dealt with every reset.
        for port in &resetters {
            server.wait_log(&format!("tcp 127.0.0.1:{port}: "));
        }
        stop.store(true, Ordering::Relaxed);
        for other in others {
            let rounds = other.join().expect("a client beside the resets failed");
            assert!(rounds > 0);
        }
        for port in resetters {
            let log = server.wait_log(&format!("tcp 127.0.0.1:{port}: "));
            let line = log
                .lines()
                .find(|l| l.contains(&format!("tcp 127.0.0.1:{port}: ")))
                .unwrap();
            assert!(
                line.contains("reset by peer") || line.contains("peer went away"),
                "{model}: {line}"
            );
        }
        Plain::connect("tcp", &server.addr).exchange(b"after the resets");
    }
    // Iterative: the reset client leaves, the next one is served.
    let server = start("iterative", "tcp", &dir, &[]);
    let raw = Plain::connect("tcp", &server.addr);
    raw.send(&message(1, 0, 6000)[..3000]);
    thread::sleep(Duration::from_millis(20));
    raw.reset();
    Plain::connect("tcp", &server.addr).exchange(b"next");
}

#[test]
fn sigterm_during_load_ends_cleanly_with_the_summary_line() {
    let dir = tempdir();
    for (model, proto) in [
        ("iterative", "tcp"),
        ("threads", "tcp"),
        ("event", "tcp"),
        ("fork", "tcp"),
        ("event", "unix"),
        ("event", "udp"),
        ("fork", "udp"),
        ("threads", "unix-dgram"),
        ("uring", "tcp"),
        ("uring", "udp"),
        ("uring", "unix-seqpacket"),
    ] {
        let server = start(model, proto, &dir, &[]);
        let clients = 20;
        let load = Arc::new(Load::default());
        let threads: Vec<_> = (0..clients)
            .map(|id| {
                let (addr, proto, load) = (server.addr.clone(), proto.to_string(), load.clone());
                thread::spawn(move || load_client(id, &addr, &proto, &load))
            })
            .collect();
        // Every client served at least once (only the first, for iterative), then SIGTERM.
        let want = if model == "iterative" { 1 } else { clients };
        eventually(&format!("{model} {proto}: every client busy"), || {
            (load.busy.load(Ordering::Relaxed) >= want as u64).then_some(())
        });
        // Under load: twenty more messages answered since, then the signal.
        let before = load.confirmed.load(Ordering::Relaxed);
        eventually(&format!("{model} {proto}: load going on"), || {
            (load.confirmed.load(Ordering::Relaxed) >= before + 20 * 500).then_some(())
        });
        let (status, stdout, log) = server.stop("TERM");
        load.stopped.store(true, Ordering::Relaxed);
        for client in threads {
            client.join().expect("a load client failed");
        }
        assert!(status.success(), "{model} {proto}: {status:?}\n{log}");
        assert!(!log.contains("panicked"), "{log}");
        let what = format!("{model} {proto}");
        // Iterative serves one client at a time: the first, at least.
        let served = (model != "iterative").then_some(clients);
        summary_counts_the_load(&stdout, &what, served, &load);
    }
}

/// What the load clients of [`sigterm_during_load_ends_cleanly_with_the_summary_line`]
/// tell the test: the bytes that came back, the clients answered once at least, and
/// whether the server was stopped.
#[derive(Default)]
struct Load {
    confirmed: AtomicU64,
    busy: AtomicU64,
    stopped: AtomicBool,
}

/// One client of 500-byte messages, each reply checked, until the server ends.
fn load_client(id: usize, addr: &str, proto: &str, load: &Load) {
    let raw = Plain::connect(proto, addr);
    // A stream ends with the server; a datagram client waits in short steps until the test
    // says the server is gone.
    let wait = match raw.is_message() {
        true => Duration::from_millis(200),
        false => STEP,
    };
    raw.sock.set_read_timeout(Some(wait)).unwrap();
    for round in 0..100_000 {
        let msg = message(id, round, 500);
        if std::io::Write::write(&mut &raw.sock, &msg).is_err() {
            return;
        }
        let got = loop {
            match raw.try_reply(msg.len()) {
                Ok(got) => break got,
                Err(e)
                    if raw.is_message()
                        && !load.stopped.load(Ordering::Relaxed)
                        && matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(_) => return,
            }
        };
        if got.is_empty() {
            return;
        }
        assert!(got == msg.to_ascii_uppercase(), "a reply differs");
        if round == 0 {
            load.busy.fetch_add(1, Ordering::Relaxed);
        }
        load.confirmed
            .fetch_add(msg.len() as u64, Ordering::Relaxed);
    }
}

/// The summary line on `stdout` says SIGTERM, `served` clients (one at least when none
/// is given) and every byte the load got back.
fn summary_counts_the_load(stdout: &str, what: &str, served: Option<usize>, load: &Load) {
    let (sig, clients, messages, bytes_in, bytes_out) = summary(stdout);
    assert_eq!(sig, "SIGTERM");
    match served {
        Some(served) => assert_eq!(clients, served as u64, "{what}: {stdout}"),
        None => assert!(clients >= 1, "{stdout}"),
    }
    let confirmed = load.confirmed.load(Ordering::Relaxed);
    assert!(messages > 0, "{stdout}");
    assert!(
        bytes_in >= confirmed && bytes_out >= confirmed,
        "{what}: the clients got {confirmed} bytes back, the summary says {stdout}"
    );
}

/// UDP sockets on the small-service ports (7, 9, 13, 19, 37) free on some 127.0.0.x; none
/// without the privilege to bind a port below 1024.
fn small_service_sockets() -> Vec<std::net::UdpSocket> {
    for ip in ["127.0.0.1", "127.0.0.2", "127.0.0.3"] {
        let mut socks = Vec::new();
        for port in [7, 9, 13, 19, 37] {
            match std::net::UdpSocket::bind((ip, port)) {
                Ok(sock) => socks.push(sock),
                Err(e) if e.kind() == ErrorKind::PermissionDenied => return Vec::new(),
                Err(_) => {}
            }
        }
        if !socks.is_empty() {
            return socks;
        }
    }
    Vec::new()
}

/// The datagrams the server's log says it dropped for `why`, over every report.
fn dropped(log: &str, why: &str) -> u64 {
    log.lines()
        .filter(|l| l.contains(why))
        .filter_map(|l| {
            l.split("dropped ")
                .nth(1)?
                .split(' ')
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum()
}

#[test]
fn the_udp_loop_guard_drops_small_service_ports_unless_allowed() {
    if small_service_sockets().is_empty() {
        let root = nix::unistd::Uid::effective().is_root();
        common::skip(
            "the_udp_loop_guard_drops_small_service_ports_unless_allowed",
            if root {
                "a free small-service udp port (7, 9, 13, 19, 37) on 127.0.0.1-3; all in use"
            } else {
                "root to bind udp ports below 1024"
            },
            if root {
                common::Lacks::Environment
            } else {
                common::Lacks::Provided
            },
        );
        return;
    }
    let dir = tempdir();
    for model in MODELS {
        for allow in [false, true] {
            let extra: &[&str] = if allow { &["--allow-loop-ports"] } else { &[] };
            let server = start(model, "udp", &dir, extra);
            let services = small_service_sockets();
            for sock in &services {
                sock.set_read_timeout(Some(STEP)).unwrap();
                sock.connect(&server.addr).unwrap();
                sock.send(b"ping from a small service").unwrap();
            }
            // The server answers in order: once a later client has its reply, a reply to a
            // small-service port would already be there.
            Plain::connect("udp", &server.addr).exchange(b"an ordinary port");
            for sock in &services {
                let port = sock.local_addr().unwrap();
                let mut buf = [0u8; 64];
                if allow {
                    let n = sock
                        .recv(&mut buf)
                        .expect("a reply with --allow-loop-ports");
                    assert_eq!(&buf[..n], b"PING FROM A SMALL SERVICE", "{model} {port}");
                } else {
                    sock.set_nonblocking(true).unwrap();
                    let got = sock.recv(&mut buf);
                    assert!(
                        matches!(&got, Err(e) if e.kind() == ErrorKind::WouldBlock),
                        "{model}: {port} was answered: {got:?}"
                    );
                }
            }
            let why = "from source port 0 or a small-service port (7, 9, 13, 19, 37)";
            if allow {
                assert_eq!(dropped(&server.stderr(), why), 0, "{model}");
            } else {
                let want = services.len() as u64;
                eventually(&format!("{model}: {want} drops logged"), || {
                    (dropped(&server.stderr(), why) == want).then_some(())
                });
            }
        }
    }
}

/// The first small-service udp port (7, 9, 13, 19, 37) free on ::1, or why there is none.
fn small_service_socket_v6() -> Result<std::net::UdpSocket, &'static str> {
    let mut why = "a free small-service udp port (7, 9, 13, 19, 37) on ::1; all in use";
    for port in [7, 9, 13, 19, 37] {
        match std::net::UdpSocket::bind(("::1", port)) {
            Ok(sock) => return Ok(sock),
            Err(e) if e.kind() == ErrorKind::PermissionDenied => {
                return Err("root to bind udp ports below 1024");
            }
            Err(e) if e.kind() == ErrorKind::AddrNotAvailable => why = "::1 on the loopback",
            Err(_) => {}
        }
    }
    Err(why)
}

/// The loop guard holds over IPv6 as well: a datagram from a small-service port of ::1 gets
/// no reply and is counted as dropped under every model, while an ordinary port is answered.
#[test]
fn the_udp_loop_guard_drops_small_service_ports_over_ipv6() {
    let test = "the_udp_loop_guard_drops_small_service_ports_over_ipv6";
    let service = match small_service_socket_v6() {
        Ok(sock) => sock,
        Err(needs) => {
            let lacks = if nix::unistd::Uid::effective().is_root() {
                common::Lacks::Environment
            } else {
                common::Lacks::Provided
            };
            common::skip(test, needs, lacks);
            return;
        }
    };
    let port = service.local_addr().unwrap();
    let why = "from source port 0 or a small-service port (7, 9, 13, 19, 37)";
    for model in MODELS {
        let server = Server::start(&["--model", model, "--proto", "udp", "--addr", "[::1]:0"]);
        service.connect(&server.addr).unwrap();
        service.send(b"ping from a small service").unwrap();
        // Replies go out in order: once an ordinary port has its reply, one to the
        // small-service port would already be there.
        Plain::connect("udp", &server.addr).exchange(b"an ordinary port");
        service.set_nonblocking(true).unwrap();
        let mut buf = [0u8; 64];
        let got = service.recv(&mut buf);
        assert!(
            matches!(&got, Err(e) if e.kind() == ErrorKind::WouldBlock),
            "{model}: {port} was answered: {got:?}"
        );
        service.set_nonblocking(false).unwrap();
        eventually(&format!("{model}: the drop from {port} logged"), || {
            (dropped(&server.stderr(), why) == 1).then_some(())
        });
    }
}

#[test]
fn the_rate_limit_caps_replies_per_second_per_source_address() {
    let dir = tempdir();
    thread::scope(|scope| {
        for model in ["event", "threads", "fork", "uring"] {
            let dir = &dir;
            scope.spawn(move || rate_limit_case(model, dir));
        }
    });
}

fn rate_limit_case(model: &str, dir: &tempfile::TempDir) {
    let server = start(model, "udp", dir, &["--rate-limit", "5"]);
    let flood = Plain::connect("udp", &server.addr);
    let started = Instant::now();
    for i in 0..40 {
        flood.send(format!("flood {i}").as_bytes());
    }
    flood
        .sock
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    // Every datagram of the flood is answered or counted in the drop lines: then no more
    // replies are on their way, however slowly a loaded machine ran the server.
    let why = "over --rate-limit replies per second for its source";
    let (mut answered, mut last) = (0u64, started);
    let dropped = eventually(&format!("{model}: all 40 answered or dropped"), || {
        while let Ok(got) = flood.try_reply(16) {
            assert!(got.starts_with(b"FLOOD "), "{got:?}");
            (answered, last) = (answered + 1, Instant::now());
        }
        let dropped = dropped(&server.stderr(), why);
        (answered + dropped >= 40).then_some(dropped)
    });
    assert_eq!(answered + dropped, 40, "{model}: {answered} answered");
    // A full budget (5), then 5 a second for as long as the replies took to come.
    let budget = 5 + (5.0 * last.duration_since(started).as_secs_f64()).ceil() as u64;
    assert!(
        (5..=budget).contains(&answered),
        "{model}: {answered} of 40 answered at --rate-limit 5 within {:?}",
        last.duration_since(started)
    );
    // Another source address has its own budget.
    let other = std::net::UdpSocket::bind("127.0.0.2:0").unwrap();
    other.set_read_timeout(Some(STEP)).unwrap();
    other.send_to(b"other source", &server.addr).unwrap();
    let mut buf = [0u8; 32];
    let n = other.recv(&mut buf).expect("another source is answered");
    assert_eq!(&buf[..n], b"OTHER SOURCE");
    // And the first one's budget refills with time: asked until it is answered again.
    flood
        .sock
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    eventually(&format!("{model}: the budget refilled"), || {
        flood.send(b"later");
        match flood.try_reply(5) {
            Ok(got) => {
                assert_eq!(got, b"LATER", "{model}");
                Some(())
            }
            Err(_) => None,
        }
    });
}

/// 20 udp clients send one datagram each while the server is stopped, so they queue up;
/// then it goes on, and every one of them is answered.
fn queue_twenty_while_stopped(server: &Server) {
    signal(server.pid(), "STOP");
    let clients: Vec<Plain> = (0..20)
        .map(|_| Plain::connect("udp", &server.addr))
        .collect();
    for (i, raw) in clients.iter().enumerate() {
        raw.send(&message(i, 0, 100 + i));
    }
    signal(server.pid(), "CONT");
    for (i, raw) in clients.iter().enumerate() {
        assert!(raw.reply(0) == message(i, 0, 100 + i).to_ascii_uppercase());
    }
}

#[test]
fn the_event_model_reads_and_answers_udp_in_batches() {
    let server = Server::start(&["--explain", "--proto", "udp", "--addr", "127.0.0.1:0"]);
    server.wait_log("recvmmsg/sendmmsg");
    // Stopped, the server cannot read: 20 datagrams queue up and are read in one call.
    queue_twenty_while_stopped(&server);
    // One recvmmsg read all 20, one sendmmsg answered all 20.
    server.wait_log("recvmmsg(fd 4, 32 messages) = 20 datagrams");
    server.wait_log("sendmmsg(fd 4, 20 messages) = 20");
}

#[test]
fn the_event_model_reads_a_udp_ping_pong_one_datagram_per_receive_and_a_queue_in_batches() {
    let server = Server::start(&["--explain", "--proto", "udp", "--addr", "127.0.0.1:0"]);
    server.wait_log("recvmmsg/sendmmsg");
    // Datagrams one at a time: after the first, each is read alone (recvmsg) and answered
    // alone (sendto), so the kernel does not look for a second before the reply leaves.
    let lone = Plain::connect("udp", &server.addr);
    for i in 0..4 {
        lone.send(&message(0, i, 64));
        assert!(lone.reply(0) == message(0, i, 64).to_ascii_uppercase());
    }
    server.wait_log("sendto(fd 4, 1 message) = 64 bytes");
    let log = server.wait_log("recvmsg(fd 4) = 64 bytes, 1 datagram");
    assert!(
        log.contains("recvmmsg(fd 4, 32 messages) = 1 datagram\n"),
        "{log}"
    );
    // A queue that builds up meanwhile is still read in batches within a few receives,
    // and every datagram in it is answered.
    queue_twenty_while_stopped(&server);
    // Four more single receives at most, then the rest of the queue in one.
    server.wait_log("recvmmsg(fd 4, 32 messages) = 16 datagrams");
}

#[test]
fn a_unix_datagram_client_gone_before_its_reply_costs_the_others_nothing() {
    let dir = tempdir();
    for model in ["event", "threads"] {
        let server = start(model, "unix-dgram", &dir, &[]);
        signal(server.pid(), "STOP");
        let gone = Plain::connect("unix-dgram", &server.addr);
        gone.send(b"I will not wait");
        drop(gone);
        let stay: Vec<Plain> = (0..5)
            .map(|i| {
                let raw = Plain::connect("unix-dgram", &server.addr);
                raw.send(&message(i, 0, 64));
                raw
            })
            .collect();
        signal(server.pid(), "CONT");
        for (i, raw) in stay.iter().enumerate() {
            let got = raw
                .try_reply(64)
                .unwrap_or_else(|e| panic!("{model}: client {i} got no reply: {e}"));
            assert!(got == message(i, 0, 64).to_ascii_uppercase());
        }
    }
}

/// A Unix datagram client that sends `count` datagrams and never reads a reply.
fn flood(addr: &str, count: usize) -> Plain {
    let flood = Plain::connect("unix-dgram", addr);
    flood
        .sock
        .set_write_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut sent = 0;
    while sent < count && Instant::now() < deadline {
        if (&flood.sock).write(&[b'x'; 200]).is_ok() {
            sent += 1;
        }
    }
    flood
}

#[test]
fn a_unix_datagram_client_that_never_reads_freezes_nobody() {
    let dir = tempdir();
    for model in ["event", "threads"] {
        let server = start(model, "unix-dgram", &dir, &[]);
        // Its queue fills with replies, and those replies fill the server socket's send
        // buffer, which the kernel shares among all its peers: while it stays full every
        // reply fails (EAGAIN). The server must drop them, not wait for room.
        // (Replies to others fail too while the hog holds that buffer: the kernel's doing.)
        let hog = flood(&server.addr, 500);
        drop(hog);
        let other = Plain::connect("unix-dgram", &server.addr);
        other.send(b"still there?");
        let got = other
            .try_reply(12)
            .unwrap_or_else(|e| panic!("{model}: no reply once the hog left: {e}"));
        assert_eq!(got, b"STILL THERE?", "{model}");
        // And a stop signal is heard while a hog is still there.
        let _hog = flood(&server.addr, 500);
        let started = Instant::now();
        let (status, out, _) = server.stop("TERM");
        assert!(status.success(), "{model}");
        assert!(out.contains("stopped by SIGTERM"), "{model}: {out}");
        assert!(
            started.elapsed() < common::STEP,
            "{model}: no stop within {:?} of SIGTERM",
            common::STEP
        );
    }
}

/// Where the kernel refuses io_uring (ENOSYS: too old or compiled without; EPERM:
/// kernel.io_uring_disabled or a seccomp filter), `--model uring` says so in one line, binds
/// nothing and exits 2. The refusal is the real kernel's, injected by strace.
#[test]
fn model_uring_where_the_kernel_refuses_io_uring_says_so_in_one_line_and_exits_2() {
    let test = "model_uring_where_the_kernel_refuses_io_uring_says_so_in_one_line_and_exits_2";
    let probe = Command::new("strace")
        .args(["-f", "-qq", "-o", "/dev/null", "true"])
        .output();
    match probe {
        Err(_) => {
            return common::skip(
                test,
                "strace (Debian package strace)",
                common::Lacks::Provided,
            );
        }
        Ok(out) if !out.status.success() => {
            let why = String::from_utf8_lossy(&out.stderr).into_owned();
            let needs = format!("ptrace allowed: {why}");
            return common::skip(test, &needs, common::Lacks::Environment);
        }
        Ok(_) => {}
    }
    for (errno, says) in [("ENOSYS", "no io_uring"), ("EPERM", "not allowed")] {
        let child = Command::new("strace")
            .args(["-f", "-qq", "-o", "/dev/null", "-e"])
            .arg(format!("inject=io_uring_setup:error={errno}"))
            .args([
                common::bin(),
                "serve",
                "--model",
                "uring",
                "--addr",
                "127.0.0.1:0",
            ])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let out = common::output_within(child, "serve --model uring", Duration::from_secs(20));
        let line = common::fails(&out, 2);
        assert!(
            line.contains("--model uring") && line.contains(says),
            "{line}"
        );
        assert!(line.contains("use --model event"), "{line}");
        assert!(out.stdout.is_empty(), "nothing was bound: {out:?}");
    }
}
