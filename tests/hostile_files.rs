//! The datagram file service against peers that lie: forged sources (a silent socket on
//! 127.0.0.2 stands for the victim of a spoofed request), optimistic ACKs, a third host that
//! answers a client first, strangers writing to a transfer socket. Packets are built by hand
//! here, byte by byte as the README draws them. A request first gets the well-known
//! socket's COOKIE; its PROOF (the request again with the COOKIE's token) starts a transfer.

mod common;

use std::fs;
use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{STEP, Server, listing, tempdir};
use sha2::{Digest, Sha256};

/// The server's log line when a HELLO never came back.
const UNPROVEN: &str = "did not come back";

fn file_server(root: &Path, extra: &[&str]) -> Server {
    let mut args = vec![
        "--proto",
        "udp",
        "--addr",
        "127.0.0.1:0",
        "--files",
        root.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    Server::start(&args)
}

fn socket_on(ip: &str) -> UdpSocket {
    let sock = UdpSocket::bind(format!("{ip}:0")).unwrap();
    sock.set_read_timeout(Some(STEP)).unwrap();
    sock
}

/// A request padded to 32 bytes: opcode, window, block size, [size,] nonce, name.
fn request(opcode: u16, size: Option<u64>, nonce: u64, name: &str) -> Vec<u8> {
    let mut out = opcode.to_be_bytes().to_vec();
    out.extend_from_slice(&1024u16.to_be_bytes());
    out.extend_from_slice(&60_000u16.to_be_bytes());
    if let Some(size) = size {
        out.extend_from_slice(&size.to_be_bytes());
    }
    out.extend_from_slice(&nonce.to_be_bytes());
    out.extend_from_slice(name.as_bytes());
    out.resize(out.len().max(32), 0);
    out
}

fn read_request(nonce: u64, name: &str) -> Vec<u8> {
    request(1, None, nonce, name)
}

fn packet(opcode: u16, fields: &[&[u8]]) -> Vec<u8> {
    let mut out = opcode.to_be_bytes().to_vec();
    for field in fields {
        out.extend_from_slice(field);
    }
    out
}

fn hello(nonce: u64, token: u64) -> Vec<u8> {
    packet(8, &[&nonce.to_be_bytes(), &token.to_be_bytes()])
}

/// `req` again inside a PROOF, with the token of the COOKIE `cookie`.
fn proof(cookie: &[u8], req: &[u8]) -> Vec<u8> {
    packet(11, &[&cookie[10..18], req])
}

/// Sends `req` from `client`, and its PROOF once the COOKIE comes: the transfer socket's
/// first packet (its HELLO) and address.
fn proven_request(client: &UdpSocket, server: &Server, req: &[u8]) -> (Vec<u8>, SocketAddr) {
    client.send_to(req, &server.addr).unwrap();
    let (cookie, from) = next(client);
    assert_eq!(opcode(&cookie), 12, "a COOKIE first: {cookie:?}");
    assert_eq!(
        from.to_string(),
        server.addr,
        "the COOKIE comes from the well-known port"
    );
    client.send_to(&proof(&cookie, req), &server.addr).unwrap();
    next(client)
}

/// Returns once the server's receive loop has taken every datagram sent to it before: it
/// answers a new request's COOKIE only after them.
fn settled(server: &Server) {
    let probe = socket_on("127.0.0.1");
    probe.send_to(&read_request(77, "x"), &server.addr).unwrap();
    assert_eq!(opcode(&next(&probe).0), 12, "a COOKIE");
}

fn ack(block: u32) -> Vec<u8> {
    packet(4, &[&block.to_be_bytes()])
}

fn opcode(p: &[u8]) -> u16 {
    u16::from_be_bytes([p[0], p[1]])
}

fn block(p: &[u8]) -> u32 {
    u32::from_be_bytes(p[2..6].try_into().unwrap())
}

/// The next datagram for `sock` and its sender, within `STEP`.
fn next(sock: &UdpSocket) -> (Vec<u8>, SocketAddr) {
    let mut buf = vec![0u8; 65536];
    let (n, from) = sock.recv_from(&mut buf).expect("a datagram within STEP");
    (buf[..n].to_vec(), from)
}

/// Every datagram queued for `sock` now: (count, bytes). Loopback delivers within
/// sendto(2), so whatever the server sent before its log line is here.
fn drain(sock: &UdpSocket) -> (usize, usize) {
    sock.set_nonblocking(true).unwrap();
    let mut buf = vec![0u8; 65536];
    let (mut count, mut bytes) = (0, 0);
    while let Ok(n) = sock.recv(&mut buf) {
        count += 1;
        bytes += n;
    }
    sock.set_nonblocking(false).unwrap();
    (count, bytes)
}

#[test]
fn a_forged_read_reflects_no_more_than_its_own_size() {
    let root = tempdir();
    fs::write(root.path().join("big"), vec![7u8; 16 << 20]).unwrap();
    let server = file_server(root.path(), &[]);
    // Never reads, never answers: what a spoofed request's victim looks like.
    let victim = socket_on("127.0.0.2");
    for name in ["big", "missing"] {
        let req = read_request(1, name);
        victim.send_to(&req, &server.addr).unwrap();
        // The server took the request: whatever it sent the victim is queued now (and no
        // thread waits: the COOKIE is all, sent by the receive loop).
        settled(&server);
        let (count, bytes) = drain(&victim);
        assert!(count <= 3, "{name}: {count} datagrams reached the victim");
        assert!(
            bytes <= req.len(),
            "{name}: {bytes} bytes reached the victim for a {}-byte request",
            req.len()
        );
    }
    let log = server.stderr();
    assert!(
        !log.contains("refused"),
        "a refusal before any proof: {log}"
    );
}

#[test]
fn a_forged_write_creates_nothing_in_the_directory() {
    let root = tempdir();
    let server = file_server(root.path(), &["--upload"]);
    let victim = socket_on("127.0.0.2");
    let req = request(2, Some(1 << 20), 1, "up.bin");
    victim.send_to(&req, &server.addr).unwrap();
    settled(&server);
    assert!(
        listing(root.path()).is_empty(),
        "{:?}",
        listing(root.path())
    );
    let (count, bytes) = drain(&victim);
    assert!(
        count <= 1 && bytes <= req.len(),
        "{count} datagrams, {bytes} bytes"
    );
}

/// Asks the server for `name` from `client` and proves the address: the transfer socket's
/// address.
fn proven_read(client: &UdpSocket, server: &Server, name: &str) -> SocketAddr {
    let (answer, tid) = proven_request(client, server, &read_request(5, name));
    assert_eq!(opcode(&answer), 8, "the transfer's HELLO: {answer:?}");
    client.send_to(&answer, tid).unwrap();
    tid
}

#[test]
fn an_ack_for_blocks_never_sent_is_ignored() {
    let root = tempdir();
    fs::write(root.path().join("f"), vec![1u8; 100 * 60_000]).unwrap();
    let server = file_server(root.path(), &[]);
    let client = socket_on("127.0.0.1");
    let tid = proven_read(&client, &server, "f");
    // Two blocks before any ACK, whatever window was asked.
    let firsts: Vec<u32> = (0..2).map(|_| block(&next(&client).0)).collect();
    assert_eq!(firsts, [1, 2]);
    // Claims the whole file: the server must not take it as delivered.
    client.send_to(&ack(101), tid).unwrap();
    // What follows is block 1 again (timeouts), never a new block or the FIN, until the
    // true ACK for block 2; then block 3 comes.
    for _ in 0..3 {
        let (p, _) = next(&client);
        assert_eq!(opcode(&p), 3, "not DATA: {:?}", &p[..p.len().min(8)]);
        assert!(block(&p) <= 2, "block {} sent after a false ACK", block(&p));
    }
    client.send_to(&ack(2), tid).unwrap();
    let mut later = 0;
    for _ in 0..10 {
        let (p, _) = next(&client);
        if opcode(&p) == 3 && block(&p) > 2 {
            later = block(&p);
            break;
        }
    }
    assert_eq!(later, 3, "the true ACK moves the transfer on");
}

#[test]
fn get_ignores_a_third_host_that_answers_first() {
    let local = tempdir();
    let out = local.path().join("f");
    // The test plays the server: its well-known socket, its transfer socket on the same
    // host, and a third host that answers first.
    let (server, transfer, third) = (
        socket_on("127.0.0.1"),
        socket_on("127.0.0.1"),
        socket_on("127.0.0.2"),
    );
    let addr = server.local_addr().unwrap().to_string();
    let get = Command::new(common::bin())
        .args([
            "get",
            "--proto",
            "udp",
            "--timeout",
            "10s",
            "--retries",
            "0",
        ])
        .args([&addr, "f", "-o"])
        .arg(&out)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (req, client) = next(&server);
    assert_eq!(opcode(&req), 9, "a READ of version 2");
    let nonce = u64::from_be_bytes(req[6..14].try_into().unwrap());
    // The third host saw the request (say, on the path) and answers first.
    third.send_to(&hello(nonce, 1), client).unwrap();
    transfer.send_to(&hello(nonce, 2), client).unwrap();
    let (back, _) = next(&transfer);
    assert_eq!(
        back,
        hello(nonce, 2),
        "the HELLO from the server's host goes back"
    );
    let body = b"hello";
    transfer
        .send_to(&packet(3, &[&1u32.to_be_bytes(), body]), client)
        .unwrap();
    let fin = packet(
        6,
        &[
            &5u64.to_be_bytes(),
            blake3::hash(body).as_bytes(),
            &1u64.to_be_bytes(),
            &0u64.to_be_bytes(),
        ],
    );
    let mut finack = None;
    for _ in 0..10 {
        let (p, _) = next(&transfer);
        match opcode(&p) {
            4 if block(&p) == 1 => transfer.send_to(&fin, client).map(|_| ()).unwrap(),
            7 => {
                finack = Some(p);
                break;
            }
            _ => {}
        }
    }
    assert_eq!(finack, Some(vec![0, 7, 0]), "a FINACK: the hash matched");
    let done = get.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&done.stderr);
    assert!(done.status.success(), "{log}");
    assert_eq!(fs::read(&out).unwrap(), body);
    assert!(log.contains("blake3 matches what the server sent"), "{log}");
    assert!(!log.contains("verified"), "{log}");
    assert_eq!(drain(&third), (0, 0), "the client answered the third host");
}

