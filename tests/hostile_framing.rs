//! `--framing line` against a client that sends one long line in small pieces: each byte is
//! looked at once, so the server's CPU time grows with the line, not with its square.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;

use common::{STEP, Server};

/// CPU seconds (user and system) the process has used so far.
fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    ticks / 100.0
}

/// The server's CPU seconds for 8 MiB sent in 1 KiB writes, a short pause now and then so
/// the server reads small pieces: as one line (`lines` false) or as 8192 lines of 1 KiB.
fn cpu_for_8_mib(server: &Server, lines: bool) -> f64 {
    let conn = TcpStream::connect(&server.addr).unwrap();
    conn.set_nodelay(true).unwrap();
    conn.set_read_timeout(Some(STEP)).unwrap();
    // Replies are read as they come, so a reply to each short line never stops the writes.
    let mut reader = conn.try_clone().unwrap();
    let total = 8192 * 1024 + usize::from(!lines);
    let back = std::thread::spawn(move || {
        let mut back = vec![0u8; total];
        reader.read_exact(&mut back).map(|()| back)
    });
    let before = cpu_secs(server.pid());
    let mut piece = [b'x'; 1024];
    if lines {
        piece[1023] = b'\n';
    }
    for i in 0..8192 {
        (&conn).write_all(&piece).unwrap();
        if i % 8 == 0 {
            std::thread::sleep(std::time::Duration::from_micros(200));
        }
    }
    if !lines {
        (&conn).write_all(b"\n").unwrap();
    }
    let back = back.join().unwrap().expect("every byte echoed");
    assert!(back[..1023].iter().all(|&b| b == b'x'));
    cpu_secs(server.pid()) - before
}

#[test]
fn a_long_line_in_small_pieces_costs_the_server_little_cpu() {
    let server = Server::start(&[
        "--proto",
        "tcp",
        "--addr",
        "127.0.0.1:0",
        "--framing",
        "line",
        "--model",
        "threads",
        "--transform",
        "echo",
    ]);
    // The same bytes in the same pieces as short lines cost what reading and echoing them
    // costs on this machine now, however loaded: the long line may cost a few times that, not
    // its square. Rescanning the whole pending line on every read cost 2.6 s of CPU on a
    // 2-core VM; a scan of each byte once, 0.06 s. The 0.3 s covers the clock's 10 ms ticks.
    let short = cpu_for_8_mib(&server, true);
    let long = cpu_for_8_mib(&server, false);
    eprintln!("server CPU for 8 MiB: {short:.2} s as 1 KiB lines, {long:.2} s as one line");
    assert!(
        long < short * 4.0 + 0.3,
        "the server used {long:.2} s of CPU for one 8 MiB line, {short:.2} s for 1 KiB lines"
    );
}

#[test]
fn unfinished_frames_of_many_connections_stay_within_a_budget() {
    let server = Server::start(&[
        "--proto",
        "tcp",
        "--addr",
        "127.0.0.1:0",
        "--framing",
        "length",
    ]);
    // Eight frames of 16,000,000 bytes announced, 12 MiB of each sent, none finished: 96 MiB
    // of unfinished frames, over the 64 MiB budget.
    let _held = unfinished_frames(&server.addr, 8, 12);
    server.wait_log("over the server's");
}

/// `count` connections, each announcing a frame of 16,000,000 bytes and sending `mib` MiB of
/// it (or what the server takes within a write timeout), held open unfinished.
fn unfinished_frames(addr: &str, count: usize, mib: usize) -> Vec<TcpStream> {
    let chunk = vec![b'y'; 1 << 20];
    let mut held = Vec::new();
    for _ in 0..count {
        let mut conn = TcpStream::connect(addr).unwrap();
        conn.set_write_timeout(Some(STEP)).unwrap();
        let _ = conn.write_all(&16_000_000u32.to_be_bytes());
        for _ in 0..mib {
            if conn.write_all(&chunk).is_err() {
                break;
            }
        }
        held.push(conn);
    }
    held
}

