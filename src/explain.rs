//! `--explain`: every socket call narrated on stderr as it happens, one call per line, with
//! its arguments and result, in the style of the man pages (`bind(fd 3, [::]:3234) = 0`).
//! Off by default, and then it costs one relaxed atomic load per call. On a terminal a line
//! wider than it is wrapped under its `[pid N]` (as log lines are under their tag); to a
//! pipe or a file each call stays one line, for scripts and for comparing with strace.

use std::fmt;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};

static ON: AtomicBool = AtomicBool::new(false);

/// Turns narration on for the rest of the process.
pub(crate) fn enable() {
    ON.store(true, Ordering::Relaxed);
}

#[inline]
pub(crate) fn on() -> bool {
    ON.load(Ordering::Relaxed)
}

/// The result of a call as the narration shows it: `ok`'s text, or
/// `-1 EADDRINUSE (address already in use)`.
pub(crate) fn result_text<T>(result: &io::Result<T>, ok: impl FnOnce(&T) -> String) -> String {
    match result {
        Ok(value) => ok(value),
        Err(e) => match e.raw_os_error() {
            Some(code) => {
                let errno = nix::errno::Errno::from_raw(code);
                format!("-1 {errno:?} ({})", errno.desc().to_lowercase())
            }
            None => format!("-1 ({e})"),
        },
    }
}

/// Which process and thread a line comes from, as strace -f shows it: `[pid 41]` for a
/// process's main thread, `[pid 41 tid 43]` for another of its threads.
pub(crate) fn origin() -> String {
    let pid = std::process::id();
    let tid = nix::unistd::gettid().as_raw() as u32;
    if pid == tid {
        format!("[pid {pid}]")
    } else {
        format!("[pid {pid} tid {tid}]")
    }
}

/// Prints one narrated line, after the process and thread it comes from.
pub(crate) fn line(text: fmt::Arguments<'_>) {
    use std::io::{IsTerminal, Write};
    // Asked once: stderr stays what it was, and strace of a narrated run shows no
    // terminal check between the calls it narrates.
    static TERMINAL: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let text = text.to_string();
    let mut line = match *TERMINAL.get_or_init(|| io::stderr().is_terminal()) {
        true => wrapped(&origin(), &text, crate::logging::width()),
        false => format!("{} {text}", origin()),
    };
    line.push('\n');
    // One write per call, its wrapped lines too: the lines of a parent and its children do
    // not mix mid-line.
    let _ = io::stderr().write_all(line.as_bytes());
}

/// `text` after `origin` within `width` columns: the lines after the first indented under
/// where its words begin (past `origin` and the text's own indent), so that each call
/// still begins at the left with its `[pid N]`.
fn wrapped(origin: &str, text: &str, width: usize) -> String {
    let words = text.trim_start();
    let first = format!("{origin} {}", &text[..text.len() - words.len()]);
    let rest = " ".repeat(crate::wrap::columns(&first)) + crate::logging::INDENT;
    crate::wrap::lines(words, &first, &rest, width).join("\n")
}

/// Prints one narrated call: `call` with the result of `result`, e.g. `= 0`, `= fd 4`,
/// `= -1 EADDRINUSE (address already in use)`.
pub(crate) fn say<T>(
    call: fmt::Arguments<'_>,
    result: &io::Result<T>,
    ok: impl FnOnce(&T) -> String,
) {
    line(format_args!("{call} = {}", result_text(result, ok)));
}

/// Narrates a call that returns nothing worth showing but success (`= 0`).
pub(crate) fn zero(call: fmt::Arguments<'_>, result: &io::Result<()>) {
    say(call, result, |_| "0".to_string());
}

#[cfg(test)]
mod tests {
    use super::wrapped;

    #[test]
    fn a_wide_call_is_wrapped_under_its_words_and_a_narrow_one_left_alone() {
        let origin = "[pid 7202 tid 7209]";
        let text = "  tls sending record: application_data (23), TLS 1.2 on the record, 552 \
                    bytes: encrypted";
        let lines = wrapped(origin, text, 60);
        let lines: Vec<&str> = lines.split('\n').collect();
        assert!(lines.len() > 1, "{lines:?}");
        assert!(lines[0].starts_with("[pid 7202 tid 7209]   tls sending"));
        for line in &lines[1..] {
            assert!(line.starts_with(&" ".repeat(24)), "{line:?}");
            assert!(!line.starts_with(&" ".repeat(25)), "{line:?}");
        }
        for line in &lines {
            assert!(line.len() <= 60, "{line:?}");
        }
        assert_eq!(
            wrapped("[pid 1]", "close(fd 3) = 0", 60),
            "[pid 1] close(fd 3) = 0"
        );
    }
}