#[test]
fn a_transfer_socket_never_answers_strangers_or_errors() {
    // Two proofs, two transfer sockets awaiting their HELLO: each gets a stranger's ERROR and junk
    // (the other's peer), and an ERROR from its own peer. An answer to any of them is what
    // lets two transfer sockets bounce errors between them forever.
    let root = tempdir();
    let server = file_server(root.path(), &[]);
    let (a, b) = (socket_on("127.0.0.1"), socket_on("127.0.0.1"));
    let mut tids = Vec::new();
    for sock in [&a, &b] {
        let (answer, tid) = proven_request(sock, &server, &read_request(3, "missing"));
        assert_eq!(opcode(&answer), 8);
        tids.push(tid);
    }
    let error = packet(5, &[b"unknown transfer"]);
    for (own, stranger, tid) in [(&a, &b, tids[0]), (&b, &a, tids[1])] {
        stranger.send_to(&error, tid).unwrap();
        stranger.send_to(b"\x00\x63junk", tid).unwrap();
        own.send_to(&error, tid).unwrap();
    }
    server.wait_log_count(UNPROVEN, 2);
    assert_eq!(drain(&a), (0, 0), "an answer to an error or a stranger");
    assert_eq!(drain(&b), (0, 0), "an answer to an error or a stranger");
}

