//! Log lines on stderr through `tracing`; stdout is kept for what scripts read.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// How much goes to stderr.
#[derive(Clone, Copy, Debug, Default)]
pub struct LogConfig {
    /// Only warnings and errors.
    pub quiet: bool,
    /// More lines: 1 for each message, 2 for each read.
    pub verbose: u8,
}

/// `-q` shows warnings and errors, the default adds one line per client, `-v` adds each
/// message, `-vv` each read. RUST_LOG, when set, decides instead.
pub fn init(args: LogConfig) {
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
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::stderr().is_terminal() && !no_color())
        .without_time()
        .init();
}

/// NO_COLOR set to anything but empty turns colour off (no-color.org); clap's help and
/// errors follow the same variable through anstream.
pub fn no_color() -> bool {
    std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty())
}
