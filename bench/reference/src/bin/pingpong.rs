//! A blocking ping-pong client for bench/peers.sh, measuring as `sockperf pp` does: one
//! message in flight, a send and then a blocking recv (SO_RCVTIMEO), each round trip timed.
//! Its messages carry sockperf's header (sequence, flags, length), so `sockperf sr` answers
//! them; it takes a reply with the client flag cleared (sockperf sr's answer) or unchanged (an
//! echo's), so one client measures both servers. `sockperf pp` itself cannot measure an
//! echo: it drops every reply whose client flag is still set, taking it for another client's.
//!
//!   pingpong tcp|udp ADDR SIZE SECS [COUNT]
//!
//! prints `round_trips=N mean_us=A p50_us=B p99_us=C` (the first 200 ms left out, as warm-up);
//! with COUNT it stops after COUNT round trips (SECS, if it ends first) and leaves none out:
//! bench/instructions.sh counts a server's instructions for an exact number of round trips;
//! a wrong, short or missing reply ends it with one line on stderr and exit status 1.

use std::io::{self, Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::process::exit;
use std::time::{Duration, Instant};

/// sockperf's header: sequence (u64), flags (u16), length (u32), all big-endian.
const HEADER: usize = 14;
/// The low byte of the flags: bit 0 says a client sent it, bit 1 asks for an answer.
const FLAGS: usize = 9;
const CLIENT: u8 = 0x01;
const PONG_REQUEST: u8 = 0x02;
/// Round trips in the first WARM_UP are not counted (sockperf leaves out its first 400 ms).
const WARM_UP: Duration = Duration::from_millis(200);
/// A reply later than this ends the run: the server is gone or does not answer.
const REPLY_TIMEOUT: Duration = Duration::from_secs(2);
/// At most this many round trips are kept (80 MB of samples): longer runs stop counting.
const MAX_SAMPLES: usize = 10_000_000;

enum Sock {
    Tcp(TcpStream),
    Udp(UdpSocket),
}

impl Sock {
    fn connect(proto: &str, addr: &str) -> io::Result<Sock> {
        let sock = match proto {
            "tcp" => {
                let s = TcpStream::connect(addr)?;
                s.set_nodelay(true)?;
                s.set_read_timeout(Some(REPLY_TIMEOUT))?;
                Sock::Tcp(s)
            }
            _ => {
                let s = UdpSocket::bind("127.0.0.1:0")?;
                s.connect(addr)?;
                s.set_read_timeout(Some(REPLY_TIMEOUT))?;
                Sock::Udp(s)
            }
        };
        Ok(sock)
    }

    fn send(&mut self, msg: &[u8]) -> io::Result<()> {
        match self {
            Sock::Tcp(s) => s.write_all(msg),
            Sock::Udp(s) => s.send(msg).map(|_| ()),
        }
    }

    /// One reply of `want` bytes: read whole from the stream, or one datagram (into a buffer
    /// a byte longer, so a longer one shows).
    fn recv(&mut self, buf: &mut [u8], want: usize) -> io::Result<usize> {
        match self {
            Sock::Tcp(s) => s.read_exact(&mut buf[..want]).map(|()| want),
            Sock::Udp(s) => s.recv(buf),
        }
    }
}

fn fail(what: String) -> ! {
    eprintln!("pingpong: {what}");
    exit(1);
}

/// Whether `reply` answers `msg`: the same bytes, but for the client flag, which an echo keeps
/// and sockperf's server clears.
fn answers(msg: &[u8], reply: &[u8]) -> bool {
    reply.len() == msg.len()
        && reply[..FLAGS] == msg[..FLAGS]
        && reply[FLAGS] | CLIENT == msg[FLAGS]
        && reply[FLAGS + 1..] == msg[FLAGS + 1..]
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (proto, addr, size, secs, count) = match args.as_slice() {
        [p, a, s, t] => (p, a, s, t, u64::MAX),
        [p, a, s, t, n] => (
            p,
            a,
            s,
            t,
            n.parse()
                .unwrap_or_else(|_| fail(format!("COUNT '{n}': a number"))),
        ),
        _ => fail("usage: pingpong tcp|udp ADDR SIZE SECS [COUNT]".into()),
    };
    let size: usize = match size.parse() {
        Ok(n) if (HEADER..=65_000).contains(&n) => n,
        _ => fail(format!(
            "SIZE '{size}': a message of {HEADER} to 65000 bytes"
        )),
    };
    let secs: f64 = secs
        .parse()
        .unwrap_or_else(|_| fail(format!("SECS '{secs}': a number")));
    if proto != "tcp" && proto != "udp" {
        fail(format!("'{proto}': tcp or udp"));
    }
    let mut sock = Sock::connect(proto, addr).unwrap_or_else(|e| fail(format!("{addr}: {e}")));
    // A payload with no ASCII letters, after the header.
    let mut msg: Vec<u8> = (0..size).map(|i| b'0' + (i % 10) as u8).collect();
    msg[FLAGS - 1] = 0;
    msg[FLAGS] = CLIENT | PONG_REQUEST;
    msg[FLAGS + 1..HEADER].copy_from_slice(&(size as u32).to_be_bytes());
    let mut reply = vec![0u8; size + 1];
    let mut samples: Vec<u64> = Vec::new();
    let start = Instant::now();
    // A counted run keeps every round trip: its caller takes out a warm-up of its own.
    let warm_up = if count == u64::MAX {
        WARM_UP
    } else {
        Duration::ZERO
    };
    let end = start + Duration::from_secs_f64(secs) + warm_up;
    for seq in 1..=count {
        msg[..8].copy_from_slice(&seq.to_be_bytes());
        let t0 = Instant::now();
        if t0 >= end || samples.len() == MAX_SAMPLES {
            break;
        }
        sock.send(&msg)
            .unwrap_or_else(|e| fail(format!("send: {e}")));
        let n = sock
            .recv(&mut reply, size)
            .unwrap_or_else(|e| fail(format!("no reply to message {seq}: {e}")));
        let rtt = t0.elapsed();
        if !answers(&msg, &reply[..n]) {
            fail(format!(
                "message {seq}: the reply ({n} bytes) is not its echo"
            ));
        }
        if t0 >= start + warm_up {
            samples.push(rtt.as_nanos() as u64);
        }
    }
    report(&mut samples);
}

fn report(samples: &mut [u64]) {
    if samples.is_empty() {
        fail("no round trip after the warm-up".into());
    }
    samples.sort_unstable();
    let n = samples.len();
    let us = |ns: u64| ns as f64 / 1000.0;
    let mean = samples.iter().sum::<u64>() as f64 / n as f64 / 1000.0;
    println!(
        "round_trips={n} mean_us={mean:.1} p50_us={:.1} p99_us={:.1}",
        us(samples[n / 2]),
        us(samples[n * 99 / 100])
    );
}