#[test]
fn replies_to_good_frames_go_out_before_a_bad_frame_in_the_same_read_ends_it() {
    for model in ["threads", "event", "uring"] {
        let server = Server::start(&[
            "--proto",
            "tcp",
            "--addr",
            "127.0.0.1:0",
            "--framing",
            "length",
            "--max-frame",
            "1000",
            "--model",
            model,
        ]);
        let mut conn = TcpStream::connect(&server.addr).unwrap();
        conn.set_read_timeout(Some(STEP)).unwrap();
        // Two good frames and one over --max-frame, in one write.
        let mut wire = Vec::new();
        for frame in [&b"abc"[..], b"de"] {
            wire.extend_from_slice(&(frame.len() as u32).to_be_bytes());
            wire.extend_from_slice(frame);
        }
        wire.extend_from_slice(&5000u32.to_be_bytes());
        conn.write_all(&wire).unwrap();
        let mut back = Vec::new();
        let _ = conn.read_to_end(&mut back);
        assert_eq!(back, b"\0\0\0\x03ABC\0\0\0\x02DE", "{model}");
        server.wait_log("over the 1000-byte limit (--max-frame)");
    }
}

/// Sends `payload` as one length-prefixed frame (and `extra` after it) while reading the
/// reply frame; the reply's payload, or what went wrong.
fn frame_exchange(conn: &TcpStream, payload: &[u8], extra: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut reader = conn.try_clone()?;
    let len = payload.len();
    let back = std::thread::spawn(move || {
        let mut back = vec![0u8; 4 + len];
        reader.read_exact(&mut back).map(|()| back.split_off(4))
    });
    let mut writer = conn;
    let sent = writer
        .write_all(&(len as u32).to_be_bytes())
        .and_then(|()| writer.write_all(payload))
        .and_then(|()| writer.write_all(extra));
    let back = back.join().expect("reader thread");
    sent.and(back)
}

#[test]
fn idle_holders_of_a_byte_leave_the_budget_to_a_large_frame() {
    // Four peers each send a frame of 16,000,000 bytes and the first byte of a next one,
    // take their echo and sit idle; then a fifth sends a frame as large. A decoder that
    // kept the room of its last frame for one byte held 16 MiB per idle peer, and the
    // fifth was refused for the 64 MiB budget.
    let payload = vec![b'f'; 16_000_000];
    for model in ["event", "uring", "threads"] {
        let server = Server::start(&[
            "--addr",
            "127.0.0.1:0",
            "--framing",
            "length",
            "--model",
            model,
        ]);
        let mut idle = Vec::new();
        for _ in 0..4 {
            let conn = TcpStream::connect(&server.addr).unwrap();
            conn.set_read_timeout(Some(STEP)).unwrap();
            conn.set_write_timeout(Some(STEP)).unwrap();
            let back = frame_exchange(&conn, &payload, &[0]).expect("an idle peer's frame echoed");
            assert_eq!(back.len(), payload.len());
            idle.push(conn);
        }
        let conn = TcpStream::connect(&server.addr).unwrap();
        conn.set_read_timeout(Some(STEP)).unwrap();
        conn.set_write_timeout(Some(STEP)).unwrap();
        let back = frame_exchange(&conn, &payload, &[]).unwrap_or_else(|e| {
            panic!(
                "{model}: a 16,000,000-byte frame beside four idle peers: {e}; server:\n{}",
                server.stderr()
            )
        });
        assert!(back.iter().all(|&b| b == b'F'), "{model}");
    }
}

#[test]
fn a_frame_refused_for_the_budget_says_how_much_of_it_came_at_warn() {
    let server = Server::start(&[
        "--addr",
        "127.0.0.1:0",
        "--framing",
        "length",
        "--model",
        "event",
    ]);
    // Five frames of 16,000,000 bytes announced and 14 MiB of each sent: 70 MiB unfinished.
    let _held = unfinished_frames(&server.addr, 5, 14);
    let log = server.wait_log("over the server's");
    let line = log
        .lines()
        .find(|l| l.contains("over the server's"))
        .unwrap();
    assert!(line.contains("WARN"), "{line}");
    // The bytes of the refused frame that were read, counted from the line itself.
    let read: usize = line
        .split("this connection's, ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count of bytes read: {line}"));
    assert!(read > 64 << 10 && read <= 4 + (14 << 20), "{line}");
}
