//! Log lines on stderr through `tracing`; stdout is kept for what scripts read.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// How much goes to stderr.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct LogConfig {
    /// Only warnings and errors.
    pub quiet: bool,
    /// More lines: 1 for each message, 2 for each read.
    pub verbose: u8,
}

/// `-q` shows warnings and errors, the default adds one line per client, `-v` adds each
/// message, `-vv` each read. RUST_LOG, when set, decides instead.
pub(crate) fn init(args: LogConfig) {
    let level = match (args.quiet, args.verbose) {
        (true, _) => "warn",
        (false, 0) => "info",
        (false, 1) => "debug",
        (false, _) => "trace",
    };
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(format!("netecho={level}")));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(|| OneLine(std::io::stderr()))
        .with_target(false)
        .with_ansi(std::io::stderr().is_terminal() && !no_color())
        .without_time()
        // A log line that cannot be written (stderr a closed pipe) is dropped: the default
        // reports it on stderr, which panics there, and a panic in clean-up aborts it.
        .log_internal_errors(false)
        .init();
}

/// NO_COLOR set to anything but empty turns colour off (no-color.org); clap's help and
/// errors follow the same variable through anstream.
pub(crate) fn no_color() -> bool {
    std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty())
}

/// Writes each log line as one line: a newline or carriage return inside it (a file name
/// or a Unix peer's address chosen by a client) is written as `\n` or `\r`, so no client
/// can forge a line of the server's log. tracing writes each event in one call.
struct OneLine(std::io::Stderr);

impl std::io::Write for OneLine {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let (body, end) = match buf.strip_suffix(b"\n") {
            Some(body) => (body, &b"\n"[..]),
            None => (buf, &b""[..]),
        };
        if !body.iter().any(|&b| b == b'\n' || b == b'\r') {
            self.0.write_all(buf)?;
            return Ok(buf.len());
        }
        let mut out = Vec::with_capacity(buf.len() + 8);
        for &b in body {
            match b {
                b'\n' => out.extend_from_slice(b"\\n"),
                b'\r' => out.extend_from_slice(b"\\r"),
                b => out.push(b),
            }
        }
        out.extend_from_slice(end);
        self.0.write_all(&out)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

/// At most [`Throttle::PER_SECOND`] lines a second from one place in the code, for lines a
/// peer can cause at will (a flood of requests, each refused): the next line after a pause
/// says how many were left out. [`Throttle::at_most`] bounds other work a peer causes at
/// will the same way.
pub(crate) struct Throttle {
    /// When the current second began, and the lines logged in it.
    window: std::sync::Mutex<Option<(std::time::Instant, u32)>>,
    skipped: std::sync::atomic::AtomicU64,
    limit: u32,
}

impl Throttle {
    /// Lines a second: a user's own few refusals are all logged, a flood is not.
    pub(crate) const PER_SECOND: u32 = 10;

    pub(crate) const fn new() -> Throttle {
        Throttle::at_most(Self::PER_SECOND)
    }

    /// At most `limit` a second.
    pub(crate) const fn at_most(limit: u32) -> Throttle {
        Throttle {
            window: std::sync::Mutex::new(None),
            skipped: std::sync::atomic::AtomicU64::new(0),
            limit,
        }
    }

    /// `Some(words)` to append to the line when it may be logged now (empty, or how many
    /// like it were left out before it), `None` when it is left out.
    pub(crate) fn allow(&self) -> Option<String> {
        use std::sync::atomic::Ordering::Relaxed;
        let mut window = self.window.lock().unwrap_or_else(|e| e.into_inner());
        let now = std::time::Instant::now();
        match &mut *window {
            Some((start, count)) if now.duration_since(*start).as_secs() < 1 => {
                if *count >= self.limit {
                    self.skipped.fetch_add(1, Relaxed);
                    return None;
                }
                *count += 1;
            }
            other => *other = Some((now, 1)),
        }
        Some(match self.skipped.swap(0, Relaxed) {
            0 => String::new(),
            n => format!(" ({n} more like it left out of the log)"),
        })
    }
}