#[test]
fn one_source_gets_no_answer_past_its_requests_awaiting_proof() {
    let root = tempdir();
    let server = file_server(root.path(), &[]);
    let victim = socket_on("127.0.0.2");
    // netecho serves 4 requests awaiting their transfer's HELLO from one IP at a time
    // (files::admit): six proofs that never send it back.
    let mut proofs = Vec::new();
    for nonce in 0..6 {
        let req = read_request(nonce, "missing");
        victim.send_to(&req, &server.addr).unwrap();
        let (cookie, _) = next(&victim);
        assert_eq!(opcode(&cookie), 12, "a COOKIE: {cookie:?}");
        proofs.push(proof(&cookie, &req));
    }
    for p in &proofs {
        victim.send_to(p, &server.addr).unwrap();
    }
    server.wait_log_count("await proof already", 2);
    server.wait_log_count(UNPROVEN, 4);
    let (count, _) = drain(&victim);
    assert_eq!(
        count, 4,
        "one HELLO per request under the cap, none past it"
    );
}

/// Over a Unix datagram socket the requests awaiting proof are counted by the user owning
/// the sender's socket file (as by address over udp): nobody's six proofs get four HELLOs,
/// and daemon's request is still answered.
#[test]
fn a_local_user_gets_no_answer_past_its_requests_awaiting_proof_over_unix_datagrams() {
    use std::os::unix::net::UnixDatagram;
    let (root, dir) = (tempdir(), tempdir());
    let addr = dir.path().join("files.sock");
    let server = Server::start(&[
        "--proto",
        "unix-dgram",
        "--addr",
        addr.to_str().unwrap(),
        "--files",
        root.path().to_str().unwrap(),
    ]);
    // Bound here, each socket file then given to its user: the server counts its owner.
    let client = |name: &str, uid: u32| {
        let path = dir.path().join(name);
        let sock = UnixDatagram::bind(&path).unwrap();
        std::os::unix::fs::lchown(&path, Some(uid), Some(uid)).unwrap();
        sock.set_read_timeout(Some(STEP)).unwrap();
        sock
    };
    let next = |sock: &UnixDatagram| {
        let mut buf = vec![0u8; 65536];
        let n = sock.recv(&mut buf).expect("a datagram within STEP");
        buf[..n].to_vec()
    };
    let (nobody, daemon) = (client("nobody.sock", 65534), client("daemon.sock", 1));
    let mut proofs = Vec::new();
    for nonce in 0..6 {
        let req = read_request(nonce, "missing");
        nobody.send_to(&req, &addr).unwrap();
        let cookie = next(&nobody);
        assert_eq!(opcode(&cookie), 12, "a COOKIE: {cookie:?}");
        proofs.push(proof(&cookie, &req));
    }
    for p in &proofs {
        nobody.send_to(p, &addr).unwrap();
    }
    server.wait_log_count("await proof already", 2);
    let req = read_request(99, "missing");
    daemon.send_to(&req, &addr).unwrap();
    let cookie = next(&daemon);
    daemon.send_to(&proof(&cookie, &req), &addr).unwrap();
    assert_eq!(opcode(&next(&daemon)), 8, "daemon's HELLO");
    server.wait_log_count(UNPROVEN, 4);
    nobody.set_nonblocking(true).unwrap();
    let mut buf = vec![0u8; 65536];
    let hellos = std::iter::from_fn(|| nobody.recv(&mut buf).ok()).count();
    assert_eq!(
        hellos, 4,
        "one HELLO per request under the cap, none past it"
    );
}

