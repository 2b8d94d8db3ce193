//! Log lines on stderr through `tracing`; stdout is kept for what scripts read. On a
//! terminal, every line netecho writes to stderr (a log line, its last `error:`) is wrapped
//! to the terminal's width; to a pipe or a file, each stays one line for scripts to read.

use std::io::{IsTerminal, Write};

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
    let terminal = std::io::stderr().is_terminal();
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(format!("netecho={level}")));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(move || OneLine {
            stderr: std::io::stderr(),
            wrap: terminal,
        })
        .with_target(false)
        .with_ansi(terminal && !no_color())
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

/// What a level's tag takes of a log line: " INFO ", "ERROR ".
pub(crate) const LEVEL_TAG: usize = 6;

/// What the lines after a message's first are indented by, under its words.
pub(crate) const INDENT: &str = "  ";

/// The columns of the terminal on stderr (TIOCGWINSZ), else $COLUMNS, else 80.
pub(crate) fn width() -> usize {
    // SAFETY: TIOCGWINSZ writes a winsize into the struct it is given, nothing else.
    let mut size: libc::winsize = unsafe { std::mem::zeroed() };
    let asked = unsafe { libc::ioctl(libc::STDERR_FILENO, libc::TIOCGWINSZ, &mut size) };
    if asked == 0 && size.ws_col > 0 {
        return size.ws_col.into();
    }
    std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.trim().parse().ok())
        .filter(|&c: &usize| c > 0)
        .unwrap_or(crate::report::table::WIDTH)
}

/// `text` as lines of at most `width` columns, the ones after the first indented under its
/// words; words and a `backquoted command` that fits a line are kept whole.
pub(crate) fn lines(text: &str, width: usize) -> Vec<String> {
    crate::wrap::lines(text, "", INDENT, width)
}

/// Prints the `error: ` line a usage error or a failed command ends netecho with: one line,
/// whatever a name typed or a peer's words put in it, wrapped when a person reads it on a
/// terminal.
pub(crate) fn error(text: &str) {
    let line = format!("error: {}", crate::wrap::printable(text));
    // The last line: a status line still showing goes, not to be drawn under it again.
    crate::report::progress::status("");
    let text = match std::io::stderr().is_terminal() {
        true => lines(&line, width()).join("\n"),
        false => line,
    };
    // A closed stderr (`2>&1 | head -c 10`) leaves nowhere to say it: the exit status does.
    let _ = writeln!(std::io::stderr(), "{text}");
}

/// Writes each log line as one line: a newline or carriage return inside it (a file name
/// or a Unix peer's address chosen by a client) is written as `\n` or `\r`, so no client
/// can forge a line of the server's log, and every other control character escaped too
/// (tracing escapes those a terminal acts on, ESC among them, in what it is given, so an
/// ESC here begins its own colour codes). tracing writes each event in one call. On a
/// terminal (`wrap`), a line wider than it is wrapped, each part under the level's tag, and
/// a status line showing is cleared before it.
struct OneLine {
    stderr: std::io::Stderr,
    wrap: bool,
}

impl std::io::Write for OneLine {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let (body, end) = match buf.strip_suffix(b"\n") {
            Some(body) => (body, &b"\n"[..]),
            None => (buf, &b""[..]),
        };
        let mut out = escaped(body);
        if self.wrap && !end.is_empty() {
            out = wrapped(&String::from_utf8_lossy(&out), width()).into_bytes();
        }
        out.extend_from_slice(end);
        crate::report::progress::above(|| self.stderr.write_all(&out))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.stderr.flush()
    }
}

/// `body` with its control characters written as escapes (`\n`, `\t`, `\x01`), but ESC,
/// which begins tracing's colour codes.
fn escaped(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 8);
    for &b in body {
        match b {
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0x1b => out.push(b),
            b if b.is_ascii_control() => out.extend(format!("\\x{b:02x}").bytes()),
            b => out.push(b),
        }
    }
    out
}

