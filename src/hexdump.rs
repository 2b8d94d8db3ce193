//! `--hex`: every message as `xxd` and `ncat -x` show bytes, offset, hex and ASCII, on
//! stderr. Stderr because stdout carries the replies (send) and the `listening` line
//! (serve, relay) that scripts read; a dump never mixes into them, and `2>dump.txt`
//! keeps it.

use std::io::Write;

/// Bytes per line, as xxd.
const WIDTH: usize = 16;

/// The dump of `data` under a heading (`> 5 bytes to tcp 127.0.0.1:4000`): one line per 16
/// bytes, the offset in hex, the bytes in pairs, then the printable ASCII with `.` for the
/// rest.
pub(crate) fn format(heading: &str, data: &[u8]) -> String {
    let mut text = format!("{heading}\n");
    for (n, line) in data.chunks(WIDTH).enumerate() {
        let mut hex = String::with_capacity(40);
        for (i, byte) in line.iter().enumerate() {
            if i > 0 && i % 2 == 0 {
                hex.push(' ');
            }
            hex.push_str(&format!("{byte:02x}"));
        }
        let ascii: String = line
            .iter()
            .map(|&b| match b {
                0x20..=0x7e => b as char,
                _ => '.',
            })
            .collect();
        text.push_str(&format!("{:08x}: {hex:<39}  {ascii}\n", n * WIDTH));
    }
    text
}

/// Which way a message went, from this program's side.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Way {
    /// Sent by this program.
    Out,
    /// Received by this program.
    In,
}

/// Whether serve and relay dump what they carry (`--hex`).
static ON: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Turns the dumps of [`dump_if`] on, for the whole process.
pub(crate) fn enable() {
    ON.store(true, std::sync::atomic::Ordering::Relaxed);
}

/// [`dump`], when `--hex` turned the dumps on.
pub(crate) fn dump_if(way: Way, peer: &dyn std::fmt::Display, data: &[u8]) {
    if ON.load(std::sync::atomic::Ordering::Relaxed) {
        dump(way, peer, data);
    }
}

/// Writes the dump of one message to stderr: `> N bytes to PEER` or `< N bytes from PEER`.
pub(crate) fn dump(way: Way, peer: &dyn std::fmt::Display, data: &[u8]) {
    let bytes = crate::units::count(data.len(), "byte");
    let heading = match way {
        Way::Out => format!("> {bytes} to {peer}"),
        Way::In => format!("< {bytes} from {peer}"),
    };
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(format(&heading, data).as_bytes());
}

/// Bytes of a message `-vv` shows; the rest is counted, not printed.
const SHOWN: usize = 200;

/// `-vv`: what came in, as the lesson's server prints it (`print(data)` in Python shows
/// `b'hello\n'`), so a log line is one line whatever the bytes are. Inlined, so below
/// `-vv` every message costs the level check alone, not a call as well.
#[inline]
pub(crate) fn log_received(peer: &dyn std::fmt::Display, data: &[u8]) {
    if tracing::enabled!(tracing::Level::TRACE) {
        trace_received(peer, data);
    }
}

#[cold]
fn trace_received(peer: &dyn std::fmt::Display, data: &[u8]) {
    tracing::trace!("{peer}: received {}", literal(data));
}

/// `data` as a Python bytes literal: printable ASCII as itself, `\n`, `\r`, `\t`, `\\`,
/// `\'`, every other byte as `\xNN`; past [`SHOWN`] bytes, how many more there were.
pub(crate) fn literal(data: &[u8]) -> String {
    let mut text = String::from("b'");
    for &b in &data[..data.len().min(SHOWN)] {
        match b {
            b'\n' => text.push_str("\\n"),
            b'\r' => text.push_str("\\r"),
            b'\t' => text.push_str("\\t"),
            b'\\' => text.push_str("\\\\"),
            b'\'' => text.push_str("\\'"),
            0x20..=0x7e => text.push(b as char),
            _ => text.push_str(&format!("\\x{b:02x}")),
        }
    }
    text.push('\'');
    if data.len() > SHOWN {
        text.push_str(&format!(" ... ({} more bytes)", data.len() - SHOWN));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dump_reads_as_xxd_does() {
        let text = format(
            "> 20 bytes to tcp 127.0.0.1:4000",
            b"hello, world\n\x00\x01\xffABCD",
        );
        assert_eq!(
            text,
            "> 20 bytes to tcp 127.0.0.1:4000\n\
             00000000: 6865 6c6c 6f2c 2077 6f72 6c64 0a00 01ff  hello, world....\n\
             00000010: 4142 4344                                ABCD\n"
        );
        assert_eq!(format("< 0 bytes", b""), "< 0 bytes\n");
    }

    #[test]
    fn an_odd_length_line_is_padded_to_the_ascii_column() {
        let text = format("x", b"abc");
        assert_eq!(
            text,
            "x\n00000000: 6162 63                                  abc\n"
        );
    }

    #[test]
    fn literal_escapes_as_python_prints_bytes() {
        assert_eq!(literal(b"hello\n"), r"b'hello\n'");
        assert_eq!(
            literal("h\u{e9}'\\\t\0".as_bytes()),
            r"b'h\xc3\xa9\'\\\t\x00'"
        );
        let long = vec![b'a'; SHOWN + 5];
        assert!(literal(&long).ends_with("' ... (5 more bytes)"));
    }
}
