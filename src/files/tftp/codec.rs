//! TFTP's packets (RFC 1350), with the option extension's OACK (RFC 2347). Every integer
//! is big-endian; strings end with a NUL byte.
//!
//! ```text
//! 1 RRQ    file name, NUL, mode, NUL, then option name, NUL, value, NUL, ...
//! 2 WRQ    the same layout as RRQ
//! 3 DATA   block u16, data (block size bytes; a shorter block is the last)
//! 4 ACK    block u16
//! 5 ERROR  code u16, message, NUL
//! 6 OACK   option name, NUL, value, NUL, ... (the options the server accepted)
//! ```

/// ERROR codes of RFC 1350 and RFC 2347.
pub(crate) const NOT_DEFINED: u16 = 0;
pub(crate) const NOT_FOUND: u16 = 1;
pub(crate) const ACCESS: u16 = 2;
pub(crate) const DISK_FULL: u16 = 3;
pub(crate) const ILLEGAL: u16 = 4;
pub(crate) const EXISTS: u16 = 6;
/// RFC 2347's: the transfer ends because of its options.
pub(crate) const OPTIONS: u16 = 8;

/// Options one request may carry: more are refused as malformed, so a request costs a
/// bounded amount of work.
pub(crate) const MAX_OPTIONS: usize = 16;

/// A decoded packet, borrowing from the datagram it came in.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Packet<'a> {
    Request {
        write: bool,
        name: &'a str,
        mode: &'a str,
        options: Vec<(&'a str, &'a str)>,
    },
    Data {
        block: u16,
        data: &'a [u8],
    },
    Ack {
        block: u16,
    },
    Error {
        code: u16,
        message: &'a str,
    },
    Oack {
        options: Vec<(&'a str, &'a str)>,
    },
}

/// NUL-terminated UTF-8 strings filling `b` exactly (the last byte is a NUL); `None` if
/// the last string lacks its NUL, a string is not UTF-8, or there are more than `max`.
fn strings(b: &[u8], max: usize) -> Option<Vec<&str>> {
    let body = b.strip_suffix(&[0])?;
    let mut out = Vec::new();
    for part in body.split(|&c| c == 0) {
        if out.len() == max {
            return None;
        }
        out.push(std::str::from_utf8(part).ok()?);
    }
    Some(out)
}