/// A log line (its level's tag, perhaps coloured, then its message) within `width`
/// columns: as it is when it fits, else its message's lines each after the tag, without
/// colour inside the message. The parts are joined by line breaks, the last without one.
fn wrapped(line: &str, width: usize) -> String {
    if crate::wrap::columns(&plain(line)) <= width {
        return line.to_string();
    }
    let tag_end = visible_end(line, LEVEL_TAG);
    let (tag, message) = line.split_at(tag_end);
    lines(&plain(message), width.saturating_sub(LEVEL_TAG))
        .iter()
        .map(|part| format!("{tag}{part}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The byte offset in `line` after its first `count` visible characters (colour codes,
/// `ESC [ ... letter`, are not visible), and after the colour codes right after them.
fn visible_end(line: &str, count: usize) -> usize {
    let mut seen = 0;
    let mut chars = line.char_indices().peekable();
    while let Some(&(at, c)) = chars.peek() {
        if c == '\x1b' {
            chars.next();
            chars.by_ref().find(|(_, c)| c.is_ascii_alphabetic());
            continue;
        }
        if seen == count {
            return at;
        }
        seen += 1;
        chars.next();
    }
    line.len()
}

/// `text` without its colour codes.
fn plain(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            '\x1b' => {
                chars.by_ref().find(|c| c.is_ascii_alphabetic());
            }
            c => out.push(c),
        }
    }
    out
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
    /// Whether what it leaves out are log lines (counted for [`say_left_out`]).
    lines: bool,
}

/// Lines left out by every [`Throttle`] and not yet counted on a later line: said once when
/// a server stops ([`say_left_out`]), so a flood's end is not lost.
static UNCOUNTED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Logs how many lines throttles left out that no later line counted; nothing when none.
pub(crate) fn say_left_out() {
    let n = UNCOUNTED.swap(0, std::sync::atomic::Ordering::Relaxed);
    if n > 0 {
        tracing::warn!(
            "{n} more log lines like those above were left out (at most ten a second come \
             from one place a client can make log at will)"
        );
    }
}

impl Throttle {
    /// Lines a second: a user's own few refusals are all logged, a flood is not.
    pub(crate) const PER_SECOND: u32 = 10;

    pub(crate) const fn new() -> Throttle {
        Throttle {
            lines: true,
            ..Throttle::at_most(Self::PER_SECOND)
        }
    }

    /// At most `limit` a second, of work other than log lines.
    pub(crate) const fn at_most(limit: u32) -> Throttle {
        Throttle {
            window: std::sync::Mutex::new(None),
            skipped: std::sync::atomic::AtomicU64::new(0),
            limit,
            lines: false,
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
                    if self.lines {
                        UNCOUNTED.fetch_add(1, Relaxed);
                    }
                    return None;
                }
                *count += 1;
            }
            other => *other = Some((now, 1)),
        }
        Some(match self.skipped.swap(0, Relaxed) {
            0 => String::new(),
            n => {
                if self.lines {
                    // Never below zero: a stop may have said (and zeroed) them already.
                    let _ = UNCOUNTED.fetch_update(Relaxed, Relaxed, |u| Some(u.saturating_sub(n)));
                }
                format!(" ({n} more like it left out of the log)")
            }
        })
    }

    /// [`Throttle::allow`] for a debug line: `None`, and nothing counted as left out, when
    /// debug lines do not show (without -v).
    pub(crate) fn allow_debug(&self) -> Option<String> {
        tracing::enabled!(tracing::Level::DEBUG)
            .then(|| self.allow())
            .flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wide_log_line_is_wrapped_under_its_coloured_tag() {
        let line = format!("\x1b[32m INFO\x1b[0m {}", "word ".repeat(30).trim_end());
        let text = wrapped(&line, 40);
        let parts: Vec<&str> = text.split('\n').collect();
        assert!(parts.len() > 1, "{text}");
        for part in &parts {
            assert!(part.starts_with("\x1b[32m INFO\x1b[0m "), "{part:?}");
            assert!(plain(part).chars().count() <= 40, "{part:?}");
        }
        assert!(plain(parts[1]).starts_with(" INFO   word"), "{text}");
        assert_eq!(plain(&text).matches("word").count(), 30);
    }

    #[test]
    fn a_chinese_log_line_is_wrapped_to_the_columns_it_takes() {
        // Sixty-four characters, a hundred and fourteen columns: too wide, though short.
        let line = format!(" INFO closing {}", "中文".repeat(25));
        let text = wrapped(&line, 80);
        assert!(text.contains('\n'), "{text}");
        for part in text.split('\n') {
            assert!(crate::wrap::columns(part) <= 80, "{part:?}");
        }
    }

    #[test]
    fn control_characters_are_escaped_but_colour() {
        let line = "\x1b[32m INFO\x1b[0m a\tb\nc\x01d\x7f";
        assert_eq!(
            escaped(line.as_bytes()),
            b"\x1b[32m INFO\x1b[0m a\\tb\\nc\\x01d\\x7f"
        );
    }

    #[test]
    fn a_log_line_that_fits_is_left_as_it_is() {
        let line = "\x1b[33m WARN\x1b[0m short";
        assert_eq!(wrapped(line, 20), line);
        assert_eq!(wrapped("ERROR short", 11), "ERROR short");
    }
}
