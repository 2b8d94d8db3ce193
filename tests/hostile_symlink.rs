//! A local user who can write in DIR swaps a subdirectory for a symlink out of DIR in a loop
//! while a client asks for a file in it: no byte from outside DIR is ever served.

mod common;

use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{STEP, Server, tempdir};

const SECRET: &[u8] = b"OUTSIDE-DIR-SECRET";

/// One GET over the stream protocol: the whole reply, raw.
fn get(addr: &str, name: &str) -> Vec<u8> {
    let mut conn = TcpStream::connect(addr).unwrap();
    conn.set_read_timeout(Some(STEP)).unwrap();
    let request = format!("GET {name}");
    conn.write_all(&(request.len() as u32).to_be_bytes())
        .unwrap();
    conn.write_all(request.as_bytes()).unwrap();
    let mut reply = Vec::new();
    let _ = conn.read_to_end(&mut reply);
    reply
}

#[test]
fn a_symlink_swapped_in_during_gets_never_serves_a_file_outside_dir() {
    let (dir, outside) = (tempdir(), tempdir());
    let sub = dir.path().join("sub");
    let held = dir.path().join("held");
    fs::create_dir(&sub).unwrap();
    fs::write(sub.join("file"), b"inside").unwrap();
    fs::write(outside.path().join("file"), SECRET).unwrap();
    let server = Server::start(&[
        "--proto",
        "tcp",
        "--addr",
        "127.0.0.1:0",
        "--model",
        "threads",
        "--files",
        dir.path().to_str().unwrap(),
    ]);
    let stop = Arc::new(AtomicBool::new(false));
    let swapper = {
        let (stop, out) = (Arc::clone(&stop), outside.path().to_path_buf());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                fs::rename(&sub, &held).unwrap();
                std::os::unix::fs::symlink(&out, &sub).unwrap();
                std::thread::yield_now();
                fs::remove_file(&sub).unwrap();
                fs::rename(&held, &sub).unwrap();
            }
        })
    };
    // Bounded in time and count: long enough for the race to show on a busy machine.
    let started = Instant::now();
    let (mut gets, mut inside, mut leaked) = (0, 0, 0);
    while gets < 20_000 && started.elapsed() < Duration::from_secs(4) {
        let reply = get(&server.addr, "sub/file");
        gets += 1;
        if reply.windows(SECRET.len()).any(|w| w == SECRET) {
            leaked += 1;
        } else if reply.windows(6).any(|w| w == b"inside") {
            inside += 1;
        }
    }
    stop.store(true, Ordering::Relaxed);
    swapper.join().unwrap();
    assert_eq!(
        leaked, 0,
        "{leaked} of {gets} GETs served the file outside DIR"
    );
    assert!(
        inside > 0,
        "no GET of {gets} was served at all: the test proves nothing"
    );
}

#[test]
fn a_hard_link_to_a_file_outside_dir_is_served_only_with_follow_hardlinks() {
    let (dir, outside) = (tempdir(), tempdir());
    fs::write(outside.path().join("secret"), SECRET).unwrap();
    fs::hard_link(outside.path().join("secret"), dir.path().join("linked")).unwrap();
    let serve = |extra: &[&str]| {
        let mut args = vec![
            "--proto",
            "tcp",
            "--addr",
            "127.0.0.1:0",
            "--files",
            dir.path().to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        Server::start(&args)
    };
    let server = serve(&[]);
    let reply = get(&server.addr, "linked");
    assert!(!reply.windows(SECRET.len()).any(|w| w == SECRET));
    assert!(String::from_utf8_lossy(&reply).contains("hard links"));
    let told = serve(&["--follow-hardlinks"]);
    let reply = get(&told.addr, "linked");
    assert!(reply.windows(SECRET.len()).any(|w| w == SECRET));
}