/// Six proofs from nobody's abstract name, then HELLOs counted for 4 s: printed.
const NOBODYS_PROOFS: &str = r#"
import os, socket, struct, sys, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(b"\0netecho-test-pending-%d" % os.getpid())
s.settimeout(5)
server = b"\0" + sys.argv[1][1:].encode()
proofs = []
for nonce in range(6):
    req = (struct.pack(">HHHQ", 1, 1024, 60000, nonce) + b"missing").ljust(32, b"\0")
    s.sendto(req, server)
    cookie = s.recv(65536)
    assert cookie[:2] == b"\0\x0c", cookie
    proofs.append(struct.pack(">H", 11) + cookie[10:18] + req)
for p in proofs:
    s.sendto(p, server)
hellos, end = 0, time.time() + 4
s.settimeout(0.5)
while time.time() < end:
    try:
        hellos += s.recv(65536)[:2] == b"\0\x08"
    except socket.timeout:
        pass
print(hellos)
"#;

/// A sender at an abstract name counts as the user owning the socket bound there: nobody's
/// six proofs get four HELLOs, not the share of every sender whose user is unknown.
#[test]
fn a_local_user_at_an_abstract_name_gets_no_answer_past_its_requests_awaiting_proof() {
    let test = "a_local_user_at_an_abstract_name_gets_no_answer_past_its_requests_awaiting_proof";
    if !common::can_switch_user() {
        common::skip(
            test,
            "root and setpriv, to send as nobody",
            common::Lacks::Provided,
        );
        return;
    }
    let root = tempdir();
    let addr = common::abstract_name("files-pending");
    let server = Server::start(&[
        "--proto",
        "unix-dgram",
        "--addr",
        &addr,
        "--files",
        root.path().to_str().unwrap(),
    ]);
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        // The system python3: a per-user one (pyenv under /root) is not nobody's to run.
        .args(["/usr/bin/python3", "-c", NOBODYS_PROOFS, &addr])
        .output()
        .unwrap();
    let hellos = common::ok(&out);
    server.wait_log_count("await proof already", 2);
    assert_eq!(
        hellos.trim(),
        "4",
        "one HELLO per request under the cap, none past it"
    );
}

#[test]
fn a_client_gone_ends_its_transfer_at_the_next_send() {
    let root = tempdir();
    fs::write(root.path().join("f"), vec![1u8; 100 * 60_000]).unwrap();
    let server = file_server(root.path(), &[]);
    let client = socket_on("127.0.0.1");
    proven_read(&client, &server, "f");
    assert_eq!(opcode(&next(&client).0), 3);
    // Its port is closed now: the connected transfer socket hears the ICMP port
    // unreachable for its next block, and stops.
    drop(client);
    server.wait_log("went away");
}

