//! Message boundaries on a byte stream (the "sticky packet" lesson): a stream delivers bytes,
//! not messages, so two sends can arrive in one read and one send in two. A framing puts the
//! boundaries back: `line` ends each message with a newline, `length` puts a 4-byte
//! big-endian length before it. Datagram and seqpacket sockets keep boundaries themselves. This is a
//! codec: it knows bytes, never sockets ([`super::message`] applies it to a connection).

use std::fmt;
use std::ops::Range;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::choice::{Choice, from_str_by_name};

/// The default bound on one frame.
pub(crate) const DEFAULT_MAX_FRAME: u32 = 16 << 20;
/// Bytes of a `length` frame's header.
pub(crate) const LENGTH_HEADER: usize = 4;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum Framing {
    /// No framing: whatever one read returns is the message
    #[default]
    None,
    /// Each message ends with a newline (\n)
    Line,
    /// Each message follows a 4-byte big-endian length
    Length,
}

/// A frame that cannot be accepted; the connection that sent it is closed.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum FrameError {
    /// A frame announced or grew past the limit.
    TooLong { len: usize, max: usize },
    /// The peer closed in the middle of a frame.
    Incomplete { have: usize, need: Option<usize> },
    /// Unfinished frames of every connection together hold more than the server's budget;
    /// `have` bytes of this connection's were read.
    Budget {
        held: usize,
        budget: usize,
        have: usize,
    },
    /// A frame started and was not finished within the deadline (--frame-timeout).
    Unfinished {
        have: usize,
        after: std::time::Duration,
    },
}

/// Whether a 4-byte length prefix is really the header of a TLS record (content type 20 to
/// 23, version 3.x): a TLS peer on a plain framed connection.
fn tls_record(len: usize) -> bool {
    let Ok(len) = u32::try_from(len) else {
        return false;
    };
    let [kind, major, minor, _] = len.to_be_bytes();
    (20..=23).contains(&kind) && major == 3 && minor <= 4
}

impl FrameError {
    /// " (--max-frame)" where raising that limit would have let the frame in (too long, and
    /// not a TLS record), for the commands that have the option; "" otherwise.
    pub(crate) fn max_frame_hint(&self) -> &'static str {
        match self {
            FrameError::TooLong { len, .. } if !tls_record(*len) => " (--max-frame)",
            _ => "",
        }
    }
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::TooLong { len, max } if tls_record(*len) => write!(
                f,
                "a frame of {len} bytes is over the {max}-byte limit, and its length prefix is \
                 the start of a TLS record: the peer speaks TLS (add --tls)"
            ),
            FrameError::TooLong { len, max } => {
                write!(f, "a frame of {len} bytes is over the {max}-byte limit")
            }
            FrameError::Incomplete {
                have,
                need: Some(need),
            } => write!(
                f,
                "the connection closed in the middle of a frame ({have} of {need} bytes)"
            ),
            FrameError::Incomplete { have, need: None } => write!(
                f,
                "the connection closed in the middle of a line ({have} bytes, no newline)"
            ),
            FrameError::Budget { held, budget, have } => write!(
                f,
                "unfinished frames of all connections hold {held} bytes, over the server's \
                 {budget}-byte budget: this connection's, {have} bytes read of it, is refused \
                 (send smaller frames, or finish them sooner)"
            ),
            FrameError::Unfinished { have, after } => write!(
                f,
                "a frame was still unfinished {after:?} after it started ({have} bytes of it \
                 came, not its end; --frame-timeout)"
            ),
        }
    }
}

impl std::error::Error for FrameError {}

impl Choice for Framing {
    const ALL: &'static [Framing] = &[Framing::None, Framing::Line, Framing::Length];

    fn name(self) -> &'static str {
        Framing::name(self)
    }

    fn help(self) -> &'static str {
        match self {
            Framing::None => "No framing: whatever one read returns is the message",
            Framing::Line => "Each message ends with a newline (\\n)",
            Framing::Length => "Each message follows a 4-byte big-endian length",
        }
    }
}

from_str_by_name!(Framing);

impl Framing {
    /// The name `--framing` takes.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Framing::None => "none",
            Framing::Line => "line",
            Framing::Length => "length",
        }
    }

    /// Appends `payload` as one frame to `out`.
    pub(crate) fn encode(self, payload: &[u8], out: &mut Vec<u8>) {
        match self {
            Framing::None => out.extend_from_slice(payload),
            Framing::Line => {
                out.extend_from_slice(payload);
                out.push(b'\n');
            }
            Framing::Length => {
                let len = u32::try_from(payload.len()).expect("frames are bounded below 4 GiB");
                out.extend_from_slice(&len.to_be_bytes());
                out.extend_from_slice(payload);
            }
        }
    }
}

/// Bytes held by every decoder's buffer in this process, against [`BUDGET`].
static HELD: AtomicUsize = AtomicUsize::new(0);
/// What unfinished frames of all connections may hold together (or twice --max-frame, if
/// more): past it, a connection whose unfinished frame is over [`SMALL`] is refused, so 20
/// clients that each start a 16 MiB frame cannot take 320 MiB.
pub(crate) const BUDGET: usize = 64 << 20;
/// An unfinished frame this small is never refused for the budget.
const SMALL: usize = 64 << 10;

