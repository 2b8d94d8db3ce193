//! A local user who can write in DIR swaps a subdirectory for a symlink out of DIR in a loop
//! while `netecho put` uploads into that subdirectory: no file is ever written outside DIR,
//! over a stream and over datagrams.

mod common;

use std::fs;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{Server, bin, tempdir};

/// Uploads at most, and for at most this long, in all: long enough for the race to show on
/// a busy machine.
const UPLOADS: usize = 3_000;
const FOR: Duration = Duration::from_secs(6);
const UPLOADERS: usize = 4;

/// Swaps `sub` for a symlink to `out` and back until `stop`; returns how many swaps.
fn swapper(
    sub: std::path::PathBuf,
    held: std::path::PathBuf,
    out: std::path::PathBuf,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<usize> {
    std::thread::Builder::new()
        .name("swapper".into())
        .spawn(move || {
            let started = Instant::now();
            let mut swaps = 0;
            // Bounded by time as well, should the uploaders never say stop.
            while !stop.load(Ordering::Relaxed) && started.elapsed() < FOR * 3 {
                fs::rename(&sub, &held).unwrap();
                std::os::unix::fs::symlink(&out, &sub).unwrap();
                std::thread::yield_now();
                fs::remove_file(&sub).unwrap();
                fs::rename(&held, &sub).unwrap();
                swaps += 1;
                // In place about half the time, so that uploads also get through.
                std::thread::sleep(Duration::from_micros(100));
            }
            swaps
        })
        .unwrap()
}

/// `netecho put` of `local` as `name`, over and over from a few threads, within the bounds;
/// returns how many uploads were stored.
fn upload_many(proto: &str, addr: &str, local: &Path) -> usize {
    let started = Instant::now();
    let (next, stored) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let threads: Vec<_> = (0..UPLOADERS)
        .map(|t| {
            let (next, stored) = (Arc::clone(&next), Arc::clone(&stored));
            let (proto, addr, local) = (proto.to_string(), addr.to_string(), local.to_owned());
            std::thread::Builder::new()
                .name(format!("uploader {t}"))
                .spawn(move || {
                    while started.elapsed() < FOR {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= UPLOADS {
                            return;
                        }
                        let out = common::run(
                            Command::new(bin()).args([
                                "put",
                                "--proto",
                                &proto,
                                &addr,
                                local.to_str().unwrap(),
                                &format!("sub/up-{i}"),
                            ]),
                            b"",
                        );
                        if out.status.success() {
                            stored.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                })
                .unwrap()
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    stored.load(Ordering::Relaxed)
}

fn uploads_race_a_symlink_swap(proto: &str, addr: &str) {
    let (dir, outside, source) = (tempdir(), tempdir(), tempdir());
    let sub = dir.path().join("sub");
    fs::create_dir(&sub).unwrap();
    let local = source.path().join("up");
    fs::write(&local, b"uploaded").unwrap();
    let server = Server::start(&[
        "--proto",
        proto,
        "--addr",
        addr,
        "--model",
        "threads",
        "--files",
        dir.path().to_str().unwrap(),
        "--upload",
    ]);
    let stop = Arc::new(AtomicBool::new(false));
    let swapping = swapper(
        sub.clone(),
        dir.path().join("held"),
        outside.path().to_path_buf(),
        Arc::clone(&stop),
    );
    let stored = upload_many(proto, &server.addr, &local);
    stop.store(true, Ordering::Relaxed);
    let swaps = swapping.join().unwrap();
    let escaped: Vec<String> = fs::read_dir(outside.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        escaped.is_empty(),
        "{} files written outside DIR ({stored} uploads stored, {swaps} swaps): {escaped:?}",
        escaped.len()
    );
    let left: Vec<String> = fs::read_dir(&sub)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".part"))
        .collect();
    assert!(left.is_empty(), "temporary files left in DIR/sub: {left:?}");
    assert!(
        stored > 0 && swaps > 0,
        "{stored} uploads stored, {swaps} swaps: the test proves nothing"
    );
}

#[test]
fn uploads_over_tcp_never_write_outside_dir_while_a_symlink_is_swapped_in() {
    uploads_race_a_symlink_swap("tcp", "127.0.0.1:0");
}

#[test]
fn uploads_over_udp_never_write_outside_dir_while_a_symlink_is_swapped_in() {
    uploads_race_a_symlink_swap("udp", "127.0.0.1:0");
}
