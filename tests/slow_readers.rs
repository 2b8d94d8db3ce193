//! Clients that send and never read their replies: the replies waiting for them are bounded
//! per connection (--max-pending) and for the whole process, so many such clients cannot
//! make the server take memory without bound, and a client that reads is still served.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::Duration;

use common::{STEP, Server, bin, rss_kib};
use socket2::{Domain, Socket, Type};

/// Connections that never read.
const SILENT: usize = 300;

/// What the server may hold with [`SILENT`] such clients at the default --max-pending
/// (1 MiB): the process-wide budget for waiting replies (64 times that), 64 MiB for the
/// program itself (code, the uring model's receive buffers, what the allocator keeps of
/// replies freed), and 256 KiB per connection (its last read, the room its send buffers
/// keep). Without the budget each connection holds its full MiB: 300 of them took 350 MB
/// under event and 416 MB under uring; with it, 70 to 170 MB.
const BOUND_KIB: u64 = 64 * 1024 + 64 * 1024 + SILENT as u64 * 256;

/// A connection with a 1 KiB receive buffer, whose writes never wait.
fn silent_conn(addr: &SocketAddr) -> Socket {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(1024).unwrap();
    socket.connect(&(*addr).into()).unwrap();
    socket.set_nonblocking(true).unwrap();
    socket
}