/// Cuts a byte stream into frames, whatever the chunks it arrives in. The buffer only ever
/// holds bytes that arrived: an announced length is checked against the limit, never
/// allocated up front.
#[derive(Debug)]
pub(crate) struct Decoder {
    framing: Framing,
    max_frame: usize,
    buf: Vec<u8>,
    /// Start of the bytes not yet returned as frames.
    start: usize,
    /// Bytes after `start` already searched for a newline and found to hold none: each byte
    /// is scanned once, however small the chunks a long line comes in.
    scanned: usize,
    /// This decoder's share of [`HELD`]: its buffer's capacity when last counted.
    counted: usize,
}

impl Drop for Decoder {
    fn drop(&mut self) {
        HELD.fetch_sub(self.counted, Ordering::Relaxed);
    }
}

impl Decoder {
    pub(crate) fn new(framing: Framing, max_frame: usize) -> Decoder {
        Decoder {
            framing,
            max_frame,
            buf: Vec::new(),
            start: 0,
            scanned: 0,
            counted: 0,
        }
    }

    /// Brings this decoder's share of [`HELD`] up to date; the total held now.
    fn count(&mut self) -> usize {
        let now = self.buf.capacity();
        let held = if now >= self.counted {
            HELD.fetch_add(now - self.counted, Ordering::Relaxed) + (now - self.counted)
        } else {
            HELD.fetch_sub(self.counted - now, Ordering::Relaxed) - (self.counted - now)
        };
        self.counted = now;
        held
    }

    /// Refuses an unfinished frame past [`SMALL`] while all decoders hold over the budget.
    fn within_budget(&mut self) -> Result<(), FrameError> {
        let held = self.count();
        let budget = BUDGET.max(2 * self.max_frame);
        let have = self.buf.len() - self.start;
        if held > budget && have > SMALL {
            return Err(FrameError::Budget { held, budget, have });
        }
        Ok(())
    }

