//! A load client that is not netecho's: tokio, one task per connection, one request in
//! flight per connection (ping-pong), every reply checked byte for byte against the request
//! upper-cased. A reply that is wrong, cut short or later than the timeout is an error, and
//! so is a connection that cannot be made: a server that drops requests cannot look fast.
//!
//!   tokio_load ADDR CLIENTS SIZE SECONDS
//!
//! Prints one line bench/models.sh parses:
//!   requests=N rps=R p50_us=A p99_us=B errors=E refused=F

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Barrier;

/// How long a reply may take before it counts as missing.
const REPLY_TIMEOUT: Duration = Duration::from_secs(5);

/// What one connection did.
#[derive(Default)]
struct Tally {
    latencies_us: Vec<u32>,
    errors: u64,
    refused: u64,
}

fn usage() -> ! {
    eprintln!("usage: tokio_load ADDR CLIENTS SIZE SECONDS");
    std::process::exit(2);
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [addr, clients, size, secs] = args.as_slice() else {
        usage()
    };
    let (Ok(clients), Ok(size), Ok(secs)) = (
        clients.parse::<usize>(),
        size.parse::<usize>(),
        secs.parse::<f64>(),
    ) else {
        usage()
    };
    let duration = Duration::from_secs_f64(secs);
    // Every connection is made before the clock starts.
    let barrier = Arc::new(Barrier::new(clients + 1));
    let mut tasks = Vec::with_capacity(clients);
    for id in 0..clients {
        let (addr, barrier) = (addr.clone(), Arc::clone(&barrier));
        tasks.push(tokio::spawn(async move {
            let conn = TcpStream::connect(&addr).await;
            barrier.wait().await;
            match conn {
                Ok(conn) => client(conn, id, size, duration).await,
                Err(_) => Tally {
                    refused: 1,
                    ..Tally::default()
                },
            }
        }));
    }
    barrier.wait().await;
    let started = Instant::now();
    let mut all = Tally::default();
    for task in tasks {
        let tally = task.await.unwrap_or(Tally {
            errors: 1,
            ..Tally::default()
        });
        all.latencies_us.extend(tally.latencies_us);
        all.errors += tally.errors;
        all.refused += tally.refused;
    }
    let elapsed = started.elapsed().as_secs_f64().max(duration.as_secs_f64());
    all.latencies_us.sort_unstable();
    let n = all.latencies_us.len();
    let pct = |p: f64| match n {
        0 => 0,
        _ => all.latencies_us[((n as f64 * p) as usize).min(n - 1)],
    };
    println!(
        "requests={n} rps={:.0} p50_us={} p99_us={} errors={} refused={}",
        n as f64 / elapsed,
        pct(0.50),
        pct(0.99),
        all.errors,
        all.refused
    );
}

/// Ping-pong on one connection until `duration` has passed; stops at the first error.
async fn client(mut conn: TcpStream, id: usize, size: usize, duration: Duration) -> Tally {
    let _ = conn.set_nodelay(true);
    let mut tally = Tally::default();
    let mut request = vec![0u8; size];
    let mut expected = vec![0u8; size];
    let mut reply = vec![0u8; size];
    let end = Instant::now() + duration;
    let mut round = 0usize;
    while Instant::now() < end {
        for (i, b) in request.iter_mut().enumerate() {
            *b = b'a' + ((i + id + round) % 26) as u8;
        }
        expected.copy_from_slice(&request);
        expected.make_ascii_uppercase();
        let sent = Instant::now();
        let exchange = async {
            conn.write_all(&request).await?;
            conn.read_exact(&mut reply).await?;
            Ok::<_, std::io::Error>(())
        };
        match tokio::time::timeout(REPLY_TIMEOUT, exchange).await {
            Ok(Ok(())) if reply == expected => {
                tally.latencies_us.push(sent.elapsed().as_micros() as u32);
            }
            _ => {
                tally.errors += 1;
                return tally;
            }
        }
        round += 1;
    }
    tally
}