/// Writes 64 KiB chunks to every connection, never reading, until a whole second goes by
/// in which none of them took a byte (the server stopped reading from all), or 3,000
/// rounds. Bytes written in all.
fn flood(conns: &[Socket]) -> u64 {
    let chunk = vec![b'a'; 64 * 1024];
    let (mut total, mut quiet) = (0u64, 0);
    for _ in 0..3000 {
        let mut round = 0;
        for mut conn in conns {
            match conn.write(&chunk) {
                Ok(n) => round += n as u64,
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(e) => panic!("a silent client's write failed: {e}"),
            }
        }
        total += round;
        quiet = if round == 0 { quiet + 1 } else { 0 };
        if quiet == 20 {
            return total;
        }
        if round == 0 {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    total
}

/// A client that reads: 1 MiB sent, all of it back, upper-cased.
fn served(addr: &str) {
    transfer(TcpStream::connect(addr).unwrap(), 1 << 20);
}

/// `len` bytes sent on `conn` while they are read back, upper-cased (each step bounded by
/// [`STEP`]: a hang guard, not a measure of speed).
fn transfer(conn: TcpStream, len: usize) {
    conn.set_read_timeout(Some(STEP)).unwrap();
    conn.set_write_timeout(Some(STEP)).unwrap();
    let mut reader = conn.try_clone().unwrap();
    let back = std::thread::spawn(move || {
        let mut back = vec![0u8; len];
        reader.read_exact(&mut back).map(|()| back)
    });
    (&conn).write_all(&vec![b'q'; len]).unwrap();
    let back = back.join().unwrap().expect("every byte echoed");
    assert!(back.iter().all(|&b| b == b'Q'));
}

#[test]
fn clients_that_never_read_cannot_take_the_servers_memory() {
    for model in ["event", "uring"] {
        let server = Server::start(&["--addr", "127.0.0.1:0", "--model", model]);
        let addr: SocketAddr = server.addr.parse().unwrap();
        let conns: Vec<Socket> = (0..SILENT).map(|_| silent_conn(&addr)).collect();
        let sent = flood(&conns);
        let rss = rss_kib(server.pid());
        eprintln!("{model}: {SILENT} silent clients sent {sent} bytes; server VmRSS {rss} KiB");
        served(&server.addr);
        assert!(
            rss < BOUND_KIB,
            "{model}: {SILENT} clients that never read made the server hold {rss} KiB \
             (bound {BOUND_KIB} KiB)"
        );
        // Held back, not cut off: each silent client's connection is still open.
        assert!(!server.stderr().contains("reset"), "{}", server.stderr());
    }
}

/// Clients that never read, enough to fill the budget at the default --max-pending (64 of
/// them would hold 64 MiB): over it, each one's fair share is the budget over 81 holders
/// (these and the client that reads), about 800 KiB.
const FILLERS: usize = 80;

/// What a client that reads may have the server take from it while it is not reading, with
/// the socket buffers small (the server's 8 KiB each way, the client's 8 KiB to send and
/// 64 KiB to receive): more than a rule pressing every connection holding 16 KiB over budget
/// lets through (those 16 KiB, one 64 KiB read and about 90 KiB of socket buffers), less
/// than its fair share.
const SHARE_SEEN: u64 = 512 * 1024;

#[test]
fn a_client_that_reads_keeps_its_share_beside_clients_that_never_read() {
    for model in ["event", "uring"] {
        let server = Server::start(&[
            "--addr",
            "127.0.0.1:0",
            "--model",
            model,
            "--sndbuf",
            "4096",
            "--rcvbuf",
            "4096",
        ]);
        let addr: SocketAddr = server.addr.parse().unwrap();
        let fillers: Vec<Socket> = (0..FILLERS).map(|_| silent_conn(&addr)).collect();
        for filler in &fillers {
            // What the server does not take waits in this process's kernel: kept small.
            filler.set_send_buffer_size(64 * 1024).unwrap();
        }
        let filled = flood(&fillers);
        assert!(
            filled > 64 << 20,
            "{model}: the fillers sent only {filled} bytes"
        );
        // A client holding more than 16 KiB of replies while the server is over budget is
        // still read from, up to its share.
        let probe = silent_conn(&addr);
        probe.set_send_buffer_size(4096).unwrap();
        probe.set_recv_buffer_size(32 * 1024).unwrap();
        let taken = flood(std::slice::from_ref(&probe));
        eprintln!("{model}: fillers sent {filled} bytes; the reading client {taken} unread");
        assert!(
            taken > SHARE_SEEN,
            "{model}: over budget, the server took only {taken} bytes from a client holding \
             replies (more than {SHARE_SEEN} is its fair share)"
        );
        // It reads: its replies come back, then a large transfer goes through whole.
        let probe: TcpStream = probe.into();
        probe.set_nonblocking(false).unwrap();
        probe.set_read_timeout(Some(STEP)).unwrap();
        let mut back = vec![0u8; taken as usize];
        (&probe)
            .read_exact(&mut back)
            .expect("the replies held for it");
        assert!(back.iter().all(|&b| b == b'A'));
        transfer(probe, 4 << 20);
        // The clients that never read are still held back, and the server's memory bounded.
        let more = flood(&fillers);
        assert!(
            more < FILLERS as u64 * 256 * 1024,
            "{model}: clients that never read sent {more} more bytes once it was served"
        );
        let rss = rss_kib(server.pid());
        assert!(rss < BOUND_KIB, "{model}: the server holds {rss} KiB");
        assert!(!server.stderr().contains("reset"), "{}", server.stderr());
    }
}

/// More clients that never read than a uring ring has receive buffers (1,024). A reply the
/// ring sends from the buffer it came in holds that buffer until the peer takes the reply:
/// were every buffer lent so, no receive of the ring could complete again.
const PINNING: usize = 1100;

#[test]
fn clients_that_never_read_cannot_hold_every_receive_buffer_of_a_uring_ring() {
    let server = Server::start(&[
        "--addr",
        "127.0.0.1:0",
        "--model",
        "uring",
        "--threads",
        "1",
        "--sndbuf",
        "4096",
        "--max-conns",
        "2000",
    ]);
    let addr: SocketAddr = server.addr.parse().unwrap();
    let conns: Vec<Socket> = (0..PINNING).map(|_| silent_conn(&addr)).collect();
    let sent = flood(&conns);
    eprintln!("{PINNING} silent clients sent {sent} bytes");
    // The ring still receives: a client that reads is served whole.
    served(&server.addr);
    assert!(!server.stderr().contains("reset"), "{}", server.stderr());
}

/// Flows of a relay whose client never reads.
const SILENT_FLOWS: usize = 60;

/// What the relay may hold with [`SILENT_FLOWS`] such flows: 48 MiB for the program and
/// 2 MiB a flow (four 64 KiB reads queued each way, the reads under way, three threads'
/// stacks). With 64 reads queued each way, 60 flows took 489 MB.
const RELAY_BOUND_KIB: u64 = 48 * 1024 + SILENT_FLOWS as u64 * 2048;

#[test]
fn a_relay_holds_little_for_clients_that_never_read() {
    let server = Server::start(&["--addr", "127.0.0.1:0"]);
    let relay =
        Server::start_with(Command::new(bin()).args(["relay", "tcp://127.0.0.1:0", &server.url()]));
    let addr: SocketAddr = relay.addr.parse().unwrap();
    let conns: Vec<Socket> = (0..SILENT_FLOWS).map(|_| silent_conn(&addr)).collect();
    let sent = flood(&conns);
    let rss = rss_kib(relay.pid());
    eprintln!("relay: {SILENT_FLOWS} silent clients sent {sent} bytes; VmRSS {rss} KiB");
    served(&relay.addr);
    assert!(
        rss < RELAY_BOUND_KIB,
        "{SILENT_FLOWS} clients that never read made the relay hold {rss} KiB \
         (bound {RELAY_BOUND_KIB} KiB)"
    );
}
