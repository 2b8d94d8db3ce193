//! `--explain`: every socket call narrated on stderr as it happens, one call per line, with
//! its arguments and result, in the style of the man pages (`bind(fd 3, [::]:3234) = 0`).
//! Off by default, and then it costs one relaxed atomic load per call.

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
    use std::io::Write;
    // One write per line: the lines of a parent and its children do not mix mid-line.
    let line = format!("{} {text}\n", origin());
    let _ = io::stderr().write_all(line.as_bytes());
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
