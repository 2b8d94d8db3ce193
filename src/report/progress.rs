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

impl Drop for Progress {
    fn drop(&mut self) {
        self.done.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
