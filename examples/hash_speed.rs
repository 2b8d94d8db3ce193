//! How fast one core hashes with each hash netecho's file transfers can end with, fed as
//! the stream protocol feeds it (60 KiB at a time): the measurement behind BLAKE3.
//!
//!     cargo run --release --example hash_speed

use std::time::Instant;

use sha2::Digest;

fn main() {
    let buf = vec![7u8; 64 << 20];
    let chunk = 60 * 1024;
    let total = 4 * buf.len();
    let rate = |t: Instant| total as f64 / t.elapsed().as_secs_f64() / 1e6;
    for round in 1..=3 {
        let t = Instant::now();
        let mut sha = sha2::Sha256::new();
        for _ in 0..4 {
            buf.chunks(chunk).for_each(|c| sha.update(c));
        }
        std::hint::black_box(sha.finalize());
        let sha = rate(t);
        let t = Instant::now();
        let mut blake = blake3::Hasher::new();
        for _ in 0..4 {
            buf.chunks(chunk).for_each(|c| {
                blake.update(c);
            });
        }
        std::hint::black_box(blake.finalize());
        let blake = rate(t);
        println!("round {round}: SHA-256 {sha:.0} MB/s, BLAKE3 {blake:.0} MB/s (one core)");
    }
}