    /// Adds bytes just read.
    pub(crate) fn feed(&mut self, data: &[u8]) {
        if self.start > 0 && self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
            self.scanned = 0;
        }
        self.buf.extend_from_slice(data);
    }

    /// The next complete frame's payload, if one is complete.
    pub(crate) fn next_frame(&mut self) -> Result<Option<&mut [u8]>, FrameError> {
        Ok(self.next_range()?.map(|range| &mut self.buf[range]))
    }

    /// Where the next complete frame's payload lies in the buffer, consumed from the
    /// decoder's point of view; [`Decoder::frame`] lends it.
    pub(crate) fn next_range(&mut self) -> Result<Option<Range<usize>>, FrameError> {
        let pending = &self.buf[self.start..];
        let (skip, len) = match self.framing {
            Framing::None => {
                if pending.is_empty() {
                    return Ok(None);
                }
                (0, pending.len())
            }
            Framing::Line => match pending[self.scanned.min(pending.len())..]
                .iter()
                .position(|&b| b == b'\n')
                .map(|at| at + self.scanned)
            {
                Some(at) if at <= self.max_frame => {
                    self.scanned = 0;
                    (0, at)
                }
                Some(at) => {
                    return Err(FrameError::TooLong {
                        len: at,
                        max: self.max_frame,
                    });
                }
                None if pending.len() > self.max_frame => {
                    return Err(FrameError::TooLong {
                        len: pending.len(),
                        max: self.max_frame,
                    });
                }
                None => {
                    self.scanned = pending.len();
                    self.within_budget()?;
                    return Ok(None);
                }
            },
            Framing::Length => {
                let Some(header) = pending.get(..LENGTH_HEADER) else {
                    return Ok(None);
                };
                let len = u32::from_be_bytes(header.try_into().expect("4 bytes")) as usize;
                if len > self.max_frame {
                    return Err(FrameError::TooLong {
                        len,
                        max: self.max_frame,
                    });
                }
                if pending.len() < LENGTH_HEADER + len {
                    self.within_budget()?;
                    return Ok(None);
                }
                (LENGTH_HEADER, len)
            }
        };
        let from = self.start + skip;
        // A line's newline is consumed but not part of the payload.
        let used = skip + len + usize::from(self.framing == Framing::Line);
        self.start += used;
        Ok(Some(from..from + len))
    }

    /// The bytes of a frame [`Decoder::next_range`] found, until the next feed or reclaim.
    pub(crate) fn frame(&mut self, range: Range<usize>) -> &mut [u8] {
        &mut self.buf[range]
    }

    /// Bytes of a frame that started and is not complete yet.
    pub(crate) fn unfinished(&self) -> usize {
        self.buf.len() - self.start
    }

    /// The bytes of that frame: after an error, what the peer sent that was no frame.
    pub(crate) fn pending(&self) -> &[u8] {
        &self.buf[self.start..]
    }

    /// At end of stream: an error if a frame was started but not finished.
    pub(crate) fn finish(&self) -> Result<(), FrameError> {
        let have = self.buf.len() - self.start;
        if have == 0 || self.framing == Framing::None {
            return Ok(());
        }
        let need = match self.framing {
            Framing::Length if have >= LENGTH_HEADER => Some(
                LENGTH_HEADER
                    + u32::from_be_bytes(
                        self.buf[self.start..self.start + 4].try_into().expect("4"),
                    ) as usize,
            ),
            Framing::Length => Some(LENGTH_HEADER),
            _ => None,
        };
        Err(FrameError::Incomplete { have, need })
    }

    /// Frees consumed bytes; call when no frame from this decoder is borrowed.
    pub(crate) fn reclaim(&mut self) {
        if self.start == 0 {
            return;
        }
        self.buf.drain(..self.start);
        self.start = 0;
        let (len, capacity) = (self.buf.len(), self.buf.capacity());
        if len == 0 && capacity > SMALL {
            self.buf = Vec::new();
        } else if capacity > SMALL && capacity > 4 * len {
            // The start of a next frame keeps about its own size, not the room a large frame
            // before it took: an idle peer holding one byte holds that much of the budget.
            self.buf.shrink_to(2 * len);
        }
        self.count();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(framing: Framing, chunks: &[&[u8]]) -> Vec<Vec<u8>> {
        let mut d = Decoder::new(framing, 1024);
        let mut got = Vec::new();
        for chunk in chunks {
            d.feed(chunk);
            while let Some(frame) = d.next_frame().unwrap() {
                got.push(frame.to_vec());
            }
            d.reclaim();
        }
        assert_eq!(d.finish(), Ok(()));
        got
    }

    #[test]
    fn lines_split_and_joined_across_reads() {
        let got = frames(Framing::Line, &[b"ab", b"c\nde\nf", b"g\n"]);
        assert_eq!(got, [b"abc".to_vec(), b"de".to_vec(), b"fg".to_vec()]);
    }

    #[test]
    fn length_prefix_split_across_reads() {
        let mut stream = Vec::new();
        Framing::Length.encode(b"hello", &mut stream);
        Framing::Length.encode(b"", &mut stream);
        Framing::Length.encode(b"world!", &mut stream);
        // Every split point, including inside the 4-byte header.
        for cut in 0..stream.len() {
            let got = frames(Framing::Length, &[&stream[..cut], &stream[cut..]]);
            assert_eq!(
                got,
                [b"hello".to_vec(), vec![], b"world!".to_vec()],
                "cut at {cut}"
            );
        }
        // One byte at a time.
        let bytes: Vec<&[u8]> = stream.chunks(1).collect();
        assert_eq!(frames(Framing::Length, &bytes).len(), 3);
    }

    #[test]
    fn a_hostile_length_is_refused_before_any_allocation() {
        let mut d = Decoder::new(Framing::Length, 16 << 20);
        d.feed(&u32::MAX.to_be_bytes());
        assert_eq!(
            d.next_frame().unwrap_err(),
            FrameError::TooLong {
                len: u32::MAX as usize,
                max: 16 << 20
            }
        );
        assert!(
            d.buf.capacity() < 1024,
            "nothing allocated for the announced size"
        );
    }

    #[test]
    fn the_byte_after_a_large_frame_keeps_about_its_own_room() {
        let mut d = Decoder::new(Framing::Length, 4 << 20);
        let mut stream = Vec::new();
        Framing::Length.encode(&vec![b'z'; 3 << 20], &mut stream);
        stream.push(0);
        d.feed(&stream);
        assert_eq!(d.next_frame().unwrap().map(|f| f.len()), Some(3 << 20));
        assert_eq!(d.next_frame().unwrap(), None);
        d.reclaim();
        assert_eq!(d.unfinished(), 1);
        assert!(d.buf.capacity() < 1024, "{} bytes kept", d.buf.capacity());
        assert!(d.counted < 1024, "{} bytes counted", d.counted);
    }

    #[test]
    fn a_line_without_end_is_bounded() {
        let mut d = Decoder::new(Framing::Line, 8);
        d.feed(b"0123456789");
        assert!(matches!(d.next_frame(), Err(FrameError::TooLong { .. })));
    }

    #[test]
    fn a_stream_closed_mid_frame_is_an_error() {
        let mut d = Decoder::new(Framing::Length, 100);
        d.feed(&[0, 0, 0, 10, b'a']);
        assert_eq!(d.next_frame().unwrap(), None);
        assert_eq!(
            d.finish(),
            Err(FrameError::Incomplete {
                have: 5,
                need: Some(14)
            })
        );
        let mut d = Decoder::new(Framing::Line, 100);
        d.feed(b"abc");
        assert_eq!(d.next_frame().unwrap(), None);
        assert_eq!(
            d.finish(),
            Err(FrameError::Incomplete {
                have: 3,
                need: None
            })
        );
    }
}