/// Name and value pairs; `None` for a name without its value or an empty name.
fn pairs<'a>(fields: &[&'a str]) -> Option<Vec<(&'a str, &'a str)>> {
    if !fields.len().is_multiple_of(2) {
        return None;
    }
    let pairs: Vec<_> = fields.chunks(2).map(|p| (p[0], p[1])).collect();
    if pairs.iter().any(|(name, _)| name.is_empty()) {
        return None;
    }
    Some(pairs)
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

impl<'a> Packet<'a> {
    /// Parses a datagram; `None` for anything malformed.
    pub(crate) fn decode(b: &'a [u8]) -> Option<Packet<'a>> {
        let rest = b.get(2..)?;
        Some(match u16_at(b, 0)? {
            op @ (1 | 2) => {
                let fields = strings(rest, 2 + 2 * MAX_OPTIONS)?;
                let (name, mode) = (*fields.first()?, *fields.get(1)?);
                Packet::Request {
                    write: op == 2,
                    name,
                    mode,
                    options: pairs(&fields[2..])?,
                }
            }
            3 => Packet::Data {
                block: u16_at(b, 2)?,
                data: b.get(4..)?,
            },
            4 if b.len() == 4 => Packet::Ack {
                block: u16_at(b, 2)?,
            },
            5 => {
                // A message without its NUL is taken as it is: it is only ever logged.
                let text = b.get(4..)?;
                let end = text.iter().position(|&c| c == 0).unwrap_or(text.len());
                Packet::Error {
                    code: u16_at(b, 2)?,
                    message: std::str::from_utf8(&text[..end]).ok()?,
                }
            }
            6 => Packet::Oack {
                options: pairs(&strings(rest, 2 * MAX_OPTIONS)?)?,
            },
            _ => return None,
        })
    }

    /// Appends the packet's bytes to `out`.
    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        let text = |out: &mut Vec<u8>, s: &str| {
            out.extend_from_slice(s.as_bytes());
            out.push(0);
        };
        match self {
            Packet::Request {
                write,
                name,
                mode,
                options,
            } => {
                out.extend_from_slice(&(1 + u16::from(*write)).to_be_bytes());
                text(out, name);
                text(out, mode);
                for (k, v) in options {
                    text(out, k);
                    text(out, v);
                }
            }
            Packet::Data { block, data } => {
                out.extend_from_slice(&3u16.to_be_bytes());
                out.extend_from_slice(&block.to_be_bytes());
                out.extend_from_slice(data);
            }
            Packet::Ack { block } => {
                out.extend_from_slice(&4u16.to_be_bytes());
                out.extend_from_slice(&block.to_be_bytes());
            }
            Packet::Error { code, message } => {
                out.extend_from_slice(&5u16.to_be_bytes());
                out.extend_from_slice(&code.to_be_bytes());
                text(out, message);
            }
            Packet::Oack { options } => {
                out.extend_from_slice(&6u16.to_be_bytes());
                for (k, v) in options {
                    text(out, k);
                    text(out, v);
                }
            }
        }
    }

    pub(crate) fn to_vec(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(&mut out);
        out
    }
}

/// An ERROR of at most `limit` bytes, its message cut (at a character boundary) to fit:
/// the answer to an address that has not shown it exists is never larger than its
/// request. `None` when not even an empty message fits.
pub(crate) fn error_within(code: u16, message: &str, limit: usize) -> Option<Vec<u8>> {
    let room = limit.checked_sub(5)?;
    let mut end = message.len().min(room);
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    Some(
        Packet::Error {
            code,
            message: &message[..end],
        }
        .to_vec(),
    )
}

/// An ERROR of at most `limit` bytes with the first of `texts` (longest first) that fits
/// whole, or none if none does: a word cut in the middle tells the client nothing. `None`
/// when not even an empty message fits.
pub(crate) fn error_fitting(code: u16, texts: &[&str], limit: usize) -> Option<Vec<u8>> {
    let room = limit.checked_sub(5)?;
    let message = texts
        .iter()
        .find(|t| t.len() <= room)
        .copied()
        .unwrap_or("");
    error_within(code, message, limit)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn every_kind() -> Vec<Packet<'static>> {
        vec![
            Packet::Request {
                write: false,
                name: "a/b.txt",
                mode: "octet",
                options: vec![("blksize", "1428"), ("tsize", "0")],
            },
            Packet::Request {
                write: true,
                name: "x",
                mode: "NETASCII",
                options: vec![],
            },
            Packet::Data {
                block: 65535,
                data: b"hello",
            },
            Packet::Data {
                block: 0,
                data: b"",
            },
            Packet::Ack { block: 7 },
            Packet::Error {
                code: NOT_FOUND,
                message: "'x': no such file",
            },
            Packet::Oack {
                options: vec![("windowsize", "8")],
            },
        ]
    }

    #[test]
    fn every_packet_round_trips() {
        for p in every_kind() {
            assert_eq!(Packet::decode(&p.to_vec()), Some(p));
        }
    }

    #[test]
    fn the_wire_bytes_are_rfc_1350s() {
        let rrq = Packet::Request {
            write: false,
            name: "f",
            mode: "octet",
            options: vec![("blksize", "512")],
        };
        assert_eq!(rrq.to_vec(), b"\x00\x01f\x00octet\x00blksize\x00512\x00");
        let error = Packet::Error {
            code: 1,
            message: "gone",
        };
        assert_eq!(error.to_vec(), b"\x00\x05\x00\x01gone\x00");
    }

    #[test]
    fn malformed_packets_are_none() {
        for bad in [
            &b""[..],
            b"\x00",
            b"\x00\x01",
            b"\x00\x01f",
            b"\x00\x01f\x00octet",
            b"\x00\x01f\x00octet\x00blksize\x00",
            b"\x00\x01f\x00octet\x00\x00512\x00",
            b"\x00\x01\xff\x00octet\x00",
            b"\x00\x03\x00",
            b"\x00\x04\x00\x01\x00",
            b"\x00\x05\x00",
            b"\x00\x07\x00\x01",
        ] {
            assert_eq!(Packet::decode(bad), None, "{bad:?}");
        }
        let mut many = b"\x00\x01f\x00octet\x00".to_vec();
        for _ in 0..=MAX_OPTIONS {
            many.extend_from_slice(b"k\x00v\x00");
        }
        assert_eq!(Packet::decode(&many), None, "more options than allowed");
    }

    #[test]
    fn an_error_is_cut_to_fit_its_limit() {
        let e = error_within(NOT_FOUND, "'x': no such file", 10).unwrap();
        assert_eq!(e, b"\x00\x05\x00\x01'x': \x00");
        let e = error_within(0, "\u{e9}\u{e9}", 8).unwrap();
        assert_eq!(e.len(), 7, "cut at a character boundary");
        assert!(error_within(0, "x", 4).is_none());
    }

    #[test]
    fn an_error_with_texts_to_choose_from_says_the_longest_that_fits_whole() {
        let texts = ["send an option", "send one", "one"];
        let e = error_fitting(OPTIONS, &texts, 18).unwrap();
        assert_eq!(e, b"\x00\x05\x00\x08send one\x00");
        let e = error_fitting(OPTIONS, &texts, 7).unwrap();
        assert_eq!(e, b"\x00\x05\x00\x08\x00", "nothing rather than a cut word");
        assert!(error_fitting(OPTIONS, &texts, 4).is_none());
    }

    /// xorshift64: a fixed, reproducible stream of bytes for the fuzz test below.
    fn next(state: &mut u64) -> u64 {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        *state
    }

    #[test]
    fn random_and_truncated_bytes_never_panic_and_round_trip_when_taken() {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut inputs: Vec<Vec<u8>> = Vec::new();
        for p in every_kind() {
            let bytes = p.to_vec();
            for cut in 0..=bytes.len() {
                inputs.push(bytes[..cut].to_vec());
            }
        }
        for _ in 0..20_000 {
            let len = (next(&mut state) % 40) as usize;
            let mut b: Vec<u8> = (0..len).map(|_| next(&mut state) as u8).collect();
            // Mostly valid opcodes and NUL-rich bodies, so the parsers go deep.
            if len >= 2 {
                b[0] = 0;
                b[1] = (next(&mut state) % 8) as u8;
            }
            for c in b.iter_mut().skip(2) {
                if next(&mut state).is_multiple_of(3) {
                    *c = 0;
                }
            }
            inputs.push(b);
        }
        for b in inputs {
            if let Some(p) = Packet::decode(&b) {
                let again = p.to_vec();
                assert_eq!(Packet::decode(&again).as_ref(), Some(&p), "{b:?}");
            }
        }
    }
}
