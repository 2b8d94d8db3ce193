//! The udp file service (netecho's protocol and TFTP on one port) against forged sources: a
//! flood of requests from addresses that never answer must not hold the threads a real
//! client needs, and what an unproven address is sent stays within what it sent. The
//! forged datagrams are written by hand in IPv4 headers on a raw socket (IP_HDRINCL) in a
//! client namespace, from addresses of its subnet that no host holds (root only).

mod common;

use std::fs;
use std::net::{Ipv4Addr, UdpSocket};
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::Duration;

use common::netns::Pair;
use common::{Server, can_open_raw, files_server, output_within, tempdir};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

/// IPPROTO_RAW: the socket sends whole IPv4 packets, header included (IP_HDRINCL).
const IPPROTO_RAW: i32 = 255;
/// Forged requests a second: several times what filled every request thread before.
const FLOOD_RATE: u64 = 100;
/// A `get` through the flood, retries included.
const GET_LIMIT: Duration = Duration::from_secs(60);

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A raw socket of the client's namespace (setns changes only the calling thread).
fn raw_in(space: &str) -> Socket {
    let path = format!("/var/run/netns/{space}");
    thread::scope(|scope| {
        scope
            .spawn(|| {
                let f = fs::File::open(&path).expect("open the namespace");
                // Safety: a valid descriptor of a network namespace, for this thread only.
                let r =
                    unsafe { libc::setns(std::os::fd::AsRawFd::as_raw_fd(&f), libc::CLONE_NEWNET) };
                assert_eq!(r, 0, "setns: {}", std::io::Error::last_os_error());
                Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::from(IPPROTO_RAW)))
                    .expect("raw socket")
            })
            .join()
            .unwrap()
    })
}

/// One UDP datagram to `to` as if from `from`, header written here.
fn forge(raw: &Socket, from: (Ipv4Addr, u16), to: (Ipv4Addr, u16), payload: &[u8]) {
    let udp_len = 8 + payload.len();
    let mut packet = vec![0x45, 0];
    packet.extend_from_slice(&((20 + udp_len) as u16).to_be_bytes());
    // Identification, fragment offset, TTL 64, protocol 17 (UDP), checksum left to the kernel.
    packet.extend_from_slice(&[0, 0, 0, 0, 64, 17, 0, 0]);
    packet.extend_from_slice(&from.0.octets());
    packet.extend_from_slice(&to.0.octets());
    packet.extend_from_slice(&from.1.to_be_bytes());
    packet.extend_from_slice(&to.1.to_be_bytes());
    // UDP checksum 0: none, which IPv4 allows.
    packet.extend_from_slice(&(udp_len as u16).to_be_bytes());
    packet.extend_from_slice(&[0, 0]);
    packet.extend_from_slice(payload);
    let _ = raw.send_to(
        &packet,
        &SockAddr::from(std::net::SocketAddr::from((to.0, 0))),
    );
}

/// What a flood sends: netecho's READ (version 2, as `get` sends it) or TFTP's RRQ with
/// an option, both for big.bin.
#[derive(Clone, Copy)]
enum Kind {
    Netecho,
    Tftp,
}

/// Forged requests from addresses .100 to .249 of the client's subnet (no host there
/// answers, so every request waits for a proof that never comes) until `stop`; `sent`
/// counts them.
fn flood(
    raw: Socket,
    to: (Ipv4Addr, u16),
    kind: Kind,
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
) {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    while !stop.load(Ordering::Relaxed) {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let payload = match kind {
            Kind::Netecho => {
                let mut p = vec![0, 9, 0, 8, 0x05, 0x80];
                p.extend_from_slice(&state.to_be_bytes());
                p.extend_from_slice(b"big.bin");
                p.resize(50, 0);
                p
            }
            Kind::Tftp => b"\x00\x01big.bin\x00octet\x00blksize\x00512\x00".to_vec(),
        };
        let host = 100 + (state % 150) as u8;
        let port = 1024 + (state >> 16) as u16 % 60000;
        forge(&raw, (Ipv4Addr::new(10, 234, 0, host), port), to, &payload);
        sent.fetch_add(1, Ordering::Relaxed);
        thread::sleep(Duration::from_millis(1000 / FLOOD_RATE));
    }
}

