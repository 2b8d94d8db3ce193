//! A progress line on stderr while a timed run goes on, only when stderr is a terminal, so
//! logs and pipes never see it. The status line is owned here: it is drawn with [`status`],
//! and every other line to stderr (a log line, the last error) is written through [`above`],
//! which clears it first and draws it again after, so that no line is glued to it.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

/// The status line stderr shows now, without a newline after it; empty when none.
static STATUS: Mutex<String> = Mutex::new(String::new());

fn shown() -> MutexGuard<'static, String> {
    STATUS.lock().unwrap_or_else(|e| e.into_inner())
}

/// Shows `line` as the status line on a terminal, in place of the one before; "" clears it.
/// A pipe or a file never gets one.
pub(crate) fn status(line: &str) {
    let mut shown = shown();
    let mut err = std::io::stderr().lock();
    if !err.is_terminal() {
        return;
    }
    let _ = write!(err, "\r\x1b[2K{line}");
    let _ = err.flush();
    line.clone_into(&mut shown);
}

/// Runs `write`, which writes whole lines to stderr, with the status line cleared before
/// and drawn again after: a line written after a status line (which has no newline) would
/// otherwise start on its line, glued to it and wider than the terminal.
pub(crate) fn above<T>(write: impl FnOnce() -> T) -> T {
    let shown = shown();
    if shown.is_empty() {
        return write();
    }
    // Held (it is reentrant) so that no other thread writes between the three.
    let mut err = std::io::stderr().lock();
    let _ = write!(err, "\r\x1b[2K");
    let written = write();
    let _ = write!(err, "{shown}");
    let _ = err.flush();
    written
}

/// Redraws the line every [`TICK`] until dropped.
pub(crate) struct Progress {
    done: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

const TICK: Duration = Duration::from_millis(200);
const WIDTH: usize = 30;

impl Progress {
    /// Starts a bar for `label`, expected to take `total`.
    pub(crate) fn start(label: String, total: Duration) -> Progress {
        let done = Arc::new(AtomicBool::new(false));
        let thread = std::io::stderr()
            .is_terminal()
            .then(|| {
                let done = Arc::clone(&done);
                // No thread (the OS refused one): no bar, the run goes on.
                thread::Builder::new()
                    .name("progress".into())
                    .spawn(move || {
                        let start = Instant::now();
                        while !done.load(Ordering::Relaxed) {
                            let elapsed = start.elapsed();
                            let part =
                                (elapsed.as_secs_f64() / total.as_secs_f64().max(1e-3)).min(1.0);
                            let filled = (part * WIDTH as f64) as usize;
                            status(&format!(
                                "{label} [{}{}] {:.1}/{:.1} s",
                                "=".repeat(filled),
                                " ".repeat(WIDTH - filled),
                                elapsed.as_secs_f64(),
                                total.as_secs_f64()
                            ));
                            thread::sleep(TICK);
                        }
                        status("");
                    })
                    .ok()
            })
            .flatten();
        Progress { done, thread }
    }
}

/// The bytes of a transfer: done so far, and the total once known (0 while unknown).
#[derive(Default)]
pub(crate) struct Bytes {
    pub done: std::sync::atomic::AtomicU64,
    pub total: std::sync::atomic::AtomicU64,
}

/// A shared count of bytes, for [`Progress::start_bytes`].
pub(crate) type Counter = Arc<Bytes>;

impl Progress {
    /// Starts a bar for a transfer of `total` bytes (0: not known yet); the caller stores the
    /// bytes done, and the total when it learns it, in the counter. Drawn only once the
    /// transfer has taken a second.
    pub(crate) fn start_bytes(label: String, total: u64) -> (Progress, Counter) {
        let counter: Counter = Arc::default();
        counter.total.store(total, Ordering::Relaxed);
        let done = Arc::new(AtomicBool::new(false));
        let thread = std::io::stderr()
            .is_terminal()
            .then(|| {
                let (done, counter) = (Arc::clone(&done), Arc::clone(&counter));
                // No thread (the OS refused one): no bar, the transfer goes on.
                thread::Builder::new()
                    .name("progress".into())
                    .spawn(move || {
                        let start = Instant::now();
                        let mut drawn = false;
                        while !done.load(Ordering::Relaxed) {
                            thread::sleep(TICK);
                            if start.elapsed() < Duration::from_secs(1) {
                                continue;
                            }
                            drawn = true;
                            let bytes = counter.done.load(Ordering::Relaxed);
                            let total = counter.total.load(Ordering::Relaxed);
                            status(&bytes_line(&label, bytes, total, start.elapsed()));
                        }
                        if drawn {
                            status("");
                        }
                    })
                    .ok()
            })
            .flatten();
        (Progress { done, thread }, counter)
    }
}

/// One redraw of a transfer's line: the bytes so far and the rate; with a known total also
/// the bar, the percentage and the time left at the rate so far.
pub(crate) fn bytes_line(label: &str, bytes: u64, total: u64, elapsed: Duration) -> String {
    let secs = elapsed.as_secs_f64().max(1e-3);
    let rate = bytes as f64 / secs;
    let (mb, mbps) = (bytes as f64 / 1e6, rate / 1e6);
    if total == 0 {
        return format!("{label} {mb:.1} MB {mbps:.1} MB/s");
    }
    let part = (bytes as f64 / total as f64).min(1.0);
    let filled = ((part * WIDTH as f64) as usize).min(WIDTH);
    let eta = match rate > 0.0 {
        true => format!("{:.0} s left", total.saturating_sub(bytes) as f64 / rate),
        false => "time left unknown".into(),
    };
    format!(
        "{label} [{}{}] {:3.0}% {mb:.1}/{:.1} MB {mbps:.1} MB/s, {eta}",
        "=".repeat(filled),
        " ".repeat(WIDTH - filled),
        part * 100.0,
        total as f64 / 1e6
    )
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.done.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_known_total_gives_percent_rate_and_time_left() {
        let line = bytes_line("put x", 2_000_000, 8_000_000, Duration::from_secs(2));
        assert_eq!(
            line,
            "put x [=======                       ]  25% 2.0/8.0 MB 1.0 MB/s, 6 s left"
        );
        let unknown = bytes_line("get x", 3_000_000, 0, Duration::from_secs(1));
        assert_eq!(unknown, "get x 3.0 MB 3.0 MB/s");
    }
}
