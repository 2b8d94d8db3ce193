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
