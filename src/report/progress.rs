//! A progress line on stderr while a timed run goes on, only when stderr is a terminal, so
//! logs and pipes never see it.

use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

/// Redraws the line every [`TICK`] until dropped.
pub struct Progress {
    done: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

const TICK: Duration = Duration::from_millis(200);
const WIDTH: usize = 30;

impl Progress {
    /// Starts a bar for `label`, expected to take `total`.
    pub fn start(label: String, total: Duration) -> Progress {
        let done = Arc::new(AtomicBool::new(false));
        let thread = std::io::stderr().is_terminal().then(|| {
            let done = Arc::clone(&done);
            thread::spawn(move || {
                let start = Instant::now();
                while !done.load(Ordering::Relaxed) {
                    let elapsed = start.elapsed();
                    let part = (elapsed.as_secs_f64() / total.as_secs_f64().max(1e-3)).min(1.0);
                    let filled = (part * WIDTH as f64) as usize;
                    let mut err = std::io::stderr().lock();
                    let _ = write!(
                        err,
                        "\r{label} [{}{}] {:.1}/{:.1} s",
                        "=".repeat(filled),
                        " ".repeat(WIDTH - filled),
                        elapsed.as_secs_f64(),
                        total.as_secs_f64()
                    );
                    let _ = err.flush();
                    drop(err);
                    thread::sleep(TICK);
                }
                let _ = write!(std::io::stderr(), "\r\x1b[2K");
            })
        });
        Progress { done, thread }
    }
}

/// A shared count of bytes done, for [`Progress::start_bytes`].
pub type Counter = Arc<std::sync::atomic::AtomicU64>;

impl Progress {
    /// Starts a bar for a transfer of `total` bytes; the caller stores the bytes done in the
    /// counter. Drawn only once the transfer has taken a second.
    pub fn start_bytes(label: String, total: u64) -> (Progress, Counter) {
        let counter: Counter = Arc::default();
        let done = Arc::new(AtomicBool::new(false));
        let thread = std::io::stderr().is_terminal().then(|| {
            let (done, counter) = (Arc::clone(&done), Arc::clone(&counter));
            thread::spawn(move || {
                let start = Instant::now();
                let mut drawn = false;
                while !done.load(Ordering::Relaxed) {
                    thread::sleep(TICK);
                    if start.elapsed() < Duration::from_secs(1) {
                        continue;
                    }
                    drawn = true;
                    let bytes = counter.load(Ordering::Relaxed);
                    let rate = bytes as f64 / 1e6 / start.elapsed().as_secs_f64();
                    let mb = bytes as f64 / 1e6;
                    // A download's size is not known to every protocol up front: then
                    // only the bytes so far and the rate.
                    let _ = if total == 0 {
                        write!(std::io::stderr(), "\r{label} {mb:.1} MB {rate:.1} MB/s")
                    } else {
                        let part = bytes as f64 / total as f64;
                        let filled = ((part * WIDTH as f64) as usize).min(WIDTH);
                        write!(
                            std::io::stderr(),
                            "\r{label} [{}{}] {mb:.1}/{:.1} MB {rate:.1} MB/s",
                            "=".repeat(filled),
                            " ".repeat(WIDTH - filled),
                            total as f64 / 1e6
                        )
                    };
                }
                if drawn {
                    let _ = write!(std::io::stderr(), "\r\x1b[2K");
                }
            })
        });
        (Progress { done, thread }, counter)
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.done.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