/// Uploads `body` as `name` by hand, with a FIN that claims `sha256`; the server's verdict
/// (the FINACK's byte: 0 when the data matched).
fn upload_claiming(server: &Server, name: &str, body: &[u8], sha256: &[u8]) -> u8 {
    let client = socket_on("127.0.0.1");
    let req = request(2, Some(body.len() as u64), 9, name);
    let (answer, tid) = proven_request(&client, server, &req);
    assert_eq!(opcode(&answer), 8, "the transfer's HELLO: {answer:?}");
    client.send_to(&answer, tid).unwrap();
    // Then: ready for block 1 (ACK 0), block 1 taken (ACK 1), the verdict (FINACK). A
    // repeated packet is skipped; the count of them is bounded.
    let data = packet(3, &[&1u32.to_be_bytes(), body]);
    let size = (body.len() as u64).to_be_bytes();
    let fin = packet(
        6,
        &[&size, sha256, &1u64.to_be_bytes(), &0u64.to_be_bytes()],
    );
    for _ in 0..20 {
        let (p, _) = next(&client);
        match (opcode(&p), p.get(2..6).map(|_| block(&p))) {
            (4, Some(0)) => client.send_to(&data, tid).unwrap(),
            (4, Some(1)) => client.send_to(&fin, tid).unwrap(),
            (7, _) => return p[2],
            _ => continue,
        };
    }
    panic!("{name}: no FINACK in 20 packets");
}

#[test]
fn an_upload_whose_fin_claims_another_hash_is_refused_and_leaves_nothing() {
    let root = tempdir();
    let server = file_server(root.path(), &["--upload"]);
    let body = b"0123456789".to_vec();
    // The control case: this client speaks the protocol correctly.
    let verdict = upload_claiming(&server, "good.bin", &body, &Sha256::digest(&body));
    assert_eq!(verdict, 0, "the true hash is accepted");
    assert_eq!(fs::read(root.path().join("good.bin")).unwrap(), body);

    let verdict = upload_claiming(&server, "bad.bin", &body, &Sha256::digest(b"else"));
    assert_ne!(
        verdict, 0,
        "a FIN whose hash is not the data's was accepted"
    );
    server.wait_log("SHA-256 mismatch");
    let deadline = Instant::now() + STEP;
    while listing(root.path()) != ["good.bin"] {
        assert!(
            Instant::now() < deadline,
            "left behind: {:?}",
            listing(root.path())
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_file_request_past_max_conns_is_ignored_until_a_transfer_ends() {
    let root = tempdir();
    fs::write(root.path().join("f"), b"0123456789").unwrap();
    let server = file_server(root.path(), &["--max-conns", "1"]);
    // The first client holds the one slot: its block 1 is not acknowledged yet.
    let first = socket_on("127.0.0.1");
    let tid = proven_read(&first, &server, "f");
    let (p, _) = next(&first);
    assert_eq!((opcode(&p), block(&p)), (3, 1), "block 1: {p:?}");
    // A second client's proof is refused before any answer: no HELLO, a log line.
    let second = socket_on("127.0.0.1");
    let req = read_request(6, "f");
    second.send_to(&req, &server.addr).unwrap();
    let (cookie, _) = next(&second);
    assert_eq!(opcode(&cookie), 12, "a COOKIE: {cookie:?}");
    second.send_to(&proof(&cookie, &req), &server.addr).unwrap();
    server.wait_log("refused, 1 requests running (--max-conns)");
    assert_eq!(drain(&second), (0, 0), "the refused request was answered");
    // The first transfer ends (block 1 acknowledged, its FIN answered): the slot is free.
    first.send_to(&ack(1), tid).unwrap();
    for _ in 0..20 {
        let (p, _) = next(&first);
        if opcode(&p) == 6 {
            first.send_to(&packet(7, &[&[0]]), tid).unwrap();
            break;
        }
    }
    second
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let deadline = Instant::now() + STEP;
    loop {
        // The COOKIE was for this address: its PROOF serves again and again.
        second.send_to(&proof(&cookie, &req), &server.addr).unwrap();
        let mut buf = [0u8; 64];
        if let Ok((n, _)) = second.recv_from(&mut buf) {
            assert_eq!(opcode(&buf[..n]), 8, "a HELLO once the slot is free");
            break;
        }
        assert!(Instant::now() < deadline, "the slot was never freed");
    }
}