/// While a forged flood of `kind` runs, three `get --proto udp` from the client's
/// namespace each fetch big.bin whole.
fn gets_go_through_a_flood_of(kind: Kind, tag: &str, test: &str) {
    let Some(pair) = Pair::new(tag, test) else {
        return;
    };
    if !can_open_raw(test) {
        return;
    }
    let dir = tempdir();
    let body: Vec<u8> = (0..200_000usize).map(|i| (i * 7 + i / 251) as u8).collect();
    fs::write(dir.path().join("big.bin"), &body).unwrap();
    let addr = format!("{}:0", Pair::SERVER_V4);
    let args = ["serve", "--proto", "udp", "--addr", &addr, "--files"];
    let server = Server::start_with(pair.server_cmd(&args).arg(dir.path()));
    let port = server.port();
    let to = (Pair::SERVER_V4.parse().unwrap(), port);
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let raw = raw_in(&pair.client);
    let flooding = {
        let (stop, sent) = (Arc::clone(&stop), Arc::clone(&sent));
        thread::spawn(move || flood(raw, to, kind, stop, sent))
    };
    // The flood under way, however slowly a loaded machine sends it: a request for each of
    // the server's 32 request threads, more than it can hold (unproven TFTP may hold 8).
    common::eventually("the flood under way", || {
        (sent.load(Ordering::Relaxed) >= 32).then_some(())
    });
    let out = tempdir();
    let target = format!("{}:{port}", Pair::SERVER_V4);
    let mut failures = Vec::new();
    for i in 0..3 {
        let got = out.path().join(format!("got{i}"));
        let child = pair
            .client_cmd(&["get", "--proto", "udp", &target, "big.bin", "-o", s(&got)])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start netecho get");
        let o = output_within(child, "get through the flood", GET_LIMIT);
        if !o.status.success() || fs::read(&got).ok().as_ref() != Some(&body) {
            failures.push(String::from_utf8_lossy(&o.stderr).into_owned());
        }
    }
    stop.store(true, Ordering::Relaxed);
    flooding.join().unwrap();
    let log = server.stderr();
    assert!(
        failures.is_empty(),
        "{} of 3 gets failed during the flood: {failures:#?}\nserver log:\n{log}",
        failures.len()
    );
}

#[test]
fn a_get_goes_through_a_flood_of_forged_netecho_requests() {
    let test = "a_get_goes_through_a_flood_of_forged_netecho_requests";
    gets_go_through_a_flood_of(Kind::Netecho, "un", test);
}

#[test]
fn a_get_goes_through_a_flood_of_forged_tftp_requests() {
    let test = "a_get_goes_through_a_flood_of_forged_tftp_requests";
    gets_go_through_a_flood_of(Kind::Tftp, "ut", test);
}

/// Every datagram that reaches `sock` within `wait` (at most 100).
fn heard(sock: &UdpSocket, wait: Duration) -> Vec<Vec<u8>> {
    let deadline = std::time::Instant::now() + wait;
    let mut got = Vec::new();
    let mut buf = [0u8; 2048];
    while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
        sock.set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .unwrap();
        match sock.recv_from(&mut buf) {
            Ok((n, _)) if got.len() < 100 => got.push(buf[..n].to_vec()),
            _ => break,
        }
    }
    got
}

#[test]
fn a_silent_tftp_client_is_sent_no_more_than_its_request_in_all() {
    let dir = tempdir();
    fs::write(dir.path().join("f"), b"some bytes").unwrap();
    let server = files_server("udp", dir.path(), &[]);
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let request = b"\x00\x01f\x00octet\x00tsize\x000\x00blksize\x00512\x00";
    sock.send_to(request, format!("127.0.0.1:{}", server.port()))
        .unwrap();
    // Once the server gave up waiting for the client's answer, all it sent is queued here.
    server.wait_log("no answer within");
    let answers = heard(&sock, Duration::from_millis(200));
    let sent: usize = answers.iter().map(Vec::len).sum();
    assert!(
        !answers.is_empty() && sent <= request.len(),
        "{sent} bytes in {} answers to a {}-byte request: {answers:?}",
        answers.len(),
        request.len()
    );
}

/// The ERROR a loopback client hears for `request`.
fn error_for(server: &Server, request: &[u8]) -> String {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.send_to(request, format!("127.0.0.1:{}", server.port()))
        .unwrap();
    sock.set_read_timeout(Some(common::STEP)).unwrap();
    let mut buf = [0u8; 2048];
    let n = sock.recv(&mut buf).expect("an answer");
    let error = &buf[..n];
    assert!(error.starts_with(b"\x00\x05"), "{error:?}");
    String::from_utf8_lossy(&error[4..])
        .trim_end_matches('\0')
        .to_string()
}

#[test]
fn a_tftp_client_on_this_host_hears_the_whole_refusal() {
    let dir = tempdir();
    fs::write(dir.path().join("ok.bin"), b"here").unwrap();
    let server = files_server("udp", dir.path(), &["--upload", "--max-file", "1000"]);
    let exists = error_for(&server, b"\x00\x02ok.bin\x00octet\x00");
    assert!(exists.contains("'ok.bin' already exists"), "{exists:?}");
    let big = error_for(&server, b"\x00\x02n\x00octet\x00tsize\x0099999\x00");
    assert!(
        big.contains("99999 bytes is over the 1000-byte limit"),
        "{big:?}"
    );
    let missing = error_for(&server, b"\x00\x01nothing.bin\x00octet\x00");
    assert!(missing.contains("not found: 'nothing.bin'"), "{missing:?}");
}
